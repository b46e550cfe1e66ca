//! Where a deployment's embedded key-value store is open: in the manager,
//! which serves it to every worker, or in the one worker that uses it.
//!
//! redb lets one process open a file. When a version's embedded buckets
//! are all used by one group of one replica ([`owner_of`]), that worker
//! opens the file itself and a key-value call costs no hop to the manager.
//! Otherwise, and during a rollout (when two versions share the data), the
//! manager holds it. [`StoreHome`] is the manager's side of that: while the
//! file moves back to the manager, calls that reach it wait until it is
//! open, and when a worker takes it, the manager closes it only once its
//! calls under way have finished (the worker's side is
//! [`crate::kv::slot::StoreSlot`]).

use crate::kv::KeyValueStore;
use crate::kv::redb::RedbStore;
use crate::manifest::Manifest;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use weft_placer::Plan;

/// How long a call waits for the file to arrive at the manager.
const ARRIVAL: Duration = Duration::from_secs(10);

/// Where the file is open.
#[derive(Clone)]
enum Open {
    /// Nowhere yet: no running version uses the embedded store.
    Nowhere,
    /// In the manager.
    Here(RedbStore),
    /// Moving to the manager: calls wait.
    Arriving,
    /// In the worker so named (`GROUP/REPLICA`).
    Worker(String),
}

/// The manager's side of the embedded store.
pub struct StoreHome {
    file: PathBuf,
    open: watch::Sender<Open>,
    /// Calls the manager served from it.
    calls: AtomicU64,
    /// The owner group told to take the file, as (version, group), while
    /// it takes it: only it may ask the manager to close the file.
    taker: std::sync::Mutex<Option<(String, String)>>,
}

impl StoreHome {
    /// The store in `file`, open nowhere yet.
    pub fn new(file: PathBuf) -> StoreHome {
        StoreHome {
            file,
            open: watch::channel(Open::Nowhere).0,
            calls: AtomicU64::new(0),
            taker: std::sync::Mutex::new(None),
        }
    }

    /// The file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The store, for one call a worker sent the manager: at once while
    /// the manager holds it, after its arrival while it moves here.
    pub async fn for_call(&self) -> Result<RedbStore, String> {
        let mut open = self.open.subscribe();
        let arrived =
            tokio::time::timeout(ARRIVAL, open.wait_for(|o| !matches!(o, Open::Arriving))).await;
        let state = match arrived {
            Ok(Ok(state)) => (*state).clone(),
            _ => {
                return Err(format!(
                    "the key-value store did not reach the manager within {ARRIVAL:?}"
                ));
            }
        };
        match state {
            Open::Here(store) => {
                self.calls.fetch_add(1, Ordering::Relaxed);
                Ok(store)
            }
            Open::Worker(worker) => Err(format!(
                "the key-value store is open in worker {worker}, the only process that uses it"
            )),
            Open::Nowhere | Open::Arriving => {
                Err("no running version of this deployment uses key-value".to_string())
            }
        }
    }

    /// Opens the file in the manager, unless it is open here already. A
    /// worker that just let it go may still hold its lock for a moment.
    pub async fn open_here(&self) -> anyhow::Result<()> {
        if matches!(*self.open.borrow(), Open::Here(_)) {
            return Ok(());
        }
        let mut tries = 0;
        let store = loop {
            match RedbStore::open(&self.file) {
                Ok(store) => break store,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    self.open.send_replace(Open::Nowhere);
                    return Err(e);
                }
            }
        };
        self.open.send_replace(Open::Here(store));
        Ok(())
    }

    /// Group `group` of `version` is told to take the file (`Some`), or
    /// no longer is (`None`).
    pub fn expect_taker(&self, taker: Option<(&str, &str)>) {
        *self.taker.lock().expect("taker lock") =
            taker.map(|(version, group)| (version.to_string(), group.to_string()));
    }

    /// Closes the file here for group `group` of `version`, if it is the
    /// one told to take it, once the calls under way have finished.
    pub async fn hand_over(&self, version: &str, group: &str) -> Result<(), String> {
        let expected = self.taker.lock().expect("taker lock").clone();
        if expected.as_ref().map(|(v, g)| (v.as_str(), g.as_str())) != Some((version, group)) {
            return Err(format!(
                "group '{group}' of version {version} was not told to take the key-value store"
            ));
        }
        self.send_to(&owner_worker(group)).await;
        Ok(())
    }

    /// The file is about to move here from a worker: calls wait for it.
    pub fn expect_back(&self) {
        self.open.send_replace(Open::Arriving);
    }

    /// The file is, or will be, open in `worker`: the manager closes it,
    /// once its calls under way have finished.
    pub async fn send_to(&self, worker: &str) {
        if let Open::Here(store) = self.open.send_replace(Open::Worker(worker.to_string())) {
            store.close().await;
        }
    }

    /// The worker that holds the file, if one does.
    pub fn worker(&self) -> Option<String> {
        match &*self.open.borrow() {
            Open::Worker(worker) => Some(worker.clone()),
            _ => None,
        }
    }

    /// Whether the manager holds the file.
    pub fn is_here(&self) -> bool {
        matches!(*self.open.borrow(), Open::Here(_))
    }

    /// Whether the store is open anywhere (or on its way).
    pub fn in_use(&self) -> bool {
        !matches!(*self.open.borrow(), Open::Nowhere)
    }

    /// Calls the manager served from the file.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Why the manager's file fails, during an outage.
    pub fn health(&self) -> Option<String> {
        match &*self.open.borrow() {
            Open::Here(store) => store.health(),
            _ => None,
        }
    }
}

