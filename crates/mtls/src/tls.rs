//! The only rustls configuration code: one builder for each side, one crypto provider.
//!
//! The server *requires* a client certificate that chains to its CA; the client verifies
//! the server against its CA and the host it dialed. Both speak TLS 1.2 and 1.3 only, with
//! aws-lc-rs's cipher suites, all of which are AEAD with ephemeral (forward-secret) keys.
//! Both honour `SSLKEYLOGFILE` (see [`trace::key_log`]), so a capture can be decrypted.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
    SupportedProtocolVersion,
};

use crate::error::{Error, Result};
use crate::pem;
use crate::tickets::TicketKeys;
use crate::trace::{self, Secrets};

/// ALPN protocols both sides offer, most preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The crypto provider of the whole build: aws-lc-rs.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The lowest TLS version a side accepts. TLS 1.0 and 1.1 are never offered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MinVersion {
    /// TLS 1.2 and 1.3 (the default).
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl MinVersion {
    fn versions(self) -> &'static [&'static SupportedProtocolVersion] {
        static BOTH: [&SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static ONLY_13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            MinVersion::Tls12 => &BOTH,
            MinVersion::Tls13 => &ONLY_13,
        }
    }
}

impl std::str::FromStr for MinVersion {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s
            .trim()
            .trim_start_matches("TLSv")
            .trim_start_matches("tls")
        {
            "1.2" => Ok(MinVersion::Tls12),
            "1.3" => Ok(MinVersion::Tls13),
            other => Err(format!(
                "unsupported TLS version {other:?}: choose 1.2 or 1.3 (1.0 and 1.1 are broken and never allowed)"
            )),
        }
    }
}

/// How many times [`Identity::load`] reads a pair again that does not match.
const RENEWAL_RETRIES: u32 = 3;

/// A certificate chain and the private key that goes with its first certificate.
#[derive(Clone)]
pub struct Identity {
    /// The leaf, then any intermediates, as loaded.
    pub chain: Vec<CertificateDer<'static>>,
    key: Arc<CertifiedKey>,
    /// Where the chain came from.
    pub cert_path: PathBuf,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("Identity")
            .field("cert_path", &self.cert_path)
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Loads `cert` and `key`, and checks that the key belongs to the certificate.
    ///
    /// `owner` names them in errors: "the server", "Client A".
    ///
    /// A renewal replaces the key and the certificate one after the other: a load that
    /// falls between the two renames sees a key that does not match, so a mismatch is read
    /// again (a few times, a few milliseconds apart) before it counts.
    pub fn load(cert: &Path, key: &Path, owner: &str) -> Result<Self> {
        let mut tries = 0;
        loop {
            let chain = pem::certificates(cert, &format!("{owner}'s certificate"))?;
            let der = pem::private_key(key, &format!("{owner}'s private key"))?;
            match Self::from_der(chain, der, cert, key) {
                Err(Error::KeyMismatch { .. }) if tries < RENEWAL_RETRIES => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// A chain and key already read from `cert` and `key` (the paths name them in errors);
    /// checks that the key belongs to the first certificate.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        der: PrivateKeyDer<'static>,
        cert: &Path,
        key: &Path,
    ) -> Result<Self> {
        let certified =
            CertifiedKey::from_der(chain.clone(), der, &provider()).map_err(|e| match e {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    Error::KeyMismatch {
                        cert: cert.to_path_buf(),
                        key: key.to_path_buf(),
                    }
                }
                other => Error::UnusableKey {
                    path: key.to_path_buf(),
                    detail: other.to_string(),
                },
            })?;
        Ok(Self {
            chain,
            key: Arc::new(certified),
            cert_path: cert.to_path_buf(),
        })
    }
}

/// The CA certificates a side trusts, and where they came from.
#[derive(Clone, Debug)]
pub struct Trust {
    /// The trust anchors.
    pub roots: Arc<RootCertStore>,
    /// The CA file.
    pub path: PathBuf,
}

impl Trust {
    /// Loads every certificate in `path` as a trust anchor. One that cannot be used is an
    /// error, never silently skipped.
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_certs(pem::certificates(path, "the CA certificate")?, path)
    }

