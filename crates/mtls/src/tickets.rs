//! Session-ticket keys a fleet of servers shares, so that a client resumes its session on
//! whichever replica the load balancer picks (`server --ticket-keys FILE`), and the file
//! that holds them (`certificate ticket-keys` writes and rotates it).
//!
//! The model is nginx's `ssl_session_ticket_key`: the first key encrypts new tickets, every
//! key still decrypts, so a rotation that puts a new key in front does not break the
//! resumption of tickets made a moment before; dropping a key ends them.
//!
//! The file is text, one key a line, `#` comments and blank lines ignored:
//!
//! ```text
//! # comments
//! <base64 of 48 bytes: a 16-byte key name, then a 32-byte AES-256-GCM key>
//! ```
//!
//! A ticket is `key name (16) | nonce (12) | AES-256-GCM ciphertext and tag`, with the key
//! name as associated data: the name says which key to try, the tag proves the ticket was
//! made with it. Nonces are random (aws-lc-rs's `RandomizedNonceKey`), which is safe for far
//! more tickets than one key makes between rotations.
//!
//! Whoever can read the file can make a ticket that resumes as any client: the server
//! refuses a file that every user may read or that others may change ([`refuse_if_exposed`]),
//! and never logs the keys (names are not secret: every ticket carries its key's in clear).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::server::ProducesTickets;

use crate::error::{Error, Result};
use crate::format::hex;

/// What error messages call the file.
pub const WHAT: &str = "the session-ticket key file";

/// Bytes in a key's name.
const NAME_LEN: usize = 16;
/// Bytes in a key's secret (AES-256).
const SECRET_LEN: usize = 32;
/// Bytes of AES-GCM's tag.
const TAG_LEN: usize = 16;
/// Most keys a file may hold: a rotation keeps a few, never hundreds.
pub const MAX_KEYS: usize = 64;

/// How long a client may keep a ticket, as the server tells it (12 hours, as rustls's own
/// ticketer says). Tickets really end when their key leaves the file.
pub const TICKET_LIFETIME_SECS: u32 = 12 * 60 * 60;

/// The lines `certificate ticket-keys` writes above the keys.
const HEADER: &str = "\
# Session-ticket keys for `server --ticket-keys` (AES-256-GCM), written by `certificate ticket-keys`.
# The first key encrypts new tickets; every key decrypts. Keep this file secret (mode 0600):
# whoever reads it can resume a session as any client. One key a line: base64 of a 16-byte
# key name and a 32-byte key.
";

/// One key: its name (carried in clear by every ticket it makes) and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TicketKey {
    name: [u8; NAME_LEN],
    secret: [u8; SECRET_LEN],
}

impl TicketKey {
    /// A fresh random key from the system's random source.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; NAME_LEN + SECRET_LEN];
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| Error::Config("no randomness for a session-ticket key".into()))?;
        Ok(Self::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8; NAME_LEN + SECRET_LEN]) -> Self {
        let (name, secret) = bytes.split_at(NAME_LEN);
        let mut key = Self {
            name: [0; NAME_LEN],
            secret: [0; SECRET_LEN],
        };
        key.name.copy_from_slice(name);
        key.secret.copy_from_slice(secret);
        key
    }

    /// The key's name in hex, short: what people compare (it is not secret).
    pub fn id(&self) -> String {
        hex(&self.name[..6], "")
    }

    fn line(&self) -> String {
        let mut bytes = self.name.to_vec();
        bytes.extend_from_slice(&self.secret);
        BASE64.encode(bytes)
    }
}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        f.debug_struct("TicketKey")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

/// The keys of one file, newest (the one that encrypts) first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketKeys {
    keys: Vec<TicketKey>,
}

impl TicketKeys {
    /// One fresh key.
    pub fn generate() -> Result<Self> {
        Ok(Self {
            keys: vec![TicketKey::generate()?],
        })
    }

