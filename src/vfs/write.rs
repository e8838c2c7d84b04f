//! Writing through the mount: create, write, truncate, rename, unlink, mkdir, rmdir, and the
//! commit of a new version at close or fsync.
//!
//! Semantics, chosen so that every save strategy of editing tools works and nothing leaks:
//!
//! * Writing to an existing file starts a new object in the background (a copy of the current
//!   version, made lazily at the first write); close, flush or fsync commits it as the next
//!   version of the same asset, so its linked persons stay. Until then other handles and
//!   other users see the last committed version; a crash leaves exactly that.
//! * A new name is a draft: shown only to its creator, in the purpose folder where it was made.
//! * Renaming a draft over an existing file (temp file + rename, the way exiftool, sed -i,
//!   rsync and most editors save) makes the draft's content the next version of that file; the
//!   draft is gone. Renaming one reviewed photo over another is refused (EACCES): it would put
//!   one person's photo under another person's consent.
//! * Moving a photo (not a draft) to another folder needs a delete grant where it is and a write
//!   grant where it goes, in every purpose in which anyone sees it there or would see it after
//!   the move: the folder is the photo's collection in all purposes at once (see
//!   `check_move_everywhere`). Otherwise EACCES.
//! * Unlink moves an asset to the trash (active assets need a delete grant).
//! * Empty folders made with mkdir live in memory until something is saved in them.

use super::inodes::Node;
use super::open_file::{FileState, OpenFile};
use super::queue::{self, QueuedSave};
use super::{denied, Attr, Caller, Vfs};
use crate::catalog::assets::{self, join_path};
use crate::catalog::{busy_error, is_busy};
use crate::crypto::object::{Decryptor, ObjectId};
use crate::error::{Error, Result};
use crate::policy::{Access, AssetId, PurposeId, Status, Time};
use crate::store::{ObjectSource, ObjectWriter, Store};
use crate::view::View;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long a save's close waits for a catalog another command holds before the save is
/// queued (durably) instead: long enough for any short transaction, short enough that no
/// editor sees a hanging close.
pub(super) const SAVE_WAIT: Duration = Duration::from_secs(2);

/// How long the catalog transaction of a create may stay open while new files stream in
/// (each create and first save joins it): the watcher commits it after this. A command that
/// waits for the catalog's write lock meanwhile says so (`catalog::waiters`) and is let in at
/// once, so the window only bounds how stale other processes' reads of the catalog are while
/// files keep coming. A commit re-encrypts every page it changes, and the same index and
/// audit pages are changed again by the next files: 50 ms cost a fifth as many commits as 10
/// ms, and 200 ms took the daemon's CPU for a `tar x` of 5,000 small files from 1,600 to
/// 1,520 ms against 50 ms (1 s saved nothing more).
pub const CREATE_WINDOW: Duration = Duration::from_millis(200);

/// ... but once no file joined it for this long, the watcher commits it at its next round:
/// the last files of a burst, or a single save, are in the catalog within milliseconds.
pub const CREATE_IDLE: Duration = Duration::from_millis(2);

/// After such a transaction, creates commit one by one for this long, as every other change
/// does, leaving the write lock free now and then even to a process that waits for it without
/// saying so (every consentfs command says so: see `catalog::waiters`).
pub const CREATE_GAP: Duration = Duration::from_millis(1);

/// What recording a save found and wrote (see `Vfs::record_save_learning`).
struct Recorded {
    version: i64,
    /// The object the save replaced that no version uses any more.
    freed: Option<ObjectId>,
    /// The asset's path when the save was recorded (for the new-file journal).
    collection: String,
    name: String,
    /// The version as recorded, when the asset's row did not change with it: the view may
    /// learn it without reading it back.
    learnt: Option<crate::catalog::assets::VersionRow>,
}

/// The empty object new files share (see `Vfs::placeholder`): its id, its wrapped key, and a
/// reader of it kept open, from which each new file gets its own over a second descriptor.
pub(super) struct Placeholder {
    id: ObjectId,
    wrapped_key: Vec<u8>,
    reader: Option<Decryptor<ObjectSource>>,
}

impl Placeholder {
    /// Keep a reader of its own beside `reader` (none for an object not on this machine).
    fn keep(id: ObjectId, wrapped_key: Vec<u8>, reader: &Decryptor<ObjectSource>) -> Placeholder {
        let reader = reader
            .source()
            .duplicate_if_named()
            .map(|s| reader.with_source(s));
        Placeholder {
            id,
            wrapped_key,
            reader,
        }
    }
}

/// [`CREATE_WINDOW`], or what `CONSENTFS_CREATE_WINDOW_MS` says (at most a minute): the
/// crash tests hold the transaction open on purpose, to kill the daemon while new files are
/// only in the journal.
pub fn create_window() -> Duration {
    windows().0
}

/// [`CREATE_IDLE`]; with `CONSENTFS_CREATE_WINDOW_MS` set, that window (a transaction held
/// open on purpose is not committed because the files stopped coming).
fn create_idle() -> Duration {
    windows().1
}

