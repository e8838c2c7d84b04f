//! Importing: encrypt files and directories into the store.
//!
//! Import runs in two phases. The plan walks every input first and rejects the whole import on
//! anything it cannot do (an unreadable file, a non-UTF-8 name, a path that already holds other
//! content), so errors come before a single byte is written.
//!
//! The execution encrypts and hashes each file outside any catalog transaction (a 6 GB file
//! takes half a minute; 100,000 small ones longer) and records the files in short batches, so
//! a withdrawal, an erasure or a save through the mount never waits for more than one batch.
//! Each object is announced in the command's intents journal before it is written, so nobody
//! takes it for an orphan while it is not recorded yet, and a killed import's unrecorded
//! objects are removed by the next command. Each batch checks again what the plan checked
//! (the path still free or holding the same bytes, duplicates by content), so a concurrent
//! import or save is never overwritten. Each file is all-or-nothing: a killed or failed import
//! leaves the files of its committed batches imported, and the same command run again
//! imports the rest (reporting those already there as duplicates).

use super::Session;
use crate::catalog::assets::{self, check_name, join_path, normalize_collection};
use crate::catalog::suggestions;
use crate::error::{Error, IoContext, Result};
use crate::exiftool::Exiftool;
use crate::export::Progress;
use crate::files;
use crate::metadata;
use crate::policy::Status;
use crate::store::{intents, NewObject};
use serde::Serialize;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Planned {
    src: PathBuf,
    /// The folder that holds the path given on the command line (opened by its path).
    root: PathBuf,
    /// The components from `root` down to the file, each opened without following a link.
    parts: Vec<OsString>,
    collection: String,
    name: String,
    size: u64,
    /// Device and inode seen while planning: the file read later must be the same one.
    id: (u64, u64),
}

#[derive(Serialize, Debug)]
pub struct Outcome {
    pub path: String,
    /// `imported` or `duplicate`.
    pub status: &'static str,
    pub asset: i64,
    /// For a duplicate: the path of the asset that already holds the same bytes.
    pub duplicate_of: Option<String>,
    /// Persons linked because the metadata names their external reference.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub linked_from_metadata: Vec<i64>,
    /// Names the metadata gives, now suggestions for a reviewer (`consentfs review`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suggested: Vec<String>,
    /// For a sidecar (`IMG_0042.CR2.xmp`): the photo it belongs to, whose persons it shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sidecar_of: Option<i64>,
}

/// What an import did.
#[derive(Debug)]
pub struct Imported {
    /// One per file, in the plan's order (folders in name order).
    pub outcomes: Vec<Outcome>,
    /// Symbolic links met in the folders, not followed and not imported.
    pub skipped_links: Vec<PathBuf>,
    /// Plaintext bytes of the files imported (not of the duplicates).
    pub bytes: u64,
    /// Why no metadata was read, if exiftool is missing.
    pub metadata_unread: Option<String>,
}

/// A file or folder name as the catalog keeps it: names that are not UTF-8 (an archive
/// written under a Latin-1 locale) are kept byte-exact, escaped as the mount does (see
/// `crate::names`), so the import of an old archive and a copy of it into the mount give the
/// same assets, and both export under the original bytes.
fn catalog_name(name: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    crate::names::from_bytes(name.as_bytes())
}

/// Open a planned file again for reading: every folder on the way and the file itself opened
/// without following links, the file only if it is still the regular file the plan saw.
fn open_planned(item: &Planned) -> Result<File> {
    let shown = item.src.display().to_string();
    let mut dir = cap_std::fs::Dir::open_ambient_dir(&item.root, cap_std::ambient_authority())
        .map_err(|e| Error::io_path("open", &item.root, e))?;
    let (last, folders) = item
        .parts
        .split_last()
        .ok_or_else(|| Error::invalid("empty import path"))?;
    for part in folders {
        dir = files::open_dir_at(&dir, part).map_err(|e| e.refusing_import(&item.src))?;
    }
    let f = files::open_regular_at(&dir, last).map_err(|e| e.refusing_import(&item.src))?;
    let meta = f.metadata().at("read", &item.src)?;
    if (meta.dev(), meta.ino()) != item.id {
        return Err(Error::invalid(format!(
            "{shown} was replaced by another file while importing; nothing was imported"
        )));
    }
    Ok(f)
}

