//! The browser view: what the server answers, instead of the plain-text greeting or 403, to
//! a request whose `Accept` header prefers `text/html` over `text/plain` (a browser's
//! navigation; curl's `*/*` and our client keep getting text).
//!
//! One self-contained page, inline CSS and no scripts, that says who the server thinks it is
//! talking to and why: the seven steps of this very connection's handshake, told from the
//! facts the server holds (the negotiated state, its own chain, the CA names it sends, the
//! client's chain as verified, the checks its verifier ran), what authorization decided, and
//! the commands to try the failures. It claims nothing that did not happen: revocation is
//! "checked" only when CRLs are loaded, and a resumed session says which steps it skipped.
//!
//! Every value on the page is escaped ([`escape`]): names in certificates are the peer's
//! words, and even the server's own file names may hold `<`.

use std::fmt::{self, Display, Formatter};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use super::policy::{Decision, Rule};
use super::reload::TlsMaterial;
use super::response::{ResponseBody, full_response};
use crate::certinfo::{CertInfo, Eku};
use crate::client::DEFAULT_URL;
use crate::files::{CertsDir, ClientId, DEFAULT_DIR, Role};
use crate::format::{escape_controls, format_time};
use crate::program::Program;
use crate::report::{PeerPath, TlsReport};

/// Whether a request's `Accept` header prefers `text/html` over `text/plain`: the weight
/// (`q`) of the most specific range that matches each (RFC 9110, section 12.5.1), and HTML
/// only when its weight is higher. A tie, `*/*` or no `Accept` at all keeps plain text.
pub(super) fn prefers_html(headers: &HeaderMap) -> bool {
    let (mut html, mut plain) = (Weight::default(), Weight::default());
    let ranges = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(MediaRange::parse);
    for range in ranges {
        html.offer(&range, "text", "html");
        plain.offer(&range, "text", "plain");
    }
    html.q() > plain.q()
}

/// The weight ranges give one media type: that of the most specific range naming it (the
/// first of equals). No range names it: 0; no ranges at all accept everything alike.
#[derive(Default)]
struct Weight {
    ranges: bool,
    best: Option<(u8, u16)>,
}

impl Weight {
    fn offer(&mut self, range: &MediaRange<'_>, kind: &str, subtype: &str) {
        self.ranges = true;
        if let Some(s) = range.specificity(kind, subtype)
            && self.best.is_none_or(|(b, _)| s > b)
        {
            self.best = Some((s, range.q));
        }
    }

    fn q(&self) -> u16 {
        match (self.ranges, self.best) {
            (false, _) => 1000,
            (true, best) => best.map_or(0, |(_, q)| q),
        }
    }
}

/// One element of an `Accept` header: `type/subtype`, and its weight in thousandths.
struct MediaRange<'a> {
    kind: &'a str,
    subtype: &'a str,
    /// Parameters other than `q` (`text/html;level=1`): such a range is narrower than the
    /// plain type it names, so it does not speak for it.
    narrowed: bool,
    q: u16,
}

impl<'a> MediaRange<'a> {
    fn parse(element: &'a str) -> Option<Self> {
        let mut parts = element.split(';');
        let (kind, subtype) = parts.next()?.trim().split_once('/')?;
        let (kind, subtype) = (kind.trim(), subtype.trim());
        if kind.is_empty() || subtype.is_empty() || (kind == "*" && subtype != "*") {
            return None;
        }
        let mut range = Self {
            kind,
            subtype,
            narrowed: false,
            q: 1000,
        };
        for param in parts {
            match param.trim().split_once('=') {
                Some((name, value)) if name.trim().eq_ignore_ascii_case("q") => {
                    range.q = qvalue(value.trim())?;
                }
                _ => range.narrowed = true,
            }
        }
        Some(range)
    }

    /// How specifically this range names `kind/subtype`: 3 exactly, 2 as `kind/*`, 1 as
    /// `*/*`, `None` not at all.
    fn specificity(&self, kind: &str, subtype: &str) -> Option<u8> {
        if self.narrowed {
            return None;
        }
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        match (self.kind, self.subtype) {
            ("*", "*") => Some(1),
            (k, "*") if same(k, kind) => Some(2),
            (k, s) if same(k, kind) && same(s, subtype) => Some(3),
            _ => None,
        }
    }
}

/// A `qvalue` (`0`, `0.8`, `1.000`) in thousandths; `None` when it is not one.
fn qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// What the page of one connection says, gathered once when its handshake is done.
pub(super) struct Facts {
    /// The client's address.
    pub(super) peer: SocketAddr,
    /// The address it connected to, if the socket could tell.
    pub(super) local: Option<SocketAddr>,
    /// When the server read the connection's state, just after the handshake.
    pub(super) at: OffsetDateTime,
    /// What the handshake negotiated.
    pub(super) report: TlsReport,
    /// The client's leaf and the certificates it sent that link it to the CA.
    pub(super) client: Arc<PeerPath>,
    /// How many certificates the client sent (or, resumed, the session carries).
    pub(super) sent: usize,
    /// The client's identity, as logs and the greeting name it.
    pub(super) identity: String,
    /// The material that verified the client: its CA, CRLs and the server's own chain.
    pub(super) material: Arc<TlsMaterial>,
    /// What the policy decided.
    pub(super) decision: Decision,
    /// The plain-text answer every request on the connection gets: the greeting or the
    /// refusal.
    pub(super) answer: String,
    /// Whether the client is served (otherwise every request gets 403).
    pub(super) admitted: bool,
}

/// The browser view of one connection: its facts, and the page made from them the first
/// time a request asks for it (then shared by every later one).
pub(super) struct Page {
    facts: Facts,
    html: OnceLock<Bytes>,
}

impl Page {
    pub(super) fn new(facts: Facts) -> Self {
        Self {
            facts,
            html: OnceLock::new(),
        }
    }

