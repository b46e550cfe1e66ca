//! Host capabilities as plug-ins: which capability serves which WASI
//! interface, whether a component's grants allow it, how it links, what
//! state it keeps, and where it may run.
//!
//! A capability is one module that implements [`Capability`], and one line
//! in [`ALL`]. Resolution asks [`for_interface`] who serves an import and
//! [`Capability::is_granted`] whether the component may have it; linking
//! calls [`Capability::link`]; loading an app calls [`Capability::open`]
//! once per process (a store, a client) and [`Capability::sandbox`] once
//! per component (its granted buckets, hosts or values), which the host
//! bindings read back from the [`Sandbox`](crate::host::Sandbox) with
//! [`Parts::get`]. State of one instance (an open bucket, a stream) lives
//! in that instance's resource table. [`Capability::embedded_stores`] says
//! which of a component's stores live in one process only, which is what
//! `weft deploy`'s workers and `weft kube` check before they place it.
//!
//! Deny by default: clocks, random, stdout and stderr are ambient; the other
//! `wasi:cli`, `wasi:filesystem` and `wasi:sockets` interfaces are linked so
//! that ordinary toolchain output loads, but they see no environment beyond
//! the granted variables, no files and no network. Key-value, blob storage
//! and outgoing HTTP must be granted in the manifest.

use crate::engine::Concurrency;
use crate::host::{self, HostState};
use crate::kv::KeyValueStore;
use crate::manifest::{ComponentSpec, Grants, Manifest, ManifestFile, unversioned};
use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;
use wasmtime::component::Linker;

/// A capability that the host provides.
pub trait Capability: Send + Sync + 'static {
    /// Its name, as errors and `[grants]` say it: `keyvalue`.
    fn name(&self) -> &'static str;

    /// Whether it serves the interface `interface`, named without its
    /// version (`wasi:keyvalue/store`).
    fn serves(&self, interface: &str) -> bool;

    /// Whether `grants` allow a component to link it at all; ambient
    /// capabilities need no grant.
    fn is_granted(&self, _grants: &Grants) -> bool {
        true
    }

    /// An example `[grants]` line that allows it, for those that need one.
    fn grant_example(&self) -> Option<&'static str> {
        None
    }

    /// Adds its interfaces to a component's linker; for a component on
    /// the concurrent engine, their WASI 0.3 forms too, where they have one.
    fn link(
        &self,
        linker: &mut Linker<HostState>,
        concurrency: Concurrency,
    ) -> wasmtime::Result<()>;

    /// What this process keeps for it (a store, a client), made once when
    /// an app starts here and handed to [`Capability::sandbox`]; `None`
    /// when it keeps nothing.
    fn open(&self, _process: &Process<'_>) -> anyhow::Result<Option<Shared>> {
        Ok(None)
    }

    /// Adds what one component's instances share (its granted buckets, its
    /// hosts) to `parts`. `shared` is what [`Capability::open`] made.
    fn sandbox(&self, _component: &ComponentContext<'_>, _parts: &mut Parts) {}

    /// The stores of `component` that live in one process's data
    /// directory: a component with any runs only where that process is.
    fn embedded_stores(&self, _manifest: &Manifest, _component: &ComponentSpec) -> Vec<Embedded> {
        Vec::new()
    }
}

/// Every capability weft's host provides. A new capability is its module
/// and one line here.
pub const ALL: &[&dyn Capability] = &[
    &host::Wasi,
    &host::HttpTypes,
    &host::outgoing::OutgoingHttp,
    &host::keyvalue::KeyValue,
    &host::blobstore::Blobstore,
    &host::config::Config,
    &host::logging::Logging,
];

/// The capability that serves `interface`, if any does.
pub fn for_interface(interface: &str) -> Option<CapabilityRef> {
    let name = unversioned(interface);
    ALL.iter()
        .find(|c| c.serves(name))
        .map(|c| CapabilityRef(*c))
}

/// The interface packages weft provides, for error messages.
pub const PROVIDED: &str = "wasi:cli, wasi:io, wasi:clocks, wasi:random, \
    wasi:filesystem, wasi:sockets, wasi:http, wasi:keyvalue, wasi:blobstore, wasi:config, \
    wasi:logging";

