//! The command line of `server`: every flag, also readable from an `MTLS_*` environment
//! variable (for containers), and the settings it makes.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use mtls::cli::Generate;
use mtls::files::{CertsDir, DEFAULT_DIR};
use mtls::format::{parse_duration, parse_size};
use mtls::server::ServerSettings;
use mtls::server::policy::{AccessPolicy, Rule};
use mtls::server::proxy::{DEFAULT_MAX_IN_FLIGHT, Upstream};
use mtls::server::proxy_header::{IpNet, ProxyProtocol, parse_range};
use mtls::server::reload::ReloadTriggers;
use mtls::tls::{MinVersion, ServerPolicy};

const EXAMPLES: &str = "\
Examples:
  cargo run -p server                                   # 127.0.0.1:8443, certificates from certs/
  cargo run -p server -- --addr 127.0.0.1:0             # any free port (printed at start)
  cargo run -p server -- --ca certs/ca.crt --cert certs/server.crt --key certs/server.key
  cargo run -p server -- --allow-uri spiffe://mtls.demo/client-a   # only Client A; B gets 403
  cargo run -p server -- --upstream http://127.0.0.1:8080 --metrics 127.0.0.1:9090
  cargo run -p server -- --upstream h2c://127.0.0.1:50051          # a gRPC server (HTTP/2, no TLS)
  cargo run -p server -- --upstream https://app.internal:8443 --upstream-ca app-ca.crt \
      --upstream-cert proxy.crt --upstream-key proxy.key          # mTLS to the application too
  MTLS_ADDR=0.0.0.0:8443 MTLS_CERTS=/etc/mtls cargo run -p server   # flags from the environment
  cargo run -p server -- --proxy-protocol --proxy-protocol-from 10.0.0.0/8   # behind HAProxy
  cargo run -p server -- --ticket-keys certs/ticket.keys  # resume on every server of a fleet
  kill -HUP <pid>                                       # reload certificates, key, CA and CRLs
  RUST_LOG=debug cargo run -p server                    # more detail";