    /// The page as a response with `status`: HTML that varies by `Accept`, never cached (it
    /// describes one connection), and under a policy that runs no script and loads nothing.
    pub(super) fn response(&self, status: StatusCode) -> Response<ResponseBody> {
        let body = self
            .html
            .get_or_init(|| Bytes::from(View::new(&self.facts).to_string()))
            .clone();
        let mut response = full_response(status, "text/html; charset=utf-8", body);
        let headers = response.headers_mut();
        headers.insert(header::VARY, HeaderValue::from_static("accept"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        response
    }
}

/// `text` made safe inside HTML text and quoted attributes: `&`, `<`, `>`, `"` and `'`
/// become entities, and control characters and bidirectional overrides are shown as
/// `\u{..}` (as in the logs), so a name can neither add markup nor reorder what is shown.
pub(super) fn escape(text: &str) -> Escaped<'_> {
    Escaped(text)
}

/// Text that is escaped as it is written (see [`escape`]).
pub(super) struct Escaped<'a>(&'a str);

impl Display for Escaped<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let text = escape_controls(self.0);
        let mut rest = text.as_ref();
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

/// The page of one connection, and how its reader runs the programs.
struct View<'a> {
    facts: &'a Facts,
    cmd: Commands,
}

impl<'a> View<'a> {
    fn new(facts: &'a Facts) -> Self {
        Self {
            facts,
            cmd: Commands::for_connection(facts),
        }
    }
}

const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1c1c1e;--bg:#fff;--muted:#5b5b63;--box:#f3f3f5;--line:#d8d8de;--ok:#17703a;--bad:#b3261e;--skip:#8a5a00}
@media (prefers-color-scheme:dark){:root{--fg:#e8e8ea;--bg:#121214;--muted:#a5a5ad;--box:#1e1e22;--line:#33333a;--ok:#5cc488;--bad:#ff8a80;--skip:#e0b050}}
*{box-sizing:border-box}
body{margin:0;color:var(--fg);background:var(--bg);font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;-webkit-text-size-adjust:100%}
main{max-width:46rem;margin:0 auto;padding:1rem}
h1{font-size:1.45rem;line-height:1.25;margin:.4rem 0 .6rem;overflow-wrap:anywhere}
h2{font-size:1.2rem;margin:2rem 0 .6rem}
h3{font-size:1.05rem;margin:0 0 .4rem}
p,li,dd{overflow-wrap:anywhere}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em}
code{background:var(--box);padding:0 .2em;border-radius:.2rem}
pre{background:var(--box);padding:.6rem .7rem;border-radius:.4rem;white-space:pre-wrap;overflow-wrap:anywhere;margin:.4rem 0}
pre code{background:none;padding:0}
.verdict{border-left:.35rem solid var(--ok);background:var(--box);padding:.6rem .8rem;border-radius:.3rem;margin:.6rem 0}
.verdict.denied{border-color:var(--bad)}
.verdict p{margin:.2rem 0}
ol.steps{list-style:none;padding:0;margin:0}
ol.steps>li{border:1px solid var(--line);border-radius:.5rem;padding:.8rem;margin:.8rem 0}
.n{display:inline-block;min-width:1.6rem;height:1.6rem;line-height:1.6rem;text-align:center;border-radius:50%;background:var(--fg);color:var(--bg);font-size:.85rem;margin-right:.4rem}
.who{font-size:.8rem;color:var(--muted);text-transform:uppercase;letter-spacing:.04em;margin:0 0 .3rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem .8rem;margin:.4rem 0}
dt{color:var(--muted)}
dd{margin:0;min-width:0}
.cert{border-left:.2rem solid var(--line);padding:.2rem 0 .2rem .7rem;margin:.6rem 0}
.cert>p{margin:0;font-weight:600}
ul.checks{list-style:none;padding:0;margin:.4rem 0}
ul.checks>li{padding-left:1.6rem;text-indent:-1.6rem;margin:.35rem 0}
.ok{color:var(--ok);font-weight:600}
.bad{color:var(--bad);font-weight:600}
.skip{color:var(--skip);font-weight:600}
footer{color:var(--muted);font-size:.85rem;margin:2rem 0 1rem}
@media (max-width:32rem){main{padding:.75rem}dl{grid-template-columns:1fr}dt{margin-top:.3rem}}
";

impl Display for View<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let facts = self.facts;
        let title = match facts.admitted {
            true => format!("mTLS: hello, {}", facts.identity),
            false => format!("mTLS: 403 for {}", facts.identity),
        };
        writeln!(
            f,
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"color-scheme\" content=\"light dark\">\n\
             <title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<main>",
            escape(&title)
        )?;
        self.header(f)?;
        f.write_str(
            "<section id=\"steps\">\n<h2>The handshake of this connection, step by step</h2>\n\
             <ol class=\"steps\">\n",
        )?;
        self.step_connects(f)?;
        self.step_server_chain(f)?;
        self.step_client_verifies(f)?;
        self.step_request(f)?;
        self.step_client_cert(f)?;
        self.step_server_verifies(f)?;
        self.step_authorizes(f)?;
        f.write_str("</ol>\n</section>\n")?;
        self.data(f)?;
        self.failures(f)?;
        writeln!(
            f,
            "<footer>This page describes one connection: from {} to {}, set up at {}. \
             A browser keeps a connection open and reuses it, so reloading may show the same \
             one again. Curl and the <code>client</code> program get the plain-text answer; \
             this page is for requests that prefer <code>text/html</code>.</footer>\n\
             </main>\n</body>\n</html>",
            escape(&facts.peer.to_string()),
            escape(
                &facts
                    .local
                    .map_or_else(|| "the server".into(), |a| a.to_string())
            ),
            escape(&format_time(facts.at)),
        )
    }
}

