//! `certificate verify` against chains crafted per test with rcgen, each wrong in one way.
//!
//! Every case is also judged by rustls's own verifiers (the ones inside the server's and
//! the client's handshakes, built by `mtls::tls`) on the same inputs at the same moment, and
//! the test asserts that both say the same, reason included; a few cases go through a real
//! handshake with our server and our client as well.

use std::path::{Path, PathBuf};
use std::process::Command;

use mtls::error::Failure;
use mtls::tls::{self, Trust};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CidrSubnet,
    CustomExtension, ExtendedKeyUsagePurpose as Eku, GeneralSubtree, IsCa, Issuer, KeyIdMethod,
    KeyPair, KeyUsagePurpose, NameConstraints, RevokedCertParams, SerialNumber,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::Value;
use testkit::{InProcessServer, run, server_settings_in, text, utf8};
use time::{Duration, OffsetDateTime};

use crate::CERTIFICATE;

/// A CA minted for one test.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
    serial: SerialNumber,
}

/// A leaf and its key, minted for one test.
struct Leaf {
    der: CertificateDer<'static>,
    key: KeyPair,
    serial: SerialNumber,
}

fn now() -> OffsetDateTime {
    mtls::format::now()
}

/// The profile `mtls::pki` gives a CA, valid from a day ago for 30 days; `tweak` changes
/// the one thing a case is about.
fn ca_params(cn: &str, tweak: impl FnOnce(&mut CertificateParams)) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = mtls::pki::demo_subject("Verify Test", cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.serial_number = Some(mtls::pki::random_serial().expect("serial"));
    p.use_authority_key_identifier_extension = true;
    p.not_before = now() - Duration::days(1);
    p.not_after = now() + Duration::days(30);
    tweak(&mut p);
    p
}

impl Ca {
    fn root(cn: &str, tweak: impl FnOnce(&mut CertificateParams)) -> Self {
        let key = KeyPair::generate().expect("key");
        let mut params = ca_params(cn, tweak);
        params.use_authority_key_identifier_extension = false;
        let cert = params.self_signed(&key).expect("self-sign");
        Self::made(params, key, cert.der().clone())
    }

    fn sub(&self, cn: &str, tweak: impl FnOnce(&mut CertificateParams)) -> Self {
        let key = KeyPair::generate().expect("key");
        let params = ca_params(cn, tweak);
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Self::made(params, key, cert.der().clone())
    }

    fn made(params: CertificateParams, key: KeyPair, der: CertificateDer<'static>) -> Self {
        let serial = params.serial_number.clone().expect("serial");
        Self {
            issuer: Issuer::new(params, key),
            der,
            serial,
        }
    }

    /// A leaf with these SANs and purposes, valid from a day ago for 10 days.
    fn leaf(
        &self,
        sans: &[&str],
        ekus: &[Eku],
        tweak: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::default();
        p.distinguished_name = mtls::pki::demo_subject("Verify Test", "leaf");
        p.subject_alt_names = sans
            .iter()
            .map(|s| mtls::pki::parse_san(s).expect("san"))
            .collect();
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = ekus.to_vec();
        p.use_authority_key_identifier_extension = true;
        p.serial_number = Some(mtls::pki::random_serial().expect("serial"));
        p.not_before = now() - Duration::days(1);
        p.not_after = now() + Duration::days(10);
        tweak(&mut p);
        let cert = p.signed_by(&key, &self.issuer).expect("sign");
        Leaf {
            der: cert.der().clone(),
            key,
            serial: p.serial_number.clone().expect("serial"),
        }
    }

