//! Listeners: HTTP served by a component that exports WASI 0.2's
//! `wasi:http/incoming-handler` or WASI 0.3's `wasi:http/handler`.
//!
//! Each request borrows an instance from the component's pool and runs
//! `handle` in its own task, so the response can stream while the guest is
//! still writing (for WASI 0.3, the task drives the instance until its
//! body is written). A guest that traps or overruns its timeout costs that one
//! request a 500; the listener keeps serving.
//!
//! [`serve`] takes a bound listener, a request handler, its
//! [`ConnectionLimits`] and a shutdown future: on shutdown it stops
//! accepting, ends its kept-alive connections gently (for up to
//! [`GENTLE_CLOSE`], each next answer says `Connection: close`, so a busy
//! client reconnects instead of finding its connection closed under a
//! request it is sending), lets in-flight requests finish, and returns. The handler is
//! an [`HttpEntry`] in `weft run` and in a worker, and the manager's
//! ingress under `weft deploy`.
//!
//! A client cannot hold a connection for nothing: one that has not sent a
//! whole request head within `header_timeout` of its first byte (or of
//! connecting) is closed, and so is one that sits idle between requests
//! for `idle_timeout`. Past `max_connections` open connections, a new one
//! is closed at once.

use crate::pool::InstancePool;
use crate::telemetry::metrics::ListenerStats;
use crate::telemetry::trace::{self, SpanSpec};
use bytes::Bytes;
use http::header::{CONNECTION, HOST, HeaderValue};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use opentelemetry::KeyValue;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, TraceContextExt as _};
use opentelemetry_http::HeaderExtractor;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use wasmtime::component::Resource;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyIndices;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::HostResponseOutparam;
use wasmtime_wasi_http::p3::bindings::ServiceIndices;

/// How long shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long shutdown lets kept-alive connections end with an answer that
/// says `Connection: close`, before it closes those still idle.
pub const GENTLE_CLOSE: Duration = Duration::from_secs(1);

/// What a listener allows one client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a request head may take to arrive, from the connection's
    /// start or the first byte of the request.
    pub header_timeout: Duration,
    /// How long a kept-alive connection may sit between requests.
    pub idle_timeout: Duration,
    /// How many connections the listener keeps open at once.
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// The limits that a listener's fields set, the defaults for those it
    /// leaves out.
    pub fn of(
        header_timeout: Option<Duration>,
        idle_timeout: Option<Duration>,
        max_connections: Option<u32>,
    ) -> ConnectionLimits {
        let default = ConnectionLimits::default();
        ConnectionLimits {
            header_timeout: header_timeout.unwrap_or(default.header_timeout),
            idle_timeout: idle_timeout.unwrap_or(default.idle_timeout),
            max_connections: max_connections.map_or(default.max_connections, |n| n as usize),
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// Where one connection is: between requests, reading a head, or serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Idle,
    Head,
    Busy,
}

/// One connection's stage and since when, shared by its socket (which
/// sees bytes arrive and leave) and its service (which sees requests).
#[derive(Clone)]
struct Activity(Arc<std::sync::Mutex<(Stage, Instant)>>);

impl Activity {
    /// A new connection, waiting for its first request's head.
    fn new() -> Activity {
        Activity(Arc::new(std::sync::Mutex::new((
            Stage::Head,
            Instant::now(),
        ))))
    }

    fn set(&self, stage: Stage) {
        *self.0.lock().expect("activity lock") = (stage, Instant::now());
    }

    /// Bytes arrived: an idle connection starts a request head.
    fn read(&self) {
        let mut state = self.0.lock().expect("activity lock");
        if state.0 == Stage::Idle {
            *state = (Stage::Head, Instant::now());
        }
    }

    /// Bytes left: an idle connection that still sends a body is not idle.
    fn wrote(&self) {
        let mut state = self.0.lock().expect("activity lock");
        if state.0 == Stage::Idle {
            state.1 = Instant::now();
        }
    }

    /// Resolves when the connection has broken `limits`: its head took too
    /// long, or it sat idle too long.
    async fn expired(&self, limits: ConnectionLimits) -> &'static str {
        loop {
            let (stage, since) = *self.0.lock().expect("activity lock");
            let (limit, why) = match stage {
                // A request in progress is bounded by its component's
                // call timeout, not here.
                Stage::Busy => (limits.header_timeout, ""),
                Stage::Head => (
                    limits.header_timeout,
                    "its request head did not arrive in time",
                ),
                Stage::Idle => (limits.idle_timeout, "it sat idle for too long"),
            };
            let deadline = since + limit;
            if stage != Stage::Busy && Instant::now() >= deadline {
                return why;
            }
            let wake = if stage == Stage::Busy {
                Instant::now() + limit
            } else {
                deadline
            };
            tokio::time::sleep_until(wake.into()).await;
        }
    }
}

