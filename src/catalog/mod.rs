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
pub mod audit;
pub mod bulk;
pub mod consents;
pub mod exports;
pub mod faces;
pub mod invitations;
pub mod mail;
pub mod maintenance;
pub mod persons;
pub mod purposes;
pub mod review;
pub mod roles;
pub mod schema;
pub mod similar;
pub mod snapshot;
pub mod suggestions;
pub mod synthetic;
pub mod team;
pub mod users;
pub mod versions;
pub mod waiters;
pub mod wal;
pub mod zone;

use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::policy::Time;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::ops::Deref;
use std::path::{Path, PathBuf};

pub struct Catalog {
    conn: Connection,
    audit_key: Key,
    /// Where every commit's audit head is anchored (see `anchor`); none in tests that open a
    /// catalog directly.
    anchor: Option<anchor::Anchor>,
    /// How a command waits for the write lock (see [`Catalog::wait_naming_holders`]); none:
    /// the connection's busy timeout alone (the daemon's connections).
    wait: Option<Waiting>,
    path: PathBuf,
    /// Committed changes found missing from the write-ahead log at open (no other process had
    /// the catalog open, so SQLite went on from the last checkpoint): the rollback check says so.
    wal_loss: Option<wal::Loss>,
    /// A write transaction left open by [`Tx::commit_later`] (since when): the next
    /// transaction joins it and commits both (see [`Catalog::commit_pending`]).
    pending: Option<std::time::Instant>,
    /// When the last such transaction was committed (see [`Catalog::since_pending`]).
    pending_ended: Option<std::time::Instant>,
    /// When a transaction last joined the one left open (see [`Catalog::pending_idle`]).
    pending_joined: Option<std::time::Instant>,
    /// For a team library's copy: the library and what its copy needs (see [`team`]).
    team: Option<Team>,
    /// Tells the daemon that this connection waits for the write lock, and the daemon that
    /// another does (see [`waiters`]).
    waiters: waiters::Waiters,
    /// Declared last: dropped after the connection is closed.
    _registered: wal::Registered,
}

/// A team library this catalog is a copy of: where it is, the connection (made when first
/// needed and made again after it broke), and the key and folder a snapshot needs.
struct Team {
    url: String,
    link: Option<team::Link>,
    key: Key,
    dir: PathBuf,
    /// Set only while a change of the library's log or a change appended to it commits: any
    /// other commit on this connection is turned into a rollback (see [`Catalog::open`]).
    allowed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Allows commits on a team library's copy while it lives.
struct Allowed<'a>(&'a std::sync::atomic::AtomicBool);

impl<'a> Allowed<'a> {
    fn new(flag: &'a std::sync::atomic::AtomicBool) -> Self {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        Allowed(flag)
    }
}

impl Drop for Allowed<'_> {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The team library's connection, made (again) if there is none or it broke.
fn connected<'l>(
    link: &'l mut Option<team::Link>,
    url: &str,
    key: &Key,
) -> Result<&'l mut team::Link> {
    if link.as_ref().is_some_and(|l| l.is_closed()) {
        *link = None;
    }
    if link.is_none() {
        let l = team::Link::connect(url, key)?;
        // a copy of this format takes only changes of this format (a library cannot go back
        // to an older one, unless its database was restored from an old backup)
        let current = schema::current_version();
        if l.format() != current {
            return Err(Error::invalid(format!(
                "the team library {} is no longer of catalog format {current}, which this machine's copy is of: run any consentfs command on this machine to take the library as it is now",
                l.shown()
            )));
        }
        *link = Some(l);
    }
    link.as_mut()
        .ok_or_else(|| Error::invalid("no connection to the team library"))
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

/// A command's way of waiting for the catalog's write lock.
struct Waiting {
    /// The store's root, whose registry of running processes names who holds the lock.
    store_root: std::path::PathBuf,
    /// How long to wait in all before giving up.
    limit: std::time::Duration,
}

/// After this long waiting for the write lock, a command says who holds it.
const SAY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

fn keyed_connection(path: &Path, key: &Key, flags: OpenFlags) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    let hexkey = zeroize::Zeroizing::new(format!("x'{}'", hex::encode(key.bytes())));
    conn.pragma_update(None, "key", hexkey.as_str())?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // deleted and overwritten content is zeroed in its page, not left in free space: an erased
    // name or a destroyed data key must not stay decryptable inside the catalog file
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.busy_timeout(BUSY_WAIT)?;
    // the daemon runs the same few dozen statements for every save: parsed once each
    conn.set_prepared_statement_cache_capacity(128);
    Ok(conn)
}

