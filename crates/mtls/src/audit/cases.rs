//! The matrix: every client the audit tries, what a correctly configured mTLS server must
//! do with it, and the rule that turns what the server did into a verdict.

use std::fmt;

use super::probe::ServerDid;
use crate::client::http_refusal_of;

/// One client the audit tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// The good client given with --cert/--key: it must get in.
    GoodClient,
    /// No certificate at all.
    NoCertificate,
    /// A certificate that signs itself.
    SelfSigned,
    /// A certificate from a CA the server has never heard of.
    ForeignCa,
    /// A certificate from a CA with the trusted CA's exact name and another key.
    ForgedCa,
    /// A ClientHello offering only TLS 1.0.
    Tls10,
    /// A ClientHello offering only TLS 1.1.
    Tls11,
    /// A TLS 1.2 ClientHello offering only suites without forward secrecy.
    NonForwardSecret,
    /// A TLS 1.2 ClientHello offering only CBC suites.
    CbcOnly,
    /// A plain-HTTP request on the TLS port.
    PlainHttp,
    /// From the trusted CA, expired.
    Expired,
    /// From the trusted CA, not valid yet.
    NotYetValid,
    /// From the trusted CA, EKU serverAuth only.
    ServerAuthOnly,
    /// From the trusted CA, CA:TRUE, presented as a client.
    CaAsClient,
    /// From the trusted CA, without clientAuth (emailProtection only).
    NoClientAuth,
    /// From the trusted CA, then revoked in the list the server reads.
    Revoked,
    /// The revoked certificate's earlier session, resumed.
    RevokedResumed,
    /// From the trusted CA, valid, with an identity nobody configured.
    UnconfiguredIdentity,
}

/// What a correctly configured server does with a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Lets it in (the good client).
    Admit,
    /// Keeps it out.
    Block,
    /// Keeps it out if the server authorizes by identity; admitting it is a finding only
    /// with --expect-authorization.
    Authorize,
}

impl Case {
    /// A stable name, for JSON and scripts.
    pub fn id(self) -> &'static str {
        match self {
            Case::GoodClient => "good-client",
            Case::NoCertificate => "no-certificate",
            Case::SelfSigned => "self-signed",
            Case::ForeignCa => "foreign-ca",
            Case::ForgedCa => "forged-ca",
            Case::Tls10 => "tls1.0-only",
            Case::Tls11 => "tls1.1-only",
            Case::NonForwardSecret => "non-forward-secret-suites",
            Case::CbcOnly => "cbc-only-suites",
            Case::PlainHttp => "plain-http",
            Case::Expired => "expired",
            Case::NotYetValid => "not-yet-valid",
            Case::ServerAuthOnly => "server-auth-only",
            Case::CaAsClient => "ca-as-client",
            Case::NoClientAuth => "no-client-auth-eku",
            Case::Revoked => "revoked",
            Case::RevokedResumed => "revoked-then-resumed",
            Case::UnconfiguredIdentity => "unconfigured-identity",
        }
    }

    /// What was sent, short enough for a table row.
    pub fn label(self) -> &'static str {
        match self {
            Case::GoodClient => "good client",
            Case::NoCertificate => "no certificate",
            Case::SelfSigned => "self-signed certificate",
            Case::ForeignCa => "certificate from a foreign CA",
            Case::ForgedCa => "certificate from a forged CA (same name)",
            Case::Tls10 => "TLS 1.0 only",
            Case::Tls11 => "TLS 1.1 only",
            Case::NonForwardSecret => "only non-forward-secret suites",
            Case::CbcOnly => "only CBC suites",
            Case::PlainHttp => "plain HTTP on the TLS port",
            Case::Expired => "expired certificate",
            Case::NotYetValid => "certificate not valid yet",
            Case::ServerAuthOnly => "serverAuth-only certificate",
            Case::CaAsClient => "CA certificate (CA:TRUE) as client",
            Case::NoClientAuth => "certificate without clientAuth",
            Case::Revoked => "revoked certificate",
            Case::RevokedResumed => "revoked, then resumed session",
            Case::UnconfiguredIdentity => "valid, identity nobody configured",
        }
    }

    /// What a correctly configured server does with it.
    pub fn expect(self) -> Expect {
        match self {
            Case::GoodClient => Expect::Admit,
            Case::UnconfiguredIdentity => Expect::Authorize,
            _ => Expect::Block,
        }
    }

    /// Probes by hand-made ClientHello: a ServerHello is the whole finding.
    pub fn is_raw(self) -> bool {
        matches!(
            self,
            Case::Tls10 | Case::Tls11 | Case::NonForwardSecret | Case::CbcOnly
        )
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The judgement of one case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Kept out, as it must be.
    Blocked,
    /// Let in although it must not be.
    WronglyAdmitted,
    /// The good client got in (or the unconfigured identity did, which is allowed unless
    /// authorization is expected).
    Admitted,
    /// The good client did not get in: nothing else means anything.
    GoodClientRefused,
    /// Neither: a timeout, an answer that is not a refusal nor a success, a setup problem.
    Inconclusive,
}

