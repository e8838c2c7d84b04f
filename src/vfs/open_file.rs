//! One state per open file, shared by every handle on it: what a local filesystem keeps in an
//! inode.
//!
//! A file here is one asset in one user's view of one purpose (the mount gives each its own
//! inode). Every handle on it reads and writes the same state: a write through one descriptor
//! is read through every other at once (`tail -f`, SQLite with two connections), `O_APPEND`
//! appends at the true end whoever wrote last, and a truncate by path acts on what the open
//! descriptors wrote. The state is committed as a version when the last handle open for
//! writing is released, when its opener closes it, or at fsync; commits of one open file
//! update the version it committed before instead of adding one per fsync.
//!
//! Other users' files of the same asset are other inodes: they keep serving the version they
//! opened, whole, until they are opened again. A file whose name was given to another (renamed
//! over, saved with a backup) is detached: its handles keep reading what they read, and what
//! is written through them afterwards is not recorded, as on a local filesystem where writes to
//! a replaced inode go nowhere.
//!
//! Lock order: the registry is a leaf (held only to look up, insert or remove an entry, and to
//! read a file's `pending_size`, itself a leaf); a file's `state` may be held while taking the
//! catalog and the view, so nothing that holds the view takes a `state`.

use super::write::Pending;
use crate::crypto::object::{Decryptor, ObjectId};
use crate::policy::{AssetId, PurposeId, Status};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

