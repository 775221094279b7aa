//! The command line of `certificate`, and what each subcommand asks the library to do.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};
use mtls::ca::crl::{self, Reason};
use mtls::ca::inspect::Input;
use mtls::ca::issue::Kind;
use mtls::ca::p12::{Encryption, Password};
use mtls::cli::Generate;
use mtls::files::DEFAULT_DIR;
use mtls::format::{parse_duration, parse_percent, parse_time};
use mtls::pki::{KeyType, SanType, Validity, parse_san};
use mtls::verify::{Host, Purpose};
use time::OffsetDateTime;

const EXAMPLES: &str = "\
Examples:
  cargo run -p certificate                          # certs/: ca, server, client-a, client-b
  cargo run -p certificate -- --intermediate        # root -> intermediate -> leaves
  cargo run -p certificate -- --san my-host.test    # one more name on the server certificate
  cargo run -p certificate -- --key-type rsa-2048 --hours 8 --certs /tmp/pki --force
  cargo run -p certificate -- issue client-c --client
  cargo run -p certificate -- doctor --json
  cargo run -p certificate -- --generate complete-bash > certificate.bash";

/// Mints a root CA, a server certificate and two client certificates (Client A, Client B),
/// then checks that they fit together. Subcommands manage the folder as a small CA.
#[derive(Parser, Debug)]
#[command(name = "certificate", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Without a subcommand: mint the demo set.
    #[command(flatten)]
    pub mint: MintArgs,

    /// The certificate folder (before or after the subcommand).
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_DIR, visible_alias = "out")]
    pub certs: PathBuf,

    /// Print shell completions (complete-bash, -zsh, -fish, -elvish, -powershell) or the
    /// man page (man) to stdout, and exit.
    #[arg(long, value_name = "WHAT")]
    pub generate: Option<Generate>,
}

/// The mint's own flags: they make no sense after a subcommand.
pub const MINT_ONLY: [&str; 9] = [
    "key_type",
    "days",
    "hours",
    "minutes",
    "ca_days",
    "ca_hours",
    "san",
    "intermediate",
    "force",
];

/// How long a certificate lives: `--days N`, `--hours N` or `--minutes N`.
#[derive(Args, Debug, Clone, Copy)]
pub struct Lifetime {
    /// Validity in days.
    #[arg(long, value_name = "N", conflicts_with_all = ["hours", "minutes"], value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: Option<u32>,

    /// Validity in hours (short-lived certificates).
    #[arg(long, value_name = "N", conflicts_with = "minutes", value_parser = clap::value_parser!(u32).range(1..=876000))]
    pub hours: Option<u32>,

    /// Validity in minutes (demos and tests; keep them fresh with `renew NAME --watch`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=52_560_000))]
    pub minutes: Option<u32>,
}

impl Lifetime {
    /// The length asked for, if any.
    pub fn length(self) -> Option<time::Duration> {
        match (self.days, self.hours, self.minutes) {
            (_, _, Some(m)) => Some(time::Duration::minutes(i64::from(m))),
            (_, Some(h), None) => Some(time::Duration::hours(i64::from(h))),
            (Some(d), None, None) => Some(time::Duration::days(i64::from(d))),
            (None, None, None) => None,
        }
    }

    /// The validity asked for, starting now, if any.
    pub fn get(self) -> Option<Validity> {
        self.length().map(Validity::starting_now)
    }

    /// The validity asked for, or `days` days.
    pub fn or_days(self, days: u32) -> Validity {
        self.get().unwrap_or_else(|| Validity::days(days))
    }
}

#[derive(Args, Debug)]
pub struct MintArgs {
    /// Key algorithm: ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096.
    #[arg(long, value_name = "TYPE", default_value = "ecdsa-p256")]
    pub key_type: KeyType,

    /// Validity of the server and client certificates (--days, --hours or --minutes N) [default: 365 days].
    #[command(flatten)]
    pub lifetime: Lifetime,

    /// Validity of the CA certificate, in days (leaves never outlive it) [default: 3650].
    #[arg(long, value_name = "N", conflicts_with = "ca_hours", value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub ca_days: Option<u32>,

    /// Validity of the CA certificate, in hours.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=876000))]
    pub ca_hours: Option<u32>,

    /// Extra subject alternative name for the server (DNS:name, IP:addr, URI:uri; repeatable).
    #[arg(long, value_name = "SAN", value_parser = parse_san)]
    pub san: Vec<SanType>,

    /// Build root -> intermediate -> leaves; leaf files carry the intermediate.
    #[arg(long)]
    pub intermediate: bool,

