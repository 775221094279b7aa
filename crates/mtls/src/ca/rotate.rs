//! Rotating the folder's CA with no failed handshake: `certificate ca rotate` and
//! `certificate ca retire`.
//!
//! A rotation has an overlap. `rotate` mints a new root (and a new intermediate when the
//! folder uses one) and keeps the old ones beside them as `ca-old.crt` and
//! `intermediate-old.crt` (with their keys), so the old CA can still revoke what it
//! issued. `ca.crt` becomes the trust bundle of both roots, new first: servers and clients
//! that reload it accept certificates from either, while `issue` and `renew` sign with the
//! new CA only. Once every leaf is renewed, `retire` takes the old root out of `ca.crt`
//! and moves the old CA's files to `retired/`; it refuses while a certificate in the folder
//! still chains only to the old CA.
//!
//! The new CAs are named after the old ones with a generation: "CA" becomes "CA G2", then
//! "CA G3", so logs (the server's "client verified" line names the root it chained to) and
//! `doctor` can tell the two roots apart.
//!
//! The files change in the order that keeps every reader working: the old CA is copied to
//! its `-old` name first, the new intermediate is written, then `ca.crt` becomes the bundle
//! and `crl.pem` is signed again with one list per CA. A rotation interrupted before
//! `ca.crt` was written is finished by running it again.

use std::fmt;
use std::fs;
use std::path::PathBuf;

use rustls::pki_types::CertificateDer;
use time::Duration;

use super::crl::{self, ListSummary};
use super::folder::{self, Stored};
use super::issuance::{self, Action, Record};
use super::lock;
use crate::certinfo::CertInfo;
use crate::error::{Error, Result};
use crate::files::{CertsDir, PREVIOUS, Role, previous};
use crate::format::{format_span, format_time, hex, now};
use crate::pem;
use crate::pki::{self, CertAuthority, KeyType, Validity};
use crate::program::Program;
use crate::write;

/// How the new CA is made.
#[derive(Clone, Copy, Debug, Default)]
pub struct RotateRequest {
    /// The new root's lifetime [default: as long as the old root's].
    pub length: Option<Duration>,
    /// Its key algorithm [default: the old root's].
    pub key_type: Option<KeyType>,
}

/// What `rotate` did.
#[derive(Clone, Debug)]
pub struct Rotation {
    /// The folder.
    pub dir: CertsDir,
    /// The new root (`ca.crt`, first in the bundle).
    pub new_root: CertInfo,
    /// The new intermediate (`intermediate.crt`), when the folder uses one.
    pub new_intermediate: Option<CertInfo>,
    /// The old root, now `ca-old.crt` (and second in `ca.crt`).
    pub old_root: CertInfo,
    /// The old intermediate, now `intermediate-old.crt`.
    pub old_intermediate: Option<CertInfo>,
    /// Certificates (names) that still chain only to the old root.
    pub dependents: Vec<String>,
    /// `crl.pem`, signed again with a list for each CA.
    pub lists: Vec<ListSummary>,
}

/// What `retire` did.
#[derive(Clone, Debug)]
pub struct Retirement {
    /// The folder.
    pub dir: CertsDir,
    /// Each retired CA: its name in the folder, its certificate, where its files went.
    pub retired: Vec<(String, CertInfo, PathBuf)>,
    /// The CAs `ca.crt` trusts now.
    pub trusted: Vec<CertInfo>,
    /// Certificates that chained only to the old CA, retired anyway with `--force`.
    pub broken: Vec<String>,
    /// `crl.pem`, signed again with a list for each CA still trusted.
    pub lists: Vec<ListSummary>,
}

/// The CA names a rotation touches: the root, and the intermediate when there is one.
const ROTATED: [Role; 2] = [Role::Ca, Role::Intermediate];

