//! The client binary end to end, against the library's server (the same code the server
//! binary runs) on a free port, and against real servers of other kinds (nginx, HAProxy),
//! with certificates minted per test; `client audit` against servers that keep out whom
//! they must and servers that do not; `client proxy` between a plain-HTTP application and
//! the server's own proxy; `client bench` counting exactly what it was asked to, and
//! failures by the client's own words.

mod audit;
mod bench;
mod proxy;
mod readme;
mod real_servers;
mod trace;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mtls::pki::{CertAuthority, Usage, Validity};
use testkit::{InProcessServer, Pki, expired, leaf, run, server_settings, text};

pub(crate) const CLIENT: &str = env!("CARGO_BIN_EXE_client");

pub(crate) fn client(dir: &Path, args: &[&str]) -> Output {
    run(Command::new(CLIENT)
        .args(["--certs", dir.to_str().expect("utf-8 path")])
        .args(args)
        .env("RUST_LOG", "warn"))
}

/// The one `error:` line, asserting a clean failure (exit 1, no panic).
pub(crate) fn error_line(out: &Output) -> String {
    error_line_with(out, 1)
}

/// The one `error:` line of a usage error (exit 2, no panic).
fn usage_line(out: &Output) -> String {
    error_line_with(out, 2)
}

pub(crate) fn error_line_with(out: &Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "{}", text(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{}", text(out));
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly one error line expected:\n{}",
        text(out)
    );
    errors[0].to_string()
}

/// The JSON report of a run that exited with `code` (no panic on the way).
pub(crate) fn json_report(out: &Output, code: i32) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(code), "{}", text(out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{}",
        text(out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

#[test]
fn client_a_gets_200_and_prints_state_chain_and_checks() {
    let pki = Pki::demo();
    let server = InProcessServer::start(server_settings(&pki));
    let out = client(pki.dir(), &["-c=a", "--url", &server.url("localhost")]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "HTTP/2.0 200 OK",
        "hello, Client A (spiffe://mtls.demo/client-a)",
        "version:             TLSv1.3",
        "cipher suite:        TLS13_",
        "ALPN protocol:       h2",
        "server name (SNI):   localhost",
        "Server certificate chain",
        "subject: C=Earth, ST=Asia, L=Mountain, O=Server Company, OU=Engineering, CN=localhost",
        "SANs:    DNS:localhost, IP:127.0.0.1, IP:::1",
        "What was checked",
        // The CertificateRequest named the CAs the server accepts.
        "the server asked for a certificate from: ",
        "O=CA Company",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?}:\n{stdout}");
    }
}

#[test]
fn every_spelling_of_the_client_flag_works() {
    let pki = Pki::demo();
    let server = InProcessServer::start(server_settings(&pki));
    let url = server.url("127.0.0.1");
    for args in [
        vec!["-c", "b"],
        vec!["-c=b"],
        vec!["--client", "b"],
        vec!["--client=b"],
    ] {
        let mut all = args.clone();
        all.extend(["--url", url.as_str()]);
        let out = client(pki.dir(), &all);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("hello, Client B"),
            "{args:?}: {}",
            text(&out)
        );
    }
}

