//! The counters the server bumps, and the values read at scrape time, in a
//! prometheus-client registry.
//!
//! Requests are counted per client without a global lock: a connection looks its client's
//! counters up once ([`Metrics::client`]) and each response bumps those. The number of
//! client label values is capped ([`MAX_CLIENTS`], then `client="other"` and one warning),
//! and so is the number of (client, status) series ([`MAX_SERIES`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hyper::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use time::OffsetDateTime;
use tracing::warn;

use crate::server::proxy_header::Refusal;
use crate::server::reload::{Expiring, Expiry};
use crate::server::watchdog::Limit;

/// Failure reasons always exported, at 0 until they happen, so dashboards see them.
pub const FAILURE_REASONS: [&str; 8] = [
    "no_certificate",
    "unknown_ca",
    "expired",
    "revoked",
    "bad_usage",
    crate::server::policy::POLICY_DENIED,
    "timeout",
    "protocol",
];

/// Most distinct `client` label values; later clients are counted as `client="other"`.
pub const MAX_CLIENTS: usize = 1000;
/// Most distinct (client, status) series; beyond, responses count under `client="other"`.
pub const MAX_SERIES: usize = 4000;
/// The label value clients beyond the caps are counted under.
pub const OTHER_CLIENT: &str = "other";

type Labels = Vec<(&'static str, String)>;

/// Values the rest of the server owns, read at each scrape.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Connections established and not yet closed.
    pub open_connections: usize,
    /// Connections accepted and still in their TLS handshake.
    pub handshaking_connections: usize,
    /// `--max-connections`.
    pub max_connections: usize,
    /// Refused connections still open for their lingering close.
    pub lingering_connections: usize,
    /// Loaded certificates and CRLs, and when they expire.
    pub expiries: Vec<Expiry>,
    /// Reloads: (succeeded, failed).
    pub reloads: (u64, u64),
    /// How often each limit acted.
    pub limits: Vec<(Limit, u64)>,
    /// Open connections closed after a reload, by reason.
    pub reload_closes: Vec<(&'static str, u64)>,
}

/// Where a [`Snapshot`] comes from.
pub type Source = Box<dyn Fn() -> Snapshot + Send + Sync>;

/// The counters, shared by every connection, and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    handshakes_ok: Counter,
    handshakes_failed: Counter,
    failures: Family<Labels, Counter>,
    requests: Family<Labels, Counter>,
    proxy_refusals: Family<Labels, Counter>,
    clients: Mutex<HashMap<Arc<str>, ClientMetrics>>,
    other: ClientMetrics,
    series: Arc<AtomicUsize>,
    capped: AtomicBool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The counters, and `source` read at each scrape.
    pub fn new(source: Source) -> Self {
        let mut registry = Registry::default();
        let handshakes = Family::<Labels, Counter>::default();
        registry.register(
            "mtls_handshakes",
            "TLS handshakes, by outcome (a denied client counts as a failure)",
            handshakes.clone(),
        );
        let failures = Family::<Labels, Counter>::default();
        registry.register(
            "mtls_handshake_failures",
            "Failed handshakes and denied clients, by reason",
            failures.clone(),
        );
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "mtls_requests",
            "HTTP responses sent, by client identity and status",
            requests.clone(),
        );
        let proxy_refusals = Family::<Labels, Counter>::default();
        registry.register(
            "mtls_proxy_protocol_refusals",
            "Connections refused before TLS with --proxy-protocol, by reason",
            proxy_refusals.clone(),
        );
        for reason in Refusal::LABELS {
            proxy_refusals.get_or_create_owned(&vec![("reason", reason.to_string())]);
        }
        let outcome = |o: &str| handshakes.get_or_create_owned(&vec![("outcome", o.to_string())]);
        let (handshakes_ok, handshakes_failed) = (outcome("success"), outcome("failure"));
        for reason in FAILURE_REASONS {
            failures.get_or_create_owned(&vec![("reason", reason.to_string())]);
        }
        registry.register_collector(Box::new(ScrapeTime(source)));
        let series = Arc::new(AtomicUsize::new(0));
        Self {
            registry,
            other: ClientMetrics::new(OTHER_CLIENT.into(), requests.clone(), series.clone(), None),
            handshakes_ok,
            handshakes_failed,
            failures,
            requests,
            proxy_refusals,
            clients: Mutex::default(),
            series,
            capped: AtomicBool::new(false),
        }
    }

    /// A handshake completed and the client was admitted.
    pub fn handshake_succeeded(&self) {
        self.handshakes_ok.inc();
    }

    /// A handshake failed, or a verified client was denied (`policy_denied`).
    pub fn handshake_failed(&self, reason: &str) {
        self.handshakes_failed.inc();
        self.failures
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    /// A connection was refused before TLS for `--proxy-protocol` ([`Refusal::label`]).
    pub fn proxy_refused(&self, reason: &str) {
        self.proxy_refusals
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
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
        let c = ClientMetrics::new(
            label.clone(),
            self.requests.clone(),
            self.series.clone(),
            Some(self.other.clone()),
        );
        clients.insert(label, c.clone());
        c
    }

    /// The text exposition (Prometheus format 0.0.4) of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; the encoder's only error is the writer's.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// One client's request counters. Cheap to clone; a connection holds one.
#[derive(Clone, Debug)]
pub struct ClientMetrics(Arc<ClientCounters>);

#[derive(Debug)]
struct ClientCounters {
    label: Arc<str>,
    family: Family<Labels, Counter>,
    /// The counters of the statuses this client got so far.
    by_status: Mutex<Vec<(u16, Counter)>>,
    series: Arc<AtomicUsize>,
    /// Where a new status goes once [`MAX_SERIES`] is reached (`None`: this is "other").
    overflow: Option<ClientMetrics>,
}

impl ClientMetrics {
    fn new(
        label: Arc<str>,
        family: Family<Labels, Counter>,
        series: Arc<AtomicUsize>,
        overflow: Option<ClientMetrics>,
    ) -> Self {
        Self(Arc::new(ClientCounters {
            label,
            family,
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
            if let Some((_, n)) = by_status.iter().find(|(s, _)| *s == code) {
                n.inc();
                return;
            }
            let room = c.overflow.is_none()
                || c.series
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        (n < MAX_SERIES).then_some(n + 1)
                    })
                    .is_ok();
            if room {
                let counter = c.family.get_or_create_owned(&vec![
                    ("client", c.label.to_string()),
                    ("status", code.to_string()),
                ]);
                counter.inc();
                by_status.push((code, counter));
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
}

/// A poisoned lock still holds consistent counters (each update is one small step).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The metrics whose values other parts of the server own, read at each scrape.
struct ScrapeTime(Source);

impl std::fmt::Debug for ScrapeTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScrapeTime")
    }
}

/// One metric family with a value per label set.
fn family<V: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, V)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn count(n: usize) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
}

