//! `reader-bridge`: the customer's terminal. Parses flags, calls the library, maps the error
//! to an exit code (docs/bridge.md lists them).

use anyhow::Context as _;
use clap::{Args, CommandFactory, Parser, Subcommand};
use paysim_wire::api::TransferStatus;
use reader_bridge::error::exit;
use reader_bridge::flow::{
    self, BankFlags, Bridge, CardChoice, RespondFields, SecretKind, SetupOutcome, TransferRequest, Ui,
};
use reader_bridge::input;
use reader_bridge::report;
use reader_bridge::state::StateDir;
use reader_bridge::Error;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use zeroize::Zeroizing;

/// `println!` that does not panic when stdout is a closed pipe (`reader-bridge readers | grep -q`):
/// the process then ends quietly with 141, the status a shell reports for SIGPIPE, since what it
/// had to say can no longer be read. Other write errors still end it with a message.
macro_rules! out {
    ($($arg:tt)*) => {{
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = writeln!(stdout, $($arg)*).and_then(|()| stdout.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(141);
            }
            eprintln!("error: cannot write to standard output: {e}");
            std::process::exit(i32::from(exit::OTHER));
        }
    }};
}

/// The help heading of the options every command takes (before or after the command's name).
const GLOBAL: &str = "Global options";

/// The longest `--wait`: PC/SC treats a timeout of 2^32-1 ms as "forever", so the flag is
/// capped well below it.
const MAX_WAIT_S: u64 = 3600;

