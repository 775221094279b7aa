//! `client proxy`: plain HTTP in, mutual TLS out. Local applications send plain HTTP/1.1 to
//! a listener on loopback; each request goes to the one configured upstream over a pooled
//! mutual-TLS connection (HTTP/2 when the upstream offers it) that presents our certificate
//! and verifies the upstream's chain and name, exactly as `client` does.
//!
//! The modules, in the order a request meets them: [`settings`] (what the binary fills in);
//! `listener` (accepting under `--max-connections`, the header, idle and stall timeouts of
//! [`crate::activity`], draining on shutdown); `target` (not an open proxy: a request for
//! another host, or CONNECT, is refused with a sentence); `forward` (header hygiene both
//! ways, the upstream's answer streamed back, or a 502 whose body is the reason in
//! `client`'s words); `upstream` (the pooled connections, made with `client`'s own
//! connect, TLS config and error explanations); `causes` (each failure cause logged once).
//!
//! Around that: the certificate, key and CA are reloaded on SIGHUP and when their files
//! change (`live`; a failed reload keeps the old identity, and connections made with the
//! old one are replaced); `metrics` are served on `--metrics ADDR` by [`crate::scrape`].

mod causes;
mod forward;
mod listener;
mod live;
mod metrics;
pub mod settings;
mod target;
mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{info, warn};

pub use causes::REMIND_AFTER;
pub use forward::{RESPONSE_TIMEOUT, failure_code};
pub use live::{LiveIdentity, Material};
pub use metrics::{FAILURE_REASONS, ProxyMetrics};
pub use settings::{IdentitySource, ProxySettings};
pub use target::Refusal;
pub use upstream::{Dialing, KEEP_IDLE, MAX_IDLE, Upstream};

use crate::activity::{Phase, RequestBody, http1_server};
use crate::client::Url;
use crate::error::{Error, Result};
use crate::format::format_time;
use crate::triggers::{Hangup, ReloadTriggers, shutdown_signal};
use causes::Causes;

/// The longest a graceful close may take before the connection is dropped (shorter when
/// the idle timeout is), as the server's.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What every local connection reads.
struct Shared {
    url: Url,
    upstream: Upstream<RequestBody>,
    http1: http1::Builder,
    metrics: Arc<ProxyMetrics>,
    /// Why requests did not reach the upstream, each said once until it answers again.
    failures: Causes,
    /// Refusals, removed headers and limits, each said once in a while.
    notices: Causes,
    idle_timeout: Duration,
    header_timeout: Duration,
    close_grace: Duration,
    max_header_bytes: usize,
    max_connections: usize,
    drain_timeout: Duration,
    slots: Arc<Semaphore>,
    phase: watch::Receiver<Phase>,
}

/// A bound proxy, ready to [`run`](Proxy::run).
pub struct Proxy {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    live: Arc<LiveIdentity>,
    shared: Arc<Shared>,
    phase: watch::Sender<Phase>,
    hangup: Hangup,
    reload: ReloadTriggers,
}

impl Proxy {
    /// Loads the identity, and binds the listener (loopback unless `allow_remote`) and the
    /// metrics listener.
    pub async fn bind(settings: &ProxySettings) -> Result<Self> {
        settings.validate()?;
        let live = Arc::new(LiveIdentity::load(settings.identity.clone())?);
        let listener = TcpListener::bind(&settings.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: settings.listen.clone(),
                source,
            })?;
        let local = local_addr(&listener)?;
        if !local.ip().is_loopback() && settings.allow_remote {
            warn!(
                listen = %local,
                "listening beyond loopback (--allow-remote): whoever reaches this address \
                 speaks to the upstream with this proxy's certificate"
            );
        } else if !local.ip().is_loopback() {
            return Err(Error::Usage(format!(
                "--listen {} is not a loopback address: anyone who can reach it would speak to \
                 {} with this proxy's certificate; listen on 127.0.0.1, or pass --allow-remote \
                 if that is what you want",
                settings.listen, settings.upstream
            )));
        }
        let metrics_listener = crate::scrape::bind(settings.metrics_addr.as_deref()).await?;
        // Installed now, before the proxy announces itself, so an early SIGHUP reloads.
        let hangup = Hangup::install(settings.reload.sighup)?;
        let metrics = Arc::new(ProxyMetrics::new(live.clone(), settings.max_connections));
        let dialing = Dialing {
            url: settings.upstream.clone(),
            policy: settings.policy,
            connect_timeout: settings.connect_timeout,
            handshake_timeout: settings.handshake_timeout,
        };
        let (phase, phase_rx) = watch::channel(Phase::Running);
        let shared = Shared {
            url: settings.upstream.clone(),
            upstream: Upstream::new(dialing, live.clone(), metrics.clone()),
            http1: http1_server(settings.max_header_bytes),
            metrics,
            failures: Causes::default(),
            notices: Causes::default(),
            idle_timeout: settings.idle_timeout,
            header_timeout: settings.header_timeout,
            close_grace: settings.idle_timeout.min(CLOSE_GRACE),
            max_header_bytes: settings.max_header_bytes,
            max_connections: settings.max_connections,
            drain_timeout: settings.drain_timeout,
            slots: Arc::new(Semaphore::new(settings.max_connections)),
            phase: phase_rx,
        };
        Ok(Self {
            listener,
            metrics_listener,
            live,
            shared: Arc::new(shared),
            phase,
            hangup,
            reload: settings.reload,
        })
    }

    /// The address local applications connect to (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        local_addr(&self.listener)
    }

    /// The metrics listener's address, when `--metrics` was given.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>> {
        self.metrics_listener.as_ref().map(local_addr).transpose()
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish (up to the
    /// drain timeout).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let shared = self.shared;
        let material = self.live.current();
        info!(
            upstream = %shared.url,
            client = %material.leaf.identity(),
            client.cert.serial = %material.leaf.serial_hex(),
            client.cert.not_after = %format_time(material.leaf.not_after),
            ca = %self.live.source().ca.display(),
            "forwarding local requests to the upstream over mutual TLS"
        );
        let pool = shared.clone();
        let retire = move |m: &Material| pool.upstream.retire(m.generation);
        let watching = live::watch(
            self.live,
            self.reload,
            self.hangup,
            retire,
            Phase::stopped(shared.phase.clone()),
        );
        tokio::spawn(watching);
        if let Some(metrics) = self.metrics_listener {
            let stop = Phase::stopped(shared.phase.clone());
            crate::scrape::spawn(metrics, shared.metrics.clone(), stop);
        }
        listener::serve((self.listener, self.phase), shared, shutdown).await;
        Ok(())
    }
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr> {
    listener.local_addr().map_err(|source| Error::Io {
        context: "cannot read the listening address".into(),
        source,
    })
}

/// `client proxy`'s whole run: bind, print `listening on http://ADDR` (and the metrics
/// address) on stdout, and serve until SIGTERM or Ctrl-C.
pub async fn serve(settings: &ProxySettings) -> Result<()> {
    let proxy = Proxy::bind(settings).await?;
    let mut announce = format!("listening on http://{}\n", proxy.local_addr()?);
    if let Some(metrics) = proxy.metrics_addr()? {
        announce.push_str(&format!("metrics on http://{metrics}/metrics\n"));
    }
    crate::cli::say(announce);
    proxy.run(shutdown_signal()).await
}
