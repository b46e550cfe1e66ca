//! `weft plan`'s answer: the plan that spends the least time on calls
//! between processes, and why.
//!
//! The predicted cost of a plan is the sum, over the edges it cuts, of
//! calls per second times the cost of one RPC, plus bytes per second
//! times the cost of one byte ([`Costs`], measured on the machine that
//! plans). [`choose`] finds the cheapest plan that honours the
//! [`Constraints`] and a budget of busy cores per process, and explains
//! it ([`Choice`]): the cut edges and their cost, how each constraint was
//! met, and each listener's latency predicted under the chosen plan, the
//! monolith and split.
//!
//! A listener's predicted latency is its mean in the profile, plus, for
//! every edge its requests reach, the calls per request times the cost of
//! one RPC for each edge the plan cuts that the profile did not, minus it
//! for each edge it joins that the profile had cut. Calls are counted as
//! if made one after another; a caller that overlaps them waits less.

use crate::profile::Profile;
use crate::search::Graph;
use crate::{Constraints, Group, MONOLITH_GROUP, Plan, Problem, Replicas, Resources};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

/// What a call between processes costs on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Costs {
    /// One call, in microseconds: both sides' TLS, HTTP/2 and framing.
    pub per_call_us: f64,
    /// Each byte moved (arguments and results), in nanoseconds.
    pub per_byte_ns: f64,
}

impl Costs {
    /// The cost of one call that moves `bytes`, in microseconds.
    pub fn of_call(&self, bytes: f64) -> f64 {
        self.per_call_us + bytes * self.per_byte_ns / 1e3
    }
}

/// What to plan.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The app's components, in the manifest's order.
    pub components: &'a [String],
    /// What every plan must honour.
    pub constraints: &'a Constraints,
    /// What the app did (or its static graph).
    pub profile: &'a Profile,
    /// What a call between processes costs.
    pub costs: Costs,
    /// Where `costs` come from, for the explanation.
    pub costs_from: &'a str,
    /// The most busy cores one process may hold (a component alone may
    /// hold more: its group's replicas share them); `None` for no limit.
    pub cpu_budget: Option<f64>,
}

/// The chosen plan, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Choice {
    /// The plan.
    pub plan: Plan,
    /// Whether it was chosen from a measured profile, not the static graph.
    pub measured: bool,
    /// The costs it weighed.
    pub costs: Costs,
    /// Where they come from.
    pub costs_from: String,
    /// The budget of busy cores per process.
    pub cpu_budget: Option<f64>,
    /// How the search went.
    pub search: SearchReport,
    /// RPC time per second of the chosen plan, the monolith and split, in
    /// milliseconds.
    pub cost_ms_per_s: Compared,
    /// The groups, with their load.
    pub groups: Vec<GroupReport>,
    /// The edges the plan cuts, costliest first.
    pub cut: Vec<CutEdge>,
    /// How each constraint is met.
    pub constraints: Vec<Honoured>,
    /// Each listener's mean latency, predicted (measured profiles only).
    pub latency: Vec<ListenerLatency>,
}

/// A figure under the chosen plan, the monolith and split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Compared {
    /// Under the chosen plan.
    pub chosen: f64,
    /// Every component in one process (which may break constraints).
    pub monolith: f64,
    /// Every component in a process of its own.
    pub split: f64,
}

/// How the search went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SearchReport {
    /// Whether every feasible partition was considered: the plan is optimal.
    pub exact: bool,
    /// How many units (components joined by `colocate`) were placed.
    pub units: usize,
    /// Partial partitions the exact search visited.
    pub visited: u64,
}

/// One group of the chosen plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GroupReport {
    /// Its name.
    pub name: String,
    /// Its components.
    pub components: Vec<String>,
    /// Their busy cores, summed.
    pub busy_cores: f64,
}

