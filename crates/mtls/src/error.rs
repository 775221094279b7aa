//! The library's error: every variant carries the file, the role and the cause, so the
//! binaries can print one sentence a person can act on.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::AlertDescription;
use rustls::pki_types::UnixTime;
use time::OffsetDateTime;

use crate::certinfo::CertInfo;
use crate::files::Role;
use crate::program::Program;

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, with enough context to explain it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {what} {}{}: {}{}", path.display(), in_dir(path, source), io_reason(source), read_hint(path, source, *hint))]
    Read {
        /// What the file was supposed to hold ("the CA certificate").
        what: String,
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
        /// Where such a file comes from, for the hint when it is missing.
        hint: ReadHint,
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
    #[error("cannot write {}: {}{}", path.display(), io_reason(source), write_hint(source))]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },

    /// A session-ticket key file every user may read, or others may change.
    #[error(
        "the session-ticket key file {} may be read or changed by other users (mode \
         {mode:03o}): whoever reads it can resume a session as any client. Nothing was loaded \
         from it; run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    TicketKeysExposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// Refusing to replace a file without `--force`.
    #[error("{} already exists; {why}. Nothing was changed; pass --force to replace it", path.display())]
    AlreadyExists {
        /// The file that exists.
        path: PathBuf,
        /// Why replacing it matters.
        why: String,
    },

    /// A symbolic link stands where a file is to be written, and `--force` was not given.
    #[error(
        "{} is a symbolic link to {}{}; nothing is written through a link (it could put a key \
         or certificate anywhere). Nothing was changed; remove the link, or pass --force to \
         replace the link itself with a file",
        path.display(),
        target.display(),
        if *dangling { ", which does not exist" } else { "" }
    )]
    SymlinkInTheWay {
        /// The link.
        path: PathBuf,
        /// Where it points, as written in the link.
        target: PathBuf,
        /// The target does not exist.
        dangling: bool,
    },

    /// One file of a key pair (`NAME.key`, `NAME.crt`) exists without the other.
    #[error(
        "{} exists without its partner {}{hint}",
        present.display(),
        missing.display()
    )]
    Unpaired {
        /// The file that is there.
        present: PathBuf,
        /// The file that is not.
        missing: PathBuf,
        /// What to do (may be empty).
        hint: String,
    },

    /// Another `certificate` run kept the folder's lock for longer than we wait.
    #[error(
        "{} is busy: another `certificate` run has held {} for more than {}s. Nothing was \
         changed; let that run finish and try again (the lock is released when that run ends, \
         even if it is killed)",
        dir.display(),
        lock.display(),
        waited.as_secs()
    )]
    Busy {
        /// The certificate folder.
        dir: PathBuf,
        /// Its lock file.
        lock: PathBuf,
        /// How long we waited.
        waited: Duration,
    },

    /// rcgen could not produce a certificate, key or CRL.
    #[error("cannot create {what}: {source}")]
    Mint {
        /// What was being made.
        what: String,
        /// rcgen's reason.
        source: rcgen::Error,
    },

    /// A name that cannot name a certificate in the folder.
    #[error("{name:?} {problem}")]
    BadName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        problem: NameProblem,
    },

    /// A `--san` value that is not a usable subject alternative name.
    #[error("--san {value:?}: {why}")]
    BadSan {
        /// As typed.
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },

    /// A certificate that should sign others is not a CA.
    #[error(
        "{} is not a CA certificate (it lacks basicConstraints CA:TRUE), so it cannot sign \
         certificates{hint}",
        path.display()
    )]
    NotACa {
        /// Its file.
        path: PathBuf,
        /// What to do instead (may be empty).
        hint: String,
    },

    /// A CA outside its validity cannot sign.
    #[error("{label} {}", match (*expired, *at) {
        (true, at) => format!(
            "expired on {}, so it cannot sign anything; give the folder a new CA with `{}` \
             and renew its certificates",
            crate::format::format_time(at),
            Program::Certificate.command("ca rotate")
        ),
        (false, at) => format!(
            "is not valid until {}, so it cannot sign yet; check this machine's clock",
            crate::format::format_time(at)
        ),
    })]
    IssuerNotCurrent {
        /// How messages name the CA (its file).
        label: String,
        /// Expired (rather than not valid yet).
        expired: bool,
        /// Its notAfter (expired) or notBefore.
        at: OffsetDateTime,
    },

    /// The folder has no certificate by that name.
    #[error("there is no {} to {action}{hint}", path.display())]
    NoSuchCertificate {
        /// The file looked for.
        path: PathBuf,
        /// What was asked ("renew", "revoke").
        action: &'static str,
        /// What to do instead (may be empty).
        hint: String,
    },

    /// No CA in the folder issued the certificate.
    #[error(
        "no CA in {} issued {} (its issuer is \"{issuer}\"){hint}",
        dir.display(),
        path.display()
    )]
    NoIssuer {
        /// The folder.
        dir: PathBuf,
        /// The certificate.
        path: PathBuf,
        /// The issuer it names.
        issuer: String,
        /// What to do instead.
        hint: String,
    },

    /// `certificate ca retire` while certificates in the folder still chain only to the old
    /// CA: they would stop verifying the moment it leaves `ca.crt`.
    #[error(
        "{} is still needed: {} chain{} only to it and would stop verifying once it is \
         retired. Nothing was changed; renew {} first (`{}`), or pass --force to retire it \
         anyway",
        ca.display(),
        dependents.iter().map(|n| format!("{n}.crt")).collect::<Vec<_>>().join(", "),
        if dependents.len() == 1 { "s" } else { "" },
        if dependents.len() == 1 { "it" } else { "them" },
        Program::Certificate.command(&format!("renew {} --certs {}", dependents.first().map_or("NAME", String::as_str), dir.display()))
    )]
    StillNeeded {
        /// The folder.
        dir: PathBuf,
        /// The old CA's certificate.
        ca: PathBuf,
        /// The certificates (`NAME`) that chain only to it.
        dependents: Vec<String>,
    },

    /// `renew --watch` met a failure that will not pass by itself.
    #[error("{name} can no longer be renewed, so the watch stops: {source}")]
    WatchEnded {
        /// The certificate watched (`NAME`).
        name: String,
        /// Why it cannot be renewed (the CA expired, a key or the certificate gone, ...).
        source: Box<Error>,
    },

    /// A value given on the command line is not usable (exit status 2).
    #[error("{0}")]
    Usage(String),

    /// A request that cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),

    /// rustls refused a configuration (it names what).
    #[error("cannot build the TLS configuration: {0}")]
    Config(String),

    /// The listening socket could not be opened.
    #[error(
        "cannot listen on {addr}: {}{}",
        io_reason(source),
        bind_hint(source, flag)
    )]
    Bind {
        /// The address asked for.
        addr: String,
        /// The flag that gave it (`--addr`, `--listen`, `--metrics-addr`).
        flag: &'static str,
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
         start it with `{}`",
        io_reason(source),
        Program::Server.command("")
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
    /// A mistake on the command line (exit status 2), rather than a failure to do the work.
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Usage(_))
    }

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
            hint: ReadHint::Minted,
        }
    }

    /// A revocation list could not be read (the server reads its --crl files at every
    /// reload).
    pub(crate) fn read_crl(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Read {
            what: "the certificate revocation list".to_string(),
            path: path.into(),
            source,
            hint: ReadHint::Crl,
        }
    }

    /// A file the user brings (a password file, a file to inspect) could not be read.
    pub(crate) fn read_given(what: &str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Read {
            what: what.to_string(),
            path: path.into(),
            source,
            hint: ReadHint::Given,
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

/// Where a file that could not be read comes from, for the hint that follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadHint {
    /// The `certificate` tool makes it: a missing one means minting (or running from the
    /// folder that has it).
    Minted,
    /// The user brings it: nothing to suggest beyond the reason.
    Given,
    /// A revocation list: write it again, or do without.
    Crl,
}

/// Why a name cannot be used for a certificate in the folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameProblem {
    /// Not a safe file stem: letters, digits, `.`, `_` and `-` only, no `..`.
    Unusable,
    /// Longer than [`NAME_MAX`] characters.
    TooLong {
        /// Its length, in characters.
        len: usize,
    },
    /// One of the folder's own files (`ca`, `crl`, ...).
    Reserved,
    /// A name the folder gives a meaning (`server`, `client-a`, `intermediate`), asked for
    /// as another kind of certificate.
    KeptFor(Role),
}

