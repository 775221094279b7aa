//! Helpers shared by the end-to-end tests: a temp PKI per test, the server binary on a
//! free port, the library server in-process, and log matching that waits on lines, not on
//! sleeps.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use mtls::ca::demo::{self, DemoOptions};
use mtls::ca::write::{self, Access};
use mtls::files::CertsDir;
use mtls::pki::{self, CertAuthority, KeyType, LeafSpec, Usage, Validity};
use time::OffsetDateTime;

/// How long any single wait in a test may take before the test fails with a dump.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A demo PKI in a temporary folder. The CA starts 30 days in the past, so expired and
/// not-yet-valid leaves can be issued inside its lifetime.
pub struct Pki {
    _tmp: tempfile::TempDir,
    pub certs: CertsDir,
}

impl Pki {
    pub fn demo() -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let certs = CertsDir::new(tmp.path().join("certs"));
        let mut opts = DemoOptions::new(certs.clone());
        let now = OffsetDateTime::now_utc();
        opts.ca_validity = Validity {
            not_before: now - time::Duration::days(30),
            not_after: now + time::Duration::days(3650),
        };
        let set = demo::mint(&opts).expect("mint the demo set");
        assert!(set.all_ok(), "demo set checks failed:\n{set}");
        Self { _tmp: tmp, certs }
    }

    pub fn dir(&self) -> &Path {
        self.certs.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.certs.path().join(name)
    }

    /// The certificate and key files of `stem`, as [`fetch`] takes them.
    pub fn pair(&self, stem: &str) -> Option<(PathBuf, PathBuf)> {
        Some((self.certs.cert(stem), self.certs.key(stem)))
    }

    /// Writes to `path` a CRL signed by the demo CA that revokes the leaves in `stems`
    /// (next update in 7 days), with the library's own CRL code.
    pub fn write_crl(&self, path: &Path, stems: &[&str]) {
        let now = OffsetDateTime::now_utc();
        let entries: Vec<mtls::ca::crl::Entry> = stems
            .iter()
            .map(|stem| {
                let leaf = &mtls::pem::certificates(&self.certs.cert(stem), "a test leaf")
                    .expect("read the leaf")[0];
                let info = mtls::certinfo::CertInfo::parse(leaf).expect("parse the leaf");
                mtls::ca::crl::Entry {
                    serial: info.serial,
                    at: now - time::Duration::minutes(1),
                    reason: None,
                }
            })
            .collect();
        // A fresh number each time, so a newer list is told apart from an older one.
        let number = u64::try_from(now.unix_timestamp_nanos() / 1000).expect("time");
        let pem = mtls::ca::crl::sign(
            &self.ca(),
            &entries,
            number,
            now,
            now + time::Duration::days(7),
        )
        .expect("sign the CRL");
        write::atomic(path, pem.as_bytes(), Access::Public).expect("write the CRL");
    }

    pub fn ca(&self) -> CertAuthority {
        CertAuthority::load(&self.certs.ca_cert(), &self.certs.key("ca")).expect("load the demo CA")
    }

    /// Writes `stem.crt` and `stem.key`, issued by `ca`.
    pub fn issue(&self, ca: &CertAuthority, stem: &str, spec: &LeafSpec) {
        let leaf = ca.issue(spec).expect("issue a leaf");
        write::atomic(
            &self.certs.cert(stem),
            leaf.cert_pem.as_bytes(),
            Access::Public,
        )
        .expect("write cert");
        write::atomic(
            &self.certs.key(stem),
            leaf.key_pem.as_bytes(),
            Access::Secret,
        )
        .expect("write key");
    }

    /// A second, unrelated root CA ("Other CA"), written as `stem.crt`/`stem.key`.
    pub fn other_ca(&self, stem: &str) -> CertAuthority {
        let ca = CertAuthority::new_root(
            pki::demo_subject("Other CA Company", "Other CA"),
            KeyType::EcdsaP256,
            Validity::days(30),
        )
        .expect("mint another CA");
        write::atomic(
            &self.certs.cert(stem),
            ca.cert_pem.as_bytes(),
            Access::Public,
        )
        .expect("write");
        write::atomic(
            &self.certs.key(stem),
            ca.key_pem().as_bytes(),
            Access::Secret,
        )
        .expect("write");
        ca
    }
}

/// A leaf spec with the demo subject and the given names.
pub fn leaf(cn: &str, usage: Usage, sans: &[&str], validity: Validity) -> LeafSpec {
    LeafSpec {
        subject: pki::demo_subject(&format!("{cn} Company"), cn),
        sans: sans
            .iter()
            .map(|s| pki::parse_san(s).expect("san"))
            .collect(),
        usage,
        key_type: KeyType::EcdsaP256,
        validity,
    }
}

/// A window that ended an hour ago.
pub fn expired() -> Validity {
    let now = OffsetDateTime::now_utc();
    Validity {
        not_before: now - time::Duration::days(10),
        not_after: now - time::Duration::hours(1),
    }
}

/// A window that starts in a day.
pub fn not_yet_valid() -> Validity {
    let now = OffsetDateTime::now_utc();
    Validity {
        not_before: now + time::Duration::days(1),
        not_after: now + time::Duration::days(30),
    }
}

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
                return found;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "fewer than {n} log lines after line {} contain {needles:?}; the log was:\n{}",
                mark.0,
                lines.join("\n")
            );
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
    pub log: Lines,
}

impl ServerProcess {
    /// Starts `bin` with `args` (plus `--addr 127.0.0.1:0` unless given) and waits for its
    /// "listening on" line.
    pub fn start(bin: &str, args: &[&str]) -> Self {
        let mut cmd = Command::new(bin);
        if !args.contains(&"--addr") {
            cmd.args(["--addr", "127.0.0.1:0"]);
        }
        cmd.args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn the server");
        let log = Lines::default();
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.push(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = match rx.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server printed no 'listening on' line; its log:\n{}",
                    log.all()
                );
            }
        };
        let addr = line
            .strip_prefix("listening on https://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("address in the listening line");
        Self { child, addr, log }
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
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after SIGTERM:\n{}",
                self.log.all()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    cmd.stdin(Stdio::null()).env("NO_COLOR", "1");
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
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

/// Fetches `url` with the library client (the same code the client binary runs).
pub fn fetch(
    url: &str,
    ca: PathBuf,
    identity: Option<(PathBuf, PathBuf)>,
) -> mtls::Result<mtls::client::Exchange> {
    let mut settings = mtls::client::ClientSettings::new(
        ca,
        identity.map(|(c, k)| (c, k, "the test client".to_string())),
    );
    settings.url = url.parse()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(mtls::client::fetch(&settings))
}

/// Runs curl (bounded by PATIENCE) as the holder of `stem`'s certificate in `certs`,
/// trusting the CA there, with `args` after those options.
pub fn curl_as(certs: &CertsDir, stem: &str, args: &[&str]) -> Output {
    require_tool("curl");
    let path = |p: PathBuf| p.to_str().expect("utf-8 path").to_string();
    run(Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(path(certs.ca_cert()))
        .arg("--cert")
        .arg(path(certs.cert(stem)))
        .arg("--key")
        .arg(path(certs.key(stem)))
        .args(args))
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
