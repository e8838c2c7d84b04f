//! Data-subject rights and proof on the command line: `person report`, `person erase`,
//! `consent receipt` and `audit report`. What they do is in [`crate::domain`]; here they are
//! printed.

use super::{output, Ctx};
use crate::catalog::exports;
use crate::error::Result;
use crate::when;
use std::path::Path;

/// `audit report`: see [`crate::domain::report::accesses`].
pub fn audit_report(ctx: &mut Ctx, person: &str, since: Option<&str>) -> Result<i32> {
    let a = crate::domain::report::accesses(&ctx.session(), person, since)?;
    if ctx.json {
        output::json(&a.list)?;
        return Ok(0);
    }
    if a.list.is_empty() {
        println!(
            "no one opened, printed or exported photos of #{} since {}",
            a.person,
            when::show(a.since)
        );
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = a
        .list
        .iter()
        .map(|a| {
            vec![
                when::show(a.at),
                a.actor.clone(),
                a.action.clone(),
                a.user.clone().unwrap_or_default(),
                a.purpose.clone().unwrap_or_default(),
                a.asset.to_string(),
                a.path.clone(),
                match (a.export, a.outcome) {
                    (Some(e), Some(o)) if o != exports::Outcome::Completed => {
                        format!("export {e} ({})", o.as_str())
                    }
                    (Some(e), _) => format!("export {e}"),
                    _ => String::new(),
                },
            ]
        })
        .collect();
    output::table(
        &[
            "WHEN", "WHO", "WHAT", "VIEW", "PURPOSE", "ASSET", "PATH", "",
        ],
        &rows,
    )?;
    Ok(0)
}

/// `person report`: see [`crate::domain::report::report`].
pub fn report(ctx: &mut Ctx, person: &str, dest: &Path) -> Result<i32> {
    let w = crate::domain::report::report(&mut ctx.session(), person, dest)?;
    if ctx.json {
        output::json(&w)?;
    } else {
        println!(
            "report on #{} written to {}: {} consent event(s), {} photo(s), {} export item(s), {} access(es); open index.html",
            w.person, w.dest, w.consents, w.photos, w.exports, w.accesses
        );
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// person erase

/// `person erase`: see [`crate::domain::erase`].
pub fn erase(ctx: &mut Ctx, person: &str, yes: bool, include_group: bool) -> Result<i32> {
    let out = crate::domain::erase::erase(&mut ctx.session(), person, yes, include_group)?;
    if ctx.json {
        output::json(&out)?;
        return Ok(0);
    }
    let verb = if yes { "shredded" } else { "would shred" };
    for s in &out.shredded {
        println!(
            "{verb}: asset {} {} ({} person(s) on it)",
            s.asset, s.path, s.persons
        );
    }
    for g in &out.group_photos_kept {
        println!(
            "group photo kept: asset {} {} ({} persons on it; add --include-group-photos to shred group photos too)",
            g.asset, g.path, g.persons
        );
    }
    for s in &out.sidecars_shredded {
        println!(
            "{verb}: asset {} {} (the sidecar of a group photo kept: it may name the person)",
            s.asset, s.path
        );
    }
    if yes {
        println!(
            "person #{} erased: name, birth date and reference removed; consent withdrawn for every purpose; consent history kept as {}",
            out.person, out.pseudonym
        );
    } else {
        println!(
            "dry run: nothing changed; run again with --yes to erase #{} (name, birth date and reference are removed, the consent history stays as {})",
            out.person, out.pseudonym
        );
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// consent receipt

/// `consent receipt`: always JSON-LD, the receipt is a document.
pub fn receipt(ctx: &Ctx, event: i64) -> Result<i32> {
    output::json(&crate::domain::receipt::receipt(ctx.catalog.conn(), event)?)?;
    Ok(0)
}