/// An edge the plan cuts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CutEdge {
    /// The caller.
    pub caller: String,
    /// The callee.
    pub callee: String,
    /// Calls per second.
    pub calls_per_s: f64,
    /// Bytes per second, both ways.
    pub bytes_per_s: f64,
    /// RPC time per second it costs, in milliseconds.
    pub cost_ms_per_s: f64,
}

/// A constraint, and how the plan meets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Honoured {
    /// The constraint, as the manifest names it.
    pub rule: String,
    /// How the plan meets it.
    pub how: String,
}

/// A listener's mean latency: measured in the profile, and predicted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ListenerLatency {
    /// The listener.
    pub listener: String,
    /// Its requests per second in the profile.
    pub requests_per_s: f64,
    /// Its mean latency in the profile, in milliseconds.
    pub measured_ms: f64,
    /// Predicted, in milliseconds.
    pub predicted_ms: Compared,
}

/// The cheapest plan for `request`, explained; or why none can honour
/// its constraints.
pub fn choose(request: &Request<'_>) -> Result<Choice, Vec<Problem>> {
    let components = request.components;
    let constraints = request.constraints;
    let conflicts = constraints.conflicts(components);
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let profile = request.profile;
    let index: BTreeMap<&str, usize> = components
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let mut weights: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for e in &profile.edges {
        if let (Some(a), Some(b)) = (index.get(e.caller.as_str()), index.get(e.callee.as_str())) {
            *weights.entry((*a, *b)).or_default() += edge_cost_ms(e, request.costs);
        }
    }
    // A callee reached over RPC whose side was not counted was charged the
    // RPC's time as well; what is left is its own.
    let mut rpc_cores: BTreeMap<&str, f64> = BTreeMap::new();
    for e in profile
        .edges
        .iter()
        .filter(|e| e.remote && e.rpc_mean_ms.is_none())
    {
        *rpc_cores.entry(&e.callee).or_default() +=
            e.calls_per_s * request.costs.of_call(bytes_per_call(e)) / 1e6;
    }
    let busy = |i: usize| {
        let c = components[i].as_str();
        let measured = profile.components.get(c).map_or(0.0, |c| c.busy_cores);
        (measured - rpc_cores.get(c).copied().unwrap_or(0.0)).max(0.0)
    };
    let graph = Graph::new(components, constraints, busy, &weights, request.cpu_budget);
    let found = graph.search();

    // Groups of component names, each named after the component in it that
    // serves a listener, else its first (or `main`, alone).
    let mut groups: Vec<Vec<String>> = found
        .groups
        .iter()
        .map(|units| {
            let mut members: Vec<usize> = units
                .iter()
                .flat_map(|u| graph.units[*u].members.iter().copied())
                .collect();
            members.sort_unstable();
            members.iter().map(|i| components[*i].clone()).collect()
        })
        .collect();
    groups.sort_by_key(|g| index[g[0].as_str()]);
    let serving: BTreeSet<&str> = profile
        .listeners
        .iter()
        .map(|l| l.component.as_str())
        .collect();
    let name_of = |g: &[String]| {
        if groups.len() == 1 {
            return MONOLITH_GROUP.to_string();
        }
        g.iter()
            .find(|c| serving.contains(c.as_str()))
            .unwrap_or(&g[0])
            .clone()
    };
    let mut plan = Plan {
        groups: BTreeMap::new(),
    };
    let mut reports = Vec::new();
    for g in &groups {
        let busy_cores: f64 = g.iter().map(|c| busy(index[c.as_str()])).sum();
        plan.groups.insert(
            name_of(g),
            Group {
                components: g.clone(),
                replicas: replicas_for(constraints, g, busy_cores, request.cpu_budget),
                resources: Resources::default(),
                fuse: false,
            },
        );
        reports.push(GroupReport {
            name: name_of(g),
            components: g.clone(),
            busy_cores,
        });
    }
    debug_assert!(constraints.violations(&plan).is_empty());

    let monolith = Plan::monolith(components.iter().cloned());
    let split = Plan::split(components.iter().cloned());
    let cost_of = |plan: &Plan| cut_cost_ms(profile, plan, request.costs);
    let mut cut: Vec<CutEdge> = profile
        .edges
        .iter()
        .filter(|e| is_cut(&plan, &e.caller, &e.callee))
        .map(|e| CutEdge {
            caller: e.caller.clone(),
            callee: e.callee.clone(),
            calls_per_s: e.calls_per_s,
            bytes_per_s: e.bytes_per_s(),
            cost_ms_per_s: edge_cost_ms(e, request.costs),
        })
        .collect();
    cut.sort_by(|a, b| b.cost_ms_per_s.total_cmp(&a.cost_ms_per_s));
    let latency = if profile.measured {
        predict(profile, request.costs, &[&plan, &monolith, &split])
    } else {
        Vec::new()
    };
    Ok(Choice {
        cost_ms_per_s: Compared {
            chosen: cost_of(&plan),
            monolith: cost_of(&monolith),
            split: cost_of(&split),
        },
        constraints: honoured(constraints, &plan, &reports, request.cpu_budget),
        plan,
        measured: profile.measured,
        costs: request.costs,
        costs_from: request.costs_from.to_string(),
        cpu_budget: request.cpu_budget,
        search: SearchReport {
            exact: found.exact,
            units: graph.units.len(),
            visited: found.visited,
        },
        groups: reports,
        cut,
        latency,
    })
}

