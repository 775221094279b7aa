//! Everything the three mTLS binaries run: `certificate`, `server` and `client` are thin
//! front ends (parse the command line, make a typed config, call one function here).
//!
//! The crate is grouped by who uses what; arrows only point down (binaries -> `ca`/`server`
//! -> the shared modules).
//!
//! Shared, in the order a connection meets them:
//! - [`files`]: the only place file names exist (`certs/ca.crt`, ...), the demo's server
//!   names and its SPIFFE trust domain; [`perms`]: who may change a file (a CA file others
//!   can write is a CA anyone can add to).
//! - [`pki`]: minting a CA and leaves with rcgen, with a proper X.509 profile;
//!   [`revocation`]: revocation lists as data (entries, reasons, signing, reading back).
//! - [`pem`]: PEM in (with errors that name the file and the fix) and out; [`write`]:
//!   files written atomically, keys 0600, nothing replaced silently.
//! - [`tls`]: the only rustls configuration code, for both sides; [`tickets`]: the
//!   session-ticket keys a fleet of servers shares (the CA tool writes them, the server
//!   reads them); [`verdicts`]: the server's verdicts on client chains, remembered while
//!   they hold, so an unchanged chain is not checked again at every handshake.
//! - [`trace`]: the handshake as it happened on one connection, message by message, from
//!   the bytes on the wire and the session's own secrets (`client --trace`, the server's
//!   debug log), and `SSLKEYLOGFILE`.
//! - [`client`]: one HTTPS request that presents a client certificate, with a report of
//!   what each side checked.
//! - [`hygiene`]: the headers a proxy never passes on from a client (identity, address,
//!   hop-by-hop), for the server's `--upstream` and `client proxy` alike.
//! - [`certinfo`] and [`report`]: a certificate, and what a handshake established, in words;
//!   [`retired`]: whether our certificate's CA was retired by a rotation (evidence for
//!   the client's explanation of a refusal).
//! - [`verify`]: would a handshake accept this certificate? webpki's verdict, asked as the
//!   server and the client ask it, with the path it built (`certificate verify`).
//! - [`error`]: the typed error every fallible function returns, and [`error::Failure`],
//!   the typed reason a handshake failed; [`explain`]: those failures in plain words, from
//!   the side that saw them.
//! - [`format`](mod@format): hex, timestamps, durations and sizes as people read and type them;
//!   [`logging`]: tracing to stderr; [`program`]: how hints name the three programs (the
//!   way the user runs them); [`cli`]: what the three binaries share (exit codes, the
//!   runtime, a progress bar, completions and man pages).
//! - What the server and `client proxy` both run: [`activity`] (what one connection is
//!   doing, and the limits a watchdog closes it for), [`triggers`] (when to shut down and
//!   when to reload: signals, and files whose stamp changed), [`response`] (the bodies they
//!   answer with) and [`scrape`] (the plain-HTTP `/metrics` listener).
//!
//! Only the CA tool (`certificate`) uses [`ca`]: the folder index and its lock at the
//! bottom, then issuing and renewing, `crl.pem`, the demo set, the lab, doctor, inspect and
//! PKCS#12.
//!
//! Only the client uses [`audit`]: `client audit`, which tries the clients an mTLS server
//! must refuse and reports what it did with each; and [`egress`]: `client proxy`, plain
//! HTTP in from local applications, mutual TLS out to one upstream, with the client's own
//! connect, TLS config and explanations.
//!
//! Only the client uses [`bench`] too: `client bench`, a bounded load run that shows what
//! client authentication, session resumption and keep-alive cost.
//!
//! Only the server uses [`server`]: settings, accepting and draining, the pre-TLS handshake,
//! serving a connection (as text, or as a page for a browser), the watchdog, the identity
//! policy, hot reload, the reverse proxy and Prometheus metrics.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod activity;
pub mod certinfo;
pub mod cli;
pub mod client;
pub mod error;
pub mod explain;
pub mod files;
pub mod format;
pub mod hygiene;
pub mod logging;
pub mod pem;
pub mod perms;
pub mod pki;
pub mod program;
pub mod report;
pub mod response;
pub mod retired;
pub mod revocation;
pub mod scrape;
pub mod tickets;
pub mod tls;
pub mod trace;
pub mod triggers;
pub mod verdicts;
pub mod verify;
pub mod write;

pub mod audit;
pub mod bench;
pub mod ca;
pub mod egress;
pub mod server;

pub use error::{Error, Failure, Result};
