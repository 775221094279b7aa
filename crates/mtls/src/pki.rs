//! Minting with rcgen: a root CA and leaf certificates with a proper X.509 profile.
//!
//! The profile, for every certificate this project makes:
//! - CA: basicConstraints CA:TRUE (critical), keyUsage keyCertSign + cRLSign, subject key id.
//! - Leaf: basicConstraints CA:FALSE, keyUsage digitalSignature (+ keyEncipherment for RSA),
//!   exactly one EKU (serverAuth or clientAuth), SANs, subject and authority key ids.
//! - Random 127-bit serials; validity never extends past the issuer's.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

/// A subject alternative name to put in a certificate (rcgen's type).
pub use rcgen::SanType;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use crate::certinfo::Eku;
use crate::error::{Error, Result};
use crate::format::format_time;
use crate::pem::{self, chain_pem};

/// The key algorithms `--key-type` offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256 (the default: small, fast, supported everywhere).
    #[default]
    EcdsaP256,
    /// ECDSA on P-384 with SHA-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
    /// RSA 2048 with SHA-256.
    Rsa2048,
    /// RSA 3072 with SHA-256.
    Rsa3072,
    /// RSA 4096 with SHA-256.
    Rsa4096,
}

impl KeyType {
    /// Every choice, as typed on the command line.
    pub const NAMES: [&'static str; 6] = [
        "ecdsa-p256",
        "ecdsa-p384",
        "ed25519",
        "rsa-2048",
        "rsa-3072",
        "rsa-4096",
    ];

    fn name(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => Self::NAMES[0],
            KeyType::EcdsaP384 => Self::NAMES[1],
            KeyType::Ed25519 => Self::NAMES[2],
            KeyType::Rsa2048 => Self::NAMES[3],
            KeyType::Rsa3072 => Self::NAMES[4],
            KeyType::Rsa4096 => Self::NAMES[5],
        }
    }

    /// The key type of a certificate, from [`CertInfo::key`](crate::certinfo::CertInfo).
    pub fn of_description(key: &str) -> Option<Self> {
        Some(match key {
            "ECDSA P-256" => KeyType::EcdsaP256,
            "ECDSA P-384" => KeyType::EcdsaP384,
            "Ed25519" => KeyType::Ed25519,
            "RSA 2048 bits" => KeyType::Rsa2048,
            "RSA 3072 bits" => KeyType::Rsa3072,
            "RSA 4096 bits" => KeyType::Rsa4096,
            _ => return None,
        })
    }

    fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096)
    }

    /// A fresh key pair of this type.
    pub fn generate(self) -> Result<KeyPair> {
        use rcgen::RsaKeySize;
        let made = match self {
            KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyType::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            KeyType::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
            KeyType::Rsa2048 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)
            }
            KeyType::Rsa3072 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072)
            }
            KeyType::Rsa4096 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096)
            }
        };
        made.map_err(|source| Error::Mint {
            what: format!("a {} key", self.name()),
            source,
        })
    }
}

impl FromStr for KeyType {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let all = [
            KeyType::EcdsaP256,
            KeyType::EcdsaP384,
            KeyType::Ed25519,
            KeyType::Rsa2048,
            KeyType::Rsa3072,
            KeyType::Rsa4096,
        ];
        all.into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown key type {s:?}: choose one of {}",
                    Self::NAMES.join(", ")
                )
            })
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a leaf certificate is for: its extended key usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// TLS server authentication (EKU serverAuth).
    Server,
    /// TLS client authentication (EKU clientAuth).
    Client,
    /// Both (EKU serverAuth and clientAuth), as some service meshes issue.
    Both,
}

impl Usage {
    /// The usage a certificate's extended key usages grant, if any of ours.
    pub fn of(ext_key_usage: &[Eku]) -> Option<Usage> {
        let has = |eku: Eku| ext_key_usage.contains(&eku);
        match (has(Eku::ServerAuth), has(Eku::ClientAuth)) {
            (true, true) => Some(Usage::Both),
            (true, false) => Some(Usage::Server),
            (false, true) => Some(Usage::Client),
            (false, false) => None,
        }
    }

