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

/// Each of `expected` appears in `text`, in this order.
fn assert_in_order(text: &str, expected: &[&str]) {
    let mut rest = text;
    for line in expected {
        let at = rest
            .find(line)
            .unwrap_or_else(|| panic!("{line:?} missing or out of order:\n{text}"));
        rest = &rest[at + line.len()..];
    }
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
    assert_in_order(&stdout, &expected);
}

#[test]
fn the_tour_walks_every_step_and_failure_and_leaves_nothing_behind() {
    let out = run(Command::new(example("tour")).arg("--no-pause"));
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains('\x1b'),
        "colour only on a terminal:\n{stdout}"
    );
    // Each step, in order, with what happened in it on this connection.
    let expected = [
        "1. One mutual-TLS connection, message by message",
        "→ ClientHello                           step 1",
        "← CertificateRequest                    step 4",
        "→ Finished                              step 5",
        "Step 1. The client connects",
        "key-exchange groups: X25519MLKEM768 (hybrid post-quantum: X25519 + ML-KEM-768)",
        "server name (SNI): localhost",
        "Step 2. The server answers and presents its certificate chain",
        "cipher suite: TLS13_",
        "certificate 1: C=Earth, ST=Asia, L=Mountain, O=Server Company, OU=Engineering, CN=localhost",
        "Step 3. The client verifies the server",
        "← CertificateVerify",
        "client verified the server's chain",
        "Step 4. The server asks for a certificate",
        "acceptable CA name: C=Earth, ST=Asia, L=Mountain, O=CA Company, OU=Engineering, CN=CA",
        "the server asked for a certificate from: C=Earth",
        "Step 5. The client presents its certificate",
        "CN=Client A (issued by",
        "presented Client A (spiffe://mtls.demo/client-a)",
        "Step 6. The server verifies the client",
        "server INFO client verified",
        "purpose=clientAuth",
        "Step 7. The server authorizes the identity",
        "server INFO identity admitted",
        "matched=spiffe://mtls.demo/client-a",
        "Step 8. Encrypted data",
        "← NewSessionTicket",
        "HTTP/2.0 200 OK over TLSv1.3: hello, Client A",
        // The failures, each with both sides' words.
        "No certificate: TLS 1.3 and TLS 1.2 side by side",
        "← Alert: fatal certificate_required",
        "TLS 1.3: error: the server refused our certificate (alert: certificate_required)",
        "the refusal arrived on the first read after our side of the handshake had finished",
        "TLS 1.2: error: the server refused our certificate (alert: certificate_required)",
        "the refusal arrived inside the handshake",
        "reason=no_certificate",
        "A certificate from another CA",
        "(alert: unknown_ca)",
        "reason=unknown_ca",
        "An expired certificate",
        "(alert: certificate_expired)",
        "reason=expired",
        "A certificate for the wrong purpose",
        "(alert: unsupported_certificate)",
        "reason=bad_usage",
        "A revoked certificate",
        "(alert: certificate_revoked)",
        "reason=revoked",
        "A server certificate without the name the client dialled",
        "→ Alert: fatal bad_certificate",
        "the server's certificate is not valid for \"127.0.0.1\"",
        "reason=peer_refused",
        "Verified but not allowed: Client B and the allow-list",
        "403 Forbidden: forbidden: Client B",
        "server WARN identity denied",
        // The audit.
        "3. Does the server refuse everyone it must? `client audit`",
        "blocked   valid, identity nobody configured         answered HTTP 403",
        "Result: all 14 cases that must be blocked were blocked; it authorizes as well as authenticates",
        "4. Where next",
    ];
    assert_in_order(&stdout, &expected);
    assert!(!stdout.contains("(logged nothing about it"), "{stdout}");
    // The temporary folder is gone.
    let folder = stdout
        .split("were just minted into ")
        .nth(1)
        .and_then(|rest| rest.split(", with the break-it lab").next())
        .expect("the tour names its folder");
    assert!(
        !std::path::Path::new(folder).exists(),
        "{folder} was left behind"
    );
}

#[test]
fn the_tour_refuses_an_argument_it_does_not_know() {
    let out = run(Command::new(example("tour")).arg("--fast"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("error: unknown argument \"--fast\"; the tour takes only --no-pause"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_readme_quotes_the_tour_as_it_prints() {
    testkit::readme::check("mtls", |scenario| match scenario {
        "tour" => {
            let out = run(Command::new(example("tour")).arg("--no-pause"));
            assert!(out.status.success(), "{}", text(&out));
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        other => panic!("the examples' tests do not run {other:?}"),
    });
}
