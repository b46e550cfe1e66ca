//! (l): an async call between components (`echo: async func(string) ->
//! string`, served on an instance of its own as a concurrent subtask)
//! against a sync call of the same shape (`echo-sync`), from the same
//! WASI 0.3 caller to the same callee, in one process (`weft run`) and
//! split (`weft deploy --plan split`), timed by the calling guest itself
//! (the flow fixture's `/calls` route). Each request times both loops;
//! the figure is the median of the per-request ratios.

use weft_tests::{FLOW_APP, Mode, Weft, app_dir, target_dir};

/// Timed requests per mode, and calls per loop in each.
const REQUESTS: usize = 15;
const IN_PROCESS_CALLS: u64 = 5_000;
const SPLIT_CALLS: u64 = 1_000;

pub(crate) fn async_calls() -> anyhow::Result<()> {
    println!(
        "\n(l) an async call between components vs a sync call of the same shape \
         (string -> string), median of {REQUESTS} requests"
    );
    let bin = target_dir().join("release/weft");
    let dir = app_dir(FLOW_APP);
    for (mode, calls) in [(Mode::Run, IN_PROCESS_CALLS), (Mode::Split, SPLIT_CALLS)] {
        let path = dir.path().to_str().expect("a UTF-8 temp path");
        let app = Weft::spawn_binary(&bin, mode.command(), &[path], &[]);
        let url = app.url("web", &format!("/calls?n={calls}"));
        let (asynchronous, sync, ratio) =
            crate::guest_timed(&url, calls, REQUESTS, ("async_ns", "sync_ns"))?;
        println!(
            "    {:<10} async call {:>9.2} µs/call  sync call {:>9.2} µs/call  ratio {ratio:.2}x",
            format!("{mode:?}"),
            asynchronous / 1000.0,
            sync / 1000.0,
        );
        drop(app);
    }
    Ok(())
}