/// What the plan walks: the files to import, and the links it skipped (never followed).
#[derive(Default)]
struct Walk {
    files: Vec<Planned>,
    skipped_links: Vec<PathBuf>,
}

/// Plan one regular file: open it (without following, without blocking) to be sure it can be
/// read, and remember which file it is.
fn plan_file(
    dir: &cap_std::fs::Dir,
    at: (&Path, &[OsString]),
    collection: &str,
    name: &str,
    out: &mut Walk,
) -> Result<()> {
    let (root, parts) = at;
    let src: PathBuf = parts.iter().fold(root.to_path_buf(), |p, c| p.join(c));
    check_name(name).map_err(|_| {
        Error::invalid(format!(
            "cannot import {}: unusable file name",
            src.display()
        ))
    })?;
    let last = parts
        .last()
        .ok_or_else(|| Error::invalid("empty import path"))?;
    let f = files::open_regular_at(dir, last).map_err(|e| e.refusing_import(&src))?;
    let meta = f.metadata().at("read", &src)?;
    out.files.push(Planned {
        src,
        root: root.to_path_buf(),
        parts: parts.to_vec(),
        collection: collection.to_string(),
        name: name.to_string(),
        size: meta.len(),
        id: (meta.dev(), meta.ino()),
    });
    Ok(())
}

/// Walk the folder `dir` (at `parts` below `root`), in name order, into `collection`.
/// Symbolic links are skipped and reported, pipes, sockets and devices refuse the import.
fn plan_dir(
    dir: &cap_std::fs::Dir,
    root: &Path,
    parts: &mut Vec<OsString>,
    sub: &[String],
    base: &str,
    out: &mut Walk,
) -> Result<()> {
    let here: PathBuf = parts.iter().fold(root.to_path_buf(), |p, c| p.join(c));
    let mut names: Vec<OsString> = dir
        .entries()
        .and_then(|it| it.map(|e| e.map(|e| e.file_name())).collect())
        .map_err(|e| {
            Error::io(
                format!("cannot read {} (nothing was imported)", here.display()),
                e,
            )
        })?;
    names.sort();
    for name in names {
        let full = here.join(&name);
        let st = files::lstat_at(dir, &name).at("read", &full)?;
        let kind = st.st_mode & libc::S_IFMT;
        parts.push(name.clone());
        if kind == libc::S_IFLNK {
            out.skipped_links.push(full);
        } else if kind == libc::S_IFDIR {
            let child = files::open_dir_at(dir, &name).map_err(|e| e.refusing_import(&full))?;
            let mut sub = sub.to_vec();
            sub.push(catalog_name(&name));
            plan_dir(&child, root, parts, &sub, base, out)?;
        } else {
            // a regular file; anything else is refused with what it is
            let collection = join_path(base, &normalize_collection(&sub.join("/"))?);
            plan_file(dir, (root, parts), &collection, &catalog_name(&name), out)?;
        }
        parts.pop();
    }
    Ok(())
}

