//! The in-memory view index: which assets each (user, purpose) sees right now, and when that next
//! changes by time alone.
//!
//! For assets that are not drafts, the only rule that depends on the user is rule 1 (a grant on
//! the purpose covering the collection). So the index evaluates the rules once per (asset,
//! purpose), as if for a user with a grant on everything, keeps one folder [`Tree`] per purpose,
//! and applies each user's grants when a folder is listed or a file is looked up. That keeps
//! memory proportional to assets × purposes, not × users.
//!
//! Updates are incremental: [`View::refresh`] reads the audit entries appended since the last
//! refresh (every change writes one, with the ids it touched) and re-evaluates only the assets
//! they concern: a consent event re-evaluates the assets of that person. Time-driven changes
//! come from [`View::expire`], driven by a timer on [`View::next_transition`]: each asset is
//! filed under the earliest `valid_until` of its decisions, so an expiry re-evaluates just the
//! assets whose time has come.

pub mod tree;

use crate::audit;
use crate::catalog::assets::{self, AssetRow, VersionRow};
use crate::catalog::purposes::PurposeRow;
use crate::catalog::snapshot::World;
use crate::catalog::users::UserRow;
use crate::catalog::{consents, persons, purposes, users};
use crate::error::Result;
use crate::policy::{self, prefix_covers, Access, AssetId, Person, PersonId, PurposeId, Time};
use rusqlite::Connection;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
pub use tree::Dir as Tree;

/// What the mount needs to know of an asset: where it is, and its current version.
#[derive(Debug, Clone)]
pub struct AssetInfo {
    pub row: AssetRow,
    pub collection: Arc<str>,
    pub name: Arc<str>,
    pub version: Option<VersionRow>,
    policy: policy::Asset,
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
            "person.erase" => t.persons.extend(id("person")),
            _ => t.full = true,
        }
    }
    t
}

/// Where and until when an asset is shown in a purpose's tree.
#[derive(Debug, Clone)]
struct Shown {
    until: Option<Time>,
    collection: Arc<str>,
    name: Arc<str>,
    version: i64,
}

/// A folder's entries: sub-folder names, and files (name, asset).
pub type Listing = (Vec<Arc<str>>, Vec<(Arc<str>, AssetId)>);

pub struct View {
    purposes: HashMap<PurposeId, PurposeRow>,
    persons: HashMap<PersonId, Person>,
    assets: HashMap<AssetId, AssetInfo>,
    by_person: HashMap<PersonId, HashSet<AssetId>>,
    users: HashMap<String, UserRow>,
    /// Per purpose: visible assets, where they are shown, and when that next changes.
    visible: HashMap<PurposeId, HashMap<AssetId, Shown>>,
    trees: HashMap<PurposeId, Tree>,
    /// Drafts, per creator and purpose: shown only to their creator.
    drafts: HashMap<(Arc<str>, PurposeId), Tree>,
    draft_shown: HashMap<AssetId, (Arc<str>, PurposeId, Shown)>,
    /// Drafts made from each asset (the reverse of `AssetRow::sources`): a change to the
    /// source (its persons, their consents) re-evaluates them.
    derived: HashMap<AssetId, HashSet<AssetId>>,
    /// Number of drafts (any place) per creator, for the per-user bound on drafts.
    draft_counts: HashMap<String, usize>,
    timers: BTreeSet<(Time, AssetId)>,
    next_at: HashMap<AssetId, Time>,
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

impl View {
    /// Build the whole index from the catalog.
    pub fn load(conn: &Connection, now: Time) -> Result<View> {
        let last_seq = audit::last_seq(conn)?;
        let world = World::load(conn)?;
        let mut versions = assets::current_versions(conn, None)?;
        let mut view = View {
            purposes: world.purposes,
            persons: world.persons,
            assets: HashMap::new(),
            by_person: HashMap::new(),
            users: world.users,
            visible: HashMap::new(),
            trees: HashMap::new(),
            drafts: HashMap::new(),
            draft_shown: HashMap::new(),
            derived: HashMap::new(),
            draft_counts: HashMap::new(),
            timers: BTreeSet::new(),
            next_at: HashMap::new(),
            last_seq,
        };
        for row in world.assets {
            let version = versions.remove(&row.id);
            view.put_asset(row, version);
        }
        let ids: Vec<AssetId> = view.assets.keys().copied().collect();
        for id in ids {
            view.evaluate(id, now, &mut Vec::new());
        }
        Ok(view)
    }

