//! The server binary end to end: real certificates per test, port 0, real peers (our
//! client library, curl, openssl s_client). Every refusal asserts the reason on both sides.

use std::process::Command;

use crate::{SERVER, start};
use mtls::Failure;
use mtls::files::{ClientId, Role};
use mtls::pki::{Usage, Validity};
use rustls::AlertDescription;
use testkit::{Pki, curl_as, expired, fetch, leaf, require_tool, run, text};

/// Asserts the client saw the server refuse it with `alert`, and returns its message.
fn assert_refused(result: mtls::Result<mtls::client::Exchange>, alert: AlertDescription) -> String {
    match result {
        Err(e) => {
            assert_eq!(e.failure(), Some(&Failure::PeerRefused { alert }), "{e}");
            let message = e.to_string();
            assert!(
                message.starts_with("the server refused our certificate (alert: "),
                "{message}"
            );
            message
        }
        Ok(ex) => panic!("expected a refusal, got {} {}", ex.status, ex.body),
    }
}

#[test]
fn client_a_and_client_b_get_200_and_the_log_names_them() {
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    for id in ClientId::ALL {
        let role = Role::Client(id);
        let ex = fetch(
            &server.url("localhost"),
            pki.certs.ca_cert(),
            pki.pair(role.stem()),
        )
        .expect("request succeeds");
        assert_eq!(ex.status.as_u16(), 200);
        assert_eq!(
            ex.body,
            format!("hello, {} ({})\n", id.common_name(), id.uri())
        );
        server.log.wait_for(&[
            "State",
            "TLSv1.3",
            &format!("client=\"{} ({})\"", id.common_name(), id.uri()),
        ]);
        server.log.wait_for(&[
            "Certificate chain",
            "index=0",
            &format!("CN={}", id.common_name()),
        ]);
        server
            .log
            .wait_for(&["Header", "method=GET", id.common_name()]);
        // Success is not silent: the server says what it verified, against which CA.
        server.log.wait_for(&[
            "client verified",
            "O=CA Company",
            "purpose=\"clientAuth\"",
            id.common_name(),
        ]);
    }
}

