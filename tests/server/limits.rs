//! Limits against hostile or broken peers: handshake, header and idle timeouts, header
//! size, the connection limit, and the drain on shutdown. Every load loop is bounded in
//! count, and every wait in time; nothing here asserts how fast anything was (durations are
//! printed for the record).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::start;
use mtls::tls::ClientPolicy;
use testkit::{Conn, EchoUpstream, client_config, http1, metrics_addr, plain_get, poll, sample};
use testkit::{PATIENCE, Pki, fetch};

fn good_request(pki: &Pki, addr: SocketAddr) {
    let url = format!("https://localhost:{}/", addr.port());
    let ok = fetch(&url, pki.certs.ca_cert(), pki.pair("client-a")).expect("served");
    assert_eq!(ok.status.as_u16(), 200);
}

/// Reads until the server closes (EOF or reset); panics if it has not after PATIENCE.
fn wait_for_close(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("the server kept a connection open for {PATIENCE:?}")
            }
            Err(_) => return, // reset: closed as well
        }
    }
}

/// The first bytes of a TLS record that promises 512 bytes and never sends them.
const STALLED_HELLO: [u8; 9] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc];

#[test]
fn silent_and_stalled_peers_are_closed_after_the_handshake_timeout_while_a_good_client_is_served() {
    let pki = Pki::demo();
    // Long enough for the good client on a loaded machine.
    let server = start(&pki, &["--handshake-timeout", "3s"]);
    let started = Instant::now();
    let mut peers: Vec<TcpStream> = (0..50)
        .map(|i| {
            let mut s = TcpStream::connect(server.addr).expect("connect");
            if i % 5 == 0 {
                s.write_all(&STALLED_HELLO).expect("write");
            }
            s
        })
        .collect();

    good_request(&pki, server.addr);

    for peer in &mut peers {
        wait_for_close(peer);
    }
    eprintln!(
        "50 silent or stalled peers closed {:?} after they connected (handshake timeout 3s)",
        started.elapsed()
    );
    let lines = server
        .log
        .wait_for_count(&["TLS handshake failed", "reason=\"timeout\""], 50);
    assert!(
        lines[0].contains("did not finish the TLS handshake within 3s"),
        "{}",
        lines[0]
    );
    good_request(&pki, server.addr);
}

/// Bytes no TLS server can take for a ClientHello, varied by `seed`.
fn garbage(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes: Vec<u8> = (0..512)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect();
    match seed % 3 {
        // Not a TLS content type at all.
        0 => {
            bytes[0] = [0x00, 0x01, 0x42, 0x7f, 0x99, 0xff][usize::try_from(seed % 6).unwrap_or(0)]
        }
        // A handshake record longer than TLS allows.
        1 => bytes[..5].copy_from_slice(&[0x16, 0x03, 0x01, 0xff, 0xff]),
        // A complete record whose handshake message is not a ClientHello.
        _ => bytes[..6].copy_from_slice(&[0x16, 0x03, 0x01, 0x01, 0xfb, 0x63]),
    }
    bytes
}

#[test]
fn two_hundred_garbage_connections_do_not_disturb_a_good_client() {
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    let addr = server.addr;
    let started = Instant::now();
    let attackers: Vec<_> = (0..8u64)
        .map(|t| {
            thread::spawn(move || {
                for i in 0..25u64 {
                    let mut s = TcpStream::connect(addr).expect("connect");
                    // The server may refuse before it has read everything.
                    let _ = s.write_all(&garbage(t * 25 + i));
                    wait_for_close(&mut s);
                }
            })
        })
        .collect();
    for _ in 0..5 {
        good_request(&pki, addr);
    }
    for a in attackers {
        a.join().expect("attacker thread");
    }
    eprintln!(
        "200 garbage connections (8 at a time) were all refused within {:?}",
        started.elapsed()
    );
    let refused = server
        .log
        .wait_for_count(&["TLS handshake failed", "reason=\"protocol\""], 200);
    assert_eq!(refused.len(), 200, "{}", server.log.all());
    assert_eq!(server.log.count(&["reason=\"timeout\""]), 0);
    good_request(&pki, addr);
}

