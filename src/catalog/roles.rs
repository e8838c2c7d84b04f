//! Who holds which role (`crate::roles` says what a role may do). Every grant and revocation
//! is in the audit log with the login of whoever made it.

use super::users::UserRow;
use super::Tx;
use crate::error::Result;
use crate::roles::Role;
use crate::when;
use rusqlite::{params, Connection};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct RoleRow {
    pub login: String,
    pub role: Role,
    pub granted_at: String,
}

/// Give `user` the role; false when they had it already (nothing changes then).
pub fn grant(tx: &Tx, user: &UserRow, role: Role) -> Result<bool> {
    let n = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO roles (user_id, role, granted_at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![user.id, role.as_str(), when::to_secs(tx.now())])?;
    if n > 0 {
        tx.audit(
            "role.grant",
            serde_json::json!({ "user": user.login, "role": role.as_str() }),
        )?;
    }
    Ok(n > 0)
}

/// Take the role from `user`; false when they did not have it.
pub fn revoke(tx: &Tx, user: &UserRow, role: Role) -> Result<bool> {
    let n = tx
        .prepare_cached("DELETE FROM roles WHERE user_id = ?1 AND role = ?2")?
        .execute(params![user.id, role.as_str()])?;
    if n > 0 {
        tx.audit(
            "role.revoke",
            serde_json::json!({ "user": user.login, "role": role.as_str() }),
        )?;
    }
    Ok(n > 0)
}

/// Every role held, by login.
pub fn list(conn: &Connection) -> Result<Vec<RoleRow>> {
    let mut st = conn.prepare(
        "SELECT u.login, r.role, r.granted_at FROM roles r JOIN users u ON u.id = r.user_id
         ORDER BY u.login, r.role",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (login, role, at) = row?;
        // the table's CHECK admits only known roles
        if let Some(role) = Role::parse(&role) {
            out.push(RoleRow {
                login,
                role,
                granted_at: when::show(when::from_secs(at)),
            });
        }
    }
    Ok(out)
}

/// The roles of one user (none for a login that is not a user).
pub fn of(conn: &Connection, login: &str) -> Result<Vec<Role>> {
    let mut st = conn.prepare_cached(
        "SELECT r.role FROM roles r JOIN users u ON u.id = r.user_id WHERE u.login = ?1",
    )?;
    let rows = st.query_map([login], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for r in rows {
        if let Some(role) = Role::parse(&r?) {
            out.push(role);
        }
    }
    out.sort();
    Ok(out)
}
