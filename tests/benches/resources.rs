//! (j): a method call on a resource handle against a plain function call of
//! the same shape (`counter.add(n) -> u64` against `add-plain(a, n) ->
//! u64`), in one process (`weft run`) and split (`weft deploy --plan
//! split`), timed by the calling guest itself (the counters fixture's
//! `/calls` route) so that the HTTP request around the loops is not
//! counted. Each request times both loops, one after the other; the figure
//! is the median of the per-request ratios.

use weft_tests::{Mode, Weft, target_dir};

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
        let (handle, plain, ratio) =
            crate::guest_timed(&url, calls, REQUESTS, ("handle-ns", "plain-ns"))?;
        println!(
            "    {:<10} handle method {:>9.2} µs/call  plain call {:>9.2} µs/call  ratio {ratio:.2}x (target <= 1.2x)",
            format!("{mode:?}"),
            handle / 1000.0,
            plain / 1000.0,
        );
        drop(app);
    }
    Ok(())
}
