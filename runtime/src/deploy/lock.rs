//! One manager per app: `weft deploy` holds an exclusive lock on
//! `.weft/manager.lock` beside the manifest for as long as it runs. The
//! kernel drops the lock when the process ends, however it ends, so a
//! crashed manager never leaves a stale lock behind, as a pid file would.

use super::state::DeployState;
use std::fs::{File, TryLockError};
use std::path::Path;

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct AppLock {
    _file: File,
}

impl AppLock {
    /// Takes the lock of the app whose manifest is `manifest`, in `dir`, or
    /// says which manager holds it.
    pub fn acquire(dir: &Path, manifest: &Path) -> anyhow::Result<AppLock> {
        let weft = dir.join(".weft");
        std::fs::create_dir_all(&weft)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", weft.display()))?;
        let path = weft.join("manager.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(AppLock { _file: file }),
            Err(TryLockError::WouldBlock) => {
                let pid = DeployState::read(&DeployState::path(dir))
                    .map(|s| format!("manager pid {}", s.pid))
                    .unwrap_or_else(|_| "its manager is starting".into());
                anyhow::bail!(
                    "{}: this app is already deployed ({pid}); stop that deployment with Ctrl-C, \
                     or move it to new files with `weft rollout`",
                    manifest.display()
                )
            }
            Err(TryLockError::Error(e)) => {
                anyhow::bail!("cannot lock {}: {e}", path.display())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_manager_is_refused_until_the_first_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("weft.toml");
        let first = AppLock::acquire(dir.path(), &manifest).unwrap();
        let err = AppLock::acquire(dir.path(), &manifest)
            .unwrap_err()
            .to_string();
        assert!(err.contains("this app is already deployed"), "{err}");
        drop(first);
        assert!(AppLock::acquire(dir.path(), &manifest).is_ok());
    }
}
