//! What a running app tells its operators: per-method and per-listener
//! metrics, served as Prometheus text on an admin address.
//!
//! - [`metrics`]: counters and latency histograms in atomics, and plain
//!   snapshots of them that add up across processes (pure).
//! - [`prometheus`]: a snapshot as Prometheus text (pure).
//! - [`window`]: calls per second, error share and latency percentiles
//!   over the last minute, from snapshots (pure).
//! - [`profile`]: a call profile (what `weft profile` writes) from two
//!   snapshots a window apart (pure).
//! - [`wire`]: snapshots as `Control.Metrics` messages, from a worker to
//!   the manager, which adds up its workers' counts.
//! - [`trace`]: spans for requests and calls, W3C context across
//!   processes, and their export over OTLP.
//! - [`otlp_metrics`]: the same counts sent over OTLP, when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` says where.
//! - [`logs`]: log lines as JSON objects, with component, group, version
//!   and trace id (`--log-format json`).
//! - [`dashboard`]: the dashboard page and its SVG call graph (pure).
//! - [`admin`]: the admin HTTP server (`--admin ADDR`): `/metrics` and
//!   the dashboard.
//!
//! Every forwarded call counts itself in its [`Forwarder`]'s stats, local
//! or remote, labelled with caller, callee, group and version; every
//! listener counts its requests by status class.
//!
//! [`Forwarder`]: crate::link::Forwarder

pub mod admin;
pub mod dashboard;
pub mod logs;
pub mod metrics;
pub mod otlp_metrics;
pub mod profile;
pub mod prometheus;
pub mod trace;
pub mod window;
pub mod wire;

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether forwarders linked from now on count their calls.
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns telemetry on or off for every forwarder linked from now on, so
/// that the benchmark can show what it costs. `WEFT_TELEMETRY=off` turns
/// it off for a `weft` process.
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether telemetry is on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}
