//! Every example in examples/ runs and does what its opening comment says: each one against
//! a PKI minted for the test, servers on 127.0.0.1 port 0, waiting on printed lines.
//!
//! `cargo test` builds the examples of the package it tests (to check that they compile),
//! so they sit beside this test binary, in target/<profile>/examples/.

use std::path::PathBuf;
use std::process::{Command, Output};

use mtls::pki::{Usage, Validity};
use testkit::{Pki, ServerProcess, fetch, fingerprint, leaf, run, text, utf8};

/// The built example `name`.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    // target/<profile>/deps/examples-HASH -> target/<profile>/examples/NAME
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo test -p mtls`",
        path.display()
    );
    path
}

/// Starts the example server `name` on `pki`'s folder and a free port.
fn serve(name: &str, pki: &Pki) -> ServerProcess {
    let mut cmd = Command::new(example(name));
    cmd.args([utf8(pki.dir()), "127.0.0.1:0"]);
    ServerProcess::spawn(cmd)
}

/// Runs minimal_client against `server` as `stem` (a certificate in `pki`'s folder).
fn minimal_client(pki: &Pki, server: &ServerProcess, stem: &str) -> Output {
    run(Command::new(example("minimal_client")).args([
        &server.url("localhost"),
        utf8(pki.dir()),
        stem,
    ]))
}

#[test]
fn the_minimal_server_and_client_talk_mutual_tls_and_refuse_a_stranger() {
    let pki = Pki::demo();
    let server = serve("minimal_server", &pki);
    let out = minimal_client(&pki, &server, "client-a");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("connected with TLSv1_3"), "{stdout}");
    assert!(stdout.contains("200 OK\nhello, client"), "{stdout}");
    server.out.wait_for(&["client certificate verified"]);

    // A client certificate from another CA: TLS 1.3 lets the client finish its side of the
    // handshake, so the refusal arrives with the first read, and the example names it.
    let other = pki.other_ca("other-ca");
    let stranger = leaf("Stranger", Usage::Client, &[], Validity::days(1));
    pki.issue(&other, "stranger", &stranger);
    let out = minimal_client(&pki, &server, "stranger");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("received fatal alert: UnknownCA"),
        "{stderr}"
    );
    server.out.wait_for(&["handshake refused", "UnknownIssuer"]);
}

#[test]
fn the_minimal_server_refuses_a_client_without_a_certificate() {
    testkit::require_tool("curl");
    let pki = Pki::demo();
    let server = serve("minimal_server", &pki);
    let ca = pki.certs.ca_cert();
    let out = run(Command::new("curl")
        .args(["-sS", "--cacert", utf8(&ca)])
        .arg(server.url("localhost")));
    assert!(!out.status.success(), "{}", text(&out));
    server
        .out
        .wait_for(&["handshake refused", "peer sent no certificates"]);
}

#[test]
fn the_peer_identity_handler_welcomes_client_a_and_forbids_client_b() {
    let pki = Pki::demo();
    let server = serve("peer_identity", &pki);
    let a = minimal_client(&pki, &server, "client-a");
    assert!(
        String::from_utf8_lossy(&a.stdout).contains("200 OK\nhello, Client A"),
        "{}",
        text(&a)
    );
    let b = minimal_client(&pki, &server, "client-b");
    assert!(
        String::from_utf8_lossy(&b.stdout)
            .contains("403 Forbidden\nClient B is verified but not allowed here"),
        "{}",
        text(&b)
    );
    server
        .out
        .wait_for(&["verified", "spiffe://mtls.demo/client-b"]);
}

#[test]
fn hot_reload_serves_a_renewed_certificate_to_the_next_handshake() {
    let pki = Pki::demo();
    let server = serve("hot_reload", &pki);
    let served = || {
        let ex = fetch(
            &server.url("localhost"),
            pki.certs.ca_cert(),
            pki.pair("client-a"),
        )
        .expect("served");
        assert_eq!(ex.status.as_u16(), 200);
        ex.tls.peer_chain[0].fingerprint()
    };
    let before = served();
    let mark = server.out.mark();
    mtls::ca::issue::renew(&pki.certs, "server", None, None, &[]).expect("renew the server");
    server.out.wait_for_after(mark, &["reloaded", "server.crt"]);
    let after = served();
    assert_ne!(before, after, "the renewed certificate is served");
    let on_disk = testkit::first_cert(&pki.certs.cert("server"));
    assert_eq!(after, fingerprint(&on_disk));
}

#[test]
fn the_one_file_round_trip_shows_both_sides_of_both_handshakes() {
    let out = run(&mut Command::new(example("mtls_in_one_file")));
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected = [
        "Client A:",
        "client: the server answered: hello, you said \"ping\"",
        "server: verified the client's certificate: Client A (spiffe://mtls.demo/client-a)",
        "no certificate:",
        "client: refused: received fatal alert: CertificateRequired",
        "server: refused the handshake: peer sent no certificates",
    ];
    let mut rest = stdout.as_ref();
    for line in expected {
        let at = rest
            .find(line)
            .unwrap_or_else(|| panic!("{line:?} missing or out of order:\n{stdout}"));
        rest = &rest[at + line.len()..];
    }
}
