//! The rollback anchor: the newest audit entry this machine has seen committed, kept outside
//! the store.
//!
//! Every change appends to the hash-chained audit log, so the log's head (sequence number and
//! hash) names the catalog's state. A copy of an older `catalog.db`, an older copy of the whole
//! store, or a WAL cut back to an earlier commit all bring back withdrawn consents and shredded
//! keys, and the shortened log is still a valid chain. The anchor catches that: after every
//! commit the head is written to a root-only file outside the store (by default
//! `/var/lib/consentfs/anchors/<store id>.json`, for other accounts under
//! `~/.local/state/consentfs/anchors/`; `--anchor FILE` to choose), and a catalog whose log
//! does not reach the anchored entry, or holds a different entry there, is refused when it is
//! opened. A real restore from a backup is accepted with `--accept-rollback`, which is recorded
//! in the audit log and moves the anchor to the restored state.
//!
//! The anchor only ever moves forward (a command that commits an older head than one another
//! process already anchored leaves it alone), is written to a temporary file and renamed into
//! place, and is read under the same exclusive lock, so concurrent commands cannot interleave.
//! A crash between a commit and its anchor leaves the catalog one step ahead of the anchor,
//! which is accepted: only going back is refused. The mount's anchor is written in the
//! background (see [`Background`]), which widens that step to the commits of a few ms.

use crate::error::{Error, Result};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The anchored state: an audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: i64,
    /// Hex of the entry's chain hash.
    pub hash: String,
}

/// Where a store's anchor lives, and whether it is written in the background.
#[derive(Debug, Clone)]
pub struct Anchor {
    path: PathBuf,
    background: Option<Arc<Background>>,
}

/// The anchor of a daemon: its commits (a save is two of them: the new file, its content) hand
/// the new head to a thread that writes the newest one, instead of each request waiting for an
/// fsync of a file on another disk. The anchor then lags the catalog by the writes in flight,
/// which is the direction that is always accepted; the daemon waits for it before it ends.
/// How long the background writer lets heads gather after a write (bounds how far the anchor
/// lags behind a busy daemon).
const GATHER: Duration = Duration::from_millis(25);

#[derive(Debug, Default)]
struct Background {
    state: Mutex<Pending>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Pending {
    /// The newest head not yet written.
    next: Option<Head>,
    /// A head is being written.
    writing: bool,
}

/// The default anchor file for the store with this id (see the module doc).
pub fn default_path(store_id: &str) -> PathBuf {
    let base = if nix::unistd::geteuid().is_root() {
        PathBuf::from("/var/lib/consentfs")
    } else if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
        PathBuf::from(state).join("consentfs")
    } else {
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
        PathBuf::from(home).join(".local/state/consentfs")
    };
    base.join("anchors").join(format!("{store_id}.json"))
}

/// The largest anchor file read (it holds a number and a hash).
const MAX_LEN: u64 = 4096;

/// The head of the log in `conn` (0 and zeros before the first entry); inside a transaction,
/// what to anchor once it commits.
pub(crate) fn current(conn: &Connection) -> Result<Head> {
    let (seq, hash) = super::audit::head(conn)?;
    Ok(Head {
        seq,
        hash: hex::encode(hash),
    })
}

/// The hash the log in `conn` holds at `seq`, if it reaches that far.
fn hash_at(conn: &Connection, seq: i64) -> Result<Option<String>> {
    Ok(super::audit::hash_at(conn, seq)?.map(hex::encode))
}

impl Anchor {
    pub fn at(path: PathBuf) -> Anchor {
        Anchor {
            path,
            background: None,
        }
    }

    /// The same anchor, written by a background thread (see [`Background`]); clones share it.
    pub fn in_background(self) -> Result<Anchor> {
        let background = Arc::new(Background::default());
        let writer = Anchor::at(self.path.clone());
        let shared = background.clone();
        std::thread::Builder::new()
            .name("anchor".into())
            .spawn(move || loop {
                let head = {
                    let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                    while st.next.is_none() {
                        st = shared.changed.wait(st).unwrap_or_else(|p| p.into_inner());
                    }
                    st.writing = true;
                    st.next.take()
                };
                if let Some(head) = head {
                    if let Err(e) = writer.advance(&head) {
                        log::error!("cannot move the rollback anchor forward: {e}");
                    }
                    // let the commits of the next moments gather: one write for all of them
                    std::thread::sleep(GATHER);
                }
                shared
                    .state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .writing = false;
                shared.changed.notify_all();
            })
            .map_err(|e| Error::io("cannot start the rollback anchor's writer", e))?;
        Ok(Anchor {
            path: self.path,
            background: Some(background),
        })
    }

