//! The audit as JSON, for CI: every case with stable ids, the facts, the rule and the
//! exit code it implies.

use serde_json::{Value, json};

use super::cases::RULE;
use super::probe::ServerDid;
use super::table::summary;
use super::{Audit, CaseResult, Verdict};

impl Audit {
    /// The whole report as JSON.
    pub fn to_json(&self) -> Value {
        let facts = &self.facts;
        json!({
            "url": self.url,
            "elapsed_seconds": self.elapsed.as_secs_f64(),
            "probe_timeout_seconds": self.timeout.as_secs(),
            "exit_code": self.exit_code(),
            "stopped": self.stopped,
            "summary": summary(self),
            "counts": {
                "blocked": self.count(Verdict::Blocked),
                "wrongly_admitted": self.count(Verdict::WronglyAdmitted),
                "inconclusive": self.count(Verdict::Inconclusive),
                "admitted": self.count(Verdict::Admitted),
            },
            "cases": self.results.iter().map(case).collect::<Vec<_>>(),
            "handshakes": {
                "asked_for_client_certificate": facts.asked,
                "ca_names": facts.ca_names,
                "accepted": facts.accepted,
                "refused": facts.refused,
                "resumption": facts.resumption,
                "server_key": facts.server_key,
            },
            "rule": RULE,
        })
    }
}

fn case(r: &CaseResult) -> Value {
    json!({
        "id": r.case.id(),
        "case": r.case.label(),
        "sent": r.sent,
        "offered_suites": r.offered,
        "server_did": did(&r.did),
        "verdict": r.verdict.id(),
        "negotiated": r.negotiated,
        "note": r.note,
    })
}

/// What the server did, as a kind plus its details.
fn did(d: &ServerDid) -> Value {
    let (kind, extra) = match d {
        ServerDid::RefusedInHandshake { alert } => {
            ("refused_in_handshake", json!({ "alert": alert }))
        }
        ServerDid::RefusedAfterHandshake { alert } => {
            ("refused_after_handshake", json!({ "alert": alert }))
        }
        ServerDid::Closed => ("closed", json!({})),
        ServerDid::Answered { status, body } => {
            ("answered", json!({ "status": status, "body": body }))
        }
        ServerDid::AnsweredPlain { status } => ("answered_plain_http", json!({ "status": status })),
        ServerDid::Hello { version, suite } => (
            "server_hello",
            json!({ "version": version, "suite": suite }),
        ),
        ServerDid::Incompatible { detail } => ("incompatible", json!({ "detail": detail })),
        ServerDid::Garbled { detail } => ("garbled", json!({ "detail": detail })),
        ServerDid::TimedOut { phase, after } => (
            "timed_out",
            json!({ "phase": phase, "after_seconds": after.as_secs_f64() }),
        ),
        ServerDid::Unreachable { detail } => ("unreachable", json!({ "detail": detail })),
        ServerDid::WeRefusedServer { detail } => ("we_refused_server", json!({ "detail": detail })),
        ServerDid::Broke { detail } => ("broke", json!({ "detail": detail })),
    };
    let mut out = json!({ "kind": kind, "text": d.to_string() });
    if let (Some(out), Value::Object(extra)) = (out.as_object_mut(), extra) {
        out.extend(extra);
    }
    out
}
