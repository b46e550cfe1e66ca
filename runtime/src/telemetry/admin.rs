//! The admin HTTP server (`--admin ADDR` of `weft run`): what operators
//! and Prometheus read.
//!
//! - `GET /metrics`: every count, as Prometheus text.
//!
//! It serves whatever a [`Scrape`] returns at the moment of the request,
//! so `weft run` hands it its own registry.

use super::metrics::Snapshot;
use super::prometheus;
use bytes::Bytes;
use http_body_util::Full;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Where the admin server gets its counts: a snapshot, now.
pub type Scrape =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = anyhow::Result<Snapshot>> + Send>> + Send + Sync>;

/// Serves the admin endpoints on `listener` until `shutdown` resolves.
pub async fn serve(listener: TcpListener, scrape: Scrape, shutdown: impl Future<Output = ()>) {
    let handler = move |request: hyper::Request<hyper::body::Incoming>| {
        let scrape = scrape.clone();
        async move { respond(request.method(), request.uri().path(), &scrape).await }
    };
    crate::listener::serve(listener, "admin".to_string(), handler, shutdown).await;
}

async fn respond(
    method: &hyper::Method,
    path: &str,
    scrape: &Scrape,
) -> hyper::Response<Full<Bytes>> {
    if method != hyper::Method::GET {
        return reply(
            405,
            "text/plain",
            "the admin address answers GET only\n".into(),
        );
    }
    match path {
        "/metrics" => match scrape().await {
            Ok(snapshot) => reply(200, prometheus::CONTENT_TYPE, prometheus::render(&snapshot)),
            Err(e) => reply(
                503,
                "text/plain",
                format!("cannot read the metrics: {e:#}\n"),
            ),
        },
        _ => reply(
            404,
            "text/plain",
            format!("no page {path} here; try /metrics\n"),
        ),
    }
}

fn reply(status: u16, content_type: &str, body: String) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}
