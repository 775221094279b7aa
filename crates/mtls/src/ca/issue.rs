//! Issuing one more certificate from a CA in the folder, and renewing a leaf.

use std::path::PathBuf;

use rcgen::SanType;
use rustls::pki_types::CertificateDer;

use super::folder::{
    check_entry_name, check_stem, entry, find_issuer, load_authority, load_default_issuer, scan,
    stored_below, validate_name,
};
use super::issuance::{self, Action, Record};
use super::{lock, rotate};
use crate::certinfo::CertInfo;
use crate::error::{Error, NameProblem, Result};
use crate::files::{CertsDir, Role, SERVER_SANS};
use crate::pki::{self, CertAuthority, KeyType, LeafSpec, Usage, Validity};
use crate::program::Program;
use crate::write;

/// What to issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A client leaf (EKU clientAuth).
    Client,
    /// A server leaf (EKU serverAuth).
    Server,
    /// An intermediate CA, signed by the root.
    Intermediate,
}

/// `certificate issue NAME ...`, as data.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    /// The file stem and, by default, the common name.
    pub name: String,
    /// Client, server or intermediate.
    pub kind: Kind,
    /// SANs (`DNS:`, `IP:`, `URI:` or bare); defaults depend on the kind.
    pub sans: Vec<SanType>,
    /// Subject CN (default: NAME).
    pub common_name: Option<String>,
    /// Subject O (default: "CN Company", as in the demo).
    pub organization: Option<String>,
    /// Requested validity (cut to the issuer's).
    pub validity: Validity,
    /// Key algorithm.
    pub key_type: KeyType,
    /// The issuing CA's name (default: [`default_issuer`](super::folder::default_issuer);
    /// intermediates always come from `ca`).
    pub issuer: Option<String>,
    /// Replace an existing NAME.
    pub force: bool,
}

/// What was written.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// NAME.crt.
    pub cert_path: PathBuf,
    /// NAME.key.
    pub key_path: PathBuf,
    /// The new certificate.
    pub info: CertInfo,
    /// The issuing CA's name.
    pub issuer: String,
    /// The requested validity was cut to fit inside the issuer's.
    pub clamped: bool,
    /// An older NAME was replaced.
    pub replaced: bool,
    /// For a renewal: the certificate it replaced.
    pub previous: Option<CertInfo>,
    /// For a renewal by the new CA of a rotation: the old CA that issued the certificate it
    /// replaced (`ca-old`, `retired/ca-1a2b3c4d`).
    pub moved_from: Option<String>,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::format::format_time;
        let info = &self.info;
        let cut = if self.clamped {
            " (cut to the issuer's end date)"
        } else {
            ""
        };
        match &self.previous {
            Some(_) => writeln!(
                f,
                "Renewed {} (fresh key in {}), issued by {}{}:",
                self.cert_path.display(),
                self.key_path.display(),
                self.issuer,
                self.moved_from
                    .as_ref()
                    .map(|old| format!(
                        " (the old one came from {old}, which the CA rotation replaces)"
                    ))
                    .unwrap_or_default()
            )?,
            None => writeln!(
                f,
                "{} {} and {} (mode 0600), issued by {}:",
                if self.replaced { "Replaced" } else { "Wrote" },
                self.cert_path.display(),
                self.key_path.display(),
                self.issuer
            )?,
        }
        writeln!(f, "  subject: {}", info.subject)?;
        writeln!(f, "  SANs:    {}", info.sans_text())?;
        let usage = if info.ca == Some(true) {
            "CA (keyCertSign, cRLSign)".to_string()
        } else {
            info.ekus_text()
        };
        writeln!(f, "  usage:   {usage}")?;
        if let Some(old) = &self.previous {
            writeln!(
                f,
                "  old:     serial {}, valid until {}",
                old.serial_hex(),
                format_time(old.not_after)
            )?;
            writeln!(
                f,
                "  new:     serial {}, valid {} to {}{cut}",
                info.serial_hex(),
                format_time(info.not_before),
                format_time(info.not_after)
            )?;
            writeln!(
                f,
                "The old certificate stays valid until it expires; restart (or reload) whoever uses it to pick up the new files."
            )
        } else {
            writeln!(
                f,
                "  valid:   {} to {}{cut}",
                format_time(info.not_before),
                format_time(info.not_after)
            )?;
            writeln!(f, "  serial:  {}", info.serial_hex())
        }
    }
}

