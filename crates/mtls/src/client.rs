//! One HTTPS request with a client certificate, with a timeout on every phase, and a report
//! of what each side checked.
//!
//! With TLS 1.3 the server judges our certificate *after* our side of the handshake has
//! finished, so its refusal arrives as an alert on the first read. This module looks for that
//! alert inside hyper's errors and reports it as a refusal, not as a broken connection.
//!
//! With [`ClientSettings::trace`] the connection's bytes are recorded and its handshake is
//! decoded into a [`Trace`], which comes back with the exchange or with the error.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::header::{HOST, USER_AGENT};
use hyper::{Request, StatusCode, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tracing::debug;

use crate::certinfo::CertInfo;
use crate::error::{Error, Failure, Result};
use crate::explain::{self, Side};
pub use crate::explain::{HttpRefusal, HttpRefusalKind};
use crate::pem;
use crate::report::{ChainText, TlsReport, describe_chain};
use crate::tls::{self, Identity, SeenChain, Trust};
use crate::trace::{self, Recorder, Secrets, Tap, Trace};

/// The default URL, as in the Go demo.
pub const DEFAULT_URL: &str = "https://localhost:8443/";

/// Largest response body read.
const MAX_BODY: usize = 1024 * 1024;

/// Where to connect and with what.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// An https:// URL.
    pub url: Url,
    /// The CA the server's certificate must chain to.
    pub ca: PathBuf,
    /// Our certificate and key, and how errors name them ("Client A"); `None` sends none.
    pub identity: Option<(PathBuf, PathBuf, String)>,
    /// TCP connect limit.
    pub connect_timeout: Duration,
    /// TLS handshake limit.
    pub handshake_timeout: Duration,
    /// Limit for the response (headers and body).
    pub response_timeout: Duration,
    /// TLS version and ALPN pins.
    pub policy: tls::ClientPolicy,
    /// Record the connection and decode its handshake into a [`Trace`].
    pub trace: bool,
}

impl ClientSettings {
    /// Defaults: the demo URL, 5 s to connect, 10 s for the handshake and for the response.
    pub fn new(ca: PathBuf, identity: Option<(PathBuf, PathBuf, String)>) -> Self {
        Self {
            url: Url::default(),
            ca,
            identity,
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(10),
            policy: tls::ClientPolicy::default(),
            trace: false,
        }
    }
}

/// What one request saw.
#[derive(Debug)]
pub struct Exchange {
    /// The server's address.
    pub peer: SocketAddr,
    /// The host name verified against the server's certificate.
    pub host: String,
    /// The CA file the server was verified against.
    pub ca: PathBuf,
    /// HTTP version used.
    pub version: Version,
    /// Response status.
    pub status: StatusCode,
    /// Response body (lossy UTF-8).
    pub body: String,
    /// The TLS state from our side; `peer_chain` is the server's chain.
    pub tls: TlsReport,
    /// Who we presented as, if the server asked for a certificate.
    pub presented: Option<String>,
    /// We had a certificate to present (whether or not the server asked).
    pub offered: bool,
    /// The CA names the server's CertificateRequest listed (empty: none, or it did not ask).
    pub ca_names: Vec<String>,
    /// The connection's handshake as it happened, when [`ClientSettings::trace`] asked.
    pub trace: Option<Trace>,
}

/// A request that failed, with the trace of its connection when one was asked for (it then
/// shows the alert that ended it).
#[derive(Debug)]
pub struct FetchError {
    /// What went wrong.
    pub error: Error,
    /// The connection's handshake as far as it got, if it was traced and a connection was
    /// made.
    pub trace: Option<Trace>,
}

/// An `https://HOST[:PORT][/PATH]` URL, checked once, when it is parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    text: String,
    host: String,
    port: u16,
    authority: String,
    path: String,
}

impl Url {
    /// The host, without IPv6 brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (443 when the URL has none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `HOST[:PORT]` as the URL wrote it (what a Host header carries).
    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    /// The path and query (`/` when the URL has none).
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    pub(crate) fn server_name(&self) -> ServerName<'static> {
        // Checked when parsed: the host is a DNS name or an IP address.
        ServerName::try_from(self.host.clone())
            .unwrap_or_else(|_| ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into()))
    }
}

