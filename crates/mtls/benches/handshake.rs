//! What a TLS handshake costs with and without client authentication, in memory: no
//! sockets, a rustls client and server connection pumped through buffers in one thread, so
//! one iteration is both sides' whole work for one handshake and nothing else.
//!
//!     cargo bench -p mtls --bench handshake
//!
//! Cases, for each key type of every certificate (CA, server and client alike): ECDSA
//! P-256, Ed25519, RSA 2048.
//! - `full_tls`: a full handshake, the server authenticated only (plain TLS).
//! - `full_mtls`: a full handshake in which the client presents its certificate and the
//!   server verifies it: the configs `client` and `server` use (crates/mtls/src/tls.rs).
//!   The server remembers the verdict on a chain it passed (crates/mtls/src/verdicts.rs),
//!   so this is a client it has seen before: its CertificateVerify is checked, its chain
//!   is not verified again.
//! - `full_mtls_uncached`: the same with rustls's own verifier only, so every handshake
//!   verifies the chain: a client seen for the first time.
//! - `resumed_tls`, `resumed_mtls`, `resumed_mtls_uncached`: a handshake resuming a session
//!   (TLS 1.3 tickets); for mTLS the server verifies the session's client chain again, as
//!   our server does (a lookup once remembered; in full when uncached).
//!
//! The mTLS server config is the server's own; the plain-TLS and uncached servers exist
//! only here, as baselines: no program in this workspace serves without client
//! authentication. BENCHMARKS.md quotes a run.

use std::path::Path;
use std::sync::Arc;

use divan::Bencher;
use mtls::pki::{CertAuthority, KeyType, LeafSpec, SanType, Usage, Validity, demo_subject};
use mtls::tls::{self, ClientPolicy, Identity, SeenChain, ServerPolicy, ServerTls, Trust};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, ClientConnection, Connection, HandshakeKind, ServerConfig};
use rustls::{ServerConnection, version};

fn main() {
    divan::main();
}

/// The key types compared.
const KEYS: [KeyType; 3] = [KeyType::EcdsaP256, KeyType::Ed25519, KeyType::Rsa2048];

/// The name the server's certificate carries and the client dials.
const HOST: &str = "localhost";

/// Both sides' configs for one key type.
struct Setup {
    /// The server's own config: it requires a client certificate from the CA.
    mtls_server: ServerTls,
    /// The same certificate and resumption, no client authentication: the baseline.
    tls_server: Arc<ServerConfig>,
    /// rustls's verifier alone, remembering nothing: every chain verified in full.
    uncached: Arc<dyn ClientCertVerifier>,
    /// The same certificate and resumption, verifying clients with `uncached`.
    uncached_server: Arc<ServerConfig>,
    /// The client presenting its certificate.
    mtls_client: Arc<ClientConfig>,
    /// The client without one.
    tls_client: Arc<ClientConfig>,
}

impl Setup {
    fn new(key: KeyType) -> Self {
        let validity = Validity::days(1);
        let ca = CertAuthority::new_root(demo_subject("CA Company", "Bench CA"), key, validity)
            .expect("a CA");
        let leaf = |cn: &str, usage: Usage, san: SanType| {
            let issued = ca
                .issue(&LeafSpec {
                    subject: demo_subject("Bench", cn),
                    sans: vec![san],
                    usage,
                    key_type: key,
                    validity,
                })
                .expect("a leaf");
            let der = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).expect("its key");
            let path = Path::new("(in memory)");
            let certified =
                CertifiedKey::from_der(issued.chain.clone(), der.clone_key(), &tls::provider())
                    .expect("a certified key");
            let identity = Identity::from_der(issued.chain, der, path, path).expect("an identity");
            (identity, Arc::new(certified))
        };
        let (server, server_key) = leaf(
            HOST,
            Usage::Server,
            SanType::DnsName(HOST.try_into().expect("a DNS name")),
        );
        let (client, _) = leaf(
            "Bench Client",
            Usage::Client,
            SanType::URI("spiffe://bench/client".try_into().expect("a URI")),
        );
        let trust = Trust::from_certs(vec![ca.der.clone()], Path::new("(in memory)"))
            .expect("a trust anchor");
        let mtls_server =
            tls::server_tls(&server, &trust, Vec::new(), &ServerPolicy::default(), None)
                .expect("the server's config");
        let client_config = |identity: Option<&Identity>| {
            tls::client_config(
                identity,
                &trust,
                SeenChain::default(),
                ClientPolicy::default(),
                None,
            )
            .expect("a client config")
        };
        let uncached = tls::client_verifier(&trust, Vec::new()).expect("a client verifier");
        Self {
            tls_server: baseline(server_key.clone(), &mtls_server.config, None),
            uncached_server: baseline(server_key, &mtls_server.config, Some(uncached.clone())),
            uncached,
            mtls_server,
            mtls_client: client_config(Some(&client)),
            tls_client: client_config(None),
        }
    }
}

