//! The break-it lab end to end: every broken certificate `certificate lab` mints is tried
//! against the real server binary and our client, and each side's exact reason is checked.
//! Also the revocation round trip the CA tool promises: revoke Client B, restart the server
//! with the CRL, B is refused as revoked while A still gets 200.

use crate::SERVER;
use mtls::Failure;
use mtls::ca::crl::Reason;
use rustls::AlertDescription;
use testkit::{Pki, ServerProcess, fetch, utf8};

/// Presents `lab/NAME` to `server` and returns the client's error.
fn refused(pki: &Pki, server: &ServerProcess, name: &str) -> mtls::Error {
    let lab = pki.certs.lab();
    match fetch(
        &server.url("localhost"),
        pki.certs.ca_cert(),
        Some((lab.cert(name), lab.key(name))),
    ) {
        Err(e) => e,
        Ok(ex) => panic!("{name} was accepted: {} {}", ex.status, ex.body),
    }
}

#[test]
fn every_lab_certificate_fails_for_its_own_reason_on_both_sides() {
    let pki = Pki::demo();
    let lab = mtls::ca::lab::mint(&pki.certs, false).expect("mint the lab");
    assert_eq!(lab.cases.len(), 7, "{lab}");
    let server = ServerProcess::start(SERVER, &["--certs", utf8(pki.dir())]);

    // (lab file, alert the client receives, server's reason code, server's words)
    let cases = [
        (
            "client-from-other-ca",
            AlertDescription::UnknownCA,
            "unknown_ca",
            "the client's certificate was issued by a CA this server does not trust",
        ),
        (
            "client-expired",
            AlertDescription::CertificateExpired,
            "expired",
            "the client's certificate has expired",
        ),
        (
            "client-not-yet-valid",
            AlertDescription::CertificateExpired,
            "not_yet_valid",
            "the client's certificate is not valid yet",
        ),
        (
            "client-server-auth-only",
            AlertDescription::UnsupportedCertificate,
            "bad_usage",
            "not meant for client authentication",
        ),
        (
            "client-is-a-ca",
            AlertDescription::CertificateUnknown,
            "bad_usage",
            "the client presented a CA certificate as its own identity",
        ),
    ];
    for (name, alert, reason, words) in cases {
        let before = server.log.count(&["TLS handshake failed"]);
        let err = refused(&pki, &server, name);
        assert_eq!(
            err.failure(),
            Some(&Failure::PeerRefused { alert }),
            "{name}: {err}"
        );
        let text = err.to_string();
        let alert_name = mtls::explain::alert_name(alert);
        assert!(
            text.starts_with(&format!(
                "the server refused our certificate (alert: {alert_name})"
            )),
            "{name}: {text}"
        );
        let lines = server
            .log
            .wait_for_count(&["TLS handshake failed"], before + 1);
        let line = &lines[before];
        assert!(
            line.contains(&format!("reason=\"{reason}\"")),
            "{name}: {line}"
        );
        assert!(line.contains(words), "{name}: {line}");
    }
}

#[test]
fn the_lab_revoked_client_is_refused_once_the_server_loads_the_lab_crl() {
    let pki = Pki::demo();
    mtls::ca::lab::mint(&pki.certs, false).expect("mint the lab");
    let crl = pki.certs.lab().path().join(mtls::ca::lab::REVOKED_CRL);
    let server = ServerProcess::start(SERVER, &["--certs", utf8(pki.dir()), "--crl", utf8(&crl)]);
    let err = refused(&pki, &server, "client-revoked");
    assert_eq!(
        err.failure(),
        Some(&Failure::PeerRefused {
            alert: AlertDescription::CertificateRevoked
        }),
        "{err}"
    );
    let line = server
        .log
        .wait_for(&["TLS handshake failed", "reason=\"revoked\""]);
    assert!(
        line.contains("the client's certificate has been revoked"),
        "{line}"
    );
    // The list covers the issuer, so unrevoked clients of the same CA still pass.
    let ok = fetch(
        &server.url("localhost"),
        pki.certs.ca_cert(),
        Some((pki.certs.cert("client-a"), pki.certs.key("client-a"))),
    )
    .expect("Client A is not revoked");
    assert_eq!(ok.status.as_u16(), 200);
}

