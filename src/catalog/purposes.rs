//! Purposes (channels), their legal basis, retention term and Art. 9(2) exception.

use super::{as_id, zone, Tx};
use crate::error::{Error, Result};
use crate::policy::{Basis, Purpose, PurposeId};
use crate::when::{Span, Term, Zone};
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
    /// The Art. 9(2) GDPR ground the purpose records for special-category photos, if any.
    pub art9_exception: Option<String>,
    /// The retention term as the rules use it (on the store's calendar).
    #[serde(skip)]
    term: Option<Term>,
}

impl PurposeRow {
    pub fn to_policy(&self) -> Purpose {
        Purpose {
            id: self.id,
            name: self.name.clone(),
            basis: self.basis,
            retention: self.term.clone(),
            art9_exception: self.art9_exception.is_some(),
        }
    }
}

const COLS: &str = "id, name, basis, retention, art9_exception";

/// A row, its term read on `zone`'s calendar. Terms were validated when recorded; a stored one
/// that is not valid now is clamped or fails closed ([`Span::from_stored`]), never ignored.
fn from_row(r: &Row, zone: &Zone) -> rusqlite::Result<PurposeRow> {
    let basis: String = r.get(2)?;
    let retention: Option<String> = r.get(3)?;
    Ok(PurposeRow {
        id: r.get(0)?,
        name: r.get(1)?,
        // An unknown basis is read as consent, the strictest.
        basis: Basis::parse(&basis).unwrap_or(Basis::Consent),
        term: retention.as_deref().map(|t| Term {
            span: Span::from_stored(t),
            zone: zone.clone(),
        }),
        retention,
        art9_exception: r.get(4)?,
    })
}

