//! Prometheus metrics: after a known mix of good and bad clients, a scrape shows exactly
//! those counts, and the expiry gauges of what is loaded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

use crate::start;
use mtls::Failure;
use mtls::pki::{Usage, Validity};
use rustls::AlertDescription;
use testkit::{PATIENCE, Pki, expired, fetch, leaf};
use testkit::{metrics_addr, plain_get, poll, sample};

#[test]
fn a_scrape_counts_handshakes_failures_by_reason_and_requests_by_client() {
    let pki = Pki::demo();
    let ca = pki.ca();
    let client = |stem: &str, cn: &str, usage, validity| {
        pki.issue(
            &ca,
            stem,
            &leaf(
                cn,
                usage,
                &[&format!("URI:spiffe://mtls.demo/{stem}")],
                validity,
            ),
        );
    };
    client("client-rev", "Client Rev", Usage::Client, Validity::days(1));
    client("client-old", "Client Old", Usage::Client, expired());
    client(
        "not-a-client",
        "Not A Client",
        Usage::Server,
        Validity::days(1),
    );
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
    let crl = pki.certs.crl();
    pki.write_crl(&crl, &["client-rev"]);

    let server = start(
        &pki,
        &[
            "--metrics",
            "127.0.0.1:0",
            "--crl",
            crl.to_str().expect("path"),
            "--allow-uri",
            "spiffe://mtls.demo/client-a",
            // Long enough for the good clients on a loaded machine; the silent peer waits it out.
            "--handshake-timeout",
            "3s",
        ],
    );
    let metrics = metrics_addr(&server);
    let url = server.url("localhost");
    let ca_file = pki.certs.ca_cert();
    let status = |who: Option<(PathBuf, PathBuf)>| {
        fetch(&url, ca_file.clone(), who).map(|ex| ex.status.as_u16())
    };

    assert_eq!(status(pki.pair("client-a")).expect("A"), 200);
    assert_eq!(status(pki.pair("client-a")).expect("A again"), 200);
    assert_eq!(status(pki.pair("client-b")).expect("B"), 403);
    // Each refused client is refused for its own reason, not merely refused.
    for (who, refused, alert) in [
        (
            "no certificate",
            None,
            AlertDescription::CertificateRequired,
        ),
        (
            "another CA",
            pki.pair("client-c"),
            AlertDescription::UnknownCA,
        ),
        (
            "expired",
            pki.pair("client-old"),
            AlertDescription::CertificateExpired,
        ),
        (
            "revoked",
            pki.pair("client-rev"),
            AlertDescription::CertificateRevoked,
        ),
        (
            "server-only usage",
            pki.pair("not-a-client"),
            AlertDescription::UnsupportedCertificate,
        ),
    ] {
        match status(refused) {
            Err(e) => assert_eq!(
                e.failure(),
                Some(&Failure::PeerRefused { alert }),
                "{who}: {e}"
            ),
            Ok(code) => panic!("{who} was answered {code}"),
        }
    }
    let (plain, _) = plain_get(server.addr, "/");
    assert_eq!(plain, 400);
    let silent = TcpStream::connect(server.addr).expect("connect");
    server
        .log
        .wait_for(&["TLS handshake failed", "reason=\"timeout\""]);

    server.signal("HUP");
    server.log.wait_for(&["reloaded TLS material"]);

    let scrape = poll("every connection to close", || {
        let (status, body) = plain_get(metrics, "/metrics");
        assert_eq!(status, 200);
        (sample(&body, "mtls_open_connections") == Some(0.0)).then_some(body)
    });
    let count = |series: &str| {
        sample(&scrape, series).unwrap_or_else(|| panic!("no {series} in:\n{scrape}"))
    };
    assert_eq!(count("mtls_handshakes_total{outcome=\"success\"}"), 2.0);
    assert_eq!(count("mtls_handshakes_total{outcome=\"failure\"}"), 8.0);
    for reason in [
        "no_certificate",
        "unknown_ca",
        "expired",
        "revoked",
        "bad_usage",
        "policy_denied",
        "timeout",
        "protocol",
    ] {
        assert_eq!(
            count(&format!(
                "mtls_handshake_failures_total{{reason=\"{reason}\"}}"
            )),
            1.0,
            "{reason}:\n{scrape}"
        );
    }
    assert_eq!(
        count(
            "mtls_requests_total{client=\"Client A (spiffe://mtls.demo/client-a)\",status=\"200\"}"
        ),
        2.0
    );
    assert_eq!(
        count(
            "mtls_requests_total{client=\"Client B (spiffe://mtls.demo/client-b)\",status=\"403\"}"
        ),
        1.0
    );
    assert_eq!(count("mtls_reloads_total{result=\"success\"}"), 1.0);
    assert!(scrape.contains("# TYPE mtls_handshakes_total counter\n"));
    assert!(scrape.contains("# TYPE mtls_open_connections gauge\n"));

    let days = |prefix: &str| {
        let line = scrape
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in:\n{scrape}"));
        let secs: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("a number");
        secs / 86_400.0
    };
    let server_days = days("mtls_certificate_expiry_seconds{role=\"server\"");
    let ca_days = days("mtls_certificate_expiry_seconds{role=\"ca\"");
    let crl_days = days(&format!(
        "mtls_crl_expiry_seconds{{file=\"{}\"",
        crl.display()
    ));
    assert!((364.0..=365.0).contains(&server_days), "{server_days}");
    assert!((3649.0..=3650.0).contains(&ca_days), "{ca_days}");
    assert!((6.9..=7.0).contains(&crl_days), "{crl_days}");

    let (status, body) = plain_get(metrics, "/");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("GET /metrics"), "{body}");

    // An HTTP/1.1 scraper gets one answer per connection: the listener closes after it.
    let mut scraper = TcpStream::connect(metrics).expect("connect");
    scraper.set_read_timeout(Some(PATIENCE)).expect("timeout");
    scraper
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("write");
    let mut answer = String::new();
    scraper
        .read_to_string(&mut answer)
        .expect("the metrics listener closes the connection after one answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    drop(silent);
}
