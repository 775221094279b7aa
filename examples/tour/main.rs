//! A guided tour of mutual TLS, with real connections: one handshake message by message,
//! then the failures people meet, each with both sides' words.
//!
//! Run it with: `cargo run --example tour` (add `-- --no-pause` to run straight through).
//! It mints a fresh CA and certificates in a temporary folder, runs the server in this
//! process on free ports of 127.0.0.1, and removes everything when it ends. What it prints
//! about the wire comes from the bytes of each connection (the trace of `client --trace`),
//! and what it prints for the server is what the server logged.

mod show;
mod stage;

use std::process::ExitCode;

use mtls::client::{Exchange, FetchError};
use mtls::files::{ClientId, Role};
use mtls::server::policy::Rule;
use mtls::tls::TlsVersion;
use mtls::trace::{Dir, Kind, Message, Trace};

use show::{Show, is};
use stage::{Log, Running, Stage, Who};

const TO_SERVER: Dir = Dir::ClientToServer;
const TO_CLIENT: Dir = Dir::ServerToClient;

/// The messages of each step of chapter 1 that travel on the wire (steps 6 and 7 happen
/// inside the server and have none).
const STEP_1: &[Kind] = &[Kind::ClientHello];
const STEP_2: &[Kind] = &[
    Kind::ServerHello,
    Kind::EncryptedExtensions,
    Kind::Certificate,
    Kind::ServerKeyExchange,
    Kind::ServerHelloDone,
];
const STEP_3: &[Kind] = &[Kind::CertificateVerify, Kind::Finished];
const STEP_4: &[Kind] = &[Kind::CertificateRequest];
const STEP_5: &[Kind] = &[
    Kind::Certificate,
    Kind::ClientKeyExchange,
    Kind::CertificateVerify,
    Kind::Finished,
];
const STEP_8: &[Kind] = &[Kind::NewSessionTicket, Kind::ApplicationData];

/// The step of chapter 1 a message belongs to.
fn step_of(dir: Dir, message: &Message) -> Option<usize> {
    let k = &message.kind;
    match dir {
        TO_SERVER if STEP_1.contains(k) => Some(1),
        TO_SERVER if STEP_5.contains(k) => Some(5),
        TO_CLIENT if STEP_2.contains(k) => Some(2),
        TO_CLIENT if STEP_3.contains(k) => Some(3),
        TO_CLIENT if STEP_4.contains(k) => Some(4),
        _ if STEP_8.contains(k) => Some(8),
        _ => None,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut no_pause = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--no-pause" => no_pause = true,
            other => {
                eprintln!("error: unknown argument {other:?}; the tour takes only --no-pause");
                return ExitCode::from(2);
            }
        }
    }
    let log = Log::install();
    match tour(&Show::new(no_pause), log).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn tour(show: &Show, log: Log) -> mtls::Result<()> {
    let stage = Stage::new(log)?;
    show.say(&format!(
        "A tour of mutual TLS. A fresh CA, a server certificate and two client certificates \
         (Client A, Client B) were just minted into {}, with the break-it lab beside them; \
         the server runs in this process on 127.0.0.1, and only admits \
         spiffe://mtls.demo/client-a (an allow-list, as `server --allow-uri` sets).",
        stage.certs.path().display()
    ));
    let mut settings = stage.settings();
    settings.access.rules =
        vec![Rule::uri("spiffe://mtls.demo/client-a").map_err(mtls::Error::Usage)?];
    let server = stage.serve(settings).await?;

    one_connection(show, &stage, &server).await?;
    show.pause();
    failures(show, &stage, &server).await?;
    show.pause();
    audit(show, &stage, &server).await?;
    show.pause();
    show.chapter("4. Where next");
    show.say(
        "  cargo run -p certificate                      mint certs/ (once)\n  \
         cargo run -p server                           the demo server on 127.0.0.1:8443\n  \
         cargo run -p client -- -c=a --trace           this chapter-1 trace for your own call\n  \
         cargo run -p certificate -- lab               the failures of chapter 2, as files to try\n  \
         cargo run -p certificate -- verify FILE       would a handshake accept this certificate?\n  \
         cargo run -p certificate -- ca rotate         rotate the CA: trust both, renew, then `ca retire`\n  \
         cargo run -p client -- audit --url URL --ca certs/ca.crt   chapter 3 against your server\n  \
         RUST_LOG=debug cargo run -p server            the server's side of every trace\n\
         The README shows the browser view and how to open a capture in Wireshark.",
    );
    Ok(())
}