fn windows() -> (Duration, Duration) {
    static WINDOWS: std::sync::OnceLock<(Duration, Duration)> = std::sync::OnceLock::new();
    *WINDOWS.get_or_init(|| {
        std::env::var("CONSENTFS_CREATE_WINDOW_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(|ms| Duration::from_millis(ms.min(60_000)))
            .map_or((CREATE_WINDOW, CREATE_IDLE), |w| (w, w))
    })
}

/// Saves of one asset by one process this close together are one save (ImageMagick opens a
/// file with O_TRUNC twice, GIMP and darktable-cli write the image and then reopen it for the
/// metadata): the later updates the version the earlier made instead of adding one. Saves by
/// different programs (mogrify, then exiftool) stay versions of their own.
const ONE_SAVE: Duration = Duration::from_secs(5);

/// Assets whose last save is remembered at once (see [`Recent`]).
const RECENT_MAX: usize = 4096;

/// The version the last save through the mount made of an asset: the next commit of the same
/// open file (an fsync, then the close), or of the same user within [`ONE_SAVE`], updates it.
pub(super) struct Recent {
    login: Arc<str>,
    version: i64,
    at: std::time::Instant,
    session: u64,
    process: Option<u32>,
}

/// Make room in the saves remembered by [`Recent`]: forget those older than [`ONE_SAVE`],
/// and while more than half the room is still taken (a burst of new files, thousands a
/// second), the oldest of the rest. So this runs once per `RECENT_MAX / 2` saves at most, not
/// at every save of a burst (it walks the whole map). Bounded either way: forgetting a save
/// costs a version, never data.
fn trim_recent<V>(recent: &mut HashMap<AssetId, V>, at: impl Fn(&V) -> std::time::Instant) {
    recent.retain(|_, r| at(r).elapsed() < ONE_SAVE);
    let keep = RECENT_MAX / 2;
    if recent.len() > keep {
        let mut ages: Vec<std::time::Instant> = recent.values().map(&at).collect();
        let cut = ages.len() - keep;
        let (_, oldest_kept, _) = ages.select_nth_unstable(cut);
        let oldest_kept = *oldest_kept;
        recent.retain(|_, r| at(r) >= oldest_kept);
    }
}

/// A version being written by one handle.
pub(super) struct Pending {
    pub writer: ObjectWriter,
    pub dirty: bool,
    /// A modification time set while writing (utimensat on an open file).
    pub mtime: Option<Time>,
    /// An access time set while writing (`cp -p`'s futimens), recorded with the save.
    pub atime: Option<Time>,
}

impl Pending {
    pub fn new(store: &Store) -> Result<Pending> {
        Ok(Pending {
            writer: store.writer()?,
            dirty: false,
            mtime: None,
            atime: None,
        })
    }
}

pub(super) fn errno(code: i32, what: &str) -> Error {
    Error::io(what.to_string(), std::io::Error::from_raw_os_error(code))
}

/// Where a new entry goes: (login, purpose, folder path).
pub(super) fn folder_of(node: &Node) -> Result<(Arc<str>, PurposeId, String)> {
    match node {
        Node::Purpose(l, p) => Ok((l.clone(), *p, String::new())),
        Node::Dir(l, p, path) => Ok((l.clone(), *p, path.to_string())),
        _ => Err(errno(
            libc::EPERM,
            "files can only be created inside a purpose folder",
        )),
    }
}

/// A checked rename of a folder with photos: (asset, from folder, to folder, name, draft).
pub(super) struct FolderMove {
    old: String,
    new: String,
    moves: Vec<(AssetId, String, String, String, bool)>,
}

impl Vfs {
    /// The asset a handle writes to now (a draft renamed over a file continues as that file).
    pub(super) fn current_asset(&self, asset: AssetId) -> AssetId {
        let merged = self.merged.lock().unwrap_or_else(|p| p.into_inner());
        let mut a = asset;
        while let Some(next) = merged.get(&a) {
            a = *next;
        }
        a
    }

    /// The drafts saved over `asset` (directly or through other drafts): their inodes and
    /// handles now stand for it.
    pub(super) fn merged_into(&self, asset: AssetId) -> Vec<AssetId> {
        let merged = self.merged.lock().unwrap_or_else(|p| p.into_inner());
        merged
            .keys()
            .copied()
            .filter(|&from| {
                let mut a = from;
                while let Some(next) = merged.get(&a) {
                    a = *next;
                    if a == asset {
                        return true;
                    }
                }
                false
            })
            .collect()
    }

    pub(super) fn check_write(
        &self,
        view: &View,
        login: &str,
        purpose: PurposeId,
        asset: AssetId,
    ) -> Result<()> {
        let info = view
            .asset(asset)
            .ok_or_else(|| Error::not_found("no such asset"))?;
        match view.access(login, purpose, &info.collection) {
            Some(Access::Write | Access::Delete) => Ok(()),
            _ if info.row.status == Status::Draft && *info.row.creator == *login => Ok(()),
            _ => {
                log::info!("denied: write to asset {asset} without a write grant");
                Err(denied("no write grant here"))
            }
        }
    }

    fn need(
        &self,
        view: &View,
        login: &str,
        purpose: PurposeId,
        folder: &str,
        level: Access,
    ) -> Result<()> {
        if view
            .access(login, purpose, folder)
            .is_some_and(|a| a >= level)
        {
            Ok(())
        } else {
            log::info!(
                "denied: {} in a folder without a {} grant",
                if level == Access::Delete {
                    "delete"
                } else {
                    "write"
                },
                level.as_str()
            );
            Err(denied(format!("no {} grant here", level.as_str())))
        }
    }

    /// Apply a catalog change this daemon made: refresh the view now (not at the next poll),
    /// and queue the kernel cache invalidations for the invalidator thread.
    pub(super) fn after_change(&self, conn: &rusqlite::Connection) {
        self.after_change_but(conn, None, None);
    }

    /// Like [`Vfs::after_change`] after the create or first save of a new file this daemon
    /// just made for `login`: the kernel learnt of that change from the request itself (the
    /// entry from the create's answer, the bytes from the writes), and the file is a draft only
    /// `login` sees. So its change is not sent to the kernel, which would drop the entry the
    /// create just made and wake the invalidator for every file of a `tar x`. Everything else
    /// the same refresh finds is invalidated as usual; a new file that others see (a sidecar
    /// attached to a photo) is too.
    /// `learnt`: the rows the change wrote, when they need not be read back (see
    /// [`crate::view::View::refresh_knowing`]).
    fn after_own_change(
        &self,
        conn: &rusqlite::Connection,
        login: &str,
        asset: AssetId,
        learnt: Option<crate::view::Known>,
    ) {
        self.after_change_but(conn, Some((login, asset)), learnt);
    }

    fn after_change_but(
        &self,
        conn: &rusqlite::Connection,
        known: Option<(&str, AssetId)>,
        learnt: Option<crate::view::Known>,
    ) {
        let changes = self
            .view
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .refresh_knowing(conn, chrono::Utc::now(), learnt);
        match changes {
            Ok(changes) if !changes.is_empty() => {
                let (own, changes): (Vec<_>, Vec<_>) = changes.into_iter().partition(|c| {
                    matches!((c, known), (
                        crate::view::Change::Asset { login: Some(l), asset: a, .. },
                        Some((login, asset)),
                    ) if **l == *login && *a == asset)
                });
                if !own.is_empty() {
                    // open files of the draft still learn of its new version
                    self.supersede(&own);
                }
                let inval = self.invalidations(&changes);
                if inval.is_empty() {
                    return;
                }
                if let Some(tx) = self
                    .inval_tx
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                {
                    // never wait for the kernel here: this runs inside a request
                    let _ = tx.send(super::Batch {
                        items: inval,
                        done: None,
                        fill: None,
                    });
                }
            }
            Ok(_) => {}
            Err(e) => log::warn!("cannot refresh the view after a change: {e}"),
        }
    }

    /// Run `f` in one catalog transaction as `login`, then refresh the view.
    fn change<T>(
        &self,
        login: &str,
        f: impl FnOnce(&crate::catalog::Tx) -> Result<T>,
    ) -> Result<T> {
        let mut cat = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        let joined = cat.pending_for().is_some();
        let result = (|| -> Result<T> {
            let tx = cat.begin(login, chrono::Utc::now())?;
            let r = f(&tx)?;
            tx.commit()?;
            Ok(r)
        })();
        if result.is_err() && joined && cat.pending_for().is_none() {
            self.forget_uncommitted(&cat);
        }
        let result = result?;
        if joined {
            self.committed_new_files();
        }
        self.after_change(cat.conn());
        Ok(result)
    }

    /// Like [`Vfs::change`], but leave the transaction open for the next change (or
    /// [`Vfs::settle`]) to commit: see [`crate::catalog::Tx::commit_later`]. For a create,
    /// whose close or fsync makes it durable: a new file written and closed costs one commit.
    fn change_later(
        &self,
        login: &str,
        f: impl FnOnce(&crate::catalog::Tx) -> Result<(AssetId, Option<crate::view::Known>)>,
    ) -> Result<(AssetId, Option<std::time::Instant>)> {
        let mut cat = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        let joined = cat.pending_for().is_some();
        // a command waiting for the write lock gets it between this daemon's transactions
        let later = joined
            || (cat.since_pending().is_none_or(|d| d >= CREATE_GAP) && !cat.others_waiting());
        let result = (|| -> Result<(AssetId, Option<crate::view::Known>)> {
            let tx = cat.begin(login, chrono::Utc::now())?;
            let r = f(&tx)?;
            if later {
                tx.commit_later()?;
            } else {
                tx.commit()?;
            }
            Ok(r)
        })();
        if result.is_err() && joined && cat.pending_for().is_none() {
            self.forget_uncommitted(&cat);
        }
        let (result, learnt) = result?;
        self.after_own_change(cat.conn(), login, result, learnt);
        let group = cat.pending_since();
        self.commit_if_due(&mut cat);
        Ok((result, group))
    }

    /// Commit the open transaction of the latest creates once it is [`CREATE_WINDOW`] old, or
    /// at once when another command waits for the catalog's write lock: other commands never
    /// wait long for the catalog while files stream in.
    fn commit_if_due(&self, cat: &mut crate::catalog::Catalog) {
        let due = cat
            .pending_for()
            .is_some_and(|age| age >= create_window() || cat.others_waiting());
        if due {
            match cat.commit_pending() {
                Ok(_) => self.committed_new_files(),
                Err(e) => {
                    // the saves among them are in the journal: recorded at the next mount
                    log::error!("cannot commit new files to the catalog: {e}");
                    self.forget_uncommitted(cat);
                }
            }
        }
    }

    /// The first save of a file created in the catalog transaction still open: recorded in
    /// that transaction, which stays open for the next files (committed by the watcher within
    /// [`CREATE_WINDOW`], or by any other change), and made durable by the new-file journal
    /// before the close returns. So extracting many small files (`tar x`, `cp -r`, `rsync`)
    /// costs one catalog commit every few milliseconds instead of one per file. `None`: not
    /// such a file (its create was committed already), save it the usual way.
    fn save_new_file(
        &self,
        save: &QueuedSave,
        obj: &crate::store::NewObject,
    ) -> Option<Result<(i64, Option<crate::crypto::object::ObjectId>)>> {
        let mut cat = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        let group = cat.pending_since()?;
        let created = self
            .created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&save.asset)
            .copied();
        if created != Some(group) {
            return None;
        }
        let recorded = (|| {
            let tx = cat.begin(&save.login, chrono::Utc::now())?;
            let r = self.record_save_learning(&tx, save, obj)?;
            tx.commit_later()?;
            Ok(r)
        })();
        let mut learnt = None;
        let recorded = match recorded {
            Ok(r) => {
                let rec = queue::NewFile {
                    collection: r.collection,
                    name: r.name,
                    save: save.clone(),
                };
                learnt = r.learnt.map(|version| crate::view::Known::Version {
                    asset: save.asset,
                    version,
                });
                let r = (r.version, r.freed);
                match self.journal.append(group, &rec) {
                    Ok(()) => {
                        // durable now: its close need not commit
                        self.created
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&save.asset);
                        Ok(r)
                    }
                    Err(e) => {
                        // not durable by the journal: by the commit then
                        log::warn!("cannot write the new-file journal ({e}); committing at once");
                        match cat.commit_pending() {
                            Ok(_) => {
                                self.committed_new_files();
                                Ok(r)
                            }
                            Err(e) => {
                                self.forget_uncommitted(&cat);
                                Err(e)
                            }
                        }
                    }
                }
            }
            Err(e) => {
                if cat.pending_for().is_none() {
                    // the open transaction went with it
                    self.forget_uncommitted(&cat);
                }
                Err(e)
            }
        };
        if recorded.is_ok() {
            self.after_own_change(cat.conn(), &save.login, save.asset, learnt);
        }
        self.commit_if_due(&mut cat);
        Some(recorded)
    }

    /// Record what the new-file journal of a daemon that was killed holds (at the start,
    /// before anything else changes the catalog): each file whose object the catalog does not
    /// know becomes the draft it was, with its content, times and sources, if its creator may
    /// still write there (else it is discarded with a log line, as a save would be). A name
    /// taken meanwhile gets `.recovered` appended. Then the journal is emptied.
    pub fn replay_new_files(&self) {
        let records = match self.journal.load() {
            Ok(r) => r,
            Err(e) => {
                log::error!("cannot read the new-file journal: {e}");
                return;
            }
        };
        let mut recovered = 0;
        for rec in &records {
            match self.replay_new_file(rec) {
                Ok(Some(asset)) => {
                    recovered += 1;
                    log::info!("asset {asset}: a new file saved before a crash is recorded");
                }
                Ok(None) => {}
                Err(e) => {
                    log::error!(
                        "a new file saved before a crash cannot be recorded: {e}; discarded"
                    );
                    if let Ok(obj) = rec.save.new_object() {
                        let _ = self.store.remove_object(&obj.id);
                    }
                }
            }
        }
        if recovered > 0 {
            log::warn!(
                "{recovered} new file(s) saved just before the daemon stopped were recorded now"
            );
        }
        // under the catalog's lock, with no transaction open: no record added meanwhile is
        // lost (one of an open transaction is emptied with it when it commits)
        let cat = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        if cat.pending_for().is_none() {
            if let Err(e) = self.journal.clear() {
                log::error!("cannot empty the new-file journal: {e}");
            }
        }
    }

    fn replay_new_file(&self, rec: &queue::NewFile) -> Result<Option<AssetId>> {
        let save = &rec.save;
        let obj = save.new_object()?;
        self.change(&save.login, |tx| {
            if assets::object_known(tx, &obj.id.hex())? {
                return Ok(None); // committed before the crash
            }
            let access = crate::catalog::users::resolve(tx, &save.login)
                .ok()
                .and_then(|u| u.to_policy().access(save.purpose, &rec.collection));
            if !matches!(access, Some(Access::Write | Access::Delete)) {
                return Err(denied("no write grant there any more"));
            }
            let mut name = rec.name.clone();
            if assets::path_taken(tx, &rec.collection, &name)?.is_some() {
                name.push_str(".recovered");
            }
            let id = assets::add_draft(tx, &rec.collection, &name, save.purpose, &obj)?;
            let same = assets::with_content(tx, &obj.content_hash, id)?;
            assets::add_sources(tx, id, &same, assets::SourceKind::Content)?;
            let read: Vec<AssetId> = save.read.iter().copied().filter(|a| *a != id).collect();
            assets::add_sources(tx, id, &read, assets::SourceKind::Read)?;
            if save.mtime.is_some() || save.atime.is_some() {
                assets::set_times(tx, id, save.mtime(), save.atime())?;
            }
            Ok(Some(id))
        })
    }

    /// Commit the catalog transaction a create left open (see [`Vfs::change_later`]); with
    /// `older_than`, only one open at least that long, or that nothing joined for
    /// [`CREATE_IDLE`], or that another command waits for (the watcher's rounds: a create whose
    /// file is not closed within a few milliseconds is committed on its own, so other commands
    /// never wait for a file being written). `blocking`: wait for the catalog connection
    /// (close and fsync), else give up at once when a request holds it (it commits then).
    pub fn settle(&self, older_than: Option<Duration>, blocking: bool) -> Result<()> {
        if self
            .replay_due
            .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            self.replay_new_files();
        }
        let mut cat = if blocking {
            self.catalog.lock().unwrap_or_else(|p| p.into_inner())
        } else {
            match self.catalog.try_lock() {
                Ok(c) => c,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return Ok(()),
            }
        };
        match (cat.pending_for(), older_than) {
            (None, _) => {
                let due = self.replay_due.load(std::sync::atomic::Ordering::Acquire);
                if self.journal.is_filled() && !due {
                    // committed by a change made elsewhere (an access entry, a queued save)
                    self.committed_new_files();
                }
                return Ok(());
            }
            (Some(age), Some(min))
                if age < min
                    && cat.pending_idle().is_some_and(|idle| idle < create_idle())
                    && !cat.others_waiting() =>
            {
                return Ok(())
            }
            _ => {}
        }
        if let Err(e) = cat.commit_pending() {
            log::error!("cannot commit new files to the catalog: {e}");
            self.forget_uncommitted(&cat);
            return Err(e);
        }
        self.committed_new_files();
        Ok(())
    }

    /// Make the create of `asset` durable if it is still only in the open transaction and
    /// not in the journal (a file created and closed, or fsynced, without being written):
    /// its close or fsync must not return before.
    pub(super) fn settle_created(&self, asset: AssetId) -> Result<()> {
        let mut cat = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        let Some(group) = cat.pending_since() else {
            return Ok(());
        };
        let open = self
            .created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&asset)
            == Some(&group);
        if !open {
            return Ok(());
        }
        if let Err(e) = cat.commit_pending() {
            log::error!("cannot commit new files to the catalog: {e}");
            self.forget_uncommitted(&cat);
            return Err(e);
        }
        self.committed_new_files();
        Ok(())
    }

    /// The transaction holding the latest creates committed: their journal records are done.
    fn committed_new_files(&self) {
        self.created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        if let Err(e) = self.journal.clear() {
            // harmless: a record of a committed file is skipped when replayed
            log::warn!("cannot empty the new-file journal: {e}");
        }
    }

    /// The transaction a create left open was rolled back (its commit failed): what the view
    /// learnt of it (new drafts, audit entries) is gone. Read the view again, so that it never
    /// runs ahead of the catalog (it would skip the next entries under the same numbers).
    fn forget_uncommitted(&self, cat: &crate::catalog::Catalog) {
        log::warn!("files created a moment ago could not be recorded; the view is read again");
        // the saves among them are in the journal: the watcher records them again
        self.journal.keep();
        self.replay_due
            .store(true, std::sync::atomic::Ordering::Release);
        match View::load(cat.conn(), chrono::Utc::now()) {
            Ok(fresh) => {
                *self.view.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                self.send_invalidations(vec![crate::view::Change::All]);
            }
            Err(e) => self.live.fail(&format!(
                "the view cannot be read again after a failed commit ({e})"
            )),
        }
    }

    /// Hand `changes` to the invalidator thread (never waiting for the kernel).
    fn send_invalidations(&self, changes: Vec<crate::view::Change>) {
        let inval = self.invalidations(&changes);
        if let Some(tx) = self
            .inval_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            let _ = tx.send(super::Batch {
                items: inval,
                done: None,
                fill: None,
            });
        }
    }

    /// Like [`Vfs::change`], but wait at most `wait` for the catalog's write lock.
    fn change_within<T>(
        &self,
        login: &str,
        wait: Duration,
        f: impl FnOnce(&crate::catalog::Tx) -> Result<T>,
    ) -> Result<T> {
        let mut cat = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        let joined = cat.pending_for().is_some();
        let result = (|| -> Result<T> {
            let tx = cat.begin_within(login, chrono::Utc::now(), wait)?;
            let r = f(&tx)?;
            tx.commit()?;
            Ok(r)
        })();
        if result.is_err() && joined && cat.pending_for().is_none() {
            self.forget_uncommitted(&cat);
        }
        let result = result?;
        if joined {
            self.committed_new_files();
        }
        self.after_change(cat.conn());
        Ok(result)
    }

    /// Record the queued saves, oldest first, each waiting at most `wait` for the catalog;
    /// stop at the first that still meets a busy catalog. Returns how many are still queued.
    pub fn retry_queued(&self, wait: Duration) -> usize {
        for save in self.saves.pending() {
            let obj = match save.new_object() {
                Ok(o) => o,
                Err(e) => {
                    log::error!(
                        "asset {}: a queued save is damaged ({e}); dropped",
                        save.asset
                    );
                    let _ = self.saves.done(save.seq);
                    continue;
                }
            };
            let recorded = self.change_within(&save.login, wait, |tx| {
                // recorded already (the queue file outlived its commit): never twice
                if let Some((_, version)) = assets::version_of_object(tx, &obj.id)? {
                    return Ok((version, None));
                }
                self.record_save(tx, &save, &obj)
            });
            match recorded {
                Ok((version, freed)) => self.saved(&save, version, freed),
                Err(e) if is_busy(&e) => break,
                Err(e) => {
                    log::warn!(
                        "asset {}: a queued save could not be recorded: {e}; discarded",
                        save.asset
                    );
                    let _ = self.store.remove_object(&obj.id);
                }
            }
            if let Err(e) = self.saves.done(save.seq) {
                log::error!(
                    "asset {}: cannot remove a handled queued save: {e}",
                    save.asset
                );
            }
        }
        self.saves.pending().len()
    }

    /// Object ids of the queued saves (the daemon's start-up clean-up keeps them).
    pub fn queued_objects(&self) -> Vec<String> {
        self.saves.object_ids()
    }

    pub(super) fn made_dir(&self, login: &Arc<str>, purpose: PurposeId, path: &str) -> bool {
        self.made_dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .at_or_below(login, purpose, path)
    }

    /// Folders made with mkdir directly inside `dir`.
    pub(super) fn made_children(
        &self,
        login: &Arc<str>,
        purpose: PurposeId,
        dir: &str,
    ) -> Vec<String> {
        self.made_dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .children(login, purpose, dir)
    }

    /// The entries of a folder changed now (see [`super::dirs`]): its modification time in
    /// this user's view.
    fn touch_dir(&self, login: &Arc<str>, purpose: PurposeId, path: &str) {
        self.made_dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .touch(login, purpose, path);
    }

    /// The folder `ino` changed now, if it is one where files live.
    fn touch_dir_ino(&self, ino: u64) {
        if let Ok((login, purpose, path)) = self.node(ino).and_then(|n| folder_of(&n)) {
            self.touch_dir(&login, purpose, &path);
        }
    }

    /// Create a new file (a draft) and open it for writing.
    pub fn create(&self, caller: Caller, parent: u64, name: &str) -> Result<(Attr, u64)> {
        let parent_node = self.node(parent)?;
        let (login, purpose, folder) = folder_of(&parent_node)?;
        self.check_owner(caller, &login)?;
        assets::check_name(name).map_err(|_| errno(libc::EINVAL, "unusable file name"))?;
        {
            let view = self.view();
            self.need(&view, &login, purpose, &folder, Access::Write)?;
            if self.child(&view, &parent_node, name)?.is_some() {
                return Err(errno(libc::EEXIST, "exists"));
            }
        }
        if let Some(created) = self.create_as_new_version(caller, &login, purpose, &folder, name)? {
            self.touch_dir(&login, purpose, &folder);
            return Ok(created);
        }
        // `IMG_0042.CR2.xmp` beside a photo the creator sees is that photo's sidecar, not a
        // draft: darktable and exiftool write one, and it shows where the photo shows
        let photo = self.view().sidecar_photo(&login, purpose, &folder, name);
        if photo.is_none() && self.view().draft_count(&login) >= self.limits.drafts {
            log::warn!(
                "refused: uid {} has {} drafts, the most one user may have; link, save over a photo or delete some",
                caller.uid,
                self.limits.drafts
            );
            return Err(errno(libc::EDQUOT, "too many drafts"));
        }
        let (empty, empty_key, reader) = self.placeholder(&login)?;
        // committed with the first save (or by the close, an fsync, the next change or the
        // watcher within milliseconds), not on its own
        let created = self.change_later(&login, |tx| {
            let new = assets::add_empty_draft(tx, &folder, name, purpose, (&empty, &empty_key))
                .map_err(|e| {
                    if matches!(e, Error::Invalid(_)) {
                        errno(libc::EEXIST, "a file with this name exists")
                    } else {
                        e
                    }
                })?;
            let id = new.row.id;
            if let Some(photo) = photo {
                // the catalog checks again that the photo is still an active photo (the
                // sidecar's rows are then the photo's: read back)
                assets::attach(tx, id, photo)?;
                return Ok((id, None));
            }
            let assets::NewDraft { row, version } = new;
            Ok((id, Some(crate::view::Known::New { row, version })))
        });
        let asset = match created {
            Ok((a, group)) => {
                if let Some(g) = group {
                    let mut created = self.created.lock().unwrap_or_else(|p| p.into_inner());
                    // bounded by what one transaction takes (milliseconds of creates)
                    created.retain(|_, at| *at == g);
                    created.insert(a, g);
                }
                a
            }
            Err(e) => return Err(e),
        };
        let node = Node::File(login.clone(), purpose, asset);
        let view = self.view();
        let ino = self.inodes().reference(&node);
        let attr = self.attr_of(&view, &node, ino)?;
        drop(view);
        // another process may have opened the new name already (its create lost the race and
        // the kernel opened the file instead): then the file is shared, as on any filesystem
        let file = self.files.acquire(
            &(login.clone(), purpose, asset),
            |_| true,
            || {
                Ok(OpenFile::new(
                    self.new_session(),
                    login.clone(),
                    empty,
                    reader,
                ))
            },
        )?;
        {
            let mut st = file.state.write().unwrap_or_else(|p| p.into_inner());
            // the first commit fills the empty version the create recorded (only while it is
            // the asset's one empty version: see `assets::fill_placeholder`)
            st.fresh = true;
        }
        let fh = self.add_writing_handle(caller, &login, purpose, asset, file);
        self.touch_dir(&login, purpose, &folder);
        Ok((attr, fh))
    }

    /// The empty object new files hold until their first save (see
    /// `assets::add_empty_draft`), its wrapped key, and a reader of it. The one the catalog names, or at the
    /// first create made and recorded in a transaction of its own; made anew when it does not
    /// open (its file removed or damaged), so that one bad file does not stop every create.
    fn placeholder(&self, login: &str) -> Result<(ObjectId, Vec<u8>, Decryptor<ObjectSource>)> {
        const LABEL: &str = "the empty object new files share";
        let mut slot = self.placeholder.lock().unwrap_or_else(|p| p.into_inner());
        // the reader opened before, over a second descriptor, while its file is still there:
        // no open by path, no header read, no key unwrapped per new file
        let kept = slot.as_ref().and_then(|p| {
            let r = p.reader.as_ref()?;
            let reader = r.with_source(r.source().duplicate_if_named()?);
            Some((p.id, p.wrapped_key.clone(), reader))
        });
        if let Some(kept) = kept {
            return Ok(kept);
        }
        if slot.is_none() {
            let cat = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
            *slot = assets::shared_empty(cat.conn())?.map(|(id, wrapped_key)| Placeholder {
                id,
                wrapped_key,
                reader: None,
            });
        }
        let mut bad = None;
        if let Some(Placeholder {
            id, wrapped_key, ..
        }) = slot.take()
        {
            match self.store.open_object(&id, &wrapped_key, 0, LABEL) {
                Ok(reader) => {
                    *slot = Some(Placeholder::keep(id, wrapped_key.clone(), &reader));
                    return Ok((id, wrapped_key, reader));
                }
                Err(e) => {
                    log::error!("{e}; making another");
                    bad = Some(id);
                }
            }
        }
        let obj = self.store.writer()?.commit(&self.store)?;
        let shared = self.change(login, |tx| assets::share_empty(tx, &obj, bad.as_ref()));
        if !matches!(&shared, Ok((id, _)) if *id == obj.id) {
            // not recorded, or another machine's is shared already
            let _ = self.store.remove_object(&obj.id);
        }
        let (id, wrapped_key) = shared?;
        let reader = self
            .store
            .open_object(&id, &wrapped_key, 0, LABEL)
            .inspect_err(|e| log::error!("{e}"))?;
        *slot = Some(Placeholder::keep(id, wrapped_key.clone(), &reader));
        Ok((id, wrapped_key, reader))
    }

    /// The step of a save with a backup that gives the photo its name back: when `name` in
    /// `folder` was left by a rename of `asset` less than `BACKUP_WINDOW` ago by the same user,
    /// the asset returns to the name and the name it went to becomes a draft of its previous
    /// content (its persons' consent reaches it). Returns the asset.
    fn back_from_backup(
        &self,
        login: &Arc<str>,
        purpose: PurposeId,
        folder: &str,
        name: &str,
    ) -> Result<Option<AssetId>> {
        const BACKUP_WINDOW: std::time::Duration = std::time::Duration::from_secs(5);
        let key = (login.clone(), purpose, join_path(folder, name));
        let Some((asset, at)) = self
            .vacated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key)
        else {
            return Ok(None);
        };
        let still_there = self.view().file_visible(login, purpose, asset);
        if at.elapsed() > BACKUP_WINDOW || !still_there {
            return Ok(None);
        }
        let (backup_collection, backup_name, version) = {
            let view = self.view();
            let info = view
                .asset(asset)
                .ok_or_else(|| Error::not_found("no such asset"))?;
            let v = info
                .version
                .clone()
                .ok_or_else(|| Error::not_found("no content"))?;
            (info.collection.to_string(), info.name.to_string(), v)
        };
        self.change(login, |tx| {
            assets::move_to(tx, asset, folder, name)?;
            let backup = assets::add_draft_of_object(
                tx,
                &backup_collection,
                &backup_name,
                purpose,
                &version.object,
                version.size,
            )?;
            // the backup holds the photo's previous content: its persons' consent reaches it
            assets::add_sources(tx, backup, &[asset], assets::SourceKind::Backup)
        })?;
        log::info!("asset {asset}: saved with a backup; the new file continues the asset");
        Ok(Some(asset))
    }

    /// Saving with a backup, the way ImageMagick's mogrify and some editors do: rename
    /// `photo.jpg` to a backup name in the same folder, create `photo.jpg` anew, write it, and
    /// perhaps delete the backup. Seen as separate steps, the photo would lose its identity and
    /// persons (the new file a draft, the old one renamed). So a create of the name an asset
    /// left by a rename in the same folder less than `BACKUP_WINDOW` ago, by the same user, is
    /// taken as the next version of that asset: the asset returns to its name and the backup
    /// name becomes the user's draft holding the previous content (which also stays a
    /// committed version of the asset). Logged at info level.
    fn create_as_new_version(
        &self,
        caller: Caller,
        login: &Arc<str>,
        purpose: PurposeId,
        folder: &str,
        name: &str,
    ) -> Result<Option<(Attr, u64)>> {
        let Some(asset) = self.back_from_backup(login, purpose, folder, name)? else {
            return Ok(None);
        };
        let node = Node::File(login.clone(), purpose, asset);
        let mut attr = {
            let view = self.view();
            let ino = self.inodes().reference(&node);
            self.attr_of(&view, &node, ino)?
        };
        attr.size = 0;
        let (object, reader) = self.open_current(asset)?;
        // dirty only once written: tools that create, close and reopen do not leave an
        // empty version behind
        let file = OpenFile::new(self.new_session(), login.clone(), object, reader);
        file.state.write().unwrap_or_else(|p| p.into_inner()).writer =
            Some(Pending::new(&self.store)?);
        file.set_pending_size(Some(0));
        // a new file under the name: descriptors still open on the old one keep it
        let file = self.files.replace(&(login.clone(), purpose, asset), file);
        let fh = self.add_writing_handle(caller, login, purpose, asset, file);
        Ok(Some((attr, fh)))
    }

    fn new_session(&self) -> u64 {
        self.next_session
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// A handle open for writing on `file` (registered for a handle already).
    fn add_writing_handle(
        &self,
        caller: Caller,
        login: &Arc<str>,
        purpose: PurposeId,
        asset: AssetId,
        file: Arc<OpenFile>,
    ) -> u64 {
        file.start_writing();
        self.add_handle(super::Handle {
            login: login.clone(),
            purpose,
            asset,
            writable: true,
            opener: self.tgids.of(caller.pid),
            file,
            writers: std::sync::Mutex::new(
                self.provenance.process(caller.pid).into_iter().collect(),
            ),
        })
    }

    /// Start the pending version from the committed one, the first time a handle changes it.
    fn ensure_writer<'a>(&self, st: &'a mut FileState) -> Result<&'a mut Pending> {
        if st.writer.is_none() {
            let mut p = Pending::new(&self.store)?;
            // copies the stored chunks only: holes stay holes
            p.writer.load(&st.reader)?;
            st.writer = Some(p);
        }
        st.writer
            .as_mut()
            .ok_or_else(|| Error::invalid("no writer"))
    }

    fn writable_handle(&self, fh: u64) -> Result<Arc<super::Handle>> {
        let h = self.handle(fh)?;
        if !h.writable {
            return Err(errno(libc::EBADF, "not open for writing"));
        }
        let asset = self.current_asset(h.asset);
        let view = self.view();
        if !self.may_read(&view, &h.file, &h.login, h.purpose, asset) {
            log::info!("denied: write to asset {asset} which is no longer visible");
            return Err(denied("no longer visible"));
        }
        // the grant the handle was opened under may have been taken away since
        self.check_write(&view, &h.login, h.purpose, asset)?;
        drop(view);
        Ok(h)
    }

    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        self.write_as(0, fh, offset, data)
    }

    /// [`Vfs::write`] by thread `pid` (as FUSE reports it): the photos its process read
    /// lately become sources of a draft it writes.
    pub fn write_as(&self, pid: u32, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        self.write_with(pid, fh, offset, data, false)
    }

    /// Write through handle `fh`; `append` (O_APPEND) writes at the end of the file as its
    /// descriptors left it, whatever offset the kernel computed.
    pub fn write_with(
        &self,
        pid: u32,
        fh: u64,
        offset: u64,
        data: &[u8],
        append: bool,
    ) -> Result<u32> {
        let h = self.writable_handle(fh)?;
        if let Some(process) = self.provenance.process(pid) {
            let mut writers = h.writers.lock().unwrap_or_else(|p| p.into_inner());
            if !writers.contains(&process) && writers.len() < 8 {
                writers.push(process);
            }
        }
        let mut st = h.file.state.write().unwrap_or_else(|p| p.into_inner());
        self.check_pending_room(&h.login, data.len() as u64)?;
        let p = self.ensure_writer(&mut st)?;
        let offset = if append { p.writer.len() } else { offset };
        let written = p.writer.write_at(offset, data);
        p.dirty = true;
        h.file.set_pending_size(Some(p.writer.len()));
        if let Some(m) = p.mtime {
            // a time set while writing stays what `stat` shows (and what the commit records)
            h.file.set_pending_mtime(m.into());
        }
        let held = p.writer.allocated_bytes();
        self.charge(&h.file, held);
        written?;
        Ok(data.len() as u32)
    }

    /// Refuse (EDQUOT) a write of `more` bytes that would take the user's unsaved bytes past
    /// [`super::Limits::pending_bytes`].
    fn check_pending_room(&self, login: &Arc<str>, more: u64) -> Result<()> {
        let used = self
            .pending_bytes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(login)
            .copied()
            .unwrap_or(0);
        if used.saturating_add(more) > self.limits.pending_bytes {
            log::warn!(
                "refused: a user's open files hold {used} unsaved bytes, the most one user may have ({}); close or fsync to save them",
                self.limits.pending_bytes
            );
            return Err(errno(libc::EDQUOT, "too many unsaved bytes"));
        }
        Ok(())
    }

    /// Count `held` bytes of `file`'s pending version against its user (0 once saved or
    /// dropped).
    pub(super) fn charge(&self, file: &OpenFile, held: u64) {
        let login = &file.login;
        let old = file.charged.swap(held, std::sync::atomic::Ordering::AcqRel);
        if old == held {
            return;
        }
        let mut all = self.pending_bytes.lock().unwrap_or_else(|p| p.into_inner());
        let used = all.entry(login.clone()).or_insert(0);
        *used = used.saturating_sub(old).saturating_add(held);
        if *used == 0 {
            all.remove(login);
        }
    }

    /// Truncate (or extend) what the file holds, for every descriptor of it.
    pub(super) fn truncate_state(
        &self,
        file: &OpenFile,
        st: &mut FileState,
        size: u64,
        mtime: Option<Time>,
    ) -> Result<()> {
        let p = self.ensure_writer(st)?;
        p.writer.truncate(size)?;
        p.dirty = true;
        if mtime.is_some() {
            p.mtime = mtime;
        }
        file.set_pending_size(Some(size));
        if let Some(m) = p.mtime {
            file.set_pending_mtime(m.into());
        }
        let held = p.writer.allocated_bytes();
        self.charge(file, held);
        Ok(())
    }

    /// The size of the file as the handle sees it (pending writes included).
    pub fn handle_size(&self, fh: u64) -> Option<u64> {
        let h = self.handle(fh).ok()?;
        let st = h.file.state.read().unwrap_or_else(|p| p.into_inner());
        Some(
            st.writer
                .as_ref()
                .map_or(st.reader.len(), |w| w.writer.len()),
        )
    }

    /// Commit what the handle's file holds as a version (fsync; the daemon stopping).
    pub fn commit(&self, fh: u64) -> Result<()> {
        let h = self.handle(fh)?;
        self.commit_file(&h, false)?;
        // fsync of a new file not yet written makes its create durable
        self.settle_created(h.asset)
    }

    /// Commit the pending state of the handle's file: a new version, or an update of the
    /// version this file (or its user's save a moment ago) made (see [`Recent`]).
    /// `last`: the file's last descriptor open for writing is gone (else an fsync or a close
    /// while others stay open).
    pub(super) fn commit_file(&self, h: &super::Handle, last: bool) -> Result<()> {
        let mut st = h.file.state.write().unwrap_or_else(|p| p.into_inner());
        let Some(p) = st.writer.take() else {
            return Ok(());
        };
        if !p.dirty {
            st.writer = Some(p);
            return Ok(());
        }
        let target = self.current_asset(h.asset);
        if p.writer.is_empty() && self.empty_save_of_photo(target) {
            // an O_TRUNC open not yet written (a shell's close after dup2, ImageMagick opening
            // twice): a photo never gets an empty version; the emptied state stays pending
            // until something is written, and goes when the last writer closes without
            if !last {
                st.writer = Some(p);
            } else {
                h.file.set_pending_size(None);
                drop(p);
                self.charge(&h.file, 0);
                log::info!("asset {target}: an empty save of a photo is not kept as a version");
            }
            return Ok(());
        }
        if h.file.is_detached() {
            // the name now refers to another file (or none): as on a local filesystem, what
            // is written to the replaced or unlinked one goes nowhere, but its descriptors read
            // it back until the last of them closes
            if last {
                h.file.set_pending_size(None);
                drop(p);
                self.charge(&h.file, 0);
                log::info!(
                    "asset {target}: what was written to a file that was replaced or removed meanwhile is not recorded"
                );
            } else {
                st.writer = Some(p);
            }
            return Ok(());
        }
        let (mtime, atime) = (p.mtime, p.atime);
        let committed = p.writer.commit_and_open(
            &self.store,
            &format!("asset {target}, the version just saved"),
        );
        h.file.set_pending_size(None);
        self.charge(&h.file, 0);
        let (obj, reader) = committed.inspect_err(|e| {
            if matches!(e, Error::Integrity { .. }) {
                log::error!("{e}");
            }
        })?;
        let fresh = std::mem::take(&mut st.fresh);
        let replace = {
            let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent
                .get(&target)
                .filter(|r| {
                    // the same program, through the same open file or within one save's
                    // time: an open file is shared by every handle on it, so a second
                    // program that opens the file while the first one's handle (or a
                    // viewer's) is still there goes through the same open file, and its
                    // save is a save of its own
                    *r.login == *h.login
                        && r.process.is_some()
                        && r.process == h.opener
                        && (r.session == h.file.session || r.at.elapsed() < ONE_SAVE)
                })
                .map(|r| r.version)
        };
        // what the writing processes read lately (only needed when the target is a draft)
        let read: Vec<AssetId> = {
            let writers = h.writers.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let mut read: Vec<AssetId> = writers
                .into_iter()
                .flat_map(|w| self.provenance.recent(w))
                .collect();
            read.sort();
            read.dedup();
            read
        };
        let save = QueuedSave {
            seq: 0,
            replace,
            asset: target,
            login: h.login.to_string(),
            purpose: h.purpose,
            fresh,
            mtime: mtime.map(crate::when::to_secs),
            mtime_nsec: mtime.map(crate::when::subsec_nanos),
            atime: atime.map(|t| (crate::when::to_secs(t), crate::when::subsec_nanos(t))),
            read,
            object: obj.id.hex(),
            wrapped_key: hex::encode(&obj.wrapped_key),
            size: obj.size,
            content_hash: hex::encode(obj.content_hash),
        };
        // a save waiting in the queue for this asset goes first: versions keep their order
        if self.saves.has(target) {
            self.retry_queued(SAVE_WAIT);
        }
        // the view learns of the new version before this file serves it: it must not look
        // like a file another save left behind (see `supersede`)
        h.file
            .committing
            .store(true, std::sync::atomic::Ordering::Release);
        let journaled = if save.fresh && save.replace.is_none() && !self.saves.has(target) {
            self.save_new_file(&save, &obj)
        } else {
            None
        };
        let recorded = if let Some(r) = journaled {
            r
        } else if self.saves.has(target) {
            Err(busy_error())
        } else {
            self.change_within(&h.login, SAVE_WAIT, |tx| self.record_save(tx, &save, &obj))
        };
        let outcome = match recorded {
            Ok((version, freed)) => {
                self.saved(&save, version, freed);
                self.times.committed(target);
                let draft = self
                    .view()
                    .asset(target)
                    .is_some_and(|i| i.row.status == Status::Draft);
                if draft {
                    self.draft_saved(target);
                }
                let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
                if recent.len() >= RECENT_MAX {
                    trim_recent(&mut recent, |r: &Recent| r.at);
                }
                recent.insert(
                    target,
                    Recent {
                        login: h.login.clone(),
                        version,
                        at: std::time::Instant::now(),
                        session: h.file.session,
                        process: h.opener,
                    },
                );
                drop(recent);
                Ok(())
            }
            Err(e) if is_busy(&e) => match self.saves.push(save) {
                Ok(()) => {
                    self.times.committed(target);
                    log::warn!(
                        "asset {target}: the catalog is busy (another command holds it); the save ({} bytes) is queued and will be recorded as soon as the catalog is free",
                        obj.size
                    );
                    Ok(())
                }
                Err(qe) => {
                    let _ = self.store.remove_object(&obj.id);
                    log::error!(
                        "asset {target}: a save met a busy catalog and could not be queued ({qe}); discarded"
                    );
                    Err(e)
                }
            },
            Err(e) => {
                let _ = self.store.remove_object(&obj.id);
                log::warn!("asset {target}: a save could not be committed: {e}");
                Err(e)
            }
        };
        // from now on the file reads the version it saved (or the queued save): the object
        // just written, its key at hand, so no catalog query. Not a save another program
        // committed a moment later either: that is what the next open reads, while these
        // descriptors read back what they wrote, as on a local filesystem.
        let outcome = outcome.map(|()| {
            st.object = obj.id;
            st.reader = reader;
            h.file.set_serving(obj.id);
        });
        h.file
            .committing
            .store(false, std::sync::atomic::Ordering::Release);
        outcome
    }

    /// After a save was recorded: remove the object it superseded (the content of a version it
    /// replaced in a store's own objects folder), say so.
    fn saved(
        &self,
        save: &QueuedSave,
        version: i64,
        freed: Option<crate::crypto::object::ObjectId>,
    ) {
        if let Some(old) = freed {
            if let Err(e) = self.store.remove_object(&old) {
                log::warn!("cannot remove the object a save replaced: {e}");
            }
        }
        log::info!(
            "asset {}: version {version} committed ({} bytes)",
            save.asset,
            save.size
        );
    }

    /// Record one save as a version, checking it against the catalog as it is now, with the
    /// access time set while it was written. Returns the version and the object it replaced
    /// that no version uses any more, if any.
    fn record_save(
        &self,
        tx: &crate::catalog::Tx,
        save: &QueuedSave,
        obj: &crate::store::NewObject,
    ) -> Result<(i64, Option<crate::crypto::object::ObjectId>)> {
        self.record_save_learning(tx, save, obj)
            .map(|r| (r.version, r.freed))
    }

    /// [`Vfs::record_save`], with what the save found and wrote.
    fn record_save_learning(
        &self,
        tx: &crate::catalog::Tx,
        save: &QueuedSave,
        obj: &crate::store::NewObject,
    ) -> Result<Recorded> {
        let mut recorded = self.record_save_version(tx, save, obj)?;
        if let Some(atime) = save.atime() {
            assets::keep_atime(tx, save.asset, atime)?;
            // the version the view would learn lacks it: read back
            recorded.learnt = None;
        }
        Ok(recorded)
    }

    fn record_save_version(
        &self,
        tx: &crate::catalog::Tx,
        save: &QueuedSave,
        obj: &crate::store::NewObject,
    ) -> Result<Recorded> {
        let (target, fresh, mtime) = (save.asset, save.fresh, save.mtime());
        let login = save.login.as_str();
        let read = &save.read;

        let info = assets::get(tx, target)?.ok_or_else(|| Error::not_found("asset is gone"))?;
        if !matches!(info.status, Status::Active | Status::Draft) {
            return Err(errno(libc::ENOENT, "the file was deleted meanwhile"));
        }
        // the caller must still be allowed to write here, by the catalog as it is now (not
        // the view, which follows a revocation only at its next refresh): a handle opened
        // under a write grant that was since downgraded or revoked saves nothing
        // (a user's own draft needs no grant: its user is not read then)
        let own_draft = info.status == Status::Draft && *info.creator == *login;
        let may_write = || {
            crate::catalog::users::resolve(tx, login)
                .ok()
                .and_then(|u| u.to_policy().access(save.purpose, &info.collection))
                .is_some_and(|a| matches!(a, Access::Write | Access::Delete))
        };
        if !own_draft && !may_write() {
            log::info!("denied: a save to asset {target} without a write grant; discarded");
            return Err(denied(
                "no write grant here any more: the save was discarded",
            ));
        }
        if info.status == Status::Active {
            let same = assets::with_content(tx, &obj.content_hash, target)?;
            if let Some(other) = foreign_content(tx, &info, &same)? {
                log::info!(
                    "denied: a save to asset {target} holds exactly the content of asset {other}, whose persons it does not show; discarded"
                );
                return Err(denied(
                    "this content is another photo's, with persons not linked to this one: the save was discarded",
                ));
            }
        }
        if info.status == Status::Draft {
            // a draft carries the persons of what its content came from: the same bytes
            // as another asset, or photos the writing process opened shortly before
            let same = assets::with_content(tx, &obj.content_hash, target)?;
            assets::add_sources(tx, target, &same, assets::SourceKind::Content)?;
            let read: Vec<AssetId> = read.iter().copied().filter(|a| *a != target).collect();
            assets::add_sources(tx, target, &read, assets::SourceKind::Read)?;
        }
        let recorded = |version, freed, learnt| Recorded {
            version,
            freed,
            collection: info.collection.clone(),
            name: info.name.clone(),
            learnt,
        };
        if fresh {
            if let assets::Filled::Yes(v) = assets::fill_placeholder(tx, target, obj, mtime)? {
                // where the save added sources the asset's row changed too: their audit
                // entries make the view read it back
                return Ok(recorded(1, None, Some(v)));
            }
        }
        assets::add_object(tx, obj)?;
        let shared = self.store.objects_shared();
        if let Some(v) = save.replace {
            if let Some(freed) =
                assets::replace_version(tx, target, v, login, &obj.id, obj.size, mtime, shared)?
            {
                // shared objects: the replaced one waits for its grace in the removal queue
                // (see `assets::SUPERSEDED_GRACE`), others may still be reading it by name
                return Ok(recorded(v, freed.filter(|_| !shared), None));
            }
        }
        let version = assets::add_version_of_object(tx, target, &obj.id, obj.size, mtime)?;
        Ok(recorded(version, None, None))
    }

    /// Whether an empty save of `target` would replace a photo's content with nothing.
    fn empty_save_of_photo(&self, target: AssetId) -> bool {
        self.view().asset(target).is_some_and(|i| {
            i.row.status == Status::Active && i.version.as_ref().is_some_and(|v| v.size > 0)
        })
    }

    /// Change size, times, mode or owner. The size and the modification and access times are
    /// kept; chmod succeeds (modes follow the grants; the owner is always the viewing user) and,
    /// as any of these changes, moves the file's ctime (see [`super::times`]).
    #[allow(clippy::too_many_arguments)]
    pub fn setattr(
        &self,
        caller: Caller,
        ino: u64,
        fh: Option<u64>,
        size: Option<u64>,
        times: super::times::SetTimes,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<Attr> {
        let super::times::SetTimes {
            mtime,
            atime,
            chmod,
        } = times;
        let current = self.getattr(caller, ino)?;
        if uid.is_some_and(|u| u != current.uid) || gid.is_some_and(|g| g != current.gid) {
            return Err(errno(libc::EPERM, "files belong to the viewing user"));
        }
        let node = self.node(ino)?;
        let Node::File(login, purpose, asset) = &node else {
            return Ok(current);
        };
        let asset = self.current_asset(*asset);
        if size.is_none() && mtime.is_none() && atime.is_none() {
            // chmod: nothing to keep, but its status changed, where the user may change the
            // file (for one who may only read it, it changes nothing)
            if chmod
                && self
                    .check_write(&self.view(), login, *purpose, asset)
                    .is_ok()
            {
                self.times.changed(asset);
                return self.getattr(caller, ino);
            }
            return Ok(current);
        }
        self.check_write(&self.view(), login, *purpose, asset)?;
        if let Some(size) = size {
            match fh.and_then(|f| self.handle(f).ok()).filter(|h| h.writable) {
                Some(h) => {
                    let mut st = h.file.state.write().unwrap_or_else(|p| p.into_inner());
                    self.truncate_state(&h.file, &mut st, size, mtime)?;
                }
                None => {
                    // truncate(2) by path acts on the file its open descriptors share; it is a
                    // save of its own unless one of them is open for writing (then their last
                    // close commits it)
                    let fh = self.open(caller, ino, true, false)?;
                    let result = (|| -> Result<()> {
                        let h = self.handle(fh)?;
                        {
                            let mut st = h.file.state.write().unwrap_or_else(|p| p.into_inner());
                            self.truncate_state(&h.file, &mut st, size, mtime)?;
                        }
                        let others = h
                            .file
                            .writers_open
                            .load(std::sync::atomic::Ordering::Acquire);
                        if others <= 1 {
                            self.commit_file(&h, false)?;
                        }
                        Ok(())
                    })();
                    self.release(fh);
                    result?;
                }
            }
        }
        // the times not already given to the truncation
        let mtime = mtime.filter(|_| size.is_none());
        if mtime.is_some() || atime.is_some() {
            // futimens(2) and utimensat(2) arrive without the handle; tar, cp -p and rsync set
            // the time of a file they are still writing. The time then belongs to the version
            // being written, or the commit at close would replace it with the time of the close.
            let files = match fh.and_then(|f| self.handle(f).ok()) {
                Some(h) => vec![h.file.clone()],
                None => self.files.of_asset(asset),
            };
            let mut pending = false;
            for f in files {
                let mut st = f.state.write().unwrap_or_else(|p| p.into_inner());
                if let Some(p) = st.writer.as_mut().filter(|p| p.dirty) {
                    if let Some(m) = mtime {
                        p.mtime = Some(m);
                        f.set_pending_mtime(m.into());
                    }
                    if let Some(a) = atime {
                        p.atime = Some(a);
                        self.times.set_pending_atime(asset, a.into());
                    }
                    pending = true;
                }
            }
            if !pending {
                self.change(login, |tx| assets::set_times(tx, asset, mtime, atime))?;
            }
        }
        self.times.changed(asset);
        let mut attr = self.getattr(caller, ino)?;
        if let Some(size) = fh.and_then(|f| self.handle_size(f)) {
            attr.size = size;
        }
        Ok(attr)
    }

    /// Move a file to the trash.
    pub fn unlink(&self, caller: Caller, parent: u64, name: &str) -> Result<()> {
        let parent_node = self.node(parent)?;
        let (login, purpose, folder) = folder_of(&parent_node)?;
        self.check_owner(caller, &login)?;
        let (asset, draft) = {
            let view = self.view();
            let asset = view
                .file_in(&login, purpose, &folder, name)
                .ok_or_else(|| errno(libc::ENOENT, "no such file"))?;
            let draft = view
                .asset(asset)
                .is_some_and(|a| a.row.status == Status::Draft);
            if draft {
                self.check_write(&view, &login, purpose, asset)?;
            } else {
                self.need(&view, &login, purpose, &folder, Access::Delete)?;
            }
            (asset, draft)
        };
        self.change(&login, |tx| assets::set_status(tx, asset, Status::Trash))?;
        // descriptors still open keep the file, nameless, until their last close (what they
        // write then is not recorded)
        let was = if draft { Status::Draft } else { Status::Active };
        self.keep_replaced(&(login.clone(), purpose, asset), Some(was), None);
        self.touch_dir(&login, purpose, &folder);
        log::info!("asset {asset} moved to the trash");
        Ok(())
    }

    pub fn mkdir(&self, caller: Caller, parent: u64, name: &str) -> Result<Attr> {
        let parent_node = self.node(parent)?;
        let (login, purpose, folder) = folder_of(&parent_node)?;
        self.check_owner(caller, &login)?;
        assets::check_name(name).map_err(|_| errno(libc::EINVAL, "unusable folder name"))?;
        let path = join_path(&folder, name);
        let view = self.view();
        self.need(&view, &login, purpose, &path, Access::Write)?;
        if self.child(&view, &parent_node, name)?.is_some() {
            return Err(errno(libc::EEXIST, "exists"));
        }
        {
            let mut made = self.made_dirs.lock().unwrap_or_else(|p| p.into_inner());
            if made.count(&login) >= self.limits.folders {
                log::warn!(
                    "refused: uid {} has {} empty folders, the most one user may make",
                    caller.uid,
                    self.limits.folders
                );
                return Err(errno(libc::EDQUOT, "too many folders"));
            }
            made.insert(&login, purpose, path.clone());
            made.touch(&login, purpose, &folder);
            made.touch(&login, purpose, &path);
        }
        let node = Node::Dir(login, purpose, Arc::from(path.as_str()));
        let ino = self.inodes().reference(&node);
        self.attr_of(&view, &node, ino)
    }

    pub fn rmdir(&self, caller: Caller, parent: u64, name: &str) -> Result<()> {
        let parent_node = self.node(parent)?;
        let (login, purpose, folder) = folder_of(&parent_node)?;
        self.check_owner(caller, &login)?;
        let path = join_path(&folder, name);
        let view = self.view();
        self.need(&view, &login, purpose, &path, Access::Write)?;
        let (dirs, files) = view.list_dir(&login, purpose, &path);
        if !dirs.is_empty()
            || !files.is_empty()
            || !self.made_children(&login, purpose, &path).is_empty()
        {
            return Err(errno(libc::ENOTEMPTY, "folder not empty"));
        }
        let mut made = self.made_dirs.lock().unwrap_or_else(|p| p.into_inner());
        if made.remove(&login, purpose, &path) {
            made.touch(&login, purpose, &folder);
            Ok(())
        } else {
            Err(errno(libc::ENOENT, "no such folder"))
        }
    }

    /// Rename within one user's purpose folder. `noreplace`: fail if the target exists.
    /// Both folders' modification times move.
    pub fn rename(
        &self,
        caller: Caller,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        noreplace: bool,
    ) -> Result<()> {
        let moved = self.file_named(parent, name);
        self.rename_entry(caller, parent, name, new_parent, new_name, noreplace)?;
        if let Some(a) = moved {
            // the file's ctime moves too (a draft saved over a file: that file's)
            self.times.changed(a);
            self.times.changed(self.current_asset(a));
        }
        self.touch_dir_ino(parent);
        if new_parent != parent {
            self.touch_dir_ino(new_parent);
        }
        Ok(())
    }

    fn rename_entry(
        &self,
        caller: Caller,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        noreplace: bool,
    ) -> Result<()> {
        let (login, purpose, from) = folder_of(&self.node(parent)?)?;
        let (login2, purpose2, to) = folder_of(&self.node(new_parent)?)?;
        self.check_owner(caller, &login)?;
        if login != login2 || purpose != purpose2 {
            return Err(errno(libc::EXDEV, "rename across purposes"));
        }
        assets::check_name(new_name).map_err(|_| errno(libc::EINVAL, "unusable file name"))?;
        let view = self.view();
        let src = view.file_in(&login, purpose, &from, name);
        let Some(src) = src else {
            let plan = self.rename_folder(
                &view,
                &login,
                purpose,
                (&from, name),
                (&to, new_name),
                noreplace,
            )?;
            drop(view);
            return match plan {
                Some(plan) => self.move_photo_folder(&login, purpose, plan),
                None => Ok(()),
            };
        };
        let dst = view.file_in(&login, purpose, &to, new_name);
        if dst.is_some() && noreplace {
            return Err(errno(libc::EEXIST, "target exists"));
        }
        if dst == Some(src) {
            return Ok(());
        }
        let src_info = view
            .asset(src)
            .ok_or_else(|| Error::not_found("no such asset"))?
            .clone();
        let src_is_draft = src_info.row.status == Status::Draft;
        if src_info.row.companion_of.is_some() && from != to {
            // a sidecar stays in its photo's folder (the photo takes it along when it moves):
            // elsewhere, a consent scoped to a collection would judge it apart from its photo.
            // EXDEV makes `mv` copy it instead, as a new file of the writer's.
            log::info!("refused: moving sidecar {src} away from its photo's folder");
            return Err(errno(libc::EXDEV, "a sidecar moves with its photo"));
        }
        self.need(&view, &login, purpose, &to, Access::Write)?;
        // renaming within a folder is a write (saving with a backup or a temp file does it);
        // moving a photo out of its folder takes it from there, which needs delete
        if !src_is_draft && from != to {
            self.need(&view, &login, purpose, &from, Access::Delete)?;
            Self::check_move_everywhere(&view, &login, src, &from, &to)?;
        }
        let dst_taken_elsewhere = dst.is_none()
            && self
                .child(&view, &self.node(new_parent)?, new_name)?
                .is_some();
        drop(view);
        if dst_taken_elsewhere {
            return Err(errno(libc::EISDIR, "a folder has that name"));
        }
        match dst {
            Some(target) if src_is_draft => {
                // A save: the draft's content becomes the target's next version. Pending
                // writes on the draft are committed first so nothing is lost (and its sources
                // are known).
                self.commit_all_of(src);
                self.check_save_over(src, target)?;
                let v = self
                    .view()
                    .asset(src)
                    .and_then(|i| i.version.clone())
                    .ok_or_else(|| Error::not_found("no content"))?;
                // redirect first: the moment the view drops the draft, the kernel may already
                // use the draft's inode under the target's name
                self.merged
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(src, target);
                let saved = self.change(&login, |tx| {
                    let current = assets::version(tx, src, None)?;
                    assets::add_version_of_object(
                        tx,
                        target,
                        &current.object,
                        current.size,
                        current.mtime,
                    )?;
                    if let Some(atime) = current.atime {
                        // `rsync --atimes` sets the times of its temp file, then renames it
                        assets::keep_atime(tx, target, atime)?;
                    }
                    let onto = assets::get(tx, target)?
                        .ok_or_else(|| Error::not_found("the file is gone"))?;
                    if onto.status == Status::Draft {
                        // a draft saved over a draft: the target now holds the content, and
                        // with it the origins
                        let mut from = assets::sources_of(tx, src)?;
                        from.push(src);
                        assets::add_sources(tx, target, &from, assets::SourceKind::Merge)?;
                    }
                    assets::set_status(tx, src, Status::Purged)
                });
                if let Err(e) = saved {
                    self.merged
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&src);
                    return Err(e);
                }
                // the target's name refers to the saved draft now, and to the inode the
                // kernel moved there: descriptors open on the old file keep its inode and
                // read it whole, and their writes are not recorded
                let draft_ino =
                    self.inodes()
                        .known(&super::Node::File(login.clone(), purpose, src));
                self.keep_replaced(&(login.clone(), purpose, target), None, draft_ino);
                log::info!(
                    "asset {target}: new version from a saved draft ({} bytes)",
                    v.size
                );
                Ok(())
            }
            Some(target) => {
                log::info!("denied: renaming asset {src} over asset {target} would mix two photos' consents");
                Err(denied("cannot replace one reviewed photo with another"))
            }
            None => {
                if src_is_draft && !noreplace {
                    // a temp file renamed into the name a photo left a moment ago (exiftool
                    // renames a.jpg to a.jpg_original, then its temp file to a.jpg): the photo
                    // takes its name back and the temp file is saved over it
                    if self
                        .back_from_backup(&login, purpose, &to, new_name)?
                        .is_some()
                    {
                        return self.rename(caller, parent, name, new_parent, new_name, false);
                    }
                }
                // a temp file renamed to `IMG_0042.CR2.xmp` beside the photo: the photo's
                // sidecar, when what it holds may show where the photo shows (the same test as
                // a save over the photo); else it stays a draft under its new name
                let photo = if src_is_draft {
                    // (the view's lock is let go before the commit below takes it)
                    let photo = self.view().sidecar_photo(&login, purpose, &to, new_name);
                    photo.filter(|photo| {
                        self.commit_all_of(src);
                        self.check_save_over(src, *photo).is_ok()
                    })
                } else {
                    None
                };
                self.change(&login, |tx| {
                    assets::move_to(tx, src, &to, new_name)?;
                    if let Some(photo) = photo {
                        assets::attach(tx, src, photo)?;
                    }
                    Ok(())
                })
                .map_err(|e| {
                    if matches!(e, Error::Invalid(_)) {
                        errno(libc::EEXIST, "the name is taken")
                    } else {
                        e
                    }
                })?;
                if !src_is_draft && from == to {
                    // maybe the first step of a save that keeps a backup (see `create`)
                    self.vacated
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(
                            (login.clone(), purpose, join_path(&from, name)),
                            (src, std::time::Instant::now()),
                        );
                }
                Ok(())
            }
        }
    }

    /// Rename a folder, as on a local filesystem: the target may be an empty folder (it is
    /// replaced), not a folder with something in it (ENOTEMPTY) nor a file (ENOTDIR), and a
    /// folder cannot move into itself (EINVAL). Folders made with mkdir move at once (with the
    /// made folders below them). A folder with photos is checked here and moved by
    /// [`Vfs::move_photo_folder`] with the plan returned, once the caller let go of the view.
    /// The inodes the kernel holds for the folder and those below it are re-keyed to their
    /// new paths: the kernel keeps them under the new name, and `stat` of it right after the
    /// rename must find them.
    fn rename_folder(
        &self,
        view: &View,
        login: &Arc<str>,
        purpose: PurposeId,
        (from, name): (&str, &str),
        (to, new_name): (&str, &str),
        noreplace: bool,
    ) -> Result<Option<FolderMove>> {
        let old = join_path(from, name);
        let new = join_path(to, new_name);
        let mut made = self.made_dirs.lock().unwrap_or_else(|p| p.into_inner());
        let photos = view.dir_visible(login, purpose, &old);
        if !photos && !made.contains(login, purpose, &old) {
            return Err(errno(libc::ENOENT, "no such file"));
        }
        if new == old {
            return Ok(None);
        }
        if new.starts_with(&format!("{old}/")) {
            return Err(errno(libc::EINVAL, "a folder cannot move into itself"));
        }
        self.need(view, login, purpose, &old, Access::Write)?;
        self.need(view, login, purpose, &new, Access::Write)?;
        if view.file_in(login, purpose, to, new_name).is_some() {
            return Err(errno(libc::ENOTDIR, "a file has that name"));
        }
        let target_exists =
            view.dir_visible(login, purpose, &new) || made.at_or_below(login, purpose, &new);
        if target_exists {
            if noreplace {
                return Err(errno(libc::EEXIST, "target exists"));
            }
            let (dirs, files) = view.list_dir(login, purpose, &new);
            if view.dir_visible(login, purpose, &new)
                || !dirs.is_empty()
                || !files.is_empty()
                || !made.children(login, purpose, &new).is_empty()
            {
                return Err(errno(libc::ENOTEMPTY, "the target folder is not empty"));
            }
            made.remove(login, purpose, &new);
        }
        if photos {
            drop(made);
            return Self::plan_folder_move(view, login, purpose, old, new).map(Some);
        }
        made.move_tree(login, purpose, &old, &new);
        drop(made);
        self.inodes().rename_dirs(login, purpose, &old, &new);
        Ok(None)
    }

    /// What renaming a folder with photos moves: every photo and draft the user sees at or
    /// below it, each to the same place below the new path, each checked as the move of that
    /// one photo would be (a delete grant where it is, a write grant where it goes, and
    /// [`Vfs::check_move_everywhere`] for the other purposes). One refusal refuses the whole
    /// rename. Photos the user does not see (no consent for this purpose now) stay where they
    /// are: a user acts only on what their view shows, as with `mv` photo by photo.
    fn plan_folder_move(
        view: &View,
        login: &str,
        purpose: PurposeId,
        old: String,
        new: String,
    ) -> Result<FolderMove> {
        let mut moves = Vec::new();
        let mut folders = vec![old.clone()];
        while let Some(dir) = folders.pop() {
            let (dirs, files) = view.list_dir(login, purpose, &dir);
            folders.extend(dirs.iter().map(|d| join_path(&dir, d)));
            let to = format!("{new}{}", &dir[old.len()..]);
            for (name, asset) in files {
                let draft = view
                    .asset(asset)
                    .is_some_and(|i| i.row.status == Status::Draft);
                moves.push((asset, dir.clone(), to.clone(), name.to_string(), draft));
            }
        }
        for (asset, from, to, _, draft) in &moves {
            if !draft {
                let need = |folder: &str, level: Access| {
                    if view
                        .access(login, purpose, folder)
                        .is_some_and(|a| a >= level)
                    {
                        Ok(())
                    } else {
                        log::info!("denied: renaming a folder would move asset {asset} without the grants a move needs");
                        Err(denied("moving these photos needs a delete grant where they are and a write grant where they go"))
                    }
                };
                need(from, Access::Delete)?;
                need(to, Access::Write)?;
                Self::check_move_everywhere(view, login, *asset, from, to)?;
            }
        }
        Ok(FolderMove { old, new, moves })
    }

    /// Carry out a checked folder move: every asset in one catalog transaction (all move or
    /// none), then the made folders and the kernel's inodes of the folder tree.
    fn move_photo_folder(
        &self,
        login: &Arc<str>,
        purpose: PurposeId,
        plan: FolderMove,
    ) -> Result<()> {
        let FolderMove { old, new, moves } = plan;
        // photos first: each takes its sidecars along, which then are where they go already
        // (a sidecar does not move on its own)
        let sidecar = |a: AssetId| {
            self.view()
                .asset(a)
                .is_some_and(|i| i.row.companion_of.is_some())
        };
        let (sidecars, photos): (Vec<_>, Vec<_>) = moves.iter().partition(|m| sidecar(m.0));
        self.change(login, |tx| {
            for (asset, _, to, name, _) in photos.iter().chain(&sidecars) {
                assets::move_to(tx, *asset, to, name)?;
            }
            Ok(())
        })
        .map_err(|e| {
            if matches!(e, Error::Invalid(_)) {
                // a photo the user does not see holds one of the names at the destination
                errno(
                    libc::EEXIST,
                    "a name in the folder is taken at the destination",
                )
            } else {
                e
            }
        })?;
        log::info!("folder renamed: {} photo(s) moved in one step", moves.len());
        self.made_dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .move_tree(login, purpose, &old, &new);
        self.inodes().rename_dirs(login, purpose, &old, &new);
        Ok(())
    }

    /// Moving a photo to another folder moves it in every purpose at once: the catalog knows
    /// one collection per asset, and each purpose's users see it where their grants cover that
    /// collection. A user with a delete grant in one purpose could otherwise carry a photo
    /// out of `hr/private` into `events` and show it to everyone who may read `events` for
    /// printing. So the move of a photo that is not a draft needs, in every purpose in which
    /// anyone sees it now or would see it at the destination, the grants the move needs in the
    /// mover's own purpose: delete where it is, write where it goes. Drafts are shown to their
    /// creator alone and move freely; a rename within one folder changes no one's collection.
    fn check_move_everywhere(
        view: &View,
        login: &str,
        asset: AssetId,
        from: &str,
        to: &str,
    ) -> Result<()> {
        for purpose in view.purposes_seeing_move(asset, to, chrono::Utc::now()) {
            let covers = |path: &str, level: Access| {
                view.access(login, purpose, path)
                    .is_some_and(|a| a >= level)
            };
            if !(covers(from, Access::Delete) && covers(to, Access::Write)) {
                log::info!(
                    "denied: moving asset {asset} would change what purpose {purpose} sees, where the mover lacks a delete grant on its folder or a write grant on the destination"
                );
                return Err(denied(
                    "moving this photo would change what another purpose sees",
                ));
            }
        }
        Ok(())
    }

    /// A draft renamed over a photo becomes that photo's next version, published under the
    /// photo's persons' consent. That is only right when the draft's content is known to show
    /// no one else: it was made from that photo, or from photos whose persons are all linked to
    /// it (and a special-category origin only into a special-category photo). A draft whose
    /// origin is unknown (written from scratch, or from outside the mount) is refused too: a
    /// copy made in a way we did not see could otherwise launder one person's photo into
    /// another's consent. (Writing into the photo in place stays possible with a write grant.)
    /// Drafts as targets are the user's own and need no check.
    fn check_save_over(&self, src: AssetId, target: AssetId) -> Result<()> {
        let view = self.view();
        let (Some(draft), Some(onto)) = (view.asset(src), view.asset(target)) else {
            return Err(Error::not_found("no such asset"));
        };
        if onto.row.status != Status::Active {
            return Ok(());
        }
        let refuse = |why: &str| -> Result<()> {
            log::info!("denied: saving draft {src} over asset {target}: {why}");
            Err(denied(format!(
                "cannot save this file over that photo: {why}"
            )))
        };
        if draft.row.sources.is_empty() {
            return refuse("its content is not known to come from that photo (link persons to it, or save over the photo in place)");
        }
        if draft.row.sources.contains(&target) && draft.row.sources.len() == 1 {
            return Ok(());
        }
        for s in &draft.row.sources {
            if *s == target {
                continue;
            }
            let Some(source) = view.asset(*s) else {
                return refuse("it was made from an asset that is gone");
            };
            let known = !source.row.persons.is_empty() || source.row.no_persons;
            if !known {
                if !source.row.sources.is_empty() {
                    // an intermediate draft (or one already saved over a photo): its own
                    // sources are listed too
                    continue;
                }
                return refuse("it was made from a file whose persons are not known");
            }
            if source
                .row
                .persons
                .iter()
                .any(|p| !onto.row.persons.contains(p))
            {
                return refuse("it was made from a photo of persons not linked to that photo");
            }
            if source.row.special_category && !onto.row.special_category {
                return refuse("it was made from a special-category photo");
            }
        }
        Ok(())
    }

    /// Commit pending writes of every open file of `asset`.
    fn commit_all_of(&self, asset: AssetId) {
        for h in self.handles_of(asset) {
            if let Err(e) = self.commit_file(&h, false) {
                log::warn!(
                    "asset {asset}: pending writes could not be committed before a rename: {e}"
                );
            }
        }
    }

    /// Commit what every open file holds and has not saved yet, as an fsync would (the daemon
    /// is stopping while files are still open). Returns (saved, failed).
    pub fn commit_all_pending(&self) -> (usize, usize) {
        let handles: Vec<Arc<super::Handle>> = self
            .handles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let (mut saved, mut failed) = (0, 0);
        let mut done: Vec<*const OpenFile> = Vec::new();
        for h in handles {
            let ptr = Arc::as_ptr(&h.file);
            if done.contains(&ptr) {
                continue;
            }
            done.push(ptr);
            let pending = h
                .file
                .state
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .writer
                .as_ref()
                .is_some_and(|w| w.dirty);
            if !pending {
                continue;
            }
            match self.commit_file(&h, true) {
                Ok(()) => saved += 1,
                Err(e) => {
                    failed += 1;
                    log::error!("a save in progress could not be committed at shutdown: {e}");
                }
            }
        }
        (saved, failed)
    }

    pub(super) fn release_handle(&self, fh: u64) {
        self.handles
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh);
    }
}

