//! The bridge's one error type and the exit code each failure class maps to.

use std::path::PathBuf;

/// Everything the bridge can fail with, typed so that a caller (the CLI, a test) can act on
/// the class: ask for another PIN, tell the person to insert the card, retry later.
///
/// No variant carries a PIN, PUK, OTP or key: their `Display` texts are safe to print and log.
/// A variant with a cause keeps it as `source()` and does not repeat it in its own text, so
/// the CLI's chain (`error: outer: cause`) names each cause once.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The PC/SC service (pcscd) is not running or not reachable.
    #[error("the PC/SC service is not available; start pcscd (e.g. `systemctl start pcscd`)")]
    NoService(#[source] pcsc::Error),
    /// PC/SC works but lists no reader at all.
    #[error("no smart-card reader found; plug in a reader (or start vpcd) and retry")]
    NoReader,
    /// `--reader NAME` names a reader that PC/SC does not list.
    #[error("no reader named {name:?}; readers present: {}", list(.available))]
    UnknownReader { name: String, available: Vec<String> },
    /// More than one reader holds a PAYSIM card and none was chosen.
    #[error("several readers hold a PAYSIM card: {}; choose one with --reader NAME", list(.readers))]
    SeveralCards { readers: Vec<String> },
    /// No PAYSIM card appeared within the wait time.
    #[error("no PAYSIM card found within {seconds} s; insert the card and retry (or raise --wait)")]
    NoCard { seconds: u64 },
    /// Another program held the card for the whole wait (the bridge connects exclusively).
    #[error("the card in {reader:?} is in use by another program (waited {seconds} s); close that program and retry")]
    CardBusy { reader: String, seconds: u64 },
    /// The card was removed, reset or lost power while the bridge was using it.
    #[error("the card was removed or reset during the operation; insert it again and retry")]
    CardRemoved,
    /// The card in the chosen reader does not answer SELECT for the PAYSIM applet.
    #[error("the card in {reader:?} does not hold the PAYSIM applet")]
    NoApplet { reader: String },
    /// VERIFY failed; the card has this many tries left.
    #[error("wrong PIN: {tries_left} {} left before the PIN blocks", plural(*.tries_left, "try", "tries"))]
    WrongPin { tries_left: u8 },
    /// The PIN try counter is at zero.
    #[error("the PIN is blocked; unblock it with `reader-bridge unblock` and your PUK")]
    PinBlocked,
    /// RESET RETRY COUNTER failed; the PUK has this many tries left.
    #[error("wrong PUK: {tries_left} {} left before the PUK blocks", plural(*.tries_left, "try", "tries"))]
    WrongPuk { tries_left: u8 },
    /// The PUK try counter is at zero: only the bank can help now.
    #[error("the PUK is blocked; the card cannot be unblocked any more, contact the bank")]
    PukBlocked,
    /// The card has no seed yet.
    #[error("the card is not personalized yet; ask the bank to personalize it")]
    NotPersonalized,
    /// The OATH key (YKOATH application) refused `command`, or answered something malformed.
    #[error("the OATH key refused {command}")]
    Oath {
        command: &'static str,
        #[source]
        source: card_applet::host::oath::OathError,
    },
    /// The OATH key holds no bank credential to use, or several and none is this user's.
    #[error("{0}")]
    NoOathCredential(String),
    /// The card refused `command` otherwise, or answered something malformed.
    #[error("the card refused {command}")]
    Card {
        command: &'static str,
        #[source]
        source: card_applet::host::CardError,
    },
    /// Any other PC/SC failure.
    #[error("PC/SC error")]
    Pcsc(#[source] pcsc::Error),

    /// The bank did not answer (connection refused, timeout, connection dropped).
    #[error("the bank at {url} is unreachable; check the address (`reader-bridge status` shows it) and your network, then retry")]
    BankUnreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The connection failed after the confirmation of transfer `transfer_id` was sent (a
    /// timeout waiting for the answer, a reset or a close while reading it): the bank may or
    /// may not have executed it, and only the bank can say. Never used when the request is
    /// known not to have left (connection refused: [`Error::BankUnreachable`]) or when the
    /// bank answered.
    #[error(
        "the outcome of transfer {transfer_id} is unknown: the connection to the bank at {url} failed after the \
         confirmation was sent, so the bank may have executed it or not; run the same transfer command again to \
         find out (it reuses this transfer id and cannot pay twice)"
    )]
    OutcomeUnknown {
        url: String,
        transfer_id: paysim_wire::TransferId,
        #[source]
        source: reqwest::Error,
    },
    /// `login --user NAME` for a name that has not logged in from this bridge while others
    /// have: likely a typo. Refused before the card spends a code on it (the bank would take
    /// any name and refuse the code, by design).
    #[error(
        "{user:?} has never logged in from this bridge (users here: {}); nothing was sent to the card. \
         Check the name, or add --new-user if {user:?} is right",
        list_names(.known)
    )]
    UnknownUser { user: paysim_wire::UserName, known: Vec<paysim_wire::UserName> },
    /// The bank refused the code. The bank never says why (by design: wrong code, expired or
    /// used challenge, replayed counter, locked or revoked token all look the same).
    #[error("the bank refused the one-time code (wrong or expired code, or the token is locked); try again with a fresh code")]
    OtpRejected,
    /// No session stored, or the bank says the session ended.
    #[error("not logged in (or the session expired); run `reader-bridge login --user NAME` first")]
    NotLoggedIn,
    /// The paying account does not hold enough money.
    #[error("insufficient funds: the account does not hold enough money for this transfer")]
    InsufficientFunds,
    /// The bank refused the transfer for a reason that retrying will not fix.
    #[error("the bank refused the transfer: {message} ({code})")]
    TransferRefused { code: paysim_wire::api::ErrorCode, message: String },
    /// Any other refusal with a stable error code from the bank.
    #[error("the bank answered {status}: {message} ({code})")]
    Bank { status: u16, code: paysim_wire::api::ErrorCode, message: String },
    /// The bank's answer does not have the documented shape.
    #[error("the bank's answer is malformed: {0}")]
    BadBankResponse(String),
    /// The TLS connection to the bank failed: its certificate is not trusted, not for this
    /// name, expired, or the other side does not speak TLS. The library's own chain (rustls,
    /// hyper) is logged with `-v`, not printed: it says nothing a person can act on.
    #[error("{}", tls_text(.url, .problem))]
    BankTls { url: String, problem: TlsProblem },
    /// `http://` to a host that is not this computer: codes, session tokens and transfer
    /// details would cross the network in the clear.
    #[error(
        "refusing plain http to {host}: http:// is only for a bank on this computer (127.0.0.1, ::1, localhost); \
         use https://{host}{port} (add --ca FILE if the bank uses a private CA)"
    )]
    PlainHttp { host: String, port: String },

    /// No bank pinned yet: every command that talks to the bank or signs needs `setup` first.
    #[error(
        "this bridge is not set up for a bank yet; run `reader-bridge setup --server https://YOUR-BANK` once \
         (add --ca FILE if the bank uses a private CA); nothing was signed or sent"
    )]
    NotSetUp,
    /// `--server` (or `PAYSIM_SERVER`) names another bank than the pinned one. The card only
    /// ever signs for the pinned bank, whatever a page or a script says.
    #[error(
        "this bridge is set up for the bank at {pinned}, but --server (or PAYSIM_SERVER) says {given}; \
         nothing was signed or sent. Leave --server out to use {pinned}; to change banks on purpose, \
         run `reader-bridge setup --server {given} --replace`"
    )]
    OtherBank { pinned: String, given: String },
    /// `--ca` names another CA than the one pinned with the bank.
    #[error(
        "this bridge is set up for the bank at {pinned} trusting {pinned_ca}, but --ca (or PAYSIM_CA) gives {given}; \
         nothing was signed or sent. Leave --ca out; to change what the bridge trusts on purpose, \
         run `reader-bridge setup --server {pinned} --ca FILE --replace`"
    )]
    OtherCa { pinned: String, pinned_ca: String, given: String },
    /// `setup` for another bank while one is pinned, without `--replace`.
    #[error(
        "this bridge is already set up for the bank at {pinned}{}; nothing was changed. To set it up for {given} \
         instead, run the same command with --replace (the session for the old bank is forgotten)",
        if *.ca_differs { " (trusting another CA)" } else { "" }
    )]
    AlreadySetUp { pinned: String, given: String, ca_differs: bool },
    /// A `--ca` file that holds no usable certificate.
    #[error("cannot use the CA file {path}: {reason}")]
    BadCa { path: PathBuf, reason: String },
    /// A PIN, PUK or OTP on the command line without `--insecure-secret-args`.
    #[error(
        "{flag} puts the {what} on the command line, where other users and the shell history can read it; \
         leave it out and type the {what} at the prompt (no echo), or pipe it with --pin-stdin \
         (or add --insecure-secret-args if you accept the exposure)"
    )]
    SecretOnCommandLine { flag: &'static str, what: &'static str },

    /// Input the person typed is not acceptable (amount, currency, PIN format, challenge...).
    #[error("{0}")]
    BadInput(String),
    /// The person declined the confirmation.
    #[error("cancelled: nothing was signed or sent")]
    Cancelled,
    /// Reading or writing the state directory failed.
    #[error("another transfer is running from the state directory {path}; let it finish, then run this command again")]
    TransferBusy { path: PathBuf },

    #[error("cannot use the state file {path}")]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading from the terminal failed.
    #[error("cannot read from the terminal (scripts: use --pin-stdin)")]
    Terminal(#[source] std::io::Error),
}

