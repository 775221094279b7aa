//! The server's identity policy (authorization after authentication), revocation, and TLS
//! policy (versions, suites, resumption), end to end with real processes on 127.0.0.1.

use std::process::Command;

use crate::start;
use mtls::Failure;
use mtls::pki::{Usage, Validity};
use mtls::tls::{ClientPolicy, TlsVersion};
use rustls::AlertDescription;
use testkit::{Conn, client_config};
use testkit::{Pki, fetch, leaf, require_tool, run, text};

#[test]
fn allow_uri_admits_client_a_and_answers_client_b_with_403_naming_it() {
    let pki = Pki::demo();
    let server = start(&pki, &["--allow-uri", "spiffe://mtls.demo/client-a"]);
    let url = server.url("localhost");

    let a = fetch(&url, pki.certs.ca_cert(), pki.pair("client-a")).expect("A is served");
    assert_eq!(a.status.as_u16(), 200, "{}", a.body);
    assert_eq!(a.body, "hello, Client A (spiffe://mtls.demo/client-a)\n");

    let b = fetch(&url, pki.certs.ca_cert(), pki.pair("client-b")).expect("B gets an answer");
    assert_eq!(b.status.as_u16(), 403, "{}", b.body);
    // The body names the client and says no rule matched; the allowlist stays in the log.
    assert_eq!(
        b.body,
        "forbidden: Client B (spiffe://mtls.demo/client-b) is not admitted: no rule matched\n"
    );

    server.log.wait_for(&[
        "identity admitted",
        "client=\"Client A (spiffe://mtls.demo/client-a)\"",
        "rule=uri spiffe://mtls.demo/client-a",
        "matched=\"spiffe://mtls.demo/client-a\"",
    ]);
    let denied = server.log.wait_for(&[
        "identity denied",
        "client=\"Client B (spiffe://mtls.demo/client-b)\"",
        "tried=uri spiffe://mtls.demo/client-a",
    ]);
    assert!(denied.contains("reason=\"policy_denied\""), "{denied}");
    assert!(denied.contains("WARN"), "{denied}");
}

#[test]
fn uri_patterns_dns_and_cn_rules_each_admit_what_they_name() {
    let pki = Pki::demo();
    let ca = pki.ca();
    pki.issue(
        &ca,
        "client-svc",
        &leaf(
            "Service",
            Usage::Client,
            &["DNS:svc.mtls.demo"],
            Validity::days(1),
        ),
    );
    pki.issue(
        &ca,
        "client-team",
        &leaf(
            "Team Member",
            Usage::Client,
            &["URI:spiffe://mtls.demo/team/alice"],
            Validity::days(1),
        ),
    );
    let server = start(
        &pki,
        &[
            "--allow-uri",
            "spiffe://mtls.demo/team/*",
            "--allow-dns",
            "svc.mtls.demo",
            "--allow-cn",
            "Client B",
        ],
    );
    let url = server.url("localhost");
    let status = |stem: &str| {
        fetch(&url, pki.certs.ca_cert(), pki.pair(stem))
            .expect("an HTTP answer")
            .status
            .as_u16()
    };
    assert_eq!(status("client-team"), 200);
    assert_eq!(status("client-svc"), 200);
    assert_eq!(status("client-b"), 200);
    let a = fetch(&url, pki.certs.ca_cert(), pki.pair("client-a")).expect("an answer");
    assert_eq!(a.status.as_u16(), 403);
    assert_eq!(
        a.body,
        "forbidden: Client A (spiffe://mtls.demo/client-a) is not admitted: no rule matched\n"
    );
    server.log.wait_for(&[
        "identity denied",
        "Client A",
        "tried=uri spiffe://mtls.demo/team/*, dns svc.mtls.demo, cn Client B",
    ]);
    server
        .log
        .wait_for(&["identity admitted", "rule=uri spiffe://mtls.demo/team/*"]);
    server
        .log
        .wait_for(&["identity admitted", "rule=dns svc.mtls.demo"]);
    server
        .log
        .wait_for(&["identity admitted", "Client B", "rule=cn Client B"]);
}

