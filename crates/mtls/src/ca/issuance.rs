//! The issuance log, `DIR/issuance.log`: one JSON line for every certificate the folder's
//! CAs issue, renew or revoke, and every CA a rotation mints or a retirement takes out of
//! service, so that after a leak the question "what did we issue, to whom, when, and who
//! ran the command" has an answer.
//!
//! Each line says what a certificate says publicly (serial, SHA-256 fingerprint, subject,
//! SANs, validity, issuer) plus the time, the action and the operating-system user; never a
//! key or a password. The file is mode 0644, like the certificates it describes (the
//! folder, 0700, is what keeps other users out), and only ever appended to, one whole line
//! per write, under the folder's lock.

use std::fs::OpenOptions;
use std::io::Write;

use super::lock::FolderLock;
use crate::certinfo::CertInfo;
use crate::error::{Error, Result};
use crate::files::CertsDir;
use crate::format::{now, rfc3339};
use crate::write::Access;

/// What happened to a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `certificate issue`, or the demo set's mint.
    Issue,
    /// `certificate renew` (or `renew --watch`): a fresh key and serial for the same names.
    Renew,
    /// `certificate revoke`: listed in `crl.pem`.
    Revoke,
    /// `certificate ca rotate`: a new CA beside the old one.
    Rotate,
    /// `certificate ca retire`: an old CA taken out of `ca.crt`.
    Retire,
}

impl Action {
    /// The word in the log.
    pub fn name(self) -> &'static str {
        match self {
            Action::Issue => "issue",
            Action::Renew => "renew",
            Action::Revoke => "revoke",
            Action::Rotate => "rotate",
            Action::Retire => "retire",
        }
    }
}

/// One line of the log.
#[derive(Clone, Debug)]
pub struct Record<'a> {
    /// What happened.
    pub action: Action,
    /// The certificate's name in the folder (`client-a`, `ca`).
    pub name: &'a str,
    /// The certificate.
    pub info: &'a CertInfo,
    /// The name of the CA that signed it, when it is in the folder (`None` for a root).
    pub issuer_name: Option<&'a str>,
    /// More to say (`reason` for a revocation, `file` for a retired CA).
    pub extra: Vec<(&'static str, String)>,
}

impl Record<'_> {
    /// The line as JSON.
    fn to_json(&self, user: &User) -> serde_json::Value {
        let info = self.info;
        let mut line = serde_json::json!({
            "time": rfc3339(now()),
            "action": self.action.name(),
            "name": self.name,
            "serial": info.serial_hex(),
            "sha256": info.fingerprint(),
            "subject": info.subject,
            "sans": info.sans.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "not_before": rfc3339(info.not_before),
            "not_after": rfc3339(info.not_after),
            "issuer": info.issuer,
            "issuer_name": self.issuer_name,
            "ca": info.ca == Some(true),
            "user": user.name,
            "uid": user.uid,
        });
        if let Some(map) = line.as_object_mut() {
            for (key, value) in &self.extra {
                map.insert((*key).to_string(), value.clone().into());
            }
        }
        line
    }
}

/// Appends `records` to `DIR/issuance.log`, one line each, while the caller holds the
/// folder's lock.
pub fn append(dir: &CertsDir, records: &[Record<'_>], _held: &FolderLock) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let path = dir.issuance_log();
    let user = User::current();
    let mut text = String::new();
    for record in records {
        text.push_str(&record.to_json(&user).to_string());
        text.push('\n');
    }
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, Access::Public.mode());
    let write = |source| Error::Write {
        path: path.clone(),
        source,
    };
    let created = !crate::write::present(&path);
    let mut file = options.open(&path).map_err(write)?;
    // The umask can take bits away from a new file; give readers back what 0644 promises.
    #[cfg(unix)]
    if created {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(Access::Public.mode()))
            .map_err(write)?;
    }
    #[cfg(not(unix))]
    let _ = created;
    // One write for all the lines: a reader never sees half a record.
    file.write_all(text.as_bytes()).map_err(write)?;
    file.sync_data().map_err(write)
}

/// Every line of the log, parsed (a line that does not parse is skipped): for tests and
/// scripts that read it back.
pub fn read(dir: &CertsDir) -> Result<Vec<serde_json::Value>> {
    let path = dir.issuance_log();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::read("the issuance log", &path, e)),
    };
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect())
}

/// Who ran the command: the login name from the environment (`USER`, then `LOGNAME`; where
/// neither is set, as under cron or in a container, the uid's name in `/etc/passwd`), and
/// the numeric user id where the system shows it. The name is what the shell says, not a
/// proof; the uid comes from the kernel.
struct User {
    name: Option<String>,
    uid: Option<u32>,
}

impl User {
    fn current() -> Self {
        let name = ["USER", "LOGNAME"]
            .iter()
            .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()));
        let uid = uid();
        let name = name.or_else(|| uid.and_then(passwd_name));
        Self { name, uid }
    }
}

/// The name `/etc/passwd` gives `uid`.
fn passwd_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_string())
    })
}

/// The real user id, from `/proc/self` (owned by the process's user) on Linux.
#[cfg(unix)]
fn uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

#[cfg(not(unix))]
fn uid() -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{self, CertAuthority, KeyType, Validity};

    #[test]
    fn each_record_is_one_line_of_public_facts_appended() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = CertsDir::new(tmp.path());
        let ca = CertAuthority::new_root(
            pki::demo_subject("CA Company", "CA"),
            KeyType::default(),
            Validity::days(1),
        )
        .expect("a CA");
        let info = CertInfo::parse(&ca.der).expect("parse");
        let held = super::super::lock::hold(&dir).expect("lock");
        for action in [Action::Rotate, Action::Retire] {
            let record = Record {
                action,
                name: "ca",
                info: &info,
                issuer_name: None,
                extra: vec![("file", "retired/ca.crt".into())],
            };
            append(&dir, &[record], &held).expect("append");
        }
        let lines = read(&dir).expect("read");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["action"], "rotate");
        assert_eq!(lines[1]["action"], "retire");
        assert_eq!(lines[1]["sha256"], info.fingerprint());
        assert_eq!(lines[1]["file"], "retired/ca.crt");
        let text = std::fs::read_to_string(dir.issuance_log()).expect("read");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        #[cfg(unix)]
        assert_eq!(
            crate::perms::mode(&dir.issuance_log()).expect("mode") & 0o777,
            0o644
        );
    }

    #[cfg(unix)]
    #[test]
    fn without_user_in_the_environment_the_uid_is_named_from_passwd() {
        // Root is uid 0 on every Unix system with an /etc/passwd.
        assert_eq!(passwd_name(0).as_deref(), Some("root"));
        assert_eq!(passwd_name(u32::MAX - 7), None);
    }
}
