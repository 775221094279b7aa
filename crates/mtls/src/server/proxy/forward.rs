//! Forwarding: each admitted request goes to the plain-HTTP application over pooled
//! HTTP/1.1 connections, with the client's identity and without anything it could forge.

use std::error::Error as StdError;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::time::{Instant, timeout_at};
use tracing::warn;

use super::hygiene::{
    forwarded_for, join_cookies, strip_hop_by_hop, strip_identity_headers, strip_underscored,
};
use super::identity::ForwardedIdentity;
use crate::server::request::target_host;
use crate::server::response::{ResponseBody, text_response};

/// Most requests in flight to the upstream at once unless `--upstream-max-in-flight` says
/// otherwise; more wait (within the response timeout) for one to finish.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// How long the upstream may take to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the upstream may take to start its response.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// A plain-HTTP application to forward to: `http://HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    authority: String,
}

impl Upstream {
    /// `HOST:PORT`.
    pub fn authority(&self) -> &str {
        &self.authority
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

/// Why an `--upstream` value is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// It does not parse as a URL.
    #[error("--upstream {text:?} is not a URL ({why}); write it like http://127.0.0.1:8080")]
    NotAUrl {
        /// As typed.
        text: String,
        /// The parser's reason.
        why: String,
    },
    /// It is not `http://`.
    #[error(
        "--upstream {text:?} uses {scheme}://; the proxy speaks plain HTTP to the application \
         behind it: write it like http://127.0.0.1:8080"
    )]
    Scheme {
        /// As typed.
        text: String,
        /// The scheme it has.
        scheme: String,
    },
    /// It has no scheme.
    #[error("--upstream {0:?} has no scheme; write it like http://127.0.0.1:8080")]
    NoScheme(String),
    /// It has no host.
    #[error("--upstream {0:?} has no host; write it like http://127.0.0.1:8080")]
    NoHost(String),
    /// It has a path or a query.
    #[error(
        "--upstream {0:?} has a path; requests keep their own path, so give only the scheme, \
         host and port, like http://127.0.0.1:8080"
    )]
    HasPath(String),
}

impl FromStr for Upstream {
    type Err = UpstreamError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let uri: Uri = text
            .trim()
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| UpstreamError::NotAUrl {
                text: text.to_string(),
                why: e.to_string(),
            })?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(UpstreamError::Scheme {
                    text: text.to_string(),
                    scheme: other.to_string(),
                });
            }
            None => return Err(UpstreamError::NoScheme(text.to_string())),
        }
        let Some(authority) = uri.authority() else {
            return Err(UpstreamError::NoHost(text.to_string()));
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(UpstreamError::HasPath(text.to_string()));
        }
        let port = authority.port_u16().unwrap_or(80);
        Ok(Self {
            authority: format!("{}:{port}", authority.host()),
        })
    }
}

/// A body without its trailers: the HTTP/1.1 hop to (or from) the application does not
/// carry them, so they are dropped here, visibly, rather than by accident.
#[derive(Debug)]
pub struct NoTrailers<B> {
    inner: B,
}

impl<B> NoTrailers<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Self { inner }
    }
}

