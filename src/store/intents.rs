//! The intents journal: which objects a command is writing outside a catalog transaction.
//!
//! An import encrypts files outside any transaction and records them in short batches, so for a
//! while an object file exists that the catalog does not know yet. Nobody may take it for an
//! orphan then, yet if the command dies (SIGKILL, power cut) the file must not stay forever.
//! So before a command creates an object file it writes the object's id into its own journal,
//! `STORE/intents/<random>`, which it holds with an exclusive `flock` for its life:
//!
//! - while the lock is held, the objects it lists belong to a live command: never removed;
//! - a journal whose lock is free belongs to a dead command: every object it lists that the
//!   catalog does not know (and its unfinished `.tmp`) is garbage, removed by [`reap`], which
//!   every CLI command and every mount start runs;
//! - a command that finishes removes what of its own the catalog does not know and the
//!   journal ([`Journal::finish`]).
//!
//! An id is appended with one `write(2)` (O_APPEND) before the `.tmp` file is created, so any
//! object file on disk is either listed in a journal, known to the catalog, or left by a save
//! of the daemon (which sweeps at start, before it serves).

use super::held::{self, Held, Probe};
use super::{NewObject, Store};
use crate::crypto::object::ObjectId;
use crate::error::{Error, IoContext, Result};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Whether the catalog records an object. The catalog answers it (it implements this for its
/// connection): the store sits below the catalog and never reads it itself, so that the two
/// do not depend on each other.
pub trait Recorded {
    /// Whether object `id` (hex) is in the catalog.
    fn records_object(&self, id: &str) -> Result<bool>;
}

/// How long after a dead command's last announcement one of its uploads may still be stored
/// by the bucket: a request's timeout (60 s) and its retries (10 s), with room to spare. (A
/// multipart upload is never completed without its client.)
const UPLOAD_GRACE: std::time::Duration = std::time::Duration::from_secs(120);

/// The folder of the journals, in the store.
pub const INTENTS: &str = "intents";

fn dir(store: &Store) -> PathBuf {
    store.root().join(INTENTS)
}

/// One command's journal (created lazily by the first object it announces).
pub struct Journal {
    dir: PathBuf,
    held: Option<Held>,
    ids: Vec<ObjectId>,
}

impl Journal {
    pub fn new(store: &Store) -> Journal {
        Journal {
            dir: dir(store),
            held: None,
            ids: Vec::new(),
        }
    }

    /// Announce that an object `id` is about to be created: one write(2) of its hex id and a
    /// newline, so a reader never sees half an id.
    pub fn intend(&mut self, id: &ObjectId) -> Result<()> {
        crate::caller::as_daemon(|| {
            if self.held.is_none() {
                self.held = Some(held::create(&self.dir, "")?);
            }
            let h = self.held.as_mut().expect("created above");
            let line = format!("{}\n", id.hex());
            let n = h.file.write(line.as_bytes()).at("write", &h.path)?;
            if n != line.len() {
                return Err(Error::invalid(format!(
                    "cannot write {} (disk full?)",
                    h.path.display()
                )));
            }
            self.ids.push(*id);
            Ok(())
        })
    }

    /// Encrypt `src` into a new object announced in this journal first.
    pub fn put(&mut self, store: &Store, src: &mut dyn Read) -> Result<NewObject> {
        let id = ObjectId::random();
        self.intend(&id)?;
        store.put_as(id, src)
    }

    /// The command is done (committed, or failed): remove every object of this journal the
    /// catalog does not know, then the journal. On an error the journal stays, unlocked once
    /// this process ends, for the next command's [`reap`].
    pub fn finish(mut self, store: &Store, conn: &(impl Recorded + ?Sized)) -> Result<usize> {
        crate::caller::as_daemon(|| {
            let removed = remove_unknown(store, conn, &self.ids)?;
            if let Some(h) = self.held.take() {
                h.remove()?;
            }
            Ok(removed)
        })
    }
}

fn remove_unknown(
    store: &Store,
    conn: &(impl Recorded + ?Sized),
    ids: &[ObjectId],
) -> Result<usize> {
    let mut removed = 0;
    for id in ids {
        if !conn.records_object(&id.hex())? && store.remove_object_files(id)? {
            removed += 1;
        }
    }
    Ok(removed)
}

fn read_ids(mut f: &std::fs::File, path: &Path) -> Result<Vec<ObjectId>> {
    let mut s = String::new();
    f.read_to_string(&mut s).at("read", path)?;
    // a line cut short (a full disk) names no object that could have been created after it
    Ok(s.lines().filter_map(ObjectId::parse).collect())
}

/// Clean up after commands that died: for every journal whose owner is gone, remove the
/// objects it lists that the catalog does not know, then the journal. Returns how many object
/// files were removed.
pub fn reap(store: &Store, conn: &(impl Recorded + ?Sized)) -> Result<usize> {
    crate::caller::as_daemon(|| {
        let mut removed = 0;
        for path in held::list(&dir(store))? {
            if path.extension().is_some_and(|e| e == "tmp") {
                continue;
            }
            if let Probe::Dead(f) = held::probe(&path)? {
                let ids = read_ids(&f, &path)?;
                removed += remove_unknown(store, conn, &ids)?;
                // An upload to a bucket the dead command had sent whole may still be stored
                // after it died (and after the delete above): keep the journal for the next
                // commands to delete again until no request of its can still land.
                let recent = f
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_none_or(|age| age < UPLOAD_GRACE);
                if store.objects_in_bucket() && recent {
                    continue;
                }
                // still locked by us: nobody else works on it meanwhile
                std::fs::remove_file(&path).at("remove", &path)?;
            }
        }
        Ok(removed)
    })
}

/// The objects listed in journals whose owners are alive: being written, not orphans.
pub fn live_ids(store: &Store) -> Result<HashSet<String>> {
    crate::caller::as_daemon(|| {
        let mut ids = HashSet::new();
        for path in held::list(&dir(store))? {
            if let Probe::Live(f) = held::probe(&path)? {
                ids.extend(read_ids(&f, &path)?.iter().map(|i| i.hex()));
            }
        }
        Ok(ids)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{assets, Catalog};
    use crate::store::Store;

    fn store() -> (tempfile::TempDir, Store, Catalog) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("s");
        let key = d.path().join("k");
        let store = Store::init(&root, None, Some(&key), chrono::Utc::now(), "t").unwrap();
        let cat = Catalog::open(
            &store.catalog_path(),
            &store.catalog_key(),
            store.audit_key(),
        )
        .unwrap();
        (d, store, cat)
    }

    fn on_disk(store: &Store) -> HashSet<String> {
        store
            .list_objects()
            .unwrap()
            .iter()
            .map(|i| i.hex())
            .collect()
    }

    /// A dead command's journal: the object it wrote but never recorded is removed, the one it
    /// recorded stays, and the journal goes.
    #[test]
    fn reap_removes_what_a_dead_command_did_not_record() {
        let (_d, store, mut cat) = store();
        let mut j = Journal::new(&store);
        let kept = j.put(&store, &mut &b"recorded"[..]).unwrap();
        let lost = j.put(&store, &mut &b"never recorded"[..]).unwrap();
        // an id announced whose .tmp was being written when the command died
        let half = ObjectId::random();
        j.intend(&half).unwrap();
        let tmp = store.object_path(&half).with_extension("tmp");
        std::fs::create_dir_all(tmp.parent().unwrap()).unwrap();
        std::fs::write(&tmp, b"partial").unwrap();
        {
            let tx = cat.begin("t", chrono::Utc::now()).unwrap();
            assets::add_object(&tx, &kept).unwrap();
            tx.commit().unwrap();
        }
        // alive: nothing is touched, its objects are reported as live
        assert_eq!(reap(&store, cat.conn()).unwrap(), 0);
        let live = live_ids(&store).unwrap();
        assert!(live.contains(&lost.id.hex()) && live.contains(&half.hex()));
        assert!(on_disk(&store).contains(&lost.id.hex()));
        // the owner dies: its lock goes, the file stays
        drop(j);
        assert!(live_ids(&store).unwrap().is_empty());
        assert_eq!(reap(&store, cat.conn()).unwrap(), 2);
        let disk = on_disk(&store);
        assert!(disk.contains(&kept.id.hex()), "the recorded object stays");
        assert!(!disk.contains(&lost.id.hex()), "the unrecorded object goes");
        assert!(!tmp.exists(), "the unfinished .tmp goes");
        assert!(held::list(&dir(&store)).unwrap().is_empty());
    }

    /// A command that finishes removes its unrecorded objects and its journal itself.
    #[test]
    fn finish_removes_own_unrecorded_objects_and_the_journal() {
        let (_d, store, mut cat) = store();
        let mut j = Journal::new(&store);
        let kept = j.put(&store, &mut &b"a"[..]).unwrap();
        let dropped = j.put(&store, &mut &b"b"[..]).unwrap();
        let journal = j.held.as_ref().unwrap().path.clone();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&journal).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        {
            let tx = cat.begin("t", chrono::Utc::now()).unwrap();
            assets::add_object(&tx, &kept).unwrap();
            tx.commit().unwrap();
        }
        assert_eq!(j.finish(&store, cat.conn()).unwrap(), 1);
        assert!(!journal.exists());
        let disk = on_disk(&store);
        assert!(disk.contains(&kept.id.hex()) && !disk.contains(&dropped.id.hex()));
    }
}
