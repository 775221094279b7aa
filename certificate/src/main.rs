//! `cargo run -p certificate`: mint the demo CA, server and client certificates into certs/,
//! and the small CA tool around them (issue, renew, inspect, doctor, revoke, p12, lab).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use mtls::ca::crl::Reason;
use mtls::ca::demo::{self, DemoOptions};
use mtls::ca::issue::{IssueRequest, Kind};
use mtls::ca::p12::{Encryption, Password};
use mtls::files::{CertsDir, DEFAULT_DIR};
use mtls::pki::{KeyType, Validity};

const EXAMPLES: &str = "\
Examples:
  cargo run -p certificate                          # certs/: ca, server, client-a, client-b
  cargo run -p certificate -- --intermediate        # root -> intermediate -> leaves
  cargo run -p certificate -- --san my-host.test    # one more name on the server certificate
  cargo run -p certificate -- --key-type rsa-2048 --hours 8 --out /tmp/pki --force
  cargo run -p certificate -- issue client-c --client
  cargo run -p certificate -- doctor";

/// Mints a root CA, a server certificate and two client certificates (Client A, Client B),
/// then checks that they fit together. Subcommands manage the folder as a small CA.
#[derive(Parser, Debug)]
#[command(name = "certificate", version, after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    mint: MintArgs,
}

/// How long a certificate lives: `--days N` or `--hours N`.
#[derive(Args, Debug, Clone, Copy)]
struct Lifetime {
    /// Validity in days.
    #[arg(long, value_name = "N", conflicts_with = "hours", value_parser = clap::value_parser!(u32).range(1..=36500))]
    days: Option<u32>,

    /// Validity in hours (short-lived certificates).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=876000))]
    hours: Option<u32>,
}

impl Lifetime {
    fn get(self) -> Option<Validity> {
        match (self.days, self.hours) {
            (_, Some(h)) => Some(Validity::hours(h)),
            (Some(d), None) => Some(Validity::days(d)),
            (None, None) => None,
        }
    }

    fn or_days(self, days: u32) -> Validity {
        self.get().unwrap_or_else(|| Validity::days(days))
    }
}

#[derive(Args, Debug)]
struct MintArgs {
    /// Folder to write into.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    out: PathBuf,

    /// Key algorithm: ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096.
    #[arg(long, value_name = "TYPE", default_value = "ecdsa-p256")]
    key_type: KeyType,

    /// Validity of the server and client certificates (--days N or --hours N) [default: 365 days].
    #[command(flatten)]
    lifetime: Lifetime,

    /// Validity of the CA certificate, in days (leaves never outlive it) [default: 3650].
    #[arg(long, value_name = "N", conflicts_with = "ca_hours", value_parser = clap::value_parser!(u32).range(1..=36500))]
    ca_days: Option<u32>,

    /// Validity of the CA certificate, in hours.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=876000))]
    ca_hours: Option<u32>,

    /// Extra subject alternative name for the server (DNS:name, IP:addr, URI:uri; repeatable).
    #[arg(long, value_name = "SAN")]
    san: Vec<String>,

    /// Build root -> intermediate -> leaves; leaf files carry the intermediate.
    #[arg(long)]
    intermediate: bool,

    /// Replace existing files, including the CA (every certificate it issued stops working).
    #[arg(long)]
    force: bool,
}

/// Where the folder is, for every subcommand.
#[derive(Args, Debug)]
struct Folder {
    /// The certificate folder.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR, visible_alias = "out")]
    certs: PathBuf,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Issue one more certificate from the folder's CA.
    #[command(after_help = "\
Examples:
  cargo run -p certificate -- issue client-c --client              # URI SAN spiffe://mtls.demo/client-c
  cargo run -p certificate -- issue api --server --san api.internal --san 10.0.0.5
  cargo run -p certificate -- issue batch --client --hours 8 --cn \"Batch Job\"
  cargo run -p certificate -- issue team-ca --intermediate          # signed by the root")]
    #[command(group = clap::ArgGroup::new("kind").required(true))]
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
        #[arg(long, value_name = "SAN")]
        san: Vec<String>,
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
        #[command(flatten)]
        folder: Folder,
    },

    /// Re-issue a leaf with the same subject and SANs, a fresh key and a new validity.
    #[command(after_help = "\
