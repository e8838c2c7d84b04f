//! Files that say "this process is alive and doing X": created private in a folder of the
//! store and held with an exclusive `flock` for the owner's life.
//!
//! The kernel releases a `flock` when its process dies, also by SIGKILL, so "the lock is free"
//! means "the owner is gone" without trusting pids (which are reused). Used for the intents
//! journals (objects a command is writing outside a transaction) and the registry of running
//! commands (who holds the catalog).

use super::private;
use crate::error::{Error, IoContext, Result};
use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A file this process created and holds locked until it is dropped (or the process dies).
#[derive(Debug)]
pub struct Held {
    pub file: File,
    pub path: PathBuf,
}

/// Create `dir/<prefix><random>` (0600, never an existing file, never through a link), lock
/// it and make sure it is still the file at that name: between the create and the lock
/// another process may have taken it for a dead one's and removed it; then try another name.
pub fn create(dir: &Path, prefix: &str) -> Result<Held> {
    private::create_dir_all(dir)?;
    for _ in 0..16 {
        let name = format!("{prefix}{}", hex::encode(rand::random::<[u8; 8]>()));
        let path = dir.join(name);
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .mode(private::FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io_path("create", &path, e)),
        };
        // blocking: someone probing it for a dead owner holds it only for a moment
        file.lock().at("lock", &path)?;
        let mine = file.metadata().at("check", &path)?;
        match std::fs::symlink_metadata(&path) {
            Ok(m) if (m.dev(), m.ino()) == (mine.dev(), mine.ino()) => {
                return Ok(Held { file, path })
            }
            _ => continue,
        }
    }
    Err(Error::invalid(format!(
        "cannot create a lock file in {}",
        dir.display()
    )))
}

impl Held {
    /// Remove the file, then release the lock: unlinked while still locked, so nobody takes
    /// it for a dead owner's meanwhile. (Dropped without this, the file stays, unlocked, for
    /// the next look to find its owner gone.)
    pub fn remove(self) -> Result<()> {
        std::fs::remove_file(&self.path).at("remove", &self.path)
    }
}

/// What a look at someone's held file found.
pub enum Probe {
    /// Its owner is alive (the lock is taken); the file, opened for reading.
    Live(File),
    /// Its owner is gone: the file, now locked by us (dropping it releases the lock).
    Dead(File),
    /// Removed meanwhile (its owner finished).
    Gone,
}

/// Look at one held file without waiting.
pub fn probe(path: &Path) -> Result<Probe> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Probe::Gone),
        Err(e) => return Err(Error::io_path("open", path, e)),
    };
    // std's file locks are flock(2) on Linux
    match file.try_lock() {
        Ok(()) => {
            // an owner that finished unlinks before it unlocks: a file with no name left is
            // one whose work is done
            let linked = file.metadata().map(|m| m.nlink() > 0).unwrap_or(false);
            Ok(if linked {
                Probe::Dead(file)
            } else {
                Probe::Gone
            })
        }
        Err(std::fs::TryLockError::WouldBlock) => Ok(Probe::Live(file)),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io_path("lock", path, e)),
    }
}

/// The files in `dir` (none if it does not exist yet).
pub fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io_path("read", dir, e)),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.at("read", dir)?;
        out.push(e.path());
    }
    out.sort();
    Ok(out)
}
