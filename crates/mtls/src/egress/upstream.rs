//! Connections to the upstream: TCP and TLS exactly as `client` makes them (the same
//! connect, [`crate::tls::client_config`] with our identity, the same timeouts), then
//! HTTP/2 when the upstream offers it in ALPN, HTTP/1.1 otherwise. They are kept for the
//! next request: one HTTP/2 connection carries every request at once; HTTP/1.1 ones are
//! kept while idle (at most [`MAX_IDLE`], for [`KEEP_IDLE`]).
//!
//! Every connection belongs to the generation of the identity it presented: after a
//! reload, [`Upstream::retire`] lets the pooled ones go (they close once their requests
//! are done) and new requests get new connections.
//!
//! Each connection keeps what `client` needs to explain a failure: the chain the server
//! showed, whether it asked for our certificate, and the first TLS alert read from it. A
//! failure is explained by the client's own functions, so the words are the same as
//! `client` prints. A connection that closes after a TLS 1.3 handshake is told as a refusal
//! only while it has answered nothing; a pooled connection that the upstream closed while
//! idle gets the request again on a fresh connection, if it had not taken it yet.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::body::{Body, Bytes, Incoming};
use hyper::client::conn::{http1, http2};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tracing::{debug, info};

use super::live::{LiveIdentity, Material};
use super::metrics::ProxyMetrics;
use crate::client::{self, Url, Watched};
use crate::error::{Error, Result};
use crate::explain;
use crate::tls::{self, ClientPolicy, SeenChain};

/// Most idle HTTP/1.1 connections kept.
pub const MAX_IDLE: usize = 32;
/// How long an idle HTTP/1.1 connection is kept (less than the server's idle timeout, so
/// that we, not the server, usually close it).
pub const KEEP_IDLE: Duration = Duration::from_secs(30);
/// How long a failed first request waits for its connection to record why it ended.
const REASON_WAIT: Duration = Duration::from_secs(1);

/// The TLS stream under hyper, recording the first TLS error it returns.
type Stream = TokioIo<Watched<tokio_rustls::client::TlsStream<TcpStream>>>;

/// Where requests go, and how connections to it are made.
#[derive(Clone, Debug)]
pub struct Dialing {
    /// The upstream.
    pub url: Url,
    /// TLS version and ALPN pins.
    pub policy: ClientPolicy,
    /// TCP connect limit.
    pub connect_timeout: Duration,
    /// TLS handshake limit.
    pub handshake_timeout: Duration,
}

/// The upstream and its pooled connections.
pub struct Upstream<B> {
    dialing: Dialing,
    live: Arc<LiveIdentity>,
    metrics: Arc<ProxyMetrics>,
    idle: Arc<Mutex<Idle<B>>>,
    /// Held while a connection is opened when it may be HTTP/2, so that concurrent
    /// requests share one connection rather than each opening their own.
    opening: tokio::sync::Mutex<()>,
    /// The last connection spoke HTTP/1.1: connections are then opened concurrently.
    http1_seen: AtomicBool,
    /// The generation and protocol of the last connection logged at info (the others at
    /// debug: an upstream that refuses us gets a new connection per request).
    announced: Mutex<(u64, &'static str)>,
}

impl<B> std::fmt::Debug for Upstream<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("url", &self.dialing.url)
            .finish_non_exhaustive()
    }
}

/// The pooled connections of one generation.
struct Idle<B> {
    generation: u64,
    h2: Option<Conn<B>>,
    h1: Vec<(Conn<B>, Instant)>,
}

/// One connection to the upstream.
struct Conn<B> {
    sender: Sender<B>,
    about: Arc<About>,
}

enum Sender<B> {
    H1(http1::SendRequest<B>),
    H2(http2::SendRequest<B>),
}

