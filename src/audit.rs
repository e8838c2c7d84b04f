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

fn head(conn: &Connection) -> Result<(i64, Vec<u8>)> {
    let seq: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'audit_head_seq'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let hash: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'audit_head_hash'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let seq = seq.and_then(|s| s.parse().ok()).unwrap_or(0);
    let hash = hash
        .and_then(|h| hex::decode(h).ok())
        .unwrap_or_else(|| vec![0u8; 32]);
    Ok((seq, hash))
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
    let mut st = conn
        .prepare("SELECT seq, at, actor, action, detail FROM audit WHERE seq > ?1 ORDER BY seq")?;
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

/// Walk the whole chain and report every inconsistency.
pub fn verify(conn: &Connection, key: &Key) -> Result<Verified> {
    let mut st = conn.prepare(
        "SELECT seq, at, actor, action, detail, prev_hash, hash FROM audit ORDER BY rowid",
    )?;
    let mut rows = st.query([])?;
    let mut problems = Vec::new();
    let mut expect_seq = 1i64;
    let mut prev = vec![0u8; 32];
    let mut count = 0;
    while let Some(r) = rows.next()? {
        count += 1;
        let seq: i64 = r.get(0)?;
        let at: i64 = r.get(1)?;
        let actor: String = r.get(2)?;
        let action: String = r.get(3)?;
        let detail: String = r.get(4)?;
        let stored_prev: Vec<u8> = r.get(5)?;
        let hash: Vec<u8> = r.get(6)?;
        if seq != expect_seq {
            problems.push(format!(
                "entry {seq} found where {expect_seq} was expected (entries removed or reordered)"
            ));
        }
        if stored_prev != prev {
            problems.push(format!(
                "entry {seq} does not link to the entry before it (removed or reordered)"
            ));
        }
        if row_hash(key, &stored_prev, seq, at, &actor, &action, &detail).as_slice()
            != hash.as_slice()
        {
            problems.push(format!("entry {seq} was changed after it was written"));
        }
        prev = hash;
        expect_seq = seq + 1;
    }
    let (head_seq, head_hash) = head(conn)?;
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

/// Fail with an integrity error when the chain is broken.
pub fn ensure_intact(conn: &Connection, key: &Key) -> Result<Verified> {
    let v = verify(conn, key)?;
    if v.problems.is_empty() {
        Ok(v)
    } else {
        Err(Error::integrity("audit log", v.problems.join("; ")))
    }
}
