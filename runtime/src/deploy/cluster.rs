//! `cluster.toml`: how the workers of one version run without a manager, on
//! Kubernetes or on plain machines.
//!
//! `weft kube` writes it into the version's ConfigMap, beside the manifest
//! (`weft.toml`, whose `wasm` paths are file names in the components
//! folder) and the plan (`plan.toml`). `weft worker --config DIR --group G`
//! reads the three files, loads its group, and finds the other groups'
//! replicas through the names given here:
//!
//! ```toml
//! app = "hello"
//! version = "3f2a9c01b7d4e512"
//! port = 7070
//!
//! [groups.greeter]
//! service = "hello-greeter-3f2a9c01"
//!
//! [listeners.web]
//! address = "0.0.0.0:8080"
//! ```
//!
//! Parsing is pure ([`ClusterConfig::from_str`]); the files are read by
//! [`ConfigDir`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The gRPC port of every worker outside a manager: its `Invoke` service,
/// and the `grpc.health.v1` service that probes and peers ask.
pub const WORKER_PORT: u16 = 7070;
/// The port of a worker's probe-only, plain-text `grpc.health.v1`, for the
/// kubelet's probes, which cannot present a certificate.
pub const PROBE_PORT: u16 = WORKER_PORT + 1;

/// The file names inside a config folder.
pub const MANIFEST_FILE: &str = "weft.toml";
/// See [`MANIFEST_FILE`].
pub const PLAN_FILE: &str = "plan.toml";
/// See [`MANIFEST_FILE`].
pub const CLUSTER_FILE: &str = "cluster.toml";

/// What `cluster.toml` says.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The app's name.
    pub app: String,
    /// The version these files make; a worker refuses files that make
    /// another.
    pub version: String,
    /// The gRPC port of every worker.
    pub port: u16,
    /// How to find each group's replicas, by group.
    pub groups: BTreeMap<String, GroupPeers>,
    /// Where each listener is served, by listener.
    #[serde(default)]
    pub listeners: BTreeMap<String, ListenerBinding>,
}

/// How to find one group's replicas.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupPeers {
    /// A DNS name that resolves to one address per ready replica (a
    /// headless Service of this group and version).
    pub service: String,
}

/// Where a listener is served inside its worker's pod.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerBinding {
    /// The address to bind, such as `0.0.0.0:8080`.
    pub address: SocketAddr,
}

impl ClusterConfig {
    /// Parses `cluster.toml`; `origin` names the file in errors.
    pub fn from_str(text: &str, origin: &Path) -> anyhow::Result<ClusterConfig> {
        toml::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "{}: {}; it is written by weft kube, write it again rather than by hand",
                origin.display(),
                e.to_string().trim_end()
            )
        })
    }

    /// The file's text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a cluster config serializes")
    }
}

/// A config folder: a mounted ConfigMap, or a folder written for plain
/// machines.
#[derive(Debug, Clone)]
pub struct ConfigDir {
    /// The folder.
    pub dir: PathBuf,
}

impl ConfigDir {
    /// The manifest's path.
    pub fn manifest(&self) -> PathBuf {
        self.dir.join(MANIFEST_FILE)
    }

    /// The plan's text.
    pub fn plan_text(&self) -> anyhow::Result<String> {
        read(&self.dir.join(PLAN_FILE))
    }

    /// The cluster config.
    pub fn cluster(&self) -> anyhow::Result<ClusterConfig> {
        let path = self.dir.join(CLUSTER_FILE);
        ClusterConfig::from_str(&read(&path)?, &path)
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read {}: {e}; --config must name the folder where weft kube's ConfigMap \
             (weft.toml, plan.toml, cluster.toml) is mounted",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_files_round_trip() {
        let text = "app = \"hello\"\nversion = \"3f2a9c01b7d4e512\"\nport = 7070\n\n\
                    [groups.greeter]\nservice = \"hello-greeter-3f2a9c01\"\n\n\
                    [listeners.web]\naddress = \"0.0.0.0:8080\"\n";
        let config = ClusterConfig::from_str(text, Path::new("cluster.toml")).unwrap();
        assert_eq!(config.groups["greeter"].service, "hello-greeter-3f2a9c01");
        assert_eq!(config.listeners["web"].address.port(), 8080);
        assert_eq!(
            ClusterConfig::from_str(&config.to_toml(), Path::new("again")).unwrap(),
            config
        );
        let err = ClusterConfig::from_str("app = 1", Path::new("/etc/weft/cluster.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/etc/weft/cluster.toml: "), "{err}");
    }
}
