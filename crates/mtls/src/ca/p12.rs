//! PKCS#12 bundles for the platforms that want them: a key store (key, certificate, chain)
//! for Java/Spring, browsers and macOS, and a trust store (the CA) for Java.
//!
//! Never a built-in password: it comes from a file or an environment variable, or the user
//! asks for none explicitly.

use std::path::{Path, PathBuf};

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
    PrivateKeyChain,
};

use super::{folder, lock};
use crate::error::{Error, Result};
use crate::files::{CertsDir, TRUSTSTORE};
use crate::pem;
use crate::write::{self, Access};

/// Where the bundle's password comes from.
#[derive(Clone, Debug)]
pub enum Password {
    /// The first line of this file.
    File(PathBuf),
    /// The value of this environment variable.
    Env(String),
    /// Deliberately none (an empty password), asked for with `--no-password`.
    None,
}

impl Password {
    /// Reads the password. An empty one is an error unless [`Password::None`] was chosen.
    pub fn read(&self) -> Result<String> {
        let value = match self {
            Password::None => return Ok(String::new()),
            Password::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::read_given("the password file", path, e))?;
                text.lines().next().unwrap_or_default().to_string()
            }
            Password::Env(var) => std::env::var(var).map_err(|_| {
                Error::Invalid(format!("the environment variable {var} is not set (or not UTF-8); export it, or use --password-file"))
            })?,
        };
        if value.is_empty() {
            return Err(Error::Invalid(
                "the password is empty; put one in the file or variable, or pass --no-password to write an unprotected bundle on purpose".into(),
            ));
        }
        Ok(value)
    }
}

/// Which encryption the bundle uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encryption {
    /// AES-256-CBC with PBKDF2-HMAC-SHA-256, MAC HMAC-SHA-256 (OpenSSL 3, Java 11+).
    #[default]
    Modern,
    /// PBE-SHA1-3DES, MAC HMAC-SHA-1: what macOS Keychain and old Java still require.
    Legacy,
}

/// What was written.
#[derive(Clone, Debug)]
pub struct Written {
    /// The .p12 file (mode 0600).
    pub path: PathBuf,
    /// The alias (friendly name) inside.
    pub alias: String,
    /// Certificates inside.
    pub certificates: usize,
    /// A private key inside.
    pub has_key: bool,
    /// The encryption used.
    pub encryption: Encryption,
}

impl std::fmt::Display for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.path.display();
        writeln!(
            f,
            "Wrote {path} (mode 0600): alias {:?}, {} certificate(s){}, {}.",
            self.alias,
            self.certificates,
            if self.has_key {
                " and the private key"
            } else {
                " as trusted entries"
            },
            match self.encryption {
                Encryption::Modern => "AES-256 encryption with a SHA-256 MAC",
                Encryption::Legacy => "legacy 3DES encryption with a SHA-1 MAC",
            }
        )?;
        writeln!(
            f,
            "Check it: openssl pkcs12 -info -noout -in {path}   or   keytool -list -keystore {path}"
        )
    }
}

fn write_store(
    store_: &KeyStore,
    path: &Path,
    password: &str,
    encryption: Encryption,
    force: bool,
) -> Result<()> {
    let writer = store_.writer(password);
    let writer = match encryption {
        Encryption::Modern => writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
            .mac_algorithm(MacAlgorithm::HmacSha256),
        Encryption::Legacy => writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
            .mac_algorithm(MacAlgorithm::HmacSha1)
            .encryption_iterations(2048)
            .mac_iterations(2048),
    };
    let bytes = writer.write().map_err(|e| {
        Error::Invalid(format!(
            "cannot build the PKCS#12 file {}: {e}",
            path.display()
        ))
    })?;
    write::publish(path, &bytes, Access::Secret, force)
}

fn p12_cert(der: &[u8], path: &Path) -> Result<Certificate> {
    Certificate::from_der(der).map_err(|e| Error::malformed("a certificate", path, e.to_string()))
}

/// What a bundle holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum P12Target {
    /// `NAME.p12`: NAME's key, certificate and chain.
    Identity(String),
    /// `truststore.p12`: the root CA as a trusted certificate (Java).
    Truststore,
}

