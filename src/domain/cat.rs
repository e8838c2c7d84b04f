//! Reading a photo out of the store (`cat`): decrypted, verified, and on record.

use super::Session;
use crate::catalog::assets;
use crate::crypto::object::Decryptor;
use crate::error::{Error, Result};
use crate::when;

/// Open a version of an asset (the current one by default) for reading, after recording the
/// read in the audit log: every use of a photo is on record, also the officer's own. Thinned
/// and shredded versions have no content any more.
pub fn open(
    s: &mut Session,
    asset: &str,
    version: Option<i64>,
) -> Result<Decryptor<crate::store::ObjectSource>> {
    let a = assets::resolve(s.catalog.conn(), asset)?;
    let (obj, v) = open_version(s.store, s.catalog.conn(), &a, version)?;
    let tx = s.catalog.begin(s.actor, s.now)?;
    tx.audit(
        "access.cat",
        serde_json::json!({ "asset": a.id, "version": v }),
    )?;
    tx.commit()?;
    Ok(obj)
}

/// Open a version of `a` (the current one by default) for reading, without a record of it
/// (the caller records the read its own way); returns the version's number too.
pub fn open_version(
    store: &crate::store::Store,
    conn: &rusqlite::Connection,
    a: &assets::AssetRow,
    version: Option<i64>,
) -> Result<(Decryptor<crate::store::ObjectSource>, i64)> {
    let v = assets::version(conn, a.id, version)?;
    if let Some(t) = v.thinned_at {
        return Err(Error::not_found(format!(
            "asset {} version {} was thinned by the version policy on {}: its content is no longer kept (see `consentfs versions {}`)",
            a.id,
            v.version,
            when::show(t),
            a.id
        )));
    }
    let wrapped = v.wrapped_key.as_deref().ok_or_else(|| {
        Error::not_found(format!(
            "asset {} version {} was shredded; its content no longer exists",
            a.id, v.version
        ))
    })?;
    let label = format!("asset {} ({}) version {}", a.id, a.path(), v.version);
    let obj = store.open_object(&v.object, wrapped, v.size, &label)?;
    Ok((obj, v.version))
}