impl<B: Body + Unpin> Body for NoTrailers<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        loop {
            match std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                Some(Ok(frame)) if frame.is_trailers() => continue,
                other => return Poll::Ready(other),
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

/// A client's request body on its way to the upstream: without trailers, and noting why it
/// failed if it did, so that a malformed body is answered 400 rather than blamed on the
/// application.
#[derive(Debug)]
pub struct ClientBody<B> {
    inner: NoTrailers<B>,
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

/// The upstream's response body, holding its request's slot under the in-flight cap until
/// it has been sent (or dropped).
struct UpstreamBody {
    inner: NoTrailers<Incoming>,
    _slot: OwnedSemaphorePermit,
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Forwards requests to one upstream over pooled HTTP/1.1 connections, at most a fixed
/// number in flight at once.
///
/// A request's slot under that cap belongs to its exchange with the upstream, which runs in
/// a task of its own and hands the response back: the slot is released when the upstream's
/// response has been received and its body sent or dropped, or when the upstream request
/// failed or timed out. A client that goes away (an HTTP/2 stream it resets) ends only its
/// wait, not the exchange: the cap holds at the application whatever clients do.
#[derive(Clone, Debug)]
pub struct Proxy<B = Incoming> {
    upstream: Upstream,
    client: Client<HttpConnector, ClientBody<B>>,
    slots: Arc<Semaphore>,
}

/// How an exchange with the upstream ended.
enum Outcome {
    /// The upstream's response head; its body holds the slot.
    Answered(Response<UpstreamBody>),
    /// The request failed: the error and its causes, for the log.
    Failed(String),
    /// No response head within [`RESPONSE_TIMEOUT`], the wait for a slot included.
    TimedOut,
    /// The client's request body could not be read (a malformed chunked encoding, say).
    BadBody(String),
}

impl Outcome {
    /// The client's answer: the upstream's response, or a 502/504 that says what went
    /// wrong (the details are in the log, not sent to the client).
    fn into_response(self) -> Response<ResponseBody> {
        match self {
            Outcome::Answered(response) => response.map(|body| body.boxed_unsync()),
            Outcome::Failed(_) => text_response(
                StatusCode::BAD_GATEWAY,
                "bad gateway: the application behind this proxy did not answer; the \
                 proxy's log says why\n",
            ),
            Outcome::BadBody(why) => text_response(
                StatusCode::BAD_REQUEST,
                format!("bad request: the request body could not be read ({why})\n"),
            ),
            Outcome::TimedOut => text_response(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "gateway timeout: the application behind this proxy did not start its \
                     response within {}s\n",
                    RESPONSE_TIMEOUT.as_secs()
                ),
            ),
        }
    }
}

/// Who a request came from, for the log lines of its exchange.
#[derive(Clone)]
struct Origin {
    peer: SocketAddr,
    client: String,
    upstream: Upstream,
}

impl Origin {
    /// Logs a failed exchange; an answered one is the connection's to log.
    fn log(&self, outcome: &Outcome) {
        let (peer, client, upstream) = (self.peer, self.client.as_str(), &self.upstream);
        match outcome {
            Outcome::Answered(_) => {}
            Outcome::Failed(why) => {
                warn!(peer.addr = %peer, client, upstream = %upstream, error = %why, "upstream request failed");
            }
            Outcome::TimedOut => {
                warn!(peer.addr = %peer, client, upstream = %upstream, timeout_s = RESPONSE_TIMEOUT.as_secs(), "upstream did not respond in time");
            }
            Outcome::BadBody(why) => {
                warn!(peer.addr = %peer, client, reason = "bad_request_body", error = %why, "the client's request body could not be read; answered 400");
            }
        }
    }
}

impl<B> Proxy<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>> + std::fmt::Display,
{
    /// A proxy to `upstream` with at most `max_in_flight` requests (at least one) in flight
    /// to it at once.
    pub fn new(upstream: Upstream, max_in_flight: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Self {
            upstream,
            client,
            slots: Arc::new(Semaphore::new(
                max_in_flight.clamp(1, Semaphore::MAX_PERMITS),
            )),
        }
    }

