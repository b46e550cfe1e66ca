//! A worker's embedded store, which can move: the redb file opened in this
//! process, or the manager's store reached over gRPC.
//!
//! redb lets one process open a file. When one worker is the only process
//! of a deployment that uses the embedded buckets, it opens the file
//! itself, so a key-value call costs no hop to the manager; during a
//! rollout, when two versions share the data, the file moves to the manager
//! and every worker reaches it there. [`StoreSlot`] is the store the
//! worker's components see through both: a move waits for the calls under
//! way, and calls that come during one wait for it to end, so none is lost
//! or sees the file twice.

use super::redb::RedbStore;
use super::{KeyPage, KeyValueStore, KvError};
use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::RwLock;

/// Where a worker's embedded store is now.
enum Here {
    /// The file, opened in this process.
    Local(RedbStore),
    /// The manager's store.
    Remote(Arc<dyn KeyValueStore>),
}

impl Here {
    fn store(&self) -> &dyn KeyValueStore {
        match self {
            Here::Local(store) => store,
            Here::Remote(store) => store.as_ref(),
        }
    }
}

/// A worker's embedded store, local or the manager's, that can move
/// between the two while the worker serves.
pub struct StoreSlot {
    here: RwLock<Here>,
    /// The manager's store, where a released file's calls go.
    remote: Arc<dyn KeyValueStore>,
}

impl StoreSlot {
    /// The manager's store `remote`.
    pub fn remote(remote: Arc<dyn KeyValueStore>) -> StoreSlot {
        StoreSlot {
            here: RwLock::new(Here::Remote(remote.clone())),
            remote,
        }
    }

    /// The file at `file`, opened here; the manager's store is `remote`.
    pub fn local(file: &Path, remote: Arc<dyn KeyValueStore>) -> anyhow::Result<StoreSlot> {
        Ok(StoreSlot {
            here: RwLock::new(Here::Local(RedbStore::open(file)?)),
            remote,
        })
    }

    /// Whether the file is open in this process.
    pub async fn is_local(&self) -> bool {
        matches!(*self.here.read().await, Here::Local(_))
    }

    /// Opens `file` here, once the calls under way at the manager have
    /// finished and `handover` (which asks the manager to close the file)
    /// has succeeded. Calls meanwhile wait.
    pub async fn take(
        &self,
        file: &Path,
        handover: impl Future<Output = anyhow::Result<()>>,
    ) -> anyhow::Result<()> {
        let mut here = self.here.write().await;
        if matches!(*here, Here::Local(_)) {
            return Ok(());
        }
        handover.await?;
        *here = Here::Local(RedbStore::open(file)?);
        Ok(())
    }

    /// Closes the file here, once the calls under way have finished, and
    /// sends later calls to the manager. Calls meanwhile wait.
    pub async fn release(&self) {
        let mut here = self.here.write().await;
        if let Here::Local(store) = &*here {
            store.close().await;
            *here = Here::Remote(self.remote.clone());
        }
    }
}

#[async_trait]
impl KeyValueStore for StoreSlot {
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.here.read().await.store().get(bucket, key).await
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        self.here.read().await.store().set(bucket, key, value).await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        self.here.read().await.store().delete(bucket, key).await
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        self.here.read().await.store().exists(bucket, key).await
    }

    async fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        self.here
            .read()
            .await
            .store()
            .list_keys(bucket, cursor)
            .await
    }

    async fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, KvError> {
        self.here
            .read()
            .await
            .store()
            .increment(bucket, key, delta)
            .await
    }

    fn health(&self) -> Option<String> {
        match self.here.try_read() {
            Ok(here) => here.store().health(),
            // A move is under way; it ends in moments.
            Err(_) => None,
        }
    }

    async fn get_many(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.here.read().await.store().get_many(bucket, keys).await
    }

    async fn set_many(&self, bucket: &str, pairs: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        self.here.read().await.store().set_many(bucket, pairs).await
    }

    async fn delete_many(&self, bucket: &str, keys: &[String]) -> Result<(), KvError> {
        self.here
            .read()
            .await
            .store()
            .delete_many(bucket, keys)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_file_moves_out_and_back_and_keeps_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keyvalue.redb");
        // The "manager": a store of its own on the same file, opened only
        // while the slot has let it go.
        let manager: Arc<tokio::sync::Mutex<Option<RedbStore>>> = Arc::default();
        struct Manager(Arc<tokio::sync::Mutex<Option<RedbStore>>>);
        #[async_trait]
        impl KeyValueStore for Manager {
            async fn get(&self, b: &str, k: &str) -> Result<Option<Vec<u8>>, KvError> {
                let store = self.0.lock().await;
                let store = store
                    .as_ref()
                    .ok_or(KvError::Unavailable("closed".into()))?;
                store.get(b, k).await
            }
            async fn set(&self, _: &str, _: &str, _: Vec<u8>) -> Result<(), KvError> {
                unreachable!()
            }
            async fn delete(&self, _: &str, _: &str) -> Result<(), KvError> {
                unreachable!()
            }
            async fn exists(&self, _: &str, _: &str) -> Result<bool, KvError> {
                unreachable!()
            }
            async fn list_keys(&self, _: &str, _: Option<u64>) -> Result<KeyPage, KvError> {
                unreachable!()
            }
            async fn increment(&self, b: &str, k: &str, d: u64) -> Result<u64, KvError> {
                let store = self.0.lock().await;
                let store = store
                    .as_ref()
                    .ok_or(KvError::Unavailable("closed".into()))?;
                store.increment(b, k, d).await
            }
        }
        let slot = StoreSlot::local(&file, Arc::new(Manager(manager.clone()))).unwrap();
        assert!(slot.is_local().await);
        assert_eq!(slot.increment("c", "hits", 1).await, Ok(1));

        // Out: the file closes here, and the manager can open it.
        slot.release().await;
        assert!(!slot.is_local().await);
        *manager.lock().await = Some(RedbStore::open(&file).expect("the file is free"));
        assert_eq!(slot.increment("c", "hits", 1).await, Ok(2));

        // Back: the manager closes it as the slot takes it.
        let handover = async {
            let store = manager.lock().await.take().unwrap();
            store.close().await;
            anyhow::Ok(())
        };
        slot.take(&file, handover).await.unwrap();
        assert!(slot.is_local().await);
        assert_eq!(slot.increment("c", "hits", 1).await, Ok(3));
        assert_eq!(slot.get("c", "hits").await, Ok(Some(b"3".to_vec())));
    }
}