/// The bytes one call of `e` moves, both ways.
fn bytes_per_call(e: &crate::profile::Edge) -> f64 {
    if e.calls_per_s > 0.0 {
        e.bytes_per_s() / e.calls_per_s
    } else {
        0.0
    }
}

/// The RPC time per second, in milliseconds, of cutting edge `e`.
fn edge_cost_ms(e: &crate::profile::Edge, costs: Costs) -> f64 {
    e.calls_per_s * costs.of_call(bytes_per_call(e)) / 1e3
}

/// Whether `plan` puts `a` and `b` in different processes.
fn is_cut(plan: &Plan, a: &str, b: &str) -> bool {
    plan.group_of(a).map(|g| g.0) != plan.group_of(b).map(|g| g.0)
}

/// The RPC time per second of every edge `plan` cuts, in milliseconds.
pub fn cut_cost_ms(profile: &Profile, plan: &Plan, costs: Costs) -> f64 {
    profile
        .edges
        .iter()
        .filter(|e| is_cut(plan, &e.caller, &e.callee))
        .map(|e| edge_cost_ms(e, costs))
        // From +0: an empty sum of floats is -0, which prints as "-0.000".
        .fold(0.0, |sum, cost| sum + cost)
}

/// The replicas of a group of `components` busy for `busy` cores: enough
/// for the budget, within the ranges the constraints give.
fn replicas_for(
    constraints: &Constraints,
    components: &[String],
    busy: f64,
    budget: Option<f64>,
) -> Replicas {
    let needed = match budget {
        Some(b) if b > 0.0 => ((busy / b).ceil() as u32).max(1),
        _ => 1,
    };
    let ranged = components
        .iter()
        .any(|c| constraints.replicas.contains_key(c));
    match constraints.replicas_of(components) {
        Some(range) if ranged => Replicas {
            min: needed.clamp(range.min, range.max),
            max: range.max,
        },
        _ => Replicas::fixed(needed.min(crate::MAX_REPLICAS)),
    }
}

