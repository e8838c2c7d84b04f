//! Exports: the files a user may use for a purpose right now, decrypted into a folder, with a
//! manifest that proves the consent behind every file.
//!
//! Why it is built this way:
//!
//! * The destination is opened once as a capability (`cap_std::fs::Dir`) and every later path
//!   is resolved beneath it, so a hostile asset name (`../x`), an absolute path or a symlink
//!   planted in the destination can never make an export write outside it. Names are also
//!   checked one by one first, so an unusable name is reported, not silently mangled.
//! * Each file is written to a temporary name in its final folder, flushed, then renamed: a
//!   reader of the destination (a web server syncing it) sees the old file or the new one, never
//!   half of one. The manifest is written last, the same way.
//! * With `--sync`, files whose consent lapsed are removed *before* anything new is written:
//!   the most urgent change first.
//! * The manifest's MAC is an HMAC-SHA256 under a key derived from the master key, over the
//!   manifest's JSON with sorted keys and without the `mac` field, so pretty-printing does not
//!   matter and only a holder of the store key can make a manifest that verifies.
//! * The view is decided once at the start and checked again at the end: a consent withdrawn
//!   while the export ran removes that file again before the manifest is written.
//! * The export (what went where, under which MAC) is recorded in the catalog and the audit log
//!   before its first decrypted byte (`export.started`, with the files it is about to write),
//!   and its end after the manifest (`export`, or `export.failed` with the reason, after what
//!   it wrote was removed again). A new export is written into a private folder next to the
//!   destination and moved into place when complete; `--sync` updates in place under a marker
//!   that says "unfinished" until the manifest is written. See [`staging`] for why, and for how
//!   a re-run recognises and replaces what a killed run left.
//! * Decrypted copies are plaintext outside the store's encryption: the destination and every
//!   folder in it are 0700 and every file 0600, whatever the umask, unless the user asks for a
//!   mode (`--mode 0644` for a web server's folder; see [`Modes::parse`] for what is allowed).
//!   The mode is kept in the manifest, so `--sync` keeps it and puts back drifted permissions.
//!   A destination that belongs to another user is refused.
//! * What the export reads back from the destination (the manifest, files it compares) is
//!   opened without following links and without waiting on FIFOs, and the manifest's size is
//!   bounded ([`MAX_MANIFEST_BYTES`]): the destination may be a folder others had access to.

use crate::catalog::assets::{self, check_name, normalize_collection, AssetRow};
use crate::catalog::snapshot::World;
use crate::catalog::{consents, exports, purposes, users, Catalog};
use crate::crypto::Key;
use crate::error::{Error, Result};
pub use crate::files::Modes;
use crate::files::{self, OpenError};
use crate::policy::{self, prefix_covers, AssetId, Status, Time};
use crate::store::Store;
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The manifest's file name in the destination's top folder (reserved there).
pub const MANIFEST: &str = "manifest.json";
/// Temporary files start with this; a leftover one means an export was interrupted.
const TMP_PREFIX: &str = ".consentfs-tmp-";
const FORMAT: &str = "consentfs-export/1";
/// The largest manifest `verify` and `--sync` read, and so the largest an export writes (it
/// refuses, before writing anything, a view whose manifest could be larger: export it in parts
/// with `--collection`). An entry with one person's consent takes about 0.9 KiB, so this is
/// room for about 70,000 files. Parsing costs a few times the size in memory: a file planted
/// as `manifest.json` cannot make `verify` or `--sync` take more than a few hundred MiB.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

pub mod staging;

/// What the command line asked for.
pub struct Options {
    pub login: String,
    pub purpose: String,
    pub dest: PathBuf,
    pub collection: Option<String>,
    pub sync: bool,
    pub strip_location: bool,
    /// Permissions asked for with `--mode`; without, a first export is private (0600/0700) and
    /// `--sync` keeps the mode of the earlier export.
    pub mode: Option<Modes>,
    /// Write renditions (`--max-size`, `--watermark`) instead of the files as stored.
    pub rendition: Option<Rendition>,
}

/// What `export --max-size N [--watermark TEXT]` writes instead of each file: a JPEG at most N
/// pixels on its long side, watermarked when asked, with no metadata at all (made by
/// `crate::rendition`, as the consent page's previews are). Files that are not pictures are
/// refused, not copied as they are.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rendition {
    pub max_size: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
}

/// The files' names in the export `opts` asks for: renditions are JPEGs (see
/// [`rendition_path`]).
fn named_for(want: &mut [Wanted], opts: &Options) -> Result<()> {
    if opts.rendition.is_none() {
        return Ok(());
    }
    let mut seen = BTreeSet::new();
    for w in want.iter_mut() {
        w.path = rendition_path(&w.path);
        if !seen.insert(w.path.clone()) {
            return Err(Error::invalid(format!(
                "two photos would both be exported as {} (a rendition of a non-JPEG gets .jpg after its name); rename one (nothing was exported)",
                w.path
            )));
        }
    }
    Ok(())
}

/// A rendition's name: a JPEG keeps its name, anything else gets `.jpg` after it.
fn rendition_path(path: &str) -> String {
    let lower = path.to_ascii_lowercase();
    if lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
        path.to_string()
    } else {
        format!("{path}.jpg")
    }
}

/// The grant of one linked person that makes a file usable: the proof.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConsentProof {
    pub event: i64,
    pub person: i64,
    pub kind: String,
    pub given_by: i64,
    pub by_guardian: bool,
    pub explicit: bool,
    pub valid_from: Time,
    pub valid_until: Option<Time>,
    pub recorded_at: Time,
    pub recorded_by: String,
    pub evidence: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub path: String,
    pub asset: AssetId,
    pub version: i64,
    pub size: u64,
    pub sha256: String,
    pub location_stripped: bool,
    pub persons: Vec<i64>,
    /// Why the file may be used (`consented`, `no_persons`, `basis`).
    pub reason: String,
    /// The consent events that made it visible, one per linked person (empty when no consent
    /// is needed).
    pub consents: Vec<ConsentProof>,
    /// When the file stops being usable by time alone (an expiry), if known.
    pub valid_until: Option<Time>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub export: i64,
    pub exported_at: Time,
    pub exported_by: String,
    pub user: String,
    pub purpose: String,
    pub purpose_id: i64,
    pub basis: String,
    pub collection: String,
    pub strip_location: bool,
    /// The files are renditions, made like this (absent: the files as stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendition: Option<Rendition>,
    /// The permissions of the exported files (`0600`, or what `--mode` asked for). Absent in
    /// manifests written before modes were recorded (those exports count as private).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The catalog's audit head when the export started: a later `--sync` from a catalog that
    /// does not reach this entry (rolled back, or another store's history) is refused, so it
    /// cannot put back photos whose consent was withdrawn after an older catalog was saved.
    /// Absent in manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_head: Option<crate::catalog::anchor::Head>,
    pub files: Vec<FileEntry>,
    /// `hmac-sha256:<hex>` over the manifest without this field.
    #[serde(default)]
    pub mac: String,
}

