//! Data-subject rights and proof: `person report` (access request), `person erase` (erasure),
//! `consent receipt` (a consent record in the W3C Data Privacy Vocabulary) and `audit report`
//! (who used a person's photos, for a breach report).
//!
//! Erasure crypto-shreds the photos only the person is on (and renames them, as file names
//! often carry the person's name), removes name, birth date and own reference, and records a
//! withdrawal for every purpose: the person no longer consents to
//! anything, so group photos that still show them (kept when not shredded) stay hidden where
//! consent is needed. The consent history stays under the person's pseudonym: it is the proof
//! that earlier use was lawful.

use super::{output, Ctx};
use crate::audit;
use crate::catalog::assets::{self, check_name, AssetRow};
use crate::catalog::consents::{self, EventRow, NewEvent};
use crate::catalog::{exports, persons, purposes};
use crate::crypto::object::ObjectId;
use crate::error::{Error, Result};
use crate::export::{self, Modes};
use crate::policy::{EventKind, Scope, Status, Time};
use crate::when::{self, Span};
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use std::collections::HashSet;
use std::path::Path;

/// Assets linked to a person now, plus those linked earlier (from the audit log), so a report
/// also covers photos the person was unlinked from.
fn assets_ever_linked(conn: &Connection, person: i64) -> Result<HashSet<i64>> {
    let mut out: HashSet<i64> = conn
        .prepare("SELECT asset_id FROM links WHERE person_id = ?1")?
        .query_map([person], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut st = conn.prepare(
        "SELECT json_extract(detail, '$.asset') FROM audit
          WHERE action = 'asset.link' AND json_extract(detail, '$.person') = ?1",
    )?;
    for a in st.query_map([person], |r| r.get::<_, Option<i64>>(0))? {
        out.extend(a?);
    }
    // drafts made from their photos (copies, edits saved under a new name) show them too
    out.extend(
        assets::derived_from_person(conn, person)?
            .into_iter()
            .map(|(a, _)| a.id),
    );
    Ok(out)
}

/// A moment given to `--since`: a date, RFC 3339, or a span back from now (`72h`).
fn since_time(s: Option<&str>, now: Time) -> Result<Time> {
    let Some(s) = s else {
        return Ok(when::from_secs(0));
    };
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        if let Ok(span) = Span::parse(s) {
            return span
                .before(now)
                .ok_or_else(|| Error::invalid("--since is out of range"));
        }
    }
    when::parse_time(s, now)
}

