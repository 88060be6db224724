//! Files that hold secrets: created new (never overwritten) with mode 0600, and refused when
//! other users could read them.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("{} already exists; refusing to overwrite it (move it away first if you really mean to)", .0.display())]
    Exists(PathBuf),
    #[error("{} can be read by other users (mode {mode:04o}); run `chmod 600 {}`", .path.display(), .path.display())]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SecretFileError + '_ {
    move |source| SecretFileError::Io { path: path.to_owned(), source }
}

/// Creates `path` with mode 0600 and writes `contents`, flushed to disk. Fails with
/// [`SecretFileError::Exists`] if the file is already there.
pub fn write_new(path: &Path, contents: &[u8]) -> Result<(), SecretFileError> {
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => SecretFileError::Exists(path.to_owned()),
            _ => SecretFileError::Io { path: path.to_owned(), source: e },
        })?;
    file.write_all(contents).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))?;
    }
    Ok(())
}

/// Reads a secret file, refusing one that group or others may read.
pub fn read_private(path: &Path) -> Result<Zeroizing<Vec<u8>>, SecretFileError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let mode = file.metadata().map_err(io_err(path))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::Permissions { path: path.to_owned(), mode });
    }
    let mut buf = Zeroizing::new(Vec::new());
    file.read_to_end(&mut buf).map_err(io_err(path))?;
    Ok(buf)
}

/// Refuses early, before any card is touched, when `path` already exists.
pub fn ensure_absent(path: &Path) -> Result<(), SecretFileError> {
    match path.symlink_metadata() {
        Ok(_) => Err(SecretFileError::Exists(path.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SecretFileError::Io { path: path.to_owned(), source: e }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn written_0600_never_overwritten_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        write_new(&p, b"abc").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(matches!(write_new(&p, b"other"), Err(SecretFileError::Exists(_))));
        assert!(matches!(ensure_absent(&p), Err(SecretFileError::Exists(_))));
        assert_eq!(read_private(&p).unwrap().as_slice(), b"abc");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_private(&p).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
