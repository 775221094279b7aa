//! The proxy toward the application: mTLS to an https upstream (our own server, nginx with
//! `ssl_verify_client on`), its refusals in words, its material reloaded; WebSockets over
//! HTTP/1.1 and HTTP/2, gRPC through an h2c upstream (real Python applications: the
//! `websockets` and `grpcio` packages), a slow response that keeps flowing, one that stops,
//! and the first-byte timeout.

use std::process::Command;
use std::time::Duration;

use crate::start;
use h2::RecvStream;
use hyper::body::Bytes;
use mtls::pki::{CertAuthority, Usage, Validity};
use mtls::write::{self, Access};
use testkit::{
    Conn, EchoUpstream, PATIENCE, PeerServer, Pki, PythonApp, ServerProcess, TrickleUpstream,
    client_config, curl_as, fetch, fingerprint, first_cert, http1, leaf, require_tool, run,
    run_python, text, utf8,
};
use tokio::runtime::Runtime;
use tokio::time::timeout;

/// Client A's XFCC ends with its URI SAN.
const CLIENT_A_URI: &str = ";URI=spiffe://mtls.demo/client-a";

/// Issues the proxy's own client certificate ("Proxy", `spiffe://mtls.demo/proxy`) from
/// `ca`, as `proxy.crt` and `proxy.key`.
fn proxy_identity(pki: &Pki, ca: &CertAuthority) {
    pki.issue(ca, "proxy", &proxy_leaf());
}

fn proxy_leaf() -> mtls::pki::LeafSpec {
    leaf(
        "Proxy",
        Usage::Client,
        &["URI:spiffe://mtls.demo/proxy"],
        Validity::days(1),
    )
}

/// A proxy to `https://localhost:PORT` presenting `proxy.crt`, trusting the demo CA for the
/// application's certificate, with `extra` flags.
fn start_proxy(pki: &Pki, port: u16, extra: &[&str]) -> ServerProcess {
    let upstream = format!("https://localhost:{port}");
    let (ca, cert, key) = (
        pki.certs.ca_cert(),
        pki.certs.cert("proxy"),
        pki.certs.key("proxy"),
    );
    let mut args = vec![
        "--upstream",
        &upstream,
        "--upstream-ca",
        utf8(&ca),
        "--upstream-cert",
        utf8(&cert),
        "--upstream-key",
        utf8(&key),
    ];
    args.extend_from_slice(extra);
    start(pki, &args)
}

/// Fetches the proxy's root as `stem`, with the library client (HTTP/2 by ALPN).
fn fetch_as(pki: &Pki, server: &ServerProcess, stem: &str) -> mtls::client::Exchange {
    fetch(
        &server.url("localhost"),
        pki.certs.ca_cert(),
        pki.pair(stem),
    )
    .expect("an answer")
}

#[test]
fn the_proxy_presents_its_certificate_to_our_own_server_and_forwards_the_clients_identity() {
    let pki = Pki::demo();
    proxy_identity(&pki, &pki.ca());
    // Our server as the application: it requires a client certificate from the demo CA.
    let app = start(&pki, &[]);
    let proxy = start_proxy(&pki, app.addr.port(), &[]);
    let reply = fetch_as(&pki, &proxy, "client-a");
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
    // The application's TLS client is the proxy...
    assert_eq!(reply.body, "hello, Proxy (spiffe://mtls.demo/proxy)\n");
    // ... and the request it got names Client A in the identity headers.
    let line = app
        .log
        .wait_for(&[" Header ", "client=\"Proxy (spiffe://mtls.demo/proxy)\""]);
    assert!(line.contains("x-forwarded-client-cert=\"Hash="), "{line}");
    assert!(line.contains(CLIENT_A_URI), "{line}");
    app.log.wait_for(&[
        "client verified",
        "client=\"Proxy (spiffe://mtls.demo/proxy)\"",
    ]);
}

#[test]
fn nginx_requiring_client_certificates_accepts_the_proxy_and_sees_the_clients_identity() {
    require_tool("nginx");
    let pki = Pki::demo();
    proxy_identity(&pki, &pki.ca());
    let nginx = PeerServer::nginx_answering(
        &pki,
        "on",
        "nginx saw $ssl_client_s_dn ($ssl_client_verify); xfcc=$http_x_forwarded_client_cert\\n",
    );
    let proxy = start_proxy(&pki, nginx.addr.port(), &[]);
    let reply = fetch_as(&pki, &proxy, "client-a");
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
    assert!(
        reply.body.starts_with(
            "nginx saw CN=Proxy,OU=Engineering,O=Proxy Company,L=Mountain,ST=Asia,C=Earth \
             (SUCCESS); xfcc=Hash="
        ),
        "{}",
        reply.body
    );
    assert!(
        reply.body.trim_end().ends_with(CLIENT_A_URI),
        "{}",
        reply.body
    );
}

