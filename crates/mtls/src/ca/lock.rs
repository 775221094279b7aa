//! One `certificate` run at a time per folder. Every command that changes the folder
//! (the mint, issue, renew, revoke, crl, p12, lab) holds an advisory lock on `DIR/.lock`
//! for its whole read-modify-write, so twelve `revoke` runs add twelve entries and two
//! `issue --force` runs never mix their files. Reading (`doctor`, `inspect`) takes no lock.
//!
//! The lock belongs to the open file, so it goes away with the process that holds it, even
//! one that is killed: a `.lock` file left behind never blocks anyone.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::files::CertsDir;

/// How long a run waits for another one before it gives up.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// After this long a waiting run says why it is waiting.
const NOTICE_AFTER: Duration = Duration::from_secs(1);

/// The longest pause between two attempts.
const LONGEST_PAUSE: Duration = Duration::from_millis(50);

/// Proof that this run holds a folder's lock; dropping it lets the next run in.
#[derive(Debug)]
#[must_use = "the lock is released as soon as this is dropped"]
pub struct FolderLock {
    _file: File,
}

/// Locks `dir` (which must exist) for this run, waiting up to [`PATIENCE`] for another run
/// to finish with it; a run that waits longer than a second says so on stderr.
pub fn hold(dir: &CertsDir) -> Result<FolderLock> {
    hold_within(dir, PATIENCE)
}

/// [`hold`], giving up after `patience`.
pub fn hold_within(dir: &CertsDir, patience: Duration) -> Result<FolderLock> {
    let path = dir.lock_file();
    let file = open(&path).map_err(|source| {
        if dir.path().is_dir() {
            Error::Write { path, source }
        } else {
            Error::read("the certificate folder", dir.path(), source)
        }
    })?;
    let start = Instant::now();
    let mut told = false;
    let mut pause = Duration::from_millis(5);
    // Bounded by `patience`: every pass either returns or sleeps toward the deadline.
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(FolderLock { _file: file }),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(source)) => {
                return Err(Error::Io {
                    context: format!("cannot lock {}", dir.lock_file().display()),
                    source,
                });
            }
        }
        let waited = start.elapsed();
        if waited >= patience {
            return Err(Error::Busy {
                dir: dir.path().to_path_buf(),
                lock: dir.lock_file(),
                waited,
            });
        }
        if !told && waited >= NOTICE_AFTER {
            tracing::info!(
                folder = %dir.path().display(),
                lock = %dir.lock_file().display(),
                "waiting for another `certificate` run to finish with the folder"
            );
            told = true;
        }
        std::thread::sleep(pause.min(patience - waited));
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// Opens (or creates, 0600) the lock file; its content is never read or written.
fn open(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_folder_is_refused_once_the_patience_runs_out() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = CertsDir::new(tmp.path());
        let held = hold(&dir).expect("the first lock");
        let err = hold_within(&dir, Duration::from_millis(50)).expect_err("still held");
        assert!(
            matches!(&err, Error::Busy { lock, .. } if lock == &dir.lock_file()),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("another `certificate` run has held"),
            "{err}"
        );
        drop(held);
        let _again = hold_within(&dir, Duration::from_millis(50)).expect("free once dropped");
    }

    #[test]
    fn a_missing_folder_is_named_and_not_created() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = CertsDir::new(tmp.path().join("absent"));
        let err = hold(&dir).expect_err("no folder");
        assert!(
            matches!(&err, Error::Read { path, .. } if path == dir.path()),
            "{err}"
        );
        assert!(!dir.path().exists());
    }
}