/// What went wrong in the TLS handshake with the bank, in the terms a person acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsProblem {
    /// The certificate chain does not lead to a trusted CA.
    Untrusted,
    /// The certificate is for another name than the host in the bank's address.
    WrongName,
    /// The certificate has expired or is not valid yet.
    Expired,
    /// The bank answered something that is not TLS (plain http on an https address?).
    NotTls,
    /// Any other TLS failure (revoked, bad signature, unsupported...); `-v` shows the detail.
    Other,
}

fn tls_text(url: &str, problem: &TlsProblem) -> String {
    match problem {
        TlsProblem::Untrusted => format!(
            "the bank's certificate is not trusted: pass --ca FILE if the bank uses a private CA \
             (`reader-bridge setup --server {url} --ca FILE --replace`); nothing was sent"
        ),
        TlsProblem::WrongName => format!(
            "the bank's certificate is not valid for the name in {url}: check the address (a look-alike \
             or a misconfigured bank); nothing was sent"
        ),
        TlsProblem::Expired => format!(
            "the certificate of the bank at {url} has expired or is not valid yet: check this computer's clock, \
             or tell the bank; nothing was sent"
        ),
        TlsProblem::NotTls => format!(
            "the bank at {url} does not answer in TLS (is it serving plain http on this port?); nothing was sent"
        ),
        TlsProblem::Other => {
            format!("the TLS connection to the bank at {url} failed (run with -v for the detail); nothing was sent")
        }
    }
}