    /// Certificates already read from `path`, each a trust anchor.
    pub fn from_certs(certs: Vec<CertificateDer<'static>>, path: &Path) -> Result<Self> {
        let mut roots = RootCertStore::empty();
        for (i, cert) in certs.into_iter().enumerate() {
            roots.add(cert).map_err(|e| Error::BadTrustAnchor {
                path: path.to_path_buf(),
                detail: format!("certificate #{}: {e}", i + 1),
            })?;
        }
        Ok(Self {
            roots: Arc::new(roots),
            path: path.to_path_buf(),
        })
    }
}

/// Server-side TLS policy.
#[derive(Clone, Debug)]
pub struct ServerPolicy {
    /// Lowest TLS version accepted.
    pub min_version: MinVersion,
    /// Session resumption (tickets and a session cache).
    pub resumption: bool,
    /// Session tickets from the keys in this file, shared by a fleet, instead of a random
    /// key of this process's own ([`crate::tickets`]).
    pub ticket_keys: Option<PathBuf>,
}

impl Default for ServerPolicy {
    fn default() -> Self {
        Self {
            min_version: MinVersion::Tls12,
            resumption: true,
            ticket_keys: None,
        }
    }
}

/// Sessions the server remembers for resumption by session ID.
const SESSION_CACHE_SIZE: usize = 1024;

/// A server config and the client verifier inside it.
///
/// rustls verifies a client's chain in full handshakes only: a resumed session carries the
/// chain of the handshake it resumes, unverified since. The server verifies such a chain
/// again with `verifier` (and the chains of open connections after a reload, with the new
/// one): the same checks, the same CA, the same CRLs, at a later time. The verifier
/// remembers the chains it passed while they stay valid ([`crate::verdicts`]), so an
/// unchanged chain costs its signature checks once per CA and CRL set.
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// The config for new handshakes.
    pub config: Arc<ServerConfig>,
    /// The client verifier `config` uses.
    pub verifier: Arc<dyn ClientCertVerifier>,
    /// The secrets of its handshakes, filed by client random while debug logging is on, so
    /// each connection's trace can decrypt its TLS 1.3 records.
    pub secrets: Arc<Secrets>,
}

impl ServerTls {
    /// Verifies a client's chain (leaf first) now, exactly as a full handshake would.
    pub fn verify_client(
        &self,
        chain: &[CertificateDer<'_>],
    ) -> std::result::Result<(), rustls::Error> {
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or(rustls::Error::NoCertificatesPresented)?;
        self.verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
    }
}

/// Builds the server's config and the verifier inside it: present `identity`, require a client certificate that chains
/// to `trust` and is not revoked. With CRLs, every certificate of the client's chain is
/// checked against the list of the CA that issued it, so the lists of all those CAs must be
/// among `crls` (`certificate revoke` writes one per CA), and a list past its next update
/// makes the check fail rather than pass. With resumption on, tickets are made with
/// `tickets` (the keys a fleet shares) when given, else with a random key of this config's
/// own.
pub fn server_tls(
    identity: &Identity,
    trust: &Trust,
    crls: Vec<CertificateRevocationListDer<'static>>,
    policy: &ServerPolicy,
    tickets: Option<&TicketKeys>,
) -> Result<ServerTls> {
    let verifier: Arc<dyn ClientCertVerifier> = Arc::new(crate::verdicts::Remembering::new(
        client_verifier(trust, crls.clone())?,
        &crls,
    ));
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(policy.min_version.versions())
        .map_err(|e| Error::Config(e.to_string()))?
        .with_client_cert_verifier(verifier.clone())
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(identity.key.clone())));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    let secrets = Secrets::for_debug_log();
    config.key_log = trace::key_log(Some(secrets.clone()));
    if policy.resumption {
        // One ticket per handshake, as Go sends: each costs an encryption of the session
        // (the client's chain included), and a client resumes with one at a time.
        config.send_tls13_tickets = 1;
        config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
        config.ticketer = match tickets {
            Some(keys) => keys.ticketer()?,
            None => rustls::crypto::aws_lc_rs::Ticketer::new()
                .map_err(|e| Error::Config(format!("session tickets: {e}")))?,
        };
    } else {
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(ServerTls {
        config: Arc::new(config),
        verifier,
        secrets,
    })
}

