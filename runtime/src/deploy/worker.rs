//! A worker: one replica of one group, in a process of its own.
//!
//! A worker starts empty, serving `Control` and `Invoke` on its gRPC
//! address. The manager's `Assign` gives it the app, the plan, its group and
//! the routing table. The worker then loads the app itself, checks that the
//! version it computes from the files is the one it was given, links its
//! group's components (with forwarders to the other groups' replicas),
//! starts serving calls and its listeners, and only then answers.
//!
//! `Drain` stops the listeners and waits for their requests; `Shutdown`,
//! SIGTERM, or the end of its standard input (the manager is gone) make it
//! drain and exit.

use crate::app::{App, Placement, Prepared};
use crate::cache::CompileCache;
use crate::discovery::Peers;
use crate::kv::KeyValueStore;
use crate::manifest::ManifestFile;
use crate::rpc::auth::{Check, Token};
use crate::rpc::client::Replicas;
use crate::rpc::server::InvokeService;
use crate::rpc::store::RemoteStore;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tonic::{Request, Response, Status};
use weft_placer::Plan;
use weft_proto::v1::control_server::{Control, ControlServer};
use weft_proto::v1::health_reply::State;
use weft_proto::v1::invoke_server::InvokeServer;
use weft_proto::v1::{
    Assigned, Assignment, DrainReply, DrainRequest, HealthReply, HealthRequest, ServedReply,
    ServedRequest, ShutdownReply, ShutdownRequest,
};

/// What a worker is doing.
enum Phase {
    /// Waiting for its assignment (or loading it).
    Starting,
    /// Serving its group.
    Serving(Serving),
    /// Its listeners are stopping or stopped.
    Draining(Serving),
}

/// An assigned worker's group and the listeners it serves.
struct Serving {
    version: String,
    group: String,
    replica: u32,
    /// The loaded app; its pools serve calls and listeners.
    _app: Arc<App>,
    /// Tells the listeners to stop.
    stop_listeners: watch::Sender<bool>,
    /// The listeners' tasks, taken by the first drain.
    listeners: Option<JoinSet<()>>,
}

/// The worker's state, shared by its `Control` service and its main loop.
pub struct Worker {
    /// How this worker is named in logs, such as `back/0`.
    name: String,
    /// The deployment's token: carried by every call it makes, and required
    /// of every call it serves.
    token: Token,
    invoke: InvokeService,
    phase: Mutex<Phase>,
    /// Whether an assignment is being loaded, so a second one is refused.
    assigning: Mutex<bool>,
    /// Set by the first drain: an assignment still loading then never serves.
    stopping: AtomicBool,
    shutdown: Notify,
}

impl Worker {
    /// A worker of the deployment whose token is `token`, with no
    /// assignment yet.
    pub fn new(name: &str, token: Token) -> Arc<Worker> {
        Arc::new(Worker {
            name: name.to_string(),
            token,
            invoke: InvokeService::default(),
            phase: Mutex::new(Phase::Starting),
            assigning: Mutex::new(false),
            stopping: AtomicBool::new(false),
            shutdown: Notify::new(),
        })
    }

