//! Commands that look: `ls`, `why`, `cat`, `versions`, `expiring` and `audit`.
//! `ls` and `why` evaluate the same rules over the same snapshot the mount uses.

use super::{output, Ctx};
use crate::catalog::assets::{self, AssetRow};
use crate::catalog::audit;
use crate::catalog::snapshot::World;
use crate::catalog::{bulk, persons, purposes, snapshot, users};
use crate::domain;
use crate::error::{Error, Result};
use crate::policy::{self, prefix_covers, Decision, Reason, Time};
use crate::when::{self, parse_time};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;

#[derive(Serialize)]
struct LsItem {
    asset: i64,
    path: String,
    visible: bool,
    reason: String,
    reason_text: String,
    valid_until: Option<Time>,
    persons: Vec<i64>,
    /// The user's own draft: shown to them alone, in no one else's view and no export.
    draft: bool,
}

fn person_names(ctx: &Ctx) -> Result<HashMap<i64, String>> {
    Ok(persons::list(ctx.catalog.conn())?
        .into_iter()
        .map(|p| (p.id, p.label()))
        .collect())
}

fn reason_text(reason: &Reason, names: &HashMap<i64, String>) -> String {
    let who = reason
        .person()
        .map(|p| {
            format!("#{p} {}", names.get(&p).cloned().unwrap_or_default())
                .trim_end()
                .to_string()
        })
        .unwrap_or_default();
    reason.describe(&who)
}

/// A draft that is not `login`'s own in `purpose`: someone's unsaved work, which may be named
/// after what it shows. Another user's `ls` never lists it and their `why` never names it,
/// whatever else hides it from them (the rules may report a missing grant first).
fn foreign_draft(a: &AssetRow, login: &str, purpose: policy::PurposeId) -> bool {
    a.status == policy::Status::Draft
        && (a.creator != login || a.draft_purpose.is_some_and(|p| p != purpose))
}

fn at_or_now(ctx: &Ctx, at: Option<&str>) -> Result<Time> {
    at.map(|a| parse_time(a, ctx.now))
        .transpose()
        .map(|t| t.unwrap_or(ctx.now))
}

/// Assets handed from the reading thread to the deciding one at a time (`ls`).
const BATCH: usize = 1024;

pub fn ls(
    ctx: &Ctx,
    login: &str,
    purpose: &str,
    at: Option<&str>,
    hidden: bool,
    collection: Option<&str>,
) -> Result<i32> {
    let t = at_or_now(ctx, at)?;
    let conn = ctx.catalog.conn();
    let user = users::resolve(conn, login)?;
    users::check_account(&user)?;
    let user = user.to_policy();
    let purpose = purposes::resolve(conn, purpose)?;
    let prefix = collection.map(assets::normalize_collection).transpose()?;
    // the assets stream past the rules one by one: a million rows are never held at once
    let people = snapshot::Persons::load(conn)?;
    let names = if hidden || ctx.json {
        person_names(ctx)?
    } else {
        HashMap::new()
    };
    let rules = purpose.to_policy();
    // This thread reads the catalog; a second one applies the rules (about half the work each
    // for a million assets), batch by batch, so neither holds more than a few batches.
    let mut items: Vec<LsItem> = std::thread::scope(|scope| -> Result<Vec<LsItem>> {
        let (to_rules, batches) =
            std::sync::mpsc::sync_channel::<Vec<(AssetRow, policy::Asset)>>(4);
        let (people, user, rules, names) = (&people, &user, &rules, &names);
        let decider = scope.spawn(move || {
            let mut items = Vec::new();
            for batch in batches {
                for (a, input) in batch {
                    let d = policy::decide(&input, people, user, rules, t);
                    if d.visible || hidden {
                        items.push(LsItem {
                            asset: a.id,
                            path: a.path(),
                            visible: d.visible,
                            reason: d.reason.code().into(),
                            reason_text: reason_text(&d.reason, names),
                            valid_until: d.valid_until,
                            persons: a.persons,
                            draft: a.status == policy::Status::Draft,
                        });
                    }
                }
            }
            items
        });
        let mut batch = Vec::with_capacity(BATCH);
        let read = bulk::each_asset_row(conn, |a| {
            // the trash is `trash list`'s; purged assets (shredded, or temp files saved over
            // a photo) are gone for good; others' drafts are no one else's business
            if matches!(a.status, policy::Status::Trash | policy::Status::Purged)
                || foreign_draft(&a, &user.login, purpose.id)
                || prefix
                    .as_deref()
                    .is_some_and(|p| !prefix_covers(p, &a.collection))
            {
                return Ok(());
            }
            let mut input = a.to_policy();
            if a.status == policy::Status::Draft {
                // what the draft was made from (drafts are few: looked up one by one)
                for s in &a.sources {
                    if let Some(src) = assets::get(conn, *s)? {
                        input.derived_from.push(src.to_policy());
                    }
                }
            }
            batch.push((a, input));
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                // a closed channel means the other thread ended: its join says why
                let _ = to_rules.send(full);
            }
            Ok(())
        });
        if !batch.is_empty() {
            let _ = to_rules.send(batch);
        }
        drop(to_rules);
        let items = decider
            .join()
            .map_err(|_| Error::invalid("the thread applying the rules stopped"))?;
        read.map(|()| items)
    })?;
    items.sort_by(|a, b| (!a.visible, &a.path).cmp(&(!b.visible, &b.path)));
    if ctx.json {
        output::json(&items)?;
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = items
        .into_iter()
        .map(|i| {
            let until = if i.visible {
                i.valid_until
                    .map(|u| format!("until {}", when::show(u)))
                    .unwrap_or_default()
            } else {
                i.valid_until
                    .map(|u| format!("from {}", when::show(u)))
                    .unwrap_or_default()
            };
            vec![
                i.asset.to_string(),
                i.path,
                match (i.visible, i.draft) {
                    (true, true) => "draft".into(),
                    (true, false) => "visible".into(),
                    (false, _) => "hidden".into(),
                },
                if i.visible {
                    until
                } else {
                    format!("{} {until}", i.reason_text).trim_end().to_string()
                },
            ]
        })
        .collect();
    output::table(
        &[
            "ASSET",
            "PATH",
            "STATE",
            if hidden { "UNTIL / REASON" } else { "UNTIL" },
        ],
        &rows,
    )?;
    Ok(0)
}

