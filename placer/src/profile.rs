//! A call profile: what an app's components did over a window of time, as
//! `weft profile` writes it and `weft plan` reads it.
//!
//! Every figure is a rate over the window: calls and bytes per second on
//! each edge (caller to callee, counted by the caller), requests per second
//! at each listener, and each component's busy time per second. The
//! profile also says where each component ran, because a call's latency
//! depends on it: a remote call's includes the RPC.
//!
//! A profile with `measured = false` is the static call graph instead:
//! each wire of the app counts as one call per second, and nothing is
//! known of bytes, latency or load ([`Profile::static_graph`]).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What an app did over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Profile {
    /// The app.
    pub app: String,
    /// The versions that served in the window.
    pub versions: Vec<String>,
    /// Whether the figures were measured; `false` for the static graph.
    pub measured: bool,
    /// How long the window was, in seconds.
    pub window_s: f64,
    /// Each component's group while the profile was taken.
    pub groups: BTreeMap<String, String>,
    /// What each component did.
    pub components: BTreeMap<String, ComponentLoad>,
    /// Calls from one component to another.
    pub edges: Vec<Edge>,
    /// Requests at each listener.
    pub listeners: Vec<ListenerLoad>,
}

/// One component's load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ComponentLoad {
    /// Time spent in the component per second, its own calls to other
    /// components left out: the cores it kept busy at most (waiting on
    /// I/O counts too).
    pub busy_cores: f64,
    /// Its share of the app's busy time, in percent.
    pub busy_pct: f64,
}

/// The calls from one component to another (all their methods), as the
/// caller counted them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Edge {
    /// The calling component.
    pub caller: String,
    /// The called component.
    pub callee: String,
    /// Whether the calls left the caller's process.
    pub remote: bool,
    /// Calls per second.
    pub calls_per_s: f64,
    /// Failed calls per second.
    pub errors_per_s: f64,
    /// Bytes of arguments sent per second.
    pub request_bytes_per_s: f64,
    /// Bytes of results received per second.
    pub response_bytes_per_s: f64,
    /// Mean latency of a call, in milliseconds.
    pub mean_ms: f64,
    /// Median latency, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile of latency, in milliseconds.
    pub p99_ms: f64,
    /// For remote calls: the mean time a call spent between the processes
    /// (the caller's time less what the callee counted serving it), over
    /// the calls whose callee counted its side, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_mean_ms: Option<f64>,
}

impl Edge {
    /// Bytes per second, both ways.
    pub fn bytes_per_s(&self) -> f64 {
        self.request_bytes_per_s + self.response_bytes_per_s
    }
}

/// One listener's requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ListenerLoad {
    /// The listener's name in the manifest.
    pub listener: String,
    /// The component that serves it.
    pub component: String,
    /// Requests per second.
    pub requests_per_s: f64,
    /// Answers with a 5xx status, per second.
    pub errors_per_s: f64,
    /// Mean latency of an answer, in milliseconds.
    pub mean_ms: f64,
    /// Median latency, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile of latency, in milliseconds.
    pub p99_ms: f64,
}

impl Profile {
    /// The static call graph of an app of `components` in one process:
    /// each of `wires` (caller, callee) counts as one call per second.
    pub fn static_graph<S: AsRef<str>>(
        app: &str,
        components: impl IntoIterator<Item = S>,
        wires: impl IntoIterator<Item = (S, S)>,
        listeners: impl IntoIterator<Item = (S, S)>,
    ) -> Profile {
        let components: Vec<String> = components
            .into_iter()
            .map(|c| c.as_ref().to_string())
            .collect();
        let wires: BTreeSet<(String, String)> = wires
            .into_iter()
            .map(|(a, b)| (a.as_ref().to_string(), b.as_ref().to_string()))
            .collect();
        Profile {
            app: app.to_string(),
            versions: Vec::new(),
            measured: false,
            window_s: 0.0,
            groups: components
                .iter()
                .map(|c| (c.clone(), crate::MONOLITH_GROUP.to_string()))
                .collect(),
            components: components
                .iter()
                .map(|c| (c.clone(), ComponentLoad::default()))
                .collect(),
            edges: wires
                .into_iter()
                .map(|(caller, callee)| Edge {
                    caller,
                    callee,
                    calls_per_s: 1.0,
                    ..Edge::default()
                })
                .collect(),
            listeners: listeners
                .into_iter()
                .map(|(listener, component)| ListenerLoad {
                    listener: listener.as_ref().to_string(),
                    component: component.as_ref().to_string(),
                    ..ListenerLoad::default()
                })
                .collect(),
        }
    }

