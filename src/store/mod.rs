//! The store directory: keyring, catalog and encrypted objects.
//!
//! ```text
//! store/
//!   keyring        master key, wrapped (crypto::keyring)
//!   catalog.db     SQLCipher database (catalog)
//!   objects/ab/…   one encrypted object per file version, named by random id (with
//!                  `init --objects`: only objects being written; see `location`)
//!   objects.url    where the objects are, when not in `objects/` (`location`)
//!   cache/…        blocks of objects from a bucket, still encrypted (`block_cache`)
//!   intents/…      journals of objects being written outside a transaction (intents)
//!   running/…      who uses the store right now: pid and subcommand (running)
//!   queue/…        the mount's saves waiting for a busy catalog (`*.save`) and its journal of
//!                  new files not yet committed (`new-files.journal`); see vfs::queue
//!   daemon.lock    held by the one daemon serving the store
//! ```
//!
//! Objects are written to a `.tmp` file, fsynced and renamed into place, so an object file either
//! is complete or does not exist under its final name. Object I/O goes through this type only:
//! for a store whose objects are in a bucket (`remote`), the sealed file is uploaded instead of
//! renamed, and reads fetch ranges through a local cache of encrypted blocks.

pub mod block_cache;
pub mod hash;
mod held;
pub mod intents;
pub mod location;
pub mod private;
pub mod remote;
pub mod running;
mod writer;

pub use location::Location;
pub use writer::ObjectWriter;

use location::Objects;

use crate::crypto::keyring::{Keyring, Unlock};
use crate::crypto::object::{Decryptor, Encryptor, ObjectId};
use crate::crypto::{labels, unwrap_key, wrap_key, Key};
use crate::error::{Error, IoContext, Result};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const KEYRING: &str = "keyring";
pub const CATALOG: &str = "catalog.db";
/// Beside the catalog: shared locks of commands waiting for its write lock (`catalog::waiters`).
pub const CATALOG_WAITERS: &str = "catalog.db-waiters";
pub const OBJECTS: &str = "objects";
/// Held (flock) by the one daemon that serves the store; holds its pid and mountpoint.
pub const DAEMON_LOCK: &str = "daemon.lock";
/// Saves the daemon queued while the catalog was busy (see `vfs::queue`).
pub const QUEUE: &str = "queue";
/// In a team library's replica folder: the library's PostgreSQL URL (see `catalog::team`).
pub const TEAM_URL: &str = "team.url";
/// Why the mount of a team library does not serve photos now (see `daemon::follow`), for
/// `status`; absent while it serves.
pub const NOT_SERVING: &str = "not-serving";
/// The largest file the store holds (64 GiB). Holes cost nothing, but a size is a promise that
/// the file can be filled, and `truncate -s 999999999999999` is more likely a typo than a plan:
/// larger sizes fail with EFBIG ("File too large"), as on a file system with a size limit.
pub const MAX_FILE_SIZE: u64 = 64 << 30;

/// The error for a file that would grow past [`MAX_FILE_SIZE`] (EFBIG in the mount).
pub fn too_large(size: u64) -> Error {
    Error::io(
        format!(
            "a file of {size} bytes is larger than the store allows ({} GiB)",
            MAX_FILE_SIZE >> 30
        ),
        std::io::Error::from_raw_os_error(libc::EFBIG),
    )
}

/// An opened store: its location and the keys derived from its master key. (A clone holds
/// copies of the keys, wiped when it is dropped: the daemon gives one to each command it runs
/// for a client of its socket.)
#[derive(Clone)]
pub struct Store {
    root: PathBuf,
    objects: Objects,
    master: Key,
    wrap: Key,
    content: Key,
    /// `st_blocks` of the objects looked at (see [`Store::object_blocks`]). An object's file
    /// does not change once it has its name, and every getattr of a file asks for its
    /// object's: four `stat`s per file of a `tar x` without this. At most [`BLOCKS_KEPT`]; shared
    /// by a store's clones, so that a removal through any of them forgets it.
    blocks: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<ObjectId, u64>>>,
}

