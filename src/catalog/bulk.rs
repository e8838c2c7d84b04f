//! Streaming reads of the whole catalog, for the mount's view index.
//!
//! With a million assets, materialising every row first (a `Vec<AssetRow>` of owned strings,
//! then a map of versions with their wrapped keys) costs more memory than the index built from
//! it and most of the start-up time. These functions hand each row to a callback while the
//! statement steps, with borrowed strings, so the caller keeps only what it needs. Each is one
//! plain scan (table or covering index order): no per-row sub-queries.

use crate::crypto::object::ObjectId;
use crate::error::{Error, Result};
use crate::policy::{AssetId, PersonId, PurposeId, Status};
use rusqlite::{Connection, OptionalExtension};

/// One asset row, borrowed from the statement while it steps.
pub struct AssetRef<'a> {
    pub id: AssetId,
    pub collection: &'a str,
    pub name: &'a str,
    pub no_persons: bool,
    pub special_category: bool,
    pub status: Status,
    pub creator: &'a str,
    /// Seconds since the epoch, as stored.
    pub created_at: i64,
    pub retention_until: Option<i64>,
    pub draft_purpose: Option<PurposeId>,
    pub faces: u16,
    pub faces_reviewed: u16,
    /// For a sidecar: its photo (the fields above are the sidecar's own, unused; see
    /// `assets::Inherited`).
    pub companion_of: Option<AssetId>,
}

/// One version row without its object's wrapped key (read at open, see [`wrapped_key`]).
pub struct VersionRef<'a> {
    pub asset: AssetId,
    pub version: i64,
    pub size: i64,
    pub created_at: i64,
    pub created_by: &'a str,
    pub object: ObjectId,
    pub mtime: Option<(i64, Option<i64>)>,
    pub atime: Option<(i64, Option<i64>)>,
    pub thinned_at: Option<i64>,
}

fn text<'a>(r: &'a rusqlite::Row, i: usize) -> rusqlite::Result<&'a str> {
    r.get_ref(i)?.as_str().map_err(rusqlite::Error::from)
}

/// Every asset (any status), in id order.
pub fn each_asset(conn: &Connection, mut f: impl FnMut(AssetRef<'_>) -> Result<()>) -> Result<()> {
    let mut st = conn.prepare(
        "SELECT id, collection, name, no_persons, special_category, status, creator, created_at, \
         retention_until, draft_purpose, faces, faces_reviewed, companion_of FROM assets ORDER BY id",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        f(AssetRef {
            id: r.get(0)?,
            collection: text(r, 1)?,
            name: text(r, 2)?,
            no_persons: r.get(3)?,
            special_category: r.get(4)?,
            // an unknown status shows nothing (as `assets::list` reads it)
            status: Status::parse(text(r, 5)?).unwrap_or(Status::Trash),
            creator: text(r, 6)?,
            created_at: r.get(7)?,
            retention_until: r.get(8)?,
            draft_purpose: r.get(9)?,
            faces: r.get(10)?,
            faces_reviewed: r.get(11)?,
            companion_of: r.get(12)?,
        })?;
    }
    Ok(())
}

/// Every link (asset, person), ordered by asset and person (the links' primary key).
pub fn each_link(conn: &Connection, mut f: impl FnMut(AssetId, PersonId)) -> Result<()> {
    let mut st =
        conn.prepare("SELECT asset_id, person_id FROM links ORDER BY asset_id, person_id")?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        f(r.get(0)?, r.get(1)?);
    }
    Ok(())
}

/// Every version of every asset, in no particular order (a table scan: the caller keeps the
/// highest number per asset).
pub fn each_version(conn: &Connection, mut f: impl FnMut(VersionRef<'_>)) -> Result<()> {
    let mut st = conn.prepare(
        "SELECT asset_id, version, size, created_at, created_by, object_id, mtime, mtime_nsec, \
         atime, atime_nsec, thinned_at FROM versions",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let object = text(r, 5)?;
        let object = ObjectId::parse(object)
            .ok_or_else(|| Error::integrity("catalog", format!("bad object id '{object}'")))?;
        let mtime: Option<i64> = r.get(6)?;
        let atime: Option<i64> = r.get(8)?;
        f(VersionRef {
            asset: r.get(0)?,
            version: r.get(1)?,
            size: r.get(2)?,
            created_at: r.get(3)?,
            created_by: text(r, 4)?,
            object,
            mtime: mtime.map(|s| r.get(7).map(|n| (s, n))).transpose()?,
            atime: atime.map(|s| r.get(9).map(|n| (s, n))).transpose()?,
            thinned_at: r.get(10)?,
        });
    }
    Ok(())
}

/// The wrapped key of an object (`None` once shredded). The view index does not hold keys: a
/// million of them would be most of its memory, and only an open needs one.
pub fn wrapped_key(conn: &Connection, object: &ObjectId) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT wrapped_key FROM objects WHERE id = ?1")?
        .query_row([object.hex()], |r| r.get::<_, Option<Vec<u8>>>(0))
        .optional()?
        .flatten())
}