    /// Forwards `req` from the client at `peer`, with its identity, and returns the
    /// upstream's response (or a 502/504 that says what went wrong; the details are logged,
    /// not sent to the client).
    pub async fn forward(
        &self,
        req: Request<B>,
        identity: &ForwardedIdentity,
        peer: SocketAddr,
        client: &str,
    ) -> Response<ResponseBody> {
        let (mut parts, body) = req.into_parts();
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
        strip_hop_by_hop(&mut parts.headers);
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
        if let Some(host) = host {
            parts.headers.insert(header::HOST, host);
        }
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        parts.uri = match Uri::builder()
            .scheme("http")
            .authority(self.upstream.authority.as_str())
            .path_and_query(path)
            .build()
        {
            Ok(uri) => uri,
            Err(e) => {
                return text_response(
                    StatusCode::BAD_REQUEST,
                    format!("bad request: cannot forward this path ({e})\n"),
                );
            }
        };
        parts.version = Version::HTTP_11;
        let failed = Arc::new(OnceLock::new());
        let request = Request::from_parts(
            parts,
            ClientBody {
                inner: NoTrailers::new(body),
                failed: failed.clone(),
            },
        );
        let origin = Origin {
            peer,
            client: client.to_string(),
            upstream: self.upstream.clone(),
        };
        let deadline = Instant::now() + RESPONSE_TIMEOUT;
        match timeout_at(deadline, self.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => {
                let answered = self.exchange(request, failed, slot, deadline, origin.clone());
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
        }
        .into_response()
    }

    /// Sends `request` to the upstream in a task of its own, which owns `slot` (then the
    /// response body does), logs a failure, and hands the outcome back. A client that went
    /// away drops the receiver: the task still runs until the upstream has answered (or
    /// failed, or `deadline` passed), so the slot is released only then.
    fn exchange(
        &self,
        request: Request<ClientBody<B>>,
        client_failed: Arc<OnceLock<String>>,
        slot: OwnedSemaphorePermit,
        deadline: Instant,
        origin: Origin,
    ) -> oneshot::Receiver<Outcome> {
        let (answer, answered) = oneshot::channel();
        let exchange = self.client.request(request);
        tokio::spawn(async move {
            let outcome = match timeout_at(deadline, exchange).await {
                Ok(Ok(response)) => {
                    let (mut parts, body) = response.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    let body = UpstreamBody {
                        inner: NoTrailers::new(body),
                        _slot: slot,
                    };
                    Outcome::Answered(Response::from_parts(parts, body))
                }
                // The client's own body broke (a malformed chunk, say): its fault, not the
                // application's.
                Ok(Err(e)) => match client_failed.get() {
                    Some(why) => Outcome::BadBody(why.clone()),
                    None => Outcome::Failed(causes(&e)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_plain_http_origins() {
        assert_eq!(
            "http://127.0.0.1:8080"
                .parse::<Upstream>()
                .map(|u| u.to_string()),
            Ok("http://127.0.0.1:8080".to_string())
        );
        assert_eq!(
            "http://app.internal/"
                .parse::<Upstream>()
                .map(|u| u.authority().to_string()),
            Ok("app.internal:80".to_string())
        );
        let err = "https://127.0.0.1:8080"
            .parse::<Upstream>()
            .expect_err("https");
        assert!(matches!(err, UpstreamError::Scheme { .. }), "{err}");
        assert!(err.to_string().contains("plain HTTP"), "{err}");
        let err = "http://127.0.0.1:8080/api"
            .parse::<Upstream>()
            .expect_err("path");
        assert!(matches!(err, UpstreamError::HasPath(_)), "{err}");
        assert!(err.to_string().contains("has a path"), "{err}");
        assert!("127.0.0.1:8080".parse::<Upstream>().is_err());
    }

    /// A body of one data frame, then trailers.
    struct WithTrailers(Vec<Frame<Bytes>>);

    impl Body for WithTrailers {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.0.is_empty() {
                Poll::Ready(None)
            } else {
                Poll::Ready(Some(Ok(self.0.remove(0))))
            }
        }
    }

    #[tokio::test]
    async fn trailers_are_dropped_and_data_is_kept() {
        let mut trailers = hyper::header::HeaderMap::new();
        trailers.insert("x-checksum", HeaderValue::from_static("abc"));
        let body = NoTrailers::new(WithTrailers(vec![
            Frame::data(Bytes::from_static(b"hello")),
            Frame::trailers(trailers),
        ]));
        let collected = body.collect().await.expect("a body");
        assert!(collected.trailers().is_none());
        assert_eq!(collected.to_bytes(), Bytes::from_static(b"hello"));
    }
}
