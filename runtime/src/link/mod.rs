//! Linking: every import of a component is defined in its own `Linker`,
//! either as a host capability, as host functions that forward the call to
//! another component (dynamic, host-mediated linking), or, for an interface
//! of plain types only, as an empty instance.
//!
//! Where the callee is in the same group, a forwarder borrows an instance of
//! it from its pool and calls the export with the same values, which are
//! copied from the caller's store to the callee's. Where the callee is in
//! another group, the forwarder is a [`RemoteFunc`] that sends the call
//! through its [`Transport`] (gRPC, from [`crate::rpc`]; this module knows
//! nothing of it). Component binaries never change; only the routing does.
//!
//! Each forwarded function is one [`Forwarder`], which knows its caller,
//! its callee, the caller's group and the deployment's version: the one
//! place a cross-component call goes through, local or remote, and where
//! it is counted ([`crate::telemetry::metrics`]).
//!
//! Forwarders find their callee's pool through a [`PoolSlot`], filled once
//! every pool exists, which is what lets components import from each other
//! in a cycle.
//!
//! A resource that the callee exports is, in the caller, a host resource of
//! a type of its own; functions that pass its handles go through
//! [`handles`], which keeps the callee's instance that owns them.

pub mod handles;
pub mod pipes;
pub(crate) mod typed;

pub use typed::{SHAPES as TYPED_SHAPES, use_val_path_only};

use crate::call::{RemoteFunc, Transport};
use crate::capability::CapabilityRef;
use crate::codec::typed::WireList;
use crate::codec::{self, FuncTypes};
use crate::engine::Concurrency;
use crate::host::{self, HostState};
use crate::pool::FlowingCall;
use crate::pool::InstancePool;
use crate::resolve::{Provider, Wire};
use crate::telemetry::metrics::{MethodKey, MethodStats, Metrics};
use crate::telemetry::trace::{self, CallLabels, SpanSpec};
use crate::version::Version;
use crate::world::Interface;
use handles::{Handles, Inbound, ResourceKey, ResourceTypes, Returned};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::SpanKind;
use pipes::{End, Ends};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use wasmtime::Engine;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{
    Component, ComponentExportIndex, ComponentNamedList, Lift, Linker, LinkerInstance, Lower,
    ResourceType, Val,
};

/// Where a component's pool will be, once it exists.
pub type PoolSlot = Arc<OnceLock<Arc<InstancePool>>>;

/// A callee of forwarded calls.
pub enum Callee<'a> {
    /// In this process.
    Local {
        /// The callee's compiled component, for export lookups.
        component: &'a Component,
        /// Its pool, filled later.
        slot: PoolSlot,
    },
    /// In another group, reached through a transport.
    Remote {
        /// What carries calls to the replicas of its group.
        transport: Arc<dyn Transport>,
        /// The deployment's version, sent with every call.
        version: Version,
    },
}

/// The component whose linker is being built.
pub struct Caller<'a> {
    /// Its name in the manifest.
    pub name: &'a str,
    /// The group it runs in (`main` under `weft run`).
    pub group: &'a str,
    /// Its compiled code, for the types of its imports.
    pub component: &'a Component,
    /// The interfaces it imports.
    pub imports: &'a [Interface],
    /// The app's name.
    pub app: &'a str,
    /// The deployment's version (under `weft run`, the app's own).
    pub version: &'a str,
    /// Where its forwarders count their calls.
    pub metrics: &'a Metrics,
    /// The handles this process's components hold to each other's resources.
    pub handles: &'a Arc<Handles>,
    /// Whether it runs on the concurrent engine.
    pub concurrency: Concurrency,
    /// For a fused group's component, the member that imports each of its
    /// imports: the caller its forwarders name, so that counts and the
    /// callee's checks see the member, as they would unfused.
    pub importers: Option<&'a BTreeMap<String, String>>,
}

