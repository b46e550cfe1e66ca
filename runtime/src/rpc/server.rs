//! The callee's side of a cross-process call: a worker's `Invoke` service.
//!
//! [`Exports`] is the table of every function the worker's group exports,
//! built once at assignment. A call is refused, before anything runs, when
//! the caller's certificate names another app or version, when the app's
//! call graph has no edge from the caller's group to the function, or the
//! `caller` it claims is not that edge's importer (`PermissionDenied`);
//! when its version is not the worker's, when the function is not served
//! here, or when its type fingerprint differs from the callee's. Each
//! function counts the calls that reached it, which `Control.Served`
//! reports. Errors name what was wrong in the call, never what the callee
//! expected, and escape whatever the call carried.

use super::flow;
use crate::codec::{self, FuncTypes};
use crate::link::handles::Handles;
use crate::link::pipes::{Ends, WINDOW};
use crate::link::typed::{ServeError, Shape, shape_of};
use crate::pool::FlowingCall;
use crate::pool::InstancePool;
use crate::rpc::authorize::Edges;
use crate::rpc::identity::{Identity, Role};
use crate::telemetry::logs::escaped;
use crate::telemetry::trace::{self, CallLabels, SpanSpec};
use crate::version::Version;
use crate::world::World;
use opentelemetry::Context;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::SpanKind;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use wasmtime::component::{Component, ComponentExportIndex, Val};
use weft_proto::v1::invoke_server::Invoke;
use weft_proto::v1::{
    CallReply, CallRequest, FlowCall, FlowDown, FlowReply, FlowUp, HandleType, ReleaseReply,
    ReleaseRequest, RenewReply, RenewRequest, ServedFunction, flow_down, flow_up,
};

/// One exported function that remote callers may call.
struct Exported {
    /// The component that exports it (a fused group's member, whose pool
    /// is the group's).
    component: String,
    pool: Arc<InstancePool>,
    index: ComponentExportIndex,
    types: FuncTypes,
    /// The typed path, for a signature that has one.
    shape: Option<Arc<dyn Shape>>,
    fingerprint: String,
    label: String,
    /// "INTERFACE/METHOD", its server spans' name.
    span_name: String,
    /// For a function whose values hold handles, its component's
    /// resource types.
    resources: Option<Arc<Resources>>,
    /// For a function whose values carry streams or futures, where they
    /// are; such a function is called with `Invoke.Flow` only.
    ends: Option<Arc<(Ends, Ends)>>,
    /// Calls that reached the callee.
    /// Where each caller's calls count themselves, as this callee saw them
    /// (the RPC left out).
    served: HashMap<String, Arc<crate::telemetry::metrics::MethodStats>>,
    calls: AtomicU64,
    /// Of those, the ones that failed.
    errors: AtomicU64,
}

/// The resources one component exports: each one's export index, tagged
/// with its place in `names` (its interface and name).
struct Resources {
    types: Vec<(ComponentExportIndex, u32)>,
    names: Vec<(String, String)>,
}

impl Resources {
    fn of(component: &Component, world: &World) -> Resources {
        let mut resources = Resources {
            types: Vec::new(),
            names: Vec::new(),
        };
        for iface in &world.exports {
            let Some(iface_index) = component.get_export_index(None, &iface.name) else {
                continue;
            };
            for resource in &iface.resources {
                if let Some(index) = component.get_export_index(Some(&iface_index), resource) {
                    let tag = resources.names.len() as u32;
                    resources.types.push((index, tag));
                    resources.names.push((iface.name.clone(), resource.clone()));
                }
            }
        }
        resources
    }
}

/// Every function a worker serves, by (component, interface, function).
pub struct Exports {
    app: String,
    group: String,
    version: Version,
    functions: HashMap<(String, String, String), Exported>,
    /// Which callers may call which of them.
    edges: Edges,
    /// The handles this worker lends to callers in other processes.
    handles: Arc<Handles>,
}

