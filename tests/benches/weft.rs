//! weft's benchmark: `cargo bench -p weft-tests --bench weft`, or
//! `cargo bench -p weft-tests --bench weft -- d e` for some parts only.
//!
//! Every figure is printed next to a baseline measured in the same run, as a
//! ratio, because these machines are noisy:
//!
//! - (a) one in-process cross-component call (a guest calling an import
//!   that another component serves) versus the host calling the same export
//!   directly through a typed function, for `u64` arguments and for a record
//!   holding a string;
//! - (b) borrowing a warm instance from a pool versus instantiating a fresh
//!   one, per request;
//! - (c) `weft run` to the first HTTP response of `samples/hello`, with a
//!   cold and a warm compile cache;
//! - (d) one cross-process call through weft (a guest's import, the codec,
//!   gRPC to a `weft worker` process, the callee, and back) versus a
//!   hand-written tonic unary echo in another process carrying the same
//!   payload bytes in the same message: p50 and p99 for 64 B and 64 KiB,
//!   throughput with 16 concurrent callers, and cross-process versus
//!   in-process latency;
//! - (e) an HTTP request to `samples/hello` at concurrency 1 through `weft
//!   deploy --plan monolith` and `--plan split`, versus `weft run`;
//! - (f) a rollout under load: throughput and p99 during the shift versus
//!   steady state, the time to switch at once, and split versus `weft run`;
//! - (g) one in-process call with telemetry on versus off;
//! - (h) the HotOS paper's Table 2: `samples/boutique` under a bounded
//!   load, colocated, in three groups and split (throughput, p50, p99, CPU
//!   per 1000 requests), with split over colocated next to the paper's,
//!   and the plan `weft plan` chooses under a constraint, moved to live,
//!   its latency per page predicted and measured;
//! - (i) on the simulated three-node cluster (as root): throughput and p99
//!   during a `weft rollout --kube` against steady state, and the
//!   boutique's pods' start time cold against warm;
//! - (j) a method call on a resource handle against a plain call of the
//!   same shape, in one process and split;
//! - (k) `wasi:blobstore` write and read throughput of a 256 MiB object
//!   against `cp` of the same size on the same disk;
//! - (l) an async call between WASI 0.3 components against a sync call of
//!   the same shape, in one process and split;
//! - (m) how long `weft plan`'s search takes for 12 to 200 components, and
//!   its plan's cost against a planted one;
//! - (n) `weft deploy --plan monolith` against `weft run` under the same
//!   load, hello and the boutique's mix, at concurrency 1 and 16.
//!
//! (a) also runs the same sync calls in an app that has a WASI 0.3
//! component (so the concurrent engine is in use beside the plain one),
//! and with every component forced onto the concurrent engine.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wasmtime::component::{ComponentType, Lift, Lower};
use weft_runtime::app::{App, LoadOptions};
use weft_runtime::cache::CompileCache;
use weft_runtime::manifest::ManifestFile;
use weft_tests::{cargo, http_get, root, target_dir};

mod blobs;
mod boutique;
mod colocated;
mod flow;
mod http;
mod kube;
mod plan;
mod resources;
mod rollout;
mod rpc;
mod telemetry;

/// Set in the environment of the baseline's echo server process.
const ECHO_SERVER: &str = "WEFT_BENCH_ECHO_SERVER";

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq)]
#[component(record)]
struct Item {
    id: u64,
    text: String,
}