/// What explains a connection's failures, as `client` would explain them.
struct About {
    peer: SocketAddr,
    tls13: bool,
    /// The upstream has answered a request on it: it accepted our certificate.
    answered: AtomicBool,
    generation: u64,
    seen: SeenChain,
    explain: explain::Context,
    tls_error: Arc<Mutex<Option<rustls::Error>>>,
}

impl<B> Conn<B> {
    fn h2(&self) -> bool {
        matches!(self.sender, Sender::H2(_))
    }

    fn is_ready(&self) -> bool {
        match &self.sender {
            Sender::H1(s) => s.is_ready(),
            Sender::H2(s) => s.is_ready(),
        }
    }
}

impl<B> Conn<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    async fn send(
        &mut self,
        req: Request<B>,
    ) -> std::result::Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<B>>>
    {
        match &mut self.sender {
            Sender::H1(s) => s.try_send_request(req).await,
            Sender::H2(s) => s.try_send_request(req).await,
        }
    }
}

impl About {
    /// A failed exchange in `client`'s words: a TLS alert this connection read, a refusal
    /// after a TLS 1.3 handshake (while it has answered nothing yet), or HTTP trouble.
    fn explain(&self, err: hyper::Error) -> Error {
        let recorded = self.tls_error.lock().ok().and_then(|slot| slot.clone());
        let unproven = !self.answered.load(Ordering::Relaxed);
        client::late_error(
            Box::new(err),
            recorded,
            self.peer,
            self.tls13 && unproven,
            &self.seen,
            &self.explain,
        )
    }
}

/// A connection for one request, and whether it is new (its driver, then).
struct Checked<B> {
    conn: Conn<B>,
    driver: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<B> Idle<B> {
    /// Lets go of every pooled connection older than `generation`.
    fn advance(&mut self, generation: u64) {
        if generation > self.generation {
            self.generation = generation;
            self.h2 = None;
            self.h1.clear();
        }
    }
}

impl<B> Upstream<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// The upstream `dialing` names, reached with `live`'s current identity.
    pub fn new(dialing: Dialing, live: Arc<LiveIdentity>, metrics: Arc<ProxyMetrics>) -> Self {
        let generation = live.current().generation;
        Self {
            dialing,
            live,
            metrics,
            idle: Arc::new(Mutex::new(Idle {
                generation,
                h2: None,
                h1: Vec::new(),
            })),
            opening: tokio::sync::Mutex::new(()),
            http1_seen: AtomicBool::new(false),
            announced: Mutex::new((0, "")),
        }
    }

    /// The identity of `generation` replaced the old one: pooled connections go (each closes
    /// when its requests are done).
    pub fn retire(&self, generation: u64) {
        let mut idle = lock(&self.idle);
        let pooled = idle.h1.len() + usize::from(idle.h2.is_some());
        idle.advance(generation);
        debug!(
            connections = pooled,
            "closing the upstream connections made with the previous identity"
        );
    }

    /// Sends `req` to the upstream over a pooled connection or a new one, and returns the
    /// response head (its body streams). A failure is an error in `client`'s words.
    pub async fn send(&self, mut req: Request<B>) -> Result<Response<Incoming>> {
        let material = self.live.current();
        let mut pooled_ok = true;
        loop {
            let Checked { mut conn, driver } = self.connection(&material, pooled_ok).await?;
            address(&mut req, &self.dialing.url, conn.h2());
            match conn.send(req).await {
                Ok(response) => {
                    conn.about.answered.store(true, Ordering::Relaxed);
                    self.keep(conn);
                    return Ok(response);
                }
                Err(mut failed) => {
                    let first = driver.is_some();
                    if let (Some(back), false) = (failed.take_message(), first) {
                        // A pooled connection closed before it took the request: once more,
                        // on a fresh one.
                        debug!(error = %failed.error(), "a pooled upstream connection had closed; sending again on a new one");
                        req = back;
                        pooled_ok = false;
                        continue;
                    }
                    if let Some(driver) = driver {
                        let _ = tokio::time::timeout(REASON_WAIT, driver).await;
                    }
                    return Err(conn.about.explain(failed.into_error()));
                }
            }
        }
    }

