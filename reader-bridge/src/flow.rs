//! The bridge's operations: each one joins the card, the bank and the state directory.
//!
//! The person is reached through the [`Ui`] trait (the CLI implements it on the terminal,
//! tests implement it with scripted answers), so every flow is testable without a terminal.

use crate::apdu::{CardOtp, Pin, Puk};
use crate::bank::{Bank, BankAddress, CaPem, Created, Trust};
use crate::card::{self, CardStatus, OathCard, PaysimCard, ReaderInfo};
use crate::error::{Error, Result};
use crate::state::{self, PendingTransfer, PinnedBank, Session, StateDir};
use card_link::Transport;
use paysim_otp::{TxFields, TxVersion};
use paysim_wire::api::{Account, NewTransfer, PayeeCheck, SignFields, Transfer, TransferChallenge};
use paysim_wire::{AccountNumber, Challenge, Currency, PayeeName, TransferId, UserName};
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

/// Which secret a prompt asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// The card's PIN (current PIN for `change-pin`).
    Pin,
    /// The PUK (`unblock`).
    Puk,
    /// A new PIN (asked twice).
    NewPin,
    /// The access code of an OATH key's application (YubiKey, Nitrokey 3), when one is set.
    AccessCode,
}

/// How the bridge reaches the person.
pub trait Ui {
    /// Asks for a secret (PIN, PUK) without echo.
    fn secret(&mut self, kind: SecretKind, prompt: &str) -> Result<Zeroizing<String>>;
    /// Asks a yes/no question; `false` unless the person says yes.
    fn confirm(&mut self, question: &str) -> Result<bool>;
    /// Asks for one line of ordinary text.
    fn ask(&mut self, prompt: &str) -> Result<String>;
    /// Tells the person something (standard output).
    fn say(&mut self, text: &str);
    /// Warns the person (standard error).
    fn warn(&mut self, text: &str);
    /// Asks the person to pick one of `options` (an index into it), or `None` when nobody can
    /// be asked (no terminal: a script must say what it wants, e.g. with `--reader`).
    fn choose(&mut self, prompt: &str, options: &[String]) -> Result<Option<usize>> {
        let _ = (prompt, options);
        Ok(None)
    }
}

/// Where the card is and how long to wait for it.
#[derive(Clone, Debug)]
pub struct CardChoice {
    /// `--reader`: the reader to use; `None` picks the one reader holding a PAYSIM card.
    pub reader: Option<String>,
    /// How long to wait for a card to be inserted.
    pub wait: Duration,
}