/// Refuse to sync a folder exported from a catalog state this catalog does not contain.
fn check_not_newer(conn: &rusqlite::Connection, old: &Manifest, dest: &Path) -> Result<()> {
    let Some(then) = &old.catalog_head else {
        return Ok(());
    };
    let found = crate::catalog::audit::hash_at(conn, then.seq)?.map(hex::encode);
    if found.as_deref() == Some(then.hash.as_str()) {
        return Ok(());
    }
    let now = crate::catalog::anchor::current(conn)?;
    Err(Error::integrity(
        "catalog",
        format!(
            "{} was exported from a newer catalog (audit entry {}) than this one (which ends at entry {}) or from another history: the catalog was rolled back. \
             Syncing could put back photos whose consent was withdrawn since; nothing was changed",
            dest.display(),
            then.seq,
            now.seq
        ),
    ))
}

#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub path: String,
    pub asset: Option<AssetId>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub path: String,
    pub asset: AssetId,
    pub reason: String,
}

/// What an export did, for people and (`--json`) scripts.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    pub export: i64,
    pub dest: String,
    pub user: String,
    pub purpose: String,
    pub files: usize,
    pub bytes: u64,
    pub added: Vec<String>,
    pub replaced: Vec<String>,
    pub removed: Vec<Removed>,
    pub unchanged: usize,
    pub skipped: Vec<Skipped>,
    /// Images whose location metadata exiftool could not strip (damaged or unusual files).
    pub location_kept: Vec<String>,
    pub manifest_mac: String,
}

/// Reports progress (bytes written) while files are exported.
pub trait Progress: Sync {
    fn start(&self, total_bytes: u64);
    fn advance(&self, bytes: u64);
    fn finish(&self);
}

/// No progress display.
pub struct Quiet;
impl Progress for Quiet {
    fn start(&self, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

// ---------------------------------------------------------------------------------------------
// The destination

/// Refuse destinations where decrypted files must never go: inside a consentfs mount (the
/// export would write drafts into someone's view) or inside the store itself.
pub fn check_destination(dest: &Path, store_root: &Path) -> Result<PathBuf> {
    let abs = absolute_resolved(dest)?;
    let store = absolute_resolved(store_root)?;
    if abs.starts_with(&store) {
        return Err(Error::invalid(format!(
            "{} lies inside the store; choose a folder outside it",
            dest.display()
        )));
    }
    for m in crate::mountinfo::mounts() {
        if m.is_consentfs() && abs.starts_with(&m.point) {
            return Err(Error::invalid(format!(
                "{} lies inside the consentfs mount at {}; export to a folder outside the mount",
                dest.display(),
                m.point.display()
            )));
        }
    }
    Ok(abs)
}

/// `path` made absolute with every existing component's symlinks resolved (the part that does
/// not exist yet is appended as given).
fn absolute_resolved(path: &Path) -> Result<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io("cannot read the current folder", e))?
            .join(path)
    };
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return Ok(out);
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return Ok(abs),
        }
    }
}

/// Open (creating if needed, 0700) the destination folder as a capability. A folder that
/// belongs to another user is refused (checked on the opened folder, so a folder swapped in
/// after the check cannot slip through). The caller sets the folder's final mode.
pub fn open_dest(abs: &Path) -> Result<Dir> {
    files::create_dir_all(abs, Modes::PRIVATE.dir)?;
    let dir = Dir::open_ambient_dir(abs, cap_std::ambient_authority())
        .map_err(|e| Error::io_path("open", abs, e))?;
    files::check_owner(&dir, abs)?;
    Ok(dir)
}

/// The regular file `rel` below `dir`, opened without following a link in its last component
/// and without waiting on a FIFO (folders on the way are resolved beneath `dir`).
fn open_regular(dir: &Dir, rel: &str) -> std::result::Result<std::fs::File, OpenError> {
    let (folder, name) = split(rel);
    let sub = if folder.is_empty() {
        dir.try_clone().map_err(OpenError::Io)?
    } else {
        dir.open_dir(disk(folder)).map_err(OpenError::Io)?
    };
    files::open_regular_at(&sub, disk(name).as_os_str())
}

/// The components of a path below the destination, each a usable file name; `None` for a
/// path that could leave the destination or is reserved.
fn safe_components(path: &str) -> Option<Vec<&str>> {
    let parts: Vec<&str> = path.split('/').collect();
    if parts
        .iter()
        .any(|p| check_name(p).is_err() || p.starts_with(TMP_PREFIX))
    {
        return None;
    }
    if parts == [MANIFEST] || parts == [staging::MARKER] {
        return None;
    }
    Some(parts)
}

/// Every non-folder entry below `dir` (files, symlinks, others), as `a/b/c` paths, plus every
/// folder. Symlinks are listed, never followed.
fn walk(
    dir: &Dir,
    prefix: &str,
    files: &mut BTreeMap<String, bool>,
    dirs: &mut Vec<String>,
) -> Result<()> {
    let entries = dir
        .entries()
        .map_err(|e| Error::io(format!("cannot list {}", show_rel(prefix)), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("cannot list {}", show_rel(prefix)), e))?;
        // read back as the catalog keeps names, so a name that is not UTF-8 matches its asset
        let name = crate::names::from_bytes(entry.file_name().as_bytes());
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let ft = entry
            .file_type()
            .map_err(|e| Error::io(format!("cannot stat {rel}"), e))?;
        if ft.is_dir() {
            let sub = entry
                .open_dir()
                .map_err(|e| Error::io(format!("cannot open {rel}"), e))?;
            dirs.push(rel.clone());
            walk(&sub, &rel, files, dirs)?;
        } else {
            files.insert(rel, ft.is_file());
        }
    }
    Ok(())
}

fn show_rel(p: &str) -> &str {
    if p.is_empty() {
        "the destination"
    } else {
        p
    }
}

