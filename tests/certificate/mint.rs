//! The certificate binary end to end: what it writes, checked with openssl rather than by
//! reading it back with our own code.

use std::path::Path;
use std::process::{Command, Output};

use mtls::perms;
use testkit::{openssl_ok as openssl, require_tool, run, text};

use crate::CERTIFICATE;

const FILES: [&str; 8] = [
    "ca.crt",
    "ca.key",
    "server.crt",
    "server.key",
    "client-a.crt",
    "client-a.key",
    "client-b.crt",
    "client-b.key",
];

fn mint(out: &Path, extra: &[&str]) -> Output {
    run(Command::new(CERTIFICATE)
        .args(["--out", out.to_str().expect("utf-8 path")])
        .args(extra))
}

fn x509_text(path: &Path) -> String {
    openssl(&[
        "x509",
        "-in",
        path.to_str().expect("path"),
        "-noout",
        "-text",
    ])
}

#[test]
fn mints_the_demo_set_with_private_keys_0600() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out_dir = tmp.path().join("certs");
    let out = mint(&out_dir, &[]);
    assert!(out.status.success(), "{}", text(&out));
    for name in FILES {
        let path = out_dir.join(name);
        let mode = perms::mode(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        if name.ends_with(".key") {
            assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
        } else {
            assert_eq!(
                mode & 0o133,
                0,
                "{name} has mode {mode:o}: certificates are not executable or writable by others"
            );
        }
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("FAIL"), "{stdout}");
    for check in [
        "ca.crt is a self-signed root CA",
        "server.key matches server.crt",
        "client-a.crt's issuer equals the subject of ca.crt",
        "client-b.crt verifies against ca.crt as a client certificate",
        "sha256 ",
    ] {
        assert!(stdout.contains(check), "missing {check:?}:\n{stdout}");
    }
    let folder = mtls::files::CertsDir::new(&out_dir);
    let (lock, log) = (folder.lock_file(), folder.issuance_log());
    let leftovers: Vec<_> = std::fs::read_dir(&out_dir)
        .expect("list")
        .filter_map(Result::ok)
        .filter(|e| e.path() != lock && e.path() != log)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !FILES.contains(&n.as_str()))
        .collect();
    assert!(leftovers.is_empty(), "unexpected files: {leftovers:?}");
}

#[test]
fn running_twice_without_force_keeps_the_ca_byte_for_byte() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out_dir = tmp.path().join("certs");
    assert!(mint(&out_dir, &[]).status.success());
    let before: Vec<Vec<u8>> = FILES
        .iter()
        .map(|f| std::fs::read(out_dir.join(f)).expect("read"))
        .collect();

    let again = mint(&out_dir, &[]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("ca.crt already exists"), "{stderr}");
    assert!(
        stderr.contains("orphan every certificate it issued"),
        "{stderr}"
    );
    assert!(stderr.contains("--force"), "{stderr}");
    let after: Vec<Vec<u8>> = FILES
        .iter()
        .map(|f| std::fs::read(out_dir.join(f)).expect("read"))
        .collect();
    assert_eq!(before, after, "a refused run changed files");

    let forced = mint(&out_dir, &["--force"]);
    assert!(forced.status.success(), "{}", text(&forced));
    assert_ne!(
        std::fs::read(out_dir.join("ca.crt")).expect("read"),
        before[0],
        "--force must mint a new CA"
    );
}

#[test]
fn openssl_verifies_every_leaf_for_its_purpose() {
    require_tool("openssl");
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("certs");
    assert!(mint(&dir, &[]).status.success());
    let ca = dir.join("ca.crt");
    let ca = ca.to_str().expect("path");
    let p = |n: &str| dir.join(n).to_str().expect("path").to_string();
    let server = openssl(&[
        "verify",
        "-CAfile",
        ca,
        "-purpose",
        "sslserver",
        "-verify_hostname",
        "localhost",
        &p("server.crt"),
    ]);
    assert!(server.trim_end().ends_with("server.crt: OK"), "{server}");
    let server_ip = openssl(&[
        "verify",
        "-CAfile",
        ca,
        "-purpose",
        "sslserver",
        "-verify_ip",
        "127.0.0.1",
        &p("server.crt"),
    ]);
    assert!(server_ip.contains("OK"), "{server_ip}");
    for client in ["client-a.crt", "client-b.crt"] {
        let ok = openssl(&["verify", "-CAfile", ca, "-purpose", "sslclient", &p(client)]);
        assert!(ok.contains(&format!("{client}: OK")), "{ok}");
    }
    // The profile is enforced: a client certificate is not a server certificate.
    let out = run(Command::new("openssl").args([
        "verify",
        "-CAfile",
        ca,
        "-purpose",
        "sslserver",
        &p("client-a.crt"),
    ]));
    assert!(
        !out.status.success(),
        "a clientAuth-only certificate passed as a server: {}",
        text(&out)
    );
}

