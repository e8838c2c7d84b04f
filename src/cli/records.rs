//! Commands that record facts: persons, guardians, purposes, consent events, links, marks,
//! users and grants. Each runs in one transaction with its audit entry.

use super::{
    output, ConsentCmd, Ctx, EventArgs, MarkArgs, PersonCmd, PurposeCmd, TrashCmd, UserCmd,
};
use crate::catalog::assets::{self, normalize_collection};
use crate::catalog::consents;
use crate::catalog::{persons, purposes, users};
use crate::domain::consent;
use crate::error::{Error, Result};
use crate::policy::{Access, Basis, EventKind};
use crate::when::{self, parse_date, Span};

pub fn person(ctx: &mut Ctx, cmd: PersonCmd) -> Result<i32> {
    match cmd {
        PersonCmd::Add {
            name,
            born,
            ext_ref,
        } => {
            let born = born.as_deref().map(parse_date).transpose()?;
            let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
            let id = persons::add(&tx, &name, born, ext_ref.as_deref())?;
            tx.commit()?;
            if ctx.json {
                output::json(&serde_json::json!({ "person": id }))?;
            } else {
                println!("person {id} added");
            }
        }
        PersonCmd::List => {
            let list = persons::list(ctx.catalog.conn())?;
            if ctx.json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|p| {
                        vec![
                            p.id.to_string(),
                            p.label(),
                            output::opt(&p.born),
                            output::opt(&p.ext_ref),
                            p.guardians
                                .iter()
                                .map(|g| format!("#{g}"))
                                .collect::<Vec<_>>()
                                .join(","),
                        ]
                    })
                    .collect();
                output::table(&["ID", "NAME", "BORN", "REF", "GUARDIANS"], &rows)?;
            }
        }
        PersonCmd::Show { person } => {
            let conn = ctx.catalog.conn();
            let p = persons::resolve(conn, &person)?;
            let events = consents::list(conn, Some(p.id))?;
            let mut st =
                conn.prepare("SELECT asset_id FROM links WHERE person_id = ?1 ORDER BY asset_id")?;
            let linked: Vec<i64> = st
                .query_map([p.id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            if ctx.json {
                output::json(
                    &serde_json::json!({ "person": p, "consents": events, "assets": linked }),
                )?;
            } else {
                println!("person {}: {}", p.id, p.label());
                println!(
                    "  born: {}   ref: {}",
                    output::opt(&p.born),
                    output::opt(&p.ext_ref)
                );
                for g in &p.guardians {
                    let gl = persons::get(conn, *g)?
                        .map(|g| g.label())
                        .unwrap_or_default();
                    println!("  guardian: #{g} {gl}");
                }
                println!("  photos: {}", linked.len());
                for e in &events {
                    println!("  {}", describe_event(e));
                }
            }
        }
        PersonCmd::Guardian { person, guardian } => {
            let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
            let p = persons::resolve(&tx, &person)?;
            let g = persons::resolve(&tx, &guardian)?;
            persons::add_guardian(&tx, p.id, g.id)?;
            tx.commit()?;
            println!("#{} is now a guardian of #{}", g.id, p.id);
        }
        PersonCmd::Report { person, dest } => return super::rights::report(ctx, &person, &dest),
        PersonCmd::Erase {
            person,
            yes,
            include_group_photos,
        } => return super::rights::erase(ctx, &person, yes, include_group_photos),
    }
    Ok(0)
}

