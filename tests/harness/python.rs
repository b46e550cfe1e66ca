//! Python guests, built with componentize-py from PyPI.
//!
//! The first build makes a virtual environment under the target folder
//! (`target/python-venv`) and installs the pinned componentize-py into it,
//! so nothing is installed system-wide. A component is rebuilt only when
//! its Python or WIT files are newer than it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The componentize-py release the Python guests are built with.
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

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

/// Builds every Python guest that is missing or older than its sources.
pub(crate) fn build_all() {
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
    BIN.get_or_init(|| {
        let venv = crate::target_dir().join("python-venv");
        let bin = venv.join("bin/componentize-py");
        let installed = venv.join(format!(".{COMPONENTIZE_PY}"));
        if installed.exists() {
            return bin;
        }
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status();
        assert!(
            made.is_ok_and(|s| s.success()),
            "`python3 -m venv {}` failed: the Python guests need Python 3.10 or newer with its \
             venv module (on Debian: apt-get install python3 python3-venv)",
            venv.display()
        );
        let pip = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                COMPONENTIZE_PY,
            ])
            .status();
        assert!(
            pip.is_ok_and(|s| s.success()),
            "`pip install {COMPONENTIZE_PY}` into {} failed; it needs PyPI",
            venv.display()
        );
        std::fs::write(&installed, "").expect("mark the venv as installed");
        bin
    })
    .clone()
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
