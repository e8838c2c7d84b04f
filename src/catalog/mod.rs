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

pub mod anchor;
pub mod assets;
pub mod consents;
pub mod persons;
pub mod purposes;
pub mod schema;
pub mod snapshot;
pub mod users;
pub mod versions;
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
    /// Where every commit's audit head is anchored (see `anchor`); none in tests that open a
    /// catalog directly.
    anchor: Option<anchor::Anchor>,
}

/// How long a statement waits for a lock another connection holds, unless said otherwise.
pub const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The error [`is_busy`] recognises, for a caller that decides not to wait at all.
pub fn busy_error() -> Error {
    Error::Catalog(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
        Some("the catalog is in use by another command".into()),
    ))
}

fn keyed_connection(path: &Path, key: &Key, flags: OpenFlags) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    let hexkey = zeroize::Zeroizing::new(format!("x'{}'", hex::encode(key.bytes())));
    conn.pragma_update(None, "key", hexkey.as_str())?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // deleted and overwritten content is zeroed in its page, not left in free space: an erased
    // name or a destroyed data key must not stay decryptable inside the catalog file
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.busy_timeout(BUSY_WAIT)?;
    Ok(conn)
}

impl Catalog {
    /// Create a new, empty catalog with the current schema and the default purposes.
    pub fn create(path: &Path, key: &Key, audit_key: Key, now: Time, actor: &str) -> Result<()> {
        if path.exists() {
            return Err(Error::invalid(format!("{} already exists", path.display())));
        }
        // Created empty with mode 0600 before SQLite opens it: SQLite would create it 0644
        // (less the umask), and gives the WAL and shared-memory files the database's mode.
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(|e| Error::io_path("create", path, e))?;
        }
        let conn = keyed_connection(
            path,
            key,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let mut cat = Catalog {
            conn,
            audit_key,
            anchor: None,
        };
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
        let mut cat = Catalog {
            conn,
            audit_key,
            anchor: None,
        };
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
            if i + 1 == schema::USERS_UID {
                users::fill_uids(&tx)?;
            }
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(())
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Copy the WAL into the catalog file and truncate it, after an erasure or a purge: until
    /// then the WAL still holds the pages as they were before (names, data keys). Waits for
    /// readers (the daemon's) for the connection's busy timeout; a checkpoint that cannot
    /// finish is logged, the next one completes it.
    pub fn checkpoint(&self) {
        let r = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
        match r {
            Ok(0) => {}
            Ok(_) => log::warn!("the catalog's WAL could not be checkpointed yet (readers active)"),
            Err(e) => log::warn!("cannot checkpoint the catalog's WAL: {e}"),
        }
    }

    /// Check this catalog against its rollback anchor and anchor every later commit. A
    /// catalog behind the anchor is refused, unless `accept_rollback`, which is then recorded
    /// in the audit log (by `actor`, at `now`) and becomes the anchored state.
    pub fn use_anchor(
        &mut self,
        a: anchor::Anchor,
        accept_rollback: bool,
        actor: &str,
        now: Time,
    ) -> Result<()> {
        let given_up = a.check(&self.conn, accept_rollback)?;
        self.anchor = Some(a);
        if let Some(old) = given_up {
            let tx = self.begin(actor, now)?;
            tx.audit(
                "catalog.rollback_accepted",
                serde_json::json!({ "anchored_seq": old.seq, "anchored_hash": old.hash }),
            )?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Anchor commits like `other` does (a second connection of the same process).
    pub fn share_anchor(&mut self, other: Option<anchor::Anchor>) {
        self.anchor = other;
    }

    pub fn anchor(&self) -> Option<&anchor::Anchor> {
        self.anchor.as_ref()
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
            anchor: self.anchor.as_ref(),
        })
    }

    /// Like [`Catalog::begin`], but wait at most `wait` for the write lock, then fail with an
    /// error [`is_busy`] recognises (the daemon queues a save rather than hold its writer).
    pub fn begin_within(
        &mut self,
        actor: &str,
        now: Time,
        wait: std::time::Duration,
    ) -> Result<Tx<'_>> {
        let conn: &Connection = &self.conn;
        conn.busy_timeout(wait)?;
        let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate);
        let tx = match tx {
            Ok(tx) => tx,
            Err(e) => {
                let _ = conn.busy_timeout(BUSY_WAIT);
                return Err(e.into());
            }
        };
        // statements inside the transaction wait as long as any other
        tx.busy_timeout(BUSY_WAIT)?;
        Ok(Tx {
            tx,
            actor: actor.to_string(),
            now,
            audit_key: &self.audit_key,
            anchor: self.anchor.as_ref(),
        })
    }
}

/// A command's write transaction: dropped without [`Tx::commit`], nothing of it remains.
pub struct Tx<'c> {
    tx: rusqlite::Transaction<'c>,
    actor: String,
    now: Time,
    audit_key: &'c Key,
    anchor: Option<&'c anchor::Anchor>,
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
    /// Commit, then move the rollback anchor to the new audit head. The change is made once
    /// SQLite commits; an anchor that cannot be written is logged (the catalog is then ahead
    /// of its anchor, which is never refused) rather than reported as a failed command.
    pub fn commit(self) -> Result<()> {
        let head = match self.anchor {
            Some(_) => Some(anchor::current(&self.tx)?),
            None => None,
        };
        self.tx.commit()?;
        if let (Some(a), Some(h)) = (self.anchor, head) {
            if let Err(e) = a.advance(&h) {
                log::error!("cannot move the rollback anchor forward: {e}");
            }
        }
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