/// Each listener's mean latency predicted under each of `plans`.
pub fn predict(profile: &Profile, costs: Costs, plans: &[&Plan; 3]) -> Vec<ListenerLatency> {
    // The components each listener's requests reach.
    let mut callees: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for e in &profile.edges {
        callees.entry(&e.caller).or_default().push(&e.callee);
    }
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::from([from.to_string()]);
        let mut queue = VecDeque::from([from]);
        while let Some(c) = queue.pop_front() {
            for next in callees.get(c).into_iter().flatten() {
                if seen.insert(next.to_string()) {
                    queue.push_back(next);
                }
            }
        }
        seen
    };
    let reached: Vec<BTreeSet<String>> = profile
        .listeners
        .iter()
        .map(|l| reach(&l.component))
        .collect();
    // An edge's calls per request: its calls over the requests of every
    // listener that reaches its caller.
    let per_request = |e: &crate::profile::Edge| {
        let requests: f64 = profile
            .listeners
            .iter()
            .zip(&reached)
            .filter(|(_, r)| r.contains(&e.caller))
            .map(|(l, _)| l.requests_per_s)
            .sum();
        if requests > 0.0 {
            e.calls_per_s / requests
        } else {
            0.0
        }
    };
    profile
        .listeners
        .iter()
        .zip(&reached)
        .map(|(l, reached)| {
            let under = |plan: &Plan| {
                let delta_us: f64 = profile
                    .edges
                    .iter()
                    .filter(|e| reached.contains(&e.caller))
                    .map(|e| {
                        let now = f64::from(u8::from(is_cut(plan, &e.caller, &e.callee)));
                        let then = f64::from(u8::from(e.remote));
                        per_request(e) * (now - then) * costs.of_call(bytes_per_call(e))
                    })
                    .fold(0.0, |sum, delta| sum + delta);
                (l.mean_ms + delta_us / 1e3).max(0.0)
            };
            ListenerLatency {
                listener: l.listener.clone(),
                requests_per_s: l.requests_per_s,
                measured_ms: l.mean_ms,
                predicted_ms: Compared {
                    chosen: under(plans[0]),
                    monolith: under(plans[1]),
                    split: under(plans[2]),
                },
            }
        })
        .collect()
}

/// How `plan` meets each of `constraints`, and the CPU budget.
fn honoured(
    constraints: &Constraints,
    plan: &Plan,
    groups: &[GroupReport],
    budget: Option<f64>,
) -> Vec<Honoured> {
    use crate::Rule;
    let group = |c: &str| plan.group_of(c).map_or("?", |g| g.0).to_string();
    let mut out = Vec::new();
    for (i, set) in constraints.colocate.iter().enumerate() {
        out.push(Honoured {
            rule: Rule::Colocate(i).to_string(),
            how: format!(
                "{} share group '{}'",
                set.join(", "),
                set.first().map_or("?".to_string(), |c| group(c))
            ),
        });
    }
    for (i, set) in constraints.separate.iter().enumerate() {
        let places: Vec<String> = set
            .iter()
            .map(|c| format!("{c} in '{}'", group(c)))
            .collect();
        out.push(Honoured {
            rule: Rule::Separate(i).to_string(),
            how: places.join(", "),
        });
    }
    for (c, label) in &constraints.pin {
        out.push(Honoured {
            rule: Rule::Pin(c.clone()).to_string(),
            how: format!("group '{}' runs on nodes labelled {label}", group(c)),
        });
    }
    if let Some(max) = constraints.max_components_per_group {
        let largest = plan
            .groups
            .values()
            .map(|g| g.components.len())
            .max()
            .unwrap_or(0);
        out.push(Honoured {
            rule: Rule::MaxComponents.to_string(),
            how: format!("the largest group holds {largest} of at most {max}"),
        });
    }
    for c in constraints.replicas.keys() {
        let replicas = plan.group_of(c).map(|g| g.1.replicas).unwrap_or_default();
        out.push(Honoured {
            rule: Rule::Replicas(c.clone()).to_string(),
            how: format!("group '{}' runs {replicas} replicas", group(c)),
        });
    }
    if let Some(budget) = budget {
        let busiest = groups
            .iter()
            .max_by(|a, b| a.busy_cores.total_cmp(&b.busy_cores));
        if let Some(g) = busiest {
            out.push(Honoured {
                rule: "--cpu-budget".to_string(),
                how: format!(
                    "the busiest group, '{}', keeps {:.2} of {budget:.2} cores busy{}",
                    g.name,
                    g.busy_cores,
                    if g.busy_cores > budget {
                        "; it is one component (or one colocated set), so its replicas \
                         share the load"
                    } else {
                        ""
                    }
                ),
            });
        }
    }
    out
}

