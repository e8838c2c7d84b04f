//! The hash-chained audit log.
//!
//! Every change to the catalog appends a row in the same transaction as the change itself, so a
//! change without its audit row cannot exist. Each row's hash is an HMAC-SHA256 (key derived
//! from the master key) over the previous row's hash and the row's own fields, and the catalog's
//! `meta` table remembers the head (last sequence number and hash). `verify` therefore detects a
//! changed row (its hash no longer matches), a removed or reordered row (a gap in the sequence
//! or a broken link), and a removed tail (the head no longer matches).

use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::policy::Time;
use crate::when;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub seq: i64,
    pub at: Time,
    pub actor: String,
    pub action: String,
    pub detail: serde_json::Value,
}

fn row_hash(
    key: &Key,
    prev: &[u8],
    seq: i64,
    at: i64,
    actor: &str,
    action: &str,
    detail: &str,
) -> [u8; 32] {
    // JSON gives an unambiguous encoding of the fields (no field can run into the next).
    let body = serde_json::to_vec(&(seq, at, actor, action, detail)).expect("tuple serializes");
    let mut m = key.mac_state();
    hmac::Mac::update(&mut m, prev);
    hmac::Mac::update(&mut m, &body);
    hmac::Mac::finalize(m).into_bytes().into()
}

pub(crate) fn head(conn: &Connection) -> Result<(i64, Vec<u8>)> {
    // one statement for both rows: read at every entry appended (two per new file of a `tar x`)
    let mut st = conn.prepare_cached(
        "SELECT key, value FROM meta WHERE key IN ('audit_head_seq', 'audit_head_hash')",
    )?;
    let mut rows = st.query([])?;
    let (mut seq, mut hash) = (None::<String>, None::<String>);
    while let Some(r) = rows.next()? {
        let (key, value): (String, Option<String>) = (r.get(0)?, r.get(1)?);
        match key.as_str() {
            "audit_head_seq" => seq = value,
            _ => hash = value,
        }
    }
    let seq = seq.and_then(|s| s.parse().ok()).unwrap_or(0);
    let hash = hash
        .and_then(|h| hex::decode(h).ok())
        .unwrap_or_else(|| vec![0u8; 32]);
    Ok((seq, hash))
}

/// The chain hash of entry `seq`, if the log holds it.
pub(crate) fn hash_at(conn: &Connection, seq: i64) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT hash FROM audit WHERE seq = ?1")?
        .query_row([seq], |r| r.get(0))
        .optional()?)
}

/// Append one entry; call inside the transaction that makes the change.
pub fn append(
    conn: &Connection,
    key: &Key,
    at: Time,
    actor: &str,
    action: &str,
    detail: &serde_json::Value,
) -> Result<i64> {
    let (last, prev) = head(conn)?;
    let seq = last + 1;
    let detail = detail.to_string();
    let at = when::to_secs(at);
    let hash = row_hash(key, &prev, seq, at, actor, action, &detail);
    conn.prepare_cached("INSERT INTO audit (seq, at, actor, action, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?.execute(
        params![seq, at, actor, action, detail, prev, hash.to_vec()],
    )?;
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('audit_head_seq', ?1), ('audit_head_hash', ?2)")?.execute(
        params![seq.to_string(), hex::encode(hash)],
    )?;
    Ok(seq)
}

/// Entries in order, optionally only those after `since_seq`.
pub fn list(conn: &Connection, since_seq: i64) -> Result<Vec<Entry>> {
    // run at every change the mount makes and every watcher round: prepared once
    let mut st = conn.prepare_cached(
        "SELECT seq, at, actor, action, detail FROM audit WHERE seq > ?1 ORDER BY seq",
    )?;
    let rows = st.query_map([since_seq], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, at, actor, action, detail) = row?;
        out.push(Entry {
            seq,
            at: when::from_secs(at),
            actor,
            action,
            detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        });
    }
    Ok(out)
}

/// The sequence number of the newest entry (0 when empty): a cheap change counter.
pub fn last_seq(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM audit")?
        .query_row([], |r| r.get(0))?)
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub entries: i64,
    pub problems: Vec<String>,
}