    fn put_asset(&mut self, row: AssetRow, version: Option<VersionRow>) {
        for p in &row.persons {
            self.by_person.entry(*p).or_default().insert(row.id);
        }
        for s in &row.sources {
            self.derived.entry(*s).or_default().insert(row.id);
        }
        if row.status == policy::Status::Draft {
            *self.draft_counts.entry(row.creator.clone()).or_default() += 1;
        }
        let info = AssetInfo {
            collection: Arc::from(row.collection.as_str()),
            name: Arc::from(row.name.as_str()),
            policy: row.to_policy(),
            version,
            row,
        };
        self.assets.insert(info.row.id, info);
    }

    /// Evaluate one asset in every purpose, update trees and timers, and record what changed.
    fn evaluate(&mut self, id: AssetId, now: Time, changes: &mut Vec<Change>) {
        let mut next: Option<Time> = None;
        let purposes: Vec<PurposeId> = self.purposes.keys().copied().collect();
        for pid in purposes {
            let decision = match (self.assets.get(&id), self.purposes.get(&pid)) {
                (Some(info), Some(purpose)) if info.version.is_some() => {
                    let d =
                        policy::decide(&info.policy, self, &anyone(pid), &purpose.to_policy(), now);
                    Some(d)
                }
                _ => None,
            };
            if let Some(u) = decision.as_ref().and_then(|d| d.valid_until) {
                next = Some(next.map_or(u, |n| n.min(u)));
            }
            let shown_now = match (&decision, self.assets.get(&id)) {
                (Some(d), Some(info)) if d.visible => Some(Shown {
                    until: d.valid_until,
                    collection: info.collection.clone(),
                    name: info.name.clone(),
                    version: info.version.as_ref().map_or(0, |v| v.version),
                }),
                _ => None,
            };
            let vis = self.visible.entry(pid).or_default();
            let tree = self.trees.entry(pid).or_default();
            let before = vis.remove(&id);
            let moved = match (&before, &shown_now) {
                (Some(b), Some(n)) => b.collection != n.collection || b.name != n.name,
                (Some(_), None) => true,
                _ => false,
            };
            if let Some(b) = &before {
                if moved {
                    tree.remove(&b.collection, &b.name);
                    changes.push(Change::Asset {
                        login: None,
                        purpose: pid,
                        collection: b.collection.clone(),
                        name: b.name.clone(),
                        asset: id,
                        visible: false,
                    });
                }
            }
            if let Some(n) = shown_now {
                if before.is_none() || moved {
                    tree.insert(&n.collection, n.name.clone(), id);
                }
                if before
                    .as_ref()
                    .is_none_or(|b| moved || b.version != n.version)
                {
                    changes.push(Change::Asset {
                        login: None,
                        purpose: pid,
                        collection: n.collection.clone(),
                        name: n.name.clone(),
                        asset: id,
                        visible: true,
                    });
                }
                vis.insert(id, n);
            }
        }
        if let Some(u) = self.evaluate_draft(id, now, changes) {
            next = Some(next.map_or(u, |n| n.min(u)));
        }
        if let Some(old) = self.next_at.remove(&id) {
            self.timers.remove(&(old, id));
        }
        if let Some(n) = next {
            self.next_at.insert(id, n);
            self.timers.insert((n, id));
        }
    }

    /// A draft is shown to its creator only, in the purpose folder where it was made, while
    /// they have a grant there and the persons of what it was made from allow it (the rules
    /// decide, with the creator as the user). Returns when that next changes by time alone.
    fn evaluate_draft(
        &mut self,
        id: AssetId,
        now: Time,
        changes: &mut Vec<Change>,
    ) -> Option<Time> {
        let mut until = None;
        let shown_now = self.assets.get(&id).and_then(|info| {
            let purpose_id = info.row.draft_purpose?;
            if info.row.status != policy::Status::Draft || info.version.is_none() {
                return None;
            }
            let user = self.users.get(&info.row.creator)?.to_policy();
            let purpose = self.purposes.get(&purpose_id)?.to_policy();
            let d = if info.row.sources.is_empty() {
                policy::decide(&info.policy, self, &user, &purpose, now)
            } else {
                let mut input = info.policy.clone();
                input.derived_from = info
                    .row
                    .sources
                    .iter()
                    .filter_map(|s| self.assets.get(s).map(|a| a.policy.clone()))
                    .collect();
                policy::decide(&input, self, &user, &purpose, now)
            };
            until = d.valid_until;
            d.visible.then(|| {
                (
                    Arc::<str>::from(info.row.creator.as_str()),
                    purpose_id,
                    Shown {
                        until: None,
                        collection: info.collection.clone(),
                        name: info.name.clone(),
                        version: info.version.as_ref().map_or(0, |v| v.version),
                    },
                )
            })
        });
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
                .is_none_or(|b| moved || b.2.version != n.version)
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
        self.timers.first().map(|(t, _)| *t)
    }

