//! Saves whose object is written but whose commit met a busy catalog.
//!
//! A save through the mount first writes its new object (encrypted, fsynced, renamed into
//! place), then records it as a version in one short catalog transaction. When another command
//! holds the catalog's write lock longer than the daemon waits ([`super::write`] waits
//! `SAVE_WAIT`), the save is not thrown away: what the transaction would have recorded is
//! written here, sealed under a key derived from the master key, one file per save in
//! `STORE/queue/`, fsynced before `close` returns 0. The daemon retries the queue every watcher
//! round and at start (a daemon killed with a queue replays it when it mounts again), in the
//! order the saves were made. Until a save is recorded, the daemon serves its content for the
//! asset (reads and sizes), as if it were committed.
//!
//! A queued save is checked again when it is recorded, against the catalog as it is then (the
//! asset still exists, the user still holds a write grant, the content is no other photo's); if
//! that fails, it is discarded and its object removed, with a log line, as an immediate commit
//! would have been.

use crate::crypto::object::ObjectId;
use crate::crypto::{open, seal, Key};
use crate::error::{Error, IoContext, Result};
use crate::policy::{AssetId, PurposeId};
use crate::store::{private, NewObject, Store};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Associated data of every sealed queue file: binds it to its purpose and format.
const AAD: &[u8] = b"consentfs save queue v1";

/// Largest queue file read back (a save record is a few hundred bytes; the list of photos the
/// writing process read is bounded by the provenance window).
const MAX_FILE: u64 = 1 << 20;

/// Everything the commit of one save records, so it can be recorded later exactly as it
/// would have been at `close`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueuedSave {
    /// Order of the saves (nanoseconds since the epoch when queued, made unique).
    pub seq: u64,
    /// The version this save updates instead of adding one (a save a moment earlier of the
    /// same file), if it is still the newest when recorded.
    #[serde(default)]
    pub replace: Option<i64>,
    pub asset: AssetId,
    pub login: String,
    pub purpose: PurposeId,
    /// The handle created the file: its first save fills the empty placeholder version.
    pub fresh: bool,
    /// Modification time the writer set (seconds since the epoch), if any.
    pub mtime: Option<i64>,
    /// Its part of a second, in nanoseconds (absent in saves queued by an older daemon).
    #[serde(default)]
    pub mtime_nsec: Option<i64>,
    /// Access time the writer set (seconds, nanoseconds), if any.
    #[serde(default)]
    pub atime: Option<(i64, i64)>,
    /// Photos the writing processes read shortly before (the provenance of a draft).
    pub read: Vec<AssetId>,
    pub object: String,
    pub wrapped_key: String,
    pub size: u64,
    pub content_hash: String,
}

impl QueuedSave {
    /// The written object this save records.
    pub fn new_object(&self) -> Result<NewObject> {
        let bad = || Error::integrity("save queue", "a queued save names an invalid object");
        let content_hash: [u8; 32] = hex::decode(&self.content_hash)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(bad)?;
        Ok(NewObject {
            id: ObjectId::parse(&self.object).ok_or_else(bad)?,
            wrapped_key: hex::decode(&self.wrapped_key).map_err(|_| bad())?,
            size: self.size,
            content_hash,
        })
    }

    pub fn mtime(&self) -> Option<crate::policy::Time> {
        self.mtime
            .map(|s| crate::when::from_secs_nanos(s, self.mtime_nsec))
    }

    pub fn atime(&self) -> Option<crate::policy::Time> {
        self.atime
            .map(|(s, n)| crate::when::from_secs_nanos(s, Some(n)))
    }
}

/// The queue: files in `dir`, mirrored in memory in the order they were queued.
pub struct SaveQueue {
    dir: PathBuf,
    key: Key,
    items: Mutex<Vec<QueuedSave>>,
}

impl SaveQueue {
    /// A queue that starts empty (when the files of the old one cannot be listed; they stay).
    pub fn empty(store: &Store) -> SaveQueue {
        SaveQueue {
            dir: store.root().join(crate::store::QUEUE),
            key: store.queue_key(),
            items: Mutex::new(Vec::new()),
        }
    }

