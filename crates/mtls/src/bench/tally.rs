//! What a run counted: each worker keeps a [`Tally`], and the run adds them up into a
//! [`Run`]: counts, latency percentiles from an HDR histogram, resumptions as rustls
//! reported them, and failures grouped by the words `client` prints for them.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::operation::Outcome;
use super::{Bound, Mode};
use crate::error::Error;

/// The largest latency the histogram tells apart (longer ones count as this): more than
/// any operation can take within its phase limits.
const HIGHEST_MICROS: u64 = 10 * 60 * 1_000_000;

/// One worker's counts.
#[derive(Debug)]
pub(super) struct Tally {
    /// Latency of successful operations, in microseconds.
    latency: Histogram<u64>,
    pub(super) succeeded: u64,
    pub(super) failed: u64,
    reasons: BTreeMap<String, u64>,
    pub(super) handshakes: u64,
    pub(super) resumed: u64,
    pub(super) tls: Option<String>,
    pub(super) http: Option<String>,
}

impl Tally {
    pub(super) fn new() -> Self {
        Self {
            // Three significant digits: 0.1% resolution at any scale. Invariant: these
            // bounds are valid (low >= 1, high >= 2 * low, at most 5 digits), so this never
            // fails.
            latency: Histogram::new_with_bounds(1, HIGHEST_MICROS, 3)
                .expect("valid histogram bounds"),
            succeeded: 0,
            failed: 0,
            reasons: BTreeMap::new(),
            handshakes: 0,
            resumed: 0,
            tls: None,
            http: None,
        }
    }

    /// A successful operation.
    pub(super) fn success(&mut self, outcome: &Outcome) {
        self.succeeded += 1;
        let micros = u64::try_from(outcome.latency.as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(micros.max(1));
        if let Some(report) = &outcome.handshake {
            self.handshakes += 1;
            self.resumed += u64::from(report.resumed);
            self.tls.get_or_insert_with(|| {
                format!(
                    "{} {}, key exchange {}",
                    report.version, report.cipher_suite, report.key_exchange
                )
            });
        }
        self.http
            .get_or_insert_with(|| http_name(outcome.http, outcome.handshake.as_ref()));
    }

    /// A failed operation, counted by its reason as `client` words it.
    pub(super) fn failure(&mut self, error: &Error) {
        self.failed += 1;
        *self.reasons.entry(error.to_string()).or_default() += 1;
    }

    /// Adds `other`'s counts to these.
    pub(super) fn add(&mut self, other: &Tally) {
        // Same bounds on both sides: adding cannot fail; if it did, keep what we have.
        let _ = self.latency.add(&other.latency);
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        for (reason, n) in &other.reasons {
            *self.reasons.entry(reason.clone()).or_default() += n;
        }
        self.handshakes += other.handshakes;
        self.resumed += other.resumed;
        if self.tls.is_none() {
            self.tls.clone_from(&other.tls);
        }
        if self.http.is_none() {
            self.http.clone_from(&other.http);
        }
    }

    pub(super) fn finished(&self) -> u64 {
        self.succeeded + self.failed
    }

    /// The latency percentiles of the successful operations (`None`: none succeeded).
    pub(super) fn latency(&self) -> Option<Latency> {
        let h = &self.latency;
        let at = |q: f64| Duration::from_micros(h.value_at_quantile(q));
        (self.succeeded > 0).then(|| Latency {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: Duration::from_micros(h.max()),
            mean: Duration::from_secs_f64(h.mean() / 1e6),
        })
    }

    /// The failures by reason, most frequent first.
    pub(super) fn failures(&self) -> Vec<Reason> {
        let mut failures: Vec<Reason> = self
            .reasons
            .iter()
            .map(|(reason, &count)| Reason {
                reason: reason.clone(),
                count,
            })
            .collect();
        failures.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
        failures
    }
}

/// `HTTP/2 (h2)` or `HTTP/1.1`, as ALPN agreed it.
fn http_name(version: hyper::Version, handshake: Option<&crate::report::TlsReport>) -> String {
    let alpn = handshake
        .and_then(|r| r.alpn.as_deref())
        .map(|p| format!(" (ALPN {p})"))
        .unwrap_or_default();
    match version {
        hyper::Version::HTTP_2 => format!("HTTP/2{alpn}"),
        hyper::Version::HTTP_11 => format!("HTTP/1.1{alpn}"),
        other => format!("{other:?}{alpn}"),
    }
}

/// Latency percentiles of the successful operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latency {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// The slowest.
    pub max: Duration,
    /// The mean.
    pub mean: Duration,
}

