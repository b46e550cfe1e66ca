//! What a plan must honour, whoever wrote it: components that must share a
//! process, components that must never share one, components pinned to a
//! node label (a region, a zone), a most-components-per-group, and the
//! range of replicas the group that holds a component may run.
//!
//! [`Constraints::conflicts`] says whether any plan at all can honour them,
//! naming the constraints that clash; [`Constraints::violations`] says
//! which of them one plan breaks. Both report every problem at once. A
//! manifest's `[placement]` table reads as [`Constraints`]:
//!
//! ```toml
//! [placement]
//! colocate = [["cart", "checkout"]]
//! separate = [["payment", "frontend"]]
//! max-components-per-group = 4
//! [placement.pin]
//! cart = "region=eu-west"
//! [placement.replicas]
//! frontend = "2..8"   # the group holding frontend runs 2 to 8 replicas
//! payment = 2
//! ```
//!
//! ```
//! use weft_placer::{Constraints, Plan};
//! let c: Constraints = toml::from_str("separate = [[\"payment\", \"frontend\"]]").unwrap();
//! assert!(c.conflicts(["payment", "frontend"]).is_empty());
//! let monolith = Plan::monolith(["payment", "frontend"]);
//! assert_eq!(c.violations(&monolith).len(), 1);
//! assert!(c.violations(&Plan::split(["payment", "frontend"])).is_empty());
//! ```

use crate::{Plan, Replicas};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The constraints every plan of an app must honour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Constraints {
    /// Sets of components that share a process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub colocate: Vec<Vec<String>>,
    /// Sets of components no two of which share a process (for example a
    /// payment service kept apart for compliance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub separate: Vec<Vec<String>>,
    /// Components that run only on nodes with a label, `key=value`: near
    /// the store they use, in a region.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pin: BTreeMap<String, String>,
    /// The most components one group may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_components_per_group: Option<usize>,
    /// The replicas that the group holding a component may run: a count
    /// or a range. A group honours the ranges of all its components.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replicas: BTreeMap<String, Replicas>,
}

/// A constraint, named as the manifest writes it, for messages.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// `colocate[i]`.
    Colocate(usize),
    /// `separate[i]`.
    Separate(usize),
    /// `pin.COMPONENT`.
    Pin(String),
    /// `max-components-per-group`.
    MaxComponents,
    /// `replicas.COMPONENT`.
    Replicas(String),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Colocate(i) => write!(f, "placement.colocate[{i}]"),
            Rule::Separate(i) => write!(f, "placement.separate[{i}]"),
            Rule::Pin(c) => write!(f, "placement.pin.{c}"),
            Rule::MaxComponents => f.write_str("placement.max-components-per-group"),
            Rule::Replicas(c) => write!(f, "placement.replicas.{c}"),
        }
    }
}

/// Why no plan, or not a given plan, can honour the constraints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The constraints involved: one for a plan that breaks it, two (or
    /// more) for constraints that clash.
    pub rules: Vec<Rule>,
    /// What is wrong, and what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules: Vec<String> = self.rules.iter().map(Rule::to_string).collect();
        write!(f, "{}: {}", rules.join(" and "), self.message)
    }
}