/// Objects whose `st_blocks` [`Store::object_blocks`] keeps; all are forgotten when more come.
const BLOCKS_KEPT: usize = 65_536;

/// What [`Store::put`] wrote: everything the catalog must remember to read it back.
#[derive(Debug, Clone)]
pub struct NewObject {
    pub id: ObjectId,
    pub wrapped_key: Vec<u8>,
    pub size: u64,
    /// Keyed hash of the plaintext (HMAC-SHA256 under a key derived from the master key), used
    /// to recognise duplicates without keeping a plain hash that would confirm a known photo.
    pub content_hash: [u8; 32],
}

impl Store {
    pub(crate) fn with_master(root: &Path, master: Key) -> Store {
        Store {
            root: root.to_path_buf(),
            objects: Objects::Dir(root.join(OBJECTS)),
            wrap: master.derive(labels::DATA_KEY_WRAP),
            content: master.derive(labels::CONTENT_HASH),
            master,
            blocks: Default::default(),
        }
    }

    // `Store::init`, which creates a store with its catalog, is in `crate::domain::new_store`:
    // the store sits below the catalog and does not use it.

    /// Open an existing store; fails clearly when `root` is not one or the key is wrong.
    pub fn open(root: &Path, unlock: &Unlock) -> Result<Store> {
        let ring_path = root.join(KEYRING);
        if !root.is_dir() {
            return Err(Error::invalid(format!(
                "store {} does not exist; create it with `consentfs --store {} init`",
                root.display(),
                root.display()
            )));
        }
        if !ring_path.exists() {
            return Err(Error::invalid(format!(
                "{} is not a consentfs store (it has no keyring); create one with `consentfs init` or check --store",
                root.display()
            )));
        }
        private::check(root)?;
        let ring = Keyring::load(&ring_path)?;
        let master = ring.unlock(unlock)?;
        let mut store = Store::with_master(root, master);
        store.objects = Objects::open(root, &Location::recorded(root)?)?;
        Ok(store)
    }

    /// Where this store keeps its objects (recorded by `init --objects`).
    pub fn objects_at(&self) -> Location {
        match &self.objects {
            Objects::Dir(d) if *d == self.root.join(OBJECTS) => Location::Own,
            Objects::Dir(d) => Location::Folder(d.clone()),
            Objects::Remote { remote, .. } => {
                Location::parse(remote.url()).unwrap_or(Location::Own)
            }
        }
    }

    /// Whether others may read this store's object files by name: a bucket or a folder that
    /// is not the store's own (a team's objects, an NFS share). Then a file is never removed
    /// under a reader the moment its object is superseded (see
    /// [`crate::catalog::assets::SUPERSEDED_GRACE`]).
    pub fn objects_shared(&self) -> bool {
        match &self.objects {
            Objects::Dir(d) => *d != self.root.join(OBJECTS),
            Objects::Remote { .. } => true,
        }
    }

    /// Use `at` for this store's objects (a store being created, before it holds any).
    pub(crate) fn set_objects(&mut self, at: &Location) -> Result<()> {
        self.objects = Objects::open(&self.root, at)?;
        private::create_dir_all(self.objects.dir())
    }

    /// Refuse `--objects` naming another place than the store recorded.
    pub fn check_objects_flag(&self, given: Option<&str>) -> Result<()> {
        let Some(given) = given.filter(|g| !g.is_empty()) else {
            return Ok(());
        };
        let given = Location::parse(given)?;
        let recorded = self.objects_at();
        if given != recorded {
            let where_ = match &recorded {
                Location::Own => format!("in its own folder {}", self.root.join(OBJECTS).display()),
                other => format!("in {}", other.url()),
            };
            return Err(Error::invalid(format!(
                "--objects {} does not match this store: it keeps its objects {where_} (set at `init`); drop --objects or CONSENTFS_OBJECTS",
                given.url()
            )));
        }
        Ok(())
    }

