//! The CAs a certificate folder retired, as evidence for the client's explanation.
//!
//! When a server refuses our certificate as coming from a CA it does not trust, the client
//! can say more than "check the CA" if it has evidence of why: our certificate chains to a
//! CA that the CA file we were given (`certs/ca.crt`) no longer holds, and the folder of that
//! file keeps that CA in `retired/`, where `certificate ca retire` puts it. Then the CA was
//! retired by a rotation, and a server loading the same `ca.crt` refuses what it issued.
//! Without both facts nothing is claimed.

use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;

use crate::certinfo::CertInfo;
pub use crate::explain::RetiredCa;
use crate::files::CertsDir;
use crate::pem;
use crate::report::PeerPath;

/// The retired CA `chain` (ours, leaf first) chains to, when the CA file `ca_file` (whose
/// certificates are `trusted`) holds none of our CAs and its folder keeps one in `retired/`.
pub fn find(
    chain: &[CertificateDer<'_>],
    ca_file: &Path,
    trusted: &[(CertificateDer<'static>, CertInfo)],
) -> Option<RetiredCa> {
    let folder = ca_file.parent().filter(|p| !p.as_os_str().is_empty());
    let retired = CertsDir::new(folder.unwrap_or(Path::new("."))).retired();
    if !retired.path().is_dir() {
        return None;
    }
    let (ders, infos): (Vec<_>, Vec<_>) = trusted.iter().cloned().unzip();
    if PeerPath::verified(chain, &ders).anchor(&infos).is_some() {
        return None;
    }
    let kept: Vec<(PathBuf, CertificateDer<'static>, CertInfo)> = std::fs::read_dir(retired.path())
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .filter_map(|path| {
            let (der, info) = pem::described_certificates(&path, "a retired CA")
                .ok()?
                .into_iter()
                .next()?;
            Some((path, der, info))
        })
        .collect();
    // The retired root the chain ends at, if the chain carries what links it there;
    // otherwise whichever retired CA issued the last certificate it carries.
    let ends_at = |roots_only: bool| {
        let (ders, infos): (Vec<_>, Vec<_>) = kept
            .iter()
            .filter(|(_, _, info)| !roots_only || info.self_signed)
            .map(|(_, der, info)| (der.clone(), info.clone()))
            .unzip();
        PeerPath::verified(chain, &ders).anchor(&infos).cloned()
    };
    let anchor = ends_at(true).or_else(|| ends_at(false))?;
    let (file, _, info) = kept.iter().find(|(_, _, i)| i.sha256 == anchor.sha256)?;
    Some(RetiredCa {
        subject: info.subject.clone(),
        file: file.clone(),
        ca_file: ca_file.to_path_buf(),
    })
}
