//! The revoked case (`--crl-hint FILE`): a valid certificate from the trusted CA gets in,
//! is then added to the revocation list the server reads, and must be refused once the
//! server has read it; then its earlier session is resumed, to see whether the server
//! checks a resumed client again.
//!
//! The list is changed the way the CA tool changes it ([`crate::revocation`]): every entry
//! and every other CA's list kept, one serial added, signed again with a larger number,
//! written atomically. The serial is of a certificate minted for this run and thrown away,
//! so the entry harms nothing; the CA tool's next list, rebuilt from the file, keeps it.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rustls::ClientConfig;
use time::Duration;

use super::cases::{Treated, treated};
use super::mint::{self, Flaw};
use super::runner::Runner;
use super::{CRL_WAIT, Case, CaseResult, Verdict, not_tried, probe};
use crate::certinfo::CertInfo;
use crate::error::{Error, Result};
use crate::format::now;
use crate::pem;
use crate::pki::CertAuthority;
use crate::revocation::{self, CrlInfo, Entry};
use crate::tls::SeenChain;
use crate::write::{self, Access};

/// Pause between attempts while waiting for the server to read the list.
const RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// At most this many attempts while waiting (with [`CRL_WAIT`], whichever ends first).
const MAX_TRIES: usize = 40;

impl Runner<'_> {
    /// Mints, proves it gets in, revokes it, and waits (bounded) for the refusal. Returns
    /// the config that holds its session, for [`Runner::revoked_resumed`].
    pub(super) async fn revoked(&mut self) -> (CaseResult, Option<Arc<ClientConfig>>) {
        let case = Case::Revoked;
        let (Some(file), Some(issuer)) = (self.settings.crl_hint.clone(), self.issuer.as_ref())
        else {
            return (
                not_tried(case, "needs --crl-hint and the issuer".into()),
                None,
            );
        };
        let minted = match mint::from_issuer(issuer, &self.names, Flaw::None) {
            Ok(m) => m,
            Err(e) => return (not_tried(case, format!("cannot mint: {e}")), None),
        };
        let written = |runner: &Self| match runner.issuer.as_ref() {
            Some(issuer) => add_to_list(&file, issuer, &minted.leaf),
            None => Err(Error::Invalid("no issuer".into())),
        };
        let sent = format!(
            "{}; valid, then added to {}",
            minted.describe(),
            file.display()
        );
        let (before, config) = self
            .present_keeping(case, Some(&minted.identity), sent.clone())
            .await;
        if treated(&before.did, self.good_status) != Treated::Admitted {
            let note = format!(
                "a valid certificate from this CA was not admitted even before it was revoked \
                 ({}), so revocation cannot be told apart",
                before.did
            );
            return (inconclusive(before, note), None);
        }
        if let Err(e) = written(self) {
            return (
                not_tried(case, format!("cannot write the revocation list: {e}")),
                None,
            );
        }
        let started = Instant::now();
        let mut last = before;
        for _ in 0..MAX_TRIES {
            if started.elapsed() > CRL_WAIT {
                break;
            }
            tokio::time::sleep(RETRY).await;
            // A fresh config each time: a full handshake, never a resumption.
            let (result, _) = self
                .present_keeping(case, Some(&minted.identity), sent.clone())
                .await;
            let refused = treated(&result.did, self.good_status) == Treated::Refused;
            last = result;
            if refused {
                return (last, config);
            }
        }
        let note = format!(
            "still {} {:.0}s after the list changed: the server did not read the new list (one \
             that reads its CRL only at start cannot be audited this way) or does not check it",
            last.did,
            started.elapsed().as_secs_f32()
        );
        (inconclusive(last, note), None)
    }

    /// The revoked certificate's session from before it was revoked, resumed.
    pub(super) async fn revoked_resumed(
        &mut self,
        config: Option<Arc<ClientConfig>>,
    ) -> CaseResult {
        let case = Case::RevokedResumed;
        let Some(config) = config else {
            return not_tried(
                case,
                "the revoked case did not get a session and a refusal".into(),
            );
        };
        let seen = SeenChain::default();
        let a = probe::attempt(&self.settings.url, config.clone(), &seen, self.limit()).await;
        let resumed = a.tls.as_ref().is_some_and(|t| t.resumed);
        let sent = "the session the certificate got before it was revoked".to_string();
        let mut result = self.judged(case, sent, &a, &seen, &config);
        result.note = Some(match (resumed, result.verdict) {
            (true, Verdict::WronglyAdmitted) => {
                "it resumed the revoked certificate's session without checking it again".into()
            }
            (true, _) => "it resumed the session, then refused: it checks a resumed client".into(),
            (false, _) => "it did not resume the session (a full handshake)".into(),
        });
        result
    }
}

fn inconclusive(mut result: CaseResult, note: String) -> CaseResult {
    result.verdict = Verdict::Inconclusive;
    result.note = Some(note);
    result
}

/// Adds `leaf` to the list `issuer` signs in `file`, keeping every other entry and list.
pub(crate) fn add_to_list(file: &Path, issuer: &CertAuthority, leaf: &CertInfo) -> Result<()> {
    let what = "the revocation list (--crl-hint)";
    let issuer_info = CertInfo::parse(&issuer.der).map_err(Error::Invalid)?;
    let lists = match file.exists() {
        true => pem::crls(file, what)?,
        false => Vec::new(),
    };
    let now = now();
    let entry = Entry {
        serial: leaf.serial.clone(),
        at: now - Duration::minutes(1),
        reason: None,
    };
    // CRL numbers only grow: seconds since 1970, or one more than the list replaced.
    let number_after = |old: u64| {
        u64::try_from(now.unix_timestamp())
            .unwrap_or(0)
            .max(old + 1)
    };
    let mut out = String::new();
    let mut added = false;
    for der in lists {
        let info = CrlInfo::parse(&der).map_err(|why| Error::malformed(what, file, why))?;
        if added || !info.issued_by(&issuer_info) {
            out.push_str(&pem::to_pem("X509 CRL", &der));
            continue;
        }
        let mut entries = info.entries.clone();
        entries.push(entry.clone());
        let old = info
            .number
            .as_deref()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let next = info
            .next_update
            .filter(|t| *t > now + Duration::hours(1))
            .unwrap_or(now + Duration::days(i64::from(revocation::DEFAULT_DAYS)));
        out.push_str(&revocation::sign(
            issuer,
            &entries,
            number_after(old),
            now,
            next,
        )?);
        added = true;
    }
    if !added {
        let next = now + Duration::days(i64::from(revocation::DEFAULT_DAYS));
        out.push_str(&revocation::sign(
            issuer,
            &[entry],
            number_after(0),
            now,
            next,
        )?);
    }
    write::atomic(file, out.as_bytes(), Access::Public)
}
