//! Revocation lists: `crl.pem` holds one CRL per CA in the folder, each signed by its CA,
//! so a server given `--crl crl.pem` can judge every leaf the folder issued.
//!
//! The file is its own database: revoking reads the entries already listed, adds one, and
//! signs every list again with fresh this/next update times.

use std::fmt;

use time::{Duration, OffsetDateTime};

use super::folder::{self, Stored};
use super::issuance::{self, Action, Record};
use super::lock::{self, FolderLock};
use crate::certinfo::CertInfo;
use crate::error::{Error, Result};
use crate::files::CertsDir;
use crate::format::{format_time, now};
use crate::pem;
use crate::program::Program;
pub use crate::revocation::{CrlInfo, DEFAULT_DAYS, Entry, Reason, sign};
use crate::write::{self, Access};

/// What a revocation did.
#[derive(Clone, Debug)]
pub struct Revocation {
    /// The certificate's name in the folder.
    pub name: String,
    /// The revoked certificate.
    pub info: CertInfo,
    /// The CA that signed the list naming it.
    pub issuer: String,
    /// It was listed already (nothing changed but the signatures' dates).
    pub already: bool,
    /// When it was revoked.
    pub at: OffsetDateTime,
    /// The lists written.
    pub lists: Vec<ListSummary>,
    /// Where they were written.
    pub path: std::path::PathBuf,
    /// Why it was revoked (as asked this time).
    pub reason: Reason,
}

impl fmt::Display for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        if self.already {
            writeln!(
                f,
                "{} (serial {}) was already revoked on {}; re-signed {path}.",
                self.name,
                self.info.serial_hex(),
                format_time(self.at)
            )?;
        } else {
            writeln!(
                f,
                "Revoked {} ({}, serial {}, reason {}) in {path}, signed by {}.",
                self.name,
                self.info.identity(),
                self.info.serial_hex(),
                self.reason,
                self.issuer
            )?;
        }
        write!(f, "{}", Lists(&self.lists))?;
        writeln!(
            f,
            "Servers refuse it once they load the list: {}",
            Program::Server.command(&format!("--crl {path}"))
        )
    }
}

/// The lists of a `crl.pem`, one line each.
pub struct Lists<'a>(pub &'a [ListSummary]);

impl fmt::Display for Lists<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for list in self.0 {
            writeln!(
                f,
                "  list of {}: {} revoked, next update {}",
                list.ca,
                list.revoked,
                format_time(list.next_update)
            )?;
        }
        Ok(())
    }
}

/// One CRL as written.
#[derive(Clone, Debug)]
pub struct ListSummary {
    /// The signing CA's name in the folder.
    pub ca: String,
    /// How many certificates it lists.
    pub revoked: usize,
    /// Its nextUpdate.
    pub next_update: OffsetDateTime,
}

/// Revokes the certificate `NAME.crt`: adds it to its CA's list and re-signs `crl.pem`,
/// holding the folder's lock from reading the lists to writing them.
pub fn revoke(dir: &CertsDir, name: &str, reason: Reason, days: u32) -> Result<Revocation> {
    folder::validate_name(name)?;
    let lock = lock::hold(dir)?;
    let all = folder::scan(dir)?;
    let target = folder::entry(dir, &all, name, "revoke", String::new())?;
    let issuer = folder::find_issuer(&all, &target.info).ok_or_else(|| Error::NoIssuer {
        dir: dir.path().to_path_buf(),
        path: target.cert_path.clone(),
        issuer: target.info.issuer.clone(),
        hint: ", so no list here can revoke it".into(),
    })?;
    let mut lists = existing(dir, &all)?;
    let entries = lists.entries.entry(issuer.name.clone()).or_default();
    let (already, at) = match entries.iter().find(|e| e.serial == target.info.serial) {
        Some(e) => (true, e.at),
        None => {
            let now = now();
            entries.push(Entry {
                serial: target.info.serial.clone(),
                at: now,
                reason: Some(reason),
            });
            (false, now)
        }
    };
    let summaries = sign_all(dir, &all, &lists, days)?;
    if !already {
        let record = Record {
            action: Action::Revoke,
            name,
            info: &target.info,
            issuer_name: Some(&issuer.name),
            extra: vec![("reason", reason.to_string())],
        };
        issuance::append(dir, &[record], &lock)?;
    }
    Ok(Revocation {
        name: name.to_string(),
        info: target.info.clone(),
        issuer: issuer.name.clone(),
        already,
        at,
        lists: summaries,
        path: dir.crl(),
        reason,
    })
}

/// Signs every CA's list again (keeping its entries) with fresh dates: `certificate crl`.
pub fn resign(dir: &CertsDir, days: u32) -> Result<Vec<ListSummary>> {
    let lock = lock::hold(dir)?;
    resign_held(dir, days, &lock)
}

