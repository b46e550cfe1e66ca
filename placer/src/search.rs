//! The search for the cheapest partition of an app's components into
//! processes, under its constraints.
//!
//! Components that must share a process are first joined into *units*. The
//! weight between two units is what cutting them apart costs: the RPC time
//! per second that their calls would spend crossing processes. A partition
//! is *feasible* when no group holds two separated units, units pinned to
//! different labels, more components than allowed, units whose replica
//! ranges do not meet, or more busy cores than the budget (a unit alone
//! may exceed it: replicas scale it). The cheapest feasible partition wins,
//! fewer groups breaking ties.
//!
//! Up to [`EXACT_UNITS`] units the search is exact: a branch and bound over
//! every partition, started from the heuristic's answer as its bound. Above
//! it, the heuristic alone: join the pair of groups with the heaviest calls
//! between them while that is feasible, then join what is left where it
//! fits, then move single units while that lowers the cost.

use crate::Constraints;
use std::collections::BTreeMap;

/// The most units the search explores exhaustively.
pub const EXACT_UNITS: usize = 12;

/// One thing to place: components that must share a process.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    /// Indices of its components.
    pub(crate) members: Vec<usize>,
    /// Its busy cores.
    pub(crate) busy: f64,
    /// The node label it is pinned to.
    pub(crate) label: Option<String>,
}

/// The problem as the search sees it.
pub(crate) struct Graph {
    pub(crate) units: Vec<Unit>,
    /// `weight[a][b]`: the cost per second of cutting unit `a` from `b`.
    pub(crate) weight: Vec<Vec<f64>>,
    /// `apart[a][b]`: units that must not share a process.
    pub(crate) apart: Vec<Vec<bool>>,
    /// The replica range of each unit's components, as (min, max).
    pub(crate) replicas: Vec<(u32, u32)>,
    pub(crate) max_components: usize,
    pub(crate) budget: f64,
}

/// What the search found.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// Groups of unit indices.
    pub(crate) groups: Vec<Vec<usize>>,
    /// The cost of the cut.
    pub(crate) cost: f64,
    /// Whether every partition was considered (or ruled out by a bound).
    pub(crate) exact: bool,
    /// Partial partitions visited.
    pub(crate) visited: u64,
}

/// Costs closer than this (in ns of RPC per second) are equal.
const EPSILON: f64 = 1e-6;

impl Graph {
    /// Joins `components` into units by `constraints`' colocations, with
    /// the weight between them from `edge_cost(a, b)` (component indices).
    pub(crate) fn new(
        components: &[String],
        constraints: &Constraints,
        busy: impl Fn(usize) -> f64,
        edges: &BTreeMap<(usize, usize), f64>,
        budget: Option<f64>,
    ) -> Graph {
        let index: BTreeMap<&str, usize> = components
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        // Union-find over colocations.
        let mut parent: Vec<usize> = (0..components.len()).collect();
        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        for set in &constraints.colocate {
            let members: Vec<usize> = set
                .iter()
                .filter_map(|c| index.get(c.as_str()))
                .copied()
                .collect();
            for pair in members.windows(2) {
                let (a, b) = (root(&mut parent, pair[0]), root(&mut parent, pair[1]));
                parent[a.max(b)] = a.min(b);
            }
        }
        let mut unit_of = vec![usize::MAX; components.len()];
        let mut units: Vec<Unit> = Vec::new();
        for i in 0..components.len() {
            let r = root(&mut parent, i);
            if unit_of[r] == usize::MAX {
                unit_of[r] = units.len();
                units.push(Unit {
                    members: Vec::new(),
                    busy: 0.0,
                    label: None,
                });
            }
            let u = unit_of[r];
            unit_of[i] = u;
            units[u].members.push(i);
            units[u].busy += busy(i);
            if let Some(label) = constraints.pin.get(&components[i]) {
                units[u].label = Some(label.clone());
            }
        }
        let n = units.len();
        let mut weight = vec![vec![0.0; n]; n];
        for (&(a, b), &cost) in edges {
            let (ua, ub) = (unit_of[a], unit_of[b]);
            if ua != ub {
                weight[ua][ub] += cost;
                weight[ub][ua] += cost;
            }
        }
        let mut apart = vec![vec![false; n]; n];
        for set in &constraints.separate {
            let members: Vec<usize> = set
                .iter()
                .filter_map(|c| index.get(c.as_str()))
                .map(|i| unit_of[*i])
                .collect();
            for a in &members {
                for b in &members {
                    if a != b {
                        apart[*a][*b] = true;
                    }
                }
            }
        }
        let replicas = units
            .iter()
            .map(|u| {
                let names = u.members.iter().map(|i| components[*i].as_str());
                constraints
                    .replicas_of(names)
                    .map_or((1, 0), |r| (r.min, r.max))
            })
            .collect();
        Graph {
            units,
            weight,
            apart,
            replicas,
            max_components: constraints.max_components_per_group.unwrap_or(usize::MAX),
            budget: budget.unwrap_or(f64::INFINITY),
        }
    }

