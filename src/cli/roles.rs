//! `consentfs role grant|revoke|list`: the front end of `catalog::roles`.

use super::{output, Ctx, RoleCmd};
use crate::catalog::{roles, users};
use crate::error::{Error, Result};
use crate::roles::Role;

fn role_of(name: &str) -> Result<Role> {
    Role::parse(name).ok_or_else(|| {
        let all: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        Error::invalid(format!(
            "unknown role '{name}'; the roles are {}",
            all.join(", ")
        ))
    })
}

pub fn run(ctx: &mut Ctx, cmd: RoleCmd) -> Result<i32> {
    match cmd {
        RoleCmd::Grant { login, role } => {
            let role = role_of(&role)?;
            let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
            let user = users::resolve(&tx, &login)?;
            let new = roles::grant(&tx, &user, role)?;
            tx.commit()?;
            println!(
                "{login} {} {role}",
                if new { "is now" } else { "already was" }
            );
            Ok(0)
        }
        RoleCmd::Revoke { login, role } => {
            let role = role_of(&role)?;
            let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
            let user = users::resolve(&tx, &login)?;
            let had = roles::revoke(&tx, &user, role)?;
            tx.commit()?;
            println!(
                "{login} {} {role}",
                if had { "is no longer" } else { "was not" }
            );
            Ok(0)
        }
        RoleCmd::List => {
            let list = roles::list(ctx.catalog.conn())?;
            if ctx.json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|r| vec![r.login.clone(), r.role.to_string(), r.granted_at.clone()])
                    .collect();
                output::table(&["LOGIN", "ROLE", "SINCE"], &rows)?;
            }
            Ok(0)
        }
    }
}