/// The server's judge of client certificates: chains to `trust`, EKU clientAuth (when the
/// leaf restricts it), and with CRLs the server's revocation rules ([`revocation_options`]
/// says them once more for code that calls webpki itself).
pub fn client_verifier(
    trust: &Trust,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<Arc<dyn ClientCertVerifier>> {
    let mut verifier = WebPkiClientVerifier::builder_with_provider(trust.roots.clone(), provider());
    if !crls.is_empty() {
        // The defaults are the rest of the rules: every certificate of the chain is checked
        // (not only the leaf), and a certificate no list covers is refused.
        verifier = verifier.with_crls(crls).enforce_revocation_expiration();
    }
    verifier
        .build()
        .map_err(|e| Error::Config(format!("client verifier: {e}")))
}

/// The client's judge of server certificates: chains to `trust`, EKU serverAuth (when the
/// leaf restricts it), names the host dialed; with CRLs, the server's revocation rules.
pub fn server_verifier(
    trust: &Trust,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<Arc<WebPkiServerVerifier>> {
    let mut verifier = WebPkiServerVerifier::builder_with_provider(trust.roots.clone(), provider());
    if !crls.is_empty() {
        verifier = verifier.with_crls(crls).enforce_revocation_expiration();
    }
    verifier
        .build()
        .map_err(|e| Error::Config(format!("server verifier: {e}")))
}

/// The signature algorithms both verifiers accept in a certificate chain: aws-lc-rs's, as
/// rustls hands them to webpki.
pub fn signature_algorithms()
-> &'static [&'static dyn rustls::pki_types::SignatureVerificationAlgorithm] {
    provider().signature_verification_algorithms.all
}

/// CRLs parsed the way rustls parses them for its verifiers; the error is webpki's.
pub fn parse_crls(
    crls: &[CertificateRevocationListDer<'_>],
) -> std::result::Result<Vec<webpki::CertRevocationList<'static>>, webpki::Error> {
    crls.iter()
        .map(|der| webpki::OwnedCertRevocationList::from_der(der.as_ref()).map(Into::into))
        .collect()
}

/// The revocation rules of [`client_verifier`] and [`server_verifier`], for code that calls
/// webpki itself (`certificate verify`): every certificate of the path is checked against
/// the list of the CA that issued it, a certificate no list covers is refused, and a list
/// past its next update fails the check. `None` without lists: no revocation checking.
pub fn revocation_options<'a>(
    crls: &'a [&'a webpki::CertRevocationList<'a>],
) -> Option<webpki::RevocationOptions<'a>> {
    webpki::RevocationOptionsBuilder::new(crls).ok().map(|b| {
        b.with_depth(webpki::RevocationCheckDepth::Chain)
            .with_status_policy(webpki::UnknownStatusPolicy::Deny)
            .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
            .build()
    })
}

/// What the client observed of the server during a handshake: the chain it presented (kept
/// so a failed verification can be explained with the certificate's own names and issuer),
/// and whether it asked for our certificate.
#[derive(Clone, Debug, Default)]
pub struct SeenChain {
    chain: Arc<Mutex<Vec<CertificateDer<'static>>>>,
    asked: Arc<AtomicBool>,
    sent: Arc<AtomicBool>,
    ca_names: Arc<Mutex<Vec<String>>>,
}

impl SeenChain {
    /// The chain seen in the last handshake (leaf first); empty before one.
    pub fn get(&self) -> Vec<CertificateDer<'static>> {
        self.chain.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The server sent a CertificateRequest (whether or not we had a certificate for it).
    pub fn asked(&self) -> bool {
        self.asked.load(Ordering::Relaxed)
    }

