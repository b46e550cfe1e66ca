//! The store a component sees: each bucket goes to the backend that the
//! manifest's `[keyvalue.BUCKET]` names, and every other bucket to the
//! embedded store.
//!
//! Servers are shared: buckets on the same Redis url use one connection
//! manager. Keys and values past [`MAX_KEY`](super::MAX_KEY) and
//! [`MAX_VALUE`](super::MAX_VALUE) are refused here, whichever backend
//! would have taken them.

use super::{KeyPage, KeyValueStore, KvError, Location, check_sizes};
use crate::manifest::Manifest;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Buckets routed to their backends.
pub struct Buckets {
    /// The buckets on servers, by name.
    servers: BTreeMap<String, Arc<dyn KeyValueStore>>,
    /// Where every other bucket lives: the embedded store, or the manager's
    /// under `weft deploy`; `None` when no bucket uses it.
    embedded: Option<Arc<dyn KeyValueStore>>,
}

impl Buckets {
    /// The buckets of `manifest`: those on a server get a client each (one
    /// per url), the rest go to `embedded`. Nothing connects yet.
    pub fn new(
        manifest: &Manifest,
        embedded: Option<Arc<dyn KeyValueStore>>,
    ) -> anyhow::Result<Buckets> {
        let mut clients: BTreeMap<String, Arc<dyn KeyValueStore>> = BTreeMap::new();
        let mut servers = BTreeMap::new();
        for (bucket, spec) in &manifest.keyvalue {
            let Location::Server { open, .. } = manifest.bucket_backend(bucket).location else {
                continue;
            };
            let Some(url) = spec.server_url(bucket)? else {
                continue;
            };
            let store = match clients.get(&url) {
                Some(store) => store.clone(),
                None => {
                    let store =
                        open(&url).map_err(|e| anyhow::anyhow!("keyvalue.{bucket}: {e:#}"))?;
                    clients.insert(url, store.clone());
                    store
                }
            };
            servers.insert(bucket.clone(), store);
        }
        Ok(Buckets { servers, embedded })
    }

    fn store(&self, bucket: &str) -> Result<&dyn KeyValueStore, KvError> {
        match (self.servers.get(bucket), &self.embedded) {
            (Some(server), _) => Ok(server.as_ref()),
            (None, Some(embedded)) => Ok(embedded.as_ref()),
            (None, None) => Err(KvError::Other(format!(
                "bucket '{bucket}' has no store in this process; this is a bug in weft"
            ))),
        }
    }
}

#[async_trait]
impl KeyValueStore for Buckets {
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_sizes(bucket, key, None)?;
        self.store(bucket)?.get(bucket, key).await
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        check_sizes(bucket, key, Some(&value))?;
        self.store(bucket)?.set(bucket, key, value).await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        check_sizes(bucket, key, None)?;
        self.store(bucket)?.delete(bucket, key).await
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        check_sizes(bucket, key, None)?;
        self.store(bucket)?.exists(bucket, key).await
    }

    async fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        self.store(bucket)?.list_keys(bucket, cursor).await
    }

    async fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, KvError> {
        check_sizes(bucket, key, None)?;
        self.store(bucket)?.increment(bucket, key, delta).await
    }

    async fn get_many(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        for key in keys {
            check_sizes(bucket, key, None)?;
        }
        self.store(bucket)?.get_many(bucket, keys).await
    }

    async fn set_many(&self, bucket: &str, pairs: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        for (key, value) in &pairs {
            check_sizes(bucket, key, Some(value))?;
        }
        self.store(bucket)?.set_many(bucket, pairs).await
    }

    async fn delete_many(&self, bucket: &str, keys: &[String]) -> Result<(), KvError> {
        for key in keys {
            check_sizes(bucket, key, None)?;
        }
        self.store(bucket)?.delete_many(bucket, keys).await
    }

    fn health(&self) -> Option<String> {
        self.embedded.as_ref().and_then(|e| e.health())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{MAX_KEY, MAX_VALUE};

    #[tokio::test]
    async fn a_component_gets_a_clear_error_past_the_limits() {
        let dir = tempfile::tempdir().unwrap();
        let redb = crate::kv::redb::RedbStore::open(&dir.path().join("kv.redb")).unwrap();
        let manifest = Manifest::from_str(
            "[app]\nname = \"t\"\n[components.c]\nwasm = \"c.wasm\"\n",
            std::path::Path::new("weft.toml"),
        )
        .unwrap();
        let buckets = Buckets::new(&manifest, Some(Arc::new(redb))).unwrap();
        let long = "k".repeat(MAX_KEY + 1);
        for e in [
            buckets.get("b", &long).await.unwrap_err(),
            buckets.increment("b", &long, 1).await.unwrap_err(),
            buckets
                .set("b", "k", vec![0; MAX_VALUE + 1])
                .await
                .unwrap_err(),
        ] {
            assert!(matches!(e, KvError::Invalid(_)), "{e}");
        }
        buckets.set("b", "k", b"v".to_vec()).await.unwrap();
        assert_eq!(buckets.get("b", "k").await.unwrap(), Some(b"v".to_vec()));
    }
}
