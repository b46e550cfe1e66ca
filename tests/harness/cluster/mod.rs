//! A small Kubernetes, simulated with network namespaces, that runs what
//! `weft kube` writes: the real test of weft across machines.
//!
//! # The network
//!
//! Three nodes, each a network namespace with its own address on one bridge
//! in the root namespace (`10.B.0.1x`), as three machines on one switch.
//! Each node has a pod network (`10.B.N.0/24`) behind a bridge of its own,
//! and routes to the other nodes' pod networks, as kubenet sets it up. A pod
//! is a network namespace of its own on its node's pod network, so a call
//! between pods on two nodes goes pod, node, switch, node, pod. The root
//! namespace routes to every pod, so a test reaches pods as a client
//! outside the cluster would reach a Service.
//!
//! # What it runs
//!
//! [`Cluster::apply`] takes a YAML stream, as `kubectl apply` does:
//!
//! - a ConfigMap or Secret is kept, and written out as a folder for each
//!   pod that mounts it;
//! - a Deployment starts its replicas (or 1), spread over the nodes. A pod
//!   runs its container's command and arguments, with `$(VAR)` expanded
//!   from its environment (`fieldRef` included), inside its namespace
//!   (`ip netns exec`). Paths under a volume's `mountPath` lead to that
//!   volume's folder; other absolute paths lead into the image, a folder
//!   built by [`Cluster::build_image`] from the Containerfile's `COPY`
//!   lines (files are linked, not copied; `FROM` gives nothing, since the
//!   pods run on this machine's libraries);
//! - a Service is kept, replacing one of the same name: that is how a
//!   listener Service moves to the next version.
//!
//! A controller thread plays kubelet and endpoints controller: every few
//! hundred milliseconds it asks each pod's readiness probe
//! (`grpc.health.v1` on its plain-text probe port, as a kubelet would),
//! and writes the ready pods of every
//! headless Service into each pod's `/etc/netns/POD/hosts`, which `ip netns
//! exec` shows the pod as `/etc/hosts`. That is how workers resolve their
//! peers' Services.
//!
//! Everything is removed when the cluster is dropped, even after a failed
//! assertion: the pods are killed, the namespaces, links and hosts files
//! deleted. The tests run as root (CI does); without `ip` or root they fail
//! and say so.

mod apiserver;
mod kubectl;
mod proxy;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::Deserialize as _;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many nodes a cluster has.
pub const NODES: usize = 3;

/// The one namespace of the simulated cluster.
pub const NAMESPACE: &str = "default";

/// Where the kubelet mounts a pod's ServiceAccount credentials.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A random number, for tokens.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.finish()
}

/// How often the controller probes pods and rewrites the hosts files.
const CONTROL_EVERY: Duration = Duration::from_millis(300);

/// A running simulated cluster.
pub struct Cluster {
    shared: Arc<Shared>,
    _work: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    controller: Option<std::thread::JoinHandle<()>>,
    kubectl: Option<kubectl::Server>,
    api: Option<apiserver::ApiServer>,
}

/// The cluster as its controller, its API server and its kubectl see it.
pub struct Shared {
    me: std::sync::Weak<Shared>,
    /// The second octet of every address, and the suffix of every name.
    net: u8,
    work: PathBuf,
    state: Mutex<State>,
    /// Where pods reach the API server, and its CA certificate.
    api: std::sync::OnceLock<(SocketAddr, String)>,
    /// Whether each pod gets an empty compile cache of its own, as a real
    /// pod does, instead of the tests' shared one.
    fresh_caches: AtomicBool,
}