/// Chapter 1: Client A's call, step by step.
async fn one_connection(show: &Show, stage: &Stage, server: &Running) -> mtls::Result<()> {
    let mark = stage.log.mark();
    let ex = stage
        .call("localhost", server, Who::Demo(ClientId::A), None)
        .await
        .map_err(|failed| failed.error)?;
    let trace = ex.trace.as_ref();
    show.chapter("1. One mutual-TLS connection, message by message");
    show.say(&format!(
        "Client A calls https://localhost:{}/. Every handshake message, in the order it crossed \
         the wire ({} encrypts everything after ServerHello; the tour opens those records with \
         the session's own keys, as Wireshark does with SSLKEYLOGFILE). Each message is marked \
         with the step below it belongs to; with TLS 1.3 the server asks for the client's \
         certificate (step 4) before it presents its own (step 2).",
        server.port, ex.tls.version
    ));
    show.whole(trace, step_of);

    show.step(1, "The client connects and says what it can do");
    show.wire(trace, is(STEP_1, TO_SERVER));
    show.why(
        "the ClientHello offers the TLS versions, cipher suites and key-exchange groups the \
         client supports, with a key share for the groups it expects. X25519MLKEM768 is a hybrid \
         post-quantum key exchange (X25519 combined with ML-KEM-768): recorded traffic stays \
         private even against a future quantum computer. SNI names the host it dialled; ALPN \
         offers HTTP/2 and HTTP/1.1.",
    );

    show.step(2, "The server answers and presents its certificate chain");
    show.wire(trace, is(STEP_2, TO_CLIENT));
    show.why(
        "the server picks one version, suite and group, and both sides derive keys from the \
         key shares; from EncryptedExtensions on, TLS 1.3 encrypts everything. The Certificate \
         message carries the server's chain: who it claims to be, and which CA vouches for it.",
    );

    show.step(3, "The client verifies the server");
    show.wire(trace, is(STEP_3, TO_CLIENT));
    show.side("client", &server_checks(&ex));
    show.why(
        "a certificate is public; CertificateVerify is the server's signature over the \
         handshake so far, made with the private key that matches the certificate. Only the \
         real server can make it. Finished proves that both sides saw the same handshake.",
    );

    show.step(
        4,
        "The server asks for a certificate, naming the CAs it accepts",
    );
    show.wire(trace, is(STEP_4, TO_CLIENT));
    show.side(
        "client",
        &format!(
            "the server asked for a certificate from: {}",
            ex.ca_names.join("; ")
        ),
    );
    show.why(
        "this one message is what makes TLS mutual: without it the client never sends a \
         certificate. Its CA names tell the client (and a browser's certificate picker) which \
         certificates the server would accept.",
    );

    show.step(
        5,
        "The client presents its certificate and proves it holds the key",
    );
    show.wire(trace, is(STEP_5, TO_SERVER));
    show.side(
        "client",
        &format!(
            "presented {}",
            ex.presented.as_deref().unwrap_or("no certificate")
        ),
    );
    show.why(
        "the same proof as in step 3, the other way: the client signs the handshake with \
         client-a.key. Anyone can copy client-a.crt; nobody without the key can sign.",
    );

    show.step(6, "The server verifies the client");
    show.logged(&stage.log.after(mark, "client verified").await);
    show.why(
        "the server checked the client's chain against the CA it trusts, the dates, the \
         purpose (clientAuth) and, when given lists, revocation. With TLS 1.3 it does so after \
         it has sent its own Finished: a refusal reaches the client only on its first read \
         (chapter 2 shows it).",
    );

    show.step(7, "The server authorizes the identity");
    show.logged(&stage.log.after(mark, "identity admitted").await);
    show.why(
        "verified is not the same as allowed. The handshake proved who the client is \
         (authentication); the allow-list decides what it may do (authorization). Client B is \
         verified too, and gets 403 in chapter 2.",
    );

    show.step(8, "Encrypted data");
    show.wire(trace, |_, m| m.kind == Kind::NewSessionTicket);
    show.side("wire", &application_data(trace));
    show.side(
        "client",
        &format!(
            "{:?} {} over {}: {}",
            ex.version,
            ex.status,
            ex.tls.version,
            ex.body.trim_end()
        ),
    );
    show.why(
        "the request and the answer travel as application data under the keys of the \
         handshake: no one on the path can read or change them. A NewSessionTicket lets the \
         client resume later without a full handshake.",
    );
    Ok(())
}

