//! Where an export or a person report writes until it is complete, so that decrypted files are
//! never left where they look finished, and a run that was killed is recognised and cleaned up
//! by the next one.
//!
//! Why it is built this way:
//!
//! * A new export or report is written into a private (0700) folder next to its destination,
//!   `.NAME.consentfs-partial` (same parent, so the same filesystem), and renamed onto the
//!   destination only after every file, the manifest or index (last) and every folder were
//!   fsynced. Until that rename nothing exists under the destination's name; after it, the
//!   whole export does.
//! * The folder's first entry is a marker ([`MARKER`]) that names the run (export id, or the
//!   audit entry that started the report) under a MAC with the store's manifest key. A folder
//!   under the partial name is deleted by a later run only when it holds a valid marker of this
//!   store, or nothing but our own temporary files (a run killed while it wrote the marker):
//!   a folder that is not ours is never deleted; the run stops and says so.
//! * The marker goes along with the rename and is removed from the destination right after.
//!   A run killed in that instant leaves a complete destination whose marker still says "in
//!   progress": `export verify` reports it and a re-run replaces it, as it does a partial
//!   folder.
//! * Where the rename cannot work (the destination is a mount point such as a USB stick, or
//!   the parent folder is not writable) and for `--sync` into an earlier export, the files are
//!   written in the destination itself, with the marker at its top from before the first byte
//!   until after the manifest: a half-updated export never looks complete, `verify` says it
//!   was interrupted, and a re-run of the same command finishes or replaces it.

use super::{Modes, TMP_PREFIX};
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::files;
use cap_std::fs::Dir;
use serde::{Deserialize, Serialize};
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The marker's name at the top of a folder an export or report is still writing (reserved:
/// no exported file may have it).
pub const MARKER: &str = ".consentfs-partial";
const MARKER_FORMAT: &str = "consentfs-partial/1";
const SUFFIX: &str = ".consentfs-partial";
/// A marker is a few hundred bytes; anything larger is not read.
const MAX_MARKER_BYTES: u64 = 4096;

/// Which run is writing a folder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Marker {
    pub format: String,
    /// `export` or `report`.
    pub kind: String,
    /// A random name for the run, also in its start record (`run` in the audit entry). The
    /// marker is written before that record is committed, so a run killed in between leaves a
    /// marker that names no record (nothing was decrypted yet), and every run that has a record
    /// and was killed leaves a marker that finds it.
    pub run: String,
    /// The folder's whole content is this run's (a new export or report), so a later run may
    /// remove all of it; false for `--sync` into an earlier export.
    pub whole: bool,
    #[serde(default)]
    pub mac: String,
}

impl Marker {
    pub fn new(kind: &str, whole: bool) -> Marker {
        let run: [u8; 16] = crate::crypto::random_bytes();
        Marker {
            format: MARKER_FORMAT.into(),
            kind: kind.into(),
            run: hex::encode(run),
            whole,
            mac: String::new(),
        }
    }

    fn sealed(&self, key: &Key) -> Result<Vec<u8>> {
        let mut m = self.clone();
        m.mac.clear();
        let value = serde_json::to_value(&m).map_err(|e| Error::invalid(format!("marker: {e}")))?;
        m.mac = super::mac_of(key, &value)?;
        let mut out = serde_json::to_vec(&m).map_err(|e| Error::invalid(format!("marker: {e}")))?;
        out.push(b'\n');
        Ok(out)
    }
}

/// The marker at the top of `dir`, if there is one made by this store (a link, a FIFO, a
/// damaged or foreign marker count as none).
pub fn read_marker(dir: &Dir, key: &Key) -> Result<Option<Marker>> {
    let f = match files::open_regular_at(dir, OsStr::new(MARKER)) {
        Ok(f) => f,
        Err(_) => return Ok(None),
    };
    let mut text = Vec::new();
    if f.take(MAX_MARKER_BYTES).read_to_end(&mut text).is_err() {
        return Ok(None);
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return Ok(None);
    };
    let stored = value.get("mac").and_then(|m| m.as_str()).unwrap_or("");
    let expected = super::mac_of(key, &value)?;
    if !super::subtle_eq::ct_eq(stored.as_bytes(), expected.as_bytes()) {
        return Ok(None);
    }
    Ok(serde_json::from_value::<Marker>(value)
        .ok()
        .filter(|m| m.format == MARKER_FORMAT))
}

