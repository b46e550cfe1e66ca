//! `weft rollout`, `weft rollback` and `weft status` against a running
//! `weft deploy`, over real HTTP, under a bounded load that runs throughout.

use std::path::Path;
use weft_runtime::deploy::state::DeployState;
use weft_tests::{Load, Mode, Reply, Weft, app_dir, assert_shifted, http_get, wasm, weft_once};

/// `samples/hello`, its greeter saying `greeting`, served by `greeter`.
fn hello(greeter: &str, greeting: &str) -> String {
    format!(
        "[app]\nname = \"hello\"\n\
         [components.frontend]\nwasm = \"{}\"\n\
         [components.greeter]\nwasm = \"{}\"\n\
         [components.greeter.config]\ngreeting = \"{greeting}\"\n\
         [listeners.web]\ncomponent = \"frontend\"\naddress = \"127.0.0.1:0\"\n",
        wasm("hello_frontend").display(),
        wasm(greeter).display()
    )
}

fn rewrite(dir: &Path, manifest: &str) {
    std::fs::write(dir.join("weft.toml"), manifest).unwrap();
}

fn state(dir: &Path) -> DeployState {
    DeployState::read(&DeployState::path(dir)).expect("the manager writes .weft/deploy.json")
}

/// Runs `weft ARGS... DIR`, returning whether it succeeded and its output.
fn weft(args: &[&str], dir: &Path) -> (bool, String) {
    let mut all: Vec<&str> = args.to_vec();
    all.push(dir.to_str().unwrap());
    let (status, stdout, stderr) = weft_once(&all);
    (status.success(), format!("{stdout}{stderr}"))
}

/// The version that answered.
fn version_of(reply: &Reply) -> &str {
    reply.header("weft-version").unwrap_or("none")
}

#[test]
fn a_rollout_under_load_moves_every_request_atomically() {
    let dir = app_dir(&hello("hello_greeter", "Hello"));
    let app = Weft::start(Mode::Split, &[dir.path().to_str().unwrap()]);
    let a = state(dir.path()).version;
    let load = Load::start(app.listeners["web"], "/?name=Ada", 2);
    std::thread::sleep(std::time::Duration::from_millis(300));

    rewrite(dir.path(), &hello("hello_greeter", "Howdy"));
    let (ok, output) = weft(&["rollout", "--over", "3s"], dir.path());
    assert!(ok, "{output}");
    assert!(
        output.contains("step 1 of 4: 10 % of new requests go to"),
        "{output}"
    );
    let b = state(dir.path()).version;
    assert_ne!(a, b);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let clients = load.stop();

    for replies in &clients {
        for r in replies {
            assert_eq!(r.status, 200, "no request fails during a rollout: {r:?}");
            // No frontend of A reached a greeter of B, nor the reverse.
            let expected = if version_of(r) == a {
                "en: Hello, Ada!\n"
            } else {
                assert_eq!(version_of(r), b, "{r:?}");
                "en: Howdy, Ada!\n"
            };
            assert_eq!(r.body, expected, "{r:?}");
        }
        assert_shifted(replies, &a, &b);
    }
    let after = state(dir.path());
    assert_eq!(after.versions.len(), 1, "{after:?}");
    assert!(after.workers.iter().all(|w| w.version == b), "{after:?}");
}

#[test]
fn a_bad_version_is_rolled_back_by_itself() {
    let dir = app_dir(&hello("hello_greeter", "Hello"));
    let app = Weft::start(Mode::Split, &[dir.path().to_str().unwrap()]);
    let a = state(dir.path()).version;
    let load = Load::start(app.listeners["web"], "/?name=Ada", 2);

    rewrite(dir.path(), &hello("fixture_bad_greeter", "Hello"));
    let (ok, output) = weft(&["rollout", "--over", "30s"], dir.path());
    assert!(!ok, "the rollout must fail: {output}");
    assert!(output.contains(&format!("rolled back to {a}")), "{output}");
    assert!(
        output.contains("requests at the listeners (100.0%)"),
        "the figures are given: {output}"
    );
    let clients = load.stop();
    let all: Vec<&Reply> = clients.iter().flatten().collect();
    let failed = all.iter().filter(|r| r.status != 200).count();
    // B had 10 % of new requests until 20 of them failed: the failures
    // are bounded by the first step's share.
    assert!(failed >= 20, "{failed} failed");
    assert!(
        failed * 100 <= all.len() * 10 + 100,
        "{failed} of {} failed",
        all.len()
    );
    assert!(
        all.iter()
            .filter(|r| r.status != 200)
            .all(|r| version_of(r) != a)
    );
    // A has everything again.
    let after = state(dir.path());
    assert_eq!(after.version, a);
    assert_eq!(after.versions.len(), 1, "{after:?}");
    for _ in 0..10 {
        assert_eq!(http_get(&app.url("web", "/?name=Ada")).0, 200);
    }
}

