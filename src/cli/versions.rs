//! `consentfs versions ASSET | policy | thin`: an asset's versions with what the version policy
//! keeps and why, the policy itself (set by the privacy officer), and thinning by hand.

use super::{output, Ctx, VersionsCmd};
use crate::catalog::versions;
use crate::domain::{self, versions::Change};
use crate::error::{Error, Result};
use crate::policy::thinning::Tier;
use crate::when;

pub fn run(ctx: &mut Ctx, cmd: VersionsCmd) -> Result<i32> {
    match cmd {
        VersionsCmd::Policy {
            keep_all,
            daily,
            monthly,
            original,
            reset,
            show: _,
        } => policy(ctx, keep_all, daily, monthly, original, reset),
        VersionsCmd::Thin { dry_run } => thin(ctx, dry_run),
    }
}

pub fn show(ctx: &Ctx, asset: &str) -> Result<i32> {
    let h = domain::versions::history(ctx.catalog.conn(), asset, ctx.now)?;
    if let Some(e) = &h.policy_unreadable {
        eprintln!("{e}");
    }
    let shown = h.versions;
    if ctx.json {
        return output::json(&shown).map(|_| 0);
    }
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|s| {
            let kept = match (s.state, s.kept_because) {
                ("thinned", _) => format!(
                    "thinned {}",
                    s.row.thinned_at.map(when::show).unwrap_or_default()
                ),
                ("shredded", _) => "shredded".into(),
                ("thin", _) => "thinned at the next run".into(),
                (_, Some(why)) => match s.kept_until {
                    Some(t) => format!("kept: {why} (until about {})", when::show(t)),
                    None => format!("kept: {why}"),
                },
                _ => "kept".into(),
            };
            vec![
                s.row.version.to_string(),
                s.row.size.to_string(),
                when::show(s.row.created_at),
                s.row.created_by.clone(),
                kept,
            ]
        })
        .collect();
    output::table(&["VERSION", "SIZE", "CREATED", "BY", "POLICY"], &rows)?;
    Ok(0)
}

fn policy(
    ctx: &mut Ctx,
    keep_all: Option<String>,
    daily: Option<String>,
    monthly: Option<String>,
    original: Option<String>,
    reset: bool,
) -> Result<i32> {
    let changes = keep_all.is_some() || daily.is_some() || monthly.is_some() || original.is_some();
    if changes || reset {
        let tier = |s: Option<String>, opt: &str| s.map(|s| Tier::parse(&s, opt)).transpose();
        let change = if reset {
            Change::default()
        } else {
            Change {
                keep_all: tier(keep_all, "--keep-all")?,
                daily: tier(daily, "--daily")?,
                monthly: tier(monthly, "--monthly")?,
                keep_original: match original.as_deref() {
                    None => None,
                    Some("keep") => Some(true),
                    Some("thin") => Some(false),
                    Some(o) => {
                        return Err(Error::invalid(format!(
                            "--original '{o}': give 'keep' or 'thin'"
                        )))
                    }
                },
            }
        };
        domain::versions::set_policy(&mut ctx.session(), change, reset)?;
    }
    let (p, set) = versions::policy(ctx.catalog.conn())?;
    if ctx.json {
        let mut v: serde_json::Value = serde_json::from_str(&p.to_stored()).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("default".into(), (!set).into());
        }
        output::json(&v)?;
    } else {
        println!(
            "version policy{}: {}",
            if set { "" } else { " (the default)" },
            p.describe()
        );
        if changes || reset {
            println!("applied at the next mount or `consentfs versions thin`");
        }
    }
    Ok(0)
}

fn thin(ctx: &mut Ctx, dry_run: bool) -> Result<i32> {
    let report = crate::thinning::run(
        &ctx.store,
        &mut ctx.catalog,
        &ctx.actor,
        ctx.now,
        dry_run,
        true,
    )?;
    if ctx.json {
        output::json(&report)?;
        return Ok(0);
    }
    let verb = if dry_run { "would thin" } else { "thinned" };
    for a in &report.assets {
        let list: Vec<String> = a.versions.iter().map(|v| v.to_string()).collect();
        println!("{verb}: asset {} version(s) {}", a.asset, list.join(", "));
    }
    if report.assets.is_empty() {
        println!("nothing to thin: every version is kept by the version policy");
    } else {
        println!(
            "{verb} {} version(s) of {} asset(s){}",
            report.versions_thinned,
            report.assets.len(),
            if dry_run {
                "; dry run: nothing changed".to_string()
            } else {
                format!(
                    "; {} object(s) crypto-shredded (others are still used by kept versions)",
                    report.objects_shredded
                )
            }
        );
    }
    Ok(0)
}
