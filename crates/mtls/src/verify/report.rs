//! The verdicts of `certificate verify` in words and as JSON: what was asked, the path
//! webpki built and what it checked, or the reason and the fix.

use std::fmt;
use std::path::PathBuf;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::input::{Host, Material};
use super::judge::{Link, LinkRole, Outcome};
use super::{Purpose, Request};
use crate::format::{format_time, rfc3339};

/// Everything `certificate verify` found.
#[derive(Clone, Debug)]
pub struct Report {
    /// The LEAF file.
    pub leaf: PathBuf,
    /// The CA file, and how many certificates (trust anchors) it holds.
    pub ca: (PathBuf, usize),
    /// How many candidate intermediates there were (the LEAF file's chain, then --untrusted).
    pub intermediates: usize,
    /// The CRL files.
    pub crls: Vec<PathBuf>,
    /// The host checked, if any.
    pub host: Option<Host>,
    /// The moment verified at, and whether it is now (no --at).
    pub at: (OffsetDateTime, bool),
    /// The certificates of the LEAF file, described (shown when nothing was accepted).
    pub given: Vec<Link>,
    /// One verdict per purpose checked.
    pub outcomes: Vec<Outcome>,
    /// What was not checked, and facts that do not change the verdict.
    pub notes: Vec<String>,
}

impl Report {
    pub(crate) fn new(
        req: &Request,
        m: &Material,
        at: OffsetDateTime,
        outcomes: Vec<Outcome>,
    ) -> Self {
        let given = std::iter::once(&m.leaf)
            .chain(&m.chain)
            .enumerate()
            .map(|(i, g)| {
                let role = if i == 0 {
                    LinkRole::Leaf
                } else {
                    LinkRole::Intermediate
                };
                Link::of(role, &g.der, Some(g))
            })
            .collect();
        let mut report = Self {
            leaf: req.leaf.clone(),
            ca: (req.ca.clone(), m.anchors.len()),
            intermediates: m.intermediates.len(),
            crls: req.crls.clone(),
            host: req.host.clone(),
            at: (at, req.at.is_none()),
            given,
            outcomes,
            notes: Vec::new(),
        };
        report.notes = report.notes();
        report
    }

    /// At least one purpose was accepted (exit status 0).
    pub fn accepted(&self) -> bool {
        self.outcomes.iter().any(Outcome::accepted)
    }

    /// What the verdict does not cover, and facts webpki does not weigh.
    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let at = self.at.0;
        for link in self.accepted_paths().filter(|l| l.role == LinkRole::Anchor) {
            let outside =
                link.not_before.is_some_and(|t| at < t) || link.not_after.is_some_and(|t| at > t);
            if outside {
                notes.push(format!(
                    "the trust anchor \"{}\" is not valid at that time ({}); webpki, like every \
                     rustls verifier, takes a trust anchor as a name and a key and ignores its \
                     dates, so the verdict stands, but OpenSSL refuses such a root",
                    link.subject,
                    link.validity()
                ));
            }
        }
        let server_ok = self
            .outcomes
            .iter()
            .any(|o| o.purpose == Purpose::Server && o.accepted());
        if server_ok && self.host.is_none() {
            notes.push(
                "no --host: the leaf's names were not checked; a client also checks that they \
                 include the host it dials"
                    .into(),
            );
        }
        if self.accepted() {
            if self.crls.is_empty() {
                notes.push(
                    "revocation was not checked: no --crl given (the server checks it only when \
                     started with --crl)"
                        .into(),
                );
            }
            notes.push(
                "keyUsage was not checked: webpki ignores it when it builds a path (as browsers \
                 do), and so does every handshake here"
                    .into(),
            );
        }
        notes.dedup();
        notes
    }

    fn accepted_paths(&self) -> impl Iterator<Item = &Link> {
        self.outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().ok())
            .flatten()
    }

    /// The first rejection, when nothing was accepted.
    fn refusal(&self) -> Option<&super::Rejection> {
        match self.accepted() {
            true => None,
            false => self.outcomes.iter().find_map(|o| o.result.as_ref().err()),
        }
    }

    /// The whole report as JSON: the verdict, the reason code and the path, then each
    /// purpose's own verdict.
    pub fn to_json(&self) -> Value {
        let path = self
            .outcomes
            .iter()
            .find_map(|o| o.result.as_ref().ok())
            .map(|p| p.iter().map(Link::to_json).collect::<Vec<_>>())
            .unwrap_or_default();
        let refusal = self.refusal();
        json!({
            "leaf": self.leaf.display().to_string(),
            "verdict": verdict(self.accepted()),
            "reason": refusal.map(|r| r.failure.code()),
            "message": refusal.map(|r| r.message.clone()),
            "path": path,
            "purposes": self.outcomes.iter().map(|o| {
                let (reason, message, which) = match &o.result {
                    Ok(_) => (None, None, Vec::new()),
                    Err(r) => (Some(r.failure.code()), Some(r.message.clone()), r.which.clone()),
                };
                json!({
                    "purpose": o.purpose.name(),
                    "verdict": verdict(o.accepted()),
                    "reason": reason,
                    "message": message,
                    "which": which,
                    "path": o.result.as_ref().map(|p| p.iter().map(Link::to_json).collect::<Vec<_>>()).unwrap_or_default(),
                    "checks": o.checks,
                })
            }).collect::<Vec<_>>(),
            "host": self.host.as_ref().map(ToString::to_string),
            "at": rfc3339(self.at.0),
            "ca": self.ca.0.display().to_string(),
            "crls": self.crls.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "notes": self.notes,
        })
    }
}

