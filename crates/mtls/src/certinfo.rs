//! A certificate as plain facts: who, issued by whom, for which names and uses, until when.
//!
//! Parsed once with x509-parser; the server's log, the client's report, `certificate
//! inspect` and `certificate doctor` all read these fields instead of parsing again.

use std::fmt;
use std::net::IpAddr;

use time::OffsetDateTime;

use crate::format::hex;
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};
use x509_parser::public_key::PublicKey;

/// A subject alternative name, printed the way openssl prints it (`DNS:localhost`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum San {
    /// A DNS name.
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
    /// A URI, such as a SPIFFE ID.
    Uri(String),
    /// An e-mail address.
    Email(String),
    /// Any other kind, already formatted.
    Other(String),
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(d) => write!(f, "DNS:{d}"),
            San::Ip(ip) => write!(f, "IP:{ip}"),
            San::Uri(u) => write!(f, "URI:{u}"),
            San::Email(e) => write!(f, "email:{e}"),
            San::Other(o) => f.write_str(o),
        }
    }
}

/// An extended key usage: what a leaf may be used for (decoded from its OID).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Eku {
    /// TLS server authentication (1.3.6.1.5.5.7.3.1).
    ServerAuth,
    /// TLS client authentication (1.3.6.1.5.5.7.3.2).
    ClientAuth,
    /// Code signing.
    CodeSigning,
    /// E-mail protection (S/MIME).
    EmailProtection,
    /// Time stamping.
    TimeStamping,
    /// OCSP response signing.
    OcspSigning,
    /// anyExtendedKeyUsage (2.5.29.37.0).
    Any,
    /// Any other purpose, by its dotted OID.
    Other(String),
}

impl fmt::Display for Eku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Eku::ServerAuth => "serverAuth",
            Eku::ClientAuth => "clientAuth",
            Eku::CodeSigning => "codeSigning",
            Eku::EmailProtection => "emailProtection",
            Eku::TimeStamping => "timeStamping",
            Eku::OcspSigning => "OCSPSigning",
            Eku::Any => "anyExtendedKeyUsage",
            Eku::Other(oid) => oid,
        })
    }
}

/// Everything a person checks on a certificate.
#[derive(Clone, Debug)]
pub struct CertInfo {
    /// Subject distinguished name, e.g. `C=Earth, ST=Asia, ..., CN=Client A`.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// The subject's (first) common name, if any: for describing a certificate.
    pub common_name: Option<String>,
    /// Every common name in the subject. A certificate with more than one is ambiguous: no
    /// CN rule admits it, and its identity names them all.
    pub common_names: Vec<String>,
    /// The serial number's DER integer content bytes (print with [`CertInfo::serial_hex`]).
    pub serial: Vec<u8>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Subject alternative names.
    pub sans: Vec<San>,
    /// Key algorithm and size, e.g. "ECDSA P-256".
    pub key: String,
    /// Signature algorithm, e.g. "ecdsa-with-SHA256".
    pub signature: String,
    /// Basic constraints: `Some(true)` for CA:TRUE, `None` when the extension is absent.
    pub ca: Option<bool>,
    /// pathLenConstraint, when set.
    pub path_len: Option<u32>,
    /// Key usage bits by name (`digitalSignature`, `keyCertSign`, ...).
    pub key_usage: Vec<&'static str>,
    /// Extended key usages.
    pub ext_key_usage: Vec<Eku>,
    /// Subject key identifier.
    pub subject_key_id: Option<Vec<u8>>,
    /// Authority key identifier.
    pub authority_key_id: Option<Vec<u8>>,
    /// SHA-256 of the DER (print with [`CertInfo::fingerprint`]).
    pub sha256: [u8; 32],
    /// Subject equals issuer and the signature verifies with the certificate's own key.
    pub self_signed: bool,
    /// The DER-encoded SubjectPublicKeyInfo, to compare keys.
    pub spki: Vec<u8>,
}

