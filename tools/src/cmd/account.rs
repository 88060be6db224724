//! `bank-tools account ...`

use anyhow::{anyhow, bail, Context};
use clap::Subcommand;
use paysim_wire::Currency;

use tools::bank::{self, show_amount};

use super::bank_db::DbArgs;

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Open an account for a user, in one currency.
    Open {
        /// The owner (must exist: `user add`).
        #[arg(long)]
        user: String,
        /// Account number: 1-34 characters of A-Z 0-9 -
        #[arg(long)]
        number: String,
        /// ISO 4217 code of a currency the bank keeps: EUR, USD, GBP, CHF, JPY.
        #[arg(long)]
        currency: String,
        /// The account holder's name (1-70 characters), which verification of payee
        /// compares payers' payee names with. Without it, payers are told the name cannot be
        /// checked ("unavailable") and must confirm a second time.
        #[arg(long)]
        holder: Option<String>,
    },
    /// Put money into an account from the bank's funding account (audited; the only way the
    /// customers' total grows).
    Fund {
        /// The account number.
        #[arg(long)]
        account: String,
        /// Amount in major units, e.g. 12.34 (EUR) or 500 (JPY): exact, at most the
        /// currency's decimals, more than zero.
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// The account's currency, stated as a check (EUR, USD, GBP, CHF, JPY).
        #[arg(long)]
        currency: String,
        /// Why: kept in the journal and the audit log.
        #[arg(long, default_value = "operator funding")]
        memo: String,
    },
    /// List a user's accounts and balances.
    List {
        /// The owner.
        #[arg(long)]
        user: String,
        /// Print JSON (one array, fields in docs/tools.md) instead of lines.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: AccountCommand, db: &DbArgs) -> anyhow::Result<()> {
    match cmd {
        AccountCommand::Open { user, number, currency, holder } => {
            let currency = Currency::parse_kept(&currency)?;
            if let Some(h) = &holder {
                if !paysim_wire::PayeeName::is_valid(h) {
                    bail!("--holder must be {} (the account holder's name)", paysim_wire::PayeeName::RULE);
                }
            }
            let path = db.path()?;
            bank_server::ops::open_account(path, &user, &number, currency.as_str(), holder.as_deref())
                .with_context(|| format!("cannot open account {number:?} for user {user:?}"))?;
            match holder {
                Some(h) => {
                    println!("opened account {number} ({currency}) for user {user}, in the name of {}", h.trim())
                }
                None => println!(
                    "opened account {number} ({currency}) for user {user}, without a holder's name \
                     (verification of payee will answer \"unavailable\")"
                ),
            }
            Ok(())
        }
        AccountCommand::Fund { account, amount, currency, memo } => {
            let currency = Currency::parse_kept(&currency)?;
            let minor = bank::parse_amount(&amount, currency).map_err(|e| anyhow!("amount {amount:?} {e}"))?;
            let path = db.path()?;
            let what = || format!("cannot fund account {account:?}");
            match bank::account_currency(path, &account).with_context(what)? {
                None => bail!("{}: unknown account {account:?}", what()),
                Some(kept) if kept != currency => {
                    bail!("{}: it is kept in {kept}, not {currency}; nothing was moved", what())
                }
                Some(_) => {}
            }
            let balance = bank_server::ops::fund(path, &account, minor, &memo).with_context(what)?;
            println!(
                "funded account {account} with {}; balance now {}",
                show_amount(i64::try_from(minor).unwrap_or(i64::MAX), currency),
                show_amount(balance, currency)
            );
            Ok(())
        }
        AccountCommand::List { user, json } => {
            let path = db.path()?;
            let accounts = bank_server::ops::accounts(path, &user)
                .with_context(|| format!("cannot list the accounts of {user:?}"))?;
            if json {
                let list: Vec<AccountJson> = accounts.iter().map(AccountJson::from).collect();
                println!("{}", serde_json::to_string(&list)?);
                return Ok(());
            }
            if accounts.is_empty() {
                println!("user {user} has no accounts");
            }
            for a in accounts {
                println!("{}  {}", a.number, show_amount(a.balance_minor, a.currency));
            }
            Ok(())
        }
    }
}

/// One account of `account list --json`.
#[derive(serde::Serialize)]
struct AccountJson {
    number: String,
    currency: String,
    /// The balance in minor units, exact.
    balance_minor: i64,
    /// The balance with the currency's decimals, e.g. "12.34".
    balance: String,
}

impl From<&paysim_wire::api::Account> for AccountJson {
    fn from(a: &paysim_wire::api::Account) -> Self {
        AccountJson {
            number: a.number.to_string(),
            currency: a.currency.to_string(),
            balance_minor: a.balance_minor,
            balance: a.currency.format_minor(a.balance_minor),
        }
    }
}
