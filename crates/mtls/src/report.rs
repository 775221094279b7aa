//! What a finished handshake established, from either side: the fields of Go's
//! `tls.ConnectionState`, by name, and the peer's certificate chain.

use std::fmt;

use rustls::CommonState;
use rustls::pki_types::CertificateDer;

use crate::certinfo::{CertInfo, format_time};
use crate::tls::version_name;

/// The negotiated TLS state of one connection.
#[derive(Clone, Debug)]
pub struct TlsReport {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The cipher suite by its IANA name, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The key-exchange group, e.g. `X25519`.
    pub key_exchange: String,
    /// The handshake finished (always true once a report exists; Go prints it too).
    pub handshake_complete: bool,
    /// The session was resumed from an earlier one (no certificates were exchanged again).
    pub resumed: bool,
    /// The ALPN protocol agreed (`h2`, `http/1.1`), if any.
    pub alpn: Option<String>,
    /// The server name the client asked for (SNI), if any.
    pub sni: Option<String>,
    /// The peer's certificates, leaf first, as it sent them (any that x509-parser cannot
    /// read are left out; the handshake's verifier accepted them nonetheless).
    pub peer_chain: Vec<CertInfo>,
    /// The peer's identity, from its leaf certificate only.
    identity: Option<String>,
}

impl TlsReport {
    /// Reads the state of a connection whose handshake has completed.
    pub fn from_connection(conn: &CommonState, sni: Option<&str>) -> Self {
        let certs = conn.peer_certificates().unwrap_or_default();
        let named =
            |s: Option<&'static str>, fallback: String| s.map(str::to_owned).unwrap_or(fallback);
        Self {
            version: conn
                .protocol_version()
                .map(version_name)
                .unwrap_or_else(|| "unknown".into()),
            cipher_suite: conn
                .negotiated_cipher_suite()
                .map(|s| named(s.suite().as_str(), format!("{:?}", s.suite())))
                .unwrap_or_else(|| "unknown".into()),
            key_exchange: conn
                .negotiated_key_exchange_group()
                .map(|g| named(g.name().as_str(), format!("{:?}", g.name())))
                .unwrap_or_else(|| "none".into()),
            handshake_complete: !conn.is_handshaking(),
            resumed: matches!(conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed)),
            alpn: conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            sni: sni.map(str::to_owned),
            peer_chain: describe_chain(certs),
            identity: certs
                .first()
                .and_then(|leaf| CertInfo::parse(leaf).ok())
                .map(|leaf| leaf.identity()),
        }
    }

    /// The authenticated peer, named by its leaf certificate.
    pub fn peer_identity(&self) -> Option<String> {
        self.identity.clone()
    }
}

/// Parses each certificate of a chain, leaving out any that do not parse.
pub fn describe_chain(chain: &[CertificateDer<'_>]) -> Vec<CertInfo> {
    chain
        .iter()
        .filter_map(|c| CertInfo::parse(c).ok())
        .collect()
}

/// The "State" block, as the client prints it.
impl fmt::Display for TlsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let none = "(none)".to_string();
        writeln!(f, "  version:             {}", self.version)?;
        writeln!(f, "  cipher suite:        {}", self.cipher_suite)?;
        writeln!(f, "  key exchange:        {}", self.key_exchange)?;
        writeln!(f, "  handshake complete:  {}", self.handshake_complete)?;
        writeln!(f, "  resumed:             {}", self.resumed)?;
        writeln!(
            f,
            "  ALPN protocol:       {}",
            self.alpn.as_ref().unwrap_or(&none)
        )?;
        writeln!(
            f,
            "  server name (SNI):   {}",
            self.sni.as_ref().unwrap_or(&none)
        )
    }
}

/// A chain as an indented list, one certificate per paragraph (`0 s:... i:...`, as openssl).
pub struct ChainText<'a>(pub &'a [CertInfo]);

impl fmt::Display for ChainText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return writeln!(f, "  (no certificates)");
        }
        for (i, c) in self.0.iter().enumerate() {
            writeln!(f, "  {i} subject: {}", c.subject)?;
            writeln!(f, "    issuer:  {}", c.issuer)?;
            writeln!(f, "    SANs:    {}", c.sans_text())?;
            writeln!(
                f,
                "    valid:   {} to {}",
                format_time(c.not_before),
                format_time(c.not_after)
            )?;
            writeln!(f, "    SHA-256: {}", c.sha256)?;
        }
        Ok(())
    }
}
