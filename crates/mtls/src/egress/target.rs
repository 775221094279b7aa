//! Not an open proxy: every request goes to the one upstream, whatever it names. A request
//! that names another host (an absolute-form target, `GET http://evil/ HTTP/1.1`, or
//! CONNECT) is refused with a sentence, never forwarded there; a request for the upstream
//! itself in absolute form is forwarded like any other. CONNECT is refused even to the
//! upstream: a tunnel would let the application skip this proxy's certificate.

use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};

use crate::client::Url;
use crate::response::{ResponseBody, explained};

/// Why a request is not forwarded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// It names another host than the upstream.
    #[error(
        "this proxy forwards only to {upstream}; it is not an open proxy, so it will not \
         forward to {asked}: send plain HTTP with a path (GET /path) and it goes to {upstream}"
    )]
    OtherHost {
        /// The host and port it asked for.
        asked: String,
        /// The configured upstream.
        upstream: String,
    },
    /// CONNECT to the upstream: no tunnels.
    #[error(
        "CONNECT is not served: this proxy forwards requests to {upstream} over mutual TLS \
         with its own certificate, it does not open tunnels; send plain HTTP (GET /path) instead"
    )]
    Tunnel {
        /// The configured upstream.
        upstream: String,
    },
    /// More than one `Host` header: which host is meant? RFC 9112 §3.2 requires a 400.
    #[error("it has {0} Host headers; a request names exactly one host (RFC 9112 §3.2)")]
    SeveralHosts(usize),
    /// Userinfo in the target (`http://user@host/`): http and https URIs carry none.
    #[error(
        "its target has userinfo (user@host); http and https URIs carry none (RFC 9110 §4.2.4)"
    )]
    Userinfo,
}

impl Refusal {
    /// The reason code in the log and the metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::OtherHost { .. } => "not_the_upstream",
            Refusal::Tunnel { .. } => "connect_not_allowed",
            Refusal::SeveralHosts(_) => "several_hosts",
            Refusal::Userinfo => "userinfo_in_authority",
        }
    }

    /// 403 for another host, 405 for a tunnel, 400 for a malformed request.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::OtherHost { .. } => StatusCode::FORBIDDEN,
            Refusal::Tunnel { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::SeveralHosts(_) | Refusal::Userinfo => StatusCode::BAD_REQUEST,
        }
    }

    /// The answer: the status and a body that says why; the connection then closes, so
    /// the next bytes of an application that meant to tunnel are not read as requests.
    pub fn response(&self) -> Response<ResponseBody> {
        let mut response = explained(self.status(), self);
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

/// Checks that `req` may go to `upstream`: at most one `Host` (whatever it names: the
/// upstream's replaces it), and a target that is a path, or names the upstream itself.
pub fn check<B>(req: &Request<B>, upstream: &Url) -> Result<(), Refusal> {
    let hosts = req.headers().get_all(header::HOST).iter().count();
    if hosts > 1 {
        return Err(Refusal::SeveralHosts(hosts));
    }
    let origin = || upstream_origin(upstream);
    if req.method() == Method::CONNECT {
        return Err(match names_upstream(req.uri(), upstream) {
            Some(true) => Refusal::Tunnel { upstream: origin() },
            _ => Refusal::OtherHost {
                asked: asked(req.uri()),
                upstream: origin(),
            },
        });
    }
    if req
        .uri()
        .authority()
        .is_some_and(|a| a.as_str().contains('@'))
    {
        return Err(Refusal::Userinfo);
    }
    match names_upstream(req.uri(), upstream) {
        Some(false) => Err(Refusal::OtherHost {
            asked: asked(req.uri()),
            upstream: origin(),
        }),
        _ => Ok(()),
    }
}

/// Whether a target with an authority names the upstream (host, case-insensitive, and port,
/// the scheme's default when it has none); `None` for a path.
fn names_upstream(uri: &Uri, upstream: &Url) -> Option<bool> {
    let authority = uri.authority()?;
    let port = authority.port_u16().or(match uri.scheme_str() {
        Some("http") => Some(80),
        Some("https") => Some(443),
        _ => None,
    });
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    Some(host.eq_ignore_ascii_case(upstream.host()) && port == Some(upstream.port()))
}

fn asked(uri: &Uri) -> String {
    let text = uri
        .authority()
        .map_or_else(|| uri.to_string(), |a| a.to_string());
    crate::format::escape_controls(&text).into_owned()
}

fn upstream_origin(upstream: &Url) -> String {
    format!("https://{}", upstream.authority())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream() -> Url {
        "https://api.internal:8443".parse().expect("url")
    }

    fn request(method: Method, target: &str, hosts: &[&'static str]) -> Request<()> {
        let mut builder = Request::builder().method(method).uri(target);
        for host in hosts {
            builder = builder.header(header::HOST, *host);
        }
        builder.body(()).expect("a request")
    }

    #[test]
    fn paths_and_the_upstream_itself_are_forwarded() {
        for req in [
            request(Method::GET, "/orders?id=7", &["127.0.0.1:8080"]),
            request(Method::POST, "/", &[]),
            request(Method::GET, "https://api.internal:8443/x", &[]),
            request(Method::GET, "http://API.internal:8443/x", &["whatever"]),
        ] {
            assert_eq!(check(&req, &upstream()), Ok(()), "{req:?}");
        }
    }

    #[test]
    fn other_hosts_tunnels_and_malformed_requests_are_refused_with_their_reason() {
        let other = |asked: &str| Refusal::OtherHost {
            asked: asked.into(),
            upstream: "https://api.internal:8443".into(),
        };
        let cases = [
            (request(Method::GET, "http://evil/", &[]), other("evil")),
            (
                request(Method::GET, "https://api.internal/", &[]),
                other("api.internal"),
            ),
            (
                request(Method::GET, "http://api.internal:9999/", &[]),
                other("api.internal:9999"),
            ),
            (
                request(Method::CONNECT, "evil:443", &["evil:443"]),
                other("evil:443"),
            ),
            (
                request(Method::CONNECT, "api.internal:8443", &[]),
                Refusal::Tunnel {
                    upstream: "https://api.internal:8443".into(),
                },
            ),
            (
                request(Method::GET, "/", &["a", "b"]),
                Refusal::SeveralHosts(2),
            ),
            (
                request(Method::GET, "http://user@api.internal:8443/", &[]),
                Refusal::Userinfo,
            ),
        ];
        for (req, refusal) in cases {
            assert_eq!(check(&req, &upstream()), Err(refusal), "{req:?}");
        }
    }

    #[test]
    fn a_refusal_says_why_and_closes() {
        let refused = Refusal::OtherHost {
            asked: "evil".into(),
            upstream: "https://api.internal:8443".into(),
        }
        .response();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(refused.headers()[header::CONNECTION], "close");
    }
}