/// What computes codes: a PAYSIM card over any card-link transport (PC/SC in the CLI, the
/// in-process card core in tests), an OATH key ([`OathCard`]), or a test's wrapper around one.
///
/// A flow asks [`Token::secret_prompt`] what to ask the person (the PIN, an OATH access code
/// or nothing), then calls [`Token::login_code`] or [`Token::tx_code`] with the answer. The
/// defaults are a PAYSIM card's: the PIN, then [`Token::login_otp`] / [`Token::tx_otp`].
pub trait Token {
    /// Where the token is (the reader's name), for prompts.
    fn reader(&self) -> &str;
    /// PIN, then LOGIN OTP.
    fn login_otp(&mut self, pin: &Pin, challenge: &[u8], verifier_id: &str) -> Result<CardOtp>;
    /// PIN, then TRANSACTION OTP over `challenge` and the fields.
    fn tx_otp(&mut self, pin: &Pin, challenge: &[u8], tx: &TxFields<'_>) -> Result<CardOtp>;
    /// Checks what can be checked before the person is asked for the PIN (a PAYSIM card: it is
    /// personalized and its PIN is not blocked, read without spending a try). The default
    /// checks nothing.
    fn check_ready(&mut self) -> Result<()> {
        Ok(())
    }
    /// What to ask the person before a code, and the prompt; `None`: nothing.
    fn secret_prompt(&mut self) -> Result<Option<(SecretKind, String)>> {
        Ok(Some((SecretKind::Pin, format!("PIN for the card in {:?}: ", self.reader()))))
    }
    /// The login code, after the person answered [`Token::secret_prompt`] with `secret`.
    /// `user` names the bank user when it is known (an OATH key picks its credential by it).
    fn login_code(
        &mut self,
        secret: Option<&str>,
        user: Option<&UserName>,
        challenge: &[u8],
        verifier_id: &str,
    ) -> Result<CardOtp> {
        let _ = user;
        self.login_otp(&Pin::new(secret.unwrap_or_default())?, challenge, verifier_id)
    }
    /// The transaction code, as [`Token::login_code`].
    fn tx_code(
        &mut self,
        secret: Option<&str>,
        user: Option<&UserName>,
        challenge: &[u8],
        tx: &TxFields<'_>,
    ) -> Result<CardOtp> {
        let _ = user;
        self.tx_otp(&Pin::new(secret.unwrap_or_default())?, challenge, tx)
    }
}

impl<T: Transport> Token for PaysimCard<T> {
    fn reader(&self) -> &str {
        PaysimCard::reader(self)
    }
    fn login_otp(&mut self, pin: &Pin, challenge: &[u8], verifier_id: &str) -> Result<CardOtp> {
        PaysimCard::login_otp(self, pin, challenge, verifier_id)
    }
    fn tx_otp(&mut self, pin: &Pin, challenge: &[u8], tx: &TxFields<'_>) -> Result<CardOtp> {
        PaysimCard::tx_otp(self, pin, challenge, tx)
    }
    fn check_ready(&mut self) -> Result<()> {
        let tries = self.ready()?;
        tracing::info!(reader = self.reader(), tries, "card ready: personalized, PIN not blocked");
        Ok(())
    }
}

/// An OATH key answers the PAYSIM-OATH-1 challenge derived from the bank's challenge and the
/// same context a PAYSIM card signs (`docs/protocol.md` section 9); it has no PIN: its
/// application's access code, if one is set, is asked instead. Its codes carry counter 0.
impl<T: Transport> Token for OathCard<T> {
    fn reader(&self) -> &str {
        OathCard::reader(self)
    }
    fn login_otp(&mut self, _pin: &Pin, challenge: &[u8], verifier_id: &str) -> Result<CardOtp> {
        self.login_code(None, None, challenge, verifier_id)
    }
    fn tx_otp(&mut self, _pin: &Pin, challenge: &[u8], tx: &TxFields<'_>) -> Result<CardOtp> {
        self.tx_code(None, None, challenge, tx)
    }
    fn secret_prompt(&mut self) -> Result<Option<(SecretKind, String)>> {
        Ok(self.protected()?.then(|| {
            (SecretKind::AccessCode, format!("OATH access code of the key in {:?}: ", OathCard::reader(self)))
        }))
    }
    fn login_code(
        &mut self,
        secret: Option<&str>,
        user: Option<&UserName>,
        challenge: &[u8],
        verifier_id: &str,
    ) -> Result<CardOtp> {
        let q = paysim_otp::oath_login_challenge(challenge, verifier_id.as_bytes());
        self.code(secret, user.map(UserName::as_str), &q)
    }
    fn tx_code(
        &mut self,
        secret: Option<&str>,
        user: Option<&UserName>,
        challenge: &[u8],
        tx: &TxFields<'_>,
    ) -> Result<CardOtp> {
        let q = paysim_otp::oath_tx_challenge(challenge, tx);
        self.code(secret, user.map(UserName::as_str), &q)
    }
}

/// The secret a token asked for (wiped on drop), or none.
type Secret = Option<Zeroizing<String>>;

/// Asks the person what `token` needs before a code.
pub(crate) fn ask_secret(token: &mut dyn Token, ui: &mut dyn Ui) -> Result<Secret> {
    match token.secret_prompt()? {
        None => Ok(None),
        Some((kind, prompt)) => {
            let s = ui.secret(kind, &prompt)?;
            if kind == SecretKind::Pin {
                // Checked before anything reaches the bank or the card.
                Pin::new(&s)?;
            }
            Ok(Some(s))
        }
    }
}

/// Opens the token for one operation.
pub type TokenOpener = Box<dyn Fn(&CardChoice) -> Result<Box<dyn Token>>>;

/// The bridge: the pinned bank's client (if `setup` ran), one state directory, the card choice.
pub struct Bridge {
    bank: Option<Bank>,
    pinned: Option<PinnedBank>,
    pub state: StateDir,
    pub card: CardChoice,
    opener: TokenOpener,
}

/// A transfer as the person asked for it.
#[derive(Clone, Debug)]
pub struct TransferRequest {
    pub from: Option<AccountNumber>,
    pub to: AccountNumber,
    pub amount_minor: u64,
    pub currency: Currency,
    /// The payee's name as the person knows it (`--payee-name`): checked by the bank against
    /// the account (verification of payee) and signed by the card.
    pub payee_name: PayeeName,
    /// Skip the confirmation question (`--yes`). It does not answer the second question of
    /// a payee whose name does not match or could not be checked.
    pub yes: bool,
    /// Answer yes to that second question beforehand (`--confirm-unverified-payee`, for
    /// scripts that know the name will not match).
    pub confirm_unverified_payee: bool,
}

/// What `respond` signs: a login or a transfer.
#[derive(Clone, Debug)]
pub enum RespondFields {
    Login,
    /// A transfer. With `v2` (the source account and the payee's name, as the bank's page
    /// shows them) the card signs context version 2, the only one the bank takes for
    /// transfers; without, version 1, for old pages and tests of old cards.
    Transfer {
        transaction_id: TransferId,
        payee: AccountNumber,
        amount_minor: u64,
        currency: Currency,
        v2: Option<(AccountNumber, PayeeName)>,
    },
}

/// What the command line says about the bank (`--server`, `--ca`, `--bank-timeout`). It
/// never chooses the bank: it is checked against the pinned one, and a difference is refused.
#[derive(Clone, Debug, Default)]
pub struct BankFlags {
    pub server: Option<String>,
    pub ca: Option<PathBuf>,
    /// How long one request to the bank may take (`None`: [`crate::bank::DEFAULT_TIMEOUT`]).
    pub timeout: Option<Duration>,
}

/// What `setup` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetupOutcome {
    /// The bank is pinned (there was none).
    Pinned,
    /// The same bank with the same trust was pinned already: nothing changed.
    Unchanged,
    /// `--replace`: this pin replaced the old one; the old bank's session is forgotten.
    Replaced(PinnedBank),
}