    /// The store's queue, with every save a previous daemon left in it. A file that cannot be
    /// opened with this store's key is left where it is and logged (it is never guessed at).
    pub fn load(store: &Store) -> Result<SaveQueue> {
        let q = SaveQueue::empty(store);
        let entries = match std::fs::read_dir(&q.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(q),
            Err(e) => return Err(Error::io_path("read", &q.dir, e)),
        };
        let mut items = Vec::new();
        for entry in entries {
            let entry = entry.at("read", &q.dir)?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                // never completed, so never acknowledged to the writer
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".save") {
                continue;
            }
            match q.read_file(&path) {
                Ok(s) => items.push(s),
                Err(e) => log::error!("a queued save cannot be read and stays queued: {e}"),
            }
        }
        items.sort_by_key(|s| s.seq);
        *q.items.lock().unwrap_or_else(|p| p.into_inner()) = items;
        Ok(q)
    }

    /// The objects of the saves queued in the store now (hex ids), read without changing
    /// anything (unlike [`SaveQueue::load`], which is the daemon's and clears unfinished
    /// files): `check` must not count them as orphans. What cannot be read is left out.
    pub fn object_ids_on_disk(store: &Store) -> Vec<String> {
        let q = SaveQueue::empty(store);
        let Ok(entries) = std::fs::read_dir(&q.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".save"))
            .filter_map(|e| q.read_file(&e.path()).ok())
            .map(|s| s.object)
            .collect()
    }

    fn read_file(&self, path: &Path) -> Result<QueuedSave> {
        let f = crate::files::open_regular(path)?;
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_FILE), &mut buf)
            .at("read", path)?;
        let plain = open(&self.key, AAD, &buf).ok_or_else(|| {
            Error::integrity(
                "save queue",
                format!("{} does not open with this store's key", path.display()),
            )
        })?;
        serde_json::from_slice(&plain)
            .map_err(|e| Error::integrity("save queue", format!("{}: {e}", path.display())))
    }

    fn path_of(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.save"))
    }

    /// Queue a save durably: when this returns Ok, the record is on disk (file and folder
    /// fsynced) and will be replayed even if the daemon is killed.
    pub fn push(&self, mut save: QueuedSave) -> Result<()> {
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let last = items.last().map_or(0, |s| s.seq);
        save.seq = now.max(last + 1);
        private::create_dir_all(&self.dir)?;
        let json = serde_json::to_vec(&save)
            .map_err(|e| Error::invalid(format!("cannot encode a queued save: {e}")))?;
        let sealed = seal(&self.key, AAD, &json)?;
        let path = self.path_of(save.seq);
        let tmp = path.with_extension("tmp");
        let written = (|| -> Result<()> {
            let mut f = private::create_file(&tmp, false)?;
            f.write_all(&sealed).at("write", &tmp)?;
            f.sync_all().at("sync", &tmp)?;
            std::fs::rename(&tmp, &path).at("rename", &path)?;
            std::fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .at("sync", &self.dir)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        items.push(save);
        Ok(())
    }

    /// The saves still queued, oldest first.
    pub fn pending(&self) -> Vec<QueuedSave> {
        self.items.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn is_empty(&self) -> bool {
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    pub fn has(&self, asset: AssetId) -> bool {
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|s| s.asset == asset)
    }

    /// The newest queued content of `asset`: what the mount serves for it until it is recorded.
    pub fn latest(&self, asset: AssetId) -> Option<QueuedSave> {
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
            .find(|s| s.asset == asset)
            .cloned()
    }

    /// Objects of queued saves (hex ids): not orphans, though the catalog does not know them.
    pub fn object_ids(&self) -> Vec<String> {
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|s| s.object.clone())
            .collect()
    }

    /// The save `seq` was recorded or discarded: forget it.
    pub fn done(&self, seq: u64) -> Result<()> {
        let path = self.path_of(seq);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io_path("remove", &path, e)),
        }
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|s| s.seq != seq);
        Ok(())
    }
}

/// Associated data of every record of the new-file journal.
const JOURNAL_AAD: &[u8] = b"consentfs new-file journal v1";

/// The journal's file name inside `STORE/queue/` (the queue reads only `*.save`).
const JOURNAL: &str = "new-files.journal";

