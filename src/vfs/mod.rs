//! Filesystem semantics over the view index and the store, knowing nothing of FUSE.
//!
//! The tree is `/<login>/<purpose>/<collection path>/<file>`. Every operation takes the caller
//! (uid, gid) and checks it again, whatever the kernel's `default_permissions` already did: a
//! caller may only enter the folder of the login that maps to their uid (root may enter all),
//! and the folders of other logins do not exist for them (not listed, not found by name).
//! Every open and every read re-checks that the asset is visible to that login in that purpose
//! *now*, so a withdrawal takes effect for handles opened before it.
//!
//! `fuse.rs` is a thin adapter from fuser's callbacks to these methods; tests drive them directly.
//! Cache invalidation is computed here ([`Vfs::invalidations`]) but sent by the adapter from a
//! dedicated thread.

mod access;
pub mod cache;
mod dirs;
pub mod fill;
pub mod inodes;
pub mod live;
mod open_file;
pub mod provenance;
pub mod queue;
mod replaced;
pub mod times;
mod write;

use crate::crypto::object::{Decryptor, ObjectId, CHUNK_PLAIN};
use crate::error::{Error, Result};
use crate::policy::{Access, AssetId, PurposeId};
use crate::store::Store;
use crate::view::{Change, View};
use cache::{Chunk, ChunkCache};
use inodes::{Ino, Inodes, Node, ROOT};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::SystemTime;

pub use inodes::Ino as Inode;
pub use write::{create_window, CREATE_WINDOW};

/// Who is asking: the uid, gid and thread id (`pid`, 0 when unknown) the kernel reports for
/// the request. The thread id tells which process read which photos (see [`provenance`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

/// Per-user bounds on what lives in the daemon's memory and the catalog without review.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Empty folders made with mkdir, per user (all purposes).
    pub folders: usize,
    /// Drafts, per user.
    pub drafts: usize,
    /// Bytes a user's open files hold written but not yet saved (encrypted, in `.tmp` objects
    /// on the store's disk): one user cannot fill the disk with one endless write.
    pub pending_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            folders: 10_000,
            drafts: 100_000,
            pending_bytes: 64 << 30,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: Kind,
    pub size: u64,
    /// Permission bits (e.g. 0o700).
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
    /// Access and status-change times (see [`times`]).
    pub atime: SystemTime,
    pub ctime: SystemTime,
    /// Disk space it takes, in 512-byte blocks (`st_blocks`, what `du` shows): a sparse
    /// file's holes take none.
    pub blocks: u64,
    pub nlink: u32,
}

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: String,
    pub attr: Attr,
    /// What the entry stands for: readdirplus hands out its *current* inode (see
    /// [`Vfs::reference_entry`]).
    pub node: Node,
}

/// A file opened: its handle, and whether the kernel may keep its cached pages.
#[derive(Debug, Clone, Copy)]
pub struct Opened {
    pub fh: u64,
    pub keep_cache: bool,
}

/// Invalidations for the invalidator thread; `done` is signalled once they were sent.
#[derive(Default)]
pub struct Batch {
    pub items: Vec<Invalidation>,
    pub done: Option<std::sync::mpsc::SyncSender<()>>,
    /// Pages to push into the kernel's cache after the invalidations ([`Vfs::fill`]).
    pub fill: Option<fill::Fill>,
}

/// A cache entry the kernel must forget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// The name `name` in folder `parent` (a dentry, positive or negative).
    Entry { parent: Ino, name: String },
    /// An inode's attributes and cached pages.
    Inode { ino: Ino },
}

#[derive(Debug, Clone, Default)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
}

/// Maps logins to OS accounts (uid, primary gid).
pub trait Accounts: Send + Sync {
    /// `Ok(None)`: no such account. `Err`: the lookup itself failed (no file descriptors
    /// left, the password database unreadable), which must not answer "no such file".
    fn lookup(&self, login: &str) -> Result<Option<(u32, u32)>>;
}

/// An account looked up (uid and gid, or none) and when.
type CachedAccount = (Option<(u32, u32)>, std::time::Instant);

/// The machine's accounts (getpwnam), cached: every attribute the mount returns names an
/// owner, and reading /etc/passwd for each of 10,000 directory entries would dominate `ls -l`.
/// Entries are kept for a minute, so an account created after mounting shows up soon.
#[derive(Default)]
pub struct OsAccounts {
    cache: RwLock<HashMap<String, CachedAccount>>,
}

impl Accounts for OsAccounts {
    fn lookup(&self, login: &str) -> Result<Option<(u32, u32)>> {
        const KEEP: std::time::Duration = std::time::Duration::from_secs(60);
        if let Some((found, at)) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(login)
        {
            if at.elapsed() < KEEP {
                return Ok(*found);
            }
        }
        // A failed lookup (the password database being rewritten, no file descriptors left)
        // is not "no such account": it is retried once and never cached.
        let found = match nix::unistd::User::from_name(login)
            .or_else(|_| nix::unistd::User::from_name(login))
        {
            Ok(u) => u.map(|u| (u.uid.as_raw(), u.gid.as_raw())),
            Err(e) => {
                log::warn!("cannot look up an OS account: {e}");
                return Err(Error::io(
                    "cannot look up the OS account of a view",
                    std::io::Error::from(e),
                ));
            }
        };
        // "Not found" can also be a lookup that could not run: with `passwd: files systemd`
        // the files source fails for want of a descriptor and the next one answers "no such
        // user". Such an answer is believed (and cached) only if the database can be opened.
        if found.is_none() {
            if let Err(e) = std::fs::File::open("/etc/passwd") {
                if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                    log::warn!("cannot look up an OS account: {e}");
                    return Err(Error::io("cannot look up the OS account of a view", e));
                }
            }
        }
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(login.to_string(), (found, std::time::Instant::now()));
        Ok(found)
    }
}

impl Accounts for HashMap<String, (u32, u32)> {
    fn lookup(&self, login: &str) -> Result<Option<(u32, u32)>> {
        Ok(self.get(login).copied())
    }
}

/// An open descriptor: a handle on the open file it shares with every other descriptor of the
/// same file (see [`open_file`]), readable while the asset stays visible.
struct Handle {
    login: Arc<str>,
    purpose: PurposeId,
    asset: AssetId,
    writable: bool,
    /// The process that opened it: its close saves, a child's close of an inherited
    /// descriptor does not (the last release does).
    opener: Option<u32>,
    file: Arc<open_file::OpenFile>,
    /// The processes that wrote through this handle (a few; see [`provenance`]).
    writers: Mutex<Vec<provenance::Process>>,
}

impl Handle {
    fn key(&self) -> open_file::FileKey {
        (self.login.clone(), self.purpose, self.asset)
    }
}

