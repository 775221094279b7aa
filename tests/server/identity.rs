//! Who the server says the client is: only what the handshake verified and the signatures
//! on the client's path prove, shown so that one client cannot pass for another, in the
//! log, the metrics, the greeting and the headers forwarded to an application.

use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mtls::pki::{CertAuthority, KeyType, Usage, Validity, demo_subject};
use testkit::{
    Conn, EchoUpstream, Pki, client_config, fetch, http1, leaf, metrics_addr, openssl_ok,
    plain_get, require_tool, run, text, utf8,
};

use crate::start;

/// Appends to `stem.crt` a self-signed CA certificate with exactly the demo CA's subject
/// (and a key of its own): it is named like the CA, but nothing of ours signed it.
fn append_a_fake_ca(pki: &Pki, stem: &str) -> Vec<u8> {
    let fake = CertAuthority::new_root(
        demo_subject("CA Company", "CA"),
        KeyType::EcdsaP256,
        Validity::days(1),
    )
    .expect("mint a look-alike CA");
    let path = pki.certs.cert(stem);
    let mut chain = std::fs::read_to_string(&path).expect("read");
    chain.push_str(&fake.cert_pem);
    std::fs::write(&path, chain).expect("write");
    fake.der.to_vec()
}

#[test]
fn a_certificate_named_like_the_ca_appended_by_the_client_is_neither_logged_nor_forwarded() {
    let pki = Pki::demo();
    let fake = append_a_fake_ca(&pki, "client-a");
    let upstream = EchoUpstream::start();
    let server = start(&pki, &["--upstream", &upstream.url()]);
    let ex = fetch(
        &server.url("localhost"),
        pki.certs.ca_cert(),
        pki.pair("client-a"),
    )
    .expect("Client A is verified: webpki ignores what it does not need");
    assert_eq!(ex.status.as_u16(), 200, "{}", ex.body);
    server
        .log
        .wait_for(&["not on its path to the CA", "left_out=1"]);
    let got = upstream.requests();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].headers("client-cert-chain").is_empty(),
        "the look-alike CA was forwarded: {:?}",
        got[0].headers("client-cert-chain")
    );
    let fake_b64 = BASE64.encode(&fake);
    assert!(!got[0].head.contains(&fake_b64), "{}", got[0].head);
    assert_eq!(
        server.log.count(&["Certificate chain", "index=1"]),
        0,
        "the look-alike CA was logged as part of the chain:\n{}",
        server.log.all()
    );
}

#[test]
fn the_ca_certificate_sent_after_the_leaf_is_named_as_the_ca_not_as_off_the_path() {
    let pki = Pki::demo();
    // What Python's ssl and `openssl s_client -cert_chain ca.crt` send: leaf, then the CA.
    let path = pki.certs.cert("client-a");
    let mut chain = std::fs::read_to_string(&path).expect("read");
    chain.push_str(&std::fs::read_to_string(pki.certs.ca_cert()).expect("read the CA"));
    std::fs::write(&path, chain).expect("write");
    let server = start(&pki, &[]);
    let ex = fetch(
        &server.url("localhost"),
        pki.certs.ca_cert(),
        pki.pair("client-a"),
    )
    .expect("Client A is verified");
    assert_eq!(ex.status.as_u16(), 200, "{}", ex.body);
    server
        .log
        .wait_for(&["also sent the CA certificate itself", "sent=1"]);
    server.log.wait_for(&["Header", "method=GET"]);
    assert_eq!(
        server.log.count(&["not on its path to the CA"]),
        0,
        "{}",
        server.log.all()
    );
}

#[test]
fn an_intermediate_that_really_signed_the_leaf_is_still_forwarded() {
    let pki = Pki::demo();
    let intermediate = CertAuthority::new_intermediate(
        demo_subject("Intermediate Company", "Intermediate CA"),
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
    // After the real path, a look-alike of the root: the real intermediate is kept, the
    // look-alike is not.
    append_a_fake_ca(&pki, "client-c");
    let upstream = EchoUpstream::start();
    let server = start(&pki, &["--upstream", &upstream.url()]);
    let ex = fetch(
        &server.url("localhost"),
        pki.certs.ca_cert(),
        pki.pair("client-c"),
    )
    .expect("Client C");
    assert_eq!(ex.status.as_u16(), 200, "{}", ex.body);
    let got = upstream.requests();
    assert_eq!(
        got[0].headers("client-cert-chain"),
        [format!(":{}:", BASE64.encode(intermediate.der.as_ref()))]
    );
    server
        .log
        .wait_for(&["Certificate chain", "index=1", "Intermediate CA"]);
    server.log.wait_for(&["left_out=1"]);
}

/// Signs a client certificate whose subject has two common names (rcgen writes one CN per
/// name, so openssl makes it), with the demo CA; writes `stem.crt` and `stem.key`.
fn client_with_two_cns(pki: &Pki, stem: &str, first: &str, second: &str) {
    let key = pki.certs.key(stem);
    let csr = pki.path(&format!("{stem}.csr"));
    let ext = pki.path(&format!("{stem}.ext"));
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=clientAuth\nsubjectAltName=URI:spiffe://mtls.demo/two-cns\n",
    )
    .expect("write the extensions");
    openssl_ok(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        utf8(&key),
        "-subj",
        &format!("/O=Two CN Company/CN={first}/CN={second}"),
        "-out",
        utf8(&csr),
    ]);
    openssl_ok(&[
        "x509",
        "-req",
        "-in",
        utf8(&csr),
        "-CA",
        utf8(&pki.certs.ca_cert()),
        "-CAkey",
        utf8(&pki.certs.key("ca")),
        "-set_serial",
        "4242",
        "-days",
        "1",
        "-extfile",
        utf8(&ext),
        "-out",
        utf8(&pki.certs.cert(stem)),
    ]);
}

