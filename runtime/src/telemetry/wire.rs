//! Metrics snapshots as the `Control.Metrics` messages, both ways: how a
//! worker's counts reach the manager, which adds them up.

use super::metrics::{
    HistogramCounts, ListenerCounts, ListenerKey, MethodCounts, MethodKey, ResourceCounts,
    ResourceKey, Snapshot,
};
use weft_proto::v1::{
    LatencyHistogram, ListenerMetrics, MethodMetrics, MetricsReply, ResourceMetrics,
};

/// `snapshot` as a reply.
pub fn to_reply(snapshot: &Snapshot) -> MetricsReply {
    let histogram = |h: &HistogramCounts| LatencyHistogram {
        buckets: h.buckets.clone(),
        sum_ns: h.sum_ns,
    };
    let methods = |methods: &std::collections::BTreeMap<MethodKey, MethodCounts>| {
        methods
            .iter()
            .map(|(k, c)| MethodMetrics {
                caller: k.caller.clone(),
                component: k.component.clone(),
                interface: k.interface.clone(),
                method: k.method.clone(),
                remote: k.remote,
                group: k.group.clone(),
                version: k.version.clone(),
                calls: c.calls,
                errors: c.errors,
                request_bytes: c.request_bytes,
                response_bytes: c.response_bytes,
                latency: Some(histogram(&c.latency)),
            })
            .collect()
    };
    MetricsReply {
        methods: methods(&snapshot.methods),
        served: methods(&snapshot.served),
        listeners: snapshot
            .listeners
            .iter()
            .map(|(k, c)| ListenerMetrics {
                listener: k.listener.clone(),
                version: k.version.clone(),
                by_class: c.by_class.clone(),
                latency: Some(histogram(&c.latency)),
            })
            .collect(),
        resources: snapshot
            .resources
            .iter()
            .map(|(k, c)| ResourceMetrics {
                component: k.component.clone(),
                group: k.group.clone(),
                version: k.version.clone(),
                pinned: c.pinned,
                handles: c.handles,
            })
            .collect(),
    }
}

/// The snapshot a reply carries.
pub fn from_reply(reply: MetricsReply) -> Snapshot {
    let histogram = |h: Option<LatencyHistogram>| {
        let h = h.unwrap_or_default();
        HistogramCounts {
            buckets: h.buckets,
            sum_ns: h.sum_ns,
        }
    };
    let methods = |methods: Vec<MethodMetrics>| {
        methods
            .into_iter()
            .map(|m| {
                let key = MethodKey {
                    caller: m.caller,
                    component: m.component,
                    interface: m.interface,
                    method: m.method,
                    remote: m.remote,
                    group: m.group,
                    version: m.version,
                };
                let counts = MethodCounts {
                    calls: m.calls,
                    errors: m.errors,
                    request_bytes: m.request_bytes,
                    response_bytes: m.response_bytes,
                    latency: histogram(m.latency),
                };
                (key, counts)
            })
            .collect()
    };
    Snapshot {
        methods: methods(reply.methods),
        served: methods(reply.served),
        listeners: reply
            .listeners
            .into_iter()
            .map(|l| {
                let key = ListenerKey {
                    listener: l.listener,
                    version: l.version,
                };
                let counts = ListenerCounts {
                    by_class: l.by_class,
                    latency: histogram(l.latency),
                };
                (key, counts)
            })
            .collect(),
        resources: reply
            .resources
            .into_iter()
            .map(|r| {
                let key = ResourceKey {
                    component: r.component,
                    group: r.group,
                    version: r.version,
                };
                let counts = ResourceCounts {
                    pinned: r.pinned,
                    handles: r.handles,
                };
                (key, counts)
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::examples;

    #[test]
    fn a_snapshot_survives_the_wire() {
        let metrics = examples::one_call_and_request();
        let snapshot = metrics.snapshot();
        assert_eq!(from_reply(to_reply(&snapshot)), snapshot);
    }
}