impl Caller<'_> {
    /// The component that calls through `import`.
    fn name_for<'s>(&'s self, import: &str) -> &'s str {
        self.importers
            .and_then(|i| i.get(import))
            .map_or(self.name, String::as_str)
    }
}

/// One forwarded function: a caller's import served by a callee's export,
/// in this process or in another group.
pub struct Forwarder {
    /// The calling component.
    pub caller: String,
    /// The caller's group.
    pub group: String,
    /// The component that serves the call.
    pub callee: String,
    /// The interface, as the callee exports it.
    pub interface: String,
    /// The function's name.
    pub function: String,
    /// The app's name.
    pub app: String,
    /// The deployment's version.
    pub version: String,
    /// "greeter: demo:hello/greeter@0.1.0#greet", for errors: made once,
    /// since every local call passes it down.
    label: String,
    /// "demo:hello/greeter@0.1.0/greet", its spans' name.
    span_name: String,
    route: Route,
    /// Its calls, errors, latency and bytes; `None` with telemetry off,
    /// which also means no spans.
    stats: Option<Arc<MethodStats>>,
    /// The codec's view of its values, to count their bytes on the `Val`
    /// path; `None` when they hold handles, which never leave a process.
    types: Option<FuncTypes>,
}

/// Where a forwarded call goes.
enum Route {
    /// A pool of this process, and the export in its instances.
    Local {
        slot: PoolSlot,
        export: ComponentExportIndex,
    },
    /// Another group's replicas.
    Remote(RemoteFunc),
}

impl Forwarder {
    /// Calls the callee with `params`, writing `results`; `deadline` is
    /// when the caller's own call must end.
    async fn call(
        &self,
        deadline: Instant,
        params: &[Val],
        results: &mut [Val],
    ) -> wasmtime::Result<()> {
        let (outcome, elapsed) = self
            .observe(self.route_call(deadline, params, results))
            .await;
        let (Some(stats), Some(elapsed)) = (&self.stats, elapsed) else {
            return outcome;
        };
        let size = |types: &[codec::ValueType], values: &[Val]| {
            codec::encoded_len(types, values).unwrap_or(0)
        };
        let (sent, received) = match &self.types {
            Some(t) if outcome.is_ok() => (size(&t.params, params), size(&t.results, results)),
            Some(t) => (size(&t.params, params), 0),
            None => (0, 0),
        };
        stats.record(elapsed, outcome.is_err(), sent, received);
        outcome
    }

    /// Runs `work`, this forwarder's call, in a span of its own (when
    /// tracing is on), and times it (when counting is on).
    async fn observe<T>(
        &self,
        work: impl Future<Output = wasmtime::Result<T>>,
    ) -> (wasmtime::Result<T>, Option<Duration>) {
        let started = self.stats.is_some().then(Instant::now);
        let kind = match self.route {
            Route::Local { .. } => SpanKind::Internal,
            Route::Remote(_) => SpanKind::Client,
        };
        let attributes = || {
            CallLabels {
                app: &self.app,
                version: &self.version,
                group: &self.group,
                caller: &self.caller,
                callee: &self.callee,
                interface: &self.interface,
                method: &self.function,
            }
            .attributes()
        };
        let span = self.stats.is_some().then(|| {
            trace::child_of_current(&SpanSpec {
                name: &self.span_name,
                kind,
                attributes: &attributes,
            })
        });
        let outcome = match span.flatten() {
            Some(cx) => {
                let outcome = work.with_context(cx.clone()).await;
                trace::end(
                    &cx,
                    outcome.as_ref().err().map(|e| e as &dyn std::fmt::Display),
                );
                outcome
            }
            // The callee runs in the caller's context, trace and all.
            None => work.await,
        };
        (outcome, started.map(|s| s.elapsed()))
    }

