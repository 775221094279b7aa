//! Upgrades (WebSocket): an HTTP/1.1 request with `Connection: upgrade` and an `Upgrade`
//! header goes to the application with those two kept (every other hop-by-hop header is
//! still removed, and the identity headers are set as on every request); when the
//! application answers 101, so does the proxy, and the two connections are joined byte for
//! byte. Only an admitted client gets this far: the connection answers the others 403
//! before anything is forwarded.
//!
//! Over HTTP/2 a client opens a WebSocket with an extended CONNECT (RFC 8441: `:method
//! CONNECT`, `:protocol websocket`), which the server offers only when it proxies. The
//! application still gets an HTTP/1.1 upgrade (a GET with a fresh `Sec-WebSocket-Key`), and
//! its 101 becomes the 200 that opens the client's stream; the WebSocket frames then pass
//! unchanged, as RFC 8441 has them on the stream.
//!
//! A tunnel belongs to the client's connection ([`Tunnels`]): the connection keeps its
//! place under `--max-connections` until its tunnels end. A tunnel is closed when neither
//! side has sent a byte for the idle timeout (logged and counted as the watchdog's
//! `idle_timeout`), and when the server's drain timeout passes.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::format::format_duration;
use crate::server::watchdog::{Activity, Limit, Phase, TunnelGuard, WatchdogCounts};

/// The protocol an HTTP/1.1 request asks to switch to, when it is one this proxy tunnels:
/// its `Upgrade` header is `websocket`, and its `Connection` header names `upgrade` (RFC
/// 9110 §7.8). Any other upgrade (`h2c`, say) is not passed on: a tunnel that carried
/// further HTTP requests would carry them past the proxy, identity headers and all.
pub(super) fn requested(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    let protocol = headers.get(header::UPGRADE)?;
    let tunnelled = protocol.to_str().is_ok_and(|p| tunnels_protocol(p.trim()));
    (asks && tunnelled).then(|| protocol.clone())
}

/// Puts back the two headers an upgrade needs on its hop: `Connection: upgrade` and
/// `Upgrade: protocol`.
pub(super) fn keep_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// RFC 8441: an HTTP/2 extended CONNECT for `websocket`, as the HTTP/1.1 upgrade the
/// application expects: `GET`, and a fresh `Sec-WebSocket-Key` (HTTP/2 carries none).
pub(super) fn connect_as_upgrade(method: &mut Method, headers: &mut HeaderMap) {
    *method = Method::GET;
    let mut nonce = [0u8; 16];
    // Without randomness the key is still a valid nonce for the application's handshake.
    let _ = aws_lc_rs::rand::fill(&mut nonce);
    if let Ok(key) = HeaderValue::from_str(&BASE64.encode(nonce)) {
        headers.insert(header::SEC_WEBSOCKET_KEY, key);
    }
}

/// ... and the application's 101 as the 200 that opens the client's HTTP/2 stream (no
/// `Sec-WebSocket-Accept`: the client sent no key).
pub(super) fn upgrade_as_connect(head: &mut Response<()>) {
    *head.status_mut() = StatusCode::OK;
    let headers = head.headers_mut();
    for name in [
        header::CONNECTION,
        header::UPGRADE,
        header::SEC_WEBSOCKET_ACCEPT,
    ] {
        headers.remove(name);
    }
}

/// Whether an extended CONNECT names a protocol this proxy tunnels (RFC 8441's
/// `websocket`).
pub fn tunnels_protocol(protocol: &str) -> bool {
    protocol.eq_ignore_ascii_case("websocket")
}

/// The tunnels opened on one client connection.
#[derive(Debug)]
pub struct Tunnels {
    running: Mutex<Vec<JoinHandle<()>>>,
    /// Set when the tunnels must end now (their client no longer verifies).
    closing: watch::Sender<bool>,
    idle_timeout: Duration,
    phase: watch::Receiver<Phase>,
    counts: Arc<WatchdogCounts>,
    activity: Arc<Activity>,
}

/// Who a tunnel serves, for its log lines.
#[derive(Clone, Debug)]
pub(super) struct Ends {
    pub(super) peer: SocketAddr,
    pub(super) client: String,
    pub(super) protocol: String,
}

impl Tunnels {
    /// Tunnels closed after `idle_timeout` without a byte, and when `phase` reaches
    /// [`Phase::Closing`]; `counts` counts the idle ones. While one runs, the connection
    /// (`activity`) is neither idle nor stalled.
    pub fn new(
        idle_timeout: Duration,
        phase: watch::Receiver<Phase>,
        counts: Arc<WatchdogCounts>,
        activity: Arc<Activity>,
    ) -> Self {
        Self {
            running: Mutex::new(Vec::new()),
            closing: watch::Sender::new(false),
            idle_timeout,
            phase,
            counts,
            activity,
        }
    }

