//! Operating the PKI under load: the server binary and a loop of clients (the library
//! client, which reads its files afresh for every request, as the client binary does)
//! while the CA is rotated and retired, and while `renew --watch` keeps one-minute
//! certificates fresh. Not one request may fail, and the server's log shows each step.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mtls::ca::rotate::{self, RotateRequest};
use mtls::ca::watch::{self, Event, WatchOptions};
use mtls::ca::{crl, issue};
use mtls::certinfo::CertInfo;
use mtls::files::CertsDir;
use mtls::pki::Validity;
use testkit::{Pki, fetch, poll, utf8};

use crate::start;

/// The longest a client loop runs, whatever happens to the test.
const LOOP_LIMIT: Duration = Duration::from_secs(90);

/// The pause before each request of a client loop.
const PAUSE: Duration = Duration::from_millis(10);

/// Clients that keep asking the server, each with its own certificate files, until stopped.
struct ClientLoop {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<JoinHandle<()>>,
}

impl ClientLoop {
    fn start(url: String, ca: PathBuf, pairs: Vec<(PathBuf, PathBuf)>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let threads = pairs
            .into_iter()
            .map(|pair| {
                let (url, ca) = (url.clone(), ca.clone());
                let (stop, done, failures) = (stop.clone(), done.clone(), failures.clone());
                std::thread::spawn(move || {
                    let began = Instant::now();
                    while !stop.load(Ordering::Relaxed) && began.elapsed() < LOOP_LIMIT {
                        // A steady trickle, not a flood: other tests share the machine.
                        std::thread::sleep(PAUSE);
                        match fetch(&url, ca.clone(), Some(pair.clone())) {
                            Ok(ex) if ex.status == 200 => {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(ex) => failures.lock().expect("failures").push(format!(
                                "{}: status {}",
                                pair.0.display(),
                                ex.status
                            )),
                            Err(e) => failures
                                .lock()
                                .expect("failures")
                                .push(format!("{}: {e}", pair.0.display())),
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            done,
            failures,
            threads,
        }
    }

    /// Waits until `n` more requests have succeeded.
    fn wait_for_more(&self, n: u64) {
        let target = self.done.load(Ordering::Relaxed) + n;
        poll(&format!("{n} more successful requests"), || {
            (self.done.load(Ordering::Relaxed) >= target).then_some(())
        });
    }

    /// Stops the loop, requires that no request failed, and returns how many succeeded.
    fn stop_without_failures(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("a client thread");
        }
        let failures = self.failures.lock().expect("failures").clone();
        let done = self.done.load(Ordering::Relaxed);
        assert!(
            failures.is_empty(),
            "{} of {} requests failed: {failures:#?}",
            failures.len(),
            done + failures.len() as u64
        );
        eprintln!("{done} requests, none failed");
        done
    }
}

fn pair(certs: &CertsDir, name: &str) -> (PathBuf, PathBuf) {
    (certs.cert(name), certs.key(name))
}

fn leaf(certs: &CertsDir, name: &str) -> CertInfo {
    let chain = mtls::pem::certificates(&certs.cert(name), "a test certificate").expect("read");
    CertInfo::parse(&chain[0]).expect("parse")
}

#[test]
fn rotating_the_ca_under_a_client_loop_fails_no_request_and_the_retired_ca_is_named() {
    let pki = Pki::demo();
    let certs = &pki.certs;
    crl::resign(certs, 7).expect("crl.pem with the CA's list");
    let server = start(
        &pki,
        &["--crl", utf8(&certs.crl()), "--reload-interval", "100ms"],
    );
    // A client that keeps Client B's first certificate and never renews it.
    let stale = tempfile::tempdir().expect("temp dir");
    let stale_pair = (stale.path().join("b.crt"), stale.path().join("b.key"));
    std::fs::copy(certs.cert("client-b"), &stale_pair.0).expect("copy");
    std::fs::copy(certs.key("client-b"), &stale_pair.1).expect("copy");

    let clients = ClientLoop::start(
        server.url("localhost"),
        certs.ca_cert(),
        vec![pair(certs, "client-a"), pair(certs, "client-b")],
    );
    clients.wait_for_more(20);
    server
        .log
        .wait_for(&["client verified", "client.sha256=", "CN=CA\""]);

    let mark = server.log.mark();
    let rotation = rotate::rotate(certs, &RotateRequest::default()).expect("rotate");
    assert_eq!(rotation.dependents, ["client-a", "client-b", "server"]);
    server
        .log
        .wait_for_after(mark, &["reloaded TLS material", "ca.crt"]);
    clients.wait_for_more(20);

    for name in ["server", "client-a", "client-b"] {
        issue::renew(certs, name, None, None, &[]).expect("renew");
    }
    let server_fp = leaf(certs, "server").fingerprint();
    server.log.wait_for(&[
        "reloaded TLS material",
        &format!("server.cert.sha256={server_fp}"),
    ]);
    // Renewed clients are verified as children of the new root, and the log says which.
    for name in ["client-a", "client-b"] {
        let renewed = leaf(certs, name);
        server.log.wait_for(&[
            "client verified",
            &format!("client.serial={}", renewed.serial_hex()),
            &format!("client.sha256={}", renewed.fingerprint()),
            "CN=CA G2\"",
        ]);
    }

    let mark = server.log.mark();
    rotate::retire(certs, false).expect("retire");
    server
        .log
        .wait_for_after(mark, &["reloaded TLS material", "ca.crt"]);
    clients.wait_for_more(20);
    clients.stop_without_failures();

    // After the retirement, a client still holding an old certificate is refused, and the
    // client says why: its CA was retired.
    let refused = fetch(&server.url("localhost"), certs.ca_cert(), Some(stale_pair))
        .expect_err("an old certificate is refused after the retirement");
    let text = refused.to_string();
    assert!(
        text.contains("alert: unknown_ca") && text.contains("its CA was retired"),
        "{text}"
    );
    assert!(
        text.contains("/retired/ca-") && text.contains("renew"),
        "{text}"
    );
}

/// `renew --watch` for one certificate, in a thread of its own, collecting the
/// fingerprint of each renewal.
struct Watching {
    renewed: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<mtls::Result<u64>>>,
}

impl Watching {
    fn start(certs: &CertsDir, name: &str, share: f64) -> Self {
        let renewed = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (certs, name, seen) = (certs.clone(), name.to_string(), renewed.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let opts = WatchOptions {
                share,
                ..WatchOptions::default()
            };
            let stop = async {
                let _ = stopped.await;
            };
            rt.block_on(watch::watch(&certs, &name, opts, stop, |event| {
                if let Event::Renewed { outcome, .. } = event {
                    seen.lock()
                        .expect("renewals")
                        .push(outcome.info.fingerprint());
                }
            }))
        });
        Self {
            renewed,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Waits for `n` renewals; returns their fingerprints.
    fn wait_for(&self, n: usize) -> Vec<String> {
        poll(&format!("{n} renewals"), || {
            let seen = self.renewed.lock().expect("renewals");
            (seen.len() >= n).then(|| seen.clone())
        })
    }

    fn finish(mut self) -> u64 {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let thread = self.thread.take().expect("the watch thread");
        thread
            .join()
            .expect("join")
            .expect("the watch ends cleanly")
    }
}

#[test]
fn renew_watch_keeps_one_minute_certificates_fresh_under_a_client_loop() {
    let pki = Pki::demo();
    let certs = &pki.certs;
    for name in ["server", "client-a"] {
        issue::renew(certs, name, Some(Validity::minutes(1)), None, &[]).expect("renew");
    }
    let server = start(&pki, &["--reload-interval", "100ms"]);
    let clients = ClientLoop::start(
        server.url("localhost"),
        certs.ca_cert(),
        vec![pair(certs, "client-a")],
    );
    clients.wait_for_more(2);
    // Renewal after 5% of a minute: every three seconds or so.
    let watches = [
        Watching::start(certs, "server", 0.05),
        Watching::start(certs, "client-a", 0.05),
    ];
    let server_renewals = watches[0].wait_for(3);
    let client_renewals = watches[1].wait_for(3);
    for fp in &server_renewals {
        server
            .log
            .wait_for(&["reloaded TLS material", &format!("server.cert.sha256={fp}")]);
    }
    for fp in &client_renewals {
        server
            .log
            .wait_for(&["client verified", &format!("client.sha256={fp}")]);
    }
    for w in watches {
        assert!(w.finish() >= 3);
    }
    clients.stop_without_failures();
    assert_eq!(
        Validity::of(&leaf(certs, "server")).length(),
        time::Duration::minutes(1)
    );
}