impl Collector for ScrapeTime {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = OffsetDateTime::now_utc();
        let s = (self.0)();
        family(
            &mut encoder,
            "mtls_limits_hit",
            "Times a limit acted: a connection closed by idle_timeout, header_timeout, \
             header_too_large or stall_timeout, or dropped when it did not close by its \
             close_deadline; max_connections reached (new connections waited)",
            MetricType::Counter,
            s.limits.iter().map(|(l, n)| {
                (
                    vec![("limit", l.label().to_string())],
                    ConstCounter::new(*n),
                )
            }),
        )?;
        let (ok, failed) = s.reloads;
        family(
            &mut encoder,
            "mtls_reloads",
            "Reloads of the certificates, key, CA and CRLs, by result",
            MetricType::Counter,
            [("success", ok), ("failure", failed)]
                .map(|(r, n)| (vec![("result", r.to_string())], ConstCounter::new(n))),
        )?;
        family(
            &mut encoder,
            "mtls_reload_closed_connections",
            "Open connections closed because their client no longer verified after a reload, \
             by reason",
            MetricType::Counter,
            s.reload_closes
                .iter()
                .map(|(r, n)| (vec![("reason", r.to_string())], ConstCounter::new(*n))),
        )?;
        for (name, help, value) in [
            (
                "mtls_open_connections",
                "Connections accepted and not yet closed",
                s.open_connections,
            ),
            (
                "mtls_handshaking_connections",
                "Connections still in their TLS handshake (at most --max-handshakes; beyond, \
                 the oldest is closed)",
                s.handshaking_connections,
            ),
            (
                "mtls_max_connections",
                "The connection limit (--max-connections)",
                s.max_connections,
            ),
            (
                "mtls_lingering_connections",
                "Refused connections kept open for a moment so that their alert is read \
                 (outside --max-connections)",
                s.lingering_connections,
            ),
        ] {
            count(value).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Gauge,
            )?)?;
        }
        let seconds_left = |e: &Expiry| ConstGauge::new((e.at - now).whole_seconds());
        family(
            &mut encoder,
            "mtls_certificate_expiry_seconds",
            "Seconds until a loaded certificate expires (negative once it has)",
            MetricType::Gauge,
            s.expiries.iter().filter_map(|e| match &e.what {
                Expiring::Certificate { role, subject } => Some((
                    vec![
                        ("role", role.to_string()),
                        ("subject", subject.clone()),
                        ("file", file(&e.file)),
                    ],
                    seconds_left(e),
                )),
                Expiring::Crl { .. } => None,
            }),
        )?;
        family(
            &mut encoder,
            "mtls_crl_expiry_seconds",
            "Seconds until a loaded CRL's nextUpdate (negative once it has passed)",
            MetricType::Gauge,
            s.expiries.iter().filter_map(|e| match &e.what {
                Expiring::Crl { issuer } => Some((
                    vec![("file", file(&e.file)), ("issuer", issuer.clone())],
                    seconds_left(e),
                )),
                Expiring::Certificate { .. } => None,
            }),
        )
    }
}

