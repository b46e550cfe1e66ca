//! weft on a simulated three-node Kubernetes (`weft_tests::Cluster`):
//! the apps run from nothing but what `weft kube` writes — the YAML, the
//! groups' TLS Secrets and the image built from its Containerfile — with every
//! pod in a network namespace of its own, on one of three nodes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weft_tests::{
    Cluster, PodInfo, RedisServer, app_dir, http_get, kube_cli_dialer, served_at, weft_once,
};

/// A copy of the hello sample whose greeter says `greeting`.
pub(crate) fn hello(greeting: &str) -> tempfile::TempDir {
    app_dir(&format!(
        "[app]\nname = \"hello\"\n\
         [components.frontend]\nwasm = \"{{wasm:hello_frontend}}\"\n\
         [components.greeter]\nwasm = \"{{wasm:hello_greeter}}\"\n\
         [components.greeter.config]\ngreeting = \"{greeting}\"\n\
         [listeners.web]\ncomponent = \"frontend\"\naddress = \"127.0.0.1:8080\"\n"
    ))
}

/// `weft kube ARGS...`'s output; it must succeed.
pub(crate) fn kube(args: &[&str]) -> String {
    let mut all = vec!["kube"];
    all.extend_from_slice(args);
    let (status, stdout, stderr) = weft_once(&all);
    assert!(status.success(), "weft {}: {stderr}", all.join(" "));
    stdout
}

/// Builds the image, applies the version's TLS Secrets and its objects, as
/// the YAML's header tells a user to.
/// `plan` is a built-in plan or a plan file; `None` is the manifest's own.
pub(crate) fn deploy(
    cluster: &Cluster,
    dir: &std::path::Path,
    plan: Option<&str>,
    image: &str,
) -> String {
    let path = dir.to_str().unwrap();
    let chosen: Vec<&str> = plan.map(|p| vec!["--plan", p]).unwrap_or_default();
    let mut args = [&[path, "--image", image][..], &chosen].concat();
    if plan.is_none_or(|p| p.ends_with(".toml")) {
        args.push("--replicas-from-plan");
    }
    let yaml = kube(&args);
    let containerfile = kube(&[&[path][..], &chosen, &["--containerfile"]].concat());
    cluster.build_image(image, &containerfile, dir);
    cluster.apply(&kube(&[&[path][..], &chosen, &["--secret"]].concat()));
    cluster.apply(&yaml);
    // The listeners' Services select weft's ingress, which serves the
    // version once it has read the traffic table and found its pods.
    let version = version_of(&yaml);
    cluster.wait_all_ready(&[("weft.dev/version", &version)]);
    cluster.wait_ready(&[("weft.dev/role", "ingress")], 2);
    crate::kube_rollout::wait_until_the_ingress_reaches(cluster, &version);
    yaml
}

/// Builds image `image` of the app in `dir` from its Containerfile, as a
/// user does before `weft rollout --kube`.
pub(crate) fn build_image(
    cluster: &Cluster,
    dir: &std::path::Path,
    plan: Option<&str>,
    image: &str,
) {
    let path = dir.to_str().unwrap();
    let chosen: Vec<&str> = plan.map(|p| vec!["--plan", p]).unwrap_or_default();
    let containerfile = kube(&[&[path][..], &chosen, &["--containerfile"]].concat());
    cluster.build_image(image, &containerfile, dir);
}

/// Copies folder `from` (files and folders) to `to`.
pub(crate) fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    weft_tests::copy_tree(from, to).unwrap();
}

/// The version a YAML stream names in its labels.
pub(crate) fn version_of(yaml: &str) -> String {
    label(yaml, "weft.dev/version")
}

fn label(yaml: &str, key: &str) -> String {
    let line = yaml
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} label"));
    line.split(':')
        .nth(1)
        .unwrap()
        .trim()
        .trim_matches('\'')
        .to_string()
}

fn get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
    http_get(&format!("http://{address}{path}"))
}

/// The calls that greeter pod `pod` of the app in `dir` served from other
/// pods, asked with weft's own credentials for the cluster.
fn greeted(dir: &std::path::Path, pod: &PodInfo) -> u64 {
    served(dir, pod)
        .iter()
        .filter(|(k, _)| k.starts_with("greeter: "))
        .map(|(_, n)| n)
        .sum()
}