Examples:
  cargo run -p certificate -- renew client-a
  cargo run -p certificate -- renew server --hours 24
  cargo run -p certificate -- renew server --san api.internal   # keep its names, add one")]
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
        #[arg(long, value_name = "SAN")]
        san: Vec<String>,
        #[command(flatten)]
        folder: Folder,
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
        inputs: Vec<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// For a URL: also say whether the chain verifies against this CA [default: certs/ca.crt if present].
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },

    /// Check the whole folder as a handshake will; exit 0 only when every check passes.
    #[command(after_help = "\
Examples:
  cargo run -p certificate -- doctor
  cargo run -p certificate -- doctor --host api.internal --certs /etc/mtls")]
    Doctor {
        /// The host clients will dial: the server certificate must name it.
        #[arg(long, value_name = "HOST", default_value = "localhost")]
        host: String,
        #[command(flatten)]
        folder: Folder,
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
        #[arg(long, value_name = "N", default_value_t = mtls::ca::crl::DEFAULT_DAYS, value_parser = clap::value_parser!(u32).range(1..=365))]
        crl_days: u32,
        #[command(flatten)]
        folder: Folder,
    },

    /// Sign DIR/crl.pem again with fresh dates (one list per CA in the folder).
    #[command(after_help = "\
Examples:
  cargo run -p certificate -- crl
  cargo run -p certificate -- crl --days 1")]
    Crl {
        /// Days until the next update.
        #[arg(long, value_name = "N", default_value_t = mtls::ca::crl::DEFAULT_DAYS, value_parser = clap::value_parser!(u32).range(1..=365))]
        days: u32,
        #[command(flatten)]
        folder: Folder,
    },

    /// Write a PKCS#12 bundle: NAME.p12 (key, certificate, chain) or a Java trust store.
    #[command(after_help = "\
