//! `bank-tools tls ...`

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum TlsCommand {
    /// Make a local CA and a server certificate signed by it: DIR/ca.pem (trust this one),
    /// DIR/server.pem and DIR/server-key.pem (mode 0600) for `bank-server serve --tls-cert
    /// --tls-key`. The CA's private key is not kept, so this CA signs nothing else.
    Init {
        /// The directory to write the three files to (created when missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// A name or IP address the bank is reached at (repeat for more). Default: 127.0.0.1,
        /// ::1 and localhost.
        #[arg(long = "host", value_name = "NAME_OR_IP")]
        hosts: Vec<String>,
        /// Replace existing files (a new CA: clients must trust the new ca.pem).
        #[arg(long)]
        force: bool,
    },
}

pub fn run(cmd: TlsCommand) -> anyhow::Result<()> {
    match cmd {
        TlsCommand::Init { dir, hosts, force } => {
            let files = tools::tls::init(&dir, &hosts, force)
                .with_context(|| format!("cannot make the TLS files in {}", dir.display()))?;
            let hosts = if hosts.is_empty() { tools::tls::DEFAULT_HOSTS.join(", ") } else { hosts.join(", ") };
            println!(
                "wrote {} (the CA certificate clients trust: the bridge's --ca, curl --cacert)",
                files.ca.display()
            );
            println!("wrote {} for {hosts}", files.cert.display());
            println!("wrote {} (mode 0600)", files.key.display());
            println!("the CA's private key was not kept: this CA signs nothing else");
            println!(
                "serve with: bank-server serve --tls-cert {} --tls-key {} ...",
                files.cert.display(),
                files.key.display()
            );
            Ok(())
        }
    }
}
