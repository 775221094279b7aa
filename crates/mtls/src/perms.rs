//! Who may change a file: the permission checks shared by `certificate doctor` (on a CA
//! folder) and the server (on the files it trusts).
//!
//! A CA certificate is only as trustworthy as the file it lives in: whoever can write
//! `ca.crt`, or the folder that holds it, can append a CA of their own, and every server
//! and client that loads the file will trust what that CA signs.

use std::io;
use std::path::Path;

/// The permission bits of `path` (what `ls -l` shows, as a number such as `0o644`),
/// following symbolic links. Where there are no Unix permissions this is always `0o644`
/// for a file and `0o755` for a folder, as nothing finer can be told.
pub fn mode(path: &Path) -> io::Result<u32> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(meta.permissions().mode() & 0o777)
    }
    #[cfg(not(unix))]
    {
        Ok(if meta.is_dir() { 0o755 } else { 0o644 })
    }
}

/// Whether users other than the owner may change `path`: its group or everyone else has
/// write permission. For a folder that means they may add, remove or replace the files in
/// it, so a CA file inside can be swapped even when the file itself is 0644.
/// Follows symbolic links; an error means `path` could not be examined (it may not exist).
pub fn writable_by_others(path: &Path) -> io::Result<bool> {
    Ok(mode(path)? & 0o022 != 0)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn with_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn group_or_other_write_bits_make_a_file_writable_by_others() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("ca.crt");
        std::fs::write(&file, b"x").expect("write");
        for (bits, expected) in [
            (0o644, false),
            (0o600, false),
            (0o444, false),
            (0o664, true),
            (0o646, true),
            (0o666, true),
        ] {
            with_mode(&file, bits);
            assert_eq!(mode(&file).expect("mode"), bits);
            assert_eq!(
                writable_by_others(&file).expect("stat"),
                expected,
                "mode {bits:o}"
            );
        }
        with_mode(dir.path(), 0o777);
        assert!(writable_by_others(dir.path()).expect("stat"));
        with_mode(dir.path(), 0o700);
        assert!(!writable_by_others(dir.path()).expect("stat"));
    }

    #[test]
    fn a_missing_file_is_an_error_not_a_verdict() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = writable_by_others(&dir.path().join("absent")).expect_err("no file");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