#[test]
fn a_server_certificate_without_the_ip_san_is_refused_by_the_client_dialing_the_ip() {
    let pki = Pki::demo();
    mtls::ca::lab::mint(&pki.certs, false).expect("mint the lab");
    let lab = pki.certs.lab();
    let server = ServerProcess::start(
        SERVER,
        &[
            "--certs",
            utf8(pki.dir()),
            "--cert",
            utf8(&lab.cert("server-without-ip-san")),
            "--key",
            utf8(&lab.key("server-without-ip-san")),
        ],
    );
    let a = Some((pki.certs.cert("client-a"), pki.certs.key("client-a")));
    let err = fetch(&server.url("127.0.0.1"), pki.certs.ca_cert(), a.clone())
        .expect_err("must be refused");
    assert!(
        matches!(err.failure(), Some(Failure::NameMismatch { .. })),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(
            "the server's certificate is not valid for \"127.0.0.1\": it names only DNS:localhost"
        ),
        "{err}"
    );
    let line = server
        .log
        .wait_for(&["TLS handshake failed", "reason=\"peer_refused\""]);
    assert!(
        line.contains("the client refused this server's certificate (alert: bad_certificate)"),
        "{line}"
    );
    // The same certificate is fine for the name it does carry.
    let ok = fetch(&server.url("localhost"), pki.certs.ca_cert(), a).expect("localhost is covered");
    assert_eq!(ok.status.as_u16(), 200);
}

#[test]
fn revoking_client_b_refuses_b_after_a_restart_with_the_crl_while_a_gets_200() {
    let pki = Pki::demo();
    let b = Some((pki.certs.cert("client-b"), pki.certs.key("client-b")));
    let a = Some((pki.certs.cert("client-a"), pki.certs.key("client-a")));
    {
        let before = ServerProcess::start(SERVER, &["--certs", utf8(pki.dir())]);
        let ok = fetch(&before.url("localhost"), pki.certs.ca_cert(), b.clone())
            .expect("B before revocation");
        assert_eq!(ok.status.as_u16(), 200);
    }
    let revoked = mtls::ca::crl::revoke(
        &pki.certs,
        "client-b",
        Reason(rcgen::RevocationReason::KeyCompromise),
        7,
    )
    .expect("revoke client-b");
    assert!(!revoked.already);
    let server = ServerProcess::start(
        SERVER,
        &["--certs", utf8(pki.dir()), "--crl", utf8(&pki.certs.crl())],
    );
    let err =
        fetch(&server.url("localhost"), pki.certs.ca_cert(), b).expect_err("B must be refused");
    assert!(
        err.to_string()
            .starts_with("the server refused our certificate (alert: certificate_revoked)"),
        "{err}"
    );
    server
        .log
        .wait_for(&["TLS handshake failed", "reason=\"revoked\"", "crl.pem"]);
    let ok = fetch(&server.url("localhost"), pki.certs.ca_cert(), a).expect("A still works");
    assert_eq!(ok.status.as_u16(), 200);
}

#[test]
fn an_intermediate_chain_works_out_of_the_box_for_server_client_and_curl() {
    testkit::require_tool("curl");
    let tmp = tempfile::tempdir().expect("temp dir");
    let certs = mtls::files::CertsDir::new(tmp.path().join("certs"));
    let mut opts = mtls::ca::demo::DemoOptions::new(certs.clone());
    opts.intermediate = true;
    let set = mtls::ca::demo::mint(&opts).expect("mint with an intermediate");
    assert!(set.all_ok(), "{set}");
    let server = ServerProcess::start(SERVER, &["--certs", utf8(certs.path())]);
    // Our client sends leaf + intermediate; the server trusts only the root, and vice versa.
    let ex = fetch(
        &server.url("localhost"),
        certs.ca_cert(),
        Some((certs.cert("client-a"), certs.key("client-a"))),
    )
    .expect("client A through the intermediate");
    assert_eq!(ex.status.as_u16(), 200);
    assert_eq!(
        ex.tls.peer_chain.len(),
        2,
        "the server must send its intermediate"
    );
    assert_eq!(
        ex.tls.peer_chain[1].common_name.as_deref(),
        Some("Intermediate CA")
    );
    server
        .log
        .wait_for(&["Certificate chain", "index=1", "CN=Intermediate CA"]);
    let out = testkit::curl_as(&certs, "client-b", &[&server.url("localhost")]);
    assert!(out.status.success(), "{}", testkit::text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("hello, Client B"),
        "{}",
        testkit::text(&out)
    );
}

