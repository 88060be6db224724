//! `bank-tools token export` and `token import`: a token's secret in a PSKC file (RFC 6030)
//! encrypted under a pre-shared key, for another bank or a token server (privacyIDEA). The
//! file format is `tools::pskc`; `docs/tools.md` says what a holder of the file can do.

use std::path::Path;

use anyhow::{bail, Context};

use super::bank_db::DbArgs;
use tools::pskc::{self, Psk};

/// The largest PSKC file `token import` reads (a token takes about 2 KiB).
const MAX_PSKC_FILE: u64 = 1024 * 1024;

fn read_psk(path: &Path) -> anyhow::Result<Psk> {
    let what = || format!("cannot use the pre-shared key file {}", path.display());
    // Like every secret file here: refused when other users can read it.
    let raw = tools::secret_file::read_private(path).with_context(what)?;
    Psk::from_file_contents(&raw).map_err(|e| anyhow::anyhow!("{}", e.problem)).with_context(what)
}

/// Writes `user`'s active token to `out` (mode 0600, never overwritten) under the PSK in
/// `psk_file`, named `psk_name` in the file (default: the PSK file's name).
pub fn export(user: &str, out: &Path, psk_file: &Path, psk_name: Option<&str>, db: &DbArgs) -> anyhow::Result<()> {
    let what = || format!("cannot export the token of user {user:?} to {}", out.display());
    // Refused before anything is opened or audited.
    tools::secret_file::ensure_absent(out).with_context(what)?;
    let psk = read_psk(psk_file).with_context(what)?;
    let name = match psk_name {
        Some(n) => n.to_owned(),
        None => psk_file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "psk".to_owned()),
    };
    let path = db.path()?;
    let source = db.key.source()?;
    let token = bank_server::ops::export_token_with_key(path, &source, user).with_context(what)?;
    let text = pskc::write(&psk, &name, &[pskc::package_for(&token)])
        .map_err(|e| anyhow::anyhow!("no randomness for the IVs and the MAC key: {e}"))
        .with_context(what)?;
    tools::secret_file::write_new(out, text.as_bytes()).with_context(what)?;
    let kind = match &token.secret {
        bank_server::auth::TokenSecret::Paysim { next_counter, .. } => {
            format!("PAYSIM card, its chain key at counter {next_counter}")
        }
        bank_server::auth::TokenSecret::Oath { .. } => "OATH credential, TOTP/HMAC-SHA256, 8 digits".to_owned(),
    };
    println!(
        "exported token {} of user {user} ({kind}) to {} under the pre-shared key {name:?}; whoever holds this file and the key holds the token",
        token.serial,
        out.display()
    );
    Ok(())
}

/// Enrolls every token of the PSKC file `file` (each value's MAC checked before it is
/// decrypted), for `user` if given (one token only) or each key's `UserId`.
pub fn import(file: &Path, psk_file: &Path, user: Option<&str>, db: &DbArgs) -> anyhow::Result<()> {
    let what = || format!("cannot import the tokens of {}", file.display());
    let psk = read_psk(psk_file).with_context(what)?;
    let meta = std::fs::metadata(file).with_context(what)?;
    if meta.len() > MAX_PSKC_FILE {
        bail!("{}: larger than {MAX_PSKC_FILE} bytes, too large to be a PSKC file of tokens", what());
    }
    let bytes = zeroize::Zeroizing::new(std::fs::read(file).with_context(what)?);
    let packages = pskc::read(&bytes, &psk).with_context(what)?;
    if user.is_some() && packages.len() > 1 {
        bail!(
            "{}: --user names one user, but the file holds {} tokens; leave --user out to use each key's UserId",
            what(),
            packages.len()
        );
    }
    let tokens = packages
        .iter()
        .enumerate()
        .map(|(i, p)| pskc::import_token(p, i + 1, user))
        .collect::<Result<Vec<_>, _>>()
        .with_context(what)?;
    let path = db.path()?;
    let source = db.key.source()?;
    bank_server::ops::import_tokens_with_key(path, &source, &tokens).with_context(what)?;
    for t in &tokens {
        let kind = match &t.secret {
            bank_server::auth::TokenSecret::Paysim { next_counter, tx_version, .. } => {
                format!("PAYSIM card, next counter {next_counter}, transaction context version {}", tx_version.number())
            }
            bank_server::auth::TokenSecret::Oath { .. } => "OATH credential".to_owned(),
        };
        println!("imported token {} for user {} ({kind})", t.serial, t.user);
    }
    Ok(())
}
