//! Blob storage behind `wasi:blobstore`: containers of named objects.
//!
//! The host bindings (`host::blobstore`) speak WIT; a backend speaks
//! containers, object names and files. Backends are registered by kind in
//! [`BACKENDS`], as `[blobstore.CONTAINER] backend` names them:
//!
//! - [`fs`]: the embedded default, one folder per container under the data
//!   directory, one file per object. Objects are written to a temporary
//!   file and renamed into place when finished, so a reader sees the old
//!   object or the new one, never half of one; reads and writes stream in
//!   chunks, so no object is held in memory whole.
//!
//! Object names may be any string: [`fs::file_name`] turns each into a file
//! name that stays inside its container's folder, whatever it holds.

pub mod fs;

/// The longest object or container name, in bytes.
pub const MAX_NAME: usize = 1024;

/// A kind of blob backend.
pub struct BackendKind {
    /// Its name in `[blobstore.CONTAINER] backend`.
    pub name: &'static str,
    /// Whether its containers live in one machine's data directory (every
    /// backend so far does).
    pub embedded: bool,
}

/// Every blob backend weft has; the first is the default.
pub const BACKENDS: &[&BackendKind] = &[&fs::BACKEND];

/// The backend called `name`, if weft has one.
pub fn backend(name: &str) -> Option<&'static BackendKind> {
    BACKENDS.iter().copied().find(|b| b.name == name)
}

/// The names of every backend, for errors.
pub fn backend_names() -> String {
    BACKENDS
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses a name longer than [`MAX_NAME`].
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME {
        return Err(format!(
            "{what} name of {} bytes is longer than the limit of {MAX_NAME} bytes",
            name.len()
        ));
    }
    if name.is_empty() {
        return Err(format!("{what} name is empty"));
    }
    Ok(())
}