    /// A pooled connection of `material`'s generation if there is one (and `pooled_ok`),
    /// else a new one.
    async fn connection(&self, material: &Material, pooled_ok: bool) -> Result<Checked<B>> {
        let pooled = |this: &Self| {
            pooled_ok
                .then(|| this.checkout(material.generation))
                .flatten()
                .map(|conn| Checked { conn, driver: None })
        };
        if let Some(found) = pooled(self) {
            return Ok(found);
        }
        let _one = match self.http1_seen.load(Ordering::Relaxed) {
            true => None,
            false => Some(self.opening.lock().await),
        };
        if let Some(found) = pooled(self) {
            return Ok(found);
        }
        let (conn, driver) = self.open(material).await?;
        Ok(Checked {
            conn,
            driver: Some(driver),
        })
    }

    fn checkout(&self, generation: u64) -> Option<Conn<B>> {
        let mut idle = lock(&self.idle);
        idle.advance(generation);
        if idle.generation != generation {
            return None;
        }
        if let Some(h2) = &idle.h2 {
            if let Sender::H2(s) = &h2.sender
                && h2.is_ready()
            {
                return Some(Conn {
                    sender: Sender::H2(s.clone()),
                    about: h2.about.clone(),
                });
            }
            idle.h2 = None;
        }
        while let Some((conn, since)) = idle.h1.pop() {
            if conn.is_ready() && since.elapsed() < KEEP_IDLE {
                return Some(conn);
            }
        }
        None
    }

    /// After a response head: an HTTP/2 connection stays pooled as it is; an HTTP/1.1 one
    /// goes back to the pool once its response has been read (if it is still current).
    fn keep(&self, conn: Conn<B>) {
        let Sender::H1(mut sender) = conn.sender else {
            return;
        };
        let (idle, about) = (self.idle.clone(), conn.about);
        tokio::spawn(async move {
            if sender.ready().await.is_err() {
                return;
            }
            let mut idle = lock(&idle);
            if idle.generation == about.generation && idle.h1.len() < MAX_IDLE {
                let conn = Conn {
                    sender: Sender::H1(sender),
                    about,
                };
                idle.h1.push((conn, Instant::now()));
            }
        });
    }

