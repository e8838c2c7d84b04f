//! `consentfs retention set | apply`: retention terms and what happens when they end.
//!
//! An asset is past retention when its own term has ended, or when every purpose carries a
//! term and all of them have ended for it (it can no longer be shown anywhere). A purpose's
//! term alone only hides the asset in that purpose (the rules do that); other purposes may
//! still use it. `apply` moves assets past retention to the trash, crypto-shreds what has
//! been in the trash for 30 days and thins old versions per the version policy
//! (`crate::thinning`); consent history and audit stay.

use super::{output, Ctx, RetentionCmd};
use crate::catalog::assets::{self, AssetRow};
use crate::catalog::purposes;
use crate::error::{Error, Result};
use crate::policy::{Status, Time};
use crate::when::{self, parse_time};
use serde::Serialize;

/// Days an asset stays restorable in the trash before `apply` shreds it.
pub const TRASH_DAYS: i64 = 30;

#[derive(Serialize)]
struct Due {
    asset: i64,
    path: String,
    ended: Time,
    /// `asset` (its own term) or `purposes` (every purpose's term).
    term: &'static str,
}

#[derive(Serialize)]
struct Purge {
    asset: i64,
    path: String,
    trashed_at: Time,
}

#[derive(Serialize)]
struct Plan {
    applied: bool,
    to_trash: Vec<Due>,
    to_purge: Vec<Purge>,
    /// Old versions thinned (or to thin) per the version policy; `null` when the stored policy
    /// cannot be read (said on stderr; the rest of the sweep still runs).
    thinning: Option<crate::thinning::Report>,
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

pub fn run(ctx: &mut Ctx, cmd: RetentionCmd) -> Result<i32> {
    match cmd {
        RetentionCmd::Set {
            assets: list,
            until,
            none,
        } => {
            let until = if none {
                None
            } else {
                let u = until
                    .as_deref()
                    .ok_or_else(|| Error::invalid("give --until T or --none"))?;
                Some(parse_time(u, ctx.now)?)
            };
            let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
            let mut ids = Vec::new();
            for a in &list {
                let a = assets::resolve(&tx, a)?;
                assets::set_retention(&tx, a.id, until)?;
                ids.push(a.id);
            }
            tx.commit()?;
            for id in ids {
                match until {
                    Some(u) => println!("asset {id}: retention until {}", when::show(u)),
                    None => println!("asset {id}: no retention term of its own"),
                }
            }
            Ok(0)
        }
        RetentionCmd::Apply { yes } => apply(ctx, yes),
    }
}

fn apply(ctx: &mut Ctx, yes: bool) -> Result<i32> {
    let now = ctx.now;
    let conn = ctx.catalog.conn();
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
            let tx = ctx.catalog.begin(&ctx.actor, now)?;
            for d in batch {
                assets::set_status(&tx, d.asset, Status::Trash)?;
            }
            tx.commit()?;
        }
        crate::shred::purge_trash(&ctx.store, &mut ctx.catalog, &ctx.actor, now, cutoff)?;
    }
    // old versions go as the version policy says, in the same sweep
    let thinning =
        match crate::thinning::run(&ctx.store, &mut ctx.catalog, &ctx.actor, now, !yes, false) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("old versions were not thinned: {e}");
                None
            }
        };
    let thinned = thinning.as_ref().map_or(0, |r| r.assets.len());
    let plan = Plan {
        applied: yes,
        to_trash,
        to_purge,
        thinning,
    };
    if ctx.json {
        output::json(&plan)?;
        return Ok(0);
    }
    let (trash_verb, purge_verb) = if yes {
        ("moved to the trash", "purged (data keys destroyed)")
    } else {
        ("would move to the trash", "would purge")
    };
    if plan.to_trash.is_empty() && plan.to_purge.is_empty() && thinned == 0 {
        println!("nothing is past its retention term, nothing has been in the trash for {TRASH_DAYS} days, and the version policy thins nothing");
        return Ok(0);
    }
    for d in &plan.to_trash {
        println!(
            "{trash_verb}: asset {} {} (retention ended {}, {})",
            d.asset,
            d.path,
            when::show(d.ended),
            if d.term == "asset" {
                "its own term"
            } else {
                "every purpose's term"
            }
        );
    }
    for p in &plan.to_purge {
        println!(
            "{purge_verb}: asset {} {} (in the trash since {})",
            p.asset,
            p.path,
            when::show(p.trashed_at)
        );
    }
    if let Some(r) = plan.thinning.as_ref().filter(|r| !r.assets.is_empty()) {
        println!(
            "{}: {} old version(s) of {} asset(s), per the version policy (see `consentfs versions ASSET`)",
            if yes { "thinned" } else { "would thin" },
            r.versions_thinned,
            r.assets.len()
        );
    }
    if !yes {
        println!("dry run: nothing changed; run again with --yes to apply");
    }
    Ok(0)
}
