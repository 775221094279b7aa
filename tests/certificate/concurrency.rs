//! Many `certificate` runs on one folder at once: each command that changes the folder
//! holds its lock, so no run's work is lost and no file pair is mixed from two runs.

use std::process::{Command, Output, Stdio};

use mtls::Failure;
use mtls::files::CertsDir;
use rustls::AlertDescription;
use testkit::{
    InProcessServer, Lines, fetch, openssl_ok, openssl_x509, poll, server_settings_in, text,
    utf8 as s,
};

use crate::CERTIFICATE;
use crate::folder::Folder;

/// Runs `args` on `f` from one thread each, all at once, and returns their outputs in order.
fn all_at_once(f: &Folder, runs: &[Vec<&str>]) -> Vec<Output> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .iter()
            .map(|args| scope.spawn(move || f.cmd(args)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a run's thread"))
            .collect()
    })
}

/// The certificate's serial as openssl prints it (upper-case hex).
fn serial(f: &Folder, name: &str) -> String {
    let line = openssl_x509(&f.dir.join(format!("{name}.crt")), &["-serial"]);
    line.strip_prefix("serial=")
        .unwrap_or_else(|| panic!("no serial in {line:?}"))
        .to_string()
}

#[test]
fn twelve_concurrent_revokes_all_land_in_the_crl_and_the_server_refuses_each() {
    let f = Folder::new(&[]);
    let names: Vec<String> = (1..=12).map(|i| format!("c{i}")).collect();
    for name in &names {
        f.ok(&["issue", name, "--client"]);
    }
    let serials: Vec<String> = names.iter().map(|n| serial(&f, n)).collect();

    let runs: Vec<Vec<&str>> = names.iter().map(|n| vec!["revoke", n.as_str()]).collect();
    for (name, out) in names.iter().zip(all_at_once(&f, &runs)) {
        assert!(out.status.success(), "revoke {name}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("Revoked {name} ")),
            "revoke {name}: {}",
            text(&out)
        );
    }

    let crl = openssl_ok(&[
        "crl",
        "-in",
        &f.p("crl.pem"),
        "-CAfile",
        &f.p("ca.crt"),
        "-noout",
        "-text",
    ]);
    assert!(crl.contains("verify OK"), "{crl}");
    for (name, serial) in names.iter().zip(&serials) {
        assert!(
            crl.contains(&format!("Serial Number: {serial}")),
            "{name} ({serial}) is missing from crl.pem:\n{crl}"
        );
    }
    assert_eq!(crl.matches("Serial Number:").count(), 12, "{crl}");

    let mut settings = server_settings_in(&f.dir);
    settings.crls = vec![f.dir.join("crl.pem")];
    let server = InProcessServer::start(settings);
    let url = server.url("localhost");
    for name in &names {
        let err = fetch(
            &url,
            f.dir.join("ca.crt"),
            Some((
                f.dir.join(format!("{name}.crt")),
                f.dir.join(format!("{name}.key")),
            )),
        )
        .expect_err("a revoked client must be refused");
        assert_eq!(
            err.failure(),
            Some(&Failure::PeerRefused {
                alert: AlertDescription::CertificateRevoked
            }),
            "{name}: {err}"
        );
    }
    // The list covers the CA, so a client it does not name still gets in.
    let ok = fetch(
        &url,
        f.dir.join("ca.crt"),
        Some((f.dir.join("client-a.crt"), f.dir.join("client-a.key"))),
    )
    .expect("Client A is not revoked");
    assert_eq!(ok.status.as_u16(), 200);
}

#[test]
fn concurrent_forced_issues_leave_a_key_and_certificate_from_the_same_run() {
    let f = Folder::new(&[]);
    f.ok(&["issue", "x", "--client"]);
    let runs: Vec<Vec<&str>> = (0..12)
        .map(|_| vec!["issue", "x", "--client", "--force"])
        .collect();
    // Interleavings differ from round to round; a few rounds make a mixed pair likely to
    // show if runs are not serialised.
    for round in 1..=4 {
        for out in all_at_once(&f, &runs) {
            assert!(out.status.success(), "round {round}: {}", text(&out));
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("Replaced"),
                "round {round}: {}",
                text(&out)
            );
        }
        if let Err(e) = mtls::tls::Identity::load(&f.dir.join("x.crt"), &f.dir.join("x.key"), "x") {
            panic!("round {round}: x.key does not belong to x.crt: {e}");
        }
        // openssl agrees: the certificate's public key is the key's.
        let from_cert = openssl_ok(&["x509", "-in", &f.p("x.crt"), "-noout", "-pubkey"]);
        let from_key = openssl_ok(&["pkey", "-in", &f.p("x.key"), "-pubout"]);
        assert_eq!(from_cert, from_key, "round {round}");
        assert!(
            f.leftovers().is_empty(),
            "round {round}: {:?}",
            f.leftovers()
        );
    }
}

#[test]
fn a_run_waits_while_another_holds_the_folder_and_says_so() {
    let f = Folder::new(&[]);
    // Hold the folder's lock the way another `certificate` run would.
    let held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(CertsDir::new(&f.dir).lock_file())
        .expect("open the folder's lock file");
    held.lock().expect("hold the folder's lock");

    let mut child = Command::new(CERTIFICATE)
        .args(["revoke", "client-b", "--certs", s(&f.dir)])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the revoke");
    let log = Lines::collect(child.stderr.take().expect("stderr"));
    log.wait_for(&["waiting for another `certificate` run to finish with the folder"]);
    assert!(
        !f.dir.join("crl.pem").exists(),
        "the revoke wrote crl.pem while another run held the folder"
    );

    drop(held);
    let status = poll("the revoke to finish once the folder is free", || {
        child.try_wait().expect("wait for the revoke")
    });
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut stdout)
        .expect("read stdout");
    assert!(status.success(), "{stdout}\n{}", log.all());
    assert!(stdout.contains("Revoked client-b"), "{stdout}");
    let crl = openssl_ok(&["crl", "-in", &f.p("crl.pem"), "-noout", "-text"]);
    assert!(
        crl.contains(&format!("Serial Number: {}", serial(&f, "client-b"))),
        "{crl}"
    );
}