impl View<'_> {
    /// Who the server thinks it is talking to, why, and what it answers.
    fn header(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let facts = self.facts;
        writeln!(
            f,
            "<header>\n<p class=\"who\">Mutual TLS, seen from the server</p>\n\
             <h1 id=\"identity\">The server is talking to {}</h1>",
            escape(&facts.identity)
        )?;
        match &facts.client.leaf {
            Some(leaf) => {
                let issuer = anchor_for(facts).map_or(leaf.issuer.as_str(), short_name);
                writeln!(
                    f,
                    "<p>Why: the client presented a certificate for <b>{}</b> that chains \
                     to <b>{}</b>, a CA this server trusts, and proved it holds the certificate's \
                     private key; the server checked both. The name above is {} \
                     (steps 5 and 6).</p>",
                    escape(short_name(leaf)),
                    escape(issuer),
                    name_source(leaf),
                )?;
            }
            None => f.write_str(
                "<p>Why: the client's certificate passed the handshake's checks, but this \
                 server cannot describe it (it does not parse here), so it calls it \
                 \"unknown\".</p>\n",
            )?,
        }
        let class = if facts.admitted {
            "verdict"
        } else {
            "verdict denied"
        };
        let status = if facts.admitted {
            "200 OK"
        } else {
            "403 Forbidden"
        };
        writeln!(
            f,
            "<div class=\"{class}\" id=\"answer\"><p><b>{status}</b></p><pre><code>{}</code></pre>\
             <p>{}</p></div>\n</header>",
            escape(facts.answer.trim_end()),
            match facts.admitted {
                true =>
                    "Admitted: every request on this connection gets this answer (as text for curl and the client).",
                false =>
                    "Not admitted: the handshake succeeded, so the refusal is an HTTP answer the client can read, not a TLS alert.",
            }
        )
    }

    /// Step 1: the connection, and what the handshake settled.
    fn step_connects(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let facts = self.facts;
        let r = &facts.report;
        step_open(f, 1, "The client connects")?;
        writeln!(
            f,
            "<p>The client at <code>{}</code> opened a TCP connection and sent its ClientHello: \
             the TLS versions, cipher suites and key shares it supports, the protocols it speaks \
             (ALPN) and the name of the server it wants (SNI). The server chose:</p>\n<dl>",
            escape(&facts.peer.to_string())
        )?;
        row_code(f, "TLS version", &r.version, version_words(&r.version))?;
        row_code(
            f,
            "Cipher suite",
            &r.cipher_suite,
            &suite_words(&r.cipher_suite),
        )?;
        row_code(
            f,
            "Key exchange",
            &r.key_exchange,
            key_exchange_words(&r.key_exchange, r.resumed),
        )?;
        let alpn = r.alpn.as_deref().unwrap_or("none");
        row_code(f, "ALPN", alpn, alpn_words(r.alpn.as_deref()))?;
        match &r.sni {
            Some(sni) => row_code(f, "SNI", sni, "the name the client asked for")?,
            None => row_code(
                f,
                "SNI",
                "none",
                "the client sent no name (browsers send none for an IP address)",
            )?,
        }
        row_code(
            f,
            "Resumed",
            if r.resumed { "yes" } else { "no" },
            match r.resumed {
                true => {
                    "this session resumes an earlier one: no certificates are exchanged (steps 2 to 5 were done in that earlier handshake)"
                }
                false => "a full handshake, with certificates",
            },
        )?;
        f.write_str("</dl>\n")?;
        step_close(f)
    }

    /// Step 2: the server's chain, as it sends it.
    fn step_server_chain(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let facts = self.facts;
        let m = &facts.material;
        let tls13 = facts.report.version == "TLSv1.3";
        step_open(f, 2, "The server presents its chain")?;
        let count = m.server_chain.len();
        if facts.report.resumed {
            f.write_str(
                "<p>Not on this connection: the session resumes an earlier one, in which the \
                 client received and checked the server's chain. Both sides prove instead \
                 that they hold the earlier session's secret. In a full handshake the server \
                 sends:</p>\n",
            )?;
        } else {
            writeln!(
                f,
                "<p>The server sent {} from <code>{}</code>, leaf first ({}), then {}.</p>",
                plural(count, "certificate"),
                escape(&m.source.cert.display().to_string()),
                match tls13 {
                    true => "already encrypted: TLS 1.3 encrypts everything after the ServerHello",
                    false => "in the clear: TLS 1.2 sends certificates before encryption starts",
                },
                match tls13 {
                    true =>
                        "signed the handshake so far with the leaf's private key (CertificateVerify), proving it holds that key",
                    false =>
                        "signed its key-exchange parameters with the leaf's private key (ServerKeyExchange), proving it holds that key",
                },
            )?;
        }
        for (i, (_, cert)) in m.server_chain.iter().enumerate() {
            cert_block(f, i, cert)?;
        }
        match m.server_chain.last() {
            Some((_, last)) if last.self_signed => f.write_str(
                "<p>The last one is a self-signed CA certificate: sending it changes nothing, \
                 since a client trusts only the CAs it already has.</p>\n",
            )?,
            _ => f.write_str(
                "<p>The CA's own certificate is not sent: the client must already have it, \
                 as a CA it trusts.</p>\n",
            )?,
        }
        step_close(f)
    }

    /// Step 3: what the client had to check (the server only sees that it went on).
    fn step_client_verifies(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let facts = self.facts;
        step_open(f, 3, "The client verifies it")?;
        if facts.report.resumed {
            f.write_str(
                "<p>Nothing to verify on this connection: the client checked the server's \
                 chain in the handshake this session resumes.</p>\n",
            )?;
            return step_close(f);
        }
        f.write_str(
            "<p>The server cannot watch this step, only its outcome: the client went on with \
             the handshake, so it accepted the chain. (A browser that does not trust it shows \
             a warning instead, and goes on only if its user insists.) What it had to check:</p>\n\
             <ul class=\"checks\">\n",
        )?;
        if let Some((der, leaf)) = facts.material.server_chain.first() {
            writeln!(
                f,
                "<li>that the chain leads to a CA it trusts: the leaf was issued by <b>{}</b>, \
                 and the root CA at the top of the chain (the demo's <code>ca.crt</code>) must \
                 be among the CAs the client trusts;</li>",
                escape(&leaf.issuer)
            )?;
            writeln!(
                f,
                "<li>that each certificate is current: the leaf is valid from {} to {}{};</li>",
                escape(&format_time(leaf.not_before)),
                escape(&format_time(leaf.not_after)),
                if leaf.is_current(facts.at) {
                    ""
                } else {
                    " (<span class=\"bad\">not now</span>: the client accepted it anyway)"
                },
            )?;
            match &facts.report.sni {
                Some(sni) => {
                    let named = crate::tls::names_host(der, sni);
                    writeln!(
                        f,
                        "<li>that it names the server the client asked for: <code>{}</code>; \
                         the certificate names {}{};</li>",
                        escape(sni),
                        escape(&leaf.sans_text()),
                        if named {
                            ""
                        } else {
                            " (<span class=\"bad\">not that name</span>: the client accepted it anyway)"
                        },
                    )?;
                }
                None => writeln!(
                    f,
                    "<li>that it names the address the client dialed (it sent no name): the \
                     certificate names {};</li>",
                    escape(&leaf.sans_text())
                )?,
            }
            writeln!(
                f,
                "<li>that it is meant for a server: its extended key usage is {}.</li>",
                escape(&leaf.ekus_text())
            )?;
        }
        f.write_str("</ul>\n")?;
        step_close(f)
    }

    /// Step 4: the CertificateRequest, and the CA names in it.
    fn step_request(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let facts = self.facts;
        let verifier = &facts.material.tls.verifier;
        step_open(
            f,
            4,
            "The server asks for a certificate, naming the CAs it accepts",
        )?;
        if facts.report.resumed {
            f.write_str(
                "<p>Not asked again: the resumed session carries the client certificate of \
                 the earlier handshake. The server asks for one in every full handshake, \
                 naming:</p>\n",
            )?;
        } else {
            writeln!(
                f,
                "<p>The server sent a CertificateRequest: a certificate is {}. It named the \
                 CAs it accepts, the subjects of the certificates in <code>{}</code>:</p>",
                match verifier.client_auth_mandatory() {
                    true =>
                        "required (without one the handshake fails: that is what makes it mutual TLS)",
                    false => "welcome but optional",
                },
                escape(&facts.material.source.ca.display().to_string()),
            )?;
        }
        f.write_str("<ul>\n")?;
        for name in verifier.root_hint_subjects() {
            let text = X509Name::from_der(name.as_ref())
                .map(|(_, n)| n.to_string())
                .unwrap_or_else(|_| "(a name that does not parse)".into());
            writeln!(f, "<li><code>{}</code></li>", escape(&text))?;
        }
        f.write_str(
            "</ul>\n<p>This is what a browser's certificate picker goes by: it offers only the \
             certificates it holds that were issued under these names, and asks its user to \
             choose one (or chooses by policy).</p>\n",
        )?;
        step_close(f)
    }

    /// Step 5: the client's certificate, and its proof of the key.
    fn step_client_cert(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let facts = self.facts;
        let tls13 = facts.report.version == "TLSv1.3";
        step_open(
            f,
            5,
            "The client presents its certificate and proves it holds the key",
        )?;
        if facts.report.resumed {
            writeln!(
                f,
                "<p>Not on this connection: the resumed session carries the {} of the earlier \
                 handshake, where the client also signed with its key; holding that session's \
                 secret now stands in for the signature.</p>",
                plural(facts.sent, "certificate"),
            )?;
        } else {
            writeln!(
                f,
                "<p>The client sent {} ({}) and signed the handshake so far with its leaf's \
                 private key (CertificateVerify); the server checked that signature with the \
                 public key in the certificate{}.</p>",
                plural(facts.sent, "certificate"),
                match tls13 {
                    true => "encrypted: in TLS 1.3 only the two ends see who the client is",
                    false =>
                        "in the clear: in TLS 1.2 anyone on the path can read who the client is",
                },
                facts
                    .client
                    .leaf
                    .as_ref()
                    .map(|l| format!(" ({})", escape(&l.key)))
                    .unwrap_or_default(),
            )?;
        }
        match &facts.client.leaf {
            Some(leaf) => cert_block(f, 0, leaf)?,
            None => f.write_str(
                "<p>Its leaf does not parse here, so it is not described; the handshake's \
                 verifier accepted it.</p>\n",
            )?,
        }
        for (i, cert) in &facts.client.path {
            cert_block(f, *i, cert)?;
        }
        if facts.client.left_out > 0 {
            writeln!(
                f,
                "<p>It also sent {} that the path from its leaf to this server's CA does not \
                 need (a copy of the CA's own certificate, say: the server uses its own), or \
                 that does not parse: not shown.</p>",
                plural(facts.client.left_out, "more certificate"),
            )?;
        }
        step_close(f)
    }

    /// Step 6: the checks the server's verifier ran, and only those.
    fn step_server_verifies(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let facts = self.facts;
        let m = &facts.material;
        step_open(f, 6, "The server verifies it")?;
        writeln!(
            f,
            "<p>{} at {}. Each check below passed, or the handshake would have ended with an \
             alert instead of this page:</p>\n<ul class=\"checks\">",
            match facts.report.resumed {
                true =>
                    "rustls restores a resumed session's chain without checking it, so this server verified it again itself, with its current CA and CRLs",
                false => "The server's verifier (webpki, inside rustls) checked the client's chain",
            },
            escape(&format_time(facts.at)),
        )?;
        let Some(leaf) = &facts.client.leaf else {
            f.write_str(
                "<li><span class=\"ok\">passed</span> every check of the verifier (the \
                 certificate cannot be described here).</li>\n</ul>\n",
            )?;
            return step_close(f);
        };
        // The path: the leaf, the certificates that link it, the trust anchor.
        let mut links: Vec<String> = vec![short_name(leaf).to_string()];
        links.extend(
            facts
                .client
                .path
                .iter()
                .map(|(_, c)| short_name(c).to_string()),
        );
        let anchor = anchor_for(facts);
        links.push(anchor.map_or_else(|| "a CA it trusts".to_string(), |ca| short_name(ca).into()));
        let path = links
            .iter()
            .map(|l| format!("<b>{}</b>", escape(l)))
            .collect::<Vec<_>>()
            .join(" &larr; signed by ");
        writeln!(
            f,
            "<li><span class=\"ok\">&#10003; chains to the CA</span>: {path}, each signature \
             checked with the public key of the certificate above it; the CA is a trust anchor \
             from <code>{}</code>.</li>",
            escape(&m.source.ca.display().to_string())
        )?;
        writeln!(
            f,
            "<li><span class=\"ok\">&#10003; current</span>: every certificate on the path was \
             valid then; the client's from {} to {}.</li>",
            escape(&format_time(leaf.not_before)),
            escape(&format_time(leaf.not_after)),
        )?;
        let usage = if leaf.ext_key_usage == [Eku::ClientAuth] {
            "its extended key usage is clientAuth".to_string()
        } else if leaf.has_eku(&Eku::ClientAuth) {
            format!(
                "its extended key usage names clientAuth, among {}",
                escape(&leaf.ekus_text())
            )
        } else if leaf.ext_key_usage.is_empty() {
            "it has no extended key usage extension, which webpki accepts for any use".into()
        } else {
            format!("its extended key usage is {}", escape(&leaf.ekus_text()))
        };
        writeln!(
            f,
            "<li><span class=\"ok\">&#10003; meant for a client</span>: {usage}; and it is a \
             leaf, not a CA ({}).</li>",
            match leaf.ca {
                Some(true) => "basicConstraints says CA:TRUE",
                Some(false) => "basicConstraints CA:FALSE",
                None => "no basicConstraints",
            }
        )?;
        if m.crls.is_empty() {
            writeln!(
                f,
                "<li><span class=\"skip\">&#8212; revocation not checked</span>: no CRL is \
                 loaded, so a revoked certificate would pass too. Start the server with \
                 <code>{}</code> to check it.</li>",
                escape(&self.cmd.server("--crl FILE"))
            )?;
        } else {
            let lists = m
                .crls
                .iter()
                .map(|c| {
                    format!(
                        "<code>{}</code> from {} ({} revoked, next update {})",
                        escape(&c.path.display().to_string()),
                        escape(&c.issuer),
                        c.revoked,
                        escape(&c.next_update.map_or_else(|| "not set".into(), format_time)),
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            writeln!(
                f,
                "<li><span class=\"ok\">&#10003; not revoked</span>: each certificate on the \
                 path was looked up in its CA's revocation list, and a list past its next \
                 update would have failed the check. Loaded: {lists}.</li>"
            )?;
        }
        f.write_str("</ul>\n")?;
        step_close(f)
    }

    /// Step 7: the policy's decision.
    fn step_authorizes(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let facts = self.facts;
        step_open(f, 7, "The server authorizes the identity")?;
        write!(
            f,
            "<p>Authentication (steps 5 and 6) proved who the client is: <b>{}</b>. \
             Authorization decides whether that identity may come in.</p>\n<p id=\"decision\">",
            escape(&facts.identity)
        )?;
        match &facts.decision {
            Decision::Open => write!(
                f,
                "<span class=\"ok\">Admitted</span>: no <code>--allow-*</code> rule is set, so \
                 every client the CA vouches for is admitted. To admit only some, start the \
                 server with a rule such as <code>{}</code>.",
                escape(
                    &self
                        .cmd
                        .server(&format!("--allow-uri {}", ClientId::A.uri()))
                )
            )?,
            Decision::Admitted { rule, matched } => {
                let (flag, value, what) = rule_parts(rule);
                write!(
                    f,
                    "<span class=\"ok\">Admitted</span> by the rule <code>{} {}</code>, \
                     matching <code>{}</code>, {what}.",
                    flag,
                    escape(&shell_word(value)),
                    escape(matched)
                )?;
            }
            Decision::Denied { why, .. } => write!(
                f,
                "<span class=\"bad\">Denied</span>: {}. The server answers every request on \
                 this connection with 403 Forbidden and then closes it; which rules it has \
                 stays in its log.",
                escape(&why.to_string())
            )?,
        }
        f.write_str("</p>\n")?;
        if facts.decision.admitted() && !facts.admitted {
            writeln!(
                f,
                "<p><span class=\"bad\">Refused all the same</span>: its identity cannot be \
                 forwarded to the application behind this server, so the server answers 403 \
                 itself: <code>{}</code></p>",
                escape(facts.answer.trim_end())
            )?;
        }
        step_close(f)
    }

    /// Then: encrypted data.
    fn data(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let facts = self.facts;
        let r = &facts.report;
        writeln!(
            f,
            "<section id=\"data\">\n<h2>Then: encrypted data</h2>\n<p>Everything after the \
             handshake, this page included, travels as {} records over {}, encrypted and \
             authenticated with {}. The answer was <b>{}</b>.</p>\n</section>",
            escape(alpn_words(r.alpn.as_deref())),
            escape(&r.version),
            escape(&r.cipher_suite),
            if facts.admitted {
                "200 OK"
            } else {
                "403 Forbidden"
            },
        )
    }

    /// The commands that show each way this can fail.
    fn failures(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let cmd = &self.cmd;
        let b = ClientId::B;
        let b_stem = Role::Client(b).stem();
        f.write_str(
            "<section id=\"try\">\n<h2>Try the failures</h2>\n<p>Each command changes one \
             thing; restart the server with the flag shown (and any you started it with), \
             then run the client.</p>\n<ul>\n",
        )?;
        failure(
            f,
            "No certificate",
            &[cmd.client("--no-cert")],
            "The server ends the handshake: alert certificate_required (TLS 1.3). In a \
             browser, cancel the certificate picker: Chromium shows \
             <code>ERR_BAD_SSL_CLIENT_AUTH_CERT</code> (or <code>ERR_SOCKET_NOT_CONNECTED</code> \
             when the alert closed the connection before Chromium used it).",
        )?;
        failure(
            f,
            "Verified, but not admitted",
            &[
                cmd.server(&format!("--allow-uri {}", ClientId::A.uri())),
                cmd.client("-c b"),
            ],
            &format!(
                "{} passes every check of step 6 and is refused at step 7: 403 Forbidden.",
                escape(b.common_name())
            ),
        )?;
        failure(
            f,
            "Revoked",
            &[
                cmd.certificate(&format!("revoke {b_stem}")),
                cmd.server(&format!("--crl {}", cmd.word(&cmd.dir.crl()))),
                cmd.client("-c b"),
            ],
            &format!(
                "The handshake fails: alert certificate_revoked. <code>{}</code> gives it a \
                 new certificate afterwards.",
                escape(&cmd.certificate(&format!("renew {b_stem}")))
            ),
        )?;
        failure(
            f,
            "Expired, another CA, the wrong usage, a CA as a client",
            &[cmd.certificate("lab")],
            "Mints, in the lab folder, certificates that are each wrong in one way, and prints \
             the command to try each and what each side will say.",
        )?;
        f.write_str("</ul>\n</section>\n")
    }
}

/// One way to fail: a title, the commands, and what happens (`says` is HTML, written here).
fn failure(f: &mut Formatter<'_>, title: &str, lines: &[String], says: &str) -> fmt::Result {
    write!(f, "<li><p><b>{}</b></p><pre><code>", escape(title))?;
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            f.write_str("\n")?;
        }
        write!(f, "{}", escape(line))?;
    }
    writeln!(f, "</code></pre><p>{says}</p></li>")
}