impl Bridge {
    /// `setup`: pins the bank at `server` (trusting the PEM CA file `ca`, or the platform's
    /// roots) in `state_dir`, after checking that it answers over TLS that this trust accepts.
    /// A different pin is only replaced with `replace`; the same one is left as it is.
    pub fn setup(
        state_dir: impl Into<PathBuf>,
        server: &str,
        ca: Option<&Path>,
        replace: bool,
    ) -> Result<(PinnedBank, SetupOutcome)> {
        let state = StateDir::open(state_dir)?;
        let address = BankAddress::parse(server)?;
        let ca_pem = ca.map(CaPem::read).transpose()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let pin = PinnedBank::new(&address, ca_pem.as_ref().zip(ca), now);
        let old = state.pinned_bank()?;
        if let Some(old) = &old {
            let same_ca = match (old.trust(), &ca_pem) {
                (Ok(Trust::Platform), None) => true,
                (Ok(Trust::PrivateCa(a)), Some(b)) => a.same_certificates(b),
                _ => false,
            };
            if old.url == pin.url && old.verifier_id == pin.verifier_id && same_ca {
                return Ok((old.clone(), SetupOutcome::Unchanged));
            }
            if !replace {
                return Err(Error::AlreadySetUp {
                    pinned: old.url.clone(),
                    given: pin.url.clone(),
                    ca_differs: !same_ca,
                });
            }
        }
        let trust = match &ca_pem {
            Some(c) => Trust::PrivateCa(c.clone()),
            None => Trust::Platform,
        };
        Bank::new(&pin.url, &trust)?.probe()?;
        state.save_pinned_bank(&pin)?;
        match old {
            Some(old) => {
                state.clear_session()?;
                Ok((pin, SetupOutcome::Replaced(old)))
            }
            None => Ok((pin, SetupOutcome::Pinned)),
        }
    }

    /// A bridge for the bank pinned in `state_dir` (by [`Bridge::setup`]). `flags` that name
    /// another bank or CA are refused ([`Error::OtherBank`], [`Error::OtherCa`]); without a pin
    /// the bridge still reads cards and its state, and every bank command answers
    /// [`Error::NotSetUp`].
    pub fn open(state_dir: impl Into<PathBuf>, flags: &BankFlags, card: CardChoice) -> Result<Self> {
        let state = StateDir::open(state_dir)?;
        let given = flags.server.as_deref().map(BankAddress::parse).transpose()?;
        let given_ca = flags.ca.as_deref().map(CaPem::read).transpose()?;
        let pinned = state.pinned_bank()?;
        let bank = match &pinned {
            None => None,
            Some(p) => {
                if let Some(g) = &given {
                    if g.verifier_id != p.verifier_id {
                        return Err(Error::OtherBank { pinned: p.url.clone(), given: g.url.clone() });
                    }
                }
                let trust = p.trust().map_err(|reason| Error::State {
                    path: state.path().join("bank.json"),
                    source: std::io::Error::other(format!(
                        "its CA copy cannot be used ({reason}); run `reader-bridge setup --server {} --ca FILE --replace`",
                        p.url
                    )),
                })?;
                if let (Some(g), Some(path)) = (&given_ca, &flags.ca) {
                    let same = matches!(&trust, Trust::PrivateCa(c) if c.same_certificates(g));
                    if !same {
                        return Err(Error::OtherCa {
                            pinned: p.url.clone(),
                            pinned_ca: p.trust_text(),
                            given: path.display().to_string(),
                        });
                    }
                }
                Some(Bank::with_timeout(&p.url, &trust, flags.timeout.unwrap_or(crate::bank::DEFAULT_TIMEOUT))?)
            }
        };
        Ok(Bridge {
            bank,
            pinned,
            state,
            card,
            opener: Box::new(|c: &CardChoice| card::open_token(c.reader.as_deref(), c.wait)),
        })
    }