#[test]
fn an_application_that_does_not_trust_the_proxy_gets_the_client_a_502_that_says_why() {
    let pki = Pki::demo();
    // The proxy's certificate comes from a CA the application does not trust.
    let other = pki.other_ca("other-ca");
    proxy_identity(&pki, &other);
    let app = start(&pki, &[]);
    let proxy = start_proxy(&pki, app.addr.port(), &[]);
    for _ in 0..2 {
        let reply = fetch_as(&pki, &proxy, "client-a");
        assert_eq!(reply.status.as_u16(), 502, "{}", reply.body);
        assert!(
            reply.body.starts_with(
                "bad gateway: the TLS connection from this proxy to the application behind it \
                 failed: the server refused our certificate (alert: unknown_ca): it does not \
                 trust the CA that issued our certificate"
            ),
            "{}",
            reply.body
        );
        // Where the proxy keeps its files is for its log, not for clients.
        assert!(!reply.body.contains(utf8(pki.dir())), "{}", reply.body);
    }
    app.log.wait_for(&["reason=\"unknown_ca\""]);
    // Logged once for the two requests (the log line is written before the 502).
    let failed = ["TLS with the upstream failed", "reason=\"peer_refused\""];
    assert_eq!(proxy.log.count(&failed), 1, "{}", proxy.log.all());
}

#[test]
fn an_application_whose_certificate_names_another_host_gets_the_client_a_502_that_says_why() {
    let pki = Pki::demo();
    proxy_identity(&pki, &pki.ca());
    pki.issue(
        &pki.ca(),
        "elsewhere",
        &leaf(
            "Elsewhere",
            Usage::Server,
            &["DNS:elsewhere.example"],
            Validity::days(1),
        ),
    );
    let (cert, key) = (pki.certs.cert("elsewhere"), pki.certs.key("elsewhere"));
    let app = start(&pki, &["--cert", utf8(&cert), "--key", utf8(&key)]);
    let proxy = start_proxy(&pki, app.addr.port(), &[]);
    let reply = fetch_as(&pki, &proxy, "client-a");
    assert_eq!(reply.status.as_u16(), 502, "{}", reply.body);
    assert!(
        reply.body.contains(
            "failed: the server's certificate is not valid for \"localhost\": it names only \
             DNS:elsewhere.example; put one of those names in --upstream"
        ),
        "{}",
        reply.body
    );
    proxy
        .log
        .wait_for(&["TLS with the upstream failed", "reason=\"name_mismatch\""]);
}

#[test]
fn the_proxys_upstream_certificate_is_reloaded_and_a_failed_reload_keeps_the_old_one() {
    let pki = Pki::demo();
    proxy_identity(&pki, &pki.other_ca("other-ca"));
    let app = start(&pki, &[]);
    // Reloads on SIGHUP only, so that each step is one reload.
    let proxy = start_proxy(&pki, app.addr.port(), &["--reload-interval", "0"]);
    assert_eq!(fetch_as(&pki, &proxy, "client-a").status.as_u16(), 502);

    // The rotation's first write: a certificate from the demo CA, beside the old key.
    let renewed = pki.ca().issue(&proxy_leaf()).expect("issue");
    let (cert, key) = (pki.certs.cert("proxy"), pki.certs.key("proxy"));
    write::atomic(&cert, renewed.cert_pem.as_bytes(), Access::Public).expect("write");
    let mark = proxy.log.mark();
    proxy.signal("HUP");
    let line = proxy.log.wait_for_after(mark, &["reload failed"]);
    assert!(line.contains("does not match the certificate"), "{line}");
    let reply = fetch_as(&pki, &proxy, "client-a");
    assert_eq!(reply.status.as_u16(), 502, "the old material stays");

    // The second write completes it.
    write::atomic(&key, renewed.key_pem.as_bytes(), Access::Secret).expect("write");
    let mark = proxy.log.mark();
    proxy.signal("HUP");
    let sha256 = format!("upstream.cert.sha256={}", fingerprint(&first_cert(&cert)));
    proxy
        .log
        .wait_for_after(mark, &["reloaded TLS material", &sha256]);
    let reply = fetch_as(&pki, &proxy, "client-a");
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
    assert_eq!(reply.body, "hello, Proxy (spiffe://mtls.demo/proxy)\n");
}

