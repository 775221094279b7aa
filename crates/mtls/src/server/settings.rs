//! Everything the server needs to start, as one typed value the binary fills in.

use std::path::PathBuf;
use std::time::Duration;

use super::policy::AccessPolicy;
use super::proxy::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_FIRST_BYTE_TIMEOUT, DEFAULT_MAX_IN_FLIGHT, Protocol, Upstream,
    UpstreamTlsFiles,
};
use super::proxy_header::ProxyProtocol;
use super::reload::{ReloadTriggers, TlsSource};
use crate::error::{Error, Result};
use crate::files::{CertsDir, Role};
use crate::tls::ServerPolicy;

/// Everything the server needs to start. Paths are explicit; [`ServerSettings::in_dir`]
/// fills them from a certificate folder.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Address to listen on; port 0 picks a free port.
    pub addr: String,
    /// The CA that client certificates must chain to.
    pub ca: PathBuf,
    /// The server's certificate (leaf first, then any intermediates).
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// CRLs whose revoked client certificates are refused.
    pub crls: Vec<PathBuf>,
    /// TLS versions and resumption.
    pub policy: ServerPolicy,
    /// A peer that has not finished its handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// How long a client may take to send a request's headers, from their first byte
    /// (HTTP/1.1).
    pub header_timeout: Duration,
    /// Largest request head (request line and headers) accepted, in bytes; larger gets 431.
    pub max_header_bytes: usize,
    /// On shutdown, how long in-flight requests get to finish.
    pub drain_timeout: Duration,
    /// A connection with no request in flight for this long is closed; so is one whose
    /// requests in flight make no progress on the client's side for this long (a stall).
    pub idle_timeout: Duration,
    /// Most connections open at once; beyond it, new connections wait to be accepted.
    pub max_connections: usize,
    /// Most connections in their TLS handshake at once; beyond it, the one that has been
    /// in its handshake longest is closed to admit the new one.
    pub max_handshakes: usize,
    /// Which verified clients are admitted (no rules: all of them).
    pub access: AccessPolicy,
    /// When to reload the certificate, key, CA and CRLs.
    pub reload: ReloadTriggers,
    /// Behind a TCP load balancer: read a PROXY protocol header, from these peers only,
    /// before TLS (`--proxy-protocol`).
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Forward admitted requests to this application instead of answering them.
    pub upstream: Option<Upstream>,
    /// Most requests in flight to the upstream at once, whatever clients do; more wait.
    pub upstream_max_in_flight: usize,
    /// An https upstream: the proxy's certificate chain, presented to the application.
    pub upstream_cert: Option<PathBuf>,
    /// An https upstream: the proxy's private key.
    pub upstream_key: Option<PathBuf>,
    /// An https upstream: the CA the application's certificate must chain to.
    pub upstream_ca: Option<PathBuf>,
    /// How long the upstream may take to accept a connection (TLS handshake included).
    pub upstream_connect_timeout: Duration,
    /// How long the upstream may take to start its response.
    pub upstream_first_byte_timeout: Duration,
    /// Serve Prometheus metrics over plain HTTP on this address.
    pub metrics_addr: Option<String>,
}

impl ServerSettings {
    /// Defaults with the demo set's paths in `dir`.
    pub fn in_dir(dir: &CertsDir) -> Self {
        Self {
            addr: "127.0.0.1:8443".into(),
            ca: dir.ca_cert(),
            cert: dir.role_cert(Role::Server),
            key: dir.role_key(Role::Server),
            crls: Vec::new(),
            policy: ServerPolicy::default(),
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            drain_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_handshakes: 256,
            access: AccessPolicy::default(),
            reload: ReloadTriggers {
                interval: Some(Duration::from_secs(2)),
                sighup: true,
            },
            proxy_protocol: None,
            upstream: None,
            upstream_max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            upstream_cert: None,
            upstream_key: None,
            upstream_ca: None,
            upstream_connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            upstream_first_byte_timeout: DEFAULT_FIRST_BYTE_TIMEOUT,
            metrics_addr: None,
        }
    }

    /// Where the TLS material comes from.
    pub fn tls_source(&self) -> TlsSource {
        TlsSource {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            crls: self.crls.clone(),
            policy: self.policy.clone(),
            upstream: self.upstream_tls(),
        }
    }

