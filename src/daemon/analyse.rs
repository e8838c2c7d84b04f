//! New files saved through the mount are looked at as imported photos are: a perceptual hash
//! (so a crop or re-export of a photo already in the store, copied in from elsewhere, gets a
//! `derive --from` suggestion and keeps its persons once accepted) and, with the model
//! installed, their faces (rule 3 counts them before the draft can become a photo).
//!
//! This runs in one thread of its own at nice 10 with its own catalog connection, after the
//! save was answered: a save never waits for it, and the mount's request threads never
//! decode or detect. What it misses (the daemon stopped, the queue full) `faces scan --all`
//! catches later: scans are per version.

use crate::catalog::Catalog;
use crate::domain::{faces, Session};
use crate::error::{Error, Result};
use crate::policy::AssetId;
use crate::store::Store;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::Duration;

/// Saved drafts waiting to be looked at, at most (beyond that they wait for `faces scan`).
const QUEUE: usize = 10_000;
/// Saves that come together (an unpacked archive) are looked at together.
const GATHER: Duration = Duration::from_millis(500);

/// Start the thread; returns where to send the ids of drafts with a new version.
pub fn start(store: Arc<Store>) -> Result<SyncSender<AssetId>> {
    let (tx, rx) = sync_channel::<AssetId>(QUEUE);
    std::thread::Builder::new()
        .name("analyse".into())
        .spawn(move || run(&store, &rx))
        .map_err(|e| Error::io("cannot start the thread that looks at saved files", e))?;
    Ok(tx)
}

fn run(store: &Store, rx: &Receiver<AssetId>) {
    faces::lower_priority();
    // the model is loaded with the first saved draft: a mount where nobody saves new files
    // never holds it in memory
    let mut finder: Option<Option<Box<dyn faces::Finder>>> = None;
    let mut catalog: Option<Catalog> = None;
    while let Ok(first) = rx.recv() {
        let mut ids = vec![first];
        loop {
            match rx.recv_timeout(GATHER) {
                Ok(id) => {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let cat = match catalog.as_mut() {
            Some(c) => c,
            None => match Catalog::open(
                &store.catalog_path(),
                &store.catalog_key(),
                store.audit_key(),
            ) {
                Ok(c) => catalog.insert(c),
                Err(e) => {
                    log::warn!("saved files were not looked at for faces and look-alikes: {e}");
                    continue;
                }
            },
        };
        // only what is still a draft (one saved over a photo meanwhile is that photo's version)
        ids.retain(|id| {
            crate::catalog::assets::get(cat.conn(), *id)
                .ok()
                .flatten()
                .is_some_and(|a| a.status == crate::policy::Status::Draft)
        });
        if ids.is_empty() {
            continue;
        }
        let mut s = Session {
            store,
            catalog: cat,
            actor: "consentfs-daemon",
            now: chrono::Utc::now(),
        };
        let finder = finder.get_or_insert_with(|| match faces::finder() {
            Ok(f) => f,
            Err(e) => {
                log::warn!("faces in files saved through the mount are not detected: {e}");
                None
            }
        });
        let targets = faces::Targets::These(ids.iter().map(|a| a.to_string()).collect());
        match faces::scan(&mut s, targets, finder.as_deref(), 1, &crate::export::Quiet) {
            Ok(done) => {
                for (asset, like) in &done.lookalikes {
                    log::info!("asset {asset}: saved through the mount; looks like asset {like} (suggested: derive)");
                }
                log::debug!(
                    "looked at {} saved file(s): {} scanned, {} skipped",
                    ids.len(),
                    done.scanned.len(),
                    done.skipped.len()
                );
            }
            Err(e) => log::warn!("saved files were not looked at for faces and look-alikes: {e}"),
        }
    }
}