#[test]
fn a_websocket_echo_goes_through_the_proxy_with_the_identity_on_its_upgrade() {
    let pki = Pki::demo();
    let app = PythonApp::serve("ws_app.py", &["websockets"]);
    let upstream = format!("http://{}", app.addr);
    let proxy = start(
        &pki,
        &[
            "--upstream",
            &upstream,
            "--allow-uri",
            "spiffe://mtls.demo/client-a",
        ],
    );
    let url = format!("wss://localhost:{}/chat", proxy.addr.port());
    let connect = |stem: &str| {
        let (cert, key) = (pki.certs.cert(stem), pki.certs.key(stem));
        let ca = pki.certs.ca_cert();
        let args = [
            "connect",
            &url,
            utf8(&ca),
            utf8(&cert),
            utf8(&key),
            "hello through the proxy",
        ];
        run_python("ws_app.py", &args)
    };
    let (out, dump) = connect("client-a");
    assert!(out.status.success(), "{dump}\napp:\n{}", app.log.all());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{dump}");
    assert!(lines[0].starts_with("upgraded xfcc=Hash="), "{dump}");
    assert!(lines[0].ends_with(CLIENT_A_URI), "{dump}");
    assert_eq!(lines[1], "echo: hello through the proxy");
    proxy
        .log
        .wait_for(&["tunnel open", "upgrade=\"websocket\"", "Client A"]);

    // A client the policy denies gets its 403; the application never sees an upgrade.
    let (out, dump) = connect("client-b");
    assert_eq!(out.status.code(), Some(3), "{dump}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "refused: HTTP 403"
    );
    assert_eq!(app.out.count(&["upgraded"]), 1, "{}", app.out.all());
}

#[test]
fn a_websocket_over_http2_extended_connect_reaches_the_application_as_an_upgrade() {
    let pki = Pki::demo();
    let app = PythonApp::serve("ws_app.py", &["websockets"]);
    let proxy = start(&pki, &["--upstream", &format!("http://{}", app.addr)]);
    let rt = Runtime::new().expect("a runtime");
    let send = crate::proxy::h2_client(&rt, &pki, proxy.addr);
    let uri = format!("https://localhost:{}/chat", proxy.addr.port());
    rt.block_on(async {
        // One plain request first: by its answer the server's SETTINGS have arrived (a
        // WebSocket application answers a plain GET 426 Upgrade Required).
        let (status, _) = crate::proxy::h2_get(&send, &uri).await;
        assert_eq!(status, 426);
        let mut send = timeout(PATIENCE, send.ready())
            .await
            .expect("ready in time")
            .expect("ready");
        assert!(
            send.is_extended_connect_protocol_enabled(),
            "the proxy offers RFC 8441"
        );
        let request = hyper::Request::connect(&uri)
            .header("sec-websocket-version", "13")
            .extension(h2::ext::Protocol::from_static("websocket"))
            .body(())
            .expect("a request");
        let (response, mut stream) = send.send_request(request, false).expect("sent");
        let response = timeout(PATIENCE, response)
            .await
            .expect("an answer in time")
            .expect("an answer");
        assert_eq!(response.status(), 200);
        let mut frames = Frames::new(response.into_body());
        let first = frames.next_text().await;
        assert!(first.starts_with("upgraded xfcc=Hash="), "{first}");
        assert!(first.ends_with(CLIENT_A_URI), "{first}");
        stream
            .send_data(masked_text("hello over HTTP/2"), false)
            .expect("send a frame");
        assert_eq!(frames.next_text().await, "hello over HTTP/2");
    });
    proxy
        .log
        .wait_for(&["tunnel open", "upgrade=\"websocket\""]);
}

/// A WebSocket text frame from a client (masked, RFC 6455 §5.3), of fewer than 126 bytes.
fn masked_text(text: &str) -> Bytes {
    let mask = [0x5a, 0xc3, 0x17, 0x88];
    let len = u8::try_from(text.len()).expect("a short frame");
    assert!(len < 126, "a short frame");
    let mut frame = vec![0x81, 0x80 | len];
    frame.extend_from_slice(&mask);
    frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    Bytes::from(frame)
}