/// Walk the whole chain and report every inconsistency. A catalog file damaged where the log
/// is stored is a problem found (the log cannot be verified), not a failure to run.
pub fn verify(conn: &Connection, key: &Key) -> Result<Verified> {
    let mut problems = Vec::new();
    let mut expect_seq = 1i64;
    let mut prev = vec![0u8; 32];
    let mut count = 0;
    let walked = walk(
        conn,
        key,
        &mut problems,
        &mut expect_seq,
        &mut prev,
        &mut count,
    );
    let head = walked.map_err(Error::from).and_then(|()| head(conn));
    let (head_seq, head_hash) = match head {
        Ok(h) => h,
        Err(Error::Catalog(e)) if is_damage(&e) => {
            let unread = match expect_seq - 1 {
                0 => "no entry can be read".to_string(),
                n => format!("entries after {n} cannot be read"),
            };
            problems.push(format!(
                "the audit log cannot be verified: the catalog file is damaged where it stores the log ({unread}: {e}{}); \
                 restore catalog.db from a backup",
                damaged_pages(conn)
            ));
            return Ok(Verified {
                entries: count,
                problems,
            });
        }
        Err(e) => return Err(e),
    };
    if head_seq != expect_seq - 1 || (count > 0 && head_hash != prev) {
        problems.push(format!(
            "the log ends at entry {} but the catalog's head says {head_seq} (entries removed at the end)",
            expect_seq - 1
        ));
    }
    Ok(Verified {
        entries: count,
        problems,
    })
}

/// SQLite's word for a page that fails to decrypt, authenticate or parse.
fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase))
}

/// "; damaged pages: 5, 9" from SQLCipher's check of every page's authentication code, or
/// nothing when that check cannot say.
fn damaged_pages(conn: &Connection) -> String {
    let pages: Vec<String> = conn
        .prepare("PRAGMA cipher_integrity_check")
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .unwrap_or_default()
        .iter()
        .filter_map(|l| l.rsplit("page ").next()?.trim().parse::<u64>().ok())
        .map(|p| p.to_string())
        .collect();
    if pages.is_empty() {
        String::new()
    } else {
        format!("; damaged page(s) of catalog.db: {}", pages.join(", "))
    }
}

/// The chain, entry by entry (see [`verify`]).
fn walk(
    conn: &Connection,
    key: &Key,
    problems: &mut Vec<String>,
    expect_seq: &mut i64,
    prev: &mut Vec<u8>,
    count: &mut i64,
) -> rusqlite::Result<()> {
    let mut st = conn.prepare(
        "SELECT seq, at, actor, action, detail, prev_hash, hash FROM audit ORDER BY rowid",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        *count += 1;
        let seq: i64 = r.get(0)?;
        let at: i64 = r.get(1)?;
        let actor: String = r.get(2)?;
        let action: String = r.get(3)?;
        let detail: String = r.get(4)?;
        let stored_prev: Vec<u8> = r.get(5)?;
        let hash: Vec<u8> = r.get(6)?;
        if seq != *expect_seq {
            problems.push(format!(
                "entry {seq} found where {expect_seq} was expected (entries removed or reordered)"
            ));
        }
        if stored_prev != *prev {
            problems.push(format!(
                "entry {seq} does not link to the entry before it (removed or reordered)"
            ));
        }
        if row_hash(key, &stored_prev, seq, at, &actor, &action, &detail).as_slice()
            != hash.as_slice()
        {
            problems.push(format!("entry {seq} was changed after it was written"));
        }
        *prev = hash;
        *expect_seq = seq + 1;
    }
    Ok(())
}

/// Fail with an integrity error when the chain is broken.
pub fn ensure_intact(conn: &Connection, key: &Key) -> Result<Verified> {
    let v = verify(conn, key)?;
    if v.problems.is_empty() {
        Ok(v)
    } else {
        Err(Error::integrity("audit log", v.problems.join("; ")))
    }
}