    /// Whether the units of `a` and `b` may share a process.
    fn fits(&self, a: &[usize], b: &[usize]) -> bool {
        let size = |g: &[usize]| {
            g.iter()
                .map(|u| self.units[*u].members.len())
                .sum::<usize>()
        };
        let busy = |g: &[usize]| g.iter().map(|u| self.units[*u].busy).sum::<f64>();
        if size(a) + size(b) > self.max_components || busy(a) + busy(b) > self.budget + 1e-12 {
            return false;
        }
        let label = |g: &[usize]| g.iter().find_map(|u| self.units[*u].label.as_deref());
        if let (Some(x), Some(y)) = (label(a), label(b))
            && x != y
        {
            return false;
        }
        let range = |g: &[usize]| {
            g.iter().fold((1u32, u32::MAX), |(lo, hi), u| {
                let (min, max) = self.replicas[*u];
                (lo.max(min), hi.min(max))
            })
        };
        let ((lo_a, hi_a), (lo_b, hi_b)) = (range(a), range(b));
        if lo_a.max(lo_b) > hi_a.min(hi_b) {
            return false;
        }
        !a.iter().any(|x| b.iter().any(|y| self.apart[*x][*y]))
    }

    /// The cost of cutting `groups` apart.
    pub(crate) fn cost(&self, groups: &[Vec<usize>]) -> f64 {
        let mut group_of = vec![0; self.units.len()];
        for (g, units) in groups.iter().enumerate() {
            for u in units {
                group_of[*u] = g;
            }
        }
        let mut cost = 0.0;
        for a in 0..self.units.len() {
            for b in a + 1..self.units.len() {
                if group_of[a] != group_of[b] {
                    cost += self.weight[a][b];
                }
            }
        }
        cost
    }

    /// The cheapest feasible partition: exact up to [`EXACT_UNITS`] units.
    pub(crate) fn search(&self) -> Found {
        let mut best = self.heuristic();
        if self.units.len() <= EXACT_UNITS {
            let mut state = Exact {
                graph: self,
                order: self.order(),
                groups: Vec::new(),
                best_cost: best.cost,
                best_groups: best.groups.len(),
                best: None,
                visited: 0,
            };
            state.descend(0, 0.0);
            if let Some(groups) = state.best.take() {
                best.cost = self.cost(&groups);
                best.groups = groups;
            }
            best.exact = true;
            best.visited = state.visited;
        }
        for g in &mut best.groups {
            g.sort_unstable();
        }
        best.groups.sort();
        best
    }

