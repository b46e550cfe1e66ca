//! The traffic table: which versions of an app take new requests in a
//! cluster, and how many each. It is the one source of truth that every
//! replica of weft's ingress follows.
//!
//! It lives in the ConfigMap `A-traffic`, key `traffic.toml`. `weft kube`
//! writes it with its version at 100 %; `weft rollout --kube` rewrites it
//! at every step, and records the rollout under way so that a second run
//! can resume it. Each ingress replica reads it through the Kubernetes API
//! every second, so a new or restarted replica learns the weights by
//! itself, and each reports the `generation` it follows, so the driver
//! knows when a step is in force everywhere.
//!
//! ```toml
//! generation = 4
//!
//! [rollout]
//! from = "bba3604cb7fb7bab"
//! to = "48e6eb2aa9b1f26b"
//! steps = [10, 25, 50, 100]
//! over-ms = 60000
//!
//! [versions.bba3604cb7fb7bab]
//! weight = 75
//! worker-port = 7070
//! groups = { frontend = "hello-frontend-bba3604c", greeter = "hello-greeter-bba3604c" }
//! listeners = { web = { service = "hello-frontend-bba3604c", port = 8080 } }
//! ```
//!
//! Parsing is pure ([`TrafficTable::from_str`]); so is making a version's
//! route from its plan ([`VersionRoute::of`]).

use super::{AppVersion, Names, listener_port};
use crate::deploy::cluster::WORKER_PORT;
use k8s_openapi::api::core::v1::ConfigMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The key of the traffic ConfigMap that holds the table.
pub const TRAFFIC_FILE: &str = "traffic.toml";

/// Which versions take new requests, and how many.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrafficTable {
    /// Raised at every change, so replicas can say which table they follow.
    pub generation: u64,
    /// The versions that served everything, oldest first: those whose
    /// ConfigMaps are kept for `weft rollback --kube`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<String>,
    /// The rollout under way, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutRecord>,
    /// Every version that takes requests (or finishes them), by version.
    #[serde(default)]
    pub versions: BTreeMap<String, VersionRoute>,
}

/// A rollout under way, as `weft rollout --kube` started it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RolloutRecord {
    /// The version it moves traffic from.
    pub from: String,
    /// The version it moves traffic to.
    pub to: String,
    /// The new version's share at each step, in percent.
    pub steps: Vec<u8>,
    /// How long the shift takes, in milliseconds.
    pub over_ms: u64,
}

/// How the ingress reaches one version, and its share of new requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VersionRoute {
    /// Its share of new requests, in percent.
    pub weight: u8,
    /// The gRPC port of its workers, where the ingress asks them what they
    /// served.
    pub worker_port: u16,
    /// Every group's headless Service, by group.
    pub groups: BTreeMap<String, String>,
    /// Where each listener is served, by listener.
    pub listeners: BTreeMap<String, ListenerRoute>,
}

/// Where one listener of one version is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ListenerRoute {
    /// The headless Service of the group that serves it.
    pub service: String,
    /// The port its pods serve it on.
    pub port: u16,
}

impl VersionRoute {
    /// The route to `app`'s version, with no share yet.
    pub fn of(app: &AppVersion<'_>) -> VersionRoute {
        let names = Names::new(app);
        VersionRoute {
            weight: 0,
            worker_port: WORKER_PORT,
            groups: app
                .plan
                .groups
                .keys()
                .map(|g| (g.clone(), names.group(g)))
                .collect(),
            listeners: app
                .manifest
                .listeners
                .iter()
                .filter_map(|(name, l)| {
                    let (group, _) = app.plan.group_of(&l.component)?;
                    let route = ListenerRoute {
                        service: names.group(group),
                        port: listener_port(l),
                    };
                    Some((name.clone(), route))
                })
                .collect(),
        }
    }
}

impl TrafficTable {
    /// A table in which `version` takes every request.
    pub fn only(version: &str, mut route: VersionRoute) -> TrafficTable {
        route.weight = 100;
        TrafficTable {
            generation: 1,
            rollout: None,
            versions: BTreeMap::from([(version.to_string(), route)]),
            history: vec![version.to_string()],
        }
    }