    fn ekus(self) -> Vec<ExtendedKeyUsagePurpose> {
        match self {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::Both => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        }
    }
}

/// A validity window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Start.
    pub not_before: OffsetDateTime,
    /// End.
    pub not_after: OffsetDateTime,
}

/// Clock skew allowance: certificates start this long before "now".
pub const BACKDATE: Duration = Duration::minutes(5);

/// How far a certificate of `length` starts before "now": [`BACKDATE`], or a quarter of
/// its length when that is shorter, so a one-minute certificate is not mostly in the past.
fn backdate(length: Duration) -> Duration {
    BACKDATE.min(length / 4)
}

impl Validity {
    /// From a little before now (see [`BACKDATE`]), for `length`.
    pub fn starting_now(length: Duration) -> Self {
        let now = crate::format::now();
        Self {
            not_before: now - backdate(length),
            not_after: now + length,
        }
    }

    /// The window a certificate states.
    pub fn of(info: &crate::certinfo::CertInfo) -> Self {
        Self {
            not_before: info.not_before,
            not_after: info.not_after,
        }
    }

    /// `days` days from now.
    pub fn days(days: u32) -> Self {
        Self::starting_now(Duration::days(i64::from(days)))
    }

    /// `hours` hours from now.
    pub fn hours(hours: u32) -> Self {
        Self::starting_now(Duration::hours(i64::from(hours)))
    }

    /// `minutes` minutes from now (short-lived certificates, demos and tests).
    pub fn minutes(minutes: u32) -> Self {
        Self::starting_now(Duration::minutes(i64::from(minutes)))
    }

    /// The length this window was asked for with [`Validity::starting_now`]: its span
    /// without the backdate. Renewals keep it, and `renew --watch` counts the share of a
    /// lifetime from [`Validity::issued`].
    pub fn length(self) -> Duration {
        let span = self.not_after - self.not_before;
        // span = length + min(BACKDATE, length / 4): the backdate is BACKDATE exactly when
        // length >= 4 * BACKDATE, that is when span >= 5 * BACKDATE.
        if span >= BACKDATE * 5 {
            span - BACKDATE
        } else {
            span * 4 / 5
        }
    }

    /// When a window made by [`Validity::starting_now`] was made: its end minus its length.
    pub fn issued(self) -> OffsetDateTime {
        self.not_after - self.length()
    }

    /// This window cut to fit inside `outer` (a leaf never outlives its issuer); an error
    /// when nothing of it is left.
    pub fn within(self, outer: Validity) -> Result<Self> {
        let cut = Self {
            not_before: self.not_before.max(outer.not_before),
            not_after: self.not_after.min(outer.not_after),
        };
        if cut.not_before >= cut.not_after {
            return Err(Error::Invalid(format!(
                "the issuing CA is valid from {} to {}, and the requested validity ({} to {}) \
                 falls outside it; a certificate cannot outlive its issuer, so renew the CA first",
                format_time(outer.not_before),
                format_time(outer.not_after),
                format_time(self.not_before),
                format_time(self.not_after)
            )));
        }
        Ok(cut)
    }
}

/// The demo's distinguished name: C=Earth, ST=Asia, L=Mountain, O=`org`, OU=Engineering, CN=`cn`.
pub fn demo_subject(org: &str, cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "Earth");
    dn.push(DnType::StateOrProvinceName, "Asia");
    dn.push(DnType::LocalityName, "Mountain");
    dn.push(DnType::OrganizationName, org);
    dn.push(DnType::OrganizationalUnitName, "Engineering");
    dn.push(DnType::CommonName, cn);
    dn
}

