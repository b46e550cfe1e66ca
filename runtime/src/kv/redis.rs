//! Key-value on a Redis server: bucket `B` is the Redis hash `B`, and each
//! key a field of it.
//!
//! Every process talks to Redis itself, through one connection manager per
//! server, which reconnects after the server comes back. Each operation is
//! one Redis command, so it is atomic: `increment` is `HINCRBY`, `set-many`
//! one `HSET` with every pair, `get-many` one `HMGET`, `delete-many` one
//! `HDEL`. Counters are decimal text, as `HINCRBY` keeps them.
//!
//! Nothing waits on a server that is gone: connecting and every command are
//! bounded by [`OPERATION_TIMEOUT`], and the guest gets a `wasi:keyvalue`
//! error. The outage is logged once when it starts and once when it ends,
//! not on every call.

use super::{KeyPage, KeyValueStore, KvError, LIST_PAGE};
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The `redis` backend.
pub const BACKEND: super::BackendKind = super::BackendKind {
    name: "redis",
    location: super::Location::Server {
        schemes: &["redis://", "rediss://"],
        example: "redis://127.0.0.1:6379/0",
        open: |url| Ok(std::sync::Arc::new(RedisStore::open(url)?)),
    },
};

/// The longest one key-value operation on Redis may take, connecting
/// included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

/// One Redis server.
pub struct RedisStore {
    connection: ConnectionManager,
    /// The server as logs name it: host, port and database, no password.
    server: String,
    /// Whether the last operation found the server unreachable.
    down: AtomicBool,
}

impl RedisStore {
    /// A store on the server at `url` (`redis://HOST:PORT/DB`). It connects
    /// on first use, so a server that is down now only fails the calls made
    /// while it is down.
    pub fn open(url: &str) -> anyhow::Result<RedisStore> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("'{}' is not a usable Redis url: {e}", redacted(url)))?;
        let info = client.get_connection_info();
        let server = format!("{}/{}", info.addr(), info.redis_settings().db());
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OPERATION_TIMEOUT))
            .set_response_timeout(Some(OPERATION_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| anyhow::anyhow!("Redis at {server}: {e}"))?;
        Ok(RedisStore {
            connection,
            server,
            down: AtomicBool::new(false),
        })
    }

    /// Runs one command, bounded in time, and notes whether the server
    /// answered.
    async fn run<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, KvError> {
        let mut connection = self.connection.clone();
        let outcome =
            tokio::time::timeout(OPERATION_TIMEOUT, command.query_async::<T>(&mut connection))
                .await;
        match outcome {
            Ok(Ok(value)) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!("key-value: Redis at {} answers again", self.server);
                }
                Ok(value)
            }
            Ok(Err(e)) if !is_outage(&e) => {
                Err(KvError::Other(format!("Redis at {}: {e}", self.server)))
            }
            Ok(Err(e)) => Err(self.outage(&e.to_string())),
            Err(_) => Err(self.outage(&format!("no answer within {OPERATION_TIMEOUT:?}"))),
        }
    }

    /// The error of a call made while the server is unreachable; logged on
    /// the first such call only.
    fn outage(&self, cause: &str) -> KvError {
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "key-value: Redis at {} is unreachable ({cause}); key-value calls fail until it \
                 is back",
                self.server
            );
        }
        KvError::Unavailable(format!(
            "the key-value server (Redis at {}) is unreachable: {cause}",
            self.server
        ))
    }
}

impl RedisStore {
    /// Why the server cannot be reached, while it cannot.
    fn outage_state(&self) -> Option<String> {
        self.down
            .load(Ordering::Relaxed)
            .then(|| format!("Redis at {} is unreachable", self.server))
    }
}

/// Whether an error means the server could not be reached, rather than
/// that it refused the command.
fn is_outage(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

/// `url` without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

fn cmd(name: &str) -> redis::Cmd {
    redis::cmd(name)
}

#[async_trait]
impl KeyValueStore for RedisStore {
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.run(cmd("HGET").arg(bucket).arg(key)).await
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        self.run(cmd("HSET").arg(bucket).arg(key).arg(value))
            .await
            .map(|_: i64| ())
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        self.run(cmd("HDEL").arg(bucket).arg(key))
            .await
            .map(|_: i64| ())
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        self.run(cmd("HEXISTS").arg(bucket).arg(key)).await
    }

    async fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        let (next, pairs): (u64, Vec<Vec<u8>>) = self
            .run(
                cmd("HSCAN")
                    .arg(bucket)
                    .arg(cursor.unwrap_or(0))
                    .arg("COUNT")
                    .arg(LIST_PAGE),
            )
            .await?;
        // HSCAN answers field, value, field, value...; a page may repeat
        // a key of an earlier one while Redis rehashes, never miss one.
        let mut keys: Vec<String> = pairs
            .into_iter()
            .step_by(2)
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .collect();
        keys.sort();
        keys.dedup();
        Ok(KeyPage {
            keys,
            cursor: (next != 0).then_some(next),
        })
    }

    fn health(&self) -> Option<String> {
        self.outage_state()
    }

    async fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, KvError> {
        let delta = i64::try_from(delta).map_err(|_| {
            KvError::Other(format!(
                "bucket '{bucket}', key '{key}': Redis increments by at most {}",
                i64::MAX
            ))
        })?;
        let value: i64 = self
            .run(cmd("HINCRBY").arg(bucket).arg(key).arg(delta))
            .await
            .map_err(|e| match e {
                KvError::Other(m) if m.contains("not an integer") => KvError::Other(format!(
                    "bucket '{bucket}', key '{key}' holds a value that is not a decimal counter"
                )),
                other => other,
            })?;
        u64::try_from(value).map_err(|_| {
            KvError::Other(format!(
                "bucket '{bucket}', key '{key}': the counter is negative in Redis"
            ))
        })
    }

    async fn get_many(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.run(cmd("HMGET").arg(bucket).arg(keys)).await
    }

    async fn set_many(&self, bucket: &str, pairs: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let mut command = cmd("HSET");
        command.arg(bucket);
        for (key, value) in &pairs {
            command.arg(key).arg(value.as_slice());
        }
        self.run(&command).await.map(|_: i64| ())
    }

    async fn delete_many(&self, bucket: &str, keys: &[String]) -> Result<(), KvError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.run(cmd("HDEL").arg(bucket).arg(keys))
            .await
            .map(|_: i64| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redacted("redis://:hunter2@cache:6379/0"),
            "redis://***@cache:6379/0"
        );
        assert_eq!(redacted("redis://cache:6379/0"), "redis://cache:6379/0");
        assert!(RedisStore::open("http://cache").is_err());
    }
}
