//! A call profile from two snapshots of a running app's counts, taken a
//! window apart (pure): what `weft profile` writes and `weft plan` reads.
//!
//! Edges add up a caller's calls to a callee over all its methods and
//! versions, apart by whether they crossed a process. A component's busy
//! time is the time its callers (and listeners) waited on it, less the time
//! it waited on its own callees: it counts waiting on I/O too, so it bounds
//! the CPU it used from above. A callee in another process is charged the
//! time it counted itself serving the calls (the RPC left out), method by
//! method; the edge carries the rest, the time a call spent between the
//! processes, so that the planner knows what an RPC costs here.

use super::metrics::{HistogramCounts, ListenerCounts, MethodCounts, MethodKey, Snapshot};
use super::window::quantile;
use std::collections::{BTreeMap, BTreeSet};
use weft_placer::profile::{ComponentLoad, Edge, ListenerLoad, Profile};

/// Where the app ran while it was profiled.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The app.
    pub app: String,
    /// Its components, in the manifest's order.
    pub components: Vec<String>,
    /// Each component's group, where known; the rest are read from the
    /// counts' labels.
    pub groups: BTreeMap<String, String>,
    /// The component that serves each listener.
    pub listeners: BTreeMap<String, String>,
}

impl Layout {
    /// What `manifest` says of the app's layout: its components, and which
    /// serves each listener; the groups are left to the caller.
    pub fn of(manifest: &crate::manifest::ManifestFile) -> Layout {
        Layout {
            app: manifest.manifest.app.name.clone(),
            components: manifest.manifest.components.keys().cloned().collect(),
            groups: BTreeMap::new(),
            listeners: manifest
                .manifest
                .listeners
                .iter()
                .map(|(name, l)| (name.clone(), l.component.clone()))
                .collect(),
        }
    }
}

/// Milliseconds of the `q` quantile of `h`.
fn ms(h: &HistogramCounts, q: f64) -> f64 {
    quantile(&h.buckets, q).as_secs_f64() * 1e3
}

