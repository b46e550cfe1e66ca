//! Linking: every import of a component is defined in its own `Linker`,
//! either as a host capability or as host functions that forward the call to
//! another component (dynamic, host-mediated linking).
//!
//! A forwarder borrows an instance of the callee from its pool and calls the
//! export with the same values, which are copied from the caller's store to
//! the callee's. Component binaries never change; a later deployment can
//! route the same forwarders to another process instead.
//!
//! Forwarders find their callee's pool through a [`PoolSlot`], filled once
//! every pool exists, which is what lets components import from each other
//! in a cycle.

use crate::capability::Capability;
use crate::host::{self, HostState};
use crate::pool::InstancePool;
use crate::resolve::{Provider, Wire};
use crate::world::Interface;
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use wasmtime::Engine;
use wasmtime::component::{Component, ComponentExportIndex, Linker, Val};

/// Where a component's pool will be, once it exists.
pub type PoolSlot = Arc<OnceLock<Arc<InstancePool>>>;

/// A callee of forwarded calls.
pub struct Callee<'a> {
    /// The callee's compiled component, for export lookups.
    pub component: &'a Component,
    /// Its pool, filled later.
    pub slot: PoolSlot,
}

/// One forwarded function: a fixed export of a fixed callee.
struct Forward {
    slot: PoolSlot,
    export: ComponentExportIndex,
    /// "greeter: demo:hello/greeter@0.1.0#greet", for errors.
    label: String,
}

impl Forward {
    async fn call(&self, params: &[Val], results: &mut [Val]) -> wasmtime::Result<()> {
        let pool = self.slot.get().ok_or_else(|| {
            wasmtime::format_err!("{} was called before the app finished loading", self.label)
        })?;
        pool.with_instance(async |warm| {
            let func = warm
                .instance
                .get_func(&mut warm.store, self.export)
                .ok_or_else(|| wasmtime::format_err!("{} is not a function", self.label))?;
            func.call_async(&mut warm.store, params, results).await
        })
        .await
        .map_err(|e| e.context(format!("call to {} failed", self.label)))
    }
}

/// Builds the linker of one component: the capabilities its wires use, and
/// a forwarder for every function of every interface another component serves.
pub fn linker_for<'c>(
    engine: &Engine,
    wires: &[Wire],
    imports: &[Interface],
    callee: impl Fn(&str) -> Callee<'c>,
) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    let caps: BTreeSet<Capability> = wires
        .iter()
        .filter_map(|w| match w.provider {
            Provider::Capability(cap) => Some(cap),
            Provider::Component { .. } => None,
        })
        .collect();
    host::add_capabilities(&mut linker, &caps)?;

    for wire in wires {
        let Provider::Component { name, export } = &wire.provider else {
            continue;
        };
        let interface = imports
            .iter()
            .find(|i| i.name == wire.import)
            .expect("every wire comes from an import");
        let Callee { component, slot } = callee(name);
        let iface_index = component
            .get_export_index(None, export)
            .ok_or_else(|| wasmtime::format_err!("component '{name}' has no export {export}"))?;
        let mut instance = linker.instance(&wire.import)?;
        for func in &interface.functions {
            let label = format!("{name}: {export}#{}", func.name);
            let index = component
                .get_export_index(Some(&iface_index), &func.name)
                .ok_or_else(|| wasmtime::format_err!("{label} is not exported"))?;
            let forward = Arc::new(Forward {
                slot: slot.clone(),
                export: index,
                label,
            });
            instance.func_new_async(&func.name, move |_caller, _ty, params, results| {
                let forward = forward.clone();
                Box::new(async move { forward.call(params, results).await })
            })?;
        }
    }
    Ok(linker)
}
