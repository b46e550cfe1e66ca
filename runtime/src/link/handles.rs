//! Resource handles between components of one process.
//!
//! A resource that component B exports and component A imports is, inside
//! A, a host resource of a type of its own
//! (`ResourceType::host_dynamic(payload)`, one payload per B, interface and
//! resource: see [`Handles::payload`]). The handle's number (its `rep`)
//! names an entry here: the instance of B that made the resource and B's
//! own handle to it.
//!
//! That instance of B is *pinned*: out of B's pool, serving the calls on
//! its handles one at a time, until every handle to it is dropped; then it
//! goes back to the pool. A call that passes handles goes to the instance
//! that owns them (handles of two instances cannot meet in one call). A
//! call that passes none (a constructor, a function that opens something)
//! goes to the instance of B whose handles the calling instance holds, as
//! if each instance of A had its own B, which is what composing the two
//! statically would give; when it holds none, the call borrows an instance
//! from the pool, which stays pinned if the call returns handles.
//!
//! If a pinned instance traps, it is dropped at once: every later call on
//! its handles fails and says why, and the handles only wait to be
//! dropped. An instance of A that goes away while it holds handles (it
//! trapped, or its pool let it go) drops them ([`Held`]).

use crate::host::HostState;
use crate::pool::{InstancePool, Warm};
use crate::telemetry::metrics::{self, Metrics, ResourceGauges};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentExportIndex, ResourceAny, ResourceDynamic, Val};

/// One resource type that crosses between components: the exporter, its
/// interface and the resource's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceKey {
    /// The component that exports it.
    pub component: String,
    /// The interface that declares it, as the exporter names it.
    pub interface: String,
    /// The resource's name.
    pub resource: String,
}

/// A callee's resource types, each as its export index and its payload:
/// how a handle that a call returns is told apart.
pub type ResourceTypes = Arc<[(ComponentExportIndex, u32)]>;

/// Every handle that components of this process hold to resources of
/// other components here.
pub struct Handles {
    inner: Mutex<Inner>,
    /// Where the owners' gauges are ([`ResourceGauges`]).
    metrics: Arc<Metrics>,
    /// This process's group and version, the gauges' labels.
    group: String,
    version: String,
}

#[derive(Default)]
struct Inner {
    /// The last handle number given out.
    last: u32,
    entries: HashMap<u32, Entry>,
    /// Resource types, by payload.
    types: Vec<ResourceKey>,
}

/// What one handle refers to.
struct Entry {
    /// Its resource type.
    payload: u32,
    /// The instance that keeps the resource.
    owner: Arc<Pinned>,
    /// The owner's handle to it, in the owner's store.
    handle: ResourceAny,
}

/// An instance kept out of its pool for the handles to its resources.
pub struct Pinned {
    pool: Arc<InstancePool>,
    state: tokio::sync::Mutex<State>,
    /// Handles to its resources, held anywhere.
    live: AtomicUsize,
    /// Its component's gauges.
    gauges: Arc<ResourceGauges>,
    /// Whether it failed: its handles only wait to be dropped.
    failed: std::sync::atomic::AtomicBool,
}

enum State {
    /// Serving its handles.
    Ready(Warm),
    /// It trapped, or was given back: why calls on it fail now.
    Gone(String),
}

/// The handles a call passes in, swapped for the callee's own.
pub struct Inbound {
    /// The instance they belong to, if the call passes any.
    pub owner: Option<Arc<Pinned>>,
    /// How many of them the call hands over (`own` parameters): each
    /// releases the owner once the call is made.
    moved: usize,
}

/// A handle that a call returns, for the caller's store: its number and
/// resource type.
pub struct Outbound {
    rep: u32,
    payload: u32,
    owner: Arc<Pinned>,
}

impl Handles {
    /// No handles yet, with gauges in `metrics` labelled with `group` and
    /// `version`.
    pub fn new(metrics: Arc<Metrics>, group: &str, version: &str) -> Handles {
        Handles {
            inner: Mutex::default(),
            metrics,
            group: group.to_string(),
            version: version.to_string(),
        }
    }

    /// The payload of resource type `key`, the same for every caller.
    pub fn payload(&self, key: ResourceKey) -> u32 {
        let mut inner = self.inner.lock().expect("handles lock");
        match inner.types.iter().position(|k| *k == key) {
            Some(i) => i as u32,
            None => {
                inner.types.push(key);
                (inner.types.len() - 1) as u32
            }
        }
    }