/// The application data records of `trace`, counted each way (their content is never shown).
fn application_data(trace: Option<&Trace>) -> String {
    let count = |dir: Dir| {
        trace.map_or(0, |t| {
            t.messages()
                .filter(|(d, m)| *d == dir && m.kind == Kind::ApplicationData)
                .count()
        })
    };
    format!(
        "{} → ApplicationData records from the client and {} ← from the server: the HTTP/2 \
         request, the answer and HTTP/2's own settings frames, encrypted (never shown)",
        count(TO_SERVER),
        count(TO_CLIENT)
    )
}

/// Chapter 3: `client audit` against the tour's server.
async fn audit(show: &Show, stage: &Stage, server: &Running) -> mtls::Result<()> {
    show.chapter("3. Does the server refuse everyone it must? `client audit`");
    show.say(
        "Chapter 2 tried the failures one by one. `client audit` tries them all against any \
         mTLS server, each on its own connection, and judges each by what the server finally \
         did (the HTTP answer counts, since TLS 1.3 refusals come after the handshake). Given \
         the CA's key, as here, it also mints certificates from the trusted CA that are wrong in \
         one way, and one valid certificate with an identity nobody configured:",
    );
    let url = format!("https://localhost:{}/", server.port).parse()?;
    let mut settings = mtls::audit::AuditSettings::new(url, stage.certs.ca_cert());
    let a = Role::Client(ClientId::A);
    settings.good = Some((stage.certs.role_cert(a), stage.certs.role_key(a)));
    settings.issuer = Some((stage.certs.ca_cert(), stage.certs.role_key(Role::Ca)));
    let audit = mtls::audit::run(&settings, &mtls::audit::ProgressLine::hidden()).await?;
    show.say(&mtls::audit::Table(&audit).to_string());
    show.why(
        "a server that requests a certificate but does not check it (nginx's \
         optional_no_ca, a proxy that only asks) still completes handshakes; only trying the \
         clients it must refuse shows it. The unconfigured identity is refused here because of \
         the allow-list: this server authenticates and authorizes.",
    );
    Ok(())
}

/// What the client checked about the server, from what the handshake established.
fn server_checks(ex: &Exchange) -> String {
    let leaf = ex.tls.peer_chain.first();
    format!(
        "verified the server's chain: {} was issued by {}, the CA in {}; it is within its \
         dates, meant for serverAuth, and names \"{}\"",
        leaf.map_or("?", |l| l.subject.as_str()),
        leaf.map_or("?", |l| l.issuer.as_str()),
        ex.ca.display(),
        ex.host
    )
}