/// SHA-256 (hex) and size of a regular file below `dir`.
fn hash_file(dir: &Dir, rel: &str) -> Result<(String, u64)> {
    let mut f = open_regular(dir, rel).map_err(|e| e.into_error(rel))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f
            .read(&mut buf)
            .map_err(|e| Error::io(format!("cannot read {rel}"), e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn tmp_name(final_name: &str) -> String {
    let r: [u8; 8] = crate::crypto::random_bytes();
    // keep the real name's end: exiftool recognises the format by its extension. At most 100
    // bytes of it (as on disk), so the temporary name stays under the 255-byte limit whatever
    // the script: 100 characters of a name in Chinese would be 300 bytes.
    let mut keep = Vec::new();
    let mut bytes = 0;
    for c in final_name.chars().rev() {
        bytes += if crate::names::is_escape(c) {
            1
        } else {
            c.len_utf8()
        };
        if bytes > 100 {
            break;
        }
        keep.push(c);
    }
    let keep: String = keep.into_iter().rev().collect();
    format!("{TMP_PREFIX}{}-{keep}", hex::encode(r))
}

/// A new file `tmp` in `dir`, created 0600 whatever the umask (it gets its final mode before
/// it is renamed into place).
fn create_tmp(dir: &Dir, tmp: &str, shown: &str) -> Result<cap_std::fs::File> {
    dir.open_with(
        disk(tmp),
        OpenOptions::new().write(true).create_new(true).mode(0o600),
    )
    .map_err(|e| Error::io(format!("cannot create {shown}"), e))
}

/// Write `bytes` to `rel` below `dir` atomically (temporary name, fsync, rename), with the
/// permissions `modes` (the folders on the way too).
pub fn write_atomic(dir: &Dir, rel: &str, bytes: &[u8], modes: Modes) -> Result<()> {
    let (folder, name) = split(rel);
    let sub = open_folder(dir, folder, Some(modes))?;
    let tmp = tmp_name(name);
    let result = (|| {
        let mut f = create_tmp(&sub, &tmp, rel)?;
        files::set_mode(&f, modes.file, rel)?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io(format!("cannot write {rel}"), e))?;
        sub.rename(disk(&tmp), &sub, disk(name))
            .map_err(|e| Error::io(format!("cannot rename into {rel}"), e))
    })();
    if result.is_err() {
        let _ = sub.remove_file(disk(&tmp));
    }
    result
}

/// A path below the destination, as kept in the catalog and the manifest (text), turned into
/// the bytes it has on disk: names that were not UTF-8 are kept escaped in the text (see
/// `crate::names`), and the exported file must get its original name back, as `ls` in the
/// mount shows it, not the private-use characters that stand for its bytes. Every path the
/// export hands to the file system goes through here; [`walk`] does the reverse.
fn disk(rel: &str) -> PathBuf {
    PathBuf::from(std::ffi::OsString::from_vec(crate::names::to_bytes(rel)))
}

fn split(rel: &str) -> (&str, &str) {
    match rel.rfind('/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => ("", rel),
    }
}

/// The folder `folder` below `dir`; `dir` itself for "". With `create`, missing folders are
/// made and every folder on the way gets the mode `create.dir`.
fn open_folder(dir: &Dir, folder: &str, create: Option<Modes>) -> Result<Dir> {
    let mut cur = dir
        .try_clone()
        .map_err(|e| Error::io("cannot open the destination", e))?;
    if folder.is_empty() {
        return Ok(cur);
    }
    let mut done = 0;
    for part in folder.split('/') {
        done += part.len() + 1;
        let shown = &folder[..(done - 1).min(folder.len())];
        if create.is_some() {
            match cur.create_dir(disk(part)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io(format!("cannot create folder {shown}"), e)),
            }
        }
        let next = cur
            .open_dir(disk(part))
            .map_err(|e| Error::io(format!("cannot open folder {shown}"), e))?;
        if let Some(m) = create {
            files::set_mode(&next, m.dir, shown)?;
        }
        cur = next;
    }
    Ok(cur)
}

// ---------------------------------------------------------------------------------------------
// Location stripping

use crate::exiftool::Exiftool;

/// Formats whose location metadata we strip: JPEG, TIFF (and TIFF-based raw), PNG, WebP, and
/// XMP sidecars (`IMG_0042.CR2.xmp`, exported with their photo; they often hold its place).
fn strippable(head: &[u8]) -> bool {
    head.starts_with(&[0xFF, 0xD8, 0xFF])
        || head.starts_with(b"II*\0")
        || head.starts_with(b"MM\0*")
        || head.starts_with(b"\x89PNG")
        || (head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP")
        || is_xmp(head)
}

/// An XMP packet on its own (what tools write as a sidecar), by its first bytes.
fn is_xmp(head: &[u8]) -> bool {
    let h = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let h = match h.iter().position(|b| !b.is_ascii_whitespace()) {
        Some(at) => &h[at..],
        None => return false,
    };
    h.starts_with(b"<?xpacket")
        || h.starts_with(b"<x:xmpmeta")
        || (h.starts_with(b"<?xml") && h.windows(7).any(|w| w == b"xmpmeta"))
}

// ---------------------------------------------------------------------------------------------
// The manifest

fn mac_of(key: &Key, body: &serde_json::Value) -> Result<String> {
    let mut v = body.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("mac");
    }
    // serde_json's map is sorted by key: the same bytes whatever order the file had
    let bytes = serde_json::to_vec(&v).map_err(|e| Error::invalid(format!("manifest: {e}")))?;
    Ok(format!("hmac-sha256:{}", hex::encode(key.mac(&bytes))))
}

fn seal_manifest(key: &Key, m: &mut Manifest) -> Result<Vec<u8>> {
    m.mac.clear();
    let value = serde_json::to_value(&*m).map_err(|e| Error::invalid(format!("manifest: {e}")))?;
    m.mac = mac_of(key, &value)?;
    let mut out =
        serde_json::to_vec_pretty(&*m).map_err(|e| Error::invalid(format!("manifest: {e}")))?;
    out.push(b'\n');
    Ok(out)
}

/// Read and authenticate `manifest.json`: the manifest, or why it cannot be trusted. A link,
/// FIFO or device in its place, or a file larger than [`MAX_MANIFEST_BYTES`], is not read.
fn read_manifest(dir: &Dir, key: &Key) -> Result<std::result::Result<Manifest, String>> {
    let f = match files::open_regular_at(dir, std::ffi::OsStr::new(MANIFEST)) {
        Ok(f) => f,
        Err(OpenError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Err("there is no manifest.json".into()))
        }
        Err(OpenError::NotRegular(kind)) => {
            return Ok(Err(format!(
                "manifest.json is {kind}, not a regular file; it was not read"
            )))
        }
        Err(OpenError::Io(e)) => return Err(Error::io("cannot read manifest.json", e)),
    };
    let size = f
        .metadata()
        .map_err(|e| Error::io("cannot read manifest.json", e))?
        .len();
    if size > MAX_MANIFEST_BYTES {
        return Ok(Err(format!(
            "manifest.json is {size} bytes, more than the {MAX_MANIFEST_BYTES} an export writes; it was not read"
        )));
    }
    let mut text = String::new();
    // bounded again while reading: the file may grow after the size was looked at
    f.take(MAX_MANIFEST_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::io("cannot read manifest.json", e))?;
    if text.len() as u64 > MAX_MANIFEST_BYTES {
        return Ok(Err(format!(
            "manifest.json grew past {MAX_MANIFEST_BYTES} bytes while it was read; it was not used"
        )));
    }
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return Ok(Err(format!("manifest.json is not valid JSON ({e})"))),
    };
    let stored = value.get("mac").and_then(|m| m.as_str()).unwrap_or("");
    let expected = mac_of(key, &value)?;
    let same: bool = {
        use subtle_eq::ct_eq;
        ct_eq(stored.as_bytes(), expected.as_bytes())
    };
    if !same {
        return Ok(Err(
            "the manifest's MAC does not match: it was changed, or made with another store's key"
                .into(),
        ));
    }
    match serde_json::from_value::<Manifest>(value) {
        Ok(m) if m.format == FORMAT => Ok(Ok(m)),
        Ok(m) => Ok(Err(format!("unknown manifest format '{}'", m.format))),
        Err(e) => Ok(Err(format!("manifest.json has an unexpected shape ({e})"))),
    }
}

