//! The handshake as it actually happened on one connection, message by message, from the
//! bytes on the wire: `client --trace`, and the server's debug log.
//!
//! Three parts, in the order a connection meets them:
//! - [`Recorder`] wraps the TCP stream and copies the raw bytes of both directions, in
//!   order, into a bounded [`Recording`] (through a [`Tap`]).
//! - [`key_log`] is the rustls [`KeyLog`](rustls::KeyLog) of both sides: it files the
//!   session's own secrets by client random in [`Secrets`] (the server's config is shared by
//!   all its connections), and writes them to `SSLKEYLOGFILE` (NSS key log format, which
//!   Wireshark reads) when that is set.
//! - [`decode`] turns the recording and the secrets into a typed [`Trace`]: each record
//!   (direction, index, content type, length, whether and how it was decrypted) with the
//!   messages it carries, parsed with the `tls-parser` crate. TLS 1.2 handshakes are readable
//!   as they pass until ChangeCipherSpec; TLS 1.3 encrypts everything after ServerHello, so
//!   those records are opened with keys derived from the handshake and traffic secrets.
//!   Nothing is guessed: a record that does not open is shown as such.

mod decode;
mod keys;
mod recorder;

use std::fmt;
use std::net::SocketAddr;

use serde_json::json;
use tracing::debug;

pub use decode::decode;
pub use keys::{ConnectionSecrets, Label, OpenError, Secrets, key_log};
pub use recorder::{MAX_RECORDED, Recorder, Recording, Tap};

/// Whether this process logs at debug level (the server traces handshakes only then).
pub fn debug_enabled() -> bool {
    tracing::enabled!(tracing::Level::DEBUG)
}

/// Who sent a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From the client to the server (`→`).
    ClientToServer,
    /// From the server to the client (`←`).
    ServerToClient,
}

impl Dir {
    fn index(self) -> usize {
        match self {
            Dir::ClientToServer => 0,
            Dir::ServerToClient => 1,
        }
    }

    fn reverse(self) -> Self {
        match self {
            Dir::ClientToServer => Dir::ServerToClient,
            Dir::ServerToClient => Dir::ClientToServer,
        }
    }

    /// `→` for client to server, `←` for server to client.
    pub fn arrow(self) -> &'static str {
        match self {
            Dir::ClientToServer => "→",
            Dir::ServerToClient => "←",
        }
    }

    /// `client->server` or `server->client`, for logs and JSON.
    pub fn label(self) -> &'static str {
        match self {
            Dir::ClientToServer => "client->server",
            Dir::ServerToClient => "server->client",
        }
    }

    /// The sender: `client` or `server`.
    pub fn sender(self) -> &'static str {
        match self {
            Dir::ClientToServer => "client",
            Dir::ServerToClient => "server",
        }
    }
}

/// A record's content type (RFC 8446 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentType {
    /// 20.
    ChangeCipherSpec,
    /// 21.
    Alert,
    /// 22.
    Handshake,
    /// 23.
    ApplicationData,
    /// Anything else.
    Other(u8),
}

impl From<u8> for ContentType {
    fn from(v: u8) -> Self {
        match v {
            20 => ContentType::ChangeCipherSpec,
            21 => ContentType::Alert,
            22 => ContentType::Handshake,
            23 => ContentType::ApplicationData,
            other => ContentType::Other(other),
        }
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentType::ChangeCipherSpec => f.write_str("change_cipher_spec"),
            ContentType::Alert => f.write_str("alert"),
            ContentType::Handshake => f.write_str("handshake"),
            ContentType::ApplicationData => f.write_str("application_data"),
            ContentType::Other(v) => write!(f, "content type {v}"),
        }
    }
}

/// Whether a record was readable, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Sent in the clear.
    Plain,
    /// Encrypted, and opened with the key derived from this secret; `inner` is the content
    /// type inside (a TLS 1.3 record always says `application_data` outside).
    Decrypted {
        /// The secret the key came from.
        secret: Label,
        /// The real content type.
        inner: ContentType,
    },
    /// Encrypted and not opened, for this reason.
    Encrypted(NotDecrypted),
}

