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

/// Start the follower thread for a team library's copy (nothing for a store of its own).
pub fn start(
    store: &Store,
    vfs: Arc<Vfs>,
    lease: Duration,
    stop: Arc<AtomicBool>,
) -> Result<Option<std::thread::JoinHandle<()>>> {
    let mut catalog = Catalog::open(
        &store.catalog_path(),
        &store.catalog_key(),
        store.audit_key(),
    )?;
    if !catalog.is_team() {
        return Ok(None);
    }
    vfs.live.require_lease(lease);
    let state = store.root().join(crate::store::NOT_SERVING);
    let handle = std::thread::Builder::new()
        .name("follower".into())
        .spawn(move || follow(&mut catalog, &vfs, &stop, &state))
        .map_err(|e| crate::error::Error::io("cannot start the follower thread", e))?;
    Ok(Some(handle))
}

fn follow(catalog: &mut Catalog, vfs: &Vfs, stop: &AtomicBool, state: &std::path::Path) {
    let mut listening = false;
    let mut last_warned: Option<Instant> = None;
    let mut shown_problem: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        // listen before reading the log, so no change announced in between is missed
        let caught_up = (|| {
            if !listening {
                catalog.listen()?;
                listening = true;
            }
            catalog.sync()
        })();
        match caught_up {
            Ok(_) => {
                vfs.live.renew();
                if last_warned.take().is_some() {
                    log::warn!("the team catalog answers again");
                }
            }
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
