//! `certificate inspect`: any certificate, chain, CSR, CRL or key (PEM or DER), or the chain
//! a live server presents, in plain words or as JSON.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rustls::pki_types::pem::SectionKind;
use serde_json::{Value, json};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, ParsedExtension, X509CertificationRequest};
use x509_parser::x509::SubjectPublicKeyInfo;

use super::crl::CrlInfo;
use crate::certinfo::{CertInfo, Eku, San, spki_name};
use crate::client::Url;
use crate::error::{Error, Result};
use crate::explain::{self, Side};
use crate::format::{format_span, format_time, hex, rfc3339};
use crate::pki::Usage;
use crate::tls::{self, Trust};

/// A certificate signing request in plain facts.
#[derive(Clone, Debug)]
pub struct CsrInfo {
    /// Requested subject.
    pub subject: String,
    /// Requested SANs.
    pub sans: Vec<San>,
    /// Key algorithm and size.
    pub key: String,
    /// The request is signed by the key it carries.
    pub signature_ok: bool,
}

/// A private key, described without printing any of it.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// "ECDSA P-256", "RSA 2048 bits", ...
    pub key: String,
    /// "PKCS#8", "SEC1" or "PKCS#1".
    pub format: &'static str,
}

/// One object found in an input.
#[derive(Clone, Debug)]
pub enum Object {
    /// An X.509 certificate.
    Certificate(Box<CertInfo>),
    /// A certificate revocation list.
    Crl(Box<CrlInfo>),
    /// A certificate signing request.
    Csr(CsrInfo),
    /// A private key.
    Key(KeyInfo),
}

/// Everything found in one input.
#[derive(Clone, Debug)]
pub struct Inspected {
    /// The file or URL.
    pub source: String,
    /// What it holds, in order.
    pub objects: Vec<Object>,
    /// For a live server: whether its chain verifies, in words.
    pub verdict: Option<String>,
}

/// What `inspect` reads: a file (PEM or DER), or a live server's `https://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A file.
    File(PathBuf),
    /// `https://HOST:PORT`: the chain the server presents.
    Url(Url),
}

impl FromStr for Input {
    type Err = Error;

    /// A value with a scheme and a host (`https://localhost:8443`) is a URL (it must be
    /// https://); anything else is a file name.
    fn from_str(s: &str) -> Result<Self> {
        let url = s
            .parse::<hyper::Uri>()
            .is_ok_and(|u| u.scheme().is_some() && u.authority().is_some());
        Ok(if url {
            Input::Url(s.parse()?)
        } else {
            Input::File(PathBuf::from(s))
        })
    }
}

/// Inspects each input in order, on one runtime. A URL's chain is said to verify (or not)
/// against `ca`.
pub fn inputs(inputs: &[Input], ca: Option<&Path>) -> Result<Vec<Inspected>> {
    let read_all = async {
        let mut out = Vec::with_capacity(inputs.len());
        for input in inputs {
            out.push(match input {
                Input::File(path) => file(path)?,
                Input::Url(url) => live(url, ca).await?,
            });
        }
        Ok(out)
    };
    crate::cli::block_on(Some(1), read_all)?
}

/// Several results as JSON: one object for one input, an array for more.
pub fn to_json(results: &[Inspected]) -> Value {
    match results {
        [one] => one.to_json(),
        many => Value::Array(many.iter().map(Inspected::to_json).collect()),
    }
}

/// Reads a file holding PEM (any number of blocks) or a single DER object.
pub fn file(path: &Path) -> Result<Inspected> {
    let what = "the file to inspect";
    let bytes = std::fs::read(path).map_err(|e| Error::read_given(what, path, e))?;
    let objects = if bytes.starts_with(b"-----BEGIN")
        || crate::pem::contains(&bytes, b"\n-----BEGIN ")
    {
        if crate::pem::contains(&bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(Error::malformed(
                what,
                path,
                "the key is encrypted; this tool does not ask for passphrases",
            ));
        }
        crate::pem::sections(path, what)?
            .into_iter()
            .map(|(kind, der)| object(kind, &der).map_err(|why| Error::malformed(what, path, why)))
            .collect::<Result<Vec<_>>>()?
    } else {
        vec![der_object(&bytes).map_err(|why| Error::malformed(what, path, why))?]
    };
    Ok(Inspected {
        source: path.display().to_string(),
        objects,
        verdict: None,
    })
}