/// How the user runs the programs against this server: the folder and URL flags they need
/// beyond the defaults.
struct Commands {
    dir: CertsDir,
    certs_flag: String,
    url_flag: String,
    addr_flag: String,
}

impl Commands {
    fn for_connection(facts: &Facts) -> Self {
        let dir = match facts.material.source.ca.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => ".".into(),
        };
        let certs_flag = match dir == Path::new(DEFAULT_DIR) {
            true => String::new(),
            false => format!(" --certs {}", shell_word(&dir.display().to_string())),
        };
        let local = facts.local;
        let host = match (&facts.report.sni, local) {
            (Some(sni), _) => sni.clone(),
            (None, Some(addr)) if addr.is_ipv6() => format!("[{}]", addr.ip()),
            (None, Some(addr)) => addr.ip().to_string(),
            (None, None) => "localhost".into(),
        };
        let url = format!(
            "https://{host}:{}/",
            local.map_or(8443, |a: SocketAddr| a.port())
        );
        let url_flag = match url == DEFAULT_URL {
            true => String::new(),
            false => format!(" --url {}", shell_word(&url)),
        };
        let addr_flag = match local {
            Some(addr) if addr.to_string() != "127.0.0.1:8443" => {
                format!(" --addr {}", shell_word(&addr.to_string()))
            }
            _ => String::new(),
        };
        Self {
            dir: CertsDir::new(dir),
            certs_flag,
            url_flag,
            addr_flag,
        }
    }

    fn client(&self, args: &str) -> String {
        Program::Client.command(&format!("{args}{}{}", self.certs_flag, self.url_flag))
    }

    fn server(&self, args: &str) -> String {
        Program::Server.command(&format!("{args}{}{}", self.certs_flag, self.addr_flag))
    }

    fn certificate(&self, args: &str) -> String {
        Program::Certificate.command(&format!("{args}{}", self.certs_flag))
    }

    fn word(&self, path: &Path) -> String {
        shell_word(&path.display().to_string())
    }
}