impl std::ops::Deref for Cluster {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

/// What the cluster holds.
#[derive(Default)]
struct State {
    config_maps: BTreeMap<String, ConfigMap>,
    secrets: BTreeMap<String, Secret>,
    services: BTreeMap<String, Service>,
    deployments: BTreeMap<String, Deployment>,
    service_accounts: BTreeMap<String, ServiceAccount>,
    roles: BTreeMap<String, Role>,
    role_bindings: BTreeMap<String, RoleBinding>,
    autoscalers: BTreeMap<String, HorizontalPodAutoscaler>,
    /// Each ServiceAccount's token, by token.
    tokens: BTreeMap<String, String>,
    images: BTreeMap<String, PathBuf>,
    pods: Vec<Pod>,
    /// How many pods were ever started, for names and addresses.
    started: u32,
}

/// One running pod.
struct Pod {
    name: String,
    /// The Deployment it belongs to.
    deployment: String,
    namespace: String,
    node: usize,
    ip: Ipv4Addr,
    labels: BTreeMap<String, String>,
    /// Container ports by name.
    ports: BTreeMap<String, u16>,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    ready: bool,
    /// When its process started, and when its readiness probe first passed.
    started: Instant,
    ready_at: Option<Instant>,
    /// Deleted: out of every Service at once, stopped after its preStop.
    terminating: bool,
    /// Its container's preStop pause, and its grace period after SIGTERM.
    pre_stop: Duration,
    grace: Duration,
}

/// A pod, as tests see it.
#[derive(Debug, Clone)]
pub struct PodInfo {
    /// Its name, such as `hello-greeter-01234567-1`.
    pub name: String,
    /// The node it runs on, 0 to 2.
    pub node: usize,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Whether its readiness probe passes.
    pub ready: bool,
    /// Whether its process still runs.
    pub running: bool,
    /// Its `weft.dev/version` label.
    pub version: String,
    /// Whether it is being deleted.
    pub terminating: bool,
}

static CLUSTERS: AtomicU32 = AtomicU32::new(0);

impl Default for Cluster {
    fn default() -> Cluster {
        Cluster::new()
    }
}

impl Cluster {
    /// Makes the switch and three nodes.
    pub fn new() -> Cluster {
        check_root();
        let n = CLUSTERS.fetch_add(1, Ordering::Relaxed);
        let net = 100 + ((std::process::id() + n * 7) % 150) as u8;
        let work = tempfile::tempdir().expect("temp dir");
        let cluster = Cluster {
            shared: Arc::new_cyclic(|me| Shared {
                me: me.clone(),
                net,
                work: work.path().to_path_buf(),
                state: Mutex::default(),
                api: std::sync::OnceLock::new(),
                fresh_caches: AtomicBool::new(false),
            }),
            _work: work,
            stop: Arc::default(),
            controller: None,
            kubectl: None,
            api: None,
        };
        cluster.remove_network();
        let bridge = cluster.bridge();
        ip_run(&["link", "add", &bridge, "type", "bridge"]);
        ip_run(&["addr", "add", &format!("10.{net}.0.1/24"), "dev", &bridge]);
        ip_run(&["link", "set", &bridge, "up"]);
        for node in 0..NODES {
            let ns = cluster.node_ns(node);
            let (outside, inside) = (format!("wn{net}x{node}"), format!("wn{net}y{node}"));
            ip_run(&["netns", "add", &ns]);
            ip_run(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ]);
            ip_run(&["link", "set", &inside, "netns", &ns]);
            ip_run(&["link", "set", &outside, "master", &bridge, "up"]);
            ip_run(&["-n", &ns, "link", "set", "lo", "up"]);
            ip_run(&["-n", &ns, "link", "set", &inside, "name", "eth0"]);
            ip_run(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", cluster.node_ip(node)),
                "dev",
                "eth0",
            ]);
            ip_run(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip_run(&["-n", &ns, "link", "add", "cbr0", "type", "bridge"]);
            ip_run(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.{net}.{}.1/24", node + 1),
                "dev",
                "cbr0",
            ]);
            ip_run(&["-n", &ns, "link", "set", "cbr0", "up"]);
            run(Command::new("ip").args([
                "netns",
                "exec",
                &ns,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ]));
        }
        for node in 0..NODES {
            let pods = format!("10.{net}.{}.0/24", node + 1);
            let via = cluster.node_ip(node).to_string();
            ip_run(&["route", "add", &pods, "via", &via]);
            for other in (0..NODES).filter(|o| *o != node) {
                ip_run(&[
                    "-n",
                    &cluster.node_ns(other),
                    "route",
                    "add",
                    &pods,
                    "via",
                    &via,
                ]);
            }
        }
        let mut cluster = cluster;
        cluster.controller = Some(controller(cluster.shared.clone(), cluster.stop.clone()));
        let api = apiserver::ApiServer::start(cluster.shared.clone());
        let _ = cluster.shared.api.set((api.address, api.ca_pem.clone()));
        cluster.api = Some(api);
        cluster.kubectl = Some(kubectl::Server::start(cluster.shared.clone()));
        cluster
    }

    /// The environment that makes `weft --kubectl` [`Cluster::kubectl`]
    /// reach this cluster.
    pub fn kubectl_env(&self) -> Vec<(String, String)> {
        let socket = self
            .kubectl
            .as_ref()
            .expect("the kubectl server")
            .socket
            .clone();
        vec![(
            kubectl::SOCKET_VAR.to_string(),
            socket.display().to_string(),
        )]
    }

    /// The simulated kubectl, as a program to give `weft --kubectl`;
    /// built on first use.
    pub fn kubectl(&self) -> PathBuf {
        static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        BIN.get_or_init(|| {
            crate::cargo(&["build", "-p", "weft-tests", "--bin", "sim-kubectl"]);
            crate::target_dir().join("debug").join("sim-kubectl")
        })
        .clone()
    }
}

