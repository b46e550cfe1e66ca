//! Reading an app's `/metrics` (at its `--admin` address) with a real
//! Prometheus text parser.

use prometheus_parse::Scrape;
pub use prometheus_parse::{Sample, Value};

/// Every sample the admin address at `admin` serves.
pub fn scrape(admin: &str) -> Vec<Sample> {
    let (status, body) = crate::http_get(&format!("http://{admin}/metrics"));
    assert_eq!(status, 200, "{body}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    Scrape::parse(lines)
        .unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{body}"))
        .samples
}

/// The value of the sample `metric` whose labels include `labels`.
pub fn value(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => panic!("{metric} is not a plain number"),
        })
}
