//! `weft rollout --kube` and `weft rollback --kube` on the simulated
//! three-node cluster, under a bounded load through the listener's
//! Service that runs throughout: steps, automatic rollback, a rollout
//! command killed half-way and run again, an ingress replica that dies
//! mid-shift, and a rollback to a kept version.

use crate::cluster::{build_image, copy_dir, deploy, hello, version_of};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft_runtime::kube::traffic::TrafficTable;
use weft_tests::{Cluster, Load, Reply, assert_shifted, weft_bin, weft_once_with};

/// `weft rollout --kube ARGS... DIR`, or `rollback`, against `cluster`:
/// whether it succeeded, and what it printed.
fn weft_kube(cluster: &Cluster, verb: &str, dir: &Path, args: &[&str]) -> (bool, String) {
    let kubectl = cluster.kubectl();
    let mut all = vec![verb, dir.to_str().unwrap(), "--kube", "--kubectl"];
    all.push(kubectl.to_str().unwrap());
    all.extend_from_slice(args);
    let (status, out, err) = weft_once_with(&all, &cluster.kubectl_env());
    (status.success(), format!("{out}{err}"))
}

/// The same, started in the background, its output in `log`.
fn spawn_weft_kube(cluster: &Cluster, verb: &str, dir: &Path, args: &[&str], log: &Path) -> Child {
    let kubectl = cluster.kubectl();
    let file = std::fs::File::create(log).unwrap();
    Command::new(weft_bin())
        .args([verb, dir.to_str().unwrap(), "--kube", "--kubectl"])
        .arg(&kubectl)
        .args(args)
        .envs(cluster.kubectl_env())
        .env("WEFT_CACHE_DIR", weft_tests::shared_cache())
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .spawn()
        .expect("weft starts")
}

/// Starts `weft rollout --kube` of hello `dir` (image hello:2) over
/// `over`, and returns once B has `percent` of new requests.
fn rollout_until(cluster: &Cluster, dir: &Path, over: &str, percent: u8, log: &Path) -> Child {
    let args = ["--plan", "split", "--image", "hello:2", "--over", over];
    let rollout = spawn_weft_kube(cluster, "rollout", dir, &args, log);
    wait_for_table(cluster, "hello", &format!("B at {percent} %"), |t| {
        t.rollout
            .as_ref()
            .is_some_and(|r| t.versions.get(&r.to).is_some_and(|v| v.weight == percent))
    });
    rollout
}

/// The cluster's traffic table for app `app`.
fn table(cluster: &Cluster, app: &str) -> TrafficTable {
    let text = cluster.config_map_file(&format!("{app}-traffic"), "traffic.toml");
    TrafficTable::from_str(&text, "the traffic table").unwrap()
}

