//! WASI 0.3 between components: a `wasi:http@0.3` front calls a worker's
//! async functions concurrently, passes it streams and gets streams and
//! futures back, cancels a call, and calls a WASI 0.2 component, in one
//! process and across processes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use weft_runtime::deploy::state::DeployState;
use weft_tests::{FLOW_APP, Mode, Weft, app_dir, each_mode, http_get, served_calls};

/// What the stream routes answer for `bytes` bytes, byte `i` being
/// `i % 251`.
fn tally(bytes: u64) -> String {
    let sum: u64 = (0..bytes).map(|i| i % 251).sum();
    format!("bytes={bytes} sum={sum}\n")
}

/// Calls from other processes that the worker serving `component` ran,
/// by function.
fn served_by(dir: &std::path::Path, component: &str) -> std::collections::BTreeMap<String, u64> {
    served_calls(dir)
        .into_iter()
        .filter_map(|(key, calls)| {
            let (_worker, function) = key.split_once(' ')?;
            let (who, function) = function.split_once(": ")?;
            (who == component).then(|| (function.to_string(), calls))
        })
        .collect()
}

#[test]
fn async_components_stream_and_call_each_other_concurrently_in_every_mode() {
    let dir = app_dir(FLOW_APP);
    each_mode(|mode| {
        let app = Weft::start(mode, &[dir.path().to_str().unwrap()]);
        let get = |path: &str| http_get(&app.url("web", path));
        // A WASI 0.3 listener calling a WASI 0.2 component.
        assert_eq!(
            get("/greet?name=Ada"),
            (200, "en: Hello, Ada!\n".into()),
            "{mode:?}"
        );

        // Six calls at once, each held for 400 ms by its callee: served
        // at the same time, they were served by six instances.
        let (status, body) = get("/fanout?n=6&ms=400");
        assert_eq!(status, 200, "{mode:?}: {body}");
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines.len(), 6, "{mode:?}: {body}");
        for (i, line) in lines.iter().enumerate() {
            assert!(line.starts_with(&format!("fan-{i}@")), "{mode:?}: {body}");
        }
        let instances: BTreeSet<&str> = lines.iter().filter_map(|l| l.split('@').nth(1)).collect();
        assert_eq!(instances.len(), 6, "{mode:?}: one instance each: {body}");

        // Streams both ways, and a future: the front writes, the worker
        // writes, and the worker's stream passes through the front.
        const BYTES: u64 = 3_000_000;
        for route in ["upload", "download", "pump"] {
            assert_eq!(
                get(&format!("/{route}?bytes={BYTES}")),
                (200, tally(BYTES)),
                "{mode:?} {route}"
            );
        }
        assert_eq!(get("/upload?bytes=0"), (200, tally(0)), "{mode:?}");
        // A stream of numbers, read in runs shorter than they are written.
        assert_eq!(
            get("/numbers?n=100000"),
            (200, "count=100000 sum=5000050000 last=100000\n".into()),
            "{mode:?}"
        );

        // The late call is cancelled when the early one answers; its
        // callee never gets to record it as finished.
        let tag = format!("{mode:?}").to_lowercase();
        let (status, body) = get(&format!("/race?tag={tag}"));
        assert_eq!(status, 200, "{mode:?}");
        assert!(
            body.starts_with(&format!("first={tag}-early@")),
            "{mode:?}: {body}"
        );
        assert_eq!(
            get(&format!("/finished?tag={tag}-early")),
            (200, "true\n".into())
        );
        std::thread::sleep(Duration::from_millis(3500));
        assert_eq!(
            get(&format!("/finished?tag={tag}-late")),
            (200, "false\n".into()),
            "{mode:?}: the cancelled call ran to its end"
        );

        if mode == Mode::Split {
            // The proof that every call crossed a process: the worker's
            // and the greeter's own counts.
            let worker = served_by(dir.path(), "worker");
            let calls = |f: &str| worker.get(&format!("demo:flow/work@0.1.0#{f}")).copied();
            assert_eq!(calls("slow"), Some(6 + 2), "{worker:?}");
            assert_eq!(calls("count"), Some(3), "{worker:?}");
            assert_eq!(calls("generate"), Some(2), "{worker:?}");
            assert_eq!(calls("finished"), Some(2), "{worker:?}");
            assert_eq!(calls("numbers"), Some(1), "{worker:?}");
            let greeter = served_by(dir.path(), "greeter");
            assert_eq!(
                greeter.get("demo:hello/greeter@0.1.0#greet"),
                Some(&1),
                "{greeter:?}"
            );
        }
        if mode == Mode::Monolith {
            assert!(
                served_calls(dir.path()).values().all(|calls| *calls == 0),
                "no call crosses a process in one group"
            );
        }
    });
}