/// Plan an import. A path given on the command line is taken by its name: when it is itself a
/// symbolic link the import is refused (say what it points to instead), because in a folder
/// someone else fills, the link may have been put there to make us read another file.
fn plan(paths: &[PathBuf], base: &str) -> Result<Walk> {
    let mut out = Walk::default();
    for p in paths {
        let (parent, root, name) = files::split_open(p)?;
        let st = files::lstat_at(&parent, &name).at("read", p)?;
        let kind = st.st_mode & libc::S_IFMT;
        let mut parts = vec![name.clone()];
        if kind == libc::S_IFLNK {
            return Err(Error::invalid(format!(
                "{} is a symbolic link; consentfs does not follow links (one in a shared folder could point at any file): \
                 give the path it points to (nothing was imported)",
                p.display()
            )));
        } else if kind == libc::S_IFDIR {
            let dir = files::open_dir_at(&parent, &name).map_err(|e| e.refusing_import(p))?;
            plan_dir(&dir, &root, &mut parts, &[], base, &mut out)?;
        } else {
            plan_file(
                &parent,
                (&root, &parts),
                base,
                &catalog_name(&name),
                &mut out,
            )?;
        }
    }
    // sidecars after the photos they belong to, so each finds its photo recorded (the order
    // is otherwise kept)
    out.files
        .sort_by_key(|item| crate::sidecar::is_sidecar(&item.name));
    let mut seen: HashMap<String, &Path> = HashMap::new();
    for item in &out.files {
        let path = join_path(&item.collection, &item.name);
        if let Some(first) = seen.insert(path.clone(), &item.src) {
            return Err(Error::invalid(format!(
                "{} and {} would both become '{path}'; import them into different collections",
                first.display(),
                item.src.display()
            )));
        }
    }
    Ok(out)
}

/// A reader that advances the progress display and looks for metadata that names people.
struct Counting<'a, R> {
    inner: R,
    bar: &'a dyn Progress,
    sniffer: metadata::Sniffer,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.advance(n as u64);
        self.sniffer.feed(&buf[..n]);
        Ok(n)
    }
}

/// exiftool for the import's metadata, started when the first file that may name people
/// comes by; if it is missing the import goes on without metadata and says so once.
#[derive(Default)]
struct Reader {
    tool: Option<Exiftool>,
    missing: Option<String>,
}

impl Reader {
    fn read(&mut self, path: &Path) -> Option<metadata::Embedded> {
        if self.missing.is_some() {
            return None;
        }
        if self.tool.is_none() {
            match Exiftool::start() {
                Ok(t) => self.tool = Some(t),
                Err(e) => {
                    self.missing = Some(e.to_string());
                    return None;
                }
            }
        }
        let tool = self.tool.as_mut()?;
        match metadata::read(tool, path) {
            Ok(e) => Some(e),
            Err(e) => {
                // exiftool died (a hostile file?): go on without it, do not trust its state
                log::warn!("import: exiftool failed on a file, metadata not read: {e}");
                self.tool = None;
                None
            }
        }
    }
}