    /// Become the one daemon of this store: an exclusive `flock` on `daemon.lock`, held until
    /// the returned file is dropped (also released when the process dies, even by SIGKILL).
    /// A second daemon is refused with the pid and mountpoint of the running one, so it can
    /// never mistake the first one's saves in progress for orphans and remove them.
    pub fn lock_for_daemon(&self, mountpoint: &Path) -> Result<File> {
        use std::io::{Seek, Write};
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.root.join(DAEMON_LOCK);
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(private::FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .at("open", &path)?;
        if let Err(e) = f.try_lock() {
            if let std::fs::TryLockError::Error(e) = e {
                return Err(Error::io_path("lock", &path, e));
            }
            let mut holder = String::new();
            let _ = (&f).take(4096).read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(Error::invalid(format!(
                "store {} is already served by another consentfs daemon ({}); one daemon per store: stop that one first",
                self.root.display(),
                if holder.is_empty() { "pid unknown" } else { holder }
            )));
        }
        let canon = std::fs::canonicalize(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
        f.set_len(0).at("write", &path)?;
        f.rewind().at("write", &path)?;
        writeln!(
            f,
            "pid {}, mounted at {}",
            std::process::id(),
            canon.display()
        )
        .at("write", &path)?;
        Ok(f)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The master key, to wrap it anew when a way of unlocking the store changes
    /// (`maintenance::keys`); nothing else needs it.
    pub(crate) fn master_key(&self) -> &Key {
        &self.master
    }

    /// A stable public name of this store (derived from its master key, reveals nothing of
    /// it): names the store's rollback anchor.
    pub fn id(&self) -> String {
        hex::encode(&self.master.derive(crate::crypto::labels::STORE_ID).bytes()[..16])
    }

    pub fn catalog_path(&self) -> PathBuf {
        self.root.join(CATALOG)
    }

    pub fn catalog_key(&self) -> Key {
        self.master.derive(labels::CATALOG)
    }

    pub fn audit_key(&self) -> Key {
        self.master.derive(labels::AUDIT)
    }

    /// Seals the records of saves queued while the catalog was busy (`vfs::queue`).
    pub fn queue_key(&self) -> Key {
        self.master.derive(labels::SAVE_QUEUE)
    }

    pub fn manifest_key(&self) -> Key {
        self.master.derive(labels::MANIFEST)
    }

    /// Where object `id` is written (its `.tmp`) and, in a folder, kept.
    fn object_path(&self, id: &ObjectId) -> PathBuf {
        let hex = id.hex();
        self.objects.dir().join(&hex[..2]).join(&hex[2..])
    }

    /// Whether objects are files in a folder on this machine (not in an object store).
    pub fn keeps_objects_here(&self) -> bool {
        matches!(self.objects, Objects::Dir(_))
    }

    /// The folder on this machine where objects are written (and kept, unless in a bucket).
    pub fn objects_dir(&self) -> &Path {
        self.objects.dir()
    }

    /// Make the sealed and fsynced file `tmp` (open as `file`) object `id`: renamed into place
    /// in a folder; uploaded, then removed, for a bucket. After this the object never changes.
    fn publish(&self, id: &ObjectId, tmp: &Path, file: &File) -> Result<()> {
        match &self.objects {
            Objects::Dir(_) => {
                let to = self.object_path(id);
                std::fs::rename(tmp, &to).at("rename object", &to)
            }
            Objects::Remote { remote, .. } => {
                let len = file.metadata().at("read", tmp)?.len();
                remote.upload(id, file, len)?;
                match std::fs::remove_file(tmp) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(Error::io_path("remove", tmp, e))
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    /// The 512-byte blocks an object's file takes on disk (one `stat`, no read, the first time;
    /// kept after it, until [`Store::remove_object_files`]): a sparse object's holes take none.
    /// `None` if it cannot be looked at.
    pub fn object_blocks(&self, id: &ObjectId) -> Option<u64> {
        if let Objects::Remote { .. } = self.objects {
            return None; // not on this machine's disk
        }
        let kept = self
            .blocks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .copied();
        if kept.is_some() {
            return kept;
        }
        let n = crate::caller::as_daemon(|| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(self.object_path(id))
                .ok()
                .map(|m| m.blocks())
        })?;
        let mut blocks = self.blocks.lock().unwrap_or_else(|p| p.into_inner());
        if blocks.len() >= BLOCKS_KEPT {
            blocks.clear();
        }
        blocks.insert(*id, n);
        Some(n)
    }

    /// Encrypt everything `src` yields into a new object (fsynced, then renamed into place).
    /// Only for writers the orphan sweep cannot mistake: inside a catalog transaction, or the
    /// daemon's; a command writing outside a transaction announces the object first with
    /// [`intents::Journal::put`].
    pub fn put(&self, src: &mut dyn Read) -> Result<NewObject> {
        self.put_as(ObjectId::random(), src)
    }

    /// [`Store::put`] under an id chosen (and announced) by the caller.
    pub(crate) fn put_as(&self, id: ObjectId, src: &mut dyn Read) -> Result<NewObject> {
        crate::caller::as_daemon(|| {
            let data_key = Key::random();
            let final_path = self.object_path(&id);
            let tmp = final_path.with_extension("tmp");
            let written = (|| -> Result<NewObject> {
                // readable too: an object for a bucket is uploaded from this file
                let file = private::create_file_in_new_dir(&tmp, true)?;
                let mut enc = Encryptor::new(&id, &data_key, file).at("write object", &tmp)?;
                // The keyed content hash runs on a second thread so that hashing and encryption
                // overlap; the blocks it gets are zeroized when dropped.
                let (hash, size) = std::thread::scope(|scope| -> Result<([u8; 32], u64)> {
                    let (send, recv) =
                        std::sync::mpsc::sync_channel::<zeroize::Zeroizing<Vec<u8>>>(4);
                    let hasher = scope.spawn(move || {
                        let mut h = hash::ContentHasher::new(&self.content);
                        for block in recv {
                            h.update(&block);
                        }
                        h.finalize()
                    });
                    let mut buf = zeroize::Zeroizing::new(vec![0u8; 256 << 10]);
                    loop {
                        let n = match src.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            Err(e) => return Err(Error::io("cannot read input", e)),
                        };
                        // if the hasher is gone the join below reports it
                        let _ = send.send(zeroize::Zeroizing::new(buf[..n].to_vec()));
                        enc.write(&buf[..n]).at("write object", &tmp)?;
                    }
                    drop(send);
                    let hash = hasher
                        .join()
                        .map_err(|_| Error::invalid("content hashing thread failed"))?;
                    let (out, size) = enc.finish().at("write object", &tmp)?;
                    out.sync_all().at("sync object", &tmp)?;
                    self.publish(&id, &tmp, &out)?;
                    Ok((hash, size))
                })?;
                Ok(NewObject {
                    id,
                    wrapped_key: wrap_key(&self.wrap, &id.0, &data_key)?,
                    size,
                    content_hash: hash,
                })
            })();
            if written.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            written
        })
    }

    /// A new object to be written with random access (through the mount).
    pub fn writer(&self) -> Result<ObjectWriter> {
        ObjectWriter::new(self)
    }

    fn content_key(&self) -> Key {
        self.content.clone()
    }

    /// The keyed content hash of `data` (same as [`NewObject::content_hash`]).
    pub fn content_hash_of(&self, src: &mut dyn Read) -> Result<[u8; 32]> {
        let mut h = hash::ContentHasher::new(&self.content);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => h.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("cannot read input", e)),
            }
        }
        Ok(h.finalize())
    }

    /// Open an object for random-access reads. `label` names it in integrity errors.
    pub fn open_object(
        &self,
        id: &ObjectId,
        wrapped_key: &[u8],
        size: u64,
        label: &str,
    ) -> Result<Decryptor<ObjectSource>> {
        crate::caller::as_daemon(|| {
            let key = unwrap_key(&self.wrap, &id.0, wrapped_key).ok_or_else(|| {
                Error::integrity(label, "its data key does not unwrap (catalog tampered?)")
            })?;
            let missing = || Error::integrity(label, "its object file is missing");
            let src = match &self.objects {
                Objects::Dir(_) => {
                    let path = self.object_path(id);
                    ObjectSource::File(File::open(&path).map_err(|e| {
                        if e.kind() == std::io::ErrorKind::NotFound {
                            missing()
                        } else {
                            Error::io(format!("cannot open the object of {label}"), e)
                        }
                    })?)
                }
                Objects::Remote { remote, .. } => {
                    ObjectSource::Remote(remote.open(id)?.ok_or_else(missing)?)
                }
            };
            Decryptor::open(id, &key, src, size, label)
        })
    }

    /// The stored (encrypted) bytes of object `id`, to copy them as they are (backups);
    /// `None` if there is no such object.
    pub fn stored_object(&self, id: &ObjectId) -> Result<Option<ObjectSource>> {
        crate::caller::as_daemon(|| match &self.objects {
            Objects::Dir(_) => {
                let path = self.object_path(id);
                match File::open(&path) {
                    Ok(f) => Ok(Some(ObjectSource::File(f))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io_path("open", &path, e)),
                }
            }
            Objects::Remote { remote, .. } => Ok(remote.open(id)?.map(ObjectSource::Remote)),
        })
    }

    /// Store `src`, object `id` as another store of the same master key holds it (still
    /// encrypted: nothing is decrypted on the way), as object `id` here: written to a private
    /// file, fsynced, then published like any new object. For moving a store's objects to
    /// where a team library keeps them (`migrate`).
    pub fn put_stored(&self, id: &ObjectId, src: &ObjectSource) -> Result<u64> {
        use crate::crypto::object::ReadAt;
        use std::io::Write;
        crate::caller::as_daemon(|| {
            let final_path = self.object_path(id);
            let dir = final_path.parent().expect("object paths have a parent");
            private::create_dir_all(dir)?;
            let tmp = final_path.with_extension("tmp");
            // a copy interrupted before is started again
            let _ = std::fs::remove_file(&tmp);
            let len = src.size().at("read", &final_path)?;
            let copied = (|| -> Result<()> {
                let mut file = private::create_file(&tmp, true)?;
                let mut buf = vec![0u8; 1 << 20];
                let mut at = 0u64;
                while at < len {
                    let want = buf.len().min((len - at) as usize);
                    let n = src
                        .read_at(&mut buf[..want], at)
                        .map_err(|e| Error::io(format!("cannot read object {}", id.hex()), e))?;
                    if n == 0 {
                        return Err(Error::integrity(
                            format!("object {}", id.hex()),
                            "it ended before its length",
                        ));
                    }
                    file.write_all(&buf[..n]).at("write", &tmp)?;
                    at += n as u64;
                }
                file.sync_all().at("sync", &tmp)?;
                self.publish(id, &tmp, &file)
            })();
            if copied.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            copied.map(|()| len)
        })
    }

    /// Remove an object (used to undo a failed command and to collect orphans).
    pub fn remove_object(&self, id: &ObjectId) -> Result<()> {
        self.remove_object_files(id).map(|_| ())
    }

    /// Remove an object and its unfinished `.tmp`, if any; true if one was there.
    pub fn remove_object_files(&self, id: &ObjectId) -> Result<bool> {
        self.blocks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        crate::caller::as_daemon(|| {
            let p = self.object_path(id);
            let mut found = false;
            let mut local = vec![p.with_extension("tmp")];
            match &self.objects {
                Objects::Dir(_) => local.push(p),
                Objects::Remote { remote, .. } => found |= remote.delete(id)?,
            }
            for path in local {
                match std::fs::remove_file(&path) {
                    Ok(()) => found = true,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io_path("remove", &path, e)),
                }
            }
            Ok(found)
        })
    }

