//! From recorded bytes and the session's secrets to a [`Trace`]: records are split with
//! `tls-parser`, TLS 1.3 records are opened with the keys of the secret in force for their
//! sender, handshake messages are reassembled across records and parsed with `tls-parser`.
//! The TLS 1.3 formats it does not know (EncryptedExtensions, and the 1.3 Certificate,
//! CertificateRequest and NewSessionTicket) are read here with its extension parser and the
//! `nom` length-prefix combinators it re-exports.

use rustls::AlertDescription;
use tls_parser::nom::IResult;
use tls_parser::nom::multi::length_data;
use tls_parser::nom::number::complete::{be_u8, be_u16, be_u24, be_u32};
use tls_parser::{
    ECParametersContent, TlsExtension, TlsMessage, TlsMessageHandshake, parse_digitally_signed,
    parse_ecdh_params, parse_tls_client_hello_extensions, parse_tls_extensions,
    parse_tls_handshake_certificaterequest, parse_tls_handshake_client_hello,
    parse_tls_handshake_msg_certificate, parse_tls_handshake_msg_newsessionticket,
    parse_tls_handshake_server_hello, parse_tls_message_alert, parse_tls_raw_record,
    parse_tls_server_hello_extensions,
};
use x509_parser::prelude::{FromDer, X509Name};

use super::keys::{ConnectionSecrets, Label, RecordKey, Suite};
use super::{
    ContentType, Dir, Kind, Message, NotDecrypted, Protection, Record, Recording, Secrets, Trace,
    lower_hex,
};
use crate::certinfo::CertInfo;
use crate::format::alert_name;
use crate::format::escape_controls;

/// The random of a HelloRetryRequest: SHA-256 of "HelloRetryRequest" (RFC 8446 §4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// Builds the trace of `recording`, taking this connection's secrets (found by the random of
/// its ClientHello) out of `secrets`.
pub fn decode(recording: &Recording, secrets: &Secrets) -> Trace {
    let mut decoder = Decoder {
        store: secrets,
        secrets: None,
        tls13: false,
        suite: None,
        dirs: [DirState::default(), DirState::default()],
        trace: Trace::default(),
    };
    for (dir, bytes) in recording.chunks() {
        decoder.feed(dir, bytes);
    }
    decoder.finish(recording)
}

struct Decoder<'s> {
    store: &'s Secrets,
    secrets: Option<ConnectionSecrets>,
    /// The ServerHello chose TLS 1.3.
    tls13: bool,
    /// The cipher suite the ServerHello chose.
    suite: Option<u16>,
    dirs: [DirState; 2],
    trace: Trace,
}

#[derive(Default)]
struct DirState {
    /// Bytes of a record not yet complete.
    pending: Vec<u8>,
    /// Records seen so far.
    records: usize,
    /// Handshake bytes of a message not yet complete.
    handshake: Vec<u8>,
    cipher: Cipher,
    /// Bytes that are not TLS: nothing after them is read.
    broken: bool,
}

/// What the bytes waiting in one direction hold next.
enum Next {
    /// A whole record of this many bytes (header included) and this content type.
    Record(usize, u8),
    /// The start of a record whose rest has not arrived.
    NeedMore,
    /// Bytes that are not a TLS record.
    NotTls,
}

#[derive(Default)]
enum Cipher {
    /// Records in the clear.
    #[default]
    Plain,
    /// TLS 1.2 after ChangeCipherSpec: encrypted, not opened here.
    Tls12 { finished_seen: bool },
    /// TLS 1.3 after ServerHello: opened with the key from `label` (or not, and why).
    Tls13 {
        label: Label,
        key: Result<RecordKey, NotDecrypted>,
        seq: u64,
    },
}