impl Default for Url {
    fn default() -> Self {
        Self {
            text: DEFAULT_URL.into(),
            host: "localhost".into(),
            port: 8443,
            authority: "localhost:8443".into(),
            path: "/".into(),
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Url {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self> {
        let bad = |why: String| Error::Usage(format!("--url {url:?} {why}"));
        let uri: Uri = url
            .parse()
            .map_err(|e| bad(format!("is not a valid URL ({e})")))?;
        match uri.scheme_str() {
            Some("https") => {}
            Some(other) => return Err(bad(format!("uses {other}://; mutual TLS needs https://"))),
            None => return Err(bad("has no scheme; write it as https://HOST:PORT/".into())),
        }
        let authority = uri.authority().ok_or_else(|| bad("has no host".into()))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if ServerName::try_from(host.clone()).is_err() {
            return Err(bad(format!(
                "names {host:?}, which is neither a DNS name nor an IP address"
            )));
        }
        // The text after the host's last ':' (past any IPv6 brackets), parsed here so a port
        // that does not fit in 16 bits is an error rather than a silent 443.
        let auth = authority.as_str();
        let after_host = auth.rsplit_once(']').map_or(auth, |(_, rest)| rest);
        let port = match after_host.rsplit_once(':') {
            None => 443,
            Some((_, text)) => match text.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => {
                    return Err(bad(format!(
                        "has port {text:?}; a port is a number from 1 to 65535"
                    )));
                }
            },
        };
        Ok(Self {
            text: url.to_string(),
            port,
            authority: authority.as_str().to_string(),
            path: uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into()),
            host,
        })
    }
}

/// Connects, handshakes, sends `GET`, and reads the response.
pub async fn fetch(settings: &ClientSettings) -> Result<Exchange> {
    fetch_traced(settings).await.map_err(|failed| failed.error)
}

/// [`fetch`], with the connection's [`Trace`] in the exchange or in the error when
/// `settings.trace` asks for it.
pub async fn fetch_traced(settings: &ClientSettings) -> std::result::Result<Exchange, FetchError> {
    let recording = settings
        .trace
        .then(|| (Tap::new(Side::Client), Secrets::kept()));
    let result = exchange(settings, recording.as_ref()).await;
    let trace = recording
        .map(|(tap, secrets)| trace::decode(&tap.finish(), &secrets))
        .filter(|t| !t.records.is_empty() || !t.notes.is_empty());
    match result {
        Ok(mut done) => {
            done.trace = trace;
            Ok(done)
        }
        Err(error) => Err(FetchError { error, trace }),
    }
}

/// The TCP stream, recorded when tracing.
pub(crate) type Wire = Recorder<TcpStream>;

/// What every connection of one client shares, made once from its settings: the TLS config,
/// what the handshakes showed of the server, and what failures are explained with.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    /// The config each handshake uses.
    pub(crate) config: Arc<rustls::ClientConfig>,
    /// The server's chain and whether it asked for ours, as the last handshake saw them.
    pub(crate) seen: SeenChain,
    /// Our CA and certificate, for explaining a failure.
    pub(crate) cx: explain::Context,
    /// Our certificate and key, when we present one.
    pub(crate) identity: Option<Identity>,
}

impl Prepared {
    /// Loads the CA and our certificate, and builds the config (recording the handshake's
    /// secrets into `secrets` when tracing).
    pub(crate) fn new(settings: &ClientSettings, secrets: Option<Arc<Secrets>>) -> Result<Self> {
        let described = pem::described_certificates(&settings.ca, "the CA certificate")?;
        let (anchors, anchor_infos): (Vec<_>, Vec<_>) = described.iter().cloned().unzip();
        let trust = Trust::from_certs(anchors, &settings.ca)?;
        let identity = match &settings.identity {
            Some((cert, key, owner)) => Some(Identity::load(cert, key, owner)?),
            None => None,
        };
        let seen = SeenChain::default();
        let config = tls::client_config(
            identity.as_ref(),
            &trust,
            seen.clone(),
            settings.policy,
            secrets,
        )?;
        let cx = explain::Context {
            ca: Some(settings.ca.clone()),
            anchors: anchor_infos,
            ours: identity
                .as_ref()
                .and_then(|id| CertInfo::parse(&id.chain[0]).ok()),
            ours_file: identity.as_ref().map(|id| id.cert_path.clone()),
            retired: identity
                .as_ref()
                .and_then(|id| crate::retired::find(&id.chain, &settings.ca, &described)),
            ..explain::Context::default()
        };
        Ok(Self {
            config,
            seen,
            cx,
            identity,
        })
    }

