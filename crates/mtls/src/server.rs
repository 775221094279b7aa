//! The HTTPS server: accept, then in a task of its own a TLS handshake under a timeout,
//! then HTTP/1.1 or HTTP/2 (by ALPN) with hyper. It requires a verified client certificate.
//!
//! Each connection logs the Go demo's blocks: `State` and `Certificate chain` once, when its
//! handshake completes; `Header` for every request. A failed handshake is logged at warn
//! with a reason code and a plain-words explanation.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::error::{Error, Result};
use crate::explain::{self, Failure, Side};
use crate::files::CertsDir;
use crate::pem;
use crate::report::TlsReport;
use crate::tls::{self, Identity, ServerPolicy, Trust};

/// Everything the server needs to start. Paths are explicit; [`ServerSettings::in_dir`]
/// fills them from a certificate folder.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Address to listen on; port 0 picks a free port.
    pub addr: String,
    /// The CA that client certificates must chain to.
    pub ca: PathBuf,
    /// The server's certificate (leaf first, then any intermediates).
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// CRLs whose revoked client certificates are refused.
    pub crls: Vec<PathBuf>,
    /// TLS versions and resumption.
    pub policy: ServerPolicy,
    /// A peer that has not finished its handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// Largest request head (request line and headers) accepted, in bytes.
    pub max_header_bytes: usize,
    /// On shutdown, how long in-flight requests get to finish.
    pub drain_timeout: Duration,
}

impl ServerSettings {
    /// Defaults with the demo set's paths in `dir`.
    pub fn in_dir(dir: &CertsDir) -> Self {
        Self {
            addr: "127.0.0.1:8443".into(),
            ca: dir.ca_cert(),
            cert: dir.role_cert(crate::files::Role::Server),
            key: dir.role_key(crate::files::Role::Server),
            crls: Vec::new(),
            policy: ServerPolicy::default(),
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            drain_timeout: Duration::from_secs(10),
        }
    }

    /// Loads the certificates, key, CA and CRLs, and builds the rustls config.
    pub fn load_tls(&self) -> Result<(Arc<ServerConfig>, explain::Context)> {
        let identity = Identity::load(&self.cert, &self.key, "the server")?;
        let trust = Trust::load(&self.ca)?;
        let mut crls = Vec::new();
        for path in &self.crls {
            crls.extend(pem::crls(path, "the certificate revocation list")?);
        }
        let config = tls::server_config(&identity, &trust, crls, &self.policy)?;
        let cx = explain::Context {
            ca: Some(self.ca.clone()),
            crls: self.crls.clone(),
        };
        Ok((config, cx))
    }
}

/// State every connection task reads.
struct Shared {
    tls: Arc<ServerConfig>,
    explain: explain::Context,
    http: auto::Builder<TokioExecutor>,
    handshake_timeout: Duration,
}

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    drain_timeout: Duration,
}

impl Server {
    /// Loads the TLS material and binds the listening socket.
    pub async fn bind(settings: &ServerSettings) -> Result<Self> {
        let (tls, explain) = settings.load_tls()?;
        let listener = TcpListener::bind(&settings.addr)
            .await
            .map_err(|source| Error::Bind {
                addr: settings.addr.clone(),
                source,
            })?;
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(settings.header_timeout)
            .max_buf_size(settings.max_header_bytes.max(8192));
        http.http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
        Ok(Self {
            listener,
            shared: Arc::new(Shared {
                tls,
                explain,
                http,
                handshake_timeout: settings.handshake_timeout,
            }),
            drain_timeout: settings.drain_timeout,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|source| Error::Io {
            context: "cannot read the listening address".into(),
            source,
        })
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (up to the
    /// drain timeout).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let shared = self.shared.clone();
                        let watcher = graceful.watcher();
                        tokio::spawn(connection(stream, peer, shared, watcher));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: never end the loop, but do
                        // not spin on it either.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = &mut shutdown => break,
            }
        }
        drop(self.listener);
        info!(
            connections = graceful.count(),
            drain_timeout_s = self.drain_timeout.as_secs_f32(),
            "shutting down: finishing requests in flight"
        );
        match tokio::time::timeout(self.drain_timeout, graceful.shutdown()).await {
            Ok(()) => info!("all connections closed"),
            Err(_) => warn!("drain timeout passed; closing the remaining connections"),
        }
        Ok(())
    }
}

