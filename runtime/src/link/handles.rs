//! Resource handles between components, in one process and across
//! processes.
//!
//! A resource that component B exports and component A imports is, inside
//! A, a host resource of a type of its own
//! (`ResourceType::host_dynamic(payload)`, one payload per B, interface and
//! resource: see [`Handles::payload`]). The handle's number (its `rep`)
//! names an entry here, whose keeper is either
//! - the instance of B in this process that made the resource, and B's own
//!   handle to it, or
//! - a replica of B's group in another process ([`Remote`]), and the number
//!   that replica gave the handle.
//!
//! The instance of B that made a resource is *pinned*: out of B's pool,
//! serving the calls on its handles one at a time, until every handle to it
//! is dropped; then it goes back to the pool. A call that passes handles
//! goes to the instance that keeps their resources (handles of two
//! instances cannot meet in one call). A call that passes none (a
//! constructor, a function that opens something) goes to the instance of B
//! whose handles the calling instance holds, as if each instance of A had
//! its own B, which is what composing the two statically would give; when
//! it holds none, the call borrows an instance from the pool, which stays
//! pinned if the call returns handles. Across processes the same holds: a
//! call on a handle goes to the replica that keeps it (never load-balanced)
//! and names the pinned instance there (its *session*).
//!
//! A replica keeps the handles it *lent* to another process for as long as
//! that process renews them: every call from it, and a renewal every third
//! of the lease ([`LEASE`], or `[deploy] handle-lease`), count. A caller
//! process that dies loses its handles one lease later, and the pinned
//! instances go back to their pools. A replica that dies takes its
//! resources with it: calls on their handles fail and say so, and a new
//! handle is made elsewhere.
//!
//! If a pinned instance traps, it is dropped at once: every later call on
//! its handles fails and says why, and the handles only wait to be
//! dropped. An instance of A that goes away while it holds handles (it
//! trapped, or its pool let it go) drops them ([`Held`]).

use crate::call::{RemoteFunc, Reply, Target, Transport};
use crate::codec::ValueType;
use crate::host::HostState;
use crate::pool::{InstancePool, Warm};
use crate::telemetry::metrics::{self, Metrics, ResourceGauges};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentExportIndex, ResourceAny, ResourceDynamic, Val};

/// How long a replica keeps the handles of a caller process that stopped
/// renewing them, unless `[deploy] handle-lease` says otherwise.
pub const LEASE: Duration = Duration::from_secs(30);

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

/// A callee's resource types, each as its export index and a tag (a
/// payload, or an index into a list of names): how a handle that a call
/// returns is told apart.
pub type ResourceTypes = Arc<[(ComponentExportIndex, u32)]>;

/// Every handle of this process: those its instances hold, and those it
/// lent to other processes.
pub struct Handles {
    inner: Mutex<Inner>,
    /// Where the keepers' gauges are ([`ResourceGauges`]).
    metrics: Arc<Metrics>,
    /// This process's group and version, the gauges' labels.
    group: String,
    version: String,
    /// This process, as the holder of handles elsewhere.
    holder: u64,
    /// How long lent handles live without a renewal.
    lease: Duration,
    /// The renewing task (holding handles elsewhere) and the sweeping task
    /// (lending handles), once started.
    renewing: OnceLock<()>,
    sweeping: OnceLock<()>,
}

#[derive(Default)]
struct Inner {
    /// The last number given to a handle.
    last: u32,
    /// The handles this process's instances hold.
    entries: HashMap<u32, Entry>,
    /// Resource types, by payload.
    types: Vec<ResourceKey>,
    /// The handles other processes hold to resources here, by number.
    lent: HashMap<u64, Lent>,
    /// Pinned instances that other processes' handles keep, by session.
    sessions: HashMap<u64, Weak<Pinned>>,
    /// When each holder of lent handles last renewed them.
    holders: HashMap<u64, Instant>,
    /// The pinned instances elsewhere that this process's instances hold
    /// handles to, by replica and session.
    remotes: HashMap<(String, u64), Weak<Remote>>,
}

/// What one handle refers to.
struct Entry {
    /// Its resource type.
    payload: u32,
    keeper: Keeper,
}

/// Where a handle's resource is.
enum Keeper {
    /// In an instance of this process, as that instance's own handle.
    Here(Arc<Pinned>, ResourceAny),
    /// In another process, as the number it gave the handle.
    There(Arc<Remote>, u64),
}

