//! Resources between components: a handle to a `counter` that `keeper`
//! exports, used by `front`, in one process and across processes.

use std::time::{Duration, Instant};
use weft_runtime::deploy::state::DeployState;
use weft_tests::metrics::{Sample, scrape, value};
use weft_tests::{COUNTERS_APP, Mode, Weft, app_dir, each_mode, free_address, http_get};

/// What `/scenario` answers: every shape a handle takes.
const SCENARIO: &str = "new=40\nadd=42\nname=a\nopen=8\n\
    open-error=counter 'c' cannot start at u64::MAX\nabsorb=50\nabsorbed-left=8\n\
    merge=a+b 58\nsplit=a+b/left 29 a+b/right 29\nconsume=51\nsame-keeper=true\n";

/// The group `keeper` runs in, and whether front's calls to it cross a
/// process.
fn placed(mode: Mode) -> (&'static str, &'static str) {
    match mode {
        Mode::Run | Mode::Monolith => ("main", "false"),
        Mode::Split => ("keeper", "true"),
    }
}

/// A gauge of `keeper`'s resources, summed over its replicas.
fn gauge(samples: &[Sample], name: &str) -> Option<f64> {
    let kept: Vec<f64> = samples
        .iter()
        .filter(|s| s.metric == name && s.labels.get("component") == Some("keeper"))
        .map(|s| match s.value {
            weft_tests::metrics::Value::Gauge(v) => v,
            _ => panic!("{name} is not a gauge"),
        })
        .collect();
    (!kept.is_empty()).then(|| kept.iter().sum())
}

/// Waits up to 10 s for `keeper`'s gauge `name` to read `expected`.
fn wait_for_gauge(admin: &str, name: &str, expected: f64) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let now = gauge(&scrape(admin), name);
        if now == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < until,
            "{name} stayed at {now:?}, not {expected}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start(mode: Mode, dir: &tempfile::TempDir, admin: &str) -> Weft {
    Weft::start(mode, &[dir.path().to_str().unwrap(), "--admin", admin])
}

#[test]
fn a_handle_works_in_every_shape_and_its_calls_reach_the_owner() {
    let dir = app_dir(COUNTERS_APP);
    each_mode(|mode| {
        let admin = free_address().to_string();
        let app = start(mode, &dir, &admin);
        const N: usize = 3;
        for _ in 0..N {
            assert_eq!(
                http_get(&app.url("web", "/scenario")),
                (200, SCENARIO.into()),
                "{mode:?}"
            );
        }
        let (group, remote) = placed(mode);
        let samples = scrape(&admin);
        // `add` is called once per scenario, on the handle `a`.
        let add = [
            ("caller", "front"),
            ("component", "keeper"),
            ("method", "[method]counter.add"),
            ("remote", remote),
        ];
        assert_eq!(
            value(&samples, "weft_calls_total", &add),
            Some(N as f64),
            "{mode:?}"
        );
        for method in [
            "[constructor]counter",
            "[static]counter.merge",
            "split",
            "open",
        ] {
            let labels = [
                ("method", method),
                ("remote", remote),
                ("component", "keeper"),
            ];
            assert_eq!(
                value(&samples, "weft_call_errors_total", &labels),
                Some(0.0),
                "{mode:?}: {method}"
            );
        }
        // Every handle was dropped, and with them the pins.
        wait_for_gauge(&admin, "weft_resource_handles", 0.0);
        wait_for_gauge(&admin, "weft_pinned_instances", 0.0);
        let kept = samples
            .iter()
            .find(|s| s.metric == "weft_pinned_instances")
            .expect("keeper's gauges");
        assert_eq!(kept.labels.get("group"), Some(group), "{mode:?}");
    });
}

