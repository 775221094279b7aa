//! Helpers for the server's production-feature tests (policy, reload, limits, proxy,
//! metrics) on top of [`crate::common`]: a blocking TLS client that keeps its connection
//! open, a plain-HTTP upstream that echoes what it got, metrics scrapes, and bounded polls.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use mtls::certinfo::CertInfo;
use mtls::tls::{ClientPolicy, Identity, SeenChain, Trust};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::common::{PATIENCE, Pki, ServerProcess};

pub const SERVER: &str = env!("CARGO_BIN_EXE_server");

/// Starts the server on the demo set in `pki`, with `extra` flags.
pub fn start(pki: &Pki, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--certs", pki.dir().to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    ServerProcess::start(SERVER, &args)
}

/// A client config presenting `stem` (none when `None`), trusting the demo CA. Reuse one to
/// resume sessions.
pub fn client_config(pki: &Pki, stem: Option<&str>, policy: ClientPolicy) -> Arc<ClientConfig> {
    let trust = Trust::load(&pki.certs.ca_cert()).expect("load the CA");
    let identity = stem.map(|s| {
        Identity::load(&pki.certs.cert(s), &pki.certs.key(s), s).expect("load the identity")
    });
    mtls::tls::client_config(identity.as_ref(), &trust, SeenChain::default(), policy)
        .expect("client config")
}

/// HTTP/1.1 only, so the blocking client below can speak it.
pub fn http1() -> ClientPolicy {
    ClientPolicy {
        http1_only: true,
        ..ClientPolicy::default()
    }
}

/// A response, as read by [`Conn::request`].
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One blocking TLS connection that stays open between requests (HTTP/1.1 keep-alive).
pub struct Conn {
    tls: StreamOwned<ClientConnection, TcpStream>,
    buffered: Vec<u8>,
}

impl Conn {
    /// Connects to `addr` as `localhost` and finishes the handshake.
    pub fn open(config: &Arc<ClientConfig>, addr: SocketAddr) -> io::Result<Self> {
        Self::over(config, TcpStream::connect(addr)?)
    }

    /// Finishes a TLS handshake as `localhost` over a TCP connection already made.
    pub fn over(config: &Arc<ClientConfig>, tcp: TcpStream) -> io::Result<Self> {
        tcp.set_read_timeout(Some(PATIENCE))?;
        tcp.set_write_timeout(Some(PATIENCE))?;
        let name = ServerName::try_from("localhost").expect("server name");
        let conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
        let mut tls = StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Ok(Self {
            tls,
            buffered: Vec::new(),
        })
    }

    /// The server's leaf certificate, as it presented it.
    pub fn server_cert(&self) -> CertificateDer<'static> {
        self.tls
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .expect("the server presented a certificate")
            .clone()
            .into_owned()
    }

    /// Whether this connection resumed an earlier session.
    pub fn resumed(&self) -> bool {
        matches!(
            self.tls.conn.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed)
        )
    }

    /// The ALPN protocol agreed, if any.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.tls.conn.alpn_protocol().map(<[u8]>::to_vec)
    }

    /// Reads exactly `n` raw bytes (after any already buffered).
    pub fn read_bytes(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buffered.len() < n {
            self.fill()?;
        }
        Ok(self.buffered.drain(..n).collect())
    }

    /// Reads raw bytes until the server closes the connection (at most [`PATIENCE`]); an
    /// error after some bytes (a reset) ends the read too.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        loop {
            match self.fill() {
                Ok(()) => continue,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    panic!("the server did not close the connection within {PATIENCE:?}")
                }
                Err(_) => return std::mem::take(&mut self.buffered),
            }
        }
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.tls.write_all(bytes)?;
        self.tls.flush()
    }

    /// `GET path` with `headers`, then reads the response (Content-Length framed).
    pub fn request(&mut self, path: &str, headers: &[(&str, &str)]) -> io::Result<Reply> {
        let mut head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n");
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.send(head.as_bytes())?;
        self.read_reply()
    }

    /// Reads one response.
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        let end = loop {
            if let Some(i) = find(&self.buffered, b"\r\n\r\n") {
                break i;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buffered[..end]).into_owned();
        self.buffered.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line in {head:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while self.buffered.len() < len {
            self.fill()?;
        }
        let body = String::from_utf8_lossy(&self.buffered[..len]).into_owned();
        self.buffered.drain(..len);
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 16 * 1024];
        let n = self.tls.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        self.buffered.extend_from_slice(&buf[..n]);
        Ok(())
    }

    /// Waits (at most [`PATIENCE`]) for the server to close the connection; returns how it
    /// ended: `Ok(())` for a clean close, the error otherwise.
    pub fn wait_closed(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            match self.tls.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    panic!("the server did not close the connection within {PATIENCE:?}")
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The SHA-256 fingerprint the server's log and `CertInfo` print for `der`.
pub fn fingerprint(der: &[u8]) -> String {
    CertInfo::parse(der).expect("parse").fingerprint()
}

/// The first certificate in a PEM file, DER.
pub fn first_cert(path: &Path) -> CertificateDer<'static> {
    mtls::pem::certificates(path, "a test certificate").expect("read")[0].clone()
}

