//! What the three binaries share: how a run ends (exit codes, the one `error:` line), the
//! async runtime, output on stdout, a progress bar on stderr, and `--generate`
//! (completions and man pages).

use std::future::Future;
use std::process::ExitCode;

use crate::error::{Error, Result};

/// Exit status for a command-line mistake (clap uses it too).
pub const USAGE: u8 = 2;

/// The end of a binary's run: its result becomes the exit status, and an error becomes one
/// `error:` line on stderr (never a panic): 0 ok, 1 failure, 2 usage.
pub fn finish(result: Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            if e.is_usage() {
                eprintln!("\nFor more information, try '--help'.");
                ExitCode::from(USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// A progress bar on stderr when it is a terminal; hidden in a pipe or a CI log, so that
/// only a person watching sees it.
pub fn progress_bar() -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    match std::io::stderr().is_terminal() {
        true => {
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr())
        }
        false => indicatif::ProgressBar::hidden(),
    }
}

/// Runs `work` to completion on a runtime of its own: one thread for the tools, all cores
/// for the server (`threads` = `None`), or a fixed number of worker threads.
pub fn block_on<F: Future>(threads: Option<usize>, work: F) -> Result<F::Output> {
    let runtime = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Runtime::new(),
    };
    let runtime = runtime.map_err(|source| Error::Io {
        context: "cannot start the async runtime".into(),
        source,
    })?;
    Ok(runtime.block_on(work))
}

/// Prints program output to stdout; a closed pipe (`| head`) is not worth a panic.
pub fn say(text: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{text}");
    let _ = out.flush();
}

/// What `--generate` prints: shell completions, or the man page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Generate {
    /// Completions for bash.
    CompleteBash,
    /// Completions for zsh.
    CompleteZsh,
    /// Completions for fish.
    CompleteFish,
    /// Completions for elvish.
    CompleteElvish,
    /// Completions for PowerShell.
    CompletePowershell,
    /// The man page (roff).
    Man,
}

/// Prints what `what` asks for, generated from the program's clap definition `cmd`.
pub fn generate(mut cmd: clap::Command, what: Generate) -> ExitCode {
    use clap_complete::Shell;
    let name = cmd.get_name().to_string();
    let mut out = std::io::stdout().lock();
    let shell = match what {
        Generate::CompleteBash => Shell::Bash,
        Generate::CompleteZsh => Shell::Zsh,
        Generate::CompleteFish => Shell::Fish,
        Generate::CompleteElvish => Shell::Elvish,
        Generate::CompletePowershell => Shell::PowerShell,
        Generate::Man => {
            return match clap_mangen::Man::new(cmd).render(&mut out) {
                Ok(()) => ExitCode::SUCCESS,
                // `| head` closed the pipe: nothing more to say.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot write the man page: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    ExitCode::SUCCESS
}
