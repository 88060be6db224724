//! `bank-tools card ...`

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use zeroize::Zeroizing;

use tools::card::{self, Personalization};
use tools::seed::{Materials, Secret, Tag};

#[derive(Subcommand)]
pub enum CardCommand {
    /// Create a factory-fresh card state file with a new random admin key.
    Create(CreateArgs),
    /// Personalize the card in a reader: admin authentication, then seed, PIN, PUK, serial.
    Personalize(Box<PersonalizeArgs>),
    /// Check a login OTP from a card against the algorithm run from its token file.
    CheckOtp(CheckOtpArgs),
}

#[derive(Args)]
pub struct CheckOtpArgs {
    /// The token file from `card personalize --out`.
    #[arg(long, value_name = "FILE")]
    token: PathBuf,
    /// The counter the card reported with the code.
    #[arg(long)]
    counter: u64,
    /// The challenge sent to the card, hex.
    #[arg(long, value_name = "HEX")]
    challenge: String,
    /// The verifier id sent to the card: the bank's scheme://host:port.
    #[arg(long)]
    verifier_id: String,
    /// Read the 8-digit code the card answered from the first line of standard input.
    #[arg(long, conflicts_with = "otp")]
    otp_stdin: bool,
    /// INSECURE: the code on the command line (other users can read process arguments);
    /// refused unless --insecure-secret-args is given. Use --otp-stdin.
    #[arg(long, required_unless_present = "otp_stdin")]
    otp: Option<String>,
    /// Accept --otp on the command line, knowing that other users can read it.
    #[arg(long)]
    insecure_secret_args: bool,
}

#[derive(Args)]
pub struct CreateArgs {
    /// Card state file to create (mode 0600; never overwritten).
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// Where to write the card's admin key (mode 0600) [default: FILE.admin].
    #[arg(long, value_name = "FILE")]
    admin_key_out: Option<PathBuf>,
}

#[derive(Args)]
pub struct PersonalizeArgs {
    /// PC/SC reader holding the card, e.g. "Virtual PCD 00 00".
    #[arg(long, value_name = "NAME", required_unless_present = "batch")]
    reader: Option<String>,
    /// The card's admin key file, from `card create`.
    #[arg(long, value_name = "FILE", required_unless_present = "batch")]
    admin_key: Option<PathBuf>,
    /// Where to write the token file the bank enrolls from (mode 0600; never overwritten).
    #[arg(long, value_name = "FILE", required_unless_present = "batch")]
    out: Option<PathBuf>,
    /// Card serial: 1-16 characters of A-Z, 0-9 and '-'.
    #[arg(long, required_unless_present = "batch")]
    serial: Option<String>,
    /// Read the PIN (4-8 digits) from the first line of standard input.
    #[arg(long, conflicts_with = "pin")]
    pin_stdin: bool,
    /// INSECURE: the PIN (4-8 digits) on the command line, where other users can read it in
    /// the process list; refused unless --insecure-secret-args is given. Use --pin-stdin.
    #[arg(long)]
    pin: Option<String>,
    /// Read the PUK (8 digits) from the next line of standard input.
    #[arg(long, conflicts_with = "puk")]
    puk_stdin: bool,
    /// INSECURE: the PUK (8 digits) on the command line; needs --insecure-secret-args. Use
    /// --puk-stdin.
    #[arg(long)]
    puk: Option<String>,
    /// Accept --pin and --puk on the command line, knowing that other users can read them
    /// (throw-away test cards only).
    #[arg(long)]
    insecure_secret_args: bool,
    /// File holding the 32-byte secret (64 hex digits or raw); default: 32 fresh random bytes.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// Identity material 1: user id.
    #[arg(long)]
    user_id: Option<String>,
    /// Identity material 2: SHA-256 of the user's certificate, 64 hex digits.
    #[arg(long, value_name = "HEX")]
    cert_sha256: Option<String>,
    /// Identity material 3: SIM ICCID.
    #[arg(long)]
    iccid: Option<String>,
    /// Identity material 4: TF-card id.
    #[arg(long)]
    tf_card_id: Option<String>,
    /// Identity material 5: device IMEI.
    #[arg(long)]
    imei: Option<String>,
    /// Identity material 6: sticker-card id.
    #[arg(long)]
    sticker_id: Option<String>,
    /// Identity material 7: user identification (e.g. an ID document number).
    #[arg(long)]
    user_identification: Option<String>,
    /// Personalize many cards listed in a CSV file (mode 0600; columns in docs/tools.md)
    /// instead of one: a progress bar, one result line per card, non-zero exit if any failed.
    #[arg(long, value_name = "FILE.csv", conflicts_with_all = [
        "reader", "admin_key", "out", "serial", "pin_stdin", "pin", "puk_stdin", "puk", "insecure_secret_args", "secret_file",
        "user_id", "cert_sha256", "iccid", "tf_card_id", "imei", "sticker_id", "user_identification",
    ])]
    batch: Option<PathBuf>,
    /// With --batch: how long to wait for the operator to swap the card in a reader listed again.
    #[arg(long, value_name = "SECONDS", default_value_t = 120, requires = "batch")]
    swap_wait: u64,
}

/// A secret given as a flag's value: refused unless `insecure` (`--insecure-secret-args`),
/// with what to do instead; warned about when accepted. The message never holds the value.
fn argv_secret(
    value: Option<String>,
    flag: &str,
    what: &str,
    stdin_flag: &str,
    insecure: bool,
) -> anyhow::Result<Option<Zeroizing<String>>> {
    let Some(value) = value.map(Zeroizing::new) else { return Ok(None) };
    if !insecure {
        bail!(
            "{flag} puts the {what} on the command line, where other users can read it (ps, /proc) and the shell \
             keeps it in its history; give it on standard input with {stdin_flag} instead \
             (e.g. `printf '%s\\n' \"$SECRET\" | bank-tools ... {stdin_flag}`), or add --insecure-secret-args \
             if you accept that"
        );
    }
    eprintln!("bank-tools: warning: {flag} is on the command line: other users of this computer can read it");
    Ok(Some(value))
}

