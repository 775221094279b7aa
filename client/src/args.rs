//! The command line of `client`, and the settings it makes.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mtls::Error;
use mtls::audit::AuditSettings;
use mtls::bench::{BenchSettings, Bound, Mode};
use mtls::cli::Generate;
use mtls::client::{ClientSettings, Url};
use mtls::egress::{IdentitySource, ProxySettings};
use mtls::files::{CertsDir, ClientId, DEFAULT_DIR, Role};
use mtls::format::{parse_duration, parse_size};
use mtls::tls::{ClientPolicy, TlsVersion};
use mtls::triggers::ReloadTriggers;

const EXAMPLES: &str = "\
Examples:
  cargo run -p client -- -c=a                       # as Client A, to https://localhost:8443/
  cargo run -p client -- -c b --url https://127.0.0.1:8443/
  cargo run -p client -- --no-cert                  # see the server refuse a client without one
  cargo run -p client -- --no-cert --tls-version 1.2  # ...during the handshake, not after it
  cargo run -p client -- --cert my.crt --key my.key --ca certs/ca.crt
  cargo run -p client -- -c a --json                # the same report, for scripts
  cargo run -p client -- -c a --trace               # every handshake message, as it happened
  SSLKEYLOGFILE=keys.log cargo run -p client -- -c a  # secrets for Wireshark/tshark

  cargo run -p client -- audit --url https://localhost:8443/ --ca certs/ca.crt \
      --cert certs/client-a.crt --key certs/client-a.key   # does the server refuse whom it must?
  cargo run -p client -- proxy -c a --listen 127.0.0.1:8080   # plain HTTP in, mutual TLS out
  cargo run --release -p client -- bench -c a --compare  # what mTLS, resumption and keep-alive cost";

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Which {
    /// Client A: certs/client-a.crt and certs/client-a.key
    A,
    /// Client B: certs/client-b.crt and certs/client-b.key
    B,
}

/// Calls the mTLS server with a client certificate, then prints the response, the TLS
/// state and the server's certificate chain as this client saw them.
#[derive(Parser, Debug)]
#[command(
    name = "client",
    version,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// `audit`: try the clients a correctly configured mTLS server must refuse; `proxy`:
    /// forward plain HTTP from local applications to an mTLS upstream; `bench`: measure
    /// what mutual TLS costs.
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    client: ClientArgs,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// Print the handshake as it happened on this connection, message by message, before
    /// the report (and in --json): decoded from the bytes on the wire, TLS 1.3's encrypted
    /// records decrypted with the session's own secrets. Shown when the request fails too.
    #[arg(long)]
    trace: bool,

    /// Print shell completions (complete-bash, -zsh, -fish, -elvish, -powershell) or the
    /// man page (man) to stdout, and exit.
    #[arg(long, value_name = "WHAT")]
    pub generate: Option<Generate>,
}

impl Cli {
    /// The settings the command line asks for; a missing half of a pair is a usage error.
    pub fn settings(self) -> Result<ClientSettings, Error> {
        let mut settings = self.client.settings()?;
        settings.trace = self.trace;
        Ok(settings)
    }
}

/// Where to connect, as whom, trusting what: what `client` and `client bench` share.
#[derive(Args, Debug)]
struct ClientArgs {
    /// Which demo client certificate to present.
    #[arg(short = 'c', long = "client", value_name = "CLIENT")]
    client: Option<Which>,

    /// URL to request (https only).
    #[arg(long, value_name = "URL", default_value = mtls::client::DEFAULT_URL)]
    url: Url,

    /// Folder holding ca.crt and the client certificates.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    certs: PathBuf,

    /// CA certificate the server's certificate must chain to [default: DIR/ca.crt].
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,

    /// Our certificate chain [default: DIR/client-X.crt for -c X].
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,

    /// Our private key [default: DIR/client-X.key for -c X].
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,

    /// Offer only this TLS version: 1.2 or 1.3 (to compare when a refusal arrives).
    #[arg(long, value_name = "VERSION")]
    tls_version: Option<TlsVersion>,

    /// Offer only HTTP/1.1 in ALPN (default: h2, then http/1.1).
    #[arg(long = "http1.1")]
    http1_only: bool,

    /// Send no client certificate (to see how the server refuses).
    #[arg(long, conflicts_with_all = ["client", "cert", "key"])]
    no_cert: bool,
}

impl ClientArgs {
    /// The client's settings; a missing half of a pair is a usage error.
    fn settings(self) -> Result<ClientSettings, Error> {
        let dir = CertsDir::new(&self.certs);
        let identity = match self.no_cert {
            true => None,
            false => Some(identity(
                &dir,
                self.client,
                self.cert,
                self.key,
                ", or --no-cert",
            )?),
        };
        let mut settings = ClientSettings::new(self.ca.unwrap_or_else(|| dir.ca_cert()), identity);
        settings.url = self.url;
        settings.policy = ClientPolicy {
            only_version: self.tls_version,
            http1_only: self.http1_only,
        };
        Ok(settings)
    }
}

