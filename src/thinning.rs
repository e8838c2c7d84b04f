//! Applying the version policy (`policy::thinning`) to the whole store: `versions thin`,
//! `retention apply` and the mount's start all run [`run`].
//!
//! One run is one catalog transaction: every asset's decision is taken and its thinned
//! versions marked and their objects' data keys destroyed and queued for removal
//! (`shred_queue`) together, so a run killed at any point has thinned everything or nothing.
//! The files are removed after the commit (`shred::work_off`); a kill in between leaves the
//! queue, which the next command or mount works off.
//!
//! A run also shreds objects that only thinned versions still refer to (kept at thinning
//! because another version used them, which has let go of them since: see
//! `versions::shred_left_over`).
//!
//! Audit: one `asset.thin` entry per asset thinned (version numbers, objects shredded) and one
//! `versions.thin` entry for the run (counts). A run that thins nothing is audited only when
//! the privacy officer ran it by hand: the mount's start would otherwise add an empty entry at
//! every mount.

use crate::catalog::{versions, Catalog};
use crate::error::Result;
use crate::policy::thinning::{self, Keep, Policy};
use crate::policy::{AssetId, Time};
use crate::store::Store;
use serde::Serialize;

/// What a run thinned (or, in a dry run, would thin).
#[derive(Debug, Serialize)]
pub struct Report {
    pub applied: bool,
    /// The policy applied, as stored.
    pub policy: serde_json::Value,
    /// Whether the privacy officer set the policy (else the default applies).
    pub policy_set: bool,
    pub assets: Vec<Thinned>,
    pub versions_thinned: usize,
    pub objects_shredded: usize,
}

#[derive(Debug, Serialize)]
pub struct Thinned {
    pub asset: AssetId,
    pub versions: Vec<i64>,
}

/// The versions of `asset` the policy would thin now, and why each other one is kept.
pub fn decide_for(
    conn: &rusqlite::Connection,
    asset: AssetId,
    policy: &Policy,
    now: Time,
    zone: &crate::when::Zone,
) -> Result<Vec<(i64, Option<Keep>)>> {
    let input = versions::policy_input(conn, asset)?;
    Ok(thinning::decide(&input, policy, now, zone))
}

/// The versions the policy thins now, per asset, read from `conn`.
fn plan(
    conn: &rusqlite::Connection,
    policy: &Policy,
    now: Time,
) -> Result<Vec<(AssetId, Vec<i64>)>> {
    let zone = crate::catalog::zone::get(conn)?;
    let mut out = Vec::new();
    for asset in versions::candidates(conn)? {
        let thin: Vec<i64> = decide_for(conn, asset, policy, now, &zone)?
            .into_iter()
            .filter(|(_, keep)| keep.is_none())
            .map(|(v, _)| v)
            .collect();
        if !thin.is_empty() {
            out.push((asset, thin));
        }
    }
    Ok(out)
}

/// Thin every asset's old versions per the stored policy. With `dry_run` nothing changes.
/// `audit_empty`: record the run even if it thins nothing (a run by hand).
pub fn run(
    store: &Store,
    catalog: &mut Catalog,
    actor: &str,
    now: Time,
    dry_run: bool,
    audit_empty: bool,
) -> Result<Report> {
    let report = |policy: &Policy, policy_set, plan: Vec<(AssetId, Vec<i64>)>| Report {
        applied: !dry_run,
        policy: serde_json::from_str(&policy.to_stored()).unwrap_or_default(),
        policy_set,
        versions_thinned: plan.iter().map(|(_, v)| v.len()).sum(),
        assets: plan
            .into_iter()
            .map(|(asset, versions)| Thinned { asset, versions })
            .collect(),
        objects_shredded: 0,
    };
    if dry_run {
        let conn = catalog.conn();
        let (policy, set) = versions::policy(conn)?;
        let plan = plan(conn, &policy, now)?;
        return Ok(report(&policy, set, plan));
    }
    // decided inside the write transaction: a save committed meanwhile is seen
    let tx = catalog.begin(actor, now)?;
    let (policy, set) = versions::policy(&tx)?;
    let plan = plan(&tx, &policy, now)?;
    let mut shredded = 0;
    for (asset, thin) in &plan {
        shredded += versions::thin(&tx, *asset, thin)?;
    }
    shredded += versions::shred_left_over(&tx)?;
    let mut out = report(&policy, set, plan);
    out.objects_shredded = shredded;
    if out.versions_thinned > 0 || out.objects_shredded > 0 || audit_empty {
        tx.audit(
            "versions.thin",
            serde_json::json!({
                "assets": out.assets.len(),
                "versions": out.versions_thinned,
                "objects_shredded": out.objects_shredded,
            }),
        )?;
        tx.commit()?;
    } else {
        drop(tx);
    }
    if out.objects_shredded > 0 {
        crate::shred::work_off(store, catalog, actor)?;
    }
    Ok(out)
}