/// Why an encrypted record is shown without its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotDecrypted {
    /// TLS 1.2 after ChangeCipherSpec: this trace does not decrypt TLS 1.2.
    Tls12,
    /// The key log never handed over this secret for the connection.
    NoSecret(Label),
    /// The negotiated cipher suite is not one this trace can open.
    UnknownSuite(u16),
    /// The record did not open with the key derived from this secret.
    Failed(Label, OpenError),
}

impl fmt::Display for NotDecrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotDecrypted::Tls12 => f.write_str("not decrypted (TLS 1.2)"),
            NotDecrypted::NoSecret(label) => {
                write!(f, "not decrypted: the key log has no {label} for it")
            }
            NotDecrypted::UnknownSuite(id) => {
                write!(
                    f,
                    "not decrypted: cipher suite 0x{id:04x} is not one this trace opens"
                )
            }
            NotDecrypted::Failed(label, OpenError::Authentication) => write!(
                f,
                "could not be decrypted: it does not authenticate under the key from {label} \
                 (a different key, or damaged bytes)"
            ),
            NotDecrypted::Failed(label, OpenError::NoContentType) => write!(
                f,
                "could not be decrypted: under the key from {label} it holds only padding, \
                 no content type"
            ),
        }
    }
}

/// What a message is. The names are those of the RFCs (and of `openssl s_client -msg`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 1.
    ClientHello,
    /// 2.
    ServerHello,
    /// A ServerHello with the special random of RFC 8446 §4.1.3: "try again".
    HelloRetryRequest,
    /// 4.
    NewSessionTicket,
    /// 5.
    EndOfEarlyData,
    /// 8.
    EncryptedExtensions,
    /// 11.
    Certificate,
    /// 12.
    ServerKeyExchange,
    /// 13.
    CertificateRequest,
    /// 14.
    ServerHelloDone,
    /// 15.
    CertificateVerify,
    /// 16.
    ClientKeyExchange,
    /// 20.
    Finished,
    /// 24.
    KeyUpdate,
    /// Another handshake message type.
    OtherHandshake(u8),
    /// A handshake message this trace cannot see (TLS 1.2, encrypted).
    EncryptedHandshake,
    /// The ChangeCipherSpec record's message.
    ChangeCipherSpec,
    /// An alert: its level and description by name (`fatal`, `certificate_required`).
    Alert {
        /// `warning` or `fatal`.
        level: String,
        /// As the RFCs spell it.
        description: String,
    },
    /// An alert this trace cannot see (TLS 1.2, encrypted).
    EncryptedAlert,
    /// Application data (never shown).
    ApplicationData,
}

impl Kind {
    /// The message's name: `ClientHello`, `Alert`, ...
    pub fn name(&self) -> String {
        match self {
            Kind::ClientHello => "ClientHello".into(),
            Kind::ServerHello => "ServerHello".into(),
            Kind::HelloRetryRequest => "HelloRetryRequest".into(),
            Kind::NewSessionTicket => "NewSessionTicket".into(),
            Kind::EndOfEarlyData => "EndOfEarlyData".into(),
            Kind::EncryptedExtensions => "EncryptedExtensions".into(),
            Kind::Certificate => "Certificate".into(),
            Kind::ServerKeyExchange => "ServerKeyExchange".into(),
            Kind::CertificateRequest => "CertificateRequest".into(),
            Kind::ServerHelloDone => "ServerHelloDone".into(),
            Kind::CertificateVerify => "CertificateVerify".into(),
            Kind::ClientKeyExchange => "ClientKeyExchange".into(),
            Kind::Finished => "Finished".into(),
            Kind::KeyUpdate => "KeyUpdate".into(),
            Kind::OtherHandshake(t) => format!("HandshakeType{t}"),
            Kind::EncryptedHandshake => "EncryptedHandshakeMessage".into(),
            Kind::ChangeCipherSpec => "ChangeCipherSpec".into(),
            Kind::Alert { .. } | Kind::EncryptedAlert => "Alert".into(),
            Kind::ApplicationData => "ApplicationData".into(),
        }
    }

