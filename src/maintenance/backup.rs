//! `consentfs backup DEST`: a consistent, still-encrypted copy of the store, made while it is
//! mounted and in use, that is itself a store (copy it back and mount it).
//!
//! What makes it consistent: the catalog is copied with SQLite's online backup in one read
//! transaction, so the copy is one committed state; objects are immutable and written (and
//! fsynced, and renamed into place) before the catalog row that names them commits, so every
//! object that state needs exists once it is copied. The one thing that can change under the
//! copy is an object being shredded (a trash purge, thinning, an erasure) after the catalog
//! was copied: its file may be gone by the time it is copied. The shred is committed before
//! the file is removed, so a fresh catalog copy no longer needs it: the backup then copies the
//! catalog again (objects already copied stay) until every object its copy needs is there. The
//! mount does this all the time (two saves of one file a moment apart make one version, and
//! the first save's object is shredded), so after a few rounds the backup takes the catalog's
//! write lock for its last one, just long enough to start a read snapshot, list the objects it
//! needs and open the files of the new ones (an open file survives its removal): then writers
//! go on and the backup copies from the snapshot and the open files, so it always completes.
//! (see `pinned_round`).
//!
//! What makes it safe to interrupt: objects are copied to `….tmp` and renamed; the catalog
//! copy is written as `catalog.db.partial` and renamed onto `catalog.db` only after every
//! object it needs is in DEST and fsynced; the marker `backup.json` comes last. So DEST always
//! holds the last complete backup, or the new one.
//!
//! Incremental: an object already in DEST (same name, same length) is not copied again, since
//! committed objects never change. After the new catalog is in place, object files it no
//! longer needs (shredded or removed since the last run) are removed from DEST; these are
//! files a previous run copied there (object-named files below `DEST/objects/`), nothing else
//! in DEST is touched.
//!
//! Encryption stays as it is: objects are copied byte for byte (holes stay holes), the catalog
//! copy is encrypted by SQLCipher under the same key, and the keyring is copied as it is. So
//! the backup opens with the store's passphrase or key file as of the backup.

use super::Progress;
use crate::catalog::{maintenance, Catalog};
use crate::crypto::object::ObjectId;
use crate::error::{Error, IoContext, Result};
use crate::policy::Time;
use crate::store::remote::RemoteReader;
use crate::store::{private, ObjectSource, Store, CATALOG, KEYRING, OBJECTS};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// The marker that makes a folder a backup of one store (see FORMAT.md).
pub const MARKER: &str = "backup.json";
pub const MARKER_FORMAT: &str = "consentfs-backup/1";
/// The catalog copy while it is being made.
const PARTIAL: &str = "catalog.db.partial";
/// How often the catalog is copied when objects vanish under the copy (shredded); the last
/// time from a snapshot taken under the catalog's write lock (`pinned_round`).
pub const ATTEMPTS: usize = 4;

/// `backup.json`: which store DEST backs up, and the state it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Marker {
    pub format: String,
    /// The store's public id (as for the rollback anchor): a backup of another store is
    /// never overwritten.
    pub store: String,
    pub made_at: Time,
    /// The newest audit entry in the catalog copy: the state the backup holds.
    pub audit_seq: i64,
    pub objects: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub dest: PathBuf,
    /// Objects the catalog copy needs, and how many of them this run copied (the others
    /// were there from an earlier run).
    pub objects: u64,
    pub copied: u64,
    pub copied_bytes: u64,
    /// Object files an earlier run copied that the catalog no longer needs, removed.
    pub removed: u64,
    pub catalog_bytes: u64,
    /// How many times the catalog was copied (more than once when objects were shredded under
    /// the copy; the last of [`ATTEMPTS`] from a snapshot taken under the write lock).
    pub catalog_copies: usize,
    /// The newest audit entry in the copy.
    pub audit_seq: i64,
    /// Objects the catalog needs but the store does not have (damage: run `consentfs check`);
    /// the backup is made without them.
    pub missing: Vec<String>,
    pub seconds: f64,
}