    /// What one call between processes cost while the profile was taken,
    /// its bytes aside, in microseconds: each remote edge's time between
    /// the processes, less `per_byte_ns` for each byte its calls moved,
    /// weighted by calls; and over how many calls per second. `None`
    /// without remote edges whose callee counted its side.
    pub fn rpc_cost_us(&self, per_byte_ns: f64) -> Option<(f64, f64)> {
        let (mut calls, mut total) = (0.0, 0.0);
        for e in self.edges.iter().filter(|e| e.remote) {
            if let Some(rpc) = e.rpc_mean_ms {
                let bytes_per_call = e.bytes_per_s() / e.calls_per_s.max(f64::MIN_POSITIVE);
                let fixed = (rpc * 1e3 - bytes_per_call * per_byte_ns / 1e3).max(0.0);
                calls += e.calls_per_s;
                total += e.calls_per_s * fixed;
            }
        }
        (calls > 0.0).then(|| (total / calls, calls))
    }

    /// Whether every figure is a finite number, not below zero: the first
    /// one that is not, named as the file names it.
    pub fn check(&self) -> Result<(), String> {
        let mut figures: Vec<(String, f64)> = vec![("window-s".into(), self.window_s)];
        for (c, load) in &self.components {
            figures.push((format!("components.{c}.busy-cores"), load.busy_cores));
            figures.push((format!("components.{c}.busy-pct"), load.busy_pct));
        }
        for (i, e) in self.edges.iter().enumerate() {
            for (name, value) in [
                ("calls-per-s", e.calls_per_s),
                ("errors-per-s", e.errors_per_s),
                ("request-bytes-per-s", e.request_bytes_per_s),
                ("response-bytes-per-s", e.response_bytes_per_s),
                ("mean-ms", e.mean_ms),
                ("p50-ms", e.p50_ms),
                ("p99-ms", e.p99_ms),
                ("rpc-mean-ms", e.rpc_mean_ms.unwrap_or(0.0)),
            ] {
                figures.push((format!("edges[{i}].{name}"), value));
            }
        }
        for (i, l) in self.listeners.iter().enumerate() {
            for (name, value) in [
                ("requests-per-s", l.requests_per_s),
                ("errors-per-s", l.errors_per_s),
                ("mean-ms", l.mean_ms),
                ("p50-ms", l.p50_ms),
                ("p99-ms", l.p99_ms),
            ] {
                figures.push((format!("listeners[{i}].{name}"), value));
            }
        }
        match figures
            .into_iter()
            .find(|(_, v)| !(v.is_finite() && *v >= 0.0))
        {
            Some((field, value)) => Err(format!(
                "{field} is {value}; every figure is a number from 0 up: take a new profile \
                 with weft profile"
            )),
            None => Ok(()),
        }
    }

    /// The components the profile names that are not among `components`,
    /// and those of `components` it does not name: a profile of another
    /// app, or of an older shape of this one.
    pub fn mismatch<S: AsRef<str>>(
        &self,
        components: impl IntoIterator<Item = S>,
    ) -> (Vec<String>, Vec<String>) {
        let known: BTreeSet<String> = components
            .into_iter()
            .map(|c| c.as_ref().to_string())
            .collect();
        let named: BTreeSet<String> = self
            .components
            .keys()
            .cloned()
            .chain(
                self.edges
                    .iter()
                    .flat_map(|e| [e.caller.clone(), e.callee.clone()]),
            )
            .collect();
        (
            named.difference(&known).cloned().collect(),
            known.difference(&named).cloned().collect(),
        )
    }
}
