//! A worker set: the workers of one version on this machine, spawned,
//! assigned and supervised.
//!
//! [`layout`] turns a plan into replicas with loopback addresses (pure, but
//! for the port source it is given; [`layout_on_free_ports`] gives it one).
//! [`WorkerSet::start`] spawns every worker, waits until it answers, and
//! assigns it its group; any failure stops them all and is reported. Each
//! worker then has a supervisor task that restarts it with backoff when it
//! dies, or when it stops answering health checks, on the same ports, so
//! the routing table stays right. [`WorkerSet::stop`] drains and stops
//! every worker.
//!
//! Workers are started with a pipe as their standard input and exit when it
//! closes, so they never outlive the manager, however it ends. They inherit
//! the sockets of the listeners they serve ([`crate::handoff`]), and accept
//! on them while the set is told to ([`WorkerSet::accept`]).

use super::state::{StateBook, WorkerState};
use crate::rpc::identity::{Authority, Identity};
use crate::rpc::{Dialer, Peer};
use crate::version::Version;
use anyhow::{Context as _, bail};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt as _;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::watch;
use tokio::task::JoinSet;
use weft_placer::Plan;
use weft_proto::v1::control_client::ControlClient;
use weft_proto::v1::health_reply::State;
use weft_proto::v1::{
    AcceptRequest, Assignment, DrainRequest, HealthRequest, ListenerAddress, ReleaseStoreRequest,
    Route, ShutdownRequest, TakeStoreRequest,
};

/// How long a new worker may take to answer on its gRPC address.
const WORKER_START: Duration = Duration::from_secs(30);
/// How long a worker may take to load its assignment (a cold compile included).
const ASSIGN_TIMEOUT: Duration = Duration::from_secs(600);
/// The first wait before restarting a worker that died.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A worker that ran this long before dying is restarted after the first backoff again.
const STABLE: Duration = Duration::from_secs(10);
/// How often a running worker's health is checked.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// How long a health check may take.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// How many health checks in a row a worker may fail before it is killed
/// and restarted.
const HEALTH_MISSES: u32 = 3;
/// How long a worker may take to exit once asked to shut down.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A running worker process. Its standard input is a pipe held open here:
/// the worker exits when it closes, so workers never outlive the manager.
/// (tokio closes a child's stdin in `wait`, so the pipe is kept apart.)
struct WorkerProcess {
    child: Child,
    _stdin: Option<ChildStdin>,
}

/// One replica of one group, with its fixed loopback addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSpec {
    /// The group.
    pub group: String,
    /// Which replica of the group it is, from 0.
    pub replica: u32,
    /// The group's components.
    pub components: Vec<String>,
    /// Its gRPC address.
    pub address: SocketAddr,
    /// The listeners it serves (those of its components), by name.
    pub listeners: BTreeMap<String, SocketAddr>,
}

impl ReplicaSpec {
    /// `GROUP/REPLICA`, as logs and the state file name it.
    pub fn name(&self) -> String {
        format!("{}/{}", self.group, self.replica)
    }
}

/// Every replica of `plan`, with an address from `port` for its gRPC
/// service and for each listener (by name, with its component) it serves.
pub fn layout(
    plan: &Plan,
    listeners: &BTreeMap<String, String>,
    mut port: impl FnMut() -> std::io::Result<SocketAddr>,
) -> std::io::Result<Vec<ReplicaSpec>> {
    let mut replicas = Vec::new();
    for (group, g) in &plan.groups {
        for replica in 0..g.replicas.count() {
            let mut served = BTreeMap::new();
            for (name, component) in listeners {
                if g.components.contains(component) {
                    served.insert(name.clone(), port()?);
                }
            }
            replicas.push(ReplicaSpec {
                group: group.clone(),
                replica,
                components: g.components.clone(),
                address: port()?,
                listeners: served,
            });
        }
    }
    Ok(replicas)
}

/// [`layout`] on free loopback ports, found by binding port 0. Every probe
/// stays bound until all ports are found, so no two addresses are the same.
pub fn layout_on_free_ports(
    plan: &Plan,
    listeners: &BTreeMap<String, String>,
) -> std::io::Result<Vec<ReplicaSpec>> {
    let mut probes = Vec::new();
    layout(plan, listeners, || {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        let address = probe.local_addr()?;
        probes.push(probe);
        Ok(address)
    })
}