/// Make or bring up to date the backup of `store` in `dest` (see the module doc), and record
/// it in the audit log.
pub fn run(
    store: &Store,
    catalog: &mut Catalog,
    actor: &str,
    now: Time,
    dest: &Path,
    progress: &dyn Progress,
) -> Result<Summary> {
    let started = std::time::Instant::now();
    refuse_inside(store, dest)?;
    let dest = prepare(store, dest)?;
    // one backup into a DEST at a time: a second waits for nothing and says so
    let dir = File::open(&dest).at("open", &dest)?;
    if let Err(std::fs::TryLockError::WouldBlock) = dir.try_lock() {
        return Err(Error::invalid(format!(
            "another backup into {} is running; wait for it to finish",
            dest.display()
        )));
    }
    claim(store, &dest, now)?;
    let partial = dest.join(PARTIAL);
    let mut have = objects_in(&dest)?;
    let mut missing: Vec<String> = Vec::new();
    let (mut copied, mut copied_bytes) = (0u64, 0u64);
    let mut needed: Vec<(String, u64)> = Vec::new();
    progress.start(0);
    let mut catalog_copies = 0;
    for attempt in 1..=ATTEMPTS {
        catalog_copies = attempt;
        // files whose close already returned are in the mount's new-file journal until its
        // shared transaction commits (10 ms): let them reach the catalog before the snapshot,
        // or a file saved before the backup started could be missing from it
        crate::vfs::queue::wait_for_new_files(store, std::time::Duration::from_secs(2));
        for p in [PARTIAL, "catalog.db.partial-wal", "catalog.db.partial-shm"] {
            remove_if_there(&dest.join(p))?;
        }
        if attempt == ATTEMPTS {
            log::info!("objects were shredded during the backup: pinning the rest under the catalog's write lock");
            let pinned = pinned_round(
                store,
                catalog,
                &dest,
                &partial,
                &have,
                &mut missing,
                progress,
            )?;
            needed = pinned.needed;
            copied += pinned.copied;
            copied_bytes += pinned.bytes;
            break;
        }
        maintenance::backup_into(catalog.conn(), &partial, &store.catalog_key())?;
        needed = needed_by(&partial, store)?;
        let todo: Vec<&(String, u64)> = needed
            .iter()
            .filter(|(id, _)| !have.contains(id) && !missing.contains(id))
            .collect();
        progress.start(todo.iter().map(|(_, n)| *n).sum::<u64>() + copied_bytes);
        let mut vanished = false;
        for (id, _) in todo {
            match open_object(store, id)? {
                Some(src) => {
                    copied_bytes += copy_object(src, &dest, id, progress)?;
                    copied += 1;
                    have.insert(id.clone());
                }
                None => {
                    // shredded since the copy (a fresh copy does not need it), or damage
                    match maintenance::object(catalog.conn(), id)? {
                        Some(row) if row.wrapped_key.is_some() => missing.push(id.clone()),
                        _ => vanished = true,
                    }
                }
            }
        }
        if !vanished {
            break;
        }
    }
    progress.finish();
    sync_objects(&dest)?;
    // the keyring as it is now (written once per change, replaced by rename)
    let ring = std::fs::read(store.root().join(KEYRING)).at("read", store.root().join(KEYRING))?;
    write_replace(&dest, KEYRING, &ring)?;
    // a write-ahead log of an older catalog must not be applied to the new one
    for side in ["catalog.db-wal", "catalog.db-shm"] {
        remove_if_there(&dest.join(side))?;
    }
    for side in ["catalog.db.partial-wal", "catalog.db.partial-shm"] {
        remove_if_there(&dest.join(side))?;
    }
    std::fs::rename(&partial, dest.join(CATALOG)).at("rename", dest.join(CATALOG))?;
    let catalog_bytes = std::fs::metadata(dest.join(CATALOG))
        .map(|m| m.len())
        .unwrap_or(0);
    let audit_seq = {
        let conn = open_copy(&dest.join(CATALOG), store)?;
        maintenance::last_change(&conn)?.map_or(0, |l| l.seq)
    };
    write_marker(
        &dest,
        &Marker {
            format: MARKER_FORMAT.into(),
            store: store.id(),
            made_at: now,
            audit_seq,
            objects: needed.len() as u64,
        },
    )?;
    sync_dir(&dest)?;
    // only now that the new state is complete: files of objects it no longer needs
    let keep: HashSet<&str> = needed.iter().map(|(id, _)| id.as_str()).collect();
    let mut removed = 0u64;
    for id in have.iter().filter(|id| !keep.contains(id.as_str())) {
        let p = object_path(&dest, id);
        match std::fs::remove_file(&p) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io_path("remove", &p, e)),
        }
    }
    let tx = catalog.begin(actor, now)?;
    tx.audit(
        "store.backup",
        serde_json::json!({
            "audit_seq": audit_seq,
            "objects": needed.len(),
            "copied": copied,
            "removed": removed,
            "missing": missing.len(),
        }),
    )?;
    tx.commit()?;
    Ok(Summary {
        dest,
        objects: needed.len() as u64,
        copied,
        copied_bytes,
        removed,
        catalog_bytes,
        catalog_copies,
        audit_seq,
        missing,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `path` made absolute with its existing part resolved (symlinks followed), so that it can be
/// compared with the store and the mountpoints.
pub(crate) fn resolved(path: &Path) -> Result<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io("cannot read the current directory", e))?
            .join(path)
    };
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = std::fs::canonicalize(existing) {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return Ok(out);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return Ok(abs),
        }
    }
}