pub fn describe_event(e: &consents::EventRow) -> String {
    let scope = match e.scope.as_str() {
        "collection" => format!(
            " for collection {}",
            e.collection.clone().unwrap_or_default()
        ),
        "assets" => format!(
            " for asset(s) {}",
            e.assets
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        _ => String::new(),
    };
    let until = e
        .expires
        .map(|t| format!(" until {}", when::show(t)))
        .unwrap_or_default();
    let by = if e.given_by != e.person {
        format!(" by guardian #{}", e.given_by)
    } else {
        String::new()
    };
    let explicit = if e.explicit { " (explicit)" } else { "" };
    let evidence = e
        .evidence
        .as_ref()
        .map(|n| format!(" evidence: {n}"))
        .unwrap_or_default();
    format!(
        "event {}: {} {}{scope} from {}{until}{by}{explicit}{evidence} (recorded by {} at {})",
        e.id,
        e.kind.as_str(),
        e.purposes.join(","),
        when::show(e.starts),
        e.recorded_by,
        when::show(e.recorded_at)
    )
}

pub fn purpose(ctx: &mut Ctx, cmd: PurposeCmd) -> Result<i32> {
    match cmd {
        PurposeCmd::Add {
            name,
            basis,
            retention,
            art9_exception,
        } => {
            let basis = Basis::parse(&basis)
                .ok_or_else(|| Error::invalid(format!("unknown basis '{basis}'")))?;
            let retention = retention.as_deref().map(Span::parse).transpose()?;
            let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
            let id = purposes::add(&tx, &name, basis, retention, art9_exception.as_deref())?;
            tx.commit()?;
            println!("purpose {id} '{name}' added");
            if art9_exception.is_none() {
                println!("  special-category photos need explicit consent in it (no Art. 9(2) exception recorded)");
            }
        }
        PurposeCmd::List => {
            let list = purposes::list(ctx.catalog.conn())?;
            if ctx.json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|p| {
                        vec![
                            p.id.to_string(),
                            p.name.clone(),
                            p.basis.as_str().into(),
                            output::opt(&p.retention),
                            output::opt(&p.art9_exception),
                        ]
                    })
                    .collect();
                output::table(
                    &["ID", "NAME", "BASIS", "RETENTION", "ART. 9(2) EXCEPTION"],
                    &rows,
                )?;
            }
        }
        PurposeCmd::Retention { purpose, term } => {
            let span = match term.as_str() {
                "none" => None,
                t => Some(Span::parse(t)?),
            };
            let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
            let p = purposes::resolve(&tx, &purpose)?;
            purposes::set_retention(&tx, &p, span)?;
            tx.commit()?;
            match span {
                Some(s) => println!(
                    "purpose '{}': assets are kept {} from their import",
                    p.name,
                    s.to_text()
                ),
                None => println!("purpose '{}': no retention term", p.name),
            }
        }
    }
    Ok(0)
}

/// `consent grant|withdraw|refuse|object`: the times first (a mistyped one is the first error),
/// then the evidence, opened here as the user who runs the command, then the record.
fn record(
    ctx: &mut Ctx,
    kind: EventKind,
    args: EventArgs,
    starts: Option<&str>,
    until: Option<&str>,
    explicit: bool,
    evidence: Option<&std::path::Path>,
) -> Result<i32> {
    let at = consent::Moments::parse(kind, starts, until, ctx.now)?;
    let evidence = evidence.map(consent::open_evidence).transpose()?;
    let who = consent::Subject {
        person: &args.person,
        purposes: &args.purpose,
        collection: args.collection.as_deref(),
        assets: &args.assets,
        by: args.by.as_deref(),
    };
    let r = consent::record(&mut ctx.session(), kind, &who, at, explicit, evidence)?;
    if ctx.json {
        output::json(&r)?;
    } else {
        println!("recorded {} (event {})", r.kind.as_str(), r.event);
    }
    Ok(0)
}

pub fn consent(ctx: &mut Ctx, cmd: ConsentCmd) -> Result<i32> {
    match cmd {
        ConsentCmd::Grant {
            event,
            from,
            until,
            explicit,
            evidence,
        } => record(
            ctx,
            EventKind::Grant,
            event,
            from.as_deref(),
            until.as_deref(),
            explicit,
            evidence.as_deref(),
        ),
        ConsentCmd::Withdraw { event, at } => record(
            ctx,
            EventKind::Withdraw,
            event,
            at.as_deref(),
            None,
            false,
            None,
        ),
        ConsentCmd::Refuse { event, at } => record(
            ctx,
            EventKind::Refuse,
            event,
            at.as_deref(),
            None,
            false,
            None,
        ),
        ConsentCmd::Object { event, at } => record(
            ctx,
            EventKind::Object,
            event,
            at.as_deref(),
            None,
            false,
            None,
        ),
        ConsentCmd::List { person } => {
            let conn = ctx.catalog.conn();
            let pid = person
                .as_deref()
                .map(|p| persons::resolve(conn, p))
                .transpose()?
                .map(|p| p.id);
            let list = consents::list(conn, pid)?;
            if ctx.json {
                output::json(&list)?;
            } else {
                for e in &list {
                    let who = persons::get(conn, e.person)?
                        .map(|p| p.label())
                        .unwrap_or_default();
                    println!("#{} {who}: {}", e.person, describe_event(e));
                }
            }
            Ok(0)
        }
        ConsentCmd::Receipt { event } => super::rights::receipt(ctx, event),
    }
}

