//! `bank-tools oath ...`: OATH keys (YubiKey, Nitrokey 3, any YKOATH card) as bank tokens.

use std::io::BufRead;

use anyhow::{bail, Context};
use clap::Subcommand;
use zeroize::Zeroizing;

use super::bank_db::DbArgs;

#[derive(Subcommand)]
pub enum OathCommand {
    /// Make a key, write it as the credential "PAYSIM Bank:<user>" to the OATH key in --reader
    /// (PUT over PC/SC), and enroll it at the bank for the user, in one step. The key is never
    /// written to a file: the card and the bank's sealed copy are the only places it exists.
    Enroll {
        /// The PC/SC reader holding the key (the full name, as `reader-bridge readers` lists it).
        #[arg(long)]
        reader: String,
        /// The user who gets the token (must exist and have no active token).
        #[arg(long)]
        user: String,
        /// The token's name at the bank (default: OATH- and 8 random hex digits).
        #[arg(long)]
        serial: Option<String>,
        /// Make the credential require a touch of the key's button for every code.
        #[arg(long)]
        touch: bool,
        /// Read the OATH application's access code from standard input (one line), for a key
        /// protected with `ykman oath access change`.
        #[arg(long)]
        access_code_stdin: bool,
    },
}

pub fn run(cmd: OathCommand, db: &DbArgs) -> anyhow::Result<()> {
    match cmd {
        OathCommand::Enroll { reader, user, serial, touch, access_code_stdin } => {
            enroll(&reader, &user, serial, touch, access_code_stdin, db)
        }
    }
}

fn enroll(
    reader: &str,
    user: &str,
    serial: Option<String>,
    touch: bool,
    access_code_stdin: bool,
    db: &DbArgs,
) -> anyhow::Result<()> {
    let path = db.path()?;
    let source = db.key.source()?;
    let serial = match serial {
        Some(s) => s,
        None => {
            let mut b = [0u8; 4];
            getrandom::getrandom(&mut b).map_err(|e| anyhow::anyhow!("no randomness for the serial: {e}"))?;
            format!("OATH-{}", hex::encode_upper(b))
        }
    };
    let what = || format!("cannot enroll an OATH token for user {user:?}");
    // Everything the bank would refuse is refused before the card is written.
    bank_server::ops::check_oath_enrollment(path, &serial, user).with_context(what)?;
    let access_code = if access_code_stdin {
        let mut line = Zeroizing::new(String::with_capacity(256));
        match std::io::stdin().lock().read_line(&mut line).context("cannot read the access code from standard input")? {
            0 => bail!("standard input ended before the access code line"),
            _ => Some(Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned())),
        }
    } else {
        None
    };
    let key = tools::oath::new_key()?;
    let mut link = card_link::PcscCard::connect(reader, tools::card::CARD_WAIT)
        .with_context(|| format!("cannot open the OATH key in reader {reader:?}"))?;
    let cred = tools::oath::Credential { user, key: &key, touch };
    let code = access_code.as_deref().map(String::as_str);
    let name = tools::oath::put_credential(&mut link, &cred, code).with_context(what)?;
    if let Err(e) = bank_server::ops::enroll_oath_token_with_key(path, &source, &serial, &key, user) {
        // The bank refused after all (a race with another operator): take the credential back.
        let undo = match tools::oath::delete_credential(&mut link, &name, code) {
            Ok(()) => "the credential was deleted from the key again".to_owned(),
            Err(d) => format!("the credential {name:?} is still on the key ({d}); delete it with ykman"),
        };
        return Err(anyhow::Error::new(e).context(format!("{}; {undo}", what())));
    }
    println!(
        "enrolled OATH token {serial} for user {user}: credential {name:?} (TOTP/HMAC-SHA256, 8 digits{}) on the key in {reader:?}",
        if touch { ", touch required" } else { "" }
    );
    Ok(())
}
