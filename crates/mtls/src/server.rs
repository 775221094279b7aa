//! The HTTPS server: accept, then in a task of its own a TLS handshake under a timeout,
//! then HTTP/1.1 or HTTP/2 (by ALPN) with hyper. It requires a verified client certificate,
//! then admits the client by its identity ([`crate::policy`]), and answers it itself or
//! forwards its requests to an upstream application ([`crate::proxy`]).
//!
//! Each connection logs the Go demo's blocks: `State` and `Certificate chain` once, when its
//! handshake completes; `Header` for every request. A failed handshake is logged at warn
//! with a reason code and a plain-words explanation.
//!
//! Around that, the concerns of a real endpoint, each in its own module: the TLS material
//! is reloaded while the server runs ([`crate::reload`]); hostile or broken peers meet
//! limits ([`crate::limits`]: handshake, header, idle and stall timeouts, header size,
//! concurrent connections); counters are served to Prometheus ([`crate::metrics`]).
//!
//! A client's chain is verified by rustls in a full handshake only. A resumed session
//! carries the chain of the handshake it resumes, so the server verifies it again, now,
//! with the current verifier; and after every reload each open connection verifies its
//! client again with the new one. A client that no longer passes (expired, revoked, a CRL
//! past its next update, a replaced CA) is refused, or its connection is closed.
//!
//! Every graceful close (idle, denied, no longer verified) has a hard deadline: a peer that
//! does not cooperate (an HTTP/2 client that never acknowledges the GOAWAY's PING) is
//! dropped after it.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use rustls::HandshakeKind;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, info, warn};

use crate::certinfo::CertInfo;
use crate::error::{Error, Result};
use crate::explain::{Failure, Side};
use crate::files::CertsDir;
use crate::limits::{
    self, Activity, AppWait, Expired, GuardedBody, RequestBody, RequestGuard, Tracked,
};
use crate::metrics::{self, ClientMetrics, Gauges, Metrics};
use crate::policy::{AccessPolicy, Decision, POLICY_DENIED};
use crate::proxy::{ForwardedIdentity, IDENTITY_UNFORWARDABLE, Proxy, Upstream};
use crate::reload::{self, Hangup, LiveTls, ReloadTriggers, TlsMaterial, TlsSource};
use crate::report::{PeerPath, TlsReport};
pub use crate::response::{ResponseBody, text_response};
use crate::tls::ServerPolicy;

/// Everything the server needs to start. Paths are explicit; [`ServerSettings::in_dir`]
/// fills them from a certificate folder.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Address to listen on; port 0 picks a free port.
    pub addr: String,
    /// The CA that client certificates must chain to.
    pub ca: PathBuf,
    /// The server's certificate (leaf first, then any intermediates).
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// CRLs whose revoked client certificates are refused.
    pub crls: Vec<PathBuf>,
    /// TLS versions and resumption.
    pub policy: ServerPolicy,
    /// A peer that has not finished its handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// How long a client may take to send a request's headers, from their first byte
    /// (HTTP/1.1).
    pub header_timeout: Duration,
    /// Largest request head (request line and headers) accepted, in bytes; larger gets 431.
    pub max_header_bytes: usize,
    /// On shutdown, how long in-flight requests get to finish.
    pub drain_timeout: Duration,
    /// A connection with no request in flight for this long is closed; so is one whose
    /// requests in flight make no progress on the client's side for this long (a stall).
    pub idle_timeout: Duration,
    /// Most connections open at once; beyond it, new connections wait to be accepted.
    pub max_connections: usize,
    /// Which verified clients are admitted (no rules: all of them).
    pub access: AccessPolicy,
    /// When to reload the certificate, key, CA and CRLs.
    pub reload: ReloadTriggers,
    /// Forward admitted requests to this application instead of answering them.
    pub upstream: Option<Upstream>,
    /// Serve Prometheus metrics over plain HTTP on this address.
    pub metrics_addr: Option<String>,
}