    /// Swaps the caller's handles in `params` for the callee's, taking
    /// those passed as `own` out of the caller. `callee` names the
    /// component called, which must own every handle passed.
    pub fn take_in(
        &self,
        store: &mut StoreContextMut<'_, HostState>,
        callee: &str,
        params: &mut [Val],
    ) -> wasmtime::Result<Inbound> {
        let mut owner: Option<Arc<Pinned>> = None;
        let mut moved = 0;
        let mut failure = None;
        for_each_handle(params, &mut |any| {
            if failure.is_some() {
                return;
            }
            match self.swap_in(store, callee, any, &mut owner) {
                Ok(was_moved) => moved += usize::from(was_moved),
                Err(e) => failure = Some(e),
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        let owner = owner.or_else(|| store.data().held.owner_in(callee));
        Ok(Inbound { owner, moved })
    }

    fn swap_in(
        &self,
        store: &mut StoreContextMut<'_, HostState>,
        callee: &str,
        any: &mut ResourceAny,
        owner: &mut Option<Arc<Pinned>>,
    ) -> wasmtime::Result<bool> {
        let handle = ResourceDynamic::try_from_resource_any(*any, &mut *store)?;
        let rep = handle.rep();
        let mut inner = self.inner.lock().expect("handles lock");
        let entry = inner.entries.get(&rep).ok_or_else(|| {
            wasmtime::format_err!("handle {rep} refers to no resource; it was dropped")
        })?;
        if entry.payload != handle.ty() || entry.owner.pool.name() != callee {
            return Err(wasmtime::format_err!(
                "a handle to a resource of '{}' was passed to '{callee}'; a handle goes only to \
                 the component that made its resource",
                entry.owner.pool.name()
            ));
        }
        match owner {
            Some(o) if !Arc::ptr_eq(o, &entry.owner) => {
                return Err(wasmtime::format_err!(
                    "one call to '{callee}' passed handles made by two of its instances; \
                     a call's handles must come from one instance (make them through one another)"
                ));
            }
            _ => *owner = Some(entry.owner.clone()),
        }
        *any = entry.handle;
        if handle.owned() {
            if let Some(entry) = inner.entries.remove(&rep) {
                entry.owner.gauges.handles.fetch_sub(1, Ordering::Relaxed);
            }
            store.data_mut().held.forget(rep);
        }
        Ok(handle.owned())
    }

    /// Turns the handles `warm` returned in `results` into entries owned
    /// by `owner` (made from `warm` by `pin` when it is not pinned yet).
    /// `types` maps the callee's resource types to payloads.
    fn register(
        &self,
        warm: &mut Warm,
        types: &[(ComponentExportIndex, u32)],
        results: &mut [Val],
        owner: &mut dyn FnMut() -> Arc<Pinned>,
    ) -> wasmtime::Result<Vec<Outbound>> {
        let mut found = Vec::new();
        for_each_handle(results, &mut |any| found.push(*any));
        let mut outbound = Vec::with_capacity(found.len());
        for any in found {
            let payload = types
                .iter()
                .find(|(export, _)| {
                    warm.instance.get_resource(&mut warm.store, *export) == Some(any.ty())
                })
                .map(|(_, payload)| *payload)
                .ok_or_else(|| {
                    wasmtime::format_err!(
                        "a call returned a handle to a resource that is not one of the \
                         interface's own; weft passes only those between components"
                    )
                })?;
            outbound.push((payload, any));
        }
        if outbound.is_empty() {
            return Ok(Vec::new());
        }
        let owner = owner();
        let mut inner = self.inner.lock().expect("handles lock");
        Ok(outbound
            .into_iter()
            .map(|(payload, handle)| {
                inner.last = inner.last.wrapping_add(1);
                while inner.entries.contains_key(&inner.last) {
                    inner.last = inner.last.wrapping_add(1);
                }
                let rep = inner.last;
                owner.live.fetch_add(1, Ordering::SeqCst);
                owner.gauges.handles.fetch_add(1, Ordering::Relaxed);
                inner.entries.insert(
                    rep,
                    Entry {
                        payload,
                        owner: owner.clone(),
                        handle,
                    },
                );
                Outbound {
                    rep,
                    payload,
                    owner: owner.clone(),
                }
            })
            .collect())
    }

    /// Calls `body` (one call of the callee's export) with `inbound`'s
    /// handles: on the instance that owns them, or else on one from `pool`
    /// that stays pinned if the call returns handles. Returns the handles
    /// the call returned, for [`Handles::bring_out`].
    pub async fn call(
        self: &Arc<Self>,
        pool: &Arc<InstancePool>,
        inbound: Inbound,
        deadline: Instant,
        types: &[(ComponentExportIndex, u32)],
        results: &mut [Val],
        body: impl AsyncFnOnce(&mut Warm, &mut [Val]) -> wasmtime::Result<()>,
    ) -> wasmtime::Result<Vec<Outbound>> {
        let Inbound { owner, moved } = inbound;
        let Some(owner) = owner else {
            let mut warm = pool.borrow_instance().await?;
            pool.run_on(&mut warm, async |w| body(w, &mut *results).await)
                .await?;
            let mut slot = None;
            let outbound = self.register(&mut warm, types, results, &mut || {
                let gauges = self.metrics.resources(metrics::ResourceKey {
                    component: pool.name().to_string(),
                    group: self.group.clone(),
                    version: self.version.clone(),
                });
                let pinned = Pinned::new(pool.clone(), gauges);
                slot = Some(pinned.clone());
                pinned
            })?;
            match slot {
                Some(pinned) => {
                    *pinned.state.try_lock().expect("not shared yet") = State::Ready(warm)
                }
                None => pool.give_back(warm),
            }
            return Ok(outbound);
        };
        let outcome = {
            let mut state = owner.lock(deadline).await?;
            let warm = match &mut *state {
                State::Ready(warm) => warm,
                State::Gone(why) => return Err(wasmtime::format_err!("{why}")),
            };
            let outcome = pool
                .run_on(warm, async |w| body(w, &mut *results).await)
                .await;
            match outcome {
                Ok(()) => self.register(warm, types, results, &mut || owner.clone()),
                Err(e) => {
                    owner.failed.store(true, Ordering::SeqCst);
                    *state = State::Gone(format!(
                        "the instance of '{}' that kept this resource failed ({e:#}); its \
                         handles are no longer usable: drop them and make new ones",
                        pool.name()
                    ));
                    Err(e)
                }
            }
        };
        for _ in 0..moved {
            owner.release().await;
        }
        outcome
    }

    /// Puts the handles a call returned into the caller's `results`.
    pub fn bring_out(
        self: &Arc<Self>,
        store: &mut StoreContextMut<'_, HostState>,
        results: &mut [Val],
        outbound: Vec<Outbound>,
    ) -> wasmtime::Result<()> {
        let mut outbound = outbound.into_iter();
        let mut failure = None;
        for_each_handle(results, &mut |any| {
            let Some(Outbound {
                rep,
                payload,
                owner,
            }) = outbound.next()
            else {
                return;
            };
            match ResourceDynamic::new_own(rep, payload).try_into_resource_any(&mut *store) {
                Ok(mine) => {
                    *any = mine;
                    store.data_mut().held.keep(self, rep, owner);
                }
                Err(e) => failure = Some(e),
            }
        });
        failure.map_or(Ok(()), Err)
    }

    /// Drops handle `rep`: the owner's resource is dropped (its destructor
    /// runs), and the owner goes back to its pool once no handle to it is
    /// left.
    pub async fn drop_handle(&self, rep: u32) -> wasmtime::Result<()> {
        let entry = self
            .inner
            .lock()
            .expect("handles lock")
            .entries
            .remove(&rep);
        let Some(entry) = entry else { return Ok(()) };
        entry.owner.gauges.handles.fetch_sub(1, Ordering::Relaxed);
        let outcome = {
            let mut state = entry.owner.state.lock().await;
            match &mut *state {
                State::Ready(warm) => {
                    let dropped = entry.handle.resource_drop_async(&mut warm.store).await;
                    if let Err(e) = &dropped {
                        entry.owner.failed.store(true, Ordering::SeqCst);
                        *state = State::Gone(format!(
                            "the instance of '{}' that kept this resource failed while dropping \
                             one ({e:#})",
                            entry.owner.pool.name()
                        ));
                    }
                    dropped
                }
                State::Gone(_) => Ok(()),
            }
        };
        entry.owner.release().await;
        outcome
    }

    /// Drops every handle in `reps`, in a task of its own: what an instance
    /// that goes away still held.
    fn drop_all(self: &Arc<Self>, reps: Vec<u32>) {
        let handles = self.clone();
        let work = async move {
            for rep in reps {
                if let Err(e) = handles.drop_handle(rep).await {
                    tracing::debug!(error = %e, "dropping a handle of a gone instance failed");
                }
            }
        };
        // Without a runtime the process is ending, and the owners with it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(work);
        }
    }
}

impl Pinned {
    fn new(pool: Arc<InstancePool>, gauges: Arc<ResourceGauges>) -> Arc<Pinned> {
        gauges.pinned.fetch_add(1, Ordering::Relaxed);
        Arc::new(Pinned {
            pool,
            state: tokio::sync::Mutex::new(State::Gone("not ready yet".into())),
            live: AtomicUsize::new(0),
            gauges,
            failed: Default::default(),
        })
    }

    /// Its state, once the call before has ended, or an error at
    /// `deadline` (a call on a handle from inside a call on the same
    /// instance would otherwise wait forever).
    async fn lock(
        &self,
        deadline: Instant,
    ) -> wasmtime::Result<tokio::sync::MutexGuard<'_, State>> {
        tokio::time::timeout_at(deadline.into(), self.state.lock())
            .await
            .map_err(|_| {
                wasmtime::format_err!(
                    "the instance of '{}' that keeps this resource stayed busy until the call's \
                     deadline (a call on a handle from inside a call on the same instance waits \
                     for itself)",
                    self.pool.name()
                )
            })
    }

    /// One handle less; the last gives the instance back to its pool.
    async fn release(&self) {
        if self.live.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        self.gauges.pinned.fetch_sub(1, Ordering::Relaxed);
        let mut state = self.state.lock().await;
        let given = std::mem::replace(&mut *state, State::Gone("given back".into()));
        if let State::Ready(warm) = given {
            self.pool.give_back(warm);
        }
    }
}

/// The handles one instance holds to resources of other components, which
/// it drops if it goes away still holding them.
#[derive(Default)]
pub struct Held {
    handles: Option<Arc<Handles>>,
    /// Each handle, with the instance that keeps its resource.
    reps: HashMap<u32, Arc<Pinned>>,
}

impl Held {
    fn keep(&mut self, handles: &Arc<Handles>, rep: u32, owner: Arc<Pinned>) {
        self.handles.get_or_insert_with(|| handles.clone());
        self.reps.insert(rep, owner);
    }

