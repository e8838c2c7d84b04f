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
        assets::not_a_sidecar(&tx, a.id)?;
        out.push((a.id, faces::set_reviewed(&tx, a.id)?));
    }
    tx.commit()?;
    Ok(out)
}

/// Make a draft (or an imported photo nobody reviewed yet, such as a near-duplicate of a photo
/// already there) a normal asset showing the same persons (and marks) as the active asset it
/// was made from; returns (draft, from) ids.
pub fn derive(s: &mut Session, draft: &str, from: &str) -> Result<(i64, i64)> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let (d, f) = derive_in(&tx, draft, from)?;
    tx.commit()?;
    Ok((d, f))
}

/// [`derive`] inside a transaction (also for accepting a near-duplicate suggestion).
pub(crate) fn derive_in(tx: &crate::catalog::Tx, draft: &str, from: &str) -> Result<(i64, i64)> {
    let d = assets::resolve(tx, draft)?;
    let f = assets::resolve(tx, from)?;
    let unreviewed = d.status == Status::Active && d.persons.is_empty() && !d.no_persons;
    if d.status != Status::Draft && !unreviewed {
        return Err(Error::invalid(format!(
            "asset {} is neither a draft nor an unreviewed photo: it has persons of its own",
            d.id
        )));
    }
    if d.id == f.id {
        return Err(Error::invalid("a photo cannot be derived from itself"));
    }
    if f.status != Status::Active {
        return Err(Error::invalid(format!(
            "asset {} is not an active asset",
            f.id
        )));
    }
    for p in &f.persons {
        assets::link(tx, d.id, *p)?;
    }
    assets::mark(tx, d.id, Some(f.no_persons), Some(f.special_category))?;
    assets::activate(tx, d.id)?;
    tx.audit(
        "asset.derive",
        serde_json::json!({ "asset": d.id, "from": f.id }),
    )?;
    Ok((d.id, f.id))
}

/// One row of a CSV file of links (`link --csv`).
#[derive(Debug, Clone)]
pub struct CsvRow {
    /// Line in the file (1-based), for messages.
    pub line: u64,
    pub asset: String,
    pub person: String,
    pub face: Option<u32>,
}

/// The most rows one file may have (a school year is a few thousand).
pub const MAX_CSV_ROWS: usize = 1_000_000;

/// Read a CSV file of links: asset, person, optional face number; a first row that names the
/// columns (`asset,person,face`) is skipped. Opened as whoever runs the command.
pub fn read_csv(path: &std::path::Path) -> Result<Vec<CsvRow>> {
    let file = crate::files::open_regular(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(std::io::Read::take(file, 256 << 20));
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record
            .map_err(|e| Error::invalid(format!("{}: not a CSV file ({e})", path.display())))?;
        let line = record.position().map_or(i as u64 + 1, |p| p.line());
        let field = |n: usize| record.get(n).unwrap_or("").to_string();
        let (asset, person, face) = (field(0), field(1), field(2));
        if i == 0 && asset.eq_ignore_ascii_case("asset") {
            continue;
        }
        if asset.is_empty() && person.is_empty() {
            continue;
        }
        if asset.is_empty() || person.is_empty() || record.len() > 3 {
            return Err(Error::invalid(format!(
                "{} line {line}: expected asset,person[,face]",
                path.display()
            )));
        }
        let face = if face.is_empty() {
            None
        } else {
            match face.parse::<u32>() {
                Ok(n) if (1..=10_000).contains(&n) => Some(n),
                _ => {
                    return Err(Error::invalid(format!(
                        "{} line {line}: face must be a number from 1",
                        path.display()
                    )))
                }
            }
        };
        rows.push(CsvRow {
            line,
            asset,
            person,
            face,
        });
        if rows.len() > MAX_CSV_ROWS {
            return Err(Error::invalid(format!(
                "{}: more than {MAX_CSV_ROWS} rows; split it",
                path.display()
            )));
        }
    }
    Ok(rows)
}

/// A link a CSV row asks for.
#[derive(Debug, serde::Serialize)]
pub struct Planned {
    pub line: u64,
    pub asset: i64,
    pub path: String,
    pub person: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face: Option<u32>,
    /// Already linked (the row changes nothing, or only the face).
    pub already: bool,
}

/// What `link --csv` would do (or did, when `applied`).
#[derive(Debug, serde::Serialize)]
pub struct CsvPlan {
    pub links: Vec<Planned>,
    /// (line, what is wrong): any of these and nothing is applied.
    pub errors: Vec<(u64, String)>,
    pub applied: bool,
}

/// Check every row (the asset and person exist, the face does, no face twice), and with
/// `apply` and no errors make every link in one transaction; otherwise change nothing.
pub fn link_csv(s: &mut Session, rows: &[CsvRow], apply: bool) -> Result<CsvPlan> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let mut plan = CsvPlan {
        links: Vec::new(),
        errors: Vec::new(),
        applied: false,
    };
    let mut faces_taken = std::collections::HashMap::new();
    for r in rows {
        let a = match assets::resolve(&tx, &r.asset) {
            Ok(a) => a,
            Err(e) => {
                plan.errors.push((r.line, e.to_string()));
                continue;
            }
        };
        let person = match crate::catalog::suggestions::person_by_ref(&tx, &r.person)? {
            Some(p) => Ok(p),
            None => persons::resolve(&tx, &r.person).map(|p| p.id),
        };
        let person = match person {
            Ok(p) => p,
            Err(e) => {
                plan.errors.push((r.line, e.to_string()));
                continue;
            }
        };
        if let Some(f) = r.face {
            if f > u32::from(a.faces) {
                plan.errors.push((
                    r.line,
                    format!(
                        "asset {} has {} detected face(s), no face {f}",
                        a.id, a.faces
                    ),
                ));
                continue;
            }
            if let Some(other) = faces_taken.insert((a.id, f), person) {
                if other != person {
                    plan.errors.push((
                        r.line,
                        format!("face {f} of asset {} is given to two persons", a.id),
                    ));
                    continue;
                }
            }
        }
        plan.links.push(Planned {
            line: r.line,
            asset: a.id,
            path: a.path(),
            person,
            face: r.face,
            already: a.persons.contains(&person),
        });
    }
    if !apply || !plan.errors.is_empty() {
        // dropped unapplied: nothing of it is kept
        return Ok(plan);
    }
    for l in &plan.links {
        assets::link(&tx, l.asset, l.person)?;
        if let Some(f) = l.face {
            faces::link_face(&tx, l.asset, l.person, f)?;
        }
        assets::activate(&tx, l.asset)?;
    }
    tx.commit()?;
    plan.applied = true;
    Ok(plan)
}