/// Parses a `--san` value: `DNS:name`, `IP:addr`, `URI:uri`, or a bare value (an IP if it
/// parses as one, a URI if it has `://`, otherwise a DNS name).
pub fn parse_san(value: &str) -> Result<SanType> {
    let bad = |why: &'static str| Error::BadSan {
        value: value.to_string(),
        why,
    };
    let (kind, rest) = match value.split_once(':') {
        Some((k, r)) if ["dns", "ip", "uri"].contains(&k.to_ascii_lowercase().as_str()) => {
            (k.to_ascii_lowercase(), r)
        }
        _ if value.parse::<IpAddr>().is_ok() => ("ip".to_string(), value),
        _ if value.contains("://") => ("uri".to_string(), value),
        _ => ("dns".to_string(), value),
    };
    match kind.as_str() {
        "ip" => rest
            .parse::<IpAddr>()
            .map(SanType::IpAddress)
            .map_err(|_| bad("not an IP address")),
        "uri" => {
            if !rest.contains(':') {
                return Err(bad("a URI needs a scheme, e.g. spiffe://domain/path"));
            }
            rest.try_into()
                .map(SanType::URI)
                .map_err(|_| bad("not ASCII"))
        }
        _ => {
            let ok = !rest.is_empty()
                && rest.len() <= 253
                && rest.split('.').enumerate().all(|(i, label)| {
                    (i == 0 && label == "*")
                        || (!label.is_empty()
                            && label.len() <= 63
                            && !label.starts_with('-')
                            && !label.ends_with('-')
                            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
                });
            if !ok {
                return Err(bad(
                    "not a DNS name (letters, digits, '-' and '.', optionally starting with '*.')",
                ));
            }
            rest.try_into()
                .map(SanType::DnsName)
                .map_err(|_| bad("not ASCII"))
        }
    }
}

/// A freshly minted certificate and its key, ready to write.
pub struct Issued {
    /// The certificate, DER.
    pub der: CertificateDer<'static>,
    /// The certificate followed by its issuer's chain (no root), PEM: what `NAME.crt` holds.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The validity it got (cut to the issuer's).
    pub validity: Validity,
    /// The leaf, then its issuer's chain (no root): `cert_pem` as DER.
    pub chain: Vec<CertificateDer<'static>>,
}

/// What a leaf should say.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    /// Subject.
    pub subject: DistinguishedName,
    /// Subject alternative names.
    pub sans: Vec<SanType>,
    /// Server or client.
    pub usage: Usage,
    /// Key algorithm.
    pub key_type: KeyType,
    /// Requested validity (cut to the issuer's).
    pub validity: Validity,
}

/// A CA that can sign: its certificate (with the chain above it) and its key.
pub struct CertAuthority {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, DER.
    pub der: CertificateDer<'static>,
    /// The CA's own chain as its file holds it: its certificate, then any intermediates
    /// above it (never the self-signed root, unless this is the root).
    pub chain: Vec<CertificateDer<'static>>,
    /// The CA's file content: `chain` as PEM.
    pub cert_pem: String,
    /// The CA's validity; what it issues is cut to fit inside it.
    pub validity: Validity,
    /// A root (self-signed) rather than an intermediate.
    pub is_root: bool,
    /// How messages name it: its file, or "the new CA".
    pub label: String,
}

impl CertAuthority {
    /// Mints a self-signed root CA.
    pub fn new_root(
        subject: DistinguishedName,
        key_type: KeyType,
        validity: Validity,
    ) -> Result<Self> {
        let key = key_type.generate()?;
        let params = ca_params(subject, BasicConstraints::Unconstrained, validity)?;
        let cert = params.self_signed(&key).map_err(|source| Error::Mint {
            what: "the CA certificate".into(),
            source,
        })?;
        let der = cert.der().clone();
        Ok(Self {
            cert_pem: cert.pem(),
            chain: vec![der.clone()],
            der,
            issuer: Issuer::new(params, key),
            validity,
            is_root: true,
            label: "the new root CA".into(),
        })
    }