    /// Re-evaluate the assets whose time has come.
    pub fn expire(&mut self, now: Time) -> Vec<Change> {
        let mut changes = Vec::new();
        while let Some(&(t, id)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.remove(&(t, id));
            self.next_at.remove(&id);
            self.evaluate(id, now, &mut changes);
        }
        changes
    }

    /// Catch up with changes other processes committed to the catalog.
    pub fn refresh(&mut self, conn: &Connection, now: Time) -> Result<Vec<Change>> {
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
        if full {
            *self = View::load(conn, now)?;
            self.last_seq = last_seq;
            return Ok(vec![Change::All]);
        }
        let mut changes = Vec::new();
        if purposes_changed {
            self.purposes = purposes::list(conn)?
                .into_iter()
                .map(|p| (p.id, p))
                .collect();
        }
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
        let zone = crate::catalog::zone::get(conn)?;
        for pid in &persons_touched {
            match persons::get(conn, *pid)? {
                Some(p) => {
                    let events = consents::list(conn, Some(*pid))?
                        .iter()
                        .map(|e| e.to_policy())
                        .collect();
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
        }
        for aid in &assets_touched {
            if let Some(old) = self.assets.remove(aid) {
                for p in &old.row.persons {
                    if let Some(set) = self.by_person.get_mut(p) {
                        set.remove(aid);
                    }
                }
                for s in &old.row.sources {
                    if let Some(set) = self.derived.get_mut(s) {
                        set.remove(aid);
                    }
                }
                if old.row.status == policy::Status::Draft {
                    if let Some(n) = self.draft_counts.get_mut(&old.row.creator) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
            if let Some(row) = assets::get(conn, *aid)? {
                let version = assets::current_versions(conn, Some(*aid))?.remove(aid);
                self.put_asset(row, version);
            }
        }
        let mut todo: BTreeSet<AssetId> = assets_touched.into_iter().collect();
        for p in &persons_touched {
            if let Some(set) = self.by_person.get(p) {
                todo.extend(set.iter().copied());
            }
        }
        if purposes_changed {
            todo.extend(self.assets.keys().copied());
        }
        let drafts: Vec<AssetId> = todo
            .iter()
            .filter_map(|a| self.derived.get(a))
            .flatten()
            .copied()
            .collect();
        todo.extend(drafts);
        for id in todo {
            self.evaluate(id, now, &mut changes);
        }
        self.last_seq = last_seq;
        Ok(changes)
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
                out.extend(set.iter().copied());
            }
        }
        let drafts: Vec<AssetId> = out
            .iter()
            .filter_map(|a| self.derived.get(a))
            .flatten()
            .copied()
            .collect();
        out.extend(drafts);
        Ok(Some(out))
    }

    /// The assets whose time-bound change is due at `now`.
    pub fn due(&self, now: Time) -> Vec<AssetId> {
        self.timers
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, a)| *a)
            .collect()
    }

    // ---- queries for the filesystem ----

    pub fn purpose_by_name(&self, name: &str) -> Option<&PurposeRow> {
        self.purposes.values().find(|p| p.name == name)
    }

    pub fn purpose(&self, id: PurposeId) -> Option<&PurposeRow> {
        self.purposes.get(&id)
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
        let Some(tree) = self.trees.get(&purpose) else {
            return false;
        };
        if dir.is_empty() {
            return self.grant_prefixes(login, purpose).next().is_some();
        }
        let Some(node) = tree.get(dir) else {
            return false;
        };
        if node.count == 0 {
            return false;
        }
        self.grant_prefixes(login, purpose).any(|(prefix, _)| {
            if prefix_covers(prefix, dir) {
                true
            } else if prefix_covers(dir, prefix) {
                tree.get(prefix).is_some_and(|n| n.count > 0)
            } else {
                false
            }
        })
    }

    fn drafts_of(&self, login: &str, purpose: PurposeId) -> Option<&Tree> {
        self.drafts.get(&(Arc::from(login), purpose))
    }

