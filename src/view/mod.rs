//! The in-memory view index: which assets each (user, purpose) sees right now, and when that next
//! changes by time alone.
//!
//! For assets that are not drafts, the only rule that depends on the user is rule 1 (a grant on
//! the purpose covering the collection). So the index evaluates the rules once per (asset,
//! purpose), as if for a user with a grant on everything, keeps one bit per (asset, purpose),
//! and applies each user's grants when a folder is listed or a file is looked up. That keeps
//! memory proportional to assets, not × purposes or × users.
//!
//! Built for a million assets (see [`slots`]): one compact slot per asset, sorted by id; one
//! folder tree shared by every purpose, whose folders count per purpose what is visible below
//! them (a folder with nothing visible does not exist in that purpose); names and linked
//! persons in arenas; the catalog streamed into it row by row ([`crate::catalog::bulk`]).
//! Drafts (few, and shown to their creator only) keep a small tree per creator and purpose.
//!
//! Updates are incremental: [`View::refresh`] reads the audit entries appended since the last
//! refresh (every change writes one, with the ids it touched) and re-evaluates only the assets
//! they concern: a consent event re-evaluates the assets of that person. Time-driven changes
//! come from [`View::expire`], driven by a timer on [`View::next_transition`]: each asset is
//! filed under the earliest `valid_until` of its decisions, so an expiry re-evaluates just the
//! assets whose time has come.

mod listing;
pub use listing::{listing, Listed};
mod slots;
pub mod tree;

use crate::catalog::assets::{self, AssetRow, VersionRow};
use crate::catalog::audit;
use crate::catalog::purposes::PurposeRow;
use crate::catalog::users::UserRow;
use crate::catalog::{bulk, persons, purposes, snapshot, users};
use crate::error::Result;
use crate::policy::{self, prefix_covers, Access, AssetId, Person, PersonId, PurposeId, Time};
use crate::when;
use rusqlite::Connection;
use slots::{name_of, Arena, Bits, FarTimes, Folders, Interner, Names, Slot, Span, Ver, NO_TIME};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
pub use tree::Dir as Tree;

/// What the mount needs to know of an asset: where it is, and its current version. Made from
/// the compact index on request; its version carries no wrapped key (an open reads that from
/// the catalog, see `catalog::bulk::wrapped_key`).
#[derive(Debug, Clone)]
pub struct AssetInfo {
    pub row: AssetRow,
    pub collection: Arc<str>,
    pub name: Arc<str>,
    pub version: Option<VersionRow>,
}

/// What the mount itself just wrote about one asset, so that the refresh after it need not
/// read it back (see [`View::refresh_knowing`]): after each create and first save of a `tar x`
/// those reads were a quarter of the refresh.
#[derive(Debug, Clone)]
pub enum Known {
    /// A new asset: its rows as inserted.
    New { row: AssetRow, version: VersionRow },
    /// A new current version of `asset`; its row did not change.
    Version { asset: AssetId, version: VersionRow },
}

/// One change in what some view shows, for the mount to push into the kernel's caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An asset appeared in, disappeared from, or changed within a purpose's tree.
    Asset {
        /// `Some(login)` for a draft: only that user's view changed.
        login: Option<Arc<str>>,
        purpose: PurposeId,
        collection: Arc<str>,
        name: Arc<str>,
        asset: AssetId,
        visible: bool,
    },
    /// A user's grants (or existence) changed: their whole tree may look different.
    User { login: String },
    /// Too much changed to say: forget every cached entry.
    All,
}

/// What a run of audit entries touches.
struct Touched {
    persons: HashSet<PersonId>,
    assets: HashSet<AssetId>,
    users: HashSet<String>,
    full: bool,
    purposes_changed: bool,
}

fn classify(entries: &[audit::Entry]) -> Touched {
    let mut t = Touched {
        persons: HashSet::new(),
        assets: HashSet::new(),
        users: HashSet::new(),
        full: false,
        purposes_changed: false,
    };
    for e in entries {
        let d = &e.detail;
        let id = |k: &str| d.get(k).and_then(serde_json::Value::as_i64);
        match e.action.as_str() {
            a if a.starts_with("consent.") || a == "person.guardian" || a == "person.add" => {
                t.persons.extend(id("person"))
            }
            "asset.link" | "asset.unlink" => {
                t.assets.extend(id("asset"));
                t.persons.extend(id("person"));
            }
            a if a.starts_with("asset.") => t.assets.extend(id("asset")),
            "user.add" | "user.grant" | "user.revoke" => {
                if let Some(login) = d.get("user").and_then(serde_json::Value::as_str) {
                    t.users.insert(login.to_string());
                }
            }
            "purpose.add" => t.purposes_changed = true,
            // records of use change no one's view
            a if a.starts_with("access.") => {}
            "store.gc" | "export" | "person.report" => {}
            // a suggestion changes nothing until it is applied (which records its own change)
            a if a.starts_with("suggestion.") => {}
            "person.erase" => t.persons.extend(id("person")),
            _ => t.full = true,
        }
    }
    t
}

/// Where and until when a draft is shown.
#[derive(Debug, Clone)]
struct Shown {
    collection: Arc<str>,
    name: Arc<str>,
    content: Content,
}

/// Which content a slot shows: its version number and that version's object. Both, because
/// saves of one program within seconds update their version in place (`assets::replace_version`):
/// the number stays, the object changes, and the mount must forget the pages of the old one
/// for every user who sees the photo, as for a new version.
type Content = (u32, Option<crate::crypto::object::ObjectId>);

fn content_of(slot: &Slot) -> Content {
    slot.version
        .map_or((0, None), |v| (v.number(), Some(v.object)))
}

/// Where an asset was shown before a change, to tell the mount what to forget.
struct Prev {
    folder: u32,
    /// Still readable in the names arena: it is compacted only between changes.
    name: Span,
    content: Content,
    visible: Vec<bool>,
}

/// What only drafts have.
#[derive(Debug, Clone, Default)]
struct DraftOf {
    /// The purpose folder it was created in (kept after it is deleted or merged).
    purpose: Option<PurposeId>,
    /// The assets its content came from (see `assets::add_sources`).
    sources: Vec<AssetId>,
}

/// What a timer re-evaluates when its time comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// The assets linked to the person: one of their consents starts or ends, or they turn 16.
    Person(PersonId),
    /// One asset: its retention ends, or a draft's sources change.
    Asset(u32),
}

/// A folder's entries: sub-folder names, and files (name, asset).
pub type Listing = (Vec<Arc<str>>, Vec<(Arc<str>, AssetId)>);