#[test]
fn handles_held_at_once_pin_instances_until_they_are_dropped() {
    let dir = app_dir(COUNTERS_APP);
    each_mode(|mode| {
        let admin = free_address().to_string();
        let app = start(mode, &dir, &admin);
        const HELD: usize = 6;
        let url = app.url("web", "/hold?ms=3000");
        let holders: Vec<_> = (0..HELD)
            .map(|_| {
                let url = url.clone();
                std::thread::spawn(move || http_get(&url))
            })
            .collect();
        // Each request holds one handle, made by an instance of its own.
        wait_for_gauge(&admin, "weft_pinned_instances", HELD as f64);
        assert_eq!(
            gauge(&scrape(&admin), "weft_resource_handles"),
            Some(HELD as f64)
        );
        for holder in holders {
            let (status, body) = holder.join().unwrap();
            assert_eq!(
                (status, body.as_str()),
                (200, "kept=true\nvalue=1\n"),
                "{mode:?}"
            );
        }
        wait_for_gauge(&admin, "weft_pinned_instances", 0.0);
        wait_for_gauge(&admin, "weft_resource_handles", 0.0);
    });
}

#[test]
fn a_trap_in_the_owner_fails_the_call_and_retires_its_instance() {
    let dir = app_dir(COUNTERS_APP);
    each_mode(|mode| {
        let admin = free_address().to_string();
        let app = start(mode, &dir, &admin);
        let (status, _) = http_get(&app.url("web", "/crash"));
        assert_eq!(status, 500, "{mode:?}");
        let crash = [("method", "[method]counter.crash"), ("component", "keeper")];
        assert_eq!(
            value(&scrape(&admin), "weft_call_errors_total", &crash),
            Some(1.0),
            "{mode:?}"
        );
        // The caller's instance went with its request, and its handle with
        // it: nothing stays pinned.
        wait_for_gauge(&admin, "weft_pinned_instances", 0.0);
        wait_for_gauge(&admin, "weft_resource_handles", 0.0);
        assert_eq!(
            http_get(&app.url("web", "/scenario")),
            (200, SCENARIO.into()),
            "{mode:?}"
        );
    });
}

/// The pid of worker `name` of the deployment in `dir`.
fn worker_pid(dir: &tempfile::TempDir, name: &str) -> u32 {
    let state = DeployState::read(&DeployState::path(dir.path())).expect("the state file");
    let worker = state.workers.iter().find(|w| w.name == name);
    worker
        .and_then(|w| w.pid)
        .expect("a running worker has a pid")
}