/// Refuse a DEST inside the store (the backup would copy itself, and the store would hold
/// files it does not know) or inside a consentfs mount (the copy would go back into the store
/// through the mount, decrypted views and all).
fn refuse_inside(store: &Store, dest: &Path) -> Result<()> {
    let d = resolved(dest)?;
    let root = std::fs::canonicalize(store.root()).at("resolve", store.root())?;
    if d.starts_with(&root) {
        return Err(Error::invalid(format!(
            "{} is inside the store {}; give a backup folder outside it (another disk, ideally)",
            dest.display(),
            root.display()
        )));
    }
    let mut points: Vec<PathBuf> = crate::mountinfo::mounts()
        .into_iter()
        .filter(|m| m.is_consentfs())
        .map(|m| m.point)
        .collect();
    if let Some(d) = super::status::daemon(store.root()) {
        points.push(d.mountpoint);
    }
    for p in points.iter().filter(|p| !p.as_os_str().is_empty()) {
        if d.starts_with(p) {
            return Err(Error::invalid(format!(
                "{} is inside the consentfs mount {}; give a backup folder outside it",
                dest.display(),
                p.display()
            )));
        }
    }
    Ok(())
}

/// Create DEST (0700) or check that it is empty or a backup of this store; returns its path.
fn prepare(store: &Store, dest: &Path) -> Result<PathBuf> {
    match std::fs::symlink_metadata(dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            private::create_dir_all(dest)?;
            return Ok(dest.to_path_buf());
        }
        Err(e) => return Err(Error::io_path("read", dest, e)),
        Ok(md) if !md.is_dir() => {
            return Err(Error::invalid(format!(
                "{} exists and is not a folder; give a new or empty folder, or an earlier backup of this store",
                dest.display()
            )))
        }
        Ok(_) => {}
    }
    let marker = dest.join(MARKER);
    if marker.exists() {
        let text = std::fs::read_to_string(&marker).at("read", &marker)?;
        let m: Marker = serde_json::from_str(&text).map_err(|e| {
            Error::invalid(format!(
                "{} is not a consentfs backup marker ({e}); give another folder",
                marker.display()
            ))
        })?;
        if m.format != MARKER_FORMAT || m.store != store.id() {
            return Err(Error::invalid(format!(
                "{} holds a backup of another store; give another folder (a backup is never overwritten by another store's)",
                dest.display()
            )));
        }
        return Ok(dest.to_path_buf());
    } else if std::fs::read_dir(dest).at("read", dest)?.next().is_some() {
        return Err(Error::invalid(format!(
            "{} is not empty and not a backup of this store; give a new or empty folder",
            dest.display()
        )));
    }
    // an empty folder someone made may have any mode: the backup is as private as the store
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(private::DIR_MODE))
        .at("chmod", dest)?;
    Ok(dest.to_path_buf())
}

/// Claim a new DEST for this store before anything else is written into it, so that a run
/// interrupted before it finished is taken up by the next one (not refused as a folder that is
/// "not empty"). `audit_seq` 0: no complete backup yet.
fn claim(store: &Store, dest: &Path, now: Time) -> Result<()> {
    if dest.join(MARKER).exists() {
        return Ok(());
    }
    write_marker(
        dest,
        &Marker {
            format: MARKER_FORMAT.into(),
            store: store.id(),
            made_at: now,
            audit_seq: 0,
            objects: 0,
        },
    )
}

fn write_marker(dest: &Path, m: &Marker) -> Result<()> {
    let text = serde_json::to_vec_pretty(m)
        .map_err(|e| Error::invalid(format!("cannot write {MARKER}: {e}")))?;
    write_replace(dest, MARKER, &text)
}

