//! The manager: what `weft deploy` runs. It wires the deploy side
//! together:
//!
//! - a [`WorkerSet`] per running version, started from the version's
//!   snapshot in the [`VersionStore`];
//! - an [`Ingress`] per listener, with a [`Backend`] per running version,
//!   whose weights say which version new requests go to;
//! - the key-value store every running version shares ([`StoreService`]);
//! - the [`Rollout`] that moves traffic from one version to the next and
//!   rolls back a worse one;
//! - the `Manager` gRPC service that `weft rollout`, `weft rollback` and
//!   `weft status` use, with the CLI's certificate;
//! - the deployment's [`Authority`], a CA made at each `weft deploy`, which
//!   issues the manager's, the CLI's (`.weft/cli/`) and every worker's
//!   certificate, so every connection between them is mutual TLS;
//! - the [`StateBook`] behind `.weft/deploy.json` and `weft status`.
//!
//! Outside a rollout exactly one version runs, with all the traffic, and
//! its workers accept the listeners' connections themselves, on sockets
//! the manager binds and passes them ([`crate::handoff`]). During a rollout
//! the manager's ingress accepts instead, and splits requests by weight;
//! at its end the version left running takes the sockets back.

use super::proposal::{self, Proposal, REPLAN_EVERY};
use crate::app::{Prepared, bind_listener, listener_addresses};
use crate::cache::CompileCache;
use crate::deploy::control::{Events, ManagerService};
use crate::deploy::driver::{
    self, Boxed, Ending, Event, Observed, Seams, Setup, SystemClock, Traffic, Watcher,
    schedule_line, shifted_line,
};
use crate::deploy::ingress::{Backend, Ingress, Replica};
use crate::deploy::lock::AppLock;
use crate::deploy::rollout::{Counts, Gate, Schedule};
use crate::deploy::state::{Accepting, DeployState, Phase, RolloutState, StateBook, VersionState};
use crate::deploy::store_home::{self, StoreHome};
use crate::deploy::versions::{Snapshot, VersionStore};
use crate::deploy::workers::{self, Deployment, WorkerSet};
use crate::handoff::Turn;
use crate::kv::redb::RedbStore;
use crate::manifest::{DeploySection, ManifestFile};
use crate::rpc::Dialer;
use crate::rpc::authorize::Buckets;
use crate::rpc::connect::{Allow, ServerSecurity};
use crate::rpc::identity::{Authority, Identity};
use crate::rpc::store::{LiveVersions, StoreService};
use crate::telemetry::admin::{self, Answer, Source};
use crate::telemetry::dashboard::{GroupView, View};
use crate::telemetry::profile::{self, Layout};
use crate::telemetry::window::{CallRate, Window};
use crate::telemetry::{metrics, wire};
use crate::version::Version;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_placer::Plan;
use weft_proto::v1::control_client::ControlClient;
use weft_proto::v1::manager_server::ManagerServer;
use weft_proto::v1::rollout_event::Outcome;
use weft_proto::v1::store_server::StoreServer;
use weft_proto::v1::{HealthRequest, MetricsRequest, RolloutRequest, ServedRequest};

/// How many versions the store keeps for `weft rollback`, by default.
pub const KEEP_VERSIONS: usize = 3;

/// How long a worker that holds the store's file (or is restarting with
/// it) has to let it go when a rollout begins.
const STORE_MOVE: Duration = Duration::from_secs(30);

/// What `weft deploy` was asked to do.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// A weft.toml, or a folder that holds one.
    pub path: PathBuf,
    /// `monolith`, `split`, a plan file, or `None` for the manifest's `[deploy]` table.
    pub plan: Option<String>,
    /// Whether to run each component's `build` command first.
    pub build: bool,
    /// Where the key-value store keeps its file, instead of `.weft/data`.
    pub data_dir: Option<PathBuf>,
    /// Listener addresses that replace the manifest's, by listener name.
    pub listen: BTreeMap<String, SocketAddr>,
    /// The compile cache directory.
    pub cache_dir: PathBuf,
    /// How many versions the version store keeps, for `weft rollback`.
    pub keep: usize,
    /// Where to serve the admin pages (`/metrics`), if anywhere.
    pub admin: Option<SocketAddr>,
}

/// `--plan auto`: the plan `weft plan` chooses.
pub const AUTO_PLAN: &str = "auto";

/// The plan `--plan NAME` names: `monolith`, `split`, or a plan file.
pub fn named_plan(name: &str, manifest: &ManifestFile) -> anyhow::Result<Plan> {
    let components = manifest.manifest.components.keys();
    if let Some(plan) = Plan::builtin(name, components.clone()) {
        return Ok(plan);
    }
    if name == AUTO_PLAN && !Path::new(name).exists() {
        anyhow::bail!(
            "--plan auto moves a running app (weft rollout --plan auto); to start one on the \
             chosen plan, write it with `weft plan --profile FILE -o plan.toml` and give \
             --plan plan.toml"
        );
    }
    let text = std::fs::read_to_string(name).with_context(|| {
        format!(
            "--plan {name}: cannot read the plan file; give `monolith`, `split` or the path of a \
             plan file"
        )
    })?;
    Ok(Plan::from_str(&text, name, components)?)
}

/// The plan named by `--plan`, else the manifest's `[deploy]` table, else
/// `otherwise` (the monolith for a first deploy); it must honour the
/// manifest's `[placement]` constraints.
pub fn choose_plan(
    choice: Option<&str>,
    manifest: &ManifestFile,
    otherwise: impl FnOnce() -> Plan,
) -> anyhow::Result<Plan> {
    let plan = match choice {
        Some(name) => named_plan(name, manifest)?,
        None => manifest
            .manifest
            .deploy
            .as_ref()
            .and_then(DeploySection::plan)
            .unwrap_or_else(otherwise),
    };
    let which = choice.map_or("the plan".to_string(), |name| format!("--plan {name}"));
    check_placement(manifest, &plan, &which)?;
    Ok(plan)
}

