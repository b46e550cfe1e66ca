//! (g): what telemetry costs one in-process call: the benchmark caller's
//! `add-loop` (typed `add(u64, u64)` calls from a guest into another
//! component) with telemetry on, versus the same app linked with it off.
//!
//! "On" runs the calls inside a request's trace, as a listener would, with
//! a tracer that exports over OTLP to a receiver in this process: first a
//! trace that is not sampled (metrics, and spans decided against), then
//! one that is (every call a span, exported).

use super::{bench_app, compare, per_call, time_calls};
use opentelemetry::Context;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use weft_runtime::app::{App, LoadOptions};
use weft_runtime::cache::CompileCache;
use weft_runtime::manifest::ManifestFile;
use weft_tests::otlp::OtlpReceiver;

/// A request's trace, as a listener continues it.
fn request_trace(sampled: bool) -> Context {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
        SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
        flags,
        true,
        TraceState::default(),
    ))
}

pub(crate) async fn telemetry_cost() -> anyhow::Result<()> {
    println!("\n(g) one in-process call with telemetry on versus off");
    let receiver = OtlpReceiver::start();
    let _tracing = weft_runtime::telemetry::trace::export_to(&receiver.endpoint, "bench")?;
    let dir = bench_app()?;
    let cache = tempfile::tempdir()?;
    let options = LoadOptions {
        data_dir: None,
        cache: CompileCache::new(cache.path()),
    };
    let on = App::load(ManifestFile::load(dir.path())?, &options).await?;
    weft_runtime::telemetry::enable(false);
    let off = App::load(ManifestFile::load(dir.path())?, &options).await?;
    weft_runtime::telemetry::enable(true);
    let add_loop = |app: &App| {
        let component = app.pools["caller"].instance_pre().component();
        let driver = component
            .get_export_index(None, "demo:fixtures/driver@0.1.0")
            .expect("driver");
        component
            .get_export_index(Some(&driver), "add-loop")
            .expect("add-loop")
    };
    let (on_loop, off_loop) = (add_loop(&on), add_loop(&off));
    const N: u32 = 20_000;
    const RUNS: usize = 11;
    for (what, sampled) in [
        ("metrics, spans unsampled", false),
        ("metrics, every span sampled", true),
    ] {
        let before = receiver.spans().len();
        let calls = compare(
            RUNS,
            async || {
                time_calls::<(u32,), (u64,)>(&off.pools["caller"], off_loop, 1, |_| (N,))
                    .with_context(request_trace(sampled))
                    .await
            },
            async || {
                time_calls::<(u32,), (u64,)>(&on.pools["caller"], on_loop, 1, |_| (N,))
                    .with_context(request_trace(sampled))
                    .await
            },
        )
        .await?;
        let target = if sampled { "" } else { " (target <= 1.25x)" };
        println!(
            "    typed add, {what:28} off {:7.0} ns   on {:7.0} ns   ratio {:.2}x{target}",
            per_call(calls.baseline, N),
            per_call(calls.subject, N),
            calls.ratio
        );
        if sampled {
            // Give the batch exporter a moment, then count what arrived.
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let made = u64::from(N) * RUNS as u64;
            println!(
                "    spans received by the OTLP receiver: {} of {made} (the batch exporter's queue drops the rest)",
                receiver.spans().len() - before
            );
        }
    }
    Ok(())
}
