//! Real applications behind the proxy, written in Python with the libraries people use
//! (`websockets`, `grpcio`): the scripts are in `tests/support/apps/`, each with a `serve`
//! mode (an application on a free port) and a client mode. CI installs the packages
//! (`.ci/run`); a test that needs one that is missing fails and says how to install it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use crate::process::{Lines, run, text};

/// A Python script in `tests/support/apps/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("apps")
        .join(name)
}

/// Fails the test, saying how to install them, unless python3 can import every module in
/// `modules` (Python names: `grpc`, `websockets`).
pub fn require_python(modules: &[&str]) {
    let imports = format!("import {}", modules.join(", "));
    let found = Command::new("python3")
        .args(["-c", &imports])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "this test runs real Python applications: `python3 -c '{imports}'` failed; install \
         them with `python3 -m pip install grpcio websockets` (.ci/run does)"
    );
}

/// A Python application serving on a free port, killed on drop.
pub struct PythonApp {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it prints (after its `listening on` line: what it saw).
    pub out: Lines,
    /// What it writes to stderr.
    pub log: Lines,
}

impl PythonApp {
    /// Runs `python3 SCRIPT serve` and waits for its `listening on HOST:PORT` line.
    pub fn serve(name: &str, modules: &[&str]) -> Self {
        require_python(modules);
        let mut child = Command::new("python3")
            .arg(script(name))
            .arg("serve")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run python3 {name}: {e}"));
        let out = Lines::collect(child.stdout.take().expect("stdout"));
        let log = Lines::collect(child.stderr.take().expect("stderr"));
        let line = out.wait_for(&["listening on "]);
        let addr = line
            .trim_start_matches("listening on ")
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no address in {line:?}; stderr:\n{}", log.all()));
        Self {
            child,
            addr,
            out,
            log,
        }
    }
}

impl Drop for PythonApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `python3 SCRIPT ARGS...` (a client mode) to completion, bounded by
/// [`crate::PATIENCE`]; returns its output and a dump of it for failure messages.
pub fn run_python(name: &str, args: &[&str]) -> (Output, String) {
    let out = run(Command::new("python3").arg(script(name)).args(args));
    let dump = text(&out);
    (out, dump)
}