#[test]
fn a_request_head_over_the_limit_gets_431() {
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    let config = client_config(&pki, Some("client-a"), http1());
    let mut conn = Conn::open(&config, server.addr).expect("connect");
    // 70 KiB against the default 64 KiB: over the limit, yet small enough to sit in the
    // socket buffers, so the server can answer before it closes.
    let head = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "x".repeat(70 * 1024)
    );
    conn.send(head.as_bytes()).expect("send the head");
    let reply = conn.read_reply().expect("a response");
    assert_eq!(reply.status, 431, "{}", reply.body);
    let line = server.log.wait_for(&["reason=\"header_too_large\""]);
    assert!(line.contains("max_header_bytes=65536"), "{line}");
    assert!(line.contains("answered=true"), "{line}");
    assert!(line.contains("answered 431"), "{line}");
    good_request(&pki, server.addr);
}

#[test]
fn a_request_head_that_stalls_is_closed_after_the_header_timeout_but_idleness_is_not() {
    let pki = Pki::demo();
    let server = start(&pki, &["--header-timeout", "3s", "--idle-timeout", "60s"]);
    let config = client_config(&pki, Some("client-a"), http1());

    let mut idle = Conn::open(&config, server.addr).expect("connect");
    assert_eq!(idle.request("/", &[]).expect("request").status, 200);

    let mut slow = Conn::open(&config, server.addr).expect("connect");
    slow.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .expect("half a head");
    // Either a clean close or a reset: the point is that it ends.
    let _ = slow.wait_closed();
    let line = server.log.wait_for(&["reason=\"header_timeout\""]);
    assert!(line.contains("header_timeout=3s"), "{line}");

    // `idle` has now waited longer than the header timeout without starting a request: it
    // is governed by the idle timeout alone and still works.
    assert_eq!(idle.request("/", &[]).expect("still open").status, 200);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout_but_a_long_request_is_not() {
    let pki = Pki::demo();
    let upstream = EchoUpstream::gated();
    let server = start(
        &pki,
        &["--idle-timeout", "3s", "--upstream", &upstream.url()],
    );
    let config = client_config(&pki, Some("client-a"), http1());

    // A request that takes longer than the idle timeout: the upstream holds it.
    let long = {
        let config = config.clone();
        let addr = server.addr;
        thread::spawn(move || {
            let mut c = Conn::open(&config, addr).expect("connect");
            c.request("/hold/slow", &[])
                .expect("the long request is answered")
        })
    };
    poll("the long request to reach the upstream", || {
        (!upstream.requests().is_empty()).then_some(())
    });

    let mut idle = Conn::open(&config, server.addr).expect("connect");
    assert_eq!(idle.request("/", &[]).expect("request").status, 200);
    idle.wait_closed().expect("a clean close (close_notify)");
    let line = server
        .log
        .wait_for(&["closing idle connection", "reason=\"idle_timeout\""]);
    assert!(line.contains("idle_timeout=3s"), "{line}");

    // The idle connection, opened after the long request started, has been closed for
    // idleness; the long request's connection was never idle, so it is answered.
    upstream.release();
    let reply = long.join().expect("long request thread");
    assert_eq!(reply.status, 200);
    assert!(
        reply.body.starts_with("GET /hold/slow HTTP/1.1"),
        "{}",
        reply.body
    );
}

#[test]
fn beyond_max_connections_new_connections_wait_and_are_served_when_one_closes() {
    let pki = Pki::demo();
    let server = start(
        &pki,
        &["--max-connections", "5", "--metrics", "127.0.0.1:0"],
    );
    let metrics = metrics_addr(&server);
    let config = client_config(&pki, Some("client-a"), http1());
    let mut held: Vec<Conn> = (0..5)
        .map(|_| {
            let mut c = Conn::open(&config, server.addr).expect("connect");
            assert_eq!(c.request("/", &[]).expect("request").status, 200);
            c
        })
        .collect();
    server.log.wait_for_count(&["State"], 5);

    let (connected, tcp_done) = mpsc::channel();
    let sixth = {
        let config = config.clone();
        let addr = server.addr;
        thread::spawn(move || {
            // The kernel completes the TCP handshake (the accept queue); TLS needs the server.
            let tcp = TcpStream::connect(addr).expect("the sixth connects at the TCP level");
            let _ = connected.send(());
            let mut c = Conn::over(&config, tcp).expect("the sixth is accepted once a slot frees");
            c.request("/", &[]).expect("the sixth is served").status
        })
    };
    tcp_done
        .recv_timeout(PATIENCE)
        .expect("the sixth TCP connect returned");
    let line = server.log.wait_for(&["connection limit reached"]);
    assert!(line.contains("max_connections=5"), "{line}");

    // The sixth has connected and sent its ClientHello. A server that ignored the limit
    // would accept it and finish its handshake in milliseconds; watch for a while (a
    // bounded number of scrapes) that it does not, while the server stays responsive.
    for _ in 0..25 {
        let (status, scrape) = plain_get(metrics, "/metrics");
        assert_eq!(status, 200);
        assert_eq!(
            sample(&scrape, "mtls_open_connections"),
            Some(5.0),
            "{scrape}"
        );
        assert_eq!(
            server.log.count(&["State"]),
            5,
            "a sixth connection was served beyond the limit:\n{}",
            server.log.all()
        );
        assert!(
            !sixth.is_finished(),
            "the sixth was served beyond the limit"
        );
        thread::sleep(Duration::from_millis(20));
    }

    drop(held.pop());
    assert_eq!(sixth.join().expect("sixth thread"), 200);
    server.log.wait_for(&["below the connection limit again"]);
    server.log.wait_for_count(&["State"], 6);
    for c in &mut held {
        assert_eq!(c.request("/", &[]).expect("request").status, 200);
    }
}

#[test]
fn shutdown_lets_a_request_in_flight_finish_and_refuses_new_connections() {
    let pki = Pki::demo();
    let upstream = EchoUpstream::gated();
    let server = start(
        &pki,
        &["--upstream", &upstream.url(), "--drain-timeout", "20s"],
    );
    let config = client_config(&pki, Some("client-a"), http1());
    let in_flight = {
        let addr = server.addr;
        thread::spawn(move || {
            let mut c = Conn::open(&config, addr).expect("connect");
            c.request("/hold/in-flight", &[])
                .expect("answered during the drain")
        })
    };
    poll("the request to reach the upstream", || {
        (!upstream.requests().is_empty()).then_some(())
    });
    server.signal("TERM");
    server.log.wait_for(&[
        "shutting down: finishing requests in flight",
        "connections=1",
    ]);
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "a draining server must not accept new connections"
    );
    upstream.release();
    let reply = in_flight.join().expect("thread");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("connection"),
        Some("close"),
        "{:?}",
        reply.headers
    );
    server.log.wait_for(&["all connections closed"]);
    let log = server.log.clone();
    let status = server.terminate();
    assert!(status.success(), "{status}:\n{}", log.all());
}

