//! Behind a TCP load balancer (`--proxy-protocol`): the PROXY protocol header (HAProxy's,
//! version 1 or 2) that the balancer sends before the client's bytes, so that logs,
//! metrics, the forwarded headers and the browser page see the client's own address rather
//! than the balancer's.
//!
//! A header is believed only from the addresses in `--proxy-protocol-from`: anyone else
//! could claim any address with one. A connection from elsewhere is refused before a byte
//! is read; so is one from a trusted balancer that sends no valid header, or none within
//! the handshake timeout. Each refusal is logged with its reason and counted
//! (`mtls_proxy_protocol_refusals_total`), with one typed [`Refusal`] for both.
//!
//! The header is parsed by the `ppp` crate; this module only frames it: it peeks at what
//! has arrived and consumes exactly the header's bytes, so the TLS handshake (and the check
//! for plain HTTP before it) reads the stream from the client's first byte. A version 2
//! `LOCAL` header (the balancer's own connection, such as a health check) and a version 1
//! `UNKNOWN` one keep the balancer's address, as the specification says.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// An address range (`10.0.0.0/8`), as `--proxy-protocol-from` takes it.
pub use ipnet::IpNet;
use ppp::HeaderResult;
use ppp::PartialResult as _;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tracing::{debug, warn};

/// The longest header accepted: a version 1 header is at most 107 bytes; a version 2 one
/// carries its addresses and a few TLVs (AWS adds a VPC endpoint id, HAProxy a unique id).
const MAX_HEADER: usize = 4096;

/// Which peers may send a PROXY header (`--proxy-protocol-from`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyProtocol {
    /// The load balancers' address ranges.
    pub trusted: Vec<IpNet>,
}

impl ProxyProtocol {
    /// Whether `ip` is one of the load balancers (an IPv4 peer on a dual-stack socket,
    /// `::ffff:10.0.0.1`, counts as `10.0.0.1`).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// Reads the header `peer` must send within `limit` and returns the client's address
    /// (the peer's own for a LOCAL header); a refusal is logged here and returned for the
    /// caller to count and drop the connection.
    pub(super) async fn real_peer(
        &self,
        stream: &mut TcpStream,
        peer: SocketAddr,
        limit: Duration,
    ) -> Result<SocketAddr, Refusal> {
        let read = async {
            if !self.trusts(peer.ip()) {
                return Err(Refusal::Untrusted);
            }
            tokio::time::timeout(limit, read_header(stream))
                .await
                .unwrap_or(Err(Refusal::Timeout(limit)))
        };
        match read.await {
            Ok((Said::Client(client), version)) => {
                debug!(
                    peer.addr = %client,
                    proxy.addr = %peer,
                    proxy.version = version,
                    "PROXY header: the load balancer forwarded this client"
                );
                Ok(client)
            }
            Ok((Said::Own(what), version)) => {
                debug!(
                    peer.addr = %peer,
                    proxy.version = version,
                    proxy.command = what,
                    "PROXY header without a client address: served as the load balancer's own connection"
                );
                Ok(peer)
            }
            Err(refusal) => {
                warn!(
                    peer.addr = %peer,
                    reason = refusal.label(),
                    why = %refusal,
                    "refused before TLS (--proxy-protocol)"
                );
                Err(refusal)
            }
        }
    }
}

/// Parses a `--proxy-protocol-from` value: a range (`10.0.0.0/8`, `fd00::/8`) or one
/// address (`192.0.2.7`).
pub fn parse_range(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!(
                "{text:?} is not an address range: write CIDR (10.0.0.0/8, fd00::/8) or one \
                 address (192.0.2.7)"
            )
        })
}

/// Why a connection was refused before its TLS handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The peer is not in `--proxy-protocol-from`.
    Untrusted,
    /// A trusted peer began with something that is not a PROXY header.
    NoHeader {
        /// What it began with ("a TLS ClientHello", "plain HTTP").
        began: &'static str,
    },
    /// A trusted peer sent a header that does not parse.
    Malformed(String),
    /// No complete header within the handshake timeout.
    Timeout(Duration),
    /// The peer closed (or reset) the connection before a complete header.
    Closed,
}

impl Refusal {
    /// Every reason's label, for the metric.
    pub const LABELS: [&'static str; 5] = [
        "untrusted_source",
        "missing_header",
        "malformed_header",
        "timeout",
        "closed",
    ];

