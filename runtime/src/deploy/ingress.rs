//! Ingress: the manager's side of a listener. It forwards each request to a
//! worker that serves the listener's component, choosing first the version
//! and then a replica of it.
//!
//! - **Versions.** Each running version is a [`Backend`] with a weight, the
//!   share of new requests it gets in percent; a rollout moves the weights.
//!   With sticky sessions, a client that carries the `weft-version` cookie
//!   stays with its version for as long as that version serves.
//! - **Replicas.** Requests go to the version's replicas in turn, skipping
//!   those out of rotation (their worker failed a health check, is
//!   restarting or draining) and those that refuse the connection; then,
//!   rather than fail, to another serving version's.
//! - **Connections** to each replica are kept alive and reused: a request
//!   takes an idle one, or opens one, and gives it back once its response
//!   has been read through.
//! - **Answers** carry a `weft-version` header. Every version counts its
//!   requests and 5xx answers, which the rollout's gate compares.
//!
//! A request that was sent is never retried: the answer, or a 502 that says
//! what failed, goes back to the client.

use crate::version::Version;
use bytes::Bytes;
use http::header::{COOKIE, HeaderValue, SET_COOKIE};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// The body of a forwarded answer.
pub type IngressBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// The response header, and the sticky-session cookie, that name the
/// version that answered.
pub const VERSION_HEADER: &str = "weft-version";

/// How many idle connections to one replica are kept.
const IDLE_PER_REPLICA: usize = 64;

/// One worker's listener address, with whether it takes requests now.
#[derive(Debug)]
pub struct Replica {
    /// The worker's loopback address for this listener.
    pub address: SocketAddr,
    /// Set by the worker set: false while the worker is down, failing its
    /// health checks, or draining.
    pub in_rotation: Arc<AtomicBool>,
    /// Idle connections, with when each became idle.
    idle: Mutex<Vec<(SendRequest<Incoming>, Instant)>>,
}

impl Replica {
    /// A replica at `address` whose rotation flag is `in_rotation`.
    pub fn new(address: SocketAddr, in_rotation: Arc<AtomicBool>) -> Replica {
        Replica {
            address,
            in_rotation,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A connection ready for a request: an idle one that has been idle
    /// for less than `keep_idle`, or a new one. The worker closes a
    /// connection idle for its listener's idle timeout, and one it is
    /// closing must never take a request; `keep_idle` is half of that.
    async fn connection(
        self: &Arc<Self>,
        keep_idle: Duration,
    ) -> std::io::Result<SendRequest<Incoming>> {
        loop {
            let idle = self.idle.lock().expect("idle lock").pop();
            match idle {
                Some((sender, since)) if sender.is_ready() && since.elapsed() < keep_idle => {
                    return Ok(sender);
                }
                Some(_) => continue,
                None => break,
            }
        }
        let stream = TcpStream::connect(self.address).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("a connection to a worker ended with an error: {e}");
            }
        });
        Ok(sender)
    }

    /// Puts `sender` back among the idle connections once its response has
    /// been read through.
    fn give_back(self: &Arc<Self>, mut sender: SendRequest<Incoming>) {
        let replica = self.clone();
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                let mut idle = replica.idle.lock().expect("idle lock");
                if idle.len() < IDLE_PER_REPLICA {
                    idle.push((sender, Instant::now()));
                }
            }
        });
    }

    /// Closes the idle connections, as the worker goes away.
    pub fn forget_connections(&self) {
        self.idle.lock().expect("idle lock").clear();
    }
}

/// A version's counts of requests at one listener.
#[derive(Debug, Default)]
pub struct RequestCounts {
    /// Requests answered.
    pub requests: AtomicU64,
    /// Of those, the ones answered with a 5xx.
    pub failed: AtomicU64,
    /// Requests sent to the version whose answer has not been read through.
    pub in_flight: Arc<AtomicU64>,
}

/// One version behind a listener.
#[derive(Debug)]
pub struct Backend {
    /// The version.
    pub version: Version,
    /// Its replicas that serve the listener's component: fixed on one
    /// machine, followed from discovery in a cluster.
    replicas: RwLock<Arc<[Arc<Replica>]>>,
    /// Its share of new requests, in percent.
    weight: AtomicU8,
    next: AtomicU64,
    /// What it answered.
    pub counts: RequestCounts,
}

impl Backend {
    /// A version with no share of requests yet.
    pub fn new(version: Version, replicas: Vec<Arc<Replica>>) -> Backend {
        Backend {
            version,
            replicas: RwLock::new(Arc::from(replicas)),
            weight: AtomicU8::new(0),
            next: AtomicU64::new(0),
            counts: RequestCounts::default(),
        }
    }

    /// Its replicas now.
    pub fn replicas(&self) -> Arc<[Arc<Replica>]> {
        self.replicas.read().expect("replicas lock").clone()
    }