mod subtle_eq {
    /// Compare without an early exit, so the time taken says nothing about where they differ.
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// What `export verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub dest: String,
    pub export: Option<i64>,
    pub files: usize,
    pub ok: bool,
    pub problems: Vec<String>,
}

/// Check a destination against its manifest: MAC, then every file's presence, size and SHA-256,
/// and no file that the manifest does not list.
pub fn verify(key: &Key, dest: &Path) -> Result<Verification> {
    let dir = Dir::open_ambient_dir(dest, cap_std::ambient_authority())
        .map_err(|e| Error::io_path("open", dest, e))?;
    let mut problems = Vec::new();
    let manifest = match read_manifest(&dir, key)? {
        Ok(m) => Some(m),
        Err(why) => {
            problems.push(why);
            None
        }
    };
    if let Some(m) = staging::read_marker(&dir, key)? {
        problems.push(format!(
            "an export into this folder was interrupted before it finished ({} is still there); run the same export again",
            staging::MARKER
        ));
        let _ = m;
    }
    let mut listed = BTreeSet::new();
    if let Some(m) = &manifest {
        listed.extend(m.files.iter().map(|f| f.path.clone()));
        // each file is checked by one worker; the findings keep the manifest's order
        let check = |f: &FileEntry| -> Result<Option<String>> {
            if safe_components(&f.path).is_none() {
                return Ok(Some(format!("{}: not a path inside the export", f.path)));
            }
            match dir.symlink_metadata(disk(&f.path)) {
                Ok(md) if md.is_file() => {}
                Ok(_) => return Ok(Some(format!("{}: not a regular file", f.path))),
                Err(_) => return Ok(Some(format!("{}: missing", f.path))),
            }
            // opened without following or blocking: it may have been swapped since the look
            let (sha, size) = match hash_file(&dir, &f.path) {
                Ok(r) => r,
                Err(Error::Invalid(_)) => {
                    return Ok(Some(format!("{}: not a regular file", f.path)))
                }
                Err(e) => return Err(e),
            };
            Ok((size != f.size || sha != f.sha256).then(|| {
                format!(
                    "{}: content differs from the manifest (SHA-256 {sha}, expected {})",
                    f.path, f.sha256
                )
            }))
        };
        for r in parallel_map(&m.files, check) {
            problems.extend(r?);
        }
    }
    if manifest.is_some() {
        let mut present = BTreeMap::new();
        walk(&dir, "", &mut present, &mut Vec::new())?;
        for p in present.keys() {
            if p != MANIFEST && p != staging::MARKER && !listed.contains(p) {
                problems.push(format!("{p}: not in the manifest"));
            }
        }
    }
    Ok(Verification {
        dest: dest.display().to_string(),
        export: manifest.as_ref().map(|m| m.export),
        files: manifest.as_ref().map_or(0, |m| m.files.len()),
        ok: problems.is_empty(),
        problems,
    })
}

// ---------------------------------------------------------------------------------------------
// The export

/// One file that should be in the destination.
struct Wanted {
    asset: AssetRow,
    path: String,
    version: assets::VersionRow,
    reason: String,
    valid_until: Option<Time>,
    consents: Vec<ConsentProof>,
}

fn proofs(
    world: &World,
    events: &HashMap<i64, consents::EventRow>,
    asset: &AssetRow,
    purpose: i64,
    t: Time,
) -> Vec<ConsentProof> {
    policy::covering_grants(&asset.to_policy(), world, purpose, t)
        .into_iter()
        .filter_map(|(person, event)| {
            let e = events.get(&event)?;
            let guardian = world
                .persons
                .get(&person)
                .is_some_and(|p| p.guardians.contains(&e.given_by));
            Some(ConsentProof {
                event,
                person,
                kind: e.kind.as_str().into(),
                given_by: e.given_by,
                by_guardian: e.given_by != person && guardian,
                explicit: e.explicit,
                valid_from: e.starts,
                valid_until: e.expires,
                recorded_at: e.recorded_at,
                recorded_by: e.recorded_by.clone(),
                evidence: e.evidence_object.is_some(),
            })
        })
        .collect()
}

