//! The proxy's TLS to an `https://` application: its own certificate and key (presented
//! when the application asks, as nginx's `proxy_ssl_certificate`), and the CA the
//! application's certificate must chain to. Built by the one rustls client builder
//! ([`crate::tls::client_config`]); loaded with the server's own material and reloaded with
//! it ([`crate::server::reload`]), so a reload that fails keeps both.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ClientConfig;

use crate::certinfo::CertInfo;
use crate::error::{Error, Result};
use crate::explain;
use crate::pem;
use crate::tls::{self, ClientPolicy, Identity, SeenChain, Trust};

/// The files of the proxy's TLS to the application (`--upstream-cert`, `--upstream-key`,
/// `--upstream-ca`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTlsFiles {
    /// The proxy's certificate chain, presented to the application.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The CA the application's certificate must chain to.
    pub ca: PathBuf,
}

impl UpstreamTlsFiles {
    /// Every file, in the order [`UpstreamTls::parse`] takes their contents.
    pub fn files(&self) -> [&Path; 3] {
        [&self.cert, &self.key, &self.ca]
    }
}

/// What the three files hold, as each side of a reload names them in errors.
const CERT_WHAT: &str = "the proxy's certificate for the application (--upstream-cert)";
const KEY_WHAT: &str = "the proxy's private key for the application (--upstream-key)";
const CA_WHAT: &str = "the CA of the application's certificate (--upstream-ca)";

/// The proxy's client TLS to the application, from one load of its files.
#[derive(Debug)]
pub struct UpstreamTls {
    /// Offers HTTP/2 and HTTP/1.1 by ALPN.
    pub(super) config: Arc<ClientConfig>,
    /// Offers HTTP/1.1 only: for upgrades (WebSocket), which HTTP/2 does not carry as such.
    pub(super) config_http1: Arc<ClientConfig>,
    /// The application's chain as last seen, and whether it asked for the proxy's
    /// certificate, to explain a failed handshake.
    pub(super) seen: SeenChain,
    /// What explanations of a failure may mention, for the log (file names included).
    pub(super) explain: explain::Context,
    /// The proxy's certificate.
    pub cert: CertInfo,
    /// Where it came from.
    pub files: UpstreamTlsFiles,
}

impl UpstreamTls {
    /// Builds the configs from the files' contents, read once by the caller (in
    /// [`UpstreamTlsFiles::files`] order); any problem is an error that names the file.
    pub fn parse(
        files: &UpstreamTlsFiles,
        cert: Vec<u8>,
        key: Vec<u8>,
        ca: Vec<u8>,
    ) -> Result<Self> {
        let chain = pem::described_certificates_in(&cert, &files.cert, CERT_WHAT)?;
        let leaf = chain
            .first()
            .map(|(_, info)| info.clone())
            .ok_or_else(|| Error::malformed(CERT_WHAT, &files.cert, "it holds no certificate"))?;
        let key = pem::private_key_in(&key, &files.key, KEY_WHAT)?;
        let identity = Identity::from_der(
            chain.into_iter().map(|(der, _)| der).collect(),
            key,
            &files.cert,
            &files.key,
        )?;
        let (anchors, cas): (Vec<_>, Vec<_>) =
            pem::described_certificates_in(&ca, &files.ca, CA_WHAT)?
                .into_iter()
                .unzip();
        let trust = Trust::from_certs(anchors, &files.ca)?;
        let seen = SeenChain::default();
        let config =
            |policy| tls::client_config(Some(&identity), &trust, seen.clone(), policy, None);
        let config_http1 = config(ClientPolicy {
            http1_only: true,
            ..ClientPolicy::default()
        })?;
        Ok(Self {
            config: config(ClientPolicy::default())?,
            config_http1,
            explain: explain::Context {
                ca: Some(files.ca.clone()),
                anchors: cas,
                ours: Some(leaf.clone()),
                ours_file: Some(files.cert.clone()),
                host_flag: Some("--upstream"),
                ca_flag: Some("--upstream-ca"),
                ..explain::Context::default()
            },
            seen,
            cert: leaf,
            files: files.clone(),
        })
    }
}
