//! Everything `client proxy` needs to start, as one typed value the binary fills in, and the
//! limits it refuses.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::client::Url;
use crate::error::{Error, Result};
use crate::tls::ClientPolicy;
use crate::triggers::ReloadTriggers;

/// hyper's smallest read buffer, and so the smallest header limit it can enforce.
const MIN_HEADER_BYTES: usize = 8 * 1024;
/// The largest `--max-connections`.
const MAX_CONNECTIONS: usize = 1_000_000;

/// Where the proxy's identity comes from: its certificate and key, and the CA the upstream's
/// certificate must chain to.
#[derive(Clone, Debug)]
pub struct IdentitySource {
    /// Our certificate chain (leaf first).
    pub cert: PathBuf,
    /// Our private key.
    pub key: PathBuf,
    /// The CA the upstream's certificate must chain to.
    pub ca: PathBuf,
    /// How errors name our certificate ("Client A", "the client").
    pub owner: String,
}

impl IdentitySource {
    /// Every file a reload reads, in the order it reads them.
    pub fn files(&self) -> Vec<&Path> {
        vec![self.cert.as_path(), self.key.as_path(), self.ca.as_path()]
    }
}

/// Everything `client proxy` needs to start.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    /// Where local applications connect (plain HTTP); port 0 picks a free port.
    pub listen: String,
    /// Accept applications on a listen address that is not loopback (anyone who can reach
    /// it then speaks with our certificate).
    pub allow_remote: bool,
    /// The one upstream every request goes to: `https://HOST[:PORT]`.
    pub upstream: Url,
    /// Our certificate, key and the CA we verify the upstream with.
    pub identity: IdentitySource,
    /// TLS version and ALPN pins for the upstream connections.
    pub policy: ClientPolicy,
    /// TCP connect limit, to the upstream.
    pub connect_timeout: Duration,
    /// TLS handshake limit, with the upstream.
    pub handshake_timeout: Duration,
    /// How long a local application may take to send a request head, from its first byte.
    pub header_timeout: Duration,
    /// Largest request head accepted from a local application; larger gets 431.
    pub max_header_bytes: usize,
    /// A local connection with no request in flight for this long is closed; so is one
    /// whose request in flight makes no progress on the application's side for this long.
    pub idle_timeout: Duration,
    /// Most local connections open at once; beyond it, new ones wait to be accepted.
    pub max_connections: usize,
    /// On shutdown, how long requests in flight get to finish.
    pub drain_timeout: Duration,
    /// When to reload the certificate, key and CA.
    pub reload: ReloadTriggers,
    /// Serve Prometheus metrics over plain HTTP on this address.
    pub metrics_addr: Option<String>,
}

impl ProxySettings {
    /// The server's defaults for every limit, listening on 127.0.0.1:8080.
    pub fn new(upstream: Url, identity: IdentitySource) -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            allow_remote: false,
            upstream,
            identity,
            policy: ClientPolicy::default(),
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            drain_timeout: Duration::from_secs(10),
            reload: ReloadTriggers {
                interval: Some(Duration::from_secs(2)),
                sighup: true,
            },
            metrics_addr: None,
        }
    }

    /// Refuses settings that cannot work, with the flag to fix.
    pub fn validate(&self) -> Result<()> {
        let usage = |m: String| Err(Error::Usage(m));
        if !matches!(self.upstream.path(), "" | "/") {
            return usage(format!(
                "--url {} has a path; requests keep their own path, so give only the scheme, \
                 host and port, like https://api.internal:8443",
                self.upstream
            ));
        }
        for (flag, value) in [
            ("--handshake-timeout", self.handshake_timeout),
            ("--header-timeout", self.header_timeout),
            ("--idle-timeout", self.idle_timeout),
        ] {
            if value.is_zero() {
                return usage(format!("{flag} must be longer than 0 (for example 10s)"));
            }
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return usage(format!(
                "--max-header-size {} is too small: HTTP/1.1 needs at least 8KiB for a request head",
                self.max_header_bytes
            ));
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            return usage(format!(
                "--max-connections {} is out of range: choose 1 to {MAX_CONNECTIONS}",
                self.max_connections
            ));
        }
        Ok(())
    }
}
