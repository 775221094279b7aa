//! A fleet behind load balancers: the PROXY protocol (raw v1 and v2 headers, and a real
//! HAProxy in `mode tcp` with `send-proxy-v2`), session tickets shared by two server
//! processes (resumed with `openssl s_client -sess_out` / `-sess_in`, through a rotation and
//! after a key is dropped), and the health endpoints an orchestrator probes. Every refusal
//! asserts its reason.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;

use crate::start;
use mtls::ca::ticket_keys::{self, TicketKeysRequest};
use mtls::files::SERVER_SANS;
use mtls::pki::Usage;
use mtls::write::{self, Access};
use testkit::{
    Conn, EchoUpstream, PATIENCE, PeerServer, Pki, ServerProcess, client_config, expired, http1,
    leaf, metrics_addr, plain_get, run_with_input, sample, text, utf8,
};
use time::OffsetDateTime;

/// The flags of a server behind a load balancer at `from`.
fn behind(from: &str) -> Vec<&str> {
    vec!["--proxy-protocol", "--proxy-protocol-from", from]
}

/// A TCP connection to `addr` that has already sent `header`.
fn with_header(addr: SocketAddr, header: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(PATIENCE)).expect("timeout");
    tcp.write_all(header).expect("send the header");
    tcp
}

/// A version 2 header (`PROXY`, TCP) from `client` to `server`, as HAProxy writes it.
fn v2_proxy(client: SocketAddr, server: SocketAddr) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    match (client, server) {
        (SocketAddr::V4(c), SocketAddr::V4(s)) => {
            h.extend_from_slice(&[0x21, 0x11, 0, 12]);
            h.extend_from_slice(&c.ip().octets());
            h.extend_from_slice(&s.ip().octets());
        }
        (SocketAddr::V6(c), SocketAddr::V6(s)) => {
            h.extend_from_slice(&[0x21, 0x21, 0, 36]);
            h.extend_from_slice(&c.ip().octets());
            h.extend_from_slice(&s.ip().octets());
        }
        _ => panic!("one address family for both"),
    }
    h.extend_from_slice(&client.port().to_be_bytes());
    h.extend_from_slice(&server.port().to_be_bytes());
    h
}

/// A version 2 `LOCAL` header: the balancer's own connection (a health check).
const V2_LOCAL: &[u8] = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";

#[test]
fn a_trusted_balancers_v1_and_v2_headers_make_the_client_address_the_one_seen_everywhere() {
    let pki = Pki::demo();
    let upstream = EchoUpstream::start();
    let url = upstream.url();
    let mut args = behind("127.0.0.1/32");
    args.extend(["--upstream", &url]);
    let server = start(&pki, &args);
    let config = client_config(&pki, Some("client-a"), http1());

    // Version 1, the text header; the first bytes of TLS follow it in the same segment.
    let v1 = format!(
        "PROXY TCP4 192.0.2.7 127.0.0.1 51234 {}\r\n",
        server.addr.port()
    );
    // Client A is served over `tcp`; what the upstream got.
    let forwarded = |tcp: TcpStream| {
        let mut conn = Conn::over(&config, tcp).expect("TLS");
        assert_eq!(conn.request("/", &[]).expect("request").status, 200);
        upstream
            .requests()
            .pop()
            .expect("the upstream got the request")
    };
    let got = forwarded(with_header(server.addr, v1.as_bytes()));
    server
        .log
        .wait_for(&["State", "peer.addr=192.0.2.7:51234", "TLSv1.3"]);
    // The forwarded headers carry the client's address, not the balancer's.
    assert_eq!(got.headers("x-forwarded-for"), ["192.0.2.7"]);
    assert_eq!(got.headers("forwarded"), ["for=192.0.2.7;proto=https"]);

    // Version 2, binary, from an IPv6 client, sent in two pieces: the server waits for the
    // rest of the header and consumes exactly it.
    let client: SocketAddr = "[2001:db8::7]:443".parse().expect("addr");
    let header = v2_proxy(client, "[2001:db8::1]:8443".parse().expect("addr"));
    let mut tcp = with_header(server.addr, &header[..10]);
    tcp.write_all(&header[10..]).expect("the rest");
    let got = forwarded(tcp);
    server
        .log
        .wait_for(&["State", "peer.addr=[2001:db8::7]:443"]);
    assert_eq!(got.headers("x-forwarded-for"), ["2001:db8::7"]);

    // LOCAL (a health check of the balancer's own): the connection's own address stands.
    let tcp = with_header(server.addr, V2_LOCAL);
    let own = tcp.local_addr().expect("local addr");
    let got = forwarded(tcp);
    server.log.wait_for(&["State", &format!("peer.addr={own}")]);
    assert_eq!(got.headers("x-forwarded-for"), ["127.0.0.1"]);
}

