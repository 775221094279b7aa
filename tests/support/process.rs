//! Processes under test: a command run to completion, the server binary on a free port
//! (its log read line by line), the library's server in a thread; and the two ways a test
//! waits: for a log line ([`Lines`]), or for a condition ([`poll`]), both bounded by
//! [`PATIENCE`].

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use mtls::files::CertsDir;

use crate::pki::{Pki, utf8};

/// How long any single wait in a test may take before the test fails with a dump.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A position in a [`Lines`] log (see [`Lines::mark`]).
#[derive(Clone, Copy, Debug)]
pub struct Mark(usize);

/// Lines a child process wrote to stderr, shared with a reader thread.
#[derive(Clone, Default)]
pub struct Lines(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Lines {
    fn push(&self, line: String) {
        let (lock, cv) = &*self.0;
        lock.lock().expect("lines lock").push(line);
        cv.notify_all();
    }

    /// The lines `from` yields (a child's stderr), gathered by a thread of its own.
    pub fn collect(from: impl std::io::Read + Send + 'static) -> Self {
        let log = Lines::default();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines().map_while(Result::ok) {
                sink.push(line);
            }
        });
        log
    }

    pub fn all(&self) -> String {
        self.0.0.lock().expect("lines lock").join("\n")
    }

    /// Waits until a line contains every needle; returns it, or panics with the whole log.
    pub fn wait_for(&self, needles: &[&str]) -> String {
        self.wait_for_count(needles, 1)
            .pop()
            .expect("at least one matching line")
    }

    /// Waits until `n` lines contain every needle; returns them, or panics with the log.
    pub fn wait_for_count(&self, needles: &[&str], n: usize) -> Vec<String> {
        self.wait_for_count_after(Mark(0), needles, n)
    }

    /// A point in the log: later waits can look only at what comes after it, so that a
    /// line from an earlier step cannot satisfy them.
    pub fn mark(&self) -> Mark {
        Mark(self.0.0.lock().expect("lines lock").len())
    }

    /// Like [`Lines::wait_for`], but only lines written after `mark` count.
    pub fn wait_for_after(&self, mark: Mark, needles: &[&str]) -> String {
        self.wait_for_count_after(mark, needles, 1)
            .pop()
            .expect("at least one matching line")
    }

    /// Like [`Lines::wait_for_count`], but only lines written after `mark` count.
    pub fn wait_for_count_after(&self, mark: Mark, needles: &[&str], n: usize) -> Vec<String> {
        self.try_wait(mark, needles, n)
            .unwrap_or_else(|problem| panic!("{problem}"))
    }

    /// Waits until `n` lines after `mark` contain every needle; Err says what was missing
    /// and holds the whole log.
    fn try_wait(&self, mark: Mark, needles: &[&str], n: usize) -> Result<Vec<String>, String> {
        let (lock, cv) = &*self.0;
        let deadline = Instant::now() + PATIENCE;
        let mut lines = lock.lock().expect("lines lock");
        loop {
            let found: Vec<String> = lines
                .iter()
                .skip(mark.0)
                .filter(|l| needles.iter().all(|x| l.contains(x)))
                .cloned()
                .collect();
            if found.len() >= n {
                return Ok(found);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "fewer than {n} log lines after line {} contain {needles:?}; the log was:\n{}",
                    mark.0,
                    lines.join("\n")
                ));
            }
            lines = cv.wait_timeout(lines, left).expect("lines wait").0;
        }
    }

    /// How many lines contain every needle.
    pub fn count(&self, needles: &[&str]) -> usize {
        self.0
            .0
            .lock()
            .expect("lines lock")
            .iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }
}

/// A running server binary, killed on drop.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// What it writes to stderr (the server's log).
    pub log: Lines,
    /// What it writes to stdout (the "listening on" line; an example's whole story).
    pub out: Lines,
}

impl ServerProcess {
    /// Starts `bin` with `args` (plus `--addr 127.0.0.1:0` unless given) and waits for its
    /// "listening on" line.
    pub fn start(bin: &str, args: &[&str]) -> Self {
        Self::start_with_env(bin, args, &[])
    }

    /// Like [`ServerProcess::start`], with environment variables set after the defaults
    /// (`RUST_LOG=info`), which they may replace.
    pub fn start_with_env(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(bin);
        if !args.contains(&"--addr") {
            cmd.args(["--addr", "127.0.0.1:0"]);
        }
        cmd.args(args).envs(env.iter().copied());
        Self::spawn(cmd)
    }

    /// Starts `cmd` (any server that prints `listening on https://ADDR` first on stdout)
    /// and waits for that line. `RUST_LOG` is `info` and `NO_COLOR` is set unless `cmd`
    /// sets them.
    pub fn spawn(cmd: Command) -> Self {
        Self::spawn_announcing(cmd, "listening on https://")
    }