/// The files `login` may use for `purpose` at `t`, below `prefix`: active assets only (drafts
/// are never exported).
fn wanted(
    conn: &rusqlite::Connection,
    login: &str,
    purpose: &purposes::PurposeRow,
    prefix: &str,
    t: Time,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<Wanted>> {
    let world = World::load(conn)?;
    let user = users::resolve(conn, login)?.to_policy();
    let events: HashMap<i64, consents::EventRow> = consents::list(conn, None)?
        .into_iter()
        .map(|e| (e.id, e))
        .collect();
    let mut out = Vec::new();
    for (a, d) in world.decide_all(&user, purpose, t) {
        if !d.visible || a.status != Status::Active || !prefix_covers(prefix, &a.collection) {
            continue;
        }
        let path = a.path();
        if safe_components(&path).is_none() {
            log::warn!(
                "export: asset {} has a name that cannot be exported safely",
                a.id
            );
            skipped.push(Skipped {
                path,
                asset: a.id,
                reason: "its name could leave the destination or is reserved".into(),
            });
            continue;
        }
        let version = assets::version(conn, a.id, None)?;
        if version.wrapped_key.is_none() {
            skipped.push(Skipped {
                path,
                asset: a.id,
                reason: "its content was shredded".into(),
            });
            continue;
        }
        out.push(Wanted {
            consents: proofs(&world, &events, a, purpose.id, t),
            asset: a.clone(),
            path,
            version,
            reason: d.reason.code().into(),
            valid_until: d.valid_until,
        });
    }
    Ok(out)
}

/// Record the end of runs a re-run found interrupted (their leftovers were just removed), once.
pub fn record_interrupted(
    catalog: &mut Catalog,
    actor: &str,
    now: Time,
    markers: &[staging::Marker],
) -> Result<()> {
    if markers.is_empty() {
        return Ok(());
    }
    let tx = catalog.begin(actor, now)?;
    for m in markers {
        let reason = if m.whole {
            "interrupted; a later run removed what it had written"
        } else {
            "interrupted while updating an earlier export; a later run took over"
        };
        // a run killed before its start record was committed decrypted nothing: no record
        let Some(started) = exports::started_run(&tx, &m.run)? else {
            continue;
        };
        match (started.action.as_str(), started.export) {
            ("export.started", Some(id))
                if exports::outcome(&tx, id)? == exports::Outcome::Interrupted =>
            {
                tx.audit(
                    "export.failed",
                    serde_json::json!({ "export": id, "reason": reason }),
                )?;
            }
            ("report.started", _) if !exports::report_ended(&tx, started.seq)? => {
                tx.audit(
                    "report.failed",
                    serde_json::json!({ "started": started.seq, "person": started.person, "reason": reason }),
                )?;
            }
            _ => {}
        }
    }
    tx.commit()
}

/// Export `opts.login`'s view of `opts.purpose` into `opts.dest`.
///
/// The export is recorded (`export.started`, with the files it is about to write) before the
/// first decrypted byte, and its end (`export`, or `export.failed` with the reason) after the
/// last; see [`staging`] for where the files are written until they are complete. On any
/// error what this run wrote is removed again.
pub fn run(
    store: &Store,
    catalog: &mut Catalog,
    actor: &str,
    now: Time,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Summary> {
    // whole seconds: what the catalog stores, and what the manifest says
    let now = crate::when::from_secs(now.timestamp());
    let conn = catalog.conn();
    // a re-created account does not inherit the view of the login's former holder
    users::check_account(&users::resolve(conn, &opts.login)?)?;
    let purpose = purposes::resolve(conn, &opts.purpose)?;
    let prefix = normalize_collection(opts.collection.as_deref().unwrap_or(""))?;
    let abs = check_destination(&opts.dest, store.root())?;
    let mut exiftool = if opts.strip_location {
        Some(Exiftool::start()?)
    } else {
        None
    };
    let key = store.manifest_key();

    // What an interrupted run left goes first (a partial folder, or a new export cut off in
    // place), and that run's end is recorded.
    let interrupted = staging::clear_interrupted(&abs, &key)?;
    record_interrupted(catalog, actor, now, &interrupted)?;
    let conn = catalog.conn();

    // What is there now, and whether we may change it.
    let existing = match std::fs::symlink_metadata(&abs) {
        Ok(_) => Some(open_dest(&abs)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io_path("inspect", &abs, e)),
    };
    let mut present = BTreeMap::new();
    let mut folders = Vec::new();
    if let Some(dir) = &existing {
        walk(dir, "", &mut present, &mut folders)?;
        // the marker of an interrupted --sync is not part of the export
        present.remove(staging::MARKER);
    }
    // Nothing but folders and our own temporary files counts as empty: the leftovers are ours
    // to clear.
    let leftover = |p: &str| {
        p.rsplit('/')
            .next()
            .is_some_and(|n| n.starts_with(TMP_PREFIX))
    };
    let fresh = present.keys().all(|p| leftover(p));
    let old: Option<Manifest> = match &existing {
        None => None,
        Some(_) if fresh => None,
        Some(_) if !opts.sync => {
            return Err(Error::invalid(format!(
                "{} is not empty: choose an empty folder, or pass --sync to update an earlier export there",
                opts.dest.display()
            )))
        }
        Some(dir) => match read_manifest(dir, &key)? {
            Ok(m) => {
                check_not_newer(conn, &m, &opts.dest)?;
                Some(m)
            }
            Err(why) => {
                return Err(Error::invalid(format!(
                    "{} is not an export of this store ({why}); --sync only updates a folder an earlier export made, so nothing was changed",
                    opts.dest.display()
                )))
            }
        },
    };
    if fresh {
        if let Some(dir) = &existing {
            for p in present.keys() {
                dir.remove_file(disk(p))
                    .map_err(|e| Error::io(format!("cannot remove {p}"), e))?;
            }
        }
        present.clear();
    }
    // the mode asked for, else the earlier export's, else private
    let modes = match (opts.mode, old.as_ref().and_then(|m| m.mode.as_deref())) {
        (Some(m), _) => m,
        (None, Some(earlier)) => Modes::parse(earlier).unwrap_or(Modes::PRIVATE),
        (None, None) => Modes::PRIVATE,
    };
    if let (Some(dir), Some(_)) = (&existing, &old) {
        files::set_mode(dir, modes.dir, &opts.dest.display().to_string())?;
        // folders an earlier run made (or someone loosened) get the mode back
        for f in &folders {
            if let Ok(sub) = dir.open_dir(disk(f)) {
                files::set_mode(&sub, modes.dir, f)?;
            }
        }
    }
    let mut base = Manifest {
        format: FORMAT.into(),
        export: 0,
        exported_at: now,
        exported_by: actor.into(),
        user: opts.login.clone(),
        purpose: purpose.name.clone(),
        purpose_id: purpose.id,
        basis: purpose.basis.as_str().into(),
        collection: prefix.clone(),
        strip_location: opts.strip_location,
        rendition: opts.rendition.clone(),
        mode: Some(modes.show()),
        catalog_head: Some(crate::catalog::anchor::current(conn)?),
        files: Vec::new(),
        mac: String::new(),
    };
    let old_strip = old.as_ref().map(|m| m.strip_location);
    let old_rendition = old.as_ref().map(|m| m.rendition.clone());
    let old_entries: HashMap<&str, &FileEntry> = old
        .iter()
        .flat_map(|m| m.files.iter().map(|f| (f.path.as_str(), f)))
        .collect();

    let mut summary = Summary {
        dest: abs.display().to_string(),
        user: opts.login.clone(),
        purpose: purpose.name.clone(),
        ..Summary::default()
    };
    let mut want = wanted(
        conn,
        &opts.login,
        &purpose,
        &prefix,
        now,
        &mut summary.skipped,
    )?;
    named_for(&mut want, opts)?;
    let bound = manifest_bound(&key, &base, &want)?;
    if bound > MAX_MANIFEST_BYTES {
        return Err(Error::invalid(format!(
            "the manifest of this export ({} files) could take {bound} bytes, more than the {MAX_MANIFEST_BYTES} consentfs reads back; export it in parts with --collection (nothing was exported)",
            want.len()
        )));
    }
    let want_paths: BTreeSet<&str> = want.iter().map(|w| w.path.as_str()).collect();

    // Where the files go until they are complete, marked as this run's before the record.
    let marker = staging::Marker::new("export", old.is_none());
    let staged = match existing {
        Some(dir) if old.is_some() => staging::Staging::in_place(dir, &abs, &key, &marker)?,
        other => {
            drop(other);
            staging::Staging::new(&abs, &key, &marker)?
        }
    };
    // Recorded before the first byte: who exported whose view, where, and which files.
    let started = (|| -> Result<i64> {
        let tx = catalog.begin(actor, now)?;
        let planned: Vec<exports::Item> = want
            .iter()
            .map(|w| exports::Item {
                asset: w.asset.id,
                version: w.version.version,
                path: &w.path,
                sha256: "",
            })
            .collect();
        let id = exports::start(
            &tx,
            now.timestamp(),
            actor,
            &opts.login,
            purpose.id,
            &prefix,
            &summary.dest,
            &planned,
        )?;
        tx.audit(
            "export.started",
            serde_json::json!({
                "export": id,
                "run": marker.run,
                "user": opts.login,
                "purpose": purpose.id,
                "planned": want.len(),
                "sync": old.is_some(),
            }),
        )?;
        tx.commit()?;
        Ok(id)
    })();
    let id = match started {
        Ok(id) => id,
        Err(e) => {
            staged.discard();
            return Err(e);
        }
    };
    base.export = id;
    summary.export = id;
    let conn = catalog.conn();
    let dir = staged.dir();
    let wpath = staged.path().to_path_buf();

    let mut entries: Vec<FileEntry> = Vec::new();
    let outcome = (|| -> Result<()> {
        // 1. remove what may no longer be used (and anything else that is not in the view)
        let mut why = WhyNot::new(conn, &opts.login, &purpose, &prefix);
        for path in present.keys() {
            if path == MANIFEST || want_paths.contains(path.as_str()) {
                continue;
            }
            dir.remove_file(disk(path))
                .map_err(|e| Error::io(format!("cannot remove {path}"), e))?;
            let asset = old_entries.get(path.as_str()).map(|f| f.asset);
            summary.removed.push(Removed {
                path: path.clone(),
                asset,
                reason: match asset {
                    Some(a) => why.reason(a, now)?,
                    None => "not part of the export".into(),
                },
            });
        }
        // 2. add and replace, on every core: each file is decrypted, hashed and written by one
        //    worker; the results are folded in the view's order afterwards
        progress.start(want.iter().map(|w| w.version.size).sum());
        let exiftool = exiftool.take().map(std::sync::Mutex::new);
        let one = |w: &Wanted| -> Result<Done> {
            let unchanged = match (old_entries.get(w.path.as_str()), present.get(&w.path)) {
                (Some(o), Some(true))
                    if o.asset == w.asset.id
                        && o.version == w.version.version
                        && old_strip == Some(opts.strip_location)
                        && old_rendition.as_ref() == Some(&opts.rendition) =>
                {
                    let (sha, size) = hash_file(dir, &w.path)?;
                    let same = sha == o.sha256 && size == o.size;
                    if same {
                        // kept as it is, but with the export's permissions
                        let f = open_regular(dir, &w.path).map_err(|e| e.into_error(&w.path))?;
                        files::set_mode(&f, modes.file, &w.path)?;
                    }
                    same.then_some((sha, size))
                }
                _ => None,
            };
            let done = match unchanged {
                Some((sha256, size)) => Done {
                    sha256,
                    size,
                    stripped: opts.strip_location,
                    written: false,
                    kept: false,
                },
                None => match &opts.rendition {
                    Some(r) => write_rendition(store, dir, w, r, modes)?,
                    None => write_one(store, dir, &wpath, w, exiftool.as_ref(), modes)?,
                },
            };
            progress.advance(w.version.size);
            Ok(done)
        };
        let results = parallel_map(&want, one);
        let mut first_error = None;
        for (w, r) in want.iter().zip(results) {
            let d = match r {
                Ok(d) => d,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            if d.kept {
                summary.location_kept.push(w.path.clone());
            }
            if !d.written {
                summary.unchanged += 1;
            } else if present.contains_key(&w.path) {
                summary.replaced.push(w.path.clone());
            } else {
                summary.added.push(w.path.clone());
            }
            summary.bytes += d.size;
            entries.push(FileEntry {
                path: w.path.clone(),
                asset: w.asset.id,
                version: w.version.version,
                size: d.size,
                sha256: d.sha256,
                location_stripped: d.stripped,
                persons: w.asset.persons.clone(),
                reason: w.reason.clone(),
                consents: w.consents.clone(),
                valid_until: w.valid_until,
            });
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        progress.finish();
        // 3. a consent withdrawn while we wrote: take the file out again
        let t = crate::when::from_secs(chrono::Utc::now().timestamp()).max(now);
        let mut still = wanted(conn, &opts.login, &purpose, &prefix, t, &mut Vec::new())?;
        named_for(&mut still, opts)?;
        let still: HashMap<&str, (AssetId, i64)> = still
            .iter()
            .map(|w| (w.path.as_str(), (w.asset.id, w.version.version)))
            .collect();
        let mut kept = Vec::new();
        let mut why = WhyNot::new(conn, &opts.login, &purpose, &prefix);
        for e in entries.drain(..) {
            if still.get(e.path.as_str()) == Some(&(e.asset, e.version)) {
                kept.push(e);
            } else {
                dir.remove_file(disk(&e.path))
                    .map_err(|err| Error::io(format!("cannot remove {}", e.path), err))?;
                summary.added.retain(|p| *p != e.path);
                summary.replaced.retain(|p| *p != e.path);
                summary.bytes -= e.size;
                summary.removed.push(Removed {
                    path: e.path.clone(),
                    asset: Some(e.asset),
                    reason: why.reason(e.asset, t)?,
                });
            }
        }
        entries = kept;
        if old.is_some() {
            // only in a folder that was ours before: never touch folders someone else made
            remove_empty_folders(dir, &folders, &entries);
        }
        Ok(())
    })();
    drop(exiftool.take());

    let mut manifest = Manifest {
        files: entries,
        ..base
    };
    // 4. the manifest last, then the whole into place
    let outcome = outcome.and_then(|()| {
        let bytes = seal_manifest(&key, &mut manifest)?;
        write_atomic(staged.dir(), MANIFEST, &bytes, modes)
    });
    let placed = match outcome {
        Ok(()) => staged.place(modes.dir),
        Err(e) => {
            if old.is_some() {
                // an update in place: take out what this run wrote, so the folder again holds
                // what its (unchanged) manifest lists, minus what lapsed; then the marker
                let undone = undo_sync(staged.dir(), &summary, old.as_ref(), &key, modes);
                match undone {
                    Ok(()) => staged.discard(),
                    Err(u) => log::warn!("export: could not undo a failed --sync: {u}"),
                }
            } else {
                staged.discard();
            }
            Err(e)
        }
    };
    let placed = match placed {
        Ok(p) => p,
        Err(e) => {
            record_failure(catalog, actor, now, id, &e, summary.removed.len())?;
            return Err(e);
        }
    };

    // The outcome is recorded before the marker goes: a destination without a marker always
    // has a completed record.
    let tx = catalog.begin(actor, now)?;
    exports::finish(&tx, id, manifest.files.len(), &manifest.mac)?;
    let items: Vec<exports::Item> = manifest
        .files
        .iter()
        .map(|f| exports::Item {
            asset: f.asset,
            version: f.version,
            path: &f.path,
            sha256: &f.sha256,
        })
        .collect();
    exports::set_items(&tx, id, &items)?;
    tx.audit(
        "export",
        serde_json::json!({
            "export": id,
            "user": opts.login,
            "purpose": purpose.id,
            "files": manifest.files.len(),
            "added": summary.added.len(),
            "replaced": summary.replaced.len(),
            "removed": summary.removed.len(),
            "complete": true,
        }),
    )?;
    tx.commit()?;
    placed.unmark()?;
    summary.files = manifest.files.len();
    summary.manifest_mac = manifest.mac;
    Ok(summary)
}

/// Record that export `id` failed (what it wrote was removed again).
fn record_failure(
    catalog: &mut Catalog,
    actor: &str,
    now: Time,
    id: i64,
    e: &Error,
    removed: usize,
) -> Result<()> {
    let tx = catalog.begin(actor, now)?;
    tx.audit(
        "export.failed",
        serde_json::json!({
            "export": id,
            // the error's kind, not its text: messages can carry names and paths
            "reason": reason_of(e),
            "removed": removed,
        }),
    )?;
    tx.commit()
}

/// Why a run failed, for the audit log: the kind of error and, for damaged data, which object
/// (ids only). The full message goes to the user; it can carry file names and paths, which an
/// append-only log must not keep (an erased person's name could not be taken out again).
pub fn reason_of(e: &Error) -> String {
    match e {
        Error::Integrity { what, .. } => format!("integrity error in {what}"),
        Error::Io { source, .. } => format!("i/o error: {source}"),
        Error::Catalog(c) => format!("catalog error: {c}"),
        Error::WrongKey(_) => "wrong key".into(),
        Error::Denied(_) => "permission denied".into(),
        Error::NotFound(_) => "not found".into(),
        Error::Invalid(_) => "refused".into(),
    }
}

/// A `--sync` failed: remove the files it added or replaced and write a manifest for what is
/// left (the unchanged files of the earlier export), so the folder verifies again and a re-run
/// starts from a true state. Lapsed files it removed stay removed.
fn undo_sync(
    dir: &Dir,
    summary: &Summary,
    old: Option<&Manifest>,
    key: &Key,
    modes: Modes,
) -> Result<()> {
    let written: BTreeSet<&str> = summary
        .added
        .iter()
        .chain(&summary.replaced)
        .map(String::as_str)
        .collect();
    for p in &written {
        match dir.remove_file(disk(p)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("cannot remove {p}"), e)),
        }
    }
    let Some(old) = old else { return Ok(()) };
    let removed: BTreeSet<&str> = summary.removed.iter().map(|r| r.path.as_str()).collect();
    let mut left = old.clone();
    left.files
        .retain(|f| !written.contains(f.path.as_str()) && !removed.contains(f.path.as_str()));
    // files the failed run never reached are still the earlier export's
    let bytes = seal_manifest(key, &mut left)?;
    write_atomic(dir, MANIFEST, &bytes, modes)
}

/// The largest the manifest of exporting `want` can be: every entry with the widest size and
/// export number (removals while exporting only make it smaller).
fn manifest_bound(key: &Key, base: &Manifest, want: &[Wanted]) -> Result<u64> {
    let mut m = Manifest {
        export: i64::MAX,
        files: want
            .iter()
            .map(|w| FileEntry {
                path: w.path.clone(),
                asset: w.asset.id,
                version: w.version.version,
                size: u64::MAX,
                sha256: "0".repeat(64),
                location_stripped: false,
                persons: w.asset.persons.clone(),
                reason: w.reason.clone(),
                consents: w.consents.clone(),
                valid_until: w.valid_until,
            })
            .collect(),
        ..base.clone()
    };
    Ok(seal_manifest(key, &mut m)?.len() as u64)
}

/// Says why assets exported earlier are not part of the view now. The rules' inputs are loaded
/// once, at the first question (a sync may remove many files).
struct WhyNot<'a> {
    conn: &'a rusqlite::Connection,
    login: &'a str,
    purpose: &'a purposes::PurposeRow,
    prefix: &'a str,
    loaded: Option<(World, policy::User)>,
}

impl<'a> WhyNot<'a> {
    fn new(
        conn: &'a rusqlite::Connection,
        login: &'a str,
        purpose: &'a purposes::PurposeRow,
        prefix: &'a str,
    ) -> Self {
        WhyNot {
            conn,
            login,
            purpose,
            prefix,
            loaded: None,
        }
    }

    fn reason(&mut self, asset: AssetId, t: Time) -> Result<String> {
        if self.loaded.is_none() {
            let world = World::load(self.conn)?;
            let user = users::resolve(self.conn, self.login)?.to_policy();
            self.loaded = Some((world, user));
        }
        let Some((world, user)) = &self.loaded else {
            return Ok(String::new());
        };
        let Some(a) = world.assets.iter().find(|a| a.id == asset) else {
            return Ok("the asset no longer exists".into());
        };
        if !prefix_covers(self.prefix, &a.collection) {
            return Ok("outside the exported collection".into());
        }
        let d = world.decide(a, user, self.purpose, t);
        Ok(if d.visible {
            "moved or renamed".into()
        } else {
            d.reason.to_string()
        })
    }
}

/// What happened to one file of the export.
struct Done {
    sha256: String,
    size: u64,
    /// Location metadata was removed.
    stripped: bool,
    /// Written now (not left as it was).
    written: bool,
    /// Stripping was asked for but exiftool could not do it.
    kept: bool,
}

/// `f` over `items` on every core (at most 4 threads); results in the order of `items`. After
/// the first error no new items are started.
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Vec<Result<R>> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
        .min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let mut slots: Vec<Option<Result<R>>> = (0..items.len()).map(|_| None).collect();
    // the workers write the caller's files as the caller, like the thread that starts them
    let caller = crate::caller::current();
    let done: Vec<Vec<(usize, Result<R>)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let caller = caller.clone();
                scope.spawn(|| {
                    let mut out = Vec::new();
                    let acted = crate::caller::act_for(caller, || {
                        while !failed.load(Ordering::Relaxed) {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(item) = items.get(i) else { break };
                            let r = f(item);
                            if r.is_err() {
                                failed.store(true, Ordering::Relaxed);
                            }
                            out.push((i, r));
                        }
                        Ok(())
                    });
                    if let Err(e) = acted {
                        failed.store(true, Ordering::Relaxed);
                        out.push((usize::MAX, Err(e)));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    vec![(usize::MAX, Err(Error::invalid("an export worker failed")))]
                })
            })
            .collect()
    });
    let mut extra = Vec::new();
    for (i, r) in done.into_iter().flatten() {
        match slots.get_mut(i) {
            Some(slot) => *slot = Some(r),
            None => extra.push(r),
        }
    }
    let mut out: Vec<Result<R>> = slots
        .into_iter()
        .map(|s| s.unwrap_or_else(|| Err(Error::invalid("not exported: an earlier file failed"))))
        .collect();
    if let Some(e) = extra.into_iter().next() {
        out.push(e);
    }
    out
}