    /// The callee's pool in this process, once the app has loaded.
    fn pool<'s>(&self, slot: &'s PoolSlot) -> wasmtime::Result<&'s Arc<InstancePool>> {
        slot.get().ok_or_else(|| {
            wasmtime::format_err!("{} was called before the app finished loading", self.label)
        })
    }

    async fn route_call(
        &self,
        deadline: Instant,
        params: &[Val],
        results: &mut [Val],
    ) -> wasmtime::Result<()> {
        match &self.route {
            Route::Local { slot, export } => {
                let pool = self.pool(slot)?;
                pool.call_export(*export, &self.label, params, results)
                    .await
            }
            Route::Remote(remote) => remote.call(deadline, params, results).await,
        }
    }

    /// Calls the callee for a caller on the concurrent engine: `ends` are
    /// the streams and futures `params` carry; the results come back with
    /// theirs.
    async fn call_flowing(
        &self,
        deadline: Instant,
        params: Vec<Val>,
        ends: Vec<End>,
        types: &Arc<(Ends, Ends)>,
    ) -> wasmtime::Result<(Vec<Val>, Vec<End>)> {
        let work = async {
            match &self.route {
                Route::Local { slot, export } => {
                    let pool = self.pool(slot)?;
                    if pool.concurrency() == Concurrency::Off {
                        // A callee on the plain engine has no streams.
                        let mut results = vec![Val::Bool(false); types.1.len()];
                        pool.call_export(*export, &self.label, &params, &mut results)
                            .await?;
                        return Ok((results, Vec::new()));
                    }
                    pool.call_flowing(FlowingCall {
                        export: *export,
                        label: Arc::from(self.label.as_str()),
                        params,
                        ends,
                        types: types.clone(),
                        deadline,
                    })
                    .await
                }
                Route::Remote(remote) if types.0.any() || types.1.any() => {
                    remote.call_flowing(deadline, &params, ends).await
                }
                Route::Remote(remote) => {
                    let mut results = vec![Val::Bool(false); types.1.len()];
                    remote.call(deadline, &params, &mut results).await?;
                    Ok((results, Vec::new()))
                }
            }
        };
        let (outcome, elapsed) = self.observe(work).await;
        if let (Some(stats), Some(elapsed)) = (&self.stats, elapsed) {
            stats.record(elapsed, outcome.is_err(), 0, 0);
        }
        outcome
    }

    /// Calls the callee in this process with `params` that pass handles
    /// (`inbound`, already swapped for the callee's), on the instance that
    /// keeps them; returns the handles that come back in `results`.
    async fn call_here(
        &self,
        handles: &Handles,
        inbound: Inbound,
        deadline: Instant,
        types: &[(ComponentExportIndex, u32)],
        params: &[Val],
        results: &mut [Val],
    ) -> wasmtime::Result<Returned> {
        let label = &self.label;
        let Route::Local { slot, export } = &self.route else {
            unreachable!("call_here is only called for a local route");
        };
        let pool = self.pool(slot)?;
        let work = handles.call(
            pool,
            inbound,
            deadline,
            types,
            results,
            async |warm, results| {
                let func = warm.func(*export, label)?;
                func.call_async(&mut warm.store, params, results).await
            },
        );
        let (outcome, elapsed) = self.observe(work).await;
        if let (Some(stats), Some(elapsed)) = (&self.stats, elapsed) {
            stats.record(elapsed, outcome.is_err(), 0, 0);
        }
        outcome.map_err(|e| e.context(format!("call to {label} failed")))
    }

    /// Calls the callee in another process with `params` that pass handles
    /// (already swapped for their numbers), at `owner`, the replica and
    /// instance that keep them, if any.
    async fn call_there(
        &self,
        handles: &Handles,
        remote: &RemoteFunc,
        owner: Option<&handles::Remote>,
        deadline: Instant,
        params: &[Val],
        results: &mut [Val],
    ) -> wasmtime::Result<crate::call::Reply> {
        let work = handles.call_remote(remote, owner, deadline, params, results);
        let (outcome, elapsed) = self.observe(work).await;
        if let (Some(stats), Some(elapsed)) = (&self.stats, elapsed) {
            let sent = codec::encoded_len(&remote.types.params, params).unwrap_or(0);
            let received = outcome.as_ref().map_or(0, |r| r.payload.len() as u64);
            stats.record(elapsed, outcome.is_err(), sent, received);
        }
        outcome
    }

    /// Calls a method on the typed path on `owner`, the pinned instance
    /// that keeps its handle, with `params` (the callee's handle first).
    async fn call_method<P, R>(
        &self,
        owner: Arc<handles::Pinned>,
        deadline: Instant,
        params: P,
    ) -> wasmtime::Result<R>
    where
        P: ComponentNamedList + Lower + Send + Sync + 'static,
        R: ComponentNamedList + Lift + Send + Sync + 'static,
    {
        let label = &self.label;
        let Route::Local { export, .. } = &self.route else {
            unreachable!("methods on the typed path are only linked to local callees");
        };
        let work = owner.call_on(deadline, async |warm| {
            let func = warm.typed_func::<P, R>(*export, label)?;
            func.call_async(&mut warm.store, params).await
        });
        let (outcome, elapsed) = self.observe(work).await;
        if let (Some(stats), Some(elapsed)) = (&self.stats, elapsed) {
            stats.record(elapsed, outcome.is_err(), 0, 0);
        }
        outcome.map_err(|e| e.context(format!("call to {label} failed")))
    }

    /// Calls the callee with typed values: no `Val` on the way, here or
    /// on the wire.
    async fn call_typed<P, R>(&self, deadline: Instant, params: P) -> wasmtime::Result<R>
    where
        P: ComponentNamedList + Lower + WireList + Send + Sync + 'static,
        R: ComponentNamedList + Lift + WireList + Send + Sync + 'static,
    {
        let sent = if self.stats.is_some() {
            params.encoded_len()
        } else {
            0
        };
        let (outcome, elapsed) = self
            .observe(self.route_typed::<P, R>(deadline, params))
            .await;
        let (Some(stats), Some(elapsed)) = (&self.stats, elapsed) else {
            return outcome;
        };
        let received = outcome.as_ref().map_or(0, |r| r.encoded_len());
        stats.record(elapsed, outcome.is_err(), sent, received);
        outcome
    }

    async fn route_typed<P, R>(&self, deadline: Instant, params: P) -> wasmtime::Result<R>
    where
        P: ComponentNamedList + Lower + WireList + Send + Sync + 'static,
        R: ComponentNamedList + Lift + WireList + Send + Sync + 'static,
    {
        match &self.route {
            Route::Local { slot, export } => {
                let label = &self.label;
                let pool = self.pool(slot)?;
                pool.call_typed(*export, label, params).await
            }
            Route::Remote(remote) => remote.call_typed(deadline, &params).await,
        }
    }
}

