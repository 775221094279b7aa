//! `client --trace`: every handshake message of the connection, in order, for TLS 1.3 and
//! 1.2, with and without a client certificate; compared with what `openssl s_server -msg`
//! saw of the same connection; and SSLKEYLOGFILE, which lets tshark (Wireshark) decrypt a
//! capture of it.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use mtls::explain::Side;
use mtls::trace::Dir;
use testkit::{
    InProcessServer, Lines, Pki, openssl_messages, poll, require_tool, run, server_settings, text,
    utf8,
};

use crate::{CLIENT, client, error_line};

/// The messages of a `--trace` report, in order: `→ ClientHello`, `← Alert: fatal ...`.
fn traced_messages(stdout: &str) -> Vec<String> {
    let mut arrow = "";
    let mut seen = Vec::new();
    for line in stdout.lines() {
        if line == "Server certificate chain" || line.starts_with("HTTP/") {
            break;
        }
        if line.starts_with("→ record ") {
            arrow = "→";
        } else if line.starts_with("← record ") {
            arrow = "←";
        } else if let Some(title) = line.strip_prefix("    ")
            && !title.starts_with(' ')
        {
            seen.push(format!("{arrow} {title}"));
        }
    }
    seen
}

/// The details printed under the `n`th message titled `title` (from 0).
fn details_of(stdout: &str, title: &str, n: usize) -> Vec<String> {
    let mut found = 0;
    let mut lines = stdout.lines();
    while let Some(line) = lines.next() {
        if line.strip_prefix("    ") == Some(title) {
            if found == n {
                return lines
                    .take_while(|l| l.starts_with("        "))
                    .map(|l| l.trim().to_string())
                    .collect();
            }
            found += 1;
        }
    }
    panic!("no {title} #{n} in:\n{stdout}");
}

fn assert_sequence(out: &Output, expected: &[&str]) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: Vec<String> = traced_messages(&stdout)
        .into_iter()
        .filter(|m| !m.ends_with("ApplicationData"))
        .collect();
    assert_eq!(seen, expected, "{}", text(out));
}

