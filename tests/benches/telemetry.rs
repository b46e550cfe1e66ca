//! (g): what telemetry costs one in-process call: the benchmark caller's
//! `add-loop` (typed `add(u64, u64)` calls from a guest into another
//! component) with telemetry on, versus the same app linked with it off.

use super::{bench_app, compare, per_call, time_calls};
use weft_runtime::app::{App, LoadOptions};
use weft_runtime::cache::CompileCache;
use weft_runtime::manifest::ManifestFile;

pub(crate) async fn telemetry_cost() -> anyhow::Result<()> {
    println!("\n(g) one in-process call with telemetry on versus off");
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
    let calls = compare(
        11,
        async || time_calls::<(u32,), (u64,)>(&off.pools["caller"], off_loop, 1, |_| (N,)).await,
        async || time_calls::<(u32,), (u64,)>(&on.pools["caller"], on_loop, 1, |_| (N,)).await,
    )
    .await?;
    println!(
        "    typed add, metrics on       off {:7.0} ns   on {:7.0} ns   ratio {:.2}x (target <= 1.25x)",
        per_call(calls.baseline, N),
        per_call(calls.subject, N),
        calls.ratio
    );
    Ok(())
}
