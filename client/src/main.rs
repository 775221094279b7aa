//! `cargo run -p client -- -c=a`: call the server with Client A's (or B's) certificate and
//! show what each side checked.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use mtls::client::{ClientSettings, DEFAULT_URL, fetch};
use mtls::files::{CertsDir, ClientId, DEFAULT_DIR, Role};
use mtls::tls::{ClientPolicy, TlsVersion};

const EXAMPLES: &str = "\
Examples:
  cargo run -p client -- -c=a                       # as Client A, to https://localhost:8443/
  cargo run -p client -- -c b --url https://127.0.0.1:8443/
  cargo run -p client -- --no-cert                  # see the server refuse a client without one
  cargo run -p client -- --no-cert --tls-version 1.2  # ...during the handshake, not after it
  cargo run -p client -- --cert my.crt --key my.key --ca certs/ca.crt";

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Which {
    /// Client A: certs/client-a.crt and certs/client-a.key
    A,
    /// Client B: certs/client-b.crt and certs/client-b.key
    B,
}

/// Calls the mTLS server with a client certificate, then prints the response, the TLS
/// state and the server's certificate chain as this client saw them.
#[derive(Parser, Debug)]
#[command(name = "client", version, after_help = EXAMPLES)]
struct Cli {
    /// Which demo client certificate to present.
    #[arg(short = 'c', long = "client", value_name = "CLIENT")]
    client: Option<Which>,

    /// URL to request (https only).
    #[arg(long, value_name = "URL", default_value = DEFAULT_URL)]
    url: String,

    /// Folder holding ca.crt and the client certificates.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    certs: PathBuf,

    /// CA certificate the server's certificate must chain to [default: DIR/ca.crt].
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,

    /// Our certificate chain [default: DIR/client-X.crt for -c X].
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,

    /// Our private key [default: DIR/client-X.key for -c X].
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,

    /// Offer only this TLS version: 1.2 or 1.3 (to compare when a refusal arrives).
    #[arg(long, value_name = "VERSION")]
    tls_version: Option<TlsVersion>,

    /// Offer only HTTP/1.1 in ALPN (default: h2, then http/1.1).
    #[arg(long = "http1.1")]
    http1_only: bool,

    /// Send no client certificate (to see how the server refuses).
    #[arg(long, conflicts_with_all = ["client", "cert", "key"])]
    no_cert: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = mtls::logging::init();
    let dir = CertsDir::new(&cli.certs);
    let id = cli.client.map(|w| match w {
        Which::A => ClientId::A,
        Which::B => ClientId::B,
    });
    let identity = if cli.no_cert {
        None
    } else {
        let cert = cli
            .cert
            .or_else(|| id.map(|i| dir.role_cert(Role::Client(i))));
        let key = cli
            .key
            .or_else(|| id.map(|i| dir.role_key(Role::Client(i))));
        match (cert, key) {
            (Some(cert), Some(key)) => {
                let owner = id.map_or_else(|| "the client".to_string(), |i| i.to_string());
                Some((cert, key, owner))
            }
            (None, None) => {
                return usage(
                    "choose a client certificate: -c a or -c b (or --cert and --key, or --no-cert)",
                );
            }
            (Some(_), None) => {
                return usage("--cert needs --key (or -c a|b to take the key from the demo set)");
            }
            (None, Some(_)) => {
                return usage(
                    "--key needs --cert (or -c a|b to take the certificate from the demo set)",
                );
            }
        }
    };
    let mut settings = ClientSettings::new(cli.ca.unwrap_or_else(|| dir.ca_cert()), identity);
    settings.url = cli.url;
    settings.policy = ClientPolicy {
        only_version: cli.tls_version,
        http1_only: cli.http1_only,
    };

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fetch(&settings)) {
        Ok(exchange) => {
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = write!(std::io::stdout().lock(), "{exchange}");
            if exchange.status.is_success() {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "error: the server answered {} {}",
                    exchange.status.as_u16(),
                    exchange.status.canonical_reason().unwrap_or("")
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}\n\nFor more information, try '--help'.");
    ExitCode::from(2)
}
