//! `client proxy`'s Prometheus metrics, served by [`crate::scrape`] (`--metrics ADDR`).
//! Names the server also has mean the same there (`mtls_limits_hit_total`,
//! `mtls_reloads_total`, `mtls_open_connections`, `mtls_max_connections`,
//! `mtls_certificate_expiry_seconds`); the proxy's own start with `mtls_proxy_`.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `mtls_proxy_requests_total` | counter | `status`: what local applications were answered |
//! | `mtls_proxy_upstream_failures_total` | counter | `reason`: why a request did not reach the upstream (`unknown_ca`, `peer_refused`, `name_mismatch`, `connect`, `timeout`, ...) |
//! | `mtls_proxy_refused_requests_total` | counter | `reason`: requests not forwarded (`not_the_upstream`, `connect_not_allowed`, ...) |
//! | `mtls_proxy_upstream_connections_total` | counter | `protocol`: `h2`, `http/1.1` (connections opened) |
//! | `mtls_limits_hit_total` | counter | `limit`: as the server's |
//! | `mtls_reloads_total` | counter | `result`: `success`, `failure` |
//! | `mtls_open_connections`, `mtls_max_connections` | gauge | local connections |
//! | `mtls_certificate_expiry_seconds` | gauge | `role` (`client`, `ca`), `subject`, `file` |

use std::sync::Arc;

use hyper::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use time::OffsetDateTime;

use super::live::LiveIdentity;
use crate::activity::Limit;
use crate::scrape::Exposition;

/// Failure reasons always exported, at 0 until they happen, so dashboards see them.
pub const FAILURE_REASONS: [&str; 6] = [
    "unknown_ca",
    "name_mismatch",
    "peer_refused",
    "connect",
    "timeout",
    "protocol",
];

type Labels = Vec<(&'static str, String)>;

/// The proxy's counters and the registry that exposes them.
pub struct ProxyMetrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
    refused: Family<Labels, Counter>,
    connections: Family<Labels, Counter>,
    limits: Family<Labels, Counter>,
    open: Gauge,
}

impl std::fmt::Debug for ProxyMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyMetrics").finish_non_exhaustive()
    }
}

fn label(name: &'static str, value: &str) -> Labels {
    vec![(name, value.to_string())]
}

impl ProxyMetrics {
    /// The counters; `live` and `max_connections` are read at each scrape.
    pub fn new(live: Arc<LiveIdentity>, max_connections: usize) -> Self {
        let mut registry = Registry::default();
        let mut family = |name: &str, help: &str| {
            let family = Family::<Labels, Counter>::default();
            registry.register(name, help, family.clone());
            family
        };
        let requests = family(
            "mtls_proxy_requests",
            "Responses to local applications, by status",
        );
        let failures = family(
            "mtls_proxy_upstream_failures",
            "Requests that did not reach the upstream (answered 502 or 504), by reason",
        );
        let refused = family(
            "mtls_proxy_refused_requests",
            "Requests not forwarded (another host, CONNECT, malformed), by reason",
        );
        let connections = family(
            "mtls_proxy_upstream_connections",
            "Mutual-TLS connections opened to the upstream, by protocol",
        );
        let limits = family(
            "mtls_limits_hit",
            "Times a limit acted on a local connection: closed by idle_timeout, \
             header_timeout, header_too_large or stall_timeout, dropped when it did not close \
             by its close_deadline; max_connections reached (new connections waited)",
        );
        let open = Gauge::default();
        registry.register(
            "mtls_open_connections",
            "Local connections accepted and not yet closed",
            open.clone(),
        );
        registry.register_collector(Box::new(ScrapeTime {
            live,
            max_connections,
        }));
        for reason in FAILURE_REASONS {
            failures.get_or_create_owned(&label("reason", reason));
        }
        // The handshake budget is the server's (the proxy's listener does no handshakes).
        for limit in Limit::ALL
            .into_iter()
            .filter(|l| *l != Limit::HandshakeBudget)
        {
            limits.get_or_create_owned(&label("limit", limit.label()));
        }
        Self {
            registry,
            requests,
            failures,
            refused,
            connections,
            limits,
            open,
        }
    }

    /// A local application was answered with `status`.
    pub fn request(&self, status: StatusCode) {
        self.requests
            .get_or_create(&label("status", status.as_str()))
            .inc();
    }

    /// A request did not reach the upstream, for `reason`.
    pub fn failure(&self, reason: &str) {
        self.failures.get_or_create(&label("reason", reason)).inc();
    }

    /// A request was refused, for `reason`.
    pub fn refused(&self, reason: &str) {
        self.refused.get_or_create(&label("reason", reason)).inc();
    }

    /// A connection to the upstream was opened, speaking `protocol`.
    pub fn connected(&self, protocol: &str) {
        self.connections
            .get_or_create(&label("protocol", protocol))
            .inc();
    }

    /// `limit` acted on a local connection.
    pub fn hit(&self, limit: Limit) {
        self.limits
            .get_or_create(&label("limit", limit.label()))
            .inc();
    }

    /// A local connection opened (`+1`) or closed (`-1`).
    pub fn open_connections(&self, by: i64) {
        self.open.inc_by(by);
    }
}

impl Exposition for ProxyMetrics {
    fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; the encoder's only error is the writer's.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// What the live identity owns, read at each scrape.
#[derive(Debug)]
struct ScrapeTime {
    live: Arc<LiveIdentity>,
    max_connections: usize,
}

impl Collector for ScrapeTime {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (ok, failed) = self.live.reloads();
        let mut reloads = encoder.encode_descriptor(
            "mtls_reloads",
            "Reloads of the proxy's certificate, key and CA, by result",
            None,
            MetricType::Counter,
        )?;
        for (result, n) in [("success", ok), ("failure", failed)] {
            ConstCounter::new(n).encode(reloads.encode_family(&label("result", result))?)?;
        }
        ConstGauge::new(i64::try_from(self.max_connections).unwrap_or(i64::MAX)).encode(
            encoder.encode_descriptor(
                "mtls_max_connections",
                "The local connection limit (--max-connections)",
                None,
                MetricType::Gauge,
            )?,
        )?;
        let material = self.live.current();
        let file = |p: &std::path::Path| p.display().to_string();
        let source = self.live.source();
        let now = OffsetDateTime::now_utc();
        let certificates = std::iter::once(("client", &material.leaf, file(&source.cert)))
            .chain(material.cas.iter().map(|ca| ("ca", ca, file(&source.ca))));
        let mut expiry = encoder.encode_descriptor(
            "mtls_certificate_expiry_seconds",
            "Seconds until a loaded certificate expires (negative once it has)",
            None,
            MetricType::Gauge,
        )?;
        for (role, cert, file) in certificates {
            let labels = vec![
                ("role", role.to_string()),
                ("subject", cert.subject.clone()),
                ("file", file),
            ];
            ConstGauge::new((cert.not_after - now).whole_seconds())
                .encode(expiry.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