/// The longest name a certificate in the folder may have: the name is also the
/// certificate's common name by default, and X.509 caps a common name at 64 characters
/// (RFC 5280, ub-common-name).
pub const NAME_MAX: usize = 64;

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::Unusable => f.write_str(
                "is not a usable name: use letters, digits, '.', '_' and '-' (it becomes NAME.crt \
                 and NAME.key in the folder, so no '/' and no '..')",
            ),
            NameProblem::TooLong { len } => write!(
                f,
                "is {len} characters long; names are at most {NAME_MAX} characters, because \
                 the name is also the certificate's common name, which X.509 caps at \
                 {NAME_MAX} (RFC 5280); pick a shorter name"
            ),
            NameProblem::Reserved => write!(
                f,
                "is reserved for the folder's own files ({}); pick another name",
                crate::files::RESERVED.join(", ")
            ),
            NameProblem::KeptFor(role) => {
                let (flag, why) = match role {
                    Role::Intermediate => (
                        "--intermediate",
                        "`issue` signs with intermediate.crt whenever it exists, so it must be a CA",
                    ),
                    Role::Server => (
                        "--server",
                        "the server loads server.crt unless told otherwise",
                    ),
                    Role::Client(_) => (
                        "--client",
                        "the client's -c a / -c b load client-a.crt and client-b.crt",
                    ),
                    Role::Ca => {
                        return f.write_str("is kept for the root CA; pick another name");
                    }
                };
                write!(
                    f,
                    "is kept for {} ({why}); issue it with {flag}, or pick another name",
                    role.owner()
                )
            }
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

