//! The embedded blob backend: a folder per container under
//! `DATA_DIR/blobs`, a file per object.
//!
//! A container's folder is named by [`file_name`] of the container's name,
//! and each object's file by [`file_name`] of the object's: names are
//! percent-encoded, so no name can hold a `/`, be `.` or `..`, or reach
//! outside its folder, and names whose encoding is too long for a file
//! name are stored as the hash of the name, with the name itself in a
//! `n-HASH` file beside it. Writes go to `DATA_DIR/blobs/.tmp` and are
//! renamed into place once finished and synced, which replaces the old
//! object atomically.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// The `fs` backend, weft's embedded default.
pub const BACKEND: super::BackendKind = super::BackendKind {
    name: "fs",
    embedded: true,
};

/// The longest encoded name kept as it is; longer ones are hashed.
const LONGEST_ENCODED: usize = 200;

/// The file name that stands for `name`: `o-` and the name percent-encoded
/// (every byte but ASCII letters, digits, `-` and `_`), or `h-` and the hex
/// SHA-256 of the name when that would be too long.
pub fn file_name(name: &str) -> String {
    let mut encoded = String::with_capacity(name.len() + 2);
    encoded.push_str("o-");
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    if encoded.len() <= LONGEST_ENCODED {
        encoded
    } else {
        format!(
            "h-{}",
            crate::version::hex(&Sha256::digest(name.as_bytes()))
        )
    }
}

/// The name a file of [`file_name`] stands for, when it is an `o-` file.
pub fn name_of(file: &str) -> Option<String> {
    let encoded = file.strip_prefix("o-")?;
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// The blob root of one data directory.
#[derive(Debug, Clone)]
pub struct FsBlobs {
    root: PathBuf,
}

/// An object's size and time of writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its size, in bytes.
    pub size: u64,
    /// When it was written, in seconds since the Unix epoch.
    pub created_at: u64,
}

fn io(what: &str, e: std::io::Error) -> String {
    format!("{what}: {e}")
}

impl FsBlobs {
    /// The blobs under `root` (`DATA_DIR/blobs`); nothing is created yet.
    pub fn new(root: PathBuf) -> FsBlobs {
        FsBlobs { root }
    }

    /// Where the blobs of data directory `data_dir` live.
    pub fn root_in(data_dir: &Path) -> PathBuf {
        data_dir.join("blobs")
    }

    /// The folder of container `container`.
    pub fn container_dir(&self, container: &str) -> PathBuf {
        self.root.join(file_name(container))
    }

    /// Whether container `container` exists.
    pub fn container_exists(&self, container: &str) -> bool {
        self.container_dir(container).is_dir()
    }