pub struct Vfs {
    store: Arc<Store>,
    view: Arc<RwLock<View>>,
    accounts: Box<dyn Accounts>,
    inodes: Mutex<Inodes>,
    handles: RwLock<HashMap<u64, Arc<Handle>>>,
    /// Open folders: the listing taken at opendir, so that a large folder read in many
    /// readdir calls is computed once and stays consistent.
    dirs: Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>,
    next_fh: AtomicU64,
    chunks: ChunkCache,
    /// Bytes of pushes into the kernel's page cache waiting on the invalidator thread.
    fills_queued: AtomicU64,
    /// Folders show the mount time as their modification time.
    mounted_at: SystemTime,
    /// The daemon's own catalog connection, for changes made through the mount.
    catalog: Mutex<crate::catalog::Catalog>,
    /// Where invalidations of changes made through the mount go (the invalidator thread).
    inval_tx: Mutex<Option<std::sync::mpsc::Sender<Batch>>>,
    draft_tx: Mutex<Option<std::sync::mpsc::SyncSender<AssetId>>>,
    /// Empty folders made with mkdir. In memory only.
    made_dirs: Mutex<dirs::MadeDirs>,
    limits: Limits,
    /// Which photos each process opened for reading lately.
    provenance: provenance::Provenance,
    /// The process of each thread that asked lately (whose close saves).
    tgids: open_file::Tgids,
    /// Drafts renamed over a file: later commits through their handles go to that file.
    merged: Mutex<HashMap<AssetId, AssetId>>,
    /// Names active assets left by a same-folder rename, and when (for saves with a backup).
    vacated: Mutex<HashMap<open_file::PathKey, (AssetId, std::time::Instant)>>,
    /// Bytes each user's open files hold unsaved (see [`Limits::pending_bytes`]); a leaf lock.
    pending_bytes: Mutex<HashMap<Arc<str>, u64>>,
    /// Open files (one state per asset and view, shared by its handles; see [`open_file`]).
    /// Stat in a view shows the size its open file has written; every other view (another
    /// user's, another purpose's) shows the committed size until the commit.
    files: open_file::Registry,
    /// Inodes whose name went to another file (or none) while descriptors held them: the
    /// open file they keep serving (see [`replaced`]). A leaf lock.
    kept: Mutex<HashMap<Ino, replaced::Kept>>,
    next_session: AtomicU64,
    /// The version each asset's last save through the mount made (successive saves of one file
    /// update it; see `write::Recent`).
    recent: Mutex<HashMap<AssetId, write::Recent>>,
    /// Which opens were written to the audit log today (first open per user, purpose, asset).
    opened: Mutex<access::OpenedToday>,
    /// Saves written but not yet recorded because the catalog was busy (durable; see
    /// [`queue`]). Served as the asset's content until recorded.
    saves: queue::SaveQueue,
    /// Closes of new files whose catalog transaction is still open (see `save_new_file`).
    journal: queue::NewFileJournal,
    /// Files created in the catalog transaction still open, and its start (see
    /// [`crate::catalog::Catalog::pending_since`]).
    created: Mutex<HashMap<AssetId, std::time::Instant>>,
    /// The empty object new files hold until their first save: its id, its wrapped key and a
    /// reader of it kept open (see `Vfs::placeholder`). Taken before the catalog's lock, never
    /// after.
    placeholder: Mutex<Option<write::Placeholder>>,
    /// A transaction with journalled new files was rolled back: record them again.
    replay_due: std::sync::atomic::AtomicBool,
    /// Whether the view is known to be current (fail closed otherwise).
    pub live: live::Liveness,
    /// Status changes and access times of files kept in memory (see [`times`]).
    times: times::StatusTimes,
}

/// How often an open tries again when the version it was opening was replaced meanwhile (see
/// `Vfs::open_current`): each try follows a save that committed during the one before.
const OPEN_RETRIES: u32 = 8;

const XATTRS: [&str; 4] = [
    "user.consentfs.asset",
    "user.consentfs.subjects",
    "user.consentfs.valid_until",
    "user.consentfs.status",
];

fn denied(what: impl Into<String>) -> Error {
    Error::Denied(what.into())
}

/// A catalog time as `stat` shows it, to the nanosecond (also before 1970).
fn to_system_time(t: crate::policy::Time) -> SystemTime {
    SystemTime::from(t)
}

impl Vfs {
    pub fn new(
        store: Arc<Store>,
        view: Arc<RwLock<View>>,
        accounts: Box<dyn Accounts>,
        catalog: crate::catalog::Catalog,
    ) -> Vfs {
        Vfs {
            view,
            accounts,
            inodes: Mutex::new(Inodes::new()),
            handles: RwLock::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            chunks: ChunkCache::new(256),
            fills_queued: Default::default(),
            mounted_at: SystemTime::now(),
            opened: Mutex::new(access::OpenedToday::load(catalog.conn())),
            catalog: Mutex::new(catalog),
            inval_tx: Mutex::new(None),
            draft_tx: Mutex::new(None),
            made_dirs: Mutex::new(Default::default()),
            limits: Limits::default(),
            provenance: Default::default(),
            tgids: Default::default(),
            merged: Mutex::new(HashMap::new()),
            files: Default::default(),
            kept: Mutex::new(HashMap::new()),
            pending_bytes: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            recent: Mutex::new(HashMap::new()),
            vacated: Mutex::new(HashMap::new()),
            saves: queue::SaveQueue::load(&store).unwrap_or_else(|e| {
                log::error!("cannot read the queue of saves waiting for the catalog: {e}");
                queue::SaveQueue::empty(&store)
            }),
            live: live::Liveness::default(),
            times: Default::default(),
            journal: queue::NewFileJournal::new(&store),
            created: Mutex::new(HashMap::new()),
            placeholder: Mutex::new(None),
            replay_due: std::sync::atomic::AtomicBool::new(false),
            store,
        }
    }

    /// Use this queue of saves (loaded by the daemon before its start-up clean-up, which must
    /// not take the queued objects for orphans).
    pub fn with_save_queue(mut self, saves: queue::SaveQueue) -> Vfs {
        self.saves = saves;
        self
    }

    /// Change the per-user bounds (the defaults suit production; tests use small ones).
    pub fn with_limits(mut self, limits: Limits) -> Vfs {
        self.limits = limits;
        self
    }

