//! What ends soon (`expiring`, the daily report): consents that end, minors who turn 16 (their
//! guardian's consent must be confirmed by them), retention terms that end.

use crate::catalog::assets::AssetRow;
use crate::catalog::persons;
use crate::catalog::snapshot::World;
use crate::error::{Error, Result};
use crate::policy::{self, EventKind, Time};
use crate::when::Span;
use rusqlite::Connection;
use serde::Serialize;
use std::collections::HashMap;

/// Something that ends soon.
#[derive(Serialize, Debug)]
pub struct Item {
    /// `consent_ends`, `turns_16` or `retention_ends`.
    pub kind: &'static str,
    pub at: Time,
    pub person: Option<i64>,
    pub name: Option<String>,
    pub purposes: Vec<String>,
    pub event: Option<i64>,
    pub asset: Option<i64>,
    /// For a retention end: the persons linked to the asset.
    pub persons: Vec<i64>,
    /// Number of photos affected.
    pub photos: usize,
}

/// What ends before `to`.
#[derive(Debug)]
pub struct Expiring {
    pub to: Time,
    pub items: Vec<Item>,
    /// Every person's label by id (for the persons on a photo whose retention ends).
    pub names: HashMap<i64, String>,
}

/// Consents that end, minors who turn 16 and retention terms that end between `now` and
/// `within` (a span as typed) from now, soonest first.
pub fn expiring(conn: &Connection, now: Time, within: &str) -> Result<Expiring> {
    let span = Span::parse(within)?;
    let (from, to) = (
        now,
        span.after(now)
            .ok_or_else(|| Error::invalid("--within is out of range"))?,
    );
    let world = World::load(conn)?;
    let names: HashMap<i64, String> = persons::list(conn)?
        .into_iter()
        .map(|p| (p.id, p.label()))
        .collect();
    let active: Vec<&AssetRow> = world
        .assets
        .iter()
        .filter(|a| a.status == policy::Status::Active)
        .collect();
    let mut by_person: HashMap<i64, Vec<&AssetRow>> = HashMap::new();
    for a in &active {
        for p in &a.persons {
            by_person.entry(*p).or_default().push(a);
        }
    }
    let purpose_names: HashMap<i64, String> = world
        .purposes
        .values()
        .map(|p| (p.id, p.name.clone()))
        .collect();
    let mut items = Vec::new();
    for person in world.persons.values() {
        let photos = by_person.get(&person.id).map(Vec::as_slice).unwrap_or(&[]);
        for e in &person.events {
            if e.kind != EventKind::Grant {
                continue;
            }
            if let Some(end) = e.expires.filter(|end| *end >= from && *end <= to) {
                items.push(Item {
                    kind: "consent_ends",
                    at: end,
                    person: Some(person.id),
                    name: names.get(&person.id).cloned(),
                    purposes: e
                        .purposes
                        .iter()
                        .filter_map(|p| purpose_names.get(p).cloned())
                        .collect(),
                    event: Some(e.id),
                    asset: None,
                    persons: Vec::new(),
                    photos: photos
                        .iter()
                        .filter(|a| e.scope.covers(&a.to_policy()))
                        .count(),
                });
            }
        }
        if let Some(sixteen) = person.turns_16.filter(|b| *b >= from && *b <= to) {
            items.push(Item {
                kind: "turns_16",
                at: sixteen,
                person: Some(person.id),
                name: names.get(&person.id).cloned(),
                purposes: Vec::new(),
                event: None,
                asset: None,
                persons: Vec::new(),
                photos: photos.len(),
            });
        }
    }
    for a in &active {
        let mut ends: Vec<(Time, Vec<String>)> = Vec::new();
        if let Some(r) = a.retention_until.filter(|r| *r >= from && *r <= to) {
            ends.push((r, Vec::new()));
        }
        for p in world.purposes.values() {
            if let Some(end) = p
                .to_policy()
                .retention
                .and_then(|term| term.end(a.created_at))
            {
                if end >= from && end <= to {
                    ends.push((end, vec![p.name.clone()]));
                }
            }
        }
        for (at, purposes) in ends {
            items.push(Item {
                kind: "retention_ends",
                at,
                person: None,
                name: None,
                purposes,
                event: None,
                asset: Some(a.id),
                persons: a.persons.clone(),
                photos: 1,
            });
        }
    }
    items.sort_by_key(|i| (i.at, i.kind, i.person, i.asset));
    Ok(Expiring { to, items, names })
}