impl CertInfo {
    /// Parses a DER certificate. The error says what is wrong with it, in words.
    pub fn parse(der: &[u8]) -> Result<Self, String> {
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("not a valid X.509 certificate ({e})"))?;
        if !rest.is_empty() {
            return Err("trailing bytes after the certificate".into());
        }
        let mut info = CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            common_name: None,
            common_names: cert
                .subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_owned)
                .collect(),
            serial: cert.raw_serial().to_vec(),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            sans: Vec::new(),
            key: key_name(&cert),
            signature: signature_name(&cert.signature_algorithm.algorithm.to_id_string()),
            ca: None,
            path_len: None,
            key_usage: Vec::new(),
            ext_key_usage: Vec::new(),
            subject_key_id: None,
            authority_key_id: None,
            sha256: sha256(der),
            self_signed: cert.subject() == cert.issuer() && cert.verify_signature(None).is_ok(),
            spki: cert.public_key().raw.to_vec(),
        };
        info.common_name = info.common_names.first().cloned();
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    info.sans = san.general_names.iter().map(san_of).collect();
                }
                ParsedExtension::BasicConstraints(bc) => {
                    info.ca = Some(bc.ca);
                    info.path_len = bc.path_len_constraint;
                }
                ParsedExtension::KeyUsage(ku) => {
                    let bits = [
                        (ku.digital_signature(), "digitalSignature"),
                        (ku.non_repudiation(), "nonRepudiation"),
                        (ku.key_encipherment(), "keyEncipherment"),
                        (ku.data_encipherment(), "dataEncipherment"),
                        (ku.key_agreement(), "keyAgreement"),
                        (ku.key_cert_sign(), "keyCertSign"),
                        (ku.crl_sign(), "cRLSign"),
                    ];
                    info.key_usage = bits.iter().filter(|b| b.0).map(|b| b.1).collect();
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    let known = [
                        (eku.any, Eku::Any),
                        (eku.server_auth, Eku::ServerAuth),
                        (eku.client_auth, Eku::ClientAuth),
                        (eku.code_signing, Eku::CodeSigning),
                        (eku.email_protection, Eku::EmailProtection),
                        (eku.time_stamping, Eku::TimeStamping),
                        (eku.ocsp_signing, Eku::OcspSigning),
                    ];
                    info.ext_key_usage = known
                        .into_iter()
                        .filter_map(|(present, eku)| present.then_some(eku))
                        .chain(eku.other.iter().map(|oid| Eku::Other(oid.to_id_string())))
                        .collect();
                }
                ParsedExtension::SubjectKeyIdentifier(id) => {
                    info.subject_key_id = Some(id.0.to_vec());
                }
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    info.authority_key_id = aki.key_identifier.as_ref().map(|id| id.0.to_vec());
                }
                _ => {}
            }
        }
        Ok(info)
    }

    /// The serial number as colon-separated hex, as openssl prints it.
    pub fn serial_hex(&self) -> String {
        hex(&self.serial, ":")
    }

    /// The SHA-256 fingerprint as colon-separated hex (`openssl x509 -fingerprint -sha256`).
    pub fn fingerprint(&self) -> String {
        hex(&self.sha256, ":")
    }

    /// Whether its extended key usage names `eku`.
    pub fn has_eku(&self, eku: &Eku) -> bool {
        self.ext_key_usage.contains(eku)
    }

    /// The extended key usages joined for a sentence (`serverAuth, clientAuth`), or `none`.
    pub fn ekus_text(&self) -> String {
        if self.ext_key_usage.is_empty() {
            return "none".into();
        }
        let names: Vec<String> = self.ext_key_usage.iter().map(Eku::to_string).collect();
        names.join(", ")
    }

    /// The URI SANs (SPIFFE IDs and the like).
    pub fn uris(&self) -> impl Iterator<Item = &str> {
        self.sans.iter().filter_map(|s| match s {
            San::Uri(u) => Some(u.as_str()),
            _ => None,
        })
    }

    /// A short name for the certificate's owner, as logs, metrics and greetings show it:
    /// `Client A (spiffe://mtls.demo/client-a)`. It cannot be mistaken for another's: every
    /// common name and every URI SAN is named, and a value that could imitate this format
    /// (parentheses, commas, quotes, control characters, spaces at either end) is shown
    /// quoted and escaped, so a CN of `Client A (spiffe://mtls.demo/client-a)` reads
    /// `"Client A (spiffe://mtls.demo/client-a)"`. Without a CN, the whole subject is shown,
    /// quoted.
    pub fn identity(&self) -> String {
        let name = match self.common_names.as_slice() {
            [] => format!("{:?}", self.subject),
            [one] => shown(one),
            several => several
                .iter()
                .map(|cn| format!("{cn:?}"))
                .collect::<Vec<_>>()
                .join(" + "),
        };
        let uris: Vec<String> = self.uris().map(shown).collect();
        if uris.is_empty() {
            name
        } else {
            format!("{name} ({})", uris.join(", "))
        }
    }

    /// The SANs joined for a log line or report (`DNS:localhost, IP:127.0.0.1`).
    pub fn sans_text(&self) -> String {
        if self.sans.is_empty() {
            return "(none)".into();
        }
        let names: Vec<String> = self.sans.iter().map(San::to_string).collect();
        names.join(", ")
    }

    /// True when `now` lies inside the validity window.
    pub fn is_current(&self, now: OffsetDateTime) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// `value` as it is when it is plain (letters, digits and `.-_@:/+=#*~&;?!$%'` inside,
