//! The only place that knows certificate file names.
//!
//! Every binary and test asks this module for paths, so a file name is spelled once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The folder the demo set lives in when no `--certs` is given.
pub const DEFAULT_DIR: &str = "certs";

/// The SPIFFE trust domain of the demo's client identities: `spiffe://mtls.demo/NAME`.
pub const TRUST_DOMAIN: &str = "mtls.demo";

/// The SANs every demo server certificate carries (and `issue --server` gives by default).
pub const SERVER_SANS: [&str; 3] = ["DNS:localhost", "IP:127.0.0.1", "IP:::1"];

/// The SPIFFE ID the demo gives the client certificate `name`: `spiffe://mtls.demo/NAME`.
pub fn spiffe_id(name: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/{name}")
}

/// The two demo clients of the Go original.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientId {
    /// "Client A", certs/client-a.*
    A,
    /// "Client B", certs/client-b.*
    B,
}

impl ClientId {
    /// Both clients, in order.
    pub const ALL: [ClientId; 2] = [ClientId::A, ClientId::B];

    /// The certificate's common name, e.g. "Client A".
    pub fn common_name(self) -> &'static str {
        match self {
            ClientId::A => "Client A",
            ClientId::B => "Client B",
        }
    }

    /// The SPIFFE-style URI SAN that names the client: `spiffe://mtls.demo/client-a`.
    pub fn uri(self) -> String {
        spiffe_id(Role::Client(self).stem())
    }
}

impl FromStr for ClientId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "a" | "client-a" => Ok(ClientId::A),
            "b" | "client-b" => Ok(ClientId::B),
            _ => Err(format!("unknown client {s:?}: choose a or b")),
        }
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.common_name())
    }
}

/// A certificate of the demo set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The root CA both sides trust.
    Ca,
    /// The server's leaf certificate.
    Server,
    /// One of the demo clients.
    Client(ClientId),
    /// The intermediate CA the demo set makes with `--intermediate`.
    Intermediate,
}

impl Role {
    /// Every role of the demo set, CA first.
    pub const ALL: [Role; 4] = [
        Role::Ca,
        Role::Server,
        Role::Client(ClientId::A),
        Role::Client(ClientId::B),
    ];

    /// The file stem: `ca`, `server`, `client-a`, `client-b`.
    pub fn stem(self) -> &'static str {
        match self {
            Role::Ca => "ca",
            Role::Server => "server",
            Role::Client(ClientId::A) => "client-a",
            Role::Client(ClientId::B) => "client-b",
            Role::Intermediate => "intermediate",
        }
    }

    /// The demo role whose file stem is `name` (compared without case, for
    /// case-insensitive file systems), if the folder gives the name a meaning.
    pub fn of_stem(name: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .chain([Role::Intermediate])
            .find(|r| r.stem().eq_ignore_ascii_case(name))
    }

    /// How a sentence names this certificate's owner: "the CA", "the server", "Client A".
    pub fn owner(self) -> &'static str {
        match self {
            Role::Ca => "the CA",
            Role::Server => "the server",
            Role::Client(id) => id.common_name(),
            Role::Intermediate => "the intermediate CA",
        }
    }
}

/// File stems that belong to the folder itself and can never name an issued certificate:
/// its CA (and the CAs a rotation keeps beside the new ones), the revocation list, the
/// lab's and the retired CAs' folders, the Java trust store.
pub const RESERVED: [&str; 7] = [
    "ca",
    "ca-old",
    "intermediate-old",
    "crl",
    "lab",
    "retired",
    "truststore",
];

/// What a CA's stem becomes while a rotation keeps it trusted beside its successor:
/// `ca` -> `ca-old`, `intermediate` -> `intermediate-old`.
pub fn previous(stem: &str) -> String {
    format!("{stem}{PREVIOUS}")
}

/// The suffix of [`previous`].
pub const PREVIOUS: &str = "-old";

/// The stem of the Java trust store `certificate p12 --truststore` writes.
pub const TRUSTSTORE: &str = "truststore";

