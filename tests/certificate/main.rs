//! `certificate` end to end: what the mint writes and the CA tool's subcommands, checked
//! with independent tools (openssl, Java's keytool) rather than by reading the files back
//! with our own code.

mod ca_tool;
mod concurrency;
mod folder;
mod mint;
mod names;
mod ops;
mod permissions;
mod readme;
mod ticket_keys;
mod verify;
mod writes;

/// The binary under test.
const CERTIFICATE: &str = env!("CARGO_BIN_EXE_certificate");
