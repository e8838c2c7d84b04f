//! Queries for the operations commands (`status`, `check`, `backup`; see `crate::maintenance`):
//! every object the catalog records, what uses an object, counts, the last change, and the
//! online backup of the catalog file itself.

use super::assets::join_path;
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::policy::Time;
use crate::when;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::path::Path;

/// One row of `objects`.
#[derive(Debug, Clone)]
pub struct ObjectRow {
    /// Hex id (also the file name below `objects/`).
    pub id: String,
    /// `None` once shredded: the object can no longer be read, by design.
    pub wrapped_key: Option<Vec<u8>>,
    pub size: u64,
}

/// Every object the catalog records, in id order.
pub fn objects(conn: &Connection) -> Result<Vec<ObjectRow>> {
    let mut st = conn.prepare("SELECT id, wrapped_key, size FROM objects ORDER BY id")?;
    let rows = st
        .query_map([], |r| {
            Ok(ObjectRow {
                id: r.get(0)?,
                wrapped_key: r.get(1)?,
                size: r.get::<_, i64>(2)?.max(0) as u64,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The object `id` as the catalog records it now, if at all.
pub fn object(conn: &Connection, id: &str) -> Result<Option<ObjectRow>> {
    Ok(conn
        .query_row(
            "SELECT id, wrapped_key, size FROM objects WHERE id = ?1",
            [id],
            |r| {
                Ok(ObjectRow {
                    id: r.get(0)?,
                    wrapped_key: r.get(1)?,
                    size: r.get::<_, i64>(2)?.max(0) as u64,
                })
            },
        )
        .optional()?)
}

/// Something in the catalog that needs an object's content.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObjectUse {
    /// A version of an asset (its path, and its status: active, draft, trash, purged).
    Version {
        asset: i64,
        version: i64,
        path: String,
        status: String,
    },
    /// The evidence file of a consent event.
    Evidence { event: i64, person: i64 },
}

/// What uses the object `id`: asset versions (not thinned ones, whose content is gone on
/// purpose) and consent evidence.
pub fn uses_of(conn: &Connection, id: &str) -> Result<Vec<ObjectUse>> {
    let mut out = Vec::new();
    let mut st = conn.prepare(
        "SELECT a.id, v.version, a.collection, a.name, a.status FROM versions v \
         JOIN assets a ON a.id = v.asset_id \
         WHERE v.object_id = ?1 AND v.thinned_at IS NULL ORDER BY a.id, v.version",
    )?;
    for r in st.query_map([id], |r| {
        Ok(ObjectUse::Version {
            asset: r.get(0)?,
            version: r.get(1)?,
            path: join_path(&r.get::<_, String>(2)?, &r.get::<_, String>(3)?),
            status: r.get(4)?,
        })
    })? {
        out.push(r?);
    }
    let mut st = conn.prepare(
        "SELECT id, person_id FROM consent_events WHERE evidence_object = ?1 ORDER BY id",
    )?;
    for r in st.query_map([id], |r| {
        Ok(ObjectUse::Evidence {
            event: r.get(0)?,
            person: r.get(1)?,
        })
    })? {
        out.push(r?);
    }
    Ok(out)
}

/// How much the catalog holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Assets in use (active) and drafts; in the trash; purged (their content destroyed).
    pub assets: u64,
    pub drafts: u64,
    pub trash: u64,
    pub purged: u64,
    pub versions: u64,
    pub objects: u64,
    /// Bytes of plaintext of the objects still readable (not shredded).
    pub object_bytes: u64,
    pub persons: u64,
    pub users: u64,
    pub purposes: u64,
    pub consent_events: u64,
}

pub fn counts(conn: &Connection) -> Result<Counts> {
    let one = |sql: &str| -> Result<u64> {
        Ok(conn.query_row(sql, [], |r| r.get::<_, i64>(0))?.max(0) as u64)
    };
    let mut c = Counts::default();
    let mut st = conn.prepare("SELECT status, COUNT(*) FROM assets GROUP BY status")?;
    for r in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (status, n) = r?;
        let n = n.max(0) as u64;
        match status.as_str() {
            "active" => c.assets += n,
            "draft" => c.drafts += n,
            "trash" => c.trash += n,
            _ => c.purged += n,
        }
    }
    c.versions = one("SELECT COUNT(*) FROM versions")?;
    c.objects = one("SELECT COUNT(*) FROM objects WHERE wrapped_key IS NOT NULL")?;
    c.object_bytes =
        one("SELECT COALESCE(SUM(size), 0) FROM objects WHERE wrapped_key IS NOT NULL")?;
    c.persons = one("SELECT COUNT(*) FROM persons WHERE erased_at IS NULL")?;
    c.users = one("SELECT COUNT(*) FROM users")?;
    c.purposes = one("SELECT COUNT(*) FROM purposes")?;
    c.consent_events = one("SELECT COUNT(*) FROM consent_events")?;
    Ok(c)
}

/// The newest audit entry: every change appends one, so this is the last catalog change.
#[derive(Debug, Clone, Serialize)]
pub struct LastChange {
    pub seq: i64,
    pub at: Time,
    pub action: String,
}

pub fn last_change(conn: &Connection) -> Result<Option<LastChange>> {
    Ok(conn
        .query_row(
            "SELECT seq, at, action FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| {
                Ok(LastChange {
                    seq: r.get(0)?,
                    at: when::from_secs(r.get(1)?),
                    action: r.get(2)?,
                })
            },
        )
        .optional()?)
}

/// The catalog's schema version (`PRAGMA user_version`).
/// A number that changes whenever another connection commits to the catalog (SQLite's
/// `data_version`): the daemon's watcher polls it to know when to look for changes.
pub fn data_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))?)
}

