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
use weft_proto::v1::{CallReply, CallRequest, ServedFunction};

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
    /// Calls that reached the callee.
    calls: AtomicU64,
    /// Of those, the ones that failed.
    errors: AtomicU64,
}

/// Every function a worker serves, by (component, interface, function).
pub struct Exports {
    app: String,
    group: String,
    version: Version,
    functions: HashMap<(String, String, String), Exported>,
    /// Which callers may call which of them.
    edges: Edges,
}

impl Exports {
    /// The exports of the components in `pools`, all of version `version`.
    /// Functions whose types cannot cross a process (resources, streams)
    /// are left out; resolution already refused any import of them.
    pub fn of(
        engine: &Engine,
        (app, group, version): (&str, &str, Version),
        components: &[(&Component, &World, Arc<InstancePool>)],
        edges: Edges,
    ) -> Exports {
        let mut functions = HashMap::new();
        for (component, world, pool) in components {
            let ty = component.component_type();
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
        let served = self
            .serve(f, &call.caller, &call.payload)
            .with_context(cx.clone())
            .await;
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
        })
    }
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

#[tonic::async_trait]
impl Invoke for InvokeService {
    async fn call(&self, request: Request<CallRequest>) -> Result<Response<CallReply>, Status> {
        let Some(exports) = self.exports.get() else {
            let mut status = Status::unavailable(
                "this worker has no assignment yet; try again once it is serving",
            );
            status
                .metadata_mut()
                .insert(weft_proto::NOT_SERVING_HEADER, "1".parse().expect("ASCII"));
            return Err(status);
        };
        let who = crate::rpc::connect::caller(&request)?;
        let parent = trace::extract(&trace::MetadataReader(request.metadata()));
        exports
            .call(&who, request.into_inner(), parent)
            .await
            .map(Response::new)
    }
}
