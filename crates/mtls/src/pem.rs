//! PEM in and out: loading through rustls-pki-types' `PemObject`, with errors that name the
//! file, and encoding certificates, chains and CRLs for the files the CA tool writes.

use std::path::Path;

use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::certinfo::CertInfo;
use crate::error::{Error, Result};

/// Reads every certificate in a PEM file (a leaf, a chain or a CA bundle), leaf first.
///
/// Each one must parse as X.509: a damaged certificate is an error here, not a silent skip.
pub fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    certificates_in(&read(path, what)?, path, what)
}

/// [`certificates`] from a file's bytes, already read from `path`.
pub fn certificates_in(
    bytes: &[u8],
    path: &Path,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>> {
    Ok(described_certificates_in(bytes, path, what)?
        .into_iter()
        .map(|(der, _)| der)
        .collect())
}

/// Every certificate in a PEM file, each with what it says (parsed once).
pub fn described_certificates(
    path: &Path,
    what: &str,
) -> Result<Vec<(CertificateDer<'static>, CertInfo)>> {
    described_certificates_in(&read(path, what)?, path, what)
}

/// [`certificates_in`], each with what it says: every certificate is parsed once.
pub fn described_certificates_in(
    bytes: &[u8],
    path: &Path,
    what: &str,
) -> Result<Vec<(CertificateDer<'static>, CertInfo)>> {
    unparsed_certificates_in(bytes, path, what)?
        .into_iter()
        .enumerate()
        .map(|(i, cert)| {
            let info = CertInfo::parse(&cert).map_err(|why| {
                Error::malformed(what, path, format!("certificate #{} is {why}", i + 1))
            })?;
            Ok((cert, info))
        })
        .collect()
}

/// Every certificate block in a PEM file's bytes, as found: none is parsed, so that a
/// verifier (webpki, for `certificate verify`) alone judges what each one holds.
pub fn unparsed_certificates_in(
    bytes: &[u8],
    path: &Path,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>> {
    blocks(bytes, path, what, SectionKind::Certificate)
}

/// Reads the one private key in a PEM file (PKCS#8, SEC1 or PKCS#1).
pub fn private_key(path: &Path, what: &str) -> Result<PrivateKeyDer<'static>> {
    private_key_in(&read(path, what)?, path, what)
}

/// [`private_key`] from a file's bytes, already read from `path`.
pub fn private_key_in(bytes: &[u8], path: &Path, what: &str) -> Result<PrivateKeyDer<'static>> {
    if contains(bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(Error::malformed(
            what,
            path,
            "the key is encrypted with a passphrase; write an unencrypted copy with \
             `openssl pkcs8 -in KEY -out KEY.plain` and keep it mode 0600",
        ));
    }
    let sections = parse(bytes, path, what)?;
    let mut keys = sections.iter().filter_map(|(kind, der)| match kind {
        SectionKind::PrivateKey | SectionKind::EcPrivateKey | SectionKind::RsaPrivateKey => {
            PrivateKeyDer::from_pem(*kind, der.clone())
        }
        _ => None,
    });
    let Some(key) = keys.next() else {
        return Err(wrong_kind(path, what, "PRIVATE KEY", &sections));
    };
    if keys.next().is_some() {
        return Err(Error::malformed(
            what,
            path,
            "it holds more than one private key; keep exactly one key per file",
        ));
    }
    Ok(key)
}

/// Reads every CRL in a PEM file.
pub fn crls(path: &Path, what: &str) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    crls_in(&read(path, what)?, path, what)
}

/// [`crls`] from a file's bytes, already read from `path`.
pub fn crls_in(
    bytes: &[u8],
    path: &Path,
    what: &str,
) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    blocks(bytes, path, what, SectionKind::Crl)
}

/// Every block of one kind, in order; none at all is an error that says what the file
/// holds instead.
fn blocks<T: From<Vec<u8>>>(
    bytes: &[u8],
    path: &Path,
    what: &str,
    kind: SectionKind,
) -> Result<Vec<T>> {
    let sections = parse(bytes, path, what)?;
    let found: Vec<T> = sections
        .iter()
        .filter(|(k, _)| *k == kind)
        .map(|(_, der)| T::from(der.clone()))
        .collect();
    if found.is_empty() {
        return Err(wrong_kind(path, what, label(kind), &sections));
    }
    Ok(found)
}

/// Every PEM section in the file, in order, with its kind.
pub fn sections(path: &Path, what: &str) -> Result<Vec<(SectionKind, Vec<u8>)>> {
    let bytes = read(path, what)?;
    parse(&bytes, path, what)
}

/// The PEM label of a section kind, as it appears after `-----BEGIN `.
pub fn label(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "CERTIFICATE",
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        _ => "other PEM block",
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::read(what, path, e))
}

fn parse(bytes: &[u8], path: &Path, what: &str) -> Result<Vec<(SectionKind, Vec<u8>)>> {
    let mut out = Vec::new();
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes) {
        out.push(item.map_err(|e| Error::malformed(what, path, pem_error(&e)))?);
    }
    if out.is_empty() {
        return Err(Error::NotPem {
            what: what.to_string(),
            path: path.to_path_buf(),
            looks_like_der: bytes.first() == Some(&0x30),
        });
    }
    Ok(out)
}

