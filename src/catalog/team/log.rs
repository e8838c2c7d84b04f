//! The team library's tables in PostgreSQL, and every statement on them: the change log, the
//! snapshots, the shared settings (keyring, where the objects are, the catalog's format).
//!
//! Every value that could say anything about a person is sealed before it is sent; what the
//! database's keeper sees is numbers, sizes and times of changes.

use super::{Link, CHANNEL};
use crate::crypto;
use crate::error::{Error, Result};
use zeroize::Zeroizing;

/// The versions of the tables, applied in order and recorded in `consentfs_migrations`; a
/// released entry is never edited.
const MIGRATIONS: &[&str] = &[
    // 1: settings shared by every machine; the change log (one sealed SQLite patchset per
    // command, numbered in commit order); snapshots of the whole catalog in sealed parts.
    r#"
CREATE TABLE consentfs_meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE consentfs_changes (
    seq BIGINT PRIMARY KEY CHECK (seq > 0),
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    body BYTEA NOT NULL
);
CREATE TABLE consentfs_snapshots (
    seq BIGINT NOT NULL CHECK (seq >= 0),
    part INTEGER NOT NULL CHECK (part >= 0),
    parts INTEGER NOT NULL CHECK (parts > 0),
    body BYTEA NOT NULL,
    PRIMARY KEY (seq, part)
);
"#,
];

/// The advisory lock every write holds for its transaction ("consentf").
const WRITE_LOCK: i64 = 0x636f_6e73_656e_7466;
/// The advisory lock under which the tables are created or upgraded.
const MIGRATE_LOCK: i64 = WRITE_LOCK + 1;

/// A snapshot is sent in parts of this size (a `bytea` value is at most 1 GiB, and a part is
/// held in memory twice while it is sealed).
const PART: usize = 8 << 20;

/// How many changes one catch-up query brings (a machine far behind reads in rounds).
pub const BATCH: i64 = 500;

/// Settings in `consentfs_meta`.
pub const KEYRING: &str = "keyring";
pub const OBJECTS: &str = "objects";
pub const FORMAT: &str = "catalog_format";

