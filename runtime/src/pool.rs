//! Pools of warm instances, one pool per component.
//!
//! A call borrows an instance, runs, and gives it back, so an instance's
//! memory is a cache, never shared state. An instance whose call failed
//! (a trap, a timeout, a host error) is dropped instead of given back, and
//! the next call gets a fresh one from the cached `InstancePre`.
//!
//! Each call has a deadline, the component's `call-timeout`: guest code is
//! stopped at the first epoch tick past it. Time spent waiting on the host
//! is bounded where a call enters the app ([`InstancePool::host_wait_limit`],
//! used by listeners), not on every nested call, which keeps a timer off the
//! cross-component call path.

use crate::engine::Concurrency;
use crate::host::{HostState, Sandbox};
use crate::link::pipes::{self, End, Ends, Tracker};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{
    ComponentExportIndex, ComponentNamedList, Func, Instance, InstancePre, Lift, Lower, TypedFunc,
    Val,
};
use wasmtime::{Store, Trap, UpdateDeadline};

/// How much longer than its call timeout an entry call may wait on the host
/// before it is abandoned.
const HOST_GRACE: Duration = Duration::from_secs(1);

/// How many bytes the host may allocate for the values of one call from a
/// guest to the host (wasmtime's "hostcall fuel", 128 MiB by default).
/// Calls on the `Val` path hold their arguments as wasmtime `Val`s, about
/// 40 bytes per list element, so the default stops a 4 MiB `list<u8>` at
/// the door; 1 GiB lets a call carry lists of some 25 million elements.
/// Typed forwarders copy bytes as slices, but a record or any list other
/// than `list<u8>` still takes the `Val` path, so the raise stays.
pub const HOSTCALL_FUEL: usize = 1 << 30;

/// A call for [`InstancePool::call_flowing`].
pub(crate) struct FlowingCall {
    /// The export to call.
    pub export: ComponentExportIndex,
    /// "component: interface#function", for errors.
    pub label: Arc<str>,
    /// The parameters, with stale handles where `ends` go.
    pub params: Vec<Val>,
    /// The streams and futures the parameters carry, in order.
    pub ends: Vec<End>,
    /// Where the ends are in the parameters and in the results.
    pub types: Arc<(Ends, Ends)>,
    /// When the caller stops waiting.
    pub deadline: Instant,
}

/// A call whose caller went away before it answered.
#[derive(Debug)]
struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the caller cancelled the call")
    }
}

impl std::error::Error for Cancelled {}

/// Tells a call's task that its caller went away, unless disarmed first.
struct CancelOnDrop(Option<tokio::sync::oneshot::Sender<()>>);

impl CancelOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(cancel) = self.0.take() {
            let _ = cancel.send(());
        }
    }
}

type TrackerDone = tokio::sync::mpsc::UnboundedReceiver<()>;

/// How many idle instances a pool keeps at most.
pub const MAX_IDLE: usize = 16;

/// An instance with its store, ready for a call.
pub struct Warm {
    /// The instance's store; its data is the instance's [`HostState`].
    pub store: Store<HostState>,
    /// The instance.
    pub instance: Instance,
    /// The exports called so far, looked up once per instance.
    funcs: HashMap<ComponentExportIndex, Func>,
    /// The same as typed functions, type-checked once per instance; each a
    /// `TypedFunc<P, R>`, keyed by its export and type.
    typed: HashMap<(ComponentExportIndex, TypeId), Box<dyn Any + Send + Sync>>,
}

impl Warm {
    /// Export `export` of this instance; `label` names it in errors.
    pub fn func(&mut self, export: ComponentExportIndex, label: &str) -> wasmtime::Result<Func> {
        if let Some(func) = self.funcs.get(&export) {
            return Ok(*func);
        }
        let func = self
            .instance
            .get_func(&mut self.store, export)
            .ok_or_else(|| wasmtime::format_err!("{label} is not a function"))?;
        self.funcs.insert(export, func);
        Ok(func)
    }

    /// Export `export` as a typed function; `label` names it in errors.
    pub fn typed_func<P, R>(
        &mut self,
        export: ComponentExportIndex,
        label: &str,
    ) -> wasmtime::Result<TypedFunc<P, R>>
    where
        P: ComponentNamedList + Lower + Send + Sync + 'static,
        R: ComponentNamedList + Lift + Send + Sync + 'static,
    {
        let key = (export, TypeId::of::<TypedFunc<P, R>>());
        if let Some(func) = self.typed.get(&key).and_then(|f| f.downcast_ref()) {
            return Ok(*func);
        }
        let func = self.func(export, label)?.typed::<P, R>(&self.store)?;
        self.typed.insert(key, Box::new(func));
        Ok(func)
    }
}

/// The warm instances of one component.
pub struct InstancePool {
    sandbox: Arc<Sandbox>,
    pre: InstancePre<HostState>,
    concurrency: Concurrency,
    idle: Mutex<Vec<Warm>>,
}

