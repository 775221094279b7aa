//! The verified client's identity as the headers an application reads: RFC 9440
//! (`Client-Cert`, `Client-Cert-Chain`), nginx's `X-SSL-CERT`, and Envoy's
//! `X-Forwarded-Client-Cert` with an RFC 4514 subject.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use crate::certinfo::sha256;
use crate::format::hex;

/// The reason code when a verified client's identity cannot be forwarded.
pub const IDENTITY_UNFORWARDABLE: &str = "identity_unforwardable";

/// Why a verified client's identity cannot be forwarded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unforwardable {
    /// The client presented no certificate.
    #[error("the client presented no certificate")]
    NoCertificate,
    /// Its leaf (or its SAN extension) does not parse.
    #[error("its certificate does not parse ({0})")]
    Unparsable(String),
    /// It has this many (more than one) URI SANs: which one is the client?
    #[error("its certificate has {0} URI SANs; the proxy forwards exactly one identity")]
    SeveralUris(usize),
    /// A value cannot be written into a header.
    #[error("its {0} cannot be written into a header")]
    NotAHeader(&'static str),
}

/// The identity headers for one verified client, computed once per connection.
#[derive(Clone, Debug)]
pub struct ForwardedIdentity {
    client_cert: HeaderValue,
    client_cert_chain: Option<HeaderValue>,
    ssl_cert: HeaderValue,
    xfcc: HeaderValue,
}

impl ForwardedIdentity {
    /// From the leaf the client presented, followed by the certificates on its path (see
    /// [`crate::report::PeerPath`]). Fails, saying why, when the leaf does not parse, when
    /// it has more than one URI SAN (which one is the client?), or when a value cannot be
    /// put into a header.
    pub fn from_chain(chain: &[CertificateDer<'_>]) -> Result<Self, Unforwardable> {
        let (leaf, rest) = chain.split_first().ok_or(Unforwardable::NoCertificate)?;
        let (_, cert) = X509Certificate::from_der(leaf)
            .map_err(|e| Unforwardable::Unparsable(e.to_string()))?;
        let header = |what: &'static str, value: &[u8]| {
            HeaderValue::from_bytes(value).map_err(|_| Unforwardable::NotAHeader(what))
        };
        let byte_sequence = |der: &[u8]| format!(":{}:", BASE64.encode(der));
        let client_cert = header("certificate", byte_sequence(leaf).as_bytes())?;
        let client_cert_chain = if rest.is_empty() {
            None
        } else {
            let list: Vec<String> = rest.iter().map(|c| byte_sequence(c)).collect();
            Some(header("chain", list.join(", ").as_bytes())?)
        };
        let pem = crate::pem::to_pem("CERTIFICATE", leaf);
        let ssl_cert = header("certificate", url_escape(&pem).as_bytes())?;
        let mut xfcc = format!(
            "Hash={};Subject=\"{}\"",
            hex(&sha256(leaf), "").to_ascii_lowercase(),
            rfc4514(cert.subject())
        );
        let uris: Vec<&str> = cert
            .subject_alternative_name()
            .map_err(|e| Unforwardable::Unparsable(e.to_string()))?
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::URI(u) => Some(*u),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        match uris.as_slice() {
            [] => {}
            [uri] => {
                xfcc.push_str(";URI=");
                xfcc.push_str(&xfcc_value(uri));
            }
            several => return Err(Unforwardable::SeveralUris(several.len())),
        }
        let xfcc = header("subject", xfcc.as_bytes())?;
        Ok(Self {
            client_cert,
            client_cert_chain,
            ssl_cert,
            xfcc,
        })
    }

    /// Sets the four headers on a request to the upstream.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(
            HeaderName::from_static("client-cert"),
            self.client_cert.clone(),
        );
        if let Some(chain) = &self.client_cert_chain {
            headers.insert(HeaderName::from_static("client-cert-chain"), chain.clone());
        }
        headers.insert(HeaderName::from_static("x-ssl-cert"), self.ssl_cert.clone());
        headers.insert(
            HeaderName::from_static("x-forwarded-client-cert"),
            self.xfcc.clone(),
        );
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986), as nginx escapes
/// `$ssl_client_escaped_cert`: `-----BEGIN%20CERTIFICATE-----%0AMIIB...`.
pub fn url_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A distinguished name in RFC 4514 form, as Envoy and `openssl -nameopt RFC2253` print it:
/// most specific first, comma-separated, special characters escaped.
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let mut rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let value = match atv.as_str() {
                        Ok(s) => escape_dn_value(s),
                        Err(_) => format!("#{}", hex(atv.as_slice(), "").to_ascii_lowercase()),
                    };
                    format!(
                        "{}={value}",
                        attribute_name(&atv.attr_type().to_id_string())
                    )
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.reverse();
    rdns.join(",")
}