/// Result with the bridge's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>().join(", ")
    }
}

fn list_names(names: &[paysim_wire::UserName]) -> String {
    names.iter().map(paysim_wire::UserName::as_str).collect::<Vec<_>>().join(", ")
}

fn plural(n: u8, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Process exit codes, one per failure class. `docs/bridge.md` lists them; scripts may rely
/// on them.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Unexpected failure (malformed answer from the bank, other PC/SC error).
    pub const OTHER: u8 = 1;
    /// Bad command line or bad input (clap uses 2 for usage errors too).
    pub const USAGE: u8 = 2;
    /// The person declined the confirmation.
    pub const CANCELLED: u8 = 3;
    /// No PC/SC service, no reader, unknown reader.
    pub const NO_READER: u8 = 10;
    /// No PAYSIM card (none inserted within the wait, or the card lacks the applet).
    pub const NO_CARD: u8 = 11;
    /// The card was removed or reset mid-operation.
    pub const CARD_REMOVED: u8 = 12;
    /// Several readers hold a PAYSIM card: choose with --reader.
    pub const SEVERAL_CARDS: u8 = 13;
    /// Another program holds the card (the bridge needs it to itself).
    pub const CARD_BUSY: u8 = 14;
    /// Wrong PIN (or PUK); tries remain.
    pub const WRONG_PIN: u8 = 20;
    /// PIN (or PUK) blocked.
    pub const PIN_BLOCKED: u8 = 21;
    /// The card refused otherwise (not personalized, unexpected status word, malformed answer).
    pub const CARD_ERROR: u8 = 22;
    /// The bank is unreachable (network error, timeout).
    pub const BANK_UNREACHABLE: u8 = 30;
    /// The bank rejected the OTP.
    pub const OTP_REJECTED: u8 = 31;
    /// Insufficient funds.
    pub const INSUFFICIENT_FUNDS: u8 = 32;
    /// Not logged in or session expired.
    pub const NOT_LOGGED_IN: u8 = 33;
    /// The bank refused the transfer (unknown account, currency mismatch, id conflict...).
    pub const REFUSED: u8 = 34;
    /// The bank failed (5xx) or answered something unexpected.
    pub const BANK_ERROR: u8 = 35;
    /// The TLS connection to the bank failed (certificate not trusted, wrong name, expired...).
    pub const BANK_TLS: u8 = 36;
    /// A transfer's confirmation was sent and no answer came back (timeout, connection reset):
    /// the bank may or may not have executed it. Run the same `transfer` again: it reuses the
    /// transfer id, so the money moves at most once.
    pub const OUTCOME_UNKNOWN: u8 = 37;
    /// The local state directory cannot be used.
    pub const STATE: u8 = 40;
    /// Another transfer command is running from the same state directory.
    pub const BUSY: u8 = 41;
    /// The bridge is not set up for a bank yet: run `reader-bridge setup --server URL`.
    pub const NOT_SET_UP: u8 = 42;
    /// `--server`/`--ca` differ from the pinned bank (or `setup` without `--replace`).
    pub const OTHER_BANK: u8 = 43;
}

