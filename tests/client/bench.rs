//! `client bench` against the library's server on a free port (and `openssl s_server` for
//! plain TLS), certificates minted per test: `--requests N` counts exactly N operations in
//! every mode, text and JSON alike; `--compare` measures four rows or says why plain TLS
//! cannot be; failures are counted by the very words `client` prints for them; a server
//! beyond loopback and out-of-range bounds are refused before anything is sent. Never a
//! timing: only counts, reasons and exit codes.

use std::process::{Command, Output};

use serde_json::Value;
use testkit::{InProcessServer, PeerServer, Pki, run, server_settings, text, utf8};

use crate::{CLIENT, client, error_line, error_line_with, json_report, server_presenting};

/// Operations per run: enough for every worker to make several, few enough to stay quick.
const N: u64 = 24;

/// Runs `client bench --certs DIR` with `args` after.
fn bench(pki: &Pki, args: &[&str]) -> Output {
    run(Command::new(CLIENT)
        .args(["bench", "--certs", utf8(pki.dir())])
        .args(args)
        .env("RUST_LOG", "warn"))
}

/// `--url URL --requests N --connections 3`, then `extra`.
fn counted<'a>(url: &'a str, n: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--url", url, "--requests", n, "--connections", "3"];
    args.extend_from_slice(extra);
    args
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn number(value: &Value, pointer: &str) -> u64 {
    value
        .pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no number at {pointer}: {value:#}"))
}

/// What `client` prints for one request with `args`, without `error: `: the words a bench
/// failure must be counted by.
fn client_says(pki: &Pki, args: &[&str]) -> String {
    let line = error_line(&client(pki.dir(), args));
    line.trim_start_matches("error: ").to_string()
}

#[test]
fn bench_requests_n_counts_exactly_n_operations_in_every_mode() {
    let pki = Pki::demo();
    let server = InProcessServer::start(server_settings(&pki));
    let url = server.url("localhost");
    let n = N.to_string();
    for mode in ["full", "resumed", "keepalive"] {
        let out = bench(&pki, &counted(&url, &n, &["-c", "a", "--mode", mode]));
        assert!(out.status.success(), "{mode}: {}", text(&out));
        let report = stdout(&out);
        assert!(
            report.contains(&format!("operations:  {N} in ")),
            "{mode}: {report}"
        );
        assert!(
            report.contains(&format!(": {N} succeeded, 0 failed\n")),
            "{mode}: {report}"
        );
        assert!(report.contains("failures:    none"), "{mode}: {report}");

        let json = json_report(
            &bench(
                &pki,
                &counted(&url, &n, &["-c", "a", "--mode", mode, "--json"]),
            ),
            0,
        );
        assert_eq!(json["mode"], mode, "{json:#}");
        assert_eq!(json["client_certificate"], true, "{json:#}");
        assert_eq!(number(&json, "/bound/requests"), N, "{json:#}");
        assert_eq!(number(&json, "/operations/attempted"), N, "{json:#}");
        assert_eq!(number(&json, "/operations/succeeded"), N, "{json:#}");
        assert_eq!(number(&json, "/operations/failed"), 0, "{json:#}");
        assert_eq!(number(&json, "/operations/unfinished"), 0, "{json:#}");
        assert_eq!(json["failures"], Value::Array(Vec::new()), "{json:#}");
        assert!(json["latency_ms"]["p50"].is_number(), "{json:#}");
        let handshakes = number(&json, "/handshakes");
        let resumed = number(&json, "/resumed");
        match mode {
            "full" => {
                assert_eq!(handshakes, N, "{json:#}");
                assert_eq!(resumed, 0, "no resumption in full mode: {json:#}");
            }
            "resumed" => {
                assert_eq!(handshakes, N, "{json:#}");
                // Each worker's first handshake is a full one.
                assert!(resumed > 0 && resumed <= N, "{json:#}");
                assert!(
                    json["resumption"]
                        .as_str()
                        .is_some_and(|s| s.contains(&format!("{resumed} of {N} handshakes"))),
                    "{json:#}"
                );
            }
            _ => {
                // One handshake per connection, at most one connection per worker.
                assert!((1..=3).contains(&handshakes), "{json:#}");
                assert_eq!(resumed, 0, "{json:#}");
            }
        }
    }
}

#[test]
fn bench_duration_ends_the_run_and_every_operation_started_is_counted() {
    let pki = Pki::demo();
    let server = InProcessServer::start(server_settings(&pki));
    let url = server.url("127.0.0.1");
    let args = [
        "-c",
        "a",
        "--url",
        &url,
        "--mode",
        "keepalive",
        "--connections",
        "2",
        "--duration",
        "300ms",
        "--json",
    ];
    let json = json_report(&bench(&pki, &args), 0);
    assert_eq!(json["bound"]["duration_s"], 0.3, "{json:#}");
    let attempted = number(&json, "/operations/attempted");
    assert!(attempted > 0, "{json:#}");
    assert_eq!(
        number(&json, "/operations/succeeded"),
        attempted,
        "{json:#}"
    );
    assert_eq!(json["cut_short"], Value::Null, "{json:#}");
}

#[test]
fn bench_compare_measures_four_rows_with_a_plain_tls_server_beside_ours() {
    let pki = Pki::demo();
    let server = InProcessServer::start(server_settings(&pki));
    // s_server without -verify asks no client for a certificate.
    let plain = PeerServer::s_server(&pki, &[]);
    let (url, plain_url) = (server.url("localhost"), plain.url());
    let n = "20";
    let compare = ["-c", "a", "--compare", "--plain-url", &plain_url];
    let out = bench(&pki, &counted(&url, n, &compare));
    assert!(out.status.success(), "{}", text(&out));
    let report = stdout(&out);
    for label in [
        "mTLS, full handshakes",
        "mTLS, resumed",
        "mTLS, keep-alive",
        "plain TLS, full handshakes",
    ] {
        let row = report
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no row {label:?}:\n{report}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[cells.len() - 2..], [n, "0"], "{row}\n{report}");
    }
    assert!(
        report.contains("client authentication: full mTLS"),
        "{report}"
    );
    // s_server is another server, answering HTTP/1.0: the table must not hide it.
    assert!(report.contains("Not like for like"), "{report}");

    let mut json_args = compare.to_vec();
    json_args.push("--json");
    let json = json_report(&bench(&pki, &counted(&url, n, &json_args)), 0);
    let rows = json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 4, "{json:#}");
    for (row, (mode, cert)) in rows.iter().zip([
        ("full", true),
        ("resumed", true),
        ("keepalive", true),
        ("full", false),
    ]) {
        assert_eq!(row["mode"], mode, "{row:#}");
        assert_eq!(row["client_certificate"], cert, "{row:#}");
        assert_eq!(number(row, "/operations/succeeded"), 20, "{row:#}");
        assert_eq!(number(row, "/operations/failed"), 0, "{row:#}");
    }
    assert_eq!(rows[3]["url"], plain_url.as_str(), "{json:#}");
    assert_eq!(json["costs"].as_array().map(Vec::len), Some(3), "{json:#}");
}

