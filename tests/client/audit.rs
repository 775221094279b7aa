//! `client audit` against a server that keeps out whom it must (ours) and against servers
//! that do not: nginx with `ssl_verify_client optional_no_ca`, `openssl s_server -Verify 1`
//! (with and without `-verify_return_error`), and a Node.js server that requests a
//! certificate but never verifies it. Every case's verdict is asserted, by name, with what
//! the server did.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use mtls::server::policy::Rule;
use serde_json::Value;
use testkit::{
    InProcessServer, PeerServer, Pki, ServerProcess, require_tool, run, server_settings, text, utf8,
};

use crate::{CLIENT, error_line_with as error_line, json_report};

/// Runs `client audit --url URL --ca CA` with `args` after.
fn audit_with(url: &str, ca: &Path, args: &[&str]) -> Output {
    run(Command::new(CLIENT)
        .args(["audit", "--url", url, "--ca", utf8(ca)])
        .args(args)
        .env("RUST_LOG", "warn"))
}

/// Runs `client audit` against `url` with Client A as the good client and the demo CA as
/// the issuer, plus `extra`.
fn audit(pki: &Pki, url: &str, extra: &[&str]) -> Output {
    let certs = &pki.certs;
    let (ca, cert, key, ca_key) = (
        certs.ca_cert(),
        certs.cert("client-a"),
        certs.key("client-a"),
        certs.key("ca"),
    );
    let mut args = vec![
        "--cert",
        utf8(&cert),
        "--key",
        utf8(&key),
        "--issuer-cert",
        utf8(&ca),
        "--issuer-key",
        utf8(&ca_key),
    ];
    args.extend_from_slice(extra);
    audit_with(url, &ca, &args)
}

/// Every case's verdict, by case id.
fn verdicts(report: &Value) -> BTreeMap<String, String> {
    report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().expect("id").to_string(),
                c["verdict"].as_str().expect("verdict").to_string(),
            )
        })
        .collect()
}

/// The case `id` in the report.
fn case<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no case {id} in {report:#}"))
}

/// Asserts the verdict of every case: `flagged` were wrongly admitted, the good client and
/// the unconfigured identity as `good` and `unconfigured` say, everything else blocked.
fn assert_verdicts(report: &Value, flagged: &[&str], unconfigured: &str) {
    let got = verdicts(report);
    let expected: BTreeMap<String, String> = got
        .keys()
        .map(|id| {
            let verdict = match id.as_str() {
                "good-client" => "admitted",
                "unconfigured-identity" => unconfigured,
                id if flagged.contains(&id) => "wrongly_admitted",
                _ => "blocked",
            };
            (id.clone(), verdict.to_string())
        })
        .collect();
    assert_eq!(got, expected, "{report:#}");
}

/// The text at `pointer` (`/server_did/body`, `/note`) in case `id`; empty when absent.
fn text_at<'a>(report: &'a Value, id: &str, pointer: &str) -> &'a str {
    case(report, id)
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// What the server did in case `id`: its kind and, when there is one, its alert or status.
fn did(report: &Value, id: &str) -> (String, String) {
    let d = &case(report, id)["server_did"];
    let detail = match (&d["alert"], &d["status"]) {
        (Value::String(alert), _) => alert.clone(),
        (_, Value::Number(status)) => status.to_string(),
        _ => String::new(),
    };
    (d["kind"].as_str().unwrap_or_default().to_string(), detail)
}

/// Case `id` was refused after the handshake, with `alert` if one arrived: s_server closes
/// at once after its alert, and under load the close can overtake it (a reset discards it).
fn refused_after(report: &Value, id: &str, alert: &str) {
    let (kind, got) = did(report, id);
    assert_eq!(kind, "refused_after_handshake", "{id}: {report:#}");
    assert!(got.is_empty() || got == alert, "{id}: alert {got}");
}

const ALL_CERTIFICATE_CASES: [&str; 8] = [
    "self-signed",
    "foreign-ca",
    "forged-ca",
    "expired",
    "not-yet-valid",
    "server-auth-only",
    "ca-as-client",
    "no-client-auth-eku",
];