pub fn link(ctx: &mut Ctx, asset: &str, who: &[String]) -> Result<i32> {
    let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
    let a = assets::resolve(&tx, asset)?;
    let mut added = Vec::new();
    for w in who {
        let p = persons::resolve(&tx, w)?;
        if assets::link(&tx, a.id, p.id)? {
            added.push(p.id);
        }
    }
    // a reviewed draft becomes a normal asset
    assets::activate(&tx, a.id)?;
    tx.commit()?;
    println!(
        "asset {} linked to {}",
        a.id,
        if added.is_empty() {
            "no new persons (already linked)".into()
        } else {
            added
                .iter()
                .map(|p| format!("#{p}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    Ok(0)
}

pub fn unlink(ctx: &mut Ctx, asset: &str, who: &str) -> Result<i32> {
    let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
    let a = assets::resolve(&tx, asset)?;
    let p = persons::resolve(&tx, who)?;
    assets::unlink(&tx, a.id, p.id)?;
    tx.commit()?;
    println!("asset {} no longer linked to #{}", a.id, p.id);
    Ok(0)
}

pub fn mark(ctx: &mut Ctx, args: MarkArgs) -> Result<i32> {
    if !args.no_persons && !args.special_category {
        return Err(Error::invalid(
            "say what to mark: --no-persons or --special-category",
        ));
    }
    let value = !args.clear;
    let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
    let mut ids = Vec::new();
    for asset in &args.assets {
        let a = assets::resolve(&tx, asset)?;
        assets::mark(
            &tx,
            a.id,
            args.no_persons.then_some(value),
            args.special_category.then_some(value),
        )?;
        ids.push(a.id);
    }
    tx.commit()?;
    let what = [
        (args.no_persons, "no identifiable persons"),
        (args.special_category, "special category"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, w)| *w)
    .collect::<Vec<_>>()
    .join(" and ");
    for id in ids {
        println!(
            "asset {id} {} {what}",
            if value { "marked" } else { "no longer marked" }
        );
    }
    Ok(0)
}

pub fn user(ctx: &mut Ctx, cmd: UserCmd) -> Result<i32> {
    match cmd {
        UserCmd::Add { login, person } => {
            let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
            let pid = person
                .as_deref()
                .map(|p| persons::resolve(&tx, p))
                .transpose()?
                .map(|p| p.id);
            users::add(&tx, &login, pid)?;
            tx.commit()?;
            println!("user {login} added; give access with `consentfs user grant {login} --purpose P --access read`");
        }
        UserCmd::Grant {
            login,
            purpose,
            access,
            collection,
        } => {
            let access = Access::parse(&access)
                .ok_or_else(|| Error::invalid(format!("unknown access '{access}'")))?;
            let prefix = normalize_collection(&collection)?;
            let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
            let u = users::resolve(&tx, &login)?;
            for p in purposes::resolve_list(&tx, &purpose)? {
                users::grant(&tx, &u, p.id, &prefix, access)?;
            }
            tx.commit()?;
            println!(
                "{login} may now {} {} in {purpose}",
                access.as_str(),
                if prefix.is_empty() {
                    "everything".to_string()
                } else {
                    prefix.clone()
                }
            );
        }
        UserCmd::Revoke {
            login,
            purpose,
            collection,
        } => {
            let prefix = collection
                .as_deref()
                .map(normalize_collection)
                .transpose()?;
            let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
            let u = users::resolve(&tx, &login)?;
            let mut n = 0;
            for p in purposes::resolve_list(&tx, &purpose)? {
                n += users::revoke(&tx, &u, p.id, &p.name, prefix.as_deref())?;
            }
            tx.commit()?;
            println!(
                "{login}: {n} grant{} in {purpose} revoked",
                if n == 1 { "" } else { "s" }
            );
        }
        UserCmd::Remove { login } => {
            let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
            let u = users::resolve(&tx, &login)?;
            let drafts = users::remove(&tx, &u)?;
            tx.commit()?;
            println!("user {login} removed with all their grants");
            if drafts > 0 {
                println!("{drafts} draft(s) of theirs are kept in the catalog but shown to no one");
            }
        }
        UserCmd::List => {
            let list = users::list(ctx.catalog.conn())?;
            if ctx.json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|u| {
                        vec![
                            u.login.clone(),
                            u.person
                                .map(|p| format!("#{p}"))
                                .unwrap_or_else(|| "-".into()),
                            u.grants
                                .iter()
                                .map(|g| {
                                    let c = if g.collection.is_empty() {
                                        String::new()
                                    } else {
                                        format!(":{}", g.collection)
                                    };
                                    format!("{}{c}={}", g.purpose, g.access.as_str())
                                })
                                .collect::<Vec<_>>()
                                .join(" "),
                        ]
                    })
                    .collect();
                output::table(&["LOGIN", "PERSON", "GRANTS"], &rows)?;
            }
        }
    }
    Ok(0)
}

pub fn restore(ctx: &mut Ctx, asset: &str, version: i64) -> Result<i32> {
    let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
    let a = assets::resolve(&tx, asset)?;
    let v = assets::version(&tx, a.id, Some(version))?;
    if let Some(t) = v.thinned_at {
        return Err(Error::invalid(format!(
            "version {version} of asset {} was thinned by the version policy on {}; it cannot be restored",
            a.id,
            when::show(t)
        )));
    }
    if v.wrapped_key.is_none() {
        return Err(Error::invalid(format!(
            "version {version} of asset {} was shredded; it cannot be restored",
            a.id
        )));
    }
    let new = assets::add_version_of_object(&tx, a.id, &v.object, v.size, v.mtime)?;
    tx.commit()?;
    println!(
        "asset {}: version {version} restored as version {new}",
        a.id
    );
    Ok(0)
}

pub fn derive(ctx: &mut Ctx, draft: &str, from: &str) -> Result<i32> {
    let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
    let d = assets::resolve(&tx, draft)?;
    let f = assets::resolve(&tx, from)?;
    if d.status != crate::policy::Status::Draft {
        return Err(Error::invalid(format!("asset {} is not a draft", d.id)));
    }
    if f.status != crate::policy::Status::Active {
        return Err(Error::invalid(format!(
            "asset {} is not an active asset",
            f.id
        )));
    }
    for p in &f.persons {
        assets::link(&tx, d.id, *p)?;
    }
    assets::mark(&tx, d.id, Some(f.no_persons), Some(f.special_category))?;
    assets::activate(&tx, d.id)?;
    tx.audit(
        "asset.derive",
        serde_json::json!({ "asset": d.id, "from": f.id }),
    )?;
    tx.commit()?;
    println!(
        "asset {} is now a normal asset with the persons of asset {}",
        d.id, f.id
    );
    Ok(0)
}

pub fn trash(ctx: &mut Ctx, cmd: TrashCmd) -> Result<i32> {
    match cmd {
        TrashCmd::List => {
            let list = assets::trashed(ctx.catalog.conn())?;
            if ctx.json {
                let items: Vec<serde_json::Value> = list
                    .iter()
                    .map(|(a, t)| serde_json::json!({ "asset": a.id, "path": a.path(), "trashed_at": t, "status": "trash" }))
                    .collect();
                output::json(&items)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|(a, t)| vec![a.id.to_string(), a.path(), when::show(*t)])
                    .collect();
                output::table(&["ASSET", "PATH", "TRASHED"], &rows)?;
            }
            Ok(0)
        }
        TrashCmd::Restore { asset } => {
            let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
            let a = assets::resolve(&tx, &asset)?;
            if a.status != crate::policy::Status::Trash {
                return Err(Error::invalid(format!(
                    "asset {} is not in the trash",
                    a.id
                )));
            }
            if let Some(other) = assets::path_taken(&tx, &a.collection, &a.name)? {
                return Err(Error::invalid(format!(
                    "'{}' is taken by asset {other}; rename that first",
                    a.path()
                )));
            }
            let back = if a.draft_purpose.is_some() {
                crate::policy::Status::Draft
            } else {
                crate::policy::Status::Active
            };
            assets::set_status(&tx, a.id, back)?;
            tx.commit()?;
            println!("asset {} restored to {}", a.id, a.path());
            Ok(0)
        }
        TrashCmd::Purge { older_than, all } => {
            let cutoff = if all {
                ctx.now + chrono::Duration::seconds(1)
            } else {
                Span::parse(&older_than)?
                    .before(ctx.now)
                    .ok_or_else(|| Error::invalid("--older-than is out of range"))?
            };
            let n = crate::shred::purge_trash(
                &ctx.store,
                &mut ctx.catalog,
                &ctx.actor,
                ctx.now,
                cutoff,
            )?;
            println!("purged {n} asset(s): their data keys are destroyed; consent history and audit stay");
            Ok(0)
        }
    }
}
