//! A [`Snapshot`] as Prometheus text exposition format (version 0.0.4):
//! pure, sorted by labels, so that the same counts always read the same.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `weft_calls_total` | counter | caller, component, interface, method, remote, group, version |
//! | `weft_call_errors_total` | counter | the same |
//! | `weft_call_duration_seconds` | histogram | the same |
//! | `weft_call_request_bytes_total` | counter | the same |
//! | `weft_call_response_bytes_total` | counter | the same |
//! | `weft_http_requests_total` | counter | listener, version, code (`2xx`…) |
//! | `weft_http_request_duration_seconds` | histogram | listener, version |

use super::metrics::{
    HistogramCounts, LATENCY_BOUNDS_NS, ListenerKey, MethodCounts, MethodKey, ResourceCounts,
    Snapshot,
};
use std::fmt::Write as _;

/// The content type of the text this module writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The snapshot as Prometheus text.
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    let methods: Vec<(String, _)> = snapshot
        .methods
        .iter()
        .map(|(key, counts)| (method_labels(key), counts))
        .collect();
    let counters: [(&str, &str, Count); 4] = [
        (
            "weft_calls_total",
            "Cross-component calls, in this process and to others.",
            |c| c.calls,
        ),
        (
            "weft_call_errors_total",
            "Cross-component calls that failed: the callee trapped, timed out or was unreachable.",
            |c| c.errors,
        ),
        (
            "weft_call_request_bytes_total",
            "Bytes of arguments, in weft's wire encoding.",
            |c| c.request_bytes,
        ),
        (
            "weft_call_response_bytes_total",
            "Bytes of results, in weft's wire encoding.",
            |c| c.response_bytes,
        ),
    ];
    for (name, help, value) in counters {
        header(&mut out, name, help, "counter");
        for (labels, counts) in &methods {
            let _ = writeln!(out, "{name}{{{labels}}} {}", value(counts));
        }
    }
    header(
        &mut out,
        "weft_call_duration_seconds",
        "How long cross-component calls took, as their caller saw it.",
        "histogram",
    );
    for (labels, counts) in &methods {
        histogram(
            &mut out,
            "weft_call_duration_seconds",
            labels,
            &counts.latency,
        );
    }

    header(
        &mut out,
        "weft_http_requests_total",
        "HTTP requests answered by the app's listeners, by status class.",
        "counter",
    );
    for (key, counts) in &snapshot.listeners {
        for (class, n) in counts.by_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "weft_http_requests_total{{{},code=\"{}xx\"}} {n}",
                listener_labels(key),
                class + 1
            );
        }
    }
    header(
        &mut out,
        "weft_http_request_duration_seconds",
        "How long the app's listeners took to answer.",
        "histogram",
    );
    for (key, counts) in &snapshot.listeners {
        histogram(
            &mut out,
            "weft_http_request_duration_seconds",
            &listener_labels(key),
            &counts.latency,
        );
    }
    let gauges: [(&str, &str, Gauge); 2] = [
        (
            "weft_pinned_instances",
            "Instances kept out of their pool because callers hold handles to their resources.",
            |c| c.pinned,
        ),
        (
            "weft_resource_handles",
            "Handles that callers hold to a component's resources.",
            |c| c.handles,
        ),
    ];
    for (name, help, value) in gauges {
        header(&mut out, name, help, "gauge");
        for (key, counts) in &snapshot.resources {
            let labels = labels(&[
                ("component", &key.component),
                ("group", &key.group),
                ("version", &key.version),
            ]);
            let _ = writeln!(out, "{name}{{{labels}}} {}", value(counts));
        }
    }
    out
}

/// One counter of a method's counts.
type Count = fn(&MethodCounts) -> u64;

/// One gauge of a component's resources.
type Gauge = fn(&ResourceCounts) -> u64;

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A histogram's `_bucket` (cumulative), `_sum` and `_count` lines.
fn histogram(out: &mut String, name: &str, labels: &str, counts: &HistogramCounts) {
    let mut cumulative = 0;
    for (i, n) in counts.buckets.iter().enumerate() {
        cumulative += n;
        let le = match LATENCY_BOUNDS_NS.get(i) {
            Some(ns) => seconds(*ns),
            None => "+Inf".to_string(),
        };
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", seconds(counts.sum_ns));
    let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
}

/// Nanoseconds as seconds, written as Prometheus reads floats.
fn seconds(ns: u64) -> String {
    format!("{}", ns as f64 / 1e9)
}

fn method_labels(key: &MethodKey) -> String {
    labels(&[
        ("caller", &key.caller),
        ("component", &key.component),
        ("interface", &key.interface),
        ("method", &key.method),
        ("remote", if key.remote { "true" } else { "false" }),
        ("group", &key.group),
        ("version", &key.version),
    ])
}

fn listener_labels(key: &ListenerKey) -> String {
    labels(&[("listener", &key.listener), ("version", &key.version)])
}

/// `name="value",…`, with each value escaped as the format requires.
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::examples;

    #[test]
    fn a_call_and_a_request_render_as_counters_and_histograms() {
        let metrics = examples::one_call_and_request();
        let text = render(&metrics.snapshot());
        let labels = r#"caller="frontend",component="greeter",interface="demo:hello/greeter@0.1.0",method="greet",remote="true",group="frontend",version="abc""#;
        for line in [
            format!("weft_calls_total{{{labels}}} 1"),
            format!("weft_call_errors_total{{{labels}}} 0"),
            format!("weft_call_request_bytes_total{{{labels}}} 12"),
            format!("weft_call_response_bytes_total{{{labels}}} 30"),
            format!("weft_call_duration_seconds_bucket{{{labels},le=\"0.00025\"}} 0"),
            format!("weft_call_duration_seconds_bucket{{{labels},le=\"0.0005\"}} 1"),
            format!("weft_call_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 1"),
            format!("weft_call_duration_seconds_sum{{{labels}}} 0.0003"),
            format!("weft_call_duration_seconds_count{{{labels}}} 1"),
            r#"weft_http_requests_total{listener="web",version="abc",code="2xx"} 1"#.to_string(),
            r#"weft_http_requests_total{listener="web",version="abc",code="5xx"} 0"#.to_string(),
            r#"weft_http_request_duration_seconds_count{listener="web",version="abc"} 1"#
                .to_string(),
            "# TYPE weft_call_duration_seconds histogram".to_string(),
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line} in\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(labels(&[("a", "x\"y\\z\nw")]), r#"a="x\"y\\z\nw""#);
    }
}