/// Serves HTTPS on HTTP/1.1 and HTTP/2 and requires every client to present a certificate
/// issued by the CA. Logs each connection's TLS state and client chain, and each request.
/// Optionally admits only named identities, forwards to an application with the verified
/// identity in headers, and serves Prometheus metrics. Every flag can also be set with the
/// environment variable shown in [env: ...].
#[derive(Parser, Debug)]
#[command(name = "server", version, after_help = EXAMPLES)]
pub struct Cli {
    /// Address to listen on (port 0 picks a free one).
    #[arg(
        long,
        env = "MTLS_ADDR",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:8443"
    )]
    addr: String,

    /// Folder holding ca.crt, server.crt and server.key.
    #[arg(long, env = "MTLS_CERTS", value_name = "DIR", default_value = DEFAULT_DIR)]
    certs: PathBuf,

    /// CA certificate that client certificates must chain to [default: DIR/ca.crt].
    #[arg(long, env = "MTLS_CA", value_name = "FILE", help_heading = "TLS")]
    ca: Option<PathBuf>,

    /// The server's certificate chain [default: DIR/server.crt].
    #[arg(long, env = "MTLS_CERT", value_name = "FILE", help_heading = "TLS")]
    cert: Option<PathBuf>,

    /// The server's private key [default: DIR/server.key].
    #[arg(long, env = "MTLS_KEY", value_name = "FILE", help_heading = "TLS")]
    key: Option<PathBuf>,

    /// Certificate revocation list; revoked client certificates are refused (repeatable; in
    /// the environment, comma-separated).
    #[arg(
        long,
        env = "MTLS_CRL",
        value_delimiter = ',',
        value_name = "FILE",
        help_heading = "TLS"
    )]
    crl: Vec<PathBuf>,

    /// Lowest TLS version accepted: 1.2 or 1.3. TLS 1.0 and 1.1 are never accepted, and
    /// every cipher suite is AEAD with ECDHE key exchange (forward secrecy).
    #[arg(
        long,
        env = "MTLS_MIN_TLS",
        value_name = "VERSION",
        default_value = "1.2",
        help_heading = "TLS"
    )]
    min_tls: MinVersion,

    /// Turn off session resumption (tickets and the session cache): every connection then
    /// makes a full handshake with certificates.
    #[arg(long, env = "MTLS_NO_RESUMPTION", help_heading = "TLS")]
    no_resumption: bool,

    /// Session-ticket keys shared by a fleet of servers (written and rotated by `certificate
    /// ticket-keys`): a client resumes its session on whichever server it reaches. The
    /// first key encrypts, every key decrypts; reloaded with the certificates; refused when
    /// every user may read it.
    #[arg(
        long,
        env = "MTLS_TICKET_KEYS",
        value_name = "FILE",
        conflicts_with = "no_resumption",
        help_heading = "TLS"
    )]
    ticket_keys: Option<PathBuf>,

    /// How often to look for changed --cert, --key, --ca, --crl, --ticket-keys or --upstream-*
    /// files and reload them (0: only on SIGHUP). A reload that fails keeps the previous material.
    #[arg(long, env = "MTLS_RELOAD_INTERVAL", value_name = "DURATION", default_value = "2s", value_parser = parse_duration, help_heading = "TLS")]
    reload_interval: Duration,

    /// Admit clients whose certificate has this URI SAN (repeatable); a pattern ending in
    /// /* admits every URI under it. Without any --allow-* flag, every client the CA
    /// vouches for is admitted; with some, the others get 403.
    #[arg(long, env = "MTLS_ALLOW_URI", value_delimiter = ',', value_name = "URI", value_parser = Rule::uri, help_heading = "Identity policy")]
    allow_uri: Vec<Rule>,

    /// Admit clients whose certificate has this DNS SAN (repeatable).
    #[arg(long, env = "MTLS_ALLOW_DNS", value_delimiter = ',', value_name = "NAME", value_parser = Rule::dns, help_heading = "Identity policy")]
    allow_dns: Vec<Rule>,

    /// Admit clients whose certificate's subject has this common name (repeatable; in the
    /// environment, one name).
    #[arg(long, env = "MTLS_ALLOW_CN", value_name = "CN", value_parser = Rule::cn, help_heading = "Identity policy")]
    allow_cn: Vec<Rule>,

    /// A peer that has not finished its TLS handshake by then is closed.
    #[arg(long, env = "MTLS_HANDSHAKE_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_duration, help_heading = "Limits")]
    handshake_timeout: Duration,

    /// A request head (HTTP/1.1) must arrive completely within this time of its first byte.
    #[arg(long, env = "MTLS_HEADER_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = parse_duration, help_heading = "Limits")]
    header_timeout: Duration,

    /// Largest request head accepted (request line and headers); larger gets 431.
    #[arg(long, env = "MTLS_MAX_HEADER_SIZE", value_name = "SIZE", default_value = "64KiB", value_parser = parse_size, help_heading = "Limits")]
    max_header_size: usize,

    /// A keep-alive connection with no request in flight for this long is closed; so is one
    /// whose request in flight makes no progress on the client's side for this long. Behind
    /// --upstream, also the longest pause in a response body the application is sending, and
    /// in a WebSocket tunnel.
    #[arg(long, env = "MTLS_IDLE_TIMEOUT", value_name = "DURATION", default_value = "60s", value_parser = parse_duration, help_heading = "Limits")]
    idle_timeout: Duration,

    /// Most connections open at once; beyond it, new connections wait until one closes.
    #[arg(
        long,
        env = "MTLS_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 10_000,
        help_heading = "Limits"
    )]
    max_connections: usize,

    /// Most connections still in their TLS handshake at once; when all are taken, the one
    /// that has waited longest is closed to admit the new one, so peers that never finish
    /// a handshake cannot lock out those that do.
    #[arg(
        long,
        env = "MTLS_MAX_HANDSHAKES",
        value_name = "N",
        default_value_t = 256,
        help_heading = "Limits"
    )]
    max_handshakes: usize,

    /// On SIGTERM or Ctrl-C, how long requests in flight get to finish.
    #[arg(long, env = "MTLS_DRAIN_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_duration, help_heading = "Limits")]
    drain_timeout: Duration,

    /// Forward admitted requests to this application, with the verified identity in
    /// Client-Cert, Client-Cert-Chain (RFC 9440), X-SSL-CERT and X-Forwarded-Client-Cert
    /// (gRPC metadata over HTTP/2); those headers are always removed from what clients send.
    /// http:// speaks HTTP/1.1; h2c:// HTTP/2 without TLS (gRPC servers); https:// TLS, with
    /// --upstream-ca, --upstream-cert and --upstream-key. WebSocket upgrades and trailers
    /// pass through.
    #[arg(
        long,
        env = "MTLS_UPSTREAM",
        value_name = "URL",
        help_heading = "Proxy"
    )]
    upstream: Option<Upstream>,

    /// https upstream: the CA that issued the application's certificate; its certificate
    /// must chain to it and name the --upstream host.
    #[arg(
        long,
        env = "MTLS_UPSTREAM_CA",
        value_name = "FILE",
        help_heading = "Proxy"
    )]
    upstream_ca: Option<PathBuf>,

    /// https upstream: the certificate this proxy presents to the application (for an
    /// application that requires client certificates). Reloaded like --cert.
    #[arg(
        long,
        env = "MTLS_UPSTREAM_CERT",
        value_name = "FILE",
        help_heading = "Proxy"
    )]
    upstream_cert: Option<PathBuf>,

    /// https upstream: the private key of --upstream-cert.
    #[arg(
        long,
        env = "MTLS_UPSTREAM_KEY",
        value_name = "FILE",
        help_heading = "Proxy"
    )]
    upstream_key: Option<PathBuf>,

    /// How long the application may take to accept a connection (TLS handshake included);
    /// after that the client gets 502.
    #[arg(long, env = "MTLS_UPSTREAM_CONNECT_TIMEOUT", value_name = "DURATION", default_value = "5s", value_parser = parse_duration, help_heading = "Proxy")]
    upstream_connect_timeout: Duration,

    /// How long the application may take to start its response (the wait for a slot under
    /// --upstream-max-in-flight included); after that the client gets 504. A response body
    /// may then pause for up to --idle-timeout between pieces, however long it runs.
    #[arg(long, env = "MTLS_UPSTREAM_FIRST_BYTE_TIMEOUT", value_name = "DURATION", default_value = "60s", value_parser = parse_duration, help_heading = "Proxy")]
    upstream_first_byte_timeout: Duration,

    /// Most requests in flight to the upstream at once, whatever clients do (a client that
    /// resets its HTTP/2 streams frees no slot before the application has answered); more
    /// wait.
    #[arg(
        long,
        env = "MTLS_UPSTREAM_MAX_IN_FLIGHT",
        value_name = "N",
        default_value_t = DEFAULT_MAX_IN_FLIGHT,
        help_heading = "Proxy"
    )]
    upstream_max_in_flight: usize,

    /// Behind a TCP load balancer: every connection begins with a PROXY protocol header
    /// (HAProxy's, v1 or v2), and the client's address in it is the one logged, counted,
    /// forwarded and shown. Only peers in --proxy-protocol-from may connect.
    #[arg(
        long,
        env = "MTLS_PROXY_PROTOCOL",
        requires = "proxy_protocol_from",
        help_heading = "Load balancer"
    )]
    proxy_protocol: bool,

    /// The load balancers' addresses (CIDR or one address; repeatable, or comma-separated):
    /// with --proxy-protocol, connections from anywhere else are refused.
    #[arg(
        long,
        env = "MTLS_PROXY_PROTOCOL_FROM",
        value_delimiter = ',',
        value_name = "CIDR",
        value_parser = parse_range,
        requires = "proxy_protocol",
        help_heading = "Load balancer"
    )]
    proxy_protocol_from: Vec<IpNet>,

    /// Serve Prometheus metrics over plain HTTP at http://ADDR/metrics, with /healthz and
    /// /readyz for orchestrators (off by default).
    #[arg(
        long,
        env = "MTLS_METRICS",
        value_name = "HOST:PORT",
        help_heading = "Observability"
    )]
    metrics: Option<String>,

    /// Print shell completions (complete-bash, -zsh, -fish, -elvish, -powershell) or the
    /// man page (man) to stdout, and exit.
    #[arg(long, value_name = "WHAT")]
    pub generate: Option<Generate>,
}

