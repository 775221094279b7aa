//! `certificate doctor`: checks a certificate folder as a whole, the way a handshake will
//! judge it, and for each failure says why it matters and which command fixes it. The demo
//! set is checked here too, right after it is minted ([`demo_set`]), the way the Go demo
//! asks a learner to check it by eye: one checker, one result type.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

use super::crl::CrlInfo;
use super::folder::{self, Stored};
use super::rotate;
use crate::certinfo::{CertInfo, Eku, San};
use crate::error::{Error, Failure, Result};
use crate::explain::Side;
use crate::files::{CertsDir, ClientId, Role, previous};
use crate::format::{format_span, format_time};
use crate::pem;
use crate::pki::Usage;
use crate::program::Program;
use crate::tls::{self, Identity, Trust};

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Fine.
    Ok,
    /// Works today, needs attention soon.
    Warn,
    /// Broken: some handshake will fail because of it.
    Fail,
}

/// One check's result.
#[derive(Clone, Debug)]
pub struct Finding {
    /// Outcome.
    pub level: Level,
    /// The file it is about.
    pub file: String,
    /// What was found.
    pub text: String,
    /// Why it matters (for warnings and failures).
    pub why: Option<String>,
    /// The command that fixes it.
    pub fix: Option<String>,
}

/// Every finding for one folder.
#[derive(Clone, Debug)]
pub struct Report {
    /// The folder.
    pub dir: String,
    /// The host the server certificate must cover.
    pub host: String,
    /// In order.
    pub findings: Vec<Finding>,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        })
    }
}

impl Finding {
    /// The file and what was found, as one sentence: `server.key matches server.crt`.
    pub fn sentence(&self) -> String {
        if self.text.starts_with('\'') {
            format!("{}{}", self.file, self.text)
        } else {
            format!("{} {}", self.file, self.text)
        }
    }
}

