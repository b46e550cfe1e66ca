//! (i): weft on the simulated three-node cluster (root only), with the
//! release weft in the images:
//!
//! - throughput and p99 of `samples/hello` split, through weft's ingress,
//!   during a 20-second `weft rollout --kube`, against the same load in the
//!   10 seconds before it and the 10 after it;
//! - the boutique's pods' start time, from process start to ready, cold
//!   (an image without compiled code, and an empty compile cache, as a new
//!   pod has) against warm (the image carries each component's compiled
//!   code), per group, with how long its slowest component took to load
//!   (every worker loads all the app's components, to resolve the app).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use weft_tests::{Cluster, RedisServer, target_dir};

use crate::rollout::{ms, p99, under_load};

/// The release weft.
fn weft() -> std::path::PathBuf {
    target_dir().join("release/weft")
}

/// `weft ARGS...` (release), its output; it must succeed.
fn run(args: &[&str], env: &[(String, String)]) -> anyhow::Result<String> {
    let out = Command::new(weft())
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("WEFT_CACHE_DIR", weft_tests::shared_cache())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "weft {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Builds the app's image (with or without its compiled code), applies its
/// Secrets and objects, and waits until its pods and the ingress serve.
fn deploy(
    cluster: &Cluster,
    dir: &Path,
    plan: &[&str],
    image: &str,
    compiled: bool,
) -> anyhow::Result<String> {
    let path = dir.to_str().unwrap();
    let args = |more: &[&'static str]| -> Vec<String> {
        let mut all = vec!["kube".to_string(), path.to_string()];
        all.extend(plan.iter().chain(more).map(|a| a.to_string()));
        all
    };
    let weft_kube = |more: &[&'static str]| {
        let all = args(more);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        run(&all, &[])
    };
    let containerfile = weft_kube(&["--containerfile"])?;
    let containerfile: String = containerfile
        .lines()
        .filter(|l| compiled || !l.contains(weft_runtime::kube::COMPILED_IN_CONTEXT))
        .map(|l| format!("{l}\n"))
        .collect();
    cluster.build_image(image, &containerfile, dir);
    cluster.apply(&weft_kube(&["--secret"])?);
    let mut all = args(&["--replicas-from-plan", "--image"]);
    all.push(image.to_string());
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let yaml = run(&all, &[])?;
    cluster.apply(&yaml);
    let version = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("weft.dev/version: "))
        .expect("the version")
        .trim_matches('\'')
        .to_string();
    cluster.wait_all_ready(&[("weft.dev/version", &version)]);
    cluster.wait_ready(&[("weft.dev/role", "ingress")], 2);
    Ok(version)
}

/// A copy of hello saying `greeting`, listening on port 8080.
fn hello(dir: &Path, greeting: &str) -> anyhow::Result<()> {
    crate::rollout::hello_copy(greeting, dir)?;
    let manifest = dir.join("weft.toml");
    let text = std::fs::read_to_string(&manifest)?.replace("127.0.0.1:0", "127.0.0.1:8080");
    std::fs::write(manifest, text)?;
    Ok(())
}

pub(crate) fn on_the_cluster() -> anyhow::Result<()> {
    println!("\n(i) on the simulated three-node cluster");
    rollout_under_load()?;
    pod_start_times()?;
    Ok(())
}