impl Error {
    /// The text with every cause after it (`outer: cause: ...`), for places that print one
    /// line without the CLI's chain formatting (the `readers` list).
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }

    /// The exit code for this failure class (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::NoService(_) | Error::NoReader | Error::UnknownReader { .. } => exit::NO_READER,
            Error::NoCard { .. } | Error::NoApplet { .. } => exit::NO_CARD,
            Error::CardRemoved => exit::CARD_REMOVED,
            Error::SeveralCards { .. } => exit::SEVERAL_CARDS,
            Error::CardBusy { .. } => exit::CARD_BUSY,
            Error::WrongPin { .. } | Error::WrongPuk { .. } => exit::WRONG_PIN,
            Error::PinBlocked | Error::PukBlocked => exit::PIN_BLOCKED,
            Error::Oath { source: card_applet::host::oath::OathError::WrongAccessCode, .. } => exit::WRONG_PIN,
            Error::NotPersonalized | Error::Card { .. } | Error::Oath { .. } | Error::NoOathCredential(_) => {
                exit::CARD_ERROR
            }
            Error::Pcsc(_) => exit::OTHER,
            Error::BankUnreachable { .. } => exit::BANK_UNREACHABLE,
            Error::OutcomeUnknown { .. } => exit::OUTCOME_UNKNOWN,
            Error::OtpRejected => exit::OTP_REJECTED,
            Error::NotLoggedIn => exit::NOT_LOGGED_IN,
            Error::InsufficientFunds => exit::INSUFFICIENT_FUNDS,
            Error::TransferRefused { .. } => exit::REFUSED,
            Error::Bank { .. } | Error::BadBankResponse(_) => exit::BANK_ERROR,
            Error::BankTls { .. } => exit::BANK_TLS,
            Error::BadInput(_)
            | Error::PlainHttp { .. }
            | Error::BadCa { .. }
            | Error::SecretOnCommandLine { .. }
            | Error::UnknownUser { .. } => exit::USAGE,
            Error::NotSetUp => exit::NOT_SET_UP,
            Error::OtherBank { .. } | Error::OtherCa { .. } | Error::AlreadySetUp { .. } => exit::OTHER_BANK,
            Error::Cancelled => exit::CANCELLED,
            Error::State { .. } => exit::STATE,
            Error::TransferBusy { .. } => exit::BUSY,
            Error::Terminal(_) => exit::OTHER,
        }
    }

    /// True when this error's causes are a library's chain (reqwest's connection errors,
    /// pcsc-lite's service error) that says nothing a person acts on: the CLI prints them only
    /// with `-v`. The error's own text names the cause and what to do.
    pub fn cause_is_detail(&self) -> bool {
        matches!(self, Error::BankUnreachable { .. } | Error::OutcomeUnknown { .. } | Error::NoService(_))
    }

    /// True when the outcome at the bank is unknown (the request may or may not have been
    /// processed): the pending transfer must be kept so that a retry reuses its id. An answer
    /// the bridge cannot read counts as unknown too: the bank may have executed the transfer
    /// before it answered. Keeping a record is always safe (a retry reuses the id); dropping
    /// one is what could pay twice.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            Error::BankUnreachable { .. }
                | Error::OutcomeUnknown { .. }
                | Error::BankTls { .. }
                | Error::CardRemoved
                | Error::Bank { status: 500..=599, .. }
                | Error::BadBankResponse(_)
        )
    }
}

impl From<card_link::Error> for Error {
    /// Maps the PC/SC layer's classes onto the bridge's, one for one; the texts here say what
    /// a customer does (start pcscd, plug in a reader, use `--reader`, raise `--wait`).
    fn from(e: card_link::Error) -> Self {
        use card_link::Error as L;
        match e {
            L::NoService(e) => Error::NoService(e),
            L::NoReader => Error::NoReader,
            L::UnknownReader { name, available } => Error::UnknownReader { name, available },
            L::NoCard { waited, .. } => Error::NoCard { seconds: waited.as_secs() },
            L::SeveralCards { readers } => Error::SeveralCards { readers },
            L::NoApplet { reader } => Error::NoApplet { reader },
            L::CardBusy { reader, waited } => Error::CardBusy { reader, seconds: waited.as_secs() },
            L::CardRemoved => Error::CardRemoved,
            L::Pcsc(e) => Error::Pcsc(e),
        }
    }
}