#[derive(Parser)]
#[command(
    name = "reader-bridge",
    version,
    about = "PAYSIM card terminal: log in and sign transfers at the bank with the card"
)]
struct Cli {
    /// The bank's address, for `setup` (https://..., or http:// to this computer only). Other
    /// commands use the bank pinned by `setup`, and refuse a --server that differs from it.
    #[arg(long, global = true, help_heading = GLOBAL, env = "PAYSIM_SERVER", value_name = "URL")]
    server: Option<String>,
    /// A private CA (PEM) to trust for the bank's certificate, for `setup` (a copy is kept in
    /// the state directory). Other commands refuse a --ca that differs from the pinned one.
    #[arg(long, global = true, help_heading = GLOBAL, env = "PAYSIM_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// The PC/SC reader to use (default: the one reader holding a PAYSIM card; asks which
    /// one at a terminal when several do).
    #[arg(long, global = true, help_heading = GLOBAL, env = "PAYSIM_READER")]
    reader: Option<String>,
    /// Where the session and pending transfers are kept
    /// (default: $XDG_STATE_HOME/paysim-bridge or ~/.local/state/paysim-bridge).
    #[arg(long, global = true, help_heading = GLOBAL, env = "PAYSIM_BRIDGE_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Seconds to wait for a card to be inserted (at most an hour: the wait is always bounded).
    #[arg(long, global = true, help_heading = GLOBAL, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=MAX_WAIT_S))]
    wait: u64,
    /// Seconds one request to the bank may take, connection included (1 to 3600). When a
    /// transfer's confirmation gets no answer in time, the outcome is unknown (exit 37).
    #[arg(long, global = true, help_heading = GLOBAL, env = "PAYSIM_BANK_TIMEOUT", value_name = "SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=MAX_WAIT_S))]
    bank_timeout: u64,
    /// Read PIN, PUK and new PINs from standard input, one per line (for scripts).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pin_stdin: bool,
    /// INSECURE: the PIN on the command line (visible to other users in the process list and
    /// kept in shell history). Refused unless --insecure-secret-args is given too.
    #[arg(long, global = true, help_heading = GLOBAL, hide_short_help = true, value_name = "PIN")]
    pin: Option<String>,
    /// INSECURE: the PUK on the command line (for `unblock`); needs --insecure-secret-args.
    #[arg(long, global = true, help_heading = GLOBAL, hide_short_help = true, value_name = "PUK")]
    puk: Option<String>,
    /// INSECURE: the new PIN on the command line (`unblock`, `change-pin`); needs
    /// --insecure-secret-args.
    #[arg(long, global = true, help_heading = GLOBAL, hide_short_help = true, value_name = "PIN")]
    new_pin: Option<String>,
    /// Accept --pin, --puk and --new-pin on the command line (listed by --help, not -h),
    /// knowing that other users can read process arguments (for throw-away test cards only).
    #[arg(long, global = true, help_heading = GLOBAL)]
    insecure_secret_args: bool,
    /// Log what the bridge does (never secrets) to standard error.
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Set the bridge up for your bank, once: `setup --server https://bank.example [--ca FILE]`.
    ///
    /// The bridge then talks to that bank only and the card signs only for it; a --server that
    /// differs is refused. Checks that the bank answers over TLS the bridge trusts first.
    Setup {
        /// Replace the bank this bridge is set up for with another one (on purpose).
        #[arg(long)]
        replace: bool,
    },
    /// List PC/SC readers and which hold a PAYSIM card.
    Readers(Format),
    /// Show the bank this bridge is set up for, and the card's serial, next counter, PIN
    /// tries left and life-cycle state.
    Status(Format),
    /// Log in at the bank with the card (challenge, PIN, one-time code).
    Login {
        /// Your user name at the bank (as the bank gave it to you, e.g. alice).
        #[arg(long)]
        user: String,
        /// Log in as a user who has not logged in from this bridge before, while others have
        /// (without it, such a name is taken for a typo and refused before the card is used).
        #[arg(long)]
        new_user: bool,
    },
    /// End the session.
    Logout,
    /// List your accounts and balances.
    Accounts(Format),
    /// List your transfers, newest first.
    History {
        /// How many transfers to show (the bank answers at most 500).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
        #[command(flatten)]
        format: Format,
    },
    /// Send money: shows what the card will sign, asks to confirm, signs with the card.
    Transfer {
        /// Payee account number.
        #[arg(long)]
        to: String,
        /// Amount as a decimal number, e.g. 12.34.
        #[arg(long)]
        amount: String,
        /// Three-letter currency code, e.g. EUR.
        #[arg(long)]
        currency: String,
        /// Your account to pay from (default: your one account in that currency).
        #[arg(long)]
        from: Option<String>,
        /// The payee's name, as the payee gave it: the bank checks it against the account
        /// (verification of payee, shown before the PIN) and the card signs it.
        #[arg(long)]
        payee_name: String,
        /// Do not ask for confirmation (the second question of a name that does not match
        /// is still asked; see --confirm-unverified-payee).
        #[arg(long)]
        yes: bool,
        /// For scripts: send even when the bank says the payee's name does not match the
        /// account or cannot be checked (the bank records this second confirmation).
        #[arg(long)]
        confirm_unverified_payee: bool,
    },
    /// List transfers whose outcome is not known yet (run the same transfer again to finish).
    Pending(Format),
    /// Manual mode for the bank's website: type what the page shows, get the code to type back.
    ///
    /// The page prints the whole command line; any transfer field makes it a transfer. The
    /// card signs for the bank this bridge is set up for, never for an address the page gives.
    Respond {
        /// The challenge the page shows (hex; spaces allowed). Asked for if not given.
        #[arg(long)]
        challenge: Option<String>,
        /// Sign a transfer (asks for the fields not given) instead of a login.
        #[arg(long)]
        transfer: bool,
        /// The transfer id the page shows.
        #[arg(long = "transfer-id", alias = "transaction-id", value_name = "TRANSFER_ID")]
        transaction_id: Option<String>,
        /// The payee account the page shows.
        #[arg(long)]
        payee: Option<String>,
        /// The source account (from) the page shows.
        #[arg(long)]
        source: Option<String>,
        /// The payee's name the page shows.
        #[arg(long)]
        payee_name: Option<String>,
        /// The page said the payee's name does not match or could not be checked, and you
        /// want to pay anyway (tick the page's box too).
        #[arg(long)]
        confirm_unverified_payee: bool,
        /// The amount the page shows, e.g. 12.34.
        #[arg(long, conflicts_with = "amount_minor")]
        amount: Option<String>,
        /// The amount in minor units the page shows, e.g. 1234.
        #[arg(long)]
        amount_minor: Option<u64>,
        /// The currency the page shows.
        #[arg(long)]
        currency: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// The local signing service for the bank's pages ("Sign with my card"), on loopback.
    ///
    /// The page sends a challenge id; the service fetches what to sign from the bank this
    /// bridge is set up for, shows it here with the page's origin, asks to confirm and for the
    /// PIN here, and binds the code to the origin the browser reports. Prompts go to standard
    /// error; answers come from the terminal, or from standard input when it is not one.
    Serve {
        /// Where to listen: a loopback address and port (127.0.0.1 or [::1]; port 0 picks one).
        #[arg(long, default_value_t = reader_bridge::serve::DEFAULT_LISTEN.to_string(), value_name = "ADDR:PORT")]
        listen: String,
    },
    /// Unblock the PIN with the PUK and set a new PIN.
    Unblock,
    /// Change the PIN.
    ChangePin,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to standard output.
    #[command(hide = true)]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output, or write one page per command into --dir.
    #[command(hide = true)]
    Man {
        /// Write reader-bridge.1 and reader-bridge-COMMAND.1 into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// `--json` of the commands that list or report.
#[derive(Args, Clone, Copy, Debug)]
struct Format {
    /// Print one JSON document on one line instead of text (field names in docs/bridge.md).
    #[arg(long)]
    json: bool,
}

impl Cli {
    fn bank_timeout(&self) -> Duration {
        Duration::from_secs(self.bank_timeout)
    }
}

/// The terminal: prompts on standard error, answers from the terminal or standard input
/// (or, with --insecure-secret-args, from the secrets given on the command line).
struct Terminal {
    pin_stdin: bool,
    given: Vec<(SecretKind, Zeroizing<String>)>,
    /// `serve`: everything goes to standard error (standard output carries only the readiness
    /// line), and each prompt ends its line so that a script reading it sees it at once.
    service: bool,
}

impl Terminal {
    fn read_line(&self) -> reader_bridge::Result<String> {
        let mut line = String::new();
        let n = std::io::stdin().lock().read_line(&mut line).map_err(Error::Terminal)?;
        if n == 0 {
            return Err(Error::BadInput("standard input ended before the answer was given".to_owned()));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

impl Ui for Terminal {
    fn secret(&mut self, kind: SecretKind, prompt: &str) -> reader_bridge::Result<Zeroizing<String>> {
        if let Some((_, value)) = self.given.iter().find(|(k, _)| *k == kind) {
            return Ok(value.clone());
        }
        if self.pin_stdin {
            // The prompt still goes to standard error, one line, so a script (or a test) can
            // see where the bridge is.
            eprintln!("{}", prompt.trim_end());
            return self.read_line().map(Zeroizing::new);
        }
        reader_bridge::tty::read_secret(prompt).map_err(Error::Terminal)
    }

    fn confirm(&mut self, question: &str) -> reader_bridge::Result<bool> {
        if self.service && self.pin_stdin {
            eprintln!("{question} [y/N]");
        } else {
            eprint!("{question} [y/N] ");
        }
        let _ = std::io::stderr().flush();
        let answer = self.read_line()?;
        Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
    }

    fn ask(&mut self, prompt: &str) -> reader_bridge::Result<String> {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        self.read_line()
    }

    fn say(&mut self, text: &str) {
        if self.service {
            eprintln!("{text}");
        } else {
            out!("{text}");
        }
    }

    fn warn(&mut self, text: &str) {
        eprintln!("{text}");
    }

    /// Asks only a person at a terminal; a script (standard input not a terminal) gets `None`
    /// and so the error that says to use `--reader`.
    fn choose(&mut self, prompt: &str, options: &[String]) -> reader_bridge::Result<Option<usize>> {
        if !std::io::stdin().is_terminal() {
            return Ok(None);
        }
        eprintln!("{prompt}");
        for (i, o) in options.iter().enumerate() {
            eprintln!("  {}) {o}", i + 1);
        }
        let answer = self.ask(&format!("number (1-{}): ", options.len()))?;
        match answer.trim().parse::<usize>() {
            Ok(n) if (1..=options.len()).contains(&n) => Ok(Some(n - 1)),
            _ => Err(Error::BadInput(format!(
                "{answer:?} is not one of the numbers 1 to {}; nothing was sent to a card (or use --reader NAME)",
                options.len()
            ))),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.verbose {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter("reader_bridge=debug,card_link=info")
            .init();
    }
    let verbose = cli.verbose;
    match run(cli) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(err) => {
            eprintln!("error: {}", message(&err, verbose));
            let code = err.downcast_ref::<Error>().map_or(exit::OTHER, Error::exit_code);
            ExitCode::from(code)
        }
    }
}

/// The error as one line: each context and cause once; a library's chain under the bridge's
/// own error only with `-v` ([`Error::cause_is_detail`]).
fn message(err: &anyhow::Error, verbose: bool) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        if !verbose && cause.downcast_ref::<Error>().is_some_and(Error::cause_is_detail) {
            break;
        }
    }
    parts.join(": ")
}

/// The secrets given on the command line, refused unless --insecure-secret-args says the
/// person accepts that other users can read them.
fn secrets_from_argv(cli: &mut Cli) -> reader_bridge::Result<Vec<(SecretKind, Zeroizing<String>)>> {
    let mut given = Vec::new();
    for (flag, what, kind, value) in [
        ("--pin", "PIN", SecretKind::Pin, cli.pin.take()),
        ("--puk", "PUK", SecretKind::Puk, cli.puk.take()),
        ("--new-pin", "new PIN", SecretKind::NewPin, cli.new_pin.take()),
    ] {
        let Some(value) = value.map(Zeroizing::new) else { continue };
        if !cli.insecure_secret_args {
            return Err(Error::SecretOnCommandLine { flag, what });
        }
        eprintln!(
            "warning: {flag} is on the command line: other users of this computer can read it (--insecure-secret-args)"
        );
        given.push((kind, value));
    }
    Ok(given)
}

fn run(mut cli: Cli) -> anyhow::Result<()> {
    let given = secrets_from_argv(&mut cli)?;
    let mut ui = Terminal { pin_stdin: cli.pin_stdin, given, service: false };
    match &cli.command {
        Command::Readers(format) => return readers(*format),
        Command::Completions { shell } => {
            let mut out = std::io::stdout().lock();
            clap_complete::generate(*shell, &mut Cli::command(), "reader-bridge", &mut out);
            return Ok(());
        }
        Command::Man { dir } => return man(dir.as_deref()),
        _ => {}
    }
    let state_dir = cli.state_dir.clone().unwrap_or_else(StateDir::default_path);
    if let Command::Serve { listen } = &cli.command {
        if !ui.given.is_empty() {
            return Err(Error::BadInput(
                "serve asks for the PIN at each request; --pin, --puk and --new-pin are not accepted".to_owned(),
            )
            .into());
        }
        let ui =
            Terminal { pin_stdin: cli.pin_stdin || !std::io::stdin().is_terminal(), given: Vec::new(), service: true };
        return serve(&cli, state_dir, listen, ui);
    }
    if let Command::Setup { replace } = cli.command {
        return setup(&state_dir, cli.server.as_deref(), cli.ca.as_deref(), replace);
    }
    let card = CardChoice { reader: cli.reader.clone(), wait: Duration::from_secs(cli.wait) };
    let flags = BankFlags { server: cli.server.clone(), ca: cli.ca.clone(), timeout: Some(cli.bank_timeout()) };
    let bridge = Bridge::open(&state_dir, &flags, card)?;
    match cli.command {
        Command::Readers(_)
        | Command::Setup { .. }
        | Command::Serve { .. }
        | Command::Completions { .. }
        | Command::Man { .. } => Ok(()),
        Command::Status(format) => {
            if format.json {
                let s = bridge.status(&mut ui)?;
                out!("{}", report::to_line(&report::StatusJson::new(bridge.pinned(), &s)));
                return Ok(());
            }
            match bridge.pinned() {
                Some(p) => {
                    out!("bank:            {} (the card signs for {})", p.url, p.verifier_id);
                    match &p.ca_source {
                        Some(src) => out!("bank trusted by: {} (a copy of {src})", p.trust_text()),
                        None => out!("bank trusted by: {}", p.trust_text()),
                    }
                }
                None => out!("bank:            not set up (run `reader-bridge setup --server URL`)"),
            }
            let s = bridge.status(&mut ui)?;
            out!("reader:          {}", s.reader);
            out!("serial:          {}", s.serial);
            match s.next_counter {
                Some(c) => out!("next counter:    {c}"),
                None => out!("next counter:    - (not personalized)"),
            }
            out!("PIN tries left:  {}", s.pin_tries_left);
            out!("life-cycle:      {}", s.life_cycle);
            out!("applet version:  {}", s.version);
            Ok(())
        }
        Command::Login { user, new_user } => {
            let name = input::user(&user)?;
            bridge.login_as(&name, new_user, &mut ui).with_context(|| format!("login as {user:?} failed"))?;
            Ok(())
        }
        Command::Logout => {
            bridge.logout()?;
            out!("logged out");
            Ok(())
        }
        Command::Accounts(format) => {
            let accounts = bridge.accounts()?;
            if format.json {
                let list: Vec<_> = accounts.iter().map(report::AccountJson::from).collect();
                out!("{}", report::to_line(&list));
                return Ok(());
            }
            out!("{:<34}  {:>22}  currency", "account", "balance");
            for a in accounts {
                out!("{:<34}  {:>22}  {}", a.number, a.currency.format_minor(a.balance_minor), a.currency);
            }
            Ok(())
        }
        Command::History { limit, format } => {
            let transfers = bridge.history(limit)?;
            if format.json {
                let list: Vec<_> = transfers.iter().map(report::TransferJson::from).collect();
                out!("{}", report::to_line(&list));
                return Ok(());
            }
            if transfers.is_empty() {
                out!("no transfers yet");
            }
            for t in transfers {
                let when = flow::format_time(t.executed_at.unwrap_or(t.created_at));
                let amount = t.currency.format_minor(t.amount_minor);
                let dir = t.direction.as_str();
                let reason = t.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
                out!(
                    "{when}  {dir:<3}  {:>14} {}  {} -> {}  {}{reason}  [{}]",
                    amount,
                    t.currency,
                    t.from,
                    t.to,
                    t.status.as_str(),
                    t.transfer_id
                );
            }
            Ok(())
        }
        Command::Transfer { to, amount, currency, from, payee_name, yes, confirm_unverified_payee } => {
            let currency = input::currency(&currency)?;
            let amount_minor = input::amount(&amount, currency)?;
            let to = input::account(&to)?;
            let from = from.as_deref().map(input::account).transpose()?;
            let payee_name = input::payee_name(&payee_name)?;
            let req = TransferRequest { from, to, amount_minor, currency, payee_name, yes, confirm_unverified_payee };
            let t = bridge.transfer(&req, &mut ui).context("the transfer did not complete")?;
            match t.status {
                TransferStatus::Executed => out!(
                    "transfer {} executed: {} {} from {} to {}",
                    t.transfer_id,
                    t.currency.format_minor(t.amount_minor),
                    t.currency,
                    t.from,
                    t.to
                ),
                other => out!("transfer {}: {}", t.transfer_id, other.as_str()),
            }
            Ok(())
        }
        Command::Pending(format) => {
            let pending = bridge.pending()?;
            if format.json {
                let list: Vec<_> = pending.iter().map(report::PendingJson::from).collect();
                out!("{}", report::to_line(&list));
                return Ok(());
            }
            if pending.is_empty() {
                out!("no pending transfers");
            }
            for p in pending {
                out!(
                    "{}  {} {} minor units from {} to {} at {} (user {})",
                    p.transfer_id,
                    p.currency,
                    p.amount_minor,
                    p.from.as_ref().map_or("?", |f| f.as_str()),
                    p.to,
                    p.verifier_id,
                    p.user
                );
            }
            Ok(())
        }
        Command::Respond {
            challenge,
            transfer,
            transaction_id,
            payee,
            source,
            payee_name,
            confirm_unverified_payee,
            amount,
            amount_minor,
            currency,
            yes,
        } => {
            let challenge = input::challenge(&match challenge {
                Some(c) => c,
                None => ui.ask("challenge shown by the bank's page: ")?,
            })?;
            let is_transfer = transfer
                || transaction_id.is_some()
                || payee.is_some()
                || source.is_some()
                || payee_name.is_some()
                || amount.is_some()
                || amount_minor.is_some()
                || currency.is_some();
            let fields = if is_transfer {
                let mut given = |v: Option<String>, prompt: &str| -> reader_bridge::Result<String> {
                    match v {
                        Some(v) => Ok(v),
                        None => ui.ask(prompt),
                    }
                };
                let transaction_id = input::transfer_id(&given(transaction_id, "transfer id shown by the page: ")?)?;
                let source = input::account(&given(source, "source account (from) shown by the page: ")?)?;
                let payee = input::account(&given(payee, "payee account shown by the page: ")?)?;
                let payee_name = input::payee_name(&given(payee_name, "payee's name shown by the page: ")?)?;
                let currency = input::currency(&given(currency, "currency shown by the page: ")?)?;
                let amount_minor = match amount_minor {
                    Some(0) => return Err(Error::BadInput("the amount must be more than zero".to_owned()).into()),
                    Some(m) => m,
                    None => input::amount(&given(amount, "amount shown by the page (e.g. 12.34): ")?, currency)?,
                };
                if confirm_unverified_payee {
                    ui.warn(
                        "warning: the page says the payee's name does not match the account or could not be \
                         checked; you are signing anyway (tick the page's box before sending the code)",
                    );
                }
                RespondFields::Transfer {
                    transaction_id,
                    payee,
                    amount_minor,
                    currency,
                    v2: Some((source, payee_name)),
                }
            } else {
                RespondFields::Login
            };
            let otp = bridge.respond(&challenge, &fields, yes, &mut ui)?;
            out!("counter: {}", otp.counter);
            out!("code:    {}", otp.otp.as_str());
            out!("type into the page: {}-{}", otp.counter, otp.otp.as_str());
            Ok(())
        }
        Command::Unblock => Ok(bridge.unblock(&mut ui)?),
        Command::ChangePin => Ok(bridge.change_pin(&mut ui)?),
    }
}

/// `serve`: the signing service until Ctrl-C or SIGTERM. The readiness line on standard
/// output names the address and the bank: `reader-bridge serve: listening on http://ADDR for
/// the bank at URL`.
fn serve(cli: &Cli, state_dir: PathBuf, listen: &str, ui: Terminal) -> anyhow::Result<()> {
    let addr = reader_bridge::serve::listen_address(listen)?;
    let card = CardChoice { reader: cli.reader.clone(), wait: Duration::from_secs(cli.wait) };
    let flags = BankFlags { server: cli.server.clone(), ca: cli.ca.clone(), timeout: Some(cli.bank_timeout()) };
    let (signer, bank) =
        reader_bridge::serve::Signer::start(move || Bridge::open(&state_dir, &flags, card), Box::new(ui))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        out!("reader-bridge serve: listening on http://{local} for the bank at {bank}");
        eprintln!("Keep this window open: pages of your bank will ask here before the card signs.");
        reader_bridge::serve::serve(listener, signer, shutdown_signal()).await.context("the signing service failed")
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn setup(
    state_dir: &std::path::Path,
    server: Option<&str>,
    ca: Option<&std::path::Path>,
    replace: bool,
) -> anyhow::Result<()> {
    let Some(server) = server else {
        return Err(Error::BadInput(
            "setup needs the bank's address: `reader-bridge setup --server https://bank.example` (add --ca FILE for a private CA)"
                .to_owned(),
        )
        .into());
    };
    let (pin, outcome) = Bridge::setup(state_dir, server, ca, replace)?;
    match outcome {
        SetupOutcome::Pinned => {
            out!("set up for the bank at {}; the card will sign only for {}", pin.url, pin.verifier_id)
        }
        SetupOutcome::Unchanged => out!("already set up for the bank at {}; nothing changed", pin.url),
        SetupOutcome::Replaced(old) => out!(
            "set up for the bank at {} instead of {}; the card will sign only for {} (the old session is forgotten)",
            pin.url,
            old.url,
            pin.verifier_id
        ),
    }
    out!("trusting {} for its certificate", pin.trust_text());
    Ok(())
}

fn readers(format: Format) -> anyhow::Result<()> {
    let infos = Bridge::readers()?;
    if format.json {
        let list: Vec<_> = infos.iter().map(|r| report::ReaderJson::new(r, describe_reader(r))).collect();
        out!("{}", report::to_line(&list));
        return Ok(());
    }
    for r in infos {
        out!("{}: {}", r.name, describe_reader(&r));
    }
    Ok(())
}

/// `man`: the whole command's page on standard output, or one page per command in `dir`.
fn man(dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    let cmd = Cli::command();
    match dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page).context("cannot render the man page")?;
            std::io::stdout().lock().write_all(&page).context("cannot write to standard output")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
        }
    }
    Ok(())
}

/// One reader's line of `readers`: the PAYSIM card's serial, the OATH key and its bank
/// credentials (which kind the bridge will use), or why the card could not be read.
fn describe_reader(r: &reader_bridge::card::ReaderInfo) -> String {
    use reader_bridge::card::NOT_PERSONALIZED;
    let paysim = r.paysim_serial.as_deref().filter(|s| *s != NOT_PERSONALIZED);
    let oath = match &r.oath {
        None => None,
        Some(None) => Some("OATH key, protected by an access code (the bridge uses its bank credential)".to_owned()),
        Some(Some(names)) if names.is_empty() => None,
        Some(Some(names)) => Some(format!("OATH key with {}", names.join(", "))),
    };
    match (paysim, oath, r.card_present, &r.note) {
        (Some(serial), None, _, _) => format!("PAYSIM card {serial}"),
        (Some(serial), Some(oath), _, _) => format!("PAYSIM card {serial}; {oath} (the bridge uses the PAYSIM card)"),
        (None, Some(oath), _, _) => oath,
        (None, None, true, Some(note)) => format!("card present: {note}"),
        (None, None, true, None) if r.paysim_serial.is_some() => format!("PAYSIM card {NOT_PERSONALIZED}"),
        (None, None, true, None) if r.oath.is_some() => "OATH key without a bank credential".to_owned(),
        (None, None, true, None) => "card present".to_owned(),
        (None, None, false, _) => "empty".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_wait_is_bounded() {
        let wait = |w: &str| Cli::try_parse_from(["reader-bridge", "--wait", w, "status"]).map(|c| c.wait);
        assert_eq!(wait("0").unwrap(), 0);
        assert_eq!(wait("3600").unwrap(), 3600);
        // 2^32 ms would be PC/SC's INFINITE: refused, with the allowed range.
        let e = wait("4294968").err().unwrap().to_string();
        assert!(e.contains("0..=3600"), "{e}");
    }

    #[test]
    fn the_bank_timeout_is_bounded_and_defaults_to_30_s() {
        let timeout = |args: &[&str]| {
            Cli::try_parse_from([&["reader-bridge"], args, &["accounts"]].concat()).map(|c| c.bank_timeout())
        };
        assert_eq!(timeout(&[]).unwrap(), reader_bridge::bank::DEFAULT_TIMEOUT);
        assert_eq!(timeout(&["--bank-timeout", "2"]).unwrap(), Duration::from_secs(2));
        // No zero (every request would fail) and no unbounded wait.
        for bad in ["0", "3601"] {
            let e = timeout(&["--bank-timeout", bad]).err().unwrap().to_string();
            assert!(e.contains("1..=3600"), "{e}");
        }
    }

    #[test]
    fn the_history_limit_is_what_the_bank_accepts() {
        let limit = |l: &str| {
            Cli::try_parse_from(["reader-bridge", "history", "--limit", l]).map(|c| match c.command {
                Command::History { limit, .. } => limit,
                _ => unreachable!(),
            })
        };
        assert_eq!(limit("1").unwrap(), 1);
        assert_eq!(limit("500").unwrap(), 500);
        // The bank answers 400 outside 1-500, which used to end as "the bank failed" (exit 35).
        for bad in ["0", "501"] {
            let e = limit(bad).err().unwrap().to_string();
            assert!(e.contains("1..=500"), "{e}");
        }
    }

    /// Every visible command's name.
    fn commands() -> Vec<String> {
        Cli::command()
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .map(|s| s.get_name().to_owned())
            .collect()
    }

    #[test]
    fn every_flag_is_described_and_globals_have_their_heading() {
        let mut cmd = Cli::command();
        cmd.build();
        for sub in std::iter::once(&cmd).chain(cmd.get_subcommands()) {
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                assert!(!help.trim().is_empty(), "`{} --{id}` has no description", sub.get_name());
                assert_eq!(arg.is_global_set(), arg.get_help_heading() == Some(GLOBAL), "{} --{id}", sub.get_name());
            }
        }
    }

    #[test]
    fn a_transfer_id_is_called_so_in_help_and_prompts() {
        // One name for it everywhere the customer reads; `--transaction-id` stays an alias.
        let mut help = Vec::new();
        let mut cmd = Cli::command();
        cmd.build();
        let respond = cmd.find_subcommand_mut("respond").unwrap();
        respond.write_long_help(&mut help).unwrap();
        let help = String::from_utf8(help).unwrap();
        assert!(help.contains("--transfer-id"), "{help}");
        assert!(!help.to_lowercase().contains("transaction"), "{help}");
        let source = include_str!("main.rs");
        let prompt = ["\"transaction", " id shown"].concat();
        assert!(!source.contains(&prompt), "a prompt still says transaction id");
        let old = Cli::try_parse_from(["reader-bridge", "respond", "--transaction-id", "t-1"]).unwrap();
        assert!(matches!(old.command, Command::Respond { transaction_id: Some(ref t), .. } if t == "t-1"));
    }

    #[test]
    fn the_man_pages_and_bash_completion_name_every_command() {
        let cmds = commands();
        for wanted in ["accounts", "history", "status", "readers", "pending", "login", "change-pin"] {
            assert!(cmds.iter().any(|c| c == wanted), "{wanted} missing from {cmds:?}");
        }
        let mut bash = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut Cli::command(), "reader-bridge", &mut bash);
        let bash = String::from_utf8(bash).unwrap();
        let dir = tempfile::tempdir().unwrap();
        man(Some(dir.path())).unwrap();
        let top = std::fs::read_to_string(dir.path().join("reader-bridge.1")).unwrap();
        for c in &cmds {
            assert!(bash.contains(&format!("reader__bridge,{c})")), "bash completion lacks {c}");
            let roff = format!("reader\\-bridge\\-{}(1)", c.replace('-', "\\-"));
            assert!(top.contains(&roff), "the man page does not list {c}");
            assert!(dir.path().join(format!("reader-bridge-{c}.1")).exists(), "no man page for {c}");
        }
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        for args in [
            &["reader-bridge", "--state-dir", "/s", "-v", "accounts", "--json"][..],
            &["reader-bridge", "accounts", "--json", "--state-dir", "/s", "-v"][..],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            assert_eq!(cli.state_dir.as_deref(), Some(std::path::Path::new("/s")), "{args:?}");
            assert!(cli.verbose, "{args:?}");
            assert!(matches!(cli.command, Command::Accounts(Format { json: true })), "{args:?}");
        }
        // --json belongs to the commands that list or report, not to the others.
        assert!(Cli::try_parse_from(["reader-bridge", "logout", "--json"]).is_err());
        for c in ["accounts", "history", "status", "readers", "pending"] {
            assert!(Cli::try_parse_from(["reader-bridge", c, "--json"]).is_ok(), "{c}");
        }
    }

    #[test]
    fn no_usage_line_shows_a_secret_flag() {
        // A missing argument shows the usage line: it must not steer anyone to the flags that
        // put secrets in argv.
        for args in [&["reader-bridge", "login"][..], &["reader-bridge", "transfer"][..], &["reader-bridge"][..]] {
            let e = Cli::try_parse_from(args).err().unwrap().to_string();
            assert!(!e.contains("--pin <") && !e.contains("--puk <") && !e.contains("--new-pin <"), "{args:?}: {e}");
        }
    }

    #[test]
    fn the_library_chain_shows_only_with_verbose() {
        // Port 9 (discard) is closed here: a real connection error from reqwest.
        let source = reqwest::blocking::Client::new().get("http://127.0.0.1:9/").send().unwrap_err();
        let url = "http://127.0.0.1:9".to_owned();
        let e = anyhow::Error::from(Error::BankUnreachable { url, source }).context("login as \"alice\" failed");
        let short = message(&e, false);
        assert_eq!(
            short,
            "login as \"alice\" failed: the bank at http://127.0.0.1:9 is unreachable; check the address \
             (`reader-bridge status` shows it) and your network, then retry"
        );
        let long = message(&e, true);
        assert!(long.starts_with(&short) && long.len() > short.len(), "{long}");
        assert!(long.to_lowercase().contains("connect"), "{long}");
        // Causes the person acts on stay, -v or not.
        let io = Error::State { path: "/s/session.json".into(), source: std::io::Error::other("disk full") };
        assert_eq!(message(&anyhow::Error::from(io), false), "cannot use the state file /s/session.json: disk full");
    }
}
