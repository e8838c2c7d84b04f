//! Getting things back and letting them go: an asset out of the trash, an earlier version as
//! the current one, and purging the trash (crypto-shredding: the data keys are destroyed).

use super::Session;
use crate::catalog::assets;
use crate::error::{Error, Result};
use crate::policy::{Status, Time};
use crate::when;

/// Put a trashed asset back where it was (if the name is free); returns its id and path.
pub fn restore(s: &mut Session, asset: &str) -> Result<(i64, String)> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let a = assets::resolve(&tx, asset)?;
    if a.status != Status::Trash {
        return Err(Error::invalid(format!(
            "asset {} is not in the trash",
            a.id
        )));
    }
    if let Some(other) = assets::path_taken(&tx, &a.collection, &a.name)? {
        return Err(Error::invalid(format!(
            "'{}' is taken by asset {other}; rename that first",
            a.path()
        )));
    }
    let back = if a.draft_purpose.is_some() {
        Status::Draft
    } else {
        Status::Active
    };
    assets::set_status(&tx, a.id, back)?;
    tx.commit()?;
    Ok((a.id, a.path()))
}

/// Purge what went to the trash before `cutoff`; returns how many assets were purged.
pub fn purge(s: &mut Session, cutoff: Time) -> Result<usize> {
    crate::shred::purge_trash(s.store, s.catalog, s.actor, s.now, cutoff)
}

/// Make an earlier version of an asset the current one again, as a new version (unless it was
/// thinned or shredded); returns the asset id and the new version's number.
pub fn restore_version(s: &mut Session, asset: &str, version: i64) -> Result<(i64, i64)> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let a = assets::resolve(&tx, asset)?;
    let v = assets::version(&tx, a.id, Some(version))?;
    if let Some(t) = v.thinned_at {
        return Err(Error::invalid(format!(
            "version {version} of asset {} was thinned by the version policy on {}; it cannot be restored",
            a.id,
            when::show(t)
        )));
    }
    if v.wrapped_key.is_none() {
        return Err(Error::invalid(format!(
            "version {version} of asset {} was shredded; it cannot be restored",
            a.id
        )));
    }
    let new = assets::add_version_of_object(&tx, a.id, &v.object, v.size, v.mtime)?;
    tx.commit()?;
    Ok((a.id, new))
}