    /// Makes `addresses` its replicas, in rotation; a replica that stays
    /// keeps its idle connections.
    pub fn set_addresses(&self, addresses: &[SocketAddr]) {
        let mut replicas = self.replicas.write().expect("replicas lock");
        let next: Vec<Arc<Replica>> = addresses
            .iter()
            .map(|address| {
                replicas
                    .iter()
                    .find(|r| r.address == *address)
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(Replica::new(*address, Arc::new(AtomicBool::new(true))))
                    })
            })
            .collect();
        *replicas = Arc::from(next);
    }

    /// Sets its share of new requests, in percent.
    pub fn set_weight(&self, percent: u8) {
        self.weight.store(percent.min(100), Ordering::SeqCst);
    }

    /// Its share of new requests, in percent.
    pub fn weight(&self) -> u8 {
        self.weight.load(Ordering::SeqCst)
    }

    /// Its replicas in rotation, starting with the next in turn.
    fn in_turn(&self) -> Vec<Arc<Replica>> {
        let replicas = self.replicas();
        let n = replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        (0..n)
            .map(|i| replicas[(start + i) % n.max(1)].clone())
            .filter(|r| r.in_rotation.load(Ordering::SeqCst))
            .collect()
    }
}

/// One listener's ingress.
pub struct Ingress {
    listener: String,
    component: String,
    sticky: bool,
    /// How long an idle connection to a worker is reused: half the
    /// listener's idle timeout, after which the worker closes it.
    keep_idle: Duration,
    backends: RwLock<Vec<Arc<Backend>>>,
    next: AtomicU64,
}

impl Ingress {
    /// The ingress of `listener`, whose `component` the workers serve
    /// within `limits`; with `sticky`, clients keep the version they first
    /// got.
    pub fn new(
        listener: &str,
        component: &str,
        sticky: bool,
        limits: crate::listener::ConnectionLimits,
    ) -> Ingress {
        Ingress {
            listener: listener.to_string(),
            component: component.to_string(),
            sticky,
            keep_idle: limits.idle_timeout / 2,
            backends: RwLock::new(Vec::new()),
            next: AtomicU64::new(0),
        }
    }

    /// Adds a version, with no share of requests until its weight is set.
    pub fn add(&self, backend: Arc<Backend>) {
        self.backends.write().expect("backends lock").push(backend);
    }

    /// Removes a version; requests it is answering finish.
    pub fn remove(&self, version: &Version) {
        self.backends
            .write()
            .expect("backends lock")
            .retain(|b| &b.version != version);
    }

    /// The version `version`'s backend, if it is here.
    pub fn backend(&self, version: &Version) -> Option<Arc<Backend>> {
        self.backends
            .read()
            .expect("backends lock")
            .iter()
            .find(|b| &b.version == version)
            .cloned()
    }

    /// Forwards one request and returns the answer.
    pub async fn handle(
        self: Arc<Self>,
        request: hyper::Request<Incoming>,
    ) -> hyper::Response<IngressBody> {
        let backends = self.backends.read().expect("backends lock").clone();
        let sticky = self.sticky.then(|| cookie_version(&request)).flatten();
        let Some(chosen) = self.choose(&backends, sticky.as_deref()) else {
            return self.error(
                None,
                503,
                "no version of the app is serving; it may be starting or stopping, try again",
            );
        };
        // The chosen version's replicas first, then, rather than fail,
        // those of the other versions that serve.
        let order = std::iter::once(&chosen).chain(
            backends
                .iter()
                .filter(|b| b.version != chosen.version && b.weight() > 0),
        );
        let mut connected = None;
        'versions: for backend in order {
            for replica in backend.in_turn() {
                match replica.connection(self.keep_idle).await {
                    Ok(sender) => {
                        connected = Some((backend.clone(), replica, sender));
                        break 'versions;
                    }
                    Err(e) => tracing::debug!(
                        "replica {} of '{}' (version {}): {e}",
                        replica.address,
                        self.component,
                        backend.version
                    ),
                }
            }
        }
        let Some((backend, replica, mut sender)) = connected else {
            chosen.counts.requests.fetch_add(1, Ordering::Relaxed);
            chosen.counts.failed.fetch_add(1, Ordering::Relaxed);
            return self.error(
                Some(&chosen.version),
                503,
                "no replica accepted a connection; its workers may be restarting, try again",
            );
        };
        let mut request = request;
        strip_hop_by_hop(request.headers_mut());
        let in_flight = InFlight::start(&backend.counts.in_flight);
        let answer = sender.send_request(request).await;
        replica.give_back(sender);
        backend.counts.requests.fetch_add(1, Ordering::Relaxed);
        let mut response = match answer {
            Ok(mut response) => {
                // A draining worker answers `Connection: close` on its own
                // connection; that must not close the client's.
                strip_hop_by_hop(response.headers_mut());
                // In flight until the body has been read through (or dropped).
                response.map(|body| {
                    body.map_frame(move |frame| {
                        let _ = &in_flight;
                        frame
                    })
                    .boxed_unsync()
                })
            }
            Err(e) => {
                tracing::warn!(
                    listener = %self.listener,
                    "replica {} failed during a request: {e}",
                    replica.address
                );
                self.error(
                    Some(&backend.version),
                    502,
                    &format!(
                        "the replica at {} failed during the request: {e}",
                        replica.address
                    ),
                )
            }
        };
        if response.status().is_server_error() {
            backend.counts.failed.fetch_add(1, Ordering::Relaxed);
        }
        stamp(
            response.headers_mut(),
            backend.version.as_str(),
            self.sticky.then_some(sticky.as_deref()),
        );
        response
    }

    /// The version a new request goes to: the sticky one while it serves,
    /// else one chosen by weight.
    fn choose(&self, backends: &[Arc<Backend>], sticky: Option<&str>) -> Option<Arc<Backend>> {
        if let Some(kept) = sticky.and_then(|v| {
            backends
                .iter()
                .find(|b| b.version.as_str() == v && b.weight() > 0)
        }) {
            return Some(kept.clone());
        }
        let weights: Vec<u8> = backends.iter().map(|b| b.weight()).collect();
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        pick(&weights, n).map(|i| backends[i].clone())
    }

    fn error(
        &self,
        version: Option<&Version>,
        status: u16,
        why: &str,
    ) -> hyper::Response<IngressBody> {
        let body = format!(
            "listener '{}' could not reach component '{}': {why}\n",
            self.listener, self.component
        );
        let mut response = crate::listener::text_response(status, body);
        if let Some(v) = version.and_then(|v| HeaderValue::from_str(v.as_str()).ok()) {
            response.headers_mut().insert(VERSION_HEADER, v);
        }
        response
    }
}

