//! The store directory: keyring, catalog and encrypted objects.
//!
//! ```text
//! store/
//!   keyring        master key, wrapped (crypto::keyring)
//!   catalog.db     SQLCipher database (catalog)
//!   objects/ab/…   one encrypted object per file version, named by random id
//!   intents/…      journals of objects being written outside a transaction (intents)
//!   running/…      who uses the store right now: pid and subcommand (running)
//!   queue/…        the mount's saves waiting for a busy catalog (`*.save`) and its journal of
//!                  new files not yet committed (`new-files.journal`); see vfs::queue
//!   daemon.lock    held by the one daemon serving the store
//! ```
//!
//! Objects are written to a `.tmp` file, fsynced and renamed into place, so an object file either
//! is complete or does not exist under its final name. Object I/O goes through this type only,
//! which keeps the door open for another backend (S3-compatible storage) later.

pub mod hash;
mod held;
pub mod intents;
pub mod private;
pub mod running;
mod writer;

pub use writer::ObjectWriter;

use crate::crypto::keyring::{Keyring, Unlock};
use crate::crypto::object::{Decryptor, Encryptor, ObjectId};
use crate::crypto::{labels, unwrap_key, wrap_key, Key};
use crate::error::{Error, IoContext, Result};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const KEYRING: &str = "keyring";
pub const CATALOG: &str = "catalog.db";
pub const OBJECTS: &str = "objects";
/// Held (flock) by the one daemon that serves the store; holds its pid and mountpoint.
pub const DAEMON_LOCK: &str = "daemon.lock";
/// Saves the daemon queued while the catalog was busy (see `vfs::queue`).
pub const QUEUE: &str = "queue";
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
    master: Key,
    wrap: Key,
    content: Key,
}

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
            wrap: master.derive(labels::DATA_KEY_WRAP),
            content: master.derive(labels::CONTENT_HASH),
            master,
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
        Ok(Store::with_master(root, master))
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

    fn object_path(&self, id: &ObjectId) -> PathBuf {
        let hex = id.hex();
        self.root.join(OBJECTS).join(&hex[..2]).join(&hex[2..])
    }

    /// The 512-byte blocks an object's file takes on disk (one `stat`, no read): a sparse
    /// object's holes take none. `None` if it cannot be looked at.
    pub fn object_blocks(&self, id: &ObjectId) -> Option<u64> {
        crate::caller::as_daemon(|| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(self.object_path(id))
                .ok()
                .map(|m| m.blocks())
        })
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
            let dir = final_path.parent().expect("object paths have a parent");
            private::create_dir_all(dir)?;
            let tmp = final_path.with_extension("tmp");
            let written = (|| -> Result<NewObject> {
                let file = private::create_file(&tmp, false)?;
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
                    Ok((hash, size))
                })?;
                std::fs::rename(&tmp, &final_path).at("rename object", &final_path)?;
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
    ) -> Result<Decryptor<File>> {
        crate::caller::as_daemon(|| {
            let key = unwrap_key(&self.wrap, &id.0, wrapped_key).ok_or_else(|| {
                Error::integrity(label, "its data key does not unwrap (catalog tampered?)")
            })?;
            let path = self.object_path(id);
            let file = File::open(&path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Error::integrity(label, "its object file is missing")
                } else {
                    Error::io(format!("cannot open the object of {label}"), e)
                }
            })?;
            Decryptor::open(id, &key, file, size, label)
        })
    }

    /// Remove an object file (used to undo a failed command and to collect orphans).
    pub fn remove_object(&self, id: &ObjectId) -> Result<()> {
        crate::caller::as_daemon(|| {
            let p = self.object_path(id);
            match std::fs::remove_file(&p) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io_path("remove", &p, e)),
            }
        })
    }

    /// Remove an object's file and its unfinished `.tmp`, if any; true if one was there.
    pub fn remove_object_files(&self, id: &ObjectId) -> Result<bool> {
        crate::caller::as_daemon(|| {
            let p = self.object_path(id);
            let mut found = false;
            for path in [p.with_extension("tmp"), p] {
                match std::fs::remove_file(&path) {
                    Ok(()) => found = true,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io_path("remove", &path, e)),
                }
            }
            Ok(found)
        })
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
    pub fn collect_orphans(
        &self,
        known: impl FnOnce() -> Result<std::collections::HashSet<String>>,
    ) -> Result<usize> {
        crate::caller::as_daemon(|| {
            let dir = self.root.join(OBJECTS);
            let mut listed = Vec::new();
            for sub in std::fs::read_dir(&dir).at("read", &dir)? {
                let sub = sub.at("read", &dir)?;
                if !sub.path().is_dir() {
                    continue;
                }
                let prefix = sub.file_name().to_string_lossy().into_owned();
                for f in std::fs::read_dir(sub.path()).at("read", sub.path())? {
                    let f = f.at("read", sub.path())?;
                    let name = f.file_name().to_string_lossy().into_owned();
                    listed.push((format!("{prefix}{name}"), f.path()));
                }
            }
            let live = intents::live_ids(self)?;
            let known = known()?;
            let mut removed = 0;
            for (name, path) in listed {
                let (id, tmp) = match name.strip_suffix(".tmp") {
                    Some(id) => (id, true),
                    None => (name.as_str(), false),
                };
                if live.contains(id) || (!tmp && known.contains(id)) {
                    continue;
                }
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io_path("remove", &path, e)),
                }
            }
            Ok(removed)
        })
    }

    /// The ids of all complete objects on disk.
    pub fn list_objects(&self) -> Result<Vec<ObjectId>> {
        crate::caller::as_daemon(|| {
            let mut ids = Vec::new();
            let dir = self.root.join(OBJECTS);
            for sub in std::fs::read_dir(&dir).at("read", &dir)? {
                let sub = sub.at("read", &dir)?;
                let prefix = sub.file_name().to_string_lossy().into_owned();
                if !sub.path().is_dir() {
                    continue;
                }
                for f in std::fs::read_dir(sub.path()).at("read", sub.path())? {
                    let f = f.at("read", sub.path())?;
                    let name = f.file_name().to_string_lossy().into_owned();
                    if let Some(id) = ObjectId::parse(&format!("{prefix}{name}")) {
                        ids.push(id);
                    }
                }
            }
            Ok(ids)
        })
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at("sync", dir)
}