/// Our certificate, key and how errors name them, from `-c a|b` (the demo set in `dir`) or
/// `--cert` and `--key`; a missing half of a pair is a usage error (`or_else` adds another
/// way out to the hint).
fn identity(
    dir: &CertsDir,
    client: Option<Which>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    or_else: &str,
) -> Result<(PathBuf, PathBuf, String), Error> {
    let id = client.map(|w| match w {
        Which::A => ClientId::A,
        Which::B => ClientId::B,
    });
    let cert = cert.or_else(|| id.map(|i| dir.role_cert(Role::Client(i))));
    let key = key.or_else(|| id.map(|i| dir.role_key(Role::Client(i))));
    let usage = |m: String| Err(Error::Usage(m));
    match (cert, key) {
        (Some(cert), Some(key)) => {
            let owner = id.map_or_else(|| "the client".to_string(), |i| i.to_string());
            Ok((cert, key, owner))
        }
        (None, None) => usage(format!(
            "choose a client certificate: -c a or -c b (or --cert and --key{or_else})"
        )),
        (Some(_), None) => {
            usage("--cert needs --key (or -c a|b to take the key from the demo set)".into())
        }
        (None, Some(_)) => {
            usage("--key needs --cert (or -c a|b to take the certificate from the demo set)".into())
        }
    }
}

/// What `client` does besides one request.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Try the clients a correctly configured mTLS server must refuse; report what it did
    ///
    /// Each client on its own connection: no certificate, a self-signed one, one from a
    /// foreign or forged CA, old TLS versions and weak suites, plain HTTP; with the issuer's
    /// key, certificates from the trusted CA that are wrong in one way. Exit 0: all blocked;
    /// 1: something got in or could not be judged; 2: the audit could not run (usage, a
    /// server it cannot reach, or the good client itself refused).
    #[command(after_help = AUDIT_EXAMPLES)]
    Audit(AuditArgs),

    /// Measure what mutual TLS costs: a bounded load run against your own server
    ///
    /// Operations per second, latency percentiles, this client's CPU and failures by
    /// reason, for full handshakes, resumed ones, or requests on kept-alive connections
    /// (--mode); --compare runs all three and plain TLS back to back and prints one table.
    /// Each run ends: --requests or --duration (capped at 10 minutes), a limit on every
    /// phase, and a hard stop. Loopback only unless --allow-remote. Exit 0: every operation
    /// succeeded; 1: some failed (the reasons are listed); 2: the run could not start.
    #[command(after_help = BENCH_EXAMPLES)]
    Bench(BenchArgs),

    /// Forward plain HTTP from local applications to one mTLS upstream, with our certificate
    ///
    /// Applications send plain HTTP/1.1 to --listen (loopback unless --allow-remote); each
    /// request goes to --url over a pooled mutual-TLS connection (HTTP/2 when the upstream
    /// offers it) that presents our certificate and verifies the upstream's chain and
    /// name. It is not an open proxy: requests for other hosts are refused. The
    /// certificate, key and CA are reloaded on SIGHUP and when the files change. When the
    /// upstream refuses us or cannot be verified, the application gets 502 with the reason
    /// in the words `client` prints. Prints `listening on http://ADDR` when ready.
    #[command(after_help = PROXY_EXAMPLES)]
    Proxy(ProxyArgs),
}

const BENCH_EXAMPLES: &str = "\
Examples:
  cargo run --release -p client -- bench -c a --url https://localhost:8443/ --mode full
  cargo run --release -p client -- bench -c a --mode resumed --connections 16 --duration 10s
  cargo run --release -p client -- bench -c a --mode keepalive --requests 100000
  cargo run --release -p client -- bench -c a --compare --duration 5s   # the table
  cargo run --release -p client -- bench --no-cert --requests 10        # see the refusals counted
  cargo run --release -p client -- bench -c a --compare --json          # for scripts";

