//! Files only the bank's own user may read: the database (and its `-wal` and `-shm`), the
//! master key file and the TLS private key.
//!
//! A file is created with mode 0600 whatever the umask (the mode is set again after the
//! create, since the umask can only take bits away and the result must be exact), and a file
//! that group or others can read or write is refused with the `chmod` that fixes it. On
//! non-Unix systems these checks do nothing.

use std::path::{Path, PathBuf};

/// A private file that is not private, or could not be checked or created.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    /// Group or others have some access: the message gives the command to run.
    #[error(
        "{what} {} can be read or written by group or others (mode {mode:03o}); \
         run `chmod 600 {}` and start again",
        .path.display(),
        .path.display()
    )]
    Lax { what: &'static str, path: PathBuf, mode: u32 },
    #[error("{what} {}: {source}", .path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
}

/// Refuses `path` (an existing file; `what` names it in the message, "database", "master key
/// file") when group or others have any permission on it.
#[cfg(unix)]
pub fn check(what: &'static str, path: &Path) -> Result<(), PrivateFileError> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).map_err(|source| PrivateFileError::Io { what, path: path.to_owned(), source })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(PrivateFileError::Lax { what, path: path.to_owned(), mode });
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn check(_what: &'static str, _path: &Path) -> Result<(), PrivateFileError> {
    Ok(())
}

/// [`check`] when `path` exists; nothing when it does not. A file that goes away while it is
/// looked at counts as absent: SQLite deletes a `-wal` when its last connection closes, which
/// may be another process's (or a stopping writer's) at that moment.
pub fn check_if_exists(what: &'static str, path: &Path) -> Result<(), PrivateFileError> {
    match check(what, path) {
        Err(PrivateFileError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound && std::fs::symlink_metadata(path).is_err() =>
        {
            Ok(())
        }
        r => r,
    }
}

/// Creates `path` empty with mode 0600 if it does not exist yet (an existing file is left as
/// it is: [`check`] it). Returns whether it created the file.
pub fn create_if_missing(what: &'static str, path: &Path) -> Result<bool, PrivateFileError> {
    let io = |source| PrivateFileError::Io { what, path: path.to_owned(), source };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(file) => {
            // The umask may have taken more than group and other bits: make it exactly 0600.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
            }
            drop(file);
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(e)),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn created_files_are_0600_and_lax_ones_are_refused_with_the_chmod() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        assert!(create_if_missing("database", &p).unwrap());
        assert!(!create_if_missing("database", &p).unwrap(), "an existing file is kept");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        check("database", &p).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = check("database", &p).unwrap_err().to_string();
            assert!(e.contains(&format!("run `chmod 600 {}`", p.display())), "{mode:o}: {e}");
        }
        check_if_exists("database", &dir.path().join("none")).unwrap();
    }
}