impl Exports {
    /// The exports of the components in `pools`, all of version `version`,
    /// lending handles from `handles`. Functions whose types cannot cross a
    /// process (streams, futures) are left out; resolution already refused
    /// any import of them.
    pub fn of(
        (app, group, version): (&str, &str, Version),
        components: &[(&str, &Component, &World, Arc<InstancePool>)],
        edges: Edges,
        handles: Arc<Handles>,
        metrics: &crate::telemetry::metrics::Metrics,
    ) -> Exports {
        let mut functions = HashMap::new();
        for (name, component, world, pool) in components {
            let engine = component.engine();
            let ty = component.component_type();
            let resources = Arc::new(Resources::of(component, world));
            for iface in &world.exports {
                let Some(iface_index) = component.get_export_index(None, &iface.name) else {
                    continue;
                };
                let Some(wasmtime::component::types::ComponentItem::ComponentInstance(inst)) =
                    ty.get_export(engine, &iface.name).map(|e| e.ty)
                else {
                    continue;
                };
                for func in &iface.functions {
                    let Some(wasmtime::component::types::ComponentItem::ComponentFunc(f)) =
                        inst.get_export(engine, &func.name).map(|e| e.ty)
                    else {
                        continue;
                    };
                    let (Some(index), Ok(types)) = (
                        component.get_export_index(Some(&iface_index), &func.name),
                        FuncTypes::of(&f),
                    ) else {
                        continue;
                    };
                    let key = (name.to_string(), iface.name.clone(), func.name.clone());
                    let ends = if func.has_streams {
                        let of = |types: Vec<wasmtime::component::types::Type>| Ends::of(types);
                        match (
                            of(f.params().map(|(_, t)| t).collect()),
                            of(f.results().collect()),
                        ) {
                            (Ok(params), Ok(results)) => Some(Arc::new((params, results))),
                            // Refused when the caller was linked.
                            _ => continue,
                        }
                    } else {
                        None
                    };
                    let (shape, fingerprint) = (shape_of(&types), types.fingerprint());
                    let exported = Exported {
                        component: name.to_string(),
                        served: served_stats(metrics, &edges, (group, &version), &key),
                        pool: pool.clone(),
                        index,
                        types,
                        shape,
                        fingerprint,
                        resources: func.has_handles.then(|| resources.clone()),
                        ends,
                        label: format!("{name}: {}#{}", iface.name, func.name),
                        span_name: format!("{}/{}", iface.name, func.name),
                        calls: AtomicU64::new(0),
                        errors: AtomicU64::new(0),
                    };
                    functions.insert(key, exported);
                }
            }
        }
        Exports {
            app: app.to_string(),
            group: group.to_string(),
            version,
            functions,
            edges,
            handles,
        }
    }

    /// Whether `who` may make `call`: a worker of this app and version,
    /// along an edge of the call graph, as the component it claims.
    fn authorize(&self, who: &Identity, call: &CallRequest) -> Result<(), Status> {
        let Role::Worker { version, group } = &who.role else {
            return Err(Status::permission_denied(format!(
                "{who} may not call components; only workers of the deployment do"
            )));
        };
        if who.app != self.app || version != self.version.as_str() {
            return Err(Status::permission_denied(format!(
                "{who} may not call this worker, which runs version {} of app '{}'; only \
                 processes of one version talk to each other",
                self.version, self.app
            )));
        }
        self.edges
            .allows(
                (group, &call.caller),
                (&call.target, &call.interface, &call.function),
            )
            .map_err(Status::permission_denied)
    }

    /// The function that `call` from `who` asks for, once it is sure the
    /// call may run: `who` may make it, and its version and type are the
    /// worker's.
    fn lookup(&self, who: &Identity, call: &CallRequest) -> Result<&Exported, Status> {
        self.authorize(who, call)?;
        if call.version != self.version.as_str() {
            return Err(Status::failed_precondition(format!(
                "version mismatch: this worker runs version {}, but the call from '{}' carries \
                 version {}; only processes of one deployment talk to each other",
                self.version,
                escaped(&call.caller),
                escaped(&call.version)
            )));
        }
        let key = (
            call.target.clone(),
            call.interface.clone(),
            call.function.clone(),
        );
        let Some(f) = self.functions.get(&key) else {
            return Err(Status::not_found(format!(
                "this worker does not serve {}: {}#{}",
                escaped(&key.0),
                escaped(&key.1),
                escaped(&key.2)
            )));
        };
        if call.fingerprint != f.fingerprint {
            // The callee's own fingerprint stays here: it would tell a
            // prober what to send.
            return Err(Status::failed_precondition(format!(
                "type fingerprint mismatch for {}: the call from '{}' carries {}, which is not \
                 the callee's; caller and callee were built from different WIT",
                f.label,
                escaped(&call.caller),
                escaped(&call.fingerprint)
            )));
        }
        Ok(f)
    }

