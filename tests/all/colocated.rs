//! Colocated means free: outside a rollout, a deployment's workers accept
//! its listeners' connections themselves, so a request pays no hop through
//! the manager; a rollout hands the listeners to the manager's ingress for
//! the shift and back to the new version's workers after it, losing no
//! request on the way.

use std::path::Path;
use weft_runtime::deploy::state::{Accepting, DeployState};
use weft_tests::{Connection, HELLO_APP, Load, Mode, Weft, app_dir, assert_shifted, weft_once};

/// The manager's live state, as `weft status --json` prints it.
fn status(dir: &Path) -> DeployState {
    let (status, out, err) = weft_once(&["status", dir.to_str().unwrap(), "--json"]);
    assert!(status.success(), "{out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Sends `n` greetings on one kept-alive connection; each is answered by
/// `version`.
fn greet(address: std::net::SocketAddr, n: usize, version: &str) {
    let mut connection = Connection::open(address);
    for _ in 0..n {
        let reply = connection.request("/?name=Ada");
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body, "en: Hello, Ada!\n", "{reply:?}");
        assert_eq!(reply.header("weft-version"), Some(version), "{reply:?}");
    }
}

/// Replaces `from` with `to` in the app's manifest, as app_dir made it: a
/// new version.
fn rewrite(dir: &Path, from: &str, to: &str) {
    let file = dir.join("weft.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace(from, to)).unwrap();
}

/// The requests the manager's ingress forwarded, over every version.
fn forwarded(state: &DeployState) -> u64 {
    state.versions.iter().map(|v| v.forwarded).sum()
}

#[test]
fn workers_answer_their_listeners_with_no_hop_through_the_manager() {
    let dir = app_dir(HELLO_APP);
    for mode in [Mode::Monolith, Mode::Split] {
        let app = Weft::start(mode, &[dir.path().to_str().unwrap()]);
        let before = status(dir.path());
        assert_eq!(before.accepting, Accepting::Workers, "{mode:?}: {before:?}");
        greet(app.listeners["web"], 20, &before.version);
        // The worker's own answers: the manager's ingress forwarded none.
        let after = status(dir.path());
        assert_eq!(forwarded(&after), 0, "{mode:?}: {after:?}");
        assert_eq!(after.versions[0].requests, 20, "{mode:?}: {after:?}");
        let (exit, output) = app.stop();
        assert!(exit.success(), "{output}");
    }
}

#[test]
fn a_rollout_between_one_group_versions_loses_no_request_and_mixes_none() {
    let manifest = |greeting: &str| {
        format!("{HELLO_APP}[components.greeter.config]\ngreeting = \"{greeting}\"\n")
    };
    let dir = app_dir(&manifest("Hello"));
    let app = Weft::start(Mode::Monolith, &[dir.path().to_str().unwrap()]);
    let a = status(dir.path()).version;
    let load = Load::start(app.listeners["web"], "/?name=Ada", 3);
    std::thread::sleep(std::time::Duration::from_millis(300));
    rewrite(dir.path(), "Hello", "Howdy");
    let (exit, out, err) = weft_once(&["rollout", "--over", "3s", dir.path().to_str().unwrap()]);
    assert!(exit.success(), "{out}{err}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let clients = load.stop();
    let b = status(dir.path()).version;
    assert_ne!(a, b);
    for replies in &clients {
        for r in replies {
            assert_eq!(r.status, 200, "no request fails during a rollout: {r:?}");
            let greeting = if r.header("weft-version") == Some(&a) {
                "Hello"
            } else {
                "Howdy"
            };
            assert_eq!(r.body, format!("en: {greeting}, Ada!\n"), "{r:?}");
        }
        assert_shifted(replies, &a, &b);
    }
    // The shift went through the ingress; after it, B's workers answer
    // by themselves again.
    let after = status(dir.path());
    assert_eq!(after.accepting, Accepting::Workers, "{after:?}");
    assert!(forwarded(&after) > 0, "{after:?}");
    let mut connection = Connection::open(app.listeners["web"]);
    for _ in 0..10 {
        let reply = connection.request("/?name=Ada");
        assert_eq!(reply.header("weft-version"), Some(b.as_str()), "{reply:?}");
    }
    assert_eq!(forwarded(&status(dir.path())), forwarded(&after));
    let (exit, output) = app.stop();
    assert!(exit.success(), "{output}");
}

/// The value a counter's answer gives.
fn counted(body: &str) -> u64 {
    let value = body
        .split("\"value\":")
        .nth(1)
        .unwrap_or_else(|| panic!("{body}"));
    value.trim_end_matches(['}', '\n']).parse().unwrap()
}

#[test]
fn the_only_worker_that_uses_the_embedded_store_holds_it_across_a_rollout() {
    let dir = app_dir(&weft_tests::kvcounter_with_limit("64MiB"));
    for (mode, holder) in [(Mode::Split, "counter/0"), (Mode::Monolith, "main/0")] {
        let app = Weft::start(mode, &[dir.path().to_str().unwrap()]);
        let mut connection = Connection::open(app.listeners["web"]);
        let first = counted(&connection.get(&format!("/counter/{mode:?}")).1);
        for i in 1..10 {
            let (status, body) = connection.get(&format!("/counter/{mode:?}"));
            assert_eq!((status, counted(&body)), (200, first + i), "{body}");
        }
        let store = status(dir.path()).keyvalue.expect("the store is in use");
        assert_eq!(store.held_by, holder, "{mode:?}: {store:?}");
        assert_eq!(store.manager_calls, 0, "{mode:?}: {store:?}");
        let (exit, output) = app.stop();
        assert!(exit.success(), "{output}");
    }

    // A rollout under load: the file moves to the manager for the shift,
    // and on to the new version's worker after it; no increment is lost.
    let app = Weft::start(Mode::Monolith, &[dir.path().to_str().unwrap()]);
    let load = Load::start(app.listeners["web"], "/counter/hits", 3);
    std::thread::sleep(std::time::Duration::from_millis(300));
    rewrite(dir.path(), "64MiB", "128MiB");
    let (exit, out, err) = weft_once(&["rollout", "--over", "2s", dir.path().to_str().unwrap()]);
    assert!(exit.success(), "{out}{err}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let clients = load.stop();
    let mut values: Vec<u64> = Vec::new();
    for r in clients.iter().flatten() {
        assert_eq!(r.status, 200, "{r:?}");
        values.push(counted(&r.body));
    }
    values.sort();
    let n = values.len() as u64;
    assert_eq!(
        values,
        (1..=n).collect::<Vec<u64>>(),
        "every increment, once"
    );
    let after = status(dir.path()).keyvalue.expect("the store is in use");
    assert_eq!(after.held_by, "main/0", "{after:?}");
    assert!(
        after.manager_calls > 0,
        "the manager served the shift: {after:?}"
    );
    let (_, body) = Connection::open(app.listeners["web"]).get("/counter/hits");
    assert_eq!(counted(&body), n + 1);
    let again = status(dir.path()).keyvalue.expect("the store is in use");
    assert_eq!(again.manager_calls, after.manager_calls, "{again:?}");
    let (exit, output) = app.stop();
    assert!(exit.success(), "{output}");
}

#[test]
fn the_shop_in_one_group_answers_with_no_hop_through_the_manager() {
    let dir = weft_tests::boutique_app("weft.toml", None);
    let app = Weft::start(Mode::Monolith, &[dir.path().to_str().unwrap()]);
    let mut shopper = weft_tests::Shopper::open(app.listeners["web"]);
    assert_eq!(shopper.get("/").status, 200);
    let added = shopper.post("/cart", &[("product_id", "OLJCESPC7Z"), ("quantity", "2")]);
    assert_eq!(added.status, 303, "{added:?}");
    let cart = shopper.get("/cart");
    assert!(
        cart.status == 200 && cart.body.contains("Cart (2 items)"),
        "{cart:?}"
    );
    let order = shopper.post(
        "/cart/checkout",
        &weft_tests::checkout_form("4432-8015-6152-0454"),
    );
    assert!(order.body.contains("Your order is complete!"), "{order:?}");
    let state = status(dir.path());
    assert_eq!(state.accepting, Accepting::Workers, "{state:?}");
    assert_eq!(forwarded(&state), 0, "{state:?}");
    let store = state.keyvalue.expect("the carts are in the embedded store");
    assert_eq!((store.held_by.as_str(), store.manager_calls), ("main/0", 0));
    let (exit, output) = app.stop();
    assert!(exit.success(), "{output}");
}

#[test]
fn a_killed_worker_comes_back_with_its_listener_and_its_store() {
    let dir = app_dir(&weft_tests::kvcounter_with_limit("64MiB"));
    let app = Weft::start(Mode::Monolith, &[dir.path().to_str().unwrap()]);
    let url = app.url("web", "/counter/kept");
    for n in 1..=3 {
        let (status, body) = weft_tests::http_get(&url);
        assert_eq!((status, counted(&body)), (200, n), "{body}");
    }
    let before = status(dir.path());
    let pid = before.workers[0].pid.expect("a running worker");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // The socket stays the manager's: a connection made now waits in its
    // queue until the restarted worker accepts it, and it opens the store
    // again.
    let waiting = {
        let url = url.clone();
        std::thread::spawn(move || weft_tests::http_get(&url))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let now = status(dir.path());
        let worker = &now.workers[0];
        if worker.restarts == 1 && worker.healthy && worker.pid.is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the worker was not back within 30 s: {now:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (status_code, body) = waiting.join().unwrap();
    assert_eq!((status_code, counted(&body)), (200, 4), "{body}");
    let after = status(dir.path());
    assert_ne!(after.workers[0].pid, Some(pid), "{after:?}");
    assert_eq!(after.accepting, Accepting::Workers, "{after:?}");
    assert_eq!(forwarded(&after), 0, "{after:?}");
    let store = after.keyvalue.expect("the store is in use");
    assert_eq!((store.held_by.as_str(), store.manager_calls), ("main/0", 0));
    let (exit, output) = app.stop();
    assert!(exit.success(), "{output}");
}
