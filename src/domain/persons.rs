//! Persons and their guardians: recording them, and what the catalog holds about one.

use super::Session;
use crate::catalog::assets;
use crate::catalog::consents::{self, EventRow};
use crate::catalog::persons::{self, PersonRow};
use crate::error::Result;
use chrono::NaiveDate;
use rusqlite::Connection;
use serde::Serialize;

/// Record a person (a birth date decides when their own consent counts); returns their id.
pub fn add(
    s: &mut Session,
    name: &str,
    born: Option<NaiveDate>,
    ext_ref: Option<&str>,
    same_name: bool,
) -> Result<i64> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    persons::check_new_name(&tx, name, ext_ref, same_name)?;
    let id = persons::add(&tx, name, born, ext_ref)?;
    tx.commit()?;
    Ok(id)
}

/// Register `guardian` as a parent or guardian of `person`; returns (guardian, person) ids.
pub fn add_guardian(s: &mut Session, person: &str, guardian: &str) -> Result<(i64, i64)> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let p = persons::resolve(&tx, person)?;
    let g = persons::resolve(&tx, guardian)?;
    persons::add_guardian(&tx, p.id, g.id)?;
    tx.commit()?;
    Ok((g.id, p.id))
}

/// `guardian` is no longer a parent or guardian of `person` (custody changed, registered by
/// mistake); returns (guardian, person) ids.
pub fn remove_guardian(s: &mut Session, person: &str, guardian: &str) -> Result<(i64, i64)> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let p = persons::resolve(&tx, person)?;
    let g = persons::resolve(&tx, guardian)?;
    persons::remove_guardian(&tx, p.id, g.id)?;
    tx.commit()?;
    Ok((g.id, p.id))
}

/// A person with their consent history and the photos they are linked to.
#[derive(Serialize, Debug)]
pub struct Shown {
    /// The assets linked to the person now, by id.
    pub assets: Vec<i64>,
    pub consents: Vec<EventRow>,
    pub person: PersonRow,
}

/// What `person show` shows.
pub fn show(conn: &Connection, person: &str) -> Result<Shown> {
    let p = persons::resolve(conn, person)?;
    Ok(Shown {
        assets: assets::linked_to(conn, p.id)?,
        consents: consents::list(conn, Some(p.id))?,
        person: p,
    })
}