    /// The pinned bank's client, or [`Error::NotSetUp`].
    pub fn bank(&self) -> Result<&Bank> {
        self.bank.as_ref().ok_or(Error::NotSetUp)
    }

    /// The pinned bank, if `setup` ran.
    pub fn pinned(&self) -> Option<&PinnedBank> {
        self.pinned.as_ref()
    }

    /// Replaces how the token is opened for login, transfer and respond (tests use the
    /// in-process card; `status`, `unblock` and `change-pin` always use PC/SC).
    pub fn with_token_opener(mut self, opener: TokenOpener) -> Self {
        self.opener = opener;
        self
    }

    fn open_card(&self, ui: &mut dyn Ui) -> Result<PaysimCard> {
        self.open_with(ui, |c| PaysimCard::open(c.reader.as_deref(), c.wait))
    }

    pub(crate) fn open_token(&self, ui: &mut dyn Ui) -> Result<Box<dyn Token>> {
        self.open_with(ui, |c| (self.opener)(c))
    }

    /// Opens the card with `open`; without `--reader` and with several readers holding a
    /// PAYSIM card, asks the person which one (a script without a terminal gets the error,
    /// which lists the readers and says to use `--reader`).
    fn open_with<T>(&self, ui: &mut dyn Ui, open: impl Fn(&CardChoice) -> Result<T>) -> Result<T> {
        match open(&self.card) {
            Err(Error::SeveralCards { readers }) => {
                let Some(i) = ui.choose("Several readers hold a PAYSIM card. Which one?", &readers)? else {
                    return Err(Error::SeveralCards { readers });
                };
                let Some(reader) = readers.get(i).cloned() else {
                    return Err(Error::BadInput(format!("choose a reader by its number, 1 to {}", readers.len())));
                };
                open(&CardChoice { reader: Some(reader), ..self.card.clone() })
            }
            other => other,
        }
    }

    /// `readers`: every reader, and which hold a PAYSIM card.
    pub fn readers() -> Result<Vec<ReaderInfo>> {
        let infos = card::scan()?;
        if infos.is_empty() {
            return Err(Error::NoReader);
        }
        Ok(infos)
    }

    /// `status`: the card's serial, counter, PIN tries and life-cycle state.
    pub fn status(&self, ui: &mut dyn Ui) -> Result<CardStatus> {
        self.open_card(ui)?.status()
    }

    fn session(&self) -> Result<Session> {
        self.state.session(self.bank()?.verifier_id())?.ok_or(Error::NotLoggedIn)
    }

    /// Runs `f` with the stored session; forgets the session when the bank says it ended.
    fn with_session<T>(&self, f: impl FnOnce(&Session) -> Result<T>) -> Result<T> {
        let s = self.session()?;
        let r = f(&s);
        if let Err(Error::NotLoggedIn) = r {
            self.state.clear_session()?;
        }
        r
    }

    fn warn_if_verifier_differs(&self, bank: &Bank, ui: &mut dyn Ui, stated: &str) {
        if stated != bank.verifier_id() {
            ui.warn(&format!(
                "warning: the server says its verifier id is {stated:?}, but this bridge is set up for {:?}. \
                 The card signs for {:?} (the bank you set up); a bank at another address \
                 will refuse these codes. If this is really your bank, set the bridge up with its \
                 public address: `reader-bridge setup --server URL --replace`.",
                bank.verifier_id(),
                bank.verifier_id()
            ));
        }
    }

    /// `login`: challenge from the bank, PIN, LOGIN OTP from the card, session stored. As
    /// [`Bridge::login_as`] without `new_user`.
    pub fn login(&self, user: &UserName, ui: &mut dyn Ui) -> Result<Session> {
        self.login_as(user, false, ui)
    }

