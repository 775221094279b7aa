//! Our client against real servers that are not ours: nginx and HAProxy requiring client
//! certificates. Each refusal must be read, and named, as the server meant it.

use std::process::Command;

use testkit::{InProcessServer, PeerServer, Pki, run, server_settings, text, utf8};

use crate::{CLIENT, client, error_line};

#[test]
fn nginx_serves_our_client_over_http2_and_http1() {
    let pki = Pki::demo();
    let nginx = PeerServer::nginx(&pki, "on");
    let url = nginx.url();
    for (flags, version) in [
        (&[][..], "HTTP/2.0 200 OK"),
        (&["--http1.1"][..], "HTTP/1.1 200 OK"),
    ] {
        let mut args = vec!["-c", "a", "--url", url.as_str()];
        args.extend_from_slice(flags);
        let out = client(pki.dir(), &args);
        assert!(
            out.status.success(),
            "{flags:?}: {}\n{}",
            text(&out),
            nginx.log.all()
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(version), "{stdout}");
        assert!(stdout.contains("hello CN=Client A"), "{stdout}");
    }
}

#[test]
fn a_certificate_nginx_refuses_in_its_http_answer_is_named_a_refusal_not_a_pass() {
    let pki = Pki::demo();
    let other = pki.other_ca("other-ca");
    pki.issue(
        &other,
        "client-x",
        &testkit::leaf(
            "Client X",
            mtls::pki::Usage::Client,
            &["URI:spiffe://mtls.demo/client-x"],
            mtls::pki::Validity::days(1),
        ),
    );
    // `optional` makes nginx finish the handshake with a certificate it cannot verify and
    // refuse it in HTTP (400 "The SSL certificate error"); `on` does the same for an
    // unknown CA with OpenSSL 3.
    let nginx = PeerServer::nginx(&pki, "on");
    let out = client(
        pki.dir(),
        &[
            "--cert",
            utf8(&pki.certs.cert("client-x")),
            "--key",
            utf8(&pki.certs.key("client-x")),
            "--url",
            &nginx.url(),
        ],
    );
    let error = error_line(&out);
    assert!(
        error.contains("refused our certificate at the HTTP level"),
        "{error}"
    );
    assert!(error.contains("does not trust the CA"), "{error}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("leads to the CA it trusts") && !stdout.contains("accepted it"),
        "the client claimed the server accepted our certificate:\n{stdout}"
    );
    assert!(
        stdout.contains("refused the certificate in its HTTP answer"),
        "{stdout}"
    );
}

#[test]
fn haproxy_refusing_a_client_without_a_certificate_is_read_the_same_on_every_path() {
    let pki = Pki::demo();
    let haproxy = PeerServer::haproxy(&pki);
    let url = haproxy.url();
    // TLS 1.3 over h2 lost the alert most of the time: the request is written before the
    // refusal arrives. Five runs of each path, bounded.
    for flags in [&[][..], &["--http1.1"][..]] {
        for run_no in 0..5 {
            let mut args = vec!["--no-cert", "--url", url.as_str()];
            args.extend_from_slice(flags);
            let error = error_line(&client(pki.dir(), &args));
            assert!(
                error.contains("alert: certificate_required"),
                "{flags:?} run {run_no}: {error}"
            );
        }
    }
    let error = error_line(&client(
        pki.dir(),
        &["--no-cert", "--tls-version", "1.2", "--url", &url],
    ));
    assert!(error.contains("alert: handshake_failure"), "{error}");
    assert!(
        error.contains("we sent none") && error.contains("requires one"),
        "TLS 1.2's refusal is blamed on the missing certificate, not on CRLs: {error}"
    );
    assert!(!error.contains("revocation"), "{error}");
    let ok = client(pki.dir(), &["-c", "a", "--url", &url]);
    assert!(ok.status.success(), "{}", text(&ok));
}

#[test]
fn a_ca_file_that_holds_a_leaf_is_named_for_what_it_is() {
    let pki = Pki::demo();
    let server = InProcessServer::start(server_settings(&pki));
    for leaf in ["client-a", "server"] {
        let error = error_line(&client(
            pki.dir(),
            &[
                "-c",
                "a",
                "--ca",
                utf8(&pki.certs.cert(leaf)),
                "--url",
                &server.url("localhost"),
            ],
        ));
        assert!(error.contains("is not a CA certificate"), "{leaf}: {error}");
        assert!(error.contains("CN=CA"), "names the real issuer: {error}");
        assert!(!error.contains("we trust only"), "{error}");
    }
    // Another CA: a CA indeed, just not the one that issued the server's certificate.
    pki.other_ca("other-ca");
    let error = error_line(&client(
        pki.dir(),
        &[
            "-c",
            "a",
            "--ca",
            utf8(&pki.certs.cert("other-ca")),
            "--url",
            &server.url("localhost"),
        ],
    ));
    assert!(error.contains("CN=Other CA"), "{error}");
    assert!(error.contains("issued by \"C=Earth"), "{error}");
}

#[test]
fn from_a_sub_folder_the_client_finds_the_demo_set_above_it_instead_of_suggesting_a_mint() {
    let pki = Pki::demo();
    let sub = pki.dir().parent().expect("the PKI's parent").join("client");
    std::fs::create_dir_all(&sub).expect("mkdir");
    let out = run(Command::new(CLIENT)
        .args(["-c", "a"])
        .current_dir(&sub)
        .env("RUST_LOG", "warn"));
    let error = error_line(&out);
    assert!(
        error.contains(&format!("(in {})", sub.display())),
        "{error}"
    );
    assert!(
        error.contains(&format!("--certs {}", pki.dir().display())),
        "{error}"
    );
    assert!(!error.contains("create the demo certificates"), "{error}");
}