/// [`resign`], for a command that holds the folder's lock already.
pub(super) fn resign_held(
    dir: &CertsDir,
    days: u32,
    _held: &FolderLock,
) -> Result<Vec<ListSummary>> {
    let all = folder::scan(dir)?;
    let lists = existing(dir, &all)?;
    sign_all(dir, &all, &lists, days)
}

/// [`resign`] for `ca retire`, holding the folder's lock: the CAs named in `dropped` (still
/// in the folder) lose their lists, every other CA keeps its own.
pub(super) fn resign_without(
    dir: &CertsDir,
    days: u32,
    dropped: &[&str],
    _held: &FolderLock,
) -> Result<Vec<ListSummary>> {
    let all = folder::scan(dir)?;
    let mut lists = existing(dir, &all)?;
    lists
        .entries
        .retain(|name, _| !dropped.contains(&name.as_str()));
    let kept: Vec<Stored> = all
        .into_iter()
        .filter(|s| !dropped.contains(&s.name.as_str()))
        .collect();
    sign_all(dir, &kept, &lists, days)
}

/// Starts `crl.pem` over: one empty list per CA in the folder. For a folder whose CA was
/// just minted again, where the old lists name serials of certificates that no longer count.
pub fn reset(dir: &CertsDir, days: u32) -> Result<Vec<ListSummary>> {
    let lock = lock::hold(dir)?;
    reset_held(dir, days, &lock)
}

/// [`reset`], for a command that holds the folder's lock already.
pub(super) fn reset_held(
    dir: &CertsDir,
    days: u32,
    _held: &FolderLock,
) -> Result<Vec<ListSummary>> {
    let all = folder::scan(dir)?;
    sign_all(dir, &all, &Existing::default(), days)
}

/// The entries of `crl.pem` by the name of the CA that signed each list (empty without the
/// file), for the inventory.
pub(super) fn entries_by_ca(
    dir: &CertsDir,
    all: &[Stored],
) -> Result<std::collections::BTreeMap<String, Vec<Entry>>> {
    Ok(existing(dir, all)?.entries)
}

/// What `crl.pem` holds today.
#[derive(Default)]
struct Existing {
    /// The entries, by the name of the CA that signed each list.
    entries: std::collections::BTreeMap<String, Vec<Entry>>,
    /// The highest CRL number in the file.
    number: u64,
}

/// Reads `crl.pem`, if there is one.
fn existing(dir: &CertsDir, all: &[Stored]) -> Result<Existing> {
    let mut out = Existing::default();
    let path = dir.crl();
    if !path.exists() {
        return Ok(out);
    }
    for der in pem::crls(&path, "the certificate revocation list")? {
        let info = CrlInfo::parse(&der).map_err(|why| Error::malformed("the CRL", &path, why))?;
        let Some(ca) = all.iter().find(|s| s.is_ca() && info.issued_by(&s.info)) else {
            return Err(Error::Invalid(format!(
                "{} holds a list signed by \"{}\", which is not a CA in {}; move that list \
                 elsewhere before re-signing",
                path.display(),
                info.issuer,
                dir.path().display()
            )));
        };
        let number = info
            .number
            .as_deref()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        out.number = out.number.max(number);
        out.entries.insert(ca.name.clone(), info.entries);
    }
    Ok(out)
}

/// Signs one list per CA in the folder and writes them all to `crl.pem`.
fn sign_all(
    dir: &CertsDir,
    all: &[Stored],
    lists: &Existing,
    days: u32,
) -> Result<Vec<ListSummary>> {
    let now = now();
    let next_update = now + Duration::days(i64::from(days));
    // Seconds since 1970, or one more than the list it replaces if that is larger: CRL
    // numbers only ever grow.
    let number = u64::try_from(now.unix_timestamp())
        .unwrap_or(0)
        .max(lists.number + 1);
    let mut pem_out = String::new();
    let mut summaries = Vec::new();
    for ca_entry in all.iter().filter(|s| s.is_ca()) {
        let ca = folder::load_authority(dir, &ca_entry.name)?;
        let entries = lists
            .entries
            .get(&ca_entry.name)
            .cloned()
            .unwrap_or_default();
        pem_out.push_str(&sign(&ca, &entries, number, now, next_update)?);
        summaries.push(ListSummary {
            ca: ca_entry.name.clone(),
            revoked: entries.len(),
            next_update,
        });
    }
    if summaries.is_empty() {
        return Err(Error::Invalid(format!(
            "{} holds no CA to sign a revocation list; mint one with `{}`",
            dir.path().display(),
            Program::Certificate.command(&format!("--certs {}", dir.path().display()))
        )));
    }
    write::atomic(&dir.crl(), pem_out.as_bytes(), Access::Public)?;
    Ok(summaries)
}
