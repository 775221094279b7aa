//! A run, or a comparison, as a person reads it: what each operation was, the rate, the
//! latency percentiles, this process's CPU, resumptions, and failures by reason; for a
//! comparison, one row per kind of connection and what each choice costs.

use std::fmt;
use std::time::Duration;

use super::{Comparison, Mode, Row, Run};
use crate::format::{column_widths, wrap};

/// How wide a wrapped line may be.
const WIDTH: usize = 92;

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "client bench: {}, {}", self.label, self.url)?;
        let each = format!(
            "{} connections, {}; each operation: {}",
            self.connections,
            self.bound,
            self.mode.operation()
        );
        lines(f, "  ", "  ", &each)?;
        writeln!(f)?;
        writeln!(
            f,
            "  operations:  {} in {}: {} succeeded, {} failed{}",
            self.attempted,
            human(self.elapsed),
            self.succeeded,
            self.failed,
            match self.unfinished {
                0 => String::new(),
                n => format!(", {n} unfinished at the hard stop"),
            }
        )?;
        writeln!(
            f,
            "  rate:        {:.1} {}/s",
            self.rate(),
            self.mode.unit()
        )?;
        match &self.latency {
            Some(l) => writeln!(
                f,
                "  latency:     p50 {}  p90 {}  p99 {}  max {}  (mean {}; successful operations)",
                human(l.p50),
                human(l.p90),
                human(l.p99),
                human(l.max),
                human(l.mean)
            )?,
            None => writeln!(f, "  latency:     none succeeded")?,
        }
        if let Some(note) = self.resumption_note() {
            lines(f, "  resumed:     ", "               ", &note)?;
        }
        if let Some(tls) = &self.tls {
            let http = self.http.as_deref().unwrap_or("HTTP");
            writeln!(f, "  negotiated:  {tls}; {http}")?;
        }
        writeln!(f, "  client CPU:  {}", cpu_words(self))?;
        failures(f, self)?;
        if let Some(why) = &self.cut_short {
            lines(f, "  note:        ", "               ", why)?;
        }
        Ok(())
    }
}

/// This process's CPU over the run, in words.
fn cpu_words(run: &Run) -> String {
    match (run.cpu, run.cpu_cores(), run.cpu_per_operation()) {
        (Some(cpu), Some(cores), Some(per)) => format!(
            "{}: {cores:.2} of one core, {} per operation (this process only)",
            human(cpu),
            human(per)
        ),
        (Some(cpu), _, _) => format!("{} (this process only)", human(cpu)),
        _ => "cannot be read on this system".into(),
    }
}

fn failures(f: &mut fmt::Formatter<'_>, run: &Run) -> fmt::Result {
    if run.failures.is_empty() {
        return writeln!(f, "  failures:    none");
    }
    writeln!(
        f,
        "  failures:    {} of {}, by reason:",
        run.failed,
        run.succeeded + run.failed
    )?;
    for reason in &run.failures {
        let count = format!("{:>8} x ", reason.count);
        let indent = " ".repeat(count.len());
        lines(f, &count, &indent, &reason.reason)?;
    }
    Ok(())
}

/// The comparison for a terminal: the table, what each choice costs, then the details.
impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "client bench --compare: {}, {} connections, {} per row",
            self.url, self.connections, self.bound
        )?;
        writeln!(f)?;
        let header = [
            "WHAT", "RATE", "P50", "P90", "P99", "MAX", "CPU/OP", "OK", "FAILED",
        ]
        .map(String::from);
        let rows: Vec<[String; 9]> = self.rows.iter().map(row_cells).collect();
        let widths = column_widths(std::iter::once(&header).chain(&rows));
        for row in std::iter::once(&header).chain(rows.iter()) {
            let mut line = format!("{:w$}", row[0], w = widths[0]);
            for (i, cell) in row.iter().enumerate().skip(1) {
                line.push_str(&format!("  {cell:>w$}", w = widths[i]));
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        writeln!(f)?;
        for row in &self.rows {
            if let Row::NotPossible { label, why } = row {
                lines(f, "", "  ", &format!("{label}: {why}"))?;
                writeln!(f)?;
            }
        }
        let costs = self.costs();
        if !costs.is_empty() {
            writeln!(
                f,
                "What it costs (this client's side, this run, this machine)"
            )?;
            for cost in costs {
                lines(f, "  ", "    ", &cost)?;
            }
            writeln!(f)?;
        }
        writeln!(f, "Each row")?;
        for run in self.measured() {
            writeln!(f, "  {}:", run.label)?;
            if let Some(tls) = &run.tls {
                let http = run.http.as_deref().unwrap_or("HTTP");
                writeln!(f, "    negotiated:  {tls}; {http}")?;
            }
            if let Some(note) = run.resumption_note() {
                lines(f, "    resumed:     ", "                 ", &note)?;
            }
            writeln!(f, "    client CPU:  {}", cpu_words(run))?;
            for reason in &run.failures {
                let count = format!("    failed {} x ", reason.count);
                let indent = " ".repeat(count.len());
                lines(f, &count, &indent, &reason.reason)?;
            }
            if let Some(why) = &run.cut_short {
                lines(f, "    note:        ", "                 ", why)?;
            }
        }
        Ok(())
    }
}