#[test]
fn state_and_chain_are_logged_once_per_connection_and_headers_per_request() {
    require_tool("curl");
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    let url = server.url("localhost");
    // Two requests on one connection (curl reuses it for the same host).
    let out = curl_as(
        &pki.certs,
        "client-a",
        &[
            "--http1.1",
            "-H",
            "Authorization: Bearer top-secret",
            "-H",
            "Cookie: session=also-secret",
            &url,
            &url,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    server
        .log
        .wait_for(&["Header", "authorization=<redacted>", "cookie=<redacted>"]);
    server
        .log
        .wait_for_count(&["Header", "user-agent=\"curl"], 2);
    assert_eq!(server.log.count(&["State"]), 1, "{}", server.log.all());
    assert_eq!(server.log.count(&["Header"]), 2, "{}", server.log.all());
    assert!(
        !server.log.all().contains("top-secret"),
        "a secret reached the log"
    );
    assert!(
        !server.log.all().contains("also-secret"),
        "a secret reached the log"
    );
}

#[test]
fn client_without_certificate_is_refused_and_the_log_says_why() {
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    let message = assert_refused(
        fetch(&server.url("localhost"), pki.certs.ca_cert(), None),
        AlertDescription::CertificateRequired,
    );
    assert!(message.contains("we sent none"), "{message}");
    let line = server
        .log
        .wait_for(&["TLS handshake failed", "reason=\"no_certificate\""]);
    assert!(line.contains("the client sent no certificate"), "{line}");
    assert!(line.contains("WARN"), "{line}");
}

#[test]
fn client_from_another_ca_is_refused_as_unknown_ca() {
    let pki = Pki::demo();
    let other = pki.other_ca("other-ca");
    pki.issue(
        &other,
        "client-c",
        &leaf(
            "Client C",
            Usage::Client,
            &["URI:spiffe://mtls.demo/client-c"],
            Validity::days(1),
        ),
    );
    let server = start(&pki, &[]);
    assert_refused(
        fetch(
            &server.url("localhost"),
            pki.certs.ca_cert(),
            pki.pair("client-c"),
        ),
        AlertDescription::UnknownCA,
    );
    let line = server
        .log
        .wait_for(&["TLS handshake failed", "reason=\"unknown_ca\""]);
    assert!(
        line.contains("the client's certificate was issued by a CA this server does not trust"),
        "{line}"
    );
}

#[test]
fn expired_client_is_refused_as_expired() {
    let pki = Pki::demo();
    pki.issue(
        &pki.ca(),
        "client-old",
        &leaf(
            "Client Old",
            Usage::Client,
            &["URI:spiffe://mtls.demo/old"],
            expired(),
        ),
    );
    let server = start(&pki, &[]);
    assert_refused(
        fetch(
            &server.url("localhost"),
            pki.certs.ca_cert(),
            pki.pair("client-old"),
        ),
        AlertDescription::CertificateExpired,
    );
    let line = server
        .log
        .wait_for(&["TLS handshake failed", "reason=\"expired\""]);
    assert!(
        line.contains("the client's certificate has expired (it was valid until"),
        "{line}"
    );
}

#[test]
fn server_auth_only_certificate_is_refused_as_a_client() {
    let pki = Pki::demo();
    pki.issue(
        &pki.ca(),
        "not-a-client",
        &leaf(
            "Not A Client",
            Usage::Server,
            &["DNS:not-a-client.test"],
            Validity::days(1),
        ),
    );
    let server = start(&pki, &[]);
    assert_refused(
        fetch(
            &server.url("localhost"),
            pki.certs.ca_cert(),
            pki.pair("not-a-client"),
        ),
        AlertDescription::UnsupportedCertificate,
    );
    let line = server
        .log
        .wait_for(&["TLS handshake failed", "reason=\"bad_usage\""]);
    assert!(
        line.contains("not meant for client authentication"),
        "the log must name the missing usage: {line}"
    );
}

#[test]
fn curl_with_a_client_certificate_gets_200() {
    require_tool("curl");
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    let out = curl_as(
        &pki.certs,
        "client-b",
        &[
            "-w",
            "\n%{http_code} %{http_version}",
            &server.url("localhost"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("hello, Client B (spiffe://mtls.demo/client-b)\n"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("200 2"),
        "curl should get 200 over HTTP/2 (ALPN): {stdout}"
    );
}

#[test]
fn openssl_s_client_without_a_certificate_is_refused() {
    require_tool("openssl");
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    let out = run(Command::new("sh").args([
        "-c",
        &format!(
            "printf 'GET / HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n' | openssl s_client -connect {} \
             -servername localhost -CAfile {} -ign_eof 2>&1",
            server.addr,
            pki.certs.ca_cert().display()
        ),
    ]));
    let output = String::from_utf8_lossy(&out.stdout);
    assert!(
        output.contains("alert certificate required") || output.contains("alert number 116"),
        "s_client should report the certificate_required alert:\n{output}"
    );
    assert!(
        !output.contains("hello,"),
        "no response may be served:\n{output}"
    );
    server
        .log
        .wait_for(&["TLS handshake failed", "reason=\"no_certificate\""]);
}

#[test]
fn plain_http_on_the_tls_port_gets_a_400_that_says_what_to_do() {
    require_tool("curl");
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    let out = run(Command::new("curl").args([
        "-sS",
        "-w",
        "\n%{http_code}",
        &format!("http://127.0.0.1:{}/", server.addr.port()),
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("use an https:// URL"), "{}", text(&out));
    assert!(stdout.ends_with("400"), "{}", text(&out));
    server.log.wait_for(&[
        "TLS handshake failed",
        "reason=\"protocol\"",
        "did not speak TLS",
    ]);
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    let ok = fetch(
        &server.url("127.0.0.1"),
        pki.certs.ca_cert(),
        pki.pair("client-a"),
    )
    .expect("request before shutdown");
    assert_eq!(ok.status.as_u16(), 200);
    let log = server.log.clone();
    let status = server.terminate();
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        log.all()
    );
    log.wait_for(&["shutdown requested", "SIGTERM"]);
    log.wait_for(&["all connections closed"]);
}

#[test]
fn missing_certificates_are_one_sentence_naming_the_file_and_the_fix() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = run(Command::new(SERVER).args([
        "--certs",
        tmp.path().to_str().expect("path"),
        "--addr",
        "127.0.0.1:0",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{}", text(&out)));
    assert!(error.contains("server.crt: no such file"), "{error}");
    assert!(error.contains("cargo run -p certificate"), "{error}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_named() {
    let pki = Pki::demo();
    let out = run(Command::new(SERVER).args([
        "--certs",
        pki.dir().to_str().expect("path"),
        "--addr",
        "127.0.0.1:0",
        "--key",
        pki.certs.key("client-a").to_str().expect("path"),
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("client-a.key does not match the certificate"),
        "{stderr}"
    );
    assert!(stderr.contains("server.crt"), "{stderr}");
}

#[test]
fn a_port_in_use_is_explained() {
    let pki = Pki::demo();
    let first = start(&pki, &[]);
    let out = run(Command::new(SERVER).args([
        "--certs",
        pki.dir().to_str().expect("path"),
        "--addr",
        &first.addr.to_string(),
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("address already in use"), "{stderr}");
    assert!(stderr.contains("--addr 127.0.0.1:0"), "{stderr}");
}

#[test]
fn names_in_client_certificates_cannot_forge_log_lines() {
    let pki = Pki::demo();
    let mut spec = leaf(
        "Client Evil",
        Usage::Client,
        &["URI:spiffe://mtls.demo/evil"],
        Validity::days(1),
    );
    spec.subject = mtls::pki::demo_subject("Evil Company", "Client Evil\nINFO forged: admin");
    pki.issue(&pki.ca(), "client-evil", &spec);
    // webpki ignores certificates a client appends that it does not need: append one whose
    // subject is a whole forged log line.
    let junk = mtls::pki::CertAuthority::new_root(
        mtls::pki::demo_subject("Junk", "junk\nWARN forged: appended"),
        mtls::pki::KeyType::EcdsaP256,
        Validity::days(1),
    )
    .expect("mint a junk certificate");
    let path = pki.certs.cert("client-evil");
    let mut chain = std::fs::read_to_string(&path).expect("read");
    chain.push_str(&junk.cert_pem);
    std::fs::write(&path, chain).expect("write");

    let server = start(&pki, &[]);
    let ex = fetch(
        &server.url("localhost"),
        pki.certs.ca_cert(),
        pki.pair("client-evil"),
    )
    .expect("the client is verified");
    assert_eq!(ex.status.as_u16(), 200);
    let line = server
        .log
        .wait_for(&["Certificate chain", "index=0", "Evil Company"]);
    assert!(
        line.contains(r"CN=Client Evil\nINFO forged: admin"),
        "the newline must be escaped: {line}"
    );
    server.log.wait_for(&["Header", "method=GET"]);
    server
        .log
        .wait_for(&["not on its path to the CA", "left_out=1"]);
    let log = server.log.all();
    assert!(
        !log.contains("junk"),
        "an appended certificate was logged:\n{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("forged") && !l.contains("Client Evil")),
        "a certificate name forged a log line:\n{log}"
    );
}
