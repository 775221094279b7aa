//! What every connection task reads, built once at start-up from the settings: the live
//! TLS material, the HTTP builders, the load balancers trusted to send a PROXY header, the
//! watchdog, the policy, the proxy, the counters, and the connection limit.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::time::Instant;

use super::metrics::{Metrics, Snapshot};
use super::policy::AccessPolicy;
use super::proxy::{Proxy, ProxyLimits};
use super::proxy_header::ProxyProtocol;
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
    /// `--proxy-protocol`: who may send a PROXY header (every connection must).
    pub(super) proxy_protocol: Option<ProxyProtocol>,
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
        // The header timeout and the head size limit as client proxy's listener has them.
        let http1 = crate::activity::http1_server(settings.max_header_bytes);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        // Pings find peers that vanished; one that does not answer within the timeout is
        // dropped.
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            .keep_alive_interval(settings.idle_timeout.min(Duration::from_secs(30)))
            .keep_alive_timeout(settings.idle_timeout.min(Duration::from_secs(20)));
        if settings.upstream.is_some() {
            // WebSockets over HTTP/2 (RFC 8441), tunnelled to the application.
            http2.enable_connect_protocol();
        }
        let counts = Arc::new(WatchdogCounts::default());
        let connections = Arc::new(Connections::new(
            settings.max_connections,
            settings.max_handshakes,
        ));
        let metrics = Arc::new(Metrics::new({
            let (tls, counts, connections) = (tls.clone(), counts.clone(), connections.clone());
            Box::new(move || Snapshot {
                open_connections: connections.open(),
                handshaking_connections: connections.handshaking(),
                max_connections: connections.max,
                lingering_connections: connections.lingering(),
                expiries: tls.current().expiries(),
                reloads: tls.reloads(),
                limits: counts.limits().to_vec(),
                reload_closes: counts.reload_closes(),
            })
        }));
        let proxy = settings.upstream.clone().map(|upstream| {
            let limits = ProxyLimits {
                max_in_flight: settings.upstream_max_in_flight,
                connect_timeout: settings.upstream_connect_timeout,
                first_byte_timeout: settings.upstream_first_byte_timeout,
                stall_timeout: settings.idle_timeout,
            };
            Proxy::new(upstream, limits, tls.clone(), counts.clone())
        });
        Self {
            tls,
            http1,
            http2,
            handshake_timeout: settings.handshake_timeout,
            proxy_protocol: settings.proxy_protocol.clone(),
            watchdog: Watchdog {
                idle_timeout: settings.idle_timeout,
                header_timeout: settings.header_timeout,
                close_grace: settings.idle_timeout.min(CLOSE_GRACE),
                max_header_bytes: settings.max_header_bytes,
                counts,
            },
            access: settings.access.clone(),
            proxy,
            metrics,
            connections,
            phase,
        }
    }
}

/// The connection limits. Every accepted connection holds a place among
/// `max + handshake budget`; a connection still in its handshake also holds one of the
/// handshake budget's places, and when those are all taken the oldest is closed to admit
/// the newest, so peers that never finish a handshake cannot lock out one that does; an
/// established connection holds one of `max` slots (one that finished its handshake waits
/// for a slot). Refused connections linger outside all of these, within a bound of their own.
pub(super) struct Connections {
    accepted: Arc<Semaphore>,
    everyone: u32,
    pub(super) slots: Arc<Semaphore>,
    pub(super) max: usize,
    handshakes: Handshakes,
    open: AtomicUsize,
    lingering: Arc<Semaphore>,
    last_limit_log: Mutex<Option<Instant>>,
}

impl Connections {
    fn new(max: usize, handshake_budget: usize) -> Self {
        let everyone = max.saturating_add(handshake_budget);
        Self {
            accepted: Arc::new(Semaphore::new(everyone)),
            everyone: u32::try_from(everyone).unwrap_or(u32::MAX),
            slots: Arc::new(Semaphore::new(max)),
            max,
            handshakes: Handshakes::new(handshake_budget),
            open: AtomicUsize::new(0),
            lingering: Arc::new(Semaphore::new(MAX_LINGERING)),
            last_limit_log: Mutex::new(None),
        }
    }

    /// A place for one more accepted connection; waits while every place is taken.
    pub(super) async fn accept_place(&self) -> Option<OwnedSemaphorePermit> {
        self.accepted.clone().acquire_owned().await.ok()
    }

    /// Resolves once every accepted connection has closed.
    pub(super) async fn all_closed(&self) {
        let _ = self.accepted.acquire_many(self.everyone).await;
    }

    /// Enters a new connection into the handshake budget; when it is full, the connection
    /// that has been in its handshake longest is told to close, and its peer returned.
    pub(super) fn begin_handshake(
        &self,
        peer: SocketAddr,
    ) -> (HandshakeTicket<'_>, Option<(SocketAddr, Duration)>) {
        self.handshakes.admit(peer)
    }

    /// Connections accepted and not yet closed.
    pub(super) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections still in their handshake.
    pub(super) fn handshaking(&self) -> usize {
        self.handshakes.len()
    }

    /// Refused connections lingering now.
    fn lingering(&self) -> usize {
        MAX_LINGERING.saturating_sub(self.lingering.available_permits())
    }

    /// A place to linger in, if there is room.
    pub(super) fn linger(&self) -> Option<OwnedSemaphorePermit> {
        self.lingering.clone().try_acquire_owned().ok()
    }

    /// Whether to log that a limit was reached now: at most once every ten seconds, however
    /// often it is reached (the metric counts every time).
    pub(super) fn log_limit_now(&self) -> bool {
        const EVERY: Duration = Duration::from_secs(10);
        let mut last = self
            .last_limit_log
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = last.is_none_or(|at| at.elapsed() >= EVERY);
        if now {
            *last = Some(Instant::now());
        }
        now
    }
}

/// The connections in their handshake by arrival, oldest first: each peer, since when, and
/// a way to close it.
type Waiting = BTreeMap<u64, (SocketAddr, Instant, oneshot::Sender<()>)>;

/// The connections in their handshake, and how many may be.
struct Handshakes {
    budget: usize,
    next: AtomicU64,
    waiting: Mutex<Waiting>,
}

impl Handshakes {
    fn new(budget: usize) -> Self {
        Self {
            budget: budget.max(1),
            next: AtomicU64::new(0),
            waiting: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn admit(&self, peer: SocketAddr) -> (HandshakeTicket<'_>, Option<(SocketAddr, Duration)>) {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut waiting = self.lock();
        let evicted = if waiting.len() >= self.budget {
            waiting.pop_first().map(|(_, (peer, since, close))| {
                let _ = close.send(());
                (peer, since.elapsed())
            })
        } else {
            None
        };
        waiting.insert(seq, (peer, Instant::now(), tx));
        (
            HandshakeTicket {
                seq,
                set: self,
                closed: rx,
            },
            evicted,
        )
    }
}

/// A connection's place in the handshake budget, given up when it is dropped.
pub(super) struct HandshakeTicket<'a> {
    seq: u64,
    set: &'a Handshakes,
    closed: oneshot::Receiver<()>,
}

impl HandshakeTicket<'_> {
    /// Resolves when a newer connection took this one's place.
    pub(super) async fn evicted(&mut self) {
        if (&mut self.closed).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for HandshakeTicket<'_> {
    fn drop(&mut self) {
        self.set.lock().remove(&self.seq);
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
