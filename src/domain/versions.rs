//! Versions of an asset and the version policy: what is kept of each asset's history and why,
//! and the privacy officer's setting of it (applied by `crate::thinning`).

use super::Session;
use crate::catalog::{assets, versions};
use crate::error::Result;
use crate::policy::thinning::{self, Policy, Tier};
use crate::policy::Time;
use rusqlite::Connection;
use serde::Serialize;

/// Above this many versions holding content, the history does not work out when each kept
/// one would go (it evaluates the policy once per version and tier edge).
const UNTIL_LIMIT: usize = 400;

/// One version as `versions ASSET` shows it: the stored fields, then what the policy does.
#[derive(Serialize, Debug)]
pub struct Shown {
    #[serde(flatten)]
    pub row: assets::VersionRow,
    /// `kept`, `thin` (the next run thins it), `thinned` (by the policy, at `thinned_at`) or
    /// `shredded` (its content was destroyed with another asset it shared it with).
    pub state: &'static str,
    /// Why it is kept: current, original, exported, recent, daily, monthly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_because: Option<&'static str>,
    /// When a later run would first thin it if nothing is saved meanwhile (absent: never, or
    /// not worked out for very long histories).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_until: Option<Time>,
}

/// An asset's versions, oldest first, and why the policy is left out if it is.
#[derive(Debug)]
pub struct History {
    pub versions: Vec<Shown>,
    pub policy_unreadable: Option<String>,
}

/// An asset's versions with what the version policy does with each (the policy is left out
/// when it cannot be read: then `policy_unreadable` says why, and thinning refuses to run
/// until it is set again).
pub fn history(conn: &Connection, asset: &str, now: Time) -> Result<History> {
    let a = assets::resolve(conn, asset)?;
    let list = assets::versions(conn, a.id)?;
    // the versions are shown also when the stored policy cannot be read (thinning then
    // refuses to run until it is set again)
    let mut policy_unreadable = None;
    let policy = match versions::policy(conn) {
        Ok((p, _)) => Some(p),
        Err(e) => {
            policy_unreadable = Some(e.to_string());
            None
        }
    };
    let zone = crate::catalog::zone::get(conn)?;
    let input = versions::policy_input(conn, a.id)?;
    let policy = policy.filter(|_| a.status != crate::policy::Status::Purged);
    let decisions: std::collections::HashMap<i64, Option<thinning::Keep>> = match &policy {
        Some(p) => thinning::decide(&input, p, now, &zone)
            .into_iter()
            .collect(),
        None => Default::default(),
    };
    let until = match &policy {
        Some(p) if input.len() <= UNTIL_LIMIT => thinning::kept_until(&input, p, now, &zone),
        _ => Default::default(),
    };
    let shown: Vec<Shown> = list
        .into_iter()
        .map(|row| {
            let (state, why) = if row.thinned_at.is_some() {
                ("thinned", None)
            } else if row.wrapped_key.is_none() {
                ("shredded", None)
            } else {
                match decisions.get(&row.version) {
                    Some(Some(k)) => ("kept", Some(k.as_str())),
                    Some(None) => ("thin", None),
                    None => ("kept", None),
                }
            };
            Shown {
                kept_until: until.get(&row.version).copied().flatten(),
                state,
                kept_because: why,
                row,
            }
        })
        .collect();
    Ok(History {
        versions: shown,
        policy_unreadable,
    })
}

/// A change of the version policy: `None` leaves a setting as it is.
#[derive(Default, Debug)]
pub struct Change {
    pub keep_all: Option<Tier>,
    pub daily: Option<Tier>,
    pub monthly: Option<Tier>,
    pub keep_original: Option<bool>,
}

/// Set the version policy: back to the default (`reset`), or the stored one (the default if
/// it cannot be read) with `change` on top. Audited like every change.
pub fn set_policy(s: &mut Session, change: Change, reset: bool) -> Result<()> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    if reset {
        versions::set_policy(&tx, None)?;
    } else {
        let (mut p, _): (Policy, bool) = versions::policy(&tx).unwrap_or_default();
        if let Some(t) = change.keep_all {
            p.keep_all = t;
        }
        if let Some(t) = change.daily {
            p.daily = t;
        }
        if let Some(t) = change.monthly {
            p.monthly = t;
        }
        if let Some(k) = change.keep_original {
            p.keep_original = k;
        }
        versions::set_policy(&tx, Some(&p))?;
    }
    tx.commit()?;
    Ok(())
}
