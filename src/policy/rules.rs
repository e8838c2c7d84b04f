//! The rules themselves: [`evaluate_at`] answers "visible at t, and why"; [`decide`] adds the
//! next moment that answer changes.
//!
//! `valid_until` is computed exactly rather than estimated: the decision is piecewise constant
//! between a finite set of candidate moments (grant starts and expiries, withdrawal moments,
//! 16th birthdays, retention ends), so we evaluate the rules at each candidate after `now` in
//! order and return the first one where the visibility differs. Each asset has few candidates,
//! which keeps this cheap, and it makes the mount's expiry timer trivially correct.

use super::*;

fn is_minor_at(person: &Person, t: Time) -> bool {
    person.turns_16.is_some_and(|sixteen| t < sixteen)
}

/// Why a grant that is in its window at t does not count.
fn grant_defect(
    person: &Person,
    people: &dyn People,
    e: &ConsentEvent,
    t: Time,
    needs_explicit: bool,
) -> Option<Reason> {
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
    // A guardian must be of age to consent themself (the CLI refuses to record anything else;
    // this keeps a catalog from before that check, or edited by hand, from showing photos).
    if by_guardian
        && people
            .person(e.given_by)
            .is_some_and(|g| is_minor_at(g, e.starts))
    {
        return Some(Reason::GuardianMinor {
            person: person.id,
            by: e.given_by,
        });
    }
    if needs_explicit && !e.explicit {
        return Some(Reason::NotExplicit { person: person.id });
    }
    None
}

/// A person's standing for an asset and purpose at t.
struct Standing {
    /// The grant that counts at t: the latest counting event is a valid grant in its window.
    grant: Option<EventId>,
    /// The withdrawal, refusal or objection in force at t (the latest counting event), as
    /// `Withdrawn`, `Refused` or `Objected`.
    negative: Option<Reason>,
    /// Why grants later than the negative event (or all grants, without one) do not count,
    /// the latest first.
    defect: Option<Reason>,
    /// The first grant still to come, if nothing counts at t.
    upcoming: Option<Time>,
}

fn person_standing(
    person: &Person,
    people: &dyn People,
    asset: &Asset,
    purpose: PurposeId,
    needs_explicit: bool,
    t: Time,
) -> Standing {
    let concerns = move |e: &&ConsentEvent| e.purposes.contains(&purpose) && e.scope.covers(asset);
    // Catalog loads keep each person's events in time order (see `sort_events`): then the
    // events that concern this asset are walked where they are. This runs for every asset,
    // purpose and person at a mount's start (millions of times with a million photos), and a
    // list per call was a sixth of that start. Any other order is sorted here first.
    if person
        .events
        .windows(2)
        .all(|w| (w[0].starts, w[0].id) <= (w[1].starts, w[1].id))
    {
        standing_in(
            person,
            people,
            person.events.iter().filter(concerns),
            needs_explicit,
            t,
        )
    } else {
        let mut relevant: Vec<&ConsentEvent> = person.events.iter().filter(concerns).collect();
        relevant.sort_by_key(|e| (e.starts, e.id));
        standing_in(person, people, relevant.into_iter(), needs_explicit, t)
    }
}

/// Put events in the order the rules walk them (start, then id), so that
/// [`person_standing`] needs no copy of them.
pub fn sort_events(events: &mut [ConsentEvent]) {
    events.sort_by_key(|e| (e.starts, e.id));
}