impl Constraints {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        *self == Constraints::default()
    }

    /// The components that must share a process with each, by the
    /// `colocate` sets that join them: each component's class, and the
    /// sets that made it.
    fn classes(&self) -> BTreeMap<&str, (BTreeSet<&str>, BTreeSet<usize>)> {
        let mut class: BTreeMap<&str, (BTreeSet<&str>, BTreeSet<usize>)> = BTreeMap::new();
        for (i, set) in self.colocate.iter().enumerate() {
            // Merge every class that this set touches, and the set.
            let mut members: BTreeSet<&str> = set.iter().map(String::as_str).collect();
            let mut rules = BTreeSet::from([i]);
            for c in set {
                if let Some((others, their_rules)) = class.get(c.as_str()) {
                    members.extend(others.iter().copied());
                    rules.extend(their_rules.iter().copied());
                }
            }
            for c in &members {
                class.insert(c, (members.clone(), rules.clone()));
            }
        }
        class
    }

    /// Every clash that makes the constraints impossible for an app of
    /// `components`, each naming the constraints involved; empty when some
    /// plan can honour them all.
    pub fn conflicts<S: AsRef<str>>(
        &self,
        components: impl IntoIterator<Item = S>,
    ) -> Vec<Problem> {
        let known: BTreeSet<String> = components
            .into_iter()
            .map(|c| c.as_ref().to_string())
            .collect();
        let mut problems = Vec::new();
        let unknown = |rule: Rule, name: &str, problems: &mut Vec<Problem>| {
            if !known.contains(name) {
                problems.push(Problem {
                    rules: vec![rule],
                    message: format!(
                        "names component '{name}', which the app does not have; fix the name"
                    ),
                });
            }
        };
        for (i, set) in self.colocate.iter().enumerate() {
            set.iter()
                .for_each(|c| unknown(Rule::Colocate(i), c, &mut problems));
            if set.is_empty() {
                problems.push(Problem {
                    rules: vec![Rule::Colocate(i)],
                    message: "is empty; list the components that share a process".into(),
                });
            }
        }
        for (i, set) in self.separate.iter().enumerate() {
            set.iter()
                .for_each(|c| unknown(Rule::Separate(i), c, &mut problems));
            if set.is_empty() {
                problems.push(Problem {
                    rules: vec![Rule::Separate(i)],
                    message: "is empty; list the components kept apart".into(),
                });
            }
            let distinct: BTreeSet<&String> = set.iter().collect();
            if distinct.len() < set.len() {
                problems.push(Problem {
                    rules: vec![Rule::Separate(i)],
                    message: "names one component twice; a component cannot be apart from itself"
                        .into(),
                });
            }
        }
        for component in self.pin.keys() {
            unknown(Rule::Pin(component.clone()), component, &mut problems);
        }
        for (component, range) in &self.replicas {
            unknown(Rule::Replicas(component.clone()), component, &mut problems);
            if range.min == 0 || range.max < range.min || range.max > crate::MAX_REPLICAS {
                problems.push(Problem {
                    rules: vec![Rule::Replicas(component.clone())],
                    message: format!(
                        "is {range}; give a count or a range from 1 up to {}, least first",
                        crate::MAX_REPLICAS
                    ),
                });
            }
        }
        if self.max_components_per_group == Some(0) {
            problems.push(Problem {
                rules: vec![Rule::MaxComponents],
                message: "is 0; a group holds at least one component".into(),
            });
        }

        let classes = self.classes();
        let mut seen = BTreeSet::new();
        for (members, colocated) in classes.values() {
            if !seen.insert(members.clone()) {
                continue;
            }
            let joined = || colocated.iter().map(|i| Rule::Colocate(*i));
            // Two components of one class kept apart.
            for (j, set) in self.separate.iter().enumerate() {
                let inside: Vec<&String> = set
                    .iter()
                    .filter(|c| members.contains(c.as_str()))
                    .collect();
                if inside.len() >= 2 {
                    problems.push(Problem {
                        rules: joined().chain([Rule::Separate(j)]).collect(),
                        message: format!(
                            "'{}' and '{}' must share a process and must not; drop one of \
                             these constraints",
                            inside[0], inside[1]
                        ),
                    });
                }
            }
            // Two components of one class pinned to different labels.
            let pins: BTreeMap<&str, &str> = members
                .iter()
                .filter_map(|c| Some((*c, self.pin.get(*c)?.as_str())))
                .collect();
            let labels: BTreeSet<&str> = pins.values().copied().collect();
            if labels.len() > 1 {
                let names: Vec<&str> = pins.keys().copied().collect();
                problems.push(Problem {
                    rules: joined()
                        .chain(names.iter().map(|c| Rule::Pin(c.to_string())))
                        .collect(),
                    message: format!(
                        "{} must share a process but are pinned to different labels ({}); \
                         pin them alike or stop colocating them",
                        names.join(", "),
                        labels.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
            // Two components of one class whose replica ranges do not meet.
            let ranges: Vec<(&str, Replicas)> = members
                .iter()
                .filter_map(|c| Some((*c, *self.replicas.get(*c)?)))
                .collect();
            if !ranges.is_empty() && Self::meet(ranges.iter().map(|(_, r)| *r)).is_none() {
                problems.push(Problem {
                    rules: joined()
                        .chain(ranges.iter().map(|(c, _)| Rule::Replicas(c.to_string())))
                        .collect(),
                    message: format!(
                        "{} must share a process but ask for replica ranges that do not meet \
                         ({}); make the ranges overlap or stop colocating them",
                        ranges
                            .iter()
                            .map(|(c, _)| *c)
                            .collect::<Vec<_>>()
                            .join(", "),
                        ranges
                            .iter()
                            .map(|(_, r)| r.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
            // A class larger than a group may be (a limit of 0 is its own
            // problem, above).
            if let Some(max) = self.max_components_per_group.filter(|m| *m > 0)
                && members.len() > max
            {
                problems.push(Problem {
                    rules: joined().chain([Rule::MaxComponents]).collect(),
                    message: format!(
                        "{} components must share a process, more than the {max} a group may \
                         hold; raise the limit or colocate fewer",
                        members.len()
                    ),
                });
            }
        }
        problems
    }

    /// Every constraint that `plan` breaks; empty when it honours them all.
    pub fn violations(&self, plan: &Plan) -> Vec<Problem> {
        let group_of = |c: &str| plan.group_of(c).map(|(name, _)| name);
        let mut problems = Vec::new();
        for (i, set) in self.colocate.iter().enumerate() {
            let groups: BTreeSet<Option<&str>> = set.iter().map(|c| group_of(c)).collect();
            if groups.len() > 1 {
                problems.push(Problem {
                    rules: vec![Rule::Colocate(i)],
                    message: format!(
                        "{} must share a process, but the plan puts them in different groups",
                        set.join(", ")
                    ),
                });
            }
        }
        for (i, set) in self.separate.iter().enumerate() {
            for (a, first) in set.iter().enumerate() {
                for second in &set[a + 1..] {
                    if let Some(group) = group_of(first).filter(|g| Some(*g) == group_of(second)) {
                        problems.push(Problem {
                            rules: vec![Rule::Separate(i)],
                            message: format!(
                                "'{first}' and '{second}' must not share a process, but the \
                                 plan puts both in group '{group}'"
                            ),
                        });
                    }
                }
            }
        }
        for (name, group) in &plan.groups {
            let labels: BTreeSet<&str> = group
                .components
                .iter()
                .filter_map(|c| self.pin.get(c).map(String::as_str))
                .collect();
            if labels.len() > 1 {
                let pinned = group
                    .components
                    .iter()
                    .filter(|c| self.pin.contains_key(*c));
                problems.push(Problem {
                    rules: pinned.map(|c| Rule::Pin(c.clone())).collect(),
                    message: format!(
                        "group '{name}' holds components pinned to different labels ({}); one \
                         process runs on one node",
                        labels.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
            for component in &group.components {
                let Some(range) = self.replicas.get(component) else {
                    continue;
                };
                if group.replicas.min < range.min || group.replicas.max > range.max {
                    problems.push(Problem {
                        rules: vec![Rule::Replicas(component.clone())],
                        message: format!(
                            "group '{name}' runs {} replicas, outside the {range} that \
                             '{component}' allows",
                            group.replicas
                        ),
                    });
                }
            }
            if let Some(max) = self.max_components_per_group
                && group.components.len() > max
            {
                problems.push(Problem {
                    rules: vec![Rule::MaxComponents],
                    message: format!(
                        "group '{name}' holds {} components, more than {max}",
                        group.components.len()
                    ),
                });
            }
        }
        problems
    }

    /// The replicas a group of `components` may run: where the ranges
    /// their constraints give meet (`None` when they do not; no range at
    /// all is any count).
    pub fn replicas_of<S: AsRef<str>>(
        &self,
        components: impl IntoIterator<Item = S>,
    ) -> Option<Replicas> {
        let ranges: Vec<Replicas> = components
            .into_iter()
            .filter_map(|c| self.replicas.get(c.as_ref()).copied())
            .collect();
        if ranges.is_empty() {
            return Some(Replicas {
                min: 1,
                max: crate::MAX_REPLICAS,
            });
        }
        Self::meet(ranges)
    }

    /// Where `ranges` meet, if they do.
    fn meet(ranges: impl IntoIterator<Item = Replicas>) -> Option<Replicas> {
        let mut ranges = ranges.into_iter();
        let first = ranges.next()?;
        ranges.try_fold(first, |a, b| {
            let meet = Replicas {
                min: a.min.max(b.min),
                max: a.max.min(b.max),
            };
            (meet.min <= meet.max).then_some(meet)
        })
    }

    /// The node label a group must run on: that of its pinned components
    /// (the same for all of them in a plan that honours the constraints).
    pub fn label_of_group<'a>(&'a self, plan: &Plan, group: &str) -> Option<&'a str> {
        plan.groups
            .get(group)?
            .components
            .iter()
            .find_map(|c| self.pin.get(c).map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Group;

    fn constraints(text: &str) -> Constraints {
        toml::from_str(text).unwrap()
    }

    fn plan(groups: &[(&str, &[&str])]) -> Plan {
        Plan {
            groups: groups
                .iter()
                .map(|(name, components)| {
                    (
                        name.to_string(),
                        Group {
                            components: components.iter().map(|c| c.to_string()).collect(),
                            replicas: Default::default(),
                            resources: Default::default(),
                            fuse: false,
                        },
                    )
                })
                .collect(),
        }
    }

    const APP: [&str; 5] = ["frontend", "cart", "checkout", "payment", "catalog"];

    #[test]
    fn constraints_that_some_plan_can_honour_have_no_conflicts() {
        let c = constraints(
            "colocate = [[\"cart\", \"checkout\"]]\nseparate = [[\"payment\", \"frontend\"]]\n\
             max-components-per-group = 3\n[pin]\ncart = \"region=eu\"\ncheckout = \"region=eu\"\n",
        );
        assert_eq!(c.conflicts(APP), vec![]);
    }

    #[test]
    fn colocated_and_separated_at_once_names_both_constraints() {
        // cart~checkout, checkout~payment: cart and payment share a process,
        // which separate[0] forbids.
        let c = constraints(
            "colocate = [[\"cart\", \"checkout\"], [\"checkout\", \"payment\"]]\n\
             separate = [[\"cart\", \"payment\"]]\n",
        );
        let problems = c.conflicts(APP);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].rules,
            [Rule::Colocate(0), Rule::Colocate(1), Rule::Separate(0)]
        );
        assert_eq!(
            problems[0].to_string(),
            "placement.colocate[0] and placement.colocate[1] and placement.separate[0]: 'cart' \
             and 'payment' must share a process and must not; drop one of these constraints"
        );
    }

    #[test]
    fn colocated_components_pinned_apart_or_too_many_conflict() {
        let c = constraints(
            "colocate = [[\"cart\", \"checkout\", \"catalog\"]]\nmax-components-per-group = 2\n\
             [pin]\ncart = \"region=eu\"\ncatalog = \"region=us\"\n",
        );
        let problems = c.conflicts(APP);
        let rules: Vec<&Vec<Rule>> = problems.iter().map(|p| &p.rules).collect();
        assert_eq!(
            rules,
            [
                &vec![
                    Rule::Colocate(0),
                    Rule::Pin("cart".into()),
                    Rule::Pin("catalog".into())
                ],
                &vec![Rule::Colocate(0), Rule::MaxComponents],
            ]
        );
    }

    #[test]
    fn unknown_names_and_nonsense_are_reported_at_once() {
        let c = constraints(
            "colocate = [[\"cart\", \"kart\"], []]\nseparate = [[\"payment\", \"payment\"]]\n\
             max-components-per-group = 0\n[pin]\nghost = \"zone=a\"\n",
        );
        let text: Vec<String> = c.conflicts(APP).iter().map(Problem::to_string).collect();
        assert_eq!(
            text,
            [
                "placement.colocate[0]: names component 'kart', which the app does not have; fix the name",
                "placement.colocate[1]: is empty; list the components that share a process",
                "placement.separate[0]: names one component twice; a component cannot be apart from itself",
                "placement.pin.ghost: names component 'ghost', which the app does not have; fix the name",
                "placement.max-components-per-group: is 0; a group holds at least one component",
            ]
        );
    }

    #[test]
    fn a_plan_is_checked_against_each_kind_of_constraint() {
        let c = constraints(
            "colocate = [[\"cart\", \"checkout\"]]\nseparate = [[\"payment\", \"frontend\"]]\n\
             max-components-per-group = 3\n[pin]\ncart = \"region=eu\"\ncatalog = \"region=us\"\n",
        );
        // The monolith breaks every one of them.
        let monolith = Plan::monolith(APP);
        let rules: Vec<Vec<Rule>> = c
            .violations(&monolith)
            .into_iter()
            .map(|p| p.rules)
            .collect();
        assert_eq!(
            rules,
            [
                vec![Rule::Separate(0)],
                vec![Rule::Pin("cart".into()), Rule::Pin("catalog".into())],
                vec![Rule::MaxComponents],
            ]
        );
        // Split breaks only the colocation.
        let split = Plan::split(APP);
        let rules: Vec<Vec<Rule>> = c.violations(&split).into_iter().map(|p| p.rules).collect();
        assert_eq!(rules, [vec![Rule::Colocate(0)]]);
        // A plan that honours them all, and the label its groups run on.
        let good = plan(&[
            ("orders", &["cart", "checkout"]),
            ("pay", &["payment"]),
            ("web", &["frontend", "catalog"]),
        ]);
        assert_eq!(c.violations(&good), vec![]);
        assert_eq!(c.label_of_group(&good, "orders"), Some("region=eu"));
        assert_eq!(c.label_of_group(&good, "web"), Some("region=us"));
        assert_eq!(c.label_of_group(&good, "pay"), None);
    }

    #[test]
    fn replica_ranges_are_honoured_and_must_meet_when_colocated() {
        let c = constraints(
            "colocate = [[\"cart\", \"checkout\"]]\n[replicas]\ncart = \"2..6\"\n\
             checkout = \"4..10\"\npayment = 2\n",
        );
        assert_eq!(c.conflicts(APP), vec![]);
        // The group of cart and checkout runs where both ranges meet.
        assert_eq!(
            c.replicas_of(["cart", "checkout"]),
            Some(Replicas { min: 4, max: 6 })
        );
        assert_eq!(c.replicas_of(["email"]).map(|r| r.min), Some(1));
        let mut good = plan(&[
            ("orders", &["cart", "checkout"]),
            ("pay", &["payment"]),
            ("web", &["frontend", "catalog"]),
        ]);
        good.groups.get_mut("orders").unwrap().replicas = Replicas { min: 4, max: 6 };
        good.groups.get_mut("pay").unwrap().replicas = Replicas::fixed(2);
        assert_eq!(c.violations(&good), vec![]);
        // One replica of payment's group is fewer than it asks for.
        let split = Plan::split(APP);
        let broken: Vec<String> = c
            .violations(&split)
            .iter()
            .filter(|p| p.rules == [Rule::Replicas("payment".into())])
            .map(Problem::to_string)
            .collect();
        assert_eq!(
            broken,
            [
                "placement.replicas.payment: group 'payment' runs 1 replicas, outside the 2 that \
              'payment' allows"
            ]
        );
        // Colocated components whose ranges do not meet, and a range
        // backwards.
        let c = constraints(
            "colocate = [[\"cart\", \"checkout\"]]\n[replicas]\ncart = \"1..2\"\n\
             checkout = \"3..4\"\npayment = \"5..1\"\n",
        );
        let rules: Vec<Vec<Rule>> = c.conflicts(APP).into_iter().map(|p| p.rules).collect();
        assert_eq!(
            rules,
            [
                vec![Rule::Replicas("payment".into())],
                vec![
                    Rule::Colocate(0),
                    Rule::Replicas("cart".into()),
                    Rule::Replicas("checkout".into())
                ],
            ]
        );
    }

    #[test]
    fn constraints_read_strictly() {
        let err = toml::from_str::<Constraints>("colocated = [[\"a\"]]").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `colocated`"),
            "{err}"
        );
        assert!(Constraints::default().is_empty());
    }
}