/// Refuses `plan`, called `which` in the message, when it breaks any of
/// the manifest's `[placement]` constraints, naming each one.
pub fn check_placement(manifest: &ManifestFile, plan: &Plan, which: &str) -> anyhow::Result<()> {
    let broken = manifest.manifest.placement.violations(plan);
    if broken.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = broken.iter().map(|p| format!("  - {p}")).collect();
    anyhow::bail!(
        "{}: {which} breaks the manifest's [placement] constraints:\n{}\nchoose a plan that \
         honours them (groups in [deploy] or a plan file), or change the constraints",
        manifest.path.display(),
        lines.join("\n")
    )
}

/// The manifest at `path`, with its path and folder made absolute, as
/// workers and snapshots need them.
pub fn load_absolute(path: &Path) -> anyhow::Result<ManifestFile> {
    let mut manifest = ManifestFile::load(path)?;
    manifest.path = std::path::absolute(&manifest.path)
        .with_context(|| format!("cannot resolve {}", manifest.path.display()))?;
    manifest.dir = manifest
        .path
        .parent()
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    Ok(manifest)
}

/// One running version.
struct Running {
    version: Version,
    plan: Plan,
    workers: Arc<WorkerSet>,
    /// The group that may hold the embedded store's file itself, if any.
    store_owner: Option<String>,
    /// Its backend at each listener, by listener name.
    backends: BTreeMap<String, Arc<Backend>>,
}

/// A deployment: its versions, listeners and store.
pub struct Manager {
    app: String,
    /// The app's own manifest, which `weft rollout` reads again.
    manifest_path: PathBuf,
    versions: VersionStore,
    cache_dir: PathBuf,
    control: SocketAddr,
    /// Issues every worker's certificate.
    authority: Arc<Authority>,
    /// Makes the manager's channels to its workers.
    dialer: Dialer,
    data_dir: PathBuf,
    /// Where the embedded key-value store is open.
    home: Arc<StoreHome>,
    live: LiveVersions,
    ingresses: BTreeMap<String, Arc<Ingress>>,
    /// The ingress's turn at each listener's socket, by listener name.
    turns: BTreeMap<String, Arc<Turn>>,
    /// Each listener's socket, as passed to the workers.
    sockets: BTreeMap<String, RawFd>,
    listener_components: BTreeMap<String, String>,
    book: Arc<StateBook>,
    running: Mutex<Vec<Arc<Running>>>,
    /// Held by the rollout under way; one at a time.
    rolling: tokio::sync::Mutex<()>,
    /// Set once the deployment is stopping: a rollout gives up.
    stopping: tokio::sync::watch::Sender<bool>,
    /// How many versions the store keeps.
    keep: usize,
    /// Snapshots of the workers' metrics, for the last minute's rates.
    window: Mutex<Window>,
    /// The plan the last re-planning proposed, if any.
    proposal: Mutex<Option<Proposal>>,
}

