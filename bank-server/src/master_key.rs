//! The master key: 32 bytes kept outside the database, sealing every chain key with
//! AES-256-GCM.
//!
//! Where it comes from is chosen by the operator, exactly one of ([`KeySource`]):
//! 1. the environment variable `BANK_MASTER_KEY` (64 hex digits);
//! 2. a key file named by `--master-key FILE` (or `BANK_MASTER_KEY_FILE`), kept apart from the
//!    database (64 hex digits, mode 0600), created with fresh OS randomness when missing;
//! 3. only when asked for with `--master-key-beside-db` (demos and tests): the file
//!    `<database>.master-key` beside the database.
//!
//! There is no default: a key beside the database means that one copy of the directory (a
//! backup, a snapshot, a stolen disk image) carries both the sealed chain keys and the key
//! that opens them, which is what the master key exists to prevent.

use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

/// Environment variable that carries the master key as 64 hex digits.
pub const ENV_VAR: &str = "BANK_MASTER_KEY";
/// Environment variable naming the master key file (as `--master-key FILE`).
pub const FILE_ENV_VAR: &str = "BANK_MASTER_KEY_FILE";

/// Where the master key comes from ([the module guide](self)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `BANK_MASTER_KEY`.
    Env,
    /// A key file apart from the database, created (0600) when missing.
    File(PathBuf),
    /// `<database>.master-key` beside the database, created (0600) when missing.
    BesideDb,
}

impl KeySource {
    /// The source the operator chose: `BANK_MASTER_KEY` when set, `--master-key FILE`, or
    /// `--master-key-beside-db`. None of them, or more than one, is refused with a message
    /// that says what to pass.
    pub fn choose(file: Option<PathBuf>, beside_db: bool) -> Result<KeySource, KeyError> {
        Self::choose_from(std::env::var_os(ENV_VAR).is_some(), file, beside_db)
    }

    /// `BANK_MASTER_KEY` when set, else the file beside the database: what the library's
    /// test helpers use ([`MasterKey::load_or_create`]), never the binaries.
    pub fn env_or_beside_db() -> KeySource {
        if std::env::var_os(ENV_VAR).is_some() {
            KeySource::Env
        } else {
            KeySource::BesideDb
        }
    }

    fn choose_from(env: bool, file: Option<PathBuf>, beside_db: bool) -> Result<KeySource, KeyError> {
        match (env, file, beside_db) {
            (true, None, false) => Ok(KeySource::Env),
            (false, Some(f), false) => Ok(KeySource::File(f)),
            (false, None, true) => Ok(KeySource::BesideDb),
            (false, None, false) => Err(KeyError::NoSource),
            _ => Err(KeyError::TwoSources),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{ENV_VAR} must be 64 hex digits (32 bytes)")]
    BadEnv,
    #[error("master key file {0} must hold 64 hex digits (32 bytes)")]
    BadFile(PathBuf),
    /// Group or others can read the key file: the message gives the `chmod` to run.
    #[error(transparent)]
    Permissions(crate::private::PrivateFileError),
    #[error(
        "no master key given: set {ENV_VAR} (64 hex digits), or pass --master-key FILE (a file \
         kept apart from the database; created if missing), or --master-key-beside-db (demos \
         and tests only: one copy of the directory then carries both)"
    )]
    NoSource,
    #[error("more than one master key given ({ENV_VAR}, --master-key, --master-key-beside-db): keep one")]
    TwoSources,
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

    /// Loads the key for the database at `db_path` from `source`; a key file is created
    /// (mode 0600) when missing.
    pub fn load(source: &KeySource, db_path: &Path) -> Result<Self, KeyError> {
        match source {
            KeySource::Env => {
                let v = Zeroizing::new(std::env::var(ENV_VAR).map_err(|_| KeyError::BadEnv)?);
                parse_hex32(&v).map(MasterKey).ok_or(KeyError::BadEnv)
            }
            KeySource::File(path) => Self::load_or_create_file(path),
            KeySource::BesideDb => Self::load_or_create_file(&key_path(db_path)),
        }
    }

    /// The key as tests and embedders get it: from `BANK_MASTER_KEY` if set, else from the key
    /// file beside the database (as `--master-key-beside-db`). The binaries never use this:
    /// they make the operator choose ([`KeySource::choose`]).
    pub fn load_or_create(db_path: &Path) -> Result<Self, KeyError> {
        Self::load(&KeySource::env_or_beside_db(), db_path)
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

fn check_permissions(path: &Path) -> Result<(), KeyError> {
    crate::private::check("master key file", path).map_err(|e| match e {
        crate::private::PrivateFileError::Io { source, .. } => KeyError::Io { path: path.to_path_buf(), source },
        lax => KeyError::Permissions(lax),
    })
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
            let e = MasterKey::load_or_create_file(&path).unwrap_err();
            assert!(matches!(e, KeyError::Permissions(_)), "{e}");
            assert!(e.to_string().contains(&format!("chmod 600 {}", path.display())), "{e}");
        }
    }

    #[test]
    fn exactly_one_source_is_taken() {
        let f = || Some(PathBuf::from("k"));
        assert_eq!(KeySource::choose_from(true, None, false).unwrap(), KeySource::Env);
        assert_eq!(KeySource::choose_from(false, f(), false).unwrap(), KeySource::File("k".into()));
        assert_eq!(KeySource::choose_from(false, None, true).unwrap(), KeySource::BesideDb);
        let none = KeySource::choose_from(false, None, false).unwrap_err().to_string();
        assert!(none.contains("--master-key FILE") && none.contains("BANK_MASTER_KEY"), "{none}");
        for (env, file, beside) in [(true, f(), false), (true, None, true), (false, f(), true), (true, f(), true)] {
            assert!(matches!(KeySource::choose_from(env, file, beside), Err(KeyError::TwoSources)));
        }
    }

    #[test]
    fn a_key_file_given_by_path_is_created_there_and_nothing_beside_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db").join("bank.sqlite3");
        let file = dir.path().join("bank.key");
        let a = MasterKey::load(&KeySource::File(file.clone()), &db).unwrap();
        assert!(file.exists() && !key_path(&db).exists());
        let s = a.seal(b"", b"x").unwrap();
        let b = MasterKey::load(&KeySource::File(file), &db).unwrap();
        assert_eq!(b.open(b"", &s).unwrap().as_slice(), b"x");
    }
}
