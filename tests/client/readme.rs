//! The client's output quoted in the docs still matches what it prints.

use std::process::Command;

use mtls::server::policy::Rule;
use testkit::readme::{self, as_cargo_runs};
use testkit::{InProcessServer, Pki, run, server_settings};

use crate::CLIENT;

#[test]
fn the_readme_quotes_the_client_as_it_prints() {
    let pki = Pki::demo();
    let server = InProcessServer::start(server_settings(&pki));
    let url = server.url("localhost");
    // Run from the folder above certs/, as from the workspace root: paths read certs/ca.crt.
    let root = pki.dir().parent().expect("certs/ has a parent");
    let client = |args: &[&str]| {
        let out = run(as_cargo_runs(&mut Command::new(CLIENT), "client")
            .args(args)
            .args(["--url", &url])
            .current_dir(root)
            .env("RUST_LOG", "warn"));
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    readme::check("client", |scenario| match scenario {
        "client -c=a" => client(&["-c=a"]),
        "client --no-cert" => client(&["--no-cert"]),
        "client --no-cert --tls-version 1.2" => client(&["--no-cert", "--tls-version", "1.2"]),
        "client -c a --trace" => client(&["-c", "a", "--trace"]),
        "client -c b, the server allowing only client-a" => {
            let mut settings = server_settings(&pki);
            let only_a = Rule::uri("spiffe://mtls.demo/client-a").expect("a rule");
            settings.access.rules = vec![only_a];
            let strict = InProcessServer::start(settings);
            let out = run(as_cargo_runs(&mut Command::new(CLIENT), "client")
                .args(["-c", "b", "--url", &strict.url("localhost")])
                .current_dir(root)
                .env("RUST_LOG", "warn"));
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        "client audit, our server with --crl" => {
            mtls::ca::crl::resign(&pki.certs, 7).expect("an empty list per CA");
            let crl = pki.certs.crl();
            let mut settings = server_settings(&pki);
            settings.crls = vec![crl.clone()];
            let with_crl = InProcessServer::start(settings);
            let out = run(as_cargo_runs(&mut Command::new(CLIENT), "client")
                .args([
                    "audit",
                    "--url",
                    &with_crl.url("localhost"),
                    "--ca",
                    "certs/ca.crt",
                ])
                .args([
                    "--cert",
                    "certs/client-a.crt",
                    "--key",
                    "certs/client-a.key",
                ])
                .args([
                    "--issuer-cert",
                    "certs/ca.crt",
                    "--issuer-key",
                    "certs/ca.key",
                ])
                .args(["--crl-hint", "certs/crl.pem"])
                .current_dir(root)
                .env("RUST_LOG", "warn"));
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        other => panic!("the client tests do not run {other:?}"),
    });
}