/// A handle lent to another process.
struct Lent {
    owner: Arc<Pinned>,
    handle: ResourceAny,
    holder: u64,
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
    failed: AtomicBool,
    /// Its number for other processes.
    session: u64,
}

enum State {
    /// Serving its handles.
    Ready(Warm),
    /// It trapped, or was given back: why calls on it fail now.
    Gone(String),
}

/// A pinned instance in another process: the replica and the session.
pub struct Remote {
    component: String,
    address: String,
    session: u64,
    transport: Arc<dyn Transport>,
    /// Whether its replica is gone.
    failed: AtomicBool,
}

/// The keeper of an instance's handles to one component.
#[derive(Clone)]
enum Owner {
    Here(Arc<Pinned>),
    There(Arc<Remote>),
}

impl Owner {
    fn component(&self) -> &str {
        match self {
            Owner::Here(p) => p.pool.name(),
            Owner::There(r) => &r.component,
        }
    }

    fn failed(&self) -> bool {
        match self {
            Owner::Here(p) => p.failed.load(Ordering::SeqCst),
            Owner::There(r) => r.failed.load(Ordering::SeqCst),
        }
    }

    fn same(&self, other: &Owner) -> bool {
        match (self, other) {
            (Owner::Here(a), Owner::Here(b)) => Arc::ptr_eq(a, b),
            (Owner::There(a), Owner::There(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// The handles a call passes in, swapped for the callee's own.
pub struct Inbound {
    /// The instance the call must run on, if it passes handles (or its
    /// caller holds some of the callee's).
    owner: Option<Arc<Pinned>>,
    /// How many of them the call hands over (`own` parameters): each
    /// releases the owner once the call is made.
    moved: usize,
}

/// The handles a call returned, with the instance that keeps them.
pub struct Returned {
    owner: Option<Arc<Pinned>>,
    /// Each handle's tag (from the [`ResourceTypes`] the call was given)
    /// and the keeper's own handle, in order.
    handles: Vec<(u32, ResourceAny)>,
}

/// A handle that a call returns, for the caller's store.
pub struct Outbound {
    rep: u32,
    payload: u32,
    owner: Owner,
}

impl Handles {
    /// No handles yet, with gauges in `metrics` labelled with `group` and
    /// `version`; lent handles live `lease` without a renewal.
    pub fn new(metrics: Arc<Metrics>, group: &str, version: &str, lease: Duration) -> Handles {
        Handles {
            inner: Mutex::default(),
            metrics,
            group: group.to_string(),
            version: version.to_string(),
            holder: random_u64(),
            lease,
            renewing: OnceLock::new(),
            sweeping: OnceLock::new(),
        }
    }

    /// The payload of resource type `key`, the same for every caller.
    pub fn payload(&self, key: ResourceKey) -> u32 {
        let mut inner = self.lock();
        match inner.types.iter().position(|k| *k == key) {
            Some(i) => i as u32,
            None => {
                inner.types.push(key);
                (inner.types.len() - 1) as u32
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("handles lock")
    }

    fn gauges(&self, component: &str) -> Arc<ResourceGauges> {
        self.metrics.resources(metrics::ResourceKey {
            component: component.to_string(),
            group: self.group.clone(),
            version: self.version.clone(),
        })
    }

    // ----- A caller and its callee in this process -----

    /// Swaps the caller's handles in `params` for the callee's, taking
    /// those passed as `own` out of the caller. `callee` names the
    /// component called, which must keep every handle passed.
    pub fn take_in(
        &self,
        store: &mut StoreContextMut<'_, HostState>,
        callee: &str,
        params: &mut [Val],
    ) -> wasmtime::Result<Inbound> {
        let mut owner: Option<Owner> = None;
        let mut moved = 0;
        let mut failure = None;
        for_each_handle(params, &mut |value| {
            let Val::Resource(any) = value else { return };
            if failure.is_some() {
                return;
            }
            match self.take_one(store, callee, *any, &mut owner) {
                Ok((Keeper::Here(_, handle), was_moved)) => {
                    *any = handle;
                    moved += usize::from(was_moved);
                }
                Ok((Keeper::There(..), _)) => {
                    failure = Some(wasmtime::format_err!(
                        "a handle to a resource in another process was passed to '{callee}' here"
                    ))
                }
                Err(e) => failure = Some(e),
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        let owner = owner.or_else(|| store.data().held.owner_in(callee));
        match owner {
            None => Ok(Inbound { owner: None, moved }),
            Some(Owner::Here(pinned)) => Ok(Inbound {
                owner: Some(pinned),
                moved,
            }),
            Some(Owner::There(_)) => Err(wasmtime::format_err!(
                "'{callee}' runs here, but the caller holds handles to it from another process"
            )),
        }
    }

    /// Takes the caller's handle `any` to a resource of `callee`: its
    /// keeper, and whether the call hands it over. All handles of one call
    /// must share `owner`.
    fn take_one(
        &self,
        store: &mut StoreContextMut<'_, HostState>,
        callee: &str,
        any: ResourceAny,
        owner: &mut Option<Owner>,
    ) -> wasmtime::Result<(Keeper, bool)> {
        let handle = ResourceDynamic::try_from_resource_any(any, &mut *store)?;
        let rep = handle.rep();
        let mut inner = self.lock();
        let entry = inner.entries.get(&rep).ok_or_else(|| {
            wasmtime::format_err!("handle {rep} refers to no resource; it was dropped")
        })?;
        let keeper = match &entry.keeper {
            Keeper::Here(p, _) => Owner::Here(p.clone()),
            Keeper::There(r, _) => Owner::There(r.clone()),
        };
        if entry.payload != handle.ty() || keeper.component() != callee {
            return Err(wasmtime::format_err!(
                "a handle to a resource of '{}' was passed to '{callee}'; a handle goes only to \
                 the component that made its resource",
                keeper.component()
            ));
        }
        match owner {
            Some(o) if !o.same(&keeper) => {
                return Err(wasmtime::format_err!(
                    "one call to '{callee}' passed handles made by two of its instances; a \
                     call's handles must come from one instance (make them through one another)"
                ));
            }
            _ => *owner = Some(keeper),
        }
        let taken = if handle.owned() {
            let entry = inner.entries.remove(&rep).expect("found above");
            store.data_mut().held.forget(rep);
            if let Keeper::Here(p, _) = &entry.keeper {
                p.gauges.handles.fetch_sub(1, Ordering::Relaxed);
            }
            entry.keeper
        } else {
            match &entry.keeper {
                Keeper::Here(p, h) => Keeper::Here(p.clone(), *h),
                Keeper::There(r, id) => Keeper::There(r.clone(), *id),
            }
        };
        Ok((taken, handle.owned()))
    }

    /// The keeper of the caller's borrowed handle `handle` to a resource of
    /// `callee` in this process, and the keeper's own handle: for a method
    /// on the typed path.
    pub fn borrowed_here(
        &self,
        callee: &str,
        handle: &ResourceDynamic,
    ) -> wasmtime::Result<(Arc<Pinned>, ResourceAny)> {
        // The hot path of a method call: one lookup, one clone.
        let inner = self.lock();
        match inner.entries.get(&handle.rep()) {
            Some(Entry {
                payload,
                keeper: Keeper::Here(pinned, theirs),
            }) if *payload == handle.ty() && pinned.pool.name() == callee => {
                Ok((pinned.clone(), *theirs))
            }
            Some(_) => Err(wasmtime::format_err!(
                "a handle to another component's resource was passed to '{callee}'; a handle \
                 goes only to the component that made its resource"
            )),
            None => Err(wasmtime::format_err!(
                "handle {} refers to no resource; it was dropped",
                handle.rep()
            )),
        }
    }

    /// Calls `body` (one call of the callee's export) on the instance that
    /// `inbound` names, or else on one from `pool` that stays pinned if the
    /// call returns handles. `types` tells the callee's resource types
    /// apart in `results`.
    pub async fn call(
        &self,
        pool: &Arc<InstancePool>,
        inbound: Inbound,
        deadline: Instant,
        types: &[(ComponentExportIndex, u32)],
        results: &mut [Val],
        body: impl AsyncFnOnce(&mut Warm, &mut [Val]) -> wasmtime::Result<()>,
    ) -> wasmtime::Result<Returned> {
        let Inbound { owner, moved } = inbound;
        let Some(owner) = owner else {
            let mut warm = pool.borrow_instance().await?;
            pool.run_on(&mut warm, async |w| body(w, &mut *results).await)
                .await?;
            let handles = returned(&mut warm, types, results)?;
            if handles.is_empty() {
                pool.give_back(warm);
                return Ok(Returned {
                    owner: None,
                    handles,
                });
            }
            let pinned = Pinned::new(pool.clone(), self.gauges(pool.name()), warm);
            return Ok(Returned {
                owner: Some(pinned),
                handles,
            });
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
                Ok(()) => returned(warm, types, results),
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
        outcome.map(|handles| Returned {
            owner: Some(owner.clone()),
            handles,
        })
    }

    /// Makes an entry for each handle a call in this process returned: the
    /// caller's handles, for [`Handles::bring_out`].
    pub fn keep(&self, returned: Returned) -> Vec<Outbound> {
        let Some(owner) = returned.owner else {
            return Vec::new();
        };
        let mut inner = self.lock();
        returned
            .handles
            .into_iter()
            .map(|(payload, handle)| {
                owner.live.fetch_add(1, Ordering::SeqCst);
                owner.gauges.handles.fetch_add(1, Ordering::Relaxed);
                let rep = inner.insert(Entry {
                    payload,
                    keeper: Keeper::Here(owner.clone(), handle),
                });
                Outbound {
                    rep,
                    payload,
                    owner: Owner::Here(owner.clone()),
                }
            })
            .collect()
    }

    /// Puts the handles a call returned into the caller's `results`, where
    /// the callee's own handles are.
    pub fn bring_out(
        self: &Arc<Self>,
        store: &mut StoreContextMut<'_, HostState>,
        results: &mut [Val],
        outbound: Vec<Outbound>,
    ) -> wasmtime::Result<()> {
        let mut outbound = outbound.into_iter();
        let mut failure = None;
        for_each_handle(results, &mut |value| {
            if failure.is_none()
                && let Some(out) = outbound.next()
            {
                match self.give(store, out) {
                    Ok(mine) => *value = mine,
                    Err(e) => failure = Some(e),
                }
            }
        });
        failure.map_or(Ok(()), Err)
    }

    /// The caller's own handle for `out`, which its instance now holds.
    fn give(
        self: &Arc<Self>,
        store: &mut StoreContextMut<'_, HostState>,
        out: Outbound,
    ) -> wasmtime::Result<Val> {
        let mine =
            ResourceDynamic::new_own(out.rep, out.payload).try_into_resource_any(&mut *store)?;
        store.data_mut().held.keep(self, out.rep, out.owner);
        Ok(Val::Resource(mine))
    }

    // ----- A caller whose callee is in another process -----

    /// Swaps the caller's handles in `params` (of types `types`) for their
    /// numbers at the replica that keeps them, taking those passed as
    /// `own` out of the caller: where the call must go.
    pub fn take_out(
        &self,
        store: &mut StoreContextMut<'_, HostState>,
        callee: &str,
        types: &[ValueType],
        params: &mut [Val],
    ) -> wasmtime::Result<Option<Arc<Remote>>> {
        let mut owner: Option<Owner> = None;
        let mut failure = None;
        for_each_typed_handle(types, params, &mut |value, _| {
            let Val::Resource(any) = value else { return };
            if failure.is_some() {
                return;
            }
            match self.take_one(store, callee, *any, &mut owner) {
                Ok((Keeper::There(_, id), _)) => *value = Val::U64(id),
                Ok((Keeper::Here(..), _)) => {
                    failure = Some(wasmtime::format_err!(
                        "a handle to a resource in this process was passed to '{callee}' in \
                         another"
                    ))
                }
                Err(e) => failure = Some(e),
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        match owner.or_else(|| store.data().held.owner_in(callee)) {
            None => Ok(None),
            Some(Owner::There(remote)) => Ok(Some(remote)),
            Some(Owner::Here(_)) => Err(wasmtime::format_err!(
                "'{callee}' runs in another process, but the caller holds handles to it here"
            )),
        }
    }

    /// Calls `func` at `owner` (or any replica), as this process.
    pub async fn call_remote(
        &self,
        func: &RemoteFunc,
        owner: Option<&Remote>,
        deadline: Instant,
        params: &[Val],
        results: &mut [Val],
    ) -> wasmtime::Result<Reply> {
        let target = Target {
            address: owner.map(|o| o.address.as_str()),
            session: owner.map_or(0, |o| o.session),
            holder: self.holder,
        };
        let outcome = func.call_at(deadline, params, results, target).await;
        if let (Err(_), Some(owner)) = (&outcome, owner) {
            // Its replica is gone or its instance failed; the caller's next
            // calls that pass no handle go elsewhere.
            owner.failed.store(true, Ordering::SeqCst);
        }
        outcome
    }

    /// Makes an entry for each handle in the `results` of a call that
    /// `reply` answered, and puts the caller's own handles there.
    pub fn bring_in(
        self: &Arc<Self>,
        store: &mut StoreContextMut<'_, HostState>,
        func: &RemoteFunc,
        types: &[ValueType],
        results: &mut [Val],
        reply: Reply,
    ) -> wasmtime::Result<()> {
        if reply.handles.is_empty() {
            return Ok(());
        }
        let remote = {
            let mut inner = self.lock();
            inner.remotes.retain(|_, r| r.strong_count() > 0);
            let key = (reply.address.clone(), reply.session);
            match inner.remotes.get(&key).and_then(Weak::upgrade) {
                Some(remote) => remote,
                None => {
                    let remote = Arc::new(Remote {
                        component: func.target.clone(),
                        address: reply.address.clone(),
                        session: reply.session,
                        transport: func.transport.clone(),
                        failed: AtomicBool::new(false),
                    });
                    inner.remotes.insert(key, Arc::downgrade(&remote));
                    remote
                }
            }
        };
        let mut kinds = reply.handles.into_iter();
        let mut failure = None;
        for_each_typed_handle(types, results, &mut |value, _| {
            let (Val::U64(id), Some((interface, resource))) = (&*value, kinds.next()) else {
                failure.get_or_insert_with(|| {
                    wasmtime::format_err!(
                        "{} answered with handles that do not match its results",
                        reply.address
                    )
                });
                return;
            };
            let payload = self.payload(ResourceKey {
                component: func.target.clone(),
                interface,
                resource,
            });
            let rep = self.lock().insert(Entry {
                payload,
                keeper: Keeper::There(remote.clone(), *id),
            });
            let out = Outbound {
                rep,
                payload,
                owner: Owner::There(remote.clone()),
            };
            match self.give(store, out) {
                Ok(mine) => *value = mine,
                Err(e) => failure = Some(e),
            }
        });
        self.start_renewing();
        failure.map_or(Ok(()), Err)
    }

    /// Renews this process's handles at every replica that keeps some,
    /// every third of the lease, for as long as this process lives.
    fn start_renewing(self: &Arc<Self>) {
        if self.renewing.set(()).is_err() {
            return;
        }
        let handles = Arc::downgrade(self);
        let every = self.lease / 3;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(handles) = handles.upgrade() else {
                    return;
                };
                let mut keepers: HashMap<String, Arc<dyn Transport>> = HashMap::new();
                for entry in handles.lock().entries.values() {
                    if let Keeper::There(remote, _) = &entry.keeper {
                        keepers
                            .entry(remote.address.clone())
                            .or_insert_with(|| remote.transport.clone());
                    }
                }
                for (address, transport) in keepers {
                    if let Err(e) = transport.renew(&address, handles.holder).await {
                        tracing::debug!("{e:#}");
                    }
                }
            }
        });
    }

    // ----- A callee that lends handles to other processes -----

    /// Swaps the numbers of lent handles in `params` (of types `types`),
    /// from `holder`, for this process's own, taking those passed as `own`
    /// back; a call that passes none runs on `session`, if it is still
    /// here.
    pub fn take_lent(
        &self,
        callee: &str,
        holder: u64,
        session: u64,
        types: &[ValueType],
        params: &mut [Val],
    ) -> Result<Inbound, String> {
        let mut inner = self.lock();
        if holder != 0 {
            inner.holders.insert(holder, Instant::now());
        }
        let mut owner: Option<Arc<Pinned>> = None;
        let mut moved = 0;
        let mut failure = None;
        for_each_typed_handle(types, params, &mut |value, owned| {
            let Val::U64(id) = *value else { return };
            if failure.is_some() {
                return;
            }
            let Some(lent) = inner.lent.get(&id) else {
                failure = Some(format!(
                    "handle {id} is not kept here: it was dropped, its holder stopped renewing \
                     it, or this replica restarted since it was made; drop it and make a new one"
                ));
                return;
            };
            if lent.owner.pool.name() != callee {
                failure = Some(format!(
                    "handle {id} is not a handle to a resource of '{callee}'"
                ));
                return;
            }
            match &owner {
                Some(o) if !Arc::ptr_eq(o, &lent.owner) => {
                    failure = Some(format!(
                        "one call to '{callee}' passed handles made by two of its instances; a \
                         call's handles must come from one instance"
                    ));
                    return;
                }
                _ => owner = Some(lent.owner.clone()),
            }
            *value = Val::Resource(lent.handle);
            if owned {
                let lent = inner.lent.remove(&id).expect("found above");
                lent.owner.gauges.handles.fetch_sub(1, Ordering::Relaxed);
                moved += 1;
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        let owner = owner.or_else(|| {
            (session != 0)
                .then(|| inner.sessions.get(&session).and_then(Weak::upgrade))
                .flatten()
                .filter(|p| !p.failed.load(Ordering::SeqCst))
        });
        Ok(Inbound { owner, moved })
    }

    /// Lends each handle a call from `holder` returned: swaps it in
    /// `results` for its number, and says the pinned instance's session
    /// and each handle's tag.
    pub fn lend(
        self: &Arc<Self>,
        returned: Returned,
        holder: u64,
        results: &mut [Val],
    ) -> (u64, Vec<u32>) {
        let Some(owner) = returned.owner else {
            return (0, Vec::new());
        };
        let mut inner = self.lock();
        inner.sessions.insert(owner.session, Arc::downgrade(&owner));
        let mut numbers = Vec::with_capacity(returned.handles.len());
        let mut tags = Vec::with_capacity(returned.handles.len());
        for (tag, handle) in returned.handles {
            let mut id = random_u64();
            while inner.lent.contains_key(&id) {
                id = random_u64();
            }
            owner.live.fetch_add(1, Ordering::SeqCst);
            owner.gauges.handles.fetch_add(1, Ordering::Relaxed);
            inner.lent.insert(
                id,
                Lent {
                    owner: owner.clone(),
                    handle,
                    holder,
                },
            );
            numbers.push(id);
            tags.push(tag);
        }
        drop(inner);
        let mut numbers = numbers.into_iter();
        for_each_handle(results, &mut |value| {
            if let Some(id) = numbers.next() {
                *value = Val::U64(id);
            }
        });
        self.start_sweeping();
        (owner.session, tags)
    }

    /// Notes that `holder` still holds its handles; returns how many.
    pub fn renew(&self, holder: u64) -> u64 {
        let mut inner = self.lock();
        inner.holders.insert(holder, Instant::now());
        inner.lent.values().filter(|l| l.holder == holder).count() as u64
    }

    /// Drops the lent handles `ids` of `holder`.
    pub async fn release(&self, holder: u64, ids: &[u64]) {
        let taken: Vec<Lent> = {
            let mut inner = self.lock();
            let theirs: Vec<u64> = ids
                .iter()
                .copied()
                .filter(|id| inner.lent.get(id).is_some_and(|l| l.holder == holder))
                .collect();
            theirs
                .iter()
                .filter_map(|id| inner.lent.remove(id))
                .collect()
        };
        for lent in taken {
            if let Err(e) = lent.owner.drop_handle(lent.handle).await {
                tracing::debug!("dropping a lent handle: {e:#}");
            }
        }
    }

    /// Drops, every quarter of the lease, the lent handles whose holder
    /// has not renewed them for a lease.
    fn start_sweeping(self: &Arc<Self>) {
        if self.sweeping.set(()).is_err() {
            return;
        }
        let handles = Arc::downgrade(self);
        let (lease, every) = (self.lease, self.lease / 4);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(handles) = handles.upgrade() else {
                    return;
                };
                let expired: Vec<Lent> = {
                    let mut inner = handles.lock();
                    let now = Instant::now();
                    let holders = std::mem::take(&mut inner.holders);
                    let alive = |h: &u64| holders.get(h).is_some_and(|t| now - *t < lease);
                    let gone: Vec<u64> = inner
                        .lent
                        .iter()
                        .filter(|(_, l)| !alive(&l.holder))
                        .map(|(id, _)| *id)
                        .collect();
                    inner.holders = holders
                        .into_iter()
                        .filter(|(_, t)| now - *t < lease)
                        .collect();
                    inner.sessions.retain(|_, s| s.strong_count() > 0);
                    gone.iter().filter_map(|id| inner.lent.remove(id)).collect()
                };
                if !expired.is_empty() {
                    tracing::info!(
                        handles = expired.len(),
                        "dropping handles whose holder stopped renewing them"
                    );
                }
                for lent in expired {
                    if let Err(e) = lent.owner.drop_handle(lent.handle).await {
                        tracing::debug!("dropping an expired handle: {e:#}");
                    }
                }
            }
        });
    }

    // ----- Dropping -----

    /// Drops handle `rep` of an instance here: the keeper's resource is
    /// dropped (its destructor runs), and a pinned instance goes back to
    /// its pool once no handle to it is left.
    pub async fn drop_handle(&self, rep: u32) -> wasmtime::Result<()> {
        let entry = self.lock().entries.remove(&rep);
        match entry.map(|e| e.keeper) {
            None => Ok(()),
            Some(Keeper::Here(owner, handle)) => owner.drop_handle(handle).await,
            Some(Keeper::There(remote, id)) => {
                // A keeper that is gone took the resource with it.
                if let Err(e) = remote
                    .transport
                    .release(&remote.address, self.holder, vec![id])
                    .await
                {
                    tracing::debug!("{e:#}");
                }
                Ok(())
            }
        }
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
        // Without a runtime the process is ending, and the keepers with it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(work);
        }
    }
}

impl Inner {
    /// Adds `entry` under a new number.
    fn insert(&mut self, entry: Entry) -> u32 {
        self.last = self.last.wrapping_add(1);
        while self.entries.contains_key(&self.last) {
            self.last = self.last.wrapping_add(1);
        }
        self.entries.insert(self.last, entry);
        self.last
    }
}

/// The handles `warm` returned in `results`, each with its tag from
/// `types`.
fn returned(
    warm: &mut Warm,
    types: &[(ComponentExportIndex, u32)],
    results: &mut [Val],
) -> wasmtime::Result<Vec<(u32, ResourceAny)>> {
    let mut found = Vec::new();
    for_each_handle(results, &mut |value| {
        if let Val::Resource(any) = value {
            found.push(*any);
        }
    });
    found
        .into_iter()
        .map(|any| {
            types
                .iter()
                .find(|(export, _)| {
                    warm.instance.get_resource(&mut warm.store, *export) == Some(any.ty())
                })
                .map(|(_, tag)| (*tag, any))
                .ok_or_else(|| {
                    wasmtime::format_err!(
                        "a call returned a handle to a resource that is not one of its \
                         component's own; weft passes only those between components"
                    )
                })
        })
        .collect()
}

impl Pinned {
    /// Calls `body` on this instance, for a method on the typed path; a
    /// failure retires the instance, as in [`Handles::call`].
    pub async fn call_on<R>(
        &self,
        deadline: Instant,
        body: impl AsyncFnOnce(&mut Warm) -> wasmtime::Result<R>,
    ) -> wasmtime::Result<R> {
        let mut state = self.lock(deadline).await?;
        let warm = match &mut *state {
            State::Ready(warm) => warm,
            State::Gone(why) => return Err(wasmtime::format_err!("{why}")),
        };
        let outcome = self.pool.run_on(warm, body).await;
        if let Err(e) = &outcome {
            self.failed.store(true, Ordering::SeqCst);
            *state = State::Gone(format!(
                "the instance of '{}' that kept this resource failed ({e:#}); its handles are \
                 no longer usable: drop them and make new ones",
                self.pool.name()
            ));
        }
        outcome
    }

    fn new(pool: Arc<InstancePool>, gauges: Arc<ResourceGauges>, warm: Warm) -> Arc<Pinned> {
        gauges.pinned.fetch_add(1, Ordering::Relaxed);
        Arc::new(Pinned {
            pool,
            state: tokio::sync::Mutex::new(State::Ready(warm)),
            live: AtomicUsize::new(0),
            gauges,
            failed: AtomicBool::new(false),
            session: random_u64(),
        })
    }

    /// Its state, once the call before has ended, or an error at
    /// `deadline` (a call on a handle from inside a call on the same
    /// instance would otherwise wait forever).
    async fn lock(
        &self,
        deadline: Instant,
    ) -> wasmtime::Result<tokio::sync::MutexGuard<'_, State>> {
        // Uncontended, as calls on one instance's handles mostly are: no
        // timer to set.
        if let Ok(state) = self.state.try_lock() {
            return Ok(state);
        }
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

    /// Drops `handle`, its own handle to one of its resources (the
    /// resource's destructor runs), then lets go of it.
    async fn drop_handle(&self, handle: ResourceAny) -> wasmtime::Result<()> {
        self.gauges.handles.fetch_sub(1, Ordering::Relaxed);
        let outcome = {
            let mut state = self.state.lock().await;
            match &mut *state {
                State::Ready(warm) => {
                    let dropped = handle.resource_drop_async(&mut warm.store).await;
                    if let Err(e) = &dropped {
                        self.failed.store(true, Ordering::SeqCst);
                        *state = State::Gone(format!(
                            "the instance of '{}' that kept this resource failed while dropping \
                             one ({e:#})",
                            self.pool.name()
                        ));
                    }
                    dropped
                }
                State::Gone(_) => Ok(()),
            }
        };
        self.release().await;
        outcome
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
    /// Each handle, with the keeper of its resource.
    reps: HashMap<u32, Owner>,
}

impl Held {
    fn keep(&mut self, handles: &Arc<Handles>, rep: u32, owner: Owner) {
        self.handles.get_or_insert_with(|| handles.clone());
        self.reps.insert(rep, owner);
    }

    /// Handle `rep` is no longer this instance's: it dropped it, or passed
    /// it on.
    pub fn forget(&mut self, rep: u32) {
        self.reps.remove(&rep);
    }

    /// The keeper of `component`'s resources that this instance holds
    /// handles to, unless it failed.
    fn owner_in(&self, component: &str) -> Option<Owner> {
        self.reps
            .values()
            .find(|o| o.component() == component && !o.failed())
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

/// Calls `f` on every `Val::Resource` in `values`, depth first, in order.
pub fn for_each_handle(values: &mut [Val], f: &mut dyn FnMut(&mut Val)) {
    for value in values {
        match value {
            Val::Resource(_) => f(value),
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

/// Calls `f` on every value in `values` whose type in `types` is `own`
/// (with `true`) or `borrow` (with `false`), depth first, in order: the
/// same places, and the same order, as [`for_each_handle`] finds handles
/// in, whatever stands there now (a handle, or its number).
pub fn for_each_typed_handle(
    types: &[ValueType],
    values: &mut [Val],
    f: &mut dyn FnMut(&mut Val, bool),
) {
    for (ty, value) in types.iter().zip(values) {
        visit_typed(ty, value, f);
    }
}

fn visit_typed(ty: &ValueType, value: &mut Val, f: &mut dyn FnMut(&mut Val, bool)) {
    match (ty, value) {
        (ValueType::Own, value) => f(value, true),
        (ValueType::Borrow, value) => f(value, false),
        (ValueType::List(t) | ValueType::FixedList(t, _), Val::List(items))
        | (ValueType::List(t) | ValueType::FixedList(t, _), Val::FixedLengthList(items)) => {
            for item in items {
                visit_typed(t, item, f);
            }
        }
        (ValueType::Map(k, v), Val::Map(pairs)) => {
            for (key, value) in pairs {
                visit_typed(k, key, f);
                visit_typed(v, value, f);
            }
        }
        (ValueType::Record(fields), Val::Record(values)) => {
            for ((_, t), (_, v)) in fields.iter().zip(values) {
                visit_typed(t, v, f);
            }
        }
        (ValueType::Tuple(types), Val::Tuple(values)) => for_each_typed_handle(types, values, f),
        (ValueType::Variant(cases), Val::Variant(name, Some(v))) => {
            if let Some((_, Some(t))) = cases.iter().find(|(c, _)| c == name) {
                visit_typed(t, v, f);
            }
        }
        (ValueType::Option(t), Val::Option(Some(v))) => visit_typed(t, v, f),
        (ValueType::Result(Some(t), _), Val::Result(Ok(Some(v))))
        | (ValueType::Result(_, Some(t)), Val::Result(Err(Some(v)))) => visit_typed(t, v, f),
        _ => {}
    }
}

/// A random number, for holders and sessions.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish().max(1)
}