/// A failure reason and how often it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    /// The words `client` prints for it.
    pub reason: String,
    /// How many operations failed so.
    pub count: u64,
}

/// One finished run.
#[derive(Clone, Debug)]
pub struct Run {
    /// What was measured ("full handshakes, mTLS").
    pub label: String,
    /// The server.
    pub url: String,
    /// What one operation was.
    pub mode: Mode,
    /// A client certificate was presented.
    pub client_auth: bool,
    /// Connections (workers) at once.
    pub connections: usize,
    /// When it was to stop.
    pub bound: Bound,
    /// Operations started.
    pub attempted: u64,
    /// Operations that got a 2xx answer.
    pub succeeded: u64,
    /// Operations that failed.
    pub failed: u64,
    /// Operations still running at the hard stop (not counted as either).
    pub unfinished: u64,
    /// From the first operation's start to the last one's end.
    pub elapsed: Duration,
    /// Latency of the successful operations (`None`: none succeeded).
    pub latency: Option<Latency>,
    /// Successful operations that made a handshake.
    pub handshakes: u64,
    /// Of those, how many rustls reported as resumed.
    pub resumed: u64,
    /// The TLS version, suite and key exchange of the first handshake that succeeded.
    pub tls: Option<String>,
    /// The HTTP version the server answered with.
    pub http: Option<String>,
    /// This process's CPU time during the run (`None` where it cannot be read).
    pub cpu: Option<Duration>,
    /// Failures, most frequent first.
    pub failures: Vec<Reason>,
    /// Why it stopped before its bound, if it did.
    pub cut_short: Option<String>,
}

impl Run {
    /// Successful operations per second.
    pub fn rate(&self) -> f64 {
        match self.elapsed.as_secs_f64() {
            s if s > 0.0 => self.succeeded as f64 / s,
            _ => 0.0,
        }
    }

    /// CPU time per finished operation.
    pub fn cpu_per_operation(&self) -> Option<Duration> {
        let finished = u32::try_from(self.succeeded + self.failed).ok()?;
        let cpu = self.cpu?;
        (finished > 0).then(|| cpu / finished)
    }

    /// CPU time as a share of one core over the run (1.0: one core busy throughout).
    pub fn cpu_cores(&self) -> Option<f64> {
        let secs = self.elapsed.as_secs_f64();
        self.cpu
            .filter(|_| secs > 0.0)
            .map(|c| c.as_secs_f64() / secs)
    }

    /// What the run says about resumption, when it matters: in `resumed` mode, how many
    /// handshakes resumed, and when none did, that the server does not resume.
    pub fn resumption_note(&self) -> Option<String> {
        if self.mode != Mode::Resumed || self.handshakes == 0 {
            return None;
        }
        let workers = self.connections.min(self.handshakes as usize);
        Some(match self.resumed {
            0 => format!(
                "the server resumed no session: all {} handshakes were full ones (does it \
                 issue session tickets or keep a session cache? our server does unless started \
                 with resumption off)",
                self.handshakes
            ),
            n => format!(
                "{n} of {} handshakes resumed (each of the {workers} workers' first is a full one)",
                self.handshakes
            ),
        })
    }
}
