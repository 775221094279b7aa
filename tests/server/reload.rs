//! Hot reload: the server picks up a rotated certificate without dropping connections, and
//! keeps serving with what it has when the new files are broken.

use crate::start;
use mtls::pki::{Usage, Validity};
use mtls::write::{self, Access};
use testkit::{Conn, client_config, fingerprint, first_cert, http1};
use testkit::{Pki, leaf};

/// A fresh server certificate and key from the demo CA, not yet written anywhere.
fn new_server_certificate(pki: &Pki) -> mtls::pki::Issued {
    pki.ca()
        .issue(&leaf(
            "localhost",
            Usage::Server,
            &["DNS:localhost", "IP:127.0.0.1"],
            Validity::days(1),
        ))
        .expect("issue a new server certificate")
}

#[test]
fn rotating_the_server_certificate_keeps_open_connections_and_new_ones_see_the_new_one() {
    let pki = Pki::demo();
    let server = start(&pki, &["--reload-interval", "100ms"]);
    let config = client_config(&pki, Some("client-a"), http1());

    let mut kept = Conn::open(&config, server.addr).expect("connect");
    let old = kept.server_cert();
    assert_eq!(kept.request("/", &[]).expect("request").status, 200);

    // Rotate as a deployment would: a new key and certificate, two files, two writes. A
    // poll between the writes sees a key that does not match: it keeps the old material
    // and tries again when the key changes.
    let rotated = new_server_certificate(&pki);
    let new = rotated.der.clone();
    assert_ne!(old, new);
    write::atomic(
        &pki.certs.cert("server"),
        rotated.cert_pem.as_bytes(),
        Access::Public,
    )
    .expect("write the certificate");
    server
        .log
        .wait_for(&["reload failed", "server.key does not match the certificate"]);
    assert_eq!(kept.request("/", &[]).expect("request").status, 200);
    write::atomic(
        &pki.certs.key("server"),
        rotated.key_pem.as_bytes(),
        Access::Secret,
    )
    .expect("write the key");
    server.log.wait_for(&[
        "reloaded TLS material",
        "trigger=\"file change\"",
        "server.key",
        &format!("server.cert.sha256={}", fingerprint(&new)),
    ]);

    let reply = kept
        .request("/", &[])
        .expect("the open connection keeps working");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        "hello, Client A (spiffe://mtls.demo/client-a)\n"
    );

    // The same client config would resume its session; the reload started a fresh ticket
    // key, so it makes a full handshake and sees the new certificate.
    let mut fresh = Conn::open(&config, server.addr).expect("connect after the rotation");
    assert!(!fresh.resumed(), "a session from before the reload resumed");
    assert_eq!(fresh.server_cert(), new);
    assert_eq!(fresh.request("/", &[]).expect("request").status, 200);
    // Log lines arrive through a writer thread: wait for the fresh connection's, then count.
    server.log.wait_for_count(&["State"], 2);
    server.log.wait_for_count(&["Header"], 3);
    assert_eq!(
        server.log.count(&["State"]),
        2,
        "the kept connection was never re-established:\n{}",
        server.log.all()
    );
}

#[test]
fn broken_material_is_refused_and_the_server_keeps_serving_with_the_old_one() {
    let pki = Pki::demo();
    let server = start(&pki, &["--reload-interval", "100ms"]);
    let before = first_cert(&pki.certs.cert("server"));
    let key_path = pki.certs.key("server");
    let good_key = std::fs::read(&key_path).expect("read the key");
    let still_serving = |what: &str| {
        // A fresh config each time: a full handshake with whatever is current.
        let config = client_config(&pki, Some("client-a"), http1());
        let mut conn = Conn::open(&config, server.addr).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(conn.server_cert(), before, "{what}");
        assert_eq!(
            conn.request("/", &[]).expect("request").status,
            200,
            "{what}"
        );
    };

    // Bad PEM.
    let mark = server.log.mark();
    write::atomic(
        &key_path,
        b"-----BEGIN PRIVATE KEY-----\nnot base64 at all!\n-----END PRIVATE KEY-----\n",
        Access::Secret,
    )
    .expect("write");
    let line = server
        .log
        .wait_for_after(mark, &["reload failed", "server.key is damaged"]);
    assert!(
        line.contains("still serving with the previous TLS material"),
        "{line}"
    );
    still_serving("after a damaged key");

    // A key that does not match the certificate.
    let other = std::fs::read(pki.certs.key("client-a")).expect("read");
    let mark = server.log.mark();
    write::atomic(&key_path, &other, Access::Secret).expect("write");
    server.log.wait_for_after(
        mark,
        &["reload failed", "server.key does not match the certificate"],
    );
    still_serving("after a mismatched key");

    // An unreadable (missing) certificate.
    let mark = server.log.mark();
    write::atomic(&key_path, &good_key, Access::Secret).expect("write");
    std::fs::remove_file(pki.certs.cert("server")).expect("remove");
    server
        .log
        .wait_for_after(mark, &["reload failed", "server.crt: no such file"]);
    still_serving("after a missing certificate");

    // Putting the right files back is picked up like any change.
    let pem = mtls::pem::to_pem("CERTIFICATE", &before);
    let mark = server.log.mark();
    write::atomic(&pki.certs.cert("server"), pem.as_bytes(), Access::Public).expect("write");
    server.log.wait_for_after(
        mark,
        &[
            "reloaded TLS material",
            &format!("server.cert.sha256={}", fingerprint(&before)),
        ],
    );
    still_serving("after the repair");
    let line = server.log.wait_for(&["reload failed"]);
    assert!(line.contains("WARN"), "{line}");
}

