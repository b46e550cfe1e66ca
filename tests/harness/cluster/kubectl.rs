//! The simulated cluster's side of `sim-kubectl`: it takes each command
//! on a Unix socket and answers it from the cluster's state, as kubectl
//! would print it. It knows the commands weft runs, and fails any other,
//! saying which:
//!
//! - `apply -f -`
//! - `get KIND NAME -o json --ignore-not-found`
//! - `get KIND -l SELECTOR -o json` (a `List`; Deployments with their
//!   `status.readyReplicas` counted from their ready pods)
//! - `delete KINDS -l SELECTOR ...` and `delete KIND NAME ...`
//! - `get --raw /api/v1/namespaces/NS/services/[http:]NAME:PORT/proxy/PATH`,
//!   a GET of PATH on a ready pod that the Service selects
//! - `config view --minify -o jsonpath={..namespace}` (none set)
//!
//! `-n NS` in front is taken; the cluster has one namespace.

use super::{NAMESPACE, Shared};
use k8s_openapi::api::apps::v1::DeploymentStatus;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The environment variable that tells `sim-kubectl` where the socket is.
pub(super) const SOCKET_VAR: &str = "WEFT_SIM_KUBECTL";

/// The socket, served by a thread until the cluster is dropped.
pub(super) struct Server {
    pub(super) socket: PathBuf,
}

impl Server {
    pub(super) fn start(shared: Arc<Shared>) -> Server {
        let socket = shared.work.join("kubectl.sock");
        let listener = UnixListener::bind(&socket).expect("the kubectl socket binds");
        let weak = Arc::downgrade(&shared);
        drop(shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(shared) = weak.upgrade() else { return };
                std::thread::spawn(move || {
                    let mut text = String::new();
                    if stream.read_to_string(&mut text).is_err() {
                        return;
                    }
                    let request: serde_json::Value =
                        serde_json::from_str(&text).unwrap_or_default();
                    let args: Vec<String> = request["args"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| a.as_str().map(String::from))
                        .collect();
                    let input = request["stdin"].as_str().unwrap_or_default().to_string();
                    let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run(&shared, &args, &input)
                    }))
                    .unwrap_or_else(|panic| {
                        let why = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        Err(format!("error: the simulated cluster failed: {why}"))
                    });
                    let (code, stdout, stderr) = match answer {
                        Ok(out) => (0, out, String::new()),
                        Err(e) => (1, String::new(), e),
                    };
                    let reply =
                        serde_json::json!({"code": code, "stdout": stdout, "stderr": stderr});
                    let _ = stream.write_all(reply.to_string().as_bytes());
                });
            }
        });
        Server { socket }
    }
}

/// One command: what it prints, or what it says on failure.
fn run(shared: &Shared, args: &[String], input: &str) -> Result<String, String> {
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    if args.first() == Some(&"-n") && args.len() >= 2 {
        if args[1] != NAMESPACE {
            return Err(format!(
                "error: the simulated cluster has only the namespace {NAMESPACE}"
            ));
        }
        args.drain(..2);
    }
    match args.as_slice() {
        ["apply", "-f", "-"] => {
            shared.apply(input);
            Ok("applied\n".into())
        }
        ["get", "--raw", path] => proxy_get(shared, path),
        ["config", "view", ..] => Ok(String::new()),
        ["get", kind, "-l", selector, "-o", "json"] => {
            let items = list(shared, kind, &parse_selector(selector))?;
            Ok(serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string())
        }
        ["get", kind, name, "-o", "json", "--ignore-not-found"] => {
            let items = list(shared, kind, &BTreeMap::new())?;
            Ok(items
                .into_iter()
                .find(|o| o["metadata"]["name"].as_str() == Some(name))
                .map(|o| o.to_string())
                .unwrap_or_default())
        }
        ["delete", kinds, "-l", selector, ..] => {
            let selector = parse_selector(selector);
            for kind in kinds.split(',') {
                for object in list(shared, kind, &selector)? {
                    let name = object["metadata"]["name"].as_str().unwrap_or_default();
                    delete(shared, kind, name)?;
                }
            }
            Ok(String::new())
        }
        ["delete", kind, name, ..] if !name.starts_with('-') => {
            delete(shared, kind, name)?;
            Ok(String::new())
        }
        _ => Err(format!(
            "error: the simulated kubectl does not know `kubectl {}`",
            args.join(" ")
        )),
    }
}

