//! weft's placer: the plan that says which components share a process.
//!
//! A [`Plan`] is a set of named [`Group`]s. Components in one group are
//! colocated, so calls between them are in-process; a group can run as
//! several replicas. This crate is pure logic: no I/O, no async.
//!
//! A missing plan means [`Plan::monolith`]: every component in one group.
//! [`Plan::split`] puts each component in a group of its own. A hand-written
//! plan is TOML, read by [`Plan::from_str`]:
//!
//! ```toml
//! [groups.front]
//! components = ["frontend"]
//! replicas = 2
//! [groups.back]
//! components = ["greeter", "counter"]
//! replicas = "2..6"   # a range: Kubernetes scales it on CPU
//! resources = { cpu = "250m" }
//! fuse = true          # its components composed into one when they load
//! ```
//!
//! [`Plan::check`] is what every plan, built-in or hand-written, must pass.
//! [`Constraints`] (`colocate`, `separate`, `pin`, a most-components-per-
//! group, replica ranges) are what an app asks of every plan on top of that.
//!
//! [`choose`] is `weft plan`: the plan that spends the least time on calls
//! between processes, given a [`Profile`] of what the app did (or its
//! static call graph), what one such call costs ([`Costs`]), and the
//! constraints; [`Choice`] explains it.
//!
//! ```
//! use weft_placer::Plan;
//! let plan = Plan::monolith(["frontend", "greeter"]);
//! assert!(plan.check(["frontend", "greeter"]).is_ok());
//! assert_eq!(plan.group_of("greeter").map(|g| g.0), Some("main"));
//! ```

mod choose;
mod constraints;
pub mod profile;
mod search;
pub mod synthetic;

pub use choose::{
    Choice, Compared, Costs, CutEdge, GroupReport, Honoured, ListenerLatency, Request,
    SearchReport, choose, cut_cost_ms, predict,
};
pub use constraints::{Constraints, Problem, Rule};
pub use profile::Profile;
pub use search::EXACT_UNITS;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The most replicas a group may have: far more than one machine runs,
/// and well within what Kubernetes' `replicas` (an `int32`) holds.
pub const MAX_REPLICAS: u32 = 10_000;

/// The name of the only group of a monolith.
pub const MONOLITH_GROUP: &str = "main";

/// Which components run together, and how many copies of each group run.
/// It reads and writes as a plan file (and as a manifest's `[deploy]` table).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The groups, by name.
    pub groups: BTreeMap<String, Group>,
}

/// Components colocated in one process.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// The components, by name.
    pub components: Vec<String>,
    /// How many processes run this group: a count, or a range that an
    /// autoscaler moves within (on one machine, its least).
    #[serde(default)]
    pub replicas: Replicas,
    /// What one replica asks of its machine; `weft kube` writes it into
    /// the group's pods.
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    /// Whether its components are composed into one component when they
    /// load (a fused group): a call between them is then a direct call.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fuse: bool,
}

/// How many replicas of a group run: a fixed count (`replicas = 3`), or a
/// range (`replicas = "2..6"`) that Kubernetes' autoscaler moves within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replicas {
    /// The fewest.
    pub min: u32,
    /// The most; `min` for a fixed count.
    pub max: u32,
}

impl Replicas {
    /// Exactly `n`.
    pub const fn fixed(n: u32) -> Replicas {
        Replicas { min: n, max: n }
    }

    /// How many run where nothing scales them (`weft deploy`, and a
    /// Deployment's first count): the least.
    pub fn count(self) -> u32 {
        self.min
    }

    /// Whether an autoscaler moves it.
    pub fn is_range(self) -> bool {
        self.max > self.min
    }
}

impl Default for Replicas {
    fn default() -> Replicas {
        Replicas::fixed(1)
    }
}

impl fmt::Display for Replicas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_range() {
            write!(f, "\"{}..{}\"", self.min, self.max)
        } else {
            write!(f, "{}", self.min)
        }
    }
}

impl Serialize for Replicas {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // A fixed count stays a number, so plans written before ranges
        // keep their text, and their version.
        if self.is_range() {
            serializer.serialize_str(&format!("{}..{}", self.min, self.max))
        } else {
            serializer.serialize_u32(self.min)
        }
    }
}

