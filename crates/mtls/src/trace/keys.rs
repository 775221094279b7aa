//! The session's own secrets: rustls's [`KeyLog`] hands them over as the handshake derives
//! them; they are filed by the ClientHello's random (and, when `SSLKEYLOGFILE` is set, also
//! written in the NSS key log format that Wireshark reads). From a traffic secret come the
//! record key and IV (HKDF-Expand-Label, RFC 8446 §7.1 and §7.3), and with them each TLS 1.3
//! record is opened with aws-lc-rs's AEAD (§5.2, §5.3).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use aws_lc_rs::{aead, hkdf};
use rustls::{KeyLog, KeyLogFile};
use tracing::warn;

/// A secret the trace uses, by its label in the NSS key log format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Label {
    /// `CLIENT_HANDSHAKE_TRAFFIC_SECRET`: protects the client's handshake messages.
    ClientHandshake,
    /// `SERVER_HANDSHAKE_TRAFFIC_SECRET`: protects the server's handshake messages.
    ServerHandshake,
    /// `CLIENT_TRAFFIC_SECRET_0`: protects what the client sends after its Finished.
    ClientTraffic,
    /// `SERVER_TRAFFIC_SECRET_0`: protects what the server sends after its Finished.
    ServerTraffic,
}

impl Label {
    /// The label as the NSS key log format (and so Wireshark) writes it.
    pub fn nss(self) -> &'static str {
        match self {
            Label::ClientHandshake => "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            Label::ServerHandshake => "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            Label::ClientTraffic => "CLIENT_TRAFFIC_SECRET_0",
            Label::ServerTraffic => "SERVER_TRAFFIC_SECRET_0",
        }
    }

    fn from_nss(label: &str) -> Option<Self> {
        [
            Label::ClientHandshake,
            Label::ServerHandshake,
            Label::ClientTraffic,
            Label::ServerTraffic,
        ]
        .into_iter()
        .find(|l| l.nss() == label)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.nss())
    }
}

/// The secrets of one connection.
#[derive(Clone, Default)]
pub struct ConnectionSecrets(HashMap<Label, Vec<u8>>);

impl ConnectionSecrets {
    /// The secret with this label, if the handshake got as far as deriving it.
    pub fn get(&self, label: Label) -> Option<&[u8]> {
        self.0.get(&label).map(Vec::as_slice)
    }
}

impl fmt::Debug for ConnectionSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a secret.
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Most connections whose secrets wait to be claimed; beyond it the oldest are dropped
/// (their connections then show their encrypted records as not decrypted).
const MAX_FILED: usize = 1024;

/// Secrets filed by client random, until the connection that made them claims them.
///
/// The server's rustls config is shared by every connection, so its key log cannot know
/// which connection a secret belongs to; the client random in each connection's recorded
/// ClientHello finds them.
#[derive(Debug)]
pub struct Secrets {
    filed: Mutex<Filed>,
    /// Keep secrets only while debug logging is on (the server's trace is a debug log).
    only_when_debug: bool,
}

#[derive(Debug, Default)]
struct Filed {
    by_random: HashMap<[u8; 32], ConnectionSecrets>,
    order: VecDeque<[u8; 32]>,
}

impl Secrets {
    /// Keeps the secrets of every handshake (a client tracing its connection).
    pub fn kept() -> Arc<Self> {
        Arc::new(Self {
            filed: Mutex::new(Filed::default()),
            only_when_debug: false,
        })
    }

    /// Keeps them only while debug logging is on: the server traces each connection in its
    /// debug log, and otherwise keeps nothing.
    pub fn for_debug_log() -> Arc<Self> {
        Arc::new(Self {
            filed: Mutex::new(Filed::default()),
            only_when_debug: true,
        })
    }

    fn wanted(&self) -> bool {
        !self.only_when_debug || super::debug_enabled()
    }

