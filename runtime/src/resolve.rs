//! Resolution: deciding, before anything runs, who serves every import.
//!
//! Each import of each component goes to exactly one provider: the component
//! named for it in `[links]`, else the host capability for a WASI interface,
//! else nothing at all for an interface of plain types (the `types`
//! interface that others `use`), else the one component that exports it at
//! a semver-compatible version. Everything that cannot work is reported
//! together, each error naming the manifest, the component, the import and
//! the candidates, so that a user fixes them in one pass.
//!
//! Cycles between components are allowed: calls are routed through instance
//! pools at call time, so A may call B while B calls A (each call borrows its
//! own instance).

use crate::capability::{self, CapabilityRef};
use crate::manifest::{Manifest, names_interface, unversioned};
use crate::world::{Interface, World, compatibility};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The interfaces a listener's component must export one of: WASI 0.2's
/// and WASI 0.3's HTTP handler.
pub const HTTP_HANDLERS: [&str; 2] = ["wasi:http/incoming-handler", "wasi:http/handler"];

/// Who serves one import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// A host capability.
    Capability(CapabilityRef),
    /// Nothing: the interface holds only plain types, which need no code
    /// behind them, so it is linked as an empty instance.
    TypesOnly,
    /// Another component's export, by component name and export name.
    Component {
        /// The providing component.
        name: String,
        /// The export's full name in the provider (its version may differ).
        export: String,
    },
}

/// One resolved import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wire {
    /// The import's full name, as the importing component spells it.
    pub import: String,
    /// Who serves it.
    pub provider: Provider,
}

/// Every component's resolved imports, by component name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// For each component, its imports in the order it declares them.
    pub wires: BTreeMap<String, Vec<Wire>>,
}

/// One reason an app cannot be linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveError {
    /// The manifest.
    pub manifest: PathBuf,
    /// Where in the app: "component 'a', import 'x'" or "listener 'web'".
    pub location: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// All the reasons an app cannot be linked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ResolveErrors(pub Vec<ResolveError>);

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.manifest.display(),
            self.location,
            self.message
        )
    }
}

impl fmt::Display for ResolveErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "the app cannot be linked ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

