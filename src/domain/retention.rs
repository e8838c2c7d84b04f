//! Retention terms and what happens when they end.
//!
//! An asset is past retention when its own term has ended, or when every purpose carries a
//! term and all of them have ended for it (it can no longer be shown anywhere). A purpose's
//! term alone only hides the asset in that purpose (the rules do that); other purposes may
//! still use it. The sweep moves assets past retention to the trash, crypto-shreds what has
//! been in the trash for 30 days and thins old versions per the version policy
//! (`crate::thinning`); consent history and audit stay.

use super::Session;
use crate::catalog::assets::{self, AssetRow};
use crate::catalog::purposes;
use crate::error::Result;
use crate::policy::{Status, Time};
use serde::Serialize;

/// Days an asset stays restorable in the trash before `apply` shreds it.
pub const TRASH_DAYS: i64 = 30;

#[derive(Serialize, Debug)]
pub struct Due {
    pub asset: i64,
    pub path: String,
    pub ended: Time,
    /// `asset` (its own term) or `purposes` (every purpose's term).
    pub term: &'static str,
}

#[derive(Serialize, Debug)]
pub struct Purge {
    pub asset: i64,
    pub path: String,
    pub trashed_at: Time,
}

#[derive(Serialize, Debug)]
/// What a retention sweep did, or (a dry run) would do.
pub struct Plan {
    pub applied: bool,
    pub to_trash: Vec<Due>,
    pub to_purge: Vec<Purge>,
    /// Old versions thinned (or to thin) per the version policy; `null` when the stored policy
    /// cannot be read (said on stderr; the rest of the sweep still runs).
    pub thinning: Option<crate::thinning::Report>,
    /// Why old versions were not thinned, when they were not.
    #[serde(skip)]
    pub thinning_failed: Option<String>,
}

/// Give each of `assets` a retention term of its own ending at `until`, or none; returns the
/// asset ids in the order given.
pub fn set(s: &mut Session, list: &[String], until: Option<Time>) -> Result<Vec<i64>> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let mut ids = Vec::new();
    for a in list {
        let a = assets::resolve(&tx, a)?;
        assets::set_retention(&tx, a.id, until)?;
        ids.push(a.id);
    }
    tx.commit()?;
    Ok(ids)
}

/// When the asset can no longer be used in any purpose because of retention, if it cannot.
fn retention_over(
    a: &AssetRow,
    purposes: &[crate::policy::Purpose],
) -> Option<(Time, &'static str)> {
    if let Some(t) = a.retention_until {
        return Some((t, "asset"));
    }
    let mut latest: Option<Time> = None;
    for p in purposes {
        let end = p
            .retention
            .as_ref()
            .and_then(|term| term.end(a.created_at))?;
        latest = Some(latest.map_or(end, |l: Time| l.max(end)));
    }
    latest.map(|t| (t, "purposes"))
}

/// The retention sweep: move assets past retention to the trash, purge what has been in the
/// trash for [`TRASH_DAYS`] days and thin old versions per the version policy; with `apply`
/// false only say what it would do. A version policy that cannot be read does not stop the
/// rest (see [`Plan::thinning_failed`]).
pub fn sweep(s: &mut Session, apply: bool) -> Result<Plan> {
    let yes = apply;
    let now = s.now;
    let conn = s.catalog.conn();
    let purposes: Vec<_> = purposes::list(conn)?
        .iter()
        .map(|p| p.to_policy())
        .collect();
    let to_trash: Vec<Due> = assets::list(conn)?
        .into_iter()
        .filter(|a| matches!(a.status, Status::Active | Status::Draft))
        .filter_map(|a| {
            let (ended, term) = retention_over(&a, &purposes)?;
            (ended <= now).then(|| Due {
                asset: a.id,
                path: a.path(),
                ended,
                term,
            })
        })
        .collect();
    let cutoff = now - chrono::Duration::days(TRASH_DAYS);
    let to_purge: Vec<Purge> = assets::trashed(conn)?
        .into_iter()
        .filter(|(_, t)| *t < cutoff)
        .map(|(a, t)| Purge {
            asset: a.id,
            path: a.path(),
            trashed_at: t,
        })
        .collect();
    if yes {
        // in short batches: the write lock is never held for a whole store's worth of assets
        for batch in to_trash.chunks(256) {
            let tx = s.catalog.begin(s.actor, now)?;
            for d in batch {
                assets::set_status(&tx, d.asset, Status::Trash)?;
            }
            tx.commit()?;
        }
        crate::shred::purge_trash(s.store, s.catalog, s.actor, now, cutoff)?;
    }
    // old versions go as the version policy says, in the same sweep
    let (thinning, thinning_failed) =
        match crate::thinning::run(s.store, s.catalog, s.actor, now, !yes, false) {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e.to_string())),
        };
    Ok(Plan {
        applied: yes,
        to_trash,
        to_purge,
        thinning,
        thinning_failed,
    })
}
