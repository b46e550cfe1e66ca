//! A worker: one replica of one group, in a process of its own.
//!
//! A worker starts empty, serving `Control`, `Invoke` and `grpc.health.v1`
//! on its gRPC address. It learns its group in one of two ways:
//!
//! - **From a manager** (`weft deploy`): `Assign` gives it the app, the
//!   plan, its group and the routing table, with fixed peer addresses.
//! - **From a config folder** (Kubernetes, plain machines): `weft worker
//!   --config DIR --group G` reads `weft.toml`, `plan.toml` and
//!   `cluster.toml` ([`cluster`](super::cluster)), and finds the replicas of
//!   each group it calls through [`discovery`](crate::discovery): the
//!   group's headless Service of the same version, or a `--peers` list,
//!   probed for health.
//!
//! Either way it loads the app itself, checks that the version it computes
//! from the files is the one it was given, links its group's components
//! (with forwarders to the other groups' replicas), starts serving calls
//! and its listeners, and only then says it is ready.
//!
//! Every connection is mutual TLS ([`crate::rpc::connect`]): `Control`
//! takes calls from the manager (and weft's commands) only, `Invoke` from
//! workers of the same version along the app's call graph only, checked
//! against the worker's [`Edges`]. On Kubernetes a second, plain-text
//! port serves `grpc.health.v1` alone, for the kubelet's probes.
//!
//! A manager also passes a worker the listening sockets of the listeners
//! it serves ([`crate::handoff`]): while its version is the only one that
//! runs, the worker accepts there itself (`Accept`), so a request costs no
//! hop through the manager.
//!
//! `Drain` stops the listeners and waits for their requests; `Shutdown`,
//! SIGTERM, or the end of its standard input (the manager is gone) make it
//! say it is not ready, drain and exit.

use super::cluster::{ClusterConfig, ConfigDir};
use crate::app::{App, Placement, Prepared};
use crate::cache::CompileCache;
use crate::capability::EmbeddedStores;
use crate::discovery::{self, Peers, Source, Watch};
use crate::handoff::Turn;
use crate::kv::KeyValueStore;
use crate::kv::slot::StoreSlot;
use crate::manifest::ManifestFile;
use crate::resolve::Provider;
use crate::rpc::Dialer;
use crate::rpc::authorize::Edges;
use crate::rpc::client::Replicas;
use crate::rpc::connect::{Allow, ServerSecurity};
use crate::rpc::health::{Health, HealthProbe};
use crate::rpc::identity::Role;
use crate::rpc::server::InvokeService;
use crate::rpc::store::RemoteStore;
use crate::telemetry::metrics::Snapshot;
use crate::telemetry::wire;
use crate::version::Version;
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
    AcceptReply, AcceptRequest, Assigned, Assignment, ComponentLoad, DrainReply, DrainRequest,
    HealthReply, HealthRequest, MetricsReply, MetricsRequest, ReleaseStoreReply,
    ReleaseStoreRequest, ServedReply, ServedRequest, ShutdownReply, ShutdownRequest,
    TakeStoreReply, TakeStoreRequest,
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
    app: Arc<App>,
    /// Tells the listeners to stop.
    stop_listeners: watch::Sender<bool>,
    /// The listeners' tasks, taken by the first drain.
    listeners: Option<JoinSet<()>>,
    /// Its turns at the listener sockets its manager passed it.
    turns: Vec<Arc<Turn>>,
    /// The embedded store, which moves between it and the manager.
    store: Option<MovingStore>,
    /// The discovery of the groups it calls, for as long as it serves.
    _watches: Vec<Watch>,
    /// How each component was loaded.
    loads: Vec<ComponentLoad>,
}

/// A worker's embedded store: where its calls go, and the manager's store
/// behind it.
#[derive(Clone)]
struct MovingStore {
    slot: Arc<StoreSlot>,
    manager: Arc<RemoteStore>,
}

/// A group to serve, however the worker learned of it.
struct Launch {
    prepared: Prepared,
    replica: u32,
    placement: Placement,
    /// Where stores on embedded backends live (the manager's).
    embedded: EmbeddedStores,
    /// The listeners it serves, with their addresses.
    listeners: BTreeMap<String, SocketAddr>,
    /// Whether to accept on the passed listener sockets from the start.
    accept_shared: bool,
    store: Option<MovingStore>,
    watches: Vec<Watch>,
    /// The calls between groups that the app's graph allows.
    edges: Edges,
}