/// Resolves every import of every component in `worlds` (keyed like
/// `manifest.components`) and checks the listeners.
pub fn resolve(
    manifest_path: &Path,
    manifest: &Manifest,
    worlds: &BTreeMap<String, World>,
) -> Result<Resolution, ResolveErrors> {
    let mut errors = Vec::new();
    let mut error = |location: String, message: String| {
        errors.push(ResolveError {
            manifest: manifest_path.to_path_buf(),
            location,
            message,
        });
    };
    let mut resolution = Resolution::default();

    for (name, world) in worlds {
        let grants = &manifest.components[name].grants;
        for loose in &world.loose_imports {
            error(
                format!("component '{name}', import '{loose}'"),
                "weft links only interfaces; move this function or item into a WIT interface"
                    .into(),
            );
        }
        let mut wires = Vec::new();
        for import in &world.imports {
            let at = format!("component '{name}', import '{}'", import.name);
            // Every export of this interface by another component, at any
            // version, and the components whose version can serve it.
            let same_name: Vec<(&str, &Interface)> = worlds
                .iter()
                .filter(|(other, _)| *other != name)
                .flat_map(|(other, w)| {
                    w.exports_named(unversioned(&import.name))
                        .map(move |e| (other.as_str(), e))
                })
                .collect();
            let serves = |export: &Interface| compatibility(&import.name, &export.name).is_ok();
            let mut exporters: Vec<&str> = same_name
                .iter()
                .filter(|(_, e)| serves(e))
                .map(|(other, _)| *other)
                .collect();
            exporters.dedup();
            let provider = if let Some(linked) = manifest.link_for(name, &import.name) {
                if exporters.contains(&linked) {
                    linked
                } else {
                    let why = match same_name.iter().find(|(other, _)| *other == linked) {
                        Some((_, export)) => incompatible(import, export, linked),
                        None => format!(
                            "[links] names '{linked}', but '{linked}' does not export it; {}",
                            candidates(&exporters)
                        ),
                    };
                    error(at.clone(), why);
                    continue;
                }
            } else if let Some(cap) = capability::for_interface(&import.name) {
                if cap.is_granted(grants) {
                    wires.push(Wire {
                        import: import.name.clone(),
                        provider: Provider::Capability(cap),
                    });
                } else {
                    error(
                        at.clone(),
                        format!(
                            "the '{cap}' capability is not granted; add it under \
                             [components.{name}.grants], such as {}",
                            cap.grant_example().unwrap_or_default()
                        ),
                    );
                }
                continue;
            } else if import.is_types_only() {
                wires.push(Wire {
                    import: import.name.clone(),
                    provider: Provider::TypesOnly,
                });
                continue;
            } else {
                match exporters.as_slice() {
                    [one] => *one,
                    [] => {
                        error(at.clone(), unserved(import, &same_name));
                        continue;
                    }
                    many => {
                        error(
                            at.clone(),
                            format!(
                                "{} export it; choose one with [links] \"{name}/{}\" = \"{}\"",
                                many.join(" and "),
                                unversioned(&import.name),
                                many[0]
                            ),
                        );
                        continue;
                    }
                }
            };
            let export = same_name
                .iter()
                .find(|(other, e)| *other == provider && serves(e))
                .map(|(_, e)| *e)
                .expect("exporters only lists components that export the interface");
            let problems = mismatches(import, export, provider);
            if problems.is_empty() {
                wires.push(Wire {
                    import: import.name.clone(),
                    provider: Provider::Component {
                        name: provider.to_string(),
                        export: export.name.clone(),
                    },
                });
            }
            for problem in problems {
                error(at.clone(), problem);
            }
        }
        resolution.wires.insert(name.clone(), wires);
    }

    for key in manifest.links.keys() {
        let (component, interface) = key.split_once('/').expect("checked by the manifest");
        let imports = worlds.get(component).map(|w| &w.imports);
        let used = imports
            .is_some_and(|imports| imports.iter().any(|i| names_interface(interface, &i.name)));
        if !used {
            error(
                format!("links.\"{key}\""),
                format!(
                    "component '{component}' does not import '{interface}'; remove the link or fix its name"
                ),
            );
        }
    }

    for (listener, spec) in &manifest.listeners {
        let handles_http = |w: &World| {
            HTTP_HANDLERS
                .iter()
                .any(|h| w.exports_named(h).next().is_some())
        };
        let serves = worlds.get(&spec.component).is_some_and(handles_http);
        if !serves {
            let handlers: Vec<&str> = worlds
                .iter()
                .filter(|(_, w)| handles_http(w))
                .map(|(n, _)| n.as_str())
                .collect();
            error(
                format!("listener '{listener}'"),
                format!(
                    "component '{}' does not export wasi:http/incoming-handler (WASI 0.2) or \
                     wasi:http/handler (WASI 0.3), so it cannot serve HTTP; {}",
                    spec.component,
                    match handlers.as_slice() {
                        [] => "no component of this app does".to_string(),
                        some => format!("components that do: {}", some.join(", ")),
                    }
                ),
            );
        }
    }

    if errors.is_empty() {
        Ok(resolution)
    } else {
        Err(ResolveErrors(errors))
    }
}

fn candidates(exporters: &[&str]) -> String {
    match exporters {
        [] => "no component exports it".into(),
        some => format!("components that export it: {}", some.join(", ")),
    }
}

