//! `cargo run -p server`: an HTTPS server that requires a verified client certificate.
//!
//! The command line (args.rs, or `MTLS_*` variables) becomes `ServerSettings`; the library
//! binds, prints `listening on https://ADDR`, and serves until SIGTERM or Ctrl-C.

mod args;

use std::process::ExitCode;

use args::Cli;
use clap::{CommandFactory, Parser};
use mtls::cli::{block_on, finish};
use mtls::server::ServerSettings;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(what) = cli.generate {
        return mtls::cli::generate(Cli::command(), what);
    }
    let _log = mtls::logging::init();
    let settings = ServerSettings::from(cli);
    let served = block_on(None, mtls::server::serve(&settings)).and_then(|served| served);
    finish(served.map(|()| ExitCode::SUCCESS))
}