impl<'de> Deserialize<'de> for Replicas {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Replicas, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Replicas;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count such as 3, or a range such as \"2..6\"")
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Replicas, E> {
                u32::try_from(n)
                    .map(Replicas::fixed)
                    .map_err(|_| E::custom(format!("replicas = {n} is not a count from 1 up")))
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Replicas, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Replicas, E> {
                let parsed = text.split_once("..").and_then(|(min, max)| {
                    Some(Replicas {
                        min: min.trim().parse().ok()?,
                        max: max.trim().parse().ok()?,
                    })
                });
                parsed.ok_or_else(|| {
                    E::custom(format!(
                        "replicas = \"{text}\" is neither a count nor a range such as \"2..6\""
                    ))
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// What one replica of a group asks of its machine, as Kubernetes
/// quantities: `cpu = "500m"`, `memory = "256Mi"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU, in cores (`"2"`, `"0.5"`) or millicores (`"500m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory, in bytes with an optional suffix (`"256Mi"`, `"1Gi"`, `"512M"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

impl Resources {
    /// Whether it asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.cpu.is_none() && self.memory.is_none()
    }
}

/// Whether `text` is a plain decimal number followed by one of `suffixes`
/// (or none), as Kubernetes writes quantities.
fn is_quantity(text: &str, suffixes: &[&str]) -> bool {
    let number = suffixes
        .iter()
        .find_map(|s| text.strip_suffix(s))
        .unwrap_or(text);
    let mut parts = number.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next();
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// Why a plan cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A component of the app is in no group.
    #[error("component '{0}' is in no group; add it to one group's components")]
    Unplaced(String),
    /// A component is in more than one group.
    #[error("component '{component}' is in groups '{first}' and '{second}'; keep it in one")]
    Duplicate {
        /// The component.
        component: String,
        /// One group that has it.
        first: String,
        /// Another group that has it.
        second: String,
    },
    /// A group names a component the app does not have.
    #[error("group '{group}' names component '{component}', which the app does not have")]
    Unknown {
        /// The group.
        group: String,
        /// The unknown name.
        component: String,
    },
    /// A group has no replicas.
    #[error("group '{0}' has replicas = 0; it needs at least 1")]
    NoReplicas(String),
    /// A group has more replicas than weft runs.
    #[error("group '{0}' has replicas = {1}; at most {MAX_REPLICAS} replicas of a group are run")]
    TooManyReplicas(String, u32),
    /// A range of replicas that goes down.
    #[error(
        "group '{0}' has replicas = {1}, a range that goes down; write the fewest first, such \
         as \"2..6\""
    )]
    BackwardRange(String, Replicas),
    /// A resource is not a quantity.
    #[error(
        "group '{group}': resources.{resource} = \"{value}\" is not a quantity; write it as \
         Kubernetes does, such as {example}"
    )]
    Resource {
        /// The group.
        group: String,
        /// `cpu` or `memory`.
        resource: &'static str,
        /// What it says.
        value: String,
        /// What it could say.
        example: &'static str,
    },
}

/// Why a plan file cannot be used: the file, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFileError {
    /// The plan file (or the manifest that holds the plan).
    pub file: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for PlanFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}

impl std::error::Error for PlanFileError {}

