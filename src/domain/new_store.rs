//! Creating a store: its private directory, its keys and keyring, and its catalog.
//!
//! It lives here, above both `store` and `catalog`, because it makes both: the store module
//! (objects, keys, the directory) does not use the catalog, and the catalog (which records the
//! store's objects) builds on the store, so neither can create the other without a cycle.
//! `Store::init` keeps its name and place in the API: an inherent method may be defined in any
//! module of the crate.

use crate::catalog::Catalog;
use crate::crypto::keyring::{self, Keyring};
use crate::crypto::Key;
use crate::error::{Error, IoContext, Result};
use crate::store::{private, sync_dir, Store, CATALOG, KEYRING, OBJECTS};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

impl Store {
    /// Create a new store in `root` (created if missing; must be empty if present). Returns the
    /// opened store; on error nothing is left behind.
    pub fn init(
        root: &Path,
        passphrase: Option<&str>,
        key_file: Option<&Path>,
        now: crate::policy::Time,
        actor: &str,
    ) -> Result<Store> {
        if root.join(KEYRING).exists() {
            return Err(Error::invalid(format!(
                "{} is already a consentfs store; refusing to initialise it again (its data would be lost)",
                root.display()
            )));
        }
        let existed = root.exists();
        if existed {
            if !root.is_dir() {
                return Err(Error::invalid(format!(
                    "{} exists and is not a directory",
                    root.display()
                )));
            }
            let mut entries = std::fs::read_dir(root).at("read", root)?;
            if entries.next().is_some() {
                return Err(Error::invalid(format!(
                    "{} exists and is not empty; give a new or empty directory for the store",
                    root.display()
                )));
            }
        }
        let master = Key::random();
        let result = (|| {
            private::create_dir_all(root)?;
            // an empty directory the administrator made may have any mode: make it private
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(private::DIR_MODE))
                .at("chmod", root)?;
            private::create_dir_all(&root.join(OBJECTS))?;
            let secret = match key_file {
                Some(p) if p.exists() => Some(keyring::read_key_file(p)?),
                Some(p) => Some(keyring::create_key_file(p)?),
                None => None,
            };
            let ring = Keyring::create(&master, passphrase, secret.as_ref())?;
            let store = Store::with_master(root, master.clone());
            Catalog::create(
                &store.catalog_path(),
                &store.catalog_key(),
                store.audit_key(),
                now,
                actor,
            )?;
            // The keyring is written last: its presence is what makes the directory a store.
            ring.save_new(&root.join(KEYRING))?;
            sync_dir(root)?;
            private::check(root)?;
            Ok(store)
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(root.join(OBJECTS));
            for f in [CATALOG, "catalog.db-wal", "catalog.db-shm", KEYRING] {
                let _ = std::fs::remove_file(root.join(f));
            }
            if !existed {
                let _ = std::fs::remove_dir(root);
            }
        }
        result
    }
}
