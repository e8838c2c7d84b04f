//! `consentfs retention set | apply` on the command line; what they do is
//! [`crate::domain::retention`].

use super::{output, Ctx, RetentionCmd};
use crate::domain::retention::{self, TRASH_DAYS};
use crate::error::{Error, Result};
use crate::when::{self, parse_time};

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
            let ids = retention::set(&mut ctx.session(), &list, until)?;
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
    let plan = retention::sweep(&mut ctx.session(), yes)?;
    if let Some(e) = &plan.thinning_failed {
        eprintln!("old versions were not thinned: {e}");
    }
    let thinned = plan.thinning.as_ref().map_or(0, |r| r.assets.len());
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