/// (user tree, purpose, asset) of every `access.open` entry since `t`.
pub fn opens_since(conn: &Connection, t: Time) -> Result<Vec<(String, i64, i64)>> {
    let mut st = conn.prepare(
        "SELECT json_extract(detail, '$.user'), json_extract(detail, '$.purpose'),
                json_extract(detail, '$.asset')
           FROM audit WHERE action = 'access.open' AND at >= ?1",
    )?;
    let rows = st.query_map([when::to_secs(t)], |r| {
        Ok((
            r.get::<_, Option<String>>(0)?,
            r.get::<_, Option<i64>>(1)?,
            r.get::<_, Option<i64>>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for r in rows {
        if let (Some(u), Some(p), Some(a)) = r? {
            out.push((u, p, a));
        }
    }
    Ok(out)
}

/// The assets an `asset.link` audit entry ever linked to the person, also those unlinked
/// since (a person's report covers every photo they were on).
pub fn ever_linked(conn: &Connection, person: i64) -> Result<Vec<i64>> {
    let mut st = conn.prepare(
        "SELECT json_extract(detail, '$.asset') FROM audit
          WHERE action = 'asset.link' AND json_extract(detail, '$.person') = ?1",
    )?;
    let mut out = Vec::new();
    for a in st.query_map([person], |r| r.get::<_, Option<i64>>(0))? {
        out.extend(a?);
    }
    Ok(out)
}

/// One use of one asset: an open through the mount, a `cat`, or an export that included it.
#[derive(Debug, Clone, Serialize)]
pub struct Access {
    pub seq: i64,
    pub at: Time,
    /// The OS login that did it.
    pub actor: String,
    /// `open`, `cat` or `export`.
    pub action: String,
    /// Whose view (the mount's user folder, or the exported user).
    pub user: Option<String>,
    pub purpose: Option<String>,
    pub asset: i64,
    /// The asset's path now (`collection/name`).
    pub path: String,
    pub version: Option<i64>,
    pub export: Option<i64>,
    /// For an export: whether it completed, failed, or was interrupted (started and never
    /// finished: its files may have been written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<super::exports::Outcome>,
}

/// Every use of the given assets since `since` (oldest first), from the audit log and the
/// export records.
pub fn accesses(
    conn: &Connection,
    assets: &std::collections::HashSet<i64>,
    since: Time,
) -> Result<Vec<Access>> {
    let purposes: std::collections::HashMap<i64, String> = conn
        .prepare("SELECT id, name FROM purposes")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    let mut st = conn.prepare(
        "SELECT seq, at, actor, action, json_extract(detail, '$.asset'),
                json_extract(detail, '$.version'), json_extract(detail, '$.purpose'),
                json_extract(detail, '$.user')
           FROM audit WHERE action IN ('access.open', 'access.cat', 'portal.preview', 'portal.download')
            AND at >= ?1 ORDER BY seq",
    )?;
    let rows = st.query_map([when::to_secs(since)], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, Option<i64>>(4)?,
            r.get::<_, Option<i64>>(5)?,
            r.get::<_, Option<i64>>(6)?,
            r.get::<_, Option<String>>(7)?,
        ))
    })?;
    for r in rows {
        let (seq, at, actor, action, asset, version, purpose, user) = r?;
        let Some(asset) = asset.filter(|a| assets.contains(a)) else {
            continue;
        };
        out.push(Access {
            seq,
            at: when::from_secs(at),
            actor,
            action: action.trim_start_matches("access.").to_string(),
            user,
            purpose: purpose.and_then(|p| purposes.get(&p).cloned()),
            asset,
            path: String::new(),
            version,
            export: None,
            outcome: None,
        });
    }
    // the audit entry of each export, read once (not joined per exported file)
    let export_seq: std::collections::HashMap<i64, i64> = conn
        .prepare(
            "SELECT json_extract(detail, '$.export'), seq FROM audit
              WHERE action IN ('export.started', 'export') AND at >= ?1 ORDER BY seq",
        )?
        .query_map([when::to_secs(since)], |r| {
            Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, i64>(1)?))
        })?
        .filter_map(|r| match r {
            Ok((Some(e), s)) => Some(Ok((e, s))),
            Ok((None, _)) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<rusqlite::Result<_>>()?;
    let mut outcomes = std::collections::HashMap::new();
    let mut st = conn.prepare(
        "SELECT e.id, e.at, e.actor, e.login, e.purpose_id, i.asset_id, i.version, e.id
           FROM export_items i JOIN exports e ON e.id = i.export_id
          WHERE e.at >= ?1",
    )?;
    let rows = st.query_map([when::to_secs(since)], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, i64>(6)?,
            r.get::<_, i64>(7)?,
        ))
    })?;
    for r in rows {
        let (id, at, actor, login, purpose, asset, version, export) = r?;
        if !assets.contains(&asset) {
            continue;
        }
        let outcome = match outcomes.get(&id) {
            Some(o) => *o,
            None => *outcomes
                .entry(id)
                .or_insert(super::exports::outcome(conn, id)?),
        };
        out.push(Access {
            outcome: Some(outcome),
            seq: export_seq.get(&id).copied().unwrap_or(0),
            at: when::from_secs(at),
            actor,
            action: "export".into(),
            user: Some(login),
            purpose: purposes.get(&purpose).cloned(),
            asset,
            path: String::new(),
            version: Some(version),
            export: Some(export),
        });
    }
    let mut st = conn.prepare_cached("SELECT collection, name FROM assets WHERE id = ?1")?;
    let mut paths: std::collections::HashMap<i64, String> = std::collections::HashMap::new();
    for a in &mut out {
        if let std::collections::hash_map::Entry::Vacant(slot) = paths.entry(a.asset) {
            let p = st
                .query_row([a.asset], |r| {
                    Ok(super::assets::join_path(
                        &r.get::<_, String>(0)?,
                        &r.get::<_, String>(1)?,
                    ))
                })
                .optional()?
                .unwrap_or_default();
            slot.insert(p);
        }
        a.path = paths.get(&a.asset).cloned().unwrap_or_default();
    }
    out.sort_by_key(|a| (a.at, a.seq, a.asset));
    Ok(out)
}
