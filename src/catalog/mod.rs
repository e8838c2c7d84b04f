//! The catalog: an SQLCipher database holding persons, guardians, purposes, consent events,
//! assets, versions, links, users, grants and the audit log.
//!
//! The whole file (and its WAL) is encrypted with a raw 256-bit key derived from the master key,
//! so names, birth dates, file names and consents are unreadable at rest. Temporary tables are
//! kept in memory so SQLite never spills plaintext into temp files.
//!
//! Reads are free functions over `&Connection` in the submodules; every change goes through a
//! [`Tx`], one per command, which also appends the audit entry, so a change and its audit row
//! commit together or not at all.

pub mod assets;
pub mod consents;
pub mod persons;
pub mod purposes;
pub mod schema;
pub mod snapshot;
pub mod users;
pub mod zone;

use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::policy::Time;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::ops::Deref;
use std::path::Path;

pub struct Catalog {
    conn: Connection,
    audit_key: Key,
}

fn keyed_connection(path: &Path, key: &Key, flags: OpenFlags) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    let hexkey = zeroize::Zeroizing::new(format!("x'{}'", hex::encode(key.bytes())));
    conn.pragma_update(None, "key", hexkey.as_str())?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

impl Catalog {
    /// Create a new, empty catalog with the current schema and the default purposes.
    pub fn create(path: &Path, key: &Key, audit_key: Key, now: Time, actor: &str) -> Result<()> {
        if path.exists() {
            return Err(Error::invalid(format!("{} already exists", path.display())));
        }
        let conn = keyed_connection(
            path,
            key,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let mut cat = Catalog { conn, audit_key };
        cat.migrate()?;
        let tx = cat.begin(actor, now)?;
        tx.audit(
            "init",
            serde_json::json!({ "schema": schema::current_version() }),
        )?;
        purposes::add_defaults(&tx)?;
        // Pin the zone now (the system's; `init --timezone` replaces it), so a later change of
        // the machine's zone does not move dates and birthdays already recorded.
        zone::set(&tx, &crate::when::Zone::system())?;
        tx.commit()
    }

    /// Open an existing catalog, migrating an older schema and refusing a newer one.
    pub fn open(path: &Path, key: &Key, audit_key: Key) -> Result<Catalog> {
        if !path.exists() {
            return Err(Error::integrity(
                "catalog",
                format!("{} is missing", path.display()),
            ));
        }
        let conn = keyed_connection(path, key, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| {
                Error::integrity(
                    "catalog",
                    format!("catalog.db cannot be decrypted with this store's key ({e})"),
                )
            })?;
        if version > schema::current_version() {
            return Err(Error::invalid(format!(
                "the catalog is format version {version}, newer than this consentfs understands ({}); upgrade consentfs",
                schema::current_version()
            )));
        }
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut cat = Catalog { conn, audit_key };
        cat.migrate()?;
        Ok(cat)
    }

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version >= schema::current_version() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)?;
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(())
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn audit_key(&self) -> &Key {
        &self.audit_key
    }

    /// Start the one write transaction of a command. `BEGIN IMMEDIATE` takes the write lock at
    /// once, so two concurrent commands serialise instead of failing half-way.
    pub fn begin(&mut self, actor: &str, now: Time) -> Result<Tx<'_>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        Ok(Tx {
            tx,
            actor: actor.to_string(),
            now,
            audit_key: &self.audit_key,
        })
    }
}

/// A command's write transaction: dropped without [`Tx::commit`], nothing of it remains.
pub struct Tx<'c> {
    tx: rusqlite::Transaction<'c>,
    actor: String,
    now: Time,
    audit_key: &'c Key,
}

impl Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.tx
    }
}

impl Tx<'_> {
    pub fn now(&self) -> Time {
        self.now
    }
    pub fn actor(&self) -> &str {
        &self.actor
    }
    /// Record a change in the audit log. `detail` holds ids, never names.
    pub fn audit(&self, action: &str, detail: serde_json::Value) -> Result<i64> {
        crate::audit::append(
            &self.tx,
            self.audit_key,
            self.now,
            &self.actor,
            action,
            &detail,
        )
    }
    /// Record an entry on behalf of someone else at another moment (entries queued while the
    /// catalog was busy keep the time and actor of what they record).
    pub fn audit_as(
        &self,
        at: Time,
        actor: &str,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<i64> {
        crate::audit::append(&self.tx, self.audit_key, at, actor, action, &detail)
    }
    pub fn commit(self) -> Result<()> {
        self.tx.commit()?;
        Ok(())
    }
}

/// True when the error means another connection holds the catalog's write lock.
pub fn is_busy(e: &Error) -> bool {
    matches!(
        e,
        Error::Catalog(rusqlite::Error::SqliteFailure(f, _))
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// An id as typed by a user: all digits, optionally with a leading '#'.
pub(crate) fn as_id(s: &str) -> Option<i64> {
    let s = s.strip_prefix('#').unwrap_or(s);
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}