/// The subject of the CA after `info`: the same, with the common name's generation counted
/// up ("CA" -> "CA G2" -> "CA G3").
fn next_subject(stored: &Stored) -> Result<rcgen::DistinguishedName> {
    let mut dn = pki::subject_of(&stored.chain[0])?;
    let cn = stored
        .info
        .common_name
        .clone()
        .unwrap_or_else(|| "CA".into());
    let next = match cn.rsplit_once(" G") {
        Some((base, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
            let n: u64 = n.parse().unwrap_or(1);
            format!("{base} G{}", n.saturating_add(1))
        }
        _ => format!("{cn} G2"),
    };
    dn.push(rcgen::DnType::CommonName, next);
    Ok(dn)
}

/// The root `stored` chains up to in `all` (itself, for a root), by issuer links.
pub fn root_of<'a>(all: &'a [Stored], stored: &'a Stored) -> Option<&'a Stored> {
    let mut current = stored;
    // Chains in a folder are at most root -> intermediate -> leaf; a few more links cost
    // nothing and stop a loop of cross-signed certificates.
    for _ in 0..8 {
        if current.info.self_signed {
            return Some(current);
        }
        current = folder::find_issuer(all, &current.info)?;
    }
    None
}

/// The old CA of a rotation still in its overlap: `ca-old.crt`, if the folder has it.
pub fn old_root(all: &[Stored]) -> Option<&Stored> {
    let name = previous(Role::Ca.stem());
    all.iter().find(|s| s.name == name && s.is_ca())
}

/// Whether `name` is one of the CAs a rotation keeps beside their successors.
fn is_previous(name: &str) -> bool {
    ROTATED.iter().any(|r| previous(r.stem()) == name)
}

/// The certificates in `all` that chain only to the old root `old` (not counting the old
/// CAs themselves): they stop verifying when it is retired.
pub fn dependents<'a>(all: &'a [Stored], old: &Stored) -> Vec<&'a Stored> {
    all.iter()
        .filter(|s| !is_previous(&s.name))
        .filter(|s| root_of(all, s).is_some_and(|root| root.info.sha256 == old.info.sha256))
        .collect()
}

/// The CA that signs the renewal of a leaf `issuer` signed: `issuer` itself, unless a
/// rotation replaced it (`ca-old` -> `ca`, `intermediate-old` -> `intermediate`, and a
/// retired `ca-1a2b3c4d` -> `ca`). New and renewed leaves always come from the new CA.
pub fn successor<'a>(all: &'a [Stored], issuer_name: &str) -> Option<&'a Stored> {
    let base = match issuer_name.strip_suffix(PREVIOUS) {
        Some(base) => base,
        None => issuer_name,
    };
    all.iter().find(|s| s.name == base && s.is_ca())
}

/// The name of a CA kept in `retired/`: its stem in the folder without `-old`, and the
/// first four bytes of its SHA-256 fingerprint (`ca-1a2b3c4d`).
fn retired_stem(name: &str, info: &CertInfo) -> String {
    let base = name.strip_suffix(PREVIOUS).unwrap_or(name);
    format!("{base}-{}", hex(&info.sha256[..4], "").to_ascii_lowercase())
}

/// For a leaf the folder cannot find the issuer of: the CA in `retired/` that issued it,
/// and the current CA that takes over its renewals.
pub fn retired_successor<'a>(
    dir: &CertsDir,
    all: &'a [Stored],
    leaf: &CertInfo,
) -> Option<(String, &'a Stored)> {
    let retired = dir.retired();
    if !retired.path().is_dir() {
        return None;
    }
    let kept = folder::scan(&retired).ok()?;
    let old = folder::find_issuer(&kept, leaf)?;
    let (base, _) = old.name.rsplit_once('-')?;
    let current = all.iter().find(|s| s.name == base && s.is_ca())?;
    Some((format!("retired/{}", old.name), current))
}