/// What pod `pod` of the app in `dir` says it served (`Control.Served`).
fn served(dir: &std::path::Path, pod: &PodInfo) -> BTreeMap<String, u64> {
    served_at(
        &format!("{}:7070", pod.ip),
        &kube_cli_dialer(dir),
        &pod.version,
    )
}

#[test]
fn hello_split_over_three_nodes_answers_from_outside() {
    let cluster = Cluster::new();
    let dir = hello("Hello");
    let yaml = deploy(&cluster, dir.path(), Some("split"), "hello:1");
    let v = version_of(&yaml);
    let pods = cluster.wait_ready(&[("weft.dev/app", "hello")], 2);
    let node = |group: &str| {
        let group_pods = cluster.pods(&[("weft.dev/group", group), ("weft.dev/version", &v)]);
        group_pods[0].clone()
    };
    let frontend_node = node("frontend").node;
    let greeter = node("greeter");
    let greeter_node = greeter.node;
    assert_ne!(
        frontend_node, greeter_node,
        "the groups run on two nodes: {pods:?}"
    );

    let web = cluster.service_address("hello-web");
    for _ in 0..5 {
        let answer = get(web, "/?name=Ada");
        assert_eq!(
            answer,
            (200, "en: Hello, Ada!\n".into()),
            "{}",
            cluster.logs()
        );
    }
    assert_eq!(
        get(web, "/?name=Ada&lang=en,fr&style=shout"),
        (200, "en: HELLO, ADA!\nfr: BONJOUR, ADA!\n".into())
    );
    // Every greeting crossed from one node's pod to the other's.
    assert_eq!(greeted(dir.path(), &greeter), 6, "{}", cluster.logs());

    // Deleting a pod: it drains and exits well within its grace period.
    let greeter = &cluster.pods(&[("weft.dev/group", "greeter")])[0];
    assert!(
        cluster.terminate(&greeter.name, Duration::from_secs(38)),
        "{}",
        cluster.logs()
    );
    assert!(
        cluster.log(&greeter.name).contains("stopped"),
        "{}",
        cluster.logs()
    );
}

