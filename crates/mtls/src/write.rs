//! Writing files atomically, with private keys readable only by their owner and folders
//! only their owner may change, whatever the umask.
//!
//! A half-written key or certificate is worse than none: each file goes to a temporary
//! name in the same folder, is flushed to disk, then renamed over the target in one step.
//! Files that belong together (a key and its certificate) are published together by
//! [`publish_all`]: all of them are staged first, so a full disk leaves nothing behind, and
//! if one cannot be put in place the ones before it are undone.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
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

/// The mode of every folder this tool creates: only the owner may add, remove or replace
/// the files the server will trust.
pub const FOLDER_MODE: u32 = 0o700;

/// Whether anything is at `path`, a symbolic link included (even one that points nowhere).
pub fn present(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Refuses to go on when anything is at `path` (a symbolic link too, even a dangling one)
/// and `force` is off; `why` says what replacing a file there would break.
pub fn ensure_absent(path: &Path, force: bool, why: &str) -> Result<()> {
    if !force && present(path) {
        return Err(in_the_way(path, why));
    }
    Ok(())
}

/// Refuses a symbolic link at `path` (even a dangling one), saying where it points.
pub fn refuse_symlink(path: &Path) -> Result<()> {
    match fs::read_link(path) {
        Ok(target) => Err(Error::SymlinkInTheWay {
            path: path.to_path_buf(),
            dangling: fs::metadata(path).is_err(),
            target,
        }),
        Err(_) => Ok(()),
    }
}

/// The error for something at `path` that must not be replaced: a symbolic link is named
/// as one, with where it points; anything else "already exists" because of `why`.
fn in_the_way(path: &Path, why: &str) -> Error {
    match refuse_symlink(path) {
        Err(link) => link,
        Ok(()) => Error::AlreadyExists {
            path: path.to_path_buf(),
            why: why.to_string(),
        },
    }
}

/// Creates `dir` and any missing parents, each mode [`FOLDER_MODE`] whatever the umask. A
/// folder that already exists (or that someone else creates meanwhile) keeps its mode.
pub fn create_dir(dir: &Path) -> Result<()> {
    // The missing folders, deepest first; `ancestors` ends at the root or at "".
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && fs::metadata(p).is_err())
        .collect();
    for folder in missing.into_iter().rev() {
        match new_private_dir(folder) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && folder.is_dir() => {}
            Err(source) => {
                return Err(Error::Write {
                    path: folder.to_path_buf(),
                    source,
                });
            }
        }
    }
    Ok(())
}

#[cfg(unix)]
fn new_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new().mode(FOLDER_MODE).create(dir)?;
    // The umask can only take bits away; give the owner back any it took (umask 0200).
    fs::set_permissions(dir, fs::Permissions::from_mode(FOLDER_MODE))
}

#[cfg(not(unix))]
fn new_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir(dir)
}

/// Writes `bytes` to `path` atomically, replacing what is there.
pub fn atomic(path: &Path, bytes: &[u8], access: Access) -> Result<()> {
    publish(path, bytes, access, true)
}

/// Writes `bytes` to `path` atomically. Without `replace`, an existing file is never
/// touched, even if it appeared after an earlier [`ensure_absent`] check.
pub fn publish(path: &Path, bytes: &[u8], access: Access, replace: bool) -> Result<()> {
    publish_all(
        &[NewFile {
            path,
            bytes,
            access,
        }],
        replace,
    )
}

/// Publishes a private key (0600) and its certificate (0644) together or not at all, as
/// [`publish_all`] does.
pub fn publish_pair(
    key_path: &Path,
    key_pem: &str,
    cert_path: &Path,
    cert_pem: &str,
    replace: bool,
) -> Result<()> {
    publish_all(
        &[
            NewFile {
                path: key_path,
                bytes: key_pem.as_bytes(),
                access: Access::Secret,
            },
            NewFile {
                path: cert_path,
                bytes: cert_pem.as_bytes(),
                access: Access::Public,
            },
        ],
        replace,
    )
}

/// One file for [`publish_all`].
#[derive(Clone, Copy, Debug)]
pub struct NewFile<'a> {
    /// Where it goes.
    pub path: &'a Path,
    /// What it holds.
    pub bytes: &'a [u8],
    /// Who may read it.
    pub access: Access,
}

