//! The three programs, and how a hint names them: the way the user runs ours, through cargo
//! (`cargo run -p certificate -- renew server`) or directly (`certificate renew server`).

use std::ffi::OsStr;
use std::path::Path;
use std::sync::OnceLock;

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