    /// Files `secret` under the connection whose ClientHello carried `client_random`.
    pub fn file(&self, label: Label, client_random: &[u8], secret: &[u8]) {
        let Ok(random) = <[u8; 32]>::try_from(client_random) else {
            return;
        };
        let Ok(mut filed) = self.filed.lock() else {
            return;
        };
        if !filed.by_random.contains_key(&random) {
            while filed.order.len() >= MAX_FILED {
                if let Some(oldest) = filed.order.pop_front() {
                    filed.by_random.remove(&oldest);
                }
            }
            filed.order.push_back(random);
        }
        filed
            .by_random
            .entry(random)
            .or_default()
            .0
            .insert(label, secret.to_vec());
    }

    /// Hands over (and forgets) the secrets of the connection with this client random.
    pub fn take(&self, client_random: &[u8; 32]) -> Option<ConnectionSecrets> {
        let mut filed = self.filed.lock().ok()?;
        let found = filed.by_random.remove(client_random)?;
        filed.order.retain(|r| r != client_random);
        Some(found)
    }
}

/// The key log of both sides: files the secrets the trace needs in `keep` (when given), and
/// writes every secret to `SSLKEYLOGFILE` when that is set.
#[derive(Debug)]
struct KeyLogger {
    file: Option<Arc<KeyLogFile>>,
    keep: Option<Arc<Secrets>>,
}

impl KeyLog for KeyLogger {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        if let Some(file) = &self.file {
            file.log(label, client_random, secret);
        }
        if let (Some(keep), Some(known)) = (&self.keep, Label::from_nss(label))
            && keep.wanted()
        {
            keep.file(known, client_random, secret);
        }
    }

    fn will_log(&self, label: &str) -> bool {
        self.file.is_some()
            || self
                .keep
                .as_ref()
                .is_some_and(|keep| Label::from_nss(label).is_some() && keep.wanted())
    }
}

/// The key log for a rustls config: `keep` receives the secrets a trace needs, and every
/// secret also goes to the file `SSLKEYLOGFILE` names, when it is set.
pub fn key_log(keep: Option<Arc<Secrets>>) -> Arc<dyn KeyLog> {
    Arc::new(KeyLogger {
        file: key_log_file(),
        keep,
    })
}

/// The `SSLKEYLOGFILE` writer, opened once per process; `None` when the variable is unset
/// or the file cannot be opened (which is said once, at warn level).
fn key_log_file() -> Option<Arc<KeyLogFile>> {
    static FILE: OnceLock<Option<Arc<KeyLogFile>>> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::var_os("SSLKEYLOGFILE").filter(|p| !p.is_empty())?;
        let shown = std::path::Path::new(&path).display().to_string();
        // rustls's KeyLogFile opens the file the same way and stays silent when it cannot:
        // try it here once, so a wrong path is reported.
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(_) => {
                warn!(
                    file = %shown,
                    "SSLKEYLOGFILE is set: the TLS secrets of every connection are written to \
                     this file, and anyone who can read it can decrypt those connections"
                );
                Some(Arc::new(KeyLogFile::new()))
            }
            Err(e) => {
                warn!(file = %shown, error = %e, "SSLKEYLOGFILE is set but cannot be opened; no secrets are written");
                None
            }
        }
    })
    .clone()
}

/// The hash of a TLS 1.3 cipher suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha384,
}

impl Hash {
    fn hkdf(self) -> hkdf::Algorithm {
        match self {
            Hash::Sha256 => hkdf::HKDF_SHA256,
            Hash::Sha384 => hkdf::HKDF_SHA384,
        }
    }

    fn len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
        }
    }
}

/// What a TLS 1.3 cipher suite needs to open records.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Suite {
    hash: Hash,
    aead: &'static aead::Algorithm,
}

impl Suite {
    /// The TLS 1.3 suite with this code point (RFC 8446 §B.4), if it is one we can open.
    pub(crate) fn tls13(id: u16) -> Option<Self> {
        let (hash, aead) = match id {
            0x1301 => (Hash::Sha256, &aead::AES_128_GCM),
            0x1302 => (Hash::Sha384, &aead::AES_256_GCM),
            0x1303 => (Hash::Sha256, &aead::CHACHA20_POLY1305),
            _ => return None,
        };
        Some(Self { hash, aead })
    }
}