/// `text` as one word of a POSIX shell command: as it is when it is plain, otherwise in
/// single quotes.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:+,=@".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

fn step_open(f: &mut Formatter<'_>, n: u8, title: &str) -> fmt::Result {
    writeln!(
        f,
        "<li id=\"step-{n}\">\n<h3><span class=\"n\">{n}</span>{}</h3>",
        escape(title)
    )
}

fn step_close(f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str("</li>\n")
}

/// A `<dt>`/`<dd>` row: `value` as code, then words about it.
fn row_code(f: &mut Formatter<'_>, name: &str, value: &str, words: &str) -> fmt::Result {
    writeln!(
        f,
        "<dt>{}</dt><dd><code>{}</code> &#8212; {}</dd>",
        escape(name),
        escape(value),
        escape(words)
    )
}

/// One certificate: who, issued by whom, for what, until when.
fn cert_block(f: &mut Formatter<'_>, index: usize, c: &CertInfo) -> fmt::Result {
    writeln!(
        f,
        "<div class=\"cert\"><p>{index}: {}</p>\n<dl>",
        escape(short_name(c))
    )?;
    let rows = [
        ("subject", c.subject.clone()),
        ("issuer", c.issuer.clone()),
        ("names (SAN)", c.sans_text()),
        (
            "valid",
            format!(
                "{} to {}",
                format_time(c.not_before),
                format_time(c.not_after)
            ),
        ),
        ("key", c.key.clone()),
        ("usage", c.ekus_text()),
        ("SHA-256", c.fingerprint()),
    ];
    for (name, value) in rows {
        writeln!(f, "<dt>{name}</dt><dd><code>{}</code></dd>", escape(&value))?;
    }
    f.write_str("</dl></div>\n")
}