    /// Like [`ServerProcess::spawn`], for a plain-HTTP listener that prints `listening on
    /// http://ADDR` first (`client proxy`).
    pub fn spawn_plain(cmd: Command) -> Self {
        Self::spawn_announcing(cmd, "listening on http://")
    }

    fn spawn_announcing(mut cmd: Command, announce: &str) -> Self {
        for (name, default) in [("RUST_LOG", "info"), ("NO_COLOR", "1")] {
            if !cmd.get_envs().any(|(n, _)| n == name) {
                cmd.env(name, default);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn the server");
        let log = Lines::collect(child.stderr.take().expect("stderr"));
        let out = Lines::collect(child.stdout.take().expect("stdout"));
        let unstarted = "0.0.0.0:0".parse().expect("an address");
        let mut server = Self {
            child,
            addr: unstarted,
            log,
            out,
        };
        let line = match server.out.try_wait(Mark(0), &[announce], 1) {
            Ok(mut lines) => lines.pop().unwrap_or_default(),
            Err(problem) => panic!("{problem}\nits stderr:\n{}", server.log.all()),
        };
        server.addr = line
            .trim_start_matches(announce)
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|_| panic!("no address in {line:?}; the log:\n{}", server.log.all()));
        server
    }

    pub fn url(&self, host: &str) -> String {
        format!("https://{host}:{}/", self.addr.port())
    }

    /// Sends `signal` (`HUP`, `TERM`) without waiting for anything.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let out = run(Command::new("kill").args([&format!("-{signal}"), &pid]));
        assert!(out.status.success(), "{}", text(&out));
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let log = self.log.clone();
        poll(
            &format!("the server to exit after SIGTERM; its log:\n{}", log.all()),
            || self.child.try_wait().expect("wait"),
        )
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server binary `bin` on the demo set in `pki`, with `extra` flags.
pub fn start_server(bin: &str, pki: &Pki, extra: &[&str]) -> ServerProcess {
    start_server_with_env(bin, pki, extra, &[])
}

/// Like [`start_server`], with environment variables (`RUST_LOG=debug`, `SSLKEYLOGFILE`).
pub fn start_server_with_env(
    bin: &str,
    pki: &Pki,
    extra: &[&str],
    env: &[(&str, &str)],
) -> ServerProcess {
    let mut args = vec!["--certs", utf8(pki.dir())];
    args.extend_from_slice(extra);
    ServerProcess::start_with_env(bin, &args, env)
}

/// The library's server on a free port, in a thread of its own; stops on drop.
pub struct InProcessServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessServer {
    pub fn start(settings: mtls::server::ServerSettings) -> Self {
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async move {
                let server = match mtls::server::Server::bind(&settings).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = addr_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = addr_tx.send(Ok(server.local_addr().expect("local addr")));
                let _ = server
                    .run(async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let addr = addr_rx
            .recv_timeout(PATIENCE)
            .expect("server thread answered")
            .unwrap_or_else(|e| panic!("server did not start: {e}"));
        Self {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self, host: &str) -> String {
        format!("https://{host}:{}/", self.addr.port())
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Server settings for the demo set in `pki`, on a free port, with short drain.
pub fn server_settings(pki: &Pki) -> mtls::server::ServerSettings {
    server_settings_in(pki.dir())
}

/// Server settings for the demo set in `dir`, on a free port, with short drain.
pub fn server_settings_in(dir: &Path) -> mtls::server::ServerSettings {
    let mut s = mtls::server::ServerSettings::in_dir(&CertsDir::new(dir));
    s.addr = "127.0.0.1:0".into();
    s.drain_timeout = Duration::from_secs(2);
    s
}

/// Runs a command to completion (bounded by PATIENCE), returning its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null());
    finish(cmd, None)
}

/// Runs a command with `input` on its standard input (then closed), to completion (bounded
/// by PATIENCE), returning its output.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    cmd.stdin(Stdio::piped());
    finish(cmd, Some(input.to_vec()))
}

fn finish(cmd: &mut Command, input: Option<Vec<u8>>) -> Output {
    cmd.env("NO_COLOR", "1");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&input);
        });
    }
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(PATIENCE) {
        Ok(out) => out.expect("wait for the command"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{cmd:?} did not finish in {PATIENCE:?}");
        }
    }
}

/// stdout and stderr together, for assertions and failure dumps.
pub fn text(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Whether an external tool is installed (CI installs them; a missing one fails loudly).
pub fn require_tool(name: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{name} is required for this test (apt-get install -y {name})"
    );
}

/// Polls `check` every 20 ms until it returns `Some`, for at most [`PATIENCE`].
pub fn poll<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
