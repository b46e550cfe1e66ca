//! Fused groups: the components of one group composed into one component
//! when they load (with wac-graph), so that a call between them is a
//! direct call between their core modules, with no host in between.
//!
//! A group opts in with `fuse = true` in its plan table. Each member's
//! import that weft's resolution serves with another member's export is
//! wired to that export inside the composition; every other import stays an
//! import of the fused component, linked as the member's own would be (a
//! capability, or a forwarder to a component elsewhere), and imports of
//! the same name merge into one. Every member's exports are exports of the
//! fused component under the same names, so listeners, other groups and
//! the resolution reach a member as before.
//!
//! What a fused edge gives up: with no host in between, weft cannot count,
//! time or trace its calls, and its callee runs within its caller's
//! deadline. The fused component has one sandbox, so two members that use
//! the same capability must be granted the same of it ([`merged_spec`]).

use crate::manifest::{ComponentSpec, Manifest};
use crate::resolve::{Provider, Resolution, Wire};
use anyhow::{Context as _, bail};
use std::collections::BTreeMap;
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions};

/// The name a fused group's component goes by in logs and errors: its
/// members, joined with `+`.
pub fn fused_name(members: &[String]) -> String {
    members.join("+")
}

/// Composes `members` (name and binary, in order) into one component's
/// binary, wiring each member's import to the member that `resolution`
/// says serves it.
pub fn compose(
    members: Vec<(String, Vec<u8>)>,
    resolution: &Resolution,
) -> anyhow::Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    let mut instances = BTreeMap::new();
    let mut packages = BTreeMap::new();
    for (i, (name, bytes)) in members.into_iter().enumerate() {
        let package =
            Package::from_bytes(&format!("weft-fused:m{i}"), None, bytes, graph.types_mut())
                .with_context(|| format!("component '{name}' cannot be read for fusing"))?;
        let id = graph
            .register_package(package)
            .with_context(|| format!("component '{name}' cannot be fused"))?;
        packages.insert(name.clone(), id);
        instances.insert(name, graph.instantiate(id));
    }
    for (name, instance) in &instances {
        for wire in resolution.wires.get(name).into_iter().flatten() {
            let Provider::Component {
                name: provider,
                export,
            } = &wire.provider
            else {
                continue;
            };
            let Some(&from) = instances.get(provider) else {
                continue;
            };
            let served = graph
                .alias_instance_export(from, export)
                .with_context(|| format!("fusing '{name}': '{provider}' has no export {export}"))?;
            graph
                .set_instantiation_argument(*instance, &wire.import, served)
                .with_context(|| {
                    format!(
                        "component '{name}' imports {} in a shape that '{provider}' does not \
                         export, so the two cannot be fused",
                        wire.import
                    )
                })?;
        }
    }
    let mut exported: BTreeMap<String, &String> = BTreeMap::new();
    for (name, id) in &packages {
        let ty = graph[*id].ty();
        let exports: Vec<String> = graph.types()[ty].exports.keys().cloned().collect();
        for export in exports {
            if let Some(other) = exported.insert(export.clone(), name) {
                bail!(
                    "components '{other}' and '{name}' both export {export}, and a fused \
                     component exports each name once; keep them in separate groups, or the \
                     group unfused"
                );
            }
            let alias = graph.alias_instance_export(instances[name], &export)?;
            graph.export(alias, export)?;
        }
    }
    graph
        .encode(EncodeOptions::default())
        .context("the fused component cannot be encoded")
}