/// A capability, compared and ordered by name, so that resolution's wires
/// can hold one.
#[derive(Clone, Copy)]
pub struct CapabilityRef(pub &'static dyn Capability);

impl std::ops::Deref for CapabilityRef {
    type Target = dyn Capability;
    fn deref(&self) -> &Self::Target {
        self.0
    }
}

impl PartialEq for CapabilityRef {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for CapabilityRef {}

impl PartialOrd for CapabilityRef {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CapabilityRef {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name().cmp(other.name())
    }
}

impl fmt::Debug for CapabilityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for CapabilityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a process holds for one capability, shared by its components.
pub type Shared = Arc<dyn Any + Send + Sync>;

/// The process an app starts in, as [`Capability::open`] sees it.
pub struct Process<'a> {
    /// The app's manifest.
    pub manifest: &'a ManifestFile,
    /// The stores this process reaches for embedded backends.
    pub embedded: &'a EmbeddedStores,
}

/// The stores that embedded backends use in this process: opened here
/// (`weft run`, the manager), or reached through the process that holds
/// them (a worker of `weft deploy`).
#[derive(Clone, Default)]
pub struct EmbeddedStores {
    /// Key-value buckets on the embedded backend.
    pub keyvalue: Option<Arc<dyn KeyValueStore>>,
    /// The folder of blob containers on the embedded backend
    /// (`DATA_DIR/blobs`), which every process of the machine opens itself.
    pub blobs: Option<std::path::PathBuf>,
}

/// One component, as [`Capability::sandbox`] sees it.
pub struct ComponentContext<'a> {
    /// Its name in the manifest.
    pub name: &'a str,
    /// Its manifest entry.
    pub spec: &'a ComponentSpec,
    /// What the capability's [`Capability::open`] made in this process.
    pub shared: Option<&'a Shared>,
}

/// One store of a component that lives in one process only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embedded {
    /// The manifest table that would move it to a server: `keyvalue.counts`.
    pub field: String,
    /// What it is, for errors: "bucket 'counts'".
    pub what: String,
    /// What kind of store it is: "bucket".
    pub kind: &'static str,
    /// The embedded backend that holds it: "redb".
    pub backend: &'static str,
    /// What to write in the manifest to move it to a server.
    pub fix: String,
}

/// Every store of `component` that lives in one process only, whichever
/// capability keeps it.
pub fn embedded_stores(manifest: &Manifest, component: &ComponentSpec) -> Vec<Embedded> {
    ALL.iter()
        .flat_map(|c| c.embedded_stores(manifest, component))
        .collect()
}

/// What each capability keeps for one component, by type: the host
/// bindings of a capability read their own part back.
#[derive(Default)]
pub struct Parts(Vec<(TypeId, Box<dyn Any + Send + Sync>)>);

impl Parts {
    /// Adds (or replaces) the part of type `T`.
    pub fn insert<T: Any + Send + Sync>(&mut self, part: T) {
        self.0.retain(|(t, _)| *t != TypeId::of::<T>());
        self.0.push((TypeId::of::<T>(), Box::new(part)));
    }

    /// The part of type `T`, if its capability added one.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0
            .iter()
            .find(|(t, _)| *t == TypeId::of::<T>())
            .and_then(|(_, part)| part.downcast_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_map_to_capabilities() {
        let cases = [
            ("wasi:cli/environment@0.2.0", Some("wasi")),
            ("wasi:sockets/tcp@0.2.4", Some("wasi")),
            ("wasi:http/types@0.2.4", Some("http")),
            ("wasi:http/outgoing-handler@0.2.4", Some("outgoing-http")),
            ("wasi:keyvalue/atomics@0.2.0-draft", Some("keyvalue")),
            ("wasi:config/store@0.2.0-rc.1", Some("config")),
            ("wasi:logging/logging", Some("logging")),
            ("wasi:http/incoming-handler@0.2.4", None),
            ("wasi:blobstore/container", Some("blobstore")),
            ("demo:hello/greeter", None),
        ];
        for (interface, expected) in cases {
            assert_eq!(
                for_interface(interface).map(|c| c.name()),
                expected,
                "{interface}"
            );
        }
    }

    #[test]
    fn only_stores_and_outgoing_http_need_grants() {
        let none = Grants::default();
        let needs: Vec<&str> = ALL
            .iter()
            .filter(|c| !c.is_granted(&none))
            .map(|c| c.name())
            .collect();
        assert_eq!(needs, ["outgoing-http", "keyvalue", "blobstore"]);
        for c in ALL {
            assert_eq!(
                c.grant_example().is_some(),
                !c.is_granted(&none),
                "{}: a capability that needs a grant says how to give it",
                c.name()
            );
        }
        let kv = Grants {
            keyvalue: vec!["counts".into()],
            ..Grants::default()
        };
        assert!(
            for_interface("wasi:keyvalue/store")
                .unwrap()
                .is_granted(&kv)
        );
    }

    #[test]
    fn parts_hold_one_value_per_type() {
        let mut parts = Parts::default();
        parts.insert(1u32);
        parts.insert(String::from("a"));
        parts.insert(2u32);
        assert_eq!(parts.get::<u32>(), Some(&2));
        assert_eq!(parts.get::<String>().map(String::as_str), Some("a"));
        assert_eq!(parts.get::<u64>(), None);
    }
}