fn verdict(accepted: bool) -> &'static str {
    if accepted { "accepted" } else { "rejected" }
}

impl Link {
    fn to_json(&self) -> Value {
        json!({
            "role": self.role.name(),
            "subject": self.subject,
            "issuer": self.issuer,
            "sha256": self.sha256,
            "source": self.source.as_ref().map(ToString::to_string),
        })
    }

    fn validity(&self) -> String {
        let t = |t: Option<OffsetDateTime>| t.map(format_time).unwrap_or_else(|| "?".into());
        format!("valid from {} to {}", t(self.not_before), t(self.not_after))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "certificate verify: {}", self.leaf.display())?;
        let host = self
            .host
            .as_ref()
            .map(|h| format!(" for \"{h}\" ({})", h.kind()))
            .unwrap_or_default();
        let purposes: Vec<String> = self
            .outcomes
            .iter()
            .map(|o| format!("a {} certificate", o.purpose.name()))
            .collect();
        writeln!(f, "  checked as: {}{host}", purposes.join(" and as "))?;
        let now = if self.at.1 { " (now)" } else { "" };
        writeln!(f, "  at:         {}{now}", format_time(self.at.0))?;
        writeln!(
            f,
            "  trusting:   {} ({} certificate(s), each a trust anchor)",
            self.ca.0.display(),
            self.ca.1
        )?;
        writeln!(
            f,
            "  candidates: {} intermediate(s) (the rest of the LEAF file, then --untrusted)",
            self.intermediates
        )?;
        let crls = match self.crls.as_slice() {
            [] => "none".to_string(),
            files => files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        };
        writeln!(f, "  CRLs:       {crls}")?;
        if !self.accepted() {
            writeln!(f, "\nCertificates in {}:", self.leaf.display())?;
            write_links(f, &self.given)?;
        }
        for o in &self.outcomes {
            writeln!(f)?;
            match &o.result {
                Ok(path) => {
                    writeln!(f, "As a {} certificate: ACCEPTED", o.purpose.name())?;
                    writeln!(f, "  path (leaf first, each issued by the next):")?;
                    write_links(f, path)?;
                    writeln!(f, "  passed:")?;
                    for check in &o.checks {
                        writeln!(f, "    ok  {check}")?;
                    }
                }
                Err(r) => {
                    writeln!(
                        f,
                        "As a {} certificate: REJECTED ({})",
                        o.purpose.name(),
                        r.failure.code()
                    )?;
                    writeln!(f, "  reason: {}", r.message)?;
                    for fact in &r.which {
                        writeln!(f, "  which:  {fact}")?;
                    }
                }
            }
        }
        if !self.notes.is_empty() {
            writeln!(f, "\nNotes:")?;
            for note in &self.notes {
                writeln!(f, "  - {note}")?;
            }
        }
        writeln!(f, "\n{}", self.summary())
    }
}

impl Report {
    /// The last line: the verdict in one sentence.
    fn summary(&self) -> String {
        let ok: Vec<&str> = self
            .outcomes
            .iter()
            .filter(|o| o.accepted())
            .map(|o| o.purpose.name())
            .collect();
        let ca = self.ca.0.display();
        match (ok.as_slice(), self.outcomes.len()) {
            ([], _) => {
                format!("Verdict: rejected: a peer that trusts {ca} would refuse this certificate")
            }
            ([one], 1) => {
                let judge = match self.outcomes[0].purpose {
                    Purpose::Server => "a client",
                    Purpose::Client => "a server",
                };
                let host = self
                    .host
                    .as_ref()
                    .map(|h| format!(" for \"{h}\""))
                    .unwrap_or_default();
                format!(
                    "Verdict: accepted: {judge} that trusts {ca} would accept it as a {one} \
                     certificate{host}"
                )
            }
            ([one], _) => format!(
                "Verdict: accepted as a {one} certificate only (against {ca}); see the other \
                 purpose's reason above"
            ),
            (_, _) => {
                format!("Verdict: accepted as a server and as a client certificate (against {ca})")
            }
        }
    }
}

fn write_links(f: &mut fmt::Formatter<'_>, links: &[Link]) -> fmt::Result {
    for (i, link) in links.iter().enumerate() {
        writeln!(f, "    {}. {}: {}", i + 1, link.role.name(), link.subject)?;
        let from = link
            .source
            .as_ref()
            .map(|s| format!(", from {s}"))
            .unwrap_or_default();
        writeln!(f, "       sha256 {}{from}", link.sha256)?;
        writeln!(f, "       {}", link.validity())?;
    }
    Ok(())
}
