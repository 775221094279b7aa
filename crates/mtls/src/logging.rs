//! Logs with tracing to stderr, filtered by `RUST_LOG` (default `info`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the subscriber. Colours only on a terminal, and never with `NO_COLOR` set.
pub fn init() {
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
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
    if let Some((value, e)) = bad {
        tracing::warn!(rust_log = %value, error = %e, "RUST_LOG is not a valid filter; logging at info");
    }
}
