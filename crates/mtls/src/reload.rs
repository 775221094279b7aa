//! Hot reload of the server's certificate, key, CA and CRLs, without dropping connections.
//!
//! [`LiveTls`] holds the current [`TlsMaterial`] (a complete rustls config plus the facts the
//! logs and metrics need) behind a lock that every accepted connection reads once. A reload
//! builds a whole new config first and swaps it in only when everything loaded; a reload
//! that fails (unreadable file, bad PEM, a key that does not match the certificate) keeps
//! the old one and says why. Established connections keep the config they started with.
//!
//! [`watch`] reloads on SIGHUP, and when any watched file's metadata (modification time,
//! size, inode) changes, polled at an interval. Rotating a certificate and its key is two
//! writes: a poll that falls between them sees a key that does not match, keeps the old
//! material, and tries again when the second file changes.
//!
//! Each reload starts a fresh session cache and ticket key, so no session from before a
//! reload resumes afterwards: a client revoked by a new CRL cannot skip the check by
//! resuming.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::pki_types::CertificateRevocationListDer;
use time::OffsetDateTime;
use tracing::{info, warn};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::certinfo::{CertInfo, format_time};
use crate::error::{Error, Result};
use crate::explain;
use crate::metrics::{Expiring, Expiry, Metrics};
use crate::pem;
use crate::tls::{self, Identity, ServerPolicy, Trust};

/// Where the server's TLS material comes from.
#[derive(Clone, Debug)]
pub struct TlsSource {
    /// The CA file client certificates must chain to.
    pub ca: PathBuf,
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// CRL files.
    pub crls: Vec<PathBuf>,
    /// TLS versions and resumption.
    pub policy: ServerPolicy,
}

impl TlsSource {
    /// Every file a reload reads.
    pub fn files(&self) -> Vec<&Path> {
        let mut files = vec![self.cert.as_path(), self.key.as_path(), self.ca.as_path()];
        files.extend(self.crls.iter().map(PathBuf::as_path));
        files
    }
}

/// Facts about one loaded CRL.
#[derive(Clone, Debug)]
pub struct CrlFacts {
    /// The file.
    pub path: PathBuf,
    /// Its issuer.
    pub issuer: String,
    /// When a newer one is due.
    pub next_update: Option<OffsetDateTime>,
    /// How many certificates it revokes.
    pub revoked: usize,
}

/// A complete, consistent set of TLS material: what new handshakes use.
#[derive(Debug)]
pub struct TlsMaterial {
    /// The rustls config built from it.
    pub config: Arc<ServerConfig>,
    /// What failure explanations may mention (the CA and CRL files).
    pub explain: explain::Context,
    /// The server's leaf certificate.
    pub server_cert: CertInfo,
    /// The CA certificates.
    pub cas: Vec<CertInfo>,
    /// The CRLs.
    pub crls: Vec<CrlFacts>,
    /// Where it came from.
    pub source: TlsSource,
}

impl TlsMaterial {
    /// Loads every file and builds the rustls config; any problem is an error that names the
    /// file.
    pub fn load(source: &TlsSource) -> Result<Self> {
        let identity = Identity::load(&source.cert, &source.key, "the server")?;
        let trust = Trust::load(&source.ca)?;
        let describe = |path: &Path, what: &str| -> Result<Vec<CertInfo>> {
            pem::certificates(path, what)?
                .iter()
                .map(|der| CertInfo::parse(der).map_err(|why| Error::malformed(what, path, why)))
                .collect()
        };
        let cas = describe(&source.ca, "the CA certificate")?;
        let server_cert = describe(&source.cert, "the server's certificate")?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::malformed(
                    "the server's certificate",
                    &source.cert,
                    "it holds no certificate",
                )
            })?;
        let mut crls = Vec::new();
        let mut facts = Vec::new();
        for path in &source.crls {
            for der in pem::crls(path, "the certificate revocation list")? {
                facts.push(crl_facts(path, &der)?);
                crls.push(der);
            }
        }
        let config = tls::server_config(&identity, &trust, crls, &source.policy)?;
        Ok(Self {
            config,
            explain: explain::Context {
                ca: Some(source.ca.clone()),
                crls: source.crls.clone(),
            },
            server_cert,
            cas,
            crls: facts,
            source: source.clone(),
        })
    }

    /// What expires, and when: the server certificate, each CA and each CRL.
    pub fn expiries(&self) -> Vec<Expiry> {
        let mut out = vec![Expiry {
            what: Expiring::Certificate {
                role: "server",
                subject: self.server_cert.subject.clone(),
            },
            file: self.source.cert.clone(),
            at: self.server_cert.not_after,
        }];
        out.extend(self.cas.iter().map(|ca| Expiry {
            what: Expiring::Certificate {
                role: "ca",
                subject: ca.subject.clone(),
            },
            file: self.source.ca.clone(),
            at: ca.not_after,
        }));
        out.extend(self.crls.iter().filter_map(|crl| {
            crl.next_update.map(|at| Expiry {
                what: Expiring::Crl {
                    issuer: crl.issuer.clone(),
                },
                file: crl.path.clone(),
                at,
            })
        }));
        out
    }

    /// Warns when the server's own certificate is outside its validity window.
    fn warn_if_not_current(&self) {
        let now = OffsetDateTime::now_utc();
        if !self.server_cert.is_current(now) {
            warn!(
                file = %self.source.cert.display(),
                not_before = %format_time(self.server_cert.not_before),
                not_after = %format_time(self.server_cert.not_after),
                "the server's certificate is not valid now; clients will refuse it"
            );
        }
    }
}