#[test]
fn without_a_valid_header_or_from_an_untrusted_address_a_connection_is_refused_and_counted() {
    let pki = Pki::demo();
    // Loopback is not a load balancer here: every test connection comes from an untrusted
    // address (no packet goes to 10.0.0.0/8; the range is only compared).
    let strict = start(
        &pki,
        &[
            "--proxy-protocol",
            "--proxy-protocol-from",
            "10.0.0.0/8",
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let header = format!(
        "PROXY TCP4 192.0.2.7 127.0.0.1 51234 {}\r\n",
        strict.addr.port()
    );
    let tcp = with_header(strict.addr, header.as_bytes());
    let own = tcp.local_addr().expect("local addr");
    let config = client_config(&pki, Some("client-a"), http1());
    let refused = Conn::over(&config, tcp).and_then(|mut c| c.request("/", &[]));
    assert!(
        refused.is_err(),
        "served from an untrusted address: {refused:?}"
    );
    let line = strict
        .log
        .wait_for(&["refused before TLS", "reason=\"untrusted_source\""]);
    assert!(line.contains(&format!("peer.addr={own}")), "{line}");
    assert!(line.contains("not one of the load balancers"), "{line}");
    let (_, scrape) = plain_get(metrics_addr(&strict), "/metrics");
    assert_eq!(
        sample(
            &scrape,
            "mtls_proxy_protocol_refusals_total{reason=\"untrusted_source\"}"
        ),
        Some(1.0),
        "{scrape}"
    );

    // A trusted balancer that sends no header, a broken one, or too little in time.
    let server = start(
        &pki,
        &[
            "--proxy-protocol",
            "--proxy-protocol-from",
            "127.0.0.1",
            "--handshake-timeout",
            "1s",
        ],
    );
    let plain_tls = Conn::open(&config, server.addr).and_then(|mut c| c.request("/", &[]));
    assert!(plain_tls.is_err(), "served without a header: {plain_tls:?}");
    let line = server
        .log
        .wait_for(&["refused before TLS", "reason=\"missing_header\""]);
    assert!(line.contains("began with a TLS handshake record"), "{line}");
    assert!(line.contains("send-proxy-v2"), "{line}");

    let bad = Conn::over(
        &config,
        with_header(server.addr, b"PROXY TCP4 300.0.0.1 127.0.0.1 1 2\r\n"),
    );
    assert!(bad.is_err(), "a malformed header was accepted");
    let line = server
        .log
        .wait_for(&["refused before TLS", "reason=\"malformed_header\""]);
    assert!(line.contains("version 1"), "{line}");

    let mut slow = with_header(server.addr, b"PROXY TCP4 192.0.2.");
    let mut buf = [0u8; 1];
    let read = std::io::Read::read(&mut slow, &mut buf);
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the server should close a connection whose header never ends: {read:?}"
    );
    let line = server
        .log
        .wait_for(&["refused before TLS", "reason=\"timeout\""]);
    assert!(line.contains("within 1s"), "{line}");
}

#[test]
fn haproxy_in_tcp_mode_with_send_proxy_v2_passes_the_clients_own_address_through() {
    let pki = Pki::demo();
    let server = start(&pki, &behind("127.0.0.1/32"));
    let config = format!(
        "global\n  log stderr format short local0 info\n\
         defaults\n  mode tcp\n  log global\n  timeout connect 5s\n  timeout client 10s\n  \
         timeout server 10s\n\
         frontend fe\n  bind 127.0.0.1:{{port}}\n  default_backend be\n\
         backend be\n  server s1 {} send-proxy-v2\n",
        server.addr
    );
    let haproxy = PeerServer::start(
        "haproxy",
        "haproxy.cfg",
        &config,
        &["-f", "{dir}/haproxy.cfg", "-db"],
    );

    let tcp = TcpStream::connect(haproxy.addr).expect("connect to HAProxy");
    let client_port = tcp.local_addr().expect("local addr").port();
    let tls = client_config(&pki, Some("client-a"), http1());
    let mut conn = Conn::over(&tls, tcp).expect("TLS through HAProxy");
    let reply = conn.request("/", &[]).expect("request");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        "hello, Client A (spiffe://mtls.demo/client-a)\n"
    );
    // HAProxy saw the client at 127.0.0.1 and its own source port: that is what the server
    // logs, not the port HAProxy connected from.
    let line = server.log.wait_for(&["State", "TLSv1.3"]);
    assert!(
        line.contains(&format!("peer.addr=127.0.0.1:{client_port} ")),
        "the server did not log the client's own port {client_port}: {line}\nHAProxy:\n{}",
        haproxy.log.all()
    );
    server
        .log
        .wait_for(&["Header", &format!("peer.addr=127.0.0.1:{client_port} ")]);
}

