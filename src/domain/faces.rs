//! Face detection over the store (DESIGN.md section 14): `faces scan` for what is there, the
//! same after an import, and what a reviewer looks at (`faces show`, `faces list`).
//!
//! The detector itself is behind [`Finder`], so that this module holds only the store's side:
//! which versions still need a scan, decrypting them (in memory, never on disk), recording the
//! boxes, and doing it on every core while the mount keeps serving (each result is committed
//! in a short transaction of its own, so a scan that is killed keeps what it did and the next
//! run goes on from there).

use super::Session;
use crate::catalog::{assets, faces};
use crate::error::{Error, Result};
use crate::export::Progress;
use crate::policy::AssetId;
use serde::Serialize;

/// Photos larger than this are not decrypted into memory for detection (a raw file is tens of
/// MB; a 2 GB video is not a photo); they are reported, not scanned.
pub const MAX_SCAN_BYTES: u64 = 512 << 20;

/// A face detector: the faces on an image given as a file's bytes.
pub trait Finder: Sync {
    /// The faces found, or an error for content that is not an image it can read.
    fn find(&self, image: &[u8]) -> Result<Vec<faces::Face>>;
    /// Which model, as recorded with each scan.
    fn model(&self) -> &str;
}

/// The installed face detector, if there is one (its model is installed apart from
/// consentfs, see [`install_hint`]).
pub fn finder() -> Result<Option<Box<dyn Finder>>> {
    Ok(None)
}

/// How to install the face model.
pub fn install_hint() -> String {
    "run contrib/install-face-model.sh (as root) to install the face detection model".into()
}

/// The photo with numbered boxes drawn around `found`, as a JPEG.
pub fn draw(_image: &[u8], _found: &[faces::Face]) -> Result<Vec<u8>> {
    Err(Error::invalid(install_hint()))
}

/// What a scan did.
#[derive(Debug, Default, Serialize)]
pub struct Scanned {
    /// Assets scanned now, with the number of faces found.
    pub scanned: Vec<(AssetId, usize)>,
    /// Assets that could not be scanned, with the reason (not an image, too large, ...).
    pub skipped: Vec<(AssetId, String)>,
}

/// Which assets to scan.
pub enum Targets {
    /// These assets (ids or paths), also when their current version was scanned already.
    These(Vec<String>),
    /// Every active asset and draft whose current version has no scan yet.
    Unscanned,
}

/// The current version's content of `asset`, decrypted into memory.
fn content(s: &Session, asset: AssetId) -> Result<(i64, Vec<u8>)> {
    let conn = s.catalog.conn();
    let v = assets::version(conn, asset, None)?;
    if v.size > MAX_SCAN_BYTES {
        return Err(Error::invalid(format!(
            "{} bytes, more than the {} MiB scanned",
            v.size,
            MAX_SCAN_BYTES >> 20
        )));
    }
    let wrapped = v
        .wrapped_key
        .as_deref()
        .ok_or_else(|| Error::not_found("its content was shredded"))?;
    let obj = s
        .store
        .open_object(&v.object, wrapped, v.size, &format!("asset {asset}"))?;
    let mut bytes = Vec::with_capacity(v.size as usize);
    obj.copy_verified_to(&mut bytes)?;
    Ok((v.version, bytes))
}

