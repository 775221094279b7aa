//! `certificate ticket-keys`: writes `DIR/ticket.keys`, the session-ticket keys a fleet of
//! servers shares (`server --ticket-keys`), and rotates them. The format and the ticketer
//! are [`crate::tickets`]'s; this is the folder's side: the lock, the atomic 0600 write,
//! and which keys stay.
//!
//! A rotation puts a fresh key in front (it encrypts from then on) and keeps the newest
//! `--keep N` keys, so tickets made a moment ago still resume; a key that falls off the end
//! ends the tickets it made. Servers pick the file up at their next reload: copy it to every
//! server of the fleet. A server that has the new file first makes tickets the others
//! cannot read yet; their clients make one full handshake, nothing fails.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::ca::lock;
use crate::error::{Error, Result};
use crate::files::CertsDir;
use crate::program::Program;
use crate::tickets::{TicketKey, TicketKeys};
use crate::write::{self, Access};

/// How many keys a rotation keeps unless told: the new one and the two before it.
pub const DEFAULT_KEEP: usize = 3;

/// What `certificate ticket-keys` was asked to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TicketKeysRequest {
    /// Put a fresh key in front of the existing ones.
    pub rotate: bool,
    /// Keep at most this many keys, newest first ([`DEFAULT_KEEP`] when rotating).
    pub keep: Option<usize>,
    /// Start over with one fresh key, whatever the file holds.
    pub force: bool,
}

/// What was written.
#[derive(Clone, Debug)]
pub struct TicketKeysReport {
    /// The file.
    pub path: PathBuf,
    /// The keys' ids, the encrypting one first.
    pub ids: Vec<String>,
    /// The new key's id, if one was made.
    pub new: Option<String>,
    /// The ids of the keys dropped.
    pub dropped: Vec<String>,
}

/// Writes or rotates `DIR/ticket.keys` under the folder's lock.
pub fn write(dir: &CertsDir, req: &TicketKeysRequest) -> Result<TicketKeysReport> {
    write::create_dir(dir.path())?;
    let _lock = lock::hold(dir)?;
    let path = dir.ticket_keys();
    if !req.force {
        write::refuse_symlink(&path)?;
    }
    let existing = match (req.force, std::fs::read(&path)) {
        (true, _) => None,
        (false, Ok(bytes)) => Some(TicketKeys::parse(&bytes, &path)?),
        (false, Err(e)) if e.kind() == io::ErrorKind::NotFound => None,
        (false, Err(e)) => return Err(Error::read(crate::tickets::WHAT, &path, e)),
    };
    let (mut keys, new) = match existing {
        None => {
            let keys = TicketKeys::generate()?;
            let id = keys.keys()[0].id();
            (keys, Some(id))
        }
        Some(mut keys) if req.rotate => {
            let key = TicketKey::generate()?;
            let id = key.id();
            keys.rotate(key);
            (keys, Some(id))
        }
        Some(keys) if req.keep.is_some() => (keys, None),
        Some(_) => {
            return Err(Error::AlreadyExists {
                path,
                why: "servers loading it would stop resuming the tickets its keys made. Pass \
                      --rotate to put a new key in front (the old ones keep decrypting), \
                      --keep N to drop all but the newest N, or --force to start over"
                    .into(),
            });
        }
    };
    let dropped = keys.keep(req.keep.unwrap_or(DEFAULT_KEEP));
    write::atomic(&path, keys.to_text().as_bytes(), Access::Secret)?;
    Ok(TicketKeysReport {
        path,
        ids: keys.keys().iter().map(TicketKey::id).collect(),
        new,
        dropped: dropped.iter().map(TicketKey::id).collect(),
    })
}

impl fmt::Display for TicketKeysReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.ids.len();
        writeln!(
            f,
            "Wrote {} (mode 0600): {n} session-ticket key{}, the first encrypts new tickets, \
             every one decrypts.",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for (i, id) in self.ids.iter().enumerate() {
            let role = match (i, self.new.as_deref() == Some(id.as_str())) {
                (0, true) => "new: encrypts new tickets",
                (0, false) => "encrypts new tickets",
                _ => "decrypts tickets made before",
            };
            writeln!(f, "  {}. {id}  {role}", i + 1)?;
        }
        if !self.dropped.is_empty() {
            writeln!(
                f,
                "Dropped {} key{} (the tickets made with it no longer resume): {}",
                self.dropped.len(),
                if self.dropped.len() == 1 { "" } else { "s" },
                self.dropped.join(", ")
            )?;
        }
        let path = self.path.display();
        writeln!(
            f,
            "Copy it to every server of the fleet, keeping it secret. Start them with `{}`; \
             running ones load a changed file at their next reload (within \
             --reload-interval, or on SIGHUP).",
            Program::Server.command(&format!("--ticket-keys {path}"))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids_in(dir: &CertsDir) -> Vec<String> {
        let bytes = std::fs::read(dir.ticket_keys()).expect("read");
        TicketKeys::parse(&bytes, &dir.ticket_keys())
            .expect("parse")
            .keys()
            .iter()
            .map(TicketKey::id)
            .collect()
    }

    #[test]
    fn rotations_put_a_new_key_in_front_and_keep_the_newest() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = CertsDir::new(tmp.path().join("fleet"));
        let first = write(&dir, &TicketKeysRequest::default()).expect("write");
        assert_eq!(first.ids.len(), 1);
        assert_eq!(first.new.as_deref(), Some(first.ids[0].as_str()));
        let again = write(&dir, &TicketKeysRequest::default()).expect_err("exists");
        assert!(again.to_string().contains("--rotate"), "{again}");

        let rotate = TicketKeysRequest {
            rotate: true,
            ..TicketKeysRequest::default()
        };
        for _ in 0..3 {
            write(&dir, &rotate).expect("rotate");
        }
        let ids = ids_in(&dir);
        assert_eq!(ids.len(), DEFAULT_KEEP);
        assert!(!ids.contains(&first.ids[0]), "the oldest fell off the end");

        let trimmed = write(
            &dir,
            &TicketKeysRequest {
                keep: Some(1),
                ..TicketKeysRequest::default()
            },
        )
        .expect("trim");
        assert_eq!(trimmed.ids, vec![ids[0].clone()]);
        assert_eq!(trimmed.dropped, ids[1..].to_vec());
        assert!(trimmed.new.is_none());
        assert_eq!(crate::perms::mode(&dir.ticket_keys()).expect("mode"), 0o600);
    }
}
