//! `server` end to end: real certificates per test, port 0 on 127.0.0.1, real peers (our
//! client library, curl, openssl s_client, raw TCP). Every refusal asserts its reason.

mod basics;
mod browser;
mod causes;
mod fleet;
mod identity;
mod lab;
mod limits;
mod metrics;
mod policy;
mod proxy;
mod readme;
mod reload;
mod reverify;
mod rotation;
mod trace;
mod upstream;

use testkit::{Pki, ServerProcess, start_server, start_server_with_env};

/// The binary under test.
const SERVER: &str = env!("CARGO_BIN_EXE_server");

/// Starts the server on the demo set in `pki`, with `extra` flags, and waits until it
/// listens.
fn start(pki: &Pki, extra: &[&str]) -> ServerProcess {
    start_server(SERVER, pki, extra)
}

/// Like [`start`], with environment variables (`RUST_LOG=debug`, `SSLKEYLOGFILE`).
fn start_with_env(pki: &Pki, extra: &[&str], env: &[(&str, &str)]) -> ServerProcess {
    start_server_with_env(SERVER, pki, extra, env)
}
