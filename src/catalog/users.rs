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
    /// The uid of the OS account this user was added for. Grants belong to that account, not
    /// to whoever holds the login later: an account deleted and re-created under the same
    /// name gets a new uid and inherits nothing. `None` for users recorded before uids were
    /// stored whose login had no OS account when the catalog was migrated (see [`fill_uids`]),
    /// or added by the hidden `generate` command for a login the machine does not know.
    pub uid: Option<u32>,
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
    let mut st = conn.prepare("SELECT id, login, person_id, uid FROM users ORDER BY login")?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<u32>>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(id, login, person, uid)| {
            Ok(UserRow {
                id,
                login,
                uid,
                person,
                grants: grants_of(conn, id)?,
            })
        })
        .collect()
}

pub fn resolve(conn: &Connection, login: &str) -> Result<UserRow> {
    let row = conn
        .prepare_cached("SELECT id, login, person_id, uid FROM users WHERE login = ?1")?
        .query_row([login], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<u32>>(3)?,
            ))
        })
        .optional()?;
    match row {
        Some((id, login, person, uid)) => Ok(UserRow {
            id,
            grants: grants_of(conn, id)?,
            login,
            uid,
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

/// The uid of the OS account called `login` now, if there is one. A failed lookup (the
/// password database being rewritten) is retried once and then reported, never taken for "no
/// such account".
pub fn os_uid(login: &str) -> Result<Option<u32>> {
    nix::unistd::User::from_name(login)
        .or_else(|_| nix::unistd::User::from_name(login))
        .map(|u| u.map(|u| u.uid.as_raw()))
        .map_err(|e| Error::invalid(format!("cannot look up the OS account '{login}': {e}")))
}

/// Whether the account that holds `login` now is the one the user was added for: `stored` is
/// the uid recorded at `user add`, `current` the uid of the login's account now (if any). An
/// account that no longer exists gets nothing anyway (nobody can log in as it); an account
/// with another uid, or any account for a user recorded without a uid, is a re-created login
/// that must not inherit grants or drafts.
pub fn same_account(stored: Option<u32>, current: Option<u32>) -> bool {
    match current {
        None => true,
        Some(now) => stored == Some(now),
    }
}

/// Refuse a user whose login now belongs to another OS account than the one they were added
/// for (deleted and re-created), with what to do about it. Used by the commands that show or
/// export a user's view; the mount does the same check on every request.
pub fn check_account(user: &UserRow) -> Result<()> {
    let current = os_uid(&user.login)?;
    if same_account(user.uid, current) {
        return Ok(());
    }
    let was = user
        .uid
        .map_or_else(|| "no recorded uid".to_string(), |u| format!("uid {u}"));
    let login = &user.login;
    Err(Error::invalid(format!(
        "the OS account '{login}' was re-created (it now has uid {}, the user was added for {was}); \
         its grants do not carry over: if this is the same person, run `consentfs user remove {login}` \
         and `consentfs user add {login}`, then grant again",
        current.unwrap_or_default()
    )))
}

/// Add a user for an existing OS account (refused for a login the machine does not know: a
/// grant to a name no one holds would go to whoever is given that name later).
pub fn add(tx: &Tx, login: &str, person: Option<PersonId>) -> Result<i64> {
    check_login(login)?;
    let Some(uid) = os_uid(login)? else {
        return Err(Error::invalid(format!(
            "there is no OS account '{login}' on this machine; create it first (e.g. `useradd {login}`), then add the user"
        )));
    };
    add_with_uid(tx, login, person, Some(uid))
}

/// Add a user bound to `uid` (`None`: no account to bind to; such a user gets no tree in
/// the mount once an account with that login exists). Only the hidden `generate` command
/// (synthetic benchmark catalogs) adds users without an OS account; everything else goes
/// through [`add`].
pub fn add_with_uid(
    tx: &Tx,
    login: &str,
    person: Option<PersonId>,
    uid: Option<u32>,
) -> Result<i64> {
    check_login(login)?;
    if resolve(tx, login).is_ok() {
        return Err(Error::invalid(format!("user '{login}' already exists")));
    }
    tx.prepare_cached("INSERT INTO users (login, person_id, uid) VALUES (?1, ?2, ?3)")?
        .execute(params![login, person, uid])?;
    let id = tx.last_insert_rowid();
    tx.audit(
        "user.add",
        serde_json::json!({ "user": login, "person": person, "uid": uid }),
    )?;
    Ok(id)
}

/// Fill in the uid of users recorded before uids were stored (schema migration 7), from the
/// OS accounts as they are at migration time: the best evidence left of which account a grant
/// was meant for. Logins with no account then keep no uid, so an account created later under
/// that name gets nothing until an officer runs `user remove` and `user add`.
pub fn fill_uids(conn: &Connection) -> Result<usize> {
    let mut st = conn.prepare("SELECT id, login FROM users WHERE uid IS NULL")?;
    let rows = st
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut filled = 0;
    for (id, login) in rows {
        if let Some(uid) = os_uid(&login)? {
            conn.prepare_cached("UPDATE users SET uid = ?1 WHERE id = ?2")?
                .execute(params![uid, id])?;
            filled += 1;
        }
    }
    Ok(filled)
}

/// Take away a user's grants in a purpose: the one on `collection`, or every one in the
/// purpose when `collection` is `None`. Returns how many were removed; none is an error
/// (a typo must not look like a revocation).
pub fn revoke(
    tx: &Tx,
    user: &UserRow,
    purpose: PurposeId,
    purpose_name: &str,
    collection: Option<&str>,
) -> Result<usize> {
    let n = match collection {
        Some(prefix) => tx
            .prepare_cached(
                "DELETE FROM grants WHERE user_id = ?1 AND purpose_id = ?2 AND prefix = ?3",
            )?
            .execute(params![user.id, purpose, prefix])?,
        None => tx
            .prepare_cached("DELETE FROM grants WHERE user_id = ?1 AND purpose_id = ?2")?
            .execute(params![user.id, purpose])?,
    };
    if n == 0 {
        let on = match collection {
            Some("") => " on everything".to_string(),
            Some(c) => format!(" on collection '{c}'"),
            None => String::new(),
        };
        return Err(Error::invalid(format!(
            "user '{}' has no grant in {purpose_name}{on}; see `consentfs user list`",
            user.login
        )));
    }
    tx.audit(
        "user.revoke",
        serde_json::json!({ "user": user.login, "purpose": purpose, "collection": collection, "grants": n }),
    )?;
    Ok(n)
}

/// Remove a user and all their grants. Their drafts stay in the catalog (their persons'
/// reports and erasure still reach them) but belong to no login any more: the creator becomes
/// `LOGIN#removed`, which no OS login can be, so nobody (not a later account with the same
/// name either) sees them. Returns the number of such drafts.
pub fn remove(tx: &Tx, user: &UserRow) -> Result<usize> {
    tx.prepare_cached("DELETE FROM roles WHERE user_id = ?1")?
        .execute([user.id])?;
    let grants = tx
        .prepare_cached("DELETE FROM grants WHERE user_id = ?1")?
        .execute([user.id])?;
    let drafts = tx
        .prepare_cached("UPDATE assets SET creator = ?1 WHERE creator = ?2 AND status = 'draft'")?
        .execute(params![removed_creator(&user.login), user.login])?;
    tx.prepare_cached("DELETE FROM users WHERE id = ?1")?
        .execute([user.id])?;
    tx.audit(
        "user.remove",
        serde_json::json!({ "user": user.login, "uid": user.uid, "grants": grants, "drafts": drafts }),
    )?;
    Ok(drafts)
}

/// The creator recorded on the drafts of a removed user (not a valid login, see [`check_login`]).
pub fn removed_creator(login: &str) -> String {
    format!("{login}#removed")
}

/// Give (or change) a user's access to a purpose on a collection prefix.
pub fn grant(
    tx: &Tx,
    user: &UserRow,
    purpose: PurposeId,
    prefix: &str,
    access: Access,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO grants (user_id, purpose_id, prefix, access) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (user_id, purpose_id, prefix) DO UPDATE SET access = excluded.access",
    )?
    .execute(params![user.id, purpose, prefix, access.as_str()])?;
    tx.audit(
        "user.grant",
        serde_json::json!({ "user": user.login, "purpose": purpose, "collection": prefix, "access": access.as_str() }),
    )?;
    Ok(())
}
