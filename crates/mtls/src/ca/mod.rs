//! Only the CA tool (`certificate`) uses these: a folder of certificates run as a small CA.
//!
//! From the bottom up:
//! - [`write`](mod@write): atomic writes (a key and its certificate together or not at
//!   all), private keys 0600, folders 0700, nothing replaced silently.
//! - [`lock`]: one run at a time per folder; every command that changes the folder holds
//!   it for its whole read-modify-write.
//! - [`folder`]: the folder index (which certificates it holds, who issued whom, which
//!   names may be used); everything above reads the folder through it.
//! - [`crl`]: revocation lists, one per CA, in `crl.pem`.
//! - [`issue`]: one more certificate from a CA in the folder, and renewals.
//! - [`demo`]: the demo set of the Go original (root CA, server, Client A, Client B).
//! - [`doctor`]: the whole folder checked as a handshake will judge it (and the demo set's
//!   checks after minting).
//! - [`lab`]: the certificates people trip on, each wrong in one way.
//! - [`inspect`]: any certificate, chain, CSR, CRL or key, or a live server's chain.
//! - [`p12`]: PKCS#12 bundles for Java, browsers and macOS.
//! - [`ticket_keys`]: the session-ticket key file a fleet of servers shares, written and
//!   rotated.

pub mod crl;
pub mod demo;
pub mod doctor;
pub mod folder;
pub mod inspect;
pub mod issue;
pub mod lab;
pub mod lock;
pub mod p12;
pub mod ticket_keys;