/// For a missing file given as a relative path, the folder it was looked for in.
fn in_dir(path: &Path, e: &io::Error) -> String {
    match (e.kind(), path.is_relative(), std::env::current_dir()) {
        (io::ErrorKind::NotFound, true, Ok(cwd)) => format!(" (in {})", cwd.display()),
        _ => String::new(),
    }
}

fn read_hint(path: &Path, e: &io::Error, hint: ReadHint) -> String {
    match (e.kind(), hint) {
        (io::ErrorKind::NotFound, ReadHint::Minted)
            if path.extension().is_some_and(|x| x == "key")
                && path.with_extension("crt").exists() =>
        {
            format!(
                "; its certificate {} is there, so the key went missing: restore it from a \
                 backup (nothing more can be signed or renewed with this pair without it; \
                 starting over is `{}`, which replaces every certificate)",
                path.with_extension("crt").display(),
                Program::Certificate.command("--force")
            )
        }
        (io::ErrorKind::NotFound, ReadHint::Minted) => match found_above(path) {
            Some(dir) => format!(
                "; there is one at {}: run from {}, or pass --certs {}",
                dir.join(path).display(),
                dir.display(),
                dir.join(path.parent().unwrap_or(Path::new(""))).display()
            ),
            None => format!(
                "; create the demo certificates with `{}`",
                Program::Certificate.command("")
            ),
        },
        (io::ErrorKind::NotFound, ReadHint::Crl) => format!(
            "; write the list again (`{}`), or start the server without that --crl",
            Program::Certificate.command("crl")
        ),
        (io::ErrorKind::PermissionDenied, _) => "; check the file's owner and permissions".into(),
        _ => String::new(),
    }
}