    /// Units, heaviest first: deciding them early tightens the bound.
    fn order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.units.len()).collect();
        let total = |u: usize| self.weight[u].iter().sum::<f64>();
        order.sort_by(|a, b| total(*b).total_cmp(&total(*a)).then(a.cmp(b)));
        order
    }

    /// Greedy joins, then single moves while they help.
    pub(crate) fn heuristic(&self) -> Found {
        let mut groups: Vec<Vec<usize>> = (0..self.units.len()).map(|u| vec![u]).collect();
        let between = |groups: &[Vec<usize>], a: usize, b: usize| -> f64 {
            groups[a]
                .iter()
                .flat_map(|x| groups[b].iter().map(move |y| (x, y)))
                .map(|(x, y)| self.weight[*x][*y])
                .sum()
        };
        // Join the heaviest feasible pair, while any pair has calls between them.
        loop {
            let mut pick: Option<(f64, usize, usize)> = None;
            for a in 0..groups.len() {
                for b in a + 1..groups.len() {
                    let w = between(&groups, a, b);
                    if w > 0.0
                        && pick.is_none_or(|(best, _, _)| w > best)
                        && self.fits(&groups[a], &groups[b])
                    {
                        pick = Some((w, a, b));
                    }
                }
            }
            let Some((_, a, b)) = pick else { break };
            let moved = groups.remove(b);
            groups[a].extend(moved);
        }
        // Join what is left wherever it fits: fewer processes, same cost.
        let mut a = 0;
        while a < groups.len() {
            let mut b = a + 1;
            while b < groups.len() {
                if self.fits(&groups[a], &groups[b]) {
                    let moved = groups.remove(b);
                    groups[a].extend(moved);
                } else {
                    b += 1;
                }
            }
            a += 1;
        }
        // Move single units while that lowers the cost, or keeps it and
        // empties a group.
        let mut cost = self.cost(&groups);
        for _ in 0..4 * self.units.len().max(1) {
            let mut improved = false;
            for u in 0..self.units.len() {
                let from = groups.iter().position(|g| g.contains(&u)).expect("placed");
                let rest: Vec<usize> = groups[from].iter().copied().filter(|x| *x != u).collect();
                let mut best: Option<(f64, usize)> = None;
                for to in 0..=groups.len() {
                    if to == from || (to == groups.len() && rest.is_empty()) {
                        continue;
                    }
                    if to < groups.len() && !self.fits(&groups[to], &[u]) {
                        continue;
                    }
                    let mut moved = groups.clone();
                    moved[from] = rest.clone();
                    if to == moved.len() {
                        moved.push(vec![u]);
                    } else {
                        moved[to].push(u);
                    }
                    moved.retain(|g| !g.is_empty());
                    let c = self.cost(&moved);
                    let better =
                        c < cost - EPSILON || (c <= cost + EPSILON && moved.len() < groups.len());
                    if better && best.is_none_or(|(b, _)| c < b) {
                        best = Some((c, to));
                    }
                }
                if let Some((c, to)) = best {
                    groups[from] = rest;
                    if to == groups.len() {
                        groups.push(vec![u]);
                    } else {
                        groups[to].push(u);
                    }
                    groups.retain(|g| !g.is_empty());
                    cost = c;
                    improved = true;
                }
            }
            if !improved {
                break;
            }
        }
        Found {
            cost: self.cost(&groups),
            groups,
            exact: false,
            visited: 0,
        }
    }
}

/// The branch and bound's state.
struct Exact<'g> {
    graph: &'g Graph,
    order: Vec<usize>,
    groups: Vec<Vec<usize>>,
    best_cost: f64,
    best_groups: usize,
    best: Option<Vec<Vec<usize>>>,
    visited: u64,
}

impl Exact<'_> {
    /// Places the `depth`-th unit of the order, the cut so far costing `cost`.
    fn descend(&mut self, depth: usize, cost: f64) {
        self.visited += 1;
        // The cost and the number of groups only grow: stop where neither
        // can beat the best.
        let worse = cost > self.best_cost + EPSILON
            || (cost > self.best_cost - EPSILON && self.groups.len() >= self.best_groups);
        if worse {
            return;
        }
        let Some(&unit) = self.order.get(depth) else {
            // Not worse, and complete: better.
            self.best_cost = cost;
            self.best_groups = self.groups.len();
            self.best = Some(self.groups.clone());
            return;
        };
        let placed: f64 = self.order[..depth]
            .iter()
            .map(|u| self.graph.weight[unit][*u])
            .sum();
        for g in 0..self.groups.len() {
            if !self.graph.fits(&self.groups[g], &[unit]) {
                continue;
            }
            let inside: f64 = self.groups[g]
                .iter()
                .map(|u| self.graph.weight[unit][*u])
                .sum();
            self.groups[g].push(unit);
            self.descend(depth + 1, cost + placed - inside);
            self.groups[g].pop();
        }
        self.groups.push(vec![unit]);
        self.descend(depth + 1, cost + placed);
        self.groups.pop();
    }
}
