//! webpki's verdict on the leaf for one purpose, called as rustls's verifiers call it; the
//! path it built, or the reason it refused, in the words of [`crate::explain`].

use std::fmt;

use rustls::pki_types::{CertificateDer, UnixTime};
use time::OffsetDateTime;
use webpki::{EndEntityCert, KeyUsage, VerifiedPath};

use super::Purpose;
use super::input::{Given, Host, Material, Source};
use crate::certinfo::{CertInfo, Eku};
use crate::error::{Failure, to_datetime};
use crate::explain::{Context, Side};
use crate::format::{escape_controls, format_time, hex};
use crate::tls;

/// What a certificate is on the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRole {
    /// The certificate verified.
    Leaf,
    /// A CA between the leaf and the trust anchor.
    Intermediate,
    /// The CA from the trust file the path ends at.
    Anchor,
}

impl LinkRole {
    /// How text and JSON name the role.
    pub fn name(self) -> &'static str {
        match self {
            LinkRole::Leaf => "leaf",
            LinkRole::Intermediate => "intermediate",
            LinkRole::Anchor => "trust anchor",
        }
    }
}

/// One certificate of the path webpki built.
#[derive(Clone, Debug)]
pub struct Link {
    /// Its place on the path.
    pub role: LinkRole,
    /// Its subject (or why it cannot be read).
    pub subject: String,
    /// Its issuer.
    pub issuer: String,
    /// SHA-256 of its DER, as `AB:CD:...`.
    pub sha256: String,
    /// The file it came from.
    pub source: Option<Source>,
    /// The start of its validity, when readable.
    pub not_before: Option<OffsetDateTime>,
    /// The end of its validity, when readable.
    pub not_after: Option<OffsetDateTime>,
}

impl Link {
    pub(crate) fn of(role: LinkRole, der: &[u8], given: Option<&Given>) -> Self {
        let info = given
            .and_then(|g| g.info.clone())
            .or_else(|| CertInfo::parse(der).ok());
        let unreadable = || "(x509-parser cannot read it; webpki could)".to_string();
        Self {
            role,
            subject: info
                .as_ref()
                .map(|i| escape_controls(&i.subject).into_owned())
                .unwrap_or_else(unreadable),
            issuer: info
                .as_ref()
                .map(|i| escape_controls(&i.issuer).into_owned())
                .unwrap_or_else(unreadable),
            sha256: hex(&crate::certinfo::sha256(der), ":"),
            source: given.map(|g| g.source.clone()),
            not_before: info.as_ref().map(|i| i.not_before),
            not_after: info.map(|i| i.not_after),
        }
    }
}

/// Why webpki refused, in words.
#[derive(Clone, Debug)]
pub struct Rejection {
    /// The classification (its code is the JSON `reason`).
    pub failure: Failure,
    /// The reason and the fix, as the other tools say them.
    pub message: String,
    /// Which of the certificates given the reason points at, when they tell (facts about
    /// them, not a second verdict).
    pub which: Vec<String>,
}

/// The verdict for one purpose.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The purpose checked.
    pub purpose: Purpose,
    /// The path built (leaf first, trust anchor last), or why there is none.
    pub result: Result<Vec<Link>, Rejection>,
    /// What webpki checked, when it accepted.
    pub checks: Vec<String>,
}

impl Outcome {
    /// Accepted.
    pub fn accepted(&self) -> bool {
        self.result.is_ok()
    }
}

impl Purpose {
    fn key_usage(self) -> KeyUsage {
        match self {
            Purpose::Server => KeyUsage::server_auth(),
            Purpose::Client => KeyUsage::client_auth(),
        }
    }

    fn eku(self) -> Eku {
        match self {
            Purpose::Server => Eku::ServerAuth,
            Purpose::Client => Eku::ClientAuth,
        }
    }

    /// Who judges a certificate of this purpose in a handshake: the client judges servers.
    fn judge(self) -> Side {
        match self {
            Purpose::Server => Side::Client,
            Purpose::Client => Side::Server,
        }
    }
}

/// Asks webpki about the leaf for `purpose` at `at`, then (servers) about `host`.
pub(crate) fn judge(m: &Material, purpose: Purpose, host: Option<&Host>, at: UnixTime) -> Outcome {
    match run(m, purpose, host, at) {
        Ok(path) => Outcome {
            purpose,
            checks: checks(m, purpose, host, &path),
            result: Ok(path),
        },
        Err(e) => Outcome {
            purpose,
            result: Err(reject(m, purpose, &Failure::from_webpki(&e), at)),
            checks: Vec::new(),
        },
    }
}

/// The calls rustls's verifiers make, in their order: parse the leaf, build and check a
/// path for the key usage (with revocation when there are lists), then the server's name.
fn run(
    m: &Material,
    purpose: Purpose,
    host: Option<&Host>,
    at: UnixTime,
) -> Result<Vec<Link>, webpki::Error> {
    let leaf = EndEntityCert::try_from(&m.leaf.der)?;
    let intermediates: Vec<CertificateDer<'_>> =
        m.intermediates.iter().map(|g| g.der.clone()).collect();
    let crls: Vec<&webpki::CertRevocationList<'_>> = m.crls.iter().collect();
    let path = leaf.verify_for_usage(
        tls::signature_algorithms(),
        &m.trust.roots.roots,
        &intermediates,
        at,
        purpose.key_usage(),
        tls::revocation_options(&crls),
        None,
    )?;
    let links = describe(m, &path);
    if let (Purpose::Server, Some(host)) = (purpose, host) {
        leaf.verify_is_valid_for_subject_name(&host.0)?;
    }
    Ok(links)
}