#[test]
fn a_version_that_cannot_start_moves_no_traffic() {
    let dir = app_dir(&hello("hello_greeter", "Hello"));
    let app = Weft::start(Mode::Split, &[dir.path().to_str().unwrap()]);
    let before = state(dir.path());
    let load = Load::start(app.listeners["web"], "/?name=Ada", 2);
    // The new greeter exports nothing the frontend imports: a link error.
    rewrite(dir.path(), &hello("fixture_ping", "Hello"));
    let (ok, output) = weft(&["rollout", "--over", "0"], dir.path());
    assert!(!ok, "{output}");
    for r in load.stop().iter().flatten() {
        assert_eq!(
            (r.status, version_of(r)),
            (200, before.version.as_str()),
            "{r:?}"
        );
    }
    assert!(output.contains("no component exports it"), "{output}");
    assert!(
        output.contains(&format!("version {} keeps all the traffic", before.version)),
        "{output}"
    );
    assert_eq!(state(dir.path()).versions, before.versions);
    assert_eq!(
        http_get(&app.url("web", "/?name=Ada")),
        (200, "en: Hello, Ada!\n".into())
    );
}

#[test]
fn a_placement_change_is_a_rollout_with_no_failed_request() {
    let dir = app_dir(&hello("hello_greeter", "Hello"));
    let app = Weft::start(Mode::Split, &[dir.path().to_str().unwrap()]);
    let load = Load::start(app.listeners["web"], "/?name=Ada", 2);
    for plan in ["monolith", "split"] {
        let (ok, output) = weft(&["rollout", "--plan", plan, "--over", "2s"], dir.path());
        assert!(ok, "{output}");
        let groups: Vec<String> = state(dir.path())
            .workers
            .iter()
            .map(|w| w.group.clone())
            .collect();
        let expected: &[&str] = if plan == "monolith" {
            &["main"]
        } else {
            &["frontend", "greeter"]
        };
        assert_eq!(groups, expected, "{plan}");
    }
    let clients = load.stop();
    for r in clients.iter().flatten() {
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "en: Hello, Ada!\n"),
            "{r:?}"
        );
    }
}

#[test]
fn rollback_returns_to_a_stored_version() {
    let dir = app_dir(&hello("hello_greeter", "Hello"));
    let app = Weft::start(Mode::Split, &[dir.path().to_str().unwrap()]);
    let url = app.url("web", "/?name=Ada");
    let a = state(dir.path()).version;
    let load = Load::start(app.listeners["web"], "/?name=Ada", 2);
    rewrite(dir.path(), &hello("hello_greeter", "Howdy"));
    assert!(weft(&["rollout", "--over", "0"], dir.path()).0);
    let b = state(dir.path()).version;
    assert_eq!(http_get(&url).1, "en: Howdy, Ada!\n");

    // Back to the previous version, whose files are gone from the manifest.
    let (ok, output) = weft(&["rollback"], dir.path());
    assert!(ok, "{output}");
    assert_eq!(state(dir.path()).version, a);
    assert_eq!(http_get(&url).1, "en: Hello, Ada!\n");

    // And to a version by name.
    let (ok, output) = weft(&["rollback", "--to", &b], dir.path());
    assert!(ok, "{output}");
    assert_eq!(state(dir.path()).version, b);
    assert_eq!(http_get(&url).1, "en: Howdy, Ada!\n");

    // Every request was answered, by one version or the other, throughout.
    for r in load.stop().iter().flatten() {
        assert_eq!(r.status, 200, "{r:?}");
        let greeting = if version_of(r) == a { "Hello" } else { "Howdy" };
        assert_eq!(r.body, format!("en: {greeting}, Ada!\n"), "{r:?}");
    }

    let (ok, output) = weft(&["rollback", "--to", "0123456789abcdef"], dir.path());
    assert!(!ok);
    assert!(
        output.contains("version 0123456789abcdef is not in the version store"),
        "{output}"
    );
}