/// Deploys the app, serves it until `shutdown` resolves, then drains the
/// listeners and stops every version's workers.
pub async fn run(options: DeployOptions, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let manifest = load_absolute(&options.path)?;
    // Taken before anything else, so that a second `weft deploy` of the
    // app changes nothing of the running one.
    let _lock = AppLock::acquire(&manifest.dir, &manifest.path)?;
    if options.build {
        crate::builder::build_components(&manifest)?;
    }
    let plan = choose_plan(options.plan.as_deref(), &manifest, || {
        Plan::monolith(manifest.manifest.components.keys())
    })?;
    let cache_dir =
        std::path::absolute(&options.cache_dir).context("cannot resolve the cache directory")?;
    let name = manifest.manifest.app.name.clone();
    say!(
        "weft: loading app '{name}' from {}",
        manifest.path.display()
    );
    // Off the async threads, so that a signal stops a long compile.
    tokio::pin!(shutdown);
    let checking = {
        let (manifest, plan, cache_dir) = (manifest.clone(), plan.clone(), cache_dir.clone());
        tokio::task::spawn_blocking(move || check_and_store(&manifest, &plan, &cache_dir))
    };
    let snapshot = tokio::select! {
        checked = checking => checked.context("checking the app panicked")??,
        () = &mut shutdown => anyhow::bail!("stopped while loading the app"),
    };
    let version = snapshot.version.clone();
    say!("weft: version {version}, plan:");
    for (group, g) in &plan.groups {
        say!(
            "weft:   group {group} ×{}: {}",
            g.replicas.count(),
            g.components.join(", ")
        );
    }

    // Every connection between this deployment's processes is mutual TLS
    // with certificates of its own CA, made anew for each deployment and
    // kept in .weft/ca (0600). `weft rollout` and `weft status` present
    // the CLI's certificate, in .weft/cli.
    let weft_dir = manifest.dir.join(".weft");
    let authority = Arc::new(Authority::generate(&name)?);
    authority.save(&weft_dir.join("ca"))?;
    authority
        .issue(&Identity::cli(&name))?
        .write_dir(&weft_dir.join("cli"))?;
    let credentials = authority.issue(&Identity::manager(&name))?;

    let control_socket = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the manager's control address on 127.0.0.1")?;
    let control = control_socket.local_addr()?;
    // Listeners are bound before any worker starts, so a busy port fails fast.
    let addresses = listener_addresses(&manifest, &options.listen)?;
    let mut sockets = Vec::new();
    for (listener, address) in &addresses {
        let socket = bind_listener(listener, *address).await?.into_std()?;
        sockets.push((listener.clone(), socket.local_addr()?, socket));
    }
    let listener_components: BTreeMap<String, String> = manifest
        .manifest
        .listeners
        .iter()
        .map(|(n, l)| (n.clone(), l.component.clone()))
        .collect();
    let sticky = manifest
        .manifest
        .deploy
        .as_ref()
        .is_some_and(|d| d.sticky_sessions);
    let ingresses: BTreeMap<String, Arc<Ingress>> = listener_components
        .iter()
        .map(|(l, c)| {
            let limits = manifest.manifest.listeners[l].limits();
            (l.clone(), Arc::new(Ingress::new(l, c, sticky, limits)))
        })
        .collect();
    let mut turns = BTreeMap::new();
    let mut descriptors = BTreeMap::new();
    for (listener, _, socket) in sockets.iter() {
        let ingress = ingresses[listener].clone();
        let handler = move |request| ingress.clone().handle(request);
        let limits = manifest.manifest.listeners[listener].limits();
        let turn = Turn::new(listener, socket.try_clone()?, handler, limits);
        descriptors.insert(listener.clone(), turn.descriptor());
        turns.insert(listener.clone(), Arc::new(turn));
    }
    let book = Arc::new(StateBook::new(
        DeployState::path(&manifest.dir),
        DeployState {
            app: name.clone(),
            version: version.to_string(),
            control: control.to_string(),
            pid: std::process::id(),
            listeners: sockets
                .iter()
                .map(|(n, a, _)| (n.clone(), a.to_string()))
                .collect(),
            ..DeployState::default()
        },
    ));
    let data_dir = options
        .data_dir
        .clone()
        .unwrap_or_else(|| manifest.dir.join(".weft").join("data"));
    let manager = Arc::new(Manager {
        app: name.clone(),
        manifest_path: manifest.path.clone(),
        versions: VersionStore::new(&manifest.dir),
        cache_dir,
        control,
        authority,
        dialer: Dialer::new(credentials.clone()),
        home: Arc::new(StoreHome::new(RedbStore::file_in(&data_dir))),
        data_dir,
        live: LiveVersions::default(),
        ingresses,
        turns,
        sockets: descriptors,
        listener_components,
        book,
        running: Mutex::new(Vec::new()),
        rolling: tokio::sync::Mutex::new(()),
        stopping: tokio::sync::watch::channel(false).0,
        keep: options.keep.max(1),
        window: Mutex::default(),
        proposal: Mutex::default(),
    });

    // The manager's gRPC service: its control API and the key-value store.
    let (stop_control, control_stopped) = tokio::sync::watch::channel(false);
    let store_service = StoreServer::new(StoreService::new(
        manager.home.clone(),
        manager.live.clone(),
    ))
    .max_decoding_message_size(crate::rpc::MAX_MESSAGE)
    .max_encoding_message_size(crate::rpc::MAX_MESSAGE);
    let manager_service = ManagerServer::new(ManagerService {
        deployment: manager.clone(),
    });
    let mut stopped = control_stopped.clone();
    let security = ServerSecurity::new(credentials);
    let mut server = security.builder()?;
    let control_server = tokio::spawn(async move {
        server
            .add_service(tonic::service::interceptor::InterceptedService::new(
                store_service,
                security.check(Allow::Workers),
            ))
            .add_service(tonic::service::interceptor::InterceptedService::new(
                manager_service,
                security.check(Allow::Cli),
            ))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(control_socket)
                    .with_nodelay(Some(true)),
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            )
            .await
    });

    // The admin address serves the workers' metrics, added up, and the
    // dashboard.
    let admin = match options.admin {
        Some(address) => {
            let source = Arc::new(Deployed(manager.clone()));
            Some(admin::start(address, source, control_stopped.clone()).await?)
        }
        None => None,
    };

    // Ctrl-C while the workers load stops the deployment there.
    let started = tokio::select! {
        started = manager.start_version(&snapshot, true) => started,
        () = &mut shutdown => Err(anyhow::anyhow!("stopped while the workers were starting")),
    };
    let first = match started {
        Ok(first) => first,
        Err(e) => {
            manager.book.remove_file();
            let _ = stop_control.send(true);
            return Err(e);
        }
    };
    manager.set_weights(&[(&first, 100)]);
    tokio::spawn(manager.clone().sample_metrics());
    let every = manifest
        .manifest
        .deploy
        .as_ref()
        .and_then(|d| d.replan_every)
        .map_or(REPLAN_EVERY, |t| t.0);
    tokio::spawn(manager.clone().keep_replanning(every));
    for r in first.workers.replicas() {
        say!("weft: worker {} serving on {}", r.name(), r.address);
    }

    for (listener, address, _) in &sockets {
        let component = &manager.listener_components[listener];
        say!("weft: listener {listener} on http://{address} (component {component})");
    }
    // Each turn holds its socket open, at the descriptor every worker is
    // passed, for as long as the manager runs.
    drop(sockets);
    say!("weft: app '{name}' is running, version {version}; press Ctrl-C to stop");
    shutdown.await;
    say!("weft: stopping: draining requests, then the workers");
    manager.stopping.send_replace(true);
    manager.ingress_accepts(false).await;
    // A rollout under way gives up and stops what it started.
    let _rolling = manager.rolling.lock().await;
    let running: Vec<Arc<Running>> = manager.running.lock().expect("running lock").clone();
    for r in running {
        manager.retire(&r).await;
    }
    let _ = stop_control.send(true);
    if let Ok(Err(e)) = control_server.await {
        tracing::warn!("the manager's gRPC server failed: {e}");
    }
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    manager.book.remove_file();
    say!("weft: stopped");
    Ok(())
}

/// Checks the app as `weft run` does (the same errors), then stores its
/// snapshot; the two must agree on the version.
fn check_and_store(
    manifest: &ManifestFile,
    plan: &Plan,
    cache_dir: &Path,
) -> anyhow::Result<Snapshot> {
    // Compiling here checks the whole app before any worker starts, and
    // fills the compile cache the workers then load from.
    let prepared = Prepared::load(
        manifest.clone(),
        &CompileCache::new(cache_dir.to_path_buf()),
    )?;
    let version = prepared.version(plan);
    drop(prepared);
    // Workers load from the version's snapshot, never from the app's own
    // files, which the user may edit or rebuild while the version runs.
    let snapshot = VersionStore::new(&manifest.dir).snapshot(manifest, plan)?;
    anyhow::ensure!(
        snapshot.version == version,
        "{}: the app's files changed while they were being checked (version {version} was \
         checked, {} was stored); try again",
        manifest.path.display(),
        snapshot.version
    );
    Ok(snapshot)
}

impl Manager {
    /// Whether the embedded key-value store serves, once it is open.
    pub async fn store_state(&self) -> Option<crate::deploy::state::StoreState> {
        if !self.home.in_use() {
            return None;
        }
        let error = match self.home.worker() {
            None => self.home.health(),
            Some(worker) => self.store_error_in(&worker).await,
        };
        Some(crate::deploy::state::StoreState {
            healthy: error.is_none(),
            error,
            held_by: self.home.worker().unwrap_or_else(|| "manager".to_string()),
            manager_calls: self.home.calls(),
        })
    }

