//! Synthetic apps for the placer's tests and weft's benchmark: profiles
//! built from given edges, and apps of clusters that call within
//! themselves a lot and across a little, with a known good plan.

use crate::profile::{ComponentLoad, Edge, ListenerLoad, Profile};
use crate::{Constraints, Group, MONOLITH_GROUP, Plan};

/// A small deterministic random generator (no dependency).
pub struct Lcg(pub u64);

impl Lcg {
    /// The next number, of 31 bits.
    pub fn draw(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.draw() % n
    }
}

/// A measured profile of `components` (the first serves listener `web`
/// at 100 requests per second, in 1 ms), with `edges` and each
/// component's `busy` cores, all in one process.
pub fn profile(components: &[String], edges: Vec<Edge>, busy: &[f64]) -> Profile {
    Profile {
        app: "random".into(),
        versions: vec!["v1".into()],
        measured: true,
        window_s: 10.0,
        groups: components
            .iter()
            .map(|c| (c.clone(), MONOLITH_GROUP.into()))
            .collect(),
        components: components
            .iter()
            .zip(busy)
            .map(|(c, b)| {
                let load = ComponentLoad {
                    busy_cores: *b,
                    busy_pct: 0.0,
                };
                (c.clone(), load)
            })
            .collect(),
        edges,
        listeners: vec![ListenerLoad {
            listener: "web".into(),
            component: components[0].clone(),
            requests_per_s: 100.0,
            mean_ms: 1.0,
            ..ListenerLoad::default()
        }],
    }
}

/// Calls from `caller` to `callee`, in one process.
pub fn edge(caller: &str, callee: &str, calls_per_s: f64, bytes_per_s: f64) -> Edge {
    Edge {
        caller: caller.into(),
        callee: callee.into(),
        calls_per_s,
        request_bytes_per_s: bytes_per_s,
        ..Edge::default()
    }
}

/// An app of `clusters` × `size` components that call within their
/// cluster a lot and across clusters a little, with a few constraints.
pub fn clustered(seed: u64, clusters: usize, size: usize) -> (Vec<String>, Profile, Constraints) {
    let mut rng = Lcg(seed);
    let n = clusters * size;
    let components: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    let mut edges = Vec::new();
    for a in 0..n {
        for _ in 0..3 {
            let near = (a / size) * size + rng.below(size as u64) as usize;
            if near != a {
                edges.push(edge(&components[a], &components[near], 100.0, 1000.0));
            }
        }
        let far = rng.below(n as u64) as usize;
        if far / size != a / size {
            edges.push(edge(&components[a], &components[far], 1.0, 10.0));
        }
    }
    let c = Constraints {
        max_components_per_group: Some(size + 2),
        separate: vec![vec![components[0].clone(), components[size].clone()]],
        colocate: vec![vec![components[1].clone(), components[2].clone()]],
        ..Constraints::default()
    };
    let busy = vec![0.01; n];
    (components.clone(), profile(&components, edges, &busy), c)
}

/// The plan planted in an app of [`clustered`]: one group per cluster of
/// `size` components.
pub fn planted(components: &[String], size: usize) -> Plan {
    Plan {
        groups: components
            .chunks(size)
            .map(|chunk| {
                let group = Group {
                    components: chunk.to_vec(),
                    replicas: Default::default(),
                    resources: Default::default(),
                    fuse: false,
                };
                (chunk[0].clone(), group)
            })
            .collect(),
    }
}