    /// The server span of a call of `f` from `caller`, whose client span
    /// (or trace, when that is not sampled) is `parent`.
    fn span(&self, f: &Exported, call: &CallRequest, parent: Context) -> Context {
        let attributes = || {
            CallLabels {
                app: &self.app,
                version: self.version.as_str(),
                group: &self.group,
                caller: &call.caller,
                callee: &call.target,
                interface: &call.interface,
                method: &call.function,
            }
            .attributes()
        };
        let spec = SpanSpec {
            name: &f.span_name,
            kind: SpanKind::Server,
            attributes: &attributes,
        };
        trace::child(&parent, &spec).unwrap_or(parent)
    }

    /// Runs one call from `who`, in a span whose parent is `parent`.
    async fn call(
        &self,
        who: &Identity,
        call: CallRequest,
        parent: Context,
    ) -> Result<CallReply, Status> {
        let f = self.lookup(who, &call)?;
        if f.ends.is_some() {
            return Err(Status::failed_precondition(format!(
                "{} passes streams or futures; it is called with Invoke.Flow",
                f.label
            )));
        }
        let cx = self.span(f, &call, parent);
        let started = std::time::Instant::now();
        let served = match &f.resources {
            Some(resources) => {
                let from = Holder {
                    caller: &call.caller,
                    holder: call.holder,
                    session: call.session,
                };
                self.serve_handles(f, resources, from, &call.payload)
                    .with_context(cx.clone())
                    .await
            }
            None => {
                self.serve(f, &call.caller, &call.payload)
                    .with_context(cx.clone())
                    .await
            }
        };
        trace::end(
            &cx,
            served.as_ref().err().map(|e| e as &dyn std::fmt::Display),
        );
        // Authorized, so the caller is one the call graph names.
        if let Some(stats) = f.served.get(&call.caller) {
            let response = served.as_ref().map_or(0, |r| r.payload.len());
            stats.record(
                started.elapsed(),
                served.is_err(),
                call.payload.len() as u64,
                response as u64,
            );
        }
        served
    }

