//! `certificate lab`: the certificates people trip on, each wrong in exactly one way, minted
//! beside the demo set (in `certs/lab/`) with the commands to try and what each side says.

use std::fmt;
use std::path::PathBuf;

use time::OffsetDateTime;

use super::crl::{self, Entry, Reason};
use super::{folder, lock};
use crate::certinfo::CertInfo;
use crate::error::{Error, Result};
use crate::files::{CertsDir, Role, spiffe_id};
use crate::format::format_time;
use crate::pki::{self, CertAuthority, KeyType, LeafSpec, Usage, Validity};
use crate::program::Program;
use crate::write::{self, Access};

/// The lab's CRL, listing the revoked client.
pub const REVOKED_CRL: &str = "revoked.crl.pem";

/// The port of the server the revoked-client case starts (beside the demo server on 8443).
pub const REVOKED_PORT: u16 = 8444;
/// The port of the server the no-IP-SAN case starts.
pub const NO_IP_SAN_PORT: u16 = 8445;

/// One broken certificate and what it teaches.
#[derive(Clone, Debug)]
pub struct Case {
    /// File stem in the lab folder; says what is wrong.
    pub name: &'static str,
    /// What is wrong, in words.
    pub wrong: String,
    /// Commands to see it fail.
    pub try_it: Vec<String>,
    /// What the server logs.
    pub server_says: &'static str,
    /// What the client prints.
    pub client_says: &'static str,
}

/// What `lab` wrote.
#[derive(Clone, Debug)]
pub struct Lab {
    /// `certs/lab`.
    pub dir: PathBuf,
    /// The cases, in teaching order.
    pub cases: Vec<Case>,
}

