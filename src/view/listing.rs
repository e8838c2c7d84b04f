//! `consentfs ls` answered from the running daemon's index instead of the catalog: the same
//! rules over the same rows, without reading a million rows out of SQLCipher (seconds) for
//! every listing. The caller makes sure the index has caught up with the catalog first.

use super::View;
use crate::catalog::assets::join_path;
use crate::policy::{self, prefix_covers, AssetId, Decision, PersonId, PurposeId, Status, Time};

/// One asset the rules show (or, for a draft, decided) for the user, as `ls` lists it.
pub struct Listed {
    pub asset: AssetId,
    pub path: String,
    pub decision: Decision,
    pub persons: Vec<PersonId>,
    pub draft: bool,
}

impl View {
    /// What `user` sees in `purpose` at `now` (below `prefix`, if given): every asset the rules
    /// make visible, with when that changes. Decides exactly what `ls` over the catalog
    /// decides; only assets the index shows someone in the purpose, and the user's own drafts,
    /// are put to the rules (an asset no one sees is not visible to this user either). On
    /// every core, in slices of the index.
    pub fn listing(
        &self,
        user: &policy::User,
        purpose: &policy::Purpose,
        prefix: Option<&str>,
        now: Time,
    ) -> Vec<Listed> {
        let Some(p) = self.pindex(purpose.id) else {
            return Vec::new();
        };
        let n = self.slots.len() as u32;
        let threads = std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .clamp(1, 8) as u32;
        let per = n.div_ceil(threads).max(1);
        let slice = |from: u32, to: u32| {
            let mut out = Vec::new();
            for i in from..to {
                if let Some(l) = self.listed(i, p, user, purpose, prefix, now) {
                    out.push(l);
                }
            }
            out
        };
        let mut all: Vec<Listed> = std::thread::scope(|scope| {
            let parts: Vec<_> = (0..threads)
                .map(|t| (t * per, ((t + 1) * per).min(n)))
                .filter(|(a, b)| a < b)
                .map(|(a, b)| scope.spawn(move || slice(a, b)))
                .collect();
            parts
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        all.sort_unstable_by(|a, b| (&a.path, a.asset).cmp(&(&b.path, b.asset)));
        all
    }

    /// Slot `i` if `ls` lists it as visible.
    fn listed(
        &self,
        i: u32,
        p: usize,
        user: &policy::User,
        purpose: &policy::Purpose,
        prefix: Option<&str>,
        now: Time,
    ) -> Option<Listed> {
        let s = &self.slots[i as usize];
        let draft = s.status == Status::Draft;
        if draft {
            // drafts are few; another user's (or one made in another purpose) is not listed
            let made_in = self.draft_of.get(&s.id).and_then(|d| d.purpose);
            if &**self.logins.get(s.creator) != user.login.as_str()
                || made_in.is_some_and(|m: PurposeId| m != purpose.id)
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
        let input = self.policy_asset(i, draft);
        let decision = policy::decide(&input, self, user, purpose, now);
        decision.visible.then(|| Listed {
            asset: s.id,
            path: join_path(collection, self.name(s)),
            decision,
            persons: input.persons,
            draft,
        })
    }
}