fn open_copy(path: &Path, store: &Store) -> Result<rusqlite::Connection> {
    // read-write although only read: the last connection to close a catalog in WAL mode
    // removes its -wal and -shm files only if it may write
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let hexkey =
        zeroize::Zeroizing::new(format!("x'{}'", hex::encode(store.catalog_key().bytes())));
    conn.pragma_update(None, "key", hexkey.as_str())?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

/// The objects (hex id, file length in the store) the catalog copy at `path` needs.
fn needed_by(path: &Path, store: &Store) -> Result<Vec<(String, u64)>> {
    let conn = open_copy(path, store)?;
    let ids = maintenance::live_objects(&conn)?;
    Ok(ids)
}

fn object_path(root: &Path, id: &str) -> PathBuf {
    root.join(OBJECTS).join(&id[..2]).join(&id[2..])
}

/// Object files in DEST from earlier runs (complete ones; unfinished `.tmp` files of an
/// interrupted run are removed).
fn objects_in(dest: &Path) -> Result<HashSet<String>> {
    let dir = dest.join(OBJECTS);
    let mut out = HashSet::new();
    let subs = match std::fs::read_dir(&dir) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io_path("read", &dir, e)),
    };
    for sub in subs {
        let sub = sub.at("read", &dir)?;
        if !sub.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let prefix = sub.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(sub.path()).at("read", sub.path())? {
            let f = f.at("read", sub.path())?;
            let name = f.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".tmp") {
                if ObjectId::parse(&format!("{prefix}{stem}")).is_some() {
                    let _ = std::fs::remove_file(f.path());
                }
                continue;
            }
            if let Some(id) = ObjectId::parse(&format!("{prefix}{name}")) {
                out.insert(id.hex());
            }
        }
    }
    Ok(out)
}

/// The stored bytes of object `id` (its file, or its object in the bucket); `None` if the
/// store has no such object.
fn open_object(store: &Store, id: &str) -> Result<Option<ObjectSource>> {
    let Some(oid) = ObjectId::parse(id) else {
        return Ok(None);
    };
    store.stored_object(&oid)
}

/// Copy the opened object `src` into DEST as object `id` (a file's holes stay holes); its
/// length. DEST keeps its objects in its own folder, whatever the store does: a backup is a
/// store that opens on its own.
fn copy_object(src: ObjectSource, dest: &Path, id: &str, progress: &dyn Progress) -> Result<u64> {
    use crate::crypto::object::ReadAt;
    let from = PathBuf::from(format!("object {id}"));
    let len = src.size().at("read", &from)?;
    let to = object_path(dest, id);
    let dir = to.parent().expect("object paths have a parent");
    private::create_dir_all(dir)?;
    let tmp = to.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let out = private::create_file(&tmp, false)?;
    let done = (|| -> Result<()> {
        match &src {
            ObjectSource::File(f) => copy_sparse(f, &out, len, progress).at("copy", &from)?,
            ObjectSource::Remote(r) => copy_whole(r, &out, len, progress).at("copy", &from)?,
        }
        out.sync_all().at("sync", &tmp)?;
        std::fs::rename(&tmp, &to).at("rename", &to)
    })();
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done.map(|()| len)
}

/// What the last round copied.
struct Pinned {
    needed: Vec<(String, u64)>,
    copied: u64,
    bytes: u64,
}

/// More than this many new objects in the last round are copied while the write lock is held
/// rather than kept open (a process may hold 1,024 files open by default).
const PIN_MAX: usize = 512;