/// Mints the lab into `demo.lab()` (created 0700), using the demo set's CA, holding the
/// demo folder's lock. Refuses to replace an existing lab without `force`.
pub fn mint(demo: &CertsDir, force: bool) -> Result<Lab> {
    let _lock = lock::hold(demo)?;
    let lab = demo.lab();
    let (_, issuer) = folder::load_default_issuer(demo)?;
    let root = folder::load_authority(demo, Role::Ca.stem())?;
    write::ensure_absent(
        &lab.cert("client-expired"),
        force,
        "the lab was minted before",
    )?;
    write::create_dir(lab.path())?;

    let now = OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    let client = |cn: &str, validity: Validity| -> Result<LeafSpec> {
        let slug = cn.to_lowercase().replace(' ', "-");
        Ok(LeafSpec {
            subject: pki::demo_subject(&format!("{cn} Company"), cn),
            sans: vec![pki::parse_san(&format!("URI:{}", spiffe_id(&slug)))?],
            usage: Usage::Client,
            key_type: KeyType::EcdsaP256,
            validity,
        })
    };
    let put = |name: &str, cert: &str, key: &str| -> Result<()> {
        write::publish_pair(&lab.key(name), key, &lab.cert(name), cert, force)
    };

    // 1. Another CA's client.
    let other = CertAuthority::new_root(
        pki::demo_subject("Other CA Company", "Other CA"),
        KeyType::EcdsaP256,
        Validity::days(365),
    )?;
    write::atomic(
        &lab.cert("other-ca"),
        other.cert_pem.as_bytes(),
        Access::Public,
    )?;
    let c = other.issue(&client("Client C", Validity::days(30))?)?;
    put("client-from-other-ca", &c.cert_pem, &c.key_pem)?;

    // 2. Expired: a minute-long window at the start of the issuer's life, long gone.
    let start = issuer.validity.not_before;
    let gone = issuer.issue(&client(
        "Client Expired",
        Validity {
            not_before: start,
            not_after: start + time::Duration::minutes(1),
        },
    )?)?;
    put("client-expired", &gone.cert_pem, &gone.key_pem)?;

    // 3. Not valid yet: starts tomorrow (or halfway to the issuer's end, if that is sooner).
    let starts = now + day.min((issuer.validity.not_after - now) / 2);
    let later = issuer.issue(&client(
        "Client Not Yet Valid",
        Validity {
            not_before: starts,
            not_after: issuer.validity.not_after.min(starts + day * 30),
        },
    )?)?;
    put("client-not-yet-valid", &later.cert_pem, &later.key_pem)?;

    // 4. A server certificate (EKU serverAuth only) used as a client.
    let mut spec = client("Client Server Auth Only", Validity::days(30))?;
    spec.usage = Usage::Server;
    spec.sans = vec![pki::parse_san("DNS:not-a-client.test")?];
    let wrong_use = issuer.issue(&spec)?;
    put(
        "client-server-auth-only",
        &wrong_use.cert_pem,
        &wrong_use.key_pem,
    )?;

    // 5. A CA certificate used as a client.
    let ca_as_client = CertAuthority::new_intermediate(
        pki::demo_subject("Client Is A CA Company", "Client Is A CA"),
        KeyType::EcdsaP256,
        Validity::days(30),
        &root,
    )?;
    put(
        "client-is-a-ca",
        &ca_as_client.cert_pem,
        &ca_as_client.key_pem(),
    )?;

    // 6. Revoked, with the CRL that says so.
    let revoked = issuer.issue(&client("Client Revoked", Validity::days(30))?)?;
    put("client-revoked", &revoked.cert_pem, &revoked.key_pem)?;
    let serial = CertInfo::parse(&revoked.der)
        .map_err(Error::Invalid)?
        .serial;
    let entry = Entry {
        serial,
        at: now,
        reason: Some(Reason(rcgen::RevocationReason::KeyCompromise)),
    };
    // The server checks every certificate of a chain against its issuer's list, so the
    // lab's file carries a list from each CA above the leaves: the issuer's names the
    // revoked client, the root's (when the issuer is an intermediate) names nobody.
    let number = u64::try_from(now.unix_timestamp()).unwrap_or(1);
    let mut crl_pem = crl::sign(&issuer, &[entry], number, now, now + day * 7)?;
    if !issuer.is_root {
        crl_pem.push_str(&crl::sign(&root, &[], number, now, now + day * 7)?);
    }
    let crl_path = lab.path().join(REVOKED_CRL);
    write::atomic(&crl_path, crl_pem.as_bytes(), Access::Public)?;

    // 7. A server certificate without the 127.0.0.1 SAN.
    let no_ip = issuer.issue(&LeafSpec {
        subject: pki::demo_subject("Server Company", "localhost"),
        sans: vec![pki::parse_san("DNS:localhost")?],
        usage: Usage::Server,
        key_type: KeyType::EcdsaP256,
        validity: Validity::days(30),
    })?;
    put("server-without-ip-san", &no_ip.cert_pem, &no_ip.key_pem)?;

    let d = lab.path().display().to_string();
    // The demo folder, named when it is not the default, so each command finds its CA.
    let certs = match demo.path() == std::path::Path::new(crate::files::DEFAULT_DIR) {
        true => String::new(),
        false => format!(" --certs {}", demo.path().display()),
    };
    let as_client = |name: &str| {
        Program::Client.command(&format!(
            "--cert {d}/{name}.crt --key {d}/{name}.key{certs}"
        ))
    };
    let cases = vec![
        Case {
            name: "client-from-other-ca",
            wrong:
                "Client C, issued by \"Other CA\" (other-ca.crt), not by the CA the server trusts"
                    .into(),
            try_it: vec![as_client("client-from-other-ca")],
            server_says: "reason=\"unknown_ca\": the client's certificate was issued by a CA this server does not trust",
            client_says: "the server refused our certificate (alert: unknown_ca)",
        },
        Case {
            name: "client-expired",
            wrong: "its validity ended long ago".into(),
            try_it: vec![as_client("client-expired")],
            server_says: "reason=\"expired\": the client's certificate has expired",
            client_says: "the server refused our certificate (alert: certificate_expired)",
        },
        Case {
            name: "client-not-yet-valid",
            wrong: format!("its validity starts {}", format_time(starts)),
            try_it: vec![as_client("client-not-yet-valid")],
            server_says: "reason=\"not_yet_valid\": the client's certificate is not valid yet",
            client_says: "the server refused our certificate (alert: certificate_expired)",
        },
        Case {
            name: "client-server-auth-only",
            wrong: "its extended key usage is serverAuth only: it is a server certificate".into(),
            try_it: vec![as_client("client-server-auth-only")],
            server_says: "reason=\"bad_usage\": the client's certificate is not meant for client authentication",
            client_says: "the server refused our certificate (alert: unsupported_certificate)",
        },
        Case {
            name: "client-is-a-ca",
            wrong: "it is a CA certificate (CA:TRUE), not a leaf".into(),
            try_it: vec![as_client("client-is-a-ca")],
            server_says: "reason=\"bad_usage\": the client presented a CA certificate as its own identity",
            client_says: "the server refused our certificate (alert: certificate_unknown)",
        },
        Case {
            name: "client-revoked",
            wrong: format!("{REVOKED_CRL} revokes it (key compromise)"),
            try_it: vec![
                Program::Server.command(&format!(
                    "--crl {d}/{REVOKED_CRL} --addr 127.0.0.1:{REVOKED_PORT}{certs}"
                )),
                format!(
                    "{} --url https://localhost:{REVOKED_PORT}/",
                    as_client("client-revoked")
                ),
            ],
            server_says: "reason=\"revoked\": the client's certificate has been revoked",
            client_says: "the server refused our certificate (alert: certificate_revoked)",
        },
        Case {
            name: "server-without-ip-san",
            wrong: "it names DNS:localhost only, so a client dialing 127.0.0.1 refuses it".into(),
            try_it: vec![
                Program::Server.command(&format!(
                    "--cert {d}/server-without-ip-san.crt --key {d}/server-without-ip-san.key \
                     --addr 127.0.0.1:{NO_IP_SAN_PORT}{certs}"
                )),
                Program::Client.command(&format!(
                    "-c a --url https://127.0.0.1:{NO_IP_SAN_PORT}/{certs}"
                )),
            ],
            server_says: "reason=\"peer_refused\": the client refused this server's certificate (alert: bad_certificate)",
            client_says: "the server's certificate is not valid for \"127.0.0.1\": it names only DNS:localhost",
        },
    ];
    Ok(Lab {
        dir: lab.path().to_path_buf(),
        cases,
    })
}

impl fmt::Display for Lab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "The break-it lab, in {}/: each certificate is wrong in one way.",
            self.dir.display()
        )?;
        writeln!(
            f,
            "Start the demo server (`{}`) for the cases that use it. The two cases that need a \
             server of their own start it on another port ({REVOKED_PORT}, {NO_IP_SAN_PORT}), so \
             it runs beside the demo server; stop it with Ctrl-C when you are done.\n",
            Program::Server.command("")
        )?;
        for case in &self.cases {
            writeln!(f, "{}: {}", case.name, case.wrong)?;
            for cmd in &case.try_it {
                writeln!(f, "  try:         {cmd}")?;
            }
            writeln!(f, "  server logs: {}", case.server_says)?;
            writeln!(f, "  client says: {}", case.client_says)?;
            writeln!(f)?;
        }
        Ok(())
    }
}
