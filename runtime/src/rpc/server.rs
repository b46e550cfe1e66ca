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

use crate::codec::{self, FuncTypes};
use crate::link::handles::Handles;
use crate::link::typed::{ServeError, Shape, shape_of};
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
use tonic::{Request, Response, Status};
use wasmtime::Engine;
use wasmtime::component::{Component, ComponentExportIndex, Val};
use weft_proto::v1::invoke_server::Invoke;
use weft_proto::v1::{
    CallReply, CallRequest, HandleType, ReleaseReply, ReleaseRequest, RenewReply, RenewRequest,
    ServedFunction,
};

/// One exported function that remote callers may call.
struct Exported {
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
    /// Calls that reached the callee.
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
        engine: &Engine,
        (app, group, version): (&str, &str, Version),
        components: &[(&Component, &World, Arc<InstancePool>)],
        edges: Edges,
        handles: Arc<Handles>,
    ) -> Exports {
        let mut functions = HashMap::new();
        for (component, world, pool) in components {
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
                    let key = (
                        pool.name().to_string(),
                        iface.name.clone(),
                        func.name.clone(),
                    );
                    let (shape, fingerprint) = (shape_of(&types), types.fingerprint());
                    let exported = Exported {
                        pool: pool.clone(),
                        index,
                        types,
                        shape,
                        fingerprint,
                        resources: func.has_handles.then(|| resources.clone()),
                        label: format!("{}: {}#{}", pool.name(), iface.name, func.name),
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

    /// Runs one call from `who`, in a span whose parent is `parent`.
    async fn call(
        &self,
        who: &Identity,
        call: CallRequest,
        parent: Context,
    ) -> Result<CallReply, Status> {
        self.authorize(who, &call)?;
        if call.version != self.version.as_str() {
            return Err(Status::failed_precondition(format!(
                "version mismatch: this worker runs version {}, but the call from '{}' carries \
                 version {}; only processes of one deployment talk to each other",
                self.version,
                escaped(&call.caller),
                escaped(&call.version)
            )));
        }
        let key = (call.target, call.interface, call.function);
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
        // The server span of the caller's client span, or its trace as it
        // is when that is not sampled.
        let attributes = || {
            CallLabels {
                app: &self.app,
                version: self.version.as_str(),
                group: &self.group,
                caller: &call.caller,
                callee: &key.0,
                interface: &key.1,
                method: &key.2,
            }
            .attributes()
        };
        let spec = SpanSpec {
            name: &f.span_name,
            kind: SpanKind::Server,
            attributes: &attributes,
        };
        let cx = trace::child(&parent, &spec).unwrap_or(parent);
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
        served
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
            // the other outcomes count as calls.
            Some(shape) => match shape.serve(&f.pool, f.index, &f.label, payload).await {
                Ok(payload) => {
                    f.calls.fetch_add(1, Ordering::Relaxed);
                    payload
                }
                Err(ServeError::Decode(e)) => return Err(decode_error(e)),
                Err(ServeError::Call(e)) => {
                    f.calls.fetch_add(1, Ordering::Relaxed);
                    return Err(call_error(e));
                }
            },
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
                f.pool.name(),
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
