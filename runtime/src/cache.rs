//! The on-disk cache of compiled components.
//!
//! A compiled component is stored as `<sha256 of the .wasm>-<engine hash>.cwasm`,
//! so a changed binary or a different wasmtime (or engine setting) misses the
//! cache instead of loading stale code. A second `weft run` of the same app
//! deserialises instead of running Cranelift again.

use sha2::{Digest, Sha256};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Whether a component came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded compiled code from the cache.
    Hit,
    /// Compiled now (and stored for next time).
    Compiled,
}

/// A folder of compiled components.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// A cache in `dir`, created when first written to.
    pub fn new(dir: impl Into<PathBuf>) -> CompileCache {
        CompileCache { dir: dir.into() }
    }

    /// `$WEFT_CACHE_DIR`, else `$XDG_CACHE_HOME/weft`, else `~/.cache/weft`.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("WEFT_CACHE_DIR") {
            return dir.into();
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Path::new(&dir).join("weft");
        }
        match std::env::var_os("HOME") {
            Some(home) => Path::new(&home).join(".cache").join("weft"),
            None => PathBuf::from(".weft").join("cache"),
        }
    }

    /// Compiles `wasm` (the bytes of the file at `origin`), or loads it from the cache.
    pub fn component(
        &self,
        engine: &Engine,
        wasm: &[u8],
        origin: &Path,
    ) -> anyhow::Result<(Component, CacheOutcome)> {
        let path = self.dir.join(format!("{}.cwasm", key(engine, wasm)));
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of an
            // engine with the same compatibility hash (it is in the name), in
            // a cache folder that only weft writes to.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => tracing::warn!(
                    file = %path.display(),
                    "ignoring an unreadable compile-cache entry: {e}"
                ),
            }
        }
        let component = Component::new(engine, wasm).map_err(|e| {
            let e = anyhow::Error::from(e);
            let why = if format!("{e:#}").contains("requires the component model async feature") {
                "uses the component model's async features (a `stream`, a `future` or an async \
                 function, as WASI 0.3 does), which weft does not run; build it against WASI 0.2, \
                 with plain values in its interfaces"
            } else {
                "is not a valid WebAssembly component; build it for wasm32-wasip2 (or wrap a core \
                 module with `wasm-tools component new`)"
            };
            e.context(format!("{} {why}", origin.display()))
        })?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(dir = %self.dir.display(), "cannot write the compile cache: {e:#}");
        }
        Ok((component, CacheOutcome::Compiled))
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let bytes = component.serialize()?;
        // Write then rename, so that a concurrent reader never sees half a file.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp{}.{n}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

fn key(engine: &Engine, wasm: &[u8]) -> String {
    let content: String = Sha256::digest(wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{content}-{:016x}", hasher.finish())
}