fn main() -> anyhow::Result<()> {
    // As a `weft` process does; the callers measured here run in this one.
    weft_runtime::heap::keep_freed_memory();
    // The baseline of (d) runs in a process of its own: this binary, again.
    if std::env::var_os(ECHO_SERVER).is_some() {
        return rpc::echo_server();
    }
    // `cargo bench` passes `--bench`; other arguments name the parts to
    // run (`-- d e`), and none means every part.
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let runs = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    println!("weft benchmark (each ratio compares two figures measured in this run)\n");
    cargo(&[
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "-p",
        "fixture-bench-callee",
        "-p",
        "fixture-bench-caller",
        "-p",
        "hello-frontend",
        "-p",
        "hello-greeter",
        "-p",
        "fixture-counters-front",
        "-p",
        "fixture-counters-keeper",
        "-p",
        "fixture-blobs",
        "-p",
        "fixture-flow-worker",
        "-p",
        "fixture-flow-front",
    ]);
    let runtime = tokio::runtime::Runtime::new()?;
    if runs("a") || runs("b") {
        runtime.block_on(in_process())?;
    }
    cargo(&["build", "--release", "-p", "weft-runtime", "--bin", "weft"]);
    if runs("c") && std::env::var_os("WEFT_BENCH_QUICK").is_none() {
        startup()?;
    }
    if runs("d") {
        runtime.block_on(rpc::cross_process())?;
    }
    if runs("e") {
        http::hello_latency()?;
    }
    if runs("f") {
        rollout::rollouts()?;
    }
    if runs("g") {
        runtime.block_on(telemetry::telemetry_cost())?;
    }
    if runs("h") {
        boutique::table2()?;
    }
    if runs("i") {
        kube::on_the_cluster()?;
    }
    if runs("j") {
        resources::handle_calls()?;
    }
    if runs("k") {
        blobs::blob_throughput()?;
    }
    if runs("l") {
        flow::async_calls()?;
    }
    if runs("m") {
        plan::planner_speed();
    }
    if runs("n") {
        colocated::colocated()?;
    }
    Ok(())
}

/// Calls export `export` of a borrowed instance of `pool` `calls` times
/// through a typed function, with `params(i)` for call `i`; the time of all.
async fn time_calls<P, R>(
    pool: &weft_runtime::pool::InstancePool,
    export: wasmtime::component::ComponentExportIndex,
    calls: u32,
    params: impl Fn(u32) -> P,
) -> anyhow::Result<Duration>
where
    P: wasmtime::component::ComponentNamedList + Lower + Send + Sync,
    R: wasmtime::component::ComponentNamedList + Lift + Send + Sync + 'static,
{
    pool.with_instance(async |w| {
        let f = w.instance.get_typed_func::<P, R>(&mut w.store, export)?;
        let start = Instant::now();
        for i in 0..calls {
            std::hint::black_box(f.call_async(&mut w.store, params(i)).await?);
        }
        Ok(start.elapsed())
    })
    .await
    .map_err(anyhow::Error::from)
}

