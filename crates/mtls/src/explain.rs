//! TLS failures in plain words, from the side that saw them, with what to do next.
//!
//! rustls reports *what* failed (`CertificateError::UnknownIssuer`, an alert from the peer);
//! a learner needs *who* checked *what*, *why* it failed and *which command* fixes it.
//! [`Failure`] (in [`crate::error`]) is the typed classification: tests and metrics match on
//! it, never on strings. This module is prose only: [`Failure::explain`] turns a failure into
//! the sentence the binaries print.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls::AlertDescription;
use time::OffsetDateTime;

use crate::certinfo::CertInfo;
use crate::error::{ChainRule, Failure, Incompatibility};
use crate::files::DEFAULT_DIR;
pub use crate::format::alert_name;
use crate::format::escape_controls;
use crate::program::Program;

/// Which end of the connection is describing the failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// We dialed out and verified the server.
    Client,
    /// We accepted the connection and verified the client.
    Server,
}

impl Side {
    fn peer(self) -> &'static str {
        match self {
            Side::Client => "the server",
            Side::Server => "the client",
        }
    }

    fn we(self) -> &'static str {
        match self {
            Side::Client => "we",
            Side::Server => "this server",
        }
    }
}

/// What the explaining side knows about its own setup, to make advice concrete.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The CA file this side trusts.
    pub ca: Option<PathBuf>,
    /// The CRL files this side loaded.
    pub crls: Vec<PathBuf>,
    /// The certificates in the CA file, to tell a file that holds no CA at all.
    pub anchors: Vec<CertInfo>,
    /// Client side: our own certificate, when we have one (its dates tell an expired one
    /// from a clock that is off).
    pub ours: Option<CertInfo>,
    /// Client side: the file our certificate came from (for the command that renews it).
    pub ours_file: Option<PathBuf>,
    /// Client side: the retired CA our certificate chains to, when the CA file no longer
    /// holds it and its folder keeps it in `retired/` (see [`crate::retired`]).
    pub retired: Option<RetiredCa>,
    /// Client side: whether the server asked for our certificate, when known.
    pub asked: Option<bool>,
    /// Client side: whether we sent one, when known.
    pub sent: Option<bool>,
    /// Client side: when the refusal arrived, when known.
    pub arrived: Option<Arrival>,
    /// The option that names the host to check (`--url` when `None`).
    pub host_flag: Option<&'static str>,
    /// Client side: the option that names the CA we trust (`--ca` when `None`).
    pub ca_flag: Option<&'static str>,
}

/// A retired CA our certificate chains to: the evidence [`crate::retired::find`] gathers.
#[derive(Clone, Debug)]
pub struct RetiredCa {
    /// Its subject.
    pub subject: String,
    /// Where the folder keeps it (`certs/retired/ca-1a2b3c4d.crt`).
    pub file: PathBuf,
    /// The CA file that no longer holds it.
    pub ca_file: PathBuf,
}

/// When a peer's refusal reached the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Before our side of the handshake finished (TLS 1.2 servers judge the client's
    /// certificate before they send their Finished).
    InHandshake,
    /// On the first read after our side of the handshake finished (TLS 1.3: the client
    /// sends its certificate in its last flight and learns the verdict only afterwards).
    AfterHandshake,
}

impl fmt::Display for Arrival {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arrival::InHandshake => {
                "the refusal arrived inside the handshake, before it finished: with TLS 1.2 the \
                 server judges our certificate before it sends its Finished"
            }
            Arrival::AfterHandshake => {
                "the refusal arrived on the first read after our side of the handshake had \
                 finished: with TLS 1.3 we send our certificate in our last flight, so we learn \
                 the server's verdict only afterwards"
            }
        })
    }
}

