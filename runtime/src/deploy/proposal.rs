//! The manager's re-planning: every `[deploy] replan-every` (a minute
//! unless given), the plan `weft plan` would choose from the last minute's
//! counts, proposed when moving to it would save enough time on calls
//! between processes. `weft status` shows the proposal, and one command
//! applies it: `weft rollout --plan .weft/proposed-plan.toml`.
//!
//! Whether to propose is pure ([`consider`]); the manager supplies the
//! profile, the costs and the running plan.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use weft_placer::{Constraints, Costs, Plan, Profile, Request};

/// How often the manager re-plans unless `[deploy] replan-every` says.
pub const REPLAN_EVERY: Duration = Duration::from_secs(60);

/// The least RPC time per second a move must save to be proposed, in
/// milliseconds: half a percent of a core...
pub const MIN_GAIN_MS_PER_S: f64 = 5.0;
/// ... and the least share of the running plan's.
pub const MIN_GAIN_SHARE: f64 = 0.2;

/// A plan the manager proposes, as `weft status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The plan file it wrote, for `weft rollout --plan`.
    pub plan_file: String,
    /// The proposed groups: each group's components.
    pub groups: BTreeMap<String, Vec<String>>,
    /// RPC time per second under the running plan, in milliseconds.
    pub running_ms_per_s: f64,
    /// ... and under the proposed one.
    pub proposed_ms_per_s: f64,
    /// The edges the proposed plan cuts, as `caller -> callee`.
    pub cut: Vec<String>,
    /// The window of counts it was chosen from, in seconds.
    pub window_s: f64,
}

/// The plan to propose instead of `running`, if there is one worth the
/// move: the cheapest plan for `profile` under `constraints`, when it
/// groups the components differently and saves at least
/// [`MIN_GAIN_MS_PER_S`] and [`MIN_GAIN_SHARE`] of the running plan's RPC
/// time. The proposal's `plan_file` is left empty.
pub fn consider(
    components: &[String],
    constraints: &Constraints,
    profile: &Profile,
    costs: Costs,
    running: &Plan,
) -> Option<(Plan, Proposal)> {
    let choice = weft_placer::choose(&Request {
        components,
        constraints,
        profile,
        costs,
        costs_from: "measured by the manager",
        cpu_budget: None,
    })
    .ok()?;
    // The scale an operator gave the running groups carries over, where the
    // constraints allow it.
    let mut plan = choice.plan.clone();
    plan.keep_scale_of(running);
    if !constraints.violations(&plan).is_empty() {
        plan = choice.plan.clone();
    }
    let running_ms = weft_placer::cut_cost_ms(profile, running, costs);
    let proposed_ms = choice.cost_ms_per_s.chosen;
    let saved = running_ms - proposed_ms;
    if same_groups(&choice.plan, running)
        || saved < MIN_GAIN_MS_PER_S
        || saved < running_ms * MIN_GAIN_SHARE
    {
        return None;
    }
    let proposal = Proposal {
        plan_file: String::new(),
        groups: choice
            .plan
            .groups
            .iter()
            .map(|(name, g)| (name.clone(), g.components.clone()))
            .collect(),
        running_ms_per_s: running_ms,
        proposed_ms_per_s: proposed_ms,
        cut: choice
            .cut_pairs()
            .iter()
            .map(|(a, b)| format!("{a} -> {b}"))
            .collect(),
        window_s: profile.window_s,
    };
    Some((plan, proposal))
}

/// Whether two plans put the same components together, whatever their
/// groups are called.
fn same_groups(a: &Plan, b: &Plan) -> bool {
    let sets = |p: &Plan| {
        let mut sets: Vec<Vec<String>> = p
            .groups
            .values()
            .map(|g| {
                let mut c = g.components.clone();
                c.sort();
                c
            })
            .collect();
        sets.sort();
        sets
    };
    sets(a) == sets(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_placer::synthetic::{edge, profile};

    const COSTS: Costs = Costs {
        per_call_us: 200.0,
        per_byte_ns: 1.0,
    };

    fn app() -> (Vec<String>, Profile) {
        let components: Vec<String> = vec!["frontend".into(), "greeter".into()];
        let calls = profile(
            &components,
            vec![edge("frontend", "greeter", 100.0, 1000.0)],
            &[0.1, 0.1],
        );
        (components, calls)
    }

    #[test]
    fn a_split_app_that_calls_much_is_proposed_the_monolith() {
        let (components, profile) = app();
        let split = Plan::split(components.iter().cloned());
        let (plan, proposal) = consider(
            &components,
            &Constraints::default(),
            &profile,
            COSTS,
            &split,
        )
        .unwrap();
        assert_eq!(plan.groups.len(), 1);
        // 100 calls/s of 200 µs and 10 bytes (0.01 µs): 20.001 ms per second.
        assert!(
            (proposal.running_ms_per_s - 20.001).abs() < 1e-9,
            "{proposal:?}"
        );
        assert_eq!(proposal.proposed_ms_per_s, 0.0);
        assert!(proposal.cut.is_empty());
    }

    #[test]
    fn nothing_is_proposed_when_the_plan_is_already_best_or_the_gain_is_small() {
        let (components, mut profile) = app();
        let monolith = Plan::monolith(components.iter().cloned());
        let none = Constraints::default();
        assert!(consider(&components, &none, &profile, COSTS, &monolith).is_none());
        // 10 calls/s save only 2 ms per second.
        profile.edges[0].calls_per_s = 10.0;
        let split = Plan::split(components.iter().cloned());
        assert!(consider(&components, &none, &profile, COSTS, &split).is_none());
        // Constraints that keep them apart leave nothing better than split.
        profile.edges[0].calls_per_s = 100.0;
        let apart: Constraints =
            toml::from_str("separate = [[\"frontend\", \"greeter\"]]").unwrap();
        assert!(consider(&components, &apart, &profile, COSTS, &split).is_none());
    }
}
