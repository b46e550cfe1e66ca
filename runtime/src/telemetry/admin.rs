//! The admin HTTP server (`--admin ADDR` of `weft run` and `weft deploy`):
//! what operators, browsers and Prometheus read.
//!
//! - `GET /metrics`: every count, as Prometheus text.
//! - `GET /metrics.pb`: every count, as a `weft.v1.MetricsReply` in
//!   protobuf (what `weft profile --admin` reads).
//! - `GET /`: the dashboard ([`super::dashboard`]), which fetches
//!   `GET /dashboard`, its live part, every two seconds.
//!
//! It shows whatever its [`Source`] says at the moment of the request:
//! `weft run` hands it its own registry, the manager its workers'.

use super::dashboard::{self, View};
use super::metrics::{Metrics, Snapshot};
use super::prometheus;
use super::window::Window;
use bytes::Bytes;
use http_body_util::Full;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// A boxed future, as [`Source`]'s methods return.
pub type Answer<'a, T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + Send + 'a>>;

/// What the admin server shows.
pub trait Source: Send + Sync + 'static {
    /// Every count, now.
    fn snapshot(&self) -> Answer<'_, Snapshot>;
    /// What the dashboard shows, now.
    fn view(&self) -> Answer<'_, View>;
}

/// Binds `address` (an error names `--admin`), says where the pages are,
/// and serves them from `source` until `stopped` turns true.
pub async fn start(
    address: std::net::SocketAddr,
    source: Arc<dyn Source>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use anyhow::Context as _;
    let listener = TcpListener::bind(address).await.with_context(|| {
        format!(
            "--admin {address}: cannot listen there; give a free address, such as 127.0.0.1:9090"
        )
    })?;
    say!(
        "weft: admin on http://{} (dashboard at /, metrics at /metrics)",
        listener.local_addr()?
    );
    let handler = move |request: hyper::Request<hyper::body::Incoming>| {
        let source = source.clone();
        async move { respond(request.method(), request.uri().path(), &*source).await }
    };
    let shutdown = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    Ok(tokio::spawn(crate::listener::serve(
        listener,
        "admin".to_string(),
        handler,
        crate::listener::ConnectionLimits::default(),
        shutdown,
    )))
}

async fn respond(
    method: &hyper::Method,
    path: &str,
    source: &dyn Source,
) -> hyper::Response<Full<Bytes>> {
    if method != hyper::Method::GET {
        return reply(405, "text/plain", "the admin address answers GET only\n");
    }
    let html = "text/html; charset=utf-8";
    let unavailable = |e: anyhow::Error| {
        reply(
            503,
            "text/plain",
            format!("cannot read the metrics: {e:#}\n"),
        )
    };
    match path {
        "/metrics" => match source.snapshot().await {
            Ok(snapshot) => reply(200, prometheus::CONTENT_TYPE, prometheus::render(&snapshot)),
            Err(e) => unavailable(e),
        },
        "/metrics.pb" => match source.snapshot().await {
            Ok(snapshot) => {
                let reply = super::wire::to_reply(&snapshot);
                let body = prost::Message::encode_to_vec(&reply);
                self::reply(200, PROTOBUF, body)
            }
            Err(e) => unavailable(e),
        },
        "/" => match source.view().await {
            Ok(view) => reply(200, html, dashboard::page(&view)),
            Err(e) => unavailable(e),
        },
        "/dashboard" => match source.view().await {
            Ok(view) => reply(200, html, dashboard::fragment(&view)),
            Err(e) => unavailable(e),
        },
        _ => reply(
            404,
            "text/plain",
            format!("no page {path} here; try / or /metrics\n"),
        ),
    }
}

/// The content type of `/metrics.pb`.
pub const PROTOBUF: &str = "application/x-protobuf";

fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()))
        .expect("a valid response")
}

/// How often a process samples its own metrics for the last minute's rates.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// The source of a `weft run`: the app's own registry, sampled for rates.
pub struct Local {
    metrics: Arc<Metrics>,
    window: Mutex<Window>,
    /// The app, its version, and its components (all in group `main`).
    app: String,
    version: String,
    components: Vec<String>,
}

impl Local {
    /// The source of an app in one process; call [`Local::sample`] in a
    /// task of its own for the rates.
    pub fn new(metrics: Arc<Metrics>, app: &str, version: &str, components: Vec<String>) -> Local {
        Local {
            metrics,
            window: Mutex::default(),
            app: app.to_string(),
            version: version.to_string(),
            components,
        }
    }

    /// Samples the app's metrics for the rates, for ever.
    pub async fn keep_sampling(self: Arc<Self>) {
        keep_sampling(&self.window, || std::future::ready(self.metrics.snapshot())).await;
    }
}

/// Pushes a snapshot that `take` makes into `window` every
/// [`SAMPLE_EVERY`], for ever: the rates of the last minute need them.
pub async fn keep_sampling<F: Future<Output = Snapshot>>(
    window: &Mutex<Window>,
    take: impl Fn() -> F,
) {
    loop {
        let snapshot = take().await;
        window
            .lock()
            .expect("window lock")
            .push(Instant::now(), snapshot);
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

impl Source for Local {
    fn snapshot(&self) -> Answer<'_, Snapshot> {
        Box::pin(async move { Ok(self.metrics.snapshot()) })
    }

    fn view(&self) -> Answer<'_, View> {
        Box::pin(async move {
            let current = self.metrics.snapshot();
            let rates = self
                .window
                .lock()
                .expect("window lock")
                .rates(Instant::now(), &current);
            Ok(View {
                app: self.app.clone(),
                versions: vec![(self.version.clone(), 100)],
                groups: vec![dashboard::GroupView {
                    name: weft_placer::MONOLITH_GROUP.to_string(),
                    components: self.components.clone(),
                    replicas: 1,
                    healthy: 1,
                }],
                calls: rates,
            })
        })
    }
}
