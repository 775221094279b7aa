//! The certificates the audit presents, minted in memory for one run and never written:
//! each is a known-good client changed in exactly one way.
//!
//! When a good client is given, every certificate copies its subject and SANs, so a server
//! that authorizes by identity cannot refuse them for their name: only the one thing that
//! is wrong is tested. The one exception is the identity nobody configured, which exists to
//! test authorization.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;
use time::Duration;

use crate::certinfo::CertInfo;
use crate::error::{Error, Result};
use crate::format::{hex, now};
use crate::pem;
use crate::pki::{self, CertAuthority, Issued, KeyType, LeafSpec, SanType, Usage, Validity};
use crate::tls::Identity;

/// How long what the audit mints lives: long enough for one run.
const LIFETIME: Duration = Duration::hours(1);

/// A certificate to present, and how the report describes it.
pub(crate) struct Minted {
    /// The chain and key, in memory.
    pub identity: Identity,
    /// The leaf, parsed.
    pub leaf: CertInfo,
}

impl Minted {
    fn from_issued(issued: &Issued, what: &str) -> Result<Self> {
        let path = PathBuf::from(format!("(the {what} the audit minted)"));
        let key = pem::private_key_in(issued.key_pem.as_bytes(), &path, what)?;
        let identity = Identity::from_der(issued.chain.clone(), key, &path, &path)?;
        let leaf = CertInfo::parse(&issued.der).map_err(Error::Invalid)?;
        Ok(Self { identity, leaf })
    }

    /// `CN=..., URI:... (issued by CN=...)`: enough to find it in a server's log.
    pub fn describe(&self) -> String {
        describe(&self.leaf)
    }
}

/// A certificate in one line: its identity, and who issued it.
pub(crate) fn describe(leaf: &CertInfo) -> String {
    let issuer = match leaf.self_signed {
        true => "self-signed".to_string(),
        false => format!("issued by {}", leaf.issuer),
    };
    format!("{} ({issuer})", leaf.identity())
}

/// The names the minted certificates carry: the good client's, or the audit's own.
#[derive(Clone)]
pub(crate) struct Names {
    subject: DistinguishedName,
    sans: Vec<SanType>,
}

impl Names {
    /// The good client's subject and SANs, so only the one wrong thing differs.
    pub fn copied_from(leaf: &CertificateDer<'_>) -> Result<Self> {
        let info = CertInfo::parse(leaf).map_err(Error::Invalid)?;
        Ok(Self {
            subject: pki::subject_of(leaf)?,
            sans: info.sans.iter().map(pki::san_type).collect::<Result<_>>()?,
        })
    }

    /// A fresh identity nobody can have configured: `CN=mtls-audit <what> <random>` with
    /// the URI SAN `spiffe://mtls-audit.invalid/<what>/<random>` (`.invalid` is reserved,
    /// RFC 2606, so no real trust domain is ever named so).
    pub fn fresh(what: &str) -> Result<Self> {
        let mut bytes = [0u8; 4];
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| Error::Invalid("the system random number generator failed".into()))?;
        let tag = hex(&bytes, "").to_ascii_lowercase();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::OrganizationName, "mtls audit");
        subject.push(DnType::CommonName, format!("mtls-audit {what} {tag}"));
        let uri = format!("spiffe://mtls-audit.invalid/{what}/{tag}");
        Ok(Self {
            subject,
            sans: vec![pki::parse_san(&format!("URI:{uri}"))?],
        })
    }

    fn leaf(&self, usage: Usage, validity: Validity) -> LeafSpec {
        LeafSpec {
            subject: self.subject.clone(),
            sans: self.sans.clone(),
            usage,
            key_type: KeyType::EcdsaP256,
            validity,
        }
    }
}

/// A certificate that signs itself, with the profile of a client leaf otherwise.
pub(crate) fn self_signed(names: &Names) -> Result<Minted> {
    let key = KeyType::EcdsaP256.generate()?;
    let validity = Validity::starting_now(LIFETIME);
    let mut params = CertificateParams::default();
    params.distinguished_name = names.subject.clone();
    params.subject_alt_names = names.sans.clone();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.serial_number = Some(pki::random_serial()?);
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    let cert = params.self_signed(&key).map_err(|source| Error::Mint {
        what: "a self-signed certificate".into(),
        source,
    })?;
    let issued = Issued {
        der: cert.der().clone(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        validity,
        chain: vec![cert.der().clone()],
    };
    Minted::from_issued(&issued, "self-signed certificate")
}

/// A client certificate from a root CA made for this run, named `subject`: a foreign CA,
/// or (with the trusted CA's own name) a forged one.
pub(crate) fn from_new_ca(subject: DistinguishedName, names: &Names) -> Result<Minted> {
    let ca = CertAuthority::new_root(
        subject,
        KeyType::EcdsaP256,
        Validity::starting_now(LIFETIME),
    )?;
    let issued = ca.issue(&names.leaf(Usage::Client, Validity::starting_now(LIFETIME)))?;
    Minted::from_issued(&issued, "certificate")
}

/// The name of a foreign CA: one the server has never heard of.
pub(crate) fn foreign_ca_name() -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "mtls audit");
    dn.push(DnType::CommonName, "mtls-audit foreign CA");
    dn
}

/// What is wrong with a certificate the trusted CA issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flaw {
    /// Nothing: a valid client certificate.
    None,
    /// Its validity ended a minute ago.
    Expired,
    /// Its validity starts tomorrow.
    NotYetValid,
    /// EKU serverAuth only.
    ServerAuthOnly,
    /// basicConstraints CA:TRUE (with keyCertSign), presented as the client's own.
    CaTrue,
    /// EKU emailProtection only (an S/MIME certificate from the same CA).
    NoClientAuth,
}

/// A certificate from the trusted CA (`issuer`), with `flaw`.
pub(crate) fn from_issuer(issuer: &CertAuthority, names: &Names, flaw: Flaw) -> Result<Minted> {
    let now = now();
    let validity = match flaw {
        // Ending a minute ago and starting as early as the CA allows (up to a day back):
        // `within` keeps it inside the CA's life, and says so when the CA is too new.
        Flaw::Expired => Validity {
            not_before: now - Duration::days(1),
            not_after: now - Duration::minutes(1),
        },
        Flaw::NotYetValid => Validity {
            not_before: now + Duration::days(1),
            not_after: now + Duration::days(2),
        },
        _ => Validity::starting_now(LIFETIME),
    };
    let usage = match flaw {
        Flaw::ServerAuthOnly => Usage::Server,
        _ => Usage::Client,
    };
    let issued = issuer.issue_with(&names.leaf(usage, validity), |params| match flaw {
        Flaw::CaTrue => {
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign,
            ];
        }
        Flaw::NoClientAuth => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::EmailProtection];
        }
        _ => {}
    })?;
    Minted::from_issued(&issued, "certificate")
}
