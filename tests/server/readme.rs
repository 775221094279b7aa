//! The server's log quoted in the docs still matches what it writes.

use std::os::unix::fs::PermissionsExt;

use testkit::readme;
use testkit::{Pki, ServerProcess, fetch, utf8};

use crate::SERVER;

#[test]
fn the_readme_quotes_the_server_log_as_it_writes_it() {
    let pki = Pki::demo();
    readme::check("server", |scenario| match scenario {
        "server log" => {
            let server = ServerProcess::start(SERVER, &["--certs", utf8(pki.dir())]);
            let ex = fetch(
                &server.url("localhost"),
                pki.certs.ca_cert(),
                pki.pair("client-a"),
            )
            .expect("Client A is served");
            assert_eq!(ex.status.as_u16(), 200);
            server.log.wait_for(&["Header", "method=GET"]);
            format!("{}\n{}", server.out.all(), server.log.all())
        }
        "server debug log --no-cert" => {
            let server = ServerProcess::start_with_env(
                SERVER,
                &["--certs", utf8(pki.dir())],
                &[("RUST_LOG", "debug")],
            );
            let refused = fetch(&server.url("localhost"), pki.certs.ca_cert(), None);
            assert!(
                refused.is_err(),
                "a client without a certificate is refused"
            );
            server.log.wait_for(&["handshake trace end"]);
            server.log.all()
        }
        "server log, a CA file others can write" => {
            // Its own copy of the set, run from the folder above it, so the log says certs/ca.crt.
            let loose = Pki::demo();
            let ca = loose.certs.ca_cert();
            std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o666)).expect("chmod");
            let root = loose.dir().parent().expect("certs/ has a parent");
            let mut cmd = std::process::Command::new(SERVER);
            cmd.args(["--addr", "127.0.0.1:0"]).current_dir(root);
            let server = ServerProcess::spawn(cmd);
            server
                .log
                .wait_for(&["the CA file is writable by other users"]);
            server.log.all()
        }
        other => panic!("the server tests do not run {other:?}"),
    });
}