#[test]
fn an_unknown_client_is_a_usage_error_listing_the_choices() {
    let pki = Pki::demo();
    let out = client(pki.dir(), &["-c=c"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[possible values: a, b]"), "{stderr}");

    let out = client(pki.dir(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("-c a or -c b"),
        "{}",
        text(&out)
    );
}

/// A client certificate the demo server does not trust: issued by another CA ("Other
/// CA"), written as stranger.crt and stranger.key.
pub(crate) fn stranger(pki: &Pki) -> (PathBuf, PathBuf) {
    let other = pki.other_ca("other-ca");
    let spec = leaf(
        "Stranger",
        Usage::Client,
        &["URI:spiffe://x/stranger"],
        Validity::days(1),
    );
    pki.issue(&other, "stranger", &spec);
    (pki.certs.cert("stranger"), pki.certs.key("stranger"))
}

/// The library's server presenting `stem` (a server certificate `ca` issues for `sans`)
/// instead of the demo's.
pub(crate) fn server_presenting(
    pki: &Pki,
    ca: &CertAuthority,
    stem: &str,
    sans: &[&str],
) -> InProcessServer {
    pki.issue(
        ca,
        stem,
        &leaf(stem, Usage::Server, sans, Validity::days(1)),
    );
    let mut settings = server_settings(pki);
    settings.cert = pki.certs.cert(stem);
    settings.key = pki.certs.key(stem);
    InProcessServer::start(settings)
}

#[test]
fn client_refuses_a_server_from_another_ca_and_names_its_issuer() {
    let pki = Pki::demo();
    let other = pki.other_ca("other-ca");
    let sans = ["DNS:localhost", "IP:127.0.0.1"];
    let server = server_presenting(&pki, &other, "impostor", &sans);
    let out = client(pki.dir(), &["-c", "a", "--url", &server.url("localhost")]);
    let error = error_line(&out);
    assert!(
        error.contains("the server's certificate was issued by a CA we do not trust"),
        "{error}"
    );
    assert!(
        error.contains("CN=Other CA"),
        "the issuer must be named: {error}"
    );
    assert!(
        error.contains("ca.crt"),
        "the trusted CA file must be named: {error}"
    );
}

#[test]
fn client_refuses_a_server_whose_certificate_lacks_the_host_and_names_its_sans() {
    let pki = Pki::demo();
    let sans = ["DNS:elsewhere.test", "IP:10.9.8.7"];
    let server = server_presenting(&pki, &pki.ca(), "elsewhere", &sans);
    let out = client(pki.dir(), &["-c", "a", "--url", &server.url("localhost")]);
    let error = error_line(&out);
    assert!(
        error.contains("the server's certificate is not valid for \"localhost\""),
        "{error}"
    );
    assert!(error.contains("DNS:elsewhere.test, IP:10.9.8.7"), "{error}");
}

#[test]
fn late_tls13_refusals_are_reported_as_refusals_with_the_alert() {
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
    let server = InProcessServer::start(server_settings(&pki));
    let url = server.url("localhost");

    let error = error_line(&client(pki.dir(), &["--no-cert", "--url", &url]));
    assert!(
        error
            .starts_with("error: the server refused our certificate (alert: certificate_required)"),
        "{error}"
    );

    let old_cert = pki.certs.cert("client-old");
    let old_key = pki.certs.key("client-old");
    let error = error_line(&client(
        pki.dir(),
        &[
            "--cert",
            old_cert.to_str().expect("path"),
            "--key",
            old_key.to_str().expect("path"),
            "--url",
            &url,
        ],
    ));
    assert!(
        error.starts_with("error: the server refused our certificate (alert: certificate_expired)"),
        "{error}"
    );
}

#[test]
fn refusals_are_named_the_same_over_http1_and_over_tls12() {
    let pki = Pki::demo();
    let server = InProcessServer::start(server_settings(&pki));
    let url = server.url("localhost");
    // HTTP/1.1 reads the alert through hyper's HTTP/1 code path.
    let error = error_line(&client(
        pki.dir(),
        &["--no-cert", "--http1.1", "--url", &url],
    ));
    assert!(
        error
            .starts_with("error: the server refused our certificate (alert: certificate_required)"),
        "{error}"
    );
    // With TLS 1.2 the refusal arrives inside the handshake, with the same alert, and the
    // client says so; with TLS 1.3 it arrives after the client's side has finished.
    let error = error_line(&client(
        pki.dir(),
        &["--no-cert", "--tls-version", "1.2", "--url", &url],
    ));
    assert!(
        error
            .starts_with("error: the server refused our certificate (alert: certificate_required)"),
        "{error}"
    );
    assert!(
        error.contains("the refusal arrived inside the handshake, before it finished"),
        "{error}"
    );
    let error = error_line(&client(
        pki.dir(),
        &["--no-cert", "--tls-version", "1.3", "--url", &url],
    ));
    assert!(
        error.contains("the refusal arrived on the first read after our side of the handshake"),
        "{error}"
    );
}

#[test]
fn missing_files_name_the_file_and_suggest_minting() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let error = error_line(&client(tmp.path(), &["-c", "a"]));
    assert!(error.contains("ca.crt: no such file"), "{error}");
    assert!(error.contains("cargo run -p certificate"), "{error}");
}

#[test]
fn connection_refused_asks_whether_the_server_is_running() {
    let pki = Pki::demo();
    // Bind then drop, so the port is very likely closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let error = error_line(&client(
        pki.dir(),
        &["-c", "a", "--url", &format!("https://127.0.0.1:{port}/")],
    ));
    assert!(error.contains("connection refused"), "{error}");
    assert!(error.contains("is the server running"), "{error}");
    assert!(error.contains(&port.to_string()), "{error}");
}

#[test]
fn wrong_files_are_named_with_what_they_hold() {
    let pki = Pki::demo();
    let key = pki.certs.key("client-a");
    let error = error_line(&client(
        pki.dir(),
        &["-c", "a", "--ca", key.to_str().expect("path")],
    ));
    assert!(
        error.contains("holds a PRIVATE KEY but no CERTIFICATE"),
        "{error}"
    );

    let b_key = pki.certs.key("client-b");
    let error = error_line(&client(
        pki.dir(),
        &["-c", "a", "--key", b_key.to_str().expect("path")],
    ));
    assert!(
        error.contains("client-b.key does not match the certificate"),
        "{error}"
    );

    let junk = pki.path("junk.crt");
    std::fs::write(&junk, "not a certificate\n").expect("write junk");
    let error = error_line(&client(
        pki.dir(),
        &["-c", "a", "--ca", junk.to_str().expect("path")],
    ));
    assert!(error.contains("is not a PEM file"), "{error}");
}

#[test]
fn an_ip_url_sends_no_sni_and_a_bad_port_is_named() {
    let pki = Pki::demo();
    let server = InProcessServer::start(server_settings(&pki));
    let out = client(pki.dir(), &["-c", "a", "--url", &server.url("127.0.0.1")]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("server name (SNI):   (none)"),
        "rustls sends no SNI for an IP:\n{stdout}"
    );
    assert!(
        stdout.contains("by the server: it asked for our certificate"),
        "{stdout}"
    );

    let error = usage_line(&client(
        pki.dir(),
        &["-c", "a", "--url", "https://localhost:99999/"],
    ));
    assert!(
        error.contains("a port is a number from 1 to 65535"),
        "{error}"
    );
}

#[test]
fn plain_http_urls_are_refused_before_connecting() {
    let pki = Pki::demo();
    let error = usage_line(&client(
        pki.dir(),
        &["-c", "a", "--url", "http://localhost:8443/"],
    ));
    assert!(error.contains("mutual TLS needs https://"), "{error}");
}