/// Connects to `url` (https://HOST:PORT), records the chain the server presents, and says
/// whether it verifies against `ca` for that host (when a CA file is given).
pub async fn live(url: &Url, ca: Option<&Path>) -> Result<Inspected> {
    let chain = crate::client::fetch_chain(url, Duration::from_secs(10)).await?;
    let host = url.host();
    let objects = chain
        .iter()
        .map(|c| {
            CertInfo::parse(c)
                .map(|i| Object::Certificate(Box::new(i)))
                .map_err(|why| {
                    Error::Invalid(format!("the server sent a certificate that is {why}"))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let verdict = match ca {
        None => None,
        Some(ca) => {
            let trust = Trust::load(ca)?;
            let infos: Vec<CertInfo> = objects
                .iter()
                .filter_map(|o| match o {
                    Object::Certificate(c) => Some((**c).clone()),
                    _ => None,
                })
                .collect();
            Some(
                match tls::verify_leaf(&trust, &chain, Usage::Server, host) {
                    Ok(()) => format!(
                        "the chain verifies against {} for \"{host}\" (a client using that CA would accept it)",
                        ca.display()
                    ),
                    Err(f) => {
                        let cx = explain::Context {
                            ca: Some(ca.to_path_buf()),
                            ..explain::Context::default()
                        };
                        format!(
                            "it would be refused: {}",
                            f.with_peer_chain(&infos).explain(Side::Client, &cx)
                        )
                    }
                },
            )
        }
    };
    Ok(Inspected {
        source: url.to_string(),
        objects,
        verdict,
    })
}

fn object(kind: SectionKind, der: &[u8]) -> std::result::Result<Object, String> {
    match kind {
        SectionKind::Certificate => CertInfo::parse(der).map(|c| Object::Certificate(Box::new(c))),
        SectionKind::Crl => CrlInfo::parse(der).map(|c| Object::Crl(Box::new(c))),
        SectionKind::Csr => csr(der).map(Object::Csr),
        SectionKind::PrivateKey => key(der, "PKCS#8").map(Object::Key),
        SectionKind::EcPrivateKey => key(der, "SEC1").map(Object::Key),
        SectionKind::RsaPrivateKey => key(der, "PKCS#1").map(Object::Key),
        other => Err(format!(
            "it holds a {} block, which this tool does not describe",
            crate::pem::label(other)
        )),
    }
}

/// A DER file: try each kind in turn.
fn der_object(der: &[u8]) -> std::result::Result<Object, String> {
    if der.first() != Some(&0x30) {
        return Err("it is neither PEM text nor DER (binary ASN.1)".into());
    }
    CertInfo::parse(der)
        .map(|c| Object::Certificate(Box::new(c)))
        .or_else(|_| CrlInfo::parse(der).map(|c| Object::Crl(Box::new(c))))
        .or_else(|_| csr(der).map(Object::Csr))
        .or_else(|_| key(der, "PKCS#8").map(Object::Key))
        .map_err(|_| "it is DER, but not a certificate, CRL, CSR or PKCS#8 key".into())
}

fn csr(der: &[u8]) -> std::result::Result<CsrInfo, String> {
    let (_, req) =
        X509CertificationRequest::from_der(der).map_err(|e| format!("not a valid CSR ({e})"))?;
    let info = &req.certification_request_info;
    let mut sans = Vec::new();
    if let Some(exts) = req.requested_extensions() {
        for ext in exts {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                sans.extend(san.general_names.iter().map(crate::certinfo::san_of));
            }
        }
    }
    Ok(CsrInfo {
        subject: info.subject.to_string(),
        sans,
        key: spki_name(&info.subject_pki),
        signature_ok: req.verify_signature().is_ok(),
    })
}

fn key(der: &[u8], format: &'static str) -> std::result::Result<KeyInfo, String> {
    let pair =
        rcgen::KeyPair::try_from(der).map_err(|e| format!("not a usable private key ({e})"))?;
    let spki_der = rcgen::PublicKeyData::subject_public_key_info(&pair);
    let (_, spki) = SubjectPublicKeyInfo::from_der(&spki_der)
        .map_err(|e| format!("cannot read the key's public half ({e})"))?;
    Ok(KeyInfo {
        key: spki_name(&spki),
        format,
    })
}

/// "valid for 364 more days" / "EXPIRED 3 hours ago" / "not valid for another 2 days".
pub fn time_left(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> String {
    if now < not_before {
        format!("NOT YET VALID: starts in {}", format_span(not_before - now))
    } else if now > not_after {
        format!("EXPIRED {} ago", format_span(now - not_after))
    } else {
        format!("{} left", format_span(not_after - now))
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".into()
    } else {
        items.join(", ")
    }
}

impl fmt::Display for Inspected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let now = OffsetDateTime::now_utc();
        let total = self.objects.len();
        for (i, object) in self.objects.iter().enumerate() {
            let pos = if total > 1 {
                format!(" [{}/{total}]", i + 1)
            } else {
                String::new()
            };
            match object {
                Object::Certificate(c) => {
                    writeln!(f, "{}{pos}: certificate", self.source)?;
                    let field =
                        |f: &mut fmt::Formatter<'_>, k: &str, v: &str| writeln!(f, "  {k:<19}{v}");
                    field(f, "subject:", &c.subject)?;
                    field(f, "issuer:", &c.issuer)?;
                    field(f, "serial:", &c.serial_hex())?;
                    field(f, "valid from:", &format_time(c.not_before))?;
                    field(
                        f,
                        "valid until:",
                        &format!(
                            "{} ({})",
                            format_time(c.not_after),
                            time_left(c.not_before, c.not_after, now)
                        ),
                    )?;
                    field(f, "key:", &c.key)?;
                    field(f, "signature:", &c.signature)?;
                    field(f, "SANs:", &c.sans_text())?;
                    field(
                        f,
                        "key usage:",
                        &list(
                            &c.key_usage
                                .iter()
                                .map(|s| s.to_string())
                                .collect::<Vec<_>>(),
                        ),
                    )?;
                    field(
                        f,
                        "ext. key usage:",
                        &list(
                            &c.ext_key_usage
                                .iter()
                                .map(Eku::to_string)
                                .collect::<Vec<_>>(),
                        ),
                    )?;
                    let bc = match (c.ca, c.path_len) {
                        (None, _) => "(absent)".to_string(),
                        (Some(true), Some(n)) => format!("CA:TRUE, pathlen:{n}"),
                        (Some(true), None) => "CA:TRUE".to_string(),
                        (Some(false), _) => "CA:FALSE".to_string(),
                    };
                    field(f, "basic constraints:", &bc)?;
                    field(
                        f,
                        "subject key id:",
                        &c.subject_key_id
                            .as_ref()
                            .map_or_else(|| "(none)".into(), |id| hex(id, ":")),
                    )?;
                    field(
                        f,
                        "authority key id:",
                        &c.authority_key_id
                            .as_ref()
                            .map_or_else(|| "(none)".into(), |id| hex(id, ":")),
                    )?;
                    field(f, "SHA-256:", &c.fingerprint())?;
                    field(f, "self-signed:", yes_no(c.self_signed))?;
                }
                Object::Crl(c) => {
                    writeln!(f, "{}{pos}: certificate revocation list", self.source)?;
                    writeln!(f, "  issuer:            {}", c.issuer)?;
                    writeln!(f, "  this update:       {}", format_time(c.this_update))?;
                    match c.next_update {
                        Some(next) if next < now => writeln!(
                            f,
                            "  next update:       {} (OUT OF DATE by {})",
                            format_time(next),
                            format_span(now - next)
                        )?,
                        Some(next) => writeln!(
                            f,
                            "  next update:       {} (in {})",
                            format_time(next),
                            format_span(next - now)
                        )?,
                        None => writeln!(f, "  next update:       (none)")?,
                    }
                    writeln!(
                        f,
                        "  CRL number:        {}",
                        c.number.as_deref().unwrap_or("(none)")
                    )?;
                    writeln!(f, "  revoked:           {}", c.entries.len())?;
                    for e in &c.entries {
                        let reason = e.reason.map(|r| format!(", {r}")).unwrap_or_default();
                        writeln!(
                            f,
                            "    serial {} since {}{reason}",
                            hex(&e.serial, ":"),
                            format_time(e.at)
                        )?;
                    }
                }
                Object::Csr(c) => {
                    writeln!(f, "{}{pos}: certificate signing request", self.source)?;
                    writeln!(f, "  subject:           {}", c.subject)?;
                    let sans: Vec<String> = c.sans.iter().map(San::to_string).collect();
                    writeln!(f, "  requested SANs:    {}", list(&sans))?;
                    writeln!(f, "  key:               {}", c.key)?;
                    writeln!(
                        f,
                        "  self-signature:    {}",
                        if c.signature_ok { "valid" } else { "INVALID" }
                    )?;
                }
                Object::Key(k) => {
                    writeln!(f, "{}{pos}: private key", self.source)?;
                    writeln!(
                        f,
                        "  key:               {} ({}; the key itself is not printed)",
                        k.key, k.format
                    )?;
                }
            }
            if i + 1 < total {
                writeln!(f)?;
            }
        }
        if let Some(verdict) = &self.verdict {
            writeln!(f, "\n  verdict: {verdict}")?;
        }
        Ok(())
    }
}

impl Inspected {
    /// The same facts as JSON, for scripts.
    pub fn to_json(&self) -> Value {
        let now = OffsetDateTime::now_utc();
        let objects: Vec<Value> = self
            .objects
            .iter()
            .map(|o| match o {
                Object::Certificate(c) => json!({
                    "type": "certificate",
                    "subject": c.subject,
                    "issuer": c.issuer,
                    "serial": c.serial_hex(),
                    "not_before": rfc3339(c.not_before),
                    "not_after": rfc3339(c.not_after),
                    "seconds_left": (c.not_after - now).whole_seconds(),
                    "key": c.key,
                    "signature": c.signature,
                    "sans": c.sans.iter().map(San::to_string).collect::<Vec<_>>(),
                    "key_usage": c.key_usage,
                    "ext_key_usage": c.ext_key_usage.iter().map(Eku::to_string).collect::<Vec<_>>(),
                    "ca": c.ca,
                    "path_len": c.path_len,
                    "subject_key_id": c.subject_key_id.as_ref().map(|id| hex(id, ":")),
                    "authority_key_id": c.authority_key_id.as_ref().map(|id| hex(id, ":")),
                    "sha256": c.fingerprint(),
                    "self_signed": c.self_signed,
                }),
                Object::Crl(c) => json!({
                    "type": "crl",
                    "issuer": c.issuer,
                    "this_update": rfc3339(c.this_update),
                    "next_update": c.next_update.map(rfc3339),
                    "crl_number": c.number,
                    "revoked": c.entries.iter().map(|e| json!({
                        "serial": hex(&e.serial, ":"),
                        "revoked_at": rfc3339(e.at),
                        "reason": e.reason.map(|r| r.to_string()),
                    })).collect::<Vec<_>>(),
                }),
                Object::Csr(c) => json!({
                    "type": "csr",
                    "subject": c.subject,
                    "sans": c.sans.iter().map(San::to_string).collect::<Vec<_>>(),
                    "key": c.key,
                    "signature_valid": c.signature_ok,
                }),
                Object::Key(k) => json!({
                    "type": "private_key",
                    "key": k.key,
                    "format": k.format,
                }),
            })
            .collect();
        json!({
            "source": self.source,
            "objects": objects,
            "verdict": self.verdict,
        })
    }
}
