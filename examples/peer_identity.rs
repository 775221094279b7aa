//! Who is calling? Reading the verified client's identity inside a hyper handler.
//!
//! After the handshake, the TLS connection holds the certificate chain the client presented
//! (already verified by rustls). This server takes the leaf's URI SAN (a SPIFFE ID such as
//! spiffe://mtls.demo/client-a) and common name, hands them to the handler as a request
//! extension, and lets the handler decide: Client A is welcome, anyone else gets 403.
//! Authentication (the handshake) and authorization (this handler) are separate steps.
//!
//! Run it (after `cargo run -p certificate`), then call it as Client A and as Client B:
//!     cargo run --example peer_identity                  # certs/ on 127.0.0.1:9443
//!     cargo run --example minimal_client                 # 200 OK, hello Client A
//!     cargo run --example minimal_client -- https://localhost:9443/ certs client-b   # 403

use std::convert::Infallible;
use std::error::Error;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::{RootCertStore, server::WebPkiClientVerifier};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// What the handshake proved about the client, as the handler sees it.
#[derive(Clone, Debug)]
struct PeerIdentity {
    common_name: String,
    uri: Option<String>,
}

impl PeerIdentity {
    /// Reads the identity from the client's leaf certificate (the first in its chain).
    fn of(leaf: &CertificateDer<'_>) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(leaf).ok()?;
        let common_name = cert.subject().iter_common_name().next()?.as_str().ok()?;
        let uri = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .and_then(|san| {
                san.value.general_names.iter().find_map(|name| match name {
                    GeneralName::URI(uri) => Some(uri.to_string()),
                    _ => None,
                })
            });
        Some(PeerIdentity {
            common_name: common_name.to_string(),
            uri,
        })
    }
}

/// The handler: authorization by identity. The request carries who sent it.
async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let peer = req
        .extensions()
        .get::<PeerIdentity>()
        .expect("set for every request");
    let (status, text) = match peer.uri.as_deref() {
        Some("spiffe://mtls.demo/client-a") => {
            (StatusCode::OK, format!("hello, {}\n", peer.common_name))
        }
        _ => (
            StatusCode::FORBIDDEN,
            format!("{} is verified but not allowed here\n", peer.common_name),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "certs".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9443".into());

    // The mutual-TLS server configuration, as in minimal_server.rs.
    let mut client_cas = RootCertStore::empty();
    client_cas.add_parsable_certificates(
        CertificateDer::pem_file_iter(format!("{dir}/ca.crt"))?.flatten(),
    );
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(WebPkiClientVerifier::builder(Arc::new(client_cas)).build()?)
        .with_single_cert(
            CertificateDer::pem_file_iter(format!("{dir}/server.crt"))?
                .collect::<Result<_, _>>()?,
            PrivateKeyDer::from_pem_file(format!("{dir}/server.key"))?,
        )?;
    let acceptor = TlsAcceptor::from(Arc::new(config));

    let listener = TcpListener::bind(&addr).await?;
    println!("listening on https://{}/", listener.local_addr()?);
    loop {
        let (tcp, peer) = listener.accept().await?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => return println!("{peer}: handshake refused: {e}"),
            };
            // The chain rustls verified during the handshake: read the identity once per
            // connection, then attach it to every request on that connection.
            let (_, session) = tls.get_ref();
            let Some(identity) = session
                .peer_certificates()
                .and_then(|c| PeerIdentity::of(c.first()?))
            else {
                return println!("{peer}: no readable client identity");
            };
            println!("{peer}: verified {identity:?}");
            let service = service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(identity.clone());
                hello(req)
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}
