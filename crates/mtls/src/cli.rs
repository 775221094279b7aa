//! What the three binaries share: how a run ends (exit codes, the one `error:` line), the
//! async runtime, and how hints name the programs.
//!
//! Hints name a program the way the user runs ours: through cargo (`cargo run -p
//! certificate -- renew server`) or directly (`certificate renew server`).

use std::ffi::OsStr;
use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The three programs of the project.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// `certificate`: the CA tool.
    Certificate,
    /// `server`: the mTLS server.
    Server,
    /// `client`: the mTLS client.
    Client,
}

impl Program {
    const ALL: [Program; 3] = [Program::Certificate, Program::Server, Program::Client];

    /// The package (and binary) name.
    pub fn name(self) -> &'static str {
        match self {
            Program::Certificate => "certificate",
            Program::Server => "server",
            Program::Client => "client",
        }
    }

    /// The command that runs this program with `args` (empty for none), spelled the way the
    /// user runs ours: `cargo run -p certificate -- renew server`, or `certificate renew
    /// server` when the binaries are run directly.
    pub fn command(self, args: &str) -> String {
        let args = args.trim();
        match invocation() {
            Invocation::Cargo => match args.is_empty() {
                true => format!("cargo run -p {}", self.name()),
                false => format!("cargo run -p {} -- {args}", self.name()),
            },
            Invocation::Direct { current, as_typed } => {
                let name = if *current == Some(self) {
                    as_typed.as_str()
                } else {
                    self.name()
                };
                match args.is_empty() {
                    true => name.to_string(),
                    false => format!("{name} {args}"),
                }
            }
        }
    }
}

/// How the user runs the programs.
#[derive(Clone, Debug)]
enum Invocation {
    /// `cargo run -p NAME -- ARGS`.
    Cargo,
    /// `NAME ARGS`; the running program keeps the name it was started by.
    Direct {
        current: Option<Program>,
        as_typed: String,
    },
}

static INVOCATION: OnceLock<Invocation> = OnceLock::new();

/// Cargo sets `CARGO` and the package's `CARGO_PKG_NAME` for a program it runs.
fn invocation() -> &'static Invocation {
    INVOCATION.get_or_init(|| {
        let package = std::env::var("CARGO_PKG_NAME").ok();
        let ours = Program::ALL
            .into_iter()
            .find(|p| package.as_deref() == Some(p.name()));
        if std::env::var_os("CARGO").is_some() && ours.is_some() {
            return Invocation::Cargo;
        }
        let typed = std::env::args_os().next();
        let as_typed = typed
            .as_deref()
            .map(Path::new)
            .and_then(Path::file_name)
            .and_then(OsStr::to_str)
            .unwrap_or("")
            .to_string();
        let current = Program::ALL.into_iter().find(|p| as_typed == p.name());
        let as_typed = if as_typed.is_empty() {
            current.map_or_else(String::new, |p| p.name().to_string())
        } else {
            as_typed
        };
        Invocation::Direct { current, as_typed }
    })
}

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
