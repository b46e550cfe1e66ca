//! The version store: `.weft/versions/` beside the manifest, a snapshot of
//! every deployed version, from which its workers load.
//!
//! A snapshot holds what makes the version: the manifest, the plan and the
//! component binaries. Binaries are stored once by content, so versions
//! that share a binary share its file:
//!
//! ```text
//! .weft/versions/blobs/<sha256>.wasm
//! .weft/versions/<version>/weft.toml   # `wasm` points into ../blobs
//! .weft/versions/<version>/plan.toml
//! .weft/versions/<version>/deployed    # when it was last deployed, for order
//! ```
//!
//! Because workers load only from snapshots, a worker that restarts after
//! the user edited or rebuilt the app still finds its own version's files,
//! and `weft rollback` can go back to a version whose files are gone.
//! [`VersionStore::retain`] keeps the newest few.
//!
//! A snapshot is checked whenever it is used: a blob must hash to its name,
//! and the snapshot's manifest and plan must be those of its version. A
//! deploy whose files make a stored version repairs whatever of it does not
//! match (and says so); [`VersionStore::get`], which has no files to repair
//! from, refuses a damaged version instead of loading it.

use crate::manifest::{Manifest, ManifestFile};
use crate::version::{Version, hex};
use anyhow::Context as _;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use weft_placer::Plan;

/// The snapshots of one app.
#[derive(Debug, Clone)]
pub struct VersionStore {
    root: PathBuf,
}

/// One version's snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The version.
    pub version: Version,
    /// Its manifest, whose binaries are in the store.
    pub manifest: PathBuf,
    /// Its plan.
    pub plan: Plan,
}

/// The file name of a stored binary whose SHA-256 is `digest` (hex).
fn blob_name(digest: &str) -> String {
    format!("{digest}.wasm")
}

/// Where a binary with SHA-256 `digest` (hex) is stored, from the app's
/// folder.
pub fn blob_in_app(digest: &str) -> PathBuf {
    Path::new(".weft/versions/blobs").join(blob_name(digest))
}

impl VersionStore {
    /// The store of the app whose manifest is in `app_dir`.
    pub fn new(app_dir: &Path) -> VersionStore {
        VersionStore {
            root: app_dir.join(".weft").join("versions"),
        }
    }

    /// Copies `manifest`'s binaries into the store and records the version
    /// they make with `plan`. A version already in the store is kept as it
    /// is, and only marked as deployed now.
    pub fn snapshot(&self, manifest: &ManifestFile, plan: &Plan) -> anyhow::Result<Snapshot> {
        let blobs = self.root.join("blobs");
        std::fs::create_dir_all(&blobs)
            .with_context(|| format!("cannot create {}", blobs.display()))?;
        let mut stored = manifest.manifest.clone();
        let mut digests = Vec::new();
        for (name, spec) in &mut stored.components {
            let bytes = manifest.read_wasm(name, spec)?;
            let digest = Sha256::digest(&bytes).to_vec();
            let blob = blob_name(&hex(&digest));
            write_once(&blobs.join(&blob), &bytes)?;
            spec.wasm = Path::new("..").join("blobs").join(blob);
            spec.build = None;
            digests.push((name.clone(), digest));
        }
        let version = Version::compute(
            &stored.canonical(),
            &plan.to_toml(),
            digests.iter().map(|(n, d)| (n.as_str(), d.as_slice())),
        );
        let dir = self.root.join(version.as_str());
        let whole = std::fs::read_to_string(dir.join("weft.toml"))
            .is_ok_and(|text| text == stored.to_toml())
            && std::fs::read_to_string(dir.join("plan.toml"))
                .is_ok_and(|text| text == plan.to_toml());
        if !whole && dir.exists() {
            tracing::warn!(
                "version {version} in {} was damaged; writing it again from the app's files",
                self.root.display()
            );
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot remove the damaged {}", dir.display()))?;
        }
        if !whole {
            let partial = self.root.join(format!("{version}.partial"));
            let _ = std::fs::remove_dir_all(&partial);
            std::fs::create_dir_all(&partial)?;
            std::fs::write(partial.join("weft.toml"), stored.to_toml())?;
            std::fs::write(partial.join("plan.toml"), plan.to_toml())?;
            std::fs::rename(&partial, &dir)
                .with_context(|| format!("cannot store version {version} in {}", dir.display()))?;
        }
        self.mark_deployed(&version)?;
        Ok(Snapshot {
            manifest: dir.join("weft.toml"),
            plan: plan.clone(),
            version,
        })
    }

