//! The `--db` flag every bank command shares: global, so it goes before or after the command
//! (`bank-tools --db X account list` and `bank-tools account list --db X`).

use std::path::{Path, PathBuf};

use clap::Args;

#[derive(Args)]
pub struct DbArgs {
    /// The bank's SQLite database, the one `bank-server serve --db` uses. Commands work while
    /// the server runs.
    #[arg(long, global = true, value_name = "PATH", env = "BANK_DB", default_value = "bank.sqlite3")]
    pub db: PathBuf,
    /// Create the database if it does not exist yet (as the server would). Without it a
    /// missing database is refused, so a mistyped path cannot start a second, empty bank.
    #[arg(long, global = true)]
    pub create_db: bool,
    #[command(flatten)]
    pub key: KeyArgs,
}

impl DbArgs {
    /// The database path, checked; also tells the operator functions where the master key is
    /// (a command that writes chains its audit rows under it).
    pub fn path(&self) -> anyhow::Result<&Path> {
        tools::bank::check_db(&self.db, self.create_db)?;
        bank_server::ops::use_key_source(self.key.source_choice());
        Ok(&self.db)
    }
}

/// Where the master key is, for every command on the database: those that write chain their
/// audit rows under it, `token enroll` seals with it, `audit verify` checks with it. The same
/// choice as `bank-server serve`: exactly one of BANK_MASTER_KEY, --master-key FILE or
/// --master-key-beside-db (listings run without one).
#[derive(Args)]
pub struct KeyArgs {
    /// The master key file (64 hex digits, mode 0600; created when missing), kept apart from
    /// the database. Or set BANK_MASTER_KEY (64 hex digits).
    #[arg(long, global = true, value_name = "FILE", env = "BANK_MASTER_KEY_FILE")]
    pub master_key: Option<PathBuf>,
    /// The key is in the file PATH.master-key beside the database (demos and tests only).
    #[arg(long, global = true)]
    pub master_key_beside_db: bool,
}

impl KeyArgs {
    /// The chosen source; none or more than one is refused with what to pass.
    pub fn source(&self) -> anyhow::Result<bank_server::master_key::KeySource> {
        Ok(self.source_choice()?)
    }

    fn source_choice(&self) -> Result<bank_server::master_key::KeySource, bank_server::master_key::KeyError> {
        bank_server::master_key::KeySource::choose(self.master_key.clone(), self.master_key_beside_db)
    }
}
