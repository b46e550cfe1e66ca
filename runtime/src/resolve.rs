//! Resolution: deciding, before anything runs, who serves every import.
//!
//! Each import of each component goes to exactly one provider: the component
//! named for it in `[links]`, else the host capability for a WASI interface,
//! else the one component that exports it. Everything that cannot work is
//! reported together, each error naming the manifest, the component, the
//! import and the candidates, so that a user fixes them in one pass.
//!
//! Cycles between components are allowed: calls are routed through instance
//! pools at call time, so A may call B while B calls A (each call borrows its
//! own instance).

use crate::capability::Capability;
use crate::manifest::{Manifest, names_interface, unversioned};
use crate::world::{Interface, World};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The interface a listener's component must export.
pub const HTTP_HANDLER: &str = "wasi:http/incoming-handler";

/// Who serves one import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// A host capability.
    Capability(Capability),
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
            let exporters: Vec<&str> = worlds
                .iter()
                .filter(|(other, w)| {
                    *other != name && w.export_named(unversioned(&import.name)).is_some()
                })
                .map(|(other, _)| other.as_str())
                .collect();
            let provider = if let Some(linked) = manifest.link_for(name, &import.name) {
                if exporters.contains(&linked) {
                    Some(linked)
                } else {
                    error(
                        at.clone(),
                        format!(
                            "[links] names '{linked}', but '{linked}' does not export it; {}",
                            candidates(&exporters)
                        ),
                    );
                    continue;
                }
            } else if let Some(cap) = Capability::for_interface(&import.name) {
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
            } else {
                match exporters.as_slice() {
                    [one] => Some(*one),
                    [] if import.name.starts_with("wasi:") => {
                        error(
                            at.clone(),
                            format!(
                                "no component exports it and weft provides no such capability \
                                 (weft provides {})",
                                Capability::PROVIDED
                            ),
                        );
                        None
                    }
                    [] => {
                        error(
                            at.clone(),
                            "no component exports it; add the component that implements it to \
                             [components]"
                                .into(),
                        );
                        None
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
                        None
                    }
                }
            };
            let Some(provider) = provider else { continue };
            let export = worlds[provider]
                .export_named(unversioned(&import.name))
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
        let serves = worlds
            .get(&spec.component)
            .is_some_and(|w| w.export_named(HTTP_HANDLER).is_some());
        if !serves {
            let handlers: Vec<&str> = worlds
                .iter()
                .filter(|(_, w)| w.export_named(HTTP_HANDLER).is_some())
                .map(|(n, _)| n.as_str())
                .collect();
            error(
                format!("listener '{listener}'"),
                format!(
                    "component '{}' does not export {HTTP_HANDLER}, so it cannot serve HTTP; {}",
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

/// Why `import` cannot be served by `export` of component `provider`.
fn mismatches(import: &Interface, export: &Interface, provider: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for f in &import.functions {
        match export.function(&f.name) {
            None => problems.push(format!(
                "'{provider}' exports {} without function '{}'; rebuild both components against the same WIT",
                export.name, f.name
            )),
            Some(e) if e.signature != f.signature => problems.push(format!(
                "function '{}' has type {} here but {} in '{provider}'; rebuild both components against the same WIT",
                f.name, f.signature, e.signature
            )),
            Some(_) if f.has_handles => problems.push(format!(
                "function '{}' passes a resource, stream or future ({}), which cannot be copied \
                 between components; pass plain values instead",
                f.name, f.signature
            )),
            Some(_) => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::FuncSig;

    fn func(name: &str, signature: &str) -> FuncSig {
        FuncSig {
            name: name.into(),
            signature: signature.into(),
            has_handles: signature.contains("resource"),
        }
    }

    fn iface(name: &str, functions: &[(&str, &str)]) -> Interface {
        Interface {
            name: name.into(),
            functions: functions.iter().map(|(n, s)| func(n, s)).collect(),
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
                    provider: Provider::Capability(Capability::Wasi)
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
    fn type_mismatch_and_resources_are_refused() {
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
        let err = run(&m, vec![("front", front), ("greeter", back)]).unwrap_err();
        assert!(err.contains("passes a resource"), "{err}");
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
}
