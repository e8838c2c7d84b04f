//! What still needs a reviewer's decision (`consentfs review`, DESIGN.md section 14): photos
//! nobody reviewed and photos with detected faces nobody accounted for. Suggestions are in
//! [`super::suggestions`].

use crate::error::Result;
use crate::policy::AssetId;
use rusqlite::{params, Connection};

/// An asset waiting for a decision.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub asset: AssetId,
    pub collection: String,
    pub name: String,
    pub faces: u16,
    /// Persons linked.
    pub linked: u16,
    /// Persons linked, or faces declared not recognisable, whichever is more.
    pub accounted: u16,
    pub no_persons: bool,
}

impl Waiting {
    /// Neither a person linked nor "no persons" marked.
    pub fn unreviewed(&self) -> bool {
        self.linked == 0 && !self.no_persons
    }
    /// Detected faces nobody accounted for.
    pub fn unlinked_faces(&self) -> u16 {
        self.faces.saturating_sub(self.accounted)
    }
}

/// A LIKE pattern for the collections below `prefix` (its wildcards escaped with `\`).
pub(crate) fn like_prefix(prefix: &str) -> String {
    format!(
        "{}/%",
        prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// Active assets below `prefix` (all when empty) that are not reviewed: no person linked and
/// not marked "no persons", or more faces detected than accounted for. Sidecars are their
/// photo's: they never wait on their own.
pub fn waiting(conn: &Connection, prefix: &str) -> Result<Vec<Waiting>> {
    let mut st = conn.prepare_cached(
        "SELECT a.id, a.collection, a.name, a.faces, a.faces_reviewed,
                (SELECT COUNT(*) FROM links l WHERE l.asset_id = a.id), a.no_persons
           FROM assets a
          WHERE a.status = 'active' AND a.companion_of IS NULL
            AND (?1 = '' OR a.collection = ?1 OR a.collection LIKE ?2 ESCAPE '\\')
          ORDER BY a.collection, a.name",
    )?;
    let rows = st
        .query_map(params![prefix, like_prefix(prefix)], |r| {
            let reviewed: u16 = r.get(4)?;
            let linked = r.get::<_, i64>(5)?.clamp(0, i64::from(u16::MAX)) as u16;
            Ok(Waiting {
                asset: r.get(0)?,
                collection: r.get(1)?,
                name: r.get(2)?,
                faces: r.get(3)?,
                linked,
                accounted: linked.max(reviewed),
                no_persons: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .filter(|w| w.unreviewed() || w.unlinked_faces() > 0)
        .collect())
}
