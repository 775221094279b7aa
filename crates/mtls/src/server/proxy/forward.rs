//! Forwarding: each admitted request goes to the application over pooled connections
//! (HTTP/1.1, HTTP/2 without TLS, or TLS with either by ALPN), with the client's identity
//! and without anything it could forge; trailers pass both ways; an upgrade becomes a
//! tunnel.

use std::collections::BTreeSet;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{CaptureConnection, capture_connection};
use hyper_util::rt::TokioExecutor;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::time::{Instant, Sleep, timeout_at};
use tracing::{debug, warn};

use super::connector::{Connector, TlsConnection, TlsRefusal};
use super::grpc::{self, GrpcStatus};
use super::hygiene::{
    forwarded_for, join_cookies, keep_te_trailers, strip_hop_by_hop, strip_identity_headers,
    strip_underscored, wants_trailers,
};
use super::identity::ForwardedIdentity;
use super::tunnel::{self, Ends, Tunnels};
use super::upstream::{Protocol, Upstream};
use super::upstream_tls::UpstreamTls;
use crate::format::format_duration;
use crate::server::reload::LiveTls;
use crate::server::request::target_host;
use crate::server::response::{BoxError, ResponseBody, empty_body, text_response};
use crate::server::watchdog::{Limit, WatchdogCounts};

/// Most requests in flight to the upstream at once unless `--upstream-max-in-flight` says
/// otherwise; more wait (within the first-byte timeout) for one to finish.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// How long the upstream may take to accept a connection (and finish its TLS handshake)
/// unless `--upstream-connect-timeout` says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the upstream may take to start its response unless
/// `--upstream-first-byte-timeout` says otherwise.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);

/// The proxy's limits.
#[derive(Clone, Copy, Debug)]
pub struct ProxyLimits {
    /// Most requests in flight to the upstream at once (at least one).
    pub max_in_flight: usize,
    /// To open a connection, TLS handshake included.
    pub connect_timeout: Duration,
    /// From the request until the response head, the wait for a slot included.
    pub first_byte_timeout: Duration,
    /// Longest pause in a response body that is waiting for the application (the server's
    /// stall timeout, `--idle-timeout`): every piece that arrives starts it again.
    pub stall_timeout: Duration,
}

/// A client's request body on its way to the upstream, noting why it failed if it did,
/// so that a malformed body is answered 400 rather than blamed on the application.
#[derive(Debug)]
pub struct ClientBody<B> {
    inner: B,
    failed: Arc<OnceLock<String>>,
}

