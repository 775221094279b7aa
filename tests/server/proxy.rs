//! The mTLS-terminating reverse proxy: a plain-HTTP upstream in the test echoes what it
//! got, so the test sees exactly which identity headers arrived, and that forged ones did
//! not. Expected values are computed independently (base64 of the DER, `openssl x509`).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::start;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use h2::client::SendRequest;
use hyper::body::Bytes;
use mtls::pki::{CertAuthority, KeyType, Usage, Validity};
use mtls::tls::ClientPolicy;
use rustls::pki_types::ServerName;
use testkit::{Conn, EchoUpstream, PATIENCE, ServerProcess, client_config, http1};
use testkit::{Pki, curl_as, fetch, leaf, openssl_x509, require_tool, run, text};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

fn byte_sequence(der: &[u8]) -> String {
    format!(":{}:", BASE64.encode(der))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn the_proxy_forwards_the_verified_identity_and_drops_forged_headers() {
    require_tool("openssl");
    let pki = Pki::demo();
    let upstream = EchoUpstream::start();
    let server = start(
        &pki,
        &[
            "--upstream",
            &upstream.url(),
            "--allow-uri",
            "spiffe://mtls.demo/client-a",
        ],
    );
    let config = client_config(&pki, Some("client-a"), http1());
    let mut conn = Conn::open(&config, server.addr).expect("connect");
    let reply = conn
        .request(
            "/app/orders?id=7",
            &[
                ("Client-Cert", ":Zm9yZ2Vk:"),
                ("Client-Cert", ":ZHVwbGljYXRl:"),
                ("client-cert-chain", ":Zm9yZ2Vk:"),
                (
                    "X-Forwarded-Client-Cert",
                    "Hash=00;URI=spiffe://mtls.demo/admin",
                ),
                ("x-forwarded-client-cert", "URI=spiffe://mtls.demo/second"),
                ("X-SSL-CERT", "forged-pem"),
                ("X-SSL-Client-S-DN", "CN=forged-dn"),
                ("SSL-Client-Cert", "forged-ssl-client"),
                ("X-Client-Cert", "forged-x-client"),
                ("X-Client-Verify", "SUCCESS-forged"),
                ("X-Client-Subject-DN", "CN=forged-subject"),
                ("X-Forwarded-For", "203.0.113.66"),
                ("Forwarded", "for=203.0.113.67;proto=http"),
                ("X-Real-IP", "203.0.113.68"),
                ("X-Forwarded-Host", "forged-host.example"),
                ("X-Forwarded-Port", "4444"),
                // Naming the identity headers hop-by-hop must not remove the proxy's own.
                (
                    "Connection",
                    "x-forwarded-client-cert, client-cert, forwarded",
                ),
            ],
        )
        .expect("proxied request");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-upstream"), Some("echo"));

    let got = upstream.requests();
    assert_eq!(got.len(), 1);
    let got = &got[0];
    assert!(
        got.head.starts_with("GET /app/orders?id=7 HTTP/1.1\r\n"),
        "{}",
        got.head
    );
    for forged in [
        "Zm9yZ2Vk",
        "ZHVwbGljYXRl",
        "spiffe://mtls.demo/admin",
        "spiffe://mtls.demo/second",
        "forged",
        "SUCCESS",
        "203.0.113.",
        "4444",
    ] {
        assert!(
            !got.head.contains(forged),
            "{forged} reached the upstream:\n{}",
            got.head
        );
    }

    let sent = mtls::pem::certificates(&pki.certs.cert("client-a"), "client A").expect("read");
    let (leaf, rest) = sent.split_first().expect("a leaf");
    assert_eq!(got.headers("client-cert"), vec![byte_sequence(leaf)]);
    let chain: Vec<String> = rest.iter().map(|c| byte_sequence(c)).collect();
    let expected_chain = if chain.is_empty() {
        Vec::new()
    } else {
        vec![chain.join(", ")]
    };
    assert_eq!(got.headers("client-cert-chain"), expected_chain);

    let ssl_cert = got.headers("x-ssl-cert");
    assert_eq!(ssl_cert.len(), 1);
    assert!(
        ssl_cert[0].starts_with("-----BEGIN%20CERTIFICATE-----%0A"),
        "{}",
        ssl_cert[0]
    );
    assert_eq!(
        percent_decode(&ssl_cert[0]),
        mtls::pem::to_pem("CERTIFICATE", leaf)
    );

    let path = pki.certs.cert("client-a");
    let subject = openssl_x509(&path, &["-subject", "-nameopt", "RFC2253"]);
    let subject = subject.strip_prefix("subject=").expect("subject=");
    let fingerprint = openssl_x509(&path, &["-fingerprint", "-sha256"]);
    let hash = fingerprint
        .rsplit('=')
        .next()
        .expect("a fingerprint")
        .replace(':', "")
        .to_ascii_lowercase();
    assert_eq!(
        got.headers("x-forwarded-client-cert"),
        vec![format!(
            "Hash={hash};Subject=\"{subject}\";URI=spiffe://mtls.demo/client-a"
        )]
    );
    assert_eq!(
        got.headers("x-forwarded-for"),
        vec!["127.0.0.1".to_string()]
    );
    assert_eq!(got.headers("x-forwarded-proto"), vec!["https".to_string()]);
    assert_eq!(
        got.headers("forwarded"),
        vec!["for=127.0.0.1;proto=https".to_string()]
    );
    assert!(got.headers("x-real-ip").is_empty(), "{}", got.head);
    assert!(got.headers("x-forwarded-host").is_empty(), "{}", got.head);

    let line = server
        .log
        .wait_for(&["removed identity headers the client sent"]);
    assert!(
        line.contains(
            "headers=client-cert, client-cert-chain, ssl-client-cert, x-client-cert, \
             x-client-subject-dn, x-client-verify, x-forwarded-client-cert, x-ssl-cert, \
             x-ssl-client-s-dn"
        ),
        "{line}"
    );

    // A client the policy denies gets its 403 from the proxy; the upstream never sees it.
    let url = server.url("localhost");
    let b = fetch(
        &url,
        pki.certs.ca_cert(),
        Some((pki.certs.cert("client-b"), pki.certs.key("client-b"))),
    )
    .expect("an answer");
    assert_eq!(b.status.as_u16(), 403);
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn headers_spelled_with_underscores_never_reach_the_application() {
    let pki = Pki::demo();
    let upstream = EchoUpstream::start();
    let server = start(&pki, &["--upstream", &upstream.url()]);
    let config = client_config(&pki, Some("client-a"), http1());
    let mut conn = Conn::open(&config, server.addr).expect("connect");
    let forged = [
        ("X_Forwarded_Client_Cert", "URI=spiffe://mtls.demo/admin"),
        ("Client_Cert", ":Zm9yZ2Vk:"),
        ("X_SSL_CERT", "forged-pem"),
        ("X_Forwarded_For", "203.0.113.66"),
    ];
    let reply = conn.request("/", &forged).expect("proxied request");
    assert_eq!(reply.status, 200, "{}", reply.body);

    let got = upstream.requests();
    assert_eq!(got.len(), 1);
    let got = &got[0];
    for line in got.head.split("\r\n").skip(1) {
        let (name, _) = line.split_once(':').expect("a header line");
        assert!(
            !name.contains('_'),
            "{name} reached the upstream:\n{}",
            got.head
        );
    }
    for (_, value) in forged {
        assert!(
            !got.head.contains(value),
            "{value} reached the upstream:\n{}",
            got.head
        );
    }
    // The application still gets the real identity and address, once.
    let xfcc = got.headers("x-forwarded-client-cert");
    assert_eq!(xfcc.len(), 1, "{}", got.head);
    assert!(
        xfcc[0].ends_with(";URI=spiffe://mtls.demo/client-a"),
        "{xfcc:?}"
    );
    assert_eq!(
        got.headers("x-forwarded-for"),
        vec!["127.0.0.1".to_string()]
    );

    let line = server
        .log
        .wait_for(&["removed headers whose names hold an underscore"]);
    assert!(
        line.contains("headers=client_cert, x_forwarded_client_cert, x_forwarded_for, x_ssl_cert"),
        "{line}"
    );
    for (_, value) in forged {
        assert!(!line.contains(value), "the warning logged a value: {line}");
    }
}

#[test]
fn other_proxies_client_certificate_headers_never_reach_the_application() {
    let pki = Pki::demo();
    let upstream = EchoUpstream::start();
    let server = start(&pki, &["--upstream", &upstream.url()]);
    let config = client_config(&pki, Some("client-a"), http1());
    let mut conn = Conn::open(&config, server.addr).expect("connect");
    // A sample of mtls::server::proxy::CLIENT_CERT_HEADERS (the unit test covers all of it).
    let forged = [
        ("X-Forwarded-Tls-Client-Cert", "forged-traefik"),
        ("X-Forwarded-Tls-Client-Cert-Info", "forged-traefik-info"),
        ("X-Amzn-Mtls-Clientcert", "forged-aws"),
        ("X-Amzn-Mtls-Clientcert-Leaf", "forged-aws-leaf"),
        ("X-Amzn-Mtls-Clientcert-Serial-Number", "forged-aws-serial"),
        ("X-Amzn-Mtls-Clientcert-Issuer", "forged-aws-issuer"),
        ("X-Amzn-Mtls-Clientcert-Subject", "forged-aws-subject"),
        ("X-Amzn-Mtls-Clientcert-Validity", "forged-aws-validity"),
        ("X-Amzn-Mtls-Clientcert-Sans", "forged-aws-sans"),
        ("X-ARR-ClientCert", "forged-iis"),
        ("X-SSL-Client-Verify", "forged-nginx-verify"),
        ("X-Client-Issuer-DN", "forged-nginx-issuer"),
    ];
    let mut headers = forged.to_vec();
    // Look-alikes that carry no certificate reach the application.
    headers.push(("X-Amzn-Trace-Id", "kept-trace"));
    headers.push(("X-Client-Id", "kept-client-id"));
    let reply = conn.request("/", &headers).expect("proxied request");
    assert_eq!(reply.status, 200, "{}", reply.body);

    let got = upstream.requests();
    assert_eq!(got.len(), 1);
    let got = &got[0];
    for (name, _) in forged {
        assert!(
            got.headers(name).is_empty(),
            "{name} reached the upstream:\n{}",
            got.head
        );
    }
    assert!(!got.head.contains("forged-"), "{}", got.head);
    assert_eq!(
        got.headers("x-amzn-trace-id"),
        vec!["kept-trace".to_string()]
    );
    assert_eq!(
        got.headers("x-client-id"),
        vec!["kept-client-id".to_string()]
    );

    let line = server
        .log
        .wait_for(&["removed identity headers the client sent"]);
    let mut expected: Vec<String> = forged.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
    expected.sort_unstable();
    assert!(
        line.contains(&format!("headers={}", expected.join(", "))),
        "{line}"
    );
}

/// Mints an intermediate CA under the demo CA and a client ("Client C") under it, and writes
/// `client-c.crt` (leaf, then intermediate) and `client-c.key`. Returns the intermediate's DER.
fn client_behind_an_intermediate(pki: &Pki) -> Vec<u8> {
    let intermediate = CertAuthority::new_intermediate(
        mtls::pki::demo_subject("Intermediate Company", "Intermediate CA"),
        KeyType::EcdsaP256,
        Validity::days(30),
        &pki.ca(),
    )
    .expect("mint the intermediate");
    pki.issue(
        &intermediate,
        "client-c",
        &leaf(
            "Client C",
            Usage::Client,
            &["URI:spiffe://mtls.demo/client-c"],
            Validity::days(1),
        ),
    );
    intermediate.der.to_vec()
}

#[test]
fn an_http2_client_behind_an_intermediate_gets_its_chain_forwarded_and_its_body_streamed() {
    require_tool("curl");
    let pki = Pki::demo();
    let intermediate = client_behind_an_intermediate(&pki);
    let upstream = EchoUpstream::start();
    let server = start(&pki, &["--upstream", &upstream.url()]);
    let url = format!("{}submit", server.url("localhost"));
    let out = curl_as(
        &pki.certs,
        "client-c",
        &[
            "--http2",
            "-H",
            "Content-Type: text/plain",
            "--data-binary",
            "an order for seven",
            "-w",
            "\n%{http_code} %{http_version}",
            &url,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.ends_with("200 2"), "{stdout}");
    assert!(stdout.contains("an order for seven"), "{stdout}");

    let got = upstream.requests();
    let got = &got[0];
    assert!(
        got.head.starts_with("POST /submit HTTP/1.1\r\n"),
        "{}",
        got.head
    );
    assert_eq!(got.body, "an order for seven");
    assert_eq!(
        got.headers("host"),
        vec![format!("localhost:{}", server.addr.port())]
    );
    assert_eq!(
        got.headers("client-cert-chain"),
        vec![byte_sequence(&intermediate)]
    );
    let xfcc = &got.headers("x-forwarded-client-cert")[0];
    assert!(
        xfcc.contains(";Subject=\"CN=Client C,OU=Engineering,O=Client C Company,"),
        "{xfcc}"
    );
    assert!(xfcc.ends_with(";URI=spiffe://mtls.demo/client-c"), "{xfcc}");
}

#[test]
fn an_unreachable_upstream_gets_a_502_that_says_so() {
    let pki = Pki::demo();
    // A port nobody listens on: bind, note it, close it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let upstream = format!("http://{closed}");
    let server = start(&pki, &["--upstream", &upstream]);
    let reply = fetch(
        &server.url("localhost"),
        pki.certs.ca_cert(),
        Some((pki.certs.cert("client-a"), pki.certs.key("client-a"))),
    )
    .expect("an answer");
    assert_eq!(reply.status.as_u16(), 502);
    assert_eq!(
        reply.body,
        "bad gateway: the application behind this proxy did not answer; the proxy's log says why\n"
    );
    // Where the application lives, and how it failed, is for the operator, not the client.
    assert!(!reply.body.contains(&closed.to_string()), "{}", reply.body);
    assert!(!reply.body.contains("refused"), "{}", reply.body);
    let line = server.log.wait_for(&["upstream request failed"]);
    assert!(line.contains(&format!("upstream={upstream}")), "{line}");
    assert!(line.contains("Connection refused"), "{line}");
}

#[test]
fn an_upstream_in_a_scheme_the_proxy_does_not_speak_is_a_usage_error() {
    let pki = Pki::demo();
    let out = run(Command::new(crate::SERVER).args([
        "--certs",
        pki.dir().to_str().expect("path"),
        "--addr",
        "127.0.0.1:0",
        "--upstream",
        "ftp://127.0.0.1:9000",
    ]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("uses ftp://; write http://HOST:PORT (HTTP/1.1), h2c://HOST:PORT"),
        "{stderr}"
    );
}

#[test]
fn an_in_flight_cap_below_one_is_a_usage_error() {
    let pki = Pki::demo();
    let out = run(Command::new(crate::SERVER).args([
        "--certs",
        pki.dir().to_str().expect("path"),
        "--addr",
        "127.0.0.1:0",
        "--upstream",
        "http://127.0.0.1:9000",
        "--upstream-max-in-flight",
        "0",
    ]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--upstream-max-in-flight 0 is out of range: choose 1 to"),
        "{stderr}"
    );
}

#[test]
fn forged_identity_headers_over_http2_are_dropped_too() {
    require_tool("curl");
    let pki = Pki::demo();
    let upstream = EchoUpstream::start();
    let server = start(&pki, &["--upstream", &upstream.url()]);
    let mut args: Vec<String> = ["--http2", "-w", "\n%{http_code} %{http_version}"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    for header in [
        "X-Forwarded-Client-Cert: URI=spiffe://mtls.demo/admin",
        "Client-Cert: :Zm9yZ2Vk:",
        "X-SSL-Client-S-DN: CN=forged",
        "X-Forwarded-For: 203.0.113.66",
        "Forwarded: for=203.0.113.66",
        "X_Forwarded_Client_Cert: URI=spiffe://mtls.demo/admin",
        "Client_Cert: :Zm9yZ2Vk:",
        "Cookie: a=1",
        "Cookie: b=2",
    ] {
        args.push("-H".into());
        args.push(header.into());
    }
    args.push(server.url("localhost"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = curl_as(&pki.certs, "client-a", &args);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.ends_with("200 2"), "{stdout}");
    let got = &upstream.requests()[0];
    for forged in [
        "spiffe://mtls.demo/admin",
        "Zm9yZ2Vk",
        "CN=forged",
        "203.0.113.66",
    ] {
        assert!(
            !got.head.contains(forged),
            "{forged} reached the upstream:\n{}",
            got.head
        );
    }
    let xfcc = got.headers("x-forwarded-client-cert");
    assert_eq!(xfcc.len(), 1, "{}", got.head);
    assert!(
        xfcc[0].ends_with(";URI=spiffe://mtls.demo/client-a"),
        "{xfcc:?}"
    );
    assert_eq!(got.headers("cookie"), vec!["a=1; b=2".to_string()]);
}

#[test]
fn a_uri_san_with_control_characters_is_forwarded_escaped_not_dropped() {
    let pki = Pki::demo();
    pki.issue(
        &pki.ca(),
        "client-odd",
        &leaf(
            "Client Odd",
            Usage::Client,
            &["URI:spiffe://mtls.demo/odd\u{7f}name"],
            Validity::days(1),
        ),
    );
    let upstream = EchoUpstream::start();
    let server = start(&pki, &["--upstream", &upstream.url()]);
    let config = client_config(&pki, Some("client-odd"), http1());
    let mut conn = Conn::open(&config, server.addr).expect("connect");
    let reply = conn.request("/", &[]).expect("proxied request");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let got = &upstream.requests()[0];
    let xfcc = got.headers("x-forwarded-client-cert");
    assert_eq!(
        xfcc.len(),
        1,
        "the identity headers must be there:\n{}",
        got.head
    );
    assert!(
        xfcc[0].ends_with(";URI=spiffe://mtls.demo/odd%7Fname"),
        "{xfcc:?}"
    );
    assert_eq!(got.headers("client-cert").len(), 1, "{}", got.head);
}

/// A server that proxies to `upstream`, and one that answers by itself: the request checks
/// hold in both.
fn proxied_and_plain(pki: &Pki, upstream: &EchoUpstream) -> [ServerProcess; 2] {
    [
        start(pki, &["--upstream", &upstream.url()]),
        start(pki, &[]),
    ]
}

#[test]
fn two_host_headers_are_refused_with_400_and_never_forwarded() {
    let pki = Pki::demo();
    let upstream = EchoUpstream::start();
    let config = client_config(&pki, Some("client-a"), http1());
    for server in proxied_and_plain(&pki, &upstream) {
        let mut conn = Conn::open(&config, server.addr).expect("connect");
        conn.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n")
            .expect("send");
        let reply = conn.read_reply().expect("an answer");
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(
            reply.body,
            "bad request: it has 2 Host headers; a request names exactly one host (RFC 9112 §3.2)\n"
        );
        // Whoever sent that is not trusted to frame its next request.
        assert_eq!(reply.header("connection"), Some("close"));
        let _ = conn.wait_closed();
        let line = server
            .log
            .wait_for(&["refused the request", "reason=\"several_hosts\""]);
        assert!(line.contains("status=400"), "{line}");
        assert!(line.contains("client=\"Client A"), "{line}");
    }
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());
}

#[test]
fn connect_is_refused_with_405_and_never_forwarded() {
    let pki = Pki::demo();
    let upstream = EchoUpstream::start();
    let config = client_config(&pki, Some("client-a"), http1());
    for server in proxied_and_plain(&pki, &upstream) {
        let mut conn = Conn::open(&config, server.addr).expect("connect");
        conn.send(b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n")
            .expect("send");
        let reply = conn.read_reply().expect("an answer");
        assert_eq!(reply.status, 405, "{}", reply.body);
        assert_eq!(
            reply.body,
            "method not allowed: CONNECT is not served here; this server does not open tunnels\n"
        );
        assert_eq!(
            reply.header("allow"),
            Some("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
        );
        assert_eq!(reply.header("connection"), Some("close"));
        let _ = conn.wait_closed();
        let line = server
            .log
            .wait_for(&["refused the request", "reason=\"connect_not_allowed\""]);
        assert!(line.contains("status=405"), "{line}");
    }
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());
}

#[test]
fn an_http2_authority_with_userinfo_is_refused_with_400_and_never_forwarded() {
    let pki = Pki::demo();
    let upstream = EchoUpstream::start();
    let rt = Runtime::new().expect("a runtime");
    let [proxied, plain] = proxied_and_plain(&pki, &upstream);
    for server in [&proxied, &plain] {
        let send = h2_client(&rt, &pki, server.addr);
        let (status, body) = rt.block_on(h2_get(&send, "https://user@evil:1/"));
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body,
            "bad request: its :authority has userinfo (user@host); http and https URIs carry \
             none (RFC 9110 §4.2.4)\n"
        );
        server
            .log
            .wait_for(&["refused the request", "reason=\"userinfo_in_authority\""]);
        // The connection serves on: the next request, with a plain authority, is answered.
        let plain_authority = format!("https://localhost:{}/next", server.addr.port());
        let (status, body) = rt.block_on(h2_get(&send, &plain_authority));
        assert_eq!(status, 200, "{body}");
    }
    let got = upstream.requests();
    assert_eq!(got.len(), 1, "only the plain request is forwarded: {got:?}");
    assert!(
        got[0].head.starts_with("GET /next HTTP/1.1\r\n"),
        "{}",
        got[0].head
    );
    assert_eq!(
        got[0].headers("host"),
        vec![format!("localhost:{}", proxied.addr.port())]
    );
}

#[test]
fn http2_streams_the_client_resets_never_push_the_application_past_the_in_flight_cap() {
    const CAP: usize = 4;
    const STREAMS: usize = 40;
    let pki = Pki::demo();
    let app = SlowUpstream::start();
    let cap = CAP.to_string();
    let server = start(
        &pki,
        &["--upstream", &app.url(), "--upstream-max-in-flight", &cap],
    );
    let rt = Runtime::new().expect("a runtime");
    let send = h2_client(&rt, &pki, server.addr);
    let base = format!("https://localhost:{}", server.addr.port());
    rt.block_on(async {
        // Open every stream at once; reset each as soon as the application has its request.
        let mut open = Vec::with_capacity(STREAMS);
        for i in 0..STREAMS {
            let mut ready = timeout(PATIENCE, send.clone().ready())
                .await
                .expect("a stream in time")
                .expect("a stream");
            let path = format!("/slow/{i}");
            let request = hyper::Request::get(format!("{base}{path}"))
                .body(())
                .expect("a request");
            let (response, stream) = ready.send_request(request, true).expect("sent");
            open.push(Some((path, stream, response)));
        }
        let poll = Duration::from_millis(5);
        let deadline = Instant::now() + PATIENCE;
        let mut reset = 0;
        for _ in 0..PATIENCE.as_millis() / poll.as_millis() {
            let arrived = app.paths();
            for slot in &mut open {
                if slot
                    .as_ref()
                    .is_some_and(|(path, _, _)| arrived.contains(path))
                    && let Some((_, mut stream, _response)) = slot.take()
                {
                    stream.send_reset(h2::Reason::CANCEL);
                    reset += 1;
                }
            }
            if reset == STREAMS || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(poll).await;
        }
        assert_eq!(
            reset,
            STREAMS,
            "the application got only {:?} within {PATIENCE:?}",
            app.paths()
        );
        // The proxy still serves: a request that waits for its answer gets it.
        let (status, body) = h2_get(&send, &format!("{base}/after")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, "slow GET /after\n");
    });
    let most = app.most_in_progress();
    assert!(
        most <= CAP,
        "the application had {most} requests in progress at once; the cap is {CAP}"
    );
    assert_eq!(app.paths().len(), STREAMS + 1, "{:?}", app.paths());
}

/// An HTTP/2 connection as Client A, made with the h2 crate so that a test shapes exactly
/// what it sends (an `:authority` of its choosing, streams it resets). A task on `rt`
/// drives the connection.
pub(crate) fn h2_client(rt: &Runtime, pki: &Pki, addr: SocketAddr) -> SendRequest<Bytes> {
    let config = client_config(pki, Some("client-a"), ClientPolicy::default());
    rt.block_on(async {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("a server name");
        let tls = timeout(PATIENCE, TlsConnector::from(config).connect(name, tcp))
            .await
            .expect("the TLS handshake in time")
            .expect("the TLS handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (send, connection) = timeout(PATIENCE, h2::client::handshake(tls))
            .await
            .expect("the HTTP/2 handshake in time")
            .expect("the HTTP/2 handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        send
    })
}

/// Sends `GET uri` (`:authority` from `uri`) and returns the status and the body, within
/// PATIENCE.
pub(crate) async fn h2_get(send: &SendRequest<Bytes>, uri: &str) -> (u16, String) {
    let exchange = async {
        let mut send = send.clone().ready().await.expect("a stream");
        let request = hyper::Request::get(uri).body(()).expect("a request");
        let (response, _) = send.send_request(request, true).expect("sent");
        let response = response.await.expect("a response");
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("a body chunk");
            let _ = body.flow_control().release_capacity(chunk.len());
            text.extend_from_slice(&chunk);
        }
        (status, String::from_utf8_lossy(&text).into_owned())
    };
    timeout(PATIENCE, exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer to GET {uri} within {PATIENCE:?}"))
}

/// A slow application: it holds each request for [`SlowUpstream::HOLD`] before answering
/// `slow METHOD PATH`, and counts the requests in progress at once.
struct SlowUpstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

/// What the slow application has seen.
#[derive(Default)]
struct Seen {
    /// The paths of the requests it got, in order.
    paths: Vec<String>,
    in_progress: usize,
    most_in_progress: usize,
}

impl SlowUpstream {
    /// How long it works on each request.
    const HOLD: Duration = Duration::from_millis(250);

    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the upstream");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(1000) {
                let Ok(stream) = stream else { continue };
                let seen = shared.clone();
                std::thread::spawn(move || Self::serve(stream, &seen));
            }
        });
        Self { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn paths(&self) -> Vec<String> {
        self.seen.lock().expect("lock").paths.clone()
    }

    fn most_in_progress(&self) -> usize {
        self.seen.lock().expect("lock").most_in_progress
    }

    /// Serves the requests (no bodies) of one keep-alive connection.
    fn serve(stream: std::net::TcpStream, seen: &Mutex<Seen>) {
        let _ = stream.set_read_timeout(Some(PATIENCE));
        let Ok(mut writer) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        for _ in 0..100 {
            let mut request_line = String::new();
            if !matches!(reader.read_line(&mut request_line), Ok(n) if n > 0) {
                return;
            }
            for _ in 0..100 {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) => {}
                }
            }
            let mut words = request_line.split(' ');
            let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            {
                let mut seen = seen.lock().expect("lock");
                seen.paths.push(path.to_string());
                seen.in_progress += 1;
                seen.most_in_progress = seen.most_in_progress.max(seen.in_progress);
            }
            // The application's work: slow, and bounded.
            std::thread::sleep(Self::HOLD);
            seen.lock().expect("lock").in_progress -= 1;
            let body = format!("slow {method} {path}\n");
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if writer.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    }
}
