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
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
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

/// The ids sent with `first` until none came for [`GATHER`], each once, in the order sent.
/// The thread sleeps between looks instead of waiting on the channel: a sender then never
/// wakes it, so a burst of saves costs no thread switch per file.
fn gather(first: AssetId, rx: &Receiver<AssetId>) -> Vec<AssetId> {
    let mut seen = std::collections::HashSet::from([first]);
    let mut ids = vec![first];
    loop {
        std::thread::sleep(GATHER);
        let before = ids.len();
        let mut gone = false;
        loop {
            match rx.try_recv() {
                Ok(id) => {
                    if seen.insert(id) {
                        ids.push(id);
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    gone = true;
                    break;
                }
            }
        }
        if gone || ids.len() == before {
            return ids;
        }
    }
}

fn run(store: &Store, rx: &Receiver<AssetId>) {
    faces::lower_priority();
    // the model is loaded with the first saved draft: a mount where nobody saves new files
    // never holds it in memory
    let mut finder: Option<Option<Box<dyn faces::Finder>>> = None;
    let mut catalog: Option<Catalog> = None;
    while let Ok(first) = rx.recv() {
        let mut ids = gather(first, rx);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids sent while the thread sleeps are all gathered, each once, in the order sent; the
    /// gathering ends once a look finds nothing new.
    #[test]
    fn a_burst_is_gathered_once_each_in_order() {
        let (tx, rx) = sync_channel::<AssetId>(QUEUE);
        let sender = std::thread::spawn(move || {
            for id in [2, 3, 2, 4] {
                tx.send(id).unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
            std::thread::sleep(GATHER * 3);
            tx.send(9).unwrap();
        });
        assert_eq!(gather(1, &rx), vec![1, 2, 3, 4]);
        assert_eq!(
            rx.recv().unwrap(),
            9,
            "a later save starts the next gathering"
        );
        sender.join().unwrap();
    }
}
