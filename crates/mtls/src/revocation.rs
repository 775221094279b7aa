//! Revocation lists as data: the reasons (as `--reason` spells them), the entries, a list
//! read back in plain facts, and a list signed by a CA. The CA tool keeps `crl.pem` with
//! these ([`crate::ca::crl`]); `client audit --crl-hint` adds an entry the same way, and
//! `inspect`, `doctor` and `verify` read lists with them.

use std::fmt;
use std::str::FromStr;

use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::certinfo::CertInfo;
use crate::error::{Error, Result};
use crate::pki::{self, CertAuthority};

/// Days until a list's next update, unless told otherwise.
pub const DEFAULT_DAYS: u32 = 7;

/// Why a certificate was revoked (RFC 5280 reason codes, as `--reason` spells them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reason(pub RevocationReason);

impl Reason {
    const ALL: [(&'static str, RevocationReason); 8] = [
        ("unspecified", RevocationReason::Unspecified),
        ("key-compromise", RevocationReason::KeyCompromise),
        ("ca-compromise", RevocationReason::CaCompromise),
        ("affiliation-changed", RevocationReason::AffiliationChanged),
        ("superseded", RevocationReason::Superseded),
        (
            "cessation-of-operation",
            RevocationReason::CessationOfOperation,
        ),
        ("certificate-hold", RevocationReason::CertificateHold),
        ("privilege-withdrawn", RevocationReason::PrivilegeWithdrawn),
    ];

    fn from_code(code: u8) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, r)| *r as u8 == code)
            .map(|(_, r)| Reason(*r))
    }
}

impl FromStr for Reason {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s.trim()))
            .map(|(_, r)| Reason(*r))
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                format!("unknown reason {s:?}: choose one of {}", names.join(", "))
            })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Self::ALL
            .iter()
            .find(|(_, r)| *r == self.0)
            .map_or("unspecified", |(n, _)| *n);
        f.write_str(name)
    }
}

/// One revoked certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The serial as DER integer content bytes.
    pub serial: Vec<u8>,
    /// When it was revoked.
    pub at: OffsetDateTime,
    /// Why, if said.
    pub reason: Option<Reason>,
}

/// A CRL in plain facts.
#[derive(Clone, Debug)]
pub struct CrlInfo {
    /// Issuer distinguished name.
    pub issuer: String,
    /// Authority key identifier, to match the issuing CA.
    pub authority_key_id: Option<Vec<u8>>,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate, if set.
    pub next_update: Option<OffsetDateTime>,
    /// The CRL number, decimal.
    pub number: Option<String>,
    /// The revoked certificates.
    pub entries: Vec<Entry>,
}

impl CrlInfo {
    /// Parses a DER CRL.
    pub fn parse(der: &[u8]) -> std::result::Result<Self, String> {
        let (_, crl) = CertificateRevocationList::from_der(der)
            .map_err(|e| format!("not a valid CRL ({e})"))?;
        let authority_key_id =
            crl.extensions()
                .iter()
                .find_map(|ext| match ext.parsed_extension() {
                    x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) => {
                        aki.key_identifier.as_ref().map(|id| id.0.to_vec())
                    }
                    _ => None,
                });
        Ok(Self {
            issuer: crl.issuer().to_string(),
            authority_key_id,
            this_update: crl.last_update().to_datetime(),
            next_update: crl.next_update().map(|t| t.to_datetime()),
            number: crl.crl_number().map(|n| n.to_string()),
            entries: crl
                .iter_revoked_certificates()
                .map(|r| Entry {
                    serial: r.raw_serial().to_vec(),
                    at: r.revocation_date.to_datetime(),
                    reason: r
                        .reason_code()
                        .and_then(|(_, code)| Reason::from_code(code.0)),
                })
                .collect(),
        })
    }

    /// Issued by `ca` (same name and, when present, same key identifier)?
    pub fn issued_by(&self, ca: &CertInfo) -> bool {
        self.issuer == ca.subject
            && match (&self.authority_key_id, &ca.subject_key_id) {
                (Some(aki), Some(ski)) => aki == ski,
                _ => true,
            }
    }

    /// Does the list name `serial` (DER integer content bytes, as [`CertInfo::serial`])?
    pub fn lists(&self, serial: &[u8]) -> Option<&Entry> {
        self.entries.iter().find(|e| e.serial == serial)
    }

    /// Verifies the CRL's signature with `ca`'s public key.
    pub fn signature_verifies(der: &[u8], ca_der: &[u8]) -> bool {
        let Ok((_, crl)) = CertificateRevocationList::from_der(der) else {
            return false;
        };
        let Ok((_, ca)) = x509_parser::certificate::X509Certificate::from_der(ca_der) else {
            return false;
        };
        crl.verify_signature(ca.public_key()).is_ok()
    }
}

/// One CRL signed by `ca`, as PEM.
pub fn sign(
    ca: &CertAuthority,
    entries: &[Entry],
    number: u64,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
) -> Result<String> {
    let params = CertificateRevocationListParams {
        this_update: this_update - pki::BACKDATE,
        next_update,
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs: entries
            .iter()
            .map(|e| RevokedCertParams {
                serial_number: SerialNumber::from_slice(&e.serial),
                revocation_time: e.at,
                reason_code: e.reason.map(|r| r.0),
                invalidity_date: None,
            })
            .collect(),
        // The list's authority key id must equal the CA's subject key id.
        key_identifier_method: match CertInfo::parse(&ca.der).ok().and_then(|i| i.subject_key_id) {
            Some(ski) => KeyIdMethod::PreSpecified(ski),
            None => KeyIdMethod::Sha256,
        },
    };
    let crl = params
        .signed_by(ca.issuer())
        .map_err(|source| Error::Mint {
            what: "the certificate revocation list".into(),
            source,
        })?;
    crl.pem().map_err(|source| Error::Mint {
        what: "the certificate revocation list".into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_parse_and_print_as_typed() {
        let r: Reason = "key-compromise".parse().expect("known reason");
        assert_eq!(r.to_string(), "key-compromise");
        let err = "stolen".parse::<Reason>().expect_err("unknown reason");
        assert!(err.contains("superseded"), "{err}");
    }
}