    /// The CA names the server's CertificateRequest listed (the CAs whose certificates it
    /// accepts), as distinguished names; empty when it named none or did not ask.
    pub fn ca_names(&self) -> Vec<String> {
        self.ca_names.lock().map(|n| n.clone()).unwrap_or_default()
    }

    /// The server asked for a certificate and we answered with ours.
    pub fn presented(&self) -> bool {
        self.sent.load(Ordering::Relaxed)
    }

    /// `cx` with what this handshake showed: whether the server asked for our certificate,
    /// and whether we sent one.
    pub fn told(&self, cx: &crate::explain::Context) -> crate::explain::Context {
        crate::explain::Context {
            asked: Some(self.asked()),
            sent: Some(self.presented()),
            ..cx.clone()
        }
    }

    fn set(&self, end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) {
        if let Ok(mut slot) = self.chain.lock() {
            *slot = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
        }
    }
}

/// Our certificate (if we have one), handed to rustls only when the server asks for one;
/// notes that it asked, and whether we answered with a certificate.
#[derive(Debug)]
struct Presenting {
    inner: Option<SingleCertAndKey>,
    seen: SeenChain,
}

impl rustls::client::ResolvesClientCert for Presenting {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.seen.asked.store(true, Ordering::Relaxed);
        if let Ok(mut names) = self.seen.ca_names.lock() {
            *names = root_hint_subjects.iter().map(|dn| dn_text(dn)).collect();
        }
        let chosen = self
            .inner
            .as_ref()
            .and_then(|inner| inner.resolve(root_hint_subjects, sigschemes));
        self.seen.sent.store(chosen.is_some(), Ordering::Relaxed);
        chosen
    }

    fn has_certs(&self) -> bool {
        self.inner.is_some()
    }
}

/// A distinguished name as a CertificateRequest carries it (DER), in words; hex when it
/// does not parse.
fn dn_text(der: &[u8]) -> String {
    use x509_parser::prelude::{FromDer, X509Name};
    match X509Name::from_der(der) {
        Ok((_, name)) => name.to_string(),
        Err(_) => format!(
            "(a name that does not parse: {})",
            crate::format::hex(der, "")
        ),
    }
}

/// Client-side choices a learner may want to pin, to watch how the protocol changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientPolicy {
    /// Offer only this TLS version (`None`: 1.3 and 1.2).
    pub only_version: Option<TlsVersion>,
    /// Offer only HTTP/1.1 in ALPN (default: h2, then http/1.1).
    pub http1_only: bool,
}

/// A TLS version this project speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl std::str::FromStr for TlsVersion {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.parse::<MinVersion>()? {
            MinVersion::Tls12 => Ok(TlsVersion::Tls12),
            MinVersion::Tls13 => Ok(TlsVersion::Tls13),
        }
    }
}

/// Builds the client's config: verify the server against `trust` (and the host dialed),
/// present `identity` when given. `seen` receives the server's chain; `secrets`, when given,
/// the handshake's secrets (for a trace).
pub fn client_config(
    identity: Option<&Identity>,
    trust: &Trust,
    seen: SeenChain,
    policy: ClientPolicy,
    secrets: Option<Arc<Secrets>>,
) -> Result<Arc<ClientConfig>> {
    static ONLY_12: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    let versions = match policy.only_version {
        None => MinVersion::Tls12.versions(),
        Some(TlsVersion::Tls13) => MinVersion::Tls13.versions(),
        Some(TlsVersion::Tls12) => &ONLY_12,
    };
    let provider = provider();
    let verifier = Arc::new(RecordingVerifier {
        judge: Some(server_verifier(trust, Vec::new())?),
        supported: provider.signature_verification_algorithms,
        seen: seen.clone(),
    });
    // `dangerous()` is only the door to install our own verifier: it records the chain and
    // then delegates every decision to webpki, unchanged.
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| Error::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    // Without a certificate of ours too: the resolver notes that the server asked.
    let mut config = builder.with_client_cert_resolver(Arc::new(Presenting {
        inner: identity.map(|id| SingleCertAndKey::from(id.key.clone())),
        seen,
    }));
    let alpn: &[&[u8]] = if policy.http1_only { &ALPN[1..] } else { &ALPN };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.key_log = trace::key_log(secrets);
    Ok(Arc::new(config))
}

