//! Header hygiene, for both proxies (the server's `--upstream` and `client proxy`): what a
//! client must never be able to send to the application (headers whose names hold an
//! underscore, the client-certificate headers of any proxy, address headers it could forge,
//! hop-by-hop headers), and the headers a proxy sets in their place.
//!
//! Underscores: WSGI, CGI, PHP and Rack fold `_` and `-` into one name (`HTTP_CLIENT_CERT`),
//! so an application would see a client's `Client_Cert` merged with the proxy's
//! `Client-Cert`. Every request header whose name holds an underscore is dropped, as nginx
//! does by default (`underscores_in_headers off`): the whole class, not a list of spellings.
//!
//! Client-certificate headers: [`CLIENT_CERT_HEADERS`] is the one list of the names and
//! prefixes any proxy uses to tell an application about a client certificate (the server's
//! four among them). Whatever a client sends under them is removed.

use std::net::IpAddr;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

/// How an entry of [`CLIENT_CERT_HEADERS`] matches a header name (lowercase, as hyper
/// stores names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamePattern {
    /// This name exactly.
    Exact(&'static str),
    /// Every name that starts with this.
    Prefix(&'static str),
    /// Every name that starts with the first and ends with the second, such as
    /// `x-client-*-dn`.
    Around(&'static str, &'static str),
}

impl NamePattern {
    /// Whether `name` (lowercase) matches.
    pub fn matches(self, name: &str) -> bool {
        match self {
            NamePattern::Exact(exact) => name == exact,
            NamePattern::Prefix(prefix) => name.starts_with(prefix),
            NamePattern::Around(prefix, suffix) => {
                name.len() >= prefix.len() + suffix.len()
                    && name.starts_with(prefix)
                    && name.ends_with(suffix)
            }
        }
    }
}

/// One kind of client-certificate header: how its names look, and who sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertHeader {
    /// The names it covers.
    pub pattern: NamePattern,
    /// Which proxy (or specification) sets it, for readers of this list.
    pub set_by: &'static str,
}

const fn exact(name: &'static str, set_by: &'static str) -> CertHeader {
    CertHeader {
        pattern: NamePattern::Exact(name),
        set_by,
    }
}

const fn prefix(prefix: &'static str, set_by: &'static str) -> CertHeader {
    CertHeader {
        pattern: NamePattern::Prefix(prefix),
        set_by,
    }
}

/// Every header a proxy uses to tell an application about a client certificate: a client
/// that sends one of these is trying to speak for the proxy, so all of them are removed
/// from every request. The four this proxy sets are among them.
pub const CLIENT_CERT_HEADERS: &[CertHeader] = &[
    exact("client-cert", "RFC 9440 (this proxy)"),
    exact("client-cert-chain", "RFC 9440 (this proxy)"),
    exact("x-forwarded-client-cert", "Envoy's XFCC (this proxy)"),
    prefix(
        "x-ssl-",
        "nginx and HAProxy conventions: X-SSL-CERT (this proxy), X-SSL-Client-*",
    ),
    prefix("ssl-client-", "Apache mod_ssl's SSL_CLIENT_* as headers"),
    prefix("x-client-cert", "nginx conventions: X-Client-Cert, -Chain"),
    exact("x-client-verify", "nginx conventions"),
    exact("x-client-dn", "nginx conventions"),
    CertHeader {
        pattern: NamePattern::Around("x-client-", "-dn"),
        set_by: "nginx conventions: X-Client-Subject-DN, X-Client-Issuer-DN",
    },
    prefix(
        "x-forwarded-tls-client-cert",
        "Traefik: X-Forwarded-Tls-Client-Cert, -Info",
    ),
    prefix(
        "x-amzn-mtls-clientcert",
        "AWS load balancers: X-Amzn-Mtls-Clientcert, -Leaf, -Serial-Number, -Issuer, \
         -Subject, -Validity, -Sans",
    ),
    exact("x-arr-clientcert", "IIS Application Request Routing"),
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

/// Whether a client-sent header could claim a client certificate: one in
/// [`CLIENT_CERT_HEADERS`].
fn is_client_cert_header(name: &str) -> bool {
    CLIENT_CERT_HEADERS.iter().any(|h| h.pattern.matches(name))
}

/// Removes every header whose name holds an underscore (see the module docs); returns
/// their names, sorted, for the log.
pub fn strip_underscored(headers: &mut HeaderMap) -> Vec<HeaderName> {
    let mut found: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().contains('_'))
        .cloned()
        .collect();
    for name in &found {
        headers.remove(name);
    }
    found.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    found
}

/// Removes every header that could claim a client identity ([`CLIENT_CERT_HEADERS`]) and
/// every [`ADDRESS_HEADERS`] header; returns the identity ones that were present, sorted,
/// for the log.
pub fn strip_identity_headers(headers: &mut HeaderMap) -> Vec<HeaderName> {
    let mut found: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_client_cert_header(n.as_str()) || ADDRESS_HEADERS.contains(&n.as_str()))
        .cloned()
        .collect();
    for name in &found {
        headers.remove(name);
    }
    found.retain(|n| is_client_cert_header(n.as_str()));
    found.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    found
}

