//! The server's debug log traces each handshake message by message, compared with what
//! `openssl s_client -msg` reports for the same connection; it logs none when debug is off
//! (that it then records nothing is a unit test of `server::handshake`); and it writes the
//! session secrets to SSLKEYLOGFILE in the NSS key log format.

use std::process::Command;

use mtls::explain::Side;
use mtls::trace::Dir;
use testkit::{Lines, Pki, fetch, openssl_messages, require_tool, run_with_input, text, utf8};

use crate::{start, start_with_env};

/// What s_client sends once its handshake is done, so that the server answers and closes
/// (and s_client, with -ign_eof, reads everything the server sent, session tickets too).
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// A field of a log line: `name=value` (quoted or not; unquoted values end at the next
/// field, which starts with ` word=`).
fn field(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &line[start..];
    if let Some(quoted) = rest.strip_prefix('"') {
        return quoted.split_once('"').map(|(v, _)| v.to_string());
    }
    let end = rest
        .match_indices(' ')
        .find(|(i, _)| {
            let next = &rest[i + 1..];
            next.split_once('=')
                .is_some_and(|(w, _)| !w.is_empty() && !w.contains(' '))
        })
        .map_or(rest.len(), |(i, _)| i);
    Some(rest[..end].to_string())
}

/// The trace the server logged for the connection from `peer`, as (direction, name): the
/// handshake messages and fatal alerts, named as openssl names them.
fn logged_messages(log: &Lines, peer: &str) -> Vec<(Dir, String)> {
    log.all()
        .lines()
        .filter(|l| l.contains(" handshake trace peer.addr="))
        .filter(|l| field(l, "peer.addr").as_deref() == Some(peer))
        .filter_map(|l| {
            let dir = match field(l, "dir")?.as_str() {
                "client->server" => Dir::ClientToServer,
                "server->client" => Dir::ServerToClient,
                other => panic!("unexpected dir {other:?} in {l}"),
            };
            let message = field(l, "tls.message")?;
            let title = field(l, "title")?;
            match message.as_str() {
                "ChangeCipherSpec" | "ApplicationData" | "-" => None,
                "Alert" if title.starts_with("Alert: fatal ") => Some((dir, title)),
                "Alert" => None,
                // openssl calls a HelloRetryRequest what it is on the wire: a ServerHello.
                "HelloRetryRequest" => Some((dir, "ServerHello".into())),
                _ => Some((dir, message)),
            }
        })
        .collect()
}

/// One connection from `openssl s_client -msg` with `flags`; returns what it printed and
/// the server's trace of the same connection.
fn openssl_and_server(
    pki: &Pki,
    server: &testkit::ServerProcess,
    flags: &[&str],
) -> (String, Vec<(Dir, String)>) {
    require_tool("openssl");
    let mark = server.log.mark();
    let connect = format!("127.0.0.1:{}", server.addr.port());
    let out = run_with_input(
        Command::new("openssl")
            .args(["s_client", "-connect", &connect, "-servername", "localhost"])
            .args(["-CAfile", utf8(&pki.certs.ca_cert()), "-msg", "-ign_eof"])
            .args(flags),
        REQUEST,
    );
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let end = server
        .log
        .wait_for_after(mark, &["handshake trace end", "peer.addr="]);
    let peer = field(&end, "peer.addr").expect("the end line names the peer");
    let ours = logged_messages(&server.log, &peer);
    assert!(
        !ours.is_empty(),
        "no trace for {peer}:\n{}\n{}",
        server.log.all(),
        text(&out)
    );
    (printed, ours)
}

fn names(seq: &[(Dir, String)]) -> Vec<String> {
    seq.iter()
        .map(|(d, n)| format!("{} {n}", d.arrow()))
        .collect()
}

