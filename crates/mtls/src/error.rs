//! The library's error: every variant carries the file, the role and the cause, so the
//! binaries can print one sentence a person can act on.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::explain::Failure;

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, with enough context to explain it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {what} {}: {}{}", path.display(), io_reason(source), read_hint(source, *minted))]
    Read {
        /// What the file was supposed to hold ("the CA certificate").
        what: String,
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
        /// The file is one `cargo run -p certificate` makes, so a missing one is a hint to run it.
        minted: bool,
    },

    /// A file holds no PEM at all.
    #[error("{what} {} is not a PEM file{}", path.display(), not_pem_hint(*looks_like_der))]
    NotPem {
        /// What the file was supposed to hold.
        what: String,
        /// The file.
        path: PathBuf,
        /// The bytes look like DER (binary ASN.1) rather than text.
        looks_like_der: bool,
    },

    /// A PEM file holds the wrong kind of object (a key where a certificate belongs).
    #[error(
        "{what} {} holds {found} but no {expected}; check that you passed the right file",
        path.display()
    )]
    WrongPem {
        /// What the file was supposed to hold.
        what: String,
        /// The file.
        path: PathBuf,
        /// The PEM label expected, e.g. "CERTIFICATE".
        expected: &'static str,
        /// The PEM labels found.
        found: String,
    },

    /// A PEM file is damaged, or its content does not parse.
    #[error("{what} {} is damaged: {detail}", path.display())]
    Malformed {
        /// What the file was supposed to hold.
        what: String,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// A private key does not belong to the certificate it is paired with.
    #[error(
        "the private key {} does not match the certificate {}: they were not made together; \
         pass the key that was generated with this certificate, or mint a fresh pair",
        key.display(), cert.display()
    )]
    KeyMismatch {
        /// The certificate.
        cert: PathBuf,
        /// The key.
        key: PathBuf,
    },

    /// A key rustls cannot use.
    #[error("cannot use the private key {}: {detail}", path.display())]
    UnusableKey {
        /// The key file.
        path: PathBuf,
        /// What rustls said.
        detail: String,
    },

    /// A CA file whose certificate cannot be a trust anchor.
    #[error("cannot trust the CA certificate in {}: {detail}", path.display())]
    BadTrustAnchor {
        /// The CA file.
        path: PathBuf,
        /// Why.
        detail: String,
    },

    /// A file could not be written.
    #[error("cannot write {}: {}", path.display(), io_reason(source))]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },

    /// Refusing to replace a file without `--force`.
    #[error("{} already exists; {why}. Nothing was changed; pass --force to replace it", path.display())]
    AlreadyExists {
        /// The file that exists.
        path: PathBuf,
        /// Why replacing it matters.
        why: String,
    },

    /// rcgen could not produce a certificate, key or CRL.
    #[error("cannot create {what}: {source}")]
    Mint {
        /// What was being made.
        what: String,
        /// rcgen's reason.
        source: rcgen::Error,
    },

    /// A value given on the command line is not usable.
    #[error("{0}")]
    Invalid(String),

    /// rustls refused a configuration (it names what).
    #[error("cannot build the TLS configuration: {0}")]
    Config(String),

    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {}{}", io_reason(source), bind_hint(source))]
    Bind {
        /// The address asked for.
        addr: String,
        /// The operating system's reason.
        source: io::Error,
    },

    /// The host name in the URL does not resolve.
    #[error(
        "cannot resolve {host:?}: {}; check the host in --url (the demo server is localhost)",
        io_reason(source)
    )]
    Resolve {
        /// The host.
        host: String,
        /// The resolver's reason.
        source: io::Error,
    },

    /// TCP connect failed.
    #[error(
        "cannot connect to {target}: {}; is the server running on that address? \
         start it with `cargo run -p server`",
        io_reason(source)
    )]
    Connect {
        /// `host:port` as dialed, with the resolved address.
        target: String,
        /// The operating system's reason.
        source: io::Error,
    },

    /// The TLS handshake (or the first read after it) failed; `message` explains it.
    #[error("{message}")]
    Tls {
        /// The classification, for tests and metrics.
        failure: Failure,
        /// The plain-words explanation from this side.
        message: String,
    },

    /// A phase did not finish in time.
    #[error("timed out after {}s while {phase}", after.as_secs_f32())]
    Timeout {
        /// What we were doing ("connecting to 127.0.0.1:8443").
        phase: String,
        /// The limit.
        after: Duration,
    },

    /// The HTTP exchange failed after TLS succeeded.
    #[error("HTTP request to {peer} failed: {detail}")]
    Http {
        /// The server's address.
        peer: SocketAddr,
        /// hyper's reason.
        detail: String,
    },

    /// Other I/O (signals, runtime), with what we were doing.
    #[error("{context}: {}", io_reason(source))]
    Io {
        /// What we were doing.
        context: String,
        /// The operating system's reason.
        source: io::Error,
    },
}

impl Error {
    /// The TLS failure inside, if this is one.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Error::Tls { failure, .. } => Some(failure),
            _ => None,
        }
    }

    /// A file the certificate tool makes could not be read.
    pub(crate) fn read(what: &str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Read {
            what: what.to_string(),
            path: path.into(),
            source,
            minted: true,
        }
    }

    /// A file the user brings (a password file, a file to inspect) could not be read.
    pub(crate) fn read_given(what: &str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Read {
            what: what.to_string(),
            path: path.into(),
            source,
            minted: false,
        }
    }

    pub(crate) fn malformed(
        what: &str,
        path: impl Into<PathBuf>,
        detail: impl Into<String>,
    ) -> Self {
        Error::Malformed {
            what: what.to_string(),
            path: path.into(),
            detail: detail.into(),
        }
    }
}

/// The OS reason without Rust's "(os error 2)" suffix, lower-case like the rest of the sentence.
fn io_reason(e: &io::Error) -> String {
    let text = match e.kind() {
        io::ErrorKind::NotFound => "no such file".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        io::ErrorKind::AddrInUse => "address already in use".to_string(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

fn read_hint(e: &io::Error, minted: bool) -> &'static str {
    match e.kind() {
        io::ErrorKind::NotFound if minted => {
            "; create the demo certificates with `cargo run -p certificate`"
        }
        io::ErrorKind::PermissionDenied => "; check the file's owner and permissions",
        _ => "",
    }
}

fn not_pem_hint(der: bool) -> &'static str {
    if der {
        " (it looks like binary DER; convert it with `openssl x509 -inform der -in FILE -out FILE.pem`)"
    } else {
        " (no -----BEGIN ...----- block found)"
    }
}

fn bind_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            "; another process (perhaps another server) is using this port: stop it, or pass \
             --addr 127.0.0.1:0 to pick a free port"
        }
        io::ErrorKind::PermissionDenied => {
            "; ports below 1024 need privileges: pick a port above 1024"
        }
        io::ErrorKind::AddrNotAvailable => "; this machine has no such address: use 127.0.0.1",
        _ => "",
    }
}