impl Shared {
    /// The root namespace's address on the switch, where a test's own
    /// servers (redis-server) listen for the pods.
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.net, 0, 1)
    }

    /// Builds image `name` from a Containerfile's `COPY` lines, with paths
    /// relative to `context`.
    pub fn build_image(&self, name: &str, containerfile: &str, context: &Path) {
        let root = self.work.join("images").join(name.replace(['/', ':'], "_"));
        let mut copies = 0;
        for line in containerfile.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("COPY ") else {
                continue;
            };
            let words: Vec<&str> = rest.split_whitespace().collect();
            let [source, dest] = words[..] else {
                panic!("COPY with other than one source and one destination: {line}");
            };
            let source = context.join(source);
            assert!(
                source.exists(),
                "COPY {}: no such file in the build context",
                source.display()
            );
            let source = std::fs::canonicalize(&source).unwrap();
            let mut dest = root.join(dest.trim_start_matches('/'));
            if rest.ends_with('/') {
                dest = dest.join(source.file_name().unwrap());
            }
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            let _ = std::fs::remove_file(&dest);
            std::os::unix::fs::symlink(&source, &dest).unwrap();
            copies += 1;
        }
        assert!(
            copies > 0,
            "the Containerfile copies nothing:\n{containerfile}"
        );
        self.state
            .lock()
            .unwrap()
            .images
            .insert(name.to_string(), root);
    }

    /// The folder of image `name`, as [`Shared::build_image`] made it.
    pub fn image_root(&self, name: &str) -> PathBuf {
        self.state.lock().unwrap().images[name].clone()
    }

    /// Applies a YAML stream of objects.
    pub fn apply(&self, yaml: &str) {
        for document in serde_norway::Deserializer::from_str(yaml) {
            let value = serde_norway::Value::deserialize(document).expect("a YAML document");
            if value.is_null() {
                continue;
            }
            let kind = value["kind"]
                .as_str()
                .expect("an object with a kind")
                .to_string();
            let name = value["metadata"]["name"]
                .as_str()
                .expect("an object with a name")
                .to_string();
            let mut state = self.state.lock().unwrap();
            match kind.as_str() {
                "ConfigMap" => {
                    let map = serde_norway::from_value(value).unwrap();
                    state.config_maps.insert(name, map);
                }
                "Secret" => {
                    let secret = serde_norway::from_value(value).unwrap();
                    state.secrets.insert(name, secret);
                }
                "Service" => {
                    let service = serde_norway::from_value(value).unwrap();
                    state.services.insert(name, service);
                }
                "ServiceAccount" => {
                    let account = serde_norway::from_value(value).unwrap();
                    state.service_accounts.insert(name, account);
                }
                "Role" => {
                    let role = serde_norway::from_value(value).unwrap();
                    state.roles.insert(name, role);
                }
                "RoleBinding" => {
                    let binding = serde_norway::from_value(value).unwrap();
                    state.role_bindings.insert(name, binding);
                }
                "HorizontalPodAutoscaler" => {
                    let autoscaler = serde_norway::from_value(value).unwrap();
                    state.autoscalers.insert(name, autoscaler);
                }
                "Deployment" => {
                    let deployment: Deployment = serde_norway::from_value(value).unwrap();
                    // The same spec again changes nothing; another one
                    // replaces the pods, as a Recreate strategy does.
                    let old = state.deployments.get(&name).map(|d| d.spec.clone());
                    if old.as_ref() == Some(&deployment.spec) {
                        continue;
                    }
                    state.deployments.insert(name.clone(), deployment.clone());
                    drop(state);
                    if old.is_some() {
                        self.delete_pods_of(&name);
                    }
                    self.start_deployment(&deployment);
                }
                other => panic!("the simulated cluster cannot apply a {other}"),
            }
        }
    }

    fn start_deployment(&self, deployment: &Deployment) {
        let name = deployment.metadata.name.clone().unwrap();
        let replicas = deployment.spec.as_ref().unwrap().replicas.unwrap_or(1);
        for _ in 0..replicas {
            self.start_pod_of(&name, deployment);
        }
    }

    /// Starts one more pod of `deployment`, named `name`.
    fn start_pod_of(&self, name: &str, deployment: &Deployment) {
        let spec = deployment.spec.as_ref().unwrap();
        let template = &spec.template;
        let labels: BTreeMap<String, String> = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default()
            .into_iter()
            .collect();
        let pod_spec = template.spec.as_ref().unwrap();
        let [container] = &pod_spec.containers[..] else {
            panic!("{name}: the simulated cluster runs pods of one container");
        };
        self.start_pod(name, &labels, pod_spec, container);
    }

    /// Sets Deployment `name`'s replicas to `count`, as `kubectl scale` or an
    /// autoscaler does: new pods start, or the newest ones are deleted.
    pub fn scale(&self, name: &str, count: usize) {
        let deployment = {
            let mut state = self.state.lock().unwrap();
            let deployment = state
                .deployments
                .get_mut(name)
                .unwrap_or_else(|| panic!("no Deployment {name}"));
            deployment.spec.as_mut().unwrap().replicas = Some(count as i32);
            deployment.clone()
        };
        let running: Vec<String> = self.pod_names_of(name);
        for _ in running.len()..count {
            self.start_pod_of(name, &deployment);
        }
        for pod in running.iter().skip(count) {
            self.delete_pod(pod);
        }
    }

    /// Kills pod `name` at once and starts another of its Deployment, as
    /// a ReplicaSet replaces a pod that died.
    pub fn kill_and_replace(&self, name: &str) {
        self.kill(name);
        let (deployment, spec) = {
            let state = self.state.lock().unwrap();
            let pod = state.pods.iter().find(|p| p.name == name).unwrap();
            let deployment = pod.deployment.clone();
            let spec = state.deployments[&deployment].clone();
            (deployment, spec)
        };
        self.remove_pod(name);
        self.start_pod_of(&deployment, &spec);
    }

    /// The names of Deployment `name`'s pods that are not being deleted,
    /// oldest first.
    fn pod_names_of(&self, name: &str) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state
            .pods
            .iter()
            .filter(|p| p.deployment == name && !p.terminating)
            .map(|p| p.name.clone())
            .collect()
    }

    /// Deletes every pod of Deployment `name`.
    fn delete_pods_of(&self, name: &str) {
        for pod in self.pod_names_of(name) {
            self.delete_pod(&pod);
        }
    }

    /// Deletes Deployment `name` and its pods.
    pub fn delete_deployment(&self, name: &str) {
        self.state.lock().unwrap().deployments.remove(name);
        self.delete_pods_of(name);
    }

    /// Deletes pod `name` as Kubernetes does, in the background: out of
    /// every Service at once, then its preStop pause, then SIGTERM, then
    /// SIGKILL after its grace period, and gone.
    fn delete_pod(&self, name: &str) {
        let (pid, pre_stop, grace) = {
            let mut state = self.state.lock().unwrap();
            let Some(pod) = state.pods.iter_mut().find(|p| p.name == name) else {
                return;
            };
            pod.terminating = true;
            pod.ready = false;
            (pod.child.as_ref().map(|c| c.id()), pod.pre_stop, pod.grace)
        };
        let shared = self.me.upgrade().expect("the cluster");
        let name = name.to_string();
        std::thread::spawn(move || {
            std::thread::sleep(pre_stop);
            if let Some(pid) = pid {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
            let deadline = Instant::now() + grace;
            loop {
                let exited = {
                    let mut state = shared.state.lock().unwrap();
                    match state.pods.iter_mut().find(|p| p.name == name) {
                        Some(pod) => pod
                            .child
                            .as_mut()
                            .is_none_or(|c| !matches!(c.try_wait(), Ok(None))),
                        None => true,
                    }
                };
                if exited || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            shared.remove_pod(&name);
        });
    }

    /// Kills pod `name` if it still runs, and removes it and its network.
    fn remove_pod(&self, name: &str) {
        let mut state = self.state.lock().unwrap();
        let Some(index) = state.pods.iter().position(|p| p.name == name) else {
            return;
        };
        let mut pod = state.pods.remove(index);
        drop(state);
        if let Some(mut child) = pod.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &pod.namespace])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&pod.namespace));
    }

    fn start_pod(
        &self,
        deployment: &str,
        labels: &BTreeMap<String, String>,
        pod_spec: &k8s_openapi::api::core::v1::PodSpec,
        container: &Container,
    ) {
        let mut state = self.state.lock().unwrap();
        state.started += 1;
        let number = state.started;
        let node = (number as usize - 1) % NODES;
        let ip = Ipv4Addr::new(10, self.net, node as u8 + 1, 1 + number as u8);
        let pod_name = format!("{deployment}-{number}");
        let ns = format!("wp{}-{number}", self.net);
        // Its network: a namespace on its node's pod bridge.
        let (outside, inside) = (
            format!("wp{}x{number}", self.net),
            format!("wp{}y{number}", self.net),
        );
        let node_ns = self.node_ns(node);
        ip_run(&["netns", "add", &ns]);
        ip_run(&[
            "link", "add", &outside, "type", "veth", "peer", "name", &inside,
        ]);
        ip_run(&["link", "set", &outside, "netns", &node_ns]);
        ip_run(&["link", "set", &inside, "netns", &ns]);
        ip_run(&[
            "-n", &node_ns, "link", "set", &outside, "master", "cbr0", "up",
        ]);
        ip_run(&["-n", &ns, "link", "set", "lo", "up"]);
        ip_run(&["-n", &ns, "link", "set", &inside, "name", "eth0"]);
        ip_run(&["-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        ip_run(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip_run(&[
            "-n",
            &ns,
            "route",
            "add",
            "default",
            "via",
            &format!("10.{}.{}.1", self.net, node + 1),
        ]);
        let etc = PathBuf::from("/etc/netns").join(&ns);
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("hosts"), hosts_text(&state)).unwrap();
        // No name server: a name not in the hosts file fails at once, as
        // an unknown name does in a cluster's DNS.
        std::fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();

        // Its volumes, and where they are mounted.
        let pod_dir = self.work.join("pods").join(&pod_name);
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let volume = pod_spec
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == mount.name)
                .unwrap_or_else(|| panic!("{pod_name}: no volume {}", mount.name));
            let files = match (&volume.config_map, &volume.secret) {
                (Some(c), _) => state
                    .config_maps
                    .get(&c.name)
                    .unwrap_or_else(|| panic!("{pod_name}: no ConfigMap {}", c.name))
                    .data
                    .clone()
                    .unwrap_or_default(),
                (_, Some(s)) => {
                    let secret = s.secret_name.clone().unwrap();
                    state
                        .secrets
                        .get(&secret)
                        .unwrap_or_else(|| panic!("{pod_name}: no Secret {secret}; apply it first"))
                        .string_data
                        .clone()
                        .unwrap_or_default()
                }
                _ => panic!(
                    "{pod_name}: volume {} is neither a ConfigMap nor a Secret",
                    volume.name
                ),
            };
            let dir = pod_dir.join("volumes").join(&volume.name);
            std::fs::create_dir_all(&dir).unwrap();
            for (file, text) in files {
                std::fs::write(dir.join(file), text).unwrap();
            }
            mounts.push((mount.mount_path.clone(), dir));
        }
        // Its ServiceAccount's credentials, where the kubelet mounts them,
        // and the API server's address.
        let mut api_env = BTreeMap::new();
        if let Some(account) = &pod_spec.service_account_name
            && pod_spec.automount_service_account_token != Some(false)
        {
            let (address, ca) = self.api.get().expect("the API server").clone();
            let token = match state.tokens.iter().find(|(_, a)| *a == account) {
                Some((token, _)) => token.clone(),
                None => {
                    let token = format!("{account}-{:016x}", rand_u64());
                    state.tokens.insert(token.clone(), account.clone());
                    token
                }
            };
            let dir = pod_dir.join("serviceaccount");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("token"), token).unwrap();
            std::fs::write(dir.join("ca.crt"), ca).unwrap();
            std::fs::write(dir.join("namespace"), NAMESPACE).unwrap();
            mounts.push((SERVICE_ACCOUNT_DIR.to_string(), dir));
            api_env.insert(
                "KUBERNETES_SERVICE_HOST".to_string(),
                address.ip().to_string(),
            );
            api_env.insert(
                "KUBERNETES_SERVICE_PORT".to_string(),
                address.port().to_string(),
            );
        }
        let cache = if self.fresh_caches.load(Ordering::SeqCst) {
            pod_dir.join("cache")
        } else {
            crate::shared_cache()
        };
        let image = container.image.clone().unwrap();
        let root = state
            .images
            .get(&image)
            .unwrap_or_else(|| panic!("{pod_name}: image {image} was not built"))
            .clone();
        let path_in_pod = |path: &str| -> String {
            if !path.starts_with('/') {
                return path.to_string();
            }
            for (mount, dir) in &mounts {
                match path.strip_prefix(mount.as_str()) {
                    Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                        return format!("{}{rest}", dir.display());
                    }
                    _ => {}
                }
            }
            root.join(path.trim_start_matches('/'))
                .display()
                .to_string()
        };

        // Its environment, and its command.
        let mut env = BTreeMap::new();
        for var in container.env.iter().flatten() {
            let value = match (&var.value, &var.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(from)) => {
                    match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                        Some("metadata.name") => pod_name.clone(),
                        Some("status.podIP") => ip.to_string(),
                        other => panic!(
                            "{pod_name}: env {} from {other:?} is not simulated",
                            var.name
                        ),
                    }
                }
                (None, None) => String::new(),
            };
            env.insert(var.name.clone(), value);
        }
        let expand = |arg: &str| {
            let mut arg = arg.to_string();
            for (k, v) in &env {
                arg = arg.replace(&format!("$({k})"), v);
            }
            arg
        };
        let command: Vec<String> = container
            .command
            .iter()
            .flatten()
            .chain(container.args.iter().flatten())
            .map(|a| path_in_pod(&expand(a)))
            .collect();
        let mut child = Command::new("ip");
        child
            .args(["netns", "exec", &ns])
            .args(&command)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("WEFT_CACHE_DIR", cache)
            .env(
                "WEFT_LOG",
                std::env::var("WEFT_POD_LOG").unwrap_or("warn,weft_runtime=info".into()),
            )
            .envs(&api_env)
            .envs(&env)
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = child.spawn().expect("ip netns exec starts");
        let log = Arc::new(Mutex::new(String::new()));
        crate::collect_lines(child.stdout.take().unwrap(), &log, None);
        crate::collect_lines(child.stderr.take().unwrap(), &log, None);
        let ports = container
            .ports
            .iter()
            .flatten()
            .filter_map(|p| Some((p.name.clone()?, p.container_port as u16)))
            .collect();
        let pre_stop = container
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .and_then(|h| h.sleep.as_ref())
            .map_or(0, |s| s.seconds);
        let grace = pod_spec.termination_grace_period_seconds.unwrap_or(30);
        state.pods.push(Pod {
            name: pod_name,
            deployment: deployment.to_string(),
            namespace: ns,
            node,
            ip,
            labels: labels.clone(),
            ports,
            child: Some(child),
            log,
            ready: false,
            started: Instant::now(),
            ready_at: None,
            terminating: false,
            pre_stop: Duration::from_secs(pre_stop as u64),
            grace: Duration::from_secs(grace as u64),
        });
    }

    /// File `file` of the applied ConfigMap `name`.
    pub fn config_map_file(&self, name: &str, file: &str) -> String {
        let state = self.state.lock().unwrap();
        let map = state
            .config_maps
            .get(name)
            .unwrap_or_else(|| panic!("no ConfigMap {name}"));
        map.data
            .as_ref()
            .and_then(|d| d.get(file))
            .unwrap_or_else(|| panic!("ConfigMap {name} has no {file}"))
            .clone()
    }

    /// Whether ConfigMap `name` is in the cluster.
    pub fn has_config_map(&self, name: &str) -> bool {
        self.state.lock().unwrap().config_maps.contains_key(name)
    }

    /// What ingress pod `pod` says of itself (`GET /traffic/local` on its
    /// status port).
    pub fn ingress_report(&self, pod: &PodInfo) -> serde_json::Value {
        let (status, body) = crate::http_get(&format!("http://{}:7072/traffic/local", pod.ip));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Each pod's start time so far, from its process's start to its first
    /// passed readiness probe, for pods whose labels include `selector`'s.
    pub fn start_times(&self, selector: &[(&str, &str)]) -> Vec<(String, Duration)> {
        let state = self.state.lock().unwrap();
        state
            .pods
            .iter()
            .filter(|p| {
                selector
                    .iter()
                    .all(|(k, v)| p.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .filter_map(|p| Some((p.name.clone(), p.ready_at? - p.started)))
            .collect()
    }

    /// From now on, each new pod gets an empty compile cache of its own,
    /// as a real pod's is, instead of the cache the tests share.
    pub fn give_pods_fresh_caches(&self) {
        self.fresh_caches.store(true, Ordering::SeqCst);
    }

    /// Every pod whose labels include all of `selector`'s.
    pub fn pods(&self, selector: &[(&str, &str)]) -> Vec<PodInfo> {
        let mut state = self.state.lock().unwrap();
        state
            .pods
            .iter_mut()
            .filter(|p| {
                selector
                    .iter()
                    .all(|(k, v)| p.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|p| PodInfo {
                name: p.name.clone(),
                node: p.node,
                ip: p.ip,
                ready: p.ready,
                running: p
                    .child
                    .as_mut()
                    .is_some_and(|c| matches!(c.try_wait(), Ok(None))),
                version: p
                    .labels
                    .get("weft.dev/version")
                    .cloned()
                    .unwrap_or_default(),
                terminating: p.terminating,
            })
            .collect()
    }

    /// Waits until `count` pods matching `selector` are ready.
    pub fn wait_ready(&self, selector: &[(&str, &str)], count: usize) -> Vec<PodInfo> {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let pods = self.pods(selector);
            if pods.iter().filter(|p| p.ready).count() >= count {
                return pods;
            }
            if Instant::now() > deadline {
                panic!(
                    "{count} pods of {selector:?} were not ready in time: {pods:?}\n{}",
                    self.logs()
                );
            }
            if pods.iter().any(|p| !p.running && !p.terminating) {
                panic!("a pod of {selector:?} exited: {pods:?}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every pod that matches `selector` (one at least) is
    /// ready, leaving out those being deleted.
    pub fn wait_all_ready(&self, selector: &[(&str, &str)]) -> Vec<PodInfo> {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let pods: Vec<PodInfo> = self
                .pods(selector)
                .into_iter()
                .filter(|p| !p.terminating)
                .collect();
            if !pods.is_empty() && pods.iter().all(|p| p.ready) {
                return pods;
            }
            if Instant::now() > deadline {
                panic!(
                    "pods of {selector:?} were not ready in time: {pods:?}\n{}",
                    self.logs()
                );
            }
            if pods.iter().any(|p| !p.running) {
                panic!("a pod of {selector:?} exited: {pods:?}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until no pod matches `selector` (deleted pods stop after their
    /// preStop pause and their drain).
    pub fn wait_gone(&self, selector: &[(&str, &str)]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.pods(selector).is_empty() {
            assert!(
                Instant::now() < deadline,
                "pods of {selector:?} are still there: {:?}",
                self.pods(selector)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Where Service `name` sends a client now: the first ready pod its
    /// selector picks, at the Service's first target port.
    pub fn service_address(&self, name: &str) -> SocketAddr {
        let state = self.state.lock().unwrap();
        let service = state
            .services
            .get(name)
            .unwrap_or_else(|| panic!("no Service {name}"));
        let spec = service.spec.as_ref().unwrap();
        let selector = spec.selector.clone().unwrap_or_default();
        let port = &spec.ports.as_ref().unwrap()[0];
        let pod = state
            .pods
            .iter()
            .find(|p| p.ready && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("Service {name} selects no ready pod"));
        let target = match &port.target_port {
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(named)) => {
                pod.ports[named]
            }
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => *n as u16,
            None => port.port as u16,
        };
        SocketAddr::from((pod.ip, target))
    }

    /// Kills pod `name` at once, as a crashed machine would.
    pub fn kill(&self, name: &str) {
        self.signal(name, "-KILL");
    }

    /// Deletes pod `name` as Kubernetes does, after its preStop hook:
    /// SIGTERM, and waits up to `grace` for it to exit. Whether it exited
    /// by itself, with success.
    pub fn terminate(&self, name: &str, grace: Duration) -> bool {
        self.signal(name, "-TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            let mut state = self.state.lock().unwrap();
            let pod = state.pods.iter_mut().find(|p| p.name == name).unwrap();
            if let Ok(Some(status)) = pod.child.as_mut().unwrap().try_wait() {
                return status.success();
            }
            drop(state);
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Freezes pod `name` (SIGSTOP): it keeps its sockets and answers nothing.
    pub fn freeze(&self, name: &str) {
        self.signal(name, "-STOP");
    }

    fn signal(&self, name: &str, signal: &str) {
        let pid = self.with_pod(name, |pod| {
            pod.child.as_ref().expect("a running pod").id().to_string()
        });
        let _ = Command::new("kill")
            .args([signal, &pid])
            .stderr(Stdio::null())
            .status();
    }

    /// What pod `name` printed.
    pub fn log(&self, name: &str) -> String {
        self.with_pod(name, |pod| pod.log.lock().unwrap().clone())
    }

    fn with_pod<T>(&self, name: &str, f: impl FnOnce(&Pod) -> T) -> T {
        let state = self.state.lock().unwrap();
        let pod = state.pods.iter().find(|p| p.name == name);
        f(pod.unwrap_or_else(|| panic!("no pod {name}")))
    }

    /// Every pod's output, for failure messages.
    pub fn logs(&self) -> String {
        let state = self.state.lock().unwrap();
        state
            .pods
            .iter()
            .map(|p| {
                format!(
                    "--- pod {} (node {}, {})\n{}",
                    p.name,
                    p.node,
                    p.ip,
                    p.log.lock().unwrap()
                )
            })
            .collect()
    }

    /// The files of the applied Secret `name`, by file name.
    pub fn secret_files(&self, name: &str) -> BTreeMap<String, String> {
        self.state
            .lock()
            .unwrap()
            .secrets
            .get(name)
            .unwrap_or_else(|| panic!("no Secret {name} was applied"))
            .string_data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect()
    }

    fn bridge(&self) -> String {
        format!("wb{}", self.net)
    }

    fn node_ns(&self, node: usize) -> String {
        format!("wn{}-{node}", self.net)
    }

    fn node_ip(&self, node: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.net, 0, 10 + node as u8)
    }

    /// Removes every namespace, link and route of this cluster's network,
    /// including those a crashed earlier run left.
    fn remove_network(&self) {
        let prefixes = [format!("wp{}-", self.net), format!("wn{}-", self.net)];
        if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let ns = line.split_whitespace().next().unwrap_or("");
                if prefixes.iter().any(|p| ns.starts_with(p.as_str())) {
                    let _ = Command::new("ip").args(["netns", "del", ns]).status();
                    let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
                }
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge()])
            .stderr(Stdio::null())
            .status();
        for node in 0..NODES {
            let pods = format!("10.{}.{}.0/24", self.net, node + 1);
            let _ = Command::new("ip")
                .args(["route", "del", &pods])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(controller) = self.controller.take() {
            let _ = controller.join();
        }
        {
            let mut state = self.state.lock().unwrap();
            for pod in &mut state.pods {
                if let Some(mut child) = pod.child.take() {
                    let _ = Command::new("kill")
                        .args(["-CONT", &child.id().to_string()])
                        .status();
                    let _ = child.kill();
                    let _ = child.wait();
                }
                let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&pod.namespace));
            }
        }
        self.remove_network();
    }
}

/// The hosts file every pod sees: each headless Service's name, once for
/// each of its ready pods.
fn hosts_text(state: &State) -> String {
    let mut text = String::from("127.0.0.1 localhost\n");
    for (name, service) in &state.services {
        let Some(spec) = &service.spec else { continue };
        if spec.cluster_ip.as_deref() != Some("None") {
            continue;
        }
        let selector = spec.selector.clone().unwrap_or_default();
        for pod in state.pods.iter().filter(|p| p.ready) {
            if selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v)) {
                text.push_str(&format!("{} {name}\n", pod.ip));
            }
        }
    }
    text
}

/// The kubelet and endpoints controller: probes readiness and publishes
/// ready pods in the hosts files, until `stop`.
fn controller(shared: Arc<Shared>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut written = String::new();
        while !stop.load(Ordering::Relaxed) {
            let targets: Vec<(String, SocketAddr, bool)> = {
                let mut state = shared.state.lock().unwrap();
                state
                    .pods
                    .iter_mut()
                    .map(|p| {
                        let alive = !p.terminating
                            && p.child
                                .as_mut()
                                .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
                        let port = p.ports.get("probe").copied().unwrap_or(7071);
                        (p.name.clone(), SocketAddr::from((p.ip, port)), alive)
                    })
                    .collect()
            };
            // Every pod at once, as each pod's kubelet probes on its own.
            let ready: Vec<(String, bool)> = runtime.block_on(async {
                let mut probes = tokio::task::JoinSet::new();
                for (name, address, alive) in targets {
                    probes.spawn(async move { (name, alive && probe(address).await) });
                }
                let mut out = Vec::new();
                while let Some(Ok(answer)) = probes.join_next().await {
                    out.push(answer);
                }
                out
            });
            let mut state = shared.state.lock().unwrap();
            for (name, ready) in ready {
                if let Some(pod) = state.pods.iter_mut().find(|p| p.name == name) {
                    pod.ready = ready && !pod.terminating;
                    if pod.ready && pod.ready_at.is_none() {
                        pod.ready_at = Some(Instant::now());
                    }
                }
            }
            let hosts = hosts_text(&state);
            if hosts != written {
                for pod in &state.pods {
                    let file = Path::new("/etc/netns").join(&pod.namespace).join("hosts");
                    // In place: `ip netns exec` bound this very file.
                    let _ = std::fs::write(file, &hosts);
                }
                written = hosts;
            }
            drop(state);
            std::thread::sleep(CONTROL_EVERY);
        }
    })
}

/// A readiness probe: `grpc.health.v1` Check of the overall service.
async fn probe(address: SocketAddr) -> bool {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .ok()?
            .connect_timeout(Duration::from_millis(300))
            .connect()
            .await
            .ok()?;
        let reply = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .ok()?;
        Some(reply.get_ref().status == 1)
    };
    tokio::time::timeout(Duration::from_millis(500), check)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

fn check_root() {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap_or_else(|e| {
            panic!("the cluster tests need `ip` (apt-get install -y iproute2): {e}")
        });
    assert!(
        out.status.success(),
        "`ip netns list` failed: the cluster tests need iproute2 and root"
    );
    let euid = Command::new("id").arg("-u").output().expect("id runs");
    assert_eq!(
        String::from_utf8_lossy(&euid.stdout).trim(),
        "0",
        "the cluster tests make network namespaces, which needs root (CI runs as root)"
    );
}

/// Runs `ip ARGS`, panicking with its message on failure.
fn ip_run(args: &[&str]) {
    run(Command::new("ip").args(args));
}

fn run(command: &mut Command) {
    let out = command.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
