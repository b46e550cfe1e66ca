//! The simulated cluster's API server, as pods see it: HTTPS on the
//! switch, with a CA of its own that every pod's ServiceAccount folder
//! holds, answering `GET /api/v1/namespaces/NS/configmaps/NAME` to a pod
//! whose token's ServiceAccount a RoleBinding lets read it, and 401 or 403
//! to others, as Kubernetes' RBAC does.

use super::{NAMESPACE, Shared};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;

/// The running API server.
pub(super) struct ApiServer {
    /// Where pods reach it.
    pub(super) address: SocketAddr,
    /// The certificate of the CA that signed its own, PEM.
    pub(super) ca_pem: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiServer {
    /// Serves `shared` on the switch's host address.
    pub(super) fn start(shared: Arc<Shared>) -> ApiServer {
        let ip = std::net::Ipv4Addr::new(10, shared.net, 0, 1);
        let (ca_pem, cert_pem, key_pem) = certificates(ip);
        let listener = std::net::TcpListener::bind((ip, 0)).expect("the API server binds");
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(serve(shared, listener, &cert_pem, &key_pem, stopped));
        });
        ApiServer {
            address,
            ca_pem,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A CA, and a certificate it signed for `ip`: (CA, certificate, key), PEM.
fn certificates(ip: std::net::Ipv4Addr) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![SanType::IpAddress(ip.into())];
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

async fn serve(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    cert_pem: &str,
    key_pem: &str,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    use rustls::pki_types::pem::PemObject as _;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
            _ = &mut stopped => return,
        };
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&shared, &request)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The answer to one request.
fn answer<B>(shared: &Shared, request: &hyper::Request<B>) -> hyper::Response<Full<Bytes>> {
    let reply = |status: u16, body: String| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let status = |code: u16, reason: &str, message: String| {
        let body = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": message, "reason": reason, "code": code,
        });
        reply(code, body.to_string())
    };
    let state = shared.state.lock().unwrap();
    let token = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(account) = token.and_then(|t| state.tokens.get(t.trim())) else {
        return status(401, "Unauthorized", "Unauthorized".into());
    };
    let path = request.uri().path();
    let prefix = format!("/api/v1/namespaces/{NAMESPACE}/configmaps/");
    let Some(name) = path.strip_prefix(&prefix) else {
        return status(
            404,
            "NotFound",
            format!("the simulated API server has no {path}"),
        );
    };
    if request.method() != hyper::Method::GET {
        return status(
            405,
            "MethodNotAllowed",
            "the simulated API server answers GET".into(),
        );
    }
    if !may_get(&state, account, name) {
        return status(
            403,
            "Forbidden",
            format!(
                "configmaps \"{name}\" is forbidden: User \
                 \"system:serviceaccount:{NAMESPACE}:{account}\" cannot get resource \
                 \"configmaps\" in API group \"\" in the namespace \"{NAMESPACE}\""
            ),
        );
    }
    match state.config_maps.get(name) {
        Some(map) => reply(200, serde_json::to_string(map).unwrap()),
        None => status(404, "NotFound", format!("configmaps \"{name}\" not found")),
    }
}

/// Whether a RoleBinding gives ServiceAccount `account` a Role that lets it
/// get ConfigMap `name`.
fn may_get(state: &super::State, account: &str, name: &str) -> bool {
    state.role_bindings.values().any(|binding| {
        let bound = binding.subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount"
                && s.name == account
                && s.namespace.as_deref().is_none_or(|ns| ns == NAMESPACE)
        });
        let role = (binding.role_ref.kind == "Role")
            .then(|| state.roles.get(&binding.role_ref.name))
            .flatten();
        bound
            && role.is_some_and(|role| {
                role.rules.iter().flatten().any(|rule| {
                    rule.api_groups.iter().flatten().any(|g| g.is_empty())
                        && rule.resources.iter().flatten().any(|r| r == "configmaps")
                        && rule.verbs.iter().any(|v| v == "get")
                        && rule
                            .resource_names
                            .as_ref()
                            .is_none_or(|names| names.iter().any(|n| n == name))
                })
            })
    })
}