/// Builds the linker of one component: the capabilities its wires use, and
/// a forwarder for every function of every interface another component serves.
pub fn linker_for<'c>(
    caller: &Caller<'_>,
    wires: &[Wire],
    callee: impl Fn(&str) -> wasmtime::Result<Callee<'c>>,
) -> wasmtime::Result<Linker<HostState>> {
    let engine = caller.component.engine();
    let mut linker = Linker::new(engine);
    let caps: BTreeSet<CapabilityRef> = wires
        .iter()
        .filter_map(|w| match w.provider {
            Provider::Capability(cap) => Some(cap),
            Provider::TypesOnly | Provider::Component { .. } => None,
        })
        .collect();
    host::add_capabilities(&mut linker, &caps, caller.concurrency)?;
    let resource_types = resource_types(caller, wires, &callee)?;

    for wire in wires {
        let (name, export) = match &wire.provider {
            Provider::Capability(_) => continue,
            // Plain types need no definitions: an empty instance type-checks.
            Provider::TypesOnly => {
                linker.instance(&wire.import)?;
                continue;
            }
            Provider::Component { name, export } => (name, export),
        };
        let interface = caller
            .imports
            .iter()
            .find(|i| i.name == wire.import)
            .expect("every wire comes from an import");
        let mut instance = linker.instance(&wire.import)?;
        for resource in &interface.resources {
            let key = ResourceKey {
                component: name.clone(),
                interface: export.clone(),
                resource: resource.clone(),
            };
            define_resource(
                &mut instance,
                resource,
                caller.handles.payload(key),
                caller.handles,
            )?;
        }
        let callee = callee(name)?;
        let iface_index = match &callee {
            Callee::Local { component, .. } => {
                Some(component.get_export_index(None, export).ok_or_else(|| {
                    wasmtime::format_err!("component '{name}' has no export {export}")
                })?)
            }
            Callee::Remote { .. } => None,
        };
        for func in &interface.functions {
            let func_type = import_func(engine, caller, &wire.import, &func.name)?;
            // `None` when the values hold handles, which never leave a process.
            let types = FuncTypes::of(&func_type);
            let route = match &callee {
                Callee::Local { component, slot } => Route::Local {
                    slot: slot.clone(),
                    export: component
                        .get_export_index(iface_index.as_ref(), &func.name)
                        .ok_or_else(|| {
                            wasmtime::format_err!("{name}: {export}#{} is not exported", func.name)
                        })?,
                },
                Callee::Remote { transport, version } => {
                    let types = types.clone().map_err(|e| {
                        wasmtime::format_err!(
                            "{}: import {}#{}: {e}; components that pass it must be in one group",
                            caller.name,
                            wire.import,
                            func.name
                        )
                    })?;
                    Route::Remote(RemoteFunc {
                        transport: transport.clone(),
                        version: version.clone(),
                        caller: caller.name_for(&wire.import).to_string(),
                        target: name.clone(),
                        interface: export.clone(),
                        function: func.name.clone(),
                        fingerprint: types.fingerprint(),
                        types,
                    })
                }
            };
            // A signature of known shape gets a typed forwarder; every
            // other passes `Val`s.
            let shape = types.as_ref().ok().and_then(typed::shape_of);
            let stats = crate::telemetry::enabled().then(|| {
                caller.metrics.method(MethodKey {
                    caller: caller.name_for(&wire.import).to_string(),
                    component: name.clone(),
                    interface: export.clone(),
                    method: func.name.clone(),
                    remote: matches!(route, Route::Remote(_)),
                    group: caller.group.to_string(),
                    version: caller.version.to_string(),
                })
            });
            let forwarder = Arc::new(Forwarder {
                app: caller.app.to_string(),
                version: caller.version.to_string(),
                span_name: format!("{export}/{}", func.name),
                stats,
                types: types.ok(),
                label: format!("{name}: {export}#{}", func.name),
                caller: caller.name_for(&wire.import).to_string(),
                group: caller.group.to_string(),
                callee: name.clone(),
                interface: export.clone(),
                function: func.name.clone(),
                route,
            });
            if (func.is_async || func.has_streams) && !func.has_handles {
                let ends = |types: Vec<wasmtime::component::types::Type>| {
                    Ends::of(types).map_err(|e| {
                        wasmtime::format_err!(
                            "{}: import {}#{}: it passes {e}",
                            caller.name,
                            wire.import,
                            func.name
                        )
                    })
                };
                let types = (
                    ends(func_type.params().map(|(_, t)| t).collect())?,
                    ends(func_type.results().collect())?,
                );
                let types = Arc::new(types);
                if func.is_async {
                    forward_concurrent(&mut instance, &func.name, forwarder, types)?;
                } else {
                    forward_streams(&mut instance, &func.name, forwarder, types)?;
                }
                continue;
            }
            if let Some(shape) = shape {
                shape.forward(&mut instance, &func.name, forwarder)?;
                continue;
            }
            if func.has_handles {
                let method = match (&forwarder.route, &forwarder.types) {
                    (Route::Local { .. }, Some(types)) => typed::method_of(types),
                    _ => None,
                };
                if let Some(method) = method {
                    method.forward(&mut instance, &func.name, forwarder, caller.handles.clone())?;
                    continue;
                }
                let types = resource_types
                    .get(name.as_str())
                    .cloned()
                    .unwrap_or_default();
                forward_handles(&mut instance, &func.name, forwarder, caller.handles, types)?;
                continue;
            }
            instance.func_new_async(&func.name, move |store, _ty, params, results| {
                let forwarder = forwarder.clone();
                let deadline = store.data().deadline;
                Box::new(async move { forwarder.call(deadline, params, results).await })
            })?;
        }
    }
    Ok(linker)
}

