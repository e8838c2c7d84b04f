//! Persons and their guardians.

use super::{as_id, Tx};
use crate::error::{Error, Result};
use crate::policy::PersonId;
use crate::when;
use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct PersonRow {
    pub id: PersonId,
    /// `None` once the person was erased.
    pub name: Option<String>,
    pub born: Option<NaiveDate>,
    pub ext_ref: Option<String>,
    pub pseudonym: String,
    pub guardians: Vec<PersonId>,
}

impl PersonRow {
    /// How to show the person to people: their name, or their pseudonym once erased.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("[erased {}]", self.pseudonym),
        }
    }
}

const COLS: &str = "id, name, born, ext_ref, pseudonym";

fn from_row(r: &Row) -> rusqlite::Result<PersonRow> {
    let born: Option<String> = r.get(2)?;
    Ok(PersonRow {
        id: r.get(0)?,
        name: r.get(1)?,
        born: born.and_then(|b| NaiveDate::parse_from_str(&b, "%Y-%m-%d").ok()),
        ext_ref: r.get(3)?,
        pseudonym: r.get(4)?,
        guardians: Vec::new(),
    })
}

fn with_guardians(conn: &Connection, mut p: PersonRow) -> Result<PersonRow> {
    p.guardians = guardians_of(conn, p.id)?;
    Ok(p)
}

pub fn guardians_of(conn: &Connection, id: PersonId) -> Result<Vec<PersonId>> {
    let mut st = conn.prepare_cached(
        "SELECT guardian_id FROM guardians WHERE person_id = ?1 ORDER BY guardian_id",
    )?;
    let ids = st
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

/// The persons `id` is a registered guardian of, in id order.
pub fn wards_of(conn: &Connection, id: PersonId) -> Result<Vec<PersonId>> {
    let mut st = conn.prepare_cached(
        "SELECT person_id FROM guardians WHERE guardian_id = ?1 ORDER BY person_id",
    )?;
    let ids = st
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

/// Whether the person was erased (their row stays, under its pseudonym).
pub fn is_erased(conn: &Connection, id: PersonId) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT erased_at IS NOT NULL FROM persons WHERE id = ?1",
        [id],
        |r| r.get(0),
    )?)
}

