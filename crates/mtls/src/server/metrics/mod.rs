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
//! | `mtls_proxy_protocol_refusals_total` | counter | `reason`: `untrusted_source`, `missing_header`, `malformed_header`, `timeout`, `closed` (`--proxy-protocol`) |
//! | `mtls_reload_closed_connections_total` | counter | `reason`: why an open connection's client no longer verified after a reload |
//! | `mtls_open_connections`, `mtls_max_connections`, `mtls_lingering_connections` | gauge | |
//! | `mtls_certificate_expiry_seconds` | gauge | `role` (`server`, `ca`, `upstream`: the proxy's own, for an https upstream), `subject`, `file` |
//! | `mtls_crl_expiry_seconds` | gauge | `file`, `issuer` (seconds until its nextUpdate) |
//!
//! A client that completes the handshake but that no `--allow-*` rule admits counts as a
//! handshake `failure` with reason `policy_denied` (it is answered with 403s).
//!
//! The exposition is written by the prometheus-client crate (`counters`); the values other
//! parts of the server own (limits from the watchdog, reloads and expiries from reload,
//! connection counts) are read at each scrape. The number of client label values is capped
//! ([`MAX_CLIENTS`], then `client="other"` and one warning), and so is the number of
//! (client, status) series ([`MAX_SERIES`]). [`crate::scrape`] serves them, with the
//! health checks orchestrators probe (`health`): `GET /healthz` (the process answers) and
//! `GET /readyz` (it accepts connections and its TLS material is current; otherwise 503
//! and why).

mod counters;
mod health;

pub use counters::{
    ClientMetrics, FAILURE_REASONS, MAX_CLIENTS, MAX_SERIES, Metrics, OTHER_CLIENT, Snapshot,
    Source,
};
pub use health::Health;

/// What the server's metrics listener serves: its metrics, and its health.
pub struct Endpoint {
    /// The counters and gauges.
    pub metrics: std::sync::Arc<Metrics>,
    /// Liveness and readiness.
    pub health: Health,
}

impl crate::scrape::Exposition for Endpoint {
    fn render(&self) -> String {
        self.metrics.render()
    }

    fn live(&self) -> (hyper::StatusCode, String) {
        self.health.live()
    }

    fn ready(&self, now: time::OffsetDateTime) -> (hyper::StatusCode, String) {
        self.health.ready(now)
    }
}
