//! The `certificate` subcommands end to end, checked with independent tools: openssl
//! (verify, x509, crl, pkcs12, req) and Java's keytool.

use std::process::Command;

use testkit::{
    InProcessServer, openssl, openssl_ok, require_tool, run, server_settings_in, text, utf8 as s,
};

use crate::CERTIFICATE;
use crate::folder::Folder;

#[test]
fn issue_makes_a_third_client_the_server_accepts() {
    let f = Folder::new(&[]);
    let out = f.ok(&["issue", "client-c", "--client", "--cn", "Client C"]);
    assert!(out.contains("URI:spiffe://mtls.demo/client-c"), "{out}");
    let verified = openssl_ok(&[
        "verify",
        "-CAfile",
        &f.p("ca.crt"),
        "-purpose",
        "sslclient",
        &f.p("client-c.crt"),
    ]);
    assert!(verified.contains("client-c.crt: OK"), "{verified}");
    assert_eq!(
        mtls::perms::mode(&f.dir.join("client-c.key")).expect("mode"),
        0o600
    );

    let server = InProcessServer::start(server_settings_in(&f.dir));
    let ex = testkit::fetch(
        &server.url("localhost"),
        f.dir.join("ca.crt"),
        Some((f.dir.join("client-c.crt"), f.dir.join("client-c.key"))),
    )
    .expect("client C is accepted");
    assert_eq!(ex.body, "hello, Client C (spiffe://mtls.demo/client-c)\n");
}