#[test]
fn bench_compare_against_our_server_alone_says_why_plain_tls_is_not_possible() {
    let pki = Pki::demo();
    let server = InProcessServer::start(server_settings(&pki));
    let url = server.url("localhost");
    let out = bench(
        &pki,
        &counted(&url, "20", &["-c", "a", "--compare", "--json"]),
    );
    let json = json_report(&out, 0);
    let rows = json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 4, "{json:#}");
    for row in &rows[..3] {
        assert_eq!(number(row, "/operations/succeeded"), 20, "{row:#}");
    }
    let why = rows[3]["not_possible"].as_str().expect("why not");
    assert!(
        why.starts_with(
            "not possible: the server requires a client certificate (it refused a connection \
             without one: certificate_required)"
        ),
        "{why}"
    );
    assert!(why.contains("give --plain-url"), "{why}");
    assert_eq!(rows[3]["label"], "plain TLS, full handshakes", "{json:#}");

    // --compare measures what a client certificate costs: it needs one.
    let error = error_line_with(&bench(&pki, &["--no-cert", "--compare"]), 2);
    assert!(error.contains("needs a client certificate"), "{error}");
}

#[test]
fn bench_counts_refusals_without_a_certificate_by_the_clients_own_words_and_exits_1() {
    let pki = Pki::demo();
    let server = InProcessServer::start(server_settings(&pki));
    let url = server.url("localhost");
    let says = client_says(&pki, &["--no-cert", "--url", &url]);
    assert!(
        says.starts_with("the server refused our certificate (alert: certificate_required)"),
        "{says}"
    );

    let out = bench(&pki, &counted(&url, "10", &["--no-cert"]));
    let error = error_line(&out);
    assert!(error.contains("10 operations failed"), "{error}");
    let report = stdout(&out);
    assert!(report.contains(": 0 succeeded, 10 failed"), "{report}");
    assert!(
        report.contains("10 x the server refused our certificate"),
        "{report}"
    );

    let json = json_report(
        &bench(&pki, &counted(&url, "10", &["--no-cert", "--json"])),
        1,
    );
    assert_eq!(number(&json, "/operations/failed"), 10, "{json:#}");
    assert_eq!(
        json["failures"],
        serde_json::json!([{ "reason": says, "count": 10 }]),
        "{json:#}"
    );
}

