//! Connections to the application: TCP to the `--upstream` address (whatever host a
//! request names), then, for `https://`, a TLS handshake that verifies the application's
//! certificate against `--upstream-ca` and the `--upstream` host and presents the proxy's
//! certificate, all within the connect timeout.
//!
//! A TLS 1.3 application judges the proxy's certificate after the handshake has finished
//! on the proxy's side: its refusal arrives as an alert on the first read, inside hyper's
//! errors (and HTTP/2 flattens those into text). So each TLS connection keeps the first
//! TLS error its reads and writes meet ([`crate::client`]'s watcher, which also waits
//! briefly for the alert when a write finds the connection closed), and hands it to the
//! request through the connection's metadata ([`TlsConnection`]): a failed exchange can
//! then say in words why, from the proxy's side ([`TlsRefusal`]).

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsConnector;

use super::upstream::Upstream;
use super::upstream_tls::UpstreamTls;
use crate::client::{Watched, find_rustls, is_closed};
use crate::error::Failure;
use crate::explain::{self, Arrival, Side};
use crate::report::describe_chain;

/// Any error, as hyper-util's client takes them from a connector.
type BoxError = Box<dyn StdError + Send + Sync>;

/// Opens connections to the one upstream, for hyper-util's pooled client.
#[derive(Clone)]
pub(super) struct Connector {
    tcp: HttpConnector,
    /// `http://HOST:PORT` of `--upstream`: what the TCP connector dials.
    target: Uri,
    tls: Option<TlsDial>,
    timeout: Duration,
}

/// How to make the TLS handshake with the application.
#[derive(Clone)]
struct TlsDial {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    material: Arc<UpstreamTls>,
}

impl Connector {
    /// Connections to `upstream` within `timeout`; for `https://`, TLS with `material`
    /// (offering HTTP/1.1 only when `http1_only`).
    pub(super) fn new(
        upstream: &Upstream,
        material: Option<Arc<UpstreamTls>>,
        http1_only: bool,
        timeout: Duration,
    ) -> Self {
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(timeout));
        tcp.set_nodelay(true);
        // The scheme of the request's URI is the pool's business; this dials plain TCP.
        tcp.enforce_http(false);
        let target = Uri::builder()
            .scheme("http")
            .authority(upstream.authority())
            .path_and_query("/")
            .build()
            .unwrap_or_default();
        let tls = material.and_then(|material| {
            let name = upstream.server_name()?;
            let config = match http1_only {
                true => material.config_http1.clone(),
                false => material.config.clone(),
            };
            Some(TlsDial {
                config,
                name,
                material,
            })
        });
        Self {
            tcp,
            target,
            tls,
            timeout,
        }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<UpstreamStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request_target: Uri) -> Self::Future {
        let (mut tcp, target, tls, limit) = (
            self.tcp.clone(),
            self.target.clone(),
            self.tls.clone(),
            self.timeout,
        );
        Box::pin(async move {
            let tcp = tcp.call(target).await?.into_inner();
            let Some(tls) = tls else {
                return Ok(TokioIo::new(UpstreamStream {
                    io: Box::new(tcp),
                    h2: false,
                    tls: None,
                }));
            };
            let handshake = TlsConnector::from(tls.config).connect(tls.name, tcp);
            let stream = match tokio::time::timeout(limit, handshake).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    let failure = match find_rustls(&e) {
                        Some(tls_error) => Failure::from_rustls(tls_error),
                        None => Failure::Other(format!(
                            "the connection broke during the handshake ({e})"
                        )),
                    };
                    let arrived = Some(Arrival::InHandshake);
                    return Err(TlsRefusal::new(&tls.material, failure, arrived).into());
                }
                Err(_) => {
                    let failure = Failure::Timeout { after: limit };
                    return Err(TlsRefusal::new(&tls.material, failure, None).into());
                }
            };
            let conn = stream.get_ref().1;
            let h2 = conn.alpn_protocol() == Some(b"h2");
            let tls13 = conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
            let error = Arc::new(Mutex::new(None));
            let info = TlsConnection {
                error: error.clone(),
                tls13,
                material: tls.material,
            };
            Ok(TokioIo::new(UpstreamStream {
                io: Box::new(Watched::new(stream, error)),
                h2,
                tls: Some(info),
            }))
        })
    }
}

/// What a TLS connection to the application knows about itself, carried in its metadata
/// (see [`hyper_util::client::legacy::connect::capture_connection`]).
#[derive(Clone)]
pub(super) struct TlsConnection {
    /// The first TLS error its reads or writes met.
    error: Arc<Mutex<Option<rustls::Error>>>,
    tls13: bool,
    material: Arc<UpstreamTls>,
}

impl TlsConnection {
    /// Why an exchange on this connection failed, when TLS says: the application's alert
    /// (it refused the proxy's certificate after the handshake), or a TLS 1.3 application
    /// that closed right after the handshake without one.
    pub(super) fn refusal(&self, err: &(dyn StdError + 'static)) -> Option<TlsRefusal> {
        let recorded = self.error.lock().ok().and_then(|slot| slot.clone());
        let failure = match recorded.as_ref().or_else(|| find_rustls(err)) {
            Some(tls_error) => Failure::from_rustls(tls_error),
            None if self.tls13 && is_closed(err) => Failure::ClosedAfterHandshake,
            None => return None,
        };
        let arrived = self.tls13.then_some(Arrival::AfterHandshake);
        Some(TlsRefusal::new(&self.material, failure, arrived))
    }
}

/// A TLS exchange with the application that failed, explained from the proxy's side: for
/// the log (with file names) and for the client's 502 (without them).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{log}")]
pub(super) struct TlsRefusal {
    /// What failed.
    pub(super) failure: Failure,
    /// The explanation for the log.
    pub(super) log: String,
    /// The explanation for the client.
    pub(super) public: String,
}

impl TlsRefusal {
    fn new(material: &UpstreamTls, failure: Failure, arrived: Option<Arrival>) -> Self {
        let failure = failure.with_peer_chain(&describe_chain(&material.seen.get()));
        let cx = explain::Context {
            arrived,
            ..material.seen.told(&material.explain)
        };
        let log = failure.explain(Side::Client, &cx);
        let public = explain::Context {
            ca: None,
            ours_file: None,
            ..cx
        };
        Self {
            public: failure.explain(Side::Client, &public),
            failure,
            log,
        }
    }
}

/// What a stream to the application must be.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A connection to the application: plain TCP, or TLS over it, and what hyper-util's pool
/// needs to know of it (HTTP/2 by ALPN, the TLS connection's metadata).
pub(super) struct UpstreamStream {
    io: Box<dyn Io>,
    /// HTTP/2 was agreed by ALPN.
    h2: bool,
    tls: Option<TlsConnection>,
}

impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        let connected = match &self.tls {
            Some(tls) => Connected::new().extra(tls.clone()),
            None => Connected::new(),
        };
        match self.h2 {
            true => connected.negotiated_h2(),
            false => connected,
        }
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