#[test]
fn issue_validates_names_and_never_overwrites_silently() {
    let f = Folder::new(&[]);
    for bad in ["../evil", "a/b", ".hidden", "ca", "crl"] {
        let err = f.fails(&["issue", bad, "--client"]);
        assert!(
            err.contains("is not a usable name") || err.contains("is reserved"),
            "{bad}: {err}"
        );
    }
    assert!(!f.dir.parent().expect("parent").join("evil.crt").exists());
    f.ok(&[
        "issue",
        "api",
        "--server",
        "--san",
        "api.internal",
        "--san",
        "IP:10.0.0.5",
    ]);
    let first = std::fs::read(f.dir.join("api.crt")).expect("read");
    let err = f.fails(&["issue", "api", "--server"]);
    assert!(
        err.contains("api.crt already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(f.dir.join("api.crt")).expect("read"), first);
    let server = openssl_ok(&["x509", "-in", &f.p("api.crt"), "-noout", "-text"]);
    assert!(
        server.contains("DNS:api.internal, IP Address:10.0.0.5"),
        "{server}"
    );
    assert!(server.contains("TLS Web Server Authentication"), "{server}");
    f.ok(&["issue", "api", "--server", "--force"]);
    assert_ne!(std::fs::read(f.dir.join("api.crt")).expect("read"), first);
}

#[test]
fn validity_never_extends_past_the_issuer_and_hours_make_short_lived_certificates() {
    let f = Folder::new(&["--ca-days", "2"]);
    let out = f.ok(&["issue", "long", "--client", "--days", "400"]);
    assert!(out.contains("cut to the issuer's end date"), "{out}");
    let leaf_end = openssl_ok(&["x509", "-in", &f.p("long.crt"), "-noout", "-enddate"]);
    let ca_end = openssl_ok(&["x509", "-in", &f.p("ca.crt"), "-noout", "-enddate"]);
    assert_eq!(leaf_end, ca_end, "the leaf must end with its CA");

    f.ok(&["issue", "brief", "--client", "--hours", "2"]);
    let brief = f.p("brief.crt");
    assert!(
        openssl(&["x509", "-in", &brief, "-noout", "-checkend", "3600"])
            .status
            .success()
    );
    assert!(
        !openssl(&["x509", "-in", &brief, "-noout", "-checkend", "10800"])
            .status
            .success()
    );
    let both = f.cmd(&["issue", "x", "--client", "--days", "1", "--hours", "1"]);
    assert_eq!(both.status.code(), Some(2), "{}", text(&both));
}

#[test]
fn intermediate_chains_verify_with_openssl_and_leaves_carry_the_intermediate() {
    let f = Folder::new(&["--intermediate"]);
    let chain = std::fs::read_to_string(f.dir.join("client-a.crt")).expect("read");
    assert_eq!(
        chain.matches("BEGIN CERTIFICATE").count(),
        2,
        "leaf then intermediate"
    );
    let inter = openssl_ok(&["x509", "-in", &f.p("intermediate.crt"), "-noout", "-text"]);
    assert!(inter.contains("CA:TRUE, pathlen:0"), "{inter}");
    for leaf in ["server.crt", "client-a.crt", "client-b.crt"] {
        let ok = openssl_ok(&[
            "verify",
            "-CAfile",
            &f.p("ca.crt"),
            "-untrusted",
            &f.p("intermediate.crt"),
            &f.p(leaf),
        ]);
        assert!(ok.contains(": OK"), "{leaf}: {ok}");
    }
    // A new intermediate, and a leaf from it.
    f.ok(&["issue", "team-ca", "--intermediate"]);
    f.ok(&["issue", "svc", "--client", "--issuer", "team-ca"]);
    let ok = openssl_ok(&[
        "verify",
        "-CAfile",
        &f.p("ca.crt"),
        "-untrusted",
        &f.p("team-ca.crt"),
        &f.p("svc.crt"),
    ]);
    assert!(ok.contains("svc.crt: OK"), "{ok}");
    let report = f.ok(&["doctor"]);
    assert!(report.contains("0 failed"), "{report}");
}

#[test]
fn renew_keeps_subject_and_sans_with_a_fresh_key_and_serial() {
    let f = Folder::new(&["--san", "extra.test"]);
    let before = openssl_ok(&[
        "x509",
        "-in",
        &f.p("server.crt"),
        "-noout",
        "-subject",
        "-serial",
        "-ext",
        "subjectAltName",
    ]);
    let old_key = std::fs::read(f.dir.join("server.key")).expect("read");
    let out = f.ok(&["renew", "server", "--hours", "12"]);
    assert!(out.contains("Renewed"), "{out}");
    let after = openssl_ok(&[
        "x509",
        "-in",
        &f.p("server.crt"),
        "-noout",
        "-subject",
        "-serial",
        "-ext",
        "subjectAltName",
    ]);
    let line = |text: &str, prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_owned)
    };
    assert_eq!(line(&before, "subject="), line(&after, "subject="));
    assert!(
        after.contains(
            "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:extra.test"
        ),
        "{after}"
    );
    assert_ne!(line(&before, "serial="), line(&after, "serial="));
    assert_ne!(
        std::fs::read(f.dir.join("server.key")).expect("read"),
        old_key
    );
    assert_eq!(
        mtls::perms::mode(&f.dir.join("server.key")).expect("mode"),
        0o600
    );
    assert!(
        openssl(&[
            "x509",
            "-in",
            &f.p("server.crt"),
            "-noout",
            "-checkend",
            "36000"
        ])
        .status
        .success()
    );
    assert!(
        !openssl(&[
            "x509",
            "-in",
            &f.p("server.crt"),
            "-noout",
            "-checkend",
            "50000"
        ])
        .status
        .success()
    );
    let err = f.fails(&["renew", "nobody"]);
    assert!(
        err.contains("there is no") && err.contains("nobody.crt"),
        "{err}"
    );
}