/// single spaces between words), otherwise quoted with Rust's escapes.
fn shown(value: &str) -> String {
    let plain = !value.is_empty()
        && value.trim() == value
        && !value.contains("  ")
        && value
            .chars()
            .all(|c| c.is_alphanumeric() || " .-_@:/+=#*~&;?!$%'".contains(c));
    if plain {
        value.to_string()
    } else {
        format!("{value:?}")
    }
}

pub(crate) fn san_of(name: &GeneralName<'_>) -> San {
    match name {
        GeneralName::DNSName(d) => San::Dns(d.to_string()),
        GeneralName::URI(u) => San::Uri(u.to_string()),
        GeneralName::RFC822Name(e) => San::Email(e.to_string()),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => {
                let b: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
                San::Ip(IpAddr::from(b))
            }
            16 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(bytes);
                San::Ip(IpAddr::from(b))
            }
            _ => San::Other(format!("IP:<{} bytes>", bytes.len())),
        },
        other => San::Other(format!("{other}")),
    }
}

fn key_name(cert: &X509Certificate<'_>) -> String {
    spki_name(cert.public_key())
}

/// A public key's algorithm and size in words: "ECDSA P-256", "RSA 2048 bits", "Ed25519".
pub fn spki_name(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> String {
    let alg = spki.algorithm.algorithm.to_id_string();
    match alg.as_str() {
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => "ECDSA P-256".into(),
                Some("1.3.132.0.34") => "ECDSA P-384".into(),
                Some("1.3.132.0.35") => "ECDSA P-521".into(),
                Some(other) => format!("ECDSA (curve {other})"),
                None => "ECDSA".into(),
            }
        }
        "1.2.840.113549.1.1.1" => match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => format!("RSA {} bits", rsa.key_size()),
            _ => "RSA".into(),
        },
        "1.3.101.112" => "Ed25519".into(),
        "1.3.101.113" => "Ed448".into(),
        other => format!("unknown ({other})"),
    }
}

fn signature_name(oid: &str) -> String {
    match oid {
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        "1.3.101.112" => "Ed25519",
        other => return other.to_string(),
    }
    .to_string()
}

/// SHA-256 of `bytes` (certificate fingerprints).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Certificates for unit tests that need facts, not a real certificate.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::CertInfo;

    /// A certificate that says nothing: `CN=x`, valid now for no time at all, no SANs.
    pub(crate) fn blank() -> CertInfo {
        let now = time::OffsetDateTime::now_utc();
        CertInfo {
            subject: "CN=x".into(),
            issuer: "CN=CA".into(),
            common_name: Some("x".into()),
            common_names: vec!["x".into()],
            serial: vec![1],
            not_before: now,
            not_after: now,
            sans: Vec::new(),
            key: String::new(),
            signature: String::new(),
            ca: Some(false),
            path_len: None,
            key_usage: Vec::new(),
            ext_key_usage: Vec::new(),
            subject_key_id: None,
            authority_key_id: None,
            sha256: [0; 32],
            self_signed: false,
            spki: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{CertAuthority, KeyType, LeafSpec, Usage, Validity, demo_subject, parse_san};

    fn leaf(cn: &str, sans: &[&str]) -> CertInfo {
        let ca = CertAuthority::new_root(
            demo_subject("CA Company", "CA"),
            KeyType::EcdsaP256,
            Validity::days(1),
        )
        .expect("ca");
        let leaf = ca
            .issue(&LeafSpec {
                subject: demo_subject("Co", cn),
                sans: sans.iter().map(|s| parse_san(s).expect("san")).collect(),
                usage: Usage::Client,
                key_type: KeyType::EcdsaP256,
                validity: Validity::days(1),
            })
            .expect("leaf");
        CertInfo::parse(&leaf.der).expect("parse")
    }

    #[test]
    fn a_common_name_that_imitates_an_identity_is_shown_quoted() {
        let real = leaf("Client A", &["URI:spiffe://mtls.demo/client-a"]);
        assert_eq!(real.identity(), "Client A (spiffe://mtls.demo/client-a)");
        let fake = leaf("Client A (spiffe://mtls.demo/client-a)", &["DNS:x.test"]);
        assert_eq!(
            fake.identity(),
            "\"Client A (spiffe://mtls.demo/client-a)\""
        );
        assert_ne!(real.identity(), fake.identity());
    }

    #[test]
    fn control_characters_in_a_common_name_are_escaped_in_the_identity() {
        let info = leaf("evil\u{0}\u{9b}name", &["DNS:x.test"]);
        let id = info.identity();
        assert!(!id.chars().any(char::is_control), "{id:?}");
        assert_eq!(id, "\"evil\\0\\u{9b}name\"");
    }
}