    /// Connects to the settings' URL and completes the TLS handshake, each phase within its
    /// limit; a refusal comes back explained.
    pub(crate) async fn handshake(
        &self,
        settings: &ClientSettings,
        tap: Option<Tap>,
    ) -> Result<(TlsStream<Wire>, SocketAddr)> {
        let tcp = connect(&settings.url, settings.connect_timeout).await?;
        let peer = tcp.peer_addr().map_err(|source| Error::Io {
            context: "cannot read the server's address".into(),
            source,
        })?;
        debug!(peer.addr = %peer, "connected");
        let tcp = Recorder::new(tcp, tap);
        let handshake =
            TlsConnector::from(self.config.clone()).connect(settings.url.server_name(), tcp);
        match tokio::time::timeout(settings.handshake_timeout, handshake).await {
            Ok(Ok(tls)) => Ok((tls, peer)),
            Ok(Err(err)) => Err(handshake_error(&err, &self.seen, &self.cx)),
            Err(_) => {
                let failure = Failure::Timeout {
                    after: settings.handshake_timeout,
                };
                Err(Error::Tls {
                    message: failure.explain(Side::Client, &self.cx),
                    failure,
                })
            }
        }
    }

    /// Waits at most `limit` for `response` on a connection to `peer`; a failure is
    /// explained as the client explains it (a late TLS alert the stream recorded in
    /// `tls_error`, a silent close, or plain HTTP trouble).
    pub(crate) async fn answer_within<T>(
        &self,
        limit: Duration,
        response: impl Future<Output = std::result::Result<T, HttpFailure>>,
        tls_error: &Mutex<Option<rustls::Error>>,
        peer: SocketAddr,
        tls13: bool,
    ) -> Result<T> {
        match tokio::time::timeout(limit, response).await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(HttpFailure(err))) => {
                let recorded = tls_error.lock().ok().and_then(|slot| slot.clone());
                Err(late_error(err, recorded, peer, tls13, &self.seen, &self.cx))
            }
            Err(_) => Err(Error::Timeout {
                phase: format!("waiting for the response from {peer}"),
                after: limit,
            }),
        }
    }
}

/// `GET` for `target`'s path, sent with `agent` as the user agent: over HTTP/2 the host in
/// `:authority` only (a host header beside it is a duplicate that strict servers, nginx,
/// refuse with 400), over HTTP/1.1 in a host header.
pub(crate) fn get_request(target: &Url, h2: bool, agent: &str) -> Result<Request<Empty<Bytes>>> {
    let request = match h2 {
        true => Request::get(format!("https://{}{}", target.authority, target.path)),
        false => Request::get(target.path.clone()).header(HOST, &target.authority),
    };
    request
        .header(USER_AGENT, agent)
        .body(Empty::<Bytes>::new())
        .map_err(|e| Error::Invalid(format!("cannot build the request: {e}")))
}

/// The user agent of `client`'s own requests.
const CLIENT_AGENT: &str = concat!("mtls-demo-client/", env!("CARGO_PKG_VERSION"));

