//! The access log: the first open of an asset per user, purpose and day is written to the
//! hash-chained audit log (`access.open`), so the privacy officer can say who used a person's
//! photos (`consentfs audit report --person`), e.g. for a breach report.
//!
//! The entry is committed *before* the open succeeds: a file is never served without its
//! record. If the catalog cannot take it, the open fails (EIO) rather than go unrecorded.
//! Later opens the same day are not logged again, which keeps `ls`-and-open heavy tools fast;
//! the set of what was logged today is loaded from the audit log at mount time, so a restart
//! does not log everything twice.

use super::{Caller, Vfs};
use crate::error::Result;
use crate::policy::{AssetId, PurposeId};
use chrono::NaiveDate;
use std::collections::HashSet;
use std::sync::Arc;

/// What was logged today: (user tree, purpose, asset).
pub(super) struct OpenedToday {
    day: NaiveDate,
    seen: HashSet<(Arc<str>, PurposeId, AssetId)>,
}

impl OpenedToday {
    pub(super) fn load(conn: &rusqlite::Connection) -> OpenedToday {
        let now = chrono::Utc::now();
        let day = now.date_naive();
        let midnight = day.and_time(chrono::NaiveTime::MIN).and_utc();
        let seen = match crate::audit::opens_since(conn, midnight) {
            Ok(list) => list
                .into_iter()
                .map(|(login, purpose, asset)| (Arc::from(login.as_str()), purpose, asset))
                .collect(),
            Err(e) => {
                log::warn!("cannot read today's access entries: {e}");
                HashSet::new()
            }
        };
        OpenedToday { day, seen }
    }
}

/// The OS login of a caller, as the audit log's actor.
fn login_of(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid{uid}"))
}

impl Vfs {
    /// Record the first open today of `asset` in `login`'s `purpose` tree.
    pub(super) fn record_open(
        &self,
        caller: Caller,
        login: &Arc<str>,
        purpose: PurposeId,
        asset: AssetId,
        version: Option<i64>,
    ) -> Result<()> {
        let key = (login.clone(), purpose, asset);
        let today = chrono::Utc::now().date_naive();
        {
            let mut o = self.opened.lock().unwrap_or_else(|p| p.into_inner());
            if o.day != today {
                o.day = today;
                o.seen.clear();
            }
            if o.seen.contains(&key) {
                return Ok(());
            }
        }
        let actor = login_of(caller.uid);
        {
            let mut cat = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
            let tx = cat.begin(&actor, chrono::Utc::now())?;
            tx.audit(
                "access.open",
                serde_json::json!({
                    "asset": asset,
                    "version": version,
                    "purpose": purpose,
                    "user": &**login,
                    "uid": caller.uid,
                }),
            )?;
            tx.commit()?;
        }
        self.opened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .seen
            .insert(key);
        Ok(())
    }
}
