//! A minimal mutual-TLS server in plain rustls + tokio-rustls + hyper: it presents its
//! certificate AND requires one from every client, issued by our CA.
//!
//! Run it (after `cargo run -p certificate` has minted certs/):
//!     cargo run --example minimal_server                 # certs/ on 127.0.0.1:9443
//!     cargo run --example minimal_server -- DIR ADDR     # another folder or address
//! then, in a second terminal:
//!     cargo run --example minimal_client
//!     curl --cacert certs/ca.crt --cert certs/client-a.crt --key certs/client-a.key https://localhost:9443/

use std::convert::Infallible;
use std::error::Error;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "certs".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9443".into());
    if !std::path::Path::new(&dir).join("ca.crt").exists() {
        return Err(format!("no {dir}/ca.crt: run `cargo run -p certificate` first").into());
    }

    // The CA we accept client certificates from.
    let mut client_cas = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(format!("{dir}/ca.crt"))? {
        client_cas.add(ca?)?;
    }
    // What the server presents: its certificate chain and the matching private key.
    let chain = CertificateDer::pem_file_iter(format!("{dir}/server.crt"))?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(format!("{dir}/server.key"))?;

    // ---- The lines that make TLS mutual -------------------------------------------------
    // A client-certificate verifier: the server sends a CertificateRequest (naming the CA
    // above) and fails the handshake unless the client presents a certificate that chains to
    // that CA, is within its dates, is meant for client authentication (EKU clientAuth), and
    // proves (CertificateVerify) that the client holds its private key. Without this, a
    // plain TLS server would use `.with_no_client_auth()` and never ask.
    let verifier = WebPkiClientVerifier::builder(Arc::new(client_cas)).build()?;
    let mut config = rustls::ServerConfig::builder() // TLS 1.2 and 1.3, safe defaults
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    // --------------------------------------------------------------------------------------
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));

    let listener = TcpListener::bind(&addr).await?;
    println!("listening on https://{}/", listener.local_addr()?);
    loop {
        let (tcp, peer) = listener.accept().await?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            // The whole handshake happens here; a client without an acceptable certificate
            // is refused with an alert and never reaches the HTTP handler below.
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => return println!("{peer}: handshake refused: {e}"),
            };
            println!("{peer}: client certificate verified");
            let hello = service_fn(|_: Request<Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello, client\n"))))
            });
            let served = http1::Builder::new().serve_connection(TokioIo::new(tls), hello);
            if let Err(e) = served.await {
                println!("{peer}: connection ended: {e}");
            }
        });
    }
}