/// `certificate ca rotate`: a new root (and intermediate) beside the old ones, and
/// `ca.crt` the bundle of both; holds the folder's lock throughout.
pub fn rotate(dir: &CertsDir, req: &RotateRequest) -> Result<Rotation> {
    let lock = lock::hold(dir)?;
    let all = folder::scan(dir)?;
    let ca_stem = Role::Ca.stem();
    let inter_stem = Role::Intermediate.stem();
    let (ca_old, inter_old) = (previous(ca_stem), previous(inter_stem));
    let root = folder::entry(
        dir,
        &all,
        ca_stem,
        "rotate",
        format!(
            "; mint a CA first with `{}`",
            Program::Certificate.command(&format!("--certs {}", dir.path().display()))
        ),
    )?;
    if !root.is_ca() || !root.info.self_signed {
        return Err(Error::NotACa {
            path: root.cert_path.clone(),
            hint: "; `ca rotate` replaces a self-signed root CA".into(),
        });
    }
    // An overlap in progress: ca-old.crt is a different CA. The same CA means a rotation
    // stopped before it wrote ca.crt; this run finishes it.
    let interrupted = match all.iter().find(|s| s.name == ca_old) {
        Some(prev) if prev.chain[0] == root.chain[0] => true,
        Some(prev) => {
            return Err(Error::Invalid(format!(
                "an earlier rotation is still in its overlap: {} (\"{}\") is trusted beside the \
                 new CA. Finish it first: renew what it issued, then `{}`",
                prev.cert_path.display(),
                prev.info.subject,
                Program::Certificate
                    .command(&format!("ca retire --certs {}", dir.path().display()))
            )));
        }
        None if write::present(&dir.cert(&ca_old)) => {
            // The scan skipped it: let `entry` say why.
            folder::entry(dir, &all, &ca_old, "rotate", String::new())?;
            false
        }
        None => false,
    };
    let old_inter = match all.iter().find(|s| s.name == inter_old && s.is_ca()) {
        Some(kept) if interrupted => Some(kept),
        _ => all.iter().find(|s| s.name == inter_stem && s.is_ca()),
    };
    if let Some(inter) = old_inter
        && root_of(&all, inter).is_none_or(|r| r.chain[0] != root.chain[0])
    {
        return Err(Error::Invalid(format!(
            "{} is not issued by {}, so `ca rotate` cannot tell which intermediate belongs to \
             the root it replaces; `certificate doctor` shows what is wrong with it",
            inter.cert_path.display(),
            root.cert_path.display()
        )));
    }
    let others: Vec<&str> = all
        .iter()
        .filter(|s| s.is_ca() && ![ca_stem, inter_stem].contains(&s.name.as_str()))
        .filter(|s| !is_previous(&s.name))
        .filter(|s| root_of(&all, s).is_some_and(|r| r.chain[0] == root.chain[0]))
        .map(|s| s.name.as_str())
        .collect();
    if !others.is_empty() {
        return Err(Error::Invalid(format!(
            "{} also {} CA{} signed by {}; `ca rotate` makes a new root and a new {inter_stem} \
             only, and {} would keep chaining to the old root. Move {} (and what {} issued) to \
             a folder of {} own first",
            others.join(", "),
            if others.len() == 1 {
                "is an intermediate"
            } else {
                "are intermediate"
            },
            if others.len() == 1 { "" } else { "s" },
            root.cert_path.display(),
            if others.len() == 1 { "it" } else { "they" },
            if others.len() == 1 { "it" } else { "them" },
            if others.len() == 1 { "it" } else { "they" },
            if others.len() == 1 { "its" } else { "their" },
        )));
    }

    let old_ca = folder::load_authority(dir, ca_stem)?;
    let key_type = req
        .key_type
        .or_else(|| KeyType::of_description(&root.info.key))
        .unwrap_or_default();
    let length = req
        .length
        .unwrap_or_else(|| Validity::of(&root.info).length());
    let new_root = CertAuthority::new_root(
        next_subject(root)?,
        key_type,
        Validity::starting_now(length),
    )?;
    let new_inter = match old_inter {
        Some(inter) => Some(CertAuthority::new_intermediate(
            next_subject(inter)?,
            key_type,
            Validity::starting_now(Validity::of(&inter.info).length()),
            &new_root,
        )?),
        None => None,
    };

    // 1. The old CAs under their -old names, byte for byte (the old root alone, without
    //    whatever else ca.crt held).
    if let Some(inter) = old_inter
        && inter.name == inter_stem
    {
        copy_pair(dir, inter_stem, &inter_old, None)?;
    }
    if !interrupted {
        copy_pair(dir, ca_stem, &ca_old, Some(&root.chain[0]))?;
    }
    // 2. The new intermediate: only this tool reads it, and nothing trusts it until ca.crt
    //    holds its root.
    if let Some(inter) = &new_inter {
        write::publish_pair(
            &dir.key(inter_stem),
            &inter.key_pem(),
            &dir.cert(inter_stem),
            &inter.cert_pem,
            true,
        )?;
    }
    // 3. ca.crt: the new root first, then everything it trusted before.
    let bundle: Vec<CertificateDer<'static>> = std::iter::once(new_root.der.clone())
        .chain(old_ca.chain.iter().cloned())
        .collect();
    write::publish_pair(
        &dir.key(ca_stem),
        &new_root.key_pem(),
        &dir.ca_cert(),
        &pem::chain_pem(&bundle),
        true,
    )?;
    // 4. One revocation list per CA, the new ones included.
    let lists = match dir.crl().exists() {
        true => crl::resign_held(dir, crl::DEFAULT_DAYS, &lock)?,
        false => Vec::new(),
    };

    let all = folder::scan(dir)?;
    let find = |name: &str| all.iter().find(|s| s.name == name);
    let (Some(new_root_entry), Some(old_root_entry)) = (find(ca_stem), find(&ca_old)) else {
        return Err(Error::Invalid(format!(
            "{} changed while it was locked: ca.crt or {ca_old}.crt is gone",
            dir.path().display()
        )));
    };
    let new_inter_entry = new_inter.as_ref().and_then(|_| find(inter_stem));
    let mut records = vec![Record {
        action: Action::Rotate,
        name: ca_stem,
        info: &new_root_entry.info,
        issuer_name: None,
        extra: vec![("replaces", old_root_entry.info.fingerprint())],
    }];
    if let Some(inter) = new_inter_entry {
        records.push(Record {
            action: Action::Rotate,
            name: inter_stem,
            info: &inter.info,
            issuer_name: Some(ca_stem),
            extra: Vec::new(),
        });
    }
    issuance::append(dir, &records, &lock)?;
    Ok(Rotation {
        dir: dir.clone(),
        new_root: new_root_entry.info.clone(),
        new_intermediate: new_inter_entry.map(|s| s.info.clone()),
        old_root: old_root_entry.info.clone(),
        old_intermediate: find(&inter_old).map(|s| s.info.clone()),
        dependents: dependents(&all, old_root_entry)
            .into_iter()
            .map(|s| s.name.clone())
            .collect(),
        lists,
    })
}