/// Decrypt one file into a temporary name in its folder, strip location if asked, flush and
/// rename it into place. Returns (SHA-256 hex, size, location stripped).
/// The stored content of `w`'s version, opened for reading (an error once shredded).
fn open_wanted(
    store: &Store,
    w: &Wanted,
) -> Result<crate::crypto::object::Decryptor<crate::store::ObjectSource>> {
    let label = format!("asset {} version {}", w.asset.id, w.version.version);
    let wrapped = w
        .version
        .wrapped_key
        .as_deref()
        .ok_or_else(|| Error::not_found(format!("{label} was shredded")))?;
    store.open_object(&w.version.object, wrapped, w.version.size, &label)
}

/// Write `w` as a rendition `r` (see [`Rendition`]), through a temporary file renamed into
/// place once it is synced, as [`write_one`] writes files.
fn write_rendition(
    store: &Store,
    dir: &Dir,
    w: &Wanted,
    r: &Rendition,
    modes: Modes,
) -> Result<Done> {
    let obj = open_wanted(store, w)?;
    if obj.len() > crate::rendition::MAX_SOURCE_BYTES {
        return Err(Error::invalid(format!(
            "{}: larger than {} bytes, no rendition is made of it",
            w.path,
            crate::rendition::MAX_SOURCE_BYTES
        )));
    }
    let mut bytes = vec![0u8; obj.len() as usize];
    // (read_at fills the whole buffer, chunk by chunk, each authenticated)
    let n = obj.read_at(&mut bytes, 0)?;
    bytes.truncate(n);
    let jpeg = crate::rendition::render(&bytes, r.max_size, r.watermark.as_deref())
        .map_err(|e| Error::invalid(format!("{}: no rendition can be made ({e})", w.path)))?;
    drop(bytes);
    let (folder, name) = split(&w.path);
    let sub = open_folder(dir, folder, Some(modes))?;
    let tmp = tmp_name(name);
    let result = (|| -> Result<Done> {
        let mut file = create_tmp(&sub, &tmp, &w.path)?;
        files::set_mode(&file, modes.file, &w.path)?;
        file.write_all(&jpeg)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(format!("cannot write {}", w.path), e))?;
        sub.rename(disk(&tmp), &sub, disk(name))
            .map_err(|e| Error::io(format!("cannot write {}", w.path), e))?;
        Ok(Done {
            sha256: hex::encode(Sha256::digest(&jpeg)),
            size: jpeg.len() as u64,
            stripped: true,
            written: true,
            kept: false,
        })
    })();
    if result.is_err() {
        let _ = sub.remove_file(disk(&tmp));
    }
    result
}