pub struct View {
    purposes: HashMap<PurposeId, PurposeRow>,
    /// Purpose ids in index order (the index of a purpose in `visible` and `Folder::below`),
    /// with what the rules need of each, made once.
    pids: Vec<PurposeId>,
    purpose_rules: Vec<policy::Purpose>,
    anyone: Vec<policy::User>,
    /// (foldhash: the rules look a person up for every asset and purpose at start.)
    persons: snapshot::PersonMap,
    users: HashMap<String, UserRow>,
    /// Every asset, sorted by id.
    slots: Vec<Slot>,
    names: Names,
    linked: Arena<PersonId>,
    logins: Interner,
    folders: Folders,
    /// Per purpose index: which slots are visible (to anyone with a grant covering them).
    visible: Vec<Bits>,
    /// Slots of the assets linked to each person.
    by_person: foldhash::HashMap<PersonId, Vec<u32>>,
    /// Drafts' purpose and sources, by asset.
    draft_of: HashMap<AssetId, DraftOf>,
    /// Drafts made from each asset (the reverse of the sources): a change to the source (its
    /// persons, their consents) re-evaluates them.
    derived: HashMap<AssetId, HashSet<AssetId>>,
    /// Drafts, per creator and purpose: shown only to their creator.
    drafts: HashMap<(Arc<str>, PurposeId), Tree>,
    draft_shown: HashMap<AssetId, (Arc<str>, PurposeId, Shown)>,
    /// Number of drafts (any place) per creator, for the per-user bound on drafts.
    draft_counts: HashMap<String, usize>,
    /// (ms, what): when some visibility may next change by time alone.
    timers: BTreeSet<(i64, Timer)>,
    /// The timer of each person with a moment ahead.
    person_next: HashMap<PersonId, i64>,
    /// Sidecars and their photos, both ways: a sidecar's slot holds its photo's persons and
    /// flags (see `assets::Inherited`), so a change to the photo re-files its sidecars.
    photo_of: HashMap<AssetId, AssetId>,
    sidecars: HashMap<AssetId, Vec<AssetId>>,
    /// The exact times of current versions whose [`slots::Stamp`]s say `Stamp::FAR`.
    far_times: HashMap<AssetId, FarTimes>,
    last_seq: i64,
}

impl policy::People for View {
    fn person(&self, id: PersonId) -> Option<&Person> {
        self.persons.get(&id)
    }
}

/// A user with a read grant on everything in `purpose`: the rules for the non-user parts.
fn anyone(purpose: PurposeId) -> policy::User {
    policy::User {
        login: String::new(),
        grants: vec![policy::Grant {
            purpose,
            prefix: String::new(),
            access: Access::Read,
        }],
    }
}

/// This process's resident memory, for the debug log of a load.
fn resident_mib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096 / (1 << 20))
}

/// A moment as timer key: milliseconds, rounded up (a timer never fires before its time).
fn timer_ms(t: Time) -> i64 {
    let ms = t.timestamp_millis();
    if t.timestamp_subsec_nanos().is_multiple_of(1_000_000) {
        ms
    } else {
        ms.saturating_add(1)
    }
}

