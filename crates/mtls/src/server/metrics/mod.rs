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
//! The exposition is written by the prometheus-client crate (`counters`); the values other
//! parts of the server own (limits from the watchdog, reloads and expiries from reload,
//! connection counts) are read at each scrape. The number of client label values is capped
//! ([`MAX_CLIENTS`], then `client="other"` and one warning), and so is the number of
//! (client, status) series ([`MAX_SERIES`]). [`crate::scrape`] serves them.

mod counters;

pub use crate::scrape::serve;
pub use counters::{
    ClientMetrics, FAILURE_REASONS, MAX_CLIENTS, MAX_SERIES, Metrics, OTHER_CLIENT, Snapshot,
    Source,
};

impl crate::scrape::Exposition for Metrics {
    fn render(&self) -> String {
        Metrics::render(self)
    }
}