/// One request in flight to a version, until dropped.
struct InFlight(Arc<AtomicU64>);

impl InFlight {
    fn start(count: &Arc<AtomicU64>) -> InFlight {
        count.fetch_add(1, Ordering::SeqCst);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Which of `weights` (percent each) the `n`th request goes to. Over any
/// 100 consecutive requests each index gets exactly its weight (when the
/// weights add up to 100), spread out rather than in one run.
fn pick(weights: &[u8], n: u64) -> Option<usize> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    // 37 is coprime to 100, so this visits every slot of a round of 100.
    let mut slot = (n.wrapping_mul(37)) % total;
    for (i, w) in weights.iter().enumerate() {
        let w = u64::from(*w);
        if slot < w {
            return Some(i);
        }
        slot -= w;
    }
    None
}

/// Removes the headers that belong to one connection, not to the message
/// (RFC 9110, 7.6.1): the ingress holds two connections, and each side's
/// say about its own (such as `Connection: close`) stays there.
fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    use http::header::{CONNECTION, TE, TRAILER, UPGRADE};
    let named: Vec<String> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in [CONNECTION, TE, TRAILER, UPGRADE] {
        headers.remove(name);
    }
    for name in ["keep-alive", "proxy-connection"] {
        headers.remove(name);
    }
}

/// Names `version` in an answer's `weft-version` header; with sticky
/// sessions (`sticky` holds the version the request's cookie named, if
/// any), also in its cookie, unless the cookie named it already. The
/// ingress and a worker that accepts by itself answer alike.
pub fn stamp(headers: &mut http::HeaderMap, version: &str, sticky: Option<Option<&str>>) {
    if let Some(named) = sticky
        && named != Some(version)
        && let Ok(cookie) =
            HeaderValue::from_str(&format!("{VERSION_HEADER}={version}; Path=/; HttpOnly"))
    {
        headers.append(SET_COOKIE, cookie);
    }
    if let Ok(version) = HeaderValue::from_str(version) {
        headers.insert(VERSION_HEADER, version);
    }
}

/// The version named by the request's `weft-version` cookie.
pub fn cookie_version<B>(request: &hyper::Request<B>) -> Option<String> {
    request
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == VERSION_HEADER).then(|| value.to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_split_each_round_of_a_hundred_exactly() {
        for weights in [[10u8, 90], [25, 75], [50, 50], [100, 0], [1, 99]] {
            let mut got = [0u64; 2];
            for n in 0..100 {
                got[pick(&weights, n).unwrap()] += 1;
            }
            assert_eq!(got, [u64::from(weights[0]), u64::from(weights[1])]);
        }
        assert_eq!(pick(&[0, 0], 5), None);
        assert_eq!(pick(&[], 5), None);
    }

    #[test]
    fn connection_headers_stay_on_their_connection() {
        let mut headers = http::HeaderMap::new();
        headers.insert("connection", "close, x-private".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("x-private", "1".parse().unwrap());
        headers.insert("content-type", "text/plain".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        let names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type"]);
    }

    #[test]
    fn a_small_share_is_spread_out() {
        // 10 % of requests go to index 0, never two in a row.
        let picks: Vec<usize> = (0..100).map(|n| pick(&[10, 90], n).unwrap()).collect();
        assert!(picks.windows(2).all(|w| w != [0, 0]), "{picks:?}");
    }
}