    /// Every object (and unfinished `.tmp`) the store holds, as `ab/cdef…` names: the files
    /// of its folder, and for a bucket what is listed in it.
    pub fn list_object_names(&self) -> Result<Vec<ObjectName>> {
        crate::caller::as_daemon(|| {
            let mut out = Vec::new();
            let dir = self.objects.dir();
            for sub in std::fs::read_dir(dir).at("read", dir)? {
                let sub = sub.at("read", dir)?;
                let prefix = sub.file_name().to_string_lossy().into_owned();
                if !sub.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    out.push(ObjectName::new(prefix, None, false));
                    continue;
                }
                for f in std::fs::read_dir(sub.path()).at("read", sub.path())? {
                    let f = f.at("read", sub.path())?;
                    let name = f.file_name().to_string_lossy().into_owned();
                    out.push(ObjectName::new(prefix.clone(), Some(name), false));
                }
            }
            if let Objects::Remote { remote, .. } = &self.objects {
                for (name, size, when) in remote.list()? {
                    let (prefix, rest) = name.split_once('/').unwrap_or((name.as_str(), ""));
                    let rest = (!rest.is_empty()).then(|| rest.to_string());
                    let mut n = ObjectName::new(prefix.to_string(), rest, true);
                    n.listed = Some((size, when));
                    out.push(n);
                }
            }
            Ok(out)
        })
    }

    /// Whether the objects are in a bucket (uploads may land after their client died).
    pub fn objects_in_bucket(&self) -> bool {
        matches!(self.objects, Objects::Remote { .. })
    }

    /// Where the objects are, for messages: a folder's path or the bucket's URL.
    pub fn objects_shown(&self) -> String {
        match &self.objects {
            Objects::Dir(d) => d.display().to_string(),
            Objects::Remote { remote, .. } => remote.url().to_string(),
        }
    }

    /// Remove object files (and unfinished `.tmp` files) that nobody will ever record: not
    /// known to the catalog and not announced in a live command's intents journal. Only for
    /// the daemon's start, before it serves (its own saves are not journaled).
    ///
    /// The order is what makes it safe while commands run: the disk is listed first, then the
    /// live journals, and `known` (the catalog's objects) is read last. An object on disk at
    /// the listing was announced before it was created, so its journal is either still live
    /// when read (kept) or its command ended, after recording it (the catalog read later knows
    /// it) or after removing it. `known` should wait for a writer inside a transaction (take
    /// the write lock) so an object written within one is recorded or gone when it is read.
    /// Returns how many files were removed.
    ///
    /// `min_age`: spare files younger than this (a team library's shared objects, which a
    /// command on another machine may be writing and about to record: its journal is on that
    /// machine).
    pub fn collect_orphans(
        &self,
        known: impl FnOnce() -> Result<std::collections::HashSet<String>>,
        min_age: Option<std::time::Duration>,
    ) -> Result<usize> {
        crate::caller::as_daemon(|| {
            let listed = self.list_object_names()?;
            let live = intents::live_ids(self)?;
            let known = known()?;
            let mut removed = 0;
            for name in listed {
                let Some(id) = name.id else { continue };
                if live.contains(&id.hex()) || (!name.tmp && known.contains(&id.hex())) {
                    continue;
                }
                if let Some(age) = min_age {
                    let written = match name.listed {
                        Some((_, at)) => Some(at),
                        None => std::fs::symlink_metadata(self.objects.dir().join(&name.rel))
                            .and_then(|m| m.modified())
                            .ok(),
                    };
                    let young = written.is_none_or(|w| w.elapsed().map_or(true, |e| e < age));
                    if young {
                        continue;
                    }
                }
                if name.remote {
                    if let Objects::Remote { remote, .. } = &self.objects {
                        removed += usize::from(remote.delete(&id)?);
                    }
                    continue;
                }
                let path = self.objects.dir().join(&name.rel);
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io_path("remove", &path, e)),
                }
            }
            Ok(removed)
        })
    }

    /// The ids of all complete objects.
    pub fn list_objects(&self) -> Result<Vec<ObjectId>> {
        Ok(self
            .list_object_names()?
            .into_iter()
            .filter(|n| !n.tmp)
            .filter_map(|n| n.id)
            .collect())
    }
}

