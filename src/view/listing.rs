//! `consentfs ls` answered from the running daemon's index instead of the catalog: the same
//! rules over the same rows, without reading a million rows out of SQLCipher (seconds) for
//! every listing. The caller makes sure the index has caught up with the catalog first.

use super::View;
use crate::catalog::assets::join_path;
use crate::policy::{self, prefix_covers, AssetId, Decision, PersonId, Status, Time};
use std::sync::RwLock;

/// One asset the rules show the user, as `ls` lists it.
pub struct Listed {
    pub asset: AssetId,
    pub path: String,
    pub decision: Decision,
    pub persons: Vec<PersonId>,
    pub draft: bool,
}

/// Slots decided under one hold of the index's read lock: the watcher, which needs the write
/// lock to apply a withdrawal, waits for at most one slice (a few milliseconds), not for the
/// whole listing.
const SLICE: usize = 2048;

/// What `user` sees in `purpose` at `now` (below `prefix`, if given): every asset the rules
/// make visible, with when that changes, sorted by path. Decides exactly what `ls` over the
/// catalog decides; only assets the index shows someone in the purpose, and the user's own
/// drafts, are put to the rules (an asset no one sees is not visible to this user either).
///
/// None when the index is unusable (a thread panicked holding it).
///
/// On every core, each thread a range of asset ids, slice by slice under the read lock. Each
/// asset is decided once, against the index as it is when its slice is decided: a change
/// applied between slices is in the rest of the listing.
pub fn listing(
    view: &RwLock<View>,
    user: &policy::User,
    purpose: &policy::Purpose,
    prefix: Option<&str>,
    now: Time,
) -> Option<Vec<Listed>> {
    let (first, last) = {
        let v = view.read().ok()?;
        match (v.slots.first(), v.slots.last()) {
            (Some(a), Some(b)) => (a.id, b.id),
            _ => return Some(Vec::new()),
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .clamp(1, 8) as i64;
    let span = last.saturating_sub(first).saturating_add(1);
    let per = (span / threads).saturating_add(1);
    let range = |from: AssetId, to: AssetId| {
        let mut out = Vec::new();
        let mut memo = policy::UntilMemo::default();
        let mut seen_seq = None;
        let mut input: Option<policy::Asset> = None;
        let mut next = from;
        while next <= to {
            // a thread that panicked holding the index leaves it unusable: no answer
            let v = view.read().ok()?;
            // the persons may have changed since the last slice: what was remembered of
            // them is forgotten
            if seen_seq != Some(v.last_seq) {
                memo.clear();
                seen_seq = Some(v.last_seq);
            }
            let Some(p) = v.pindex(purpose.id) else {
                break; // a purpose the index does not have: nothing in it
            };
            let start = v.slots.partition_point(|s| s.id < next);
            let end = (start + SLICE).min(v.slots.len());
            for i in start..end {
                let id = v.slots[i].id;
                if id > to {
                    break;
                }
                if let Some(l) = v.listed(
                    i as u32, p, user, purpose, prefix, now, &mut input, &mut memo,
                ) {
                    out.push(l);
                }
            }
            match v.slots.get(end) {
                Some(s) if end > start => next = s.id,
                _ => break,
            }
        }
        Some(out)
    };
    let mut all: Vec<Listed> = std::thread::scope(|scope| {
        let parts: Vec<_> = (0..threads)
            .map(|t| {
                let from = first.saturating_add(t.saturating_mul(per));
                (from, from.saturating_add(per - 1).min(last))
            })
            .filter(|(a, b)| a <= b)
            .map(|(a, b)| scope.spawn(move || range(a, b)))
            .collect();
        let mut all = Vec::new();
        for h in parts {
            all.extend(h.join().ok().flatten()?);
        }
        Some(all)
    })?;
    all.sort_unstable_by(|a, b| (&a.path, a.asset).cmp(&(&b.path, b.asset)));
    Some(all)
}

impl View {
    /// Slot `i` if `ls` lists it as visible. `input` is a scratch buffer (no allocation per
    /// asset that is not listed).
    #[allow(clippy::too_many_arguments)]
    fn listed(
        &self,
        i: u32,
        p: usize,
        user: &policy::User,
        purpose: &policy::Purpose,
        prefix: Option<&str>,
        now: Time,
        input: &mut Option<policy::Asset>,
        memo: &mut policy::UntilMemo,
    ) -> Option<Listed> {
        let s = &self.slots[i as usize];
        let draft = s.status == Status::Draft;
        if draft {
            // drafts are few; another user's (or one made in another purpose) is not listed
            let made_in = self.draft_of.get(&s.id).and_then(|d| d.purpose);
            if **self.logins.get(s.creator) != *user.login
                || made_in.is_some_and(|m| m != purpose.id)
            {
                return None;
            }
        } else if !self.visible[p].get(i) {
            return None;
        }
        let collection = &self.folders.get(s.folder).path;
        if prefix.is_some_and(|pre| !prefix_covers(pre, collection)) {
            return None;
        }
        if !draft && user.access(purpose.id, collection).is_none() {
            return None;
        }
        let input = match input {
            Some(a) if !draft => {
                self.fill_policy_asset(i, a);
                a
            }
            _ => input.insert(self.policy_asset(i, draft)),
        };
        let decision = policy::decide_remembering(input, self, user, purpose, now, memo);
        decision.visible.then(|| Listed {
            asset: s.id,
            path: join_path(collection, self.name(s)),
            decision,
            persons: input.persons.clone(),
            draft,
        })
    }
}