pub fn schema_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Copy the catalog that `src` has open into the new file `dest` (created 0600 here, must not
/// exist), encrypted under the same `key`, with SQLite's online backup.
///
/// The copy is made in one step, inside one read transaction of `src` (the caller's, if it
/// holds one): in WAL mode that never
/// blocks the daemon's or a command's writes, and the copy is exactly one committed state. (A
/// backup made in several steps would restart every time another connection commits, which a
/// busy mount does every few milliseconds.) SQLCipher decrypts each page on the way out and
/// encrypts it again under the destination connection's key, which is the same key, so the
/// copy opens like the catalog it came from.
pub fn backup_into(src: &Connection, dest: &Path, key: &Key) -> Result<()> {
    {
        use std::os::unix::fs::OpenOptionsExt;
        // created 0600 before SQLite opens it (SQLite would use 0644 less the umask, and its
        // journal takes the database's mode)
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(dest)
            .map_err(|e| Error::io_path("create", dest, e))?;
    }
    let mut out = Connection::open(dest)?;
    let hexkey = zeroize::Zeroizing::new(format!("x'{}'", hex::encode(key.bytes())));
    out.pragma_update(None, "key", hexkey.as_str())?;
    out.pragma_update(None, "temp_store", "MEMORY")?;
    // A read transaction of its own unless the caller holds one: taking it waits like any
    // statement (the busy timeout) where the backup's own attempt would fail at once when a
    // checkpoint or the daemon's log restart holds a lock for a moment.
    let own = src.is_autocommit();
    if own {
        src.execute_batch("BEGIN DEFERRED")?;
    }
    let copied = (|| -> Result<()> {
        src.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })?;
        let b = rusqlite::backup::Backup::new(src, &mut out)?;
        match b.step(-1)? {
            rusqlite::backup::StepResult::Done => Ok(()),
            other => Err(Error::invalid(format!(
                "the catalog could not be copied in one step ({other:?}); try again"
            ))),
        }
    })();
    if own {
        let _ = src.execute_batch("COMMIT");
    }
    copied?;
    // the copy must open with the key and be whole before anything relies on it
    let ok: String = out.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if ok != "ok" {
        return Err(Error::integrity(
            "catalog backup",
            format!("the copy does not pass SQLite's check: {ok}"),
        ));
    }
    out.close().map_err(|(_, e)| Error::Catalog(e))?;
    std::fs::File::open(dest)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io_path("sync", dest, e))?;
    Ok(())
}

