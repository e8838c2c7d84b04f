//! Suggestions for a reviewer (DESIGN.md section 14): a person a photo's metadata names
//! without an id that matches anyone's reference, or (later) the original a near-duplicate was
//! made from. A suggestion changes nothing by itself; `review accept` applies it, `review
//! reject` drops it, both on record. Photos' metadata also links outright where an id equals
//! a person's external reference ([`person_by_ref`]).

use super::Tx;
use crate::error::{Error, Result};
use crate::policy::{AssetId, PersonId};
use crate::when;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// An open suggestion.
#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    pub id: i64,
    pub asset: AssetId,
    /// `person` or `derive`.
    pub kind: String,
    /// The name as the metadata gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The person of that name, when exactly one has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<PersonId>,
    /// For `derive`: the asset it was made from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_asset: Option<AssetId>,
    /// Where it came from (the metadata tag, or `phash`).
    pub source: String,
}

/// A suggestion from its columns `id, asset_id, kind, name, person_id, from_asset, source`.
fn from_row(r: &rusqlite::Row) -> rusqlite::Result<Suggestion> {
    Ok(Suggestion {
        id: r.get(0)?,
        asset: r.get(1)?,
        kind: r.get(2)?,
        name: r.get(3)?,
        person: r.get(4)?,
        from_asset: r.get(5)?,
        source: r.get(6)?,
    })
}

/// The person whose external reference is `value` (not erased), if any.
pub fn person_by_ref(conn: &Connection, value: &str) -> Result<Option<PersonId>> {
    Ok(conn
        .prepare_cached("SELECT id FROM persons WHERE ext_ref = ?1 AND erased_at IS NULL")?
        .query_row([value], |r| r.get(0))
        .optional()?)
}

/// The one person (not erased) with this name; `None` when nobody or several have it.
pub fn person_by_name(conn: &Connection, name: &str) -> Result<Option<PersonId>> {
    let ids: Vec<PersonId> = conn
        .prepare_cached("SELECT id FROM persons WHERE name = ?1 AND erased_at IS NULL LIMIT 2")?
        .query_map([name], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok((ids.len() == 1).then(|| ids[0]))
}

/// Suggest that `name` (from `source`) is on `asset`; not again if the same open suggestion
/// exists. Returns whether one was added.
pub fn suggest_person(
    tx: &Tx,
    asset: AssetId,
    name: &str,
    person: Option<PersonId>,
    source: &str,
) -> Result<bool> {
    let exists: Option<i64> = tx
        .prepare_cached(
            "SELECT id FROM suggestions WHERE asset_id = ?1 AND kind = 'person' AND name = ?2
              AND settled_at IS NULL",
        )?
        .query_row(params![asset, name], |r| r.get(0))
        .optional()?;
    if exists.is_some() {
        return Ok(false);
    }
    tx.prepare_cached(
        "INSERT INTO suggestions (asset_id, kind, name, person_id, source, created_at)
         VALUES (?1, 'person', ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        asset,
        name,
        person,
        source,
        when::to_secs(tx.now())
    ])?;
    Ok(true)
}

/// Open suggestions, of assets whose path starts with `prefix` (all when empty).
pub fn open(conn: &Connection, prefix: &str) -> Result<Vec<Suggestion>> {
    let mut st = conn.prepare_cached(
        "SELECT s.id, s.asset_id, s.kind, s.name, s.person_id, s.from_asset, s.source
           FROM suggestions s JOIN assets a ON a.id = s.asset_id
          WHERE s.settled_at IS NULL AND a.status IN ('active', 'draft')
            AND (?1 = '' OR a.collection = ?1 OR a.collection LIKE ?2 ESCAPE '\\')
          ORDER BY s.asset_id, s.id",
    )?;
    let like = super::review::like_prefix(prefix);
    let rows = st
        .query_map(params![prefix, like], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// One open suggestion by id.
pub fn get(conn: &Connection, id: i64) -> Result<Suggestion> {
    conn.prepare_cached(
        "SELECT id, asset_id, kind, name, person_id, from_asset, source FROM suggestions
          WHERE id = ?1 AND settled_at IS NULL",
    )?
    .query_row([id], from_row)
    .optional()?
    .ok_or_else(|| Error::not_found(format!("no open suggestion {id}; see `consentfs review`")))
}

/// Settle a suggestion: `accepted` (the caller applied it) or `rejected`.
pub fn settle(tx: &Tx, id: i64, accepted: bool) -> Result<()> {
    let how = if accepted { "accepted" } else { "rejected" };
    tx.prepare_cached(
        "UPDATE suggestions SET settled_at = ?2, settled = ?3 WHERE id = ?1 AND settled_at IS NULL",
    )?
    .execute(params![id, when::to_secs(tx.now()), how])?;
    tx.audit(
        &format!("suggestion.{how}"),
        serde_json::json!({ "suggestion": id }),
    )?;
    Ok(())
}