/// Asks `url` for two loops of `calls` calls each that the guest times
/// itself and reports as `a=NS` and `b=NS` lines, `requests` times after
/// a warm-up: the medians of `a` and `b` per call, in ns, and of the
/// per-request ratios `a / b`.
fn guest_timed(
    url: &str,
    calls: u64,
    requests: usize,
    (a, b): (&str, &str),
) -> anyhow::Result<(f64, f64, f64)> {
    // Warm up: instances, connections, the compile cache.
    for _ in 0..3 {
        anyhow::ensure!(http_get(url).0 == 200, "{url} failed");
    }
    let (mut firsts, mut seconds, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..requests {
        let (status, body) = http_get(url);
        anyhow::ensure!(status == 200, "{body}");
        let field = |name: &str| -> anyhow::Result<f64> {
            let line = body
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .ok_or_else(|| anyhow::anyhow!("no {name} in {body}"))?;
            Ok(line.parse::<f64>()? / calls as f64)
        };
        let (first, second) = (field(a)?, field(b)?);
        firsts.push(first);
        seconds.push(second);
        ratios.push(first / second);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok((median(firsts), median(seconds), median(ratios)))
}

fn per_call(total: Duration, n: u32) -> f64 {
    total.as_nanos() as f64 / f64::from(n)
}

/// A baseline and a subject timed in turns, so that drift in the machine's
/// speed hits both alike: the medians of each, and the median of the
/// per-turn ratios subject / baseline.
struct Comparison {
    baseline: Duration,
    subject: Duration,
    ratio: f64,
}

async fn compare(
    turns: usize,
    mut baseline: impl AsyncFnMut() -> anyhow::Result<Duration>,
    mut subject: impl AsyncFnMut() -> anyhow::Result<Duration>,
) -> anyhow::Result<Comparison> {
    let (mut b, mut s, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..turns {
        let base = baseline().await?;
        let subj = subject().await?;
        r.push(subj.as_secs_f64() / base.as_secs_f64());
        b.push(base);
        s.push(subj);
    }
    b.sort();
    s.sort();
    r.sort_by(f64::total_cmp);
    Ok(Comparison {
        baseline: b[turns / 2],
        subject: s[turns / 2],
        ratio: r[turns / 2],
    })
}

/// A folder with the manifest of the benchmark's app: a caller whose
/// `driver` loops over calls to a callee's `target`.
fn bench_app() -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let wasm = target_dir().join("wasm32-wasip2/release");
    std::fs::write(
        dir.path().join("weft.toml"),
        format!(
            "[app]\nname = \"bench\"\n\
             [components.caller]\nwasm = \"{0}/fixture_bench_caller.wasm\"\n\
             [components.callee]\nwasm = \"{0}/fixture_bench_callee.wasm\"\n",
            wasm.display()
        ),
    )?;
    Ok(dir)
}

async fn in_process() -> anyhow::Result<()> {
    let dir = bench_app()?;
    let cache = tempfile::tempdir()?;
    let options = LoadOptions {
        data_dir: None,
        cache: CompileCache::new(cache.path()),
    };
    let app = App::load(ManifestFile::load(dir.path())?, &options).await?;
    let callee = app.pools["callee"].clone();
    let caller = app.pools["caller"].clone();
    // The same app with every forwarder on the `Val` path, to show the gain.
    weft_runtime::link::use_val_path_only(true);
    let val_app = App::load(ManifestFile::load(dir.path())?, &options).await?;
    weft_runtime::link::use_val_path_only(false);
    let val_caller = val_app.pools["caller"].clone();
    // The same app with its one group fused: the caller's import is wired
    // straight to the callee's export inside one composed component.
    let prepared = weft_runtime::app::Prepared::load(
        ManifestFile::load(dir.path())?,
        &CompileCache::new(cache.path()),
    )?;
    let everything: std::collections::BTreeSet<String> =
        prepared.compiled.keys().cloned().collect();
    let plan = weft_placer::Plan::monolith(everything.iter().cloned());
    let fused_app = App::start(
        &prepared,
        Some(&weft_runtime::app::Placement {
            group: weft_placer::MONOLITH_GROUP.to_string(),
            local: everything,
            remote: Default::default(),
            version: prepared.version(&plan),
            fuse: true,
        }),
        &Default::default(),
    )
    .await?;
    let fused_caller = fused_app.pools["caller"].clone();
    let export = |pool: &weft_runtime::pool::InstancePool, iface: &str, func: &str| {
        let component = pool.instance_pre().component();
        let i = component.get_export_index(None, iface).expect("interface");
        component
            .get_export_index(Some(&i), func)
            .expect("function")
    };
    let target = "demo:fixtures/target@0.1.0";
    let driver = "demo:fixtures/driver@0.1.0";
    let add = export(&callee, target, "add");
    let echo = export(&callee, target, "echo");
    const N: u32 = 20_000;
    const RUNS: usize = 11;
    let text = "a string of 32 bytes, give or ta".to_string();

    println!(
        "(a) one cross-component call, in process, versus a direct typed call from the host; \
         typed forwarders, the Val path for comparison, and the group fused"
    );
    for (what, subject) in [
        ("typed", &caller),
        ("Val", &val_caller),
        ("fused", &fused_caller),
    ] {
        // Export indices belong to one compiled component: the subject's own.
        let add_loop = export(subject, driver, "add-loop");
        let echo_loop = export(subject, driver, "echo-loop");
        let u64_calls = compare(
            RUNS,
            async || time_calls::<(u64, u64), (u64,)>(&callee, add, N, |i| (u64::from(i), 1)).await,
            async || time_calls::<(u32,), (u64,)>(subject, add_loop, 1, |_| (N,)).await,
        )
        .await?;
        let record_calls = compare(
            RUNS,
            async || {
                let item = |i| Item {
                    id: u64::from(i),
                    text: text.clone(),
                };
                time_calls::<(Item,), (Item,)>(&callee, echo, N, |i| (item(i),)).await
            },
            async || {
                time_calls::<(u32, String), (u64,)>(subject, echo_loop, 1, |_| (N, text.clone()))
                    .await
            },
        )
        .await?;
        for (call, calls) in [
            ("u64 add(u64, u64)", u64_calls),
            ("record { id: u64, text: string } echo", record_calls),
        ] {
            let (d, c) = (per_call(calls.baseline, N), per_call(calls.subject, N));
            let target = match what {
                "fused" => "1.1x",
                _ if call.starts_with("u64") => "1.5x",
                _ => "2.0x",
            };
            println!(
                "    {what:5} {call:38} direct {d:8.0} ns   cross-component {c:8.0} ns   ratio {:.2}x (target <= {target})",
                calls.ratio
            );
        }
    }
    concurrency_cost(&options, &caller, &export, N, RUNS, &text).await?;
    let echo_bytes = export(&callee, target, "echo-bytes");
    for (what, subject) in [("typed", &caller), ("Val", &val_caller)] {
        let bytes_loop = export(subject, driver, "bytes-loop");
        for (size, calls, target_time) in
            [(64usize << 10, 200u32, "100 us"), (4 << 20, 10, "10 ms")]
        {
            // The Val path takes half a second per 4 MiB call: fewer of them.
            let calls = if what == "Val" {
                calls.div_ceil(10)
            } else {
                calls
            };
            let data = vec![7u8; size];
            let bytes = compare(
                5,
                async || {
                    time_calls::<(&[u8],), (Vec<u8>,)>(&callee, echo_bytes, calls, |_| (&data[..],))
                        .await
                },
                async || {
                    time_calls::<(u32, u32), (u64,)>(subject, bytes_loop, 1, |_| {
                        (calls, size as u32)
                    })
                    .await
                },
            )
            .await?;
            let (d, c) = (
                per_call(bytes.baseline, calls),
                per_call(bytes.subject, calls),
            );
            println!(
                "    {what:5} list<u8> echo, {:>4} KiB{:15} direct {:8.1} us   cross-component {:8.1} us   ratio {:.2}x (target <= {target_time})",
                size >> 10,
                "",
                d / 1e3,
                c / 1e3,
                bytes.ratio
            );
        }
    }

    println!("\n(b) per request: borrowing a warm instance versus instantiating a fresh one");
    const M: u32 = 2_000;
    let borrowing = compare(
        RUNS,
        async || {
            let start = Instant::now();
            for _ in 0..M {
                drop(callee.fresh_instance().await?);
            }
            Ok(start.elapsed())
        },
        async || {
            let start = Instant::now();
            for _ in 0..M {
                callee.with_instance(async |_| Ok(())).await?;
            }
            Ok(start.elapsed())
        },
    )
    .await?;
    let (f, b) = (
        per_call(borrowing.baseline, M),
        per_call(borrowing.subject, M),
    );
    println!(
        "    fresh instantiation {f:8.0} ns   borrow + give back {b:8.0} ns   ratio {:.3}x",
        borrowing.ratio
    );
    Ok(())
}

/// (a) with async support on: the same sync calls in an app that also has
/// a WASI 0.3 component (so the concurrent engine runs beside the plain
/// one), and with every component forced onto the concurrent engine, each
/// against the plain app's calls.
async fn concurrency_cost(
    options: &LoadOptions,
    caller: &weft_runtime::pool::InstancePool,
    export: &impl Fn(
        &weft_runtime::pool::InstancePool,
        &str,
        &str,
    ) -> wasmtime::component::ComponentExportIndex,
    n: u32,
    runs: usize,
    text: &str,
) -> anyhow::Result<()> {
    let mixed_dir = bench_app()?;
    let manifest = mixed_dir.path().join("weft.toml");
    let mut toml = std::fs::read_to_string(&manifest)?;
    toml.push_str(&format!(
        "[components.flow]\nwasm = \"{}/fixture_flow_worker.wasm\"\n\
         [components.flow.grants]\nkeyvalue = [\"flow\"]\n",
        target_dir().join("wasm32-wasip2/release").display()
    ));
    std::fs::write(&manifest, toml)?;
    let data = tempfile::tempdir()?;
    let mixed_options = LoadOptions {
        data_dir: Some(data.path().to_path_buf()),
        ..options.clone()
    };
    let mixed = App::load(ManifestFile::load(mixed_dir.path())?, &mixed_options).await?;
    let dir = bench_app()?;
    weft_runtime::engine::use_concurrent_everywhere(true);
    let everywhere = App::load(ManifestFile::load(dir.path())?, options).await;
    weft_runtime::engine::use_concurrent_everywhere(false);
    let everywhere = everywhere?;
    let driver = "demo:fixtures/driver@0.1.0";
    println!(
        "    sync calls between sync components with async support on, against the same calls \
         in an app without async components"
    );
    for (what, app) in [
        ("in an app with a WASI 0.3 component", &mixed),
        ("every component on the concurrent engine", &everywhere),
    ] {
        let subject = &app.pools["caller"];
        for (call, func) in [("u64 add", "add-loop"), ("record echo", "echo-loop")] {
            let (base_loop, subject_loop) =
                (export(caller, driver, func), export(subject, driver, func));
            let calls = if func == "add-loop" {
                compare(
                    runs,
                    async || time_calls::<(u32,), (u64,)>(caller, base_loop, 1, |_| (n,)).await,
                    async || time_calls::<(u32,), (u64,)>(subject, subject_loop, 1, |_| (n,)).await,
                )
                .await?
            } else {
                let text = text.to_string();
                compare(
                    runs,
                    async || {
                        time_calls::<(u32, String), (u64,)>(caller, base_loop, 1, |_| {
                            (n, text.clone())
                        })
                        .await
                    },
                    async || {
                        time_calls::<(u32, String), (u64,)>(subject, subject_loop, 1, |_| {
                            (n, text.clone())
                        })
                        .await
                    },
                )
                .await?
            };
            let (b, c) = (per_call(calls.baseline, n), per_call(calls.subject, n));
            let target = if what.starts_with("in an app") {
                " (target <= 1.1x)"
            } else {
                ""
            };
            println!(
                "      {call:12} {what:42} plain {b:7.0} ns   with async on {c:7.0} ns   ratio {:.2}x{target}",
                calls.ratio
            );
        }
    }
    Ok(())
}

fn startup() -> anyhow::Result<()> {
    println!("\n(c) `weft run samples/hello` to its first HTTP response");
    let bin = target_dir().join("release/weft");
    const RUNS: usize = 5;
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..RUNS {
        let cache = tempfile::tempdir()?;
        cold.push(first_response(&bin, cache.path())?);
        warm.push(first_response(&bin, cache.path())?);
    }
    cold.sort();
    warm.sort();
    let (c, w) = (cold[RUNS / 2], warm[RUNS / 2]);
    println!(
        "    cold compile cache {:8.1} ms   warm compile cache {:8.1} ms   cold/warm {:.1}x (target >= 5x)",
        c.as_secs_f64() * 1e3,
        w.as_secs_f64() * 1e3,
        c.as_secs_f64() / w.as_secs_f64()
    );
    Ok(())
}

/// Starts `weft run`, waits for its listener, gets `/` once, and stops it.
fn first_response(bin: &Path, cache: &Path) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut child = Command::new(bin)
        .args([
            "run",
            "samples/hello",
            "--listen",
            "web=127.0.0.1:0",
            "--cache-dir",
        ])
        .arg(cache)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut addr = None;
    for line in lines.by_ref() {
        if let Some(rest) = line?.strip_prefix("weft: listener web on http://") {
            addr = rest.split_whitespace().next().map(str::to_string);
            break;
        }
    }
    // Keep reading, so that weft never writes into a full or closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let addr = addr.ok_or_else(|| anyhow::anyhow!("weft run printed no listener"))?;
    let (status, body) = http_get(&format!("http://{addr}/?name=Bench"));
    let elapsed = start.elapsed();
    anyhow::ensure!(status == 200, "unexpected response: {status} {body}");
    child.kill()?;
    child.wait()?;
    Ok(elapsed)
}
