//! The demo set of the Go original: a root CA, a server certificate and two client
//! certificates, written into one folder and then checked the way the Go demo asks a
//! learner to check them by eye.

use std::fmt;
use std::path::PathBuf;

use time::OffsetDateTime;

use super::doctor::{self, Report};
use super::issuance::{self, Action, Record};
use super::{crl, folder, lock};
use crate::certinfo::CertInfo;
use crate::error::Result;
use crate::files::{CertsDir, ClientId, Role, SERVER_SANS};
use crate::format::{format_span, format_time};
use crate::pem;
use crate::pki::{self, CertAuthority, KeyType, LeafSpec, Usage, Validity};
use crate::program::Program;
use crate::write;
use rcgen::SanType;

/// How to mint the demo set.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Where to write.
    pub out: CertsDir,
    /// Key algorithm for every certificate.
    pub key_type: KeyType,
    /// Validity of the leaves.
    pub leaf_validity: Validity,
    /// Validity of the CA.
    pub ca_validity: Validity,
    /// SANs added to the server certificate, beyond [`SERVER_SANS`].
    pub extra_sans: Vec<SanType>,
    /// Root -> intermediate -> leaves, instead of root -> leaves.
    pub intermediate: bool,
    /// Replace existing files.
    pub force: bool,
}

impl DemoOptions {
    /// ECDSA P-256, leaves for 365 days, the CA for ten years.
    pub fn new(out: CertsDir) -> Self {
        Self {
            out,
            key_type: KeyType::default(),
            leaf_validity: Validity::days(365),
            ca_validity: Validity::days(3650),
            extra_sans: Vec::new(),
            intermediate: false,
            force: false,
        }
    }
}

/// What [`mint`] wrote and what it verified.
#[derive(Clone, Debug)]
pub struct DemoSet {
    /// The folder.
    pub dir: CertsDir,
    /// Key algorithm used.
    pub key_type: KeyType,
    /// Each file with what it is for.
    pub files: Vec<(PathBuf, String)>,
    /// The checks, in order ([`doctor::demo_set`]).
    pub checks: Report,
    /// Each certificate, for fingerprints and dates.
    pub certs: Vec<(PathBuf, CertInfo)>,
    /// Files in the folder that belonged to a CA this run replaced.
    pub stale: Vec<PathBuf>,
    /// `crl.pem` was started over for the new CA.
    pub crl_reset: bool,
}

impl DemoSet {
    /// True when every check passed.
    pub fn all_ok(&self) -> bool {
        self.checks.passed()
    }
}

fn subject(role: Role) -> (&'static str, &'static str) {
    match role {
        Role::Ca => ("CA Company", "CA"),
        Role::Intermediate => ("CA Company", "Intermediate CA"),
        Role::Server => ("Server Company", "localhost"),
        Role::Client(ClientId::A) => ("Client A Company", "Client A"),
        Role::Client(ClientId::B) => ("Client B Company", "Client B"),
    }
}

/// The leaves of the demo set.
const LEAVES: [Role; 3] = [
    Role::Server,
    Role::Client(ClientId::A),
    Role::Client(ClientId::B),
];

