//! One run's state, carried from case to case: the trust, the good client, the issuer, the
//! names every minted certificate copies, the good client's status (the measure of
//! "admitted"), and what the handshakes showed. Each case is minted, tried and judged here.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;

use super::cases::judge;
use super::mint::{self, Flaw, Minted, Names};
use super::raw::{self, Offer};
use super::{
    AuditSettings, Case, CaseResult, Facts, ServerDid, Verdict, add, not_tried, notes, probe,
};
use crate::certinfo::CertInfo;
use crate::error::{Error, Result};
use crate::pki::CertAuthority;
use crate::tls::{self, ClientPolicy, Identity, SeenChain, Trust};

/// The state one run carries from case to case.
pub(super) struct Runner<'a> {
    pub(super) settings: &'a AuditSettings,
    pub(super) trust: Trust,
    pub(super) good: Option<Identity>,
    pub(super) issuer: Option<CertAuthority>,
    pub(super) trusted_name: rcgen::DistinguishedName,
    pub(super) names: Names,
    /// The status the good client's request got: the measure of "admitted".
    pub(super) good_status: Option<u16>,
    pub(super) facts: Facts,
    /// The first config whose certificate got in, to see whether the server resumes.
    pub(super) admitted: Option<(Arc<ClientConfig>, Case)>,
}

impl<'a> Runner<'a> {
    /// A run of `settings` with what was loaded for it.
    pub(super) fn new(
        settings: &'a AuditSettings,
        trust: Trust,
        good: Option<Identity>,
        issuer: Option<CertAuthority>,
        trusted_name: rcgen::DistinguishedName,
        names: Names,
    ) -> Self {
        Self {
            settings,
            trust,
            good,
            issuer,
            trusted_name,
            names,
            good_status: None,
            facts: Facts::default(),
            admitted: None,
        }
    }

    pub(super) fn limit(&self) -> Duration {
        self.settings.timeout
    }

    pub(super) async fn case(&mut self, case: Case) -> CaseResult {
        match case {
            Case::GoodClient => {
                let sent = self
                    .good
                    .as_ref()
                    .and_then(|id| CertInfo::parse(&id.chain[0]).ok())
                    .map(|leaf| format!("the given certificate, {}", mint::describe(&leaf)))
                    .unwrap_or_default();
                let good = self.good.clone();
                self.present(case, good, sent).await
            }
            Case::NoCertificate => {
                let sent = "no certificate (an empty Certificate message when asked)".to_string();
                self.present(case, None, sent).await
            }
            Case::SelfSigned => {
                let minted = mint::self_signed(&self.names);
                self.present_minted(case, minted, "").await
            }
            Case::ForeignCa => {
                let minted = mint::from_new_ca(mint::foreign_ca_name(), &self.names);
                self.present_minted(case, minted, "").await
            }
            Case::ForgedCa => {
                let minted = mint::from_new_ca(self.trusted_name.clone(), &self.names);
                self.present_minted(
                    case,
                    minted,
                    "; that CA has the trusted CA's name, not its key",
                )
                .await
            }
            Case::Expired
            | Case::NotYetValid
            | Case::ServerAuthOnly
            | Case::CaAsClient
            | Case::NoClientAuth
            | Case::UnconfiguredIdentity => {
                let (flaw, tail) = match case {
                    Case::Expired => (Flaw::Expired, "; it expired a minute ago"),
                    Case::NotYetValid => (Flaw::NotYetValid, "; it is valid from tomorrow"),
                    Case::ServerAuthOnly => (Flaw::ServerAuthOnly, "; EKU serverAuth only"),
                    Case::CaAsClient => (Flaw::CaTrue, "; CA:TRUE, keyCertSign, EKU clientAuth"),
                    Case::NoClientAuth => (
                        Flaw::NoClientAuth,
                        "; EKU emailProtection only (an S/MIME certificate)",
                    ),
                    _ => (
                        Flaw::None,
                        "; valid, with a fresh name and URI nobody configured",
                    ),
                };
                let names = match case {
                    Case::UnconfiguredIdentity => Names::fresh("unconfigured"),
                    _ => Ok(self.names.clone()),
                };
                let minted = match (&self.issuer, names) {
                    (Some(issuer), Ok(names)) => mint::from_issuer(issuer, &names, flaw),
                    (None, _) => Err(Error::Usage("--issuer-cert and --issuer-key".into())),
                    (_, Err(e)) => Err(e),
                };
                self.present_minted(case, minted, tail).await
            }
            Case::Tls10 | Case::Tls11 | Case::NonForwardSecret | Case::CbcOnly => {
                let offer = match case {
                    Case::Tls10 => Offer::Tls10,
                    Case::Tls11 => Offer::Tls11,
                    Case::NonForwardSecret => Offer::NonForwardSecret,
                    _ => Offer::CbcOnly,
                };
                let did = raw::hello(&self.settings.url, offer, self.limit()).await;
                let mut result = self.raw_result(case, offer.describe(), did);
                result.offered = offer.suite_names();
                result
            }
            Case::PlainHttp => {
                let did = raw::plain_http(&self.settings.url, self.limit()).await;
                let sent = "GET over plain HTTP/1.1 to the TLS port".to_string();
                self.raw_result(case, sent, did)
            }
            // They need state of their own: `run` calls `revoked` and `revoked_resumed`.
            Case::Revoked | Case::RevokedResumed => not_tried(case, "run on their own".into()),
        }
    }