    /// Why the store fails in `worker`, which holds its file, if it does.
    async fn store_error_in(&self, worker: &str) -> Option<String> {
        let running: Vec<Arc<Running>> = self.running.lock().expect("running lock").clone();
        let (workers, spec) = running.iter().find_map(|r| {
            let spec = r.workers.replicas().iter().find(|s| s.name() == worker)?;
            r.workers
                .holds_store()
                .then(|| (r.workers.clone(), spec.clone()))
        })?;
        let asked = async {
            let mut control = ControlClient::new(workers.channel(&spec)?);
            let reply = control.health(HealthRequest {}).await?;
            anyhow::Ok(reply.into_inner().store_error)
        };
        match tokio::time::timeout(Duration::from_secs(1), asked).await {
            Ok(Ok(error)) => (!error.is_empty()).then_some(error),
            Ok(Err(e)) => Some(format!(
                "worker {worker}, which holds it, does not answer: {e:#}"
            )),
            Err(_) => Some(format!("worker {worker}, which holds it, does not answer")),
        }
    }

    /// The deployment's state now, with each version's counts.
    pub fn status(&self) -> DeployState {
        let mut state = self.book.snapshot();
        let running = self.running.lock().expect("running lock").clone();
        for r in &running {
            if let Some(v) = state.version_mut(r.version.as_str()) {
                for b in r.backends.values() {
                    v.forwarded += b.counts.requests.load(Ordering::Relaxed);
                    v.requests += b.counts.requests.load(Ordering::Relaxed);
                    v.failed_requests += b.counts.failed.load(Ordering::Relaxed);
                }
            }
        }
        state
    }

    /// The deployment's state now, with every version's requests as its
    /// workers counted them: those they accepted themselves, and those the
    /// ingress forwarded.
    async fn live_status(&self) -> DeployState {
        let mut state = self.status();
        let metrics = self.metrics().await;
        for v in &mut state.versions {
            let answered = metrics
                .listeners
                .iter()
                .filter(|(key, _)| key.version == v.version)
                .map(|(_, counts)| counts);
            let (requests, failed) = answered.fold((0, 0), |(n, failed), c| {
                (n + c.requests(), failed + c.failed())
            });
            // A worker that did not answer leaves its requests out; never
            // fewer than the ingress saw.
            v.requests = v.requests.max(requests);
            v.failed_requests = v.failed_requests.max(failed);
        }
        state
    }

    /// Starts `snapshot`'s workers and adds the version to every listener,
    /// with no share of requests yet; with `accepting`, its workers accept
    /// on the listeners' sockets from the start. On any failure, stops
    /// what started.
    async fn start_version(
        self: &Arc<Self>,
        snapshot: &Snapshot,
        accepting: bool,
    ) -> anyhow::Result<Arc<Running>> {
        let version = snapshot.version.clone();
        let manifest = ManifestFile::load(&snapshot.manifest)?;
        let prepared = Prepared::load(manifest, &CompileCache::new(self.cache_dir.clone()))?;
        let uses_store = prepared.uses_embedded_keyvalue();
        let store_owner = uses_store
            .then(|| store_home::owner_of(&prepared.manifest.manifest, &snapshot.plan))
            .flatten();
        // The owner opens the file from the start, unless the manager holds
        // it (as it does during a rollout: it moves after).
        let owner_opens = store_owner.is_some() && !self.home.is_here();
        if uses_store {
            match &store_owner {
                Some(group) if owner_opens => {
                    let worker = store_home::owner_worker(group);
                    self.home.send_to(&worker).await;
                    say!(
                        "weft: key-value data in {} (opened by worker {worker}, the only process \
                         that uses it)",
                        self.home.file().display()
                    );
                }
                _ => self.open_store().await?,
            }
        }
        let buckets = Buckets::of(&prepared.manifest.manifest, &snapshot.plan);
        // Every worker of this machine opens the blob folder itself.
        let blobs = prepared
            .uses_blobstore()
            .then(|| crate::blob::fs::FsBlobs::root_in(&self.data_dir));
        if let Some(dir) = &blobs {
            say!("weft: blobs in {} (each worker opens it)", dir.display());
        }
        drop(prepared);
        let replicas = workers::layout_on_free_ports(&snapshot.plan, &self.listener_components)
            .context("cannot find free loopback ports for the workers")?;
        let deployment = Deployment {
            app: self.app.clone(),
            manifest: snapshot.manifest.clone(),
            plan: snapshot.plan.clone(),
            version: version.clone(),
            cache_dir: self.cache_dir.clone(),
            control: self.control,
            serves_store: uses_store,
            store_owner: store_owner.clone(),
            store_file: self.home.file().to_path_buf(),
            blobs,
            sockets: self.sockets.clone(),
            authority: self.authority.clone(),
            dialer: self.dialer.clone(),
        };
        self.book.update(|s| {
            s.versions.push(VersionState {
                version: version.to_string(),
                phase: Phase::Starting,
                weight: 0,
                groups: snapshot
                    .plan
                    .groups
                    .iter()
                    .map(|(g, group)| (g.clone(), group.components.clone()))
                    .collect(),
                fused: snapshot
                    .plan
                    .groups
                    .iter()
                    .filter(|(_, group)| group.fuse && group.components.len() > 1)
                    .map(|(g, _)| g.clone())
                    .collect(),
                requests: 0,
                failed_requests: 0,
                forwarded: 0,
            });
        });
        let workers = WorkerSet::new(deployment, replicas, self.book.clone(), accepting)?;
        workers.set_holds_store(owner_opens);
        say!(
            "weft: version {version}: starting {} worker(s); manager on {}",
            workers.replicas().len(),
            self.control
        );
        // The store takes this version's calls from its first worker on.
        self.live
            .write()
            .expect("live versions lock")
            .insert(version.to_string(), buckets);
        if let Err(e) = workers.start().await {
            workers.stop().await;
            self.forget(&version);
            return Err(e);
        }
        let backends: BTreeMap<String, Arc<Backend>> = self
            .ingresses
            .keys()
            .map(|listener| {
                let replicas = replicas_of(&workers, listener);
                (
                    listener.clone(),
                    Arc::new(Backend::new(version.clone(), replicas)),
                )
            })
            .collect();
        for (listener, backend) in &backends {
            self.ingresses[listener].add(backend.clone());
        }
        let running = Arc::new(Running {
            version: version.clone(),
            plan: snapshot.plan.clone(),
            workers,
            store_owner,
            backends,
        });
        self.running
            .lock()
            .expect("running lock")
            .push(running.clone());
        self.book.update(|s| {
            if let Some(v) = s.version_mut(version.as_str()) {
                v.phase = Phase::Serving;
            }
        });
        Ok(running)
    }