/// Bring the catalog open on `conn` to the format this consentfs writes, in one transaction.
fn migrate_schema(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= schema::current_version() {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    for (i, sql) in schema::MIGRATIONS
        .iter()
        .enumerate()
        .take(schema::current_version() as usize)
        .skip(version as usize)
    {
        tx.execute_batch(sql)?;
        if i + 1 == schema::USERS_UID {
            users::fill_uids(&tx)?;
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// How long the upgrade of a team library to a new catalog format waits for its write lock.
const UPGRADE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The catalog format of the file open on `conn`.
fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Upgrade the team library behind `link` (whose write lock is held) from catalog format
/// `from` to `to`: this machine's copy is brought to the library's latest change in the old
/// format, a copy of it is migrated to the new one in a private temporary folder, and that
/// becomes the library's snapshot of a new change number, with the format, in one
/// PostgreSQL transaction that also deletes every older change. Then the copy loads that
/// snapshot as every other machine will. Interrupted before that transaction, nothing has
/// changed; after it, the next command on any machine loads the snapshot.
fn upgrade_library(
    conn: &mut Connection,
    t: &Team,
    link: &mut team::Link,
    from: i64,
    to: i64,
) -> Result<()> {
    log::warn!(
        "upgrading the team library {} from catalog format {from} to {to}: machines that still run an older consentfs stop serving photos until they are upgraded",
        link.shown()
    );
    {
        let _allowed = Allowed::new(&t.allowed);
        if user_version(conn)? != from {
            team::replica::load_snapshot(conn, link, &t.key, &t.dir)?;
        }
        loop {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if team::replica::apply_pending(&tx, link)?.is_some() {
                tx.commit()?;
                break;
            }
            drop(tx);
            team::replica::load_snapshot(conn, link, &t.key, &t.dir)?;
        }
    }
    let seq = team::replica::applied(conn)? + 1;
    let tmp = tempfile::Builder::new()
        .prefix(".upgrade-")
        .tempdir_in(&t.dir)
        .map_err(|e| Error::io_path("create a folder in", &t.dir, e))?;
    let file = tmp.path().join("catalog.db");
    maintenance::backup_into(conn, &file, &t.key)?;
    {
        let mut copy = keyed_connection(
            &file,
            &t.key,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        migrate_schema(&mut copy)?;
        team::replica::set_applied(&copy, seq)?;
    }
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(&file).map_err(|e| Error::io_path("read", &file, e))?,
    );
    // Fault injection for the test that an upgrade killed before it is published changes
    // nothing: dies the way SIGKILL does.
    if std::env::var("CONSENTFS_FAULT").as_deref() == Ok("die-before-format") {
        // SAFETY: _exit ends the process at once; nothing is borrowed across it.
        unsafe { libc::_exit(137) };
    }
    link.publish_format(to, seq, &bytes)?;
    log::warn!(
        "the team library {} is now of catalog format {to} (change {seq})",
        link.shown()
    );
    let _allowed = Allowed::new(&t.allowed);
    team::replica::load_snapshot(conn, link, &t.key, &t.dir)?;
    Ok(())
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
        let (_, registered) = wal::register(path);
        let conn = keyed_connection(
            path,
            key,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let mut cat = Catalog::with(conn, audit_key, path, None, registered);
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
        crate::caller::as_daemon(|| {
            if !path.exists() {
                return Err(Error::integrity(
                    "catalog",
                    format!("{} is missing", path.display()),
                ));
            }
            let len = std::fs::metadata(path)
                .map_err(|e| Error::io_path("read", path, e))?
                .len();
            // A catalog always holds at least its first page (switching to WAL mode writes it),
            // and SQLite writes whole pages only: anything else was cut short, and would
            // otherwise be reported as a wrong key or, when empty, opened as a new catalog.
            if len == 0 || len % wal::PAGE_SIZE != 0 {
                return Err(Error::integrity(
                    "catalog",
                    format!(
                        "{} is damaged: truncated to {len} bytes (not a whole number of {}-byte pages); restore it from a backup",
                        path.display(),
                        wal::PAGE_SIZE
                    ),
                ));
            }
            let (wal_loss, registered) = wal::register(path);
            if let Some(loss) = wal_loss.as_ref().filter(|l| l.in_use) {
                return Err(Error::integrity("catalog", wal::in_use_message(path, loss)));
            }
            // NO_MUTEX: a Connection is never shared between threads (rusqlite makes it !Sync), so
            // SQLite need not lock it on every call (a sixth of the mount's start-up went there)
            let conn = keyed_connection(
                path,
                key,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            let version: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(|e| open_error(path, len, e))?;
            if version > schema::current_version() {
                return Err(Error::invalid(format!(
                    "the catalog is format version {version}, newer than this consentfs understands ({}); upgrade consentfs",
                    schema::current_version()
                )));
            }
            conn.pragma_update(None, "foreign_keys", "ON")?;
            let mut cat = Catalog::with(conn, audit_key, path, wal_loss, registered);
            if let Some(url) = team::recorded_url(path)? {
                // A change that bypassed [`Tx`] would stay on this machine, and the copies
                // would differ from then on without anyone knowing: refused at its commit.
                let allowed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let flag = allowed.clone();
                cat.conn.commit_hook(Some(move || {
                    let ok = flag.load(std::sync::atomic::Ordering::SeqCst);
                    if !ok {
                        log::error!("a change to the team library's copy outside a command's transaction was rolled back (a bug: it would not reach the other machines)");
                    }
                    !ok
                }));
                cat.team = Some(Team {
                    url,
                    link: None,
                    key: key.clone(),
                    dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
                    allowed,
                });
                cat.team_format()?;
            }
            cat.migrate()?;
            cat.sync()?;
            Ok(cat)
        })
    }

    /// A catalog on an opened connection, with no anchor, no busy wait and nothing pending.
    fn with(
        conn: Connection,
        audit_key: Key,
        path: &Path,
        wal_loss: Option<wal::Loss>,
        registered: wal::Registered,
    ) -> Catalog {
        Catalog {
            conn,
            audit_key,
            anchor: None,
            wait: None,
            path: path.to_path_buf(),
            wal_loss,
            pending: None,
            pending_ended: None,
            pending_joined: None,
            team: None,
            waiters: waiters::Waiters::open(path),
            _registered: registered,
        }
    }

    fn migrate(&mut self) -> Result<()> {
        // (a team library's copy is of the library's format by now, which is this one's: see
        // `team_format`)
        let _allowed = self.team.as_ref().map(|t| Allowed::new(&t.allowed));
        migrate_schema(&mut self.conn)
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Whether this catalog is a machine's copy of a team library.
    pub fn is_team(&self) -> bool {
        self.team.is_some()
    }

    /// A team library and this machine's copy of it must both be of the catalog format this
    /// consentfs writes: the changes of the others are rows of that format. A library of an
    /// older format is upgraded here, by the first machine that runs a newer consentfs (as a
    /// store of its own is when it is opened); a copy older than its library (this machine
    /// missed the upgrade) loads the library's snapshot instead of migrating itself, so that
    /// every copy holds the very same rows. A library of a newer format is refused.
    fn team_format(&mut self) -> Result<()> {
        let current = schema::current_version();
        let Catalog { conn, team, .. } = self;
        let Some(t) = team.as_mut() else {
            return Ok(());
        };
        let mut link = match t.link.take() {
            Some(l) if !l.is_closed() => l,
            _ => team::Link::connect(&t.url, &t.key)?,
        };
        for _ in 0..3 {
            let Some(theirs) = link.recorded_format()? else {
                return Err(Error::invalid(format!(
                    "{} holds no consentfs library (it was never initialised, or its setup was interrupted): create it with `consentfs --store URL init --objects …`",
                    link.shown()
                )));
            };
            if theirs > current {
                return Err(Error::invalid(format!(
                    "the team library {} is of catalog format {theirs}, newer than this consentfs writes ({current}); upgrade consentfs on this machine (every machine of a library runs the same version)",
                    link.shown()
                )));
            }
            link.set_format(theirs);
            if theirs == current {
                if user_version(conn)? != current {
                    let _allowed = Allowed::new(&t.allowed);
                    team::replica::load_snapshot(conn, &mut link, &t.key, &t.dir)?;
                }
                t.link = Some(link);
                return Ok(());
            }
            if !link.lock(UPGRADE_WAIT)? {
                return Err(Error::invalid(format!(
                    "the team library {} stayed locked by another machine's command for {} s; its upgrade to this consentfs's catalog format waits for the lock: try again",
                    link.shown(),
                    UPGRADE_WAIT.as_secs()
                )));
            }
            // another machine may have upgraded it while this one waited for the lock
            if link.recorded_format()? != Some(theirs) {
                link.rollback();
                continue;
            }
            let done = upgrade_library(conn, t, &mut link, theirs, current);
            link.rollback();
            done?;
            t.link = Some(link);
            return Ok(());
        }
        Err(Error::invalid(format!(
            "the team library {}'s catalog format changed three times while this command started; try again",
            link.shown()
        )))
    }

    /// Bring a team library's copy up to the library's latest change (nothing to do for a
    /// store of its own): the changes other machines made are applied in one transaction, or
    /// the newest snapshot is loaded first when the copy is behind a compaction. Returns the
    /// number of the change the copy now holds.
    pub fn sync(&mut self) -> Result<Option<i64>> {
        let Catalog { conn, team, .. } = self;
        let Some(t) = team.as_mut() else {
            return Ok(None);
        };
        let link = connected(&mut t.link, &t.url, &t.key)?;
        // nothing new (the follower asks twice a second): no write lock taken
        let held = team::replica::applied(conn)?;
        if matches!(link.after(held)?, team::log::After::Changes(c) if c.is_empty()) {
            return Ok(Some(held));
        }
        loop {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            match team::replica::apply_pending(&tx, link)? {
                Some(n) => {
                    let _allowed = Allowed::new(&t.allowed);
                    tx.commit()?;
                    return Ok(Some(n));
                }
                None => {
                    drop(tx);
                    let _allowed = Allowed::new(&t.allowed);
                    team::replica::load_snapshot(conn, link, &t.key, &t.dir)?;
                }
            }
        }
    }

    /// Listen for a team library's changes on this catalog's connection to it (the daemon's
    /// follower), then [`Catalog::wait_for_change`].
    pub fn listen(&mut self) -> Result<()> {
        if let Some(t) = self.team.as_mut() {
            connected(&mut t.link, &t.url, &t.key)?.listen()?;
        }
        Ok(())
    }

    /// Wait up to `timeout` for a change announced by the team library (after
    /// [`Catalog::listen`]); true when one came.
    pub fn wait_for_change(&mut self, timeout: std::time::Duration) -> Result<bool> {
        match self.team.as_mut().and_then(|t| t.link.as_mut()) {
            Some(l) => l.wait(timeout),
            None => {
                std::thread::sleep(timeout);
                Ok(false)
            }
        }
    }

    /// Forget the team library's connection (after an error), so the next use makes a new one.
    pub fn reconnect_later(&mut self) {
        if let Some(t) = self.team.as_mut() {
            t.link = None;
        }
    }

    /// The connection, for another thread to read on while this catalog is not used (see
    /// `View::load_with`).
    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Copy the WAL into the catalog file and truncate it, after an erasure or a purge: until
    /// then the WAL still holds the pages as they were before (names, data keys). Waits for
    /// readers (the daemon's) for the connection's busy timeout; a checkpoint that cannot
    /// finish is logged, the next one completes it.
    ///
    /// For a team library's copy, the library is compacted too: a snapshot of this copy
    /// replaces every older change (which still hold what was just erased) in PostgreSQL.
    pub fn checkpoint(&mut self) {
        if let Some(t) = self.team.as_mut() {
            let done = connected(&mut t.link, &t.url, &t.key).and_then(|link| {
                team::replica::snapshot_and_compact(&self.conn, link, &t.key, &t.dir)
            });
            match done {
                Ok(seq) => log::info!("team catalog compacted into the snapshot of change {seq}"),
                Err(e) => log::error!(
                    "cannot compact the team library after an erasure: its log still holds the erased data, sealed ({e}); run `consentfs check` once it is reachable"
                ),
            }
        }
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
        if self.team.is_some() {
            // the library's log is the truth a copy is checked against: a copy rolled back is
            // behind, and catches up
            return Ok(());
        }
        let given_up = a.check(&self.conn, accept_rollback).map_err(|e| match (e, &self.wal_loss) {
            (Error::Integrity { what, detail }, Some(loss)) => Error::Integrity {
                what,
                detail: format!(
                    "{detail} When the catalog was opened, {}: that is why it is behind; those changes are lost.",
                    loss.found()
                ),
            },
            (e, _) => e,
        })?;
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

    /// The catalog file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn audit_key(&self) -> &Key {
        &self.audit_key
    }

    /// Make [`Catalog::begin`] wait up to `limit` for the write lock, saying after a second
    /// which consentfs processes of the store at `store_root` hold it (a command line waits
    /// for an import's batch or a save; someone watching should know why and for whom),
    /// and failing with their names after `limit`.
    pub fn wait_naming_holders(&mut self, store_root: &Path, limit: std::time::Duration) {
        self.wait = Some(Waiting {
            store_root: store_root.to_path_buf(),
            limit,
        });
    }

    /// Start a write transaction. `BEGIN IMMEDIATE` takes the write lock at once, so two
    /// concurrent commands serialise instead of failing half-way. No command holds it for
    /// long (an import commits in short batches), so the wait is normally short.
    pub fn begin(&mut self, actor: &str, now: Time) -> Result<Tx<'_>> {
        self.check_pending()?;
        if self.pending.is_some() {
            return self.join(actor, now);
        }
        let within = self.wait.as_ref().map_or(BUSY_WAIT, |w| w.limit);
        self.lock_team(within)?;
        self.open_tx(
            |conn, wait| match wait {
                None => Ok(rusqlite::Transaction::new_unchecked(
                    conn,
                    TransactionBehavior::Immediate,
                )?),
                Some(w) => Self::begin_waiting(conn, w),
            },
            actor,
            now,
        )
    }

    /// For a team library's copy: take the library's write lock, then bring the copy up to
    /// the library's latest change, so the transaction that follows works on the state its
    /// change will apply to on every machine.
    /// `within`: how long to wait for another machine's command to release it (then the
    /// error [`is_busy`] recognises, as for SQLite's lock).
    fn lock_team(&mut self, within: std::time::Duration) -> Result<()> {
        let Some(t) = self.team.as_mut() else {
            return Ok(());
        };
        if !connected(&mut t.link, &t.url, &t.key)?.lock(within)? {
            return Err(Error::Catalog(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                Some(format!(
                    "the team library is being written by another machine's command (waited {} s)",
                    within.as_secs_f32()
                )),
            )));
        }
        if let Err(e) = self.sync() {
            self.unlock_team();
            return Err(e);
        }
        Ok(())
    }

    fn unlock_team(&mut self) {
        if let Some(l) = self.team.as_mut().and_then(|t| t.link.as_mut()) {
            l.rollback();
        }
    }

    /// A [`Tx`] of its own, begun by `start` (which waits for SQLite's write lock as the
    /// caller wants); for a team library's copy, recording its change.
    fn open_tx<'c>(
        &'c mut self,
        start: impl FnOnce(&'c Connection, Option<&Waiting>) -> Result<rusqlite::Transaction<'c>>,
        actor: &str,
        now: Time,
    ) -> Result<Tx<'c>> {
        let Catalog {
            conn,
            team,
            pending,
            pending_ended,
            audit_key,
            anchor,
            wait,
            waiters,
            ..
        } = self;
        let conn: &'c Connection = conn;
        let allowed = team.as_ref().map(|t| t.allowed.clone());
        let link = team.as_mut().and_then(|t| t.link.as_mut());
        let started = {
            // while SQLite waits for the lock, the daemon can see it and let this one in
            let _waiting = waiters.waiting();
            start(conn, wait.as_ref())
        };
        let started = started.and_then(|tx| {
            Ok((
                tx,
                link.is_some()
                    .then(|| team::replica::record(conn))
                    .transpose()?,
            ))
        });
        let (tx, session) = match started {
            Ok(s) => s,
            Err(e) => {
                if let Some(l) = link {
                    l.rollback();
                }
                return Err(e);
            }
        };
        let team = link
            .zip(session)
            .zip(allowed)
            .map(|((link, session), allowed)| TxTeam {
                link,
                session,
                allowed,
            });
        Ok(Tx {
            inner: Inner::Own(tx),
            pending,
            pending_ended,
            actor: actor.to_string(),
            now,
            audit_key,
            anchor: anchor.as_ref(),
            team,
        })
    }

    /// The transaction [`Tx::commit_later`] left open is gone (SQLite rolls a transaction back
    /// by itself on some errors, e.g. a full disk): say so, once, as an error, so that the
    /// caller forgets what it assumed of it (see [`Catalog::pending_for`]).
    fn check_pending(&mut self) -> Result<()> {
        if self.pending.is_some() && self.conn.is_autocommit() {
            self.pending = None;
            return Err(Error::invalid(
                "the catalog transaction of the latest new files was rolled back",
            ));
        }
        Ok(())
    }

    /// A transaction inside the one [`Tx::commit_later`] left open: a savepoint, so that a
    /// failing change undoes only itself; its commit commits the earlier work too.
    fn join(&mut self, actor: &str, now: Time) -> Result<Tx<'_>> {
        self.conn.execute_batch("SAVEPOINT consentfs_joined")?;
        self.pending_joined = Some(std::time::Instant::now());
        Ok(Tx {
            inner: Inner::Joined(&self.conn),
            pending: &mut self.pending,
            pending_ended: &mut self.pending_ended,
            actor: actor.to_string(),
            now,
            audit_key: &self.audit_key,
            anchor: self.anchor.as_ref(),
            team: None,
        })
    }

    /// Whether a transaction left open by [`Tx::commit_later`] waits for its commit, and since
    /// how long.
    pub fn pending_for(&self) -> Option<std::time::Duration> {
        self.pending.map(|t| t.elapsed())
    }

    /// How long the transaction [`Tx::commit_later`] left open has had nothing join it (since
    /// it began, or since the last transaction that joined it): files that stopped streaming
    /// in are committed at once instead of at the end of the window.
    pub fn pending_idle(&self) -> Option<std::time::Duration> {
        let began = self.pending?;
        let last = self.pending_joined.filter(|j| *j > began).unwrap_or(began);
        Some(last.elapsed())
    }

    /// How long ago the last transaction [`Tx::commit_later`] left open ended (`None`: none
    /// yet), so that the daemon can leave the write lock free for a while between them.
    pub fn since_pending(&self) -> Option<std::time::Duration> {
        self.pending_ended.map(|t| t.elapsed())
    }

    /// Whether another connection (another command, another thread's connection) waits for
    /// the write lock: then a transaction [`Tx::commit_later`] left open is committed at once
    /// and no new one is left open (see [`waiters`]).
    pub fn others_waiting(&self) -> bool {
        self.waiters.others()
    }

    /// When the transaction [`Tx::commit_later`] left open started (it names that
    /// transaction: a later one starts later).
    pub fn pending_since(&self) -> Option<std::time::Instant> {
        self.pending
    }

    /// Commit the transaction [`Tx::commit_later`] left open, if any, and move the rollback
    /// anchor to it. Returns whether there was one. On an error the open transaction is rolled
    /// back (what it held is lost; the caller must forget what it assumed of it).
    pub fn commit_pending(&mut self) -> Result<bool> {
        if self.pending.take().is_none() {
            return Ok(false);
        }
        self.pending_ended = Some(std::time::Instant::now());
        let committed = (|| -> Result<Option<anchor::Head>> {
            let head = match self.anchor {
                Some(_) => Some(anchor::current(&self.conn)?),
                None => None,
            };
            self.conn.execute_batch("COMMIT")?;
            Ok(head)
        })();
        match committed {
            Ok(head) => {
                if let (Some(a), Some(h)) = (&self.anchor, head) {
                    if let Err(e) = a.advance(&h) {
                        log::error!("cannot move the rollback anchor forward: {e}");
                    }
                }
                Ok(true)
            }
            Err(e) => {
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                Err(e)
            }
        }
    }

    /// Like [`Catalog::begin`], but wait at most `wait` for the write lock, then fail with an
    /// error [`is_busy`] recognises (the daemon queues a save rather than hold its writer).
    pub fn begin_within(
        &mut self,
        actor: &str,
        now: Time,
        wait: std::time::Duration,
    ) -> Result<Tx<'_>> {
        self.check_pending()?;
        if self.pending.is_some() {
            // the write lock is this connection's already
            return self.join(actor, now);
        }
        self.lock_team(wait)?;
        self.open_tx(
            |conn, _| {
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
                Ok(tx)
            },
            actor,
            now,
        )
    }
}

impl Catalog {
    fn begin_waiting<'c>(conn: &'c Connection, w: &Waiting) -> Result<rusqlite::Transaction<'c>> {
        let started = std::time::Instant::now();
        let mut told = false;
        let result = loop {
            let left = w.limit.saturating_sub(started.elapsed());
            let step = if told { left } else { SAY_AFTER.min(left) };
            conn.busy_timeout(step.max(std::time::Duration::from_millis(1)))?;
            match rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate) {
                Ok(tx) => break Ok(tx),
                Err(e) => {
                    let e = Error::from(e);
                    if !is_busy(&e) {
                        break Err(e);
                    }
                    if started.elapsed() >= w.limit {
                        let who = holders(&w.store_root);
                        break Err(Error::invalid(format!(
                            "the catalog stayed busy for {} s, in use by: {who}; try again when it has finished",
                            w.limit.as_secs()
                        )));
                    }
                    if !told {
                        told = true;
                        let who = holders(&w.store_root);
                        eprintln!("consentfs: waiting for the catalog, in use by: {who}…");
                    }
                }
            }
        };
        conn.busy_timeout(BUSY_WAIT)?;
        result
    }
}