#[test]
fn client_trace_shows_every_tls13_message_in_order_with_and_without_a_certificate() {
    let pki = Pki::demo();
    let server = InProcessServer::start(server_settings(&pki));
    let url = server.url("localhost");

    let out = client(pki.dir(), &["-c", "a", "--url", &url, "--trace"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_sequence(
        &out,
        &[
            "→ ClientHello",
            "← ServerHello",
            "← ChangeCipherSpec",
            "← EncryptedExtensions",
            "← CertificateRequest",
            "← Certificate",
            "← CertificateVerify",
            "← Finished",
            "→ ChangeCipherSpec",
            "→ Certificate",
            "→ CertificateVerify",
            "→ Finished",
            // One ticket per handshake (the server's choice, as Go's).
            "← NewSessionTicket",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let hello = details_of(&stdout, "ClientHello", 0);
    for expected in [
        "versions: TLSv1.3, TLSv1.2",
        "key-exchange groups: X25519MLKEM768 (hybrid post-quantum: X25519 + ML-KEM-768), X25519",
        "server name (SNI): localhost",
        "ALPN: h2, http/1.1",
    ] {
        assert!(
            hello.iter().any(|d| d.starts_with(expected)),
            "{expected:?} in {hello:#?}"
        );
    }
    let server_hello = details_of(&stdout, "ServerHello", 0);
    assert!(
        server_hello.contains(&"version: TLSv1.3".to_string()),
        "{server_hello:#?}"
    );
    assert!(
        server_hello.contains(
            &"key exchange: X25519MLKEM768 (hybrid post-quantum: X25519 + ML-KEM-768)".to_string()
        ),
        "{server_hello:#?}"
    );
    assert!(
        details_of(&stdout, "EncryptedExtensions", 0).contains(&"ALPN: h2".to_string()),
        "{stdout}"
    );
    let request = details_of(&stdout, "CertificateRequest", 0);
    assert!(
        request.contains(
            &"acceptable CA name: C=Earth, ST=Asia, L=Mountain, O=CA Company, OU=Engineering, CN=CA"
                .to_string()
        ),
        "{request:#?}"
    );
    let server_cert = details_of(&stdout, "Certificate", 0);
    assert!(
        server_cert[1].starts_with("certificate 1: C=Earth, ST=Asia, L=Mountain, O=Server Company, OU=Engineering, CN=localhost (issued by"),
        "{server_cert:#?}"
    );
    let client_cert = details_of(&stdout, "Certificate", 1);
    assert!(
        client_cert[1].contains("CN=Client A (issued by"),
        "{client_cert:#?}"
    );
    assert_eq!(
        details_of(&stdout, "CertificateVerify", 1)[0],
        "signature algorithm: ecdsa_secp256r1_sha256"
    );
    // Encrypted records say which secret opened them; the report follows the trace.
    for expected in [
        "← (encrypted from here on",
        "(decrypted with SERVER_HANDSHAKE_TRAFFIC_SECRET)",
        "(decrypted with CLIENT_HANDSHAKE_TRAFFIC_SECRET)",
        "(decrypted with SERVER_TRAFFIC_SECRET_0)",
        "bytes of application data, not shown",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
    let trace_at = stdout.find("Handshake trace").expect("the trace");
    let report_at = stdout.find("HTTP/2.0 200 OK").expect("the report");
    assert!(trace_at < report_at, "the trace comes first:\n{stdout}");

    // Without a certificate: the empty Certificate, and the alert that ended the request.
    let out = client(pki.dir(), &["--no-cert", "--url", &url, "--trace"]);
    let error = error_line(&out);
    assert!(error.contains("alert: certificate_required"), "{error}");
    assert_sequence(
        &out,
        &[
            "→ ClientHello",
            "← ServerHello",
            "← ChangeCipherSpec",
            "← EncryptedExtensions",
            "← CertificateRequest",
            "← Certificate",
            "← CertificateVerify",
            "← Finished",
            "→ ChangeCipherSpec",
            "→ Certificate",
            "→ Finished",
            "← Alert: fatal certificate_required",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        details_of(&stdout, "Certificate", 1),
        ["certificates: empty (no client certificate)"]
    );

    // Without --trace there is none.
    let out = client(pki.dir(), &["-c", "a", "--url", &url]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Handshake trace"));
}

#[test]
fn client_trace_shows_every_tls12_message_in_order_with_and_without_a_certificate() {
    let pki = Pki::demo();
    let server = InProcessServer::start(server_settings(&pki));
    let url = server.url("localhost");
    let v12 = ["--tls-version", "1.2", "--url", &url, "--trace"];

    let out = client(pki.dir(), &[&["-c", "a"][..], &v12].concat());
    assert!(out.status.success(), "{}", text(&out));
    assert_sequence(
        &out,
        &[
            "→ ClientHello",
            "← ServerHello",
            "← Certificate",
            "← ServerKeyExchange",
            "← CertificateRequest",
            "← ServerHelloDone",
            "→ Certificate",
            "→ ClientKeyExchange",
            "→ CertificateVerify",
            "→ ChangeCipherSpec",
            "→ Finished (encrypted)",
            "← NewSessionTicket",
            "← ChangeCipherSpec",
            "← Finished (encrypted)",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        details_of(&stdout, "ServerHello", 0).contains(&"version: TLSv1.2".to_string()),
        "{stdout}"
    );
    let exchange = details_of(&stdout, "ServerKeyExchange", 0);
    assert_eq!(exchange[0], "key exchange: X25519", "{exchange:#?}");
    assert!(
        details_of(&stdout, "CertificateRequest", 0)
            .iter()
            .any(|d| d.ends_with("O=CA Company, OU=Engineering, CN=CA")),
        "{stdout}"
    );
    assert!(stdout.contains("not decrypted (TLS 1.2)"), "{stdout}");

    let out = client(pki.dir(), &[&["--no-cert"][..], &v12].concat());
    let error = error_line(&out);
    assert!(error.contains("alert: certificate_required"), "{error}");
    assert_sequence(
        &out,
        &[
            "→ ClientHello",
            "← ServerHello",
            "← Certificate",
            "← ServerKeyExchange",
            "← CertificateRequest",
            "← ServerHelloDone",
            "→ Certificate",
            "→ ClientKeyExchange",
            "→ ChangeCipherSpec",
            "→ Finished (encrypted)",
            "← Alert: fatal certificate_required",
        ],
    );
}

/// `openssl s_server`, killed on drop.
struct OpensslServer {
    child: Child,
    port: u16,
    stdout: Lines,
}

impl OpensslServer {
    /// One connection's worth of `s_server -www -msg`, requiring a client certificate.
    fn start(pki: &Pki, version: &str) -> Self {
        require_tool("openssl");
        let mut child = Command::new("openssl")
            .args(["s_server", "-accept", "0", "-naccept", "1", "-www", "-msg"])
            .args(["-Verify", "1", version])
            .args(["-cert", utf8(&pki.certs.cert("server"))])
            .args(["-key", utf8(&pki.certs.key("server"))])
            .args(["-CAfile", utf8(&pki.certs.ca_cert())])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run openssl s_server");
        let stdout = Lines::collect(child.stdout.take().expect("stdout"));
        let line = stdout.wait_for(&["ACCEPT"]);
        let port = line
            .rsplit_once(':')
            .and_then(|(_, p)| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Self {
            child,
            port,
            stdout,
        }
    }

    /// What it printed, once it has served its one connection and exited.
    fn printed(mut self) -> String {
        poll("openssl s_server to exit after its connection", || {
            self.child.try_wait().expect("wait")
        });
        self.stdout.all()
    }
}

impl Drop for OpensslServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (direction, name) of the handshake messages and fatal alerts in `client --trace --json`.
fn json_messages(out: &Output) -> Vec<(Dir, String)> {
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)));
    let records = report["trace"].as_array().expect("a trace array");
    let mut seen = Vec::new();
    for record in records {
        let dir = match record["dir"].as_str() {
            Some("client->server") => Dir::ClientToServer,
            Some("server->client") => Dir::ServerToClient,
            other => panic!("unexpected dir {other:?}"),
        };
        for message in record["messages"].as_array().expect("messages") {
            let kind = message["type"].as_str().expect("type");
            let title = message["title"].as_str().expect("title");
            match kind {
                "ChangeCipherSpec" | "ApplicationData" => {}
                "Alert" if title.starts_with("Alert: fatal ") => seen.push((dir, title.into())),
                "Alert" => {}
                // openssl calls a HelloRetryRequest what it is on the wire: a ServerHello.
                "HelloRetryRequest" => seen.push((dir, "ServerHello".into())),
                _ => seen.push((dir, kind.into())),
            }
        }
    }
    seen
}

/// A refusal, compared: openssl prints a message it received only when it processes it,
/// and it stops at the one it refuses (our empty Certificate) and sends its alert. The rest
/// of that flight (ClientKeyExchange, ChangeCipherSpec, Finished) reached it but was never
/// read. So our trace, which shows everything the client sent, must be openssl's output
/// with only those unread client messages inserted before the alert.
fn assert_refusal_matches(ours: &[(Dir, String)], theirs: &[(Dir, String)], why: &str) {
    let (alert, processed) = theirs.split_last().expect("openssl printed messages");
    assert_eq!(
        alert.0,
        Dir::ServerToClient,
        "openssl ends with its alert: {why}"
    );
    assert_eq!(
        processed.last(),
        Some(&(Dir::ClientToServer, "Certificate".to_string())),
        "the last message openssl read is the Certificate it refused: {why}"
    );
    assert!(ours.starts_with(processed), "{why}");
    assert_eq!(ours.last(), Some(alert), "{why}");
    let unread = &ours[processed.len()..ours.len() - 1];
    assert!(
        unread.iter().all(|(dir, _)| *dir == Dir::ClientToServer),
        "only messages the client sent after the refused one may be missing from openssl's \
         output: {unread:?}\n{why}"
    );
}

#[test]
fn client_trace_matches_what_openssl_s_server_saw_of_the_same_connection() {
    let pki = Pki::demo();
    for (version, flag) in [("1.3", "-tls1_3"), ("1.2", "-tls1_2")] {
        for cert in [&["-c", "a"][..], &["--no-cert"][..]] {
            let openssl = OpensslServer::start(&pki, flag);
            let url = format!("https://localhost:{}/", openssl.port);
            let mut args = cert.to_vec();
            args.extend(["--url", &url, "--trace", "--json", "--tls-version", version]);
            let out = client(pki.dir(), &args);
            let ours = json_messages(&out);
            let printed = openssl.printed();
            let theirs = openssl_messages(&printed, Side::Server);
            let why = format!(
                "TLS {version} {cert:?}: our trace and openssl disagree\nopenssl printed:\n{printed}\nwe printed:\n{}",
                text(&out)
            );
            match cert[0] {
                "-c" => assert_eq!(ours, theirs, "{why}"),
                _ => assert_refusal_matches(&ours, &theirs, &why),
            }
            let has = |dir: Dir, name: &str| ours.iter().any(|(d, n)| *d == dir && n == name);
            assert!(has(Dir::ServerToClient, "CertificateRequest"), "{ours:?}");
            match cert[0] {
                "-c" => {
                    assert!(out.status.success(), "{}", text(&out));
                    assert!(has(Dir::ClientToServer, "CertificateVerify"), "{ours:?}");
                    assert!(has(Dir::ServerToClient, "Finished"), "{ours:?}");
                }
                _ => {
                    // The request failed; the JSON carries the error and the trace up to the
                    // alert that ended it (openssl's wording differs by version).
                    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
                    let last = ours.last().expect("messages");
                    assert_eq!(last.0, Dir::ServerToClient, "{ours:?}");
                    assert!(
                        last.1 == "Alert: fatal certificate_required"
                            || last.1 == "Alert: fatal handshake_failure",
                        "{ours:?}"
                    );
                }
            }
        }
    }
}

/// Captures TCP port `port` on the loopback interface with tshark, into `file`, until
/// dropped.
struct Capture {
    child: Child,
    log: Lines,
}

impl Capture {
    fn start(port: u16, file: &Path) -> Self {
        require_tool("tshark");
        let mut child = Command::new("tshark")
            .args([
                "-i",
                "lo",
                "-f",
                &format!("tcp port {port}"),
                "-w",
                utf8(file),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run tshark");
        let log = Lines::collect(child.stderr.take().expect("stderr"));
        log.wait_for(&["Capturing on"]);
        Self { child, log }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The handshake message types tshark finds in `capture`, in order (with the key log, when
/// given, to decrypt TLS 1.3).
fn tshark_handshake_types(capture: &Path, keylog: Option<&Path>) -> Vec<u8> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-r", utf8(capture)]);
    if let Some(keylog) = keylog {
        cmd.args(["-o", &format!("tls.keylog_file:{}", utf8(keylog))]);
    }
    cmd.args([
        "-Y",
        "tls.handshake",
        "-T",
        "fields",
        "-e",
        "tls.handshake.type",
    ]);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .flat_map(|l| l.split(','))
        .filter(|t| !t.trim().is_empty())
        .map(|t| t.trim().parse().unwrap_or_else(|_| panic!("type {t:?}")))
        .collect()
}

/// The handshake message type numbers of a trace, as Wireshark shows them.
fn type_numbers(messages: &[(Dir, String)]) -> Vec<u8> {
    messages
        .iter()
        .filter_map(|(_, name)| match name.as_str() {
            "ClientHello" => Some(1),
            "ServerHello" => Some(2),
            "NewSessionTicket" => Some(4),
            "EncryptedExtensions" => Some(8),
            "Certificate" => Some(11),
            "CertificateRequest" => Some(13),
            "CertificateVerify" => Some(15),
            "Finished" => Some(20),
            n if n.starts_with("Alert") => None,
            other => panic!("no number for {other}"),
        })
        .collect()
}

#[test]
fn sslkeylogfile_lets_tshark_decrypt_a_capture_and_matches_the_traced_client_random() {
    let pki = Pki::demo();
    let server = InProcessServer::start(server_settings(&pki));
    let capture = pki.path("capture.pcapng");
    let keylog = pki.path("keys.log");
    let tshark = Capture::start(server.addr.port(), &capture);
    let out = run(Command::new(CLIENT)
        .args(["--certs", utf8(pki.dir()), "-c", "a", "--trace", "--json"])
        .args(["--url", &server.url("localhost")])
        .env("RUST_LOG", "warn")
        .env("SSLKEYLOGFILE", &keylog));
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SSLKEYLOGFILE is set"),
        "the client says so: {stderr}"
    );
    let traced = type_numbers(&json_messages(&out));
    assert_eq!(traced, [1, 2, 8, 13, 11, 15, 20, 11, 15, 20, 4]);

    // tshark reads the packets as they are written: wait until the client's FIN is in
    // (everything it sent and received came before it).
    poll("the client's FIN in the capture", || {
        let out = run(Command::new("tshark")
            .args(["-r", utf8(&capture), "-Y", "tcp.flags.fin == 1"])
            .args(["-T", "fields", "-e", "frame.number"]));
        (!String::from_utf8_lossy(&out.stdout).trim().is_empty()).then_some(())
    });
    let decrypted = tshark_handshake_types(&capture, Some(&keylog));
    assert_eq!(
        decrypted,
        traced,
        "tshark with our key log; its log:\n{}",
        tshark.log.all()
    );
    // Without the key log tshark sees only the two messages TLS 1.3 sends in the clear.
    assert_eq!(tshark_handshake_types(&capture, None), [1, 2]);

    // The key log's lines are in the NSS format and name this connection's ClientHello.
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let hello = &report["trace"][0]["messages"][0];
    assert_eq!(hello["type"], "ClientHello");
    let random = hello["details"]
        .as_array()
        .expect("details")
        .iter()
        .find(|d| d["label"] == "random")
        .and_then(|d| d["value"].as_str())
        .expect("the ClientHello's random")
        .to_string();
    let written = std::fs::read_to_string(&keylog).expect("the key log");
    let lines: Vec<Vec<&str>> = written.lines().map(|l| l.split(' ').collect()).collect();
    for label in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ] {
        let line = lines
            .iter()
            .find(|l| l[0] == label)
            .unwrap_or_else(|| panic!("no {label} in {written}"));
        assert_eq!(line.len(), 3, "{line:?}");
        assert_eq!(
            line[1], random,
            "{label} is filed under the ClientHello's random"
        );
        assert!(line[2].bytes().all(|b| b.is_ascii_hexdigit()), "{line:?}");
    }
}
