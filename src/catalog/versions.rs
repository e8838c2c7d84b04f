//! Version thinning in the catalog: the policy (a `meta` row, key `version_policy`, JSON; no
//! row means [`Policy::default`]) and thinned versions (`versions.thinned_at`, migration 9).
//!
//! A thinned version keeps its row, so version numbers never repeat and `versions` can show
//! that it was thinned and when; its content is gone: its object's data key is destroyed and
//! the file queued for removal (`shred_queue`, worked off by `crate::shred` after the commit),
//! exactly as for a purge, unless another version that is not thinned (of this asset or any
//! other: a restore, an editor's backup copy) or a consent's evidence still uses the object.

use super::Tx;
use crate::catalog::assets;
use crate::error::Result;
use crate::policy::thinning::{Policy, Version};
use crate::policy::AssetId;
use crate::when;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{BTreeSet, HashSet};

const KEY: &str = "version_policy";

/// The policy in force, and whether the privacy officer set it (`false`: the default).
pub fn policy(conn: &Connection) -> Result<(Policy, bool)> {
    let stored: Option<String> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([KEY], |r| r.get(0))
        .optional()?;
    match stored {
        None => Ok((Policy::default(), false)),
        Some(s) => Ok((Policy::from_stored(&s)?, true)),
    }
}

/// Set the policy (`None`: back to the default), audited with its values.
pub fn set_policy(tx: &Tx, p: Option<&Policy>) -> Result<()> {
    match p {
        Some(p) => {
            tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
                .execute(params![KEY, p.to_stored()])?;
        }
        None => {
            tx.prepare_cached("DELETE FROM meta WHERE key = ?1")?
                .execute([KEY])?;
        }
    }
    let effective = p.cloned().unwrap_or_default();
    let mut detail: serde_json::Value =
        serde_json::from_str(&effective.to_stored()).unwrap_or_default();
    if let Some(o) = detail.as_object_mut() {
        o.insert("default".into(), p.is_none().into());
    }
    tx.audit("versions.policy", detail)?;
    Ok(())
}

/// Assets (not purged) with more than one version that still holds content: the only ones
/// thinning can change.
pub fn candidates(conn: &Connection) -> Result<Vec<AssetId>> {
    let ids = conn
        .prepare(
            "SELECT v.asset_id FROM versions v
               JOIN assets a ON a.id = v.asset_id
               JOIN objects o ON o.id = v.object_id
              WHERE a.status <> 'purged' AND v.thinned_at IS NULL AND o.wrapped_key IS NOT NULL
              GROUP BY v.asset_id HAVING count(*) > 1 ORDER BY v.asset_id",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// Versions of `asset` that an export recorded.
pub fn exported(conn: &Connection, asset: AssetId) -> Result<HashSet<i64>> {
    let v = conn
        .prepare_cached("SELECT DISTINCT version FROM export_items WHERE asset_id = ?1")?
        .query_map([asset], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// The asset's versions as the policy sees them: those that still hold content, with the
/// current (highest number) and original (lowest number) marked and exports pinned.
pub fn policy_input(conn: &Connection, asset: AssetId) -> Result<Vec<Version>> {
    let all = assets::versions(conn, asset)?;
    let exported = exported(conn, asset)?;
    let current = all.iter().map(|v| v.version).max();
    let original = all.iter().map(|v| v.version).min();
    Ok(all
        .iter()
        .filter(|v| v.wrapped_key.is_some())
        .map(|v| Version {
            version: v.version,
            created_at: v.created_at,
            current: Some(v.version) == current,
            original: Some(v.version) == original,
            exported: exported.contains(&v.version),
        })
        .collect())
}

/// Thin these versions of `asset`: mark them, crypto-shred the objects nothing else uses and
/// queue their files. Audited as `asset.thin` (version numbers, no names). Returns how many
/// objects were shredded.
pub fn thin(tx: &Tx, asset: AssetId, versions: &[i64]) -> Result<usize> {
    let now = when::to_secs(tx.now());
    let mut objects = BTreeSet::new();
    let mut thinned = Vec::new();
    for v in versions {
        let object: Option<String> = tx
            .prepare_cached(
                "UPDATE versions SET thinned_at = ?3
                  WHERE asset_id = ?1 AND version = ?2 AND thinned_at IS NULL
                  RETURNING object_id",
            )?
            .query_row(params![asset, v, now], |r| r.get(0))
            .optional()?;
        if let Some(o) = object {
            objects.insert(o);
            thinned.push(*v);
        }
    }
    let mut shredded = 0;
    for o in &objects {
        if !assets::object_in_use(tx, o)? && assets::shred_object(tx, o)? {
            shredded += 1;
        }
    }
    if !thinned.is_empty() {
        tx.audit(
            "asset.thin",
            serde_json::json!({ "asset": asset, "versions": thinned, "objects_shredded": shredded }),
        )?;
    }
    Ok(shredded)
}

/// Objects that only thinned versions refer to, yet still hold their key: they were kept at
/// thinning because another version used them, and that version has let go of them since (a
/// save through the mount that updates the newest version in place). Shredded and queued like
/// the rest; returns how many.
pub fn shred_left_over(tx: &Tx) -> Result<usize> {
    let left: Vec<String> = tx
        .prepare(
            "SELECT o.id FROM objects o
              WHERE o.wrapped_key IS NOT NULL
                AND EXISTS (SELECT 1 FROM versions v WHERE v.object_id = o.id AND v.thinned_at IS NOT NULL)
                AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.object_id = o.id AND v.thinned_at IS NULL)
                AND NOT EXISTS (SELECT 1 FROM consent_events c WHERE c.evidence_object = o.id)",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for o in &left {
        assets::shred_object(tx, o)?;
    }
    Ok(left.len())
}

#[cfg(test)]
mod tests {
    use crate::catalog::Catalog;
    use crate::crypto::Key;

    /// The shared-object check runs once per thinned object: an index, not a scan.
    #[test]
    fn the_in_use_check_uses_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog");
        let key = Key::random();
        Catalog::create(&path, &key, Key::random(), chrono::Utc::now(), "t").unwrap();
        let cat = Catalog::open(&path, &key, Key::random()).unwrap();
        let plan: Vec<String> = cat
            .conn()
            .prepare(
                "EXPLAIN QUERY PLAN
                 SELECT EXISTS (SELECT 1 FROM versions WHERE object_id = ?1 AND thinned_at IS NULL)
                     OR EXISTS (SELECT 1 FROM consent_events WHERE evidence_object = ?1)",
            )
            .unwrap()
            .query_map(["x"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter()
                .all(|l| !l.starts_with("SCAN") || l == "SCAN CONSTANT ROW"),
            "{plan:?}"
        );
    }
}
