//! The store's time zone, kept in the catalog's `meta` table (key `timezone`, an IANA name).
//!
//! It is fixed when the store is created (`init --timezone`, default the system's zone), so the
//! meaning of a date typed later ("until 2027-03-01": local midnight) and of a 16th birthday does
//! not change when the machine's zone does. Catalogs created before the zone existed have no
//! entry and keep the meaning they had: UTC.

use super::Tx;
use crate::error::{Error, Result};
use crate::when::Zone;
use rusqlite::{params, Connection, OptionalExtension};

const KEY: &str = "timezone";

/// The store's zone. An unknown name (the machine lacks the zone database) is an error rather
/// than a silent UTC: birthdays and date-only consents would shift by hours.
pub fn get(conn: &Connection) -> Result<Zone> {
    let name: Option<String> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([KEY], |r| r.get(0))
        .optional()?;
    match name {
        None => Ok(Zone::utc()),
        Some(name) => Zone::named(&name).map_err(|e| {
            Error::invalid(format!(
                "the store's time zone '{name}' is not known on this machine ({e}); install the time zone database (the tzdata package)"
            ))
        }),
    }
}

pub fn set(tx: &Tx, zone: &Zone) -> Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        params![KEY, zone.name()],
    )?;
    tx.audit(
        "store.timezone",
        serde_json::json!({ "timezone": zone.name() }),
    )?;
    Ok(())
}
