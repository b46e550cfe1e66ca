//! The little of the Kubernetes API that weft's ingress needs from inside a
//! pod: reading one ConfigMap, as its ServiceAccount, over HTTPS.
//!
//! Credentials come the way Kubernetes mounts them in every pod: the
//! ServiceAccount's token, the cluster's CA certificate and the pod's
//! namespace in one folder (`/var/run/secrets/kubernetes.io/serviceaccount`),
//! and the API server's address in `KUBERNETES_SERVICE_HOST` and
//! `KUBERNETES_SERVICE_PORT`. The token is read again for every request,
//! since the kubelet rotates it.

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::ConfigMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where Kubernetes mounts a pod's ServiceAccount credentials.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How long one request to the API server may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest answer read: a ConfigMap is at most 1 MiB.
const MAX_ANSWER: usize = 2 << 20;

/// A client of the API server, as the pod's ServiceAccount.
#[derive(Clone)]
pub struct InCluster {
    host: String,
    port: u16,
    token_file: PathBuf,
    /// The pod's namespace.
    pub namespace: String,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for InCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "InCluster({}:{}, {})",
            self.host, self.port, self.namespace
        )
    }
}

impl InCluster {
    /// The client of the pod that has `dir` as its ServiceAccount folder,
    /// and the API server's address in its environment.
    pub fn from_pod(dir: &Path) -> anyhow::Result<InCluster> {
        let var = |name: &str| {
            std::env::var(name).with_context(|| {
                format!(
                    "${name} is not set: weft ingress runs in a Kubernetes pod, where the kubelet \
                     sets it"
                )
            })
        };
        let host = var("KUBERNETES_SERVICE_HOST")?;
        let port = var("KUBERNETES_SERVICE_PORT")?;
        let port: u16 = port
            .parse()
            .with_context(|| format!("$KUBERNETES_SERVICE_PORT: '{port}' is not a port"))?;
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "cannot read {}; the pod needs its ServiceAccount's credentials mounted \
                     (automountServiceAccountToken)",
                    path.display()
                )
            })
        };
        let namespace = read("namespace")?.trim().to_string();
        let ca = read("ca.crt")?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(ca.as_bytes()) {
            let cert: rustls::pki_types::CertificateDer<'static> = cert.with_context(|| {
                format!("{}: not a PEM certificate", dir.join("ca.crt").display())
            })?;
            roots.add(cert).with_context(|| {
                format!(
                    "{}: a certificate rustls cannot use",
                    dir.join("ca.crt").display()
                )
            })?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("cannot set up TLS")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(InCluster {
            host,
            port,
            token_file: dir.join("token"),
            namespace,
            tls: Arc::new(tls),
        })
    }

    /// The ConfigMap `name` of the pod's namespace, if there is one.
    pub async fn config_map(&self, name: &str) -> anyhow::Result<Option<ConfigMap>> {
        let path = format!("/api/v1/namespaces/{}/configmaps/{name}", self.namespace);
        match tokio::time::timeout(REQUEST_TIMEOUT, self.get(&path)).await {
            Ok(Ok((404, _))) => Ok(None),
            Ok(Ok((200, body))) => serde_json::from_slice(&body)
                .map(Some)
                .with_context(|| format!("the API server's answer to GET {path} is no ConfigMap")),
            Ok(Ok((status, body))) => anyhow::bail!(
                "the API server answered GET {path} with {status}: {}",
                crate::telemetry::logs::escaped(&String::from_utf8_lossy(&body))
            ),
            Ok(Err(e)) => Err(e.context(format!("GET {path} from the API server"))),
            Err(_) => anyhow::bail!(
                "GET {path}: the API server did not answer within {} s",
                REQUEST_TIMEOUT.as_secs()
            ),
        }
    }

    async fn get(&self, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let token = std::fs::read_to_string(&self.token_file)
            .with_context(|| format!("cannot read {}", self.token_file.display()))?;
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("cannot connect to {}:{}", self.host, self.port))?;
        let name = self.host.trim_start_matches('[').trim_end_matches(']');
        let name = rustls::pki_types::ServerName::try_from(name.to_string())
            .with_context(|| format!("'{}' is not a host name", self.host))?;
        let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, stream)
            .await
            .context("TLS with the API server")?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let request = http::Request::get(path)
            .header(http::header::HOST, &self.host)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.trim()),
            )
            .body(Empty::<bytes::Bytes>::new())?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
            .to_bytes();
        Ok((status, body.to_vec()))
    }
}
