//! The mTLS-terminating reverse proxy (`--upstream http://HOST:PORT`): it forwards each
//! admitted request to a plain-HTTP application and tells it who the client is.
//!
//! A client must never be able to forge its identity, so the headers that could carry one
//! are removed from every request first, whatever their case: the four this proxy sets
//! ([`IDENTITY_HEADERS`]) and those other proxies use for the client certificate (nginx's
//! `X-SSL-*`, `SSL-Client-*`, `X-Client-Cert*`, `X-Client-Verify`, `X-Client-*-DN`).
//! Then the proxy adds, from the leaf the handshake verified and the certificates on its
//! path ([`crate::report::PeerPath`]):
//! - `Client-Cert` (RFC 9440): the leaf as a structured-field byte sequence, `:BASE64(DER):`;
//! - `Client-Cert-Chain` (RFC 9440): the certificates on the leaf's path that the client
//!   sent, as a list of byte sequences (absent when it sent only its leaf);
//! - `X-SSL-CERT`: the leaf as PEM, URL-escaped like nginx's `$ssl_client_escaped_cert`;
//! - `X-Forwarded-Client-Cert` (Envoy's format): `Hash=<sha256 hex of the DER>;
//!   Subject="<RFC 4514 subject>";URI=<the URI SAN>`, control characters escaped.
//!
//! These are built once per connection ([`ForwardedIdentity::from_chain`]); a client whose
//! identity cannot be put into them (its leaf does not parse, or it has more than one URI
//! SAN) is refused before any request. The addresses a client could claim (`Forwarded`,
//! `X-Forwarded-For`, `-Host`, `-Port`, `-Proto`, `X-Real-IP`) are removed too, and the
//! proxy sets `Forwarded: for=...;proto=https`, `X-Forwarded-For` and `X-Forwarded-Proto`.
//!
//! Bodies stream in both directions, without trailers (HTTP/1.1 to the application);
//! HTTP/2 `cookie` fields are joined into one. Connections to the upstream are pooled, and
//! at most [`MAX_UPSTREAM_REQUESTS`] requests are in flight to it at once. An upstream that
//! cannot be reached gets the client a 502 that says so (the details go to the log).

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::warn;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use crate::certinfo::hex;
use crate::response::{ResponseBody, text_response};

/// The identity headers this proxy sets; removed from every client request.
pub const IDENTITY_HEADERS: [&str; 4] = [
    "client-cert",
    "client-cert-chain",
    "x-forwarded-client-cert",
    "x-ssl-cert",
];

/// Address headers a client could forge; removed from every request (the proxy sets its
/// own `Forwarded`, `X-Forwarded-For` and `X-Forwarded-Proto`).
pub const ADDRESS_HEADERS: [&str; 6] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-real-ip",
];

/// The reason code when a verified client's identity cannot be forwarded.
pub const IDENTITY_UNFORWARDABLE: &str = "identity_unforwardable";