/// The command line of `client bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    client: ClientArgs,

    /// What one operation is: full (a new connection and a full handshake per request),
    /// resumed (a new connection resuming the previous one's session), keepalive (many
    /// requests on each connection).
    #[arg(
        long,
        value_name = "MODE",
        default_value = "full",
        conflicts_with = "compare"
    )]
    mode: Mode,

    /// Run full, resumed and keep-alive mTLS, then plain TLS without a client certificate,
    /// back to back (each for the whole --duration or --requests), and print one table.
    #[arg(long)]
    compare: bool,

    /// With --compare: measure plain TLS against this server (one of yours that does not
    /// ask for a client certificate) rather than --url, which refuses a client without one.
    #[arg(long, value_name = "URL", requires = "compare")]
    plain_url: Option<Url>,

    /// Connections (workers) at once [at most 1024].
    #[arg(long, value_name = "N", default_value_t = 16)]
    connections: usize,

    /// Stop after this long [default: 10s; at most 10m]: no operation starts after it.
    #[arg(long, value_name = "DURATION", value_parser = mtls::format::parse_duration, conflicts_with = "requests")]
    duration: Option<Duration>,

    /// Stop after exactly this many operations (at most 10 million; a run still ends at
    /// 10 minutes).
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    requests: Option<u64>,

    /// The limit of each phase of an operation: connect, handshake, answer [at most 60s].
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = mtls::format::parse_duration)]
    timeout: Duration,

    /// Load a server that is not on this machine (only one you run).
    #[arg(long)]
    allow_remote: bool,

    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `client bench` was asked for: one run, or the comparison.
pub enum BenchPlan {
    /// One mode.
    One(BenchSettings),
    /// Every mode and plain TLS; plain TLS against this URL when given.
    Compare(BenchSettings, Option<Url>),
}

impl BenchArgs {
    /// The run's settings.
    pub fn plan(self) -> Result<BenchPlan, Error> {
        let mut client = self.client.settings()?;
        client.connect_timeout = self.timeout;
        client.handshake_timeout = self.timeout;
        client.response_timeout = self.timeout;
        let mut settings = BenchSettings::new(client);
        settings.mode = self.mode;
        settings.connections = self.connections;
        settings.allow_remote = self.allow_remote;
        settings.bound = match (self.requests, self.duration) {
            (Some(n), _) => Bound::Requests(n),
            (None, Some(d)) => Bound::Duration(d),
            (None, None) => settings.bound,
        };
        Ok(match self.compare {
            true => BenchPlan::Compare(settings, self.plain_url),
            false => BenchPlan::One(settings),
        })
    }
}

const AUDIT_EXAMPLES: &str = "\
Examples:
  cargo run -p client -- audit --url https://localhost:8443/ --ca certs/ca.crt
  cargo run -p client -- audit --url https://localhost:8443/ --ca certs/ca.crt \\
      --cert certs/client-a.crt --key certs/client-a.key \\
      --issuer-cert certs/ca.crt --issuer-key certs/ca.key    # your own PKI only
  cargo run -p client -- audit ... --crl-hint certs/crl.pem   # revokes a throwaway certificate in the list
  cargo run -p client -- audit ... --json                     # for CI: exit 0 only if all was blocked";

const PROXY_EXAMPLES: &str = "\
Examples:
  client proxy -c a --url https://localhost:8443 --listen 127.0.0.1:8080
  curl http://127.0.0.1:8080/orders          # reaches https://localhost:8443/orders as Client A
  client proxy --cert app.crt --key app.key --ca ca.crt --url https://api.internal:8443 \\
      --metrics 127.0.0.1:9090                # Prometheus metrics at /metrics
  kill -HUP <pid>                             # reload the certificate, key and CA now";

/// The command line of `client proxy`.
#[derive(Args, Debug)]
pub struct ProxyArgs {
    /// Where local applications connect, with plain HTTP (port 0 picks a free one).
    #[arg(
        long,
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:8080",
        help_heading = "Listener"
    )]
    listen: String,

    /// Accept applications on a --listen address that is not loopback: anyone who can
    /// reach it speaks to the upstream with our certificate.
    #[arg(long, help_heading = "Listener")]
    allow_remote: bool,

    /// The upstream every request goes to: https://HOST[:PORT], without a path.
    #[arg(long, value_name = "URL", default_value = mtls::client::DEFAULT_URL, help_heading = "Upstream")]
    url: Url,

    /// CA certificate the upstream's certificate must chain to [default: DIR/ca.crt].
    #[arg(long, value_name = "FILE", help_heading = "Upstream")]
    ca: Option<PathBuf>,

    /// Offer only this TLS version to the upstream: 1.2 or 1.3.
    #[arg(long, value_name = "VERSION", help_heading = "Upstream")]
    tls_version: Option<TlsVersion>,

    /// Offer only HTTP/1.1 in ALPN (default: h2, then http/1.1).
    #[arg(long = "http1.1", help_heading = "Upstream")]
    http1_only: bool,

    /// Which demo client certificate to present.
    #[arg(
        short = 'c',
        long = "client",
        value_name = "CLIENT",
        help_heading = "Identity"
    )]
    client: Option<Which>,

    /// Folder holding ca.crt and the client certificates.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR, help_heading = "Identity")]
    certs: PathBuf,

    /// Our certificate chain [default: DIR/client-X.crt for -c X].
    #[arg(long, value_name = "FILE", help_heading = "Identity")]
    cert: Option<PathBuf>,

    /// Our private key [default: DIR/client-X.key for -c X].
    #[arg(long, value_name = "FILE", help_heading = "Identity")]
    key: Option<PathBuf>,

    /// How often to look for changed --cert, --key or --ca files and reload them (0: only
    /// on SIGHUP). A reload that fails keeps the previous identity.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration, help_heading = "Identity")]
    reload_interval: Duration,

    /// The upstream must finish its TLS handshake within this time.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, help_heading = "Limits")]
    handshake_timeout: Duration,

    /// A request head from an application must arrive completely within this time of its
    /// first byte.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration, help_heading = "Limits")]
    header_timeout: Duration,

    /// Largest request head accepted (request line and headers); larger gets 431.
    #[arg(long, value_name = "SIZE", default_value = "64KiB", value_parser = parse_size, help_heading = "Limits")]
    max_header_size: usize,

    /// A keep-alive connection with no request in flight for this long is closed; so is one
    /// whose request in flight makes no progress on the application's side for this long.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration, help_heading = "Limits")]
    idle_timeout: Duration,

    /// Most local connections open at once; beyond it, new connections wait until one
    /// closes.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10_000,
        help_heading = "Limits"
    )]
    max_connections: usize,

    /// On SIGTERM or Ctrl-C, how long requests in flight get to finish.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, help_heading = "Limits")]
    drain_timeout: Duration,

    /// Serve Prometheus metrics over plain HTTP at http://ADDR/metrics (off by default).
    #[arg(long, value_name = "HOST:PORT", help_heading = "Observability")]
    metrics: Option<String>,
}

