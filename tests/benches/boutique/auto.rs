//! (h), the automatic plan: the shop with `separate = [["payment",
//! "frontend"]]`, started split (a plan that honours it), profiled under
//! the mix with `weft profile`, planned with `weft plan`, moved there with
//! `weft rollout --plan auto`, and then loaded as the other placements are.
//!
//! Each page's latency is predicted from profiles of that page alone,
//! taken on the split shop before the move: a page's calls per request on
//! each edge, and the cost of a call that `weft plan` measured, give what
//! moving to a plan adds to or takes from the page's mean under split.
//! Pages that need a full cart are profiled after an add, and the add's
//! calls are taken out.

use super::{CLIENTS, Figures, Step, load, load_mix};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use weft_placer::profile::{Edge, ListenerLoad, Profile};
use weft_placer::{Choice, Compared, Costs, Plan};
use weft_tests::{Weft, boutique_app};

/// The constraint of the issue: payment never shares a process with the
/// frontend.
pub(super) const CONSTRAINT: &str = "\n[placement]\nseparate = [[\"payment\", \"frontend\"]]\n";

/// What the automatic plan did, and what was predicted of it.
pub(super) struct Auto {
    /// The plan chosen.
    pub(super) choice: Choice,
    /// Under load, and one shopper alone.
    pub(super) loaded: Figures,
    pub(super) alone: Figures,
    /// Each page's predicted mean under the chosen plan, the monolith and
    /// split, from the split shop's measured mean.
    pub(super) predicted: Vec<(&'static str, Compared)>,
    /// What a call between processes cost with one shopper.
    pub(super) alone_costs: Costs,
}

/// Each page alone, as a shopper's round; whether the round adds to the
/// cart first (the cart and the checkout need a full cart).
const PAGE_MIXES: &[(&str, &[Step], bool)] = &[
    ("home", &[Step::Home], false),
    ("product", &[Step::Product("OLJCESPC7Z")], false),
    ("add to cart", &[Step::Add("OLJCESPC7Z")], false),
    ("cart", &[Step::Add("OLJCESPC7Z"), Step::Cart], true),
    ("checkout", &[Step::Add("OLJCESPC7Z"), Step::Checkout], true),
];

/// Runs `weft ARGS` (release) to completion; its stdout.
fn weft(bin: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(bin).args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "weft {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A profile of the app at `dir` while `drive` runs: `weft profile` over
/// `window`, started a second into it.
fn profile_while(
    bin: &Path,
    dir: &Path,
    window: Duration,
    drive: impl FnOnce() -> Figures + Send,
) -> anyhow::Result<Profile> {
    let out = dir.join("profile.json");
    let (path, file) = (dir.to_str().expect("UTF-8"), out.to_str().expect("UTF-8"));
    let window = format!("{}ms", window.as_millis());
    std::thread::scope(|scope| {
        let driving = scope.spawn(drive);
        std::thread::sleep(Duration::from_secs(1));
        let profiled = weft(bin, &["profile", path, "--window", &window, "-o", file]);
        let figures = driving.join().expect("the load");
        anyhow::ensure!(figures.failed == 0, "{} requests failed", figures.failed);
        profiled
    })?;
    Ok(serde_json::from_str(&std::fs::read_to_string(out)?)?)
}

/// Per edge (caller, callee): calls per request, and bytes per call.
type Calls = BTreeMap<(String, String), (f64, f64)>;

/// Calls per request on each edge, and bytes per call, of `profile`.
fn per_request(profile: &Profile) -> Calls {
    let requests: f64 = profile.listeners.iter().map(|l| l.requests_per_s).sum();
    profile
        .edges
        .iter()
        .map(|e| {
            let key = (e.caller.clone(), e.callee.clone());
            let bytes = e.bytes_per_s() / e.calls_per_s.max(f64::MIN_POSITIVE);
            (key, (e.calls_per_s / requests, bytes))
        })
        .collect()
}

/// Moves the shop from split to the plan `weft plan` chooses, and loads
/// it; `split_alone` is the split shop's one-shopper pass of this run.
pub(super) fn run(bin: &Path, split_alone: &Figures) -> anyhow::Result<Auto> {
    let dir = boutique_app("weft.toml", None);
    let manifest = dir.path().join("weft.toml");
    let mut text = std::fs::read_to_string(&manifest)?;
    text.push_str(CONSTRAINT);
    std::fs::write(&manifest, text)?;
    let path = dir.path().to_str().expect("UTF-8");
    let app = Weft::spawn_binary(bin, &["deploy", "--plan", "split"], &[path], &[]);
    let address = app.listeners["web"];
    let roots = [app.pid()];

    // Each page alone: its calls per request, and what its remote calls
    // cost with one shopper (the time between the processes).
    let mut pages: Vec<(&str, Calls)> = Vec::new();
    let mut alone_profiles = Vec::new();
    for (page, mix, after_add) in PAGE_MIXES {
        let profile = profile_while(bin, dir.path(), Duration::from_secs(2), || {
            load_mix(address, mix, 1, Duration::from_millis(3500), &roots)
        })?;
        let mut calls = per_request(&profile);
        alone_profiles.push(profile);
        if *after_add {
            // Per round of two requests, less the add's calls.
            let (_, add) = &pages[2];
            for (edge, (n, _)) in calls.iter_mut() {
                *n = (2.0 * *n - add.get(edge).map_or(0.0, |(m, _)| *m)).max(0.0);
            }
        }
        pages.push((page, calls));
    }
    // The mix, under load: what the plan is chosen from.
    let profile = profile_while(bin, dir.path(), Duration::from_secs(4), || {
        load(address, CLIENTS, Duration::from_secs(6), &roots)
    })?;
    let file = dir.path().join("mix.json");
    std::fs::write(&file, serde_json::to_string(&profile)?)?;
    let file = file.to_str().expect("UTF-8");
    let choice: Choice =
        serde_json::from_str(&weft(bin, &["plan", path, "--profile", file, "--json"])?)?;
    weft(
        bin,
        &[
            "rollout",
            path,
            "--plan",
            "auto",
            "--profile",
            file,
            "--over",
            "0",
        ],
    )?;

    // The predictions are of one shopper alone: a call between processes
    // costs what it did with one shopper, from the pages' profiles.
    let (mut calls, mut total) = (0.0, 0.0);
    for p in &alone_profiles {
        if let Some((us, n)) = p.rpc_cost_us(choice.costs.per_byte_ns) {
            calls += n;
            total += us * n;
        }
    }
    anyhow::ensure!(calls > 0.0, "the pages' profiles have no remote calls");
    let alone_costs = Costs {
        per_call_us: total / calls,
        ..choice.costs
    };
    let components: Vec<String> = profile.components.keys().cloned().collect();
    let (monolith, split) = (
        Plan::monolith(components.iter().cloned()),
        Plan::split(components.iter().cloned()),
    );
    let predicted = pages
        .iter()
        .map(|(page, calls)| {
            let page_profile = one_page(&profile, calls, split_alone.page_mean(page));
            let latency = weft_placer::predict(
                &page_profile,
                alone_costs,
                &[&choice.plan, &monolith, &split],
            );
            (*page, latency[0].predicted_ms)
        })
        .collect();

    let (loaded, alone) = super::measure("the auto plan", app, &roots)?;
    Ok(Auto {
        choice,
        loaded,
        alone,
        predicted,
        alone_costs,
    })
}

/// A profile of one page on the split shop: one request per second, whose
/// calls per request are `calls`, measured at `mean` (under split).
fn one_page(mix: &Profile, calls: &Calls, mean: Duration) -> Profile {
    Profile {
        edges: calls
            .iter()
            .map(|((caller, callee), (n, bytes))| Edge {
                caller: caller.clone(),
                callee: callee.clone(),
                remote: true,
                calls_per_s: *n,
                request_bytes_per_s: n * bytes,
                ..Edge::default()
            })
            .collect(),
        listeners: vec![ListenerLoad {
            listener: "web".into(),
            component: "frontend".into(),
            requests_per_s: 1.0,
            mean_ms: mean.as_secs_f64() * 1e3,
            ..ListenerLoad::default()
        }],
        ..mix.clone()
    }
}

/// The machine's costs as `weft plan` measured them, for the table.
pub(super) fn costs_line(costs: &Costs) -> String {
    format!(
        "{:.1} µs per call + {:.2} ns per byte",
        costs.per_call_us, costs.per_byte_ns
    )
}
