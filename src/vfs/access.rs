//! The access log: the first open of an asset per user, purpose and day is written to the
//! hash-chained audit log (`access.open`), so the privacy officer can say who used a person's
//! photos (`consentfs audit report --person`), e.g. for a breach report.
//!
//! The entry is committed *before* the open succeeds, so a file is normally never served
//! without its record. One exception keeps the mount usable: while another command holds the
//! catalog's write lock (a long import runs in one transaction), the entry is queued in memory
//! with its own time and actor, the file is served, and the queue is written as soon as the lock
//! is free (the watcher retries every poll, and unmounting waits for it). Any other failure to
//! record refuses the open (EIO) rather than let it go unrecorded.
//!
//! Later opens the same day are not logged again, which keeps tools that open many files fast;
//! what was logged today is loaded from the audit log at mount time, so a restart does not log
//! everything twice.

use super::{Caller, Vfs};
use crate::error::Result;
use crate::policy::{AssetId, PurposeId, Time};
use chrono::NaiveDate;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// How long an open waits for the catalog's write lock before queueing its entry.
const OPEN_WAIT: Duration = Duration::from_millis(100);
/// The catalog connection's usual wait for the lock (see `catalog::keyed_connection`).
const NORMAL_WAIT: Duration = Duration::from_secs(10);

/// An entry not yet in the audit log.
pub(super) struct Queued {
    at: Time,
    actor: String,
    detail: serde_json::Value,
}

/// What was logged (or queued) today: (user tree, purpose, asset), and the queue.
pub(super) struct OpenedToday {
    day: NaiveDate,
    seen: HashSet<(Arc<str>, PurposeId, AssetId)>,
    queue: Vec<Queued>,
}

impl OpenedToday {
    pub(super) fn load(conn: &rusqlite::Connection) -> OpenedToday {
        let now = chrono::Utc::now();
        let day = now.date_naive();
        let midnight = day.and_time(chrono::NaiveTime::MIN).and_utc();
        let seen = match crate::catalog::audit::opens_since(conn, midnight) {
            Ok(list) => list
                .into_iter()
                .map(|(login, purpose, asset)| (Arc::from(login.as_str()), purpose, asset))
                .collect(),
            Err(e) => {
                log::warn!("cannot read today's access entries: {e}");
                HashSet::new()
            }
        };
        OpenedToday {
            day,
            seen,
            queue: Vec::new(),
        }
    }
}

/// The OS login of a caller, as the audit log's actor.
fn login_of(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid{uid}"))
}

impl Vfs {
    fn opened(&self) -> std::sync::MutexGuard<'_, OpenedToday> {
        self.opened.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write `entries` in one transaction, waiting at most `wait` in all: for the daemon's
    /// connection (a save through the mount may hold it while it waits for the catalog) and
    /// then for the catalog's write lock. An open never queues behind another request for
    /// longer than that; the entry is queued instead (reported as busy).
    fn commit_entries(&self, entries: &[Queued], wait: Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + wait;
        let mut cat = loop {
            match self.catalog.try_lock() {
                Ok(c) => break c,
                Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(crate::error::Error::Catalog(
                            rusqlite::Error::SqliteFailure(
                                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                                Some("the daemon's catalog connection is in use".into()),
                            ),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        };
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        cat.conn().busy_timeout(left)?;
        let result = (|| {
            // (a team library's write lock is waited for as long, no longer)
            let tx = cat.begin_within("consentfs", chrono::Utc::now(), left)?;
            for e in entries {
                tx.audit_as(e.at, &e.actor, "access.open", e.detail.clone())?;
            }
            tx.commit()
        })();
        cat.conn().busy_timeout(NORMAL_WAIT)?;
        result
    }

    /// Record the first open today of `asset` in `login`'s `purpose` tree.
    pub(super) fn record_open(
        &self,
        caller: Caller,
        login: &Arc<str>,
        purpose: PurposeId,
        asset: AssetId,
    ) -> Result<()> {
        let key = (login.clone(), purpose, asset);
        let now = chrono::Utc::now();
        {
            let mut o = self.opened();
            if o.day != now.date_naive() {
                o.day = now.date_naive();
                o.seen.clear();
            }
            if o.seen.contains(&key) {
                return Ok(());
            }
        }
        // only a first open pays for this lookup
        let version = self
            .view()
            .asset(asset)
            .and_then(|i| i.version.as_ref().map(|v| v.version));
        let entry = Queued {
            at: now,
            actor: login_of(caller.uid),
            detail: serde_json::json!({
                "asset": asset,
                "version": version,
                "purpose": purpose,
                "user": &**login,
                "uid": caller.uid,
            }),
        };
        // whatever is still queued goes first, in the order it happened
        let mut batch = std::mem::take(&mut self.opened().queue);
        batch.push(entry);
        match self.commit_entries(&batch, OPEN_WAIT) {
            Ok(()) => {
                self.opened().seen.insert(key);
                Ok(())
            }
            Err(e) if crate::catalog::is_busy(&e) => {
                log::info!(
                    "catalog busy (another command holds it): {} access entr(y/ies) queued",
                    batch.len()
                );
                let mut o = self.opened();
                batch.append(&mut o.queue);
                o.queue = batch;
                o.seen.insert(key);
                Ok(())
            }
            Err(e) => {
                // put the older ones back; this open is refused by the caller
                batch.pop();
                let mut o = self.opened();
                batch.append(&mut o.queue);
                o.queue = batch;
                Err(e)
            }
        }
    }

    /// Write queued access entries if the catalog lets us within `wait`; true when none are
    /// left. Called by the watcher at every poll and at unmount.
    pub fn flush_access_log(&self, wait: Duration) -> bool {
        let batch = std::mem::take(&mut self.opened().queue);
        if batch.is_empty() {
            return true;
        }
        match self.commit_entries(&batch, wait) {
            Ok(()) => {
                log::info!("{} queued access entr(y/ies) written", batch.len());
                true
            }
            Err(e) => {
                if !crate::catalog::is_busy(&e) {
                    log::warn!("cannot write queued access entries yet: {e}");
                }
                let mut o = self.opened();
                let mut batch = batch;
                batch.append(&mut o.queue);
                o.queue = batch;
                false
            }
        }
    }
}