impl Failure {
    /// One sentence, from `side`'s point of view: what failed, why, and what to do.
    pub fn explain(&self, side: Side, cx: &Context) -> String {
        let peer = side.peer();
        let we = side.we();
        let ca = cx
            .ca
            .as_ref()
            .map(|p| format!(" (the CA in {})", p.display()))
            .unwrap_or_default();
        match self {
            Failure::NoCertificate => format!(
                "the client sent no certificate, but this server requires one (that is what makes \
                 it mutual TLS); give the client a certificate issued by the CA{ca}, e.g. \
                 `{}`, or curl --cert client-a.crt --key client-a.key",
                Program::Client.command("-c a")
            ),
            Failure::UnknownIssuer { issuer } if side == Side::Client && cx.holds_no_ca() => {
                let file = cx
                    .ca
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "the CA file".into());
                let what = cx
                    .anchors
                    .iter()
                    .map(|c| c.identity())
                    .collect::<Vec<_>>()
                    .join(", ");
                let by = issuer
                    .as_deref()
                    .map(|i| format!(" (\"{}\")", escape_controls(i)))
                    .unwrap_or_default();
                format!(
                    "{file}, given as the CA we trust, is not a CA certificate: it holds {what}, a \
                     leaf that signs nothing, so no server can chain to it; pass the CA that issued \
                     the server's certificate{by} with {}",
                    cx.ca_flag.unwrap_or("--ca")
                )
            }
            Failure::UnknownIssuer { issuer } => {
                let by = issuer
                    .as_ref()
                    .map(|i| format!(" (it was issued by \"{}\")", escape_controls(i)))
                    .unwrap_or_default();
                let fix = match side {
                    Side::Client => format!(
                        "pass the CA that issued the server's certificate with {}, or reissue the \
                         server certificate from our CA with `{}`",
                        cx.ca_flag.unwrap_or("--ca"),
                        Program::Certificate.command("")
                    ),
                    Side::Server => {
                        "issue the client's certificate from this server's CA, or start \
                                     the server with --ca pointing at the CA that issued it"
                            .to_string()
                    }
                };
                let (distrust, trusts) = match side {
                    Side::Client => ("we do not trust", "we trust"),
                    Side::Server => ("this server does not trust", "it trusts"),
                };
                let only = match cx.anchors.as_slice() {
                    [] => format!("the CA{ca}"),
                    anchors => format!(
                        "{}{ca}",
                        anchors
                            .iter()
                            .map(|a| format!("\"{}\"", escape_controls(&a.subject)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                format!(
                    "{peer}'s certificate was issued by a CA {distrust}{by}; {trusts} only {only}; {fix}"
                )
            }
            Failure::Expired { not_after } => format!(
                "{peer}'s certificate has expired{when}; renew it (same names, new dates): \
                 `{}`, where NAME.crt is the certificate",
                Program::Certificate.command("renew NAME"),
                when = not_after
                    .map(|t| format!(" (it was valid until {})", when(t)))
                    .unwrap_or_default()
            ),
            Failure::NotYetValid { not_before } => format!(
                "{peer}'s certificate is not valid yet{when}; check the clocks of both machines, or \
                 issue it with a start date in the past",
                when = not_before
                    .map(|t| format!(" (it becomes valid at {})", when(t)))
                    .unwrap_or_default()
            ),
            Failure::Revoked => format!(
                "{peer}'s certificate has been revoked: it is listed in the CRL{crl}; issue it a new \
                 certificate",
                crl = list_paths(&cx.crls)
            ),
            Failure::RevocationUnknown => format!(
                "{we} cannot tell whether {peer}'s certificate is revoked: no loaded CRL{crl} was \
                 issued by its CA; pass that CA's CRL with --crl",
                crl = list_paths(&cx.crls)
            ),
            Failure::CrlExpired => format!(
                "the certificate revocation list{crl} is out of date (its next update has passed); \
                 re-sign it with `{}`",
                Program::Certificate.command("crl"),
                crl = list_paths(&cx.crls)
            ),
            Failure::BadCrl(why) => format!(
                "the certificate revocation list{crl} cannot be used: {why}; re-sign it with \
                 `{}`",
                Program::Certificate.command("crl"),
                crl = list_paths(&cx.crls)
            ),
            Failure::WrongPurpose {
                required,
                presented,
            } => {
                let has = if presented.is_empty() {
                    String::new()
                } else {
                    format!(" (it allows only {})", presented.join(", "))
                };
                let flag = if side == Side::Server {
                    "--client"
                } else {
                    "--server"
                };
                format!(
                    "{peer}'s certificate is not meant for {required}: its extended key usage \
                     does not include it{has}; issue it with `{}`",
                    Program::Certificate.command(&format!("issue NAME {flag}"))
                )
            }
            Failure::CaAsLeaf => format!(
                "{peer} presented a CA certificate as its own identity; a CA certificate signs \
                 other certificates and cannot stand for a {role}; use a leaf certificate the CA \
                 issued",
                role = if side == Side::Server {
                    "client"
                } else {
                    "server"
                }
            ),
            Failure::NameMismatch {
                expected,
                presented,
            } => {
                let names = if presented.is_empty() {
                    "no names at all".to_string()
                } else {
                    format!("only {}", presented.join(", "))
                };
                format!(
                    "the server's certificate is not valid for \"{expected}\": it names {names}; \
                     put one of those names in {}, or add the name to the server certificate: \
                     `{}`",
                    cx.host_flag.unwrap_or("--url"),
                    Program::Certificate.command(&format!("renew server --san {expected}"))
                )
            }
            Failure::BadSignature => {
                let fix = match side {
                    Side::Client => {
                        "if the server was started before that, restart it so it loads its new \
                         certificate; otherwise issue its certificate again from the current CA, \
                         or point --ca at the CA that issued it"
                    }
                    Side::Server => {
                        "restart this server if the CA was minted again while it ran; otherwise \
                         issue the client's certificate again from the current CA"
                    }
                };
                format!(
                    "{peer}'s certificate names an issuer that matches our CA by name{ca}, but \
                     that CA's key did not sign it (or a handshake signature did not verify): \
                     usually the CA was minted again (--force) after this certificate was \
                     issued; {fix}"
                )
            }
            Failure::Chain(rule) => format!(
                "{peer}'s certificate chain breaks a rule of X.509 path validation (RFC 5280): \
                 {rule}"
            ),
            Failure::PeerRefused { alert } => refused(side, *alert, cx),
            Failure::ClosedAfterHandshake => {
                "the server closed the connection right after the TLS \
                 handshake without telling us why; with TLS 1.3 a server that refuses our \
                 certificate does exactly this when its alert is lost, so look in the server's log"
                    .to_string()
            }
            Failure::NotTls => match side {
                Side::Server => "the client did not speak TLS (plain HTTP on this HTTPS port?); \
                     use an https:// URL"
                    .to_string(),
                Side::Client => "the server did not answer with TLS; is this the right port, and \
                     is it an HTTPS server?"
                    .to_string(),
            },
            Failure::TooLarge => format!(
                "{peer} sent a handshake message larger than the 64 KiB rustls accepts: usually a \
                 certificate chain with too many or too large certificates; send only the leaf \
                 and the intermediates the CA needs"
            ),
            Failure::Malformed(what) => format!(
                "{peer} sent a TLS message {we} cannot parse ({what}); it speaks TLS, but not \
                 correctly: check its TLS library, or what sits between the two sides"
            ),
            Failure::BadCertificateEncoding => format!(
                "{peer}'s certificate is not well-formed DER (for example, trailing bytes inside \
                 an extension), so no verifier can read it; issue it again with a standard tool"
            ),
            Failure::Incompatible(why) => format!(
                "{we} and {peer} cannot agree on how to talk: {why}; this project speaks only \
                 TLS 1.2 and 1.3, with AEAD cipher suites and ephemeral key exchange"
            ),
            Failure::Timeout { after } => format!(
                "{peer} did not finish the TLS handshake within {}s",
                after.as_secs_f32()
            ),
            Failure::Other(why) => format!("the TLS handshake failed: {why}"),
        }
    }
}

impl Context {
    /// The CA file holds certificates, none of which is a CA (a leaf given as --ca).
    fn holds_no_ca(&self) -> bool {
        !self.anchors.is_empty() && self.anchors.iter().all(|c| c.ca != Some(true))
    }
}

/// The sentence for an alert the peer sent: what it generally means, then what to check,
/// most likely first, using what this side knows (whether the server asked for our
/// certificate and whether we sent one, our certificate's dates).
fn refused(side: Side, alert: AlertDescription, cx: &Context) -> String {
    use AlertDescription as A;
    let name = alert_name(alert);
    if side == Side::Server {
        let why = match alert {
            A::UnknownCA => {
                ": the client does not trust the CA that issued this server's certificate; give \
                 the client this CA (client --ca, curl --cacert)"
            }
            A::BadCertificate => {
                ": the client rejected this server's certificate (most often: the name it dialed \
                 is not among the certificate's SANs, or it does not trust our CA)"
            }
            A::CertificateExpired => {
                ": the client says this server's certificate has expired or is not valid yet \
                 (check its dates, and both machines' clocks)"
            }
            _ => "",
        };
        return format!("the client refused this server's certificate (alert: {name}){why}");
    }
    let no_certificate_sent = cx.asked == Some(true) && cx.sent == Some(false);
    let renew = renew_command(cx, false);
    let trust = "check that the server trusts the CA that issued ours (the CA names it asked \
                 for are the ones it accepts)";
    let (about_us, meaning) = match alert {
        A::CertificateRequired => (
            true,
            "it requires a client certificate and we sent none; pass --cert and --key (or -c a)"
                .to_string(),
        ),
        _ if no_certificate_sent
            && matches!(
                alert,
                A::HandshakeFailure | A::BadCertificate | A::CertificateUnknown
            ) =>
        {
            (
                true,
                "it asked for a client certificate and we sent none: most likely it requires one \
                 (TLS 1.2 servers such as nginx and HAProxy refuse with this alert); pass --cert \
                 and --key (or -c a)"
                    .to_string(),
            )
        }
        A::UnknownCA | A::BadCertificate | A::CertificateUnknown if cx.retired.is_some() => {
            (true, retired_meaning(cx, &renew))
        }
        A::UnknownCA => (
            true,
            format!(
                "it does not trust the CA that issued our certificate: {trust}; less often, it \
                 checks revocation and has no current list for that CA (see its log)"
            ),
        ),
        A::BadCertificate | A::CertificateUnknown => (
            true,
            format!(
                "it could not accept our certificate. Most often it does not trust the CA that \
                 issued it (Go and Java servers say {name} for that): {trust}; otherwise our \
                 certificate is not meant for client authentication (no clientAuth extended key \
                 usage), has expired, or is a CA certificate rather than a leaf; the server's log \
                 names the check"
            ),
        ),
        A::CertificateExpired => (
            true,
            expired_meaning(cx.ours.as_ref(), &renew_command(cx, true)),
        ),
        A::CertificateRevoked => (
            true,
            format!(
                "our certificate has been revoked (it is on the server's revocation list); get a \
                 new one: `{renew}` gives it a new serial"
            ),
        ),
        A::UnsupportedCertificate => (
            true,
            format!(
                "it does not accept this kind of certificate: most often ours is not meant for \
                 client authentication (its extended key usage lacks clientAuth), otherwise its \
                 key type is one the server does not take; issue it with `{}`",
                Program::Certificate.command("issue NAME --client")
            ),
        ),
        A::AccessDenied => (
            true,
            "it verified our certificate, but its policy does not admit our identity".to_string(),
        ),
        A::DecryptError => (
            true,
            "it could not verify a signature: most often our certificate and key do not belong \
             together, or the CA was minted again after our certificate was issued; use a key \
             and certificate made together, from the server's current CA"
                .to_string(),
        ),
        A::HandshakeFailure => (
            false,
            "it gave up without naming a reason. Most often it requires a client certificate \
             that it did not get or could not use (TLS 1.2 servers say handshake_failure for \
             that), or we have no TLS version, cipher suite or signature algorithm in common; \
             less often a revocation list it cannot use; see the server's log"
                .to_string(),
        ),
        A::ProtocolVersion => (
            false,
            "it does not accept our TLS version (see --tls-version)".to_string(),
        ),
        A::InsufficientSecurity => (
            false,
            "it wants stronger parameters than we offered (a cipher suite or key exchange group)"
                .to_string(),
        ),
        _ => (false, "see the server's log for details".to_string()),
    };
    if about_us {
        let when = cx.arrived.map(|a| format!(" ({a})")).unwrap_or_default();
        format!("the server refused our certificate (alert: {name}): {meaning}{when}")
    } else {
        format!("the server ended the handshake (alert: {name}): {meaning}")
    }
}

/// Why the server refused our certificate when its CA was retired: what we know (the CA
/// file no longer holds it, the folder keeps it in `retired/`) and the renewal that fixes it.
fn retired_meaning(cx: &Context, renew: &str) -> String {
    let Some(retired) = &cx.retired else {
        return String::new();
    };
    // The renewal happens in the CA's folder; a copy of our certificate kept elsewhere
    // goes by whatever name that folder gives it.
    let folder = retired.ca_file.parent().unwrap_or(Path::new(""));
    let inside = cx.ours_file.as_ref().is_some_and(|f| f.starts_with(folder));
    let (command, note) = match inside {
        true => (renew.to_string(), String::new()),
        false => {
            let shown = match folder.as_os_str().is_empty() {
                true => Path::new("."),
                false => folder,
            };
            let certs = match shown == Path::new(".") || folder == Path::new(DEFAULT_DIR) {
                true => String::new(),
                false => format!(" --certs {}", folder.display()),
            };
            (
                Program::Certificate.command(&format!("renew NAME{certs}")),
                format!(", where NAME is its name in {}", shown.display()),
            )
        }
    };
    format!(
        "its CA was retired. Our certificate chains to \"{}\", which {} no longer holds (the \
         folder keeps it in {}, where `certificate ca retire` puts a CA it takes out of \
         service), so a server that loads that CA file refuses what the old CA issued; renew \
         our certificate from the current CA: `{command}`{note}",
        escape_controls(&retired.subject),
        retired.ca_file.display(),
        retired.file.display()
    )
}

/// The command that renews our certificate, named the way the CA tool finds it: relative
/// to the folder of the CA file (`lab/client-expired` for the lab's), with `--certs` when
/// that folder is not the default. `longer`: a certificate that lived less than a day
/// (the lab's expired one lived a minute) is renewed for a day.
fn renew_command(cx: &Context, longer: bool) -> String {
    let Some(file) = cx.ours_file.as_ref() else {
        return Program::Certificate.command("renew NAME");
    };
    let stem = file.with_extension("");
    let base = cx.ca.as_ref().and_then(|ca| ca.parent());
    let (name, folder) = match base.and_then(|b| Some((stem.strip_prefix(b).ok()?, b))) {
        Some((rel, b)) => (rel.display().to_string(), b.to_path_buf()),
        None => (
            stem.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            file.parent().map(PathBuf::from).unwrap_or_default(),
        ),
    };
    let default = folder.as_os_str().is_empty() || folder.as_path() == Path::new(DEFAULT_DIR);
    let certs = match default {
        true => String::new(),
        false => format!(" --certs {}", folder.display()),
    };
    let short_lived = cx
        .ours
        .as_ref()
        .is_some_and(|c| c.not_after - c.not_before < time::Duration::days(1));
    let days = if longer && short_lived {
        " --days 1"
    } else {
        ""
    };
    Program::Certificate.command(&format!("renew {name}{certs}{days}"))
}

/// What `certificate_expired` means for us: our own dates tell an expired certificate from
/// clocks that disagree.
fn expired_meaning(ours: Option<&CertInfo>, renew: &str) -> String {
    let now = OffsetDateTime::now_utc();
    match ours {
        Some(c) if now > c.not_after => format!(
            "our certificate expired on {}; renew it: `{renew}`",
            when(c.not_after)
        ),
        Some(c) if now < c.not_before => format!(
            "our certificate is not valid until {} by our own clock; if that is right, wait, or \
             issue it with a start date in the past; if not, set this machine's clock",
            when(c.not_before)
        ),
        Some(c) => format!(
            "our certificate is valid by our clock (from {} to {}), so the server's clock \
             disagrees with ours: check the time on the server",
            when(c.not_before),
            when(c.not_after)
        ),
        None => format!(
            "our certificate has expired or is not valid yet; check its dates (and the clocks), \
             and renew it if it has expired: `{renew}`"
        ),
    }
}

fn when(t: OffsetDateTime) -> String {
    crate::format::format_time(t)
}

/// A server that finished the TLS handshake and then refused our certificate in its HTTP
/// answer, as nginx does with `ssl_verify_client`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpRefusal {
    /// Why, as the answer says it.
    pub kind: HttpRefusalKind,
    /// The status it answered with (400, 495 or 496).
    pub status: u16,
}

/// What an HTTP-level refusal of our certificate says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpRefusalKind {
    /// The certificate failed the server's checks (nginx: 495, or 400 "The SSL certificate
    /// error").
    CertificateError,
    /// The server wanted a certificate and got none (nginx: 496, or 400 "No required SSL
    /// certificate was sent").
    CertificateRequired,
}

/// A refusal of our certificate in an HTTP answer, in words: who decided, and what to check.
impl fmt::Display for HttpRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use HttpRefusalKind as K;
        let status = self.status;
        match self.kind {
            K::CertificateError => write!(
                f,
                "the server refused our certificate at the HTTP level: it finished the TLS \
                 handshake, then answered {status} (nginx answers 400 \"The SSL certificate \
                 error\", or 495, when the certificate it asked for fails its checks). Most often \
                 it does not trust the CA that issued ours (nginx: ssl_client_certificate); \
                 otherwise ours has expired, is revoked, or is not meant for client \
                 authentication; the server's error log names the check"
            ),
            K::CertificateRequired => write!(
                f,
                "the server refused us at the HTTP level: it finished the TLS handshake, then \
                 answered {status} because we sent no certificate (nginx: 496, or 400 \"No \
                 required SSL certificate was sent\"); pass --cert and --key (or -c a)"
            ),
        }
    }
}