    /// A handshake message (not an alert, ChangeCipherSpec or application data).
    pub fn is_handshake(&self) -> bool {
        !matches!(
            self,
            Kind::ChangeCipherSpec
                | Kind::Alert { .. }
                | Kind::EncryptedAlert
                | Kind::ApplicationData
        )
    }
}

/// One message, with what it carries that a learner needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// What it is.
    pub kind: Kind,
    /// It could not be read: TLS 1.2 after ChangeCipherSpec (a Finished is known to be one
    /// by its place).
    pub encrypted: bool,
    /// What it carries, as (label, value), in the order worth reading.
    pub details: Vec<(String, String)>,
}

impl Message {
    fn new(kind: Kind) -> Self {
        Self {
            kind,
            encrypted: false,
            details: Vec::new(),
        }
    }

    fn with(mut self, label: &str, value: impl Into<String>) -> Self {
        self.details.push((label.to_string(), value.into()));
        self
    }

    /// The name as a line shows it: `Finished (encrypted)`, `Alert fatal certificate_required`.
    pub fn title(&self) -> String {
        match (&self.kind, self.encrypted) {
            (Kind::Alert { level, description }, _) => format!("Alert: {level} {description}"),
            (Kind::EncryptedAlert, _) => "Alert (encrypted)".into(),
            (kind, true) => format!("{} (encrypted)", kind.name()),
            (kind, false) => kind.name(),
        }
    }

