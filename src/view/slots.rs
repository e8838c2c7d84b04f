//! The assets of the view index in compact form: one fixed-size [`Slot`] per asset in a vector
//! sorted by asset id, names and linked persons in shared arenas, collections and logins
//! interned. A million assets cost about 120 bytes each this way, where owned rows (strings
//! per asset and per purpose, maps of maps) cost well over a kilobyte.

use crate::catalog::assets::{AssetRow, VersionRow};
use crate::crypto::object::ObjectId;
use crate::policy::{AssetId, Status};
use crate::when;
use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU64;
use std::sync::Arc;

/// "No time" in the second fields of a slot.
pub const NO_TIME: i64 = i64::MIN;

/// The current version of an asset, as `stat` and the rules need it (no wrapped key: an open
/// reads that from the catalog). 56 bytes, and `Option<Ver>` no more (a [`Stamp`] is never
/// zero).
#[derive(Debug, Clone, Copy)]
pub struct Ver {
    /// The version number in the low 31 bits (2 billion saves of one photo are not reached;
    /// beyond, it stays at the largest), and in the top bit whether it is thinned (its data
    /// key destroyed: a current version never is, but a catalog may say so; only the fact is
    /// kept, not when).
    numbered: u32,
    pub size: u64,
    pub created_at: i64,
    pub mtime: Stamp,
    pub atime: Stamp,
    pub object: ObjectId,
    pub created_by: u32,
}

const THINNED: u32 = 1 << 31;

/// A version number as the index keeps it.
pub fn version_number(n: i64) -> u32 {
    u32::try_from(n.clamp(0, i64::from(THINNED - 1))).unwrap_or(0)
}

/// A file time (seconds from 1970 and nanoseconds) in 8 bytes instead of 12 (16 with
/// padding): the seconds offset by 2^33 in the high 34 bits (the years 1698 to 2242), the
/// nanoseconds in the low 30. At a million assets, with the modification and access time of
/// each, that is 16 MB. A time outside that range is [`Stamp::FAR`] in the slot and kept
/// exactly in the view's side table (`touch -d 1500-01-01` keeps its year, as on a local
/// filesystem, for the few files that have one). Never zero, so `Option<Ver>` needs no room
/// of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(NonZeroU64);

const STAMP_OFFSET: i64 = 1 << 33;
const NANO_BITS: u32 = 30;
const NANO_MASK: u64 = (1 << NANO_BITS) - 1;

impl Stamp {
    /// No time. (Second field 0, reserved, is not a time: see [`Stamp::of`].)
    pub const NONE: Stamp = Stamp(nz(NANO_MASK));
    /// A time outside the range; the exact one is elsewhere.
    pub const FAR: Stamp = Stamp(nz(NANO_MASK - 1));

    /// `t` in 8 bytes (nanoseconds out of range count as 0, as in the catalog's reading).
    pub fn of(t: Option<(i64, u32)>) -> Stamp {
        let Some((secs, nanos)) = t else {
            return Stamp::NONE;
        };
        let nanos = if nanos < 1_000_000_000 { nanos } else { 0 };
        match secs.checked_add(STAMP_OFFSET) {
            // second field 0 is left for NONE and FAR
            Some(s) if s > 0 && s < 2 * STAMP_OFFSET => {
                NonZeroU64::new(((s as u64) << NANO_BITS) | u64::from(nanos))
                    .map_or(Stamp::FAR, Stamp)
            }
            _ => Stamp::FAR,
        }
    }

    /// The time, unless there is none or it is [`Stamp::FAR`].
    pub fn get(self) -> Option<(i64, u32)> {
        let raw = self.0.get();
        let s = (raw >> NANO_BITS) as i64;
        (s != 0).then(|| (s - STAMP_OFFSET, (raw & NANO_MASK) as u32))
    }

    pub fn is_far(self) -> bool {
        self == Stamp::FAR
    }
}

const fn nz(n: u64) -> NonZeroU64 {
    match NonZeroU64::new(n) {
        Some(n) => n,
        None => NonZeroU64::MIN,
    }
}

/// The exact modification and access times of a version whose [`Stamp`] is [`Stamp::FAR`].
pub type FarTimes = (Option<(i64, u32)>, Option<(i64, u32)>);

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
    /// A version as the index keeps it, and its exact times when a [`Stamp`] cannot hold
    /// them (for the view's side table).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        number: i64,
        thinned: bool,
        size: u64,
        created_at: i64,
        mtime: Option<(i64, u32)>,
        atime: Option<(i64, u32)>,
        object: ObjectId,
        created_by: u32,
    ) -> (Ver, Option<FarTimes>) {
        let ver = Ver {
            numbered: version_number(number) | if thinned { THINNED } else { 0 },
            size,
            created_at,
            mtime: Stamp::of(mtime),
            atime: Stamp::of(atime),
            object,
            created_by,
        };
        let far = (ver.mtime.is_far() || ver.atime.is_far()).then_some((mtime, atime));
        (ver, far)
    }

    pub fn from_row(v: &VersionRow, created_by: u32) -> (Ver, Option<FarTimes>) {
        Ver::new(
            v.version,
            v.thinned_at.is_some(),
            v.size,
            when::to_secs(v.created_at),
            split(v.mtime),
            split(v.atime),
            v.object,
            created_by,
        )
    }

    pub fn number(&self) -> u32 {
        self.numbered & !THINNED
    }

    pub fn thinned(&self) -> bool {
        self.numbered & THINNED != 0
    }

    /// The catalog's row again; `far`: the exact times of [`Ver::new`], if it gave any.
    pub fn to_row(self, created_by: &str, far: Option<&FarTimes>) -> VersionRow {
        let pick = |stamp: Stamp, exact: Option<(i64, u32)>| {
            if stamp.is_far() {
                exact
            } else {
                stamp.get()
            }
        };
        VersionRow {
            version: i64::from(self.number()),
            size: self.size,
            created_at: when::from_secs(self.created_at),
            created_by: created_by.to_string(),
            mtime: join(pick(self.mtime, far.and_then(|f| f.0))),
            atime: join(pick(self.atime, far.and_then(|f| f.1))),
            // (when is not kept: the version's own time stands for it)
            thinned_at: self.thinned().then(|| when::from_secs(self.created_at)),
            object: self.object,
            wrapped_key: None,
        }
    }
}