/// Import `paths` (files, or folders whose files keep their path below them) into
/// `collection`, each with a retention term from now when `retention` (as typed, e.g. `5y`)
/// is given. `bar` is told the bytes to read and advanced as they are read.
pub fn import(
    s: &mut Session,
    collection: &str,
    retention: Option<&str>,
    paths: &[PathBuf],
    bar: &dyn Progress,
) -> Result<Imported> {
    let base = normalize_collection(collection)?;
    let until = match retention {
        Some(r) => Some(
            crate::when::Span::parse(r)?
                .after(s.now)
                .ok_or_else(|| Error::invalid("--retention is out of range"))?,
        ),
        None => None,
    };
    let Walk {
        files: plan,
        skipped_links,
    } = plan(paths, &base)?;
    // A path that already exists is only acceptable when it holds the very same bytes (an
    // import run again after it was interrupted): such a file is not encrypted again.
    let mut already: Vec<Option<i64>> = vec![None; plan.len()];
    for (item, known) in plan.iter().zip(already.iter_mut()) {
        if let Some(existing) = assets::path_taken(s.catalog.conn(), &item.collection, &item.name)?
        {
            let hash = s.store.content_hash_of(&mut open_planned(item)?)?;
            let same =
                assets::find_by_content(s.catalog.conn(), &hash)?.is_some_and(|a| a.id == existing);
            if !same {
                return Err(Error::invalid(format!(
                    "'{}' already exists in the store (asset {existing}) with other content; import into another --collection \
                     (nothing was imported)",
                    join_path(&item.collection, &item.name)
                )));
            }
            *known = Some(existing);
        }
    }
    let total: u64 = plan.iter().map(|p| p.size).sum();
    bar.start(total);
    let mut journal = intents::Journal::new(s.store);
    let mut outcomes = Vec::with_capacity(plan.len());
    let mut meta = Reader::default();
    let result = execute(
        s,
        (&plan, &already),
        until,
        bar,
        &mut journal,
        &mut outcomes,
        &mut meta,
    );
    bar.finish();
    // whatever was written and not recorded (a failed batch, duplicates) goes now
    let finished = journal.finish(s.store, s.catalog.conn());
    if let Err(e) = result {
        let imported = outcomes.iter().filter(|o| o.duplicate_of.is_none()).count();
        if outcomes.is_empty() {
            return Err(e);
        }
        // the batches committed before the error stay: say so instead of "nothing"
        let msg = e
            .to_string()
            .replace("; nothing was imported", "")
            .replace(" (nothing was imported)", "");
        return Err(Error::invalid(format!(
            "{msg}. The first {} file(s) were recorded ({imported} imported), the rest not; once this is solved, \
             the same command imports the rest (what it recorded shows as duplicates)",
            outcomes.len()
        )));
    }
    if let Err(e) = finished {
        log::warn!("cannot remove the unrecorded objects of this import yet: {e}");
    }
    let bytes = outcomes
        .iter()
        .zip(&plan)
        .filter(|(o, _)| o.duplicate_of.is_none())
        .map(|(_, p)| p.size)
        .sum();
    Ok(Imported {
        outcomes,
        skipped_links,
        bytes,
        metadata_unread: meta.missing,
    })
}

/// A batch is recorded after this many files...
const BATCH_FILES: usize = 256;
/// ...or after this much work, whichever comes first: the catalog's write lock is then held
/// for a few milliseconds per batch, never for the import.
const BATCH_TIME: Duration = Duration::from_millis(300);

/// A planned file on its way into the catalog.
enum Pending {
    /// Encrypted into this object, announced in the journal, not recorded yet; with what its
    /// metadata says about people, if it says anything.
    Written(NewObject, Option<metadata::Embedded>),
    /// Its path already holds the same bytes (asset id): not encrypted again.
    Known(i64),
}

/// Encrypt every planned file (outside any transaction) and record them in batches; the
/// outcome of every recorded file is pushed to `outcomes` as its batch commits. `already`
/// holds, per planned file, the asset its path already holds with the same bytes.
fn execute(
    s: &mut Session,
    (plan, already): (&[Planned], &[Option<i64>]),
    retention_until: Option<crate::policy::Time>,
    bar: &dyn Progress,
    journal: &mut intents::Journal,
    outcomes: &mut Vec<Outcome>,
    meta: &mut Reader,
) -> Result<()> {
    let mut seen: HashMap<[u8; 32], (i64, String)> = HashMap::new();
    let mut pending: Vec<Pending> = Vec::new();
    let meta = &mut *meta;
    let mut since = Instant::now();
    for (i, item) in plan.iter().enumerate() {
        match already[i] {
            Some(asset) => {
                bar.advance(item.size);
                pending.push(Pending::Known(asset));
            }
            None => {
                let file = open_planned(item)?;
                let mut reading = Counting {
                    inner: file,
                    bar,
                    sniffer: metadata::Sniffer::default(),
                };
                let obj = journal.put(s.store, &mut reading)?;
                let embedded = if reading.sniffer.found() {
                    meta.read(&item.src).filter(|e| !e.is_empty())
                } else {
                    None
                };
                pending.push(Pending::Written(obj, embedded));
            }
        }
        let last = i + 1 == plan.len();
        if last || pending.len() >= BATCH_FILES || since.elapsed() >= BATCH_TIME {
            let done = outcomes.len();
            record_batch(
                s,
                &plan[done..done + pending.len()],
                &pending,
                retention_until,
                &mut seen,
                outcomes,
            )?;
            pending.clear();
            since = Instant::now();
        }
    }
    Ok(())
}

