//! The on-disk cache of compiled components.
//!
//! A compiled component is stored as `<sha256 of the .wasm>-<engine hash>.cwasm`,
//! so a changed binary or a different wasmtime (or engine setting) misses the
//! cache instead of loading stale code. A second `weft run` of the same app
//! deserialises instead of running Cranelift again.
//!
//! Deserialising runs the file's machine code, so the cache trusts nothing
//! it did not write itself: the folder is private to its owner (0700), and
//! each entry has a `.digest` beside it, the SHA-256 of its name and its
//! bytes, recorded when weft wrote it. An entry whose bytes do not match
//! (edited, truncated, or another component's copied over it) is a miss: it
//! is compiled again, overwritten, and a warning says so.

use crate::engine::{Concurrency, Engines};
use crate::file_input::private_dir;
use sha2::{Digest, Sha256};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a component's compiled code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded compiled code from the cache.
    Hit,
    /// Loaded compiled code that the image carries (`weft kube
    /// --containerfile` put it there).
    Image,
    /// Compiled now (and stored for next time).
    Compiled,
    /// Compiled now, because the code the image carries is for another
    /// engine (another weft, or another CPU).
    CompiledOverImage,
}

impl CacheOutcome {
    /// How it is named in status answers: `cache`, `image`, `compiled`, or
    /// `compiled-over-image`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "cache",
            CacheOutcome::Image => "image",
            CacheOutcome::Compiled => "compiled",
            CacheOutcome::CompiledOverImage => "compiled-over-image",
        }
    }
}

/// A folder of compiled components, and perhaps a read-only one that an
/// image carries.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    image: Option<PathBuf>,
}

impl CompileCache {
    /// A cache in `dir`, created when first written to.
    pub fn new(dir: impl Into<PathBuf>) -> CompileCache {
        CompileCache {
            dir: dir.into(),
            image: None,
        }
    }

    /// The same cache, first looking in `image`: a folder of entries that
    /// [`CompileCache::export`] wrote, which is only read.
    pub fn with_image(self, image: impl Into<PathBuf>) -> CompileCache {
        CompileCache {
            image: Some(image.into()),
            ..self
        }
    }