impl Choice {
    /// The cut edges, as (caller, callee).
    pub fn cut_pairs(&self) -> Vec<(&str, &str)> {
        self.cut
            .iter()
            .map(|e| (e.caller.as_str(), e.callee.as_str()))
            .collect()
    }

    /// The choice as people read it, the plan's TOML last.
    pub fn render(&self, source: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "weft plan for {source}");
        if !self.measured {
            let _ = writeln!(
                out,
                "  no profile: planned on the static call graph (each wire counts as one call \
                 per second); take one with `weft profile` for a plan from measured traffic"
            );
        }
        let _ = writeln!(
            out,
            "  cost of a call between processes: {:.1} µs + {:.2} ns per byte ({})",
            self.costs.per_call_us, self.costs.per_byte_ns, self.costs_from
        );
        let _ = writeln!(
            out,
            "  search: {} over {} units ({} partial partitions visited)",
            if self.search.exact {
                "exact"
            } else {
                "heuristic (too many units to try every partition)"
            },
            self.search.units,
            self.search.visited
        );
        let _ = writeln!(
            out,
            "  RPC time per second: {:.3} ms (monolith {:.3} ms, split {:.3} ms)",
            self.cost_ms_per_s.chosen, self.cost_ms_per_s.monolith, self.cost_ms_per_s.split
        );
        let _ = writeln!(out, "\ngroups:");
        for g in &self.groups {
            let _ = writeln!(
                out,
                "  {:<16} {:>6.2} busy cores  {}",
                g.name,
                g.busy_cores,
                g.components.join(", ")
            );
        }
        let _ = writeln!(out, "\ncut edges:");
        if self.cut.is_empty() {
            let _ = writeln!(out, "  none: every call stays in its process");
        }
        for e in &self.cut {
            let _ = writeln!(
                out,
                "  {:<32} {:>9.1} calls/s {:>11.0} B/s  costs {:.3} ms/s",
                format!("{} -> {}", e.caller, e.callee),
                e.calls_per_s,
                e.bytes_per_s,
                e.cost_ms_per_s
            );
        }
        if !self.constraints.is_empty() {
            let _ = writeln!(out, "\nconstraints:");
            for c in &self.constraints {
                let _ = writeln!(out, "  {}: {}", c.rule, c.how);
            }
        }
        if !self.latency.is_empty() {
            let _ = writeln!(
                out,
                "\nmean latency per listener (ms): profiled, then predicted for this plan, the \
                 monolith and split:"
            );
            for l in &self.latency {
                let _ = writeln!(
                    out,
                    "  {:<16} {:>8.3}  plan {:>8.3}  monolith {:>8.3}  split {:>8.3}  ({:.1} req/s)",
                    l.listener,
                    l.measured_ms,
                    l.predicted_ms.chosen,
                    l.predicted_ms.monolith,
                    l.predicted_ms.split,
                    l.requests_per_s
                );
            }
        }
        let _ = writeln!(
            out,
            "\n# the plan (a plan file for --plan)\n{}",
            self.plan.to_toml()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{Lcg, clustered, edge, planted, profile};

    const COSTS: Costs = Costs {
        per_call_us: 150.0,
        per_byte_ns: 2.0,
    };

    fn plan_for(
        components: &[String],
        c: &Constraints,
        profile: &Profile,
        cpu_budget: Option<f64>,
    ) -> Result<Choice, Vec<Problem>> {
        choose(&Request {
            components,
            constraints: c,
            profile,
            costs: COSTS,
            costs_from: "the tests",
            cpu_budget,
        })
    }

    /// A random app of `n` components and random constraints.
    fn random_case(rng: &mut Lcg, n: usize) -> (Vec<String>, Profile, Constraints, Option<f64>) {
        let components: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        let mut edges = Vec::new();
        for a in 0..n {
            for b in 0..n {
                if a != b && rng.below(3) == 0 {
                    let calls = rng.below(1000) as f64 / 10.0;
                    let bytes = (rng.below(100) * 100) as f64;
                    edges.push(edge(&components[a], &components[b], calls, bytes));
                }
            }
        }
        let busy: Vec<f64> = (0..n).map(|_| rng.below(80) as f64 / 100.0).collect();
        let pick = |rng: &mut Lcg| components[rng.below(n as u64) as usize].clone();
        let mut c = Constraints::default();
        for _ in 0..rng.below(2) {
            c.colocate.push(vec![pick(rng), pick(rng)]);
        }
        for _ in 0..rng.below(3) {
            c.separate.push(vec![pick(rng), pick(rng)]);
        }
        for _ in 0..rng.below(3) {
            let label = if rng.below(2) == 0 {
                "zone=a"
            } else {
                "zone=b"
            };
            c.pin.insert(pick(rng), label.into());
        }
        if rng.below(2) == 0 {
            c.max_components_per_group = Some(2 + rng.below(3) as usize);
        }
        if rng.below(3) == 0 {
            let min = 1 + rng.below(3) as u32;
            c.replicas.insert(
                pick(rng),
                Replicas {
                    min,
                    max: min + rng.below(3) as u32,
                },
            );
        }
        // Sets that name one component twice are nonsense, not a case.
        c.colocate.retain(|s| s[0] != s[1]);
        c.separate.retain(|s| s[0] != s[1]);
        let budget = (rng.below(2) == 0).then(|| 0.8 + rng.below(100) as f64 / 100.0);
        (
            components.clone(),
            profile(&components, edges, &busy),
            c,
            budget,
        )
    }

    /// Every partition of `n` items, as each item's group number.
    fn partitions(n: usize) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        let mut current = vec![0; n];
        fn grow(i: usize, groups: usize, current: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
            if i == current.len() {
                out.push(current.clone());
                return;
            }
            for g in 0..=groups {
                current[i] = g;
                grow(i + 1, groups.max(g + 1), current, out);
            }
        }
        grow(0, 0, &mut current, &mut out);
        out
    }