    /// The details on one line: `label: value; label: value`.
    pub fn details_line(&self) -> String {
        self.details
            .iter()
            .map(|(l, v)| format!("{l}: {v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// One record as it crossed the wire, with the messages it completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Who sent it.
    pub dir: Dir,
    /// Its place among the records of its sender, from 1.
    pub index: usize,
    /// The content type in its header.
    pub content: ContentType,
    /// The length in its header (the bytes after the 5-byte header).
    pub length: usize,
    /// Plain, decrypted, or not.
    pub protection: Protection,
    /// The messages that end in this record. A handshake record may hold several, and a
    /// long message may span records: it is listed with the record that completes it.
    pub messages: Vec<Message>,
}

/// A connection's handshake (and what followed while it was recorded), in wire order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    /// The records, in the order they crossed the wire.
    pub records: Vec<Record>,
    /// What the reader should know: recording stopped at the bound, bytes that were not
    /// TLS, an unfinished record at the end.
    pub notes: Vec<String>,
    /// The ClientHello's random: the key log file's lines for this connection carry it.
    pub client_random: Option<[u8; 32]>,
}

impl Trace {
    /// Every message, with who sent it, in wire order.
    pub fn messages(&self) -> impl Iterator<Item = (Dir, &Message)> {
        self.records
            .iter()
            .flat_map(|r| r.messages.iter().map(move |m| (r.dir, m)))
    }

    /// The trace as JSON: an array of records in wire order, each with its messages (the
    /// notes are [`Trace::notes`]).
    pub fn to_json(&self) -> serde_json::Value {
        let records: Vec<serde_json::Value> = self
            .records
            .iter()
            .map(|r| {
                let (decrypted_with, inner, not_decrypted) = match &r.protection {
                    Protection::Plain => (None, None, None),
                    Protection::Decrypted { secret, inner } => {
                        (Some(secret.nss()), Some(inner.to_string()), None)
                    }
                    Protection::Encrypted(why) => (None, None, Some(why.to_string())),
                };
                json!({
                    "dir": r.dir.label(),
                    "record": r.index,
                    "content_type": r.content.to_string(),
                    "length": r.length,
                    "encrypted": r.protection != Protection::Plain,
                    "decrypted_with": decrypted_with,
                    "inner_content_type": inner,
                    "not_decrypted": not_decrypted,
                    "messages": r.messages.iter().map(|m| json!({
                        "type": m.kind.name(),
                        "title": m.title(),
                        "encrypted": m.encrypted,
                        "details": m.details.iter().map(|(l, v)| json!({"label": l, "value": v})).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::Value::Array(records)
    }

    /// Logs the trace at debug level, one event per message (a record without a readable
    /// message gets one event of its own), then one `handshake trace end` event.
    pub fn log(&self, peer: SocketAddr) {
        for note in &self.notes {
            debug!(peer.addr = %peer, note = %note, "handshake trace note");
        }
        for r in &self.records {
            let protection = protection_text(&r.protection);
            if r.messages.is_empty() {
                debug!(
                    peer.addr = %peer,
                    dir = r.dir.label(),
                    record = r.index,
                    content = %r.content,
                    length = r.length,
                    protection = %protection,
                    tls.message = "-",
                    "handshake trace"
                );
            }
            for m in &r.messages {
                debug!(
                    peer.addr = %peer,
                    dir = r.dir.label(),
                    record = r.index,
                    content = %r.content,
                    length = r.length,
                    protection = %protection,
                    tls.message = %m.kind.name(),
                    title = %m.title(),
                    details = %m.details_line(),
                    "handshake trace"
                );
            }
        }
        debug!(
            peer.addr = %peer,
            records = self.records.len(),
            client_random = %self.client_random.map(|r| lower_hex(&r)).unwrap_or_default(),
            "handshake trace end"
        );
    }
}

fn protection_text(p: &Protection) -> String {
    match p {
        Protection::Plain => "plaintext".into(),
        Protection::Decrypted { secret, inner } => {
            format!("encrypted, decrypted with {secret}: {inner}")
        }
        Protection::Encrypted(why) => format!("encrypted, {why}"),
    }
}

/// Bytes as lower-case hex, as the key log file writes them.
pub fn lower_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Handshake trace (from the bytes on the wire; → client to server, ← server to client)"
        )?;
        let mut encrypted_seen = [false; 2];
        for r in &self.records {
            let encrypted = r.protection != Protection::Plain;
            if encrypted && !encrypted_seen[r.dir.index()] {
                encrypted_seen[r.dir.index()] = true;
                let how = match &r.protection {
                    Protection::Decrypted { .. } => {
                        "decrypted below with the session's own secrets, from the key log"
                    }
                    _ => "shown below without their content",
                };
                writeln!(
                    f,
                    "{} (encrypted from here on: everything the {} sends; {how})",
                    r.dir.arrow(),
                    r.dir.sender()
                )?;
            }
            let bytes = if r.length == 1 { "byte" } else { "bytes" };
            write!(f, "{} record {}: ", r.dir.arrow(), r.index)?;
            match &r.protection {
                Protection::Plain => write!(f, "{}, {} {bytes}", r.content, r.length)?,
                Protection::Decrypted { secret, inner } => write!(
                    f,
                    "{inner}, {} {bytes} encrypted (decrypted with {secret})",
                    r.length
                )?,
                Protection::Encrypted(why) => {
                    write!(f, "{}, {} {bytes} encrypted, {why}", r.content, r.length)?
                }
            }
            // Application data takes one line: its length only.
            if let [only] = r.messages.as_slice()
                && only.kind == Kind::ApplicationData
            {
                let what = only.details.iter().map(|(_, v)| v.as_str());
                writeln!(f, ": {}", what.collect::<Vec<_>>().join("; "))?;
                continue;
            }
            writeln!(f)?;
            for m in &r.messages {
                writeln!(f, "    {}", m.title())?;
                for (label, value) in &m.details {
                    writeln!(f, "        {label}: {value}")?;
                }
            }
        }
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        Ok(())
    }
}
