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
    /// For a draft: the purpose folder it was created in.
    pub draft_purpose: Option<crate::policy::PurposeId>,
    /// For a draft: the assets its content came from (see [`add_sources`]).
    pub sources: Vec<AssetId>,
    /// Faces the latest face scan found (see `catalog::faces`).
    pub faces: u16,
    /// Detected faces a reviewer declared not recognisable (`mark --faces-reviewed`).
    pub faces_reviewed: u16,
    /// For a sidecar (an XMP file beside a photo): the photo it belongs to. Its persons and
    /// flags above are the photo's (see [`Inherited`]); it has none of its own.
    pub companion_of: Option<AssetId>,
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
    /// Modification time set by a tool (touch, tar, rsync), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtime: Option<Time>,
    /// Access time set by a tool (`touch -a`, `rsync --atimes`), if any; reads do not move it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub atime: Option<Time>,
    /// When the version policy thinned this version (see `catalog::versions`); its content
    /// is gone for it (`wrapped_key` is then `None`, even where another version keeps the
    /// object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinned_at: Option<Time>,
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
    // the limit is on the bytes the name has on disk (a name that was not UTF-8 is kept
    // escaped, see `crate::names`)
    if n.is_empty()
        || n == "."
        || n == ".."
        || n.contains('/')
        || n.contains('\0')
        || crate::names::byte_len(n) > 255
    {
        return Err(Error::invalid(format!(
            "'{}' cannot be a file name",
            crate::names::for_people(n)
        )));
    }
    Ok(())
}

const COLS: &str =
    "id, collection, name, no_persons, special_category, status, creator, created_at, \
                    retention_until, draft_purpose, faces, faces_reviewed, companion_of";

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
        draft_purpose: r.get(9)?,
        sources: Vec::new(),
        faces: r.get(10)?,
        faces_reviewed: r.get(11)?,
        companion_of: r.get(12)?,
    })
}

/// What a sidecar takes from its photo: everything the rules read about who is on it. A
/// sidecar holds the photo's face regions and names, so it shows exactly where the photo
/// shows; it is never reviewed or linked on its own.
#[derive(Debug, Clone, Default)]
pub struct Inherited {
    pub owner: AssetId,
    /// The photo is active (not in the trash, not purged): else its sidecar shows nowhere.
    pub owner_active: bool,
    pub no_persons: bool,
    pub special_category: bool,
    pub faces: u16,
    pub faces_reviewed: u16,
    pub retention_until: Option<i64>,
    pub persons: Vec<PersonId>,
}

impl Inherited {
    /// Give `row` (a sidecar's) its photo's persons and flags.
    pub fn apply(&self, row: &mut AssetRow) {
        row.no_persons = self.no_persons;
        row.special_category = self.special_category;
        row.faces = self.faces;
        row.faces_reviewed = self.faces_reviewed;
        row.retention_until = self.retention_until.map(when::from_secs);
        row.persons.clone_from(&self.persons);
        if !self.owner_active {
            // a sidecar restored while its photo is in the trash: nobody is known to be on
            // it, so the rules show it nowhere (and it waits for its photo, not for review)
            row.persons.clear();
            row.no_persons = false;
        }
    }
}

/// What every sidecar takes from its photo, by sidecar id (few rows: one per sidecar).
pub fn inherited_all(conn: &Connection) -> Result<std::collections::HashMap<AssetId, Inherited>> {
    inherited_where(conn, None)
}

/// What one sidecar takes from its photo (`None` when it is not a sidecar).
pub fn inherited(conn: &Connection, sidecar: AssetId) -> Result<Option<Inherited>> {
    Ok(inherited_where(conn, Some(sidecar))?.remove(&sidecar))
}

fn inherited_where(
    conn: &Connection,
    only: Option<AssetId>,
) -> Result<std::collections::HashMap<AssetId, Inherited>> {
    let which = if only.is_some() {
        "c.id = ?1"
    } else {
        "c.companion_of IS NOT NULL"
    };
    let params: Vec<AssetId> = only.into_iter().collect();
    let mut map: std::collections::HashMap<AssetId, Inherited> = Default::default();
    let mut st = conn.prepare_cached(&format!(
        "SELECT c.id, o.id, o.no_persons, o.special_category, o.faces, o.faces_reviewed, \
         o.retention_until, o.status = 'active' \
         FROM assets c JOIN assets o ON o.id = c.companion_of WHERE {which}"
    ))?;
    for r in st.query_map(rusqlite::params_from_iter(params.iter()), |r| {
        Ok((
            r.get::<_, AssetId>(0)?,
            Inherited {
                owner: r.get(1)?,
                no_persons: r.get(2)?,
                special_category: r.get(3)?,
                faces: r.get(4)?,
                faces_reviewed: r.get(5)?,
                retention_until: r.get(6)?,
                owner_active: r.get(7)?,
                persons: Vec::new(),
            },
        ))
    })? {
        let (id, i) = r?;
        map.insert(id, i);
    }
    let mut st = conn.prepare_cached(&format!(
        "SELECT c.id, l.person_id FROM assets c JOIN links l ON l.asset_id = c.companion_of \
         WHERE {which} ORDER BY c.id, l.person_id"
    ))?;
    for r in st.query_map(rusqlite::params_from_iter(params.iter()), |r| {
        Ok((r.get::<_, AssetId>(0)?, r.get::<_, PersonId>(1)?))
    })? {
        let (id, p) = r?;
        if let Some(i) = map.get_mut(&id) {
            i.persons.push(p);
        }
    }
    Ok(map)
}