fn rollout_under_load() -> anyhow::Result<()> {
    let cluster = Cluster::new();
    let first = tempfile::tempdir()?;
    hello(first.path(), "Hello")?;
    deploy(
        &cluster,
        first.path(),
        &["--plan", "split"],
        "hello:1",
        true,
    )?;
    let web: SocketAddr = cluster.service_proxy("hello-web");
    // The ingress finds the pods within its discovery's refresh.
    under_load(web, Duration::from_secs(4), || ());

    let window = Duration::from_secs(20);
    let half = window / 2;
    let (mut steady, mut steady_failed, ()) = under_load(web, half, || ());
    let second = tempfile::tempdir()?;
    hello(second.path(), "Howdy")?;
    weft_tests::copy_tree(
        &first.path().join(".weft/kube"),
        &second.path().join(".weft/kube"),
    )?;
    let path = second.path().to_str().unwrap();
    let containerfile = run(&["kube", path, "--plan", "split", "--containerfile"], &[])?;
    cluster.build_image("hello:2", &containerfile, second.path());
    let kubectl = cluster.kubectl();
    let env = cluster.kubectl_env();
    let (shift, shift_failed, took) = under_load(web, window, || {
        let start = std::time::Instant::now();
        let done = run(
            &[
                "rollout",
                path,
                "--kube",
                "--kubectl",
                kubectl.to_str().unwrap(),
                "--plan",
                "split",
                "--image",
                "hello:2",
                "--over",
                "20s",
            ],
            &env,
        );
        done.map(|_| start.elapsed())
    });
    let took = took?;
    let (after, after_failed, ()) = under_load(web, half, || ());
    steady.extend(after);
    steady.sort();
    steady_failed += after_failed;
    let steady_rate = steady.len() as f64 / window.as_secs_f64();
    let shift_rate = shift.len() as f64 / took.max(window).as_secs_f64();
    println!(
        "  hello split through the ingress, {} clients:",
        crate::rollout::CLIENTS
    );
    println!(
        "    steady   {steady_rate:7.0} req/s   p99 {:6.2} ms   failed {steady_failed}",
        ms(p99(&steady))
    );
    println!(
        "    shifting {shift_rate:7.0} req/s   p99 {:6.2} ms   failed {shift_failed}   \
         ({:.1} s: its pods' start, then the 20 s shift)   throughput {:.2}x steady \
         (target >= 0.8x), p99 {:.2}x (target <= 2x)",
        ms(p99(&shift)),
        took.as_secs_f64(),
        shift_rate / steady_rate,
        p99(&shift).as_secs_f64() / p99(&steady).as_secs_f64()
    );
    Ok(())
}

fn pod_start_times() -> anyhow::Result<()> {
    println!("  the boutique's pods, from process start to ready (an empty compile cache each):");
    let mut times = Vec::new();
    for warm in [false, true] {
        let cluster = Cluster::new();
        cluster.give_pods_fresh_caches();
        let port = weft_tests::free_address().port();
        let redis = RedisServer::start_on((cluster.host_ip(), port).into());
        let dir = weft_tests::boutique_app("three-groups.toml", Some(&redis.url(0)));
        let manifest = dir.path().join("weft.toml");
        let text = std::fs::read_to_string(&manifest)?.replace("127.0.0.1:0", "127.0.0.1:8090");
        std::fs::write(&manifest, text)?;
        let image = if warm {
            "boutique:warm"
        } else {
            "boutique:cold"
        };
        let version = deploy(&cluster, dir.path(), &[], image, warm)?;
        let dialer = weft_tests::kube_cli_dialer(dir.path());
        let mut groups = Vec::new();
        for pod in cluster.pods(&[("weft.dev/version", &version)]) {
            let started = cluster
                .start_times(&[("weft.dev/version", &version)])
                .into_iter()
                .find(|(name, _)| *name == pod.name)
                .map(|(_, t)| t)
                .expect("a start time");
            let loads = weft_tests::loads_at(&format!("{}:7070", pod.ip), &dialer, &version);
            let slowest = loads
                .iter()
                .max_by_key(|(_, (_, took))| *took)
                .map(|(c, (source, took))| (c.clone(), source.clone(), *took))
                .expect("a component");
            let group = pod.name.split('-').nth(1).unwrap_or_default().to_string();
            groups.push((group, started, slowest));
        }
        groups.sort();
        times.push(groups);
        drop(redis);
    }
    let (cold, warm) = (&times[0], &times[1]);
    for ((group, cold_start, cold_slow), (_, warm_start, warm_slow)) in cold.iter().zip(warm) {
        println!(
            "    {group:8} cold {:7.0} ms ({} {} {:.0} ms)   warm {:6.0} ms ({} {} {:.0} ms)   \
             warm is {:5.1}x faster{}",
            ms(*cold_start),
            cold_slow.0,
            cold_slow.1,
            ms(cold_slow.2),
            ms(*warm_start),
            warm_slow.0,
            warm_slow.1,
            ms(warm_slow.2),
            cold_start.as_secs_f64() / warm_start.as_secs_f64(),
            // three-groups.toml puts the Python recommendation in browse.
            if group == "browse" {
                " (the Python component's own pod: target >= 10x)"
            } else {
                ""
            }
        );
    }
    Ok(())
}
