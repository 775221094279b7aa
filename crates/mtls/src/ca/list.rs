//! `certificate list`: the folder's inventory, one line per certificate (name, identity,
//! issuer, time left, revoked or not), as a table or JSON; `--expiring 7d` keeps those that
//! end within a week. The exit status is 1 when something listed has expired, so a cron
//! job can run `certificate list --expiring 14d` and mail its output when it fails.

use std::fmt;

use time::{Duration, OffsetDateTime};

use super::crl::{self, Entry};
use super::folder;
use crate::certinfo::CertInfo;
use crate::error::Result;
use crate::files::CertsDir;
use crate::format::{format_span, now, rfc3339};

/// One certificate of the inventory.
#[derive(Clone, Debug)]
pub struct Item {
    /// `NAME` of `NAME.crt`.
    pub name: String,
    /// The certificate.
    pub info: CertInfo,
    /// The name of the CA in the folder that issued it (`None`: itself, for a root, or a CA
    /// the folder does not hold).
    pub issuer: Option<String>,
    /// Its entry in `crl.pem`, when it is revoked.
    pub revoked: Option<Entry>,
}

impl Item {
    /// Past its notAfter at `now`.
    pub fn expired(&self, now: OffsetDateTime) -> bool {
        self.info.not_after < now
    }

    fn issuer_text(&self) -> String {
        match &self.issuer {
            Some(name) => name.clone(),
            None if self.info.self_signed => "(itself)".into(),
            None => format!("\"{}\" (not in the folder)", self.info.issuer),
        }
    }

    fn expires_text(&self, now: OffsetDateTime) -> String {
        let left = self.info.not_after - now;
        match left.is_negative() {
            true => format!("EXPIRED {} ago", format_span(left)),
            false => format_span(left),
        }
    }

    fn revoked_text(&self) -> String {
        match &self.revoked {
            Some(entry) => match entry.reason {
                Some(reason) => format!("yes ({reason})"),
                None => "yes".into(),
            },
            None => "no".into(),
        }
    }
}

/// The inventory of a folder.
#[derive(Clone, Debug)]
pub struct Inventory {
    /// The folder.
    pub dir: CertsDir,
    /// The certificates listed, by name.
    pub items: Vec<Item>,
    /// Only those ending within this long, if asked.
    pub expiring: Option<Duration>,
    /// When the list was made.
    pub now: OffsetDateTime,
}

impl Inventory {
    /// Something listed has expired (exit status 1).
    pub fn any_expired(&self) -> bool {
        self.items.iter().any(|i| i.expired(self.now))
    }

    /// The same as JSON, for scripts.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "dir": self.dir.path().display().to_string(),
            "time": rfc3339(self.now),
            "expiring_within_seconds": self.expiring.map(|d| d.whole_seconds()),
            "certificates": self.items.iter().map(|i| serde_json::json!({
                "name": i.name,
                "identity": i.info.identity(),
                "subject": i.info.subject,
                "ca": i.info.ca == Some(true),
                "issuer": i.issuer,
                "issuer_subject": i.info.issuer,
                "serial": i.info.serial_hex(),
                "sha256": i.info.fingerprint(),
                "not_before": rfc3339(i.info.not_before),
                "not_after": rfc3339(i.info.not_after),
                "expires_in_seconds": (i.info.not_after - self.now).whole_seconds(),
                "expired": i.expired(self.now),
                "revoked": i.revoked.is_some(),
                "revoked_at": i.revoked.as_ref().map(|e| rfc3339(e.at)),
                "revocation_reason": i.revoked.as_ref().and_then(|e| e.reason).map(|r| r.to_string()),
            })).collect::<Vec<_>>(),
        })
    }
}

/// The certificates directly in `dir` (a damaged file is left out; `doctor` names it),
/// with their issuers and revocation status; with `expiring`, only those that end within
/// that long (or have ended).
pub fn list(dir: &CertsDir, expiring: Option<std::time::Duration>) -> Result<Inventory> {
    let expiring = expiring.map(|d| Duration::try_from(d).unwrap_or(Duration::MAX));
    let all = folder::scan(dir)?;
    let revoked = crl::entries_by_ca(dir, &all)?;
    let now = now();
    let items = all
        .iter()
        .filter(|s| expiring.is_none_or(|within| s.info.not_after - now <= within))
        .map(|s| {
            let issuer = folder::find_issuer(&all, &s.info);
            Item {
                name: s.name.clone(),
                info: s.info.clone(),
                issuer: issuer.map(|i| i.name.clone()),
                revoked: issuer
                    .and_then(|i| revoked.get(&i.name))
                    .and_then(|entries| entries.iter().find(|e| e.serial == s.info.serial))
                    .cloned(),
            }
        })
        .collect();
    Ok(Inventory {
        dir: dir.clone(),
        items,
        expiring,
        now,
    })
}

impl fmt::Display for Inventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.items.is_empty() {
            return match self.expiring {
                Some(within) => writeln!(
                    f,
                    "Nothing in {}/ expires within {}.",
                    self.dir.path().display(),
                    format_span(within)
                ),
                None => writeln!(f, "{}/ holds no certificates.", self.dir.path().display()),
            };
        }
        let header = ["NAME", "IDENTITY", "ISSUER", "EXPIRES IN", "REVOKED"];
        let rows: Vec<[String; 5]> = self
            .items
            .iter()
            .map(|i| {
                [
                    i.name.clone(),
                    i.info.identity(),
                    i.issuer_text(),
                    i.expires_text(self.now),
                    i.revoked_text(),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: [&str; 5]| {
            let mut text = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                match i {
                    4 => text.push_str(cell),
                    _ => text.push_str(&format!("{cell:w$}  ")),
                }
            }
            writeln!(f, "{}", text.trim_end())
        };
        line(f, header)?;
        for row in &rows {
            line(f, row.each_ref().map(String::as_str))?;
        }
        Ok(())
    }
}