/// The destination's parent, its own name and the name of its partial folder.
fn names(abs: &Path) -> Result<(PathBuf, OsString, OsString)> {
    let (Some(parent), Some(name)) = (abs.parent(), abs.file_name()) else {
        return Err(Error::invalid(format!(
            "{} cannot be an export's destination; choose a folder below it",
            abs.display()
        )));
    };
    let mut partial = OsString::from(".");
    partial.push(name);
    partial.push(SUFFIX);
    if partial.len() > 255 {
        // too long for one file name: a shorter name that still says what it is
        use sha2::Digest;
        let h = sha2::Sha256::digest(name.as_bytes());
        partial = OsString::from(format!(".consentfs-partial-{}", hex::encode(&h[..8])));
    }
    Ok((parent.to_path_buf(), name.to_os_string(), partial))
}

/// The private folder next to `abs` that a run writes before moving it into place.
pub fn partial_path(abs: &Path) -> Result<PathBuf> {
    let (parent, _, partial) = names(abs)?;
    Ok(parent.join(partial))
}

fn open_parent(parent: &Path) -> Result<Dir> {
    Dir::open_ambient_dir(parent, cap_std::ambient_authority())
        .map_err(|e| Error::io_path("open", parent, e))
}

/// Whether `dir` holds nothing but our own temporary files at its top (a run killed while it
/// wrote its marker). A running run holds a lock on its marker (and on the marker's temporary
/// file): such a folder is refused as busy.
fn only_our_temporaries(dir: &Dir, shown: &Path) -> Result<bool> {
    for entry in dir
        .entries()
        .map_err(|e| Error::io("cannot list a partial folder", e))?
    {
        let entry = entry.map_err(|e| Error::io("cannot list a partial folder", e))?;
        let name = entry.file_name();
        let ours = name.to_string_lossy().starts_with(TMP_PREFIX)
            && entry.file_type().is_ok_and(|t| t.is_file());
        if !ours {
            return Ok(false);
        }
        check_not_running(dir, &name, shown)?;
    }
    Ok(true)
}

/// Refuse when a live run holds the lock on `name` in `dir` (its marker).
fn check_not_running(dir: &Dir, name: &OsStr, shown: &Path) -> Result<()> {
    let Ok(f) = files::open_regular_at(dir, name) else {
        return Ok(());
    };
    match f.try_lock() {
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::invalid(format!(
            "another consentfs export or report is writing {} right now; wait for it to finish (nothing was changed)",
            shown.display()
        ))),
        _ => Ok(()),
    }
}

/// Write `marker` as [`MARKER`] in `dir` (temporary name, fsync, rename) and return it open
/// with an exclusive lock, held until the run ends: a later run never takes a live run's
/// folder for an interrupted one. The lock is taken before the marker has its name and goes
/// with the process, so a killed run leaves no lock behind.
fn write_marker(dir: &Dir, key: &Key, marker: &Marker) -> Result<std::fs::File> {
    use std::io::Write;
    let bytes = marker.sealed(key)?;
    let tmp = super::tmp_name(MARKER);
    let mut f = super::create_tmp(dir, &tmp, MARKER)?.into_std();
    let r = (|| -> Result<()> {
        f.try_lock()
            .map_err(|e| Error::invalid(format!("cannot lock {MARKER}: {e}")))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io(format!("cannot write {MARKER}"), e))?;
        dir.rename(&tmp, dir, MARKER)
            .map_err(|e| Error::io(format!("cannot rename into {MARKER}"), e))
    })();
    if let Err(e) = r {
        let _ = dir.remove_file(&tmp);
        return Err(e);
    }
    Ok(f)
}

/// Remove every entry of `dir` (links are removed, never followed).
fn empty_out(dir: &Dir) -> std::io::Result<()> {
    for entry in dir.entries()? {
        let entry = entry?;
        let name = entry.file_name();
        if entry.file_type()?.is_dir() {
            dir.remove_dir_all(&name)?;
        } else {
            dir.remove_file(&name)?;
        }
    }
    Ok(())
}