fn ms_time(ms: i64) -> Time {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// The current version of every asset, the logins that made them, and the exact times of
/// those whose times a [`slots::Stamp`] cannot hold.
type Versions = (Vec<(AssetId, Ver)>, Interner, HashMap<AssetId, FarTimes>);

/// The current version of every asset, sorted by asset id, with the logins that made them
/// interned apart (each `Ver::created_by` indexes the returned interner) and the exact far
/// times. Read on a connection of its own, in a thread of its own, while the assets are read:
/// at a million assets each takes over a second.
fn read_versions(conn: &Connection) -> Result<Versions> {
    let mut logins = Interner::default();
    let mut out: Vec<(AssetId, Ver)> = Vec::new();
    let mut far: HashMap<(AssetId, u32), FarTimes> = HashMap::new();
    bulk::each_version(conn, |v| {
        let nanos =
            |n: Option<i64>| n.filter(|n| (0..1_000_000_000).contains(n)).unwrap_or(0) as u32;
        let (ver, exact) = Ver::new(
            v.version,
            v.thinned_at.is_some(),
            u64::try_from(v.size).unwrap_or(0),
            v.created_at,
            v.mtime.map(|(s, n)| (s, nanos(n))),
            v.atime.map(|(s, n)| (s, nanos(n))),
            v.object,
            logins.intern(v.created_by),
        );
        if let Some(exact) = exact {
            far.insert((v.asset, ver.number()), exact);
        }
        out.push((v.asset, ver));
    })?;
    // the highest version of each asset last, then one per asset
    out.sort_unstable_by_key(|(a, v)| (*a, v.number()));
    let mut keep: Vec<(AssetId, Ver)> = Vec::with_capacity(out.len());
    for (a, v) in out {
        match keep.last_mut() {
            Some(last) if last.0 == a => *last = (a, v),
            _ => keep.push((a, v)),
        }
    }
    let far = keep
        .iter()
        .filter_map(|(a, v)| far.remove(&(*a, v.number())).map(|f| (*a, f)))
        .collect();
    Ok((keep, logins, far))
}

impl View {
    /// Build the whole index from the catalog, streaming its rows.
    pub fn load(conn: &Connection, now: Time) -> Result<View> {
        View::load_with(conn, Vec::new(), now)
    }

    /// [`View::load`], with more connections read in threads of their own while this one
    /// reads the assets: the last of `helpers` reads persons and links, the one before it the
    /// versions (what is missing is read on `conn` afterwards). All read after the last audit
    /// entry is taken, so what any of them misses of a change made meanwhile is caught up by
    /// the next [`View::refresh`], as with one connection.
    pub fn load_with(
        conn: &Connection,
        mut helpers: Vec<&mut Connection>,
        now: Time,
    ) -> Result<View> {
        let (helper, for_versions) = (helpers.pop(), helpers.pop());
        type Side = (snapshot::PersonMap, Vec<(AssetId, PersonId)>);
        let read_side = |c: &Connection| -> Result<Side> {
            let persons = snapshot::persons(c)?;
            let mut links: Vec<(AssetId, PersonId)> = Vec::new();
            bulk::each_link(c, |a, p| links.push((a, p)))?;
            Ok((persons, links))
        };
        let last_seq = audit::last_seq(conn)?;
        std::thread::scope(|scope| {
            let side = helper.map(|h| scope.spawn(move || read_side(h)));
            let versions = for_versions.map(|h| scope.spawn(move || read_versions(h)));
            let stopped = |what: &str| {
                crate::error::Error::integrity(
                    "view index",
                    format!("the thread reading {what} stopped"),
                )
            };
            View::load_parts(
                conn,
                last_seq,
                now,
                move || match versions {
                    Some(h) => h.join().unwrap_or_else(|_| Err(stopped("versions"))),
                    None => read_versions(conn),
                },
                move || match side {
                    Some(h) => h.join().unwrap_or_else(|_| Err(stopped("persons"))),
                    None => read_side(conn),
                },
            )
        })
    }

    /// Assets and versions from `conn`; persons and links from `side` (called once they are
    /// read); then the rules for every asset.
    fn load_parts(
        conn: &Connection,
        last_seq: i64,
        now: Time,
        versions: impl FnOnce() -> Result<Versions>,
        side: impl FnOnce() -> Result<(snapshot::PersonMap, Vec<(AssetId, PersonId)>)>,
    ) -> Result<View> {
        let t = std::time::Instant::now();
        let purposes: HashMap<PurposeId, PurposeRow> = purposes::list(conn)?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let mut pids: Vec<PurposeId> = purposes.keys().copied().collect();
        pids.sort_unstable();
        let mut view = View {
            purpose_rules: pids.iter().map(|p| purposes[p].to_policy()).collect(),
            anyone: pids.iter().map(|p| anyone(*p)).collect(),
            visible: vec![Bits::default(); pids.len()],
            folders: Folders::new(pids.len()),
            pids,
            purposes,
            persons: Default::default(),
            users: users::list(conn)?
                .into_iter()
                .map(|u| (u.login.clone(), u))
                .collect(),
            slots: Vec::new(),
            names: Names::default(),
            linked: Arena::default(),
            logins: Interner::default(),
            by_person: Default::default(),
            draft_of: HashMap::new(),
            derived: HashMap::new(),
            drafts: HashMap::new(),
            draft_shown: HashMap::new(),
            draft_counts: HashMap::new(),
            timers: BTreeSet::new(),
            person_next: HashMap::new(),
            photo_of: HashMap::new(),
            sidecars: HashMap::new(),
            far_times: HashMap::new(),
            last_seq,
        };
        bulk::each_asset(conn, |a| {
            let folder = view.folders.intern(a.collection);
            let slot = Slot {
                id: a.id,
                created_at: a.created_at,
                retention_until: a.retention_until.unwrap_or(NO_TIME),
                next_at: NO_TIME,
                version: None,
                name: view.names.push(a.name.as_bytes()),
                persons: Span::default(),
                folder,
                creator: view.logins.intern(a.creator),
                status: a.status,
                no_persons: a.no_persons,
                special_category: a.special_category,
                faces: a.faces,
                faces_reviewed: a.faces_reviewed,
            };
            if a.draft_purpose.is_some() {
                view.draft_of.entry(a.id).or_default().purpose = a.draft_purpose;
            }
            if a.status == policy::Status::Draft {
                *view.draft_counts.entry(a.creator.to_string()).or_default() += 1;
            }
            if let Some(photo) = a.companion_of {
                view.photo_of.insert(a.id, photo);
                view.sidecars.entry(photo).or_default().push(a.id);
            }
            view.slots.push(slot);
            Ok(())
        })?;
        log::debug!(
            "index: assets at {} ms, {} MiB resident",
            t.elapsed().as_millis(),
            resident_mib()
        );
        let (versions, creators, far) = versions()?;
        view.far_times = far;
        let creators: Vec<u32> = creators
            .strings
            .iter()
            .map(|l| view.logins.intern(l))
            .collect();
        // both runs are sorted by asset id: one merge walk
        let mut i = 0usize;
        for (asset, mut ver) in versions {
            while i < view.slots.len() && view.slots[i].id < asset {
                i += 1;
            }
            if i < view.slots.len() && view.slots[i].id == asset {
                ver.created_by = creators.get(ver.created_by as usize).copied().unwrap_or(0);
                view.slots[i].version = Some(ver);
            }
        }
        log::debug!(
            "index: versions at {} ms, {} MiB resident",
            t.elapsed().as_millis(),
            resident_mib()
        );
        let (persons, links) = side()?;
        view.persons = persons;
        log::debug!(
            "index: persons and links at {} ms, {} MiB resident",
            t.elapsed().as_millis(),
            resident_mib()
        );
        // links come ordered by asset, as the slots are: one merge walk over both (a search
        // per asset was a tenth of this step)
        let mut k = 0;
        let mut i = 0usize;
        let mut persons: Vec<PersonId> = Vec::new();
        while k < links.len() {
            let a = links[k].0;
            let run = links[k..].iter().take_while(|(x, _)| *x == a).count();
            persons.clear();
            persons.extend(links[k..k + run].iter().map(|(_, p)| *p));
            k += run;
            while i < view.slots.len() && view.slots[i].id < a {
                i += 1;
            }
            if i < view.slots.len() && view.slots[i].id == a {
                view.slots[i].persons = view.linked.push(&persons);
                for p in &persons {
                    view.by_person.entry(*p).or_default().push(i as u32);
                }
            }
        }
        drop(links);
        view.inherit_all();
        log::debug!(
            "index: links filed at {} ms, {} MiB resident",
            t.elapsed().as_millis(),
            resident_mib()
        );
        for (draft, sources) in assets::all_sources(conn)? {
            for s in &sources {
                view.derived.entry(*s).or_default().insert(draft);
            }
            view.draft_of.entry(draft).or_default().sources = sources;
        }
        for i in 0..view.slots.len() as u32 {
            let f = view.slots[i as usize].folder;
            view.folders.list[f as usize].files.push(i);
        }
        let (names, slots) = (&view.names, &view.slots);
        for f in &mut view.folders.list {
            f.files.sort_unstable_by(|a, b| {
                let (x, y) = (&slots[*a as usize], &slots[*b as usize]);
                names.get(x.name).cmp(names.get(y.name)).then(a.cmp(b))
            });
        }
        let ids: Vec<PersonId> = view.persons.keys().copied().collect();
        for pid in ids {
            view.time_person(pid, now);
        }
        log::debug!(
            "index: folders and timers at {} ms, {} MiB resident",
            t.elapsed().as_millis(),
            resident_mib()
        );
        if view.pids.len() > 64 {
            for i in 0..view.slots.len() as u32 {
                view.evaluate(i, now, None, None);
            }
        } else {
            let decided = view.decide_all(now);
            if decided.len() != view.slots.len() {
                return Err(crate::error::Error::integrity(
                    "view index",
                    "a thread deciding the rules stopped",
                ));
            }
            let mut shown = vec![false; view.pids.len()];
            for (i, (bits, next)) in decided.into_iter().enumerate() {
                for (p, on) in shown.iter_mut().enumerate() {
                    *on = bits & (1 << p) != 0;
                }
                view.apply(i as u32, now, None, None, &shown, next);
            }
        }
        log::debug!(
            "index: evaluated at {} ms, {} MiB resident",
            t.elapsed().as_millis(),
            resident_mib()
        );
        Ok(view)
    }

    /// Give each sidecar's slot its photo's persons and flags, once both are loaded.
    fn inherit_all(&mut self) {
        let pairs: Vec<(AssetId, AssetId)> = self.photo_of.iter().map(|(s, p)| (*s, *p)).collect();
        for (sidecar, photo) in pairs {
            let (Some(i), Some(o)) = (self.index_of(sidecar), self.index_of(photo)) else {
                continue;
            };
            let from = self.slots[o as usize].clone();
            // a photo that is not active shows its sidecar nowhere (see `Inherited::apply`)
            let active = from.status == policy::Status::Active;
            let persons = if active {
                self.linked.get(from.persons).to_vec()
            } else {
                Vec::new()
            };
            let s = &mut self.slots[i as usize];
            s.no_persons = from.no_persons && active;
            s.special_category = from.special_category;
            s.faces = from.faces;
            s.faces_reviewed = from.faces_reviewed;
            s.retention_until = from.retention_until;
            self.linked.free(s.persons);
            s.persons = self.linked.push(&persons);
            for p in persons {
                self.by_person.entry(p).or_default().push(i);
            }
        }
    }

    /// The slot of an asset.
    fn index_of(&self, id: AssetId) -> Option<u32> {
        self.slots
            .binary_search_by_key(&id, |s| s.id)
            .ok()
            .map(|i| i as u32)
    }

    fn name(&self, s: &Slot) -> &str {
        name_of(&self.names, s.name)
    }

    /// The rules' input for an asset (a draft's with what it was made from, if `with_sources`).
    /// [`View::policy_asset`] into an existing one, reusing its allocations.
    fn fill_policy_asset(&self, i: u32, a: &mut policy::Asset) {
        let s = &self.slots[i as usize];
        a.id = s.id;
        a.collection.clear();
        a.collection.push_str(&self.folders.get(s.folder).path);
        a.status = s.status;
        a.creator.clear();
        a.creator.push_str(self.logins.get(s.creator));
        a.created_at = when::from_secs(s.created_at);
        a.no_persons = s.no_persons;
        a.special_category = s.special_category;
        a.persons.clear();
        a.persons.extend_from_slice(self.linked.get(s.persons));
        a.faces = s.faces;
        a.faces_reviewed = s.faces_reviewed;
        a.retention_until =
            (s.retention_until != NO_TIME).then(|| when::from_secs(s.retention_until));
        a.draft_purpose = self.draft_of.get(&s.id).and_then(|d| d.purpose);
        a.derived_from.clear();
        a.sidecar_of = self.photo_of.get(&s.id).copied();
    }

    fn policy_asset(&self, i: u32, with_sources: bool) -> policy::Asset {
        let s = &self.slots[i as usize];
        let d = self.draft_of.get(&s.id);
        let mut a = policy::Asset {
            id: s.id,
            collection: self.folders.get(s.folder).path.to_string(),
            status: s.status,
            creator: self.logins.get(s.creator).to_string(),
            created_at: when::from_secs(s.created_at),
            no_persons: s.no_persons,
            special_category: s.special_category,
            persons: self.linked.get(s.persons).to_vec(),
            faces: s.faces,
            faces_reviewed: s.faces_reviewed,
            retention_until: (s.retention_until != NO_TIME)
                .then(|| when::from_secs(s.retention_until)),
            draft_purpose: d.and_then(|d| d.purpose),
            derived_from: Vec::new(),
            sidecar_of: self.photo_of.get(&s.id).copied(),
        };
        if with_sources {
            if let Some(d) = d {
                a.derived_from = d
                    .sources
                    .iter()
                    .filter_map(|s| self.index_of(*s))
                    .map(|i| self.policy_asset(i, false))
                    .collect();
            }
        }
        a
    }

    /// Where the asset is shown now, to compare with after a change.
    fn prev_of(&self, i: u32) -> Prev {
        let s = &self.slots[i as usize];
        Prev {
            folder: s.folder,
            name: s.name,
            content: content_of(s),
            visible: self.visible.iter().map(|b| b.get(i)).collect(),
        }
    }

    fn change_at(
        &self,
        folder: u32,
        name: Span,
        purpose: PurposeId,
        id: AssetId,
        visible: bool,
    ) -> Change {
        Change::Asset {
            login: None,
            purpose,
            collection: self.folders.get(folder).path.clone(),
            name: Arc::from(name_of(&self.names, name)),
            asset: id,
            visible,
        }
    }

    /// Evaluate one asset in every purpose, update visibility, folder counts and timers, and
    /// record what changed since `prev` (since now, when `None`) into `changes` (if given).
    fn evaluate(
        &mut self,
        i: u32,
        now: Time,
        changes: Option<&mut Vec<Change>>,
        prev: Option<Prev>,
    ) {
        let mut shown = vec![false; self.pids.len()];
        let mut input = None;
        let next = self.decide(i, now, &mut input, &mut shown);
        self.apply(i, now, changes, prev, &shown, next);
    }

    /// The rules for slot `i` in every purpose (not as a draft): which purposes show it, and
    /// when that next changes. `input` is a scratch buffer (no allocation per asset).
    fn decide(
        &self,
        i: u32,
        now: Time,
        input: &mut Option<policy::Asset>,
        shown: &mut [bool],
    ) -> Option<Time> {
        shown.iter_mut().for_each(|x| *x = false);
        let slot = &self.slots[i as usize];
        slot.version?;
        let input = match input {
            Some(a) => {
                self.fill_policy_asset(i, a);
                a
            }
            None => input.insert(self.policy_asset(i, false)),
        };
        // Visibility only: when it changes by time is filed per person (their consents'
        // starts and ends, their 16th birthday: see `person_moment`) and here per asset
        // (retention), so no asset needs the search for its next flip that `decide` does.
        let mut next: Option<Time> = None;
        let timed = matches!(slot.status, policy::Status::Active | policy::Status::Draft);
        for (p, seen) in shown.iter_mut().enumerate() {
            let rules = &self.purpose_rules[p];
            *seen = policy::evaluate_at(input, self, &self.anyone[p], rules, now).0;
            if let Some(end) = policy::retention_end(input, rules).filter(|e| timed && *e > now) {
                next = Some(next.map_or(end, |n| n.min(end)));
            }
        }
        next
    }

    /// Decide every slot, on every core: the rules are most of the start-up time. Per slot, a
    /// bit per purpose (so at most 64 purposes; `load` decides one by one beyond that).
    fn decide_all(&self, now: Time) -> Vec<(u64, Option<Time>)> {
        let n = self.slots.len() as u32;
        let threads = std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .clamp(1, 8) as u32;
        let per = n.div_ceil(threads).max(1);
        let decide_range = |from: u32, to: u32| {
            let mut input = None;
            (from..to)
                .map(|i| {
                    let mut shown = vec![false; self.pids.len()];
                    let next = self.decide(i, now, &mut input, &mut shown);
                    let bits = shown
                        .iter()
                        .enumerate()
                        .fold(0u64, |m, (p, on)| m | (u64::from(*on) << p));
                    (bits, next)
                })
                .collect::<Vec<_>>()
        };
        std::thread::scope(|scope| {
            let parts: Vec<_> = (0..threads)
                .map(|t| (t * per, ((t + 1) * per).min(n)))
                .filter(|(a, b)| a < b)
                .map(|(a, b)| scope.spawn(move || decide_range(a, b)))
                .collect();
            parts
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    }

    /// File the decisions for slot `i`: visibility bits, folder counts, the draft's place and
    /// the timer; record what changed since `prev` (since now, when `None`) into `changes`.
    fn apply(
        &mut self,
        i: u32,
        now: Time,
        changes: Option<&mut Vec<Change>>,
        prev: Option<Prev>,
        shown: &[bool],
        mut next: Option<Time>,
    ) {
        let slot = self.slots[i as usize].clone();
        let mut scratch = Vec::new();
        let record = changes.is_some();
        let changes = changes.unwrap_or(&mut scratch);
        let prev = match prev {
            Some(p) => p,
            None if record => self.prev_of(i),
            None => Prev {
                folder: slot.folder,
                name: slot.name,
                content: (0, None),
                visible: Vec::new(),
            },
        };
        let moved =
            prev.folder != slot.folder || name_of(&self.names, prev.name) != self.name(&slot);
        let content = content_of(&slot);
        for (p, &vis) in shown.iter().enumerate() {
            if self.visible[p].get(i) != vis {
                self.visible[p].set(i, vis);
                self.folders.count(slot.folder, p, vis);
            }
            if !record {
                continue;
            }
            let was = prev.visible.get(p).copied().unwrap_or(false);
            let pid = self.pids[p];
            if was && (!vis || moved) {
                changes.push(self.change_at(prev.folder, prev.name, pid, slot.id, false));
            }
            if vis && (!was || moved || prev.content != content) {
                changes.push(self.change_at(slot.folder, slot.name, pid, slot.id, true));
            }
        }
        if let Some(u) = self.evaluate_draft(i, now, changes) {
            next = Some(next.map_or(u, |n| n.min(u)));
        }
        let s = &mut self.slots[i as usize];
        if s.next_at != NO_TIME {
            self.timers.remove(&(s.next_at, Timer::Asset(i)));
        }
        s.next_at = next.map_or(NO_TIME, timer_ms);
        if s.next_at != NO_TIME {
            self.timers.insert((s.next_at, Timer::Asset(i)));
        }
    }

    /// The next moment after `now` at which the person's standing may change by time alone:
    /// a consent event starts or ends, or they turn 16. Every moment the rules consider for
    /// an asset's persons (see `policy::rules::candidate_moments`) is one of these.
    fn person_moment(&self, pid: PersonId, now: Time) -> Option<Time> {
        let p = self.persons.get(&pid)?;
        p.turns_16
            .into_iter()
            .chain(
                p.events
                    .iter()
                    .flat_map(|e| std::iter::once(e.starts).chain(e.expires)),
            )
            .filter(|t| *t > now)
            .min()
    }

    /// File (again) the person's timer.
    fn time_person(&mut self, pid: PersonId, now: Time) {
        if let Some(old) = self.person_next.remove(&pid) {
            self.timers.remove(&(old, Timer::Person(pid)));
        }
        if let Some(t) = self.person_moment(pid, now) {
            let ms = timer_ms(t);
            self.person_next.insert(pid, ms);
            self.timers.insert((ms, Timer::Person(pid)));
        }
    }

    /// A draft is shown to its creator only, in the purpose folder where it was made, while
    /// they have a grant there and the persons of what it was made from allow it (the rules
    /// decide, with the creator as the user). Returns when that next changes by time alone.
    fn evaluate_draft(&mut self, i: u32, now: Time, changes: &mut Vec<Change>) -> Option<Time> {
        let slot = &self.slots[i as usize];
        let id = slot.id;
        let mut until = None;
        let shown_now = (|| {
            let purpose_id = self.draft_of.get(&id)?.purpose?;
            if slot.status != policy::Status::Draft || slot.version.is_none() {
                return None;
            }
            let creator = self.logins.get(slot.creator);
            let user = self.users.get(&**creator)?.to_policy();
            let purpose = self.purposes.get(&purpose_id)?.to_policy();
            let input = self.policy_asset(i, true);
            let d = policy::decide(&input, self, &user, &purpose, now);
            until = d.valid_until;
            d.visible.then(|| {
                (
                    creator.clone(),
                    purpose_id,
                    Shown {
                        collection: self.folders.get(slot.folder).path.clone(),
                        name: Arc::from(self.name(slot)),
                        content: content_of(slot),
                    },
                )
            })
        })();
        let before = self.draft_shown.remove(&id);
        let same_place = |a: &(Arc<str>, PurposeId, Shown), b: &(Arc<str>, PurposeId, Shown)| {
            a.0 == b.0 && a.1 == b.1 && a.2.collection == b.2.collection && a.2.name == b.2.name
        };
        let moved = match (&before, &shown_now) {
            (Some(b), Some(n)) => !same_place(b, n),
            (Some(_), None) => true,
            _ => false,
        };
        if let Some((login, pid, b)) = &before {
            if moved {
                if let Some(tree) = self.drafts.get_mut(&(login.clone(), *pid)) {
                    tree.remove(&b.collection, &b.name);
                }
                changes.push(Change::Asset {
                    login: Some(login.clone()),
                    purpose: *pid,
                    collection: b.collection.clone(),
                    name: b.name.clone(),
                    asset: id,
                    visible: false,
                });
            }
        }
        if let Some((login, pid, n)) = shown_now {
            if before.is_none() || moved {
                self.drafts.entry((login.clone(), pid)).or_default().insert(
                    &n.collection,
                    n.name.clone(),
                    id,
                );
            }
            if before
                .as_ref()
                .is_none_or(|b| moved || b.2.content != n.content)
            {
                changes.push(Change::Asset {
                    login: Some(login.clone()),
                    purpose: pid,
                    collection: n.collection.clone(),
                    name: n.name.clone(),
                    asset: id,
                    visible: true,
                });
            }
            self.draft_shown.insert(id, (login, pid, n));
        }
        until
    }

    /// The next moment some visibility changes by time alone.
    pub fn next_transition(&self) -> Option<Time> {
        self.timers.first().map(|(t, _)| ms_time(*t))
    }

    /// Re-evaluate the assets whose time has come.
    pub fn expire(&mut self, now: Time) -> Vec<Change> {
        let mut changes = Vec::new();
        let now_ms = now.timestamp_millis();
        let mut todo: BTreeSet<u32> = BTreeSet::new();
        while let Some(&(t, what)) = self.timers.first() {
            if t > now_ms {
                break;
            }
            self.timers.remove(&(t, what));
            match what {
                Timer::Asset(i) => {
                    self.slots[i as usize].next_at = NO_TIME;
                    todo.insert(i);
                }
                Timer::Person(pid) => {
                    self.person_next.remove(&pid);
                    self.time_person(pid, now);
                    todo.extend(self.by_person.get(&pid).into_iter().flatten().copied());
                }
            }
        }
        let drafts: Vec<u32> = self.drafts_of_slots(&todo);
        todo.extend(drafts);
        for i in todo {
            self.evaluate(i, now, Some(&mut changes), None);
        }
        changes
    }

    /// The drafts made from these assets (their sources' persons decide for them too).
    fn drafts_of_slots(&self, slots: &BTreeSet<u32>) -> Vec<u32> {
        slots
            .iter()
            .filter_map(|i| self.derived.get(&self.slots[*i as usize].id))
            .flatten()
            .filter_map(|d| self.index_of(*d))
            .collect()
    }

    /// Take an asset out of the places it is filed under (folder, persons, drafts' maps,
    /// visibility), before its row changes.
    fn unfile(&mut self, i: u32) {
        let s = self.slots[i as usize].clone();
        let files = &mut self.folders.list[s.folder as usize].files;
        let (names, slots) = (&self.names, &self.slots);
        if let Ok(at) = files.binary_search_by(|x| {
            names
                .get(slots[*x as usize].name)
                .cmp(names.get(s.name))
                .then(x.cmp(&i))
        }) {
            files.remove(at);
        }
        for p in 0..self.pids.len() {
            if self.visible[p].get(i) {
                self.visible[p].set(i, false);
                self.folders.count(s.folder, p, false);
            }
        }
        for p in self.linked.get(s.persons).to_vec() {
            if let Some(v) = self.by_person.get_mut(&p) {
                v.retain(|x| *x != i);
                if v.is_empty() {
                    self.by_person.remove(&p);
                }
            }
        }
        if let Some(d) = self.draft_of.remove(&s.id) {
            for src in &d.sources {
                if let Some(set) = self.derived.get_mut(src) {
                    set.remove(&s.id);
                }
            }
        }
        if s.status == policy::Status::Draft {
            let creator = self.logins.get(s.creator).to_string();
            if let Some(n) = self.draft_counts.get_mut(&creator) {
                *n = n.saturating_sub(1);
            }
        }
        if let Some(photo) = self.photo_of.remove(&s.id) {
            if let Some(v) = self.sidecars.get_mut(&photo) {
                v.retain(|x| *x != s.id);
                if v.is_empty() {
                    self.sidecars.remove(&photo);
                }
            }
        }
        self.names.free(s.name);
        self.linked.free(s.persons);
    }

    /// Put a catalog row into slot `i` (a new slot at the end when `i` is the length) and file it.
    fn file(&mut self, i: u32, row: AssetRow, version: Option<VersionRow>) {
        let folder = self.folders.intern(&row.collection);
        let name = self.names.push(row.name.as_bytes());
        let persons = self.linked.push(&row.persons);
        let creator = self.logins.intern(&row.creator);
        let mut slot = slots::slot_of(&row, folder, creator, name, persons);
        slot.version = version.as_ref().map(|v| {
            let (ver, far) = Ver::from_row(v, self.logins.intern(&v.created_by));
            match far {
                Some(f) => self.far_times.insert(row.id, f),
                None => self.far_times.remove(&row.id),
            };
            ver
        });
        if slot.version.is_none() {
            self.far_times.remove(&row.id);
        }
        if let Some(old) = self.slots.get(i as usize) {
            slot.next_at = old.next_at;
            self.slots[i as usize] = slot;
        } else {
            self.slots.push(slot);
            for b in &mut self.visible {
                b.set(i, false);
            }
        }
        for p in &row.persons {
            self.by_person.entry(*p).or_default().push(i);
        }
        for s in &row.sources {
            self.derived.entry(*s).or_default().insert(row.id);
        }
        if row.draft_purpose.is_some() || !row.sources.is_empty() {
            self.draft_of.insert(
                row.id,
                DraftOf {
                    purpose: row.draft_purpose,
                    sources: row.sources.clone(),
                },
            );
        }
        if row.status == policy::Status::Draft {
            *self.draft_counts.entry(row.creator.clone()).or_default() += 1;
        }
        if let Some(photo) = row.companion_of {
            self.photo_of.insert(row.id, photo);
            self.sidecars.entry(photo).or_default().push(row.id);
        }
        let (names, slots) = (&self.names, &self.slots);
        let files = &mut self.folders.list[folder as usize].files;
        let at = files
            .binary_search_by(|x| {
                names
                    .get(slots[*x as usize].name)
                    .cmp(row.name.as_bytes())
                    .then(x.cmp(&i))
            })
            .unwrap_or_else(|at| at);
        files.insert(at, i);
    }

    /// Copy the live names and links into fresh arenas once most of the old ones is garbage
    /// (every rename and relink leaves its old bytes behind).
    fn compact(&mut self) {
        if self.names.wasteful() {
            let mut fresh = Names::default();
            for s in &mut self.slots {
                s.name = fresh.push(self.names.get(s.name));
            }
            self.names = fresh;
        }
        if self.linked.wasteful() {
            let mut fresh = Arena::default();
            for s in &mut self.slots {
                s.persons = fresh.push(self.linked.get(s.persons));
            }
            self.linked = fresh;
        }
    }

    /// Catch up with changes other processes committed to the catalog.
    pub fn refresh(&mut self, conn: &Connection, now: Time) -> Result<Vec<Change>> {
        self.refresh_knowing(conn, now, None)
    }

    /// [`View::refresh`] just after this process wrote `known`: that asset's rows are not read
    /// back where they are surely the catalog's (see `View::usable`). Everything else the
    /// audit entries since the last refresh name is read as usual.
    pub fn refresh_knowing(
        &mut self,
        conn: &Connection,
        now: Time,
        known: Option<Known>,
    ) -> Result<Vec<Change>> {
        let entries = audit::list(conn, self.last_seq)?;
        let Some(last) = entries.last() else {
            return Ok(Vec::new());
        };
        let last_seq = last.seq;
        let Touched {
            persons: persons_touched,
            assets: assets_touched,
            users: users_touched,
            full,
            purposes_changed,
        } = classify(&entries);
        if full || purposes_changed {
            // purposes are the index's columns: a new one re-evaluates everything
            *self = View::load(conn, now)?;
            self.last_seq = last_seq;
            return Ok(vec![Change::All]);
        }
        let mut changes = Vec::new();
        for login in &users_touched {
            match users::resolve(conn, login) {
                Ok(u) => {
                    self.users.insert(login.clone(), u);
                }
                Err(_) => {
                    self.users.remove(login);
                }
            }
            changes.push(Change::User {
                login: login.clone(),
            });
        }
        // read (a query and a time zone lookup) only for persons: a refresh after each new file
        // of a `tar x` touches none
        let zone = if persons_touched.is_empty() {
            crate::when::Zone::utc()
        } else {
            crate::catalog::zone::get(conn)?
        };
        for pid in &persons_touched {
            match persons::get(conn, *pid)? {
                Some(p) => {
                    let mut events = Vec::new();
                    bulk::each_event(conn, Some(*pid), |_, e| events.push(e))?;
                    policy::sort_events(&mut events);
                    self.persons.insert(
                        *pid,
                        Person {
                            id: *pid,
                            turns_16: p.born.map(|b| crate::when::sixteenth_birthday(b, &zone)),
                            guardians: p.guardians,
                            events,
                        },
                    );
                }
                None => {
                    self.persons.remove(pid);
                }
            }
            self.time_person(*pid, now);
        }
        let mut prevs: HashMap<u32, Prev> = HashMap::new();
        let mut todo: BTreeSet<u32> = BTreeSet::new();
        let mut touched_ids: Vec<AssetId> = assets_touched.iter().copied().collect();
        // a photo's sidecars hold its persons and flags: they change with it
        let sidecars: Vec<AssetId> = touched_ids
            .iter()
            .filter_map(|a| self.sidecars.get(a))
            .flatten()
            .copied()
            .collect();
        touched_ids.extend(sidecars);
        touched_ids.sort_unstable();
        touched_ids.dedup();
        let mut known = known.and_then(|k| self.usable(k, &entries));
        for aid in touched_ids {
            let (row, version) = match known.take_if(|(id, ..)| *id == aid) {
                Some((_, row, version)) => (Some(row), Some(version)),
                None => {
                    let row = assets::get(conn, aid)?;
                    let version = match &row {
                        Some(_) => assets::current_versions(conn, Some(aid))?.remove(&aid),
                        None => None,
                    };
                    (row, version)
                }
            };
            let i = match self.index_of(aid) {
                Some(i) => {
                    prevs.entry(i).or_insert_with(|| self.prev_of(i));
                    self.unfile(i);
                    i
                }
                None if row.is_none() => continue,
                None if self.slots.last().is_some_and(|s| s.id > aid) => {
                    // an id below the newest: the slots stay sorted only by loading again
                    *self = View::load(conn, now)?;
                    self.last_seq = last_seq;
                    return Ok(vec![Change::All]);
                }
                None => self.slots.len() as u32,
            };
            match row {
                Some(row) => self.file(i, row, version),
                None => {
                    // gone from the catalog: nothing of it shows
                    let s = &mut self.slots[i as usize];
                    s.status = policy::Status::Purged;
                    s.version = None;
                    self.far_times.remove(&aid);
                    s.name = Span::default();
                    s.persons = Span::default();
                    let f = s.folder;
                    let (names, slots) = (&self.names, &self.slots);
                    let files = &mut self.folders.list[f as usize].files;
                    let at = files
                        .binary_search_by(|x| {
                            names.get(slots[*x as usize].name).cmp(&[]).then(x.cmp(&i))
                        })
                        .unwrap_or_else(|at| at);
                    files.insert(at, i);
                }
            }
            todo.insert(i);
        }
        for p in &persons_touched {
            if let Some(set) = self.by_person.get(p) {
                todo.extend(set.iter().copied());
            }
        }
        let drafts = self.drafts_of_slots(&todo);
        todo.extend(drafts);
        for i in todo {
            let prev = prevs.remove(&i);
            self.evaluate(i, now, Some(&mut changes), prev);
        }
        self.compact();
        self.last_seq = last_seq;
        Ok(changes)
    }

    /// The rows of `known` to file instead of reading them, when they are surely the catalog's:
    /// a new asset's are what its insert wrote while its own entry is the only one naming it; a
    /// new version's asset row is the one the view holds only when the newest entry, the
    /// version's own, is the only one naming the asset.
    fn usable(
        &self,
        known: Known,
        entries: &[audit::Entry],
    ) -> Option<(AssetId, AssetRow, VersionRow)> {
        let names = |e: &audit::Entry, id: AssetId| {
            e.action.starts_with("asset.")
                && e.detail.get("asset").and_then(serde_json::Value::as_i64) == Some(id)
        };
        match known {
            // an entry after its own (a command that waited for the catalog and came in right
            // after the commit) may have changed it: read back then
            Known::New { row, version } => (entries.iter().filter(|e| names(e, row.id)).count()
                == 1)
                .then_some((row.id, row, version)),
            Known::Version { asset, version } => {
                let (last, earlier) = entries.split_last()?;
                if !names(last, asset) || earlier.iter().any(|e| names(e, asset)) {
                    return None;
                }
                let info = self.asset(asset)?;
                // a sidecar's row carries its photo's persons, which may have changed with it
                (info.row.companion_of.is_none()).then_some((asset, info.row, version))
            }
        }
    }

    /// The assets whose visibility the catalog changes not yet applied may alter (`None`: any).
    /// The mount drops their cached pages *before* applying the changes, so that once a photo
    /// has disappeared from a listing no byte of it can come from the kernel's page cache.
    pub fn touched_since(&self, conn: &Connection) -> Result<Option<Vec<AssetId>>> {
        let entries = audit::list(conn, self.last_seq)?;
        let t = classify(&entries);
        if t.full || t.purposes_changed {
            return Ok(None);
        }
        let mut out: Vec<AssetId> = t.assets.into_iter().collect();
        for p in &t.persons {
            if let Some(set) = self.by_person.get(p) {
                out.extend(set.iter().map(|i| self.slots[*i as usize].id));
            }
        }
        let drafts: Vec<AssetId> = out
            .iter()
            .filter_map(|a| self.derived.get(a))
            .flatten()
            .copied()
            .collect();
        out.extend(drafts);
        let sidecars: Vec<AssetId> = out
            .iter()
            .filter_map(|a| self.sidecars.get(a))
            .flatten()
            .copied()
            .collect();
        out.extend(sidecars);
        Ok(Some(out))
    }

    /// The assets whose time-bound change is due at `now`.
    pub fn due(&self, now: Time) -> Vec<AssetId> {
        let now_ms = now.timestamp_millis();
        let mut out = Vec::new();
        for (_, what) in self.timers.iter().take_while(|(t, _)| *t <= now_ms) {
            match what {
                Timer::Asset(i) => out.push(self.slots[*i as usize].id),
                Timer::Person(pid) => out.extend(
                    self.by_person
                        .get(pid)
                        .into_iter()
                        .flatten()
                        .map(|i| self.slots[*i as usize].id),
                ),
            }
        }
        let drafts: Vec<AssetId> = out
            .iter()
            .filter_map(|a| self.derived.get(a))
            .flatten()
            .copied()
            .collect();
        out.extend(drafts);
        out
    }

    // ---- queries for the filesystem ----

    pub fn purpose_by_name(&self, name: &str) -> Option<&PurposeRow> {
        self.purposes.values().find(|p| p.name == name)
    }

    pub fn purpose(&self, id: PurposeId) -> Option<&PurposeRow> {
        self.purposes.get(&id)
    }

    fn pindex(&self, id: PurposeId) -> Option<usize> {
        self.pids.binary_search(&id).ok()
    }

    pub fn user(&self, login: &str) -> Option<&UserRow> {
        self.users.get(login)
    }

    /// Logins that have at least one grant.
    pub fn logins(&self) -> impl Iterator<Item = &str> {
        self.users
            .values()
            .filter(|u| !u.grants.is_empty())
            .map(|u| u.login.as_str())
    }

    /// Purposes the user has a grant in, with their strongest access anywhere in it.
    pub fn user_purposes(&self, login: &str) -> Vec<(&PurposeRow, Access)> {
        let Some(u) = self.users.get(login) else {
            return Vec::new();
        };
        let mut out: Vec<(&PurposeRow, Access)> = Vec::new();
        for g in &u.grants {
            let Some(p) = self.purposes.get(&g.purpose_id) else {
                continue;
            };
            match out.iter_mut().find(|(q, _)| q.id == p.id) {
                Some((_, a)) => *a = (*a).max(g.access),
                None => out.push((p, g.access)),
            }
        }
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        out
    }

    fn grant_prefixes<'a>(
        &'a self,
        login: &str,
        purpose: PurposeId,
    ) -> impl Iterator<Item = (&'a str, Access)> + 'a {
        self.users
            .get(login)
            .into_iter()
            .flat_map(|u| u.grants.iter())
            .filter(move |g| g.purpose_id == purpose)
            .map(|g| (g.collection.as_str(), g.access))
    }

    /// The user's access to a folder path in a purpose (a grant covering it), if any.
    pub fn access(&self, login: &str, purpose: PurposeId, collection: &str) -> Option<Access> {
        self.grant_prefixes(login, purpose)
            .filter(|(prefix, _)| prefix_covers(prefix, collection))
            .map(|(_, a)| a)
            .max()
    }

    /// How many assets are visible in the purpose in folder `dir` and below.
    fn count_below(&self, purpose: PurposeId, dir: &str) -> u32 {
        match (self.pindex(purpose), self.folders.find(dir)) {
            (Some(p), Some(f)) => f.below.get(p).copied().unwrap_or(0),
            _ => 0,
        }
    }

    /// Whether the folder `dir` exists in the user's view of the purpose: something visible to
    /// them lies below it.
    pub fn dir_visible(&self, login: &str, purpose: PurposeId, dir: &str) -> bool {
        if self
            .drafts_of(login, purpose)
            .and_then(|t| t.get(dir))
            .is_some_and(|n| n.count > 0)
        {
            return true;
        }
        if self.pindex(purpose).is_none() {
            return false;
        }
        if tree::components(dir).next().is_none() {
            return self.grant_prefixes(login, purpose).next().is_some();
        }
        if self.count_below(purpose, dir) == 0 {
            return false;
        }
        self.grant_prefixes(login, purpose).any(|(prefix, _)| {
            if prefix_covers(prefix, dir) {
                true
            } else if prefix_covers(dir, prefix) {
                self.count_below(purpose, prefix) > 0
            } else {
                false
            }
        })
    }

    fn drafts_of(&self, login: &str, purpose: PurposeId) -> Option<&Tree> {
        self.drafts.get(&(Arc::from(login), purpose))
    }

    /// Sub-folders of `dir` with something visible in the purpose below them.
    fn shown_subdirs(&self, login: &str, purpose: PurposeId, dir: &str, out: &mut Vec<Arc<str>>) {
        let (Some(p), Some(f)) = (self.pindex(purpose), self.folders.find(dir)) else {
            return;
        };
        for (name, child) in &f.children {
            if self
                .folders
                .get(*child)
                .below
                .get(p)
                .is_some_and(|n| *n > 0)
                && !out.contains(name)
                && self.dir_visible(login, purpose, &assets::join_path(dir, name))
            {
                out.push(name.clone());
            }
        }
    }

    /// The sub-folders of a folder as the user sees it (the folders of [`View::list_dir`],
    /// without listing the files: a folder's link count needs them on every `stat`).
    pub fn subdirs(&self, login: &str, purpose: PurposeId, dir: &str) -> Vec<Arc<str>> {
        let mut dirs: Vec<Arc<str>> = Vec::new();
        if let Some(node) = self.drafts_of(login, purpose).and_then(|t| t.get(dir)) {
            dirs.extend(node.dirs.keys().cloned());
        }
        self.shown_subdirs(login, purpose, dir, &mut dirs);
        dirs
    }

    /// The entries of a folder as the user sees it: sub-folders and files (name, asset).
    pub fn list_dir(&self, login: &str, purpose: PurposeId, dir: &str) -> Listing {
        let mut dirs: Vec<Arc<str>> = Vec::new();
        let mut files: Vec<(Arc<str>, AssetId)> = Vec::new();
        if let Some(node) = self.drafts_of(login, purpose).and_then(|t| t.get(dir)) {
            dirs.extend(node.dirs.keys().cloned());
            files.extend(node.files.iter().map(|(n, a)| (n.clone(), *a)));
        }
        self.shown_subdirs(login, purpose, dir, &mut dirs);
        if let (Some(p), Some(f)) = (self.pindex(purpose), self.folders.find(dir)) {
            if f.below.get(p).is_some_and(|n| *n > 0) && self.access(login, purpose, dir).is_some()
            {
                for &i in &f.files {
                    if self.visible[p].get(i) {
                        let s = &self.slots[i as usize];
                        files.push((Arc::from(self.name(s)), s.id));
                    }
                }
            }
        }
        dirs.sort();
        files.sort();
        files.dedup_by(|a, b| a.0 == b.0);
        (dirs, files)
    }

    /// The asset shown as `name` in folder `dir`, if the user may see it.
    pub fn file_in(
        &self,
        login: &str,
        purpose: PurposeId,
        dir: &str,
        name: &str,
    ) -> Option<AssetId> {
        if let Some(a) = self
            .drafts_of(login, purpose)
            .and_then(|t| t.get(dir))
            .and_then(|d| d.files.get(name))
        {
            return Some(*a);
        }
        self.access(login, purpose, dir)?;
        let p = self.pindex(purpose)?;
        let f = self.folders.find(dir)?;
        let start = f
            .files
            .partition_point(|x| self.names.get(self.slots[*x as usize].name) < name.as_bytes());
        f.files[start..]
            .iter()
            .take_while(|x| self.names.get(self.slots[**x as usize].name) == name.as_bytes())
            .find(|x| self.visible[p].get(**x))
            .map(|x| self.slots[*x as usize].id)
    }

    /// Whether the user may see the asset in the purpose now (checked on every open and read).
    pub fn file_visible(&self, login: &str, purpose: PurposeId, asset: AssetId) -> bool {
        if let Some((l, p, _)) = self.draft_shown.get(&asset) {
            return &**l == login && *p == purpose;
        }
        let (Some(i), Some(p)) = (self.index_of(asset), self.pindex(purpose)) else {
            return false;
        };
        self.visible[p].get(i)
            && self
                .access(
                    login,
                    purpose,
                    &self.folders.get(self.slots[i as usize].folder).path,
                )
                .is_some()
    }

    /// Whether `asset` would be visible to `login` in `purpose` at `now` if it still had
    /// `status`: a file removed (put in the trash) while descriptors hold it open lives on for
    /// them, and consent still decides what they may read.
    pub fn visible_as_kept(
        &self,
        login: &str,
        purpose: PurposeId,
        asset: AssetId,
        status: policy::Status,
        now: Time,
    ) -> bool {
        let (Some(i), Some(user), Some(p)) = (
            self.index_of(asset),
            self.users.get(login),
            self.purposes.get(&purpose),
        ) else {
            return false;
        };
        let mut input = self.policy_asset(i, status == policy::Status::Draft);
        input.status = status;
        policy::decide(&input, self, &user.to_policy(), &p.to_policy(), now).visible
    }

    /// The purposes whose users would see a difference if the asset moved to folder `to`:
    /// those where some user sees it where it is now, and those where some user would see it
    /// at `to` (the rules evaluated again with the asset there, since a consent may be scoped
    /// to a collection). A move changes the asset's collection in every purpose at once, so
    /// the mount allows it only to someone whose grants cover both places in all of these.
    pub fn purposes_seeing_move(&self, asset: AssetId, to: &str, now: Time) -> Vec<PurposeId> {
        let Some(i) = self.index_of(asset) else {
            return Vec::new();
        };
        let slot = &self.slots[i as usize];
        let collection = &self.folders.get(slot.folder).path;
        let someone_has = |purpose: PurposeId, path: &str| {
            self.users
                .keys()
                .any(|l| self.access(l, purpose, path).is_some())
        };
        let mut moved = self.policy_asset(i, false);
        moved.collection = to.to_string();
        let mut out: Vec<PurposeId> = Vec::new();
        for (p, pid) in self.pids.iter().enumerate() {
            let seen_now = self.visible[p].get(i) && someone_has(*pid, collection);
            if seen_now
                || (slot.version.is_some()
                    && someone_has(*pid, to)
                    && policy::decide(&moved, self, &self.anyone[p], &self.purpose_rules[p], now)
                        .visible)
            {
                out.push(*pid);
            }
        }
        out
    }

    /// When the asset's visibility in the purpose next changes, if it is visible.
    pub fn valid_until(&self, purpose: PurposeId, asset: AssetId) -> Option<Time> {
        let (i, p) = (self.index_of(asset)?, self.pindex(purpose)?);
        if !self.visible[p].get(i) {
            return None;
        }
        let input = self.policy_asset(i, false);
        policy::decide(
            &input,
            self,
            &self.anyone[p],
            &self.purpose_rules[p],
            chrono::Utc::now(),
        )
        .valid_until
    }

    /// What the index holds of an asset, as catalog rows.
    pub fn asset(&self, id: AssetId) -> Option<AssetInfo> {
        let s = &self.slots[self.index_of(id)? as usize];
        let folder = self.folders.get(s.folder);
        let creator = self.logins.get(s.creator);
        let draft = self.draft_of.get(&id);
        let name: Arc<str> = Arc::from(self.name(s));
        Some(AssetInfo {
            row: AssetRow {
                id,
                collection: folder.path.to_string(),
                name: name.to_string(),
                no_persons: s.no_persons,
                special_category: s.special_category,
                status: s.status,
                creator: creator.to_string(),
                created_at: when::from_secs(s.created_at),
                retention_until: (s.retention_until != NO_TIME)
                    .then(|| when::from_secs(s.retention_until)),
                persons: self.linked.get(s.persons).to_vec(),
                draft_purpose: draft.and_then(|d| d.purpose),
                sources: draft.map(|d| d.sources.clone()).unwrap_or_default(),
                faces: s.faces,
                faces_reviewed: s.faces_reviewed,
                companion_of: self.photo_of.get(&id).copied(),
            },
            collection: folder.path.clone(),
            name,
            version: s
                .version
                .map(|v| v.to_row(self.logins.get(v.created_by), self.far_times.get(&id))),
        })
    }

    /// The photo a new file `name` in `dir` would be the sidecar of, for `login` in `purpose`:
    /// an active photo (not itself a sidecar) that `login` sees there. A sidecar shows where
    /// its photo shows, so only someone who sees the photo may give it one.
    pub fn sidecar_photo(
        &self,
        login: &str,
        purpose: PurposeId,
        dir: &str,
        name: &str,
    ) -> Option<AssetId> {
        let stem = crate::sidecar::stem(name)?;
        self.access(login, purpose, dir)?;
        let p = self.pindex(purpose)?;
        let f = self.folders.find(dir)?;
        // the names `stem` and `stem.*` are one run of the folder's sorted files: found by
        // binary search, not by listing a folder that may hold a hundred thousand photos
        let name_of = |x: &u32| self.names.get(self.slots[*x as usize].name);
        let from = f.files.partition_point(|x| name_of(x) < stem.as_bytes());
        let found: Vec<(AssetId, String)> = f.files[from..]
            .iter()
            .take_while(|x| name_of(x).starts_with(stem.as_bytes()))
            .filter(|x| {
                let rest = &name_of(x)[stem.len()..];
                rest.is_empty() || rest.starts_with(b".")
            })
            .filter(|x| {
                let s = &self.slots[**x as usize];
                s.status == policy::Status::Active
                    && self.visible[p].get(**x)
                    && !self.photo_of.contains_key(&s.id)
            })
            .map(|x| {
                let s = &self.slots[*x as usize];
                (s.id, String::from_utf8_lossy(name_of(x)).into_owned())
            })
            .collect();
        crate::sidecar::choose_photo(stem, &found)
    }

    /// How many drafts `login` has made (and not yet linked, saved over a file or purged).
    pub fn draft_count(&self, login: &str) -> usize {
        self.draft_counts.get(login).copied().unwrap_or(0)
    }

    /// Number of assets the index holds (for logs and benchmarks).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}