/// Copies `from`'s key and certificate to `to`'s names, together or not at all. With
/// `only`, the certificate file gets that certificate alone (the root, without the rest
/// of a bundle).
fn copy_pair(
    dir: &CertsDir,
    from: &str,
    to: &str,
    only: Option<&CertificateDer<'_>>,
) -> Result<()> {
    let key_path = dir.key(from);
    let key = fs::read_to_string(&key_path)
        .map_err(|e| Error::read("the CA's private key", &key_path, e))?;
    let cert = match only {
        Some(der) => pem::chain_pem(std::slice::from_ref(der)),
        None => {
            let path = dir.cert(from);
            fs::read_to_string(&path).map_err(|e| Error::read("the CA certificate", &path, e))?
        }
    };
    write::publish_pair(&dir.key(to), &key, &dir.cert(to), &cert, true)
}

/// `certificate ca retire`: takes the old root out of `ca.crt`, signs `crl.pem` again
/// without the old CAs' lists, and moves their files to `retired/`. Refuses while a certificate
/// in the folder still chains only to the old root, unless `force`.
pub fn retire(dir: &CertsDir, force: bool) -> Result<Retirement> {
    let lock = lock::hold(dir)?;
    let all = folder::scan(dir)?;
    let Some(old) = old_root(&all) else {
        return Err(Error::Invalid(format!(
            "{} has no old CA to retire ({} is not there): `ca retire` ends the overlap that \
             `{}` starts",
            dir.path().display(),
            dir.cert(&previous(Role::Ca.stem())).display(),
            Program::Certificate.command("ca rotate")
        )));
    };
    let broken: Vec<String> = dependents(&all, old)
        .into_iter()
        .map(|s| s.name.clone())
        .collect();
    if !broken.is_empty() && !force {
        return Err(Error::StillNeeded {
            dir: dir.path().to_path_buf(),
            ca: old.cert_path.clone(),
            dependents: broken.clone(),
        });
    }
    let ca_path = dir.ca_cert();
    let bundle = pem::certificates(&ca_path, "the CA certificate")?;
    if bundle.first() == Some(&old.chain[0]) {
        return Err(Error::Invalid(format!(
            "{} still starts with the old CA: the rotation did not finish; run `{}` again to \
             finish it",
            ca_path.display(),
            Program::Certificate.command("ca rotate")
        )));
    }
    let kept: Vec<CertificateDer<'static>> = bundle
        .into_iter()
        .filter(|der| *der != old.chain[0])
        .collect();
    // 1. Nobody trusts the old root any more.
    write::atomic(
        &ca_path,
        pem::chain_pem(&kept).as_bytes(),
        write::Access::Public,
    )?;
    let old_names: Vec<String> = ROTATED.iter().rev().map(|r| previous(r.stem())).collect();
    let leaving: Vec<&Stored> = old_names
        .iter()
        .filter_map(|name| all.iter().find(|s| s.name == *name))
        .collect();
    // 2. One list per CA still trusted (read while the old CAs are still in the folder).
    let lists = match dir.crl().exists() {
        true => {
            let dropped: Vec<&str> = leaving.iter().map(|s| s.name.as_str()).collect();
            crl::resign_without(dir, crl::DEFAULT_DAYS, &dropped, &lock)?
        }
        false => Vec::new(),
    };
    // 3. Their files go to retired/, keys included.
    let retired_dir = dir.retired();
    write::create_dir(retired_dir.path())?;
    let mut retired = Vec::new();
    for s in leaving {
        let stem = retired_stem(&s.name, &s.info);
        let to = retired_dir.cert(&stem);
        move_file(&s.cert_path, &to)?;
        if write::present(&s.key_path) {
            move_file(&s.key_path, &retired_dir.key(&stem))?;
        }
        retired.push((s.name.clone(), s.info.clone(), to));
    }
    let records: Vec<Record<'_>> = retired
        .iter()
        .map(|(name, info, to)| Record {
            action: Action::Retire,
            name,
            info,
            issuer_name: None,
            extra: vec![("moved_to", to.display().to_string())],
        })
        .collect();
    issuance::append(dir, &records, &lock)?;
    let trusted = kept
        .iter()
        .filter_map(|der| CertInfo::parse(der).ok())
        .collect();
    Ok(Retirement {
        dir: dir.clone(),
        retired,
        trusted,
        broken,
        lists,
    })
}