    /// Runs a call from `who` whose values carry streams or futures: the
    /// frames of its parameters' ends come on `up`; the reply, then the
    /// frames of its results' ends, go down the stream returned. The call
    /// runs while this waits for its reply, so a caller that goes away
    /// (the RPC is cancelled) cancels it.
    async fn flow(
        &self,
        who: &Identity,
        flow_call: FlowCall,
        mut up: tonic::Streaming<FlowUp>,
        parent: Context,
        timeout: Option<std::time::Duration>,
    ) -> Result<ReceiverStream<Result<FlowDown, Status>>, Status> {
        let call = flow_call
            .request
            .ok_or_else(|| Status::invalid_argument("the flow's first message has no call"))?;
        let f = self.lookup(who, &call)?;
        let Some(ends) = &f.ends else {
            return Err(Status::failed_precondition(format!(
                "{} passes no streams or futures; it is called with Invoke.Call",
                f.label
            )));
        };
        if f.resources.is_some() {
            return Err(Status::failed_precondition(format!(
                "{} passes handles and streams in one call, which cannot cross processes",
                f.label
            )));
        }
        let params = codec::decode_all(&f.types.params, &call.payload).map_err(|e| {
            Status::invalid_argument(format!("the arguments for {} do not decode: {e}", f.label))
        })?;
        let cx = self.span(f, &call, parent);
        let (mut incoming, param_ends) = flow::Incoming::open(&flow_call.ends);
        let (down, down_rx) = tokio::sync::mpsc::channel(WINDOW);
        let (stop_tx, mut stop_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        // Frames of the parameters' ends, and word of results' ends whose
        // reader went away. A weak sender: the answer's stream ends when
        // the call's ends do, whatever the caller still sends.
        let weak_down = down.downgrade();
        tokio::spawn(async move {
            while let Ok(Some(message)) = up.message().await {
                let Some(flow_up::Part::Frame(frame)) = message.part else {
                    continue;
                };
                if frame.dropped {
                    let _ = stop_tx.send(frame.end);
                    continue;
                }
                let end = frame.end;
                if incoming.deliver(frame).await
                    && let Some(down) = weak_down.upgrade()
                {
                    let dropped = FlowDown {
                        part: Some(flow_down::Part::Frame(flow::dropped(end))),
                    };
                    let _ = down.send(Ok(dropped)).await;
                }
            }
        });
        f.calls.fetch_add(1, Ordering::Relaxed);
        let limit = f.pool.host_wait_limit();
        let deadline = std::time::Instant::now() + timeout.map_or(limit, |t| t.min(limit));
        let answer = f
            .pool
            .call_flowing(FlowingCall {
                export: f.index,
                label: Arc::from(f.label.as_str()),
                params,
                ends: param_ends,
                types: ends.clone(),
                deadline,
            })
            .with_context(cx.clone())
            .await;
        trace::end(
            &cx,
            answer.as_ref().err().map(|e| e as &dyn std::fmt::Display),
        );
        let (results, result_ends) = answer.map_err(|e| {
            f.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(caller = %escaped(&call.caller), "{e:#}");
            Status::internal(format!("{e:#}"))
        })?;
        let mut payload = Vec::new();
        codec::encode_all(&f.types.results, &results, &mut payload)
            .map_err(|e| Status::internal(format!("the results of {}: {e}", f.label)))?;
        let reply = FlowDown {
            part: Some(flow_down::Part::Reply(FlowReply {
                reply: Some(CallReply {
                    payload: payload.into(),
                    ..CallReply::default()
                }),
                ends: flow::kinds(&result_ends),
            })),
        };
        down.send(Ok(reply))
            .await
            .map_err(|_| Status::cancelled("the caller went away"))?;
        let mut stops = flow::send_ends(result_ends, down, |frame| {
            Ok(FlowDown {
                part: Some(flow_down::Part::Frame(frame)),
            })
        });
        tokio::spawn(async move {
            while let Some(end) = stop_rx.recv().await {
                stops.stop(end);
            }
        });
        Ok(ReceiverStream::new(down_rx))
    }

    /// Runs function `f` for `caller` with the encoded `payload`.
    async fn serve(
        &self,
        f: &Exported,
        caller: &str,
        payload: &bytes::Bytes,
    ) -> Result<CallReply, Status> {
        let decode_error = |e: codec::DecodeError| {
            Status::invalid_argument(format!("the arguments for {} do not decode: {e}", f.label))
        };
        let call_error = |e: wasmtime::Error| {
            f.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(caller = %escaped(caller), "{e:#}");
            Status::internal(format!("{e:#}"))
        };
        let payload = match &f.shape {
            // Arguments that do not decode never reach the callee, so only
            // the other outcomes count as calls, a call whose caller went
            // away midway (the RPC cancelled) among them.
            Some(shape) => {
                let reached = Reached(Some(&f.calls));
                match shape.serve(&f.pool, f.index, &f.label, payload).await {
                    Ok(payload) => payload,
                    Err(ServeError::Decode(e)) => {
                        reached.not_reached();
                        return Err(decode_error(e));
                    }
                    Err(ServeError::Call(e)) => return Err(call_error(e)),
                }
            }
            None => {
                let params = codec::decode_all(&f.types.params, payload).map_err(decode_error)?;
                f.calls.fetch_add(1, Ordering::Relaxed);
                let mut results = vec![Val::Bool(false); f.types.results.len()];
                f.pool
                    .call_export(f.index, &f.label, &params, &mut results)
                    .await
                    .map_err(call_error)?;
                let mut payload = Vec::new();
                codec::encode_all(&f.types.results, &results, &mut payload)
                    .map_err(|e| Status::internal(format!("the results of {}: {e}", f.label)))?;
                payload
            }
        };
        Ok(CallReply {
            payload: payload.into(),
            ..CallReply::default()
        })
    }

    /// Runs function `f`, whose values hold handles, for `from`: the
    /// handles it passes are numbers this worker lent, and those it
    /// returns are lent to `from`'s process.
    async fn serve_handles(
        &self,
        f: &Exported,
        resources: &Resources,
        from: Holder<'_>,
        payload: &bytes::Bytes,
    ) -> Result<CallReply, Status> {
        let mut params = codec::decode_all(&f.types.params, payload).map_err(|e| {
            Status::invalid_argument(format!("the arguments for {} do not decode: {e}", f.label))
        })?;
        let inbound = self
            .handles
            .take_lent(
                &f.component,
                from.holder,
                from.session,
                &f.types.params,
                &mut params,
            )
            .map_err(|e| Status::failed_precondition(format!("{}: {e}", f.label)))?;
        f.calls.fetch_add(1, Ordering::Relaxed);
        let mut results = vec![Val::Bool(false); f.types.results.len()];
        let deadline = std::time::Instant::now() + f.pool.host_wait_limit();
        let (index, label) = (f.index, &f.label);
        let returned = self
            .handles
            .call(
                &f.pool,
                inbound,
                deadline,
                &resources.types,
                &mut results,
                async |warm, results| {
                    let func = warm.func(index, label)?;
                    func.call_async(&mut warm.store, &params, results).await
                },
            )
            .await
            .map_err(|e| {
                f.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(caller = %escaped(from.caller), "{e:#}");
                Status::internal(format!("{e:#}"))
            })?;
        let (session, tags) = self.handles.lend(returned, from.holder, &mut results);
        let mut payload = Vec::new();
        codec::encode_all(&f.types.results, &results, &mut payload)
            .map_err(|e| Status::internal(format!("the results of {}: {e}", f.label)))?;
        Ok(CallReply {
            payload: payload.into(),
            session,
            handles: tags
                .into_iter()
                .map(|t| {
                    let (interface, resource) = resources.names[t as usize].clone();
                    HandleType {
                        interface,
                        resource,
                    }
                })
                .collect(),
        })
    }

    /// Whether `who` may keep or drop handles of `version`: a worker of
    /// this app and version.
    fn authorize_holder(&self, who: &Identity, version: &str) -> Result<(), Status> {
        match &who.role {
            Role::Worker { version: v, .. }
                if who.app == self.app && v == self.version.as_str() && version == v =>
            {
                Ok(())
            }
            _ => Err(Status::permission_denied(format!(
                "{who} may not keep or drop handles here; only workers of version {} of app \
                 '{}' hold them",
                self.version, self.app
            ))),
        }
    }
}

/// The time a call may take, from its `grpc-timeout` header: digits and
/// a unit (`H`, `M`, `S`, `m`, `u`, `n`).
fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<std::time::Duration> {
    parse_grpc_timeout(metadata.get("grpc-timeout")?.to_str().ok()?)
}

fn parse_grpc_timeout(text: &str) -> Option<std::time::Duration> {
    use std::time::Duration;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The stats in which a function `(component, interface, function)` of
/// `group` counts the calls it serves, one per component that the call
/// graph lets call it; none when telemetry is off.
fn served_stats(
    metrics: &crate::telemetry::metrics::Metrics,
    edges: &Edges,
    (group, version): (&str, &Version),
    (component, interface, function): &(String, String, String),
) -> HashMap<String, Arc<crate::telemetry::metrics::MethodStats>> {
    if !crate::telemetry::enabled() {
        return HashMap::new();
    }
    edges
        .callers_of(component, interface)
        .into_iter()
        .map(|caller| {
            let key = crate::telemetry::metrics::MethodKey {
                caller: caller.to_string(),
                component: component.clone(),
                interface: interface.clone(),
                method: function.clone(),
                remote: true,
                group: group.to_string(),
                version: version.as_str().to_string(),
            };
            (caller.to_string(), metrics.served(key))
        })
        .collect()
}

/// Counts a call that reached its callee when dropped: at its end, or when
/// the caller went away midway.
struct Reached<'a>(Option<&'a AtomicU64>);

impl Reached<'_> {
    /// The call never reached its callee: it is not counted.
    fn not_reached(mut self) {
        self.0 = None;
    }
}