#[test]
fn a_certificate_with_two_uri_sans_is_not_admitted_as_the_one_a_rule_names() {
    let pki = Pki::demo();
    pki.issue(
        &pki.ca(),
        "client-two",
        &leaf(
            "Client Two",
            Usage::Client,
            &["URI:spiffe://x/evil", "URI:spiffe://mtls.demo/client-a"],
            Validity::days(1),
        ),
    );
    let server = start(&pki, &["--allow-uri", "spiffe://mtls.demo/client-a"]);
    let two = fetch(
        &server.url("localhost"),
        pki.certs.ca_cert(),
        pki.pair("client-two"),
    )
    .expect("an HTTP answer");
    assert_eq!(two.status.as_u16(), 403, "{}", two.body);
    assert_eq!(
        two.body,
        "forbidden: Client Two (spiffe://x/evil, spiffe://mtls.demo/client-a) is not admitted: \
         no rule matched: its certificate has 2 URI SANs, and a URI rule admits only a \
         certificate with exactly one\n"
    );
    let line = server
        .log
        .wait_for(&["identity denied", "reason=\"policy_denied\""]);
    assert!(line.contains("2 URI SANs"), "{line}");
}

#[test]
fn a_malformed_allow_rule_is_a_usage_error_with_an_example() {
    let pki = Pki::demo();
    let out = run(Command::new(crate::SERVER).args([
        "--certs",
        pki.dir().to_str().expect("path"),
        "--addr",
        "127.0.0.1:0",
        "--allow-uri",
        "client-a",
    ]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("like spiffe://mtls.demo/client-a"),
        "{stderr}"
    );
}

#[test]
fn a_client_revoked_in_a_reloaded_crl_is_refused_and_the_log_says_revoked() {
    let pki = Pki::demo();
    let crl = pki.certs.crl();
    pki.write_crl(&crl, &[]);
    // Reload on SIGHUP only, so the test decides when the new CRL is read.
    let server = start(
        &pki,
        &[
            "--crl",
            crl.to_str().expect("path"),
            "--reload-interval",
            "0",
        ],
    );
    let url = server.url("localhost");
    let b = fetch(&url, pki.certs.ca_cert(), pki.pair("client-b")).expect("B before");
    assert_eq!(b.status.as_u16(), 200);

    pki.write_crl(&crl, &["client-b"]);
    server.signal("HUP");
    server
        .log
        .wait_for(&["reloaded TLS material", "trigger=\"SIGHUP\"", "revoked=1"]);

    match fetch(&url, pki.certs.ca_cert(), pki.pair("client-b")) {
        Err(e) => assert_eq!(
            e.failure(),
            Some(&Failure::PeerRefused {
                alert: AlertDescription::CertificateRevoked
            }),
            "{e}"
        ),
        Ok(ex) => panic!("a revoked client was served: {} {}", ex.status, ex.body),
    }
    let line = server
        .log
        .wait_for(&["TLS handshake failed", "reason=\"revoked\""]);
    assert!(line.contains("has been revoked"), "{line}");
    assert!(line.contains("crl.pem"), "the log names the CRL: {line}");

    let a = fetch(&url, pki.certs.ca_cert(), pki.pair("client-a")).expect("A after");
    assert_eq!(a.status.as_u16(), 200);
}

/// `openssl s_client` as Client A offering only `version_flag`, sending one request.
fn s_client(pki: &Pki, addr: std::net::SocketAddr, args: &[&str]) -> String {
    let args = args.join(" ");
    let out = run(Command::new("sh").args([
        "-c",
        &format!(
            "printf 'GET / HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' | \
             openssl s_client -connect {addr} -servername localhost -CAfile {ca} -cert {cert} \
             -key {key} -ign_eof {args} 2>&1",
            ca = pki.certs.ca_cert().display(),
            cert = pki.certs.cert("client-a").display(),
            key = pki.certs.key("client-a").display(),
        ),
    ]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tls_1_0_and_1_1_are_refused_even_when_a_client_offers_nothing_else() {
    require_tool("openssl");
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    for version in ["-tls1", "-tls1_1"] {
        // SECLEVEL=0 makes OpenSSL 3 really offer the old version instead of refusing locally.
        let output = s_client(
            &pki,
            server.addr,
            &[version, "-cipher", "DEFAULT@SECLEVEL=0"],
        );
        // rustls refuses such a hello with handshake_failure (it lacks the signature
        // algorithms every TLS 1.2+ hello carries) or protocol_version.
        assert!(
            output.contains("alert handshake failure") || output.contains("alert protocol version"),
            "{version}: the server must refuse the handshake with an alert:\n{output}"
        );
        assert!(
            !output.contains("hello,"),
            "{version} was served:\n{output}"
        );
    }
    let lines = server.log.wait_for_count(
        &[
            "TLS handshake failed",
            "reason=\"protocol\"",
            "the peer offered only an old protocol (TLS 1.0 or 1.1, or SSL), which is never accepted",
        ],
        2,
    );
    assert!(lines[0].contains("only TLS 1.2 and 1.3"), "{}", lines[0]);
}

#[test]
fn min_tls_1_3_refuses_a_tls_1_2_client_that_the_default_serves() {
    require_tool("openssl");
    let pki = Pki::demo();
    let default = start(&pki, &[]);
    let served = s_client(&pki, default.addr, &["-tls1_2"]);
    assert!(
        served.contains("hello, Client A"),
        "TLS 1.2 is served by default:\n{served}"
    );

    let strict = start(&pki, &["--min-tls", "1.3"]);
    let refused = s_client(&pki, strict.addr, &["-tls1_2"]);
    assert!(refused.contains("alert protocol version"), "{refused}");
    assert!(!refused.contains("hello,"), "{refused}");
    let line = strict
        .log
        .wait_for(&["TLS handshake failed", "reason=\"protocol\""]);
    assert!(
        line.contains("the TLS version one side requires is one the other does not offer"),
        "{line}"
    );
    let tls13 = s_client(&pki, strict.addr, &["-tls1_3"]);
    assert!(tls13.contains("hello, Client A"), "{tls13}");
}

#[test]
fn only_forward_secret_aead_suites_are_offered() {
    for suite in &mtls::tls::provider().cipher_suites {
        let name = suite.suite().as_str().unwrap_or("unnamed");
        let tls13 = name.starts_with("TLS13_");
        let ecdhe = name.starts_with("TLS_ECDHE_");
        let aead = name.contains("_GCM_") || name.contains("CHACHA20_POLY1305");
        assert!(
            tls13 || (ecdhe && aead),
            "{name} is not an AEAD suite with ECDHE"
        );
    }
    require_tool("openssl");
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    // Static RSA key exchange (no forward secrecy) and CBC (not AEAD): nothing in common.
    let output = s_client(
        &pki,
        server.addr,
        &[
            "-tls1_2",
            "-cipher",
            "AES128-GCM-SHA256:AES256-SHA256:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384",
        ],
    );
    assert!(output.contains("alert handshake failure"), "{output}");
    assert!(!output.contains("hello,"), "{output}");
    server.log.wait_for(&[
        "TLS handshake failed",
        "reason=\"protocol\"",
        "no cipher suite in common",
    ]);
}

#[test]
fn sessions_resume_by_default_and_not_with_no_resumption() {
    let pki = Pki::demo();
    for (flags, expect_resumed) in [(&[][..], true), (&["--no-resumption"][..], false)] {
        let mut args = vec!["--allow-uri", "spiffe://mtls.demo/client-a"];
        args.extend_from_slice(flags);
        let server = start(&pki, &args);
        for version in [TlsVersion::Tls13, TlsVersion::Tls12] {
            let policy = ClientPolicy {
                only_version: Some(version),
                http1_only: true,
            };
            let config = client_config(&pki, Some("client-a"), policy);
            let mut first = Conn::open(&config, server.addr).expect("first connection");
            assert!(!first.resumed());
            let reply = first.request("/", &[]).expect("first request");
            assert_eq!(reply.status, 200);
            drop(first);

            let mut second = Conn::open(&config, server.addr).expect("second connection");
            assert_eq!(
                second.resumed(),
                expect_resumed,
                "{version:?} with {flags:?}"
            );
            // A resumed session still carries the client's identity: the policy admits it.
            let reply = second.request("/", &[]).expect("second request");
            assert_eq!(reply.status, 200, "{}", reply.body);
            assert_eq!(
                reply.body,
                "hello, Client A (spiffe://mtls.demo/client-a)\n"
            );
        }
        // Log lines arrive through a writer thread: wait for all four connections' lines.
        server.log.wait_for_count(&["State"], 4);
        let resumed = server.log.count(&["State", "tls.resumed=true"]);
        assert_eq!(
            resumed,
            if expect_resumed { 2 } else { 0 },
            "{}",
            server.log.all()
        );
    }
}
