//! Operating the PKI with the binary: rotating the CA (`ca rotate`, renew, `ca retire`),
//! short-lived certificates kept fresh by `renew --watch`, the inventory (`list`) and the
//! issuance log. Certificates are checked with openssl where it can tell.

use std::path::Path;
use std::process::{Command, Stdio};

use mtls::certinfo::CertInfo;
use mtls::files::CertsDir;
use mtls::pki::{LeafSpec, Usage, Validity};
use testkit::{Lines, openssl, poll, utf8 as s};

use crate::CERTIFICATE;
use crate::folder::Folder;

/// The certificates in a PEM file, parsed.
fn certs_in(path: &Path) -> Vec<CertInfo> {
    mtls::pem::certificates(path, "a test file")
        .expect("read the certificates")
        .iter()
        .map(|der| CertInfo::parse(der).expect("parse"))
        .collect()
}

/// openssl's verdict on `leaf` (its file carries its chain) against `ca`.
fn openssl_verifies(ca: &Path, leaf: &Path) -> bool {
    let out = openssl(&["verify", "-CAfile", s(ca), "-untrusted", s(leaf), s(leaf)]);
    out.status.success()
}

/// The issuance log's actions, in order.
fn actions(dir: &Path) -> Vec<(String, String)> {
    mtls::ca::issuance::read(&CertsDir::new(dir))
        .expect("read the log")
        .iter()
        .map(|l| {
            (
                l["action"].as_str().unwrap_or_default().to_string(),
                l["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn rotate_renew_retire_moves_every_certificate_to_the_new_ca_and_logs_each_step() {
    let f = Folder::new(&["--intermediate"]);
    f.ok(&["crl"]);
    let ca = f.dir.join("ca.crt");
    let old_root = certs_in(&ca).remove(0);

    let out = f.ok(&["ca", "rotate"]);
    assert!(out.contains("Rotated the CA"), "{out}");
    assert!(
        out.contains("Still issued by the old one (3): client-a, client-b, server"),
        "{out}"
    );
    let bundle = certs_in(&ca);
    assert_eq!(bundle.len(), 2, "ca.crt is the bundle of new and old");
    assert_eq!(bundle[0].common_name.as_deref(), Some("CA G2"));
    assert_eq!(bundle[1].sha256, old_root.sha256);
    assert_eq!(
        certs_in(&f.dir.join("ca-old.crt"))[0].sha256,
        old_root.sha256
    );
    let new_inter = certs_in(&f.dir.join("intermediate.crt")).remove(0);
    assert_eq!(new_inter.common_name.as_deref(), Some("Intermediate CA G2"));
    assert_eq!(new_inter.issuer, bundle[0].subject);
    // Old leaves verify against the bundle, for an independent verifier too.
    assert!(openssl_verifies(&ca, &f.dir.join("client-a.crt")));
    let again = f.fails(&["ca", "rotate"]);
    assert!(again.contains("still in its overlap"), "{again}");

    // doctor passes, and names what still hangs on the old CA and when that CA ends.
    let doctor = f.ok(&["doctor"]);
    for leaf in ["server.crt", "client-a.crt", "client-b.crt"] {
        assert!(
            doctor.contains(&format!("{leaf} still chains only to the old CA;")),
            "{doctor}"
        );
    }
    assert!(
        doctor.contains("the old CA (\"CA\", ca-old.crt) expires"),
        "{doctor}"
    );
    assert!(
        doctor.contains("ca-old.crt is the previous root CA"),
        "{doctor}"
    );

    let refused = f.fails(&["ca", "retire"]);
    assert!(
        refused.contains("ca-old.crt is still needed: client-a.crt, client-b.crt, server.crt"),
        "{refused}"
    );
    assert_eq!(certs_in(&ca).len(), 2, "a refused retire changes nothing");

    for leaf in ["server", "client-a", "client-b"] {
        let renewed = f.ok(&["renew", leaf]);
        assert!(
            renewed.contains("issued by intermediate (the old one came from intermediate-old"),
            "{renewed}"
        );
    }
    f.ok(&["issue", "client-c", "--client"]);
    let c = certs_in(&f.dir.join("client-c.crt"));
    assert_eq!(
        c[0].issuer, new_inter.subject,
        "new leaves come from the new CA"
    );

    let out = f.ok(&["ca", "retire"]);
    assert!(out.contains("Retired the old CA"), "{out}");
    let bundle = certs_in(&ca);
    assert_eq!(bundle.len(), 1);
    assert_eq!(bundle[0].common_name.as_deref(), Some("CA G2"));
    assert!(!f.dir.join("ca-old.crt").exists());
    let retired: Vec<String> = std::fs::read_dir(f.dir.join("retired"))
        .expect("retired/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(retired.len(), 4, "{retired:?}");
    for key in retired.iter().filter(|n| n.ends_with(".key")) {
        let mode = mtls::perms::mode(&f.dir.join("retired").join(key)).expect("mode");
        assert_eq!(mode, 0o600, "{key}");
    }
    // crl.pem keeps one list per CA still trusted.
    let lists = openssl(&["crl", "-in", &f.p("crl.pem"), "-noout", "-issuer"]);
    let crl_text = f.ok(&["inspect", &f.p("crl.pem")]);
    assert!(lists.status.success());
    assert_eq!(crl_text.matches("CA G2").count(), 2, "{crl_text}");
    assert!(!crl_text.contains("CN=CA,"), "{crl_text}");
    for leaf in ["server", "client-a", "client-c"] {
        assert!(openssl_verifies(&ca, &f.dir.join(format!("{leaf}.crt"))));
    }
    let doctor = f.ok(&["doctor"]);
    assert!(!doctor.contains("old CA"), "{doctor}");

    let log = actions(&f.dir);
    let names = |action: &str| -> Vec<String> {
        log.iter()
            .filter(|(a, _)| a == action)
            .map(|(_, n)| n.clone())
            .collect()
    };
    assert_eq!(names("rotate"), ["ca", "intermediate"]);
    assert_eq!(names("renew"), ["server", "client-a", "client-b"]);
    assert_eq!(names("retire"), ["intermediate-old", "ca-old"]);
    assert!(names("issue").contains(&"client-c".to_string()));
    let text = std::fs::read_to_string(f.dir.join("issuance.log")).expect("the log");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
}

#[test]
fn retire_with_force_leaves_old_leaves_behind_and_renew_still_rescues_them() {
    let f = Folder::new(&[]);
    f.ok(&["ca", "rotate"]);
    // Java's trust store follows ca.crt: both roots during the overlap.
    f.ok(&["p12", "--truststore", "--no-password"]);
    let store = openssl(&[
        "pkcs12",
        "-in",
        &f.p("truststore.p12"),
        "-nokeys",
        "-passin",
        "pass:",
    ]);
    let pems = String::from_utf8_lossy(&store.stdout);
    assert_eq!(pems.matches("BEGIN CERTIFICATE").count(), 2, "{pems}");
    f.ok(&["renew", "server"]);
    let out = f.ok(&["ca", "retire", "--force"]);
    assert!(
        out.contains("Retired with --force: client-a, client-b still chained only to the old CA"),
        "{out}"
    );
    assert!(!openssl_verifies(
        &f.dir.join("ca.crt"),
        &f.dir.join("client-a.crt")
    ));
    // doctor names the CA now trusted, and the fix that keeps the leaf's names: renew (from
    // the retired CA's successor), not a fresh issue with the default profile.
    let doctor = f.cmd(&["doctor"]);
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(!doctor.status.success(), "{report}");
    let failed = report
        .lines()
        .skip_while(|l| !l.contains("FAIL  client-a.crt does not verify"))
        .take(3)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        failed.contains("it trusts only \"") && failed.contains("CN=CA"),
        "{report}"
    );
    assert!(
        failed.contains("fix: ") && failed.contains("renew client-a --certs"),
        "{report}"
    );
    let renewed = f.ok(&["renew", "client-a"]);
    assert!(
        renewed.contains("the old one came from retired/ca-"),
        "{renewed}"
    );
    assert!(openssl_verifies(
        &f.dir.join("ca.crt"),
        &f.dir.join("client-a.crt")
    ));
    let again = f.fails(&["ca", "retire"]);
    assert!(again.contains("has no old CA to retire"), "{again}");
}

#[test]
fn list_and_ca_have_help_with_an_example() {
    for sub in ["list", "ca"] {
        let out = testkit::run(Command::new(CERTIFICATE).args([sub, "--help"]));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && help.contains(&format!("cargo run -p certificate -- {sub}")),
            "{sub}:\n{help}"
        );
    }
}

#[test]
fn minutes_make_short_lived_certificates_in_mint_issue_and_renew() {
    let f = Folder::new(&["--minutes", "30"]);
    let length = |name: &str| {
        let info = certs_in(&f.dir.join(format!("{name}.crt"))).remove(0);
        Validity::of(&info).length()
    };
    assert_eq!(length("client-a"), time::Duration::minutes(30));
    f.ok(&["issue", "job", "--client", "--minutes", "5"]);
    let job = certs_in(&f.dir.join("job.crt")).remove(0);
    // A quarter of the length before now, not five minutes: most of it lies ahead.
    assert_eq!(job.not_after - job.not_before, time::Duration::seconds(375));
    f.ok(&["renew", "job"]);
    assert_eq!(length("job"), time::Duration::minutes(5));
    f.ok(&["renew", "job", "--minutes", "2"]);
    assert_eq!(length("job"), time::Duration::minutes(2));
    let err = f.cmd(&["issue", "x", "--client", "--minutes", "2", "--hours", "1"]);
    assert_eq!(err.status.code(), Some(2), "--minutes and --hours conflict");
}

#[test]
fn list_shows_the_inventory_and_fails_when_something_listed_has_expired() {
    let f = Folder::new(&[]);
    f.ok(&["revoke", "client-b", "--reason", "key-compromise"]);
    let out = f.ok(&["list"]);
    let header: Vec<&str> = out
        .lines()
        .next()
        .expect("a header")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "IDENTITY", "ISSUER", "EXPIRES", "IN", "REVOKED"]
    );
    let row = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in\n{out}"))
            .to_string()
    };
    assert!(row("client-b").ends_with("yes (key-compromise)"), "{out}");
    assert!(row("client-a").contains("Client A (spiffe://mtls.demo/client-a)"));
    assert!(row("client-a").contains("  ca  "), "{out}");
    assert!(row("ca").contains("(itself)"), "{out}");
    assert!(f.ok(&["list", "--expiring", "7d"]).contains("Nothing in"));

    // A certificate that ended a minute ago, issued by the folder's CA (which began five
    // minutes ago).
    let dir = CertsDir::new(&f.dir);
    let now = time::OffsetDateTime::now_utc();
    let ca = mtls::ca::folder::load_authority(&dir, "ca").expect("the CA");
    let old = ca
        .issue(&LeafSpec {
            subject: mtls::pki::demo_subject("Old Job Company", "old-job"),
            sans: vec![mtls::pki::parse_san("URI:spiffe://mtls.demo/old-job").expect("san")],
            usage: Usage::Client,
            key_type: Default::default(),
            validity: Validity {
                not_before: now - time::Duration::minutes(4),
                not_after: now - time::Duration::minutes(1),
            },
        })
        .expect("issue");
    mtls::write::publish_pair(
        &dir.key("old-job"),
        &old.key_pem,
        &dir.cert("old-job"),
        &old.cert_pem,
        false,
    )
    .expect("write");
    let out = f.cmd(&["list", "--expiring", "7d", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an expired certificate fails the run"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let listed = json["certificates"].as_array().expect("an array");
    assert_eq!(listed.len(), 1, "{json:#}");
    assert_eq!(listed[0]["name"], "old-job");
    assert_eq!(listed[0]["expired"], true);
    assert_eq!(listed[0]["issuer"], "ca");
    let all = f.cmd(&["list", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&all.stdout).expect("JSON");
    let b = json["certificates"]
        .as_array()
        .expect("an array")
        .iter()
        .find(|c| c["name"] == "client-b")
        .expect("client-b");
    assert_eq!(b["revoked"], true);
    assert_eq!(b["revocation_reason"], "key-compromise");
}

#[test]
fn the_issuance_log_has_one_line_per_change_with_public_facts_only() {
    let f = Folder::new(&[]);
    f.ok(&["issue", "batch", "--client", "--hours", "8"]);
    f.ok(&["renew", "batch"]);
    f.ok(&["revoke", "batch"]);
    let lines = mtls::ca::issuance::read(&CertsDir::new(&f.dir)).expect("read");
    let actions: Vec<&str> = lines.iter().filter_map(|l| l["action"].as_str()).collect();
    assert_eq!(
        actions,
        [
            "issue", "issue", "issue", "issue", "issue", "renew", "revoke"
        ],
        "the mint's four, then issue, renew, revoke"
    );
    let renew = &lines[5];
    let batch = certs_in(&f.dir.join("batch.crt")).remove(0);
    assert_eq!(renew["name"], "batch");
    assert_eq!(renew["serial"], batch.serial_hex());
    assert_eq!(renew["sha256"], batch.fingerprint());
    assert_eq!(renew["issuer_name"], "ca");
    assert_eq!(renew["sans"][0], "URI:spiffe://mtls.demo/batch");
    assert!(
        renew["not_after"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert!(
        renew["user"].is_string() || renew["uid"].is_number(),
        "{renew}"
    );
    assert_eq!(lines[6]["reason"], "unspecified");
    assert_eq!(
        mtls::perms::mode(&f.dir.join("issuance.log")).expect("mode"),
        0o644
    );
}

/// `certificate renew NAME --watch ...` on `f`, its stdout and stderr read line by line.
struct Watcher {
    child: std::process::Child,
    out: Lines,
    err: Lines,
}

impl Watcher {
    fn start(f: &Folder, args: &[&str]) -> Self {
        let mut child = Command::new(CERTIFICATE)
            .args(["renew", "--watch", "--certs", s(&f.dir)])
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the watch");
        let out = Lines::collect(child.stdout.take().expect("stdout"));
        let err = Lines::collect(child.stderr.take().expect("stderr"));
        Self { child, out, err }
    }

    /// SIGTERM, as a service manager stops it: the watch ends cleanly (exit 0).
    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .expect("kill")
                .success()
        );
        assert_eq!(self.exit_code(), Some(0), "{}", self.err.all());
    }

    fn exit_code(&mut self) -> Option<i32> {
        let log = format!("{}\n{}", self.out.all(), self.err.all());
        poll(&format!("the watch to exit; it said:\n{log}"), || {
            self.child.try_wait().expect("wait")
        })
        .code()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn renew_watch_renews_a_one_minute_certificate_early_and_stops_cleanly_on_sigterm() {
    let f = Folder::new(&[]);
    f.ok(&["issue", "job", "--client", "--minutes", "1"]);
    let mut watch = Watcher::start(&f, &["job", "--renew-at", "5%"]);
    watch
        .out
        .wait_for(&["watching job.crt", "(5% of its lifetime)"]);
    watch.out.wait_for_count(&["renewed job: serial "], 2);
    // The file holds a renewal the watch announced, as long as the one it replaced.
    let current = certs_in(&f.dir.join("job.crt")).remove(0);
    watch
        .out
        .wait_for(&[&format!("renewed job: serial {}", current.serial_hex())]);
    assert_eq!(Validity::of(&current).length(), time::Duration::minutes(1));
    let renewals = actions(&f.dir)
        .iter()
        .filter(|(a, n)| a == "renew" && n == "job")
        .count();
    assert!(renewals >= 2, "{renewals} renew lines in the issuance log");
    watch.terminate();
    watch.out.wait_for(&["stopped watching job ("]);
}

#[test]
fn renew_watch_with_a_shorter_lifetime_renews_a_long_lived_leaf_at_once() {
    let f = Folder::new(&[]);
    f.ok(&["issue", "job", "--client"]);
    let mut watch = Watcher::start(&f, &["job", "--minutes", "2"]);
    watch.out.wait_for(&[
        "watching job.crt",
        "longer than the 2 minutes asked for, so it is renewed now",
    ]);
    watch.out.wait_for(&["renewed job: serial "]);
    let current = certs_in(&f.dir.join("job.crt")).remove(0);
    assert_eq!(Validity::of(&current).length(), time::Duration::minutes(2));
    // The new leaf is due at two thirds of its two minutes, not at once again.
    assert_eq!(watch.out.count(&["so it is renewed now"]), 1);
    watch.terminate();
}

#[test]
fn renew_watch_exits_with_the_reason_when_the_ca_key_is_gone() {
    let f = Folder::new(&[]);
    f.ok(&["issue", "job", "--client", "--minutes", "1"]);
    std::fs::remove_file(f.dir.join("ca.key")).expect("remove the CA's key");
    let mut watch = Watcher::start(&f, &["job", "--renew-at", "5"]);
    assert_eq!(watch.exit_code(), Some(1));
    watch.err.wait_for(&[
        "error: job can no longer be renewed, so the watch stops: cannot read the CA's private key",
        "ca.key",
        // Not "create the demo certificates": ca.crt is there, and that would refuse.
        "so the key went missing: restore it from a backup",
    ]);
}
