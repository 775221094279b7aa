//! One operation of a load run, through the library client's own path: its config, connect
//! and handshake (each phase within its limit), and its HTTP code with the stream that keeps
//! a TLS 1.3 server's late alert. A failure is the client's own error, so it is counted by
//! the same words `client` prints.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Version;

use super::Mode;
use crate::client::{
    ClientSettings, HttpConnection, Prepared, Watched, get_request, http_refusal_of,
};
use crate::error::{Error, Result};
use crate::report::TlsReport;
use crate::tls;

/// The user agent of every request the bench sends, so a server's log tells them apart.
const AGENT: &str = concat!("mtls-client-bench/", env!("CARGO_PKG_VERSION"));

/// What a successful operation saw.
#[derive(Debug)]
pub(super) struct Outcome {
    /// The time it took: the whole operation, or for keep-alive the request alone.
    pub latency: Duration,
    /// The handshake this operation made, if it made one.
    pub handshake: Option<TlsReport>,
    /// The HTTP version of the answer.
    pub http: Version,
}

/// A connection kept open between operations (keep-alive), or for the one operation.
struct Open {
    http: HttpConnection,
    tls_error: Arc<Mutex<Option<rustls::Error>>>,
    peer: SocketAddr,
    tls13: bool,
    h2: bool,
}

/// One worker: its own copy of the client config (for `resumed`, with a session store of
/// its own), and its kept-alive connection.
pub(super) struct Worker {
    settings: Arc<ClientSettings>,
    prepared: Prepared,
    mode: Mode,
    open: Option<Open>,
}

impl Worker {
    /// A worker for `mode`: resuming sessions in `resumed` mode, never otherwise.
    pub(super) fn new(settings: Arc<ClientSettings>, prepared: &Prepared, mode: Mode) -> Self {
        let mut prepared = prepared.clone();
        prepared.config = tls::with_resumption(&prepared.config, mode == Mode::Resumed);
        Self {
            settings,
            prepared,
            mode,
            open: None,
        }
    }

    /// One operation: connect and handshake unless a kept-alive connection is open, then
    /// one GET whose answer must be a success (2xx).
    pub(super) async fn operate(&mut self) -> Result<Outcome> {
        let mut started = Instant::now();
        let mut handshake = None;
        // A kept connection the server has closed (an idle limit, or HTTP/1.0) is replaced
        // rather than failing the next request on it.
        if self.open.as_ref().is_some_and(|open| open.http.is_closed()) {
            self.open = None;
        }
        if self.open.is_none() {
            let (open, report) = self.connect().await?;
            self.open = Some(open);
            handshake = Some(report);
            if self.mode == Mode::KeepAlive {
                started = Instant::now();
            }
        }
        let Some(open) = self.open.as_mut() else {
            return Err(Error::Invalid("no connection to send on".into()));
        };
        let req = get_request(&self.settings.url, open.h2, AGENT)?;
        let answer = self
            .prepared
            .answer_within(
                self.settings.response_timeout,
                open.http.send(req),
                &open.tls_error,
                open.peer,
                open.tls13,
            )
            .await;
        if self.mode != Mode::KeepAlive || answer.is_err() {
            self.open = None;
        }
        let (http, status, body) = answer?;
        let latency = started.elapsed();
        if !status.is_success() {
            // The words `client` prints for the same answer.
            return Err(Error::Invalid(
                match http_refusal_of(status.as_u16(), &body) {
                    Some(refusal) => refusal.to_string(),
                    None => format!(
                        "the server answered {} {}",
                        status.as_u16(),
                        status.canonical_reason().unwrap_or("")
                    )
                    .trim_end()
                    .to_string(),
                },
            ));
        }
        Ok(Outcome {
            latency,
            handshake,
            http,
        })
    }

    /// Connects, handshakes, and starts HTTP on the connection (HTTP/2 when the server
    /// agreed to it in ALPN).
    async fn connect(&self) -> Result<(Open, TlsReport)> {
        let (tls, peer) = self.prepared.handshake(&self.settings, None).await?;
        let report = TlsReport::negotiated(tls.get_ref().1, None);
        let tls13 = report.version == "TLSv1.3";
        let h2 = report.alpn.as_deref() == Some("h2");
        let tls_error = Arc::new(Mutex::new(None));
        let http = self
            .prepared
            .answer_within(
                self.settings.response_timeout,
                HttpConnection::start(Watched::new(tls, tls_error.clone()), h2),
                &tls_error,
                peer,
                tls13,
            )
            .await?;
        let open = Open {
            http,
            tls_error,
            peer,
            tls13,
            h2,
        };
        Ok((open, report))
    }
}
