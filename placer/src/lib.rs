//! weft's placer: the plan that says which components share a process.
//!
//! A [`Plan`] is a set of named [`Group`]s. Components in one group are
//! colocated, so calls between them are in-process; a group can run as
//! several replicas. This crate is pure logic: no I/O, no async.
//!
//! A missing plan means [`Plan::monolith`]: every component in one group.
//! [`Plan::check`] is what every plan, built-in or hand-written, must pass.
//!
//! ```
//! use weft_placer::Plan;
//! let plan = Plan::monolith(["frontend", "greeter"]);
//! assert!(plan.check(["frontend", "greeter"]).is_ok());
//! assert_eq!(plan.group_of("greeter").map(|g| g.0), Some("main"));
//! ```

use std::collections::BTreeMap;

/// The name of the only group of a monolith.
pub const MONOLITH_GROUP: &str = "main";

/// Which components run together, and how many copies of each group run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The groups, by name.
    pub groups: BTreeMap<String, Group>,
}

/// Components colocated in one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The components, by name.
    pub components: Vec<String>,
    /// How many processes run this group.
    pub replicas: u32,
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
}

impl Plan {
    /// Every component in one group, [`MONOLITH_GROUP`], with one replica.
    pub fn monolith<S: Into<String>>(components: impl IntoIterator<Item = S>) -> Plan {
        let group = Group {
            components: components.into_iter().map(Into::into).collect(),
            replicas: 1,
        };
        Plan {
            groups: BTreeMap::from([(MONOLITH_GROUP.to_string(), group)]),
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
            if g.replicas == 0 {
                return Err(PlanError::NoReplicas(group.clone()));
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
                        replicas: *replicas,
                    };
                    (name.to_string(), group)
                })
                .collect(),
        }
    }

    #[test]
    fn monolith_places_everything_once() {
        let p = Plan::monolith(["a", "b"]);
        assert_eq!(p.check(["a", "b"]), Ok(()));
        assert_eq!(p.groups[MONOLITH_GROUP].replicas, 1);
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
