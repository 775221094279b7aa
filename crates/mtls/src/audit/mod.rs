//! `client audit`: does an mTLS server really keep out the clients it must?
//!
//! It first shows that a good client gets in (when given one), then tries, each on its own
//! connection, the clients a correctly configured server refuses ([`cases`]): no
//! certificate, a self-signed one, one from a foreign CA, one from a forged CA with the
//! trusted CA's name; TLS 1.0/1.1, non-forward-secret and CBC-only suites (hand-made
//! ClientHellos, [`raw`]); plain HTTP on the TLS port. With the trusted CA's key it mints
//! certificates from that CA that are wrong in one way ([`mint`]), and one valid
//! certificate with an identity nobody configured, to see whether the server authorizes as
//! well as authenticates; with `--crl-hint` it revokes one in the list the server reads.
//!
//! Each attempt ([`probe`]) is judged by what the server did ([`cases::RULE`]): admission by
//! the HTTP answer, since a TLS 1.3 server refuses a certificate after the handshake. Every
//! run is bounded: a fixed list of cases, each with a time limit, loopback only unless
//! told otherwise. The report is a table ([`table`]) or JSON ([`json`]).

pub mod cases;
mod json;
mod mint;
pub mod probe;
mod progress;
mod raw;
mod revoke;
mod table;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use crate::certinfo::CertInfo;
use crate::client::Url;
use crate::error::{Error, Result};
use crate::pem;
use crate::pki::{self, CertAuthority};
use crate::tls::{self, ClientPolicy, Identity, SeenChain, Trust};

pub use cases::{Case, Expect, Verdict};
pub use probe::ServerDid;
pub use progress::ProgressLine;
pub use table::Table;

use cases::judge;
use mint::{Flaw, Minted, Names};
use raw::Offer;

/// The longest a single probe may take (`--timeout` is capped here).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the revoked case waits for the server to read its changed list.
pub const CRL_WAIT: Duration = Duration::from_secs(10);

/// What to audit, and with what.
#[derive(Clone, Debug)]
pub struct AuditSettings {
    /// The server: `https://HOST:PORT/PATH`.
    pub url: Url,
    /// The CA the server's certificate chains to (and, without --issuer-cert, whose name
    /// the forged CA copies).
    pub ca: PathBuf,
    /// A client the server must admit: certificate and key.
    pub good: Option<(PathBuf, PathBuf)>,
    /// The CA that issues the server's clients: certificate and key.
    pub issuer: Option<(PathBuf, PathBuf)>,
    /// The CRL file the server reads (and reloads when it changes).
    pub crl_hint: Option<PathBuf>,
    /// An admitted identity nobody configured is a failure, not a note.
    pub expect_authorization: bool,
    /// Allow a server that is not on this machine.
    pub allow_remote: bool,
    /// The limit for each phase of each probe.
    pub timeout: Duration,
}

impl AuditSettings {
    /// Loopback, 5 s per probe, nothing optional.
    pub fn new(url: Url, ca: PathBuf) -> Self {
        Self {
            url,
            ca,
            good: None,
            issuer: None,
            crl_hint: None,
            expect_authorization: false,
            allow_remote: false,
            timeout: Duration::from_secs(5),
        }
    }

    /// The cases these settings run, in order: a fixed list.
    pub fn plan(&self) -> Vec<Case> {
        let mut plan = Vec::new();
        if self.good.is_some() {
            plan.push(Case::GoodClient);
        }
        plan.extend([
            Case::NoCertificate,
            Case::SelfSigned,
            Case::ForeignCa,
            Case::ForgedCa,
        ]);
        if self.issuer.is_some() {
            plan.extend([
                Case::Expired,
                Case::NotYetValid,
                Case::ServerAuthOnly,
                Case::CaAsClient,
                Case::NoClientAuth,
            ]);
            plan.push(Case::UnconfiguredIdentity);
            if self.crl_hint.is_some() {
                plan.extend([Case::Revoked, Case::RevokedResumed]);
            }
        }
        plan.extend([
            Case::Tls10,
            Case::Tls11,
            Case::NonForwardSecret,
            Case::CbcOnly,
            Case::PlainHttp,
        ]);
        plan
    }
}

/// One case, tried.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// Which.
    pub case: Case,
    /// What was sent, in detail.
    pub sent: String,
    /// The cipher suites a hand-made ClientHello offered (empty for the others).
    pub offered: Vec<String>,
    /// What the server did.
    pub did: ServerDid,
    /// The judgement.
    pub verdict: Verdict,
    /// What the verdict means here, when it needs saying.
    pub note: Option<String>,
    /// The TLS version and suite, when a handshake finished.
    pub negotiated: Option<String>,
}