    /// Replace existing files, including the CA (every certificate it issued stops working).
    #[arg(long)]
    pub force: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Issue one more certificate from the folder's CA.
    #[command(after_help = "\
Examples:
  cargo run -p certificate -- issue client-c --client              # URI SAN spiffe://mtls.demo/client-c
  cargo run -p certificate -- issue api --server --san api.internal --san 10.0.0.5
  cargo run -p certificate -- issue batch --client --hours 8 --cn \"Batch Job\"
  cargo run -p certificate -- issue team-ca --intermediate          # signed by the root")]
    #[command(group = ArgGroup::new("kind").required(true))]
    Issue {
        /// The name: writes DIR/NAME.crt and DIR/NAME.key.
        name: String,
        /// A client certificate (EKU clientAuth).
        #[arg(long, group = "kind")]
        client: bool,
        /// A server certificate (EKU serverAuth).
        #[arg(long, group = "kind")]
        server: bool,
        /// An intermediate CA, signed by the root, that can issue leaves (--issuer NAME).
        #[arg(long, group = "kind")]
        intermediate: bool,
        /// Subject alternative name (DNS:, IP:, URI:; repeatable). Defaults: a client gets
        /// URI:spiffe://mtls.demo/NAME, a server DNS:localhost, IP:127.0.0.1 and IP:::1.
        #[arg(long, value_name = "SAN", value_parser = parse_san)]
        san: Vec<SanType>,
        /// Subject common name [default: NAME].
        #[arg(long, value_name = "CN")]
        cn: Option<String>,
        /// Subject organization [default: "CN Company"].
        #[arg(long, value_name = "O")]
        org: Option<String>,
        /// The CA that signs it [default: intermediate if the folder has one, else ca].
        #[arg(long, value_name = "NAME")]
        issuer: Option<String>,
        /// Key algorithm.
        #[arg(long, value_name = "TYPE", default_value = "ecdsa-p256")]
        key_type: KeyType,
        /// Validity [default: 365 days; never past the issuer's end].
        #[command(flatten)]
        lifetime: Lifetime,
        /// Replace an existing NAME.
        #[arg(long)]
        force: bool,
    },

    /// Re-issue a leaf with the same subject and SANs, a fresh key and a new validity.
    #[command(after_help = "\
Examples:
  cargo run -p certificate -- renew client-a
  cargo run -p certificate -- renew server --hours 24
  cargo run -p certificate -- renew server --san api.internal   # keep its names, add one
  cargo run -p certificate -- renew server --watch              # keep it fresh until stopped
  cargo run -p certificate -- renew client-a --watch --minutes 2 --renew-at 50

With --watch it runs until Ctrl-C or SIGTERM (exit 0), prints a line for each renewal (a
certificate that lives longer than --minutes/--hours/--days asks is renewed at once), and
exits 1 with the reason when the certificate can no longer be renewed (its CA expired, a key
is gone).")]
    Renew {
        /// The certificate to renew (DIR/NAME.crt).
        name: String,
        /// New validity [default: as long as the old one].
        #[command(flatten)]
        lifetime: Lifetime,
        /// Key algorithm [default: the old certificate's].
        #[arg(long, value_name = "TYPE")]
        key_type: Option<KeyType>,
        /// Add a subject alternative name to those it has (DNS:, IP:, URI:; repeatable).
        #[arg(long, value_name = "SAN", value_parser = parse_san, conflicts_with = "watch")]
        san: Vec<SanType>,
        /// Keep running, and renew it again each time --renew-at of its lifetime has passed
        /// (under the folder's lock, both files replaced atomically).
        #[arg(long)]
        watch: bool,
        /// With --watch: renew once this share of its lifetime has passed, in percent, with
        /// a little jitter [default: 67].
        #[arg(long, value_name = "PERCENT", requires = "watch", value_parser = parse_percent)]
        renew_at: Option<f64>,
    },

