//! The append-only consent history: grants, withdrawals, refusals and objections.
//! Events are never updated or deleted: they are the organisation's proof.

use super::Tx;
use crate::crypto::object::ObjectId;
use crate::error::{Error, Result};
use crate::policy::{AssetId, ConsentEvent, EventId, EventKind, PersonId, PurposeId, Scope, Time};
use crate::when;
use rusqlite::{params, Connection, Row};
use serde::Serialize;
use std::collections::HashMap;

/// An event about to be recorded.
pub struct NewEvent {
    pub person: PersonId,
    pub kind: EventKind,
    pub purposes: Vec<PurposeId>,
    pub scope: Scope,
    pub starts: Time,
    pub expires: Option<Time>,
    pub given_by: PersonId,
    pub explicit: bool,
    /// The signed form: an encrypted object and the file name it had.
    pub evidence: Option<(ObjectId, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub id: EventId,
    pub person: PersonId,
    pub kind: EventKind,
    /// Purpose names.
    pub purposes: Vec<String>,
    #[serde(skip)]
    pub purpose_ids: Vec<PurposeId>,
    /// `all`, `collection` or `assets`.
    pub scope: String,
    pub collection: Option<String>,
    pub assets: Vec<AssetId>,
    pub starts: Time,
    pub expires: Option<Time>,
    pub given_by: PersonId,
    pub explicit: bool,
    pub evidence: Option<String>,
    #[serde(skip)]
    pub evidence_object: Option<String>,
    pub recorded_by: String,
    pub recorded_at: Time,
}

impl EventRow {
    pub fn to_policy(&self) -> ConsentEvent {
        ConsentEvent {
            id: self.id,
            kind: self.kind,
            purposes: crate::policy::Purposes::from_slice(&self.purpose_ids),
            scope: match self.scope.as_str() {
                "collection" => Scope::Collection(self.collection.clone().unwrap_or_default()),
                "assets" => Scope::Assets(self.assets.clone()),
                _ => Scope::All,
            },
            starts: self.starts,
            expires: self.expires,
            given_by: self.given_by,
            explicit: self.explicit,
        }
    }
}

pub fn record(tx: &Tx, e: &NewEvent) -> Result<EventId> {
    if e.purposes.is_empty() {
        return Err(Error::invalid("a consent event needs at least one purpose"));
    }
    if let Some(end) = e.expires {
        if end <= e.starts {
            return Err(Error::invalid(format!(
                "the consent would end ({}) before it starts ({})",
                when::show(end),
                when::show(e.starts)
            )));
        }
    }
    let (scope, prefix) = match &e.scope {
        Scope::All => ("all", None),
        Scope::Collection(p) => ("collection", Some(p.clone())),
        Scope::Assets(_) => ("assets", None),
    };
    tx.prepare_cached("INSERT INTO consent_events (person_id, kind, scope, scope_prefix, starts, expires, given_by, explicit,
             evidence_object, evidence_name, recorded_by, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")?.execute(params![
            e.person,
            e.kind.as_str(),
            scope,
            prefix,
            when::to_secs(e.starts),
            e.expires.map(when::to_secs),
            e.given_by,
            e.explicit,
            e.evidence.as_ref().map(|(id, _)| id.hex()),
            e.evidence.as_ref().map(|(_, n)| n.clone()),
            tx.actor(),
            when::to_secs(tx.now()),
        ])?;
    let id = tx.last_insert_rowid();
    for p in &e.purposes {
        tx.prepare_cached(
            "INSERT INTO consent_event_purposes (event_id, purpose_id) VALUES (?1, ?2)",
        )?
        .execute(params![id, p])?;
    }
    if let Scope::Assets(ids) = &e.scope {
        for a in ids {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO consent_event_assets (event_id, asset_id) VALUES (?1, ?2)",
            )?
            .execute(params![id, a])?;
        }
    }
    tx.audit(
        &format!("consent.{}", e.kind.as_str()),
        serde_json::json!({ "event": id, "person": e.person, "purposes": e.purposes }),
    )?;
    Ok(id)
}

fn from_row(r: &Row) -> rusqlite::Result<EventRow> {
    let kind: String = r.get(2)?;
    Ok(EventRow {
        id: r.get(0)?,
        person: r.get(1)?,
        kind: EventKind::parse(&kind).unwrap_or(EventKind::Refuse),
        purposes: Vec::new(),
        purpose_ids: Vec::new(),
        scope: r.get(3)?,
        collection: r.get(4)?,
        assets: Vec::new(),
        starts: when::from_secs(r.get(5)?),
        expires: r.get::<_, Option<i64>>(6)?.map(when::from_secs),
        given_by: r.get(7)?,
        explicit: r.get(8)?,
        evidence_object: r.get(9)?,
        evidence: r.get(10)?,
        recorded_by: r.get(11)?,
        recorded_at: when::from_secs(r.get(12)?),
    })
}

/// Events, oldest first; of one person when `person` is given.
pub fn list(conn: &Connection, person: Option<PersonId>) -> Result<Vec<EventRow>> {
    let sql =
        "SELECT id, person_id, kind, scope, scope_prefix, starts, expires, given_by, explicit,
                      evidence_object, evidence_name, recorded_by, recorded_at
               FROM consent_events WHERE ?1 IS NULL OR person_id = ?1 ORDER BY id";
    let mut st = conn.prepare(sql)?;
    let mut rows = st
        .query_map([person], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut purposes: HashMap<EventId, Vec<(PurposeId, String)>> = HashMap::new();
    let mut ps = conn.prepare(
        "SELECT ep.event_id, ep.purpose_id, p.name FROM consent_event_purposes ep JOIN purposes p ON p.id = ep.purpose_id
         WHERE ?1 IS NULL OR ep.event_id IN (SELECT id FROM consent_events WHERE person_id = ?1)
         ORDER BY ep.event_id, ep.purpose_id",
    )?;
    for r in ps.query_map([person], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })? {
        let (e, p, n) = r?;
        purposes.entry(e).or_default().push((p, n));
    }
    let mut assets: HashMap<EventId, Vec<AssetId>> = HashMap::new();
    let mut asx = conn.prepare(
        "SELECT event_id, asset_id FROM consent_event_assets
         WHERE ?1 IS NULL OR event_id IN (SELECT id FROM consent_events WHERE person_id = ?1)
         ORDER BY event_id, asset_id",
    )?;
    for r in asx.query_map([person], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
        let (e, a) = r?;
        assets.entry(e).or_default().push(a);
    }
    for e in &mut rows {
        let ps = purposes.remove(&e.id).unwrap_or_default();
        e.purpose_ids = ps.iter().map(|(id, _)| *id).collect();
        e.purposes = ps.into_iter().map(|(_, n)| n).collect();
        e.assets = assets.remove(&e.id).unwrap_or_default();
    }
    Ok(rows)
}