    /// A CRL from this CA revoking `serials`, due again at `next_update`.
    fn crl(&self, serials: &[&SerialNumber], next_update: OffsetDateTime) -> String {
        let params = CertificateRevocationListParams {
            this_update: now() - Duration::days(2),
            next_update,
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: (*s).clone(),
                    revocation_time: now() - Duration::hours(1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.issuer)
            .expect("sign CRL")
            .pem()
            .expect("pem")
    }
}

/// Files for one test, in a folder of its own.
struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("temp dir"))
    }

    /// Writes certificates as consecutive PEM blocks; returns the path.
    fn certs(&self, name: &str, certs: &[&CertificateDer<'_>]) -> String {
        let owned: Vec<CertificateDer<'_>> = certs.iter().map(|c| (*c).clone()).collect();
        self.write(name, mtls::pem::chain_pem(&owned).as_bytes())
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.0.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        utf8(&path).to_string()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// One question to `certificate verify`, and to rustls's verifier.
#[derive(Clone, Default)]
struct Ask {
    leaf: String,
    ca: String,
    untrusted: Vec<String>,
    purpose: Option<&'static str>,
    host: Option<String>,
    crls: Vec<String>,
    at: Option<String>,
}

impl Ask {
    fn new(leaf: &str, ca: &str) -> Self {
        Self {
            leaf: leaf.into(),
            ca: ca.into(),
            ..Self::default()
        }
    }

    fn server(mut self, host: &str) -> Self {
        self.purpose = Some("server");
        self.host = Some(host.into());
        self
    }

    fn client(mut self) -> Self {
        self.purpose = Some("client");
        self
    }

    fn crl(mut self, path: &str) -> Self {
        self.crls.push(path.into());
        self
    }

    fn untrusted(mut self, path: &str) -> Self {
        self.untrusted.push(path.into());
        self
    }

    fn at(mut self, at: &str) -> Self {
        self.at = Some(at.into());
        self
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "verify".to_string(),
            self.leaf.clone(),
            "--ca".into(),
            self.ca.clone(),
        ];
        let mut flag = |name: &str, value: &str| args.extend([name.to_string(), value.to_string()]);
        for u in &self.untrusted {
            flag("--untrusted", u);
        }
        if let Some(p) = self.purpose {
            flag("--purpose", p);
        }
        if let Some(h) = &self.host {
            flag("--host", h);
        }
        for c in &self.crls {
            flag("--crl", c);
        }
        if let Some(at) = &self.at {
            flag("--at", at);
        }
        args
    }

    /// Runs the command with --json; asserts that rustls's verifier agrees (accepted, or
    /// the same reason); returns the JSON.
    fn json(&self) -> Value {
        let out = run(Command::new(CERTIFICATE).args(self.args()).arg("--json"));
        let json: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out)));
        let accepted = json["verdict"] == "accepted";
        assert_eq!(
            out.status.code(),
            Some(if accepted { 0 } else { 1 }),
            "{}",
            text(&out)
        );
        if let Some(rustls) = self.rustls_verdict() {
            let ours = json["reason"].as_str().map(str::to_string);
            assert_eq!(
                ours,
                rustls.err(),
                "the command and rustls's verifier disagree: {json:#}"
            );
        }
        json
    }

    /// Runs the command without --json; returns (exit status, stdout + stderr).
    fn text(&self) -> (i32, String) {
        let out = run(Command::new(CERTIFICATE).args(self.args()));
        (out.status.code().unwrap_or(-1), text(&out))
    }

    /// The verdict of the verifier rustls runs in a handshake, built the way the server
    /// (client certificates) and the client (server certificates) build it: `Err(reason
    /// code)`. `None` for a question a handshake cannot ask (a server without a host).
    fn rustls_verdict(&self) -> Option<Result<(), String>> {
        let purpose = self.purpose?;
        let trust = Trust::load(Path::new(&self.ca)).expect("load the CA");
        let leaf_bytes = std::fs::read(&self.leaf).expect("read the leaf");
        let mut chain = match leaf_bytes.starts_with(b"-----") {
            true => mtls::pem::certificates(Path::new(&self.leaf), "leaf").expect("leaf"),
            false => vec![CertificateDer::from(leaf_bytes)],
        };
        for u in &self.untrusted {
            chain.extend(mtls::pem::certificates(Path::new(u), "untrusted").expect("untrusted"));
        }
        let crls = self
            .crls
            .iter()
            .flat_map(|c| mtls::pem::crls(Path::new(c), "crl").expect("crl"))
            .collect::<Vec<_>>();
        let at = match &self.at {
            Some(at) => mtls::format::parse_time(at).expect("time"),
            None => now(),
        };
        let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(at.unix_timestamp()).expect("after 1970"),
        ));
        let (leaf, intermediates) = chain.split_first().expect("a leaf");
        let verdict = match purpose {
            "client" => tls::client_verifier(&trust, crls)
                .expect("client verifier")
                .verify_client_cert(leaf, intermediates, at)
                .map(|_| ()),
            _ => {
                let name = ServerName::try_from(self.host.clone()?).expect("host");
                tls::server_verifier(&trust, crls)
                    .expect("server verifier")
                    .verify_server_cert(leaf, intermediates, &name, &[], at)
                    .map(|_| ())
            }
        };
        Some(verdict.map_err(|e| Failure::from_rustls(&e).code().to_string()))
    }

    /// Asserts a rejection for `reason`; returns the JSON.
    fn rejected(&self, reason: &str) -> Value {
        let json = self.json();
        assert_eq!(json["verdict"], "rejected", "{json:#}");
        assert_eq!(json["reason"], reason, "{json:#}");
        assert!(
            json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{json:#}"
        );
        json
    }

    /// Asserts acceptance; returns the JSON.
    fn accepted(&self) -> Value {
        let json = self.json();
        assert_eq!(json["verdict"], "accepted", "{json:#}");
        assert_eq!(json["reason"], Value::Null, "{json:#}");
        json
    }
}