/// Record one batch in one short transaction, checking again what the plan checked: a path
/// taken meanwhile by other bytes refuses the import, a path holding the same bytes or bytes
/// already in the store make the file a duplicate (its new object removed).
fn record_batch(
    s: &mut Session,
    items: &[Planned],
    pending: &[Pending],
    retention_until: Option<crate::policy::Time>,
    seen: &mut HashMap<[u8; 32], (i64, String)>,
    outcomes: &mut Vec<Outcome>,
) -> Result<()> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let mut batch: HashMap<[u8; 32], (i64, String)> = HashMap::new();
    let mut done = Vec::with_capacity(items.len());
    let mut duplicates = Vec::new();
    for (item, p) in items.iter().zip(pending) {
        let path = join_path(&item.collection, &item.name);
        let taken = assets::path_taken(&tx, &item.collection, &item.name)?;
        let (obj, embedded) = match p {
            Pending::Known(asset) if taken == Some(*asset) => {
                done.push(Outcome {
                    path: path.clone(),
                    status: "duplicate",
                    asset: *asset,
                    duplicate_of: Some(path),
                    linked_from_metadata: Vec::new(),
                    suggested: Vec::new(),
                    sidecar_of: None,
                });
                continue;
            }
            Pending::Known(_) => {
                return Err(Error::invalid(format!(
                    "'{path}' was changed in the store while importing"
                )))
            }
            Pending::Written(obj, embedded) => (obj, embedded.as_ref()),
        };
        let by_content = assets::find_by_content(&tx, &obj.content_hash)?;
        if let Some(existing) = taken {
            if by_content.as_ref().is_none_or(|a| a.id != existing) {
                return Err(Error::invalid(format!(
                    "'{path}' already exists in the store (asset {existing}) with other content; import into another --collection"
                )));
            }
        }
        // Two photos' sidecars may hold the same bytes (a tool's defaults, nobody tagged yet):
        // each is its own photo's, so a sidecar is no duplicate of another file.
        let own_sidecar = crate::sidecar::is_sidecar(&item.name) && taken.is_none();
        let earlier = match by_content {
            _ if own_sidecar => None,
            Some(a) => Some((a.id, a.path())),
            None => seen
                .get(&obj.content_hash)
                .or_else(|| batch.get(&obj.content_hash))
                .cloned(),
        };
        if let Some((asset, dup_path)) = earlier {
            duplicates.push(obj.id);
            done.push(Outcome {
                path,
                status: "duplicate",
                asset,
                duplicate_of: Some(dup_path),
                linked_from_metadata: Vec::new(),
                suggested: Vec::new(),
                sidecar_of: None,
            });
            continue;
        }
        let id = assets::add(&tx, &item.collection, &item.name, Status::Active, obj)?;
        if retention_until.is_some() {
            assets::set_retention(&tx, id, retention_until)?;
        }
        batch.insert(obj.content_hash, (id, path.clone()));
        let sidecar_of = attach_sidecars(&tx, id, &item.collection, &item.name)?;
        // what a sidecar says about people is said about its photo
        let (linked_from_metadata, suggested) = match embedded {
            Some(e) => apply_metadata(&tx, sidecar_of.unwrap_or(id), e)?,
            None => (Vec::new(), Vec::new()),
        };
        done.push(Outcome {
            path,
            status: "imported",
            asset: id,
            duplicate_of: None,
            linked_from_metadata,
            suggested,
            sidecar_of,
        });
    }
    tx.commit()?;
    seen.extend(batch);
    outcomes.extend(done);
    for id in duplicates {
        // announced in the journal: if this fails, `Journal::finish` or the next command's
        // reap removes it
        let _ = s.store.remove_object_files(&id);
    }
    Ok(())
}