/// Most requests in flight to the upstream at once; more wait (within the response
/// timeout) for one to finish.
pub const MAX_UPSTREAM_REQUESTS: usize = 1024;

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
    /// From the leaf the client presented, followed by the certificates on its path (see
    /// [`crate::report::PeerPath`]). Fails, saying why, when the leaf does not parse, when
    /// it has more than one URI SAN (which one is the client?), or when a value cannot be
    /// put into a header.
    pub fn from_chain(chain: &[CertificateDer<'_>]) -> Result<Self, String> {
        let (leaf, rest) = chain
            .split_first()
            .ok_or("the client presented no certificate")?;
        let (_, cert) = X509Certificate::from_der(leaf)
            .map_err(|e| format!("its certificate does not parse ({e})"))?;
        let header = |what: &str, value: &[u8]| {
            HeaderValue::from_bytes(value)
                .map_err(|_| format!("its {what} cannot be written into a header"))
        };
        let byte_sequence = |der: &[u8]| format!(":{}:", BASE64.encode(der));
        let client_cert = header("certificate", byte_sequence(leaf).as_bytes())?;
        let client_cert_chain = if rest.is_empty() {
            None
        } else {
            let list: Vec<String> = rest.iter().map(|c| byte_sequence(c)).collect();
            Some(header("chain", list.join(", ").as_bytes())?)
        };
        let pem = crate::pki::to_pem("CERTIFICATE", leaf);
        let ssl_cert = header("certificate", url_escape(&pem).as_bytes())?;
        let mut xfcc = format!(
            "Hash={};Subject=\"{}\"",
            hex(&crate::sha256(leaf), "").to_ascii_lowercase(),
            rfc4514(cert.subject())
        );
        let uris: Vec<&str> = cert
            .subject_alternative_name()
            .map_err(|e| format!("its subject alternative names do not parse ({e})"))?
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
            several => {
                return Err(format!(
                    "its certificate has {} URI SANs; the proxy forwards exactly one identity",
                    several.len()
                ));
            }
        }
        let xfcc = header("subject", xfcc.as_bytes())?;
        Ok(Self {
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

/// Whether a client-sent header could claim a client certificate: the four this proxy sets,
/// or one another proxy (nginx, HAProxy, Traefik) uses for it.
fn is_identity_header(name: &str) -> bool {
    IDENTITY_HEADERS.contains(&name)
        || name.starts_with("x-ssl-")
        || name.starts_with("ssl-client-")
        || name.starts_with("x-client-cert")
        || name == "x-client-verify"
        || name == "x-client-dn"
        || (name.starts_with("x-client-") && name.ends_with("-dn"))
}

/// Removes every header that could claim a client identity ([`IDENTITY_HEADERS`], and
/// nginx's, HAProxy's and Traefik's certificate headers) and every [`ADDRESS_HEADERS`]
/// header; returns the identity ones that were present, sorted, for the log.
pub fn strip_identity_headers(headers: &mut HeaderMap) -> Vec<HeaderName> {
    let mut found: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_identity_header(n.as_str()) || ADDRESS_HEADERS.contains(&n.as_str()))
        .cloned()
        .collect();
    for name in &found {
        headers.remove(name);
    }
    found.retain(|n| is_identity_header(n.as_str()));
    found.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    found
}

/// HTTP/2 may split `cookie` into several fields; HTTP/1.1 needs one, joined with `; `
/// (RFC 9113 §8.2.3).
fn join_cookies(headers: &mut HeaderMap) {
    if headers.get_all(header::COOKIE).iter().nth(1).is_none() {
        return;
    }
    let joined: Vec<&[u8]> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if let Ok(value) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(header::COOKIE, value);
    }
}

/// The client's address as `Forwarded` writes it (RFC 7239): IPv6 in quoted brackets.
fn forwarded_for(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("for={v4};proto=https"),
        IpAddr::V6(v6) => format!("for=\"[{v6}]\";proto=https"),
    }
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

/// A body without its trailers: the HTTP/1.1 hop to (or from) the application does not
/// carry them, so they are dropped here, visibly, rather than by accident.
#[derive(Debug)]
pub struct NoTrailers<B> {
    inner: B,
}

impl<B> NoTrailers<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Self { inner }
    }
}

impl<B: Body + Unpin> Body for NoTrailers<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        loop {
            match std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                Some(Ok(frame)) if frame.is_trailers() => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The upstream's response body, holding its place under [`MAX_UPSTREAM_REQUESTS`] until
/// it has been sent (or dropped).
struct UpstreamBody {
    inner: NoTrailers<Incoming>,
    _slot: OwnedSemaphorePermit,
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Forwards requests to one upstream over pooled HTTP/1.1 connections.
#[derive(Clone, Debug)]
pub struct Proxy<B = Incoming> {
    upstream: Upstream,
    client: Client<HttpConnector, NoTrailers<B>>,
    slots: Arc<Semaphore>,
}

impl<B> Proxy<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    /// A proxy to `upstream`.
    pub fn new(upstream: Upstream) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Self {
            upstream,
            client,
            slots: Arc::new(Semaphore::new(MAX_UPSTREAM_REQUESTS)),
        }
    }