/// The "which" facts of the first purpose, joined.
fn which(json: &Value) -> String {
    json["purposes"][0]["which"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// A root, an intermediate under it, and the files: `ca.pem` (the root).
struct TwoLevel {
    f: Files,
    root: Ca,
    inter: Ca,
    ca: String,
}

impl TwoLevel {
    fn new(inter: impl FnOnce(&mut CertificateParams)) -> Self {
        let f = Files::new();
        let root = Ca::root("Root", |_| {});
        let inter = root.sub("Intermediate", inter);
        let ca = f.certs("ca.pem", &[&root.der]);
        Self { f, root, inter, ca }
    }

    /// `name`: the leaf, then the intermediate.
    fn chain(&self, name: &str, leaf: &Leaf) -> String {
        self.f.certs(name, &[&leaf.der, &self.inter.der])
    }
}

#[test]
fn an_accepted_chain_shows_the_path_webpki_built_with_fingerprints() {
    let t = TwoLevel::new(|_| {});
    let leaf = t.inter.leaf(&["DNS:api.test"], &[Eku::ServerAuth], |_| {});
    let file = t.chain("leaf.pem", &leaf);
    let json = Ask::new(&file, &t.ca).server("api.test").accepted();
    let path = json["path"].as_array().expect("path");
    let roles: Vec<&str> = path.iter().filter_map(|l| l["role"].as_str()).collect();
    assert_eq!(roles, ["leaf", "intermediate", "trust anchor"], "{json:#}");
    for (link, der) in path.iter().zip([&leaf.der, &t.inter.der, &t.root.der]) {
        assert_eq!(link["sha256"], testkit::fingerprint(der), "{json:#}");
    }
    assert_eq!(path[1]["source"], format!("{file} #2"));
    assert_eq!(path[2]["source"], format!("{} #1", t.ca));
    assert!(
        path[0]["issuer"]
            .as_str()
            .is_some_and(|i| i.contains("CN=Intermediate"))
    );

    let (code, out) = Ask::new(&file, &t.ca).server("api.test").text();
    assert_eq!(code, 0, "{out}");
    for needle in [
        "As a server certificate: ACCEPTED",
        "1. leaf: ",
        "2. intermediate: ",
        "3. trust anchor: ",
        &format!("sha256 {}", testkit::fingerprint(&t.root.der)),
        "ok  name: the leaf is valid for \"api.test\" (DNS name",
        "ok  extended key usage: serverAuth",
        "keyUsage was not checked",
        "revocation was not checked",
        "Verdict: accepted",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
}

#[test]
fn an_expired_intermediate_is_named_as_the_expired_certificate() {
    let t = TwoLevel::new(|p| {
        p.not_before = now() - Duration::days(20);
        p.not_after = now() - Duration::days(2);
    });
    // The leaf itself is current: only the intermediate is out of date.
    let leaf = t.inter.leaf(&["DNS:api.test"], &[Eku::ServerAuth], |_| {});
    let file = t.chain("leaf.pem", &leaf);
    let json = Ask::new(&file, &t.ca)
        .server("api.test")
        .rejected("expired");
    let which = which(&json);
    assert!(
        which.contains("CN=Intermediate") && which.contains("expired on"),
        "{json:#}"
    );
    assert!(!which.contains("the leaf"), "{json:#}");
    assert!(
        json["message"]
            .as_str()
            .is_some_and(|m| m.contains("has expired"))
    );
}

#[test]
fn an_intermediate_restricted_to_client_auth_cannot_vouch_for_a_server() {
    let t = TwoLevel::new(|p| p.extended_key_usages = vec![Eku::ClientAuth]);
    let server = t.inter.leaf(&["DNS:api.test"], &[Eku::ServerAuth], |_| {});
    let file = t.chain("server.pem", &server);
    let json = Ask::new(&file, &t.ca)
        .server("api.test")
        .rejected("bad_usage");
    assert!(
        which(&json).contains("CN=Intermediate") && which(&json).contains("lists only clientAuth"),
        "{json:#}"
    );
    // The same intermediate vouches for clients.
    let client = t
        .inter
        .leaf(&["URI:spiffe://t/c"], &[Eku::ClientAuth], |_| {});
    Ask::new(&t.chain("client.pem", &client), &t.ca)
        .client()
        .accepted();
}

#[test]
fn dns_name_constraints_permit_and_exclude_as_webpki_rules() {
    let t = TwoLevel::new(|p| {
        p.name_constraints = Some(NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::DnsName("example.test".into())],
            excluded_subtrees: vec![GeneralSubtree::DnsName("secret.example.test".into())],
        });
    });
    let inside = t
        .inter
        .leaf(&["DNS:api.example.test"], &[Eku::ServerAuth], |_| {});
    Ask::new(&t.chain("in.pem", &inside), &t.ca)
        .server("api.example.test")
        .accepted();
    let outside = t
        .inter
        .leaf(&["DNS:api.other.test"], &[Eku::ServerAuth], |_| {});
    let json = Ask::new(&t.chain("out.pem", &outside), &t.ca)
        .server("api.other.test")
        .rejected("name_constraints");
    assert!(
        json["message"]
            .as_str()
            .is_some_and(|m| m.contains("name-constrained"))
    );
    let excluded = t
        .inter
        .leaf(&["DNS:db.secret.example.test"], &[Eku::ServerAuth], |_| {});
    Ask::new(&t.chain("excluded.pem", &excluded), &t.ca)
        .server("db.secret.example.test")
        .rejected("name_constraints");
}

#[test]
fn ip_name_constraints_permit_only_their_subnet() {
    let t = TwoLevel::new(|p| {
        p.name_constraints = Some(NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::IpAddress(
                "10.0.0.0/8".parse::<CidrSubnet>().expect("cidr"),
            )],
            excluded_subtrees: vec![],
        });
    });
    let inside = t.inter.leaf(&["IP:10.1.2.3"], &[Eku::ServerAuth], |_| {});
    Ask::new(&t.chain("in.pem", &inside), &t.ca)
        .server("10.1.2.3")
        .accepted();
    let outside = t
        .inter
        .leaf(&["IP:192.168.1.1"], &[Eku::ServerAuth], |_| {});
    Ask::new(&t.chain("out.pem", &outside), &t.ca)
        .server("192.168.1.1")
        .rejected("name_constraints");
}

