//! Metrics over OTLP/gRPC: every `OTEL_METRIC_EXPORT_INTERVAL` (60 s by
//! default), this process's counts go to the collector that
//! `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`
//! names, as cumulative sums and explicit-bucket histograms with the same
//! labels as `/metrics`:
//!
//! | OTLP metric | Prometheus name |
//! |---|---|
//! | `weft.calls` | `weft_calls_total` |
//! | `weft.call.errors` | `weft_call_errors_total` |
//! | `weft.call.duration` (s) | `weft_call_duration_seconds` |
//! | `weft.call.request.size`, `weft.call.response.size` (By) | `weft_call_request_bytes_total`, `weft_call_response_bytes_total` |
//! | `weft.http.requests` (with `code`) | `weft_http_requests_total` |
//! | `weft.http.request.duration` (s) | `weft_http_request_duration_seconds` |
//!
//! Each process sends its own counts; a collector adds them up, as the
//! manager's `/metrics` does. [`request`] is pure; [`export_every`] sends.

use super::metrics::{
    HistogramCounts, LATENCY_BOUNDS_NS, ListenerKey, MethodKey, Metrics, Snapshot,
};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where to send metrics, if the environment says.
pub fn endpoint() -> Option<String> {
    let exporter_off = std::env::var("OTEL_METRICS_EXPORTER").is_ok_and(|e| e == "none");
    [
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok().filter(|e| !e.is_empty()))
    .filter(|_| !exporter_off)
}

/// How often to send: `OTEL_METRIC_EXPORT_INTERVAL` milliseconds, else 60 s.
pub fn interval() -> Duration {
    std::env::var("OTEL_METRIC_EXPORT_INTERVAL")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_millis)
}

/// Sends `metrics` to `endpoint` every `interval`, for ever; a failed send
/// is logged once and tried again at the next turn.
pub async fn export_every(
    metrics: Arc<Metrics>,
    endpoint: String,
    interval: Duration,
    service: String,
) {
    let start = unix_nanos(SystemTime::now());
    let mut failing = false;
    loop {
        tokio::time::sleep(interval).await;
        let request = request(
            &metrics.snapshot(),
            &service,
            start,
            unix_nanos(SystemTime::now()),
        );
        let sent = match MetricsServiceClient::connect(endpoint.clone()).await {
            Ok(mut client) => client
                .export(request)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match sent {
            Err(e) if !failing => {
                tracing::warn!(
                    "cannot send metrics to {endpoint}: {e}; trying again every {interval:?}"
                );
                failing = true;
            }
            Ok(()) => failing = false,
            Err(_) => {}
        }
    }
}

/// Starts sending `metrics` over OTLP if the environment says where: the
/// task, to stop when the process stops serving.
pub fn spawn(metrics: &Arc<Metrics>) -> Option<tokio::task::JoinHandle<()>> {
    let endpoint = endpoint()?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "weft".to_string());
    Some(tokio::spawn(export_every(
        metrics.clone(),
        endpoint,
        interval(),
        service,
    )))
}

fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The snapshot as one OTLP export, counted from `start` to `now`
/// (nanoseconds since the Unix epoch), from `service`.
pub fn request(
    snapshot: &Snapshot,
    service: &str,
    start: u64,
    now: u64,
) -> ExportMetricsServiceRequest {
    let point = |attributes: Vec<KeyValue>, value: u64| NumberDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(number_data_point::Value::AsInt(value as i64)),
        ..Default::default()
    };
    let histogram_point = |attributes: Vec<KeyValue>, h: &HistogramCounts| HistogramDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: now,
        count: h.count(),
        sum: Some(h.sum_ns as f64 / 1e9),
        bucket_counts: h.buckets.clone(),
        explicit_bounds: LATENCY_BOUNDS_NS
            .iter()
            .map(|ns| *ns as f64 / 1e9)
            .collect(),
        ..Default::default()
    };
    let methods: Vec<(Vec<KeyValue>, _)> = snapshot
        .methods
        .iter()
        .map(|(key, counts)| (method_attributes(key), counts))
        .collect();
    let sum_of = |pick: fn(&super::metrics::MethodCounts) -> u64| {
        methods
            .iter()
            .map(|(a, c)| point(a.clone(), pick(c)))
            .collect()
    };
    let mut requests = Vec::new();
    for (key, counts) in &snapshot.listeners {
        for (class, n) in counts.by_class.iter().enumerate() {
            let mut attributes = listener_attributes(key);
            attributes.push(attribute("code", &format!("{}xx", class + 1)));
            requests.push(point(attributes, *n));
        }
    }
    let metrics = vec![
        sum(
            "weft.calls",
            "Cross-component calls.",
            "{call}",
            sum_of(|c| c.calls),
        ),
        sum(
            "weft.call.errors",
            "Cross-component calls that failed.",
            "{call}",
            sum_of(|c| c.errors),
        ),
        sum(
            "weft.call.request.size",
            "Bytes of arguments, in weft's wire encoding.",
            "By",
            sum_of(|c| c.request_bytes),
        ),
        sum(
            "weft.call.response.size",
            "Bytes of results, in weft's wire encoding.",
            "By",
            sum_of(|c| c.response_bytes),
        ),
        histogram(
            "weft.call.duration",
            "How long cross-component calls took, as their caller saw it.",
            methods
                .iter()
                .map(|(a, c)| histogram_point(a.clone(), &c.latency))
                .collect(),
        ),
        sum(
            "weft.http.requests",
            "HTTP requests the listeners answered.",
            "{request}",
            requests,
        ),
        histogram(
            "weft.http.request.duration",
            "How long the listeners took to answer.",
            snapshot
                .listeners
                .iter()
                .map(|(k, c)| histogram_point(listener_attributes(k), &c.latency))
                .collect(),
        ),
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![attribute("service.name", service)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(
                    opentelemetry_proto::tonic::common::v1::InstrumentationScope {
                        name: "weft".into(),
                        ..Default::default()
                    },
                ),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn sum(name: &str, description: &str, unit: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: unit.into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

fn histogram(name: &str, description: &str, points: Vec<HistogramDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: "s".into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    }
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn method_attributes(key: &MethodKey) -> Vec<KeyValue> {
    vec![
        attribute("caller", &key.caller),
        attribute("component", &key.component),
        attribute("interface", &key.interface),
        attribute("method", &key.method),
        attribute("remote", if key.remote { "true" } else { "false" }),
        attribute("group", &key.group),
        attribute("version", &key.version),
    ]
}

fn listener_attributes(key: &ListenerKey) -> Vec<KeyValue> {
    vec![
        attribute("listener", &key.listener),
        attribute("version", &key.version),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::examples;

    #[test]
    fn a_call_becomes_sums_and_a_histogram() {
        let metrics = examples::one_call_and_request();
        let request = request(&metrics.snapshot(), "weft", 1, 2);
        let scope = &request.resource_metrics[0].scope_metrics[0];
        let find = |name: &str| scope.metrics.iter().find(|m| m.name == name).unwrap();
        let Some(metric::Data::Sum(calls)) = &find("weft.calls").data else {
            panic!("weft.calls is a sum");
        };
        assert_eq!(
            calls.data_points[0].value,
            Some(number_data_point::Value::AsInt(1))
        );
        assert!(
            calls.data_points[0]
                .attributes
                .contains(&attribute("remote", "true"))
        );
        let Some(metric::Data::Histogram(duration)) = &find("weft.call.duration").data else {
            panic!("weft.call.duration is a histogram");
        };
        let point = &duration.data_points[0];
        assert_eq!(point.count, 1);
        assert_eq!(point.bucket_counts.len(), point.explicit_bounds.len() + 1);
    }
}
