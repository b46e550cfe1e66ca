//! `wasi:blobstore` on the embedded file backend: objects of 0 B, 1 MiB and
//! 64 MiB written and read back a chunk at a time (memory stays flat),
//! listed and deleted; hostile names stay inside their container's folder;
//! an ungranted container is refused. In one process and split.

use std::path::Path;
use weft_runtime::deploy::state::DeployState;
use weft_tests::{Mode, Weft, app_dir, http_get};

const BLOBS_APP: &str = "[app]\nname = \"blobs\"\n\
     [components.front]\nwasm = \"{wasm:fixture_blobs}\"\n\
     [components.front.grants]\nblobstore = [\"photos\"]\n\
     [listeners.web]\ncomponent = \"front\"\naddress = \"127.0.0.1:0\"\n";

const MIB: u64 = 1 << 20;

/// The most a process's peak memory may grow while it writes and reads a
/// 64 MiB object: well under the object's size.
const FLAT: u64 = 24 * MIB;

/// The peak resident memory of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib * 1024
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn blobs_stream_both_ways_stay_in_their_container_and_need_a_grant() {
    for mode in [Mode::Run, Mode::Split] {
        eprintln!("--- mode {mode:?}");
        let dir = app_dir(BLOBS_APP);
        let data = tempfile::tempdir().unwrap();
        let args = [
            dir.path().to_str().unwrap(),
            "--data-dir",
            data.path().to_str().unwrap(),
        ];
        let app = Weft::start(mode, &args);
        let get = |path: &str| http_get(&app.url("web", path));
        assert_eq!(get("/create?c=photos"), (200, "created\n".into()));
        // The process that runs the component: weft itself, or its worker.
        let pid = match mode {
            Mode::Split => {
                let state = DeployState::read(&DeployState::path(dir.path())).unwrap();
                let worker = state.workers.iter().find(|w| w.name == "front/0");
                worker.and_then(|w| w.pid).expect("the worker's pid")
            }
            _ => app.pid(),
        };
        for (name, size) in [("empty", 0), ("one", MIB)] {
            assert_eq!(
                get(&format!("/put?c=photos&name={name}&size={size}")),
                (200, format!("wrote {size}\n"))
            );
            assert_eq!(
                get(&format!("/get?c=photos&name={name}")),
                (200, format!("size {size}\nintact true\n"))
            );
        }
        let before = peak_rss(pid);
        let big = 64 * MIB;
        assert_eq!(
            get(&format!("/put?c=photos&name=big&size={big}")),
            (200, format!("wrote {big}\n"))
        );
        assert_eq!(
            get("/get?c=photos&name=big"),
            (200, format!("size {big}\nintact true\n"))
        );
        let grown = peak_rss(pid).saturating_sub(before);
        assert!(
            grown < FLAT,
            "{mode:?}: peak memory grew by {} MiB for a 64 MiB object",
            grown / MIB
        );
        // Replacing an object is atomic: the new one, whole.
        assert_eq!(get("/put?c=photos&name=one&size=10").0, 200);
        assert_eq!(
            get("/get?c=photos&name=one"),
            (200, "size 10\nintact true\n".into())
        );

        let (status, body) = get("/hostile?c=photos");
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            "\"../escape\": put Ok(\"ok\") get Ok(\"10 true\")\n\
             \"nul\\0inside\": put Ok(\"ok\") get Ok(\"10 true\")\n\
             \"4KiB\": put Err(\"an object name of 4096 bytes is longer than the limit of 1024 \
             bytes\") get Err(\"an object name of 4096 bytes is longer than the limit of 1024 \
             bytes\")\n"
        );
        // Every object is a file in the container's folder, and no name
        // reached outside it.
        let blobs = data.path().join("blobs");
        let container = blobs.join("o-photos");
        for file in files(data.path()) {
            let inside = file.starts_with(&container) || file.starts_with(blobs.join(".tmp"));
            let redb = file.extension().is_some_and(|e| e == "redb");
            assert!(
                inside || redb,
                "{} is outside the container",
                file.display()
            );
        }
        assert!(!blobs.join("escape").exists() && !data.path().join("escape").exists());

        assert_eq!(
            get("/list?c=photos"),
            (
                200,
                "\"../escape\"\n\"big\"\n\"empty\"\n\"nul\\0inside\"\n\"one\"\n".into()
            )
        );
        assert_eq!(get("/delete?c=photos&name=big"), (200, "deleted\n".into()));
        assert_eq!(
            get("/get?c=photos&name=big"),
            (409, "container 'photos' has no object 'big'\n".into())
        );
        assert!(!container.join("o-big").exists());
        assert_eq!(
            get("/create?c=secret"),
            (409, "access to container 'secret' is not granted\n".into())
        );
        drop(app);
    }
}
