//! The local listener: plain HTTP/1.1 from applications, under the server's limits. At most
//! `--max-connections` at once (beyond, new ones wait in the accept queue); each connection
//! in a task of its own, watched with [`crate::activity`] for the header, idle and stall
//! timeouts; heads larger than `--max-header-size` get 431. On shutdown the listener
//! closes, connections finish their requests (up to the drain timeout), then close; every
//! graceful close has a hard deadline.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::Shared;
use super::forward;
use crate::activity::{Activity, Limit, MAX_HEADER_FIELDS, Phase, Tracked};
use crate::format::format_duration;

/// Accepts until `shutdown` resolves, then drains: connections finish what they are doing
/// (up to the drain timeout), then close; `phase` tells them which.
pub async fn serve(
    (listener, phase): (TcpListener, watch::Sender<Phase>),
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let next = async {
            let slot = slot(&shared).await?;
            let (stream, peer) = accept(&listener).await;
            Some((stream, peer, slot))
        };
        let accepted = tokio::select! {
            accepted = next => accepted,
            () = &mut shutdown => None,
        };
        let Some((stream, peer, slot)) = accepted else {
            break;
        };
        tokio::spawn(connection(stream, peer, shared.clone(), slot));
    }
    drop(listener);
    drain(&shared, &phase).await;
}

/// A place under `--max-connections`; while they are all taken it waits (counted, and
/// logged now and then). `None`: the places are gone.
async fn slot(shared: &Shared) -> Option<OwnedSemaphorePermit> {
    if let Ok(slot) = shared.slots.clone().try_acquire_owned() {
        return Some(slot);
    }
    shared.metrics.hit(Limit::MaxConnections);
    let reason = Limit::MaxConnections.label();
    if shared.notices.say_now(reason, "") {
        warn!(
            max_connections = shared.max_connections,
            reason,
            "connection limit reached: new connections wait until one closes (logged once in \
             a while, counted in mtls_limits_hit_total)"
        );
    }
    shared.slots.clone().acquire_owned().await.ok()
}

/// The next connection. An accept that fails (out of file descriptors, say) is logged and
/// tried again shortly: it never ends the listener, nor makes it spin.
async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Tells every connection to finish, waits up to the drain timeout for all to close, then
/// tells the rest to close now.
async fn drain(shared: &Shared, phase: &watch::Sender<Phase>) {
    let drain_timeout = shared.drain_timeout;
    let _ = phase.send(Phase::Draining);
    let everyone = u32::try_from(shared.max_connections).unwrap_or(u32::MAX);
    info!(
        drain_timeout = %format_duration(drain_timeout),
        "shutting down: finishing requests in flight"
    );
    let all_closed = || shared.slots.acquire_many(everyone);
    if tokio::time::timeout(drain_timeout, all_closed())
        .await
        .is_ok()
    {
        info!("all connections closed");
        return;
    }
    warn!("drain timeout passed; closing the remaining connections");
    let _ = phase.send(Phase::Closing);
    let _ = tokio::time::timeout(Duration::from_secs(1), all_closed()).await;
}

/// One local connection, from its first byte to its last request.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    shared.metrics.open_connections(1);
    let activity = Activity::new(true);
    let service = {
        let (shared, activity) = (shared.clone(), activity.clone());
        service_fn(move |req| {
            let (shared, activity) = (shared.clone(), activity.clone());
            async move { Ok::<_, Infallible>(forward::handle(req, peer, &activity, &shared).await) }
        })
    };
    let io = TokioIo::new(Tracked::new(stream, activity.clone()));
    let conn = shared.http1.serve_connection(io, service);
    watch(conn, peer, &activity, &shared).await;
    shared.metrics.open_connections(-1);
    drop(slot);
}

/// A graceful close under way, and the moment it must be over by.
struct Closing(Option<Instant>);

impl Closing {
    /// Starts a graceful close (once) that must be over within `grace`.
    fn begin<C: GracefulConnection>(&mut self, conn: Pin<&mut C>, grace: Duration) {
        if self.0.is_none() {
            self.0 = Some(Instant::now() + grace);
            conn.graceful_shutdown();
        }
    }

    /// Resolves when a close that began is overdue (never, before one began).
    async fn overdue(&self) {
        match self.0 {
            Some(by) => tokio::time::sleep_until(by).await,
            None => std::future::pending().await,
        }
    }
}

/// Serves `conn` until the application leaves, a limit closes it, or the proxy shuts down.
/// Every graceful close gets the close grace, then the connection is dropped.
async fn watch<C>(conn: C, peer: SocketAddr, activity: &Activity, shared: &Shared)
where
    C: GracefulConnection<Error = hyper::Error>,
{
    let mut phase = shared.phase.clone();
    let grace = shared.close_grace;
    tokio::pin!(conn);
    let mut closing = Closing(None);
    if *phase.borrow() != Phase::Running {
        closing.begin(conn.as_mut(), grace);
    }
    let ended = loop {
        // Biased, the connection last: a shutdown is acted on before the next response is
        // written (which then says `Connection: close`).
        tokio::select! {
            biased;
            changed = phase.changed() => match changed.map(|()| *phase.borrow()) {
                Ok(Phase::Running) => {}
                Ok(Phase::Draining) => closing.begin(conn.as_mut(), grace),
                Ok(Phase::Closing) | Err(_) => return,
            },
            () = closing.overdue() => {
                limit_hit(shared, Limit::CloseDeadline, peer);
                return;
            }
            limit = activity.expired(shared.idle_timeout, shared.header_timeout), if closing.0.is_none() => {
                limit_hit(shared, limit, peer);
                if limit != Limit::IdleTimeout {
                    // A slowloris or a stalled application: dropped now.
                    return;
                }
                // Idle: nothing is lost by a graceful close.
                closing.begin(conn.as_mut(), grace);
            }
            ended = conn.as_mut() => break ended,
        }
    };
    match ended {
        Err(e) if e.is_parse_too_large() => {
            // hyper says "too large" for both; a head that stopped short of the size limit
            // was refused for its number of fields.
            let limit = match activity.head_bytes() < shared.max_header_bytes as u64 {
                true => Limit::TooManyHeaders,
                false => Limit::HeaderTooLarge,
            };
            shared.metrics.hit(limit);
            warn!(
                peer.addr = %peer,
                reason = limit.label(),
                max_header_bytes = shared.max_header_bytes,
                max_header_fields = MAX_HEADER_FIELDS,
                answered = activity.answered_since_head(),
                "request head too large; answered 431 (if it could) and closed the connection"
            );
        }
        Err(e) => debug!(peer.addr = %peer, error = %e, "connection ended with an error"),
        Ok(()) => {}
    }
}

/// Counts and logs a limit that acted on the connection from `peer`.
fn limit_hit(shared: &Shared, limit: Limit, peer: SocketAddr) {
    shared.metrics.hit(limit);
    let reason = limit.label();
    match limit {
        Limit::IdleTimeout | Limit::CloseDeadline => {
            debug!(peer.addr = %peer, reason, "closed a local connection")
        }
        Limit::HeaderTimeout => warn!(
            peer.addr = %peer,
            reason,
            header_timeout = %format_duration(shared.header_timeout),
            "request headers did not arrive in time; closing the connection"
        ),
        Limit::StallTimeout => warn!(
            peer.addr = %peer,
            reason,
            stall_timeout = %format_duration(shared.idle_timeout),
            "a request in flight made no progress on the application's side; closing the connection"
        ),
        _ => warn!(peer.addr = %peer, reason, "limit reached"),
    }
}
