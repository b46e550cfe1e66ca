//! Which cross-process calls an app allows, from its resolved WIT graph
//! (pure).
//!
//! A worker serves `Invoke.Call` for an export only to a worker of the same
//! version whose group holds a component that imports that export, as the
//! manifest resolved it; the call's `caller` must be that component.
//! [`Edges`] holds those pairs, and says which edge is missing when a call
//! has none. [`Buckets`] does the same for the manager's key-value store: a
//! group may use the buckets granted to its components, and no others.

use crate::manifest::Manifest;
use crate::resolve::{Provider, Resolution};
use crate::telemetry::logs::escaped;
use std::collections::{BTreeMap, BTreeSet};
use weft_placer::Plan;

/// Every edge of an app's call graph that crosses groups, by callee.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edges {
    /// (callee component, its export) → caller group → caller components.
    callers: BTreeMap<(String, String), BTreeMap<String, BTreeSet<String>>>,
}

impl Edges {
    /// The edges of `resolution` under `plan`.
    pub fn of(resolution: &Resolution, plan: &Plan) -> Edges {
        let mut callers: BTreeMap<_, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for (component, wires) in &resolution.wires {
            let Some((group, _)) = plan.group_of(component) else {
                continue;
            };
            for wire in wires {
                if let Provider::Component { name, export } = &wire.provider {
                    callers
                        .entry((name.clone(), export.clone()))
                        .or_default()
                        .entry(group.to_string())
                        .or_default()
                        .insert(component.clone());
                }
            }
        }
        Edges { callers }
    }

    /// Every component, of any group, that may call `target`'s export
    /// `interface`.
    pub fn callers_of(&self, target: &str, interface: &str) -> BTreeSet<&str> {
        let key = (target.to_string(), interface.to_string());
        self.callers
            .get(&key)
            .into_iter()
            .flat_map(|groups| groups.values().flatten())
            .map(String::as_str)
            .collect()
    }

    /// Whether component `caller` of group `group` may call `function` of
    /// `interface`, exported by `target`; if not, why, naming the missing
    /// edge.
    pub fn allows(
        &self,
        (group, caller): (&str, &str),
        (target, interface, function): (&str, &str, &str),
    ) -> Result<(), String> {
        let key = (target.to_string(), interface.to_string());
        let groups = self.callers.get(&key);
        let Some(components) = groups.and_then(|g| g.get(group)) else {
            return Err(format!(
                "the app's call graph has no edge from group '{}' to {}: {}#{}: no component \
                 of that group imports {} from '{}'",
                escaped(group),
                escaped(target),
                escaped(interface),
                escaped(function),
                escaped(interface),
                escaped(target),
            ));
        };
        if components.contains(caller) {
            return Ok(());
        }
        Err(format!(
            "the call claims to come from '{}', but in group '{}' only {} import {} from '{}'",
            escaped(caller),
            escaped(group),
            components
                .iter()
                .map(|c| format!("'{c}'"))
                .collect::<Vec<_>>()
                .join(", "),
            escaped(interface),
            escaped(target),
        ))
    }
}

/// The buckets each group of one version may use in the manager's store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buckets {
    by_group: BTreeMap<String, BTreeSet<String>>,
}

impl Buckets {
    /// The buckets granted to the components of each group of `plan`.
    pub fn of(manifest: &Manifest, plan: &Plan) -> Buckets {
        let by_group = plan
            .groups
            .iter()
            .map(|(group, g)| {
                let granted = g
                    .components
                    .iter()
                    .filter_map(|c| manifest.components.get(c))
                    .flat_map(|spec| spec.grants.keyvalue.iter().cloned())
                    .collect();
                (group.clone(), granted)
            })
            .collect();
        Buckets { by_group }
    }

    /// Whether group `group` may use `bucket`; if not, why.
    pub fn allows(&self, group: &str, bucket: &str) -> Result<(), String> {
        if self
            .by_group
            .get(group)
            .is_some_and(|granted| granted.contains(bucket))
        {
            return Ok(());
        }
        Err(format!(
            "bucket '{}' is not granted to any component of group '{}'; grant it in weft.toml \
             ([components.NAME.grants] keyvalue = [\"{}\"])",
            escaped(bucket),
            escaped(group),
            escaped(bucket),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::Wire;

    const GREETER: &str = "demo:hello/greeter@0.1.0";

    fn hello() -> (Resolution, Plan) {
        let wire = |import: &str, name: &str| Wire {
            import: import.into(),
            provider: Provider::Component {
                name: name.into(),
                export: import.into(),
            },
        };
        let resolution = Resolution {
            wires: BTreeMap::from([
                ("frontend".to_string(), vec![wire(GREETER, "greeter")]),
                ("greeter".to_string(), vec![]),
            ]),
        };
        (resolution, Plan::split(["frontend", "greeter"]))
    }

    #[test]
    fn only_an_importer_in_the_callers_group_may_call() {
        let (resolution, plan) = hello();
        let edges = Edges::of(&resolution, &plan);
        let greet = ("greeter", GREETER, "greet");
        assert_eq!(edges.allows(("frontend", "frontend"), greet), Ok(()));
        let own = edges.allows(("greeter", "greeter"), greet).unwrap_err();
        assert!(own.contains("no edge from group 'greeter'"), "{own}");
        let claimed = edges
            .allows(("frontend", "nobody-such"), greet)
            .unwrap_err();
        assert!(claimed.contains("'nobody-such'"), "{claimed}");
        assert!(claimed.contains("only 'frontend'"), "{claimed}");
        let forged = edges
            .allows(("frontend", "x\ny"), ("frontend", GREETER, "greet"))
            .unwrap_err();
        assert!(!forged.contains('\n'), "{forged}");
    }

    #[test]
    fn a_group_uses_only_its_components_buckets() {
        let manifest = crate::manifest::Manifest::from_str(
            "[app]\nname = \"kv\"\n\
             [components.http]\nwasm = \"http.wasm\"\n\
             [components.counter]\nwasm = \"counter.wasm\"\n\
             [components.counter.grants]\nkeyvalue = [\"counts\"]\n",
            std::path::Path::new("weft.toml"),
        )
        .unwrap();
        let buckets = Buckets::of(&manifest, &Plan::split(["http", "counter"]));
        assert_eq!(buckets.allows("counter", "counts"), Ok(()));
        let other = buckets.allows("http", "counts").unwrap_err();
        assert!(other.contains("group 'http'"), "{other}");
        assert!(buckets.allows("counter", "secrets").is_err());
    }
}