/// The nearest folder above the working directory where the relative `path` exists: a
/// program started in a sub-folder of the workspace finds the demo set at its root.
fn found_above(path: &Path) -> Option<PathBuf> {
    if !path.is_relative() {
        return None;
    }
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .skip(1)
        .take(16)
        .find(|dir| dir.join(path).is_file())
        .map(Path::to_path_buf)
}

fn write_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            "; the disk (or your quota) is full: make room and run it again"
        }
        io::ErrorKind::FileTooLarge => {
            "; a file-size limit stopped it (see `ulimit -f`): lift the limit and run it again"
        }
        io::ErrorKind::PermissionDenied => "; check the folder's owner and permissions",
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

fn bind_hint(e: &io::Error, flag: &str) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => format!(
            "; another process (perhaps another server) is using this port: stop it, or pass \
             {flag} 127.0.0.1:0 to pick a free port"
        ),
        io::ErrorKind::PermissionDenied => {
            "; ports below 1024 need privileges: pick a port above 1024".into()
        }
        io::ErrorKind::AddrNotAvailable => {
            "; this machine has no such address: use 127.0.0.1".into()
        }
        _ => String::new(),
    }
}

/// Why a handshake (or the first read after it) failed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Failure {
    /// The client sent no certificate, and the server requires one.
    NoCertificate,
    /// The peer's certificate does not chain to a CA we trust.
    UnknownIssuer {
        /// The issuer named in the peer's certificate, when we saw it.
        issuer: Option<String>,
    },
    /// The peer's certificate has expired.
    Expired {
        /// Its notAfter, when known.
        not_after: Option<OffsetDateTime>,
    },
    /// The peer's certificate is not valid yet.
    NotYetValid {
        /// Its notBefore, when known.
        not_before: Option<OffsetDateTime>,
    },
    /// The peer's certificate is listed in a CRL we loaded.
    Revoked,
    /// CRLs are loaded but none of them covers the peer's issuer.
    RevocationUnknown,
    /// A CRL we loaded is past its nextUpdate.
    CrlExpired,
    /// A CRL we loaded is broken or not signed by its CA.
    BadCrl(String),
    /// The peer's certificate lacks the extended key usage its role needs.
    WrongPurpose {
        /// The usage the check needed ("client authentication").
        required: String,
        /// The usages the certificate has.
        presented: Vec<String>,
    },
    /// The peer presented a CA certificate as its own identity.
    CaAsLeaf,
    /// The chain breaks a rule of X.509 path validation (RFC 5280) that webpki enforces.
    Chain(ChainRule),
    /// The server's certificate does not name the host we dialed.
    NameMismatch {
        /// The host we dialed.
        expected: String,
        /// The names the certificate has (`DNS:localhost`, `IP:127.0.0.1`).
        presented: Vec<String>,
    },
    /// A signature in the peer's chain or handshake does not verify.
    BadSignature,
    /// The peer ended the handshake with this alert.
    PeerRefused {
        /// The alert it sent.
        alert: AlertDescription,
    },
    /// TLS 1.3: the server closed the connection right after the handshake, without an alert.
    ClosedAfterHandshake,
    /// The peer did not speak TLS (plain HTTP on the TLS port, for example).
    NotTls,
    /// The peer sent a TLS message larger than this side accepts (a certificate chain over
    /// 64 KiB, say).
    TooLarge,
    /// The peer spoke TLS, but sent a message this side cannot parse.
    Malformed(String),
    /// The peer's certificate is not well-formed DER (trailing bytes in an extension, say).
    BadCertificateEncoding,
    /// No TLS version, cipher suite or group in common.
    Incompatible(Incompatibility),
    /// The handshake did not finish in time.
    Timeout {
        /// The limit that passed.
        after: Duration,
    },
    /// Anything else rustls reported, in its own words.
    Other(String),
}