impl Comparison {
    /// The rows that were measured.
    pub fn measured(&self) -> impl Iterator<Item = &Run> {
        self.rows.iter().filter_map(|row| match row {
            Row::Measured(run) => Some(run.as_ref()),
            Row::NotPossible { .. } => None,
        })
    }

    fn row(&self, mode: Mode, client_auth: bool) -> Option<&Run> {
        self.measured()
            .find(|r| r.mode == mode && r.client_auth == client_auth && r.succeeded > 0)
    }

    /// What session resumption, keep-alive and client authentication cost, from the rows
    /// that measured them: rates and this process's CPU per operation, side by side.
    pub fn costs(&self) -> Vec<String> {
        let mut costs = Vec::new();
        let Some(full) = self.row(Mode::Full, true) else {
            return costs;
        };
        let cpu = |run: &Run| run.cpu_per_operation().map(human).unwrap_or("?".into());
        if let Some(plain) = self.row(Mode::Full, false) {
            costs.push(format!(
                "client authentication: full mTLS handshakes ran at {:.0}% of plain TLS's rate \
                 ({:.1}/s against {:.1}/s), {} of this client's CPU each against {}; the \
                 server's extra work (verifying our chain) is on its own CPU{}",
                100.0 * full.rate() / plain.rate(),
                full.rate(),
                plain.rate(),
                cpu(full),
                cpu(plain),
                unlike(full, plain)
            ));
        }
        if let Some(resumed) = self.row(Mode::Resumed, true) {
            costs.push(format!(
                "session resumption: {:.2}x the rate of full handshakes ({:.1}/s against \
                 {:.1}/s), {} of this client's CPU each against {}; {} of {} handshakes \
                 resumed",
                resumed.rate() / full.rate(),
                resumed.rate(),
                full.rate(),
                cpu(resumed),
                cpu(full),
                resumed.resumed,
                resumed.handshakes
            ));
        }
        if let Some(kept) = self.row(Mode::KeepAlive, true) {
            costs.push(format!(
                "keep-alive: {:.1}x the rate of a full handshake per request ({:.1} requests/s \
                 against {:.1}/s), {} of this client's CPU per request",
                kept.rate() / full.rate(),
                kept.rate(),
                full.rate(),
                cpu(kept)
            ));
        }
        costs
    }
}

/// What differs between the mTLS and the plain-TLS row besides the client certificate (the
/// server, the key exchange, the HTTP version), so the difference in rate is not put down
/// to client authentication alone; empty when nothing else differs.
fn unlike(mtls: &Run, plain: &Run) -> String {
    let mut differs = Vec::new();
    if plain.url != mtls.url {
        differs.push(format!("plain TLS went to another server ({})", plain.url));
    }
    for (what, a, b) in [
        ("TLS", &mtls.tls, &plain.tls),
        ("HTTP", &mtls.http, &plain.http),
    ] {
        if a != b {
            let name = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
            differs.push(format!("{what}: {} against {}", name(a), name(b)));
        }
    }
    match differs.is_empty() {
        true => String::new(),
        false => format!(
            ". Not like for like: {}; part of the difference is theirs, not client \
             authentication's",
            differs.join("; ")
        ),
    }
}

/// One table row: what, rate, p50, p90, p99, max, CPU per operation, ok, failed.
fn row_cells(row: &Row) -> [String; 9] {
    match row {
        Row::Measured(run) => {
            let l = run.latency;
            let at = |pick: fn(&super::Latency) -> Duration| {
                l.as_ref().map(|l| human(pick(l))).unwrap_or("-".into())
            };
            [
                run.label.clone(),
                format!("{:.1}/s", run.rate()),
                at(|l| l.p50),
                at(|l| l.p90),
                at(|l| l.p99),
                at(|l| l.max),
                run.cpu_per_operation().map(human).unwrap_or("-".into()),
                run.succeeded.to_string(),
                run.failed.to_string(),
            ]
        }
        Row::NotPossible { label, .. } => {
            let mut cells: [String; 9] = std::array::from_fn(|_| "-".to_string());
            cells[0] = label.clone();
            cells[1] = "(below)".into();
            cells
        }
    }
}

/// Writes `text` wrapped, the first line after `first`, the others after `rest`.
fn lines(f: &mut fmt::Formatter<'_>, first: &str, rest: &str, text: &str) -> fmt::Result {
    for (i, line) in wrap(text, WIDTH.saturating_sub(first.len()))
        .iter()
        .enumerate()
    {
        let lead = if i == 0 { first } else { rest };
        writeln!(f, "{lead}{line}")?;
    }
    Ok(())
}

/// A duration as people read a latency: `412µs`, `9.81ms`, `123ms`, `2.04s`.
pub(super) fn human(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 1_000 {
        format!("{micros}µs")
    } else if micros < 100_000 {
        format!("{:.2}ms", d.as_secs_f64() * 1e3)
    } else if micros < 1_000_000 {
        format!("{:.0}ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}
