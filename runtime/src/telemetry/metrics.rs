//! Per-method and per-listener metrics, kept in atomics: a call pays a few
//! relaxed adds and a clock read, and never takes a lock.
//!
//! Each forwarded function gets its [`MethodStats`] once, at link time,
//! from the process's [`Metrics`] registry; each listener and version gets
//! its [`ListenerStats`]. A [`Snapshot`] is plain data, sorted by labels:
//! rendered as Prometheus text ([`super::prometheus`]) and summed across
//! processes ([`Snapshot::merge`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency buckets, in nanoseconds: from 1 µs (a call
/// in one process) to 10 s, about three per decade. One more bucket
/// counts everything slower.
pub const LATENCY_BOUNDS_NS: [u64; 22] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// How many buckets a latency histogram has: one per bound, and `+Inf`.
pub const BUCKETS: usize = LATENCY_BOUNDS_NS.len() + 1;

/// A latency histogram.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Counts one observation.
    pub fn record(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_NS.partition_point(|&bound| bound < ns);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HistogramCounts {
        HistogramCounts {
            buckets: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's counts at one moment: per bucket (not cumulative), and
/// the sum of all observations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistogramCounts {
    /// One count per bucket of [`LATENCY_BOUNDS_NS`], then `+Inf`.
    pub buckets: Vec<u64>,
    /// The sum of every observation, in nanoseconds.
    pub sum_ns: u64,
}

impl HistogramCounts {
    /// How many observations it holds.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// What was observed after `before`, an earlier snapshot of the same
    /// histogram.
    pub(crate) fn since(&self, before: &HistogramCounts) -> HistogramCounts {
        HistogramCounts {
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(before.buckets.get(i).copied().unwrap_or(0)))
                .collect(),
            sum_ns: self.sum_ns.saturating_sub(before.sum_ns),
        }
    }

    pub(crate) fn add(&mut self, other: &HistogramCounts) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.sum_ns += other.sum_ns;
    }
}

/// Who called which method, and where: the labels of one method's metrics.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct MethodKey {
    /// The calling component.
    pub caller: String,
    /// The component that serves the method.
    pub component: String,
    /// Its interface, such as `demo:hello/greeter@0.1.0`.
    pub interface: String,
    /// The function, such as `greet`.
    pub method: String,
    /// Whether the call leaves the caller's process.
    pub remote: bool,
    /// The caller's group.
    pub group: String,
    /// The deployment's version.
    pub version: String,
}

/// The live counts of one method, as seen by its caller.
#[derive(Default)]
pub struct MethodStats {
    calls: AtomicU64,
    errors: AtomicU64,
    request_bytes: AtomicU64,
    response_bytes: AtomicU64,
    latency: Histogram,
}

impl MethodStats {
    /// Counts one call: how long it took, whether it failed, and the size
    /// of its arguments and results in weft's wire encoding.
    pub fn record(&self, elapsed: Duration, failed: bool, request_bytes: u64, response_bytes: u64) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.request_bytes
            .fetch_add(request_bytes, Ordering::Relaxed);
        self.response_bytes
            .fetch_add(response_bytes, Ordering::Relaxed);
        self.latency.record(elapsed);
    }

    fn snapshot(&self) -> MethodCounts {
        MethodCounts {
            calls: self.calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            request_bytes: self.request_bytes.load(Ordering::Relaxed),
            response_bytes: self.response_bytes.load(Ordering::Relaxed),
            latency: self.latency.snapshot(),
        }
    }
}

/// One method's counts at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MethodCounts {
    /// Calls made, failed ones included.
    pub calls: u64,
    /// Calls that failed: the callee trapped, timed out or was unreachable.
    pub errors: u64,
    /// Bytes of arguments sent.
    pub request_bytes: u64,
    /// Bytes of results received.
    pub response_bytes: u64,
    /// How long the calls took.
    pub latency: HistogramCounts,
}

