//! What the CA tool leaves on disk when writing goes wrong: a full disk, a symbolic link
//! where a file goes, a key or certificate left without its partner. A key and its
//! certificate are published together or not at all.

use std::process::{Command, Output};

use mtls::tls::Identity;
use testkit::{run, text, utf8 as s};

use crate::CERTIFICATE;
use crate::folder::Folder;

/// Runs the binary with `args` under `ulimit -f blocks` (SIGXFSZ ignored, so a write past
/// the limit fails with "file too large" as on a full disk). dash, our /bin/sh, counts in
/// 512-byte blocks (bash in 1024).
fn with_file_limit(blocks: u32, args: &[&str]) -> Output {
    run(Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -f {blocks}; trap '' XFSZ; exec \"$0\" \"$@\""
        ))
        .arg(CERTIFICATE)
        .args(args))
}

fn size(f: &Folder, name: &str) -> u64 {
    std::fs::metadata(f.dir.join(name)).expect("stat").len()
}

fn matches(f: &Folder, stem: &str) -> bool {
    Identity::load(
        &f.dir.join(format!("{stem}.crt")),
        &f.dir.join(format!("{stem}.key")),
        stem,
    )
    .is_ok()
}

#[test]
fn an_issue_that_runs_out_of_space_leaves_nothing_and_the_retry_works() {
    // Leaves carry the intermediate, so a certificate file (about 1.4 kB) is well over one
    // 512-byte block while its key (about 240 bytes) fits.
    let f = Folder::new(&["--intermediate"]);
    let out = with_file_limit(1, &["issue", "x", "--client", "--certs", s(&f.dir)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "error: cannot write {}: file too large",
            f.p("x.crt")
        )) && stderr.contains("ulimit -f"),
        "{}",
        text(&out)
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    for half in ["x.key", "x.crt"] {
        assert!(
            std::fs::symlink_metadata(f.dir.join(half)).is_err(),
            "{half} was left behind"
        );
    }
    assert!(f.leftovers().is_empty(), "{:?}", f.leftovers());

    // Nothing stands in the way of the retry.
    f.ok(&["issue", "x", "--client"]);
    assert!(matches(&f, "x"), "x.key does not belong to x.crt");
    assert!(
        size(&f, "x.key") <= 512 && size(&f, "x.crt") > 512,
        "the limit no longer splits the pair: key {} bytes, certificate {} bytes",
        size(&f, "x.key"),
        size(&f, "x.crt")
    );

    // A renewal that runs out of space keeps the old pair as it was.
    let before = (
        std::fs::read(f.dir.join("x.key")).expect("read"),
        std::fs::read(f.dir.join("x.crt")).expect("read"),
    );
    let out = with_file_limit(1, &["renew", "x", "--certs", s(&f.dir)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("file too large"),
        "{}",
        text(&out)
    );
    let after = (
        std::fs::read(f.dir.join("x.key")).expect("read"),
        std::fs::read(f.dir.join("x.crt")).expect("read"),
    );
    assert!(before == after, "a failed renewal changed x.key or x.crt");
    assert!(f.leftovers().is_empty(), "{:?}", f.leftovers());
}

#[test]
fn issue_and_renew_name_a_key_or_certificate_left_without_its_partner() {
    let f = Folder::new(&[]);
    // A key whose certificate is gone.
    f.ok(&["issue", "lone-key", "--client"]);
    std::fs::remove_file(f.dir.join("lone-key.crt")).expect("rm");
    let err = f.fails(&["issue", "lone-key", "--client"]);
    assert!(
        err.contains(&format!(
            "{} exists without its partner {}",
            f.p("lone-key.key"),
            f.p("lone-key.crt")
        )) && err.contains("Nothing was changed")
            && err.contains("--force"),
        "{err}"
    );
    assert!(!err.contains("renew"), "renew cannot help here: {err}");
    let err = f.fails(&["renew", "lone-key"]);
    assert!(
        err.contains(&format!(
            "{} exists without its partner {}",
            f.p("lone-key.key"),
            f.p("lone-key.crt")
        )) && err.contains("renew needs the certificate")
            && err.contains("issue lone-key --client --force"),
        "{err}"
    );
    f.ok(&["issue", "lone-key", "--client", "--force"]);
    assert!(matches(&f, "lone-key"));

    // A certificate whose key is gone: renew gives it a fresh one.
    f.ok(&["issue", "lone-cert", "--client"]);
    std::fs::remove_file(f.dir.join("lone-cert.key")).expect("rm");
    let err = f.fails(&["issue", "lone-cert", "--client"]);
    assert!(
        err.contains(&format!(
            "{} exists without its partner {}",
            f.p("lone-cert.crt"),
            f.p("lone-cert.key")
        )) && err.contains("renew lone-cert"),
        "{err}"
    );
    f.ok(&["renew", "lone-cert"]);
    assert!(matches(&f, "lone-cert"));
}

#[test]
fn a_symbolic_link_where_a_file_goes_is_named_and_never_written_through() {
    let f = Folder::new(&[]);
    let outside = f.dir.parent().expect("parent");

    // A dangling link where the certificate goes.
    let nowhere = outside.join("nowhere.crt");
    std::os::unix::fs::symlink(&nowhere, f.dir.join("x.crt")).expect("symlink");
    let err = f.fails(&["issue", "x", "--client"]);
    assert!(
        err.contains(&format!(
            "{} is a symbolic link to {}, which does not exist",
            f.p("x.crt"),
            nowhere.display()
        )),
        "{err}"
    );
    assert!(!err.contains("another run"), "{err}");
    assert!(!nowhere.exists(), "written through the link");
    assert!(
        std::fs::symlink_metadata(f.dir.join("x.key")).is_err(),
        "x.key was written without its certificate"
    );

    // A link to an existing file where the key goes.
    let elsewhere = outside.join("elsewhere.key");
    std::fs::write(&elsewhere, "keep me").expect("write");
    std::os::unix::fs::symlink(&elsewhere, f.dir.join("y.key")).expect("symlink");
    let err = f.fails(&["issue", "y", "--client"]);
    assert!(
        err.contains(&format!(
            "{} is a symbolic link to {};",
            f.p("y.key"),
            elsewhere.display()
        )),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&elsewhere).expect("read"),
        "keep me"
    );
    assert!(std::fs::symlink_metadata(f.dir.join("y.crt")).is_err());

    // Asked to, --force replaces the link itself, never its target.
    f.ok(&["issue", "y", "--client", "--force"]);
    assert!(
        !std::fs::symlink_metadata(f.dir.join("y.key"))
            .expect("stat")
            .file_type()
            .is_symlink()
    );
    assert!(matches(&f, "y"));
    assert_eq!(
        std::fs::read_to_string(&elsewhere).expect("read"),
        "keep me"
    );
}
