//! A run, or a comparison, as JSON for scripts: counts, rate, latency in milliseconds,
//! CPU, resumptions and failures by reason, with the same words as the table.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Bound, Comparison, Row, Run};

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn bound(b: Bound) -> Value {
    match b {
        Bound::Requests(n) => json!({ "requests": n }),
        Bound::Duration(d) => json!({ "duration_s": d.as_secs_f64() }),
    }
}

impl Run {
    /// The run as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "label": self.label,
            "url": self.url,
            "mode": self.mode.to_string(),
            "client_certificate": self.client_auth,
            "connections": self.connections,
            "bound": bound(self.bound),
            "operations": {
                "attempted": self.attempted,
                "succeeded": self.succeeded,
                "failed": self.failed,
                "unfinished": self.unfinished,
            },
            "elapsed_s": self.elapsed.as_secs_f64(),
            "rate_per_s": self.rate(),
            "unit": self.mode.unit(),
            "latency_ms": self.latency.map(|l| json!({
                "p50": millis(l.p50),
                "p90": millis(l.p90),
                "p99": millis(l.p99),
                "max": millis(l.max),
                "mean": millis(l.mean),
            })),
            "handshakes": self.handshakes,
            "resumed": self.resumed,
            "resumption": self.resumption_note(),
            "tls": self.tls,
            "http": self.http,
            "cpu": self.cpu.map(|cpu| json!({
                "seconds": cpu.as_secs_f64(),
                "cores": self.cpu_cores(),
                "per_operation_ms": self.cpu_per_operation().map(millis),
            })),
            "failures": self.failures.iter().map(|r| json!({
                "reason": r.reason,
                "count": r.count,
            })).collect::<Vec<_>>(),
            "cut_short": self.cut_short,
        })
    }
}

impl Comparison {
    /// The comparison as JSON: one object per row, and what each choice cost.
    pub fn to_json(&self) -> Value {
        json!({
            "url": self.url,
            "connections": self.connections,
            "bound": bound(self.bound),
            "rows": self.rows.iter().map(|row| match row {
                Row::Measured(run) => run.to_json(),
                Row::NotPossible { label, why } => json!({
                    "label": label,
                    "not_possible": why,
                }),
            }).collect::<Vec<_>>(),
            "costs": self.costs(),
        })
    }
}
