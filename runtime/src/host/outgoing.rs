//! Outgoing HTTP, allowed only to the hosts in `grants.outgoing-http`, and
//! sent by [`send`] on sockets with `TCP_NODELAY`.

mod send;

use super::Sandbox;
use crate::manifest::HostPattern;
use std::sync::Arc;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The `wasi:http` hooks of one instance: every request is checked against
/// the component's granted hosts before it leaves.
pub struct OutgoingPolicy {
    component: String,
    allowed: Arc<[HostPattern]>,
}

impl OutgoingPolicy {
    /// The policy of the sandbox's component.
    pub fn new(sandbox: &Sandbox) -> OutgoingPolicy {
        OutgoingPolicy {
            component: sandbox.name.clone(),
            allowed: sandbox.outgoing.clone(),
        }
    }

    /// Whether a request to `uri` may leave.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let Some(host) = uri.host() else { return false };
        let default_port = if uri.scheme() == Some(&http::uri::Scheme::HTTP) {
            80
        } else {
            443
        };
        let port = uri.port_u16().unwrap_or(default_port);
        self.allowed.iter().any(|p| p.allows(host, port))
    }
}

type ResponseFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, send::Driver), Error>> + Send>;

impl WasiHttpHooks for OutgoingPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        if !self.allows(request.uri()) {
            tracing::warn!(
                component = %self.component,
                uri = %request.uri(),
                "outgoing HTTP request denied: the host is not in grants.outgoing-http"
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        Box::new(send::send(request, options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_granted_hosts_and_ports_pass() {
        let policy = OutgoingPolicy {
            component: "c".into(),
            allowed: vec![
                HostPattern::parse("example.com:443").unwrap(),
                HostPattern::parse("127.0.0.1:8081").unwrap(),
            ]
            .into(),
        };
        let allows = |uri: &str| policy.allows(&uri.parse().unwrap());
        assert!(allows("https://example.com/x"));
        assert!(!allows("http://example.com/x"));
        assert!(allows("http://127.0.0.1:8081/"));
        assert!(!allows("http://127.0.0.1:8082/"));
        assert!(!allows("https://evil.example.com/"));
    }
}