#[test]
fn kvcounter_replicas_on_two_nodes_lose_no_increments() {
    let cluster = Cluster::new();
    let port = weft_tests::free_address().port();
    let redis = RedisServer::start_on((cluster.host_ip(), port).into());
    let dir = weft_tests::kvcounter_on_redis(&redis.url(0), "127.0.0.1:8081");
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        "[groups.http]\ncomponents = [\"http\"]\n\
         [groups.counter]\ncomponents = [\"counter\"]\nreplicas = 2\n",
    )
    .unwrap();
    deploy(&cluster, dir.path(), plan.to_str(), "kvcounter:1");
    cluster.wait_ready(&[("weft.dev/app", "kvcounter")], 3);
    let counters = cluster.pods(&[("weft.dev/group", "counter")]);
    assert_eq!(counters.len(), 2);
    assert_ne!(counters[0].node, counters[1].node, "{counters:?}");
    // Each replica must be known to the http pod before the load, or one
    // replica could take it all.
    let http = &cluster.pods(&[("weft.dev/group", "http")])[0];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cluster.log(&http.name).contains(&format!(
        "{}:7070, {}:7070",
        counters[0].ip.min(counters[1].ip),
        counters[0].ip.max(counters[1].ip)
    )) {
        assert!(Instant::now() < deadline, "{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(100));
    }

    let web = cluster.service_address("kvcounter-web");
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..10 {
                    assert_eq!(get(web, "/counter/hits").0, 200);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    assert_eq!(
        get(web, "/counter/hits?peek"),
        (200, "{\"counter\":\"hits\",\"value\":40}\n".into())
    );
    assert_eq!(redis.command("HGET counts hits"), "$2\r\n40\r\n");
    let per_replica: Vec<u64> = counters
        .iter()
        .map(|p| served(dir.path(), p).values().sum())
        .collect();
    assert_eq!(per_replica.iter().sum::<u64>(), 41, "{per_replica:?}");
    assert!(
        per_replica.iter().all(|n| *n > 0),
        "both replicas took calls: {per_replica:?}"
    );
}

#[test]
fn killed_and_frozen_pods_are_dropped_by_their_peers() {
    let cluster = Cluster::new();
    let dir = hello("Hello");
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        "[groups.frontend]\ncomponents = [\"frontend\"]\n\
         [groups.greeter]\ncomponents = [\"greeter\"]\nreplicas = 3\n",
    )
    .unwrap();
    deploy(&cluster, dir.path(), plan.to_str(), "hello:1");
    cluster.wait_ready(&[("weft.dev/app", "hello")], 4);
    let greeters = cluster.pods(&[("weft.dev/group", "greeter")]);
    let frontend = cluster.pods(&[("weft.dev/group", "frontend")])[0].clone();
    let (killed, frozen, survivor) = (&greeters[0], &greeters[1], &greeters[2]);

    // One replica's process is gone; another's still holds its sockets but
    // answers nothing, so only its failing health check can tell.
    cluster.kill(&killed.name);
    cluster.freeze(&frozen.name);
    let peers_line = "peers of group 'greeter' from ";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = cluster.log(&frontend.name);
        let last = log.lines().rfind(|l| l.contains(peers_line)).unwrap_or("");
        if last.ends_with(&format!(": {}:7070", survivor.ip)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the frontend still routes to a dead or frozen pod:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = greeted(dir.path(), survivor);
    let web = cluster.service_address("hello-web");
    for _ in 0..10 {
        assert_eq!(get(web, "/?name=Ada"), (200, "en: Hello, Ada!\n".into()));
    }
    assert_eq!(greeted(dir.path(), survivor) - before, 10);
}

#[test]
fn a_second_version_beside_the_first_never_gets_its_calls() {
    let cluster = Cluster::new();
    let first = hello("Hello");
    let v1 = version_of(&deploy(&cluster, first.path(), Some("split"), "hello:1"));
    cluster.wait_ready(&[("weft.dev/version", &v1)], 2);
    let web = cluster.service_address("hello-web");
    assert_eq!(get(web, "/?name=Ada"), (200, "en: Hello, Ada!\n".into()));

    // The next version comes from the same app, whose CA `weft kube` keeps
    // in its folder: here another folder, with the first's .weft/kube.
    let second = hello("Howdy");
    copy_dir(
        &first.path().join(".weft/kube"),
        &second.path().join(".weft/kube"),
    );
    let v2 = version_of(&deploy(&cluster, second.path(), Some("split"), "hello:2"));
    assert_ne!(v1, v2);
    cluster.wait_ready(&[("weft.dev/version", &v2)], 2);
    // The listener Service moved to the second version at once...
    let web = cluster.service_address("hello-web");
    assert_eq!(get(web, "/?name=Ada"), (200, "en: Howdy, Ada!\n".into()));
    // ...while the first version's pods still serve, among themselves only.
    let pod = |v: &str, group: &str| {
        cluster.pods(&[("weft.dev/version", v), ("weft.dev/group", group)])[0].clone()
    };
    let old_web = std::net::SocketAddr::from((pod(&v1, "frontend").ip, 8080));
    for _ in 0..5 {
        assert_eq!(
            get(old_web, "/?name=Ada"),
            (200, "en: Hello, Ada!\n".into())
        );
    }
    let calls: BTreeMap<&str, u64> = [
        ("v1", greeted(first.path(), &pod(&v1, "greeter"))),
        ("v2", greeted(second.path(), &pod(&v2, "greeter"))),
    ]
    .into();
    assert_eq!(calls, [("v1", 6), ("v2", 1)].into(), "{}", cluster.logs());

    // Each version's pods hold certificates of their own version: a v1
    // frontend's key cannot make a v2 greeter serve it, though both come
    // from the app's one CA.
    let v1_frontend = cluster.secret_files(&format!("hello-frontend-{}-tls", &v1[..8]));
    let credentials = weft_runtime::rpc::identity::Credentials::from_pem(
        v1_frontend["ca.crt"].clone(),
        v1_frontend["tls.crt"].clone(),
        v1_frontend["tls.key"].clone(),
    )
    .unwrap();
    let v2_greeter = pod(&v2, "greeter");
    let status = weft_tests::security::greet_as(
        &weft_runtime::rpc::Dialer::new(credentials),
        &format!("{}:7070", v2_greeter.ip),
        &v2,
    );
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains(&format!("version {v1}")),
        "{status:?}"
    );
    assert_eq!(
        greeted(second.path(), &v2_greeter),
        1,
        "the refused call never reached the greeter"
    );
}

