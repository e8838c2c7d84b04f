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
use crate::store::location::OBJECTS_AT;
use crate::store::{private, sync_dir, Location, Store, CATALOG, KEYRING, OBJECTS};
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
        Store::init_at(root, passphrase, key_file, now, actor, &Location::Own)
    }

    /// [`Store::init`] with its objects kept at `objects` (`init --objects`): a folder or a
    /// bucket prefix that holds nothing yet. It must be empty because the store takes every
    /// object-named file there for its own: an orphan once no catalog row names it.
    pub fn init_at(
        root: &Path,
        passphrase: Option<&str>,
        key_file: Option<&Path>,
        now: crate::policy::Time,
        actor: &str,
        objects: &Location,
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
            let mut store = Store::with_master(root, master.clone());
            if *objects != Location::Own {
                store.set_objects(objects)?;
                let there = store.list_object_names()?;
                if !there.is_empty() {
                    return Err(Error::invalid(format!(
                        "{} already holds {} file(s); give an empty folder or a new prefix for the objects of a new store (each store needs its own)",
                        store.objects_shown(),
                        there.len()
                    )));
                }
                objects.record(root)?;
            }
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
            let _ = std::fs::remove_dir_all(root.join(crate::store::location::CACHE));
            for f in [
                CATALOG,
                "catalog.db-wal",
                "catalog.db-shm",
                KEYRING,
                OBJECTS_AT,
            ] {
                let _ = std::fs::remove_file(root.join(f));
            }
            if !existed {
                let _ = std::fs::remove_dir(root);
            }
        }
        result
    }
}