    /// The cheapest feasible plan by trying every partition: (cost, groups).
    fn brute_force(
        components: &[String],
        profile: &Profile,
        c: &Constraints,
        budget: Option<f64>,
    ) -> Option<(f64, usize)> {
        // Which components colocate joins, so a group that is one class may
        // exceed the budget.
        let class = |x: &str, y: &str| {
            let mut joined = BTreeSet::from([x.to_string()]);
            loop {
                let before = joined.len();
                for set in &c.colocate {
                    if set.iter().any(|m| joined.contains(m)) {
                        joined.extend(set.iter().cloned());
                    }
                }
                if joined.len() == before {
                    return joined.contains(y);
                }
            }
        };
        let mut best: Option<(f64, usize)> = None;
        for assignment in partitions(components.len()) {
            let count = assignment.iter().max().map_or(0, |m| m + 1);
            let mut plan = Plan {
                groups: BTreeMap::new(),
            };
            let mut feasible = true;
            for g in 0..count {
                let members: Vec<String> = components
                    .iter()
                    .zip(&assignment)
                    .filter(|(_, a)| **a == g)
                    .map(|(c, _)| c.clone())
                    .collect();
                let Some(replicas) = c.replicas_of(&members) else {
                    feasible = false;
                    break;
                };
                let busy: f64 = members
                    .iter()
                    .map(|m| profile.components[m].busy_cores)
                    .sum();
                let one_class = members.iter().all(|m| class(&members[0], m));
                if budget.is_some_and(|b| busy > b + 1e-12) && !one_class {
                    feasible = false;
                }
                let replicas = Replicas {
                    min: replicas.min,
                    max: replicas.max.min(crate::MAX_REPLICAS),
                };
                plan.groups.insert(
                    format!("g{g}"),
                    Group {
                        components: members,
                        replicas,
                        resources: Resources::default(),
                        fuse: false,
                    },
                );
            }
            if !feasible || !c.violations(&plan).is_empty() {
                continue;
            }
            let cost = cut_cost_ms(profile, &plan, COSTS);
            let better = best
                .is_none_or(|(b, groups)| cost < b - 1e-9 || (cost < b + 1e-9 && count < groups));
            if better {
                best = Some((cost, count));
            }
        }
        best
    }