/// A broken rule of the chain in words: what is wrong, then what to do.
impl fmt::Display for ChainRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChainRule::IssuerNotCa => {
                return write!(
                    f,
                    "a certificate that signed another one on the chain is not a CA (it lacks \
                     basicConstraints CA:TRUE), so it may not issue certificates; issue the \
                     certificate from a real CA (`{}` makes one)",
                    Program::Certificate.command("issue NAME --intermediate")
                );
            }
            ChainRule::PathLength => {
                "a CA on the chain limits how many CAs may follow below it (its \
                 pathLenConstraint), and this chain has more; issue the certificate from a CA \
                 closer to the root, or reissue the CA with a larger path length"
            }
            ChainRule::NameConstraints => {
                "a CA on the chain is name-constrained, and a name below it (a SAN, or the \
                 subject) is outside what it permits or inside what it excludes; issue the \
                 certificate with names that CA permits, or from a CA without those constraints"
            }
            ChainRule::UnsupportedCriticalExtension => {
                "a certificate on the chain has an extension marked critical that rustls does \
                 not understand, and RFC 5280 says such a certificate must be refused; reissue \
                 it without that extension, or with the extension marked non-critical"
            }
            ChainRule::UnsupportedAlgorithm => {
                return write!(
                    f,
                    "a certificate on the chain is signed with an algorithm rustls does not \
                     accept (SHA-1, say, or RSA shorter than 2048 bits); reissue it with ECDSA \
                     P-256 or RSA 2048+ and SHA-256, as `{}` does",
                    Program::Certificate.command("issue")
                );
            }
            ChainRule::InvalidValidity => {
                "a certificate on the chain starts after it ends (its notBefore is later than \
                 its notAfter), so it is never valid; reissue it"
            }
            ChainRule::EmptyEku => {
                "a certificate on the chain has an extended key usage extension that lists no \
                 purpose at all, which allows none; reissue it with serverAuth or clientAuth, or \
                 without the extension"
            }
            ChainRule::UnsupportedVersion => {
                "a certificate on the chain is not an X.509 version 3 certificate; reissue it \
                 with a current tool"
            }
            ChainRule::Distrusted => {
                "the chain passes through a CA key that webpki distrusts outright; use a \
                 certificate from another CA"
            }
            ChainRule::TooComplex => {
                "the verifier gave up looking for a path (too many candidate certificates, \
                 signatures or name comparisons: a limit against denial of service); send only \
                 the certificates of one path"
            }
        })
    }
}

