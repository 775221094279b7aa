//! The CA tool's output quoted in the docs still matches what it prints.

use std::process::Command;

use testkit::readme::{self, as_cargo_runs};
use testkit::{run, text};

use crate::CERTIFICATE;

#[test]
fn the_readme_quotes_the_ca_tool_as_it_prints() {
    // A fresh folder, as a newcomer's clone: the tool writes certs/ below it.
    let tmp = tempfile::tempdir().expect("temp dir");
    let certificate = |args: &[&str]| {
        let out = run(as_cargo_runs(&mut Command::new(CERTIFICATE), "certificate")
            .args(args)
            .current_dir(tmp.path()));
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let certificate_failing = |args: &[&str]| {
        let out = run(as_cargo_runs(&mut Command::new(CERTIFICATE), "certificate")
            .args(args)
            .current_dir(tmp.path()));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let minted = certificate(&[]);
    readme::check("certificate", |scenario| match scenario {
        "certificate" => minted.clone(),
        "certificate lab" => certificate(&["lab"]),
        "certificate doctor --host api.internal" => {
            certificate_failing(&["doctor", "--host", "api.internal"])
        }
        "certificate verify server --host localhost" => {
            certificate(&["verify", "certs/server.crt", "--host", "localhost"])
        }
        "certificate verify server --host localhost --at a date past its end" => {
            // The demo leaves live a year: a year and a month from now is past their end.
            let later = time::OffsetDateTime::now_utc() + time::Duration::days(400);
            let at = format!(
                "{}-{:02}-{:02}",
                later.year(),
                u8::from(later.month()),
                later.day()
            );
            certificate_failing(&[
                "verify",
                "certs/server.crt",
                "--host",
                "localhost",
                "--at",
                &at,
            ])
        }
        other => panic!("the certificate tests do not run {other:?}"),
    });
}