/// Chapter 2: the failures people meet.
async fn failures(show: &Show, stage: &Stage, server: &Running) -> mtls::Result<()> {
    show.chapter("2. When it fails: what each side says");

    show.case("No certificate: TLS 1.3 and TLS 1.2 side by side");
    let mark = stage.log.mark();
    let v13 = stage
        .call("localhost", server, Who::Nobody, Some(TlsVersion::Tls13))
        .await;
    let v12 = stage
        .call("localhost", server, Who::Nobody, Some(TlsVersion::Tls12))
        .await;
    side_by_side(
        show,
        ("TLS 1.3", trace_of(&v13)),
        ("TLS 1.2", trace_of(&v12)),
    );
    for (name, result) in [("TLS 1.3", &v13), ("TLS 1.2", &v12)] {
        show.side("client", &format!("{name}: {}", outcome(result)));
    }
    show.logged(&stage.log.after(mark, "TLS handshake failed").await);
    show.why(
        "with TLS 1.3 the client sends its (empty) certificate in its last flight and \
         considers the handshake done; the server's refusal arrives on the first read after \
         it. With TLS 1.2 the server judges the client before it sends its own Finished, so \
         the refusal arrives inside the handshake. Same alert, different moment.",
    );

    let lab_cases: [(&str, &str, &str); 3] = [
        (
            "A certificate from another CA",
            "client-from-other-ca",
            "the server trusts one CA. A certificate from any other CA, however valid \
             elsewhere, proves nothing to it.",
        ),
        (
            "An expired certificate",
            "client-expired",
            "certificates carry their own dates, and both sides check them against their clocks: \
             renew before the end date (or check the clocks, when one is off).",
        ),
        (
            "A certificate for the wrong purpose",
            "client-server-auth-only",
            "the extended key usage says what a certificate is for. This one is for servers \
             (serverAuth), so it cannot log in as a client, even though our CA signed it.",
        ),
    ];
    for (title, stem, why) in lab_cases {
        refused(show, stage, server, title, Who::Lab(stem), why).await;
    }

    let lab = stage.lab.path();
    let mut settings = stage.settings();
    settings.crls = vec![lab.join(mtls::ca::lab::REVOKED_CRL)];
    let with_crl = stage.serve(settings).await?;
    refused(
        show,
        stage,
        &with_crl,
        "A revoked certificate (a second server, given the CA's revocation list)",
        Who::Lab("client-revoked"),
        "our CA signed it and it is in date, but the CA has since revoked it. A server knows \
         only if it is given the list (`server --crl`), and keeps it fresh.",
    )
    .await;

    show.case("A server certificate without the name the client dialled");
    let mut settings = stage.settings();
    settings.cert = lab.join("server-without-ip-san.crt");
    settings.key = lab.join("server-without-ip-san.key");
    let no_ip = stage.serve(settings).await?;
    let mark = stage.log.mark();
    let result = stage
        .call("127.0.0.1", &no_ip, Who::Demo(ClientId::A), None)
        .await;
    show.wire(trace_of(&result), |_, m| {
        matches!(m.kind, Kind::Alert { .. })
    });
    show.side("client", &outcome(&result));
    show.logged(&stage.log.after(mark, "TLS handshake failed").await);
    show.why(
        "the client checks that the server's certificate names the host it dialled. This one \
         names DNS:localhost but not IP:127.0.0.1, so calling https://127.0.0.1/ is refused by \
         the client, which tells the server why with an alert.",
    );

    show.case("Verified but not allowed: Client B and the allow-list");
    let mark = stage.log.mark();
    let result = stage
        .call("localhost", server, Who::Demo(ClientId::B), None)
        .await;
    show.side("client", &outcome(&result));
    show.logged(&stage.log.after(mark, "identity denied").await);
    show.why(
        "the handshake succeeded: the server knows this is Client B. Its allow-list admits \
         only Client A, so every request gets 403. Authentication says who; authorization \
         says what they may do.",
    );
    Ok(())
}

/// One client refused by `server`: the alert on the wire, both sides' words, and why.
async fn refused(
    show: &Show,
    stage: &Stage,
    server: &Running,
    title: &str,
    who: Who<'_>,
    why: &str,
) {
    show.case(title);
    let mark = stage.log.mark();
    let result = stage.call("localhost", server, who, None).await;
    show.wire(trace_of(&result), |_, m| {
        matches!(m.kind, Kind::Alert { .. })
    });
    show.side("client", &outcome(&result));
    show.logged(&stage.log.after(mark, "TLS handshake failed").await);
    show.why(why);
}

fn trace_of(result: &Result<Exchange, FetchError>) -> Option<&Trace> {
    match result {
        Ok(ex) => ex.trace.as_ref(),
        Err(failed) => failed.trace.as_ref(),
    }
}

/// What the client made of it: the error, or the HTTP answer.
fn outcome(result: &Result<Exchange, FetchError>) -> String {
    match result {
        Ok(ex) => format!(
            "{} {}: {}",
            ex.status.as_u16(),
            ex.status.canonical_reason().unwrap_or(""),
            ex.body.trim_end()
        ),
        Err(failed) => format!("error: {}", failed.error),
    }
}

/// Two traces in two columns, one message per line.
fn side_by_side(show: &Show, left: (&str, Option<&Trace>), right: (&str, Option<&Trace>)) {
    let lines = |trace: Option<&Trace>| -> Vec<String> {
        trace
            .map(|t| {
                t.messages()
                    .map(|(d, m)| format!("{} {}", d.arrow(), m.title()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (l, r) = (lines(left.1), lines(right.1));
    let mut text = format!("{:<44}{}\n", left.0, right.0);
    for i in 0..l.len().max(r.len()) {
        let cell = |v: &Vec<String>| v.get(i).cloned().unwrap_or_default();
        text.push_str(&format!("{:<44}{}\n", cell(&l), cell(&r)));
    }
    show.side("wire", &text);
}
