//! Prometheus metrics: counters the server bumps, gauges read at scrape time, and the
//! plain-HTTP listener (`--metrics ADDR`) that serves them as text exposition format 0.0.4.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `mtls_handshakes_total` | counter | `outcome`: `success`, `failure` |
//! | `mtls_handshake_failures_total` | counter | `reason`: `no_certificate`, `unknown_ca`, `expired`, `revoked`, `bad_usage`, `policy_denied`, `timeout`, `protocol`, ... |
//! | `mtls_requests_total` | counter | `client` (its identity; at most [`MAX_CLIENTS`] of them, then `other`), `status` |
//! | `mtls_limits_hit_total` | counter | `limit`: `idle_timeout`, `header_timeout`, `header_too_large`, `stall_timeout`, `close_deadline`, `max_connections` (reached: new connections waited) |
//! | `mtls_reloads_total` | counter | `result`: `success`, `failure` |
//! | `mtls_reload_closed_connections_total` | counter | `reason`: why an open connection's client no longer verified after a reload |
//! | `mtls_open_connections`, `mtls_max_connections`, `mtls_lingering_connections` | gauge | |
//! | `mtls_certificate_expiry_seconds` | gauge | `role` (`server`, `ca`), `subject`, `file` |
//! | `mtls_crl_expiry_seconds` | gauge | `file`, `issuer` (seconds until its nextUpdate) |
//!
//! A client that completes the handshake but that no `--allow-*` rule admits counts as a
//! handshake `failure` with reason `policy_denied` (it is answered with 403s).
//!
//! Requests are counted per client without a global lock: a connection looks its client's
//! counters up once ([`Metrics::client`]) and each response bumps those. A scrape copies
//! the counters under short locks and formats them after releasing them. The number of
//! client label values is capped ([`MAX_CLIENTS`], then `client="other"` and one warning),
//! and so is the number of (client, status) series ([`MAX_SERIES`]).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
use tokio::sync::Semaphore;
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

/// Most distinct `client` label values; later clients are counted as `client="other"`.
pub const MAX_CLIENTS: usize = 1000;
/// Most distinct (client, status) series; beyond, responses count under `client="other"`.
pub const MAX_SERIES: usize = 4000;
/// The label value clients beyond the caps are counted under.
pub const OTHER_CLIENT: &str = "other";

/// The limits `mtls_limits_hit_total` always lists.
const LIMITS: [&str; 6] = [
    "idle_timeout",
    "header_timeout",
    "header_too_large",
    "stall_timeout",
    "close_deadline",
    "max_connections",
];

/// The counters, shared by every connection.
#[derive(Debug)]
pub struct Metrics {
    handshakes_ok: AtomicU64,
    handshakes_failed: AtomicU64,
    limits: [AtomicU64; LIMITS.len()],
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    /// Failures by reason, and connections closed on reload by reason.
    reasons: Mutex<Reasons>,
    clients: Mutex<HashMap<Arc<str>, ClientMetrics>>,
    other: ClientMetrics,
    series: Arc<AtomicUsize>,
    capped: AtomicBool,
}

#[derive(Debug, Default)]
struct Reasons {
    failures: BTreeMap<String, u64>,
    closed_on_reload: BTreeMap<String, u64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let series = Arc::new(AtomicUsize::new(0));
        Self {
            handshakes_ok: AtomicU64::new(0),
            handshakes_failed: AtomicU64::new(0),
            limits: Default::default(),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            reasons: Mutex::default(),
            clients: Mutex::default(),
            other: ClientMetrics::new(OTHER_CLIENT.into(), series.clone(), None),
            series,
            capped: AtomicBool::new(false),
        }
    }
}

/// One client's request counters (by status). Cheap to clone; a connection holds one.
#[derive(Clone, Debug)]
pub struct ClientMetrics(Arc<ClientCounters>);

#[derive(Debug)]
struct ClientCounters {
    label: Arc<str>,
    by_status: Mutex<Vec<(u16, u64)>>,
    series: Arc<AtomicUsize>,
    /// Where a new status goes once [`MAX_SERIES`] is reached (`None`: this is "other").
    overflow: Option<ClientMetrics>,
}

impl ClientMetrics {
    fn new(label: Arc<str>, series: Arc<AtomicUsize>, overflow: Option<ClientMetrics>) -> Self {
        Self(Arc::new(ClientCounters {
            label,
            by_status: Mutex::new(Vec::new()),
            series,
            overflow,
        }))
    }