impl Decoder<'_> {
    fn feed(&mut self, dir: Dir, bytes: &[u8]) {
        let i = dir.index();
        if self.dirs[i].broken {
            return;
        }
        self.dirs[i].pending.extend_from_slice(bytes);
        // Each turn takes a whole record off `pending`, or stops.
        while self.dirs[i].pending.len() >= 5 {
            let pending = &self.dirs[i].pending;
            // A record starts with a content type (20 to 24) and a 3.x version.
            let looks_like_tls = (20..=24).contains(&pending[0]) && pending[1] == 3;
            let next = match looks_like_tls {
                false => Next::NotTls,
                true => match parse_tls_raw_record(pending) {
                    Ok((rest, raw)) => {
                        Next::Record(pending.len() - rest.len(), raw.hdr.record_type.0)
                    }
                    Err(tls_parser::nom::Err::Incomplete(_)) => Next::NeedMore,
                    // Longer than any record may be.
                    Err(_) => Next::NotTls,
                },
            };
            match next {
                Next::Record(used, content_type) => {
                    let raw: Vec<u8> = self.dirs[i].pending.drain(..used).collect();
                    self.record(dir, content_type, &raw[..5], &raw[5..]);
                }
                Next::NeedMore => break,
                Next::NotTls => {
                    let state = &mut self.dirs[i];
                    let head = &state.pending[..state.pending.len().min(8)];
                    self.trace.notes.push(format!(
                        "the {} sent {} bytes that are not a TLS record (they start {}); \
                         nothing after them is shown",
                        dir.sender(),
                        state.pending.len(),
                        lower_hex(head)
                    ));
                    state.broken = true;
                    state.pending.clear();
                    break;
                }
            }
        }
    }

    fn record(&mut self, dir: Dir, content_type: u8, header: &[u8], payload: &[u8]) {
        let state = &mut self.dirs[dir.index()];
        state.records += 1;
        let content = ContentType::from(content_type);
        let mut record = Record {
            dir,
            index: state.records,
            content,
            length: payload.len(),
            protection: Protection::Plain,
            messages: Vec::new(),
        };
        match (&mut state.cipher, content) {
            (Cipher::Tls13 { label, key, seq }, ContentType::ApplicationData) => {
                let this = *seq;
                *seq += 1;
                let label = *label;
                let opened = match key {
                    Ok(key) => key
                        .open(this, header, payload)
                        .map_err(|e| NotDecrypted::Failed(label, e)),
                    Err(why) => Err(why.clone()),
                };
                match opened {
                    Ok((inner, plain)) => {
                        let inner = ContentType::from(inner);
                        record.protection = Protection::Decrypted {
                            secret: label,
                            inner,
                        };
                        self.content(dir, inner, &plain, &mut record);
                    }
                    Err(why) => record.protection = Protection::Encrypted(why),
                }
            }
            (Cipher::Tls12 { finished_seen }, ContentType::Handshake) => {
                record.protection = Protection::Encrypted(NotDecrypted::Tls12);
                // The first message after ChangeCipherSpec is Finished, by the protocol.
                let kind = match *finished_seen {
                    false => Kind::Finished,
                    true => Kind::EncryptedHandshake,
                };
                *finished_seen = true;
                let mut message = Message::new(kind);
                message.encrypted = true;
                record.messages.push(message);
            }
            (Cipher::Tls12 { .. }, ContentType::Alert) => {
                record.protection = Protection::Encrypted(NotDecrypted::Tls12);
                record.messages.push(Message::new(Kind::EncryptedAlert));
            }
            (Cipher::Tls12 { .. }, ContentType::ApplicationData) => {
                record.protection = Protection::Encrypted(NotDecrypted::Tls12);
                self.content(dir, content, payload, &mut record);
            }
            _ => self.content(dir, content, payload, &mut record),
        }
        self.trace.records.push(record);
    }

    /// The content of a record (as sent, or as decrypted).
    fn content(&mut self, dir: Dir, content: ContentType, data: &[u8], record: &mut Record) {
        match content {
            ContentType::ChangeCipherSpec => {
                let note = match self.tls13 {
                    true => "TLS 1.3 middlebox compatibility: this record changes nothing; it \
                             only makes the connection look like TLS 1.2 to old middleboxes"
                        .to_string(),
                    false => {
                        self.dirs[dir.index()].cipher = Cipher::Tls12 {
                            finished_seen: false,
                        };
                        format!("from here on the {} encrypts what it sends", dir.sender())
                    }
                };
                record
                    .messages
                    .push(Message::new(Kind::ChangeCipherSpec).with("note", note));
            }
            ContentType::Alert => {
                let mut rest = data;
                // Each alert is two bytes.
                for _ in 0..data.len() / 2 {
                    let Ok((next, TlsMessage::Alert(alert))) = parse_tls_message_alert(rest) else {
                        break;
                    };
                    rest = next;
                    let level = match alert.severity.0 {
                        1 => "warning".to_string(),
                        2 => "fatal".to_string(),
                        other => format!("level {other}"),
                    };
                    let description = alert_name(AlertDescription::from(alert.code.0));
                    let mut message = Message::new(Kind::Alert { level, description });
                    if alert.code.0 == 0 {
                        message = message.with(
                            "note",
                            format!("the {} is done sending (a clean close)", dir.sender()),
                        );
                    }
                    record.messages.push(message);
                }
            }
            ContentType::Handshake => {
                self.dirs[dir.index()].handshake.extend_from_slice(data);
                self.handshake_messages(dir, record);
            }
            ContentType::ApplicationData => {
                record
                    .messages
                    .push(Message::new(Kind::ApplicationData).with(
                        "content",
                        format!("{} bytes of application data, not shown", data.len()),
                    ))
            }
            ContentType::Other(_) => {}
        }
    }

    /// Takes every complete handshake message off the sender's buffer.
    fn handshake_messages(&mut self, dir: Dir, record: &mut Record) {
        // Each turn takes a whole message (at least its 4-byte header), or stops.
        loop {
            let buffer = &self.dirs[dir.index()].handshake;
            if buffer.len() < 4 {
                return;
            }
            let len =
                usize::from(buffer[1]) << 16 | usize::from(buffer[2]) << 8 | usize::from(buffer[3]);
            if buffer.len() < 4 + len {
                return;
            }
            let message: Vec<u8> = self.dirs[dir.index()].handshake.drain(..4 + len).collect();
            let parsed = self.handshake_message(dir, message[0], &message[4..]);
            record.messages.push(parsed);
        }
    }

    fn handshake_message(&mut self, dir: Dir, msg_type: u8, body: &[u8]) -> Message {
        let tls13 = self.tls13;
        let parsed = match msg_type {
            1 => {
                let (message, random) = client_hello(body);
                if let (Some(random), None) = (random, self.trace.client_random) {
                    self.trace.client_random = Some(random);
                    self.secrets = self.store.take(&random);
                }
                message
            }
            2 => {
                let hello = server_hello(body);
                if let Some(hello) = &hello {
                    self.tls13 = hello.version == 0x0304;
                    if !hello.retry {
                        self.suite = Some(hello.suite);
                        if self.tls13 {
                            self.start_tls13();
                        }
                    }
                }
                hello.map(|h| h.message)
            }
            4 if tls13 => new_session_ticket_13(body),
            4 => new_session_ticket_12(body),
            5 => Some(Message::new(Kind::EndOfEarlyData)),
            8 => encrypted_extensions(body),
            11 => certificate(body, tls13, dir),
            12 => server_key_exchange(body),
            13 if tls13 => certificate_request_13(body),
            13 => certificate_request_12(body),
            14 => Some(Message::new(Kind::ServerHelloDone)),
            15 => certificate_verify(body),
            16 => client_key_exchange(body),
            20 => {
                self.finished(dir);
                Some(
                    Message::new(Kind::Finished)
                        .with("verify data", format!("{} bytes", body.len())),
                )
            }
            24 => {
                self.key_update(dir);
                key_update(body)
            }
            other => Some(Message::new(Kind::OtherHandshake(other))),
        };
        parsed.unwrap_or_else(|| {
            Message::new(kind_of(msg_type)).with(
                "could not be read",
                format!("{} bytes that do not parse as this message", body.len()),
            )
        })
    }

    /// After a TLS 1.3 ServerHello both sides encrypt with their handshake secrets.
    fn start_tls13(&mut self) {
        for (dir, label) in [
            (Dir::ClientToServer, Label::ClientHandshake),
            (Dir::ServerToClient, Label::ServerHandshake),
        ] {
            self.dirs[dir.index()].cipher = Cipher::Tls13 {
                label,
                key: self.key(label),
                seq: 0,
            };
        }
    }

    /// After its TLS 1.3 Finished a side switches to its application traffic secret.
    fn finished(&mut self, dir: Dir) {
        let next = match &self.dirs[dir.index()].cipher {
            Cipher::Tls13 {
                label: Label::ClientHandshake,
                ..
            } => Label::ClientTraffic,
            Cipher::Tls13 {
                label: Label::ServerHandshake,
                ..
            } => Label::ServerTraffic,
            _ => return,
        };
        self.dirs[dir.index()].cipher = Cipher::Tls13 {
            label: next,
            key: self.key(next),
            seq: 0,
        };
    }

    /// A KeyUpdate: the sender's next records use the next traffic secret.
    fn key_update(&mut self, dir: Dir) {
        if let Cipher::Tls13 { key, seq, .. } = &mut self.dirs[dir.index()].cipher
            && let Ok(current) = key
        {
            if let Some(next) = current.updated() {
                *key = Ok(next);
            }
            *seq = 0;
        }
    }

    fn key(&self, label: Label) -> Result<RecordKey, NotDecrypted> {
        let id = self.suite.unwrap_or_default();
        let suite = Suite::tls13(id).ok_or(NotDecrypted::UnknownSuite(id))?;
        let secret = self
            .secrets
            .as_ref()
            .and_then(|s| s.get(label))
            .ok_or(NotDecrypted::NoSecret(label))?;
        RecordKey::derive(suite, secret).ok_or(NotDecrypted::NoSecret(label))
    }

    fn finish(mut self, recording: &Recording) -> Trace {
        for dir in [Dir::ClientToServer, Dir::ServerToClient] {
            let state = &self.dirs[dir.index()];
            if !state.broken && !state.pending.is_empty() {
                self.trace.notes.push(format!(
                    "the recording ends inside a record from the {} ({} bytes of it)",
                    dir.sender(),
                    state.pending.len()
                ));
            }
            if !state.handshake.is_empty() {
                self.trace.notes.push(format!(
                    "the recording ends inside a handshake message from the {} ({} bytes of it)",
                    dir.sender(),
                    state.handshake.len()
                ));
            }
            if recording.cut(dir) {
                self.trace.notes.push(format!(
                    "recording stopped after {} KiB from the {}: later records are not shown",
                    super::MAX_RECORDED / 1024,
                    dir.sender()
                ));
            }
        }
        self.trace
    }
}

