//! `consentfs check`: scrub the store. Every object the catalog can still read (all versions
//! of all assets, consent evidence) is opened and every chunk authenticated, as a read through
//! the mount would, the object files on disk are compared with the catalog's list, and every
//! page of the catalog is read (SQLCipher authenticates each) and its structure checked.
//!
//! A photo that is damaged is otherwise found only when someone opens it, which for an archive
//! may be years later, after the last good backup is gone. The report names each damaged
//! object, what is wrong with it, and the assets (and consent evidence) that need it, so the
//! officer knows what to restore from a backup.
//!
//! It runs while the store is mounted and in use. The catalog's objects are read once at the
//! start; what changes meanwhile is looked at again before it is reported: an object shredded
//! during the scrub (its file removed on purpose) is not "missing", and a file the mount has
//! written but not yet recorded (a save in flight, a queued save, a command's announced object)
//! is not an orphan.

pub use super::{Progress, Quiet};
use crate::catalog::maintenance::{self, ObjectRow, ObjectUse};
use crate::catalog::Catalog;
use crate::crypto::object::{chunk_count, ObjectId, CHUNK_PLAIN};
use crate::error::{Error, Result};
use crate::policy::Time;
use crate::store::{Store, OBJECTS};
use rusqlite::Connection;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// What is wrong with a damaged object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// The catalog records it, its file is not there.
    Missing,
    /// The file is longer or shorter than the catalog's length says (truncated, extended).
    WrongLength,
    /// A chunk (or a sparse object's chunk map) does not authenticate: changed bytes.
    FailedAuthentication,
    /// The header names another object or format (a file copied over another).
    WrongHeader,
    /// The catalog's wrapped data key does not open.
    KeyDoesNotUnwrap,
    /// The file could not be read at all (an I/O error: a failing disk, permissions).
    Unreadable,
}

impl Problem {
    pub fn describe(self) -> &'static str {
        match self {
            Problem::Missing => "missing",
            Problem::WrongLength => "wrong length",
            Problem::FailedAuthentication => "failed authentication",
            Problem::WrongHeader => "wrong header",
            Problem::KeyDoesNotUnwrap => "data key does not unwrap",
            Problem::Unreadable => "unreadable",
        }
    }
}

/// One damaged object and what needs it.
#[derive(Debug, Clone, Serialize)]
pub struct Damaged {
    pub object: String,
    pub problem: Problem,
    /// The check's own words (which chunk, which lengths).
    pub detail: String,
    pub uses: Vec<ObjectUse>,
}

/// A file below `objects/` that the catalog does not record.
#[derive(Debug, Clone, Serialize)]
pub struct Orphan {
    /// Its path below the store, e.g. `objects/ab/cdef…`.
    pub file: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Objects read and verified (those with a data key).
    pub objects: u64,
    /// Plaintext bytes authenticated.
    pub bytes: u64,
    /// Objects whose data key was destroyed (purged, thinned): unreadable by design, skipped.
    pub shredded: u64,
    pub damaged: Vec<Damaged>,
    pub orphans: Vec<Orphan>,
    /// What SQLite found wrong reading every page of the catalog, if anything.
    pub catalog_damage: Option<String>,
    /// Assets that need at least one damaged object.
    pub assets_affected: Vec<i64>,
    pub clean: bool,
    pub seconds: f64,
}

/// Scrub the store and record that it was done (and what it found: counts only) in the audit
/// log, so an auditor can see when the archive was last verified.
pub fn run_recorded(
    store: &Store,
    catalog: &mut Catalog,
    actor: &str,
    now: Time,
    progress: &dyn Progress,
) -> Result<Report> {
    let report = run(store, catalog.conn(), progress)?;
    let tx = catalog.begin(actor, now)?;
    tx.audit(
        "store.check",
        serde_json::json!({
            "objects": report.objects,
            "damaged": report.damaged.len(),
            "orphans": report.orphans.len(),
            "assets_affected": report.assets_affected.len(),
            "catalog_damaged": report.catalog_damage.is_some(),
        }),
    )?;
    tx.commit()?;
    Ok(report)
}