    /// Joins the client's connection to the application's once both have switched.
    pub(super) fn open(&self, client: OnUpgrade, upstream: OnUpgrade, ends: Ends) {
        let (idle, mut phase, counts) =
            (self.idle_timeout, self.phase.clone(), self.counts.clone());
        let mut closing = self.closing.subscribe();
        let open = TunnelGuard::new(&self.activity);
        let task = tokio::spawn(async move {
            let _open = open;
            let (peer, who, protocol) = (ends.peer, ends.client.as_str(), ends.protocol.as_str());
            let (client, upstream) = match tokio::try_join!(client, upstream) {
                Ok(both) => both,
                Err(e) => {
                    debug!(peer.addr = %peer, client = who, error = %e, "the upgrade did not complete");
                    return;
                }
            };
            info!(peer.addr = %peer, client = who, upgrade = protocol, "tunnel open: the application switched protocols");
            let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
            let ended = tokio::select! {
                pumped = pump(&mut client, &mut upstream, idle) => match pumped {
                    Ok((up, down)) => format!("closed by both sides, after {up} bytes to the application and {down} to the client"),
                    Err(Ended::Idle) => {
                        counts.hit(Limit::IdleTimeout);
                        info!(peer.addr = %peer, client = who, upgrade = protocol, reason = Limit::IdleTimeout.label(), idle_timeout = %format_duration(idle), "closing a tunnel: no byte either way");
                        return;
                    }
                    Err(Ended::Broken(e)) => format!("broken: {e}"),
                },
                _ = phase.wait_for(|p| *p == Phase::Closing) => "closed: the server is shutting down".to_string(),
                _ = closing.wait_for(|c| *c) => "closed: its client no longer verifies".to_string(),
            };
            info!(peer.addr = %peer, client = who, upgrade = protocol, ended, "tunnel ended");
        });
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.retain(|t| !t.is_finished());
        running.push(task);
    }

    /// Ends every tunnel now.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves when every tunnel has ended.
    pub async fn finish(&self) {
        let running = std::mem::take(&mut *self.running.lock().unwrap_or_else(|p| p.into_inner()));
        for task in running {
            let _ = task.await;
        }
    }
}

/// Why a tunnel ended before both sides closed it.
#[derive(Debug)]
enum Ended {
    /// Neither side sent a byte for the idle timeout (or took one: a write that waits
    /// that long counts too).
    Idle,
    /// A side's connection broke.
    Broken(io::Error),
}

/// Copies bytes both ways until each side has closed its direction; returns the bytes that
/// went to the application and to the client. The idle timer starts again with every read.
async fn pump<C, U>(client: &mut C, upstream: &mut U, idle: Duration) -> Result<(u64, u64), Ended>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut to_upstream, mut to_client) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let (mut up, mut down) = (0u64, 0u64);
    let (mut client_open, mut upstream_open) = (true, true);
    while client_open || upstream_open {
        tokio::select! {
            read = client.read(&mut to_upstream), if client_open => {
                let n = read.map_err(Ended::Broken)?;
                client_open = n > 0;
                up += relay(upstream, &to_upstream[..n], idle).await?;
            }
            read = upstream.read(&mut to_client), if upstream_open => {
                let n = read.map_err(Ended::Broken)?;
                upstream_open = n > 0;
                down += relay(client, &to_client[..n], idle).await?;
            }
            () = tokio::time::sleep(idle) => return Err(Ended::Idle),
        }
    }
    Ok((up, down))
}

/// Writes `bytes` to `to` within `idle`; no bytes means the other side is done sending,
/// so `to` is told that nothing more will come.
async fn relay<W: AsyncWrite + Unpin>(
    to: &mut W,
    bytes: &[u8],
    idle: Duration,
) -> Result<u64, Ended> {
    let written = match bytes.is_empty() {
        true => tokio::time::timeout(idle, to.shutdown()).await,
        false => tokio::time::timeout(idle, to.write_all(bytes)).await,
    };
    match written {
        Ok(Ok(())) => Ok(bytes.len() as u64),
        Ok(Err(e)) => Err(Ended::Broken(e)),
        Err(_) => Err(Ended::Idle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[test]
    fn an_upgrade_is_asked_for_with_connection_upgrade_and_an_upgrade_header() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(requested(&headers), None, "no Connection: upgrade");
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert_eq!(
            requested(&headers),
            Some(HeaderValue::from_static("websocket"))
        );
        headers.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert_eq!(requested(&headers), None, "not a WebSocket");
        headers.remove(header::UPGRADE);
        assert_eq!(requested(&headers), None, "no Upgrade header");
    }

    #[tokio::test(start_paused = true)]
    async fn a_tunnel_carries_bytes_both_ways_and_ends_idle_after_the_timeout_since_the_last() {
        let (mut client, mut client_far) = tokio::io::duplex(64);
        let (mut upstream, mut upstream_far) = tokio::io::duplex(64);
        let idle = Duration::from_secs(10);
        let pumping = tokio::spawn(async move { pump(&mut client, &mut upstream, idle).await });
        client_far.write_all(b"ping").await.expect("write");
        let mut got = [0u8; 4];
        upstream_far.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"ping");
        tokio::time::advance(Duration::from_secs(9)).await;
        upstream_far.write_all(b"pong").await.expect("write");
        client_far.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"pong");
        let started = Instant::now();
        let ended = pumping.await.expect("the pump");
        assert!(matches!(ended, Err(Ended::Idle)), "{ended:?}");
        assert_eq!(started.elapsed(), idle);
    }

    #[tokio::test]
    async fn a_tunnel_both_sides_close_ends_with_its_byte_counts() {
        let (mut client, mut client_far) = tokio::io::duplex(64);
        let (mut upstream, mut upstream_far) = tokio::io::duplex(64);
        let pumping =
            tokio::spawn(
                async move { pump(&mut client, &mut upstream, Duration::from_secs(60)).await },
            );
        client_far.write_all(b"hello").await.expect("write");
        client_far.shutdown().await.expect("close");
        let mut got = Vec::new();
        upstream_far.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"hello");
        upstream_far.write_all(b"bye").await.expect("write");
        drop(upstream_far);
        let mut got = Vec::new();
        client_far.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"bye");
        assert_eq!(
            pumping.await.expect("the pump").expect("both closed"),
            (5, 3)
        );
    }
}