/// Polls `check` every 20 ms until it returns `Some`, for at most [`PATIENCE`].
pub fn poll<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET path` over plain HTTP/1.0 with std only; returns (status, body).
pub fn plain_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, body.to_string())
}

/// What the echo upstream received.
#[derive(Clone, Debug)]
pub struct Received {
    pub head: String,
    pub body: String,
}

impl Received {
    /// Every value of `name` (case-insensitive), in order.
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }
}

/// A plain-HTTP application for the proxy tests: answers every request with 200 and the
/// request head and body it got. With a gate, each request for a path under `/hold/` waits
/// until the test releases it.
pub struct EchoUpstream {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    gate: Option<mpsc::Sender<()>>,
}

impl EchoUpstream {
    pub fn start() -> Self {
        Self::spawn(None)
    }

    /// Each request under `/hold/` waits for one [`EchoUpstream::release`].
    pub fn gated() -> Self {
        let (tx, rx) = mpsc::channel();
        Self::spawn(Some((tx, rx)))
    }

    fn spawn(gate: Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the upstream");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let (sender, gate_rx) = match gate {
            Some((tx, rx)) => (Some(tx), Some(Arc::new(Mutex::new(rx)))),
            None => (None, None),
        };
        let seen = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(1000) {
                let Ok(stream) = stream else { continue };
                let seen = seen.clone();
                let gate = gate_rx.clone();
                std::thread::spawn(move || serve_echo(stream, &seen, gate.as_deref()));
            }
        });
        Self {
            addr,
            received,
            gate: sender,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets one held request be answered.
    pub fn release(&self) {
        if let Some(g) = &self.gate {
            let _ = g.send(());
        }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}

fn serve_echo(
    stream: TcpStream,
    seen: &Mutex<Vec<Received>>,
    gate: Option<&Mutex<mpsc::Receiver<()>>>,
) {
    let _ = stream.set_read_timeout(Some(PATIENCE));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    // Keep-alive: serve requests until the proxy closes the connection.
    for _ in 0..100 {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let len: usize = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let got = Received {
            head: head.trim_end().to_string(),
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        seen.lock().expect("lock").push(got.clone());
        if let Some(gate) = gate
            && got.head.starts_with("GET /hold/")
        {
            let _ = gate.lock().expect("lock").recv_timeout(PATIENCE);
        }
        let text = format!("{}\r\n\r\n{}", got.head, got.body);
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Upstream: echo\r\n\r\n{text}",
            text.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// The metrics address the server logged (it was started with `--metrics 127.0.0.1:0`).
pub fn metrics_addr(server: &ServerProcess) -> SocketAddr {
    let line = server.log.wait_for(&["serving Prometheus metrics"]);
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("metrics.addr="))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no metrics.addr in {line:?}"))
}

/// The value of the sample `name{labels}` (exactly as printed) in a scrape, if present.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