/// What two peers could not agree on, in words.
impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Incompatibility::OldProtocol => f.write_str(
                "the peer offered only an old protocol (TLS 1.0 or 1.1, or SSL), which is never \
                 accepted; upgrade it to TLS 1.2 or 1.3",
            ),
            Incompatibility::Tls13Required => f.write_str(
                "the peer offered TLS 1.2 at most, and TLS 1.3 is required here (--min-tls 1.3); \
                 the TLS version one side requires is one the other does not offer",
            ),
            Incompatibility::Version => f.write_str(
                "the TLS version one side requires is one the other does not offer (see --min-tls \
                 and --tls-version)",
            ),
            Incompatibility::CipherSuites => f.write_str("no cipher suite in common"),
            Incompatibility::KeyExchange => f.write_str("no key-exchange group in common"),
            Incompatibility::SignatureSchemes => {
                f.write_str("no signature algorithm in common for the certificates' keys")
            }
            Incompatibility::Other(why) => f.write_str(why),
        }
    }
}

fn list_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return String::new();
    }
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    format!(" {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CertificateError;

    fn server_says(err: rustls::Error) -> String {
        Failure::from_rustls(&err).explain(Side::Server, &Context::default())
    }

    #[test]
    fn missing_client_certificate_is_named() {
        let f = Failure::from_rustls(&rustls::Error::NoCertificatesPresented);
        assert_eq!(f, Failure::NoCertificate);
        assert_eq!(f.code(), "no_certificate");
        assert!(
            server_says(rustls::Error::NoCertificatesPresented).contains("sent no certificate")
        );
    }

    #[test]
    fn unknown_issuer_reads_naturally_on_both_sides() {
        let err = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert!(
            server_says(err.clone()).starts_with(
                "the client's certificate was issued by a CA this server does not trust"
            ),
            "{}",
            server_says(err.clone())
        );
        let client = Failure::from_rustls(&err).explain(Side::Client, &Context::default());
        assert!(client.starts_with("the server's certificate was issued by a CA we do not trust"));
    }

    #[test]
    fn late_alert_is_reported_as_a_refusal_of_our_certificate() {
        let f = Failure::from_rustls(&rustls::Error::AlertReceived(
            AlertDescription::CertificateExpired,
        ));
        let text = f.explain(Side::Client, &Context::default());
        assert!(
            text.starts_with("the server refused our certificate (alert: certificate_expired)"),
            "{text}"
        );
    }

    #[test]
    fn every_alert_has_a_readable_name() {
        assert_eq!(alert_name(AlertDescription::UnknownCA), "unknown_ca");
        assert_eq!(
            alert_name(AlertDescription::CertificateRequired),
            "certificate_required"
        );
    }

    #[test]
    fn bad_certificate_is_explained_by_its_likely_causes_not_by_a_rare_one() {
        let text = Failure::from_rustls(&rustls::Error::AlertReceived(
            AlertDescription::BadCertificate,
        ))
        .explain(Side::Client, &Context::default());
        let trust = text
            .find("does not trust the CA")
            .expect("the likeliest cause");
        let ca_leaf = text.find("a CA certificate").expect("the rare cause");
        assert!(trust < ca_leaf, "most likely first: {text}");
        assert!(text.contains("Go and Java servers"), "{text}");
    }

    #[test]
    fn a_refusal_after_the_server_asked_and_we_sent_nothing_names_the_missing_certificate() {
        let cx = Context {
            asked: Some(true),
            sent: Some(false),
            ..Context::default()
        };
        for alert in [
            AlertDescription::HandshakeFailure,
            AlertDescription::BadCertificate,
        ] {
            let text = Failure::from_rustls(&rustls::Error::AlertReceived(alert))
                .explain(Side::Client, &cx);
            assert!(text.contains("we sent none"), "{text}");
            assert!(!text.contains("revocation"), "{text}");
        }
    }

    #[test]
    fn certificate_expired_is_told_apart_from_a_clock_that_is_off_by_our_own_dates() {
        let now = OffsetDateTime::now_utc();
        let ours = |from: OffsetDateTime, to: OffsetDateTime| {
            let mut c = crate::certinfo::tests_support::blank();
            c.not_before = from;
            c.not_after = to;
            Context {
                ours: Some(c),
                ..Context::default()
            }
        };
        let alert = Failure::from_rustls(&rustls::Error::AlertReceived(
            AlertDescription::CertificateExpired,
        ));
        let day = time::Duration::days(1);
        let expired = alert.explain(Side::Client, &ours(now - day * 2, now - day));
        assert!(expired.contains("expired on"), "{expired}");
        let early = alert.explain(Side::Client, &ours(now + day, now + day * 2));
        assert!(early.contains("clock"), "{early}");
        let fine = alert.explain(Side::Client, &ours(now - day, now + day));
        assert!(fine.contains("server's clock"), "{fine}");
    }
}