impl Failure {
    /// Classifies a rustls error.
    #[allow(deprecated)] // rustls still reports the unit variants some paths use
    pub fn from_rustls(err: &rustls::Error) -> Self {
        use rustls::CertificateError as C;
        use rustls::Error as E;
        match err {
            E::NoCertificatesPresented => Failure::NoCertificate,
            E::AlertReceived(alert) => Failure::PeerRefused { alert: *alert },
            E::InvalidCertificate(cert) => match cert {
                C::UnknownIssuer => Failure::UnknownIssuer { issuer: None },
                C::Expired => Failure::Expired { not_after: None },
                C::ExpiredContext { not_after, .. } => Failure::Expired {
                    not_after: to_datetime(*not_after),
                },
                C::NotValidYet => Failure::NotYetValid { not_before: None },
                C::NotValidYetContext { not_before, .. } => Failure::NotYetValid {
                    not_before: to_datetime(*not_before),
                },
                C::Revoked => Failure::Revoked,
                C::UnknownRevocationStatus => Failure::RevocationUnknown,
                C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => {
                    Failure::CrlExpired
                }
                C::InvalidPurpose => Failure::WrongPurpose {
                    required: "the extended key usage of its role".into(),
                    presented: Vec::new(),
                },
                C::InvalidPurposeContext {
                    required,
                    presented,
                } => Failure::WrongPurpose {
                    required: required.to_string(),
                    presented: presented.iter().map(|p| p.to_string()).collect(),
                },
                C::NotValidForNameContext {
                    expected,
                    presented,
                } => Failure::NameMismatch {
                    expected: expected.to_str().into_owned(),
                    presented: presented.iter().map(|p| webpki_name(p)).collect(),
                },
                C::NotValidForName => Failure::NameMismatch {
                    expected: String::new(),
                    presented: Vec::new(),
                },
                C::BadSignature => Failure::BadSignature,
                C::BadEncoding => Failure::BadCertificateEncoding,
                C::UnsupportedSignatureAlgorithm
                | C::UnsupportedSignatureAlgorithmContext { .. }
                | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                    Failure::Chain(ChainRule::UnsupportedAlgorithm)
                }
                // What rustls does not classify itself, it passes on as webpki said it.
                C::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
                    Some(e) => Failure::from_webpki(e),
                    None => Failure::Other(format!("certificate rejected: {other}")),
                },
                other => Failure::Other(format!("certificate rejected: {other}")),
            },
            E::InvalidCertRevocationList(crl) => Failure::BadCrl(format!("{crl:?}")),
            E::PeerIncompatible(why) => Failure::Incompatible(Incompatibility::of(why)),
            E::InvalidMessage(m) => {
                use rustls::InvalidMessage as M;
                match m {
                    M::InvalidContentType | M::UnknownProtocolVersion => Failure::NotTls,
                    // A handshake message framed correctly but too long (a huge chain); a
                    // record too long to be TLS at all is malformed, like other garbage.
                    M::CertificatePayloadTooLarge | M::HandshakePayloadTooLarge => {
                        Failure::TooLarge
                    }
                    other => Failure::Malformed(format!("{other:?}")),
                }
            }
            E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
                Failure::Malformed(err.to_string())
            }
            other => Failure::Other(other.to_string()),
        }
    }

    /// Classifies webpki's verdict on a chain, as [`Failure::from_rustls`] classifies the
    /// same verdict after rustls has wrapped it (`certificate verify` calls webpki itself).
    pub fn from_webpki(err: &webpki::Error) -> Self {
        use webpki::Error as W;
        #[allow(deprecated)]
        match err {
            W::BadDer
            | W::BadDerTime
            | W::TrailingData(_)
            | W::MalformedExtensions
            | W::ExtensionValueInvalid => Failure::BadCertificateEncoding,
            W::CertNotValidYet { not_before, .. } => Failure::NotYetValid {
                not_before: to_datetime(*not_before),
            },
            W::CertExpired { not_after, .. } => Failure::Expired {
                not_after: to_datetime(*not_after),
            },
            W::InvalidCertValidity => Failure::Chain(ChainRule::InvalidValidity),
            W::UnknownIssuer => Failure::UnknownIssuer { issuer: None },
            W::CertNotValidForName(cx) => Failure::NameMismatch {
                expected: cx.expected.to_str().into_owned(),
                presented: cx.presented.iter().map(|p| webpki_name(p)).collect(),
            },
            W::CertRevoked => Failure::Revoked,
            W::UnknownRevocationStatus => Failure::RevocationUnknown,
            W::CrlExpired { .. } => Failure::CrlExpired,
            W::IssuerNotCrlSigner
            | W::InvalidCrlSignatureForPublicKey
            | W::UnsupportedCrlSignatureAlgorithm
            | W::UnsupportedCrlSignatureAlgorithmContext(_)
            | W::UnsupportedCrlSignatureAlgorithmForPublicKey
            | W::UnsupportedCrlSignatureAlgorithmForPublicKeyContext(_)
            | W::InvalidCrlNumber
            | W::InvalidSerialNumber
            | W::UnsupportedCrlVersion
            | W::UnsupportedDeltaCrl
            | W::UnsupportedIndirectCrl
            | W::UnsupportedRevocationReason
            | W::UnsupportedRevocationReasonsPartitioning
            | W::UnsupportedCrlIssuingDistributionPoint => Failure::BadCrl(format!("{err:?}")),
            W::InvalidSignatureForPublicKey => Failure::BadSignature,
            W::UnsupportedSignatureAlgorithm
            | W::UnsupportedSignatureAlgorithmContext(_)
            | W::UnsupportedSignatureAlgorithmForPublicKey
            | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
            | W::SignatureAlgorithmMismatch => Failure::Chain(ChainRule::UnsupportedAlgorithm),
            W::RequiredEkuNotFoundContext(cx) => Failure::WrongPurpose {
                required: purpose_name(&cx.required.oid_values().collect::<Vec<_>>()),
                presented: cx.present.iter().map(|oid| purpose_name(oid)).collect(),
            },
            W::RequiredEkuNotFound => Failure::WrongPurpose {
                required: "the extended key usage of its role".into(),
                presented: Vec::new(),
            },
            W::EmptyEkuExtension => Failure::Chain(ChainRule::EmptyEku),
            W::CaUsedAsEndEntity => Failure::CaAsLeaf,
            W::EndEntityUsedAsCa => Failure::Chain(ChainRule::IssuerNotCa),
            W::PathLenConstraintViolated => Failure::Chain(ChainRule::PathLength),
            W::NameConstraintViolation => Failure::Chain(ChainRule::NameConstraints),
            W::UnsupportedCriticalExtension => {
                Failure::Chain(ChainRule::UnsupportedCriticalExtension)
            }
            W::UnsupportedCertVersion => Failure::Chain(ChainRule::UnsupportedVersion),
            W::CertDistrusted => Failure::Chain(ChainRule::Distrusted),
            W::MaximumPathBuildCallsExceeded
            | W::MaximumSignatureChecksExceeded
            | W::MaximumNameConstraintComparisonsExceeded
            | W::MaximumPathDepthExceeded => Failure::Chain(ChainRule::TooComplex),
            other => Failure::Other(format!("certificate rejected: {other}")),
        }
    }

    /// Fills in what the peer's chain tells us (its issuer, its names), when we saw it.
    pub fn with_peer_chain(self, chain: &[CertInfo]) -> Self {
        let Some(leaf) = chain.first() else {
            return self;
        };
        match self {
            Failure::UnknownIssuer { issuer: None } => Failure::UnknownIssuer {
                issuer: Some(chain.last().unwrap_or(leaf).issuer.clone()),
            },
            Failure::NameMismatch { expected, .. } => Failure::NameMismatch {
                expected,
                presented: leaf.sans.iter().map(|s| s.to_string()).collect(),
            },
            Failure::Expired { not_after: None } => Failure::Expired {
                not_after: Some(leaf.not_after),
            },
            Failure::NotYetValid { not_before: None } => Failure::NotYetValid {
                not_before: Some(leaf.not_before),
            },
            other => other,
        }
    }

    /// A stable, machine-friendly reason: the `reason` log field and metrics label.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::NoCertificate => "no_certificate",
            Failure::UnknownIssuer { .. } => "unknown_ca",
            Failure::Expired { .. } => "expired",
            Failure::NotYetValid { .. } => "not_yet_valid",
            Failure::Revoked => "revoked",
            Failure::RevocationUnknown => "revocation_unknown",
            Failure::CrlExpired => "crl_expired",
            Failure::BadCrl(_) => "bad_crl",
            Failure::WrongPurpose { .. } | Failure::CaAsLeaf => "bad_usage",
            Failure::Chain(rule) => rule.code(),
            Failure::NameMismatch { .. } => "name_mismatch",
            Failure::BadSignature => "bad_signature",
            Failure::PeerRefused { .. } => "peer_refused",
            Failure::ClosedAfterHandshake => "closed_after_handshake",
            Failure::Timeout { .. } => "timeout",
            Failure::TooLarge => "too_large",
            Failure::BadCertificateEncoding => "bad_certificate",
            Failure::NotTls
            | Failure::Malformed(_)
            | Failure::Incompatible(_)
            | Failure::Other(_) => "protocol",
        }
    }
}