pub fn audit_report(ctx: &Ctx, person: &str, since: Option<&str>) -> Result<i32> {
    let conn = ctx.catalog.conn();
    let p = persons::resolve(conn, person)?;
    let since = since_time(since, ctx.now)?;
    let linked = assets_ever_linked(conn, p.id)?;
    let list = audit::accesses(conn, &linked, since)?;
    if ctx.json {
        output::json(&list)?;
        return Ok(0);
    }
    if list.is_empty() {
        println!(
            "no one opened, printed or exported photos of #{} since {}",
            p.id,
            when::show(since)
        );
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = list
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

// ---------------------------------------------------------------------------------------------
// person report

#[derive(Serialize)]
struct PersonOut {
    id: i64,
    pseudonym: String,
    name: Option<String>,
    born: Option<String>,
    reference: Option<String>,
    erased: bool,
}

#[derive(Serialize)]
struct Related {
    person: i64,
    name: String,
}

#[derive(Serialize)]
struct ConsentOut {
    #[serde(flatten)]
    event: EventRow,
    /// The evidence file in this report, if there is one.
    evidence_file: Option<String>,
}

#[derive(Serialize)]
struct PhotoOut {
    asset: i64,
    path: String,
    status: Status,
    linked_now: bool,
    /// How many other persons are linked (their names are theirs, not part of this report).
    other_persons: usize,
    versions: usize,
    imported_at: Time,
    retention_until: Option<Time>,
    /// The photo in this report (current version), unless it was shredded.
    file: Option<String>,
}

#[derive(Serialize)]
struct ExportOut {
    export: i64,
    at: Time,
    by: String,
    user: String,
    purpose: String,
    asset: i64,
    path: String,
    /// `completed`, `failed` or `interrupted` (started, never finished: the photo may have
    /// been written before the run was killed).
    outcome: exports::Outcome,
}

#[derive(Serialize)]
struct Report {
    generated_at: Time,
    generated_by: String,
    person: PersonOut,
    guardians: Vec<Related>,
    guardian_of: Vec<Related>,
    consents: Vec<ConsentOut>,
    photos: Vec<PhotoOut>,
    exports: Vec<ExportOut>,
    accesses: Vec<audit::Access>,
}

fn label_of(conn: &Connection, id: i64) -> Result<String> {
    Ok(persons::get(conn, id)?
        .map(|p| p.label())
        .unwrap_or_default())
}

/// Decrypt an object whole (evidence, a photo) for the report.
fn decrypt(ctx: &Ctx, object: &str, label: &str) -> Result<Option<Vec<u8>>> {
    let row: Option<(Option<Vec<u8>>, i64)> = ctx
        .catalog
        .conn()
        .query_row(
            "SELECT wrapped_key, size FROM objects WHERE id = ?1",
            [object],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (Some((Some(wrapped), size)), Some(id)) = (row, ObjectId::parse(object)) else {
        return Ok(None);
    };
    let obj = ctx.store.open_object(&id, &wrapped, size as u64, label)?;
    let mut out = Vec::with_capacity(size as usize);
    obj.copy_verified_to(&mut out)?;
    Ok(Some(out))
}

/// A file name for the report: `<id>-<name>` when the name is usable, else `<id>`.
fn file_name(id: i64, name: &str) -> String {
    let n = format!("{id}-{name}");
    if check_name(&n).is_ok() && !name.is_empty() {
        n
    } else {
        id.to_string()
    }
}

/// `person report`: everything the store holds about a person, with their photos and evidence
/// decrypted, into a new folder.
///
/// The report is recorded (`report.started`) before the first decrypted byte and its end
/// (`person.report`, or `report.failed`) after the index; the files are written into a private
/// folder next to the destination and moved into place only when complete (see
/// [`export::staging`]). On any error what was written is removed; a re-run after a kill
/// replaces the interrupted folder.
pub fn report(ctx: &mut Ctx, person: &str, dest: &Path) -> Result<i32> {
    let abs = export::check_destination(dest, ctx.store.root())?;
    let key = ctx.store.manifest_key();
    let p = persons::resolve(ctx.catalog.conn(), person)?;
    let interrupted = export::staging::clear_interrupted(&abs, &key)?;
    export::record_interrupted(&mut ctx.catalog, &ctx.actor, ctx.now, &interrupted)?;
    if abs.exists()
        && std::fs::read_dir(&abs)
            .map_err(|e| Error::io_path("read", &abs, e))?
            .next()
            .is_some()
    {
        return Err(Error::invalid(format!(
            "{} is not empty; choose a new or empty folder for the report",
            dest.display()
        )));
    }
    let conn = ctx.catalog.conn();
    let planned_evidence = consents::list(conn, Some(p.id))?
        .iter()
        .filter(|e| e.evidence_object.is_some())
        .count();
    let planned_photos = assets_ever_linked(conn, p.id)?.len();
    // where the files go until they are complete, marked as this run's before the record
    let marker = export::staging::Marker::new("report", true);
    let staged = export::staging::Staging::new(&abs, &key, &marker)?;
    let started = (|| -> Result<i64> {
        let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
        let seq = tx.audit(
            "report.started",
            serde_json::json!({
                "person": p.id,
                "run": marker.run,
                "photos": planned_photos,
                "evidence": planned_evidence,
            }),
        )?;
        tx.commit()?;
        Ok(seq)
    })();
    let started = match started {
        Ok(s) => s,
        Err(e) => {
            staged.discard();
            return Err(e);
        }
    };
    let written = match write_report(ctx, &p, staged.dir()) {
        Ok(report) => staged
            .place(Modes::PRIVATE.dir)
            .map(|placed| (report, placed)),
        Err(e) => {
            staged.discard();
            Err(e)
        }
    };
    let (report, placed) = match written {
        Ok(r) => r,
        Err(e) => {
            let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
            tx.audit(
                "report.failed",
                serde_json::json!({
                    "person": p.id,
                    "started": started,
                    "reason": export::reason_of(&e),
                }),
            )?;
            tx.commit()?;
            return Err(e);
        }
    };
    // the outcome before the marker goes: a report without a marker has a completed record
    let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
    tx.audit(
        "person.report",
        serde_json::json!({
            "person": p.id,
            "started": started,
            "photos": report.photos.iter().filter(|f| f.file.is_some()).count(),
            "evidence": report.consents.iter().filter(|c| c.evidence_file.is_some()).count(),
        }),
    )?;
    tx.commit()?;
    placed.unmark()?;
    if ctx.json {
        output::json(&serde_json::json!({
            "person": p.id,
            "dest": abs.display().to_string(),
            "consents": report.consents.len(),
            "photos": report.photos.len(),
            "exports": report.exports.len(),
            "accesses": report.accesses.len(),
        }))?;
    } else {
        println!(
            "report on #{} written to {}: {} consent event(s), {} photo(s), {} export item(s), {} access(es); open index.html",
            p.id,
            abs.display(),
            report.consents.len(),
            report.photos.len(),
            report.exports.len(),
            report.accesses.len()
        );
    }
    Ok(0)
}

/// Write the report's files into `dir` (evidence, photos, then the index last).
fn write_report(ctx: &Ctx, p: &persons::PersonRow, dir: &cap_std::fs::Dir) -> Result<Report> {
    let conn = ctx.catalog.conn();
    let erased: bool = conn.query_row(
        "SELECT erased_at IS NOT NULL FROM persons WHERE id = ?1",
        [p.id],
        |r| r.get(0),
    )?;
    let guardians = p
        .guardians
        .iter()
        .map(|g| {
            Ok(Related {
                person: *g,
                name: label_of(conn, *g)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let wards: Vec<i64> = conn
        .prepare("SELECT person_id FROM guardians WHERE guardian_id = ?1 ORDER BY person_id")?
        .query_map([p.id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let guardian_of = wards
        .iter()
        .map(|w| {
            Ok(Related {
                person: *w,
                name: label_of(conn, *w)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut consents_out = Vec::new();
    for e in consents::list(conn, Some(p.id))? {
        let mut evidence_file = None;
        if let Some(obj) = &e.evidence_object {
            let label = format!("evidence of consent event {}", e.id);
            if let Some(bytes) = decrypt(ctx, obj, &label)? {
                let f = format!(
                    "evidence/{}",
                    file_name(e.id, e.evidence.as_deref().unwrap_or(""))
                );
                export::write_atomic(dir, &f, &bytes, Modes::PRIVATE)?;
                evidence_file = Some(f);
            }
        }
        consents_out.push(ConsentOut {
            event: e,
            evidence_file,
        });
    }
    let linked_now: HashSet<i64> = conn
        .prepare("SELECT asset_id FROM links WHERE person_id = ?1")?
        .query_map([p.id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut ever: Vec<i64> = assets_ever_linked(conn, p.id)?.into_iter().collect();
    ever.sort();
    let mut photos = Vec::new();
    for id in &ever {
        let Some(a) = assets::get(conn, *id)? else {
            continue;
        };
        let versions = assets::versions(conn, a.id)?;
        let mut file = None;
        if a.status != Status::Purged {
            if let Ok(v) = assets::version(conn, a.id, None) {
                let label = format!("asset {} version {}", a.id, v.version);
                if let Some(bytes) = decrypt(ctx, &v.object.hex(), &label)? {
                    let f = format!("photos/{}", file_name(a.id, &a.name));
                    export::write_atomic(dir, &f, &bytes, Modes::PRIVATE)?;
                    file = Some(f);
                }
            }
        }
        photos.push(PhotoOut {
            asset: a.id,
            path: a.path(),
            status: a.status,
            linked_now: linked_now.contains(&a.id),
            other_persons: a.persons.iter().filter(|q| **q != p.id).count(),
            versions: versions.len(),
            imported_at: a.created_at,
            retention_until: a.retention_until,
            file,
        });
    }
    let ever_set: HashSet<i64> = ever.iter().copied().collect();
    let mut exports = Vec::new();
    let mut st = conn.prepare(
        "SELECT e.id, e.at, e.actor, e.login, p.name, i.asset_id, i.path
           FROM export_items i JOIN exports e ON e.id = i.export_id
           JOIN purposes p ON p.id = e.purpose_id ORDER BY e.id, i.asset_id",
    )?;
    let rows = st.query_map([], |r| {
        Ok(ExportOut {
            export: r.get(0)?,
            at: when::from_secs(r.get(1)?),
            by: r.get(2)?,
            user: r.get(3)?,
            purpose: r.get(4)?,
            asset: r.get(5)?,
            path: r.get(6)?,
            outcome: exports::Outcome::Completed,
        })
    })?;
    let mut outcomes = std::collections::HashMap::new();
    for r in rows {
        let mut r = r?;
        if ever_set.contains(&r.asset) {
            r.outcome = match outcomes.get(&r.export) {
                Some(o) => *o,
                None => *outcomes
                    .entry(r.export)
                    .or_insert(exports::outcome(conn, r.export)?),
            };
            exports.push(r);
        }
    }
    drop(st);
    let accesses = audit::accesses(conn, &ever_set, when::from_secs(0))?;
    let report = Report {
        generated_at: ctx.now,
        generated_by: ctx.actor.clone(),
        person: PersonOut {
            id: p.id,
            pseudonym: p.pseudonym.clone(),
            name: p.name.clone(),
            born: p.born.map(|b| b.to_string()),
            reference: p.ext_ref.clone(),
            erased,
        },
        guardians,
        guardian_of,
        consents: consents_out,
        photos,
        exports,
        accesses,
    };
    let json = serde_json::to_vec_pretty(&report)
        .map_err(|e| Error::invalid(format!("cannot write the report: {e}")))?;
    export::write_atomic(dir, "index.json", &json, Modes::PRIVATE)?;
    export::write_atomic(dir, "index.html", html(&report).as_bytes(), Modes::PRIVATE)?;
    Ok(report)
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A link to a file of the report: every path segment percent-encoded.
fn href(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            seg.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn table(out: &mut String, header: &[&str], rows: Vec<Vec<String>>) {
    out.push_str("<table><tr>");
    for h in header {
        out.push_str(&format!("<th>{}</th>", esc(h)));
    }
    out.push_str("</tr>\n");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            // cells are escaped by the caller (some hold links)
            out.push_str(&format!("<td>{c}</td>"));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

fn html(r: &Report) -> String {
    let who = r
        .person
        .name
        .clone()
        .unwrap_or_else(|| format!("erased person {}", r.person.pseudonym));
    let mut o = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>What we hold about {w}</title>\
         <style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #999;padding:.2em .5em;text-align:left;vertical-align:top}}</style></head><body>\n\
         <h1>What we hold about {w}</h1>\n<p>Generated {t} by {b}. The same data is in index.json.</p>\n",
        w = esc(&who),
        t = esc(&when::show(r.generated_at)),
        b = esc(&r.generated_by)
    );
    o.push_str("<h2>Person</h2>\n");
    let p = &r.person;
    table(
        &mut o,
        &["id", "name", "born", "reference", "pseudonym", "erased"],
        vec![vec![
            p.id.to_string(),
            esc(p.name.as_deref().unwrap_or("")),
            esc(p.born.as_deref().unwrap_or("")),
            esc(p.reference.as_deref().unwrap_or("")),
            esc(&p.pseudonym),
            if p.erased { "yes" } else { "no" }.into(),
        ]],
    );
    if !r.guardians.is_empty() || !r.guardian_of.is_empty() {
        o.push_str("<h2>Guardians</h2>\n");
        let mut rows: Vec<Vec<String>> = r
            .guardians
            .iter()
            .map(|g| vec!["guardian".into(), format!("#{} {}", g.person, esc(&g.name))])
            .collect();
        rows.extend(r.guardian_of.iter().map(|g| {
            vec![
                "guardian of".into(),
                format!("#{} {}", g.person, esc(&g.name)),
            ]
        }));
        table(&mut o, &["relation", "person"], rows);
    }
    o.push_str("<h2>Consent history</h2>\n");
    table(
        &mut o,
        &[
            "event", "what", "purposes", "scope", "from", "until", "given by", "recorded",
            "evidence",
        ],
        r.consents
            .iter()
            .map(|c| {
                let e = &c.event;
                vec![
                    e.id.to_string(),
                    esc(e.kind.as_str()),
                    esc(&e.purposes.join(", ")),
                    esc(&match e.scope.as_str() {
                        "collection" => {
                            format!("collection {}", e.collection.clone().unwrap_or_default())
                        }
                        "assets" => format!(
                            "photos {}",
                            e.assets
                                .iter()
                                .map(|a| a.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        _ => "all photos".into(),
                    }),
                    esc(&when::show(e.starts)),
                    esc(&e.expires.map(when::show).unwrap_or_default()),
                    format!("#{}", e.given_by),
                    esc(&format!(
                        "{} by {}",
                        when::show(e.recorded_at),
                        e.recorded_by
                    )),
                    c.evidence_file
                        .as_ref()
                        .map(|f| format!("<a href=\"{}\">{}</a>", href(f), esc(f)))
                        .unwrap_or_default(),
                ]
            })
            .collect(),
    );
    o.push_str("<h2>Photos</h2>\n");
    table(
        &mut o,
        &[
            "asset",
            "path",
            "status",
            "linked now",
            "others on it",
            "versions",
            "file",
        ],
        r.photos
            .iter()
            .map(|ph| {
                vec![
                    ph.asset.to_string(),
                    esc(&ph.path),
                    esc(ph.status.as_str()),
                    if ph.linked_now { "yes" } else { "no" }.into(),
                    ph.other_persons.to_string(),
                    ph.versions.to_string(),
                    ph.file
                        .as_ref()
                        .map(|f| format!("<a href=\"{}\">{}</a>", href(f), esc(f)))
                        .unwrap_or_else(|| "shredded".into()),
                ]
            })
            .collect(),
    );
    o.push_str("<h2>Exports that included these photos</h2>\n");
    table(
        &mut o,
        &[
            "export", "when", "by", "view of", "purpose", "asset", "as", "outcome",
        ],
        r.exports
            .iter()
            .map(|e| {
                vec![
                    e.export.to_string(),
                    esc(&when::show(e.at)),
                    esc(&e.by),
                    esc(&e.user),
                    esc(&e.purpose),
                    e.asset.to_string(),
                    esc(&e.path),
                    e.outcome.as_str().into(),
                ]
            })
            .collect(),
    );
    o.push_str("<h2>Who opened these photos</h2>\n");
    table(
        &mut o,
        &["when", "who", "what", "view of", "purpose", "asset"],
        r.accesses
            .iter()
            .map(|a| {
                vec![
                    esc(&when::show(a.at)),
                    esc(&a.actor),
                    esc(&a.action),
                    esc(a.user.as_deref().unwrap_or("")),
                    esc(a.purpose.as_deref().unwrap_or("")),
                    a.asset.to_string(),
                ]
            })
            .collect(),
    );
    o.push_str("</body></html>\n");
    o
}

// ---------------------------------------------------------------------------------------------
// person erase

#[derive(Serialize)]
struct PhotoRef {
    asset: i64,
    path: String,
    persons: usize,
}

#[derive(Serialize)]
struct EraseOut {
    applied: bool,
    person: i64,
    pseudonym: String,
    /// Photos shredded (or, in a dry run, to be shredded).
    shredded: Vec<PhotoRef>,
    /// Group photos showing the person that are kept (decide with --include-group-photos).
    group_photos_kept: Vec<PhotoRef>,
}

pub fn erase(ctx: &mut Ctx, person: &str, yes: bool, include_group: bool) -> Result<i32> {
    let conn = ctx.catalog.conn();
    let p = persons::resolve(conn, person)?;
    let linked: Vec<AssetRow> = conn
        .prepare("SELECT asset_id FROM links WHERE person_id = ?1 ORDER BY asset_id")?
        .query_map([p.id], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .map(|id| assets::get(conn, id))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .filter(|a| a.status != Status::Purged)
        .collect();
    let (solo, group): (Vec<&AssetRow>, Vec<&AssetRow>) =
        linked.iter().partition(|a| a.persons == [p.id]);
    let r = |a: &&AssetRow| PhotoRef {
        asset: a.id,
        path: a.path(),
        persons: a.persons.len(),
    };
    let mut out = EraseOut {
        applied: yes,
        person: p.id,
        pseudonym: p.pseudonym.clone(),
        shredded: solo.iter().map(r).collect(),
        group_photos_kept: Vec::new(),
    };
    if include_group {
        out.shredded.extend(group.iter().map(r));
    } else {
        out.group_photos_kept = group.iter().map(r).collect();
    }
    if yes {
        let all_purposes: Vec<i64> = purposes::list(conn)?.iter().map(|p| p.id).collect();
        let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
        if !all_purposes.is_empty() {
            consents::record(
                &tx,
                &NewEvent {
                    person: p.id,
                    kind: EventKind::Withdraw,
                    purposes: all_purposes,
                    scope: Scope::All,
                    starts: ctx.now,
                    expires: None,
                    given_by: p.id,
                    explicit: false,
                    evidence: None,
                },
            )?;
        }
        for s in &out.shredded {
            let purged = assets::purge(&tx, s.asset)?;
            // a file name often carries the person's name: it goes with the photo (and with
            // copies of it, such as an editor's backup file)
            for a in purged {
                tx.execute(
                    "UPDATE assets SET name = 'erased-' || id WHERE id = ?1",
                    [a],
                )?;
            }
        }
        persons::erase(&tx, p.id)?;
        tx.commit()?;
        // the purge queued the files in its transaction; a kill from here on leaves the queue
        crate::shred::work_off(&ctx.store, &mut ctx.catalog, &ctx.actor)?;
        // the name, birth date and reference are still in the WAL's older pages
        ctx.catalog.checkpoint();
    }
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
    if yes {
        println!(
            "person #{} erased: name, birth date and reference removed; consent withdrawn for every purpose; consent history kept as {}",
            p.id, p.pseudonym
        );
    } else {
        println!(
            "dry run: nothing changed; run again with --yes to erase #{} (name, birth date and reference are removed, the consent history stays as {})",
            p.id, p.pseudonym
        );
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// consent receipt

fn person_node(conn: &Connection, id: i64, role: &str) -> Result<serde_json::Value> {
    let p = persons::get(conn, id)?
        .ok_or_else(|| Error::not_found(format!("person #{id} is not in the catalog")))?;
    let mut node = serde_json::json!({
        "@id": format!("urn:consentfs:person:{}", p.pseudonym),
        "@type": role,
        "dct:identifier": format!("#{}", p.id),
    });
    if let Some(n) = &p.name {
        node["dct:title"] = serde_json::json!(n);
    }
    Ok(node)
}

pub fn receipt(ctx: &Ctx, event: i64) -> Result<i32> {
    let conn = ctx.catalog.conn();
    let e = consents::list(conn, None)?
        .into_iter()
        .find(|e| e.id == event)
        .ok_or_else(|| {
            Error::not_found(format!(
                "no consent event {event}; see `consentfs consent list`"
            ))
        })?;
    let status = match e.kind {
        EventKind::Grant => "dpv:ConsentGiven",
        EventKind::Withdraw => "dpv:ConsentWithdrawn",
        EventKind::Refuse => "dpv:ConsentRefused",
        EventKind::Object => {
            return Err(Error::invalid(format!(
                "event {event} is an objection, not a consent; it has no consent receipt (see `consentfs consent list`)"
            )))
        }
    };
    let subject = person_node(conn, e.person, "dpv:DataSubject")?;
    let indicated_by = if e.given_by == e.person {
        subject.clone()
    } else {
        person_node(conn, e.given_by, "dpv:Guardian")?
    };
    let mut consent_types = vec!["dpv:Consent"];
    if e.kind == EventKind::Grant {
        consent_types.push(if e.explicit {
            "dpv:ExplicitlyExpressedConsent"
        } else {
            "dpv:ExpressedConsent"
        });
    }
    let purposes: Vec<serde_json::Value> = e
        .purposes
        .iter()
        .map(|p| {
            serde_json::json!({
                "@id": format!("urn:consentfs:purpose:{}", href(p)),
                "@type": "dpv:Purpose",
                "dct:title": p,
            })
        })
        .collect();
    let t = |t: Time| serde_json::json!({ "@value": t.to_rfc3339(), "@type": "xsd:dateTime" });
    let scope = match e.scope.as_str() {
        "collection" => serde_json::json!({ "collection": e.collection }),
        "assets" => serde_json::json!({ "assets": e.assets }),
        _ => serde_json::json!("all photos of the data subject"),
    };
    let mut r = serde_json::json!({
        "@context": {
            "dpv": "https://w3id.org/dpv#",
            "dct": "http://purl.org/dc/terms/",
            "xsd": "http://www.w3.org/2001/XMLSchema#",
            "consentfs": "urn:consentfs:vocab:"
        },
        "@id": format!("urn:consentfs:consent-event:{}", e.id),
        "@type": consent_types,
        "dpv:hasConsentStatus": { "@id": status },
        "dpv:hasDataSubject": subject,
        "dpv:hasPurpose": purposes,
        "dpv:isIndicatedBy": indicated_by,
        "dpv:isIndicatedAtTime": t(e.starts),
        "dct:created": t(e.recorded_at),
        "dct:creator": e.recorded_by,
        "consentfs:scope": scope,
    });
    if let Some(end) = e.expires {
        r["dpv:hasExpiry"] =
            serde_json::json!({ "@type": "dpv:ExpiryTime", "dpv:hasValue": t(end) });
    }
    if let Some(name) = &e.evidence {
        r["dpv:hasEvidence"] = serde_json::json!({
            "@type": "dpv:Evidence",
            "dct:title": name,
            "dct:description": "stored encrypted in the consentfs store; `consentfs person report` exports it",
        });
    }
    output::json(&r)?;
    Ok(0)
}