    /// The reason, as the log and the metric name it.
    pub fn label(&self) -> &'static str {
        let [untrusted, missing, malformed, timeout, closed] = Self::LABELS;
        match self {
            Refusal::Untrusted => untrusted,
            Refusal::NoHeader { .. } => missing,
            Refusal::Malformed(_) => malformed,
            Refusal::Timeout(_) => timeout,
            Refusal::Closed => closed,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Untrusted => f.write_str(
                "it is not one of the load balancers in --proxy-protocol-from, and with \
                 --proxy-protocol every connection must come through one; connect through the \
                 load balancer, or add its address to --proxy-protocol-from",
            ),
            Refusal::NoHeader { began } => write!(
                f,
                "the load balancer sent no PROXY protocol header: its connection began with \
                 {began}; configure it to send one (HAProxy: `send-proxy-v2` on the server \
                 line), or start the server without --proxy-protocol"
            ),
            Refusal::Malformed(why) => write!(f, "its PROXY protocol header is malformed: {why}"),
            Refusal::Timeout(after) => write!(
                f,
                "no complete PROXY protocol header arrived within {} (--handshake-timeout)",
                crate::format::format_duration(*after)
            ),
            Refusal::Closed => f.write_str(
                "the load balancer closed the connection before a complete PROXY protocol header",
            ),
        }
    }
}

/// What a header said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Said {
    /// The client's address, as the balancer saw it.
    Client(SocketAddr),
    /// The balancer's own connection (v2 LOCAL), or addresses it could not give (v1
    /// UNKNOWN, v2 UNSPEC or a Unix socket): the connection's own address stands.
    Own(&'static str),
}

/// Reads exactly one header: peeks at what has arrived, parses it, and consumes only the
/// header's bytes (all of them, while it is incomplete).
async fn read_header(stream: &mut TcpStream) -> Result<(Said, &'static str), Refusal> {
    let mut taken: Vec<u8> = Vec::new();
    let mut peeked = vec![0u8; MAX_HEADER];
    loop {
        let room = MAX_HEADER - taken.len();
        let n = match stream.peek(&mut peeked[..room]).await {
            Ok(0) | Err(_) => return Err(Refusal::Closed),
            Ok(n) => n,
        };
        let mut candidate = taken.clone();
        candidate.extend_from_slice(&peeked[..n]);
        let parsed = HeaderResult::parse(&candidate);
        if parsed.is_incomplete() {
            if candidate.len() >= MAX_HEADER {
                return Err(Refusal::Malformed(format!(
                    "no complete header within {MAX_HEADER} bytes"
                )));
            }
            // Every byte that arrived is part of the header: take it, and wait for more.
            let mut more = vec![0u8; n];
            stream
                .read_exact(&mut more)
                .await
                .map_err(|_| Refusal::Closed)?;
            taken.extend_from_slice(&more);
            continue;
        }
        let (said, version, len) = said(parsed, &candidate)?;
        let mut rest = vec![0u8; len.saturating_sub(taken.len())];
        stream
            .read_exact(&mut rest)
            .await
            .map_err(|_| Refusal::Closed)?;
        return Ok((said, version));
    }
}

