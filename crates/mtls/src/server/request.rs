//! What every request must be before the server answers it or forwards it, checked in one
//! place, for HTTP/1.1 and HTTP/2 alike, proxying or not: one unambiguous target host with
//! no userinfo, and a method the server serves. A request that fails is refused with a 4xx
//! whose body says why ([`Refusal`]); the connection logs the reason.
//!
//! Which host a request addresses is decided here too ([`target_host`]), so the proxy tells
//! the application about the same host the checks looked at.

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};

use super::response::{ResponseBody, text_response};

/// The methods the server serves (every one but CONNECT), for the `Allow` header of a 405.
pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Why a request is refused before it is answered or forwarded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// More than one `Host` header: which host is meant? RFC 9112 §3.2 requires a 400.
    #[error("it has {0} Host headers; a request names exactly one host (RFC 9112 §3.2)")]
    SeveralHosts(usize),
    /// The host has userinfo (`user@host`), in the request target (HTTP/2 `:authority`, an
    /// absolute-form target) or in `Host`: http and https URIs carry none (RFC 9110
    /// §4.2.4), and the application would take it for part of the host.
    #[error("its {0} has userinfo (user@host); http and https URIs carry none (RFC 9110 §4.2.4)")]
    Userinfo(&'static str),
    /// HTTP/2 with a `Host` header that names another host than `:authority` (RFC 9113
    /// §8.3.1).
    #[error("its Host header names another host than :authority (RFC 9113 §8.3.1)")]
    HostMismatch,
    /// CONNECT: this server does not open tunnels.
    #[error("CONNECT is not served here; this server does not open tunnels")]
    Connect,
}

