//! The tools' output quoted in README.md and docs/*.md, checked against what they print now.
//!
//! A quoted block is the fenced code block right after a `<!-- output: SCENARIO -->` line.
//! Each scenario belongs to the test binary of one package, which runs it and hands its output
//! to [`check`]. Every line of the block must appear in the output, in order (other output
//! lines may come between them: `...` in a block marks such a gap for the reader, and a
//! `$ command` line shows what printed it), after
//! volatile values on both sides (times, ports, fingerprints, sizes, random bytes) are made
//! placeholders. Inside a line, `…` stands for any text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

/// Every scenario the docs may quote, and the package whose tests run it.
pub const SCENARIOS: [(&str, &str); 20] = [
    ("certificate", "certificate"),
    ("certificate lab", "certificate"),
    ("certificate doctor --host api.internal", "certificate"),
    ("certificate ca rotate", "certificate"),
    ("certificate list, during a rotation", "certificate"),
    ("certificate doctor, during a rotation", "certificate"),
    (
        "certificate ca retire, leaves still on the old CA",
        "certificate",
    ),
    ("certificate ca retire", "certificate"),
    ("certificate verify server --host localhost", "certificate"),
    (
        "certificate verify server --host localhost --at a date past its end",
        "certificate",
    ),
    ("client -c b, the server allowing only client-a", "client"),
    ("client audit, our server with --crl", "client"),
    ("client -c=a", "client"),
    ("client --no-cert", "client"),
    ("client --no-cert --tls-version 1.2", "client"),
    ("client -c a --trace", "client"),
    ("server log", "server"),
    ("server debug log --no-cert", "server"),
    ("server log, a CA file others can write", "server"),
    ("tour", "mtls"),
];

/// Runs `cmd` as `cargo run -p PACKAGE` would (the docs quote the tools run that way, and
/// their hints name the programs as they were run).
pub fn as_cargo_runs<'a>(
    cmd: &'a mut std::process::Command,
    package: &str,
) -> &'a mut std::process::Command {
    cmd.env("CARGO", "cargo").env("CARGO_PKG_NAME", package)
}

/// One quoted block.
#[derive(Debug)]
pub struct Quoted {
    /// `README.md:123`.
    pub place: String,
    pub scenario: String,
    pub lines: Vec<String>,
}

/// The workspace's root folder.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/support is two folders below the root")
        .to_path_buf()
}

/// Every quoted block of README.md and docs/*.md.
pub fn quoted() -> Vec<Quoted> {
    let root = root();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    docs.sort();
    files.extend(
        docs.into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "md")),
    );
    let mut all = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read the doc");
        let name = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        all.extend(blocks(&name, &text));
    }
    all
}

fn blocks(name: &str, text: &str) -> Vec<Quoted> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(scenario) = lines[i]
            .trim()
            .strip_prefix("<!-- output: ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            i += 1;
            continue;
        };
        assert!(
            SCENARIOS.iter().any(|(s, _)| *s == scenario),
            "{name}:{}: no test runs the scenario {scenario:?}; add it to testkit's SCENARIOS",
            i + 1
        );
        assert!(
            lines.get(i + 1).is_some_and(|l| l.starts_with("```")),
            "{name}:{}: a fenced block must follow the output marker",
            i + 1
        );
        let body: Vec<String> = lines[i + 2..]
            .iter()
            .take_while(|l| !l.starts_with("```"))
            .map(|l| l.to_string())
            .collect();
        let place = format!("{name}:{}", i + 1);
        i += 2 + body.len();
        found.push(Quoted {
            place,
            scenario: scenario.to_string(),
            lines: body,
        });
    }
    found
}

