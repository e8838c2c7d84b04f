//! Assets (photos), their versions, objects and linked persons.

use super::{as_id, Tx};
use crate::crypto::object::ObjectId;
use crate::error::{Error, Result};
use crate::policy::{AssetId, PersonId, Status, Time};
use crate::store::NewObject;
use crate::when;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct AssetRow {
    pub id: AssetId,
    pub collection: String,
    pub name: String,
    pub no_persons: bool,
    pub special_category: bool,
    pub status: Status,
    pub creator: String,
    pub created_at: Time,
    pub retention_until: Option<Time>,
    pub persons: Vec<PersonId>,
}

impl AssetRow {
    /// `collection/name`, the asset's path below a purpose folder.
    pub fn path(&self) -> String {
        join_path(&self.collection, &self.name)
    }
}

/// Join two path parts with a '/', leaving out empty ones.
pub fn join_path(collection: &str, name: &str) -> String {
    match (collection.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (false, true) => collection.to_string(),
        (false, false) => format!("{collection}/{name}"),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionRow {
    pub version: i64,
    pub size: u64,
    pub created_at: Time,
    pub created_by: String,
    #[serde(skip)]
    pub object: ObjectId,
    #[serde(skip)]
    pub wrapped_key: Option<Vec<u8>>,
}

/// Check and normalise a collection path: `/events//2026/` becomes `events/2026`.
pub fn normalize_collection(c: &str) -> Result<String> {
    let parts: Vec<&str> = c.split('/').filter(|p| !p.is_empty()).collect();
    for p in &parts {
        check_name(p).map_err(|_| {
            Error::invalid(format!(
                "'{c}' is not a usable collection path: '{p}' cannot be a folder name"
            ))
        })?;
    }
    Ok(parts.join("/"))
}

/// A file or folder name as it will appear in the mount.
pub fn check_name(n: &str) -> Result<()> {
    if n.is_empty() || n == "." || n == ".." || n.contains('/') || n.contains('\0') || n.len() > 255
    {
        return Err(Error::invalid(format!("'{n}' cannot be a file name")));
    }
    Ok(())
}

const COLS: &str =
    "id, collection, name, no_persons, special_category, status, creator, created_at, retention_until";

fn from_row(r: &Row) -> rusqlite::Result<AssetRow> {
    let status: String = r.get(5)?;
    Ok(AssetRow {
        id: r.get(0)?,
        collection: r.get(1)?,
        name: r.get(2)?,
        no_persons: r.get(3)?,
        special_category: r.get(4)?,
        status: Status::parse(&status).unwrap_or(Status::Trash),
        creator: r.get(6)?,
        created_at: when::from_secs(r.get(7)?),
        retention_until: r.get::<_, Option<i64>>(8)?.map(when::from_secs),
        persons: Vec::new(),
    })
}

pub fn linked_persons(conn: &Connection, asset: AssetId) -> Result<Vec<PersonId>> {
    let mut st =
        conn.prepare_cached("SELECT person_id FROM links WHERE asset_id = ?1 ORDER BY person_id")?;
    let ids = st
        .query_map([asset], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

pub fn get(conn: &Connection, id: AssetId) -> Result<Option<AssetRow>> {
    let a = conn
        .query_row(
            &format!("SELECT {COLS} FROM assets WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?;
    match a {
        Some(mut a) => {
            a.persons = linked_persons(conn, a.id)?;
            Ok(Some(a))
        }
        None => Ok(None),
    }
}

/// An asset by id or by its path (`events/2026/a.jpg`); trashed assets only by id.
pub fn resolve(conn: &Connection, what: &str) -> Result<AssetRow> {
    if let Some(id) = as_id(what) {
        return get(conn, id)?.ok_or_else(|| {
            Error::not_found(format!(
                "no asset with id {id}; see `consentfs ls` or `consentfs import`"
            ))
        });
    }
    let trimmed = what.trim_matches('/');
    let (collection, name) = match trimmed.rsplit_once('/') {
        Some((c, n)) => (normalize_collection(c)?, n.to_string()),
        None => (String::new(), trimmed.to_string()),
    };
    let id: Option<AssetId> = conn
        .query_row(
            "SELECT id FROM assets WHERE collection = ?1 AND name = ?2 AND status <> 'trash'",
            params![collection, name],
            |r| r.get(0),
        )
        .optional()?;
    match id {
        Some(id) => get(conn, id)?.ok_or_else(|| Error::not_found(format!("no asset '{what}'"))),
        None => Err(Error::not_found(format!(
            "no asset at '{what}': give the path as collection/name (e.g. events/2026/a.jpg) or the asset id"
        ))),
    }
}

/// All assets (any status), with their linked persons.
pub fn list(conn: &Connection) -> Result<Vec<AssetRow>> {
    let mut st = conn.prepare(&format!("SELECT {COLS} FROM assets ORDER BY id"))?;
    let mut rows = st
        .query_map([], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut links =
        conn.prepare("SELECT asset_id, person_id FROM links ORDER BY asset_id, person_id")?;
    let mut map: std::collections::HashMap<AssetId, Vec<PersonId>> =
        std::collections::HashMap::new();
    for l in links.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
        let (a, p) = l?;
        map.entry(a).or_default().push(p);
    }
    for a in &mut rows {
        a.persons = map.remove(&a.id).unwrap_or_default();
    }
    Ok(rows)
}

/// The asset (if any, not trashed) whose current or earlier version has this content.
pub fn find_by_content(conn: &Connection, hash: &[u8; 32]) -> Result<Option<AssetRow>> {
    let id: Option<AssetId> = conn
        .query_row(
            "SELECT v.asset_id FROM objects o JOIN versions v ON v.object_id = o.id
             JOIN assets a ON a.id = v.asset_id
             WHERE o.content_hash = ?1 AND a.status <> 'trash' LIMIT 1",
            [hash.as_slice()],
            |r| r.get(0),
        )
        .optional()?;
    id.map(|id| get(conn, id)).transpose().map(Option::flatten)
}

pub fn path_taken(conn: &Connection, collection: &str, name: &str) -> Result<Option<AssetId>> {
    Ok(conn
        .query_row(
            "SELECT id FROM assets WHERE collection = ?1 AND name = ?2 AND status <> 'trash'",
            params![collection, name],
            |r| r.get(0),
        )
        .optional()?)
}

/// In the mount a folder and a file cannot share a name: refuse a file named like an existing
/// collection folder, and a collection whose folders are named like existing files.
pub fn check_no_clash(conn: &Connection, collection: &str, name: &str) -> Result<()> {
    let as_folder = join_path(collection, name);
    let folder_exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM assets WHERE status <> 'trash'
             AND (collection = ?1 OR substr(collection, 1, length(?1) + 1) = ?1 || '/'))",
        params![as_folder],
        |r| r.get(0),
    )?;
    if folder_exists {
        return Err(Error::invalid(format!(
            "'{as_folder}' is already a collection folder; a file cannot have the same path"
        )));
    }
    let mut prefix = String::new();
    for part in collection.split('/').filter(|p| !p.is_empty()) {
        if path_taken(conn, &prefix, part)?.is_some() {
            return Err(Error::invalid(format!(
                "'{}' is a file, so it cannot also be a collection folder",
                join_path(&prefix, part)
            )));
        }
        prefix = join_path(&prefix, part);
    }
    Ok(())
}

/// The newest version of every asset (or of one), in one query.
pub fn current_versions(
    conn: &Connection,
    only: Option<AssetId>,
) -> Result<std::collections::HashMap<AssetId, VersionRow>> {
    let mut st = conn.prepare(
        "SELECT v.asset_id, v.version, v.size, v.created_at, v.created_by, v.object_id, o.wrapped_key
         FROM versions v JOIN objects o ON o.id = v.object_id
         WHERE (?1 IS NULL OR v.asset_id = ?1)
           AND v.version = (SELECT MAX(version) FROM versions w WHERE w.asset_id = v.asset_id)",
    )?;
    let rows = st
        .query_map([only], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                (
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ),
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(a, v)| Ok((a, to_version(v)?)))
        .collect()
}

/// Record an object written by the store.
pub fn add_object(tx: &Tx, obj: &NewObject) -> Result<()> {
    tx.execute(
        "INSERT INTO objects (id, wrapped_key, size, content_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![obj.id.hex(), obj.wrapped_key, obj.size as i64, obj.content_hash.to_vec(), when::to_secs(tx.now())],
    )?;
    Ok(())
}

/// A new asset at `collection/name` whose first version is `obj`.
pub fn add(
    tx: &Tx,
    collection: &str,
    name: &str,
    status: Status,
    obj: &NewObject,
) -> Result<AssetId> {
    check_name(name)?;
    if let Some(existing) = path_taken(tx, collection, name)? {
        return Err(Error::invalid(format!(
            "'{}' already exists (asset {existing}); import under another --collection or name",
            join_path(collection, name)
        )));
    }
    check_no_clash(tx, collection, name)?;
    add_object(tx, obj)?;
    tx.execute(
        "INSERT INTO assets (collection, name, status, creator, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![collection, name, status.as_str(), tx.actor(), when::to_secs(tx.now())],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "INSERT INTO versions (asset_id, version, object_id, size, created_at, created_by) VALUES (?1, 1, ?2, ?3, ?4, ?5)",
        params![id, obj.id.hex(), obj.size as i64, when::to_secs(tx.now()), tx.actor()],
    )?;
    tx.audit(
        "asset.add",
        serde_json::json!({ "asset": id, "version": 1, "object": obj.id.hex() }),
    )?;
    Ok(id)
}

fn version_from_row(r: &Row) -> rusqlite::Result<(i64, i64, i64, String, String, Option<Vec<u8>>)> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn to_version(v: (i64, i64, i64, String, String, Option<Vec<u8>>)) -> Result<VersionRow> {
    let (version, size, created_at, created_by, object, wrapped_key) = v;
    Ok(VersionRow {
        version,
        size: size as u64,
        created_at: when::from_secs(created_at),
        created_by,
        object: ObjectId::parse(&object)
            .ok_or_else(|| Error::integrity("catalog", format!("bad object id '{object}'")))?,
        wrapped_key,
    })
}

const VERSION_SQL: &str =
    "SELECT v.version, v.size, v.created_at, v.created_by, v.object_id, o.wrapped_key
     FROM versions v JOIN objects o ON o.id = v.object_id WHERE v.asset_id = ?1";

pub fn versions(conn: &Connection, asset: AssetId) -> Result<Vec<VersionRow>> {
    let mut st = conn.prepare(&format!("{VERSION_SQL} ORDER BY v.version"))?;
    let rows = st
        .query_map([asset], version_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(to_version).collect()
}

/// The given version, or the newest when `version` is `None`.
pub fn version(conn: &Connection, asset: AssetId, version: Option<i64>) -> Result<VersionRow> {
    let row = match version {
        Some(v) => conn
            .query_row(
                &format!("{VERSION_SQL} AND v.version = ?2"),
                params![asset, v],
                version_from_row,
            )
            .optional()?,
        None => conn
            .query_row(
                &format!("{VERSION_SQL} ORDER BY v.version DESC LIMIT 1"),
                [asset],
                version_from_row,
            )
            .optional()?,
    };
    match row {
        Some(r) => to_version(r),
        None => Err(Error::not_found(match version {
            Some(v) => {
                format!("asset {asset} has no version {v}; see `consentfs versions {asset}`")
            }
            None => format!("asset {asset} has no versions"),
        })),
    }
}

pub fn link(tx: &Tx, asset: AssetId, person: PersonId) -> Result<bool> {
    let n = tx.execute(
        "INSERT OR IGNORE INTO links (asset_id, person_id, linked_by, linked_at) VALUES (?1, ?2, ?3, ?4)",
        params![asset, person, tx.actor(), when::to_secs(tx.now())],
    )?;
    if n > 0 {
        tx.audit(
            "asset.link",
            serde_json::json!({ "asset": asset, "person": person }),
        )?;
    }
    Ok(n > 0)
}

pub fn unlink(tx: &Tx, asset: AssetId, person: PersonId) -> Result<()> {
    let n = tx.execute(
        "DELETE FROM links WHERE asset_id = ?1 AND person_id = ?2",
        params![asset, person],
    )?;
    if n == 0 {
        return Err(Error::invalid(format!(
            "person #{person} is not linked to asset {asset}"
        )));
    }
    tx.audit(
        "asset.unlink",
        serde_json::json!({ "asset": asset, "person": person }),
    )?;
    Ok(())
}

/// Set or clear the asset's flags.
pub fn mark(
    tx: &Tx,
    asset: AssetId,
    no_persons: Option<bool>,
    special_category: Option<bool>,
) -> Result<()> {
    if let Some(v) = no_persons {
        tx.execute(
            "UPDATE assets SET no_persons = ?2 WHERE id = ?1",
            params![asset, v],
        )?;
    }
    if let Some(v) = special_category {
        tx.execute(
            "UPDATE assets SET special_category = ?2 WHERE id = ?1",
            params![asset, v],
        )?;
    }
    tx.audit(
        "asset.mark",
        serde_json::json!({ "asset": asset, "no_persons": no_persons, "special_category": special_category }),
    )?;
    Ok(())
}

/// Object ids the catalog knows (for orphan collection).
pub fn known_objects(conn: &Connection) -> Result<std::collections::HashSet<String>> {
    let mut st = conn.prepare("SELECT id FROM objects")?;
    let ids = st
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}
