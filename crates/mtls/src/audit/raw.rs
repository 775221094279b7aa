//! Hellos rustls will never send, and plain HTTP on the TLS port.
//!
//! rustls offers only TLS 1.2 and 1.3 with AEAD, forward-secret suites, so the clients a
//! server must refuse for their protocol are written by hand: one ClientHello offering
//! only TLS 1.0, only TLS 1.1, only suites without forward secrecy, or only CBC suites.
//! tls-parser frames the hello (record, handshake header, the hello's fields) and reads
//! the server's first record; the few extensions are written here, each commented. No
//! handshake is ever finished: the server's first answer is the whole finding. A
//! ServerHello means it agreed to talk that way; an alert or a close means it refused.

use std::time::Duration;

use tls_parser::{
    Serialize, TlsCipherSuite, TlsCipherSuiteID, TlsClientHelloContents, TlsCompressionID,
    TlsMessage, TlsMessageHandshake, TlsPlaintext, TlsRecordHeader, TlsRecordType, TlsVersion,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::probe::{ServerDid, USER_AGENT_VALUE};
use crate::client::{self, Url};
use crate::explain::alert_name;

/// What a hand-made ClientHello offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Offer {
    /// TLS 1.0 only, with the suites TLS 1.0 clients offered.
    Tls10,
    /// TLS 1.1 only, likewise.
    Tls11,
    /// TLS 1.2 with only RSA and static-ECDH key exchange: a stolen server key later
    /// decrypts every recorded session.
    NonForwardSecret,
    /// TLS 1.2 with only CBC suites (forward-secret, but MAC-then-encrypt: Lucky13 and
    /// padding oracles).
    CbcOnly,
    /// TLS 1.2 with modern AEAD suites: not a case, evidence of what the server picks.
    Modern12,
}

// IANA cipher suite numbers, by family.
const ECDHE_ECDSA_AES128_CBC_SHA: u16 = 0xc009;
const ECDHE_ECDSA_AES256_CBC_SHA: u16 = 0xc00a;
const ECDHE_RSA_AES128_CBC_SHA: u16 = 0xc013;
const ECDHE_RSA_AES256_CBC_SHA: u16 = 0xc014;
const DHE_RSA_AES128_CBC_SHA: u16 = 0x0033;
const DHE_RSA_AES256_CBC_SHA: u16 = 0x0039;
const RSA_AES128_CBC_SHA: u16 = 0x002f;
const RSA_AES256_CBC_SHA: u16 = 0x0035;

const OLD_SUITES: &[u16] = &[
    ECDHE_ECDSA_AES128_CBC_SHA,
    ECDHE_ECDSA_AES256_CBC_SHA,
    ECDHE_RSA_AES128_CBC_SHA,
    ECDHE_RSA_AES256_CBC_SHA,
    DHE_RSA_AES128_CBC_SHA,
    DHE_RSA_AES256_CBC_SHA,
    RSA_AES128_CBC_SHA,
    RSA_AES256_CBC_SHA,
];

const NON_FORWARD_SECRET: &[u16] = &[
    0x009c, // TLS_RSA_WITH_AES_128_GCM_SHA256
    0x009d, // TLS_RSA_WITH_AES_256_GCM_SHA384
    0x003c, // TLS_RSA_WITH_AES_128_CBC_SHA256
    0x003d, // TLS_RSA_WITH_AES_256_CBC_SHA256
    RSA_AES128_CBC_SHA,
    RSA_AES256_CBC_SHA,
    0xc02d, // TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256
    0xc02e, // TLS_ECDH_ECDSA_WITH_AES_256_GCM_SHA384
    0xc031, // TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256
    0xc032, // TLS_ECDH_RSA_WITH_AES_256_GCM_SHA384
];

const CBC_ONLY: &[u16] = &[
    0xc023, // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256
    0xc024, // TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384
    0xc027, // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256
    0xc028, // TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384
    ECDHE_ECDSA_AES128_CBC_SHA,
    ECDHE_ECDSA_AES256_CBC_SHA,
    ECDHE_RSA_AES128_CBC_SHA,
    ECDHE_RSA_AES256_CBC_SHA,
    0x0067, // TLS_DHE_RSA_WITH_AES_128_CBC_SHA256
    0x006b, // TLS_DHE_RSA_WITH_AES_256_CBC_SHA256
    DHE_RSA_AES128_CBC_SHA,
    DHE_RSA_AES256_CBC_SHA,
];