    /// Reads the file's content (`path` names it in errors). Every line must be a key;
    /// a file without one, or with two of the same name, is refused.
    pub fn parse(text: &[u8], path: &Path) -> Result<Self> {
        let damaged = |detail: String| Error::malformed(WHAT, path, detail);
        let text = std::str::from_utf8(text).map_err(|_| {
            damaged("it is not text; write it with `certificate ticket-keys`".into())
        })?;
        let mut keys: Vec<TicketKey> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let number = i + 1;
            let bytes = BASE64.decode(line).map_err(|_| {
                damaged(format!(
                    "line {number} is not base64; each line holds one key, as \
                     `certificate ticket-keys` writes them"
                ))
            })?;
            let bytes: &[u8; NAME_LEN + SECRET_LEN] =
                bytes.as_slice().try_into().map_err(|_| {
                    damaged(format!(
                        "line {number} holds {} bytes; a key is {} (a {NAME_LEN}-byte name and a \
                         {SECRET_LEN}-byte AES-256 key)",
                        bytes.len(),
                        NAME_LEN + SECRET_LEN
                    ))
                })?;
            let key = TicketKey::from_bytes(bytes);
            if keys.iter().any(|k| k.name == key.name) {
                return Err(damaged(format!(
                    "line {number} repeats the name of an earlier key ({}); every key needs a \
                     name of its own",
                    key.id()
                )));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(damaged(
                "it holds no key; write one with `certificate ticket-keys`".into(),
            ));
        }
        if keys.len() > MAX_KEYS {
            return Err(damaged(format!(
                "it holds {} keys, more than {MAX_KEYS}; keep a few with \
                 `certificate ticket-keys --keep N`",
                keys.len()
            )));
        }
        Ok(Self { keys })
    }

    /// The file's content: the header, then one key a line, the encrypting key first.
    pub fn to_text(&self) -> String {
        let mut out = HEADER.to_string();
        for key in &self.keys {
            out.push_str(&key.line());
            out.push('\n');
        }
        out
    }

    /// A new key in front (it encrypts from now on); the others still decrypt.
    pub fn rotate(&mut self, new: TicketKey) {
        self.keys.insert(0, new);
    }

    /// Keeps the first `n` keys (at least one); returns the ones dropped.
    pub fn keep(&mut self, n: usize) -> Vec<TicketKey> {
        self.keys.split_off(n.max(1).min(self.keys.len()))
    }

    /// The keys, the encrypting one first.
    pub fn keys(&self) -> &[TicketKey] {
        &self.keys
    }

