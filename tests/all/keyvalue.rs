//! Key-value backends: the shared conformance suite against redb and a real
//! `redis-server`, kvcounter with its bucket on Redis in every mode, and
//! what guests and logs see while Redis is down and after it is back.

use std::sync::Arc;
use std::time::Duration;
use weft_runtime::kv::KeyValueStore;
use weft_runtime::kv::redb::RedbStore;
use weft_runtime::kv::redis::RedisStore;
use weft_tests::{Mode, RedisServer, Weft, each_mode, http_get};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn redb_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&RedbStore::file_in(dir.path())).unwrap();
    runtime().block_on(weft_runtime::kv::conformance::run(Arc::new(store)));
}

#[test]
fn redis_passes_the_conformance_suite() {
    let redis = RedisServer::start();
    runtime().block_on(async {
        let store: Arc<dyn KeyValueStore> = Arc::new(RedisStore::open(&redis.url(0)).unwrap());
        weft_runtime::kv::conformance::run(store).await;
    });
    assert!(
        redis.command("HGET counters n").contains("42"),
        "the suite's data is in Redis"
    );
}

/// kvcounter with its `counts` bucket on `redis`.
fn kvcounter_on(redis: &RedisServer) -> tempfile::TempDir {
    weft_tests::kvcounter_on_redis(&redis.url(0), "127.0.0.1:0")
}

fn count(app: &Weft, name: &str) -> (u16, String) {
    http_get(&app.url("web", &format!("/counter/{name}")))
}

#[test]
fn kvcounter_keeps_its_counts_in_redis_in_every_mode() {
    each_mode(|mode| {
        let redis = RedisServer::start();
        let dir = kvcounter_on(&redis);
        let app = Weft::start(mode, &[dir.path().to_str().unwrap()]);
        for expected in 1..=3 {
            let body = format!("{{\"counter\":\"apples\",\"value\":{expected}}}\n");
            assert_eq!(count(&app, "apples"), (200, body));
        }
        assert_eq!(redis.command("HGET counts apples"), "$1\r\n3\r\n");
        let output = app.output();
        if mode == Mode::Split {
            // The counter's worker ran the calls, and talked to Redis
            // itself: the manager opened no store to serve.
            let served = weft_tests::served_calls(dir.path());
            let crossed: u64 = served
                .iter()
                .filter(|(k, _)| k.starts_with("counter/0 counter:"))
                .map(|(_, n)| n)
                .sum();
            assert_eq!(crossed, 3, "{served:?}");
        }
        assert!(
            !output.contains("key-value data in"),
            "no embedded store is opened when every bucket is on Redis:\n{output}"
        );
        assert!(
            !dir.path().join(".weft/data/keyvalue.redb").exists(),
            "no redb file is made"
        );
        let (status, output) = app.stop();
        assert!(status.success(), "{output}");
    });
}

#[test]
fn redis_down_fails_calls_quickly_and_recovers() {
    for mode in [Mode::Run, Mode::Split] {
        eprintln!("--- mode {mode:?}");
        let mut redis = RedisServer::start();
        let dir = kvcounter_on(&redis);
        let app = Weft::start(mode, &[dir.path().to_str().unwrap()]);
        assert_eq!(count(&app, "pears").0, 200);

        redis.stop();
        for _ in 0..3 {
            let started = std::time::Instant::now();
            let (status, body) = count(&app, "pears");
            assert_eq!(status, 500, "{body}");
            assert!(body.contains("unreachable"), "{body}");
            // Bounded by weft's Redis timeout, far below the call timeout.
            assert!(started.elapsed() < Duration::from_secs(15), "a call hung");
        }
        let output = app.wait_for_output("is unreachable");
        assert_eq!(
            output.matches("is unreachable").count(),
            1,
            "the outage is logged once:\n{output}"
        );

        redis.restart();
        let mut answered = None;
        for _ in 0..50 {
            let (status, body) = count(&app, "pears");
            if status == 200 {
                answered = Some(body);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The restarted server is empty, so the count starts again.
        assert_eq!(
            answered.as_deref(),
            Some("{\"counter\":\"pears\",\"value\":1}\n"),
            "{}",
            app.output()
        );
        let output = app.wait_for_output("answers again");
        assert!(output.contains("answers again"), "{output}");
        let (status, output) = app.stop();
        assert!(status.success(), "{output}");
    }
}
