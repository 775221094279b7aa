//! The peers a test talks to the server with: the library client, a blocking rustls
//! connection that stays open, curl, openssl, and plain TCP.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use mtls::certinfo::CertInfo;
use mtls::files::CertsDir;
use mtls::tls::{ClientPolicy, Identity, SeenChain, Trust};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::pki::Pki;
use crate::process::{PATIENCE, require_tool, run, text};

/// Fetches `url` with the library client (the same code the client binary runs).
pub fn fetch(
    url: &str,
    ca: PathBuf,
    identity: Option<(PathBuf, PathBuf)>,
) -> mtls::Result<mtls::client::Exchange> {
    let mut settings = mtls::client::ClientSettings::new(
        ca,
        identity.map(|(c, k)| (c, k, "the test client".to_string())),
    );
    settings.url = url.parse()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(mtls::client::fetch(&settings))
}

/// Runs curl (bounded by PATIENCE) as the holder of `stem`'s certificate in `certs`,
/// trusting the CA there, with `args` after those options.
pub fn curl_as(certs: &CertsDir, stem: &str, args: &[&str]) -> Output {
    require_tool("curl");
    let path = |p: PathBuf| p.to_str().expect("utf-8 path").to_string();
    run(Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(path(certs.ca_cert()))
        .arg("--cert")
        .arg(path(certs.cert(stem)))
        .arg("--key")
        .arg(path(certs.key(stem)))
        .args(args))
}

/// Runs openssl with `args` (bounded by PATIENCE).
pub fn openssl(args: &[&str]) -> Output {
    require_tool("openssl");
    run(Command::new("openssl").args(args))
}

/// Runs openssl with `args`, requires success, and returns what it printed (stdout, then
/// stderr).
pub fn openssl_ok(args: &[&str]) -> String {
    let out = openssl(args);
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What `openssl x509 -noout ARGS` says about the first certificate in `path`, trimmed.
pub fn openssl_x509(path: &Path, args: &[&str]) -> String {
    let mut all = vec!["x509", "-noout", "-in", path.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    openssl_ok(&all).trim().to_string()
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
