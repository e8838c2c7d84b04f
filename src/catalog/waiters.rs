//! Commands waiting for the catalog's write lock, made visible to the daemon.
//!
//! The daemon keeps one write transaction open across the new files of a burst (`tar x`,
//! `cp -r`) and commits it every few tens of milliseconds: one commit for dozens of files.
//! SQLite gives no sign that another process waits for that lock meanwhile (its busy handler
//! sleeps and retries), so a withdrawal made by the CLI would wait for the whole window. A
//! process that finds the lock taken therefore holds a shared `flock` on
//! `catalog.db-waiters` while it waits; the daemon tries an exclusive one (never blocking),
//! and when that fails it commits at once and leaves the lock free until nobody waits.
//!
//! `flock` locks belong to the open file, not to a byte range of the catalog, so they never
//! interfere with SQLite's POSIX locks on the catalog's own files (see `wal`).

use std::cell::{Ref, RefCell};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// The signal file beside the catalog (private, as every file of the store).
pub use crate::store::CATALOG_WAITERS as WAITERS;

/// This process's descriptor of the signal file (none when it cannot be opened: then the
/// daemon assumes somebody may wait, as before this signal existed).
pub struct Waiters {
    path: PathBuf,
    file: RefCell<Option<File>>,
}

/// Held while this process waits for the write lock.
pub struct Waiting<'a>(Option<Ref<'a, Option<File>>>);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.0.as_ref().and_then(|r| r.as_ref()) {
            // SAFETY: flock on a descriptor this struct borrows; no memory is involved
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
        }
    }
}

/// Where the signal file of the catalog `db` lives.
pub fn path_of(db: &Path) -> PathBuf {
    db.with_file_name(WAITERS)
}

/// Open (or create, mode 0600) the signal file. Never follows a symlink.
fn open_file(path: &Path) -> Option<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| log::debug!("cannot open {}: {e}", path.display()))
        .ok()
        .filter(|f| f.metadata().is_ok_and(|m| m.is_file()))
}

impl Waiters {
    /// The signal file beside `db`.
    pub fn open(db: &Path) -> Waiters {
        let path = path_of(db);
        let file = RefCell::new(open_file(&path));
        Waiters { path, file }
    }

    /// Say that this process waits for the write lock until the guard is dropped. Never
    /// blocks: the daemon's exclusive lock is held only for an instant, and a signal missed
    /// costs the wait SQLite would have had anyway.
    pub fn waiting(&self) -> Waiting<'_> {
        let Ok(file) = self.file.try_borrow() else {
            return Waiting(None);
        };
        let held = file.as_ref().is_some_and(|f| {
            // SAFETY: flock on an open descriptor
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) == 0 }
        });
        Waiting(held.then_some(file))
    }

    /// Whether another process (or another connection of this one) says it waits for the
    /// write lock. Without the signal file: `true` (commit at once, as without batching).
    pub fn others(&self) -> bool {
        self.follow();
        let Ok(file) = self.file.try_borrow() else {
            return true;
        };
        let Some(f) = file.as_ref() else {
            return true;
        };
        // SAFETY: flock on an open descriptor
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            // SAFETY: as above
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
            false
        } else {
            // EWOULDBLOCK: somebody waits; any other error: assume so
            true
        }
    }

    /// Open the signal file again if the one held is no longer the one at its path (deleted
    /// or replaced while the daemon runs: commands lock the new one), or could not be opened.
    /// One `fstat` while it is still there: a file deleted, or replaced by a rename over it,
    /// has no name left (`nlink` 0). The daemon asks before every commit it may delay, so the
    /// path is looked up only when the held file lost its name.
    fn follow(&self) {
        let Ok(mut slot) = self.file.try_borrow_mut() else {
            return;
        };
        let same = slot.as_ref().is_some_and(|f| match f.metadata() {
            Ok(held) if held.nlink() > 0 => true,
            Ok(held) => std::fs::symlink_metadata(&self.path)
                .is_ok_and(|there| held.dev() == there.dev() && held.ino() == there.ino()),
            Err(_) => false,
        });
        if !same {
            *slot = open_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection that waits is seen by another (two descriptors, as two processes have),
    /// and no longer once it stopped waiting; the signal file is private.
    #[test]
    fn a_waiting_connection_is_seen_until_it_stops_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("catalog.db");
        let daemon = Waiters::open(&db);
        let command = Waiters::open(&db);
        assert!(!daemon.others(), "nobody waits yet");
        {
            let _w = command.waiting();
            assert!(daemon.others(), "the command waits");
            assert!(daemon.others(), "checking does not take the signal away");
        }
        assert!(!daemon.others(), "the command got the lock");
        // the file deleted while the daemon runs: a command opened afterwards makes and locks
        // a new one, which the daemon follows
        std::fs::remove_file(path_of(&db)).unwrap();
        let later = Waiters::open(&db);
        {
            let _w = later.waiting();
            assert!(daemon.others(), "the command waits on the new file");
        }
        assert!(!daemon.others());
        // replaced by a rename over it: commands lock the file now at the path
        let other = dir.path().join("other");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&other)
            .unwrap();
        std::fs::rename(&other, path_of(&db)).unwrap();
        let after_rename = Waiters::open(&db);
        {
            let _w = after_rename.waiting();
            assert!(
                daemon.others(),
                "the command waits on the file renamed into place"
            );
        }
        assert!(!daemon.others());
        let mode = std::fs::metadata(path_of(&db)).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }

    /// A symlink planted where the signal file goes is not followed, and then the daemon
    /// assumes somebody may wait (it commits at once, as without the signal).
    #[test]
    fn a_symlink_is_not_followed_and_means_commit_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("catalog.db");
        let target = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, path_of(&db)).unwrap();
        let w = Waiters::open(&db);
        assert!(!target.exists());
        assert!(w.others());
        drop(w.waiting()); // no signal to give, and no panic
    }
}
