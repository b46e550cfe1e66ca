//! (j): a method call on a resource handle against a plain function call of
//! the same shape (`counter.add(n) -> u64` against `add-plain(a, n) ->
//! u64`), in one process (`weft run`) and split (`weft deploy --plan
//! split`), timed by the calling guest itself (the counters fixture's
//! `/calls` route) so that the HTTP request around the loops is not
//! counted. Each request times both loops, one after the other; the figure
//! is the median of the per-request ratios.

use weft_tests::{Mode, Weft, http_get, target_dir};

/// Timed requests per mode, and calls per loop in each.
const REQUESTS: usize = 15;
const IN_PROCESS_CALLS: u64 = 20_000;
const SPLIT_CALLS: u64 = 2_000;

pub(crate) fn handle_calls() -> anyhow::Result<()> {
    println!(
        "\n(j) a method call on a resource handle vs a plain call of the same shape, \
         median of {REQUESTS} requests"
    );
    let bin = target_dir().join("release/weft");
    let wasm = target_dir().join("wasm32-wasip2/release");
    for (mode, calls) in [(Mode::Run, IN_PROCESS_CALLS), (Mode::Split, SPLIT_CALLS)] {
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("weft.toml"),
            format!(
                "[app]\nname = \"counters\"\n\
                 [components.front]\nwasm = \"{0}/fixture_counters_front.wasm\"\n\
                 [components.keeper]\nwasm = \"{0}/fixture_counters_keeper.wasm\"\n\
                 [listeners.web]\ncomponent = \"front\"\naddress = \"127.0.0.1:0\"\n",
                wasm.display()
            ),
        )?;
        let path = dir.path().to_str().expect("a UTF-8 temp path");
        let app = Weft::spawn_binary(&bin, mode.command(), &[path], &[]);
        let url = app.url("web", &format!("/calls?n={calls}"));
        // Warm up: instances, connections, the compile cache.
        for _ in 0..3 {
            assert_eq!(http_get(&url).0, 200);
        }
        let (mut handle, mut plain, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..REQUESTS {
            let (status, body) = http_get(&url);
            anyhow::ensure!(status == 200, "{body}");
            let field = |name: &str| -> anyhow::Result<f64> {
                let line = body
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}=")))
                    .ok_or_else(|| anyhow::anyhow!("no {name} in {body}"))?;
                Ok(line.parse::<f64>()? / calls as f64)
            };
            let (h, p) = (field("handle-ns")?, field("plain-ns")?);
            handle.push(h);
            plain.push(p);
            ratios.push(h / p);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "    {:<10} handle method {:>9.2} µs/call  plain call {:>9.2} µs/call  ratio {:.2}x (target <= 1.2x)",
            format!("{mode:?}"),
            median(&mut handle) / 1000.0,
            median(&mut plain) / 1000.0,
            median(&mut ratios)
        );
        drop(app);
    }
    Ok(())
}