/// A connection's socket, telling its [`Activity`] when bytes move.
struct Watched<S> {
    inner: S,
    activity: Activity,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watched<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The guest's `handle` returned without answering.
#[derive(Debug, thiserror::Error)]
#[error("the handler returned without sending a response")]
struct NoResponse;

/// A component that serves HTTP.
pub struct HttpEntry {
    listener: String,
    pool: Arc<InstancePool>,
    handler: Handler,
    stats: Arc<ListenerStats>,
    /// The attributes every request's span carries.
    span_attributes: Vec<KeyValue>,
}

/// Which `wasi:http` handler the component exports.
enum Handler {
    /// WASI 0.2's `incoming-handler`.
    Incoming(ProxyIndices),
    /// WASI 0.3's `handler`.
    Service(ServiceIndices),
}

/// Who serves a listener, for its spans.
pub struct ListenerLabels<'a> {
    /// The app's name.
    pub app: &'a str,
    /// The version that serves it.
    pub version: &'a str,
    /// The group that serves it.
    pub group: &'a str,
}

impl HttpEntry {
    /// The entry of listener `listener`, served by `pool`'s component,
    /// counting its requests in `stats`.
    pub fn new(
        listener: &str,
        pool: Arc<InstancePool>,
        stats: Arc<ListenerStats>,
        labels: ListenerLabels<'_>,
    ) -> wasmtime::Result<HttpEntry> {
        let handler = match ProxyIndices::new(pool.instance_pre()) {
            Ok(indices) => Handler::Incoming(indices),
            Err(p2) => match ServiceIndices::new(pool.instance_pre()) {
                Ok(indices) => Handler::Service(indices),
                Err(_) => {
                    return Err(p2.context(
                        "it exports neither wasi:http/incoming-handler@0.2 nor \
                         wasi:http/handler@0.3",
                    ));
                }
            },
        };
        let span_attributes = vec![
            KeyValue::new("weft.app", labels.app.to_string()),
            KeyValue::new("weft.version", labels.version.to_string()),
            KeyValue::new("weft.group", labels.group.to_string()),
            KeyValue::new("weft.listener", listener.to_string()),
            KeyValue::new("weft.component", pool.name().to_string()),
        ];
        Ok(HttpEntry {
            listener: listener.to_string(),
            pool,
            handler,
            stats,
            span_attributes,
        })
    }

