//! The folder index, at the bottom of the CA tool: which certificates a folder holds, which
//! of them are CAs, who issued whom, and which names may be used.
//!
//! The folder is the database: `NAME.crt` (the certificate, then its chain without the root)
//! and `NAME.key` (0600) per entry; a CA is any entry whose certificate says CA:TRUE.

use std::fs;
use std::path::PathBuf;

use rustls::pki_types::CertificateDer;

use crate::certinfo::CertInfo;
use crate::error::{Error, NAME_MAX, NameProblem, Result};
use crate::files::{CertsDir, RESERVED, Role};
use crate::pem;
use crate::pki::CertAuthority;
use crate::program::Program;
use crate::write;

/// Checks a file stem: letters, digits, `.`, `_` and `-`, starting with a letter or digit,
/// at most [`NAME_MAX`] characters. No path separators, no `..`.
pub fn check_stem(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !name.contains("..");
    if !ok {
        return Err(Error::BadName {
            name: name.to_string(),
            problem: NameProblem::Unusable,
        });
    }
    // Only ASCII is left, so bytes are characters.
    if name.len() > NAME_MAX {
        return Err(Error::BadName {
            name: name.to_string(),
            problem: NameProblem::TooLong { len: name.len() },
        });
    }
    Ok(())
}

/// Checks a name for a new certificate: a valid stem that is not one of the folder's own
/// files (compared without case, for case-insensitive file systems).
pub fn validate_name(name: &str) -> Result<()> {
    check_stem(name)?;
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(Error::BadName {
            name: name.to_string(),
            problem: NameProblem::Reserved,
        });
    }
    Ok(())
}

/// One certificate in the folder.
#[derive(Clone, Debug)]
pub struct Stored {
    /// `NAME` of `NAME.crt`.
    pub name: String,
    /// The certificate file.
    pub cert_path: PathBuf,
    /// The key file beside it (it may not exist).
    pub key_path: PathBuf,
    /// Every certificate in the file, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The first certificate, parsed.
    pub info: CertInfo,
}

impl Stored {
    /// A CA (CA:TRUE)?
    pub fn is_ca(&self) -> bool {
        self.info.ca == Some(true)
    }
}

/// Every readable `NAME.crt` directly in the folder, sorted by name (a damaged file is
/// skipped here; [`scan_all`] reports it).
pub fn scan(dir: &CertsDir) -> Result<Vec<Stored>> {
    Ok(scan_all(dir)?.0)
}

/// A certificate file that could not be read, and why.
pub type Broken = (PathBuf, String);

/// Every `NAME.crt` in the folder: those that parse, and those that do not with the reason.
pub fn scan_all(dir: &CertsDir) -> Result<(Vec<Stored>, Vec<Broken>)> {
    let entries = fs::read_dir(dir.path())
        .map_err(|e| Error::read("the certificate folder", dir.path(), e))?;
    let mut good = Vec::new();
    let mut broken = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = file.strip_suffix(".crt") else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let cert_path = dir.cert(name);
        let parsed = pem::certificates(&cert_path, "a certificate").and_then(|chain| {
            let info = CertInfo::parse(&chain[0])
                .map_err(|why| Error::malformed("a certificate", &cert_path, why))?;
            Ok((chain, info))
        });
        match parsed {
            Ok((chain, info)) => good.push(Stored {
                name: name.to_string(),
                key_path: dir.key(name),
                cert_path,
                chain,
                info,
            }),
            Err(e) => broken.push((cert_path, e.to_string())),
        }
    }
    good.sort_by(|a, b| a.name.cmp(&b.name));
    broken.sort();
    Ok((good, broken))
}

/// Checks a name that may reach one folder down, as the lab's certificates are named from
/// the folder that holds their CA: `client-a`, or `lab/client-expired`. Each part must be
/// a usable name; no `..`, no absolute paths.
pub fn check_entry_name(name: &str) -> Result<()> {
    match name.split_once('/') {
        Some((sub, stem)) => {
            check_stem(sub)?;
            check_stem(stem)
        }
        None => validate_name(name),
    }
}

/// The certificate at `name` = `SUB/NAME` (one folder down), read directly: for renewing
/// a certificate of the lab from the folder that holds its CA.
pub fn stored_below(dir: &CertsDir, name: &str, action: &'static str) -> Result<Stored> {
    let cert_path = dir.cert(name);
    if !write::present(&cert_path) {
        return Err(Error::NoSuchCertificate {
            path: cert_path,
            action,
            hint: String::new(),
        });
    }
    let chain = pem::certificates(&cert_path, "a certificate")?;
    let info = CertInfo::parse(&chain[0])
        .map_err(|why| Error::malformed("a certificate", &cert_path, why))?;
    Ok(Stored {
        name: name.to_string(),
        key_path: dir.key(name),
        cert_path,
        chain,
        info,
    })
}