#[derive(Serialize)]
struct PersonStanding {
    person: i64,
    name: String,
    ok: bool,
    reason: String,
    reason_text: String,
}

#[derive(Serialize)]
struct WhyOut {
    asset: i64,
    /// None for someone else's draft: its name is not shown to another user.
    path: Option<String>,
    user: String,
    purpose: String,
    at: Time,
    visible: bool,
    reason: String,
    reason_text: String,
    valid_until: Option<Time>,
    persons: Vec<PersonStanding>,
}

pub fn why(ctx: &Ctx, asset: &str, login: &str, purpose: &str, at: Option<&str>) -> Result<i32> {
    let t = at_or_now(ctx, at)?;
    let conn = ctx.catalog.conn();
    let a = assets::resolve(conn, asset)?;
    let user = users::resolve(conn, login)?;
    users::check_account(&user)?;
    let user = user.to_policy();
    let purpose = purposes::resolve(conn, purpose)?;
    let world = World::load(conn)?;
    let names = person_names(ctx)?;
    let d: Decision = world.decide(&a, &user, &purpose, t);
    // Each person's own standing: the same rules over the asset as if only they were on it.
    let mut standings = Vec::new();
    for &p in &a.persons {
        let solo = AssetRow {
            persons: vec![p],
            ..a.clone()
        };
        let (ok, reason) =
            policy::evaluate_at(&solo.to_policy(), &world, &user, &purpose.to_policy(), t);
        standings.push(PersonStanding {
            person: p,
            name: names.get(&p).cloned().unwrap_or_default(),
            ok,
            reason: reason.code().into(),
            reason_text: if ok {
                "consents to this use".into()
            } else {
                reason_text(&reason, &names)
            },
        });
    }
    let out = WhyOut {
        asset: a.id,
        path: (!foreign_draft(&a, &user.login, purpose.id)).then(|| a.path()),
        user: login.into(),
        purpose: purpose.name.clone(),
        at: t,
        visible: d.visible,
        reason: d.reason.code().into(),
        reason_text: reason_text(&d.reason, &names),
        valid_until: d.valid_until,
        persons: standings,
    };
    if ctx.json {
        output::json(&out)?;
        return Ok(0);
    }
    println!(
        "asset {} ({}) is {} to {} for {} at {}",
        out.asset,
        out.path
            .as_deref()
            .unwrap_or("someone else's draft, name not shown"),
        if out.visible { "VISIBLE" } else { "HIDDEN" },
        out.user,
        out.purpose,
        when::show(t)
    );
    println!("  because: {}", out.reason_text);
    if let Some(u) = out.valid_until {
        println!("  this changes at {}", when::show(u));
    }
    for s in &out.persons {
        println!("  #{} {}: {}", s.person, s.name, s.reason_text);
    }
    Ok(0)
}

