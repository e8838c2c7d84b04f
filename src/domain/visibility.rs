//! What a user sees in a purpose (`ls`) and why an asset is or is not visible (`why`): the
//! same rules over the same catalog the mount uses, evaluated at any moment.

use crate::catalog::assets::{self, AssetRow};
use crate::catalog::snapshot::World;
use crate::catalog::{bulk, persons, purposes, snapshot, users};
use crate::error::{Error, Result};
use crate::policy::{self, prefix_covers, Decision, Reason, Time};
use crate::when::parse_time;
use rusqlite::Connection;
use serde::Serialize;
use std::collections::HashMap;

fn person_names(conn: &Connection) -> Result<HashMap<i64, String>> {
    Ok(persons::list(conn)?
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

fn at_or_now(now: Time, at: Option<&str>) -> Result<Time> {
    at.map(|a| parse_time(a, now))
        .transpose()
        .map(|t| t.unwrap_or(now))
}

/// Assets handed from the reading thread to the deciding one at a time (`ls`).
const BATCH: usize = 1024;

/// One asset of a listing, with the rules' decision.
#[derive(Serialize, Debug)]
pub struct LsItem {
    pub asset: i64,
    pub path: String,
    pub visible: bool,
    pub reason: &'static str,
    pub reason_text: String,
    pub valid_until: Option<Time>,
    pub persons: Vec<i64>,
    /// The user's own draft: shown to them alone, in no one else's view and no export.
    pub draft: bool,
}

#[allow(clippy::too_many_arguments)]
pub fn ls(
    conn: &Connection,
    now: Time,
    login: &str,
    purpose: &str,
    at: Option<&str>,
    hidden: bool,
    collection: Option<&str>,
    names_in_reasons: bool,
) -> Result<Vec<LsItem>> {
    let t = at_or_now(now, at)?;
    let user = users::resolve(conn, login)?;
    users::check_account(&user)?;
    let user = user.to_policy();
    let purpose = purposes::resolve(conn, purpose)?;
    let prefix = collection.map(assets::normalize_collection).transpose()?;
    // the assets stream past the rules one by one: a million rows are never held at once
    let people = snapshot::Persons::load(conn)?;
    let names = if names_in_reasons {
        person_names(conn)?
    } else {
        HashMap::new()
    };
    let rules = purpose.to_policy();
    // This thread reads the catalog; one thread per core applies the rules (most of the work
    // for a million assets: the search for each one's next change), batch by batch, so none
    // holds more than a few batches.
    let deciders = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 8));
    let (to_rules, batches) =
        std::sync::mpsc::sync_channel::<Vec<(String, policy::Asset)>>(2 * deciders);
    let batches = std::sync::Mutex::new(batches);
    let mut items: Vec<LsItem> = std::thread::scope(|scope| -> Result<Vec<LsItem>> {
        let (people, user, rules, names, batches) = (&people, &user, &rules, &names, &batches);
        let decide = move || {
            let mut items = Vec::new();
            while let Ok(batch) = batches
                .lock()
                .map_err(|_| ())
                .and_then(|b| b.recv().map_err(|_| ()))
            {
                for (path, input) in batch {
                    let d = policy::decide(&input, people, user, rules, t);
                    if d.visible || hidden {
                        items.push(LsItem {
                            asset: input.id,
                            path,
                            visible: d.visible,
                            reason: d.reason.code(),
                            reason_text: reason_text(&d.reason, names),
                            valid_until: d.valid_until,
                            draft: input.status == policy::Status::Draft,
                            persons: input.persons,
                        });
                    }
                }
            }
            items
        };
        let workers: Vec<_> = (0..deciders).map(|_| scope.spawn(decide)).collect();
        let mut batch = Vec::with_capacity(BATCH);
        let read = bulk::each_asset_row(conn, |mut a| {
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
            let path = a.path();
            let sources = std::mem::take(&mut a.sources);
            let mut input = a.into_policy();
            if input.status == policy::Status::Draft {
                // what the draft was made from (drafts are few: looked up one by one)
                for s in &sources {
                    if let Some(src) = assets::get(conn, *s)? {
                        input.derived_from.push(src.into_policy());
                    }
                }
            }
            batch.push((path, input));
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
        let mut items = Vec::new();
        for w in workers {
            items.extend(
                w.join()
                    .map_err(|_| Error::invalid("a thread applying the rules stopped"))?,
            );
        }
        read.map(|()| items)
    })?;
    items.sort_by(|a, b| (!a.visible, &a.path, a.asset).cmp(&(!b.visible, &b.path, b.asset)));
    Ok(items)
}

/// [`ls`] of what is visible (no `--at`, no `--hidden`) answered from the running daemon's
/// index, which the caller has brought up to date with the catalog: the same rules over the
/// same rows, in a fraction of the time (a million rows are not read out of the catalog).
/// The user and purpose are still looked up in the catalog, with the same errors.
pub fn ls_in_view(
    conn: &Connection,
    view: &std::sync::RwLock<crate::view::View>,
    now: Time,
    login: &str,
    purpose: &str,
    collection: Option<&str>,
) -> Result<Vec<LsItem>> {
    let user = users::resolve(conn, login)?;
    users::check_account(&user)?;
    let user = user.to_policy();
    let rules = purposes::resolve(conn, purpose)?.to_policy();
    let prefix = collection.map(assets::normalize_collection).transpose()?;
    let no_names = HashMap::new();
    let listed = crate::view::listing(view, &user, &rules, prefix.as_deref(), now)
        .ok_or_else(|| Error::invalid("the daemon's index is unusable (a thread died)"))?;
    Ok(listed
        .into_iter()
        .map(|l| LsItem {
            asset: l.asset,
            path: l.path,
            visible: true,
            reason: l.decision.reason.code(),
            // what makes an asset visible names no one (consented, no persons, basis, own
            // draft), so no names are needed
            reason_text: reason_text(&l.decision.reason, &no_names),
            valid_until: l.decision.valid_until,
            persons: l.persons,
            draft: l.draft,
        })
        .collect())
}

#[derive(Serialize, Debug)]
pub struct PersonStanding {
    pub person: i64,
    pub name: String,
    pub ok: bool,
    pub reason: String,
    pub reason_text: String,
}

#[derive(Serialize, Debug)]
pub struct Why {
    pub asset: i64,
    /// None for someone else's draft: its name is not shown to another user.
    pub path: Option<String>,
    pub user: String,
    pub purpose: String,
    pub at: Time,
    pub visible: bool,
    pub reason: String,
    pub reason_text: String,
    pub valid_until: Option<Time>,
    pub persons: Vec<PersonStanding>,
}

/// Why `asset` is or is not visible to `login` in `purpose` at `at` (as typed; default now),
/// with each person's own standing.
pub fn why(
    conn: &Connection,
    now: Time,
    asset: &str,
    login: &str,
    purpose: &str,
    at: Option<&str>,
) -> Result<Why> {
    let t = at_or_now(now, at)?;
    let a = assets::resolve(conn, asset)?;
    let user = users::resolve(conn, login)?;
    users::check_account(&user)?;
    let user = user.to_policy();
    let purpose = purposes::resolve(conn, purpose)?;
    let world = World::load(conn)?;
    let names = person_names(conn)?;
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
    let out = Why {
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
    Ok(out)
}
