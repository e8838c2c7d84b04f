//! OS users and their grants (which purposes and collections they may read, write or delete).

use super::Tx;
use crate::error::{Error, Result};
use crate::policy::{Access, Grant, PersonId, PurposeId, User};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct GrantRow {
    pub purpose: String,
    #[serde(skip)]
    pub purpose_id: PurposeId,
    pub collection: String,
    pub access: Access,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserRow {
    pub id: i64,
    pub login: String,
    pub person: Option<PersonId>,
    pub grants: Vec<GrantRow>,
}

impl UserRow {
    pub fn to_policy(&self) -> User {
        User {
            login: self.login.clone(),
            grants: self
                .grants
                .iter()
                .map(|g| Grant {
                    purpose: g.purpose_id,
                    prefix: g.collection.clone(),
                    access: g.access,
                })
                .collect(),
        }
    }
}

fn grants_of(conn: &Connection, user: i64) -> Result<Vec<GrantRow>> {
    let mut st = conn.prepare_cached(
        "SELECT p.name, g.purpose_id, g.prefix, g.access FROM grants g JOIN purposes p ON p.id = g.purpose_id
         WHERE g.user_id = ?1 ORDER BY p.name, g.prefix",
    )?;
    let rows = st
        .query_map([user], |r| {
            let access: String = r.get(3)?;
            Ok(GrantRow {
                purpose: r.get(0)?,
                purpose_id: r.get(1)?,
                collection: r.get(2)?,
                access: Access::parse(&access).unwrap_or(Access::Read),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn list(conn: &Connection) -> Result<Vec<UserRow>> {
    let mut st = conn.prepare("SELECT id, login, person_id FROM users ORDER BY login")?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(id, login, person)| {
            Ok(UserRow {
                id,
                login,
                person,
                grants: grants_of(conn, id)?,
            })
        })
        .collect()
}

pub fn resolve(conn: &Connection, login: &str) -> Result<UserRow> {
    let row = conn
        .query_row(
            "SELECT id, login, person_id FROM users WHERE login = ?1",
            [login],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            },
        )
        .optional()?;
    match row {
        Some((id, login, person)) => Ok(UserRow {
            id,
            grants: grants_of(conn, id)?,
            login,
            person,
        }),
        None => Err(Error::not_found(format!(
            "no user '{login}'; add them with `consentfs user add {login}`"
        ))),
    }
}

/// An OS login as it may appear as a folder name in the mount.
pub fn check_login(login: &str) -> Result<()> {
    let ok = !login.is_empty()
        && login.len() <= 32
        && !login.starts_with('-')
        && !login.starts_with('.')
        && login
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-$".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "'{login}' is not a valid OS login name"
        )))
    }
}

pub fn add(tx: &Tx, login: &str, person: Option<PersonId>) -> Result<i64> {
    check_login(login)?;
    if resolve(tx, login).is_ok() {
        return Err(Error::invalid(format!("user '{login}' already exists")));
    }
    tx.execute(
        "INSERT INTO users (login, person_id) VALUES (?1, ?2)",
        params![login, person],
    )?;
    let id = tx.last_insert_rowid();
    tx.audit(
        "user.add",
        serde_json::json!({ "user": login, "person": person }),
    )?;
    Ok(id)
}

/// Give (or change) a user's access to a purpose on a collection prefix.
pub fn grant(
    tx: &Tx,
    user: &UserRow,
    purpose: PurposeId,
    prefix: &str,
    access: Access,
) -> Result<()> {
    tx.execute(
        "INSERT INTO grants (user_id, purpose_id, prefix, access) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (user_id, purpose_id, prefix) DO UPDATE SET access = excluded.access",
        params![user.id, purpose, prefix, access.as_str()],
    )?;
    tx.audit(
        "user.grant",
        serde_json::json!({ "user": user.login, "purpose": purpose, "collection": prefix, "access": access.as_str() }),
    )?;
    Ok(())
}
