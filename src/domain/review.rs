//! The review queue (DESIGN.md section 14): everything that needs a person's decision before
//! photos can be shown, each with the command that settles it; and applying suggestions, one
//! by one or in bulk.

use super::Session;
use crate::catalog::assets::{self, join_path};
use crate::catalog::{review, suggestions};
use crate::error::{Error, Result};
use serde::Serialize;

/// One thing to decide.
#[derive(Debug, Serialize)]
pub struct Item {
    /// `unreviewed`, `unlinked-faces` or `suggestion`.
    pub kind: &'static str,
    pub asset: i64,
    pub path: String,
    /// What is to be decided, in words.
    pub what: String,
    /// The commands that settle it.
    pub settle: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<i64>,
}

/// Everything below `prefix` (all when empty) that waits for a decision.
pub fn queue(s: &Session, prefix: &str) -> Result<Vec<Item>> {
    let conn = s.catalog.conn();
    let prefix = assets::normalize_collection(prefix)?;
    let mut out = Vec::new();
    for w in review::waiting(conn, &prefix)? {
        let path = join_path(&w.collection, &w.name);
        if w.unreviewed() {
            out.push(Item {
                kind: "unreviewed",
                asset: w.asset,
                what: if w.faces > 0 {
                    format!("no person linked; {} face(s) detected", w.faces)
                } else {
                    "no person linked and not marked as showing none".into()
                },
                // with detected faces, "no persons" is a declaration about them (`--force`)
                settle: if w.faces > 0 {
                    vec![
                        format!("consentfs faces show {} faces-{}.jpg", w.asset, w.asset),
                        format!("consentfs link {} PERSON --face N", w.asset),
                        format!("consentfs mark {} --no-persons --force", w.asset),
                    ]
                } else {
                    vec![
                        format!("consentfs link {} PERSON", w.asset),
                        format!("consentfs mark {} --no-persons", w.asset),
                    ]
                },
                path,
                suggestion: None,
            });
        } else if w.unlinked_faces() > 0 {
            out.push(Item {
                kind: "unlinked-faces",
                asset: w.asset,
                what: format!(
                    "{} face(s) detected, {} person(s) linked: {} face(s) not accounted for",
                    w.faces,
                    w.linked,
                    w.unlinked_faces()
                ),
                settle: vec![
                    format!("consentfs faces show {} faces-{}.jpg", w.asset, w.asset),
                    format!("consentfs link {} PERSON --face N", w.asset),
                    format!("consentfs mark {} --faces-reviewed", w.asset),
                ],
                path,
                suggestion: None,
            });
        }
    }
    for g in suggestions::open(conn, &prefix)? {
        let Some(a) = assets::get(conn, g.asset)? else {
            continue;
        };
        let (what, settle) = match (g.kind.as_str(), g.person) {
            ("person", Some(p)) => (
                format!(
                    "the photo's metadata ({}) names person #{p}",
                    g.source
                ),
                vec![
                    format!("consentfs review accept {}", g.id),
                    format!("consentfs review reject {}", g.id),
                ],
            ),
            ("person", None) => (
                format!(
                    "the photo's metadata ({}) names someone who is not a person in the catalog (or several are)",
                    g.source
                ),
                vec![
                    "consentfs person add NAME, then consentfs review accept ID".into(),
                    format!("consentfs review reject {}", g.id),
                ],
            ),
            (_, _) => (
                format!(
                    "looks like a variant (crop, resize, re-export) of asset {}; accepting gives it that photo's persons",
                    g.from_asset.unwrap_or_default()
                ),
                vec![
                    format!("consentfs review accept {}", g.id),
                    format!("consentfs review reject {}", g.id),
                ],
            ),
        };
        out.push(Item {
            kind: "suggestion",
            asset: g.asset,
            path: a.path(),
            what,
            settle,
            suggestion: Some(g.id),
        });
    }
    Ok(out)
}