impl ProxyArgs {
    /// The proxy's settings; a missing half of a certificate and key pair is a usage error.
    pub fn settings(self) -> Result<ProxySettings, Error> {
        let dir = CertsDir::new(&self.certs);
        let (cert, key, owner) = identity(&dir, self.client, self.cert, self.key, "")?;
        let ca = self.ca.unwrap_or_else(|| dir.ca_cert());
        let identity = IdentitySource {
            cert,
            key,
            ca,
            owner,
        };
        Ok(ProxySettings {
            listen: self.listen,
            allow_remote: self.allow_remote,
            policy: ClientPolicy {
                only_version: self.tls_version,
                http1_only: self.http1_only,
            },
            reload: ReloadTriggers {
                interval: Some(self.reload_interval).filter(|d| !d.is_zero()),
                sighup: true,
            },
            handshake_timeout: self.handshake_timeout,
            header_timeout: self.header_timeout,
            max_header_bytes: self.max_header_size,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            drain_timeout: self.drain_timeout,
            metrics_addr: self.metrics,
            ..ProxySettings::new(self.url, identity)
        })
    }
}

/// The command line of `client audit`.
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// The server to audit: https://HOST:PORT/PATH (on this machine unless --allow-remote).
    #[arg(long, value_name = "URL")]
    url: Url,

    /// The CA the server's certificate chains to (and whose name the forged CA copies).
    #[arg(long, value_name = "FILE")]
    ca: PathBuf,

    /// A client certificate the server must admit (with --key): shown to get in first.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,

    /// The private key of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,

    /// The CA that issues the server's clients (with --issuer-key): to mint certificates
    /// from it that are wrong in one way. Only for your own PKI.
    #[arg(long, value_name = "FILE", requires = "issuer_key")]
    issuer_cert: Option<PathBuf>,

    /// The private key of --issuer-cert.
    #[arg(long, value_name = "FILE", requires = "issuer_cert")]
    issuer_key: Option<PathBuf>,

    /// The CRL file the server reads and reloads when it changes: the audit adds a
    /// certificate it minted to it and checks that the server then refuses it.
    #[arg(long, value_name = "FILE", requires = "issuer_cert")]
    crl_hint: Option<PathBuf>,

    /// Count a valid certificate with an identity nobody configured getting in as a
    /// failure (the server must authorize, not only authenticate).
    #[arg(long, requires = "issuer_cert")]
    expect_authorization: bool,

    /// Audit a server that is not on this machine (only one you run).
    #[arg(long)]
    allow_remote: bool,

    /// Time limit for each phase of each probe (connect, handshake, answer), in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=mtls::audit::MAX_TIMEOUT.as_secs()))]
    timeout: u64,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl AuditArgs {
    /// The audit's settings.
    pub fn settings(self) -> AuditSettings {
        let mut s = AuditSettings::new(self.url, self.ca);
        s.good = self.cert.zip(self.key);
        s.issuer = self.issuer_cert.zip(self.issuer_key);
        s.crl_hint = self.crl_hint;
        s.expect_authorization = self.expect_authorization;
        s.allow_remote = self.allow_remote;
        s.timeout = std::time::Duration::from_secs(self.timeout);
        s
    }
}