/// A rule of X.509 path validation (RFC 5280) a chain breaks, as webpki enforces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainRule {
    /// A certificate that issued another one on the path is not a CA (basicConstraints).
    IssuerNotCa,
    /// A CA's pathLenConstraint allows fewer CAs below it than the path has.
    PathLength,
    /// A name below a name-constrained CA is outside what it permits, or inside what it
    /// excludes.
    NameConstraints,
    /// A certificate has a critical extension the verifier does not understand.
    UnsupportedCriticalExtension,
    /// A signature on the path uses an algorithm rustls does not accept.
    UnsupportedAlgorithm,
    /// A certificate's notBefore is later than its notAfter.
    InvalidValidity,
    /// A certificate's extended key usage extension lists nothing.
    EmptyEku,
    /// A certificate is not X.509 version 3.
    UnsupportedVersion,
    /// A key webpki distrusts outright.
    Distrusted,
    /// Path building gave up: too many candidates, signatures or name comparisons.
    TooComplex,
}

impl ChainRule {
    /// The stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            ChainRule::IssuerNotCa => "issuer_not_ca",
            ChainRule::PathLength => "path_length",
            ChainRule::NameConstraints => "name_constraints",
            ChainRule::UnsupportedCriticalExtension => "unsupported_extension",
            ChainRule::UnsupportedAlgorithm => "unsupported_algorithm",
            ChainRule::InvalidValidity => "invalid_validity",
            ChainRule::EmptyEku => "empty_eku",
            ChainRule::UnsupportedVersion => "unsupported_version",
            ChainRule::Distrusted => "distrusted",
            ChainRule::TooComplex => "too_complex",
        }
    }
}