pub fn cat(ctx: &mut Ctx, asset: &str, version: Option<i64>) -> Result<i32> {
    let obj = domain::cat::open(&mut ctx.session(), asset, version)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    obj.copy_verified_to(&mut out)?;
    out.flush()
        .map_err(|e| Error::io("cannot write output", e))?;
    Ok(0)
}

pub fn expiring(ctx: &Ctx, within: &str) -> Result<i32> {
    let domain::expiring::Expiring { to, items, names } =
        domain::expiring::expiring(ctx.catalog.conn(), ctx.now, within)?;
    if ctx.json {
        output::json(&items)?;
    } else if items.is_empty() {
        println!("nothing ends before {}", when::show(to));
    } else {
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|i| {
                let who = match (i.person, &i.name) {
                    (Some(p), Some(n)) => format!("#{p} {n}"),
                    (Some(p), None) => format!("#{p}"),
                    _ => {
                        let on = i
                            .persons
                            .iter()
                            .map(|p| {
                                format!("#{p} {}", names.get(p).cloned().unwrap_or_default())
                                    .trim_end()
                                    .to_string()
                            })
                            .collect::<Vec<_>>()
                            .join(", ");
                        let a = i.asset.map(|a| format!("asset {a}")).unwrap_or_default();
                        if on.is_empty() {
                            a
                        } else {
                            format!("{a} ({on})")
                        }
                    }
                };
                let what = match i.kind {
                    "consent_ends" => format!("consent ends ({})", i.purposes.join(",")),
                    "turns_16" => "turns 16: ask them to confirm their guardian's consent".into(),
                    _ if i.purposes.is_empty() => "retention ends".into(),
                    _ => format!("retention ends ({})", i.purposes.join(",")),
                };
                vec![when::show(i.at), who, what, i.photos.to_string()]
            })
            .collect();
        output::table(&["WHEN", "WHO", "WHAT", "PHOTOS"], &rows)?;
    }
    Ok(if items.is_empty() { 0 } else { 1 })
}

pub fn audit_list(ctx: &Ctx, since: i64) -> Result<i32> {
    let entries = audit::list(ctx.catalog.conn(), since)?;
    if ctx.json {
        output::json(&entries)?;
    } else {
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                vec![
                    e.seq.to_string(),
                    when::show(e.at),
                    e.actor.clone(),
                    e.action.clone(),
                    e.detail.to_string(),
                ]
            })
            .collect();
        output::table(&["SEQ", "AT", "ACTOR", "ACTION", "DETAIL"], &rows)?;
    }
    Ok(0)
}

pub fn audit_verify(ctx: &Ctx) -> Result<i32> {
    let v = audit::verify(ctx.catalog.conn(), ctx.catalog.audit_key())?;
    if ctx.json {
        output::json(&v)?;
    } else if v.problems.is_empty() {
        println!("audit log intact: {} entries", v.entries);
    } else {
        for p in &v.problems {
            println!("BROKEN: {p}");
        }
    }
    Ok(if v.problems.is_empty() { 0 } else { 1 })
}

/// Seal and open `mib` MiB in 64 KiB chunks with XChaCha20-Poly1305 (the implementation the
/// store uses), in memory, on one core: the ceiling for import and read throughput.
/// (`contrib/bench/aead.sh` compares it with the RustCrypto reference.)
pub fn cipher_speed(mib: usize) -> Result<i32> {
    use crate::crypto::aead::{open_in_place, seal_in_place};
    let key = crate::crypto::Key::random();
    let nonce = [0u8; crate::crypto::NONCE_LEN];
    let mut buf = vec![7u8; 65536];
    let chunks = mib * 16;
    let start = std::time::Instant::now();
    let mut tags = Vec::with_capacity(chunks);
    for i in 0..chunks {
        let tag = seal_in_place(&key, &nonce, &(i as u64).to_be_bytes(), &mut buf)
            .map_err(|_| Error::invalid("encryption failed"))?;
        tags.push(tag);
    }
    let enc = start.elapsed().as_secs_f64();
    let start = std::time::Instant::now();
    for (i, tag) in tags.iter().enumerate().rev() {
        open_in_place(&key, &nonce, &(i as u64).to_be_bytes(), &mut buf, tag)
            .map_err(|_| Error::invalid("decryption failed"))?;
    }
    let dec = start.elapsed().as_secs_f64();
    println!("xchacha20poly1305_seal_mib_s {:.0}", mib as f64 / enc);
    println!("xchacha20poly1305_open_mib_s {:.0}", mib as f64 / dec);
    Ok(0)
}
