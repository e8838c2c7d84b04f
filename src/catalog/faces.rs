//! What face detection found on each photo (DESIGN.md section 14): how many faces and where,
//! per asset, for the version that was scanned. Boxes only, as fractions of the image: no face
//! templates, nothing that could be compared with anyone. The count is kept on the asset row
//! too (`assets.faces`), because the rules read it for every asset at every mount.

use super::Tx;
use crate::error::{Error, Result};
use crate::policy::{AssetId, PersonId};
use crate::when;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

/// The most faces recorded for one photo (a crowd photo has a few hundred at most); the
/// schema's CHECK says the same.
pub const MAX_FACES: usize = 10_000;

/// One detected face: a box in fractions of the image's width and height, and the detector's
/// confidence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Face {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    pub score: f32,
}

impl Face {
    /// A box that lies in the image (clamped) with finite numbers, or `None`.
    pub fn checked(self) -> Option<Face> {
        let ok = [self.x, self.y, self.w, self.h, self.score]
            .iter()
            .all(|v| v.is_finite());
        if !ok || self.w <= 0.0 || self.h <= 0.0 {
            return None;
        }
        let x = self.x.clamp(0.0, 1.0);
        let y = self.y.clamp(0.0, 1.0);
        Some(Face {
            x,
            y,
            w: self.w.min(1.0 - x).max(0.0),
            h: self.h.min(1.0 - y).max(0.0),
            score: self.score.clamp(0.0, 1.0),
        })
    }
}

/// The latest scan of an asset.
#[derive(Debug, Clone, Serialize)]
pub struct Scan {
    pub asset: AssetId,
    /// The version that was scanned.
    pub version: i64,
    /// Numbered 1.. in this order (top to bottom, left to right).
    pub faces: Vec<Face>,
    pub model: String,
    pub scanned_at: crate::policy::Time,
}

/// Record what a scan of `asset`'s `version` found, replacing an earlier scan. Faces are put in
/// reading order (top to bottom, then left to right) so that face numbers are stable and
/// easy to find on the picture `faces show` draws.
pub fn record(tx: &Tx, asset: AssetId, version: i64, faces: &[Face], model: &str) -> Result<()> {
    let mut faces: Vec<Face> = faces.iter().filter_map(|f| f.checked()).collect();
    if faces.len() > MAX_FACES {
        return Err(Error::invalid(format!(
            "{} faces on one photo: more than the {MAX_FACES} consentfs records",
            faces.len()
        )));
    }
    faces.sort_by(|a, b| {
        // rows of faces: a face whose top is within half a face height is on the same row
        let row = |f: &Face| (f.y / f.h.max(0.01) * 0.5).floor();
        row(a)
            .total_cmp(&row(b))
            .then(a.x.total_cmp(&b.x))
            .then(a.y.total_cmp(&b.y))
    });
    let boxes = serde_json::to_string(&faces).map_err(|e| Error::invalid(e.to_string()))?;
    tx.prepare_cached(
        "INSERT INTO face_scans (asset_id, version, faces, boxes, model, scanned_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(asset_id) DO UPDATE SET version = excluded.version, faces = excluded.faces,
            boxes = excluded.boxes, model = excluded.model, scanned_at = excluded.scanned_at",
    )?
    .execute(params![
        asset,
        version,
        faces.len() as i64,
        boxes,
        model,
        when::to_secs(tx.now())
    ])?;
    tx.prepare_cached("UPDATE assets SET faces = ?2 WHERE id = ?1")?
        .execute(params![asset, faces.len() as i64])?;
    // links to faces that no longer exist lose their face number, not the person
    tx.prepare_cached("UPDATE links SET face = NULL WHERE asset_id = ?1 AND face > ?2")?
        .execute(params![asset, faces.len() as i64])?;
    tx.audit(
        "asset.faces",
        serde_json::json!({ "asset": asset, "version": version, "faces": faces.len() }),
    )?;
    Ok(())
}