    /// Stop sending invalidations (at unmount, so the invalidator thread can end).
    pub fn clear_invalidation_sender(&self) {
        *self.inval_tx.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Send invalidations for changes made through the mount to this channel.
    /// Where to say that a draft has a new version (the daemon looks at its picture: see
    /// `daemon::analyse`). Never waits: when the listener is behind, the id is dropped.
    pub fn set_draft_listener(&self, tx: std::sync::mpsc::SyncSender<AssetId>) {
        *self.draft_tx.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    pub(super) fn draft_saved(&self, asset: AssetId) {
        if let Some(tx) = self
            .draft_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            let _ = tx.try_send(asset);
        }
    }

    pub fn set_invalidation_sender(&self, tx: std::sync::mpsc::Sender<Batch>) {
        *self.inval_tx.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    fn view(&self) -> RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    fn inodes(&self) -> std::sync::MutexGuard<'_, Inodes> {
        self.inodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node behind an inode. A file whose draft was saved over another file (rename) now
    /// stands for that file: the kernel moves the draft's inode to the target's name.
    /// Every request that could reveal a photo passes here first, so it also refuses
    /// (EACCES) while the view is not known to be current (see `live`).
    fn node(&self, ino: Ino) -> Result<Node> {
        self.live.check()?;
        let node = self
            .inodes()
            .node(ino)
            .ok_or_else(|| Error::not_found(format!("unknown inode {ino}")))?;
        Ok(match node {
            Node::File(login, purpose, asset) => {
                Node::File(login, purpose, self.current_asset(asset))
            }
            other => other,
        })
    }

    /// The caller may act inside `login`'s tree: they are that account, or root.
    /// The login's tree exists only for the OS account it was added for (see [`Vfs::account`]).
    fn check_owner(&self, caller: Caller, login: &str) -> Result<(u32, u32)> {
        let view = self.view();
        self.check_owner_in(&view, caller, login)
    }

    /// [`Vfs::check_owner`] for a caller that already holds the view (never take it twice:
    /// a waiting writer would block the second read).
    fn check_owner_in(&self, view: &View, caller: Caller, login: &str) -> Result<(u32, u32)> {
        let stored = view.user(login).map(|u| u.uid);
        let (uid, gid) = self
            .account(stored, login)?
            .ok_or_else(|| Error::not_found("no OS account for this view".to_string()))?;
        if caller.uid != uid && caller.uid != 0 {
            log::info!(
                "denied: uid {} tried to enter the view of uid {uid}",
                caller.uid
            );
            return Err(denied("not your view"));
        }
        Ok((uid, gid))
    }

    /// The OS account (uid, gid) of `login`, unless it is not the account the user was added
    /// for (`stored`: `None` when there is no such user, `Some(uid)` with the uid recorded at
    /// `user add`): a login deleted and re-created gets another uid and must not inherit the
    /// grants and drafts of the former account.
    fn account(&self, stored: Option<Option<u32>>, login: &str) -> Result<Option<(u32, u32)>> {
        let Some((uid, gid)) = self.accounts.lookup(login)? else {
            return Ok(None);
        };
        Ok(match stored {
            Some(stored) if !crate::catalog::users::same_account(stored, Some(uid)) => {
                log::warn!(
                    "the OS account of a user was re-created (uid {uid}, added for {}): its view is not shown; \
                     `consentfs user remove` and `user add` bind the user to the new account",
                    stored.map_or_else(|| "no uid".to_string(), |u| format!("uid {u}"))
                );
                None
            }
            _ => Some((uid, gid)),
        })
    }

    /// Whether the node still exists in the view, as the given login sees it (an error when
    /// that cannot be told, e.g. the account lookup failed).
    fn exists(&self, view: &View, node: &Node) -> Result<bool> {
        Ok(match node {
            Node::Root => true,
            Node::User(l) => {
                !view.user_purposes(l).is_empty()
                    && self.account(view.user(l).map(|u| u.uid), l)?.is_some()
            }
            Node::Purpose(l, p) => view.user_purposes(l).iter().any(|(q, _)| q.id == *p),
            Node::Dir(l, p, path) => view.dir_visible(l, *p, path) || self.made_dir(l, *p, path),
            Node::File(l, p, a) => view.file_visible(l, *p, *a),
        })
    }

    /// A node's attributes. A folder's link count is 2 and one per sub-folder (`find` and
    /// other tree walkers rely on it), its modification time the last change its user made to
    /// its entries through the mount (else the mount time); the mount root, which would count
    /// the users, says 1 ("not counted", as btrfs does). A file being written shows the time
    /// of its last write.
    fn attr_of(&self, view: &View, node: &Node, ino: Ino) -> Result<Attr> {
        let (mtime, nlink) = match node {
            Node::Root => (self.mounted_at, 1),
            Node::User(l) => (self.mounted_at, 2 + view.user_purposes(l).len() as u32),
            Node::Purpose(l, p) | Node::Dir(l, p, _) => {
                let path = match node {
                    Node::Dir(_, _, path) => path,
                    _ => "",
                };
                let mut subdirs = view.subdirs(l, *p, path);
                let made = self.made_dirs.lock().unwrap_or_else(|p| p.into_inner());
                for m in made.children(l, *p, path) {
                    if !subdirs.iter().any(|d| **d == *m) {
                        subdirs.push(Arc::from(m.as_str()));
                    }
                }
                let mtime = made.changed_at(l, *p, path).unwrap_or(self.mounted_at);
                let subdirs = u32::try_from(subdirs.len()).unwrap_or(u32::MAX - 2);
                (mtime, 2u32.saturating_add(subdirs))
            }
            Node::File(..) => (self.mounted_at, 1),
        };
        let dir = |perm: u16, uid: u32, gid: u32| Attr {
            ino,
            kind: Kind::Dir,
            size: 0,
            perm,
            uid,
            gid,
            mtime,
            atime: mtime,
            ctime: mtime,
            blocks: 0,
            nlink,
        };
        let perm_for = |access: Option<Access>, rw: u16, ro: u16| match access {
            Some(Access::Write | Access::Delete) => rw,
            _ => ro,
        };
        Ok(match node {
            Node::Root => dir(0o755, 0, 0),
            Node::User(l) => {
                let (uid, gid) = self
                    .accounts
                    .lookup(l)?
                    .ok_or_else(|| Error::not_found("no account"))?;
                dir(0o700, uid, gid)
            }
            Node::Purpose(l, p) => {
                let (uid, gid) = self
                    .accounts
                    .lookup(l)?
                    .ok_or_else(|| Error::not_found("no account"))?;
                let access = view
                    .user_purposes(l)
                    .iter()
                    .find(|(q, _)| q.id == *p)
                    .map(|(_, a)| *a);
                dir(perm_for(access, 0o700, 0o500), uid, gid)
            }
            Node::Dir(l, p, path) => {
                let (uid, gid) = self
                    .accounts
                    .lookup(l)?
                    .ok_or_else(|| Error::not_found("no account"))?;
                dir(perm_for(view.access(l, *p, path), 0o700, 0o500), uid, gid)
            }
            Node::File(l, p, a) => {
                let (uid, gid) = self
                    .accounts
                    .lookup(l)?
                    .ok_or_else(|| Error::not_found("no account"))?;
                let info = view
                    .asset(*a)
                    .ok_or_else(|| Error::not_found("no such asset"))?;
                let version = info
                    .version
                    .as_ref()
                    .ok_or_else(|| Error::not_found("asset has no content"))?;
                let pending = self.pending_size(l, *p, *a);
                let queued = self.saves.latest(*a);
                let size = pending
                    .or_else(|| queued.as_ref().map(|s| s.size))
                    .unwrap_or(version.size);
                let written = self
                    .files
                    .pending_mtime(l, *p, |x| x == *a || self.current_asset(x) == *a);
                let mtime = written.unwrap_or_else(|| {
                    to_system_time(
                        queued
                            .as_ref()
                            .and_then(|q| q.mtime())
                            .unwrap_or(version.mtime.unwrap_or(version.created_at)),
                    )
                });
                let current = self.current_asset(*a);
                let atime = self
                    .times
                    .pending_atime(current)
                    .filter(|_| pending.is_some())
                    .or_else(|| queued.as_ref().and_then(|q| q.atime()).map(to_system_time))
                    .or_else(|| version.atime.map(to_system_time))
                    .unwrap_or(mtime);
                let ctime =
                    self.file_ctime(&[*a, current], to_system_time(version.created_at), written);
                // disk use: what the object holds (one stat of its file, which a sparse
                // object's holes do not fill), or what the pending one holds
                let object = queued
                    .as_ref()
                    .and_then(|q| crate::crypto::object::ObjectId::parse(&q.object))
                    .unwrap_or(version.object);
                let blocks = match pending {
                    Some(n) => self.pending_blocks(l, *a, n),
                    // an object in a bucket takes no disk here: its length stands in
                    None => self.object_blocks(&object).unwrap_or_else(|| {
                        crate::crypto::object::encrypted_len(size).div_ceil(512)
                    }),
                };
                Attr {
                    ino,
                    kind: Kind::File,
                    size,
                    perm: perm_for(view.access(l, *p, &info.collection), 0o600, 0o400),
                    uid,
                    gid,
                    mtime,
                    atime,
                    ctime,
                    blocks,
                    nlink: 1,
                }
            }
        })
    }

    /// The child called `name` of `parent`, if it exists in the view.
    fn child(&self, view: &View, parent: &Node, name: &str) -> Result<Option<Node>> {
        Ok(match parent {
            Node::Root => {
                let login: Arc<str> = Arc::from(name);
                let node = Node::User(login);
                self.exists(view, &node)?.then_some(node)
            }
            Node::User(l) => {
                let Some(p) = view.purpose_by_name(name) else {
                    return Ok(None);
                };
                let node = Node::Purpose(l.clone(), p.id);
                self.exists(view, &node)?.then_some(node)
            }
            Node::Purpose(l, p) | Node::Dir(l, p, _) => {
                let dir = match parent {
                    Node::Dir(_, _, path) => path.to_string(),
                    _ => String::new(),
                };
                let sub = crate::catalog::assets::join_path(&dir, name);
                if view.dir_visible(l, *p, &sub) || self.made_dir(l, *p, &sub) {
                    return Ok(Some(Node::Dir(l.clone(), *p, Arc::from(sub.as_str()))));
                }
                view.file_in(l, *p, &dir, name)
                    .map(|a| Node::File(l.clone(), *p, a))
            }
            Node::File(..) => None,
        })
    }

    pub fn lookup(&self, caller: Caller, parent: Ino, name: &str) -> Result<Attr> {
        let parent_node = self.node(parent)?;
        if let Some(login) = parent_node.login() {
            self.check_owner(caller, login)?;
        }
        let view = self.view();
        if !self.exists(&view, &parent_node)? {
            return Err(Error::not_found("folder no longer exists"));
        }
        let node = self
            .child(&view, &parent_node, name)?
            .ok_or_else(|| Error::not_found("no such entry"))?;
        if let Node::User(login) = &node {
            // Who has a folder here is no one else's business: another user's folder does
            // not exist for the caller (ENOENT, not EACCES, which would confirm the name).
            if !self.own_folder(caller, login)? {
                return Err(Error::not_found("no such entry"));
            }
        } else if let Some(login) = node.login() {
            self.check_owner_in(&view, caller, login)?;
        }
        let ino = self.inodes().reference(&node);
        self.attr_of(&view, &node, ino)
    }

    /// The caller's own folder (root's: every folder). The mount root lists only these, and
    /// names only these on lookup.
    fn own_folder(&self, caller: Caller, login: &str) -> Result<bool> {
        Ok(caller.uid == 0
            || self
                .accounts
                .lookup(login)?
                .is_some_and(|(uid, _)| uid == caller.uid))
    }

    pub fn forget(&self, ino: Ino, n: u64) {
        let mut inodes = self.inodes();
        inodes.forget(ino, n);
        if inodes.node(ino).is_none() {
            drop(inodes);
            self.forget_kept(ino);
        }
    }

    pub fn getattr(&self, caller: Caller, ino: Ino) -> Result<Attr> {
        let node = self.node(ino)?;
        if let Node::User(login) = &node {
            if !self.own_folder(caller, login)? {
                return Err(Error::not_found("no such entry"));
            }
        } else if let Some(login) = node.login() {
            self.check_owner(caller, login)?;
        }
        if let Some(kept) = self.kept(ino) {
            return self.kept_attr(&kept, &node);
        }
        let view = self.view();
        if !self.exists(&view, &node)? {
            if let Node::File(l, p, a) = &node {
                if self.files.get(&(l.clone(), *p, *a)).is_some() {
                    // descriptors are open on it: they are refused the way reads are, and a
                    // read that asks for the size first gets the same answer
                    log::info!("denied: attributes of asset {a} through a descriptor opened before it was hidden");
                    return Err(denied("no longer visible"));
                }
            }
            return Err(Error::not_found("no longer in the view"));
        }
        self.attr_of(&view, &node, ino)
    }

    /// The entries of a folder (without `.` and `..`). With `plus`, each entry counts as a
    /// lookup (readdirplus), as the kernel expects.
    pub fn readdir(&self, caller: Caller, ino: Ino, plus: bool) -> Result<Vec<DirEntry>> {
        let node = self.node(ino)?;
        if let Some(login) = node.login() {
            self.check_owner(caller, login)?;
        }
        let view = self.view();
        if !self.exists(&view, &node)? {
            return Err(Error::not_found("folder no longer exists"));
        }
        let children: Vec<(String, Node)> = match &node {
            Node::Root => {
                // only the caller's own folder (root sees all): the list of everyone with a
                // grant would tell every local user who works on what
                let mut logins: Vec<&str> = Vec::new();
                for l in view.logins() {
                    if self.accounts.lookup(l)?.is_some() && self.own_folder(caller, l)? {
                        logins.push(l);
                    }
                }
                logins.sort();
                logins
                    .into_iter()
                    .map(|l| (l.to_string(), Node::User(Arc::from(l))))
                    .collect()
            }
            Node::User(l) => view
                .user_purposes(l)
                .into_iter()
                .map(|(p, _)| (p.name.clone(), Node::Purpose(l.clone(), p.id)))
                .collect(),
            Node::Purpose(l, p) | Node::Dir(l, p, _) => {
                let dir = match &node {
                    Node::Dir(_, _, path) => path.to_string(),
                    _ => String::new(),
                };
                let (mut dirs, files) = view.list_dir(l, *p, &dir);
                for made in self.made_children(l, *p, &dir) {
                    if !dirs.iter().any(|d| **d == *made) {
                        dirs.push(Arc::from(made.as_str()));
                    }
                }
                let mut out: Vec<(String, Node)> = dirs
                    .into_iter()
                    .map(|d| {
                        let sub = crate::catalog::assets::join_path(&dir, &d);
                        (
                            d.to_string(),
                            Node::Dir(l.clone(), *p, Arc::from(sub.as_str())),
                        )
                    })
                    .collect();
                out.extend(
                    files
                        .into_iter()
                        .map(|(n, a)| (n.to_string(), Node::File(l.clone(), *p, a))),
                );
                out
            }
            Node::File(..) => return Err(Error::Invalid("not a folder".into())),
        };
        let mut inodes = self.inodes();
        let mut out = Vec::with_capacity(children.len());
        for (name, child) in children {
            let ino = if plus {
                inodes.reference(&child)
            } else {
                inodes.ino_of(&child)
            };
            match self.attr_of(&view, &child, ino) {
                Ok(attr) => out.push(DirEntry {
                    name,
                    attr,
                    node: child,
                }),
                Err(e) => log::debug!("skipping entry of inode {ino}: {e}"),
            }
        }
        Ok(out)
    }

    /// Open a folder: snapshot its entries; returns the handle number.
    pub fn opendir(&self, caller: Caller, ino: Ino) -> Result<u64> {
        let entries = self.readdir(caller, ino, false)?;
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fh, Arc::new(entries));
        Ok(fh)
    }

    /// The snapshot taken at opendir.
    pub fn dir_entries(&self, fh: u64) -> Result<Arc<Vec<DirEntry>>> {
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh)
            .cloned()
            .ok_or_else(|| Error::Invalid("bad folder handle".into()))
    }