/// What the handshakes showed, beside the verdicts (evidence only).
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// The server sent a CertificateRequest (`None`: no handshake got that far).
    pub asked: Option<bool>,
    /// The CA names in it.
    pub ca_names: Vec<String>,
    /// What it agreed to: `TLSv1.3 TLS13_AES_256_GCM_SHA384`, ...
    pub accepted: Vec<String>,
    /// What it refused: `TLSv1.0`, ...
    pub refused: Vec<String>,
    /// Whether it resumed a session, in words.
    pub resumption: Option<String>,
    /// The server certificate's key ("ECDSA P-256"), which limits the suites it can use.
    pub server_key: Option<String>,
}

impl Facts {
    fn learn(&mut self, a: &probe::Attempt, seen: &SeenChain) {
        if a.asked || a.tls.is_some() {
            self.asked = Some(self.asked.unwrap_or(false) || a.asked);
        }
        if self.ca_names.is_empty() {
            self.ca_names = a.ca_names.clone();
        }
        if let Some(tls) = &a.tls {
            add(
                &mut self.accepted,
                format!("{} {}", tls.version, tls.cipher_suite),
            );
        }
        if self.server_key.is_none()
            && let Some(leaf) = seen.get().first()
        {
            self.server_key = CertInfo::parse(leaf).ok().map(|c| c.key);
        }
    }
}

fn add(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// A finished (or stopped) audit.
#[derive(Clone, Debug)]
pub struct Audit {
    /// The URL audited.
    pub url: String,
    /// Each case, in the order tried.
    pub results: Vec<CaseResult>,
    /// What the handshakes showed.
    pub facts: Facts,
    /// How long it took.
    pub elapsed: Duration,
    /// The limit of each probe.
    pub timeout: Duration,
    /// Why it stopped early: the good client could not get in, or our side refused the
    /// server, so nothing else would mean anything.
    pub stopped: Option<String>,
}

impl Audit {
    /// 0: everything that must be blocked was; 1: something got through, or could not be
    /// judged; 2: the audit could not run (the good client was refused).
    pub fn exit_code(&self) -> u8 {
        if self.stopped.is_some() {
            return crate::cli::USAGE;
        }
        let failed = self
            .results
            .iter()
            .any(|r| matches!(r.verdict, Verdict::WronglyAdmitted | Verdict::Inconclusive));
        u8::from(failed)
    }

    /// How many cases got each verdict.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.results.iter().filter(|r| r.verdict == verdict).count()
    }

    /// The result of `case`, if it ran.
    pub fn result(&self, case: Case) -> Option<&CaseResult> {
        self.results.iter().find(|r| r.case == case)
    }
}

/// Runs the audit, drawing progress on `progress`.
pub async fn run(settings: &AuditSettings, progress: &ProgressLine) -> Result<Audit> {
    let started = Instant::now();
    only_loopback(&settings.url, settings.allow_remote).await?;
    let ca_certs = pem::certificates(&settings.ca, "the CA certificate")?;
    let trust = Trust::from_certs(ca_certs.clone(), &settings.ca)?;
    let good = match &settings.good {
        Some((cert, key)) => Some(Identity::load(cert, key, "the good client")?),
        None => None,
    };
    let issuer = match &settings.issuer {
        Some((cert, key)) => Some(CertAuthority::load(cert, key)?),
        None => None,
    };
    // The forged CA takes the trusted CA's exact name: the issuer's, else the first CA in --ca.
    let trusted_name = match &issuer {
        Some(ca) => pki::subject_of(&ca.der)?,
        None => pki::subject_of(&ca_certs[0])?,
    };
    let names = match &good {
        Some(id) => Names::copied_from(&id.chain[0])?,
        None => Names::fresh("client")?,
    };
    let mut runner = Runner {
        settings,
        trust,
        good,
        issuer,
        trusted_name,
        names,
        good_status: None,
        facts: Facts::default(),
        admitted: None,
    };
    let plan = settings.plan();
    progress.start(plan.len() + 2);
    let mut results: Vec<CaseResult> = Vec::new();
    let mut stopped = None;
    let mut revoked_config = None;
    for (done, case) in plan.into_iter().enumerate() {
        progress.step(done, case.label());
        let result = match case {
            Case::Revoked => {
                let (result, config) = runner.revoked().await;
                revoked_config = config;
                result
            }
            Case::RevokedResumed => runner.revoked_resumed(revoked_config.take()).await,
            _ => runner.case(case).await,
        };
        let first_tls = !case.is_raw() && results.iter().all(|r| r.case.is_raw());
        if let (true, ServerDid::WeRefusedServer { detail }) = (first_tls, &result.did) {
            stopped = Some(format!(
                "our side refused the server's certificate, so nothing else was tried: {detail}"
            ));
        } else if result.verdict == Verdict::GoodClientRefused {
            stopped = Some(format!(
                "the good client could not get in (the server {}), so nothing else was tried{}",
                result.did,
                result
                    .note
                    .as_deref()
                    .map(|why| format!(": {why}"))
                    .unwrap_or_default()
            ));
        }
        results.push(result);
        if stopped.is_some() {
            break;
        }
        // Right after the first certificate that got in, before the revoked case changes
        // the list (a server may start a fresh session cache when it reloads).
        if runner.facts.resumption.is_none() && runner.admitted.is_some() {
            progress.step(results.len(), "session resumption");
            runner.resumption().await;
        }
    }
    if stopped.is_none() {
        if runner.facts.resumption.is_none() {
            runner.resumption().await;
        }
        progress.step(results.len() + 1, "TLS 1.2 with AEAD suites");
        runner.modern_tls12().await;
    }
    progress.finish();
    Ok(Audit {
        url: settings.url.to_string(),
        results,
        facts: runner.facts,
        elapsed: started.elapsed(),
        timeout: settings.timeout,
        stopped,
    })
}