/// Scrub the store (see the module doc). `conn` is a catalog connection of this store.
pub fn run(store: &Store, conn: &Connection, progress: &dyn Progress) -> Result<Report> {
    let started = std::time::Instant::now();
    // the disk first, the catalog after (as the daemon's orphan sweep does): an object on disk
    // at the listing is either recorded by the time the catalog is read, or still announced
    let on_disk = list_files(store)?;
    let rows = maintenance::objects(conn)?;
    let known: HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let readable: Vec<&ObjectRow> = rows.iter().filter(|r| r.wrapped_key.is_some()).collect();
    let shredded = (rows.len() - readable.len()) as u64;
    let total: u64 = readable.iter().map(|r| r.size).sum();
    progress.start(total);
    let failures = verify_all(store, &readable, progress);
    progress.finish();

    // look again at what failed: shredded or removed meanwhile is not damage
    let mut damaged = Vec::new();
    for (id, problem, detail) in failures {
        match maintenance::object(conn, &id)? {
            Some(row) if row.wrapped_key.is_some() => {}
            _ => continue,
        }
        let uses = maintenance::uses_of(conn, &id)?;
        damaged.push(Damaged {
            object: id,
            problem,
            detail,
            uses,
        });
    }
    damaged.sort_by(|a, b| a.object.cmp(&b.object));

    let mut orphans = Vec::new();
    let candidates: Vec<&DiskFile> = on_disk
        .iter()
        .filter(|f| !f.tmp && !f.id.as_deref().is_some_and(|id| known.contains(id)))
        .collect();
    if !candidates.is_empty() {
        // announced by a running command, or saved by the mount and queued: not orphans
        let mut pending: HashSet<String> = crate::store::intents::live_ids(store)?;
        pending.extend(crate::vfs::queue::SaveQueue::object_ids_on_disk(store));
        for f in candidates {
            if let Some(id) = &f.id {
                if pending.contains(id) || maintenance::object(conn, id)?.is_some() {
                    continue;
                }
            }
            // removed meanwhile (an interrupted write cleaned up): nothing to report
            let (bytes, modified) = match (&f.path, f.listed) {
                (Some(p), _) => match std::fs::symlink_metadata(p) {
                    Ok(md) => (md.len(), md.modified().ok()),
                    Err(_) => continue,
                },
                (None, Some((len, when))) => (len, Some(when)),
                (None, None) => continue,
            };
            // a save of the mount in flight: written and renamed, its catalog row in a
            // transaction not yet committed (or waiting for the write lock)
            let age = modified.and_then(|m| m.elapsed().ok());
            if age.is_none_or(|a| a < RECENT) {
                continue;
            }
            orphans.push(Orphan {
                file: f.rel.clone(),
                bytes,
            });
        }
    }

    let mut assets: Vec<i64> = damaged
        .iter()
        .flat_map(|d| d.uses.iter())
        .filter_map(|u| match u {
            ObjectUse::Version { asset, .. } => Some(*asset),
            ObjectUse::Evidence { .. } => None,
        })
        .collect();
    assets.sort_unstable();
    assets.dedup();
    let bytes = total;
    let catalog_damage = maintenance::catalog_damage(conn);
    Ok(Report {
        objects: readable.len() as u64,
        bytes,
        shredded,
        clean: damaged.is_empty() && orphans.is_empty() && catalog_damage.is_none(),
        catalog_damage,
        damaged,
        orphans,
        assets_affected: assets,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A file below `objects/` the catalog does not know is taken for a save in flight, not an
/// orphan, for this long after it was written. The mount renames a save's object into place
/// before the transaction that records it commits; that transaction may wait for the write lock
/// (up to 2 s, then the save is queued), or be left open a few milliseconds to be joined by the
/// next save. Real orphans (a crash) are older, and the next mount removes them anyway.
const RECENT: std::time::Duration = std::time::Duration::from_secs(60);

struct DiskFile {
    /// How the report names it: `objects/ab/cd…` in the store's own folder, else its full
    /// path or URL.
    rel: String,
    /// The object id its name spells, if it spells one.
    id: Option<String>,
    /// An object being written (`….tmp`): never an orphan here (the mount's start removes
    /// those left by a crash).
    tmp: bool,
    /// Its file on this machine; `None` for an object listed in a bucket.
    path: Option<std::path::PathBuf>,
    /// Size and last change, for an object listed in a bucket.
    listed: Option<(u64, std::time::SystemTime)>,
}

fn list_files(store: &Store) -> Result<Vec<DiskFile>> {
    let own = store.objects_at() == crate::store::Location::Own;
    let shown = store.objects_shown();
    Ok(store
        .list_object_names()?
        .into_iter()
        .map(|n| DiskFile {
            rel: if n.remote {
                format!("{shown}/{}", n.rel)
            } else if own {
                format!("{OBJECTS}/{}", n.rel)
            } else {
                store.objects_dir().join(&n.rel).display().to_string()
            },
            id: n.id.map(|i| i.hex()),
            tmp: n.tmp,
            path: (!n.remote).then(|| store.objects_dir().join(&n.rel)),
            listed: n.listed,
        })
        .collect())
}

/// Verify every object on a few threads; the failures (id, problem, detail).
fn verify_all(
    store: &Store,
    objects: &[&ObjectRow],
    progress: &dyn Progress,
) -> Vec<(String, Problem, String)> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut buf = zeroize::Zeroizing::new(vec![0u8; CHUNK_PLAIN as usize]);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(row) = objects.get(i) else { break };
                    if let Err((problem, detail)) = verify_one(store, row, &mut buf, progress) {
                        failures.lock().unwrap_or_else(|p| p.into_inner()).push((
                            row.id.clone(),
                            problem,
                            detail,
                        ));
                    }
                }
            });
        }
    });
    failures.into_inner().unwrap_or_else(|p| p.into_inner())
}