/// A certificate's common name, or its whole subject without one.
fn short_name(c: &CertInfo) -> &str {
    c.common_name.as_deref().unwrap_or(&c.subject)
}

/// What the identity is made of, for "the name above is ...".
fn name_source(leaf: &CertInfo) -> &'static str {
    match (leaf.common_names.is_empty(), leaf.uris().next().is_some()) {
        (false, true) => "the certificate's common name, with its URI SAN",
        (false, false) => "the certificate's common name",
        (true, true) => "the certificate's subject, with its URI SAN",
        (true, false) => "the certificate's subject",
    }
}

/// The trust anchor the client's path ends at: the CA whose subject issued its last link.
fn anchor_for(facts: &Facts) -> Option<&CertInfo> {
    let last = facts
        .client
        .path
        .last()
        .map(|(_, c)| c)
        .or(facts.client.leaf.as_ref())?;
    facts
        .material
        .cas
        .iter()
        .find(|ca| ca.subject == last.issuer)
}

/// A rule as its flag, its value, and what in a certificate it looks at.
fn rule_parts(rule: &Rule) -> (&'static str, &str, &'static str) {
    match rule {
        Rule::Uri(u) => ("--allow-uri", u, "its URI SAN"),
        Rule::Dns(d) => ("--allow-dns", d, "a DNS SAN"),
        Rule::Cn(c) => ("--allow-cn", c, "its subject's common name"),
    }
}