    /// Handle `rep` is no longer this instance's: it dropped it, or passed
    /// it on.
    pub fn forget(&mut self, rep: u32) {
        self.reps.remove(&rep);
    }

    /// The instance of `component` whose resources this instance holds,
    /// unless it failed.
    fn owner_in(&self, component: &str) -> Option<Arc<Pinned>> {
        self.reps
            .values()
            .find(|o| o.pool.name() == component && !o.failed.load(Ordering::SeqCst))
            .cloned()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(handles) = &self.handles
            && !self.reps.is_empty()
        {
            handles.drop_all(self.reps.drain().map(|(rep, _)| rep).collect());
        }
    }
}

/// Calls `f` on every handle in `values`, depth first, in order.
pub fn for_each_handle(values: &mut [Val], f: &mut dyn FnMut(&mut ResourceAny)) {
    for value in values {
        match value {
            Val::Resource(any) => f(any),
            Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => {
                for_each_handle(items, f)
            }
            Val::Record(fields) => {
                for (_, v) in fields {
                    for_each_handle(std::slice::from_mut(v), f)
                }
            }
            Val::Map(pairs) => {
                for (k, v) in pairs {
                    for_each_handle(std::slice::from_mut(k), f);
                    for_each_handle(std::slice::from_mut(v), f);
                }
            }
            Val::Variant(_, Some(v))
            | Val::Option(Some(v))
            | Val::Result(Ok(Some(v)))
            | Val::Result(Err(Some(v))) => for_each_handle(std::slice::from_mut(&mut **v), f),
            _ => {}
        }
    }
}