fn kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Split, the keeper's replica dies while the front holds a handle: the
/// next call on it fails at once and says why, and a new handle works once
/// the replica is back.
#[test]
fn a_handle_whose_keeper_died_fails_clearly_and_a_new_one_works() {
    let dir = app_dir(COUNTERS_APP);
    let admin = free_address().to_string();
    let app = start(Mode::Split, &dir, &admin);
    let url = app.url("web", "/hold?ms=2000");
    let holder = std::thread::spawn(move || {
        let (status, body) = http_get(&url);
        (status, body, Instant::now())
    });
    wait_for_gauge(&admin, "weft_resource_handles", 1.0);
    kill(worker_pid(&dir, "keeper/0"));
    let (status, _, answered) = holder.join().unwrap();
    assert_eq!(status, 500, "a call on the dead keeper's handle fails");
    // It failed when the hold ended, not at some later timeout.
    let late = answered.elapsed();
    assert!(late < Duration::from_secs(5), "{late:?}");
    // The call on the dead keeper's handle is the one that failed.
    let add = [
        ("caller", "front"),
        ("method", "[method]counter.add"),
        ("remote", "true"),
    ];
    assert_eq!(
        value(&scrape(&admin), "weft_call_errors_total", &add),
        Some(1.0)
    );
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        match http_get(&app.url("web", "/scenario")) {
            (200, body) => {
                assert_eq!(body, SCENARIO);
                break;
            }
            (status, body) => {
                assert!(Instant::now() < until, "not back: {status} {body}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Split, the front's replica dies while it holds a handle: the keeper
/// keeps the resource for one lease (`[deploy] handle-lease`), then drops
/// it and gives its instance back.
#[test]
fn a_dead_callers_handles_are_dropped_after_the_lease() {
    let lease = "[deploy]\nhandle-lease = \"3s\"\n";
    let dir = app_dir(&format!("{COUNTERS_APP}{lease}"));
    let admin = free_address().to_string();
    let app = start(Mode::Split, &dir, &admin);
    let url = app.url("web", "/hold?ms=60000");
    std::thread::spawn(move || http_get(&url));
    wait_for_gauge(&admin, "weft_resource_handles", 1.0);
    kill(worker_pid(&dir, "front/0"));
    let killed = Instant::now();
    // Within the lease, the keeper still keeps it: the caller might only
    // be cut off for a moment.
    let held = gauge(&scrape(&admin), "weft_resource_handles");
    if killed.elapsed() < Duration::from_secs(2) {
        assert_eq!(held, Some(1.0), "kept within the lease");
    }
    wait_for_gauge(&admin, "weft_resource_handles", 0.0);
    wait_for_gauge(&admin, "weft_pinned_instances", 0.0);
    let dropped = killed.elapsed();
    assert!(
        dropped >= Duration::from_secs(2),
        "dropped after {dropped:?}"
    );
    drop(app);
}

/// The kvcounter's counter, unmodified, with `wasi:keyvalue` served by a
/// component (`kvstore`) instead of the host: the counter needs no grant,
/// and `weft links` shows where its imports go.
const PROVIDED_KV: &str = "[app]\nname = \"kvprovided\"\n\
     [components.http]\nwasm = \"{wasm:kvcounter_http}\"\n\
     [components.counter]\nwasm = \"{wasm:kvcounter_counter}\"\n\
     [components.kvstore]\nwasm = \"{wasm:fixture_kvstore}\"\n\
     [components.kvstore.grants]\nkeyvalue = [\"store\"]\n\
     [links]\n\"counter/wasi:keyvalue\" = \"kvstore\"\n\
     [listeners.web]\ncomponent = \"http\"\naddress = \"127.0.0.1:0\"\n";

#[test]
fn a_keyvalue_provider_component_serves_an_unmodified_consumer() {
    let dir = app_dir(PROVIDED_KV);
    let path = dir.path().to_str().unwrap();
    let (status, out, err) = weft_tests::weft_once(&["links", path, "--json"]);
    assert!(status.success(), "{err}");
    let links: Vec<serde_json::Value> = serde_json::from_str(&out).expect("JSON");
    for import in [
        "wasi:keyvalue/store@0.2.0-draft",
        "wasi:keyvalue/atomics@0.2.0-draft",
    ] {
        let link = links
            .iter()
            .find(|l| l["component"] == "counter" && l["import"] == import)
            .unwrap_or_else(|| panic!("no {import} in {out}"));
        assert_eq!(link["provider"], "component", "{link}");
        assert_eq!(link["from"], "kvstore", "{link}");
    }
    let store = links
        .iter()
        .find(|l| l["component"] == "kvstore" && l["import"] == "wasi:keyvalue/store@0.2.0-draft")
        .expect("kvstore's own store");
    assert_eq!(store["capability"], "keyvalue", "{store}");
    each_mode(|mode| {
        let data = tempfile::tempdir().unwrap();
        let admin = free_address().to_string();
        let args = [
            path,
            "--admin",
            &admin,
            "--data-dir",
            data.path().to_str().unwrap(),
        ];
        let app = Weft::start(mode, &args);
        for expected in 1..=3 {
            let body = format!("{{\"counter\":\"apples\",\"value\":{expected}}}\n");
            assert_eq!(
                http_get(&app.url("web", "/counter/apples")),
                (200, body),
                "{mode:?}"
            );
        }
        assert_eq!(
            http_get(&app.url("web", "/counter/apples?peek")),
            (200, "{\"counter\":\"apples\",\"value\":3}\n".into())
        );
        let (_, remote) = placed(mode);
        let increment = [
            ("caller", "counter"),
            ("component", "kvstore"),
            ("interface", "wasi:keyvalue/atomics@0.2.0-draft"),
            ("method", "increment"),
            ("remote", remote),
        ];
        assert_eq!(
            value(&scrape(&admin), "weft_calls_total", &increment),
            Some(3.0),
            "{mode:?}"
        );
    });
}
