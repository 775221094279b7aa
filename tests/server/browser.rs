//! The browser view: a request that prefers HTML gets a page about its own connection
//! instead of the plain-text greeting. Checked in a real browser (Debian's Chromium,
//! headless, with Client A's PKCS#12 imported into an NSS database and chosen by itself) and,
//! for the details, with the blocking test client, which can ask for HTML on one connection
//! and for text on the next request.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mtls::ca::p12::{self, Encryption, P12Target, Password};
use mtls::pki::{Usage, Validity};
use mtls::tls::{ClientPolicy, TlsVersion};
use testkit::{Conn, EchoUpstream, Pki, client_config, fingerprint, first_cert, http1};
use testkit::{leaf, run, text, utf8};

use crate::start;

/// What Chromium sends when it navigates to a page.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,\
                              image/avif,image/webp,image/apng,*/*;q=0.8";

/// Fails, naming the package to install, unless `tool` is on the PATH.
fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is required for this test (DEBIAN_FRONTEND=noninteractive apt-get install -y {package})"
    );
}

/// A headless Chromium with a home of its own: an NSS database (where Chromium on Linux
/// keeps client certificates and the CAs its user added) that trusts the demo CA, and a
/// profile. With a client certificate, the profile chooses it by itself for one origin:
/// the content setting behind the AutoSelectCertificateForUrls policy, written as a profile
/// preference rather than a policy file under /etc. Without one, Chromium would wait in
/// its certificate picker for a user who is not there.
struct Chromium {
    home: tempfile::TempDir,
}

impl Chromium {
    /// A browser that trusts the demo CA and holds no client certificate.
    fn without_certificate(pki: &Pki) -> Self {
        require("chromium", "chromium");
        require("certutil", "libnss3-tools");
        require("pk12util", "libnss3-tools");
        let home = tempfile::tempdir().expect("temp home");
        let nssdb = home.path().join(".pki/nssdb");
        std::fs::create_dir_all(&nssdb).expect("create the NSS database folder");
        let db = format!("sql:{}", utf8(&nssdb));
        certutil(&["-N", "-d", &db, "--empty-password"]);
        let ca = pki.certs.ca_cert();
        certutil(&[
            "-A",
            "-n",
            "demo-ca",
            "-t",
            "C,,",
            "-i",
            utf8(&ca),
            "-d",
            &db,
        ]);
        Self { home }
    }

    /// A browser that also holds `stem`'s certificate and key, imported from the PKCS#12
    /// bundle `certificate p12 STEM --password-file F` writes, and chooses the certificate
    /// whose common name is `cn` whenever `origin` asks for one.
    fn with_certificate(pki: &Pki, stem: &str, cn: &str, origin: &str) -> Self {
        let browser = Self::without_certificate(pki);
        let password = browser.home.path().join("p12-password");
        std::fs::write(&password, "browser-test-password\n").expect("write the password");
        let bundle = p12::write(
            &pki.certs,
            &P12Target::Identity(stem.into()),
            &Password::File(password),
            Encryption::Modern,
            false,
        )
        .expect("write the PKCS#12 bundle");
        let out = run(Command::new("pk12util").args([
            "-i",
            utf8(&bundle.path),
            "-d",
            &browser.db(),
            "-W",
            "browser-test-password",
        ]));
        assert!(out.status.success(), "pk12util: {}", text(&out));
        let default = browser.profile().join("Default");
        std::fs::create_dir_all(&default).expect("create the profile");
        let origin = origin.trim_end_matches('/');
        let preferences = format!(
            r#"{{"profile":{{"content_settings":{{"exceptions":{{"auto_select_certificate":{{"{origin},*":{{"setting":{{"filters":[{{"SUBJECT":{{"CN":"{cn}"}}}}]}}}}}}}}}}}}}}"#
        );
        std::fs::write(default.join("Preferences"), preferences).expect("write the preferences");
        browser
    }

    fn db(&self) -> String {
        format!("sql:{}", utf8(&self.home.path().join(".pki/nssdb")))
    }

    fn profile(&self) -> PathBuf {
        self.home.path().join("profile")
    }

    /// Opens `url` and returns what Chromium printed: the DOM on stdout (with `--dump-dom`
    /// in `what`), its complaints on stderr. Chromium gives up on a page after 15 s by
    /// itself, inside the bound of [`run`].
    fn open(&self, url: &str, what: &[&str]) -> Output {
        let home = self.home.path();
        let profile = self.profile();
        run(Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--timeout=15000",
                &format!("--user-data-dir={}", utf8(&profile)),
            ])
            .args(what)
            .arg(url)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache")))
    }
}

fn certutil(args: &[&str]) {
    let out = run(Command::new("certutil").args(args));
    assert!(out.status.success(), "certutil {args:?}: {}", text(&out));
}

/// Where test artifacts go: `target/test-artifacts/`.
fn artifacts() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is target/tmp")
        .join("test-artifacts");
    std::fs::create_dir_all(&target).expect("create target/test-artifacts");
    target
}

/// The width and height of a PNG file, from its IHDR chunk; panics unless it is a PNG.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    assert!(
        bytes.len() > 24 && bytes.starts_with(SIGNATURE) && &bytes[12..16] == b"IHDR",
        "not a PNG ({} bytes)",
        bytes.len()
    );
    let be =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    (be(16), be(20))
}

/// GETs `/` with `accept` (none when `None`) on a connection that stays open.
fn get(conn: &mut Conn, accept: Option<&str>) -> testkit::Reply {
    let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
    conn.request("/", &headers).expect("a response")
}

#[test]
fn chromium_with_client_a_imported_gets_the_page_of_its_own_connection() {
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    let url = server.url("localhost");
    let browser = Chromium::with_certificate(&pki, "client-a", "Client A", &url);
    let shot = artifacts().join("browser-client-a.png");
    let _ = std::fs::remove_file(&shot);
    let out = browser.open(
        &url,
        &[
            "--dump-dom",
            &format!("--screenshot={}", utf8(&shot)),
            "--window-size=412,915",
        ],
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{}", text(&out), server.log.all());

    // Who, and why.
    assert!(
        dom.contains("The server is talking to Client A (spiffe://mtls.demo/client-a)"),
        "{dom}\n{}",
        text(&out)
    );
    assert!(
        dom.contains("hello, Client A (spiffe://mtls.demo/client-a)"),
        "{dom}"
    );
    // The seven steps, in order, each with what happened on this connection.
    let steps = [
        "The client connects",
        "The server presents its chain",
        "The client verifies it",
        "The server asks for a certificate, naming the CAs it accepts",
        "The client presents its certificate and proves it holds the key",
        "The server verifies it",
        "The server authorizes the identity",
    ];
    let mut from = 0;
    for (n, title) in steps.iter().enumerate() {
        let id = format!("id=\"step-{}\"", n + 1);
        let at = dom[from..]
            .find(&id)
            .unwrap_or_else(|| panic!("no {id} after byte {from}:\n{dom}"));
        from += at;
        assert!(
            dom[from..].contains(title),
            "step {} is not {title:?}",
            n + 1
        );
    }
    // What Chromium and the server agreed, as the server's log has it too.
    let state = server.log.wait_for(&["State", "Client A"]);
    for field in ["TLSv1.3", "X25519MLKEM768", "\"h2\"", "\"localhost\""] {
        assert!(state.contains(field), "{state}");
    }
    assert!(dom.contains("<code>TLSv1.3</code>"), "{dom}");
    assert!(
        dom.contains("<code>X25519MLKEM768</code> — a hybrid post-quantum key exchange"),
        "{dom}"
    );
    assert!(dom.contains("<code>h2</code> — HTTP/2"), "{dom}");
    assert!(dom.contains("<code>localhost</code> — the name the client asked for"));
    assert!(dom.contains("<code>no</code> — a full handshake"), "{dom}");
    // Both chains, by their fingerprints; the CA names the server sent.
    let server_cert = fingerprint(&first_cert(&pki.certs.cert("server")));
    let client_cert = fingerprint(&first_cert(&pki.certs.cert("client-a")));
    assert!(
        dom.contains(&server_cert),
        "the server's certificate: {dom}"
    );
    assert!(dom.contains(&client_cert), "Client A's certificate: {dom}");
    assert!(
        dom.contains("<li><code>C=Earth, ST=Asia, L=Mountain, O=CA Company, OU=Engineering, CN=CA</code></li>"),
        "{dom}"
    );
    // The checks that ran, and the one that did not.
    assert!(dom.contains("✓ chains to the CA"), "{dom}");
    assert!(
        dom.contains("<b>Client A</b> ← signed by <b>CA</b>"),
        "{dom}"
    );
    assert!(dom.contains("✓ current"), "{dom}");
    assert!(
        dom.contains("its extended key usage is clientAuth"),
        "{dom}"
    );
    assert!(dom.contains("— revocation not checked"), "{dom}");
    assert!(!dom.contains("not revoked"), "{dom}");
    // The decision, and the failures to try.
    assert!(
        dom.contains("<span class=\"ok\">Admitted</span>: no <code>--allow-*</code> rule is set"),
        "{dom}"
    );
    let no_cert = format!("--no-cert --certs {} --url {url}", pki.dir().display());
    assert!(dom.contains(&no_cert), "{no_cert}: {dom}");
    assert!(!dom.contains("<script"), "{dom}");

    // The phone-sized screenshot, kept as an artifact.
    let png =
        std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}\n{}", shot.display(), text(&out)));
    assert_eq!(png_size(&png), (412, 915), "{}", shot.display());
}

#[test]
fn chromium_without_a_certificate_gets_the_refusal() {
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    let browser = Chromium::without_certificate(&pki);
    let netlog = browser.home.path().join("netlog.json");
    let out = browser.open(
        &server.url("localhost"),
        &["--dump-dom", &format!("--log-net-log={}", utf8(&netlog))],
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        !dom.contains("hello") && !dom.contains("talking to"),
        "{dom}"
    );
    // The server refused in the handshake, for the missing certificate...
    server
        .log
        .wait_for(&["TLS handshake failed", "reason=\"no_certificate\""]);
    // ...and Chromium read its alert: fatal (2), certificate_required (116).
    let alerts = alerts_received(&netlog);
    assert!(
        alerts.contains(&[2, 116].to_vec()),
        "alerts {alerts:?}\n{}",
        text(&out)
    );
    // Over TLS 1.3 the client's handshake is done before the server has read its (empty)
    // certificate, so the alert races Chromium's first use of the connection: when Chromium
    // reads it first, it names it ERR_BAD_SSL_CLIENT_AUTH_CERT; when it finds the
    // connection already closed by it, ERR_SOCKET_NOT_CONNECTED or ERR_CONNECTION_CLOSED.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failed = stderr
        .lines()
        .find_map(|l| {
            l.split_once("Page load failed: net::")
                .map(|(_, e)| e.trim())
        })
        .unwrap_or_else(|| panic!("Chromium did not report a failed load:\n{}", text(&out)));
    assert!(
        [
            "ERR_BAD_SSL_CLIENT_AUTH_CERT",
            "ERR_SOCKET_NOT_CONNECTED",
            "ERR_CONNECTION_CLOSED"
        ]
        .contains(&failed),
        "{failed}\n{}",
        text(&out)
    );
}

/// The TLS alerts Chromium's net log (`--log-net-log`) says it received, as bytes (level,
/// description).
fn alerts_received(netlog: &Path) -> Vec<Vec<u8>> {
    use base64::Engine;
    let text = std::fs::read_to_string(netlog)
        .unwrap_or_else(|e| panic!("Chromium's net log {}: {e}", netlog.display()));
    let log: serde_json::Value = serde_json::from_str(&text).expect("the net log is JSON");
    let alert = log["constants"]["logEventTypes"]["SSL_ALERT_RECEIVED"].clone();
    assert!(
        alert.is_number(),
        "no SSL_ALERT_RECEIVED event type in the net log"
    );
    log["events"]
        .as_array()
        .expect("net log events")
        .iter()
        .filter(|e| e["type"] == alert)
        .filter_map(|e| e["params"]["bytes"].as_str())
        .map(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .expect("base64 alert bytes")
        })
        .collect()
}

#[test]
fn chromium_as_a_client_the_policy_denies_gets_the_403_as_a_page() {
    let pki = Pki::demo();
    let server = start(&pki, &["--allow-uri", "spiffe://mtls.demo/client-b"]);
    let url = server.url("localhost");
    let browser = Chromium::with_certificate(&pki, "client-a", "Client A", &url);
    let out = browser.open(&url, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("The server is talking to Client A (spiffe://mtls.demo/client-a)"),
        "{dom}\n{}",
        text(&out)
    );
    assert!(dom.contains("<b>403 Forbidden</b>"), "{dom}");
    assert!(
        dom.contains(
            "forbidden: Client A (spiffe://mtls.demo/client-a) is not admitted: no rule matched"
        ),
        "{dom}"
    );
    assert!(
        dom.contains("<span class=\"bad\">Denied</span>: no rule matched"),
        "{dom}"
    );
    // The allowlist stays in the log, as in the plain-text 403.
    assert!(!dom.contains("spiffe://mtls.demo/client-b"), "{dom}");
    server.log.wait_for(&["identity denied", "Client A"]);
}

#[test]
fn one_connection_answers_html_to_a_browser_accept_and_text_to_everything_else() {
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    let config = client_config(&pki, Some("client-a"), http1());
    let mut conn = Conn::open(&config, server.addr).expect("connect");
    let greeting = "hello, Client A (spiffe://mtls.demo/client-a)\n";

    let page = get(&mut conn, Some(BROWSER_ACCEPT));
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("vary"), Some("accept"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(page.body.starts_with("<!doctype html>"), "{}", page.body);
    // This connection: TLS 1.2 or 1.3 as the client offered, HTTP/1.1, the peer's port.
    assert!(page.body.contains("<code>http/1.1</code>"), "{}", page.body);

    for accept in [Some("*/*"), None, Some("text/plain"), Some("text/*")] {
        let plain = get(&mut conn, accept);
        assert_eq!(plain.status, 200, "{accept:?}");
        assert_eq!(
            plain.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(plain.header("vary"), Some("accept"), "{accept:?}");
        assert_eq!(plain.body, greeting, "{accept:?}");
    }
    let again = get(&mut conn, Some("text/html"));
    assert_eq!(again.body, page.body, "one page per connection");
}

#[test]
fn the_page_claims_revocation_was_checked_only_when_a_crl_is_loaded() {
    let pki = Pki::demo();
    let crl = pki.path("crl.pem");
    pki.write_crl(&crl, &["client-b"]);
    let server = start(&pki, &["--crl", utf8(&crl)]);
    let config = client_config(&pki, Some("client-a"), http1());
    let mut conn = Conn::open(&config, server.addr).expect("connect");
    let page = get(&mut conn, Some(BROWSER_ACCEPT)).body;
    assert!(page.contains("&#10003; not revoked</span>"), "{page}");
    assert!(
        page.contains(&format!("<code>{}</code>", crl.display())),
        "{page}"
    );
    assert!(page.contains("(1 revoked, next update"), "{page}");
    assert!(!page.contains("revocation not checked"), "{page}");
}

#[test]
fn names_from_the_client_certificate_are_escaped_on_the_page() {
    let pki = Pki::demo();
    pki.issue(
        &pki.ca(),
        "client-x",
        &leaf(
            "<img src=x onerror=alert(1)>",
            Usage::Client,
            &["URI:spiffe://mtls.demo/<script>alert(2)</script>"],
            Validity::days(1),
        ),
    );
    let server = start(&pki, &[]);
    let config = client_config(&pki, Some("client-x"), http1());
    let mut conn = Conn::open(&config, server.addr).expect("connect");
    let page = get(&mut conn, Some(BROWSER_ACCEPT)).body;
    assert!(
        !page.contains("<img") && !page.contains("<script"),
        "{page}"
    );
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    assert!(
        page.contains("spiffe://mtls.demo/&lt;script&gt;alert(2)&lt;/script&gt;"),
        "{page}"
    );
}

#[test]
fn a_resumed_session_says_which_steps_it_skipped_and_that_the_chain_was_checked_again() {
    let pki = Pki::demo();
    let server = start(&pki, &[]);
    for (version, name, wire) in [
        (TlsVersion::Tls13, "TLSv1.3", "encrypted: in TLS 1.3"),
        (TlsVersion::Tls12, "TLSv1.2", "in the clear: in TLS 1.2"),
    ] {
        let policy = ClientPolicy {
            only_version: Some(version),
            http1_only: true,
        };
        let config = client_config(&pki, Some("client-a"), policy);
        let mut first = Conn::open(&config, server.addr).expect("first connection");
        let full = get(&mut first, Some(BROWSER_ACCEPT)).body;
        assert!(full.contains(&format!("<code>{name}</code>")), "{full}");
        assert!(
            full.contains("<code>no</code> &#8212; a full handshake"),
            "{full}"
        );
        assert!(full.contains(wire), "{name}: {full}");
        drop(first);

        let mut second = Conn::open(&config, server.addr).expect("second connection");
        assert!(second.resumed(), "{name}: the session did not resume");
        let resumed = get(&mut second, Some(BROWSER_ACCEPT)).body;
        assert!(
            resumed.contains("<code>yes</code> &#8212; this session resumes"),
            "{resumed}"
        );
        assert!(
            resumed.contains("Not on this connection: the session resumes an earlier one"),
            "{resumed}"
        );
        assert!(
            resumed.contains("so this server verified it again itself"),
            "{resumed}"
        );
        assert!(
            !resumed.contains("signed the handshake so far"),
            "{resumed}"
        );
    }
}

#[test]
fn a_chain_through_an_intermediate_shows_every_link_on_both_sides() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let certs = mtls::files::CertsDir::new(tmp.path().join("certs"));
    let mut opts = mtls::ca::demo::DemoOptions::new(certs.clone());
    opts.intermediate = true;
    let set = mtls::ca::demo::mint(&opts).expect("mint with an intermediate");
    assert!(set.all_ok(), "{set}");
    let server = testkit::ServerProcess::start(crate::SERVER, &["--certs", utf8(certs.path())]);
    let trust = mtls::tls::Trust::load(&certs.ca_cert()).expect("the CA");
    let identity = mtls::tls::Identity::load(&certs.cert("client-a"), &certs.key("client-a"), "a")
        .expect("Client A");
    let config = mtls::tls::client_config(
        Some(&identity),
        &trust,
        mtls::tls::SeenChain::default(),
        http1(),
        None,
    )
    .expect("config");
    let mut conn = Conn::open(&config, server.addr).expect("connect");
    let page = get(&mut conn, Some(BROWSER_ACCEPT)).body;
    assert!(
        page.contains(
            "<b>Client A</b> &larr; signed by <b>Intermediate CA</b> &larr; signed by <b>CA</b>"
        ),
        "{page}"
    );
    assert!(page.contains("The server sent 2 certificates"), "{page}");
    assert!(page.contains("<p>1: Intermediate CA</p>"), "{page}");
}

#[test]
fn behind_a_proxy_a_browser_request_is_forwarded_and_never_answered_with_the_page() {
    let pki = Pki::demo();
    let upstream = EchoUpstream::start();
    let server = start(&pki, &["--upstream", &upstream.url()]);
    let config = client_config(&pki, Some("client-a"), http1());
    let mut conn = Conn::open(&config, server.addr).expect("connect");
    let reply = get(&mut conn, Some(BROWSER_ACCEPT));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-upstream"), Some("echo"), "{}", reply.body);
    assert!(!reply.body.contains("<!doctype html>"), "{}", reply.body);
    assert!(
        reply.body.starts_with("GET / HTTP/1.1"),
        "the echo: {}",
        reply.body
    );
    let received = upstream.requests();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].headers("accept"), [BROWSER_ACCEPT]);
}

#[test]
fn behind_a_proxy_a_client_the_server_refuses_itself_gets_the_403_as_a_page() {
    let pki = Pki::demo();
    // Admitted by its common name, but two URI SANs cannot be forwarded as one identity.
    crate::identity::issue_two_uris(&pki);
    let upstream = EchoUpstream::start();
    let server = start(
        &pki,
        &["--upstream", &upstream.url(), "--allow-cn", "Client A"],
    );
    let config = client_config(&pki, Some("two-uris"), http1());
    let mut conn = Conn::open(&config, server.addr).expect("connect");
    let reply = get(&mut conn, Some(BROWSER_ACCEPT));
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = reply.body;
    assert!(
        page.contains("Admitted</span> by the rule <code>--allow-cn &#39;Client A&#39;</code>"),
        "{page}"
    );
    assert!(page.contains("Refused all the same"), "{page}");
    assert!(page.contains("2 URI SANs"), "{page}");
    assert!(upstream.requests().is_empty(), "it was forwarded");
}
