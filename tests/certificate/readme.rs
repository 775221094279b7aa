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
    let rotation = Rotation::run();
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
        "certificate ca rotate" => rotation.rotate.clone(),
        "certificate list, during a rotation" => rotation.list.clone(),
        "certificate doctor, during a rotation" => rotation.doctor.clone(),
        "certificate ca retire, leaves still on the old CA" => rotation.refused.clone(),
        "certificate ca retire" => rotation.retire.clone(),
        other => panic!("the certificate tests do not run {other:?}"),
    });
}

/// What the docs quote of a CA rotation, run in order in a folder of its own: rotate, the
/// overlap (list, doctor, a retirement refused while leaves need the old CA), renew every
/// leaf, retire.
struct Rotation {
    rotate: String,
    list: String,
    doctor: String,
    /// stderr of the refused `ca retire`.
    refused: String,
    retire: String,
}

impl Rotation {
    fn run() -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let certificate = |args: &[&str], code: i32| {
            let out = run(as_cargo_runs(&mut Command::new(CERTIFICATE), "certificate")
                .args(args)
                .current_dir(tmp.path()));
            assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out));
            out
        };
        let stdout =
            |args: &[&str]| String::from_utf8_lossy(&certificate(args, 0).stdout).into_owned();
        stdout(&[]);
        let rotate = stdout(&["ca", "rotate"]);
        let list = stdout(&["list"]);
        let doctor = stdout(&["doctor"]);
        let refused =
            String::from_utf8_lossy(&certificate(&["ca", "retire"], 1).stderr).into_owned();
        for leaf in ["server", "client-a", "client-b"] {
            stdout(&["renew", leaf]);
        }
        let retire = stdout(&["ca", "retire"]);
        Self {
            rotate,
            list,
            doctor,
            refused,
            retire,
        }
    }
}
