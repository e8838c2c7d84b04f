//! Purposes (the channels photos may be used for): adding one, changing its retention term.

use super::Session;
use crate::catalog::purposes;
use crate::error::Result;
use crate::policy::Basis;
use crate::when::Span;

/// Add a purpose with its legal basis, retention term (counted from each asset's import) and
/// Art. 9(2) exception, if any; returns its id.
pub fn add(
    s: &mut Session,
    name: &str,
    basis: Basis,
    retention: Option<Span>,
    art9_exception: Option<&str>,
) -> Result<i64> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let id = purposes::add(&tx, name, basis, retention, art9_exception)?;
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
