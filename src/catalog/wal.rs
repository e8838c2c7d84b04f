//! Noticing a write-ahead log that was deleted or cut short while the catalog was in use.
//!
//! SQLite keeps committed changes in `catalog.db-wal` until a checkpoint copies them into
//! `catalog.db`. Deleting that file while a daemon has the store open does not stop the
//! daemon (its descriptor still reaches the deleted file, and its changes keep going there),
//! but every other process then finds a log shorter than the index says: SQLite answers "disk
//! I/O error", or, once no process holds the catalog any more, quietly starts from the last
//! checkpoint, which the rollback anchor then reports as a rolled-back catalog. Neither says
//! what happened or what to do, so both are recognised here.
//!
//! The log's index, `catalog.db-shm`, is not encrypted by SQLCipher (it holds frame counts and
//! checksums, no content). Its header (the SQLite "WAL-index" format) says how many frames the
//! log holds (`mxFrame`) and how many of them a checkpoint already copied into the database
//! (`nBackfill`); a log file shorter than `mxFrame` frames while some are not copied means
//! committed changes are missing. Whether another process has the catalog open is the "DMS"
//! byte of the index, on which every open connection holds a shared lock.
//!
//! Reading the index opens and closes `catalog.db-shm`, and closing any descriptor of a file
//! drops every POSIX lock this process holds on it, SQLite's included. So it is only read
//! while this process has no catalog connection open (see [`register`]); a daemon watches its
//! log with [`Watch`] instead, which only stats it.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The catalog's page size: SQLCipher 4's default, which consentfs never changes.
pub const PAGE_SIZE: u64 = 4096;

/// Catalog connections open in this process (see the module doc).
static OPEN: Mutex<usize> = Mutex::new(0);

/// Held as long as a catalog connection of this process is open.
pub(crate) struct Registered;

impl Drop for Registered {
    fn drop(&mut self) {
        let mut n = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
    }
}

/// Committed changes missing from the write-ahead log.
#[derive(Debug, Clone)]
pub struct Loss {
    /// Frames the index says were committed but not yet copied into the catalog file.
    pub frames: u32,
    /// The log's length now (`None`: the file is gone) and the length the index needs.
    pub wal_len: Option<u64>,
    pub needed: u64,
    /// Another process has the catalog open (it may still hold the changes).
    pub in_use: bool,
}

impl Loss {
    /// What was found, in words.
    pub fn found(&self) -> String {
        let state = match self.wal_len {
            None => "is missing".to_string(),
            Some(n) => format!("has {n} bytes where its index needs {}", self.needed),
        };
        format!(
            "the catalog's write-ahead log catalog.db-wal {state}: it was deleted or truncated while the store was in use, \
             and {} page(s) of committed changes not yet copied into catalog.db were in it",
            self.frames
        )
    }
}

/// Note that this process opens a catalog connection for `db`; before the first one, look at
/// its write-ahead log (see the module doc). Keep the guard as long as the connection.
pub(crate) fn register(db: &Path) -> (Option<Loss>, Registered) {
    let mut n = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    let loss = if *n == 0 { inspect(db) } else { None };
    *n += 1;
    (loss, Registered)
}

