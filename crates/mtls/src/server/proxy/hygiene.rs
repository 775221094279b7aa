//! Header hygiene: what a client must never be able to send to the application (identity
//! and address headers it could forge, hop-by-hop headers), and the headers the proxy sets
//! in their place.

use std::net::IpAddr;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

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
}
