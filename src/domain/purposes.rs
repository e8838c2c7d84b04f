//! Purposes (the channels photos may be used for): adding one, changing its retention term.

use super::Session;
use crate::catalog::purposes;
use crate::error::Result;
use crate::policy::Basis;
use crate::when::Span;

/// A purpose to add (`purpose add`).
pub struct NewPurpose<'a> {
    pub name: &'a str,
    pub basis: Basis,
    /// Counted from each asset's import.
    pub retention: Option<Span>,
    pub art9_exception: Option<&'a str>,
    pub audience: purposes::Audience,
    pub description: Option<&'a str>,
}

/// Add a purpose with its legal basis, retention term, Art. 9(2) exception, audience and
/// description, in one transaction; returns its id.
pub fn add(s: &mut Session, new: NewPurpose) -> Result<i64> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let id = purposes::add(&tx, new.name, new.basis, new.retention, new.art9_exception)?;
    let row = purposes::resolve(&tx, &id.to_string())?;
    if new.audience != purposes::Audience::Staff {
        purposes::set_audience(&tx, &row, new.audience)?;
    }
    if let Some(text) = new.description {
        purposes::describe(&tx, &row, text)?;
    }
    tx.commit()?;
    Ok(id)
}

/// Change a purpose's retention term (or remove it); returns the purpose's name.
pub fn set_retention(s: &mut Session, purpose: &str, term: Option<Span>) -> Result<String> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let p = purposes::resolve(&tx, purpose)?;
    purposes::set_retention(&tx, &p, term)?;
    tx.commit()?;
    Ok(p.name)
}

/// Set the text the people on a purpose's photos read (`purpose describe`); returns the
/// purpose's name.
pub fn describe(s: &mut Session, purpose: &str, text: &str) -> Result<String> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let p = purposes::resolve(&tx, purpose)?;
    purposes::describe(&tx, &p, text)?;
    tx.commit()?;
    Ok(p.name)
}

/// Set who a purpose's photos are for (`purpose audience`); returns the purpose's name.
pub fn set_audience(
    s: &mut Session,
    purpose: &str,
    audience: purposes::Audience,
) -> Result<String> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let p = purposes::resolve(&tx, purpose)?;
    purposes::set_audience(&tx, &p, audience)?;
    tx.commit()?;
    Ok(p.name)
}