fn write_one(
    store: &Store,
    dir: &Dir,
    abs: &Path,
    w: &Wanted,
    exiftool: Option<&std::sync::Mutex<Exiftool>>,
    modes: Modes,
) -> Result<Done> {
    let (folder, name) = split(&w.path);
    let sub = open_folder(dir, folder, Some(modes))?;
    let tmp = tmp_name(name);
    let result = (|| -> Result<Done> {
        let file = create_tmp(&sub, &tmp, &w.path)?;
        files::set_mode(&file, modes.file, &w.path)?;
        let obj = open_wanted(store, w)?;
        let mut out = Hashing {
            inner: std::io::BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
            bytes: 0,
        };
        obj.copy_to(&mut out)?;
        let file = out
            .inner
            .into_inner()
            .map_err(|e| Error::io(format!("cannot write {}", w.path), e.into_error()))?;
        let mut result = Done {
            sha256: hex::encode(out.hash.finalize()),
            size: out.bytes,
            stripped: false,
            written: true,
            kept: false,
        };
        if let Some(tool) = exiftool {
            // enough for an XML declaration before an XMP packet's root element
            let mut head = [0u8; 256];
            let n = obj.read_at(&mut head, 0).unwrap_or(0);
            if strippable(&head[..n]) {
                drop(file);
                let tmp_path = abs.join(disk(folder)).join(disk(&tmp));
                let ok = tool
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .strip(&tmp_path)?;
                if ok {
                    let (sha, size) = hash_file(&sub, &tmp)?;
                    (result.sha256, result.size, result.stripped) = (sha, size, true);
                } else {
                    log::warn!("export: exiftool could not strip asset {}", w.asset.id);
                    result.kept = true;
                }
                let f = files::open_regular_at(&sub, disk(&tmp).as_os_str())
                    .map_err(|e| e.into_error(&w.path))?;
                // exiftool wrote a new file under the umask: give it the export's mode again
                files::set_mode(&f, modes.file, &w.path)?;
                f.sync_all()
                    .map_err(|e| Error::io(format!("cannot write {}", w.path), e))?;
            } else {
                file.sync_all()
                    .map_err(|e| Error::io(format!("cannot write {}", w.path), e))?;
            }
        } else {
            file.sync_all()
                .map_err(|e| Error::io(format!("cannot write {}", w.path), e))?;
        }
        sub.rename(disk(&tmp), &sub, disk(name))
            .map_err(|e| Error::io(format!("cannot rename into {}", w.path), e))?;
        Ok(result)
    })();
    if result.is_err() {
        let _ = sub.remove_file(disk(&tmp));
    }
    result
}