/// `openssl s_client` at TLS `version` (`-tls1_3`) to `port` as Client A, sending one
/// HTTP/1.0 request; `session` is `-sess_out FILE` or `-sess_in FILE`. Returns what it said.
fn s_client(pki: &Pki, port: u16, version: &str, session: [&str; 2]) -> String {
    let certs = &pki.certs;
    let (ca, cert, key) = (
        certs.ca_cert(),
        certs.cert("client-a"),
        certs.key("client-a"),
    );
    let connect = format!("127.0.0.1:{port}");
    let out = run_with_input(
        Command::new("openssl").args([
            "s_client",
            "-connect",
            &connect,
            "-servername",
            "localhost",
            "-CAfile",
            utf8(&ca),
            "-cert",
            utf8(&cert),
            "-key",
            utf8(&key),
            version,
            "-ign_eof",
            session[0],
            session[1],
        ]),
        b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n",
    );
    text(&out)
}

/// Connects with s_client as [`s_client`] does, requires that Client A was served, and
/// says whether the session was resumed (`Reused, TLSv1.3, ...`) or made anew (`New, ...`).
fn served_resumed(pki: &Pki, port: u16, version: &str, session: [&str; 2]) -> bool {
    let said = s_client(pki, port, version, session);
    assert!(
        said.contains("hello, Client A"),
        "s_client {version} {session:?} was not served:\n{said}"
    );
    let line = said
        .lines()
        .find(|l| l.starts_with("Reused, ") || l.starts_with("New, "))
        .unwrap_or_else(|| panic!("no New/Reused line:\n{said}"));
    line.starts_with("Reused, ")
}

/// Waits until `server` reloaded after `mark` and the log line has `needle`.
fn reloaded(server: &ServerProcess, mark: testkit::Mark, needle: &str) {
    server
        .log
        .wait_for_after(mark, &["reloaded TLS material", needle]);
}

#[test]
fn two_servers_sharing_a_ticket_key_file_resume_each_others_sessions_until_the_key_is_dropped() {
    let pki = Pki::demo();
    let dir = &pki.certs;
    let rotate = |req: TicketKeysRequest| ticket_keys::write(dir, &req).expect("ticket keys");
    let made = rotate(TicketKeysRequest::default());
    let keys = dir.ticket_keys();
    let crl = dir.crl();
    pki.write_crl(&crl, &[]);
    let flags = [
        "--ticket-keys",
        utf8(&keys),
        "--crl",
        utf8(&crl),
        "--reload-interval",
        "100ms",
    ];
    let servers = [start(&pki, &flags), start(&pki, &flags)];
    let second = servers[1].addr.port();
    // Changes a shared file, and waits until both servers have reloaded it.
    let change_both = |change: &dyn Fn(), needle: &str| {
        let marks = servers.each_ref().map(|s| s.log.mark());
        change();
        for (server, mark) in servers.iter().zip(marks) {
            reloaded(server, mark, needle);
        }
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let sessions: Vec<(&str, String)> = ["-tls1_3", "-tls1_2"]
        .into_iter()
        .map(|v| {
            (
                v,
                utf8(&tmp.path().join(format!("session{v}.pem"))).to_string(),
            )
        })
        .collect();
    // Whether each session (TLS 1.3, then 1.2) resumes on the second server now.
    let resume_on_second = || -> Vec<bool> {
        sessions
            .iter()
            .map(|(v, file)| served_resumed(&pki, second, v, ["-sess_in", file]))
            .collect()
    };

    // A session from the first server resumes on the second.
    for (version, file) in &sessions {
        let port = servers[0].addr.port();
        let new = !served_resumed(&pki, port, version, ["-sess_out", file]);
        assert!(new, "{version}: a first connection cannot resume");
    }
    assert_eq!(
        resume_on_second(),
        [true, true],
        "resumed on the other server"
    );
    let resumed = servers[1]
        .log
        .wait_for_count(&["client verified", "tls.resumed=true"], 2);
    assert!(resumed[0].contains("clientAuth"), "{}", resumed[0]);

    // After a rotation, tickets made with the old key still resume.
    let rotation = || {
        let rotated = rotate(TicketKeysRequest {
            rotate: true,
            ..TicketKeysRequest::default()
        });
        assert_eq!(rotated.ids[1], made.ids[0], "the old key stays, second");
    };
    change_both(&rotation, "ticket_keys=2");
    assert_eq!(resume_on_second(), [true, true], "resumed after a rotation");

    // A resumed session is verified again, against the CRL loaded now: once Client A is
    // revoked, its ticket no longer gets it in.
    let mark = servers[1].log.mark();
    change_both(&|| pki.write_crl(&crl, &["client-a"]), "revoked=1");
    let said = s_client(&pki, second, "-tls1_3", ["-sess_in", &sessions[0].1]);
    assert!(
        !said.contains("hello, Client A"),
        "a revoked client was served:\n{said}"
    );
    servers[1].log.wait_for_after(
        mark,
        &[
            "TLS handshake failed",
            "reason=\"revoked\"",
            "tls.resumed=true",
        ],
    );
    change_both(&|| pki.write_crl(&crl, &[]), "revoked=0");

    // Once the old key is dropped, those tickets no longer resume: a full handshake.
    let drop_old = || {
        let kept = rotate(TicketKeysRequest {
            keep: Some(1),
            ..TicketKeysRequest::default()
        });
        assert_eq!(kept.dropped, vec![made.ids[0].clone()]);
    };
    change_both(&drop_old, "ticket_keys=1");
    assert_eq!(
        resume_on_second(),
        [false, false],
        "resumed with a dropped key"
    );
    // The keys themselves are never logged.
    let file = std::fs::read_to_string(&keys).expect("read the keys");
    for line in file.lines().filter(|l| !l.starts_with('#')) {
        assert!(servers.iter().all(|s| !s.log.all().contains(line)));
    }
}

#[test]
fn a_ticket_key_file_every_user_may_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let pki = Pki::demo();
    ticket_keys::write(&pki.certs, &TicketKeysRequest::default()).expect("ticket keys");
    let keys = pki.certs.ticket_keys();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = testkit::run(
        Command::new(crate::SERVER)
            .args(["--certs", utf8(pki.dir()), "--addr", "127.0.0.1:0"])
            .args(["--ticket-keys", utf8(&keys)]),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("ticket.keys may be read or changed by other users (mode 644)"),
        "{said}"
    );
    assert!(said.contains("chmod 600"), "{said}");
}