fn move_file(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    fs::rename(from, to).map_err(|source| Error::Write {
        path: to.to_path_buf(),
        source,
    })
}

/// `"CA G2", sha256 AB:CD:EF:01:23:45:67:89…`, for one line.
fn named(info: &CertInfo) -> String {
    format!(
        "\"{}\", sha256 {}…",
        info.identity(),
        info.fingerprint().get(..23).unwrap_or_default()
    )
}

impl fmt::Display for Rotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.dir.path().display();
        let cmd = |args: &str| Program::Certificate.command(&format!("{args} --certs {d}"));
        let old_ends = format!(
            ", expires {} (in {})",
            format_time(self.old_root.not_after),
            format_span(self.old_root.not_after - now())
        );
        let new_ends = format!(", valid until {}", format_time(self.new_root.not_after));
        let rows = [
            (
                "new root",
                "ca.crt",
                Some(&self.new_root),
                new_ends.as_str(),
            ),
            (
                "new intermediate",
                "intermediate.crt",
                self.new_intermediate.as_ref(),
                "",
            ),
            (
                "old root",
                "ca-old.crt",
                Some(&self.old_root),
                old_ends.as_str(),
            ),
            (
                "old intermediate",
                "intermediate-old.crt",
                self.old_intermediate.as_ref(),
                "",
            ),
        ];
        writeln!(
            f,
            "Rotated the CA of {d}/ (each CA with its key beside it, 0600):"
        )?;
        for (what, file, info, end) in rows {
            if let Some(info) = info {
                writeln!(f, "  {what:<16}  {file:<20}  {}{end}", named(info))?;
            }
        }
        writeln!(
            f,
            "{d}/ca.crt is now the trust bundle of both roots, new first: servers and clients \
             that load it (the server reloads it by itself) accept certificates from either."
        )?;
        if !self.lists.is_empty() {
            writeln!(f, "{d}/crl.pem signed again, one list per CA:")?;
            write!(f, "{}", crl::Lists(&self.lists))?;
        }
        writeln!(
            f,
            "New and renewed certificates come from the new CA. Still issued by the old one \
             ({}): {}.",
            self.dependents.len(),
            match self.dependents.is_empty() {
                true => "none".to_string(),
                false => self.dependents.join(", "),
            }
        )?;
        writeln!(
            f,
            "Next: renew each (`{}`, or `renew NAME --watch` where it runs), then `{}`.",
            cmd("renew NAME"),
            cmd("ca retire")
        )
    }
}

impl fmt::Display for Retirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.dir.path().display();
        writeln!(f, "Retired the old CA of {d}/:")?;
        for (name, info, to) in &self.retired {
            writeln!(
                f,
                "  {name}.crt {} -> {} (with its key)",
                named(info),
                to.display()
            )?;
        }
        let trusted: Vec<String> = self
            .trusted
            .iter()
            .map(|c| format!("\"{}\"", c.identity()))
            .collect();
        writeln!(
            f,
            "{d}/ca.crt now trusts only {}: servers and clients that load it refuse \
             certificates from the old CA.",
            trusted.join(", ")
        )?;
        if !self.lists.is_empty() {
            writeln!(
                f,
                "{d}/crl.pem signed again, one list per CA still trusted:"
            )?;
            write!(f, "{}", crl::Lists(&self.lists))?;
        }
        if !self.broken.is_empty() {
            writeln!(
                f,
                "Retired with --force: {} still chained only to the old CA and no longer \
                 verify; renew them (`{}`).",
                self.broken.join(", "),
                Program::Certificate.command(&format!("renew NAME --certs {d}"))
            )?;
        }
        Ok(())
    }
}