#[test]
fn a_rollout_of_the_same_files_changes_nothing() {
    let dir = app_dir(&hello("hello_greeter", "Hello"));
    let _app = Weft::start(Mode::Split, &[dir.path().to_str().unwrap()]);
    let before = state(dir.path());
    let (ok, output) = weft(&["rollout"], dir.path());
    assert!(ok, "{output}");
    assert!(
        output.contains("is already running; nothing to do"),
        "{output}"
    );
    assert_eq!(state(dir.path()).workers, before.workers);
}

#[test]
fn counters_continue_across_a_rollout_and_lose_nothing() {
    let dir = app_dir(&weft_tests::kvcounter_with_limit("64MiB"));
    let app = Weft::start(Mode::Split, &[dir.path().to_str().unwrap()]);
    let load = Load::start(app.listeners["web"], "/counter/hits", 3);
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::write(dir.path().join("weft.toml"), {
        // app_dir's template, with another limit: a new version.
        let text = std::fs::read_to_string(dir.path().join("weft.toml")).unwrap();
        text.replace("64MiB", "128MiB")
    })
    .unwrap();
    let (ok, output) = weft(&["rollout", "--over", "2s"], dir.path());
    assert!(ok, "{output}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let clients = load.stop();
    let mut values: Vec<u64> = Vec::new();
    for r in clients.iter().flatten() {
        assert_eq!(r.status, 200, "{r:?}");
        let value = r
            .body
            .split("\"value\":")
            .nth(1)
            .unwrap()
            .trim_end_matches(['}', '\n']);
        values.push(value.parse().unwrap());
    }
    // Every increment, in either version, got its own value: none lost,
    // none repeated, and the counts ran on across the versions.
    values.sort();
    let n = values.len() as u64;
    assert_eq!(values, (1..=n).collect::<Vec<u64>>());
    let (_, body) = http_get(&app.url("web", "/counter/hits"));
    assert!(body.contains(&format!("\"value\":{}", n + 1)), "{body}");
}

#[test]
fn a_worker_killed_during_the_shift_comes_back_as_its_version() {
    let dir = app_dir(&hello("hello_greeter", "Hello"));
    let app = Weft::start(Mode::Split, &[dir.path().to_str().unwrap()]);
    let load = Load::start(app.listeners["web"], "/?name=Ada", 2);
    rewrite(dir.path(), &hello("hello_greeter", "Howdy"));
    let rollout = {
        let dir = dir.path().to_path_buf();
        // A request that B's greeter holds when it is killed fails, and
        // with 20 requests that can be 5 %: this test is about the restart,
        // so the gate is wide.
        std::thread::spawn(move || {
            weft(
                &["rollout", "--over", "6s", "--max-failure-points", "50"],
                &dir,
            )
        })
    };
    // Wait for B's workers, then change the files again and kill B's greeter.
    let b_greeter = loop {
        let s = state(dir.path());
        if let Some(w) = s
            .workers
            .iter()
            .find(|w| w.name == "greeter/0" && w.version != s.version && w.pid.is_some())
        {
            break w.clone();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    rewrite(dir.path(), &hello("hello_greeter", "Hi there"));
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &b_greeter.pid.unwrap().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (ok, output) = rollout.join().unwrap();
    assert!(ok, "{output}\n{}", app.output());
    let after = state(dir.path());
    assert_eq!(after.version, b_greeter.version);
    let greeter = after
        .workers
        .iter()
        .find(|w| w.name == "greeter/0")
        .unwrap();
    assert!(greeter.restarts >= 1, "{after:?}");
    // The restarted greeter is B's, from B's snapshot, not the files now.
    assert_eq!(
        http_get(&app.url("web", "/?name=Ada")).1,
        "en: Howdy, Ada!\n"
    );
    // Only requests that B's greeter held when it was killed, or that were
    // sent it before the manager saw it go, failed; and no answer came
    // from the files on disk now.
    let clients = load.stop();
    let replies: Vec<&Reply> = clients.iter().flatten().collect();
    let failed = replies.iter().filter(|r| r.status != 200).count();
    assert!(
        failed * 10 <= replies.len(),
        "{failed} of {} failed",
        replies.len()
    );
    assert!(replies.iter().all(|r| !r.body.contains("Hi there")));
}

#[test]
fn status_shows_every_version_and_worker() {
    let dir = app_dir(&hello("hello_greeter", "Hello"));
    let _app = Weft::start(Mode::Split, &[dir.path().to_str().unwrap()]);
    let (ok, json) = weft(&["status", "--json"], dir.path());
    assert!(ok, "{json}");
    let status: DeployState = serde_json::from_str(&json).unwrap();
    assert_eq!(status.versions.len(), 1);
    assert_eq!(status.versions[0].weight, 100);
    let names: Vec<&str> = status.workers.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["frontend/0", "greeter/0"]);
    assert!(status.workers.iter().all(|w| w.healthy && w.pid.is_some()));

    let (ok, text) = weft(&["status"], dir.path());
    assert!(ok, "{text}");
    let golden = weft_tests::root().join("tests/status/split.txt");
    let masked = mask(&text, &status);
    if std::env::var_os("WEFT_BLESS").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &masked).unwrap();
    }
    let expected = std::fs::read_to_string(&golden)
        .unwrap_or_else(|e| panic!("{}: {e} (WEFT_BLESS=1 writes it)", golden.display()));
    assert_eq!(masked, expected);
}

