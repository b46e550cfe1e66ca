//! Discovery: the live set of healthy replicas of one group of one version.
//!
//! A caller never holds a fixed list of its callee's replicas; it holds
//! [`Peers`], which it reads on every call. Where the set comes from is the
//! business of this module alone:
//!
//! - [`Peers::fixed`]: a list pushed by the manager of `weft deploy`, which
//!   checks its workers' health itself and restarts a dead worker on the
//!   same address, so the list never changes.
//! - [`Source::Static`]: a list given by the user (`weft worker --peers`),
//!   for workers on plain machines. Each address is probed; only healthy
//!   ones are used.
//! - [`Source::Dns`]: a name that resolves to one address per replica, such
//!   as a Kubernetes headless Service of the group's version. It is
//!   resolved again every few seconds, and each address is probed.
//!
//! [`watch`] runs a source in a task: resolve, probe, publish, sleep. How a
//! probe is made (a gRPC health check) is injected as a [`Probe`], so this
//! module knows nothing about calls. [`healthy_set`] is the pure step in
//! between.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often a watched source is resolved and probed again.
pub const REFRESH: Duration = Duration::from_secs(2);

/// How long resolving a name may take; a resolver that hangs must not
/// stop the probes of the peers already known.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one health probe may take before the peer counts as unhealthy.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The current healthy replicas of one group: `HOST:PORT` addresses, sorted.
#[derive(Debug, Clone)]
pub struct Peers {
    current: watch::Receiver<Arc<[String]>>,
}

impl Peers {
    /// A set that never changes.
    pub fn fixed(addresses: Vec<String>) -> Peers {
        let (_, current) = watch::channel(Arc::from(addresses));
        Peers { current }
    }

    /// The replicas to route to now.
    pub fn current(&self) -> Arc<[String]> {
        self.current.borrow().clone()
    }

    /// Waits until the set changes; false once it never will again.
    pub async fn changed(&mut self) -> bool {
        self.current.changed().await.is_ok()
    }
}

/// Where the candidate replicas of a group come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// These addresses, always.
    Static(Vec<String>),
    /// Every address `host` resolves to, each with `port`.
    Dns {
        /// The name, such as a headless Service's.
        host: String,
        /// The replicas' gRPC port.
        port: u16,
    },
}

impl Source {
    /// The candidates now. A name that does not resolve has none: a
    /// headless Service without ready pods answers NXDOMAIN.
    async fn resolve(&self) -> Result<BTreeSet<String>, String> {
        match self {
            Source::Static(list) => Ok(list.iter().cloned().collect()),
            Source::Dns { host, port } => {
                match tokio::net::lookup_host((host.as_str(), *port)).await {
                    Ok(addresses) => Ok(addresses.map(|a| a.to_string()).collect()),
                    Err(e) => Err(format!("cannot resolve {host}: {e}")),
                }
            }
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Static(list) => write!(f, "{}", list.join(",")),
            Source::Dns { host, port } => write!(f, "{host}:{port} (DNS)"),
        }
    }
}

/// A health check of one replica: true when it serves.
pub trait Probe: Send + Sync + 'static {
    /// Whether the replica at `address` answers that it serves.
    fn healthy(&self, address: &str) -> Pin<Box<dyn Future<Output = bool> + Send + '_>>;
}

/// The addresses to route to: the candidates whose probe passed, sorted.
pub fn healthy_set(candidates: &BTreeSet<String>, healthy: &BTreeSet<String>) -> Vec<String> {
    candidates.intersection(healthy).cloned().collect()
}

