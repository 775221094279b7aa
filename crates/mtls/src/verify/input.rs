//! What `certificate verify` reads: the leaf and its chain, more intermediates, the trust
//! anchors and the CRLs, each remembered with the file (and position) it came from; and
//! the host, as rustls parses a server name.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rustls::pki_types::{CertificateDer, ServerName};

use super::Request;
use crate::certinfo::CertInfo;
use crate::error::{Error, Result};
use crate::pem;
use crate::tls::{self, Trust};

/// The host a client dials: a DNS name or an IP address, as rustls parses a server name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host(pub(crate) ServerName<'static>);

impl Host {
    /// "DNS name" or "IP address".
    pub fn kind(&self) -> &'static str {
        match self.0 {
            ServerName::IpAddress(_) => "IP address",
            _ => "DNS name",
        }
    }
}

impl FromStr for Host {
    type Err = String;

    /// `localhost`, `api.internal`, `127.0.0.1`, `::1` or `[::1]`.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let typed = s.trim();
        let bare = typed
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(typed);
        ServerName::try_from(bare.to_string())
            .map(Host)
            .map_err(|_| {
                format!(
                    "{s:?} is neither a DNS name nor an IP address (write localhost, api.internal, \
                     127.0.0.1 or ::1)"
                )
            })
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ServerName::DnsName(dns) => f.write_str(dns.as_ref()),
            ServerName::IpAddress(ip) => write!(f, "{}", std::net::IpAddr::from(*ip)),
            other => write!(f, "{other:?}"),
        }
    }
}

/// Where a certificate came from: its file and its place there (1 for the first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The file.
    pub file: PathBuf,
    /// Its place in the file, from 1.
    pub index: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} #{}", self.file.display(), self.index)
    }
}

/// One certificate as given, with what x509-parser reads in it (`None` when it cannot:
/// webpki still judges it).
#[derive(Clone, Debug)]
pub(crate) struct Given {
    pub der: CertificateDer<'static>,
    pub source: Source,
    pub info: Option<CertInfo>,
}

/// Everything a verdict is made from.
pub(crate) struct Material {
    /// The first certificate of the LEAF file.
    pub leaf: Given,
    /// The rest of the LEAF file (what a peer would send after its leaf).
    pub chain: Vec<Given>,
    /// Every candidate intermediate: `chain`, then the --untrusted files.
    pub intermediates: Vec<Given>,
    /// The certificates of the CA file, each a trust anchor, in order.
    pub anchors: Vec<Given>,
    /// The same as rustls makes them (`roots.roots[i]` comes from `anchors[i]`).
    pub trust: Trust,
    /// The revocation lists, parsed as rustls parses them.
    pub crls: Vec<webpki::CertRevocationList<'static>>,
    /// The files they came from.
    pub crl_files: Vec<PathBuf>,
}

impl Material {
    pub fn load(req: &Request) -> Result<Self> {
        let mut leaf_file = certificates(&req.leaf, "the certificate to verify", false)?;
        let chain = leaf_file.split_off(1);
        let leaf = leaf_file.remove(0);
        let mut intermediates = chain.clone();
        for path in &req.untrusted {
            intermediates.extend(certificates(path, "the untrusted intermediates", false)?);
        }
        let anchors = certificates(&req.ca, "the CA certificate", req.ca_is_default)?;
        let trust = Trust::from_certs(anchors.iter().map(|g| g.der.clone()).collect(), &req.ca)?;
        let mut crls = Vec::new();
        for path in &req.crls {
            crls.extend(revocation_lists(path)?);
        }
        Ok(Self {
            leaf,
            chain,
            intermediates,
            anchors,
            trust,
            crls,
            crl_files: req.crls.clone(),
        })
    }
}

/// Every certificate in `path`: PEM (any number), or one DER certificate. Nothing in a PEM
/// block is judged here (webpki does that); DER must at least read as a certificate, so a
/// key or a CRL in binary is named as such rather than reported as a broken certificate.
fn certificates(path: &Path, what: &str, minted: bool) -> Result<Vec<Given>> {
    let bytes = std::fs::read(path).map_err(|e| match minted {
        true => Error::read(what, path, e),
        false => Error::read_given(what, path, e),
    })?;
    let ders = match pem::unparsed_certificates_in(&bytes, path, what) {
        Ok(ders) => ders,
        Err(Error::NotPem {
            looks_like_der: true,
            ..
        }) => {
            CertInfo::parse(&bytes).map_err(|why| {
                Error::malformed(
                    what,
                    path,
                    format!("it holds binary (DER) data that is not one X.509 certificate: {why}"),
                )
            })?;
            vec![CertificateDer::from(bytes)]
        }
        Err(e) => return Err(e),
    };
    Ok(ders
        .into_iter()
        .enumerate()
        .map(|(i, der)| Given {
            info: CertInfo::parse(&der).ok(),
            der,
            source: Source {
                file: path.to_path_buf(),
                index: i + 1,
            },
        })
        .collect())
}

/// The lists in one CRL file (PEM), parsed as rustls parses them for the server: one webpki
/// cannot use makes the server refuse to start, and this command say so.
fn revocation_lists(path: &Path) -> Result<Vec<webpki::CertRevocationList<'static>>> {
    let what = "the certificate revocation list";
    let bytes = std::fs::read(path).map_err(|e| Error::read_given(what, path, e))?;
    let ders = pem::crls_in(&bytes, path, what)?;
    tls::parse_crls(&ders).map_err(|e| {
        Error::malformed(
            what,
            path,
            format!("webpki cannot use it ({e}), and the server would refuse to start with it"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_dns_names_or_ip_addresses() {
        let host = |s: &str| s.parse::<Host>();
        assert_eq!(host("localhost").map(|h| h.kind()), Ok("DNS name"));
        assert_eq!(host("127.0.0.1").map(|h| h.kind()), Ok("IP address"));
        assert_eq!(host("[::1]").map(|h| h.to_string()), Ok("::1".to_string()));
        assert_eq!(host("::1").map(|h| h.kind()), Ok("IP address"));
        for bad in ["", "bad host", "a..b", "http://x/"] {
            assert!(host(bad).is_err(), "{bad:?}");
        }
    }
}