    #[test]
    fn the_chosen_plan_is_the_brute_force_optimum_on_small_apps() {
        let mut rng = Lcg(7);
        let mut compared = 0;
        let mut refused = 0;
        for case in 0..300 {
            let n = 2 + case % 7;
            let (components, profile, c, budget) = random_case(&mut rng, n);
            let request = Request {
                components: &components,
                constraints: &c,
                profile: &profile,
                costs: COSTS,
                costs_from: "the tests",
                cpu_budget: budget,
            };
            let expected = brute_force(&components, &profile, &c, budget);
            match choose(&request) {
                Ok(choice) => {
                    assert!(choice.search.exact);
                    assert_eq!(c.violations(&choice.plan), vec![], "case {case}");
                    assert!(choice.plan.check(&components).is_ok(), "case {case}");
                    let (cost, groups) = expected.unwrap_or_else(|| {
                        panic!("case {case}: no feasible plan, but one was chosen: {choice:?}")
                    });
                    assert!(
                        (choice.cost_ms_per_s.chosen - cost).abs() < 1e-6,
                        "case {case}: chose {} against {cost}: {c:?} {budget:?}",
                        choice.cost_ms_per_s.chosen
                    );
                    assert_eq!(choice.plan.groups.len(), groups, "case {case}");
                    compared += 1;
                }
                Err(problems) => {
                    assert!(!problems.is_empty());
                    assert_eq!(expected, None, "case {case}: refused {problems:?}");
                    refused += 1;
                }
            }
        }
        // The cases cover both outcomes.
        assert!(
            compared > 200 && refused > 0,
            "{compared} compared, {refused} refused"
        );
    }

    #[test]
    fn a_hundred_components_get_a_plan_near_the_planted_one() {
        let (components, profile, c) = clustered(11, 10, 10);
        let request = Request {
            components: &components,
            constraints: &c,
            profile: &profile,
            costs: COSTS,
            costs_from: "the tests",
            cpu_budget: None,
        };
        let choice = choose(&request).expect("feasible");
        assert!(!choice.search.exact);
        assert_eq!(c.violations(&choice.plan), vec![]);
        assert!(choice.plan.check(&components).is_ok());
        // The planted plan (one group per cluster) cuts only the light
        // calls across clusters; the heuristic does as well or better.
        let planted = planted(&components, 10);
        assert_eq!(c.violations(&planted), vec![]);
        let planted = cut_cost_ms(&profile, &planted, COSTS);
        assert!(
            choice.cost_ms_per_s.chosen <= planted * 1.05,
            "{} against the planted {planted}",
            choice.cost_ms_per_s.chosen
        );
    }

    /// The boutique's shape: the frontend calls most others; checkout calls
    /// payment once per order.
    fn shop() -> (Vec<String>, Profile) {
        let names = ["frontend", "catalog", "cart", "checkout", "payment"];
        let components: Vec<String> = names.iter().map(|c| c.to_string()).collect();
        let edges = vec![
            edge("frontend", "catalog", 400.0, 400_000.0),
            edge("frontend", "cart", 200.0, 20_000.0),
            edge("frontend", "checkout", 10.0, 5_000.0),
            edge("checkout", "cart", 10.0, 1_000.0),
            edge("checkout", "payment", 10.0, 1_000.0),
        ];
        let profile = profile(&components, edges, &[0.3, 0.2, 0.1, 0.05, 0.01]);
        (components, profile)
    }