impl MethodCounts {
    /// The calls made after `before`, an earlier snapshot of the same
    /// method.
    pub(crate) fn since(&self, before: &MethodCounts) -> MethodCounts {
        MethodCounts {
            calls: self.calls.saturating_sub(before.calls),
            errors: self.errors.saturating_sub(before.errors),
            request_bytes: self.request_bytes.saturating_sub(before.request_bytes),
            response_bytes: self.response_bytes.saturating_sub(before.response_bytes),
            latency: self.latency.since(&before.latency),
        }
    }

    pub(crate) fn add(&mut self, other: &MethodCounts) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.request_bytes += other.request_bytes;
        self.response_bytes += other.response_bytes;
        self.latency.add(&other.latency);
    }
}

/// Which listener, serving which version: the labels of its metrics.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerKey {
    /// The listener's name in the manifest.
    pub listener: String,
    /// The version that served the requests.
    pub version: String,
}

/// The live counts of one listener and version.
#[derive(Default)]
pub struct ListenerStats {
    by_class: [AtomicU64; 5],
    latency: Histogram,
}

impl ListenerStats {
    /// Counts one request by its status's class (1xx to 5xx), and how long
    /// it took to answer.
    pub fn record(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        self.latency.record(elapsed);
    }

    fn snapshot(&self) -> ListenerCounts {
        ListenerCounts {
            by_class: self
                .by_class
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            latency: self.latency.snapshot(),
        }
    }
}

/// One listener's counts at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListenerCounts {
    /// Requests by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub by_class: Vec<u64>,
    /// How long the answers took.
    pub latency: HistogramCounts,
}

impl ListenerCounts {
    /// The requests answered after `before`, an earlier snapshot of the
    /// same listener.
    pub(crate) fn since(&self, before: &ListenerCounts) -> ListenerCounts {
        ListenerCounts {
            by_class: self
                .by_class
                .iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(before.by_class.get(i).copied().unwrap_or(0)))
                .collect(),
            latency: self.latency.since(&before.latency),
        }
    }

    /// Requests answered, whatever their status.
    pub(crate) fn requests(&self) -> u64 {
        self.by_class.iter().sum()
    }

    /// Requests answered with a 5xx.
    pub(crate) fn failed(&self) -> u64 {
        self.by_class.get(4).copied().unwrap_or(0)
    }

    pub(crate) fn add(&mut self, other: &ListenerCounts) {
        if self.by_class.len() < other.by_class.len() {
            self.by_class.resize(other.by_class.len(), 0);
        }
        for (mine, theirs) in self.by_class.iter_mut().zip(&other.by_class) {
            *mine += theirs;
        }
        self.latency.add(&other.latency);
    }
}

/// The labels of a component's resource gauges.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    /// The component that keeps the resources.
    pub component: String,
    /// Its group.
    pub group: String,
    /// The deployment's version.
    pub version: String,
}

/// The resources one component keeps for others, now.
#[derive(Default)]
pub struct ResourceGauges {
    /// Its instances pinned by handles.
    pub pinned: AtomicU64,
    /// Handles to its resources, held by callers.
    pub handles: AtomicU64,
}

/// A component's resource gauges at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceCounts {
    /// Instances pinned by handles.
    pub pinned: u64,
    /// Handles held by callers.
    pub handles: u64,
}

/// A process's registry of metrics.
#[derive(Default)]
pub struct Metrics {
    methods: Mutex<BTreeMap<MethodKey, Arc<MethodStats>>>,
    served: Mutex<BTreeMap<MethodKey, Arc<MethodStats>>>,
    listeners: Mutex<BTreeMap<ListenerKey, Arc<ListenerStats>>>,
    resources: Mutex<BTreeMap<ResourceKey, Arc<ResourceGauges>>>,
}

impl Metrics {
    /// The stats of the method `key`, shared by every forwarder with the
    /// same labels.
    pub fn method(&self, key: MethodKey) -> Arc<MethodStats> {
        let mut methods = self.methods.lock().expect("metrics lock");
        methods.entry(key).or_default().clone()
    }

