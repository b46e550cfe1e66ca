//! `weft ingress`: the app's listeners in a cluster, split between
//! versions by weight.
//!
//! It is the local [`Ingress`] of `weft deploy`, run as a Deployment of its
//! own behind each listener's Service, with what the manager gave it
//! found in the cluster instead:
//!
//! - **The weights** come from the traffic table ([`TrafficTable`]) in a
//!   ConfigMap, read through the Kubernetes API every second. Every
//!   replica reads the same table, so all agree within a second, and a new
//!   or restarted replica learns the weights before it is ready.
//! - **Each version's replicas** are the ready pods behind the headless
//!   Service of the group that serves the listener, resolved and probed as
//!   workers find their peers ([`crate::discovery`]). A request that
//!   entered version V reaches a pod of V, whose calls stay in V.
//! - **Counts.** `GET /traffic/local` on the status port is this replica's
//!   requests, failures and requests in flight per version, and the table
//!   generation it follows; `GET /traffic` adds up every replica's (found
//!   through the ingress's own headless Service) and the calls that each
//!   version's workers served (their `Control.Served`, asked over mutual
//!   TLS as the app's ingress). `weft rollout --kube` reads it through the
//!   API server's service proxy.
//!
//! Sticky sessions work as on one machine: the cookie names the version,
//! and every replica honours it while that version has weight.

use crate::cluster::api::InCluster;
use crate::deploy::ingress::{Backend, Ingress};
use crate::discovery::{self, Peers, Probe, Source, Watch};
use crate::kube::traffic::{
    IngressConfig, ReplicaReport, TrafficReport, TrafficTable, VersionCounts,
};
use crate::rpc::health::Health;
use crate::rpc::{Dialer, Peer};
use crate::version::Version;
use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use weft_proto::v1::ServedRequest;
use weft_proto::v1::control_client::ControlClient;

/// How often each replica reads the traffic table.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// How long a `GET /traffic` answer is reused, so that many questions do
/// not each ask every replica and every worker.
const REPORT_REUSE: Duration = Duration::from_millis(500);
/// How long one replica or worker may take to answer for a report.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// One replica of the ingress.
pub struct ClusterIngress {
    name: String,
    config: IngressConfig,
    api: InCluster,
    dialer: Dialer,
    health: Health,
    /// One ingress per listener.
    ingresses: BTreeMap<String, Arc<Ingress>>,
    followed: Mutex<Followed>,
    last_report: tokio::sync::Mutex<Option<(Instant, TrafficReport)>>,
}

/// The table in force, and what follows each of its versions.
#[derive(Default)]
struct Followed {
    table: Option<TrafficTable>,
    versions: BTreeMap<String, FollowedVersion>,
}