/// A baseline server: `key` (the certificate `like` presents), and `like`'s versions,
/// ALPN and resumption, verifying clients with `verifier`, or never asking for a client
/// certificate without one.
fn baseline(
    key: Arc<CertifiedKey>,
    like: &ServerConfig,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
) -> Arc<ServerConfig> {
    let builder = ServerConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&version::TLS13, &version::TLS12])
        .expect("TLS 1.3 and 1.2");
    let builder = match verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(key)));
    config.alpn_protocols = like.alpn_protocols.clone();
    config.session_storage = like.session_storage.clone();
    config.ticketer = like.ticketer.clone();
    config.send_tls13_tickets = like.send_tls13_tickets;
    Arc::new(config)
}

/// One handshake between a new client and a new server connection, with the tickets the
/// server sends after it delivered; for mTLS, a resumed session's client chain is verified
/// again with `reverify`, as our server does. Whether it resumed.
fn handshake(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    reverify: Option<&dyn ClientCertVerifier>,
) -> bool {
    let name = ServerName::try_from(HOST).expect("a server name");
    let mut c = Connection::Client(ClientConnection::new(client.clone(), name).expect("a client"));
    let mut s = Connection::Server(ServerConnection::new(server.clone()).expect("a server"));
    let mut buf = Vec::with_capacity(16 * 1024);
    while transfer(&mut c, &mut s, &mut buf) | transfer(&mut s, &mut c, &mut buf) {}
    assert!(
        !c.is_handshaking() && !s.is_handshaking(),
        "the handshake finished"
    );
    let resumed = s.handshake_kind() == Some(HandshakeKind::Resumed);
    if let (Some(verifier), true) = (reverify, resumed) {
        let (leaf, rest) = s
            .peer_certificates()
            .and_then(|chain| chain.split_first())
            .expect("the session's client chain");
        verifier
            .verify_client_cert(leaf, rest, UnixTime::now())
            .expect("the client chain verifies again");
    }
    resumed
}

/// Moves everything `from` has to send into `to`, which processes it. Whether anything
/// moved.
fn transfer(from: &mut Connection, to: &mut Connection, buf: &mut Vec<u8>) -> bool {
    let mut moved = false;
    while from.wants_write() {
        buf.clear();
        from.write_tls(buf).expect("writing to memory");
        let mut rest = buf.as_slice();
        while !rest.is_empty() {
            to.read_tls(&mut rest).expect("reading from memory");
            to.process_new_packets()
                .expect("the peer's messages are accepted");
        }
        moved = true;
    }
    moved
}

#[divan::bench(args = KEYS)]
fn full_tls(bencher: Bencher, key: KeyType) {
    let setup = Setup::new(key);
    let client = tls::with_resumption(&setup.tls_client, false);
    bencher.bench_local(|| handshake(&client, &setup.tls_server, None));
}

#[divan::bench(args = KEYS)]
fn full_mtls(bencher: Bencher, key: KeyType) {
    let setup = Setup::new(key);
    let client = tls::with_resumption(&setup.mtls_client, false);
    let server = &setup.mtls_server.config;
    bencher.bench_local(|| handshake(&client, server, Some(setup.mtls_server.verifier.as_ref())));
}

#[divan::bench(args = KEYS)]
fn full_mtls_uncached(bencher: Bencher, key: KeyType) {
    let setup = Setup::new(key);
    let client = tls::with_resumption(&setup.mtls_client, false);
    let server = &setup.uncached_server;
    bencher.bench_local(|| handshake(&client, server, Some(setup.uncached.as_ref())));
}

#[divan::bench(args = KEYS)]
fn resumed_tls(bencher: Bencher, key: KeyType) {
    let setup = Setup::new(key);
    resumed(bencher, &setup.tls_client, &setup.tls_server, None);
}

#[divan::bench(args = KEYS)]
fn resumed_mtls(bencher: Bencher, key: KeyType) {
    let setup = Setup::new(key);
    let (server, verifier) = (
        &setup.mtls_server.config,
        setup.mtls_server.verifier.as_ref(),
    );
    resumed(bencher, &setup.mtls_client, server, Some(verifier));
}

#[divan::bench(args = KEYS)]
fn resumed_mtls_uncached(bencher: Bencher, key: KeyType) {
    let setup = Setup::new(key);
    let verifier = setup.uncached.as_ref();
    resumed(
        bencher,
        &setup.mtls_client,
        &setup.uncached_server,
        Some(verifier),
    );
}

/// Resumed handshakes between `client` (with a session store of its own, filled by one
/// full handshake first) and `server`.
fn resumed(
    bencher: Bencher,
    client: &ClientConfig,
    server: &Arc<ServerConfig>,
    reverify: Option<&dyn ClientCertVerifier>,
) {
    let client = tls::with_resumption(client, true);
    handshake(&client, server, reverify);
    bencher.bench_local(|| assert!(handshake(&client, server, reverify), "resumed"));
}
