//! Mutual TLS in one file: mint a CA and three certificates, start the server, call it as
//! Client A, then call it without a certificate and print why it was refused.
//!
//! Run it with: `cargo run --example mtls_in_one_file`
//! Nothing is written outside a temporary folder; the server listens on 127.0.0.1 only.

use mtls::ca::demo::{self, DemoOptions};
use mtls::client::{ClientSettings, fetch};
use mtls::files::{CertsDir, ClientId, Role};
use mtls::server::{Server, ServerSettings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. A CA, a server certificate and two client certificates, as `cargo run -p certificate`.
    let tmp = tempfile::tempdir()?;
    let certs = CertsDir::new(tmp.path().join("certs"));
    let set = demo::mint(&DemoOptions::new(certs.clone()))?;
    println!(
        "minted {} files in {}",
        set.files.len(),
        certs.path().display()
    );

    // 2. The server: it presents server.crt and requires a client certificate issued by ca.crt.
    let mut settings = ServerSettings::in_dir(&certs);
    settings.addr = "127.0.0.1:0".into(); // any free port
    let server = Server::bind(&settings).await?;
    let url = format!("https://localhost:{}/", server.local_addr()?.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    // 3. Client A: verifies the server against ca.crt and presents client-a.crt.
    let a = Role::Client(ClientId::A);
    let mut as_a = ClientSettings::new(
        certs.ca_cert(),
        Some((certs.role_cert(a), certs.role_key(a), "Client A".into())),
    );
    as_a.url = url.parse()?;
    let exchange = fetch(&as_a).await?;
    println!("\nwith Client A's certificate:\n{exchange}");

    // 4. No certificate: with TLS 1.3 the handshake "succeeds" on our side, and the server's
    //    refusal arrives as an alert on the first read. The library explains it.
    let mut anonymous = ClientSettings::new(certs.ca_cert(), None);
    anonymous.url = url.parse()?;
    match fetch(&anonymous).await {
        Ok(ex) => println!("unexpected: the server answered {}", ex.status),
        Err(e) => println!("without a certificate:\n  {e}"),
    }

    let _ = stop.send(());
    running.await??;
    Ok(())
}
