//! Outgoing HTTP, allowed only to the hosts in `grants.outgoing-http`, and
//! sent by [`send`] on sockets with `TCP_NODELAY`.

mod send;

use super::{HostState, Sandbox};
use crate::capability::{Capability, ComponentContext, Parts};
use crate::engine::Concurrency;
use crate::manifest::{Grants, HostPattern};
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// `wasi:http/outgoing-handler`: requests to the granted hosts only.
pub struct OutgoingHttp;

/// The hosts one component may send requests to.
struct Allowed(Arc<[HostPattern]>);

impl Capability for OutgoingHttp {
    fn name(&self) -> &'static str {
        "outgoing-http"
    }

    fn serves(&self, interface: &str) -> bool {
        // WASI 0.2's name, and WASI 0.3's.
        matches!(interface, "wasi:http/outgoing-handler" | "wasi:http/client")
    }

    fn is_granted(&self, grants: &Grants) -> bool {
        !grants.outgoing_http.is_empty()
    }

    fn grant_example(&self) -> Option<&'static str> {
        Some("outgoing-http = [\"example.com:443\"]")
    }

    fn link(
        &self,
        linker: &mut Linker<HostState>,
        concurrency: Concurrency,
    ) -> wasmtime::Result<()> {
        wasmtime_wasi_http::p2::bindings::http::outgoing_handler::add_to_linker::<
            _,
            wasmtime_wasi_http::WasiHttp,
        >(linker, HostState::http)?;
        if concurrency == Concurrency::On {
            // The same hooks check every request against the grant.
            wasmtime_wasi_http::p3::bindings::http::client::add_to_linker::<
                _,
                wasmtime_wasi_http::WasiHttp,
            >(linker, HostState::http)?;
        }
        Ok(())
    }

    fn sandbox(&self, component: &ComponentContext<'_>, parts: &mut Parts) {
        let hosts = component.spec.grants.outgoing_http.iter();
        parts.insert(Allowed(
            hosts
                .map(|h| HostPattern::parse(h).expect("checked by the manifest"))
                .collect(),
        ));
    }
}

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
            allowed: sandbox
                .parts
                .get::<Allowed>()
                .map_or_else(|| Arc::from([]), |a| a.0.clone()),
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