async fn exchange(
    settings: &ClientSettings,
    recording: Option<&(Tap, Arc<Secrets>)>,
) -> Result<Exchange> {
    let target = &settings.url;
    let prepared = Prepared::new(settings, recording.map(|(_, secrets)| secrets.clone()))?;
    let (tls, peer) = prepared
        .handshake(settings, recording.map(|(tap, _)| tap.clone()))
        .await?;
    // rustls sends SNI only for DNS names, never for IP addresses.
    let sni = match server_name_is_dns(&target.host) {
        true => Some(target.host.as_str()),
        false => None,
    };
    let report = TlsReport::from_connection(tls.get_ref().1, sni);
    debug!(
        peer.addr = %peer,
        tls.version = %report.version,
        tls.cipher_suite = %report.cipher_suite,
        tls.alpn = report.alpn.as_deref().unwrap_or("none"),
        "handshake complete"
    );
    let tls13 = report.version == "TLSv1.3";
    let h2 = report.alpn.as_deref() == Some("h2");
    let req = get_request(target, h2, CLIENT_AGENT)?;
    let tls_error = Arc::new(Mutex::new(None));
    let io = Watched::new(tls, tls_error.clone());
    let (version, status, body) = prepared
        .answer_within(
            settings.response_timeout,
            send(io, req, h2),
            &tls_error,
            peer,
            tls13,
        )
        .await?;
    let Prepared { seen, identity, .. } = prepared;
    Ok(Exchange {
        peer,
        host: target.host.clone(),
        ca: settings.ca.clone(),
        version,
        status,
        body,
        tls: report,
        presented: identity
            .as_ref()
            .filter(|_| seen.presented())
            .and_then(|id| CertInfo::parse(&id.chain[0]).ok())
            .map(|leaf| leaf.identity()),
        offered: settings.identity.is_some(),
        ca_names: seen.ca_names(),
        trace: None,
    })
}

/// Refuses `url` when its host resolves to an address not on this machine, unless
/// `allow_remote`: for the tools that talk to one's own servers only unless told otherwise.
/// `flag` is the option that gave the URL, `why` says why the tool stays home. Only the name
/// is resolved; nothing is sent.
pub(crate) async fn only_loopback(
    url: &Url,
    flag: &str,
    allow_remote: bool,
    why: &str,
) -> Result<()> {
    if allow_remote {
        return Ok(());
    }
    let outside: Vec<String> = tokio::net::lookup_host((url.host(), url.port()))
        .await
        .map_err(|source| Error::Resolve {
            host: url.host().to_string(),
            source,
        })?
        .filter(|a| !a.ip().is_loopback())
        .map(|a| a.ip().to_string())
        .collect();
    if outside.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{flag} {url} reaches {}, which is not this machine; {why}, so it goes to another \
         machine only with --allow-remote",
        outside.join(", ")
    )))
}

fn server_name_is_dns(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_err()
}

pub(crate) async fn connect(target: &Url, limit: Duration) -> Result<TcpStream> {
    let name = match target.host.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, target.port).to_string(),
        Err(_) => format!("{}:{}", target.host, target.port),
    };
    let attempt = async {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|source| Error::Resolve {
                host: target.host.clone(),
                source,
            })?
            .collect();
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    return Ok(tcp);
                }
                Err(e) => last = Some((addr, e)),
            }
        }
        let Some((addr, source)) = last else {
            return Err(Error::Resolve {
                host: target.host.clone(),
                source: io::Error::new(io::ErrorKind::NotFound, "it has no address"),
            });
        };
        Err(Error::Connect {
            target: if addr.to_string() == name {
                name.clone()
            } else {
                format!("{name} ({addr})")
            },
            source,
        })
    };
    tokio::time::timeout(limit, attempt)
        .await
        .map_err(|_| Error::Timeout {
            phase: format!("connecting to {name}"),
            after: limit,
        })?
}

/// An error from the HTTP phase, with its source chain intact for inspection.
pub(crate) struct HttpFailure(pub(crate) Box<dyn StdError + Send + Sync>);

pub(crate) type Response = (Version, StatusCode, String);

/// The task that drives one HTTP connection.
type Driver = tokio::task::JoinHandle<std::result::Result<(), hyper::Error>>;

/// One HTTP/1.1 or HTTP/2 connection over TLS: the sender of its requests, and the task
/// that drives it (stopped when this is dropped). Requests go one at a time.
pub(crate) struct HttpConnection {
    sender: Sender,
    /// `None` once the task has ended and its outcome was read.
    driver: Option<Driver>,
}