impl Level {
    /// `ok`, `warn` or `fail`, for JSON.
    pub fn name(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

impl Report {
    /// The same findings as JSON, for scripts: `passed`, and each finding with its level,
    /// file, text, why and fix.
    pub fn to_json(&self) -> serde_json::Value {
        let count = |l: Level| self.findings.iter().filter(|x| x.level == l).count();
        serde_json::json!({
            "dir": self.dir,
            "host": self.host,
            "passed": self.passed(),
            "counts": {
                "ok": count(Level::Ok),
                "warn": count(Level::Warn),
                "fail": count(Level::Fail),
            },
            "findings": self.findings.iter().map(|f| serde_json::json!({
                "level": f.level.name(),
                "file": f.file,
                "text": f.text,
                "why": f.why,
                "fix": f.fix,
            })).collect::<Vec<_>>(),
        })
    }

    /// True when nothing failed (warnings allowed).
    pub fn passed(&self) -> bool {
        self.findings.iter().all(|f| f.level != Level::Fail)
    }
}

/// The `certificate` command with `args`, as the user runs it.
fn cmd(args: String) -> String {
    Program::Certificate.command(&args)
}

struct Checks(Vec<Finding>);

impl Checks {
    fn ok(&mut self, file: &str, text: String) {
        self.0.push(Finding {
            level: Level::Ok,
            file: file.into(),
            text,
            why: None,
            fix: None,
        });
    }

    fn bad(&mut self, level: Level, file: &str, text: String, why: &str, fix: String) {
        self.0.push(Finding {
            level,
            file: file.into(),
            text,
            why: Some(why.into()),
            fix: Some(fix),
        });
    }

    fn check(&mut self, pass: bool, file: &str, ok: String, fail: String, why: &str, fix: String) {
        if pass {
            self.ok(file, ok);
        } else {
            self.bad(Level::Fail, file, fail, why, fix);
        }
    }
}

/// Examines `dir`; `host` is the name clients will dial to reach `server.crt`.
pub fn examine(dir: &CertsDir, host: &str) -> Result<Report> {
    let now = OffsetDateTime::now_utc();
    let (mut all, broken) = folder::scan_all(dir)?;
    let ca = Role::Ca.stem();
    let server = Role::Server.stem();
    // The root first, then the other CAs, then the leaves: the order trust flows in.
    all.sort_by_key(|s| (s.name != ca, !s.is_ca(), s.name.clone()));
    let mut c = Checks(Vec::new());
    let d = dir.path().display().to_string();
    let fresh = cmd(format!("--certs {d} --force"));
    for (path, why) in &broken {
        c.bad(
            Level::Fail,
            &path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            format!("cannot be read: {why}"),
            "whoever loads it (server, client, this tool) stops with an error",
            format!("rm {}   # or replace it with a good copy", path.display()),
        );
    }

    let Some(root) = all.iter().find(|s| s.name == ca) else {
        c.bad(
            Level::Fail,
            "ca.crt",
            "there is no ca.crt: nothing can be verified without the CA".into(),
            "both sides verify their peer against the CA certificate",
            cmd(format!("--certs {d}")),
        );
        return Ok(Report {
            dir: d,
            host: host.into(),
            findings: c.0,
        });
    };
    let (trust_certs, anchors): (Vec<_>, Vec<_>) =
        pem::described_certificates(&root.cert_path, "the CA certificate")?
            .into_iter()
            .unzip();
    let trust = Trust::from_certs(trust_certs.clone(), &root.cert_path)?;

    // The root CA.
    let r = &root.info;
    c.check(
        r.ca == Some(true) && r.key_usage.contains(&"keyCertSign"),
        "ca.crt",
        "is a CA (CA:TRUE) allowed to sign certificates (keyCertSign)".into(),
        format!("is not a usable CA (basic constraints {:?}, key usage {:?})", r.ca, r.key_usage),
        "a certificate without CA:TRUE and keyCertSign cannot vouch for other certificates; every verifier will refuse the chain",
        fresh.clone(),
    );
    c.check(
        r.self_signed,
        "ca.crt",
        "is self-signed (a root: its own issuer, its signature verifies with its own key)".into(),
        "is not self-signed, so it is not a root".into(),
        "the file both sides trust should be the root of the chain",
        fresh.clone(),
    );

    permissions(&mut c, dir, &d);

    // Every certificate: dates, keys, role.
    let intermediate = Role::Intermediate.stem();
    for s in &all {
        let file = format!("{}.crt", s.name);
        let info = &s.info;
        validity(&mut c, s, &all, now);
        key_checks(&mut c, s);
        // An intermediate.crt is the default issuer just by existing (the root's own
        // checks are above).
        if s.name == intermediate && !s.is_ca() {
            c.bad(
                Level::Fail,
                &file,
                format!(
                    "is not a CA (CA:FALSE), yet it is the default issuer: `issue` signs with \
                     {file} whenever it exists"
                ),
                "every `issue` without --issuer fails with \"not a CA\"",
                cmd(format!(
                    "issue {} --intermediate --force --certs {d}",
                    s.name
                )),
            );
            continue;
        }
        if s.is_ca() {
            if s.name == previous(ca) {
                old_root(&mut c, s, &trust_certs, &d);
            } else if s.name != ca {
                // During a rotation the old intermediate hangs off the old root.
                let parent = folder::find_issuer(&all, info)
                    .map(|p| p.name.as_str())
                    .filter(|p| *p == ca || *p == previous(ca));
                c.check(
                    parent.is_some() && info.key_usage.contains(&"keyCertSign"),
                    &file,
                    format!(
                        "is an intermediate CA issued by {}.crt, allowed to sign (keyCertSign)",
                        parent.unwrap_or(ca)
                    ),
                    format!(
                        "is a CA, but not one issued by ca.crt (its issuer is \"{}\")",
                        info.issuer
                    ),
                    "leaves it signs will not chain to the CA clients and servers trust",
                    cmd(format!(
                        "issue {} --intermediate --force --certs {d}",
                        s.name
                    )),
                );
            }
            continue;
        }
        c.check(
            info.ca != Some(true),
            &file,
            "is a leaf (CA:FALSE)".into(),
            "is a CA certificate used as a leaf".into(),
            "verifiers refuse a CA certificate presented as a server or client identity",
            cmd(format!("issue {} --client --force --certs {d}", s.name)),
        );
        let is_server = info.has_eku(&Eku::ServerAuth);
        let is_client = info.has_eku(&Eku::ClientAuth);
        let wants_server = s.name == server || (is_server && !s.name.starts_with("client"));
        let usage_ok = if s.name == server {
            is_server
        } else if s.name.starts_with("client") {
            is_client
        } else {
            is_server || is_client
        };
        let needed = if s.name == server {
            "serverAuth"
        } else if s.name.starts_with("client") {
            "clientAuth"
        } else {
            "serverAuth or clientAuth"
        };
        c.check(
            usage_ok,
            &file,
            format!("is meant for {} (extended key usage)", info.ekus_text()),
            format!("lacks the extended key usage {needed} (it has {})", info.ekus_text()),
            "rustls, Go and browsers refuse a certificate whose extended key usage does not allow its role",
            cmd(format!("issue {} --{} --force --certs {d}", s.name, if needed == "clientAuth" { "client" } else { "server" })),
        );
        // The chain, checked exactly as a handshake would (for servers, under one of its own
        // names; whether it covers --host is its own check below).
        let usage = if wants_server {
            Usage::Server
        } else {
            Usage::Client
        };
        let own_name = info.sans.iter().find_map(|san| match san {
            San::Dns(d) => Some(d.clone()),
            San::Ip(ip) => Some(ip.to_string()),
            _ => None,
        });
        let verify_as = own_name.clone().unwrap_or_else(|| host.to_string());
        match tls::verify_leaf(&trust, &s.chain, usage, &verify_as) {
            Ok(()) => c.ok(
                &file,
                "chains to ca.crt and verifies as a handshake would".into(),
            ),
            // Reported by the validity check already.
            Err(Failure::Expired { .. } | Failure::NotYetValid { .. }) => {}
            Err(f) => {
                let judge = if usage == Usage::Server {
                    Side::Client
                } else {
                    Side::Server
                };
                let cx = crate::explain::Context {
                    ca: Some(root.cert_path.clone()),
                    anchors: anchors.clone(),
                    ..crate::explain::Context::default()
                };
                // `renew` keeps the names; it needs the issuing CA in the folder, or the CA
                // that succeeded it after a rotation (retired or not); without either, issue anew.
                let renewable = folder::find_issuer(&all, info).is_some()
                    || super::rotate::retired_successor(dir, &all, info).is_some();
                let fix = match renewable {
                    true => cmd(format!("renew {} --certs {d}", s.name)),
                    false => cmd(format!(
                        "issue {} --{} --force --certs {d}",
                        s.name,
                        if wants_server { "server" } else { "client" }
                    )),
                };
                c.bad(
                    Level::Fail,
                    &file,
                    format!("does not verify against ca.crt: {}", f.explain(judge, &cx)),
                    "the peer will refuse it during the handshake",
                    fix,
                )
            }
        }
        if s.name == server {
            let covered = tls::names_host(&s.chain[0], host);
            c.check(
                covered,
                &file,
                format!("names \"{host}\" among its SANs ({})", info.sans_text()),
                format!(
                    "does not name \"{host}\": its SANs are {}",
                    info.sans_text()
                ),
                "a client dialing that host refuses the server (\"not valid for\" the name)",
                cmd(format!("renew {} --san {host} --certs {d}", s.name)),
            );
        }
    }

    rotation(&mut c, &all, now, &d);

    // Serial numbers must be unique per issuer; we insist across the folder.
    let mut serials: BTreeMap<&[u8], Vec<&str>> = BTreeMap::new();
    for s in &all {
        serials
            .entry(s.info.serial.as_slice())
            .or_default()
            .push(&s.name);
    }
    let dupes: Vec<String> = serials
        .values()
        .filter(|names| names.len() > 1)
        .map(|names| names.join(" and "))
        .collect();
    c.check(
        dupes.is_empty(),
        "(all)",
        format!("all {} serial numbers are unique", all.len()),
        format!("serial numbers repeat: {}", dupes.join("; ")),
        "revoking one certificate would revoke the other too, and some verifiers refuse duplicates",
        cmd(format!("renew NAME --certs {d}")),
    );

    crl_checks(&mut c, dir, &all, now, &d);
    Ok(Report {
        dir: d,
        host: host.into(),
        findings: c.0,
    })
}

/// Checks the demo set in `dir` right after it was minted, the way the Go demo asks a
/// learner to check it: the root is a self-signed CA, each key matches its certificate, each
/// leaf names its issuer and verifies for its purpose exactly as a handshake would.
pub fn demo_set(dir: &CertsDir) -> Result<Report> {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let ca_path = dir.ca_cert();
    let trust = Trust::load(&ca_path)?;
    let ca_der = pem::certificates(&ca_path, "the CA certificate")?.remove(0);
    let ca_info = CertInfo::parse(&ca_der)
        .map_err(|why| Error::malformed("the CA certificate", &ca_path, why))?;
    let ca_file = name(&ca_path);
    let mut c = Checks(Vec::new());
    let why = "the Go demo asks you to check this by eye; a handshake checks it for real";
    let fix = format!(
        "{}   # mint the set again",
        Program::Certificate.command(&format!("--certs {} --force", dir.path().display()))
    );

    c.check(
        ca_info.self_signed
            && ca_info.ca == Some(true)
            && ca_info.key_usage.contains(&"keyCertSign"),
        &ca_file,
        "is a self-signed root CA: its issuer is its own subject, its signature verifies with \
         its own key, and it may sign certificates (CA:TRUE, keyCertSign)"
            .into(),
        "is not a self-signed root CA allowed to sign certificates (CA:TRUE, keyCertSign)".into(),
        why,
        fix.clone(),
    );
    // With an intermediate, the leaves are its children and their files carry it.
    let has_intermediate = dir.role_cert(Role::Intermediate).exists();
    let mut issuer_subject = ca_info.subject.clone();
    let mut issuer_file = ca_file.clone();
    let roles: Vec<Role> = std::iter::once(Role::Ca)
        .chain(has_intermediate.then_some(Role::Intermediate))
        .chain([
            Role::Server,
            Role::Client(ClientId::A),
            Role::Client(ClientId::B),
        ])
        .collect();
    for role in roles {
        let cert_path = dir.role_cert(role);
        let key_path = dir.role_key(role);
        let (cert_file, key_file) = (name(&cert_path), name(&key_path));
        let chain = pem::certificates(&cert_path, &format!("{}'s certificate", role.owner()))?;
        let info = CertInfo::parse(&chain[0])
            .map_err(|why| Error::malformed("a certificate", &cert_path, why))?;
        let matched = Identity::load(&cert_path, &key_path, role.owner());
        c.check(
            matched.is_ok(),
            &key_file,
            format!("matches {cert_file} (same public key)"),
            match &matched {
                Ok(_) => String::new(),
                Err(e) => format!("does not match: {e}"),
            },
            why,
            fix.clone(),
        );
        if role == Role::Ca {
            continue;
        }
        if role == Role::Intermediate {
            c.check(
                info.ca == Some(true) && info.issuer == ca_info.subject,
                &cert_file,
                format!(
                    "is a CA (CA:TRUE, pathlen {}) issued by {ca_file} (\"{}\")",
                    info.path_len.map_or("unlimited".into(), |n| n.to_string()),
                    ca_info.subject
                ),
                format!("is not a CA issued by {ca_file}"),
                why,
                fix.clone(),
            );
            issuer_subject = info.subject.clone();
            issuer_file = cert_file;
            continue;
        }
        c.check(
            info.issuer == issuer_subject,
            &cert_file,
            format!("'s issuer equals the subject of {issuer_file} (\"{issuer_subject}\")"),
            format!("'s issuer is not the subject of {issuer_file} (\"{issuer_subject}\")"),
            why,
            fix.clone(),
        );
        if has_intermediate {
            c.check(
                chain.len() == 2,
                &cert_file,
                format!(
                    "carries its chain: the leaf, then {issuer_file} ({} certificates)",
                    chain.len()
                ),
                format!(
                    "does not carry its chain: the leaf, then {issuer_file} ({} certificates)",
                    chain.len()
                ),
                why,
                fix.clone(),
            );
        }
        let usage = if role == Role::Server {
            Usage::Server
        } else {
            Usage::Client
        };
        let verified = tls::verify_leaf(&trust, &chain, usage, "localhost");
        let as_what = match usage {
            Usage::Server | Usage::Both => "a server certificate for \"localhost\"",
            Usage::Client => "a client certificate",
        };
        c.check(
            verified.is_ok(),
            &cert_file,
            format!("verifies against {ca_file} as {as_what}"),
            match verified {
                Ok(()) => String::new(),
                Err(f) => format!("does not verify as {as_what}: {}", f.code()),
            },
            why,
            fix.clone(),
        );
    }
    Ok(Report {
        dir: dir.path().display().to_string(),
        host: "localhost".into(),
        findings: c.0,
    })
}

fn validity(c: &mut Checks, s: &Stored, all: &[Stored], now: OffsetDateTime) {
    let file = format!("{}.crt", s.name);
    let info = &s.info;
    let d = s
        .cert_path
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let fix = if s.is_ca() {
        cmd(format!("ca rotate --certs {d}"))
    } else {
        cmd(format!("renew {} --certs {d}", s.name))
    };
    if now > info.not_after {
        c.bad(
            Level::Fail,
            &file,
            format!(
                "EXPIRED {} ago ({})",
                format_span(now - info.not_after),
                format_time(info.not_after)
            ),
            "every verifier refuses an expired certificate",
            fix,
        );
        return;
    }
    if now < info.not_before {
        c.bad(
            Level::Fail,
            &file,
            format!("is not valid until {}", format_time(info.not_before)),
            "verifiers refuse it until then (check the clock)",
            fix,
        );
        return;
    }
    let lifetime = info.not_after - info.not_before;
    let left = info.not_after - now;
    let percent = if lifetime.is_positive() {
        left.as_seconds_f64() / lifetime.as_seconds_f64() * 100.0
    } else {
        0.0
    };
    // Less than 10% of the lifetime, or less than 7 days, left. Short-lived certificates
    // (under 70 days, where 7 days is more than 10%) use the 10% rule alone: they would
    // otherwise warn from the moment they are issued.
    let week_rule = lifetime >= time::Duration::days(70) && left < time::Duration::days(7);
    if week_rule || percent < 10.0 {
        c.bad(
            Level::Warn,
            &file,
            format!(
                "expires in {} ({:.0}% of its lifetime left)",
                format_span(left),
                percent
            ),
            "renew before it expires, or handshakes start failing",
            fix,
        );
    } else {
        c.ok(
            &file,
            format!(
                "is valid until {} ({} left)",
                format_time(info.not_after),
                format_span(left)
            ),
        );
    }
    if let Some(issuer) = folder::find_issuer(all, info) {
        let inside =
            info.not_before >= issuer.info.not_before && info.not_after <= issuer.info.not_after;
        c.check(
            inside,
            &file,
            format!("lies inside the validity of {}.crt", issuer.name),
            format!("outlives its issuer {}.crt (which ends {})", issuer.name, format_time(issuer.info.not_after)),
            "once the issuer expires, this certificate stops verifying too, whatever its own dates say",
            cmd(format!("renew {} --certs {d}", s.name)),
        );
    }
}

/// `ca-old.crt`, the root a rotation keeps trusted beside the new one: it must still be in
/// `ca.crt` (or the certificates it issued no longer verify).
fn old_root(c: &mut Checks, s: &Stored, trusted: &[CertificateDer<'_>], d: &str) {
    let file = format!("{}.crt", s.name);
    c.check(
        s.info.self_signed && trusted.contains(&s.chain[0]),
        &file,
        "is the previous root CA, trusted in ca.crt beside the new one until it is retired".into(),
        "is a previous root CA that ca.crt no longer trusts: what it issued no longer verifies"
            .into(),
        "the certificates the old CA issued are refused once ca.crt leaves it out",
        cmd(format!(
            "ca retire --certs {d}   # and renew what it issued"
        )),
    );
}

/// A rotation in its overlap: which certificates still chain only to the old root, and
/// when that root expires.
fn rotation(c: &mut Checks, all: &[Stored], now: OffsetDateTime, d: &str) {
    let Some(old) = rotate::old_root(all) else {
        return;
    };
    let left = old.info.not_after - now;
    let ends = format!(
        "the old CA (\"{}\", {}.crt) expires {} ({})",
        old.info.identity(),
        old.name,
        format_time(old.info.not_after),
        match left.is_negative() {
            true => format!("{} ago", format_span(left)),
            false => format!("in {}", format_span(left)),
        }
    );
    let waiting = rotate::dependents(all, old);
    if waiting.is_empty() {
        c.bad(
            Level::Warn,
            "(rotation)",
            format!(
                "the CA is being rotated and no certificate depends on the old CA any more; {ends}"
            ),
            "ca.crt still trusts the old root: whatever it signed is accepted until it is retired",
            cmd(format!("ca retire --certs {d}")),
        );
        return;
    }
    for s in waiting {
        c.bad(
            Level::Warn,
            &format!("{}.crt", s.name),
            format!("still chains only to the old CA; {ends}"),
            "it stops verifying when the old CA is retired (or expires)",
            cmd(format!("renew {} --certs {d}", s.name)),
        );
    }
}

fn key_checks(c: &mut Checks, s: &Stored) {
    let file = format!("{}.key", s.name);
    let d = s
        .cert_path
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if !s.key_path.exists() {
        c.bad(
            Level::Warn,
            &file,
            "is missing".into(),
            "without its key the certificate cannot be used (fine if the key lives elsewhere)",
            cmd(format!("renew {} --certs {d}", s.name)),
        );
        return;
    }
    match Identity::load(&s.cert_path, &s.key_path, &s.name) {
        Ok(_) => c.ok(&file, format!("matches {}.crt", s.name)),
        Err(e) => c.bad(
            Level::Fail,
            &file,
            format!("does not belong to {}.crt: {e}", s.name),
            "a handshake signed with the wrong key fails (decrypt_error)",
            cmd(format!("renew {} --certs {d}", s.name)),
        ),
    }
    #[cfg(unix)]
    match crate::perms::mode(&s.key_path) {
        Ok(mode) => c.check(
            mode & 0o077 == 0,
            &file,
            "is readable by its owner only (0600)".into(),
            format!("has mode {mode:o}: other users can read the private key"),
            "anyone who reads a private key can impersonate its owner",
            format!("chmod 600 {}", s.key_path.display()),
        ),
        Err(e) => c.bad(
            Level::Fail,
            &file,
            format!("cannot read its permissions: {e}"),
            "a key we cannot stat is a key we cannot use",
            format!("ls -l {}", s.key_path.display()),
        ),
    }
}

/// Who may change what the server trusts: the folder, `ca.crt` and `crl.pem` must be
/// writable by their owner only.
fn permissions(c: &mut Checks, dir: &CertsDir, d: &str) {
    let ca = dir.ca_cert();
    let crl = dir.crl();
    let targets = [
        (
            dir.path(),
            d.to_string(),
            "whoever may write the folder can replace ca.crt or crl.pem with their own: the \
             server would trust their CA, or admit certificates you revoked",
            format!("chmod go-w {d}"),
        ),
        (
            ca.as_path(),
            "ca.crt".to_string(),
            "whoever may write ca.crt can append a CA of their own, and servers and clients \
             loading it trust every certificate that CA signs",
            format!("chmod 644 {}", ca.display()),
        ),
        (
            crl.as_path(),
            "crl.pem".to_string(),
            "whoever may write crl.pem can take entries out, and the server admits the \
             certificates you revoked again",
            format!("chmod 644 {}", crl.display()),
        ),
    ];
    for (path, file, why, fix) in targets {
        if !path.exists() {
            continue;
        }
        match (
            crate::perms::writable_by_others(path),
            crate::perms::mode(path),
        ) {
            (Ok(false), _) => c.ok(&file, "can be changed by its owner only".into()),
            (Ok(true), Ok(mode)) => c.bad(
                Level::Warn,
                &file,
                format!("can be changed by other users (mode {mode:o})"),
                why,
                fix,
            ),
            (Err(e), _) | (_, Err(e)) => c.bad(
                Level::Warn,
                &file,
                format!("cannot read its permissions: {e}"),
                "whether others may change it cannot be told",
                format!("ls -ld {}", path.display()),
            ),
        }
    }
}

fn crl_checks(c: &mut Checks, dir: &CertsDir, all: &[Stored], now: OffsetDateTime, d: &str) {
    let path = dir.crl();
    if !path.exists() {
        return;
    }
    let fix = cmd(format!("crl --certs {d}"));
    let crls = match crate::pem::crls(&path, "the CRL") {
        Ok(crls) => crls,
        Err(e) => {
            c.bad(
                Level::Fail,
                "crl.pem",
                format!("cannot be read: {e}"),
                "a server given this CRL refuses to start",
                fix,
            );
            return;
        }
    };
    let mut covered: Vec<&str> = Vec::new();
    for der in crls {
        let info = match CrlInfo::parse(&der) {
            Ok(i) => i,
            Err(why) => {
                c.bad(
                    Level::Fail,
                    "crl.pem",
                    format!("holds a damaged list: {why}"),
                    "a server given this CRL refuses to start",
                    fix.clone(),
                );
                continue;
            }
        };
        let signer = all.iter().find(|s| s.is_ca() && info.issued_by(&s.info));
        if let Some(s) = signer {
            covered.push(&s.name);
        }
        let signed = signer.is_some_and(|s| CrlInfo::signature_verifies(&der, &s.chain[0]));
        c.check(
            signed,
            "crl.pem",
            format!(
                "the list of \"{}\" is signed by {}.crt",
                info.issuer,
                signer.map_or("?", |s| s.name.as_str())
            ),
            format!(
                "the list of \"{}\" is not signed by any CA here",
                info.issuer
            ),
            "a server refuses a CRL its CA did not sign",
            fix.clone(),
        );
        match info.next_update {
            Some(next) if next < now => c.bad(
                Level::Fail,
                "crl.pem",
                format!(
                    "the list of \"{}\" is out of date since {}",
                    info.issuer,
                    format_time(next)
                ),
                "the server refuses every client of that CA while the list is out of date",
                fix.clone(),
            ),
            Some(next) if next - now < time::Duration::days(1) => c.bad(
                Level::Warn,
                "crl.pem",
                format!(
                    "the list of \"{}\" goes out of date in {}",
                    info.issuer,
                    format_span(next - now)
                ),
                "re-sign it before then",
                fix.clone(),
            ),
            Some(next) => c.ok(
                "crl.pem",
                format!(
                    "the list of \"{}\" is current until {} ({} revoked)",
                    info.issuer,
                    format_time(next),
                    info.entries.len()
                ),
            ),
            None => c.bad(
                Level::Warn,
                "crl.pem",
                format!("the list of \"{}\" has no next update", info.issuer),
                "nobody can tell when it goes stale",
                fix.clone(),
            ),
        }
    }
    for ca in all.iter().filter(|s| s.is_ca()) {
        if !covered.contains(&ca.name.as_str()) {
            c.bad(
                Level::Fail,
                "crl.pem",
                format!("has no list from {}.crt", ca.name),
                "a server given crl.pem cannot tell whether certificates that CA issued are revoked, so it refuses them all",
                fix.clone(),
            );
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "certificate doctor: {}/ (clients will dial \"{}\")",
            self.dir, self.host
        )?;
        for finding in &self.findings {
            writeln!(f, "  {}  {}", finding.level, finding.sentence())?;
            if let Some(why) = &finding.why {
                writeln!(f, "        why: {why}")?;
            }
            if let Some(fix) = &finding.fix {
                writeln!(f, "        fix: {fix}")?;
            }
        }
        let count = |l: Level| self.findings.iter().filter(|x| x.level == l).count();
        writeln!(
            f,
            "\n{} checks: {} ok, {} warning{}, {} failed",
            self.findings.len(),
            count(Level::Ok),
            count(Level::Warn),
            if count(Level::Warn) == 1 { "" } else { "s" },
            count(Level::Fail)
        )
    }
}
