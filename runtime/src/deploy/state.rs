//! The state of a running deployment: what `weft status` shows, and the
//! file `.weft/deploy.json` beside the manifest, in which the manager says
//! where it is. The manager keeps it in a [`StateBook`], which rewrites the
//! file on every change and removes it when the deployment ends.

use crate::telemetry::window::CallRate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a running deployment says about itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeployState {
    /// The app's name.
    pub app: String,
    /// The version that serves (during a rollout, the one it started from).
    pub version: String,
    /// The manager's gRPC address: its control service and key-value store.
    pub control: String,
    /// The manager's process id.
    pub pid: u32,
    /// The listeners' addresses, by name.
    #[serde(default)]
    pub listeners: BTreeMap<String, String>,
    /// Who accepts the listeners' connections now.
    #[serde(default)]
    pub accepting: Accepting,
    /// Every running version.
    #[serde(default)]
    pub versions: Vec<VersionState>,
    /// Every worker of every running version.
    pub workers: Vec<WorkerState>,
    /// The rollout under way, if any.
    #[serde(default)]
    pub rollout: Option<RolloutState>,
    /// Every method called in the last minute, with its rates (only in
    /// the manager's live answer, not in the file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<CallRate>,
    /// The manager's embedded key-value store, when a running version uses
    /// it (only in the manager's live answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyvalue: Option<StoreState>,
    /// A better plan the manager proposes, if any (only in the manager's
    /// live answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<super::proposal::Proposal>,
}

/// Whether the embedded key-value store serves, and where it is open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreState {
    /// Whether its last call succeeded.
    pub healthy: bool,
    /// Why it fails, while it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The process that holds its file: `manager`, or the worker
    /// (`GROUP/REPLICA`) that is the only process that uses it.
    #[serde(default)]
    pub held_by: String,
    /// Calls the manager served from it, for workers.
    #[serde(default)]
    pub manager_calls: u64,
}

/// Who accepts the listeners' connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accepting {
    /// The workers of the one running version, on the sockets the manager
    /// passed them: a request does not pass through the manager.
    #[default]
    Workers,
    /// The manager's ingress, which splits requests between versions by
    /// weight, during a rollout.
    Ingress,
}

/// What a version is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Its workers are starting.
    Starting,
    /// It takes requests (its weight says how many).
    Serving,
    /// It takes no new requests and is finishing the ones it has.
    Draining,
}

/// One running version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionState {
    /// The version.
    pub version: String,
    /// What it is doing.
    pub phase: Phase,
    /// Its share of new requests at the listeners, in percent.
    pub weight: u8,
    /// Its plan's groups: each group's components.
    pub groups: BTreeMap<String, Vec<String>>,
    /// The groups whose components are composed into one (`fuse = true`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fused: Vec<String>,
    /// Requests it answered at the listeners, as its workers counted them
    /// (in the manager's live answer; the file keeps those the ingress
    /// forwarded).
    pub requests: u64,
    /// Of `requests`, those answered with a 5xx.
    pub failed_requests: u64,
    /// Of `requests`, those that came through the manager's ingress (which
    /// accepts only during a rollout); the rest its workers accepted
    /// themselves.
    #[serde(default)]
    pub forwarded: u64,
}

/// One worker process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerState {
    /// `GROUP/REPLICA`, such as `back/0`.
    pub name: String,
    /// The version it runs.
    #[serde(default)]
    pub version: String,
    /// Its group.
    pub group: String,
    /// The components it hosts.
    pub components: Vec<String>,
    /// Its gRPC address.
    pub address: String,
    /// Its listeners' loopback addresses, by listener name.
    pub listeners: BTreeMap<String, String>,
    /// Its process id, while it runs.
    pub pid: Option<u32>,
    /// Whether it answers its health checks and takes requests.
    #[serde(default)]
    pub healthy: bool,
    /// How often it has been restarted.
    #[serde(default)]
    pub restarts: u32,
}

/// A rollout under way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutState {
    /// The version traffic moves from.
    pub from: String,
    /// The version traffic moves to.
    pub to: String,
    /// The steps, in percent of new requests to `to`.
    pub steps: Vec<u8>,
    /// The step reached, counted from 1.
    pub step: usize,
    /// `to`'s share now, in percent.
    pub percent: u8,
    /// Failed and total requests at the listeners in the gate's window,
    /// for `from` and for `to`.
    pub window: [(u64, u64); 2],
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
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, self.to_json() + "\n")?;
        std::fs::rename(partial, path)
    }

    /// Reads a state file.
    pub fn read(path: &Path) -> std::io::Result<DeployState> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }

    /// The state as pretty JSON, as `weft status --json` prints it.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the state serializes")
    }

    /// The worker `name` of `version`.
    pub fn worker_mut(&mut self, version: &str, name: &str) -> Option<&mut WorkerState> {
        self.workers
            .iter_mut()
            .find(|w| w.version == version && w.name == name)
    }

    /// The running version `version`.
    pub fn version_mut(&mut self, version: &str) -> Option<&mut VersionState> {
        self.versions.iter_mut().find(|v| v.version == version)
    }
}

/// The deployment's state, kept by the manager and written to its file on
/// every change.
#[derive(Debug)]
pub struct StateBook {
    path: PathBuf,
    state: Mutex<DeployState>,
}