/// Registers `forwarder` as function `name`, which is `async`: a
/// concurrent host function, so that the caller's other tasks go on while
/// the call is out, and several calls may be out at once. The streams and
/// futures its values carry (where `types` says) move between the stores.
fn forward_concurrent(
    instance: &mut LinkerInstance<'_, HostState>,
    name: &str,
    forwarder: Arc<Forwarder>,
    types: Arc<(Ends, Ends)>,
) -> wasmtime::Result<()> {
    instance.func_new_concurrent(name, move |store, _ty, params, results| {
        let forwarder = forwarder.clone();
        let types = types.clone();
        Box::pin(async move {
            let mut params = params.to_vec();
            let (deadline, ends) = store.with(|mut s| {
                let deadline = s.data_mut().deadline;
                let ends = pipes::take_out(&mut s, &types.0, &mut params, None)?;
                Ok::<_, wasmtime::Error>((deadline, ends))
            })?;
            let (mut values, back) = forwarder
                .call_flowing(deadline, params, ends, &types)
                .await?;
            store.with(|mut s| pipes::put_in(&mut s, &types.1, &mut values, back, None))?;
            results.clone_from_slice(&values);
            Ok(())
        })
    })
}

/// For each component in this process that the caller imports resources
/// from, those resources' export indices in it and their payloads: how a
/// handle that one of its calls returns is told apart.
fn resource_types<'c>(
    caller: &Caller<'_>,
    wires: &[Wire],
    callee: &impl Fn(&str) -> wasmtime::Result<Callee<'c>>,
) -> wasmtime::Result<BTreeMap<String, ResourceTypes>> {
    let mut types: BTreeMap<String, Vec<(ComponentExportIndex, u32)>> = BTreeMap::new();
    for wire in wires {
        let Provider::Component { name, export } = &wire.provider else {
            continue;
        };
        let interface = caller.imports.iter().find(|i| i.name == wire.import);
        let resources = interface.map_or(&[][..], |i| &i.resources[..]);
        if resources.is_empty() {
            continue;
        }
        let component = match callee(name)? {
            Callee::Local { component, .. } => component,
            // The replica that keeps them names their types in its reply.
            Callee::Remote { .. } => continue,
        };
        let iface = component
            .get_export_index(None, export)
            .ok_or_else(|| wasmtime::format_err!("component '{name}' has no export {export}"))?;
        for resource in resources {
            let index = component
                .get_export_index(Some(&iface), resource)
                .ok_or_else(|| {
                    wasmtime::format_err!("{name}: {export} does not export resource '{resource}'")
                })?;
            let payload = caller.handles.payload(ResourceKey {
                component: name.clone(),
                interface: export.clone(),
                resource: resource.clone(),
            });
            types
                .entry(name.clone())
                .or_default()
                .push((index, payload));
        }
    }
    Ok(types.into_iter().map(|(k, v)| (k, v.into())).collect())
}