/// The process (thread group) of thread `tid`, as FUSE reports the caller, from
/// `/proc/<tid>/status`.
fn process_of(tid: u32) -> Option<u32> {
    if tid == 0 {
        return None;
    }
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The process of each thread that asked lately ([`super::provenance::ThreadCache`]): a new
/// file asks at its create and again at its close, and those two reads of `/proc` were 4 % of
/// the daemon's time in `tar x` of small files.
#[derive(Default)]
pub(super) struct Tgids(super::provenance::ThreadCache<u32>);

impl Tgids {
    pub fn of(&self, tid: u32) -> Option<u32> {
        if tid == 0 {
            return None;
        }
        self.0.get(tid, process_of)
    }
}

/// A path in a view: (login, purpose, path).
pub(super) type PathKey = (Arc<str>, PurposeId, String);

/// Which file: the view (login, purpose) and the asset it was opened as.
pub(super) type FileKey = (Arc<str>, PurposeId, AssetId);

pub(super) struct OpenFile {
    /// Tells this file's commits from other files' (see `Recent` in write.rs).
    pub session: u64,
    /// Whose view it is in: its unsaved bytes count against this user's limit.
    pub login: Arc<str>,
    pub state: RwLock<FileState>,
    /// Handles on it; changed only under the registry's lock.
    handles: AtomicUsize,
    /// Handles on it open for writing.
    pub writers_open: AtomicUsize,
    /// Its name now refers to another file: what is written through it is not recorded.
    pub detached: AtomicBool,
    /// The size with uncommitted writes, for `stat` in this view (a leaf lock).
    pub pending_size: Mutex<Option<u64>>,
    /// Bytes of its pending version counted against its user's limit.
    pub charged: std::sync::atomic::AtomicU64,
    /// When it was last written (or the time set on it while written), for `stat` in this
    /// view: as on a local filesystem the modification time moves at each write, not at the
    /// close (`make`, `tail -F` and backups compare it while a file is being written). A leaf
    /// lock, like `pending_size`.
    pub pending_mtime: Mutex<Option<SystemTime>>,
    /// The version its readers see while nothing is pending: a copy of `state.object` that
    /// can be read without the state's lock (a leaf), to tell a file another save left
    /// behind (see `Vfs::supersede`).
    serving: Mutex<ObjectId>,
    /// A commit of it is being recorded: the catalog already has its new version, its
    /// `serving` does not yet.
    pub committing: AtomicBool,
    /// Its name was removed while descriptors held it open (unlink, or the trash): the status
    /// the asset had then, by which consent still decides what the descriptors may read.
    unlinked: Mutex<Option<Status>>,
    /// Held while pages of it are pushed into the kernel's cache (see `super::fill`), and
    /// passed by every open for writing: no push lands once a write may have begun. Never
    /// held together with another lock of the file.
    fill_barrier: Mutex<()>,
}

pub(super) struct FileState {
    /// The committed version read while nothing is pending (and a writer starts from).
    pub object: ObjectId,
    pub reader: Decryptor<crate::store::ObjectSource>,
    /// The version being written, once a handle wrote or truncated.
    pub writer: Option<Pending>,
    /// Made by `create`: the first commit fills the empty version 1 the create recorded.
    pub fresh: bool,
}

impl OpenFile {
    pub fn new(
        session: u64,
        login: Arc<str>,
        object: ObjectId,
        reader: Decryptor<crate::store::ObjectSource>,
    ) -> OpenFile {
        OpenFile {
            session,
            login,
            state: RwLock::new(FileState {
                object,
                reader,
                writer: None,
                fresh: false,
            }),
            handles: AtomicUsize::new(0),
            writers_open: AtomicUsize::new(0),
            detached: AtomicBool::new(false),
            pending_size: Mutex::new(None),
            charged: std::sync::atomic::AtomicU64::new(0),
            pending_mtime: Mutex::new(None),
            serving: Mutex::new(object),
            committing: AtomicBool::new(false),
            unlinked: Mutex::new(None),
            fill_barrier: Mutex::new(()),
        }
    }

    /// A handle open for writing joins it. Waits for a push of its pages into the kernel's
    /// cache that is under way (one checked before this open), so that no page of what it
    /// served lands after a write through this handle (see `super::fill`). The caller holds
    /// no lock: the push may be waiting for a read in flight to be answered.
    pub fn start_writing(&self) {
        self.writers_open.fetch_add(1, Ordering::AcqRel);
        drop(self.fill_barrier());
    }

    /// The barrier between pushes of its pages and writes (see [`OpenFile::start_writing`]).
    pub fn fill_barrier(&self) -> std::sync::MutexGuard<'_, ()> {
        self.fill_barrier.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The version its readers see while nothing is pending.
    pub fn serving(&self) -> ObjectId {
        *self.serving.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Its state now reads `object` (after a commit).
    pub fn set_serving(&self, object: ObjectId) {
        *self.serving.lock().unwrap_or_else(|p| p.into_inner()) = object;
    }

    /// Uncommitted bytes are waiting in it.
    pub fn has_pending(&self) -> bool {
        self.pending_size
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// The asset's status when its name was removed with this file open, if it was.
    pub fn unlinked(&self) -> Option<Status> {
        *self.unlinked.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_unlinked(&self, status: Status) {
        *self.unlinked.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
    }

    /// How many descriptors are open on it.
    pub fn handle_count(&self) -> usize {
        self.handles.load(Ordering::Acquire)
    }

    /// What the file holds now, uncommitted (written now), or `None` once committed.
    pub fn set_pending_size(&self, size: Option<u64>) {
        *self.pending_size.lock().unwrap_or_else(|p| p.into_inner()) = size;
        *self.pending_mtime.lock().unwrap_or_else(|p| p.into_inner()) =
            size.map(|_| SystemTime::now());
    }

    /// The modification time set on the file while it is written (utimensat, `cp -p`).
    pub fn set_pending_mtime(&self, at: SystemTime) {
        *self.pending_mtime.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }

    pub fn is_detached(&self) -> bool {
        self.detached.load(Ordering::Acquire)
    }
}

/// The open files, by key. A file leaves the registry with its last handle, or earlier when
/// its name is given to another file (then it lives on with its handles only).
#[derive(Default)]
pub(super) struct Registry {
    files: Mutex<HashMap<FileKey, Arc<OpenFile>>>,
    /// Files whose last handle went while it served older content than the catalog's: the
    /// kernel may hold pages of it, so their next open drops them (a leaf lock).
    older_pages: Mutex<std::collections::HashSet<FileKey>>,
}

/// How many files [`Registry::older_pages`] remembers; past that it starts over (their pages
/// were invalidated as well, a moment later).
const OLDER_PAGES_MAX: usize = 4096;

impl Registry {
    /// The kernel may hold pages of older content of `key`'s file.
    pub fn mark_older_pages(&self, key: &FileKey) {
        let mut older = self.older_pages.lock().unwrap_or_else(|p| p.into_inner());
        if older.len() >= OLDER_PAGES_MAX {
            older.clear();
        }
        older.insert(key.clone());
    }

    /// Whether the kernel may hold pages of older content of `key`'s file (forgetting it).
    pub fn take_older_pages(&self, key: &FileKey) -> bool {
        let mut older = self.older_pages.lock().unwrap_or_else(|p| p.into_inner());
        !older.is_empty() && older.remove(key)
    }

    /// The open file for `key`, taking a reference for a new handle. `make` builds a new one
    /// when there is none, or when `keep` says the one there may not be shared (the asset
    /// changed behind it); the old one then lives on with its handles.
    pub fn acquire(
        &self,
        key: &FileKey,
        keep: impl FnOnce(&OpenFile) -> bool,
        make: impl FnOnce() -> crate::error::Result<OpenFile>,
    ) -> crate::error::Result<Arc<OpenFile>> {
        self.acquire_noting(key, keep, make).map(|(f, _)| f)
    }

    /// [`Registry::acquire`], also saying whether the file returned took the place of one
    /// that was behind the catalog: the kernel may then hold pages of that older content for
    /// the inode, read through its handles after the change was invalidated.
    pub fn acquire_noting(
        &self,
        key: &FileKey,
        keep: impl FnOnce(&OpenFile) -> bool,
        make: impl FnOnce() -> crate::error::Result<OpenFile>,
    ) -> crate::error::Result<(Arc<OpenFile>, bool)> {
        // `keep` takes the file's state lock: never under the registry's (see the lock order)
        let seen = self.get(key);
        let reuse = seen.as_ref().filter(|f| keep(f)).cloned();
        // registered by another open since we looked: as new as one we would make
        let newer = |g: &Arc<OpenFile>| seen.as_ref().is_none_or(|s| !Arc::ptr_eq(g, s));
        {
            let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(g) = files.get(key) {
                if reuse.as_ref().is_some_and(|r| Arc::ptr_eq(g, r)) || newer(g) {
                    g.handles.fetch_add(1, Ordering::AcqRel);
                    return Ok((g.clone(), false));
                }
            }
        }
        let fresh = Arc::new(make()?);
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = files.get(key).filter(|g| newer(g)) {
            g.handles.fetch_add(1, Ordering::AcqRel);
            return Ok((g.clone(), false));
        }
        fresh.handles.fetch_add(1, Ordering::AcqRel);
        let behind = files.insert(key.clone(), fresh.clone()).is_some();
        Ok((fresh, behind))
    }

    /// Register a new file under `key` for a handle, replacing (detaching) any there.
    pub fn replace(&self, key: &FileKey, file: OpenFile) -> Arc<OpenFile> {
        let file = Arc::new(file);
        file.handles.fetch_add(1, Ordering::AcqRel);
        let old = self
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), file.clone());
        if let Some(old) = old {
            old.detached.store(true, Ordering::Release);
        }
        file
    }

    pub fn get(&self, key: &FileKey) -> Option<Arc<OpenFile>> {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// The open files of `asset` in any view, with their keys.
    pub fn of_asset_keyed(&self, asset: AssetId) -> Vec<(FileKey, Arc<OpenFile>)> {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((_, _, a), _)| *a == asset)
            .map(|(k, f)| (k.clone(), f.clone()))
            .collect()
    }

    /// A new handle on `file`, which is no longer registered (its name went to another file)
    /// but is reached through the inode the kernel keeps for it.
    pub fn share(&self, file: &Arc<OpenFile>) {
        let _files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        file.handles.fetch_add(1, Ordering::AcqRel);
    }

    /// The open files of `asset` in any view.
    pub fn of_asset(&self, asset: AssetId) -> Vec<Arc<OpenFile>> {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((_, _, a), _)| *a == asset)
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// The uncommitted size of a file of this view whose asset `matches` (a draft merged into
    /// an asset writes to it), if any.
    pub fn pending_size(
        &self,
        login: &str,
        purpose: PurposeId,
        matches: impl Fn(AssetId) -> bool,
    ) -> Option<u64> {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((l, p, a), _)| &**l == login && *p == purpose && matches(*a))
            .filter_map(|(_, f)| *f.pending_size.lock().unwrap_or_else(|p| p.into_inner()))
            .max()
    }

    /// When a file of this view whose asset `matches` was last written, uncommitted, if any.
    pub fn pending_mtime(
        &self,
        login: &str,
        purpose: PurposeId,
        matches: impl Fn(AssetId) -> bool,
    ) -> Option<SystemTime> {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((l, p, a), _)| &**l == login && *p == purpose && matches(*a))
            .filter_map(|(_, f)| *f.pending_mtime.lock().unwrap_or_else(|p| p.into_inner()))
            .max()
    }

    /// The name `key` now refers to another file (or none): `file` is detached (its handles
    /// keep it), and unregistered if it is the one registered, so the next open starts a new one.
    pub fn detach_file(&self, key: &FileKey, file: &Arc<OpenFile>) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if files.get(key).is_some_and(|g| Arc::ptr_eq(g, file)) {
            files.remove(key);
        }
        file.detached.store(true, Ordering::Release);
    }

    /// A handle on `file` (registered under `key`) is gone.
    /// A handle on `file` is gone. Returns, for its last handle, whether another file took
    /// its place in the registry meanwhile (it was behind the catalog, or detached).
    pub fn release(&self, key: &FileKey, file: &Arc<OpenFile>) -> Option<bool> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if file.handles.fetch_sub(1, Ordering::AcqRel) != 1 {
            return None;
        }
        // a registered file leaves the registry only here: one that is not (or no longer)
        // there was taken the place of
        if files.get(key).is_some_and(|g| Arc::ptr_eq(g, file)) {
            files.remove(key);
            return Some(false);
        }
        Some(true)
    }
}
