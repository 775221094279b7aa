//! The proxy's identity (certificate and key) and the CA it verifies the upstream with,
//! reloaded while it runs, as the server reloads its own: on SIGHUP, and when a file's stamp
//! changes ([`crate::triggers`]). A reload builds everything first and swaps it in only
//! when all of it loaded; a failed one keeps the old identity and says why. Each load has a
//! generation: upstream connections made with an older one are not used again.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::watch as channel;
use tracing::{info, warn};

use super::settings::IdentitySource;
use crate::certinfo::CertInfo;
use crate::error::{Error, Result};
use crate::explain;
use crate::format::format_time;
use crate::pem;
use crate::tls::{Identity, Trust};
use crate::triggers::{self, Attempts, Contents, Hangup, ReloadTriggers, Reloadable};

/// One complete, consistent load: what new upstream connections present and trust.
#[derive(Debug)]
pub struct Material {
    /// Counts loads from 1: connections made with an older one are replaced.
    pub generation: u64,
    /// Our certificate chain and key.
    pub identity: Identity,
    /// The CA the upstream's certificate must chain to.
    pub trust: Trust,
    /// Our leaf, for logs and metrics.
    pub leaf: CertInfo,
    /// The CA certificates.
    pub cas: Vec<CertInfo>,
    /// What failure explanations may mention: the CA file and its certificates, our
    /// certificate and its file (the same context `client` explains with).
    pub explain: explain::Context,
}

impl Material {
    fn parse(source: &IdentitySource, mut files: Contents, generation: u64) -> Result<Self> {
        // The order of IdentitySource::files(): certificate, key, CA.
        let owner = &source.owner;
        let cert_what = format!("{owner}'s certificate");
        let cert = files.take(0, |e| Error::read(&cert_what, &source.cert, e))?;
        let key_what = format!("{owner}'s private key");
        let key = files.take(1, |e| Error::read(&key_what, &source.key, e))?;
        let ca_what = "the CA certificate";
        let ca = files.take(2, |e| Error::read(ca_what, &source.ca, e))?;
        let chain = pem::described_certificates_in(&cert, &source.cert, &cert_what)?;
        let key = pem::private_key_in(&key, &source.key, &key_what)?;
        let leaf = chain
            .first()
            .map(|(_, info)| info.clone())
            .ok_or_else(|| Error::malformed(&cert_what, &source.cert, "it holds no certificate"))?;
        let identity = Identity::from_der(
            chain.into_iter().map(|(der, _)| der).collect(),
            key,
            &source.cert,
            &source.key,
        )?;
        let (anchors, cas): (Vec<_>, Vec<_>) =
            pem::described_certificates_in(&ca, &source.ca, ca_what)?
                .into_iter()
                .unzip();
        let trust = Trust::from_certs(anchors, &source.ca)?;
        Ok(Self {
            generation,
            identity,
            trust,
            explain: explain::Context {
                ca: Some(source.ca.clone()),
                anchors: cas.clone(),
                ours: Some(leaf.clone()),
                ours_file: Some(source.cert.clone()),
                ..explain::Context::default()
            },
            leaf,
            cas,
        })
    }

    /// Warns when our own certificate is outside its validity window.
    fn warn_if_not_current(&self, source: &IdentitySource) {
        if !self.leaf.is_current(OffsetDateTime::now_utc()) {
            warn!(
                file = %source.cert.display(),
                not_before = %format_time(self.leaf.not_before),
                not_after = %format_time(self.leaf.not_after),
                "the proxy's certificate is not valid now; the upstream will refuse it"
            );
        }
    }
}

/// The current identity, replaceable while the proxy runs.
#[derive(Debug)]
pub struct LiveIdentity {
    source: IdentitySource,
    current: channel::Sender<Arc<Material>>,
    attempts: Attempts,
}

impl LiveIdentity {
    /// Loads the identity for the first time.
    pub fn load(source: IdentitySource) -> Result<Self> {
        let files = Contents::read(&source.files());
        let attempts = Attempts::after(&files);
        let material = Material::parse(&source, files, 1)?;
        material.warn_if_not_current(&source);
        Ok(Self {
            source,
            current: channel::Sender::new(Arc::new(material)),
            attempts,
        })
    }

    /// What new upstream connections use now.
    pub fn current(&self) -> Arc<Material> {
        self.current.borrow().clone()
    }

    /// Reloads so far: (succeeded, failed).
    pub fn reloads(&self) -> (u64, u64) {
        self.attempts.counts()
    }

    /// Where the identity comes from.
    pub fn source(&self) -> &IdentitySource {
        &self.source
    }
}

impl Reloadable for LiveIdentity {
    type Loaded = Arc<Material>;

    fn changed(&self) -> Vec<PathBuf> {
        self.attempts.changed(&self.source.files())
    }

    /// Loads everything again and, if it all loads, makes it current; on failure the old
    /// identity stays.
    fn reload(&self) -> Result<Arc<Material>> {
        let files = self.attempts.read(&self.source.files());
        let generation = self.current.borrow().generation + 1;
        let loaded = Material::parse(&self.source, files, generation).map(Arc::new);
        self.attempts.count(&loaded);
        let material = loaded?;
        material.warn_if_not_current(&self.source);
        self.current.send_replace(material.clone());
        Ok(material)
    }
}

/// Reloads on SIGHUP and on file changes ([`crate::triggers::watch`]) until `stop`
/// resolves, and logs each attempt; `reloaded` is told of each new identity (to retire the
/// connections made with the old one).
pub async fn watch(
    live: Arc<LiveIdentity>,
    triggers: ReloadTriggers,
    hangup: Hangup,
    reloaded: impl Fn(&Material),
    stop: impl Future<Output = ()>,
) {
    triggers::watch(live, triggers, hangup, stop, |attempt| {
        let (trigger, changed) = (attempt.trigger, attempt.changed);
        let material = match attempt.result {
            Ok(material) => material,
            Err(e) => {
                warn!(trigger, changed = %changed, error = %e, "reload failed; still using the previous identity");
                return;
            }
        };
        reloaded(&material);
        let leaf = &material.leaf;
        info!(
            trigger,
            changed = %changed,
            client.cert.subject = %leaf.subject,
            client.cert.serial = %leaf.serial_hex(),
            client.cert.not_after = %format_time(leaf.not_after),
            "reloaded the proxy's certificate, key and CA: new upstream connections present \
             it; open ones are replaced"
        );
    })
    .await
}
