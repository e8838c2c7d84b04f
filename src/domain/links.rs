//! Who is on a photo: linking and unlinking persons, the marks that stand in for persons (no
//! identifiable persons, special category), and a draft taking over the persons of the photo
//! it was made from. Linking is the review that lets a photo be shown at all.

use super::Session;
use crate::catalog::{assets, faces, persons};
use crate::error::{Error, Result};
use crate::policy::Status;

/// Link `who` to `asset` (a reviewed draft becomes a normal asset), with `face` the detected
/// face the (one) person is. Returns the asset's id and the persons newly linked (those already
/// linked are left out).
pub fn link(
    s: &mut Session,
    asset: &str,
    who: &[String],
    face: Option<u32>,
) -> Result<(i64, Vec<i64>)> {
    if face.is_some() && who.len() != 1 {
        return Err(Error::invalid(
            "--face links one person to one face: name one person",
        ));
    }
    let tx = s.catalog.begin(s.actor, s.now)?;
    let a = assets::resolve(&tx, asset)?;
    let mut added = Vec::new();
    for w in who {
        let p = persons::resolve(&tx, w)?;
        if assets::link(&tx, a.id, p.id)? {
            added.push(p.id);
        }
        if let Some(n) = face {
            faces::link_face(&tx, a.id, p.id, n)?;
        }
    }
    assets::activate(&tx, a.id)?;
    tx.commit()?;
    Ok((a.id, added))
}

/// Remove a person from a photo; returns (asset, person) ids.
pub fn unlink(s: &mut Session, asset: &str, who: &str) -> Result<(i64, i64)> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let a = assets::resolve(&tx, asset)?;
    let p = persons::resolve(&tx, who)?;
    assets::unlink(&tx, a.id, p.id)?;
    tx.commit()?;
    Ok((a.id, p.id))
}

/// Set (`Some(true)`), clear (`Some(false)`) or leave (`None`) the two marks on every asset;
/// returns their ids in the order given. "No persons" on a photo on which faces were detected
/// is a claim that contradicts the detector: it needs `force`, which also declares those faces
/// not recognisable (audited), so that the mark is not a way around rule 3.
pub fn mark(
    s: &mut Session,
    list: &[String],
    no_persons: Option<bool>,
    special_category: Option<bool>,
    force: bool,
) -> Result<Vec<i64>> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let mut ids = Vec::new();
    for asset in list {
        let a = assets::resolve(&tx, asset)?;
        if no_persons == Some(true) && a.faces > 0 {
            if !force {
                return Err(Error::invalid(format!(
                    "asset {} ({}) has {} detected face(s): look at them (`consentfs faces show {} OUT.jpg`), link who is recognisable, or pass --force to declare them not recognisable (nothing was marked)",
                    a.id,
                    crate::names::for_people(&a.path()),
                    a.faces,
                    a.id
                )));
            }
            faces::set_reviewed(&tx, a.id)?;
        }
        assets::mark(&tx, a.id, no_persons, special_category)?;
        ids.push(a.id);
    }
    tx.commit()?;
    Ok(ids)
}

/// `mark --faces-reviewed`: on each asset, the detected faces no linked person accounts for
/// are declared not recognisable. Returns (asset, faces declared) per asset.
pub fn faces_reviewed(s: &mut Session, list: &[String]) -> Result<Vec<(i64, u16)>> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let mut out = Vec::new();
    for asset in list {
        let a = assets::resolve(&tx, asset)?;
        out.push((a.id, faces::set_reviewed(&tx, a.id)?));
    }
    tx.commit()?;
    Ok(out)
}

/// Make a draft a normal asset showing the same persons (and marks) as the active asset it was
/// made from; returns (draft, from) ids.
pub fn derive(s: &mut Session, draft: &str, from: &str) -> Result<(i64, i64)> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let d = assets::resolve(&tx, draft)?;
    let f = assets::resolve(&tx, from)?;
    if d.status != Status::Draft {
        return Err(Error::invalid(format!("asset {} is not a draft", d.id)));
    }
    if f.status != Status::Active {
        return Err(Error::invalid(format!(
            "asset {} is not an active asset",
            f.id
        )));
    }
    for p in &f.persons {
        assets::link(&tx, d.id, *p)?;
    }
    assets::mark(&tx, d.id, Some(f.no_persons), Some(f.special_category))?;
    assets::activate(&tx, d.id)?;
    tx.audit(
        "asset.derive",
        serde_json::json!({ "asset": d.id, "from": f.id }),
    )?;
    tx.commit()?;
    Ok((d.id, f.id))
}
