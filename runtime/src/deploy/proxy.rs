//! The manager's side of a listener: an HTTP proxy that spreads requests
//! over the replicas that serve the listener's component.
//!
//! Each request goes to the next replica in turn. A replica that refuses the
//! connection (its worker is restarting) is skipped, since nothing reached
//! it; a request that fails after it was sent is not retried, and gets a 502.

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::TcpStream;

/// The body of a proxied response.
pub type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// One listener's proxy.
pub struct Proxy {
    listener: String,
    component: String,
    replicas: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl Proxy {
    /// A proxy for `listener`, whose `component` runs behind `replicas`.
    pub fn new(listener: &str, component: &str, replicas: Vec<SocketAddr>) -> Proxy {
        Proxy {
            listener: listener.to_string(),
            component: component.to_string(),
            replicas,
            next: AtomicUsize::new(0),
        }
    }

    /// Forwards one request and returns the replica's response.
    pub async fn handle(
        self: std::sync::Arc<Self>,
        request: hyper::Request<Incoming>,
    ) -> hyper::Response<ProxyBody> {
        let Some((address, stream)) = self.connect().await else {
            return self.error(
                503,
                "no replica accepted a connection; its workers may be restarting, try again",
            );
        };
        let (mut sender, connection) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(pair) => pair,
                Err(e) => return self.error(502, &format!("replica {address}: {e}")),
            };
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("proxied connection ended with an error: {e}");
            }
        });
        match sender.send_request(request).await {
            Ok(response) => response.map(BodyExt::boxed_unsync),
            Err(e) => {
                tracing::warn!(
                    listener = %self.listener,
                    "replica {address} failed during a request: {e}"
                );
                self.error(
                    502,
                    &format!("the replica at {address} failed during the request: {e}"),
                )
            }
        }
    }

    /// A connection to the first replica, in turn, that accepts one.
    async fn connect(&self) -> Option<(SocketAddr, TcpStream)> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.replicas.len();
        for i in 0..n {
            let address = self.replicas[(start + i) % n];
            match TcpStream::connect(address).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Some((address, stream));
                }
                Err(e) => tracing::debug!("replica {address} of '{}': {e}", self.component),
            }
        }
        None
    }

    fn error(&self, status: u16, why: &str) -> hyper::Response<ProxyBody> {
        let body = format!(
            "listener '{}' could not reach component '{}': {why}\n",
            self.listener, self.component
        );
        crate::listener::text_response(status, body)
    }
}