/// Objects a backup of this catalog needs: every one that still has its data key.
pub fn live_objects(conn: &Connection) -> Result<Vec<(String, u64)>> {
    let mut st =
        conn.prepare("SELECT id, size FROM objects WHERE wrapped_key IS NOT NULL ORDER BY id")?;
    let rows = st
        .query_map(params![], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Read every page of the catalog (SQLCipher authenticates each one) and check the database's
/// structure: `None` if all is well, else what SQLite reports.
pub fn catalog_damage(conn: &Connection) -> Option<String> {
    let rows: rusqlite::Result<Vec<String>> = conn
        .prepare("PRAGMA quick_check")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect());
    match rows {
        Ok(r) if r.len() == 1 && r[0] == "ok" => None,
        Ok(r) => Some(r.join("; ")),
        Err(e) => Some(e.to_string()),
    }
}

/// The next moment something changes by time alone, and what (`consent_ends`, `turns_16`,
/// `retention_ends`): the earliest of the events `consentfs expiring` lists, after `now`.
///
/// Read with a few aggregate queries rather than by loading every person and asset (as the
/// rules do), so that `status` stays quick on a million assets.
pub fn next_expiry(conn: &Connection, now: Time) -> Result<Option<(Time, &'static str)>> {
    let mut best: Option<(Time, &'static str)> = None;
    let mut consider = |t: Option<Time>, kind: &'static str| {
        if let Some(t) = t.filter(|t| *t > now) {
            if best.is_none_or(|(b, _)| t < b) {
                best = Some((t, kind));
            }
        }
    };
    let secs = when::to_secs(now);
    let end: Option<i64> = conn.query_row(
        "SELECT MIN(expires) FROM consent_events WHERE kind = 'grant' AND expires > ?1",
        [secs],
        |r| r.get(0),
    )?;
    consider(end.map(when::from_secs), "consent_ends");
    let kept: Option<i64> = conn.query_row(
        "SELECT MIN(retention_until) FROM assets WHERE status = 'active' AND retention_until > ?1",
        [secs],
        |r| r.get(0),
    )?;
    consider(kept.map(when::from_secs), "retention_ends");
    let zone = super::zone::get(conn)?;
    // 16th birthdays: persons born from a little over 16 years ago on (dates sort as text)
    let mut from = now
        .date_naive()
        .checked_sub_months(chrono::Months::new(16 * 12))
        .and_then(|d| d.checked_sub_days(chrono::Days::new(2)))
        .unwrap_or(chrono::NaiveDate::MIN)
        .format("%Y-%m-%d")
        .to_string();
    let mut st = conn.prepare(
        "SELECT DISTINCT born FROM persons WHERE born IS NOT NULL AND born > ?1 \
         ORDER BY born LIMIT 64",
    )?;
    'born: loop {
        let batch: Vec<String> = st
            .query_map([&from], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for born in &batch {
            if let Ok(day) = chrono::NaiveDate::parse_from_str(born, "%Y-%m-%d") {
                let sixteen = when::sixteenth_birthday(day, &zone);
                if sixteen > now {
                    consider(Some(sixteen), "turns_16");
                    break 'born;
                }
            }
        }
        match batch.last() {
            Some(last) if batch.len() == 64 => from = last.clone(),
            _ => break,
        }
    }
    // a purpose's retention term runs from each asset's import: the first asset imported
    // after (about) one term before now ends it first
    for purpose in super::purposes::list(conn)? {
        let Some(term) = purpose.to_policy().retention else {
            continue;
        };
        let Some(start) = term.span.before_in(now, &term.zone) else {
            continue;
        };
        let mut after = when::to_secs(start) - 3 * 86_400;
        let mut st = conn.prepare_cached(
            "SELECT created_at FROM assets WHERE status = 'active' AND created_at >= ?1 \
             ORDER BY created_at LIMIT 256",
        )?;
        'page: loop {
            let batch: Vec<i64> = st
                .query_map([after], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for c in &batch {
                if let Some(e) = term.end(when::from_secs(*c)).filter(|e| *e > now) {
                    consider(Some(e), "retention_ends");
                    break 'page;
                }
            }
            match batch.last() {
                Some(last) if batch.len() == 256 => after = last + 1,
                _ => break,
            }
        }
    }
    Ok(best)
}