/// The certificate `name` in `all` (a [`scan`] of `dir`), for `action` ("renew",
/// "revoke"). When it is not there the error says what is: a `NAME.crt` that cannot be read
/// (and why), a `NAME.key` without its certificate, or nothing at all (then `hint` says
/// what to do).
pub fn entry<'a>(
    dir: &CertsDir,
    all: &'a [Stored],
    name: &str,
    action: &'static str,
    hint: String,
) -> Result<&'a Stored> {
    if let Some(found) = all.iter().find(|s| s.name == name) {
        return Ok(found);
    }
    let cert_path = dir.cert(name);
    let key_path = dir.key(name);
    if write::present(&cert_path) {
        // The scan skipped it: say why.
        let chain = pem::certificates(&cert_path, "a certificate")?;
        CertInfo::parse(&chain[0])
            .map_err(|why| Error::malformed("a certificate", &cert_path, why))?;
    } else if write::present(&key_path) {
        return Err(Error::Unpaired {
            present: key_path,
            missing: cert_path,
            hint: format!(
                "; {action} needs the certificate. If the key is a leftover, remove it; to make \
                 a fresh pair, run `{}` (or --server), which replaces the key",
                Program::Certificate.command(&format!(
                    "issue {name} --client --force --certs {}",
                    dir.path().display()
                ))
            ),
        });
    }
    Err(Error::NoSuchCertificate {
        path: cert_path,
        action,
        hint,
    })
}

/// The CA in `all` that issued `leaf`: same subject as the leaf's issuer and, when both
/// carry key identifiers, the same key.
pub fn find_issuer<'a>(all: &'a [Stored], leaf: &CertInfo) -> Option<&'a Stored> {
    all.iter().find(|ca| {
        ca.is_ca()
            && ca.info.subject == leaf.issuer
            && match (&ca.info.subject_key_id, &leaf.authority_key_id) {
                (Some(ski), Some(aki)) => ski == aki,
                _ => true,
            }
            && ca.info.sha256 != leaf.sha256
    })
}

/// Loads the CA called `name` from the folder, to sign with.
pub fn load_authority(dir: &CertsDir, name: &str) -> Result<CertAuthority> {
    CertAuthority::load(&dir.cert(name), &dir.key(name))
}

/// The CA `issue` signs with when `--issuer` is not given: the demo's intermediate when the
/// folder has one, the root otherwise.
pub fn default_issuer(dir: &CertsDir) -> &'static str {
    if dir.role_cert(Role::Intermediate).exists() {
        Role::Intermediate.stem()
    } else {
        Role::Ca.stem()
    }
}

/// Loads the [`default_issuer`], with its name. An `intermediate.crt` that is not a CA is
/// named as the cause, with the fix: it is the default issuer only because it exists.
pub fn load_default_issuer(dir: &CertsDir) -> Result<(&'static str, CertAuthority)> {
    let name = default_issuer(dir);
    match load_authority(dir, name) {
        Err(Error::NotACa { path, .. }) if name == Role::Intermediate.stem() => {
            Err(Error::NotACa {
                hint: format!(
                    ". It is the default issuer because it exists (`issue` signs with {} unless \
                     --issuer says otherwise); make it a real intermediate CA with `{}`, or \
                     pass --issuer {}",
                    path.display(),
                    Program::Certificate.command(&format!(
                        "issue {name} --intermediate --force --certs {}",
                        dir.path().display()
                    )),
                    Role::Ca.stem()
                ),
                path,
            })
        }
        other => other.map(|ca| (name, ca)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_the_folder_or_take_reserved_files() {
        for bad in [
            "", "../x", "a/b", "..", ".hidden", "ca", "crl", "ca-old", "retired", "x y", "é",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} was accepted");
        }
        for good in ["client-c", "api.internal", "svc_1", "B2"] {
            validate_name(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
    }

    #[test]
    fn a_long_name_is_refused_for_its_length() {
        validate_name(&"a".repeat(NAME_MAX)).expect("64 characters are fine");
        let err = validate_name(&"a".repeat(300)).expect_err("too long");
        assert!(
            matches!(
                err,
                Error::BadName {
                    problem: NameProblem::TooLong { len: 300 },
                    ..
                }
            ),
            "{err}"
        );
    }
}
