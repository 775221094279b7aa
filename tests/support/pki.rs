//! A demo PKI per test, and leaves that are wrong in one way.

use std::path::{Path, PathBuf};

use mtls::ca::demo::{self, DemoOptions};
use mtls::files::CertsDir;
use mtls::pki::{self, CertAuthority, KeyType, LeafSpec, Usage, Validity};
use mtls::write::{self, Access};
use time::OffsetDateTime;

/// A demo PKI in a temporary folder. The CA starts 30 days in the past, so expired and
/// not-yet-valid leaves can be issued inside its lifetime.
pub struct Pki {
    _tmp: tempfile::TempDir,
    pub certs: CertsDir,
}

impl Pki {
    pub fn demo() -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let certs = CertsDir::new(tmp.path().join("certs"));
        let mut opts = DemoOptions::new(certs.clone());
        let now = OffsetDateTime::now_utc();
        opts.ca_validity = Validity {
            not_before: now - time::Duration::days(30),
            not_after: now + time::Duration::days(3650),
        };
        let set = demo::mint(&opts).expect("mint the demo set");
        assert!(set.all_ok(), "demo set checks failed:\n{set}");
        Self { _tmp: tmp, certs }
    }

    /// The folder of the demo set.
    pub fn dir(&self) -> &Path {
        self.certs.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.certs.path().join(name)
    }

    /// The certificate and key files of `stem`, as [`fetch`] takes them.
    pub fn pair(&self, stem: &str) -> Option<(PathBuf, PathBuf)> {
        Some((self.certs.cert(stem), self.certs.key(stem)))
    }

    /// Writes to `path` a CRL signed by the demo CA that revokes the leaves in `stems`
    /// (next update in 7 days), with the library's own CRL code.
    pub fn write_crl(&self, path: &Path, stems: &[&str]) {
        let now = OffsetDateTime::now_utc();
        let entries: Vec<mtls::ca::crl::Entry> = stems
            .iter()
            .map(|stem| {
                let leaf = &mtls::pem::certificates(&self.certs.cert(stem), "a test leaf")
                    .expect("read the leaf")[0];
                let info = mtls::certinfo::CertInfo::parse(leaf).expect("parse the leaf");
                mtls::ca::crl::Entry {
                    serial: info.serial,
                    at: now - time::Duration::minutes(1),
                    reason: None,
                }
            })
            .collect();
        // A fresh number each time, so a newer list is told apart from an older one.
        let number = u64::try_from(now.unix_timestamp_nanos() / 1000).expect("time");
        let pem = mtls::ca::crl::sign(
            &self.ca(),
            &entries,
            number,
            now,
            now + time::Duration::days(7),
        )
        .expect("sign the CRL");
        write::atomic(path, pem.as_bytes(), Access::Public).expect("write the CRL");
    }

    pub fn ca(&self) -> CertAuthority {
        CertAuthority::load(&self.certs.ca_cert(), &self.certs.key("ca")).expect("load the demo CA")
    }

    /// Writes `stem.crt` and `stem.key`, issued by `ca`.
    pub fn issue(&self, ca: &CertAuthority, stem: &str, spec: &LeafSpec) {
        let leaf = ca.issue(spec).expect("issue a leaf");
        write::atomic(
            &self.certs.cert(stem),
            leaf.cert_pem.as_bytes(),
            Access::Public,
        )
        .expect("write cert");
        write::atomic(
            &self.certs.key(stem),
            leaf.key_pem.as_bytes(),
            Access::Secret,
        )
        .expect("write key");
    }

    /// A second, unrelated root CA ("Other CA"), written as `stem.crt`/`stem.key`.
    pub fn other_ca(&self, stem: &str) -> CertAuthority {
        let ca = CertAuthority::new_root(
            pki::demo_subject("Other CA Company", "Other CA"),
            KeyType::EcdsaP256,
            Validity::days(30),
        )
        .expect("mint another CA");
        write::atomic(
            &self.certs.cert(stem),
            ca.cert_pem.as_bytes(),
            Access::Public,
        )
        .expect("write");
        write::atomic(
            &self.certs.key(stem),
            ca.key_pem().as_bytes(),
            Access::Secret,
        )
        .expect("write");
        ca
    }
}

/// A leaf spec with the demo subject and the given names.
pub fn leaf(cn: &str, usage: Usage, sans: &[&str], validity: Validity) -> LeafSpec {
    LeafSpec {
        subject: pki::demo_subject(&format!("{cn} Company"), cn),
        sans: sans
            .iter()
            .map(|s| pki::parse_san(s).expect("san"))
            .collect(),
        usage,
        key_type: KeyType::EcdsaP256,
        validity,
    }
}

/// A window that ended an hour ago.
pub fn expired() -> Validity {
    let now = OffsetDateTime::now_utc();
    Validity {
        not_before: now - time::Duration::days(10),
        not_after: now - time::Duration::hours(1),
    }
}

/// A window that starts in a day.
pub fn not_yet_valid() -> Validity {
    let now = OffsetDateTime::now_utc();
    Validity {
        not_before: now + time::Duration::days(1),
        not_after: now + time::Duration::days(30),
    }
}

/// A path as the `&str` a command line takes (test paths are always UTF-8).
pub fn utf8(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}