/// The first whole WebSocket text frame from the server (unmasked, RFC 6455 §5.2) at the
/// start of `buffered`: its text and its length in bytes, once all of it is in.
fn text_frame(buffered: &[u8]) -> Option<(String, usize)> {
    let (len, start) = match *buffered.get(1)? & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes([*buffered.get(2)?, *buffered.get(3)?])),
            4,
        ),
        127 => panic!("no frame here is that long"),
        n => (usize::from(n), 2),
    };
    let payload = buffered.get(start..start + len)?;
    assert_eq!(buffered[0], 0x81, "a final text frame");
    Some((String::from_utf8_lossy(payload).into_owned(), start + len))
}

/// The server's WebSocket text frames on an HTTP/2 stream.
struct Frames {
    body: RecvStream,
    buffered: Vec<u8>,
}

impl Frames {
    fn new(body: RecvStream) -> Self {
        Self {
            body,
            buffered: Vec::new(),
        }
    }

    async fn next_text(&mut self) -> String {
        loop {
            if let Some((text, used)) = text_frame(&self.buffered) {
                self.buffered.drain(..used);
                return text;
            }
            let chunk = timeout(PATIENCE, self.body.data())
                .await
                .expect("a frame in time")
                .expect("the stream is open")
                .expect("a chunk");
            let _ = self.body.flow_control().release_capacity(chunk.len());
            self.buffered.extend_from_slice(&chunk);
        }
    }
}

