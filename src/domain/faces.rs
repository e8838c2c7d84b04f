//! Face detection over the store (DESIGN.md section 14): `faces scan` for what is there, the
//! same after an import, and what a reviewer looks at (`faces show`, `faces list`).
//!
//! The detector itself is behind [`Finder`], so that this module holds only the store's side:
//! which versions still need a scan, decrypting them (in memory, never on disk), recording the
//! boxes, and doing it on every core while the mount keeps serving (each result is committed
//! in a short transaction of its own, so a scan that is killed keeps what it did and the next
//! run goes on from there).

use super::Session;
use crate::catalog::{assets, faces, similar};
use crate::error::{Error, Result};
use crate::export::Progress;
use crate::faces::decode::Rgb;
use crate::policy::AssetId;
use serde::Serialize;

/// Photos larger than this are not decrypted into memory for detection (a raw file is tens of
/// MB; a 2 GB video is not a photo); they are reported, not scanned.
pub const MAX_SCAN_BYTES: u64 = 512 << 20;

/// A face detector: the faces on a decoded image.
pub trait Finder: Sync {
    fn find(&self, image: Rgb) -> Result<Vec<faces::Face>>;
    /// Which model, as recorded with each scan.
    fn model(&self) -> &str;
}

/// The installed RetinaFace detector as a [`Finder`].
struct Installed {
    detector: crate::faces::Detector,
    model: String,
}

impl Finder for Installed {
    fn find(&self, image: Rgb) -> Result<Vec<faces::Face>> {
        let (found, _) = self.detector.detect_decoded(image)?;
        Ok(found.iter().map(face_of).collect())
    }
    fn model(&self) -> &str {
        &self.model
    }
}

fn face_of(f: &crate::faces::FaceBox) -> faces::Face {
    faces::Face {
        x: f.x,
        y: f.y,
        w: f.w,
        h: f.h,
        score: f.score,
    }
}

/// What one photo gave: its perceptual hash, and its faces where a detector ran.
struct Analysis {
    phash: Option<u64>,
    faces: Option<Result<Vec<faces::Face>>>,
}

/// Decode once; hash what it looks like; detect faces if there is a detector.
fn analyse(bytes: &[u8], finder: Option<&dyn Finder>) -> Result<Analysis> {
    let img = crate::faces::decode_for_detection(bytes)?;
    // the hash needs a small picture only
    let (w, h) = (img.width.max(1), img.height.max(1));
    let scale = (256.0 / w.max(h) as f32).min(1.0);
    let small = crate::faces::decode::resize(
        &img,
        ((w as f32 * scale) as usize).max(1),
        ((h as f32 * scale) as usize).max(1),
    );
    let phash = crate::similar::fingerprint(&small.data, small.width as u32, small.height as u32);
    drop(zeroize::Zeroizing::new(small.data));
    Ok(Analysis {
        phash,
        faces: finder.map(|f| f.find(img)),
    })
}

/// The installed face detector, if there is one (its model is installed apart from
/// consentfs, see [`install_hint`]).
pub fn finder() -> Result<Option<Box<dyn Finder>>> {
    Ok(crate::faces::Detector::load()?.map(|detector| {
        Box::new(Installed {
            detector,
            model: format!("retinaface-mnet025/{}", &crate::faces::MODEL_SHA256[..12]),
        }) as Box<dyn Finder>
    }))
}

/// How to install the face model.
pub fn install_hint() -> String {
    crate::faces::install_hint()
}

/// The photo with numbered boxes drawn around `found`, as a JPEG.
pub fn draw(image: &[u8], found: &[faces::Face]) -> Result<Vec<u8>> {
    let boxes: Vec<crate::faces::FaceBox> = found
        .iter()
        .map(|f| crate::faces::FaceBox {
            x: f.x,
            y: f.y,
            w: f.w,
            h: f.h,
            score: f.score,
        })
        .collect();
    crate::faces::draw_boxes(image, &boxes)
}