fn split(t: Option<crate::policy::Time>) -> Option<(i64, u32)> {
    t.map(|t| (when::to_secs(t), when::subsec_nanos(t) as u32))
}

fn join(t: Option<(i64, u32)>) -> Option<crate::policy::Time> {
    t.map(|(secs, nanos)| when::from_secs_nanos(secs, Some(i64::from(nanos))))
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
    /// a field that grows them shows here (120 bytes: 120 MB per million photos).
    #[test]
    fn a_slot_stays_small() {
        assert_eq!(
            std::mem::size_of::<Option<Ver>>(),
            std::mem::size_of::<Ver>()
        );
        assert!(
            std::mem::size_of::<Slot>() <= 120,
            "{} bytes",
            std::mem::size_of::<Slot>()
        );
    }

    #[test]
    fn version_numbers_beyond_u32_saturate() {
        assert_eq!(version_number(7), 7);
        assert_eq!(version_number(-3), 0);
        assert_eq!(version_number(i64::MAX), (1 << 31) - 1);
        let (v, _) = Ver::new(i64::MAX, false, 0, 0, None, None, ObjectId([0; 16]), 0);
        assert!(!v.thinned(), "a high version number is not a thinned one");
        let (v, _) = Ver::new(5, true, 0, 0, None, None, ObjectId([0; 16]), 0);
        assert_eq!((v.number(), v.thinned()), (5, true));
    }

    proptest::proptest! {
        #![proptest_config(crate::proptest_config(256))]

        /// Every time a version may have comes back from the index exactly: in its stamp, or
        /// (far from now) from the exact times [`Ver::new`] gives for the side table; and the
        /// stamp is far only outside its range.
        #[test]
        fn times_come_back_exactly(
            m in proptest::option::of((proptest::prop_oneof![
                -(1i64 << 33)..(1i64 << 33),
                when_range(),
            ], 0u32..1_000_000_000)),
            a in proptest::option::of((when_range(), 0u32..1_000_000_000)),
        ) {
            let (v, far) = Ver::new(3, false, 9, 0, m, a, ObjectId([1; 16]), 0);
            for (stamp, t) in [(v.mtime, m), (v.atime, a)] {
                match t {
                    None => proptest::prop_assert_eq!(stamp, Stamp::NONE),
                    Some((s, _)) if s > -(1i64 << 33) && s < (1i64 << 33) => {
                        proptest::prop_assert_eq!(stamp.get(), t)
                    }
                    Some(_) => proptest::prop_assert!(stamp.is_far()),
                }
            }
            proptest::prop_assert_eq!(far.is_some(), v.mtime.is_far() || v.atime.is_far());
            let row = v.to_row("someone", far.as_ref());
            let back = |t: Option<(i64, u32)>| t.map(|(s, n)| when::from_secs_nanos(s, Some(i64::from(n))));
            proptest::prop_assert_eq!(row.mtime, back(m));
            proptest::prop_assert_eq!(row.atime, back(a));
        }
    }

    /// The seconds a stored time may have (see [`crate::when`]), and beyond.
    fn when_range() -> std::ops::Range<i64> {
        -2_209_161_600 - 86_400..32_503_766_400 + 86_400
    }

    #[test]
    fn stamps_at_their_edges() {
        for t in [
            (-(1i64 << 33) + 1, 0),
            ((1i64 << 33) - 1, 999_999_999),
            (0, 0),
            (-1, 5),
        ] {
            assert_eq!(Stamp::of(Some(t)).get(), Some(t));
        }
        for t in [
            (-(1i64 << 33), 0),
            (1i64 << 33, 0),
            (i64::MAX, 0),
            (i64::MIN, 0),
        ] {
            assert!(Stamp::of(Some(t)).is_far(), "{t:?}");
        }
        assert_eq!(Stamp::of(Some((7, 1_500_000_000))).get(), Some((7, 0)));
        assert_eq!(Stamp::NONE.get(), None);
        assert_eq!(Stamp::FAR.get(), None);
        assert_ne!(Stamp::NONE, Stamp::FAR);
    }
}