impl StateBook {
    /// A book that starts from `state` and writes it at `path`.
    pub fn new(path: PathBuf, state: DeployState) -> StateBook {
        let book = StateBook {
            path,
            state: Mutex::new(state),
        };
        book.update(|_| {});
        book
    }

    /// Changes the state and writes the file; a failure to write is
    /// logged, not fatal.
    pub fn update(&self, change: impl FnOnce(&mut DeployState)) {
        // The lock is held while writing, so that writers take turns.
        let mut state = self.state.lock().expect("state lock");
        change(&mut state);
        if let Err(e) = state.write(&self.path) {
            tracing::warn!("cannot write {}: {e}", self.path.display());
        }
    }

    /// A copy of the state now.
    pub fn snapshot(&self) -> DeployState {
        self.state.lock().expect("state lock").clone()
    }

    /// Removes the file, unless another deployment has written it since.
    pub fn remove_file(&self) {
        let state = self.state.lock().expect("state lock");
        if DeployState::read(&self.path).is_ok_and(|s| s.pid == state.pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl DeployState {
    /// The state as `weft status` prints it for people: the app, its
    /// versions, its workers and the rollout under way.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |text: String| {
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(format!(
            "app {}: manager pid {}, control on {}",
            self.app, self.pid, self.control
        ));
        let accepted_by = match self.accepting {
            Accepting::Workers => "its version's workers",
            Accepting::Ingress => "the manager's ingress (for the rollout)",
        };
        for (name, address) in &self.listeners {
            line(format!(
                "listener {name} on http://{address}, accepted by {accepted_by}"
            ));
        }
        match &self.keyvalue {
            Some(StoreState {
                error: Some(why),
                held_by,
                ..
            }) => {
                line(format!("key-value store (in {held_by}): DOWN: {why}"));
            }
            Some(store) => line(format!("key-value store (in {}): healthy", store.held_by)),
            None => {}
        }
        line(String::new());
        line(format!(
            "{:<18}{:<10}{:>7}{:>10}{:>7}  GROUPS",
            "VERSION", "STATE", "WEIGHT", "REQUESTS", "5XX"
        ));
        for v in &self.versions {
            let phase = match v.phase {
                Phase::Starting => "starting",
                Phase::Serving => "serving",
                Phase::Draining => "draining",
            };
            let groups: Vec<String> = v
                .groups
                .iter()
                .map(|(g, components)| {
                    let fused = if v.fused.contains(g) { ", fused" } else { "" };
                    format!("{g}({}{fused})", components.join(","))
                })
                .collect();
            line(format!(
                "{:<18}{:<10}{:>6}%{:>10}{:>7}  {}",
                v.version,
                phase,
                v.weight,
                v.requests,
                v.failed_requests,
                groups.join(" ")
            ));
        }
        line(String::new());
        line(format!(
            "{:<16}{:<18}{:<10}{:>8}  {:<10}{:>8}  ADDRESS",
            "WORKER", "VERSION", "GROUP", "PID", "HEALTH", "RESTARTS"
        ));
        for w in &self.workers {
            line(format!(
                "{:<16}{:<18}{:<10}{:>8}  {:<10}{:>8}  {}",
                w.name,
                w.version,
                w.group,
                w.pid.map_or("-".to_string(), |p| p.to_string()),
                if w.healthy { "healthy" } else { "down" },
                w.restarts,
                w.address
            ));
        }
        if !self.methods.is_empty() {
            line(String::new());
            line(format!(
                "{:<40}{:<8}{:>9}{:>7}{:>10}{:>10}  VERSION",
                "CALL (LAST MINUTE)", "WHERE", "CALLS/S", "ERR%", "P50 MS", "P99 MS"
            ));
            for m in &self.methods {
                line(format!(
                    "{:<40}{:<8}{:>9.1}{:>7.1}{:>10.3}{:>10.3}  {}",
                    format!("{} -> {}.{}", m.key.caller, m.key.component, m.key.method),
                    if m.key.remote { "remote" } else { "local" },
                    m.calls_per_s,
                    m.error_pct,
                    m.p50_ms,
                    m.p99_ms,
                    m.key.version
                ));
            }
        }
        if let Some(p) = &self.proposal {
            line(String::new());
            let groups: Vec<String> = p
                .groups
                .iter()
                .map(|(name, components)| format!("{name}: {}", components.join(", ")))
                .collect();
            line(format!(
                "proposal: a plan with {:.1} ms of calls between processes per second instead of \
                 {:.1} (over the last {:.0} s): {}",
                p.proposed_ms_per_s,
                p.running_ms_per_s,
                p.window_s,
                groups.join("; ")
            ));
            line(format!("  apply it: weft rollout --plan {}", p.plan_file));
        }
        if let Some(r) = &self.rollout {
            let [(af, an), (bf, bn)] = r.window;
            line(String::new());
            line(format!(
                "rollout {} -> {}: step {} of {}, {} % of new requests to {} (steps {}); 5xx in the window: {af} of {an} for {}, {bf} of {bn} for {}",
                r.from,
                r.to,
                r.step,
                r.steps.len(),
                r.percent,
                r.to,
                r.steps
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                r.from,
                r.to
            ));
        }
        out
    }
}
