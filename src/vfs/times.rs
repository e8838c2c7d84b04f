//! A file's times as on a local filesystem (`stat`'s atime, mtime, ctime).
//!
//! * **mtime** is the version's: the time a tool set (kept to the nanosecond), else when the
//!   version was saved; while a file is written, when it was last written (see
//!   `open_file::OpenFile::pending_mtime`).
//! * **atime** is the time a tool set (`touch -a`, `rsync --atimes`, `tar --atime-preserve`),
//!   kept with the version; else the mtime. Reads do not move it (as with `noatime`): a read is
//!   not a change worth a catalog write, and the audit log already records who opened what.
//! * **ctime** (status change) moves when anything about the file changes: a save (a commit),
//!   a rename, chmod, a change of its times or size, a write. It is never *set* to a time a tool
//!   gives (`cp -p` puts the mtime in the past; the ctime stays when that happened), so backup
//!   tools that trust ctime see the change. It is the later of the version's save and the last
//!   such change made through this mount, which is kept in memory ([`StatusTimes`]): after a
//!   remount a file's ctime is its version's save time again.
//!
//! Folders (in memory, see `dirs`) show their mtime as atime and ctime.

use super::Vfs;
use crate::policy::AssetId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

/// What a `setattr` asks of a file's times and mode (besides its size and owner).
#[derive(Debug, Clone, Copy, Default)]
pub struct SetTimes {
    /// utimensat's modification time.
    pub mtime: Option<crate::policy::Time>,
    /// utimensat's access time.
    pub atime: Option<crate::policy::Time>,
    /// chmod: it succeeds (modes follow the grants) and moves the ctime.
    pub chmod: bool,
}

/// Entries kept before the oldest are dropped: a forgotten entry only makes a ctime fall back
/// to its version's save time.
const MAX_ENTRIES: usize = 65_536;

#[derive(Default, Clone, Copy)]
struct Entry {
    /// The last status change made through this mount.
    changed: Option<SystemTime>,
    /// An access time set on a file while it is written, until the commit records it.
    pending_atime: Option<SystemTime>,
}

/// Times of files kept in memory (see the module doc); a leaf lock.
#[derive(Default)]
pub(super) struct StatusTimes {
    map: Mutex<HashMap<AssetId, Entry>>,
}

impl StatusTimes {
    fn update(&self, asset: AssetId, f: impl FnOnce(&mut Entry)) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES && !map.contains_key(&asset) {
            let mut oldest: Vec<(AssetId, Option<SystemTime>)> =
                map.iter().map(|(a, e)| (*a, e.changed)).collect();
            oldest.sort_by_key(|(_, t)| *t);
            for (a, _) in oldest.into_iter().take(MAX_ENTRIES / 4) {
                map.remove(&a);
            }
        }
        f(map.entry(asset).or_default());
    }

    /// The status of `asset` changed now.
    pub fn changed(&self, asset: AssetId) {
        let now = SystemTime::now();
        self.update(asset, |e| e.changed = Some(now));
    }

    /// A tool set the access time of a file being written.
    pub fn set_pending_atime(&self, asset: AssetId, at: SystemTime) {
        self.update(asset, |e| e.pending_atime = Some(at));
    }

    /// A save of `asset` was recorded: its status changed, and the access time set while it was
    /// written is now the version's.
    pub fn committed(&self, asset: AssetId) {
        let now = SystemTime::now();
        self.update(asset, |e| {
            e.changed = Some(now);
            e.pending_atime = None;
        });
    }

    fn get(&self, asset: AssetId) -> Entry {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&asset)
            .copied()
            .unwrap_or_default()
    }

    /// When the status of `asset` last changed through this mount, if it did.
    pub fn changed_at(&self, asset: AssetId) -> Option<SystemTime> {
        self.get(asset).changed
    }

    /// The access time set on `asset` while it is written, if any.
    pub fn pending_atime(&self, asset: AssetId) -> Option<SystemTime> {
        self.get(asset).pending_atime
    }
}

impl Vfs {
    /// The file called `name` in folder `parent` of its view, if there is one.
    pub(super) fn file_named(&self, parent: u64, name: &str) -> Option<AssetId> {
        let (login, purpose, folder) = super::write::folder_of(&self.node(parent).ok()?).ok()?;
        self.view().file_in(&login, purpose, &folder, name)
    }

    /// The ctime of a file: the later of its version's save (`saved`), its last status change
    /// through this mount, and its last write (`written`, pending; a time a tool set in the
    /// future is not a write).
    pub(super) fn file_ctime(
        &self,
        assets: &[AssetId],
        saved: SystemTime,
        written: Option<SystemTime>,
    ) -> SystemTime {
        let now = SystemTime::now();
        assets
            .iter()
            .filter_map(|a| self.times.changed_at(*a))
            .chain(written.filter(|w| *w <= now))
            .fold(saved, SystemTime::max)
    }

    /// Disk space a file of `login`'s being written takes, in 512-byte blocks: what its pending
    /// object holds (sealed chunks and the last chunk, not its holes: see `charged`), else, for
    /// one not found by its asset (a draft saved over it), its length.
    pub(super) fn pending_blocks(&self, login: &str, asset: AssetId, size: u64) -> u64 {
        self.files
            .of_asset(asset)
            .iter()
            .filter(|f| &*f.login == login)
            .map(|f| f.charged.load(std::sync::atomic::Ordering::Acquire))
            .max()
            .unwrap_or(size)
            .div_ceil(512)
    }

    /// Disk space an object takes, in 512-byte blocks (`st_blocks`): a sparse object holds
    /// only its chunks with data, so `du` shows what is stored, not its length. `None` when
    /// its file cannot be looked at (gone with a thinned version, say).
    pub(super) fn object_blocks(&self, id: &crate::crypto::object::ObjectId) -> Option<u64> {
        self.store.object_blocks(id)
    }
}
