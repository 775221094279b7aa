//! Noticing when to act, for the server and for `client proxy` alike: SIGTERM or Ctrl-C
//! (shut down), SIGHUP and changed files (reload, with [`watch`]).
//!
//! A file has changed when its [`Stamp`] has: its metadata (modification time, size, inode)
//! or its content (SHA-256; certificates and keys are tiny, and an in-place rewrite of the
//! same size within one mtime tick changes nothing else). [`Contents`] reads each file once
//! per attempt, so the bytes that are parsed are the bytes that are fingerprinted.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tracing::info;

use crate::error::{Error, Result};

/// Resolves on Ctrl-C, or on SIGTERM where there is one.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!(signal = "SIGINT", "shutdown requested"),
        () = term => info!(signal = "SIGTERM", "shutdown requested"),
    }
}

/// How to notice that certificates and keys should be reloaded.
#[derive(Clone, Copy, Debug)]
pub struct ReloadTriggers {
    /// Poll the files' metadata this often (`None`: never).
    pub interval: Option<Duration>,
    /// Reload on SIGHUP.
    pub sighup: bool,
}

/// A SIGHUP listener, installed before the server announces itself so that a SIGHUP sent
/// right after start-up reloads rather than kills the process.
pub struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    /// Installs the listener when `enabled` (only on Unix; elsewhere it never fires).
    pub fn install(enabled: bool) -> Result<Self> {
        #[cfg(unix)]
        {
            let signal = if enabled {
                Some(
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                        .map_err(|source| Error::Io {
                            context: "cannot listen for SIGHUP".into(),
                            source,
                        })?,
                )
            } else {
                None
            };
            Ok(Self { signal })
        }
        #[cfg(not(unix))]
        {
            let _ = enabled;
            Ok(Self {})
        }
    }

    /// Resolves at the next SIGHUP (never, when not installed).
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = self.signal.as_mut()
            && s.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await
    }
}

/// A file's metadata and the SHA-256 of its content, to notice that it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    modified: Option<SystemTime>,
    len: Option<u64>,
    inode: Option<u64>,
    sha256: Option<[u8; 32]>,
}

impl Stamp {
    /// Reads `path` once: its stamp, and its bytes for whoever parses them.
    pub fn read(path: &Path) -> (Self, io::Result<Vec<u8>>) {
        let meta = std::fs::metadata(path).ok();
        let bytes = std::fs::read(path);
        let stamp = Self {
            modified: meta.as_ref().and_then(|m| m.modified().ok()),
            len: meta.as_ref().map(std::fs::Metadata::len),
            inode: meta.as_ref().and_then(inode),
            sha256: bytes.as_ref().ok().map(|b| crate::certinfo::sha256(b)),
        };
        (stamp, bytes)
    }

    #[cfg(test)]
    fn of(path: &Path) -> Self {
        Self::read(path).0
    }
}

#[cfg(unix)]
fn inode(m: &std::fs::Metadata) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    Some(m.ino())
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> Option<u64> {
    None
}

/// The files of `files` whose stamp differs from `seen` (the stamps of the last attempt,
/// in the same order). Reads the files: call it off the async threads.
pub fn changed(files: &[&Path], seen: &[Stamp]) -> Vec<PathBuf> {
    files
        .iter()
        .zip(seen)
        .filter(|(path, stamp)| Stamp::read(path).0 != **stamp)
        .map(|(path, _)| path.to_path_buf())
        .collect()
}

/// Files read once, in the order given: each one's [`Stamp`] and its bytes (or the error
/// reading it). The bytes that are parsed are the bytes that are fingerprinted.
pub struct Contents(Vec<(Stamp, io::Result<Vec<u8>>)>);

impl Contents {
    /// Reads every file of `files` (call it off the async threads).
    pub fn read(files: &[&Path]) -> Self {
        Self(files.iter().map(|p| Stamp::read(p)).collect())
    }

    /// Each file's stamp, in order.
    pub fn stamps(&self) -> Vec<Stamp> {
        self.0.iter().map(|(stamp, _)| stamp.clone()).collect()
    }

    /// The bytes of file `i`, or the error reading it: `unreadable` makes the error from the
    /// operating system's reason.
    pub fn take(
        &mut self,
        i: usize,
        unreadable: impl FnOnce(io::Error) -> Error,
    ) -> Result<Vec<u8>> {
        match self
            .0
            .get_mut(i)
            .map(|(_, bytes)| std::mem::replace(bytes, Err(io::Error::other("already parsed"))))
        {
            Some(Ok(bytes)) => Ok(bytes),
            Some(Err(e)) => Err(unreadable(e)),
            None => Err(unreadable(io::ErrorKind::NotFound.into())),
        }
    }
}