    /// Connects, handshakes with our identity, and starts HTTP/2 or HTTP/1.1 by ALPN.
    async fn open(&self, material: &Material) -> Result<(Conn<B>, JoinHandle<()>)> {
        let dialing = &self.dialing;
        let tcp = client::connect(&dialing.url, dialing.connect_timeout).await?;
        let peer = tcp.peer_addr().map_err(|source| Error::Io {
            context: "cannot read the upstream's address".into(),
            source,
        })?;
        let seen = SeenChain::default();
        let config = tls::client_config(
            Some(&material.identity),
            &material.trust,
            seen.clone(),
            dialing.policy,
            None,
        )?;
        let handshake = TlsConnector::from(config).connect(dialing.url.server_name(), tcp);
        let tls = match tokio::time::timeout(dialing.handshake_timeout, handshake).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(err)) => return Err(client::handshake_error(&err, &seen, &material.explain)),
            Err(_) => {
                return Err(client::handshake_timed_out(
                    dialing.handshake_timeout,
                    &material.explain,
                ));
            }
        };
        let session = tls.get_ref().1;
        let h2 = session.alpn_protocol() == Some(b"h2");
        let tls13 = session.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
        let version = session
            .protocol_version()
            .map_or_else(|| "unknown".into(), tls::version_name);
        let tls_error = Arc::new(Mutex::new(None));
        let io: Stream = TokioIo::new(Watched::new(tls, tls_error.clone()));
        let about = Arc::new(About {
            peer,
            tls13,
            answered: AtomicBool::new(false),
            generation: material.generation,
            seen,
            explain: material.explain.clone(),
            tls_error,
        });
        let handshake_failed = |e: hyper::Error| about.explain(e);
        let (sender, driver) = if h2 {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(20))
                .handshake(io)
                .await
                .map_err(handshake_failed)?;
            (Sender::H2(sender), tokio::spawn(drive(conn)))
        } else {
            let (sender, conn) = http1::handshake(io).await.map_err(handshake_failed)?;
            (Sender::H1(sender), tokio::spawn(drive(conn)))
        };
        let protocol = if h2 { "h2" } else { "http/1.1" };
        self.http1_seen.store(!h2, Ordering::Relaxed);
        self.metrics.connected(protocol);
        let news = (material.generation, protocol);
        let first = std::mem::replace(&mut *lock(&self.announced), news) != news;
        // "Presented", not "accepted": under TLS 1.3 the upstream judges our certificate after
        // our side of the handshake is done, and a refusal arrives with its first answer.
        macro_rules! connected {
            ($level:ident) => {
                $level!(
                    peer.addr = %peer,
                    upstream = %dialing.url,
                    tls.version = %version,
                    tls.alpn = protocol,
                    client.cert.serial = %material.leaf.serial_hex(),
                    "connected to the upstream: its certificate verified, ours presented"
                )
            };
        }
        match first {
            true => connected!(info),
            false => connected!(debug),
        }
        let conn = Conn { sender, about };
        if let Sender::H2(s) = &conn.sender {
            let mut idle = lock(&self.idle);
            if idle.generation == material.generation {
                idle.h2 = Some(Conn {
                    sender: Sender::H2(s.clone()),
                    about: conn.about.clone(),
                });
            }
        }
        Ok((conn, driver))
    }
}

/// Runs a connection until it ends; its errors reach the requests on it.
async fn drive<F, E>(conn: F)
where
    F: std::future::Future<Output = std::result::Result<(), E>>,
    E: std::fmt::Display,
{
    if let Err(e) = conn.await {
        debug!(error = %e, "upstream connection ended with an error");
    }
}

/// Points `req` at the upstream, as the protocol wants it: HTTP/2 names it in `:authority`
/// only (a `Host` beside it is a duplicate strict servers refuse); HTTP/1.1 in `Host`, with
/// the path alone as the target. Whatever host the application named is replaced.
fn address<B>(req: &mut Request<B>, url: &Url, h2: bool) {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let (uri, version) = match h2 {
        true => (
            format!("https://{}{path}", url.authority()),
            Version::HTTP_2,
        ),
        false => (path, Version::HTTP_11),
    };
    // From a path and an authority that both parsed already.
    if let Ok(uri) = uri.parse::<Uri>() {
        *req.uri_mut() = uri;
    }
    *req.version_mut() = version;
    let headers = req.headers_mut();
    match h2 {
        true => {
            headers.remove(header::HOST);
        }
        false => {
            if let Ok(host) = HeaderValue::from_str(url.authority()) {
                headers.insert(header::HOST, host);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str) -> Request<()> {
        Request::builder()
            .uri(target)
            .header(header::HOST, "127.0.0.1:8080")
            .body(())
            .expect("a request")
    }

    #[test]
    fn requests_name_the_upstream_as_each_protocol_wants() {
        let url: Url = "https://api.internal:8443".parse().expect("url");
        let mut h1 = request("http://api.internal:8443/orders?id=7");
        address(&mut h1, &url, false);
        assert_eq!(h1.uri(), "/orders?id=7");
        assert_eq!(h1.headers()[header::HOST], "api.internal:8443");
        assert_eq!(h1.version(), Version::HTTP_11);

        let mut h2 = request("/orders?id=7");
        address(&mut h2, &url, true);
        assert_eq!(h2.uri(), "https://api.internal:8443/orders?id=7");
        assert!(h2.headers().get(header::HOST).is_none(), "{h2:?}");
        assert_eq!(h2.version(), Version::HTTP_2);
    }
}