/// The latest scan of `asset`, if it was ever scanned.
pub fn scan_of(conn: &Connection, asset: AssetId) -> Result<Option<Scan>> {
    let row = conn
        .prepare_cached(
            "SELECT version, boxes, model, scanned_at FROM face_scans WHERE asset_id = ?1",
        )?
        .query_row([asset], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .optional()?;
    let Some((version, boxes, model, at)) = row else {
        return Ok(None);
    };
    let faces: Vec<Face> = serde_json::from_str(&boxes).map_err(|e| {
        Error::integrity(
            format!("asset {asset}"),
            format!("its face boxes do not read: {e}"),
        )
    })?;
    Ok(Some(Scan {
        asset,
        version,
        faces,
        model,
        scanned_at: when::from_secs(at),
    }))
}

/// Assets whose current version has not been scanned (never, or an older version), active or
/// drafts, in id order, after `after`: what `faces scan --all` works through, resumably.
/// Sidecars are text, not pictures: their photo is scanned.
pub fn unscanned(conn: &Connection, after: AssetId, limit: usize) -> Result<Vec<(AssetId, i64)>> {
    let mut st = conn.prepare_cached(
        "SELECT id, v FROM (
            SELECT a.id AS id, MAX(v.version) AS v FROM assets a
              JOIN versions v ON v.asset_id = a.id
             WHERE a.id > ?1 AND a.status IN ('active', 'draft') AND a.companion_of IS NULL
             GROUP BY a.id) c
          WHERE NOT EXISTS (SELECT 1 FROM face_scans f WHERE f.asset_id = c.id AND f.version = c.v)
          ORDER BY id LIMIT ?2",
    )?;
    let rows = st
        .query_map(params![after, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Declare the detected faces of `asset` that no linked person accounts for as not
/// recognisable (`mark --faces-reviewed`): as many as detected now, so a later scan that finds
/// more needs another look. Returns the count declared.
pub fn set_reviewed(tx: &Tx, asset: AssetId) -> Result<u16> {
    let faces: i64 = tx
        .prepare_cached("SELECT faces FROM assets WHERE id = ?1")?
        .query_row([asset], |r| r.get(0))?;
    tx.prepare_cached("UPDATE assets SET faces_reviewed = faces WHERE id = ?1")?
        .execute([asset])?;
    tx.audit(
        "asset.mark",
        serde_json::json!({ "asset": asset, "faces_reviewed": faces }),
    )?;
    Ok(u16::try_from(faces).unwrap_or(u16::MAX))
}

/// Say which detected face (1..) a linked person is; the face must exist and not be another
/// person's.
pub fn link_face(tx: &Tx, asset: AssetId, person: PersonId, face: u32) -> Result<()> {
    let faces: i64 = tx
        .prepare_cached("SELECT faces FROM assets WHERE id = ?1")?
        .query_row([asset], |r| r.get(0))?;
    if face == 0 || i64::from(face) > faces {
        return Err(Error::invalid(format!(
            "asset {asset} has {faces} detected face(s); there is no face {face} (see `consentfs faces show`)"
        )));
    }
    let other: Option<PersonId> = tx
        .prepare_cached(
            "SELECT person_id FROM links WHERE asset_id = ?1 AND face = ?2 AND person_id <> ?3",
        )?
        .query_row(params![asset, face, person], |r| r.get(0))
        .optional()?;
    if let Some(o) = other {
        return Err(Error::invalid(format!(
            "face {face} of asset {asset} is already linked to person #{o}; unlink them first"
        )));
    }
    tx.prepare_cached("UPDATE links SET face = ?3 WHERE asset_id = ?1 AND person_id = ?2")?
        .execute(params![asset, person, face])?;
    tx.audit(
        "asset.link.face",
        serde_json::json!({ "asset": asset, "person": person, "face": face }),
    )?;
    Ok(())
}

/// The face each linked person of `asset` is, where known: (person, face).
pub fn linked_faces(conn: &Connection, asset: AssetId) -> Result<Vec<(PersonId, Option<u32>)>> {
    let mut st = conn.prepare_cached(
        "SELECT person_id, face FROM links WHERE asset_id = ?1 ORDER BY face, person_id",
    )?;
    let rows = st
        .query_map([asset], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Forget what was detected on a purged photo (its boxes are about the people on it).
pub fn forget(tx: &Tx, asset: AssetId) -> Result<()> {
    tx.prepare_cached("DELETE FROM face_scans WHERE asset_id = ?1")?
        .execute([asset])?;
    tx.prepare_cached("DELETE FROM image_hashes WHERE asset_id = ?1")?
        .execute([asset])?;
    tx.prepare_cached("DELETE FROM suggestions WHERE asset_id = ?1 OR from_asset = ?1")?
        .execute([asset])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_are_clamped_into_the_image_and_nonsense_is_dropped() {
        let f = |x, y, w, h| Face {
            x,
            y,
            w,
            h,
            score: 0.9,
        };
        let c = f(0.9, -0.5, 0.5, 2.0).checked().unwrap();
        assert_eq!((c.x, c.y), (0.9, 0.0));
        assert!((c.w - 0.1).abs() < 1e-6 && c.h == 1.0, "{c:?}");
        assert!(f(f32::NAN, 0.1, 0.1, 0.1).checked().is_none());
        assert!(f(0.1, 0.1, 0.0, 0.1).checked().is_none());
        assert!(f(0.1, 0.1, f32::INFINITY, 0.1).checked().is_none());
    }
}
