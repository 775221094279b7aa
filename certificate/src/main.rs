//! `cargo run -p certificate`: mint the demo CA, server and client certificates into certs/.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mtls::demo::{self, DemoOptions};
use mtls::files::{CertsDir, DEFAULT_DIR};
use mtls::pki::{KeyType, Validity};

const EXAMPLES: &str = "\
Examples:
  cargo run -p certificate                          # certs/: ca, server, client-a, client-b
  cargo run -p certificate -- --san my-host.test    # one more name on the server certificate
  cargo run -p certificate -- --key-type rsa-2048 --days 30 --out /tmp/pki --force";

/// Mints a root CA, a server certificate and two client certificates (Client A, Client B),
/// then checks that they fit together.
#[derive(Parser, Debug)]
#[command(name = "certificate", version, after_help = EXAMPLES)]
struct Cli {
    /// Folder to write into.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    out: PathBuf,

    /// Key algorithm: ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096.
    #[arg(long, value_name = "TYPE", default_value = "ecdsa-p256")]
    key_type: KeyType,

    /// Validity of the server and client certificates, in days.
    #[arg(long, value_name = "N", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,

    /// Validity of the CA certificate, in days (leaves never outlive it).
    #[arg(long, value_name = "N", default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..=36500))]
    ca_days: u32,

    /// Extra subject alternative name for the server (DNS:name, IP:addr, URI:uri; repeatable).
    #[arg(long, value_name = "SAN")]
    san: Vec<String>,

    /// Replace existing files, including the CA (every certificate it issued stops working).
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    mtls::logging::init();
    let mut opts = DemoOptions::new(CertsDir::new(cli.out));
    opts.key_type = cli.key_type;
    opts.leaf_validity = Validity::days(cli.days);
    opts.ca_validity = Validity::days(cli.ca_days);
    opts.extra_sans = cli.san;
    opts.force = cli.force;
    match demo::mint(&opts) {
        Ok(set) => {
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = write!(std::io::stdout().lock(), "{set}");
            if set.all_ok() {
                ExitCode::SUCCESS
            } else {
                eprintln!("error: some checks failed (marked FAIL above)");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
