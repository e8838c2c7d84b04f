//! The assets of the view index in compact form: one fixed-size [`Slot`] per asset in a vector
//! sorted by asset id, names and linked persons in shared arenas, collections and logins
//! interned. A million assets cost about 130 bytes each this way, where owned rows (strings
//! per asset and per purpose, maps of maps) cost well over a kilobyte.

use crate::catalog::assets::{AssetRow, VersionRow};
use crate::crypto::object::ObjectId;
use crate::policy::{AssetId, Status};
use crate::when;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// "No time" in the second fields of a slot.
pub const NO_TIME: i64 = i64::MIN;

/// The current version of an asset, as `stat` and the rules need it (no wrapped key: an open
/// reads that from the catalog).
#[derive(Debug, Clone, Copy)]
pub struct Ver {
    /// (A version per save: 4 billion saves of one photo are not reached; beyond, it stays
    /// at `u32::MAX`.)
    pub number: u32,
    pub size: u64,
    pub created_at: i64,
    pub mtime: i64,
    pub atime: i64,
    pub object: ObjectId,
    pub created_by: u32,
    pub mtime_ns: u32,
    pub atime_ns: u32,
    /// Thinned (its data key destroyed): a current version never is, but a catalog may say
    /// so. Only the fact is kept, not when (a flag costs no room: `Option<Ver>` keeps its
    /// "none" in it, so a slot is 16 bytes smaller than with a number and a time).
    pub thinned: bool,
}

/// A version number as the index keeps it.
pub fn version_number(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(if n < 0 { 0 } else { u32::MAX })
}

/// One asset.
#[derive(Debug, Clone)]
pub struct Slot {
    pub id: AssetId,
    pub created_at: i64,
    pub retention_until: i64,
    /// When its visibility next changes by time alone, in ms ([`NO_TIME`]: never); the key
    /// under which it is filed in the view's timers.
    pub next_at: i64,
    pub version: Option<Ver>,
    pub name: Span,
    pub persons: Span,
    /// Folder id (see [`Folders`]).
    pub folder: u32,
    /// Interned login (see [`Interner`]).
    pub creator: u32,
    pub status: Status,
    pub no_persons: bool,
    pub special_category: bool,
    pub faces: u16,
    pub faces_reviewed: u16,
}

/// A stretch of an arena.
#[derive(Debug, Clone, Copy, Default)]
pub struct Span {
    pub at: u32,
    pub len: u32,
}

/// An append-only arena of bytes or ids; what a changed asset no longer uses is garbage until
/// [`Arena::compact`] copies the live parts.
#[derive(Debug, Default)]
pub struct Arena<T: Copy> {
    pub items: Vec<T>,
    pub garbage: usize,
}

impl<T: Copy> Arena<T> {
    pub fn push(&mut self, items: &[T]) -> Span {
        let at = self.items.len();
        // a catalog row has at most a few hundred bytes of name and a bounded number of links;
        // an arena above 4 Gi items is compacted long before (see `View::compact`)
        self.items.extend_from_slice(items);
        Span {
            at: u32::try_from(at).unwrap_or(u32::MAX),
            len: u32::try_from(items.len()).unwrap_or(0),
        }
    }

    pub fn get(&self, s: Span) -> &[T] {
        let start = s.at as usize;
        self.items
            .get(start..start + s.len as usize)
            .unwrap_or_default()
    }

    pub fn free(&mut self, s: Span) {
        self.garbage += s.len as usize;
    }

    /// Worth compacting: more garbage than live items, and not tiny.
    pub fn wasteful(&self) -> bool {
        self.garbage > 1 << 16 && self.garbage * 2 > self.items.len()
    }
}

/// Names of files: UTF-8 in one arena of bytes.
pub type Names = Arena<u8>;

pub fn name_of(names: &Names, s: Span) -> &str {
    std::str::from_utf8(names.get(s)).unwrap_or_default()
}

/// Strings many assets share (logins), each stored once.
#[derive(Debug, Default)]
pub struct Interner {
    ids: HashMap<Arc<str>, u32>,
    pub strings: Vec<Arc<str>>,
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        let s: Arc<str> = Arc::from(s);
        self.strings.push(s.clone());
        self.ids.insert(s, id);
        id
    }

    pub fn get(&self, id: u32) -> &Arc<str> {
        static EMPTY: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
        self.strings
            .get(id as usize)
            .unwrap_or_else(|| EMPTY.get_or_init(|| Arc::from("")))
    }
}

/// One folder (a collection path) of the store, shared by every purpose.
#[derive(Debug)]
pub struct Folder {
    /// The whole path (`events/2026`), as the assets' collection.
    pub path: Arc<str>,
    pub children: BTreeMap<Arc<str>, u32>,
    pub parent: Option<u32>,
    /// Slots of the assets in this folder (any status), sorted by name, then slot.
    pub files: Vec<u32>,
    /// Per purpose (by index): assets visible in it in this folder and below.
    pub below: Vec<u32>,
}

/// Every folder that holds or held an asset, by path. Folders are never removed (there are few
/// of them); one with nothing visible below it does not exist in that purpose's tree.
#[derive(Debug, Default)]
pub struct Folders {
    pub list: Vec<Folder>,
    by_path: HashMap<Arc<str>, u32>,
    purposes: usize,
}

/// `a//b/` -> `a/b`: the folder path of a collection.
pub fn normalized(path: &str) -> String {
    crate::view::tree::components(path)
        .collect::<Vec<_>>()
        .join("/")
}