/// The SANs a kind gets when none are given.
fn default_sans(kind: Kind, name: &str) -> Result<Vec<SanType>> {
    match kind {
        Kind::Client => Ok(vec![pki::parse_san(&format!(
            "URI:{}",
            crate::files::spiffe_id(name)
        ))?]),
        Kind::Server => SERVER_SANS.iter().map(|s| pki::parse_san(s)).collect(),
        Kind::Intermediate => Ok(Vec::new()),
    }
}

impl Kind {
    /// Whether a certificate of this kind may take the name of `role` in the demo set.
    fn fits(self, role: Role) -> bool {
        matches!(
            (self, role),
            (Kind::Client, Role::Client(_))
                | (Kind::Server, Role::Server)
                | (Kind::Intermediate, Role::Intermediate)
        )
    }
}

/// Checks `name` for a new certificate of `kind`: a usable name, and not one the folder
/// keeps for another kind (`intermediate`, `server`, `client-a`, `client-b`).
fn validate_new_name(name: &str, kind: Kind) -> Result<()> {
    validate_name(name)?;
    match Role::of_stem(name) {
        Some(role) if !kind.fits(role) => Err(Error::BadName {
            name: name.to_string(),
            problem: NameProblem::KeptFor(role),
        }),
        _ => Ok(()),
    }
}

/// Without `force`, refuses a name whose key or certificate is there already, saying which:
/// a symbolic link, one file without its partner, or an earlier certificate.
fn ensure_pair_absent(dir: &CertsDir, name: &str, force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    let (cert_path, key_path) = (dir.cert(name), dir.key(name));
    write::refuse_symlink(&key_path)?;
    write::refuse_symlink(&cert_path)?;
    let renew = Program::Certificate.command(&format!("renew {name}"));
    match (write::present(&cert_path), write::present(&key_path)) {
        (false, false) => Ok(()),
        (true, true) => write::ensure_absent(
            &cert_path,
            false,
            &format!("it holds a certificate you issued earlier (use `{renew}` to re-issue it)"),
        ),
        (true, false) => Err(Error::Unpaired {
            present: cert_path,
            missing: key_path,
            hint: format!(
                ". Nothing was changed; `{renew}` gives it a fresh key, or pass --force to \
                 issue a new pair"
            ),
        }),
        (false, true) => Err(Error::Unpaired {
            present: key_path,
            missing: cert_path,
            hint: ". Nothing was changed; if the key is a leftover, remove it, or pass --force \
                   to replace it with a fresh pair"
                .into(),
        }),
    }
}