    /// A response with `status` was sent to this client.
    pub fn request(&self, status: StatusCode) {
        let code = status.as_u16();
        let c = &self.0;
        {
            let mut by_status = lock(&c.by_status);
            if let Some((_, n)) = by_status.iter_mut().find(|(s, _)| *s == code) {
                *n += 1;
                return;
            }
            let room = c.overflow.is_none()
                || c.series
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        (n < MAX_SERIES).then_some(n + 1)
                    })
                    .is_ok();
            if room {
                by_status.push((code, 1));
                return;
            }
        }
        if let Some(other) = &c.overflow {
            other.request(status);
        }
    }

    /// The label value this client is counted under.
    pub fn label(&self) -> &str {
        &self.0.label
    }

    fn snapshot(&self, out: &mut Vec<(Arc<str>, u16, u64)>) {
        let by_status = lock(&self.0.by_status);
        out.extend(
            by_status
                .iter()
                .map(|(s, n)| (self.0.label.clone(), *s, *n)),
        );
    }
}

/// A poisoned lock still holds consistent counters (each update is one small step).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Values read when scraped.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    /// Connections accepted and not yet closed.
    pub open_connections: usize,
    /// `--max-connections`.
    pub max_connections: usize,
    /// Refused connections still open for their lingering close.
    pub lingering_connections: usize,
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
    /// A handshake completed and the client was admitted.
    pub fn handshake_succeeded(&self) {
        self.handshakes_ok.fetch_add(1, Ordering::Relaxed);
    }

    /// A handshake failed, or a verified client was denied (`policy_denied`).
    pub fn handshake_failed(&self, reason: &str) {
        self.handshakes_failed.fetch_add(1, Ordering::Relaxed);
        bump(&mut lock(&self.reasons).failures, reason);
    }

    /// An open connection was closed because its client no longer verified after a reload.
    pub fn closed_on_reload(&self, reason: &str) {
        bump(&mut lock(&self.reasons).closed_on_reload, reason);
    }

    /// The counters of the client named `identity`: look them up once per connection.
    /// Past [`MAX_CLIENTS`] distinct clients, new ones share `client="other"`.
    pub fn client(&self, identity: &str) -> ClientMetrics {
        let mut clients = lock(&self.clients);
        if let Some(c) = clients.get(identity) {
            return c.clone();
        }
        if clients.len() >= MAX_CLIENTS {
            drop(clients);
            if !self.capped.swap(true, Ordering::Relaxed) {
                warn!(
                    max_clients = MAX_CLIENTS,
                    "metrics: more distinct clients than mtls_requests_total keeps apart; \
                     further ones are counted as client=\"other\""
                );
            }
            return self.other.clone();
        }
        let label: Arc<str> = identity.into();
        let c = ClientMetrics::new(label.clone(), self.series.clone(), Some(self.other.clone()));
        clients.insert(label, c.clone());
        c
    }

    /// A response was sent to `client` (looks the client up each time: prefer
    /// [`Metrics::client`] once per connection).
    pub fn request(&self, client: &str, status: StatusCode) {
        self.client(client).request(status);
    }

    /// A limit acted: it closed a connection, or (`max_connections`) made new ones wait.
    pub fn limit(&self, which: &'static str) {
        if let Some(i) = LIMITS.iter().position(|l| *l == which) {
            self.limits[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A reload of the TLS material finished.
    pub fn reload(&self, succeeded: bool) {
        let counter = if succeeded {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition of every metric, with `gauges` read now. Counters are copied
    /// under short locks; the text is written after they are released.
    pub fn render(&self, gauges: &Gauges) -> String {
        let (failures, closed_on_reload) = {
            let r = lock(&self.reasons);
            (r.failures.clone(), r.closed_on_reload.clone())
        };
        let clients: Vec<ClientMetrics> = lock(&self.clients).values().cloned().collect();
        let mut requests = Vec::new();
        for c in clients.iter().chain(std::iter::once(&self.other)) {
            c.snapshot(&mut requests);
        }
        requests.sort();
        let mut out = String::new();
        let now = OffsetDateTime::now_utc();

        family(
            &mut out,
            "mtls_handshakes_total",
            "counter",
            "TLS handshakes by outcome (a verified client no rule admits is a failure).",
        );
        for (outcome, n) in [
            ("success", &self.handshakes_ok),
            ("failure", &self.handshakes_failed),
        ] {
            sample(
                &mut out,
                "mtls_handshakes_total",
                &[("outcome", outcome)],
                n.load(Ordering::Relaxed),
            );
        }

        family(
            &mut out,
            "mtls_handshake_failures_total",
            "counter",
            "Failed handshakes and denied clients, by reason.",
        );
        let mut all: BTreeMap<&str, u64> = FAILURE_REASONS.iter().map(|r| (*r, 0)).collect();
        for (reason, n) in &failures {
            all.insert(reason, *n);
        }
        for (reason, n) in all {
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
        for (client, status, n) in &requests {
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
            "Times a limit acted: a connection closed by idle_timeout, header_timeout, header_too_large or stall_timeout, or dropped when it did not close by its close_deadline; max_connections reached (new connections waited).",
        );
        for (limit, n) in LIMITS.iter().zip(&self.limits) {
            sample(
                &mut out,
                "mtls_limits_hit_total",
                &[("limit", limit)],
                n.load(Ordering::Relaxed),
            );
        }

        family(
            &mut out,
            "mtls_reloads_total",
            "counter",
            "Reloads of the certificates, key, CA and CRLs, by result.",
        );
        for (result, n) in [
            ("success", &self.reloads_ok),
            ("failure", &self.reloads_failed),
        ] {
            sample(
                &mut out,
                "mtls_reloads_total",
                &[("result", result)],
                n.load(Ordering::Relaxed),
            );
        }

        family(
            &mut out,
            "mtls_reload_closed_connections_total",
            "counter",
            "Open connections closed because their client no longer verified after a reload, by reason.",
        );
        for (reason, n) in &closed_on_reload {
            sample(
                &mut out,
                "mtls_reload_closed_connections_total",
                &[("reason", reason)],
                *n,
            );
        }

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
            "mtls_lingering_connections",
            "gauge",
            "Refused connections kept open for a moment so that their alert is read (outside --max-connections).",
        );
        sample(
            &mut out,
            "mtls_lingering_connections",
            &[],
            gauges.lingering_connections,
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

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_string(), 1);
        }
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

/// Most metrics connections served at once; more wait in the accept queue.
const MAX_SCRAPERS: usize = 8;
/// The longest a metrics connection may stay open.
const SCRAPE_DEADLINE: Duration = Duration::from_secs(30);

/// Serves `GET /metrics` on `listener` until `stop` resolves. `render` produces the body
/// at each scrape.
pub async fn serve(
    listener: TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut http = hyper::server::conn::http1::Builder::new();
    // One scrape per connection, a few at a time: a scraper needs no more, and the
    // listener must not become a way around --max-connections.
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .keep_alive(false);
    let slots = Arc::new(Semaphore::new(MAX_SCRAPERS));
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            () = &mut stop => return,
        };
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
            // A scraper that stalls is dropped; a scrape never takes this long.
            match tokio::time::timeout(SCRAPE_DEADLINE, conn).await {
                Ok(Err(e)) => {
                    debug!(peer.addr = %peer, error = %e, "metrics connection ended with an error");
                }
                Err(_) => debug!(peer.addr = %peer, "metrics connection took too long; dropped"),
                Ok(Ok(())) => {}
            }
            drop(permit);
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
    fn client_labels_are_capped_and_the_rest_count_as_other() {
        let m = Metrics::default();
        for i in 0..MAX_CLIENTS + 5 {
            m.client(&format!("client {i}")).request(StatusCode::OK);
        }
        let a = m.client("client 0");
        a.request(StatusCode::OK);
        a.request(StatusCode::FORBIDDEN);
        let late = m.client("late");
        assert_eq!(late.label(), OTHER_CLIENT);
        late.request(StatusCode::OK);
        let text = m.render(&Gauges::default());
        let series = text
            .lines()
            .filter(|l| l.starts_with("mtls_requests_total{"))
            .count();
        assert_eq!(
            series,
            MAX_CLIENTS + 2,
            "one per client, a 403 for client 0, other"
        );
        assert!(
            text.contains("mtls_requests_total{client=\"client 0\",status=\"200\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("mtls_requests_total{client=\"client 0\",status=\"403\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("mtls_requests_total{client=\"other\",status=\"200\"} 6\n"),
            "{text}"
        );
    }

    #[test]
    fn client_status_series_are_capped_too() {
        let m = Metrics::default();
        let clients: Vec<ClientMetrics> = (0..MAX_CLIENTS)
            .map(|i| m.client(&format!("c{i}")))
            .collect();
        // Five statuses each would be 5000 series: past MAX_SERIES they count as "other".
        for status in [200u16, 201, 202, 203, 204] {
            for c in &clients {
                c.request(StatusCode::from_u16(status).expect("status"));
            }
        }
        let text = m.render(&Gauges::default());
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("mtls_requests_total{"))
            .collect();
        let other = series
            .iter()
            .filter(|l| l.contains("client=\"other\""))
            .count();
        assert_eq!(series.len() - other, MAX_SERIES);
        assert!(other >= 1, "{text}");
        let total: u64 = series
            .iter()
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        assert_eq!(total, 5 * MAX_CLIENTS as u64, "no response went uncounted");
    }

    #[test]
    fn expiry_gauges_count_seconds_from_now() {
        let gauges = Gauges {
            open_connections: 3,
            max_connections: 10,
            lingering_connections: 0,
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
