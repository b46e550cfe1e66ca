//! Rates over the last minute, from snapshots of ever-growing counts (pure:
//! time is an input). `weft status` and the dashboard show these.
//!
//! A [`Window`] keeps snapshots taken every few seconds. The rate of a
//! method is the difference between the newest snapshot and the oldest one
//! still inside the window, over the time between them; its p50 and p99
//! come from the same difference of its latency histogram, interpolated
//! within a bucket as Prometheus's `histogram_quantile` does.

use super::metrics::{LATENCY_BOUNDS_NS, MethodCounts, MethodKey, Snapshot};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back the rates look.
pub const WINDOW: Duration = Duration::from_secs(60);

/// One method's calls over the window: what `weft status` and the
/// dashboard show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRate {
    /// Which method, called by whom, from where.
    #[serde(flatten)]
    pub key: MethodKey,
    /// Calls per second.
    pub calls_per_s: f64,
    /// Failed calls, in percent.
    pub error_pct: f64,
    /// Median latency, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile of latency, in milliseconds.
    pub p99_ms: f64,
}

/// Snapshots over time.
#[derive(Default)]
pub struct Window {
    samples: VecDeque<(Instant, Snapshot)>,
}

impl Window {
    /// Adds a snapshot taken at `at`, and forgets those no longer needed:
    /// it keeps the newest one that is at least [`WINDOW`] old as the base.
    pub fn push(&mut self, at: Instant, snapshot: Snapshot) {
        self.samples.push_back((at, snapshot));
        while self.samples.len() > 2 && at.saturating_duration_since(self.samples[1].0) >= WINDOW {
            self.samples.pop_front();
        }
    }

    /// The oldest snapshot kept, and when it was taken: the base of the
    /// rates.
    pub fn base(&self) -> Option<(Instant, Snapshot)> {
        self.samples.front().cloned()
    }

    /// Every method's rate between the oldest snapshot kept and `now`,
    /// whose counts are `current`; methods without calls in that time are
    /// left out. Empty until there is a snapshot to compare with.
    pub fn rates(&self, now: Instant, current: &Snapshot) -> Vec<CallRate> {
        let Some((since, base)) = self.samples.front() else {
            return Vec::new();
        };
        let seconds = now.saturating_duration_since(*since).as_secs_f64();
        if seconds <= 0.0 {
            return Vec::new();
        }
        let empty = MethodCounts::default();
        current
            .methods
            .iter()
            .filter_map(|(key, counts)| {
                let counted = counts.since(base.methods.get(key).unwrap_or(&empty));
                if counted.calls == 0 {
                    return None;
                }
                let ms = |q| quantile(&counted.latency.buckets, q).as_secs_f64() * 1e3;
                Some(CallRate {
                    key: key.clone(),
                    calls_per_s: counted.calls as f64 / seconds,
                    error_pct: 100.0 * counted.errors as f64 / counted.calls as f64,
                    p50_ms: ms(0.5),
                    p99_ms: ms(0.99),
                })
            })
            .collect()
    }
}

/// The `q` quantile of per-bucket `counts`, interpolated linearly within
/// its bucket; the slowest bucket, unbounded, answers its lower bound.
pub(crate) fn quantile(counts: &[u64], q: f64) -> Duration {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return Duration::ZERO;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, n) in counts.iter().enumerate() {
        if *n > 0 && (below + n) as f64 >= rank {
            let lower = if i == 0 { 0 } else { LATENCY_BOUNDS_NS[i - 1] };
            let Some(&upper) = LATENCY_BOUNDS_NS.get(i) else {
                return Duration::from_nanos(lower);
            };
            let within = (rank - below as f64) / *n as f64;
            return Duration::from_nanos(lower + ((upper - lower) as f64 * within) as u64);
        }
        below += n;
    }
    Duration::from_nanos(LATENCY_BOUNDS_NS[LATENCY_BOUNDS_NS.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::{Metrics, examples};

    #[test]
    fn rates_are_the_difference_over_the_window() {
        let metrics = Metrics::default();
        let greet = metrics.method(examples::greet("frontend", true));
        let start = Instant::now();
        let mut window = Window::default();
        window.push(start, metrics.snapshot());
        // 100 calls in 10 s, 5 failed, each 300 µs.
        for i in 0..100 {
            greet.record(Duration::from_micros(300), i % 20 == 0, 1, 1);
        }
        let later = start + Duration::from_secs(10);
        let rates = window.rates(later, &metrics.snapshot());
        assert_eq!(rates.len(), 1);
        let rate = &rates[0];
        assert!((rate.calls_per_s - 10.0).abs() < 1e-9);
        assert!((rate.error_pct - 5.0).abs() < 1e-9);
        // All in the 250–500 µs bucket: the median halfway, p99 near its top.
        assert!((rate.p50_ms - 0.375).abs() < 1e-9, "{rate:?}");
        assert!(rate.p99_ms > 0.490 && rate.p99_ms <= 0.500, "{rate:?}");
    }

    #[test]
    fn old_snapshots_leave_the_window() {
        let metrics = Metrics::default();
        let greet = metrics.method(examples::greet("frontend", true));
        let start = Instant::now();
        let mut window = Window::default();
        for second in 0..=120 {
            if second < 60 {
                greet.record(Duration::from_micros(10), false, 1, 1);
            }
            window.push(start + Duration::from_secs(second), metrics.snapshot());
        }
        // Calls stopped a minute ago: nothing is left in the window.
        let now = start + Duration::from_secs(121);
        assert!(window.rates(now, &metrics.snapshot()).is_empty());
        assert!(window.samples.len() <= 62);
    }

    #[test]
    fn quantiles_of_nothing_are_zero() {
        assert_eq!(quantile(&[0, 0, 0], 0.5), Duration::ZERO);
    }
}