pub fn list(conn: &Connection) -> Result<Vec<PurposeRow>> {
    let zone = zone::get(conn)?;
    let mut st = conn.prepare(&format!("SELECT {COLS} FROM purposes ORDER BY id"))?;
    let rows = st
        .query_map([], |r| from_row(r, &zone))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn resolve(conn: &Connection, what: &str) -> Result<PurposeRow> {
    let zone = zone::get(conn)?;
    let found = if let Some(id) = as_id(what) {
        conn.prepare_cached(&format!("SELECT {COLS} FROM purposes WHERE id = ?1"))?
            .query_row([id], |r| from_row(r, &zone))
            .optional()?
    } else {
        conn.prepare_cached(&format!("SELECT {COLS} FROM purposes WHERE name = ?1"))?
            .query_row([what], |r| from_row(r, &zone))
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

/// The Art. 9(2) ground as recorded: trimmed, non-empty, one line of reasonable length.
fn check_art9(text: Option<&str>) -> Result<Option<String>> {
    let Some(text) = text else { return Ok(None) };
    let text = text.trim();
    if text.is_empty() || text.len() > 500 || text.chars().any(char::is_control) {
        return Err(Error::invalid(
            "--art9-exception needs the Art. 9(2) GDPR ground as one line of text (at most 500 bytes), e.g. \"9(2)(g): safeguarding in a hospital\"",
        ));
    }
    Ok(Some(text.to_string()))
}

pub fn add(
    tx: &Tx,
    name: &str,
    basis: Basis,
    retention: Option<Span>,
    art9_exception: Option<&str>,
) -> Result<PurposeId> {
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
    let art9 = check_art9(art9_exception)?;
    tx.prepare_cached(
        "INSERT INTO purposes (name, basis, retention, art9_exception) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        name,
        basis.as_str(),
        retention.map(|r| r.to_text()),
        art9
    ])?;
    let id = tx.last_insert_rowid();
    tx.audit(
        "purpose.add",
        serde_json::json!({ "purpose": id, "name": name, "basis": basis.as_str(), "art9_exception": art9.is_some() }),
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
    tx.prepare_cached("UPDATE purposes SET retention = ?1 WHERE id = ?2")?
        .execute(params![retention.map(|r| r.to_text()), purpose.id])?;
    tx.audit(
        "purpose.retention",
        serde_json::json!({ "purpose": purpose.id, "retention": retention.map(|r| r.to_text()) }),
    )?;
    Ok(())
}

pub fn add_defaults(tx: &Tx) -> Result<()> {
    for name in DEFAULTS {
        add(tx, name, Basis::Consent, None, None)?;
    }
    Ok(())
}

/// Who a purpose's photos are for besides the staff who have grants in it: with `Subjects`,
/// also the persons on each photo and their guardians, through the consent page, while every
/// person on it consents (DESIGN.md section 15, seed 004).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    Staff,
    Subjects,
}

impl Audience {
    pub fn parse(s: &str) -> Option<Audience> {
        match s {
            "staff" => Some(Audience::Staff),
            "subjects" => Some(Audience::Subjects),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Staff => "staff",
            Audience::Subjects => "subjects",
        }
    }
}

/// What a purpose says to the people on its photos (read only where it is shown: the consent
/// page, `purpose list`, invitations).
#[derive(Debug, Clone, Serialize)]
pub struct PurposeText {
    pub id: PurposeId,
    pub name: String,
    /// In words a parent understands: what the photos are used for, where, for how long.
    pub description: Option<String>,
    pub audience: Audience,
}

/// Every purpose's text, in id order.
pub fn texts(conn: &Connection) -> Result<Vec<PurposeText>> {
    let mut st =
        conn.prepare("SELECT id, name, description, audience FROM purposes ORDER BY id")?;
    let rows = st
        .query_map([], |r| {
            let audience: String = r.get(3)?;
            Ok(PurposeText {
                id: r.get(0)?,
                name: r.get(1)?,
                description: r.get(2)?,
                // an unknown audience is read as the narrower one
                audience: Audience::parse(&audience).unwrap_or(Audience::Staff),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The longest description a purpose takes: a page of text a decider can read on a phone.
pub const MAX_DESCRIPTION: usize = 4000;

/// A description as recorded: trimmed, non-empty, at most [`MAX_DESCRIPTION`] bytes, no
/// control characters but line breaks.
fn check_description(text: &str) -> Result<String> {
    let text = text.replace("\r\n", "\n");
    let text = text.trim();
    if text.is_empty()
        || text.len() > MAX_DESCRIPTION
        || text.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(Error::invalid(format!(
            "a purpose's description is the text the people on its photos read and agree to: give 1 to {MAX_DESCRIPTION} bytes of text (line breaks allowed, no other control characters)"
        )));
    }
    Ok(text.to_string())
}

/// Set the text the people on a purpose's photos read and tick when they give consent. The
/// text's hash goes into the evidence of every grant given through the consent page, so a
/// changed text is a new text: grants given for the old one keep the old hash.
pub fn describe(tx: &Tx, purpose: &PurposeRow, text: &str) -> Result<()> {
    let text = check_description(text)?;
    tx.prepare_cached("UPDATE purposes SET description = ?1 WHERE id = ?2")?
        .execute(params![text, purpose.id])?;
    tx.audit(
        "purpose.describe",
        serde_json::json!({ "purpose": purpose.id, "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes())) }),
    )?;
    Ok(())
}

/// Set who a purpose's photos are for (see [`Audience`]).
pub fn set_audience(tx: &Tx, purpose: &PurposeRow, audience: Audience) -> Result<()> {
    tx.prepare_cached("UPDATE purposes SET audience = ?1 WHERE id = ?2")?
        .execute(params![audience.as_str(), purpose.id])?;
    tx.audit(
        "purpose.audience",
        serde_json::json!({ "purpose": purpose.id, "audience": audience.as_str() }),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::crypto::Key;

    /// A term that no longer parses (written by an older version that took `99999999999w`)
    /// neither crashes the rules nor drops the term: it is clamped to 200 years.
    #[test]
    fn an_overlong_stored_term_is_clamped_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let key = Key::random();
        Catalog::create(&path, &key, Key::random(), chrono::Utc::now(), "t").unwrap();
        let mut cat = Catalog::open(&path, &key, Key::random()).unwrap();
        let tx = cat.begin("t", chrono::Utc::now()).unwrap();
        tx.execute(
            "UPDATE purposes SET retention = '99999999999w' WHERE name = 'website'",
            [],
        )
        .unwrap();
        tx.execute(
            "UPDATE purposes SET retention = 'soon' WHERE name = 'print'",
            [],
        )
        .unwrap();
        tx.commit().unwrap();
        let website = resolve(cat.conn(), "website").unwrap().to_policy();
        assert_eq!(website.retention.unwrap().span, Span::LONGEST);
        let print = resolve(cat.conn(), "print").unwrap().to_policy();
        assert_eq!(print.retention.unwrap().span, Span::ZERO);
    }
}