/// The worker that holds the file for owner group `group` (see
/// [`owner_of`]): its one replica, `GROUP/0`.
pub fn owner_worker(group: &str) -> String {
    format!("{group}/0")
}

/// The group that may open the embedded store itself under `plan`: the
/// one group whose components use every embedded bucket, when it runs as
/// one replica. `None` when no component uses one, or several groups (or
/// replicas) share them.
pub fn owner_of(manifest: &Manifest, plan: &Plan) -> Option<String> {
    let mut users = plan.groups.iter().filter(|(_, group)| {
        group.components.iter().any(|c| {
            manifest.components.get(c).is_some_and(|spec| {
                spec.grants
                    .keyvalue
                    .iter()
                    .any(|b| manifest.bucket_backend(b).is_embedded())
            })
        })
    });
    let (name, group) = users.next()?;
    (users.next().is_none() && group.replicas.count() == 1).then(|| name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra: &str) -> Manifest {
        let text = format!(
            "[app]\nname = \"shop\"\n\
             [components.front]\nwasm = \"f.wasm\"\n\
             [components.cart]\nwasm = \"c.wasm\"\n\
             [components.cart.grants]\nkeyvalue = [\"carts\"]\n\
             [components.stats]\nwasm = \"s.wasm\"\n{extra}"
        );
        Manifest::from_str(&text, Path::new("weft.toml")).expect("a manifest")
    }

    fn plan(text: &str) -> Plan {
        Plan::from_str(text, "plan", ["front", "cart", "stats"].iter()).expect("a plan")
    }

    #[test]
    fn the_one_group_of_one_replica_that_uses_the_embedded_buckets_owns_the_file() {
        let m = manifest("");
        let one = plan("[groups.main]\ncomponents = [\"front\", \"cart\", \"stats\"]\n");
        assert_eq!(owner_of(&m, &one), Some("main".to_string()));
        let split = plan(
            "[groups.front]\ncomponents = [\"front\"]\n\
             [groups.cart]\ncomponents = [\"cart\"]\n\
             [groups.stats]\ncomponents = [\"stats\"]\n",
        );
        assert_eq!(owner_of(&m, &split), Some("cart".to_string()));
        let replicated = plan(
            "[groups.front]\ncomponents = [\"front\", \"stats\"]\n\
             [groups.cart]\ncomponents = [\"cart\"]\nreplicas = 2\n",
        );
        assert_eq!(owner_of(&m, &replicated), None);
    }

    #[test]
    fn buckets_used_from_two_groups_or_on_a_server_stay_with_the_manager() {
        let shared = manifest("[components.stats.grants]\nkeyvalue = [\"carts\"]\n");
        let split = plan(
            "[groups.front]\ncomponents = [\"front\"]\n\
             [groups.cart]\ncomponents = [\"cart\"]\n\
             [groups.stats]\ncomponents = [\"stats\"]\n",
        );
        assert_eq!(owner_of(&shared, &split), None);
        let on_redis =
            manifest("[keyvalue.carts]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:1/\"\n");
        assert_eq!(owner_of(&on_redis, &split), None);
    }
}
