//! Writing files atomically, with private keys readable only by their owner.
//!
//! A half-written key or certificate is worse than none: each file goes to a temporary
//! name in the same folder, is flushed to disk, then renamed over the target in one step.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Who may read the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Certificates, CRLs: mode 0644.
    Public,
    /// Private keys, PKCS#12 bundles: mode 0600.
    Secret,
}

impl Access {
    /// The Unix mode bits.
    pub fn mode(self) -> u32 {
        match self {
            Access::Public => 0o644,
            Access::Secret => 0o600,
        }
    }
}

/// Refuses to go on when `path` exists and `force` is off; `why` says what replacing it
/// would break.
pub fn ensure_absent(path: &Path, force: bool, why: &str) -> Result<()> {
    if !force && path.exists() {
        return Err(Error::AlreadyExists {
            path: path.to_path_buf(),
            why: why.to_string(),
        });
    }
    Ok(())
}

/// Creates `dir` (and its parents) if needed.
pub fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes `bytes` to `path` atomically, replacing what is there.
pub fn atomic(path: &Path, bytes: &[u8], access: Access) -> Result<()> {
    publish(path, bytes, access, true)
}

/// Writes `bytes` to `path` atomically. Without `replace`, an existing file is never
/// touched, even if it appeared after an earlier [`ensure_absent`] check (another run).
pub fn publish(path: &Path, bytes: &[u8], access: Access, replace: bool) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let fail = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let result = (|| {
        let mut file = open_new(&tmp, access)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        if replace {
            fs::rename(&tmp, path)?;
        } else {
            // A hard link fails if the name is taken: the check and the write are one step.
            fs::hard_link(&tmp, path)?;
            fs::remove_file(&tmp)?;
        }
        // Make the rename itself durable; not every platform can open a folder.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e: std::io::Error| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Error::AlreadyExists {
            path: path.to_path_buf(),
            why: "another run created it meanwhile".into(),
        },
        _ => fail(e),
    })
}

#[cfg(unix)]
fn open_new(path: &Path, access: Access) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(access.mode())
        .open(path)
}

#[cfg(not(unix))]
fn open_new(path: &Path, _access: Access) -> std::io::Result<fs::File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perms::mode;

    #[test]
    #[cfg(unix)]
    fn secrets_are_written_0600_and_replace_atomically() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.key");
        atomic(&path, b"one", Access::Secret).expect("first write");
        atomic(&path, b"two", Access::Secret).expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        assert_eq!(mode(&path).expect("mode"), 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left behind");
    }

    #[test]
    fn publishing_without_replace_never_touches_an_existing_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ca.key");
        publish(&path, b"first", Access::Secret, false).expect("first write");
        let err = publish(&path, b"second", Access::Secret, false).expect_err("must refuse");
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
        assert_eq!(fs::read(&path).expect("read"), b"first");
        assert_eq!(
            fs::read_dir(dir.path()).expect("list").count(),
            1,
            "temp file left"
        );
    }

    #[test]
    fn existing_file_is_not_replaced_without_force() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ca.crt");
        fs::write(&path, b"keep").expect("write");
        let err = ensure_absent(&path, false, "it matters").expect_err("must refuse");
        assert!(err.to_string().contains("--force"), "{err}");
        ensure_absent(&path, true, "it matters").expect("force allows it");
    }
}