impl Verdict {
    /// The word in the table.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Blocked => "blocked",
            Verdict::WronglyAdmitted => "WRONGLY ADMITTED",
            Verdict::Admitted => "admitted",
            Verdict::GoodClientRefused => "REFUSED",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// A stable name, for JSON.
    pub fn id(self) -> &'static str {
        match self {
            Verdict::Blocked => "blocked",
            Verdict::WronglyAdmitted => "wrongly_admitted",
            Verdict::Admitted => "admitted",
            Verdict::GoodClientRefused => "good_client_refused",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// The rule, as the report prints it.
pub const RULE: &str = "\
Admission is judged by the HTTP answer, not by the handshake alone (TLS 1.3 servers refuse a \
certificate after the handshake): a 2xx or 3xx answer, or the same status the good client \
got, means the request reached the application (admitted); 401, 403, 495, 496, or a 400 that \
names a certificate problem (nginx) is a refusal at the HTTP level (blocked); an alert or a \
close, in the handshake or right after it, is blocked; any other answer, and a timeout, is \
inconclusive. For the hand-made ClientHellos a ServerHello means the server agreed to talk \
that way (admitted) and an alert or a close means it refused (blocked); for plain HTTP, a 2xx \
or 3xx answer is admitted and anything else blocked.";

/// How the server treated a request, judged by its answer (see [`RULE`]): it let the
/// request through, refused it, or neither can be told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Treated {
    Admitted,
    Refused,
    Unclear,
}

pub(crate) fn treated(did: &ServerDid, good_status: Option<u16>) -> Treated {
    match did {
        ServerDid::RefusedInHandshake { .. } | ServerDid::RefusedAfterHandshake { .. } => {
            Treated::Refused
        }
        ServerDid::Incompatible { .. } | ServerDid::Closed => Treated::Refused,
        ServerDid::Answered { status, body } => {
            if (200..400).contains(status) || good_status == Some(*status) {
                Treated::Admitted
            } else if matches!(status, 401 | 403) || http_refusal_of(*status, body).is_some() {
                Treated::Refused
            } else {
                Treated::Unclear
            }
        }
        ServerDid::AnsweredPlain { status } => match (200..400).contains(status) {
            true => Treated::Admitted,
            false => Treated::Refused,
        },
        ServerDid::Hello { .. } => Treated::Admitted,
        ServerDid::Garbled { .. }
        | ServerDid::TimedOut { .. }
        | ServerDid::Unreachable { .. }
        | ServerDid::WeRefusedServer { .. }
        | ServerDid::Broke { .. } => Treated::Unclear,
    }
}

/// The verdict for `case` given what the server did; `good_status` is what the good
/// client's request got, when there is one.
pub fn judge(
    case: Case,
    did: &ServerDid,
    good_status: Option<u16>,
    expect_authorization: bool,
) -> Verdict {
    let how = treated(did, good_status);
    match (case.expect(), how) {
        (Expect::Admit, Treated::Admitted) => Verdict::Admitted,
        // Any answer that is not a refusal: the good client got through TLS and whatever
        // checks the certificate, and its status becomes the measure of "admitted".
        (Expect::Admit, Treated::Unclear) if matches!(did, ServerDid::Answered { .. }) => {
            Verdict::Admitted
        }
        (Expect::Admit, _) => Verdict::GoodClientRefused,
        (_, Treated::Refused) => Verdict::Blocked,
        (_, Treated::Unclear) => Verdict::Inconclusive,
        (Expect::Authorize, Treated::Admitted) if !expect_authorization => Verdict::Admitted,
        (_, Treated::Admitted) => Verdict::WronglyAdmitted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16, body: &str) -> ServerDid {
        ServerDid::Answered {
            status,
            body: body.into(),
        }
    }

    #[test]
    fn admission_is_judged_by_the_http_answer() {
        let j = |did: &ServerDid, good| judge(Case::SelfSigned, did, good, false);
        assert_eq!(j(&answered(200, "hi"), None), Verdict::WronglyAdmitted);
        assert_eq!(j(&answered(302, ""), None), Verdict::WronglyAdmitted);
        assert_eq!(j(&answered(404, ""), Some(404)), Verdict::WronglyAdmitted);
        assert_eq!(j(&answered(404, ""), None), Verdict::Inconclusive);
        assert_eq!(j(&answered(403, ""), Some(200)), Verdict::Blocked);
        assert_eq!(j(&answered(496, ""), Some(200)), Verdict::Blocked);
        assert_eq!(
            j(&answered(400, "400 The SSL certificate error"), Some(200)),
            Verdict::Blocked
        );
        assert_eq!(
            j(&answered(400, "bad request"), Some(200)),
            Verdict::Inconclusive
        );
        let late = ServerDid::RefusedAfterHandshake {
            alert: Some("unknown_ca".into()),
        };
        assert_eq!(j(&late, None), Verdict::Blocked);
        let slow = ServerDid::TimedOut {
            phase: "the request",
            after: std::time::Duration::from_secs(5),
        };
        assert_eq!(j(&slow, None), Verdict::Inconclusive);
    }

    #[test]
    fn an_unconfigured_identity_let_in_is_a_finding_only_when_authorization_is_expected() {
        let ok = answered(200, "hello");
        assert_eq!(
            judge(Case::UnconfiguredIdentity, &ok, Some(200), false),
            Verdict::Admitted
        );
        assert_eq!(
            judge(Case::UnconfiguredIdentity, &ok, Some(200), true),
            Verdict::WronglyAdmitted
        );
        assert_eq!(
            judge(
                Case::UnconfiguredIdentity,
                &answered(403, ""),
                Some(200),
                true
            ),
            Verdict::Blocked
        );
    }

    #[test]
    fn the_good_client_must_get_in() {
        assert_eq!(
            judge(Case::GoodClient, &answered(404, ""), None, false),
            Verdict::Admitted
        );
        assert_eq!(
            judge(Case::GoodClient, &answered(403, ""), None, false),
            Verdict::GoodClientRefused
        );
        let hello = ServerDid::Hello {
            version: "TLSv1.0".into(),
            suite: "x".into(),
        };
        assert_eq!(
            judge(Case::Tls10, &hello, None, false),
            Verdict::WronglyAdmitted
        );
    }
}