#[test]
fn a_path_longer_than_a_path_length_constraint_allows_is_refused() {
    let t = TwoLevel::new(|p| p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0)));
    let below = t.inter.sub("Sub-intermediate", |_| {});
    let leaf = below.leaf(&["DNS:api.test"], &[Eku::ServerAuth], |_| {});
    let file =
        t.f.certs("leaf.pem", &[&leaf.der, &below.der, &t.inter.der]);
    let json = Ask::new(&file, &t.ca)
        .server("api.test")
        .rejected("path_length");
    assert!(
        which(&json).contains("allows at most 0 CA(s) below it"),
        "{json:#}"
    );
    // One level less is fine.
    let direct = t.inter.leaf(&["DNS:api.test"], &[Eku::ServerAuth], |_| {});
    Ask::new(&t.chain("direct.pem", &direct), &t.ca)
        .server("api.test")
        .accepted();
}

#[test]
fn ip_addresses_match_only_ip_sans_and_dns_names_only_dns_sans() {
    let t = TwoLevel::new(|_| {});
    let ip = t.inter.leaf(&["IP:127.0.0.1"], &[Eku::ServerAuth], |_| {});
    let ip_file = t.chain("ip.pem", &ip);
    let json = Ask::new(&ip_file, &t.ca).server("127.0.0.1").accepted();
    assert!(
        json["purposes"][0]["checks"]
            .to_string()
            .contains("IP address"),
        "{json:#}"
    );
    let json = Ask::new(&ip_file, &t.ca)
        .server("localhost")
        .rejected("name_mismatch");
    assert!(
        json["message"]
            .as_str()
            .is_some_and(|m| m.contains("IP:127.0.0.1")),
        "{json:#}"
    );
    let dns = t.inter.leaf(&["DNS:localhost"], &[Eku::ServerAuth], |_| {});
    let dns_file = t.chain("dns.pem", &dns);
    Ask::new(&dns_file, &t.ca).server("localhost").accepted();
    Ask::new(&dns_file, &t.ca)
        .server("127.0.0.1")
        .rejected("name_mismatch");
    Ask::new(&dns_file, &t.ca)
        .server("::1")
        .rejected("name_mismatch");
    // IPv6 in brackets, as in a URL.
    let v6 = t.inter.leaf(&["IP:::1"], &[Eku::ServerAuth], |_| {});
    let (code, out) = Ask::new(&t.chain("v6.pem", &v6), &t.ca)
        .server("[::1]")
        .text();
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_wildcard_covers_exactly_one_label() {
    let t = TwoLevel::new(|_| {});
    let leaf = t
        .inter
        .leaf(&["DNS:*.example.test"], &[Eku::ServerAuth], |_| {});
    let file = t.chain("wild.pem", &leaf);
    Ask::new(&file, &t.ca).server("api.example.test").accepted();
    Ask::new(&file, &t.ca).server("API.Example.Test").accepted();
    Ask::new(&file, &t.ca)
        .server("example.test")
        .rejected("name_mismatch");
    Ask::new(&file, &t.ca)
        .server("a.b.example.test")
        .rejected("name_mismatch");
}

#[test]
fn a_ca_certificate_is_refused_as_a_leaf() {
    let t = TwoLevel::new(|_| {});
    let ca_leaf = t.inter.leaf(&["DNS:api.test"], &[Eku::ServerAuth], |p| {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    });
    let json = Ask::new(&t.chain("ca-leaf.pem", &ca_leaf), &t.ca)
        .server("api.test")
        .rejected("bad_usage");
    assert!(
        which(&json).contains("is a CA (basicConstraints CA:TRUE)"),
        "{json:#}"
    );
    // A LEAF file whose first certificate is the intermediate: the first is the leaf.
    let leaf = t.inter.leaf(&["DNS:api.test"], &[Eku::ServerAuth], |_| {});
    let swapped = t.f.certs("swapped.pem", &[&t.inter.der, &leaf.der]);
    let json = Ask::new(&swapped, &t.ca)
        .server("api.test")
        .rejected("bad_usage");
    assert!(
        json["message"]
            .as_str()
            .is_some_and(|m| m.contains("CA certificate")),
        "{json:#}"
    );
}

#[test]
fn an_unknown_critical_extension_is_refused_and_a_non_critical_one_is_not() {
    let unknown = |critical: bool| {
        let mut ext =
            CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 55555, 1], vec![0x05, 0x00]);
        ext.set_criticality(critical);
        ext
    };
    let t = TwoLevel::new(|_| {});
    let critical = t.inter.leaf(&["DNS:api.test"], &[Eku::ServerAuth], |p| {
        p.custom_extensions = vec![unknown(true)];
    });
    let json = Ask::new(&t.chain("critical.pem", &critical), &t.ca)
        .server("api.test")
        .rejected("unsupported_extension");
    assert!(
        json["message"]
            .as_str()
            .is_some_and(|m| m.contains("marked critical")),
        "{json:#}"
    );
    let plain = t.inter.leaf(&["DNS:api.test"], &[Eku::ServerAuth], |p| {
        p.custom_extensions = vec![unknown(false)];
    });
    Ask::new(&t.chain("plain.pem", &plain), &t.ca)
        .server("api.test")
        .accepted();
    // On the intermediate, too.
    let t = TwoLevel::new(|p| p.custom_extensions = vec![unknown(true)]);
    let leaf = t.inter.leaf(&["DNS:api.test"], &[Eku::ServerAuth], |_| {});
    Ask::new(&t.chain("leaf.pem", &leaf), &t.ca)
        .server("api.test")
        .rejected("unsupported_extension");
}