    /// A rustls ticketer that encrypts with the first key and decrypts with any.
    pub fn ticketer(&self) -> Result<Arc<dyn ProducesTickets>> {
        let keys = self
            .keys
            .iter()
            .map(|k| {
                RandomizedNonceKey::new(&AES_256_GCM, &k.secret)
                    .map(|aead| (k.name, aead))
                    .map_err(|_| Error::Config("session tickets: AES-256-GCM key refused".into()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(SharedTicketer { keys }))
    }
}

/// Refuses a key file that every user may read, or that users other than its owner may
/// change (either lets them resume sessions as any client); `Ok(true)` when its group may
/// read it (as a Kubernetes secret mounted with an `fsGroup` is): allowed, worth a warning.
pub fn refuse_if_exposed(path: &Path) -> Result<bool> {
    let Ok(mode) = crate::perms::mode(path) else {
        // Unreadable metadata: reading the file itself reports it.
        return Ok(false);
    };
    if mode & 0o026 != 0 {
        return Err(Error::TicketKeysExposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(mode & 0o040 != 0)
}

/// Encrypts with the first key, decrypts with the key the ticket names.
struct SharedTicketer {
    keys: Vec<([u8; NAME_LEN], RandomizedNonceKey)>,
}

impl fmt::Debug for SharedTicketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTicketer")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl ProducesTickets for SharedTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        TICKET_LIFETIME_SECS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let (name, key) = self.keys.first()?;
        let mut sealed = plain.to_vec();
        let nonce = key
            .seal_in_place_append_tag(Aad::from(name), &mut sealed)
            .ok()?;
        let mut ticket = Vec::with_capacity(NAME_LEN + NONCE_LEN + sealed.len());
        ticket.extend_from_slice(name);
        ticket.extend_from_slice(nonce.as_ref());
        ticket.extend_from_slice(&sealed);
        Some(ticket)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        // Anything the client sends: every length is checked before it is used.
        if ticket.len() < NAME_LEN + NONCE_LEN + TAG_LEN {
            return None;
        }
        let (name, rest) = ticket.split_at(NAME_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let (_, key) = self.keys.iter().find(|(n, _)| n.as_slice() == name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(name), &mut sealed)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> &'static Path {
        Path::new("fleet/ticket.keys")
    }

    #[test]
    fn the_first_key_encrypts_and_every_key_decrypts() {
        let old = TicketKeys::generate().expect("keys");
        let made_before = old
            .ticketer()
            .expect("ticketer")
            .encrypt(b"session")
            .expect("seal");
        let mut rotated = old.clone();
        rotated.rotate(TicketKey::generate().expect("key"));
        let now = rotated.ticketer().expect("ticketer");
        assert_eq!(now.decrypt(&made_before).as_deref(), Some(&b"session"[..]));
        let made_now = now.encrypt(b"later").expect("seal");
        assert_eq!(&made_now[..NAME_LEN], &rotated.keys()[0].name);
        // The old file alone cannot read what the new key made.
        assert!(
            old.ticketer()
                .expect("ticketer")
                .decrypt(&made_now)
                .is_none()
        );
        // Dropping the old key ends the tickets it made.
        let dropped = rotated.keep(1);
        assert_eq!(dropped, old.keys().to_vec());
        assert!(
            rotated
                .ticketer()
                .expect("t")
                .decrypt(&made_before)
                .is_none()
        );
    }

    #[test]
    fn a_ticket_changed_in_any_byte_or_cut_short_is_refused() {
        let keys = TicketKeys::generate().expect("keys");
        let t = keys.ticketer().expect("ticketer");
        let ticket = t.encrypt(b"session state").expect("seal");
        for i in 0..ticket.len() {
            let mut bad = ticket.clone();
            bad[i] ^= 0x01;
            assert!(t.decrypt(&bad).is_none(), "byte {i} flipped");
        }
        for len in 0..ticket.len() {
            assert!(t.decrypt(&ticket[..len]).is_none(), "cut to {len}");
        }
    }

    #[test]
    fn the_file_reads_back_what_was_written_and_names_bad_lines() {
        let mut keys = TicketKeys::generate().expect("keys");
        keys.rotate(TicketKey::generate().expect("key"));
        let text = keys.to_text();
        assert!(text.starts_with("# Session-ticket keys"), "{text}");
        assert_eq!(
            TicketKeys::parse(text.as_bytes(), path()).expect("parse"),
            keys
        );

        let err = |text: &str| {
            TicketKeys::parse(text.as_bytes(), path())
                .expect_err("refused")
                .to_string()
        };
        assert!(err("# only a comment\n").contains("holds no key"));
        assert!(err("# c\nnot base64!\n").contains("line 2 is not base64"));
        assert!(err(&format!("{}\n", BASE64.encode([0u8; 47]))).contains("line 1 holds 47 bytes"));
        let line = keys.keys()[0].line();
        assert!(err(&format!("{line}\n{line}\n")).contains("line 2 repeats the name"));
    }

    #[cfg(unix)]
    #[test]
    fn a_file_everyone_may_read_or_others_may_change_is_refused_and_group_read_is_told() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("ticket.keys");
        std::fs::write(&file, "x").expect("write");
        for (mode, verdict) in [
            (0o600, Some(false)),
            (0o400, Some(false)),
            (0o640, Some(true)),
            (0o644, None),
            (0o620, None),
            (0o602, None),
        ] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).expect("chmod");
            match (refuse_if_exposed(&file), verdict) {
                (Ok(group), Some(expected)) => assert_eq!(group, expected, "{mode:o}"),
                (Err(Error::TicketKeysExposed { mode: m, .. }), None) => assert_eq!(m, mode),
                (other, _) => panic!("{mode:o}: {other:?}"),
            }
        }
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let keys = TicketKeys::generate().expect("keys");
        let shown = format!("{keys:?} {:?}", keys.ticketer().expect("t"));
        let secret = hex(&keys.keys()[0].secret, "");
        assert!(!shown.contains(&secret), "{shown}");
        assert!(!shown.contains(&keys.keys()[0].line()), "{shown}");
    }
}
