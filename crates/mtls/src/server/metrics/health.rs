//! What orchestrators probe on the metrics listener: `GET /healthz` (the process answers:
//! restart it if not) and `GET /readyz` (send it traffic: it accepts connections and its
//! TLS material is current). Not ready is a 503 whose body says why, one reason a line:
//! which file, expired when, a CRL stale since when.

use std::fmt::Write as _;
use std::sync::Arc;

use hyper::StatusCode;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::format::format_time;
use crate::server::reload::{Expiring, LiveTls};
use crate::server::watchdog::Phase;

/// Reads what readiness depends on: the current TLS material and the server's phase.
#[derive(Clone, Debug)]
pub struct Health {
    tls: Arc<LiveTls>,
    phase: watch::Receiver<Phase>,
}

impl Health {
    /// Readiness from `tls` and `phase` (ready only while `Running`).
    pub fn new(tls: Arc<LiveTls>, phase: watch::Receiver<Phase>) -> Self {
        Self { tls, phase }
    }

    /// `/healthz`: answering at all is the proof.
    pub fn live(&self) -> (StatusCode, String) {
        (StatusCode::OK, "ok\n".into())
    }

    /// `/readyz`: 200 with what is loaded, or 503 with every reason it is not ready.
    pub fn ready(&self, now: OffsetDateTime) -> (StatusCode, String) {
        let material = self.tls.current();
        let mut reasons: Vec<String> = Vec::new();
        if *self.phase.borrow() != Phase::Running {
            reasons.push("shutting down: no longer accepting connections".into());
        }
        reasons.extend(material.unfit(now).iter().map(ToString::to_string));
        if !reasons.is_empty() {
            let body = reasons.iter().fold(String::new(), |mut out, r| {
                let _ = writeln!(out, "not ready: {r}");
                out
            });
            return (StatusCode::SERVICE_UNAVAILABLE, body);
        }
        let mut body =
            String::from("ready: accepting connections; TLS material loaded and current\n");
        for e in material.expiries() {
            let _ = match &e.what {
                Expiring::Certificate { role, .. } => writeln!(
                    body,
                    "{} certificate {} valid until {}",
                    if *role == "server" { "server" } else { "CA" },
                    e.file.display(),
                    format_time(e.at)
                ),
                Expiring::Crl { .. } => writeln!(
                    body,
                    "CRL {} next update {}",
                    e.file.display(),
                    format_time(e.at)
                ),
            };
        }
        if let Some(t) = &material.tickets {
            let _ = writeln!(
                body,
                "session-ticket keys {}: {} (encrypting with {})",
                t.path.display(),
                t.ids.len(),
                t.ids.first().map_or("none", String::as_str)
            );
        }
        (StatusCode::OK, body)
    }
}