/// What every worker of one deployment is told.
pub struct Deployment {
    /// The app's name.
    pub app: String,
    /// The manifest, as an absolute path.
    pub manifest: PathBuf,
    /// The plan.
    pub plan: Plan,
    /// The version computed from the manifest, the plan and the binaries.
    pub version: Version,
    /// The compile cache directory.
    pub cache_dir: PathBuf,
    /// The manager's gRPC address.
    pub control: SocketAddr,
    /// Whether the manager serves its key-value store there.
    pub serves_store: bool,
    /// The group whose worker may hold the store's file itself, if one
    /// may; it does while [`WorkerSet::set_holds_store`] says so.
    pub store_owner: Option<String>,
    /// The store's file.
    pub store_file: PathBuf,
    /// The folder of blob containers, when the app uses wasi:blobstore.
    pub blobs: Option<PathBuf>,
    /// Each listener's socket, as the manager holds it, by name.
    pub sockets: BTreeMap<String, RawFd>,
    /// The deployment's CA, which issues each worker its certificate.
    pub authority: Arc<Authority>,
    /// Makes the manager's channels to the workers.
    pub dialer: Dialer,
}

/// The running workers of one version.
pub struct WorkerSet {
    deployment: Deployment,
    replicas: Vec<ReplicaSpec>,
    /// The `weft` binary that workers run.
    exe: PathBuf,
    /// Where the deployment's state is kept; this set keeps its workers' there.
    book: Arc<StateBook>,
    stop: watch::Sender<bool>,
    supervisors: tokio::sync::Mutex<JoinSet<()>>,
    /// Per replica: whether the ingress may send it requests.
    rotation: Vec<Arc<AtomicBool>>,
    /// Whether its workers accept on the listeners' sockets themselves.
    accepting: AtomicBool,
    /// Whether the store owner's worker holds the store's file.
    holds_store: AtomicBool,
}

impl WorkerSet {
    /// A worker set for `replicas`, whose workers are listed in `book`;
    /// with `accepting`, they accept on the listeners' sockets from the
    /// start.
    pub fn new(
        deployment: Deployment,
        replicas: Vec<ReplicaSpec>,
        book: Arc<StateBook>,
        accepting: bool,
    ) -> anyhow::Result<Arc<WorkerSet>> {
        let exe = std::env::current_exe().context("cannot find the weft binary for workers")?;
        let version = deployment.version.to_string();
        book.update(|state| {
            state.workers.extend(replicas.iter().map(|r| {
                WorkerState {
                    name: r.name(),
                    version: version.clone(),
                    group: r.group.clone(),
                    components: r.components.clone(),
                    address: r.address.to_string(),
                    listeners: r
                        .listeners
                        .iter()
                        .map(|(n, a)| (n.clone(), a.to_string()))
                        .collect(),
                    pid: None,
                    healthy: false,
                    restarts: 0,
                }
            }));
        });
        let rotation = replicas.iter().map(|_| Arc::default()).collect();
        Ok(Arc::new(WorkerSet {
            replicas,
            exe,
            book,
            stop: watch::channel(false).0,
            supervisors: tokio::sync::Mutex::new(JoinSet::new()),
            rotation,
            accepting: AtomicBool::new(accepting),
            holds_store: AtomicBool::new(false),
            deployment,
        }))
    }

    /// The version its workers run.
    pub fn version(&self) -> &Version {
        &self.deployment.version
    }

    /// The replicas, in plan order.
    pub fn replicas(&self) -> &[ReplicaSpec] {
        &self.replicas
    }

    /// Whether replica `index` takes requests now: it is up, answers its
    /// health checks, and is not draining. The ingress reads it.
    pub fn rotation(&self, index: usize) -> Arc<AtomicBool> {
        self.rotation[index].clone()
    }

    fn set_rotation(&self, index: usize, serving: bool) {
        if self.rotation[index].swap(serving, Ordering::SeqCst) != serving {
            self.update_worker(index, |w| w.healthy = serving);
        }
    }

