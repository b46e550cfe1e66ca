//! (f): rollouts under load. `samples/hello` deployed in one group and
//! split (release weft), with 8 clients sending requests one after another
//! on kept-alive connections as fast as they are answered:
//!
//! - for each placement, throughput and p99 during a 20-second shift to a
//!   new version, against the same load in the 10 seconds before it and
//!   the 10 after it (steady state). Outside the shift the workers accept
//!   the listener themselves; during it the manager's ingress does;
//! - split, the time `weft rollout --over 0` takes until the new version serves
//!   everything (its workers start from a warm compile cache);
//! - the split deployment's throughput against `weft run`'s, under the
//!   same load.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use weft_tests::{Connection, Weft, target_dir};

pub(crate) const CLIENTS: usize = 8;

/// Answers and their latencies from `CLIENTS` clients over `during`,
/// while `meanwhile` runs.
pub(crate) fn under_load<T>(
    address: SocketAddr,
    during: Duration,
    meanwhile: impl FnOnce() -> T,
) -> (Vec<Duration>, usize, T) {
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut connection = Connection::open(address);
                let (mut times, mut failed) = (Vec::new(), 0);
                while !stop.load(Ordering::SeqCst) {
                    let start = Instant::now();
                    let reply = connection.request("/?name=Ada");
                    times.push(start.elapsed());
                    failed += usize::from(reply.status != 200);
                }
                (times, failed)
            })
        })
        .collect();
    let started = Instant::now();
    let result = meanwhile();
    if let Some(left) = during.checked_sub(started.elapsed()) {
        std::thread::sleep(left);
    }
    stop.store(true, Ordering::SeqCst);
    let (mut times, mut failed) = (Vec::new(), 0);
    for c in clients {
        let (t, f) = c.join().expect("a client");
        times.extend(t);
        failed += f;
    }
    times.sort();
    (times, failed, result)
}

pub(crate) fn p99(sorted: &[Duration]) -> Duration {
    sorted[((sorted.len() - 1) as f64 * 0.99).round() as usize]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(crate) fn hello_copy(greeting: &str, dir: &Path) -> anyhow::Result<()> {
    let release = target_dir().join("wasm32-wasip2/release");
    for stem in ["hello_frontend", "hello_greeter"] {
        std::fs::copy(
            release.join(format!("{stem}.wasm")),
            dir.join(format!("{stem}.wasm")),
        )?;
    }
    std::fs::write(
        dir.join("weft.toml"),
        format!(
            "[app]\nname = \"hello\"\n[components.frontend]\nwasm = \"hello_frontend.wasm\"\n\
             [components.greeter]\nwasm = \"hello_greeter.wasm\"\n\
             [components.greeter.config]\ngreeting = \"{greeting}\"\n\
             [listeners.web]\ncomponent = \"frontend\"\naddress = \"127.0.0.1:0\"\n"
        ),
    )?;
    Ok(())
}

fn rollout(bin: &Path, dir: &Path, over: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let out = Command::new(bin)
        .args(["rollout", "--over", over])
        .arg(dir)
        .env("WEFT_CACHE_DIR", weft_tests::shared_cache())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "rollout failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(start.elapsed())
}

/// Deploys hello with `plan` and measures a 20-second shift to a new
/// version under load against the steady state around it; returns the
/// binary, the app's folder and the deployment, still running.
fn shift(plan: &str) -> anyhow::Result<(std::path::PathBuf, tempfile::TempDir, Weft)> {
    println!("\n(f) hello {plan} under {CLIENTS} clients: a rollout's cost");
    let bin = target_dir().join("release/weft");
    let dir = tempfile::tempdir()?;
    hello_copy("Hello", dir.path())?;
    let app = Weft::spawn_binary(
        &bin,
        &["deploy", "--plan", plan],
        &[dir.path().to_str().unwrap()],
        &[],
    );
    let address = app.listeners["web"];
    // Warm up.
    under_load(address, Duration::from_secs(2), || ());

    // Steady state is measured 10 s before the shift and 10 s after it, so
    // that drift in the machine's speed hits both sides alike.
    let window = Duration::from_secs(20);
    let half = window / 2;
    let (mut steady, mut steady_failed, ()) = under_load(address, half, || ());
    let greeting = std::fs::read_to_string(dir.path().join("weft.toml"))?.replace("Hello", "Howdy");
    std::fs::write(dir.path().join("weft.toml"), greeting)?;
    let (shift, shift_failed, took) =
        under_load(address, window, || rollout(&bin, dir.path(), "20s"));
    took?;
    let (after, after_failed, ()) = under_load(address, half, || ());
    steady.extend(after);
    steady.sort();
    steady_failed += after_failed;
    let throughput = |n: usize| n as f64 / window.as_secs_f64();
    println!(
        "    steady   {:7.0} req/s   p99 {:6.2} ms   failed {steady_failed}",
        throughput(steady.len()),
        ms(p99(&steady))
    );
    println!(
        "    shifting {:7.0} req/s   p99 {:6.2} ms   failed {shift_failed}   throughput {:.2}x steady (target >= 0.8x), p99 {:.2}x (target <= 2x)",
        throughput(shift.len()),
        ms(p99(&shift)),
        shift.len() as f64 / steady.len() as f64,
        p99(&shift).as_secs_f64() / p99(&steady).as_secs_f64()
    );

    Ok((bin, dir, app))
}

pub(crate) fn rollouts() -> anyhow::Result<()> {
    shift("monolith")?;
    let (bin, dir, app) = shift("split")?;
    let mut switches = Vec::new();
    for greeting in ["Hello", "Howdy", "Hello", "Howdy", "Hello"] {
        let text = std::fs::read_to_string(dir.path().join("weft.toml"))?;
        let other = if greeting == "Hello" {
            "Howdy"
        } else {
            "Hello"
        };
        std::fs::write(dir.path().join("weft.toml"), text.replace(other, greeting))?;
        switches.push(rollout(&bin, dir.path(), "0")?);
    }
    switches.sort();
    println!(
        "    `weft rollout --over 0` until the new version serves everything: median {:.0} ms of 5",
        ms(switches[2])
    );
    drop(app);

    // weft run under the same load, against the split deployment.
    let run = Weft::spawn_binary(
        &bin,
        &["run"],
        &["samples/hello", "--listen", "web=127.0.0.1:0"],
        &[],
    );
    let (ran, _, ()) = under_load(run.listeners["web"], Duration::from_secs(10), || ());
    drop(run);
    let split_app = Weft::spawn_binary(
        &bin,
        &["deploy", "--plan", "split"],
        &[dir.path().to_str().unwrap()],
        &[],
    );
    let (split, _, ()) = under_load(split_app.listeners["web"], Duration::from_secs(10), || ());
    println!(
        "    weft run {:7.0} req/s   split {:7.0} req/s   split/run {:.2}x",
        ran.len() as f64 / 10.0,
        split.len() as f64 / 10.0,
        split.len() as f64 / ran.len() as f64
    );
    Ok(())
}