#[test]
fn our_server_blocks_every_client_it_must_and_only_authenticates_by_default() {
    let pki = Pki::demo();
    let crl = pki.path("crl.pem");
    pki.write_crl(&crl, &[]);
    let mut settings = server_settings(&pki);
    settings.crls = vec![crl.clone()];
    settings.reload.interval = Some(Duration::from_millis(200));
    let server = InProcessServer::start(settings);
    let out = audit(
        &pki,
        &server.url("localhost"),
        &["--crl-hint", utf8(&crl), "--json"],
    );
    let report = json_report(&out, 0);
    assert_verdicts(&report, &[], "admitted");
    assert_eq!(verdicts(&report).len(), 18, "{report:#}");
    let after = |alert: &str| ("refused_after_handshake".to_string(), alert.to_string());
    let within = |alert: &str| ("refused_in_handshake".to_string(), alert.to_string());
    // TLS 1.3: each certificate is judged after the client's last flight, with rustls's alert.
    assert_eq!(
        did(&report, "no-certificate"),
        after("certificate_required")
    );
    assert_eq!(did(&report, "self-signed"), after("unknown_ca"));
    assert_eq!(did(&report, "foreign-ca"), after("unknown_ca"));
    assert_eq!(did(&report, "forged-ca"), after("decrypt_error"));
    assert_eq!(did(&report, "expired"), after("certificate_expired"));
    assert_eq!(
        did(&report, "server-auth-only"),
        after("unsupported_certificate")
    );
    assert_eq!(
        did(&report, "no-client-auth-eku"),
        after("unsupported_certificate")
    );
    assert_eq!(did(&report, "revoked"), after("certificate_revoked"));
    // Our server speaks TLS 1.2+ with AEAD, ECDHE suites only.
    for raw in [
        "tls1.0-only",
        "tls1.1-only",
        "cbc-only-suites",
        "non-forward-secret-suites",
    ] {
        assert_eq!(did(&report, raw), within("handshake_failure"), "{raw}");
    }
    assert_eq!(
        did(&report, "plain-http"),
        ("answered_plain_http".to_string(), "400".to_string())
    );
    assert_eq!(
        did(&report, "unconfigured-identity"),
        ("answered".to_string(), "200".to_string())
    );
    let summary = report["summary"].as_str().expect("summary");
    assert!(
        summary.contains("all 16 cases that must be blocked were blocked")
            && summary.contains("authenticates but does not authorize"),
        "{summary}"
    );
    let handshakes = &report["handshakes"];
    assert_eq!(handshakes["asked_for_client_certificate"], true);
    assert!(
        handshakes["ca_names"][0]
            .as_str()
            .expect("a CA name")
            .ends_with("CN=CA")
    );
    let accepted = handshakes["accepted"].to_string();
    assert!(accepted.contains("TLSv1.3 TLS13_"), "{accepted}");
    assert!(
        accepted.contains("TLSv1.2 TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
        "{accepted}"
    );
    // The revoked certificate went into the list the server reads, beside nothing else.
    let lists = mtls::pem::crls(&crl, "the CRL").expect("the CRL still parses");
    let info = mtls::ca::crl::CrlInfo::parse(&lists[0]).expect("parse");
    assert_eq!(info.entries.len(), 1, "one throwaway certificate revoked");
}

#[test]
fn expect_authorization_fails_a_server_that_only_authenticates_and_passes_one_that_authorizes() {
    let pki = Pki::demo();
    let open = InProcessServer::start(server_settings(&pki));
    let out = audit(
        &pki,
        &open.url("localhost"),
        &["--expect-authorization", "--json"],
    );
    let report = json_report(&out, 1);
    assert_verdicts(&report, &["unconfigured-identity"], "wrongly_admitted");

    let mut settings = server_settings(&pki);
    settings.access.rules = vec![Rule::uri("spiffe://mtls.demo/client-a").expect("rule")];
    let strict = InProcessServer::start(settings);
    let out = audit(&pki, &strict.url("localhost"), &["--expect-authorization"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "VERDICT   CASE (WHAT WAS SENT)",
        "admitted  good client",
        "blocked   valid, identity nobody configured         answered HTTP 403",
        "authorizes: it refused a valid certificate whose identity it was not told about",
        "asked for a client certificate: yes",
        "refused:  TLSv1.0; TLSv1.1; TLSv1.2 without forward secrecy; TLSv1.2 with CBC suites",
        "Result: all 14 cases that must be blocked were blocked; it authorizes as well as \
         authenticates",
    ] {
        assert!(table.contains(expected), "missing {expected:?}:\n{table}");
    }
}

#[test]
fn nginx_with_optional_no_ca_is_flagged_for_every_client_it_lets_in() {
    let pki = Pki::demo();
    let nginx = PeerServer::nginx(&pki, "optional_no_ca");
    let out = audit(&pki, &nginx.url(), &["--json"]);
    let report = json_report(&out, 1);
    // optional_no_ca forgives only "cannot find the issuer": no certificate, an unknown or
    // forged issuer. OpenSSL never refuses a CA:TRUE leaf. Its default suites include CBC.
    assert_verdicts(
        &report,
        &[
            "no-certificate",
            "self-signed",
            "foreign-ca",
            "forged-ca",
            "ca-as-client",
            "cbc-only-suites",
        ],
        "admitted",
    );
    assert_eq!(
        did(&report, "self-signed"),
        ("answered".to_string(), "200".to_string())
    );
    // The other checks fail in nginx's HTTP answer, after the handshake.
    for id in [
        "expired",
        "not-yet-valid",
        "server-auth-only",
        "no-client-auth-eku",
    ] {
        assert_eq!(
            did(&report, id),
            ("answered".to_string(), "400".to_string()),
            "{id}"
        );
        assert!(
            text_at(&report, id, "/server_did/body").contains("The SSL certificate error"),
            "{id}: {report:#}"
        );
    }
    assert_eq!(did(&report, "cbc-only-suites").0, "server_hello");
    drop(nginx);

    // `off`: ordinary TLS. Every case gets in, and the report says no certificate was sent.
    let nginx = PeerServer::nginx(&pki, "off");
    let report = json_report(&audit(&pki, &nginx.url(), &["--json"]), 1);
    let mut flagged = ALL_CERTIFICATE_CASES.to_vec();
    flagged.extend(["no-certificate", "cbc-only-suites"]);
    assert_verdicts(&report, &flagged, "admitted");
    assert_eq!(report["handshakes"]["asked_for_client_certificate"], false);
    assert!(
        text_at(&report, "expired", "/note").contains("never asked for a certificate"),
        "{report:#}"
    );
    assert!(
        text_at(&report, "no-certificate", "/note")
            .contains("does not require a client certificate"),
        "{report:#}"
    );
}

#[test]
fn openssl_s_server_with_verify_1_admits_any_certificate_unless_told_to_return_errors() {
    let pki = Pki::demo();
    // -Verify 1 requires a certificate, but s_server's verify callback only prints a failed
    // verification and carries on unless -verify_return_error is given.
    let lax = PeerServer::s_server(&pki, &["-Verify", "1"]);
    let report = json_report(&audit(&pki, &lax.url(), &["--json"]), 1);
    let mut flagged = ALL_CERTIFICATE_CASES.to_vec();
    flagged.push("cbc-only-suites");
    assert_verdicts(&report, &flagged, "admitted");
    refused_after(&report, "no-certificate", "certificate_required");
    drop(lax);

    // With it, OpenSSL refuses each bad chain, but a CA:TRUE certificate is a valid client
    // certificate to OpenSSL: only that one (and the CBC suites) get through.
    let strict = PeerServer::s_server(&pki, &["-Verify", "1", "-verify_return_error"]);
    let report = json_report(&audit(&pki, &strict.url(), &["--json"]), 1);
    assert_verdicts(&report, &["ca-as-client", "cbc-only-suites"], "admitted");
    refused_after(&report, "expired", "certificate_expired");
    refused_after(&report, "foreign-ca", "unknown_ca");
}

#[test]
fn a_node_server_that_requests_but_does_not_verify_is_flagged_for_every_certificate() {
    require_tool("node");
    let pki = Pki::demo();
    let certs = &pki.certs;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/client/requests_but_does_not_verify.js"
    );
    let (cert, key, ca) = (certs.cert("server"), certs.key("server"), certs.ca_cert());
    let node = ServerProcess::start(
        "node",
        &[
            script,
            utf8(&cert),
            utf8(&key),
            utf8(&ca),
            "--addr",
            "127.0.0.1:0",
        ],
    );
    let report = json_report(&audit(&pki, &node.url("localhost"), &["--json"]), 1);
    let mut flagged = ALL_CERTIFICATE_CASES.to_vec();
    flagged.extend(["no-certificate", "cbc-only-suites"]);
    assert_verdicts(&report, &flagged, "admitted");
    assert!(
        text_at(&report, "foreign-ca", "/server_did/body").contains("unverified"),
        "{report:#}"
    );
}

#[test]
fn a_server_on_another_machine_needs_allow_remote_and_nothing_is_sent_without_it() {
    let pki = Pki::demo();
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never a real host.
    let out = audit(&pki, "https://192.0.2.1:8443/", &[]);
    let error = error_line(&out, 2);
    assert!(
        error.contains("192.0.2.1, which is not this machine"),
        "{error}"
    );
    assert!(error.contains("--allow-remote"), "{error}");
}

#[test]
fn the_audit_stops_with_exit_2_when_the_good_client_cannot_get_in_or_the_server_is_not_trusted() {
    let pki = Pki::demo();
    let server = InProcessServer::start(server_settings(&pki));
    let url = server.url("localhost");
    let (cert, key) = crate::stranger(&pki);
    let certs = &pki.certs;
    let ca = certs.ca_cert();
    let out = audit_with(&url, &ca, &["--cert", utf8(&cert), "--key", utf8(&key)]);
    let error = error_line(&out, 2);
    assert!(
        error.contains("the good client could not get in"),
        "{error}"
    );
    assert!(error.contains("alert unknown_ca"), "{error}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("REFUSED  good client"), "{stdout}");
    assert!(
        !stdout.contains("no certificate"),
        "nothing else is tried: {stdout}"
    );

    let other_ca = certs.cert("other-ca");
    let out = audit_with(&url, &other_ca, &[]);
    let error = error_line(&out, 2);
    assert!(
        error.contains("our side refused the server's certificate"),
        "{error}"
    );
    assert!(
        error.contains("CN=CA"),
        "the server's real issuer is named: {error}"
    );
}

#[test]
fn a_server_that_never_answers_leaves_every_case_inconclusive_within_the_probe_limit() {
    let pki = Pki::demo();
    // Accepts connections (the kernel does) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "https://localhost:{}/",
        silent.local_addr().expect("addr").port()
    );
    let ca = pki.certs.ca_cert();
    let out = audit_with(&url, &ca, &["--timeout", "1", "--json"]);
    let report = json_report(&out, 1);
    let got = verdicts(&report);
    assert_eq!(got.len(), 9, "{report:#}");
    assert!(got.values().all(|v| v == "inconclusive"), "{report:#}");
    assert_eq!(did(&report, "no-certificate").0, "timed_out");
    assert_eq!(did(&report, "tls1.0-only").0, "timed_out");
    assert_eq!(report["probe_timeout_seconds"], 1);
}

#[test]
fn an_audit_that_cannot_run_exits_2_and_the_old_flags_still_conflict_with_it() {
    let pki = Pki::demo();
    let ca = pki.certs.ca_cert();
    let cert = pki.certs.cert("client-a");
    // Nothing listens on a port just released: the audit cannot run, which is not a finding.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let out = audit_with(&format!("https://127.0.0.1:{closed}/"), &ca, &[]);
    let error = error_line(&out, 2);
    assert!(error.contains("the server cannot be reached"), "{error}");
    assert!(error.contains("connection refused"), "{error}");

    let out = audit_with("https://localhost:1/", &ca, &["--cert", utf8(&cert)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--key"),
        "{}",
        text(&out)
    );
    let out = run(Command::new(CLIENT).args(["-c", "a", "audit", "--url", "https://localhost:1/"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