/// [`person_standing`] over the events that concern the asset and purpose, oldest first.
fn standing_in<'e>(
    person: &Person,
    people: &dyn People,
    relevant: impl DoubleEndedIterator<Item = &'e ConsentEvent> + Clone,
    needs_explicit: bool,
    t: Time,
) -> Standing {
    let mut standing = Standing {
        grant: None,
        negative: None,
        defect: None,
        upcoming: None,
    };
    for e in relevant.clone().rev().filter(|e| e.starts <= t) {
        let who = person.id;
        let at = e.starts;
        let negative = match e.kind {
            EventKind::Withdraw => Some(Reason::Withdrawn { person: who, at }),
            EventKind::Refuse => Some(Reason::Refused { person: who, at }),
            EventKind::Object => Some(Reason::Objected { person: who, at }),
            EventKind::Grant => None,
        };
        if let Some(negative) = negative {
            standing.negative = Some(negative);
            return standing;
        }
        // A withdrawal, refusal or objection also cancels grants recorded before it that were
        // to start later: withdrawing means "no more", including what was pending.
        let cancelled = relevant
            .clone()
            .any(|n| n.kind != EventKind::Grant && n.starts <= t && n.id > e.id);
        if cancelled {
            continue;
        }
        if let Some(end) = e.expires {
            if t >= end {
                standing.defect.get_or_insert(Reason::Expired {
                    person: who,
                    at: end,
                });
                continue;
            }
        }
        match grant_defect(person, people, e, t, needs_explicit) {
            None => {
                standing.grant = Some(e.id);
                return standing;
            }
            Some(defect) => {
                standing.defect.get_or_insert(defect);
            }
        }
    }
    standing.upcoming = relevant
        .clone()
        .find(|e| e.kind == EventKind::Grant && e.starts > t)
        .map(|e| e.starts);
    standing
}

/// A person's consent for a purpose as a whole (the events that cover every photo of theirs),
/// as the consent page shows it to whoever decides for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PurposeState {
    /// A grant counts now, until `until` (`None`: until withdrawn).
    Valid {
        until: Option<Time>,
    },
    /// The last grant ran out at `at`.
    Expired {
        at: Time,
    },
    Withdrawn {
        at: Time,
    },
    Refused {
        at: Time,
    },
    Objected {
        at: Time,
    },
    /// A grant was recorded but does not count (given by the child themself, by a guardian
    /// under 16, or by someone who is not a registered guardian).
    NotCounting,
    /// A grant starts at `from`.
    Upcoming {
        from: Time,
    },
    NeverAsked,
}

/// [`PurposeState`] of `person` for `purpose` at `t`: the same walk over their events as the
/// rules make for a photo, over the events that cover all their photos.
pub fn purpose_state(
    person: &Person,
    people: &dyn People,
    purpose: PurposeId,
    t: Time,
) -> PurposeState {
    let mut relevant: Vec<&ConsentEvent> = person
        .events
        .iter()
        .filter(|e| e.purposes.contains(&purpose) && e.scope == Scope::All)
        .collect();
    relevant.sort_by_key(|e| (e.starts, e.id));
    let standing = standing_in(person, people, relevant.iter().copied(), false, t);
    if let Some(id) = standing.grant {
        let until = relevant.iter().find(|e| e.id == id).and_then(|e| e.expires);
        return PurposeState::Valid { until };
    }
    // a defect is of a grant later than any withdrawal, refusal or objection: it comes first
    match (standing.defect, standing.negative) {
        (Some(Reason::Expired { at, .. }), _) => PurposeState::Expired { at },
        (Some(_), _) => PurposeState::NotCounting,
        (_, Some(Reason::Withdrawn { at, .. })) => PurposeState::Withdrawn { at },
        (_, Some(Reason::Refused { at, .. })) => PurposeState::Refused { at },
        (_, Some(Reason::Objected { at, .. })) => PurposeState::Objected { at },
        _ => match standing.upcoming {
            Some(from) => PurposeState::Upcoming { from },
            None => PurposeState::NeverAsked,
        },
    }
}

impl Standing {
    /// Why no grant counts: the latest thing the person did that matters.
    fn reason(self, person: PersonId, no_grant: Reason) -> Reason {
        if let Some(defect) = self.defect {
            return defect;
        }
        if let Some(negative) = self.negative {
            return negative;
        }
        match self.upcoming {
            Some(from) => Reason::NotYetStarted { person, from },
            None => no_grant,
        }
    }
}