/// Where a worker outside a manager finds its group.
#[derive(Debug, Clone)]
pub struct ConfigLaunch {
    /// The config folder (a mounted ConfigMap).
    pub config: PathBuf,
    /// Its `cluster.toml`, read once by the command.
    pub cluster: ClusterConfig,
    /// The folder of the component binaries that `weft.toml` names.
    pub components: PathBuf,
    /// The group to serve.
    pub group: String,
    /// Fixed replica addresses for some groups, instead of their Services.
    pub peers: BTreeMap<String, Vec<String>>,
    /// The compile cache.
    pub cache_dir: PathBuf,
    /// The compiled code the image carries, looked at before the cache.
    pub compiled: Option<PathBuf>,
}

/// The worker's state, shared by its `Control` service and its main loop.
pub struct Worker {
    /// How this worker is named in logs, such as `back/0`.
    name: String,
    /// Makes the channels of every call it makes.
    dialer: Dialer,
    /// What every call it serves must prove.
    security: ServerSecurity,
    invoke: InvokeService,
    health: Health,
    phase: Mutex<Phase>,
    /// Whether an assignment is being loaded, so a second one is refused.
    assigning: Mutex<bool>,
    /// Set by the first drain: an assignment still loading then never serves.
    stopping: AtomicBool,
    shutdown: Notify,
    /// Why the worker could not start its group, when it stops for that.
    failure: Mutex<Option<String>>,
    /// The listener sockets its manager passed it, by listener name, until
    /// its group starts and takes them.
    sockets: Mutex<BTreeMap<String, std::net::TcpListener>>,
    /// Whether it should accept on them, as the last `Accept` said; held
    /// while one is applied, so that an older word is never applied last.
    told_to_accept: tokio::sync::Mutex<Option<bool>>,
}

impl Worker {
    /// A worker that dials with `dialer` and serves with `security`, with
    /// no assignment yet, and the listener `sockets` its manager passed it.
    pub async fn new(
        name: &str,
        dialer: Dialer,
        security: ServerSecurity,
        sockets: BTreeMap<String, std::net::TcpListener>,
    ) -> Arc<Worker> {
        Arc::new(Worker {
            name: name.to_string(),
            dialer,
            security,
            invoke: InvokeService::default(),
            health: Health::new().await,
            phase: Mutex::new(Phase::Starting),
            assigning: Mutex::new(false),
            stopping: AtomicBool::new(false),
            shutdown: Notify::new(),
            failure: Mutex::new(None),
            sockets: Mutex::new(sockets),
            told_to_accept: tokio::sync::Mutex::new(None),
        })
    }

