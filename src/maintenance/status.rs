//! `consentfs status`: is the store mounted (where, since when, by which process), what it
//! holds, when the next change by time alone is due, when the catalog last changed, and the
//! versions of everything involved.
//!
//! Whether a daemon serves the store is read from the kernel's table of file locks
//! (`/proc/locks`), not by trying the lock: the daemon holds an exclusive `flock` on
//! `daemon.lock` for its life, and a probe that took the lock for a moment would make a daemon
//! starting at that moment fail ("already served by another daemon"). The daemon writes its
//! pid and mountpoint into the file right after it takes the lock, so the file's modification
//! time is when it started serving.

use crate::catalog::maintenance::{self, Counts, LastChange};
use crate::error::Result;
use crate::policy::Time;
use crate::store::{Store, DAEMON_LOCK};
use rusqlite::Connection;
use serde::Serialize;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The daemon serving a store.
#[derive(Debug, Clone, Serialize)]
pub struct Daemon {
    pub pid: u32,
    pub mountpoint: PathBuf,
    /// When it took the store (the lock file's modification time).
    pub since: Option<Time>,
}

/// The daemon that serves the store at `root` now, if any.
pub fn daemon(root: &Path) -> Option<Daemon> {
    let path = root.join(DAEMON_LOCK);
    let md = std::fs::symlink_metadata(&path).ok()?;
    // where /proc/locks cannot be read (a restricted /proc): the daemon's entry in the
    // registry of running processes, which is also held for its life
    let pid = lock_holder(md.dev(), md.ino()).or_else(|| {
        crate::store::running::others(root)
            .into_iter()
            .find(|r| r.command == "mount")
            .map(|r| r.pid)
    })?;
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    // "pid 1234, mounted at /srv/photos" (Store::lock_for_daemon)
    let mountpoint = text
        .trim_end_matches('\n')
        .split_once(", mounted at ")
        .map(|(_, p)| PathBuf::from(p))
        .unwrap_or_default();
    let since = md
        .modified()
        .ok()
        .map(chrono::DateTime::<chrono::Utc>::from);
    Some(Daemon {
        pid,
        mountpoint,
        since,
    })
}

/// The pid of the process that holds an exclusive `flock` on the file (device, inode), from
/// `/proc/locks` (`1: FLOCK  ADVISORY  WRITE 1234 fd:00:56789 0 EOF`, device numbers in hex).
fn lock_holder(dev: u64, ino: u64) -> Option<u32> {
    let table = std::fs::read_to_string("/proc/locks").ok()?;
    let want = format!("{:02x}:{:02x}:{ino}", libc::major(dev), libc::minor(dev));
    table.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // "1: -> FLOCK …" are waiters, not holders
        if f.len() < 6 || f[1] != "FLOCK" || f[3] != "WRITE" || f[5] != want {
            return None;
        }
        f[4].parse().ok()
    })
}

/// Versions of the program and of the formats it reads and writes.
#[derive(Debug, Clone, Serialize)]
pub struct Versions {
    pub consentfs: &'static str,
    /// The catalog's schema version, and the newest this binary knows.
    pub catalog_schema: i64,
    pub catalog_schema_supported: i64,
    pub keyring: u32,
    /// Object formats this binary reads (1 dense, 2 sparse).
    pub object_formats: [u16; 2],
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub store: PathBuf,
    /// Where the encrypted objects are: the store's `objects/` folder, another folder, or a
    /// bucket (`s3://…`).
    pub objects: String,
    /// A team library's copy: the library (no password) and the last of its changes this copy
    /// holds; none for a store of its own.
    pub library: Option<Library>,
    /// Whether a daemon serves the store, and which.
    pub mounted: bool,
    pub daemon: Option<Daemon>,
    #[serde(flatten)]
    pub counts: Counts,
    /// The next moment something changes by time alone (a consent ends, a minor turns 16, a
    /// retention term ends), and what.
    pub next_expiry: Option<Time>,
    pub next_expiry_kind: Option<&'static str>,
    pub last_change: Option<LastChange>,
    pub versions: Versions,
}

/// The team library a copy belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct Library {
    pub url: String,
    pub change: i64,
}

/// The store's status now.
pub fn status(store: &Store, conn: &Connection, now: Time) -> Result<Status> {
    let daemon = daemon(store.root());
    let library = match crate::catalog::team::recorded_url(&store.catalog_path())? {
        Some(url) => Some(Library {
            url: crate::catalog::team::shown(&url),
            change: crate::catalog::team::replica::applied(conn)?,
        }),
        None => None,
    };
    let counts = maintenance::counts(conn)?;
    let next = maintenance::next_expiry(conn, now)?;
    Ok(Status {
        store: store.root().to_path_buf(),
        objects: store.objects_shown(),
        library,
        mounted: daemon.is_some(),
        daemon,
        counts,
        next_expiry: next.map(|(t, _)| t),
        next_expiry_kind: next.map(|(_, k)| k),
        last_change: maintenance::last_change(conn)?,
        versions: Versions {
            consentfs: env!("CARGO_PKG_VERSION"),
            catalog_schema: maintenance::schema_version(conn)?,
            catalog_schema_supported: crate::catalog::schema::current_version(),
            keyring: crate::crypto::keyring::KEYRING_VERSION,
            object_formats: [1, 2],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_of_a_flock_is_found_in_proc_locks_and_none_once_released() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("daemon.lock");
        std::fs::write(&path, "pid 1, mounted at /srv/photos\n").unwrap();
        let md = std::fs::metadata(&path).unwrap();
        assert_eq!(lock_holder(md.dev(), md.ino()), None);
        let f = std::fs::File::open(&path).unwrap();
        f.lock().unwrap();
        assert_eq!(lock_holder(md.dev(), md.ino()), Some(std::process::id()));
        let found = daemon(d.path()).unwrap();
        assert_eq!(found.mountpoint, PathBuf::from("/srv/photos"));
        assert_eq!(found.pid, std::process::id());
        drop(f);
        assert!(daemon(d.path()).is_none());
    }
}