/// Rules 4 and 5 for one person linked to `asset`: `Ok` when they allow its use in `purpose` at
/// `t`, otherwise why not. A special-category photo needs explicit consent in every purpose
/// unless the purpose records an Art. 9(2) exception (GDPR Art. 9 applies whatever the Art. 6
/// basis).
pub(super) fn person_allows(
    person: &Person,
    people: &dyn People,
    asset: &Asset,
    purpose: &Purpose,
    t: Time,
) -> Result<(), Reason> {
    let pid = person.id;
    let needs_explicit = asset.special_category && !purpose.art9_exception;
    let needs_consent = purpose.basis == Basis::Consent || needs_explicit;
    let standing = person_standing(person, people, asset, purpose.id, needs_explicit, t);
    if standing.grant.is_some() {
        return Ok(());
    }
    if needs_consent {
        let no_grant = if purpose.basis == Basis::Consent {
            Reason::NoConsent { person: pid }
        } else {
            Reason::NoExplicitConsent { person: pid }
        };
        return Err(standing.reason(pid, no_grant));
    }
    if let Some(
        Reason::Withdrawn { person, at }
        | Reason::Refused { person, at }
        | Reason::Objected { person, at },
    ) = standing.negative
    {
        return Err(Reason::Objected { person, at });
    }
    Ok(())
}

/// Whether `asset` is visible to `user` in `purpose` at `t`, and why. Rules of DESIGN.md §3.
pub fn evaluate_at(
    asset: &Asset,
    people: &dyn People,
    user: &User,
    purpose: &Purpose,
    t: Time,
) -> (bool, Reason) {
    evaluate_with(asset, people, user, purpose, t, &mut |person| {
        person_allows(person, people, asset, purpose, t)
    })
}

/// [`evaluate_at`] with rules 4 and 5 for each linked person answered by `allows` (which is
/// [`person_allows`] at `t`, or what a caller remembers of it).
fn evaluate_with(
    asset: &Asset,
    people: &dyn People,
    user: &User,
    purpose: &Purpose,
    t: Time,
    allows: &mut dyn FnMut(&Person) -> Result<(), Reason>,
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
    // 3. reviewed: persons linked or "no persons" marked, and no detected face left over
    if asset.persons.is_empty() && !asset.no_persons {
        return (false, Reason::Unreviewed);
    }
    let linked = u16::try_from(asset.persons.len()).unwrap_or(u16::MAX);
    if asset.faces > linked.max(asset.faces_reviewed) {
        return (
            false,
            Reason::UnlinkedFaces {
                faces: asset.faces,
                linked: linked.max(asset.faces_reviewed),
            },
        );
    }
    if asset.persons.is_empty() {
        return (true, Reason::NoPersons);
    }
    // 4./5. every linked person
    for &pid in &asset.persons {
        let Some(person) = people.person(pid) else {
            return (false, Reason::UnknownPerson { person: pid });
        };
        if let Err(reason) = allows(person) {
            return (false, reason);
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
            // Without the purpose at hand, a special-category photo's proof lists explicit
            // grants only (conservative: an Art. 9(2) exception never needs a grant listed).
            person_standing(person, people, asset, purpose, asset.special_category, t)
                .grant
                .map(|e| (pid, e))
        })
        .collect()
}