/// Issues one more certificate from a CA in the folder, holding the folder's lock from
/// the first check to the last write.
pub fn issue(dir: &CertsDir, req: &IssueRequest) -> Result<Outcome> {
    validate_new_name(&req.name, req.kind)?;
    let lock = lock::hold(dir)?;
    let cert_path = dir.cert(&req.name);
    let key_path = dir.key(&req.name);
    ensure_pair_absent(dir, &req.name, req.force)?;
    let replaced = write::present(&cert_path) || write::present(&key_path);
    if replaced && scan(dir)?.iter().any(|s| s.name == req.name && s.is_ca()) {
        return Err(Error::Invalid(format!(
            "{} is a CA certificate; `issue` never replaces a CA, because everything it signed \
             would stop verifying. Pick another name, or delete the CA's files yourself",
            cert_path.display()
        )));
    }

    let cn = req.common_name.clone().unwrap_or_else(|| req.name.clone());
    let org = req
        .organization
        .clone()
        .unwrap_or_else(|| format!("{cn} Company"));
    let subject = pki::demo_subject(&org, &cn);
    let root = Role::Ca.stem();
    let (issuer_name, ca) = match (req.kind, &req.issuer) {
        (Kind::Intermediate, Some(i)) if i != root => {
            return Err(Error::Invalid(format!(
                "an intermediate CA is signed by the root ({root}), not by {i:?}: this tool \
                 keeps chains one intermediate deep"
            )));
        }
        (Kind::Intermediate, _) => (root.to_string(), load_authority(dir, root)?),
        (_, Some(i)) => {
            check_stem(i)?;
            (i.clone(), load_authority(dir, i)?)
        }
        (_, None) => {
            let (name, ca) = load_default_issuer(dir)?;
            (name.to_string(), ca)
        }
    };
    let existing: Vec<Vec<u8>> = scan(dir)?.into_iter().map(|s| s.info.serial).collect();

    let (chain, key_pem, granted) = loop {
        let (chain, key_pem, granted) = match req.kind {
            Kind::Intermediate => {
                let inter = CertAuthority::new_intermediate(
                    subject.clone(),
                    req.key_type,
                    req.validity,
                    &ca,
                )?;
                (inter.chain.clone(), inter.key_pem(), inter.validity)
            }
            Kind::Client | Kind::Server => {
                let sans = if req.sans.is_empty() {
                    default_sans(req.kind, &req.name)?
                } else {
                    req.sans.clone()
                };
                let usage = if req.kind == Kind::Server {
                    Usage::Server
                } else {
                    Usage::Client
                };
                let leaf = ca.issue(&LeafSpec {
                    subject: subject.clone(),
                    sans,
                    usage,
                    key_type: req.key_type,
                    validity: req.validity,
                })?;
                (leaf.chain, leaf.key_pem, leaf.validity)
            }
        };
        let info = CertInfo::parse(&chain[0]).map_err(Error::Invalid)?;
        // 126 random bits never collide in practice; checking costs nothing.
        if !existing.contains(&info.serial) {
            break (chain, key_pem, granted);
        }
    };
    let info = CertInfo::parse(&chain[0]).map_err(Error::Invalid)?;
    if req.kind != Kind::Intermediate {
        verify_new_leaf(dir, &chain, &info)?;
    }
    write::publish_pair(
        &key_path,
        &key_pem,
        &cert_path,
        &crate::pem::chain_pem(&chain),
        req.force,
    )?;
    // A new CA needs its own (empty) list in crl.pem, or servers loading the file would
    // refuse every certificate it issues as "revocation status unknown".
    if req.kind == Kind::Intermediate && dir.crl().exists() {
        super::crl::resign_held(dir, super::crl::DEFAULT_DAYS, &lock)?;
    }
    let record = Record {
        action: Action::Issue,
        name: &req.name,
        info: &info,
        issuer_name: Some(&issuer_name),
        extra: Vec::new(),
    };
    issuance::append(dir, &[record], &lock)?;
    Ok(Outcome {
        cert_path,
        key_path,
        info,
        issuer: issuer_name,
        clamped: granted != req.validity,
        replaced,
        previous: None,
        moved_from: None,
    })
}

