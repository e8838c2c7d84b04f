//! Failing closed: the mount serves only while it knows the current consent state.
//!
//! The view is current only as long as the watcher keeps it in step with the catalog and the
//! clock. If the watcher dies (a panic), stops (a hang), or cannot read the catalog, the view
//! silently goes stale: a withdrawal or an expiry would not hide anything any more. So the
//! watcher beats a heartbeat after every complete round, and every request that could reveal a
//! photo (lookup, getattr, readdir, open, read, xattrs) first asks [`Liveness::check`]: no beat
//! for [`STALE_AFTER`], or a recorded failure, and it gets EACCES and the daemon logs why at
//! error level. A failure is permanent until the daemon restarts; a stale heartbeat heals when
//! the watcher beats again (e.g. the catalog was unreadable for a while).
//!
//! Without a watcher (the vfs used directly, as in tests that drive the view themselves) the
//! heartbeat is not required.

use crate::error::Error;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the view may go without a complete watcher round. The watcher polls every few
/// milliseconds; a round can wait up to a second for the kernel to drop cached pages, so three
/// seconds of silence mean it is stuck or dead, and an expiry may already have been missed.
pub const STALE_AFTER: Duration = Duration::from_secs(3);

pub struct Liveness {
    start: Instant,
    watched: AtomicBool,
    /// Milliseconds since `start` of the last complete watcher round.
    beat: AtomicU64,
    failed: Mutex<Option<String>>,
    /// Set with `failed`, so the check on every request reads an atomic, not a lock.
    has_failed: AtomicBool,
    /// Whether the "not serving" state was logged (logged once per episode, not per request).
    reported: AtomicBool,
    /// A team library's lease in milliseconds (0: none): how long the mount may go without
    /// having caught up with the library's change log (see `daemon::follow`).
    lease_ms: AtomicU64,
    /// Milliseconds since `start` of the last catch-up with the library.
    renewed: AtomicU64,
    /// Why the last catch-up failed, for the log line and `status`.
    lease_trouble: Mutex<Option<String>>,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            start: Instant::now(),
            watched: AtomicBool::new(false),
            beat: AtomicU64::new(0),
            failed: Mutex::new(None),
            has_failed: AtomicBool::new(false),
            reported: AtomicBool::new(false),
            lease_ms: AtomicU64::new(0),
            renewed: AtomicU64::new(0),
            lease_trouble: Mutex::new(None),
        }
    }
}

impl Liveness {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// From now on requests need a recent heartbeat (the daemon calls this when its watcher
    /// starts).
    pub fn require_heartbeat(&self) {
        self.beat();
        self.watched.store(true, Ordering::SeqCst);
    }

    /// The view is in step with the catalog and the clock as of now.
    pub fn beat(&self) {
        self.beat.store(self.now_ms(), Ordering::SeqCst);
        // (a lease that ran out keeps the mount closed: said when it is renewed)
        if self.reported.load(Ordering::SeqCst) && self.problem().is_none() {
            self.reported.store(false, Ordering::SeqCst);
            log::warn!("the view is current again: serving photos again");
        }
    }

    /// From now on requests also need a catch-up with the team library within `lease`.
    pub fn require_lease(&self, lease: Duration) {
        self.renew();
        let ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
        self.lease_ms.store(ms, Ordering::SeqCst);
    }

    /// The copy of the team library caught up with its log as of now.
    pub fn renew(&self) {
        self.renewed.store(self.now_ms(), Ordering::SeqCst);
        *self.lease_trouble.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if self.reported.load(Ordering::SeqCst) && self.problem().is_none() {
            self.reported.store(false, Ordering::SeqCst);
            log::warn!("the team catalog is reachable again and this copy has caught up: serving photos again");
        }
    }

    /// The last attempt to catch up with the team library failed, and why.
    pub fn lease_trouble(&self, why: &str) {
        *self.lease_trouble.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.to_string());
    }

    /// Stop serving for good (until restart), e.g. because the watcher thread panicked.
    pub fn fail(&self, why: &str) {
        log::error!("NOT SERVING PHOTOS ANY MORE: {why}; restart the mount to recover");
        *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.to_string());
        self.has_failed.store(true, Ordering::SeqCst);
        self.reported.store(true, Ordering::SeqCst);
    }

    fn failure(&self) -> Option<String> {
        if !self.has_failed.load(Ordering::SeqCst) {
            return None;
        }
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Why the mount must not serve now, if it must not.
    pub fn problem(&self) -> Option<String> {
        if let Some(f) = self.failure() {
            return Some(f);
        }
        if !self.watched.load(Ordering::SeqCst) {
            return None;
        }
        let silent = self
            .now_ms()
            .saturating_sub(self.beat.load(Ordering::SeqCst));
        if silent > STALE_AFTER.as_millis() as u64 {
            return Some(format!("the consent state was last confirmed {silent} ms ago (the watcher is stuck or cannot read the catalog)"));
        }
        let lease = self.lease_ms.load(Ordering::SeqCst);
        let behind = self
            .now_ms()
            .saturating_sub(self.renewed.load(Ordering::SeqCst));
        (lease > 0 && behind > lease).then(|| {
            let why = self
                .lease_trouble
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_else(|| "no answer".into());
            format!("the team catalog was last reached {behind} ms ago, longer than the lease of {lease} ms ({why}); a withdrawal on another machine may not be known here")
        })
    }

    /// `Ok` when the view is known to be current; otherwise EACCES, logged loudly once.
    pub fn check(&self) -> crate::error::Result<()> {
        match self.problem() {
            None => Ok(()),
            Some(why) => {
                if !self.reported.swap(true, Ordering::SeqCst) {
                    log::error!("NOT SERVING PHOTOS: {why}");
                }
                Err(Error::Denied(
                    "the mount does not know the current consent state".into(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_without_a_watcher_and_while_the_watcher_beats() {
        let l = Liveness::default();
        assert!(l.check().is_ok(), "no watcher: the caller drives the view");
        l.require_heartbeat();
        assert!(l.check().is_ok());
        l.beat();
        assert!(l.check().is_ok());
    }

    #[test]
    fn a_silent_watcher_closes_the_mount_until_it_beats_again() {
        let l = Liveness::default();
        l.require_heartbeat();
        // pretend the last beat was long ago
        l.beat.store(0, Ordering::SeqCst);
        std::thread::sleep(STALE_AFTER + Duration::from_millis(50));
        assert!(l.check().is_err());
        l.beat();
        assert!(l.check().is_ok());
    }

    #[test]
    fn a_lease_not_renewed_closes_the_mount_until_it_is() {
        let l = Liveness::default();
        l.require_heartbeat();
        l.require_lease(Duration::from_millis(100));
        assert!(l.check().is_ok());
        l.lease_trouble("Connection refused");
        std::thread::sleep(Duration::from_millis(150));
        l.beat();
        assert!(
            l.check().is_err(),
            "a watcher beat does not renew the lease"
        );
        assert!(l.problem().unwrap().contains("Connection refused"));
        l.renew();
        assert!(l.check().is_ok());
    }

    #[test]
    fn a_failure_closes_the_mount_for_good() {
        let l = Liveness::default();
        l.require_heartbeat();
        l.fail("the watcher thread panicked");
        assert!(l.check().is_err());
        l.beat();
        assert!(l.check().is_err(), "a beat does not undo a failure");
        assert!(l.problem().unwrap().contains("panicked"));
    }
}
