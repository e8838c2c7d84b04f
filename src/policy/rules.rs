//! The rules themselves: [`evaluate_at`] answers "visible at t, and why"; [`decide`] adds the
//! next moment that answer changes.
//!
//! `valid_until` is computed exactly rather than estimated: the decision is piecewise constant
//! between a finite set of candidate moments (grant starts and expiries, withdrawal moments,
//! 16th birthdays, retention ends), so we evaluate the rules at each candidate after `now` in
//! order and return the first one where the visibility differs. Each asset has few candidates,
//! which keeps this cheap, and it makes the mount's expiry timer trivially correct.

use super::*;
use chrono::{Months, NaiveTime};

/// The moment (00:00 UTC) a person born on `born` turns 16.
pub fn sixteenth_birthday(born: NaiveDate) -> Option<Time> {
    born.checked_add_months(Months::new(16 * 12))
        .map(|d| d.and_time(NaiveTime::MIN).and_utc())
}

fn is_minor_at(person: &Person, t: Time) -> bool {
    match person.born.and_then(sixteenth_birthday) {
        Some(sixteen) => t < sixteen,
        None => false,
    }
}

/// Why a grant that is in its window at t does not count.
fn grant_defect(person: &Person, asset: &Asset, e: &ConsentEvent, t: Time) -> Option<Reason> {
    let by_guardian = e.given_by != person.id && person.guardians.contains(&e.given_by);
    // A person's own grant counts only if they were 16 when it took effect: one given as a
    // minor does not become valid on the birthday (they are asked again; see `expiring`).
    if e.given_by == person.id && is_minor_at(person, e.starts.min(t)) {
        return Some(Reason::OwnGrantOfMinor { person: person.id });
    }
    if is_minor_at(person, t) && !by_guardian {
        return Some(Reason::NotByGuardian { person: person.id });
    }
    if e.given_by != person.id && !by_guardian {
        return Some(Reason::NotByGuardian { person: person.id });
    }
    if asset.special_category && !e.explicit {
        return Some(Reason::NotExplicit { person: person.id });
    }
    None
}

/// The person's standing for this asset and purpose at t: the grant that counts when the latest
/// counting event is a valid grant, otherwise the reason there is none.
pub(super) fn person_standing(
    person: &Person,
    asset: &Asset,
    purpose: PurposeId,
    t: Time,
) -> Result<EventId, Reason> {
    let mut relevant: Vec<&ConsentEvent> = person
        .events
        .iter()
        .filter(|e| e.purposes.contains(&purpose) && e.scope.covers(asset))
        .collect();
    relevant.sort_by_key(|e| (e.starts, e.id));

    // The most telling reason among grants that did not count, latest first.
    let mut skipped: Option<Reason> = None;
    for e in relevant.iter().rev().filter(|e| e.starts <= t) {
        let who = person.id;
        match e.kind {
            EventKind::Withdraw => {
                return Err(Reason::Withdrawn {
                    person: who,
                    at: e.starts,
                })
            }
            EventKind::Refuse => {
                return Err(Reason::Refused {
                    person: who,
                    at: e.starts,
                })
            }
            EventKind::Object => {
                return Err(Reason::Objected {
                    person: who,
                    at: e.starts,
                })
            }
            EventKind::Grant => {
                // A withdrawal, refusal or objection also cancels grants recorded before it that
                // were to start later: withdrawing means "no more", including what was pending.
                let cancelled = relevant
                    .iter()
                    .any(|n| n.kind != EventKind::Grant && n.starts <= t && n.id > e.id);
                if cancelled {
                    continue;
                }
                if let Some(end) = e.expires {
                    if t >= end {
                        skipped.get_or_insert(Reason::Expired {
                            person: who,
                            at: end,
                        });
                        continue;
                    }
                }
                match grant_defect(person, asset, e, t) {
                    None => return Ok(e.id),
                    Some(defect) => {
                        skipped.get_or_insert(defect);
                    }
                }
            }
        }
    }
    if let Some(reason) = skipped {
        return Err(reason);
    }
    if let Some(future) = relevant
        .iter()
        .find(|e| e.kind == EventKind::Grant && e.starts > t)
    {
        return Err(Reason::NotYetStarted {
            person: person.id,
            from: future.starts,
        });
    }
    Err(Reason::NoConsent { person: person.id })
}