    /// Starts (`true`) or stops the ingress accepting at every listener;
    /// stopping ends the client connections it holds gently.
    async fn ingress_accepts(&self, on: bool) {
        // A deployment that is stopping takes no new connections.
        if on && *self.stopping.borrow() {
            return;
        }
        for turn in self.turns.values() {
            if let Err(e) = turn.accept(on).await {
                tracing::error!("{e:#}");
            }
        }
        self.book.update(|s| {
            s.accepting = if on {
                Accepting::Ingress
            } else {
                Accepting::Workers
            }
        });
    }

    /// The ingress takes the listeners from the workers of `versions`: it
    /// accepts first, then they stop, so no connection waits unaccepted.
    async fn to_ingress(&self, versions: &[&Arc<Running>]) {
        self.ingress_accepts(true).await;
        for running in versions {
            running.workers.accept(false).await;
        }
    }

    /// `running`'s workers take the listeners from the ingress: they
    /// accept first, then it stops. If one of them cannot, the ingress
    /// keeps accepting, so that no listener is left with nobody to accept.
    async fn to_workers(&self, running: &Arc<Running>) {
        if running.workers.accept(true).await {
            self.ingress_accepts(false).await;
        } else {
            tracing::warn!(
                "version {}'s workers did not all take the listeners; the manager's ingress \
                 keeps accepting them",
                running.version
            );
        }
    }

    /// Opens the key-value store in the manager, once.
    async fn open_store(&self) -> anyhow::Result<()> {
        if self.home.is_here() {
            return Ok(());
        }
        self.home.open_here().await?;
        say!(
            "weft: key-value data in {} (served to the workers)",
            self.home.file().display()
        );
        Ok(())
    }