impl From<Cli> for ServerSettings {
    fn from(cli: Cli) -> Self {
        let mut s = ServerSettings::in_dir(&CertsDir::new(&cli.certs));
        s.addr = cli.addr;
        s.ca = cli.ca.unwrap_or(s.ca);
        s.cert = cli.cert.unwrap_or(s.cert);
        s.key = cli.key.unwrap_or(s.key);
        s.crls = cli.crl;
        s.policy = ServerPolicy {
            min_version: cli.min_tls,
            resumption: !cli.no_resumption,
            ticket_keys: cli.ticket_keys,
        };
        s.reload = ReloadTriggers {
            interval: Some(cli.reload_interval).filter(|d| !d.is_zero()),
            sighup: true,
        };
        s.access = AccessPolicy {
            rules: [cli.allow_uri, cli.allow_dns, cli.allow_cn].concat(),
        };
        s.handshake_timeout = cli.handshake_timeout;
        s.header_timeout = cli.header_timeout;
        s.max_header_bytes = cli.max_header_size;
        s.idle_timeout = cli.idle_timeout;
        s.max_connections = cli.max_connections;
        s.max_handshakes = cli.max_handshakes;
        s.drain_timeout = cli.drain_timeout;
        s.upstream = cli.upstream;
        s.upstream_max_in_flight = cli.upstream_max_in_flight;
        s.upstream_ca = cli.upstream_ca;
        s.upstream_cert = cli.upstream_cert;
        s.upstream_key = cli.upstream_key;
        s.upstream_connect_timeout = cli.upstream_connect_timeout;
        s.upstream_first_byte_timeout = cli.upstream_first_byte_timeout;
        s.metrics_addr = cli.metrics;
        s.proxy_protocol = cli.proxy_protocol.then_some(ProxyProtocol {
            trusted: cli.proxy_protocol_from,
        });
        s
    }
}