    /// Serves `Control` and `Invoke` on `socket` until `shutdown` resolves or
    /// the manager asks it to stop; then drains its listeners and in-flight
    /// calls, and returns.
    pub async fn serve(
        self: Arc<Self>,
        socket: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let invoke = InvokeServer::new(self.invoke.clone())
            .max_decoding_message_size(crate::rpc::MAX_MESSAGE)
            .max_encoding_message_size(crate::rpc::MAX_MESSAGE);
        let control = ControlServer::new(ControlService {
            worker: self.clone(),
        });
        let worker = self.clone();
        let stop = async move {
            tokio::select! {
                () = shutdown => {}
                () = worker.shutdown.notified() => {}
            }
            worker.drain().await;
        };
        tonic::transport::Server::builder()
            .layer(tonic::service::InterceptorLayer::new(Check(
                self.token.clone(),
            )))
            .add_service(invoke)
            .add_service(control)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(socket).with_nodelay(Some(true)),
                stop,
            )
            .await
            .context("the worker's gRPC server failed")
    }

    /// Stops the listeners and waits for their in-flight requests.
    async fn drain(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let tasks = {
            let mut phase = self.phase.lock().expect("phase lock");
            match std::mem::replace(&mut *phase, Phase::Starting) {
                Phase::Serving(mut s) | Phase::Draining(mut s) => {
                    let _ = s.stop_listeners.send(true);
                    let tasks = s.listeners.take();
                    *phase = Phase::Draining(s);
                    tasks
                }
                Phase::Starting => None,
            }
        };
        if let Some(mut tasks) = tasks {
            while tasks.join_next().await.is_some() {}
        }
    }

    /// Loads and starts the assignment.
    async fn assign(&self, a: Assignment) -> anyhow::Result<Serving> {
        let manifest = ManifestFile::load(a.manifest.as_ref())?;
        let cache = CompileCache::new(PathBuf::from(&a.cache_dir));
        let prepared = tokio::task::spawn_blocking(move || Prepared::load(manifest, &cache))
            .await
            .context("loading the app panicked")??;
        let components = prepared.compiled.keys();
        let plan = Plan::from_str(&a.plan, "the manager's plan", components)?;
        let version = prepared.version(&plan);
        anyhow::ensure!(
            version.as_str() == a.version,
            "version mismatch: the manager deploys version {} but this worker computes {} from \
             the same files; did weft.toml or a component binary change during the deploy?",
            a.version,
            version
        );
        let group = plan
            .groups
            .get(&a.group)
            .with_context(|| format!("the plan has no group '{}'", a.group))?;
        let mut remote = BTreeMap::new();
        for route in &a.routes {
            remote.insert(
                route.component.clone(),
                Arc::new(Replicas::new(
                    Peers::fixed(route.addresses.clone()),
                    &self.token,
                )),
            );
        }
        let placement = Placement {
            local: group.components.iter().cloned().collect(),
            remote,
            version: version.clone(),
        };
        let keyvalue: Option<Arc<dyn KeyValueStore>> = match a.store.as_str() {
            "" => None,
            address => Some(Arc::new(RemoteStore::new(address, &version, &self.token)?)),
        };
        let app = Arc::new(App::start(&prepared, Some(&placement), keyvalue).await?);
        let exports = prepared.exports(&app, version.clone());
        if self.invoke.assign(exports).is_err() {
            anyhow::bail!("this worker already has an assignment");
        }
        let mut addresses = BTreeMap::new();
        for l in &a.listeners {
            let address: SocketAddr = l.address.parse().with_context(|| {
                format!("listener '{}': '{}' is not an address", l.name, l.address)
            })?;
            addresses.insert(l.name.clone(), address);
        }
        let bound = app.bind_exactly(&addresses).await?;
        let (stop_listeners, stopped) = watch::channel(false);
        let listeners = crate::app::serve_bound(bound, stopped);
        say!(
            "weft worker {}: serving group '{}' ({}), version {version}",
            self.name,
            a.group,
            group.components.join(", ")
        );
        Ok(Serving {
            version: version.to_string(),
            group: a.group,
            replica: a.replica,
            _app: app,
            stop_listeners,
            listeners: Some(listeners),
        })
    }
}

/// The `Control` service of one worker.
struct ControlService {
    worker: Arc<Worker>,
}

#[tonic::async_trait]
impl Control for ControlService {
    async fn assign(&self, request: Request<Assignment>) -> Result<Response<Assigned>, Status> {
        {
            let mut assigning = self.worker.assigning.lock().expect("assign lock");
            if *assigning {
                return Err(Status::already_exists(
                    "this worker already has an assignment",
                ));
            }
            *assigning = true;
        }
        match self.worker.assign(request.into_inner()).await {
            Ok(serving) => {
                *self.worker.phase.lock().expect("phase lock") = Phase::Serving(serving);
                // A drain that came while the group loaded saw nothing to
                // stop; the listeners just started must stop too.
                if self.worker.stopping.load(Ordering::SeqCst) {
                    self.worker.drain().await;
                    return Err(Status::unavailable("the worker is stopping"));
                }
                Ok(Response::new(Assigned {}))
            }
            Err(e) => {
                tracing::error!("worker {}: {e:#}", self.worker.name);
                Err(Status::failed_precondition(format!("{e:#}")))
            }
        }
    }

    async fn health(&self, _: Request<HealthRequest>) -> Result<Response<HealthReply>, Status> {
        let phase = self.worker.phase.lock().expect("phase lock");
        let (state, serving) = match &*phase {
            Phase::Starting => (State::Starting, None),
            Phase::Serving(s) => (State::Serving, Some(s)),
            Phase::Draining(s) => (State::Draining, Some(s)),
        };
        let reply = HealthReply {
            state: state.into(),
            version: serving.map(|s| s.version.clone()).unwrap_or_default(),
            group: serving.map(|s| s.group.clone()).unwrap_or_default(),
            replica: serving.map_or(0, |s| s.replica),
        };
        Ok(Response::new(reply))
    }

    async fn served(&self, _: Request<ServedRequest>) -> Result<Response<ServedReply>, Status> {
        let functions = self.worker.invoke.served();
        Ok(Response::new(ServedReply { functions }))
    }

    async fn drain(&self, _: Request<DrainRequest>) -> Result<Response<DrainReply>, Status> {
        self.worker.drain().await;
        Ok(Response::new(DrainReply {}))
    }

    async fn shutdown(
        &self,
        _: Request<ShutdownRequest>,
    ) -> Result<Response<ShutdownReply>, Status> {
        self.worker.shutdown.notify_one();
        Ok(Response::new(ShutdownReply {}))
    }
}