    /// The store's file moves to the manager from `running`'s worker, if
    /// that worker holds it: calls that reach the manager meanwhile wait.
    /// A worker that is restarting is asked until it answers; if the file
    /// cannot move, it stays with the worker and the error says why.
    async fn store_to_manager(&self, running: &Running) -> anyhow::Result<()> {
        let (Some(worker), Some(group)) = (self.home.worker(), &running.store_owner) else {
            return Ok(());
        };
        running.workers.set_holds_store(false);
        self.home.expect_back();
        let deadline = Instant::now() + STORE_MOVE;
        let released = loop {
            match running.workers.release_store(group).await {
                Ok(()) => break Ok(()),
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("worker {worker} cannot let the store go yet: {e:#}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = released {
            running.workers.set_holds_store(true);
            self.home.send_to(&worker).await;
            anyhow::bail!("worker {worker} did not let the key-value store go: {e:#}");
        }
        match self.home.open_here().await {
            Ok(()) => {
                say!("weft: the key-value store moved to the manager from worker {worker}");
                Ok(())
            }
            Err(e) => Err(e.context("the manager cannot open the key-value store")),
        }
    }

    /// The store's file moves from the manager to `running`'s worker, if
    /// that worker is the only process that uses it.
    async fn store_to_worker(&self, running: &Running) {
        let Some(group) = &running.store_owner else {
            return;
        };
        if !self.home.is_here() {
            return;
        }
        self.home
            .expect_taker(Some((running.version.as_str(), group.as_str())));
        running.workers.set_holds_store(true);
        let taken = running.workers.take_store(group, self.home.file()).await;
        self.home.expect_taker(None);
        match taken {
            Ok(()) => say!(
                "weft: the key-value store moved to worker {}, its only user",
                store_home::owner_worker(group)
            ),
            Err(e) => {
                tracing::warn!(
                    "worker {} did not take the key-value store: {e:#}",
                    store_home::owner_worker(group)
                );
                running.workers.set_holds_store(false);
                if let Err(e) = self.open_store().await {
                    tracing::error!("the manager cannot open the key-value store: {e:#}");
                }
            }
        }
    }

    /// Gives each version its share of new requests, in percent.
    fn set_weights(&self, weights: &[(&Arc<Running>, u8)]) {
        for (running, weight) in weights {
            for backend in running.backends.values() {
                backend.set_weight(*weight);
            }
        }
        self.book.update(|s| {
            for (running, weight) in weights {
                if let Some(v) = s.version_mut(running.version.as_str()) {
                    v.weight = *weight;
                }
            }
            if let Some((top, _)) = weights.iter().max_by_key(|(_, w)| *w) {
                s.version = top.version.to_string();
            }
        });
    }

    /// Takes a version out of the listeners, lets its requests finish, and
    /// stops its workers.
    async fn retire(&self, running: &Arc<Running>) {
        for backend in running.backends.values() {
            backend.set_weight(0);
        }
        self.book.update(|s| {
            if let Some(v) = s.version_mut(running.version.as_str()) {
                v.phase = Phase::Draining;
                v.weight = 0;
            }
        });
        for listener in running.backends.keys() {
            self.ingresses[listener].remove(&running.version);
        }
        running.workers.stop().await;
        for backend in running.backends.values() {
            for replica in backend.replicas().iter() {
                replica.forget_connections();
            }
        }
        self.running
            .lock()
            .expect("running lock")
            .retain(|r| r.version != running.version);
        self.forget(&running.version);
    }

    /// Drops every trace of a version that no longer runs.
    fn forget(&self, version: &Version) {
        self.live
            .write()
            .expect("live versions lock")
            .remove(version.as_str());
        self.book.update(|s| {
            s.versions.retain(|v| v.version != version.as_str());
            s.workers.retain(|w| w.version != version.as_str());
        });
    }

    /// Every running worker's metrics, added up. A worker that does not
    /// answer within a second is left out of this snapshot.
    pub async fn metrics(&self) -> metrics::Snapshot {
        let running: Vec<Arc<Running>> = self.running.lock().expect("running lock").clone();
        let mut asks = tokio::task::JoinSet::new();
        for (workers, spec) in running
            .iter()
            .flat_map(|r| r.workers.replicas().iter().map(|s| (&r.workers, s)))
        {
            let Ok(channel) = workers.channel(spec) else {
                continue;
            };
            asks.spawn(async move {
                let mut control = ControlClient::new(channel);
                let ask = control.metrics(MetricsRequest {});
                match tokio::time::timeout(Duration::from_secs(1), ask).await {
                    Ok(Ok(reply)) => Some(wire::from_reply(reply.into_inner())),
                    _ => None,
                }
            });
        }
        let mut snapshots = Vec::new();
        while let Some(answer) = asks.join_next().await {
            snapshots.extend(answer.ok().flatten());
        }
        metrics::Snapshot::merge(&snapshots)
    }

    /// Every method called in the last minute, with its rates: the
    /// workers' counts now, against the window's oldest snapshot.
    pub async fn method_rates(&self) -> Vec<CallRate> {
        let current = self.metrics().await;
        self.window
            .lock()
            .expect("window lock")
            .rates(Instant::now(), &current)
    }

    /// Samples the workers' metrics for the last minute's rates, for as
    /// long as the deployment runs.
    async fn sample_metrics(self: Arc<Self>) {
        let mut stopping = self.stopping.subscribe();
        tokio::select! {
            () = admin::keep_sampling(&self.window, || self.metrics()) => {}
            _ = stopping.wait_for(|s| *s) => {}
        }
    }

    /// Re-plans every `every` from the last minute's counts, for as long as
    /// the deployment runs, and keeps the proposal (see
    /// [`proposal`](super::proposal)); its plan file is removed when there
    /// is none.
    async fn keep_replanning(self: Arc<Self>, every: Duration) {
        let mut stopping = self.stopping.subscribe();
        let mut costs = None;
        let file = self
            .manifest_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(".weft")
            .join("proposed-plan.toml");
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
            // What a call between processes costs here, measured once.
            if costs.is_none() {
                match crate::rpc::calibrate::measure().await {
                    Ok(measured) => costs = Some(measured),
                    Err(e) => tracing::warn!("cannot time a call between processes: {e:#}"),
                }
            }
            let Some(costs) = costs else { continue };
            let proposal = self.replan(costs, &file).await;
            if proposal.is_none() {
                let _ = std::fs::remove_file(&file);
            }
            *self.proposal.lock().expect("proposal lock") = proposal;
        }
    }

    /// The plan to propose now, written to `file`, if one is worth it; none
    /// while a rollout moves the app. It does not hold the rollout lock,
    /// which would refuse a `weft rollout` that came meanwhile: it looks
    /// before and after.
    async fn replan(&self, costs: weft_placer::Costs, file: &Path) -> Option<Proposal> {
        let rolling = || self.rolling.try_lock().is_err();
        if rolling() {
            return None;
        }
        let manifest = load_absolute(&self.manifest_path).ok()?;
        let serving = self.running.lock().expect("running lock").first()?.clone();
        let current = self.metrics().await;
        let (since, base) = self.window.lock().expect("window lock").base()?;
        let seconds = since.elapsed().as_secs_f64();
        let mut layout = Layout::of(&manifest);
        for (group, g) in &serving.plan.groups {
            for c in &g.components {
                layout.groups.insert(c.clone(), group.clone());
            }
        }
        let profile = profile::between(&layout, &base, &current, seconds);
        let (plan, mut proposal) = proposal::consider(
            &layout.components,
            &manifest.manifest.placement,
            &profile,
            costs,
            &serving.plan,
        )?;
        if rolling() {
            return None;
        }
        std::fs::create_dir_all(file.parent()?).ok()?;
        std::fs::write(file, plan.to_toml()).ok()?;
        proposal.plan_file = file.display().to_string();
        Some(proposal)
    }

    /// Both versions' counts now: requests at the listeners, and calls
    /// between components that the workers served.
    async fn counts(&self, running: &Running) -> Counts {
        let mut counts = Counts::default();
        for backend in running.backends.values() {
            counts.requests += backend.counts.requests.load(Ordering::Relaxed);
            counts.failed_requests += backend.counts.failed.load(Ordering::Relaxed);
        }
        for spec in running.workers.replicas() {
            let Ok(channel) = running.workers.channel(spec) else {
                continue;
            };
            let mut control = ControlClient::new(channel);
            let served = control.served(ServedRequest {});
            if let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_secs(1), served).await {
                for f in reply.into_inner().functions {
                    counts.calls += f.calls;
                    counts.failed_calls += f.errors;
                }
            }
        }
        counts
    }