/// The profile of what happened between `before` and `after`, `seconds`
/// apart.
pub fn between(layout: &Layout, before: &Snapshot, after: &Snapshot, seconds: f64) -> Profile {
    let seconds = seconds.max(1e-9);
    let mut groups = layout.groups.clone();
    let mut versions = BTreeSet::new();
    let empty = MethodCounts::default();
    // What callees counted of the calls they served to other processes,
    // per method (their labels name the callee's group, not the caller's).
    let method = |k: &MethodKey| {
        (
            k.caller.clone(),
            k.component.clone(),
            k.interface.clone(),
            k.method.clone(),
            k.version.clone(),
        )
    };
    let mut served: BTreeMap<_, MethodCounts> = BTreeMap::new();
    for (key, now) in &after.served {
        let counted = now.since(before.served.get(key).unwrap_or(&empty));
        served.entry(method(key)).or_default().add(&counted);
    }
    // Per edge: the calls' difference, added up over methods and versions;
    // and per remote edge, over the methods whose callee counted its side,
    // the calls, the caller's nanoseconds and the callee's.
    let mut edges: BTreeMap<(String, String, bool), MethodCounts> = BTreeMap::new();
    let mut matched: BTreeMap<(String, String), (u64, u64, u64)> = BTreeMap::new();
    for (key, now) in &after.methods {
        let counted = now.since(before.methods.get(key).unwrap_or(&empty));
        if counted.calls == 0 {
            continue;
        }
        versions.insert(key.version.clone());
        groups
            .entry(key.caller.clone())
            .or_insert_with(|| key.group.clone());
        if !key.remote {
            groups
                .entry(key.component.clone())
                .or_insert_with(|| key.group.clone());
        }
        if let Some(callee) = served.get(&method(key))
            && key.remote
            && callee.calls > 0
        {
            let m = matched
                .entry((key.caller.clone(), key.component.clone()))
                .or_default();
            m.0 += callee.calls;
            m.1 += counted.latency.sum_ns;
            m.2 += callee.latency.sum_ns;
        }
        edges
            .entry((key.caller.clone(), key.component.clone(), key.remote))
            .or_default()
            .add(&counted);
    }
    // Per listener, over versions.
    let mut listeners: BTreeMap<String, ListenerCounts> = BTreeMap::new();
    let none = ListenerCounts::default();
    for (key, now) in &after.listeners {
        let counted = now.since(before.listeners.get(key).unwrap_or(&none));
        if counted.requests() == 0 {
            continue;
        }
        versions.insert(key.version.clone());
        listeners
            .entry(key.listener.clone())
            .or_default()
            .add(&counted);
    }
    // Busy: waited on, less waiting on others, in seconds.
    let mut busy: BTreeMap<&str, f64> = layout
        .components
        .iter()
        .map(|c| (c.as_str(), 0.0))
        .collect();
    for ((caller, callee, remote), counts) in &edges {
        let waited = counts.latency.sum_ns as f64 / 1e9;
        *busy.entry(caller).or_default() -= waited;
        // A callee in another process is charged what it counted itself,
        // for the methods where it did; else all the caller waited.
        let key = (caller.clone(), callee.clone());
        let charged = match matched.get(&key) {
            Some((_, caller_ns, served_ns)) if *remote => {
                waited - *caller_ns as f64 / 1e9 + *served_ns as f64 / 1e9
            }
            _ => waited,
        };
        *busy.entry(callee).or_default() += charged.max(0.0);
    }
    for (listener, counts) in &listeners {
        if let Some(component) = layout.listeners.get(listener) {
            *busy.entry(component).or_default() += counts.latency.sum_ns as f64 / 1e9;
        }
    }
    let cores: BTreeMap<&str, f64> = busy
        .into_iter()
        .map(|(c, s)| (c, (s / seconds).max(0.0)))
        .collect();
    let total: f64 = cores.values().sum();
    Profile {
        app: layout.app.clone(),
        versions: versions.into_iter().collect(),
        measured: true,
        window_s: seconds,
        groups,
        components: cores
            .iter()
            .map(|(c, busy)| {
                let load = ComponentLoad {
                    busy_cores: *busy,
                    busy_pct: if total > 0.0 {
                        100.0 * busy / total
                    } else {
                        0.0
                    },
                };
                (c.to_string(), load)
            })
            .collect(),
        edges: edges
            .into_iter()
            .map(|((caller, callee, remote), c)| Edge {
                calls_per_s: c.calls as f64 / seconds,
                errors_per_s: c.errors as f64 / seconds,
                request_bytes_per_s: c.request_bytes as f64 / seconds,
                response_bytes_per_s: c.response_bytes as f64 / seconds,
                mean_ms: c.latency.sum_ns as f64 / 1e6 / c.calls as f64,
                p50_ms: ms(&c.latency, 0.5),
                p99_ms: ms(&c.latency, 0.99),
                rpc_mean_ms: matched
                    .get(&(caller.clone(), callee.clone()))
                    .filter(|(calls, _, _)| remote && *calls > 0)
                    .map(|(calls, caller_ns, served_ns)| {
                        caller_ns.saturating_sub(*served_ns) as f64 / 1e6 / *calls as f64
                    }),
                caller,
                callee,
                remote,
            })
            .collect(),
        listeners: listeners
            .into_iter()
            .map(|(listener, c)| ListenerLoad {
                component: layout.listeners.get(&listener).cloned().unwrap_or_default(),
                listener,
                requests_per_s: c.requests() as f64 / seconds,
                errors_per_s: c.failed() as f64 / seconds,
                mean_ms: c.latency.sum_ns as f64 / 1e6 / c.requests() as f64,
                p50_ms: ms(&c.latency, 0.5),
                p99_ms: ms(&c.latency, 0.99),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::{Metrics, examples};
    use std::time::Duration;

    #[test]
    fn a_profile_is_the_difference_of_two_snapshots_as_rates() {
        let metrics = Metrics::default();
        let greet = metrics.method(examples::greet("frontend", false));
        let web = metrics.listener(examples::web());
        greet.record(Duration::from_millis(1), false, 100, 100);
        let before = metrics.snapshot();
        // In 10 s: 50 requests of 4 ms, each calling greet twice for 1 ms.
        for _ in 0..50 {
            web.record(200, Duration::from_millis(4));
            greet.record(Duration::from_millis(1), false, 10, 30);
            greet.record(Duration::from_millis(1), true, 10, 30);
        }
        let layout = Layout {
            app: "hello".into(),
            components: vec!["frontend".into(), "greeter".into()],
            groups: BTreeMap::new(),
            listeners: BTreeMap::from([("web".into(), "frontend".into())]),
        };
        let profile = between(&layout, &before, &metrics.snapshot(), 10.0);
        assert_eq!(profile.edges.len(), 1);
        let edge = &profile.edges[0];
        assert_eq!(
            (edge.caller.as_str(), edge.callee.as_str()),
            ("frontend", "greeter")
        );
        assert!(!edge.remote);
        assert!((edge.calls_per_s - 10.0).abs() < 1e-9);
        assert!((edge.errors_per_s - 5.0).abs() < 1e-9);
        assert!((edge.request_bytes_per_s - 100.0).abs() < 1e-9);
        assert!((edge.response_bytes_per_s - 300.0).abs() < 1e-9);
        assert!((edge.mean_ms - 1.0).abs() < 1e-9);
        let listener = &profile.listeners[0];
        assert_eq!(listener.component, "frontend");
        assert!((listener.requests_per_s - 5.0).abs() < 1e-9);
        assert!((listener.mean_ms - 4.0).abs() < 1e-9);
        // The frontend waited 200 ms for its requests, 100 of them on
        // greet: 0.01 cores each.
        let busy = |c: &str| profile.components[c].busy_cores;
        assert!((busy("frontend") - 0.01).abs() < 1e-9, "{profile:?}");
        assert!((busy("greeter") - 0.01).abs() < 1e-9, "{profile:?}");
        assert!((profile.components["greeter"].busy_pct - 50.0).abs() < 1e-9);
        // Groups come from the labels: a local callee shares its caller's.
        assert_eq!(profile.groups["greeter"], "frontend");
        assert_eq!(profile.versions, ["abc"]);
    }

    #[test]
    fn a_remote_edge_carries_what_the_rpc_cost_and_the_callee_its_own_time() {
        let before = Metrics::default().snapshot();
        // One remote greet: 300 µs at the caller, 40 µs at the callee.
        let after = examples::one_call_and_request().snapshot();
        let layout = Layout {
            app: "hello".into(),
            components: vec!["frontend".into(), "greeter".into()],
            groups: BTreeMap::new(),
            listeners: BTreeMap::from([("web".into(), "frontend".into())]),
        };
        let profile = between(&layout, &before, &after, 1.0);
        let edge = &profile.edges[0];
        assert!(edge.remote);
        assert!((edge.rpc_mean_ms.unwrap() - 0.26).abs() < 1e-9, "{edge:?}");
        assert!((profile.components["greeter"].busy_cores - 40e-6).abs() < 1e-12);
        // 42 bytes moved at 1 ns each leave 259.958 µs for the call.
        let (us, calls) = profile.rpc_cost_us(1.0).unwrap();
        assert!((us - 259.958).abs() < 1e-6 && calls == 1.0, "{us} {calls}");
    }
}