impl ServerSettings {
    /// Defaults with the demo set's paths in `dir`.
    pub fn in_dir(dir: &CertsDir) -> Self {
        Self {
            addr: "127.0.0.1:8443".into(),
            ca: dir.ca_cert(),
            cert: dir.role_cert(crate::files::Role::Server),
            key: dir.role_key(crate::files::Role::Server),
            crls: Vec::new(),
            policy: ServerPolicy::default(),
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            drain_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            access: AccessPolicy::default(),
            reload: ReloadTriggers {
                interval: Some(Duration::from_secs(2)),
                sighup: true,
            },
            upstream: None,
            metrics_addr: None,
        }
    }

    /// Where the TLS material comes from.
    pub fn tls_source(&self) -> TlsSource {
        TlsSource {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            crls: self.crls.clone(),
            policy: self.policy.clone(),
        }
    }

    /// Refuses limits that cannot work, with the flag to fix.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("--handshake-timeout", self.handshake_timeout),
            ("--header-timeout", self.header_timeout),
            ("--idle-timeout", self.idle_timeout),
        ];
        for (flag, value) in positive {
            if value.is_zero() {
                return Err(Error::Invalid(format!(
                    "{flag} must be longer than 0 (for example 10s)"
                )));
            }
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Err(Error::Invalid(format!(
                "--max-header-size {} is too small: HTTP/1.1 needs at least 8KiB for a request head",
                self.max_header_bytes
            )));
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            return Err(Error::Invalid(format!(
                "--max-connections {} is out of range: choose 1 to {MAX_CONNECTIONS}",
                self.max_connections
            )));
        }
        Ok(())
    }
}

/// hyper's smallest read buffer, and so the smallest header limit it can enforce.
const MIN_HEADER_BYTES: usize = 8 * 1024;
/// The largest `--max-connections` (far beyond what one process's file descriptors allow).
const MAX_CONNECTIONS: usize = 1_000_000;

/// Where the server is in its life, as connection tasks see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Accepting and serving.
    Running,
    /// Not accepting; connections finish what they are doing, then close.
    Draining,
    /// The drain timeout passed: connections close now.
    Closing,
}

/// Most HTTP/2 streams a client may have open at once on one connection.
const MAX_CONCURRENT_STREAMS: u32 = 100;
/// The longest a graceful close may take before the connection is dropped (shorter when
/// the idle timeout is).
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Most refused connections lingering at once (outside `--max-connections`); beyond it,
/// refused connections are closed at once.
const MAX_LINGERING: usize = 1024;

/// State every connection task reads.
struct Shared {
    tls: Arc<LiveTls>,
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    handshake_timeout: Duration,
    header_timeout: Duration,
    idle_timeout: Duration,
    close_grace: Duration,
    max_header_bytes: usize,
    access: AccessPolicy,
    proxy: Option<Proxy<RequestBody>>,
    metrics: Arc<Metrics>,
    slots: Arc<Semaphore>,
    max_connections: usize,
    open: Arc<AtomicUsize>,
    lingering: Arc<Semaphore>,
    phase: watch::Receiver<Phase>,
}

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shared: Arc<Shared>,
    phase: watch::Sender<Phase>,
    hangup: Hangup,
    reload: ReloadTriggers,
    drain_timeout: Duration,
}