/// One entry of [`Store::list_object_names`].
#[derive(Debug, Clone)]
pub struct ObjectName {
    /// `ab/cdef…`, relative to the objects folder or the bucket's prefix (a stray file
    /// beside the `ab/` folders is just its name).
    pub rel: String,
    /// The object id the name spells, if it spells one.
    pub id: Option<ObjectId>,
    /// An object being written (`….tmp`).
    pub tmp: bool,
    /// Listed in the bucket, not in the local folder.
    pub remote: bool,
    /// For an object listed in a bucket: its size and when it was written.
    pub listed: Option<(u64, std::time::SystemTime)>,
}

impl ObjectName {
    fn new(prefix: String, name: Option<String>, remote: bool) -> ObjectName {
        let Some(name) = name else {
            return ObjectName {
                rel: prefix,
                id: None,
                tmp: false,
                remote,
                listed: None,
            };
        };
        let (stem, tmp) = match name.strip_suffix(".tmp") {
            Some(s) => (s, true),
            None => (name.as_str(), false),
        };
        ObjectName {
            id: ObjectId::parse(&format!("{prefix}{stem}")),
            rel: format!("{prefix}/{name}"),
            tmp,
            remote,
            listed: None,
        }
    }
}

/// Where an opened object's ciphertext is read from: its file, or its bucket through the
/// cache. A file keeps its one-`preadv` read of a chunk.
pub enum ObjectSource {
    File(File),
    Remote(remote::RemoteReader),
}