    /// Copies the entry of `wasm` (compiled into this cache already) and
    /// its digest into the folder `to`, and returns the entry's file name
    /// (the digest's is the same with `.digest`).
    pub fn export(&self, engines: &Engines, wasm: &[u8], to: &Path) -> anyhow::Result<String> {
        use anyhow::Context as _;
        let mut key = key(engines.plain(), wasm);
        if !self.dir.join(format!("{key}.cwasm")).exists() && self.entry_of_content(wasm).is_some()
        {
            key = self::key(engines.concurrent()?, wasm);
        }
        let entry = self.dir.join(format!("{key}.cwasm"));
        self.verified(&key, &entry).with_context(|| {
            format!(
                "{} is not in the compile cache; compile the app first",
                entry.display()
            )
        })?;
        std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
        for ext in ["cwasm", "digest"] {
            let from = entry.with_extension(ext);
            let dest = to.join(format!("{key}.{ext}"));
            std::fs::copy(&from, &dest)
                .with_context(|| format!("cannot copy {} to {}", from.display(), dest.display()))?;
        }
        Ok(format!("{key}.cwasm"))
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

    /// Compiles `wasm` (the bytes of the file at `origin`) on the engine it
    /// needs, or loads it from the cache: the plain engine, unless it uses
    /// the component model's async (then the concurrent one).
    pub fn component(
        &self,
        engines: &Engines,
        wasm: &[u8],
        origin: &Path,
    ) -> anyhow::Result<(Component, CacheOutcome, Concurrency)> {
        let plain = engines.plain();
        if crate::engine::concurrent_everywhere() {
            let engine = engines.concurrent()?;
            if let Some((component, outcome)) = self.cached(engine, &key(engine, wasm)) {
                return Ok((component, outcome, Concurrency::On));
            }
            let component = self.compile(engine, wasm).map_err(|e| invalid(origin, e))?;
            return Ok((component, CacheOutcome::Compiled, Concurrency::On));
        }
        if let Some((component, outcome)) = self.cached(plain, &key(plain, wasm)) {
            return Ok((component, outcome, Concurrency::Off));
        }
        // Seen before, but not for the plain engine: perhaps it is async.
        let seen = self.entry_of_content(wasm);
        if seen.is_some() {
            let engine = engines.concurrent()?;
            if let Some((component, outcome)) = self.cached(engine, &key(engine, wasm)) {
                return Ok((component, outcome, Concurrency::On));
            }
        }
        if let (Some(other), Some(_)) = (&seen, &self.image) {
            tracing::warn!(
                component = %origin.display(),
                "the image carries this component's compiled code for another engine \
                 ({other}, from another weft or for another CPU); compiling it for this one"
            );
        }
        let outcome = match (&seen, &self.image) {
            (Some(_), Some(_)) => CacheOutcome::CompiledOverImage,
            _ => CacheOutcome::Compiled,
        };
        let (component, concurrency) = match self.compile(plain, wasm) {
            Ok(component) => (component, Concurrency::Off),
            Err(e) if needs_concurrency(&e) => {
                let component = self
                    .compile(engines.concurrent()?, wasm)
                    .map_err(|e| invalid(origin, e))?;
                (component, Concurrency::On)
            }
            Err(e) => return Err(invalid(origin, e)),
        };
        Ok((component, outcome, concurrency))
    }

    /// Compiles `wasm` for `engine` and stores the code for next time.
    fn compile(&self, engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Component> {
        let component = Component::new(engine, wasm)?;
        let key = key(engine, wasm);
        if let Err(e) = self.store(&key, &self.dir.join(format!("{key}.cwasm")), &component) {
            tracing::warn!(dir = %self.dir.display(), "cannot write the compile cache: {e:#}");
        }
        Ok(component)
    }

    /// The entry `key` of `engine`, from the image or the cache, if there
    /// is a good one.
    fn cached(&self, engine: &Engine, key: &str) -> Option<(Component, CacheOutcome)> {
        if let Some(image) = &self.image {
            let path = image.join(format!("{key}.cwasm"));
            if path.exists()
                && let Some(bytes) = self.verified(key, &path)
            {
                // SAFETY: as below; the image's folder holds what `export`
                // copied from a cache that weft wrote, with the digest it
                // recorded, and the image is read-only.
                match unsafe { Component::deserialize(engine, &bytes) } {
                    Ok(component) => return Some((component, CacheOutcome::Image)),
                    Err(e) => tracing::warn!(
                        file = %path.display(),
                        "ignoring the image's compiled code: {e}"
                    ),
                }
            }
        }
        let path = self.dir.join(format!("{key}.cwasm"));
        // A folder left open by an older weft is closed before it is read.
        if let Err(e) = private_dir(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), "cannot make the compile cache private: {e}");
        }
        let bytes = self.verified(key, &path)?;
        // SAFETY: the bytes are those that `Component::serialize` of an
        // engine with the same compatibility hash (it is in the name) wrote,
        // as the digest recorded beside them proves, in a folder that only
        // its owner can write to.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(component) => Some((component, CacheOutcome::Hit)),
            Err(e) => {
                tracing::warn!(
                    file = %path.display(),
                    "ignoring an unreadable compile-cache entry: {e}"
                );
                None
            }
        }
    }

    /// The name of an entry for `wasm`, for any engine, in the image or
    /// the cache.
    fn entry_of_content(&self, wasm: &[u8]) -> Option<String> {
        let content = content_hash(wasm);
        self.image
            .iter()
            .chain([&self.dir])
            .find_map(|dir| entry_for(dir, &content))
    }

    /// The bytes of the entry at `path`, if they are what weft wrote there.
    fn verified(&self, key: &str, path: &Path) -> Option<Vec<u8>> {
        let bytes = std::fs::read(path).ok()?;
        let recorded = std::fs::read_to_string(path.with_extension("digest")).unwrap_or_default();
        if recorded.trim() == digest(key, &bytes) {
            return Some(bytes);
        }
        tracing::warn!(
            file = %path.display(),
            "a compile-cache entry does not match the digest weft recorded when it wrote it \
             (changed or copied since); compiling the component again"
        );
        None
    }

    fn store(&self, key: &str, path: &Path, component: &Component) -> anyhow::Result<()> {
        private_dir(&self.dir)?;
        let bytes = component.serialize()?;
        // Write then rename, so that a concurrent reader never sees half a
        // file; the digest goes first, so the entry is never trusted before
        // its digest is there to check it.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        let tmp = |ext: &str| path.with_extension(format!("{ext}.tmp{}.{n}", std::process::id()));
        let (tmp_digest, tmp_entry) = (tmp("digest"), tmp("cwasm"));
        std::fs::write(&tmp_digest, digest(key, &bytes))?;
        std::fs::rename(&tmp_digest, path.with_extension("digest"))?;
        std::fs::write(&tmp_entry, bytes)?;
        std::fs::rename(&tmp_entry, path)?;
        Ok(())
    }
}

/// What an entry's `.digest` file holds: the SHA-256 of its key and bytes,
/// so an entry copied under another key does not match.
fn digest(key: &str, bytes: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(key.as_bytes());
    hash.update([0]);
    hash.update(bytes);
    crate::version::hex(&hash.finalize())
}

