//! Python guests, built with componentize-py from PyPI, and the other
//! Python tool the tests use, kubernetes-validate.
//!
//! The fixtures' Python guests are built here ([`PYTHON_GUESTS`]); a
//! sample's Python component is built by the sample's own build script
//! ([`SAMPLE_SCRIPTS`]), as `weft run --build` would build it, so that the
//! tests check the script too.
//!
//! The first use makes a virtual environment under the target folder
//! (`target/python-venv`) and installs the pinned tool into it, so nothing
//! is installed system-wide. A component is rebuilt only when
//! its Python or WIT files are newer than it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The componentize-py release the Python guests are built with.
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// The kubernetes-validate release that checks `weft kube`'s objects.
pub const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

/// One Python guest.
pub struct PythonGuest {
    /// The component's file stem: it is built as `target/wasm32-wasip2/release/STEM.wasm`.
    pub stem: &'static str,
    /// The folder with its `app.py`, from the repository root.
    pub app: &'static str,
    /// Its WIT folder, from the repository root.
    pub wit: &'static str,
    /// The world it implements.
    pub world: &'static str,
}

/// Every Python guest the tests use.
pub const PYTHON_GUESTS: &[PythonGuest] = &[PythonGuest {
    stem: "fixture_shop_inventory",
    app: "tests/fixtures/shop/inventory",
    wit: "tests/fixtures/shop/wit",
    world: "demo:shop-app/inventory@0.1.0",
}];

/// The samples' build scripts for their Python components, from the
/// repository root. Each makes (or reuses) the venv in `target/python-venv`
/// and leaves an up-to-date component alone.
pub(crate) const SAMPLE_SCRIPTS: &[&str] = &["samples/boutique/recommendation/build.sh"];

/// One pip (or build script that may run pip) at a time in the tests' venv.
static INSTALLING: Mutex<()> = Mutex::new(());

/// Builds every Python guest that is missing or older than its sources.
pub(crate) fn build_all() {
    for script in SAMPLE_SCRIPTS {
        let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
        let status = crate::scrubbed(Command::new("sh"))
            .arg(script)
            .env("CARGO_TARGET_DIR", crate::target_dir())
            .current_dir(crate::root())
            .status()
            .expect("sh runs");
        assert!(
            status.success(),
            "`sh {script}` failed: see its output above"
        );
    }
    for guest in PYTHON_GUESTS {
        let out = crate::target_dir()
            .join("wasm32-wasip2/release")
            .join(format!("{}.wasm", guest.stem));
        let root = crate::root();
        let sources = [root.join(guest.app), root.join(guest.wit)];
        if newer_than_all(&out, &sources) {
            continue;
        }
        std::fs::create_dir_all(out.parent().expect("a folder")).expect("create the output folder");
        let status = Command::new(componentize_py())
            .args([
                "--quiet",
                "-d",
                guest.wit,
                "-w",
                guest.world,
                "componentize",
                "-p",
            ])
            .arg(guest.app)
            .arg("app")
            .arg("-o")
            .arg(&out)
            .current_dir(&root)
            .status()
            .expect("componentize-py runs");
        assert!(
            status.success(),
            "componentize-py could not build {} from {}",
            guest.stem,
            guest.app
        );
    }
}

/// componentize-py in the tests' virtual environment, installed on first use.
fn componentize_py() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| venv_tool(COMPONENTIZE_PY, "componentize-py", "the Python guests"))
        .clone()
}

/// kubernetes-validate in the tests' virtual environment, installed on
/// first use: it checks `weft kube`'s output against the Kubernetes schemas
/// (which it bundles, so it works offline once installed).
pub fn kubernetes_validate() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        venv_tool(
            KUBERNETES_VALIDATE,
            "kubernetes-validate",
            "the Kubernetes schema tests",
        )
    })
    .clone()
}

/// The executable `bin` of the pinned PyPI package `requirement`, installed
/// into the tests' virtual environment (`target/python-venv`) the first
/// time; `purpose` says who needs it, in a failure's message.
fn venv_tool(requirement: &str, bin: &str, purpose: &str) -> PathBuf {
    // Tests ask from several threads.
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    let venv = crate::target_dir().join("python-venv");
    let path = venv.join("bin").join(bin);
    let installed = venv.join(format!(".{requirement}"));
    if installed.exists() && path.exists() {
        return path;
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status();
    assert!(
        made.is_ok_and(|s| s.success()),
        "`python3 -m venv {}` failed: {purpose} need Python 3.10 or newer with its venv module \
         (on Debian: apt-get install python3 python3-venv)",
        venv.display()
    );
    let pip = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            requirement,
        ])
        .status();
    assert!(
        pip.is_ok_and(|s| s.success()) && path.exists(),
        "`pip install {requirement}` into {} failed, and {purpose} need it; it needs PyPI",
        venv.display()
    );
    std::fs::write(&installed, "").expect("mark the venv as installed");
    path
}

/// Whether `out` exists and is newer than every file under `sources`.
fn newer_than_all(out: &Path, sources: &[PathBuf]) -> bool {
    let Ok(built) = out.metadata().and_then(|m| m.modified()) else {
        return false;
    };
    let mut pending: Vec<PathBuf> = sources.to_vec();
    while let Some(path) = pending.pop() {
        let Ok(meta) = path.metadata() else { continue };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                pending.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        } else if meta.modified().is_ok_and(|m| m > built) {
            return false;
        }
    }
    true
}