    /// The inventory of the folder: name, identity, issuer, time left, revoked or not.
    #[command(after_help = "\
Examples:
  cargo run -p certificate -- list
  cargo run -p certificate -- list --expiring 7d      # what needs renewing this week
  cargo run -p certificate -- list --json | jq '.certificates[] | select(.expired)'

Exit status: 1 when a certificate listed has expired (for cron), otherwise 0.")]
    List {
        /// Only the certificates that expire within this long, or have expired: 30m, 12h, 7d.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expiring: Option<std::time::Duration>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },

    /// Rotate the folder's CA without a failed request: `ca rotate`, renew, `ca retire`.
    #[command(after_help = "\
Examples:
  cargo run -p certificate -- ca rotate            # ca.crt trusts the old and the new root
  cargo run -p certificate -- renew server         # ... and every other leaf
  cargo run -p certificate -- doctor               # which leaves still need the old CA
  cargo run -p certificate -- ca retire            # ca.crt trusts the new root only")]
    Ca {
        #[command(subcommand)]
        action: CaAction,
    },

    /// Show certificates, chains, CSRs, CRLs and keys (PEM or DER), or a live server's chain.
    #[command(after_help = "\
Examples:
  cargo run -p certificate -- inspect certs/server.crt
  cargo run -p certificate -- inspect certs/*.crt --json
  cargo run -p certificate -- inspect https://localhost:8443")]
    Inspect {
        /// Files, or https://HOST:PORT to show the chain a server sends.
        #[arg(required = true, value_name = "FILE|URL")]
        inputs: Vec<Input>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// For a URL: also say whether the chain verifies against this CA [default: DIR/ca.crt if present].
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },

    /// Check the whole folder as a handshake will; exit 0 only when every check passes.
    #[command(after_help = "\
Examples:
  cargo run -p certificate -- doctor
  cargo run -p certificate -- doctor --host api.internal --certs /etc/mtls --json")]
    Doctor {
        /// The host clients will dial: the server certificate must name it.
        #[arg(long, value_name = "HOST", default_value = "localhost")]
        host: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },

    /// Would a handshake accept this certificate? The path webpki builds, or why it refuses.
    #[command(after_help = "\
Examples:
  cargo run -p certificate -- verify certs/server.crt --host localhost
  cargo run -p certificate -- verify certs/client-a.crt --purpose client --crl certs/crl.pem
  cargo run -p certificate -- verify certs/server.crt --host 127.0.0.1 --at 2026-12-01   # next month?
  cargo run -p certificate -- verify leaf.pem --ca roots.pem --untrusted more.pem --json

Exit status: 0 accepted, 1 rejected (or a file cannot be used), 2 usage.")]
    Verify {
        /// The certificate to verify: PEM, optionally followed by its chain (or one DER
        /// certificate).
        #[arg(value_name = "LEAF")]
        leaf: PathBuf,
        /// The trust anchors: every certificate in this file [default: DIR/ca.crt].
        #[arg(long, value_name = "ROOTS")]
        ca: Option<PathBuf>,
        /// More candidate intermediates (repeatable).
        #[arg(long, value_name = "FILE")]
        untrusted: Vec<PathBuf>,
        /// The host a client dials (a DNS name or an IP address): the leaf's SANs must name it.
        #[arg(long, value_name = "NAME")]
        host: Option<Host>,
        /// What the certificate is for [default: server with --host, otherwise both].
        #[arg(long, value_enum)]
        purpose: Option<Purpose>,
        /// Verify as of this time: RFC 3339 (2026-06-01T12:00:00Z; fractions and offsets
        /// allowed) or a date (midnight UTC) [default: now].
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        at: Option<OffsetDateTime>,
        /// A CRL file (repeatable): every certificate on the path is checked by the server's
        /// rules (each needs its issuer's current list).
        #[arg(long, value_name = "FILE")]
        crl: Vec<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },

    /// Revoke a certificate: list it in DIR/crl.pem, signed by its CA.
    #[command(after_help = "\
Examples:
  cargo run -p certificate -- revoke client-b --reason key-compromise
  cargo run -p server -- --crl certs/crl.pem        # then Client B is refused as revoked")]
    Revoke {
        /// The certificate to revoke (DIR/NAME.crt).
        name: String,
        /// unspecified, key-compromise, ca-compromise, affiliation-changed, superseded,
        /// cessation-of-operation, certificate-hold, privilege-withdrawn.
        #[arg(long, value_name = "REASON", default_value = "unspecified")]
        reason: Reason,
        /// Days until the list's next update.
        #[arg(long, value_name = "N", default_value_t = crl::DEFAULT_DAYS, value_parser = clap::value_parser!(u32).range(1..=365))]
        crl_days: u32,
    },

    /// Sign DIR/crl.pem again with fresh dates (one list per CA in the folder).
    #[command(after_help = "\
Examples:
  cargo run -p certificate -- crl
  cargo run -p certificate -- crl --days 1")]
    Crl {
        /// Days until the next update.
        #[arg(long, value_name = "N", default_value_t = crl::DEFAULT_DAYS, value_parser = clap::value_parser!(u32).range(1..=365))]
        days: u32,
    },

    /// Write a PKCS#12 bundle: NAME.p12 (key, certificate, chain) or a Java trust store.
    #[command(after_help = "\
Examples:
  cargo run -p certificate -- p12 client-a --password-file secret.txt
  P12_PASSWORD=... cargo run -p certificate -- p12 client-a --password-env P12_PASSWORD --legacy
  cargo run -p certificate -- p12 --truststore --password-env P12_PASSWORD   # certs/truststore.p12
  keytool -list -keystore certs/client-a.p12 -storepass \"$P12_PASSWORD\"")]
    #[command(group = ArgGroup::new("bundle").required(true).args(["name", "truststore"]))]
    #[command(group = ArgGroup::new("password").required(true).args(["password_file", "password_env", "no_password"]))]
    P12 {
        /// The certificate and key to bundle (DIR/NAME.crt, DIR/NAME.key).
        name: Option<String>,
        /// Write DIR/truststore.p12 with the CA as a trusted certificate (Java).
        #[arg(long)]
        truststore: bool,
        /// Read the password from the first line of this file.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Read the password from this environment variable.
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
        /// Write the bundle with an empty password, on purpose.
        #[arg(long)]
        no_password: bool,
        /// 3DES and SHA-1 instead of AES-256 and SHA-256, for macOS Keychain and old Java.
        #[arg(long)]
        legacy: bool,
        /// Replace an existing bundle.
        #[arg(long)]
        force: bool,
    },

    /// Write DIR/ticket.keys, the session-ticket keys a fleet of servers shares (mode 0600),
    /// or rotate it.
    #[command(after_help = "\
Examples:
  cargo run -p certificate -- ticket-keys                 # certs/ticket.keys with one key
  cargo run -p certificate -- ticket-keys --rotate        # a new key in front; keeps 3
  cargo run -p certificate -- ticket-keys --keep 1        # drop all but the newest
  cargo run -p server -- --ticket-keys certs/ticket.keys  # on every server of the fleet

The first key encrypts new tickets, every key decrypts: after a rotation, tickets made
before it still resume; once their key is dropped they do not.")]
    TicketKeys {
        /// Put a fresh key in front of the existing ones (they keep decrypting).
        #[arg(long)]
        rotate: bool,
        /// Keep at most N keys, newest first [default with --rotate: 3].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
        keep: Option<u16>,
        /// Start over with one fresh key (every ticket made so far stops resuming).
        #[arg(long, conflicts_with_all = ["rotate", "keep"])]
        force: bool,
    },

    /// Mint the certificates people trip on, each wrong in one way, into DIR/lab/.
    #[command(after_help = "\
Examples:
  cargo run -p certificate -- lab
  cargo run -p client -- --cert certs/lab/client-expired.crt --key certs/lab/client-expired.key")]
    Lab {
        /// Replace an existing lab.
        #[arg(long)]
        force: bool,
    },
}

/// The two steps of a CA rotation.
#[derive(Subcommand, Debug)]
pub enum CaAction {
    /// Mint a new root (and intermediate, when the folder has one) beside the old ones, and
    /// make ca.crt the trust bundle of both; new and renewed certificates come from the new
    /// CA.
    Rotate {
        /// Validity of the new root [default: as long as the old one].
        #[command(flatten)]
        lifetime: Lifetime,
        /// Key algorithm [default: the old root's].
        #[arg(long, value_name = "TYPE")]
        key_type: Option<KeyType>,
    },
    /// Take the old CA out of ca.crt (its files move to DIR/retired/) once no certificate
    /// in the folder still chains to it.
    Retire {
        /// Retire it even though some certificates still chain only to it (they stop
        /// verifying).
        #[arg(long)]
        force: bool,
    },
}

/// What `issue` makes.
pub fn kind(client: bool, server: bool) -> Kind {
    match (client, server) {
        (true, _) => Kind::Client,
        (_, true) => Kind::Server,
        // The "kind" group requires exactly one of the three flags.
        _ => Kind::Intermediate,
    }
}

/// Where a bundle's password comes from (the "password" group requires exactly one).
pub fn password(file: Option<PathBuf>, env: Option<String>) -> Password {
    match (file, env) {
        (Some(f), _) => Password::File(f),
        (_, Some(v)) => Password::Env(v),
        (None, None) => Password::None,
    }
}

/// The bundle's encryption.
pub fn encryption(legacy: bool) -> Encryption {
    if legacy {
        Encryption::Legacy
    } else {
        Encryption::Modern
    }
}