#[test]
fn certificates_carry_a_proper_x509_profile() {
    require_tool("openssl");
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("certs");
    assert!(
        mint(&dir, &["--san", "my-host.test", "--san", "IP:10.1.2.3"])
            .status
            .success()
    );

    let ca = x509_text(&dir.join("ca.crt"));
    assert!(
        ca.contains(
            "Subject: C = Earth, ST = Asia, L = Mountain, O = CA Company, OU = Engineering, CN = CA"
        ),
        "{ca}"
    );
    assert!(
        ca.contains("X509v3 Basic Constraints: critical\n                CA:TRUE"),
        "{ca}"
    );
    assert!(
        ca.contains("X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign"),
        "{ca}"
    );
    assert!(ca.contains("X509v3 Subject Key Identifier"), "{ca}");
    assert!(ca.contains("ecdsa-with-SHA256"), "{ca}");

    let server = x509_text(&dir.join("server.crt"));
    assert!(server.contains("CN = localhost"), "{server}");
    assert!(server.contains("CA:FALSE"), "{server}");
    assert!(server.contains("TLS Web Server Authentication"), "{server}");
    assert!(
        !server.contains("TLS Web Client Authentication"),
        "{server}"
    );
    assert!(
        server.contains("DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:my-host.test, IP Address:10.1.2.3"),
        "{server}"
    );
    assert!(
        server.contains("X509v3 Authority Key Identifier"),
        "{server}"
    );
    assert!(server.contains("Digital Signature"), "{server}");

    for (file, org, cn, uri) in [
        (
            "client-a.crt",
            "Client A Company",
            "Client A",
            "spiffe://mtls.demo/client-a",
        ),
        (
            "client-b.crt",
            "Client B Company",
            "Client B",
            "spiffe://mtls.demo/client-b",
        ),
    ] {
        let client = x509_text(&dir.join(file));
        let subject = format!(
            "Subject: C = Earth, ST = Asia, L = Mountain, O = {org}, OU = Engineering, CN = {cn}"
        );
        assert!(client.contains(&subject), "{client}");
        assert!(client.contains("TLS Web Client Authentication"), "{client}");
        assert!(
            !client.contains("TLS Web Server Authentication"),
            "{client}"
        );
        assert!(client.contains(&format!("URI:{uri}")), "{client}");
    }

    // Serials are random: no two certificates share one.
    let mut serials: Vec<String> = FILES
        .iter()
        .filter(|f| f.ends_with(".crt"))
        .map(|f| {
            openssl(&[
                "x509",
                "-in",
                dir.join(f).to_str().expect("path"),
                "-noout",
                "-serial",
            ])
        })
        .collect();
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), 4, "{serials:?}");
}

#[test]
fn every_key_type_mints_a_set_openssl_accepts() {
    require_tool("openssl");
    for (key_type, expect) in [
        ("ed25519", "ED25519"),
        ("ecdsa-p384", "secp384r1"),
        ("rsa-2048", "(2048 bit)"),
        ("rsa-3072", "(3072 bit)"),
        ("rsa-4096", "(4096 bit)"),
    ] {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("certs");
        let out = mint(&dir, &["--key-type", key_type]);
        assert!(out.status.success(), "{key_type}: {}", text(&out));
        let server = x509_text(&dir.join("server.crt"));
        assert!(server.contains(expect), "{key_type}: {server}");
        let ca = dir.join("ca.crt");
        let verified = openssl(&[
            "verify",
            "-CAfile",
            ca.to_str().expect("path"),
            dir.join("client-a.crt").to_str().expect("path"),
        ]);
        assert!(verified.contains("OK"), "{key_type}: {verified}");
    }
}

#[test]
fn days_sets_the_leaf_validity_and_bad_values_are_usage_errors() {
    require_tool("openssl");
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("certs");
    assert!(mint(&dir, &["--days", "2"]).status.success());
    let server = dir.join("server.crt");
    // Valid for two more days minus a moment: not for 3.
    let ok = run(Command::new("openssl").args([
        "x509",
        "-in",
        server.to_str().expect("path"),
        "-noout",
        "-checkend",
        &(86_400).to_string(),
    ]));
    assert!(ok.status.success(), "{}", text(&ok));
    let ends = run(Command::new("openssl").args([
        "x509",
        "-in",
        server.to_str().expect("path"),
        "-noout",
        "-checkend",
        &(3 * 86_400).to_string(),
    ]));
    assert!(!ends.status.success(), "{}", text(&ends));

    let bad = mint(&tmp.path().join("x"), &["--key-type", "dsa"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("choose one of ecdsa-p256"),
        "{}",
        text(&bad)
    );
    let bad = mint(&tmp.path().join("y"), &["--san", "not a name"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--san \"not a name\""),
        "{}",
        text(&bad)
    );
    assert!(
        !tmp.path().join("y").join("ca.key").exists(),
        "a refused run wrote files"
    );
}