#[test]
fn a_crl_that_revokes_the_intermediate_refuses_every_leaf_below_it() {
    let t = TwoLevel::new(|_| {});
    let leaf = t
        .inter
        .leaf(&["URI:spiffe://t/c"], &[Eku::ClientAuth], |_| {});
    let file = t.chain("client.pem", &leaf);
    let week = now() + Duration::days(7);
    let root_crl =
        t.f.write("root.crl", t.root.crl(&[&t.inter.serial], week).as_bytes());
    let inter_crl = t.f.write("inter.crl", t.inter.crl(&[], week).as_bytes());
    let json = Ask::new(&file, &t.ca)
        .client()
        .crl(&root_crl)
        .crl(&inter_crl)
        .rejected("revoked");
    assert!(
        which(&json).contains("CN=Intermediate") && which(&json).contains("listed as revoked"),
        "{json:#}"
    );
    // Lists that revoke nothing: accepted, and the check is reported.
    let clean_root = t.f.write("clean.crl", t.root.crl(&[], week).as_bytes());
    let json = Ask::new(&file, &t.ca)
        .client()
        .crl(&clean_root)
        .crl(&inter_crl)
        .accepted();
    assert!(
        json["purposes"][0]["checks"]
            .to_string()
            .contains("revocation:"),
        "{json:#}"
    );
    // The server's rule: every certificate needs its issuer's list.
    Ask::new(&file, &t.ca)
        .client()
        .crl(&clean_root)
        .rejected("revocation_unknown");
}

#[test]
fn an_expired_crl_is_a_failure_not_a_pass() {
    let t = TwoLevel::new(|_| {});
    let leaf = t
        .inter
        .leaf(&["URI:spiffe://t/c"], &[Eku::ClientAuth], |_| {});
    let file = t.chain("client.pem", &leaf);
    let root_crl = t.f.write(
        "root.crl",
        t.root.crl(&[], now() + Duration::days(7)).as_bytes(),
    );
    let stale = t.inter.crl(&[], now() - Duration::hours(1));
    let stale = t.f.write("stale.crl", stale.as_bytes());
    let json = Ask::new(&file, &t.ca)
        .client()
        .crl(&root_crl)
        .crl(&stale)
        .rejected("crl_expired");
    assert!(
        json["message"]
            .as_str()
            .is_some_and(|m| m.contains("out of date")),
        "{json:#}"
    );
}

#[test]
fn at_asks_whether_a_certificate_will_still_work_later_or_worked_before() {
    let t = TwoLevel::new(|_| {});
    // Valid from a day ago for 10 days.
    let leaf = t.inter.leaf(&["DNS:api.test"], &[Eku::ServerAuth], |_| {});
    let file = t.chain("leaf.pem", &leaf);
    let date = |d: Duration| (now() + d).date().to_string();
    let json = Ask::new(&file, &t.ca)
        .server("api.test")
        .at(&date(Duration::days(20)))
        .rejected("expired");
    assert!(which(&json).contains("the leaf"), "{json:#}");
    Ask::new(&file, &t.ca)
        .server("api.test")
        .at(&date(Duration::days(-5)))
        .rejected("not_yet_valid");
    // RFC 3339 with fractional seconds and an offset: two days ahead is still fine.
    let later = (now() + Duration::days(2)).to_offset(time::macros::offset!(+05:30));
    let at = format!(
        "{}T{:02}:{:02}:{:02}.25+05:30",
        later.date(),
        later.hour(),
        later.minute(),
        later.second()
    );
    let json = Ask::new(&file, &t.ca).server("api.test").at(&at).accepted();
    let utc = json["at"].as_str().expect("at");
    assert_eq!(
        mtls::format::parse_time(utc)
            .expect("rfc3339")
            .unix_timestamp(),
        later.unix_timestamp(),
        "{json:#}"
    );
    // A date alone is midnight UTC.
    let json = Ask::new(&file, &t.ca)
        .server("api.test")
        .at("2030-01-02")
        .json();
    assert_eq!(json["at"], "2030-01-02T00:00:00Z");
}