    /// The files of the proxy's TLS to an https upstream, when all three are given.
    pub fn upstream_tls(&self) -> Option<UpstreamTlsFiles> {
        let https = self.upstream.as_ref()?.protocol() == Protocol::Https;
        match (
            https,
            &self.upstream_cert,
            &self.upstream_key,
            &self.upstream_ca,
        ) {
            (true, Some(cert), Some(key), Some(ca)) => Some(UpstreamTlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
            }),
            _ => None,
        }
    }

    /// Refuses limits that cannot work, with the flag to fix.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("--handshake-timeout", self.handshake_timeout),
            ("--header-timeout", self.header_timeout),
            ("--idle-timeout", self.idle_timeout),
            ("--upstream-connect-timeout", self.upstream_connect_timeout),
            (
                "--upstream-first-byte-timeout",
                self.upstream_first_byte_timeout,
            ),
        ];
        for (flag, value) in positive {
            if value.is_zero() {
                return Err(Error::Usage(format!(
                    "{flag} must be longer than 0 (for example 10s)"
                )));
            }
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Err(Error::Usage(format!(
                "--max-header-size {} is too small: HTTP/1.1 needs at least 8KiB for a request head",
                self.max_header_bytes
            )));
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_handshakes) {
            return Err(Error::Usage(format!(
                "--max-handshakes {} is out of range: choose 1 to {MAX_CONNECTIONS}",
                self.max_handshakes
            )));
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            return Err(Error::Usage(format!(
                "--max-connections {} is out of range: choose 1 to {MAX_CONNECTIONS}",
                self.max_connections
            )));
        }
        if self
            .proxy_protocol
            .as_ref()
            .is_some_and(|p| p.trusted.is_empty())
        {
            return Err(Error::Usage(
                "--proxy-protocol needs --proxy-protocol-from with your load balancers' \
                 addresses (10.0.0.0/8, say): a header from anyone else could claim any address"
                    .into(),
            ));
        }
        if self.policy.ticket_keys.is_some() && !self.policy.resumption {
            return Err(Error::Usage(
                "--ticket-keys makes session tickets, and --no-resumption turns them off: \
                 choose one"
                    .into(),
            ));
        }
        if !(1..=MAX_UPSTREAM_IN_FLIGHT).contains(&self.upstream_max_in_flight) {
            return Err(Error::Usage(format!(
                "--upstream-max-in-flight {} is out of range: choose 1 to {MAX_UPSTREAM_IN_FLIGHT}",
                self.upstream_max_in_flight
            )));
        }
        self.validate_upstream_tls()
    }

    /// An https upstream needs all three TLS files; the others take none.
    fn validate_upstream_tls(&self) -> Result<()> {
        let given = [
            ("--upstream-cert", &self.upstream_cert),
            ("--upstream-key", &self.upstream_key),
            ("--upstream-ca", &self.upstream_ca),
        ];
        let https = self
            .upstream
            .as_ref()
            .is_some_and(|u| u.protocol() == Protocol::Https);
        let named = |present: bool| {
            given
                .iter()
                .filter(|(_, file)| file.is_some() == present)
                .map(|(flag, _)| *flag)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if https && given.iter().any(|(_, file)| file.is_none()) {
            let upstream = self
                .upstream
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            return Err(Error::Usage(format!(
                "--upstream {upstream} needs {}: the CA that issued the application's \
                 certificate (--upstream-ca), and the certificate and key this proxy presents \
                 to it (--upstream-cert, --upstream-key)",
                named(false)
            )));
        }
        let extra = given.iter().filter(|(_, file)| file.is_some()).count();
        if !https && extra > 0 {
            let (verb, them) = if extra == 1 {
                ("is", "it")
            } else {
                ("are", "them")
            };
            return Err(Error::Usage(format!(
                "{} {verb} for an https:// upstream only; write --upstream https://HOST:PORT, \
                 or leave {them} out",
                named(true)
            )));
        }
        Ok(())
    }
}

/// hyper's smallest read buffer, and so the smallest header limit it can enforce.
pub(super) const MIN_HEADER_BYTES: usize = 8 * 1024;
/// The largest `--max-connections` (far beyond what one process's file descriptors allow).
pub(super) const MAX_CONNECTIONS: usize = 1_000_000;
/// The largest `--upstream-max-in-flight`.
pub(super) const MAX_UPSTREAM_IN_FLIGHT: usize = 1_000_000;