impl Refusal {
    /// The reason code in the log.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::SeveralHosts(_) => "several_hosts",
            Refusal::Userinfo(_) => "userinfo_in_authority",
            Refusal::HostMismatch => "host_mismatch",
            Refusal::Connect => "connect_not_allowed",
        }
    }

    /// 400 for a malformed request, 405 for CONNECT.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Connect => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The answer: the status, a body that says why, `Allow` on a 405. Over HTTP/1.1 the
    /// connection then closes (`close`): the next bytes of a client that sent a malformed
    /// request, or meant to tunnel, are not read as requests.
    pub fn response(&self, close: bool) -> Response<ResponseBody> {
        let status = self.status();
        let what = status
            .canonical_reason()
            .unwrap_or("refused")
            .to_ascii_lowercase();
        let mut response = text_response(status, format!("{what}: {self}\n"));
        let headers = response.headers_mut();
        if status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
        }
        if close {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Checks a request: one `Host` at most, no userinfo in its host, `Host` agreeing with an
/// HTTP/2 `:authority`, and not CONNECT (but for an HTTP/2 extended CONNECT for a WebSocket).
pub fn check<B>(req: &Request<B>) -> Result<(), Refusal> {
    let hosts: Vec<&HeaderValue> = req.headers().get_all(header::HOST).iter().collect();
    if hosts.len() > 1 {
        return Err(Refusal::SeveralHosts(hosts.len()));
    }
    let authority = req.uri().authority().map(|a| a.as_str());
    if authority.is_some_and(|a| a.contains('@')) {
        return Err(Refusal::Userinfo(if req.version() == Version::HTTP_2 {
            ":authority"
        } else {
            "request target"
        }));
    }
    let host = hosts.first().map(|h| h.as_bytes());
    if host.is_some_and(|h| h.contains(&b'@')) {
        return Err(Refusal::Userinfo("Host header"));
    }
    if req.version() == Version::HTTP_2
        && let (Some(authority), Some(host)) = (authority, host)
        && !authority.as_bytes().eq_ignore_ascii_case(host)
    {
        return Err(Refusal::HostMismatch);
    }
    // An HTTP/2 extended CONNECT (RFC 8441) opens a WebSocket, not a tunnel to a host of the
    // client's choosing; the server offers it only when it proxies.
    let websocket = req
        .extensions()
        .get::<hyper::ext::Protocol>()
        .is_some_and(|p| super::proxy::tunnels_protocol(p.as_str()));
    if req.method() == Method::CONNECT && !websocket {
        return Err(Refusal::Connect);
    }
    Ok(())
}

/// The host a request addresses: the target's authority when it has one (HTTP/2
/// `:authority`, or an absolute-form target, whose host wins over `Host` by RFC 9112
/// §3.2.3), otherwise its `Host` header.
pub fn target_host(uri: &Uri, headers: &HeaderMap) -> Option<HeaderValue> {
    uri.authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        .or_else(|| headers.get(header::HOST).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, method: Method, uri: &str, hosts: &[&'static str]) -> Request<()> {
        let mut builder = Request::builder().version(version).method(method).uri(uri);
        for host in hosts {
            builder = builder.header(header::HOST, *host);
        }
        builder.body(()).expect("a request")
    }

    #[test]
    fn requests_with_one_plain_host_pass() {
        const HTTP_11: Version = Version::HTTP_11;
        const HTTP_2: Version = Version::HTTP_2;
        for req in [
            request(HTTP_11, Method::GET, "/", &["localhost:8443"]),
            request(HTTP_11, Method::POST, "/submit?x=1", &[]),
            request(HTTP_11, Method::GET, "http://localhost/", &["other"]),
            request(HTTP_2, Method::GET, "https://localhost:8443/", &[]),
            request(
                HTTP_2,
                Method::GET,
                "https://LOCALHOST:8443/",
                &["localhost:8443"],
            ),
            request(HTTP_2, Method::DELETE, "https://localhost/x", &[]),
        ] {
            assert_eq!(check(&req), Ok(()), "{req:?}");
        }
    }

    #[test]
    fn malformed_targets_and_connect_are_refused_with_their_reason() {
        const HTTP_11: Version = Version::HTTP_11;
        const HTTP_2: Version = Version::HTTP_2;
        let cases = [
            (
                request(HTTP_11, Method::GET, "/", &["localhost", "evil"]),
                Refusal::SeveralHosts(2),
            ),
            (
                request(HTTP_2, Method::GET, "https://localhost/", &["a", "b", "c"]),
                Refusal::SeveralHosts(3),
            ),
            (
                request(HTTP_2, Method::GET, "https://user@evil:1/", &[]),
                Refusal::Userinfo(":authority"),
            ),
            (
                request(HTTP_11, Method::GET, "http://user:pw@evil/", &[]),
                Refusal::Userinfo("request target"),
            ),
            (
                request(HTTP_11, Method::GET, "/", &["user@evil:1"]),
                Refusal::Userinfo("Host header"),
            ),
            (
                request(HTTP_2, Method::GET, "https://localhost/", &["evil"]),
                Refusal::HostMismatch,
            ),
            (
                request(HTTP_11, Method::CONNECT, "evil:443", &["evil:443"]),
                Refusal::Connect,
            ),
            (
                request(HTTP_2, Method::CONNECT, "https://evil:443", &[]),
                Refusal::Connect,
            ),
        ];
        for (req, refusal) in cases {
            assert_eq!(check(&req), Err(refusal), "{req:?}");
        }
    }

    #[test]
    fn an_http2_extended_connect_passes_only_for_a_websocket() {
        let mut req = request(
            Version::HTTP_2,
            Method::CONNECT,
            "https://localhost/ws",
            &[],
        );
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        assert_eq!(check(&req), Ok(()));
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("connect-udp"));
        assert_eq!(check(&req), Err(Refusal::Connect));
    }

    #[test]
    fn a_refusal_says_why_and_a_405_says_what_is_allowed() {
        let bad = Refusal::SeveralHosts(2).response(true);
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert_eq!(bad.headers()[header::CONNECTION], "close");
        assert!(bad.headers().get(header::ALLOW).is_none());
        let connect = Refusal::Connect.response(false);
        assert_eq!(connect.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(connect.headers()[header::ALLOW], ALLOWED_METHODS);
        assert!(connect.headers().get(header::CONNECTION).is_none());
        assert_eq!(
            Refusal::Userinfo(":authority").to_string(),
            "its :authority has userinfo (user@host); http and https URIs carry none (RFC 9110 \
             §4.2.4)"
        );
    }

    #[test]
    fn the_target_host_is_the_authority_when_there_is_one() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("from-host:1"));
        let origin: Uri = "/x".parse().expect("uri");
        let absolute: Uri = "http://from-target:2/x".parse().expect("uri");
        assert_eq!(
            target_host(&origin, &headers),
            Some(HeaderValue::from_static("from-host:1"))
        );
        assert_eq!(
            target_host(&absolute, &headers),
            Some(HeaderValue::from_static("from-target:2"))
        );
        assert_eq!(target_host(&origin, &HeaderMap::new()), None);
    }
}
