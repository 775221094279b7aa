//! `cargo run -p certificate`: mint the demo CA, server and client certificates into certs/,
//! and the small CA tool around them (issue, renew, list, ca rotate/retire, inspect, doctor,
//! verify, revoke, crl, p12, lab), and the session-ticket keys a fleet of servers shares
//! (ticket-keys).
//!
//! Each run: the command line (args.rs) becomes a typed request, one library call in
//! `mtls::ca` does the work, and its outcome becomes the output and the exit status.

mod args;

use std::process::ExitCode;

use args::{CaAction, Cli, Command, Lifetime, MINT_ONLY};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use mtls::ca::demo::{self, DemoOptions};
use mtls::ca::issue::IssueRequest;
use mtls::ca::p12::P12Target;
use mtls::ca::rotate::{self, RotateRequest};
use mtls::ca::watch::{self, WatchOptions};
use mtls::ca::{crl, doctor, inspect, issue, lab, list, p12, ticket_keys};
use mtls::cli::{finish, say};
use mtls::files::CertsDir;
use mtls::verify;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Some(what) = cli.generate {
        return mtls::cli::generate(Cli::command(), what);
    }
    // The mint's flags before a subcommand would be silently ignored: say so instead.
    if let Some((sub, _)) = matches.subcommand()
        && let Some(flag) = MINT_ONLY
            .iter()
            .find(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
    {
        let flag = format!("--{}", flag.replace('_', "-"));
        let help = mtls::program::Program::Certificate.command(&format!("{sub} --help"));
        return finish(Err(mtls::Error::Usage(format!(
            "{flag} belongs to minting the demo set, not to `{sub}`; put options of `{sub}` \
             after it (`{help}` lists them)"
        ))));
    }
    let _log = mtls::logging::init();
    finish(run(cli))
}

fn run(cli: Cli) -> mtls::Result<ExitCode> {
    let dir = CertsDir::new(cli.certs);
    let Some(command) = cli.command else {
        return mint(dir, cli.mint);
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
        } => {
            let req = IssueRequest {
                name,
                kind: args::kind(client, server),
                sans: san,
                common_name: cn,
                organization: org,
                validity: lifetime.or_days(365),
                key_type,
                issuer,
                force,
            };
            say(issue::issue(&dir, &req)?);
        }
        Command::Renew {
            name,
            lifetime,
            key_type,
            san,
            watch: false,
            renew_at: _,
        } => say(issue::renew(&dir, &name, lifetime.get(), key_type, &san)?),
        Command::Renew {
            name,
            lifetime,
            key_type,
            watch: true,
            renew_at,
            ..
        } => {
            let opts = WatchOptions {
                share: renew_at.unwrap_or(watch::DEFAULT_SHARE),
                length: lifetime.length(),
                key_type,
            };
            let stop = mtls::triggers::shutdown_signal();
            let watching = watch::watch(&dir, &name, opts, stop, |event| say(event));
            let renewals = mtls::cli::block_on(Some(1), watching)??;
            say(format_args!(
                "stopped watching {name} ({renewals} renewals)\n"
            ));
        }
        Command::List { expiring, json } => {
            let inventory = list::list(&dir, expiring)?;
            match json {
                true => say(format_args!("{:#}\n", inventory.to_json())),
                false => say(&inventory),
            }
            return Ok(exit(!inventory.any_expired()));
        }
        Command::Ca { action } => match action {
            CaAction::Rotate { lifetime, key_type } => {
                let req = RotateRequest {
                    length: lifetime.length(),
                    key_type,
                };
                say(rotate::rotate(&dir, &req)?);
            }
            CaAction::Retire { force } => say(rotate::retire(&dir, force)?),
        },
        Command::Inspect { inputs, json, ca } => {
            let ca = ca.or_else(|| Some(dir.ca_cert()).filter(|p| p.exists()));
            let results = inspect::inputs(&inputs, ca.as_deref())?;
            if json {
                say(format_args!("{:#}\n", inspect::to_json(&results)));
            } else {
                let texts: Vec<String> = results.iter().map(ToString::to_string).collect();
                say(texts.join("\n"));
            }
        }
        Command::Doctor { host, json } => {
            let report = doctor::examine(&dir, &host)?;
            match json {
                true => say(format_args!("{:#}\n", report.to_json())),
                false => say(&report),
            }
            return Ok(exit(report.passed()));
        }
        Command::Verify {
            leaf,
            ca,
            untrusted,
            host,
            purpose,
            at,
            crl,
            json,
        } => {
            let req = verify::Request {
                leaf,
                ca_is_default: ca.is_none(),
                ca: ca.unwrap_or_else(|| dir.ca_cert()),
                untrusted,
                host,
                purpose,
                at,
                crls: crl,
            };
            let report = verify::verify(&req)?;
            match json {
                true => say(format_args!("{:#}\n", report.to_json())),
                false => say(&report),
            }
            return Ok(exit(report.accepted()));
        }
        Command::Revoke {
            name,
            reason,
            crl_days,
        } => say(crl::revoke(&dir, &name, reason, crl_days)?),
        Command::Crl { days } => {
            let lists = crl::resign(&dir, days)?;
            say(format_args!(
                "Signed {} again:\n{}",
                dir.crl().display(),
                crl::Lists(&lists)
            ));
        }
        Command::P12 {
            name,
            truststore: _,
            password_file,
            password_env,
            no_password: _,
            legacy,
            force,
        } => {
            let target = match name {
                Some(name) => P12Target::Identity(name),
                None => P12Target::Truststore,
            };
            let password = args::password(password_file, password_env);
            say(p12::write(
                &dir,
                &target,
                &password,
                args::encryption(legacy),
                force,
            )?);
        }
        Command::Lab { force } => say(lab::mint(&dir, force)?),
        Command::TicketKeys {
            rotate,
            keep,
            force,
        } => {
            let req = ticket_keys::TicketKeysRequest {
                rotate,
                keep: keep.map(usize::from),
                force,
            };
            say(ticket_keys::write(&dir, &req)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn mint(dir: CertsDir, args: args::MintArgs) -> mtls::Result<ExitCode> {
    let mut opts = DemoOptions::new(dir);
    opts.key_type = args.key_type;
    opts.leaf_validity = args.lifetime.or_days(365);
    opts.ca_validity = Lifetime {
        days: args.ca_days,
        hours: args.ca_hours,
        minutes: None,
    }
    .or_days(3650);
    opts.extra_sans = args.san;
    opts.intermediate = args.intermediate;
    opts.force = args.force;
    let set = demo::mint(&opts)?;
    say(&set);
    if !set.all_ok() {
        eprintln!("error: some checks failed (marked FAIL above)");
    }
    Ok(exit(set.all_ok()))
}

/// 0 when everything passed, 1 otherwise.
fn exit(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
