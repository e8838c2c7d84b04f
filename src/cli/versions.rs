//! `consentfs versions ASSET | policy | thin`: an asset's versions with what the version policy
//! keeps and why, the policy itself (set by the privacy officer), and thinning by hand.

use super::{output, Ctx, VersionsCmd};
use crate::catalog::{assets, versions};
use crate::error::{Error, Result};
use crate::policy::thinning::{self, Tier};
use crate::policy::Time;
use crate::when;
use serde::Serialize;

/// Above this many versions holding content, `versions` does not work out when each kept one
/// would go (it evaluates the policy once per version and tier edge).
const UNTIL_LIMIT: usize = 400;

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

/// One version as `versions ASSET` shows it: the stored fields, then what the policy does.
#[derive(Serialize)]
struct Shown {
    #[serde(flatten)]
    row: assets::VersionRow,
    /// `kept`, `thin` (the next run thins it), `thinned` (by the policy, at `thinned_at`) or
    /// `shredded` (its content was destroyed with another asset it shared it with).
    state: &'static str,
    /// Why it is kept: current, original, exported, recent, daily, monthly.
    #[serde(skip_serializing_if = "Option::is_none")]
    kept_because: Option<&'static str>,
    /// When a later run would first thin it if nothing is saved meanwhile (absent: never, or
    /// not worked out for very long histories).
    #[serde(skip_serializing_if = "Option::is_none")]
    kept_until: Option<Time>,
}

pub fn show(ctx: &Ctx, asset: &str) -> Result<i32> {
    let conn = ctx.catalog.conn();
    let a = assets::resolve(conn, asset)?;
    let list = assets::versions(conn, a.id)?;
    // the versions are shown also when the stored policy cannot be read (thinning then
    // refuses to run until it is set again)
    let policy = match versions::policy(conn) {
        Ok((p, _)) => Some(p),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    };
    let zone = crate::catalog::zone::get(conn)?;
    let input = versions::policy_input(conn, a.id)?;
    let policy = policy.filter(|_| a.status != crate::policy::Status::Purged);
    let decisions: std::collections::HashMap<i64, Option<thinning::Keep>> = match &policy {
        Some(p) => thinning::decide(&input, p, ctx.now, &zone)
            .into_iter()
            .collect(),
        None => Default::default(),
    };
    let until = match &policy {
        Some(p) if input.len() <= UNTIL_LIMIT => thinning::kept_until(&input, p, ctx.now, &zone),
        _ => Default::default(),
    };
    let shown: Vec<Shown> = list
        .into_iter()
        .map(|row| {
            let (state, why) = if row.thinned_at.is_some() {
                ("thinned", None)
            } else if row.wrapped_key.is_none() {
                ("shredded", None)
            } else {
                match decisions.get(&row.version) {
                    Some(Some(k)) => ("kept", Some(k.as_str())),
                    Some(None) => ("thin", None),
                    None => ("kept", None),
                }
            };
            Shown {
                kept_until: until.get(&row.version).copied().flatten(),
                state,
                kept_because: why,
                row,
            }
        })
        .collect();
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
        let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
        if reset {
            versions::set_policy(&tx, None)?;
        } else {
            // an unreadable stored policy is replaced by what is given on top of the default
            let (mut p, _) = versions::policy(&tx).unwrap_or_default();
            if let Some(s) = keep_all {
                p.keep_all = Tier::parse(&s, "--keep-all")?;
            }
            if let Some(s) = daily {
                p.daily = Tier::parse(&s, "--daily")?;
            }
            if let Some(s) = monthly {
                p.monthly = Tier::parse(&s, "--monthly")?;
            }
            if let Some(o) = original {
                p.keep_original = match o.as_str() {
                    "keep" => true,
                    "thin" => false,
                    _ => {
                        return Err(Error::invalid(format!(
                            "--original '{o}': give 'keep' or 'thin'"
                        )))
                    }
                };
            }
            versions::set_policy(&tx, Some(&p))?;
        }
        tx.commit()?;
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
