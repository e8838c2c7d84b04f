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
        if self.reported.swap(false, Ordering::SeqCst) && self.failure().is_none() {
            log::warn!("the view is current again: serving photos again");
        }
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
        (silent > STALE_AFTER.as_millis() as u64).then(|| {
            format!("the consent state was last confirmed {silent} ms ago (the watcher is stuck or cannot read the catalog)")
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