impl Server {
    /// Loads the TLS material and binds the listening socket (and the metrics one).
    pub async fn bind(settings: &ServerSettings) -> Result<Self> {
        settings.validate()?;
        let tls = Arc::new(LiveTls::load(settings.tls_source())?);
        let listener = TcpListener::bind(&settings.addr)
            .await
            .map_err(|source| Error::Bind {
                addr: settings.addr.clone(),
                source,
            })?;
        let metrics_listener = match &settings.metrics_addr {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|source| Error::Io {
                context: format!("cannot serve metrics on {addr} (--metrics)"),
                source,
            })?),
            None => None,
        };
        // Installed now, before the server announces itself, so an early SIGHUP reloads.
        let hangup = Hangup::install(settings.reload.sighup)?;
        warn_if_above_file_limit(settings.max_connections);
        // One builder per protocol, chosen by ALPN (no sniffing): a client speaks HTTP/2 only
        // after agreeing to it, and each protocol's timers are the ones set here.
        let mut http1 = http1::Builder::new();
        // The header timeout is enforced per connection (limits::Activity), from the first
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
        let (phase_tx, phase_rx) = watch::channel(Phase::Running);
        Ok(Self {
            listener,
            metrics_listener,
            shared: Arc::new(Shared {
                tls,
                http1,
                http2,
                handshake_timeout: settings.handshake_timeout,
                header_timeout: settings.header_timeout,
                idle_timeout: settings.idle_timeout,
                close_grace: settings.idle_timeout.min(CLOSE_GRACE),
                max_header_bytes: settings.max_header_bytes,
                access: settings.access.clone(),
                proxy: settings.upstream.clone().map(Proxy::new),
                metrics: Arc::new(Metrics::default()),
                slots: Arc::new(Semaphore::new(settings.max_connections)),
                max_connections: settings.max_connections,
                open: Arc::new(AtomicUsize::new(0)),
                lingering: Arc::new(Semaphore::new(MAX_LINGERING)),
                phase: phase_rx,
            }),
            phase: phase_tx,
            hangup,
            reload: settings.reload,
            drain_timeout: settings.drain_timeout,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|source| Error::Io {
            context: "cannot read the listening address".into(),
            source,
        })
    }

    /// The metrics listener's address, when `--metrics` was given.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>> {
        self.metrics_listener
            .as_ref()
            .map(|l| {
                l.local_addr().map_err(|source| Error::Io {
                    context: "cannot read the metrics address".into(),
                    source,
                })
            })
            .transpose()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (up to the
    /// drain timeout).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let Server {
            listener,
            metrics_listener,
            shared,
            phase,
            hangup,
            reload,
            drain_timeout,
        } = self;
        let stopped = |mut rx: watch::Receiver<Phase>| async move {
            let _ = rx.wait_for(|p| *p != Phase::Running).await;
        };
        tokio::spawn(reload::watch(
            shared.tls.clone(),
            reload,
            hangup,
            shared.metrics.clone(),
            stopped(shared.phase.clone()),
        ));
        if let Some(metrics_listener) = metrics_listener {
            if let Ok(addr) = metrics_listener.local_addr() {
                info!(metrics.addr = %addr, path = "/metrics", "serving Prometheus metrics over plain HTTP");
            }
            let for_render = shared.clone();
            let render = Arc::new(move || {
                for_render.metrics.render(&Gauges {
                    open_connections: for_render.open.load(Ordering::Relaxed),
                    max_connections: for_render.max_connections,
                    lingering_connections: MAX_LINGERING
                        .saturating_sub(for_render.lingering.available_permits()),
                    expiries: for_render.tls.current().expiries(),
                })
            });
            tokio::spawn(metrics::serve(
                metrics_listener,
                render,
                stopped(shared.phase.clone()),
            ));
        }

        tokio::pin!(shutdown);
        // Under sustained load the limit is reached again and again: say so at most once
        // every LIMIT_LOG_EVERY (the metric counts every time).
        const LIMIT_LOG_EVERY: Duration = Duration::from_secs(10);
        let mut last_limit_log: Option<Instant> = None;
        loop {
            let permit = match shared.slots.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    shared.metrics.limit("max_connections");
                    let log = last_limit_log.is_none_or(|at| at.elapsed() >= LIMIT_LOG_EVERY);
                    if log {
                        last_limit_log = Some(Instant::now());
                        warn!(
                            max_connections = shared.max_connections,
                            "connection limit reached: new connections wait until one closes"
                        );
                    }
                    tokio::select! {
                        permit = shared.slots.clone().acquire_owned() => match permit {
                            Ok(permit) => {
                                if log {
                                    info!("below the connection limit again: accepting");
                                }
                                permit
                            }
                            Err(_) => break,
                        },
                        () = &mut shutdown => break,
                    }
                }
            };
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let slot = Slot::new(permit, &shared.open);
                        tokio::spawn(connection(stream, peer, shared.clone(), slot));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: never end the loop, but do
                        // not spin on it either.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        let _ = phase.send(Phase::Draining);
        info!(
            connections = shared.open.load(Ordering::Relaxed),
            drain_timeout_s = drain_timeout.as_secs_f32(),
            "shutting down: finishing requests in flight"
        );
        let everyone = u32::try_from(shared.max_connections).unwrap_or(u32::MAX);
        match tokio::time::timeout(drain_timeout, shared.slots.acquire_many(everyone)).await {
            Ok(_) => info!("all connections closed"),
            Err(_) => {
                warn!(
                    connections = shared.open.load(Ordering::Relaxed),
                    "drain timeout passed; closing the remaining connections"
                );
                let _ = phase.send(Phase::Closing);
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    shared.slots.acquire_many(everyone),
                )
                .await;
            }
        }
        Ok(())
    }
}

