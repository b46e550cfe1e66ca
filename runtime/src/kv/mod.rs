//! Key-value backends behind `wasi:keyvalue`.
//!
//! The host bindings (`host::keyvalue`) speak WIT; a backend speaks buckets,
//! keys and bytes through the small [`KeyValueStore`] trait. A new backend is
//! one new module that implements it, and passes the shared
//! [`conformance`] suite.
//!
//! - [`redb`](self::redb): the embedded default, one file under the data
//!   directory, served by one process.
//! - [`redis`](self::redis): a Redis server, which every process of a
//!   deployment talks to directly.
//! - [`buckets`]: the store a component sees, which sends each bucket to
//!   the backend that the manifest's `[keyvalue.BUCKET]` names.
//!
//! Counters written by `increment` are stored as decimal ASCII, the way Redis
//! stores them, so a value reads the same whichever backend holds it.
//!
//! Backends are registered by kind in [`BACKENDS`]: a [`BackendKind`] names
//! the backend as `[keyvalue.BUCKET] backend` spells it and says where its
//! buckets live ([`Location`]). The manifest's checks, the choice of a
//! store per bucket, and every "may this run here" check (a worker, a
//! Kubernetes pod) read that table, so a new backend is its module plus one
//! line there.

pub mod buckets;
pub mod conformance;
pub mod redb;
pub mod redis;
pub mod slot;

use async_trait::async_trait;
use std::sync::Arc;

/// A kind of key-value backend.
pub struct BackendKind {
    /// Its name in `[keyvalue.BUCKET] backend`.
    pub name: &'static str,
    /// Where its buckets live.
    pub location: Location,
}

/// Where a backend keeps its buckets, which decides where a component that
/// uses them may run.
pub enum Location {
    /// In a file under the data directory of the one process that serves
    /// the app's state (`weft run`, or the manager of `weft deploy`); other
    /// processes reach it through that one.
    Embedded,
    /// On a server that every process reaches itself, at a url.
    Server {
        /// The url schemes it takes, such as `redis://`.
        schemes: &'static [&'static str],
        /// An example url, for errors.
        example: &'static str,
        /// Connects (lazily) to the server at a url.
        open: fn(&str) -> anyhow::Result<Arc<dyn KeyValueStore>>,
    },
}

impl BackendKind {
    /// Whether its buckets live in one process's data directory.
    pub fn is_embedded(&self) -> bool {
        matches!(self.location, Location::Embedded)
    }
}

/// Every key-value backend weft has; the first is the default.
pub const BACKENDS: &[&BackendKind] = &[&redb::BACKEND, &redis::BACKEND];

/// The backend of buckets that `[keyvalue]` does not name.
pub fn default_backend() -> &'static BackendKind {
    BACKENDS[0]
}

/// The backend called `name`, if weft has one.
pub fn backend(name: &str) -> Option<&'static BackendKind> {
    BACKENDS.iter().copied().find(|b| b.name == name)
}

/// The names of every backend, for errors: "redb, redis".
pub fn backend_names() -> String {
    BACKENDS
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many keys `list_keys` returns at most per page.
pub const LIST_PAGE: usize = 1000;
/// The longest key, in bytes, that a component may use.
pub const MAX_KEY: usize = 4 << 10;
/// The largest value, in bytes, that a component may store.
pub const MAX_VALUE: usize = 64 << 20;

/// Refuses a key longer than [`MAX_KEY`] or a value larger than
/// [`MAX_VALUE`], before any backend sees them.
pub fn check_sizes(bucket: &str, key: &str, value: Option<&[u8]>) -> Result<(), KvError> {
    if key.len() > MAX_KEY {
        return Err(KvError::Invalid(format!(
            "bucket '{bucket}': a key of {} bytes is longer than the limit of {MAX_KEY} bytes",
            key.len()
        )));
    }
    match value {
        Some(value) if value.len() > MAX_VALUE => Err(KvError::Invalid(format!(
            "bucket '{bucket}': a value of {} bytes is larger than the limit of {MAX_VALUE} bytes",
            value.len()
        ))),
        _ => Ok(()),
    }
}

/// Why a key-value operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The component may not open this bucket.
    #[error("access to bucket '{0}' is not granted")]
    AccessDenied(String),
    /// The store cannot serve now (its disk failed, its server is down);
    /// later calls may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// The call itself is wrong: a key or value past its limit.
    #[error("{0}")]
    Invalid(String),
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

/// One page of keys and the cursor of the next page, if there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys in this page, in order.
    pub keys: Vec<String>,
    /// Where the next page starts.
    pub cursor: Option<u64>,
}