    /// Serves one request, and counts it by the status of its answer and
    /// the time to the answer's head.
    pub async fn handle(
        self: Arc<Self>,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<HyperOutgoingBody> {
        let started = Instant::now();
        // A server span that continues the request's `traceparent`.
        let parent = trace::extract(&HeaderExtractor(request.headers()));
        let method = request.method().to_string();
        let path = request.uri().path().to_string();
        let attributes = || {
            let mut attributes = self.span_attributes.clone();
            attributes.push(KeyValue::new("http.request.method", method.clone()));
            attributes.push(KeyValue::new("url.path", path.clone()));
            attributes
        };
        let spec = SpanSpec {
            name: &method,
            kind: SpanKind::Server,
            attributes: &attributes,
        };
        let cx = trace::child(&parent, &spec).unwrap_or(parent);
        let response = self.clone().answer(request).with_context(cx.clone()).await;
        let status = response.status().as_u16();
        self.stats.record(status, started.elapsed());
        if cx.span().is_recording() {
            cx.span().set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        let failed =
            (status >= 500).then_some(&"the component could not answer" as &dyn std::fmt::Display);
        trace::end(&cx, failed);
        response
    }

    async fn answer(
        self: Arc<Self>,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<HyperOutgoingBody> {
        // Checked here, before an instance is borrowed: wasi:http needs an
        // authority, and a malformed request is the client's fault.
        if request.uri().authority().is_none() && !request.headers().contains_key(HOST) {
            return self.error_response(400, "the request has no Host header");
        }
        let indices = match &self.handler {
            Handler::Incoming(indices) => indices.clone(),
            Handler::Service(indices) => {
                let indices = indices.clone();
                return self.answer_service(indices, request).await;
            }
        };
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let entry = self.clone();
        // The task runs in the request's span, as the guest's calls do.
        let task = tokio::spawn(async move {
            let call = entry.pool.with_instance(async |warm| {
                let proxy = indices.load(&mut warm.store, &warm.instance)?;
                let mut http = warm.store.data_mut().http();
                let request = http.new_incoming_request(Scheme::Http, request)?;
                let out = http.new_response_outparam(sender)?;
                let out_rep = out.rep();
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut warm.store, request, out)
                    .await?;
                // A guest that returns while still holding the response
                // outparam would keep the client waiting for ever: drop it
                // (the client gets a 500) and do not reuse the instance.
                let table = warm.store.data_mut().http().table;
                let leaked = Resource::<HostResponseOutparam>::new_own(out_rep);
                if table.get(&leaked).is_ok() {
                    table.delete(leaked)?;
                    return Err(wasmtime::Error::new(NoResponse));
                }
                Ok(())
            });
            let result = match tokio::time::timeout(entry.pool.host_wait_limit(), call).await {
                Ok(result) => result,
                Err(_) => Err(wasmtime::format_err!(
                    "component '{}' waited on the host for longer than {:?} (its call-timeout and a \
                     second of grace); the request was abandoned",
                    entry.pool.name(),
                    entry.pool.host_wait_limit()
                )),
            };
            if let Err(e) = &result {
                tracing::error!(
                    listener = %entry.listener,
                    component = %entry.pool.name(),
                    "request failed: {e:#}"
                );
            }
            result
        }
        .with_current_context());
        match receiver.await {
            Ok(Ok(response)) => response,
            Ok(Err(code)) => self.error_response(
                500,
                &format!("the handler answered with an error: {code:?}"),
            ),
            Err(_) => match task.await {
                Ok(Ok(())) => self.error_response(500, &NoResponse.to_string()),
                Ok(Err(e)) if e.downcast_ref::<NoResponse>().is_some() => {
                    self.error_response(500, &NoResponse.to_string())
                }
                Ok(Err(_)) => self.error_response(500, "the handler failed; see the weft log"),
                Err(_) => self.error_response(500, "the handler task was cancelled"),
            },
        }
    }

    /// Serves a request with WASI 0.3's `wasi:http/handler`: the handler
    /// answers with a response whose body the instance goes on writing, so
    /// the task drives the instance until its tasks are done, within the
    /// component's time limit.
    async fn answer_service(
        self: Arc<Self>,
        indices: ServiceIndices,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<HyperOutgoingBody> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let entry = self.clone();
        let task = tokio::spawn(
            async move {
                let pool = &entry.pool;
                let serve = async {
                    let mut warm = pool.borrow_instance().await?;
                    pool.run_on(&mut warm, async |warm| {
                        let service = indices.load(&mut warm.store, &warm.instance)?;
                        let (request, _io) = wasmtime_wasi_http::p3::Request::from_http(
                            warm.store.data_mut().http().hooks,
                            request,
                        );
                        warm.store
                            .run_concurrent(async |store| {
                                let response = match service.handle(store, request).await? {
                                    Ok(response) => response,
                                    Err(code) => {
                                        let _ = sender.send(Err(format!("{code:?}")));
                                        return Ok(());
                                    }
                                };
                                let response =
                                    store.with(|s| response.into_http(s, async { Ok(()) }))?;
                                let _ = sender.send(Ok(response));
                                // The body streams while the instance runs.
                                std::future::poll_fn(|cx| store.poll_no_interesting_tasks(cx))
                                    .await;
                                Ok::<(), wasmtime::Error>(())
                            })
                            .await?
                    })
                    .await?;
                    Ok::<_, wasmtime::Error>(warm)
                };
                match tokio::time::timeout(pool.host_wait_limit(), serve).await {
                    Ok(Ok(warm)) => pool.give_back(warm),
                    Ok(Err(e)) => tracing::error!(
                        listener = %entry.listener,
                        component = %pool.name(),
                        "request failed: {e:#}"
                    ),
                    Err(_) => tracing::error!(
                        listener = %entry.listener,
                        component = %pool.name(),
                        "the request was still running after {:?} (its call-timeout and a second \
                         of grace); it was stopped",
                        pool.host_wait_limit()
                    ),
                }
            }
            .with_current_context(),
        );
        match receiver.await {
            Ok(Ok(response)) => response,
            Ok(Err(code)) => {
                self.error_response(500, &format!("the handler answered with an error: {code}"))
            }
            Err(_) => {
                let _ = task.await;
                self.error_response(500, "the handler failed; see the weft log")
            }
        }
    }

    fn error_response(&self, status: u16, why: &str) -> hyper::Response<HyperOutgoingBody> {
        let body = format!("component '{}' could not answer: {why}\n", self.pool.name());
        text_response(status, body)
    }
}

/// A plain-text response, such as the explanation of an error status.
pub fn text_response<E: 'static>(
    status: u16,
    body: String,
) -> hyper::Response<http_body_util::combinators::UnsyncBoxBody<Bytes, E>> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(
            Full::new(Bytes::from(body))
                .map_err(|never: Infallible| match never {})
                .boxed_unsync(),
        )
        .expect("a static status and header are valid")
}