/// Detection threads yield to everything else (nice 10, this thread only): run through the
/// daemon's socket, or beside a mount, they must not slow the mount down.
fn lower_priority() {
    // SAFETY: plain system calls on the calling thread
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// Scan `targets` with `finder` on up to `threads` cores, recording each result as it comes.
pub fn scan(
    s: &mut Session,
    targets: Targets,
    finder: &dyn Finder,
    threads: usize,
    progress: &dyn Progress,
) -> Result<Scanned> {
    let ids: Vec<AssetId> = match targets {
        Targets::These(list) => list
            .iter()
            .map(|a| assets::resolve(s.catalog.conn(), a).map(|r| r.id))
            .collect::<Result<_>>()?,
        Targets::Unscanned => {
            let mut out = Vec::new();
            let mut after = 0;
            loop {
                let batch = faces::unscanned(s.catalog.conn(), after, 10_000)?;
                let Some(last) = batch.last() else { break };
                after = last.0;
                out.extend(batch.into_iter().map(|(a, _)| a));
            }
            out
        }
    };
    progress.start(ids.len() as u64);
    let mut done = Scanned::default();
    // Decrypting needs the catalog (one connection, not shared between threads): the photos
    // are read here in order and handed to the detector threads through a short queue.
    let threads = threads.clamp(1, 16);
    let (to_detect, queue) = std::sync::mpsc::sync_channel::<(AssetId, i64, Vec<u8>)>(threads);
    let queue = std::sync::Mutex::new(queue);
    let (to_record, results) =
        std::sync::mpsc::channel::<(AssetId, i64, Result<Vec<faces::Face>>)>();
    let outcome = std::thread::scope(|scope| -> Result<()> {
        for _ in 0..threads {
            let (queue, to_record) = (&queue, to_record.clone());
            scope.spawn(move || {
                lower_priority();
                loop {
                    let next = queue.lock().map(|q| q.recv());
                    let Ok(Ok((asset, version, bytes))) = next else {
                        break;
                    };
                    let found = finder.find(&bytes);
                    drop(zeroize::Zeroizing::new(bytes));
                    if to_record.send((asset, version, found)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(to_record);
        let record = |s: &mut Session,
                      done: &mut Scanned,
                      (asset, version, found): (AssetId, i64, Result<Vec<faces::Face>>)|
         -> Result<()> {
            match found {
                Ok(found) => {
                    let tx = s.catalog.begin(s.actor, s.now)?;
                    faces::record(&tx, asset, version, &found, finder.model())?;
                    tx.commit()?;
                    done.scanned.push((asset, found.len()));
                }
                Err(e) => done.skipped.push((asset, e.to_string())),
            }
            progress.advance(1);
            Ok(())
        };
        let mut feed = Ok(());
        for &asset in &ids {
            match content(s, asset) {
                Ok((version, bytes)) => {
                    if to_detect.send((asset, version, bytes)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    done.skipped.push((asset, e.to_string()));
                    progress.advance(1);
                }
            }
            // record what is ready, so results do not pile up in memory
            while let Ok(r) = results.try_recv() {
                if let Err(e) = record(s, &mut done, r) {
                    feed = Err(e);
                    break;
                }
            }
            if feed.is_err() {
                break;
            }
        }
        drop(to_detect);
        for r in results.iter() {
            if feed.is_ok() {
                feed = record(s, &mut done, r);
            }
        }
        feed
    });
    progress.finish();
    outcome?;
    Ok(done)
}

/// After an import: scan the photos it imported, if a detector is installed. `Ok(None)` when
/// none is (the caller says once how to install one).
pub fn after_import(
    s: &mut Session,
    imported: &super::import::Imported,
    progress: &dyn Progress,
) -> Result<Option<Scanned>> {
    let ids: Vec<String> = imported
        .outcomes
        .iter()
        .filter(|o| o.duplicate_of.is_none())
        .map(|o| o.asset.to_string())
        .collect();
    if ids.is_empty() {
        return Ok(Some(Scanned::default()));
    }
    let Some(finder) = finder()? else {
        return Ok(None);
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    scan(s, Targets::These(ids), &*finder, threads, progress).map(Some)
}

/// The latest scan of an asset, with who is linked to which face.
#[derive(Debug, Serialize)]
pub struct Shown {
    pub asset: AssetId,
    pub path: String,
    pub scan: Option<faces::Scan>,
    /// (person id, face number) for every linked person.
    pub linked: Vec<(i64, Option<u32>)>,
    pub faces_reviewed: u16,
}

pub fn show(s: &Session, asset: &str) -> Result<Shown> {
    let conn = s.catalog.conn();
    let a = assets::resolve(conn, asset)?;
    Ok(Shown {
        asset: a.id,
        path: a.path(),
        scan: faces::scan_of(conn, a.id)?,
        linked: faces::linked_faces(conn, a.id)?,
        faces_reviewed: a.faces_reviewed,
    })
}

/// The asset's current content and its scan, for drawing the boxes on it (`faces show`); the
/// read is on record like `cat`'s.
pub fn picture(s: &mut Session, asset: &str) -> Result<(Vec<u8>, faces::Scan)> {
    let a = assets::resolve(s.catalog.conn(), asset)?;
    let scan = faces::scan_of(s.catalog.conn(), a.id)?.ok_or_else(|| {
        Error::invalid(format!(
            "asset {} was never scanned for faces: run `consentfs faces scan {}`",
            a.id, a.id
        ))
    })?;
    let (version, bytes) = content(s, a.id)?;
    if version != scan.version {
        return Err(Error::invalid(format!(
            "asset {} has a version newer than its face scan: run `consentfs faces scan {}`",
            a.id, a.id
        )));
    }
    let tx = s.catalog.begin(s.actor, s.now)?;
    tx.audit(
        "access.faces",
        serde_json::json!({ "asset": a.id, "version": version }),
    )?;
    tx.commit()?;
    Ok((bytes, scan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::Quiet;

    /// A detector that "finds" one face per byte 'F' in the content, for the store's side.
    struct Fs;
    impl Finder for Fs {
        fn find(&self, image: &[u8]) -> Result<Vec<faces::Face>> {
            if image.starts_with(b"not an image") {
                return Err(Error::invalid("not an image"));
            }
            Ok(image
                .iter()
                .filter(|b| **b == b'F')
                .enumerate()
                .map(|(i, _)| faces::Face {
                    x: 0.1 * i as f32,
                    y: 0.1,
                    w: 0.05,
                    h: 0.05,
                    score: 0.9,
                })
                .collect())
        }
        fn model(&self) -> &str {
            "test"
        }
    }

    /// Scanning records the count on the asset (what the rules read), a second run scans
    /// nothing new, a new version is scanned again, and content that is not an image is
    /// reported, not recorded as "no faces".
    #[test]
    fn a_scan_records_counts_once_per_version_and_reports_what_it_cannot_read() {
        let (_d, store, mut catalog) = super::super::tests::store_with(&[
            ("a.jpg", b"FF photo"),
            ("b.jpg", b"no faces"),
            ("c.txt", b"not an image"),
        ]);
        let now = chrono::Utc::now();
        let mut s = Session {
            store: &store,
            catalog: &mut catalog,
            actor: "t",
            now,
        };
        let r = scan(&mut s, Targets::Unscanned, &Fs, 2, &Quiet).unwrap();
        assert_eq!(r.scanned.len(), 2, "{r:?}");
        assert_eq!(r.skipped.len(), 1, "{r:?}");
        let a = assets::resolve(s.catalog.conn(), "a.jpg").unwrap();
        assert_eq!(a.faces, 2);
        let again = scan(&mut s, Targets::Unscanned, &Fs, 2, &Quiet).unwrap();
        assert!(again.scanned.is_empty(), "{again:?}");
        // the unreadable one is tried again next time: it has no scan
        assert_eq!(again.skipped.len(), 1);
    }
}
