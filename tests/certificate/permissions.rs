//! Who may change what the server trusts: doctor names a CA file, CRL or folder other
//! users may write.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use testkit::text;

use crate::folder::Folder;

fn chmod(path: &Path, bits: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(bits)).expect("chmod");
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