/// Kilobytes of memory the process `pid` holds now, and at its peak.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn a_gibibyte_streams_through_a_split_app_with_flat_memory() {
    // Worker to front to worker: the bytes cross two processes, and
    // neither holds more than a few frames of them at a time.
    const GIB: u64 = 1 << 30;
    /// How much more memory, at its peak, a process may hold than before.
    const BOUND_KB: u64 = 64 << 10;
    let dir = app_dir(FLOW_APP);
    let app = Weft::start(Mode::Split, &[dir.path().to_str().unwrap()]);
    // Warm: the first calls grow pools and buffers once.
    assert_eq!(
        http_get(&app.url("web", "/pump?bytes=1000000")),
        (200, tally(1_000_000))
    );
    let state = DeployState::read(&DeployState::path(dir.path())).expect("the state file");
    let pids: Vec<(String, u32)> = state
        .workers
        .iter()
        .map(|w| (w.name.clone(), w.pid.expect("a worker's pid")))
        .collect();
    let before: Vec<u64> = pids.iter().map(|(_, pid)| memory(*pid).1).collect();
    let started = Instant::now();
    let (status, body) = http_get(&app.url("web", &format!("/pump?bytes={GIB}")));
    // 1 GiB of `i % 251`: whole runs of 0..=250, then the rest.
    let (runs, rest) = (GIB / 251, GIB % 251);
    let sum = runs * (250 * 251 / 2) + rest * (rest - 1) / 2;
    assert_eq!(
        (status, body),
        (200, format!("bytes={GIB} sum={sum}\n")),
        "after {:?}",
        started.elapsed()
    );
    for ((name, pid), before) in pids.iter().zip(before) {
        let (_, peak) = memory(*pid);
        assert!(
            peak <= before + BOUND_KB,
            "{name} peaked at {peak} kB, {} kB more than before the stream (bound {BOUND_KB} kB)",
            peak.saturating_sub(before)
        );
    }
    let worker = served_by(dir.path(), "worker");
    assert_eq!(worker.get("demo:flow/work@0.1.0#generate"), Some(&2));
    assert_eq!(worker.get("demo:flow/work@0.1.0#count"), Some(&2));
}

#[test]
fn a_stream_that_never_yields_ends_at_the_callers_deadline() {
    // The front gives up after 2 s; the worker's stream never yields.
    let manifest = FLOW_APP.replace(
        "wasm = \"{wasm:fixture_flow_front}\"\n",
        "wasm = \"{wasm:fixture_flow_front}\"\ncall-timeout = \"2s\"\n",
    );
    let dir = app_dir(&manifest);
    for mode in [Mode::Run, Mode::Split] {
        let app = Weft::start(mode, &[dir.path().to_str().unwrap()]);
        let started = Instant::now();
        let (status, _) = http_get(&app.url("web", "/stall"));
        assert_eq!(status, 500, "{mode:?}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{mode:?}: the stalled call was not ended by its deadline"
        );
        // The next call works.
        assert_eq!(
            http_get(&app.url("web", "/greet?name=Bo")),
            (200, "en: Hello, Bo!\n".into()),
            "{mode:?}"
        );
        assert_eq!(
            http_get(&app.url("web", "/download?bytes=1000")),
            (200, tally(1000)),
            "{mode:?}"
        );
    }
}