/// One connection, from TCP to the last request.
async fn connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, watcher: Watcher) {
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + shared.handshake_timeout;
    let refuse = |failure: Failure| {
        warn!(
            peer.addr = %peer,
            reason = failure.code(),
            explanation = %failure.explain(Side::Server, &shared.explain),
            "TLS handshake failed"
        );
    };
    let timed_out = || Failure::Timeout {
        after: shared.handshake_timeout,
    };
    match tokio::time::timeout_at(deadline, first_bytes(&stream)).await {
        Err(_) => return refuse(timed_out()),
        Ok(FirstBytes::Closed) => {
            debug!(peer.addr = %peer, "peer closed the connection before the handshake");
            return;
        }
        Ok(FirstBytes::PlainHttp) => {
            refuse(Failure::NotTls);
            return refuse_plain_http(stream).await;
        }
        Ok(FirstBytes::Other) => {}
    }
    let acceptor = TlsAcceptor::from(shared.tls.clone());
    let handshake = acceptor.accept(stream).into_fallible();
    let tls = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(tls)) => tls,
        Ok(Err((err, tcp))) => {
            refuse(classify(&err));
            return linger_close(tcp).await;
        }
        Err(_) => return refuse(timed_out()),
    };

    let (_, conn) = tls.get_ref();
    let report = TlsReport::from_connection(conn, conn.server_name());
    log_state(peer, &report);
    let client = Arc::new(report.peer_identity().unwrap_or_else(|| "unknown".into()));

    let service = service_fn(move |req| {
        let client = client.clone();
        async move { Ok::<_, Infallible>(respond(&req, peer, &client)) }
    });
    let conn = shared
        .http
        .serve_connection(TokioIo::new(tls), service)
        .into_owned();
    if let Err(e) = watcher.watch(conn).await {
        debug!(peer.addr = %peer, error = %e, "connection ended with an error");
    }
}

/// Logs `State` and `Certificate chain`, once per connection.
fn log_state(peer: SocketAddr, r: &TlsReport) {
    info!(
        peer.addr = %peer,
        tls.version = %r.version,
        tls.cipher_suite = %r.cipher_suite,
        tls.key_exchange = %r.key_exchange,
        tls.handshake_complete = r.handshake_complete,
        tls.resumed = r.resumed,
        tls.alpn = r.alpn.as_deref().unwrap_or("none"),
        tls.sni = r.sni.as_deref().unwrap_or("none"),
        client = r.peer_identity().as_deref().unwrap_or("unknown"),
        "State"
    );
    for (index, cert) in r.peer_chain.iter().enumerate() {
        info!(
            peer.addr = %peer,
            index,
            subject = %cert.subject,
            issuer = %cert.issuer,
            sans = %cert.sans_text(),
            "Certificate chain"
        );
    }
}

/// Logs the request's `Header` block and answers with the client's name.
fn respond(req: &Request<Incoming>, peer: SocketAddr, client: &str) -> Response<Full<Bytes>> {
    info!(
        peer.addr = %peer,
        client,
        method = %req.method(),
        path = %req.uri().path(),
        version = ?req.version(),
        headers = %Redacted(req.headers()),
        "Header"
    );
    let mut response = Response::new(Full::new(Bytes::from(format!("hello, {client}\n"))));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Headers for the log, with credentials replaced.
struct Redacted<'a>(&'a HeaderMap);

impl std::fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SECRET: [&str; 4] = [
            "authorization",
            "proxy-authorization",
            "cookie",
            "set-cookie",
        ];
        let mut first = true;
        for (name, value) in self.0 {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            if SECRET.contains(&name.as_str()) {
                write!(f, "{name}=<redacted>")?;
            } else {
                write!(f, "{name}={:?}", String::from_utf8_lossy(value.as_bytes()))?;
            }
        }
        Ok(())
    }
}

/// A rustls error inside tokio-rustls's io::Error, classified.
fn classify(err: &std::io::Error) -> Failure {
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(tls) => Failure::from_rustls(tls),
        None => Failure::Other(format!("connection lost during the handshake ({err})")),
    }
}

/// After a failed handshake the alert has been written. Half-close and read what the
/// client still sends for a moment, so the kernel does not answer its late bytes with a
/// reset that would destroy the alert before the client reads it (TLS 1.3 clients send
/// their request before they learn they were refused).
async fn linger_close(mut tcp: TcpStream) {
    const LINGER: Duration = Duration::from_secs(2);
    const MAX_DRAIN: usize = 256 * 1024;
    let _ = tcp.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        while total < MAX_DRAIN {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// What the peer's first bytes look like.
enum FirstBytes {
    /// It closed (or failed) before sending anything.
    Closed,
    /// An HTTP method: plain HTTP on the TLS port.
    PlainHttp,
    /// Anything else, a TLS record we hope; rustls will judge.
    Other,
}

/// Peeks at the first bytes without consuming them.
async fn first_bytes(stream: &TcpStream) -> FirstBytes {
    const METHODS: [&[u8]; 9] = [
        b"GET ", b"POST", b"HEAD", b"PUT ", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC",
    ];
    let mut head = [0u8; 4];
    match stream.peek(&mut head).await {
        Ok(0) | Err(_) => FirstBytes::Closed,
        Ok(n)
            if METHODS
                .iter()
                .any(|m| m.starts_with(&head[..n]) && n == m.len()) =>
        {
            FirstBytes::PlainHttp
        }
        Ok(_) => FirstBytes::Other,
    }
}

/// Answers a plain-HTTP request with a 400 that says what to do, as nginx does.
async fn refuse_plain_http(mut stream: TcpStream) {
    const BODY: &str =
        "This port speaks HTTPS with mutual TLS: use an https:// URL and a client certificate.\n";
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    linger_close(stream).await;
}

/// Resolves on Ctrl-C, or on SIGTERM where there is one.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!(signal = "SIGINT", "shutdown requested"),
        () = term => info!(signal = "SIGTERM", "shutdown requested"),
    }
}
