//! Accepting and draining: a place for every accepted connection (see
//! `state::Connections` for the limits), a task of its own for each (which first reads the
//! PROXY header with `--proxy-protocol`, so the connection starts with the client's own
//! address), and on shutdown the in-flight requests get the drain timeout to finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{info, warn};

use super::connection::connection;
use super::state::Shared;
use super::watchdog::Phase;

/// Accepts until `shutdown` resolves, then drains: connections finish what they are doing
/// (up to `drain_timeout`), then close.
pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    phase: watch::Sender<Phase>,
    drain_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let connections = &shared.connections;
    loop {
        let place = tokio::select! {
            place = connections.accept_place() => match place {
                Some(place) => place,
                None => break,
            },
            () = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((mut stream, peer)) => {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        if let Some(peer) = client_address(&mut stream, peer, &shared).await {
                            connection(stream, peer, shared, place).await;
                        }
                    });
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
        connections = shared.connections.open(),
        drain_timeout_s = drain_timeout.as_secs_f32(),
        "shutting down: finishing requests in flight"
    );
    let everyone = u32::try_from(shared.connections.max).unwrap_or(u32::MAX);
    match tokio::time::timeout(
        drain_timeout,
        shared.connections.slots.acquire_many(everyone),
    )
    .await
    {
        Ok(_) => info!("all connections closed"),
        Err(_) => {
            warn!(
                connections = shared.connections.open(),
                "drain timeout passed; closing the remaining connections"
            );
            let _ = phase.send(Phase::Closing);
            let _ =
                tokio::time::timeout(Duration::from_secs(1), shared.connections.all_closed()).await;
        }
    }
}

/// The address a connection is from: its peer's, or behind a load balancer
/// (`--proxy-protocol`) the client's, from the PROXY header; `None` when it is refused
/// (logged, and counted here).
async fn client_address(
    stream: &mut TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> Option<SocketAddr> {
    let Some(balancer) = &shared.proxy_protocol else {
        return Some(peer);
    };
    match balancer
        .real_peer(stream, peer, shared.handshake_timeout)
        .await
    {
        Ok(client) => Some(client),
        Err(refused) => {
            shared.metrics.proxy_refused(refused.label());
            None
        }
    }
}

/// Warns when `--max-connections` is above the open-file limit (Linux), where accepts would
/// fail before the limit is reached.
pub(super) fn warn_if_above_file_limit(max_connections: usize) {
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