/// Defines resource `name` in an imported instance as a host resource of
/// type `payload`: dropping a handle drops the callee's resource.
fn define_resource(
    instance: &mut LinkerInstance<'_, HostState>,
    name: &str,
    payload: u32,
    handles: &Arc<Handles>,
) -> wasmtime::Result<()> {
    let handles = handles.clone();
    instance.resource_async(
        name,
        ResourceType::host_dynamic(payload),
        move |mut store, rep| {
            let handles = handles.clone();
            Box::new(async move {
                store.data_mut().held.forget(rep);
                handles.drop_handle(rep).await
            })
        },
    )
}

/// Registers `forwarder` as function `name`, which is not `async` but
/// whose values carry streams or futures: the caller waits for the call,
/// and the ends move between the stores as for [`forward_concurrent`].
fn forward_streams(
    instance: &mut LinkerInstance<'_, HostState>,
    name: &str,
    forwarder: Arc<Forwarder>,
    types: Arc<(Ends, Ends)>,
) -> wasmtime::Result<()> {
    instance.func_new_async(name, move |mut store, _ty, params, results| {
        let forwarder = forwarder.clone();
        let types = types.clone();
        Box::new(async move {
            let mut params = params.to_vec();
            let deadline = store.data().deadline;
            let ends = pipes::take_out(&mut store, &types.0, &mut params, None)?;
            let (mut values, back) = forwarder
                .call_flowing(deadline, params, ends, &types)
                .await?;
            pipes::put_in(&mut store, &types.1, &mut values, back, None)?;
            results.clone_from_slice(&values);
            Ok(())
        })
    })
}

