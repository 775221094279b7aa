//! What every connection task reads, built once at start-up from the settings: the live
//! TLS material, the HTTP builders, the watchdog, the policy, the proxy, the counters, and
//! the connection limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::metrics::{Metrics, Snapshot};
use super::policy::AccessPolicy;
use super::proxy::Proxy;
use super::reload::LiveTls;
use super::settings::ServerSettings;
use super::watchdog::{Phase, RequestBody, Watchdog, WatchdogCounts};

/// Most HTTP/2 streams a client may have open at once on one connection.
const MAX_CONCURRENT_STREAMS: u32 = 100;
/// The longest a graceful close may take before the connection is dropped (shorter when
/// the idle timeout is).
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Most refused connections lingering at once (outside `--max-connections`); beyond it,
/// refused connections are closed at once.
const MAX_LINGERING: usize = 1024;

/// State every connection task reads.
pub(super) struct Shared {
    pub(super) tls: Arc<LiveTls>,
    pub(super) http1: http1::Builder,
    pub(super) http2: http2::Builder<TokioExecutor>,
    pub(super) handshake_timeout: Duration,
    pub(super) watchdog: Watchdog,
    pub(super) access: AccessPolicy,
    pub(super) proxy: Option<Proxy<RequestBody>>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) connections: Arc<Connections>,
    pub(super) phase: watch::Receiver<Phase>,
}

impl Shared {
    /// Builds the shared state; `phase` is how connection tasks learn of a shutdown.
    pub(super) fn new(
        settings: &ServerSettings,
        tls: Arc<LiveTls>,
        phase: watch::Receiver<Phase>,
    ) -> Self {
        // One builder per protocol, chosen by ALPN (no sniffing): a client speaks HTTP/2 only
        // after agreeing to it, and each protocol's timers are the ones set here.
        let mut http1 = http1::Builder::new();
        // The header timeout is enforced per connection (watchdog::Activity), from the first
        // byte of a request head, so that an idle keep-alive connection is governed by the
        // idle timeout alone.
        // max_header_size is the exact limit on a request head; max_buf_size alone is not
        // (one read may take in more than it, and a head that arrived whole passes).
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_header_size(settings.max_header_bytes)
            .max_buf_size(settings.max_header_bytes);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        // Pings find peers that vanished; one that does not answer within the timeout is
        // dropped.
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            .keep_alive_interval(settings.idle_timeout.min(Duration::from_secs(30)))
            .keep_alive_timeout(settings.idle_timeout.min(Duration::from_secs(20)));
        let counts = Arc::new(WatchdogCounts::default());
        let connections = Arc::new(Connections::new(settings.max_connections));
        let metrics = Arc::new(Metrics::new({
            let (tls, counts, connections) = (tls.clone(), counts.clone(), connections.clone());
            Box::new(move || Snapshot {
                open_connections: connections.open.load(Ordering::Relaxed),
                max_connections: connections.max,
                lingering_connections: connections.lingering(),
                expiries: tls.current().expiries(),
                reloads: tls.reloads(),
                limits: counts.limits().to_vec(),
                reload_closes: counts.reload_closes(),
            })
        }));
        Self {
            tls,
            http1,
            http2,
            handshake_timeout: settings.handshake_timeout,
            watchdog: Watchdog {
                idle_timeout: settings.idle_timeout,
                header_timeout: settings.header_timeout,
                close_grace: settings.idle_timeout.min(CLOSE_GRACE),
                max_header_bytes: settings.max_header_bytes,
                counts,
            },
            access: settings.access.clone(),
            proxy: settings
                .upstream
                .clone()
                .map(|upstream| Proxy::new(upstream, settings.upstream_max_in_flight)),
            metrics,
            connections,
            phase,
        }
    }
}

/// The connection limit: a slot per open connection, and a separate, bounded allowance for
/// refused connections that linger so their alert is read.
pub(super) struct Connections {
    pub(super) slots: Arc<Semaphore>,
    pub(super) max: usize,
    open: AtomicUsize,
    lingering: Arc<Semaphore>,
}

impl Connections {
    fn new(max: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            open: AtomicUsize::new(0),
            lingering: Arc::new(Semaphore::new(MAX_LINGERING)),
        }
    }

    /// Connections accepted and not yet closed.
    pub(super) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Refused connections lingering now.
    fn lingering(&self) -> usize {
        MAX_LINGERING.saturating_sub(self.lingering.available_permits())
    }

    /// A place to linger in, if there is room.
    pub(super) fn linger(&self) -> Option<OwnedSemaphorePermit> {
        self.lingering.clone().try_acquire_owned().ok()
    }
}

/// A connection's place under the connection limit, and in the open-connections gauge.
pub(super) struct Slot {
    _permit: OwnedSemaphorePermit,
    connections: Arc<Connections>,
}

impl Slot {
    pub(super) fn new(permit: OwnedSemaphorePermit, connections: &Arc<Connections>) -> Self {
        connections.open.fetch_add(1, Ordering::Relaxed);
        Self {
            _permit: permit,
            connections: connections.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.open.fetch_sub(1, Ordering::Relaxed);
    }
}