/// GETs `path` on the metrics listener.
fn probe(server: &ServerProcess, path: &str) -> (u16, String) {
    plain_get(metrics_addr(server), path)
}

#[test]
fn readyz_is_ready_with_current_material_and_healthz_answers_ok() {
    let pki = Pki::demo();
    ticket_keys::write(&pki.certs, &TicketKeysRequest::default()).expect("ticket keys");
    let keys = pki.certs.ticket_keys();
    let server = start(
        &pki,
        &["--metrics", "127.0.0.1:0", "--ticket-keys", utf8(&keys)],
    );
    assert_eq!(probe(&server, "/healthz"), (200, "ok\n".to_string()));
    let (status, body) = probe(&server, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ready: accepting connections"), "{body}");
    assert!(body.contains("server certificate"), "{body}");
    assert!(body.contains("server.crt valid until"), "{body}");
    assert!(body.contains("session-ticket keys"), "{body}");
}

#[test]
fn readyz_is_not_ready_with_an_expired_certificate_or_a_stale_crl_and_says_why() {
    let pki = Pki::demo();
    let ca = pki.ca();
    pki.issue(
        &ca,
        "server",
        &leaf("localhost", Usage::Server, &SERVER_SANS, expired()),
    );
    // A CRL whose next update passed an hour ago.
    let now = OffsetDateTime::now_utc();
    let stale = mtls::ca::crl::sign(
        &ca,
        &[],
        1,
        now - time::Duration::days(2),
        now - time::Duration::hours(1),
    )
    .expect("sign");
    let crl = pki.certs.crl();
    write::atomic(&crl, stale.as_bytes(), Access::Public).expect("write the CRL");
    let server = start(
        &pki,
        &[
            "--metrics",
            "127.0.0.1:0",
            "--crl",
            utf8(&crl),
            "--reload-interval",
            "100ms",
        ],
    );
    assert_eq!(probe(&server, "/healthz").0, 200, "alive, if not ready");
    let (status, body) = probe(&server, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(!body.contains("  "), "one sentence a line: {body}");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 2, "{body}");
    assert!(
        lines[0].starts_with("not ready: the server certificate")
            && lines[0].contains("server.crt")
            && lines[0].contains("expired at")
            && lines[0].contains("clients refuse it"),
        "{body}"
    );
    assert!(
        lines[1].starts_with("not ready: the CRL") && lines[1].contains("is stale since"),
        "{body}"
    );

    // Fresh material is picked up by the reload, and readiness follows.
    let mark = server.log.mark();
    pki.write_crl(&crl, &[]);
    pki.issue(
        &ca,
        "server",
        &leaf(
            "localhost",
            Usage::Server,
            &SERVER_SANS,
            mtls::pki::Validity::days(1),
        ),
    );
    server
        .log
        .wait_for_after(mark, &["reloaded TLS material", "revoked=0"]);
    testkit::poll("/readyz to say ready", || {
        let (status, body) = probe(&server, "/readyz");
        (status == 200).then_some(body)
    });
}
