//! Hot reload of the server's certificate, key, CA and CRLs (and, behind an https
//! upstream, the proxy's certificate, key and upstream CA), without dropping connections.
//!
//! [`LiveTls`] holds the current [`TlsMaterial`] (a complete rustls config, the client
//! verifier inside it, and the facts the logs and metrics need) in a watch channel: every
//! accepted connection reads it once, and is told when it changes. A reload builds a whole
//! new config first and swaps it in only when everything loaded; a reload that fails
//! (unreadable file, bad PEM, a key that does not match the certificate) keeps the old one
//! and says why. Established connections keep their TLS session, but each one is told of
//! the reload ([`LiveTls::subscribe`]) and verifies its client's chain again with the new
//! verifier, closing if it no longer passes (a client revoked by a new CRL, a replaced CA).
//!
//! [`watch`] reloads on SIGHUP, and when any watched file changes ([`crate::triggers`]), polled at an interval:
//! its metadata (modification time, size, inode) or its content (SHA-256; the files are
//! tiny, and an in-place rewrite of the same size within one mtime tick changes nothing
//! else). Each file is read once per attempt: the bytes that are parsed are the bytes that
//! are fingerprinted. Polls and loads run on the blocking thread pool. Rotating a
//! certificate and its key is two writes: a poll that falls between them sees a key that
//! does not match, keeps the old material, and tries again when the second file changes.
//!
//! Each reload starts a fresh session cache and ticket key, so no session from before a
//! reload resumes afterwards (and a resumed session's chain is verified again anyway, see
//! [`crate::tls::ServerTls`]); with `--ticket-keys`, the tickets are made with the keys of
//! that file, which is read and reloaded with the rest, so tickets outlive a reload (and
//! resume on every server that shares the file) until their key leaves it.
//!
//! [`TlsMaterial::readiness`] says whether the material is fit to serve now (nothing
//! expired, no CRL past its next update): what `/readyz` answers.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use time::OffsetDateTime;
use tokio::sync::watch as channel;
use tracing::{info, warn};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::proxy::{UpstreamTls, UpstreamTlsFiles};
use crate::certinfo::CertInfo;
use crate::error::{Error, Result};
use crate::explain;
use crate::format::{format_span, format_time};
use crate::pem;
use crate::perms;
use crate::program::Program;
use crate::report::PathMemory;
use crate::tickets::{self, TicketKeys};
use crate::tls::{self, Identity, ServerPolicy, ServerTls, Trust};
use crate::triggers::{Contents, Stamp};
// Shared with `client proxy`; re-exported so the server's paths stay as they were.
pub use crate::triggers::{Hangup, ReloadTriggers};

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
    /// The proxy's TLS to an https upstream.
    pub upstream: Option<UpstreamTlsFiles>,
}

impl TlsSource {
    /// Every file a reload reads: certificate, key, CA, the CRLs, the ticket keys, then the
    /// proxy's certificate, key and CA for an https upstream.
    pub fn files(&self) -> Vec<&Path> {
        let mut files = vec![self.cert.as_path(), self.key.as_path(), self.ca.as_path()];
        files.extend(self.crls.iter().map(PathBuf::as_path));
        files.extend(self.ticket_keys());
        files.extend(self.upstream.iter().flat_map(UpstreamTlsFiles::files));
        files
    }