/// Clear what an interrupted run left at `abs`: the partial folder next to it, and the content
/// of `abs` itself when a marker at its top says a whole run wrote it in place (a marker of an
/// interrupted `--sync` is reported but left: the next `--sync` finishes that update). Returns
/// the markers found, so their runs can be recorded as failed. A partial folder that is not
/// ours stops the command; nothing is deleted.
pub fn clear_interrupted(abs: &Path, key: &Key) -> Result<Vec<Marker>> {
    let mut found = Vec::new();
    let (parent, _, partial) = names(abs)?;
    let shown = parent.join(&partial);
    let not_ours = || {
        Error::invalid(format!(
            "{} exists but was not left by an interrupted consentfs export or report of this store; \
             move it away or remove it yourself (nothing was changed)",
            shown.display()
        ))
    };
    match std::fs::symlink_metadata(&shown) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io_path("inspect", &shown, e)),
        Ok(md) if !md.is_dir() => return Err(not_ours()),
        Ok(_) => {
            let pdir = open_parent(&parent)?;
            let dir = pdir
                .open_dir(&partial)
                .map_err(|e| Error::io_path("open", &shown, e))?;
            files::check_owner(&dir, &shown)?;
            let marker = read_marker(&dir, key)?;
            if marker.is_some() {
                check_not_running(&dir, OsStr::new(MARKER), &shown)?;
            } else if !only_our_temporaries(&dir, &shown)? {
                return Err(not_ours());
            }
            drop(dir);
            pdir.remove_dir_all(&partial)
                .map_err(|e| Error::io_path("remove", &shown, e))?;
            sync_dir(&pdir, &parent)?;
            found.extend(marker);
        }
    }
    if std::fs::symlink_metadata(abs).is_ok_and(|m| m.is_dir()) {
        let dir = Dir::open_ambient_dir(abs, cap_std::ambient_authority())
            .map_err(|e| Error::io_path("open", abs, e))?;
        if let Some(m) = read_marker(&dir, key)? {
            files::check_owner(&dir, abs)?;
            check_not_running(&dir, OsStr::new(MARKER), abs)?;
            if m.whole {
                empty_out(&dir).map_err(|e| Error::io_path("clear", abs, e))?;
                sync_dir(&dir, abs)?;
            }
            found.push(m);
        }
    }
    Ok(found)
}

/// fsync a folder (opened again as itself: a cap-std folder is an `O_PATH` descriptor).
pub fn sync_dir(dir: &Dir, shown: &Path) -> Result<()> {
    use nix::fcntl::{openat, OFlag};
    let fd = openat(
        Some(dir.as_raw_fd()),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::io_path("open", shown, std::io::Error::from_raw_os_error(e as i32)))?;
    // SAFETY: `fd` was just opened by us and is owned by nothing else.
    let f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    f.sync_all().map_err(|e| Error::io_path("write", shown, e))
}

/// fsync `dir` and every folder below it (files are fsynced as they are written).
fn sync_tree(dir: &Dir, shown: &Path) -> Result<()> {
    for entry in dir
        .entries()
        .map_err(|e| Error::io_path("list", shown, e))?
    {
        let entry = entry.map_err(|e| Error::io_path("list", shown, e))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let sub = entry
                .open_dir()
                .map_err(|e| Error::io_path("open", shown, e))?;
            sync_tree(&sub, &shown.join(entry.file_name()))?;
        }
    }
    sync_dir(dir, shown)
}

/// Where a run writes until it is complete.
pub struct Staging {
    dir: Dir,
    path: PathBuf,
    how: How,
    /// The marker, locked while this run lives.
    lock: std::fs::File,
}

enum How {
    /// A private folder next to the destination, renamed onto it when complete.
    Beside {
        parent: Dir,
        parent_path: PathBuf,
        partial: OsString,
        name: OsString,
    },
    /// The destination itself, with the marker at its top while the run writes.
    InPlace { whole: bool },
}

