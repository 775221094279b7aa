//! Helpers for the end-to-end tests of the three binaries, split by concern and defined
//! once: [`pki`] (a demo PKI per test), [`process`] (running binaries and waiting on them),
//! [`peers`] (the clients a test talks with), [`upstream`] (an application behind the
//! proxy), [`apps`] (real Python applications: WebSocket, gRPC), [`metrics`] (scrapes) and
//! [`readme`] (the output the docs quote).

pub mod apps;
pub mod metrics;
pub mod peers;
pub mod pki;
pub mod process;
pub mod readme;
pub mod upstream;

pub use apps::{PythonApp, require_python, run_python};
pub use metrics::{metrics_addr, sample};
pub use peers::{
    Conn, PeerServer, Reply, client_config, curl_as, fetch, fingerprint, first_cert, free_port,
    http1, openssl, openssl_messages, openssl_ok, openssl_x509, plain_get,
};
pub use pki::{Pki, expired, leaf, not_yet_valid, utf8};
pub use process::{
    InProcessServer, Lines, Mark, PATIENCE, ServerProcess, poll, require_tool, run, run_with_input,
    server_settings, server_settings_in, start_server, start_server_with_env, text,
};
pub use upstream::{EchoUpstream, Received, TrickleUpstream};
