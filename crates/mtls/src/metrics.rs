//! Prometheus metrics: counters the server bumps, gauges read at scrape time, and the
//! plain-HTTP listener (`--metrics ADDR`) that serves them as text exposition format 0.0.4.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `mtls_handshakes_total` | counter | `outcome`: `success`, `failure` |
//! | `mtls_handshake_failures_total` | counter | `reason`: `no_certificate`, `unknown_ca`, `expired`, `revoked`, `bad_usage`, `policy_denied`, `timeout`, `protocol`, ... |
//! | `mtls_requests_total` | counter | `client` (its identity), `status` |
//! | `mtls_limits_hit_total` | counter | `limit`: `idle_timeout`, `header_timeout`, `header_too_large`, `max_connections` (reached: new connections waited) |
//! | `mtls_reloads_total` | counter | `result`: `success`, `failure` |
//! | `mtls_open_connections`, `mtls_max_connections` | gauge | |
//! | `mtls_certificate_expiry_seconds` | gauge | `role` (`server`, `ca`), `subject`, `file` |
//! | `mtls_crl_expiry_seconds` | gauge | `file`, `issuer` (seconds until its nextUpdate) |
//!
//! A client that completes the handshake but that no `--allow-*` rule admits counts as a
//! handshake `failure` with reason `policy_denied` (it is answered with 403s).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tracing::{debug, warn};

/// Failure reasons always exported, at 0 until they happen, so dashboards see them.
pub const FAILURE_REASONS: [&str; 8] = [
    "no_certificate",
    "unknown_ca",
    "expired",
    "revoked",
    "bad_usage",
    crate::policy::POLICY_DENIED,
    "timeout",
    "protocol",
];

/// The counters, shared by every connection.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    handshakes: BTreeMap<&'static str, u64>,
    failures: BTreeMap<String, u64>,
    requests: BTreeMap<(String, u16), u64>,
    limits: BTreeMap<&'static str, u64>,
    reloads: BTreeMap<&'static str, u64>,
}

/// Values read when scraped.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    /// Connections accepted and not yet closed.
    pub open_connections: usize,
    /// `--max-connections`.
    pub max_connections: usize,
    /// Loaded certificates and CRLs, and when they expire.
    pub expiries: Vec<Expiry>,
}

/// Something loaded that expires.
#[derive(Clone, Debug)]
pub struct Expiry {
    /// What it is.
    pub what: Expiring,
    /// The file it came from.
    pub file: PathBuf,
    /// notAfter (certificates) or nextUpdate (CRLs).
    pub at: OffsetDateTime,
}

/// The kinds of [`Expiry`].
#[derive(Clone, Debug)]
pub enum Expiring {
    /// A certificate: `role` is `server` or `ca`.
    Certificate {
        /// `server` or `ca`.
        role: &'static str,
        /// Its subject.
        subject: String,
    },
    /// A CRL.
    Crl {
        /// Its issuer.
        issuer: String,
    },
}

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, Counters> {
        // A panic while holding this lock cannot leave the maps inconsistent (each update is
        // one insert), so a poisoned lock is still safe to use.
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A handshake completed and the client was admitted.
    pub fn handshake_succeeded(&self) {
        *self.lock().handshakes.entry("success").or_default() += 1;
    }

    /// A handshake failed, or a verified client was denied (`policy_denied`).
    pub fn handshake_failed(&self, reason: &str) {
        let mut c = self.lock();
        *c.handshakes.entry("failure").or_default() += 1;
        *c.failures.entry(reason.to_string()).or_default() += 1;
    }

    /// A response was sent to `client`.
    pub fn request(&self, client: &str, status: StatusCode) {
        *self
            .lock()
            .requests
            .entry((client.to_string(), status.as_u16()))
            .or_default() += 1;
    }

    /// A limit acted: it closed a connection, or (`max_connections`) made new ones wait.
    pub fn limit(&self, which: &'static str) {
        *self.lock().limits.entry(which).or_default() += 1;
    }

    /// A reload of the TLS material finished.
    pub fn reload(&self, succeeded: bool) {
        let key = if succeeded { "success" } else { "failure" };
        *self.lock().reloads.entry(key).or_default() += 1;
    }

    /// The text exposition of every metric, with `gauges` read now.
    pub fn render(&self, gauges: &Gauges) -> String {
        let c = self.lock();
        let mut out = String::new();
        let now = OffsetDateTime::now_utc();

        family(
            &mut out,
            "mtls_handshakes_total",
            "counter",
            "TLS handshakes by outcome (a verified client no rule admits is a failure).",
        );
        for outcome in ["success", "failure"] {
            let n = c.handshakes.get(outcome).copied().unwrap_or(0);
            sample(
                &mut out,
                "mtls_handshakes_total",
                &[("outcome", outcome)],
                n,
            );
        }

        family(
            &mut out,
            "mtls_handshake_failures_total",
            "counter",
            "Failed handshakes and denied clients, by reason.",
        );
        let mut failures: BTreeMap<&str, u64> = FAILURE_REASONS.iter().map(|r| (*r, 0)).collect();
        for (reason, n) in &c.failures {
            failures.insert(reason, *n);
        }
        for (reason, n) in failures {
            sample(
                &mut out,
                "mtls_handshake_failures_total",
                &[("reason", reason)],
                n,
            );
        }

        family(
            &mut out,
            "mtls_requests_total",
            "counter",
            "HTTP responses sent, by client identity and status.",
        );
        for ((client, status), n) in &c.requests {
            let status = status.to_string();
            sample(
                &mut out,
                "mtls_requests_total",
                &[("client", client), ("status", &status)],
                *n,
            );
        }

        family(
            &mut out,
            "mtls_limits_hit_total",
            "counter",
            "Times a limit acted: a connection closed by idle_timeout, header_timeout or header_too_large; max_connections reached (new connections waited).",
        );
        for limit in [
            "idle_timeout",
            "header_timeout",
            "header_too_large",
            "max_connections",
        ] {
            let n = c.limits.get(limit).copied().unwrap_or(0);
            sample(&mut out, "mtls_limits_hit_total", &[("limit", limit)], n);
        }

        family(
            &mut out,
            "mtls_reloads_total",
            "counter",
            "Reloads of the certificates, key, CA and CRLs, by result.",
        );
        for result in ["success", "failure"] {
            let n = c.reloads.get(result).copied().unwrap_or(0);
            sample(&mut out, "mtls_reloads_total", &[("result", result)], n);
        }
        drop(c);

        family(
            &mut out,
            "mtls_open_connections",
            "gauge",
            "Connections accepted and not yet closed.",
        );
        sample(
            &mut out,
            "mtls_open_connections",
            &[],
            gauges.open_connections,
        );
        family(
            &mut out,
            "mtls_max_connections",
            "gauge",
            "The connection limit (--max-connections).",
        );
        sample(
            &mut out,
            "mtls_max_connections",
            &[],
            gauges.max_connections,
        );

        family(
            &mut out,
            "mtls_certificate_expiry_seconds",
            "gauge",
            "Seconds until a loaded certificate expires (negative once it has).",
        );
        for e in &gauges.expiries {
            if let Expiring::Certificate { role, subject } = &e.what {
                let file = e.file.display().to_string();
                sample(
                    &mut out,
                    "mtls_certificate_expiry_seconds",
                    &[("role", role), ("subject", subject), ("file", &file)],
                    (e.at - now).whole_seconds(),
                );
            }
        }
        family(
            &mut out,
            "mtls_crl_expiry_seconds",
            "gauge",
            "Seconds until a loaded CRL's nextUpdate (negative once it has passed).",
        );
        for e in &gauges.expiries {
            if let Expiring::Crl { issuer } = &e.what {
                let file = e.file.display().to_string();
                sample(
                    &mut out,
                    "mtls_crl_expiry_seconds",
                    &[("file", &file), ("issuer", issuer)],
                    (e.at - now).whole_seconds(),
                );
            }
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A label value as the text format needs it: `\`, `"` and newlines escaped.
pub fn escape_label(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Serves `GET /metrics` on `listener` until `stop` resolves. `render` produces the body
/// at each scrape.
pub async fn serve(
    listener: TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => return,
        };
        let render = render.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let render = render.clone();
            async move { Ok::<_, Infallible>(scrape(&req, render.as_ref())) }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(peer.addr = %peer, error = %e, "metrics connection ended with an error");
            }
        });
    }
}