#[test]
fn bench_counts_a_server_we_do_not_trust_by_the_clients_own_words() {
    let pki = Pki::demo();
    let other = pki.other_ca("other-ca");
    let sans = ["DNS:localhost", "IP:127.0.0.1"];
    let server = server_presenting(&pki, &other, "impostor", &sans);
    let url = server.url("localhost");
    let says = client_says(&pki, &["-c", "a", "--url", &url]);
    assert!(
        says.contains("the server's certificate was issued by a CA we do not trust"),
        "{says}"
    );

    let out = bench(&pki, &counted(&url, "6", &["-c", "a", "--json"]));
    let json = json_report(&out, 1);
    assert_eq!(number(&json, "/operations/succeeded"), 0, "{json:#}");
    assert_eq!(
        json["failures"],
        serde_json::json!([{ "reason": says, "count": 6 }]),
        "{json:#}"
    );
}

#[test]
fn bench_refuses_a_server_beyond_loopback_without_allow_remote() {
    let pki = Pki::demo();
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never a real host, and nothing is sent.
    let remote = "https://192.0.2.1:8443/";
    for args in [
        vec!["-c", "a", "--url", remote, "--requests", "5"],
        vec![
            "-c",
            "a",
            "--compare",
            "--plain-url",
            remote,
            "--requests",
            "5",
        ],
    ] {
        let error = error_line_with(&bench(&pki, &args), 2);
        assert!(
            error.contains("192.0.2.1, which is not this machine"),
            "{error}"
        );
        assert!(error.contains("only with --allow-remote"), "{error}");
    }
}

#[test]
fn bench_refuses_bounds_out_of_range_and_missing_files_with_exit_2() {
    let pki = Pki::demo();
    // Checked before anything is resolved or sent: no server needed.
    for (args, says) in [
        (
            vec!["--connections", "0"],
            "--connections 0 is out of range: from 1 to 1024",
        ),
        (
            vec!["--connections", "1025"],
            "--connections 1025 is out of range: from 1 to 1024",
        ),
        (
            vec!["--requests", "0"],
            "--requests 0 is out of range: from 1 to",
        ),
        (
            vec!["--duration", "11m"],
            "--duration 11m is out of range: more than 0 and at most 10m",
        ),
        (
            vec!["--timeout", "0s"],
            "--timeout 0 is out of range: more than 0 and at most 1m",
        ),
    ] {
        let mut all = vec!["-c", "a"];
        all.extend(args);
        let error = error_line_with(&bench(&pki, &all), 2);
        assert!(error.contains(says), "{all:?}: {error}");
    }
    // A run that cannot start is exit 2 too, with the file named.
    let empty = tempfile::tempdir().expect("temp dir");
    let out = run(Command::new(CLIENT)
        .args(["bench", "-c", "a", "--requests", "1", "--certs"])
        .arg(empty.path()));
    let error = error_line_with(&out, 2);
    assert!(error.contains("ca.crt: no such file"), "{error}");
}
