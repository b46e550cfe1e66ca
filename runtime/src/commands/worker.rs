//! `weft worker`: one replica of one group, started by a manager, by
//! Kubernetes, or by a service manager on a plain machine.

use crate::cache::CompileCache;
use crate::deploy::cluster::ConfigDir;
use crate::deploy::worker::{ConfigLaunch, Worker};
use crate::rpc::Dialer;
use crate::rpc::connect::ServerSecurity;
use crate::rpc::identity::{Credentials, MAX_LINE};
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::io::AsyncReadExt as _;

/// Host one replica of one group: for a manager (`weft deploy` starts these,
/// and writes the worker's key and certificate on standard input), or on
/// its own from a config folder written by `weft kube` (`--config`).
#[derive(Debug, clap::Args)]
pub struct WorkerCommand {
    /// How log lines are written: text, or one JSON object per line on stderr.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t)]
    pub log_format: crate::telemetry::logs::LogFormat,
    /// The address of the worker's gRPC services. Required with a manager;
    /// with --config it defaults to every interface, on cluster.toml's port.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// How the worker is named in its logs, such as back/0 or a pod's name.
    #[arg(long, default_value = "worker")]
    pub name: String,
    /// Exit when standard input closes: the manager that started it is gone.
    #[arg(long)]
    pub exit_with_stdin: bool,
    /// Run without a manager, from this folder: weft.toml, plan.toml and
    /// cluster.toml, as `weft kube` writes them (a mounted ConfigMap, or
    /// `weft kube --write-config DIR`).
    #[arg(long, value_name = "DIR", requires_all = ["group", "tls_dir"])]
    pub config: Option<PathBuf>,
    /// With --config: the group to serve.
    #[arg(long, value_name = "GROUP", requires = "config")]
    pub group: Option<String>,
    /// With --config: the folder of the component binaries that weft.toml
    /// names.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/opt/weft/components",
        requires = "config"
    )]
    pub components: PathBuf,
    /// With --config: the folder of the group's key and certificate
    /// (`ca.crt`, `tls.crt`, `tls.key`: its mounted TLS Secret, which
    /// `weft kube --secret` makes).
    #[arg(long, value_name = "DIR", requires = "config")]
    pub tls_dir: Option<PathBuf>,
    /// With --config: also serve `grpc.health.v1` alone, in plain text, on
    /// this address, for Kubernetes' probes, which cannot present a
    /// certificate (`weft kube` passes 0.0.0.0:7071).
    #[arg(long, value_name = "ADDR", requires = "config")]
    pub probe_listen: Option<SocketAddr>,
    /// With --config: fixed replica addresses for the groups it calls,
    /// instead of their Services' DNS names, as GROUP=HOST:PORT; repeat
    /// the group for each replica (`--peers back=10.0.0.2:7070,back=10.0.0.3:7070`).
    #[arg(long, value_name = "GROUP=HOST:PORT,...", requires = "config")]
    pub peers: Vec<String>,
    /// Where compiled components are cached.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// A listener's socket that the manager passed down, as LISTENER=FD;
    /// the worker accepts on it while the manager says so. Only a manager
    /// passes these.
    #[arg(long, value_name = "LISTENER=FD", conflicts_with = "config")]
    pub listener_fd: Vec<String>,
    /// With --config: the compiled code the image carries (`weft kube
    /// --containerfile` puts it in /opt/weft/compiled), loaded instead of
    /// compiling when it is for this weft's engine.
    #[arg(long, value_name = "DIR", requires = "config")]
    pub compiled: Option<PathBuf>,
}