    /// Runs one rollout (or rollback) as `request` asks, telling `events`
    /// how it goes.
    async fn rollout(self: Arc<Self>, request: RolloutRequest, events: Events) {
        let Ok(_turn) = self.rolling.try_lock() else {
            return events
                .say(
                    Outcome::Failed,
                    "another rollout is under way; wait for it to end (weft status shows it)"
                        .into(),
                )
                .await;
        };
        if *self.stopping.borrow() {
            return events
                .say(Outcome::Failed, "the deployment is stopping".into())
                .await;
        }
        let from = {
            let running = self.running.lock().expect("running lock");
            running.first().cloned()
        };
        let Some(from) = from else {
            return events
                .say(Outcome::Failed, "no version is running".into())
                .await;
        };
        let target = match self.target(&request, &from) {
            Ok(snapshot) => snapshot,
            Err(e) => {
                return events
                    .say(
                        Outcome::Failed,
                        format!("{e:#}\nversion {} keeps all the traffic", from.version),
                    )
                    .await;
            }
        };
        if target.version == from.version {
            return events
                .say(
                    Outcome::Unchanged,
                    format!("version {} is already running; nothing to do", from.version),
                )
                .await;
        }
        let (from_v, to_v) = (from.version.clone(), target.version.clone());
        let verb = if request.rollback {
            "rolling back to"
        } else {
            "rolling out"
        };
        events
            .say(
                Outcome::Progress,
                format!("{verb} version {to_v} (from {from_v}): starting its workers"),
            )
            .await;
        // Both versions use the data during the shift: the manager holds it.
        if let Err(e) = self.store_to_manager(&from).await {
            return events
                .say(
                    Outcome::Failed,
                    format!("{e:#}\nversion {from_v} keeps all the traffic"),
                )
                .await;
        }
        let mut stopping = self.stopping.subscribe();
        let started = tokio::select! {
            started = self.start_version(&target, false) => started,
            _ = stopping.wait_for(|s| *s) => Err(anyhow::anyhow!("the deployment is stopping")),
        };
        let to = match started {
            Ok(to) => to,
            Err(e) => {
                self.store_to_worker(&from).await;
                return events
                    .say(
                        Outcome::Failed,
                        format!(
                            "version {to_v} could not start, so no traffic moved: {e:#}\n\
                             version {from_v} keeps all the traffic"
                        ),
                    )
                    .await;
            }
        };
        // The flags, else the manifest's [deploy] table, else the defaults.
        let table = load_absolute(&self.manifest_path)
            .ok()
            .and_then(|m| m.manifest.deploy)
            .unwrap_or_default();
        let setup = Setup::new(schedule_of(&request), gate_of(&request, &table));
        // Only the ingress can split requests between the versions.
        self.to_ingress(&[&from]).await;
        events
            .say(
                Outcome::Progress,
                schedule_line(&setup.schedule, to_v.as_str()),
            )
            .await;
        let pair = Pair {
            manager: self.clone(),
            from: from.clone(),
            to: to.clone(),
        };
        let mut watcher = Progress {
            book: self.book.clone(),
            events: &events,
            from: from_v.to_string(),
            to: to_v.to_string(),
            steps: setup.schedule.steps.clone(),
        };
        let stop = async move {
            let _ = stopping.wait_for(|s| *s).await;
        };
        let seams = Seams {
            traffic: &pair,
            observed: &pair,
            watcher: &mut watcher,
            clock: &SystemClock,
        };
        let ending = driver::drive(setup, seams, stop).await;
        self.book.update(|s| s.rollout = None);
        match ending {
            Ending::Done => {
                events
                    .say(
                        Outcome::Progress,
                        format!(
                            "{to_v} has all new requests; letting {from_v}'s requests finish, \
                             then stopping it"
                        ),
                    )
                    .await;
                self.retire(&from).await;
                self.to_workers(&to).await;
                self.store_to_worker(&to).await;
                let kept = self.running_versions();
                if let Err(e) = self.versions.retain(self.keep, &kept) {
                    tracing::warn!("cannot prune the version store: {e:#}");
                }
                events
                    .say(
                        Outcome::Done,
                        format!("version {to_v} serves all requests; {from_v} is stopped"),
                    )
                    .await;
            }
            Ending::RolledBack(verdict) => {
                self.retire(&to).await;
                self.to_workers(&from).await;
                self.store_to_worker(&from).await;
                events
                    .say(
                        Outcome::Failed,
                        format!("rolled back to {from_v}: {verdict}; version {to_v} is stopped"),
                    )
                    .await;
            }
            Ending::Stopped(why) => {
                // On one machine the manager drives; it stops only as the
                // deployment does, and then A keeps what it had.
                self.set_weights(&[(&from, 100), (&to, 0)]);
                self.retire(&to).await;
                events
                    .say(
                        Outcome::Failed,
                        format!("rolled back to {from_v}: {why}; version {to_v} is stopped"),
                    )
                    .await;
            }
        }
    }

    /// The versions running now.
    fn running_versions(&self) -> Vec<Version> {
        self.running
            .lock()
            .expect("running lock")
            .iter()
            .map(|r| r.version.clone())
            .collect()
    }

    /// The snapshot a rollout goes to: the app's files now, checked and
    /// stored; or, for a rollback, a stored version.
    fn target(&self, request: &RolloutRequest, from: &Running) -> anyhow::Result<Snapshot> {
        if request.rollback {
            let version = if request.to_version.is_empty() {
                self.versions
                    .list()
                    .into_iter()
                    .rev()
                    .find(|v| v != &from.version)
                    .context("the version store has no earlier version to roll back to")?
            } else {
                Version::parse(&request.to_version).with_context(|| {
                    format!(
                        "'{}' is not a version such as 3f2a9c01b7d4e512",
                        request.to_version
                    )
                })?
            };
            return self.versions.get(&version)?.with_context(|| {
                format!(
                    "version {version} is not in the version store; it keeps the last {} \
                     (weft deploy --keep)",
                    self.keep
                )
            });
        }
        let manifest = load_absolute(&self.manifest_path)?;
        let plan = if request.plan.is_empty() {
            manifest
                .manifest
                .deploy
                .as_ref()
                .and_then(DeploySection::plan)
                .unwrap_or_else(|| from.plan.clone())
        } else {
            let components = manifest.manifest.components.keys();
            Plan::from_str(&request.plan, "--plan", components)?
        };
        check_placement(&manifest, &plan, "the rollout's plan")?;
        check_and_store(&manifest, &plan, &self.cache_dir)
    }
}

impl crate::deploy::control::Deployment for Manager {
    fn rollout(self: Arc<Self>, request: RolloutRequest, events: Events) -> Boxed<'static, ()> {
        Box::pin(Manager::rollout(self, request, events))
    }

    fn status_json(&self) -> Boxed<'_, String> {
        Box::pin(async {
            let mut state = self.live_status().await;
            state.methods = self.method_rates().await;
            state.keyvalue = self.store_state().await;
            state.proposal = self.proposal.lock().expect("proposal lock").clone();
            state.to_json()
        })
    }

    fn metrics(&self) -> Boxed<'_, metrics::Snapshot> {
        Box::pin(Manager::metrics(self))
    }
}