/// Refuses a server that is not on this machine unless `allow_remote`: the audit sends
/// deliberately wrong clients, which is for one's own servers.
async fn only_loopback(url: &Url, allow_remote: bool) -> Result<()> {
    if allow_remote {
        return Ok(());
    }
    let addrs: Vec<_> = tokio::net::lookup_host((url.host(), url.port()))
        .await
        .map_err(|source| Error::Resolve {
            host: url.host().to_string(),
            source,
        })?
        .collect();
    let outside: Vec<String> = addrs
        .iter()
        .filter(|a| !a.ip().is_loopback())
        .map(|a| a.ip().to_string())
        .collect();
    if outside.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "--url {url} reaches {}, which is not this machine; the audit sends deliberately wrong \
         clients, so it audits another machine only with --allow-remote (and only a server you \
         run)",
        outside.join(", ")
    )))
}

/// The state one run carries from case to case.
struct Runner<'a> {
    settings: &'a AuditSettings,
    trust: Trust,
    good: Option<Identity>,
    issuer: Option<CertAuthority>,
    trusted_name: rcgen::DistinguishedName,
    names: Names,
    /// The status the good client's request got: the measure of "admitted".
    good_status: Option<u16>,
    facts: Facts,
    /// The first config whose certificate got in, to see whether the server resumes.
    admitted: Option<(Arc<ClientConfig>, Case)>,
}

impl Runner<'_> {
    fn limit(&self) -> Duration {
        self.settings.timeout
    }

    async fn case(&mut self, case: Case) -> CaseResult {
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

    fn raw_result(&mut self, case: Case, sent: String, did: ServerDid) -> CaseResult {
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
        let note = self.note(case, &did, verdict, None);
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

    async fn present_minted(
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
    async fn present(
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
    async fn present_keeping(
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

    fn config(&self, identity: Option<&Identity>, seen: &SeenChain) -> Result<Arc<ClientConfig>> {
        let policy = ClientPolicy {
            only_version: None,
            http1_only: true,
        };
        tls::client_config(identity, &self.trust, seen.clone(), policy)
    }

    fn judged(
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
        let mut note = self.note(case, &a.did, verdict, a.why.as_deref());
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

    /// What a verdict means for this case, when the table's words are not enough.
    fn note(
        &self,
        case: Case,
        did: &ServerDid,
        verdict: Verdict,
        why: Option<&str>,
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
            (Case::NonForwardSecret, Verdict::Blocked)
                if self
                    .facts
                    .server_key
                    .as_deref()
                    .is_some_and(|k| !k.starts_with("RSA")) =>
            {
                Some(format!(
                    "its certificate's key ({}) cannot do RSA key exchange anyway",
                    self.facts.server_key.as_deref().unwrap_or_default()
                ))
            }
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

    /// Evidence: a second connection with the first admitted client's config (its session
    /// cache holds the session): does the server resume it?
    async fn resumption(&mut self) {
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
    async fn modern_tls12(&mut self) {
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

/// A case that could not be tried, with why.
fn not_tried(case: Case, why: String) -> CaseResult {
    CaseResult {
        case,
        sent: "nothing".into(),
        offered: Vec::new(),
        did: ServerDid::Broke {
            detail: "not tried".into(),
        },
        verdict: Verdict::Inconclusive,
        note: Some(why),
        negotiated: None,
    }
}
