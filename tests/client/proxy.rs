//! `client proxy` end to end: a local application (this test, speaking plain HTTP/1.1) ->
//! `client proxy` -> the library's server (the code the server binary runs) with
//! `--upstream` -> an echo application, which shows exactly what arrived. Certificates are
//! minted per test; every refusal and every 502 asserts its reason, and a 502 is compared
//! with what `client` itself prints for the same failure.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mtls::certinfo::CertInfo;
use mtls::files::CertsDir;
use testkit::{
    EchoUpstream, InProcessServer, PATIENCE, Pki, Received, ServerProcess, first_cert,
    metrics_addr, plain_get, run, sample, server_settings, text, utf8,
};

use crate::{CLIENT, client, error_line, error_line_with, server_presenting};

/// The whole chain: the far application (an echo), the library's server forwarding to it,
/// and `client proxy` in front of the server.
struct Chain {
    pki: Pki,
    echo: EchoUpstream,
    server: InProcessServer,
    proxy: ServerProcess,
}

impl Chain {
    /// The chain on a fresh demo set, the proxy started with `flags` (its identity among
    /// them).
    fn start(flags: &[&str]) -> Self {
        Self::start_on(Pki::demo(), flags)
    }

    /// The chain on `pki`.
    fn start_on(pki: Pki, flags: &[&str]) -> Self {
        let echo = EchoUpstream::start();
        let mut settings = server_settings(&pki);
        settings.upstream = Some(echo.url().parse().expect("the echo's URL"));
        let server = InProcessServer::start(settings);
        let proxy = start_proxy(&pki, &server.url("localhost"), flags);
        Self {
            pki,
            echo,
            server,
            proxy,
        }
    }

    fn ask(&self, line: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        ask(self.proxy.addr, line, headers, body)
    }

    /// The last request the far application got.
    fn arrived(&self) -> Received {
        self.echo
            .requests()
            .pop()
            .expect("the far application got a request")
    }
}

/// `client proxy` on a free loopback port, for the upstream at `url`, with `extra` flags
/// (the identity among them); waits for its `listening on http://` line.
fn start_proxy(pki: &Pki, url: &str, extra: &[&str]) -> ServerProcess {
    let mut cmd = Command::new(CLIENT);
    cmd.args(["proxy", "--certs", utf8(pki.dir()), "--url", url])
        .args(["--listen", "127.0.0.1:0"])
        .args(extra);
    ServerProcess::spawn_plain(cmd)
}

/// What a local application got back.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }
}