#[test]
fn a_websocket_tunnel_ends_when_a_reload_revokes_its_client() {
    let pki = Pki::demo();
    let crl = pki.certs.crl();
    pki.write_crl(&crl, &[]);
    let app = PythonApp::serve("ws_app.py", &["websockets"]);
    let proxy = start(
        &pki,
        &[
            "--upstream",
            &format!("http://{}", app.addr),
            "--crl",
            utf8(&crl),
            "--reload-interval",
            "0",
        ],
    );
    let config = client_config(&pki, Some("client-a"), http1());
    let mut conn = Conn::open(&config, proxy.addr).expect("connect");
    conn.send(
        b"GET /chat HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .expect("send the upgrade");
    let reply = conn.read_reply().expect("an answer");
    assert_eq!(reply.status, 101, "{}", reply.body);
    assert_eq!(reply.header("upgrade"), Some("websocket"));
    let mut buffered = Vec::new();
    let mut first = None;
    for _ in 0..4096 {
        if let Some((text, _)) = text_frame(&buffered) {
            first = Some(text);
            break;
        }
        buffered.extend(conn.read_bytes(1).expect("a frame"));
    }
    let first = first.expect("a whole frame within 4 KiB");
    assert!(first.ends_with(CLIENT_A_URI), "{first}");
    proxy.log.wait_for(&["tunnel open"]);

    // Client A is revoked: after the reload its tunnel ends, as its connection would.
    pki.write_crl(&crl, &["client-a"]);
    proxy.signal("HUP");
    proxy.log.wait_for(&[
        "the client no longer verifies after a reload",
        "reason=\"revoked\"",
    ]);
    let _ = conn.read_to_close();
    proxy.log.wait_for(&[
        "tunnel ended",
        "ended=\"closed: its client no longer verifies\"",
    ]);
}

#[test]
fn grpc_calls_go_through_an_h2c_upstream_and_a_denied_client_gets_permission_denied() {
    let pki = Pki::demo();
    let app = PythonApp::serve("grpc_app.py", &["grpc"]);
    let proxy = start(
        &pki,
        &[
            "--upstream",
            &format!("h2c://{}", app.addr),
            "--allow-uri",
            "spiffe://mtls.demo/client-a",
        ],
    );
    let target = format!("localhost:{}", proxy.addr.port());
    let call = |stem: &str, name: &str| {
        let (cert, key) = (pki.certs.cert(stem), pki.certs.key(stem));
        let ca = pki.certs.ca_cert();
        let args = ["call", &target, utf8(&ca), utf8(&cert), utf8(&key), name];
        let (out, dump) = run_python("grpc_app.py", &args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code(), stdout, dump)
    };
    // A unary call and a server-streaming call; the application sees Client A's XFCC.
    let (code, stdout, dump) = call("client-a", "Alice");
    assert_eq!(code, Some(0), "{dump}\napp:\n{}", app.log.all());
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{dump}");
    assert!(lines[0].starts_with("hello Alice; xfcc=Hash="), "{dump}");
    assert!(lines[0].ends_with(CLIENT_A_URI), "{dump}");
    assert_eq!(lines[1..], ["Alice 1", "Alice 2", "Alice 3"]);

    // A status the application sends in trailers, after data, reaches the client.
    let (code, stdout, dump) = call("client-a", "nobody");
    assert_eq!(code, Some(3), "{dump}");
    assert!(
        stdout.ends_with("nobody 1\nerror code=NOT_FOUND details=nobody is here\n"),
        "{dump}"
    );

    // A client the policy denies gets gRPC's PERMISSION_DENIED, with the reason.
    let (code, stdout, dump) = call("client-b", "Bob");
    assert_eq!(code, Some(3), "{dump}");
    assert_eq!(
        stdout.trim(),
        "error code=PERMISSION_DENIED details=forbidden: Client B \
         (spiffe://mtls.demo/client-b) is not admitted: no rule matched"
    );
}

#[test]
fn a_response_that_keeps_trickling_is_not_cut_and_one_that_stops_is() {
    require_tool("curl");
    let pki = Pki::demo();
    // Eight pieces 400 ms apart: 3.2 s in all, longer than the 2 s stall timeout.
    let slow = TrickleUpstream::start(8, Duration::from_millis(400), false);
    let proxy = start(&pki, &["--upstream", &slow.url(), "--idle-timeout", "2s"]);
    let out = curl_as(
        &pki.certs,
        "client-a",
        &["--http2", &proxy.url("localhost")],
    );
    assert!(out.status.success(), "{}", text(&out));
    let expected: String = (1..=8).map(|i| format!("piece {i}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    assert_eq!(
        proxy.log.count(&["stopped flowing"]),
        0,
        "{}",
        proxy.log.all()
    );

    // Two pieces, then nothing: the proxy ends the response as an error after the stall
    // timeout; the client sees it cut short, never a complete body.
    let stuck = TrickleUpstream::start(2, Duration::from_millis(50), true);
    let proxy = start(&pki, &["--upstream", &stuck.url(), "--idle-timeout", "1s"]);
    let out = curl_as(
        &pki.certs,
        "client-a",
        &["--http1.1", &proxy.url("localhost")],
    );
    assert_eq!(out.status.code(), Some(18), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piece 1\npiece 2\n");
    let line = proxy
        .log
        .wait_for(&["the application's response stopped flowing"]);
    assert!(line.contains("reason=\"stall_timeout\""), "{line}");
    assert!(line.contains("stall_timeout=1s"), "{line}");
}

#[test]
fn an_application_that_does_not_start_its_response_in_time_gets_the_client_a_504() {
    let pki = Pki::demo();
    let app = EchoUpstream::gated();
    let proxy = start(
        &pki,
        &[
            "--upstream",
            &app.url(),
            "--upstream-first-byte-timeout",
            "1s",
        ],
    );
    let url = format!("{}hold/forever", proxy.url("localhost"));
    let reply = fetch(&url, pki.certs.ca_cert(), pki.pair("client-a")).expect("an answer");
    app.release();
    assert_eq!(reply.status.as_u16(), 504, "{}", reply.body);
    assert_eq!(
        reply.body,
        "gateway timeout: the application behind this proxy did not start its response within 1s\n"
    );
    let line = proxy.log.wait_for(&["upstream did not respond in time"]);
    assert!(line.contains("first_byte_timeout=1s"), "{line}");
}

#[test]
fn upstream_tls_files_without_an_https_upstream_and_the_reverse_are_usage_errors() {
    let pki = Pki::demo();
    let server = |extra: &[&str]| {
        let mut cmd = Command::new(crate::SERVER);
        cmd.args(["--certs", utf8(pki.dir()), "--addr", "127.0.0.1:0"])
            .args(extra);
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let ca = pki.certs.ca_cert();
    let stderr = server(&[
        "--upstream",
        "https://localhost:9443",
        "--upstream-ca",
        utf8(&ca),
    ]);
    assert!(
        stderr.contains(
            "error: --upstream https://localhost:9443 needs --upstream-cert, --upstream-key: the \
             CA that issued the application's certificate (--upstream-ca), and the certificate \
             and key this proxy presents to it"
        ),
        "{stderr}"
    );
    let stderr = server(&[
        "--upstream",
        "http://127.0.0.1:9000",
        "--upstream-ca",
        utf8(&ca),
    ]);
    assert!(
        stderr.contains(
            "error: --upstream-ca is for an https:// upstream only; write --upstream \
             https://HOST:PORT, or leave it out"
        ),
        "{stderr}"
    );
}