/// HTTP/2 may split `cookie` into several fields; HTTP/1.1 needs one, joined with `; `
/// (RFC 9113 §8.2.3).
pub fn join_cookies(headers: &mut HeaderMap) {
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
pub fn forwarded_for(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("for={v4};proto=https"),
        IpAddr::V6(v6) => format!("for=\"[{v6}]\";proto=https"),
    }
}

/// Whether the client said it accepts trailers (`TE: trailers`, which gRPC requires): the
/// one hop-by-hop header passed on, since trailers now pass both ways (RFC 9113 §8.2.2
/// allows it in HTTP/2 as well).
pub fn wants_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
}

/// Sets `TE: trailers` (and nothing else in `TE`).
pub fn keep_te_trailers(headers: &mut HeaderMap) {
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Header names as a client might spell them: at least one for every entry of
    /// [`CLIENT_CERT_HEADERS`] (`true`: it must be removed), and names that look alike but
    /// carry no certificate (`false`: they must reach the application).
    const SAMPLES: &[(&str, bool)] = &[
        ("Client-Cert", true),
        ("CLIENT-CERT-CHAIN", true),
        ("X-Forwarded-Client-Cert", true),
        ("x-ssl-cert", true),
        ("X-SSL-Client-S-DN", true),
        ("X-SSL-Client-Verify", true),
        ("SSL-Client-Cert", true),
        ("X-Client-Cert", true),
        ("X-Client-Cert-Chain", true),
        ("X-Client-Verify", true),
        ("X-Client-DN", true),
        ("X-Client-Subject-DN", true),
        ("X-Client-Issuer-DN", true),
        ("X-Forwarded-Tls-Client-Cert", true),
        ("X-Forwarded-Tls-Client-Cert-Info", true),
        ("X-Amzn-Mtls-Clientcert", true),
        ("X-Amzn-Mtls-Clientcert-Leaf", true),
        ("X-Amzn-Mtls-Clientcert-Serial-Number", true),
        ("X-Amzn-Mtls-Clientcert-Issuer", true),
        ("X-Amzn-Mtls-Clientcert-Subject", true),
        ("X-Amzn-Mtls-Clientcert-Validity", true),
        ("X-Amzn-Mtls-Clientcert-Sans", true),
        ("X-ARR-ClientCert", true),
        ("accept", false),
        ("x-client-id", false),
        ("x-client-dns", false),
        ("client-certificate-hint", false),
        ("x-forwarded-tls-version", false),
        ("x-amzn-trace-id", false),
        ("x-arr-log-id", false),
    ];

    fn sorted(names: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<String> {
        let mut names: Vec<String> = names
            .into_iter()
            .map(|n| n.as_ref().to_ascii_lowercase())
            .collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn every_client_cert_header_in_the_list_is_removed_whatever_its_case() {
        for entry in CLIENT_CERT_HEADERS {
            assert!(
                SAMPLES
                    .iter()
                    .any(|(name, removed)| *removed
                        && entry.pattern.matches(&name.to_ascii_lowercase())),
                "no sample exercises {entry:?}"
            );
        }
        let mut headers = HeaderMap::new();
        for (name, _) in SAMPLES {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_static("forged"),
            );
        }
        headers.append("client-cert", HeaderValue::from_static(":ZHVw:"));
        for name in ADDRESS_HEADERS {
            headers.append(name, HeaderValue::from_static("203.0.113.66"));
        }
        let removed = strip_identity_headers(&mut headers);
        let expected = SAMPLES.iter().filter(|(_, r)| *r).map(|(n, _)| n);
        assert_eq!(
            sorted(removed.iter().map(HeaderName::as_str)),
            sorted(expected)
        );
        let kept = SAMPLES.iter().filter(|(_, r)| !*r).map(|(n, _)| n);
        assert_eq!(sorted(headers.keys().map(HeaderName::as_str)), sorted(kept));
    }

    #[test]
    fn headers_with_an_underscore_in_their_name_are_removed() {
        let mut headers = HeaderMap::new();
        for name in [
            "X_Forwarded_Client_Cert",
            "Client_Cert",
            "X_SSL_CERT",
            "X_Forwarded_For",
            "my_header",
            "accept",
            "x-request-id",
        ] {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_static("forged"),
            );
        }
        let removed = strip_underscored(&mut headers);
        let names: Vec<&str> = removed.iter().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            [
                "client_cert",
                "my_header",
                "x_forwarded_client_cert",
                "x_forwarded_for",
                "x_ssl_cert",
            ]
        );
        assert_eq!(
            sorted(headers.keys().map(HeaderName::as_str)),
            ["accept", "x-request-id"]
        );
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
    fn te_trailers_is_told_apart_from_other_codings() {
        let with = |te: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::TE, HeaderValue::from_static(te));
            wants_trailers(&headers)
        };
        assert!(with("trailers"));
        assert!(with("gzip;q=0.5, Trailers"));
        assert!(!with("gzip"));
        assert!(!wants_trailers(&HeaderMap::new()));
    }
}