#[test]
fn a_client_only_certificate_checked_with_a_host_is_refused_for_its_purpose() {
    let t = TwoLevel::new(|_| {});
    let leaf = t.inter.leaf(&["DNS:api.test"], &[Eku::ClientAuth], |_| {});
    let file = t.chain("client.pem", &leaf);
    let json = Ask::new(&file, &t.ca)
        .server("api.test")
        .rejected("bad_usage");
    assert!(
        json["message"]
            .as_str()
            .is_some_and(|m| m.contains("server authentication")),
        "{json:#}"
    );
    // Without --host or --purpose both are checked, and it serves as a client only.
    let json = Ask::new(&file, &t.ca).accepted();
    let verdicts: Vec<(&str, &str)> = json["purposes"]
        .as_array()
        .expect("purposes")
        .iter()
        .map(|p| {
            (
                p["purpose"].as_str().unwrap_or(""),
                p["verdict"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(verdicts, [("server", "rejected"), ("client", "accepted")]);
    let (code, out) = Ask::new(&file, &t.ca).text();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("accepted as a client certificate only"),
        "{out}"
    );
    // A leaf without any EKU serves both, as webpki reads an absent extension.
    let any = t.inter.leaf(&["DNS:api.test"], &[], |_| {});
    let (code, out) = Ask::new(&t.chain("any.pem", &any), &t.ca).text();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("accepted as a server and as a client certificate"),
        "{out}"
    );
}

#[test]
fn only_the_exact_purpose_counts_any_extended_key_usage_does_not() {
    let t = TwoLevel::new(|_| {});
    let leaf = t.inter.leaf(&["DNS:api.test"], &[Eku::Any], |_| {});
    Ask::new(&t.chain("any.pem", &leaf), &t.ca)
        .server("api.test")
        .rejected("bad_usage");
}

#[test]
fn webpki_ignores_key_usage_and_the_trust_anchors_dates_so_the_command_does_too() {
    let f = Files::new();
    let root = Ca::root("Old Root", |p| {
        p.not_before = now() - Duration::days(400);
        p.not_after = now() - Duration::days(1);
    });
    let inter = root.sub("Intermediate", |p| {
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature]
    });
    let leaf = inter.leaf(&["DNS:api.test"], &[Eku::ServerAuth], |p| {
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    });
    let ca = f.certs("ca.pem", &[&root.der]);
    let file = f.certs("leaf.pem", &[&leaf.der, &inter.der]);
    let json = Ask::new(&file, &ca).server("api.test").accepted();
    let notes = json["notes"].to_string();
    assert!(notes.contains("ignores its dates"), "{json:#}");
    assert!(notes.contains("keyUsage was not checked"), "{json:#}");
}

#[test]
fn an_issuer_that_is_not_a_ca_cannot_sign() {
    let t = TwoLevel::new(|p| p.is_ca = IsCa::ExplicitNoCa);
    let leaf = t.inter.leaf(&["DNS:api.test"], &[Eku::ServerAuth], |_| {});
    Ask::new(&t.chain("leaf.pem", &leaf), &t.ca)
        .server("api.test")
        .rejected("issuer_not_ca");
}

#[test]
fn a_certificate_signed_by_another_key_under_the_same_name_has_a_bad_signature() {
    let t = TwoLevel::new(|_| {});
    let impostor = Ca::root("Root", |_| {});
    let leaf = impostor.leaf(&["DNS:api.test"], &[Eku::ServerAuth], |_| {});
    let file = t.f.certs("leaf.pem", &[&leaf.der]);
    Ask::new(&file, &t.ca)
        .server("api.test")
        .rejected("bad_signature");
}

#[test]
fn intermediates_come_from_the_leaf_file_or_untrusted_and_roots_from_a_bundle() {
    let t = TwoLevel::new(|_| {});
    let leaf = t.inter.leaf(&["DNS:api.test"], &[Eku::ServerAuth], |_| {});
    let alone = t.f.certs("alone.pem", &[&leaf.der]);
    let json = Ask::new(&alone, &t.ca)
        .server("api.test")
        .rejected("unknown_ca");
    assert!(
        json["message"]
            .as_str()
            .is_some_and(|m| m.contains("CN=Intermediate")),
        "{json:#}"
    );
    let more = t.f.certs("more.pem", &[&t.inter.der]);
    let json = Ask::new(&alone, &t.ca)
        .server("api.test")
        .untrusted(&more)
        .accepted();
    assert_eq!(json["path"][1]["source"], format!("{more} #1"));
    // A bundle of roots: the path ends at the second.
    let other = Ca::root("Other Root", |_| {});
    let bundle = t.f.certs("bundle.pem", &[&other.der, &t.root.der]);
    let json = Ask::new(&t.chain("leaf.pem", &leaf), &bundle)
        .server("api.test")
        .accepted();
    assert_eq!(json["path"][2]["source"], format!("{bundle} #2"));
    // The intermediate itself as a trust anchor: a path of two.
    let json = Ask::new(&alone, &more).server("api.test").accepted();
    assert_eq!(json["path"].as_array().map(Vec::len), Some(2), "{json:#}");
}

#[test]
fn files_in_der_or_holding_the_wrong_thing_are_named() {
    let t = TwoLevel::new(|_| {});
    let leaf = t.inter.leaf(&["DNS:api.test"], &[Eku::ServerAuth], |_| {});
    let der = t.f.write("leaf.der", &leaf.der);
    let more = t.f.certs("more.pem", &[&t.inter.der]);
    Ask::new(&der, &t.ca)
        .server("api.test")
        .untrusted(&more)
        .accepted();
    let fails = |ask: Ask, needle: &str| {
        let (code, out) = ask.text();
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains(needle) && !out.contains("panicked"),
            "{needle:?}:\n{out}"
        );
    };
    let key_der = t.f.write("key.der", &leaf.key.serialize_der());
    fails(
        Ask::new(&key_der, &t.ca).server("api.test"),
        "holds binary (DER) data that is not one X.509 certificate",
    );
    let key_pem = t.f.write("key.pem", leaf.key.serialize_pem().as_bytes());
    fails(
        Ask::new(&key_pem, &t.ca).server("api.test"),
        "holds a PRIVATE KEY but no CERTIFICATE",
    );
    let empty = t.f.write("empty.pem", b"");
    fails(
        Ask::new(&empty, &t.ca).server("api.test"),
        "is not a PEM file",
    );
    let missing = utf8(&t.f.path("missing.pem")).to_string();
    fails(
        Ask::new(&der, &missing).server("api.test"),
        "cannot read the CA certificate",
    );
    fails(
        Ask::new(&der, &t.ca).server("api.test").crl(&more),
        "holds a CERTIFICATE but no X509 CRL",
    );
}