fn kind_of(msg_type: u8) -> Kind {
    match msg_type {
        1 => Kind::ClientHello,
        2 => Kind::ServerHello,
        4 => Kind::NewSessionTicket,
        5 => Kind::EndOfEarlyData,
        8 => Kind::EncryptedExtensions,
        11 => Kind::Certificate,
        12 => Kind::ServerKeyExchange,
        13 => Kind::CertificateRequest,
        14 => Kind::ServerHelloDone,
        15 => Kind::CertificateVerify,
        16 => Kind::ClientKeyExchange,
        20 => Kind::Finished,
        24 => Kind::KeyUpdate,
        other => Kind::OtherHandshake(other),
    }
}

fn client_hello(body: &[u8]) -> (Option<Message>, Option<[u8; 32]>) {
    let Ok((_, hello)) = parse_tls_handshake_client_hello(body) else {
        return (None, None);
    };
    let random = <[u8; 32]>::try_from(hello.random).ok();
    let extensions = hello
        .ext
        .and_then(|e| parse_tls_client_hello_extensions(e).ok())
        .map(|(_, v)| v)
        .unwrap_or_default();
    let mut m = Message::new(Kind::ClientHello);
    let versions = extensions.iter().find_map(|e| match e {
        TlsExtension::SupportedVersions(v) => Some(list(v.iter().map(|v| v.0), version_name)),
        _ => None,
    });
    m = m.with(
        "versions",
        versions.unwrap_or_else(|| version_name(hello.version.0)),
    );
    m = m.with(
        "cipher suites",
        list(hello.ciphers.iter().map(|c| c.0), suite_name),
    );
    for e in &extensions {
        if let TlsExtension::EllipticCurves(groups) = e {
            m = m.with(
                "key-exchange groups",
                list(groups.iter().map(|g| g.0), group_name),
            );
        }
    }
    for e in &extensions {
        if let TlsExtension::KeyShare(raw) = e {
            let shares = client_key_shares(raw)
                .map(|(_, g)| list(g.into_iter(), group_name))
                .unwrap_or_else(|_| "unreadable".into());
            m = m.with("key shares sent for", shares);
        }
    }
    let sni = extensions.iter().find_map(|e| match e {
        TlsExtension::SNI(names) => Some(
            names
                .iter()
                .map(|(_, n)| text(n))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        _ => None,
    });
    m = m.with(
        "server name (SNI)",
        sni.unwrap_or_else(|| "none (a client that dials an IP address sends none)".into()),
    );
    let alpn = extensions.iter().find_map(|e| match e {
        TlsExtension::ALPN(protocols) => Some(alpn_list(protocols)),
        _ => None,
    });
    m = m.with("ALPN", alpn.unwrap_or_else(|| "none offered".into()));
    for e in &extensions {
        match e {
            TlsExtension::SignatureAlgorithms(schemes) => {
                m = m.with(
                    "signature algorithms",
                    list(schemes.iter().copied(), scheme_name),
                );
            }
            TlsExtension::PreSharedKey(_) => {
                m = m.with(
                    "resumption",
                    "offers a session from an earlier connection (pre_shared_key)",
                );
            }
            TlsExtension::EarlyData(_) => m = m.with("early data", "offered (0-RTT)"),
            _ => {}
        }
    }
    if let Some(random) = random {
        m = m.with("random", lower_hex(&random));
    }
    (Some(m), random)
}

/// The groups of a ClientHello's key_share extension (RFC 8446 §4.2.8).
fn client_key_shares(raw: &[u8]) -> IResult<&[u8], Vec<u16>> {
    let (rest, mut shares) = vec16(raw)?;
    let mut groups = Vec::new();
    // Each turn reads one entry (at least 4 bytes).
    while !shares.is_empty() {
        let (next, group) = be_u16(shares)?;
        let (next, _key) = vec16(next)?;
        groups.push(group);
        shares = next;
    }
    Ok((rest, groups))
}

struct ServerHello {
    message: Message,
    version: u16,
    suite: u16,
    retry: bool,
}

fn server_hello(body: &[u8]) -> Option<ServerHello> {
    let (_, hello) = parse_tls_handshake_server_hello(body).ok()?;
    let extensions = hello
        .ext
        .and_then(|e| parse_tls_server_hello_extensions(e).ok())
        .map(|(_, v)| v)
        .unwrap_or_default();
    let version = extensions
        .iter()
        .find_map(|e| match e {
            TlsExtension::SupportedVersions(v) => v.first().map(|v| v.0),
            _ => None,
        })
        .unwrap_or(hello.version.0);
    let retry = hello.random == HRR_RANDOM;
    let kind = match retry {
        true => Kind::HelloRetryRequest,
        false => Kind::ServerHello,
    };
    let mut m = Message::new(kind)
        .with("version", version_name(version))
        .with("cipher suite", suite_name(hello.cipher.0));
    for e in &extensions {
        match e {
            TlsExtension::KeyShare(raw) if raw.len() >= 2 => {
                let group = u16::from_be_bytes([raw[0], raw[1]]);
                m = match retry {
                    true => m.with("asks again, with a key share for", group_name(group)),
                    false => m.with("key exchange", group_name(group)),
                };
            }
            TlsExtension::ALPN(protocols) => m = m.with("ALPN", alpn_list(protocols)),
            TlsExtension::PreSharedKey(_) => {
                m = m.with("resumption", "accepts the offered session (pre_shared_key)");
            }
            TlsExtension::ExtendedMasterSecret => {
                m = m.with("extended master secret", "yes (RFC 7627)");
            }
            _ => {}
        }
    }
    if version != 0x0304 && !retry {
        m = m.with(
            "note",
            "TLS 1.2: the handshake is readable as it passes until ChangeCipherSpec",
        );
    }
    Some(ServerHello {
        message: m,
        version,
        suite: hello.cipher.0,
        retry,
    })
}

fn encrypted_extensions(body: &[u8]) -> Option<Message> {
    let (_, raw) = vec16(body).ok()?;
    let (_, extensions) = parse_tls_extensions(raw).ok()?;
    let mut m = Message::new(Kind::EncryptedExtensions);
    let mut others = Vec::new();
    for e in &extensions {
        match e {
            TlsExtension::ALPN(protocols) => m = m.with("ALPN", alpn_list(protocols)),
            TlsExtension::SNI(_) => m = m.with("server name (SNI)", "acknowledged"),
            TlsExtension::EllipticCurves(groups) => {
                m = m.with(
                    "groups the server supports",
                    list(groups.iter().map(|g| g.0), group_name),
                );
            }
            other => others.push(tls_parser::TlsExtensionType::from(other).to_string()),
        }
    }
    if !extensions
        .iter()
        .any(|e| matches!(e, TlsExtension::ALPN(_)))
    {
        m = m.with("ALPN", "none chosen");
    }
    if !others.is_empty() {
        m = m.with("other extensions", others.join(", "));
    }
    Some(m)
}

fn certificate(body: &[u8], tls13: bool, dir: Dir) -> Option<Message> {
    let certs: Vec<&[u8]> = match tls13 {
        true => certificate_13(body).ok()?.1,
        false => match parse_tls_handshake_msg_certificate(body).ok()?.1 {
            TlsMessageHandshake::Certificate(c) => c.cert_chain.iter().map(|c| c.data).collect(),
            _ => return None,
        },
    };
    let mut m = Message::new(Kind::Certificate);
    if certs.is_empty() {
        let why = match dir {
            Dir::ClientToServer => "empty (no client certificate)",
            Dir::ServerToClient => "empty",
        };
        return Some(m.with("certificates", why));
    }
    let count = match certs.len() {
        1 => "1 certificate".to_string(),
        n => format!("{n} certificates, leaf first"),
    };
    m = m.with("certificates", count);
    for (i, der) in certs.iter().enumerate() {
        let described = match CertInfo::parse(der) {
            Ok(info) => format!(
                "{} (issued by {})",
                text(info.subject.as_bytes()),
                text(info.issuer.as_bytes())
            ),
            Err(why) => format!("{} bytes, {why}", der.len()),
        };
        m = m.with(&format!("certificate {}", i + 1), described);
    }
    Some(m)
}

/// The certificates of a TLS 1.3 Certificate (RFC 8446 §4.4.2): the request context, then
/// each entry's DER and extensions.
fn certificate_13(body: &[u8]) -> IResult<&[u8], Vec<&[u8]>> {
    let (body, _context) = vec8(body)?;
    let (rest, mut entries) = vec24(body)?;
    let mut certs = Vec::new();
    // Each turn reads one entry (at least 5 bytes).
    while !entries.is_empty() {
        let (next, der) = vec24(entries)?;
        let (next, _extensions) = vec16(next)?;
        certs.push(der);
        entries = next;
    }
    Ok((rest, certs))
}

fn certificate_request_13(body: &[u8]) -> Option<Message> {
    let (body, _context) = vec8(body).ok()?;
    let (_, raw) = vec16(body).ok()?;
    let (_, extensions) = parse_tls_extensions(raw).ok()?;
    let mut m = Message::new(Kind::CertificateRequest);
    let mut names = Vec::new();
    for e in &extensions {
        match e {
            TlsExtension::SignatureAlgorithms(schemes) => {
                m = m.with(
                    "signature algorithms",
                    list(schemes.iter().copied(), scheme_name),
                );
            }
            // certificate_authorities (RFC 8446 §4.2.4), which tls-parser leaves unparsed.
            TlsExtension::Unknown(t, data) if t.0 == 47 => {
                names = distinguished_names(data).ok()?.1;
            }
            _ => {}
        }
    }
    Some(with_ca_names(m, &names))
}

fn certificate_request_12(body: &[u8]) -> Option<Message> {
    let (_, request) = parse_tls_handshake_certificaterequest(body).ok()?;
    let mut m = Message::new(Kind::CertificateRequest);
    if let Some(schemes) = &request.sig_hash_algs {
        m = m.with(
            "signature algorithms",
            list(schemes.iter().copied(), scheme_name),
        );
    }
    Some(with_ca_names(m, &request.unparsed_ca))
}

/// A list of DistinguishedName (each length-prefixed DER), itself length-prefixed.
fn distinguished_names(data: &[u8]) -> IResult<&[u8], Vec<&[u8]>> {
    let (rest, mut all) = vec16(data)?;
    let mut names = Vec::new();
    // Each turn reads one name (at least 2 bytes).
    while !all.is_empty() {
        let (next, der) = vec16(all)?;
        names.push(der);
        all = next;
    }
    Ok((rest, names))
}

fn with_ca_names(mut m: Message, names: &[&[u8]]) -> Message {
    if names.is_empty() {
        return m.with(
            "acceptable CA names",
            "none given (a certificate from any CA the server trusts)",
        );
    }
    for der in names {
        let name = match X509Name::from_der(der) {
            Ok((_, name)) => text(name.to_string().as_bytes()),
            Err(_) => format!("{} bytes that are not a distinguished name", der.len()),
        };
        m = m.with("acceptable CA name", name);
    }
    m
}

fn server_key_exchange(body: &[u8]) -> Option<Message> {
    let (rest, params) = parse_ecdh_params(body).ok()?;
    let mut m = Message::new(Kind::ServerKeyExchange);
    if let ECParametersContent::NamedGroup(group) = params.curve_params.params_content {
        m = m.with("key exchange", group_name(group.0));
    }
    if let Ok((_, signed)) = parse_digitally_signed(rest)
        && let Some(alg) = signed.alg
    {
        let scheme = u16::from(alg.hash.0) << 8 | u16::from(alg.sign.0);
        m = m.with("signed with", scheme_name(scheme));
    }
    Some(m)
}

fn certificate_verify(body: &[u8]) -> Option<Message> {
    let (_, signed) = parse_digitally_signed(body).ok()?;
    let alg = signed.alg?;
    let scheme = u16::from(alg.hash.0) << 8 | u16::from(alg.sign.0);
    Some(
        Message::new(Kind::CertificateVerify)
            .with("signature algorithm", scheme_name(scheme))
            .with("signature", format!("{} bytes", signed.data.len())),
    )
}

fn client_key_exchange(body: &[u8]) -> Option<Message> {
    let (_, public) = vec8(body).ok()?;
    Some(Message::new(Kind::ClientKeyExchange).with(
        "public key",
        format!("{} bytes (the client's ECDHE share)", public.len()),
    ))
}

fn new_session_ticket_13(body: &[u8]) -> Option<Message> {
    let parsed: IResult<&[u8], (u32, &[u8])> = (|i| {
        let (i, lifetime) = be_u32(i)?;
        let (i, _age_add) = be_u32(i)?;
        let (i, _nonce) = vec8(i)?;
        let (i, ticket) = vec16(i)?;
        let (i, _extensions) = vec16(i)?;
        Ok((i, (lifetime, ticket)))
    })(body);
    let (_, (lifetime, ticket)) = parsed.ok()?;
    Some(ticket_message(lifetime, ticket.len()))
}

fn new_session_ticket_12(body: &[u8]) -> Option<Message> {
    match parse_tls_handshake_msg_newsessionticket(body, body.len())
        .ok()?
        .1
    {
        TlsMessageHandshake::NewSessionTicket(t) => {
            Some(ticket_message(t.ticket_lifetime_hint, t.ticket.len()))
        }
        _ => None,
    }
}

fn ticket_message(lifetime: u32, len: usize) -> Message {
    let hours = match lifetime {
        l if l >= 3600 && l % 3600 == 0 => format!(" ({} h)", l / 3600),
        _ => String::new(),
    };
    Message::new(Kind::NewSessionTicket)
        .with("lifetime", format!("{lifetime} s{hours}"))
        .with(
            "ticket",
            format!("{len} bytes (to resume this session without certificates)"),
        )
}

fn key_update(body: &[u8]) -> Option<Message> {
    let request = match body.first()? {
        0 => "update_not_requested",
        1 => "update_requested (the peer should update its keys too)",
        _ => return None,
    };
    Some(Message::new(Kind::KeyUpdate).with("request", request))
}

/// A vector with a one-byte length (RFC 8446 §3.4).
fn vec8(i: &[u8]) -> IResult<&[u8], &[u8]> {
    length_data(be_u8)(i)
}

/// A vector with a two-byte length.
fn vec16(i: &[u8]) -> IResult<&[u8], &[u8]> {
    length_data(be_u16)(i)
}

/// A vector with a three-byte length.
fn vec24(i: &[u8]) -> IResult<&[u8], &[u8]> {
    length_data(be_u24)(i)
}

/// A GREASE value (RFC 8701): a random reserved value meant to be ignored.
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

fn list(values: impl Iterator<Item = u16>, name: fn(u16) -> String) -> String {
    let names: Vec<String> = values.filter(|v| !is_grease(*v)).map(name).collect();
    match names.is_empty() {
        true => "none".into(),
        false => names.join(", "),
    }
}

fn version_name(v: u16) -> String {
    match v {
        0x0304 => "TLSv1.3".into(),
        0x0303 => "TLSv1.2".into(),
        0x0302 => "TLSv1.1".into(),
        0x0301 => "TLSv1.0".into(),
        0x0300 => "SSLv3".into(),
        other => format!("0x{other:04x}"),
    }
}

fn suite_name(id: u16) -> String {
    rustls::CipherSuite::from(id)
        .as_str()
        .or_else(|| tls_parser::TlsCipherSuite::from_id(id).map(|s| s.name))
        .map(str::to_string)
        .unwrap_or_else(|| format!("0x{id:04x}"))
}

/// A key-exchange group by name, with what a learner needs to know about the hybrids.
fn group_name(id: u16) -> String {
    let name = rustls::NamedGroup::from(id)
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| match id {
            0x11ed => "SecP384r1MLKEM1024".into(),
            other => format!("0x{other:04x}"),
        });
    match id {
        0x11ec => format!("{name} (hybrid post-quantum: X25519 + ML-KEM-768)"),
        0x11eb => format!("{name} (hybrid post-quantum: P-256 + ML-KEM-768)"),
        0x11ed => format!("{name} (hybrid post-quantum: P-384 + ML-KEM-1024)"),
        0x0200..=0x0202 => format!("{name} (post-quantum: ML-KEM alone)"),
        _ => name,
    }
}