    /// Parses the table's text; `origin` names it in errors.
    pub fn from_str(text: &str, origin: &str) -> anyhow::Result<TrafficTable> {
        let table: TrafficTable = toml::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "{origin}: {}; it is written by weft kube and weft rollout --kube, write it \
                 again with them rather than by hand",
                e.to_string().trim_end()
            )
        })?;
        Ok(table)
    }

    /// The table's text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a traffic table serializes")
    }

    /// The table that ConfigMap `map` (`A-traffic`) holds.
    pub fn from_config_map(map: &ConfigMap) -> anyhow::Result<TrafficTable> {
        let (text, origin) = file_of(map, TRAFFIC_FILE)?;
        TrafficTable::from_str(text, &origin)
    }

    /// The version with the largest share: the one that serves, outside a
    /// rollout.
    pub fn serving(&self) -> Option<&str> {
        self.versions
            .iter()
            .max_by_key(|(_, r)| r.weight)
            .map(|(v, _)| v.as_str())
    }

    /// The same table with the shares in `weights` (others keep theirs),
    /// as the next generation.
    pub fn with_weights(&self, weights: &[(&str, u8)]) -> TrafficTable {
        let mut next = self.clone();
        for (version, weight) in weights {
            if let Some(route) = next.versions.get_mut(*version) {
                route.weight = *weight;
            }
        }
        next.generation += 1;
        next
    }
}

/// The key of the ingress's ConfigMap (`A-ingress`) that holds its config.
pub const INGRESS_FILE: &str = "ingress.toml";

/// What `weft ingress` is told, in `ingress.toml`: the app's listeners,
/// where the traffic table is, and how to find the other replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IngressConfig {
    /// The app's name.
    pub app: String,
    /// The ConfigMap that holds the traffic table.
    pub traffic: String,
    /// The headless Service of the ingress's replicas, which answer each
    /// other's questions about their counts.
    pub peers: String,
    /// The port of each replica's status answers.
    pub status_port: u16,
    /// Whether a client keeps the version it first got, through a cookie.
    #[serde(default)]
    pub sticky_sessions: bool,
    /// The listeners, by name.
    pub listeners: BTreeMap<String, IngressListener>,
}

/// File `file` of ConfigMap `map`, and how errors name it.
fn file_of<'a>(map: &'a ConfigMap, file: &str) -> anyhow::Result<(&'a str, String)> {
    let name = map.metadata.name.as_deref().unwrap_or_default();
    let text = map.data.as_ref().and_then(|d| d.get(file)).ok_or_else(|| {
        anyhow::anyhow!(
            "ConfigMap {name} has no {file}; apply it again from the output of `weft kube`"
        )
    })?;
    Ok((text, format!("ConfigMap {name}, {file}")))
}

/// One listener of the ingress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IngressListener {
    /// The component that serves it, for errors.
    pub component: String,
    /// Where to listen, such as `0.0.0.0:8080`.
    pub address: std::net::SocketAddr,
    /// How long a client may take to send a request's head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_timeout: Option<crate::manifest::Timeout>,
    /// How long a kept-alive connection may sit idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<crate::manifest::Timeout>,
    /// How many connections it keeps open at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
}

impl IngressConfig {
    /// Parses `ingress.toml`; `origin` names it in errors.
    pub fn from_str(text: &str, origin: &str) -> anyhow::Result<IngressConfig> {
        toml::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "{origin}: {}; it is written by weft kube, write it again rather than by hand",
                e.to_string().trim_end()
            )
        })
    }

    /// The file's text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("an ingress config serializes")
    }

    /// The config that ConfigMap `map` (`A-ingress`) holds.
    pub fn from_config_map(map: &ConfigMap) -> anyhow::Result<IngressConfig> {
        let (text, origin) = file_of(map, INGRESS_FILE)?;
        IngressConfig::from_str(text, &origin)
    }
}

impl IngressListener {
    /// The listener as the manifest says it, bound on every interface.
    pub fn of(spec: &crate::manifest::ListenerSpec) -> IngressListener {
        IngressListener {
            component: spec.component.clone(),
            address: std::net::SocketAddr::from(([0, 0, 0, 0], listener_port(spec))),
            header_timeout: spec.header_timeout,
            idle_timeout: spec.idle_timeout,
            max_connections: spec.max_connections,
        }
    }