impl WorkerCommand {
    /// Serves until the manager says stop, SIGTERM, or (with
    /// `--exit-with-stdin`) the end of standard input.
    pub async fn execute(self) -> anyhow::Result<()> {
        let signal = super::run::shutdown_signal()?;
        let (credentials, listen, probe, launch) = match &self.config {
            Some(config) => {
                let tls_dir = self.tls_dir.clone().expect("clap requires it");
                let credentials = Credentials::read_dir(&tls_dir)
                    .with_context(|| format!("--tls-dir {}", tls_dir.display()))?;
                let cluster = ConfigDir {
                    dir: config.clone(),
                }
                .cluster()?;
                let listen = self
                    .listen
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], cluster.port)));
                let launch = ConfigLaunch {
                    config: config.clone(),
                    cluster,
                    components: self.components.clone(),
                    group: self.group.clone().expect("clap requires it"),
                    peers: parse_peers(&self.peers)?,
                    cache_dir: self
                        .cache_dir
                        .clone()
                        .unwrap_or_else(CompileCache::default_dir),
                    compiled: self.compiled.clone(),
                };
                (credentials, listen, self.probe_listen, Some(launch))
            }
            None => {
                let listen = self.listen.context(
                    "--listen ADDR is needed when a manager starts the worker; to run one on \
                     its own, give --config DIR --group GROUP --tls-dir DIR",
                )?;
                let credentials = read_credentials().await.with_context(|| {
                    format!(
                        "worker {}: the first line of standard input must be its credentials \
                         (the manager writes them there)",
                        self.name
                    )
                })?;
                (credentials, listen, None, None)
            }
        };
        let socket = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("worker {}: cannot listen on {listen}", self.name))?;
        let exit_with_stdin = self.exit_with_stdin;
        let shutdown = async move {
            tokio::select! {
                () = signal => {}
                () = stdin_closed(), if exit_with_stdin => {}
            }
        };
        let probe = match probe {
            Some(address) => Some(tokio::net::TcpListener::bind(address).await.with_context(
                || format!("worker {}: cannot serve its probes on {address}", self.name),
            )?),
            None => None,
        };
        let mut sockets = BTreeMap::new();
        let mut seen = std::collections::BTreeSet::new();
        for value in &self.listener_fd {
            anyhow::ensure!(
                seen.insert(value.rsplit_once('=').map_or(value.as_str(), |(_, fd)| fd)),
                "worker {}: --listener-fd {value}: that descriptor was given twice",
                self.name
            );
            // SAFETY: a manager passes each listener's descriptor to this
            // process once (checked above), for it alone to own.
            let (listener, socket) = unsafe { crate::handoff::adopt(value) }
                .with_context(|| format!("worker {}", self.name))?;
            sockets.insert(listener, socket);
        }
        let worker = Worker::new(
            &self.name,
            Dialer::new(credentials.clone()),
            ServerSecurity::new(credentials),
            sockets,
        )
        .await;
        if let Some(probe) = probe {
            worker.serve_probes(probe);
        }
        if let Some(launch) = launch {
            worker.launch_from_config(launch);
        }
        worker
            .serve(socket, shutdown)
            .await
            .with_context(|| format!("worker {}", self.name))?;
        say!("weft worker {}: stopped", self.name);
        Ok(())
    }
}

/// `--peers` values: `GROUP=HOST:PORT` pairs, comma-separated, by group.
fn parse_peers(values: &[String]) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut peers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in values
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|p| !p.is_empty())
    {
        let parsed = pair.split_once('=').and_then(|(group, address)| {
            let (host, port) = address.rsplit_once(':')?;
            (!group.is_empty() && !host.is_empty() && port.parse::<u16>().is_ok())
                .then(|| (group.to_string(), address.to_string()))
        });
        let (group, address) = parsed.with_context(|| {
            format!("--peers: '{pair}' is not GROUP=HOST:PORT, such as back=10.0.0.2:7070")
        })?;
        peers.entry(group).or_default().push(address);
    }
    Ok(peers)
}

/// The credentials on the first line of standard input.
async fn read_credentials() -> anyhow::Result<Credentials> {
    let mut line = Vec::new();
    let mut stdin = tokio::io::stdin();
    let mut byte = [0u8; 1];
    // Byte by byte: nothing past the line may be taken from the pipe, whose
    // end later tells the worker that its manager is gone.
    while line.len() <= MAX_LINE && stdin.read(&mut byte).await? == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    anyhow::ensure!(!line.is_empty(), "no credentials were given");
    Credentials::from_line(&String::from_utf8_lossy(&line))
}

/// Resolves when standard input reaches its end or fails.
async fn stdin_closed() {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while let Ok(n) = stdin.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_group_address_pairs() {
        let peers = parse_peers(&[
            "back=10.0.0.2:7070,back=10.0.0.3:7070".into(),
            "db=db.internal:7070".into(),
        ])
        .unwrap();
        assert_eq!(peers["back"], ["10.0.0.2:7070", "10.0.0.3:7070"]);
        assert_eq!(peers["db"], ["db.internal:7070"]);
        for bad in ["back", "back=10.0.0.2", "=h:1", "back=h:port"] {
            let err = parse_peers(&[bad.into()]).unwrap_err().to_string();
            assert!(err.contains("GROUP=HOST:PORT"), "{bad}: {err}");
        }
    }
}