/// A signature scheme by its IANA name (`ecdsa_secp256r1_sha256`), as openssl and
/// Wireshark print it; those tls-parser does not know (ML-DSA) by rustls's name.
fn scheme_name(id: u16) -> String {
    let name = tls_parser::SignatureScheme(id).to_string();
    if !name.starts_with("SignatureScheme(") {
        return name;
    }
    rustls::SignatureScheme::from(id)
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("0x{id:04x}"))
}

fn alpn_list(protocols: &[&[u8]]) -> String {
    protocols
        .iter()
        .map(|p| text(p))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Peer-chosen bytes as text that cannot forge a line.
fn text(bytes: &[u8]) -> String {
    escape_controls(&String::from_utf8_lossy(bytes)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::super::keys::tests::unhex;
    use super::*;

    // RFC 8448 §3, "Simple 1-RTT Handshake": the ClientHello and ServerHello records, the
    // client's Finished record, and the client handshake traffic secret.
    const CLIENT_HELLO: &str = "16030100c4010000c00303cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7000006130113031302010000910000000b0009000006736572766572ff01000100000a00140012001d0017001800190100010101020103010400230000003300260024001d002099381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c002b0003020304000d0020001e040305030603020308040805080604010501060102010402050206020202002d00020101001c00024001";
    const SERVER_HELLO: &str = "160303005a020000560303a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac155772ed3e2692800130100002e00330024001d0020c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f002b00020304";
    const CLIENT_FINISHED: &str = "170303003575ec4dc238cce60b298044a71e219c56cc77b0517fe9b93c7a4bfc44d87f38f80338ac98fc46deb384bd1caeacab6867d726c40546";
    const CLIENT_RANDOM: &str = "cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7";
    const CLIENT_HS_SECRET: &str =
        "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21";

    fn rfc8448(finished: &[u8]) -> (Recording, std::sync::Arc<Secrets>) {
        let mut rec = Recording::default();
        rec.push(Dir::ClientToServer, &unhex(CLIENT_HELLO));
        rec.push(Dir::ServerToClient, &unhex(SERVER_HELLO));
        rec.push(Dir::ClientToServer, finished);
        let secrets = Secrets::kept();
        secrets.file(
            Label::ClientHandshake,
            &unhex(CLIENT_RANDOM),
            &unhex(CLIENT_HS_SECRET),
        );
        (rec, secrets)
    }

    fn names(trace: &Trace) -> Vec<(Dir, String)> {
        trace.messages().map(|(d, m)| (d, m.title())).collect()
    }

    #[test]
    fn the_rfc_8448_handshake_decodes_and_the_clients_finished_decrypts() {
        let (rec, secrets) = rfc8448(&unhex(CLIENT_FINISHED));
        let trace = decode(&rec, &secrets);
        assert_eq!(
            names(&trace),
            vec![
                (Dir::ClientToServer, "ClientHello".to_string()),
                (Dir::ServerToClient, "ServerHello".to_string()),
                (Dir::ClientToServer, "Finished".to_string()),
            ],
            "{trace}"
        );
        assert_eq!(
            trace.client_random,
            Some(unhex(CLIENT_RANDOM).try_into().expect("32"))
        );
        let hello = &trace.records[0].messages[0];
        let detail = |m: &Message, label: &str| {
            m.details
                .iter()
                .find(|(l, _)| l == label)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {label} in {m:?}"))
        };
        assert_eq!(detail(hello, "versions"), "TLSv1.3");
        assert_eq!(detail(hello, "server name (SNI)"), "server");
        assert_eq!(
            detail(hello, "cipher suites"),
            "TLS13_AES_128_GCM_SHA256, TLS13_CHACHA20_POLY1305_SHA256, TLS13_AES_256_GCM_SHA384"
        );
        assert!(detail(hello, "key-exchange groups").starts_with("X25519, secp256r1"));
        let server = &trace.records[1].messages[0];
        assert_eq!(detail(server, "cipher suite"), "TLS13_AES_128_GCM_SHA256");
        assert_eq!(detail(server, "key exchange"), "X25519");
        let finished = &trace.records[2];
        assert_eq!(
            finished.protection,
            Protection::Decrypted {
                secret: Label::ClientHandshake,
                inner: ContentType::Handshake
            }
        );
        assert_eq!(detail(&finished.messages[0], "verify data"), "32 bytes");
        assert!(trace.notes.is_empty(), "{:?}", trace.notes);
        // The secrets were claimed by this connection.
        assert!(
            secrets
                .take(&unhex(CLIENT_RANDOM).try_into().expect("32"))
                .is_none()
        );
    }

    #[test]
    fn records_split_across_reads_decode_the_same() {
        let (whole, secrets) = rfc8448(&unhex(CLIENT_FINISHED));
        let expected = decode(&whole, &secrets);
        let (_, secrets) = rfc8448(&unhex(CLIENT_FINISHED));
        // One byte per read, as a slow network might deliver them.
        let mut split = Recording::default();
        for (dir, bytes) in whole.chunks() {
            for b in bytes {
                split.push(dir, std::slice::from_ref(b));
            }
        }
        assert_eq!(decode(&split, &secrets), expected);
    }

    #[test]
    fn a_record_that_does_not_decrypt_is_reported_not_guessed() {
        let mut damaged = unhex(CLIENT_FINISHED);
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        let (rec, secrets) = rfc8448(&damaged);
        let trace = decode(&rec, &secrets);
        let record = &trace.records[2];
        assert_eq!(
            record.protection,
            Protection::Encrypted(NotDecrypted::Failed(
                Label::ClientHandshake,
                super::super::OpenError::Authentication
            ))
        );
        assert!(record.messages.is_empty(), "nothing guessed: {record:?}");
        assert!(
            trace.to_string().contains("could not be decrypted"),
            "{trace}"
        );
    }

    #[test]
    fn without_the_secret_encrypted_records_say_which_secret_is_missing() {
        let (rec, _) = rfc8448(&unhex(CLIENT_FINISHED));
        let trace = decode(&rec, &Secrets::kept());
        assert_eq!(
            trace.records[2].protection,
            Protection::Encrypted(NotDecrypted::NoSecret(Label::ClientHandshake))
        );
    }

    #[test]
    fn bytes_that_are_not_tls_are_noted_and_not_read_as_records() {
        let mut rec = Recording::default();
        rec.push(Dir::ClientToServer, b"GET / HTTP/1.1\r\n\r\n");
        let trace = decode(&rec, &Secrets::kept());
        assert!(trace.records.is_empty());
        assert_eq!(trace.notes.len(), 1, "{:?}", trace.notes);
        assert!(
            trace.notes[0].contains("not a TLS record"),
            "{:?}",
            trace.notes
        );
    }

    #[test]
    fn a_recording_that_ends_inside_a_record_says_so() {
        let mut rec = Recording::default();
        let hello = unhex(CLIENT_HELLO);
        rec.push(Dir::ClientToServer, &hello[..100]);
        let trace = decode(&rec, &Secrets::kept());
        assert!(trace.records.is_empty());
        assert!(
            trace.notes[0].contains("ends inside a record from the client (100 bytes"),
            "{:?}",
            trace.notes
        );
    }

    #[test]
    fn tls12_records_after_change_cipher_spec_are_encrypted_and_the_first_is_finished() {
        // A TLS 1.2 ServerHello (no supported_versions), then the client's
        // ChangeCipherSpec, an encrypted handshake record and an alert record.
        let mut server_hello = vec![0x02, 0, 0, 0x26, 0x03, 0x03];
        server_hello.extend([0x11; 32]);
        server_hello.extend([0x00, 0xc0, 0x2b, 0x00]);
        let mut rec = Recording::default();
        rec.push(Dir::ServerToClient, &record(22, &server_hello));
        rec.push(Dir::ClientToServer, &record(20, &[1]));
        rec.push(Dir::ClientToServer, &record(22, &[0xaa; 40]));
        rec.push(Dir::ClientToServer, &record(21, &[0xbb; 26]));
        rec.push(Dir::ServerToClient, &record(21, &[2, 116]));
        let trace = decode(&rec, &Secrets::kept());
        assert_eq!(
            names(&trace),
            vec![
                (Dir::ServerToClient, "ServerHello".to_string()),
                (Dir::ClientToServer, "ChangeCipherSpec".to_string()),
                (Dir::ClientToServer, "Finished (encrypted)".to_string()),
                (Dir::ClientToServer, "Alert (encrypted)".to_string()),
                (
                    Dir::ServerToClient,
                    "Alert: fatal certificate_required".to_string()
                ),
            ],
            "{trace}"
        );
        assert_eq!(
            trace.records[2].protection,
            Protection::Encrypted(NotDecrypted::Tls12)
        );
        let server = &trace.records[0].messages[0];
        assert!(
            server.details.contains(&(
                "cipher suite".into(),
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into()
            )),
            "{server:?}"
        );
    }

    #[test]
    fn a_handshake_message_spanning_two_records_is_listed_with_the_second() {
        let hello = unhex(CLIENT_HELLO);
        let body = &hello[5..];
        let mut rec = Recording::default();
        rec.push(Dir::ClientToServer, &record(22, &body[..50]));
        rec.push(Dir::ClientToServer, &record(22, &body[50..]));
        let trace = decode(&rec, &Secrets::kept());
        assert_eq!(trace.records.len(), 2);
        assert!(trace.records[0].messages.is_empty());
        assert_eq!(trace.records[1].messages[0].kind, Kind::ClientHello);
    }

    #[test]
    fn a_recording_cut_at_its_bound_says_where_it_stopped() {
        let mut rec = Recording::default();
        let data = record(23, &[0x42; 16_000]);
        for _ in 0..=super::super::MAX_RECORDED / data.len() {
            rec.push(Dir::ServerToClient, &data);
        }
        assert!(rec.cut(Dir::ServerToClient));
        let trace = decode(&rec, &Secrets::kept());
        assert_eq!(
            trace.records.len(),
            super::super::MAX_RECORDED / data.len(),
            "the whole records before the bound"
        );
        assert!(
            trace.notes.iter().any(|n| n
                == "recording stopped after 256 KiB from the server: later records are not shown"),
            "{:?}",
            trace.notes
        );
    }

    fn record(content_type: u8, payload: &[u8]) -> Vec<u8> {
        let len = u16::try_from(payload.len()).expect("short");
        let mut out = vec![content_type, 3, 3];
        out.extend(len.to_be_bytes());
        out.extend(payload);
        out
    }
}