/// Saving into a photo in place bytes that are exactly another asset's content (`cat a.jpg >
/// b.jpg`, or `cp a.jpg b.jpg` over an existing b.jpg) would publish that asset's persons under
/// this photo's consent, as a rename would (see `check_save_over`). Returns an asset among
/// `same` (the assets with this content) whose persons `target` does not show, if any: one
/// linked to a person `target` is not linked to, unreviewed, special-category where `target`
/// is not, or a draft made from such an asset. Content seen nowhere else (or only in drafts of
/// unknown origin) is the user's own work and always fits.
fn foreign_content(
    tx: &crate::catalog::Tx,
    target: &assets::AssetRow,
    same: &[AssetId],
) -> Result<Option<AssetId>> {
    fn fits(
        tx: &crate::catalog::Tx,
        target: &assets::AssetRow,
        id: AssetId,
        depth: u32,
    ) -> Result<bool> {
        if id == target.id {
            return Ok(true);
        }
        let Some(row) = assets::get(tx, id)? else {
            return Ok(true);
        };
        if row.special_category && !target.special_category {
            return Ok(false);
        }
        // a draft that was deleted (a tool's temp file, gone to the trash) or saved over a
        // file is still a draft of what it was made from, not a photo of unknown persons
        let was_draft = row.status == Status::Draft || row.draft_purpose.is_some();
        if was_draft && row.persons.is_empty() {
            // a draft shows what it was made from (bounded: drafts of drafts of drafts); one
            // made from nothing we know is the user's own work, which may be written into a
            // photo in place anyway
            if row.sources.is_empty() {
                return Ok(true);
            }
            if depth > 4 {
                return Ok(false);
            }
            for s in &row.sources {
                if !fits(tx, target, *s, depth + 1)? {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        if row.persons.is_empty() {
            return Ok(row.no_persons);
        }
        Ok(row.persons.iter().all(|p| target.persons.contains(p)))
    }
    for &s in same {
        if !fits(tx, target, s, 0)? {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A burst of saves within [`ONE_SAVE`] fills the map: trimming keeps the newest half, so
    /// the next `RECENT_MAX / 2` saves do not trim again; saves older than `ONE_SAVE` go first.
    #[test]
    fn trimming_the_recent_saves_keeps_the_newest_half() {
        let now = Instant::now();
        let mut recent: HashMap<AssetId, Instant> = (0..RECENT_MAX as AssetId)
            .map(|i| (i, now - Duration::from_micros(RECENT_MAX as u64 - i as u64)))
            .collect();
        trim_recent(&mut recent, |at| *at);
        assert_eq!(recent.len(), RECENT_MAX / 2);
        let oldest = *recent.keys().min().unwrap();
        assert_eq!(
            oldest,
            (RECENT_MAX / 2) as AssetId,
            "the newest half is kept"
        );
        // only what is older than one save goes when there is room
        let mut few: HashMap<AssetId, Instant> = HashMap::new();
        few.insert(1, now - ONE_SAVE - Duration::from_secs(1));
        few.insert(2, now);
        trim_recent(&mut few, |at| *at);
        assert_eq!(few.keys().copied().collect::<Vec<_>>(), vec![2]);
    }
}
