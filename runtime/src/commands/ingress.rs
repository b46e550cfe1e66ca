//! `weft ingress`: the app's listeners in a Kubernetes cluster, split
//! between versions by the weights of the traffic table. `weft kube`
//! writes its Deployment; see [`crate::cluster::ingress`].

use crate::cluster::api::{InCluster, SERVICE_ACCOUNT_DIR};
use crate::cluster::ingress::ClusterIngress;
use crate::kube::traffic::{INGRESS_FILE, IngressConfig};
use crate::rpc::Dialer;
use crate::rpc::identity::{Credentials, Role};
use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Serve the app's listeners in a cluster, sending each new request to a
/// version by the weights that `weft rollout --kube` sets.
#[derive(Debug, clap::Args)]
pub struct IngressCommand {
    /// The folder of `ingress.toml` (the mounted ConfigMap `A-ingress`).
    #[arg(long, value_name = "DIR")]
    pub config: PathBuf,
    /// The folder of the ingress's key and certificate (`ca.crt`, `tls.crt`,
    /// `tls.key`: its mounted TLS Secret `A-ingress-tls`), with which it asks
    /// the workers what they served.
    #[arg(long, value_name = "DIR")]
    pub tls_dir: PathBuf,
    /// The folder of the pod's ServiceAccount credentials, with which it
    /// reads the traffic table.
    #[arg(long, value_name = "DIR", default_value = SERVICE_ACCOUNT_DIR)]
    pub service_account: PathBuf,
    /// Serve `grpc.health.v1` alone, in plain text, here, for the kubelet's probes.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:7071")]
    pub probe_listen: SocketAddr,
    /// How the replica is named in its logs and reports, such as its pod's name.
    #[arg(long, default_value = "ingress")]
    pub name: String,
}

impl IngressCommand {
    /// Serves until SIGTERM or Ctrl-C, then lets the requests in flight finish.
    pub async fn execute(self) -> anyhow::Result<()> {
        let signal = super::run::shutdown_signal()?;
        let path = self.config.join(INGRESS_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let config = IngressConfig::from_str(&text, &path.display().to_string())?;
        let credentials = Credentials::read_dir(&self.tls_dir)
            .with_context(|| format!("--tls-dir {}", self.tls_dir.display()))?;
        anyhow::ensure!(
            credentials.identity.role == Role::Ingress && credentials.identity.app == config.app,
            "--tls-dir {}: the certificate names {}, not the ingress of app '{}'; give it the \
             Secret {}-ingress-tls that `weft kube --secret` makes",
            self.tls_dir.display(),
            credentials.identity,
            config.app,
            config.app
        );
        let api = InCluster::from_pod(&self.service_account)
            .with_context(|| format!("--service-account {}", self.service_account.display()))?;
        let mut listeners = Vec::new();
        for (name, l) in &config.listeners {
            let socket = crate::app::bind_listener(name, l.address).await?;
            listeners.push((name.clone(), socket));
        }
        let status_address = SocketAddr::from(([0, 0, 0, 0], config.status_port));
        let status = tokio::net::TcpListener::bind(status_address)
            .await
            .with_context(|| format!("cannot serve the status answers on {status_address}"))?;
        let probes = tokio::net::TcpListener::bind(self.probe_listen)
            .await
            .with_context(|| {
                format!("--probe-listen {}: cannot listen there", self.probe_listen)
            })?;
        let ingress = ClusterIngress::new(&self.name, config, api, Dialer::new(credentials)).await;
        ingress.serve(listeners, status, probes, signal).await;
        say!("weft ingress {}: stopped", self.name);
        Ok(())
    }
}
