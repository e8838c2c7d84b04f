//! `consentfs passphrase change|remove` and `consentfs key-file add|remove`: change the ways
//! to open a store without touching a photo.
//!
//! The photos are encrypted under per-object data keys, wrapped by keys derived from the
//! master key; the master key itself is in the keyring, wrapped once per way of unlocking
//! (`crypto::keyring`). So a new passphrase or key file only wraps the master key anew and
//! replaces the keyring (atomically: a store is never left without a whole keyring). Every
//! derived key, the catalog's key, the store's id and the rollback anchor stay as they are, and
//! a running mount goes on without noticing.
//!
//! What it does not do: a backup or copy of the store made before keeps its own keyring, so
//! an old passphrase or a removed key file still opens *that* copy. Someone who may have seen
//! the master key itself (not just a passphrase) needs a new store (export and import).

use crate::catalog::Catalog;
use crate::crypto::keyring::{self, Keyring};
use crate::error::{Error, IoContext, Result};
use crate::policy::Time;
use crate::store::{Store, KEYRING};
use serde::Serialize;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

pub enum Change {
    /// Set the passphrase (replacing the current one, or adding one to a store without).
    SetPassphrase(Zeroizing<String>),
    RemovePassphrase,
    /// Let a key file open the store: the file is created (0600) if it does not exist.
    AddKeyFile(PathBuf),
    RemoveKeyFile(PathBuf),
}

/// The ways to open the store after the change.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub passphrases: usize,
    pub key_files: usize,
    /// The key file was created by this change.
    pub created: Option<PathBuf>,
}

/// Apply `change` to the keyring of `store` (opened with its current key) and record it in
/// the audit log (what kind of change, never a path or a secret).
pub fn change(
    store: &Store,
    catalog: &mut Catalog,
    actor: &str,
    now: Time,
    change: Change,
) -> Result<Outcome> {
    let path = store.root().join(KEYRING);
    // two changes at once would each write their own keyring, and one would be lost
    let _lock = lock_store_dir(store.root())?;
    // read again under the lock: what the store was opened with may be older
    let mut ring = Keyring::load(&path)?;
    let master = store.master_key();
    let mut created = None;
    let action = match &change {
        Change::SetPassphrase(pass) => {
            ring.set_passphrase(master, pass)?;
            "keyring.passphrase_set"
        }
        Change::RemovePassphrase => {
            ring.remove_passphrase()?;
            "keyring.passphrase_removed"
        }
        Change::AddKeyFile(file) => {
            // a key kept with the store opens it for whoever copies the store or a backup
            let root = std::fs::canonicalize(store.root()).at("resolve", store.root())?;
            if super::backup::resolved(file)?.starts_with(&root) {
                return Err(Error::invalid(format!(
                    "{} is inside the store: a key file kept there opens the store for anyone who copies it; keep it elsewhere (another disk, a safe)",
                    file.display()
                )));
            }
            let secret = if file.exists() {
                keyring::read_key_file(file)?
            } else {
                let s = keyring::create_key_file(file)?;
                created = Some(file.clone());
                s
            };
            if let Err(e) = ring.add_key_file(master, &secret) {
                remove_created(&created);
                return Err(e);
            }
            "keyring.key_file_added"
        }
        Change::RemoveKeyFile(file) => {
            let secret = keyring::read_key_file(file)?;
            ring.remove_key_file(&secret)?;
            "keyring.key_file_removed"
        }
    };
    let (passphrases, key_files) = ring.slot_counts();
    let written = (|| -> Result<()> {
        let mut tx = catalog.begin(actor, now)?;
        tx.audit(
            action,
            serde_json::json!({ "passphrases": passphrases, "key_files": key_files }),
        )?;
        // the keyring is replaced inside the transaction: if it cannot be written, the audit
        // entry is not committed either
        ring.save_replace(&path)?;
        let saved = std::fs::read(&path).at("read", &path)?;
        tx.share_keyring(&saved)?;
        tx.commit()
    })();
    if let Err(e) = written {
        remove_created(&created);
        return Err(e);
    }
    Ok(Outcome {
        passphrases,
        key_files,
        created,
    })
}

/// A key file this change created and that opens nothing (the change failed): removed, so no
/// one takes it for a key.
fn remove_created(created: &Option<PathBuf>) {
    if let Some(f) = created {
        let _ = std::fs::remove_file(f);
    }
}

/// An exclusive `flock` on the store's folder, held until dropped.
fn lock_store_dir(root: &Path) -> Result<std::fs::File> {
    let dir = std::fs::File::open(root).at("open", root)?;
    dir.lock().map_err(|e| Error::io_path("lock", root, e))?;
    Ok(dir)
}
