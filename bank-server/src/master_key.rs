//! The master key: 32 bytes kept outside the database, sealing every chain key with
//! AES-256-GCM.
//!
//! Where it comes from, first match wins:
//! 1. the environment variable `BANK_MASTER_KEY` (64 hex digits);
//! 2. the file `<database>.master-key` beside the database (64 hex digits, mode 0600), created
//!    with fresh OS randomness on first run.

use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

/// Environment variable that carries the master key as 64 hex digits.
pub const ENV_VAR: &str = "BANK_MASTER_KEY";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{ENV_VAR} must be 64 hex digits (32 bytes)")]
    BadEnv,
    #[error("master key file {0} must hold 64 hex digits (32 bytes)")]
    BadFile(PathBuf),
    #[error("master key file {0} is readable by group or others; run `chmod 600` on it")]
    Permissions(PathBuf),
    #[error("master key file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the operating system's random generator failed")]
    Random,
    #[error("sealed data did not open: wrong master key or altered database row")]
    Open,
}

/// A 32-byte AES-256-GCM key. `Debug` never shows it.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<secret>)")
    }
}

/// A sealed value: a random 96-bit nonce and the ciphertext with its tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// The key file that belongs to a database path.
pub fn key_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push(".master-key");
    PathBuf::from(name)
}

/// Fills a buffer from the OS CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|_| KeyError::Random)?;
    Ok(b)
}

fn parse_hex32(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let text = text.trim();
    let mut out = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text, out.as_mut()).ok()?;
    Some(out)
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey(Zeroizing::new(bytes))
    }

    /// Loads the key for the database at `db_path`: from `BANK_MASTER_KEY` if set, else from
    /// the key file beside the database, which is created (mode 0600) when missing.
    pub fn load_or_create(db_path: &Path) -> Result<Self, KeyError> {
        if let Ok(v) = std::env::var(ENV_VAR) {
            let v = Zeroizing::new(v);
            return parse_hex32(&v).map(MasterKey).ok_or(KeyError::BadEnv);
        }
        Self::load_or_create_file(&key_path(db_path))
    }

    /// Loads the key file at `path`, or creates it with a fresh random key.
    pub fn load_or_create_file(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io { path: path.to_path_buf(), source };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                check_permissions(path)?;
                parse_hex32(&text).map(MasterKey).ok_or_else(|| KeyError::BadFile(path.to_path_buf()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Zeroizing::new(random_bytes::<32>()?);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                match opts.open(path) {
                    Ok(mut f) => {
                        let text = Zeroizing::new(format!("{}\n", hex::encode(key.as_ref())));
                        f.write_all(text.as_bytes()).map_err(io)?;
                        f.sync_all().map_err(io)?;
                        // The directory entry too: a crash must not keep a database whose key
                        // file vanished.
                        let dir = match path.parent() {
                            Some(d) if !d.as_os_str().is_empty() => d,
                            _ => Path::new("."),
                        };
                        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
                        tracing::info!(path = %path.display(), "created a new master key file");
                        Ok(MasterKey(key))
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load_or_create_file(path),
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    /// A 32-byte key for one purpose, derived with HKDF-SHA256 (RFC 5869: no salt, the master
    /// key as input keying material, `label` as info). Each purpose has its own label, so no
    /// derived key says anything about the master key or another derived key.
    pub fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit of 255 * 32: `expand` cannot fail here.
        let _ = hkdf::Hkdf::<sha2::Sha256>::new(None, self.0.as_ref()).expand(label, out.as_mut());
        out
    }

    /// Seals `plaintext`, binding it to `ad` (which is not stored, only authenticated).
    pub fn seal(&self, ad: &[u8], plaintext: &[u8]) -> Result<Sealed, KeyError> {
        let cipher = Aes256Gcm::new_from_slice(self.0.as_ref()).map_err(|_| KeyError::Open)?;
        let nonce = random_bytes::<12>()?;
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: ad })
            .map_err(|_| KeyError::Open)?;
        Ok(Sealed { nonce: nonce.to_vec(), ciphertext })
    }

    /// Opens a sealed value; fails if the key, the associated data or the bytes differ.
    pub fn open(&self, ad: &[u8], sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        if sealed.nonce.len() != 12 {
            return Err(KeyError::Open);
        }
        let cipher = Aes256Gcm::new_from_slice(self.0.as_ref()).map_err(|_| KeyError::Open)?;
        cipher
            .decrypt(Nonce::from_slice(&sealed.nonce), Payload { msg: &sealed.ciphertext, aad: ad })
            .map(Zeroizing::new)
            .map_err(|_| KeyError::Open)
    }
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| KeyError::Io { path: path.to_path_buf(), source })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(KeyError::Permissions(path.to_path_buf()));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path) -> Result<(), KeyError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_binds_the_associated_data() {
        let k = MasterKey::from_bytes([7; 32]);
        let s = k.seal(b"row 1", b"secret").unwrap();
        assert_eq!(k.open(b"row 1", &s).unwrap().as_slice(), b"secret");
        assert!(k.open(b"row 2", &s).is_err());
        assert!(MasterKey::from_bytes([8; 32]).open(b"row 1", &s).is_err());
        let mut bad = s.clone();
        bad.ciphertext[0] ^= 1;
        assert!(k.open(b"row 1", &bad).is_err());
        assert!(!format!("{k:?}").contains('7'));
    }

    #[test]
    fn key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bank.sqlite3.master-key");
        let a = MasterKey::load_or_create_file(&path).unwrap();
        let b = MasterKey::load_or_create_file(&path).unwrap();
        let s = a.seal(b"", b"x").unwrap();
        assert_eq!(b.open(b"", &s).unwrap().as_slice(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(MasterKey::load_or_create_file(&path), Err(KeyError::Permissions(_))));
        }
    }
}