pub(super) fn migrate(link: &mut Link) -> Result<()> {
    let shown = link.shown.clone();
    let fail = |what: &str, e| super::pg_error(&shown, what, e);
    let mut tx = link
        .client
        .transaction()
        .map_err(|e| fail("cannot begin", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .map_err(|e| fail("cannot lock the tables for their upgrade", e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS consentfs_migrations (
             version INTEGER PRIMARY KEY, at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .map_err(|e| fail("cannot create its tables", e))?;
    let have: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM consentfs_migrations",
            &[],
        )
        .map_err(|e| fail("cannot read its version", e))?
        .get(0);
    let known = MIGRATIONS.len() as i32;
    if have > known {
        return Err(Error::invalid(format!(
            "the team catalog {shown} has tables of version {have}, newer than this consentfs knows ({known}); upgrade consentfs"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(have as usize) {
        let v = i as i32 + 1;
        tx.batch_execute(sql)
            .map_err(|e| fail(&format!("cannot upgrade its tables to version {v}"), e))?;
        tx.execute(
            "INSERT INTO consentfs_migrations (version) VALUES ($1)",
            &[&v],
        )
        .map_err(|e| fail("cannot record its version", e))?;
    }
    tx.commit()
        .map_err(|e| fail("cannot commit its upgrade", e))
}

/// Whether a `pg_try_advisory_xact_lock` answered true.
fn took(msgs: &[postgres::SimpleQueryMessage]) -> bool {
    msgs.iter()
        .any(|m| matches!(m, postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("t")))
}

/// The associated data every sealed item of the log starts with: what it is, and (after the
/// first team format) the catalog format its rows are of. A machine still running an older
/// consentfs then cannot open a change or snapshot of a newer format: it stops serving
/// instead of applying rows it would misread (SQLite skips a patchset's changes to a table
/// whose columns differ, without an error).
fn aad_head(what: &[u8], format: i64) -> Vec<u8> {
    let mut aad = what.to_vec();
    if format > crate::catalog::schema::FIRST_TEAM_FORMAT {
        aad.extend_from_slice(b"format ");
        aad.extend_from_slice(&format.to_be_bytes());
    }
    aad
}

fn change_aad(format: i64, seq: i64) -> Vec<u8> {
    let mut aad = aad_head(b"consentfs team change ", format);
    aad.extend_from_slice(&seq.to_be_bytes());
    aad
}

fn part_aad(format: i64, seq: i64, part: i32, parts: i32) -> Vec<u8> {
    let mut aad = aad_head(b"consentfs team snapshot ", format);
    aad.extend_from_slice(&seq.to_be_bytes());
    aad.extend_from_slice(&part.to_be_bytes());
    aad.extend_from_slice(&parts.to_be_bytes());
    aad
}

/// Insert `file` as the sealed parts of snapshot `seq` of catalog format `format` (errors
/// name the library as `shown`).
fn insert_snapshot(
    client: &mut impl postgres::GenericClient,
    shown: &str,
    key: &crypto::Key,
    format: i64,
    seq: i64,
    file: &[u8],
) -> Result<()> {
    let parts = file.len().div_ceil(PART).max(1);
    let parts = i32::try_from(parts).map_err(|_| {
        Error::invalid("the catalog is too large for a snapshot (more than 2^31 parts)")
    })?;
    for part in 0..parts {
        let start = part as usize * PART;
        let chunk = &file[start..(start + PART).min(file.len())];
        let sealed = crypto::seal(key, &part_aad(format, seq, part, parts), chunk)?;
        client
            .execute(
                "INSERT INTO consentfs_snapshots (seq, part, parts, body) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (seq, part) DO NOTHING",
                &[&seq, &part, &parts, &sealed],
            )
            .map_err(|e| super::pg_error(shown, "cannot store a snapshot", e))?;
    }
    Ok(())
}

/// What the log holds after a given change.
pub enum After {
    /// The next changes, in order, opened (at most [`BATCH`]; none when up to date).
    Changes(Vec<(i64, Zeroizing<Vec<u8>>)>),
    /// The changes right after it were compacted into the snapshot of this number: start from
    /// that snapshot.
    Snapshot(i64),
}

impl Link {
    /// Begin a write: a transaction holding the library's write lock (a command on another
    /// machine waits for it here, as on one machine it waits for SQLite's), waiting at most
    /// `within`; false if it stayed taken (nothing is held then).
    pub fn lock(&mut self, within: std::time::Duration) -> Result<bool> {
        if self.in_tx {
            return Ok(true);
        }
        // one round trip for both when the lock is free (a write pays for every one)
        let r = self.client.simple_query(&format!(
            "BEGIN; SELECT pg_try_advisory_xact_lock({WRITE_LOCK})"
        ));
        self.in_tx = true;
        let mut got = match r {
            Ok(msgs) => took(&msgs),
            Err(e) => {
                self.rollback();
                return Err(self.err("cannot take the write lock", e));
            }
        };
        let started = std::time::Instant::now();
        let mut nap = std::time::Duration::from_millis(1);
        while !got {
            if started.elapsed() >= within {
                self.rollback();
                return Ok(false);
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(std::time::Duration::from_millis(50));
            got = match self
                .client
                .simple_query(&format!("SELECT pg_try_advisory_xact_lock({WRITE_LOCK})"))
            {
                Ok(msgs) => took(&msgs),
                Err(e) => {
                    self.rollback();
                    return Err(self.err("cannot take the write lock", e));
                }
            };
        }
        Ok(true)
    }

    /// End the write without a change (or after a failure): the lock is released.
    pub fn rollback(&mut self) {
        if std::mem::take(&mut self.in_tx) {
            if let Err(e) = self.client.batch_execute("ROLLBACK") {
                log::debug!("rollback on the team catalog failed: {e}");
            }
        }
    }

    /// Append `patchset` as change `seq`, announce it, and commit (releasing the lock). On an
    /// error nothing was appended, unless the commit's answer was lost on the way back (the
    /// caller then finds it in the log on its next catch-up).
    pub fn append(&mut self, seq: i64, patchset: &[u8]) -> Result<()> {
        let sealed = crypto::seal(&self.key, &change_aad(self.format, seq), patchset)?;
        let st = self.prepared(
            "WITH appended AS (INSERT INTO consentfs_changes (seq, body) VALUES ($1, $2))
             SELECT pg_notify($3, $4)",
        )?;
        let r = (|| {
            self.client
                .execute(&st, &[&seq, &sealed, &CHANNEL, &seq.to_string()])?;
            self.client.batch_execute("COMMIT")
        })();
        match r {
            Ok(()) => {
                self.in_tx = false;
                Ok(())
            }
            Err(e) => {
                self.rollback();
                Err(self.err(&format!("cannot record change {seq}"), e))
            }
        }
    }

    /// The number of the latest change (in the log or in its newest snapshot).
    pub fn head(&mut self) -> Result<i64> {
        let row = self
            .client
            .query_one(
                "SELECT greatest((SELECT coalesce(max(seq), 0) FROM consentfs_changes),
                                 (SELECT coalesce(max(seq), 0) FROM consentfs_snapshots))",
                &[],
            )
            .map_err(|e| self.err("cannot read the latest change", e))?;
        Ok(row.get(0))
    }

    /// The changes after `seq`, opened and checked.
    pub fn after(&mut self, seq: i64) -> Result<After> {
        let st = self.prepared(
            "SELECT seq, body FROM consentfs_changes WHERE seq > $1 ORDER BY seq LIMIT $2",
        )?;
        let rows = self
            .client
            .query(&st, &[&seq, &BATCH])
            .map_err(|e| self.err("cannot read the change log", e))?;
        let mut out = Vec::with_capacity(rows.len());
        for (expect, row) in (seq + 1..).zip(rows) {
            let n: i64 = row.get(0);
            if n != expect {
                break;
            }
            let body: &[u8] = row.get(1);
            let Some(plain) = crypto::open(&self.key, &change_aad(self.format, n), body) else {
                return Err(self.unreadable(&format!("change {n}")));
            };
            out.push((n, plain));
        }
        if out.is_empty() {
            // nothing right after `seq`: up to date, or compacted into a newer snapshot (one
            // round trip for both questions: this runs for every write)
            let st = self.prepared(
                "SELECT (SELECT coalesce(max(seq), 0) FROM consentfs_snapshots),
                        (SELECT min(seq) FROM consentfs_changes WHERE seq > $1)",
            )?;
            let row = self
                .client
                .query_one(&st, &[&seq])
                .map_err(|e| self.err("cannot read the change log", e))?;
            let (snap, later): (i64, Option<i64>) = (row.get(0), row.get(1));
            if snap > seq {
                return Ok(After::Snapshot(snap));
            }
            // (the next change committed between the two statements: seen next time)
            if let Some(later) = later.filter(|&l| l > seq + 1) {
                return Err(Error::integrity(
                    "team catalog",
                    format!(
                        "the change log of {} has a gap: change {} is missing before {later}",
                        self.shown,
                        seq + 1
                    ),
                ));
            }
        }
        Ok(After::Changes(out))
    }

    /// Store a snapshot of the whole catalog as of change `seq` (the catalog file's bytes).
    pub fn put_snapshot(&mut self, seq: i64, file: &[u8]) -> Result<()> {
        let (key, format) = (self.key.clone(), self.format);
        let shown = self.shown.clone();
        let fail = |e| super::pg_error(&shown, "cannot store a snapshot", e);
        let mut tx = self.client.transaction().map_err(fail)?;
        insert_snapshot(&mut tx, &shown, &key, format, seq, file)?;
        tx.commit().map_err(fail)
    }

    /// Make the library one of catalog format `format`, under the write lock this link holds
    /// (see [`Link::lock`]): `file` (this machine's copy at the latest change, brought to that
    /// format) becomes snapshot `seq`, the format is recorded, and every older change and
    /// snapshot is deleted (they are rows of the old format), all in one transaction, which
    /// releases the lock. A machine that had the old format loads the snapshot next.
    pub fn publish_format(&mut self, format: i64, seq: i64, file: &[u8]) -> Result<()> {
        if !self.in_tx {
            return Err(Error::invalid(
                "a new catalog format is published only under the library's write lock",
            ));
        }
        let (key, shown) = (self.key.clone(), self.shown.clone());
        if let Err(e) = insert_snapshot(&mut self.client, &shown, &key, format, seq, file) {
            self.rollback();
            return Err(e);
        }
        let done = (|| {
            self.client.execute(
                "INSERT INTO consentfs_meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&FORMAT, &format.to_string().as_bytes()],
            )?;
            self.client
                .execute("DELETE FROM consentfs_changes WHERE seq < $1", &[&seq])?;
            self.client
                .execute("DELETE FROM consentfs_snapshots WHERE seq < $1", &[&seq])?;
            self.client
                .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &seq.to_string()])?;
            self.client.batch_execute("COMMIT")
        })();
        match done {
            Ok(()) => {
                self.in_tx = false;
                self.format = format;
                if let Err(e) = self
                    .client
                    .batch_execute("VACUUM FULL consentfs_changes; VACUUM FULL consentfs_snapshots")
                {
                    log::warn!(
                        "{}",
                        self.err("cannot rewrite its tables after the upgrade", e)
                    );
                }
                Ok(())
            }
            Err(e) => {
                self.rollback();
                Err(self.err(&format!("cannot publish catalog format {format}"), e))
            }
        }
    }

    /// The catalog format the library records (`None` before `init` has finished).
    pub fn recorded_format(&mut self) -> Result<Option<i64>> {
        Ok(self
            .meta(FORMAT)?
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<i64>().ok()))
    }

    /// Seal and open the log's items as rows of catalog format `format`.
    pub fn set_format(&mut self, format: i64) {
        self.format = format;
    }

    /// The error for an item of the log that does not open: the library was upgraded by a newer
    /// consentfs (said as such), or the item was altered, moved, or sealed with another key.
    fn unreadable(&mut self, what: &str) -> Error {
        match self.recorded_format() {
            Ok(Some(f)) if f != self.format => Error::invalid(format!(
                "the team library {} is now of catalog format {f} (this machine reads format {}): it was upgraded by a newer consentfs; upgrade consentfs on this machine too",
                self.shown, self.format
            )),
            _ => Error::integrity(
                "team catalog",
                format!(
                    "{what} in {} does not authenticate: it was altered, moved, or sealed with another library's key",
                    self.shown
                ),
            ),
        }
    }

    /// The newest snapshot: its change number and the catalog file's bytes.
    pub fn latest_snapshot(&mut self) -> Result<Option<(i64, Zeroizing<Vec<u8>>)>> {
        let seq: Option<i64> = self
            .client
            .query_one("SELECT max(seq) FROM consentfs_snapshots", &[])
            .map_err(|e| self.err("cannot read the snapshots", e))?
            .get(0);
        let Some(seq) = seq else { return Ok(None) };
        let rows = self
            .client
            .query(
                "SELECT part, parts, body FROM consentfs_snapshots WHERE seq = $1 ORDER BY part",
                &[&seq],
            )
            .map_err(|e| self.err("cannot read a snapshot", e))?;
        let mut file = Zeroizing::new(Vec::new());
        let bad = |detail: String| Error::integrity("team catalog", detail);
        for (i, row) in rows.iter().enumerate() {
            let (part, parts): (i32, i32) = (row.get(0), row.get(1));
            if part as usize != i || parts as usize != rows.len() {
                return Err(bad(format!(
                    "snapshot {seq} in {} is incomplete (part {part} of {parts}, {} found)",
                    self.shown,
                    rows.len()
                )));
            }
            let body: &[u8] = row.get(2);
            let aad = part_aad(self.format, seq, part, parts);
            let Some(plain) = crypto::open(&self.key, &aad, body) else {
                return Err(self.unreadable(&format!("snapshot {seq} (part {part})")));
            };
            file.extend_from_slice(&plain);
        }
        Ok(Some((seq, file)))
    }

    /// Delete every change up to `seq` and every older snapshot (the snapshot of `seq` must be
    /// stored), then have PostgreSQL rewrite both tables, so that the rows are gone from its
    /// files and not only marked dead. What its write-ahead log and backups keep, they keep
    /// sealed with this library's key.
    pub fn compact(&mut self, seq: i64) -> Result<()> {
        let shown = self.shown.clone();
        let fail = |e| super::pg_error(&shown, "cannot delete compacted changes", e);
        let mut tx = self.client.transaction().map_err(fail)?;
        tx.execute("DELETE FROM consentfs_changes WHERE seq <= $1", &[&seq])
            .map_err(fail)?;
        tx.execute("DELETE FROM consentfs_snapshots WHERE seq < $1", &[&seq])
            .map_err(fail)?;
        tx.commit().map_err(fail)?;
        self.client
            .batch_execute("VACUUM FULL consentfs_changes; VACUUM FULL consentfs_snapshots")
            .map_err(fail)
    }

    /// A shared setting.
    pub fn meta(&mut self, key: &str) -> Result<Option<Vec<u8>>> {
        let row = self
            .client
            .query_opt("SELECT value FROM consentfs_meta WHERE key = $1", &[&key])
            .map_err(|e| self.err("cannot read its settings", e))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Set a shared setting; `fresh`: only if it is not set yet (returns whether it was set).
    pub fn set_meta(&mut self, key: &str, value: &[u8], fresh: bool) -> Result<bool> {
        let sql = if fresh {
            "INSERT INTO consentfs_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
        } else {
            "INSERT INTO consentfs_meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        };
        let n = self
            .client
            .execute(sql, &[&key, &value])
            .map_err(|e| self.err("cannot write its settings", e))?;
        Ok(n == 1)
    }

    /// Listen for announced changes on this connection (see [`Link::wait`]).
    pub fn listen(&mut self) -> Result<()> {
        self.client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .map_err(|e| self.err("cannot listen for changes", e))
    }

    /// Wait up to `timeout` for an announced change; true when one came.
    pub fn wait(&mut self, timeout: std::time::Duration) -> Result<bool> {
        use postgres::fallible_iterator::FallibleIterator;
        let mut n = self.client.notifications();
        let first = n
            .timeout_iter(timeout)
            .next()
            .map_err(|e| super::pg_error(&self.shown, "lost the connection", e))?;
        if first.is_none() {
            return Ok(false);
        }
        // several changes may have been announced at once: one catch-up reads them all
        while let Ok(Some(_)) = n.iter().next() {}
        Ok(true)
    }
}
