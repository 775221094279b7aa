//! Hot-reloading the server's certificate without dropping a connection.
//!
//! rustls asks a `ResolvesServerCert` for the certificate at the start of every handshake.
//! This one hands out whatever it holds now, and a background task replaces it when
//! server.crt changes on disk, only after checking that the new certificate and key belong
//! together. Connections already open keep the certificate they started with; the next
//! handshake gets the new one.
//!
//! Run it (after `cargo run -p certificate`), renew the certificate, and watch it reload:
//!     cargo run --example hot_reload                     # certs/ on 127.0.0.1:9443
//!     cargo run -p certificate -- renew server           # in a second terminal
//!     cargo run --example minimal_client                 # served with the new certificate

use std::convert::Infallible;
use std::error::Error;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::{RootCertStore, sign::CertifiedKey};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The certificate new handshakes get; swapped whole, so a handshake never sees a
/// certificate with the wrong key.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|held| Arc::clone(&held))
    }
}

/// Reads server.crt and server.key, and checks that the key is the certificate's.
fn load(dir: &str) -> Result<Arc<CertifiedKey>, Box<dyn Error>> {
    let chain =
        CertificateDer::pem_file_iter(format!("{dir}/server.crt"))?.collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(format!("{dir}/server.key"))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    Ok(Arc::new(CertifiedKey::from_der(chain, key, &provider)?))
}

fn modified(dir: &str) -> Option<SystemTime> {
    std::fs::metadata(format!("{dir}/server.crt"))
        .and_then(|m| m.modified())
        .ok()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "certs".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9443".into());

    let current = Arc::new(Current(RwLock::new(load(&dir)?)));
    let mut client_cas = RootCertStore::empty();
    client_cas.add_parsable_certificates(
        CertificateDer::pem_file_iter(format!("{dir}/ca.crt"))?.flatten(),
    );
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(WebPkiClientVerifier::builder(Arc::new(client_cas)).build()?)
        .with_cert_resolver(current.clone()); // <- instead of .with_single_cert(chain, key)
    let acceptor = TlsAcceptor::from(Arc::new(config));

    // The watcher: once a second, compare server.crt's modification time with the last
    // one loaded. A renewal writes the key and the certificate one after the other, so a
    // half-written pair fails the key check and is simply tried again on the next tick.
    let watched = dir.clone();
    tokio::spawn(async move {
        let mut seen = modified(&watched);
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = modified(&watched);
            if now == seen {
                continue;
            }
            match load(&watched) {
                Ok(fresh) => {
                    if let Ok(mut held) = current.0.write() {
                        *held = fresh;
                    }
                    seen = now;
                    println!(
                        "reloaded {watched}/server.crt: new handshakes get the new certificate"
                    );
                }
                Err(e) => println!("not reloaded yet ({e}); trying again in a second"),
            }
        }
    });

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
            let hello = service_fn(|_: Request<Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello\n"))))
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tls), hello)
                .await;
        });
    }
}