/// Whether `asset` is visible to `user` in `purpose` at `t`, and why. Rules of DESIGN.md §3.
pub fn evaluate_at(
    asset: &Asset,
    people: &dyn People,
    user: &User,
    purpose: &Purpose,
    t: Time,
) -> (bool, Reason) {
    // 1. a grant for this purpose covering the asset's collection
    if user.access(purpose.id, &asset.collection).is_none() {
        return (false, Reason::NoGrant);
    }
    // 2. active: not trashed, not past retention, not someone else's draft
    match asset.status {
        Status::Trash | Status::Purged => return (false, Reason::Trashed),
        Status::Draft
            if asset.creator != user.login
                || asset.draft_purpose.is_some_and(|p| p != purpose.id) =>
        {
            return (false, Reason::DraftOfOther)
        }
        Status::Draft | Status::Active => {}
    }
    if let Some(end) = retention_end(asset, purpose) {
        if t >= end {
            return (false, Reason::RetentionEnded { at: end });
        }
    }
    if asset.status == Status::Draft {
        // A draft is its creator's work in progress; it is never in anyone else's view and is
        // never exported, so the creator sees it without review, as long as the persons of
        // what it was made from allow it (see `derived.rs`).
        if let Err(reason) = super::derived::sources_allow(asset, people, purpose, t) {
            return (false, reason);
        }
        return (true, Reason::OwnDraft);
    }
    // 3. reviewed
    if asset.persons.is_empty() {
        return if asset.no_persons {
            (true, Reason::NoPersons)
        } else {
            (false, Reason::Unreviewed)
        };
    }
    // 4./5. every linked person
    for &pid in &asset.persons {
        let Some(person) = people.person(pid) else {
            return (false, Reason::UnknownPerson { person: pid });
        };
        let standing = person_standing(person, asset, purpose.id, t);
        if purpose.basis == Basis::Consent {
            if let Err(reason) = standing {
                return (false, reason);
            }
        } else if let Err(
            Reason::Withdrawn { person, at }
            | Reason::Refused { person, at }
            | Reason::Objected { person, at },
        ) = standing
        {
            return (false, Reason::Objected { person, at });
        }
    }
    if purpose.basis == Basis::Consent {
        (true, Reason::Consented)
    } else {
        (
            true,
            Reason::Basis {
                basis: purpose.basis,
            },
        )
    }
}

/// For each linked person, the grant that makes `asset` usable for `purpose` at `t` (the proof an
/// export records). Persons without a counting grant are left out, so a shorter list than
/// `asset.persons` means the asset is not covered by consent.
pub fn covering_grants(
    asset: &Asset,
    people: &dyn People,
    purpose: PurposeId,
    t: Time,
) -> Vec<(PersonId, EventId)> {
    asset
        .persons
        .iter()
        .filter_map(|&pid| {
            let person = people.person(pid)?;
            person_standing(person, asset, purpose, t)
                .ok()
                .map(|e| (pid, e))
        })
        .collect()
}

/// When the asset's retention ends for this purpose: its own term or the purpose's, whichever
/// comes first.
pub fn retention_end(asset: &Asset, purpose: &Purpose) -> Option<Time> {
    let by_purpose = purpose
        .retention
        .and_then(|d| asset.created_at.checked_add_signed(d));
    match (asset.retention_until, by_purpose) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Every moment after `now` at which the rules' inputs change by time alone.
pub(super) fn candidate_moments(
    asset: &Asset,
    people: &dyn People,
    purpose: &Purpose,
    now: Time,
) -> Vec<Time> {
    let mut moments = Vec::new();
    moments.extend(retention_end(asset, purpose));
    moments.extend(super::derived::source_moments(asset, people, purpose, now));
    for &pid in &asset.persons {
        let Some(person) = people.person(pid) else {
            continue;
        };
        moments.extend(person.born.and_then(sixteenth_birthday));
        for e in &person.events {
            if e.purposes.contains(&purpose.id) && e.scope.covers(asset) {
                moments.push(e.starts);
                moments.extend(e.expires);
            }
        }
    }
    moments.retain(|m| *m > now);
    moments.sort();
    moments.dedup();
    moments
}

/// The decision for `asset` as seen by `user` in `purpose` at `now` (DESIGN.md §3).
pub fn decide(
    asset: &Asset,
    people: &dyn People,
    user: &User,
    purpose: &Purpose,
    now: Time,
) -> Decision {
    let (visible, reason) = evaluate_at(asset, people, user, purpose, now);
    let valid_until = if user.access(purpose.id, &asset.collection).is_none()
        || matches!(asset.status, Status::Trash | Status::Purged)
    {
        None // no time-bound change can make these visible
    } else {
        candidate_moments(asset, people, purpose, now)
            .into_iter()
            .find(|&m| evaluate_at(asset, people, user, purpose, m).0 != visible)
    };
    Decision {
        visible,
        reason,
        valid_until,
    }
}
