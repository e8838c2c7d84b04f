//! Following a team library: this machine's copy of the catalog kept in step with the
//! changes every other machine appends to the library's log.
//!
//! The follower listens on the library's notification channel and, on every announcement or
//! at least every [`POLL`], applies what is new to the copy; the watcher then sees the copy
//! change like any local commit and updates the view. Each catch-up renews the mount's lease
//! (`vfs::live`): a mount that has not caught up within the lease (the library unreachable,
//! the network cut, this thread stuck) stops serving photos until it has, because a
//! withdrawal made on another machine in the meantime would not be known here.

use crate::catalog::Catalog;
use crate::error::Result;
use crate::store::Store;
use crate::vfs::Vfs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest wait for an announcement before the log is read anyway (a notification lost
/// with a connection that broke, or never sent).
pub const POLL: Duration = Duration::from_millis(500);

/// How late each catch-up of `CONSENTFS_FAULT=follow-late` is.
const FOLLOW_LATE: Duration = Duration::from_secs(3);

/// A team library's follower, its catalog opened (before the mount answers: it connects to the
/// library), its thread not yet started.
pub struct Follower {
    catalog: Catalog,
    state: std::path::PathBuf,
}

/// Open the follower's catalog for a team library's copy (none for a store of its own), and
/// from now on require the lease.
pub fn prepare(store: &Store, vfs: &Vfs, lease: Duration) -> Result<Option<Follower>> {
    let catalog = Catalog::open(
        &store.catalog_path(),
        &store.catalog_key(),
        store.audit_key(),
    )?;
    if !catalog.is_team() {
        return Ok(None);
    }
    vfs.live.require_lease(lease);
    Ok(Some(Follower {
        catalog,
        state: store.root().join(crate::store::NOT_SERVING),
    }))
}

impl Follower {
    /// Start following. `applied` returns once the view shows what the copy holds now (a
    /// watcher round begun after the call, and the kernel told to forget what it no longer
    /// may show), false if not in time: the lease is renewed only then, so a mount that
    /// comes back never serves, even for a moment, what a change it just caught up with hid.
    pub fn spawn(
        mut self,
        vfs: Arc<Vfs>,
        stop: Arc<AtomicBool>,
        applied: Box<dyn Fn() -> bool + Send>,
    ) -> Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("follower".into())
            .spawn(move || follow(&mut self.catalog, &vfs, &stop, &self.state, &*applied))
            .map_err(|e| crate::error::Error::io("cannot start the follower thread", e))
    }
}

fn follow(
    catalog: &mut Catalog,
    vfs: &Vfs,
    stop: &AtomicBool,
    state: &std::path::Path,
    applied: &dyn Fn() -> bool,
) {
    let mut listening = false;
    let mut last_warned: Option<Instant> = None;
    let mut shown_problem: Option<String> = None;
    // Fault injection for the tests of a machine whose copy is a moment behind the library
    // (a slow network): every catch-up starts this much later.
    let late =
        (std::env::var("CONSENTFS_FAULT").as_deref() == Ok("follow-late")).then_some(FOLLOW_LATE);
    while !stop.load(Ordering::Relaxed) {
        if let Some(late) = late {
            std::thread::sleep(late);
        }
        // listen before reading the log, so no change announced in between is missed
        let caught_up = (|| {
            if !listening {
                catalog.listen()?;
                listening = true;
            }
            catalog.sync()
        })();
        match caught_up {
            Ok(_) if applied() => {
                vfs.live.renew();
                if last_warned.take().is_some() {
                    log::warn!("the team catalog answers again");
                }
            }
            Ok(_) => vfs
                .live
                .lease_trouble("the view did not take up the library's changes in time"),
            Err(e) => {
                let why = e.to_string();
                vfs.live.lease_trouble(&why);
                if last_warned.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    log::warn!("cannot catch up with the team catalog: {why}");
                    last_warned = Some(Instant::now());
                }
                catalog.reconnect_later();
                listening = false;
            }
        }
        show_state(state, vfs.live.problem(), &mut shown_problem);
        if listening {
            if let Err(e) = catalog.wait_for_change(POLL) {
                log::debug!("waiting for the team catalog's changes: {e}");
                catalog.reconnect_later();
                listening = false;
            }
        } else {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let _ = std::fs::remove_file(state);
}

/// Keep the replica folder's `not-serving` file in step with why the mount does not serve.
fn show_state(path: &std::path::Path, problem: Option<String>, shown: &mut Option<String>) {
    if problem == *shown {
        return;
    }
    let r = match &problem {
        Some(why) => crate::store::private::replace_file(path, why.as_bytes()),
        None => std::fs::remove_file(path)
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| crate::error::Error::io_path("remove", path, e)),
    };
    match r {
        Ok(()) => *shown = problem,
        Err(e) => log::debug!("cannot record the mount's state: {e}"),
    }
}
