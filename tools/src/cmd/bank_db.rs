//! The `--db` flag every bank command shares.

use std::path::{Path, PathBuf};

use clap::Args;

#[derive(Args)]
pub struct DbArgs {
    /// The bank's SQLite database, the one `bank-server serve --db` uses. Commands work while
    /// the server runs. The chain-key master key comes from BANK_MASTER_KEY or the file PATH.master-key.
    #[arg(long, value_name = "PATH", env = "BANK_DB", default_value = "bank.sqlite3")]
    pub db: PathBuf,
    /// Create the database if it does not exist yet (as the server would). Without it a
    /// missing database is refused, so a mistyped path cannot start a second, empty bank.
    #[arg(long)]
    pub create_db: bool,
}

impl DbArgs {
    /// The database path, checked.
    pub fn path(&self) -> anyhow::Result<&Path> {
        tools::bank::check_db(&self.db, self.create_db)?;
        Ok(&self.db)
    }
}