/// The other consentfs processes of the store, for a message.
fn holders(store_root: &Path) -> String {
    let others = crate::store::running::others(store_root);
    if others.is_empty() {
        "another program (no other consentfs command is registered)".to_string()
    } else {
        others
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A command's write transaction: dropped without [`Tx::commit`] (or [`Tx::commit_later`]),
/// nothing of it remains.
pub struct Tx<'c> {
    inner: Inner<'c>,
    /// The catalog's open transaction left for a later commit (see [`Tx::commit_later`]).
    pending: &'c mut Option<std::time::Instant>,
    pending_ended: &'c mut Option<std::time::Instant>,
    actor: String,
    now: Time,
    audit_key: &'c Key,
    anchor: Option<&'c anchor::Anchor>,
    /// For a team library's copy: the library's connection (holding its write lock) and the
    /// recording of this transaction's change.
    team: Option<TxTeam<'c>>,
}

struct TxTeam<'c> {
    link: &'c mut team::Link,
    session: rusqlite::session::Session<'c>,
    allowed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

enum Inner<'c> {
    /// A transaction of its own (`BEGIN IMMEDIATE`).
    Own(rusqlite::Transaction<'c>),
    /// A savepoint inside the transaction an earlier [`Tx::commit_later`] left open.
    Joined(&'c Connection),
    /// Committed, or handed on (nothing to undo when dropped).
    Done,
}

impl Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match &self.inner {
            Inner::Own(tx) => tx,
            Inner::Joined(c) => c,
            Inner::Done => unreachable!("a finished transaction is consumed"),
        }
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.team.take() {
            t.link.rollback();
        }
        if let Inner::Joined(c) = std::mem::replace(&mut self.inner, Inner::Done) {
            // undo this change only; what the open transaction held before stays
            if let Err(e) =
                c.execute_batch("ROLLBACK TO consentfs_joined; RELEASE consentfs_joined")
            {
                log::error!("cannot undo a failed change: {e}");
            }
            if c.is_autocommit() {
                // SQLite rolled the whole transaction back by itself
                *self.pending = None;
            }
        }
        // Inner::Own rolls back when dropped
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
        audit::append(self, self.audit_key, self.now, &self.actor, action, &detail)
    }
    /// For a team library's copy: make `keyring` (the keyring file's bytes) the library's,
    /// committed with this transaction, so that a machine joining later or opening its copy
    /// next unlocks with the ways of unlocking it holds (a removed passphrase opens nothing
    /// anywhere). Nothing for a store of its own.
    pub fn share_keyring(&mut self, keyring: &[u8]) -> Result<()> {
        if let Some(t) = self.team.as_mut() {
            t.link.set_meta(team::log::KEYRING, keyring, false)?;
        }
        Ok(())
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
        audit::append(self, self.audit_key, at, actor, action, &detail)
    }
    /// Commit, then move the rollback anchor to the new audit head. The change is made once
    /// SQLite commits; an anchor that cannot be written is logged (the catalog is then ahead
    /// of its anchor, which is never refused) rather than reported as a failed command.
    pub fn commit(mut self) -> Result<()> {
        if let Some(t) = self.team.take() {
            return self.commit_team(t);
        }
        let head = match self.anchor {
            Some(_) => Some(anchor::current(&self)?),
            None => None,
        };
        match std::mem::replace(&mut self.inner, Inner::Done) {
            Inner::Own(tx) => tx.commit()?,
            Inner::Joined(c) => {
                // from here on, a failure rolls back the whole open transaction: it was
                // this change's to commit
                *self.pending = None;
                *self.pending_ended = Some(std::time::Instant::now());
                let done = c.execute_batch("RELEASE consentfs_joined; COMMIT");
                if let Err(e) = done {
                    if !c.is_autocommit() {
                        let _ = c.execute_batch("ROLLBACK");
                    }
                    return Err(e.into());
                }
            }
            Inner::Done => {}
        }
        if let (Some(a), Some(h)) = (self.anchor, head) {
            if let Err(e) = a.advance(&h) {
                log::error!("cannot move the rollback anchor forward: {e}");
            }
        }
        Ok(())
    }

    /// Keep this change but leave its transaction open, holding the write lock: the next
    /// transaction on this catalog joins it and commits both at once, or
    /// [`Catalog::commit_pending`] does. For a change that need not be durable on its own
    /// (a file created through the mount is made durable by its close or fsync), so that a
    /// create and the save that follows cost one commit. The caller must see to it that
    /// [`Catalog::commit_pending`] runs within milliseconds: other commands wait meanwhile.
    pub fn commit_later(mut self) -> Result<()> {
        if self.team.is_some() {
            // a team library's change must reach the library before anything relies on it
            return self.commit();
        }
        match std::mem::replace(&mut self.inner, Inner::Done) {
            Inner::Own(mut tx) => {
                tx.set_drop_behavior(rusqlite::DropBehavior::Ignore);
                drop(tx);
                *self.pending = Some(std::time::Instant::now());
            }
            Inner::Joined(c) => {
                if let Err(e) = c.execute_batch("RELEASE consentfs_joined") {
                    self.inner = Inner::Joined(c);
                    return Err(e.into());
                }
            }
            Inner::Done => {}
        }
        Ok(())
    }
}

