//! Where the proxy forwards, from `--upstream`: the scheme says how it talks to the
//! application. `http://` is HTTP/1.1; `h2c://` is HTTP/2 without TLS, by prior knowledge
//! (what gRPC servers speak); `https://` is TLS, with the application's certificate verified
//! against `--upstream-ca` and the host named here, and the proxy's own certificate
//! (`--upstream-cert`) presented when the application asks for one. Over `https://` the two
//! sides agree on HTTP/2 or HTTP/1.1 by ALPN.

use std::fmt;
use std::str::FromStr;

use hyper::Uri;
use rustls::pki_types::ServerName;

/// How the proxy talks to the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `http://`: HTTP/1.1, no TLS.
    Http1,
    /// `h2c://`: HTTP/2 without TLS, by prior knowledge.
    H2c,
    /// `https://`: TLS; HTTP/2 or HTTP/1.1 by ALPN.
    Https,
}

impl Protocol {
    /// The scheme as `--upstream` writes it.
    pub fn scheme(self) -> &'static str {
        match self {
            Protocol::Http1 => "http",
            Protocol::H2c => "h2c",
            Protocol::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Protocol::Http1 | Protocol::H2c => 80,
            Protocol::Https => 443,
        }
    }
}

/// An application to forward to: `http://`, `h2c://` or `https://HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    protocol: Protocol,
    /// The host, without IPv6 brackets: the name its certificate must have (https).
    host: String,
    authority: String,
}

impl Upstream {
    /// `HOST:PORT`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// How the proxy talks to it.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The name its certificate must have (https): the host of `--upstream`.
    pub fn server_name(&self) -> Option<ServerName<'static>> {
        ServerName::try_from(self.host.clone()).ok()
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.protocol.scheme(), self.authority)
    }
}

/// The schemes `--upstream` takes, for error messages.
const SCHEMES: &str = "http://HOST:PORT (HTTP/1.1), h2c://HOST:PORT (HTTP/2 without TLS, as \
                       gRPC servers speak it) or https://HOST:PORT (TLS, with --upstream-ca, \
                       --upstream-cert and --upstream-key)";

/// Why an `--upstream` value is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// It does not parse as a URL.
    #[error("--upstream {text:?} is not a URL ({why}); write it like http://127.0.0.1:8080")]
    NotAUrl {
        /// As typed.
        text: String,
        /// The parser's reason.
        why: String,
    },
    /// Its scheme is none the proxy speaks.
    #[error("--upstream {text:?} uses {scheme}://; write {SCHEMES}")]
    Scheme {
        /// As typed.
        text: String,
        /// The scheme it has.
        scheme: String,
    },
    /// It has no scheme.
    #[error("--upstream {0:?} has no scheme; write {SCHEMES}")]
    NoScheme(String),
    /// It has no host.
    #[error("--upstream {0:?} has no host; write it like http://127.0.0.1:8080")]
    NoHost(String),
    /// An https host that is neither a DNS name nor an IP address: no certificate can name it.
    #[error(
        "--upstream {text:?} names {host:?}, which is neither a DNS name nor an IP address, so \
         no certificate can name it"
    )]
    NotAName {
        /// As typed.
        text: String,
        /// The host.
        host: String,
    },
    /// It has a path or a query.
    #[error(
        "--upstream {0:?} has a path; requests keep their own path, so give only the scheme, \
         host and port, like http://127.0.0.1:8080"
    )]
    HasPath(String),
}

impl FromStr for Upstream {
    type Err = UpstreamError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let uri: Uri = text
            .trim()
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| UpstreamError::NotAUrl {
                text: text.to_string(),
                why: e.to_string(),
            })?;
        let protocol = match uri.scheme_str() {
            Some("http") => Protocol::Http1,
            Some("h2c") => Protocol::H2c,
            Some("https") => Protocol::Https,
            Some(other) => {
                return Err(UpstreamError::Scheme {
                    text: text.to_string(),
                    scheme: other.to_string(),
                });
            }
            None => return Err(UpstreamError::NoScheme(text.to_string())),
        };
        let Some(authority) = uri.authority() else {
            return Err(UpstreamError::NoHost(text.to_string()));
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(UpstreamError::HasPath(text.to_string()));
        }
        let host = authority.host();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if protocol == Protocol::Https && ServerName::try_from(bare).is_err() {
            return Err(UpstreamError::NotAName {
                text: text.to_string(),
                host: bare.to_string(),
            });
        }
        let port = authority.port_u16().unwrap_or(protocol.default_port());
        Ok(Self {
            protocol,
            host: bare.to_string(),
            authority: format!("{host}:{port}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<(Protocol, String), UpstreamError> {
        text.parse::<Upstream>()
            .map(|u| (u.protocol(), u.to_string()))
    }

    #[test]
    fn upstreams_are_http_h2c_or_https_origins() {
        assert_eq!(
            parsed("http://127.0.0.1:8080"),
            Ok((Protocol::Http1, "http://127.0.0.1:8080".into()))
        );
        assert_eq!(
            parsed("http://app.internal/"),
            Ok((Protocol::Http1, "http://app.internal:80".into()))
        );
        assert_eq!(
            parsed("h2c://127.0.0.1:50051"),
            Ok((Protocol::H2c, "h2c://127.0.0.1:50051".into()))
        );
        assert_eq!(
            parsed("https://app.internal"),
            Ok((Protocol::Https, "https://app.internal:443".into()))
        );
        let v6: Upstream = "https://[::1]:8443".parse().expect("an IPv6 upstream");
        assert_eq!(v6.authority(), "[::1]:8443");
        assert!(matches!(v6.server_name(), Some(ServerName::IpAddress(_))));
    }

    #[test]
    fn other_schemes_paths_and_bare_addresses_are_refused_with_the_fix() {
        let err = "ftp://127.0.0.1:8080".parse::<Upstream>().expect_err("ftp");
        assert!(matches!(err, UpstreamError::Scheme { .. }), "{err}");
        assert!(err.to_string().contains("h2c://HOST:PORT"), "{err}");
        let err = "http://127.0.0.1:8080/api"
            .parse::<Upstream>()
            .expect_err("path");
        assert!(matches!(err, UpstreamError::HasPath(_)), "{err}");
        assert!(err.to_string().contains("has a path"), "{err}");
        assert!("127.0.0.1:8080".parse::<Upstream>().is_err());
        let err = "https://a..b:1".parse::<Upstream>().expect_err("no name");
        assert!(matches!(err, UpstreamError::NotAName { .. }), "{err}");
    }
}