fn verify_one(
    store: &Store,
    row: &ObjectRow,
    buf: &mut [u8],
    progress: &dyn Progress,
) -> std::result::Result<(), (Problem, String)> {
    let Some(id) = ObjectId::parse(&row.id) else {
        return Err((
            Problem::Missing,
            format!("the catalog names an invalid object id {:?}", row.id),
        ));
    };
    let wrapped = row.wrapped_key.as_deref().unwrap_or_default();
    let label = format!("object {}", row.id);
    let obj = store
        .open_object(&id, wrapped, row.size, &label)
        .map_err(classify)?;
    let mut done = 0u64;
    for i in 0..chunk_count(row.size) {
        let len = obj.chunk_len(i) as usize;
        if let Err(e) = obj.chunk_into(i, &mut buf[..len]) {
            // what was not verified still counts as gone by, so the bar ends full
            progress.advance(row.size - done);
            return Err(classify(e));
        }
        done += len as u64;
        progress.advance(len as u64);
    }
    Ok(())
}

/// Sort an error of the object reader into what the report says.
fn classify(e: Error) -> (Problem, String) {
    match e {
        Error::Integrity { detail, .. } => {
            let problem = if detail.contains("missing") {
                Problem::Missing
            } else if detail.contains("failed authentication") || detail.contains("holds data") {
                Problem::FailedAuthentication
            } else if ["truncated", "extended", "does not fit", "another length"]
                .iter()
                .any(|w| detail.contains(w))
            {
                Problem::WrongLength
            } else if detail.contains("unwrap") {
                Problem::KeyDoesNotUnwrap
            } else if detail.contains("header") || detail.contains("newer than") {
                Problem::WrongHeader
            } else {
                Problem::FailedAuthentication
            };
            (problem, detail)
        }
        other => (Problem::Unreadable, other.to_string()),
    }
}