/// `n thing` or `n things`.
fn plural(n: usize, thing: &str) -> String {
    match n {
        1 => format!("1 {thing}"),
        n => format!("{n} {thing}s"),
    }
}

fn version_words(version: &str) -> &'static str {
    match version {
        "TLSv1.3" => {
            "the current version: one round trip, and everything after the ServerHello is encrypted, certificates included"
        }
        "TLSv1.2" => "the previous version: certificates travel in the clear",
        _ => "the version both sides agreed on",
    }
}

fn suite_words(suite: &str) -> String {
    let aead = if suite.contains("AES_128_GCM") {
        "AES-128 in GCM mode"
    } else if suite.contains("AES_256_GCM") {
        "AES-256 in GCM mode"
    } else if suite.contains("CHACHA20_POLY1305") {
        "ChaCha20-Poly1305"
    } else {
        return "the record protection both sides agreed on".into();
    };
    format!("every record is encrypted and authenticated with {aead} (an AEAD cipher)")
}

fn key_exchange_words(group: &str, resumed: bool) -> &'static str {
    match group.to_ascii_lowercase().as_str() {
        "x25519mlkem768" => {
            "a hybrid post-quantum key exchange: X25519 (elliptic-curve Diffie-Hellman) and ML-KEM-768 (a post-quantum key encapsulation) together, so the keys stay secret unless both are broken, even by a future quantum computer"
        }
        "secp256r1mlkem768" => {
            "a hybrid post-quantum key exchange: P-256 elliptic-curve Diffie-Hellman and ML-KEM-768 together, so the keys stay secret unless both are broken"
        }
        "mlkem512" | "mlkem768" | "mlkem1024" => {
            "a post-quantum key encapsulation (ML-KEM) on its own"
        }
        "x25519" => {
            "elliptic-curve Diffie-Hellman on Curve25519: fresh keys for this connection (forward secrecy), though not safe against a future quantum computer"
        }
        "secp256r1" | "secp384r1" | "secp521r1" => {
            "elliptic-curve Diffie-Hellman on a NIST curve: fresh keys for this connection (forward secrecy), though not safe against a future quantum computer"
        }
        "none" if resumed => {
            "none: the resumed session derives its keys from the earlier session's secret"
        }
        _ => "the key exchange both sides agreed on",
    }
}

