//! Everything the three mTLS demo binaries share.
//!
//! A tour, in the order a connection meets it:
//! - [`files`]: the only place certificate file names exist (`certs/ca.crt`, ...).
//! - [`pki`] and [`demo`]: minting a CA and leaves with rcgen; [`write`]: atomic, 0600 keys.
//! - [`pem`]: loading PEM with errors that name the file and the fix.
//! - [`tls`]: the only rustls configuration code, for both sides.
//! - [`server`] and [`client`]: the HTTPS server that requires a client certificate, and
//!   one request that presents one.
//! - [`report`] and [`certinfo`]: what a handshake established, and a certificate in words;
//!   [`response`]: the bodies the server answers with.
//! - [`explain`]: TLS failures in plain words, from the side that saw them.
//! - [`error`]: the typed error every fallible function returns.
//! - For the server as a production endpoint: [`policy`] (which verified clients are
//!   admitted), [`reload`] (new certificates, keys, CAs and CRLs without a restart),
//!   [`limits`] (timeouts and sizes against hostile peers), [`proxy`] (forwarding the
//!   verified identity to an application) and [`metrics`] (Prometheus).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod certinfo;
pub mod client;
pub mod crl;
pub mod demo;
pub mod doctor;
pub mod error;
pub mod explain;
pub mod files;
pub mod inspect;
pub mod lab;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod p12;
pub mod pem;
pub mod pki;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod report;
pub mod response;
pub mod server;
pub mod store;
pub mod tls;
pub mod write;

pub use error::{Error, Result};

/// SHA-256 of `bytes` (certificate fingerprints).
pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}