fn wrong_kind(
    path: &Path,
    what: &str,
    expected: &'static str,
    found: &[(SectionKind, Vec<u8>)],
) -> Error {
    let mut labels: Vec<&str> = found.iter().map(|(k, _)| label(*k)).collect();
    labels.dedup();
    Error::WrongPem {
        what: what.to_string(),
        path: path.to_path_buf(),
        expected,
        found: labels
            .iter()
            .map(|l| format!("a {l}"))
            .collect::<Vec<_>>()
            .join(" and "),
    }
}

fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { end_marker } => format!(
            "a PEM block is cut short (no {} line); the file may be truncated",
            String::from_utf8_lossy(end_marker)
        ),
        E::IllegalSectionStart { line } => format!(
            "a -----BEGIN line is malformed: {:?}",
            String::from_utf8_lossy(line)
        ),
        E::Base64Decode(why) => format!("a PEM block's base64 body is corrupt ({why})"),
        other => other.to_string(),
    }
}

/// `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Certificates as consecutive PEM blocks, in order.
pub fn chain_pem(chain: &[CertificateDer<'_>]) -> String {
    chain.iter().map(|c| to_pem("CERTIFICATE", c)).collect()
}

/// PEM-encodes a DER object under `label` ("CERTIFICATE", "X509 CRL").
pub fn to_pem(label: &str, der: &[u8]) -> String {
    ::pem::encode_config(
        &::pem::Pem::new(label, der.to_vec()),
        ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF),
    )
}

/// A private key as PKCS#8 DER, whatever its encoding (PKCS#8, SEC1 or PKCS#1): what PKCS#12
/// bundles and some tools require. `path` names the key in the error.
pub fn pkcs8_der(key: &PrivateKeyDer<'_>, path: &Path) -> Result<Vec<u8>> {
    pkcs8_of(key).map_err(|why| {
        Error::malformed(
            "the private key",
            path,
            format!("it is {why}; convert it with `openssl pkcs8 -topk8 -nocrypt`"),
        )
    })
}

fn pkcs8_of(key: &PrivateKeyDer<'_>) -> std::result::Result<Vec<u8>, &'static str> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair,
    };
    match key {
        PrivateKeyDer::Pkcs8(der) => Ok(der.secret_pkcs8_der().to_vec()),
        PrivateKeyDer::Sec1(der) => [
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &ECDSA_P384_SHA384_ASN1_SIGNING,
        ]
        .into_iter()
        .find_map(|alg| EcdsaKeyPair::from_private_key_der(alg, der.secret_sec1_der()).ok())
        .and_then(|pair| pair.to_pkcs8v1().ok())
        .map(|doc| doc.as_ref().to_vec())
        .ok_or("an EC key on a curve other than P-256 or P-384"),
        PrivateKeyDer::Pkcs1(der) => aws_lc_rs::rsa::KeyPair::from_der(der.secret_pkcs1_der())
            .map_err(|_| "an RSA key aws-lc-rs rejects")
            .and_then(|pair| {
                AsDer::<Pkcs8V1Der<'static>>::as_der(&pair)
                    .map(|d| d.as_ref().to_vec())
                    .map_err(|_| "an RSA key that cannot be re-encoded")
            }),
        _ => Err("a key type this tool does not know"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn temp_file(name: &str, body: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(name);
        fs::write(&path, body).expect("write fixture");
        (dir, path)
    }

    #[test]
    fn missing_file_is_named_with_a_hint() {
        let err = certificates(Path::new("/nonexistent/ca.crt"), "the CA certificate")
            .expect_err("must fail");
        let text = err.to_string();
        assert!(matches!(err, Error::Read { .. }));
        assert!(text.contains("/nonexistent/ca.crt"), "{text}");
        let mint = crate::program::Program::Certificate.command("");
        assert!(text.contains(&format!("`{mint}`")), "{text}");
    }

    #[test]
    fn a_key_where_a_certificate_belongs_is_named() {
        let key = rcgen::KeyPair::generate().expect("key");
        let (_dir, path) = temp_file("server.crt", key.serialize_pem().as_bytes());
        let err = certificates(&path, "the server certificate").expect_err("must fail");
        assert!(
            matches!(&err, Error::WrongPem { expected: "CERTIFICATE", found, .. } if found == "a PRIVATE KEY"),
            "{err}"
        );
    }

    #[test]
    fn text_without_pem_is_not_pem_and_der_is_recognised() {
        let (_d1, text) = temp_file("a.crt", b"hello");
        assert!(matches!(
            certificates(&text, "x"),
            Err(Error::NotPem {
                looks_like_der: false,
                ..
            })
        ));
        let (_d2, der) = temp_file("b.crt", &[0x30, 0x82, 0x01]);
        assert!(matches!(
            certificates(&der, "x"),
            Err(Error::NotPem {
                looks_like_der: true,
                ..
            })
        ));
    }

    #[test]
    fn truncated_pem_is_reported_as_damaged() {
        let (_d, path) = temp_file("c.crt", b"-----BEGIN CERTIFICATE-----\nMIIB\n");
        let err = certificates(&path, "the CA certificate").expect_err("must fail");
        assert!(matches!(err, Error::Malformed { .. }), "{err}");
    }
}