fn side(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The WAL-index header, as far as it matters here.
#[derive(Debug, PartialEq)]
struct Index {
    page_size: u64,
    mx_frame: u32,
    n_backfill: u32,
}

/// SQLite's WAL checksum over `data` (native byte order, as the index uses).
fn checksum(data: &[u8]) -> (u32, u32) {
    let (mut s1, mut s2) = (0u32, 0u32);
    for pair in data.chunks_exact(8) {
        let x0 = u32::from_ne_bytes([pair[0], pair[1], pair[2], pair[3]]);
        let x1 = u32::from_ne_bytes([pair[4], pair[5], pair[6], pair[7]]);
        s1 = s1.wrapping_add(x0).wrapping_add(s2);
        s2 = s2.wrapping_add(x1).wrapping_add(s1);
    }
    (s1, s2)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parse the first 136 bytes of a `-shm` file: two copies of the 48-byte header (they must
/// agree, as SQLite's readers require), then the checkpoint information. `None` when it is
/// not a complete, initialised, checksummed header (e.g. caught mid-update).
fn parse_index(b: &[u8; 136]) -> Option<Index> {
    let (h1, h2) = (&b[..48], &b[48..96]);
    if h1 != h2 || u32_at(h1, 0) != 3_007_000 || h1[12] != 1 {
        return None;
    }
    if checksum(&h1[..40]) != (u32_at(h1, 40), u32_at(h1, 44)) {
        return None;
    }
    let sz = u16::from_ne_bytes([h1[14], h1[15]]);
    let page_size = if sz == 1 { 65536 } else { u64::from(sz) };
    if !page_size.is_power_of_two() || page_size < 512 {
        return None;
    }
    Some(Index {
        page_size,
        mx_frame: u32_at(h1, 16),
        n_backfill: u32_at(b, 96),
    })
}

/// Look at the log of `db`: committed changes missing from it, if any.
fn inspect(db: &Path) -> Option<Loss> {
    let shm = side(db, "-shm");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&shm)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut b = [0u8; 136];
    (&f).read_exact(&mut b).ok()?;
    let index = parse_index(&b)?;
    if index.mx_frame <= index.n_backfill {
        return None;
    }
    let needed = 32 + u64::from(index.mx_frame) * (24 + index.page_size);
    let wal_len = match std::fs::symlink_metadata(side(db, "-wal")) {
        Ok(m) => Some(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(_) => return None,
    };
    if wal_len.is_some_and(|n| n >= needed) {
        return None;
    }
    Some(Loss {
        frames: index.mx_frame - index.n_backfill,
        wal_len,
        needed,
        in_use: dms_locked(&f),
    })
}

/// Whether another process holds SQLite's "DMS" lock (byte 128 of the index): every open
/// connection holds it shared.
fn dms_locked(f: &std::fs::File) -> bool {
    // SAFETY: a zeroed flock is a valid value; F_GETLK only fills it in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 128;
    fl.l_len = 1;
    // SAFETY: F_GETLK on a descriptor we own, with a valid flock; nothing is locked.
    let r = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(f), libc::F_GETLK, &mut fl) };
    r == 0 && fl.l_type != libc::F_UNLCK as libc::c_short
}

/// "(pid N, mounted at M)" of the daemon named in the store's `daemon.lock`, if it runs.
fn daemon_named(db: &Path) -> Option<String> {
    let lock = db.parent()?.join(crate::store::DAEMON_LOCK);
    let mut text = String::new();
    std::fs::File::open(lock)
        .ok()?
        .take(4096)
        .read_to_string(&mut text)
        .ok()?;
    let text = text.trim();
    let pid: u32 = text.strip_prefix("pid ")?.split(',').next()?.parse().ok()?;
    Path::new(&format!("/proc/{pid}"))
        .exists()
        .then(|| format!(" ({text})"))
}

/// The message for a command that finds the log cut short while another process (normally
/// the daemon) still has the catalog open.
pub fn in_use_message(db: &Path, loss: &Loss) -> String {
    format!(
        "{}; changes since the last checkpoint may be lost. Stop the consentfs daemon that has this store mounted{}: \
         SIGTERM, `systemctl stop` or `fusermount3 -u MOUNTPOINT` (a daemon that stops cleanly first writes the changes it still holds \
         into catalog.db), and let other consentfs commands on this store finish; then run the command again. \
         If it then reports that the catalog was rolled back, the changes are lost: --accept-rollback accepts the catalog as it is (recorded in the audit log).",
        loss.found(),
        daemon_named(db).unwrap_or_default()
    )
}

/// Watches a daemon's write-ahead log: the file its connections write to must stay the one
/// at the log's path. Only stats the path (see the module doc).
pub struct Watch {
    path: PathBuf,
    id: Option<(u64, u64)>,
}

impl Watch {
    /// Remember which file the log of `db` is now (call once the connections have it open).
    pub fn new(db: &Path) -> Watch {
        let path = side(db, "-wal");
        let id = std::fs::symlink_metadata(&path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        Watch { path, id }
    }

    /// Why the log is not the one this daemon writes to any more, if it is not.
    pub fn problem(&self) -> Option<String> {
        let (dev, ino) = self.id?;
        let what = match std::fs::symlink_metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "was deleted",
            Err(_) => return None,
            Ok(m) if (m.dev(), m.ino()) != (dev, ino) => "was replaced by another file",
            Ok(_) => return None,
        };
        Some(format!(
            "the catalog's write-ahead log catalog.db-wal {what} while mounted: commands no longer see this daemon's changes, nor it theirs, \
             and its changes since the last checkpoint survive only if it stops cleanly (which writes them into catalog.db)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(mx_frame: u32, n_backfill: u32) -> [u8; 136] {
        let mut h = [0u8; 48];
        h[0..4].copy_from_slice(&3_007_000u32.to_ne_bytes());
        h[12] = 1;
        h[14..16].copy_from_slice(&4096u16.to_ne_bytes());
        h[16..20].copy_from_slice(&mx_frame.to_ne_bytes());
        let (a, b) = checksum(&h[..40]);
        h[40..44].copy_from_slice(&a.to_ne_bytes());
        h[44..48].copy_from_slice(&b.to_ne_bytes());
        let mut out = [0u8; 136];
        out[..48].copy_from_slice(&h);
        out[48..96].copy_from_slice(&h);
        out[96..100].copy_from_slice(&n_backfill.to_ne_bytes());
        out
    }

    #[test]
    fn the_index_header_is_read_only_when_whole_and_checksummed() {
        let b = header(7, 2);
        assert_eq!(
            parse_index(&b),
            Some(Index {
                page_size: 4096,
                mx_frame: 7,
                n_backfill: 2
            })
        );
        let mut torn = b;
        torn[16] ^= 1; // first copy changed, second not yet
        assert_eq!(parse_index(&torn), None);
        let mut both = b;
        both[16] ^= 1;
        both[64] ^= 1; // both copies agree but the checksum does not
        assert_eq!(parse_index(&both), None);
    }

    #[test]
    fn a_log_shorter_than_its_index_is_a_loss_and_a_whole_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("catalog.db");
        std::fs::write(side(&db, "-shm"), header(3, 1)).unwrap();
        assert!(inspect(&db).is_some_and(|l| l.wal_len.is_none() && l.frames == 2));
        std::fs::write(side(&db, "-wal"), vec![0u8; 100]).unwrap();
        assert!(inspect(&db).is_some_and(|l| l.wal_len == Some(100)));
        std::fs::write(side(&db, "-wal"), vec![0u8; 32 + 3 * (24 + 4096)]).unwrap();
        assert!(inspect(&db).is_none());
        // everything already copied into the database: nothing is lost without the log
        std::fs::remove_file(side(&db, "-wal")).unwrap();
        std::fs::write(side(&db, "-shm"), header(3, 3)).unwrap();
        assert!(inspect(&db).is_none());
    }
}