/// Sessions a resuming client config remembers ([`with_resumption`]).
const CLIENT_SESSIONS: usize = 64;

/// A copy of `config` that resumes sessions with a store of its own (`resume`), or never
/// resumes, so every handshake is a full one. `client bench` compares the two; the
/// configs [`client_config`] builds share one store between their copies.
pub fn with_resumption(config: &ClientConfig, resume: bool) -> Arc<ClientConfig> {
    let mut config = config.clone();
    config.resumption = match resume {
        true => rustls::client::Resumption::in_memory_sessions(CLIENT_SESSIONS),
        false => rustls::client::Resumption::disabled(),
    };
    Arc::new(config)
}

/// A client config that only looks: it records the server's chain and then refuses it, so
/// nothing is ever trusted or sent. `certificate inspect https://...` uses it to show what a
/// server presents, whoever issued it.
pub fn probe_config(seen: SeenChain) -> Result<Arc<ClientConfig>> {
    let provider = provider();
    let verifier = Arc::new(RecordingVerifier {
        judge: None,
        supported: provider.signature_verification_algorithms,
        seen,
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(MinVersion::Tls12.versions())
        .map_err(|e| Error::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.key_log = trace::key_log(None);
    Ok(Arc::new(config))
}

/// Records the presented chain, then lets webpki decide exactly as the default would
/// (`judge`), or, with no judge, refuses it: the opposite of trusting it. Handshake
/// signatures are checked as webpki's verifier checks them.
#[derive(Debug)]
struct RecordingVerifier {
    judge: Option<Arc<WebPkiServerVerifier>>,
    supported: rustls::crypto::WebPkiSupportedAlgorithms,
    seen: SeenChain,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.seen.set(end_entity, intermediates);
        match &self.judge {
            Some(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            None => Err(rustls::Error::General(
                "chain recorded for inspection; not trusted".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.supported)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.supported)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.supported.supported_schemes()
    }
}

/// The TLS version as people write it: `TLSv1.3`.
pub fn version_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        other => format!("{other:?}"),
    }
}

/// Verifies `chain` (leaf first) against `trust` exactly as a handshake would: as a server
/// certificate for `host`, or as a client certificate. Used to check what we mint.
pub fn verify_leaf(
    trust: &Trust,
    chain: &[CertificateDer<'static>],
    usage: crate::pki::Usage,
    host: &str,
) -> std::result::Result<(), crate::error::Failure> {
    use crate::error::Failure;
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err(Failure::Other("no certificate to verify".into()));
    };
    let now = UnixTime::now();
    let result = match usage {
        crate::pki::Usage::Server | crate::pki::Usage::Both => {
            let name = ServerName::try_from(host.to_string())
                .map_err(|_| Failure::Other(format!("{host:?} is not a host name")))?;
            server_verifier(trust, Vec::new())
                .map_err(|e| Failure::Other(e.to_string()))?
                .verify_server_cert(leaf, intermediates, &name, &[], now)
                .map(|_| ())
        }
        crate::pki::Usage::Client => client_verifier(trust, Vec::new())
            .map_err(|e| Failure::Other(e.to_string()))?
            .verify_client_cert(leaf, intermediates, now)
            .map(|_| ()),
    };
    result.map_err(|e| Failure::from_rustls(&e))
}

/// Whether the leaf certificate names `host` (a DNS name or an IP address) among its SANs,
/// judged the way webpki judges it during a handshake.
pub fn names_host(leaf: &CertificateDer<'_>, host: &str) -> bool {
    let Ok(name) = ServerName::try_from(host.to_string()) else {
        return false;
    };
    webpki::EndEntityCert::try_from(leaf)
        .and_then(|ee| ee.verify_is_valid_for_subject_name(&name))
        .is_ok()
}
