//! The server's verdicts on client chains, remembered.
//!
//! Verifying a client's chain costs a signature check per certificate (ECDSA P-256: about
//! as much as the handshake's own signature). Yet the verdict depends only on the exact
//! bytes of the chain, on the CA and CRLs the verifier was built with, and on the time:
//! the same chain, under the same verifier, passes at any moment inside every one of its
//! certificates' validity and before the next update of every CRL. So a chain that passed
//! once is passed again, without the signature checks, inside that window.
//!
//! What is not remembered: a refusal (every refused chain is checked in full, every time);
//! the handshake's CertificateVerify, the client's proof that it holds the key, which
//! rustls checks on every full handshake; anything across a reload (a new CA or CRL builds
//! a new verifier with an empty memory). The memory is bounded ([`CAPACITY`] chains, the
//! least recently used forgotten first) and holds only chains that verified, so a stranger
//! cannot fill it.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;
use lru::LruCache;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::revocation::CrlInfo;

/// How many verified chains are remembered at most (the least recently used go first).
pub const CAPACITY: NonZeroUsize = NonZeroUsize::new(4096).expect("not zero");

/// SHA-256 of a chain, each certificate length-prefixed so no two chains share a key.
pub type ChainKey = [u8; 32];

/// The seconds (Unix time) during which a remembered verdict holds: from the latest
/// notBefore to the earliest notAfter of the chain and nextUpdate of the CRLs, both ends
/// included, as webpki compares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    from: u64,
    until: u64,
}

impl Window {
    fn holds(&self, now: u64) -> bool {
        self.from <= now && now <= self.until
    }
}

/// A client verifier that remembers the chains it passed (see the module's documentation).
#[derive(Debug)]
pub struct Remembering {
    inner: Arc<dyn ClientCertVerifier>,
    /// The earliest nextUpdate of the verifier's CRLs: no verdict outlives it.
    crls_until: Option<u64>,
    memory: Mutex<LruCache<ChainKey, Window>>,
}