    /// `login`: everything that can fail without the PIN is checked before it is asked for,
    /// in this order: the bank answers (its login challenge), the user is known to this
    /// bridge's profile (or is the first to log in from it, or `new_user` says the name is
    /// meant), the card is personalized and its PIN not blocked. Then the PIN, the card's
    /// LOGIN OTP, the bank's answer; the session is stored and the user remembered.
    ///
    /// The bank answers an unknown name with a challenge too (so that names cannot be probed),
    /// and a card code spent on a mistyped name is a chain step for nothing: the profile is
    /// what lets the bridge stop first ([`Error::UnknownUser`]).
    pub fn login_as(&self, user: &UserName, new_user: bool, ui: &mut dyn Ui) -> Result<Session> {
        let bank = self.bank()?;
        tracing::info!(bank = bank.url(), %user, "asking the bank for a login challenge");
        let ch = bank.login_challenge(user)?;
        tracing::info!("the bank answered with a challenge");
        self.warn_if_verifier_differs(bank, ui, &ch.verifier_id);
        let known = self.state.known_users(bank.verifier_id())?;
        if known.is_empty() || known.contains(user) {
            tracing::info!(first_login_here = known.is_empty(), "user checked against this bridge's profile");
        } else if new_user {
            tracing::info!("user new to this bridge's profile (--new-user)");
        } else {
            return Err(Error::UnknownUser { user: user.clone(), known });
        }
        let mut card = self.open_token(ui)?;
        card.check_ready()?;
        tracing::info!("asking for the PIN");
        let secret = ask_secret(card.as_mut(), ui)?;
        let otp = card.login_code(
            secret.as_deref().map(String::as_str),
            Some(user),
            ch.challenge.as_bytes(),
            bank.verifier_id(),
        )?;
        tracing::info!(counter = otp.counter, "the card gave its code; sending it to the bank");
        let ok = bank.login(&ch.challenge_id, otp.counter, &otp.otp)?;
        let session = Session { verifier_id: bank.verifier_id().to_owned(), user: ok.user, token: ok.token };
        self.state.save_session(&session)?;
        self.state.remember_user(bank.verifier_id(), &session.user)?;
        ui.say(&format!(
            "logged in as {} at {} (card counter {}); the session ends after {} s without use",
            session.user,
            bank.url(),
            otp.counter,
            ok.idle_timeout_s
        ));
        Ok(session)
    }

