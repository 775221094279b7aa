//! The mTLS-terminating reverse proxy (`--upstream http://HOST:PORT`): it forwards each
//! admitted request to a plain-HTTP application and tells it who the client is.
//!
//! A client must never be able to forge its identity, so the headers that carry it are
//! removed from every request first, whatever their case ([`IDENTITY_HEADERS`]). Then the
//! proxy adds, from the chain the client presented and the handshake verified:
//! - `Client-Cert` (RFC 9440): the leaf as a structured-field byte sequence, `:BASE64(DER):`;
//! - `Client-Cert-Chain` (RFC 9440): the rest of the chain the client sent, as a list of
//!   byte sequences (absent when the client sent only its leaf);
//! - `X-SSL-CERT`: the leaf as PEM, URL-escaped like nginx's `$ssl_client_escaped_cert`;
//! - `X-Forwarded-Client-Cert` (Envoy's format): `Hash=<sha256 hex of the DER>;
//!   Subject="<RFC 4514 subject>";URI=<first URI SAN>`.
//!
//! `X-Forwarded-For` and `X-Forwarded-Proto` are replaced too (the client's IP; `https`).
//! Bodies stream in both directions; connections to the upstream are pooled. An upstream
//! that cannot be reached gets the client a 502 that says so.

use std::error::Error as StdError;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use tracing::warn;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use crate::certinfo::hex;
use crate::response::{ResponseBody, text_response};

/// The identity headers removed from every client request: only the proxy sets them.
pub const IDENTITY_HEADERS: [&str; 4] = [
    "client-cert",
    "client-cert-chain",
    "x-forwarded-client-cert",
    "x-ssl-cert",
];

/// How long the upstream may take to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the upstream may take to start its response.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// A plain-HTTP application to forward to: `http://HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    authority: String,
}

