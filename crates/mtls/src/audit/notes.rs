//! What a verdict means for one case, in words: the note under its row when the table's
//! words are not enough, and the check a server that let it in does not make.

use super::cases::{Case, Verdict};
use super::probe::ServerDid;

/// What a verdict means for this case, when the table's words are not enough.
pub(super) fn note(
    case: Case,
    did: &ServerDid,
    verdict: Verdict,
    why: Option<&str>,
    server_key: Option<&str>,
) -> Option<String> {
    let at_http = matches!(did, ServerDid::Answered { .. });
    match (case, verdict) {
        (Case::GoodClient, Verdict::GoodClientRefused) => why.map(str::to_string),
        (Case::UnconfiguredIdentity, Verdict::Admitted) => Some(
            "authenticates but does not authorize: fine if every certificate from this CA \
             may call it (--expect-authorization makes this a failure)"
                .into(),
        ),
        (Case::UnconfiguredIdentity, Verdict::WronglyAdmitted) => Some(
            "authenticates but does not authorize: any certificate from this CA gets in".into(),
        ),
        (Case::UnconfiguredIdentity, Verdict::Blocked) if at_http => Some(
            "authorizes: it refused a valid certificate whose identity it was not told about"
                .into(),
        ),
        (Case::UnconfiguredIdentity, Verdict::Blocked) => Some(
            "refused in TLS: it authorizes in its verifier, or does not trust the \
             --issuer-cert CA (then the other cases from that CA prove nothing)"
                .into(),
        ),
        (_, Verdict::Blocked) if at_http => {
            Some("refused at the HTTP level, after a completed handshake".into())
        }
        (Case::NonForwardSecret, Verdict::Blocked) => server_key
            .filter(|k| !k.starts_with("RSA"))
            .map(|k| format!("its certificate's key ({k}) cannot do RSA key exchange anyway")),
        (Case::NoCertificate, Verdict::WronglyAdmitted) => {
            Some("the server does not require a client certificate".into())
        }
        (_, Verdict::WronglyAdmitted) => Some(missing_check(case).into()),
        (_, Verdict::Inconclusive) => match did {
            ServerDid::Answered { status, .. } => Some(format!(
                "{status} is neither a success nor a refusal of the certificate; audit a \
                 path the application serves"
            )),
            _ => why.map(str::to_string),
        },
        _ => None,
    }
}

/// The check a server that admits `case` does not make.
fn missing_check(case: Case) -> &'static str {
    match case {
        Case::NoCertificate => "the server does not require a client certificate",
        Case::SelfSigned | Case::ForeignCa => {
            "it accepts a certificate no CA it trusts has signed: it does not verify the chain, \
             or ignores a failed verification"
        }
        Case::ForgedCa => {
            "it accepts a certificate whose issuer merely has the trusted CA's name (another key \
             signed it)"
        }
        Case::Expired | Case::NotYetValid => "it does not check the certificate's dates",
        Case::ServerAuthOnly | Case::NoClientAuth => {
            "it does not check that the certificate is meant for client authentication (EKU \
             clientAuth)"
        }
        Case::CaAsClient => {
            "it accepts a CA certificate as a client's own (OpenSSL does not refuse CA:TRUE \
             leaves; webpki does)"
        }
        Case::Revoked => "it does not check the revocation list",
        Case::RevokedResumed => "it resumed the revoked certificate's session",
        Case::UnconfiguredIdentity => "any certificate from this CA gets in",
        Case::Tls10 | Case::Tls11 => {
            "it still speaks a TLS version that has been deprecated since 2021 (RFC 8996)"
        }
        Case::NonForwardSecret => {
            "it agrees to a key exchange without forward secrecy: its key, once stolen, decrypts \
             recorded sessions"
        }
        Case::CbcOnly => {
            "it agrees to CBC suites (MAC-then-encrypt, the root of Lucky13 and padding oracles); \
             it may still ask for a certificate later, but the channel is weaker than it need be"
        }
        Case::PlainHttp => "it serves plain HTTP on its TLS port",
        Case::GoodClient => "",
    }
}
