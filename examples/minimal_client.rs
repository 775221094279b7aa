//! A minimal mutual-TLS client in plain rustls + tokio-rustls + hyper: it verifies the
//! server against our CA AND presents its own certificate when the server asks for one.
//!
//! Run it against `cargo run --example minimal_server` (or the demo server with its URL):
//!     cargo run --example minimal_client                              # Client A, localhost:9443
//!     cargo run --example minimal_client -- https://localhost:8443/ certs client-b

use std::error::Error;
use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Request, Uri, client::conn::http1};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        // The error and its causes: "...: received fatal alert: CertificateRequired".
        let causes = std::iter::successors(Some(&*e as &dyn Error), |e| (*e).source());
        let causes: Vec<String> = causes.map(|c| c.to_string()).collect();
        eprintln!("error: {}", causes.join(": "));
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "https://localhost:9443/".into());
    let url: Uri = url.parse()?;
    let dir = args.next().unwrap_or_else(|| "certs".into());
    let name = args.next().unwrap_or_else(|| "client-a".into());
    let host = url.host().ok_or("the URL needs a host")?.to_string();
    let port = url.port_u16().unwrap_or(443);

    // The CA we trust to vouch for the server (not the system's web CAs).
    let mut server_cas = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(format!("{dir}/ca.crt"))? {
        server_cas.add(ca?)?;
    }
    // Our own certificate and the key that proves it is ours.
    let chain = CertificateDer::pem_file_iter(format!("{dir}/{name}.crt"))?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(format!("{dir}/{name}.key"))?;

    // ---- The line that makes TLS mutual -------------------------------------------------
    // `.with_client_auth_cert` instead of `.with_no_client_auth()`: when the server's
    // CertificateRequest arrives, rustls sends this chain (Certificate) and signs the
    // handshake so far with the key (CertificateVerify).
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(server_cas)
        .with_client_auth_cert(chain, key)?;
    // --------------------------------------------------------------------------------------
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = TlsConnector::from(Arc::new(config));

    // The handshake: rustls checks the server's chain and that it names `host`.
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    let tls = connector
        .connect(ServerName::try_from(host.clone())?, tcp)
        .await?;
    let (_, session) = tls.get_ref();
    println!(
        "connected with {:?}, {:?}",
        session.protocol_version().ok_or("no version")?,
        session.negotiated_cipher_suite().ok_or("no suite")?.suite()
    );

    // Plain HTTP/1.1 over the encrypted connection.
    let (mut sender, connection) = http1::handshake(TokioIo::new(tls)).await?;
    let connection = tokio::spawn(connection);
    let request = Request::get(url.path())
        .header("host", &host)
        .body(Empty::<Bytes>::new())?;
    // With TLS 1.3 a server that refuses our certificate says so only now: the client's
    // side of the handshake finished before the server judged the certificate.
    let response = match sender.send_request(request).await {
        Ok(response) => response,
        // The connection's task holds the reason (the server's alert); the request only
        // knows that the connection went away.
        Err(e) => return Err(connection.await?.err().map_or(e, |reason| reason).into()),
    };
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    print!("{status}\n{}", String::from_utf8_lossy(&body));
    Ok(())
}