/// Registers `forwarder` as function `name`, whose values hold handles:
/// the caller's handles are swapped for the callee's (in this process) or
/// for their numbers (in another) on the way in, and back on the way out.
fn forward_handles(
    instance: &mut LinkerInstance<'_, HostState>,
    name: &str,
    forwarder: Arc<Forwarder>,
    handles: &Arc<Handles>,
    types: ResourceTypes,
) -> wasmtime::Result<()> {
    let handles = handles.clone();
    instance.func_new_async(name, move |mut store, _ty, params, results| {
        let forwarder = forwarder.clone();
        let handles = handles.clone();
        let types = types.clone();
        Box::new(async move {
            let deadline = store.data().deadline;
            let mut params = params.to_vec();
            let callee = &forwarder.callee;
            match &forwarder.route {
                Route::Local { .. } => {
                    let inbound = handles.take_in(&mut store, callee, &mut params)?;
                    let returned = forwarder
                        .call_here(&handles, inbound, deadline, &types, &params, results)
                        .await?;
                    let outbound = handles.keep(returned);
                    handles.bring_out(&mut store, results, outbound)
                }
                Route::Remote(remote) => {
                    let func_types = &remote.types;
                    let owner =
                        handles.take_out(&mut store, callee, &func_types.params, &mut params)?;
                    let reply = forwarder
                        .call_there(
                            &handles,
                            remote,
                            owner.as_deref(),
                            deadline,
                            &params,
                            results,
                        )
                        .await?;
                    handles.bring_in(&mut store, remote, &func_types.results, results, reply)
                }
            }
        })
    })
}

/// The type of function `func` of the caller's import `interface`.
fn import_func(
    engine: &Engine,
    caller: &Caller<'_>,
    interface: &str,
    func: &str,
) -> wasmtime::Result<ComponentFunc> {
    let label = || format!("{}: import {interface}#{func}", caller.name);
    let Some(ComponentItem::ComponentInstance(inst)) = caller
        .component
        .component_type()
        .get_import(engine, interface)
        .map(|e| e.ty)
    else {
        return Err(wasmtime::format_err!(
            "{} is not an imported interface",
            label()
        ));
    };
    match inst.get_export(engine, func).map(|e| e.ty) {
        Some(ComponentItem::ComponentFunc(f)) => Ok(f),
        _ => Err(wasmtime::format_err!(
            "{} is not an imported function",
            label()
        )),
    }
}
