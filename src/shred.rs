//! Removing the files of crypto-shredded objects.
//!
//! A purge (trash, retention, erasure) destroys the data keys and queues the object files in the
//! same catalog transaction (`shred_queue`); the files are removed afterwards. A command killed
//! between its commit and the removal leaves the queue, not files that nothing will ever remove:
//! every command and every mount start works the queue off first. Purging the trash lives here
//! too, below the command line, because the mount purges at start as `trash purge` does.

use crate::catalog::{assets, Catalog};
use crate::error::Result;
use crate::policy::Time;
use crate::store::Store;

/// Remove the queued object files and take them off the queue; returns how many. A file that
/// is already gone counts as removed; one that cannot be removed stays queued (and the error
/// is returned) for the next try.
pub fn work_off(store: &Store, catalog: &mut Catalog, actor: &str) -> Result<usize> {
    let queued = assets::queued_shreds(catalog.conn(), chrono::Utc::now())?;
    if queued.is_empty() {
        return Ok(0);
    }
    // Fault injection for the test that a kill right after a purge's commit (files queued, none removed) loses nothing:
    // dies the way SIGKILL does (no destructors, no clean-up).
    if std::env::var("CONSENTFS_FAULT").as_deref() == Ok("die-before-shred") {
        // SAFETY: _exit ends the process at once; nothing is borrowed across it.
        unsafe { libc::_exit(137) };
    }
    // keys first (superseded objects kept theirs for their grace): the catalog never names
    // readable an object whose file is gone
    if assets::any_keyed(catalog.conn(), &queued)? {
        let tx = catalog.begin(actor, chrono::Utc::now())?;
        assets::destroy_keys(&tx, &queued)?;
        tx.commit()?;
    }
    let mut done = Vec::new();
    let mut failed = None;
    for o in queued {
        match store.remove_object(&o) {
            Ok(()) => done.push(o),
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    let tx = catalog.begin(actor, chrono::Utc::now())?;
    assets::shreds_done(&tx, &done)?;
    tx.commit()?;
    // the WAL still holds the pages from before the keys were destroyed
    catalog.checkpoint();
    match failed {
        Some(e) => Err(e),
        None => Ok(done.len()),
    }
}

/// How many assets one transaction of a purge shreds: the catalog's write lock is held for
/// a batch, never for a purge of the whole trash (a withdrawal or a save must get through).
const PURGE_BATCH: usize = 256;

/// Crypto-shred every asset trashed before `cutoff` (trash purge, retention, the mount's start);
/// returns how many. Each batch is read and purged in its own transaction (an asset restored
/// meanwhile is not purged); a purge killed half-way leaves whole assets purged and the rest in
/// the trash, for the next run.
pub fn purge_trash(
    store: &Store,
    catalog: &mut Catalog,
    actor: &str,
    now: Time,
    cutoff: Time,
) -> Result<usize> {
    let mut purged = 0;
    loop {
        let tx = catalog.begin(actor, now)?;
        let due = assets::trashed_before(&tx, cutoff, PURGE_BATCH)?;
        if due.is_empty() {
            break;
        }
        // counted in the transaction: a purge also takes trashed copies of the same content
        let before = assets::count_trashed_before(&tx, cutoff)?;
        for id in &due {
            assets::purge(&tx, *id)?;
        }
        let after = assets::count_trashed_before(&tx, cutoff)?;
        // a purge always leaves the trash; this guards the loop should it ever not
        if after >= before {
            return Err(crate::error::Error::invalid(
                "purging the trash makes no progress (catalog inconsistent?)",
            ));
        }
        tx.commit()?;
        purged += before - after;
    }
    work_off(store, catalog, actor)?;
    Ok(purged)
}