/// One request on a new plain-HTTP connection to `addr` (`Connection: close`), as a local
/// application sends it: `line` is the method and target.
fn ask(addr: SocketAddr, line: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut tcp = TcpStream::connect(addr).expect("connect to the proxy");
    tcp.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut request = format!("{line} HTTP/1.1\r\nHost: app.local\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    tcp.write_all(request.as_bytes()).expect("send");
    // Until the proxy closes; a reset after its answer (a head it did not read whole) keeps
    // what arrived before it.
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while let Ok(n @ 1..) = tcp.read(&mut chunk) {
        bytes.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer to {line:?}: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// The certificate the far application was told about (`Client-Cert`, RFC 9440).
fn forwarded_cert(got: &Received) -> CertInfo {
    let values = got.headers("client-cert");
    assert_eq!(values.len(), 1, "exactly one Client-Cert: {}", got.head);
    let der = BASE64
        .decode(values[0].trim_matches(':'))
        .expect("a byte sequence");
    CertInfo::parse(&der).expect("a certificate")
}

fn scrape(proxy: &ServerProcess) -> String {
    let (status, body) = plain_get(metrics_addr(proxy), "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// What `client` prints for the same failure, without `error: `.
fn client_says(pki: &Pki, url: &str, identity: &[&str]) -> String {
    let mut args = identity.to_vec();
    args.extend(["--url", url]);
    let line = error_line(&client(pki.dir(), &args));
    line.trim_start_matches("error: ").to_string()
}

#[test]
fn the_far_application_sees_the_proxys_certificate_and_nothing_the_local_one_forged() {
    let chain = Chain::start(&["-c", "a", "--metrics", "127.0.0.1:0"]);
    let (pki, server, proxy) = (&chain.pki, &chain.server, &chain.proxy);
    let forged = [
        ("Client-Cert", ":Zm9yZ2Vk:"),
        ("X-Forwarded-Client-Cert", "URI=spiffe://mtls.demo/admin"),
        ("X-SSL-CERT", "forged"),
        ("Client_Cert", "underscored"),
        ("X-Forwarded-For", "203.0.113.66"),
        ("Connection", "close, x-hop"),
        ("X-Hop", "hop-by-hop"),
        ("Proxy-Authorization", "Basic Zm9v"),
        ("X-Request-Id", "kept"),
    ];
    let answer = chain.ask("POST /orders?id=7", &forged, "one order");
    assert_eq!(answer.status, 200, "{}\n{}", answer.head, proxy.log.all());
    assert_eq!(answer.header("x-upstream"), Some("echo"), "{}", answer.head);

    let got = chain.arrived();
    assert!(
        got.head.starts_with("POST /orders?id=7 HTTP/1.1"),
        "{}",
        got.head
    );
    assert_eq!(got.body, "one order");
    let client_a = CertInfo::parse(&first_cert(&pki.certs.cert("client-a"))).expect("parse");
    assert_eq!(forwarded_cert(&got).sha256, client_a.sha256);
    let xfcc = got.headers("x-forwarded-client-cert");
    assert_eq!(xfcc.len(), 1, "{}", got.head);
    assert!(
        xfcc[0].ends_with("URI=spiffe://mtls.demo/client-a"),
        "{xfcc:?}"
    );
    assert_ne!(got.headers("x-ssl-cert"), ["forged"]);
    for gone in ["client_cert", "x-hop", "proxy-authorization"] {
        assert!(
            got.headers(gone).is_empty(),
            "{gone} arrived:\n{}",
            got.head
        );
    }
    // The address is the proxy's, as the server saw it; the application's claim is gone.
    assert_eq!(got.headers("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(got.headers("x-request-id"), ["kept"]);
    assert_eq!(
        got.headers("host"),
        [format!("localhost:{}", server.addr.port())]
    );
    proxy.log.wait_for(&[
        "removed headers the application sent",
        "headers=client-cert, x-forwarded-client-cert, x-ssl-cert, client_cert",
    ]);

    // HTTP/2, offered by the server, carries every request over one connection.
    proxy.log.wait_for(&[
        "connected to the upstream: its certificate verified, ours presented",
        "tls.alpn=\"h2\"",
    ]);
    for _ in 0..2 {
        assert_eq!(chain.ask("GET /again", &[], "").status, 200);
    }
    let metrics = scrape(proxy);
    let connections = "mtls_proxy_upstream_connections_total{protocol=\"h2\"}";
    assert_eq!(sample(&metrics, connections), Some(1.0), "{metrics}");
    let answered = "mtls_proxy_requests_total{status=\"200\"}";
    assert_eq!(sample(&metrics, answered), Some(3.0), "{metrics}");

    let log = proxy.log.clone();
    let status = chain.proxy.terminate();
    assert!(status.success(), "{status}\n{}", log.all());
    log.wait_for(&["all connections closed"]);
}

#[test]
fn requests_for_other_hosts_and_tunnels_are_refused_and_never_forwarded() {
    let chain = Chain::start(&["-c", "a"]);
    let (echo, proxy) = (&chain.echo, &chain.proxy);
    let upstream = format!("localhost:{}", chain.server.addr.port());

    for line in [
        "GET http://evil.example/steal",
        "GET https://evil.example:443/steal",
        "CONNECT evil.example:443",
    ] {
        let answer = chain.ask(line, &[], "");
        assert_eq!(answer.status, 403, "{line}: {}", answer.body);
        assert!(
            answer.body.starts_with(&format!(
                "forbidden: this proxy forwards only to https://{upstream}; it is not an open \
                 proxy, so it will not forward to evil.example"
            )),
            "{line}: {}",
            answer.body
        );
    }
    let answer = chain.ask(&format!("CONNECT {upstream}"), &[], "");
    assert_eq!(answer.status, 405, "{}", answer.body);
    assert!(
        answer.body.contains("it does not open tunnels"),
        "{}",
        answer.body
    );
    assert!(echo.requests().is_empty(), "{:?}", echo.requests());

    // The upstream itself, named in absolute form, is just a request.
    let answer = chain.ask(&format!("GET https://{upstream}/ok"), &[], "");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let requests = echo.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        requests[0].head.starts_with("GET /ok HTTP/1.1"),
        "{requests:?}"
    );
    // Each cause is logged once, however often it happens: evil.example:443 was asked for
    // twice (GET https://evil.example:443/ and CONNECT), and said once.
    proxy
        .log
        .wait_for(&["refused a request", "reason=\"connect_not_allowed\""]);
    assert_eq!(
        proxy
            .log
            .count(&["refused a request", "will not forward to evil.example:443"]),
        1,
        "{}",
        proxy.log.all()
    );
}

#[test]
fn an_upstream_that_refuses_our_certificate_gets_each_application_a_502_in_the_clients_words() {
    let pki = Pki::demo();
    let (cert, key) = crate::stranger(&pki);
    let identity = ["--cert", utf8(&cert), "--key", utf8(&key)];
    let flags = [&identity[..], &["--metrics", "127.0.0.1:0"]].concat();
    let chain = Chain::start_on(pki, &flags);
    let (pki, echo, proxy) = (&chain.pki, &chain.echo, &chain.proxy);
    let url = chain.server.url("localhost");

    let expected = format!("bad gateway: {}\n", client_says(pki, &url, &identity));
    assert!(
        expected.starts_with("bad gateway: the server refused our certificate (alert: unknown_ca)"),
        "{expected}"
    );
    // Three applications at once, then one more: the same reason for each.
    let answers: Vec<Answer> = std::thread::scope(|scope| {
        let asking: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| chain.ask("GET /", &[], "")))
            .collect();
        asking
            .into_iter()
            .map(|a| a.join().expect("a request"))
            .collect()
    });
    for answer in answers.iter().chain([&chain.ask("GET /", &[], "")]) {
        assert_eq!(answer.status, 502, "{}", answer.body);
        assert_eq!(answer.body, expected);
    }
    assert!(echo.requests().is_empty(), "{:?}", echo.requests());
    // A later line shows that the log has caught up with the four requests.
    chain.ask("GET http://evil.example/", &[], "");
    proxy.log.wait_for(&["refused a request"]);
    assert_eq!(
        proxy.log.count(&[
            "a request did not reach the upstream",
            "reason=\"peer_refused\"",
            "alert: unknown_ca",
        ]),
        1,
        "{}",
        proxy.log.all()
    );
    let metrics = scrape(proxy);
    let failures = "mtls_proxy_upstream_failures_total{reason=\"peer_refused\"}";
    assert_eq!(sample(&metrics, failures), Some(4.0), "{metrics}");
    let bad_gateway = "mtls_proxy_requests_total{status=\"502\"}";
    assert_eq!(sample(&metrics, bad_gateway), Some(4.0), "{metrics}");
    let refused = "mtls_proxy_refused_requests_total{reason=\"not_the_upstream\"}";
    assert_eq!(sample(&metrics, refused), Some(1.0), "{metrics}");
}

#[test]
fn an_upstream_whose_certificate_does_not_verify_gets_a_502_in_the_clients_words() {
    let pki = Pki::demo();
    let other = pki.other_ca("other-ca");
    let cases = [
        (
            &other,
            "impostor",
            &["DNS:localhost", "IP:127.0.0.1"][..],
            "the server's certificate was issued by a CA we do not trust",
        ),
        (
            &pki.ca(),
            "elsewhere",
            &["DNS:elsewhere.test"][..],
            "the server's certificate is not valid for \"localhost\": it names only \
             DNS:elsewhere.test",
        ),
    ];
    for (ca, stem, sans, words) in cases {
        let server = server_presenting(&pki, ca, stem, sans);
        let url = server.url("localhost");
        let proxy = start_proxy(&pki, &url, &["-c", "a"]);
        let answer = ask(proxy.addr, "GET /", &[], "");
        assert_eq!(answer.status, 502, "{}", answer.body);
        let expected = format!("bad gateway: {}\n", client_says(&pki, &url, &["-c", "a"]));
        assert_eq!(answer.body, expected);
        assert!(answer.body.contains(words), "{}", answer.body);
    }
}

#[test]
fn a_renewed_client_certificate_is_presented_on_the_next_request_and_a_broken_one_is_not() {
    let chain = Chain::start(&["-c", "a", "--reload-interval", "100ms"]);
    let (pki, proxy) = (&chain.pki, &chain.proxy);
    assert_eq!(chain.ask("GET /before", &[], "").status, 200);
    let before = forwarded_cert(&chain.arrived());

    // A key that does not belong to the certificate: the reload fails and says why, and
    // the proxy keeps presenting the certificate it has.
    let key = pki.certs.key("client-a");
    let original_key = std::fs::read(&key).expect("read the key");
    std::fs::copy(pki.certs.key("client-b"), &key).expect("replace the key");
    proxy.log.wait_for(&[
        "reload failed; still using the previous identity",
        "client-a.key does not match the certificate",
    ]);
    assert_eq!(chain.ask("GET /broken", &[], "").status, 200);
    assert_eq!(forwarded_cert(&chain.arrived()).serial, before.serial);
    std::fs::write(&key, original_key).expect("restore the key");

    let mark = proxy.log.mark();
    mtls::ca::issue::renew(&CertsDir::new(pki.dir()), "client-a", None, None, &[])
        .expect("renew Client A");
    let renewed = CertInfo::parse(&first_cert(&pki.certs.cert("client-a"))).expect("parse");
    assert_ne!(renewed.serial, before.serial);
    let serial = format!("client.cert.serial={}", renewed.serial_hex());
    proxy.log.wait_for_after(
        mark,
        &["reloaded the proxy's certificate, key and CA", &serial],
    );

    assert_eq!(chain.ask("GET /after", &[], "").status, 200);
    let after = forwarded_cert(&chain.arrived());
    assert_eq!(
        after.serial, renewed.serial,
        "the renewed certificate was presented"
    );
    // The connection made with the old identity was replaced by a new one.
    proxy.log.wait_for_after(
        mark,
        &[
            "connected to the upstream: its certificate verified, ours presented",
            &serial,
        ],
    );

    // SIGHUP reloads too, whether or not a file changed.
    let mark = proxy.log.mark();
    proxy.signal("HUP");
    proxy.log.wait_for_after(
        mark,
        &[
            "reloaded the proxy's certificate, key and CA",
            "trigger=\"SIGHUP\"",
            "changed=(none)",
            &serial,
        ],
    );
    assert_eq!(chain.ask("GET /after-hup", &[], "").status, 200);
}

#[test]
fn an_upstream_offered_only_http1_gets_pooled_http1_connections() {
    let chain = Chain::start(&["-c", "a", "--http1.1", "--metrics", "127.0.0.1:0"]);
    let proxy = &chain.proxy;
    const REQUESTS: usize = 5;
    for i in 0..REQUESTS {
        let answer = chain.ask(&format!("POST /n/{i}"), &[], "body");
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    proxy.log.wait_for(&[
        "connected to the upstream: its certificate verified, ours presented",
        "tls.alpn=\"http/1.1\"",
    ]);
    let bodies: Vec<String> = chain.echo.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(bodies, vec!["body"; REQUESTS]);
    let metrics = scrape(proxy);
    let opened = sample(
        &metrics,
        "mtls_proxy_upstream_connections_total{protocol=\"http/1.1\"}",
    )
    .expect("a connection count");
    assert!(
        (1.0..REQUESTS as f64).contains(&opened),
        "idle connections are used again: {opened} for {REQUESTS} requests\n{metrics}"
    );
}

#[test]
fn a_request_head_over_the_limit_gets_431_and_is_counted() {
    let pki = Pki::demo();
    // No upstream is needed: the head is refused before anything is forwarded.
    let proxy = start_proxy(
        &pki,
        "https://localhost:1",
        &[
            "-c",
            "a",
            "--max-header-size",
            "8KiB",
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let big = "x".repeat(16 * 1024);
    let answer = ask(proxy.addr, "GET /", &[("X-Big", &big)], "");
    assert_eq!(answer.status, 431, "{}", answer.head);
    // Counted when the connection ends, just before this line.
    let line = proxy.log.wait_for(&["reason=\"header_too_large\""]);
    assert!(line.contains("max_header_bytes=8192"), "{line}");
    let metrics = scrape(&proxy);
    let hit = "mtls_limits_hit_total{limit=\"header_too_large\"}";
    assert_eq!(sample(&metrics, hit), Some(1.0), "{metrics}");
}

#[test]
fn a_listener_off_loopback_a_url_with_a_path_and_no_certificate_are_usage_errors() {
    let pki = Pki::demo();
    let proxy = |args: &[&str]| {
        run(Command::new(CLIENT)
            .args(["proxy", "--certs", utf8(pki.dir())])
            .args(args)
            .env("RUST_LOG", "warn"))
    };
    let out = proxy(&["-c", "a", "--listen", "0.0.0.0:0"]);
    let error = error_line_with(&out, 2);
    assert!(
        error.contains("--listen 0.0.0.0:0 is not a loopback address"),
        "{}",
        text(&out)
    );
    assert!(error.contains("--allow-remote"), "{error}");

    let out = proxy(&["-c", "a", "--url", "https://localhost:8443/api"]);
    assert!(
        error_line_with(&out, 2).contains("has a path"),
        "{}",
        text(&out)
    );

    let out = proxy(&[]);
    assert!(
        error_line_with(&out, 2).contains("choose a client certificate: -c a or -c b"),
        "{}",
        text(&out)
    );
}