/// One version behind the listeners.
struct FollowedVersion {
    backends: BTreeMap<String, Arc<Backend>>,
    _watches: Vec<(Watch, AbortOnDrop)>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl ClusterIngress {
    /// A replica named `name`, with no table yet (not ready).
    pub async fn new(
        name: &str,
        config: IngressConfig,
        api: InCluster,
        dialer: Dialer,
    ) -> Arc<ClusterIngress> {
        let ingresses = config
            .listeners
            .iter()
            .map(|(listener, l)| {
                let ingress =
                    Ingress::new(listener, &l.component, config.sticky_sessions, l.limits());
                (listener.clone(), Arc::new(ingress))
            })
            .collect();
        Arc::new(ClusterIngress {
            name: name.to_string(),
            config,
            api,
            dialer,
            health: Health::new().await,
            ingresses,
            followed: Mutex::default(),
            last_report: tokio::sync::Mutex::new(None),
        })
    }

    /// Serves the listeners, the status answers and the probes on the
    /// sockets given, following the traffic table, until `shutdown`; then
    /// lets the requests in flight finish.
    pub async fn serve(
        self: Arc<Self>,
        listeners: Vec<(String, TcpListener)>,
        status: TcpListener,
        probes: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stop_on = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let mut tasks = tokio::task::JoinSet::new();
        let follower = self.clone();
        let following = tokio::spawn(async move { follower.follow().await });
        for (name, socket) in listeners {
            let ingress = self.ingresses[&name].clone();
            let limits = self.config.listeners[&name].limits();
            let handler = move |request| ingress.clone().handle(request);
            tasks.spawn(crate::listener::serve(
                socket,
                name,
                handler,
                limits,
                stop_on(),
            ));
        }
        let me = self.clone();
        let handler = move |request: hyper::Request<hyper::body::Incoming>| {
            let me = me.clone();
            async move { me.status(request.uri().path()).await }
        };
        tasks.spawn(crate::listener::serve(
            status,
            "status".into(),
            handler,
            crate::listener::ConnectionLimits::default(),
            stop_on(),
        ));
        let probing = self.health.serve_probes(probes);
        shutdown.await;
        self.health.set_ready(false).await;
        let _ = stop.send(true);
        while tasks.join_next().await.is_some() {}
        following.abort();
        probing.abort();
    }

    /// Reads the traffic table every second and puts it in force when it
    /// changes. Problems are logged once each, not every second.
    async fn follow(&self) {
        let mut last_problem = None;
        loop {
            let problem = match self.read_table().await {
                Ok(table) => {
                    self.put_in_force(table).await;
                    None
                }
                Err(e) => Some(format!("{e:#}")),
            };
            if problem != last_problem {
                match &problem {
                    Some(p) => tracing::warn!(
                        "ingress {}: cannot read the traffic table (keeping the weights it has): {p}",
                        self.name
                    ),
                    None if last_problem.is_some() => {
                        tracing::info!("ingress {}: reads the traffic table again", self.name);
                    }
                    None => {}
                }
                last_problem = problem;
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    }

    async fn read_table(&self) -> anyhow::Result<TrafficTable> {
        let name = &self.config.traffic;
        let map = self.api.config_map(name).await?.with_context(|| {
            format!(
                "there is no ConfigMap {name} in namespace {}; apply the output of `weft kube` \
                 for the app's first version",
                self.api.namespace
            )
        })?;
        TrafficTable::from_config_map(&map)
    }

    /// Follows `table`'s versions and gives them its weights.
    async fn put_in_force(&self, table: TrafficTable) {
        // Where a new version's pods are, before it can take a request.
        let mut found = BTreeMap::new();
        for (version, route) in &table.versions {
            let known = self
                .followed
                .lock()
                .expect("followed lock")
                .versions
                .contains_key(version);
            if known {
                continue;
            }
            let served = route
                .listeners
                .iter()
                .filter(|(listener, _)| self.ingresses.contains_key(*listener));
            for (listener, to) in served {
                let addresses = resolve(&to.service, to.port).await;
                found.insert((version.clone(), listener.clone()), addresses);
            }
        }
        let first = {
            let mut followed = self.followed.lock().expect("followed lock");
            if followed.table.as_ref() == Some(&table) {
                return;
            }
            for (version, route) in &table.versions {
                let Some(parsed) = Version::parse(version) else {
                    tracing::warn!("the traffic table names '{version}', which is no version");
                    continue;
                };
                if !followed.versions.contains_key(version) {
                    let follow = self.follow_version(&parsed, route);
                    for (listener, backend) in &follow.backends {
                        if let Some(addresses) = found.get(&(version.clone(), listener.clone())) {
                            backend.set_addresses(addresses);
                        }
                    }
                    followed.versions.insert(version.clone(), follow);
                }
                for backend in followed.versions[version].backends.values() {
                    backend.set_weight(route.weight);
                }
            }
            let gone: Vec<String> = followed
                .versions
                .keys()
                .filter(|v| !table.versions.contains_key(*v))
                .cloned()
                .collect();
            for version in gone {
                if let Some(followed) = followed.versions.remove(&version) {
                    for (listener, backend) in followed.backends {
                        self.ingresses[&listener].remove(&backend.version);
                    }
                }
            }
            say!(
                "weft ingress {}: traffic table {} in force: {}",
                self.name,
                table.generation,
                table
                    .versions
                    .iter()
                    .map(|(v, r)| format!("{v} {} %", r.weight))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let first = followed.table.is_none();
            followed.table = Some(table);
            first
        };
        if first {
            self.health.set_ready(true).await;
        }
    }

    /// A backend per listener for `version`, each following the pods of
    /// the group that serves its listener.
    fn follow_version(
        &self,
        version: &Version,
        route: &crate::kube::traffic::VersionRoute,
    ) -> FollowedVersion {
        let mut backends = BTreeMap::new();
        let mut watches = Vec::new();
        for (listener, ingress) in &self.ingresses {
            let Some(to) = route.listeners.get(listener) else {
                continue;
            };
            let backend = Arc::new(Backend::new(version.clone(), Vec::new()));
            let source = Source::Dns {
                host: to.service.clone(),
                port: to.port,
            };
            let label = format!("{listener} of {version}");
            let (peers, watch) =
                discovery::watch(&label, source, Arc::new(Connects), discovery::REFRESH);
            let task = tokio::spawn(keep_addresses(peers, backend.clone()));
            watches.push((watch, AbortOnDrop(task)));
            ingress.add(backend.clone());
            backends.insert(listener.clone(), backend);
        }
        FollowedVersion {
            backends,
            _watches: watches,
        }
    }

    /// This replica's counts.
    fn local_report(&self) -> ReplicaReport {
        let followed = self.followed.lock().expect("followed lock");
        let mut versions = BTreeMap::new();
        let mut reachable = BTreeMap::new();
        for (version, f) in &followed.versions {
            let fewest = f.backends.values().map(|b| b.replicas().len() as u64).min();
            reachable.insert(version.clone(), fewest.unwrap_or(0));
            let mut counts = VersionCounts::default();
            for backend in f.backends.values() {
                counts.requests += backend.counts.requests.load(Ordering::Relaxed);
                counts.failed_requests += backend.counts.failed.load(Ordering::Relaxed);
                counts.in_flight += backend.counts.in_flight.load(Ordering::SeqCst);
            }
            versions.insert(version.clone(), counts);
        }
        ReplicaReport {
            name: self.name.clone(),
            generation: followed.table.as_ref().map_or(0, |t| t.generation),
            versions,
            reachable,
        }
    }

    /// Every replica's counts and the workers' calls, reused for half a
    /// second.
    async fn report(&self) -> TrafficReport {
        let mut last = self.last_report.lock().await;
        if let Some((at, report)) = &*last
            && at.elapsed() < REPORT_REUSE
        {
            return report.clone();
        }
        let report = self.gather().await;
        *last = Some((Instant::now(), report.clone()));
        report
    }

    async fn gather(&self) -> TrafficReport {
        let mine = self.local_report();
        let mut report = TrafficReport::default();
        let peers = resolve(&self.config.peers, self.config.status_port).await;
        let mut asks = tokio::task::JoinSet::new();
        for address in peers {
            asks.spawn(async move {
                let answer = tokio::time::timeout(
                    ASK_TIMEOUT,
                    get_json::<ReplicaReport>(address, "/traffic/local"),
                );
                (address, answer.await)
            });
        }
        let mut replicas = vec![mine];
        while let Some(Ok((address, answer))) = asks.join_next().await {
            match answer {
                Ok(Ok(r)) => {
                    if !replicas.iter().any(|m: &ReplicaReport| m.name == r.name) {
                        replicas.push(r);
                    }
                }
                _ => report.unreachable.push(address.to_string()),
            }
        }
        replicas.sort_by(|a, b| a.name.cmp(&b.name));
        for r in &replicas {
            for (version, counts) in &r.versions {
                let sum = report.versions.entry(version.clone()).or_default();
                *sum = sum.plus(*counts);
            }
        }
        report.replicas = replicas;
        let table = self.followed.lock().expect("followed lock").table.clone();
        for (version, route) in table.iter().flat_map(|t| t.versions.iter()) {
            let Some(parsed) = Version::parse(version) else {
                continue;
            };
            let (calls, failed) = self.served(&parsed, route).await;
            let sum = report.versions.entry(version.clone()).or_default();
            sum.calls += calls;
            sum.failed_calls += failed;
        }
        report
    }

    /// The calls that `version`'s workers served, and how many failed.
    async fn served(
        &self,
        version: &Version,
        route: &crate::kube::traffic::VersionRoute,
    ) -> (u64, u64) {
        let mut asks = tokio::task::JoinSet::new();
        for service in route.groups.values() {
            for address in resolve(service, route.worker_port).await {
                let Ok(channel) = self
                    .dialer
                    .channel(&address.to_string(), Peer::Worker(version))
                else {
                    continue;
                };
                asks.spawn(async move {
                    let mut control = ControlClient::new(channel);
                    let served = control.served(ServedRequest {});
                    match tokio::time::timeout(ASK_TIMEOUT, served).await {
                        Ok(Ok(reply)) => reply
                            .into_inner()
                            .functions
                            .iter()
                            .fold((0, 0), |(c, e), f| (c + f.calls, e + f.errors)),
                        _ => (0, 0),
                    }
                });
            }
        }
        let mut total = (0, 0);
        while let Some(Ok((calls, errors))) = asks.join_next().await {
            total = (total.0 + calls, total.1 + errors);
        }
        total
    }

    async fn status(&self, path: &str) -> hyper::Response<Full<Bytes>> {
        let json = match path {
            "/traffic/local" => serde_json::to_string(&self.local_report()),
            "/traffic" => serde_json::to_string(&self.report().await),
            _ => {
                return hyper::Response::builder()
                    .status(404)
                    .body(Full::new(Bytes::from(
                        "the status port answers GET /traffic and /traffic/local\n",
                    )))
                    .expect("a valid response");
            }
        };
        hyper::Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json.unwrap_or_default())))
            .expect("a valid response")
    }
}

/// Keeps `backend`'s replicas those that `peers` names.
async fn keep_addresses(mut peers: Peers, backend: Arc<Backend>) {
    loop {
        let addresses: Vec<SocketAddr> = peers
            .current()
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        backend.set_addresses(&addresses);
        if !peers.changed().await {
            return;
        }
    }
}

/// A pod serves a listener if it takes a connection on its port; the
/// headless Service already lists only ready pods.
struct Connects;

impl Probe for Connects {
    fn healthy(&self, address: &str) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        let address = address.to_string();
        Box::pin(async move { tokio::net::TcpStream::connect(address).await.is_ok() })
    }
}

/// The addresses `host` resolves to, with `port`; none when it does not.
async fn resolve(host: &str, port: u16) -> Vec<SocketAddr> {
    let lookup = tokio::net::lookup_host((host, port));
    match tokio::time::timeout(discovery::RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(addresses)) => addresses.collect(),
        _ => Vec::new(),
    }
}

/// `GET path` of the status port at `address`, as JSON.
async fn get_json<T: serde::de::DeserializeOwned>(
    address: SocketAddr,
    path: &str,
) -> anyhow::Result<T> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, address.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    anyhow::ensure!(
        response.status() == 200,
        "{address}{path} answered {}",
        response.status()
    );
    let body = http_body_util::Limited::new(response.into_body(), 1 << 20)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_bytes();
    Ok(serde_json::from_slice(&body)?)
}