    pub fn releasedir(&self, fh: u64) {
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh);
    }

    /// Count a kernel reference for a readdirplus entry and return the inode to hand out.
    ///
    /// The folder's entries were listed at opendir; the kernel may have forgotten an entry's
    /// inode since (and we dropped it), so the number is looked up again and counted under one
    /// lock, before the entry is sent. Handing out the old number would leave the kernel
    /// holding an inode we no longer know (stat and open would fail with ENOENT). If the entry
    /// does not fit in the reply, the caller gives the reference back with [`Vfs::forget`].
    pub fn reference_entry(&self, entry: &DirEntry) -> Ino {
        self.inodes().reference(&entry.node)
    }

    /// Open a file for reading; returns the handle number.
    /// The current version of an asset, opened for reading.
    fn open_current(
        &self,
        asset: AssetId,
    ) -> Result<(ObjectId, Decryptor<crate::store::ObjectSource>)> {
        // The view names the object, the catalog holds its key, the store its file: a save
        // committed between those steps may have updated the version in place and removed
        // the object the view named (saves of one program within seconds are one version).
        // The view has moved on by then (this daemon refreshes it before the catalog's lock
        // is released, and before the old object's file is removed), so the open tries again
        // with the object the view names now. It fails only when the view still names the
        // object that could not be opened (shredded, or damaged).
        let mut tries = 0;
        loop {
            let object = self.current_object(asset);
            match self.open_object_of(asset) {
                Ok(opened) => return Ok(opened),
                Err(e) if tries < OPEN_RETRIES && self.current_object(asset) != object => {
                    tries += 1;
                    log::debug!("asset {asset}: its version changed while it was opened ({e}); opening the new one");
                }
                Err(e) => {
                    // damage (a key that does not unwrap, a missing file) is an error; content
                    // shredded on purpose (thinned, erased) is only worth a warning
                    if matches!(e, Error::Integrity { .. }) {
                        log::error!("asset {asset}: cannot open its current version: {e}");
                    } else {
                        log::warn!("asset {asset}: cannot open its current version: {e}");
                    }
                    return Err(e);
                }
            }
        }
    }

    /// One try of [`Vfs::open_current`]: the queued save's object, else the view's.
    fn open_object_of(
        &self,
        asset: AssetId,
    ) -> Result<(ObjectId, Decryptor<crate::store::ObjectSource>)> {
        if let Some(queued) = self.saves.latest(asset) {
            let obj = queued.new_object()?;
            let reader = self.store.open_object(
                &obj.id,
                &obj.wrapped_key,
                obj.size,
                &format!("asset {asset}, a save queued for the catalog"),
            )?;
            return Ok((obj.id, reader));
        }
        let (object, size, label) = {
            let view = self.view();
            let info = view
                .asset(asset)
                .ok_or_else(|| Error::not_found("no such asset"))?;
            let v = info
                .version
                .as_ref()
                .ok_or_else(|| Error::not_found("no content"))?;
            if v.thinned_at.is_some() {
                // a thinned version's content is gone, also where another version keeps it
                return Err(Error::not_found("content was shredded"));
            }
            (
                v.object,
                v.size,
                format!("asset {asset} version {}", v.version),
            )
        };
        // the index holds no keys (see `catalog::bulk::wrapped_key`); with the view's lock
        // released, so a slow catalog holds up this open only
        let wrapped = {
            let catalog = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
            crate::catalog::bulk::wrapped_key(catalog.conn(), &object)?
        }
        .ok_or_else(|| Error::not_found("content was shredded"))?;
        let reader = self.store.open_object(&object, &wrapped, size, &label)?;
        Ok((object, reader))
    }

    /// Open a file; returns the handle number. Writing needs a write grant where the file is;
    /// `truncate` (O_TRUNC) starts the new version empty.
    pub fn open(&self, caller: Caller, ino: Ino, write: bool, truncate: bool) -> Result<u64> {
        self.open_noting(caller, ino, write, truncate).map(|o| o.fh)
    }

    /// [`Vfs::open`], also saying whether the kernel may keep the pages it holds of the file
    /// (the adapter's `FOPEN_KEEP_CACHE`): not when this open took the place of a file that
    /// was behind the catalog (another machine's save, a restore), whose older content the
    /// kernel may have read into them through a handle still open after the change was
    /// invalidated.
    pub fn open_noting(
        &self,
        caller: Caller,
        ino: Ino,
        write: bool,
        truncate: bool,
    ) -> Result<Opened> {
        let node = self.node(ino)?;
        let Node::File(login, purpose, asset) = &node else {
            return Err(Error::Invalid("not a file".into()));
        };
        self.check_owner(caller, login)?;
        // an inode kept for its descriptors (opened again through /proc/PID/fd) is that file
        let kept = self.kept(ino).map(|k| k.file);
        if write && kept.as_ref().is_some_and(|f| f.unlinked().is_none()) {
            // the name went to a newer file (another machine's or user's save, a temp file
            // renamed over it) and the kernel reached this inode through a name it had not
            // yet been told of: what would be written here would go nowhere. ESTALE makes
            // the kernel look the path up anew and open the name's file (an open through
            // /proc/PID/fd of the replaced file gets the error)
            log::info!("asset {asset}: an open for writing of a replaced file is refused (ESTALE)");
            return Err(Error::io(
                "the file was replaced by a newer save",
                std::io::Error::from_raw_os_error(libc::ESTALE),
            ));
        }
        {
            let view = self.view();
            let visible = match &kept {
                Some(f) => self.may_read(&view, f, login, *purpose, *asset),
                None => view.file_visible(login, *purpose, *asset),
            };
            if !visible {
                log::info!("denied: open of asset {asset} which is no longer visible");
                return Err(denied("no longer visible"));
            }
            if write {
                self.check_write(&view, login, *purpose, *asset)?;
            }
        }
        // refused with the error as it is: a full disk is ENOSPC and says "disk full", not an
        // integrity error (nothing is damaged)
        self.record_open(caller, login, *purpose, *asset)
            .inspect_err(|e| log::error!("cannot record an open of asset {asset} in the audit log, so it is refused: {e}"))?;
        if !(write && truncate) {
            // what this process writes next may be made from it
            self.provenance.read(caller.pid, *asset);
        }
        let (file, behind) = match kept {
            Some(f) => {
                self.files.share(&f);
                (f, false)
            }
            None => self.file_for(login, *purpose, *asset)?,
        };
        let handle = Handle {
            login: login.clone(),
            purpose: *purpose,
            asset: *asset,
            writable: write,
            // only a writer's close saves: no /proc read on the path of every read-only open
            opener: write.then(|| self.tgids.of(caller.pid)).flatten(),
            file,
            writers: Mutex::new(self.provenance.process(caller.pid).into_iter().collect()),
        };
        if write {
            handle.file.start_writing();
        }
        if write && truncate {
            // O_TRUNC: the file is empty from now on, for every descriptor of it
            let truncated = {
                let mut st = handle.file.state.write().unwrap_or_else(|p| p.into_inner());
                self.truncate_state(&handle.file, &mut st, 0, None)
            };
            if let Err(e) = truncated {
                handle.file.writers_open.fetch_sub(1, Ordering::AcqRel);
                self.release_file(&handle);
                return Err(e);
            }
        }
        let older = self.files.take_older_pages(&handle.key());
        Ok(Opened {
            fh: self.add_handle(handle),
            keep_cache: !behind && !older,
        })
    }

    /// Give back a handle's reference on its open file. The last handle of a file that
    /// another took the place of, or that is behind the catalog, may have read its (older)
    /// content into the kernel's pages of the inode after the change was invalidated: they
    /// are dropped again, so that the next open reads what the catalog holds.
    fn release_file(&self, h: &Handle) {
        let older = match self.files.release(&h.key(), &h.file) {
            None => false,
            Some(true) => true,
            Some(false) => {
                let st = h.file.state.read().unwrap_or_else(|p| p.into_inner());
                st.writer.is_none() && Some(st.object) != self.current_object(h.asset)
            }
        };
        if older {
            // the next open drops them (whether or not the invalidation below came first)
            self.files.mark_older_pages(&h.key());
            let items = self.pages_of(Some(&[h.asset]));
            if let Some(tx) = self
                .inval_tx
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
            {
                let _ = tx.send(Batch {
                    items,
                    ..Default::default()
                });
            }
        }
    }

    /// The open file of `asset` in this view, shared with the handles already on it; a new one
    /// (with the current version) when there is none or when the one there is behind the
    /// catalog and has nothing pending (another user's save, a restore: a reopen sees it).
    fn file_for(
        &self,
        login: &Arc<str>,
        purpose: PurposeId,
        asset: AssetId,
    ) -> Result<(Arc<open_file::OpenFile>, bool)> {
        self.files.acquire_noting(
            &(login.clone(), purpose, asset),
            |f| {
                // the catalog's current object is read once the file's state is ours: a
                // commit of this file in progress moves both (lock order: state, then view)
                let st = f.state.read().unwrap_or_else(|p| p.into_inner());
                st.writer.is_some() || Some(st.object) == self.current_object(asset)
            },
            || {
                let (object, reader) = self.open_current(asset)?;
                Ok(open_file::OpenFile::new(
                    self.next_session.fetch_add(1, Ordering::Relaxed),
                    login.clone(),
                    object,
                    reader,
                ))
            },
        )
    }

    /// The object the mount serves for `asset` now (a queued save's, else the view's).
    fn current_object(&self, asset: AssetId) -> Option<ObjectId> {
        if let Some(q) = self.saves.latest(asset) {
            return ObjectId::parse(&q.object);
        }
        self.view()
            .asset(asset)
            .and_then(|i| i.version.as_ref().map(|v| v.object))
    }

    /// The size a file of this view has written but not committed, if any.
    fn pending_size(&self, login: &str, purpose: PurposeId, asset: AssetId) -> Option<u64> {
        self.files.pending_size(login, purpose, |a| {
            a == asset || self.current_asset(a) == asset
        })
    }

    fn add_handle(&self, handle: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fh, Arc::new(handle));
        fh
    }

    fn handle(&self, fh: u64) -> Result<Arc<Handle>> {
        self.handles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh)
            .cloned()
            .ok_or_else(|| Error::Invalid("bad file handle".into()))
    }

    /// The open handles on an asset (by its current id).
    fn handles_of(&self, asset: AssetId) -> Vec<Arc<Handle>> {
        self.handles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|h| self.current_asset(h.asset) == asset)
            .cloned()
            .collect()
    }

    fn chunk(&self, st: &open_file::FileState, index: u64) -> Result<Chunk> {
        if let Some(c) = self.chunks.get(&st.object, index) {
            return Ok(c);
        }
        let c: Chunk = Arc::new(st.reader.chunk(index).inspect_err(|e| log::error!("{e}"))?);
        self.chunks.put(st.object, index, c.clone());
        Ok(c)
    }

    /// Read up to `size` bytes at `offset`. Fails with EACCES once the asset is no longer
    /// visible to the handle's user in its purpose, and with EIO on an integrity error.
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_into(fh, offset, size, &mut out)?;
        Ok(out)
    }

    /// [`Vfs::read`] into a buffer the caller reuses (the adapter keeps one per thread).
    ///
    /// Whole chunks are decrypted straight into `out`, spread over two threads when a request
    /// spans several (the kernel's readahead asks for up to 1 MiB at once); only chunks read in
    /// part go through the chunk cache, because the next request will want their remainder.
    pub fn read_into(&self, fh: u64, offset: u64, size: u32, out: &mut Vec<u8>) -> Result<()> {
        self.read_filling(None, fh, offset, size, out)
    }

    /// [`Vfs::read_into`] for the kernel's read of inode `ino`: a small read also has the
    /// rest of the chunk it read in part pushed into the kernel's cache (see [`fill`]).
    pub fn read_for_kernel(
        &self,
        ino: Ino,
        fh: u64,
        offset: u64,
        size: u32,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.read_filling(Some(ino), fh, offset, size, out)
    }

    fn read_filling(
        &self,
        ino: Option<Ino>,
        fh: u64,
        offset: u64,
        size: u32,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.live.check()?;
        let h = self.handle(fh)?;
        let asset = self.current_asset(h.asset);
        if !self.may_read(&self.view(), &h.file, &h.login, h.purpose, asset) {
            log::info!(
                "denied: read of asset {asset} through a handle opened before it was hidden"
            );
            return Err(denied("no longer visible"));
        }
        let st = h.file.state.read().unwrap_or_else(|p| p.into_inner());
        if st.writer.is_some() {
            // what the file's descriptors wrote and did not commit yet (under the write lock:
            // a large write may still be being sealed, and is waited for)
            drop(st);
            let mut st = h.file.state.write().unwrap_or_else(|p| p.into_inner());
            if let Some(w) = st.writer.as_mut() {
                *out = w.writer.read_at(offset, size as usize)?;
                return Ok(());
            }
            drop(st);
            return self.read_filling(ino, fh, offset, size, out);
        }
        let len = st.reader.len();
        if offset >= len {
            out.clear();
            return Ok(());
        }
        let end = (offset + u64::from(size)).min(len);
        // every byte is overwritten below; resize only writes the part that is new
        out.resize((end - offset) as usize, 0);
        // cut the output into one piece per chunk
        let mut whole: Vec<(u64, &mut [u8])> = Vec::new();
        let mut partial: Vec<(u64, usize, &mut [u8])> = Vec::new();
        let mut rest: &mut [u8] = &mut out[..];
        let mut pos = offset;
        while pos < end {
            let index = pos / CHUNK_PLAIN;
            let within = (pos - index * CHUNK_PLAIN) as usize;
            let chunk_len = st.reader.chunk_len(index) as usize;
            let take = ((end - pos) as usize).min(chunk_len - within);
            let (piece, tail) = std::mem::take(&mut rest).split_at_mut(take);
            rest = tail;
            if within == 0 && take == chunk_len {
                whole.push((index, piece));
            } else {
                partial.push((index, within, piece));
            }
            pos += take as u64;
        }
        let fill_ino = ino.filter(|_| size <= fill::SMALL_READ && st.reader.source().is_local());
        for (index, within, piece) in partial {
            let chunk = self.chunk(&st, index)?;
            piece.copy_from_slice(&chunk[within..within + piece.len()]);
            if let Some(ino) = fill_ino {
                let at = index * CHUNK_PLAIN;
                self.queue_fill(ino, &h, st.object, at, &chunk, (offset, end));
            }
        }
        let decrypt = |pieces: &mut [(u64, &mut [u8])]| -> Result<()> {
            for (index, piece) in pieces.iter_mut() {
                st.reader
                    .chunk_into(*index, piece)
                    .inspect_err(|e| log::error!("{e}"))?;
            }
            Ok(())
        };
        let result = if whole.len() >= 4 {
            let mid = whole.len() / 2;
            let (a, b) = whole.split_at_mut(mid);
            std::thread::scope(|scope| {
                let other = scope.spawn(|| decrypt(a));
                let mine = decrypt(b);
                let theirs = other
                    .join()
                    .unwrap_or_else(|_| Err(Error::invalid("decryption thread failed")));
                mine.and(theirs)
            })
        } else {
            decrypt(&mut whole)
        };
        if result.is_err() {
            // never hand out a mix of plaintext and garbage
            zeroize::Zeroize::zeroize(out);
            out.clear();
        }
        result
    }

    /// The last close of a descriptor. When it was the file's last one open for writing,
    /// what the file's descriptors wrote is committed (one version).
    pub fn release(&self, fh: u64) {
        let Ok(h) = self.handle(fh) else {
            return;
        };
        if h.writable && h.file.writers_open.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Err(e) = self.commit_file(&h, true) {
                log::warn!("a save could not be committed at close: {e}");
            }
        }
        if h.writable {
            // a file created and closed unwritten is recorded by now (see `settle_created`)
            if let Err(e) = self.settle_created(h.asset) {
                log::warn!("a new file could not be recorded at close: {e}");
            }
        }
        self.release_handle(fh);
        self.release_file(&h);
        self.release_kept(&h.file);
    }

    /// close(2) of a descriptor: its opener's close saves (and reports a failed save); the
    /// close of a copy a child process inherited does not, so a fork and exec in the middle of
    /// writing a file never commits half of it.
    pub fn flush(&self, fh: u64, pid: u32) -> Result<()> {
        let h = self.handle(fh)?;
        if !h.writable {
            return Ok(());
        }
        match (h.opener, self.tgids.of(pid)) {
            (Some(opener), Some(closer)) if opener == closer => {
                self.commit_file(&h, false)?;
                // a new file is durable when its close returns, written or not
                self.settle_created(h.asset)
            }
            _ => Ok(()),
        }
    }

    /// getattr, and for anything inside a user's folder (the folder included) the owner check.
    fn check_xattr(&self, caller: Caller, ino: Ino) -> Result<()> {
        if let Some(login) = self.node(ino)?.login() {
            self.check_owner(caller, login)?;
        }
        self.getattr(caller, ino).map(|_| ())
    }

    pub fn listxattr(&self, caller: Caller, ino: Ino) -> Result<Vec<String>> {
        self.check_xattr(caller, ino)?;
        Ok(match self.node(ino)? {
            Node::File(..) => XATTRS.iter().map(|s| s.to_string()).collect(),
            _ => Vec::new(),
        })
    }

    /// Setting or removing an extended attribute: none are stored. The `user.consentfs.*` ones
    /// say what the catalog holds and change only through it. ENOTSUP (not EPERM) because that
    /// is what `cp -a`, `mv` across folders and `rsync -X` take as "this filesystem keeps no
    /// such attributes" and go on quietly; with EPERM they print an error per attribute.
    pub fn setxattr(&self, caller: Caller, ino: Ino) -> Result<()> {
        self.check_xattr(caller, ino)?;
        Err(Error::io(
            "extended attributes cannot be set",
            std::io::Error::from_raw_os_error(libc::ENOTSUP),
        ))
    }

    pub fn getxattr(&self, caller: Caller, ino: Ino, name: &str) -> Result<Vec<u8>> {
        if !XATTRS.contains(&name) {
            // `ls -l` asks every file for security.selinux and system.posix_acl_access: answer
            // at once; nothing is revealed (the caller reached the inode through the checks)
            return Err(Error::io(
                "no such attribute",
                std::io::Error::from_raw_os_error(libc::ENODATA),
            ));
        }
        self.check_xattr(caller, ino)?;
        let Node::File(_, purpose, asset) = self.node(ino)? else {
            return Err(Error::io(
                "no such attribute",
                std::io::Error::from_raw_os_error(libc::ENODATA),
            ));
        };
        let view = self.view();
        let info = view
            .asset(asset)
            .ok_or_else(|| Error::not_found("no such asset"))?;
        let value = match name {
            "user.consentfs.asset" => asset.to_string(),
            "user.consentfs.subjects" => info
                .row
                .persons
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(","),
            "user.consentfs.valid_until" => view
                .valid_until(purpose, asset)
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "none".into()),
            "user.consentfs.status" => info.row.status.as_str().to_string(),
            _ => {
                return Err(Error::io(
                    "no such attribute",
                    std::io::Error::from_raw_os_error(libc::ENODATA),
                ))
            }
        };
        Ok(value.into_bytes())
    }

    /// What `df` shows: the space and the inodes of the filesystem that holds the store,
    /// which is what a save through the mount takes (any local user can see the same figures
    /// with `df` and `df -i` on that filesystem), so saving stays predictable and monitoring
    /// that reads `f_ffree` sees free inodes (zero reads as a full disk). No figure comes from
    /// the catalog: the number of photos in the store, or how it changes, is not every user's
    /// business, and a per-user count would cost a pass over the whole view on every `df`.
    /// A filesystem that does not count inodes (btrfs reports 0 and 0) stands for an
    /// unbounded supply: it is reported as all free, not as full.
    pub fn statfs(&self) -> StatFs {
        /// Files and free files shown when the store's filesystem does not count inodes.
        const UNCOUNTED: u64 = 1 << 32;
        match nix::sys::statvfs::statvfs(self.store.root()) {
            Ok(s) => {
                let (files, ffree) = match (s.files(), s.files_available()) {
                    (0, _) => (UNCOUNTED, UNCOUNTED),
                    (files, free) => (files, free.min(files)),
                };
                StatFs {
                    blocks: s.blocks(),
                    bfree: s.blocks_free(),
                    bavail: s.blocks_available(),
                    files,
                    ffree,
                    bsize: s.block_size() as u32,
                    namelen: 255,
                }
            }
            Err(e) => {
                log::warn!("cannot read the space left where the store is: {e}");
                StatFs {
                    bsize: 4096,
                    namelen: 255,
                    ..Default::default()
                }
            }
        }
    }

    /// The kernel cache entries that `changes` make stale, for nodes the kernel knows.
    pub fn invalidations(&self, changes: &[Change]) -> Vec<Invalidation> {
        self.supersede(changes);
        // Lock order everywhere: view, then inodes.
        let view = self.view();
        let inodes = self.inodes();
        let mut out = Vec::new();
        let whole_login = |login: &str, out: &mut Vec<Invalidation>| {
            out.push(Invalidation::Entry {
                parent: ROOT,
                name: login.to_string(),
            });
            for (ino, node) in inodes.of_login(login) {
                let (parent, name) = match &node {
                    Node::User(_) => continue,
                    Node::Purpose(l, p) => (
                        Node::User(l.clone()),
                        view.purpose(*p).map(|p| p.name.clone()),
                    ),
                    Node::Dir(l, p, path) => match path.rsplit_once('/') {
                        Some((up, n)) => {
                            (Node::Dir(l.clone(), *p, Arc::from(up)), Some(n.to_string()))
                        }
                        None => (Node::Purpose(l.clone(), *p), Some(path.to_string())),
                    },
                    Node::File(..) => {
                        out.push(Invalidation::Inode { ino });
                        continue;
                    }
                    Node::Root => continue,
                };
                if let (Some(pino), Some(name)) = (inodes.known(&parent), name) {
                    out.push(Invalidation::Entry { parent: pino, name });
                }
            }
        };
        for change in changes {
            match change {
                Change::All => {
                    let logins: Vec<String> = view.logins().map(str::to_string).collect();
                    for l in logins {
                        whole_login(&l, &mut out);
                    }
                }
                Change::User { login } => whole_login(login, &mut out),
                Change::Asset {
                    login: only,
                    purpose,
                    collection,
                    name,
                    asset,
                    ..
                } => {
                    // inodes kept for descriptors of a replaced or removed file: a change
                    // that hides the asset must reach them too
                    for ino in self.kept_of(&inodes, *asset) {
                        out.push(Invalidation::Inode { ino });
                    }
                    let aliases = self.merged_into(*asset);
                    for login in inodes.logins_with_purpose(*purpose) {
                        if only.as_ref().is_some_and(|o| *o != login) {
                            continue;
                        }
                        // Pages first, names second: once the name is gone, so is the data,
                        // and a handle opened earlier must come to us (and get EACCES). That
                        // includes the inodes of drafts saved over this asset: the kernel keeps
                        // using a temp file's inode, and its pages, under the photo's name.
                        for a in std::iter::once(*asset).chain(aliases.iter().copied()) {
                            if let Some(ino) = inodes.known(&Node::File(login.clone(), *purpose, a))
                            {
                                out.push(Invalidation::Inode { ino });
                            }
                        }
                        let Some(mut parent) =
                            inodes.known(&Node::Purpose(login.clone(), *purpose))
                        else {
                            continue;
                        };
                        let mut path = String::new();
                        let mut complete = true;
                        for c in crate::view::tree::components(collection) {
                            path = crate::catalog::assets::join_path(&path, c);
                            let known = inodes.known(&Node::Dir(
                                login.clone(),
                                *purpose,
                                Arc::from(path.as_str()),
                            ));
                            // A folder the kernel knows that still exists keeps its entry: it
                            // may be a process's working directory, and an invalidated one
                            // makes getcwd fail (`git init` in a new folder). Only a folder
                            // that appeared (a negative entry may be cached) or went is
                            // invalidated.
                            let exists = view.dir_visible(&login, *purpose, &path)
                                || self.made_dir(&login, *purpose, &path);
                            if known.is_none() || !exists {
                                out.push(Invalidation::Entry {
                                    parent,
                                    name: c.to_string(),
                                });
                            }
                            match known {
                                Some(ino) => parent = ino,
                                None => {
                                    complete = false;
                                    break;
                                }
                            }
                        }
                        if complete {
                            out.push(Invalidation::Entry {
                                parent,
                                name: name.to_string(),
                            });
                        }
                    }
                    if let Some(info) = view.asset(*asset) {
                        if let Some(v) = &info.version {
                            self.chunks.forget_object(&v.object);
                        }
                    }
                }
            }
        }
        out
    }

    /// Cached pages of every view of these assets (sent before a change is applied), also
    /// through the inodes of drafts saved over them.
    pub fn pages_of(&self, assets: Option<&[AssetId]>) -> Vec<Invalidation> {
        let Some(list) = assets else {
            let files: Vec<(Ino, AssetId)> = self.inodes().files().collect();
            return files
                .into_iter()
                .map(|(ino, _)| Invalidation::Inode { ino })
                .collect();
        };
        // each asset's own inodes, and those of the drafts saved over it
        let mut all: Vec<AssetId> = Vec::with_capacity(list.len());
        for a in list {
            all.push(*a);
            all.extend(self.merged_into(*a));
        }
        all.sort_unstable();
        all.dedup();
        let inodes = self.inodes();
        all.iter()
            .flat_map(|a| inodes.files_of(*a))
            .map(|ino| Invalidation::Inode { ino })
            .collect()
    }

    /// Number of inodes the kernel may hold (for tests and logs).
    pub fn known_inodes(&self) -> usize {
        self.inodes().len()
    }
}