/// What a complete parse says, the protocol version, and the header's length.
fn said(parsed: HeaderResult<'_>, bytes: &[u8]) -> Result<(Said, &'static str, usize), Refusal> {
    use ppp::{v1, v2};
    match parsed {
        HeaderResult::V1(Ok(h)) => {
            let said = match h.addresses {
                v1::Addresses::Tcp4(a) => {
                    Said::Client(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
                }
                v1::Addresses::Tcp6(a) => {
                    Said::Client(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
                }
                v1::Addresses::Unknown => Said::Own("UNKNOWN"),
            };
            Ok((said, "v1", h.header.len()))
        }
        HeaderResult::V2(Ok(h)) => {
            let said = match (h.command, h.addresses) {
                (v2::Command::Local, _) => Said::Own("LOCAL"),
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Said::Client(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Said::Client(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
                }
                (v2::Command::Proxy, v2::Addresses::Unspecified) => Said::Own("PROXY UNSPEC"),
                (v2::Command::Proxy, v2::Addresses::Unix(_)) => Said::Own("PROXY UNIX"),
            };
            Ok((said, "v2", h.header.len()))
        }
        HeaderResult::V1(Err(e)) => {
            Err(not_a_header(bytes)
                .unwrap_or_else(|| Refusal::Malformed(format!("version 1: {e}"))))
        }
        HeaderResult::V2(Err(e)) => {
            Err(not_a_header(bytes)
                .unwrap_or_else(|| Refusal::Malformed(format!("version 2: {e}"))))
        }
    }
}

/// A peer that began with something else entirely (a TLS record, plain HTTP) sent no
/// header at all; `None` when it began like one.
fn not_a_header(bytes: &[u8]) -> Option<Refusal> {
    const HTTP: [&[u8]; 9] = [
        b"GET ", b"POST", b"HEAD", b"PUT ", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC",
    ];
    let began = match bytes.first()? {
        b'P' if bytes.starts_with(b"PROXY") || b"PROXY".starts_with(bytes) => return None,
        b'\r' => return None,
        0x16 => "a TLS handshake record (a ClientHello)",
        _ if HTTP.iter().any(|m| bytes.starts_with(m)) => "plain HTTP",
        _ => "bytes that are neither a PROXY header nor TLS",
    };
    Some(Refusal::NoHeader { began })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<(Said, &'static str, usize), Refusal> {
        let parsed = HeaderResult::parse(bytes);
        assert!(!parsed.is_incomplete(), "{bytes:?} is incomplete");
        said(parsed, bytes)
    }

    #[test]
    fn version_1_gives_the_client_address_and_its_own_length() {
        let header = b"PROXY TCP4 192.0.2.7 127.0.0.1 51234 8443\r\n";
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(&[0x16, 0x03, 0x01]);
        let (said, version, len) = parse(&bytes).expect("a header");
        assert_eq!(said, Said::Client("192.0.2.7:51234".parse().expect("addr")));
        assert_eq!((version, len), ("v1", header.len()));
        let (said, _, _) = parse(b"PROXY UNKNOWN\r\n").expect("a header");
        assert_eq!(said, Said::Own("UNKNOWN"));
    }

    #[test]
    fn version_2_proxy_gives_the_client_and_local_keeps_the_balancer() {
        let mut proxy = ppp::v2::PROTOCOL_PREFIX.to_vec();
        // PROXY, TCP over IPv6, 36 bytes of addresses.
        proxy.extend_from_slice(&[0x21, 0x21, 0, 36]);
        proxy.extend_from_slice(
            &"2001:db8::7"
                .parse::<std::net::Ipv6Addr>()
                .expect("ip")
                .octets(),
        );
        proxy.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        proxy.extend_from_slice(&[0xc8, 0x22, 0x20, 0xfb]);
        let (said, version, len) = parse(&proxy).expect("a header");
        assert_eq!(
            said,
            Said::Client("[2001:db8::7]:51234".parse().expect("addr"))
        );
        assert_eq!((version, len), ("v2", 52));
        let mut local = ppp::v2::PROTOCOL_PREFIX.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local).expect("a header").0, Said::Own("LOCAL"));
    }

    #[test]
    fn what_is_not_a_header_is_named_by_what_it_began_with() {
        let tls = [0x16, 0x03, 0x01, 0x00, 0xf4, 0x01, 0x00];
        assert_eq!(
            parse(&tls).expect_err("refused"),
            Refusal::NoHeader {
                began: "a TLS handshake record (a ClientHello)"
            }
        );
        let http = parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect_err("refused");
        assert_eq!(http.label(), "missing_header");
        assert!(http.to_string().contains("began with plain HTTP"), "{http}");
        let bad = parse(b"PROXY TCP4 300.0.0.1 127.0.0.1 1 2\r\n").expect_err("refused");
        assert_eq!(bad.label(), "malformed_header");
        assert!(bad.to_string().contains("version 1"), "{bad}");
    }

    #[test]
    fn ranges_and_single_addresses_are_trusted_and_mapped_ipv4_counts_as_ipv4() {
        let p = ProxyProtocol {
            trusted: vec![
                parse_range("10.0.0.0/8").expect("range"),
                parse_range("192.0.2.7").expect("address"),
            ],
        };
        assert!(p.trusts("10.1.2.3".parse().expect("ip")));
        assert!(p.trusts("::ffff:10.1.2.3".parse().expect("ip")));
        assert!(p.trusts("192.0.2.7".parse().expect("ip")));
        assert!(!p.trusts("192.0.2.8".parse().expect("ip")));
        assert!(!p.trusts("127.0.0.1".parse().expect("ip")));
        let err = parse_range("10.0.0.0/33").expect_err("refused");
        assert!(err.contains("not an address range"), "{err}");
    }
}