/// A folder of certificates and keys, named `STEM.crt` and `STEM.key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertsDir {
    root: PathBuf,
}

impl CertsDir {
    /// The folder at `root` (it need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `DIR/STEM.crt`.
    pub fn cert(&self, stem: &str) -> PathBuf {
        self.root.join(format!("{stem}.crt"))
    }

    /// `DIR/STEM.key`.
    pub fn key(&self, stem: &str) -> PathBuf {
        self.root.join(format!("{stem}.key"))
    }

    /// `DIR/STEM.p12`.
    pub fn p12(&self, stem: &str) -> PathBuf {
        self.root.join(format!("{stem}.p12"))
    }

    /// The certificate of a demo role.
    pub fn role_cert(&self, role: Role) -> PathBuf {
        self.cert(role.stem())
    }

    /// The private key of a demo role.
    pub fn role_key(&self, role: Role) -> PathBuf {
        self.key(role.stem())
    }

    /// The CA certificate both sides trust by default.
    pub fn ca_cert(&self) -> PathBuf {
        self.role_cert(Role::Ca)
    }

    /// The certificate revocation list the CA tool maintains.
    pub fn crl(&self) -> PathBuf {
        self.root.join("crl.pem")
    }

    /// `DIR/ticket.keys`: the session-ticket keys a fleet of servers shares
    /// (`certificate ticket-keys`, `server --ticket-keys`).
    pub fn ticket_keys(&self) -> PathBuf {
        self.root.join("ticket.keys")
    }

    /// `DIR/.lock`: the file commands that change the folder lock, one run at a time.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join(".lock")
    }

    /// `DIR/issuance.log`: one JSON line per certificate issued, renewed, revoked, rotated
    /// or retired.
    pub fn issuance_log(&self) -> PathBuf {
        self.root.join("issuance.log")
    }

    /// `DIR/retired/`: the CAs `certificate ca retire` took out of `ca.crt`, kept (with
    /// their keys) for the record.
    pub fn retired(&self) -> CertsDir {
        CertsDir::new(self.root.join("retired"))
    }

    /// The break-it lab's folder, beside the demo set.
    pub fn lab(&self) -> CertsDir {
        CertsDir::new(self.root.join("lab"))
    }
}

impl Default for CertsDir {
    fn default() -> Self {
        Self::new(DEFAULT_DIR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_file_names_match_the_go_demo() {
        let dir = CertsDir::new("certs");
        assert_eq!(dir.ca_cert(), Path::new("certs/ca.crt"));
        assert_eq!(
            dir.role_key(Role::Client(ClientId::B)),
            Path::new("certs/client-b.key")
        );
        assert_eq!(dir.crl(), Path::new("certs/crl.pem"));
        assert_eq!(dir.lock_file(), Path::new("certs/.lock"));
    }

    #[test]
    fn the_names_a_rotation_keeps_are_reserved() {
        for role in [Role::Ca, Role::Intermediate] {
            assert!(RESERVED.contains(&previous(role.stem()).as_str()));
        }
        let dir = CertsDir::new("certs");
        assert_eq!(
            dir.retired().cert("ca-1a2b3c4d"),
            Path::new("certs/retired/ca-1a2b3c4d.crt")
        );
        assert_eq!(dir.issuance_log(), Path::new("certs/issuance.log"));
    }

    #[test]
    fn stems_with_a_meaning_name_their_role() {
        assert_eq!(Role::of_stem("intermediate"), Some(Role::Intermediate));
        assert_eq!(Role::of_stem("Server"), Some(Role::Server));
        assert_eq!(Role::of_stem("client-b"), Some(Role::Client(ClientId::B)));
        assert_eq!(Role::of_stem("client-c"), None);
    }

    #[test]
    fn client_letters_parse_case_insensitively() {
        assert_eq!("a".parse::<ClientId>(), Ok(ClientId::A));
        assert_eq!("B".parse::<ClientId>(), Ok(ClientId::B));
        assert!(
            "c".parse::<ClientId>()
                .expect_err("c is not a client")
                .contains("choose a or b")
        );
    }
}
