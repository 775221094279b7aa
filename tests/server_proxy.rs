//! The mTLS-terminating reverse proxy: a plain-HTTP upstream in the test echoes what it
//! got, so the test sees exactly which identity headers arrived, and that forged ones did
//! not. Expected values are computed independently (base64 of the DER, `openssl x509`).

mod common;
mod support;

use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{Pki, fetch, require_tool, run, text};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use support::{Conn, EchoUpstream, client_config, http1, start};

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

/// What `openssl x509` says about the first certificate in `path`.
fn openssl_x509(path: &std::path::Path, args: &[&str]) -> String {
    let out = run(Command::new("openssl")
        .args(["x509", "-noout", "-in"])
        .arg(path)
        .args(args));
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
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
                ("client-cert-chain", ":Zm9yZ2Vk:"),
                (
                    "X-Forwarded-Client-Cert",
                    "Hash=00;URI=spiffe://mtls.demo/admin",
                ),
                ("X-SSL-CERT", "forged-pem"),
                ("X-Forwarded-For", "203.0.113.66"),
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
        "spiffe://mtls.demo/admin",
        "forged-pem",
        "203.0.113.66",
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
        mtls::pki::to_pem("CERTIFICATE", leaf)
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

    let line = server
        .log
        .wait_for(&["removed identity headers the client sent"]);
    assert!(
        line.contains(
            "headers=client-cert, client-cert-chain, x-forwarded-client-cert, x-ssl-cert"
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

/// Mints an intermediate CA under the demo CA and a client ("Client C") under it, and writes
/// `client-c.crt` (leaf, then intermediate) and `client-c.key`. Returns the intermediate's DER.
fn client_behind_an_intermediate(pki: &Pki) -> Vec<u8> {
    let now = time::OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = mtls::pki::demo_subject("Intermediate Company", "Intermediate CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(30);
    let root = pki.ca();
    let intermediate =
        CertifiedIssuer::signed_by(params, KeyPair::generate().expect("key"), root.issuer())
            .expect("sign the intermediate");

    let mut leaf = CertificateParams::default();
    leaf.distinguished_name = mtls::pki::demo_subject("Client C Company", "Client C");
    leaf.subject_alt_names = vec![SanType::URI(
        "spiffe://mtls.demo/client-c".try_into().expect("uri"),
    )];
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = now - time::Duration::hours(1);
    leaf.not_after = now + time::Duration::days(1);
    let key = KeyPair::generate().expect("key");
    let cert = leaf.signed_by(&key, &intermediate).expect("sign the leaf");
    let chain = format!("{}{}", cert.pem(), intermediate.pem());
    std::fs::write(pki.certs.cert("client-c"), chain).expect("write");
    std::fs::write(pki.certs.key("client-c"), key.serialize_pem()).expect("write");
    intermediate.der().to_vec()
}

#[test]
fn an_http2_client_behind_an_intermediate_gets_its_chain_forwarded_and_its_body_streamed() {
    require_tool("curl");
    let pki = Pki::demo();
    let intermediate = client_behind_an_intermediate(&pki);
    let upstream = EchoUpstream::start();
    let server = start(&pki, &["--upstream", &upstream.url()]);
    let url = format!("{}submit", server.url("localhost"));
    let out = run(Command::new("curl").args([
        "-sS",
        "--http2",
        "--cacert",
        pki.certs.ca_cert().to_str().expect("path"),
        "--cert",
        pki.certs.cert("client-c").to_str().expect("path"),
        "--key",
        pki.certs.key("client-c").to_str().expect("path"),
        "-H",
        "Content-Type: text/plain",
        "--data-binary",
        "an order for seven",
        "-w",
        "\n%{http_code} %{http_version}",
        &url,
    ]));
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
    assert!(
        reply.body.starts_with(&format!(
            "bad gateway: the upstream {upstream} did not answer"
        )),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("Connection refused"), "{}", reply.body);
    let line = server.log.wait_for(&["upstream request failed"]);
    assert!(line.contains(&format!("upstream={upstream}")), "{line}");
    assert!(line.contains("Connection refused"), "{line}");
}

#[test]
fn an_upstream_that_is_not_plain_http_is_a_usage_error() {
    let pki = Pki::demo();
    let out = run(Command::new(support::SERVER).args([
        "--certs",
        pki.dir().to_str().expect("path"),
        "--addr",
        "127.0.0.1:0",
        "--upstream",
        "https://127.0.0.1:9000",
    ]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("speaks plain HTTP"), "{stderr}");
}