/// Every consent event as the rules read it (of one person, if given), oldest first, with its
/// person. The purposes and assets of the events are read alongside (merge joins on the event
/// id), so no row is held longer than its event. One person's events are found by index (the
/// mount reads them after every consent change; a scan of a million events would take longer
/// than the change may take to show).
pub fn each_event(
    conn: &Connection,
    person: Option<PersonId>,
    mut f: impl FnMut(PersonId, crate::policy::ConsentEvent),
) -> Result<()> {
    use crate::policy::{ConsentEvent, EventKind, Scope};
    let only = if person.is_some() {
        "WHERE person_id = ?1"
    } else {
        ""
    };
    let of_events = if person.is_some() {
        "WHERE event_id IN (SELECT id FROM consent_events WHERE person_id = ?1)"
    } else {
        ""
    };
    let mut st = conn.prepare_cached(&format!(
        "SELECT id, person_id, kind, scope, scope_prefix, starts, expires, given_by, explicit \
         FROM consent_events {only} ORDER BY id"
    ))?;
    let mut ps = conn.prepare_cached(&format!(
        "SELECT event_id, purpose_id FROM consent_event_purposes {of_events} \
         ORDER BY event_id, purpose_id"
    ))?;
    let mut xs = conn.prepare_cached(&format!(
        "SELECT event_id, asset_id FROM consent_event_assets {of_events} \
         ORDER BY event_id, asset_id"
    ))?;
    let params: Vec<PersonId> = person.into_iter().collect();
    let mut purposes = ps.query(rusqlite::params_from_iter(params.iter()))?;
    let mut assets = xs.query(rusqlite::params_from_iter(params.iter()))?;
    let step = |rows: &mut rusqlite::Rows<'_>| -> Result<Option<(i64, i64)>> {
        Ok(match rows.next()? {
            Some(r) => Some((r.get(0)?, r.get(1)?)),
            None => None,
        })
    };
    let mut next_purpose: Option<(i64, PurposeId)> = step(&mut purposes)?;
    let mut next_asset: Option<(i64, AssetId)> = step(&mut assets)?;
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let mut event_purposes = crate::policy::Purposes::new();
        while let Some((e, p)) = next_purpose.filter(|(e, _)| *e <= id) {
            if e == id {
                event_purposes.push(p);
            }
            next_purpose = step(&mut purposes)?;
        }
        let mut event_assets = Vec::new();
        while let Some((e, a)) = next_asset.filter(|(e, _)| *e <= id) {
            if e == id {
                event_assets.push(a);
            }
            next_asset = step(&mut assets)?;
        }
        let scope = match text(r, 3)? {
            "collection" => Scope::Collection(r.get::<_, Option<String>>(4)?.unwrap_or_default()),
            "assets" => Scope::Assets(event_assets),
            _ => Scope::All,
        };
        f(
            r.get(1)?,
            ConsentEvent {
                id,
                kind: EventKind::parse(text(r, 2)?).unwrap_or(EventKind::Refuse),
                purposes: event_purposes,
                scope,
                starts: crate::when::from_secs(r.get(5)?),
                expires: r.get::<_, Option<i64>>(6)?.map(crate::when::from_secs),
                given_by: r.get(7)?,
                explicit: r.get(8)?,
            },
        );
    }
    Ok(())
}

/// Every asset as a full row (linked persons and a draft's sources included), in id order,
/// one at a time: the assets and links are read side by side (both ordered by asset), so a
/// command that looks at each asset once (`ls`) holds one row, not a million.
pub fn each_asset_row(
    conn: &Connection,
    mut f: impl FnMut(super::assets::AssetRow) -> Result<()>,
) -> Result<()> {
    let mut sources = super::assets::all_sources(conn)?;
    let inherited = super::assets::inherited_all(conn)?;
    let mut ls =
        conn.prepare("SELECT asset_id, person_id FROM links ORDER BY asset_id, person_id")?;
    let mut links = ls.query([])?;
    let mut next_link: Option<(AssetId, PersonId)> = match links.next()? {
        Some(r) => Some((r.get(0)?, r.get(1)?)),
        None => None,
    };
    let mut pending: Option<Error> = None;
    each_asset(conn, |a| {
        let mut persons = Vec::new();
        while let Some((asset, person)) = next_link.filter(|(x, _)| *x <= a.id) {
            if asset == a.id {
                persons.push(person);
            }
            next_link = match links.next() {
                Ok(Some(r)) => Some((r.get(0)?, r.get(1)?)),
                Ok(None) => None,
                Err(e) => {
                    pending = Some(e.into());
                    None
                }
            };
        }
        let mut row = super::assets::AssetRow {
            id: a.id,
            collection: a.collection.to_string(),
            name: a.name.to_string(),
            no_persons: a.no_persons,
            special_category: a.special_category,
            status: a.status,
            creator: a.creator.to_string(),
            created_at: crate::when::from_secs(a.created_at),
            retention_until: a.retention_until.map(crate::when::from_secs),
            persons,
            draft_purpose: a.draft_purpose,
            sources: sources.remove(&a.id).unwrap_or_default(),
            faces: a.faces,
            faces_reviewed: a.faces_reviewed,
            companion_of: a.companion_of,
        };
        if let Some(i) = inherited.get(&a.id) {
            i.apply(&mut row);
        }
        f(row)
    })?;
    match pending {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
