//! The watchdog: the only code that decides that a connection has gone on too long. It
//! closes the connection, logs why and counts it, all with one typed cause, a [`Limit`],
//! so a log line and a metric can never disagree.
//!
//! What a connection is doing ([`Activity`], [`Tracked`], [`RequestGuard`], [`WatchedBody`],
//! [`AppWait`]) and the [`Limit`]s are shared with `client proxy` ([`crate::activity`]);
//! they are re-exported here. [`Watchdog::drive`] serves a connection while watching all of
//! that, the server's [`Phase`] and reloads (a client that no longer verifies is closed),
//! and gives every graceful close a hard deadline.
//!
//! The connection limit itself is a semaphore in `accept`: beyond it, new
//! connections wait in the kernel's accept queue until one closes
//! ([`Limit::MaxConnections`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::reload::{LiveTls, TlsMaterial};
use crate::activity::LimitCounts;
pub use crate::activity::{
    Activity, AppWait, Limit, MAX_HEADER_FIELDS, Phase, RequestBody, RequestGuard, Tracked,
    TunnelGuard, WatchedBody,
};
use crate::error::Failure;
use crate::explain::Side;
use crate::format::format_duration;

/// What the watchdog counted: limits that acted, and connections closed because their
/// client no longer verified after a reload (by reason). The metrics endpoint reads these.
#[derive(Debug, Default)]
pub struct WatchdogCounts {
    limits: LimitCounts,
    closed_on_reload: Mutex<BTreeMap<&'static str, u64>>,
}

impl WatchdogCounts {
    /// `limit` acted once.
    pub fn hit(&self, limit: Limit) {
        self.limits.hit(limit);
    }

    /// How often each limit acted, in [`Limit::ALL`] order.
    pub fn limits(&self) -> [(Limit, u64); Limit::ALL.len()] {
        self.limits.limits()
    }

    fn closed_on_reload(&self, reason: &'static str) {
        let mut map = self
            .closed_on_reload
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *map.entry(reason).or_default() += 1;
    }

    /// Connections closed after a reload, by the reason their client failed.
    pub fn reload_closes(&self) -> Vec<(&'static str, u64)> {
        let map = self
            .closed_on_reload
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(r, n)| (*r, *n)).collect()
    }
}

/// The watchdog's settings and counters, one for the whole server.
#[derive(Debug)]
pub struct Watchdog {
    /// Idle and stall timeout.
    pub idle_timeout: Duration,
    /// HTTP/1.1 request head timeout, from its first byte.
    pub header_timeout: Duration,
    /// The longest a graceful close may take before the connection is dropped.
    pub close_grace: Duration,
    /// `--max-header-size`, for the log line of a 431.
    pub max_header_bytes: usize,
    /// What it counted.
    pub counts: Arc<WatchdogCounts>,
}

/// One connection, as the watchdog sees it.
pub struct Watched<'a> {
    /// The client's address.
    pub peer: SocketAddr,
    /// Its identity, for the log.
    pub client: &'a str,
    /// What its requests are doing.
    pub activity: &'a Activity,
    /// Told when a denied client has been answered: its connection then closes.
    pub denied_answered: &'a Notify,
    /// The chain the client presented, to verify again after a reload.
    pub verified: &'a [CertificateDer<'static>],
}