/// `text` with the parts that change from run to run masked, and runs of
/// spaces (whose width follows the masked values) made one.
fn mask(text: &str, status: &DeployState) -> String {
    // Addresses before process ids, whose digits may stand in a port.
    let mut text = text.replace(&status.versions[0].version, "<version>");
    text = text.replace(&status.control, "<control>");
    for address in status.listeners.values() {
        text = text.replace(address, "<listener>");
    }
    for w in &status.workers {
        text = text.replace(&w.address, "<address>");
    }
    text = text.replace(&format!("pid {},", status.pid), "pid <pid>,");
    for w in &status.workers {
        text = text.replace(&format!(" {} ", w.pid.unwrap()), " <pid> ");
    }
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
        .collect()
}

#[test]
fn sticky_sessions_keep_a_client_on_its_version() {
    let manifest = |greeting: &str| {
        hello("hello_greeter", greeting)
            + "[deploy]\nsticky-sessions = true\n\
               [deploy.groups.front]\ncomponents = [\"frontend\"]\n\
               [deploy.groups.back]\ncomponents = [\"greeter\"]\n"
    };
    let dir = app_dir(&manifest("Hello"));
    let app = Weft::deploy_default(&[dir.path().to_str().unwrap()]);
    let a = state(dir.path()).version;
    let mut first = weft_tests::Connection::open(app.listeners["web"]);
    let reply = first.request("/?name=Ada");
    let cookie = reply
        .header("set-cookie")
        .expect("a sticky answer sets the cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(cookie, format!("weft-version={a}"));

    rewrite(dir.path(), &manifest("Howdy"));
    let rollout = {
        let dir = dir.path().to_path_buf();
        std::thread::spawn(move || weft(&["rollout", "--over", "4s", "--steps", "50,100"], &dir))
    };
    // During the shift, half of the new clients get B, but the client with
    // the cookie stays with A.
    let mut newcomers = weft_tests::Connection::open(app.listeners["web"]);
    let mut saw_b = false;
    for _ in 0..100 {
        let kept = first.request_with("/?name=Ada", &[("cookie", &cookie)]);
        assert_eq!(
            (kept.status, version_of(&kept)),
            (200, a.as_str()),
            "{kept:?}"
        );
        saw_b |= version_of(&newcomers.request("/?name=Ada")) != a;
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(saw_b, "new clients reached the new version");
    let (ok, output) = rollout.join().unwrap();
    assert!(ok, "{output}");
    // A is gone: the cookie no longer holds, and the client moves to B.
    let moved = first.request_with("/?name=Ada", &[("cookie", &cookie)]);
    assert_eq!(moved.body, "en: Howdy, Ada!\n");
    assert_ne!(version_of(&moved), a);
}
