//! Commands that record facts, on the command line: persons, guardians, purposes, consent
//! events, links, marks, users and grants, the trash. Each change is an operation of
//! [`crate::domain`] (one transaction with its audit entry); here the arguments are turned
//! into domain values and the result is printed. Listings read the catalog directly.

use super::{
    output, ConsentCmd, Ctx, EventArgs, MarkArgs, PersonCmd, PurposeCmd, TrashCmd, UserCmd,
};
use crate::catalog::assets::{self, normalize_collection};
use crate::catalog::consents;
use crate::catalog::{persons, purposes, users};
use crate::domain::{self, consent};
use crate::error::{Error, Result};
use crate::policy::{Access, Basis, EventKind};
use crate::when::{self, parse_date, Span};

pub fn person(ctx: &mut Ctx, cmd: PersonCmd) -> Result<i32> {
    match cmd {
        PersonCmd::Add {
            name,
            born,
            ext_ref,
            same_name,
        } => {
            let born = born.as_deref().map(parse_date).transpose()?;
            let id = domain::persons::add(
                &mut ctx.session(),
                &name,
                born,
                ext_ref.as_deref(),
                same_name,
            )?;
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
            let shown = domain::persons::show(conn, &person)?;
            if ctx.json {
                // as a JSON value first: every object's keys in name order, as always shown
                let value = serde_json::to_value(&shown)
                    .map_err(|e| Error::invalid(format!("cannot write JSON: {e}")))?;
                output::json(&value)?;
            } else {
                let (p, events, linked) = (&shown.person, &shown.consents, &shown.assets);
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
                for e in events {
                    println!("  {}", describe_event(e));
                }
            }
        }
        PersonCmd::Email {
            person,
            address,
            remove,
        } => {
            let address = address.filter(|_| !remove);
            let id =
                domain::mail::set_person_email(&mut ctx.session(), &person, address.as_deref())?;
            match address {
                Some(_) => println!("#{id}: mail address recorded"),
                None => println!("#{id}: mail address removed"),
            }
        }
        PersonCmd::Guardian {
            person,
            guardian,
            remove: false,
        } => {
            let (g, p) = domain::persons::add_guardian(&mut ctx.session(), &person, &guardian)?;
            println!("#{g} is now a guardian of #{p}");
        }
        PersonCmd::Guardian {
            person,
            guardian,
            remove: true,
        } => {
            let (g, p) = domain::persons::remove_guardian(&mut ctx.session(), &person, &guardian)?;
            println!("#{g} is no longer a guardian of #{p}");
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
            audience,
            description,
        } => {
            let basis = Basis::parse(&basis)
                .ok_or_else(|| Error::invalid(format!("unknown basis '{basis}'")))?;
            let retention = retention.as_deref().map(Span::parse).transpose()?;
            let audience = purposes::Audience::parse(&audience)
                .ok_or_else(|| Error::invalid(format!("unknown audience '{audience}'")))?;
            let id = domain::purposes::add(
                &mut ctx.session(),
                domain::purposes::NewPurpose {
                    name: &name,
                    basis,
                    retention,
                    art9_exception: art9_exception.as_deref(),
                    audience,
                    description: description.as_deref(),
                },
            )?;
            println!("purpose {id} '{name}' added");
            if art9_exception.is_none() {
                println!("  special-category photos need explicit consent in it (no Art. 9(2) exception recorded)");
            }
        }
        PurposeCmd::List => {
            let list = purposes::list(ctx.catalog.conn())?;
            let texts = purposes::texts(ctx.catalog.conn())?;
            let text_of = |id| texts.iter().find(|t| t.id == id);
            if ctx.json {
                let rows: Vec<serde_json::Value> = list
                    .iter()
                    .map(|p| {
                        let mut v = serde_json::to_value(p).unwrap_or_default();
                        if let (Some(o), Some(t)) = (v.as_object_mut(), text_of(p.id)) {
                            o.insert("audience".into(), serde_json::json!(t.audience));
                            o.insert("description".into(), serde_json::json!(t.description));
                        }
                        v
                    })
                    .collect();
                output::json(&rows)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|p| {
                        let t = text_of(p.id);
                        vec![
                            p.id.to_string(),
                            p.name.clone(),
                            p.basis.as_str().into(),
                            output::opt(&p.retention),
                            output::opt(&p.art9_exception),
                            t.map_or("staff", |t| t.audience.as_str()).into(),
                            t.and_then(|t| t.description.as_deref())
                                .map_or("-".into(), |d| one_line(d, 60)),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "ID",
                        "NAME",
                        "BASIS",
                        "RETENTION",
                        "ART. 9(2) EXCEPTION",
                        "AUDIENCE",
                        "DESCRIPTION",
                    ],
                    &rows,
                )?;
            }
        }
        PurposeCmd::Describe { purpose, text } => {
            let name = domain::purposes::describe(&mut ctx.session(), &purpose, &text)?;
            println!("purpose '{name}': description set (the consent page shows it)");
        }
        PurposeCmd::Audience { purpose, audience } => {
            let audience = purposes::Audience::parse(&audience)
                .ok_or_else(|| Error::invalid(format!("unknown audience '{audience}'")))?;
            let name = domain::purposes::set_audience(&mut ctx.session(), &purpose, audience)?;
            println!("purpose '{name}': audience {}", audience.as_str());
        }
        PurposeCmd::Retention { purpose, term } => {
            let span = match term.as_str() {
                "none" => None,
                t => Some(Span::parse(t)?),
            };
            let name = domain::purposes::set_retention(&mut ctx.session(), &purpose, span)?;
            match span {
                Some(s) => println!(
                    "purpose '{name}': assets are kept {} from their import",
                    s.to_text()
                ),
                None => println!("purpose '{name}': no retention term"),
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

pub fn link(ctx: &mut Ctx, asset: &str, who: &[String], face: Option<u32>) -> Result<i32> {
    let (asset, added) = domain::links::link(&mut ctx.session(), asset, who, face)?;
    println!(
        "asset {} linked to {}",
        asset,
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
    let (a, p) = domain::links::unlink(&mut ctx.session(), asset, who)?;
    println!("asset {a} no longer linked to #{p}");
    Ok(0)
}

pub fn mark(ctx: &mut Ctx, args: MarkArgs) -> Result<i32> {
    if args.faces_reviewed {
        if args.clear {
            return Err(Error::invalid(
                "--faces-reviewed cannot be cleared; link the persons or rescan instead",
            ));
        }
        for (id, n) in domain::links::faces_reviewed(&mut ctx.session(), &args.assets)? {
            println!("asset {id}: {n} detected face(s) accounted for; those without a linked person declared not recognisable");
        }
        return Ok(0);
    }
    if !args.no_persons && !args.special_category {
        return Err(Error::invalid(
            "say what to mark: --no-persons, --special-category or --faces-reviewed",
        ));
    }
    let value = !args.clear;
    let ids = domain::links::mark(
        &mut ctx.session(),
        &args.assets,
        args.no_persons.then_some(value),
        args.special_category.then_some(value),
        args.force,
    )?;
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
            domain::users::add(&mut ctx.session(), &login, person.as_deref())?;
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
            domain::users::grant(&mut ctx.session(), &login, &purpose, &prefix, access)?;
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
            let n = domain::users::revoke(&mut ctx.session(), &login, &purpose, prefix.as_deref())?;
            println!(
                "{login}: {n} grant{} in {purpose} revoked",
                if n == 1 { "" } else { "s" }
            );
        }
        UserCmd::Remove { login } => {
            let drafts = domain::users::remove(&mut ctx.session(), &login)?;
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
    let (a, new) = domain::trash::restore_version(&mut ctx.session(), asset, version)?;
    println!("asset {a}: version {version} restored as version {new}");
    Ok(0)
}

pub fn derive(ctx: &mut Ctx, draft: &str, from: &str) -> Result<i32> {
    let (d, f) = domain::links::derive(&mut ctx.session(), draft, from)?;
    println!("asset {d} is now a normal asset with the persons of asset {f}");
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
            let (id, path) = domain::trash::restore(&mut ctx.session(), &asset)?;
            println!("asset {id} restored to {path}");
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
            let n = domain::trash::purge(&mut ctx.session(), cutoff)?;
            println!("purged {n} asset(s): their data keys are destroyed; consent history and audit stay");
            Ok(0)
        }
    }
}

/// `text` on one line, cut to `max` characters with an ellipsis (for a table cell).
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}