impl Watchdog {
    /// Drives `conn` until the client leaves, a limit or a reload closes it, or the server
    /// shuts down. Every graceful close gets `close_grace`, then the connection is dropped.
    /// `shutdown` starts `conn`'s graceful shutdown (hyper's `graceful_shutdown`: a GOAWAY,
    /// or `Connection: close` on the next response).
    pub async fn drive<C>(
        &self,
        conn: C,
        shutdown: fn(Pin<&mut C>),
        who: Watched<'_>,
        mut phase: watch::Receiver<Phase>,
        live: &LiveTls,
        mut reloads: watch::Receiver<Arc<TlsMaterial>>,
    ) where
        C: Future<Output = Result<(), hyper::Error>>,
    {
        let peer = who.peer;
        let client = who.client;
        let activity = who.activity;
        tokio::pin!(conn);
        let mut draining = false;
        // When a graceful close began, the moment it must have finished.
        let mut close_by: Option<Instant> = None;
        let close = |conn: Pin<&mut C>, close_by: &mut Option<Instant>| {
            if close_by.is_none() {
                *close_by = Some(Instant::now() + self.close_grace);
                shutdown(conn);
            }
        };
        if *phase.borrow() != Phase::Running {
            draining = true;
            shutdown(conn.as_mut());
        }
        let ended = loop {
            let deadline = async {
                match close_by {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            // Biased, the connection last: a shutdown or a reload that happened is acted on
            // before the next response is written (a response to a draining server says
            // `Connection: close`).
            tokio::select! {
                biased;
                changed = phase.changed() => {
                    let now = if changed.is_ok() { *phase.borrow() } else { Phase::Closing };
                    if now == Phase::Closing {
                        return;
                    }
                    if !draining {
                        draining = true;
                        shutdown(conn.as_mut());
                    }
                }
                () = deadline => {
                    self.fired(Limit::CloseDeadline, peer, client);
                    return;
                }
                changed = reloads.changed() => {
                    if changed.is_err() {
                        // The live material is gone only when the server is: nothing to watch.
                        reloads = live.subscribe();
                        continue;
                    }
                    let material = reloads.borrow_and_update().clone();
                    if !self.still_verifies(&who, &material) {
                        close(conn.as_mut(), &mut close_by);
                    }
                }
                () = who.denied_answered.notified(), if close_by.is_none() => {
                    close(conn.as_mut(), &mut close_by);
                }
                limit = activity.expired(self.idle_timeout, self.header_timeout), if close_by.is_none() => {
                    self.fired(limit, peer, client);
                    match limit {
                        // Idle: nothing is lost by a graceful close.
                        Limit::IdleTimeout => close(conn.as_mut(), &mut close_by),
                        // A slowloris or a stalled client: drop it now.
                        _ => return,
                    }
                }
                ended = conn.as_mut() => break ended,
            }
        };
        if let Err(e) = ended {
            if e.is_parse_too_large() {
                // hyper says "too large" for both; a head that stopped short of the size limit
                // was refused for its number of fields.
                let limit = if activity.head_bytes() < self.max_header_bytes as u64 {
                    Limit::TooManyHeaders
                } else {
                    Limit::HeaderTooLarge
                };
                self.fired_too_large(limit, peer, client, activity.answered_since_head());
            } else {
                debug!(peer.addr = %peer, error = %e, "connection ended with an error");
            }
        }
    }

    /// Waits for `tunnels` (what an upgraded connection became) to end. After a reload, a
    /// client that no longer verifies has them ended (`close`), as its connection would be.
    pub async fn follow_tunnels(
        &self,
        tunnels: impl Future<Output = ()>,
        close: impl Fn(),
        who: Watched<'_>,
        live: &LiveTls,
    ) {
        let mut reloads = live.subscribe();
        tokio::pin!(tunnels);
        loop {
            tokio::select! {
                () = &mut tunnels => return,
                changed = reloads.changed() => {
                    if changed.is_err() {
                        // The live material is gone only when the server is.
                        return tunnels.await;
                    }
                    let material = reloads.borrow_and_update().clone();
                    if !self.still_verifies(&who, &material) {
                        close();
                    }
                }
            }
        }
    }

    /// Verifies the client again with reloaded `material`; one that no longer passes is
    /// counted and logged, with why, for its connection to be closed.
    fn still_verifies(&self, who: &Watched<'_>, material: &TlsMaterial) -> bool {
        let Err(e) = material.tls.verify_client(who.verified) else {
            return true;
        };
        let failure = Failure::from_rustls(&e);
        self.counts.closed_on_reload(failure.code());
        warn!(
            peer.addr = %who.peer,
            client = who.client,
            reason = failure.code(),
            explanation = %failure.explain(Side::Server, &material.explain),
            "the client no longer verifies after a reload; closing its connection"
        );
        false
    }

    /// Counts and logs a limit that closed (or dropped) a connection: `reason` is the
    /// limit's label, and the setting that acted is logged under its own name.
    fn fired(&self, limit: Limit, peer: SocketAddr, client: &str) {
        self.counts.hit(limit);
        let reason = limit.label();
        macro_rules! fired {
            ($level:ident, $setting:ident = $value:expr, $message:literal) => {
                $level!(peer.addr = %peer, client, reason, $setting = %format_duration($value), $message)
            };
        }
        match limit {
            Limit::IdleTimeout => fired!(
                info,
                idle_timeout = self.idle_timeout,
                "closing idle connection"
            ),
            Limit::HeaderTimeout => fired!(
                warn,
                header_timeout = self.header_timeout,
                "request headers did not arrive in time; closing the connection"
            ),
            Limit::StallTimeout => fired!(
                warn,
                stall_timeout = self.idle_timeout,
                "a request in flight made no progress on the client's side; closing the connection"
            ),
            Limit::CloseDeadline => fired!(
                info,
                close_grace = self.close_grace,
                "the connection did not close in time; dropping it"
            ),
            Limit::HeaderTooLarge
            | Limit::TooManyHeaders
            | Limit::MaxConnections
            | Limit::HandshakeBudget => {
                warn!(peer.addr = %peer, client, reason, "limit reached")
            }
        }
    }

    fn fired_too_large(&self, limit: Limit, peer: SocketAddr, client: &str, answered: bool) {
        self.counts.hit(limit);
        let reason = limit.label();
        let max_header_bytes = self.max_header_bytes;
        match (limit, answered) {
            (Limit::TooManyHeaders, true) => warn!(
                peer.addr = %peer, client, reason, max_header_fields = MAX_HEADER_FIELDS,
                "request head has too many header fields; answered 431 and closed the connection"
            ),
            (Limit::TooManyHeaders, false) => warn!(
                peer.addr = %peer, client, reason, max_header_fields = MAX_HEADER_FIELDS,
                "request head has too many header fields; closed the connection (a 431 could not be written)"
            ),
            (_, true) => warn!(
                peer.addr = %peer, client, reason, max_header_bytes, answered,
                "request headers too large; answered 431 and closed the connection"
            ),
            (_, false) => warn!(
                peer.addr = %peer, client, reason, max_header_bytes, answered,
                "request headers too large; closed the connection (a 431 could not be written)"
            ),
        }
    }
}
