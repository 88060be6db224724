//! Card commands: create a factory card state, personalize a card over PC/SC (or any
//! card-link transport: the tests use the card core in process).

use std::path::{Path, PathBuf};
use std::time::Duration;

use card_applet::host::{self, admin::AdminError, admin::AdminSession};
use paysim_wire::TokenFile;
use zeroize::Zeroizing;

use crate::secret_file::{self, SecretFileError};
use crate::seed::{self, Materials, Secret};
use card_link::{PcscCard, Transport, TransportExt};

/// How long `personalize` waits for a card in the reader.
pub const CARD_WAIT: Duration = Duration::from_secs(10);

/// Why a card command of `bank-tools` failed. What the card itself answered is a
/// `card_applet::host::CardError` inside ([`CardToolError::Select`], the admin protocol's).
#[derive(Debug, thiserror::Error)]
pub enum CardToolError {
    #[error(transparent)]
    File(#[from] SecretFileError),
    #[error(transparent)]
    Store(#[from] card_applet::state::StoreError),
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(getrandom::Error),
    #[error("admin key file {}: expected 64 hex digits", .0.display())]
    AdminKeyFormat(PathBuf),
    #[error("{}: {problem}", .path.display())]
    TokenFile { path: PathBuf, problem: &'static str },
    #[error("the card serial must be 1 to 16 characters of A-Z, 0-9 and '-'")]
    Serial,
    #[error("PIN: {0}")]
    Pin(card_applet::pin::PinFormatError),
    #[error("PUK: {0}")]
    Puk(card_applet::pin::PinFormatError),
    #[error(transparent)]
    Link(#[from] card_link::Error),
    #[error("SELECT of the PAYSIM applet failed: {0}")]
    Select(host::CardError),
    #[error("admin authentication or PERSONALIZE failed: {0}")]
    Admin(#[from] AdminError),
    #[error(
        "counter {counter} is more than {CHECK_OTP_MAX_STEPS} steps past the token file's counter {from}; \
         check the --counter the card reported"
    )]
    CounterTooFar { counter: u64, from: u64 },
    #[error(
        "the card is personalized as {serial}, but its token file could not be written ({source}); \
             its seed is lost: personalize the card again with a new --out file"
    )]
    TokenNotWritten {
        serial: String,
        #[source]
        source: SecretFileError,
    },
}

/// Creates a factory card state at `state` with a fresh 32-byte admin key from the OS CSPRNG,
/// and writes that key, as 64 hex digits, to `admin_key_out`. Both files are mode 0600 and
/// neither is ever overwritten.
pub fn create(state: &Path, admin_key_out: &Path) -> Result<(), CardToolError> {
    secret_file::ensure_absent(state)?;
    secret_file::ensure_absent(admin_key_out)?;
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(key.as_mut()).map_err(CardToolError::Random)?;
    let key_hex = Zeroizing::new(format!("{}\n", hex::encode(*key)));
    secret_file::write_new(admin_key_out, key_hex.as_bytes())?;
    if let Err(e) = card_applet::state::create_factory(state, &key) {
        // Without its card, the key file is useless: leave nothing half-made behind.
        let _ = std::fs::remove_file(admin_key_out);
        return Err(e.into());
    }
    Ok(())
}

/// Reads an admin key file written by [`create`] (64 hex digits; mode must be 0600).
pub fn read_admin_key(path: &Path) -> Result<Zeroizing<[u8; 32]>, CardToolError> {
    let raw = secret_file::read_private(path)?;
    let text = raw.trim_ascii();
    let mut key = Zeroizing::new([0u8; 32]);
    if text.len() != 64 || hex::decode_to_slice(text, key.as_mut()).is_err() {
        return Err(CardToolError::AdminKeyFormat(path.to_owned()));
    }
    Ok(key)
}

/// What to personalize a card with.
pub struct Personalization {
    pub serial: String,
    pub pin: Zeroizing<String>,
    pub puk: Zeroizing<String>,
    /// The seed's entropy: random, or from `--secret-file`.
    pub secret: Secret,
    /// Identity materials bound into the seed (may be empty).
    pub materials: Materials,
}

/// What [`personalize`] did.
#[derive(Debug)]
pub struct Personalized {
    /// The serial the card had before, if it was already personalized (its chain is wiped).
    pub previous_serial: Option<String>,
    /// The newest transaction-context version the card announced, written to the token file.
    pub tx_version: paysim_otp::TxVersion,
}

/// Personalizes the card in `reader` over PC/SC (waiting up to [`CARD_WAIT`] for a card):
/// see [`personalize_over`]. All input is checked before the reader is even opened.
pub fn personalize(
    reader: &str,
    admin_key: &[u8; 32],
    job: &Personalization,
    out: &Path,
) -> Result<Personalized, CardToolError> {
    check_job(job, out)?;
    let mut link = PcscCard::connect(reader, CARD_WAIT)?;
    personalize_over(&mut link, admin_key, job, out)
}

/// Personalizes the card behind `link`: derives the seed, then in one exclusive transaction
/// runs SELECT, admin authentication (GET CHALLENGE, EXTERNAL AUTHENTICATE) and PERSONALIZE
/// (seed, PIN, PUK, serial, encrypted and MACed under the session keys), and writes the
/// token file `out` (mode 0600). All input is checked before the card is touched.
pub fn personalize_over(
    link: &mut (impl Transport + ?Sized),
    admin_key: &[u8; 32],
    job: &Personalization,
    out: &Path,
) -> Result<Personalized, CardToolError> {
    check_job(job, out)?;
    let seed = seed::derive(&job.secret, &job.materials);

    let fci = link.exchange(|ex| {
        let fci = host::parse_select(&ex.transmit(&host::select())?).map_err(CardToolError::Select)?;
        let mut session = AdminSession::new(admin_key)?;
        let challenge = ex.transmit(&AdminSession::get_challenge())?;
        let auth = session.external_authenticate(&challenge)?;
        session.check_authenticated(&ex.transmit(&auth)?)?;
        let cmd = session.personalize(&card_applet::host::admin::Personalization {
            seed: &seed,
            pin: &job.pin,
            puk: &job.puk,
            serial: &job.serial,
        })?;
        session.check_personalized(&ex.transmit(&cmd)?)?;
        Ok::<_, CardToolError>(fci)
    })?;

    let serial: paysim_wire::CardSerial = job.serial.parse().map_err(|_| CardToolError::Serial)?;
    // The card's own announcement (`DF08` in the FCI; none on applet 1.0): the bank records
    // it at enrollment and takes transfers only from cards that sign version 2.
    let tx_version = fci.best_tx_version();
    let token = TokenFile { serial, seed: paysim_otp::ChainKey::from_bytes(*seed), counter: 0, tx_version };
    write_token_file(out, &token).map_err(|e| match e {
        CardToolError::File(source) => CardToolError::TokenNotWritten { serial: job.serial.clone(), source },
        other => other,
    })?;
    Ok(Personalized { previous_serial: fci.serial, tx_version })
}

/// Refuses a job whose serial, PIN or PUK is malformed, or whose token file exists.
fn check_job(job: &Personalization, out: &Path) -> Result<(), CardToolError> {
    if !paysim_wire::CardSerial::is_valid(&job.serial) {
        return Err(CardToolError::Serial);
    }
    card_applet::pin::PinBlock::from_pin(&job.pin).map_err(CardToolError::Pin)?;
    card_applet::pin::PukBlock::from_puk(&job.puk).map_err(CardToolError::Puk)?;
    secret_file::ensure_absent(out)?;
    Ok(())
}

/// The most chain steps [`check_login_otp`] walks from the token file's counter (about a
/// second of HMACs); a counter further on is refused instead of hashing for years.
pub const CHECK_OTP_MAX_STEPS: u64 = 1 << 20;

/// Checks a login OTP a card gave against the PAYSIM-1 algorithm run from the token file's
/// seed: `otp::login_otp(ck_counter, counter, challenge, verifier_id)`, compared in constant
/// time. For operators and the demo; it never prints the expected code.
///
/// Errors: [`CardToolError::CounterTooFar`] when `counter` is more than [`CHECK_OTP_MAX_STEPS`]
/// past the token file's counter.
pub fn check_login_otp(
    token: &TokenFile,
    counter: u64,
    challenge: &[u8],
    verifier_id: &str,
    code: &str,
) -> Result<bool, CardToolError> {
    if counter < token.counter {
        return Ok(false);
    }
    let steps = counter - token.counter;
    if steps > CHECK_OTP_MAX_STEPS {
        return Err(CardToolError::CounterTooFar { counter, from: token.counter });
    }
    let ck = token.seed.advance(steps);
    Ok(paysim_otp::login_otp(&ck, counter, challenge, verifier_id.as_bytes()).matches(code))
}

/// Reads a token file (`paysim_wire::token_file`), refusing one that others can read.
pub fn read_token_file(path: &Path) -> Result<TokenFile, CardToolError> {
    let raw = secret_file::read_private(path)?;
    let text = std::str::from_utf8(&raw)
        .map_err(|_| CardToolError::TokenFile { path: path.to_owned(), problem: "not UTF-8" })?;
    TokenFile::parse(text).map_err(|problem| CardToolError::TokenFile { path: path.to_owned(), problem })
}

/// Writes a token file, mode 0600, refusing to overwrite.
pub fn write_token_file(path: &Path, token: &TokenFile) -> Result<(), CardToolError> {
    secret_file::write_new(path, token.to_text().as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {

    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn token_file(serial: &str, seed: [u8; 32]) -> TokenFile {
        TokenFile {
            serial: serial.parse().unwrap(),
            seed: paysim_otp::ChainKey::from_bytes(seed),
            counter: 0,
            tx_version: paysim_otp::TxVersion::V2,
        }
    }

    #[test]
    fn create_writes_two_private_files_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("card.state");
        let key = dir.path().join("card.state.admin");
        create(&state, &key).unwrap();
        for p in [&state, &key] {
            assert_eq!(std::fs::metadata(p).unwrap().permissions().mode() & 0o777, 0o600, "{}", p.display());
        }
        let k1 = read_admin_key(&key).unwrap();
        assert_ne!(*k1, [0u8; 32]);
        let before = std::fs::read(&state).unwrap();
        let err = create(&state, &dir.path().join("other.admin")).unwrap_err();
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert_eq!(std::fs::read(&state).unwrap(), before);
        assert!(!dir.path().join("other.admin").exists());
        // A second card gets a different key.
        create(&dir.path().join("b.state"), &dir.path().join("b.admin")).unwrap();
        assert_ne!(*read_admin_key(&dir.path().join("b.admin")).unwrap(), *k1);
    }

    #[test]
    fn check_login_otp_follows_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.json");
        let seed = [0x11; 32];
        write_token_file(&p, &token_file("PSIM-1", seed)).unwrap();
        let token = read_token_file(&p).unwrap();
        let ck3 = paysim_otp::ChainKey::from_bytes(seed).advance(3);
        let code = paysim_otp::login_otp(&ck3, 3, &[7; 32], b"https://b.example:443");
        assert!(check_login_otp(&token, 3, &[7; 32], "https://b.example:443", code.as_str()).unwrap());
        assert!(!check_login_otp(&token, 2, &[7; 32], "https://b.example:443", code.as_str()).unwrap());
        assert!(!check_login_otp(&token, 3, &[8; 32], "https://b.example:443", code.as_str()).unwrap());
        assert!(!check_login_otp(&token, 3, &[7; 32], "https://c.example:443", code.as_str()).unwrap());
    }

    /// A mistyped huge --counter is refused at once; it used to walk the chain for ever.
    #[test]
    fn check_login_otp_refuses_a_counter_far_past_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.json");
        write_token_file(&p, &token_file("PSIM-1", [0x11; 32])).unwrap();
        let token = read_token_file(&p).unwrap();
        let err = check_login_otp(&token, u64::MAX, &[7; 32], "https://b.example:443", "12345678").unwrap_err();
        assert!(err.to_string().contains("check the --counter"), "{err}");
        assert!(check_login_otp(&token, CHECK_OTP_MAX_STEPS + 1, &[7; 32], "v", "12345678").is_err());
    }