/// When the asset's retention ends for this purpose: its own term or the purpose's, whichever
/// comes first.
pub fn retention_end(asset: &Asset, purpose: &Purpose) -> Option<Time> {
    let by_purpose = purpose
        .retention
        .as_ref()
        .and_then(|term| term.end(asset.created_at));
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
        moments.extend(person.turns_16);
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

/// The first of the person's own moments after `now` (their events' starts and ends for the
/// purpose, as far as they cover the asset, and their 16th birthday) at which they no longer
/// allow the asset: [`person_allows`] changes only at these moments.
fn person_allows_until(
    person: &Person,
    people: &dyn People,
    asset: &Asset,
    purpose: &Purpose,
    now: Time,
) -> Option<Time> {
    let mut moments: Vec<Time> = person.turns_16.into_iter().collect();
    for e in &person.events {
        if e.purposes.contains(&purpose.id) && e.scope.covers(asset) {
            moments.push(e.starts);
            moments.extend(e.expires);
        }
    }
    moments.retain(|m| *m > now);
    moments.sort_unstable();
    moments.dedup();
    moments
        .into_iter()
        .find(|&m| person_allows(person, people, asset, purpose, m).is_err())
}

/// A person's standing for a photo at the moment, and when it ends.
type StandingUntil = (Result<(), Reason>, Option<Time>);

/// What [`decide_remembering`] remembers between assets: per person (and whether the photo is
/// special-category), when they stop allowing photos in the purpose. Valid for one purpose,
/// one moment and one state of the persons: it forgets by itself when the purpose or the moment
/// differs; [`UntilMemo::clear`] it when the persons change.
#[derive(Default)]
pub struct UntilMemo {
    at: Option<(PurposeId, Time)>,
    /// Whether they allow it at the moment, and until when; `None` for a person with a
    /// scoped event for the purpose (searched per asset).
    until: foldhash::HashMap<(PersonId, bool), Option<StandingUntil>>,
}

impl UntilMemo {
    pub fn clear(&mut self) {
        self.at = None;
        self.until.clear();
    }
}

/// [`decide`] for many assets with the same persons on them (a listing of a purpose). For a
/// visible photo that is not a draft, visibility is a conjunction of conditions that each
/// hold now (the user's grant, review and flags, which time does not change; the retention
/// term; each linked person allowing it), so it ends at the first moment one of them fails:
/// the retention end, or the first moment a person stops allowing it. That moment is found per
/// person and remembered for the next photo of the same person, when every event of theirs
/// for the purpose covers every photo alike (scoped consents are searched per photo).
/// Everything else is [`decide`]. Gives exactly what [`decide`] gives (property-tested).
pub fn decide_remembering(
    asset: &Asset,
    people: &dyn People,
    user: &User,
    purpose: &Purpose,
    now: Time,
    memo: &mut UntilMemo,
) -> Decision {
    if asset.status != Status::Active || !asset.derived_from.is_empty() {
        return decide(asset, people, user, purpose, now);
    }
    if memo.at != Some((purpose.id, now)) {
        memo.clear();
        memo.at = Some((purpose.id, now));
    }
    // the person's standing for this asset, and until when it lasts, from the memo when
    // every event of theirs for the purpose covers every asset alike
    let mut standing = |person: &Person| {
        let answer = || {
            let now_ok = person_allows(person, people, asset, purpose, now);
            let until = if now_ok.is_ok() {
                person_allows_until(person, people, asset, purpose, now)
            } else {
                None
            };
            (now_ok, until)
        };
        let remembered = memo
            .until
            .entry((person.id, asset.special_category))
            .or_insert_with(|| {
                let alike = person
                    .events
                    .iter()
                    .all(|e| !e.purposes.contains(&purpose.id) || e.scope == Scope::All);
                alike.then(answer)
            });
        match remembered {
            Some(known) => known.clone(),
            None => answer(),
        }
    };
    let mut until = retention_end(asset, purpose).filter(|e| *e > now);
    let (visible, reason) = evaluate_with(asset, people, user, purpose, now, &mut |person| {
        let (ok, ends) = standing(person);
        if let Some(b) = ends {
            until = Some(until.map_or(b, |a| a.min(b)));
        }
        ok
    });
    if !visible {
        // when it becomes visible is searched the long way (a listing shows few of these)
        return decide(asset, people, user, purpose, now);
    }
    Decision {
        visible,
        reason,
        valid_until: until,
    }
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
