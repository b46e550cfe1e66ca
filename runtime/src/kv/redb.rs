//! The embedded key-value backend: one redb file, one table per bucket.
//!
//! redb lets one process open a file, and its write transactions are
//! serialised and durable, so `increment` is atomic across every instance of
//! every component in the process. Writes (which wait for the disk) and
//! scans run on tokio's blocking pool; a single `get` runs where it is
//! asked, since redb answers it from its cache in microseconds, less than
//! handing it to another thread and back costs. A get that misses the
//! cache reads a few pages of the file on the calling thread; for the small
//! values guests keep, that is still shorter than the handoff.
//!
//! After an I/O error (a full disk, say) redb refuses every later call on
//! the same handle, so the store lets that handle go and opens the file
//! again on the next call, once the calls still using the old handle are
//! done: a disk that has room again serves again without a restart. The
//! outage is logged once when it starts and once when it ends, and
//! [`KeyValueStore::health`] reports it meanwhile.

use super::{KeyPage, KeyValueStore, KvError, LIST_PAGE, add_to_counter, parse_counter};
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The `redb` backend, weft's embedded default.
pub const BACKEND: super::BackendKind = super::BackendKind {
    name: "redb",
    location: super::Location::Embedded,
};

/// A redb file holding every bucket.
#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The open handle; `None` after an I/O error, until it is reopened.
    db: Mutex<Option<Arc<Database>>>,
    /// Why the store fails, during an outage.
    outage: Mutex<Option<String>>,
    /// Set by [`RedbStore::close`]: the file is another process's now.
    closed: std::sync::atomic::AtomicBool,
}

impl RedbStore {
    /// Opens (or creates) the store at `path`, creating its folder.
    pub fn open(path: &Path) -> anyhow::Result<RedbStore> {
        use anyhow::Context as _;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
        }
        let db = Database::create(path).with_context(|| {
            format!(
                "cannot open the key-value store {}; is another weft process using this data \
                 directory? Pass another --data-dir or stop that process",
                path.display()
            )
        })?;
        Ok(RedbStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                db: Mutex::new(Some(Arc::new(db))),
                outage: Mutex::new(None),
                closed: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// Closes the file for good, so that another process may open it:
    /// calls under way finish first, and later ones fail.
    pub async fn close(&self) {
        let db = {
            let mut db = self.inner.db.lock().expect("redb handle lock");
            self.inner
                .closed
                .store(true, std::sync::atomic::Ordering::SeqCst);
            db.take()
        };
        if let Some(db) = db {
            // Each call under way holds a clone of the handle.
            while Arc::strong_count(&db) > 1 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
    }

    /// The file name used inside a data directory.
    pub fn file_in(data_dir: &Path) -> PathBuf {
        data_dir.join("keyvalue.redb")
    }

    /// The open handle, opening the file again after an I/O error. While
    /// calls that hold the old handle run, the file cannot be opened, and
    /// the call fails as part of the outage.
    fn handle(&self) -> Result<Arc<Database>, KvError> {
        let mut db = self.inner.db.lock().expect("redb handle lock");
        if let Some(db) = &*db {
            return Ok(db.clone());
        }
        if self.inner.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(KvError::Unavailable(format!(
                "the embedded key-value store {} was closed here: another process holds it now",
                self.inner.path.display()
            )));
        }
        match Database::create(&self.inner.path) {
            Ok(opened) => {
                let opened = Arc::new(opened);
                *db = Some(opened.clone());
                Ok(opened)
            }
            Err(e) => Err(self.failed(&redb::Error::from(e))),
        }
    }

    /// Notes the end of an outage, if there was one.
    fn served(&self) {
        if let Some(cause) = self.inner.outage.lock().expect("outage lock").take() {
            tracing::info!(
                "key-value: the embedded store {} works again (after: {cause})",
                self.inner.path.display()
            );
        }
    }

    /// The error of a call that failed with `e`; an I/O error starts an
    /// outage (logged once) and lets the handle go, so the next call opens
    /// the file again.
    fn failed(&self, e: &redb::Error) -> KvError {
        let io = matches!(
            e,
            redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseAlreadyOpen
        );
        if !io {
            return KvError::Other(format!("key-value store: {e}"));
        }
        *self.inner.db.lock().expect("redb handle lock") = None;
        let mut outage = self.inner.outage.lock().expect("outage lock");
        if outage.is_none() {
            tracing::warn!(
                "key-value: the embedded store {} cannot be written ({e}); key-value calls fail \
                 until it can",
                self.inner.path.display()
            );
            *outage = Some(e.to_string());
        }
        KvError::Unavailable(format!(
            "the embedded key-value store {} cannot be written: {e}",
            self.inner.path.display()
        ))
    }

    /// Runs `work` with the handle, here, and notes how it went.
    fn here<T>(&self, work: impl FnOnce(&Database) -> Result<T, Failure>) -> Result<T, KvError> {
        let db = self.handle()?;
        let result = work(&db);
        drop(db);
        self.outcome(result)
    }

    /// Runs `work` with the handle on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, KvError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let db = store.handle()?;
            let result = work(&db);
            drop(db);
            store.outcome(result)
        })
        .await
        .map_err(|e| KvError::Other(format!("key-value task failed: {e}")))?
    }

    fn outcome<T>(&self, result: Result<T, Failure>) -> Result<T, KvError> {
        match result {
            Ok(value) => {
                self.served();
                Ok(value)
            }
            Err(Failure::Store(e)) => Err(self.failed(&e)),
            Err(Failure::Kv(e)) => Err(e),
        }
    }
}

/// Why a call on the file failed: redb's error, which may start an outage,
/// or the call's own (a counter that is not a number).
enum Failure {
    Store(redb::Error),
    Kv(KvError),
}