/// The path as links, each matched to the file it came from.
fn describe(m: &Material, path: &VerifiedPath<'_>) -> Vec<Link> {
    let mut links = vec![Link::of(LinkRole::Leaf, &m.leaf.der, Some(&m.leaf))];
    for cert in path.intermediate_certificates() {
        let der = cert.der();
        let given = m
            .intermediates
            .iter()
            .find(|g| g.der.as_ref() == der.as_ref());
        links.push(Link::of(LinkRole::Intermediate, der.as_ref(), given));
    }
    // The anchor is one of the trust store's own: its position is its certificate's.
    let anchors = &m.trust.roots.roots;
    if let Some(i) = anchors.iter().position(|a| std::ptr::eq(a, path.anchor())) {
        let given = &m.anchors[i];
        links.push(Link::of(LinkRole::Anchor, &given.der, Some(given)));
    }
    links
}

/// What an accepted path has passed: exactly what webpki checks, no more.
fn checks(m: &Material, purpose: Purpose, host: Option<&Host>, path: &[Link]) -> Vec<String> {
    let below_anchor = path.len().saturating_sub(1);
    let ca = m.trust.path.display();
    let mut out = vec![
        format!(
            "signatures: each of the {below_anchor} certificate(s) below the trust anchor is \
             signed by the next, up to a CA in {ca}, with an algorithm rustls accepts"
        ),
        "dates: each certificate below the trust anchor is valid at that time".to_string(),
        "basic constraints: the leaf is not a CA; each issuer is a CA, within its path \
         length limit"
            .to_string(),
        "name constraints: no CA on the path forbids a name below it".to_string(),
        format!(
            "extended key usage: {} is allowed by each certificate on the path that lists \
             purposes",
            purpose.eku()
        ),
        "critical extensions: none that rustls does not understand".to_string(),
    ];
    if !m.crls.is_empty() {
        out.push(format!(
            "revocation: each certificate below the trust anchor is covered by a current list \
             from its issuer, and none is listed ({} list(s))",
            m.crls.len()
        ));
    }
    if let (Purpose::Server, Some(host)) = (purpose, host) {
        out.push(format!(
            "name: the leaf is valid for \"{host}\" ({}, matched against its SANs)",
            host.kind()
        ));
    }
    out
}

/// The refusal in words: the explanation the judging side gives, and which certificates
/// the reason points at.
fn reject(m: &Material, purpose: Purpose, failure: &Failure, at: UnixTime) -> Rejection {
    let given: Vec<CertInfo> = std::iter::once(&m.leaf)
        .chain(&m.chain)
        .map_while(|g| g.info.clone())
        .collect();
    let failure = failure.clone().with_peer_chain(&given);
    let cx = Context {
        ca: Some(m.trust.path.clone()),
        crls: m.crl_files.clone(),
        anchors: m.anchors.iter().filter_map(|g| g.info.clone()).collect(),
        host_flag: Some("--host"),
        ..Context::default()
    };
    Rejection {
        message: failure.explain(purpose.judge(), &cx),
        which: which(m, purpose, &failure, at),
        failure,
    }
}

/// Facts about the certificates given that the reason points at.
fn which(m: &Material, purpose: Purpose, failure: &Failure, at: UnixTime) -> Vec<String> {
    let below_anchor = std::iter::once(&m.leaf).chain(&m.intermediates);
    let at = to_datetime(at);
    let mut out = Vec::new();
    for g in below_anchor {
        let Some(info) = &g.info else { continue };
        let who = Who(g, info, std::ptr::eq(g, &m.leaf));
        match failure {
            Failure::Expired { .. } if at.is_some_and(|t| t > info.not_after) => {
                out.push(format!("{who} expired on {}", format_time(info.not_after)))
            }
            Failure::NotYetValid { .. } if at.is_some_and(|t| t < info.not_before) => out.push(
                format!("{who} is not valid until {}", format_time(info.not_before)),
            ),
            Failure::WrongPurpose { .. }
                if !info.ext_key_usage.is_empty()
                    && !info.ext_key_usage.contains(&purpose.eku()) =>
            {
                let list: Vec<String> =
                    info.ext_key_usage.iter().map(ToString::to_string).collect();
                out.push(format!(
                    "{who} lists only {} as its purposes, and webpki requires every \
                     certificate on the path that lists purposes to list {}",
                    list.join(", "),
                    purpose.eku()
                ));
            }
            Failure::CaAsLeaf if who.2 => {
                out.push(format!("{who} is a CA (basicConstraints CA:TRUE)"));
            }
            Failure::Revoked => out.extend(revoked_by(m, g).map(|on| format!("{who} {on}"))),
            Failure::Chain(crate::error::ChainRule::PathLength) => {
                if let Some(len) = info.path_len {
                    out.push(format!("{who} allows at most {len} CA(s) below it"));
                }
            }
            _ => {}
        }
    }
    out
}

/// Whether one of the lists revokes `g` (the list of its issuer, by name).
fn revoked_by(m: &Material, g: &Given) -> Option<String> {
    let cert = EndEntityCert::try_from(&g.der).ok()?;
    m.crls.iter().find_map(|crl| {
        (crl.issuer() == cert.issuer() && matches!(crl.find_serial(cert.serial()), Ok(Some(_))))
            .then(|| "is listed as revoked by its issuer's CRL".to_string())
    })
}

/// How a fact names a certificate: the leaf, or an intermediate by subject and file.
struct Who<'a>(&'a Given, &'a CertInfo, bool);

impl fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Who(given, info, leaf) = self;
        let what = if *leaf { "the leaf" } else { "the certificate" };
        write!(
            f,
            "{what} \"{}\" ({})",
            escape_controls(&info.subject),
            given.source
        )
    }
}