Examples:
  cargo run -p certificate -- p12 client-a --password-file secret.txt
  P12_PASSWORD=... cargo run -p certificate -- p12 client-a --password-env P12_PASSWORD --legacy
  cargo run -p certificate -- p12 --truststore --password-env P12_PASSWORD   # certs/truststore.p12
  keytool -list -keystore certs/client-a.p12 -storepass \"$P12_PASSWORD\"")]
    P12 {
        /// The certificate and key to bundle (DIR/NAME.crt, DIR/NAME.key).
        #[arg(required_unless_present = "truststore", conflicts_with = "truststore")]
        name: Option<String>,
        /// Write DIR/truststore.p12 with the CA as a trusted certificate (Java).
        #[arg(long)]
        truststore: bool,
        /// Read the password from the first line of this file.
        #[arg(long, value_name = "FILE", group = "password")]
        password_file: Option<PathBuf>,
        /// Read the password from this environment variable.
        #[arg(long, value_name = "VAR", group = "password")]
        password_env: Option<String>,
        /// Write the bundle with an empty password, on purpose.
        #[arg(long, group = "password")]
        no_password: bool,
        /// 3DES and SHA-1 instead of AES-256 and SHA-256, for macOS Keychain and old Java.
        #[arg(long)]
        legacy: bool,
        /// Replace an existing bundle.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        folder: Folder,
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
        #[command(flatten)]
        folder: Folder,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = mtls::logging::init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints to stdout; a closed pipe (`| head`) is not worth a panic.
fn say(text: impl std::fmt::Display) {
    let _ = write!(std::io::stdout().lock(), "{text}");
}

fn run(cli: Cli) -> mtls::Result<ExitCode> {
    let Some(command) = cli.command else {
        return mint(cli.mint);
    };
    match command {
        Command::Issue {
            name,
            client,
            server,
            intermediate: _,
            san,
            cn,
            org,
            issuer,
            key_type,
            lifetime,
            force,
            folder,
        } => {
            let kind = if client {
                Kind::Client
            } else if server {
                Kind::Server
            } else {
                Kind::Intermediate
            };
            let req = IssueRequest {
                name,
                kind,
                sans: san,
                common_name: cn,
                organization: org,
                validity: lifetime.or_days(365),
                key_type,
                issuer,
                force,
            };
            say(mtls::ca::issue::issue(&CertsDir::new(folder.certs), &req)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Renew {
            name,
            lifetime,
            key_type,
            san,
            folder,
        } => {
            let dir = CertsDir::new(folder.certs);
            say(mtls::ca::issue::renew(
                &dir,
                &name,
                lifetime.get(),
                key_type,
                &san,
            )?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { inputs, json, ca } => inspect(inputs, json, ca),
        Command::Doctor { host, folder } => {
            let report = mtls::ca::doctor::examine(&CertsDir::new(folder.certs), &host)?;
            say(&report);
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Revoke {
            name,
            reason,
            crl_days,
            folder,
        } => {
            let dir = CertsDir::new(folder.certs);
            say(mtls::ca::crl::revoke(&dir, &name, reason, crl_days)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Crl { days, folder } => {
            let dir = CertsDir::new(folder.certs);
            let lists = mtls::ca::crl::resign(&dir, days)?;
            say(format_args!(
                "Signed {} again:\n{}",
                dir.crl().display(),
                mtls::ca::crl::Lists(&lists)
            ));
            Ok(ExitCode::SUCCESS)
        }
        Command::P12 {
            name,
            truststore,
            password_file,
            password_env,
            no_password,
            legacy,
            force,
            folder,
        } => {
            let password = match (password_file, password_env, no_password) {
                (Some(f), _, _) => Password::File(f),
                (_, Some(v), _) => Password::Env(v),
                (_, _, true) => Password::None,
                _ => {
                    return Err(mtls::Error::Invalid(
                        "choose where the password comes from: --password-file FILE, --password-env VAR, or --no-password".into(),
                    ));
                }
            };
            let encryption = if legacy {
                Encryption::Legacy
            } else {
                Encryption::Modern
            };
            let dir = CertsDir::new(folder.certs);
            let written = match (truststore, name) {
                (true, _) => mtls::ca::p12::truststore(&dir, &password, encryption, force)?,
                (false, Some(name)) => {
                    mtls::ca::p12::identity(&dir, &name, &password, encryption, force)?
                }
                (false, None) => {
                    return Err(mtls::Error::Invalid(
                        "name the certificate to bundle, or pass --truststore".into(),
                    ));
                }
            };
            say(written);
            Ok(ExitCode::SUCCESS)
        }
        Command::Lab { force, folder } => {
            let lab = mtls::ca::lab::mint(&CertsDir::new(folder.certs), force)?;
            say(&lab);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn mint(args: MintArgs) -> mtls::Result<ExitCode> {
    let mut opts = DemoOptions::new(CertsDir::new(args.out));
    opts.key_type = args.key_type;
    opts.leaf_validity = args.lifetime.or_days(365);
    opts.ca_validity = Lifetime {
        days: args.ca_days,
        hours: args.ca_hours,
    }
    .or_days(3650);
    opts.extra_sans = args.san;
    opts.intermediate = args.intermediate;
    opts.force = args.force;
    let set = demo::mint(&opts)?;
    say(&set);
    if set.all_ok() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: some checks failed (marked FAIL above)");
        Ok(ExitCode::FAILURE)
    }
}

fn inspect(inputs: Vec<String>, json: bool, ca: Option<PathBuf>) -> mtls::Result<ExitCode> {
    let mut results = Vec::new();
    for input in inputs {
        if input.starts_with("https://") || input.starts_with("http://") {
            let ca = ca.clone().or_else(|| {
                let default = CertsDir::default().ca_cert();
                default.exists().then_some(default)
            });
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| mtls::Error::Io {
                    context: "cannot start the async runtime".into(),
                    source,
                })?;
            results.push(runtime.block_on(mtls::ca::inspect::live(&input, ca.as_deref()))?);
        } else {
            results.push(mtls::ca::inspect::file(std::path::Path::new(&input))?);
        }
    }
    if json {
        let value = if results.len() == 1 {
            results[0].to_json()
        } else {
            serde_json::Value::Array(results.iter().map(|r| r.to_json()).collect())
        };
        say(format_args!("{value:#}\n"));
    } else {
        for (i, r) in results.iter().enumerate() {
            if i > 0 {
                say("\n");
            }
            say(r);
        }
    }
    Ok(ExitCode::SUCCESS)
}