enum Sender {
    Http1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl HttpConnection {
    /// Starts HTTP/2 (`h2`) or HTTP/1.1 on `io`.
    pub(crate) async fn start(
        io: Watched<TlsStream<Wire>>,
        h2: bool,
    ) -> std::result::Result<Self, HttpFailure> {
        let io = TokioIo::new(io);
        let boxed = |e: hyper::Error| HttpFailure(e.into());
        let (sender, driver) = if h2 {
            let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(boxed)?;
            (Sender::Http2(sender), tokio::spawn(conn))
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(boxed)?;
            (Sender::Http1(sender), tokio::spawn(conn))
        };
        Ok(Self {
            sender,
            driver: Some(driver),
        })
    }

    /// Whether the connection can carry no more requests (the server closed it, or its
    /// task ended), so a caller keeping it open knows to make a new one.
    pub(crate) fn is_closed(&self) -> bool {
        let sender_closed = match &self.sender {
            Sender::Http1(s) => s.is_closed(),
            Sender::Http2(s) => s.is_closed(),
        };
        sender_closed || self.driver.as_ref().is_none_or(|d| d.is_finished())
    }

    /// Sends `req` and reads the whole response.
    pub(crate) async fn send(
        &mut self,
        req: Request<Empty<Bytes>>,
    ) -> std::result::Result<Response, HttpFailure> {
        let response = async {
            let sent = match &mut self.sender {
                Sender::Http1(s) => match s.ready().await {
                    Ok(()) => s.send_request(req).await,
                    Err(e) => Err(e),
                },
                Sender::Http2(s) => match s.ready().await {
                    Ok(()) => s.send_request(req).await,
                    Err(e) => Err(e),
                },
            };
            read_response(sent).await
        };
        answer(response, &mut self.driver).await
    }
}

impl Drop for HttpConnection {
    fn drop(&mut self) {
        if let Some(driver) = &self.driver {
            driver.abort();
        }
    }
}

/// Sends `req` over HTTP/1.1 or HTTP/2 on a connection of its own and reads the whole
/// response.
pub(crate) async fn send(
    io: Watched<TlsStream<Wire>>,
    req: Request<Empty<Bytes>>,
    h2: bool,
) -> std::result::Result<Response, HttpFailure> {
    HttpConnection::start(io, h2).await?.send(req).await
}

async fn read_response(
    resp: std::result::Result<hyper::Response<hyper::body::Incoming>, hyper::Error>,
) -> std::result::Result<Response, Box<dyn StdError + Send + Sync>> {
    let resp = resp?;
    let version = resp.version();
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_BODY).collect().await?;
    Ok((
        version,
        status,
        String::from_utf8_lossy(&body.to_bytes()).into_owned(),
    ))
}

/// The response, or why the connection ended first. The connection's task is watched
/// beside the response: when it ends with an error (a TLS 1.3 refusal arrives on its first
/// read), that error is the answer at once, rather than whenever, if ever, the request's
/// future learns that its connection is gone. A task that ended is taken out of `slot`.
async fn answer(
    response: impl Future<Output = std::result::Result<Response, Box<dyn StdError + Send + Sync>>>,
    slot: &mut Option<Driver>,
) -> std::result::Result<Response, HttpFailure> {
    let Some(driver) = slot.as_mut() else {
        return Err(HttpFailure(
            "the connection had closed before this request".into(),
        ));
    };
    tokio::pin!(response);
    let (result, ended) = tokio::select! {
        // An answer that is complete wins over the connection's end.
        biased;
        result = &mut response => (result, false),
        ended = &mut *driver => match ended {
            // The connection failed before the answer: that is the cause.
            Ok(Err(e)) => {
                *slot = None;
                return Err(HttpFailure(e.into()));
            }
            // It closed cleanly (or its task stopped): the answer may still be complete.
            _ => match tokio::time::timeout(Duration::from_secs(1), &mut response).await {
                Ok(result) => (result, true),
                Err(_) => (Err("the connection closed before the answer arrived".into()), true),
            },
        },
    };
    if ended {
        *slot = None;
    }
    match result {
        Ok(done) => Ok(done),
        Err(err) => {
            // Let the task finish recording the cause (the alert) for a moment.
            let finished = match slot.as_mut().filter(|d| !d.is_finished()) {
                Some(driver) => tokio::time::timeout(Duration::from_secs(1), driver)
                    .await
                    .is_ok(),
                None => false,
            };
            if finished {
                *slot = None;
            }
            Err(HttpFailure(err))
        }
    }
}

