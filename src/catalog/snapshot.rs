//! Everything the consent rules need, loaded in a few bulk queries.
//!
//! `ls`, `why`, `expiring` (and later the mount's view index and exports) evaluate the rules over
//! a [`World`]: assets, persons with guardians and consent histories, purposes and users. Loading
//! in bulk instead of per asset keeps a catalog of 100,000 assets to a handful of queries.

use super::assets::{self, AssetRow};
use super::purposes::{self, PurposeRow};
use super::users::{self, UserRow};
use crate::error::Result;
use crate::policy::{self, Decision, People, Person, PersonId, PurposeId, Time};
use rusqlite::Connection;
use std::collections::HashMap;

pub struct World {
    pub purposes: HashMap<PurposeId, PurposeRow>,
    pub persons: PersonMap,
    pub assets: Vec<AssetRow>,
    policy_assets: Vec<policy::Asset>,
    /// Position of each asset in `assets`.
    by_id: HashMap<policy::AssetId, usize>,
    pub users: HashMap<String, UserRow>,
}

impl AssetRow {
    /// The rules' input, taking the row's strings and persons instead of copying them (`ls`
    /// makes one per asset: a million copies were a good part of its allocations).
    pub fn into_policy(self) -> policy::Asset {
        policy::Asset {
            id: self.id,
            collection: self.collection,
            status: self.status,
            creator: self.creator,
            created_at: self.created_at,
            no_persons: self.no_persons,
            special_category: self.special_category,
            persons: self.persons,
            faces: self.faces,
            faces_reviewed: self.faces_reviewed,
            retention_until: self.retention_until,
            draft_purpose: self.draft_purpose,
            derived_from: Vec::new(),
            sidecar_of: self.companion_of,
        }
    }

    pub fn to_policy(&self) -> policy::Asset {
        AssetRow {
            sources: Vec::new(),
            ..self.clone()
        }
        .into_policy()
    }
}

/// The rules' inputs of every asset, a draft's with the assets it was made from.
pub fn policy_assets(assets: &[AssetRow]) -> Vec<policy::Asset> {
    let plain: HashMap<policy::AssetId, policy::Asset> =
        assets.iter().map(|a| (a.id, a.to_policy())).collect();
    assets
        .iter()
        .map(|a| {
            let mut p = plain.get(&a.id).cloned().unwrap_or_else(|| a.to_policy());
            if a.status == policy::Status::Draft {
                p.derived_from = a
                    .sources
                    .iter()
                    .filter_map(|s| plain.get(s).cloned())
                    .collect();
            }
            p
        })
        .collect()
}

impl People for World {
    fn person(&self, id: PersonId) -> Option<&Person> {
        self.persons.get(&id)
    }
}

impl World {
    pub fn load(conn: &Connection) -> Result<World> {
        let purposes = purposes::list(conn)?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let persons = persons(conn)?;
        let assets = assets::list(conn)?;
        let policy_assets = policy_assets(&assets);
        let users = users::list(conn)?
            .into_iter()
            .map(|u| (u.login.clone(), u))
            .collect();
        let by_id = assets.iter().enumerate().map(|(i, a)| (a.id, i)).collect();
        Ok(World {
            purposes,
            persons,
            assets,
            policy_assets,
            by_id,
            users,
        })
    }

    /// The decision for every asset, in asset-id order.
    pub fn decide_all(
        &self,
        user: &policy::User,
        purpose: &PurposeRow,
        now: Time,
    ) -> Vec<(&AssetRow, Decision)> {
        let purpose = purpose.to_policy();
        self.assets
            .iter()
            .zip(&self.policy_assets)
            .map(|(row, a)| (row, policy::decide(a, self, user, &purpose, now)))
            .collect()
    }

    pub fn decide(
        &self,
        asset: &AssetRow,
        user: &policy::User,
        purpose: &PurposeRow,
        now: Time,
    ) -> Decision {
        let mut input = asset.to_policy();
        if asset.status == policy::Status::Draft {
            // what the draft was made from, as loaded (see `policy_assets`)
            input.derived_from = asset
                .sources
                .iter()
                .filter_map(|s| self.by_id.get(s).map(|&i| self.assets[i].to_policy()))
                .collect();
        }
        policy::decide(&input, self, user, &purpose.to_policy(), now)
    }
}

/// Every person with guardians and consent history: what the rules need of them.
/// Persons by id, on foldhash: the rules look one up per asset, purpose and person (millions
/// of times for `ls` or a mount's start at a million photos; SipHash was a twentieth of that).
pub type PersonMap = foldhash::HashMap<PersonId, Person>;

pub fn persons(conn: &Connection) -> Result<PersonMap> {
    let zone = super::zone::get(conn)?;
    let mut persons: PersonMap = PersonMap::default();
    let mut st = conn.prepare("SELECT id, born FROM persons")?;
    for r in st.query_map([], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
    })? {
        let (id, born) = r?;
        persons.insert(
            id,
            Person {
                id,
                turns_16: born
                    .and_then(|b| chrono::NaiveDate::parse_from_str(&b, "%Y-%m-%d").ok())
                    .map(|b| crate::when::sixteenth_birthday(b, &zone)),
                guardians: Vec::new(),
                events: Vec::new(),
            },
        );
    }
    let mut st = conn.prepare("SELECT person_id, guardian_id FROM guardians")?;
    for r in st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
        let (p, g) = r?;
        if let Some(p) = persons.get_mut(&p) {
            p.guardians.push(g);
        }
    }
    // streamed: a million events as rows with their purposes' names would be most of the
    // daemon's memory at start
    super::bulk::each_event(conn, None, |person, e| {
        if let Some(p) = persons.get_mut(&person) {
            p.events.push(e);
        }
    })?;
    for p in persons.values_mut() {
        crate::policy::sort_events(&mut p.events);
    }
    Ok(persons)
}

/// The persons `ids` and their guardians, with guardians and events: what the rules need to
/// decide about a few photos (the consent page), without loading every person.
pub fn persons_among(conn: &Connection, ids: &[PersonId]) -> Result<PersonMap> {
    let zone = super::zone::get(conn)?;
    let mut out = PersonMap::default();
    let mut todo: Vec<PersonId> = ids.to_vec();
    while let Some(id) = todo.pop() {
        if out.contains_key(&id) {
            continue;
        }
        let Some(row) = super::persons::get(conn, id)? else {
            continue;
        };
        let mut events = Vec::new();
        super::bulk::each_event(conn, Some(id), |_, e| events.push(e))?;
        crate::policy::sort_events(&mut events);
        todo.extend(row.guardians.iter().copied());
        out.insert(
            id,
            Person {
                id,
                turns_16: row.born.map(|b| crate::when::sixteenth_birthday(b, &zone)),
                guardians: row.guardians,
                events,
            },
        );
    }
    Ok(out)
}

/// The persons alone, for commands that stream the assets past the rules (see
/// `bulk::each_asset_row`) instead of loading a [`World`].
pub struct Persons(pub PersonMap);

impl People for Persons {
    fn person(&self, id: PersonId) -> Option<&Person> {
        self.0.get(&id)
    }
}

impl Persons {
    pub fn load(conn: &Connection) -> Result<Persons> {
        persons(conn).map(Persons)
    }
}