#[test]
fn revoking_an_intermediate_refuses_every_client_it_signed() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let certs = mtls::files::CertsDir::new(tmp.path().join("certs"));
    let mut opts = mtls::ca::demo::DemoOptions::new(certs.clone());
    opts.intermediate = true;
    assert!(mtls::ca::demo::mint(&opts).expect("mint").all_ok());
    let a = Some((certs.cert("client-a"), certs.key("client-a")));

    // Revoking a leaf of the intermediate: only that leaf is refused.
    mtls::ca::crl::revoke(
        &certs,
        "client-b",
        Reason(rcgen::RevocationReason::Superseded),
        7,
    )
    .expect("revoke client-b");
    {
        let server = ServerProcess::start(
            SERVER,
            &["--certs", utf8(certs.path()), "--crl", utf8(&certs.crl())],
        );
        let ok = fetch(&server.url("localhost"), certs.ca_cert(), a.clone()).expect("A is fine");
        assert_eq!(ok.status.as_u16(), 200);
        let b = Some((certs.cert("client-b"), certs.key("client-b")));
        let err = fetch(&server.url("localhost"), certs.ca_cert(), b).expect_err("B is revoked");
        assert!(
            err.to_string().contains("(alert: certificate_revoked)"),
            "{err}"
        );
    }

    // Revoking the intermediate itself: everything it signed is refused.
    mtls::ca::crl::revoke(
        &certs,
        "intermediate",
        Reason(rcgen::RevocationReason::CaCompromise),
        7,
    )
    .expect("revoke the intermediate");
    let server = ServerProcess::start(
        SERVER,
        &["--certs", utf8(certs.path()), "--crl", utf8(&certs.crl())],
    );
    let err =
        fetch(&server.url("localhost"), certs.ca_cert(), a).expect_err("A's issuer is revoked");
    assert!(
        err.to_string().contains("(alert: certificate_revoked)"),
        "{err}"
    );
    server
        .log
        .wait_for(&["TLS handshake failed", "reason=\"revoked\""]);
}

#[test]
fn an_out_of_date_crl_refuses_clients_and_the_log_says_so() {
    let pki = Pki::demo();
    let ca = pki.ca();
    let now = time::OffsetDateTime::now_utc();
    let stale = mtls::ca::crl::sign(
        &ca,
        &[],
        1,
        now - time::Duration::days(10),
        now - time::Duration::days(1),
    )
    .expect("sign an old list");
    let crl = pki.path("stale.crl.pem");
    std::fs::write(&crl, stale).expect("write");
    let server = ServerProcess::start(SERVER, &["--certs", utf8(pki.dir()), "--crl", utf8(&crl)]);
    let err = fetch(
        &server.url("localhost"),
        pki.certs.ca_cert(),
        Some((pki.certs.cert("client-a"), pki.certs.key("client-a"))),
    )
    .expect_err("an out-of-date list must not vouch for anyone");
    assert!(err.to_string().contains("(alert: unknown_ca)"), "{err}");
    let line = server
        .log
        .wait_for(&["TLS handshake failed", "reason=\"crl_expired\""]);
    assert!(line.contains("is out of date"), "{line}");
    assert!(line.contains("cargo run -p certificate -- crl"), "{line}");
}

#[test]
fn the_fix_the_client_suggests_for_an_expired_lab_certificate_works() {
    let pki = Pki::demo();
    mtls::ca::lab::mint(&pki.certs, false).expect("mint the lab");
    let server = ServerProcess::start(SERVER, &["--certs", utf8(pki.dir())]);
    let error = refused(&pki, &server, "client-expired").to_string();
    // The lab's expired certificate lived a minute: the fix renews it by its name from the
    // demo folder, for a day.
    let fix = format!(
        "renew lab/client-expired --certs {} --days 1",
        pki.dir().display()
    );
    assert!(error.contains(&fix), "{error}");
    mtls::ca::issue::renew(
        &pki.certs,
        "lab/client-expired",
        Some(mtls::pki::Validity::days(1)),
        None,
        &[],
    )
    .expect("the suggested renewal works");
    let lab = pki.certs.lab();
    let ok = fetch(
        &server.url("localhost"),
        pki.certs.ca_cert(),
        Some((lab.cert("client-expired"), lab.key("client-expired"))),
    )
    .expect("served after the renewal");
    assert_eq!(ok.status.as_u16(), 200);

    let early = refused(&pki, &server, "client-not-yet-valid").to_string();
    assert!(early.contains("not valid until"), "{early}");
    assert!(
        early.contains("clock"),
        "a certificate from the future is about clocks: {early}"
    );
    assert!(!early.contains("renew"), "{early}");
}

#[test]
fn the_lab_cases_with_a_server_of_their_own_start_it_on_another_port() {
    let pki = Pki::demo();
    let lab = mtls::ca::lab::mint(&pki.certs, false).expect("mint the lab");
    let text = lab.to_string();
    for case in ["client-revoked", "server-without-ip-san"] {
        let case = lab.cases.iter().find(|c| c.name == case).expect("the case");
        let (server, client) = (&case.try_it[0], &case.try_it[1]);
        let port = server
            .split("--addr 127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("{}: no --addr in {server}", case.name));
        assert_ne!(port, "8443", "{server}");
        assert!(client.contains(&format!(":{port}/")), "{client}");
        assert!(
            server.contains("--certs"),
            "a non-default folder is named: {server}"
        );
    }
    assert!(text.contains("beside the demo server"), "{text}");
}