fn attribute_name(oid: &str) -> &str {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        other => other,
    }
}

fn escape_dn_value(value: &str) -> String {
    let last = value.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            // Controls and everything beyond ASCII as hex pairs of their UTF-8 bytes, as
            // RFC 4514 printers do (`ë` is `\C3\AB`): a header carries visible ASCII only.
            c if c.is_control() || !c.is_ascii() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// An XFCC value: control characters and non-ASCII bytes percent-escaped (a URI SAN is
/// ASCII; no header may carry a control character), then quoted when it holds a separator,
/// as Envoy quotes it.
fn xfcc_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_control() || !b.is_ascii() {
            escaped.push_str(&format!("%{b:02X}"));
        } else {
            escaped.push(char::from(b));
        }
    }
    if escaped.contains([',', ';', '=', '"', ' ']) {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_header_this_proxy_sets_is_one_a_client_cannot_send() {
        use crate::pki::{CertAuthority, KeyType, LeafSpec, Usage, Validity, demo_subject};
        let ca = CertAuthority::new_root(
            demo_subject("CA Company", "CA"),
            KeyType::EcdsaP256,
            Validity::days(1),
        )
        .expect("ca");
        let leaf = ca
            .issue(&LeafSpec {
                subject: demo_subject("Client A Company", "Client A"),
                sans: vec![crate::pki::parse_san("spiffe://mtls.demo/client-a").expect("san")],
                usage: Usage::Client,
                key_type: KeyType::EcdsaP256,
                validity: Validity::days(1),
            })
            .expect("leaf");
        // A chain, so that Client-Cert-Chain is set too.
        let chain = [leaf.der.clone(), ca.der.clone()];
        let identity = ForwardedIdentity::from_chain(&chain).expect("identity");
        let mut headers = HeaderMap::new();
        identity.apply(&mut headers);
        let mut set: Vec<String> = headers.keys().map(|n| n.as_str().to_string()).collect();
        set.sort_unstable();
        assert_eq!(
            set,
            [
                "client-cert",
                "client-cert-chain",
                "x-forwarded-client-cert",
                "x-ssl-cert"
            ]
        );
        let removed = crate::hygiene::strip_identity_headers(&mut headers);
        assert_eq!(
            removed.iter().map(HeaderName::as_str).collect::<Vec<_>>(),
            set
        );
        assert!(headers.is_empty(), "{headers:?}");
    }

    #[test]
    fn pem_is_escaped_like_nginx() {
        assert_eq!(
            url_escape("-----BEGIN CERTIFICATE-----\nMII+/=\n"),
            "-----BEGIN%20CERTIFICATE-----%0AMII%2B%2F%3D%0A"
        );
    }

    #[test]
    fn dn_values_escape_what_rfc_4514_reserves() {
        assert_eq!(escape_dn_value("a,b+c\"d\\e"), "a\\,b\\+c\\\"d\\\\e");
        assert_eq!(escape_dn_value("#x "), "\\#x\\ ");
        assert_eq!(escape_dn_value("Client A"), "Client A");
        assert_eq!(escape_dn_value("Zoë"), "Zo\\C3\\AB");
        assert_eq!(escape_dn_value("a\nb"), "a\\0Ab");
    }

    #[test]
    fn xfcc_values_are_quoted_only_when_they_must_be() {
        assert_eq!(
            xfcc_value("spiffe://mtls.demo/client-a"),
            "spiffe://mtls.demo/client-a"
        );
        assert_eq!(xfcc_value("urn:a;b=c"), "\"urn:a;b=c\"");
    }

    #[test]
    fn xfcc_values_escape_control_characters_so_they_fit_in_a_header() {
        let value = xfcc_value("spiffe://x/a\nb\u{7f}c\rd\u{0}");
        assert_eq!(value, "spiffe://x/a%0Ab%7Fc%0Dd%00");
        assert!(HeaderValue::from_str(&value).is_ok());
        assert_eq!(xfcc_value("spiffe://x/é"), "spiffe://x/%C3%A9");
    }

    #[test]
    fn a_leaf_becomes_the_four_headers() {
        let ca = crate::pki::CertAuthority::new_root(
            crate::pki::demo_subject("CA Company", "CA"),
            crate::pki::KeyType::EcdsaP256,
            crate::pki::Validity::days(1),
        )
        .expect("ca");
        let leaf = ca
            .issue(&crate::pki::LeafSpec {
                subject: crate::pki::demo_subject("Client A Company", "Client A"),
                sans: vec![crate::pki::parse_san("spiffe://mtls.demo/client-a").expect("san")],
                usage: crate::pki::Usage::Client,
                key_type: crate::pki::KeyType::EcdsaP256,
                validity: crate::pki::Validity::days(1),
            })
            .expect("leaf");
        let id = ForwardedIdentity::from_chain(std::slice::from_ref(&leaf.der)).expect("identity");
        let mut headers = HeaderMap::new();
        id.apply(&mut headers);
        let cert = headers["client-cert"].to_str().expect("ascii");
        assert_eq!(cert, format!(":{}:", BASE64.encode(leaf.der.as_ref())));
        assert!(!headers.contains_key("client-cert-chain"));
        let xfcc = headers["x-forwarded-client-cert"].to_str().expect("ascii");
        let hash = hex(&sha256(&leaf.der), "").to_ascii_lowercase();
        assert_eq!(
            xfcc,
            format!(
                "Hash={hash};Subject=\"CN=Client A,OU=Engineering,O=Client A Company,L=Mountain,\
                 ST=Asia,C=Earth\";URI=spiffe://mtls.demo/client-a"
            )
        );
        assert!(
            headers["x-ssl-cert"]
                .to_str()
                .expect("ascii")
                .starts_with("-----BEGIN%20CERTIFICATE-----%0A")
        );
    }

    #[test]
    fn a_uri_with_control_characters_is_forwarded_escaped() {
        let leaf = client_with(&["spiffe://mtls.demo/a\u{7f}b"]);
        let id = ForwardedIdentity::from_chain(std::slice::from_ref(&leaf)).expect("identity");
        let mut headers = HeaderMap::new();
        id.apply(&mut headers);
        let xfcc = headers["x-forwarded-client-cert"].to_str().expect("ascii");
        assert!(xfcc.ends_with(";URI=spiffe://mtls.demo/a%7Fb"), "{xfcc}");
    }

    #[test]
    fn an_identity_that_cannot_be_forwarded_is_an_error_that_says_why() {
        let two = client_with(&["spiffe://x/evil", "spiffe://mtls.demo/client-a"]);
        let err = ForwardedIdentity::from_chain(std::slice::from_ref(&two)).expect_err("two URIs");
        assert_eq!(err, Unforwardable::SeveralUris(2));
        assert!(err.to_string().contains("2 URI SANs"), "{err}");
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        let err = ForwardedIdentity::from_chain(&[garbage]).expect_err("not a certificate");
        assert!(matches!(err, Unforwardable::Unparsable(_)), "{err}");
        assert!(err.to_string().contains("does not parse"), "{err}");
        assert!(ForwardedIdentity::from_chain(&[]).is_err());
    }

    fn ca() -> crate::pki::CertAuthority {
        crate::pki::CertAuthority::new_root(
            crate::pki::demo_subject("CA Company", "CA"),
            crate::pki::KeyType::EcdsaP256,
            crate::pki::Validity::days(1),
        )
        .expect("ca")
    }

    fn client_with(uris: &[&str]) -> CertificateDer<'static> {
        ca().issue(&crate::pki::LeafSpec {
            subject: crate::pki::demo_subject("Client Company", "Client"),
            sans: uris
                .iter()
                .map(|u| crate::pki::parse_san(&format!("URI:{u}")).expect("san"))
                .collect(),
            usage: crate::pki::Usage::Client,
            key_type: crate::pki::KeyType::EcdsaP256,
            validity: crate::pki::Validity::days(1),
        })
        .expect("leaf")
        .der
    }
}