impl From<pcsc::Error> for Error {
    /// Through card-link's mapping: removal, reset and loss of the card all become
    /// [`Error::CardRemoved`].
    fn from(e: pcsc::Error) -> Self {
        card_link::Error::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_loss_maps_to_card_removed() {
        for e in [pcsc::Error::RemovedCard, pcsc::Error::ResetCard, pcsc::Error::NoSmartcard] {
            let mapped = Error::from(e);
            assert!(matches!(mapped, Error::CardRemoved), "{e:?} -> {mapped:?}");
            assert_eq!(mapped.exit_code(), exit::CARD_REMOVED);
            assert!(mapped.outcome_unknown());
        }
    }

    #[test]
    fn service_and_reader_errors_map_to_no_reader() {
        assert_eq!(Error::from(pcsc::Error::NoService).exit_code(), exit::NO_READER);
        assert!(matches!(Error::from(pcsc::Error::NoReadersAvailable), Error::NoReader));
        assert!(matches!(Error::from(pcsc::Error::SharingViolation), Error::Pcsc(_)));
    }

    #[test]
    fn wrong_pin_message_says_tries_left() {
        assert_eq!(Error::WrongPin { tries_left: 2 }.to_string(), "wrong PIN: 2 tries left before the PIN blocks");
        assert_eq!(Error::WrongPin { tries_left: 1 }.to_string(), "wrong PIN: 1 try left before the PIN blocks");
    }

    #[test]
    fn exit_codes_are_distinct_per_class() {
        let classes = [
            Error::NoReader.exit_code(),
            Error::NoCard { seconds: 1 }.exit_code(),
            Error::CardRemoved.exit_code(),
            Error::SeveralCards { readers: vec![] }.exit_code(),
            Error::WrongPin { tries_left: 1 }.exit_code(),
            Error::PinBlocked.exit_code(),
            Error::NotPersonalized.exit_code(),
            Error::OtpRejected.exit_code(),
            Error::InsufficientFunds.exit_code(),
            Error::NotLoggedIn.exit_code(),
            Error::TransferRefused { code: paysim_wire::api::ErrorCode::SameAccount, message: "y".into() }.exit_code(),
            Error::Cancelled.exit_code(),
            Error::BadInput("x".into()).exit_code(),
        ];
        let mut sorted = classes.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), classes.len(), "{classes:?}");
        assert!(!classes.contains(&exit::OK));
    }

    #[test]
    fn an_unreadable_bank_answer_keeps_the_transfer_pending() {
        // The bank may have executed the transfer and answered something the bridge cannot
        // parse: dropping the pending record would let the retry draw a new id and pay twice.
        assert!(Error::BadBankResponse("expected value at line 1".into()).outcome_unknown());
        // Final refusals are not unknown.
        assert!(!Error::OtpRejected.outcome_unknown());
        assert!(!Error::InsufficientFunds.outcome_unknown());
        assert!(!Error::Bank { status: 409, code: paysim_wire::api::ErrorCode::Csrf, message: "y".into() }
            .outcome_unknown());
    }

    #[test]
    fn causes_are_kept_as_sources_not_repeated_in_the_text() {
        use std::error::Error as _;
        let io = || std::io::Error::other("disk on fire");
        for e in [
            Error::NoService(pcsc::Error::NoService),
            Error::Pcsc(pcsc::Error::SharingViolation),
            Error::Card { command: "VERIFY", source: card_applet::host::CardError::SecurityNotSatisfied },
            Error::State { path: "/x".into(), source: io() },
            Error::Terminal(io()),
        ] {
            let cause = e.source().expect("the cause is kept").to_string();
            assert!(!e.to_string().contains(&cause), "{e} repeats its cause {cause:?}");
            assert_eq!(e.chain(), format!("{e}: {cause}"));
        }
    }

    #[test]
    fn several_cards_lists_readers() {
        let e = Error::SeveralCards { readers: vec!["A 00".into(), "B 01".into()] };
        assert_eq!(
            e.to_string(),
            "several readers hold a PAYSIM card: \"A 00\", \"B 01\"; choose one with --reader NAME"
        );
    }
}