    /// Starts every worker and waits until all of them serve; on any
    /// failure, stops those that started and says which one failed and why.
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        let mut starting = JoinSet::new();
        for index in 0..self.replicas.len() {
            let set = self.clone();
            starting.spawn(async move { (index, set.start_worker(index).await) });
        }
        let mut children = Vec::new();
        while let Some(joined) = starting.join_next().await {
            let (index, started) = joined.context("a worker start panicked")?;
            // Returning drops `starting` and `children`, which kills every
            // worker started so far (they are spawned with kill_on_drop).
            children.push((index, started?));
        }
        let mut supervisors = self.supervisors.lock().await;
        for (index, child) in children {
            supervisors.spawn(self.clone().supervise(index, child));
        }
        Ok(())
    }

    /// Stops every worker: first all of them drain, so that no request in
    /// flight loses a callee in another worker of the set, then they exit.
    /// Their entries leave the state.
    pub async fn stop(&self) {
        let mut draining = JoinSet::new();
        for (index, spec) in self.replicas.iter().enumerate() {
            self.set_rotation(index, false);
            if let Ok(channel) = self.channel(spec) {
                draining.spawn(async move {
                    let mut control = ControlClient::new(channel);
                    let drain = crate::listener::DRAIN_TIMEOUT + Duration::from_secs(5);
                    let _ = tokio::time::timeout(drain, control.drain(DrainRequest {})).await;
                });
            }
        }
        while draining.join_next().await.is_some() {}
        // `send_replace`, not `send`: the value must stick even while no
        // supervisor has subscribed yet.
        self.stop.send_replace(true);
        let mut supervisors = self.supervisors.lock().await;
        while supervisors.join_next().await.is_some() {}
        let version = self.deployment.version.as_str();
        self.book
            .update(|state| state.workers.retain(|w| w.version != version));
    }

    /// Makes every worker accept on the listeners' sockets (`true`), or
    /// stop and end the connections it accepted there (`false`); whether
    /// every one of them did. A worker restarting meanwhile is told in its
    /// assignment.
    pub async fn accept(&self, on: bool) -> bool {
        self.accepting.store(on, Ordering::SeqCst);
        let mut telling = JoinSet::new();
        for spec in self.replicas.iter().filter(|r| !r.listeners.is_empty()) {
            let (name, channel) = (spec.name(), self.channel(spec));
            telling.spawn(async move {
                let told = async {
                    let mut control = ControlClient::new(channel?);
                    control.accept(AcceptRequest { accept: on }).await?;
                    anyhow::Ok(())
                };
                let told = told.await;
                if let Err(e) = &told {
                    tracing::warn!("worker {name}: cannot switch its listeners: {e:#}");
                }
                told.is_ok()
            });
        }
        let mut all = true;
        while let Some(told) = telling.join_next().await {
            all &= told.unwrap_or(false);
        }
        all
    }

    /// Whether the store owner's worker holds the store's file.
    pub fn holds_store(&self) -> bool {
        self.holds_store.load(Ordering::SeqCst)
    }

    /// Whether the store owner's worker holds the store's file: a worker
    /// restarted then opens it again.
    pub fn set_holds_store(&self, holds: bool) {
        self.holds_store.store(holds, Ordering::SeqCst);
    }

    /// The worker of `group`'s first replica, to hold the store's file.
    fn store_worker(&self, group: &str) -> anyhow::Result<&ReplicaSpec> {
        self.replicas
            .iter()
            .find(|r| r.group == group && r.replica == 0)
            .with_context(|| format!("the plan has no group '{group}'"))
    }

    /// Tells `group`'s worker to open the store's `file` itself.
    pub async fn take_store(&self, group: &str, file: &std::path::Path) -> anyhow::Result<()> {
        let spec = self.store_worker(group)?;
        let mut control = ControlClient::new(self.channel(spec)?);
        control
            .take_store(TakeStoreRequest {
                file: file.display().to_string(),
            })
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
        Ok(())
    }

    /// Tells `group`'s worker to close the store's file, and use the
    /// manager's store.
    pub async fn release_store(&self, group: &str) -> anyhow::Result<()> {
        let spec = self.store_worker(group)?;
        let mut control = ControlClient::new(self.channel(spec)?);
        control
            .release_store(ReleaseStoreRequest {})
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
        Ok(())
    }

    /// A channel to the worker of `spec`.
    pub fn channel(&self, spec: &ReplicaSpec) -> anyhow::Result<crate::rpc::Channel> {
        self.deployment.dialer.channel(
            &spec.address.to_string(),
            Peer::Worker(&self.deployment.version),
        )
    }

    fn update_worker(&self, index: usize, change: impl FnOnce(&mut WorkerState)) {
        let name = self.replicas[index].name();
        let version = self.deployment.version.as_str();
        self.book.update(|state| {
            if let Some(worker) = state.worker_mut(version, &name) {
                change(worker);
            }
        });
    }

    fn set_pid(&self, index: usize, pid: Option<u32>) {
        self.update_worker(index, |w| w.pid = pid);
    }

    /// Spawns worker `index`, waits until it answers, and assigns it.
    async fn start_worker(&self, index: usize) -> anyhow::Result<WorkerProcess> {
        let spec = &self.replicas[index];
        let name = spec.name();
        let mut command = Command::new(&self.exe);
        command.arg("worker");
        let sockets: Vec<(String, RawFd)> = spec
            .listeners
            .keys()
            .filter_map(|l| Some((l.clone(), *self.deployment.sockets.get(l)?)))
            .collect();
        crate::handoff::pass_to(&mut command, &sockets);
        let mut child = command
            .args(["--listen", &spec.address.to_string(), "--name", &name])
            .arg("--exit-with-stdin")
            // Workers write their log lines as the manager does.
            .args(if crate::telemetry::logs::json() {
                &["--log-format", "json"][..]
            } else {
                &[]
            })
            .stdin(Stdio::piped())
            // A process group of its own: a terminal's Ctrl-C goes to the
            // manager only, which then drains and stops the workers in order.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start worker {name}"))?;
        // A fresh key and certificate go on the worker's standard input:
        // unlike its arguments and environment, no other user can read them
        // there.
        let identity = Identity::worker(
            &self.deployment.app,
            self.deployment.version.as_str(),
            &spec.group,
        );
        let credentials = self.deployment.authority.issue(&identity)?;
        let mut stdin = child.stdin.take().context("the worker's standard input")?;
        stdin
            .write_all(format!("{}\n", credentials.to_line()).as_bytes())
            .await
            .with_context(|| format!("cannot give worker {name} its credentials"))?;
        let stdin = Some(stdin);
        let mut control = ControlClient::new(self.channel(spec)?);
        let deadline = Instant::now() + WORKER_START;
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("worker {name} exited while starting ({status}); see its log above");
            }
            match control.health(HealthRequest {}).await {
                Ok(reply) if reply.get_ref().state() == State::Starting => break,
                Ok(_) => bail!(
                    "worker {name} at {} already has an assignment",
                    spec.address
                ),
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Err(e) => bail!(
                    "worker {name} did not answer on {} within {WORKER_START:?}: {}",
                    spec.address,
                    e.message()
                ),
            }
        }
        let assignment = self.assignment(spec);
        let assigned = tokio::select! {
            assigned = tokio::time::timeout(ASSIGN_TIMEOUT, control.assign(assignment)) => assigned,
            status = child.wait() => bail!(
                "worker {name} exited while loading its group ({}); see its log above",
                status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string())
            ),
        };
        match assigned {
            Ok(Ok(_)) => {}
            Ok(Err(status)) => bail!("worker {name} could not start: {}", status.message()),
            Err(_) => bail!("worker {name} did not load its group within {ASSIGN_TIMEOUT:?}"),
        }
        self.set_pid(index, child.id());
        self.set_rotation(index, true);
        Ok(WorkerProcess {
            child,
            _stdin: stdin,
        })
    }

    /// What worker `spec` is told: its group, and where every other
    /// group's components are.
    fn assignment(&self, spec: &ReplicaSpec) -> Assignment {
        let d = &self.deployment;
        let mut routes: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for other in self.replicas.iter().filter(|r| r.group != spec.group) {
            for component in &other.components {
                routes
                    .entry(component)
                    .or_default()
                    .push(other.address.to_string());
            }
        }
        Assignment {
            manifest: d.manifest.display().to_string(),
            plan: d.plan.to_toml(),
            version: d.version.to_string(),
            group: spec.group.clone(),
            replica: spec.replica,
            routes: routes
                .into_iter()
                .map(|(component, addresses)| Route {
                    component: component.to_string(),
                    addresses,
                })
                .collect(),
            store: if d.serves_store {
                d.control.to_string()
            } else {
                String::new()
            },
            listeners: spec
                .listeners
                .iter()
                .map(|(name, address)| ListenerAddress {
                    name: name.clone(),
                    address: address.to_string(),
                })
                .collect(),
            cache_dir: d.cache_dir.display().to_string(),
            blobs: d
                .blobs
                .as_ref()
                .map(|b| b.display().to_string())
                .unwrap_or_default(),
            accept_shared: self.accepting.load(Ordering::SeqCst),
            store_file: if d.store_owner.as_deref() == Some(spec.group.as_str())
                && spec.replica == 0
                && self.holds_store.load(Ordering::SeqCst)
            {
                d.store_file.display().to_string()
            } else {
                String::new()
            },
        }
    }

    /// Watches worker `index`: restarts it with backoff whenever it dies,
    /// until the deployment stops, and then stops it.
    async fn supervise(self: Arc<Self>, index: usize, mut worker: WorkerProcess) {
        let name = self.replicas[index].name();
        let mut stop = self.stop.subscribe();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let started = Instant::now();
            let pid = worker.child.id().unwrap_or_default();
            let status = tokio::select! {
                status = worker.child.wait() => status,
                () = stopped(&mut stop) => {
                    self.stop_worker(index, worker).await;
                    return;
                }
                () = self.unresponsive(index) => {
                    say!(
                        "weft: worker {name} (pid {pid}) did not answer {HEALTH_MISSES} health \
                         checks in a row; killing it"
                    );
                    let _ = worker.child.start_kill();
                    worker.child.wait().await
                }
            };
            let status = status
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string());
            self.set_rotation(index, false);
            self.set_pid(index, None);
            if started.elapsed() >= STABLE {
                backoff = FIRST_BACKOFF;
            }
            // Restart until one start succeeds, or the deployment stops.
            say!("weft: worker {name} (pid {pid}) exited ({status}); restarting it in {backoff:?}");
            loop {
                let restarted = tokio::select! {
                    () = stopped(&mut stop) => return,
                    restarted = async {
                        tokio::time::sleep(backoff).await;
                        self.start_worker(index).await
                    } => restarted,
                };
                backoff = (backoff * 2).min(MAX_BACKOFF);
                match restarted {
                    Ok(new) => {
                        worker = new;
                        self.update_worker(index, |w| w.restarts += 1);
                        say!(
                            "weft: worker {name} restarted (pid {})",
                            worker.child.id().unwrap_or_default()
                        );
                        break;
                    }
                    Err(e) => say!("weft: {e:#}; trying again in {backoff:?}"),
                }
            }
        }
    }

    /// Checks worker `index`'s health every second, taking it out of
    /// rotation while it fails; resolves once it has failed
    /// [`HEALTH_MISSES`] checks in a row: it is alive but hung, and only a
    /// restart helps.
    async fn unresponsive(&self, index: usize) {
        let Ok(channel) = self.channel(&self.replicas[index]) else {
            return std::future::pending().await;
        };
        let mut control = ControlClient::new(channel);
        let mut misses = 0;
        while misses < HEALTH_MISSES {
            tokio::time::sleep(HEALTH_INTERVAL).await;
            let health = tokio::time::timeout(HEALTH_TIMEOUT, control.health(HealthRequest {}));
            match health.await {
                Ok(Ok(reply)) if reply.get_ref().state() == State::Serving => {
                    misses = 0;
                    self.set_rotation(index, true);
                }
                Ok(Ok(_)) => self.set_rotation(index, false),
                _ => {
                    misses += 1;
                    self.set_rotation(index, false);
                }
            }
        }
    }

    /// Asks worker `index` to exit, and kills it if it does not.
    async fn stop_worker(&self, index: usize, mut worker: WorkerProcess) {
        let spec = &self.replicas[index];
        // [`WorkerSet::stop`] has drained every worker of the set already.
        if let Ok(channel) = self.channel(spec) {
            let mut control = ControlClient::new(channel);
            let _ = tokio::time::timeout(EXIT_TIMEOUT, control.shutdown(ShutdownRequest {})).await;
        }
        if tokio::time::timeout(EXIT_TIMEOUT, worker.child.wait())
            .await
            .is_err()
        {
            tracing::warn!("worker {} did not exit; killing it", spec.name());
            let _ = worker.child.kill().await;
        }
        self.set_pid(index, None);
    }
}

/// Resolves once the deployment is stopping.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_gives_every_replica_its_own_addresses() {
        let plan = Plan::from_str(
            "[groups.front]\ncomponents = [\"frontend\"]\nreplicas = 2\n\
             [groups.back]\ncomponents = [\"greeter\"]\n",
            "plan.toml",
            ["frontend", "greeter"],
        )
        .unwrap();
        let listeners = BTreeMap::from([("web".to_string(), "frontend".to_string())]);
        let mut next = 9000;
        let replicas = layout(&plan, &listeners, || {
            next += 1;
            Ok(SocketAddr::from(([127, 0, 0, 1], next)))
        })
        .unwrap();
        let names: Vec<String> = replicas.iter().map(ReplicaSpec::name).collect();
        assert_eq!(names, ["back/0", "front/0", "front/1"]);
        assert!(replicas[0].listeners.is_empty());
        assert_eq!(replicas[1].listeners.len(), 1);
        let mut ports: Vec<u16> = replicas
            .iter()
            .flat_map(|r| std::iter::once(r.address).chain(r.listeners.values().copied()))
            .map(|a| a.port())
            .collect();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 5, "every address is distinct");
    }
}
