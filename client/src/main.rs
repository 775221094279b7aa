//! `cargo run -p client -- -c=a`: call the server with Client A's (or B's) certificate and
//! show what each side checked.
//!
//! The command line (args.rs) becomes `ClientSettings`; one request with the library's
//! client; the report (after the handshake trace, with --trace) goes to stdout, as text or
//! JSON, and a non-2xx answer exits 1. A failed request prints its trace, then the error.
//! `client audit` becomes `AuditSettings` and one call to the library's audit; `client
//! proxy` becomes `ProxySettings` and one call to the library's proxy, which serves until
//! SIGTERM or Ctrl-C; `client bench` becomes `BenchSettings` and one call to the library's
//! bench.

mod args;

use std::process::ExitCode;

use args::{AuditArgs, BenchArgs, BenchPlan, Cli, Command, ProxyArgs};
use clap::{CommandFactory, Parser};
use mtls::cli::{block_on, finish, say};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(what) = cli.generate {
        return mtls::cli::generate(Cli::command(), what);
    }
    let _log = mtls::logging::init();
    match cli.command {
        Some(Command::Audit(args)) => audit(args),
        Some(Command::Bench(args)) => bench(args),
        Some(Command::Proxy(args)) => finish(proxy(args)),
        None => finish(run(cli)),
    }
}

/// Exit 0 when every operation succeeded, 1 when some failed (their reasons are in the
/// report), 2 when the run could not start (a usage error, a missing file, a name that does
/// not resolve): nothing was measured.
fn bench(args: BenchArgs) -> ExitCode {
    match measure(args) {
        Ok(code) => code,
        Err(e) => {
            // The one `error:` line, as for every failure; the status says nothing ran.
            let _ = finish(Err(e));
            ExitCode::from(mtls::cli::USAGE)
        }
    }
}

fn measure(args: BenchArgs) -> mtls::Result<ExitCode> {
    let json = args.json;
    let plan = args.plan()?;
    let progress = mtls::bench::Progress::on_stderr();
    // All cores: the client's half of many handshakes at once.
    let failed = match plan {
        BenchPlan::One(settings) => {
            let run = block_on(None, mtls::bench::run(&settings, &progress))??;
            match json {
                true => say(format_args!("{:#}\n", run.to_json())),
                false => say(&run),
            }
            run.failed + run.unfinished
        }
        BenchPlan::Compare(settings, plain) => {
            let comparison = block_on(
                None,
                mtls::bench::compare(&settings, plain.as_ref(), &progress),
            )??;
            match json {
                true => say(format_args!("{:#}\n", comparison.to_json())),
                false => say(&comparison),
            }
            comparison
                .measured()
                .map(|run| run.failed + run.unfinished)
                .sum()
        }
    };
    if failed > 0 {
        eprintln!(
            "error: {failed} operations failed or did not finish; their reasons are in the report"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Exit 0 when all was blocked, 1 when something got in (or could not be judged), 2 when
/// the audit could not run.
fn audit(args: AuditArgs) -> ExitCode {
    let json = args.json;
    let settings = args.settings();
    let progress = mtls::audit::ProgressLine::on_stderr();
    let audit = match block_on(Some(1), mtls::audit::run(&settings, &progress)) {
        Ok(Ok(audit)) => audit,
        Ok(Err(e)) | Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(mtls::cli::USAGE);
        }
    };
    match json {
        true => say(format_args!("{:#}\n", audit.to_json())),
        false => say(mtls::audit::Table(&audit)),
    }
    if let Some(why) = &audit.stopped {
        eprintln!("error: {why}");
    }
    ExitCode::from(audit.exit_code())
}

/// Serves until SIGTERM or Ctrl-C; exit 1 when it cannot start (2 for a usage error).
fn proxy(args: ProxyArgs) -> mtls::Result<ExitCode> {
    let settings = args.settings()?;
    block_on(None, mtls::egress::serve(&settings))??;
    Ok(ExitCode::SUCCESS)
}

fn run(cli: Cli) -> mtls::Result<ExitCode> {
    let json = cli.json;
    let settings = cli.settings()?;
    let exchange = match block_on(Some(1), mtls::client::fetch_traced(&settings))? {
        Ok(exchange) => exchange,
        Err(failed) => {
            match (&failed.trace, json) {
                (Some(_), true) => say(format_args!("{:#}\n", failed.to_json())),
                (Some(trace), false) => say(format_args!("{trace}\n")),
                (None, _) => {}
            }
            return Err(failed.error);
        }
    };
    match (&exchange.trace, json) {
        (_, true) => say(format_args!("{:#}\n", exchange.to_json())),
        (Some(trace), false) => say(format_args!("{trace}\n{exchange}")),
        (None, false) => say(&exchange),
    }
    if exchange.status.is_success() {
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(refusal) = exchange.http_refusal() {
        eprintln!("error: {refusal}");
        return Ok(ExitCode::FAILURE);
    }
    eprintln!(
        "error: the server answered {} {}",
        exchange.status.as_u16(),
        exchange.status.canonical_reason().unwrap_or("")
    );
    Ok(ExitCode::FAILURE)
}
