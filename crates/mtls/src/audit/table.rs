//! The audit as a person reads it: one row per case, then what each sent, what the
//! handshakes showed, the rule, and the result in one line.

use std::fmt;

use super::cases::{Case, Expect, RULE};
use super::{Audit, ServerDid, Verdict};
use crate::format::{column_widths, wrap};

/// The report for a terminal.
pub struct Table<'a>(pub &'a Audit);

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let audit = self.0;
        writeln!(
            f,
            "mTLS audit of {}: {} cases in {:.1}s, each probe limited to {}s",
            audit.url,
            audit.results.len(),
            audit.elapsed.as_secs_f32(),
            audit.timeout.as_secs()
        )?;
        writeln!(f)?;
        let rows: Vec<[String; 3]> = audit
            .results
            .iter()
            .map(|r| {
                // The version tells why a refusal came after the handshake (TLS 1.3); the
                // suite matters only for what got through.
                let did = match (&r.negotiated, &r.did) {
                    (Some(n), ServerDid::Answered { .. }) => format!("{} ({n})", r.did),
                    (Some(n), ServerDid::RefusedAfterHandshake { .. }) => {
                        let version = n.split(' ').next().unwrap_or_default();
                        format!("{} ({version})", r.did)
                    }
                    _ => r.did.to_string(),
                };
                [
                    r.verdict.word().to_string(),
                    r.case.label().to_string(),
                    did,
                ]
            })
            .collect();
        let header = [
            "VERDICT".to_string(),
            "CASE (WHAT WAS SENT)".to_string(),
            "WHAT THE SERVER DID".to_string(),
        ];
        let [w0, w1, _] = column_widths(std::iter::once(&header).chain(&rows));
        for row in std::iter::once(&header).chain(rows.iter()) {
            writeln!(f, "{:w0$}  {:w1$}  {}", row[0], row[1], row[2])?;
        }
        writeln!(f)?;
        writeln!(f, "What each case sent")?;
        for r in &audit.results {
            let sent = format!("{}: {}", r.case.label(), r.sent);
            for (i, line) in wrap(&sent, 96).iter().enumerate() {
                let indent = if i == 0 { "  " } else { "      " };
                writeln!(f, "{indent}{line}")?;
            }
            if let Some(note) = &r.note {
                for (i, line) in wrap(note, 92).iter().enumerate() {
                    let lead = if i == 0 { "    -> " } else { "       " };
                    writeln!(f, "{lead}{line}")?;
                }
            }
        }
        writeln!(f)?;
        let facts = &audit.facts;
        writeln!(f, "What the handshakes showed")?;
        let asked = match facts.asked {
            Some(true) => "yes",
            Some(false) => "no: this is ordinary TLS, not mutual TLS",
            None => "unknown (no handshake got that far)",
        };
        writeln!(f, "  asked for a client certificate: {asked}")?;
        if !facts.ca_names.is_empty() {
            writeln!(
                f,
                "  CA names in its CertificateRequest: {}",
                facts.ca_names.join("; ")
            )?;
        } else if facts.asked == Some(true) {
            writeln!(f, "  CA names in its CertificateRequest: none")?;
        }
        let list = |items: &[String]| match items.is_empty() {
            true => "none seen".to_string(),
            false => items.join("; "),
        };
        writeln!(f, "  accepted: {}", list(&facts.accepted))?;
        writeln!(f, "  refused:  {}", list(&facts.refused))?;
        if let Some(resumption) = &facts.resumption {
            writeln!(f, "  session resumption: {resumption}")?;
        }
        if let Some(key) = &facts.server_key {
            writeln!(f, "  server certificate key: {key}")?;
        }
        writeln!(f)?;
        writeln!(f, "How it was judged")?;
        for line in wrap(RULE, 92) {
            writeln!(f, "  {line}")?;
        }
        writeln!(f)?;
        writeln!(f, "{}", summary(audit))
    }
}

/// The result in one line: what got through, or that nothing did; and whether the server
/// authorizes.
pub(crate) fn summary(audit: &Audit) -> String {
    if let Some(why) = &audit.stopped {
        return format!("Result: not audited: {why}");
    }
    let must_block = audit
        .results
        .iter()
        .filter(|r| r.case.expect() == Expect::Block)
        .count();
    let named = |verdict: Verdict| {
        audit
            .results
            .iter()
            .filter(|r| r.verdict == verdict)
            .map(|r| r.case.label())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let through = audit.count(Verdict::WronglyAdmitted);
    let unclear = audit.count(Verdict::Inconclusive);
    let mut text = match (through, unclear) {
        (0, 0) => format!("Result: all {must_block} cases that must be blocked were blocked"),
        (0, _) => "Result: nothing got through".to_string(),
        (n, _) => format!(
            "Result: {n} got through: {}",
            named(Verdict::WronglyAdmitted)
        ),
    };
    if unclear > 0 {
        text.push_str(&format!(
            "; {unclear} inconclusive: {}",
            named(Verdict::Inconclusive)
        ));
    }
    match audit.result(Case::UnconfiguredIdentity).map(|r| r.verdict) {
        Some(Verdict::Admitted | Verdict::WronglyAdmitted) => {
            text.push_str("; it authenticates but does not authorize")
        }
        Some(Verdict::Blocked) => text.push_str("; it authorizes as well as authenticates"),
        _ => {}
    }
    text
}