    /// `logout`: ends the session at the bank and forgets it here.
    pub fn logout(&self) -> Result<()> {
        let r = self.with_session(|s| self.bank()?.logout(&s.token));
        self.state.clear_session()?;
        match r {
            Ok(()) | Err(Error::NotLoggedIn) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `accounts`.
    pub fn accounts(&self) -> Result<Vec<Account>> {
        self.with_session(|s| self.bank()?.accounts(&s.token))
    }

    /// `history`.
    pub fn history(&self, limit: u32) -> Result<Vec<Transfer>> {
        self.with_session(|s| self.bank()?.transfers(&s.token, limit))
    }

    /// Transfers that were sent and whose outcome is not known yet.
    pub fn pending(&self) -> Result<Vec<PendingTransfer>> {
        self.state.all_pending()
    }

    /// `transfer`: shows the fields the card will sign, asks for confirmation and the PIN,
    /// records the transfer id, then creates, signs and confirms the transfer at the bank.
    ///
    /// A previous attempt with the same fields whose outcome is unknown (network error, card
    /// removed, bank restarted) is resumed with its transfer id, so money moves at most once.
    pub fn transfer(&self, req: &TransferRequest, ui: &mut dyn Ui) -> Result<Transfer> {
        self.with_session(|s| self.transfer_in(s, req, ui))
    }

    fn transfer_in(&self, s: &Session, req: &TransferRequest, ui: &mut dyn Ui) -> Result<Transfer> {
        // Held until this transfer has a final answer or its record is saved for a retry.
        let _one_at_a_time = self.state.lock_transfers()?;
        // Before anything is recorded or the PIN asked: the bank answers and the session is
        // valid (the accounts), the source account is known, the card can sign.
        let from = self.pick_source(s, req.from.as_ref(), req.currency)?;
        let mut card = self.open_token(ui)?;
        card.check_ready()?;
        let wanted = PendingTransfer {
            verifier_id: self.bank()?.verifier_id().to_owned(),
            user: s.user.clone(),
            transfer_id: state::new_transfer_id()?,
            from: Some(from.clone()),
            to: req.to.clone(),
            amount_minor: req.amount_minor,
            currency: req.currency,
            payee_name: Some(req.payee_name.clone()),
        };
        let pending = match self.state.find_pending(&wanted)? {
            Some(p) => {
                ui.say(&format!(
                    "resuming transfer {} from an earlier attempt whose outcome is not known; \
                     the bank will not execute it twice",
                    p.transfer_id
                ));
                p
            }
            None => wanted,
        };

        // Durable before the first byte goes to the bank.
        self.state.save_pending(&pending)?;
        let result = self.send_transfer(s, &pending, req, card.as_mut(), ui);
        match &result {
            Ok(_) => self.state.remove_pending(&pending)?,
            Err(e) if e.outcome_unknown() || matches!(e, Error::NotLoggedIn) => {
                ui.warn(&format!(
                    "the outcome of transfer {} is not known; run the same transfer command again: \
                     it reuses this transfer id and cannot pay twice",
                    pending.transfer_id
                ));
            }
            // Final answers: nothing moved (or the bank rejected it for good).
            Err(_) => self.state.remove_pending(&pending)?,
        }
        result
    }

    /// Asks the bank for the transfer (it answers the fields to sign and verification of
    /// payee), shows both, asks the confirmation (and the second one for a payee whose name
    /// does not match or could not be checked), then the PIN, and only then signs.
    fn send_transfer(
        &self,
        s: &Session,
        p: &PendingTransfer,
        req: &TransferRequest,
        card: &mut dyn Token,
        ui: &mut dyn Ui,
    ) -> Result<Transfer> {
        let from = p.from.clone().ok_or_else(|| {
            Error::BadInput(format!("the pending transfer {} names no source account", p.transfer_id))
        })?;
        let payee_name = p.payee_name.clone().unwrap_or_else(|| req.payee_name.clone());
        let new = NewTransfer {
            transfer_id: p.transfer_id.clone(),
            from: from.clone(),
            to: p.to.clone(),
            amount_minor: p.amount_minor,
            currency: p.currency,
            payee_name: payee_name.clone(),
        };
        let bank = self.bank()?;
        tracing::info!(transfer_id = %p.transfer_id, "asking the bank to accept the transfer (funds, payee, currency)");
        let ch = match bank.create_transfer(&s.token, &new)? {
            Created::AlreadyExecuted(t) => {
                ui.say(&format!("the bank had already executed transfer {}; nothing moved again", t.transfer_id));
                return Ok(t);
            }
            Created::Challenge(ch) => ch,
        };
        self.warn_if_verifier_differs(bank, ui, &ch.sign.verifier_id);
        // The card signs OUR fields; if the bank asks for different ones, stop.
        let sign = &ch.sign;
        if sign.transaction_id != p.transfer_id
            || sign.amount_minor != p.amount_minor
            || sign.currency != p.currency
            || sign.payee != p.to
            || sign.source != from
            || sign.payee_name != payee_name
        {
            return Err(Error::BadBankResponse(format!(
                "the bank asked to sign different transfer fields ({} {} {} from {} to {}, name {:?}) than requested; nothing was signed",
                sign.transaction_id, sign.amount_minor, sign.currency, sign.source, sign.payee, sign.payee_name.as_str()
            )));
        }
        tracing::info!("the bank accepted the transfer and sent the fields to sign");
        ui.say(&describe_signed(bank.verifier_id(), &ch));
        if !req.yes && !ui.confirm("Sign and send this transfer?")? {
            return Err(Error::Cancelled);
        }
        let unverified_ok = confirm_unverified_payee(&ch.payee_check, req.confirm_unverified_payee, ui)?;
        tracing::info!("asking for the PIN");
        let secret = ask_secret(card, ui)?;
        let otp = card.tx_code(
            secret.as_deref().map(String::as_str),
            Some(&s.user),
            ch.challenge.as_bytes(),
            &sign.tx_fields(bank.verifier_id()),
        )?;
        tracing::info!(counter = otp.counter, "the card signed; confirming the transfer at the bank");
        let t =
            bank.confirm_transfer(&s.token, &p.transfer_id, &ch.challenge_id, otp.counter, &otp.otp, unverified_ok)?;
        Ok(t)
    }

    /// The source account: `--from` if given, else the user's one account in `currency`. Asks
    /// the bank for the accounts either way, which checks that it answers and that the
    /// session is valid before anything is recorded.
    fn pick_source(&self, s: &Session, given: Option<&AccountNumber>, currency: Currency) -> Result<AccountNumber> {
        tracing::info!(bank = self.bank()?.url(), "checking the session and your accounts at the bank");
        let accounts = self.bank()?.accounts(&s.token)?;
        if let Some(from) = given {
            // The bank checks the account again when it gets the transfer; this only avoids
            // asking for a PIN the transfer cannot use.
            return Ok(from.clone());
        }
        let mut same: Vec<&Account> = accounts.iter().filter(|a| a.currency == currency).collect();
        match same.len() {
            1 => Ok(same.remove(0).number.clone()),
            0 => Err(Error::BadInput(format!("you have no {currency} account; see `reader-bridge accounts`"))),
            _ => Err(Error::BadInput(format!(
                "you have several {currency} accounts ({}); choose one with --from",
                same.iter().map(|a| a.number.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// `respond`: manual mode for the website. Shows what will be signed, asks for
    /// confirmation and the PIN, and returns the card's counter and code for the person to
    /// type into the page.
    ///
    /// The code is bound to the pinned bank's verifier id, never to an address the page
    /// printed: a `--server` that differs was refused when the bridge was opened, and without
    /// a pin this is [`Error::NotSetUp`].
    pub fn respond(
        &self,
        challenge: &Challenge,
        fields: &RespondFields,
        yes: bool,
        ui: &mut dyn Ui,
    ) -> Result<CardOtp> {
        let bank = self.bank()?;
        let vid = bank.verifier_id();
        let mut text = String::new();
        match fields {
            RespondFields::Login => {
                text.push_str(&format!("Sign a login for {} (the bank this bridge is set up for):\n", bank.url()));
                text.push_str(&format!("  bank (verifier id): {vid}\n"));
            }
            RespondFields::Transfer { transaction_id, payee, amount_minor, currency, v2 } => {
                text.push_str(&format!("Sign a transfer for {} (the bank this bridge is set up for):\n", bank.url()));
                text.push_str(&format!("  bank (verifier id): {vid}\n"));
                text.push_str(&format!("  transfer id:        {transaction_id}\n"));
                match v2 {
                    Some((source, name)) => {
                        text.push_str(&format!("  from account:       {source}\n"));
                        text.push_str(&format!("  payee account:      {payee}\n"));
                        text.push_str(&format!("  payee's name:       {name}\n"));
                    }
                    None => {
                        text.push_str(&format!("  payee account:      {payee}\n"));
                        text.push_str(
                            "  (without --source and --payee-name: the card signs neither; the bank refuses such codes for transfers)\n",
                        );
                    }
                }
                text.push_str(&format!(
                    "  amount:             {} {currency} ({amount_minor} minor units)\n",
                    currency.format_minor(*amount_minor)
                ));
            }
        }
        text.push_str(&format!("  challenge:          {challenge}"));
        ui.say(&text);
        let question = format!(
            "Is the page you are on at {}, does it show these details, and do you want to sign them?",
            bank.url()
        );
        if !yes && !ui.confirm(&question)? {
            return Err(Error::Cancelled);
        }
        let mut card = self.open_token(ui)?;
        card.check_ready()?;
        let secret = ask_secret(card.as_mut(), ui)?;
        let secret = secret.as_deref().map(String::as_str);
        // The user is not known here: an OATH key uses its one bank credential.
        match fields {
            RespondFields::Login => card.login_code(secret, None, challenge.as_bytes(), vid),
            RespondFields::Transfer { transaction_id, payee, amount_minor, currency, v2 } => card.tx_code(
                secret,
                None,
                challenge.as_bytes(),
                &TxFields {
                    version: if v2.is_some() { TxVersion::V2 } else { TxVersion::V1 },
                    verifier_id: vid.as_bytes(),
                    transaction_id: transaction_id.as_str().as_bytes(),
                    amount_minor: *amount_minor,
                    currency: currency.as_bytes(),
                    source: v2.as_ref().map_or(&b""[..], |(s, _)| s.as_str().as_bytes()),
                    payee: payee.as_str().as_bytes(),
                    payee_name: v2.as_ref().map_or(&b""[..], |(_, n)| n.as_str().as_bytes()),
                },
            ),
        }
    }

    /// `unblock`: PUK and a new PIN (RESET RETRY COUNTER).
    pub fn unblock(&self, ui: &mut dyn Ui) -> Result<()> {
        let mut card = self.open_card(ui)?;
        let puk = Puk::new(&ui.secret(SecretKind::Puk, "PUK (8 digits): ")?)?;
        let new = new_pin(ui)?;
        card.unblock(&puk, &new)?;
        ui.say("PIN unblocked and set; the card allows 3 PIN tries again");
        Ok(())
    }

    /// `change-pin`: old PIN and a new one (CHANGE REFERENCE DATA).
    pub fn change_pin(&self, ui: &mut dyn Ui) -> Result<()> {
        let mut card = self.open_card(ui)?;
        let old = Pin::new(&ui.secret(SecretKind::Pin, "current PIN: ")?)?;
        let new = new_pin(ui)?;
        card.change_pin(&old, &new)?;
        ui.say("PIN changed");
        Ok(())
    }
}

fn new_pin(ui: &mut dyn Ui) -> Result<Pin> {
    let a = ui.secret(SecretKind::NewPin, "new PIN (4-8 digits): ")?;
    let b = ui.secret(SecretKind::NewPin, "new PIN again: ")?;
    if a != b {
        return Err(Error::BadInput("the two new PINs differ; nothing was sent to the card".to_owned()));
    }
    Pin::new(&a)
}

/// The text shown before the PIN: the bank's verification of payee, then exactly the fields
/// the card signs (`sign`, already checked to be what the person asked for).
pub fn describe_signed(verifier_id: &str, ch: &TransferChallenge) -> String {
    let s: &SignFields = &ch.sign;
    let check = match &ch.payee_check {
        PayeeCheck::Match => "the name matches the name on the account".to_owned(),
        PayeeCheck::CloseMatch { account_name } => {
            format!(
                "CLOSE MATCH: the account is in the name of {:?}; check that this is who you mean to pay",
                account_name.as_str()
            )
        }
        PayeeCheck::NoMatch => {
            "NO MATCH: the name is not the name on the account; the money may go to someone else and may not come back"
                .to_owned()
        }
        PayeeCheck::Unavailable => "UNAVAILABLE: the bank cannot check the name on this account".to_owned(),
    };
    format!(
        "Verification of payee: {check}\n\
         The card will sign this transfer:\n  \
         bank (verifier id): {verifier_id}\n  \
         transfer id:        {}\n  \
         from account:       {}\n  \
         payee account:      {}\n  \
         payee's name:       {}\n  \
         amount:             {} {} ({} minor units)",
        s.transaction_id,
        s.source,
        s.payee,
        s.payee_name,
        s.currency.format_minor(s.amount_minor),
        s.currency,
        s.amount_minor,
    )
}

/// The second confirmation of a payee whose name did not match or could not be checked:
/// given beforehand (`--confirm-unverified-payee`) or asked now. Refused otherwise, before the
/// PIN and before anything is signed. `Ok(true)` when the bank must be told it was given.
fn confirm_unverified_payee(check: &PayeeCheck, given: bool, ui: &mut dyn Ui) -> Result<bool> {
    if !check.needs_confirmation() {
        return Ok(false);
    }
    let what = match check {
        PayeeCheck::NoMatch => "the payee's name does not match the name on the account",
        _ => "the bank could not check the payee's name",
    };
    if given {
        ui.warn(&format!("warning: {what}; sending anyway (--confirm-unverified-payee)"));
        return Ok(true);
    }
    if ui.confirm(&format!("Warning: {what}. Do you really want to pay this account anyway?"))? {
        return Ok(true);
    }
    Err(Error::BadInput(format!(
        "{what}; nothing was signed or sent. Check the name with the payee, or confirm the second question \
         (--confirm-unverified-payee in scripts) if you are sure"
    )))
}

/// Formats Unix seconds as `YYYY-MM-DD HH:MM:SSZ` (UTC), without a date library.
pub fn format_time(unix: i64) -> String {
    let (y, m, d, hh, mm, ss) = paysim_wire::time::utc_parts(unix);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(format_time(1_764_000_120), "2025-11-24 16:02:00Z");
        assert_eq!(format_time(-1), "1969-12-31 23:59:59Z");
    }

    #[test]
    fn the_confirmation_shows_every_signed_field() {
        let ch: TransferChallenge = serde_json::from_value(serde_json::json!({
            "challenge_id": "0".repeat(32), "challenge_hex": "AB".repeat(32), "expires_at": 1,
            "sign": { "verifier_id": "x", "transaction_id": "tx-1", "amount_minor": 1234, "currency": "EUR",
                      "source": "ACC-ALICE-EUR", "payee": "ACC-BOB-EUR", "payee_name": "Zoë Ångström" },
            "payee_check": { "result": "close_match", "account_name": "Zoe Angstrom" },
            "transfer": { "transfer_id": "tx-1", "from": "ACC-ALICE-EUR", "to": "ACC-BOB-EUR", "amount_minor": 1234,
                          "currency": "EUR", "status": "pending", "reason": null, "direction": "out",
                          "created_at": 1, "executed_at": null }
        }))
        .unwrap();
        let text = describe_signed("http://127.0.0.1:8080", &ch);
        for needle in [
            "http://127.0.0.1:8080",
            "tx-1",
            "ACC-BOB-EUR",
            "12.34 EUR",
            "1234 minor units",
            "from account:       ACC-ALICE-EUR",
            "payee's name:       Zoë Ångström",
            "CLOSE MATCH: the account is in the name of \"Zoe Angstrom\"",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
    }
}