/// Wraps the TLS stream and keeps the first rustls error any read or write returned.
///
/// hyper (and h2 in particular) flattens I/O errors into text, losing the typed alert;
/// reading it here keeps "the server refused our certificate" precise for both versions.
/// A server that refuses our certificate after a TLS 1.3 handshake sends an alert and
/// closes; HTTP/2 writes its preface first and would fail on the closed socket without ever
/// reading the alert. So a write that fails because the peer closed is held back, for at
/// most [`REASON_WAIT`], while what the peer sent before closing is read: its alert, if
/// any, is recorded, then the write fails as it would have.
pub(crate) struct Watched<S> {
    inner: S,
    tls_error: Arc<Mutex<Option<rustls::Error>>>,
    /// A write that failed because the peer closed: its error, and until when to read.
    failed_write: Option<(io::ErrorKind, String, Pin<Box<tokio::time::Sleep>>)>,
}

/// How long a failed write waits for the peer's last words.
const REASON_WAIT: Duration = Duration::from_millis(500);

impl<S> Watched<S> {
    pub(crate) fn new(inner: S, tls_error: Arc<Mutex<Option<rustls::Error>>>) -> Self {
        Self {
            inner,
            tls_error,
            failed_write: None,
        }
    }

    fn record<T>(&self, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(e)) = &poll
            && let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
            && let Ok(mut slot) = self.tls_error.lock()
        {
            slot.get_or_insert_with(|| tls.clone());
        }
        poll
    }
}

impl<S: AsyncRead + Unpin> Watched<S> {
    /// A write's outcome; a failure because the peer closed starts reading its reason.
    fn written<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(Err(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) =>
            {
                let wait = Box::pin(tokio::time::sleep(REASON_WAIT));
                self.failed_write = Some((e.kind(), e.to_string(), wait));
                self.read_the_reason(cx)
            }
            other => self.record(other),
        }
    }

    /// Reads what the peer sent before it closed, until its alert, the end, or the wait is
    /// over; then fails the write.
    fn read_the_reason<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let mut scratch = [0u8; 4096];
        for _ in 0..64 {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => continue,
                Poll::Ready(Err(e)) => {
                    let _ = self.record(Poll::<io::Result<()>>::Ready(Err(e)));
                    break;
                }
                Poll::Ready(Ok(())) => break,
                Poll::Pending => {
                    let waiting = self
                        .failed_write
                        .as_mut()
                        .is_some_and(|(_, _, wait)| wait.as_mut().poll(cx).is_pending());
                    if waiting {
                        return Poll::Pending;
                    }
                    break;
                }
            }
        }
        let (kind, text) = self
            .failed_write
            .as_ref()
            .map(|(kind, text, _)| (*kind, text.clone()))
            .unwrap_or((io::ErrorKind::BrokenPipe, "the peer closed".into()));
        Poll::Ready(Err(io::Error::new(kind, text)))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.record(poll)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.failed_write.is_some() {
            return self.read_the_reason(cx);
        }
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.written(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.failed_write.is_some() {
            return self.read_the_reason(cx);
        }
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.written(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.failed_write.is_some() {
            return self.read_the_reason(cx);
        }
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.written(cx, poll)
    }
}

/// A handshake that did not finish within `after`, explained.
pub(crate) fn handshake_timed_out(after: Duration, cx: &explain::Context) -> Error {
    let failure = Failure::Timeout { after };
    Error::Tls {
        message: failure.explain(Side::Client, cx),
        failure,
    }
}