#[test]
fn the_server_warns_when_other_users_could_change_what_it_trusts() {
    use std::os::unix::fs::PermissionsExt;
    let pki = Pki::demo();
    let chmod = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    chmod(pki.dir(), 0o777);
    chmod(&pki.certs.ca_cert(), 0o666);
    let server = start(&pki, &[]);
    let line = server
        .log
        .wait_for(&["the CA file is writable by other users", "ca.crt"]);
    assert!(line.contains("fix=chmod go-w"), "{line}");
    assert!(line.contains("mode=666"), "{line}");
    let line = server
        .log
        .wait_for(&["folder holding the CA file is writable by other users"]);
    assert!(line.contains("mode=777"), "{line}");
    drop(server);

    // A folder and files only their owner may change: no warning.
    chmod(pki.dir(), 0o700);
    chmod(&pki.certs.ca_cert(), 0o644);
    let server = start(&pki, &[]);
    let config = client_config(&pki, Some("client-a"), http1());
    let mut conn = Conn::open(&config, server.addr).expect("connect");
    assert_eq!(conn.request("/", &[]).expect("request").status, 200);
    assert_eq!(server.log.count(&["writable by other users"]), 0);
}

/// Publishes `files` into a Kubernetes-style secret volume at `secret`, the way the kubelet
/// does: into a fresh timestamped folder, then `..data` is swapped to point at it in one
/// rename, and each file name is a link through `..data` (made once).
fn publish_secret(secret: &std::path::Path, stamp: &str, files: &[(&str, &[u8])]) {
    use std::os::unix::fs::symlink;
    let version = format!("..{stamp}");
    std::fs::create_dir_all(secret.join(&version)).expect("mkdir");
    for (name, bytes) in files {
        std::fs::write(secret.join(&version).join(name), bytes).expect("write");
        let link = secret.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(format!("..data/{name}"), &link).expect("link the file");
        }
    }
    let tmp = secret.join("..data_tmp");
    symlink(&version, &tmp).expect("link ..data_tmp");
    std::fs::rename(&tmp, secret.join("..data")).expect("swap ..data");
}

#[test]
fn a_kubernetes_secret_rotated_by_swapping_its_data_link_is_picked_up() {
    let pki = Pki::demo();
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = dir.path().join("tls");
    let read = |p: std::path::PathBuf| std::fs::read(p).expect("read");
    let ca = read(pki.certs.ca_cert());
    publish_secret(
        &secret,
        "2026_01_01_00_00_00.000000001",
        &[
            ("tls.crt", &read(pki.certs.cert("server"))),
            ("tls.key", &read(pki.certs.key("server"))),
            ("ca.crt", &ca),
        ],
    );
    let path = |name: &str| secret.join(name).to_str().expect("utf-8").to_string();
    let (cert, key, ca_file) = (path("tls.crt"), path("tls.key"), path("ca.crt"));
    let server = start(
        &pki,
        &[
            "--cert",
            &cert,
            "--key",
            &key,
            "--ca",
            &ca_file,
            "--reload-interval",
            "100ms",
        ],
    );
    let config = client_config(&pki, Some("client-a"), http1());
    let mut kept = Conn::open(&config, server.addr).expect("connect");
    let old = kept.server_cert();

    // cert-manager renews; the kubelet writes the new secret beside the old one and swaps
    // the `..data` link: the certificate and its key change in one step.
    let renewed = new_server_certificate(&pki);
    publish_secret(
        &secret,
        "2026_01_02_00_00_00.000000002",
        &[
            ("tls.crt", renewed.cert_pem.as_bytes()),
            ("tls.key", renewed.key_pem.as_bytes()),
            ("ca.crt", &ca),
        ],
    );
    std::fs::remove_dir_all(secret.join("..2026_01_01_00_00_00.000000001")).expect("rm old");
    server.log.wait_for(&[
        "reloaded TLS material",
        &format!("server.cert.sha256={}", fingerprint(&renewed.der)),
    ]);
    assert_eq!(
        server.log.count(&["reload failed"]),
        0,
        "a swap is one step: {}",
        server.log.all()
    );
    let mut fresh = Conn::open(&client_config(&pki, Some("client-a"), http1()), server.addr)
        .expect("connect after the rotation");
    assert_eq!(fresh.server_cert(), renewed.der);
    assert_ne!(fresh.server_cert(), old);
    assert_eq!(fresh.request("/", &[]).expect("request").status, 200);
    assert_eq!(kept.request("/", &[]).expect("still open").status, 200);
}