/// Waits until `check` holds of the traffic table.
fn wait_for_table(cluster: &Cluster, app: &str, what: &str, check: impl Fn(&TrafficTable) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !check(&table(cluster, app)) {
        assert!(
            Instant::now() < deadline,
            "the traffic table never showed {what}: {:?}\n{}",
            table(cluster, app),
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The version that answered.
fn version_of_reply(reply: &Reply) -> &str {
    reply.header("weft-version").unwrap_or("none")
}

/// Every answer was a 200 whose greeting is its version's.
fn assert_each_version_greets_its_own(replies: &[Reply], greetings: &[(&str, &str)]) {
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(
            r.status,
            200,
            "no request fails: reply {i} of {}: {r:?} (versions {greetings:?})",
            replies.len()
        );
        let version = version_of_reply(r);
        let expected = greetings
            .iter()
            .find(|(v, _)| *v == version)
            .unwrap_or_else(|| panic!("an answer from an unknown version: {r:?}"))
            .1;
        assert_eq!(r.body, format!("en: {expected}, Ada!\n"), "{r:?}");
    }
}

/// A second version of the hello app: a folder whose greeter says
/// `greeting`, with the first's CA (`weft kube` keeps it in the app's
/// folder), and its image built.
fn next_version(cluster: &Cluster, first: &Path, greeting: &str, image: &str) -> tempfile::TempDir {
    let next = hello(greeting);
    copy_dir(&first.join(".weft/kube"), &next.path().join(".weft/kube"));
    build_image(cluster, next.path(), Some("split"), image);
    next
}

/// The hello app split, version 1 serving through the ingress.
fn hello_serving(cluster: &Cluster) -> (tempfile::TempDir, String) {
    let first = hello("Hello");
    let v1 = version_of(&deploy(cluster, first.path(), Some("split"), "hello:1"));
    (first, v1)
}

/// Waits until every ingress replica has found `version`'s pods.
pub(crate) fn wait_until_the_ingress_reaches(cluster: &Cluster, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let replicas = cluster.pods(&[("weft.dev/role", "ingress")]);
        let reached = replicas.iter().filter(|p| p.ready).all(|p| {
            cluster.ingress_report(p)["reachable"][version]
                .as_u64()
                .is_some_and(|n| n > 0)
        });
        if reached {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the ingress never found version {version}'s pods\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_rollout_on_the_cluster_moves_every_request_in_steps() {
    let cluster = Cluster::new();
    let (first, v1) = hello_serving(&cluster);
    let web = cluster.service_proxy("hello-web");
    let load = Load::start(web, "/?name=Ada", 2);
    std::thread::sleep(Duration::from_millis(500));

    let second = next_version(&cluster, first.path(), "Howdy", "hello:2");
    let (ok, output) = weft_kube(
        &cluster,
        "rollout",
        second.path(),
        &["--plan", "split", "--image", "hello:2", "--over", "8s"],
    );
    assert!(ok, "{output}\n{}", cluster.logs());
    std::thread::sleep(Duration::from_millis(500));
    let clients = load.stop();

    let after = table(&cluster, "hello");
    let v2 = after.serving().unwrap().to_string();
    assert_ne!(v1, v2);
    assert!(after.rollout.is_none(), "{after:?}");
    assert_eq!(after.versions.len(), 1, "{after:?}");
    assert_eq!(after.history, [v1.clone(), v2.clone()]);
    for replies in &clients {
        assert_each_version_greets_its_own(replies, &[(&v1, "Hello"), (&v2, "Howdy")]);
        assert_shifted(replies, &v1, &v2);
    }
    // A's pods are gone; its ConfigMap is kept for a rollback.
    cluster.wait_gone(&[("weft.dev/version", &v1)]);
    assert!(cluster.has_config_map(&format!("hello-{}", &v1[..8])));

    // A rollback goes back to the kept version, at once.
    let (ok, output) = weft_kube(&cluster, "rollback", first.path(), &[]);
    assert!(ok, "{output}\n{}", cluster.logs());
    let back = table(&cluster, "hello");
    assert_eq!(back.serving(), Some(v1.as_str()));
    assert_eq!(back.versions.len(), 1, "{back:?}");
    assert_eq!(
        weft_tests::http_get(&format!("http://{web}/?name=Ada")),
        (200, "en: Hello, Ada!\n".into())
    );
    cluster.wait_gone(&[("weft.dev/version", &v2)]);
}

#[test]
fn a_failing_version_on_the_cluster_is_rolled_back_by_itself() {
    let cluster = Cluster::new();
    let (first, v1) = hello_serving(&cluster);
    let web = cluster.service_proxy("hello-web");
    let load = Load::start(web, "/?name=Ada", 2);
    std::thread::sleep(Duration::from_millis(500));

    // B's greeter traps on every call.
    let second = hello_with_greeter(first.path(), "fixture_bad_greeter");
    build_image(&cluster, second.path(), Some("split"), "hello:bad");
    let (ok, output) = weft_kube(
        &cluster,
        "rollout",
        second.path(),
        &["--plan", "split", "--image", "hello:bad", "--over", "30s"],
    );
    let clients = load.stop();
    assert!(!ok, "the rollout fails: {output}");
    assert!(output.contains(&format!("rolled back to {v1}")), "{output}");
    assert!(
        output.contains("requests at the listeners (100.0%)"),
        "the figures are given: {output}"
    );
    let b = output
        .split("; version ")
        .nth(1)
        .and_then(|rest| rest.get(..16))
        .expect("the output names the stopped version")
        .to_string();

    let after = table(&cluster, "hello");
    assert_eq!(after.serving(), Some(v1.as_str()));
    assert_eq!(after.versions.len(), 1, "{after:?}");
    assert!(after.rollout.is_none());
    let all: Vec<&Reply> = clients.iter().flatten().collect();
    let failed = all.iter().filter(|r| r.status != 200).count();
    // Only the first step's share (10 %) ever went to B, and only until the
    // gate had its 20 requests.
    assert!(failed > 0, "B failed some requests");
    assert!(
        failed * 100 <= all.len() * 10 + 40,
        "{failed} of {} requests failed, more than the first step's share",
        all.len()
    );
    // A serves everything afterwards, and B's objects are gone.
    for _ in 0..20 {
        assert_eq!(
            weft_tests::http_get(&format!("http://{web}/?name=Ada")),
            (200, "en: Hello, Ada!\n".into())
        );
    }
    assert!(
        all.iter()
            .filter(|r| r.status != 200)
            .all(|r| version_of_reply(r) == b),
        "only B failed"
    );
    cluster.wait_gone(&[("weft.dev/version", &b)]);
    assert!(!cluster.has_config_map(&format!("hello-{}", &b[..8])));
}

/// The hello app of `first`'s folder with its greeter's binary replaced by
/// guest `greeter`, and `first`'s CA.
fn hello_with_greeter(first: &Path, greeter: &str) -> tempfile::TempDir {
    let manifest = std::fs::read_to_string(first.join("weft.toml"))
        .unwrap()
        .replace(
            weft_tests::wasm("hello_greeter").to_str().unwrap(),
            weft_tests::wasm(greeter).to_str().unwrap(),
        );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("weft.toml"), manifest).unwrap();
    copy_dir(&first.join(".weft/kube"), &dir.path().join(".weft/kube"));
    dir
}

#[test]
fn a_rollout_command_killed_half_way_leaves_both_serving_and_a_second_run_finishes() {
    let cluster = Cluster::new();
    let (first, v1) = hello_serving(&cluster);
    let web = cluster.service_proxy("hello-web");
    let second = next_version(&cluster, first.path(), "Howdy", "hello:2");
    let log = second.path().join("rollout.log");
    // Killed once half the new requests go to B, as a laptop that sleeps.
    let mut rollout = rollout_until(&cluster, second.path(), "60s", 50, &log);
    rollout.kill().unwrap();
    rollout.wait().unwrap();
    let split = table(&cluster, "hello");
    let v2 = split.rollout.as_ref().unwrap().to.clone();

    // The cluster stays split, half and half, both versions serving.
    let load = Load::start(web, "/?name=Ada", 2);
    std::thread::sleep(Duration::from_secs(3));
    let replies: Vec<Reply> = load.stop().into_iter().flatten().collect();
    assert_each_version_greets_its_own(&replies, &[(&v1, "Hello"), (&v2, "Howdy")]);
    let to_b = replies.iter().filter(|r| version_of_reply(r) == v2).count();
    assert!(
        to_b * 100 >= replies.len() * 35 && to_b * 100 <= replies.len() * 65,
        "{to_b} of {} went to B at 50 %",
        replies.len()
    );
    assert_eq!(
        table(&cluster, "hello"),
        split,
        "nothing moved without a driver"
    );

    // A second run of the same command resumes at 50 % and finishes.
    let (ok, output) = weft_kube(
        &cluster,
        "rollout",
        second.path(),
        &["--plan", "split", "--image", "hello:2", "--over", "4s"],
    );
    assert!(ok, "{output}\n{}", std::fs::read_to_string(&log).unwrap());
    let after = table(&cluster, "hello");
    assert_eq!(after.serving(), Some(v2.as_str()));
    assert_eq!(after.versions.len(), 1);
    cluster.wait_gone(&[("weft.dev/version", &v1)]);
}

#[test]
fn a_rollback_ends_a_rollout_that_a_killed_command_left() {
    let cluster = Cluster::new();
    let (first, v1) = hello_serving(&cluster);
    let web = cluster.service_proxy("hello-web");
    let second = next_version(&cluster, first.path(), "Howdy", "hello:2");
    let log = second.path().join("rollout.log");
    let mut rollout = rollout_until(&cluster, second.path(), "60s", 10, &log);
    rollout.kill().unwrap();
    rollout.wait().unwrap();
    let v2 = table(&cluster, "hello").rollout.unwrap().to;

    let (ok, output) = weft_kube(&cluster, "rollback", first.path(), &[]);
    assert!(ok, "{output}");
    let after = table(&cluster, "hello");
    assert!(after.rollout.is_none(), "{after:?}");
    assert_eq!(after.serving(), Some(v1.as_str()));
    assert_eq!(after.versions.len(), 1, "{after:?}");
    for _ in 0..20 {
        assert_eq!(
            weft_tests::http_get(&format!("http://{web}/?name=Ada")),
            (200, "en: Hello, Ada!\n".into())
        );
    }
    cluster.wait_gone(&[("weft.dev/version", &v2)]);
    assert!(!cluster.has_config_map(&format!("hello-{}", &v2[..8])));
}

#[test]
fn an_ingress_replica_that_dies_mid_shift_comes_back_with_the_weights() {
    let cluster = Cluster::new();
    let (first, v1) = hello_serving(&cluster);
    let second = next_version(&cluster, first.path(), "Howdy", "hello:2");
    let log = second.path().join("rollout.log");
    let mut rollout = rollout_until(&cluster, second.path(), "40s", 25, &log);
    let generation = table(&cluster, "hello").generation;
    let ingress = cluster.pods(&[("weft.dev/role", "ingress")]);
    cluster.kill_and_replace(&ingress[0].name);
    // The replacement is ready only once it follows the table, and every
    // replica then follows the same one.
    cluster.wait_ready(&[("weft.dev/role", "ingress")], 2);
    let replicas = cluster.pods(&[("weft.dev/role", "ingress")]);
    let new = replicas
        .iter()
        .find(|p| p.name != ingress[1].name)
        .expect("a new replica");
    let local = cluster.ingress_report(new);
    assert!(
        local["generation"].as_u64().unwrap() >= generation,
        "the new replica follows the table: {local}"
    );
    // Through the new replica alone, both versions answer, by the weights.
    let address = std::net::SocketAddr::from((new.ip, 8080));
    let mut to_b = 0;
    for _ in 0..40 {
        let reply = weft_tests::Connection::open(address).request("/?name=Ada");
        assert_eq!(reply.status, 200, "{reply:?}");
        if reply.body == "en: Howdy, Ada!\n" {
            to_b += 1;
        }
    }
    assert!((4..=36).contains(&to_b), "{to_b} of 40 went to B");

    let status = rollout.wait().unwrap();
    assert!(
        status.success(),
        "{}\n{}",
        std::fs::read_to_string(&log).unwrap(),
        cluster.logs()
    );
    let after = table(&cluster, "hello");
    assert_ne!(after.serving(), Some(v1.as_str()));
}

/// A new rate for the dollar, rolled out across the three nodes under
/// load: every home page in euros comes wholly from one version (its prices
/// all at the old rate, or all at the new), and none fails.
#[test]
fn the_boutique_rolls_out_a_new_rate_across_the_nodes_and_mixes_no_page() {
    let cluster = Cluster::new();
    let (dir, _redis) = crate::cluster::boutique_on(&cluster);
    let a = version_of(&deploy(&cluster, dir.path(), None, "boutique:1"));
    let web = cluster.service_proxy("boutique-web");
    let load = Load::start_with(web, "/", &[("Cookie", "shop_currency=EUR")], 2);
    std::thread::sleep(Duration::from_millis(500));

    // USD 1.25 to the euro instead of 1.1305: $19.99 is then €15.99.
    let manifest = dir.path().join("weft.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[components.currency.config]\nrates = \"USD=1.25\"\n");
    std::fs::write(&manifest, text).unwrap();
    build_image(&cluster, dir.path(), None, "boutique:2");
    let (ok, output) = weft_kube(
        &cluster,
        "rollout",
        dir.path(),
        &["--image", "boutique:2", "--over", "8s"],
    );
    assert!(ok, "{output}\n{}", cluster.logs());
    std::thread::sleep(Duration::from_millis(500));
    let b = table(&cluster, "boutique").serving().unwrap().to_string();
    assert_ne!(a, b);

    for replies in load.stop() {
        for reply in &replies {
            assert_eq!(reply.status, 200, "no request fails: {reply:?}");
            crate::boutique::assert_priced_by_its_version(reply, &a, &b);
        }
        assert_shifted(&replies, &a, &b);
    }
    cluster.wait_gone(&[("weft.dev/version", &a)]);
}
