//! The HTTPS server: accept, then in a task of its own a TLS handshake under a timeout,
//! then HTTP/1.1 or HTTP/2 (by ALPN) with hyper. It requires a verified client certificate,
//! then admits the client by its identity ([`policy`]), and answers it itself or
//! forwards its requests to an upstream application ([`proxy`]).
//!
//! Each connection logs the Go demo's blocks: `State` and `Certificate chain` once, when its
//! handshake completes; `Header` for every request. A failed handshake is logged at warn
//! with a reason code and a plain-words explanation. With `RUST_LOG=debug`, each handshake
//! is also logged message by message, as it crossed the wire ([`crate::trace`]).
//!
//! The modules, in the order a connection meets them: [`settings`] (what the binary
//! fills in); `accept` (a slot under the connection limit, a task per connection, and
//! draining on shutdown); `handshake` (the peer's first bytes, the TLS handshake under its
//! timeout, a resumed session verified again); `connection` (who the client is, the
//! policy's decision, each request); `page` (the browser view: a request that prefers HTML
//! gets this connection's handshake, step by step, instead of the plain-text answer);
//! [`request`] (what every request must be before it is answered or forwarded: one host
//! without userinfo, not CONNECT; else a 400 or 405 that says why); [`watchdog`] (the only code that closes a connection for taking too long,
//! with one typed [`watchdog::Limit`] for its log line and its metric).
//!
//! Around that, the concerns of a real endpoint: the TLS material is reloaded while the
//! server runs ([`reload`]); [`policy`] admits identities; [`proxy`] forwards to an
//! application; [`metrics`] serves counters to Prometheus and health to orchestrators;
//! [`response`] holds the bodies. Behind a TCP load balancer, [`proxy_header`] reads the
//! PROXY protocol header before anything else, so the client's own address is the one
//! every later step sees.
//!
//! A client's chain is verified by rustls in a full handshake only. A resumed session
//! carries the chain of the handshake it resumes, so the server verifies it again, now,
//! with the current verifier; and after every reload each open connection verifies its
//! client again with the new one. A client that no longer passes (expired, revoked, a CRL
//! past its next update, a replaced CA) is refused, or its connection is closed.
//!
//! Every graceful close (idle, denied, no longer verified) has a hard deadline: a peer that
//! does not cooperate (an HTTP/2 client that never acknowledges the GOAWAY's PING) is
//! dropped after it.

mod accept;
mod connection;
mod handshake;
pub mod metrics;
mod page;
pub mod policy;
pub mod proxy;
pub mod proxy_header;
pub mod reload;
pub mod request;
pub mod settings;
mod state;
pub mod watchdog;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use settings::ServerSettings;
// Shared with `client proxy`; re-exported so the server's paths stay as they were.
pub use crate::response;
pub use crate::triggers::shutdown_signal;

use crate::error::{Error, Result};
use reload::{Hangup, LiveTls, ReloadTriggers};
use state::Shared;
use watchdog::Phase;

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shared: Arc<Shared>,
    phase: watch::Sender<Phase>,
    hangup: Hangup,
    reload: ReloadTriggers,
    drain_timeout: Duration,
}

impl Server {
    /// Loads the TLS material and binds the listening socket (and the metrics one).
    pub async fn bind(settings: &ServerSettings) -> Result<Self> {
        settings.validate()?;
        let tls = Arc::new(LiveTls::load(settings.tls_source())?);
        let listener = TcpListener::bind(&settings.addr)
            .await
            .map_err(|source| Error::Bind {
                addr: settings.addr.clone(),
                source,
            })?;
        let metrics_listener = crate::scrape::bind(settings.metrics_addr.as_deref()).await?;
        // Installed now, before the server announces itself, so an early SIGHUP reloads.
        let hangup = Hangup::install(settings.reload.sighup)?;
        accept::warn_if_above_file_limit(settings.max_connections);
        let (phase_tx, phase_rx) = watch::channel(Phase::Running);
        Ok(Self {
            listener,
            metrics_listener,
            shared: Arc::new(Shared::new(settings, tls, phase_rx)),
            phase: phase_tx,
            hangup,
            reload: settings.reload,
            drain_timeout: settings.drain_timeout,
        })
    }
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|source| Error::Io {
            context: "cannot read the listening address".into(),
            source,
        })
    }

    /// The metrics listener's address, when `--metrics` was given.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>> {
        self.metrics_listener
            .as_ref()
            .map(|l| {
                l.local_addr().map_err(|source| Error::Io {
                    context: "cannot read the metrics address".into(),
                    source,
                })
            })
            .transpose()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (up to the
    /// drain timeout).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let Server {
            listener,
            metrics_listener,
            shared,
            phase,
            hangup,
            reload,
            drain_timeout,
        } = self;
        let stopped = |mut rx: watch::Receiver<Phase>| async move {
            let _ = rx.wait_for(|p| *p != Phase::Running).await;
        };
        tokio::spawn(reload::watch(
            shared.tls.clone(),
            reload,
            hangup,
            stopped(shared.phase.clone()),
        ));
        if let Some(metrics_listener) = metrics_listener {
            let endpoint = metrics::Endpoint {
                metrics: shared.metrics.clone(),
                health: metrics::Health::new(shared.tls.clone(), shared.phase.clone()),
            };
            crate::scrape::spawn(
                metrics_listener,
                Arc::new(endpoint),
                stopped(shared.phase.clone()),
            );
        }

        // The accept loop runs as a task of the runtime's own, beside the connections it
        // starts: on one core, a connection then never waits for a wake-up across threads.
        let (stop, stopping) = tokio::sync::oneshot::channel::<()>();
        let mut accepting = tokio::spawn(accept::serve(
            listener,
            shared,
            phase,
            drain_timeout,
            async move {
                let _ = stopping.await;
            },
        ));
        tokio::select! {
            () = shutdown => {
                let _ = stop.send(());
                let _ = accepting.await;
            }
            _ = &mut accepting => {}
        }
        Ok(())
    }
}

/// The server binary's whole run: bind, print `listening on https://ADDR` (and the metrics
/// address) on stdout, and serve until SIGTERM or Ctrl-C.
pub async fn serve(settings: &ServerSettings) -> Result<()> {
    let server = Server::bind(settings).await?;
    let addr = server.local_addr()?;
    let mut announce = format!("listening on https://{addr}\n");
    if let Some(metrics) = server.metrics_addr()? {
        announce.push_str(&format!("metrics on http://{metrics}/metrics\n"));
    }
    crate::cli::say(announce);
    server.run(shutdown_signal()).await
}