    /// The sub-folders of a folder as the user sees it (the folders of [`View::list_dir`],
    /// without listing the files: a folder's link count needs them on every `stat`).
    pub fn subdirs(&self, login: &str, purpose: PurposeId, dir: &str) -> Vec<Arc<str>> {
        let mut dirs: Vec<Arc<str>> = Vec::new();
        if let Some(node) = self.drafts_of(login, purpose).and_then(|t| t.get(dir)) {
            dirs.extend(node.dirs.keys().cloned());
        }
        if let Some(node) = self.trees.get(&purpose).and_then(|t| t.get(dir)) {
            for name in node.dirs.keys() {
                if !dirs.contains(name)
                    && self.dir_visible(login, purpose, &assets::join_path(dir, name))
                {
                    dirs.push(name.clone());
                }
            }
        }
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
        if let Some(node) = self.trees.get(&purpose).and_then(|t| t.get(dir)) {
            for name in node.dirs.keys() {
                if !dirs.contains(name)
                    && self.dir_visible(login, purpose, &assets::join_path(dir, name))
                {
                    dirs.push(name.clone());
                }
            }
            if self.access(login, purpose, dir).is_some() {
                files.extend(node.files.iter().map(|(n, a)| (n.clone(), *a)));
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
        self.trees.get(&purpose)?.get(dir)?.files.get(name).copied()
    }

    /// Whether the user may see the asset in the purpose now (checked on every open and read).
    pub fn file_visible(&self, login: &str, purpose: PurposeId, asset: AssetId) -> bool {
        if let Some((l, p, _)) = self.draft_shown.get(&asset) {
            return &**l == login && *p == purpose;
        }
        let Some(info) = self.assets.get(&asset) else {
            return false;
        };
        self.visible
            .get(&purpose)
            .is_some_and(|v| v.contains_key(&asset))
            && self.access(login, purpose, &info.collection).is_some()
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
        let (Some(info), Some(user), Some(p)) = (
            self.assets.get(&asset),
            self.users.get(login),
            self.purposes.get(&purpose),
        ) else {
            return false;
        };
        let mut input = info.policy.clone();
        input.status = status;
        if status == policy::Status::Draft {
            input.derived_from = info
                .row
                .sources
                .iter()
                .filter_map(|s| self.assets.get(s).map(|a| a.policy.clone()))
                .collect();
        }
        policy::decide(&input, self, &user.to_policy(), &p.to_policy(), now).visible
    }

    /// The purposes whose users would see a difference if the asset moved to folder `to`:
    /// those where some user sees it where it is now, and those where some user would see it
    /// at `to` (the rules evaluated again with the asset there, since a consent may be scoped
    /// to a collection). A move changes the asset's collection in every purpose at once, so
    /// the mount allows it only to someone whose grants cover both places in all of these.
    pub fn purposes_seeing_move(&self, asset: AssetId, to: &str, now: Time) -> Vec<PurposeId> {
        let Some(info) = self.assets.get(&asset) else {
            return Vec::new();
        };
        let someone_has = |purpose: PurposeId, path: &str| {
            self.users
                .keys()
                .any(|l| self.access(l, purpose, path).is_some())
        };
        let mut moved = info.policy.clone();
        moved.collection = to.to_string();
        let mut out: Vec<PurposeId> = self
            .purposes
            .values()
            .filter(|purpose| {
                let seen_now = self
                    .visible
                    .get(&purpose.id)
                    .is_some_and(|v| v.contains_key(&asset))
                    && someone_has(purpose.id, &info.collection);
                seen_now
                    || (info.version.is_some()
                        && someone_has(purpose.id, to)
                        && policy::decide(
                            &moved,
                            self,
                            &anyone(purpose.id),
                            &purpose.to_policy(),
                            now,
                        )
                        .visible)
            })
            .map(|p| p.id)
            .collect();
        out.sort_unstable();
        out
    }

    /// When the asset's visibility in the purpose next changes, if it is visible.
    pub fn valid_until(&self, purpose: PurposeId, asset: AssetId) -> Option<Time> {
        self.visible
            .get(&purpose)
            .and_then(|v| v.get(&asset))
            .and_then(|s| s.until)
    }

    pub fn asset(&self, id: AssetId) -> Option<&AssetInfo> {
        self.assets.get(&id)
    }

    /// How many drafts `login` has made (and not yet linked, saved over a file or purged).
    pub fn draft_count(&self, login: &str) -> usize {
        self.draft_counts.get(login).copied().unwrap_or(0)
    }

    /// Number of assets the index holds (for logs and benchmarks).
    pub fn len(&self) -> usize {
        self.assets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.assets.is_empty()
    }
}