/// Serves `handler` on `listener`, the socket of listener `name`, within
/// `limits`, until `shutdown` resolves, then drains.
pub async fn serve<H, F, B>(
    listener: TcpListener,
    name: String,
    handler: H,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(hyper::Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = hyper::Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    // Set at shutdown: every answer from then on closes its connection.
    let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut refused_since_warning = 0u64;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(listener = %name, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            // Closed at once: the client sees its connection end.
            if refused_since_warning.is_multiple_of(100) {
                tracing::warn!(
                    listener = %name,
                    "{} connections are open, the most it keeps; closing new ones",
                    limits.max_connections
                );
            }
            refused_since_warning += 1;
            drop(stream);
            continue;
        };
        // A response leaves in several writes (its head, then the body as
        // the guest writes it). With Nagle's algorithm each write after the
        // first waits for the client's delayed ACK: 40 ms per request on a
        // kept-alive connection.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(listener = %name, "cannot set TCP_NODELAY: {e}");
        }
        let handler = handler.clone();
        let activity = Activity::new();
        let busy = activity.clone();
        let closing = closing.clone();
        let service = hyper::service::service_fn(move |request| {
            busy.set(Stage::Busy);
            let response = handler(request);
            let busy = busy.clone();
            let closing = closing.clone();
            async move {
                let mut response = response.await;
                if closing.load(std::sync::atomic::Ordering::SeqCst) {
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                busy.set(Stage::Idle);
                Ok::<_, Infallible>(response)
            }
        });
        let socket = Watched {
            inner: stream,
            activity: activity.clone(),
        };
        let conn = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(socket), service);
        let conn = graceful.watch(conn);
        let name = name.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            tokio::select! {
                ended = &mut conn => if let Err(e) = ended {
                    tracing::debug!("connection ended with an error: {e}");
                },
                why = activity.expired(limits) => {
                    tracing::debug!(listener = %name, "closing a connection: {why}");
                }
            }
            // The slot is free before the socket closes (when `conn` goes,
            // at the end of this task), so a client that sees its
            // connection end and opens another finds the slot free.
            drop(permit);
        });
    }
    drop(listener);
    closing.store(true, std::sync::atomic::Ordering::SeqCst);
    let gentle = Instant::now() + GENTLE_CLOSE;
    while open.available_permits() < limits.max_connections && Instant::now() < gentle {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = %name,
            "in-flight requests did not finish within {DRAIN_TIMEOUT:?}; closing them"
        );
    }
}