/// A handshake error, explained (with the server's chain, if we saw it).
pub(crate) fn handshake_error(err: &io::Error, seen: &SeenChain, cx: &explain::Context) -> Error {
    let cx = &explain::Context {
        arrived: Some(explain::Arrival::InHandshake),
        ..seen.told(cx)
    };
    let chain = describe_chain(&seen.get());
    let failure = match find_rustls(err) {
        Some(tls) => Failure::from_rustls(tls).with_peer_chain(&chain),
        None => Failure::Other(format!("the connection broke during the handshake ({err})")),
    };
    Error::Tls {
        message: failure.explain(Side::Client, cx),
        failure,
    }
}

/// An error after the handshake: a late TLS alert, a silent close, or plain HTTP trouble.
pub(crate) fn late_error(
    err: Box<dyn StdError + Send + Sync>,
    recorded: Option<rustls::Error>,
    peer: SocketAddr,
    tls13: bool,
    seen: &SeenChain,
    cx: &explain::Context,
) -> Error {
    let cx = &explain::Context {
        arrived: tls13.then_some(explain::Arrival::AfterHandshake),
        ..seen.told(cx)
    };
    if let Some(tls) = recorded.as_ref().or_else(|| find_rustls(err.as_ref())) {
        let failure = Failure::from_rustls(tls).with_peer_chain(&describe_chain(&seen.get()));
        return Error::Tls {
            message: failure.explain(Side::Client, cx),
            failure,
        };
    }
    if tls13 && is_closed(err.as_ref()) {
        let failure = Failure::ClosedAfterHandshake;
        return Error::Tls {
            message: failure.explain(Side::Client, cx),
            failure,
        };
    }
    Error::Http {
        peer,
        detail: chain_text(err.as_ref()),
    }
}

/// Walks an error's sources for the rustls error (io::Error hides it behind `get_ref`).
pub(crate) fn find_rustls<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        cur = e.source();
    }
    None
}

/// The connection was reset or closed under us.
pub(crate) fn is_closed(err: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionAborted
            )
        {
            return true;
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_closed() || h.is_canceled())
        {
            return true;
        }
        cur = e.source();
    }
    false
}

fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut cur = err.source();
    while let Some(e) = cur {
        let text = e.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        cur = e.source();
    }
    parts.join(": ")
}

impl FetchError {
    /// The failure as JSON, for scripts: the error, and the trace when there is one.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "error": self.error.to_string(),
            "trace": self.trace.as_ref().map(Trace::to_json),
            "trace_notes": self.trace.as_ref().map(|t| t.notes.clone()),
        })
    }
}

/// A refusal of the client's certificate in an HTTP answer, as nginx words one (400, 495,
/// 496), if `status` and `body` are one.
pub(crate) fn http_refusal_of(status: u16, body: &str) -> Option<HttpRefusal> {
    let body = body.to_ascii_lowercase();
    let kind = match status {
        495 => HttpRefusalKind::CertificateError,
        496 => HttpRefusalKind::CertificateRequired,
        400 if body.contains("ssl certificate error") => HttpRefusalKind::CertificateError,
        400 if body.contains("no required ssl certificate was sent") => {
            HttpRefusalKind::CertificateRequired
        }
        _ => return None,
    };
    Some(HttpRefusal { kind, status })
}

impl Exchange {
    /// The server's answer refuses our certificate at the HTTP level, if it does.
    pub fn http_refusal(&self) -> Option<HttpRefusal> {
        http_refusal_of(self.status.as_u16(), &self.body)
    }

