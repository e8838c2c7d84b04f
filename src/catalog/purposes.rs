//! Purposes (channels) and their legal basis.

use super::{as_id, Tx};
use crate::error::{Error, Result};
use crate::policy::{Basis, Purpose, PurposeId};
use crate::when::Span;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

/// The purposes every new store starts with (DESIGN.md §7).
pub const DEFAULTS: &[&str] = &["website", "social-media", "print", "intranet"];

#[derive(Debug, Clone, Serialize)]
pub struct PurposeRow {
    pub id: PurposeId,
    pub name: String,
    pub basis: Basis,
    pub retention: Option<String>,
}

impl PurposeRow {
    pub fn to_policy(&self) -> Purpose {
        Purpose {
            id: self.id,
            name: self.name.clone(),
            basis: self.basis,
            retention: self
                .retention
                .as_deref()
                .and_then(|r| Span::parse(r).ok())
                .map(span_duration),
        }
    }
}

/// The rules take a fixed duration: a year counts as 365 days and a month as 30 days.
fn span_duration(s: Span) -> chrono::Duration {
    let days = i64::from(s.months / 12) * 365 + i64::from(s.months % 12) * 30;
    chrono::Duration::seconds(s.secs + days * 86_400)
}

fn from_row(r: &Row) -> rusqlite::Result<PurposeRow> {
    let basis: String = r.get(2)?;
    Ok(PurposeRow {
        id: r.get(0)?,
        name: r.get(1)?,
        basis: Basis::parse(&basis).unwrap_or(Basis::Consent),
        retention: r.get(3)?,
    })
}

pub fn list(conn: &Connection) -> Result<Vec<PurposeRow>> {
    let mut st = conn.prepare("SELECT id, name, basis, retention FROM purposes ORDER BY id")?;
    let rows = st
        .query_map([], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn resolve(conn: &Connection, what: &str) -> Result<PurposeRow> {
    let found = if let Some(id) = as_id(what) {
        conn.query_row(
            "SELECT id, name, basis, retention FROM purposes WHERE id = ?1",
            [id],
            from_row,
        )
        .optional()?
    } else {
        conn.query_row(
            "SELECT id, name, basis, retention FROM purposes WHERE name = ?1",
            [what],
            from_row,
        )
        .optional()?
    };
    found.ok_or_else(|| {
        let known = list(conn)
            .map(|l| l.into_iter().map(|p| p.name).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        Error::not_found(format!(
            "no purpose '{what}' (known: {known}); add it with `consentfs purpose add`"
        ))
    })
}

/// Several purposes from a comma-separated list (`website,print`).
pub fn resolve_list(conn: &Connection, what: &str) -> Result<Vec<PurposeRow>> {
    let mut out: Vec<PurposeRow> = Vec::new();
    for part in what.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let p = resolve(conn, part)?;
        if !out.iter().any(|q| q.id == p.id) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err(Error::invalid(
            "name at least one purpose, e.g. --purpose website,print",
        ));
    }
    Ok(out)
}

pub fn add(tx: &Tx, name: &str, basis: Basis, retention: Option<Span>) -> Result<PurposeId> {
    let name = name.trim();
    if name.is_empty()
        || name.contains('/')
        || name.contains(',')
        || name.starts_with('.')
        || as_id(name).is_some()
    {
        return Err(Error::invalid(format!(
            "'{name}' cannot be a purpose name: it becomes a folder name in the mount (no '/', ',', leading '.', or only digits)"
        )));
    }
    if resolve(tx, name).is_ok() {
        return Err(Error::invalid(format!("purpose '{name}' already exists")));
    }
    if basis != Basis::Consent && retention.is_none() {
        return Err(Error::invalid(format!(
            "a purpose on {} needs a retention term: add --retention, e.g. --retention 5y",
            basis.as_str()
        )));
    }
    tx.execute(
        "INSERT INTO purposes (name, basis, retention) VALUES (?1, ?2, ?3)",
        params![name, basis.as_str(), retention.map(|r| r.to_text())],
    )?;
    let id = tx.last_insert_rowid();
    tx.audit(
        "purpose.add",
        serde_json::json!({ "purpose": id, "name": name, "basis": basis.as_str() }),
    )?;
    Ok(id)
}

/// Change (or with `None` remove) a purpose's retention term. Purposes that do not rest on
/// consent must keep one.
pub fn set_retention(tx: &Tx, purpose: &PurposeRow, retention: Option<Span>) -> Result<()> {
    if purpose.basis != Basis::Consent && retention.is_none() {
        return Err(Error::invalid(format!(
            "purpose '{}' rests on {} and needs a retention term; give one, e.g. 5y",
            purpose.name,
            purpose.basis.as_str()
        )));
    }
    tx.execute(
        "UPDATE purposes SET retention = ?1 WHERE id = ?2",
        params![retention.map(|r| r.to_text()), purpose.id],
    )?;
    tx.audit(
        "purpose.retention",
        serde_json::json!({ "purpose": purpose.id, "retention": retention.map(|r| r.to_text()) }),
    )?;
    Ok(())
}

pub fn add_defaults(tx: &Tx) -> Result<()> {
    for name in DEFAULTS {
        add(tx, name, Basis::Consent, None)?;
    }
    Ok(())
}