    /// The connection limits in force.
    pub fn limits(&self) -> crate::listener::ConnectionLimits {
        crate::listener::ConnectionLimits::of(
            self.header_timeout.map(|t| t.0),
            self.idle_timeout.map(|t| t.0),
            self.max_connections,
        )
    }
}

/// What one ingress replica says of itself (`GET /traffic/local`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicaReport {
    /// The replica's name (its pod's).
    pub name: String,
    /// The generation of the traffic table it follows; 0 before the first.
    pub generation: u64,
    /// Its counts, by version, since it started.
    pub versions: BTreeMap<String, VersionCounts>,
    /// How many pods of each version it can send each listener's requests
    /// to (the fewest over the listeners).
    #[serde(default)]
    pub reachable: BTreeMap<String, u64>,
}

/// One version's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionCounts {
    /// Requests answered at the listeners.
    pub requests: u64,
    /// Of those, the ones answered with a 5xx.
    pub failed_requests: u64,
    /// Requests sent to the version whose answer is not through yet.
    pub in_flight: u64,
    /// Calls between components that the version's workers served.
    pub calls: u64,
    /// Of those, the ones that failed.
    pub failed_calls: u64,
}

impl VersionCounts {
    /// The sum of two counts.
    pub fn plus(self, other: VersionCounts) -> VersionCounts {
        VersionCounts {
            requests: self.requests + other.requests,
            failed_requests: self.failed_requests + other.failed_requests,
            in_flight: self.in_flight + other.in_flight,
            calls: self.calls + other.calls,
            failed_calls: self.failed_calls + other.failed_calls,
        }
    }
}

/// What every ingress replica says, with the workers' calls (`GET
/// /traffic` of any replica).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrafficReport {
    /// Each replica that answered.
    pub replicas: Vec<ReplicaReport>,
    /// Replicas that did not answer, by address.
    pub unreachable: Vec<String>,
    /// Every replica's counts added up, with the calls that each version's
    /// workers served.
    pub versions: BTreeMap<String, VersionCounts>,
}

impl TrafficReport {
    /// Whether every replica that answered follows `generation` or a later one.
    pub fn follows(&self, generation: u64) -> bool {
        !self.replicas.is_empty() && self.replicas.iter().all(|r| r.generation >= generation)
    }

    /// Whether every replica that answered reaches a pod of `version` for
    /// every listener.
    pub fn reaches(&self, version: &str) -> bool {
        !self.replicas.is_empty()
            && self
                .replicas
                .iter()
                .all(|r| r.reachable.get(version).is_some_and(|n| *n > 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(weight: u8) -> VersionRoute {
        VersionRoute {
            weight,
            worker_port: 7070,
            groups: BTreeMap::from([("main".into(), "hello-main-0123abcd".into())]),
            listeners: BTreeMap::from([(
                "web".into(),
                ListenerRoute {
                    service: "hello-main-0123abcd".into(),
                    port: 8080,
                },
            )]),
        }
    }

    #[test]
    fn a_table_reads_back_what_it_wrote() {
        let mut table = TrafficTable::only("0123abcd0123abcd", route(0));
        table.versions.insert("4567ef014567ef01".into(), route(0));
        table.rollout = Some(RolloutRecord {
            from: "0123abcd0123abcd".into(),
            to: "4567ef014567ef01".into(),
            steps: vec![10, 100],
            over_ms: 20_000,
        });
        let next = table.with_weights(&[("0123abcd0123abcd", 90), ("4567ef014567ef01", 10)]);
        assert_eq!(next.generation, 2);
        let text = next.to_toml();
        assert_eq!(TrafficTable::from_str(&text, "t").unwrap(), next);
        assert_eq!(next.serving(), Some("0123abcd0123abcd"));
        assert!(text.contains("over-ms = 20000"), "{text}");
    }

    #[test]
    fn a_table_with_an_unknown_field_names_it() {
        let err = TrafficTable::from_str("generation = 1\nweights = 3\n", "A-traffic")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("A-traffic: "), "{err}");
        assert!(err.contains("weights"), "{err}");
    }
}
