//! `bank-tools token ...`

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::bank_db::DbArgs;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Enroll a personalized card for a user, from the token file `card personalize --out`
    /// wrote (the seed is sealed under the bank's master key; the file can then be destroyed).
    Enroll {
        /// The user who gets the token (must exist: `user add`).
        #[arg(long)]
        user: String,
        /// The personalization output file (paysim-token-v1 JSON, mode 0600).
        #[arg(long, value_name = "FILE")]
        token_file: PathBuf,
    },
    /// List every token: serial, user, status, kind (paysim or oath), next counter, failures,
    /// lock.
    List {
        /// Print JSON (one array) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Clear a token's lock and failure count (after the owner has been identified).
    Unlock {
        /// Card serial, e.g. PSIM-00000001.
        serial: String,
    },
    /// Export a user's active token to a PSKC file (RFC 6030) encrypted under a pre-shared
    /// key, for another bank or a token server. Whoever holds the file and the key holds the
    /// token (docs/tools.md). The export is audited.
    Export {
        /// The user whose active token is exported.
        #[arg(long)]
        user: String,
        /// The PSKC file to write (mode 0600; never overwritten).
        #[arg(long, value_name = "FILE")]
        pskc_out: PathBuf,
        /// The pre-shared key: 32 hex digits or 16 raw bytes (AES-128), mode 0600.
        #[arg(long, value_name = "FILE")]
        psk_file: PathBuf,
        /// The key's name written in the file (EncryptionKey/KeyName; default: the file name).
        #[arg(long, value_name = "NAME")]
        psk_name: Option<String>,
    },
    /// Import the tokens of a PSKC file (RFC 6030, pre-shared key): PAYSIM cards and OATH
    /// credentials (TOTP, HMAC-SHA256, 8 digits). Every MAC is checked before a value is
    /// used; the tokens are enrolled all together or not at all.
    Import {
        /// The PSKC file.
        #[arg(long, value_name = "FILE")]
        pskc: PathBuf,
        /// The pre-shared key it was encrypted under (32 hex digits or 16 raw bytes), mode 0600.
        #[arg(long, value_name = "FILE")]
        psk_file: PathBuf,
        /// The user who gets the token (default: the key's UserId in the file). Only for a
        /// file of one token; the user must exist and have no active token.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token for good (lost or stolen card): it never authenticates again.
    Revoke {
        /// Card serial, e.g. PSIM-00000001.
        serial: String,
    },
}

pub fn run(cmd: TokenCommand, db: &DbArgs) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Enroll { user, token_file } => enroll(&user, &token_file, db),
        TokenCommand::List { json } => list(json, db),
        TokenCommand::Export { user, pskc_out, psk_file, psk_name } => {
            super::pskc::export(&user, &pskc_out, &psk_file, psk_name.as_deref(), db)
        }
        TokenCommand::Import { pskc, psk_file, user } => super::pskc::import(&pskc, &psk_file, user.as_deref(), db),
        TokenCommand::Unlock { serial } => {
            check_serial(&serial)?;
            let path = db.path()?;
            bank_server::ops::unlock_token(path, &serial).with_context(|| format!("cannot unlock token {serial:?}"))?;
            println!("unlocked token {serial}: failure count cleared, lock lifted");
            Ok(())
        }
        TokenCommand::Revoke { serial } => {
            check_serial(&serial)?;
            let path = db.path()?;
            bank_server::ops::revoke_token(path, &serial).with_context(|| format!("cannot revoke token {serial:?}"))?;
            println!("revoked token {serial}: it will never authenticate again");
            Ok(())
        }
    }
}

fn check_serial(serial: &str) -> anyhow::Result<()> {
    if paysim_wire::CardSerial::is_valid(serial) {
        Ok(())
    } else {
        anyhow::bail!("{serial:?} is not a card serial (1-16 characters of A-Z 0-9 -)")
    }
}

fn enroll(user: &str, file: &std::path::Path, db: &DbArgs) -> anyhow::Result<()> {
    let path = db.path()?;
    let key = db.key.source()?;
    let what = || format!("cannot enroll the token in {} for user {user:?}", file.display());
    // The file holds the seed: refuse one other users can read, as every secret file here.
    let token = tools::card::read_token_file(file).with_context(what)?;
    bank_server::ops::enroll_token_with_key(
        path,
        &key,
        token.serial.as_str(),
        &token.seed,
        token.counter,
        token.tx_version,
        user,
    )
    .with_context(what)?;
    println!(
        "enrolled token {} for user {user} (next counter {}, transaction context version {})",
        token.serial,
        token.counter,
        token.tx_version.number()
    );
    if token.tx_version == paysim_otp::TxVersion::V1 {
        println!(
            "note: this card signs neither the source account nor the payee's name; it can log in, \
             but the bank refuses its transfers (card_too_old). Issue the customer a current card."
        );
    }
    Ok(())
}

fn list(json: bool, db: &DbArgs) -> anyhow::Result<()> {
    let path = db.path()?;
    let tokens = bank_server::ops::list_tokens(path).context("cannot list the tokens")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&tokens)?);
        return Ok(());
    }
    if tokens.is_empty() {
        println!("no tokens enrolled in {}", path.display());
        return Ok(());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let rows: Vec<[String; 7]> = tokens
        .iter()
        .map(|t| {
            [
                t.serial.to_string(),
                t.user.to_string(),
                t.status.as_str().to_owned(),
                t.kind.as_str().to_owned(),
                t.next_counter.to_string(),
                t.failures.to_string(),
                match t.locked_until {
                    Some(until) => format!("locked, {} s left", (until - now).max(0)),
                    None => "-".to_owned(),
                },
            ]
        })
        .collect();
    let head = ["SERIAL", "USER", "STATUS", "KIND", "NEXT", "FAILURES", "LOCK"];
    let mut width = head.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: [&str; 7]| {
        let parts: Vec<String> = cells.iter().zip(width).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(head);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6]]);
    }
    Ok(())
}
