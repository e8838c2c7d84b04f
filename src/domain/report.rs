//! What a person can ask to see (Art. 15 GDPR): `person report` writes everything the store
//! holds about them into a folder (index.json, index.html, their evidence and photos), and
//! [`accesses`] says who used their photos (for a breach report).

use super::{report_html, Session};
use crate::catalog::assets::{self, check_name};
use crate::catalog::audit;
use crate::catalog::consents::{self, EventRow};
use crate::catalog::{exports, persons};
use crate::crypto::object::ObjectId;
use crate::error::{Error, Result};
use crate::export::{self, Modes};
use crate::policy::{Status, Time};
use crate::when::{self, Span};
use rusqlite::Connection;
use serde::Serialize;
use std::collections::HashSet;
use std::path::Path;

/// A report written: where, and how much it holds (what the front end tells the officer).
/// Fields in name order, as `--json` has always shown them.
#[derive(Serialize, Debug)]
pub struct Written {
    pub accesses: usize,
    pub consents: usize,
    pub dest: String,
    pub exports: usize,
    pub person: i64,
    pub photos: usize,
}

/// Assets linked to a person now, plus those linked earlier (from the audit log), so a report
/// also covers photos the person was unlinked from.
fn assets_ever_linked(conn: &Connection, person: i64) -> Result<HashSet<i64>> {
    let mut out: HashSet<i64> = assets::linked_to(conn, person)?.into_iter().collect();
    out.extend(audit::ever_linked(conn, person)?);
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

/// Who used a person's photos since a moment (for a breach report or the person's request).
#[derive(Debug)]
pub struct Accesses {
    pub person: i64,
    pub since: Time,
    /// Oldest first.
    pub list: Vec<audit::Access>,
}

/// Every open through the mount, `cat` and export of a photo `person` is or was on, since
/// `since` as typed (a date, RFC 3339 or a span back from now such as `72h`; default: ever).
pub fn accesses(s: &Session, person: &str, since: Option<&str>) -> Result<Accesses> {
    let conn = s.catalog.conn();
    let p = persons::resolve(conn, person)?;
    let since = since_time(since, s.now)?;
    let linked = assets_ever_linked(conn, p.id)?;
    Ok(Accesses {
        person: p.id,
        since,
        list: audit::accesses(conn, &linked, since)?,
    })
}

// ---------------------------------------------------------------------------------------------
// person report

#[derive(Serialize)]
pub(super) struct PersonOut {
    pub(super) id: i64,
    pub(super) pseudonym: String,
    pub(super) name: Option<String>,
    pub(super) born: Option<String>,
    pub(super) reference: Option<String>,
    /// Where their consent-page links and receipts are mailed.
    pub(super) email: Option<String>,
    pub(super) erased: bool,
}

#[derive(Serialize)]
pub(super) struct Related {
    pub(super) person: i64,
    pub(super) name: String,
}

#[derive(Serialize)]
pub(super) struct ConsentOut {
    #[serde(flatten)]
    pub(super) event: EventRow,
    /// The evidence file in this report, if there is one.
    pub(super) evidence_file: Option<String>,
}

#[derive(Serialize)]
pub(super) struct PhotoOut {
    pub(super) asset: i64,
    pub(super) path: String,
    pub(super) status: Status,
    pub(super) linked_now: bool,
    /// How many other persons are linked (their names are theirs, not part of this report).
    pub(super) other_persons: usize,
    pub(super) versions: usize,
    pub(super) imported_at: Time,
    pub(super) retention_until: Option<Time>,
    /// The photo in this report (current version), unless it was shredded.
    pub(super) file: Option<String>,
}

#[derive(Serialize)]
pub(super) struct ExportOut {
    pub(super) export: i64,
    pub(super) at: Time,
    pub(super) by: String,
    pub(super) user: String,
    pub(super) purpose: String,
    pub(super) asset: i64,
    pub(super) path: String,
    /// `completed`, `failed` or `interrupted` (started, never finished: the photo may have
    /// been written before the run was killed).
    pub(super) outcome: exports::Outcome,
}

#[derive(Serialize)]
pub(super) struct Report {
    pub(super) generated_at: Time,
    pub(super) generated_by: String,
    pub(super) person: PersonOut,
    pub(super) guardians: Vec<Related>,
    pub(super) guardian_of: Vec<Related>,
    pub(super) consents: Vec<ConsentOut>,
    pub(super) photos: Vec<PhotoOut>,
    pub(super) exports: Vec<ExportOut>,
    pub(super) accesses: Vec<audit::Access>,
}

fn label_of(conn: &Connection, id: i64) -> Result<String> {
    Ok(persons::get(conn, id)?
        .map(|p| p.label())
        .unwrap_or_default())
}

/// Decrypt an object whole (evidence, a photo) for the report.
fn decrypt(s: &Session, object: &str, label: &str) -> Result<Option<Vec<u8>>> {
    let row = assets::object_key(s.catalog.conn(), object)?;
    let (Some((Some(wrapped), size)), Some(id)) = (row, ObjectId::parse(object)) else {
        return Ok(None);
    };
    let obj = s.store.open_object(&id, &wrapped, size as u64, label)?;
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
pub fn report(s: &mut Session, person: &str, dest: &Path) -> Result<Written> {
    let abs = export::check_destination(dest, s.store.root())?;
    let key = s.store.manifest_key();
    let p = persons::resolve(s.catalog.conn(), person)?;
    let interrupted = export::staging::clear_interrupted(&abs, &key)?;
    export::record_interrupted(s.catalog, s.actor, s.now, &interrupted)?;
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
    let conn = s.catalog.conn();
    let planned_evidence = consents::list(conn, Some(p.id))?
        .iter()
        .filter(|e| e.evidence_object.is_some())
        .count();
    let planned_photos = assets_ever_linked(conn, p.id)?.len();
    // where the files go until they are complete, marked as this run's before the record
    let marker = export::staging::Marker::new("report", true);
    let staged = export::staging::Staging::new(&abs, &key, &marker)?;
    let started = (|| -> Result<i64> {
        let tx = s.catalog.begin(s.actor, s.now)?;
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
    let written = match write_report(s, &p, staged.dir()) {
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
            let tx = s.catalog.begin(s.actor, s.now)?;
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
    let tx = s.catalog.begin(s.actor, s.now)?;
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
    Ok(Written {
        person: p.id,
        dest: abs.display().to_string(),
        consents: report.consents.len(),
        photos: report.photos.len(),
        exports: report.exports.len(),
        accesses: report.accesses.len(),
    })
}

/// Write the report's files into `dir` (evidence, photos, then the index last).
fn write_report(s: &Session, p: &persons::PersonRow, dir: &cap_std::fs::Dir) -> Result<Report> {
    let conn = s.catalog.conn();
    let erased = persons::is_erased(conn, p.id)?;
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
    let wards = persons::wards_of(conn, p.id)?;
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
            if let Some(bytes) = decrypt(s, obj, &label)? {
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
    let linked_now: HashSet<i64> = assets::linked_to(conn, p.id)?.into_iter().collect();
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
                if let Some(bytes) = decrypt(s, &v.object.hex(), &label)? {
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
    let mut outcomes = std::collections::HashMap::new();
    for item in exports::all_items(conn)? {
        if !ever_set.contains(&item.asset) {
            continue;
        }
        let outcome = match outcomes.get(&item.export) {
            Some(o) => *o,
            None => *outcomes
                .entry(item.export)
                .or_insert(exports::outcome(conn, item.export)?),
        };
        exports.push(ExportOut {
            export: item.export,
            at: when::from_secs(item.at),
            by: item.by,
            user: item.user,
            purpose: item.purpose,
            asset: item.asset,
            path: item.path,
            outcome,
        });
    }
    let accesses = audit::accesses(conn, &ever_set, when::from_secs(0))?;
    let report = Report {
        generated_at: s.now,
        generated_by: s.actor.to_string(),
        person: PersonOut {
            id: p.id,
            pseudonym: p.pseudonym.clone(),
            name: p.name.clone(),
            born: p.born.map(|b| b.to_string()),
            reference: p.ext_ref.clone(),
            email: crate::catalog::persons::email_of(conn, p.id)?,
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
    export::write_atomic(
        dir,
        "index.html",
        report_html::html(&report)?.as_bytes(),
        Modes::PRIVATE,
    )?;
    Ok(report)
}
