//! Which names `issue` accepts, and why it refuses the others: the true cause (length,
//! characters, a name the folder keeps for one kind), and a default issuer that is not a CA.

use testkit::text;

use crate::folder::Folder;

#[test]
fn a_name_longer_than_64_characters_is_refused_for_its_length() {
    let f = Folder::new(&[]);
    let long = "a".repeat(300);
    let err = f.fails(&["issue", &long, "--client"]);
    assert!(
        err.contains("is 300 characters long") && err.contains("at most 64 characters"),
        "{err}"
    );
    assert!(!err.contains("use letters"), "{err}");
    // 64 is fine.
    f.ok(&["issue", &"b".repeat(64), "--client"]);
}

#[test]
fn names_the_folder_gives_a_meaning_are_kept_for_that_meaning() {
    let f = Folder::new(&[]);
    for (name, kind, flag) in [
        ("intermediate", "--client", "--intermediate"),
        ("intermediate", "--server", "--intermediate"),
        ("server", "--client", "--server"),
        ("server", "--intermediate", "--server"),
        ("client-a", "--server", "--client"),
        ("Client-B", "--intermediate", "--client"),
    ] {
        let err = f.fails(&["issue", name, kind, "--force"]);
        assert!(
            err.contains(&format!("{name:?} is kept for"))
                && err.contains(&format!("issue it with {flag}, or pick another name")),
            "{name} {kind}: {err}"
        );
    }
    for name in ["ca", "crl", "lab", "truststore"] {
        let err = f.fails(&["issue", name, "--client"]);
        assert!(err.contains("is reserved"), "{name}: {err}");
    }
    assert!(
        std::fs::symlink_metadata(f.dir.join("intermediate.crt")).is_err(),
        "a refused name was written"
    );
    // Each name still works for its own kind.
    f.ok(&["issue", "server", "--server", "--force"]);
    f.ok(&["issue", "client-a", "--client", "--force"]);
    f.ok(&["issue", "intermediate", "--intermediate"]);
    f.ok(&["issue", "client-c", "--client"]);
    let report = f.ok(&["doctor"]);
    assert!(report.contains(" 0 failed"), "{report}");
}

#[test]
fn an_intermediate_that_is_not_a_ca_is_named_by_issue_lab_and_doctor() {
    let f = Folder::new(&[]);
    // A leaf where the intermediate goes, as another tool (or an older run) left it.
    std::fs::copy(f.dir.join("client-a.crt"), f.dir.join("intermediate.crt")).expect("copy");
    std::fs::copy(f.dir.join("client-a.key"), f.dir.join("intermediate.key")).expect("copy");

    let err = f.fails(&["issue", "x", "--client"]);
    assert!(
        err.contains(&format!(
            "{} is not a CA certificate",
            f.p("intermediate.crt")
        )) && err.contains("It is the default issuer because it exists")
            && err.contains("issue intermediate --intermediate --force")
            && err.contains("--issuer ca"),
        "{err}"
    );
    assert!(std::fs::symlink_metadata(f.dir.join("x.key")).is_err());
    let err = f.fails(&["lab"]);
    assert!(
        err.contains("It is the default issuer because it exists"),
        "{err}"
    );

    let out = f.cmd(&["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(
            "FAIL  intermediate.crt is not a CA (CA:FALSE), yet it is the default issuer"
        ),
        "{report}"
    );
    assert!(
        report.contains("issue intermediate --intermediate --force"),
        "{report}"
    );

    // Both ways out work: an explicit issuer, or the fix doctor names.
    f.ok(&["issue", "x", "--client", "--issuer", "ca"]);
    f.ok(&["issue", "intermediate", "--intermediate", "--force"]);
    let out = f.ok(&["issue", "y", "--client"]);
    assert!(out.contains("issued by intermediate"), "{out}");
    let report = f.ok(&["doctor"]);
    assert!(report.contains(" 0 failed"), "{report}");
}
