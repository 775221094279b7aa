//! The server names the true cause of what it refuses: a peer's oversized or malformed
//! messages and certificates, a request with too many header fields, a revocation list
//! that disappeared before a reload.

use rcgen::{
    CertificateParams, CustomExtension, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use testkit::{Conn, Pki, client_config, curl_as, http1, require_tool};

use crate::start;

/// Writes `stem.crt` (the leaf `params` describe, signed by the demo CA, followed by
/// `extra` PEM) and `stem.key`.
fn write_client(pki: &Pki, stem: &str, mut params: CertificateParams, extra: &str) {
    let key = KeyPair::generate().expect("key");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let ca = pki.ca();
    let cert = params.signed_by(&key, ca.issuer()).expect("sign");
    std::fs::write(pki.certs.cert(stem), format!("{}{extra}", cert.pem())).expect("write");
    std::fs::write(pki.certs.key(stem), key.serialize_pem()).expect("write");
}

fn params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = mtls::pki::demo_subject("Cause Company", cn);
    p
}

#[test]
fn a_certificate_message_over_64_kib_is_named_too_large_not_plain_http() {
    require_tool("curl");
    let pki = Pki::demo();
    // Seven certificates carrying 12 KB of opaque extension each: about 84 KB of chain.
    let mut junk = String::new();
    for i in 0..7u64 {
        let mut p = params(&format!("Filler {i}"));
        p.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 55555, i],
            vec![0x5a; 12_000],
        )];
        let key = KeyPair::generate().expect("key");
        junk.push_str(&p.self_signed(&key).expect("filler").pem());
    }
    let mut leaf = params("Client Big");
    leaf.subject_alt_names = vec![rcgen::SanType::URI(
        "spiffe://mtls.demo/big".try_into().expect("uri"),
    )];
    write_client(&pki, "client-big", leaf, &junk);
    let server = start(&pki, &[]);
    let out = curl_as(&pki.certs, "client-big", &[&server.url("localhost")]);
    assert!(!out.status.success(), "served a 84 KB chain");
    let line = server
        .log
        .wait_for(&["TLS handshake failed", "reason=\"too_large\""]);
    assert!(line.contains("64 KiB"), "{line}");
    assert!(!line.contains("did not speak TLS"), "{line}");
}

#[test]
fn a_certificate_with_trailing_bytes_in_its_san_is_named_malformed() {
    require_tool("curl");
    let pki = Pki::demo();
    // subjectAltName: SEQUENCE { [2] "x.test" }, then two stray bytes.
    let mut san = vec![0x30, 0x08, 0x82, 0x06];
    san.extend_from_slice(b"x.test");
    san.extend_from_slice(&[0x00, 0x00]);
    let mut leaf = params("Client Trailing");
    leaf.custom_extensions = vec![CustomExtension::from_oid_content(&[2, 5, 29, 17], san)];
    write_client(&pki, "client-trailing", leaf, "");
    let server = start(&pki, &[]);
    let out = curl_as(&pki.certs, "client-trailing", &[&server.url("localhost")]);
    assert!(!out.status.success(), "served a malformed certificate");
    let line = server
        .log
        .wait_for(&["TLS handshake failed", "reason=\"bad_certificate\""]);
    assert!(line.contains("not well-formed DER"), "{line}");
}

#[test]
fn more_than_a_hundred_header_fields_get_431_logged_as_too_many() {
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    let config = client_config(&pki, Some("client-a"), http1());
    let names: Vec<String> = (0..100).map(|i| format!("X-F{i}")).collect();
    let fields = |n: usize| -> Vec<(&str, &str)> {
        names
            .iter()
            .take(n)
            .map(|name| (name.as_str(), "1"))
            .collect()
    };
    // Host and 99 more: exactly at the limit.
    let mut conn = Conn::open(&config, server.addr).expect("connect");
    assert_eq!(conn.request("/", &fields(99)).expect("request").status, 200);

    let over = fields(100);
    let mut conn = Conn::open(&config, server.addr).expect("connect");
    let reply = conn.request("/", &over).expect("a response");
    assert_eq!(reply.status, 431, "{}", reply.body);
    let line = server.log.wait_for(&["reason=\"too_many_headers\""]);
    assert!(line.contains("max_header_fields=100"), "{line}");
    assert!(line.contains("too many header fields"), "{line}");
    assert_eq!(server.log.count(&["reason=\"header_too_large\""]), 0);
}

#[test]
fn a_crl_deleted_before_a_reload_is_named_as_a_missing_list_not_a_missing_demo_set() {
    let pki = Pki::demo();
    let crl = pki.path("revoked.crl.pem");
    pki.write_crl(&crl, &[]);
    let server = start(
        &pki,
        &[
            "--crl",
            crl.to_str().expect("utf-8 path"),
            "--reload-interval",
            "100ms",
        ],
    );
    std::fs::remove_file(&crl).expect("delete the CRL");
    let line = server.log.wait_for(&["reload failed", "revoked.crl.pem"]);
    assert!(line.contains("no such file"), "{line}");
    assert!(line.contains("crl"), "{line}");
    assert!(line.contains("without that --crl"), "{line}");
    assert!(!line.contains("create the demo certificates"), "{line}");
}

#[test]
fn a_malformed_chunked_request_body_gets_400_not_a_bad_gateway() {
    let pki = Pki::demo();
    let upstream = testkit::EchoUpstream::start();
    let server = start(&pki, &["--upstream", &upstream.url()]);
    let config = client_config(&pki, Some("client-a"), http1());
    let mut conn = Conn::open(&config, server.addr).expect("connect");
    conn.send(
        b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
          ZZ\r\nnot a chunk\r\n0\r\n\r\n",
    )
    .expect("send");
    let reply = conn.read_reply().expect("an answer");
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply.body.contains("the request body could not be read"),
        "{}",
        reply.body
    );
    let line = server.log.wait_for(&["reason=\"bad_request_body\""]);
    assert!(!line.contains("upstream request failed"), "{line}");
    assert_eq!(server.log.count(&["upstream request failed"]), 0);
}