fn scrape(
    req: &Request<Incoming>,
    render: &(dyn Fn() -> String + Send + Sync),
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            render(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: metrics are at GET /metrics\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_has_help_type_and_every_listed_failure_reason() {
        let m = Metrics::default();
        m.handshake_succeeded();
        m.handshake_failed("unknown_ca");
        m.handshake_failed("policy_denied");
        m.request("Client A (spiffe://mtls.demo/client-a)", StatusCode::OK);
        let text = m.render(&Gauges::default());
        assert!(
            text.contains("# TYPE mtls_handshakes_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("mtls_handshakes_total{outcome=\"success\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("mtls_handshakes_total{outcome=\"failure\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("mtls_handshake_failures_total{reason=\"revoked\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("mtls_handshake_failures_total{reason=\"policy_denied\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "mtls_requests_total{client=\"Client A (spiffe://mtls.demo/client-a)\",status=\"200\"} 1\n"
            ),
            "{text}"
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} has no TYPE line"
            );
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let m = Metrics::default();
        m.request("CN=\"quoted\"", StatusCode::FORBIDDEN);
        let text = m.render(&Gauges::default());
        assert!(
            text.contains("client=\"CN=\\\"quoted\\\"\",status=\"403\""),
            "{text}"
        );
    }

    #[test]
    fn expiry_gauges_count_seconds_from_now() {
        let gauges = Gauges {
            open_connections: 3,
            max_connections: 10,
            expiries: vec![
                Expiry {
                    what: Expiring::Certificate {
                        role: "server",
                        subject: "CN=localhost".into(),
                    },
                    file: "certs/server.crt".into(),
                    at: OffsetDateTime::now_utc() + time::Duration::days(1),
                },
                Expiry {
                    what: Expiring::Crl {
                        issuer: "CN=CA".into(),
                    },
                    file: "certs/ca.crl".into(),
                    at: OffsetDateTime::now_utc() - time::Duration::hours(1),
                },
            ],
        };
        let text = Metrics::default().render(&gauges);
        assert!(text.contains("mtls_open_connections 3\n"), "{text}");
        let server = text
            .lines()
            .find(|l| l.starts_with("mtls_certificate_expiry_seconds{role=\"server\""))
            .expect("server expiry");
        let secs: i64 = server
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("a number");
        assert!((86_390..=86_400).contains(&secs), "{server}");
        let crl = text
            .lines()
            .find(|l| l.starts_with("mtls_crl_expiry_seconds{file=\"certs/ca.crl\""))
            .expect("crl expiry");
        assert!(crl.contains(" -3"), "an expired CRL is negative: {crl}");
    }
}