const MODERN_12: &[u16] = &[
    0xc02b, // TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    0xc02c, // TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    0xcca9, // TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
    0xc02f, // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    0xc030, // TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
    0xcca8, // TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
];

impl Offer {
    /// The version in the hello: 0x0301 is TLS 1.0, 0x0302 TLS 1.1, 0x0303 TLS 1.2. With
    /// no supported_versions extension, this is the highest the client speaks.
    fn version(self) -> u16 {
        match self {
            Offer::Tls10 => 0x0301,
            Offer::Tls11 => 0x0302,
            _ => 0x0303,
        }
    }

    fn suites(self) -> &'static [u16] {
        match self {
            Offer::Tls10 | Offer::Tls11 => OLD_SUITES,
            Offer::NonForwardSecret => NON_FORWARD_SECRET,
            Offer::CbcOnly => CBC_ONLY,
            Offer::Modern12 => MODERN_12,
        }
    }

    /// What the hello offered, in words, for the report.
    pub fn describe(self) -> String {
        let n = self.suites().len();
        match self {
            Offer::Tls10 | Offer::Tls11 => format!(
                "a ClientHello for {} only, with the {n} suites such clients offered (AES-CBC \
                 with ECDHE, DHE and RSA key exchange)",
                version_name(self.version())
            ),
            Offer::NonForwardSecret => format!(
                "a TLS 1.2 ClientHello offering only {n} suites with RSA or static-ECDH key \
                 exchange (no forward secrecy)"
            ),
            Offer::CbcOnly => {
                format!("a TLS 1.2 ClientHello offering only {n} forward-secret CBC suites")
            }
            Offer::Modern12 => format!("a TLS 1.2 ClientHello offering {n} AEAD suites"),
        }
    }

    /// The suites the hello offered, by their IANA names.
    pub fn suite_names(self) -> Vec<String> {
        self.suites().iter().map(|id| suite_name(*id)).collect()
    }
}

/// A suite's IANA name, from tls-parser's table.
fn suite_name(id: u16) -> String {
    TlsCipherSuite::from_id(id)
        .map(|s| s.name.to_string())
        .unwrap_or_else(|| format!("0x{id:04x}"))
}

fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSLv3".into(),
        0x0301 => "TLSv1.0".into(),
        0x0302 => "TLSv1.1".into(),
        0x0303 => "TLSv1.2".into(),
        0x0304 => "TLSv1.3".into(),
        other => format!("version 0x{other:04x}"),
    }
}

/// One extension: its type, then its body with a 16-bit length (RFC 8446 §4.2).
fn extension(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
}

/// A list of 16-bit values behind its 16-bit byte length.
fn u16_list(items: &[u16]) -> Vec<u8> {
    let mut out = ((items.len() * 2) as u16).to_be_bytes().to_vec();
    for item in items {
        out.extend_from_slice(&item.to_be_bytes());
    }
    out
}

