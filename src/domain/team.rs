//! Creating and joining a team library (`--store postgres://…`, see `catalog::team`).
//!
//! Each machine works on a replica folder: a store folder like any other (keyring, catalog,
//! staging for objects, the block cache, the registry of running commands) whose catalog is
//! a copy of the library's and whose `team.url` names the library. `init` makes the first
//! replica and publishes it (keyring, where the objects are, a snapshot of the new catalog);
//! any command on another machine joins by fetching them, unlocking the keyring with its
//! passphrase or key file, and then catches up with the log like every command does.
//!
//! The replica folder is `CONSENTFS_REPLICA` if set, else one per library under
//! `/var/lib/consentfs/replicas` (root) or `$XDG_STATE_HOME/consentfs/replicas` (others).

use crate::catalog::team::{self, log as teamlog, Link};
use crate::catalog::Catalog;
use crate::crypto::keyring::{Keyring, Unlock};
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::store::{private, Location, Store, CATALOG, KEYRING, TEAM_URL};
use sha2::Digest;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The replica folder this machine (and account) uses for the library at `url`.
pub fn replica_dir(url: &str) -> Result<PathBuf> {
    team::check_url(url)?;
    if let Some(d) = std::env::var_os("CONSENTFS_REPLICA").filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        if !d.is_absolute() {
            return Err(Error::invalid("CONSENTFS_REPLICA must be an absolute path"));
        }
        return Ok(d);
    }
    let name = hex::encode(&sha2::Sha256::digest(team::shown(url).as_bytes())[..8]);
    let base = if nix::unistd::geteuid().is_root() {
        PathBuf::from("/var/lib/consentfs/replicas")
    } else if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        PathBuf::from(x).join("consentfs/replicas")
    } else if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        PathBuf::from(h).join(".local/state/consentfs/replicas")
    } else {
        return Err(Error::invalid(
            "no place for this machine's copy of the team library: set CONSENTFS_REPLICA",
        ));
    };
    Ok(base.join(name))
}

/// Create a team library at `url` with its first replica at `replica`: a new store there,
/// published to the library. Its objects must be where every machine reaches them.
pub fn init(
    url: &str,
    replica: &Path,
    passphrase: Option<&str>,
    key_file: Option<&Path>,
    now: crate::policy::Time,
    actor: &str,
    objects: &Location,
) -> Result<Store> {
    if *objects == Location::Own {
        return Err(Error::invalid(
            "a team library's photos must be where every machine reaches them: give --objects s3://BUCKET/PREFIX or --objects file:///SHARED/FOLDER",
        ));
    }
    // the database is checked first: an unreachable or taken one leaves nothing behind
    let mut link = Link::connect(url, &Key::random())?;
    if link.meta(teamlog::FORMAT)?.is_some() {
        return Err(Error::invalid(format!(
            "{} already holds a consentfs library; on another machine, any command with --store {} joins it",
            link.shown(),
            link.shown()
        )));
    }
    if let Some(parent) = replica.parent() {
        private::create_dir_all(parent)?;
    }
    let store = Store::init_at(replica, passphrase, key_file, now, actor, objects)?;
    let published = publish(&mut link, &store, objects);
    if let Err(e) = published {
        remove_replica(replica);
        return Err(e);
    }
    write_private(&replica.join(TEAM_URL), url.as_bytes())?;
    Ok(store)
}

/// Send the new store's keyring, objects location and catalog to the library; its format
/// last, which marks the library as complete.
fn publish(link: &mut Link, store: &Store, objects: &Location) -> Result<()> {
    link.set_key(&store.catalog_key());
    let ring_path = store.root().join(KEYRING);
    let ring = std::fs::read(&ring_path).map_err(|e| Error::io_path("read", &ring_path, e))?;
    link.set_meta(teamlog::KEYRING, &ring, false)?;
    link.set_meta(teamlog::OBJECTS, objects.url().as_bytes(), false)?;
    let catalog = Catalog::open(
        &store.catalog_path(),
        &store.catalog_key(),
        store.audit_key(),
    )?;
    let (seq, file) = team::replica::snapshot(catalog.conn(), &store.catalog_key(), store.root())?;
    link.put_snapshot(seq, &file)?;
    let format = crate::catalog::schema::current_version().to_string();
    if !link.set_meta(teamlog::FORMAT, format.as_bytes(), true)? {
        return Err(Error::invalid(format!(
            "{} was initialised by another command at the same moment",
            link.shown()
        )));
    }
    Ok(())
}