#[test]
fn the_drain_timeout_closes_a_request_that_takes_too_long() {
    let pki = Pki::demo();
    let upstream = EchoUpstream::gated();
    let server = start(
        &pki,
        &["--upstream", &upstream.url(), "--drain-timeout", "1s"],
    );
    let config = client_config(&pki, Some("client-a"), http1());
    let stuck = {
        let addr = server.addr;
        thread::spawn(move || {
            let mut c = Conn::open(&config, addr).expect("connect");
            c.request("/hold/stuck", &[]).map(|r| r.status)
        })
    };
    poll("the request to reach the upstream", || {
        (!upstream.requests().is_empty()).then_some(())
    });
    server.signal("TERM");
    let line = server
        .log
        .wait_for(&["drain timeout passed; closing the remaining connections"]);
    assert!(line.contains("connections=1"), "{line}");
    let outcome = stuck.join().expect("thread");
    assert!(
        outcome.is_err(),
        "the stuck request was answered: {outcome:?}"
    );
    let log = server.log.clone();
    let status = server.terminate();
    assert!(status.success(), "{status}:\n{}", log.all());
}

#[test]
fn a_request_whose_body_stalls_is_closed_after_the_stall_timeout() {
    let pki = Pki::demo();
    let upstream = EchoUpstream::start();
    let server = start(
        &pki,
        &["--upstream", &upstream.url(), "--idle-timeout", "3s"],
    );
    let config = client_config(&pki, Some("client-a"), http1());
    let mut stalled = Conn::open(&config, server.addr).expect("connect");
    // The head promises 100 bytes of body; a few arrive, then nothing.
    stalled
        .send(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nfirst")
        .expect("send the head and the first bytes");
    // Either a clean close or a reset: the point is that it ends, well before the proxy's
    // 60 s response timeout.
    let _ = stalled.wait_closed();
    let line = server
        .log
        .wait_for(&["reason=\"stall_timeout\"", "made no progress"]);
    assert!(line.contains("stall_timeout=3s"), "{line}");
    // A client that sends its body is served on the same server.
    let mut good = Conn::open(&config, server.addr).expect("connect");
    good.send(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello")
        .expect("send");
    let reply = good.read_reply().expect("a reply");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.ends_with("hello"), "{}", reply.body);
}

/// The client connection preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

#[test]
fn an_http2_client_that_never_acknowledges_is_dropped_and_streams_are_capped() {
    let pki = Pki::demo();
    let server = start(&pki, &["--idle-timeout", "2s"]);
    // Offers h2 first, as the client library does.
    let config = client_config(&pki, Some("client-a"), ClientPolicy::default());
    let mut conn = Conn::open(&config, server.addr).expect("connect");
    assert_eq!(conn.alpn().as_deref(), Some(&b"h2"[..]));
    conn.send(H2_PREFACE).expect("send the preface");
    // The server's first frame is its SETTINGS: it caps concurrent streams at 100.
    let head = conn.read_bytes(9).expect("a frame header");
    assert_eq!(head[3], 0x4, "not a SETTINGS frame: {head:?}");
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let payload = conn.read_bytes(len).expect("the SETTINGS payload");
    let max_streams = payload
        .chunks(6)
        .find(|s| s[..2] == [0x00, 0x03])
        .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
    assert_eq!(max_streams, Some(100), "{payload:?}");
    // From now on this client acknowledges nothing: not the SETTINGS, not the PING that a
    // graceful close (GOAWAY) sends and waits for. It is closed nonetheless.
    let _ = conn.read_to_close();
    server
        .log
        .wait_for(&["closing idle connection", "reason=\"idle_timeout\""]);
}

#[test]
fn the_protocol_follows_alpn_and_an_http2_preface_without_it_is_not_served_as_http2() {
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    let base = client_config(&pki, Some("client-a"), http1());
    let mut none = (*base).clone();
    none.alpn_protocols.clear();
    for (what, config) in [
        ("no ALPN", std::sync::Arc::new(none)),
        ("ALPN http/1.1", base.clone()),
    ] {
        let mut conn = Conn::open(&config, server.addr).expect("connect");
        assert_ne!(conn.alpn().as_deref(), Some(&b"h2"[..]), "{what}");
        conn.send(H2_PREFACE).expect("send the preface");
        let answer = conn.read_to_close();
        let text = String::from_utf8_lossy(&answer);
        // An HTTP/2 server's first bytes are a SETTINGS frame; this one answers, if at all,
        // in HTTP/1.1.
        assert!(
            answer.is_empty() || text.starts_with("HTTP/1.1 "),
            "{what}: the preface was served as HTTP/2: {answer:?}"
        );
    }
    good_request(&pki, server.addr);
}

#[test]
fn a_denied_client_gets_its_403_and_then_its_connection_closes() {
    let pki = Pki::demo();
    let server = start(&pki, &["--allow-uri", "spiffe://mtls.demo/client-a"]);
    let config = client_config(&pki, Some("client-b"), http1());
    let mut conn = Conn::open(&config, server.addr).expect("connect");
    let reply = conn.request("/", &[]).expect("a 403");
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(
        reply.header("connection"),
        Some("close"),
        "{:?}",
        reply.headers
    );
    conn.wait_closed().expect("a clean close");
}

#[test]
fn a_refused_connection_lingers_outside_the_connection_limit() {
    let pki = Pki::demo();
    let server = start(
        &pki,
        &["--max-connections", "1", "--metrics", "127.0.0.1:0"],
    );
    let metrics = metrics_addr(&server);
    // Garbage, then silence: the server refuses it and lingers (up to 2 s) for the peer to
    // read the alert and close, which this peer does not do.
    let mut peer = TcpStream::connect(server.addr).expect("connect");
    peer.write_all(&garbage(0)).expect("write");
    server
        .log
        .wait_for(&["TLS handshake failed", "reason=\"protocol\""]);
    poll("a lingering connection that holds no slot", || {
        let (status, scrape) = plain_get(metrics, "/metrics");
        assert_eq!(status, 200);
        let lingering = sample(&scrape, "mtls_lingering_connections");
        let open = sample(&scrape, "mtls_open_connections");
        (lingering == Some(1.0) && open == Some(0.0)).then_some(())
    });
    // The only slot is free for a good client meanwhile.
    good_request(&pki, server.addr);
    drop(peer);
}

/// Opens `n` TCP connections that never send a byte.
fn silent(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect()
}

#[test]
fn as_many_silent_connections_as_the_connection_limit_do_not_lock_out_a_good_client() {
    let pki = Pki::demo();
    // A handshake timeout far beyond the test's patience: the good client must not have to
    // wait for the silent ones to time out.
    let server = start(
        &pki,
        &[
            "--max-connections",
            "200",
            "--handshake-timeout",
            "120s",
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let _silent = silent(server.addr, 200);
    let metrics = metrics_addr(&server);
    poll("the server to take in the 200 silent connections", || {
        let (_, scrape) = plain_get(metrics, "/metrics");
        (sample(&scrape, "mtls_handshaking_connections") == Some(200.0)).then_some(())
    });
    good_request(&pki, server.addr);
}

#[test]
fn beyond_the_handshake_budget_the_oldest_silent_connection_makes_room() {
    let pki = Pki::demo();
    let server = start(
        &pki,
        &[
            "--max-connections",
            "200",
            "--max-handshakes",
            "50",
            "--handshake-timeout",
            "120s",
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let mut peers = silent(server.addr, 400);
    let metrics = metrics_addr(&server);
    let (_, scrape) = poll("350 silent connections closed to make room", || {
        let (status, scrape) = plain_get(metrics, "/metrics");
        let evicted = sample(&scrape, "mtls_limits_hit_total{limit=\"handshake_budget\"}");
        (evicted >= Some(350.0)).then_some((status, scrape))
    });
    assert!(
        sample(&scrape, "mtls_handshaking_connections") <= Some(50.0),
        "{scrape}"
    );
    let line = server.log.wait_for(&[
        "too many connections in their handshake",
        "reason=\"handshake_budget\"",
    ]);
    assert!(line.contains("--max-handshakes"), "{line}");
    // The first to come are the first closed.
    wait_for_close(&mut peers[0]);
    good_request(&pki, server.addr);
}
