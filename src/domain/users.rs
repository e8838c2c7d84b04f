//! OS users and their grants: who may read, write or delete in which purpose (and collection).
//! The mount follows a change at once.

use super::Session;
use crate::catalog::{persons, purposes, users};
use crate::error::Result;
use crate::policy::Access;

/// Add the OS account `login` (optionally as a person of the catalog).
pub fn add(s: &mut Session, login: &str, person: Option<&str>) -> Result<()> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let pid = person
        .map(|p| persons::resolve(&tx, p))
        .transpose()?
        .map(|p| p.id);
    users::add(&tx, login, pid)?;
    tx.commit()?;
    Ok(())
}

/// Grant `access` in every purpose of `purposes` (comma-separated) on the collection `prefix`
/// (normalized; "" for everything).
pub fn grant(
    s: &mut Session,
    login: &str,
    purposes: &str,
    prefix: &str,
    access: Access,
) -> Result<()> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let u = users::resolve(&tx, login)?;
    for p in purposes::resolve_list(&tx, purposes)? {
        users::grant(&tx, &u, p.id, prefix, access)?;
    }
    tx.commit()?;
    Ok(())
}

/// Take away the user's grants in the purposes (all of them, or the one on `prefix`); returns
/// how many went.
pub fn revoke(s: &mut Session, login: &str, purposes: &str, prefix: Option<&str>) -> Result<usize> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let u = users::resolve(&tx, login)?;
    let mut n = 0;
    for p in purposes::resolve_list(&tx, purposes)? {
        n += users::revoke(&tx, &u, p.id, &p.name, prefix)?;
    }
    tx.commit()?;
    Ok(n)
}

/// Remove a user with all their grants; returns how many drafts of theirs stay (shown to no
/// one).
pub fn remove(s: &mut Session, login: &str) -> Result<usize> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let u = users::resolve(&tx, login)?;
    let drafts = users::remove(&tx, &u)?;
    tx.commit()?;
    Ok(drafts)
}