#[test]
fn a_subject_with_two_common_names_is_admitted_by_no_cn_rule() {
    require_tool("openssl");
    let pki = Pki::demo();
    client_with_two_cns(&pki, "two-cns", "Admin", "Client A");
    let subjects = openssl_ok(&[
        "x509",
        "-noout",
        "-subject",
        "-in",
        utf8(&pki.certs.cert("two-cns")),
    ]);
    assert!(
        subjects.contains("CN = Admin, CN = Client A")
            || subjects.contains("CN=Admin, CN=Client A"),
        "{subjects}"
    );
    for cn in ["Admin", "Client A"] {
        let server = start(&pki, &["--allow-cn", cn]);
        let ex = fetch(
            &server.url("localhost"),
            pki.certs.ca_cert(),
            pki.pair("two-cns"),
        )
        .expect("verified, then refused by the policy");
        assert_eq!(ex.status.as_u16(), 403, "{cn}: {}", ex.body);
        assert!(ex.body.contains("2 common names"), "{}", ex.body);
        let line = server
            .log
            .wait_for(&["identity denied", "reason=\"policy_denied\""]);
        assert!(line.contains("2 common names"), "{line}");
    }
}

#[test]
fn a_common_name_that_imitates_client_a_is_shown_as_what_it_is() {
    let pki = Pki::demo();
    let ca = pki.ca();
    pki.issue(
        &ca,
        "impostor",
        &leaf(
            "Client A (spiffe://mtls.demo/client-a)",
            Usage::Client,
            &["DNS:impostor.test"],
            Validity::days(1),
        ),
    );
    let server = start(&pki, &["--metrics", "127.0.0.1:0"]);
    let url = server.url("localhost");
    let real = fetch(&url, pki.certs.ca_cert(), pki.pair("client-a")).expect("Client A");
    let fake = fetch(&url, pki.certs.ca_cert(), pki.pair("impostor")).expect("the impostor");
    assert_eq!(real.body, "hello, Client A (spiffe://mtls.demo/client-a)\n");
    assert_eq!(
        fake.body,
        "hello, \"Client A (spiffe://mtls.demo/client-a)\"\n"
    );
    server.log.wait_for(&[
        "State",
        r#"client="\"Client A (spiffe://mtls.demo/client-a)\"""#,
    ]);
    let (status, scrape) = plain_get(metrics_addr(&server), "/metrics");
    assert_eq!(status, 200);
    assert!(
        scrape.contains(r#"client="Client A (spiffe://mtls.demo/client-a)",status="200"} 1"#),
        "{scrape}"
    );
    assert!(
        scrape.contains(r#"client="\"Client A (spiffe://mtls.demo/client-a)\"",status="200"} 1"#),
        "{scrape}"
    );
}

#[test]
fn control_characters_in_a_name_reach_neither_the_log_nor_a_metric_label_raw() {
    let pki = Pki::demo();
    pki.issue(
        &pki.ca(),
        "nul",
        &leaf(
            "Client\u{0}\u{9b}31mNul",
            Usage::Client,
            &["URI:spiffe://mtls.demo/nul"],
            Validity::days(1),
        ),
    );
    let server = start(&pki, &["--metrics", "127.0.0.1:0"]);
    let ex = fetch(
        &server.url("localhost"),
        pki.certs.ca_cert(),
        pki.pair("nul"),
    )
    .expect("verified");
    assert_eq!(ex.status.as_u16(), 200);
    server.log.wait_for(&["Header", "method=GET"]);
    let log = server.log.all();
    assert!(
        !log.contains('\u{0}') && !log.contains('\u{9b}'),
        "a raw control character reached the log: {log:?}"
    );
    let (_, scrape) = plain_get(metrics_addr(&server), "/metrics");
    assert!(
        !scrape.contains('\u{0}') && !scrape.contains('\u{9b}'),
        "a raw control character reached a label: {scrape:?}"
    );
    assert!(scrape.contains(r"Client\\0\\u{9b}31mNul"), "{scrape}");
}

#[test]
fn a_subject_beyond_ascii_is_forwarded_escaped_as_rfc_4514_printers_do() {
    let pki = Pki::demo();
    pki.issue(
        &pki.ca(),
        "zoe",
        &leaf(
            "Zoë",
            Usage::Client,
            &["URI:spiffe://mtls.demo/zoe"],
            Validity::days(1),
        ),
    );
    let upstream = EchoUpstream::start();
    let server = start(&pki, &["--upstream", &upstream.url()]);
    let ex = fetch(
        &server.url("localhost"),
        pki.certs.ca_cert(),
        pki.pair("zoe"),
    )
    .expect("Zoë");
    assert_eq!(ex.status.as_u16(), 200, "{}", ex.body);
    let got = upstream.requests();
    let xfcc = got[0].headers("x-forwarded-client-cert");
    assert_eq!(xfcc.len(), 1, "{got:?}");
    assert!(xfcc[0].contains(r"CN=Zo\C3\AB,"), "{}", xfcc[0]);
    assert!(xfcc[0].is_ascii(), "{}", xfcc[0]);
}

/// `two-uris`: named "Client A", with two URI SANs, so admitted by `--allow-cn "Client A"`
/// yet not forwardable as one identity.
pub(crate) fn issue_two_uris(pki: &Pki) {
    pki.issue(
        &pki.ca(),
        "two-uris",
        &leaf(
            "Client A",
            Usage::Client,
            &[
                "URI:spiffe://mtls.demo/client-a",
                "URI:spiffe://mtls.demo/admin",
            ],
            Validity::days(1),
        ),
    );
}

#[test]
fn a_client_whose_identity_cannot_be_forwarded_gets_a_readable_403() {
    let pki = Pki::demo();
    issue_two_uris(&pki);
    let upstream = EchoUpstream::start();
    let server = start(
        &pki,
        &["--upstream", &upstream.url(), "--allow-cn", "Client A"],
    );
    let ex = fetch(
        &server.url("localhost"),
        pki.certs.ca_cert(),
        pki.pair("two-uris"),
    )
    .expect("an answer, not a bare close");
    assert_eq!(ex.status.as_u16(), 403, "{}", ex.body);
    assert!(ex.body.contains("2 URI SANs"), "{}", ex.body);
    assert!(upstream.requests().is_empty(), "it was forwarded");
    server
        .log
        .wait_for(&["reason=\"identity_unforwardable\"", "2 URI SANs"]);
    // Everyone else is still forwarded.
    let a = fetch(
        &server.url("localhost"),
        pki.certs.ca_cert(),
        pki.pair("client-a"),
    )
    .expect("Client A");
    assert_eq!(a.status.as_u16(), 200, "{}", a.body);
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn credentials_in_any_header_are_redacted_in_the_log() {
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    let out = run(Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(pki.certs.ca_cert())
        .arg("--cert")
        .arg(pki.certs.cert("client-a"))
        .arg("--key")
        .arg(pki.certs.key("client-a"))
        .args([
            "-H",
            "X-Api-Key: sekrit-1",
            "-H",
            "X-Auth-Token: sekrit-2",
            "-H",
            "X-Client-Secret: sekrit-3",
            "-H",
            "X-Password: sekrit-4",
            "-H",
            "X-Session-Id: sekrit-5",
            "-H",
            "Apikey: sekrit-6",
            "-H",
            "Authorization: Bearer sekrit-7",
            "-H",
            "Cookie: id=sekrit-8",
            "-H",
            "X-Trace: visible",
            &server.url("localhost"),
        ]));
    assert!(out.status.success(), "{}", text(&out));
    let line = server.log.wait_for(&["Header", "method=GET"]);
    assert!(!line.contains("sekrit"), "a credential was logged: {line}");
    for name in [
        "x-api-key",
        "x-auth-token",
        "x-client-secret",
        "x-password",
        "x-session-id",
        "apikey",
        "authorization",
        "cookie",
    ] {
        assert!(
            line.contains(&format!("{name}=<redacted>")),
            "{name}: {line}"
        );
    }
    assert!(line.contains("x-trace=\"visible\""), "{line}");
}

#[test]
fn a_c1_control_character_in_the_path_is_escaped_in_the_log() {
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    let config = client_config(&pki, Some("client-a"), http1());
    let mut conn = Conn::open(&config, server.addr).expect("connect");
    // The path's bytes as sent: C2 9B is U+009B, a C1 control (CSI, as "ESC [").
    let reply = conn.request("/x\u{9b}31my", &[]).expect("an answer");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let line = server.log.wait_for(&["Header", "method=GET"]);
    assert!(
        !line.contains('\u{9b}'),
        "raw C1 control in the log: {line:?}"
    );
    assert!(line.contains(r"path=/x\u{9b}31my"), "{line}");
}