/// The last round: with the catalog's write lock held (on a second connection), start a read
/// transaction (so its snapshot is the current state, which no shred can change while the lock
/// is held), list the objects that state needs, and open the files of those DEST lacks: an open
/// file stays readable when a shred removes it later. Then let writers go on, and copy the
/// catalog from the snapshot and the objects from the open files. Writers wait for the listing
/// and the opens only, not for the copies.
fn pinned_round(
    store: &Store,
    catalog: &mut Catalog,
    dest: &Path,
    partial: &Path,
    have: &HashSet<String>,
    missing: &mut Vec<String>,
    progress: &dyn Progress,
) -> Result<Pinned> {
    let lock = Catalog::open(
        &store.catalog_path(),
        &store.catalog_key(),
        store.audit_key(),
    )?;
    lock.conn().execute_batch("BEGIN IMMEDIATE")?;
    let conn = catalog.conn();
    let mut lock = Some(lock);
    let release = |lock: &mut Option<Catalog>| {
        if let Some(c) = lock.take() {
            let _ = c.conn().execute_batch("ROLLBACK");
        }
    };
    if let Err(e) = conn.execute_batch("BEGIN DEFERRED") {
        release(&mut lock);
        return Err(e.into());
    }
    let result = (|| -> Result<Pinned> {
        let needed = maintenance::live_objects(conn)?;
        let mut out = Pinned {
            needed: Vec::new(),
            copied: 0,
            bytes: 0,
        };
        let todo: Vec<&(String, u64)> = needed
            .iter()
            .filter(|(id, _)| !have.contains(id) && !missing.contains(id))
            .collect();
        progress.start(todo.iter().map(|(_, n)| *n).sum::<u64>());
        let mut open = Vec::new();
        for (id, _) in todo {
            match open_object(store, id)? {
                // nothing can be shredded now: a file that is not there is damage
                None => missing.push(id.clone()),
                Some(ObjectSource::File(f)) if open.len() < PIN_MAX => {
                    open.push((id.clone(), ObjectSource::File(f)))
                }
                // an object in a bucket cannot be held open: it is copied while shreds wait
                Some(f) => {
                    out.bytes += copy_object(f, dest, id, progress)?;
                    out.copied += 1;
                }
            }
        }
        release(&mut lock);
        // the snapshot of the read transaction, which began under the lock
        maintenance::backup_into(conn, partial, &store.catalog_key())?;
        for (id, f) in open {
            out.bytes += copy_object(f, dest, &id, progress)?;
            out.copied += 1;
        }
        out.needed = needed;
        Ok(out)
    })();
    release(&mut lock);
    let _ = conn.execute_batch("COMMIT");
    result
}

/// Copy `len` bytes of `src` into the empty `out`, only the parts that hold data: a sparse
/// object's holes stay holes (`SEEK_DATA`/`SEEK_HOLE`; where the file system cannot say,
/// everything is copied).
fn copy_sparse(src: &File, out: &File, len: u64, progress: &dyn Progress) -> std::io::Result<()> {
    use nix::unistd::{lseek, Whence};
    let fd = src.as_raw_fd();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    while pos < len {
        let (start, end) = match lseek(fd, pos as i64, Whence::SeekData) {
            Ok(d) => {
                let h = lseek(fd, d, Whence::SeekHole).unwrap_or(len as i64);
                (d as u64, (h as u64).min(len))
            }
            // nothing but a hole up to the end
            Err(nix::errno::Errno::ENXIO) => break,
            // no way to tell holes here: copy the rest
            Err(_) => (pos, len),
        };
        let mut at = start;
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            src.read_exact_at(&mut buf[..n], at)?;
            out.write_all_at(&buf[..n], at)?;
            at += n as u64;
        }
        progress.advance(end - pos);
        pos = end.max(pos + 1);
    }
    out.set_len(len)
}

/// Copy `len` bytes of an object in a bucket into the empty `out`.
fn copy_whole(
    src: &RemoteReader,
    out: &File,
    len: u64,
    progress: &dyn Progress,
) -> std::io::Result<()> {
    use crate::crypto::object::ReadAt;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let n = ((len - at) as usize).min(buf.len());
        src.read_exact_at(&mut buf[..n], at)?;
        out.write_all_at(&buf[..n], at)?;
        at += n as u64;
        progress.advance(n as u64);
    }
    Ok(())
}

/// fsync every folder below DEST/objects (new names are durable before the catalog that
/// needs them is renamed into place).
fn sync_objects(dest: &Path) -> Result<()> {
    let dir = dest.join(OBJECTS);
    if !dir.exists() {
        private::create_dir_all(&dir)?;
    }
    for sub in std::fs::read_dir(&dir).at("read", &dir)? {
        let sub = sub.at("read", &dir)?;
        if sub.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            sync_dir(&sub.path())?;
        }
    }
    sync_dir(&dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at("sync", dir)
}

/// Write `DEST/name` by a temporary file, fsync and rename (0600).
fn write_replace(dest: &Path, name: &str, data: &[u8]) -> Result<()> {
    let to = dest.join(name);
    let tmp = dest.join(format!("{name}.tmp"));
    remove_if_there(&tmp)?;
    let mut f = private::create_file(&tmp, false)?;
    let done = (|| -> Result<()> {
        f.write_all(data).at("write", &tmp)?;
        f.sync_all().at("sync", &tmp)?;
        std::fs::rename(&tmp, &to).at("rename", &to)
    })();
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

fn remove_if_there(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io_path("remove", path, e)),
    }
}
