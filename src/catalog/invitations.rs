//! Invitations to the consent page (DESIGN.md section 15): one decider, one person, the
//! purposes asked about, an expiry. The token itself is never stored, only its SHA-256, so
//! neither a copy of the catalog nor a team library's database opens a page.

use super::Tx;
use crate::error::{Error, Result};
use crate::policy::PersonId;
use crate::when::{from_secs, to_secs, Time};
use rusqlite::{params, Connection, OptionalExtension};

/// One invitation as recorded.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: i64,
    pub person: PersonId,
    pub decider: PersonId,
    /// The purposes asked about; empty: every purpose that rests on consent.
    pub purposes: Vec<i64>,
    pub created: Time,
    pub expires: Time,
    pub revoked: Option<Time>,
    pub created_by: String,
}

/// Record an invitation for the token whose hash is `token_hash`; returns its id.
pub fn add(
    tx: &Tx,
    token_hash: &[u8],
    person: PersonId,
    decider: PersonId,
    purposes: &[i64],
    expires: Time,
) -> Result<i64> {
    tx.prepare_cached(
        "INSERT INTO invitations (token_hash, person_id, decider_id, created_at, expires_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        token_hash,
        person,
        decider,
        to_secs(tx.now()),
        to_secs(expires),
        tx.actor()
    ])?;
    let id = tx.last_insert_rowid();
    for p in purposes {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO invitation_purposes (invitation_id, purpose_id) VALUES (?1, ?2)",
        )?
        .execute(params![id, p])?;
    }
    Ok(id)
}

fn purposes_of(conn: &Connection, id: i64) -> Result<Vec<i64>> {
    let mut st = conn.prepare_cached(
        "SELECT purpose_id FROM invitation_purposes WHERE invitation_id = ?1 ORDER BY purpose_id",
    )?;
    let ids = st
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(ids)
}

const COLS: &str = "id, person_id, decider_id, created_at, expires_at, revoked_at, created_by";

fn from_row(r: &rusqlite::Row) -> rusqlite::Result<Invitation> {
    Ok(Invitation {
        id: r.get(0)?,
        person: r.get(1)?,
        decider: r.get(2)?,
        purposes: Vec::new(),
        created: from_secs(r.get(3)?),
        expires: from_secs(r.get(4)?),
        revoked: r.get::<_, Option<i64>>(5)?.map(from_secs),
        created_by: r.get(6)?,
    })
}

fn with_purposes(conn: &Connection, mut i: Invitation) -> Result<Invitation> {
    i.purposes = purposes_of(conn, i.id)?;
    Ok(i)
}

/// The invitation a token's hash names, if any (whatever its state: the caller decides).
pub fn by_hash(conn: &Connection, token_hash: &[u8]) -> Result<Option<Invitation>> {
    let found = conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM invitations WHERE token_hash = ?1"
        ))?
        .query_row([token_hash], from_row)
        .optional()?;
    found.map(|i| with_purposes(conn, i)).transpose()
}

/// One invitation by id.
pub fn get(conn: &Connection, id: i64) -> Result<Option<Invitation>> {
    let found = conn
        .prepare_cached(&format!("SELECT {COLS} FROM invitations WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?;
    found.map(|i| with_purposes(conn, i)).transpose()
}

/// Every invitation, newest first; only those about `person` when given.
pub fn list(conn: &Connection, person: Option<PersonId>) -> Result<Vec<Invitation>> {
    let mut st = conn.prepare(&format!(
        "SELECT {COLS} FROM invitations WHERE ?1 IS NULL OR person_id = ?1 ORDER BY id DESC"
    ))?;
    let rows = st
        .query_map([person], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(|i| with_purposes(conn, i)).collect()
}

/// Revoke invitations that are not revoked yet: one by id, or all about `person` (and, with
/// `decider`, only that decider's). Returns the ids revoked.
pub fn revoke(
    tx: &Tx,
    id: Option<i64>,
    person: Option<PersonId>,
    decider: Option<PersonId>,
) -> Result<Vec<i64>> {
    if id.is_none() && person.is_none() {
        return Err(Error::invalid("name an invitation or a person to revoke"));
    }
    let mut st = tx.prepare_cached(
        "UPDATE invitations SET revoked_at = ?1
         WHERE revoked_at IS NULL AND (?2 IS NULL OR id = ?2) AND (?3 IS NULL OR person_id = ?3)
           AND (?4 IS NULL OR decider_id = ?4)
         RETURNING id",
    )?;
    let ids = st
        .query_map(params![to_secs(tx.now()), id, person, decider], |r| {
            r.get(0)
        })?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(ids)
}

/// Delete every invitation about or for `person` (erasure: nothing of them stays, not even a
/// link that could no longer be opened).
pub fn forget_person(tx: &Tx, person: PersonId) -> Result<usize> {
    tx.prepare_cached(
        "DELETE FROM invitation_purposes WHERE invitation_id IN
           (SELECT id FROM invitations WHERE person_id = ?1 OR decider_id = ?1)",
    )?
    .execute([person])?;
    Ok(tx
        .prepare_cached("DELETE FROM invitations WHERE person_id = ?1 OR decider_id = ?1")?
        .execute([person])?)
}
