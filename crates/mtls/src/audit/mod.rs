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
mod notes;
pub mod probe;
mod progress;
mod raw;
mod revoke;
mod runner;
mod table;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::certinfo::CertInfo;
use crate::client::Url;
use crate::error::Result;
use crate::pem;
use crate::pki::{self, CertAuthority};
use crate::tls::{Identity, SeenChain, Trust};

pub use cases::{Case, Expect, Verdict};
pub use probe::ServerDid;
pub use progress::ProgressLine;
pub use table::Table;

use mint::Names;
use runner::Runner;

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
    /// Why it stopped early: the server cannot be reached, our side refused its
    /// certificate, or the good client could not get in; nothing else would mean anything.
    pub stopped: Option<String>,
}

impl Audit {
    /// 0: everything that must be blocked was; 1: something got through, or could not be
    /// judged; 2: the audit could not run (the server cannot be reached, our side refused
    /// its certificate, or the good client was refused).
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
    crate::client::only_loopback(
        &settings.url,
        "--url",
        settings.allow_remote,
        "the audit sends deliberately wrong clients, which is for a server you run only",
    )
    .await?;
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
    // A name that cannot be copied (an otherName SAN, say) gives way to fresh ones; each
    // case's "sent" says which names it carried.
    let names = match good.as_ref().map(|id| Names::copied_from(&id.chain[0])) {
        Some(Ok(names)) => names,
        _ => Names::fresh("client")?,
    };
    let mut runner = Runner::new(settings, trust, good, issuer, trusted_name, names);
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
        } else if let (true, ServerDid::Unreachable { detail }) = (first_tls, &result.did) {
            stopped = Some(format!("the server cannot be reached: {detail}"));
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