    /// Mints an intermediate CA signed by `parent`; it may sign leaves, not other CAs.
    pub fn new_intermediate(
        subject: DistinguishedName,
        key_type: KeyType,
        validity: Validity,
        parent: &CertAuthority,
    ) -> Result<Self> {
        let key = key_type.generate()?;
        parent.ensure_current()?;
        let validity = validity.within(parent.validity)?;
        let mut params = ca_params(subject, BasicConstraints::Constrained(0), validity)?;
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &parent.issuer)
            .map_err(|source| Error::Mint {
                what: "the intermediate CA certificate".into(),
                source,
            })?;
        let der = cert.der().clone();
        let chain: Vec<_> = std::iter::once(der.clone())
            .chain(parent.chain_above_leaf())
            .collect();
        Ok(Self {
            cert_pem: chain_pem(&chain),
            chain,
            der,
            issuer: Issuer::new(params, key),
            validity,
            is_root: false,
            label: "the new intermediate CA".into(),
        })
    }

    /// Loads an existing CA from its certificate file (its certificate first) and key file.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self> {
        let chain = pem::certificates(cert_path, "the CA certificate")?;
        let der = chain[0].clone();
        let key_der = pem::private_key(key_path, "the CA's private key")?;
        let key = KeyPair::try_from(&key_der)
            .map_err(|e| Error::malformed("the CA's private key", key_path, e.to_string()))?;
        let info = crate::certinfo::CertInfo::parse(&der)
            .map_err(|why| Error::malformed("the CA certificate", cert_path, why))?;
        if info.ca != Some(true) {
            return Err(Error::NotACa {
                path: cert_path.to_path_buf(),
                hint: String::new(),
            });
        }
        if info.spki != key.subject_public_key_info() {
            return Err(Error::KeyMismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            });
        }
        let issuer = Issuer::from_ca_cert_der(&der, key)
            .map_err(|e| Error::malformed("the CA certificate", cert_path, e.to_string()))?;
        Ok(Self {
            cert_pem: chain_pem(&chain),
            chain,
            der,
            issuer,
            validity: Validity {
                not_before: info.not_before,
                not_after: info.not_after,
            },
            is_root: info.self_signed,
            label: cert_path.display().to_string(),
        })
    }

    /// A CA signs only while it is valid itself.
    fn ensure_current(&self) -> Result<()> {
        let now = OffsetDateTime::now_utc();
        if now > self.validity.not_after || now < self.validity.not_before {
            let expired = now > self.validity.not_after;
            return Err(Error::IssuerNotCurrent {
                label: self.label.clone(),
                expired,
                at: if expired {
                    self.validity.not_after
                } else {
                    self.validity.not_before
                },
            });
        }
        Ok(())
    }

    /// The CA's private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// The issuer rcgen signs with (certificates and CRLs).
    pub fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// What a leaf's file carries after the leaf: this CA and the intermediates above it,
    /// but not the root, which the verifier already has.
    pub fn chain_above_leaf(&self) -> Vec<CertificateDer<'static>> {
        if self.is_root {
            Vec::new()
        } else {
            self.chain.clone()
        }
    }

    /// Issues a leaf certificate with a fresh key. Its PEM holds the leaf, then the chain.
    pub fn issue(&self, spec: &LeafSpec) -> Result<Issued> {
        self.issue_with(spec, |_| {})
    }

    /// Issues as [`CertAuthority::issue`] does, letting `change` alter the profile before
    /// it is signed: `client audit` mints certificates that are wrong in exactly one way
    /// (CA:TRUE, an EKU that is not clientAuth) from the standard one.
    pub fn issue_with(
        &self,
        spec: &LeafSpec,
        change: impl FnOnce(&mut CertificateParams),
    ) -> Result<Issued> {
        self.ensure_current()?;
        let key = spec.key_type.generate()?;
        let validity = spec.validity.within(self.validity)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = spec.subject.clone();
        params.subject_alt_names = spec.sans.clone();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if spec.key_type.is_rsa() {
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        params.extended_key_usages = spec.usage.ekus();
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        change(&mut params);
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| Error::Mint {
                what: "a leaf certificate".into(),
                source,
            })?;
        let chain: Vec<_> = std::iter::once(cert.der().clone())
            .chain(self.chain_above_leaf())
            .collect();
        Ok(Issued {
            der: cert.der().clone(),
            cert_pem: chain_pem(&chain),
            key_pem: key.serialize_pem(),
            validity,
            chain,
        })
    }
}

fn ca_params(
    subject: DistinguishedName,
    constraints: BasicConstraints,
    validity: Validity,
) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(random_serial()?);
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    Ok(params)
}