pub fn get(conn: &Connection, id: PersonId) -> Result<Option<PersonRow>> {
    let p = conn
        .prepare_cached(&format!("SELECT {COLS} FROM persons WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?;
    p.map(|p| with_guardians(conn, p)).transpose()
}

pub fn list(conn: &Connection) -> Result<Vec<PersonRow>> {
    let mut st = conn.prepare(&format!("SELECT {COLS} FROM persons ORDER BY id"))?;
    let rows = st
        .query_map([], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(|p| with_guardians(conn, p)).collect()
}

/// A person by id (`12`, `#12`) or by unique name.
pub fn resolve(conn: &Connection, what: &str) -> Result<PersonRow> {
    if let Some(id) = as_id(what) {
        return get(conn, id)?.ok_or_else(|| {
            Error::not_found(format!(
                "no person with id {id}; see `consentfs person list`"
            ))
        });
    }
    let mut st = conn.prepare(&format!(
        "SELECT {COLS} FROM persons WHERE name = ?1 OR pseudonym = ?1 ORDER BY id"
    ))?;
    let found = st
        .query_map([what], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    match found.len() {
        0 => Err(Error::not_found(format!(
            "no person named '{what}'; add them with `consentfs person add` or see `consentfs person list`"
        ))),
        1 => with_guardians(conn, found.into_iter().next().expect("one row")),
        _ => Err(Error::invalid(format!(
            "'{what}' is ambiguous: persons {} have that name; name one by id",
            found.iter().map(|p| format!("#{}", p.id)).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Refuse a second person of a name already taken, unless told apart by an external
/// reference (`--ref`) or explicitly meant (`same_name`): once two persons share a name,
/// every later command that names one of them must use an id instead.
pub fn check_new_name(
    conn: &Connection,
    name: &str,
    ext_ref: Option<&str>,
    same_name: bool,
) -> Result<()> {
    if ext_ref.is_some() || same_name {
        return Ok(());
    }
    let ids: Vec<i64> = conn
        .prepare_cached("SELECT id FROM persons WHERE name = ?1 ORDER BY id")?
        .query_map([name.trim()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if let Some(id) = ids.first() {
        return Err(Error::invalid(format!(
            "a person named '{}' exists already (person {id}); to add another, tell them apart with --ref (e.g. a student number), or add --same-name; later commands must then name them by id",
            name.trim()
        )));
    }
    Ok(())
}

pub fn add(
    tx: &Tx,
    name: &str,
    born: Option<NaiveDate>,
    ext_ref: Option<&str>,
) -> Result<PersonId> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::invalid("a person needs a name"));
    }
    if as_id(name).is_some() {
        return Err(Error::invalid(format!(
            "'{name}' looks like an id; a person's name must contain something other than digits"
        )));
    }
    if let Some(b) = born {
        // "today" in the store's zone: just after local midnight it is already tomorrow in
        // Amsterdam while still today in UTC
        let today = super::zone::get(tx)?
            .date_of(tx.now())
            .unwrap_or_else(|| tx.now().date_naive());
        if b > today {
            return Err(Error::invalid(format!("birth date {b} is in the future")));
        }
        if b < when::EARLIEST_DAY {
            return Err(Error::invalid(format!(
                "birth date {b} is before {}; check the year",
                when::EARLIEST_DAY
            )));
        }
    }
    let pseudonym = format!("p-{}", hex::encode(crate::crypto::random_bytes::<6>()));
    tx.prepare_cached("INSERT INTO persons (name, born, ext_ref, pseudonym, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")?.execute(params![name, born.map(|b| b.to_string()), ext_ref, pseudonym, when::to_secs(tx.now())])?;
    let id = tx.last_insert_rowid();
    tx.audit("person.add", serde_json::json!({ "person": id }))?;
    Ok(id)
}

pub fn add_guardian(tx: &Tx, person: PersonId, guardian: PersonId) -> Result<()> {
    if person == guardian {
        return Err(Error::invalid(
            "a person cannot be their own guardian; name the parent or guardian",
        ));
    }
    // A guardian consents for a child: someone under 16, who cannot consent for themself, cannot
    // do it for another.
    if let Some(born) = get(tx, guardian)?.and_then(|g| g.born) {
        let sixteen = when::sixteenth_birthday(born, &super::zone::get(tx)?);
        if tx.now() < sixteen {
            return Err(Error::invalid(format!(
                "#{guardian} (born {born}) is under 16 and cannot be a guardian; register a parent or guardian who is 16 or older"
            )));
        }
    }
    if guardians_of(tx, guardian)?.contains(&person) {
        return Err(Error::invalid(format!(
            "person #{person} is a registered guardian of #{guardian}; two persons cannot be each other's guardian"
        )));
    }
    let n = tx
        .prepare_cached("INSERT OR IGNORE INTO guardians (person_id, guardian_id) VALUES (?1, ?2)")?
        .execute(params![person, guardian])?;
    if n == 0 {
        return Err(Error::invalid(format!(
            "#{guardian} is already a guardian of #{person}"
        )));
    }
    tx.audit(
        "person.guardian",
        serde_json::json!({ "person": person, "guardian": guardian }),
    )?;
    Ok(())
}

/// `guardian` is no longer a guardian of `person`: their grants already given stay (they were
/// given while the guardian was one), their links to the consent page for the person die.
pub fn remove_guardian(tx: &Tx, person: PersonId, guardian: PersonId) -> Result<()> {
    let n = tx
        .prepare_cached("DELETE FROM guardians WHERE person_id = ?1 AND guardian_id = ?2")?
        .execute(params![person, guardian])?;
    if n == 0 {
        return Err(Error::invalid(format!(
            "#{guardian} is not a registered guardian of #{person}"
        )));
    }
    let revoked = super::invitations::revoke(tx, None, Some(person), Some(guardian))?;
    tx.audit(
        "person.guardian.remove",
        serde_json::json!({ "person": person, "guardian": guardian, "invitations_revoked": revoked }),
    )?;
    Ok(())
}

/// Erase a person's identifying data (name, birth date, own reference); the row, its
/// pseudonym and the consent history stay as proof. Evidence file names often carry the name,
/// so they are replaced by a neutral one (the evidence itself stays: it is the proof).
pub fn erase(tx: &Tx, person: PersonId) -> Result<()> {
    // suggestions that name the person (from photos' metadata) go with the name
    tx.prepare_cached(
        "DELETE FROM suggestions WHERE person_id = ?1
            OR name = (SELECT name FROM persons WHERE id = ?1)",
    )?
    .execute([person])?;
    tx.prepare_cached(
        "UPDATE persons SET name = NULL, born = NULL, ext_ref = NULL, email = NULL, erased_at = ?1
          WHERE id = ?2",
    )?
    .execute(rusqlite::params![crate::when::to_secs(tx.now()), person])?;
    tx.prepare_cached(
        "UPDATE consent_events SET evidence_name = 'evidence-' || id WHERE person_id = ?1 AND evidence_name IS NOT NULL",
    )?
    .execute([person])?;
    // their links to the consent page, as the person asked about or as a decider, die
    super::invitations::forget_person(tx, person)?;
    tx.audit("person.erase", serde_json::json!({ "person": person }))?;
    Ok(())
}

/// The mail address of a person (for their consent-page links and receipts), if recorded.
pub fn email_of(conn: &Connection, person: PersonId) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT email FROM persons WHERE id = ?1")?
        .query_row([person], |r| r.get::<_, Option<String>>(0))
        .optional()?
        .flatten())
}

/// Record (or with `None` remove) a person's mail address; the audit entry says that it
/// changed, not what it is.
pub fn set_email(tx: &Tx, person: PersonId, email: Option<&str>) -> Result<()> {
    tx.prepare_cached("UPDATE persons SET email = ?2 WHERE id = ?1")?
        .execute(rusqlite::params![person, email])?;
    tx.audit(
        "person.email",
        serde_json::json!({ "person": person, "recorded": email.is_some() }),
    )?;
    Ok(())
}
