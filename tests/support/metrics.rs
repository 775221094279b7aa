//! Reading the server's Prometheus metrics.

use std::net::SocketAddr;

use crate::process::ServerProcess;

/// The metrics address the server logged (it was started with `--metrics 127.0.0.1:0`).
pub fn metrics_addr(server: &ServerProcess) -> SocketAddr {
    let line = server.log.wait_for(&["serving Prometheus metrics"]);
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("metrics.addr="))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no metrics.addr in {line:?}"))
}

/// The value of the sample `name{labels}` (exactly as printed) in a scrape, if present.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
