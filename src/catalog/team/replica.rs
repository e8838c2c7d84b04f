//! This machine's copy of a team library's catalog: which change of the log it holds, how a
//! transaction's change is recorded (an SQLite session, as a patchset), and how the log's
//! changes and snapshots are brought in.

use super::log::After;
use super::Link;
use crate::crypto::Key;
use crate::error::{Error, Result};
use rusqlite::session::{ConflictAction, ConflictType, Session};
use rusqlite::Connection;
use std::path::Path;

/// The table that says which change the copy holds; never part of a change itself.
const TABLE: &str = "team_replica";

/// The number of the last change of the log this copy holds (0: none yet).
pub fn applied(conn: &Connection) -> Result<i64> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .query_row("SELECT seq FROM team_replica WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0))
}

/// Record that the copy holds every change up to `seq` (inside the transaction that applied
/// or made it).
pub fn set_applied(conn: &Connection, seq: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO team_replica (id, seq) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq",
        [seq],
    )?;
    Ok(())
}

/// Start recording a transaction's changes to every table but [`TABLE`].
pub fn record(conn: &Connection) -> Result<Session<'_>> {
    let mut s = Session::new(conn)?;
    s.table_filter(Some(|t: &str| t != TABLE));
    s.attach(None)?;
    Ok(s)
}

/// What a recorded transaction changed, as a patchset: inserted rows whole, updated rows as
/// their key and new values, deleted rows as their key only (so the change that erases a
/// person does not carry what it erased).
pub fn patchset(session: &mut Session<'_>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    session.patchset_strm(&mut out)?;
    Ok(out)
}

/// Apply change `seq` of the log (inside a write transaction). The copy must hold exactly the
/// state the change was made on: any conflict means it does not, and nothing is applied.
pub fn apply(conn: &Connection, seq: i64, patchset: &[u8]) -> Result<()> {
    let mut input: &[u8] = patchset;
    let r = conn.apply_strm(
        &mut input,
        None::<fn(&str) -> bool>,
        |kind: ConflictType, _item| {
            log::error!("team catalog: change conflicts with this machine's copy ({kind:?})");
            ConflictAction::SQLITE_CHANGESET_ABORT
        },
    );
    r.map_err(|e| {
        Error::integrity(
            "team catalog",
            format!(
                "change {seq} of the library does not apply to this machine's copy of the catalog ({e}); remove the replica folder and run any command to fetch the library anew"
            ),
        )
    })?;
    set_applied(conn, seq)
}

/// Apply the log's changes after the copy's, inside the caller's write transaction, up to
/// the log's head. `None`: the copy is behind a compaction and must load the newest snapshot
/// first ([`load_snapshot`], outside any transaction). Otherwise the number of the last change
/// the copy now holds.
pub fn apply_pending(conn: &Connection, link: &mut Link) -> Result<Option<i64>> {
    let mut seq = applied(conn)?;
    loop {
        match link.after(seq)? {
            After::Changes(changes) if changes.is_empty() => return Ok(Some(seq)),
            After::Changes(changes) => {
                for (n, body) in changes {
                    apply(conn, n, &body)?;
                    seq = n;
                }
            }
            After::Snapshot(_) => return Ok(None),
        }
    }
}

/// Replace the whole copy open on `conn` (not inside a transaction) with the library's newest
/// snapshot, through SQLite's online backup into the live file, so that other connections
/// see it like any commit. Returns the snapshot's change number.
pub fn load_snapshot(conn: &mut Connection, link: &mut Link, key: &Key, dir: &Path) -> Result<i64> {
    let Some((seq, file)) = link.latest_snapshot()? else {
        return Err(Error::integrity(
            "team catalog",
            format!(
                "{} has neither the changes this copy needs nor a snapshot",
                link.shown()
            ),
        ));
    };
    log::info!("team catalog: loading the snapshot of change {seq}");
    // tempfile creates it 0600; it is a catalog file, encrypted like the copy itself
    let tmp = tempfile::Builder::new()
        .prefix(".snapshot-")
        .tempfile_in(dir)
        .map_err(|e| Error::io_path("create a file in", dir, e))?;
    std::fs::write(tmp.path(), &file[..]).map_err(|e| Error::io_path("write", tmp.path(), e))?;
    let src = Connection::open(tmp.path())?;
    let hexkey = zeroize::Zeroizing::new(format!("x'{}'", hex::encode(key.bytes())));
    src.pragma_update(None, "key", hexkey.as_str())?;
    let ok: String = src
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| {
            Error::integrity(
                "team catalog",
                format!("snapshot {seq} cannot be read with this library's key ({e})"),
            )
        })?;
    if ok != "ok" {
        return Err(Error::integrity(
            "team catalog",
            format!("snapshot {seq} is damaged: {ok}"),
        ));
    }
    {
        let b = rusqlite::backup::Backup::new(&src, conn)?;
        b.run_to_completion(1 << 16, std::time::Duration::ZERO, None)?;
    }
    set_applied(conn, seq)?;
    Ok(seq)
}

/// A snapshot of the copy open on `conn`: the change it holds and the catalog file's bytes
/// (encrypted with the catalog's key, like the file), made in one read transaction through a
/// private temporary folder in `dir`.
pub fn snapshot(
    conn: &Connection,
    key: &Key,
    dir: &Path,
) -> Result<(i64, zeroize::Zeroizing<Vec<u8>>)> {
    let tmp = tempfile::Builder::new()
        .prefix(".snapshot-")
        .tempdir_in(dir)
        .map_err(|e| Error::io_path("create a folder in", dir, e))?;
    let file = tmp.path().join("catalog.db");
    let own = conn.is_autocommit();
    if own {
        conn.execute_batch("BEGIN DEFERRED")?;
    }
    let made = (|| {
        let seq = applied(conn)?;
        crate::catalog::maintenance::backup_into(conn, &file, key)?;
        Ok::<_, Error>(seq)
    })();
    if own {
        let _ = conn.execute_batch("COMMIT");
    }
    let seq = made?;
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(&file).map_err(|e| Error::io_path("read", &file, e))?,
    );
    Ok((seq, bytes))
}

/// Write a snapshot of the copy open on `conn` as of the change it holds into the library and
/// delete every older change and snapshot (after an erasure: no change that still holds what
/// was erased stays in the log). Returns the snapshot's change number.
pub fn snapshot_and_compact(
    conn: &Connection,
    link: &mut Link,
    key: &Key,
    dir: &Path,
) -> Result<i64> {
    let (seq, bytes) = snapshot(conn, key, dir)?;
    link.put_snapshot(seq, &bytes)?;
    link.compact(seq)?;
    Ok(seq)
}