/// Why no component serves `import`, which has functions or resources;
/// `same_name` are the components that export it at other versions.
fn unserved(import: &Interface, same_name: &[(&str, &Interface)]) -> String {
    if let [(other, export), ..] = same_name {
        return incompatible(import, export, other);
    }
    if import.name.starts_with("wasi:") {
        return format!(
            "no component exports it and weft provides no such capability (weft provides {})",
            capability::PROVIDED
        );
    }
    if let Some(resources) = resource_list(import) {
        return format!(
            "it declares {resources} and no component exports it; a resource lives in the \
             component that implements it, so export this interface from that component"
        );
    }
    "no component exports it; add the component that implements it to [components]".into()
}

/// Why `provider`'s `export` cannot serve `import`: their versions.
fn incompatible(import: &Interface, export: &Interface, provider: &str) -> String {
    let why = compatibility(&import.name, &export.name)
        .err()
        .unwrap_or("their versions differ");
    format!(
        "'{provider}' exports {}, which cannot serve {} ({why}); build both components \
         against the same version of the WIT",
        export.name, import.name
    )
}

/// "resource 'blob'" or "resources 'a', 'b'", when `interface` declares any.
fn resource_list(interface: &Interface) -> Option<String> {
    let names: Vec<String> = interface
        .resources
        .iter()
        .map(|r| format!("'{r}'"))
        .collect();
    match names.as_slice() {
        [] => None,
        [one] => Some(format!("resource {one}")),
        many => Some(format!("resources {}", many.join(", "))),
    }
}

/// Why `import` cannot be served by `export` of component `provider`.
fn mismatches(import: &Interface, export: &Interface, provider: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for f in &import.functions {
        match export.function(&f.name) {
            None => problems.push(format!(
                "'{provider}' exports {} without function '{}'; rebuild both components against the same WIT",
                export.name, f.name
            )),
            // weft mediates every call, so an `async` import may be served
            // by a sync export, and the other way round.
            Some(e) if sync_form(&e.signature) != sync_form(&f.signature) => problems.push(format!(
                "function '{}' has type {} here but {} in '{provider}'; rebuild both components against the same WIT",
                f.name, f.signature, e.signature
            )),
            Some(_) => {
                if let Some(why) = &f.stream_problem {
                    problems.push(format!(
                        "function '{}' passes {why}; change the interface, or stream bytes \
                         (stream<u8>) and decode them on the other side",
                        f.name
                    ));
                }
            }
        }
    }
    problems
}