    /// The shared session-ticket key file, when resumption uses one.
    fn ticket_keys(&self) -> Option<&Path> {
        self.policy
            .ticket_keys
            .as_deref()
            .filter(|_| self.policy.resumption)
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
    /// The config and the client verifier in it, to verify a client's chain again.
    pub tls: ServerTls,
    /// What failure explanations may mention (the CA and CRL files).
    pub explain: explain::Context,
    /// The server's leaf certificate.
    pub server_cert: CertInfo,
    /// The certificates the server sends in its handshakes, leaf first, as loaded.
    pub server_chain: Vec<(CertificateDer<'static>, CertInfo)>,
    /// The CA certificates.
    pub cas: Vec<CertInfo>,
    /// The same, DER: the trust anchors a client's path must end at.
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// The paths of the client chains read so far, to these anchors.
    pub paths: PathMemory,
    /// The CRLs.
    pub crls: Vec<CrlFacts>,
    /// The shared session-ticket keys, when `--ticket-keys` gave a file.
    pub tickets: Option<TicketFacts>,
    /// The proxy's TLS to an https upstream.
    pub upstream: Option<Arc<UpstreamTls>>,
    /// Where it came from.
    pub source: TlsSource,
}

/// What may be said of the loaded session-ticket keys: never the keys.
#[derive(Clone, Debug)]
pub struct TicketFacts {
    /// The file.
    pub path: PathBuf,
    /// The keys' ids (the start of their names, which every ticket carries in clear), the
    /// one that encrypts first.
    pub ids: Vec<String>,
    /// Its group may read it (allowed, as for a Kubernetes secret with an `fsGroup`).
    pub group_readable: bool,
}

/// Something loaded that expires.
#[derive(Clone, Debug)]
pub struct Expiry {
    /// What it is.
    pub what: Expiring,
    /// The file it came from.
    pub file: PathBuf,
    /// notAfter (certificates) or nextUpdate (CRLs).
    pub at: OffsetDateTime,
}

/// The kinds of [`Expiry`].
#[derive(Clone, Debug)]
pub enum Expiring {
    /// A certificate: `role` is `server`, `ca`, or `upstream` (the proxy's own, presented
    /// to an https upstream).
    Certificate {
        /// `server` or `ca`.
        role: &'static str,
        /// Its subject.
        subject: String,
    },
    /// A CRL.
    Crl {
        /// Its issuer.
        issuer: String,
    },
}

impl TlsMaterial {
    /// Loads every file and builds the rustls config; any problem is an error that names the
    /// file.
    pub fn load(source: &TlsSource) -> Result<Self> {
        Self::parse(source, Contents::read(&source.files()))
    }

    /// Builds the material from the files' contents as read (each file read once).
    fn parse(source: &TlsSource, mut files: Contents) -> Result<Self> {
        // The order of TlsSource::files(): certificate, key, CA, then the CRLs.
        let cert_what = "the server's certificate";
        let cert = files.take(0, |e| Error::read(cert_what, &source.cert, e))?;
        let key_what = "the server's private key";
        let key = files.take(1, |e| Error::read(key_what, &source.key, e))?;
        let chain = pem::described_certificates_in(&cert, &source.cert, cert_what)?;
        let key = pem::private_key_in(&key, &source.key, key_what)?;
        let server_cert = chain
            .first()
            .map(|(_, info)| info.clone())
            .ok_or_else(|| Error::malformed(cert_what, &source.cert, "it holds no certificate"))?;
        let identity = Identity::from_der(
            chain.iter().map(|(der, _)| der.clone()).collect(),
            key,
            &source.cert,
            &source.key,
        )?;
        let ca_what = "the CA certificate";
        let ca = files.take(2, |e| Error::read(ca_what, &source.ca, e))?;
        let (ca_certs, cas): (Vec<_>, Vec<_>) =
            pem::described_certificates_in(&ca, &source.ca, ca_what)?
                .into_iter()
                .unzip();
        let trust = Trust::from_certs(ca_certs.clone(), &source.ca)?;
        let mut crls = Vec::new();
        let mut facts = Vec::new();
        for (i, path) in source.crls.iter().enumerate() {
            let what = "the certificate revocation list";
            let bytes = files.take(3 + i, |e| Error::read_crl(path, e))?;
            for der in pem::crls_in(&bytes, path, what)? {
                facts.push(crl_facts(path, &der)?);
                crls.push(der);
            }
        }
        let (tickets, ticket_facts) = match source.ticket_keys() {
            Some(path) => {
                let bytes = files.take(3 + source.crls.len(), |e| {
                    Error::read_given(tickets::WHAT, path, e)
                })?;
                let group_readable = tickets::refuse_if_exposed(path)?;
                let keys = TicketKeys::parse(&bytes, path)?;
                let facts = TicketFacts {
                    path: path.to_path_buf(),
                    ids: keys.keys().iter().map(|k| k.id()).collect(),
                    group_readable,
                };
                (Some(keys), Some(facts))
            }
            None => (None, None),
        };
        let tls = tls::server_tls(&identity, &trust, crls, &source.policy, tickets.as_ref())?;
        let upstream = match &source.upstream {
            Some(up) => {
                let mut next = 3 + source.crls.len() + usize::from(tickets.is_some())..;
                let mut take = |path: &Path, what: &str| {
                    let i = next.next().unwrap_or(usize::MAX);
                    files.take(i, |e| Error::read_given(what, path, e))
                };
                let cert = take(&up.cert, "the proxy's certificate for the application")?;
                let key = take(&up.key, "the proxy's private key for the application")?;
                let ca = take(&up.ca, "the CA of the application's certificate")?;
                Some(Arc::new(UpstreamTls::parse(up, cert, key, ca)?))
            }
            None => None,
        };
        Ok(Self {
            config: tls.config.clone(),
            tls,
            explain: explain::Context {
                ca: Some(source.ca.clone()),
                crls: source.crls.clone(),
                anchors: cas.clone(),
                ..explain::Context::default()
            },
            server_cert,
            server_chain: chain,
            cas,
            paths: PathMemory::new(ca_certs.clone()),
            ca_certs,
            crls: facts,
            tickets: ticket_facts,
            upstream,
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
        out.extend(self.upstream.iter().map(|up| Expiry {
            what: Expiring::Certificate {
                role: "upstream",
                subject: up.cert.subject.clone(),
            },
            file: up.files.cert.clone(),
            at: up.cert.not_after,
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

    /// What makes this material unfit to serve at `now`: a server or CA certificate outside
    /// its validity, a CRL past its next update (the verifier then refuses every client).
    /// Empty: fit.
    pub fn unfit(&self, now: OffsetDateTime) -> Vec<Unfit> {
        let mut out = Vec::new();
        let certs = std::iter::once(("server", &self.source.cert, &self.server_cert))
            .chain(self.cas.iter().map(|ca| ("ca", &self.source.ca, ca)));
        for (role, file, cert) in certs {
            let what = || Unfit::Certificate {
                role,
                file: file.clone(),
                subject: cert.subject.clone(),
                not_before: cert.not_before,
                not_after: cert.not_after,
                expired: cert.not_after < now,
                now,
            };
            if !cert.is_current(now) {
                out.push(what());
            }
        }
        for crl in &self.crls {
            if let Some(next_update) = crl.next_update.filter(|at| *at < now) {
                out.push(Unfit::StaleCrl {
                    file: crl.path.clone(),
                    issuer: crl.issuer.clone(),
                    next_update,
                    now,
                });
            }
        }
        out
    }

    /// Warns when another user could change what the server trusts: the CA file, a CRL, or
    /// the folder holding one of them is writable by its group or by everyone (and the
    /// private key when others can read it). Such a user could append a CA of their own,
    /// and the next reload would trust it.
    fn warn_if_others_may_change_trust(&self) {
        let source = &self.source;
        let mut trusted: Vec<(&Path, &str)> = vec![(&source.ca, "the CA file")];
        trusted.extend(source.crls.iter().map(|c| (c.as_path(), "a CRL")));
        let mut folders: Vec<&Path> = Vec::new();
        for (file, what) in trusted {
            if perms::writable_by_others(file).unwrap_or(false) {
                warn!(
                    file = %file.display(),
                    mode = %format!("{:o}", perms::mode(file).unwrap_or(0)),
                    fix = %format!("chmod go-w {}", file.display()),
                    "{what} is writable by other users: they could add a CA of their own, and \
                     this server would trust it after the next reload"
                );
            }
            let folder = match file.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            if !folders.contains(&folder) {
                folders.push(folder);
                if perms::writable_by_others(folder).unwrap_or(false) {
                    warn!(
                        folder = %folder.display(),
                        mode = %format!("{:o}", perms::mode(folder).unwrap_or(0)),
                        fix = %format!("chmod go-w {}", folder.display()),
                        "the folder holding {what} is writable by other users: they could \
                         replace it with one that trusts their own CA"
                    );
                }
            }
        }
        if let Some(t) = self.tickets.as_ref().filter(|t| t.group_readable) {
            warn!(
                file = %t.path.display(),
                mode = %format!("{:o}", perms::mode(&t.path).unwrap_or(0)),
                "the session-ticket key file is readable by its group: every member can resume \
                 a session as any client; allowed (a Kubernetes secret with an fsGroup is), but \
                 make it 0600 where you can"
            );
        }
        if perms::mode(&source.key).is_ok_and(|m| m & 0o077 != 0) {
            warn!(
                file = %source.key.display(),
                mode = %format!("{:o}", perms::mode(&source.key).unwrap_or(0)),
                fix = %format!("chmod 600 {}", source.key.display()),
                "the server's private key is readable by other users: they could impersonate \
                 this server"
            );
        }
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

/// Why loaded material cannot serve now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unfit {
    /// The server's certificate (clients refuse it) or a CA certificate (no client verifies)
    /// is outside its validity.
    Certificate {
        /// `server` or `ca`.
        role: &'static str,
        /// Its file.
        file: PathBuf,
        /// Its subject.
        subject: String,
        /// Its notBefore.
        not_before: OffsetDateTime,
        /// Its notAfter.
        not_after: OffsetDateTime,
        /// Past notAfter (otherwise before notBefore).
        expired: bool,
        /// When this was judged.
        now: OffsetDateTime,
    },
    /// A CRL past its nextUpdate: the verifier refuses every client until a newer one loads.
    StaleCrl {
        /// Its file.
        file: PathBuf,
        /// Its issuer.
        issuer: String,
        /// Its nextUpdate.
        next_update: OffsetDateTime,
        /// When this was judged.
        now: OffsetDateTime,
    },
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unfit::Certificate {
                role,
                file,
                subject,
                not_before,
                not_after,
                expired,
                now,
            } => {
                let (who, effect, fix) = match *role {
                    "server" => (
                        "the server certificate",
                        "clients refuse it",
                        Program::Certificate.command("renew server"),
                    ),
                    _ => (
                        "the CA certificate",
                        "no client certificate verifies",
                        Program::Certificate.command("--force"),
                    ),
                };
                let (name, file) = (subject, file.display());
                if *expired {
                    write!(
                        f,
                        "{who} {file} ({name}) expired at {} ({} ago): {effect}; renew it \
                         (`{fix}`, or however your CA renews it): the server reloads it",
                        format_time(*not_after),
                        format_span(*now - *not_after)
                    )
                } else {
                    write!(
                        f,
                        "{who} {file} ({name}) is not valid until {} (in {}): {effect}; check \
                         this machine's clock",
                        format_time(*not_before),
                        format_span(*not_before - *now)
                    )
                }
            }
            Unfit::StaleCrl {
                file,
                issuer,
                next_update,
                now,
            } => write!(
                f,
                "the CRL {} ({issuer}) is stale since {} ({} ago, its nextUpdate): every client \
                 is refused until a newer list is loaded; sign it again (`{}`)",
                file.display(),
                format_time(*next_update),
                format_span(*now - *next_update),
                Program::Certificate.command("crl")
            ),
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

/// The current TLS material, replaceable while the server runs.
#[derive(Debug)]
pub struct LiveTls {
    source: TlsSource,
    current: channel::Sender<Arc<TlsMaterial>>,
    /// The files' stamps at the last load attempt.
    seen: Mutex<Vec<Stamp>>,
    /// Reloads that succeeded, and that failed.
    reloaded: AtomicU64,
    failed: AtomicU64,
}

impl LiveTls {
    /// Loads the material for the first time.
    pub fn load(source: TlsSource) -> Result<Self> {
        let files = Contents::read(&source.files());
        let seen = files.stamps();
        let material = TlsMaterial::parse(&source, files)?;
        material.warn_if_not_current();
        material.warn_if_others_may_change_trust();
        Ok(Self {
            source,
            current: channel::Sender::new(Arc::new(material)),
            seen: Mutex::new(seen),
            reloaded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    /// What new handshakes use now.
    pub fn current(&self) -> Arc<TlsMaterial> {
        self.current.borrow().clone()
    }

    /// What new handshakes use now, and a receiver that is told when a reload replaces it
    /// (the material it returns counts as seen).
    pub fn subscribe(&self) -> channel::Receiver<Arc<TlsMaterial>> {
        self.current.subscribe()
    }

    /// Files whose stamp (metadata or content) differs from the last load attempt. Reads
    /// the files: call it off the async threads.
    pub fn changed(&self) -> Vec<PathBuf> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        crate::triggers::changed(&self.source.files(), &seen)
    }

    /// Loads everything again and, if it all loads, makes it current (and tells every
    /// subscriber). On failure the old material stays. Either way the files' stamps are
    /// remembered, so a failed reload is retried when a file changes again (or on SIGHUP).
    /// Reads files: call it off the async threads.
    pub fn reload(&self) -> Result<Arc<TlsMaterial>> {
        let files = Contents::read(&self.source.files());
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = files.stamps();
        let material = match TlsMaterial::parse(&self.source, files) {
            Ok(material) => Arc::new(material),
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        self.reloaded.fetch_add(1, Ordering::Relaxed);
        material.warn_if_not_current();
        material.warn_if_others_may_change_trust();
        self.current.send_replace(material.clone());
        Ok(material)
    }

    /// Reloads so far: (succeeded, failed).
    pub fn reloads(&self) -> (u64, u64) {
        (
            self.reloaded.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// Reloads on SIGHUP and on file changes until `stop` resolves ([`crate::triggers::watch`]),
/// and logs each attempt.
pub async fn watch(
    live: Arc<LiveTls>,
    triggers: ReloadTriggers,
    hangup: Hangup,
    stop: impl Future<Output = ()>,
) {
    crate::triggers::watch(live, triggers, hangup, stop, |attempt| {
        let (trigger, changed) = (attempt.trigger, attempt.changed);
        match attempt.result {
            Ok(material) => {
                info!(
                    trigger,
                    changed = %changed,
                    server.cert.subject = %material.server_cert.subject,
                    server.cert.sha256 = %material.server_cert.fingerprint(),
                    server.cert.not_after = %format_time(material.server_cert.not_after),
                    crls = material.crls.len(),
                    revoked = material.crls.iter().map(|c| c.revoked).sum::<usize>(),
                    ticket_keys = material.tickets.as_ref().map_or(0, |t| t.ids.len()),
                    upstream.cert.sha256 = %material.upstream.as_ref().map_or_else(|| "none".to_string(), |u| u.cert.fingerprint()),
                    "reloaded TLS material: new handshakes use it; open connections verify their client again"
                );
            }
            Err(e) => {
                warn!(
                    trigger,
                    changed = %changed,
                    error = %e,
                    "reload failed; still serving with the previous TLS material"
                );
            }
        }
    })
    .await
}

impl crate::triggers::Reloadable for LiveTls {
    type Loaded = Arc<TlsMaterial>;

    fn changed(&self) -> Vec<PathBuf> {
        LiveTls::changed(self)
    }

    fn reload(&self) -> Result<Arc<TlsMaterial>> {
        LiveTls::reload(self)
    }
}
