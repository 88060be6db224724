//! `bank-tools user ...`

use anyhow::Context;
use clap::Subcommand;

use super::bank_db::DbArgs;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a customer (then `token enroll` and `account open` for them).
    Add {
        /// User name: 1-32 characters of a-z 0-9 . _ -
        name: String,
    },
}

pub fn run(cmd: UserCommand, db: &DbArgs) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add { name } => {
            let path = db.path()?;
            bank_server::ops::add_user(path, &name).with_context(|| format!("cannot add user {name:?}"))?;
            println!("added user {name} to {}", path.display());
            Ok(())
        }
    }
}