/// Warns when `--max-connections` is above the open-file limit (Linux), where accepts would
/// fail before the limit is reached.
fn warn_if_above_file_limit(max_connections: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(soft) = soft {
        // Listening sockets, the metrics socket, files read on reload, stdio.
        const SPARE: usize = 32;
        if max_connections.saturating_add(SPARE) > soft {
            warn!(
                max_connections,
                open_file_limit = soft,
                "--max-connections is above what this process may open; accepts will fail first: \
                 raise the limit (ulimit -n) or lower --max-connections"
            );
        }
    }
}

/// A connection's place under the connection limit, and in the open-connections gauge.
struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Arc<AtomicUsize>,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self {
            _permit: permit,
            open: open.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One connection, from TCP to the last request. Before HTTP starts, a shutdown abandons it.
async fn connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, slot: Slot) {
    let _ = stream.set_nodelay(true);
    let mut phase = shared.phase.clone();
    let mut reloads = shared.tls.subscribe();
    let outcome = tokio::select! {
        outcome = handshake(stream, peer, &shared, &mut reloads) => outcome,
        _ = phase.wait_for(|p| *p != Phase::Running) => Handshake::Abandoned,
    };
    match outcome {
        Handshake::Done(tls) => {
            serve(tls, peer, shared, reloads).await;
            drop(slot);
        }
        Handshake::Refused(tcp) => {
            // The refusal is written: the slot goes to the next client now, and the socket
            // lingers outside the limit (within a bound of its own) so the alert is read.
            drop(slot);
            if let Ok(_lingering) = shared.lingering.clone().try_acquire_owned() {
                linger_close(tcp).await;
            }
        }
        Handshake::Abandoned => drop(slot),
    }
}

/// How a handshake ended.
// Built once per connection and moved straight into a match: boxing the stream would cost
// an allocation to save a copy.
#[allow(clippy::large_enum_variant)]
enum Handshake {
    /// Verified (and, when resumed, verified again): serve it.
    Done(TlsStream<TcpStream>),
    /// Refused with an alert or a 400: close it, lingering.
    Refused(TcpStream),
    /// Timed out, closed by the peer, or refused after a resumption: nothing more to do.
    Abandoned,
}

