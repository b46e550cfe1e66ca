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

/// A tmpfs of `megabytes` mounted on a new folder, unmounted when dropped;
/// a full disk to order (the tests run as root).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount (util-linux) runs");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {}: this test needs root, as CI runs it",
            dir.path().display()
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Writes a file of zeros until the disk is full.
    fn fill(&self) {
        use std::io::Write as _;
        let mut filler = std::fs::File::create(self.path().join("filler")).unwrap();
        let block = vec![0u8; 64 << 10];
        while filler.write_all(&block).is_ok() {}
        let _ = filler.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// What `weft status --json` says of the deployment's key-value store.
fn store_state(dir: &std::path::Path) -> serde_json::Value {
    let (status, out, err) = weft_tests::weft_once(&["status", dir.to_str().unwrap(), "--json"]);
    assert!(status.success(), "{err}");
    let state: serde_json::Value = serde_json::from_str(&out).unwrap();
    state["keyvalue"].clone()
}

#[test]
fn the_embedded_store_fails_on_a_full_disk_and_serves_again_once_there_is_room() {
    for mode in [Mode::Run, Mode::Split] {
        eprintln!("--- mode {mode:?}");
        let disk = SmallDisk::mount(6);
        let dir = weft_tests::app_dir(
            "[app]\nname = \"kvcounter\"\n\
             [components.http]\nwasm = \"{wasm:kvcounter_http}\"\n\
             [components.counter]\nwasm = \"{wasm:kvcounter_counter}\"\n\
             [components.counter.grants]\nkeyvalue = [\"counts\"]\n\
             [listeners.web]\ncomponent = \"http\"\naddress = \"127.0.0.1:0\"\n",
        );
        let data = disk.path().join("data");
        let app = Weft::start(
            mode,
            &[
                dir.path().to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
            ],
        );
        let mut counted = 0;
        for _ in 0..3 {
            assert_eq!(count(&app, "plums").0, 200);
            counted += 1;
        }

        disk.fill();
        let mut failed = 0;
        for _ in 0..20 {
            match count(&app, "plums") {
                (200, _) => counted += 1,
                (status, body) => {
                    assert_eq!(status, 500, "{body}");
                    failed += 1;
                }
            }
        }
        assert!(failed > 0, "{mode:?}: writes on a full disk did not fail");
        if mode == Mode::Split {
            let store = store_state(dir.path());
            assert_eq!(store["healthy"], false, "{store}");
            assert!(
                store["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{store}"
            );
        }

        disk.free();
        let mut recovered = false;
        for _ in 0..50 {
            if count(&app, "plums").0 == 200 {
                counted += 1;
                recovered = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            recovered,
            "{mode:?}: the store stayed dead:\n{}",
            app.output()
        );
        assert_eq!(
            http_get(&app.url("web", "/counter/plums?peek")),
            (
                200,
                format!("{{\"counter\":\"plums\",\"value\":{counted}}}\n")
            ),
            "{mode:?}: every answered increment is kept, and no failed one"
        );
        if mode == Mode::Split {
            let store = store_state(dir.path());
            assert_eq!(store["healthy"], true, "{store}");
        }
        let (status, output) = app.stop();
        assert!(status.success(), "{output}");
        assert_eq!(
            output.matches("cannot be written (").count(),
            1,
            "logged once:\n{output}"
        );
        assert_eq!(output.matches("works again").count(), 1, "{output}");
    }
}

/// A Redis that asks for a password: its url goes in an environment
/// variable that `url-env` names, never in the manifest, and kvcounter
/// counts on it in every mode; the version store holds no password.
#[test]
fn a_redis_password_comes_from_the_environment_in_every_mode() {
    each_mode(|mode| {
        let redis = RedisServer::start_with_password("s3cret-pw");
        let dir = weft_tests::app_dir(
            "[app]\nname = \"kvcounter\"\n\
             [components.http]\nwasm = \"{wasm:kvcounter_http}\"\n\
             [components.counter]\nwasm = \"{wasm:kvcounter_counter}\"\n\
             [components.counter.grants]\nkeyvalue = [\"counts\"]\n\
             [listeners.web]\ncomponent = \"http\"\naddress = \"127.0.0.1:0\"\n\
             [keyvalue.counts]\nbackend = \"redis\"\nurl-env = \"COUNTS_REDIS_URL\"\n",
        );
        let url = redis.url(0);
        let app = Weft::start_with_env(
            mode,
            &[dir.path().to_str().unwrap()],
            &[("COUNTS_REDIS_URL", &url)],
        );
        assert_eq!(
            count(&app, "figs"),
            (200, "{\"counter\":\"figs\",\"value\":1}\n".into()),
            "{mode:?}"
        );
        assert_eq!(redis.command("HGET counts figs"), "$1\r\n1\r\n");
        let stored = walk(&dir.path().join(".weft"));
        assert!(
            !stored.contains("s3cret-pw"),
            "{mode:?}: a password in .weft"
        );
        assert!(
            !app.output().contains("s3cret-pw"),
            "{mode:?}: a password in the log"
        );
    });
}

/// Everything below `dir`, as text, for looking for a secret.
fn walk(dir: &std::path::Path) -> String {
    let mut text = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return text;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            text.push_str(&walk(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

#[test]
fn a_password_in_the_manifest_is_refused() {
    let dir = weft_tests::app_dir(
        "[app]\nname = \"kvcounter\"\n\
         [components.counter]\nwasm = \"{wasm:kvcounter_counter}\"\n\
         [components.counter.grants]\nkeyvalue = [\"counts\"]\n\
         [keyvalue.counts]\nbackend = \"redis\"\nurl = \"redis://:pw@127.0.0.1:6379/0\"\n",
    );
    let (status, _, stderr) = weft_tests::weft_once(&["run", dir.path().to_str().unwrap()]);
    assert!(!status.success());
    assert!(
        stderr.contains("keyvalue.counts.url: the url holds a password")
            && stderr.contains("url-env"),
        "{stderr}"
    );
}
