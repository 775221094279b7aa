//! Only the CA tool (`certificate`) uses these: a folder of certificates run as a small CA.
//!
//! From the bottom up (files are written through the shared [`crate::write`]: atomically, a
//! key and its certificate together or not at all, keys 0600, folders 0700):
//! - [`lock`]: one run at a time per folder; every command that changes the folder holds
//!   it for its whole read-modify-write.
//! - [`folder`]: the folder index (which certificates it holds, who issued whom, which
//!   names may be used); everything above reads the folder through it.
//! - [`issuance`]: the issuance log, one JSON line per certificate issued, renewed,
//!   revoked, rotated or retired.
//! - [`crl`]: revocation lists, one per CA, in `crl.pem`.
//! - [`issue`]: one more certificate from a CA in the folder, and renewals; [`watch`]
//!   renews one leaf whenever a share of its lifetime has passed (`renew --watch`).
//! - [`rotate`]: a new CA beside the old one, trusted together until the old one retires.
//! - [`list`]: the inventory (name, identity, issuer, time left, revoked).
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
pub mod issuance;
pub mod issue;
pub mod lab;
pub mod list;
pub mod lock;
pub mod p12;
pub mod rotate;
pub mod ticket_keys;
pub mod watch;