    /// Loads the group that `launch` names, in the background; a worker
    /// that cannot stops, and [`Worker::serve`] returns why.
    pub fn launch_from_config(self: &Arc<Self>, launch: ConfigLaunch) {
        let worker = self.clone();
        tokio::spawn(async move {
            if let Err(status) = worker.take(worker.launch_of_config(&launch)).await {
                *worker.failure.lock().expect("failure lock") = Some(status.message().to_string());
                worker.shutdown.notify_one();
            }
        });
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
        let invoke = tonic::service::interceptor::InterceptedService::new(
            invoke,
            self.security.check(Allow::Workers),
        );
        let control = ControlServer::with_interceptor(
            ControlService {
                worker: self.clone(),
            },
            self.security.check(Allow::Observers),
        );
        let worker = self.clone();
        let stop = async move {
            tokio::select! {
                () = shutdown => {}
                () = worker.shutdown.notified() => {}
            }
            worker.drain().await;
        };
        // The health service checks no caller: it tells nothing but
        // whether the worker serves. Kubernetes' probes, which cannot
        // present a certificate, ask the probe port instead.
        self.security
            .builder()?
            .add_service(invoke)
            .add_service(control)
            .add_service(self.health.service())
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(socket).with_nodelay(Some(true)),
                stop,
            )
            .await
            .context("the worker's gRPC server failed")?;
        match self.failure.lock().expect("failure lock").take() {
            Some(failure) => Err(anyhow::anyhow!(failure)),
            None => Ok(()),
        }
    }

    /// Serves `grpc.health.v1` alone on `socket`, in plain text, for
    /// probes that cannot present a certificate (Kubernetes' kubelet). It
    /// answers only whether the worker is alive and ready.
    pub fn serve_probes(&self, socket: tokio::net::TcpListener) {
        drop(self.health.serve_probes(socket));
    }

    /// Checks that this worker's certificate names `group` of `version`.
    fn check_identity(&self, group: &str, version: &Version) -> anyhow::Result<()> {
        let identity = self.dialer.identity();
        match &identity.role {
            Role::Worker {
                version: v,
                group: g,
            } if g == group && v == version.as_str() => Ok(()),
            _ => anyhow::bail!(
                "this worker's certificate names {identity}, but it was to serve group '{group}' \
                 of version {version}; give it the certificate of that group and version"
            ),
        }
    }

    /// Stops the listeners and waits for their in-flight requests.
    async fn drain(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.health.set_ready(false).await;
        let (tasks, turns) = {
            let mut phase = self.phase.lock().expect("phase lock");
            match std::mem::replace(&mut *phase, Phase::Starting) {
                Phase::Serving(mut s) | Phase::Draining(mut s) => {
                    let _ = s.stop_listeners.send(true);
                    let tasks = s.listeners.take();
                    let turns = s.turns.clone();
                    *phase = Phase::Draining(s);
                    (tasks, turns)
                }
                Phase::Starting => (None, Vec::new()),
            }
        };
        if let Err(e) = accept_all(&turns, false).await {
            tracing::warn!("worker {}: {e:#}", self.name);
        }
        if let Some(mut tasks) = tasks {
            while tasks.join_next().await.is_some() {}
        }
    }

    /// Loads and starts a group, once: a second assignment is refused.
    async fn take(
        &self,
        launch: impl Future<Output = anyhow::Result<Launch>>,
    ) -> Result<(), Status> {
        {
            let mut assigning = self.assigning.lock().expect("assign lock");
            if *assigning {
                return Err(Status::already_exists(
                    "this worker already has an assignment",
                ));
            }
            *assigning = true;
        }
        match async { self.start(launch.await?).await }.await {
            Ok((serving, accept_shared)) => {
                *self.phase.lock().expect("phase lock") = Phase::Serving(serving);
                // A drain that came while the group loaded saw nothing to
                // stop; the listeners just started must stop too.
                if self.stopping.load(Ordering::SeqCst) {
                    self.drain().await;
                    return Err(Status::unavailable("the worker is stopping"));
                }
                // An `Accept` that came while the group loaded is newer
                // than the assignment.
                let told = self.told_to_accept.lock().await;
                if let Err(e) = self.accept(told.unwrap_or(accept_shared)).await {
                    tracing::error!("worker {}: {e:#}", self.name);
                    return Err(Status::failed_precondition(format!("{e:#}")));
                }
                self.health.set_ready(true).await;
                Ok(())
            }
            Err(e) => {
                tracing::error!("worker {}: {e:#}", self.name);
                Err(Status::failed_precondition(format!("{e:#}")))
            }
        }
    }

    /// Starts (`true`) or stops accepting on the listener sockets its
    /// manager passed it.
    async fn accept(&self, on: bool) -> anyhow::Result<()> {
        let turns = match &*self.phase.lock().expect("phase lock") {
            Phase::Serving(s) => s.turns.clone(),
            // A draining worker accepts nothing new.
            Phase::Draining(_) | Phase::Starting => return Ok(()),
        };
        accept_all(&turns, on).await
    }

    /// Its embedded store, once it serves a group that uses one.
    fn store(&self) -> Result<MovingStore, Status> {
        match &*self.phase.lock().expect("phase lock") {
            Phase::Serving(s) | Phase::Draining(s) => s.store.clone(),
            Phase::Starting => None,
        }
        .ok_or_else(|| Status::failed_precondition("this worker uses no embedded key-value store"))
    }

    /// The group a manager's assignment names, with the manager's fixed
    /// routing table and its key-value store.
    async fn launch_of_assignment(&self, a: Assignment) -> anyhow::Result<Launch> {
        let manifest = ManifestFile::load(a.manifest.as_ref())?;
        let cache = CompileCache::new(PathBuf::from(&a.cache_dir));
        let prepared = load(manifest, cache).await?;
        let plan = Plan::from_str(&a.plan, "the manager's plan", prepared.compiled.keys())?;
        let version = checked_version(&prepared, &plan, &a.version, "the manager deploys")?;
        self.check_identity(&a.group, &version)?;
        let group = plan
            .groups
            .get(&a.group)
            .with_context(|| format!("the plan has no group '{}'", a.group))?;
        let mut remote = BTreeMap::new();
        for route in &a.routes {
            let peers = Peers::fixed(route.addresses.clone());
            remote.insert(
                route.component.clone(),
                Arc::new(Replicas::new(peers, &self.dialer, &version)),
            );
        }
        let store = match a.store.as_str() {
            "" => None,
            address => {
                let manager = Arc::new(RemoteStore::new(address, &version, &self.dialer)?);
                let remote: Arc<dyn KeyValueStore> = manager.clone();
                let slot = match a.store_file.as_str() {
                    "" => StoreSlot::remote(remote),
                    file => StoreSlot::local(std::path::Path::new(file), remote)?,
                };
                Some(MovingStore {
                    slot: Arc::new(slot),
                    manager,
                })
            }
        };
        let embedded = EmbeddedStores {
            keyvalue: store
                .as_ref()
                .map(|s| s.slot.clone() as Arc<dyn KeyValueStore>),
            blobs: (!a.blobs.is_empty()).then(|| PathBuf::from(&a.blobs)),
        };
        let mut listeners = BTreeMap::new();
        for l in &a.listeners {
            let address: SocketAddr = l.address.parse().with_context(|| {
                format!("listener '{}': '{}' is not an address", l.name, l.address)
            })?;
            listeners.insert(l.name.clone(), address);
        }
        Ok(Launch {
            placement: Placement {
                group: a.group.clone(),
                local: group.components.iter().cloned().collect(),
                remote,
                version,
                fuse: group.fuse,
            },
            replica: a.replica,
            embedded,
            listeners,
            accept_shared: a.accept_shared,
            store,
            watches: Vec::new(),
            edges: Edges::of(&prepared.resolution, &plan),
            prepared,
        })
    }

    /// The group a config folder names; the groups it calls are found
    /// through their Services (or `--peers`), and watched.
    async fn launch_of_config(&self, launch: &ConfigLaunch) -> anyhow::Result<Launch> {
        let dir = ConfigDir {
            dir: launch.config.clone(),
        };
        let cluster = &launch.cluster;
        let mut manifest = ManifestFile::load(&dir.manifest())?;
        manifest.dir = launch.components.clone();
        let mut cache = CompileCache::new(launch.cache_dir.clone());
        if let Some(compiled) = &launch.compiled {
            cache = cache.with_image(compiled);
        }
        let prepared = load(manifest, cache).await?;
        let plan_file = launch.config.join(super::cluster::PLAN_FILE);
        let plan = Plan::from_str(
            &dir.plan_text()?,
            &plan_file.display().to_string(),
            prepared.compiled.keys(),
        )?;
        let version = checked_version(&prepared, &plan, &cluster.version, "cluster.toml names")?;
        let name = &launch.group;
        self.check_identity(name, &version)?;
        let group = plan.groups.get(name).with_context(|| {
            format!(
                "--group {name}: the plan has no such group; its groups are: {}",
                plan.groups.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        if let Some(unknown) = launch.peers.keys().find(|g| !plan.groups.contains_key(*g)) {
            anyhow::bail!("--peers {unknown}=...: the plan has no group '{unknown}'");
        }
        let manifest = &prepared.manifest.manifest;
        for component in &group.components {
            let spec = &manifest.components[component];
            if let Some(store) = crate::capability::embedded_stores(manifest, spec).first() {
                anyhow::bail!(
                    "component '{component}' keeps {} in an embedded store, which only `weft \
                     run` and `weft deploy` serve; {} to weft.toml",
                    store.what,
                    store.fix
                );
            }
        }
        let called = called_groups(&prepared, &plan, name);
        let probe = Arc::new(HealthProbe::new(self.dialer.clone(), version.clone()));
        let mut remote = BTreeMap::new();
        let mut watches = Vec::new();
        for callee in called {
            let source = match (launch.peers.get(&callee), cluster.groups.get(&callee)) {
                (Some(list), _) => Source::Static(list.clone()),
                (None, Some(peers)) => Source::Dns {
                    host: peers.service.clone(),
                    port: cluster.port,
                },
                (None, None) => anyhow::bail!(
                    "{}: no service for group '{callee}', which group '{name}' calls; give its \
                     replicas with --peers {callee}=HOST:PORT",
                    launch.config.join(super::cluster::CLUSTER_FILE).display()
                ),
            };
            let (peers, watch) =
                discovery::watch(&callee, source, probe.clone(), discovery::REFRESH);
            watches.push(watch);
            let replicas = Arc::new(Replicas::new(peers, &self.dialer, &version));
            for component in &plan.groups[&callee].components {
                remote.insert(component.clone(), replicas.clone());
            }
        }
        let mut listeners = BTreeMap::new();
        for (listener, spec) in &manifest.listeners {
            if !group.components.contains(&spec.component) {
                continue;
            }
            let binding = cluster.listeners.get(listener).with_context(|| {
                format!(
                    "{}: no address for listener '{listener}'; write the config again with \
                     weft kube",
                    launch.config.join(super::cluster::CLUSTER_FILE).display()
                )
            })?;
            listeners.insert(listener.clone(), binding.address);
        }
        Ok(Launch {
            placement: Placement {
                group: name.clone(),
                local: group.components.iter().cloned().collect(),
                remote,
                version,
                fuse: group.fuse,
            },
            replica: 0,
            embedded: EmbeddedStores::default(),
            listeners,
            accept_shared: false,
            store: None,
            watches,
            edges: Edges::of(&prepared.resolution, &plan),
            prepared,
        })
    }

    /// Links, warms and serves a group; with whether to accept on the
    /// passed listener sockets from the start.
    async fn start(&self, launch: Launch) -> anyhow::Result<(Serving, bool)> {
        let Launch {
            prepared,
            replica,
            placement,
            embedded,
            listeners,
            accept_shared,
            store,
            watches,
            edges,
        } = launch;
        let version = placement.version.clone();
        let group = placement.group.clone();
        let loads = prepared
            .compiled
            .iter()
            .map(|(component, c)| ComponentLoad {
                component: component.clone(),
                source: c.cache.as_str().to_string(),
                micros: u64::try_from(c.load_time.as_micros()).unwrap_or(u64::MAX),
            })
            .collect();
        let app = Arc::new(App::start(&prepared, Some(&placement), &embedded).await?);
        crate::telemetry::logs::set_process(&app.group, app.version.as_str());
        // Runs as long as the worker's runtime does.
        let _ = crate::telemetry::otlp_metrics::spawn(&app.metrics);
        let exports = prepared.exports(&app, version.clone(), edges);
        if !self.invoke.assign(exports) {
            anyhow::bail!("this worker already has an assignment");
        }
        let bound = app.bind_exactly(&listeners).await?;
        let mut sockets = std::mem::take(&mut *self.sockets.lock().expect("sockets lock"));
        let sticky =
            (prepared.manifest.manifest.deploy.as_ref()).is_some_and(|d| d.sticky_sessions);
        let mut turns = Vec::new();
        for listener in &bound {
            if let Some(socket) = sockets.remove(&listener.name) {
                turns.push(Arc::new(listener.turn(socket, version.as_str(), sticky)));
            }
        }
        if let Some(name) = sockets.keys().next() {
            anyhow::bail!(
                "the manager passed this worker the socket of listener '{name}', which its group \
                 '{group}' does not serve"
            );
        }
        let (stop_listeners, stopped) = watch::channel(false);
        let listener_tasks = crate::app::serve_bound(bound, stopped);
        say!(
            "weft worker {}: serving group '{group}' ({}), version {version}",
            self.name,
            placement
                .local
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
        let serving = Serving {
            version: version.to_string(),
            group,
            replica,
            app,
            stop_listeners,
            listeners: Some(listener_tasks),
            turns,
            store,
            _watches: watches,
            loads,
        };
        Ok((serving, accept_shared))
    }
}

/// Starts or stops accepting at every one of `turns` at once.
async fn accept_all(turns: &[Arc<Turn>], on: bool) -> anyhow::Result<()> {
    let mut switching = JoinSet::new();
    for turn in turns {
        let turn = turn.clone();
        switching.spawn(async move { turn.accept(on).await });
    }
    while let Some(switched) = switching.join_next().await {
        switched.context("switching a listener panicked")??;
    }
    Ok(())
}

/// Compiles and resolves the app, off the async threads.
async fn load(manifest: ManifestFile, cache: CompileCache) -> anyhow::Result<Prepared> {
    tokio::task::spawn_blocking(move || Prepared::load(manifest, &cache))
        .await
        .context("loading the app panicked")?
}

/// The version the files make, if it is `expected`.
fn checked_version(
    prepared: &Prepared,
    plan: &Plan,
    expected: &str,
    who: &str,
) -> anyhow::Result<Version> {
    let version = prepared.version(plan);
    anyhow::ensure!(
        version.as_str() == expected,
        "version mismatch: {who} version {expected} but this worker computes {version} from the \
         files it has; the manifest, the plan and the component binaries must all come from the \
         same version (did a file change during the deploy, or is the image built from another \
         version of the app?)"
    );
    Ok(version)
}

/// The groups other than `group` whose components `group`'s components call.
fn called_groups(
    prepared: &Prepared,
    plan: &Plan,
    group: &str,
) -> std::collections::BTreeSet<String> {
    plan.groups[group]
        .components
        .iter()
        .flat_map(|c| prepared.resolution.wires.get(c).into_iter().flatten())
        .filter_map(|wire| match &wire.provider {
            Provider::Component { name, .. } => plan.group_of(name).map(|(g, _)| g.to_string()),
            _ => None,
        })
        .filter(|g| g != group)
        .collect()
}

/// The ingress reads what a worker served; only the manager and people's
/// commands may change what it does.
fn refuse_the_ingress<T>(request: &Request<T>) -> Result<(), Status> {
    let who = crate::rpc::connect::caller(request)?;
    if who.role == Role::Ingress {
        return Err(Status::permission_denied(format!(
            "{who} may read this worker's counts, not change what it does"
        )));
    }
    Ok(())
}

/// The `Control` service of one worker.
struct ControlService {
    worker: Arc<Worker>,
}

#[tonic::async_trait]
impl Control for ControlService {
    async fn assign(&self, request: Request<Assignment>) -> Result<Response<Assigned>, Status> {
        refuse_the_ingress(&request)?;
        let worker = &self.worker;
        worker
            .take(worker.launch_of_assignment(request.into_inner()))
            .await?;
        Ok(Response::new(Assigned {}))
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
            loads: serving.map(|s| s.loads.clone()).unwrap_or_default(),
            store_error: serving
                .and_then(|s| s.store.as_ref())
                .and_then(|s| s.slot.health())
                .unwrap_or_default(),
        };
        Ok(Response::new(reply))
    }

    async fn served(&self, _: Request<ServedRequest>) -> Result<Response<ServedReply>, Status> {
        let functions = self.worker.invoke.served();
        Ok(Response::new(ServedReply { functions }))
    }

    async fn metrics(&self, _: Request<MetricsRequest>) -> Result<Response<MetricsReply>, Status> {
        let snapshot = match &*self.worker.phase.lock().expect("phase lock") {
            Phase::Serving(s) | Phase::Draining(s) => s.app.metrics.snapshot(),
            Phase::Starting => Snapshot::default(),
        };
        Ok(Response::new(wire::to_reply(&snapshot)))
    }

    async fn accept(
        &self,
        request: Request<AcceptRequest>,
    ) -> Result<Response<AcceptReply>, Status> {
        refuse_the_ingress(&request)?;
        let on = request.into_inner().accept;
        let mut told = self.worker.told_to_accept.lock().await;
        *told = Some(on);
        self.worker
            .accept(on)
            .await
            .map_err(|e| Status::internal(format!("{e:#}")))?;
        drop(told);
        Ok(Response::new(AcceptReply {}))
    }

    async fn take_store(
        &self,
        request: Request<TakeStoreRequest>,
    ) -> Result<Response<TakeStoreReply>, Status> {
        refuse_the_ingress(&request)?;
        let store = self.worker.store()?;
        let file = PathBuf::from(request.into_inner().file);
        store
            .slot
            .take(&file, store.manager.handover())
            .await
            .map_err(|e| Status::failed_precondition(format!("{e:#}")))?;
        say!(
            "weft worker {}: opened the key-value store {} (the only process that uses it)",
            self.worker.name,
            file.display()
        );
        Ok(Response::new(TakeStoreReply {}))
    }

    async fn release_store(
        &self,
        request: Request<ReleaseStoreRequest>,
    ) -> Result<Response<ReleaseStoreReply>, Status> {
        refuse_the_ingress(&request)?;
        self.worker.store()?.slot.release().await;
        Ok(Response::new(ReleaseStoreReply {}))
    }

    async fn drain(&self, request: Request<DrainRequest>) -> Result<Response<DrainReply>, Status> {
        refuse_the_ingress(&request)?;
        self.worker.drain().await;
        Ok(Response::new(DrainReply {}))
    }

    async fn shutdown(
        &self,
        request: Request<ShutdownRequest>,
    ) -> Result<Response<ShutdownReply>, Status> {
        refuse_the_ingress(&request)?;
        self.worker.shutdown.notify_one();
        Ok(Response::new(ShutdownReply {}))
    }
}