/// A watched source; the watch stops when this is dropped.
pub struct Watch {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches `source` for the group named `label`: resolves and probes it at
/// once and then every `every`, and publishes the healthy set. Changes and
/// resolution failures are logged once each, not on every round.
pub fn watch(
    label: &str,
    source: Source,
    probe: Arc<dyn Probe>,
    every: Duration,
) -> (Peers, Watch) {
    let (publish, current) = watch::channel(Arc::from(Vec::new()));
    let label = label.to_string();
    let task = tokio::spawn(async move {
        let mut last_error = None;
        loop {
            let candidates = match source.resolve().await {
                Ok(c) => {
                    last_error = None;
                    c
                }
                Err(e) => {
                    if last_error.as_ref() != Some(&e) {
                        tracing::warn!("peers of group '{label}': {e}");
                        last_error = Some(e);
                    }
                    BTreeSet::new()
                }
            };
            let checks = candidates.iter().cloned().map(|address| {
                let probe = probe.clone();
                async move {
                    let ok = tokio::time::timeout(PROBE_TIMEOUT, probe.healthy(&address))
                        .await
                        .unwrap_or(false);
                    ok.then_some(address)
                }
            });
            let healthy: BTreeSet<String> =
                all_at_once(checks).await.into_iter().flatten().collect();
            let next = healthy_set(&candidates, &healthy);
            tracing::debug!(
                "peers of group '{label}': candidates {candidates:?}, healthy {healthy:?}"
            );
            if **publish.borrow() != *next {
                say!(
                    "weft: peers of group '{label}' from {source}: {}",
                    if next.is_empty() {
                        "none healthy".to_string()
                    } else {
                        next.join(", ")
                    }
                );
                publish.send_replace(Arc::from(next));
            }
            tokio::time::sleep(every).await;
        }
    });
    (Peers { current }, Watch { task })
}

/// Runs every future at once and collects their outputs in order.
async fn all_at_once<F: Future + Send + 'static>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for (i, f) in futures.enumerate() {
        set.spawn(async move { (i, f.await) });
    }
    let mut out = Vec::new();
    while let Some(Ok(done)) = set.join_next().await {
        out.push(done);
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, o)| o).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_healthy_candidates_are_routed_to() {
        let candidates = set(&["10.0.0.2:7070", "10.0.0.1:7070", "10.0.0.3:7070"]);
        let healthy = set(&["10.0.0.3:7070", "10.0.0.1:7070", "10.0.0.9:7070"]);
        assert_eq!(
            healthy_set(&candidates, &healthy),
            vec!["10.0.0.1:7070", "10.0.0.3:7070"]
        );
        assert!(healthy_set(&candidates, &BTreeSet::new()).is_empty());
    }

    /// A probe whose answers the test sets.
    struct Answers(Mutex<BTreeSet<String>>);

    impl Probe for Answers {
        fn healthy(&self, address: &str) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
            let ok = self.0.lock().unwrap().contains(address);
            Box::pin(async move { ok })
        }
    }

    #[tokio::test]
    async fn a_watched_set_follows_health() {
        let answers = Arc::new(Answers(Mutex::new(set(&["a:1", "b:1"]))));
        let source = Source::Static(vec!["a:1".into(), "b:1".into()]);
        let (peers, _watch) = watch("g", source, answers.clone(), Duration::from_millis(10));
        let wait_for = |want: Vec<&'static str>| {
            let peers = peers.clone();
            async move {
                for _ in 0..200 {
                    if *peers.current() == *want.iter().map(|s| s.to_string()).collect::<Vec<_>>() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                panic!("peers stayed {:?}, wanted {want:?}", peers.current());
            }
        };
        wait_for(vec!["a:1", "b:1"]).await;
        answers.0.lock().unwrap().remove("a:1");
        wait_for(vec!["b:1"]).await;
        answers.0.lock().unwrap().insert("a:1".into());
        wait_for(vec!["a:1", "b:1"]).await;
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_has_no_peers() {
        let source = Source::Dns {
            host: "no-such-group.invalid".into(),
            port: 7070,
        };
        assert!(source.resolve().await.is_err());
        let fixed = Peers::fixed(vec!["x:1".into()]);
        assert_eq!(*fixed.current(), ["x:1".to_string()]);
    }
}