/// A place that keeps buckets of keys and byte values.
#[async_trait]
pub trait KeyValueStore: Send + Sync {
    /// The value of `key`, if any.
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Sets `key` to `value`.
    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError>;
    /// Removes `key`; removing a missing key is not an error.
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError>;
    /// Whether `key` has a value.
    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError>;
    /// Keys in order, a page at a time, starting at `cursor`.
    async fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage, KvError>;
    /// Atomically adds `delta` to the counter at `key` (0 when absent) and
    /// returns the new value.
    async fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, KvError>;

    /// Why the store cannot serve now, during an outage; `None` while it
    /// serves.
    fn health(&self) -> Option<String> {
        None
    }

    /// The values of `keys`, in order. Backends that can read them all at
    /// one point in time do; this default reads them one by one.
    async fn get_many(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(bucket, key).await?);
        }
        Ok(values)
    }

    /// Sets every pair. Backends that can write them all at once, so that
    /// no reader sees half of them, do; this default writes them one by one.
    async fn set_many(&self, bucket: &str, pairs: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        for (key, value) in pairs {
            self.set(bucket, &key, value).await?;
        }
        Ok(())
    }

    /// Removes every key, at once where the backend can.
    async fn delete_many(&self, bucket: &str, keys: &[String]) -> Result<(), KvError> {
        for key in keys {
            self.delete(bucket, key).await?;
        }
        Ok(())
    }
}

/// Reads a counter's stored bytes; absent means 0.
pub fn parse_counter(bucket: &str, key: &str, bytes: Option<&[u8]>) -> Result<u64, KvError> {
    let Some(bytes) = bytes else { return Ok(0) };
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            KvError::Other(format!(
                "bucket '{bucket}', key '{key}' holds a value that is not a decimal counter"
            ))
        })
}

/// Adds `delta` to `current`, refusing to wrap.
pub fn add_to_counter(bucket: &str, key: &str, current: u64, delta: u64) -> Result<u64, KvError> {
    current.checked_add(delta).ok_or_else(|| {
        KvError::Other(format!(
            "bucket '{bucket}', key '{key}': counter would overflow u64"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_decimal_text() {
        assert_eq!(parse_counter("b", "k", None), Ok(0));
        assert_eq!(parse_counter("b", "k", Some(b"41")), Ok(41));
        assert!(parse_counter("b", "k", Some(b"\x01\x02")).is_err());
        assert_eq!(add_to_counter("b", "k", 41, 1), Ok(42));
        assert!(add_to_counter("b", "k", u64::MAX, 1).is_err());
    }

    #[test]
    fn keys_and_values_past_their_limits_are_refused() {
        let long = "k".repeat(MAX_KEY + 1);
        let err = check_sizes("b", &long, None).unwrap_err().to_string();
        assert!(err.contains("longer than the limit of 4096 bytes"), "{err}");
        assert!(check_sizes("b", &"k".repeat(MAX_KEY), None).is_ok());
        let big = vec![0u8; MAX_VALUE + 1];
        let err = check_sizes("b", "k", Some(&big)).unwrap_err().to_string();
        assert!(err.contains("larger than the limit"), "{err}");
    }
}
