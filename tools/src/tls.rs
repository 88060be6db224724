//! `bank-tools tls init`: a local certificate authority and a server certificate signed by it,
//! for the demo, the tests and a bank on a private network.
//!
//! Three files in one directory:
//!
//! - `ca.pem`: the CA's certificate (mode 0644). Clients trust the bank through it: the
//!   bridge's `--ca`, curl's `--cacert`, a browser's certificate settings.
//! - `server.pem`: the server's certificate (0644), for the given hosts (IP addresses and DNS
//!   names as subject alternative names), signed by the CA.
//! - `server-key.pem`: the server's private key (PKCS#8 PEM, mode 0600), for `bank-server
//!   serve --tls-key`.
//!
//! The CA's private key is not kept: it exists in memory only while the server certificate is
//! signed. A CA someone has added to a trust store is a key to every name; with its key gone
//! it can vouch for the one certificate made here and nothing else, and no file of the demo
//! directory can be used to mint another. A new server certificate means a new CA (`--force`),
//! which clients then trust again.
//!
//! Keys are ECDSA P-256 (ring, the workspace's one crypto provider). The CA may sign end-entity
//! certificates only (path length 0); the server certificate is for TLS servers only.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::secret_file::{self, SecretFileError};

/// The hosts a server certificate is for when none are given.
pub const DEFAULT_HOSTS: [&str; 3] = ["127.0.0.1", "::1", "localhost"];
/// How long the CA's certificate is valid.
const CA_DAYS: i64 = 10 * 365;
/// How long the server's certificate is valid (the most browsers accept).
const SERVER_DAYS: i64 = 397;

/// The files [`init`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// The file names in `dir`.
    pub fn in_dir(dir: &Path) -> TlsFiles {
        TlsFiles { ca: dir.join("ca.pem"), cert: dir.join("server.pem"), key: dir.join("server-key.pem") }
    }

    fn all(&self) -> [&Path; 3] {
        [&self.ca, &self.cert, &self.key]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsInitError {
    #[error("{} already exists; pass --force to replace the CA and the server certificate (clients must then trust the new ca.pem)", .0.display())]
    Exists(PathBuf),
    #[error("--host {0:?} is neither an IP address nor a DNS name (letters, digits, '-' and '.')")]
    BadHost(String),
    #[error("cannot make the certificates: {0}")]
    Cert(#[from] rcgen::Error),
    #[error(transparent)]
    Secret(#[from] SecretFileError),
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// Checks a host name or IP address for a certificate's subject alternative names.
fn check_host(host: &str) -> Result<(), TlsInitError> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.len() <= 253 && host.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(TlsInitError::BadHost(host.to_owned()))
    }
}

/// Validity from an hour ago (clocks differ a little) for `days`.
fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

/// Makes the CA and the server certificate for `hosts` (at least one) in `dir` (created when
/// missing). Refuses, before writing anything, when one of the files exists, unless `force`.
pub fn init(dir: &Path, hosts: &[String], force: bool) -> Result<TlsFiles, TlsInitError> {
    for h in hosts {
        check_host(h)?;
    }
    let hosts: Vec<String> =
        if hosts.is_empty() { DEFAULT_HOSTS.iter().map(|h| (*h).to_owned()).collect() } else { hosts.to_vec() };
    let files = TlsFiles::in_dir(dir);
    if !force {
        if let Some(existing) = files.all().into_iter().find(|p| p.exists()) {
            return Err(TlsInitError::Exists(existing.to_owned()));
        }
    }

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "PAYSIM");
    dn.push(DnType::CommonName, format!("PAYSIM local CA for {}", hosts[0]));
    ca_params.distinguished_name = dn;
    validity(&mut ca_params, CA_DAYS);
    // The CA's key lives only in this function.
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let mut params = CertificateParams::new(hosts.clone())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, hosts[0].clone());
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, SERVER_DAYS);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;

    std::fs::create_dir_all(dir).map_err(|source| TlsInitError::Io { path: dir.to_owned(), source })?;
    if force {
        for p in files.all() {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(TlsInitError::Io { path: p.to_owned(), source }),
            }
        }
    }
    // The key first: it is the one that must be new and private.
    secret_file::write_new(&files.key, key.serialize_pem().as_bytes())?;
    write_public(&files.cert, &cert.pem())?;
    write_public(&files.ca, &ca.pem())?;
    Ok(files)
}

/// A certificate file, mode 0644 whatever the umask, never over an existing file.
fn write_public(path: &Path, pem: &str) -> Result<(), TlsInitError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |source| TlsInitError::Io { path: path.to_owned(), source };
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            TlsInitError::Exists(path.to_owned())
        } else {
            io(e)
        }
    })?;
    f.set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(io)?;
    f.write_all(pem.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn hosts_are_ip_addresses_or_dns_names() {
        for ok in ["127.0.0.1", "::1", "localhost", "bank.example", "a-1.b.c"] {
            check_host(ok).unwrap();
        }
        for bad in ["", "bank example", "-x.y", "x..y", "*.example", "b@nk", "https://bank"] {
            assert!(matches!(check_host(bad), Err(TlsInitError::BadHost(_))), "{bad:?}");
        }
    }

    #[test]
    fn init_writes_three_files_the_key_private_and_never_overwrites_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let files = init(&tls, &[], false).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&files.ca), mode(&files.cert), mode(&files.key)), (0o644, 0o644, 0o600));
        assert!(std::fs::read_to_string(&files.key).unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(std::fs::read_dir(&tls).unwrap().count(), 3, "no CA key is kept");
        let first = std::fs::read(&files.ca).unwrap();
        let e = init(&tls, &[], false).unwrap_err();
        assert!(matches!(e, TlsInitError::Exists(_)) && e.to_string().contains("--force"), "{e}");
        assert_eq!(std::fs::read(&files.ca).unwrap(), first, "nothing was replaced");
        init(&tls, &["bank.example".to_owned()], true).unwrap();
        assert_ne!(std::fs::read(&files.ca).unwrap(), first, "--force makes a new CA");
        assert_eq!(mode(&files.key), 0o600);
    }
}