    /// The same report as JSON, for scripts: the response, the TLS state, the server's
    /// chain, and what each side checked.
    pub fn to_json(&self) -> serde_json::Value {
        use crate::format::rfc3339;
        let chain: Vec<serde_json::Value> = self
            .tls
            .peer_chain
            .iter()
            .map(|c| {
                serde_json::json!({
                    "subject": c.subject,
                    "issuer": c.issuer,
                    "sans": c.sans.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "not_before": rfc3339(c.not_before),
                    "not_after": rfc3339(c.not_after),
                    "sha256": c.fingerprint(),
                })
            })
            .collect();
        let mut report = serde_json::json!({
            "peer": self.peer.to_string(),
            "host": self.host,
            "http_version": format!("{:?}", self.version),
            "status": self.status.as_u16(),
            "body": self.body,
            "tls": {
                "version": self.tls.version,
                "cipher_suite": self.tls.cipher_suite,
                "key_exchange": self.tls.key_exchange,
                "resumed": self.tls.resumed,
                "alpn": self.tls.alpn,
                "sni": self.tls.sni,
            },
            "server_chain": chain,
            "checked": {
                "by_us": {
                    "ca": self.ca.display().to_string(),
                    "host": self.host,
                },
                "server_asked_for_certificate": self.presented.is_some(),
                "refused_at_http": self.http_refusal().map(|r| r.status),
                "presented": self.presented,
                "offered": self.offered,
                "ca_names_asked_for": self.ca_names,
            },
        });
        if let Some(trace) = &self.trace {
            report["trace"] = trace.to_json();
            report["trace_notes"] = serde_json::json!(trace.notes);
        }
        report
    }
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:?} {} {}",
            self.version,
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or("")
        )?;
        writeln!(f, "{}", self.body.trim_end())?;
        writeln!(f)?;
        writeln!(
            f,
            "TLS state (as this client saw it, talking to {})",
            self.peer
        )?;
        write!(f, "{}", self.tls)?;
        writeln!(f)?;
        writeln!(f, "Server certificate chain")?;
        write!(f, "{}", ChainText(&self.tls.peer_chain))?;
        writeln!(f)?;
        writeln!(f, "What was checked")?;
        writeln!(
            f,
            "  by us:         the server's chain leads to the CA in {}, its dates are current, it \
             is meant for serverAuth, and it names \"{}\"",
            self.ca.display(),
            self.host
        )?;
        let status = self.status.as_u16();
        if !self.ca_names.is_empty() {
            writeln!(
                f,
                "  the server asked for a certificate from: {}",
                self.ca_names.join("; ")
            )?;
        }
        match (&self.presented, self.offered) {
            (Some(who), _) => match self.http_refusal() {
                Some(refusal) => writeln!(
                    f,
                    "  by the server: it asked for our certificate and we presented ours ({who}); \
                     it completed the handshake, then refused the certificate in its HTTP answer \
                     ({})",
                    refusal.status
                ),
                None if self.status.is_success() => writeln!(
                    f,
                    "  by the server: it asked for our certificate and we presented ours ({who}); \
                     it answered {status}, so it accepted it (which checks it made, only its log \
                     can tell)"
                ),
                None => writeln!(
                    f,
                    "  by the server: it asked for our certificate and we presented ours ({who}); \
                     it answered {status}"
                ),
            },
            (None, true) => writeln!(
                f,
                "  by the server: nothing; it never asked for a client certificate, so this was \
                 ordinary TLS, not mutual TLS (it answered {})",
                self.status.as_u16()
            ),
            (None, false) => writeln!(
                f,
                "  by the server: we sent no certificate, yet it answered {}",
                self.status.as_u16()
            ),
        }
    }
}

/// Fetches the chain a server presents, without trusting it: the handshake is abandoned as
/// soon as the certificate arrives. For `certificate inspect https://HOST:PORT`.
pub async fn fetch_chain(
    url: &Url,
    limit: Duration,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    let target = url;
    let server_name = target.server_name();
    let seen = SeenChain::default();
    let config = tls::probe_config(seen.clone())?;
    let tcp = connect(target, limit).await?;
    let handshake = TlsConnector::from(config).connect(server_name, tcp);
    let outcome = tokio::time::timeout(limit, handshake).await;
    let chain = seen.get();
    if chain.is_empty() {
        let why = match outcome {
            Err(_) => format!("no certificate arrived within {}s", limit.as_secs_f32()),
            Ok(Err(e)) => match find_rustls(&e) {
                Some(tls) => {
                    Failure::from_rustls(tls).explain(Side::Client, &explain::Context::default())
                }
                None => e.to_string(),
            },
            Ok(Ok(_)) => "the server sent no certificate".into(),
        };
        return Err(Error::Invalid(format!(
            "{url} did not show its certificate: {why}"
        )));
    }
    Ok(chain)
}
