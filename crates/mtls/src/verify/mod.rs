//! `certificate verify`: would a handshake accept this certificate, and why not?
//!
//! The verdict is webpki's, asked exactly as rustls's verifiers ask it in the server and
//! the client ([`crate::tls`]): the same trust anchors (a rustls `RootCertStore`), the same
//! signature algorithms (aws-lc-rs's), the same key usage (serverAuth or clientAuth, required
//! when present), the same revocation rules (the server's: every certificate of the path,
//! an unknown status refused, an expired list a failure), then the host name, as the client
//! checks it. Nothing here adds a rule of its own: whatever webpki accepts is accepted, and
//! the notes only inform. What this adds is words: the path webpki built, the checks it
//! passed, and for a refusal the reason and the fix as the other tools say them
//! ([`crate::explain`]).
//!
//! - [`input`]: the files (PEM, or one DER certificate), the host and the purpose.
//! - [`judge`]: webpki's verdict for one purpose, and the path it built.
//! - [`report`]: the verdicts in words and as JSON.

mod input;
mod judge;
mod report;

use std::path::PathBuf;

use rustls::pki_types::UnixTime;
use time::OffsetDateTime;

use crate::error::{Error, Result};

pub use input::{Host, Source};
pub use judge::{Link, LinkRole, Outcome, Rejection};
pub use report::Report;

/// The role a certificate is checked for: what the peer that receives it requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Purpose {
    /// A server certificate, as a client checks it (EKU serverAuth, and the host's name).
    Server,
    /// A client certificate, as the server checks it (EKU clientAuth).
    Client,
}

impl Purpose {
    /// How the purpose is named in text and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Server => "server",
            Purpose::Client => "client",
        }
    }
}

/// What to verify, as the command line gave it.
#[derive(Clone, Debug)]
pub struct Request {
    /// The leaf, optionally followed by its chain (PEM, or one DER certificate).
    pub leaf: PathBuf,
    /// The trust anchors: every certificate in this file.
    pub ca: PathBuf,
    /// `ca` is the folder's ca.crt rather than a file the user named (for the hint when it
    /// is missing).
    pub ca_is_default: bool,
    /// More candidate intermediates.
    pub untrusted: Vec<PathBuf>,
    /// The host a client dials: checked against the leaf's names.
    pub host: Option<Host>,
    /// The purpose asked for; `None`: server with a host, otherwise both.
    pub purpose: Option<Purpose>,
    /// Verify as of this moment (`None`: now).
    pub at: Option<OffsetDateTime>,
    /// CRL files: with any, revocation is checked by the server's rules.
    pub crls: Vec<PathBuf>,
}

impl Request {
    /// The purposes to check: the one asked for; server when a host is given; else both.
    /// A host with `--purpose client` is a usage error: no handshake checks a client
    /// certificate's names against a host.
    pub fn purposes(&self) -> Result<Vec<Purpose>> {
        match (self.purpose, &self.host) {
            (Some(Purpose::Client), Some(host)) => Err(Error::Usage(format!(
                "--host {host} names the server a client dials, and a server never checks a \
                 client certificate's names against a host; drop --host to check a client \
                 certificate, or use --purpose server"
            ))),
            (Some(purpose), _) => Ok(vec![purpose]),
            (None, Some(_)) => Ok(vec![Purpose::Server]),
            (None, None) => Ok(vec![Purpose::Server, Purpose::Client]),
        }
    }
}

/// Verifies the request's leaf for each purpose, as a handshake would at the moment asked.
pub fn verify(req: &Request) -> Result<Report> {
    let purposes = req.purposes()?;
    let at = match req.at {
        Some(at) => at,
        None => crate::format::now(),
    };
    let unix = unix_time(at)?;
    let material = input::Material::load(req)?;
    let outcomes = purposes
        .iter()
        .map(|&purpose| judge::judge(&material, purpose, req.host.as_ref(), unix))
        .collect();
    Ok(Report::new(req, &material, at, outcomes))
}

/// `at` as webpki counts time: whole seconds since 1970 (a handshake drops the fraction too).
fn unix_time(at: OffsetDateTime) -> Result<UnixTime> {
    let secs = u64::try_from(at.unix_timestamp()).map_err(|_| {
        Error::Usage(format!(
            "--at {}: certificates are checked as of 1970 or later",
            crate::format::format_time(at)
        ))
    })?;
    Ok(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        secs,
    )))
}
