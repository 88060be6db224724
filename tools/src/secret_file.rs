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
    #[error("{} is larger than {limit} bytes, too large to be a secret file; check the path", .path.display())]
    TooLarge { path: PathBuf, limit: u64 },
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

/// The largest secret file [`read_private`] accepts. Real ones (keys, seeds, PIN/PUK lines,
/// token files) are a few hundred bytes.
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Reads a secret file, refusing one that group or others may read or that is larger than
/// [`MAX_SECRET_FILE`].
///
/// The buffer is sized once up front and never grows, so no reallocation leaves an unwiped
/// copy of the secret behind in freed memory; it is zeroized when dropped.
pub fn read_private(path: &Path) -> Result<Zeroizing<Vec<u8>>, SecretFileError> {
    let file = File::open(path).map_err(io_err(path))?;
    let meta = file.metadata().map_err(io_err(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::Permissions { path: path.to_owned(), mode });
    }
    let too_large = || SecretFileError::TooLarge { path: path.to_owned(), limit: MAX_SECRET_FILE };
    // A regular file says its size up front; a pipe (`--secret-file <(...)`) says 0 and is
    // caught by the read below.
    if meta.len() > MAX_SECRET_FILE {
        return Err(too_large());
    }
    // Room for the limit plus one byte, and never more read than that: the Vec never has to
    // grow, and a file longer than the limit fills the extra byte and is refused.
    let cap = MAX_SECRET_FILE + 1;
    let mut buf = Zeroizing::new(Vec::with_capacity(usize::try_from(cap).unwrap_or(usize::MAX)));
    file.take(cap).read_to_end(&mut buf).map_err(io_err(path))?;
    if buf.len() as u64 > MAX_SECRET_FILE {
        return Err(too_large());
    }
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

    #[test]
    fn oversize_file_is_refused_naming_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let at_limit = dir.path().join("at-limit");
        write_new(&at_limit, &vec![b'a'; MAX_SECRET_FILE as usize]).unwrap();
        assert_eq!(read_private(&at_limit).unwrap().len() as u64, MAX_SECRET_FILE);
        let over = dir.path().join("over");
        write_new(&over, &vec![b'a'; MAX_SECRET_FILE as usize + 1]).unwrap();
        let err = read_private(&over).unwrap_err();
        assert!(matches!(err, SecretFileError::TooLarge { .. }), "{err:?}");
        assert!(err.to_string().contains(&MAX_SECRET_FILE.to_string()), "{err}");
    }
}