/// Mints the demo set into `opts.out` (created 0700 if needed), refusing to replace
/// anything without `force`, then reads the files back and checks them; the folder's lock
/// is held from the first check to the last write.
pub fn mint(opts: &DemoOptions) -> Result<DemoSet> {
    let dir = &opts.out;
    write::create_dir(dir.path())?;
    let lock = lock::hold(dir)?;
    let replacing_ca = dir.ca_cert().exists();
    let roles: Vec<Role> = Role::ALL
        .into_iter()
        .chain(opts.intermediate.then_some(Role::Intermediate))
        .collect();
    for role in &roles {
        for path in [dir.role_cert(*role), dir.role_key(*role)] {
            let why = if *role == Role::Ca {
                "replacing the CA would orphan every certificate it issued (no server or client \
                 would trust them any more)"
            } else {
                "it belongs to the existing demo set"
            };
            write::ensure_absent(&path, opts.force, why)?;
        }
    }
    let mut sans = SERVER_SANS
        .iter()
        .map(|s| pki::parse_san(s))
        .collect::<Result<Vec<_>>>()?;
    for extra in &opts.extra_sans {
        if !sans.contains(extra) {
            sans.push(extra.clone());
        }
    }

    let (org, cn) = subject(Role::Ca);
    let root =
        CertAuthority::new_root(pki::demo_subject(org, cn), opts.key_type, opts.ca_validity)?;
    // Each CA's key first: if anything below fails, the set can still be completed.
    write_authority(dir, Role::Ca, &root, opts.force)?;
    let intermediate = if opts.intermediate {
        let (org, cn) = subject(Role::Intermediate);
        let inter = CertAuthority::new_intermediate(
            pki::demo_subject(org, cn),
            opts.key_type,
            opts.ca_validity,
            &root,
        )?;
        write_authority(dir, Role::Intermediate, &inter, opts.force)?;
        Some(inter)
    } else {
        // A stale intermediate from an earlier --intermediate run would become the default
        // issuer of `certificate issue`; a fresh set without one must not leave it behind.
        for stale in [
            dir.role_cert(Role::Intermediate),
            dir.role_key(Role::Intermediate),
        ] {
            if stale.exists() {
                std::fs::remove_file(&stale).map_err(|source| crate::Error::Write {
                    path: stale.clone(),
                    source,
                })?;
            }
        }
        None
    };
    let issuer = intermediate.as_ref().unwrap_or(&root);

    for role in LEAVES {
        let (org, cn) = subject(role);
        let (usage, role_sans) = match role {
            Role::Client(id) => (
                Usage::Client,
                vec![pki::parse_san(&format!("URI:{}", id.uri()))?],
            ),
            _ => (Usage::Server, sans.clone()),
        };
        let leaf = issuer.issue(&LeafSpec {
            subject: pki::demo_subject(org, cn),
            sans: role_sans,
            usage,
            key_type: opts.key_type,
            validity: opts.leaf_validity,
        })?;
        write_pair(dir, role, &leaf.key_pem, &leaf.cert_pem, opts.force)?;
    }
    let (files, certs) = describe(dir)?;
    let mut set = DemoSet {
        dir: dir.clone(),
        key_type: opts.key_type,
        files,
        checks: doctor::demo_set(dir)?,
        certs,
        stale: Vec::new(),
        crl_reset: false,
    };
    record_mint(dir, &set.certs, opts.intermediate, &lock)?;
    if replacing_ca {
        // The old lists name serials of the old CA: start them over, signed by the new one,
        // so `--crl crl.pem` keeps working.
        if dir.crl().exists() {
            crl::reset_held(dir, crl::DEFAULT_DAYS, &lock)?;
            set.crl_reset = true;
        }
        set.stale = stale_files(dir, &roles)?;
    }
    Ok(set)
}

/// One `issue` line in the issuance log for each certificate of the set.
fn record_mint(
    dir: &CertsDir,
    certs: &[(PathBuf, CertInfo)],
    intermediate: bool,
    lock: &lock::FolderLock,
) -> Result<()> {
    let leaf_issuer = match intermediate {
        true => Role::Intermediate.stem(),
        false => Role::Ca.stem(),
    };
    let records: Vec<Record<'_>> = certs
        .iter()
        .filter_map(|(path, info)| {
            let name = path.file_stem()?.to_str()?;
            let issuer_name = match Role::of_stem(name) {
                Some(Role::Ca) => None,
                Some(Role::Intermediate) => Some(Role::Ca.stem()),
                _ => Some(leaf_issuer),
            };
            Some(Record {
                action: Action::Issue,
                name,
                info,
                issuer_name,
                extra: Vec::new(),
            })
        })
        .collect();
    issuance::append(dir, &records, lock)
}

/// Certificates, bundles and the lab left in the folder from before: they belong to the old
/// CA and will not verify any more.
fn stale_files(dir: &CertsDir, fresh: &[Role]) -> Result<Vec<PathBuf>> {
    let ours: Vec<PathBuf> = fresh.iter().map(|r| dir.role_cert(*r)).collect();
    let mut stale: Vec<PathBuf> = folder::scan(dir)?
        .into_iter()
        .map(|s| s.cert_path)
        .filter(|p| !ours.contains(p))
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir.path()) {
        stale.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "p12")),
        );
    }
    if dir.lab().path().exists() {
        stale.push(dir.lab().path().to_path_buf());
    }
    stale.sort();
    Ok(stale)
}

