//! What is in the store, asset by asset, for someone who has set up no user yet (`consentfs
//! assets`): where it is, who is on it, whether it is reviewed, and in which purposes it
//! may be shown now. "May be shown" is the rules' answer for a user with a read grant on
//! everything in that purpose: whether anyone actually sees it depends on the grants.

use crate::catalog::{bulk, persons, purposes, snapshot};
use crate::error::Result;
use crate::policy::{self, Access, Status, Time};
use rusqlite::Connection;
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub asset: i64,
    pub path: String,
    /// `active` or `draft` (the trash is `trash list`'s).
    pub status: &'static str,
    /// For a draft: who made it (it is shown to no one else).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
    pub persons: Vec<String>,
    /// Persons linked, or marked as showing no one: the rules may show it.
    pub reviewed: bool,
    pub no_persons: bool,
    /// The purposes in which the rules allow it now.
    pub visible_in: Vec<String>,
    /// For a sidecar: the photo it belongs to (its persons are that photo's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sidecar_of: Option<i64>,
}

/// Every active asset and draft, in path order.
pub fn list(conn: &Connection, now: Time) -> Result<Vec<Item>> {
    let people = snapshot::Persons::load(conn)?;
    let names: HashMap<i64, String> = persons::list(conn)?
        .into_iter()
        .map(|p| (p.id, p.label()))
        .collect();
    let purposes: Vec<(String, policy::Purpose, policy::User)> = purposes::list(conn)?
        .into_iter()
        .map(|p| {
            let anyone = policy::User {
                login: String::new(),
                grants: vec![policy::Grant {
                    purpose: p.id,
                    prefix: String::new(),
                    access: Access::Read,
                }],
            };
            (p.name.clone(), p.to_policy(), anyone)
        })
        .collect();
    let mut out = Vec::new();
    bulk::each_asset_row(conn, |a| {
        if matches!(a.status, Status::Trash | Status::Purged) {
            return Ok(());
        }
        let draft = a.status == Status::Draft;
        let mut visible_in = Vec::new();
        if !draft {
            let input = a.to_policy();
            for (name, rules, anyone) in &purposes {
                if policy::decide(&input, &people, anyone, rules, now).visible {
                    visible_in.push(name.clone());
                }
            }
        }
        out.push(Item {
            asset: a.id,
            path: a.path(),
            status: if draft { "draft" } else { "active" },
            creator: draft.then(|| a.creator.clone()),
            persons: a
                .persons
                .iter()
                .map(|p| names.get(p).cloned().unwrap_or_else(|| format!("#{p}")))
                .collect(),
            reviewed: a.no_persons || !a.persons.is_empty(),
            no_persons: a.no_persons,
            visible_in,
            sidecar_of: a.companion_of,
        });
        Ok(())
    })?;
    out.sort_by(|a, b| a.path.cmp(&b.path).then(a.asset.cmp(&b.asset)));
    Ok(out)
}