    pub(super) fn raw_result(&mut self, case: Case, sent: String, did: ServerDid) -> CaseResult {
        let label = match case {
            Case::Tls10 => "TLSv1.0",
            Case::Tls11 => "TLSv1.1",
            Case::NonForwardSecret => "TLSv1.2 without forward secrecy",
            Case::CbcOnly => "TLSv1.2 with CBC suites",
            _ => "plain HTTP",
        };
        let negotiated = match &did {
            ServerDid::Hello { version, suite } => {
                let text = format!("{version} {suite}");
                add(&mut self.facts.accepted, text.clone());
                Some(text)
            }
            ServerDid::RefusedInHandshake { .. } => {
                if case.is_raw() {
                    add(&mut self.facts.refused, label.to_string());
                }
                None
            }
            _ => None,
        };
        let verdict = judge(case, &did, self.good_status, false);
        let note = notes::note(case, &did, verdict, None, self.facts.server_key.as_deref());
        CaseResult {
            case,
            sent,
            offered: Vec::new(),
            did,
            verdict,
            note,
            negotiated,
        }
    }

    pub(super) async fn present_minted(
        &mut self,
        case: Case,
        minted: Result<Minted>,
        tail: &str,
    ) -> CaseResult {
        match minted {
            Ok(m) => {
                let sent = format!("{}{tail}", m.describe());
                self.present(case, Some(m.identity), sent).await
            }
            Err(e) => not_tried(case, format!("cannot mint the certificate: {e}")),
        }
    }

    /// One rustls attempt presenting `identity` (none: no certificate), judged.
    pub(super) async fn present(
        &mut self,
        case: Case,
        identity: Option<Identity>,
        sent: String,
    ) -> CaseResult {
        let (result, _) = self.present_keeping(case, identity.as_ref(), sent).await;
        result
    }

    /// As [`Runner::present`], also returning the config (its session cache holds the
    /// session, for a resumption).
    pub(super) async fn present_keeping(
        &mut self,
        case: Case,
        identity: Option<&Identity>,
        sent: String,
    ) -> (CaseResult, Option<Arc<ClientConfig>>) {
        let seen = SeenChain::default();
        let config = match self.config(identity, &seen) {
            Ok(c) => c,
            Err(e) => return (not_tried(case, e.to_string()), None),
        };
        let a = probe::attempt(&self.settings.url, config.clone(), &seen, self.limit()).await;
        (self.judged(case, sent, &a, &seen, &config), Some(config))
    }

    pub(super) fn config(
        &self,
        identity: Option<&Identity>,
        seen: &SeenChain,
    ) -> Result<Arc<ClientConfig>> {
        let policy = ClientPolicy {
            only_version: None,
            http1_only: true,
        };
        tls::client_config(identity, &self.trust, seen.clone(), policy, None)
    }

    pub(super) fn judged(
        &mut self,
        case: Case,
        sent: String,
        a: &probe::Attempt,
        seen: &SeenChain,
        config: &Arc<ClientConfig>,
    ) -> CaseResult {
        self.facts.learn(a, seen);
        let verdict = judge(
            case,
            &a.did,
            self.good_status,
            self.settings.expect_authorization,
        );
        if case == Case::GoodClient
            && let ServerDid::Answered { status, .. } = a.did
        {
            self.good_status = Some(status);
        }
        let got_in = matches!(verdict, Verdict::Admitted | Verdict::WronglyAdmitted);
        if got_in && self.admitted.is_none() && case != Case::NoCertificate {
            self.admitted = Some((config.clone(), case));
        }
        let mut note = notes::note(
            case,
            &a.did,
            verdict,
            a.why.as_deref(),
            self.facts.server_key.as_deref(),
        );
        if !a.asked && a.tls.as_ref().is_some_and(|t| !t.resumed) && case != Case::NoCertificate {
            // Nothing about the certificate was tested: it never left this machine.
            note = Some(
                "the server never asked for a certificate (ordinary TLS, not mutual TLS), so \
                 this one was not even sent"
                    .into(),
            );
        }
        CaseResult {
            case,
            sent,
            offered: Vec::new(),
            did: a.did.clone(),
            verdict,
            note,
            negotiated: a
                .tls
                .as_ref()
                .map(|t| format!("{} {}", t.version, t.cipher_suite)),
        }
    }

    /// Evidence: a second connection with the first admitted client's config (its session
    /// cache holds the session): does the server resume it?
    pub(super) async fn resumption(&mut self) {
        let Some((config, case)) = self.admitted.clone() else {
            self.facts.resumption = Some("not tried: no client with a certificate got in".into());
            return;
        };
        let seen = SeenChain::default();
        let a = probe::attempt(&self.settings.url, config, &seen, self.limit()).await;
        let who = match case {
            Case::GoodClient => "the good client's".to_string(),
            other => format!("the {}'s", other.label()),
        };
        self.facts.resumption = Some(match &a.tls {
            Some(t) if t.resumed => format!(
                "resumed {who} session ({}): a resumed handshake carries no certificate, so the \
                 server must check the client again itself (evidence only)",
                t.version
            ),
            Some(t) => format!(
                "did not resume {who} session ({}): every connection is a full handshake",
                t.version
            ),
            None => format!("second connection failed: {}", a.did),
        });
    }

    /// Evidence: which TLS 1.2 suite the server picks from modern AEAD ones.
    pub(super) async fn modern_tls12(&mut self) {
        match raw::hello(&self.settings.url, Offer::Modern12, self.limit()).await {
            ServerDid::Hello { version, suite } => {
                add(&mut self.facts.accepted, format!("{version} {suite}"));
            }
            ServerDid::RefusedInHandshake { .. } => {
                add(&mut self.facts.refused, "TLSv1.2 with AEAD suites".into());
            }
            _ => {}
        }
    }
}
