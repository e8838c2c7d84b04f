//! The export records: which file of which asset version went where, under which manifest MAC.
//!
//! An export is recorded twice: when it starts (the `exports` row, the files it is about to
//! write as `export_items`, and an `export.started` audit entry, all committed before the first
//! decrypted byte is written) and when it ends (the row and items updated to what the
//! destination holds, and an `export` or `export.failed` audit entry). A run killed in between
//! keeps its start record, so a person's report still says where their photos may have gone;
//! [`outcome`] tells the three cases apart without a schema change.

use crate::error::Result;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

/// One file planned for, or written by, an export.
pub struct Item<'a> {
    pub asset: i64,
    pub version: i64,
    pub path: &'a str,
    /// Empty while only planned (the export has not written it yet).
    pub sha256: &'a str,
}

/// What became of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It finished and its manifest was written.
    Completed,
    /// It failed; what it had written was removed (or, before this was recorded, kept).
    Failed,
    /// It started and never recorded an end: killed, or the machine stopped. Its files may be
    /// in a `.consentfs-partial` folder next to the destination until a re-run removes it.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// One file of one export, as a person's report lists it.
pub struct ItemRow {
    pub export: i64,
    pub at: i64,
    /// Who ran the export.
    pub by: String,
    /// Whose view was exported.
    pub user: String,
    pub purpose: String,
    pub asset: i64,
    pub path: String,
}

/// Every file of every export, by export and asset.
pub fn all_items(conn: &Connection) -> Result<Vec<ItemRow>> {
    let mut st = conn.prepare(
        "SELECT e.id, e.at, e.actor, e.login, p.name, i.asset_id, i.path
           FROM export_items i JOIN exports e ON e.id = i.export_id
           JOIN purposes p ON p.id = e.purpose_id ORDER BY e.id, i.asset_id",
    )?;
    let rows = st
        .query_map([], |r| {
            Ok(ItemRow {
                export: r.get(0)?,
                at: r.get(1)?,
                by: r.get(2)?,
                user: r.get(3)?,
                purpose: r.get(4)?,
                asset: r.get(5)?,
                path: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The new export's row (its MAC empty until it ends); returns its id.
#[allow(clippy::too_many_arguments)]
pub fn start(
    conn: &Connection,
    at: i64,
    actor: &str,
    login: &str,
    purpose: i64,
    collection: &str,
    dest: &str,
    items: &[Item],
) -> Result<i64> {
    conn.prepare_cached("INSERT INTO exports (at, actor, login, purpose_id, collection, dest, files, mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '')")?.execute(rusqlite::params![at, actor, login, purpose, collection, dest, items.len() as i64])?;
    let id = conn.last_insert_rowid();
    set_items(conn, id, items)?;
    Ok(id)
}

/// Replace the export's items by `items` (what the destination holds now).
pub fn set_items(conn: &Connection, id: i64, items: &[Item]) -> Result<()> {
    conn.prepare_cached("DELETE FROM export_items WHERE export_id = ?1")?
        .execute([id])?;
    let mut st = conn.prepare_cached(
        "INSERT INTO export_items (export_id, asset_id, version, path, sha256) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for f in items {
        st.execute(rusqlite::params![id, f.asset, f.version, f.path, f.sha256])?;
    }
    Ok(())
}

/// The export ended: its file count and manifest MAC.
pub fn finish(conn: &Connection, id: i64, files: usize, mac: &str) -> Result<()> {
    conn.prepare_cached("UPDATE exports SET files = ?1, mac = ?2 WHERE id = ?3")?
        .execute(rusqlite::params![files as i64, mac, id])?;
    Ok(())
}

/// What became of export `id`, from its last outcome entry in the audit log. Exports recorded
/// before start records existed only have an `export` entry (with `complete` false when they
/// failed half-way).
pub fn outcome(conn: &Connection, id: i64) -> Result<Outcome> {
    let last: Option<(String, Option<bool>)> = conn
        .prepare_cached(
            "SELECT action, json_extract(detail, '$.complete') FROM audit
              WHERE action IN ('export', 'export.failed') AND json_extract(detail, '$.export') = ?1
              ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match last {
        None => Outcome::Interrupted,
        Some((a, complete)) if a == "export" && complete != Some(false) => Outcome::Completed,
        Some(_) => Outcome::Failed,
    })
}

/// Whether the person report that started with audit entry `started` recorded an end.
pub fn report_ended(conn: &Connection, started: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM audit WHERE action IN ('person.report', 'report.failed')
                AND json_extract(detail, '$.started') = ?1 LIMIT 1",
        )?
        .query_row([started], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The start record of the run named `run` (the name in its partial folder's marker).
pub struct Started {
    /// The audit entry (`export.started` or `report.started`).
    pub seq: i64,
    pub action: String,
    pub export: Option<i64>,
    pub person: Option<i64>,
}

/// The start record of run `run`, if it was committed.
pub fn started_run(conn: &Connection, run: &str) -> Result<Option<Started>> {
    Ok(conn
        .prepare_cached(
            "SELECT seq, action, json_extract(detail, '$.export'), json_extract(detail, '$.person')
               FROM audit WHERE action IN ('export.started', 'report.started')
                AND json_extract(detail, '$.run') = ?1
              ORDER BY seq LIMIT 1",
        )?
        .query_row([run], |r| {
            Ok(Started {
                seq: r.get(0)?,
                action: r.get(1)?,
                export: r.get(2)?,
                person: r.get(3)?,
            })
        })
        .optional()?)
}