fn crl_facts(path: &Path, der: &CertificateRevocationListDer<'_>) -> Result<CrlFacts> {
    let what = "the certificate revocation list";
    let (_, crl) = CertificateRevocationList::from_der(der)
        .map_err(|e| Error::malformed(what, path, format!("a CRL does not parse ({e})")))?;
    Ok(CrlFacts {
        path: path.to_path_buf(),
        issuer: crl.issuer().to_string(),
        next_update: crl.next_update().map(|t| t.to_datetime()),
        revoked: crl.iter_revoked_certificates().count(),
    })
}

/// A file's metadata, to notice that it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: Option<u64>,
    inode: Option<u64>,
}

impl Stamp {
    fn of(path: &Path) -> Self {
        match std::fs::metadata(path) {
            Ok(m) => Self {
                modified: m.modified().ok(),
                len: Some(m.len()),
                inode: inode(&m),
            },
            Err(_) => Self {
                modified: None,
                len: None,
                inode: None,
            },
        }
    }
}

#[cfg(unix)]
fn inode(m: &std::fs::Metadata) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    Some(m.ino())
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> Option<u64> {
    None
}

/// The current TLS material, replaceable while the server runs.
#[derive(Debug)]
pub struct LiveTls {
    source: TlsSource,
    current: RwLock<Arc<TlsMaterial>>,
    /// The files' metadata at the last load attempt.
    seen: Mutex<Vec<Stamp>>,
}

impl LiveTls {
    /// Loads the material for the first time.
    pub fn load(source: TlsSource) -> Result<Self> {
        let seen = source.files().iter().map(|p| Stamp::of(p)).collect();
        let material = TlsMaterial::load(&source)?;
        material.warn_if_not_current();
        Ok(Self {
            source,
            current: RwLock::new(Arc::new(material)),
            seen: Mutex::new(seen),
        })
    }

    /// What new handshakes use now.
    pub fn current(&self) -> Arc<TlsMaterial> {
        // Writers only swap an Arc, so a poisoned lock still holds a complete value.
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Files whose metadata differs from the last load attempt.
    pub fn changed(&self) -> Vec<PathBuf> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        self.source
            .files()
            .into_iter()
            .zip(seen.iter())
            .filter(|(path, stamp)| Stamp::of(path) != **stamp)
            .map(|(path, _)| path.to_path_buf())
            .collect()
    }

    /// Loads everything again and, if it all loads, makes it current. On failure the old
    /// material stays. Either way the files' metadata is remembered, so a failed reload is
    /// retried when a file changes again (or on SIGHUP).
    pub fn reload(&self) -> Result<Arc<TlsMaterial>> {
        let stamps = self.source.files().iter().map(|p| Stamp::of(p)).collect();
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = stamps;
        let material = Arc::new(TlsMaterial::load(&self.source)?);
        material.warn_if_not_current();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = material.clone();
        Ok(material)
    }
}

/// How to notice that the material should be reloaded.
#[derive(Clone, Copy, Debug)]
pub struct ReloadTriggers {
    /// Poll the files' metadata this often (`None`: never).
    pub interval: Option<Duration>,
    /// Reload on SIGHUP.
    pub sighup: bool,
}

/// A SIGHUP listener, installed before the server announces itself so that a SIGHUP sent
/// right after start-up reloads rather than kills the process.
pub struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    /// Installs the listener when `enabled` (only on Unix; elsewhere it never fires).
    pub fn install(enabled: bool) -> Result<Self> {
        #[cfg(unix)]
        {
            let signal = if enabled {
                Some(
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                        .map_err(|source| Error::Io {
                            context: "cannot listen for SIGHUP".into(),
                            source,
                        })?,
                )
            } else {
                None
            };
            Ok(Self { signal })
        }
        #[cfg(not(unix))]
        {
            let _ = enabled;
            Ok(Self {})
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = self.signal.as_mut()
            && s.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await
    }
}

/// Reloads on SIGHUP and on file changes until `stop` resolves.
pub async fn watch(
    live: Arc<LiveTls>,
    triggers: ReloadTriggers,
    mut hangup: Hangup,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut ticker = triggers.interval.map(|every| {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        let tick = async {
            match ticker.as_mut() {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let (trigger, changed) = tokio::select! {
            () = hangup.recv() => ("SIGHUP", live.changed()),
            () = tick => {
                let changed = live.changed();
                if changed.is_empty() {
                    continue;
                }
                ("file change", changed)
            }
            () = &mut stop => return,
        };
        let changed_text = if changed.is_empty() {
            "(none)".to_string()
        } else {
            changed
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match live.reload() {
            Ok(material) => {
                metrics.reload(true);
                info!(
                    trigger,
                    changed = %changed_text,
                    server.cert.subject = %material.server_cert.subject,
                    server.cert.sha256 = %material.server_cert.sha256,
                    server.cert.not_after = %format_time(material.server_cert.not_after),
                    crls = material.crls.len(),
                    revoked = material.crls.iter().map(|c| c.revoked).sum::<usize>(),
                    "reloaded TLS material: new handshakes use it, open connections keep theirs"
                );
            }
            Err(e) => {
                metrics.reload(false);
                warn!(
                    trigger,
                    changed = %changed_text,
                    error = %e,
                    "reload failed; still serving with the previous TLS material"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_file_counts_as_changed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.pem");
        std::fs::write(&path, "one").expect("write");
        let before = Stamp::of(&path);
        assert_eq!(before, Stamp::of(&path));
        let tmp = dir.path().join("a.pem.tmp");
        std::fs::write(&tmp, "two!").expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
        assert_ne!(before, Stamp::of(&path));
        assert_ne!(before, Stamp::of(&dir.path().join("missing.pem")));
    }
}