    /// Creates container `container`; an error if it exists.
    pub fn create_container(&self, container: &str) -> Result<(), String> {
        std::fs::create_dir_all(&self.root).map_err(|e| io("creating the blob folder", e))?;
        std::fs::create_dir(self.container_dir(container)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                format!("container '{container}' already exists")
            } else {
                io(&format!("creating container '{container}'"), e)
            }
        })
    }

    /// Deletes container `container` and every object in it.
    pub fn delete_container(&self, container: &str) -> Result<(), String> {
        match std::fs::remove_dir_all(self.container_dir(container)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io(&format!("deleting container '{container}'"), e))
            }
            _ => Ok(()),
        }
    }

    /// When container `container` was made, in seconds since the epoch.
    pub fn container_created(&self, container: &str) -> Result<u64, String> {
        let meta = std::fs::metadata(self.container_dir(container))
            .map_err(|e| io(&format!("container '{container}'"), e))?;
        Ok(seconds(&meta))
    }

    /// The file of object `name` in `container`.
    pub fn object_path(&self, container: &str, name: &str) -> PathBuf {
        self.container_dir(container).join(file_name(name))
    }

    /// A new temporary file for an object being written, and its path.
    pub fn temp_file(&self) -> Result<(PathBuf, File), String> {
        let dir = self.root.join(".tmp");
        std::fs::create_dir_all(&dir).map_err(|e| io("creating the blob temp folder", e))?;
        for attempt in 0u32.. {
            let path = dir.join(format!(
                "w-{}-{}-{attempt}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ));
            match File::options().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok((path, file)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io("creating a temp file", e)),
            }
        }
        unreachable!("an attempt number is always free")
    }

    /// Makes the synced temp file `temp` object `name` of `container`,
    /// replacing any object of that name at once.
    pub fn commit(&self, temp: &Path, container: &str, name: &str) -> Result<(), String> {
        let dir = self.container_dir(container);
        if !dir.is_dir() {
            let _ = std::fs::remove_file(temp);
            return Err(format!("container '{container}' does not exist"));
        }
        let target = dir.join(file_name(name));
        if let Some(hashed) = target.file_name().and_then(|f| f.to_str())
            && let Some(hash) = hashed.strip_prefix("h-")
        {
            let mut names = File::create(dir.join(format!("n-{hash}")))
                .map_err(|e| io("recording a long object name", e))?;
            names
                .write_all(name.as_bytes())
                .map_err(|e| io("recording a long object name", e))?;
        }
        std::fs::rename(temp, &target).map_err(|e| io(&format!("storing object '{name}'"), e))?;
        // The rename is durable once the folder is synced.
        if let Ok(dir) = File::open(&dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Opens object `name` of `container` for reading.
    pub fn open(&self, container: &str, name: &str) -> Result<File, String> {
        File::open(self.object_path(container, name)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!("container '{container}' has no object '{name}'")
            } else {
                io(&format!("reading object '{name}'"), e)
            }
        })
    }

    /// Object `name`'s size and time of writing.
    pub fn info(&self, container: &str, name: &str) -> Result<ObjectInfo, String> {
        let meta = self.open(container, name)?.metadata();
        let meta = meta.map_err(|e| io(&format!("object '{name}'"), e))?;
        Ok(ObjectInfo {
            size: meta.len(),
            created_at: seconds(&meta),
        })
    }

    /// Deletes object `name`; a missing object is not an error.
    pub fn delete(&self, container: &str, name: &str) -> Result<(), String> {
        let path = self.object_path(container, name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(&format!("deleting object '{name}'"), e));
            }
            _ => {}
        }
        if let Some(hash) = path
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_prefix("h-"))
        {
            let _ = std::fs::remove_file(self.container_dir(container).join(format!("n-{hash}")));
        }
        Ok(())
    }

    /// The names of every object in `container`, sorted.
    pub fn list(&self, container: &str) -> Result<Vec<String>, String> {
        let dir = self.container_dir(container);
        let entries =
            std::fs::read_dir(&dir).map_err(|e| io(&format!("listing '{container}'"), e))?;
        let mut names = Vec::new();
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            if let Some(name) = name_of(file) {
                names.push(name);
            } else if let Some(hash) = file.strip_prefix("h-")
                && let Ok(name) = std::fs::read_to_string(dir.join(format!("n-{hash}")))
            {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Copies object `from` to `to` (another container, or another name),
    /// through a temp file, so that `to` is replaced at once.
    pub fn copy(&self, from: (&str, &str), to: (&str, &str)) -> Result<(), String> {
        let mut source = self.open(from.0, from.1)?;
        let (temp, mut file) = self.temp_file()?;
        let copied = std::io::copy(&mut source, &mut file).and_then(|_| file.sync_all());
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&temp);
            return Err(io(&format!("copying object '{}'", from.1), e));
        }
        self.commit(&temp, to.0, to.1)
    }
}

fn seconds(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_name_leaves_its_folder_and_every_name_comes_back() {
        let long = "x".repeat(4096);
        let names = [
            "plain-name_1",
            "../../etc/passwd",
            "..",
            ".",
            "a/b",
            "nul\0inside",
            "ünïcödé ✓",
            "",
            long.as_str(),
        ];
        for name in names {
            let file = file_name(name);
            assert!(
                !file.contains('/') && !file.contains('\0'),
                "{name:?} -> {file}"
            );
            assert!(file != "." && file != ".." && file.len() <= 255, "{file}");
            if file.starts_with("o-") {
                assert_eq!(name_of(&file).as_deref(), Some(name));
            }
        }
        assert!(file_name(&long).starts_with("h-"));
        assert_ne!(file_name("a/b"), file_name("a%2Fb"));
    }
}