/// An extended key usage OID as rustls names it ("server authentication"), or dotted.
fn purpose_name(oid: &[usize]) -> String {
    const PKIX_KP: [usize; 8] = [1, 3, 6, 1, 5, 5, 7, 3];
    match oid.split_at_checked(PKIX_KP.len()) {
        Some((kp, [1])) if kp == PKIX_KP => "server authentication".into(),
        Some((kp, [2])) if kp == PKIX_KP => "client authentication".into(),
        _ => oid
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("."),
    }
}

/// What two peers could not agree on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incompatibility {
    /// The peer offered only TLS 1.0 or 1.1 (or SSL).
    OldProtocol,
    /// The peer offered TLS 1.2 at most, and TLS 1.3 is required.
    Tls13Required,
    /// The version one side requires is one the other does not offer.
    Version,
    /// No cipher suite in common.
    CipherSuites,
    /// No key-exchange group in common.
    KeyExchange,
    /// No signature algorithm in common.
    SignatureSchemes,
    /// Anything else rustls reported.
    Other(String),
}

impl Incompatibility {
    /// Classifies rustls's `PeerIncompatible`.
    pub fn of(why: &rustls::PeerIncompatible) -> Self {
        use rustls::PeerIncompatible as P;
        match why {
            P::SignatureAlgorithmsExtensionRequired | P::NullCompressionRequired => {
                Incompatibility::OldProtocol
            }
            P::SupportedVersionsExtensionRequired => Incompatibility::Tls13Required,
            P::Tls12NotOffered
            | P::Tls12NotOfferedOrEnabled
            | P::ServerTlsVersionIsDisabledByOurConfig
            | P::ServerDoesNotSupportTls12Or13 => Incompatibility::Version,
            P::NoCipherSuitesInCommon => Incompatibility::CipherSuites,
            P::NoKxGroupsInCommon => Incompatibility::KeyExchange,
            P::NoSignatureSchemesInCommon | P::NoCertificateRequestSignatureSchemesInCommon => {
                Incompatibility::SignatureSchemes
            }
            other => Incompatibility::Other(format!("{other:?}")),
        }
    }
}