/// Join a new asset with its sidecars: a sidecar to its photo (returned), a photo to the
/// sidecars already in its folder that were waiting for it (imported before it, on their own).
fn attach_sidecars(
    tx: &crate::catalog::Tx,
    id: i64,
    collection: &str,
    name: &str,
) -> Result<Option<i64>> {
    if crate::sidecar::is_sidecar(name) {
        if let Some(photo) = assets::sidecar_owner(tx, collection, name)? {
            if assets::attach(tx, id, photo)? {
                return Ok(Some(photo));
            }
        }
        return Ok(None);
    }
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    for candidate in [
        format!("{name}.xmp"),
        format!("{name}.XMP"),
        format!("{stem}.xmp"),
        format!("{stem}.XMP"),
    ] {
        if let Some(waiting) = assets::path_taken(tx, collection, &candidate)? {
            if assets::sidecar_owner(tx, collection, &candidate)? == Some(id) {
                assets::attach(tx, waiting, id)?;
            }
        }
    }
    Ok(None)
}

/// What a new asset's metadata says about people: an id equal to a person's external reference
/// links that person (on record, "from metadata"); a name becomes a suggestion, with the person
/// it names when exactly one has that name. Returns (persons linked, names suggested).
fn apply_metadata(
    tx: &crate::catalog::Tx,
    asset: i64,
    e: &metadata::Embedded,
) -> Result<(Vec<i64>, Vec<String>)> {
    let mut linked = Vec::new();
    for m in &e.ids {
        if let Some(person) = suggestions::person_by_ref(tx, &m.value)? {
            if assets::link(tx, asset, person)? {
                tx.audit(
                    "asset.link.metadata",
                    serde_json::json!({
                        "asset": asset,
                        "person": person,
                        "tag": m.tag,
                        "release_status": e.release_status,
                    }),
                )?;
                linked.push(person);
            }
        }
    }
    let mut suggested = Vec::new();
    for m in &e.names {
        let person = suggestions::person_by_name(tx, &m.value)?;
        if person.is_some_and(|p| linked.contains(&p)) {
            continue;
        }
        if suggestions::suggest_person(tx, asset, &m.value, person, m.tag)? {
            suggested.push(m.value.clone());
        }
    }
    Ok((linked, suggested))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(dir: &Path) -> Vec<Planned> {
        plan(&[dir.to_path_buf()], "").unwrap().files
    }

    /// A file planned as a regular file and swapped afterwards (for a link to a secret, or
    /// its folder for a link to another folder) is not read: each open is checked again.
    #[test]
    fn a_file_swapped_after_planning_is_not_read() {
        let d = tempfile::tempdir().unwrap();
        let shoot = d.path().join("shoot");
        std::fs::create_dir_all(shoot.join("sub")).unwrap();
        std::fs::write(shoot.join("a.jpg"), b"photo").unwrap();
        std::fs::write(shoot.join("sub/passwd"), b"harmless").unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/passwd"), b"root:x:0:0").unwrap();

        let plan = planned(&shoot);
        assert_eq!(plan.len(), 2);
        let mut s = String::new();
        open_planned(&plan[0])
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "photo");

        // the file becomes a link (the original kept aside, so its inode is not reused)
        std::fs::rename(shoot.join("a.jpg"), d.path().join("kept.jpg")).unwrap();
        std::os::unix::fs::symlink(d.path().join("etc/passwd"), shoot.join("a.jpg")).unwrap();
        let e = open_planned(&plan[0]).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");

        // a folder on the way becomes a link to a folder with a file of the same name
        std::fs::rename(shoot.join("sub"), d.path().join("old-sub")).unwrap();
        std::os::unix::fs::symlink(d.path().join("etc"), shoot.join("sub")).unwrap();
        let e = open_planned(&plan[1]).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");

        // another regular file put in its place is refused too
        std::fs::remove_file(shoot.join("a.jpg")).unwrap();
        std::fs::write(shoot.join("a.jpg"), b"other").unwrap();
        let e = open_planned(&plan[0]).unwrap_err().to_string();
        assert!(e.contains("replaced"), "{e}");
    }
}
