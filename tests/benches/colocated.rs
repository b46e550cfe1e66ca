//! (n): colocated means free. `weft deploy --plan monolith` against `weft
//! run` (release weft), under the same load: `samples/hello` and the
//! boutique's shopping mix, at concurrency 1 (the median latency) and 16
//! (the throughput). A one-group deployment's workers accept the listener
//! themselves and hold the key-value store's file, so it should cost what
//! one process does.
//!
//! The two run at once, each in a folder of its own, and are loaded in
//! turn, twice each (run, monolith, run, monolith), so that drift in the
//! machine's speed hits both alike.

use crate::boutique;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use weft_tests::{Connection, Weft, boutique_app, root, target_dir};

/// How long each load runs, per turn.
const TURN: Duration = Duration::from_secs(5);

/// A load's answers: latencies, sorted, and how long it ran.
struct Measured {
    latencies: Vec<Duration>,
    elapsed: Duration,
    failed: usize,
}

impl Measured {
    fn median(&self) -> Duration {
        self.latencies[self.latencies.len() / 2]
    }

    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn add(&mut self, other: Measured) {
        self.latencies.extend(other.latencies);
        self.latencies.sort();
        self.elapsed += other.elapsed;
        self.failed += other.failed;
    }
}

/// `clients` clients sending hello's greeting one after another, each on
/// its own kept-alive connection, for `TURN`.
fn hello_load(address: SocketAddr, clients: usize) -> Measured {
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                let mut connection = Connection::open(address);
                let (mut times, mut failed) = (Vec::new(), 0);
                while started.elapsed() < TURN {
                    let sent = Instant::now();
                    let reply = connection.request("/?name=Ada&lang=en,fr");
                    times.push(sent.elapsed());
                    failed += usize::from(reply.status != 200);
                }
                (times, failed)
            })
        })
        .collect();
    let mut measured = Measured {
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
        failed: 0,
    };
    for thread in threads {
        let (times, failed) = thread.join().expect("a client thread");
        measured.latencies.extend(times);
        measured.failed += failed;
    }
    measured.elapsed = started.elapsed();
    measured.latencies.sort();
    measured
}

/// The shop's mix from `clients` shoppers for `TURN`.
fn shop_load(address: SocketAddr, clients: usize) -> Measured {
    let figures = boutique::load(address, clients, TURN, &[]);
    Measured {
        failed: figures.failed,
        elapsed: figures.elapsed,
        latencies: figures.latencies,
    }
}

/// Loads `run` and `monolith` in turn, twice each, with `load`.
fn in_turn(
    run: SocketAddr,
    monolith: SocketAddr,
    load: impl Fn(SocketAddr) -> Measured,
) -> (Measured, Measured) {
    let (mut a, mut b) = (load(run), load(monolith));
    a.add(load(run));
    b.add(load(monolith));
    (a, b)
}

fn row(app: &str, clients: usize, run: &Measured, monolith: &Measured) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let failed = run.failed + monolith.failed;
    if clients == 1 {
        println!(
            "    {app:8} c{clients:<3} median   run {:7.3} ms   monolith {:7.3} ms   ratio {:.2}x (target <= 1.1x)   failed {failed}",
            ms(run.median()),
            ms(monolith.median()),
            monolith.median().as_secs_f64() / run.median().as_secs_f64()
        );
    } else {
        println!(
            "    {app:8} c{clients:<3} throughput   run {:7.0} /s   monolith {:7.0} /s   ratio {:.2}x (target <= 1.1x)   failed {failed}",
            run.throughput(),
            monolith.throughput(),
            run.throughput() / monolith.throughput()
        );
    }
}

/// Starts `command` on a copy of `dir`'s app.
fn start(bin: &Path, command: &[&str], dir: &Path) -> Weft {
    Weft::spawn_binary(bin, command, &[dir.to_str().expect("a UTF-8 path")], &[])
}

pub(crate) fn colocated() -> anyhow::Result<()> {
    println!(
        "\n(n) weft deploy --plan monolith against weft run, the same load in turn (ratios: monolith's time over run's)"
    );
    let bin = target_dir().join("release/weft");
    let hello = std::fs::read_to_string(root().join("samples/hello/weft.toml"))?
        .replace("../../target/", &format!("{}/", target_dir().display()))
        .replace("127.0.0.1:8080", "127.0.0.1:0");
    let (hello_run, hello_deploy) = (tempfile::tempdir()?, tempfile::tempdir()?);
    for dir in [&hello_run, &hello_deploy] {
        std::fs::write(dir.path().join("weft.toml"), &hello)?;
    }
    let run = start(&bin, &["run"], hello_run.path());
    let monolith = start(&bin, &["deploy", "--plan", "monolith"], hello_deploy.path());
    let (r, m) = (run.listeners["web"], monolith.listeners["web"]);
    hello_load(r, 4);
    hello_load(m, 4);
    for clients in [1, 16] {
        let (a, b) = in_turn(r, m, |address| hello_load(address, clients));
        row("hello", clients, &a, &b);
    }
    drop((run, monolith));

    let (shop_run, shop_deploy) = (
        boutique_app("weft.toml", None),
        boutique_app("weft.toml", None),
    );
    let run = start(&bin, &["run"], shop_run.path());
    let monolith = start(&bin, &["deploy", "--plan", "monolith"], shop_deploy.path());
    let (r, m) = (run.listeners["web"], monolith.listeners["web"]);
    shop_load(r, 4);
    shop_load(m, 4);
    for clients in [1, 16] {
        let (a, b) = in_turn(r, m, |address| shop_load(address, clients));
        row("boutique", clients, &a, &b);
    }
    Ok(())
}
