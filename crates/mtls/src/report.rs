//! What a finished handshake established, from either side: the fields of Go's
//! `tls.ConnectionState`, by name, and the peer's certificate chain.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;
use rustls::CommonState;
use rustls::pki_types::CertificateDer;

use crate::certinfo::CertInfo;
use crate::format::format_time;
use crate::tls::version_name;
use crate::verdicts::{ChainKey, chain_key};

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
}

impl TlsReport {
    /// Reads the state of a connection whose handshake has completed.
    pub fn from_connection(conn: &CommonState, sni: Option<&str>) -> Self {
        Self {
            peer_chain: describe_chain(conn.peer_certificates().unwrap_or_default()),
            ..Self::negotiated(conn, sni)
        }
    }

    /// What was negotiated, without reading the peer's certificates (`peer_chain` is empty):
    /// for a caller that reads them itself, once (see [`PeerPath`]).
    pub fn negotiated(conn: &CommonState, sni: Option<&str>) -> Self {
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
            peer_chain: Vec::new(),
        }
    }
}

/// Parses each certificate of a chain, leaving out any that do not parse.
pub fn describe_chain(chain: &[CertificateDer<'_>]) -> Vec<CertInfo> {
    chain
        .iter()
        .filter_map(|c| CertInfo::parse(c).ok())
        .collect()
}

/// Most certificates after the leaf on a [`PeerPath`] (webpki accepts at most six
/// intermediates).
pub const MAX_PATH: usize = 6;

/// Most certificates after the leaf that are read at all: a peer may append any number.
const MAX_CANDIDATES: usize = 16;

/// A peer's leaf and the certificates it sent that link the leaf to a CA we trust: each
/// one's key verifies the signature on the one before it, and the last is signed by a trust
/// anchor. A peer can append certificates the verifier never used, with any subject it
/// likes (one named like our CA, say): only those whose signatures link the leaf to a trust
/// anchor are worth logging or forwarding, and their names are still the peer's words, to
/// be escaped.
#[derive(Clone, Debug, Default)]
pub struct PeerPath {
    /// The leaf, if it parses.
    pub leaf: Option<CertInfo>,
    /// The certificates after the leaf on the path, with their index in the chain as sent.
    pub path: Vec<(usize, CertInfo)>,
    /// How many certificates the peer sent that are not on the path (or did not parse).
    pub left_out: usize,
}

impl PeerPath {
    /// Reads the chain a peer sent (leaf first), keeping after the leaf only the certificates
    /// whose signatures lead from it to one of `anchors`. Signatures are checked only when
    /// the peer sent more than its leaf.
    pub fn verified(chain: &[CertificateDer<'_>], anchors: &[CertificateDer<'_>]) -> Self {
        let Some((leaf_der, rest)) = chain.split_first() else {
            return Self::default();
        };
        let Ok(leaf) = CertInfo::parse(leaf_der) else {
            return Self {
                leaf: None,
                path: Vec::new(),
                left_out: chain.len(),
            };
        };
        let path = match rest.is_empty() {
            true => Vec::new(),
            false => linked_path(leaf_der, rest, anchors).unwrap_or_default(),
        };
        Self {
            left_out: rest.len() - path.len(),
            leaf: Some(leaf),
            path,
        }
    }
}

/// The paths of the chains peers sent, read once per chain: a server sees the same chain
/// on every connection of a client, and reading it means parsing each certificate (and,
/// with intermediates, checking their signatures). One memory per set of anchors, bounded
/// (the least recently used chain is forgotten first); fed only chains a handshake verified.
#[derive(Debug)]
pub struct PathMemory {
    anchors: Vec<CertificateDer<'static>>,
    known: Mutex<LruCache<ChainKey, Arc<PeerPath>>>,
}

impl PathMemory {
    /// How many chains are remembered at most.
    pub const CAPACITY: NonZeroUsize = NonZeroUsize::new(1024).expect("not zero");

    /// An empty memory for paths to `anchors`.
    pub fn new(anchors: Vec<CertificateDer<'static>>) -> Self {
        Self {
            anchors,
            known: Mutex::new(LruCache::new(Self::CAPACITY)),
        }
    }

    /// [`PeerPath::verified`] for `chain` and this memory's anchors, read at most once and
    /// shared (a connection only reads it).
    pub fn verified(&self, chain: &[CertificateDer<'_>]) -> Arc<PeerPath> {
        let key = chain_key(chain.iter().map(|c| c.as_ref()));
        if let Some(known) = self
            .known
            .lock()
            .ok()
            .and_then(|mut k| k.get(&key).cloned())
        {
            return known;
        }
        let path = Arc::new(PeerPath::verified(chain, &self.anchors));
        if let Ok(mut known) = self.known.lock() {
            known.put(key, path.clone());
        }
        path
    }

    /// How many chains are remembered now.
    pub fn remembered(&self) -> usize {
        self.known.lock().map(|k| k.len()).unwrap_or(0)
    }
}

impl PeerPath {
    /// The trust anchor among `cas` the path ends at: the one whose subject (and key
    /// identifier, when both carry one) is the issuer of the last certificate on the path.
    pub fn anchor<'a>(&self, cas: &'a [CertInfo]) -> Option<&'a CertInfo> {
        let last = self.path.last().map(|(_, c)| c).or(self.leaf.as_ref())?;
        cas.iter().find(|ca| {
            ca.subject == last.issuer
                && match (&ca.subject_key_id, &last.authority_key_id) {
                    (Some(ski), Some(aki)) => ski == aki,
                    _ => true,
                }
        })
    }
}

/// The certificates of `rest` (with their index in the whole chain) that link `leaf` to an
/// anchor by signature, or `None` when no such path exists among them.
fn linked_path(
    leaf: &[u8],
    rest: &[CertificateDer<'_>],
    anchors: &[CertificateDer<'_>],
) -> Option<Vec<(usize, CertInfo)>> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    fn parse(der: &[u8]) -> Option<X509Certificate<'_>> {
        X509Certificate::from_der(der).ok().map(|(_, c)| c)
    }
    let anchors: Vec<X509Certificate<'_>> = anchors.iter().filter_map(|a| parse(a)).collect();
    let mut candidates: Vec<Option<(usize, X509Certificate<'_>)>> = rest
        .iter()
        .take(MAX_CANDIDATES)
        .enumerate()
        .map(|(i, der)| parse(der).map(|c| (i + 1, c)))
        .collect();
    let signed_by = |child: &X509Certificate<'_>, issuer: &X509Certificate<'_>| {
        child.issuer() == issuer.subject()
            && child.verify_signature(Some(issuer.public_key())).is_ok()
    };
    let mut current = parse(leaf)?;
    let mut path = Vec::new();
    while !anchors.iter().any(|a| signed_by(&current, a)) {
        if path.len() == MAX_PATH {
            return None;
        }
        let next = candidates
            .iter_mut()
            .find(|c| {
                c.as_ref()
                    .is_some_and(|(_, cert)| signed_by(&current, cert))
            })
            .and_then(Option::take)?;
        let info = CertInfo::parse(&rest[next.0 - 1]).ok()?;
        path.push((next.0, info));
        current = next.1;
    }
    Some(path)
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
            writeln!(f, "    SHA-256: {}", c.fingerprint())?;
        }
        Ok(())
    }
}