fn file(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Metrics {
        Metrics::new(Box::new(Snapshot::default))
    }

    #[test]
    fn the_text_has_help_type_and_every_listed_failure_reason() {
        let m = metrics();
        m.handshake_succeeded();
        m.handshake_failed("unknown_ca");
        m.handshake_failed("policy_denied");
        m.client("Client A (spiffe://mtls.demo/client-a)")
            .request(StatusCode::OK);
        let text = m.render();
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
        let m = metrics();
        m.client("CN=\"quoted\"\\x\ny")
            .request(StatusCode::FORBIDDEN);
        let text = m.render();
        assert!(
            text.contains("client=\"CN=\\\"quoted\\\"\\\\x\\ny\",status=\"403\""),
            "{text}"
        );
    }

    #[test]
    fn client_labels_are_capped_and_the_rest_count_as_other() {
        let m = metrics();
        for i in 0..MAX_CLIENTS + 5 {
            m.client(&format!("client {i}")).request(StatusCode::OK);
        }
        let a = m.client("client 0");
        a.request(StatusCode::OK);
        a.request(StatusCode::FORBIDDEN);
        let late = m.client("late");
        assert_eq!(late.label(), OTHER_CLIENT);
        late.request(StatusCode::OK);
        let text = m.render();
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
        let m = metrics();
        let clients: Vec<ClientMetrics> = (0..MAX_CLIENTS)
            .map(|i| m.client(&format!("c{i}")))
            .collect();
        // Five statuses each would be 5000 series: past MAX_SERIES they count as "other".
        for status in [200u16, 201, 202, 203, 204] {
            for c in &clients {
                c.request(StatusCode::from_u16(status).expect("status"));
            }
        }
        let text = m.render();
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
        let m = Metrics::new(Box::new(|| Snapshot {
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
            ..Snapshot::default()
        }));
        let text = m.render();
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

    #[test]
    fn every_limit_is_listed_by_its_label() {
        let m = Metrics::new(Box::new(|| Snapshot {
            limits: Limit::ALL.iter().map(|l| (*l, 0)).collect(),
            ..Snapshot::default()
        }));
        let text = m.render();
        for limit in Limit::ALL {
            assert!(
                text.contains(&format!(
                    "mtls_limits_hit_total{{limit=\"{}\"}} 0\n",
                    limit.label()
                )),
                "{text}"
            );
        }
    }
}