/// The extensions every probe sends, so a refusal is about the version or suites alone.
fn extensions(offer: Offer, host: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(host) = host {
        // server_name (RFC 6066 §3): a list of one host_name (type 0).
        let name = host.as_bytes();
        let mut entry = vec![0u8];
        entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
        entry.extend_from_slice(name);
        let mut body = (entry.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(&entry);
        extension(&mut out, 0x0000, &body);
    }
    // supported_groups (RFC 8422 §5.1.1): x25519, secp256r1, secp384r1.
    extension(&mut out, 0x000a, &u16_list(&[0x001d, 0x0017, 0x0018]));
    // ec_point_formats (RFC 8422 §5.1.2): uncompressed only.
    extension(&mut out, 0x000b, &[0x01, 0x00]);
    if offer.version() >= 0x0303 {
        // signature_algorithms (RFC 5246 §7.4.1.4.1), TLS 1.2 only: without it a server
        // must assume SHA-1, which modern servers refuse for reasons of their own.
        let schemes = [
            0x0403, // ecdsa_secp256r1_sha256
            0x0503, // ecdsa_secp384r1_sha384
            0x0807, // ed25519
            0x0804, // rsa_pss_rsae_sha256
            0x0805, // rsa_pss_rsae_sha384
            0x0806, // rsa_pss_rsae_sha512
            0x0401, // rsa_pkcs1_sha256
            0x0501, // rsa_pkcs1_sha384
            0x0601, // rsa_pkcs1_sha512
        ];
        extension(&mut out, 0x000d, &u16_list(&schemes));
    }
    // renegotiation_info (RFC 5746 §3.2), empty: a new connection that supports secure
    // renegotiation, as every client since 2010 says.
    extension(&mut out, 0xff01, &[0x00]);
    out
}

/// The ClientHello record for `offer`, framed by tls-parser.
pub(crate) fn client_hello(offer: Offer, host: Option<&str>) -> Result<Vec<u8>, String> {
    let mut random = [0u8; 32];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| "the random number generator failed")?;
    let ext = extensions(offer, host);
    let hello = TlsClientHelloContents {
        version: TlsVersion(offer.version()),
        random: &random,
        session_id: None,
        ciphers: offer
            .suites()
            .iter()
            .map(|id| TlsCipherSuiteID(*id))
            .collect(),
        comp: vec![TlsCompressionID(0)],
        ext: Some(&ext),
    };
    let record = TlsPlaintext {
        hdr: TlsRecordHeader {
            record_type: TlsRecordType::Handshake,
            // The record layer says TLS 1.0 for every first flight, as clients do.
            version: TlsVersion(0x0301),
            // Computed by the serializer.
            len: 0,
        },
        msg: vec![TlsMessage::Handshake(TlsMessageHandshake::ClientHello(
            hello,
        ))],
    };
    record
        .serialize()
        .map_err(|e| format!("cannot write the ClientHello: {e:?}"))
}

/// Sends the hello for `offer` and reads the server's first record.
pub(crate) async fn hello(target: &Url, offer: Offer, limit: Duration) -> ServerDid {
    let dns = target.host().parse::<std::net::IpAddr>().is_err();
    let bytes = match client_hello(offer, dns.then_some(target.host())) {
        Ok(b) => b,
        Err(detail) => return ServerDid::Broke { detail },
    };
    let mut tcp = match client::connect(target, limit).await {
        Ok(tcp) => tcp,
        Err(e) => return e.into(),
    };
    if let Err(e) = tcp.write_all(&bytes).await {
        return ServerDid::Broke {
            detail: format!("cannot send the ClientHello: {e}"),
        };
    }
    match tokio::time::timeout(limit, first_record(&mut tcp)).await {
        Ok(did) => did,
        Err(_) => ServerDid::TimedOut {
            phase: "the ClientHello",
            after: limit,
        },
    }
}

/// Reads one TLS record (a 5-byte header, then its body) and says what it was.
async fn first_record(tcp: &mut TcpStream) -> ServerDid {
    let mut header = [0u8; 5];
    if let Err(e) = tcp.read_exact(&mut header).await {
        return closed(e);
    }
    let looks_like_tls = (20..=24).contains(&header[0]) && header[1] == 3;
    if !looks_like_tls {
        return ServerDid::Garbled {
            detail: printable(&header),
        };
    }
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let mut body = vec![0u8; len];
    if let Err(e) = tcp.read_exact(&mut body).await {
        return closed(e);
    }
    judge_record(header[0], &body)
}

/// A record's content, as the server meant it.
fn judge_record(kind: u8, body: &[u8]) -> ServerDid {
    match TlsRecordType(kind) {
        TlsRecordType::Alert if body.len() >= 2 => ServerDid::RefusedInHandshake {
            alert: Some(alert_name(rustls::AlertDescription::from(body[1]))),
        },
        TlsRecordType::Handshake => match tls_parser::parse_tls_message_handshake(body) {
            Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ServerHello(sh)))) => {
                ServerDid::Hello {
                    version: version_name(sh.version.0),
                    suite: suite_name(sh.cipher.0),
                }
            }
            Ok((_, other)) => ServerDid::Garbled {
                detail: format!("a handshake message other than ServerHello: {other:?}"),
            },
            Err(e) => ServerDid::Garbled {
                detail: format!("a handshake record tls-parser cannot read ({e:?})"),
            },
        },
        other => ServerDid::Garbled {
            detail: format!("a {other:?} record first"),
        },
    }
}

