//! Reading the files a user names (a manifest, a component binary) without
//! trusting what they are: only a regular file is read, and no more than a
//! limit. `/dev/zero` would otherwise be read until memory runs out, and a
//! FIFO would block `open` until a writer came.
//!
//! And the folders weft keeps for itself (the compile cache, the CA's
//! keys), which [`private_dir`] makes readable by their owner only.

use std::io::Read as _;
use std::path::Path;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The OS could not open or read it.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// It is a device, a FIFO, a socket or a folder.
    #[error("it is not a regular file (it is {0})")]
    NotRegular(&'static str),
    /// It holds more than the limit.
    #[error("it is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
}

/// The bytes of the regular file at `path`, if it holds at most `limit`.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    // `stat` first: opening a FIFO for reading blocks until it has a writer.
    check_regular(&std::fs::metadata(path)?)?;
    // Opened without blocking, and checked again, in case the path was
    // swapped for something else between the two.
    let file = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?
    };
    let metadata = file.metadata()?;
    check_regular(&metadata)?;
    if metadata.len() > limit {
        return Err(InputError::TooLarge { limit });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    // One byte past the limit tells a file that grew while it was read.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(InputError::TooLarge { limit });
    }
    Ok(bytes)
}

/// Creates `dir` (and its parents) readable and writable by its owner
/// only, and makes an existing one so.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn check_regular(metadata: &std::fs::Metadata) -> Result<(), InputError> {
    use std::os::unix::fs::FileTypeExt as _;
    let kind = metadata.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a folder"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(InputError::NotRegular(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_within_the_limit_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.wasm");
        std::fs::write(&file, b"0123456789").unwrap();
        assert_eq!(read_bounded(&file, 10).unwrap(), b"0123456789");
        assert!(matches!(
            read_bounded(&file, 9),
            Err(InputError::TooLarge { limit: 9 })
        ));
        let zero = read_bounded(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert_eq!(
            zero.to_string(),
            "it is not a regular file (it is a character device)"
        );
        assert!(matches!(
            read_bounded(dir.path(), 10),
            Err(InputError::NotRegular("a folder"))
        ));
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            read_bounded(&fifo, 10),
            Err(InputError::NotRegular("a FIFO"))
        ));
    }
}