/// What accepting did.
#[derive(Debug, Default, Serialize)]
pub struct Accepted {
    /// (suggestion, asset, person linked)
    pub linked: Vec<(i64, i64, i64)>,
    /// (suggestion, asset, the photo it now takes its persons from)
    pub derived: Vec<(i64, i64, i64)>,
    /// (suggestion, why it stays open)
    pub left: Vec<(i64, String)>,
}

/// Accept suggestions: `ids`, or every open one below `prefix` when `ids` is empty. A person
/// suggestion links the person its name belongs to now (exactly one person of that name);
/// one whose name matches nobody, or several, stays open and is reported. All in one
/// transaction.
pub fn accept(s: &mut Session, ids: &[i64], prefix: Option<&str>) -> Result<Accepted> {
    let prefix = assets::normalize_collection(prefix.unwrap_or(""))?;
    let tx = s.catalog.begin(s.actor, s.now)?;
    let list = if ids.is_empty() {
        suggestions::open(&tx, &prefix)?
    } else {
        ids.iter()
            .map(|id| suggestions::get(&tx, *id))
            .collect::<Result<Vec<_>>>()?
    };
    let mut out = Accepted::default();
    for g in list {
        if g.kind == "derive" {
            let Some(from) = g.from_asset else { continue };
            match super::links::derive_in(&tx, &g.asset.to_string(), &from.to_string()) {
                Ok(_) => {
                    suggestions::settle(&tx, g.id, true)?;
                    out.derived.push((g.id, g.asset, from));
                }
                Err(e) => out.left.push((g.id, e.to_string())),
            }
            continue;
        }
        let person = match g.name.as_deref() {
            Some(n) => suggestions::person_by_name(&tx, n)?,
            None => None,
        }
        .or(g.person);
        let Some(person) = person else {
            out.left.push((
                g.id,
                "the name is no person's (or several persons'); add the person, or link by hand"
                    .into(),
            ));
            continue;
        };
        assets::link(&tx, g.asset, person)?;
        suggestions::settle(&tx, g.id, true)?;
        out.linked.push((g.id, g.asset, person));
    }
    if !ids.is_empty() && !out.left.is_empty() {
        // named explicitly: all or nothing
        return Err(Error::invalid(format!(
            "suggestion {} cannot be accepted: {} (nothing was changed)",
            out.left[0].0, out.left[0].1
        )));
    }
    tx.commit()?;
    Ok(out)
}

/// Reject suggestions.
pub fn reject(s: &mut Session, ids: &[i64]) -> Result<()> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    for id in ids {
        suggestions::get(&tx, *id)?;
        suggestions::settle(&tx, *id, false)?;
    }
    tx.commit()
}

/// Groups of images that look alike (within [`crate::similar::NEAR`] bits of each other,
/// transitively), each group in id order, with their paths.
#[derive(Debug, Serialize)]
pub struct Group {
    pub assets: Vec<(i64, String)>,
}

/// `consentfs duplicates`: every pair of hashed images is compared (a million hashes are 8 MB;
/// comparing all pairs of 100,000 takes seconds).
pub fn duplicates(s: &Session) -> Result<Vec<Group>> {
    let conn = s.catalog.conn();
    let all = crate::catalog::similar::all(conn)?;
    let mut parent: Vec<usize> = (0..all.len()).collect();
    fn root(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    for i in 0..all.len() {
        for j in i + 1..all.len() {
            if (all[i].1 ^ all[j].1).count_ones() <= crate::similar::NEAR {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                if a != b {
                    parent[b] = a;
                }
            }
        }
    }
    let mut groups: std::collections::BTreeMap<usize, Vec<i64>> = Default::default();
    for (i, (asset, _)) in all.iter().enumerate() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(*asset);
    }
    let mut out = Vec::new();
    for ids in groups.into_values().filter(|g| g.len() > 1) {
        let mut assets = Vec::new();
        for id in ids {
            if let Some(a) = assets::get(conn, id)? {
                assets.push((id, a.path()));
            }
        }
        out.push(Group { assets });
    }
    Ok(out)
}