/// Remove folders left empty by removals (deepest first), except those that hold exported
/// files.
fn remove_empty_folders(dir: &Dir, folders: &[String], entries: &[FileEntry]) {
    let mut needed = BTreeSet::new();
    for e in entries {
        let mut p = e.path.as_str();
        while let Some(i) = p.rfind('/') {
            p = &p[..i];
            needed.insert(p.to_string());
        }
    }
    let mut all: Vec<&String> = folders.iter().collect();
    all.sort_by_key(|f| std::cmp::Reverse(f.matches('/').count()));
    for f in all {
        if !needed.contains(f.as_str()) {
            // fails (and stays) when not empty: fine
            let _ = dir.remove_dir(disk(f));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_refused() {
        for p in [
            "../x.jpg",
            "a/../../x.jpg",
            "/etc/passwd",
            "a//b.jpg",
            "manifest.json",
            "a/.consentfs-tmp-1-x",
            "",
            ".",
        ] {
            assert!(safe_components(p).is_none(), "{p}");
        }
        for p in [
            "a.jpg",
            "events/2026/a b.jpg",
            "-rf",
            "sub/manifest.json",
            ".hidden",
        ] {
            assert!(safe_components(p).is_some(), "{p}");
        }
    }

    #[test]
    fn the_mac_ignores_layout_but_not_content() {
        let key = Key::random();
        let mut m = Manifest {
            format: FORMAT.into(),
            export: 1,
            exported_at: crate::when::from_secs(1_700_000_000),
            exported_by: "officer".into(),
            user: "anna".into(),
            purpose: "website".into(),
            purpose_id: 1,
            basis: "consent".into(),
            collection: String::new(),
            strip_location: false,
            rendition: None,
            mode: None,
            catalog_head: None,
            files: Vec::new(),
            mac: String::new(),
        };
        let bytes = seal_manifest(&key, &mut m).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let compact = serde_json::to_vec(&value).unwrap();
        let again: serde_json::Value = serde_json::from_slice(&compact).unwrap();
        assert_eq!(mac_of(&key, &again).unwrap(), m.mac);
        let mut changed = again.clone();
        changed["user"] = serde_json::json!("mallory");
        assert_ne!(mac_of(&key, &changed).unwrap(), m.mac);
        assert_ne!(mac_of(&Key::random(), &again).unwrap(), m.mac);
    }
}