/// The length HKDF-Expand is asked for.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label(secret, label, context, length) of RFC 8446 §7.1, with the `tls13 `
/// prefix on the label.
pub(crate) fn expand_label(
    hash: Hash,
    secret: &[u8],
    label: &str,
    context: &[u8],
    len: usize,
) -> Option<Vec<u8>> {
    let full_label = format!("tls13 {label}");
    let out_len = u16::try_from(len).ok()?.to_be_bytes();
    let label_len = [u8::try_from(full_label.len()).ok()?];
    let context_len = [u8::try_from(context.len()).ok()?];
    let info: [&[u8]; 5] = [
        &out_len,
        &label_len,
        full_label.as_bytes(),
        &context_len,
        context,
    ];
    let mut out = vec![0; len];
    hkdf::Prk::new_less_safe(hash.hkdf(), secret)
        .expand(&info, Len(len))
        .ok()?
        .fill(&mut out)
        .ok()?;
    Some(out)
}

/// Why a TLS 1.3 record did not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The AEAD tag did not verify: a different key, or damaged bytes.
    Authentication,
    /// The plaintext holds no content type (only padding).
    NoContentType,
}

/// The key and IV of one direction under one traffic secret (RFC 8446 §7.3).
pub(crate) struct RecordKey {
    key: aead::LessSafeKey,
    iv: [u8; aead::NONCE_LEN],
    suite: Suite,
    secret: Vec<u8>,
}

impl RecordKey {
    /// `[sender]_write_key` and `[sender]_write_iv` from a traffic secret.
    pub(crate) fn derive(suite: Suite, secret: &[u8]) -> Option<Self> {
        let key = expand_label(suite.hash, secret, "key", &[], suite.aead.key_len())?;
        let iv = expand_label(suite.hash, secret, "iv", &[], aead::NONCE_LEN)?;
        Some(Self {
            key: aead::LessSafeKey::new(aead::UnboundKey::new(suite.aead, &key).ok()?),
            iv: iv.try_into().ok()?,
            suite,
            secret: secret.to_vec(),
        })
    }

    /// The key after a KeyUpdate: the next traffic secret (RFC 8446 §7.2).
    pub(crate) fn updated(&self) -> Option<Self> {
        let hash = self.suite.hash;
        let next = expand_label(hash, &self.secret, "traffic upd", &[], hash.len())?;
        Self::derive(self.suite, &next)
    }

