//! Erasing a person (Art. 17 GDPR): crypto-shred the photos only they are on (and rename them,
//! as file names often carry the person's name), remove name, birth date and own reference,
//! and record a withdrawal for every purpose: the person no longer consents to anything, so
//! group photos that still show them (kept when not shredded) stay hidden where consent is
//! needed. The consent history stays under the person's pseudonym: it is the proof that
//! earlier use was lawful.

use super::Session;
use crate::catalog::assets::{self, AssetRow};
use crate::catalog::consents::{self, NewEvent};
use crate::catalog::{persons, purposes};
use crate::error::Result;
use crate::policy::{EventKind, Scope, Status};
use serde::Serialize;

/// A photo of the person, with how many persons are on it.
#[derive(Serialize, Debug)]
pub struct PhotoRef {
    pub asset: i64,
    pub path: String,
    pub persons: usize,
}

/// What an erasure did, or (a dry run) would do.
#[derive(Serialize, Debug)]
pub struct Erasure {
    pub applied: bool,
    pub person: i64,
    pub pseudonym: String,
    /// Photos shredded (or, in a dry run, to be shredded).
    pub shredded: Vec<PhotoRef>,
    /// Group photos showing the person that are kept (decide with --include-group-photos).
    pub group_photos_kept: Vec<PhotoRef>,
    /// The sidecars of those group photos (`IMG_0042.CR2.xmp`): shredded all the same, as
    /// they may name the person and say where they were (the photo keeps its pixels only).
    pub sidecars_shredded: Vec<PhotoRef>,
}

/// Erase `person` when `apply`, else only say what erasing would do. Group photos (showing
/// others too) are shredded only with `include_group_photos`.
pub fn erase(
    s: &mut Session,
    person: &str,
    apply: bool,
    include_group_photos: bool,
) -> Result<Erasure> {
    let conn = s.catalog.conn();
    let p = persons::resolve(conn, person)?;
    let linked: Vec<AssetRow> = assets::linked_to(conn, p.id)?
        .into_iter()
        .map(|id| assets::get(conn, id))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .filter(|a| a.status != Status::Purged)
        .collect();
    let (solo, group): (Vec<&AssetRow>, Vec<&AssetRow>) =
        linked.iter().partition(|a| a.persons == [p.id]);
    let r = |a: &&AssetRow| PhotoRef {
        asset: a.id,
        path: a.path(),
        persons: a.persons.len(),
    };
    let mut out = Erasure {
        applied: apply,
        person: p.id,
        pseudonym: p.pseudonym.clone(),
        shredded: solo.iter().map(r).collect(),
        group_photos_kept: Vec::new(),
        sidecars_shredded: Vec::new(),
    };
    if include_group_photos {
        out.shredded.extend(group.iter().map(r));
    } else {
        out.group_photos_kept = group.iter().map(r).collect();
        for g in &group {
            for c in assets::companions_of(conn, g.id)? {
                if let Some(sc) = assets::get(conn, c)? {
                    out.sidecars_shredded.push(r(&&sc));
                }
            }
        }
    }
    if apply {
        let all_purposes: Vec<i64> = purposes::list(conn)?.iter().map(|p| p.id).collect();
        let tx = s.catalog.begin(s.actor, s.now)?;
        if !all_purposes.is_empty() {
            consents::record(
                &tx,
                &NewEvent {
                    person: p.id,
                    kind: EventKind::Withdraw,
                    purposes: all_purposes,
                    scope: Scope::All,
                    starts: s.now,
                    expires: None,
                    given_by: p.id,
                    explicit: false,
                    evidence: None,
                },
            )?;
        }
        for shred in out.shredded.iter().chain(&out.sidecars_shredded) {
            // the file name goes with the photo, and with copies of it (such as an editor's
            // backup file)
            for a in assets::purge(&tx, shred.asset)? {
                assets::rename_erased(&tx, a)?;
            }
        }
        persons::erase(&tx, p.id)?;
        tx.commit()?;
        // the purge queued the files in its transaction; a kill from here on leaves the queue
        crate::shred::work_off(s.store, s.catalog, s.actor)?;
        // the name, birth date and reference are still in the WAL's older pages
        s.catalog.checkpoint();
    }
    Ok(out)
}