impl Folders {
    pub fn new(purposes: usize) -> Folders {
        let mut f = Folders {
            list: Vec::new(),
            by_path: HashMap::new(),
            purposes,
        };
        f.make("", None);
        f
    }

    fn make(&mut self, path: &str, parent: Option<u32>) -> u32 {
        let id = self.list.len() as u32;
        let path: Arc<str> = Arc::from(path);
        self.list.push(Folder {
            path: path.clone(),
            children: BTreeMap::new(),
            parent,
            files: Vec::new(),
            below: vec![0; self.purposes],
        });
        self.by_path.insert(path, id);
        id
    }

    /// The folder of a collection, made (with its parents) if new.
    pub fn intern(&mut self, collection: &str) -> u32 {
        if let Some(&id) = self.by_path.get(collection) {
            return id;
        }
        let mut at = 0u32;
        let mut path = String::new();
        for c in crate::view::tree::components(collection) {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(c);
            at = match self.list[at as usize].children.get(c) {
                Some(&child) => child,
                None => {
                    let child = self.make(&path, Some(at));
                    self.list[at as usize].children.insert(Arc::from(c), child);
                    child
                }
            };
        }
        if collection != path {
            // an unnormalised spelling finds the same folder next time
            self.by_path.insert(Arc::from(collection), at);
        }
        at
    }

    pub fn find(&self, path: &str) -> Option<&Folder> {
        match self.by_path.get(path) {
            Some(&id) => self.list.get(id as usize),
            None => self
                .by_path
                .get(normalized(path).as_str())
                .and_then(|&id| self.list.get(id as usize)),
        }
    }

    pub fn get(&self, id: u32) -> &Folder {
        &self.list[id as usize]
    }

    /// Count a visible asset in purpose `p` in folder `id` and every folder above it (or
    /// uncount it).
    pub fn count(&mut self, id: u32, p: usize, up: bool) {
        let mut at = Some(id);
        while let Some(i) = at {
            let f = &mut self.list[i as usize];
            if let Some(n) = f.below.get_mut(p) {
                *n = if up { *n + 1 } else { n.saturating_sub(1) };
            }
            at = f.parent;
        }
    }
}

/// Bits per slot, one set per purpose.
#[derive(Debug, Default, Clone)]
pub struct Bits(Vec<u64>);

impl Bits {
    pub fn get(&self, i: u32) -> bool {
        self.0
            .get(i as usize / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub fn set(&mut self, i: u32, on: bool) {
        let w = i as usize / 64;
        if self.0.len() <= w {
            self.0.resize(w + 1, 0);
        }
        if on {
            self.0[w] |= 1 << (i % 64);
        } else {
            self.0[w] &= !(1 << (i % 64));
        }
    }
}

impl Ver {
    pub fn from_row(v: &VersionRow, created_by: u32) -> Ver {
        let (mtime, mtime_ns) = split(v.mtime);
        let (atime, atime_ns) = split(v.atime);
        Ver {
            number: version_number(v.version),
            size: v.size,
            created_at: when::to_secs(v.created_at),
            mtime,
            atime,
            thinned: v.thinned_at.is_some(),
            object: v.object,
            created_by,
            mtime_ns,
            atime_ns,
        }
    }

    pub fn to_row(self, created_by: &str) -> VersionRow {
        VersionRow {
            version: i64::from(self.number),
            size: self.size,
            created_at: when::from_secs(self.created_at),
            created_by: created_by.to_string(),
            mtime: join(self.mtime, self.mtime_ns),
            atime: join(self.atime, self.atime_ns),
            // (when is not kept: the version's own time stands for it)
            thinned_at: self.thinned.then(|| when::from_secs(self.created_at)),
            object: self.object,
            wrapped_key: None,
        }
    }
}

fn split(t: Option<crate::policy::Time>) -> (i64, u32) {
    match t {
        Some(t) => (when::to_secs(t), when::subsec_nanos(t) as u32),
        None => (NO_TIME, 0),
    }
}

fn join(secs: i64, nanos: u32) -> Option<crate::policy::Time> {
    (secs != NO_TIME).then(|| when::from_secs_nanos(secs, Some(i64::from(nanos))))
}

/// Everything about an asset but where it lives, from a catalog row.
pub fn slot_of(row: &AssetRow, folder: u32, creator: u32, name: Span, persons: Span) -> Slot {
    Slot {
        id: row.id,
        created_at: when::to_secs(row.created_at),
        retention_until: row.retention_until.map_or(NO_TIME, when::to_secs),
        next_at: NO_TIME,
        version: None,
        name,
        persons,
        folder,
        creator,
        status: row.status,
        no_persons: row.no_persons,
        special_category: row.special_category,
        faces: row.faces,
        faces_reviewed: row.faces_reviewed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A million photos are a million slots: the index's memory at start is mostly these, so
    /// a field that grows them shows here (136 bytes: 136 MB per million photos).
    #[test]
    fn a_slot_stays_small() {
        assert_eq!(
            std::mem::size_of::<Option<Ver>>(),
            std::mem::size_of::<Ver>()
        );
        assert!(
            std::mem::size_of::<Slot>() <= 136,
            "{} bytes",
            std::mem::size_of::<Slot>()
        );
    }

    #[test]
    fn version_numbers_beyond_u32_saturate() {
        assert_eq!(version_number(7), 7);
        assert_eq!(version_number(-3), 0);
        assert_eq!(version_number(i64::MAX), u32::MAX);
    }
}