    /// Opens the record with sequence number `seq`: `header` is its 5-byte header (the
    /// additional data), `payload` what follows it. Returns the inner content type and the
    /// content, with the padding removed (RFC 8446 §5.2, §5.4).
    pub(crate) fn open(
        &self,
        seq: u64,
        header: &[u8],
        payload: &[u8],
    ) -> Result<(u8, Vec<u8>), OpenError> {
        let mut nonce = self.iv;
        for (n, s) in nonce[aead::NONCE_LEN - 8..]
            .iter_mut()
            .zip(seq.to_be_bytes())
        {
            *n ^= s;
        }
        let mut buf = payload.to_vec();
        let plain = self
            .key
            .open_in_place(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(header),
                &mut buf,
            )
            .map_err(|_| OpenError::Authentication)?;
        let end = plain
            .iter()
            .rposition(|b| *b != 0)
            .ok_or(OpenError::NoContentType)?;
        let content_type = plain[end];
        Ok((content_type, plain[..end].to_vec()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn unhex(text: &str) -> Vec<u8> {
        let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    // RFC 8448 §3, "Simple 1-RTT Handshake" (TLS_AES_128_GCM_SHA256).
    const SERVER_HS_SECRET: &str =
        "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38";

    #[test]
    fn hkdf_expand_label_gives_the_rfc_8448_handshake_key_and_iv() {
        let secret = unhex(SERVER_HS_SECRET);
        let key = expand_label(Hash::Sha256, &secret, "key", &[], 16).expect("key");
        let iv = expand_label(Hash::Sha256, &secret, "iv", &[], 12).expect("iv");
        assert_eq!(key, unhex("3fce516009c21727d0f2e4e86ee403bc"));
        assert_eq!(iv, unhex("5d313eb2671276ee13000b30"));
        // A different label gives a different key: the label is part of the input.
        let other = expand_label(Hash::Sha256, &secret, "iv", &[], 16).expect("other");
        assert_ne!(other, key);
    }

    #[test]
    fn secrets_are_filed_by_client_random_and_handed_over_once() {
        let secrets = Secrets::kept();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        secrets.file(Label::ClientHandshake, &a, b"for a");
        secrets.file(Label::ClientHandshake, &b, b"for b");
        secrets.file(Label::ServerTraffic, &a, b"a again");
        let got = secrets.take(&a).expect("a's secrets");
        assert_eq!(got.get(Label::ClientHandshake), Some(&b"for a"[..]));
        assert_eq!(got.get(Label::ServerTraffic), Some(&b"a again"[..]));
        assert_eq!(got.get(Label::ServerHandshake), None);
        assert!(secrets.take(&a).is_none(), "taken once");
        assert!(secrets.take(&b).is_some());
        // A random that is not 32 bytes long is not a ClientHello's.
        secrets.file(Label::ClientHandshake, &[3u8; 31], b"short");
        assert!(secrets.take(&[3u8; 32]).is_none());
    }

    #[test]
    fn the_filed_secrets_are_bounded_dropping_the_oldest() {
        let secrets = Secrets::kept();
        let random = |i: usize| {
            let mut r = [0u8; 32];
            r[..8].copy_from_slice(&(i as u64).to_be_bytes());
            r
        };
        for i in 0..MAX_FILED + 5 {
            secrets.file(Label::ClientHandshake, &random(i), b"s");
        }
        assert!(secrets.take(&random(0)).is_none(), "the oldest was dropped");
        assert!(secrets.take(&random(4)).is_none());
        assert!(secrets.take(&random(5)).is_some());
        assert!(secrets.take(&random(MAX_FILED + 4)).is_some());
    }

    #[test]
    fn the_servers_secrets_are_kept_only_while_debug_logging_is_on() {
        let keep = Secrets::for_debug_log();
        let log = KeyLogger {
            file: None,
            keep: Some(keep.clone()),
        };
        let info = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::with_default(info, || {
            assert!(!log.will_log("CLIENT_HANDSHAKE_TRAFFIC_SECRET"));
            log.log("CLIENT_HANDSHAKE_TRAFFIC_SECRET", &[9; 32], b"x");
        });
        assert!(keep.take(&[9; 32]).is_none(), "nothing kept with debug off");
        let debug = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::with_default(debug, || {
            assert!(log.will_log("CLIENT_HANDSHAKE_TRAFFIC_SECRET"));
            log.log("CLIENT_HANDSHAKE_TRAFFIC_SECRET", &[9; 32], b"x");
        });
        assert!(keep.take(&[9; 32]).is_some(), "kept with debug on");
    }

    #[test]
    fn the_key_log_keeps_only_the_labels_the_trace_uses() {
        let keep = Secrets::kept();
        let log = KeyLogger {
            file: None,
            keep: Some(keep.clone()),
        };
        assert!(log.will_log("CLIENT_HANDSHAKE_TRAFFIC_SECRET"));
        assert!(!log.will_log("EXPORTER_SECRET"));
        log.log("EXPORTER_SECRET", &[7; 32], b"x");
        log.log("SERVER_TRAFFIC_SECRET_0", &[7; 32], b"y");
        let got = keep.take(&[7; 32]).expect("filed");
        assert_eq!(got.get(Label::ServerTraffic), Some(&b"y"[..]));
        assert_eq!(format!("{got:?}"), "{ServerTraffic}", "no secret in Debug");
    }
}