    /// The snapshot of `version`, if the store has it.
    pub fn get(&self, version: &Version) -> anyhow::Result<Option<Snapshot>> {
        let dir = self.root.join(version.as_str());
        let manifest = dir.join("weft.toml");
        if !manifest.exists() {
            return Ok(None);
        }
        let plan_file = dir.join("plan.toml");
        let text = std::fs::read_to_string(&plan_file)
            .with_context(|| format!("cannot read {}", plan_file.display()))?;
        let stored = Manifest::from_file(&manifest)?;
        let plan = Plan::from_str(
            &text,
            &plan_file.display().to_string(),
            stored.components.keys(),
        )?;
        // Checked before anything loads it: no file of the app is left to
        // repair it from.
        let mut digests = Vec::new();
        for (name, spec) in &stored.components {
            let blob = dir.join(&spec.wasm);
            let digest = blob
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|d| digest_of(&blob).as_deref() == Some(*d))
                .with_context(|| {
                    format!(
                        "version {version} in {} is damaged: the binary of component '{name}' \
                         ({}) is missing or does not match its digest; deploy the app's files \
                         of that version again to repair it",
                        self.root.display(),
                        blob.display()
                    )
                })?;
            let bytes = (0..digest.len() / 2)
                .map(|i| u8::from_str_radix(&digest[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()?;
            digests.push((name.clone(), bytes));
        }
        let computed = Version::compute(
            &stored.canonical(),
            &plan.to_toml(),
            digests.iter().map(|(n, d)| (n.as_str(), d.as_slice())),
        );
        anyhow::ensure!(
            &computed == version,
            "version {version} in {} is damaged: its manifest or plan now make version \
             {computed}; deploy the app's files of that version again to repair it",
            self.root.display()
        );
        Ok(Some(Snapshot {
            version: version.clone(),
            manifest,
            plan,
        }))
    }

    /// Records that `version` was deployed now.
    pub fn mark_deployed(&self, version: &Version) -> anyhow::Result<()> {
        let file = self.root.join(version.as_str()).join("deployed");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        std::fs::write(&file, nanos.to_string())
            .with_context(|| format!("cannot write {}", file.display()))
    }

    /// Every stored version, the most recently deployed last.
    pub fn list(&self) -> Vec<Version> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut versions: Vec<(u128, Version)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let version = Version::parse(e.file_name().to_str()?)?;
                let when = std::fs::read_to_string(e.path().join("deployed")).ok()?;
                Some((when.trim().parse().ok()?, version))
            })
            .collect();
        versions.sort();
        versions.into_iter().map(|(_, v)| v).collect()
    }

    /// Removes all but the `keep` most recently deployed versions (never
    /// one in `running`), and the binaries no kept version uses. Returns
    /// the versions removed.
    pub fn retain(&self, keep: usize, running: &[Version]) -> anyhow::Result<Vec<Version>> {
        let all = self.list();
        let cut = all.len().saturating_sub(keep);
        let removed: Vec<Version> = all[..cut]
            .iter()
            .filter(|v| !running.contains(v))
            .cloned()
            .collect();
        for version in &removed {
            std::fs::remove_dir_all(self.root.join(version.as_str()))?;
        }
        let mut used = std::collections::BTreeSet::new();
        for version in self.list() {
            let manifest =
                Manifest::from_file(&self.root.join(version.as_str()).join("weft.toml"))?;
            used.extend(
                manifest
                    .components
                    .into_values()
                    .filter_map(|c| c.wasm.file_name().map(|f| f.to_string_lossy().into_owned())),
            );
        }
        if let Ok(blobs) = std::fs::read_dir(self.root.join("blobs")) {
            for blob in blobs.filter_map(|e| e.ok()) {
                if !used.contains(&*blob.file_name().to_string_lossy()) {
                    let _ = std::fs::remove_file(blob.path());
                }
            }
        }
        Ok(removed)
    }
}

/// Writes `bytes` at `path` unless a file is there already (the name is
/// the content's hash, so it is the same file), through a rename.
/// The SHA-256 (hex) of the file at `path`, if it can be read.
fn digest_of(path: &Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|bytes| hex(&Sha256::digest(bytes)))
}