    /// The stats of the method `key` as its callee counts the calls it
    /// serves to other processes: how long they took there, the RPC left
    /// out.
    pub fn served(&self, key: MethodKey) -> Arc<MethodStats> {
        let mut served = self.served.lock().expect("metrics lock");
        served.entry(key).or_default().clone()
    }

    /// The stats of the listener `key`.
    pub fn listener(&self, key: ListenerKey) -> Arc<ListenerStats> {
        let mut listeners = self.listeners.lock().expect("metrics lock");
        listeners.entry(key).or_default().clone()
    }

    /// The resource gauges of the component `key`.
    pub fn resources(&self, key: ResourceKey) -> Arc<ResourceGauges> {
        let mut resources = self.resources.lock().expect("metrics lock");
        resources.entry(key).or_default().clone()
    }

    /// Every count, now.
    pub fn snapshot(&self) -> Snapshot {
        let methods = self.methods.lock().expect("metrics lock");
        let served = self.served.lock().expect("metrics lock");
        let listeners = self.listeners.lock().expect("metrics lock");
        let resources = self.resources.lock().expect("metrics lock");
        Snapshot {
            resources: resources
                .iter()
                .map(|(k, g)| {
                    let counts = ResourceCounts {
                        pinned: g.pinned.load(Ordering::Relaxed),
                        handles: g.handles.load(Ordering::Relaxed),
                    };
                    (k.clone(), counts)
                })
                .collect(),
            methods: methods
                .iter()
                .map(|(k, s)| (k.clone(), s.snapshot()))
                .collect(),
            served: served
                .iter()
                .map(|(k, s)| (k.clone(), s.snapshot()))
                .collect(),
            listeners: listeners
                .iter()
                .map(|(k, s)| (k.clone(), s.snapshot()))
                .collect(),
        }
    }
}

/// Every count of one or more processes at one moment, sorted by labels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Per method, as callers counted the calls.
    pub methods: BTreeMap<MethodKey, MethodCounts>,
    /// Per method called from another process, as the callee counted the
    /// calls it served (labelled with the callee's group).
    pub served: BTreeMap<MethodKey, MethodCounts>,
    /// Per listener and version.
    pub listeners: BTreeMap<ListenerKey, ListenerCounts>,
    /// Per component that keeps resources for others.
    pub resources: BTreeMap<ResourceKey, ResourceCounts>,
}

impl Snapshot {
    /// The sum of `snapshots`: counts with the same labels add up, as the
    /// replicas of one group do.
    pub fn merge<'a>(snapshots: impl IntoIterator<Item = &'a Snapshot>) -> Snapshot {
        let mut total = Snapshot::default();
        for snapshot in snapshots {
            for (key, counts) in &snapshot.methods {
                total.methods.entry(key.clone()).or_default().add(counts);
            }
            for (key, counts) in &snapshot.served {
                total.served.entry(key.clone()).or_default().add(counts);
            }
            for (key, counts) in &snapshot.listeners {
                total.listeners.entry(key.clone()).or_default().add(counts);
            }
            for (key, counts) in &snapshot.resources {
                let total = total.resources.entry(key.clone()).or_default();
                total.pinned += counts.pinned;
                total.handles += counts.handles;
            }
        }
        total
    }
}

/// Labels for the telemetry modules' tests.
#[cfg(test)]
pub(crate) mod examples {
    use super::{ListenerKey, MethodKey};

    /// `caller` calling hello's `greet`, version "abc".
    pub(crate) fn greet(caller: &str, remote: bool) -> MethodKey {
        MethodKey {
            caller: caller.into(),
            component: "greeter".into(),
            interface: "demo:hello/greeter@0.1.0".into(),
            method: "greet".into(),
            remote,
            group: "frontend".into(),
            version: "abc".into(),
        }
    }