/// Writes the bundle `target` asks for, holding the folder's lock (the key and certificate
/// it reads are never half-renewed).
pub fn write(
    dir: &CertsDir,
    target: &P12Target,
    password: &Password,
    encryption: Encryption,
    force: bool,
) -> Result<Written> {
    let _lock = lock::hold(dir)?;
    match target {
        P12Target::Identity(name) => identity(dir, name, password, encryption, force),
        P12Target::Truststore => truststore(dir, password, encryption, force),
    }
}

/// Writes `NAME.p12` with NAME's key, its certificate and the chain up to and including the
/// root CA, under the alias NAME.
fn identity(
    dir: &CertsDir,
    name: &str,
    password: &Password,
    encryption: Encryption,
    force: bool,
) -> Result<Written> {
    folder::validate_name(name)?;
    let out = dir.p12(name);
    write::ensure_absent(&out, force, "it holds an earlier bundle")?;
    let cert_path = dir.cert(name);
    let key_path = dir.key(name);
    // Load through the same checks as the binaries: the key must belong to the certificate.
    crate::tls::Identity::load(&cert_path, &key_path, name)?;
    let mut chain = pem::certificates(&cert_path, &format!("{name}'s certificate"))?;
    // The root this chain ends at: during a CA rotation ca.crt holds two.
    let (roots, infos): (Vec<_>, Vec<_>) =
        pem::described_certificates(&dir.ca_cert(), "the CA certificate")?
            .into_iter()
            .unzip();
    let anchor = crate::report::PeerPath::verified(&chain, &roots)
        .anchor(&infos)
        .and_then(|a| roots.iter().zip(&infos).find(|(_, i)| i.sha256 == a.sha256))
        .map_or(&roots[0], |(der, _)| der);
    if !chain.iter().any(|c| c.as_ref() == anchor.as_ref()) {
        chain.push(anchor.clone());
    }
    let key_der = pem::private_key(&key_path, &format!("{name}'s private key"))?;
    // PKCS#12 carries PKCS#8; SEC1 ("EC PRIVATE KEY") and PKCS#1 keys are converted.
    let pkcs8 = pem::pkcs8_der(&key_der, &key_path)?;
    let key = PrivateKey::from_der(&pkcs8)
        .map_err(|e| Error::malformed("the private key", &key_path, e.to_string()))?;
    let certs = chain
        .iter()
        .map(|c| p12_cert(c, &cert_path))
        .collect::<Result<Vec<_>>>()?;
    let local_key_id = crate::certinfo::sha256(chain[0].as_ref())[..20].to_vec();
    let mut ks = KeyStore::new();
    ks.add_entry(
        name,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, key, certs)),
    );
    write_store(&ks, &out, &password.read()?, encryption, force)?;
    Ok(Written {
        path: out,
        alias: name.into(),
        certificates: chain.len(),
        has_key: true,
        encryption,
    })
}

/// Writes `truststore.p12` holding the root CA as a trusted certificate (Java's
/// `trustedCertEntry`), alias `ca`; during a CA rotation, the other roots of `ca.crt` too
/// (aliases `ca-2`, `ca-3`, ...).
fn truststore(
    dir: &CertsDir,
    password: &Password,
    encryption: Encryption,
    force: bool,
) -> Result<Written> {
    let out = dir.p12(TRUSTSTORE);
    write::ensure_absent(&out, force, "it holds an earlier trust store")?;
    let ca_path = dir.ca_cert();
    let roots = pem::certificates(&ca_path, "the CA certificate")?;
    let mut ks = KeyStore::new();
    for (i, root) in roots.iter().enumerate() {
        let alias = match i {
            0 => "ca".to_string(),
            n => format!("ca-{}", n + 1),
        };
        ks.add_entry(
            &alias,
            KeyStoreEntry::Certificate(p12_cert(root, &ca_path)?),
        );
    }
    write_store(&ks, &out, &password.read()?, encryption, force)?;
    Ok(Written {
        path: out,
        alias: "ca".into(),
        certificates: roots.len(),
        has_key: false,
        encryption,
    })
}