/// Workers on plain machines (here, two processes on this one): the
/// folder `weft kube --write-config` writes, and `--peers` in place of DNS.
#[test]
fn workers_on_plain_machines_find_each_other_through_peers() {
    let free = weft_tests::free_address;
    let web = free();
    let dir = app_dir(&format!(
        "[app]\nname = \"hello\"\n\
         [components.frontend]\nwasm = \"{{wasm:hello_frontend}}\"\n\
         [components.greeter]\nwasm = \"{{wasm:hello_greeter}}\"\n\
         [listeners.web]\ncomponent = \"frontend\"\naddress = \"{web}\"\n"
    ));
    let config = dir.path().join("config");
    let config = config.to_str().unwrap();
    kube(&[
        dir.path().to_str().unwrap(),
        "--plan",
        "split",
        "--write-config",
        config,
    ]);
    let tls = dir.path().join("tls");
    kube(&[
        dir.path().to_str().unwrap(),
        "--plan",
        "split",
        "--secret",
        "--write-tls",
        tls.to_str().unwrap(),
    ]);
    let (greeter_at, frontend_at) = (free().to_string(), free().to_string());
    let components = format!("{config}/components");
    let worker = |group: &str, listen: &str, peers: &[&str]| {
        let tls_dir = tls.join(group).display().to_string();
        let mut args = vec![
            "worker",
            "--config",
            config,
            "--group",
            group,
            "--components",
            &components,
            "--tls-dir",
            tls_dir.as_str(),
            "--listen",
            listen,
            "--name",
            group,
        ];
        args.extend_from_slice(peers);
        weft_tests::Weft::spawn_until(&args, "serving group")
    };
    let _greeter = worker("greeter", &greeter_at, &[]);
    let peers = format!("greeter={greeter_at}");
    let frontend = worker("frontend", &frontend_at, &["--peers", &peers]);
    frontend.wait_for_output(&format!(
        "peers of group 'greeter' from {greeter_at}: {greeter_at}"
    ));
    for _ in 0..3 {
        assert_eq!(
            get(web, "/?name=Ada"),
            (200, "en: Hello, Ada!\n".into()),
            "{}",
            frontend.output()
        );
    }
    let version = std::fs::read_to_string(format!("{config}/cluster.toml"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("cluster.toml names the version");
    let greeted: u64 = served_at(&greeter_at, &kube_cli_dialer(dir.path()), &version)
        .values()
        .sum();
    assert_eq!(greeted, 3);
}

/// A copy of the boutique in three groups, listening on port 8090, with
/// its carts on a redis-server on the cluster's host.
pub(crate) fn boutique_on(cluster: &Cluster) -> (tempfile::TempDir, RedisServer) {
    let port = weft_tests::free_address().port();
    let redis = RedisServer::start_on((cluster.host_ip(), port).into());
    let dir = weft_tests::boutique_app("three-groups.toml", Some(&redis.url(0)));
    let manifest = dir.path().join("weft.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("127.0.0.1:0", "127.0.0.1:8090")).unwrap();
    (dir, redis)
}

/// The boutique in its three groups, one pod each, with its carts on a
/// Redis on the host: a shopper's whole visit, through
/// the listener's Service, and every group's pod served calls from others.
#[test]
fn the_boutique_in_three_groups_shops_across_the_nodes() {
    let cluster = Cluster::new();
    let (dir, redis) = boutique_on(&cluster);
    deploy(&cluster, dir.path(), None, "boutique:1");
    let pods = cluster.wait_ready(&[("weft.dev/app", "boutique")], 3);
    let web = cluster.service_address("boutique-web");

    let visit = crate::boutique::shop_at(web, &|| cluster.logs());
    assert_eq!(
        redis
            .command(&format!("HEXISTS carts {}", visit.user_id))
            .trim(),
        ":0",
        "the checkout emptied the cart in Redis"
    );
    for group in ["browse", "orders"] {
        let pod = pods
            .iter()
            .find(|p| p.name.contains(group))
            .expect("a pod per group");
        let served: u64 = served(dir.path(), pod).values().sum();
        assert!(served > 0, "the {group} pod served calls from other pods");
    }
}

/// Pods start from the compiled code their image carries: with an empty
/// compile cache of their own, as real pods have, the boutique's pods load
/// every component (the Python recommendation among them) from the image
/// without compiling; and a pod whose image carries code for another
/// engine compiles, and says so.
#[test]
fn pods_start_warm_from_the_code_their_image_carries() {
    let cluster = Cluster::new();
    cluster.give_pods_fresh_caches();
    let (dir, _redis) = boutique_on(&cluster);
    let version = version_of(&deploy(&cluster, dir.path(), None, "boutique:1"));
    let dialer = kube_cli_dialer(dir.path());
    let mut seen = Vec::new();
    for pod in cluster.pods(&[("weft.dev/version", &version)]) {
        let loads = weft_tests::loads_at(&format!("{}:7070", pod.ip), &dialer, &version);
        for (component, (source, _)) in &loads {
            assert_eq!(source, "image", "{component} in {}: {loads:?}", pod.name);
            seen.push(component.clone());
        }
    }
    assert!(seen.contains(&"recommendation".to_string()), "{seen:?}");

    // The same app's image, with its compiled code named for another
    // engine, as another weft (or a build for another CPU) would make it.
    let other = hello("Hello");
    let plan = Some("monolith");
    build_image(&cluster, other.path(), plan, "hello:other-engine");
    let compiled = cluster
        .image_root("hello:other-engine")
        .join("opt/weft/compiled");
    for entry in std::fs::read_dir(&compiled).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let (content, rest) = name.split_once('-').unwrap();
        let ext = rest.rsplit('.').next().unwrap();
        std::fs::rename(
            compiled.join(&name),
            compiled.join(format!("{content}-00000000000000ff.{ext}")),
        )
        .unwrap();
    }
    let path = other.path().to_str().unwrap();
    cluster.apply(&kube(&[path, "--plan", "monolith", "--secret"]));
    let yaml = kube(&[path, "--plan", "monolith", "--image", "hello:other-engine"]);
    cluster.apply(&yaml);
    let v = version_of(&yaml);
    let pods = cluster.wait_all_ready(&[("weft.dev/version", &v)]);
    let loads = weft_tests::loads_at(
        &format!("{}:7070", pods[0].ip),
        &kube_cli_dialer(other.path()),
        &v,
    );
    for (component, (source, _)) in &loads {
        assert_eq!(source, "compiled-over-image", "{component}: {loads:?}");
    }
    assert!(
        cluster.log(&pods[0].name).contains("for another engine"),
        "the pod says why it compiles:\n{}",
        cluster.log(&pods[0].name)
    );
}

/// A group whose plan gives a range of replicas has an autoscaler; its
/// pods scale as that autoscaler would scale them, under load: new pods of
/// the version join their callers' discovery and serve, pods taken away
/// leave it first, and no request fails throughout.
#[test]
fn pods_of_a_version_scale_up_and_down_under_load_without_a_failed_request() {
    let cluster = Cluster::new();
    let dir = hello("Hello");
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        "[groups.frontend]\ncomponents = [\"frontend\"]\n\
         [groups.greeter]\ncomponents = [\"greeter\"]\nreplicas = \"1..3\"\n\
         [groups.greeter.resources]\ncpu = \"100m\"\n",
    )
    .unwrap();
    let yaml = deploy(&cluster, dir.path(), plan.to_str(), "hello:1");
    assert!(yaml.contains("kind: HorizontalPodAutoscaler"), "{yaml}");
    let v = version_of(&yaml);
    let greeters = || cluster.pods(&[("weft.dev/group", "greeter"), ("weft.dev/version", &v)]);
    assert_eq!(greeters().len(), 1, "it starts at the least");
    let web = cluster.service_proxy("hello-web");
    let load = weft_tests::Load::start(web, "/?name=Ada", 2);

    let deployment = format!("hello-greeter-{}", &v[..8]);
    cluster.scale(&deployment, 3);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods = greeters();
        let serving = pods
            .iter()
            .filter(|p| p.ready && greeted(dir.path(), p) > 0)
            .count();
        if serving == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new greeters never served: {pods:?}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    cluster.scale(&deployment, 1);
    let kept = greeters().into_iter().filter(|p| !p.terminating).count();
    assert_eq!(kept, 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while greeters().len() > 1 {
        assert!(Instant::now() < deadline, "{:?}", greeters());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    let replies: Vec<weft_tests::Reply> = load.stop().into_iter().flatten().collect();
    assert!(replies.len() > 100, "{}", replies.len());
    for r in &replies {
        assert_eq!(
            r.status, 200,
            "no request fails while pods come and go: {r:?}"
        );
    }
}
