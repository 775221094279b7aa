//! A verified client stays verified only as long as its certificate does: a resumed session
//! is verified again when it resumes, and open connections are verified again after every
//! reload. Each must-fail case asserts the reason the server logged.

use crate::start;
use mtls::pki::{Usage, Validity};
use mtls::tls::{ClientPolicy, TlsVersion};
use mtls::write::{self, Access};
use testkit::{Conn, client_config, http1, metrics_addr, plain_get, poll, sample};
use testkit::{Pki, leaf};
use time::OffsetDateTime;

/// HTTP/1.1 only, at one TLS version.
fn only(version: TlsVersion) -> ClientPolicy {
    ClientPolicy {
        only_version: Some(version),
        http1_only: true,
    }
}

/// Waits (bounded) until the clock is past `t`, with a second to spare: certificate and CRL
/// times are whole seconds.
fn wait_until_past(t: OffsetDateTime) {
    poll("the clock to pass the deadline", || {
        (OffsetDateTime::now_utc() > t + time::Duration::seconds(1)).then_some(())
    });
}

#[test]
fn a_session_resumed_after_the_client_certificate_expired_is_refused() {
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    // A certificate that expires a few seconds from now: enough for a first handshake on a
    // loaded machine, soon enough to wait for.
    let now = OffsetDateTime::now_utc();
    let not_after = now + time::Duration::seconds(5);
    pki.issue(
        &pki.ca(),
        "client-brief",
        &leaf(
            "Client Brief",
            Usage::Client,
            &["URI:spiffe://mtls.demo/brief"],
            Validity {
                not_before: now - time::Duration::hours(1),
                not_after,
            },
        ),
    );
    let configs: Vec<_> = [TlsVersion::Tls13, TlsVersion::Tls12]
        .into_iter()
        .map(|v| (v, client_config(&pki, Some("client-brief"), only(v))))
        .collect();
    for (version, config) in &configs {
        let mut first = Conn::open(config, server.addr).expect("first connection");
        let reply = first.request("/", &[]).unwrap_or_else(|e| {
            panic!("{version:?}: served before it expires (was the machine too slow?): {e}")
        });
        assert_eq!(reply.status, 200);
    }

    wait_until_past(not_after);
    let mark = server.log.mark();
    for (version, config) in &configs {
        let mut second = Conn::open(config, server.addr).expect("the TLS handshake completes");
        assert!(second.resumed(), "{version:?}: the session was not resumed");
        let outcome = second.request("/", &[]);
        assert!(
            outcome.is_err(),
            "{version:?}: an expired client was served: {outcome:?}"
        );
    }
    let lines = server.log.wait_for_count_after(
        mark,
        &[
            "TLS handshake failed",
            "reason=\"expired\"",
            "tls.resumed=true",
        ],
        2,
    );
    assert!(
        lines[0].contains("the client's certificate has expired"),
        "{}",
        lines[0]
    );
}

#[test]
fn a_session_resumed_after_the_crl_went_stale_is_refused() {
    let pki = Pki::demo();
    let crl = pki.certs.crl();
    let now = OffsetDateTime::now_utc();
    let next_update = now + time::Duration::seconds(5);
    let pem = mtls::ca::crl::sign(&pki.ca(), &[], 1, now, next_update).expect("sign a CRL");
    write::atomic(&crl, pem.as_bytes(), Access::Public).expect("write the CRL");
    let server = start(
        &pki,
        &[
            "--crl",
            crl.to_str().expect("path"),
            "--reload-interval",
            "0",
        ],
    );
    let config = client_config(&pki, Some("client-a"), http1());
    let mut first = Conn::open(&config, server.addr).expect("first connection");
    assert_eq!(first.request("/", &[]).expect("served").status, 200);

    wait_until_past(next_update);
    let mark = server.log.mark();
    let mut second = Conn::open(&config, server.addr).expect("the TLS handshake completes");
    assert!(second.resumed(), "the session was not resumed");
    let outcome = second.request("/", &[]);
    assert!(outcome.is_err(), "served on a stale CRL: {outcome:?}");
    server.log.wait_for_after(
        mark,
        &[
            "TLS handshake failed",
            "reason=\"crl_expired\"",
            "tls.resumed=true",
        ],
    );
}

#[test]
fn a_client_revoked_by_a_reload_cannot_resume_its_way_back_in() {
    let pki = Pki::demo();
    let crl = pki.certs.crl();
    pki.write_crl(&crl, &[]);
    let server = start(
        &pki,
        &[
            "--crl",
            crl.to_str().expect("path"),
            "--reload-interval",
            "0",
        ],
    );
    let configs: Vec<_> = [TlsVersion::Tls13, TlsVersion::Tls12]
        .into_iter()
        .map(|v| client_config(&pki, Some("client-b"), only(v)))
        .collect();
    for config in &configs {
        let mut first = Conn::open(config, server.addr).expect("first connection");
        assert_eq!(first.request("/", &[]).expect("served").status, 200);
    }

    pki.write_crl(&crl, &["client-b"]);
    let mark = server.log.mark();
    server.signal("HUP");
    server
        .log
        .wait_for_after(mark, &["reloaded TLS material", "revoked=1"]);
    for config in &configs {
        // The same configs offer their sessions again: refused, whether the server resumes
        // (and verifies again) or makes a full handshake.
        let outcome = Conn::open(config, server.addr).and_then(|mut c| c.request("/", &[]));
        assert!(outcome.is_err(), "a revoked client was served: {outcome:?}");
    }
    server
        .log
        .wait_for_count_after(mark, &["TLS handshake failed", "reason=\"revoked\""], 2);
}

#[test]
fn an_open_connection_is_closed_when_a_reload_revokes_its_client() {
    let pki = Pki::demo();
    let crl = pki.certs.crl();
    pki.write_crl(&crl, &[]);
    let server = start(
        &pki,
        &[
            "--crl",
            crl.to_str().expect("path"),
            "--reload-interval",
            "0",
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let mut b = Conn::open(&client_config(&pki, Some("client-b"), http1()), server.addr)
        .expect("connect as B");
    assert_eq!(b.request("/", &[]).expect("B served").status, 200);
    let mut a = Conn::open(&client_config(&pki, Some("client-a"), http1()), server.addr)
        .expect("connect as A");
    assert_eq!(a.request("/", &[]).expect("A served").status, 200);

    // B keeps its connection alive; a reload revokes it.
    pki.write_crl(&crl, &["client-b"]);
    server.signal("HUP");
    let line = server.log.wait_for(&[
        "the client no longer verifies after a reload",
        "reason=\"revoked\"",
    ]);
    assert!(line.contains("Client B"), "{line}");
    b.wait_closed().expect("B's connection is closed cleanly");

    // A still verifies: its connection goes on.
    assert_eq!(a.request("/", &[]).expect("A still served").status, 200);
    let (status, scrape) = plain_get(metrics_addr(&server), "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        sample(
            &scrape,
            "mtls_reload_closed_connections_total{reason=\"revoked\"}"
        ),
        Some(1.0),
        "{scrape}"
    );
}