/// `a=b,c=d` as pairs.
fn parse_selector(selector: &str) -> BTreeMap<String, String> {
    selector
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn matches(labels: Option<&BTreeMap<String, String>>, selector: &BTreeMap<String, String>) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Every object of `kind` whose labels match `selector`, as JSON.
fn list(
    shared: &Shared,
    kind: &str,
    selector: &BTreeMap<String, String>,
) -> Result<Vec<serde_json::Value>, String> {
    let state = shared.state.lock().unwrap();
    let pick = |labels: Option<&BTreeMap<String, String>>| matches(labels, selector);
    let json = |o: &dyn erased::Json| o.json();
    let items: Vec<serde_json::Value> = match kind {
        "configmap" | "configmaps" => state
            .config_maps
            .values()
            .filter(|o| pick(o.metadata.labels.as_ref()))
            .map(|o| json(o))
            .collect(),
        "secret" | "secrets" => state
            .secrets
            .values()
            .filter(|o| pick(o.metadata.labels.as_ref()))
            .map(|o| json(o))
            .collect(),
        "service" | "services" => state
            .services
            .values()
            .filter(|o| pick(o.metadata.labels.as_ref()))
            .map(|o| json(o))
            .collect(),
        "horizontalpodautoscaler" | "horizontalpodautoscalers" | "hpa" => state
            .autoscalers
            .values()
            .filter(|o| pick(o.metadata.labels.as_ref()))
            .map(|o| json(o))
            .collect(),
        "deployment" | "deployments" => state
            .deployments
            .iter()
            .filter(|(_, o)| pick(o.metadata.labels.as_ref()))
            .map(|(name, o)| {
                let pods = state
                    .pods
                    .iter()
                    .filter(|p| &p.deployment == name && !p.terminating);
                let ready = pods.clone().filter(|p| p.ready).count() as i32;
                let mut o = o.clone();
                o.status = Some(DeploymentStatus {
                    replicas: Some(pods.count() as i32),
                    ready_replicas: Some(ready),
                    ..Default::default()
                });
                json(&o)
            })
            .collect(),
        other => return Err(format!("error: the simulated cluster keeps no {other}")),
    };
    Ok(items)
}

/// Deletes object `name` of `kind`; a Deployment's pods go as Kubernetes
/// deletes them.
fn delete(shared: &Shared, kind: &str, name: &str) -> Result<(), String> {
    let mut state = shared.state.lock().unwrap();
    match kind {
        "configmap" | "configmaps" => drop(state.config_maps.remove(name)),
        "secret" | "secrets" => drop(state.secrets.remove(name)),
        "service" | "services" => drop(state.services.remove(name)),
        "horizontalpodautoscaler" | "horizontalpodautoscalers" | "hpa" => {
            drop(state.autoscalers.remove(name))
        }
        "deployment" | "deployments" => {
            drop(state);
            shared.delete_deployment(name);
        }
        other => return Err(format!("error: the simulated cluster keeps no {other}")),
    }
    Ok(())
}

/// `GET PATH` of a ready pod that Service NAME selects, at its port PORT,
/// as the API server's service proxy does.
fn proxy_get(shared: &Shared, path: &str) -> Result<String, String> {
    let rest = path
        .strip_prefix(&format!("/api/v1/namespaces/{NAMESPACE}/services/"))
        .ok_or_else(|| format!("error: the simulated API server has no {path}"))?;
    let (service, rest) = rest
        .split_once("/proxy")
        .ok_or_else(|| format!("error: {path} is not a service proxy path"))?;
    let service = service.strip_prefix("http:").unwrap_or(service);
    let (name, port) = service.split_once(':').unwrap_or((service, ""));
    let target = {
        let state = shared.state.lock().unwrap();
        let svc = state.services.get(name).ok_or_else(|| {
            format!("Error from server (NotFound): services \"{name}\" not found")
        })?;
        let spec = svc.spec.clone().unwrap_or_default();
        let selector: BTreeMap<String, String> = spec.selector.unwrap_or_default();
        let service_port = spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .find(|p| {
                port.is_empty() || p.name.as_deref() == Some(port) || p.port.to_string() == port
            })
            .ok_or_else(|| format!("error: Service {name} has no port {port}"))?;
        let pods: Vec<_> = state
            .pods
            .iter()
            .filter(|p| p.ready && matches(Some(&p.labels), &selector))
            .collect();
        let pod = pods
            .get(super::rand_u64() as usize % pods.len().max(1))
            .ok_or_else(|| {
                format!(
                    "Error from server (ServiceUnavailable): no endpoints available for service \
                     \"{name}\""
                )
            })?;
        let target_port = match &service_port.target_port {
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(named)) => {
                pod.ports.get(named).copied().unwrap_or(0)
            }
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => *n as u16,
            None => service_port.port as u16,
        };
        std::net::SocketAddr::from((pod.ip, target_port))
    };
    let path = if rest.is_empty() { "/" } else { rest };
    get(target, path).map_err(|e| {
        format!("Error from server (ServiceUnavailable): the pod at {target} did not answer: {e}")
    })
}

/// A plain `GET path` of `address`, with time limits.
fn get(address: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP answer"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(
            head.lines().next().unwrap_or_default().to_string(),
        ));
    }
    Ok(body.to_string())
}

/// Objects as JSON, whatever their type.
mod erased {
    pub(super) trait Json {
        fn json(&self) -> serde_json::Value;
    }

    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap()
        }
    }
}
