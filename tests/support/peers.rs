//! The peers a test talks to the server with: the library client, a blocking rustls
//! connection that stays open, curl, openssl, and plain TCP.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use mtls::certinfo::CertInfo;
use mtls::explain::Side;
use mtls::files::CertsDir;
use mtls::tls::{ClientPolicy, Identity, SeenChain, Trust};
use mtls::trace::Dir;
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

/// The handshake messages and fatal alerts that `openssl s_client -msg` or `s_server -msg`
/// printed, in order, each with who sent it (`openssl_is`: the side openssl played), named
/// as the trace names them: `ClientHello`, ..., `Alert: fatal certificate_required`.
/// (openssl prints the ChangeCipherSpec it sends but not the one it receives, so those are
/// left out; so are warnings such as close_notify.)
pub fn openssl_messages(output: &str, openssl_is: Side) -> Vec<(Dir, String)> {
    let (sent, received) = match openssl_is {
        Side::Client => (Dir::ClientToServer, Dir::ServerToClient),
        Side::Server => (Dir::ServerToClient, Dir::ClientToServer),
    };
    output
        .lines()
        .filter_map(|line| {
            let dir = match line.get(..4)? {
                ">>> " => sent,
                "<<< " => received,
                _ => return None,
            };
            let (kind, name) = line.split_once("], ")?;
            if kind.contains(", Handshake [length") {
                Some((dir, name.trim().to_string()))
            } else if kind.contains(", Alert [length") && name.starts_with("fatal ") {
                Some((dir, format!("Alert: {}", name.trim())))
            } else {
                None
            }
        })
        .collect()
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
    mtls::tls::client_config(
        identity.as_ref(),
        &trust,
        SeenChain::default(),
        policy,
        None,
    )
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

/// A free TCP port on 127.0.0.1, for a peer that cannot listen on port 0 (nginx, HAProxy):
/// bound, read, and released just before the peer takes it.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A real TLS server of another kind (nginx, HAProxy) in a folder of its own, killed on
/// drop; its stderr is kept for failure dumps.
pub struct PeerServer {
    child: std::process::Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it wrote to stderr.
    pub log: crate::process::Lines,
    _dir: tempfile::TempDir,
}

impl PeerServer {
    /// Writes `config` (with `{dir}` and `{port}` filled in) to `FILE` in a fresh folder,
    /// runs `program` with `args` (`{dir}` filled in), and waits until it accepts
    /// connections on the port.
    pub fn start(program: &str, file: &str, config: &str, args: &[&str]) -> Self {
        require_tool(program);
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let fill = |s: &str| {
            s.replace("{dir}", dir.path().to_str().expect("utf-8 path"))
                .replace("{port}", &port.to_string())
        };
        std::fs::write(dir.path().join(file), fill(config)).expect("write the config");
        let mut child = Command::new(program)
            .args(args.iter().map(|a| fill(a)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let log = crate::process::Lines::collect(child.stderr.take().expect("stderr"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = crate::process::poll(&format!("{program} to listen on {addr}"), || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Err(status));
            }
            TcpStream::connect(addr).ok().map(|_| Ok(()))
        });
        if let Err(status) = started {
            panic!("{program} exited ({status}); its log:\n{}", log.all());
        }
        Self {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    /// nginx, requiring client certificates from the demo CA in `pki` for `verify`
    /// (`on`, `optional`, `optional_no_ca`), over HTTP/2 and HTTP/1.1, answering
    /// `hello <subject>` with the client's verify result in `X-Verify`. One process
    /// (`master_process off`), so killing it on drop leaves no orphaned worker behind.
    pub fn nginx(pki: &Pki, verify: &str) -> Self {
        Self::nginx_answering(pki, verify, "hello $ssl_client_s_dn\\n")
    }

    /// Like [`PeerServer::nginx`], answering `answer` (nginx's syntax inside its double
    /// quotes: `$variables` expanded, `\n` a newline) instead of `hello <subject>`.
    pub fn nginx_answering(pki: &Pki, verify: &str, answer: &str) -> Self {
        let certs = &pki.certs;
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {{dir}}/nginx.pid;\nerror_log stderr info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {{dir}}/body;\n  \
             proxy_temp_path {{dir}}/proxy;\n  fastcgi_temp_path {{dir}}/fcgi;\n  \
             uwsgi_temp_path {{dir}}/uwsgi;\n  scgi_temp_path {{dir}}/scgi;\n  server {{\n    \
             listen 127.0.0.1:{{port}} ssl http2;\n    ssl_certificate {cert};\n    \
             ssl_certificate_key {key};\n    ssl_client_certificate {ca};\n    \
             ssl_verify_client {verify};\n    location / {{ add_header X-Verify $ssl_client_verify; \
             return 200 \"{answer}\"; }}\n  }}\n}}\n",
            cert = certs.cert("server").display(),
            key = certs.key("server").display(),
            ca = certs.ca_cert().display(),
        );
        Self::start(
            "nginx",
            "nginx.conf",
            &conf,
            &["-p", "{dir}", "-c", "{dir}/nginx.conf"],
        )
    }

    /// HAProxy in HTTP mode with `verify required` against the demo CA in `pki`, offering
    /// h2 and HTTP/1.1, answering 200 itself.
    pub fn haproxy(pki: &Pki) -> Self {
        let combined = pki.path("server-haproxy.pem");
        let mut pem = std::fs::read(pki.certs.cert("server")).expect("read");
        pem.extend(std::fs::read(pki.certs.key("server")).expect("read"));
        std::fs::write(&combined, pem).expect("write");
        let cfg = format!(
            "global\n  log stderr format short local0 info\n\
             defaults\n  mode http\n  log global\n  timeout connect 5s\n  timeout client 10s\n  \
             timeout server 10s\n\
             frontend fe\n  bind 127.0.0.1:{{port}} ssl crt {crt} ca-file {ca} verify required \
             alpn h2,http/1.1\n  http-request return status 200 content-type text/plain string \
             \"hello from haproxy\\n\"\n",
            crt = combined.display(),
            ca = pki.certs.ca_cert().display(),
        );
        Self::start(
            "haproxy",
            "haproxy.cfg",
            &cfg,
            &["-f", "{dir}/haproxy.cfg", "-db"],
        )
    }

    /// `openssl s_server -www` with the demo server certificate in `pki`, asking clients
    /// for a certificate from the demo CA with `verify` (`-Verify 1`, say, plus
    /// `-verify_return_error`), answering each request with its status page.
    pub fn s_server(pki: &Pki, verify: &[&str]) -> Self {
        let certs = &pki.certs;
        let path = |p: PathBuf| p.to_str().expect("utf-8 path").to_string();
        let (cert, key, ca) = (
            path(certs.cert("server")),
            path(certs.key("server")),
            path(certs.ca_cert()),
        );
        let mut args = vec![
            "s_server",
            "-accept",
            "127.0.0.1:{port}",
            "-cert",
            &cert,
            "-key",
            &key,
            "-CAfile",
            &ca,
            "-www",
        ];
        args.extend_from_slice(verify);
        // s_server reads no configuration file; the one written is only a note.
        Self::start(
            "openssl",
            "README",
            "openssl s_server, run by a test\n",
            &args,
        )
    }

    /// `https://localhost:PORT/`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}/", self.addr.port())
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