/// What a scan did.
#[derive(Debug, Default, Serialize)]
pub struct Scanned {
    /// Assets scanned now, with the number of faces found.
    pub scanned: Vec<(AssetId, usize)>,
    /// Assets that could not be scanned, with the reason (not an image, too large, ...).
    pub skipped: Vec<(AssetId, String)>,
    /// (asset, the photo it looks like): suggested as made from it.
    pub lookalikes: Vec<(AssetId, AssetId)>,
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
pub fn lower_priority() {
    // SAFETY: plain system calls on the calling thread
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// Scan `targets` on up to `threads` cores, recording each result as it comes: the perceptual
/// hash of every image (and a suggestion where it looks like a photo already there), and its
/// faces when there is a `finder`.
pub fn scan(
    s: &mut Session,
    targets: Targets,
    finder: Option<&dyn Finder>,
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
    // every image's hash, read once: each new one is compared with these in memory
    let mut known = if ids.is_empty() {
        Vec::new()
    } else {
        similar::all(s.catalog.conn())?
    };
    // Decrypting needs the catalog (one connection, not shared between threads): the photos
    // are read here in order and handed to the detector threads through a short queue.
    let threads = threads.clamp(1, 16);
    let (to_detect, queue) = std::sync::mpsc::sync_channel::<(AssetId, i64, Vec<u8>)>(threads);
    let queue = std::sync::Mutex::new(queue);
    let (to_record, results) = std::sync::mpsc::channel::<(AssetId, i64, Result<Analysis>)>();
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
                    let found = analyse(&bytes, finder);
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
                      known: &mut Vec<(AssetId, u64)>,
                      (asset, version, found): (AssetId, i64, Result<Analysis>)|
         -> Result<()> {
            let a = match found {
                Ok(a) => a,
                Err(e) => {
                    done.skipped.push((asset, e.to_string()));
                    progress.advance(1);
                    return Ok(());
                }
            };
            let tx = s.catalog.begin(s.actor, s.now)?;
            if let Some(h) = a.phash {
                similar::record(&tx, asset, version, h)?;
                let unreviewed =
                    assets::get(&tx, asset)?.is_some_and(|r| r.persons.is_empty() && !r.no_persons);
                if unreviewed {
                    if let Some(original) = crate::similar::nearest(known, asset, h) {
                        if similar::suggest_derive(&tx, asset, original)? {
                            done.lookalikes.push((asset, original));
                        }
                    }
                }
                known.retain(|(a, _)| *a != asset);
                known.push((asset, h));
            }
            match a.faces {
                Some(Ok(found)) => {
                    let model = finder.map_or("", |f| f.model());
                    faces::record(&tx, asset, version, &found, model)?;
                    done.scanned.push((asset, found.len()));
                }
                Some(Err(e)) => done.skipped.push((asset, e.to_string())),
                None => {}
            }
            tx.commit()?;
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
                if let Err(e) = record(s, &mut done, &mut known, r) {
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
                feed = record(s, &mut done, &mut known, r);
            }
        }
        feed
    });
    progress.finish();
    outcome?;
    Ok(done)
}

/// After an import: hash the images it imported (near-duplicates), and detect their faces
/// if a detector is installed. The flag says whether one was (if not, the caller says once
/// how to install one).
pub fn after_import(
    s: &mut Session,
    imported: &super::import::Imported,
    progress: &dyn Progress,
) -> Result<(Scanned, bool)> {
    let ids: Vec<String> = imported
        .outcomes
        .iter()
        .filter(|o| o.duplicate_of.is_none() && o.sidecar_of.is_none())
        .map(|o| o.asset.to_string())
        .collect();
    let finder = finder()?;
    if ids.is_empty() {
        return Ok((Scanned::default(), finder.is_some()));
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let done = scan(s, Targets::These(ids), finder.as_deref(), threads, progress)?;
    Ok((done, finder.is_some()))
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

    /// A detector that "finds" two faces on a mostly red picture and none on others, for the
    /// store's side.
    struct Reds;
    impl Finder for Reds {
        fn find(&self, image: Rgb) -> Result<Vec<faces::Face>> {
            let red = image.data.chunks_exact(3).filter(|p| p[0] > 200).count();
            let n = if red * 2 > image.width * image.height {
                2
            } else {
                0
            };
            Ok((0..n)
                .map(|i| faces::Face {
                    x: 0.1 + 0.3 * i as f32,
                    y: 0.1,
                    w: 0.2,
                    h: 0.2,
                    score: 0.9,
                })
                .collect())
        }
        fn model(&self) -> &str {
            "test"
        }
    }

    fn jpeg(rgb: [u8; 3]) -> Vec<u8> {
        let (w, h) = (64u16, 48u16);
        let data: Vec<u8> = (0..usize::from(w) * usize::from(h))
            .flat_map(|_| rgb)
            .collect();
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 90)
            .encode(&data, w, h, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        out
    }

    /// Scanning records the count on the asset (what the rules read), a second run scans
    /// nothing new, a new version is scanned again, and content that is not an image is
    /// reported, not recorded as "no faces".
    #[test]
    fn a_scan_records_counts_once_per_version_and_reports_what_it_cannot_read() {
        let (red, blue) = (jpeg([230, 20, 20]), jpeg([20, 20, 230]));
        let (_d, store, mut catalog) = super::super::tests::store_with(&[
            ("a.jpg", &red),
            ("b.jpg", &blue),
            ("c.txt", b"not an image"),
        ]);
        let now = chrono::Utc::now();
        let mut s = Session {
            store: &store,
            catalog: &mut catalog,
            actor: "t",
            now,
        };
        let r = scan(&mut s, Targets::Unscanned, Some(&Reds), 2, &Quiet).unwrap();
        assert_eq!(r.scanned.len(), 2, "{r:?}");
        assert_eq!(r.skipped.len(), 1, "{r:?}");
        let a = assets::resolve(s.catalog.conn(), "a.jpg").unwrap();
        assert_eq!(a.faces, 2);
        let again = scan(&mut s, Targets::Unscanned, Some(&Reds), 2, &Quiet).unwrap();
        assert!(again.scanned.is_empty(), "{again:?}");
        // the unreadable one is tried again next time: it has no scan
        assert_eq!(again.skipped.len(), 1);
    }
}