    /// A registry that counted one remote `greet` from the frontend (300 µs,
    /// 12 bytes out, 30 back) and one request at `web` (200, 2 ms).
    pub(crate) fn one_call_and_request() -> super::Metrics {
        use std::time::Duration;
        let metrics = super::Metrics::default();
        let greet = metrics.method(greet("frontend", true));
        greet.record(Duration::from_micros(300), false, 12, 30);
        metrics
            .served(greet_served())
            .record(Duration::from_micros(40), false, 12, 30);
        metrics
            .listener(web())
            .record(200, Duration::from_millis(2));
        let kept = metrics.resources(super::ResourceKey {
            component: "greeter".into(),
            group: "greeter".into(),
            version: "abc".into(),
        });
        kept.pinned.store(2, std::sync::atomic::Ordering::Relaxed);
        kept.handles.store(3, std::sync::atomic::Ordering::Relaxed);
        metrics
    }

    /// hello's `greet` as the greeter's worker serves it to the frontend.
    pub(crate) fn greet_served() -> MethodKey {
        MethodKey {
            group: "greeter".into(),
            ..greet("frontend", true)
        }
    }

    /// The listener `web`, version "abc".
    pub(crate) fn web() -> ListenerKey {
        ListenerKey {
            listener: "web".into(),
            version: "abc".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::examples::{greet as key, web};
    use super::*;

    #[test]
    fn a_latency_lands_in_the_first_bucket_that_holds_it() {
        let h = Histogram::default();
        h.record(Duration::from_nanos(1_000)); // on the bound: le 1 µs
        h.record(Duration::from_nanos(1_001)); // le 2.5 µs
        h.record(Duration::from_secs(60)); // +Inf
        let counts = h.snapshot();
        assert_eq!(counts.buckets[0], 1);
        assert_eq!(counts.buckets[1], 1);
        assert_eq!(counts.buckets[BUCKETS - 1], 1);
        assert_eq!(counts.count(), 3);
        assert_eq!(counts.sum_ns, 1_000 + 1_001 + 60_000_000_000);
    }

    #[test]
    fn forwarders_with_the_same_labels_share_their_counts() {
        let metrics = Metrics::default();
        let a = metrics.method(key("frontend", false));
        let b = metrics.method(key("frontend", false));
        let remote = metrics.method(key("frontend", true));
        a.record(Duration::from_micros(3), false, 10, 20);
        b.record(Duration::from_micros(4), true, 1, 2);
        remote.record(Duration::from_millis(1), false, 5, 5);
        let snapshot = metrics.snapshot();
        let local = &snapshot.methods[&key("frontend", false)];
        assert_eq!(
            (
                local.calls,
                local.errors,
                local.request_bytes,
                local.response_bytes
            ),
            (2, 1, 11, 22)
        );
        assert_eq!(snapshot.methods[&key("frontend", true)].calls, 1);
    }

    #[test]
    fn listeners_count_by_status_class() {
        let metrics = Metrics::default();
        let key = web();
        let web = metrics.listener(key.clone());
        for status in [200, 204, 404, 500, 503, 101] {
            web.record(status, Duration::from_micros(100));
        }
        let counts = &metrics.snapshot().listeners[&key];
        assert_eq!(counts.by_class, [1, 2, 0, 1, 2]);
        assert_eq!(counts.latency.count(), 6);
    }

    #[test]
    fn merging_adds_counts_with_the_same_labels() {
        let one = Metrics::default();
        let two = Metrics::default();
        one.method(key("frontend", true))
            .record(Duration::from_micros(5), false, 1, 1);
        two.method(key("frontend", true))
            .record(Duration::from_micros(7), true, 2, 2);
        two.method(key("admin", true))
            .record(Duration::from_micros(7), false, 2, 2);
        let merged = Snapshot::merge([&one.snapshot(), &two.snapshot()]);
        let frontend = &merged.methods[&key("frontend", true)];
        assert_eq!((frontend.calls, frontend.errors), (2, 1));
        assert_eq!(frontend.latency.sum_ns, 12_000);
        assert_eq!(merged.methods.len(), 2);
    }
}