/// Reload bookkeeping: the files' stamps at the last attempt (to tell what changed since),
/// and how many reloads succeeded and failed.
#[derive(Debug, Default)]
pub struct Attempts {
    seen: Mutex<Vec<Stamp>>,
    succeeded: AtomicU64,
    failed: AtomicU64,
}

impl Attempts {
    /// After the first load, which read `first`.
    pub fn after(first: &Contents) -> Self {
        Self {
            seen: Mutex::new(first.stamps()),
            ..Self::default()
        }
    }

    /// Reads `files` for an attempt, and remembers their stamps: a failed attempt is
    /// retried when a file changes again.
    pub fn read(&self, files: &[&Path]) -> Contents {
        let contents = Contents::read(files);
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = contents.stamps();
        contents
    }

    /// The files of `files` that changed since the last attempt (reads them).
    pub fn changed(&self, files: &[&Path]) -> Vec<PathBuf> {
        changed(files, &self.seen.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Counts an attempt's outcome.
    pub fn count<T>(&self, result: &Result<T>) {
        let counter = match result {
            Ok(_) => &self.succeeded,
            Err(_) => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reloads so far: (succeeded, failed).
    pub fn counts(&self) -> (u64, u64) {
        (
            self.succeeded.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// What [`watch`] reloads: files it can tell changed, and a reload of all of them.
pub trait Reloadable: Send + Sync + 'static {
    /// What a reload made.
    type Loaded: Send + 'static;
    /// The files whose stamp differs from the last attempt (reads them).
    fn changed(&self) -> Vec<PathBuf>;
    /// Loads everything again; on failure what was loaded before stays.
    fn reload(&self) -> Result<Self::Loaded>;
}

/// One reload attempt, as [`watch`] reports it.
#[derive(Debug)]
pub struct Attempt<T> {
    /// `SIGHUP` or `file change`.
    pub trigger: &'static str,
    /// The files that changed, comma-separated (`(none)`: a SIGHUP with nothing changed).
    pub changed: String,
    /// What the reload made, or why it failed.
    pub result: Result<T>,
}

/// Reloads `live` on SIGHUP, and when one of its files changed (looked at every
/// `triggers.interval`), until `stop` resolves; `report` is told of each attempt. Files
/// are read and parsed on the blocking thread pool, not the async threads.
pub async fn watch<R: Reloadable>(
    live: Arc<R>,
    triggers: ReloadTriggers,
    mut hangup: Hangup,
    stop: impl Future<Output = ()>,
    report: impl Fn(Attempt<R::Loaded>),
) {
    tokio::pin!(stop);
    let mut ticker = triggers.interval.map(|every| {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        let tick = async {
            match ticker.as_mut() {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let trigger = tokio::select! {
            () = hangup.recv() => "SIGHUP",
            () = tick => "file change",
            () = &mut stop => return,
        };
        let work = {
            let live = live.clone();
            tokio::task::spawn_blocking(move || {
                let changed = live.changed();
                if trigger == "file change" && changed.is_empty() {
                    return None;
                }
                Some((changed, live.reload()))
            })
        };
        let (changed, result) = match work.await {
            Ok(Some(done)) => done,
            Ok(None) => continue,
            Err(e) => (
                Vec::new(),
                Err(Error::Invalid(format!("the reload did not finish ({e})"))),
            ),
        };
        let changed = match changed.is_empty() {
            true => "(none)".to_string(),
            false => changed
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        };
        report(Attempt {
            trigger,
            changed,
            result,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_file_counts_as_changed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.pem");
        std::fs::write(&path, "one").expect("write");
        let before = Stamp::of(&path);
        assert_eq!(before, Stamp::of(&path));
        let tmp = dir.path().join("a.pem.tmp");
        std::fs::write(&tmp, "two!").expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
        assert_ne!(before, Stamp::of(&path));
        assert_ne!(before, Stamp::of(&dir.path().join("missing.pem")));
    }

    #[test]
    fn a_same_size_rewrite_in_place_counts_as_changed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.pem");
        std::fs::write(&path, "one").expect("write");
        let before = Stamp::of(&path);
        let modified = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("mtime");
        // Same size, same inode, and the same modification time (as within one tick of a
        // coarse clock): only the content tells.
        std::fs::write(&path, "two").expect("write");
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(modified))
            .expect("reset mtime");
        let after = Stamp::of(&path);
        assert_eq!(
            (before.modified, before.len, before.inode),
            (after.modified, after.len, after.inode)
        );
        assert_ne!(before, after);
    }
}