/// The name of an entry in `dir` for the binary whose hash is `content`,
/// for any engine.
fn entry_for(dir: &Path, content: &str) -> Option<String> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|name| name.starts_with(&format!("{content}-")) && name.ends_with(".cwasm"))
}

/// What a component is invalid for, and what to do.
fn invalid(origin: &Path, e: wasmtime::Error) -> anyhow::Error {
    anyhow::Error::from(e).context(format!(
        "{} is not a valid WebAssembly component; build it for wasm32-wasip2 (or wrap a core \
         module with `wasm-tools component new`)",
        origin.display()
    ))
}

/// Whether a component failed to compile on the plain engine because it
/// uses the component model's async (what wasmparser's validator says).
fn needs_concurrency(e: &wasmtime::Error) -> bool {
    let text = format!("{e:#}");
    [
        "the component model async",
        "the component model more async builtins",
        "the component model error-context",
    ]
    .iter()
    .any(|feature| text.contains(feature))
}

fn content_hash(wasm: &[u8]) -> String {
    Sha256::digest(wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn key(engine: &Engine, wasm: &[u8]) -> String {
    let content = content_hash(wasm);
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{content}-{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(name: &str) -> Vec<u8> {
        wat::parse_str(format!(
            "(component (core module (func (export \"{name}\"))) (core instance (instantiate 0)))"
        ))
        .unwrap()
    }

    #[test]
    fn only_entries_weft_wrote_are_loaded() {
        use std::os::unix::fs::PermissionsExt as _;
        let engines = Engines::new().unwrap();
        let engine = engines.plain();
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path().join("cache"));
        let (a, b) = (component("a"), component("b"));
        let load = |wasm: &[u8]| {
            cache
                .component(&engines, wasm, Path::new("x.wasm"))
                .unwrap()
                .1
        };
        assert_eq!(load(&a), CacheOutcome::Compiled);
        assert_eq!(load(&a), CacheOutcome::Hit);
        assert_eq!(load(&b), CacheOutcome::Compiled);
        let mode = std::fs::metadata(dir.path().join("cache"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "the folder is private");

        let entry = |wasm: &[u8]| cache.dir.join(format!("{}.cwasm", key(engine, wasm)));
        // Code changed in place: a miss, compiled and written again.
        let mut bytes = std::fs::read(entry(&a)).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(entry(&a), &bytes).unwrap();
        assert_eq!(load(&a), CacheOutcome::Compiled);
        assert_eq!(load(&a), CacheOutcome::Hit);
        // Another component's entry, with its digest, copied over: a miss.
        std::fs::copy(entry(&b), entry(&a)).unwrap();
        std::fs::copy(
            entry(&b).with_extension("digest"),
            entry(&a).with_extension("digest"),
        )
        .unwrap();
        assert_eq!(load(&a), CacheOutcome::Compiled);
        // A folder that others could write to is made private again.
        std::fs::set_permissions(&cache.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(load(&b), CacheOutcome::Hit);
        let mode = std::fs::metadata(&cache.dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn an_image_carries_code_for_its_engine_only() {
        let engines = Engines::new().unwrap();
        let engine = engines.plain();
        let dir = tempfile::tempdir().unwrap();
        let wasm = component("a");
        let built = CompileCache::new(dir.path().join("built"));
        built
            .component(&engines, &wasm, Path::new("a.wasm"))
            .unwrap();
        let image = dir.path().join("image");
        let name = built.export(&engines, &wasm, &image).unwrap();
        assert_eq!(name, format!("{}.cwasm", key(engine, &wasm)));

        // A pod with an empty cache of its own loads the image's code.
        let pod = CompileCache::new(dir.path().join("pod")).with_image(&image);
        let load = |cache: &CompileCache| {
            cache
                .component(&engines, &wasm, Path::new("a.wasm"))
                .unwrap()
                .1
        };
        assert_eq!(load(&pod), CacheOutcome::Image);
        assert!(!dir.path().join("pod").exists(), "nothing was compiled");

        // Code for another engine is not loaded: compiled, and said so.
        let (content, _) = name.split_once('-').unwrap();
        for ext in ["cwasm", "digest"] {
            std::fs::rename(
                image.join(name.replace(".cwasm", &format!(".{ext}"))),
                image.join(format!("{content}-00000000000000ff.{ext}")),
            )
            .unwrap();
        }
        let pod = CompileCache::new(dir.path().join("pod2")).with_image(&image);
        assert_eq!(load(&pod), CacheOutcome::CompiledOverImage);
        // A binary the image has nothing of is simply compiled.
        let other = component("b");
        let outcome = pod
            .component(&engines, &other, Path::new("b.wasm"))
            .unwrap()
            .1;
        assert_eq!(outcome, CacheOutcome::Compiled);
    }
}