    #[test]
    fn token_file_has_the_shared_shape() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.json");
        write_token_file(&p, &token_file("PSIM-00000001", [0xAB; 32])).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["format"], "paysim-token-v1");
        assert_eq!(v["serial"], "PSIM-00000001");
        assert_eq!(v["seed_hex"], "ab".repeat(32));
        assert_eq!(v["counter"], 0);
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(format!("{:?}", token_file("X", [0xAB; 32])).contains("<secret>"));
        // A second write never replaces a token file.
        assert!(write_token_file(&p, &token_file("PSIM-00000002", [0xCD; 32])).is_err());
        assert_eq!(read_token_file(&p).unwrap().serial, "PSIM-00000001");
    }

    fn job(serial: &str) -> Personalization {
        Personalization {
            serial: serial.to_owned(),
            pin: Zeroizing::new("1234".to_owned()),
            puk: Zeroizing::new("12345678".to_owned()),
            secret: Secret::random().unwrap(),
            materials: Materials::new(),
        }
    }

    /// The whole personalization path (SELECT, admin authentication, PERSONALIZE with its
    /// R-MAC, token file) against the card core in process: no pcscd needed.
    #[test]
    fn personalize_over_an_in_process_card_writes_the_seed_the_card_runs() {
        use card_applet::host;
        use card_link::{MemCard, TransportExt};
        let dir = tempfile::tempdir().unwrap();
        let key = [0x3C; 32];
        let mut card = MemCard::factory(&key);
        let out = dir.path().join("t.json");
        let done = personalize_over(&mut card, &key, &job("PSIM-MEM-1"), &out).unwrap();
        assert_eq!(done.previous_serial, None);
        let token = read_token_file(&out).unwrap();
        assert_eq!(token.serial, "PSIM-MEM-1");
        let (counter, code) = card
            .exchange(|ex| {
                host::parse_select(&ex.transmit(&host::select())?).unwrap();
                host::parse_verify(&ex.transmit(&host::verify("1234").unwrap())?).unwrap();
                Ok::<_, card_link::Error>(
                    host::parse_otp(&ex.transmit(&host::login_otp(&[5; 32], "v").unwrap())?).unwrap(),
                )
            })
            .unwrap();
        assert_eq!(counter, 0);
        assert!(check_login_otp(&token, counter, &[5; 32], "v", code.as_str()).unwrap());

        // Again, with a new serial: the old one is reported; a wrong admin key is refused.
        let again = personalize_over(&mut card, &key, &job("PSIM-MEM-2"), &dir.path().join("u.json")).unwrap();
        assert_eq!(again.previous_serial.as_deref(), Some("PSIM-MEM-1"));
        let wrong = personalize_over(&mut card, &[0; 32], &job("PSIM-MEM-3"), &dir.path().join("v.json"));
        assert!(
            matches!(wrong, Err(CardToolError::Admin(AdminError::Card(host::CardError::AdminAuthFailed { .. })))),
            "{wrong:?}"
        );
        assert!(!dir.path().join("v.json").exists());
        // Bad input never reaches the card.
        let bad = personalize_over(&mut card, &key, &job("lower-case"), &dir.path().join("w.json"));
        assert!(matches!(bad, Err(CardToolError::Serial)), "{bad:?}");
    }
}
