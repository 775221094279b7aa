//! `cargo run -p server`: an HTTPS server that requires a verified client certificate.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mtls::files::{CertsDir, DEFAULT_DIR};
use mtls::server::{Server, ServerSettings, shutdown_signal};

const EXAMPLES: &str = "\
Examples:
  cargo run -p server                                   # 127.0.0.1:8443, certificates from certs/
  cargo run -p server -- --addr 127.0.0.1:0             # any free port (printed at start)
  cargo run -p server -- --ca certs/ca.crt --cert certs/server.crt --key certs/server.key
  RUST_LOG=debug cargo run -p server                    # more detail";

/// Serves HTTPS on HTTP/1.1 and HTTP/2 and requires every client to present a certificate
/// issued by the CA. Logs each connection's TLS state and client chain, and each request.
#[derive(Parser, Debug)]
#[command(name = "server", version, after_help = EXAMPLES)]
struct Cli {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8443")]
    addr: String,

    /// Folder holding ca.crt, server.crt and server.key.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    certs: PathBuf,

    /// CA certificate that client certificates must chain to [default: DIR/ca.crt].
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,

    /// The server's certificate chain [default: DIR/server.crt].
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,

    /// The server's private key [default: DIR/server.key].
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,

    /// Certificate revocation list; revoked client certificates are refused (repeatable).
    #[arg(long, value_name = "FILE")]
    crl: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    mtls::logging::init();
    let dir = CertsDir::new(&cli.certs);
    let mut settings = ServerSettings::in_dir(&dir);
    settings.addr = cli.addr;
    settings.ca = cli.ca.unwrap_or(settings.ca);
    settings.cert = cli.cert.unwrap_or(settings.cert);
    settings.key = cli.key.unwrap_or(settings.key);
    settings.crls = cli.crl;
    match run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(settings: ServerSettings) -> mtls::Result<()> {
    let runtime = tokio::runtime::Runtime::new().map_err(|source| mtls::Error::Io {
        context: "cannot start the async runtime".into(),
        source,
    })?;
    runtime.block_on(async {
        let server = Server::bind(&settings).await?;
        let addr = server.local_addr()?;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on https://{addr}");
        let _ = out.flush();
        drop(out);
        server.run(shutdown_signal()).await
    })
}
