//! The state file of a running deployment: `.weft/deploy.json` beside the
//! manifest. The manager rewrites it whenever a worker (re)starts and
//! removes it when it stops; `weft status` and the tests read it to find the
//! manager's control address and the workers.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a running deployment says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployState {
    /// The app's name.
    pub app: String,
    /// The deployment's version.
    pub version: String,
    /// The manager's gRPC address (its key-value store, when the app has one).
    pub control: String,
    /// The manager's process id.
    pub pid: u32,
    /// Every replica of every group.
    pub workers: Vec<WorkerState>,
}

/// One worker process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerState {
    /// `GROUP/REPLICA`, such as `back/0`.
    pub name: String,
    /// Its group.
    pub group: String,
    /// The components it hosts.
    pub components: Vec<String>,
    /// Its gRPC address.
    pub address: String,
    /// Its listeners' loopback addresses, by listener name.
    pub listeners: std::collections::BTreeMap<String, String>,
    /// Its process id, while it runs.
    pub pid: Option<u32>,
}

impl DeployState {
    /// Where the state file of the app whose manifest is in `dir` lives.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(".weft").join("deploy.json")
    }

    /// Writes the file whole, through a rename, so a reader never sees half.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, text + "\n")?;
        std::fs::rename(partial, path)
    }

    /// Reads a state file.
    pub fn read(path: &Path) -> std::io::Result<DeployState> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }
}
