//! Mutual TLS in one file: mint a CA and certificates, configure both sides in plain rustls,
//! and run one round trip with Client A's certificate and one without any, printing what
//! each side saw.
//!
//! Run it with: `cargo run --example mtls_in_one_file`
//! Nothing is written outside a temporary folder; the server listens on 127.0.0.1 only.

use std::error::Error;
use std::sync::Arc;

use mtls::ca::demo::{self, DemoOptions};
use mtls::certinfo::CertInfo;
use mtls::files::CertsDir;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use rustls::{ClientConfig, RootCertStore, ServerConfig, server::WebPkiClientVerifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn chain(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>> {
    Ok(CertificateDer::pem_file_iter(path)?.collect::<std::result::Result<_, _>>()?)
}

#[tokio::main]
async fn main() -> Result<()> {
    // 1. A CA, a server certificate and two client certificates, as `cargo run -p certificate`.
    let tmp = tempfile::tempdir()?;
    let certs = CertsDir::new(tmp.path().join("certs"));
    demo::mint(&DemoOptions::new(certs.clone()))?;
    let mut ca = RootCertStore::empty();
    ca.add_parsable_certificates(chain(&certs.ca_cert())?);
    let ca = Arc::new(ca);

    // 2. The server: presents server.crt, and REQUIRES a client certificate issued by the CA.
    let server = ServerConfig::builder()
        .with_client_cert_verifier(WebPkiClientVerifier::builder(ca.clone()).build()?)
        .with_single_cert(
            chain(&certs.cert("server"))?,
            PrivateKeyDer::from_pem_file(certs.key("server"))?,
        )?;
    let acceptor = TlsAcceptor::from(Arc::new(server));

    // 3. Two clients: both verify the server against the same CA; only one has a certificate.
    let with_cert = ClientConfig::builder()
        .with_root_certificates(ca.clone())
        .with_client_auth_cert(
            chain(&certs.cert("client-a"))?,
            PrivateKeyDer::from_pem_file(certs.key("client-a"))?,
        )?;
    let without_cert = ClientConfig::builder()
        .with_root_certificates(ca)
        .with_no_client_auth();

    // 4. The server side: answer each connection's first message, and tell the story of
    //    each handshake on a channel, so the two sides print in order.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (said, mut heard) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let mut tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    let _ = said.send(format!("refused the handshake: {e}"));
                    continue;
                }
            };
            let (_, session) = tls.get_ref();
            let leaf = session.peer_certificates().and_then(|chain| chain.first());
            let who = leaf
                .and_then(|der| CertInfo::parse(der).ok())
                .map(|c| c.identity());
            let who = who.unwrap_or_else(|| "an unreadable certificate".into());
            let _ = said.send(format!("verified the client's certificate: {who}"));
            let mut buf = [0; 64];
            let n = tls.read(&mut buf).await.unwrap_or(0);
            let reply = format!("hello, you said {:?}", String::from_utf8_lossy(&buf[..n]));
            let _ = tls.write_all(reply.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    });

    // 5. One round trip for each client.
    for (who, config) in [("Client A", with_cert), ("no certificate", without_cert)] {
        println!("\n{who}:");
        let tcp = TcpStream::connect(addr).await?;
        let connector = TlsConnector::from(Arc::new(config));
        let mut tls = connector
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        let version = tls.get_ref().1.protocol_version().ok_or("no version")?;
        println!("  client: handshake done on our side ({version:?})");
        // With TLS 1.3 the server judges our certificate after our side has finished, so a
        // refusal arrives here, on the first read, as an alert.
        tls.write_all(b"ping").await?;
        let mut reply = String::new();
        match tls.read_to_string(&mut reply).await {
            Ok(_) => println!("  client: the server answered: {reply}"),
            Err(e) => println!("  client: refused: {e}"),
        }
        println!("  server: {}", heard.recv().await.unwrap_or_default());
    }
    Ok(())
}
