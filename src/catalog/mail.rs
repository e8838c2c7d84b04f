//! Where the consent page's mail goes out: the organisation's mail server and sender, kept in
//! the catalog's `meta` table (keys `mail_smtp`, `mail_from`), so that every machine of a team
//! and every command send alike. The server's address may hold a password: the catalog is
//! encrypted at rest, and nothing prints it (see `domain::mail`).

use super::Tx;
use crate::error::Result;
use rusqlite::{params, Connection, OptionalExtension};

const SMTP: &str = "mail_smtp";
const FROM: &str = "mail_from";

/// The configured mail server URL and sender, if mail is configured.
pub fn get(conn: &Connection) -> Result<Option<(String, String)>> {
    let value = |key: &str| -> Result<Option<String>> {
        Ok(conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    };
    Ok(match (value(SMTP)?, value(FROM)?) {
        (Some(smtp), Some(from)) => Some((smtp, from)),
        _ => None,
    })
}

/// Configure mail (both or, with `None`, neither). The audit entry names the sender only.
pub fn set(tx: &Tx, config: Option<(&str, &str)>) -> Result<()> {
    match config {
        Some((smtp, from)) => {
            let mut st =
                tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?;
            st.execute(params![SMTP, smtp])?;
            st.execute(params![FROM, from])?;
            tx.audit("mail.configured", serde_json::json!({ "from": from }))?;
        }
        None => {
            let mut st = tx.prepare_cached("DELETE FROM meta WHERE key = ?1")?;
            st.execute([SMTP])?;
            st.execute([FROM])?;
            tx.audit("mail.removed", serde_json::json!({}))?;
        }
    }
    Ok(())
}