/// Writes a blob, unless the store holds it whole already; a blob that no
/// longer hashes to its name is written again.
fn write_once(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if path.exists() {
        let expected = hex(&Sha256::digest(bytes));
        if digest_of(path).as_deref() == Some(expected.as_str()) {
            return Ok(());
        }
        tracing::warn!(
            "{} was damaged (it does not match its digest); writing it again",
            path.display()
        );
    }
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An app folder with components `a` and `b`, whose binaries hold `a`
    /// and `b`'s given bytes.
    fn app(a: &[u8], b: &[u8]) -> (tempfile::TempDir, ManifestFile) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.wasm"), a).unwrap();
        std::fs::write(dir.path().join("b.wasm"), b).unwrap();
        std::fs::write(
            dir.path().join("weft.toml"),
            "[app]\nname = \"t\"\n[components.a]\nwasm = \"a.wasm\"\nbuild = \"make a\"\n\
             [components.b]\nwasm = \"b.wasm\"\n[components.b.config]\nk = \"v\"\n",
        )
        .unwrap();
        let manifest = ManifestFile::load(dir.path()).unwrap();
        (dir, manifest)
    }

    fn plan() -> Plan {
        Plan::split(["a", "b"])
    }

    #[test]
    fn a_snapshot_survives_changes_to_the_app() {
        let (dir, manifest) = app(b"one", b"two");
        let store = VersionStore::new(dir.path());
        let first = store.snapshot(&manifest, &plan()).unwrap();
        // The user rebuilds a and edits the manifest: the snapshot is intact.
        std::fs::write(dir.path().join("a.wasm"), b"one, rebuilt").unwrap();
        let snap = ManifestFile::load(&first.manifest).unwrap();
        assert_eq!(snap.manifest.components["b"].config["k"], "v");
        assert_eq!(snap.manifest.components["a"].build, None);
        let a = std::fs::read(snap.wasm_path(&snap.manifest.components["a"])).unwrap();
        assert_eq!(a, b"one");
        // And a new snapshot is a new version.
        let second = store.snapshot(&manifest, &plan()).unwrap();
        assert_ne!(second.version, first.version);
        assert_eq!(
            store.list(),
            vec![first.version.clone(), second.version.clone()]
        );
        let again = store.get(&first.version).unwrap().unwrap();
        assert_eq!(again.plan, plan());
    }

    #[test]
    fn a_damaged_snapshot_is_refused_and_repaired_by_its_files() {
        let (dir, manifest) = app(b"one", b"two");
        let store = VersionStore::new(dir.path());
        let first = store.snapshot(&manifest, &plan()).unwrap();
        let snap = ManifestFile::load(&first.manifest).unwrap();
        let blob = snap.wasm_path(&snap.manifest.components["a"]);
        std::fs::write(&blob, b"corrupted").unwrap();
        // Without the app's files (a rollback), it is refused, named.
        let err = store.get(&first.version).unwrap_err().to_string();
        assert!(err.contains("is damaged"), "{err}");
        assert!(err.contains("component 'a'"), "{err}");
        // The files of that version repair it.
        let again = store.snapshot(&manifest, &plan()).unwrap();
        assert_eq!(again.version, first.version);
        assert_eq!(std::fs::read(&blob).unwrap(), b"one");
        assert!(store.get(&first.version).unwrap().is_some());
        // So do they a damaged plan.
        let plan_file = first.manifest.with_file_name("plan.toml");
        std::fs::write(&plan_file, "[groups.x]\ncomponents = [\"a\", \"b\"]\n").unwrap();
        assert!(store.get(&first.version).is_err());
        store.snapshot(&manifest, &plan()).unwrap();
        assert_eq!(store.get(&first.version).unwrap().unwrap().plan, plan());
    }

    #[test]
    fn the_same_files_are_the_same_version() {
        let (dir, manifest) = app(b"one", b"two");
        let store = VersionStore::new(dir.path());
        let first = store.snapshot(&manifest, &plan()).unwrap();
        let again = store.snapshot(&manifest, &plan()).unwrap();
        assert_eq!(first.version, again.version);
        // A different plan is a different version.
        let monolith = Plan::monolith(["a", "b"]);
        assert_ne!(
            store.snapshot(&manifest, &monolith).unwrap().version,
            first.version
        );
    }

    #[test]
    fn the_snapshot_has_the_version_a_worker_computes() {
        let (dir, manifest) = app(b"one", b"two");
        let snapshot = VersionStore::new(dir.path())
            .snapshot(&manifest, &plan())
            .unwrap();
        let loaded = ManifestFile::load(&snapshot.manifest).unwrap();
        let digests: Vec<(String, Vec<u8>)> = loaded
            .manifest
            .components
            .iter()
            .map(|(n, spec)| {
                let bytes = std::fs::read(loaded.wasm_path(spec)).unwrap();
                (n.clone(), Sha256::digest(&bytes).to_vec())
            })
            .collect();
        let computed = Version::compute(
            &loaded.manifest.canonical(),
            &plan().to_toml(),
            digests.iter().map(|(n, d)| (n.as_str(), d.as_slice())),
        );
        assert_eq!(computed, snapshot.version);
    }

    #[test]
    fn retain_keeps_the_newest_and_the_running() {
        let (dir, manifest) = app(b"v0", b"shared");
        let store = VersionStore::new(dir.path());
        let mut versions = Vec::new();
        for i in 0..5 {
            std::fs::write(dir.path().join("a.wasm"), format!("v{i}")).unwrap();
            versions.push(store.snapshot(&manifest, &plan()).unwrap().version);
        }
        let removed = store.retain(2, &[versions[0].clone()]).unwrap();
        assert_eq!(removed, versions[1..3].to_vec());
        assert_eq!(
            store.list(),
            vec![
                versions[0].clone(),
                versions[3].clone(),
                versions[4].clone()
            ]
        );
        // Only the kept versions' binaries remain: v0, v3, v4 and the shared b.
        let blobs = std::fs::read_dir(dir.path().join(".weft/versions/blobs"))
            .unwrap()
            .count();
        assert_eq!(blobs, 4);
    }
}