/// Publishes `files` together or not at all: each is written to a temporary name and
/// flushed first (a full disk stops here, with nothing changed), then each is put in
/// place; if one cannot be, those before it are undone (the old file is back, or none).
/// Without `replace`, an existing file (or symbolic link) is never touched.
pub fn publish_all(files: &[NewFile<'_>], replace: bool) -> Result<()> {
    let mut staged: Vec<PathBuf> = Vec::with_capacity(files.len());
    for file in files {
        match stage(file) {
            Ok(tmp) => staged.push(tmp),
            Err(source) => {
                remove_quietly(&staged);
                return Err(Error::Write {
                    path: file.path.to_path_buf(),
                    source,
                });
            }
        }
    }
    let mut placed: Vec<Placed> = Vec::with_capacity(files.len());
    for (file, tmp) in files.iter().zip(&staged) {
        match place(file.path, tmp, replace) {
            Ok(p) => placed.push(p),
            Err(e) => {
                for p in placed.iter().rev() {
                    p.undo();
                }
                remove_quietly(&staged);
                return Err(match e.kind() {
                    io::ErrorKind::AlreadyExists => in_the_way(
                        file.path,
                        "it appeared while this run was writing (another program made it)",
                    ),
                    _ => Error::Write {
                        path: file.path.to_path_buf(),
                        source: e,
                    },
                });
            }
        }
    }
    for p in &placed {
        p.keep();
    }
    // Temporary files linked into place (no `replace`) are still there under their own name.
    remove_quietly(&staged);
    // Make the renames durable; not every platform can open a folder.
    let mut folders: Vec<PathBuf> = files.iter().map(|f| folder_of(f.path)).collect();
    folders.dedup();
    for folder in folders {
        if let Ok(d) = fs::File::open(&folder) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// A file put in place, and the old one it replaced (kept under a hidden name until every
/// file of the set is in place).
struct Placed {
    path: PathBuf,
    backup: Option<PathBuf>,
}

impl Placed {
    /// Puts the old file back, or removes the new one if there was none.
    fn undo(&self) {
        let _ = match &self.backup {
            Some(old) => fs::rename(old, &self.path),
            None => fs::remove_file(&self.path),
        };
    }

    /// Lets the old file go.
    fn keep(&self) {
        if let Some(old) = &self.backup {
            let _ = fs::remove_file(old);
        }
    }
}

/// Writes `file` to a fresh temporary name beside its target, flushed, with its mode set
/// whatever the umask.
fn stage(file: &NewFile<'_>) -> io::Result<PathBuf> {
    let tmp = hidden_beside(file.path, "tmp");
    let written = (|| {
        let mut out = open_new(&tmp, file.access)?;
        out.write_all(file.bytes)?;
        out.sync_all()
    })();
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Puts the staged `tmp` at `path`: replacing what is there (kept as a backup), or, without
/// `replace`, only if nothing is there (a hard link fails if the name is taken: the check
/// and the write are one step).
fn place(path: &Path, tmp: &Path, replace: bool) -> io::Result<Placed> {
    if !replace {
        fs::hard_link(tmp, path)?;
        return Ok(Placed {
            path: path.to_path_buf(),
            backup: None,
        });
    }
    let backup = if present(path) {
        let old = hidden_beside(path, "old");
        // A second name for the old file (or link): it stays readable at `path` meanwhile.
        fs::hard_link(path, &old)?;
        Some(old)
    } else {
        None
    };
    if let Err(e) = fs::rename(tmp, path) {
        if let Some(old) = &backup {
            let _ = fs::remove_file(old);
        }
        return Err(e);
    }
    Ok(Placed {
        path: path.to_path_buf(),
        backup,
    })
}

/// `DIR/.NAME.KIND-PID-N`: a name no other file or run uses (the folder scan skips names
/// starting with a dot).
fn hidden_beside(path: &Path, kind: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    folder_of(path).join(format!(
        ".{name}.{kind}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn remove_quietly(paths: &[PathBuf]) {
    for p in paths {
        let _ = fs::remove_file(p);
    }
}

#[cfg(unix)]
fn open_new(path: &Path, access: Access) -> io::Result<fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(access.mode())
        .open(path)?;
    // The umask may have taken bits away (077 makes a certificate 0600): put them back.
    file.set_permissions(fs::Permissions::from_mode(access.mode()))?;
    Ok(file)
}

#[cfg(not(unix))]
fn open_new(path: &Path, _access: Access) -> io::Result<fs::File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perms::mode;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    #[cfg(unix)]
    fn secrets_are_written_0600_and_replace_atomically() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.key");
        atomic(&path, b"one", Access::Secret).expect("first write");
        atomic(&path, b"two", Access::Secret).expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        assert_eq!(mode(&path).expect("mode"), 0o600);
        assert_eq!(
            names_in(dir.path()),
            ["x.key"],
            "temporary files left behind"
        );
    }

    #[test]
    fn publishing_without_replace_never_touches_an_existing_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ca.key");
        publish(&path, b"first", Access::Secret, false).expect("first write");
        let err = publish(&path, b"second", Access::Secret, false).expect_err("must refuse");
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
        assert!(err.to_string().contains("another program"), "{err}");
        assert_eq!(fs::read(&path).expect("read"), b"first");
        assert_eq!(names_in(dir.path()), ["ca.key"], "temp file left");
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

    #[test]
    #[cfg(unix)]
    fn a_dangling_symlink_is_in_the_way_and_named_as_a_link_to_its_target() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.crt");
        let target = dir.path().join("nowhere.crt");
        std::os::unix::fs::symlink(&target, &path).expect("symlink");
        let err = ensure_absent(&path, false, "it matters").expect_err("a link is something");
        match &err {
            Error::SymlinkInTheWay {
                path: p,
                target: t,
                dangling,
            } => {
                assert_eq!((p, t, *dangling), (&path, &target, true));
            }
            other => panic!("not a symlink error: {other}"),
        }
        // The no-replace publish says the same, rather than blaming another run.
        let err = publish(&path, b"x", Access::Public, false).expect_err("must refuse");
        assert!(matches!(err, Error::SymlinkInTheWay { .. }), "{err}");
        assert!(!target.exists(), "written through the link");
    }

    #[test]
    fn a_set_whose_second_file_cannot_be_placed_leaves_the_first_as_it_was() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = dir.path().join("x.key");
        let cert = dir.path().join("x.crt");
        fs::write(&key, b"old key").expect("write");
        // A non-empty folder where the certificate goes: no rename can replace it.
        fs::create_dir(&cert).expect("mkdir");
        fs::write(cert.join("inside"), b"").expect("write");
        let set = [
            NewFile {
                path: &key,
                bytes: b"new key",
                access: Access::Secret,
            },
            NewFile {
                path: &cert,
                bytes: b"new cert",
                access: Access::Public,
            },
        ];
        let err = publish_all(&set, true).expect_err("the certificate cannot be placed");
        assert!(
            matches!(err, Error::Write { ref path, .. } if path == &cert),
            "{err}"
        );
        assert_eq!(fs::read(&key).expect("read"), b"old key");
        assert_eq!(names_in(dir.path()), ["x.crt", "x.key"], "leftovers");

        // Without replace and with no old key, the new key is taken back out.
        fs::remove_file(&key).expect("rm");
        let err = publish_all(&set, false).expect_err("the certificate's name is taken");
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
        assert!(!present(&key), "the key was left without its certificate");
        assert_eq!(names_in(dir.path()), ["x.crt"], "leftovers");
    }

    #[test]
    #[cfg(unix)]
    fn new_folders_are_0700_and_existing_ones_keep_their_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let kept = dir.path().join("kept");
        fs::create_dir(&kept).expect("mkdir");
        fs::set_permissions(&kept, fs::Permissions::from_mode(0o750)).expect("chmod");
        let deep = kept.join("a").join("b");
        create_dir(&deep).expect("create");
        assert_eq!(mode(&kept).expect("mode"), 0o750);
        assert_eq!(mode(&kept.join("a")).expect("mode"), 0o700);
        assert_eq!(mode(&deep).expect("mode"), 0o700);
        create_dir(&deep).expect("creating it again is fine");
        assert_eq!(mode(&deep).expect("mode"), 0o700);
        // A file where a folder should be is named in the error.
        let file = deep.join("file");
        fs::write(&file, b"").expect("write");
        let err = create_dir(&file.join("sub")).expect_err("a file is in the way");
        assert!(
            matches!(err, Error::Write { ref path, .. } if path == &file.join("sub")),
            "{err}"
        );
    }
}