#[test]
fn the_servers_debug_trace_lists_the_handshake_messages_openssl_saw_for_the_same_connection() {
    let pki = Pki::demo();
    let server = start_with_env(&pki, &[], &[("RUST_LOG", "debug")]);
    let a_cert = pki.certs.cert("client-a");
    let a_key = pki.certs.key("client-a");
    let with_cert = ["-cert", utf8(&a_cert), "-key", utf8(&a_key)];
    // (case, s_client flags, with Client A's certificate, messages that must appear in order)
    let cases: [(&str, &[&str], bool, &[&str]); 5] = [
        (
            "TLS 1.3 with Client A",
            &["-tls1_3"],
            true,
            &[
                "→ ClientHello",
                "← ServerHello",
                "← EncryptedExtensions",
                "← CertificateRequest",
                "← Certificate",
                "← CertificateVerify",
                "← Finished",
                "→ Certificate",
                "→ CertificateVerify",
                "→ Finished",
                "← NewSessionTicket",
            ],
        ),
        (
            "TLS 1.2 with Client A",
            &["-tls1_2"],
            true,
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
                "→ Finished",
                "← NewSessionTicket",
                "← Finished",
            ],
        ),
        (
            "TLS 1.3 without a certificate",
            &["-tls1_3"],
            false,
            &[
                "→ Certificate",
                "→ Finished",
                "← Alert: fatal certificate_required",
            ],
        ),
        (
            "TLS 1.2 without a certificate",
            &["-tls1_2"],
            false,
            &[
                "→ Certificate",
                "→ ClientKeyExchange",
                "→ Finished",
                "← Alert: fatal certificate_required",
            ],
        ),
        (
            // A key share only for X448, which the server does not take: it asks again.
            "TLS 1.3 after a HelloRetryRequest",
            &["-tls1_3", "-groups", "X448:P-256"],
            true,
            &[
                "→ ClientHello",
                "← ServerHello",
                "→ ClientHello",
                "← ServerHello",
                "← EncryptedExtensions",
                "← Finished",
                "→ Finished",
            ],
        ),
    ];
    for (case, version, cert, expected) in cases {
        let mut flags = version.to_vec();
        if cert {
            flags.extend(with_cert);
        }
        let (printed, ours) = openssl_and_server(&pki, &server, &flags);
        let theirs = openssl_messages(&printed, Side::Client);
        assert_eq!(
            names(&ours),
            names(&theirs),
            "{case}: the server's trace and openssl disagree\nopenssl printed:\n{printed}"
        );
        // And both show what this case is about, in order.
        let ours = names(&ours);
        let mut at = 0;
        for want in expected {
            let found = ours[at..].iter().position(|n| n == want);
            let Some(offset) = found else {
                panic!("{case}: {want:?} missing (or out of order) in {ours:#?}");
            };
            at += offset + 1;
        }
    }
    // The trace names what the learner needs: the retry and the group it asks for, the demo
    // CA among the acceptable CA names, both certificates, the signature algorithm.
    let log = server.log.all();
    for needle in [
        "tls.message=HelloRetryRequest",
        "asks again, with a key share for: secp256r1",
        "tls.message=CertificateRequest",
        "acceptable CA name: C=Earth, ST=Asia, L=Mountain, O=CA Company, OU=Engineering, CN=CA",
        "CN=Client A (issued by",
        "CN=localhost (issued by",
        "signature algorithm: ecdsa_secp256r1_sha256",
    ] {
        assert!(
            log.contains(needle),
            "{needle:?} missing from the log:\n{log}"
        );
    }
}

#[test]
fn with_debug_off_the_server_logs_no_trace() {
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    fetch(
        &server.url("localhost"),
        pki.certs.ca_cert(),
        pki.pair("client-a"),
    )
    .expect("Client A is served");
    // `State` is logged after the handshake, so a trace would be in the log by now.
    server.log.wait_for(&["State", "TLSv1.3"]);
    assert_eq!(
        server.log.count(&["handshake trace"]),
        0,
        "{}",
        server.log.all()
    );
}

#[test]
fn the_server_writes_the_session_secrets_to_sslkeylogfile_in_the_nss_format() {
    let pki = Pki::demo();
    let keylog = pki.path("keys.log");
    let server = start_with_env(
        &pki,
        &[],
        &[("RUST_LOG", "debug"), ("SSLKEYLOGFILE", utf8(&keylog))],
    );
    server
        .log
        .wait_for(&["SSLKEYLOGFILE is set", "anyone who can read it"]);
    fetch(
        &server.url("localhost"),
        pki.certs.ca_cert(),
        pki.pair("client-a"),
    )
    .expect("Client A is served");
    let end = server.log.wait_for(&["handshake trace end"]);
    let random = field(&end, "client_random").expect("the client random");
    assert_eq!(random.len(), 64, "{end}");
    // The secrets are written while the handshake runs, before its trace is logged.
    let written = std::fs::read_to_string(&keylog).expect("the key log file");
    let mut labels: Vec<&str> = written
        .lines()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(parts.len(), 3, "LABEL CLIENT_RANDOM SECRET: {line}");
            assert_eq!(parts[1], random, "the ClientHello's random: {line}");
            assert!(
                parts[2].len() == 96 && parts[2].bytes().all(|b| b.is_ascii_hexdigit()),
                "a SHA-384 secret in hex (TLS13_AES_256_GCM_SHA384): {line}"
            );
            parts[0]
        })
        .collect();
    labels.sort_unstable();
    assert_eq!(
        labels,
        [
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            "CLIENT_TRAFFIC_SECRET_0",
            "EXPORTER_SECRET",
            "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            "SERVER_TRAFFIC_SECRET_0",
        ]
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keylog)
            .expect("stat")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "secrets are for the owner only");
    }
}