/// The replica folder for `url` on this machine, joining the library first if there is none
/// yet (fetching its keyring, unlocked with `unlock`, and its newest snapshot).
pub fn prepare(url: &str, unlock: &Unlock) -> Result<PathBuf> {
    let dir = replica_dir(url)?;
    if dir.join(KEYRING).exists() {
        let recorded = std::fs::read_to_string(dir.join(TEAM_URL)).unwrap_or_default();
        if team::shown(recorded.trim()) != team::shown(url) {
            return Err(Error::invalid(format!(
                "{} is not a copy of {} (it is a store of its own, or another library's copy); set CONSENTFS_REPLICA to another folder",
                dir.display(),
                team::shown(url)
            )));
        }
        refresh_keyring(url, &dir)?;
        return Ok(dir);
    }
    join(url, &dir, unlock)?;
    Ok(dir)
}

/// Put the library's keyring in place of the copy's when they differ (a passphrase or key file
/// added or removed on another machine), before the copy is unlocked with it.
fn refresh_keyring(url: &str, dir: &Path) -> Result<()> {
    let mut link = Link::connect(url, &Key::random())?;
    let Some(theirs) = link.meta(teamlog::KEYRING)? else {
        return Ok(());
    };
    let path = dir.join(KEYRING);
    let mine = std::fs::read(&path).map_err(|e| Error::io_path("read", &path, e))?;
    if mine != theirs {
        private::replace_file(&path, &theirs)?;
        log::info!("the library's keyring replaced this copy's (changed on another machine)");
    }
    Ok(())
}

fn join(url: &str, dir: &Path, unlock: &Unlock) -> Result<()> {
    let mut link = Link::connect(url, &Key::random())?;
    let (Some(ring), Some(_)) = (link.meta(teamlog::KEYRING)?, link.meta(teamlog::FORMAT)?) else {
        return Err(Error::invalid(format!(
            "{} holds no consentfs library: create it with `consentfs --store {} init --objects …`",
            link.shown(),
            link.shown()
        )));
    };
    if dir.exists() {
        // a join that was interrupted leaves no keyring (it is put in place last): start over
        let half = std::fs::read_dir(dir)
            .map_err(|e| Error::io_path("read", dir, e))?
            .next()
            .is_some();
        if half && !dir.join(TEAM_URL).exists() {
            return Err(Error::invalid(format!(
                "{} is not empty and not a copy of a team library; set CONSENTFS_REPLICA to an empty folder",
                dir.display()
            )));
        }
        remove_replica(dir);
    }
    private::create_dir_all(dir)?;
    let joined = (|| {
        let staged = dir.join(".keyring.joining");
        write_private(&staged, &ring)?;
        let master = Keyring::load(&staged)?.unlock(unlock)?;
        let store = Store::with_master(dir, master);
        link.set_key(&store.catalog_key());
        write_private(&dir.join(TEAM_URL), url.as_bytes())?;
        if let Some(objects) = link.meta(teamlog::OBJECTS)? {
            let text = String::from_utf8(objects).map_err(|_| {
                Error::integrity("team catalog", "its objects location is not text")
            })?;
            Location::parse(text.trim())?.record(dir)?;
        }
        let Some((seq, file)) = link.latest_snapshot()? else {
            return Err(Error::integrity(
                "team catalog",
                format!("{} has no snapshot to start from", link.shown()),
            ));
        };
        write_private(&dir.join(CATALOG), &file)?;
        private::create_dir_all(&dir.join(crate::store::OBJECTS))?;
        std::fs::rename(&staged, dir.join(KEYRING))
            .map_err(|e| Error::io_path("rename", &staged, e))?;
        crate::store::sync_dir(dir)?;
        log::info!("joined the team library {} at change {seq}", link.shown());
        Ok(())
    })();
    if joined.is_err() {
        remove_replica(dir);
    }
    joined
}

/// Remove a replica folder (a failed `init` or join); nothing in it is the only copy of
/// anything: the library holds all of it.
fn remove_replica(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        log::warn!("cannot remove {}: {e}", dir.display());
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = private::create_file(path, false)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io_path("write", path, e))
}

/// What [`migrate_in`] did.
#[derive(Debug, serde::Serialize)]
pub struct Migrated {
    /// The library, as shown (no password).
    pub library: String,
    /// This machine's copy of it.
    pub replica: PathBuf,
    /// Objects with a data key (every one the library needs), each verified where it now is.
    pub objects: usize,
    /// How many of them were copied by this run (the rest were there from an interrupted run,
    /// or the objects stay where they are).
    pub copied: usize,
    pub bytes: u64,
}

