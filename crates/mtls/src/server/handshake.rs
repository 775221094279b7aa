//! Before HTTP: the peer's first bytes (plain HTTP on the TLS port gets a 400 that says
//! what to do), the TLS handshake under its timeout, and a resumed session's chain verified
//! again. A refusal is logged, counted and answered, then the socket lingers so the alert
//! is read.
//!
//! With debug logging on, the handshake's bytes are recorded and, once it ends (however it
//! ends), its trace is logged message by message ([`crate::trace`]); otherwise nothing is
//! recorded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::HandshakeKind;
use rustls::server::Acceptor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};

use super::reload::TlsMaterial;
use super::state::Shared;
use crate::error::Failure;
use crate::explain::Side;
use crate::trace::{self, Recorder, Secrets, Tap};

/// The TCP stream, recorded while the handshake is traced.
pub(super) type Wire = Recorder<TcpStream>;

/// How a handshake ended.
// Built once per connection and moved straight into a match: boxing the stream would cost
// an allocation to save a copy.
#[allow(clippy::large_enum_variant)]
pub(super) enum Handshake {
    /// Verified (and, when resumed, verified again): serve it. The material is the one that
    /// verified the client: the handshake's, or for a resumed session the current one.
    Done(TlsStream<Wire>, Arc<TlsMaterial>),
    /// Refused with an alert or a 400: close it, lingering.
    Refused(TcpStream),
    /// Timed out, closed by the peer, or refused after a resumption: nothing more to do.
    Abandoned,
}

/// The TLS handshake under the handshake timeout; failures are logged, counted and
/// answered (an alert, or a 400 for plain HTTP). A resumed session's chain is verified
/// again with the current verifier.
pub(super) async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    reloads: &mut watch::Receiver<Arc<TlsMaterial>>,
) -> Handshake {
    let material = reloads.borrow_and_update().clone();
    // Declared first, so it logs last: after every alert and close below.
    let traced = Traced::start(peer, &material.tls.secrets);
    let stream = Recorder::new(stream, traced.tap.clone());
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
    match tokio::time::timeout_at(deadline, first_bytes(stream.get_ref())).await {
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
            let stream = stream.into_inner();
            return match tokio::time::timeout_at(deadline, refuse_plain_http(stream)).await {
                Ok(Some(stream)) => Handshake::Refused(stream),
                _ => Handshake::Abandoned,
            };
        }
        Ok(FirstBytes::Other) => {}
    }
    // First the ClientHello alone: a peer whose very first message is absurd (garbage that
    // claims a 64 KiB handshake message, say) is not a TLS client at all.
    let mut hello = LazyConfigAcceptor::new(Acceptor::default(), stream);
    let start = match tokio::time::timeout_at(deadline, &mut hello).await {
        Ok(Ok(start)) => start,
        Ok(Err(err)) => {
            let failure = match classify(&err) {
                Failure::TooLarge => Failure::Malformed(
                    "its first message claims to be larger than any ClientHello".into(),
                ),
                other => other,
            };
            refuse(failure, &material, false);
            return match hello.take_io() {
                Some(tcp) => Handshake::Refused(tcp.into_inner()),
                None => Handshake::Abandoned,
            };
        }
        Err(_) => {
            refuse(timed_out(), &material, false);
            return Handshake::Abandoned;
        }
    };
    let handshake = start.into_stream(material.config.clone()).into_fallible();
    let mut tls = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(tls)) => tls,
        Ok(Err((err, tcp))) => {
            refuse(classify(&err), &material, false);
            return Handshake::Refused(tcp.into_inner());
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
            let _ = tokio::time::timeout(shared.watchdog.close_grace, tls.shutdown()).await;
            return Handshake::Abandoned;
        }
        return Handshake::Done(tls, current);
    }
    Handshake::Done(tls, material)
}

/// A handshake being recorded (only while debug logging is on); its trace is logged when
/// this is dropped, which is when the handshake ends, whichever way it ends (done, refused,
/// timed out, or abandoned for a shutdown).
struct Traced {
    tap: Option<Tap>,
    peer: SocketAddr,
    secrets: Arc<Secrets>,
}

impl Traced {
    fn start(peer: SocketAddr, secrets: &Arc<Secrets>) -> Self {
        Self {
            tap: trace::debug_enabled().then(|| Tap::new(Side::Server)),
            peer,
            secrets: secrets.clone(),
        }
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        if let Some(tap) = &self.tap {
            let trace = trace::decode(&tap.finish(), &self.secrets);
            // A peer that sent nothing TLS (plain HTTP is answered before recording) has none.
            if !trace.records.is_empty() || !trace.notes.is_empty() {
                trace.log(self.peer);
            }
        }
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
pub(super) async fn linger_close(mut tcp: TcpStream) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handshake_is_recorded_only_while_debug_logging_is_on() {
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let secrets = Secrets::for_debug_log();
        let info = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::with_default(info, || {
            assert!(Traced::start(peer, &secrets).tap.is_none());
        });
        let debug = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::with_default(debug, || {
            assert!(Traced::start(peer, &secrets).tap.is_some());
        });
    }
}