impl<B: Body + Unpin> Body for ClientBody<B>
where
    B::Error: std::fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(e))) = &polled {
            let _ = self.failed.set(e.to_string());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The upstream's response body: it holds its request's slot under the in-flight cap until
/// it has been sent (or dropped), and ends with an error (the client sees a reset stream,
/// or a closed HTTP/1.1 connection, never a response that looks complete) when the
/// application sends nothing for the stall timeout while the body waits for it. Only
/// waiting counts: while the client is not taking the body, nobody asks for more.
struct UpstreamBody {
    inner: Incoming,
    _slot: OwnedSemaphorePermit,
    stall_timeout: Duration,
    /// Set when the body began waiting for the application.
    waiting: Option<Pin<Box<Sleep>>>,
    origin: Origin,
}

/// A response body the application stopped sending.
#[derive(Debug, thiserror::Error)]
#[error("the application sent nothing more of its response for {}", format_duration(*.0))]
struct Stalled(Duration);

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.waiting = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let stall = self.stall_timeout;
                let timer = self
                    .waiting
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.origin.stalled(stall);
                Poll::Ready(Some(Err(Stalled(stall).into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The pooled clients for one load of the upstream TLS material (none for a plain
/// upstream): a reload builds new ones, so new connections present the new certificate.
struct Clients<B> {
    material: Option<Arc<UpstreamTls>>,
    /// HTTP/1.1, HTTP/2 (h2c), or either by ALPN (https).
    requests: Client<Connector, ClientBody<B>>,
    /// HTTP/1.1 only, for upgrades.
    upgrades: Client<Connector, ClientBody<B>>,
}

impl<B> Clients<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError> + std::fmt::Display,
{
    fn new(upstream: &Upstream, material: Option<Arc<UpstreamTls>>, limits: &ProxyLimits) -> Self {
        let connector = |http1_only| {
            Connector::new(
                upstream,
                material.clone(),
                http1_only,
                limits.connect_timeout,
            )
        };
        let mut requests = Client::builder(TokioExecutor::new());
        requests.http2_only(upstream.protocol() == Protocol::H2c);
        Self {
            requests: requests.build(connector(false)),
            upgrades: Client::builder(TokioExecutor::new()).build(connector(true)),
            material,
        }
    }
}

/// Forwards requests to one upstream over pooled connections, at most a fixed number in
/// flight at once.
///
/// A request's slot under that cap belongs to its exchange with the upstream, which runs in
/// a task of its own and hands the response back: the slot is released when the upstream's
/// response has been received and its body sent or dropped, when the application switched
/// protocols (a tunnel is bounded by the connection limit instead), or when the upstream
/// request failed or timed out. A client that goes away (an HTTP/2 stream it resets) ends
/// only its wait, not the exchange: the cap holds at the application whatever clients do.
pub struct Proxy<B = Incoming> {
    upstream: Upstream,
    limits: ProxyLimits,
    /// Where the current upstream TLS material is (https).
    live: Arc<LiveTls>,
    clients: Arc<Mutex<Clients<B>>>,
    slots: Arc<Semaphore>,
    counts: Arc<WatchdogCounts>,
    /// TLS failures logged since the last exchange that succeeded: each is logged once.
    logged: Arc<Mutex<BTreeSet<String>>>,
}

impl<B> Clone for Proxy<B> {
    fn clone(&self) -> Self {
        Self {
            upstream: self.upstream.clone(),
            limits: self.limits,
            live: self.live.clone(),
            clients: self.clients.clone(),
            slots: self.slots.clone(),
            counts: self.counts.clone(),
            logged: self.logged.clone(),
        }
    }
}

impl<B> fmt::Debug for Proxy<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("upstream", &self.upstream)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// How an exchange with the upstream ended.
enum Outcome {
    /// The upstream's response head; its body holds the slot (boxed: it is large).
    Answered(Response<Box<UpstreamBody>>),
    /// The application switched protocols (101): its head, and its side of the tunnel.
    Switched(Response<()>, OnUpgrade),
    /// The request failed: the error and its causes, for the log.
    Failed(String),
    /// TLS with the application failed, explained.
    Refused(TlsRefusal),
    /// No response head within the first-byte timeout, the wait for a slot included.
    TimedOut,
    /// The client's request body could not be read (a malformed chunked encoding, say).
    BadBody(String),
}

impl Outcome {
    /// The client's answer when the exchange did not produce one: a 502/504 (or, for a gRPC
    /// client, its status) that says what went wrong; the details are in the log.
    fn failure_response(&self, grpc: bool, first_byte_timeout: Duration) -> Response<ResponseBody> {
        let (status, grpc_status, text) = match self {
            Outcome::Answered(_) | Outcome::Switched(..) | Outcome::Failed(_) => (
                StatusCode::BAD_GATEWAY,
                GrpcStatus::Unavailable,
                "bad gateway: the application behind this proxy did not answer; the proxy's log \
                 says why\n"
                    .to_string(),
            ),
            Outcome::Refused(refusal) => (
                StatusCode::BAD_GATEWAY,
                GrpcStatus::Unavailable,
                format!(
                    "bad gateway: the TLS connection from this proxy to the application behind \
                     it failed: {}\n",
                    refusal.public
                ),
            ),
            Outcome::BadBody(why) => (
                StatusCode::BAD_REQUEST,
                GrpcStatus::Internal,
                format!("bad request: the request body could not be read ({why})\n"),
            ),
            Outcome::TimedOut => (
                StatusCode::GATEWAY_TIMEOUT,
                GrpcStatus::Unavailable,
                format!(
                    "gateway timeout: the application behind this proxy did not start its \
                     response within {}\n",
                    format_duration(first_byte_timeout)
                ),
            ),
        };
        match grpc {
            true => grpc::status_response(grpc_status, &text),
            false => text_response(status, text),
        }
    }
}

/// Who a request came from, for the log lines of its exchange.
#[derive(Clone)]
struct Origin {
    peer: SocketAddr,
    client: String,
    upstream: Upstream,
    first_byte_timeout: Duration,
    counts: Arc<WatchdogCounts>,
    logged: Arc<Mutex<BTreeSet<String>>>,
}

impl Origin {
    /// Logs how an exchange ended; an answered one is the connection's to log. A TLS
    /// failure is logged once (then at debug) until an exchange succeeds again.
    fn log(&self, outcome: &Outcome) {
        let (peer, client, upstream) = (self.peer, self.client.as_str(), &self.upstream);
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Outcome::Answered(_) | Outcome::Switched(..) => logged.clear(),
            Outcome::Refused(refusal) if logged.insert(refusal.log.clone()) => {
                warn!(peer.addr = %peer, client, upstream = %upstream, reason = refusal.failure.code(), explanation = %refusal.log, "TLS with the upstream failed; answered 502 (logged once until an exchange succeeds)");
            }
            Outcome::Refused(refusal) => {
                debug!(peer.addr = %peer, client, upstream = %upstream, reason = refusal.failure.code(), "TLS with the upstream failed again; answered 502");
            }
            Outcome::Failed(why) => {
                warn!(peer.addr = %peer, client, upstream = %upstream, error = %why, "upstream request failed");
            }
            Outcome::TimedOut => {
                warn!(peer.addr = %peer, client, upstream = %upstream, first_byte_timeout = %format_duration(self.first_byte_timeout), "upstream did not respond in time");
            }
            Outcome::BadBody(why) => {
                warn!(peer.addr = %peer, client, reason = "bad_request_body", error = %why, "the client's request body could not be read; answered 400");
            }
        }
    }

    /// Logs and counts a response body the application stopped sending.
    fn stalled(&self, after: Duration) {
        self.counts.hit(Limit::StallTimeout);
        let (peer, client, upstream) = (self.peer, self.client.as_str(), &self.upstream);
        warn!(peer.addr = %peer, client, upstream = %upstream, reason = Limit::StallTimeout.label(), stall_timeout = %format_duration(after), "the application's response stopped flowing; ended it (the client sees it cut short)");
    }
}

impl<B> Proxy<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError> + std::fmt::Display,
{
    /// A proxy to `upstream` within `limits`; `live` holds the upstream TLS material (for
    /// https), `counts` counts the response bodies the application stopped sending.
    pub fn new(
        upstream: Upstream,
        limits: ProxyLimits,
        live: Arc<LiveTls>,
        counts: Arc<WatchdogCounts>,
    ) -> Self {
        let material = live.current().upstream.clone();
        Self {
            clients: Arc::new(Mutex::new(Clients::new(&upstream, material, &limits))),
            upstream,
            slots: Arc::new(Semaphore::new(
                limits.max_in_flight.clamp(1, Semaphore::MAX_PERMITS),
            )),
            limits,
            live,
            counts,
            logged: Arc::default(),
        }
    }

    /// The clients for the current upstream TLS material; after a reload, new ones.
    fn client(&self, upgrade: bool) -> Client<Connector, ClientBody<B>> {
        let material = self.live.current().upstream.clone();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let current = match (&clients.material, &material) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        };
        if !current {
            *clients = Clients::new(&self.upstream, material, &self.limits);
            self.logged
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
        match upgrade {
            true => clients.upgrades.clone(),
            false => clients.requests.clone(),
        }
    }

    /// The request head as the application gets it: without what a client could forge or
    /// what belongs to the client's hop (but `TE: trailers`, and an upgrade's two headers),
    /// with the client's identity and address, and a URI that names the host the client
    /// asked for; an error when the path cannot be forwarded.
    fn rewrite_head(
        &self,
        parts: &mut hyper::http::request::Parts,
        identity: &ForwardedIdentity,
        peer: SocketAddr,
        client: &str,
        upgrade: Option<&HeaderValue>,
    ) -> Result<(), hyper::http::Error> {
        let host = target_host(&parts.uri, &parts.headers);
        let underscored = strip_underscored(&mut parts.headers);
        if !underscored.is_empty() {
            warn!(
                peer.addr = %peer,
                client,
                headers = %names(&underscored),
                "removed headers whose names hold an underscore; applications may read them as \
                 the same header as the dashed name"
            );
        }
        let forged = strip_identity_headers(&mut parts.headers);
        let trailers = wants_trailers(&parts.headers);
        strip_hop_by_hop(&mut parts.headers);
        if trailers {
            keep_te_trailers(&mut parts.headers);
        }
        if let Some(protocol) = upgrade {
            tunnel::keep_upgrade(&mut parts.headers, protocol.clone());
        }
        if !forged.is_empty() {
            warn!(
                peer.addr = %peer,
                client,
                headers = %names(&forged),
                "removed identity headers the client sent; only this proxy sets them"
            );
        }
        join_cookies(&mut parts.headers);
        identity.apply(&mut parts.headers);
        let ip = peer.ip().to_canonical();
        if let Ok(value) = HeaderValue::from_str(&ip.to_string()) {
            parts
                .headers
                .insert(HeaderName::from_static("x-forwarded-for"), value);
        }
        if let Ok(value) = HeaderValue::from_str(&forwarded_for(ip)) {
            parts.headers.insert(header::FORWARDED, value);
        }
        parts.headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static("https"),
        );
        // The request's URI names the host the client asked for, and the connector dials the
        // upstream whatever it names: hyper-util writes it as Host over HTTP/1.1, as
        // :authority over HTTP/2 (where a Host beside it is a duplicate nginx refuses).
        parts.headers.remove(header::HOST);
        let authority = host
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .unwrap_or(self.upstream.authority())
            .to_string();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let scheme = match self.upstream.protocol() {
            Protocol::Https => "https",
            Protocol::Http1 | Protocol::H2c => "http",
        };
        parts.uri = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query(path)
            .build()?;
        Ok(())
    }

    /// Forwards `req` from the client at `peer`, with its identity, and returns the
    /// upstream's response (or a 502/504 that says what went wrong; for a gRPC client, its
    /// status). An upgrade the application accepts becomes a tunnel in `tunnels`.
    pub async fn forward(
        &self,
        mut req: Request<B>,
        identity: &ForwardedIdentity,
        peer: SocketAddr,
        client: &str,
        tunnels: &Tunnels,
    ) -> Response<ResponseBody> {
        let grpc = grpc::is_grpc(req.headers());
        // An extended CONNECT (HTTP/2) reaches here only for a protocol this proxy tunnels
        // (see crate::server::request::check).
        let connect = req.method() == Method::CONNECT;
        let upgrade = match (
            req.version(),
            req.extensions().get::<hyper::ext::Protocol>(),
        ) {
            (Version::HTTP_11, _) => tunnel::requested(req.headers()),
            (_, Some(protocol)) if connect => HeaderValue::from_str(protocol.as_str()).ok(),
            _ => None,
        };
        let client_side = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        if connect {
            tunnel::connect_as_upgrade(&mut parts.method, &mut parts.headers);
        }
        if let Err(e) = self.rewrite_head(&mut parts, identity, peer, client, upgrade.as_ref()) {
            return text_response(
                StatusCode::BAD_REQUEST,
                format!("bad request: cannot forward this path ({e})\n"),
            );
        }
        parts.version = Version::HTTP_11;
        let failed = Arc::new(OnceLock::new());
        let mut request = Request::from_parts(
            parts,
            ClientBody {
                inner: body,
                failed: failed.clone(),
            },
        );
        let captured = capture_connection(&mut request);
        let origin = Origin {
            peer,
            client: client.to_string(),
            upstream: self.upstream.clone(),
            first_byte_timeout: self.limits.first_byte_timeout,
            counts: self.counts.clone(),
            logged: self.logged.clone(),
        };
        let deadline = Instant::now() + self.limits.first_byte_timeout;
        let outcome = match timeout_at(deadline, self.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => {
                let sender = self.client(upgrade.is_some());
                let exchange = Exchange {
                    client_failed: failed,
                    captured,
                    slot,
                    deadline,
                    stall_timeout: self.limits.stall_timeout,
                    origin: origin.clone(),
                };
                let answered = exchange.run(sender, request);
                answered.await.unwrap_or_else(|_| {
                    let outcome = Outcome::Failed(
                        "the exchange with the upstream ended without an answer".into(),
                    );
                    origin.log(&outcome);
                    outcome
                })
            }
            Ok(Err(_)) => {
                let outcome = Outcome::Failed("the proxy's request slots are closed".into());
                origin.log(&outcome);
                outcome
            }
            Err(_) => {
                origin.log(&Outcome::TimedOut);
                Outcome::TimedOut
            }
        };
        match (outcome, client_side) {
            (Outcome::Answered(response), _) => response.map(|body| body.boxed_unsync()),
            (Outcome::Switched(mut head, upstream_side), Some(client_side)) => {
                if connect {
                    tunnel::upgrade_as_connect(&mut head);
                }
                let ends = Ends {
                    peer,
                    client: client.to_string(),
                    protocol: upgrade
                        .as_ref()
                        .and_then(|p| p.to_str().ok())
                        .unwrap_or("?")
                        .to_string(),
                };
                tunnels.open(client_side, upstream_side, ends);
                head.map(|()| empty_body())
            }
            (other, _) => other.failure_response(grpc, self.limits.first_byte_timeout),
        }
    }
}

/// One exchange with the upstream, in a task of its own.
struct Exchange {
    client_failed: Arc<OnceLock<String>>,
    captured: CaptureConnection,
    slot: OwnedSemaphorePermit,
    deadline: Instant,
    stall_timeout: Duration,
    origin: Origin,
}

impl Exchange {
    /// Sends `request` with `sender` in a task that owns the slot (then the response body
    /// does), logs how it ended, and hands the outcome back. A client that went away drops
    /// the receiver: the task still runs until the upstream has answered (or failed, or the
    /// deadline passed), so the slot is released only then.
    fn run<B>(
        self,
        sender: Client<Connector, ClientBody<B>>,
        request: Request<ClientBody<B>>,
    ) -> oneshot::Receiver<Outcome>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError> + std::fmt::Display,
    {
        let (answer, answered) = oneshot::channel();
        let sent = sender.request(request);
        tokio::spawn(async move {
            let Exchange {
                client_failed,
                captured,
                slot,
                deadline,
                stall_timeout,
                origin,
            } = self;
            let outcome = match timeout_at(deadline, sent).await {
                Ok(Ok(mut response)) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
                    let upstream_side = hyper::upgrade::on(&mut response);
                    drop(slot);
                    let (mut parts, _) = response.into_parts();
                    let protocol = parts.headers.get(header::UPGRADE).cloned();
                    strip_hop_by_hop(&mut parts.headers);
                    if let Some(protocol) = protocol {
                        tunnel::keep_upgrade(&mut parts.headers, protocol);
                    }
                    Outcome::Switched(Response::from_parts(parts, ()), upstream_side)
                }
                Ok(Ok(response)) => {
                    let (mut parts, body) = response.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    let body = Box::new(UpstreamBody {
                        inner: body,
                        _slot: slot,
                        stall_timeout,
                        waiting: None,
                        origin: origin.clone(),
                    });
                    Outcome::Answered(Response::from_parts(parts, body))
                }
                // The client's own body broke (a malformed chunk, say): its fault, not the
                // application's.
                Ok(Err(e)) => match client_failed.get() {
                    Some(why) => Outcome::BadBody(why.clone()),
                    None => match tls_refusal(&e, &captured) {
                        Some(refusal) => Outcome::Refused(refusal),
                        None => Outcome::Failed(causes(&e)),
                    },
                },
                Err(_) => Outcome::TimedOut,
            };
            origin.log(&outcome);
            // When nobody waits any more, the response (and with it the slot) is dropped here.
            let _ = answer.send(outcome);
        });
        answered
    }
}

/// Why a failed exchange failed, when TLS with the application says: a handshake that
/// did not finish (the connector's error), or an alert on a connection that did.
fn tls_refusal(e: &(dyn StdError + 'static), captured: &CaptureConnection) -> Option<TlsRefusal> {
    let mut source = Some(e);
    while let Some(s) = source {
        if let Some(refusal) = s.downcast_ref::<TlsRefusal>() {
            return Some(refusal.clone());
        }
        source = s.source();
    }
    let connected = captured.connection_metadata();
    let mut extras = hyper::http::Extensions::new();
    connected.as_ref()?.get_extras(&mut extras);
    extras.get::<TlsConnection>()?.refusal(e)
}

/// Header names for the log, comma-separated (never their values).
fn names(headers: &[HeaderName]) -> String {
    let names: Vec<&str> = headers.iter().map(HeaderName::as_str).collect();
    names.join(", ")
}

/// An error and its causes, innermost last: "client error (Connect): tcp connect error:
/// Connection refused (os error 111)".
fn causes(e: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