    /// Wait (at most `limit`) until the heads handed to the background writer are written;
    /// false if they are not. Immediate for an anchor written in place.
    pub fn flush(&self, limit: Duration) -> bool {
        let Some(bg) = &self.background else {
            return true;
        };
        let until = Instant::now() + limit;
        let mut st = bg.state.lock().unwrap_or_else(|p| p.into_inner());
        while st.next.is_some() || st.writing {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = bg
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Take the anchor's lock: an exclusive `flock` on `<anchor>.lock` beside it (never
    /// renamed, unlike the anchor itself), held until the returned file is closed. Creates the
    /// folder (0700) and the lock file (0600) if needed.
    fn lock(&self) -> Result<std::fs::File> {
        if let Some(dir) = self.path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io_path("create", dir, e))?;
        }
        let lock_path = self.path.with_extension("lock");
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&lock_path)
            .map_err(|e| Error::io_path("open the rollback anchor's lock", &lock_path, e))?;
        f.lock()
            .map_err(|e| Error::io_path("lock", &lock_path, e))?;
        Ok(f)
    }

    /// The anchored head, if one was written (read without following a symlink, bounded).
    fn read(&self) -> Result<Option<Head>> {
        let f = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&self.path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io_path("read the rollback anchor", &self.path, e)),
        };
        let md = f
            .metadata()
            .map_err(|e| Error::io_path("check", &self.path, e))?;
        if !md.is_file() {
            return Err(Error::invalid(format!(
                "the rollback anchor {} is not a regular file",
                self.path.display()
            )));
        }
        let mut text = String::new();
        f.take(MAX_LEN)
            .read_to_string(&mut text)
            .map_err(|e| Error::io_path("read", &self.path, e))?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::integrity(
                "rollback anchor",
                format!("{} cannot be read ({e})", self.path.display()),
            )
        })
    }

    /// Refuse a catalog that is behind the anchor or holds another history; with
    /// `accept_rollback`, return the anchored head that is being given up instead (the caller
    /// records it in the audit log, and the next commit moves the anchor).
    pub fn check(&self, conn: &Connection, accept_rollback: bool) -> Result<Option<Head>> {
        let _lock = self.lock()?;
        let Some(anchored) = self.read()? else {
            return Ok(None);
        };
        let now = current(conn)?;
        let found = hash_at(conn, anchored.seq)?;
        if found.as_deref() == Some(anchored.hash.as_str()) {
            return Ok(None);
        }
        if accept_rollback {
            log::warn!(
                "accepting a catalog behind its rollback anchor (anchored entry {}, catalog at {})",
                anchored.seq,
                now.seq
            );
            // anchor the accepted state at once, so a later command does not refuse it again
            self.write(&now)?;
            return Ok(Some(anchored));
        }
        let what = if now.seq < anchored.seq {
            format!(
                "its audit log ends at entry {} but this machine saw entry {} committed",
                now.seq, anchored.seq
            )
        } else {
            format!(
                "its audit log holds another entry {} than the one this machine saw committed",
                anchored.seq
            )
        };
        Err(Error::integrity(
            "catalog",
            format!(
                "the catalog was rolled back or replaced, or lost changes from its write-ahead log (catalog.db-wal deleted or truncated while the store was in use): \
                 {what} (anchor {}). Withdrawals and erasures recorded since may be undone. \
                 If you restored a backup on purpose, or the changes are lost and the catalog is to be used as it is, \
                 run the command again with --accept-rollback (it is recorded in the audit log).",
                self.path.display()
            ),
        ))
    }

    /// Replace the anchor (temporary file, fsync, rename). Call with the lock held.
    fn write(&self, head: &Head) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut t = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(|e| Error::io_path("create", &tmp, e))?;
        let text = serde_json::to_string(head).map_err(|e| Error::invalid(e.to_string()))?;
        t.write_all(text.as_bytes())
            .and_then(|_| t.sync_all())
            .map_err(|e| Error::io_path("write", &tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io_path("rename", &tmp, e))
    }

    /// Move the anchor to `now` (a head just committed), unless it is already at or past it.
    /// In the background: hand it to the writer and return.
    pub fn advance(&self, now: &Head) -> Result<()> {
        crate::caller::as_daemon(|| {
            if let Some(bg) = &self.background {
                let mut st = bg.state.lock().unwrap_or_else(|p| p.into_inner());
                if st.next.as_ref().is_none_or(|n| n.seq < now.seq) {
                    st.next = Some(now.clone());
                }
                drop(st);
                bg.changed.notify_all();
                return Ok(());
            }
            let _lock = self.lock()?;
            if let Some(anchored) = self.read()? {
                if anchored.seq >= now.seq {
                    return Ok(());
                }
            }
            self.write(now)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(seq: i64) -> Head {
        Head {
            seq,
            hash: format!("{seq:064x}"),
        }
    }

    /// A background anchor is written once flushed, with the newest head handed to it (heads
    /// arriving while it writes are gathered into one write), and never moves back.
    #[test]
    fn a_background_anchor_writes_the_newest_head_by_the_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchors/store.json");
        let a = Anchor::at(path.clone()).in_background().unwrap();
        a.advance(&head(1)).unwrap();
        assert!(a.flush(Duration::from_secs(5)));
        assert_eq!(Anchor::at(path.clone()).read().unwrap(), Some(head(1)));
        for seq in 2..=50 {
            a.advance(&head(seq)).unwrap();
        }
        // an older head handed over late does not move it back
        a.advance(&head(7)).unwrap();
        assert!(a.flush(Duration::from_secs(5)));
        assert_eq!(Anchor::at(path.clone()).read().unwrap(), Some(head(50)));
        // a clone shares the writer
        let b = a.clone();
        b.advance(&head(51)).unwrap();
        assert!(a.flush(Duration::from_secs(5)));
        assert_eq!(Anchor::at(path).read().unwrap(), Some(head(51)));
    }
}