#[test]
fn mistakes_on_the_command_line_exit_with_status_2() {
    let t = TwoLevel::new(|_| {});
    let leaf = t.inter.leaf(&["DNS:api.test"], &[Eku::ServerAuth], |_| {});
    let file = t.chain("leaf.pem", &leaf);
    for (ask, needle) in [
        (
            Ask::new(&file, &t.ca).server("not a host"),
            "neither a DNS name nor an IP address",
        ),
        (
            Ask::new(&file, &t.ca).server("api.test").at("next month"),
            "is not a time",
        ),
        (
            Ask::new(&file, &t.ca).server("api.test").at("1969-12-31"),
            "1970 or later",
        ),
        (
            Ask {
                purpose: Some("client"),
                host: Some("api.test".into()),
                ..Ask::new(&file, &t.ca)
            },
            "drop --host to check a client certificate",
        ),
    ] {
        let (code, out) = ask.text();
        assert_eq!(code, 2, "{out}");
        assert!(out.contains(needle), "{needle:?}:\n{out}");
    }
}

#[test]
fn the_folder_ca_is_the_default_trust() {
    let (tmp, certs) = demo_set();
    let out = run(Command::new(CERTIFICATE).args([
        "verify",
        utf8(&certs.join("server.crt")),
        "--host",
        "localhost",
        "--certs",
        utf8(&certs),
    ]));
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("trusting:   {}", utf8(&certs.join("ca.crt")))),
        "{stdout}"
    );
    // No folder at all: the missing ca.crt is named, with how to make one.
    let out = run(Command::new(CERTIFICATE)
        .args(["verify", utf8(&certs.join("server.crt")), "--certs"])
        .arg(tmp.path().join("nowhere")));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("ca.crt"), "{}", text(&out));
}

/// The demo set, minted by the binary into a folder of its own.
fn demo_set() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("certs");
    let out = run(Command::new(CERTIFICATE).args(["--certs", utf8(&dir)]));
    assert!(out.status.success(), "{}", text(&out));
    (tmp, dir)
}