/// The subject of a DER certificate as an rcgen name, attribute by attribute, so a
/// re-issued certificate says exactly what the old one said.
pub fn subject_of(der: &[u8]) -> Result<DistinguishedName> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| Error::Invalid(format!("cannot parse the certificate ({e})")))?;
    let mut dn = DistinguishedName::new();
    for rdn in cert.subject().iter_rdn() {
        for attr in rdn.iter() {
            let oid: Vec<u64> = attr
                .attr_type()
                .iter()
                .map(|arcs| arcs.collect())
                .unwrap_or_default();
            let value = attr.as_str().map_err(|_| {
                Error::Invalid("the certificate's subject holds a non-text attribute".into())
            })?;
            dn.push(DnType::from_oid(&oid), value);
        }
    }
    Ok(dn)
}

/// A SAN as rcgen wants it, from the parsed form.
pub fn san_type(san: &crate::certinfo::San) -> Result<SanType> {
    use crate::certinfo::San;
    let ascii = |s: &str| {
        s.try_into()
            .map_err(|_| Error::Invalid(format!("the SAN {s:?} is not ASCII")))
    };
    Ok(match san {
        San::Dns(d) => SanType::DnsName(ascii(d)?),
        San::Ip(ip) => SanType::IpAddress(*ip),
        San::Uri(u) => SanType::URI(ascii(u)?),
        San::Email(e) => SanType::Rfc822Name(ascii(e)?),
        San::Other(o) => {
            return Err(Error::Invalid(format!(
                "cannot copy the SAN {o}: only DNS, IP, URI and email names are supported"
            )));
        }
    })
}

/// 16 random bytes, positive, with the top bit set below the sign so the length is stable.
pub fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| Error::Invalid("the system random number generator failed".into()))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certinfo::CertInfo;

    #[test]
    fn san_values_are_typed_like_openssl() {
        assert!(matches!(parse_san("127.0.0.2"), Ok(SanType::IpAddress(_))));
        assert!(matches!(
            parse_san("DNS:example.test"),
            Ok(SanType::DnsName(_))
        ));
        assert!(matches!(parse_san("spiffe://x/y"), Ok(SanType::URI(_))));
        assert!(matches!(
            parse_san("*.example.test"),
            Ok(SanType::DnsName(_))
        ));
        assert!(parse_san("bad name").is_err());
        assert!(parse_san("IP:nope").is_err());
    }

    #[test]
    fn leaves_follow_the_profile_and_stay_inside_the_ca() {
        let ca = CertAuthority::new_root(
            demo_subject("CA Company", "CA"),
            KeyType::EcdsaP256,
            Validity::days(10),
        )
        .expect("ca");
        let leaf = ca
            .issue(&LeafSpec {
                subject: demo_subject("Client A Company", "Client A"),
                sans: vec![parse_san("spiffe://mtls.demo/client-a").expect("san")],
                usage: Usage::Client,
                key_type: KeyType::Ed25519,
                validity: Validity::days(400),
            })
            .expect("leaf");
        let ca_info = CertInfo::parse(&ca.der).expect("parse ca");
        let info = CertInfo::parse(&leaf.der).expect("parse leaf");
        assert_eq!(ca_info.ca, Some(true));
        assert_eq!(ca_info.key_usage, vec!["keyCertSign", "cRLSign"]);
        assert!(ca_info.self_signed);
        assert_eq!(info.ca, Some(false));
        assert_eq!(info.ext_key_usage, vec![Eku::ClientAuth]);
        assert_eq!(info.issuer, ca_info.subject);
        assert_eq!(info.authority_key_id, ca_info.subject_key_id);
        assert!(info.not_after <= ca_info.not_after, "leaf outlives its CA");
        assert_eq!(info.serial.len(), 16);
    }

    #[test]
    fn key_types_parse_and_list_choices() {
        assert_eq!("rsa-3072".parse::<KeyType>(), Ok(KeyType::Rsa3072));
        let err = "dsa".parse::<KeyType>().expect_err("dsa is not offered");
        assert!(err.contains("ecdsa-p256"), "{err}");
    }
}