fn write_authority(dir: &CertsDir, role: Role, ca: &CertAuthority, force: bool) -> Result<()> {
    write_pair(dir, role, &ca.key_pem(), &ca.cert_pem, force)
}

/// A role's key and certificate, together or not at all.
fn write_pair(dir: &CertsDir, role: Role, key: &str, cert: &str, force: bool) -> Result<()> {
    write::publish_pair(&dir.role_key(role), key, &dir.role_cert(role), cert, force)
}

fn purpose(role: Role, info: &CertInfo) -> (String, String) {
    match role {
        Role::Ca => (
            "the root CA certificate: server and client trust what it signed (--ca)".into(),
            "the CA's private key: signs certificates; keep it secret".into(),
        ),
        Role::Server => (
            format!(
                "the server's certificate, CN={}, {}",
                info.common_name.as_deref().unwrap_or("?"),
                info.sans_text()
            ),
            "the server's private key".into(),
        ),
        Role::Client(id) => (
            format!("{id}'s certificate, {}", info.sans_text()),
            format!("{id}'s private key"),
        ),
        Role::Intermediate => (
            "the intermediate CA certificate: signed by the root, it signs the leaves".into(),
            "the intermediate CA's private key".into(),
        ),
    }
}

/// Each file with what it is for, and each certificate with its facts.
type Listing = (Vec<(PathBuf, String)>, Vec<(PathBuf, CertInfo)>);

/// Reads the demo set in `dir` back from disk: each file with what it is for, and each
/// certificate's facts. [`doctor::demo_set`] checks it.
fn describe(dir: &CertsDir) -> Result<Listing> {
    let has_intermediate = dir.role_cert(Role::Intermediate).exists();
    let roles: Vec<Role> = std::iter::once(Role::Ca)
        .chain(has_intermediate.then_some(Role::Intermediate))
        .chain(LEAVES)
        .collect();
    let mut files = Vec::new();
    let mut certs = Vec::new();
    for role in roles {
        let cert_path = dir.role_cert(role);
        let chain = pem::certificates(&cert_path, &format!("{}'s certificate", role.owner()))?;
        let info = CertInfo::parse(&chain[0])
            .map_err(|why| crate::Error::malformed("a certificate", &cert_path, why))?;
        let (cert_purpose, key_purpose) = purpose(role, &info);
        files.push((cert_path.clone(), cert_purpose));
        files.push((dir.role_key(role), format!("{key_purpose} (mode 0600)")));
        certs.push((cert_path, info));
    }
    Ok((files, certs))
}

impl fmt::Display for DemoSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .files
            .iter()
            .map(|(p, _)| p.display().to_string().len())
            .max()
            .unwrap_or(0);
        writeln!(
            f,
            "Wrote the demo certificates to {}/ ({} keys):",
            self.dir.path().display(),
            self.key_type
        )?;
        for (path, what) in &self.files {
            writeln!(f, "  {:width$}  {what}", path.display().to_string())?;
        }
        writeln!(f)?;
        writeln!(f, "Checks (what the Go demo asks you to verify by eye):")?;
        for finding in &self.checks.findings {
            writeln!(f, "  {}  {}", finding.level, finding.sentence())?;
        }
        writeln!(f)?;
        writeln!(f, "Fingerprints (SHA-256) and validity:")?;
        let now = OffsetDateTime::now_utc();
        for (path, info) in &self.certs {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            writeln!(f, "  {name}")?;
            writeln!(f, "    sha256 {}", info.fingerprint())?;
            writeln!(
                f,
                "    valid  {} to {} ({} left)",
                format_time(info.not_before),
                format_time(info.not_after),
                format_span(info.not_after - now)
            )?;
        }
        if self.crl_reset {
            writeln!(f)?;
            writeln!(
                f,
                "{} was started over: the new CA has revoked nothing yet.",
                self.dir.crl().display()
            )?;
        }
        if !self.stale.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "These files were made with the CA this run replaced; they no longer verify. \
                 Issue them again or delete them:"
            )?;
            for p in &self.stale {
                writeln!(f, "  {}", p.display())?;
            }
        }
        writeln!(f)?;
        writeln!(
            f,
            "Next: start the server with `{}`, then `{}`.",
            Program::Server.command(""),
            Program::Client.command("-c=a")
        )
    }
}
