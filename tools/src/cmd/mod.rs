//! One module per command group; each has a clap `...Command` enum and a `run`.

pub mod card;
