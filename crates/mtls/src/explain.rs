//! TLS failures in plain words, from the side that saw them, with what to do next.
//!
//! rustls reports *what* failed (`CertificateError::UnknownIssuer`, an alert from the peer);
//! a learner needs *who* checked *what*, *why* it failed and *which command* fixes it.
//! [`Failure`] is the typed classification (tests and metrics match on it, never on
//! strings); [`Failure::explain`] turns it into the sentence the binaries print.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use rustls::AlertDescription;
use rustls::pki_types::UnixTime;
use time::OffsetDateTime;

use crate::certinfo::CertInfo;

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
    /// No TLS version, cipher suite or group in common.
    Incompatible(String),
    /// The handshake did not finish in time.
    Timeout {
        /// The limit that passed.
        after: Duration,
    },
    /// Anything else rustls reported, in its own words.
    Other(String),
}

/// What the explaining side knows about its own setup, to make advice concrete.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The CA file this side trusts.
    pub ca: Option<PathBuf>,
    /// The CRL files this side loaded.
    pub crls: Vec<PathBuf>,
}

impl Failure {
    /// Classifies a rustls error.
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
                C::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
                    Some(webpki::Error::CaUsedAsEndEntity) => Failure::CaAsLeaf,
                    _ => Failure::Other(format!("certificate rejected: {other}")),
                },
                other => Failure::Other(format!("certificate rejected: {other}")),
            },
            E::InvalidCertRevocationList(crl) => Failure::BadCrl(format!("{crl:?}")),
            E::PeerIncompatible(why) => Failure::Incompatible(incompatible(why)),
            E::InvalidMessage(_) | E::InappropriateMessage { .. } => Failure::NotTls,
            other => Failure::Other(other.to_string()),
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
            Failure::NameMismatch { .. } => "name_mismatch",
            Failure::BadSignature => "bad_signature",
            Failure::PeerRefused { .. } => "peer_refused",
            Failure::ClosedAfterHandshake => "closed_after_handshake",
            Failure::Timeout { .. } => "timeout",
            Failure::NotTls | Failure::Incompatible(_) | Failure::Other(_) => "protocol",
        }
    }

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
                 `cargo run -p client -- -c a`, or curl --cert client-a.crt --key client-a.key"
            ),
            Failure::UnknownIssuer { issuer } => {
                let by = issuer
                    .as_ref()
                    .map(|i| format!(" (it was issued by \"{i}\")"))
                    .unwrap_or_default();
                let fix = match side {
                    Side::Client => {
                        "pass the CA that issued the server's certificate with --ca, or reissue the \
                         server certificate from our CA with `cargo run -p certificate`"
                    }
                    Side::Server => {
                        "issue the client's certificate from this server's CA, or start the server \
                         with --ca pointing at the CA that issued it"
                    }
                };
                let (distrust, trusts) = match side {
                    Side::Client => ("we do not trust", "we trust"),
                    Side::Server => ("this server does not trust", "it trusts"),
                };
                format!(
                    "{peer}'s certificate was issued by a CA {distrust}{by}; {trusts} only the \
                     CA{ca}; {fix}"
                )
            }
            Failure::Expired { not_after } => format!(
                "{peer}'s certificate has expired{when}; renew it (same names, new dates): \
                 `cargo run -p certificate -- renew NAME`, where NAME.crt is the certificate",
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
                 re-sign it with `cargo run -p certificate -- crl`",
                crl = list_paths(&cx.crls)
            ),
            Failure::BadCrl(why) => format!(
                "the certificate revocation list{crl} cannot be used: {why}; re-sign it with \
                 `cargo run -p certificate -- crl`",
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
                     does not include it{has}; issue it with `certificate issue NAME {flag}`"
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
                     put one of those names in --url, or add the name to the server certificate: \
                     `cargo run -p certificate -- renew server --san {expected}`"
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
            Failure::PeerRefused { alert } => refused(side, *alert),
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

/// The sentence for an alert the peer sent.
fn refused(side: Side, alert: AlertDescription) -> String {
    use AlertDescription as A;
    let name = alert_name(alert);
    if side == Side::Server {
        let why = match alert {
            A::UnknownCA => {
                ": the client does not trust the CA that issued this server's certificate; give \
                 the client this CA (client --ca, curl --cacert)"
            }
            A::BadCertificate => {
                ": the client rejected this server's certificate (often: the name it dialed is \
                 not among the certificate's SANs)"
            }
            A::CertificateExpired => ": the client says this server's certificate has expired",
            _ => "",
        };
        return format!("the client refused this server's certificate (alert: {name}){why}");
    }
    let (about_us, meaning) = match alert {
        A::CertificateRequired => (
            true,
            "it requires a client certificate and we sent none; pass --cert and --key (or -c a)",
        ),
        A::UnknownCA => (
            true,
            "it does not trust the CA that issued our certificate (or, if it checks revocation, \
             it has no current revocation list for that CA); use a certificate issued by the \
             server's CA, and see the server's log",
        ),
        A::CertificateExpired => (
            true,
            "our certificate has expired or is not valid yet; renew it: `cargo run -p certificate \
             -- renew NAME`, where NAME.crt is our certificate",
        ),
        A::CertificateRevoked => (
            true,
            "our certificate has been revoked (it is on the server's CRL); get a new one: \
             `cargo run -p certificate -- renew NAME` gives it a new serial",
        ),
        A::UnsupportedCertificate => (
            true,
            "our certificate is not meant for client authentication (its extended key usage \
             lacks clientAuth); issue it with `certificate issue NAME --client`",
        ),
        A::BadCertificate | A::CertificateUnknown => (
            true,
            "it could not accept our certificate (a CA certificate used as a client certificate \
             does this); use a client certificate the CA issued",
        ),
        A::AccessDenied => (
            true,
            "it verified our certificate, but its policy does not admit our identity",
        ),
        A::DecryptError => (
            true,
            "it could not verify the signature on our certificate: usually the CA was minted \
             again after our certificate was issued; use a certificate from the server's current CA",
        ),
        A::HandshakeFailure => (
            false,
            "it gave up without naming a reason (a revocation list it cannot use, or no \
             parameters in common, does this); see the server's log",
        ),
        A::ProtocolVersion => (false, "it does not accept our TLS version"),
        _ => (false, "see the server's log for details"),
    };
    if about_us {
        format!("the server refused our certificate (alert: {name}): {meaning}")
    } else {
        format!("the server ended the handshake (alert: {name}): {meaning}")
    }
}

/// What a `PeerIncompatible` means, in words.
fn incompatible(why: &rustls::PeerIncompatible) -> String {
    use rustls::PeerIncompatible as P;
    match why {
        P::SignatureAlgorithmsExtensionRequired | P::NullCompressionRequired => {
            "the peer offered only an old protocol (TLS 1.0 or 1.1, or SSL), which is never \
             accepted; upgrade it to TLS 1.2 or 1.3"
                .into()
        }
        P::SupportedVersionsExtensionRequired => {
            "the peer offered TLS 1.2 at most, and TLS 1.3 is required here (--min-tls 1.3); \
             the TLS version one side requires is one the other does not offer"
                .into()
        }
        P::Tls12NotOffered
        | P::Tls12NotOfferedOrEnabled
        | P::ServerTlsVersionIsDisabledByOurConfig
        | P::ServerDoesNotSupportTls12Or13 => {
            "the TLS version one side requires is one the other does not offer (see --min-tls \
             and --tls-version)"
                .into()
        }
        P::NoCipherSuitesInCommon => "no cipher suite in common".into(),
        P::NoKxGroupsInCommon => "no key-exchange group in common".into(),
        P::NoSignatureSchemesInCommon | P::NoCertificateRequestSignatureSchemesInCommon => {
            "no signature algorithm in common for the certificates' keys".into()
        }
        other => format!("{other:?}"),
    }
}

/// The alert's name as the TLS RFCs spell it (`certificate_expired`).
pub fn alert_name(alert: AlertDescription) -> String {
    use AlertDescription as A;
    let known = match alert {
        A::CloseNotify => "close_notify",
        A::UnexpectedMessage => "unexpected_message",
        A::BadRecordMac => "bad_record_mac",
        A::RecordOverflow => "record_overflow",
        A::HandshakeFailure => "handshake_failure",
        A::BadCertificate => "bad_certificate",
        A::UnsupportedCertificate => "unsupported_certificate",
        A::CertificateRevoked => "certificate_revoked",
        A::CertificateExpired => "certificate_expired",
        A::CertificateUnknown => "certificate_unknown",
        A::IllegalParameter => "illegal_parameter",
        A::UnknownCA => "unknown_ca",
        A::AccessDenied => "access_denied",
        A::DecodeError => "decode_error",
        A::DecryptError => "decrypt_error",
        A::ProtocolVersion => "protocol_version",
        A::InsufficientSecurity => "insufficient_security",
        A::InternalError => "internal_error",
        A::InappropriateFallback => "inappropriate_fallback",
        A::UserCanceled => "user_canceled",
        A::MissingExtension => "missing_extension",
        A::UnsupportedExtension => "unsupported_extension",
        A::UnrecognisedName => "unrecognized_name",
        A::BadCertificateStatusResponse => "bad_certificate_status_response",
        A::UnknownPSKIdentity => "unknown_psk_identity",
        A::CertificateRequired => "certificate_required",
        A::NoApplicationProtocol => "no_application_protocol",
        other => return format!("{other:?}"),
    };
    known.to_string()
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

fn to_datetime(t: UnixTime) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(i64::try_from(t.as_secs()).ok()?).ok()
}

fn when(t: OffsetDateTime) -> String {
    crate::certinfo::format_time(t)
}

fn list_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return String::new();
    }
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    format!(" {}", names.join(", "))
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
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
    fn webpki_names_become_openssl_style() {
        assert_eq!(webpki_name("DnsName(\"localhost\")"), "DNS:localhost");
        assert_eq!(webpki_name("IpAddress(127.0.0.1)"), "IP:127.0.0.1");
    }

    #[test]
    fn every_alert_has_a_readable_name() {
        assert_eq!(alert_name(AlertDescription::UnknownCA), "unknown_ca");
        assert_eq!(
            alert_name(AlertDescription::CertificateRequired),
            "certificate_required"
        );
    }
}