/// Checks a freshly made leaf against the folder's root exactly as a handshake would, before
/// anything is written.
fn verify_new_leaf(
    dir: &CertsDir,
    chain: &[CertificateDer<'static>],
    info: &CertInfo,
) -> Result<()> {
    let trust = crate::tls::Trust::load(&dir.ca_cert())?;
    let Some(usage) = Usage::of(&info.ext_key_usage) else {
        return Ok(());
    };
    let host = info.sans.iter().find_map(|san| match san {
        crate::certinfo::San::Dns(d) => Some(d.trim_start_matches("*.").to_string()),
        crate::certinfo::San::Ip(ip) => Some(ip.to_string()),
        _ => None,
    });
    let host = match (usage, host) {
        (Usage::Client, _) => String::new(),
        (_, Some(h)) => h,
        (_, None) => {
            return Err(Error::Invalid(
                "a server certificate needs at least one DNS or IP SAN: clients compare the \
                 host they dial with those names (URIs do not count); add --san"
                    .into(),
            ));
        }
    };
    crate::tls::verify_leaf(&trust, chain, usage, &host).map_err(|f| {
        Error::Invalid(format!(
            "the new certificate would not verify against {} ({}), so nothing was written",
            dir.ca_cert().display(),
            f.code()
        ))
    })
}

/// Re-issues the leaf NAME with the same subject, SANs (plus `extra_sans`) and usage, a
/// fresh key and serial, and a new validity window (by default as long as the old one),
/// from the CA that issued it.
pub fn renew(
    dir: &CertsDir,
    name: &str,
    validity: Option<Validity>,
    key_type: Option<KeyType>,
    extra_sans: &[SanType],
) -> Result<Outcome> {
    check_entry_name(name)?;
    let lock = lock::hold(dir)?;
    let all = scan(dir)?;
    // `lab/client-expired`: a certificate one folder down, renewed by its CA up here.
    let below;
    let old = if name.contains('/') {
        below = stored_below(dir, name, "renew")?;
        &below
    } else {
        entry(
            dir,
            &all,
            name,
            "renew",
            format!(
                "; issue it first with `{}` (or --server)",
                Program::Certificate.command(&format!("issue {name} --client"))
            ),
        )?
    };
    if old.is_ca() {
        return Err(Error::Invalid(format!(
            "{} is a CA certificate; renew leaves only (a new CA means re-issuing everything it signed)",
            old.cert_path.display()
        )));
    }
    let usage = Usage::of(&old.info.ext_key_usage);
    // New and renewed leaves come from the current CA: a leaf of a CA that a rotation
    // replaced (or retired) is renewed by its successor.
    let (issuer, moved_from) = match find_issuer(&all, &old.info) {
        Some(found) => match rotate::successor(&all, &found.name) {
            Some(current) if current.name != found.name => {
                (Some(current), Some(found.name.clone()))
            }
            _ => (Some(found), None),
        },
        None => match rotate::retired_successor(dir, &all, &old.info) {
            Some((retired, current)) => (Some(current), Some(retired)),
            None => (None, None),
        },
    };
    let issuer = issuer.ok_or_else(|| {
        let kind = if usage == Some(Usage::Server) {
            "--server"
        } else {
            "--client"
        };
        Error::NoIssuer {
            dir: dir.path().to_path_buf(),
            path: old.cert_path.clone(),
            issuer: old.info.issuer.clone(),
            hint: format!(
                "; if the CA was minted again since, issue it anew: `{}`",
                Program::Certificate.command(&format!("issue {name} {kind} --force"))
            ),
        }
    })?;
    let usage = usage.ok_or_else(|| {
        Error::Invalid(format!(
            "{} allows neither serverAuth nor clientAuth; issue a new one with `{}` (or --server)",
            old.cert_path.display(),
            Program::Certificate.command(&format!("issue {name} --client"))
        ))
    })?;
    let ca = load_authority(dir, &issuer.name)?;
    let key_type = match key_type {
        Some(k) => k,
        None => KeyType::of_description(&old.info.key).ok_or_else(|| {
            Error::Invalid(format!(
                "cannot tell which --key-type to use for a {} key; pass --key-type",
                old.info.key
            ))
        })?,
    };
    let validity =
        validity.unwrap_or_else(|| Validity::starting_now(Validity::of(&old.info).length()));
    let mut sans = old
        .info
        .sans
        .iter()
        .map(pki::san_type)
        .collect::<Result<Vec<_>>>()?;
    for extra in extra_sans {
        if !sans.contains(extra) {
            sans.push(extra.clone());
        }
    }
    let spec = LeafSpec {
        subject: pki::subject_of(&old.chain[0])?,
        sans,
        usage,
        key_type,
        validity,
    };
    let leaf = ca.issue(&spec)?;
    let info = CertInfo::parse(&leaf.der).map_err(Error::Invalid)?;
    verify_new_leaf(dir, &leaf.chain, &info)?;
    write::publish_pair(
        &old.key_path,
        &leaf.key_pem,
        &old.cert_path,
        &leaf.cert_pem,
        true,
    )?;
    let record = Record {
        action: Action::Renew,
        name,
        info: &info,
        issuer_name: Some(&issuer.name),
        extra: vec![("replaces", old.info.fingerprint())],
    };
    issuance::append(dir, &[record], &lock)?;
    Ok(Outcome {
        cert_path: old.cert_path.clone(),
        key_path: old.key_path.clone(),
        info,
        issuer: issuer.name.clone(),
        clamped: leaf.validity != validity,
        replaced: true,
        previous: Some(old.info.clone()),
        moved_from,
    })
}