    #[test]
    fn payment_apart_from_the_frontend_cuts_only_the_payment_call_and_says_so() {
        let (components, profile) = shop();
        let c: Constraints = toml::from_str("separate = [[\"payment\", \"frontend\"]]").unwrap();
        let choice = plan_for(&components, &c, &profile, None).unwrap();
        let groups: Vec<(&str, &Vec<String>)> = choice
            .plan
            .groups
            .iter()
            .map(|(n, g)| (n.as_str(), &g.components))
            .collect();
        assert_eq!(
            groups,
            [
                (
                    "frontend",
                    &vec![
                        "frontend".to_string(),
                        "catalog".into(),
                        "cart".into(),
                        "checkout".into()
                    ]
                ),
                ("payment", &vec!["payment".to_string()]),
            ]
        );
        assert_eq!(choice.cut_pairs(), [("checkout", "payment")]);
        // 10 calls/s of 150 µs and 100 bytes at 2 ns: 1.502 ms per second.
        assert!((choice.cost_ms_per_s.chosen - 1.502).abs() < 1e-9);
        assert_eq!(choice.cost_ms_per_s.monolith, 0.0);
        assert_eq!(
            choice.constraints,
            [Honoured {
                rule: "placement.separate[0]".into(),
                how: "payment in 'payment', frontend in 'frontend'".into()
            }]
        );
        // Per request (100/s): 0.1 payment call cut, of 150.2 µs each;
        // split cuts all 6.3 calls of a request.
        let web = &choice.latency[0];
        assert!((web.predicted_ms.chosen - 1.01502).abs() < 1e-9, "{web:?}");
        assert_eq!(web.predicted_ms.monolith, 1.0);
        assert!(web.predicted_ms.split > 1.9, "{web:?}");
        let text = choice.render("shop");
        assert!(text.contains("checkout -> payment"), "{text}");
    }

    #[test]
    fn a_hot_component_goes_apart_under_a_cpu_budget_with_replicas_for_its_load() {
        let (components, mut profile) = shop();
        profile.components.get_mut("catalog").unwrap().busy_cores = 2.5;
        let c = Constraints::default();
        let choice = plan_for(&components, &c, &profile, Some(1.0)).unwrap();
        let catalog = choice.plan.group_of("catalog").unwrap().1;
        assert_eq!(catalog.components, ["catalog"]);
        assert_eq!(catalog.replicas, Replicas::fixed(3));
        assert_eq!(choice.plan.groups.len(), 2);
    }

    #[test]
    fn without_a_profile_the_static_graph_counts_each_wire_once() {
        let components: Vec<String> = ["web", "api", "db"].iter().map(|c| c.to_string()).collect();
        let profile = Profile::static_graph(
            "app",
            ["web", "api", "db"],
            [("web", "api"), ("api", "db")],
            [("http", "web")],
        );
        let c: Constraints = toml::from_str("separate = [[\"web\", \"db\"]]").unwrap();
        let choice = plan_for(&components, &c, &profile, None).unwrap();
        assert!(!choice.measured);
        assert_eq!(choice.cut.len(), 1);
        assert!(choice.latency.is_empty());
        assert!(choice.render("app").contains("no profile"));
    }

    #[test]
    fn impossible_constraints_are_refused_naming_them() {
        let (components, profile) = shop();
        let c: Constraints = toml::from_str(
            "colocate = [[\"payment\", \"frontend\"]]\nseparate = [[\"payment\", \"frontend\"]]",
        )
        .unwrap();
        let problems = plan_for(&components, &c, &profile, None).unwrap_err();
        assert_eq!(
            problems[0].rules,
            [crate::Rule::Colocate(0), crate::Rule::Separate(0)]
        );
    }
}