/// The TLS handshake under the handshake timeout; failures are logged, counted and
/// answered (an alert, or a 400 for plain HTTP). A resumed session's chain is verified
/// again with the current verifier.
async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    reloads: &mut watch::Receiver<Arc<TlsMaterial>>,
) -> Handshake {
    let material = reloads.borrow_and_update().clone();
    let deadline = Instant::now() + shared.handshake_timeout;
    let refuse = |failure: Failure, material: &TlsMaterial, resumed: bool| {
        shared.metrics.handshake_failed(failure.code());
        warn!(
            peer.addr = %peer,
            reason = failure.code(),
            tls.resumed = resumed,
            explanation = %failure.explain(Side::Server, &material.explain),
            "TLS handshake failed"
        );
    };
    let timed_out = || Failure::Timeout {
        after: shared.handshake_timeout,
    };
    match tokio::time::timeout_at(deadline, first_bytes(&stream)).await {
        Err(_) => {
            refuse(timed_out(), &material, false);
            return Handshake::Abandoned;
        }
        Ok(FirstBytes::Closed) => {
            debug!(peer.addr = %peer, "peer closed the connection before the handshake");
            return Handshake::Abandoned;
        }
        Ok(FirstBytes::PlainHttp) => {
            refuse(Failure::NotTls, &material, false);
            return match tokio::time::timeout_at(deadline, refuse_plain_http(stream)).await {
                Ok(Some(stream)) => Handshake::Refused(stream),
                _ => Handshake::Abandoned,
            };
        }
        Ok(FirstBytes::Other) => {}
    }
    let acceptor = TlsAcceptor::from(material.config.clone());
    let handshake = acceptor.accept(stream).into_fallible();
    let mut tls = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(tls)) => tls,
        Ok(Err((err, tcp))) => {
            refuse(classify(&err), &material, false);
            return Handshake::Refused(tcp);
        }
        Err(_) => {
            refuse(timed_out(), &material, false);
            return Handshake::Abandoned;
        }
    };
    let (_, conn) = tls.get_ref();
    if conn.handshake_kind() == Some(HandshakeKind::Resumed) {
        // rustls restored the chain of the session it resumed without verifying it: verify
        // it now, with what is current (the CRL may be newer, the certificate expired).
        let current = reloads.borrow_and_update().clone();
        let chain = conn.peer_certificates().unwrap_or_default();
        if let Err(e) = current.tls.verify_client(chain) {
            refuse(Failure::from_rustls(&e), &current, true);
            // rustls offers no way to send a certificate alert after the handshake: say
            // close_notify, and close.
            let _ = tokio::time::timeout(shared.close_grace, tls.shutdown()).await;
            return Handshake::Abandoned;
        }
    }
    Handshake::Done(tls)
}

/// What every request on one connection needs to know about it.
struct ConnectionInfo {
    peer: SocketAddr,
    client: String,
    counters: ClientMetrics,
    decision: Decision,
    forwarded: Option<ForwardedIdentity>,
    activity: Arc<Activity>,
    /// HTTP/2 (by ALPN); otherwise HTTP/1.1.
    h2: bool,
    /// Told when a denied client has been answered: its connection then closes.
    denied_answered: Notify,
    /// The body every request on this connection gets when not forwarded: "hello, NAME",
    /// or the 403 for a denied client. Made once; each response shares it.
    answer: Bytes,
}

/// HTTP on an established TLS connection, by ALPN: HTTP/2 when the client agreed to it,
/// HTTP/1.1 otherwise.
async fn serve(
    tls: TlsStream<TcpStream>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    reloads: watch::Receiver<Arc<TlsMaterial>>,
) {
    let (_, conn) = tls.get_ref();
    let report = TlsReport::negotiated(conn, conn.server_name());
    let presented = conn.peer_certificates().unwrap_or_default();
    // Authorize by the leaf the handshake verified, parsed here: the rest of the chain is
    // whatever the client chose to send, so it must never stand in for an unparsable leaf.
    let chain = PeerPath::of(presented);
    let leaf = chain.leaf.as_ref();
    let client = leaf
        .map(CertInfo::identity)
        .unwrap_or_else(|| "unknown".into());
    log_state(peer, &report, &client, &chain);
    let decision = shared.access.decide(leaf);
    if let Decision::Denied { why, .. } = &decision {
        shared.metrics.handshake_failed(POLICY_DENIED);
        warn!(
            peer.addr = %peer,
            client,
            reason = POLICY_DENIED,
            why = %why,
            tried = %decision.tried(),
            "identity denied: no --allow rule matched; its requests get 403"
        );
    }
    // An admitted client's requests carry its identity to the upstream: built now, once,
    // and a client whose identity cannot be forwarded is refused before any request.
    let forwarded = match (&shared.proxy, decision.admitted()) {
        (Some(_), true) => {
            let on_path: Vec<CertificateDer<'_>> = presented
                .first()
                .into_iter()
                .chain(chain.path.iter().filter_map(|(i, _)| presented.get(*i)))
                .map(|der| CertificateDer::from(der.as_ref()))
                .collect();
            match ForwardedIdentity::from_chain(&on_path) {
                Ok(id) => Some(id),
                Err(why) => {
                    shared.metrics.handshake_failed(IDENTITY_UNFORWARDABLE);
                    warn!(
                        peer.addr = %peer,
                        client,
                        reason = IDENTITY_UNFORWARDABLE,
                        why = why.as_str(),
                        "refusing the connection: the client's identity cannot be forwarded to the upstream"
                    );
                    return;
                }
            }
        }
        _ => None,
    };
    if let Decision::Admitted { rule, matched } = &decision {
        info!(peer.addr = %peer, client, rule = %rule, matched = matched.as_str(), "identity admitted");
    }
    if decision.admitted() {
        shared.metrics.handshake_succeeded();
    }
    // Kept to verify the client again after a reload.
    let verified: Vec<CertificateDer<'static>> =
        presented.iter().map(|c| c.clone().into_owned()).collect();
    let h2 = report.alpn.as_deref() == Some("h2");
    let activity = Activity::new(!h2);
    let answer = Bytes::from(if decision.admitted() {
        format!("hello, {client}\n")
    } else {
        decision.forbidden_body(&client)
    });
    let info = Arc::new(ConnectionInfo {
        peer,
        counters: shared.metrics.client(&client),
        client,
        decision,
        forwarded,
        activity: activity.clone(),
        h2,
        denied_answered: Notify::new(),
        answer,
    });

    let for_service = (info.clone(), shared.clone());
    let service = service_fn(move |req| {
        let (info, shared) = for_service.clone();
        async move { Ok::<_, Infallible>(handle(req, &info, &shared).await) }
    });
    let io = TokioIo::new(Tracked::new(tls, activity));
    let watch = Watch {
        info: &info,
        shared: &shared,
        reloads,
        verified,
    };
    if h2 {
        watch
            .drive(shared.http2.serve_connection(io, service))
            .await;
    } else {
        watch
            .drive(shared.http1.serve_connection(io, service))
            .await;
    }
}