impl Staging {
    /// Where a new export or report into `abs` writes: a private folder next to it, or (when
    /// `abs` is a mount point, or its parent cannot take a new folder) `abs` itself. `abs`
    /// does not exist, or is a folder of ours with nothing in it but empty folders. The marker
    /// is written before anything else.
    pub fn new(abs: &Path, key: &Key, marker: &Marker) -> Result<Staging> {
        let (parent_path, name, partial) = names(abs)?;
        files::create_dir_all(&parent_path, Modes::PRIVATE.dir)?;
        let parent = open_parent(&parent_path)?;
        let existing = match std::fs::symlink_metadata(abs) {
            Ok(md) => Some(md),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io_path("inspect", abs, e)),
        };
        if let Some(md) = &existing {
            let dest = super::open_dest(abs)?;
            clear_empty_folders(&dest);
            let parent_dev = std::fs::metadata(&parent_path)
                .map_err(|e| Error::io_path("inspect", &parent_path, e))?
                .dev();
            let empty = dest
                .entries()
                .map_err(|e| Error::io_path("list", abs, e))?
                .next()
                .is_none();
            // a mount point cannot be replaced by a rename; a folder with something left in
            // it (a folder we could not remove) would refuse it
            if md.dev() != parent_dev || !empty {
                return Staging::in_place(
                    dest,
                    abs,
                    key,
                    &Marker {
                        whole: true,
                        ..marker.clone()
                    },
                );
            }
        }
        let shown = parent_path.join(&partial);
        let mut in_place = false;
        match parent.create_dir(&partial) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && existing.is_some() => {
                in_place = true;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::invalid(format!(
                    "{} appeared while this run started (another export or report into the same folder?); nothing was written",
                    shown.display()
                )))
            }
            Err(e) => return Err(Error::io_path("create", &shown, e)),
        }
        if in_place {
            let dest = super::open_dest(abs)?;
            return Staging::in_place(
                dest,
                abs,
                key,
                &Marker {
                    whole: true,
                    ..marker.clone()
                },
            );
        }
        let dir = parent
            .open_dir(&partial)
            .map_err(|e| Error::io_path("open", &shown, e))?;
        files::check_owner(&dir, &shown)?;
        files::set_mode(&dir, Modes::PRIVATE.dir, &shown.display().to_string())?;
        let lock = match write_marker(&dir, key, marker) {
            Ok(f) => f,
            Err(e) => {
                let _ = parent.remove_dir_all(&partial);
                return Err(e);
            }
        };
        Ok(Staging {
            dir,
            path: shown,
            how: How::Beside {
                parent,
                parent_path,
                partial,
                name,
            },
            lock,
        })
    }

    /// Write in the destination `dir` itself, with `marker` at its top first.
    pub fn in_place(dir: Dir, abs: &Path, key: &Key, marker: &Marker) -> Result<Staging> {
        let lock = write_marker(&dir, key, marker)?;
        sync_dir(&dir, abs)?;
        Ok(Staging {
            dir,
            path: abs.to_path_buf(),
            how: How::InPlace {
                whole: marker.whole,
            },
            lock,
        })
    }

    /// The folder to write into.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Its path (for tools that need one, such as exiftool).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Everything is written: fsync every folder, give the top folder its final mode and move
    /// it into place. The marker stays until [`Placed::unmark`]: the caller records the outcome
    /// in between, so a destination without a marker always has a completed record.
    ///
    /// When this fails, what was written is removed (for an update in place, the marker stays:
    /// the folder is shown as unfinished until the next run).
    pub fn place(self, dir_mode: u32) -> Result<Placed> {
        let moved = (|| -> Result<PathBuf> {
            sync_tree(&self.dir, &self.path)?;
            files::set_mode(&self.dir, dir_mode, &self.path.display().to_string())?;
            match &self.how {
                How::InPlace { .. } => Ok(self.path.clone()),
                How::Beside {
                    parent,
                    parent_path,
                    partial,
                    name,
                } => {
                    let dest = parent_path.join(name);
                    parent.rename(partial, parent, name).map_err(|e| {
                        Error::io(
                            format!("cannot move the finished files into {}", dest.display()),
                            e,
                        )
                    })?;
                    Ok(dest)
                }
            }
        })();
        let path = match moved {
            Ok(p) => p,
            Err(e) => {
                if !matches!(self.how, How::InPlace { whole: false }) {
                    self.discard();
                }
                return Err(e);
            }
        };
        if let How::Beside {
            parent,
            parent_path,
            ..
        } = &self.how
        {
            // the rename happened; a failed fsync of the parent only risks the rename itself
            if let Err(e) = sync_dir(parent, parent_path) {
                log::warn!("could not flush the folder of a finished export or report: {e}");
            }
        }
        Ok(Placed {
            dir: self.dir,
            path,
            _lock: self.lock,
        })
    }

    /// The run failed: remove what it wrote (everything, for a whole run; only the marker for
    /// an update in place, whose caller undid its own changes). Best effort: what cannot be
    /// removed is logged, and a later run removes it.
    pub fn discard(self) {
        let r = match &self.how {
            How::Beside {
                parent, partial, ..
            } => parent.remove_dir_all(partial),
            How::InPlace { whole: true } => empty_out(&self.dir),
            How::InPlace { whole: false } => self.dir.remove_file(MARKER),
        };
        if let Err(e) = r {
            log::warn!("could not remove the files of a failed export or report: {e}");
        }
    }
}

/// A finished run in place, its marker still at its top.
pub struct Placed {
    dir: Dir,
    path: PathBuf,
    /// Held until the marker is gone.
    _lock: std::fs::File,
}

impl Placed {
    /// Remove the marker: the folder is a finished export or report.
    pub fn unmark(self) -> Result<()> {
        self.dir
            .remove_file(MARKER)
            .map_err(|e| Error::io_path("remove", &self.path.join(MARKER), e))?;
        sync_dir(&self.dir, &self.path)
    }
}

/// Remove empty folders below `dir` (deepest first); others stay.
fn clear_empty_folders(dir: &Dir) {
    let Ok(entries) = dir.entries() else { return };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if let Ok(sub) = entry.open_dir() {
                clear_empty_folders(&sub);
            }
            let _ = dir.remove_dir(entry.file_name());
        }
    }
}
