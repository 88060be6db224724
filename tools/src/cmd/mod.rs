//! One module per command group; each has a clap `...Command` enum and a `run`.

pub mod account;
pub mod audit;
pub mod bank_db;
pub mod batch;
pub mod card;
pub mod oath;
pub mod pskc;
pub mod tls;
pub mod token;
pub mod user;