/// What watches one connection while hyper serves it: the server's phase, the watchdog's
/// timers, reloads, and a denied client's answer.
struct Watch<'a> {
    info: &'a ConnectionInfo,
    shared: &'a Shared,
    reloads: watch::Receiver<Arc<TlsMaterial>>,
    /// The chain the client presented, to verify again after a reload.
    verified: Vec<CertificateDer<'static>>,
}

impl Watch<'_> {
    /// Drives `conn` until the client leaves, a limit or a reload closes it, or the server
    /// shuts down. Every graceful close gets `close_grace`, then the connection is dropped.
    async fn drive<C>(mut self, conn: C)
    where
        C: GracefulConnection<Error = hyper::Error>,
    {
        let Watch { info, shared, .. } = self;
        let peer = info.peer;
        let activity = &info.activity;
        tokio::pin!(conn);
        let mut phase = shared.phase.clone();
        let mut draining = false;
        // When a graceful close began, the moment it must have finished.
        let mut close_by: Option<Instant> = None;
        let close = |conn: Pin<&mut C>, close_by: &mut Option<Instant>| {
            if close_by.is_none() {
                *close_by = Some(Instant::now() + shared.close_grace);
                conn.graceful_shutdown();
            }
        };
        if *phase.borrow() != Phase::Running {
            draining = true;
            conn.as_mut().graceful_shutdown();
        }
        let ended = loop {
            let deadline = async {
                match close_by {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            // Biased, the connection last: a shutdown or a reload that happened is acted on
            // before the next response is written (a response to a draining server says
            // `Connection: close`).
            tokio::select! {
                biased;
                changed = phase.changed() => {
                    let now = if changed.is_ok() { *phase.borrow() } else { Phase::Closing };
                    if now == Phase::Closing {
                        return;
                    }
                    if !draining {
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
                () = deadline => {
                    shared.metrics.limit("close_deadline");
                    info!(
                        peer.addr = %peer,
                        client = info.client,
                        reason = "close_deadline",
                        close_grace = %limits::format_duration(shared.close_grace),
                        "the connection did not close in time; dropping it"
                    );
                    return;
                }
                changed = self.reloads.changed() => {
                    if changed.is_err() {
                        // The live material is gone only when the server is: nothing to watch.
                        self.reloads = shared.tls.subscribe();
                        continue;
                    }
                    let material = self.reloads.borrow_and_update().clone();
                    if let Err(e) = material.tls.verify_client(&self.verified) {
                        let failure = Failure::from_rustls(&e);
                        shared.metrics.closed_on_reload(failure.code());
                        warn!(
                            peer.addr = %peer,
                            client = info.client,
                            reason = failure.code(),
                            explanation = %failure.explain(Side::Server, &material.explain),
                            "the client no longer verifies after a reload; closing its connection"
                        );
                        close(conn.as_mut(), &mut close_by);
                    }
                }
                () = info.denied_answered.notified(), if close_by.is_none() => {
                    close(conn.as_mut(), &mut close_by);
                }
                why = activity.expired(shared.idle_timeout, shared.header_timeout), if close_by.is_none() => {
                    match why {
                        Expired::Idle => {
                            shared.metrics.limit("idle_timeout");
                            info!(
                                peer.addr = %peer,
                                client = info.client,
                                reason = "idle_timeout",
                                idle_timeout = %limits::format_duration(shared.idle_timeout),
                                "closing idle connection"
                            );
                            close(conn.as_mut(), &mut close_by);
                        }
                        Expired::HeaderTimeout => {
                            shared.metrics.limit("header_timeout");
                            warn!(
                                peer.addr = %peer,
                                client = info.client,
                                reason = "header_timeout",
                                header_timeout = %limits::format_duration(shared.header_timeout),
                                "request headers did not arrive in time; closing the connection"
                            );
                            return;
                        }
                        Expired::Stalled => {
                            shared.metrics.limit("stall_timeout");
                            warn!(
                                peer.addr = %peer,
                                client = info.client,
                                reason = "stall_timeout",
                                stall_timeout = %limits::format_duration(shared.idle_timeout),
                                "a request in flight made no progress on the client's side; closing the connection"
                            );
                            return;
                        }
                    }
                }
                ended = conn.as_mut() => break ended,
            }
        };
        if let Err(e) = ended {
            if e.is_parse_too_large() {
                shared.metrics.limit("header_too_large");
                let answered = activity.answered_since_head();
                warn!(
                    peer.addr = %peer,
                    client = info.client,
                    reason = "header_too_large",
                    max_header_bytes = shared.max_header_bytes,
                    answered,
                    "{}",
                    if answered {
                        "request headers too large; answered 431 and closed the connection"
                    } else {
                        "request headers too large; closed the connection (a 431 could not be written)"
                    }
                );
            } else {
                debug!(peer.addr = %peer, error = %e, "connection ended with an error");
            }
        }
    }
}

/// One request: logged, then denied, forwarded, or answered with the client's name.
async fn handle(
    req: Request<Incoming>,
    info: &ConnectionInfo,
    shared: &Shared,
) -> Response<ResponseBody> {
    let guard = RequestGuard::new(&info.activity);
    let client = info.client.as_str();
    info!(
        peer.addr = %info.peer,
        client,
        method = %req.method(),
        path = %req.uri().path(),
        version = ?req.version(),
        headers = %Redacted(req.headers()),
        "Header"
    );
    let response = if !info.decision.admitted() {
        let mut denied = text_response(StatusCode::FORBIDDEN, info.answer.clone());
        if !info.h2 {
            denied
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        info.denied_answered.notify_one();
        denied
    } else if let Some(proxy) = &shared.proxy {
        match &info.forwarded {
            Some(identity) => {
                let req = req.map(|body| RequestBody::new(body, info.activity.clone()));
                let _waiting = AppWait::new(&info.activity);
                proxy.forward(req, identity, info.peer, client).await
            }
            // serve() refuses such a connection before any request; never forward
            // without an identity.
            None => text_response(
                StatusCode::FORBIDDEN,
                format!("forbidden: {client} cannot be forwarded\n"),
            ),
        }
    } else {
        text_response(StatusCode::OK, info.answer.clone())
    };
    info.counters.request(response.status());
    response.map(|body| GuardedBody::new(body, guard).boxed_unsync())
}

/// Logs `State` and `Certificate chain`, once per connection. Names from certificates are
/// the client's words (x509-parser does not escape them): they are logged as quoted,
/// escaped strings, and only for the leaf and the certificates on its path.
fn log_state(peer: SocketAddr, r: &TlsReport, client: &str, chain: &PeerPath) {
    info!(
        peer.addr = %peer,
        tls.version = %r.version,
        tls.cipher_suite = %r.cipher_suite,
        tls.key_exchange = %r.key_exchange,
        tls.handshake_complete = r.handshake_complete,
        tls.resumed = r.resumed,
        tls.alpn = r.alpn.as_deref().unwrap_or("none"),
        tls.sni = r.sni.as_deref().unwrap_or("none"),
        client,
        "State"
    );
    let leaf = chain.leaf.iter().map(|c| (0, c));
    let path = chain.path.iter().map(|(i, c)| (*i, c));
    for (index, cert) in leaf.chain(path) {
        info!(
            peer.addr = %peer,
            index,
            subject = cert.subject.as_str(),
            issuer = cert.issuer.as_str(),
            sans = cert.sans_text().as_str(),
            "Certificate chain"
        );
    }
    if chain.left_out > 0 {
        info!(
            peer.addr = %peer,
            left_out = chain.left_out,
            "the client sent certificates that are not on its path to the CA (or do not parse); they are not logged"
        );
    }
}

/// Headers for the log, with credentials replaced.
struct Redacted<'a>(&'a HeaderMap);

impl std::fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SECRET: [&str; 4] = [
            "authorization",
            "proxy-authorization",
            "cookie",
            "set-cookie",
        ];
        let mut first = true;
        for (name, value) in self.0 {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            if SECRET.contains(&name.as_str()) {
                write!(f, "{name}=<redacted>")?;
            } else {
                write!(f, "{name}={:?}", String::from_utf8_lossy(value.as_bytes()))?;
            }
        }
        Ok(())
    }
}

/// A rustls error inside tokio-rustls's io::Error, classified.
fn classify(err: &std::io::Error) -> Failure {
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(tls) => Failure::from_rustls(tls),
        None => Failure::Other(format!("connection lost during the handshake ({err})")),
    }
}