/// The steps a rollout request asks for: its own, else the defaults.
pub fn schedule_of(request: &RolloutRequest) -> Schedule {
    Schedule {
        steps: if request.steps.is_empty() {
            Schedule::DEFAULT_STEPS.to_vec()
        } else {
            request.steps.iter().map(|s| (*s).min(100) as u8).collect()
        },
        over: Duration::from_millis(request.over_ms),
    }
}

/// The rollback gate: the request's figures, else the manifest's
/// `[deploy]` table's, else the defaults.
pub fn gate_of(request: &RolloutRequest, table: &DeploySection) -> Gate {
    Gate {
        margin: Some(request.margin_points)
            .filter(|p| *p > 0.0)
            .or(table.rollback_failure_points)
            .map_or(Gate::default().margin, |p| p / 100.0),
        min_requests: Some(request.min_requests)
            .filter(|n| *n > 0)
            .or(table.rollback_min_requests)
            .unwrap_or(Gate::default().min_requests),
        ..Gate::default()
    }
}

/// Two running versions, as the rollout driver sees them: the manager's
/// ingresses are the traffic, and its ingresses and workers the counts.
struct Pair {
    manager: Arc<Manager>,
    from: Arc<Running>,
    to: Arc<Running>,
}

impl Traffic for Pair {
    fn shift(&self, percent: u8) -> Boxed<'_, anyhow::Result<()>> {
        self.manager
            .set_weights(&[(&self.from, 100 - percent), (&self.to, percent)]);
        Box::pin(async { Ok(()) })
    }
}

impl Observed for Pair {
    fn counts(&self) -> Boxed<'_, anyhow::Result<(Counts, Counts)>> {
        Box::pin(async {
            let a = self.manager.counts(&self.from).await;
            let b = self.manager.counts(&self.to).await;
            Ok((a, b))
        })
    }
}

/// Tells the `weft rollout` that asked, and the state file, how the
/// rollout goes.
struct Progress<'a> {
    book: Arc<StateBook>,
    events: &'a Events,
    from: String,
    to: String,
    steps: Vec<u8>,
}

impl Watcher for Progress<'_> {
    fn event(&mut self, event: Event) -> Boxed<'_, ()> {
        Box::pin(async move {
            match event {
                Event::Shifted {
                    step,
                    steps,
                    percent,
                } => {
                    let line = shifted_line(step, steps, percent, &self.to);
                    self.events.say(Outcome::Progress, line).await;
                }
                Event::Observed {
                    step,
                    percent,
                    a,
                    b,
                } => self.book.update(|s| {
                    s.rollout = Some(RolloutState {
                        from: self.from.clone(),
                        to: self.to.clone(),
                        steps: self.steps.clone(),
                        step,
                        percent,
                        window: [
                            (a.failed_requests, a.requests),
                            (b.failed_requests, b.requests),
                        ],
                    });
                }),
                Event::Trouble(why) => tracing::warn!("rollout to {}: {why}", self.to),
            }
        })
    }
}

/// The replicas of `workers` that serve `listener`, for its ingress.
fn replicas_of(workers: &WorkerSet, listener: &str) -> Vec<Arc<Replica>> {
    workers
        .replicas()
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let address = *r.listeners.get(listener)?;
            Some(Arc::new(Replica::new(address, workers.rotation(i))))
        })
        .collect()
}

/// The deployment, as the admin server shows it.
struct Deployed(Arc<Manager>);

impl Source for Deployed {
    fn snapshot(&self) -> Answer<'_, metrics::Snapshot> {
        Box::pin(async move { Ok(self.0.metrics().await) })
    }

    fn view(&self) -> Answer<'_, View> {
        Box::pin(async move {
            let state = self.0.status();
            let calls = self.0.method_rates().await;
            Ok(dashboard_view(&state, calls))
        })
    }
}

/// What the dashboard shows of a deployment: the groups of its version
/// with the most traffic, and every method's last minute.
fn dashboard_view(state: &DeployState, calls: Vec<CallRate>) -> View {
    let main = state.versions.iter().max_by_key(|v| v.weight);
    let groups = main
        .map(|v| {
            v.groups
                .iter()
                .map(|(group, components)| {
                    let workers = state
                        .workers
                        .iter()
                        .filter(|w| w.version == v.version && &w.group == group);
                    GroupView {
                        name: group.clone(),
                        components: components.clone(),
                        replicas: workers.clone().count(),
                        healthy: workers.filter(|w| w.healthy).count(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    View {
        app: state.app.clone(),
        versions: state
            .versions
            .iter()
            .map(|v| (v.version.clone(), v.weight))
            .collect(),
        groups,
        calls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra: &str) -> ManifestFile {
        let text = format!(
            "[app]\nname = \"shop\"\n[components.pay]\nwasm = \"p.wasm\"\n\
             [components.web]\nwasm = \"w.wasm\"\n{extra}"
        );
        ManifestFile {
            path: "weft.toml".into(),
            dir: ".".into(),
            manifest: crate::manifest::Manifest::from_str(&text, Path::new("weft.toml")).unwrap(),
        }
    }

    #[test]
    fn a_plan_that_breaks_the_placement_constraints_is_refused() {
        let shop = manifest("[placement]\nseparate = [[\"pay\", \"web\"]]\n");
        let monolith = || Plan::monolith(["pay", "web"]);
        let err = choose_plan(Some("monolith"), &shop, monolith).unwrap_err();
        assert_eq!(
            err.to_string(),
            "weft.toml: --plan monolith breaks the manifest's [placement] constraints:\n  - \
             placement.separate[0]: 'pay' and 'web' must not share a process, but the plan puts \
             both in group 'main'\nchoose a plan that honours them (groups in [deploy] or a plan \
             file), or change the constraints"
        );
        // The default (the monolith) is refused too; split honours them.
        assert!(choose_plan(None, &shop, monolith).is_err());
        assert!(choose_plan(Some("split"), &shop, monolith).is_ok());
        // Without constraints, any plan goes.
        assert!(choose_plan(None, &manifest(""), monolith).is_ok());
    }
}