#[test]
fn inspect_describes_pem_der_bundles_csrs_crls_and_keys() {
    let f = Folder::new(&["--intermediate"]);
    // A bundle (leaf + intermediate), in PEM.
    let text = f.ok(&["inspect", &f.p("client-a.crt")]);
    for expected in [
        "[1/2]: certificate",
        "subject:           C=Earth, ST=Asia, L=Mountain, O=Client A Company, OU=Engineering, CN=Client A",
        "SANs:              URI:spiffe://mtls.demo/client-a",
        "ext. key usage:    clientAuth",
        "basic constraints: CA:FALSE",
        "days left)",
        "[2/2]: certificate",
        "CA:TRUE, pathlen:0",
    ] {
        assert!(text.contains(expected), "missing {expected:?}:\n{text}");
    }
    // The SHA-256 fingerprint is the one openssl computes.
    let fp = openssl_ok(&[
        "x509",
        "-in",
        &f.p("server.crt"),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    let fp = fp
        .trim()
        .rsplit('=')
        .next()
        .expect("fingerprint")
        .to_string();
    assert!(f.ok(&["inspect", &f.p("server.crt")]).contains(&fp), "{fp}");
    // DER.
    let der = f.dir.join("ca.der");
    openssl_ok(&[
        "x509",
        "-in",
        &f.p("ca.crt"),
        "-outform",
        "der",
        "-out",
        s(&der),
    ]);
    let text = f.ok(&["inspect", s(&der)]);
    assert!(text.contains("self-signed:       yes"), "{text}");
    // A key: described, never printed.
    let text = f.ok(&["inspect", &f.p("server.key")]);
    assert!(
        text.contains("private key") && text.contains("ECDSA P-256"),
        "{text}"
    );
    let key_body = std::fs::read_to_string(f.dir.join("server.key")).expect("read");
    let secret_line = key_body.lines().nth(1).expect("base64 line");
    assert!(!text.contains(secret_line), "the key leaked");
    // A CSR made by openssl.
    let csr = f.dir.join("req.csr");
    openssl_ok(&[
        "req",
        "-new",
        "-key",
        &f.p("server.key"),
        "-subj",
        "/CN=requested.test",
        "-addext",
        "subjectAltName=DNS:requested.test",
        "-out",
        s(&csr),
    ]);
    let text = f.ok(&["inspect", s(&csr)]);
    assert!(text.contains("certificate signing request"), "{text}");
    assert!(
        text.contains("CN=requested.test") && text.contains("DNS:requested.test"),
        "{text}"
    );
    assert!(text.contains("self-signature:    valid"), "{text}");
    // A CRL, and JSON for scripts.
    f.ok(&["revoke", "client-b", "--reason", "superseded"]);
    let json = f.ok(&["inspect", &f.p("crl.pem"), &f.p("client-b.crt"), "--json"]);
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let crl_objects = value[0]["objects"].as_array().expect("objects");
    let listed: Vec<&serde_json::Value> = crl_objects
        .iter()
        .flat_map(|o| o["revoked"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(listed.len(), 1, "{json}");
    assert_eq!(listed[0]["reason"], "superseded");
    let serial = &value[1]["objects"][0]["serial"];
    assert_eq!(
        &listed[0]["serial"], serial,
        "the CRL lists client-b's serial"
    );
    assert_eq!(value[1]["objects"][0]["type"], "certificate");
    assert!(
        value[1]["objects"][0]["seconds_left"]
            .as_i64()
            .expect("seconds")
            > 0
    );
    // Not a certificate at all.
    let junk = f.dir.join("junk.txt");
    std::fs::write(&junk, "hello\n").expect("write");
    let err = f.fails(&["inspect", s(&junk)]);
    assert!(
        err.contains("junk.txt") && err.contains("neither PEM text nor DER"),
        "{err}"
    );
}

#[test]
fn inspect_shows_the_chain_a_live_server_sends_and_whether_it_verifies() {
    let f = Folder::new(&["--intermediate"]);
    let server = InProcessServer::start(server_settings_in(&f.dir));
    let url = format!("https://localhost:{}", server.addr.port());
    let out = run(Command::new(CERTIFICATE).args(["inspect", &url, "--ca", &f.p("ca.crt")]));
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("[1/2]: certificate") && stdout.contains("CN=localhost"),
        "{stdout}"
    );
    assert!(stdout.contains("CN=Intermediate CA"), "{stdout}");
    assert!(
        stdout.contains("verdict: the chain verifies against"),
        "{stdout}"
    );
    // Against a CA minted again with the same name (what `--force` does), the verdict says
    // why a client would refuse it.
    let other = Folder::new(&[]);
    let out = run(Command::new(CERTIFICATE).args(["inspect", &url, "--ca", &other.p("ca.crt")]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("it would be refused: the server's certificate names an issuer that matches our CA by name"),
        "{stdout}"
    );
    assert!(
        stdout.contains("usually the CA was minted again"),
        "{stdout}"
    );
}

#[test]
fn doctor_passes_a_fresh_set_and_names_each_problem_with_its_fix() {
    let f = Folder::new(&[]);
    let report = f.ok(&["doctor"]);
    assert!(report.contains(" 0 failed"), "{report}");
    assert!(!report.contains("FAIL"), "{report}");

    // Break one thing at a time, from the known-good baseline.
    std::fs::set_permissions(
        f.dir.join("client-a.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");
    let out = f.cmd(&["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("FAIL  client-a.key has mode 644"),
        "{report}"
    );
    assert!(
        report.contains(&format!("fix: chmod 600 {}", f.p("client-a.key"))),
        "{report}"
    );
    std::fs::set_permissions(
        f.dir.join("client-a.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");

    let report = String::from_utf8_lossy(&f.cmd(&["doctor", "--host", "api.example.test"]).stdout)
        .into_owned();
    assert!(
        report.contains("FAIL  server.crt does not name \"api.example.test\""),
        "{report}"
    );
    assert!(
        report.contains("why: a client dialing that host refuses the server"),
        "{report}"
    );
    assert!(
        report.contains("renew server --san api.example.test"),
        "{report}"
    );

    std::fs::copy(f.dir.join("client-b.key"), f.dir.join("client-a.key")).expect("copy");
    let report = String::from_utf8_lossy(&f.cmd(&["doctor"]).stdout).into_owned();
    assert!(
        report.contains("FAIL  client-a.key does not belong to client-a.crt"),
        "{report}"
    );
    assert!(report.contains("renew client-a"), "{report}");
}

#[test]
fn doctor_flags_a_serverauth_certificate_named_as_a_client_and_checks_crl_signatures() {
    let f = Folder::new(&[]);
    f.ok(&["issue", "client-x", "--server", "--san", "x.test"]);
    f.ok(&["revoke", "client-x"]);
    let out = f.cmd(&["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(
            "FAIL  client-x.crt lacks the extended key usage clientAuth (it has serverAuth)"
        ),
        "{report}"
    );
    assert!(report.contains("crl.pem the list of"), "{report}");
    assert!(report.contains("is signed by ca.crt"), "{report}");
}

#[test]
fn revoke_and_crl_write_lists_openssl_accepts() {
    let f = Folder::new(&[]);
    let out = f.ok(&["revoke", "client-b", "--reason", "key-compromise"]);
    assert!(out.contains("Revoked client-b"), "{out}");
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
    assert!(crl.contains("Key Compromise"), "{crl}");
    let number = |text: &str| {
        text.lines()
            .skip_while(|l| !l.contains("X509v3 CRL Number"))
            .nth(1)
            .map(|l| l.trim().to_string())
            .expect("a CRL number")
    };
    let first_number = number(&crl);
    // openssl's own revocation check agrees.
    let bundle = f.dir.join("ca-and-crl.pem");
    std::fs::write(
        &bundle,
        [
            std::fs::read(f.dir.join("ca.crt")).expect("ca"),
            std::fs::read(f.dir.join("crl.pem")).expect("crl"),
        ]
        .concat(),
    )
    .expect("write");
    let b = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        s(&bundle),
        &f.p("client-b.crt"),
    ]);
    assert!(!b.status.success(), "{}", text(&b));
    assert!(text(&b).contains("certificate revoked"), "{}", text(&b));
    let a = openssl_ok(&[
        "verify",
        "-crl_check",
        "-CAfile",
        s(&bundle),
        &f.p("client-a.crt"),
    ]);
    assert!(a.contains("client-a.crt: OK"), "{a}");
    // Revoking again changes nothing but the dates; `crl` re-signs with a newer number.
    assert!(f.ok(&["revoke", "client-b"]).contains("already revoked"));
    f.ok(&["crl", "--days", "1"]);
    let again = openssl_ok(&[
        "crl",
        "-in",
        &f.p("crl.pem"),
        "-CAfile",
        &f.p("ca.crt"),
        "-noout",
        "-text",
    ]);
    assert!(
        again.contains("verify OK") && again.contains("Key Compromise"),
        "{again}"
    );
    let as_number = |n: &str| n.parse::<u64>().expect("a decimal CRL number");
    assert!(
        as_number(&number(&again)) > as_number(&first_number),
        "re-signing must increase the CRL number"
    );
    let err = f.fails(&["revoke", "nobody"]);
    assert!(
        err.contains("there is no") && err.contains("nobody.crt"),
        "{err}"
    );
}

#[test]
fn p12_bundles_open_in_openssl_and_keytool_and_need_a_password_source() {
    require_tool("keytool");
    let f = Folder::new(&[]);
    let pw = f.dir.join("pw.txt");
    std::fs::write(&pw, "correct horse\n").expect("write");
    let out = f.cmd(&["p12", "client-a"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--password-file <FILE>|--password-env <VAR>|--no-password"),
        "{err}"
    );

    f.ok(&["p12", "client-a", "--password-file", s(&pw)]);
    assert_eq!(
        mtls::perms::mode(&f.dir.join("client-a.p12")).expect("mode"),
        0o600
    );
    let info = openssl_ok(&[
        "pkcs12",
        "-info",
        "-noout",
        "-in",
        &f.p("client-a.p12"),
        "-passin",
        "pass:correct horse",
    ]);
    assert!(
        info.contains("AES-256-CBC") && info.contains("MAC: sha256"),
        "{info}"
    );
    let list = run(Command::new("keytool").args([
        "-list",
        "-v",
        "-keystore",
        &f.p("client-a.p12"),
        "-storepass",
        "correct horse",
    ]));
    let list = text(&list);
    assert!(
        list.contains("Alias name: client-a") && list.contains("PrivateKeyEntry"),
        "{list}"
    );
    assert!(list.contains("Certificate chain length: 2"), "{list}");
    let wrong = openssl(&[
        "pkcs12",
        "-info",
        "-noout",
        "-in",
        &f.p("client-a.p12"),
        "-passin",
        "pass:wrong",
    ]);
    assert!(!wrong.status.success(), "a wrong password must not open it");

    let out = run(Command::new(CERTIFICATE)
        .args([
            "p12",
            "client-b",
            "--legacy",
            "--password-env",
            "TEST_P12_PW",
            "--certs",
            s(&f.dir),
        ])
        .env("TEST_P12_PW", "legacy-pass"));
    assert!(out.status.success(), "{}", text(&out));
    let info = openssl_ok(&[
        "pkcs12",
        "-info",
        "-noout",
        "-in",
        &f.p("client-b.p12"),
        "-passin",
        "pass:legacy-pass",
    ]);
    assert!(
        info.contains("pbeWithSHA1And3-KeyTripleDES-CBC") && info.contains("MAC: sha1"),
        "{info}"
    );

    f.ok(&["p12", "--truststore", "--password-file", s(&pw)]);
    let trust = run(Command::new("keytool").args([
        "-list",
        "-keystore",
        &f.p("truststore.p12"),
        "-storepass",
        "correct horse",
    ]));
    assert!(
        text(&trust).contains("trustedCertEntry"),
        "{}",
        text(&trust)
    );

    f.ok(&["p12", "server", "--no-password"]);
    let info = openssl_ok(&[
        "pkcs12",
        "-info",
        "-noout",
        "-in",
        &f.p("server.p12"),
        "-passin",
        "pass:",
    ]);
    assert!(info.contains("Shrouded Keybag"), "{info}");
    let err = f.fails(&["p12", "server", "--no-password"]);
    assert!(err.contains("server.p12 already exists"), "{err}");
    std::fs::write(&pw, "\n").expect("write");
    let err = f.fails(&["p12", "client-b", "--force", "--password-file", s(&pw)]);
    assert!(err.contains("the password is empty"), "{err}");
}

#[test]
fn every_subcommand_has_help_with_an_example() {
    for sub in [
        "issue", "renew", "inspect", "doctor", "verify", "revoke", "crl", "p12", "lab",
    ] {
        let out = run(Command::new(CERTIFICATE).args([sub, "--help"]));
        assert!(out.status.success(), "{sub}: {}", text(&out));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("Examples:")
                && help.contains(&format!("cargo run -p certificate -- {sub}")),
            "{sub}:\n{help}"
        );
    }
}

#[test]
fn the_lab_is_minted_beside_the_demo_set_and_not_replaced_silently() {
    let f = Folder::new(&[]);
    let out = f.ok(&["lab"]);
    for name in [
        "client-from-other-ca",
        "client-expired",
        "client-not-yet-valid",
        "client-server-auth-only",
        "client-is-a-ca",
        "client-revoked",
        "server-without-ip-san",
    ] {
        assert!(out.contains(&format!("{name}: ")), "{name} missing:\n{out}");
        assert!(
            f.dir.join("lab").join(format!("{name}.crt")).exists(),
            "{name}.crt"
        );
        assert_eq!(
            mtls::perms::mode(&f.dir.join("lab").join(format!("{name}.key"))).expect("mode"),
            0o600
        );
    }
    let expired = openssl(&[
        "x509",
        "-in",
        &f.p("lab/client-expired.crt"),
        "-noout",
        "-checkend",
        "0",
    ]);
    assert!(
        !expired.status.success(),
        "the expired certificate is not expired"
    );
    // The renewal the client suggests for a lab file works by the lab's name.
    f.ok(&["renew", "lab/client-expired", "--days", "1"]);
    let renewed = openssl(&[
        "x509",
        "-in",
        &f.p("lab/client-expired.crt"),
        "-noout",
        "-checkend",
        "3600",
    ]);
    assert!(
        renewed.status.success(),
        "the renewed lab certificate is current"
    );
    let err = f.fails(&["renew", "lab/../ca"]);
    assert!(err.contains("\"../ca\" is not a usable name"), "{err}");
    let err = f.fails(&["lab"]);
    assert!(err.contains("--force"), "{err}");
    // The demo set itself is untouched and still healthy.
    assert!(f.ok(&["doctor"]).contains(" 0 failed"));
}

#[test]
fn doctor_names_an_unreadable_certificate_instead_of_giving_up() {
    let f = Folder::new(&[]);
    std::fs::write(
        f.dir.join("broken.crt"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n",
    )
    .expect("write");
    let out = f.cmd(&["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("FAIL  broken.crt cannot be read"),
        "{report}"
    );
    assert!(
        report.contains("ok    client-a.crt"),
        "the rest is still checked:\n{report}"
    );
    // Other subcommands are not blocked by an unrelated damaged file.
    f.ok(&["issue", "client-d", "--client"]);
}

#[test]
fn issuing_from_an_expired_ca_is_refused_and_writes_nothing() {
    let f = Folder::new(&["--ca-hours", "1"]);
    // A CA that expired long ago, in the folder under another name.
    let old = mtls::pki::CertAuthority::new_root(
        mtls::pki::demo_subject("Old CA Company", "Old CA"),
        mtls::pki::KeyType::EcdsaP256,
        mtls::pki::Validity {
            not_before: time::macros::datetime!(2020-01-01 0:00 UTC),
            not_after: time::macros::datetime!(2020-02-01 0:00 UTC),
        },
    )
    .expect("mint an old CA");
    std::fs::write(f.dir.join("old-ca.crt"), &old.cert_pem).expect("write");
    std::fs::write(f.dir.join("old-ca.key"), old.key_pem()).expect("write");
    let err = f.fails(&["issue", "late", "--client", "--issuer", "old-ca"]);
    assert!(err.contains("old-ca.crt expired on 2020-02-01"), "{err}");
    assert!(!f.dir.join("late.crt").exists() && !f.dir.join("late.key").exists());
    // A leaf that would outlive its (short-lived) CA is cut to fit, never inverted.
    let out = f.ok(&["issue", "short", "--client", "--days", "30"]);
    assert!(out.contains("cut to the issuer's end date"), "{out}");
    let err = f.fails(&["issue", "x", "--client", "--issuer", "../elsewhere/ca"]);
    assert!(err.contains("is not a usable name"), "{err}");
}

#[test]
fn issue_refuses_to_replace_a_ca_and_renew_can_add_a_name() {
    let f = Folder::new(&["--intermediate"]);
    f.ok(&["issue", "team-ca", "--intermediate"]);
    let err = f.fails(&["issue", "team-ca", "--client", "--force"]);
    assert!(
        err.contains("is a CA certificate; `issue` never replaces a CA"),
        "{err}"
    );
    let err = f.fails(&["issue", "CA", "--client", "--force"]);
    assert!(err.contains("is reserved"), "{err}");
    let err = f.fails(&["issue", "svc", "--server", "--san", "URI:spiffe://x/y"]);
    assert!(err.contains("needs at least one DNS or IP SAN"), "{err}");
    f.ok(&["renew", "server", "--san", "api.internal"]);
    let text = openssl_ok(&[
        "x509",
        "-in",
        &f.p("server.crt"),
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    assert!(
        text.contains(
            "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:api.internal"
        ),
        "{text}"
    );
    assert!(
        f.ok(&["doctor", "--host", "api.internal"])
            .contains(" 0 failed")
    );
}

#[test]
fn a_new_intermediate_gets_its_own_list_in_an_existing_crl() {
    let f = Folder::new(&[]);
    f.ok(&["revoke", "client-b"]);
    f.ok(&["issue", "team-ca", "--intermediate"]);
    let crl = std::fs::read_to_string(f.dir.join("crl.pem")).expect("read");
    assert_eq!(crl.matches("BEGIN X509 CRL").count(), 2, "{crl}");
    let report = f.ok(&["doctor"]);
    assert!(report.contains(" 0 failed"), "{report}");
    assert!(report.contains("is signed by team-ca.crt"), "{report}");
    // Without that list doctor would fail, naming the CA.
    f.ok(&["issue", "other-ca", "--intermediate"]);
    std::fs::write(f.dir.join("crl.pem"), crl).expect("restore the old crl.pem");
    let out = f.cmd(&["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("FAIL  crl.pem has no list from other-ca.crt"),
        "{}",
        text(&out)
    );
}

#[test]
fn minting_again_with_force_starts_the_crl_over_and_names_stale_files() {
    let f = Folder::new(&[]);
    f.ok(&["issue", "client-c", "--client"]);
    f.ok(&["revoke", "client-b"]);
    let out = run(Command::new(CERTIFICATE).args(["--out", s(&f.dir), "--force"]));
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("crl.pem was started over"), "{stdout}");
    assert!(
        stdout.contains("they no longer verify") && stdout.contains("client-c.crt"),
        "{stdout}"
    );
    // The new lists are the new CA's: revoking works again and openssl verifies the list.
    f.ok(&["revoke", "client-a"]);
    let crl = openssl_ok(&[
        "crl",
        "-in",
        &f.p("crl.pem"),
        "-CAfile",
        &f.p("ca.crt"),
        "-noout",
    ]);
    assert!(crl.contains("verify OK"), "{crl}");
}

#[test]
fn p12_carries_the_whole_chain_and_converts_sec1_keys() {
    require_tool("keytool");
    let f = Folder::new(&["--intermediate"]);
    // A SEC1 ("EC PRIVATE KEY") key, as `openssl ec` writes it.
    openssl_ok(&[
        "ec",
        "-in",
        &f.p("client-a.key"),
        "-out",
        &f.p("client-a.key"),
    ]);
    let key = std::fs::read_to_string(f.dir.join("client-a.key")).expect("read");
    assert!(key.contains("BEGIN EC PRIVATE KEY"), "{key}");
    f.ok(&["p12", "client-a", "--no-password"]);
    let list = run(Command::new("keytool").args([
        "-list",
        "-v",
        "-keystore",
        &f.p("client-a.p12"),
        "-storepass",
        "",
    ]));
    let list = text(&list);
    // keytool refuses an empty store password on some versions; openssl does not.
    if !list.contains("Certificate chain length") {
        let info = openssl_ok(&[
            "pkcs12",
            "-info",
            "-nokeys",
            "-in",
            &f.p("client-a.p12"),
            "-passin",
            "pass:",
        ]);
        assert_eq!(
            info.matches("BEGIN CERTIFICATE").count(),
            3,
            "leaf, intermediate, root:\n{info}"
        );
    } else {
        assert!(list.contains("Certificate chain length: 3"), "{list}");
    }
}
