//! (m): how long `weft plan`'s search takes, in this process: synthetic
//! apps of clusters that call within themselves a lot and across a little
//! (with a colocation, a separation and a most-components-per-group), the
//! plan's cost set beside the planted plan's (one group per cluster); and
//! the exact search's hard case, 12 components that all call each other
//! under a CPU budget that forces several groups.

use std::time::{Duration, Instant};
use weft_placer::profile::Profile;
use weft_placer::synthetic::{Lcg, clustered, edge, planted, profile};
use weft_placer::{Choice, Constraints, Costs, Request, cut_cost_ms};

const COSTS: Costs = Costs {
    per_call_us: 150.0,
    per_byte_ns: 2.0,
};

/// The median time of 5 plans of `components` under `constraints` and
/// `budget`, and the last choice.
fn time(
    components: &[String],
    constraints: &Constraints,
    profile: &Profile,
    budget: Option<f64>,
) -> (Duration, Choice) {
    let request = Request {
        components,
        constraints,
        profile,
        costs: COSTS,
        costs_from: "the benchmark",
        cpu_budget: budget,
    };
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let start = Instant::now();
        let choice = weft_placer::choose(&request).expect("a feasible plan");
        times.push(start.elapsed());
        last = Some(choice);
    }
    times.sort();
    (times[times.len() / 2], last.expect("one run"))
}

pub(crate) fn planner_speed() {
    println!("\n(m) weft plan's search, median of 5 (target: 100 components in under 1 s)");
    println!(
        "  {:<40} {:>10} {:>8} {:>12} {:>16}",
        "app", "time", "exact", "visited", "cost / planted"
    );
    for (clusters, size) in [(3, 4), (10, 10), (20, 10)] {
        let (components, profile, constraints) = clustered(1, clusters, size);
        let (took, choice) = time(&components, &constraints, &profile, None);
        let planted = planted(&components, size);
        println!(
            "  {:<40} {:>10} {:>8} {:>12} {:>15.2}x",
            format!("{} components in {clusters} clusters", components.len()),
            format!("{:.2}ms", took.as_secs_f64() * 1e3),
            choice.search.exact,
            choice.search.visited,
            choice.cost_ms_per_s.chosen / cut_cost_ms(&profile, &planted, COSTS)
        );
    }
    let (components, profile) = dense(12);
    let constraints = Constraints::default();
    let (took, choice) = time(&components, &constraints, &profile, Some(1.0));
    println!(
        "  {:<40} {:>10} {:>8} {:>12} {:>16}",
        "12 components all calling, budget 1 core",
        format!("{:.2}ms", took.as_secs_f64() * 1e3),
        choice.search.exact,
        choice.search.visited,
        format!("{} groups", choice.plan.groups.len())
    );
}

/// `n` components that all call each other, each busy 0.3 cores.
fn dense(n: usize) -> (Vec<String>, Profile) {
    let mut rng = Lcg(3);
    let components: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    let mut edges = Vec::new();
    for a in &components {
        for b in &components {
            if a != b {
                edges.push(edge(a, b, 1.0 + rng.below(100) as f64, 100.0));
            }
        }
    }
    let busy = vec![0.3; n];
    let profile = profile(&components, edges, &busy);
    (components, profile)
}