fn alpn_words(alpn: Option<&str>) -> &'static str {
    match alpn {
        Some("h2") => "HTTP/2",
        Some("http/1.1") => "HTTP/1.1",
        Some(_) => "the protocol both sides agreed on",
        None => "HTTP/1.1 (no protocol was agreed by ALPN)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certinfo::San;
    use crate::pki::{CertAuthority, KeyType, LeafSpec, Usage, Validity, demo_subject, parse_san};
    use crate::server::reload::TlsSource;
    use crate::tls::ServerPolicy;

    fn accept(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::ACCEPT, HeaderValue::from_str(v).expect("value"));
        }
        headers
    }

    #[test]
    fn browsers_get_html_and_curl_and_our_client_get_text() {
        let chromium = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,\
                        image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";
        let firefox = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(prefers_html(&accept(&[chromium])));
        assert!(prefers_html(&accept(&[firefox])));
        assert!(prefers_html(&accept(&["text/html"])));
        assert!(!prefers_html(&accept(&["*/*"])), "curl");
        assert!(!prefers_html(&HeaderMap::new()), "no Accept: text");
        assert!(!prefers_html(&accept(&["text/*"])), "a tie keeps text");
        assert!(!prefers_html(&accept(&["text/plain"])));
        assert!(!prefers_html(&accept(&["text/html;q=0.5, text/plain"])));
        assert!(prefers_html(&accept(&["text/plain;q=0.4", "text/html"])));
        assert!(
            !prefers_html(&accept(&["image/avif,image/webp,*/*;q=0.8"])),
            "a browser's image request"
        );
    }

    #[test]
    fn the_most_specific_range_decides_and_bad_weights_are_ignored() {
        // text/html is named exactly at 0.1, so */* at 1 does not speak for it.
        assert!(!prefers_html(&accept(&["*/*, text/html;q=0.1"])));
        // A range with other parameters is narrower than the type: it does not count.
        assert!(!prefers_html(&accept(&["text/html;level=1, */*"])));
        // Weights that are not qvalues drop their element.
        assert!(!prefers_html(&accept(&["text/html;q=2, */*"])));
        assert!(!prefers_html(&accept(&["text/html;q=0.0001, */*"])));
        assert!(!prefers_html(&accept(&["text/html;q=0"])));
        assert_eq!(qvalue("0.8"), Some(800));
        assert_eq!(qvalue("1.000"), Some(1000));
        assert_eq!(qvalue("1.5"), None);
        assert_eq!(qvalue("0.-1"), None);
    }

    #[test]
    fn escaping_leaves_no_markup_and_no_control_characters() {
        let hostile = "<script>alert('x')</script> & \"q\" \u{202e}evil\u{0}";
        let shown = escape(hostile).to_string();
        assert_eq!(
            shown,
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot; \\u{202e}evil\\u{0}"
        );
        assert_eq!(escape("Client A").to_string(), "Client A");
        assert_eq!(shell_word("certs"), "certs");
        assert_eq!(shell_word("my certs/it's"), r"'my certs/it'\''s'");
    }

    /// TLS material from a fresh CA and server certificate, written to `dir`.
    fn material(dir: &Path) -> Arc<TlsMaterial> {
        let ca = CertAuthority::new_root(
            demo_subject("CA Company", "CA"),
            KeyType::EcdsaP256,
            Validity::days(2),
        )
        .expect("ca");
        let server = ca
            .issue(&LeafSpec {
                subject: demo_subject("Server Company", "localhost"),
                sans: vec![parse_san("DNS:localhost").expect("san")],
                usage: Usage::Server,
                key_type: KeyType::EcdsaP256,
                validity: Validity::days(1),
            })
            .expect("server");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write");
            path
        };
        let source = TlsSource {
            ca: write("ca.crt", &ca.cert_pem),
            cert: write("server.crt", &server.cert_pem),
            key: write("server.key", &server.key_pem),
            crls: Vec::new(),
            policy: ServerPolicy::default(),
            upstream: None,
        };
        Arc::new(TlsMaterial::load(&source).expect("load"))
    }

    fn facts(material: Arc<TlsMaterial>, leaf: CertInfo, decision: Decision) -> Facts {
        let identity = leaf.identity();
        let admitted = decision.admitted();
        Facts {
            peer: "127.0.0.1:50000".parse().expect("addr"),
            local: "127.0.0.1:8443".parse().ok(),
            at: OffsetDateTime::now_utc(),
            report: TlsReport {
                version: "TLSv1.3".into(),
                cipher_suite: "TLS13_AES_128_GCM_SHA256".into(),
                key_exchange: "X25519MLKEM768".into(),
                handshake_complete: true,
                resumed: false,
                alpn: Some("h2".into()),
                sni: Some("localhost".into()),
                peer_chain: Vec::new(),
            },
            client: Arc::new(PeerPath {
                leaf: Some(leaf),
                path: Vec::new(),
                left_out: 0,
            }),
            sent: 1,
            answer: match admitted {
                true => format!("hello, {identity}\n"),
                false => decision.forbidden_body(&identity),
            },
            identity,
            material,
            decision,
            admitted,
        }
    }

    #[test]
    fn names_from_the_client_certificate_are_escaped_everywhere_on_the_page() {
        let dir = tempfile::tempdir().expect("temp dir");
        let leaf = CertInfo {
            subject: "CN=<img src=x onerror=alert(1)>".into(),
            issuer: "C=Earth, ST=Asia, L=Mountain, O=CA Company, OU=Engineering, CN=CA".into(),
            common_name: Some("<img src=x onerror=alert(1)>".into()),
            common_names: vec!["<img src=x onerror=alert(1)>".into()],
            sans: vec![San::Uri("spiffe://mtls.demo/<script>x</script>".into())],
            ext_key_usage: vec![Eku::ClientAuth],
            ..crate::certinfo::tests_support::blank()
        };
        let page = View::new(&facts(material(dir.path()), leaf, Decision::Open)).to_string();
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<script"), "{page}");
        assert!(
            page.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{page}"
        );
        assert!(
            page.contains("spiffe://mtls.demo/&lt;script&gt;x&lt;/script&gt;"),
            "{page}"
        );
        // The page is self-contained: no script, nothing loaded from elsewhere.
        assert!(
            !page.contains("src=\"") && !page.contains("href="),
            "{page}"
        );
    }

    #[test]
    fn without_crls_the_page_says_revocation_was_not_checked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let leaf = CertInfo {
            ext_key_usage: vec![Eku::ClientAuth],
            ..crate::certinfo::tests_support::blank()
        };
        let page = View::new(&facts(material(dir.path()), leaf, Decision::Open)).to_string();
        assert!(page.contains("revocation not checked"), "{page}");
        assert!(!page.contains("not revoked"), "{page}");
    }

    #[test]
    fn a_denied_client_is_told_why_but_not_the_rules() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rule = Rule::uri("spiffe://mtls.demo/secret-rule").expect("rule");
        let leaf = CertInfo {
            ext_key_usage: vec![Eku::ClientAuth],
            ..crate::certinfo::tests_support::blank()
        };
        let decision =
            crate::server::policy::AccessPolicy { rules: vec![rule] }.decide(Some(&leaf));
        let page = View::new(&facts(material(dir.path()), leaf, decision)).to_string();
        assert!(page.contains("403 Forbidden"), "{page}");
        assert!(page.contains("Denied</span>: no rule matched"), "{page}");
        assert!(!page.contains("secret-rule"), "{page}");
    }
}
