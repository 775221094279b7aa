//! Who may change what the server trusts: the folders the tool makes are 0700 and its
//! files keep their modes whatever the umask, and doctor names a CA file, CRL or folder
//! other users may write.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use mtls::files::CertsDir;
use mtls::perms::mode;
use testkit::{run, text, utf8 as s};

use crate::CERTIFICATE;
use crate::folder::Folder;

/// Runs the binary with `args` under `umask`.
fn with_umask(umask: &str, args: &[&str]) -> Output {
    let out = run(Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(CERTIFICATE)
        .args(args));
    assert!(
        out.status.success(),
        "umask {umask} {args:?}: {}",
        text(&out)
    );
    out
}

fn mode_is(path: &Path, expected: u32) {
    let got = mode(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(got, expected, "{} has mode {got:o}", path.display());
}

fn chmod(path: &Path, bits: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(bits)).expect("chmod");
}

#[test]
fn folders_are_0700_and_files_keep_their_modes_whatever_the_umask() {
    for umask in ["000", "077"] {
        let tmp = tempfile::tempdir().expect("temp dir");
        let top = tmp.path().join("a");
        let dir = top.join("b").join("certs");
        with_umask(umask, &["--out", s(&dir)]);
        for folder in [&top, &top.join("b"), &dir] {
            mode_is(folder, 0o700);
        }
        for stem in ["ca", "server", "client-a", "client-b"] {
            mode_is(&dir.join(format!("{stem}.key")), 0o600);
            mode_is(&dir.join(format!("{stem}.crt")), 0o644);
        }
        mode_is(&CertsDir::new(&dir).lock_file(), 0o600);

        with_umask(umask, &["lab", "--certs", s(&dir)]);
        let lab = dir.join("lab");
        mode_is(&lab, 0o700);
        mode_is(&lab.join("client-expired.key"), 0o600);
        mode_is(&lab.join("client-expired.crt"), 0o644);
        mode_is(&lab.join(mtls::ca::lab::REVOKED_CRL), 0o644);

        with_umask(umask, &["revoke", "client-b", "--certs", s(&dir)]);
        mode_is(&dir.join("crl.pem"), 0o644);
        with_umask(
            umask,
            &["p12", "client-a", "--no-password", "--certs", s(&dir)],
        );
        mode_is(&dir.join("client-a.p12"), 0o600);
    }
}

#[test]
fn a_folder_the_user_made_keeps_its_mode() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("certs");
    std::fs::create_dir(&dir).expect("mkdir");
    chmod(&dir, 0o750);
    with_umask("000", &["--out", s(&dir)]);
    mode_is(&dir, 0o750);
    mode_is(&dir.join("ca.key"), 0o600);
}

#[test]
fn doctor_warns_when_other_users_may_change_what_the_server_trusts() {
    let f = Folder::new(&[]);
    f.ok(&["revoke", "client-b"]);
    let report = f.ok(&["doctor"]);
    for file in [
        f.dir.display().to_string(),
        "ca.crt".into(),
        "crl.pem".into(),
    ] {
        assert!(
            report.contains(&format!("ok    {file} can be changed by its owner only")),
            "{file}:\n{report}"
        );
    }

    chmod(&f.dir, 0o777);
    chmod(&f.dir.join("ca.crt"), 0o666);
    chmod(&f.dir.join("crl.pem"), 0o646);
    let out = f.cmd(&["doctor"]);
    // Warnings: everything still works today.
    assert!(out.status.success(), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    for (file, bits, fix) in [
        (
            f.dir.display().to_string(),
            "777",
            format!("chmod go-w {}", f.dir.display()),
        ),
        (
            "ca.crt".into(),
            "666",
            format!("chmod 644 {}", f.p("ca.crt")),
        ),
        (
            "crl.pem".into(),
            "646",
            format!("chmod 644 {}", f.p("crl.pem")),
        ),
    ] {
        assert!(
            report.contains(&format!(
                "warn  {file} can be changed by other users (mode {bits})"
            )),
            "{file}:\n{report}"
        );
        assert!(report.contains(&format!("fix: {fix}")), "{fix}:\n{report}");
    }
    assert!(
        report.contains("can append a CA of their own"),
        "the warning says why:\n{report}"
    );

    // A private key others can read still fails the check.
    chmod(&f.dir.join("client-a.key"), 0o640);
    let out = f.cmd(&["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("FAIL  client-a.key has mode 640"),
        "{}",
        text(&out)
    );
}