/// The imports of the fused component that its members leave to the host
/// or to other groups: each member's wires whose provider is not a member,
/// merged by import name. Two members that import one name from different
/// providers cannot be fused.
pub fn outer_wires(members: &[String], resolution: &Resolution) -> anyhow::Result<Vec<Wire>> {
    let mut wires: Vec<(Wire, &String)> = Vec::new();
    for member in members {
        for wire in resolution.wires.get(member).into_iter().flatten() {
            let inner = matches!(&wire.provider, Provider::Component { name, .. } if members.contains(name));
            if inner {
                continue;
            }
            match wires.iter().find(|(w, _)| w.import == wire.import) {
                Some((same, _)) if same.provider == wire.provider => {}
                Some((_, other)) => bail!(
                    "components '{other}' and '{member}' both import {} but from different \
                     providers, and a fused component imports each name once; keep them in \
                     separate groups, or the group unfused",
                    wire.import
                ),
                None => wires.push((wire.clone(), member)),
            }
        }
    }
    Ok(wires.into_iter().map(|(w, _)| w).collect())
}

/// The member that imports each of the fused component's outer imports
/// (the first, where several do): the caller its forwarders name.
pub fn importers(members: &[String], resolution: &Resolution) -> BTreeMap<String, String> {
    let mut importers = BTreeMap::new();
    for member in members {
        for wire in resolution.wires.get(member).into_iter().flatten() {
            importers
                .entry(wire.import.clone())
                .or_insert_with(|| member.clone());
        }
    }
    importers
}

/// One kind of grant, as a fused group merges it: how to read it off a
/// member's spec, and how to add a member's to the merged spec.
struct Kind {
    name: &'static str,
    of: fn(&ComponentSpec) -> Vec<String>,
    take: fn(&mut ComponentSpec, &ComponentSpec),
}

const KINDS: &[Kind] = &[
    Kind {
        name: "keyvalue",
        of: |s| s.grants.keyvalue.clone(),
        take: |m, s| m.grants.keyvalue.clone_from(&s.grants.keyvalue),
    },
    Kind {
        name: "blobstore",
        of: |s| s.grants.blobstore.clone(),
        take: |m, s| m.grants.blobstore.clone_from(&s.grants.blobstore),
    },
    Kind {
        name: "outgoing-http",
        of: |s| s.grants.outgoing_http.clone(),
        take: |m, s| m.grants.outgoing_http.clone_from(&s.grants.outgoing_http),
    },
    Kind {
        name: "env",
        of: |s| s.grants.env.clone(),
        take: |m, s| m.grants.env.clone_from(&s.grants.env),
    },
    Kind {
        name: "config",
        of: |s| s.config.iter().map(|(k, v)| format!("{k} = {v}")).collect(),
        take: |m, s| m.config.clone_from(&s.config),
    },
];

/// The one sandbox of fused group `group`: each kind of grant (and the
/// config) of the one member that has it, or of all that have the same;
/// two members granted different things of one kind cannot be fused. The
/// largest memory limit and call timeout among the members hold.
pub fn merged_spec(
    manifest: &Manifest,
    group: &str,
    members: &[String],
) -> anyhow::Result<ComponentSpec> {
    let first = members.first().context("a fused group has components")?;
    let mut merged = manifest.components[first].clone();
    for kind in KINDS {
        let mut holder: Option<&String> = None;
        for member in members {
            let spec = &manifest.components[member];
            let granted = (kind.of)(spec);
            if granted.is_empty() {
                continue;
            }
            match holder {
                Some(other) if (kind.of)(&manifest.components[other]) != granted => bail!(
                    "plan group '{group}' is fused, but components '{other}' and '{member}' have \
                     different {} grants ({} and {}); a fused group runs in one sandbox, so \
                     grant them the same, or leave the group unfused",
                    kind.name,
                    (kind.of)(&manifest.components[other]).join(", "),
                    granted.join(", ")
                ),
                Some(_) => {}
                None => {
                    holder = Some(member);
                    (kind.take)(&mut merged, spec);
                }
            }
        }
    }
    for member in members {
        let spec = &manifest.components[member];
        if spec.memory_limit() > merged.memory_limit() {
            merged.memory_limit = spec.memory_limit;
        }
        if spec.call_timeout() > merged.call_timeout() {
            merged.call_timeout = spec.call_timeout;
        }
    }
    Ok(merged)
}