impl Remembering {
    /// Wraps `inner`, built with `crls`; a CRL without nextUpdate sets no bound.
    pub fn new(
        inner: Arc<dyn ClientCertVerifier>,
        crls: &[CertificateRevocationListDer<'_>],
    ) -> Self {
        let crls_until = crls
            .iter()
            .filter_map(|der| CrlInfo::parse(der.as_ref()).ok()?.next_update)
            .map(|t| t.unix_timestamp().max(0) as u64)
            .min();
        Self {
            inner,
            crls_until,
            memory: Mutex::new(LruCache::new(CAPACITY)),
        }
    }

    /// How many verdicts are remembered now.
    pub fn remembered(&self) -> usize {
        self.memory.lock().map(|m| m.len()).unwrap_or(0)
    }

    fn recall(&self, key: &ChainKey, now: u64) -> bool {
        self.memory
            .lock()
            .ok()
            .and_then(|mut m| m.get(key).copied())
            .is_some_and(|w| w.holds(now))
    }

    fn remember(&self, key: ChainKey, window: Window) {
        if let Ok(mut memory) = self.memory.lock() {
            memory.put(key, window);
        }
    }

    /// The window of a chain that verified, or `None` when a certificate cannot be read
    /// (then nothing is remembered).
    fn window(&self, chain: &[&CertificateDer<'_>]) -> Option<Window> {
        let mut window = Window {
            from: 0,
            until: self.crls_until.unwrap_or(u64::MAX),
        };
        for der in chain {
            let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
            let validity = cert.validity();
            let from = u64::try_from(validity.not_before.timestamp()).unwrap_or(0);
            let until = u64::try_from(validity.not_after.timestamp()).ok()?;
            window.from = window.from.max(from);
            window.until = window.until.min(until);
        }
        Some(window)
    }
}

/// The key of a chain (its certificates' DER, leaf first) in a memory of chains.
pub fn chain_key<'a>(chain: impl IntoIterator<Item = &'a [u8]>) -> ChainKey {
    let mut hash = digest::Context::new(&digest::SHA256);
    for der in chain {
        hash.update(&(der.len() as u64).to_be_bytes());
        hash.update(der);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(hash.finish().as_ref());
    key
}

impl ClientCertVerifier for Remembering {
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let chain: Vec<&CertificateDer<'_>> =
            std::iter::once(end_entity).chain(intermediates).collect();
        let key = chain_key(chain.iter().map(|c| c.as_ref()));
        let seconds = now.as_secs();
        if self.recall(&key, seconds) {
            return Ok(ClientCertVerified::assertion());
        }
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if let Some(window) = self.window(&chain).filter(|w| w.holds(seconds)) {
            self.remember(key, window);
        }
        Ok(verified)
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::pki::{CertAuthority, KeyType, LeafSpec, Usage, Validity, demo_subject};

    /// A CA and a client certificate it issued, DER.
    fn chain() -> (CertificateDer<'static>, CertificateDer<'static>) {
        let ca = CertAuthority::new_root(
            demo_subject("CA Company", "CA"),
            KeyType::EcdsaP256,
            Validity::days(2),
        )
        .expect("ca");
        let leaf = ca
            .issue(&LeafSpec {
                subject: demo_subject("Co", "Client A"),
                sans: Vec::new(),
                usage: Usage::Client,
                key_type: KeyType::EcdsaP256,
                validity: Validity::days(1),
            })
            .expect("leaf");
        (leaf.der, ca.der)
    }

    /// Counts the chains it is asked about; passes or refuses all.
    #[derive(Debug)]
    struct Counting {
        asked: AtomicUsize,
        pass: bool,
    }

    impl ClientCertVerifier for Counting {
        fn verify_client_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: UnixTime,
        ) -> Result<ClientCertVerified, rustls::Error> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            match self.pass {
                true => Ok(ClientCertVerified::assertion()),
                false => Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer,
                )),
            }
        }
        fn root_hint_subjects(&self) -> &[DistinguishedName] {
            &[]
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Err(rustls::Error::General("not used".into()))
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Err(rustls::Error::General("not used".into()))
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            Vec::new()
        }
    }

    fn counting(pass: bool) -> (Arc<Counting>, Remembering) {
        let inner = Arc::new(Counting {
            asked: AtomicUsize::new(0),
            pass,
        });
        (inner.clone(), Remembering::new(inner, &[]))
    }

    fn at(t: time::OffsetDateTime) -> UnixTime {
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(t.unix_timestamp() as u64))
    }

    #[test]
    fn a_verified_chain_is_checked_once_inside_its_window_and_again_outside_it() {
        let (leaf, ca) = chain();
        let info = crate::certinfo::CertInfo::parse(&leaf).expect("parse");
        let (inner, verifier) = counting(true);
        let now = at(info.not_before + time::Duration::hours(1));
        for _ in 0..3 {
            verifier
                .verify_client_cert(&leaf, &[], now)
                .expect("passes");
        }
        assert_eq!(inner.asked.load(Ordering::SeqCst), 1);
        // After the certificate's notAfter the memory does not answer.
        let late = at(info.not_after + time::Duration::seconds(1));
        verifier
            .verify_client_cert(&leaf, &[], late)
            .expect("passes");
        assert_eq!(inner.asked.load(Ordering::SeqCst), 2);
        // Another chain (the same leaf with an intermediate) is another verdict.
        verifier
            .verify_client_cert(&leaf, &[ca], now)
            .expect("passes");
        assert_eq!(inner.asked.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_refusal_is_never_remembered() {
        let (leaf, _) = chain();
        let (inner, verifier) = counting(false);
        for _ in 0..3 {
            let err = verifier
                .verify_client_cert(&leaf, &[], UnixTime::now())
                .expect_err("refused");
            assert!(matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
            ));
        }
        assert_eq!(inner.asked.load(Ordering::SeqCst), 3);
        assert_eq!(verifier.remembered(), 0);
    }

    #[test]
    fn the_memory_is_bounded() {
        let verifier = counting(true).1;
        for i in 0..(CAPACITY.get() + 10) {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_be_bytes());
            verifier.remember(key, Window { from: 0, until: 10 });
        }
        assert_eq!(verifier.remembered(), CAPACITY.get());
        assert!(
            !verifier.recall(&[0u8; 32], 5),
            "the least recently used was forgotten"
        );
    }

    #[test]
    fn no_verdict_outlives_the_next_update_of_a_crl() {
        let verifier = Remembering {
            crls_until: Some(100),
            ..counting(true).1
        };
        let (leaf, _) = chain();
        let window = verifier.window(&[&leaf]).expect("readable");
        assert_eq!(window.until, 100);
    }
}