/// The server closed, or reset, before answering: a refusal without an alert.
fn closed(e: std::io::Error) -> ServerDid {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
            ServerDid::RefusedInHandshake { alert: None }
        }
        _ => ServerDid::Broke {
            detail: e.to_string(),
        },
    }
}

/// A plain-HTTP `GET` on the TLS port, and what came back: HTTP (its status), a TLS alert,
/// a close, or something else.
pub(crate) async fn plain_http(target: &Url, limit: Duration) -> ServerDid {
    let mut tcp = match client::connect(target, limit).await {
        Ok(tcp) => tcp,
        Err(e) => return e.into(),
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT_VALUE}\r\nConnection: close\r\n\r\n",
        target.path(),
        target.authority()
    );
    if let Err(e) = tcp.write_all(request.as_bytes()).await {
        return closed(e);
    }
    let read = async {
        // The status line, or a TLS record header, is all that is judged.
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while got.len() < 4096 && !got.contains(&b'\n') {
            match tcp.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if got.is_empty() => return Err(e),
                Err(_) => break,
            }
            if got.first().is_some_and(|b| (20..=24).contains(b)) && got.len() >= 7 {
                break;
            }
        }
        Ok(got)
    };
    let got = match tokio::time::timeout(limit, read).await {
        Err(_) => {
            return ServerDid::TimedOut {
                phase: "the plain-HTTP request",
                after: limit,
            };
        }
        Ok(Err(e)) => match closed(e) {
            ServerDid::RefusedInHandshake { alert: None } => return ServerDid::Closed,
            other => return other,
        },
        Ok(Ok(got)) => got,
    };
    if got.is_empty() {
        return ServerDid::Closed;
    }
    if got.starts_with(b"HTTP/") {
        let status = String::from_utf8_lossy(&got)
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok());
        return match status {
            Some(status) => ServerDid::AnsweredPlain { status },
            None => ServerDid::Garbled {
                detail: printable(&got),
            },
        };
    }
    if got[0] == 21 && got.len() >= 7 {
        return judge_record(21, &got[5..7]);
    }
    ServerDid::Garbled {
        detail: printable(&got),
    }
}

/// The first bytes of an answer, printable.
fn printable(bytes: &[u8]) -> String {
    let text: String = bytes
        .iter()
        .take(40)
        .map(|b| match b {
            0x20..=0x7e => char::from(*b).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect();
    format!("\"{text}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellos_parse_back_with_the_offered_version_and_suites() {
        for offer in [
            Offer::Tls10,
            Offer::Tls11,
            Offer::NonForwardSecret,
            Offer::CbcOnly,
        ] {
            let bytes = client_hello(offer, Some("localhost")).expect("hello");
            let (rest, record) = tls_parser::parse_tls_plaintext(&bytes).expect("parses");
            assert!(rest.is_empty(), "{offer:?}: trailing bytes");
            let TlsMessage::Handshake(TlsMessageHandshake::ClientHello(hello)) = &record.msg[0]
            else {
                panic!("{offer:?}: not a ClientHello");
            };
            assert_eq!(hello.version.0, offer.version());
            let ids: Vec<u16> = hello.ciphers.iter().map(|c| c.0).collect();
            assert_eq!(ids, offer.suites());
        }
    }

    #[test]
    fn the_suite_families_are_what_their_names_say() {
        use tls_parser::{TlsCipherEncMode, TlsCipherKx};
        for id in NON_FORWARD_SECRET {
            let suite = TlsCipherSuite::from_id(*id).expect("known suite");
            assert!(
                matches!(suite.kx, TlsCipherKx::Rsa | TlsCipherKx::Ecdh),
                "{}",
                suite.name
            );
        }
        for id in CBC_ONLY {
            let suite = TlsCipherSuite::from_id(*id).expect("known suite");
            assert_eq!(suite.enc_mode, TlsCipherEncMode::Cbc, "{}", suite.name);
            assert!(
                matches!(suite.kx, TlsCipherKx::Ecdhe | TlsCipherKx::Dhe),
                "{}",
                suite.name
            );
        }
    }

    #[test]
    fn an_alert_record_is_a_refusal_named_by_its_alert() {
        assert_eq!(
            judge_record(21, &[2, 70]),
            ServerDid::RefusedInHandshake {
                alert: Some("protocol_version".into())
            }
        );
    }
}