    /// The upstream.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Forwards `req` from the client at `peer`, with its identity, and returns the
    /// upstream's response (or a 502/504 that says what went wrong; the details are logged,
    /// not sent to the client).
    pub async fn forward(
        &self,
        req: Request<B>,
        identity: &ForwardedIdentity,
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
        let forged = strip_identity_headers(&mut parts.headers);
        strip_hop_by_hop(&mut parts.headers);
        if !forged.is_empty() {
            let names: Vec<&str> = forged.iter().map(HeaderName::as_str).collect();
            warn!(
                peer.addr = %peer,
                client,
                headers = %names.join(", "),
                "removed identity headers the client sent; only this proxy sets them"
            );
        }
        join_cookies(&mut parts.headers);
        identity.apply(&mut parts.headers);
        let ip = peer.ip().to_canonical();
        if let Ok(value) = HeaderValue::from_str(&ip.to_string()) {
            parts
                .headers
                .insert(HeaderName::from_static("x-forwarded-for"), value);
        }
        if let Ok(value) = HeaderValue::from_str(&forwarded_for(ip)) {
            parts.headers.insert(header::FORWARDED, value);
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
        let request = Request::from_parts(parts, NoTrailers::new(body));
        let exchange = async {
            let slot = match self.slots.clone().acquire_owned().await {
                Ok(slot) => slot,
                Err(_) => std::future::pending().await,
            };
            (self.client.request(request).await, slot)
        };
        match tokio::time::timeout(RESPONSE_TIMEOUT, exchange).await {
            Ok((Ok(response), slot)) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                let body = UpstreamBody {
                    inner: NoTrailers::new(body),
                    _slot: slot,
                };
                Response::from_parts(parts, body.boxed_unsync())
            }
            Ok((Err(e), _)) => {
                let why = causes(&e);
                warn!(peer.addr = %peer, client, upstream = %self.upstream, error = %why, "upstream request failed");
                text_response(
                    StatusCode::BAD_GATEWAY,
                    "bad gateway: the application behind this proxy did not answer; the \
                     proxy's log says why\n",
                )
            }
            Err(_) => {
                warn!(peer.addr = %peer, client, upstream = %self.upstream, timeout_s = RESPONSE_TIMEOUT.as_secs(), "upstream did not respond in time");
                text_response(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "gateway timeout: the application behind this proxy did not start its \
                         response within {}s\n",
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
    fn identity_and_address_headers_are_removed_whatever_their_case() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("Client-Cert", ":Zm9yZ2Vk:"),
            ("X-Forwarded-Client-Cert", "URI=spiffe://mtls.demo/admin"),
            ("x-ssl-cert", "forged"),
            ("CLIENT-CERT-CHAIN", ":Zm9v:"),
            ("X-SSL-Client-S-DN", "CN=admin"),
            ("X-SSL-Client-Verify", "SUCCESS"),
            ("SSL-Client-Cert", "forged"),
            ("X-Client-Cert", "forged"),
            ("X-Client-Cert-Chain", "forged"),
            ("X-Client-Verify", "SUCCESS"),
            ("X-Client-Subject-DN", "CN=admin"),
            ("X-Client-Issuer-DN", "CN=CA"),
            ("X-Client-DN", "CN=admin"),
            ("Forwarded", "for=203.0.113.66"),
            ("X-Real-IP", "203.0.113.66"),
            ("X-Forwarded-Host", "admin.internal"),
            ("X-Forwarded-Port", "443"),
            ("X-Forwarded-For", "203.0.113.66"),
            ("accept", "*/*"),
            ("x-client-id", "kept: not a certificate header"),
        ] {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_static(value),
            );
        }
        headers.append("client-cert", HeaderValue::from_static(":ZHVw:"));
        let removed = strip_identity_headers(&mut headers);
        let names: Vec<&str> = removed.iter().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            [
                "client-cert",
                "client-cert-chain",
                "ssl-client-cert",
                "x-client-cert",
                "x-client-cert-chain",
                "x-client-dn",
                "x-client-issuer-dn",
                "x-client-subject-dn",
                "x-client-verify",
                "x-forwarded-client-cert",
                "x-ssl-cert",
                "x-ssl-client-s-dn",
                "x-ssl-client-verify",
            ]
        );
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-client-id"]);
    }

    /// A body of one data frame, then trailers.
    struct WithTrailers(Vec<Frame<Bytes>>);

    impl Body for WithTrailers {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.0.is_empty() {
                Poll::Ready(None)
            } else {
                Poll::Ready(Some(Ok(self.0.remove(0))))
            }
        }
    }

    #[tokio::test]
    async fn trailers_are_dropped_and_data_is_kept() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", HeaderValue::from_static("abc"));
        let body = NoTrailers::new(WithTrailers(vec![
            Frame::data(Bytes::from_static(b"hello")),
            Frame::trailers(trailers),
        ]));
        let collected = body.collect().await.expect("a body");
        assert!(collected.trailers().is_none());
        assert_eq!(collected.to_bytes(), Bytes::from_static(b"hello"));
    }

    #[test]
    fn cookie_fields_are_joined_for_http_1_1() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1"));
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        headers.append(header::COOKIE, HeaderValue::from_static("c=3"));
        join_cookies(&mut headers);
        let cookies: Vec<&HeaderValue> = headers.get_all(header::COOKIE).iter().collect();
        assert_eq!(cookies, [&HeaderValue::from_static("a=1; b=2; c=3")]);
    }

    #[test]
    fn forwarded_names_the_client_as_rfc_7239_writes_it() {
        assert_eq!(
            forwarded_for("192.0.2.7".parse().expect("ip")),
            "for=192.0.2.7;proto=https"
        );
        assert_eq!(
            forwarded_for("2001:db8::1".parse().expect("ip")),
            "for=\"[2001:db8::1]\";proto=https"
        );
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(
            forwarded_for(mapped.to_canonical()),
            "for=192.0.2.7;proto=https"
        );
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
        assert!(err.contains("2 URI SANs"), "{err}");
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        let err = ForwardedIdentity::from_chain(&[garbage]).expect_err("not a certificate");
        assert!(err.contains("does not parse"), "{err}");
        assert!(ForwardedIdentity::from_chain(&[]).is_err());
    }
}
