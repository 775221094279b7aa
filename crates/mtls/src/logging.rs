//! Logs with tracing to stderr, filtered by `RUST_LOG` (default `info`).
//!
//! Lines are formatted on the thread that logs and written by a background thread through a
//! buffer that is flushed whenever the queue runs empty: under load many lines share one
//! write, when idle each line appears at once. Nothing is dropped; a full queue makes the
//! logging thread wait.

use std::io::{BufWriter, IsTerminal};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Keeps the log writer alive; dropping it flushes what is left. Hold it in `main`.
#[must_use = "dropping the guard stops logging; keep it until main returns"]
pub struct LogGuard(#[allow(dead_code)] Option<WorkerGuard>);

/// Installs the subscriber. Colours only on a terminal, and never with `NO_COLOR` set.
pub fn init() -> LogGuard {
    let (filter, bad) = match EnvFilter::try_from_default_env() {
        Ok(f) => (f, None),
        Err(e) => (
            EnvFilter::new("info"),
            std::env::var("RUST_LOG")
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| (v, e)),
        ),
    };
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(BufWriter::new(std::io::stderr()));
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(false)
        .try_init()
        .is_ok();
    if let Some((value, e)) = bad {
        tracing::warn!(rust_log = %value, error = %e, "RUST_LOG is not a valid filter; logging at info");
    }
    LogGuard(installed.then_some(guard))
}