/// The sidecars of a photo that are not purged, in id order.
pub fn companions_of(conn: &Connection, photo: AssetId) -> Result<Vec<AssetId>> {
    let mut st = conn.prepare_cached(
        "SELECT id FROM assets WHERE companion_of = ?1 AND status <> 'purged' ORDER BY id",
    )?;
    let ids = st
        .query_map([photo], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

/// The active photo in `collection` that a sidecar named `name` belongs to, if there is one
/// (see [`crate::sidecar`] for how names match).
pub fn sidecar_owner(conn: &Connection, collection: &str, name: &str) -> Result<Option<AssetId>> {
    let Some(stem) = crate::sidecar::stem(name) else {
        return Ok(None);
    };
    // `stem` itself (IMG_0042.CR2.xmp), and `stem.EXT` (IMG_0042.xmp): names from `stem.` up
    // to, not including, `stem/` ('/' follows '.'; no name holds one), through the path index
    let mut st = conn.prepare_cached(
        "SELECT id, name FROM assets
          WHERE collection = ?1 AND status = 'active' AND companion_of IS NULL
            AND (name = ?2 OR (name >= ?2 || '.' AND name < ?2 || '/'))
          ORDER BY id",
    )?;
    let found = st
        .query_map(params![collection, stem], |r| {
            Ok((r.get::<_, AssetId>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(crate::sidecar::choose_photo(stem, &found))
}

/// Refuse to change a sidecar's persons or flags: they are its photo's.
pub fn not_a_sidecar(conn: &Connection, asset: AssetId) -> Result<()> {
    let owner: Option<AssetId> = conn
        .prepare_cached("SELECT companion_of FROM assets WHERE id = ?1")?
        .query_row([asset], |r| r.get(0))
        .optional()?
        .flatten();
    match owner {
        Some(o) => Err(Error::invalid(format!(
            "asset {asset} is a sidecar of asset {o}: it shows whoever is linked to that photo; link or mark asset {o}"
        ))),
        None => Ok(()),
    }
}

/// Make `sidecar` part of `photo`: it takes the photo's persons, visibility and trash from now
/// on. Only a sidecar with no persons or flags of its own is attached (a decision someone
/// recorded on it is not dropped); a draft becomes active, as its photo is. Returns whether it
/// was attached.
pub fn attach(tx: &Tx, sidecar: AssetId, photo: AssetId) -> Result<bool> {
    let n = tx
        .prepare_cached(
            "UPDATE assets SET companion_of = ?2, status = 'active', draft_purpose = NULL
              WHERE id = ?1 AND id <> ?2 AND companion_of IS NULL AND no_persons = 0
                AND special_category = 0 AND status IN ('active', 'draft')
                AND NOT EXISTS (SELECT 1 FROM links WHERE asset_id = ?1)
                AND NOT EXISTS (SELECT 1 FROM assets WHERE companion_of = ?1)
                AND EXISTS (SELECT 1 FROM assets p WHERE p.id = ?2 AND p.status = 'active'
                                AND p.companion_of IS NULL)",
        )?
        .execute(params![sidecar, photo])?;
    if n > 0 {
        tx.prepare_cached("DELETE FROM draft_sources WHERE draft_id = ?1")?
            .execute([sidecar])?;
        // names it suggested (imported before its photo) are the photo's to settle
        tx.prepare_cached(
            "UPDATE suggestions SET asset_id = ?2 WHERE asset_id = ?1 AND settled_at IS NULL",
        )?
        .execute(params![sidecar, photo])?;
        tx.audit(
            "asset.sidecar",
            serde_json::json!({ "asset": sidecar, "photo": photo }),
        )?;
    }
    Ok(n > 0)
}

pub fn linked_persons(conn: &Connection, asset: AssetId) -> Result<Vec<PersonId>> {
    let mut st =
        conn.prepare_cached("SELECT person_id FROM links WHERE asset_id = ?1 ORDER BY person_id")?;
    let ids = st
        .query_map([asset], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

/// The assets a person is linked to now, in id order (their photos, for erasure and reports).
pub fn linked_to(conn: &Connection, person: PersonId) -> Result<Vec<AssetId>> {
    let mut st =
        conn.prepare_cached("SELECT asset_id FROM links WHERE person_id = ?1 ORDER BY asset_id")?;
    let ids = st
        .query_map([person], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

/// An object's wrapped data key (none once shredded) and size, if the object is known.
pub fn object_key(conn: &Connection, object: &str) -> Result<Option<(Option<Vec<u8>>, i64)>> {
    Ok(conn
        .prepare_cached("SELECT wrapped_key, size FROM objects WHERE id = ?1")?
        .query_row([object], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Replace a shredded asset's file name by `erased-<id>`: a file name often carries the name
/// of the person on it, and it must go with the photo when the person is erased.
pub fn rename_erased(tx: &Tx, asset: AssetId) -> Result<()> {
    tx.prepare_cached("UPDATE assets SET name = 'erased-' || id WHERE id = ?1")?
        .execute([asset])?;
    Ok(())
}

pub fn get(conn: &Connection, id: AssetId) -> Result<Option<AssetRow>> {
    let a = conn
        .prepare_cached(&format!("SELECT {COLS} FROM assets WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?;
    match a {
        Some(mut a) => {
            a.persons = linked_persons(conn, a.id)?;
            a.sources = sources_of(conn, a.id)?;
            if a.companion_of.is_some() {
                if let Some(i) = inherited(conn, a.id)? {
                    i.apply(&mut a);
                }
            }
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
        .prepare_cached("SELECT id FROM assets WHERE collection = ?1 AND name = ?2 AND status IN ('active', 'draft')")?.query_row(params![collection, name], |r| r.get(0))
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
    let mut sources = all_sources(conn)?;
    for a in &mut rows {
        a.persons = map.remove(&a.id).unwrap_or_default();
        a.sources = sources.remove(&a.id).unwrap_or_default();
    }
    let inherited = inherited_all(conn)?;
    for a in &mut rows {
        if let Some(i) = inherited.get(&a.id) {
            i.apply(a);
        }
    }
    Ok(rows)
}

/// How a draft's content is known to come from an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// The same bytes (keyed content hash) as a version of the asset.
    Content,
    /// The process that wrote the draft had opened the asset for reading shortly before.
    Read,
    /// The draft is the backup copy a save left of the asset's previous version.
    Backup,
    /// Another draft with these sources was saved over this one.
    Merge,
}

impl SourceKind {
    fn as_str(self) -> &'static str {
        match self {
            SourceKind::Content => "content",
            SourceKind::Read => "read",
            SourceKind::Backup => "backup",
            SourceKind::Merge => "merge",
        }
    }
}

/// The assets a draft's content came from, by id.
pub fn sources_of(conn: &Connection, draft: AssetId) -> Result<Vec<AssetId>> {
    let mut st = conn.prepare_cached(
        "SELECT source_id FROM draft_sources WHERE draft_id = ?1 ORDER BY source_id",
    )?;
    let ids = st
        .query_map([draft], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

/// Every draft's sources, for bulk loads.
pub fn all_sources(conn: &Connection) -> Result<std::collections::HashMap<AssetId, Vec<AssetId>>> {
    let mut st =
        conn.prepare("SELECT draft_id, source_id FROM draft_sources ORDER BY draft_id, source_id")?;
    let mut map: std::collections::HashMap<AssetId, Vec<AssetId>> = Default::default();
    for r in st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
        let (d, s) = r?;
        map.entry(d).or_default().push(s);
    }
    Ok(map)
}

/// Record that `draft`'s content came from `sources`. Provenance is flattened: a source that is
/// itself a draft brings its own sources along (and stays a source, in case it is linked later),
/// so the rules never need to follow chains. Only ever adds: a draft keeps every origin it had.
/// Returns the sources that were new.
pub fn add_sources(
    tx: &Tx,
    draft: AssetId,
    sources: &[AssetId],
    how: SourceKind,
) -> Result<Vec<AssetId>> {
    let mut all: Vec<AssetId> = Vec::new();
    for &s in sources {
        if s == draft || all.contains(&s) {
            continue;
        }
        all.push(s);
        for inherited in sources_of(tx, s)? {
            if inherited != draft && !all.contains(&inherited) {
                all.push(inherited);
            }
        }
    }
    let mut added = Vec::new();
    for s in all {
        let n = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO draft_sources (draft_id, source_id, how, recorded_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![draft, s, how.as_str(), when::to_secs(tx.now())])?;
        if n > 0 {
            added.push(s);
        }
    }
    if !added.is_empty() {
        tx.audit(
            "asset.sources",
            serde_json::json!({ "asset": draft, "sources": added, "how": how.as_str() }),
        )?;
    }
    Ok(added)
}

/// Assets (any status) of which some version has exactly this content, `except` one.
pub fn with_content(conn: &Connection, hash: &[u8; 32], except: AssetId) -> Result<Vec<AssetId>> {
    let mut st = conn.prepare_cached(
        "SELECT DISTINCT v.asset_id FROM objects o JOIN versions v ON v.object_id = o.id
          WHERE o.content_hash = ?1 AND o.size > 0 AND v.asset_id <> ?2 ORDER BY v.asset_id",
    )?;
    let ids = st
        .query_map(params![hash.as_slice(), except], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

/// Drafts made from a photo `person` is linked to (not linked to them themselves), with the
/// source they came from: for the person's report and for erasure.
pub fn derived_from_person(
    conn: &Connection,
    person: PersonId,
) -> Result<Vec<(AssetRow, AssetId)>> {
    let mut st = conn.prepare(
        "SELECT DISTINCT d.draft_id, d.source_id FROM draft_sources d
           JOIN links l ON l.asset_id = d.source_id
          WHERE l.person_id = ?1 ORDER BY d.draft_id, d.source_id",
    )?;
    let pairs = st
        .query_map([person], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out: Vec<(AssetRow, AssetId)> = Vec::new();
    for (draft, source) in pairs {
        if out.iter().any(|(a, _)| a.id == draft) {
            continue;
        }
        if let Some(a) = get(conn, draft)? {
            if !a.persons.contains(&person) {
                out.push((a, source));
            }
        }
    }
    Ok(out)
}

/// The asset (if any, not trashed) whose current or earlier version has this content.
pub fn find_by_content(conn: &Connection, hash: &[u8; 32]) -> Result<Option<AssetRow>> {
    let id: Option<AssetId> = conn
        .prepare_cached(
            "SELECT v.asset_id FROM objects o JOIN versions v ON v.object_id = o.id
             JOIN assets a ON a.id = v.asset_id
             WHERE o.content_hash = ?1 AND a.status IN ('active', 'draft') LIMIT 1",
        )?
        .query_row([hash.as_slice()], |r| r.get(0))
        .optional()?;
    id.map(|id| get(conn, id)).transpose().map(Option::flatten)
}

pub fn path_taken(conn: &Connection, collection: &str, name: &str) -> Result<Option<AssetId>> {
    Ok(conn
        .prepare_cached("SELECT id FROM assets WHERE collection = ?1 AND name = ?2 AND status IN ('active', 'draft')")?.query_row(params![collection, name], |r| r.get(0))
        .optional()?)
}

/// In the mount a folder and a file cannot share a name: refuse a file named like an existing
/// collection folder, and a collection whose folders are named like existing files.
pub fn check_no_clash(conn: &Connection, collection: &str, name: &str) -> Result<()> {
    let as_folder = join_path(collection, name);
    let folder_exists: bool = conn
        .prepare_cached(&format!("SELECT {FOLDER_EXISTS}"))?
        .query_row(params![as_folder], |r| r.get(0))?;
    if folder_exists {
        return Err(folder_clash(&as_folder));
    }
    check_no_file_above(conn, collection)
}

/// Whether a collection folder is at `?1` (the path of the file to be): a range on the path
/// index ('0' sorts right after '/'), not a scan, as saving 5,000 files must not read the whole
/// catalog 5,000 times.
const FOLDER_EXISTS: &str = "EXISTS (SELECT 1 FROM assets WHERE status IN ('active', 'draft')
                              AND collection = ?1)
                 OR EXISTS (SELECT 1 FROM assets WHERE status IN ('active', 'draft')
                              AND collection >= ?1 || '/' AND collection < ?1 || '0')";

fn folder_clash(as_folder: &str) -> Error {
    Error::invalid(format!(
        "'{as_folder}' is already a collection folder; a file cannot have the same path"
    ))
}

/// Collections at most this deep are checked for a file above them in one statement (the
/// statement is prepared once per depth); deeper ones one folder at a time.
const ABOVE_IN_ONE: usize = 8;

/// One statement that finds an active or draft file at any of `depth` paths (the folders of a
/// collection, from the top), the topmost first: each part an index lookup.
fn files_above_sql(depth: usize) -> String {
    let one = |i: usize| {
        format!(
            "SELECT collection, name FROM assets WHERE collection = ?{} AND name = ?{} \
             AND status IN ('active', 'draft')",
            2 * i + 1,
            2 * i + 2
        )
    };
    let all: Vec<String> = (0..depth).map(one).collect();
    format!(
        "SELECT collection, name FROM ({}) ORDER BY length(collection) LIMIT 1",
        all.join(" UNION ALL ")
    )
}

/// Refuse a collection one of whose folders is a file.
fn check_no_file_above(conn: &Connection, collection: &str) -> Result<()> {
    let parts: Vec<&str> = collection.split('/').filter(|p| !p.is_empty()).collect();
    let mut paths = Vec::with_capacity(2 * parts.len());
    let mut prefix = String::new();
    for part in &parts {
        paths.push(prefix.clone());
        paths.push(part.to_string());
        prefix = join_path(&prefix, part);
    }
    let file: Option<(String, String)> = if parts.is_empty() {
        None
    } else if parts.len() <= ABOVE_IN_ONE {
        conn.prepare_cached(&files_above_sql(parts.len()))?
            .query_row(rusqlite::params_from_iter(paths.iter()), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?
    } else {
        let mut found = None;
        for pair in paths.chunks(2) {
            if path_taken(conn, &pair[0], &pair[1])?.is_some() {
                found = Some((pair[0].clone(), pair[1].clone()));
                break;
            }
        }
        found
    };
    match file {
        Some((c, n)) => Err(Error::invalid(format!(
            "'{}' is a file, so it cannot also be a collection folder",
            join_path(&c, &n)
        ))),
        None => Ok(()),
    }
}

/// The newest version of every asset (or of one), in one query.
pub fn current_versions(
    conn: &Connection,
    only: Option<AssetId>,
) -> Result<std::collections::HashMap<AssetId, VersionRow>> {
    // two statements rather than `?1 IS NULL OR …`, which SQLite answers with a scan: the
    // mount refreshes one asset after every save
    let sql = format!(
        "SELECT v.asset_id, {VERSION_COLS}
         FROM versions v JOIN objects o ON o.id = v.object_id
         WHERE {}
           AND v.version = (SELECT MAX(version) FROM versions w WHERE w.asset_id = v.asset_id)",
        if only.is_some() {
            "v.asset_id = ?1"
        } else {
            "?1 IS NULL"
        }
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st
        .query_map([only], |r| Ok((r.get::<_, i64>(0)?, version_at(r, 1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(a, v)| Ok((a, to_version(v)?)))
        .collect()
}

/// Record an object written by the store.
pub fn add_object(tx: &Tx, obj: &NewObject) -> Result<()> {
    tx.prepare_cached("INSERT INTO objects (id, wrapped_key, size, content_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")?.execute(
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
    check_free(tx, collection, name)?;
    add_object(tx, obj)?;
    add_rows(tx, collection, name, status, &obj.id, obj.size, None)
}

/// Refuse a name that is not usable or not free (a file or a folder there).
fn check_free(tx: &Tx, collection: &str, name: &str) -> Result<()> {
    check_name(name)?;
    // the name and a folder of the same path in one statement: one of several per new file
    let (existing, folder_exists): (Option<AssetId>, bool) = tx
        .prepare_cached(&format!(
            "SELECT (SELECT id FROM assets WHERE collection = ?2 AND name = ?3
                       AND status IN ('active', 'draft')), {FOLDER_EXISTS}"
        ))?
        .query_row(
            params![join_path(collection, name), collection, name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
    if let Some(existing) = existing {
        return Err(Error::invalid(format!(
            "'{}' already exists (asset {existing}); import under another --collection or name",
            join_path(collection, name)
        )));
    }
    if folder_exists {
        return Err(folder_clash(&join_path(collection, name)));
    }
    check_no_file_above(tx, collection)
}

/// The asset's row and its version 1, which holds `object` (already in the catalog).
fn add_rows(
    tx: &Tx,
    collection: &str,
    name: &str,
    status: Status,
    object: &ObjectId,
    size: u64,
    draft_purpose: Option<crate::policy::PurposeId>,
) -> Result<AssetId> {
    tx.prepare_cached("INSERT INTO assets (collection, name, status, creator, created_at, draft_purpose) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?.execute(
        params![collection, name, status.as_str(), tx.actor(), when::to_secs(tx.now()), draft_purpose],
    )?;
    let id = tx.last_insert_rowid();
    tx.prepare_cached("INSERT INTO versions (asset_id, version, object_id, size, created_at, created_by) VALUES (?1, 1, ?2, ?3, ?4, ?5)")?.execute(
        params![id, object.hex(), size as i64, when::to_secs(tx.now()), tx.actor()],
    )?;
    tx.audit(
        "asset.add",
        serde_json::json!({ "asset": id, "version": 1, "object": object.hex() }),
    )?;
    Ok(id)
}

/// A `versions` row as read, before its values are checked ([`to_version`]).
struct RawVersion {
    version: i64,
    size: i64,
    created_at: i64,
    created_by: String,
    object: String,
    wrapped_key: Option<Vec<u8>>,
    mtime: Option<i64>,
    thinned_at: Option<i64>,
    mtime_nsec: Option<i64>,
    atime: Option<i64>,
    atime_nsec: Option<i64>,
}

const VERSION_COLS: &str =
    "v.version, v.size, v.created_at, v.created_by, v.object_id, o.wrapped_key, \
     v.mtime, v.thinned_at, v.mtime_nsec, v.atime, v.atime_nsec";

fn version_at(r: &Row, base: usize) -> rusqlite::Result<RawVersion> {
    Ok(RawVersion {
        version: r.get(base)?,
        size: r.get(base + 1)?,
        created_at: r.get(base + 2)?,
        created_by: r.get(base + 3)?,
        object: r.get(base + 4)?,
        wrapped_key: r.get(base + 5)?,
        mtime: r.get(base + 6)?,
        thinned_at: r.get(base + 7)?,
        mtime_nsec: r.get(base + 8)?,
        atime: r.get(base + 9)?,
        atime_nsec: r.get(base + 10)?,
    })
}

fn version_from_row(r: &Row) -> rusqlite::Result<RawVersion> {
    version_at(r, 0)
}

fn to_version(v: RawVersion) -> Result<VersionRow> {
    let object = v.object;
    Ok(VersionRow {
        version: v.version,
        size: v.size as u64,
        created_at: when::from_secs(v.created_at),
        created_by: v.created_by,
        mtime: v.mtime.map(|s| when::from_secs_nanos(s, v.mtime_nsec)),
        atime: v.atime.map(|s| when::from_secs_nanos(s, v.atime_nsec)),
        thinned_at: v.thinned_at.map(when::from_secs),
        object: ObjectId::parse(&object)
            .ok_or_else(|| Error::integrity("catalog", format!("bad object id '{object}'")))?,
        // a thinned version's content is gone, also where another version keeps the object
        wrapped_key: v.wrapped_key.filter(|_| v.thinned_at.is_none()),
    })
}

fn version_sql() -> String {
    format!(
        "SELECT {VERSION_COLS} FROM versions v JOIN objects o ON o.id = v.object_id WHERE v.asset_id = ?1"
    )
}

pub fn versions(conn: &Connection, asset: AssetId) -> Result<Vec<VersionRow>> {
    let mut st = conn.prepare(&format!("{} ORDER BY v.version", version_sql()))?;
    let rows = st
        .query_map([asset], version_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(to_version).collect()
}

/// The given version, or the newest when `version` is `None`.
pub fn version(conn: &Connection, asset: AssetId, version: Option<i64>) -> Result<VersionRow> {
    let row = match version {
        Some(v) => conn
            .prepare_cached(&format!("{} AND v.version = ?2", version_sql()))?
            .query_row(params![asset, v], version_from_row)
            .optional()?,
        None => conn
            .prepare_cached(&format!(
                "{} ORDER BY v.version DESC LIMIT 1",
                version_sql()
            ))?
            .query_row([asset], version_from_row)
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
    not_a_sidecar(tx, asset)?;
    let n = tx.prepare_cached("INSERT OR IGNORE INTO links (asset_id, person_id, linked_by, linked_at) VALUES (?1, ?2, ?3, ?4)")?.execute(
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
    let n = tx
        .prepare_cached("DELETE FROM links WHERE asset_id = ?1 AND person_id = ?2")?
        .execute(params![asset, person])?;
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
    not_a_sidecar(tx, asset)?;
    if let Some(v) = no_persons {
        tx.prepare_cached("UPDATE assets SET no_persons = ?2 WHERE id = ?1")?
            .execute(params![asset, v])?;
    }
    if let Some(v) = special_category {
        tx.prepare_cached("UPDATE assets SET special_category = ?2 WHERE id = ?1")?
            .execute(params![asset, v])?;
    }
    tx.audit(
        "asset.mark",
        serde_json::json!({ "asset": asset, "no_persons": no_persons, "special_category": special_category }),
    )?;
    Ok(())
}

/// The version that holds `object`, if one does (a queued save replayed twice records once).
pub fn version_of_object(conn: &Connection, object: &ObjectId) -> Result<Option<(AssetId, i64)>> {
    Ok(conn
        .prepare_cached("SELECT asset_id, version FROM versions WHERE object_id = ?1")?
        .query_row([object.hex()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Let `version` of `asset` hold `object` instead of what it held (successive saves of one
/// file through the mount, an fsync and then the close, make one version), if it is still the
/// asset's newest version and `by` made it. Returns `None` when it is not (then a new version
/// is added), else the object it held when no version uses that any more: it is crypto-shredded
/// here, as a purge would, or with `shared` objects after [`SUPERSEDED_GRACE`] (see
/// [`shred_superseded`]).
#[allow(clippy::too_many_arguments)]
pub fn replace_version(
    tx: &Tx,
    asset: AssetId,
    version: i64,
    by: &str,
    object: &ObjectId,
    size: u64,
    mtime: Option<Time>,
    shared: bool,
) -> Result<Option<Option<ObjectId>>> {
    let row: Option<(i64, String, String)> = tx
        .prepare_cached(
            "SELECT version, object_id, created_by FROM versions WHERE asset_id = ?1
              ORDER BY version DESC LIMIT 1",
        )?
        .query_row([asset], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((latest, old, creator)) = row else {
        return Ok(None);
    };
    if latest != version || creator != by || old == object.hex() {
        return Ok(None);
    }
    tx.prepare_cached(
        "UPDATE versions SET object_id = ?3, size = ?4, created_at = ?5, mtime = ?6,
                mtime_nsec = ?7, atime = NULL, atime_nsec = NULL
          WHERE asset_id = ?1 AND version = ?2",
    )?
    .execute(params![
        asset,
        version,
        object.hex(),
        size as i64,
        when::to_secs(tx.now()),
        mtime.map(when::to_secs),
        mtime.map(when::subsec_nanos)
    ])?;
    tx.audit(
        "asset.version_updated",
        serde_json::json!({ "asset": asset, "version": version, "size": size }),
    )?;
    if object_in_use(tx, &old)? || is_shared_empty(tx, &old)? {
        return Ok(Some(None));
    }
    if shared {
        shred_superseded(tx, &old)?;
    } else {
        shred_object(tx, &old)?;
    }
    Ok(Some(ObjectId::parse(&old)))
}

/// Whether a version not thinned by the version policy, or a consent's evidence, still holds
/// this object (hex id).
pub fn object_in_use(tx: &Tx, object: &str) -> Result<bool> {
    Ok(tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM versions WHERE object_id = ?1 AND thinned_at IS NULL)
                 OR EXISTS (SELECT 1 FROM consent_events WHERE evidence_object = ?1)",
        )?
        .query_row([object], |r| r.get(0))?)
}

/// Crypto-shred an object (hex id): its data key is destroyed in this transaction and its file
/// queued for removal after the commit (`shred_queue`, worked off by `shred::work_off`).
/// Returns whether it still held a key.
///
/// The superseded objects still waiting for their grace go too, key and file: they may hold
/// an earlier save of a photo of the person being erased (the queue does not say whose).
pub fn shred_object(tx: &Tx, object: &str) -> Result<bool> {
    // the empty object new files share holds nothing (see `is_shared_empty`)
    if is_shared_empty(tx, object)? {
        shred_waiting_superseded(tx)?;
        return Ok(false);
    }
    let keyed = destroy_key(tx, object)?;
    shred_waiting_superseded(tx)?;
    queue_removal(tx, object, tx.now())?;
    Ok(keyed)
}

/// Shred at once the superseded objects still waiting for their grace (see
/// [`shred_superseded`]).
fn shred_waiting_superseded(tx: &Tx) -> Result<()> {
    let now = when::to_secs(tx.now());
    tx.prepare_cached(
        "UPDATE objects SET wrapped_key = NULL
          WHERE wrapped_key IS NOT NULL
            AND id IN (SELECT object_id FROM shred_queue WHERE queued_at > ?1)",
    )?
    .execute([now])?;
    tx.prepare_cached("UPDATE shred_queue SET queued_at = ?1 WHERE queued_at > ?1")?
        .execute([now])?;
    Ok(())
}

/// How long an object superseded by a later save of the same file (a version replaced in
/// place) stays readable where objects are shared (a bucket, a
/// team's folder). Nothing personal is at stake (the same file holds newer content), but
/// others may still read it: the mounts of other machines whose copy or view has not caught
/// up yet (a lease lasts at most 300 s), and handles opened before, which on a local
/// filesystem would keep reading an unlinked file. A store with its own objects folder
/// shreds it at once (an open handle there keeps its file readable).
pub const SUPERSEDED_GRACE: i64 = 600;

/// Crypto-shred an object (hex id) superseded by a newer save of the same file after
/// [`SUPERSEDED_GRACE`]: then its key is destroyed and its file removed (`shred::work_off`).
/// Until then a mount whose view is a moment behind (a team machine between its catch-up and
/// the view's refresh, or one that has not caught up) still opens it. An erasure or purge
/// meanwhile shreds it at once (see [`shred_object`]).
pub fn shred_superseded(tx: &Tx, object: &str) -> Result<()> {
    if is_shared_empty(tx, object)? {
        return Ok(());
    }
    queue_removal(
        tx,
        object,
        tx.now() + chrono::Duration::seconds(SUPERSEDED_GRACE),
    )
}

fn destroy_key(tx: &Tx, object: &str) -> Result<bool> {
    Ok(tx
        .prepare_cached(
            "UPDATE objects SET wrapped_key = NULL WHERE id = ?1 AND wrapped_key IS NOT NULL",
        )?
        .execute([object])?
        > 0)
}

/// Queue an object's file for removal once `due` has come (`shred_queue.queued_at` holds when
/// the file may go: the commit, or later for a superseded object).
fn queue_removal(tx: &Tx, object: &str, due: Time) -> Result<()> {
    tx.prepare_cached("INSERT OR IGNORE INTO shred_queue (object_id, queued_at) VALUES (?1, ?2)")?
        .execute(params![object, when::to_secs(due)])?;
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

/// Whether the catalog records the object `id` (hex).
pub fn object_known(conn: &Connection, id: &str) -> Result<bool> {
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM objects WHERE id = ?1")?
        .query_row([id], |r| r.get(0))?;
    Ok(n > 0)
}

/// The store asks through this whether an object it finds is recorded (see
/// [`crate::store::intents`]).
impl crate::store::intents::Recorded for Connection {
    fn records_object(&self, id: &str) -> Result<bool> {
        object_known(self, id)
    }
}

/// A draft: a file a user created through the mount, shown only to them, in the purpose folder
/// where they made it, until a reviewer links persons (or derives it from an asset).
pub fn add_draft(
    tx: &Tx,
    collection: &str,
    name: &str,
    purpose: crate::policy::PurposeId,
    obj: &NewObject,
) -> Result<AssetId> {
    let id = add(tx, collection, name, Status::Draft, obj)?;
    set_draft_purpose(tx, id, purpose)?;
    Ok(id)
}

fn set_draft_purpose(tx: &Tx, id: AssetId, purpose: crate::policy::PurposeId) -> Result<()> {
    tx.prepare_cached("UPDATE assets SET draft_purpose = ?2 WHERE id = ?1")?
        .execute(params![id, purpose])?;
    Ok(())
}

/// A file created through the mount: a draft whose version 1 is `empty`, the store's one empty
/// object ([`share_empty`]), which every new file holds until its first save fills the version
/// ([`fill_placeholder`]). One shared object instead of one per file spares every
/// create a file, an fsync and a rename in the objects folder: a tenth of a `tar x`.
pub fn add_empty_draft(
    tx: &Tx,
    collection: &str,
    name: &str,
    purpose: crate::policy::PurposeId,
    empty: (&ObjectId, &[u8]),
) -> Result<NewDraft> {
    check_free(tx, collection, name)?;
    let id = add_rows(
        tx,
        collection,
        name,
        Status::Draft,
        empty.0,
        0,
        Some(purpose),
    )?;
    let created_at = when::from_secs(when::to_secs(tx.now()));
    Ok(NewDraft {
        row: AssetRow {
            id,
            collection: collection.to_string(),
            name: name.to_string(),
            no_persons: false,
            special_category: false,
            status: Status::Draft,
            creator: tx.actor().to_string(),
            created_at,
            retention_until: None,
            persons: Vec::new(),
            draft_purpose: Some(purpose),
            sources: Vec::new(),
            faces: 0,
            faces_reviewed: 0,
            companion_of: None,
        },
        version: VersionRow {
            version: 1,
            size: 0,
            created_at,
            created_by: tx.actor().to_string(),
            mtime: None,
            atime: None,
            thinned_at: None,
            object: *empty.0,
            wrapped_key: Some(empty.1.to_vec()),
        },
    })
}

/// What [`add_empty_draft`] recorded: the rows as [`get`] and [`current_versions`] would read
/// them back, so that the mount's view learns of a new file without those queries.
#[derive(Debug, Clone)]
pub struct NewDraft {
    pub row: AssetRow,
    pub version: VersionRow,
}

/// Where the catalog names the empty object new files share (`meta`).
const SHARED_EMPTY: &str = "shared_empty_object";

/// The empty object new files share (see [`add_empty_draft`]), if one was recorded and its key
/// is there: its id and wrapped key. Kept across mounts, and on a team library across
/// machines, so that there is one, not one per mount.
pub fn shared_empty(conn: &Connection) -> Result<Option<(ObjectId, Vec<u8>)>> {
    let row: Option<(String, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT o.id, o.wrapped_key FROM meta m JOIN objects o ON o.id = m.value
              WHERE m.key = ?1 AND o.size = 0 AND o.wrapped_key IS NOT NULL",
        )?
        .query_row([SHARED_EMPTY], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(id, key)| Some((ObjectId::parse(&id)?, key))))
}

/// Make `obj`, an empty object just written, the one new files share, unless another one is
/// shared already (a team machine was first) and it is not `bad` (the one that did not open
/// here). Returns the id and wrapped key of the one shared now.
pub fn share_empty(
    tx: &Tx,
    obj: &NewObject,
    bad: Option<&ObjectId>,
) -> Result<(ObjectId, Vec<u8>)> {
    if obj.size != 0 {
        return Err(Error::invalid("the object new files share must be empty"));
    }
    if let Some(shared) = shared_empty(tx)? {
        if Some(&shared.0) != bad {
            return Ok(shared);
        }
    }
    add_object(tx, obj)?;
    tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute(params![SHARED_EMPTY, obj.id.hex()])?;
    Ok((obj.id, obj.wrapped_key.clone()))
}

/// Whether `object` (hex id) is the empty object new files share. It holds nothing of
/// anyone, and any number of files hold it until their first save: it is never shredded and
/// never makes the assets that hold it one photo.
pub fn is_shared_empty(tx: &Tx, object: &str) -> Result<bool> {
    Ok(tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM meta WHERE key = ?1 AND value = ?2)")?
        .query_row([SHARED_EMPTY, object], |r| r.get(0))?)
}

/// A new version of an asset whose content is `obj` (written by the store, not yet recorded).
pub fn add_version(tx: &Tx, asset: AssetId, obj: &NewObject, mtime: Option<Time>) -> Result<i64> {
    add_object(tx, obj)?;
    add_version_of_object(tx, asset, &obj.id, obj.size, mtime)
}

/// What [`fill_placeholder`] did.
#[derive(Debug)]
pub enum Filled {
    /// Not a fresh draft: nothing changed, record a new version instead.
    No,
    /// Version 1 now holds the content, as [`current_versions`] would read it back. The empty
    /// object it held stays: others share it (see [`add_empty_draft`]).
    Yes(VersionRow),
}

/// The first content of a file created through the mount. `create` records an empty first
/// version so that the name exists while the tool writes; the first commit of that handle
/// fills it instead of leaving a 0-byte version 1 before every real one. Only a draft whose
/// single version is still empty qualifies.
pub fn fill_placeholder(
    tx: &Tx,
    asset: AssetId,
    obj: &NewObject,
    mtime: Option<Time>,
) -> Result<Filled> {
    let row: Option<(i64, i64, String, Option<AssetId>, String)> = tx
        .prepare_cached(
            "SELECT v.size, (SELECT count(*) FROM versions w WHERE w.asset_id = ?1),
                    a.status, a.companion_of, v.created_by
               FROM versions v JOIN assets a ON a.id = v.asset_id
              WHERE v.asset_id = ?1 AND v.version = 1",
        )?
        .query_row([asset], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let Some((0, 1, status, sidecar_of, created_by)) = row else {
        return Ok(Filled::No);
    };
    // a new file: a draft, or a sidecar made active by its create (see `attach`)
    let new_sidecar = sidecar_of.is_some() && status == Status::Active.as_str();
    if status != Status::Draft.as_str() && !new_sidecar {
        return Ok(Filled::No);
    }
    add_object(tx, obj)?;
    let filled = RawVersion {
        version: 1,
        size: obj.size as i64,
        created_at: when::to_secs(tx.now()),
        created_by,
        object: obj.id.hex(),
        wrapped_key: Some(obj.wrapped_key.clone()),
        mtime: mtime.map(when::to_secs),
        thinned_at: None,
        mtime_nsec: mtime.map(when::subsec_nanos),
        atime: None,
        atime_nsec: None,
    };
    tx.prepare_cached(
        "UPDATE versions SET object_id = ?2, size = ?3, created_at = ?4, mtime = ?5,
                mtime_nsec = ?6, atime = NULL, atime_nsec = NULL
          WHERE asset_id = ?1 AND version = 1",
    )?
    .execute(params![
        asset,
        filled.object,
        filled.size,
        filled.created_at,
        filled.mtime,
        filled.mtime_nsec
    ])?;
    tx.audit(
        "asset.version",
        serde_json::json!({ "asset": asset, "version": 1, "object": filled.object }),
    )?;
    Ok(Filled::Yes(to_version(filled)?))
}

/// A new version that refers to an object already in the catalog (restore, merge).
pub fn add_version_of_object(
    tx: &Tx,
    asset: AssetId,
    object: &ObjectId,
    size: u64,
    mtime: Option<Time>,
) -> Result<i64> {
    let next: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE asset_id = ?1")?
        .query_row([asset], |r| r.get(0))?;
    tx.prepare_cached(
        "INSERT INTO versions (asset_id, version, object_id, size, created_at, created_by, mtime,
                               mtime_nsec)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        asset,
        next,
        object.hex(),
        size as i64,
        when::to_secs(tx.now()),
        tx.actor(),
        mtime.map(when::to_secs),
        mtime.map(when::subsec_nanos)
    ])?;
    tx.audit(
        "asset.version",
        serde_json::json!({ "asset": asset, "version": next, "object": object.hex() }),
    )?;
    Ok(next)
}

/// Record the access time a tool set on a file while writing it, with its save (the newest
/// version, just recorded; the save's audit row covers it).
pub fn keep_atime(tx: &Tx, asset: AssetId, atime: Time) -> Result<()> {
    tx.prepare_cached(
        "UPDATE versions SET atime = ?2, atime_nsec = ?3 WHERE asset_id = ?1
           AND version = (SELECT MAX(version) FROM versions WHERE asset_id = ?1)",
    )?
    .execute(params![
        asset,
        when::to_secs(atime),
        when::subsec_nanos(atime)
    ])?;
    Ok(())
}

/// Record the modification and/or access time a tool set (utimensat) on the current version
/// (no new version); a time not given stays as it is.
pub fn set_times(tx: &Tx, asset: AssetId, mtime: Option<Time>, atime: Option<Time>) -> Result<()> {
    if mtime.is_none() && atime.is_none() {
        return Ok(());
    }
    tx.prepare_cached(
        "UPDATE versions SET mtime = COALESCE(?2, mtime), mtime_nsec = CASE WHEN ?2 IS NULL
                THEN mtime_nsec ELSE ?3 END,
                atime = COALESCE(?4, atime), atime_nsec = CASE WHEN ?4 IS NULL
                THEN atime_nsec ELSE ?5 END
          WHERE asset_id = ?1
           AND version = (SELECT MAX(version) FROM versions WHERE asset_id = ?1)",
    )?
    .execute(params![
        asset,
        mtime.map(when::to_secs),
        mtime.map(when::subsec_nanos),
        atime.map(when::to_secs),
        atime.map(when::subsec_nanos)
    ])?;
    let action = if mtime.is_some() {
        "asset.mtime"
    } else {
        "asset.atime"
    };
    tx.audit(action, serde_json::json!({ "asset": asset }))?;
    Ok(())
}

/// Give an asset a new collection path and name (a rename in the mount).
pub fn move_to(tx: &Tx, asset: AssetId, collection: &str, name: &str) -> Result<()> {
    check_name(name)?;
    if let Some(existing) = path_taken(tx, collection, name)? {
        if existing != asset {
            return Err(Error::invalid(format!(
                "'{}' already exists",
                join_path(collection, name)
            )));
        }
    }
    check_no_clash(tx, collection, name)?;
    let (from, sidecar_of): (Option<String>, Option<AssetId>) = tx
        .prepare_cached("SELECT collection, companion_of FROM assets WHERE id = ?1")?
        .query_row([asset], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .map_or((None, None), |(c, o)| (Some(c), o));
    if let Some(photo) = sidecar_of.filter(|_| from.as_deref() != Some(collection)) {
        return Err(Error::invalid(format!(
            "asset {asset} is a sidecar of asset {photo}: it moves with its photo, not on its own"
        )));
    }
    tx.prepare_cached("UPDATE assets SET collection = ?2, name = ?3 WHERE id = ?1")?
        .execute(params![asset, collection, name])?;
    tx.audit("asset.move", serde_json::json!({ "asset": asset }))?;
    if from.as_deref().is_some_and(|f| f != collection) {
        // a sidecar stays in its photo's collection: consents scoped to a collection, and
        // grants, must cover both alike
        let followers: Vec<(AssetId, String)> = tx
            .prepare_cached(
                "SELECT id, name FROM assets WHERE companion_of = ?1 AND status IN ('active', 'draft')",
            )?
            .query_map([asset], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (c, cname) in followers {
            if let Some(existing) = path_taken(tx, collection, &cname)? {
                return Err(Error::invalid(format!(
                    "'{}' already exists (asset {existing}), and the photo's sidecar would go there with it",
                    join_path(collection, &cname)
                )));
            }
            tx.prepare_cached("UPDATE assets SET collection = ?2 WHERE id = ?1")?
                .execute(params![c, collection])?;
            tx.audit("asset.move", serde_json::json!({ "asset": c }))?;
        }
    }
    Ok(())
}

/// Set an asset's status. A photo's sidecars go to the trash with it, and come back with it
/// when they went at the same moment (and their names are free).
pub fn set_status(tx: &Tx, asset: AssetId, status: Status) -> Result<()> {
    let trashed_at = (status == Status::Trash).then(|| when::to_secs(tx.now()));
    let was: Option<(String, Option<i64>)> = tx
        .prepare_cached("SELECT status, trashed_at FROM assets WHERE id = ?1")?
        .query_row([asset], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    set_status_of(tx, asset, status, trashed_at)?;
    let Some((was, was_trashed_at)) = was else {
        return Ok(());
    };
    let follow: Vec<(AssetId, String, Option<i64>)> = tx
        .prepare_cached(
            "SELECT id, status, trashed_at FROM assets
              WHERE companion_of = ?1 AND status <> 'purged' ORDER BY id",
        )?
        .query_map([asset], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (c, cstatus, c_trashed_at) in follow {
        match status {
            Status::Trash if cstatus == "active" => set_status_of(tx, c, status, trashed_at)?,
            Status::Active
                if was == "trash" && cstatus == "trash" && c_trashed_at == was_trashed_at =>
            {
                let row = get(tx, c)?.ok_or_else(|| Error::not_found("sidecar gone"))?;
                if path_taken(tx, &row.collection, &row.name)?.is_none() {
                    set_status_of(tx, c, status, None)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn set_status_of(tx: &Tx, asset: AssetId, status: Status, trashed_at: Option<i64>) -> Result<()> {
    tx.prepare_cached("UPDATE assets SET status = ?2, trashed_at = ?3 WHERE id = ?1")?
        .execute(params![asset, status.as_str(), trashed_at])?;
    tx.audit(
        &format!("asset.{}", status.as_str()),
        serde_json::json!({ "asset": asset }),
    )?;
    Ok(())
}

/// Make a draft a normal asset.
pub fn activate(tx: &Tx, asset: AssetId) -> Result<()> {
    let a = get(tx, asset)?.ok_or_else(|| Error::not_found(format!("no asset {asset}")))?;
    if a.status == Status::Draft {
        tx.prepare_cached(
            "UPDATE assets SET status = 'active', draft_purpose = NULL WHERE id = ?1",
        )?
        .execute([asset])?;
        tx.audit("asset.activate", serde_json::json!({ "asset": asset }))?;
    }
    Ok(())
}

/// Crypto-shred an asset: destroy the data keys of every object of every version, also of
/// objects that versions of other assets share (a backup copy an editor's save left, a restored
/// version), and queue their files for removal (`shred_queue`, worked off by `crate::shred`
/// once this transaction commits). An asset whose current version was one of those objects is
/// the same content under another name, so it is purged with it (and so on, transitively);
/// other assets only lose the shared old version (`cat --version` then says it was shredded).
/// Drafts made from a purged asset (copies, tool outputs: see `draft_sources`) that have no
/// persons linked themselves show its faces without a link, so they are purged too.
/// The asset rows, consent history and audit log stay. Returns every asset purged (the asset
/// and its copies).
pub fn purge(tx: &Tx, asset: AssetId) -> Result<Vec<AssetId>> {
    let mut todo = vec![asset];
    let mut purged = std::collections::BTreeSet::new();
    let mut objects = std::collections::BTreeSet::new();
    while let Some(a) = todo.pop() {
        if !purged.insert(a) {
            continue;
        }
        // drafts made from it that have no persons of their own carry its faces unlinked
        let derived: Vec<AssetId> = tx
            .prepare_cached(
                "SELECT d.draft_id FROM draft_sources d JOIN assets x ON x.id = d.draft_id
                  WHERE d.source_id = ?1 AND x.status <> 'purged'
                    AND NOT EXISTS (SELECT 1 FROM links l WHERE l.asset_id = d.draft_id)",
            )?
            .query_map([a], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        todo.extend(derived.into_iter().filter(|f| !purged.contains(f)));
        // its sidecars hold its face regions and names
        todo.extend(
            companions_of(tx, a)?
                .into_iter()
                .filter(|f| !purged.contains(f)),
        );
        let mine: Vec<(String, i64)> = tx
            .prepare_cached("SELECT DISTINCT object_id, size FROM versions WHERE asset_id = ?1")?
            .query_map([a], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (o, size) in mine {
            if !objects.insert(o.clone()) {
                continue;
            }
            // empty content is no one's: the files that hold the empty object new files
            // share (see `add_empty_draft`), or any empty one, are not copies of this asset
            if size == 0 {
                continue;
            }
            let followers: Vec<AssetId> = tx
                .prepare_cached(
                    "SELECT a.id FROM assets a JOIN versions v ON v.asset_id = a.id
                      WHERE v.object_id = ?1 AND a.status <> 'purged'
                        AND v.version = (SELECT MAX(w.version) FROM versions w WHERE w.asset_id = a.id)",
                )?
                .query_map([&o], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            todo.extend(followers.into_iter().filter(|f| !purged.contains(f)));
        }
    }
    // also when every version was empty: its earlier saves may still wait for their grace
    shred_waiting_superseded(tx)?;
    let mut out = Vec::new();
    for o in &objects {
        shred_object(tx, o)?;
        if let Some(id) = ObjectId::parse(o) {
            out.push(id);
        }
    }
    for a in &purged {
        tx.prepare_cached("UPDATE assets SET status = 'purged' WHERE id = ?1")?
            .execute([a])?;
        super::faces::forget(tx, *a)?;
        let detail = if *a == asset {
            serde_json::json!({ "asset": a, "objects_shredded": out.len() })
        } else {
            // the same content under another name goes with it
            serde_json::json!({ "asset": a, "with": asset })
        };
        tx.audit("asset.purge", detail)?;
    }
    Ok(purged.into_iter().collect())
}

/// Set (or with `None` remove) an asset's own retention term.
pub fn set_retention(tx: &Tx, asset: AssetId, until: Option<Time>) -> Result<()> {
    tx.prepare_cached("UPDATE assets SET retention_until = ?1 WHERE id = ?2")?
        .execute(params![until.map(when::to_secs), asset])?;
    tx.audit(
        "asset.retention",
        serde_json::json!({ "asset": asset, "until": until.map(when::to_secs) }),
    )?;
    Ok(())
}

/// Assets in the trash: (asset, trashed_at).
pub fn trashed(conn: &Connection) -> Result<Vec<(AssetRow, Time)>> {
    let mut st = conn.prepare(&format!(
        "SELECT {COLS}, trashed_at FROM assets WHERE status = 'trash' ORDER BY trashed_at, id"
    ))?;
    let rows = st
        .query_map([], |r| Ok((from_row(r)?, r.get::<_, Option<i64>>(10)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .map(|(a, t)| (a, when::from_secs(t.unwrap_or(0))))
        .collect())
}

/// (Both read the index of the trash, see the schema's migration 15.)
const TRASHED_BEFORE: &str = "SELECT id FROM assets WHERE status = 'trash'
    AND COALESCE(trashed_at, 0) < ?1 ORDER BY trashed_at, id LIMIT ?2";
const COUNT_TRASHED_BEFORE: &str =
    "SELECT count(*) FROM assets WHERE status = 'trash' AND COALESCE(trashed_at, 0) < ?1";

/// Up to `limit` assets in the trash since before `cutoff`, oldest first: one batch of a
/// purge (each batch its own short transaction).
pub fn trashed_before(conn: &Connection, cutoff: Time, limit: usize) -> Result<Vec<AssetId>> {
    let ids = conn
        .prepare_cached(TRASHED_BEFORE)?
        .query_map(params![when::to_secs(cutoff), limit as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// How many assets are in the trash since before `cutoff`.
pub fn count_trashed_before(conn: &Connection, cutoff: Time) -> Result<usize> {
    let n: i64 = conn
        .prepare_cached(COUNT_TRASHED_BEFORE)?
        .query_row([when::to_secs(cutoff)], |r| r.get(0))?;
    Ok(n as usize)
}

/// A draft whose first version is an object already in the catalog (a backup copy an editor
/// keeps while it writes the new version under the original name).
pub fn add_draft_of_object(
    tx: &Tx,
    collection: &str,
    name: &str,
    purpose: crate::policy::PurposeId,
    object: &ObjectId,
    size: u64,
) -> Result<AssetId> {
    check_name(name)?;
    if let Some(existing) = path_taken(tx, collection, name)? {
        return Err(Error::invalid(format!(
            "'{}' already exists (asset {existing})",
            join_path(collection, name)
        )));
    }
    tx.prepare_cached(
        "INSERT INTO assets (collection, name, status, creator, created_at, draft_purpose)
         VALUES (?1, ?2, 'draft', ?3, ?4, ?5)",
    )?
    .execute(params![
        collection,
        name,
        tx.actor(),
        when::to_secs(tx.now()),
        purpose
    ])?;
    let id = tx.last_insert_rowid();
    tx.audit(
        "asset.add",
        serde_json::json!({ "asset": id, "version": 0, "object": object.hex() }),
    )?;
    add_version_of_object(tx, id, object, size, None)?;
    Ok(id)
}

/// Object files whose keys were destroyed and that are to be removed from disk by `now`.
pub fn queued_shreds(conn: &Connection, now: Time) -> Result<Vec<ObjectId>> {
    let ids: Vec<String> = conn
        .prepare_cached(
            "SELECT object_id FROM shred_queue WHERE queued_at <= ?1 ORDER BY object_id",
        )?
        .query_map([when::to_secs(now)], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids.iter().filter_map(|o| ObjectId::parse(o)).collect())
}

/// Destroy the keys of these queued objects, before their files go (those of superseded
/// objects were kept until their grace passed: see [`shred_superseded`]); so the catalog never
/// names an object readable whose file is gone (a scrub would call that damage). Returns how
/// many still had one.
pub fn destroy_keys(tx: &Tx, objects: &[ObjectId]) -> Result<usize> {
    let mut n = 0;
    for o in objects {
        n += usize::from(destroy_key(tx, &o.hex())?);
    }
    Ok(n)
}

/// Whether any of these objects still has its data key.
pub fn any_keyed(conn: &Connection, objects: &[ObjectId]) -> Result<bool> {
    let mut st = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM objects WHERE id = ?1 AND wrapped_key IS NOT NULL)",
    )?;
    for o in objects {
        if st.query_row([o.hex()], |r| r.get::<_, bool>(0))? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// These object files are gone from disk: take them off the queue.
pub fn shreds_done(tx: &Tx, done: &[ObjectId]) -> Result<()> {
    for o in done {
        tx.prepare_cached("DELETE FROM shred_queue WHERE object_id = ?1")?
            .execute([o.hex()])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{files_above_sql, ABOVE_IN_ONE, FOLDER_EXISTS};
    use crate::catalog::Catalog;
    use crate::crypto::Key;

    fn catalog() -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog");
        let key = Key::random();
        Catalog::create(&path, &key, Key::random(), chrono::Utc::now(), "t").unwrap();
        let cat = Catalog::open(&path, &key, Key::random()).unwrap();
        (dir, cat)
    }

    /// A new file's path is refused where the mount could not show it: a file already there, a
    /// folder of the same path, or a file where one of its folders would be (also deeper than
    /// the depth checked in one statement); a move is refused alike.
    #[test]
    fn a_path_clashing_with_a_file_or_folder_is_refused() {
        use crate::crypto::object::ObjectId;
        use crate::policy::Status;
        use crate::store::NewObject;
        let (_d, mut cat) = catalog();
        let tx = cat.begin("t", chrono::Utc::now()).unwrap();
        let add = |collection: &str, name: &str| {
            let obj = NewObject {
                id: ObjectId::random(),
                wrapped_key: vec![1; 40],
                size: 1,
                content_hash: [7; 32],
            };
            super::add(&tx, collection, name, Status::Active, &obj)
        };
        let refused = |r: crate::error::Result<crate::policy::AssetId>| match r {
            Err(crate::error::Error::Invalid(m)) => m,
            other => panic!("not refused: {other:?}"),
        };
        let a = add("events", "a.jpg").unwrap();
        add("events/2026", "b.jpg").unwrap();
        assert!(refused(add("events", "a.jpg")).contains(&format!("already exists (asset {a})")));
        assert!(refused(add("events", "2026")).contains("'events/2026' is already a collection"));
        assert!(refused(add("", "events")).contains("'events' is already a collection"));
        let m = refused(add("events/a.jpg/deeper", "c.jpg"));
        assert!(m.contains("'events/a.jpg' is a file"), "{m}");
        // as deep as one statement checks, and deeper
        let deep: Vec<String> = (0..super::ABOVE_IN_ONE + 3)
            .map(|i| format!("f{i}"))
            .collect();
        add(&deep[..4].join("/"), "f4").unwrap();
        let m = refused(add(&deep.join("/"), "x.jpg"));
        assert!(m.contains("'f0/f1/f2/f3/f4' is a file"), "{m}");
        let m = refused(add(&deep[..super::ABOVE_IN_ONE].join("/"), "x.jpg"));
        assert!(m.contains("'f0/f1/f2/f3/f4' is a file"), "{m}");
        // free paths, at the top, beside files and in a new folder
        add("", "top.jpg").unwrap();
        add("events", "c.jpg").unwrap();
        add("events/2027", "d.jpg").unwrap();
        add(&deep[..4].join("/"), "ok.jpg").unwrap();
        // a move checks the same
        let m = super::move_to(&tx, a, "events/2026/b.jpg/x", "a.jpg").unwrap_err();
        assert!(
            m.to_string().contains("'events/2026/b.jpg' is a file"),
            "{m}"
        );
        assert!(super::move_to(&tx, a, "events", "2026").is_err());
        super::move_to(&tx, a, "events/2028", "a.jpg").unwrap();
    }

    /// The empty object new files share is never shredded, by whatever path: a thinned or
    /// replaced version 1 of a file that held it, or a purge, would otherwise take it from
    /// every new file. An object with content is shredded as before.
    #[test]
    fn the_shared_empty_object_is_never_shredded() {
        use crate::crypto::object::ObjectId;
        use crate::store::NewObject;
        let (_d, mut cat) = catalog();
        let object = |size| NewObject {
            id: ObjectId::random(),
            wrapped_key: vec![size as u8; 40],
            size,
            content_hash: [size as u8; 32],
        };
        let (shared, other, late, full) = (object(0), object(0), object(0), object(5));
        let tx = cat.begin("t", chrono::Utc::now()).unwrap();
        let key = |o: &NewObject| (o.id, o.wrapped_key.clone());
        assert_eq!(
            super::share_empty(&tx, &shared, None).unwrap(),
            key(&shared)
        );
        // a second machine's comes too late: the first stays shared
        assert_eq!(super::share_empty(&tx, &late, None).unwrap(), key(&shared));
        assert!(super::share_empty(&tx, &full, None).is_err());
        super::add_object(&tx, &other).unwrap();
        super::add_object(&tx, &full).unwrap();
        assert!(!super::shred_object(&tx, &shared.id.hex()).unwrap());
        super::shred_superseded(&tx, &shared.id.hex()).unwrap();
        // any other object goes, empty or not
        assert!(super::shred_object(&tx, &other.id.hex()).unwrap());
        assert!(super::shred_object(&tx, &full.id.hex()).unwrap());
        tx.commit().unwrap();
        assert_eq!(super::shared_empty(cat.conn()).unwrap(), Some(key(&shared)));
        let mut queued =
            super::queued_shreds(cat.conn(), chrono::Utc::now() + chrono::Duration::days(1))
                .unwrap();
        queued.sort();
        let mut expected = vec![other.id, full.id];
        expected.sort();
        assert_eq!(queued, expected);
        // the one that did not open is replaced
        let tx = cat.begin("t", chrono::Utc::now()).unwrap();
        let again = object(0);
        assert_eq!(
            super::share_empty(&tx, &again, Some(&shared.id)).unwrap(),
            key(&again)
        );
        tx.commit().unwrap();
        assert_eq!(super::shared_empty(cat.conn()).unwrap(), Some(key(&again)));
    }

    /// Every mount asks for what has been in the trash too long before it serves: that reads
    /// the trash (an index of it), not every asset.
    #[test]
    fn the_trash_is_found_without_reading_every_asset() {
        let (_d, cat) = catalog();
        for sql in [super::TRASHED_BEFORE, super::COUNT_TRASHED_BEFORE] {
            let mut st = cat
                .conn()
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let n = st.parameter_count();
            let plan: Vec<String> = st
                .query_map(rusqlite::params_from_iter((0..n).map(|_| 1)), |r| {
                    r.get::<_, String>(3)
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                plan.iter().any(|l| l.contains("assets_trash"))
                    && plan.iter().all(|l| l != "SCAN assets"),
                "{sql}: {plan:?}"
            );
        }
    }

    /// Every save through the mount runs these; with a scan, untarring 5,000 files into a
    /// catalog of 100,000 reads the whole catalog 10,000 times.
    #[test]
    fn the_queries_of_a_save_use_indexes() {
        let (_d, cat) = catalog();
        let plans = [
            ("check_no_clash", format!("SELECT {FOLDER_EXISTS}"), 1),
            (
                "check_free",
                format!(
                    "SELECT (SELECT id FROM assets WHERE collection = ?2 AND name = ?3
                               AND status IN ('active', 'draft')), {FOLDER_EXISTS}"
                ),
                3,
            ),
            ("a file above, 1 folder", files_above_sql(1), 2),
            ("a file above, 3 folders", files_above_sql(3), 6),
            (
                "a file above, the deepest in one",
                files_above_sql(ABOVE_IN_ONE),
                2 * ABOVE_IN_ONE,
            ),
            (
                "path_taken",
                "SELECT id FROM assets WHERE collection = ?1 AND name = ?2 AND status IN ('active', 'draft')".to_string(),
                2,
            ),
            (
                "objects shared by versions",
                "SELECT count(*) FROM versions WHERE object_id = ?1".to_string(),
                1,
            ),
            (
                "current version of one asset",
                "SELECT v.asset_id FROM versions v JOIN objects o ON o.id = v.object_id
                 WHERE v.asset_id = ?1
                   AND v.version = (SELECT MAX(version) FROM versions w WHERE w.asset_id = v.asset_id)".to_string(),
                1,
            ),
        ];
        for (what, sql, params) in plans {
            let mut st = cat
                .conn()
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let args: Vec<String> = (0..params).map(|_| "x".to_string()).collect();
            let plan: Vec<String> = st
                .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                    r.get::<_, String>(3)
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            // a scan of a subquery's few rows (one per folder above) is no scan of a table
            assert!(
                plan.iter().all(|l| !l.starts_with("SCAN")
                    || l == "SCAN CONSTANT ROW"
                    || l.starts_with("SCAN (subquery-")),
                "{what} scans: {plan:?}"
            );
        }
    }
}