impl Plan {
    /// Parses a plan file's text and checks it against the app's
    /// components; `origin` names the file in errors.
    pub fn from_str<S: AsRef<str>>(
        text: &str,
        origin: &str,
        components: impl IntoIterator<Item = S>,
    ) -> Result<Plan, PlanFileError> {
        let plan: Plan = toml::from_str(text).map_err(|e| PlanFileError {
            file: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        plan.checked(origin, components)
    }

    /// The plan, if it passes [`Plan::check`]; otherwise the error, naming
    /// `origin` (the plan file, or the manifest whose `[deploy]` table it is).
    pub fn checked<S: AsRef<str>>(
        self,
        origin: &str,
        components: impl IntoIterator<Item = S>,
    ) -> Result<Plan, PlanFileError> {
        self.check(components).map_err(|e| PlanFileError {
            file: origin.to_string(),
            message: e.to_string(),
        })?;
        Ok(self)
    }

    /// The plan as plan-file TOML: groups in name order, so the same plan
    /// always gives the same text (it takes part in the version hash).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a plan is plain strings and numbers")
    }

    /// How many processes the plan runs in all.
    pub fn processes(&self) -> u32 {
        self.groups.values().map(|g| g.replicas.count()).sum()
    }

    /// Each component in a group of its own, named after it, with one replica.
    pub fn split<S: Into<String>>(components: impl IntoIterator<Item = S>) -> Plan {
        let groups = components
            .into_iter()
            .map(|c| {
                let c = c.into();
                let group = Group {
                    components: vec![c.clone()],
                    replicas: Replicas::fixed(1),
                    resources: Resources::default(),
                    fuse: false,
                };
                (c, group)
            })
            .collect();
        Plan { groups }
    }

    /// The built-in plan called `name` (`monolith` or `split`), if there is one.
    pub fn builtin<S: Into<String>>(
        name: &str,
        components: impl IntoIterator<Item = S>,
    ) -> Option<Plan> {
        match name {
            "monolith" => Some(Plan::monolith(components)),
            "split" => Some(Plan::split(components)),
            _ => None,
        }
    }

    /// Every component in one group, [`MONOLITH_GROUP`], with one replica.
    pub fn monolith<S: Into<String>>(components: impl IntoIterator<Item = S>) -> Plan {
        let group = Group {
            components: components.into_iter().map(Into::into).collect(),
            replicas: Replicas::fixed(1),
            resources: Resources::default(),
            fuse: false,
        };
        Plan {
            groups: BTreeMap::from([(MONOLITH_GROUP.to_string(), group)]),
        }
    }

    /// Keeps the scale that `from` gave the components: each group runs at
    /// least as many replicas as the most that any of its components had
    /// there, and asks for the resources of the first of them that asked
    /// for any; a group of two or more components that were all in one
    /// fused group stays fused. A plan that `weft plan` chooses starts from one replica,
    /// unfused; a move to it should not undo what an operator chose.
    pub fn keep_scale_of(&mut self, from: &Plan) {
        for group in self.groups.values_mut() {
            // A group whose components were all in one fused group stays
            // fused: a part of a fusion that loaded loads too.
            let olds: Vec<Option<&str>> = group
                .components
                .iter()
                .map(|c| from.group_of(c).map(|(name, _)| name))
                .collect();
            group.fuse = group.components.len() > 1
                && match olds.first() {
                    Some(Some(first)) => {
                        olds.iter().all(|o| o == &Some(*first)) && from.groups[*first].fuse
                    }
                    _ => false,
                };
            for c in &group.components {
                let Some((_, old)) = from.group_of(c) else {
                    continue;
                };
                group.replicas = Replicas {
                    min: group.replicas.min.max(old.replicas.min),
                    max: group.replicas.max.max(old.replicas.max),
                };
                if group.resources.is_empty() {
                    group.resources = old.resources.clone();
                }
            }
        }
    }

    /// The group that holds `component`, with its name.
    pub fn group_of(&self, component: &str) -> Option<(&str, &Group)> {
        self.groups
            .iter()
            .find(|(_, g)| g.components.iter().any(|c| c == component))
            .map(|(name, g)| (name.as_str(), g))
    }

    /// Checks the plan against the app's components: each is in exactly one
    /// group, no group names an unknown one, and every group has a replica.
    pub fn check<S: AsRef<str>>(
        &self,
        components: impl IntoIterator<Item = S>,
    ) -> Result<(), PlanError> {
        let known: Vec<String> = components
            .into_iter()
            .map(|c| c.as_ref().to_string())
            .collect();
        let mut placed: BTreeMap<&str, &str> = BTreeMap::new();
        for (group, g) in &self.groups {
            if g.replicas.min == 0 {
                return Err(PlanError::NoReplicas(group.clone()));
            }
            if g.replicas.max < g.replicas.min {
                return Err(PlanError::BackwardRange(group.clone(), g.replicas));
            }
            if g.replicas.max > MAX_REPLICAS {
                return Err(PlanError::TooManyReplicas(group.clone(), g.replicas.max));
            }
            let quantities = [
                ("cpu", &g.resources.cpu, &["m"][..], "\"500m\" or \"2\""),
                (
                    "memory",
                    &g.resources.memory,
                    &["Ki", "Mi", "Gi", "Ti", "k", "M", "G", "T"][..],
                    "\"256Mi\" or \"1Gi\"",
                ),
            ];
            for (resource, value, suffixes, example) in quantities {
                if let Some(value) = value.as_ref().filter(|v| !is_quantity(v, suffixes)) {
                    return Err(PlanError::Resource {
                        group: group.clone(),
                        resource,
                        value: value.clone(),
                        example,
                    });
                }
            }
            for c in &g.components {
                if !known.contains(c) {
                    return Err(PlanError::Unknown {
                        group: group.clone(),
                        component: c.clone(),
                    });
                }
                if let Some(first) = placed.insert(c, group) {
                    return Err(PlanError::Duplicate {
                        component: c.clone(),
                        first: first.to_string(),
                        second: group.clone(),
                    });
                }
            }
        }
        match known.iter().find(|c| !placed.contains_key(c.as_str())) {
            Some(c) => Err(PlanError::Unplaced(c.clone())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(groups: &[(&str, &[&str], u32)]) -> Plan {
        Plan {
            groups: groups
                .iter()
                .map(|(name, cs, replicas)| {
                    let group = Group {
                        components: cs.iter().map(|c| c.to_string()).collect(),
                        replicas: Replicas::fixed(*replicas),
                        resources: Resources::default(),
                        fuse: false,
                    };
                    (name.to_string(), group)
                })
                .collect(),
        }
    }

    #[test]
    fn plan_files_parse_and_are_checked() {
        let text = "[groups.front]\ncomponents = [\"frontend\"]\nreplicas = 2\n\
                    [groups.back]\ncomponents = [\"greeter\", \"counter\"]\n";
        let app = ["frontend", "greeter", "counter"];
        let p = Plan::from_str(text, "plan.toml", app).unwrap();
        assert_eq!(p.groups["front"].replicas.count(), 2);
        assert_eq!(p.groups["back"].replicas, Replicas::fixed(1));
        assert_eq!(p.group_of("counter").map(|g| g.0), Some("back"));

        let err = Plan::from_str(text, "plan.toml", ["frontend", "greeter"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plan.toml: group 'back' names component 'counter', which the app does not have"
        );
        let err =
            Plan::from_str("[groups.a]\ncomponents = []\ncolour = 1\n", "p.toml", app).unwrap_err();
        assert!(err.to_string().starts_with("p.toml: "), "{err}");
        assert!(err.message.contains("unknown field `colour`"), "{err}");
        let huge = "[groups.front]\ncomponents = [\"frontend\"]\nreplicas = 4294967295\n";
        let err = Plan::from_str(huge, "plan.toml", ["frontend"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plan.toml: group 'front' has replicas = 4294967295; at most 10000 replicas of a \
             group are run"
        );
    }

    #[test]
    fn a_new_plan_keeps_the_scale_an_operator_gave_its_components() {
        let mut old = Plan::split(["web", "api", "db"]);
        old.groups.get_mut("api").unwrap().replicas = Replicas::fixed(3);
        old.groups.get_mut("db").unwrap().resources.cpu = Some("2".into());
        let mut new = Plan::monolith(["web", "api", "db"]);
        new.keep_scale_of(&old);
        let main = &new.groups[MONOLITH_GROUP];
        assert_eq!(main.replicas, Replicas::fixed(3));
        assert_eq!(main.resources.cpu.as_deref(), Some("2"));
    }

    #[test]
    fn a_new_plan_keeps_a_fusion_only_where_its_group_was_one() {
        let text = "[groups.back]\ncomponents = [\"api\", \"db\"]\nfuse = true\n\
                    [groups.front]\ncomponents = [\"web\"]\n";
        let old = Plan::from_str(text, "plan.toml", ["web", "api", "db"]).unwrap();
        let mut same = Plan::from_str(text, "plan.toml", ["web", "api", "db"]).unwrap();
        same.groups.values_mut().for_each(|g| g.fuse = false);
        same.keep_scale_of(&old);
        assert!(same.groups["back"].fuse && !same.groups["front"].fuse);
        // One component alone has nothing to fuse with.
        let mut part = Plan::split(["web", "api", "db"]);
        part.keep_scale_of(&old);
        assert!(part.groups.values().all(|g| !g.fuse));
        let mut across = Plan::monolith(["web", "api", "db"]);
        across.keep_scale_of(&old);
        assert!(!across.groups[MONOLITH_GROUP].fuse);
    }

    #[test]
    fn plans_round_trip_through_their_text() {
        let text = "[groups.front]\ncomponents = [\"frontend\"]\nreplicas = 2\n\
                    [groups.back]\ncomponents = [\"greeter\"]\n";
        let p = Plan::from_str(text, "plan.toml", ["frontend", "greeter"]).unwrap();
        assert_eq!(
            p.to_toml(),
            "[groups.back]\ncomponents = [\"greeter\"]\nreplicas = 1\n\n\
             [groups.front]\ncomponents = [\"frontend\"]\nreplicas = 2\n"
        );
        let again = Plan::from_str(&p.to_toml(), "again", ["frontend", "greeter"]).unwrap();
        assert_eq!(again, p);
        assert_eq!(p.processes(), 3);
    }

    #[test]
    fn replicas_may_be_a_range_that_an_autoscaler_moves_within() {
        let app = ["a"];
        let text = "[groups.x]\ncomponents = [\"a\"]\nreplicas = \"2..6\"\n";
        let p = Plan::from_str(text, "plan.toml", app).unwrap();
        let replicas = p.groups["x"].replicas;
        assert_eq!(replicas, Replicas { min: 2, max: 6 });
        assert!(replicas.is_range());
        assert_eq!(replicas.count(), 2, "one machine runs the least");
        assert_eq!(
            p.to_toml(),
            "[groups.x]\ncomponents = [\"a\"]\nreplicas = \"2..6\"\n"
        );
        assert_eq!(Plan::from_str(&p.to_toml(), "again", app).unwrap(), p);
        // A range of one count is that count, written as a number.
        let one = Plan::from_str(&text.replace("2..6", "3..3"), "p", app).unwrap();
        assert!(one.to_toml().contains("replicas = 3\n"));
        for (bad, says) in [
            ("\"6..2\"", "a range that goes down"),
            ("\"0..3\"", "needs at least 1"),
            ("\"2..20000\"", "at most 10000"),
            ("\"two\"", "neither a count nor a range"),
            ("-1", "not a count"),
        ] {
            let text = format!("[groups.x]\ncomponents = [\"a\"]\nreplicas = {bad}\n");
            let err = Plan::from_str(&text, "plan.toml", app)
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn resources_are_kubernetes_quantities() {
        let app = ["a"];
        let good = "[groups.x]\ncomponents = [\"a\"]\n[groups.x.resources]\ncpu = \"500m\"\nmemory = \"1.5Gi\"\n";
        let p = Plan::from_str(good, "plan.toml", app).unwrap();
        assert_eq!(p.groups["x"].resources.cpu.as_deref(), Some("500m"));
        assert!(p.to_toml().contains("memory = \"1.5Gi\""));
        for (bad, field) in [
            ("cpu = \"half\"", "cpu"),
            ("memory = \"256MB\"", "memory"),
            ("cpu = \"1.\"", "cpu"),
        ] {
            let text = format!("[groups.x]\ncomponents = [\"a\"]\n[groups.x.resources]\n{bad}\n");
            let err = Plan::from_str(&text, "plan.toml", app).unwrap_err();
            assert!(err.message.contains(&format!("resources.{field}")), "{err}");
        }
        assert!(!Plan::monolith(app).to_toml().contains("resources"));
    }

    #[test]
    fn builtin_plans() {
        let app = ["a", "b"];
        let split = Plan::builtin("split", app).unwrap();
        assert_eq!(split.groups.len(), 2);
        assert_eq!(split.check(app), Ok(()));
        assert_eq!(split.group_of("b").map(|g| g.0), Some("b"));
        assert_eq!(Plan::builtin("monolith", app), Some(Plan::monolith(app)));
        assert_eq!(Plan::builtin("sideways", app), None);
    }

    #[test]
    fn monolith_places_everything_once() {
        let p = Plan::monolith(["a", "b"]);
        assert_eq!(p.check(["a", "b"]), Ok(()));
        assert_eq!(p.groups[MONOLITH_GROUP].replicas.count(), 1);
    }

    #[test]
    fn each_component_in_exactly_one_known_group() {
        let app = ["a", "b"];
        assert_eq!(
            plan(&[("x", &["a"], 1)]).check(app),
            Err(PlanError::Unplaced("b".into()))
        );
        assert!(matches!(
            plan(&[("x", &["a", "b"], 1), ("y", &["b"], 1)]).check(app),
            Err(PlanError::Duplicate { component, .. }) if component == "b"
        ));
        assert!(matches!(
            plan(&[("x", &["a", "b", "c"], 1)]).check(app),
            Err(PlanError::Unknown { component, .. }) if component == "c"
        ));
        assert_eq!(
            plan(&[("x", &["a", "b"], 0)]).check(app),
            Err(PlanError::NoReplicas("x".into()))
        );
    }
}