impl Tx<'_> {
    /// A team library's copy: append this transaction's change to the library's log (which
    /// commits it there and releases the lock), then commit it here. A change the library has
    /// but this copy failed to commit is applied on the copy's next catch-up, like another
    /// machine's.
    fn commit_team(mut self, mut t: TxTeam<'_>) -> Result<()> {
        let Inner::Own(tx) = std::mem::replace(&mut self.inner, Inner::Done) else {
            t.link.rollback();
            return Err(Error::invalid(
                "a team library's change cannot join another transaction",
            ));
        };
        let appended = (|| -> Result<Option<i64>> {
            let patch = team::replica::patchset(&mut t.session)?;
            if patch.is_empty() {
                return Ok(None);
            }
            let seq = team::replica::applied(&tx)? + 1;
            team::replica::set_applied(&tx, seq)?;
            t.link.append(seq, &patch)?;
            Ok(Some(seq))
        })();
        drop(t.session);
        match appended {
            Err(e) => {
                t.link.rollback();
                Err(e)
            }
            Ok(None) => {
                t.link.rollback();
                let _allowed = Allowed::new(&t.allowed);
                tx.commit()?;
                Ok(())
            }
            Ok(Some(seq)) => {
                // Fault injection for the test that a command killed between the library's
                // commit and its copy's loses nothing: dies the way SIGKILL does.
                if std::env::var("CONSENTFS_FAULT").as_deref() == Ok("die-after-append") {
                    // SAFETY: _exit ends the process at once; nothing is borrowed across it.
                    unsafe { libc::_exit(137) };
                }
                let _allowed = Allowed::new(&t.allowed);
                if let Err(e) = tx.commit() {
                    log::error!("change {seq} is in the team library, but this machine's copy could not commit it ({e}); it is applied on the next catch-up");
                }
                Ok(())
            }
        }
    }
}