impl From<KvError> for Failure {
    fn from(e: KvError) -> Failure {
        Failure::Kv(e)
    }
}

fn table(bucket: &str) -> TableDefinition<'_, &'static str, &'static [u8]> {
    TableDefinition::new(bucket)
}

fn other(e: impl Into<redb::Error>) -> Failure {
    Failure::Store(e.into())
}

/// Runs `read` on a bucket's table; a bucket never written to reads as empty.
fn read<T>(
    db: &Database,
    bucket: &str,
    empty: T,
    read: impl FnOnce(&redb::ReadOnlyTable<&'static str, &'static [u8]>) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let txn = db.begin_read().map_err(other)?;
    match txn.open_table(table(bucket)) {
        Ok(t) => read(&t),
        Err(TableError::TableDoesNotExist(_)) => Ok(empty),
        Err(e) => Err(other(e)),
    }
}

/// Runs `write` on a bucket's table in one committed transaction.
fn write<T>(
    db: &Database,
    bucket: &str,
    write: impl FnOnce(&mut redb::Table<&'static str, &'static [u8]>) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let txn = db.begin_write().map_err(other)?;
    let result = {
        let mut t = txn.open_table(table(bucket)).map_err(other)?;
        write(&mut t)?
    };
    txn.commit().map_err(other)?;
    Ok(result)
}

#[async_trait]
impl KeyValueStore for RedbStore {
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.here(|db| {
            read(db, bucket, None, |t| {
                Ok(t.get(key).map_err(other)?.map(|v| v.value().to_vec()))
            })
        })
    }

    fn health(&self) -> Option<String> {
        self.inner.outage.lock().expect("outage lock").clone()
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.blocking(move |db| {
            write(db, &bucket, |t| {
                t.insert(key.as_str(), value.as_slice()).map_err(other)?;
                Ok(())
            })
        })
        .await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.blocking(move |db| {
            write(db, &bucket, |t| {
                t.remove(key.as_str()).map_err(other)?;
                Ok(())
            })
        })
        .await
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        Ok(self.get(bucket, key).await?.is_some())
    }

    async fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        let bucket = bucket.to_string();
        let skip = cursor.unwrap_or(0);
        self.blocking(move |db| {
            let empty = KeyPage {
                keys: Vec::new(),
                cursor: None,
            };
            read(db, &bucket, empty, |t| {
                let mut keys = Vec::new();
                let mut more = false;
                for entry in t.iter().map_err(other)?.skip(skip as usize) {
                    if keys.len() == LIST_PAGE {
                        more = true;
                        break;
                    }
                    keys.push(entry.map_err(other)?.0.value().to_string());
                }
                let next = skip + keys.len() as u64;
                Ok(KeyPage {
                    keys,
                    cursor: more.then_some(next),
                })
            })
        })
        .await
    }

    async fn get_many(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let (bucket, keys) = (bucket.to_string(), keys.to_vec());
        let absent = vec![None; keys.len()];
        self.blocking(move |db| {
            read(db, &bucket, absent, |t| {
                keys.iter()
                    .map(|k| {
                        Ok(t.get(k.as_str())
                            .map_err(other)?
                            .map(|v| v.value().to_vec()))
                    })
                    .collect()
            })
        })
        .await
    }

    async fn set_many(&self, bucket: &str, pairs: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        let bucket = bucket.to_string();
        self.blocking(move |db| {
            write(db, &bucket, |t| {
                for (key, value) in &pairs {
                    t.insert(key.as_str(), value.as_slice()).map_err(other)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn delete_many(&self, bucket: &str, keys: &[String]) -> Result<(), KvError> {
        let (bucket, keys) = (bucket.to_string(), keys.to_vec());
        self.blocking(move |db| {
            write(db, &bucket, |t| {
                for key in &keys {
                    t.remove(key.as_str()).map_err(other)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, KvError> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.blocking(move |db| {
            write(db, &bucket, |t| {
                let current = {
                    let stored = t.get(key.as_str()).map_err(other)?;
                    parse_counter(&bucket, &key, stored.as_ref().map(|v| v.value()))?
                };
                let next = add_to_counter(&bucket, &key, current, delta)?;
                t.insert(key.as_str(), next.to_string().as_bytes())
                    .map_err(other)?;
                Ok(next)
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn values_counters_and_pages_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = RedbStore::file_in(dir.path());
        {
            let kv = RedbStore::open(&path).unwrap();
            assert_eq!(kv.get("b", "k").await.unwrap(), None);
            kv.set("b", "k", b"v".to_vec()).await.unwrap();
            assert_eq!(kv.increment("b", "n", 2).await.unwrap(), 2);
            assert_eq!(kv.increment("b", "n", 3).await.unwrap(), 5);
            for i in 0..(LIST_PAGE + 5) {
                kv.set("many", &format!("{i:05}"), vec![]).await.unwrap();
            }
        }
        let kv = RedbStore::open(&path).unwrap();
        assert_eq!(kv.get("b", "k").await.unwrap(), Some(b"v".to_vec()));
        assert_eq!(kv.get("b", "n").await.unwrap(), Some(b"5".to_vec()));
        kv.delete("b", "k").await.unwrap();
        assert!(!kv.exists("b", "k").await.unwrap());
        let first = kv.list_keys("many", None).await.unwrap();
        assert_eq!(first.keys.len(), LIST_PAGE);
        let second = kv.list_keys("many", first.cursor).await.unwrap();
        assert_eq!(second.keys.len(), 5);
        assert_eq!(second.cursor, None);
        assert!(kv.increment("b", "n", u64::MAX).await.is_err());
    }
}