impl Upstream {
    /// `HOST:PORT`.
    pub fn authority(&self) -> &str {
        &self.authority
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

impl FromStr for Upstream {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let example = "like http://127.0.0.1:8080";
        let uri: Uri = text
            .trim()
            .parse()
            .map_err(|e| format!("--upstream {text:?} is not a URL ({e}); write it {example}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "--upstream {text:?} uses {other}://; the proxy speaks plain HTTP to the \
                     application behind it: write it {example}"
                ));
            }
            None => {
                return Err(format!(
                    "--upstream {text:?} has no scheme; write it {example}"
                ));
            }
        }
        let Some(authority) = uri.authority() else {
            return Err(format!(
                "--upstream {text:?} has no host; write it {example}"
            ));
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!(
                "--upstream {text:?} has a path; requests keep their own path, so give only \
                 the scheme, host and port, {example}"
            ));
        }
        let port = authority.port_u16().unwrap_or(80);
        Ok(Self {
            authority: format!("{}:{port}", authority.host()),
        })
    }
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
    /// From the chain the client presented (leaf first); `None` without a leaf or when the
    /// leaf does not parse.
    pub fn from_chain(chain: &[CertificateDer<'_>]) -> Option<Self> {
        let (leaf, rest) = chain.split_first()?;
        let (_, cert) = X509Certificate::from_der(leaf).ok()?;
        let byte_sequence = |der: &[u8]| format!(":{}:", BASE64.encode(der));
        let client_cert = HeaderValue::from_str(&byte_sequence(leaf)).ok()?;
        let client_cert_chain = if rest.is_empty() {
            None
        } else {
            let list: Vec<String> = rest.iter().map(|c| byte_sequence(c)).collect();
            HeaderValue::from_str(&list.join(", ")).ok()
        };
        let pem = crate::pki::to_pem("CERTIFICATE", leaf);
        let ssl_cert = HeaderValue::from_str(&url_escape(&pem)).ok()?;
        let mut xfcc = format!(
            "Hash={};Subject=\"{}\"",
            hex(&crate::sha256(leaf), "").to_ascii_lowercase(),
            rfc4514(cert.subject())
        );
        let uri = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .and_then(|san| {
                san.value.general_names.iter().find_map(|n| match n {
                    x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
                    _ => None,
                })
            });
        if let Some(uri) = uri {
            xfcc.push_str(";URI=");
            xfcc.push_str(&xfcc_value(&uri));
        }
        let xfcc = HeaderValue::from_bytes(xfcc.as_bytes()).ok()?;
        Some(Self {
            client_cert,
            client_cert_chain,
            ssl_cert,
            xfcc,
        })
    }

    fn apply(&self, headers: &mut HeaderMap) {
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

/// Removes every [`IDENTITY_HEADERS`] header; returns the names that were present.
pub fn strip_identity_headers(headers: &mut HeaderMap) -> Vec<&'static str> {
    IDENTITY_HEADERS
        .into_iter()
        .filter(|name| headers.remove(*name).is_some())
        .collect()
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those `Connection` names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
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
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// An XFCC value, quoted when it holds a separator.
fn xfcc_value(value: &str) -> String {
    if value.contains([',', ';', '=', '"', ' ']) {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        value.to_string()
    }
}

/// Forwards requests to one upstream over pooled HTTP/1.1 connections.
#[derive(Clone, Debug)]
pub struct Proxy {
    upstream: Upstream,
    client: Client<HttpConnector, Incoming>,
}

impl Proxy {
    /// A proxy to `upstream`.
    pub fn new(upstream: Upstream) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Self { upstream, client }
    }

    /// The upstream.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Forwards `req` from the client at `peer`, with its identity, and returns the
    /// upstream's response (or a 502/504 that says what went wrong).
    pub async fn forward(
        &self,
        req: Request<Incoming>,
        identity: Option<&ForwardedIdentity>,
        peer: SocketAddr,
        client: &str,
    ) -> Response<ResponseBody> {
        let (mut parts, body) = req.into_parts();
        let host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        strip_hop_by_hop(&mut parts.headers);
        let forged = strip_identity_headers(&mut parts.headers);
        if !forged.is_empty() {
            warn!(
                peer.addr = %peer,
                client,
                headers = %forged.join(", "),
                "removed identity headers the client sent; only this proxy sets them"
            );
        }
        if let Some(id) = identity {
            id.apply(&mut parts.headers);
        }
        if let Ok(ip) = HeaderValue::from_str(&peer.ip().to_string()) {
            parts
                .headers
                .insert(HeaderName::from_static("x-forwarded-for"), ip);
        }
        parts.headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static("https"),
        );
        if let Some(host) = host {
            parts.headers.insert(header::HOST, host);
        }
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        parts.uri = match Uri::builder()
            .scheme("http")
            .authority(self.upstream.authority.as_str())
            .path_and_query(path)
            .build()
        {
            Ok(uri) => uri,
            Err(e) => {
                return text_response(
                    StatusCode::BAD_REQUEST,
                    format!("bad request: cannot forward this path ({e})\n"),
                );
            }
        };
        parts.version = Version::HTTP_11;
        let request = Request::from_parts(parts, body);
        match tokio::time::timeout(RESPONSE_TIMEOUT, self.client.request(request)).await {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body.boxed_unsync())
            }
            Ok(Err(e)) => {
                let why = causes(&e);
                warn!(peer.addr = %peer, client, upstream = %self.upstream, error = %why, "upstream request failed");
                text_response(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "bad gateway: the upstream {} did not answer ({why}); is the application \
                         behind this proxy running?\n",
                        self.upstream
                    ),
                )
            }
            Err(_) => {
                warn!(peer.addr = %peer, client, upstream = %self.upstream, timeout_s = RESPONSE_TIMEOUT.as_secs(), "upstream did not respond in time");
                text_response(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "gateway timeout: the upstream {} did not start its response within {}s\n",
                        self.upstream,
                        RESPONSE_TIMEOUT.as_secs()
                    ),
                )
            }
        }
    }
}

/// An error and its causes, innermost last: "client error (Connect): tcp connect error:
/// Connection refused (os error 111)".
fn causes(e: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_plain_http_origins() {
        assert_eq!(
            "http://127.0.0.1:8080"
                .parse::<Upstream>()
                .map(|u| u.to_string()),
            Ok("http://127.0.0.1:8080".to_string())
        );
        assert_eq!(
            "http://app.internal/"
                .parse::<Upstream>()
                .map(|u| u.authority().to_string()),
            Ok("app.internal:80".to_string())
        );
        let err = "https://127.0.0.1:8080"
            .parse::<Upstream>()
            .expect_err("https");
        assert!(err.contains("plain HTTP"), "{err}");
        let err = "http://127.0.0.1:8080/api"
            .parse::<Upstream>()
            .expect_err("path");
        assert!(err.contains("has a path"), "{err}");
        assert!("127.0.0.1:8080".parse::<Upstream>().is_err());
    }

    #[test]
    fn identity_headers_are_removed_whatever_their_case() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("Client-Cert", ":Zm9yZ2Vk:"),
            ("X-Forwarded-Client-Cert", "URI=spiffe://mtls.demo/admin"),
            ("x-ssl-cert", "forged"),
            ("CLIENT-CERT-CHAIN", ":Zm9v:"),
            ("accept", "*/*"),
        ] {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_static(value),
            );
        }
        let removed = strip_identity_headers(&mut headers);
        assert_eq!(removed.len(), 4, "{removed:?}");
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("accept"));
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
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
        let hash = hex(&crate::sha256(&leaf.der), "").to_ascii_lowercase();
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
}
