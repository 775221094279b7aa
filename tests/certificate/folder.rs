//! A demo set minted by the binary into a temporary folder, and the subcommands run on it.

use std::path::PathBuf;
use std::process::{Command, Output};

use testkit::{run, text, utf8 as s};

use crate::CERTIFICATE;

/// A demo set minted by the binary into a temp dir.
pub struct Folder {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

impl Folder {
    pub fn new(extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("certs");
        let out = run(Command::new(CERTIFICATE)
            .args(["--out", s(&dir)])
            .args(extra));
        assert!(out.status.success(), "{}", text(&out));
        Self { _tmp: tmp, dir }
    }

    pub fn p(&self, name: &str) -> String {
        s(&self.dir.join(name)).to_string()
    }

    /// Runs a subcommand, with `--certs DIR` appended unless it is `inspect`.
    pub fn cmd(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(CERTIFICATE);
        cmd.args(args);
        if args.first() != Some(&"inspect") {
            cmd.args(["--certs", s(&self.dir)]);
        }
        run(&mut cmd)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Hidden files left in the folder (temporary files of a write), other than its lock.
    pub fn leftovers(&self) -> Vec<String> {
        let lock = mtls::files::CertsDir::new(&self.dir).lock_file();
        std::fs::read_dir(&self.dir)
            .expect("list the folder")
            .filter_map(Result::ok)
            .filter(|e| e.path() != lock)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect()
    }

    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    }
}