/// Why a catalog that opened cannot be read: a wrong key (SQLCipher reports "not a database"),
/// a damaged file, or a log deleted under it; each says what to do.
fn open_error(path: &Path, len: u64, e: rusqlite::Error) -> Error {
    let code = match &e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    };
    let shown = path.display();
    let detail = match code {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            format!("{shown} cannot be decrypted with this store's key ({e})")
        }
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => format!(
            "{shown} is damaged ({e}; the file has {len} bytes, {} pages; it may have been truncated); restore it from a backup",
            len / wal::PAGE_SIZE
        ),
        _ => format!("{shown} cannot be read ({e})"),
    };
    Error::integrity("catalog", detail)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A change left for a later commit is seen by its own connection at once, by no other
    /// until the next change commits both; a change that fails inside it undoes only itself;
    /// and one never committed is gone when the connection closes.
    #[test]
    fn a_change_committed_later_goes_with_the_next() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("s");
        let store = crate::store::Store::init(
            &root,
            None,
            Some(&d.path().join("k")),
            chrono::Utc::now(),
            "t",
        )
        .unwrap();
        let open = || {
            Catalog::open(
                &store.catalog_path(),
                &store.catalog_key(),
                store.audit_key(),
            )
            .unwrap()
        };
        let count = |c: &Catalog| -> i64 {
            c.conn()
                .query_row("SELECT count(*) FROM purposes", [], |r| r.get(0))
                .unwrap()
        };
        let add = |tx: &Tx, name: &str| {
            tx.execute(
                "INSERT INTO purposes (name, basis) VALUES (?1, 'consent')",
                [name],
            )
            .map(|_| ())
        };
        let (mut mine, other) = (open(), open());
        let before = count(&other);
        let tx = mine.begin("t", chrono::Utc::now()).unwrap();
        add(&tx, "later").unwrap();
        tx.audit("test.later", serde_json::json!({})).unwrap();
        tx.commit_later().unwrap();
        assert!(mine.pending_for().is_some());
        assert_eq!(count(&mine), before + 1);
        assert_eq!(
            count(&other),
            before,
            "another connection saw an uncommitted change"
        );
        // a failing change joins and undoes only itself
        let tx = mine.begin("t", chrono::Utc::now()).unwrap();
        add(&tx, "doomed").unwrap();
        assert!(add(&tx, "doomed").is_err(), "purpose names are unique");
        drop(tx);
        assert!(mine.pending_for().is_some());
        assert_eq!(count(&mine), before + 1);
        // the next change commits both
        let tx = mine.begin("t", chrono::Utc::now()).unwrap();
        add(&tx, "next").unwrap();
        tx.commit().unwrap();
        assert!(mine.pending_for().is_none());
        assert_eq!(count(&other), before + 2);
        let verified = audit::verify(other.conn(), other.audit_key()).unwrap();
        assert!(verified.problems.is_empty(), "{:?}", verified.problems);
        // left open and never committed: gone with the connection
        let tx = mine.begin("t", chrono::Utc::now()).unwrap();
        add(&tx, "lost").unwrap();
        tx.commit_later().unwrap();
        drop(mine);
        assert_eq!(count(&other), before + 2);
        // committed on demand
        let mut again = open();
        let tx = again.begin("t", chrono::Utc::now()).unwrap();
        add(&tx, "settled").unwrap();
        tx.commit_later().unwrap();
        assert!(again.commit_pending().unwrap());
        assert!(!again.commit_pending().unwrap());
        assert_eq!(count(&other), before + 3);
    }

    /// A command that cannot get the write lock waits (beyond the connection's busy timeout
    /// would be too slow here: a short limit), then fails with a message saying who uses the
    /// store, as a usage error (exit 2), and its connection waits as before afterwards.
    #[test]
    fn begin_gives_up_after_its_limit_naming_the_holders() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("s");
        let store = crate::store::Store::init(
            &root,
            None,
            Some(&d.path().join("k")),
            chrono::Utc::now(),
            "t",
        )
        .unwrap();
        let open = || {
            Catalog::open(
                &store.catalog_path(),
                &store.catalog_key(),
                store.audit_key(),
            )
        };
        let mut holder = open().unwrap();
        let mut waiter = open().unwrap();
        waiter.wait_naming_holders(&root, Duration::from_secs(2));
        let held = holder.begin("holder", chrono::Utc::now()).unwrap();
        let started = Instant::now();
        let e = waiter
            .begin("waiter", chrono::Utc::now())
            .err()
            .expect("the lock is held");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(2), "{waited:?}");
        let msg = e.to_string();
        // the holder here is this very process, which never names itself
        assert!(
            msg.contains("stayed busy for 2 s, in use by: another program"),
            "{msg}"
        );
        assert_eq!(e.exit_code(), 2);
        held.commit().unwrap();
        // once free, the waiter gets it at once
        waiter
            .begin("waiter", chrono::Utc::now())
            .unwrap()
            .commit()
            .unwrap();
    }
}