/// A function's signature without its `async`.
fn sync_form(signature: &str) -> &str {
    signature.strip_prefix("async ").unwrap_or(signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::FuncSig;

    fn func(name: &str, signature: &str) -> FuncSig {
        FuncSig {
            fingerprint: None,
            name: name.into(),
            signature: signature.into(),
            has_handles: signature.contains("resource"),
            has_streams: signature.contains("stream<"),
            is_async: signature.starts_with("async"),
            stream_problem: None,
        }
    }

    fn iface(name: &str, functions: &[(&str, &str)]) -> Interface {
        Interface {
            name: name.into(),
            functions: functions.iter().map(|(n, s)| func(n, s)).collect(),
            resources: Vec::new(),
        }
    }

    const GREET: &str = "demo:hello/greeter@0.1.0";

    fn importer() -> World {
        World {
            imports: vec![
                iface("wasi:cli/stdout@0.2.0", &[]),
                iface(GREET, &[("greet", "func(string) -> string")]),
            ],
            exports: vec![iface("wasi:http/incoming-handler@0.2.0", &[])],
            ..World::default()
        }
    }

    fn exporter() -> World {
        World {
            exports: vec![iface(GREET, &[("greet", "func(string) -> string")])],
            ..World::default()
        }
    }

    fn manifest(extra: &str, names: &[&str]) -> Manifest {
        let mut text = String::from("[app]\nname = \"t\"\n");
        for n in names {
            text.push_str(&format!("[components.{n}]\nwasm = \"{n}.wasm\"\n"));
        }
        text.push_str(extra);
        Manifest::from_str(&text, Path::new("weft.toml")).unwrap()
    }

    fn run(m: &Manifest, worlds: Vec<(&str, World)>) -> Result<Resolution, String> {
        let worlds = worlds
            .into_iter()
            .map(|(n, w)| (n.to_string(), w))
            .collect();
        resolve(Path::new("weft.toml"), m, &worlds).map_err(|e| e.to_string())
    }

    #[test]
    fn import_goes_to_the_one_exporter() {
        let m = manifest("", &["front", "greeter"]);
        let r = run(&m, vec![("front", importer()), ("greeter", exporter())]).unwrap();
        assert_eq!(
            r.wires["front"],
            vec![
                Wire {
                    import: "wasi:cli/stdout@0.2.0".into(),
                    provider: Provider::Capability(
                        capability::for_interface("wasi:cli/environment").unwrap()
                    )
                },
                Wire {
                    import: GREET.into(),
                    provider: Provider::Component {
                        name: "greeter".into(),
                        export: GREET.into()
                    }
                },
            ]
        );
    }

    #[test]
    fn missing_provider_is_named() {
        let m = manifest("", &["front"]);
        let err = run(&m, vec![("front", importer())]).unwrap_err();
        assert!(
            err.contains("weft.toml: component 'front', import 'demo:hello/greeter@0.1.0': no component exports it"),
            "{err}"
        );
    }

    #[test]
    fn two_providers_need_a_link() {
        let m = manifest("", &["a", "b", "front"]);
        let worlds = vec![("a", exporter()), ("b", exporter()), ("front", importer())];
        let err = run(&m, worlds.clone()).unwrap_err();
        assert!(err.contains("a and b export it"), "{err}");
        assert!(
            err.contains("[links] \"front/demo:hello/greeter\" = \"a\""),
            "{err}"
        );

        let linked = manifest(
            "[links]\n\"front/demo:hello/greeter\" = \"b\"\n",
            &["a", "b", "front"],
        );
        let r = run(&linked, worlds).unwrap();
        assert!(
            matches!(&r.wires["front"][1].provider, Provider::Component { name, .. } if name == "b")
        );
    }

    #[test]
    fn type_mismatch_is_refused_and_resources_are_linked() {
        let m = manifest("", &["front", "greeter"]);
        let mut other = exporter();
        other.exports[0].functions[0].signature = "func(u32) -> string".into();
        let err = run(&m, vec![("front", importer()), ("greeter", other)]).unwrap_err();
        assert!(
            err.contains(
                "has type func(string) -> string here but func(u32) -> string in 'greeter'"
            ),
            "{err}"
        );

        let mut front = importer();
        front.imports[1].functions[0] = func("greet", "func(borrow<resource>)");
        let mut back = exporter();
        back.exports[0].functions[0] = func("greet", "func(borrow<resource>)");
        let r = run(&m, vec![("front", front), ("greeter", back)]).unwrap();
        assert!(
            matches!(&r.wires["front"][1].provider, Provider::Component { name, .. } if name == "greeter")
        );
    }

    #[test]
    fn ungranted_capability_says_which_grant() {
        let m = manifest("", &["c"]);
        let world = World {
            imports: vec![iface("wasi:keyvalue/store@0.2.0-draft", &[])],
            ..World::default()
        };
        let err = run(&m, vec![("c", world)]).unwrap_err();
        assert!(err.contains("the 'keyvalue' capability is not granted; add it under [components.c.grants], such as keyvalue = [\"BUCKET\"]"), "{err}");
    }

    #[test]
    fn listener_needs_an_http_handler() {
        let m = manifest(
            "[listeners.web]\ncomponent = \"greeter\"\naddress = \"127.0.0.1:0\"\n",
            &["front", "greeter"],
        );
        let err = run(&m, vec![("front", importer()), ("greeter", exporter())]).unwrap_err();
        assert!(
            err.contains(
                "listener 'web': component 'greeter' does not export wasi:http/incoming-handler"
            ),
            "{err}"
        );
        assert!(err.contains("components that do: front"), "{err}");
    }

    #[test]
    fn cycles_resolve() {
        let m = manifest("", &["a", "b"]);
        let a = World {
            imports: vec![iface("demo:x/pong", &[])],
            exports: vec![iface("demo:x/ping", &[])],
            ..World::default()
        };
        let b = World {
            imports: vec![iface("demo:x/ping", &[])],
            exports: vec![iface("demo:x/pong", &[])],
            ..World::default()
        };
        assert!(run(&m, vec![("a", a), ("b", b)]).is_ok());
    }

    /// The shop layout of issue 7: `cart` and `catalog` `use` a `types`
    /// interface, which in turn `use`s a record from another package; every
    /// component imports both types interfaces, and nobody exports them.
    fn shop() -> Vec<(&'static str, World)> {
        const TYPES: &str = "demo:shop/types@0.1.0";
        const MONEY: &str = "demo:common/money@0.1.0";
        const LOOKUP: (&str, &str) = (
            "lookup",
            "func(string) -> result<record { sku: string }, variant { unknown-sku(string) }>",
        );
        const RESERVE: (&str, &str) = (
            "reserve",
            "func(string, u32) -> result<u32, variant { unknown-sku(string) }>",
        );
        const ADD: (&str, &str) = (
            "add",
            "func(record { sku: string, qty: u32 }) -> record { cents: u64 }",
        );
        let types = || vec![iface(TYPES, &[]), iface(MONEY, &[])];
        let with = |mut base: Vec<Interface>, more: Vec<Interface>| {
            base.extend(more);
            base
        };
        vec![
            (
                "front",
                World {
                    imports: with(
                        types(),
                        vec![
                            iface("demo:shop/catalog@0.1.0", &[LOOKUP]),
                            iface("demo:shop/cart@0.1.0", &[ADD]),
                        ],
                    ),
                    ..World::default()
                },
            ),
            (
                "cart",
                World {
                    imports: with(
                        types(),
                        vec![
                            iface("demo:shop/catalog@0.1.0", &[LOOKUP]),
                            iface("demo:shop/stock@0.1.0", &[RESERVE]),
                        ],
                    ),
                    exports: vec![iface("demo:shop/cart@0.1.0", &[ADD])],
                    ..World::default()
                },
            ),
            (
                "inventory",
                World {
                    imports: types(),
                    exports: vec![
                        iface("demo:shop/catalog@0.1.0", &[LOOKUP]),
                        iface("demo:shop/stock@0.1.0", &[RESERVE]),
                    ],
                    ..World::default()
                },
            ),
            (
                "pricing",
                World {
                    imports: with(types(), vec![iface("demo:shop/catalog@0.1.0", &[LOOKUP])]),
                    ..World::default()
                },
            ),
        ]
    }

    fn provider_of(r: &Resolution, component: &str, import: &str) -> Provider {
        r.wires[component]
            .iter()
            .find(|w| w.import == import)
            .unwrap_or_else(|| panic!("{component} has no wire for {import}"))
            .provider
            .clone()
    }

    fn served_by(name: &str, export: &str) -> Provider {
        Provider::Component {
            name: name.into(),
            export: export.into(),
        }
    }

    #[test]
    fn types_only_interfaces_need_no_provider() {
        let m = manifest("", &["front", "cart", "inventory", "pricing"]);
        let r = run(&m, shop()).unwrap();
        for component in ["front", "cart", "inventory", "pricing"] {
            for types in ["demo:shop/types@0.1.0", "demo:common/money@0.1.0"] {
                assert_eq!(provider_of(&r, component, types), Provider::TypesOnly);
            }
        }
    }

    #[test]
    fn one_component_serves_two_interfaces_to_two_callers() {
        let m = manifest("", &["front", "cart", "inventory", "pricing"]);
        let r = run(&m, shop()).unwrap();
        let catalog = "demo:shop/catalog@0.1.0";
        let stock = "demo:shop/stock@0.1.0";
        assert_eq!(
            provider_of(&r, "front", catalog),
            served_by("inventory", catalog)
        );
        assert_eq!(
            provider_of(&r, "cart", stock),
            served_by("inventory", stock)
        );
        assert_eq!(
            provider_of(&r, "front", "demo:shop/cart@0.1.0"),
            served_by("cart", "demo:shop/cart@0.1.0")
        );
    }

    #[test]
    fn three_components_import_one_interface() {
        let m = manifest("", &["front", "cart", "inventory", "pricing"]);
        let r = run(&m, shop()).unwrap();
        let catalog = "demo:shop/catalog@0.1.0";
        for caller in ["front", "cart", "pricing"] {
            assert_eq!(
                provider_of(&r, caller, catalog),
                served_by("inventory", catalog)
            );
        }
    }

    #[test]
    fn a_types_only_interface_does_not_shadow_a_capability() {
        // wasi:keyvalue/types-like interfaces stay with their capability,
        // where its grant is checked, even when they hold no functions.
        let m = manifest("", &["c"]);
        let world = World {
            imports: vec![
                iface("wasi:keyvalue/store@0.2.0-draft", &[]),
                iface("wasi:cli/environment@0.2.0", &[]),
            ],
            ..World::default()
        };
        let err = run(&m, vec![("c", world.clone())]).unwrap_err();
        assert!(
            err.contains("the 'keyvalue' capability is not granted"),
            "{err}"
        );
        let granted = manifest("[components.c.grants]\nkeyvalue = [\"b\"]\n", &["c"]);
        let r = run(&granted, vec![("c", world)]).unwrap();
        assert_eq!(
            provider_of(&r, "c", "wasi:cli/environment@0.2.0"),
            Provider::Capability(capability::for_interface("wasi:cli/environment").unwrap())
        );
    }

    #[test]
    fn a_resource_without_a_provider_is_named() {
        let m = manifest("", &["front"]);
        let mut types = iface("demo:shop/types@0.1.0", &[]);
        types.resources = vec!["receipt".into()];
        let world = World {
            imports: vec![types],
            ..World::default()
        };
        let err = run(&m, vec![("front", world)]).unwrap_err();
        assert!(
            err.contains("import 'demo:shop/types@0.1.0': it declares resource 'receipt' and no component exports it"),
            "{err}"
        );
        assert!(
            err.contains("export this interface from that component"),
            "{err}"
        );
    }

    #[test]
    fn a_resource_goes_to_the_component_that_exports_it() {
        let m = manifest("", &["front", "greeter"]);
        let mut front = importer();
        front.imports[1].resources = vec!["session".into()];
        let mut back = exporter();
        back.exports[0].resources = vec!["session".into()];
        let r = run(&m, vec![("front", front), ("greeter", back)]).unwrap();
        assert_eq!(
            r.wires["front"][1].provider,
            Provider::Component {
                name: "greeter".into(),
                export: GREET.into()
            }
        );
    }

    /// `front` imports greeter at `import`; `greeter` exports it at `export`.
    fn versions(import: &str, export: &str) -> Result<Resolution, String> {
        let m = manifest("", &["front", "greeter"]);
        let mut front = importer();
        front.imports[1].name = format!("demo:hello/greeter@{import}");
        let mut back = exporter();
        back.exports[0].name = format!("demo:hello/greeter@{export}");
        run(&m, vec![("front", front), ("greeter", back)])
    }

    #[test]
    fn a_compatible_version_is_served() {
        let r = versions("0.1.0", "0.1.2").unwrap();
        assert_eq!(
            provider_of(&r, "front", "demo:hello/greeter@0.1.0"),
            served_by("greeter", "demo:hello/greeter@0.1.2")
        );
        assert!(versions("1.2.0", "1.0.0").is_ok());
    }

    #[test]
    fn an_incompatible_version_is_refused_with_the_reason() {
        let err = versions("0.1.0", "0.2.0").unwrap_err();
        assert!(
            err.contains("import 'demo:hello/greeter@0.1.0': 'greeter' exports demo:hello/greeter@0.2.0, which cannot serve demo:hello/greeter@0.1.0 (before 1.0, a new minor version is a breaking change); build both components against the same version of the WIT"),
            "{err}"
        );
        let err = versions("1.0.0", "2.0.0").unwrap_err();
        assert!(err.contains("(their major versions differ)"), "{err}");
        let err = versions("0.2.0-draft", "0.2.0-rc.1").unwrap_err();
        assert!(
            err.contains("a pre-release version is compatible only with itself"),
            "{err}"
        );
    }

    #[test]
    fn a_link_to_an_incompatible_version_says_so() {
        let m = manifest(
            "[links]\n\"front/demo:hello/greeter\" = \"greeter\"\n",
            &["front", "greeter"],
        );
        let mut back = exporter();
        back.exports[0].name = "demo:hello/greeter@0.2.0".into();
        let err = run(&m, vec![("front", importer()), ("greeter", back)]).unwrap_err();
        assert!(
            err.contains("'greeter' exports demo:hello/greeter@0.2.0, which cannot serve"),
            "{err}"
        );
    }

    #[test]
    fn semver_compatibility() {
        use crate::world::compatibility;
        let ok = |a: &str, b: &str| compatibility(a, b).is_ok();
        assert!(ok("a:b/c@0.1.0", "a:b/c@0.1.9"));
        assert!(ok("a:b/c@0.1.9", "a:b/c@0.1.0"));
        assert!(ok("a:b/c@1.0.0", "a:b/c@1.7.3"));
        assert!(ok("a:b/c", "a:b/c"));
        assert!(ok("a:b/c@0.2.0-draft", "a:b/c@0.2.0-draft"));
        assert!(!ok("a:b/c@0.1.0", "a:b/c@0.2.0"));
        assert!(!ok("a:b/c@0.0.1", "a:b/c@0.0.2"));
        assert!(!ok("a:b/c@1.0.0", "a:b/c@2.0.0"));
        assert!(!ok("a:b/c@0.2.0-draft", "a:b/c@0.2.0"));
        assert!(!ok("a:b/c", "a:b/c@0.1.0"));
    }

    #[test]
    fn each_import_finds_its_own_track_among_several_versions() {
        let m = manifest("", &["old", "new", "both"]);
        let importer_of = |version: &str| World {
            imports: vec![iface(
                &format!("demo:x/handler@{version}"),
                &[("handle", "func(string)")],
            )],
            ..World::default()
        };
        let both = World {
            exports: vec![
                iface("demo:x/handler@0.2.0", &[("handle", "func(string)")]),
                iface("demo:x/handler@0.3.1", &[("handle", "func(string)")]),
            ],
            ..World::default()
        };
        let worlds = vec![
            ("old", importer_of("0.2.0")),
            ("new", importer_of("0.3.0")),
            ("both", both),
        ];
        let r = run(&m, worlds).unwrap();
        assert_eq!(
            provider_of(&r, "old", "demo:x/handler@0.2.0"),
            served_by("both", "demo:x/handler@0.2.0")
        );
        assert_eq!(
            provider_of(&r, "new", "demo:x/handler@0.3.0"),
            served_by("both", "demo:x/handler@0.3.1")
        );
    }

    #[test]
    fn a_wasi_interface_weft_does_not_provide_says_so_before_its_resources() {
        let m = manifest("", &["c"]);
        let mut blobs = iface(
            "wasi:messaging/types@0.2.0-draft",
            &[("[method]client.name", "func(borrow<resource>) -> string")],
        );
        blobs.resources = vec!["client".into()];
        let world = World {
            imports: vec![blobs],
            ..World::default()
        };
        let err = run(&m, vec![("c", world)]).unwrap_err();
        assert!(
            err.contains("no component exports it and weft provides no such capability"),
            "{err}"
        );
    }
}
