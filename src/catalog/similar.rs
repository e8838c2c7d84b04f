//! Near-duplicates (DESIGN.md section 14): a perceptual hash per image, and which images are
//! within a small Hamming distance of each other (a crop, a resize, a re-export). The hash is
//! computed elsewhere (`crate::similar`); this is where it is kept and compared.

use super::Tx;
use crate::error::Result;
use crate::policy::AssetId;
use rusqlite::{params, Connection};

/// Record the hash of `asset`'s `version`, replacing an earlier one.
pub fn record(tx: &Tx, asset: AssetId, version: i64, hash: u64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO image_hashes (asset_id, version, phash) VALUES (?1, ?2, ?3)
         ON CONFLICT(asset_id) DO UPDATE SET version = excluded.version, phash = excluded.phash",
    )?
    .execute(params![asset, version, hash as i64])?;
    Ok(())
}

/// Every hashed asset that is active or a draft: (asset, hash).
pub fn all(conn: &Connection) -> Result<Vec<(AssetId, u64)>> {
    let mut st = conn.prepare_cached(
        "SELECT h.asset_id, h.phash FROM image_hashes h JOIN assets a ON a.id = h.asset_id
          WHERE a.status IN ('active', 'draft') ORDER BY h.asset_id",
    )?;
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Suggest that `asset` was made from `from` (unless the same suggestion is open). Returns
/// whether one was added.
pub fn suggest_derive(tx: &Tx, asset: AssetId, from: AssetId) -> Result<bool> {
    let n = tx
        .prepare_cached(
            "INSERT INTO suggestions (asset_id, kind, from_asset, source, created_at)
             SELECT ?1, 'derive', ?2, 'phash', ?3
              WHERE NOT EXISTS (SELECT 1 FROM suggestions WHERE asset_id = ?1 AND kind = 'derive'
                                   AND from_asset = ?2 AND settled_at IS NULL)",
        )?
        .execute(params![asset, from, crate::when::to_secs(tx.now())])?;
    Ok(n > 0)
}
