//! `client bench`: what mutual TLS costs, measured against one's own server.
//!
//! A bounded load run ([`load`]) through the library client's own path: the same config
//! builder, connect, handshake and HTTP code as `client`, so a failure is counted by the
//! same plain-language reason `client` prints ([`operation`]). Three modes say what each
//! operation is ([`Mode`]): a full handshake per request, a resumed one, or many requests
//! on each kept-alive connection. [`compare`] runs them back to back, with plain TLS
//! without a client certificate beside them when a server allows it, and says when it
//! cannot. Each run ends: a count or a duration (both capped), a limit on every phase,
//! a hard stop, and loopback only unless told otherwise.
//!
//! The results ([`tally`]): operations per second, latency percentiles from an HDR
//! histogram, session resumptions counted from what rustls says of each handshake, this
//! process's CPU time ([`cpu`]), and the failures grouped by reason; as a table
//! ([`table`]) or JSON ([`json`]), with a progress bar on a terminal ([`progress`]).

mod compare;
pub mod cpu;
mod json;
mod load;
mod operation;
mod progress;
mod table;
pub mod tally;

use std::fmt;
use std::time::Duration;

use crate::client::{ClientSettings, Url};
use crate::error::{Error, Result};

pub use compare::{Comparison, Row, compare};
pub use progress::Progress;
pub use tally::{Latency, Reason, Run};

/// The most connections a run opens at once.
pub const MAX_CONNECTIONS: usize = 1024;

/// The longest a run lasts (a `--requests` run stops here too).
pub const MAX_DURATION: Duration = Duration::from_secs(600);

/// The most operations a `--requests` run asks for.
pub const MAX_REQUESTS: u64 = 10_000_000;

/// The longest limit for one phase of one operation (connect, handshake, answer).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// What one operation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A new TCP connection and a full TLS handshake for each request; no resumption.
    Full,
    /// As `Full`, but each connection resumes the session of the one before it (each
    /// worker's first handshake is a full one).
    Resumed,
    /// A few connections, each carrying many requests (HTTP/2 or HTTP/1.1 keep-alive).
    KeepAlive,
}

impl Mode {
    /// Every mode, as typed on the command line.
    pub const NAMES: [&'static str; 3] = ["full", "resumed", "keepalive"];

    /// What one operation of this mode is, in words.
    pub fn operation(self) -> &'static str {
        match self {
            Mode::Full => {
                "a new TCP connection, a full TLS handshake (no session resumption), one GET, close"
            }
            Mode::Resumed => {
                "a new TCP connection, a TLS handshake resuming the session of this worker's \
                 previous connection (its first is a full one), one GET, close"
            }
            Mode::KeepAlive => {
                "one GET on a connection kept open (one full handshake per connection, not in \
                 the latency)"
            }
        }
    }

    /// What is counted per second.
    pub fn unit(self) -> &'static str {
        match self {
            Mode::Full | Mode::Resumed => "handshakes",
            Mode::KeepAlive => "requests",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Full => Self::NAMES[0],
            Mode::Resumed => Self::NAMES[1],
            Mode::KeepAlive => Self::NAMES[2],
        })
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "full" => Ok(Mode::Full),
            "resumed" | "resume" => Ok(Mode::Resumed),
            "keepalive" | "keep-alive" => Ok(Mode::KeepAlive),
            other => Err(format!(
                "unknown mode {other:?}: choose {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// When a run stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// After exactly this many operations (or at [`MAX_DURATION`]).
    Requests(u64),
    /// When this time has passed: no operation starts after it.
    Duration(Duration),
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Requests(n) => write!(f, "{n} operations"),
            Bound::Duration(d) => f.write_str(&crate::format::format_duration(*d)),
        }
    }
}

/// What to measure, and how hard.
#[derive(Clone, Debug)]
pub struct BenchSettings {
    /// The server, our certificate (or none), the CA, the TLS pins, and the limit of each
    /// phase of an operation.
    pub client: ClientSettings,
    /// What one operation is.
    pub mode: Mode,
    /// How many connections (workers) run at once.
    pub connections: usize,
    /// When the run stops.
    pub bound: Bound,
    /// Allow a server that is not on this machine.
    pub allow_remote: bool,
}

impl BenchSettings {
    /// Full handshakes on 16 connections for 10 seconds, loopback only.
    pub fn new(client: ClientSettings) -> Self {
        Self {
            client,
            mode: Mode::Full,
            connections: 16,
            bound: Bound::Duration(Duration::from_secs(10)),
            allow_remote: false,
        }
    }

    /// The limits checked: connections, count, duration and phase limits within their caps.
    fn check(&self) -> Result<()> {
        let usage = |m: String| Err(Error::Usage(m));
        if !(1..=MAX_CONNECTIONS).contains(&self.connections) {
            return usage(format!(
                "--connections {} is out of range: from 1 to {MAX_CONNECTIONS}",
                self.connections
            ));
        }
        match self.bound {
            Bound::Requests(n) if !(1..=MAX_REQUESTS).contains(&n) => {
                return usage(format!(
                    "--requests {n} is out of range: from 1 to {MAX_REQUESTS}"
                ));
            }
            Bound::Duration(d) if d.is_zero() || d > MAX_DURATION => {
                return usage(format!(
                    "--duration {} is out of range: more than 0 and at most {}",
                    crate::format::format_duration(d),
                    crate::format::format_duration(MAX_DURATION)
                ));
            }
            _ => {}
        }
        let c = &self.client;
        for limit in [c.connect_timeout, c.handshake_timeout, c.response_timeout] {
            if limit.is_zero() || limit > MAX_TIMEOUT {
                return usage(format!(
                    "--timeout {} is out of range: more than 0 and at most {}",
                    crate::format::format_duration(limit),
                    crate::format::format_duration(MAX_TIMEOUT)
                ));
            }
        }
        Ok(())
    }
}

/// Runs one measurement, drawing progress on `progress`.
pub async fn run(settings: &BenchSettings, progress: &Progress) -> Result<Run> {
    settings.check()?;
    only_loopback(&settings.client.url, "--url", settings.allow_remote).await?;
    let mtls = settings.client.identity.is_some();
    load::measure(settings, label(settings.mode, mtls), progress).await
}

/// A row's name: the mode, with or without a client certificate.
fn label(mode: Mode, mtls: bool) -> String {
    let who = match mtls {
        true => "mTLS",
        false => "no client certificate",
    };
    match mode {
        Mode::Full => format!("{who}, full handshakes"),
        Mode::Resumed => format!("{who}, resumed"),
        Mode::KeepAlive => format!("{who}, keep-alive"),
    }
}

/// Refuses a server that is not on this machine unless `allow_remote` (`flag` gave its
/// URL): a load run is for one's own servers.
async fn only_loopback(url: &Url, flag: &str, allow_remote: bool) -> Result<()> {
    crate::client::only_loopback(url, flag, allow_remote, "a load run is for servers you run").await
}