impl ObjectSource {
    /// Read from a file on this machine (not fetched from an object store).
    pub fn is_local(&self) -> bool {
        matches!(self, ObjectSource::File(_))
    }

    /// A second descriptor of this file, if it is on this machine and still has its name in
    /// the objects folder (one `fstat`: a removed or replaced object file has none left).
    pub fn duplicate_if_named(&self) -> Option<ObjectSource> {
        use std::os::unix::fs::MetadataExt;
        match self {
            ObjectSource::File(f) if f.metadata().is_ok_and(|m| m.nlink() > 0) => {
                f.try_clone().ok().map(ObjectSource::File)
            }
            _ => None,
        }
    }
}

impl crate::crypto::object::ReadAt for ObjectSource {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        match self {
            ObjectSource::File(f) => crate::crypto::object::ReadAt::read_at(f, buf, offset),
            ObjectSource::Remote(r) => r.read_at(buf, offset),
        }
    }
    fn size(&self) -> std::io::Result<u64> {
        match self {
            ObjectSource::File(f) => crate::crypto::object::ReadAt::size(f),
            ObjectSource::Remote(r) => r.size(),
        }
    }
    fn read_chunk_at(
        &self,
        nonce: &mut [u8],
        body: &mut [u8],
        tag: &mut [u8],
        offset: u64,
    ) -> std::io::Result<()> {
        match self {
            ObjectSource::File(f) => f.read_chunk_at(nonce, body, tag, offset),
            ObjectSource::Remote(r) => r.read_chunk_at(nonce, body, tag, offset),
        }
    }
    fn is_zero_at(&self, offset: u64, len: u64) -> std::io::Result<bool> {
        match self {
            ObjectSource::File(f) => f.is_zero_at(offset, len),
            ObjectSource::Remote(r) => r.is_zero_at(offset, len),
        }
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at("sync", dir)
}