/// webpki prints presented names as `DnsName("x")` / `IpAddress(1.2.3.4)`; we print `DNS:x`.
fn webpki_name(debug: &str) -> String {
    let strip = |s: &str, prefix: &str| {
        s.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(')'))
            .map(|r| r.trim_matches('"').to_string())
    };
    if let Some(dns) = strip(debug, "DnsName(") {
        format!("DNS:{dns}")
    } else if let Some(ip) = strip(debug, "IpAddress(") {
        format!("IP:{ip}")
    } else if let Some(uri) = strip(debug, "UniformResourceIdentifier(") {
        format!("URI:{uri}")
    } else {
        debug.to_string()
    }
}

/// A webpki time as a date, when it is one.
pub(crate) fn to_datetime(t: UnixTime) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(i64::try_from(t.as_secs()).ok()?).ok()
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webpki_verdicts_classify_alike_directly_and_through_rustls() {
        use webpki::Error as W;
        for e in [
            W::PathLenConstraintViolated,
            W::NameConstraintViolation,
            W::CaUsedAsEndEntity,
            W::EndEntityUsedAsCa,
            W::UnsupportedCriticalExtension,
            W::MalformedExtensions,
            W::MaximumPathBuildCallsExceeded,
        ] {
            let wrapped = rustls::Error::InvalidCertificate(rustls::CertificateError::Other(
                rustls::OtherError(std::sync::Arc::new(e.clone())),
            ));
            assert_eq!(
                Failure::from_rustls(&wrapped),
                Failure::from_webpki(&e),
                "{e:?}"
            );
        }
        assert_eq!(
            Failure::from_webpki(&W::PathLenConstraintViolated).code(),
            "path_length"
        );
    }

    #[test]
    fn purposes_are_named_as_rustls_names_them() {
        assert_eq!(
            purpose_name(&[1, 3, 6, 1, 5, 5, 7, 3, 1]),
            "server authentication"
        );
        assert_eq!(
            purpose_name(&[1, 3, 6, 1, 5, 5, 7, 3, 2]),
            "client authentication"
        );
        assert_eq!(purpose_name(&[2, 5, 29, 37, 0]), "2.5.29.37.0");
    }

    #[test]
    fn webpki_names_become_openssl_style() {
        assert_eq!(webpki_name("DnsName(\"localhost\")"), "DNS:localhost");
        assert_eq!(webpki_name("IpAddress(127.0.0.1)"), "IP:127.0.0.1");
    }
}
