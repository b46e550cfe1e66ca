//! (e): HTTP requests to `samples/hello` at concurrency 1, one after another
//! on one kept-alive connection (as `wrk -c1` sends them), through `weft
//! run`, `weft deploy --plan monolith` and `weft deploy --plan split`.
//!
//! All three run at once, each from its own copy of the manifest, and every
//! round sends one request to each, so that drift in the machine's speed
//! hits all three alike. The deploy plans are compared with `weft run`: a
//! plan that stalls on the protocol (Nagle's algorithm against a delayed
//! ACK costs 40 ms a request) shows at once, both in the ratio and in the
//! slowest request.

use std::time::{Duration, Instant};
use weft_tests::{Connection, Mode, Weft, root, target_dir};

/// Requests per mode before timing starts, and timed rounds.
const WARM_UP: usize = 50;
const ROUNDS: usize = 1000;

/// One mode's timings, sorted.
struct Timings {
    mode: Mode,
    times: Vec<Duration>,
}

impl Timings {
    fn mean(&self) -> Duration {
        self.times.iter().sum::<Duration>() / self.times.len() as u32
    }

    fn percentile(&self, p: f64) -> Duration {
        let i = ((self.times.len() - 1) as f64 * p).round() as usize;
        self.times[i]
    }

    fn max(&self) -> Duration {
        *self.times.last().expect("timed requests")
    }
}

pub(crate) fn hello_latency() -> anyhow::Result<()> {
    println!(
        "\n(e) GET samples/hello at concurrency 1 on one kept-alive connection, {ROUNDS} requests per mode"
    );
    let bin = target_dir().join("release/weft");
    let manifest = std::fs::read_to_string(root().join("samples/hello/weft.toml"))?;
    // The same app for each mode, each in a folder of its own, so that two
    // deployments never share a state file.
    let wasm_dir = format!("{}/", target_dir().display());
    let mut apps = Vec::new();
    for mode in Mode::ALL {
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("weft.toml"),
            manifest.replace("../../target/", &wasm_dir),
        )?;
        let path = dir.path().to_str().expect("a UTF-8 temp path").to_string();
        let app = Weft::spawn_binary(
            &bin,
            mode.command(),
            &[&path, "--listen", "web=127.0.0.1:0"],
            &[],
        );
        let connection = Connection::open(app.listeners["web"]);
        apps.push((mode, dir, app, connection));
    }
    let path = "/?name=Ada&lang=en,fr";
    let expected = (200, "en: Hello, Ada!\nfr: Bonjour, Ada!\n".to_string());
    for (_, _, _, connection) in &mut apps {
        for _ in 0..WARM_UP {
            anyhow::ensure!(connection.get(path) == expected, "hello answered wrongly");
        }
    }
    let mut times = vec![Vec::with_capacity(ROUNDS); apps.len()];
    for _ in 0..ROUNDS {
        for ((_, _, _, connection), times) in apps.iter_mut().zip(&mut times) {
            let start = Instant::now();
            let answer = connection.get(path);
            times.push(start.elapsed());
            anyhow::ensure!(answer == expected, "hello answered wrongly: {answer:?}");
        }
    }
    let timings: Vec<Timings> = apps
        .iter()
        .zip(times)
        .map(|((mode, ..), mut times)| {
            times.sort();
            Timings { mode: *mode, times }
        })
        .collect();
    let run = &timings[0];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for t in &timings {
        let ratio = |f: fn(&Timings) -> Duration| ms(f(t)) / ms(f(run));
        let versus = if t.mode == Mode::Run {
            String::new()
        } else {
            format!(
                "   mean {:5.2}x, p99 {:5.2}x weft run{}",
                ratio(Timings::mean),
                ratio(|t| t.percentile(0.99)),
                if t.mode == Mode::Split {
                    " (target: mean <= 10x)"
                } else {
                    ""
                }
            )
        };
        println!(
            "    {:9} mean {:6.3} ms   p50 {:6.3} ms   p99 {:6.3} ms   max {:6.2} ms (target < 10 ms){versus}",
            format!("{:?}", t.mode).to_lowercase(),
            ms(t.mean()),
            ms(t.percentile(0.5)),
            ms(t.percentile(0.99)),
            ms(t.max()),
        );
    }
    Ok(())
}