/// Move a store of its own into a new team library at `url`, its objects to `objects`: every
/// object with a data key is copied there as it is (still encrypted) and then read back and
/// authenticated there, chunk by chunk; then the catalog becomes the library's first snapshot,
/// with the store's keyring, and this machine gets a copy. The store itself is left as it was
/// (keep it until the library has proved itself, then remove it). A run that was interrupted
/// is run again: objects already copied are verified, not copied again.
pub fn migrate_in(
    store: &Store,
    catalog: &Catalog,
    url: &str,
    objects: &Location,
    actor: &str,
    now: crate::policy::Time,
    progress: &dyn crate::maintenance::Progress,
) -> Result<Migrated> {
    if catalog.is_team() {
        return Err(Error::invalid(
            "this store is a team library's copy already; `consentfs migrate --to DIR` makes a store of its own from it",
        ));
    }
    if *objects == Location::Own {
        return Err(Error::invalid(
            "a team library's photos must be where every machine reaches them: give --objects s3://BUCKET/PREFIX or --objects file:///SHARED/FOLDER",
        ));
    }
    let mut link = Link::connect(url, &Key::random())?;
    if link.meta(teamlog::FORMAT)?.is_some() {
        return Err(Error::invalid(format!(
            "{} already holds a consentfs library; migrate into an empty database",
            link.shown()
        )));
    }
    let replica = replica_dir(url)?;
    if replica.join(KEYRING).exists() {
        return Err(Error::invalid(format!(
            "{} is already a copy of a library; set CONSENTFS_REPLICA to another folder",
            replica.display()
        )));
    }
    if let Some(parent) = replica.parent() {
        private::create_dir_all(parent)?;
    }
    private::create_dir_all(&replica.join(crate::store::OBJECTS))?;
    let done = (|| {
        let mut target = Store::with_master(&replica, store.master_key().clone());
        target.set_objects(objects)?;
        let moved = copy_objects(
            store,
            &target,
            catalog,
            *objects == store.objects_at(),
            progress,
        )?;
        // the library: its first snapshot is the store's catalog as it is now
        link.set_key(&store.catalog_key());
        let ring_path = store.root().join(KEYRING);
        let ring = std::fs::read(&ring_path).map_err(|e| Error::io_path("read", &ring_path, e))?;
        link.set_meta(teamlog::KEYRING, &ring, false)?;
        link.set_meta(teamlog::OBJECTS, objects.url().as_bytes(), false)?;
        let (seq, file) = team::replica::snapshot(catalog.conn(), &store.catalog_key(), &replica)?;
        link.put_snapshot(seq, &file)?;
        let format = crate::catalog::schema::current_version().to_string();
        if !link.set_meta(teamlog::FORMAT, format.as_bytes(), true)? {
            return Err(Error::invalid(format!(
                "{} was initialised by another command at the same moment",
                link.shown()
            )));
        }
        // this machine's copy, as a join would make it
        write_private(&replica.join(CATALOG), &file)?;
        write_private(&replica.join(TEAM_URL), url.as_bytes())?;
        objects.record(&replica)?;
        write_private(&replica.join(KEYRING), &ring)?;
        crate::store::sync_dir(&replica)?;
        Ok(moved)
    })();
    let (count, copied, bytes) = match done {
        Ok(m) => m,
        Err(e) => {
            remove_replica(&replica);
            return Err(e);
        }
    };
    // the move itself is the library's first change
    let copy = Store::with_master(&replica, store.master_key().clone());
    let mut cat = Catalog::open(&copy.catalog_path(), &copy.catalog_key(), copy.audit_key())?;
    let tx = cat.begin(actor, now)?;
    tx.audit(
        "store.migrated",
        serde_json::json!({ "to": "team library", "objects": count, "copied": copied }),
    )?;
    tx.commit()?;
    Ok(Migrated {
        library: link.shown().to_string(),
        replica,
        objects: count,
        copied,
        bytes,
    })
}

/// Copy every object with a data key from `from` to `to` (unless they are the same place) and
/// authenticate each there; returns (objects, copied, bytes copied).
fn copy_objects(
    from: &Store,
    to: &Store,
    catalog: &Catalog,
    same_place: bool,
    progress: &dyn crate::maintenance::Progress,
) -> Result<(usize, usize, u64)> {
    let rows: Vec<_> = crate::catalog::maintenance::objects(catalog.conn())?
        .into_iter()
        .filter(|r| r.wrapped_key.is_some())
        .collect();
    progress.start(rows.iter().map(|r| r.size).sum());
    let (mut copied, mut bytes) = (0, 0);
    let mut buf = vec![0u8; crate::crypto::object::CHUNK_PLAIN as usize];
    for row in &rows {
        let id = crate::crypto::object::ObjectId::parse(&row.id).ok_or_else(|| {
            Error::integrity("catalog", format!("an invalid object id {:?}", row.id))
        })?;
        let label = format!("object {}", row.id);
        if !same_place && to.stored_object(&id)?.is_none() {
            let src = from
                .stored_object(&id)?
                .ok_or_else(|| Error::integrity(&label, "its object file is missing"))?;
            bytes += to.put_stored(&id, &src)?;
            copied += 1;
        }
        let wrapped = row.wrapped_key.as_deref().unwrap_or_default();
        let obj = to.open_object(&id, wrapped, row.size, &label)?;
        for i in 0..crate::crypto::object::chunk_count(row.size) {
            let len = obj.chunk_len(i) as usize;
            obj.chunk_into(i, &mut buf[..len])?;
        }
        progress.advance(row.size);
    }
    progress.finish();
    Ok((rows.len(), copied, bytes))
}