impl InstancePool {
    /// A pool that makes instances of `pre` in `sandbox`.
    pub fn new(
        sandbox: Arc<Sandbox>,
        pre: InstancePre<HostState>,
        concurrency: Concurrency,
    ) -> InstancePool {
        InstancePool {
            sandbox,
            pre,
            concurrency,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The component's name.
    pub fn name(&self) -> &str {
        &self.sandbox.name
    }

    /// Whether the component runs on the concurrent engine.
    pub fn concurrency(&self) -> Concurrency {
        self.concurrency
    }

    /// The pre-instantiated component the pool makes instances of.
    pub fn instance_pre(&self) -> &InstancePre<HostState> {
        &self.pre
    }

    /// Makes one instance and keeps it idle, so the first call is fast and a
    /// component that cannot start fails at load time.
    pub async fn warm_up(&self) -> wasmtime::Result<()> {
        let warm = self.fresh_instance().await?;
        self.give_back(warm);
        Ok(())
    }

    /// How long a call that enters the app here may take in all, host waits
    /// included, before it is abandoned.
    pub fn host_wait_limit(&self) -> Duration {
        self.sandbox.call_timeout + HOST_GRACE
    }

    /// The message of a call stopped at its deadline.
    fn timeout_message(&self) -> String {
        format!(
            "component '{}' did not finish within its call-timeout of {:?}; the call was stopped",
            self.sandbox.name, self.sandbox.call_timeout
        )
    }

    /// Borrows an instance for one call of `body`, with the component's
    /// deadline. The instance goes back to the pool only if `body` succeeds;
    /// if the future is dropped midway, the instance is dropped with it.
    pub async fn with_instance<R>(
        &self,
        body: impl AsyncFnOnce(&mut Warm) -> wasmtime::Result<R>,
    ) -> wasmtime::Result<R> {
        let mut warm = self.borrow_instance().await?;
        let value = self.run_on(&mut warm, body).await?;
        self.give_back(warm);
        Ok(value)
    }

    /// An instance taken out of the pool (an idle one, or a new one), for
    /// [`InstancePool::run_on`]; it goes back with
    /// [`InstancePool::give_back`], or is dropped.
    pub async fn borrow_instance(&self) -> wasmtime::Result<Warm> {
        match self.take() {
            Some(warm) => Ok(warm),
            None => self.fresh_instance().await,
        }
    }

    /// Runs one call of `body` on `warm`, with the component's deadline. A
    /// call stopped at that deadline says so.
    pub async fn run_on<R>(
        &self,
        warm: &mut Warm,
        body: impl AsyncFnOnce(&mut Warm) -> wasmtime::Result<R>,
    ) -> wasmtime::Result<R> {
        warm.store.data_mut().begin_call();
        warm.store.set_epoch_deadline(1);
        match body(warm).await {
            Ok(value) => Ok(value),
            // Only this call's own deadline: an interrupt deeper in the
            // error chain belongs to a callee that ran out of time.
            Err(e)
                if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt)
                    && Instant::now() >= warm.store.data().deadline =>
            {
                Err(e.context(self.timeout_message()))
            }
            Err(e) => Err(e),
        }
    }

    /// Calls the exported function `export` of a borrowed instance; `label`
    /// names it in errors. This is how both a local forwarder and the RPC
    /// server call into a component.
    pub async fn call_export(
        &self,
        export: ComponentExportIndex,
        label: &str,
        params: &[Val],
        results: &mut [Val],
    ) -> wasmtime::Result<()> {
        self.with_instance(async |warm| {
            let func = warm.func(export, label)?;
            func.call_async(&mut warm.store, params, results).await
        })
        .await
        .map_err(|e| e.context(format!("call to {label} failed")))
    }

    /// Like [`InstancePool::call_export`], with typed values: no `Val` on
    /// the way in or out.
    pub async fn call_typed<P, R>(
        &self,
        export: ComponentExportIndex,
        label: &str,
        params: P,
    ) -> wasmtime::Result<R>
    where
        P: ComponentNamedList + Lower + Send + Sync + 'static,
        R: ComponentNamedList + Lift + Send + Sync + 'static,
    {
        self.with_instance(async |warm| {
            let func = warm.typed_func::<P, R>(export, label)?;
            func.call_async(&mut warm.store, params).await
        })
        .await
        .map_err(|e| e.context(format!("call to {label} failed")))
    }

    /// Calls `call.export` of an instance of this component, which runs on
    /// the concurrent engine, in a task of its own that owns the instance:
    /// the call answers once the callee returns, but the callee may go on
    /// after that (writing the streams and futures its results hold, or
    /// finishing tasks of its own), so the task keeps driving the instance
    /// until every stream and future that crossed is finished and no task
    /// is left, and only then gives it back. Until then the instance serves
    /// no other call; past `call.deadline` it is dropped.
    ///
    /// If the caller goes away before the callee answers (a cancelled
    /// subtask), the callee's instance is dropped at once, which stops
    /// its work: wasmtime 48 cannot cancel one task of a store short of
    /// dropping the store (wasmtime #11833).
    pub(crate) async fn call_flowing(
        self: &Arc<Self>,
        call: FlowingCall,
    ) -> wasmtime::Result<(Vec<Val>, Vec<End>)> {
        let mut warm = self.borrow_instance().await?;
        let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
        let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
        let pool = self.clone();
        let limit = call.deadline.min(Instant::now() + self.host_wait_limit());
        tokio::spawn(async move {
            let label = call.label.clone();
            let answered = async {
                let answer = pool.answer(&mut warm, call);
                tokio::select! {
                    answer = answer => answer,
                    Ok(()) = cancelled => Err(wasmtime::Error::new(Cancelled)),
                }
            };
            let (tracker, finished) = match tokio::time::timeout_at(limit.into(), answered).await {
                Ok(Ok((values, ends, tracker, finished))) => {
                    let _ = answer_tx.send(Ok((values, ends)));
                    (tracker, finished)
                }
                Ok(Err(e)) => {
                    let _ = answer_tx.send(Err(e));
                    return;
                }
                Err(_) => {
                    let _ = answer_tx.send(Err(wasmtime::format_err!(
                        "{label} did not answer within the caller's deadline; the call was stopped"
                    )));
                    return;
                }
            };
            drop(tracker);
            let rest = pool.finish(&mut warm, finished);
            match tokio::time::timeout_at(limit.into(), rest).await {
                Ok(Ok(())) => pool.give_back(warm),
                Ok(Err(e)) => tracing::warn!(
                    component = %pool.name(),
                    "{label}: the work that went on after the call answered failed: {e:#}"
                ),
                Err(_) => tracing::warn!(
                    component = %pool.name(),
                    "{label}: streams or tasks of the call were still open at its deadline; \
                     the instance was dropped"
                ),
            }
        });
        let cancel_on_drop = CancelOnDrop(Some(cancel));
        let answer = answer_rx
            .await
            .unwrap_or_else(|_| Err(wasmtime::format_err!("the call's task ended unexpectedly")));
        cancel_on_drop.disarm();
        answer
    }

    /// The first part of [`InstancePool::call_flowing`]: the call, up to
    /// its results.
    async fn answer(
        &self,
        warm: &mut Warm,
        call: FlowingCall,
    ) -> wasmtime::Result<(Vec<Val>, Vec<End>, Tracker, TrackerDone)> {
        let FlowingCall {
            export,
            label,
            mut params,
            ends,
            types,
            ..
        } = call;
        let func = warm.func(export, &label)?;
        let (tracker, finished) = Tracker::new();
        let outcome = self
            .run_on(warm, async |warm| {
                warm.store
                    .run_concurrent(async |store| {
                        store.with(|mut s| {
                            pipes::put_in(&mut s, &types.0, &mut params, ends, Some(&tracker))
                        })?;
                        let mut results = vec![Val::Bool(false); types.1.len()];
                        func.call_concurrent(store, &params, &mut results).await?;
                        let out = store.with(|mut s| {
                            pipes::take_out(&mut s, &types.1, &mut results, Some(&tracker))
                        })?;
                        Ok::<_, wasmtime::Error>((results, out))
                    })
                    .await?
            })
            .await
            .map_err(|e| e.context(format!("call to {label} failed")))?;
        Ok((outcome.0, outcome.1, tracker, finished))
    }

    /// The second part of [`InstancePool::call_flowing`]: drives the
    /// instance until the ends that crossed are finished and its tasks are
    /// done.
    async fn finish(&self, warm: &mut Warm, mut finished: TrackerDone) -> wasmtime::Result<()> {
        warm.store
            .run_concurrent(async |store| {
                while finished.recv().await.is_some() {}
                std::future::poll_fn(|cx| store.poll_no_interesting_tasks(cx)).await;
            })
            .await
    }

    fn take(&self) -> Option<Warm> {
        self.idle.lock().expect("pool lock").pop()
    }

    /// Puts an instance that served well back among the idle ones.
    pub fn give_back(&self, warm: Warm) {
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < MAX_IDLE {
            idle.push(warm);
        }
    }

    /// A new instance, not taken from the idle ones.
    pub async fn fresh_instance(&self) -> wasmtime::Result<Warm> {
        let mut store = Store::new(self.pre.engine(), HostState::new(self.sandbox.clone()));
        store.limiter(|state| &mut state.limits);
        store.set_hostcall_fuel(HOSTCALL_FUEL);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.set_epoch_deadline(1);
        let instance = self.pre.instantiate_async(&mut store).await.map_err(|e| {
            e.context(format!(
                "cannot instantiate component '{}'",
                self.sandbox.name
            ))
        })?;
        Ok(Warm {
            store,
            instance,
            funcs: HashMap::new(),
            typed: HashMap::new(),
        })
    }
}