impl Drop for Reached<'_> {
    fn drop(&mut self) {
        if let Some(calls) = self.0 {
            calls.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Who makes a call that passes handles: the calling component, its
/// process (which holds the handles) and the pinned instance it names.
struct Holder<'a> {
    caller: &'a str,
    holder: u64,
    session: u64,
}

impl Exports {
    /// How many calls each function has run, sorted by component, interface
    /// and function.
    pub fn served(&self) -> Vec<ServedFunction> {
        let mut served: Vec<ServedFunction> = self
            .functions
            .iter()
            .map(|((component, interface, function), f)| ServedFunction {
                component: component.clone(),
                interface: interface.clone(),
                function: function.clone(),
                calls: f.calls.load(Ordering::Relaxed),
                errors: f.errors.load(Ordering::Relaxed),
                typed: f.shape.is_some(),
            })
            .collect();
        served.sort_by(|a, b| {
            (&a.component, &a.interface, &a.function).cmp(&(
                &b.component,
                &b.interface,
                &b.function,
            ))
        });
        served
    }
}

/// The `Invoke` service: calls are refused until the worker has its
/// assignment, then run against its [`Exports`].
#[derive(Clone, Default)]
pub struct InvokeService {
    exports: Arc<OnceLock<Exports>>,
}

impl InvokeService {
    /// Starts serving `exports`; a worker is assigned once, so this says
    /// whether it was assigned now.
    pub fn assign(&self, exports: Exports) -> bool {
        self.exports.set(exports).is_ok()
    }

    /// The calls each exported function has run; none before assignment.
    pub fn served(&self) -> Vec<ServedFunction> {
        self.exports.get().map(Exports::served).unwrap_or_default()
    }
}

impl InvokeService {
    /// The exports, or a refusal that callers try elsewhere.
    fn exports(&self) -> Result<&Exports, Status> {
        self.exports.get().ok_or_else(|| {
            let mut status = Status::unavailable(
                "this worker has no assignment yet; try again once it is serving",
            );
            status
                .metadata_mut()
                .insert(weft_proto::NOT_SERVING_HEADER, "1".parse().expect("ASCII"));
            status
        })
    }
}

#[tonic::async_trait]
impl Invoke for InvokeService {
    type FlowStream = ReceiverStream<Result<FlowDown, Status>>;

    async fn flow(
        &self,
        request: Request<tonic::Streaming<FlowUp>>,
    ) -> Result<Response<Self::FlowStream>, Status> {
        let exports = self.exports()?;
        let who = crate::rpc::connect::caller(&request)?;
        let parent = trace::extract(&trace::MetadataReader(request.metadata()));
        let timeout = grpc_timeout(request.metadata());
        let mut up = request.into_inner();
        let Some(FlowUp {
            part: Some(flow_up::Part::Call(call)),
        }) = up.message().await?
        else {
            return Err(Status::invalid_argument(
                "a flow must start with its call, and only with it",
            ));
        };
        exports
            .flow(&who, call, up, parent, timeout)
            .await
            .map(Response::new)
    }

    async fn renew(&self, request: Request<RenewRequest>) -> Result<Response<RenewReply>, Status> {
        let exports = self.exports()?;
        let who = crate::rpc::connect::caller(&request)?;
        let renew = request.into_inner();
        exports.authorize_holder(&who, &renew.version)?;
        let kept = exports.handles.renew(renew.holder);
        Ok(Response::new(RenewReply { kept }))
    }

    async fn release(
        &self,
        request: Request<ReleaseRequest>,
    ) -> Result<Response<ReleaseReply>, Status> {
        let exports = self.exports()?;
        let who = crate::rpc::connect::caller(&request)?;
        let release = request.into_inner();
        exports.authorize_holder(&who, &release.version)?;
        exports
            .handles
            .release(release.holder, &release.handles)
            .await;
        Ok(Response::new(ReleaseReply {}))
    }

    async fn call(&self, request: Request<CallRequest>) -> Result<Response<CallReply>, Status> {
        let exports = self.exports()?;
        let who = crate::rpc::connect::caller(&request)?;
        let parent = trace::extract(&trace::MetadataReader(request.metadata()));
        exports
            .call(&who, request.into_inner(), parent)
            .await
            .map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_grpc_timeout;
    use std::time::Duration;

    #[test]
    fn grpc_timeouts_read_as_their_unit_says() {
        assert_eq!(
            parse_grpc_timeout("1500m"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("7n"), Some(Duration::from_nanos(7)));
        for bad in ["", "m", "12", "123456789S", "1x", "-1S", "1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