/// Checks every block of `package`'s scenarios against the output `run` gives for it (run
/// once per scenario). Panics naming the block and the first line that no longer matches.
pub fn check(package: &str, mut run: impl FnMut(&str) -> String) {
    let mine: Vec<Quoted> = quoted()
        .into_iter()
        .filter(|q| {
            SCENARIOS
                .iter()
                .any(|(s, p)| *s == q.scenario && *p == package)
        })
        .collect();
    assert!(
        !mine.is_empty(),
        "the docs quote nothing that {package}'s tests run"
    );
    let mut outputs: BTreeMap<String, String> = BTreeMap::new();
    for q in &mine {
        let output = outputs
            .entry(q.scenario.clone())
            .or_insert_with(|| run(&q.scenario));
        if let Err(why) = matches(&q.lines, output) {
            panic!(
                "{} (output of {:?}) no longer matches what the tool prints: {why}\n\
                 the tool printed:\n{output}",
                q.place, q.scenario
            );
        }
    }
}

/// Each quoted line (but `...`) matches an output line, in order.
fn matches(quoted: &[String], output: &str) -> Result<(), String> {
    let actual: Vec<String> = output.lines().map(normalize).collect();
    let mut next = 0;
    // `...` marks a gap, `$ command` the command that printed the block.
    let shown = quoted
        .iter()
        .filter(|l| l.trim() != "..." && !l.starts_with("$ "));
    for line in shown {
        let want = normalize(line);
        if want.is_empty() {
            continue;
        }
        match actual[next..].iter().position(|a| same(&want, a)) {
            Some(at) => next += at + 1,
            None => {
                return Err(format!(
                    "no line (after the ones matched so far) is {want:?}"
                ));
            }
        }
    }
    Ok(())
}

/// `want` equals `actual`, where `…` in `want` matches any text.
fn same(want: &str, actual: &str) -> bool {
    let parts: Vec<&str> = want.split('…').collect();
    if parts.len() == 1 {
        return want == actual;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !actual.starts_with(first) || !actual.ends_with(last) {
        return false;
    }
    let mut rest = &actual[first.len()..actual.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// Volatile values as placeholders, trailing space trimmed.
fn normalize(line: &str) -> String {
    static RULES: LazyLock<Vec<(Regex, &str)>> = LazyLock::new(|| {
        [
            (
                r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z| UTC)?",
                "<time>",
            ),
            (r"\d+ (days?|hours?|minutes?) left", "<n> left"),
            (r"\b\d+\.\d+s\b", "<t>s"),
            (r"([0-9A-F]{2}:){31}[0-9A-F]{2}", "<sha256>"),
            (r"\b[0-9A-F]{2}(:[0-9A-F]{2}){7,30}\b", "<serial>"),
            (r"\b[0-9a-f]{64}\b", "<random>"),
            (r"(127\.0\.0\.1|localhost|\[::1\]):\d+", "$1:<port>"),
            (r"\b\d+ bytes?\b", "<n> bytes"),
            (r"\blength=\d+", "length=<n>"),
            (r"\brecords=\d+", "records=<n>"),
            (r"/tmp/[^/\s]+/", "<tmp>/"),
        ]
        .into_iter()
        .map(|(re, to)| (Regex::new(re).expect("a valid pattern"), to))
        .collect()
    });
    let mut line = line.trim_end().to_string();
    for (re, to) in RULES.iter() {
        line = re.replace_all(&line, *to).into_owned();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_match_in_order_with_gaps_wildcards_and_placeholders() {
        let output = "a\nvalid 2026-11-27 19:11:37 UTC to 2027-11-27 19:16:37 UTC\nx\nport 127.0.0.1:41234 ok";
        let quoted = |lines: &[&str]| lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        assert!(matches(&quoted(&["a", "...", "port 127.0.0.1:8443 ok"]), output).is_ok());
        assert!(matches(&quoted(&["valid 2020-01-01 00:00:00 UTC to …"]), output).is_ok());
        assert!(
            matches(&quoted(&["x", "a"]), output).is_err(),
            "order matters"
        );
        assert!(matches(&quoted(&["b"]), output).is_err());
        assert!(same("…DEBUG x", "2026 DEBUG x"));
        assert!(!same("…DEBUG x", "2026 INFO x"));
    }
}