/// After a failed handshake the alert has been written. Half-close and read what the
/// client still sends for a moment, so the kernel does not answer its late bytes with a
/// reset that would destroy the alert before the client reads it (TLS 1.3 clients send
/// their request before they learn they were refused).
async fn linger_close(mut tcp: TcpStream) {
    const LINGER: Duration = Duration::from_secs(2);
    const MAX_DRAIN: usize = 256 * 1024;
    let _ = tcp.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        while total < MAX_DRAIN {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// What the peer's first bytes look like.
enum FirstBytes {
    /// It closed (or failed) before sending anything.
    Closed,
    /// An HTTP method: plain HTTP on the TLS port.
    PlainHttp,
    /// Anything else, a TLS record we hope; rustls will judge.
    Other,
}

/// Peeks at the first bytes without consuming them.
async fn first_bytes(stream: &TcpStream) -> FirstBytes {
    const METHODS: [&[u8]; 9] = [
        b"GET ", b"POST", b"HEAD", b"PUT ", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC",
    ];
    let mut head = [0u8; 4];
    match stream.peek(&mut head).await {
        Ok(0) | Err(_) => FirstBytes::Closed,
        Ok(n)
            if METHODS
                .iter()
                .any(|m| m.starts_with(&head[..n]) && n == m.len()) =>
        {
            FirstBytes::PlainHttp
        }
        Ok(_) => FirstBytes::Other,
    }
}

/// Answers a plain-HTTP request with a 400 that says what to do, as nginx does; returns the
/// stream to linger on.
async fn refuse_plain_http(mut stream: TcpStream) -> Option<TcpStream> {
    const BODY: &str =
        "This port speaks HTTPS with mutual TLS: use an https:// URL and a client certificate.\n";
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    stream.write_all(response.as_bytes()).await.ok()?;
    Some(stream)
}

/// Resolves on Ctrl-C, or on SIGTERM where there is one.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!(signal = "SIGINT", "shutdown requested"),
        () = term => info!(signal = "SIGTERM", "shutdown requested"),
    }
}