/// Our server, trusting `ca` (with `crls`), presenting the demo set's server certificate
/// from `dir`; the client presents `client` (leaf, then chain) and its key.
fn handshake_as_client(
    dir: &Path,
    ca: &str,
    crls: &[&str],
    client: &str,
    key: &Path,
) -> mtls::Result<()> {
    let mut settings = server_settings_in(dir);
    settings.ca = ca.into();
    settings.crls = crls.iter().map(PathBuf::from).collect();
    let server = InProcessServer::start(settings);
    testkit::fetch(
        &server.url("localhost"),
        dir.join("ca.crt"),
        Some((client.into(), key.to_path_buf())),
    )
    .map(|_| ())
}

#[test]
fn the_verdict_on_a_client_certificate_is_the_verdict_of_a_real_handshake_with_our_server() {
    let t = TwoLevel::new(|_| {});
    let (_demo, dir) = demo_set();
    let week = now() + Duration::days(7);
    let good = t
        .inter
        .leaf(&["URI:spiffe://t/good"], &[Eku::ClientAuth], |_| {});
    let wrong_purpose = t
        .inter
        .leaf(&["URI:spiffe://t/srv"], &[Eku::ServerAuth], |_| {});
    let ca_leaf = t
        .inter
        .leaf(&["URI:spiffe://t/ca"], &[Eku::ClientAuth], |p| {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        });
    let revoked = t
        .inter
        .leaf(&["URI:spiffe://t/revoked"], &[Eku::ClientAuth], |_| {});
    let root_crl = t.f.write("root.crl", t.root.crl(&[], week).as_bytes());
    let inter_crl = t.f.write(
        "inter.crl",
        t.inter.crl(&[&revoked.serial], week).as_bytes(),
    );
    let stale = t.f.write(
        "stale.crl",
        t.inter.crl(&[], now() - Duration::hours(1)).as_bytes(),
    );
    let cases: [(&str, &Leaf, Vec<&str>); 5] = [
        ("good", &good, vec![]),
        ("wrong-purpose", &wrong_purpose, vec![]),
        ("ca-leaf", &ca_leaf, vec![]),
        ("revoked", &revoked, vec![&root_crl, &inter_crl]),
        ("stale-crl", &good, vec![&root_crl, &stale]),
    ];
    for (name, leaf, crls) in cases {
        let cert = t.chain(&format!("{name}.pem"), leaf);
        let key = t.f.path(&format!("{name}.key"));
        std::fs::write(&key, leaf.key.serialize_pem()).expect("write key");
        let ask = crls
            .iter()
            .fold(Ask::new(&cert, &t.ca).client(), |ask, c| ask.crl(c));
        let verdict = ask.json();
        let handshake = handshake_as_client(&dir, &t.ca, &crls, &cert, &key);
        assert_eq!(
            verdict["verdict"] == "accepted",
            handshake.is_ok(),
            "{name}: verify says {verdict:#}, the handshake {handshake:?}"
        );
        if let Err(e) = handshake {
            // Refused by the server for its certificate, not for anything else.
            assert!(
                e.to_string().contains("refused our certificate"),
                "{name}: {e}"
            );
        }
    }
}

#[test]
fn the_verdict_on_a_server_certificate_is_the_verdict_of_our_client_dialing_it() {
    let t = TwoLevel::new(|_| {});
    // A client certificate the server accepts, so only the server's certificate is at stake.
    let (_demo, dir) = demo_set();
    let cases: [(&str, Leaf, &str); 4] = [
        (
            "both-names",
            t.inter.leaf(
                &["DNS:localhost", "IP:127.0.0.1"],
                &[Eku::ServerAuth],
                |_| {},
            ),
            "localhost",
        ),
        (
            "ip-only",
            t.inter.leaf(&["IP:127.0.0.1"], &[Eku::ServerAuth], |_| {}),
            "localhost",
        ),
        (
            "ip-dialed",
            t.inter.leaf(&["IP:127.0.0.1"], &[Eku::ServerAuth], |_| {}),
            "127.0.0.1",
        ),
        (
            "client-only",
            t.inter.leaf(&["DNS:localhost"], &[Eku::ClientAuth], |_| {}),
            "localhost",
        ),
    ];
    for (name, leaf, host) in cases {
        let cert = t.chain(&format!("{name}.pem"), &leaf);
        let key = t.f.path(&format!("{name}.key"));
        std::fs::write(&key, leaf.key.serialize_pem()).expect("write key");
        let verdict = Ask::new(&cert, &t.ca).server(host).json();
        let mut settings = server_settings_in(&dir);
        settings.cert = cert.into();
        settings.key = key;
        let server = InProcessServer::start(settings);
        let dialed = testkit::fetch(
            &server.url(host),
            t.f.path("ca.pem"),
            Some((dir.join("client-a.crt"), dir.join("client-a.key"))),
        );
        assert_eq!(
            verdict["verdict"] == "accepted",
            dialed.is_ok(),
            "{name}: verify says {verdict:#}, the client {:?}",
            dialed.as_ref().err()
        );
        if let Err(e) = dialed {
            let failure = e.failure().map(Failure::code);
            assert_eq!(failure, verdict["reason"].as_str(), "{name}: {e}");
        }
    }
}