pub fn run(cmd: CardCommand) -> anyhow::Result<()> {
    match cmd {
        CardCommand::Create(a) => create(a),
        CardCommand::Personalize(a) => personalize(*a),
        CardCommand::CheckOtp(a) => check_otp(a),
    }
}

fn create(a: CreateArgs) -> anyhow::Result<()> {
    let key_out = a.admin_key_out.unwrap_or_else(|| {
        let mut p = a.state.clone().into_os_string();
        p.push(".admin");
        PathBuf::from(p)
    });
    card::create(&a.state, &key_out).context("cannot create the card")?;
    println!("created factory card {} (admin key in {})", a.state.display(), key_out.display());
    Ok(())
}

fn personalize(a: PersonalizeArgs) -> anyhow::Result<()> {
    if let Some(file) = &a.batch {
        return super::batch::run(file, std::time::Duration::from_secs(a.swap_wait));
    }
    let pin_arg = argv_secret(a.pin, "--pin", "PIN", "--pin-stdin", a.insecure_secret_args)?;
    let puk_arg = argv_secret(a.puk, "--puk", "PUK", "--puk-stdin", a.insecure_secret_args)?;
    if pin_arg.is_none() && !a.pin_stdin {
        bail!("give the PIN on standard input with --pin-stdin (the first line)");
    }
    if puk_arg.is_none() && !a.puk_stdin {
        bail!("give the PUK on standard input with --puk-stdin (the line after the PIN, if that is read too)");
    }
    let (Some(reader), Some(admin_key), Some(out), Some(serial)) = (a.reader, a.admin_key, a.out, a.serial) else {
        bail!("--reader, --admin-key, --out and --serial are required (or --batch FILE.csv)");
    };
    let mut stdin = std::io::stdin().lock();
    let mut next_line = |what: &str| -> anyhow::Result<Zeroizing<String>> {
        // Read straight into a zeroizing buffer, sized so that a PIN/PUK line never makes it
        // reallocate (which would leave an unwiped copy behind); the trimmed copy is zeroizing too.
        let mut line = Zeroizing::new(String::with_capacity(256));
        match stdin.read_line(&mut line).with_context(|| format!("cannot read the {what} from standard input"))? {
            0 => bail!("standard input ended before the {what} line"),
            _ => Ok(Zeroizing::new(line.trim().to_owned())),
        }
    };
    let pin = match pin_arg {
        Some(p) => p,
        None => next_line("PIN")?,
    };
    let puk = match puk_arg {
        Some(p) => p,
        None => next_line("PUK")?,
    };
    let secret = match &a.secret_file {
        Some(path) => {
            let raw = tools::secret_file::read_private(path).context("cannot read the secret file")?;
            Secret::from_file_contents(&raw).with_context(|| format!("secret file {}", path.display()))?
        }
        None => {
            Secret::random().map_err(|e| anyhow::anyhow!("cannot get random bytes from the operating system: {e}"))?
        }
    };
    let mut materials = Materials::new();
    for (tag, value) in [
        (Tag::UserId, &a.user_id),
        (Tag::Iccid, &a.iccid),
        (Tag::TfCardId, &a.tf_card_id),
        (Tag::Imei, &a.imei),
        (Tag::StickerId, &a.sticker_id),
        (Tag::UserIdentification, &a.user_identification),
    ] {
        if let Some(v) = value {
            materials.add(tag, v.as_bytes())?;
        }
    }
    if let Some(h) = &a.cert_sha256 {
        materials.add_cert_sha256_hex(h)?;
    }
    let admin_key = card::read_admin_key(&admin_key).context("cannot read the admin key")?;
    let job = Personalization { serial, pin, puk, secret, materials };
    let done = card::personalize(&reader, &admin_key, &job, &out)
        .with_context(|| format!("cannot personalize the card in {reader:?}"))?;
    if let Some(old) = done.previous_serial {
        eprintln!("bank-tools: note: the card was personalized as {old}; its old chain is wiped");
    }
    println!("personalized card {} in {:?}; token file {}", job.serial, reader, out.display());
    if done.tx_version == paysim_otp::TxVersion::V1 {
        eprintln!(
            "bank-tools: note: this card (applet 1.0) signs transaction context version 1 only: neither the \
             source account nor the payee's name. It will log in, but the bank refuses its transfers."
        );
    }
    Ok(())
}

fn check_otp(a: CheckOtpArgs) -> anyhow::Result<()> {
    let otp = match argv_secret(a.otp, "--otp", "one-time code", "--otp-stdin", a.insecure_secret_args)? {
        Some(otp) => otp,
        None => {
            let mut line = Zeroizing::new(String::with_capacity(256));
            match std::io::stdin().lock().read_line(&mut line).context("cannot read the code from standard input")? {
                0 => bail!("standard input ended before the code line"),
                _ => Zeroizing::new(line.trim().to_owned()),
            }
        }
    };
    let token = card::read_token_file(&a.token)?;
    let challenge = hex::decode(a.challenge.trim()).context("--challenge must be hex")?;
    if card::check_login_otp(&token, a.counter, &challenge, &a.verifier_id, &otp)? {
        println!("OTP matches the PAYSIM-1 login algorithm for card {} at counter {}", token.serial, a.counter);
        Ok(())
    } else {
        bail!("the OTP does NOT match the PAYSIM-1 login algorithm for card {} at counter {}", token.serial, a.counter)
    }
}