/// A file created through the mount and saved for the first time, recorded in a catalog
/// transaction not yet committed: enough to record it again after a crash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NewFile {
    pub collection: String,
    pub name: String,
    pub save: QueuedSave,
}

/// The new-file journal (`STORE/queue/new-files.journal`): what makes the close of a new file
/// durable while its catalog transaction stays open to take the next files too (one commit
/// for the creates and first saves of many files, see `Vfs::save_new_file`). Each record is
/// a length (4 bytes, little endian) and the record sealed under the queue key; the file is
/// fsynced before the close returns. Emptied when the transaction commits; what a crash
/// leaves in it is recorded at the next mount (a record whose object the catalog knows was
/// committed already and is skipped). A torn last record was never acknowledged.
pub struct NewFileJournal {
    path: PathBuf,
    key: Key,
    /// The open file and the catalog transaction (by its start) its records belong to.
    file: Mutex<Option<(std::fs::File, std::time::Instant)>>,
    /// Whether it holds records (not emptied since the last append).
    filled: std::sync::atomic::AtomicBool,
    /// Its records' transaction was rolled back: they wait for a replay, and records of the
    /// next transaction are added after them instead of replacing them.
    keep: std::sync::atomic::AtomicBool,
}

/// Wait (at most `limit`) until the mount's new-file journal is empty, i.e. every file whose
/// close returned is committed to the catalog: a command run right after `cp` into the mount
/// (`consentfs link`, `ls`) finds the file. The daemon commits within milliseconds; a journal
/// a killed daemon left stays until the next mount, hence the limit.
pub fn wait_for_new_files(store: &Store, limit: std::time::Duration) {
    let path = store.root().join(crate::store::QUEUE).join(JOURNAL);
    let start = std::time::Instant::now();
    while std::fs::symlink_metadata(&path).is_ok_and(|m| m.len() > 0) && start.elapsed() < limit {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

impl NewFileJournal {
    pub fn new(store: &Store) -> NewFileJournal {
        NewFileJournal {
            path: store.root().join(crate::store::QUEUE).join(JOURNAL),
            key: store.queue_key(),
            file: Mutex::new(None),
            filled: std::sync::atomic::AtomicBool::new(false),
            keep: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The records a previous daemon left (none when there is no journal). A record that
    /// does not open with this store's key ends the reading (logged).
    pub fn load(&self) -> Result<Vec<NewFile>> {
        let f = match crate::files::open_regular(&self.path) {
            Ok(f) => f,
            Err(e) if !self.path.exists() => {
                log::debug!("no new-file journal: {e}");
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(f, 1 << 30), &mut buf)
            .at("read", &self.path)?;
        let mut out = Vec::new();
        let mut at = 0usize;
        while at + 4 <= buf.len() {
            let len = u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
            let Some(sealed) = buf.get(at + 4..at + 4 + len) else {
                break; // torn: never acknowledged
            };
            let rec = open(&self.key, JOURNAL_AAD, sealed)
                .and_then(|plain| serde_json::from_slice::<NewFile>(&plain).ok());
            match rec {
                Some(r) => out.push(r),
                None => {
                    log::error!(
                        "{}: a record does not open with this store's key; the rest is not replayed",
                        self.path.display()
                    );
                    break;
                }
            }
            at += 4 + len;
        }
        Ok(out)
    }

    /// Add a record of the catalog transaction that started at `group`, durably: when this
    /// returns Ok, it is on disk. Records of an earlier transaction (committed since) go.
    pub fn append(&self, group: std::time::Instant, rec: &NewFile) -> Result<()> {
        let json = serde_json::to_vec(rec)
            .map_err(|e| Error::invalid(format!("cannot encode a journal record: {e}")))?;
        let sealed = seal(&self.key, JOURNAL_AAD, &json)?;
        let mut bytes = Vec::with_capacity(4 + sealed.len());
        bytes.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&sealed);
        let mut slot = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|(_, g)| *g != group) {
            if let Some((f, _)) = slot.as_ref() {
                if !self.keep.load(std::sync::atomic::Ordering::Acquire) {
                    f.set_len(0).at("truncate", &self.path)?;
                }
            }
            if let Some((_, g)) = slot.as_mut() {
                *g = group;
            }
        }
        if slot.is_none() {
            let dir = self.path.parent().unwrap_or(Path::new("."));
            private::create_dir_all(dir)?;
            // what a previous daemon left was replayed at the start
            match std::fs::remove_file(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io_path("remove", &self.path, e)),
            }
            let f = private::create_file(&self.path, false)?;
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .at("sync", dir)?;
            *slot = Some((f, group));
        }
        let Some((f, _)) = slot.as_mut() else {
            return Err(Error::invalid("the new-file journal is not open"));
        };
        let len = f.metadata().at("stat", &self.path)?.len();
        let written =
            std::os::unix::fs::FileExt::write_all_at(f, &bytes, len).and_then(|()| f.sync_data());
        if let Err(e) = written {
            // a torn record is never replayed; cut it off so later ones are not lost behind it
            let _ = f.set_len(len);
            return Err(Error::io_path("write", &self.path, e));
        }
        self.filled
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// The transaction of its records was rolled back: keep them for [`Vfs::replay_new_files`]
    /// (which empties it).
    ///
    /// [`Vfs::replay_new_files`]: super::Vfs::replay_new_files
    pub fn keep(&self) {
        self.keep.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether records were appended since it was last emptied.
    pub fn is_filled(&self) -> bool {
        self.filled.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The transaction the records belong to committed (or they were replayed): empty it.
    pub fn clear(&self) -> Result<()> {
        let slot = self.file.lock().unwrap_or_else(|p| p.into_inner());
        self.filled
            .store(false, std::sync::atomic::Ordering::Release);
        self.keep.store(false, std::sync::atomic::Ordering::Release);
        match slot.as_ref() {
            Some((f, _)) => f.set_len(0).at("truncate", &self.path),
            None => match std::fs::remove_file(&self.path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io_path("remove", &self.path, e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> Store {
        let root = dir.join("store");
        let key = dir.join("key");
        Store::init(&root, None, Some(&key), chrono::Utc::now(), "t").unwrap()
    }

    fn save(asset: AssetId) -> QueuedSave {
        QueuedSave {
            seq: 0,
            replace: None,
            asset,
            login: "anna".into(),
            purpose: 1,
            fresh: false,
            mtime: Some(1_700_000_000),
            mtime_nsec: Some(123_456_789),
            atime: Some((1_600_000_000, 5)),
            read: vec![3, 4],
            object: ObjectId::random().hex(),
            wrapped_key: hex::encode([7u8; 72]),
            size: 12,
            content_hash: hex::encode([9u8; 32]),
        }
    }

    #[test]
    fn queued_saves_survive_a_restart_in_order_and_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let q = SaveQueue::load(&store).unwrap();
        q.push(save(5)).unwrap();
        q.push(save(6)).unwrap();
        q.push(save(5)).unwrap();
        let before = q.pending();
        assert_eq!(
            before.iter().map(|s| s.asset).collect::<Vec<_>>(),
            [5, 6, 5]
        );
        assert!(before.windows(2).all(|w| w[0].seq < w[1].seq));
        // nothing of the record is readable on disk
        for e in std::fs::read_dir(store.root().join("queue")).unwrap() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            assert!(!bytes.windows(4).any(|w| w == b"anna"));
        }
        let again = SaveQueue::load(&store).unwrap();
        assert_eq!(again.pending(), before);
        assert_eq!(again.latest(5).unwrap().object, before[2].object);
        again.done(before[0].seq).unwrap();
        let third = SaveQueue::load(&store).unwrap();
        assert_eq!(third.pending(), before[1..].to_vec());
        assert!(third.has(5) && third.has(6) && !third.has(7));
    }

    #[test]
    fn a_queue_file_of_another_store_is_not_replayed() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (sa, sb) = (store(a.path()), store(b.path()));
        SaveQueue::load(&sa).unwrap().push(save(5)).unwrap();
        std::fs::create_dir_all(sb.root().join("queue")).unwrap();
        for e in std::fs::read_dir(sa.root().join("queue")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), sb.root().join("queue").join(e.file_name())).unwrap();
        }
        assert!(SaveQueue::load(&sb).unwrap().is_empty());
    }
}
