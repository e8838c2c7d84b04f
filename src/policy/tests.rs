//! Tests for the consent rules (DESIGN.md §3): a table of named cases, focused tests for
//! `valid_until`, and property tests over small random worlds.

use super::*;
use crate::when::{Span, Term, Zone};
use chrono::{Duration, NaiveDate};

// ---------------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------------

/// A consent-based purpose ("website").
const P: PurposeId = 1;
/// Another consent-based purpose ("newsletter").
const Q: PurposeId = 2;
/// A purpose resting on legitimate interest ("archive").
const LI: PurposeId = 3;

const ANNA: PersonId = 10; // adult, birth date unknown
const BEN: PersonId = 11; // born 2012-06-15: under 16 until 2028-06-15
const GUARD: PersonId = 12; // Ben's registered guardian
const CARL: PersonId = 13; // adult
const STRANGER: PersonId = 14; // nobody's guardian

/// 00:00 UTC on the given day.
fn d(y: i32, m: u32, day: u32) -> Time {
    NaiveDate::from_ymd_opt(y, m, day)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
}

/// Ben turns 16 at 00:00 on 2028-06-15 (these tables run in a UTC store; the time zone's part
/// is tested in `when` and through the CLI in tests/rules.rs).
fn ben_turns_16() -> Time {
    d(2028, 6, 15)
}

/// A purpose retention term on the UTC calendar.
fn term(s: &str) -> Term {
    Term {
        span: Span::parse(s).unwrap(),
        zone: Zone::utc(),
    }
}

fn ev(id: EventId, kind: EventKind, by: PersonId, starts: Time) -> ConsentEvent {
    ConsentEvent {
        id,
        kind,
        purposes: smallvec::smallvec![P],
        scope: Scope::All,
        starts,
        expires: None,
        given_by: by,
        explicit: false,
    }
}
fn grant(id: EventId, by: PersonId, starts: Time) -> ConsentEvent {
    ev(id, EventKind::Grant, by, starts)
}
fn withdraw(id: EventId, by: PersonId, at: Time) -> ConsentEvent {
    ev(id, EventKind::Withdraw, by, at)
}
fn refuse(id: EventId, by: PersonId, at: Time) -> ConsentEvent {
    ev(id, EventKind::Refuse, by, at)
}
fn object(id: EventId, by: PersonId, at: Time) -> ConsentEvent {
    ev(id, EventKind::Object, by, at)
}

impl ConsentEvent {
    fn until(mut self, end: Time) -> Self {
        self.expires = Some(end);
        self
    }
    fn for_purposes(mut self, purposes: &[PurposeId]) -> Self {
        self.purposes = purposes.into();
        self
    }
    fn scoped(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }
    fn explicitly(mut self) -> Self {
        self.explicit = true;
        self
    }
}

fn adult(id: PersonId, events: Vec<ConsentEvent>) -> Person {
    Person {
        id,
        turns_16: None,
        guardians: vec![],
        events,
    }
}
/// Ben, born 2012-06-15, with GUARD as registered guardian.
fn minor(events: Vec<ConsentEvent>) -> Person {
    Person {
        id: BEN,
        turns_16: Some(ben_turns_16()),
        guardians: vec![GUARD],
        events,
    }
}

/// Asset 1 in `events/2026`, active, imported by alice on 2026-01-01, linked to `persons`.
fn asset(persons: &[PersonId]) -> Asset {
    Asset {
        id: 1,
        collection: "events/2026".into(),
        status: Status::Active,
        creator: "alice".into(),
        created_at: d(2026, 1, 1),
        no_persons: false,
        special_category: false,
        persons: persons.to_vec(),
        faces: 0,
        faces_reviewed: 0,
        retention_until: None,
        draft_purpose: None,
        derived_from: Vec::new(),
        sidecar_of: None,
    }
}

fn user(login: &str, grants: &[(PurposeId, &str)]) -> User {
    User {
        login: login.into(),
        grants: grants
            .iter()
            .map(|&(purpose, prefix)| Grant {
                purpose,
                prefix: prefix.into(),
                access: Access::Read,
            })
            .collect(),
    }
}

fn purpose(id: PurposeId, basis: Basis) -> Purpose {
    Purpose {
        id,
        name: format!("purpose-{id}"),
        basis,
        retention: None,
        art9_exception: false,
    }
}

/// Everything one decision depends on.
#[derive(Debug, Clone)]
struct World {
    asset: Asset,
    people: HashMap<PersonId, Person>,
    user: User,
    purpose: Purpose,
}

impl World {
    fn eval(&self, t: Time) -> (bool, Reason) {
        evaluate_at(&self.asset, &self.people, &self.user, &self.purpose, t)
    }
    fn decide(&self, now: Time) -> Decision {
        decide(&self.asset, &self.people, &self.user, &self.purpose, now)
    }
}

/// The usual world: `persons` in the catalog, asset 1 linked to `linked`, viewer bob with read
/// grants for P, Q and LI on `events`, evaluated for the consent purpose P.
fn world(persons: Vec<Person>, linked: &[PersonId]) -> World {
    World {
        asset: asset(linked),
        people: persons.into_iter().map(|p| (p.id, p)).collect(),
        user: user("bob", &[(P, "events"), (Q, "events"), (LI, "events")]),
        purpose: purpose(P, Basis::Consent),
    }
}

/// Anna alone on the photo, with the given history.
fn anna(events: Vec<ConsentEvent>) -> World {
    world(vec![adult(ANNA, events)], &[ANNA])
}

/// Ben alone on the photo, with the given history.
fn ben(events: Vec<ConsentEvent>) -> World {
    world(vec![minor(events)], &[BEN])
}

/// Moves the asset to `collection`; the viewer gets a root grant so only the consent scope matters.
fn in_collection(mut w: World, collection: &str) -> World {
    w.asset.collection = collection.into();
    w.user = user("bob", &[(P, "")]);
    w
}

fn legit(mut w: World) -> World {
    w.purpose = purpose(LI, Basis::LegitimateInterest);
    w
}

/// The photo reveals a special category (health, religion ...).
fn special(mut w: World) -> World {
    w.asset.special_category = true;
    w
}

/// The purpose records an Art. 9(2) exception.
fn exception(mut w: World) -> World {
    w.purpose.art9_exception = true;
    w
}

/// Ben with a guardian GUARD who turns 16 at `guardian_16`.
fn ben_with_young_guardian(guardian_16: Time, events: Vec<ConsentEvent>) -> World {
    let mut guard = adult(GUARD, vec![]);
    guard.turns_16 = Some(guardian_16);
    world(vec![minor(events), guard], &[BEN])
}

// ---------------------------------------------------------------------------------------------
// The table: one or more cases per rule of DESIGN.md §3
// ---------------------------------------------------------------------------------------------

type Case = (&'static str, fn() -> World, Time, bool, &'static str);

#[rustfmt::skip] // one line per case reads like a table
fn cases() -> Vec<Case> {
    vec![
        // --- rule 4: consent in effect at t --------------------------------------------------
        ("adult with an open-ended grant", || anna(vec![grant(1, ANNA, d(2026, 1, 1))]), d(2026, 3, 1), true, "consented"),
        ("no consent event at all", || anna(vec![]), d(2026, 3, 1), false, "no_consent"),
        ("grant for another purpose only", || anna(vec![grant(1, ANNA, d(2026, 1, 1)).for_purposes(&[Q])]), d(2026, 3, 1), false, "no_consent"),
        ("grant for several purposes incl. this one", || anna(vec![grant(1, ANNA, d(2026, 1, 1)).for_purposes(&[Q, P])]), d(2026, 3, 1), true, "consented"),
        ("grant in its last second", || anna(vec![grant(1, ANNA, d(2026, 1, 1)).until(d(2026, 2, 1))]), d(2026, 2, 1) - Duration::seconds(1), true, "consented"),
        ("grant at its expiry instant (exclusive)", || anna(vec![grant(1, ANNA, d(2026, 1, 1)).until(d(2026, 2, 1))]), d(2026, 2, 1), false, "expired"),
        ("grant long expired", || anna(vec![grant(1, ANNA, d(2026, 1, 1)).until(d(2026, 2, 1))]), d(2027, 1, 1), false, "expired"),
        ("grant not yet started", || anna(vec![grant(1, ANNA, d(2026, 6, 1))]), d(2026, 5, 31), false, "not_yet_started"),
        ("grant at its start instant (inclusive)", || anna(vec![grant(1, ANNA, d(2026, 6, 1))]), d(2026, 6, 1), true, "consented"),
        ("grant then withdrawal, before withdrawal", || anna(vec![grant(1, ANNA, d(2026, 1, 1)), withdraw(2, ANNA, d(2026, 3, 1))]), d(2026, 3, 1) - Duration::seconds(1), true, "consented"),
        ("grant then withdrawal, at withdrawal", || anna(vec![grant(1, ANNA, d(2026, 1, 1)), withdraw(2, ANNA, d(2026, 3, 1))]), d(2026, 3, 1), false, "withdrawn"),
        ("withdrawal recorded before the grant it follows in time", || anna(vec![withdraw(1, ANNA, d(2026, 3, 1)), grant(2, ANNA, d(2026, 1, 1))]), d(2026, 4, 1), false, "withdrawn"),
        ("withdrawn, then granted again", || anna(vec![grant(1, ANNA, d(2026, 1, 1)), withdraw(2, ANNA, d(2026, 2, 1)), grant(3, ANNA, d(2026, 3, 1))]), d(2026, 4, 1), true, "consented"),
        ("withdrawn, regrant still in the future", || anna(vec![grant(1, ANNA, d(2026, 1, 1)), withdraw(2, ANNA, d(2026, 2, 1)), grant(3, ANNA, d(2026, 5, 1))]), d(2026, 4, 1), false, "withdrawn"),
        ("withdrawal for another purpose does not hide", || anna(vec![grant(1, ANNA, d(2026, 1, 1)), withdraw(2, ANNA, d(2026, 2, 1)).for_purposes(&[Q])]), d(2026, 4, 1), true, "consented"),
        ("withdrawal cancels a pending grant recorded before it", || anna(vec![grant(1, ANNA, d(2026, 5, 1)), withdraw(2, ANNA, d(2026, 2, 1))]), d(2026, 6, 1), false, "withdrawn"),
        ("refused", || anna(vec![refuse(1, ANNA, d(2026, 1, 1))]), d(2026, 2, 1), false, "refused"),
        ("refused after a grant", || anna(vec![grant(1, ANNA, d(2026, 1, 1)), refuse(2, ANNA, d(2026, 2, 1))]), d(2026, 3, 1), false, "refused"),
        ("refused, later granted", || anna(vec![refuse(1, ANNA, d(2026, 1, 1)), grant(2, ANNA, d(2026, 2, 1))]), d(2026, 3, 1), true, "consented"),
        ("same instant: grant recorded after withdrawal wins", || anna(vec![withdraw(1, ANNA, d(2026, 2, 1)), grant(2, ANNA, d(2026, 2, 1))]), d(2026, 3, 1), true, "consented"),
        ("same instant: withdrawal recorded after grant wins", || anna(vec![grant(1, ANNA, d(2026, 2, 1)), withdraw(2, ANNA, d(2026, 2, 1))]), d(2026, 3, 1), false, "withdrawn"),
        ("same instant: recording order, not list order, decides (grant last)", || anna(vec![grant(2, ANNA, d(2026, 2, 1)), withdraw(1, ANNA, d(2026, 2, 1))]), d(2026, 3, 1), true, "consented"),
        ("same instant: recording order, not list order, decides (withdrawal last)", || anna(vec![withdraw(2, ANNA, d(2026, 2, 1)), grant(1, ANNA, d(2026, 2, 1))]), d(2026, 3, 1), false, "withdrawn"),
        ("expired later grant does not undo an earlier open-ended grant", || anna(vec![grant(1, ANNA, d(2026, 1, 1)), grant(2, ANNA, d(2026, 2, 1)).until(d(2026, 3, 1))]), d(2026, 4, 1), true, "consented"),
        ("grant by a stranger for an adult does not count", || anna(vec![grant(1, STRANGER, d(2026, 1, 1))]), d(2026, 2, 1), false, "not_by_guardian"),
        // group photos: every linked person
        ("group photo, everyone consented", || world(vec![adult(ANNA, vec![grant(1, ANNA, d(2026, 1, 1))]), adult(CARL, vec![grant(1, CARL, d(2026, 1, 1))])], &[ANNA, CARL]), d(2026, 2, 1), true, "consented"),
        ("group photo, one person without consent", || world(vec![adult(ANNA, vec![grant(1, ANNA, d(2026, 1, 1))]), adult(CARL, vec![])], &[ANNA, CARL]), d(2026, 2, 1), false, "no_consent"),
        ("group photo, one person withdrew", || world(vec![adult(ANNA, vec![grant(1, ANNA, d(2026, 1, 1))]), adult(CARL, vec![grant(1, CARL, d(2026, 1, 1)), withdraw(2, CARL, d(2026, 1, 15))])], &[ANNA, CARL]), d(2026, 2, 1), false, "withdrawn"),
        ("linked person missing from the catalog", || world(vec![adult(ANNA, vec![grant(1, ANNA, d(2026, 1, 1))])], &[ANNA, CARL]), d(2026, 2, 1), false, "unknown_person"),
        // minors
        ("minor with a guardian's grant", || ben(vec![grant(1, GUARD, d(2026, 1, 1))]), d(2026, 2, 1), true, "consented"),
        ("minor with own grant", || ben(vec![grant(1, BEN, d(2026, 1, 1))]), d(2026, 2, 1), false, "own_grant_of_minor"),
        ("minor with a stranger's grant", || ben(vec![grant(1, STRANGER, d(2026, 1, 1))]), d(2026, 2, 1), false, "not_by_guardian"),
        ("minor's own grant does not revoke an earlier guardian grant", || ben(vec![grant(1, GUARD, d(2026, 1, 1)), grant(2, BEN, d(2026, 3, 1))]), d(2026, 4, 1), true, "consented"),
        ("guardian grant, last second before the 16th birthday", || ben(vec![grant(1, GUARD, d(2026, 1, 1))]), d(2028, 6, 15) - Duration::seconds(1), true, "consented"),
        ("guardian grant stays valid on the 16th birthday", || ben(vec![grant(1, GUARD, d(2026, 1, 1))]), d(2028, 6, 15), true, "consented"),
        ("guardian grant stays valid years after turning 16", || ben(vec![grant(1, GUARD, d(2026, 1, 1))]), d(2031, 1, 1), true, "consented"),
        ("guardian's withdrawal hides a minor", || ben(vec![grant(1, GUARD, d(2026, 1, 1)), withdraw(2, GUARD, d(2026, 2, 1))]), d(2026, 3, 1), false, "withdrawn"),
        ("minor's own grant stays invalid after turning 16", || ben(vec![grant(1, BEN, d(2026, 1, 1))]), d(2029, 1, 1), false, "own_grant_of_minor"),
        ("16-year-old's own grant counts", || ben(vec![grant(1, BEN, d(2028, 7, 1))]), d(2028, 8, 1), true, "consented"),
        // special categories
        ("special category, grant not explicit", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]); w.asset.special_category = true; w }, d(2026, 2, 1), false, "not_explicit"),
        ("special category, explicit grant", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1)).explicitly()]); w.asset.special_category = true; w }, d(2026, 2, 1), true, "consented"),
        ("special category, guardian grant not explicit", || { let mut w = ben(vec![grant(1, GUARD, d(2026, 1, 1))]); w.asset.special_category = true; w }, d(2026, 2, 1), false, "not_explicit"),
        ("non-explicit later grant does not revoke an explicit one", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1)).explicitly(), grant(2, ANNA, d(2026, 2, 1))]); w.asset.special_category = true; w }, d(2026, 3, 1), true, "consented"),
        ("ordinary photo, explicit grant is fine too", || anna(vec![grant(1, ANNA, d(2026, 1, 1)).explicitly()]), d(2026, 2, 1), true, "consented"),
        // scopes
        ("collection scope covers a sub-collection", || in_collection(anna(vec![grant(1, ANNA, d(2026, 1, 1)).scoped(Scope::Collection("events/2026".into()))]), "events/2026/x"), d(2026, 2, 1), true, "consented"),
        ("collection scope covers the collection itself", || anna(vec![grant(1, ANNA, d(2026, 1, 1)).scoped(Scope::Collection("events/2026".into()))]), d(2026, 2, 1), true, "consented"),
        ("collection scope does not cover another collection", || in_collection(anna(vec![grant(1, ANNA, d(2026, 1, 1)).scoped(Scope::Collection("events/2026".into()))]), "other/collection"), d(2026, 2, 1), false, "no_consent"),
        ("collection scope matches whole components only", || in_collection(anna(vec![grant(1, ANNA, d(2026, 1, 1)).scoped(Scope::Collection("events/2026".into()))]), "events/20261"), d(2026, 2, 1), false, "no_consent"),
        ("collection scope does not cover the parent", || in_collection(anna(vec![grant(1, ANNA, d(2026, 1, 1)).scoped(Scope::Collection("events/2026".into()))]), "events"), d(2026, 2, 1), false, "no_consent"),
        ("asset scope covers a listed asset", || anna(vec![grant(1, ANNA, d(2026, 1, 1)).scoped(Scope::Assets(vec![7, 1]))]), d(2026, 2, 1), true, "consented"),
        ("asset scope does not cover an unlisted asset", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1)).scoped(Scope::Assets(vec![1]))]); w.asset.id = 2; w }, d(2026, 2, 1), false, "no_consent"),
        ("withdrawal scoped to another collection does not hide", || anna(vec![grant(1, ANNA, d(2026, 1, 1)), withdraw(2, ANNA, d(2026, 2, 1)).scoped(Scope::Collection("school".into()))]), d(2026, 3, 1), true, "consented"),
        ("withdrawal scoped to this asset hides it", || anna(vec![grant(1, ANNA, d(2026, 1, 1)), withdraw(2, ANNA, d(2026, 2, 1)).scoped(Scope::Assets(vec![1]))]), d(2026, 3, 1), false, "withdrawn"),
        // --- rule 3: reviewed ------------------------------------------------------------------
        ("unreviewed: no persons linked, not marked", || world(vec![], &[]), d(2026, 2, 1), false, "unreviewed"),
        ("marked as showing no persons", || { let mut w = world(vec![], &[]); w.asset.no_persons = true; w }, d(2026, 2, 1), true, "no_persons"),
        ("linked persons override the no-persons mark", || { let mut w = anna(vec![]); w.asset.no_persons = true; w }, d(2026, 2, 1), false, "no_consent"),
        // detected faces: each linked or declared not recognisable
        ("one face detected, its person linked and consented", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]); w.asset.faces = 1; w }, d(2026, 2, 1), true, "consented"),
        ("two faces detected, one person linked: a bystander", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]); w.asset.faces = 2; w }, d(2026, 2, 1), false, "unlinked_faces"),
        ("two faces, one linked, the rest declared not recognisable", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]); w.asset.faces = 2; w.asset.faces_reviewed = 2; w }, d(2026, 2, 1), true, "consented"),
        ("declared for two faces, a later version shows three", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]); w.asset.faces = 3; w.asset.faces_reviewed = 2; w }, d(2026, 2, 1), false, "unlinked_faces"),
        ("marked no persons, yet faces detected", || { let mut w = world(vec![], &[]); w.asset.no_persons = true; w.asset.faces = 1; w }, d(2026, 2, 1), false, "unlinked_faces"),
        ("marked no persons with the faces declared not recognisable", || { let mut w = world(vec![], &[]); w.asset.no_persons = true; w.asset.faces = 4; w.asset.faces_reviewed = 4; w }, d(2026, 2, 1), true, "no_persons"),
        ("faces declared but nothing linked or marked is still unreviewed", || { let mut w = world(vec![], &[]); w.asset.faces = 1; w.asset.faces_reviewed = 1; w }, d(2026, 2, 1), false, "unreviewed"),
        ("more persons linked than faces detected", || { let mut w = world(vec![adult(ANNA, vec![grant(1, ANNA, d(2026, 1, 1))]), adult(CARL, vec![grant(1, CARL, d(2026, 1, 1))])], &[ANNA, CARL]); w.asset.faces = 1; w }, d(2026, 2, 1), true, "consented"),
        ("legitimate interest also needs every face accounted for", || { let mut w = legit(anna(vec![])); w.asset.faces = 2; w }, d(2026, 2, 1), false, "unlinked_faces"),
        // --- rule 5: other legal bases ---------------------------------------------------------
        ("legitimate interest, no objection", || legit(anna(vec![])), d(2026, 2, 1), true, "basis"),
        ("legitimate interest, objection", || legit(anna(vec![object(1, ANNA, d(2026, 1, 10)).for_purposes(&[LI])])), d(2026, 2, 1), false, "objected"),
        ("legitimate interest, before the objection", || legit(anna(vec![object(1, ANNA, d(2026, 1, 10)).for_purposes(&[LI])])), d(2026, 1, 9), true, "basis"),
        ("legitimate interest, objection for another purpose", || legit(anna(vec![object(1, ANNA, d(2026, 1, 10)).for_purposes(&[P])])), d(2026, 2, 1), true, "basis"),
        ("legitimate interest, refusal acts as objection", || legit(anna(vec![refuse(1, ANNA, d(2026, 1, 10)).for_purposes(&[LI])])), d(2026, 2, 1), false, "objected"),
        ("legitimate interest, objection lifted by a later grant", || legit(anna(vec![object(1, ANNA, d(2026, 1, 10)).for_purposes(&[LI]), grant(2, ANNA, d(2026, 1, 20)).for_purposes(&[LI])])), d(2026, 2, 1), true, "basis"),
        ("legitimate interest, expired consent does not hide", || legit(anna(vec![grant(1, ANNA, d(2026, 1, 1)).until(d(2026, 1, 5)).for_purposes(&[LI])])), d(2026, 2, 1), true, "basis"),
        ("legitimate interest, group photo with one objection", || legit(world(vec![adult(ANNA, vec![]), adult(CARL, vec![object(1, CARL, d(2026, 1, 10)).for_purposes(&[LI])])], &[ANNA, CARL])), d(2026, 2, 1), false, "objected"),
        ("legitimate interest, still needs review", || legit(world(vec![], &[])), d(2026, 2, 1), false, "unreviewed"),
        ("consent purpose, objection hides too", || anna(vec![grant(1, ANNA, d(2026, 1, 1)), object(2, ANNA, d(2026, 2, 1))]), d(2026, 3, 1), false, "objected"),
        // --- rule 1: the user's grant ----------------------------------------------------------
        ("user without any grant", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]); w.user = user("bob", &[]); w }, d(2026, 2, 1), false, "no_grant"),
        ("user grant on another collection prefix", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]); w.user = user("bob", &[(P, "events/2025")]); w }, d(2026, 2, 1), false, "no_grant"),
        ("user grant prefix matches whole components only", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]); w.user = user("bob", &[(P, "events/202")]); w }, d(2026, 2, 1), false, "no_grant"),
        ("user grant for another purpose", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]); w.user = user("bob", &[(Q, "events")]); w }, d(2026, 2, 1), false, "no_grant"),
        ("user grant on the exact collection", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]); w.user = user("bob", &[(P, "events/2026")]); w }, d(2026, 2, 1), true, "consented"),
        ("user grant on the root", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]); w.user = user("bob", &[(P, "")]); w }, d(2026, 2, 1), true, "consented"),
        ("user without grant, even for a no-persons asset", || { let mut w = world(vec![], &[]); w.asset.no_persons = true; w.user = user("bob", &[]); w }, d(2026, 2, 1), false, "no_grant"),
        ("user without grant, even for own draft", || { let mut w = world(vec![], &[]); w.asset.status = Status::Draft; w.user = user("alice", &[(P, "other")]); w }, d(2026, 2, 1), false, "no_grant"),
        // --- rule 2: active ----------------------------------------------------------------------
        ("trashed", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]); w.asset.status = Status::Trash; w }, d(2026, 2, 1), false, "trashed"),
        ("trashed by its creator", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]); w.asset.status = Status::Trash; w.user.login = "alice".into(); w }, d(2026, 2, 1), false, "trashed"),
        ("someone else's draft", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]); w.asset.status = Status::Draft; w }, d(2026, 2, 1), false, "draft_of_other"),
        ("own draft", || { let mut w = anna(vec![]); w.asset.status = Status::Draft; w.user.login = "alice".into(); w }, d(2026, 2, 1), true, "own_draft"),
        ("own draft in the purpose it was made in", || { let mut w = anna(vec![]); w.asset.status = Status::Draft; w.asset.draft_purpose = Some(P); w.user.login = "alice".into(); w }, d(2026, 2, 1), true, "own_draft"),
        ("own draft is not shown in another purpose", || { let mut w = anna(vec![]); w.asset.status = Status::Draft; w.asset.draft_purpose = Some(Q); w.user.login = "alice".into(); w }, d(2026, 2, 1), false, "draft_of_other"),
        ("purged asset", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]); w.asset.status = Status::Purged; w }, d(2026, 2, 1), false, "trashed"),
        ("asset retention ended", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]); w.asset.retention_until = Some(d(2026, 6, 1)); w }, d(2026, 6, 1), false, "retention_ended"),
        ("asset retention not yet ended", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]); w.asset.retention_until = Some(d(2026, 6, 1)); w }, d(2026, 6, 1) - Duration::seconds(1), true, "consented"),
        ("purpose retention ended (counted from import)", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]); w.purpose.retention = Some(term("30d")); w }, d(2026, 1, 31), false, "retention_ended"),
        ("purpose retention not yet ended", || { let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]); w.purpose.retention = Some(term("30d")); w }, d(2026, 1, 30), true, "consented"),
        ("purpose retention on legitimate interest", || { let mut w = legit(anna(vec![])); w.purpose.retention = Some(term("30d")); w }, d(2026, 2, 1), false, "retention_ended"),
        ("retention also ends own drafts", || { let mut w = world(vec![], &[]); w.asset.status = Status::Draft; w.user.login = "alice".into(); w.asset.retention_until = Some(d(2026, 1, 15)); w }, d(2026, 2, 1), false, "retention_ended"),
        // --- special categories in every purpose (GDPR Art. 9), finding 17 of issue 11 --------
        ("special category, legitimate interest, no consent, no exception", || special(legit(anna(vec![]))), d(2026, 2, 1), false, "no_explicit_consent"),
        ("special category, legitimate interest, non-explicit grant, no exception", || special(legit(anna(vec![grant(1, ANNA, d(2026, 1, 1)).for_purposes(&[LI])]))), d(2026, 2, 1), false, "not_explicit"),
        ("special category, legitimate interest, explicit grant, no exception", || special(legit(anna(vec![grant(1, ANNA, d(2026, 1, 1)).for_purposes(&[LI]).explicitly()]))), d(2026, 2, 1), true, "basis"),
        ("special category, legitimate interest, explicit grant expired, no exception", || special(legit(anna(vec![grant(1, ANNA, d(2026, 1, 1)).for_purposes(&[LI]).explicitly().until(d(2026, 1, 20))]))), d(2026, 2, 1), false, "expired"),
        ("special category, legitimate interest, Art. 9(2) exception, no consent", || exception(special(legit(anna(vec![])))), d(2026, 2, 1), true, "basis"),
        ("special category, legitimate interest, Art. 9(2) exception, objection", || exception(special(legit(anna(vec![object(1, ANNA, d(2026, 1, 10)).for_purposes(&[LI])])))), d(2026, 2, 1), false, "objected"),
        ("special category, legitimate interest, objection then non-explicit grant, no exception", || special(legit(anna(vec![object(1, ANNA, d(2026, 1, 10)).for_purposes(&[LI]), grant(2, ANNA, d(2026, 1, 20)).for_purposes(&[LI])]))), d(2026, 2, 1), false, "not_explicit"),
        ("special category, legitimate interest, objection then non-explicit grant, with exception", || exception(special(legit(anna(vec![object(1, ANNA, d(2026, 1, 10)).for_purposes(&[LI]), grant(2, ANNA, d(2026, 1, 20)).for_purposes(&[LI])])))), d(2026, 2, 1), true, "basis"),
        ("special category, legitimate interest, objection then explicit grant", || special(legit(anna(vec![object(1, ANNA, d(2026, 1, 10)).for_purposes(&[LI]), grant(2, ANNA, d(2026, 1, 20)).for_purposes(&[LI]).explicitly()]))), d(2026, 2, 1), true, "basis"),
        ("special category, educational, no consent, no exception", || { let mut w = special(anna(vec![])); w.purpose = purpose(LI, Basis::Educational); w }, d(2026, 2, 1), false, "no_explicit_consent"),
        ("special category, consent purpose with an Art. 9(2) exception, non-explicit grant", || exception(special(anna(vec![grant(1, ANNA, d(2026, 1, 1))]))), d(2026, 2, 1), true, "consented"),
        ("special category, consent purpose with an Art. 9(2) exception, still needs consent", || exception(special(anna(vec![]))), d(2026, 2, 1), false, "no_consent"),
        ("ordinary photo, legitimate interest, no exception needed", || legit(anna(vec![])), d(2026, 2, 2), true, "basis"),
        // objections under other bases, lifted and restored
        ("legitimate interest, objection lifted by a time-limited grant, while it runs", || legit(anna(vec![object(1, ANNA, d(2026, 1, 10)).for_purposes(&[LI]), grant(2, ANNA, d(2026, 1, 20)).for_purposes(&[LI]).until(d(2026, 3, 1))])), d(2026, 2, 1), true, "basis"),
        ("legitimate interest, objection holds again after the lifting grant ends", || legit(anna(vec![object(1, ANNA, d(2026, 1, 10)).for_purposes(&[LI]), grant(2, ANNA, d(2026, 1, 20)).for_purposes(&[LI]).until(d(2026, 3, 1))])), d(2026, 3, 1), false, "objected"),
        ("legitimate interest, a minor's own grant does not lift an objection", || legit(ben(vec![object(1, GUARD, d(2026, 1, 10)).for_purposes(&[LI]), grant(2, BEN, d(2026, 1, 20)).for_purposes(&[LI])])), d(2026, 2, 1), false, "objected"),
        ("legitimate interest, a guardian's grant lifts a minor's objection", || legit(ben(vec![object(1, GUARD, d(2026, 1, 10)).for_purposes(&[LI]), grant(2, GUARD, d(2026, 1, 20)).for_purposes(&[LI])])), d(2026, 2, 1), true, "basis"),
        // the reason names the latest thing the person did
        ("consent purpose, withdrawal then a non-explicit grant on a special-category photo", || special(anna(vec![grant(1, ANNA, d(2026, 1, 1)).explicitly(), withdraw(2, ANNA, d(2026, 1, 10)), grant(3, ANNA, d(2026, 1, 20))])), d(2026, 2, 1), false, "not_explicit"),
        ("consent purpose, withdrawal then a grant that expired", || anna(vec![grant(1, ANNA, d(2026, 1, 1)), withdraw(2, ANNA, d(2026, 1, 10)), grant(3, ANNA, d(2026, 1, 20)).until(d(2026, 1, 25))]), d(2026, 2, 1), false, "expired"),
        // guardians must be 16 or older themselves (finding 19)
        ("grant by a guardian who was under 16 at its start", || ben_with_young_guardian(d(2030, 1, 1), vec![grant(1, GUARD, d(2026, 1, 1))]), d(2026, 2, 1), false, "guardian_minor"),
        ("grant by a guardian given after the guardian turned 16", || ben_with_young_guardian(d(2025, 1, 1), vec![grant(1, GUARD, d(2026, 1, 1))]), d(2026, 2, 1), true, "consented"),
        ("a young guardian's grant stays void after the guardian turns 16", || ben_with_young_guardian(d(2026, 1, 15), vec![grant(1, GUARD, d(2026, 1, 1))]), d(2026, 2, 1), false, "guardian_minor"),
    ]
}

#[test]
fn table_of_cases() {
    let mut failures = Vec::new();
    let cases = cases();
    for (name, setup, t, visible, code) in &cases {
        let w = setup();
        let (got_visible, reason) = w.eval(*t);
        if got_visible != *visible || reason.code() != *code {
            failures.push(format!(
                "case {name:?} at {t}: expected visible={visible} code={code}, got visible={got_visible} reason={reason:?}"
            ));
        }
        // decide must agree with evaluate_at at the same moment
        let decision = w.decide(*t);
        if decision.visible != got_visible || decision.reason != reason {
            failures.push(format!(
                "case {name:?}: decide {decision:?} disagrees with evaluate_at {reason:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn case_names_are_unique() {
    let cases = cases();
    let mut names: Vec<_> = cases.iter().map(|c| c.0).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), cases.len());
}

// ---------------------------------------------------------------------------------------------
// Reason details a user would read in `why`
// ---------------------------------------------------------------------------------------------

#[test]
fn reasons_name_the_right_person_and_moment() {
    let w = world(
        vec![
            adult(ANNA, vec![grant(1, ANNA, d(2026, 1, 1))]),
            adult(CARL, vec![]),
        ],
        &[ANNA, CARL],
    );
    assert_eq!(w.eval(d(2026, 2, 1)).1, Reason::NoConsent { person: CARL });

    let w = anna(vec![grant(1, ANNA, d(2026, 1, 1)).until(d(2026, 2, 1))]);
    assert_eq!(
        w.eval(d(2026, 3, 1)).1,
        Reason::Expired {
            person: ANNA,
            at: d(2026, 2, 1)
        }
    );

    let w = anna(vec![
        grant(1, ANNA, d(2026, 6, 1)),
        grant(2, ANNA, d(2026, 4, 1)),
    ]);
    assert_eq!(
        w.eval(d(2026, 3, 1)).1,
        Reason::NotYetStarted {
            person: ANNA,
            from: d(2026, 4, 1)
        }
    );

    let w = anna(vec![
        grant(1, ANNA, d(2026, 1, 1)),
        withdraw(2, ANNA, d(2026, 2, 1)),
    ]);
    assert_eq!(
        w.eval(d(2026, 3, 1)).1,
        Reason::Withdrawn {
            person: ANNA,
            at: d(2026, 2, 1)
        }
    );

    let w = legit(anna(vec![
        withdraw(1, ANNA, d(2026, 1, 5)).for_purposes(&[LI])
    ]));
    assert_eq!(
        w.eval(d(2026, 3, 1)).1,
        Reason::Objected {
            person: ANNA,
            at: d(2026, 1, 5)
        }
    );
    assert_eq!(
        legit(anna(vec![])).eval(d(2026, 3, 1)).1,
        Reason::Basis {
            basis: Basis::LegitimateInterest
        }
    );

    let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]);
    w.asset.retention_until = Some(d(2026, 9, 1));
    w.purpose.retention = Some(term("100d")); // 2026-04-11, earlier: wins
    assert_eq!(
        w.eval(d(2026, 5, 1)).1,
        Reason::RetentionEnded { at: d(2026, 4, 11) }
    );
}

#[test]
fn other_bases_behave_like_legitimate_interest() {
    for basis in [Basis::Educational, Basis::Contract] {
        let mut w = anna(vec![]);
        w.purpose = purpose(LI, basis);
        assert_eq!(
            w.eval(d(2026, 2, 1)),
            (true, Reason::Basis { basis }),
            "{basis:?}"
        );
        w.people
            .get_mut(&ANNA)
            .unwrap()
            .events
            .push(object(1, ANNA, d(2026, 1, 10)).for_purposes(&[LI]));
        assert_eq!(w.eval(d(2026, 2, 1)).1.code(), "objected", "{basis:?}");
    }
}

#[test]
fn write_and_delete_grants_also_let_the_user_read() {
    for access in [Access::Write, Access::Delete] {
        let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]);
        w.user.grants = vec![Grant {
            purpose: P,
            prefix: "events".into(),
            access,
        }];
        assert_eq!(
            w.eval(d(2026, 2, 1)),
            (true, Reason::Consented),
            "{access:?}"
        );
    }
}

#[test]
fn born_on_29_february_turns_16_on_28_february_of_a_non_leap_year() {
    let born = NaiveDate::from_ymd_opt(2084, 2, 29).unwrap();
    let turns_16 = Some(crate::when::sixteenth_birthday(born, &Zone::utc()));
    assert_eq!(turns_16, Some(d(2100, 2, 28)));
    // an own grant given on 28 February 2100 counts: the person is 16 that day
    let mut w = ben(vec![grant(1, BEN, d(2100, 2, 28))]);
    w.people.get_mut(&BEN).unwrap().turns_16 = turns_16;
    assert_eq!(w.eval(d(2100, 2, 28)), (true, Reason::Consented));
    // one given a second earlier was given by a minor and never counts
    let mut w = ben(vec![grant(1, BEN, d(2100, 2, 28) - Duration::seconds(1))]);
    w.people.get_mut(&BEN).unwrap().turns_16 = turns_16;
    assert_eq!(w.eval(d(2100, 3, 1)).1.code(), "own_grant_of_minor");
}

#[test]
fn reason_codes_are_distinct() {
    let t = d(2026, 1, 1);
    let all = [
        Reason::Consented,
        Reason::NoPersons,
        Reason::Basis {
            basis: Basis::Contract,
        },
        Reason::OwnDraft,
        Reason::NoGrant,
        Reason::Trashed,
        Reason::DraftOfOther,
        Reason::RetentionEnded { at: t },
        Reason::Unreviewed,
        Reason::UnknownPerson { person: 1 },
        Reason::NoConsent { person: 1 },
        Reason::NotYetStarted { person: 1, from: t },
        Reason::Expired { person: 1, at: t },
        Reason::Withdrawn { person: 1, at: t },
        Reason::Refused { person: 1, at: t },
        Reason::Objected { person: 1, at: t },
        Reason::OwnGrantOfMinor { person: 1 },
        Reason::NotExplicit { person: 1 },
        Reason::NotByGuardian { person: 1 },
        Reason::GuardianMinor { person: 1, by: 2 },
        Reason::NoExplicitConsent { person: 1 },
    ];
    let mut codes: Vec<_> = all.iter().map(|r| r.code()).collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), all.len());
}

#[test]
fn prefixes_match_on_whole_components() {
    assert!(prefix_covers("events/2026", "events/2026"));
    assert!(prefix_covers("events/2026", "events/2026/may"));
    assert!(prefix_covers("events/2026/", "events/2026/may"));
    assert!(prefix_covers("/events", "events/2026"));
    assert!(prefix_covers("", "anything/at/all"));
    assert!(prefix_covers("", ""));
    assert!(!prefix_covers("events/2026", "events/20261"));
    assert!(!prefix_covers("events/2026", "events"));
    assert!(!prefix_covers("events", ""));
    assert!(!prefix_covers("ev", "events"));
}

// ---------------------------------------------------------------------------------------------
// valid_until
// ---------------------------------------------------------------------------------------------

#[test]
fn valid_until_is_the_expiry_of_a_visible_grant() {
    let w = anna(vec![grant(1, ANNA, d(2026, 1, 1)).until(d(2026, 3, 1))]);
    let dec = w.decide(d(2026, 2, 1));
    assert!(dec.visible);
    assert_eq!(dec.valid_until, Some(d(2026, 3, 1)));
    assert!(!w.eval(d(2026, 3, 1)).0);
}

#[test]
fn valid_until_is_the_start_of_a_future_grant() {
    let w = anna(vec![grant(1, ANNA, d(2026, 6, 1))]);
    let dec = w.decide(d(2026, 2, 1));
    assert!(!dec.visible);
    assert_eq!(dec.reason.code(), "not_yet_started");
    assert_eq!(dec.valid_until, Some(d(2026, 6, 1)));
}

#[test]
fn valid_until_is_none_when_nothing_is_pending() {
    // visible for good
    let w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]);
    assert_eq!(
        w.decide(d(2026, 2, 1)),
        Decision {
            visible: true,
            reason: Reason::Consented,
            valid_until: None
        }
    );
    // hidden for good
    let w = anna(vec![
        grant(1, ANNA, d(2026, 1, 1)),
        withdraw(2, ANNA, d(2026, 1, 5)),
    ]);
    let dec = w.decide(d(2026, 2, 1));
    assert!(!dec.visible);
    assert_eq!(dec.valid_until, None);
    // an expiry that already passed is not pending
    let w = anna(vec![grant(1, ANNA, d(2026, 1, 1)).until(d(2026, 1, 10))]);
    assert_eq!(w.decide(d(2026, 2, 1)).valid_until, None);
    // user without grant: nothing can change by time
    let mut w = anna(vec![grant(1, ANNA, d(2026, 6, 1)).until(d(2026, 7, 1))]);
    w.user = user("bob", &[]);
    assert_eq!(w.decide(d(2026, 2, 1)).valid_until, None);
}

#[test]
fn valid_until_skips_moments_that_do_not_change_visibility() {
    // two back-to-back grants: visibility does not change at the first one's end
    let w = anna(vec![
        grant(1, ANNA, d(2026, 1, 1)).until(d(2026, 3, 1)),
        grant(2, ANNA, d(2026, 3, 1)).until(d(2026, 5, 1)),
    ]);
    assert_eq!(w.decide(d(2026, 2, 1)).valid_until, Some(d(2026, 5, 1)));
    // a guardian's grant survives the 16th birthday: no change there
    let w = ben(vec![grant(1, GUARD, d(2026, 1, 1))]);
    assert_eq!(w.decide(d(2026, 2, 1)).valid_until, None);
}

#[test]
fn valid_until_for_a_scheduled_withdrawal_and_retention() {
    let w = anna(vec![
        grant(1, ANNA, d(2026, 1, 1)),
        withdraw(2, ANNA, d(2026, 4, 1)),
    ]);
    assert_eq!(w.decide(d(2026, 2, 1)).valid_until, Some(d(2026, 4, 1)));

    let mut w = anna(vec![grant(1, ANNA, d(2026, 1, 1))]);
    w.asset.retention_until = Some(d(2026, 8, 1));
    assert_eq!(w.decide(d(2026, 2, 1)).valid_until, Some(d(2026, 8, 1)));

    let mut w = legit(anna(vec![]));
    w.purpose.retention = Some(term("10d"));
    assert_eq!(w.decide(d(2026, 1, 2)).valid_until, Some(d(2026, 1, 11)));
}

#[test]
fn valid_until_in_a_group_photo_is_the_earliest_relevant_change() {
    let w = world(
        vec![
            adult(
                ANNA,
                vec![grant(1, ANNA, d(2026, 1, 1)).until(d(2026, 5, 1))],
            ),
            adult(
                CARL,
                vec![grant(1, CARL, d(2026, 1, 1)).until(d(2026, 3, 1))],
            ),
        ],
        &[ANNA, CARL],
    );
    assert_eq!(w.decide(d(2026, 2, 1)).valid_until, Some(d(2026, 3, 1)));
    // hidden from March because of Carl; Anna's expiry in May changes nothing
    let dec = w.decide(d(2026, 4, 1));
    assert!(!dec.visible);
    assert_eq!(dec.valid_until, None);
}

// ---------------------------------------------------------------------------------------------
// Property tests over small random worlds
// ---------------------------------------------------------------------------------------------

mod props {
    use super::*;
    use proptest::collection::vec;
    use proptest::option;
    use proptest::prelude::*;
    use proptest::sample::{select, subsequence};

    /// Properties are evaluated for one of two purposes: 1 (consent) or 2 (another basis).
    const PURPOSES: [PurposeId; 2] = [1, 2];
    const GUARDIAN_IDS: [PersonId; 2] = [100, 101];
    const STRANGER_ID: PersonId = 102;
    const UNKNOWN_ID: PersonId = 9;
    const PREFIXES: [&str; 6] = ["", "a", "a/b", "ab", "c", "a/"];
    const COLLECTIONS: [&str; 6] = ["", "a", "a/b", "a/b/c", "ab", "c"];

    fn t0() -> Time {
        d(2026, 1, 1)
    }
    /// Event moments on a coarse 6-hour grid over ~20 days, so that events often coincide.
    fn grid(k: i64) -> Time {
        t0() + Duration::hours(6 * k)
    }

    fn arb_time() -> impl Strategy<Value = Time> {
        // minutes over 25 days, starting a little before t0
        (-600i64..25 * 24 * 60).prop_map(|m| t0() + Duration::minutes(m))
    }

    fn arb_purposes() -> impl Strategy<Value = Vec<PurposeId>> {
        prop_oneof![1 => Just(vec![1]), 1 => Just(vec![2]), 3 => Just(vec![1, 2])]
    }

    fn arb_scope() -> impl Strategy<Value = Scope> {
        prop_oneof![
            4 => Just(Scope::All),
            2 => select(PREFIXES.to_vec()).prop_map(|p| Scope::Collection(p.to_string())),
            1 => subsequence(vec![1i64, 2], 0..=2).prop_map(Scope::Assets),
        ]
    }

    fn arb_given_by(pid: PersonId) -> impl Strategy<Value = PersonId> {
        prop_oneof![4 => Just(pid), 2 => select(GUARDIAN_IDS.to_vec()), 1 => Just(STRANGER_ID)]
    }

    fn arb_event(
        pid: PersonId,
        kind: BoxedStrategy<EventKind>,
    ) -> impl Strategy<Value = ConsentEvent> {
        (
            kind,
            arb_purposes(),
            arb_scope(),
            0i64..=80,
            option::of(1i64..=40),
            arb_given_by(pid),
            proptest::bool::weighted(0.75),
        )
            .prop_map(
                |(kind, purposes, scope, k, len, given_by, explicit)| ConsentEvent {
                    id: 0,
                    kind,
                    purposes: purposes.into(),
                    scope,
                    starts: grid(k),
                    expires: if kind == EventKind::Grant {
                        len.map(|l| grid(k + l))
                    } else {
                        None
                    },
                    given_by,
                    explicit,
                },
            )
    }

    fn any_kind() -> BoxedStrategy<EventKind> {
        prop_oneof![
            5 => Just(EventKind::Grant),
            1 => Just(EventKind::Withdraw),
            1 => Just(EventKind::Refuse),
            1 => Just(EventKind::Object),
        ]
        .boxed()
    }

    fn negative_kind() -> BoxedStrategy<EventKind> {
        select(vec![
            EventKind::Withdraw,
            EventKind::Refuse,
            EventKind::Object,
        ])
        .boxed()
    }

    fn arb_turns_16() -> impl Strategy<Value = Option<Time>> {
        prop_oneof![
            2 => Just(None),
            2 => Just(Some(d(1996, 5, 5))),
            // turns 16 somewhere around the window of events
            3 => (-10i64..30).prop_map(move |k| Some(t0() + Duration::days(k))),
        ]
    }

    fn arb_person(pid: PersonId) -> impl Strategy<Value = Person> {
        // ids give the recording order; the history is stored "in any order", so shuffle it
        let events = vec(arb_event(pid, any_kind()), 0..7)
            .prop_map(|mut events| {
                for (i, e) in events.iter_mut().enumerate() {
                    e.id = i as EventId + 1;
                }
                events
            })
            .prop_shuffle();
        (
            arb_turns_16(),
            subsequence(GUARDIAN_IDS.to_vec(), 0..=2),
            events,
        )
            .prop_map(move |(turns_16, guardians, events)| Person {
                id: pid,
                turns_16,
                guardians,
                events,
            })
    }

    fn arb_asset() -> impl Strategy<Value = Asset> {
        let status = prop_oneof![10 => Just(Status::Active), 2 => Just(Status::Draft), 1 => Just(Status::Trash)];
        let persons = prop_oneof![
            1 => Just(vec![]),
            6 => subsequence(vec![1i64, 2, 3], 1..=1),
            3 => subsequence(vec![1i64, 2, 3], 2..=3),
            1 => subsequence(vec![1i64, 2, 3], 0..=2).prop_map(|mut p| { p.push(UNKNOWN_ID); p }),
        ];
        (
            select(vec![1i64, 2]),
            select(COLLECTIONS.to_vec()),
            status,
            select(vec!["alice", "bob"]),
            -4i64..=20,
            any::<bool>(),
            any::<bool>(),
            persons,
            option::weighted(0.15, 0i64..=100),
            (0u16..=4, 0u16..=4),
        )
            .prop_map(
                |(
                    id,
                    collection,
                    status,
                    creator,
                    created,
                    no_persons,
                    special,
                    persons,
                    retention,
                    (faces, faces_reviewed),
                )| Asset {
                    id,
                    collection: collection.into(),
                    status,
                    creator: creator.into(),
                    created_at: grid(created),
                    no_persons,
                    special_category: special,
                    persons,
                    faces,
                    faces_reviewed,
                    retention_until: retention.map(grid),
                    draft_purpose: None,
                    derived_from: Vec::new(),
                    sidecar_of: None,
                },
            )
    }

    fn arb_grant() -> impl Strategy<Value = Grant> {
        (
            select(PURPOSES.to_vec()),
            select(PREFIXES.to_vec()),
            select(vec![Access::Read, Access::Write, Access::Delete]),
        )
            .prop_map(|(purpose, prefix, access)| Grant {
                purpose,
                prefix: prefix.into(),
                access,
            })
    }

    fn arb_user() -> impl Strategy<Value = User> {
        (select(vec!["alice", "bob"]), vec(arb_grant(), 0..4)).prop_map(|(login, grants)| User {
            login: login.into(),
            grants,
        })
    }

    fn arb_purpose() -> impl Strategy<Value = Purpose> {
        let retention =
            option::weighted(0.15, 1i64..=20).prop_map(|o| o.map(|days| term(&format!("{days}d"))));
        prop_oneof![
            (Just(Basis::Consent), retention.clone()),
            (
                select(vec![
                    Basis::LegitimateInterest,
                    Basis::Educational,
                    Basis::Contract
                ]),
                retention
            ),
        ]
        .prop_map(|(basis, retention)| Purpose {
            id: if basis == Basis::Consent { 1 } else { 2 },
            name: basis.as_str().into(),
            basis,
            retention,
            art9_exception: false,
        })
    }

    fn arb_world() -> impl Strategy<Value = World> {
        (
            arb_asset(),
            arb_person(1),
            arb_person(2),
            arb_person(3),
            arb_user(),
            arb_purpose(),
            proptest::bool::weighted(0.85),
        )
            .prop_map(|(asset, p1, p2, p3, mut user, purpose, give_access)| {
                // Usually give the viewer a grant that covers the asset, so the later rules get
                // exercised; otherwise the user keeps whatever random grants it has.
                if give_access {
                    user.grants.push(Grant {
                        purpose: purpose.id,
                        prefix: asset.collection.clone(),
                        access: Access::Read,
                    });
                }
                World {
                    asset,
                    people: [p1, p2, p3].into_iter().map(|p| (p.id, p)).collect(),
                    user,
                    purpose,
                }
            })
    }

    /// Independent statement of rule 1's prefix rule, used to build users without a grant.
    fn covers(prefix: &str, collection: &str) -> bool {
        let prefix = prefix.trim_end_matches('/');
        prefix.is_empty() || collection == prefix || collection.starts_with(&format!("{prefix}/"))
    }

    /// Every moment at which, by the rules as written in DESIGN.md §3, anything about the world
    /// can change: event starts and ends, 16th birthdays, retention ends. Also a moment just
    /// before and just after each, so a change that happens at the wrong instant is caught.
    fn interesting_moments(w: &World) -> Vec<Time> {
        let mut base = Vec::new();
        for p in w.people.values() {
            for e in &p.events {
                base.push(e.starts);
                base.extend(e.expires);
            }
            base.extend(p.turns_16);
        }
        base.extend(w.asset.retention_until);
        base.extend(
            w.purpose
                .retention
                .as_ref()
                .and_then(|r| r.end(w.asset.created_at)),
        );
        let mut out = Vec::new();
        for b in base {
            out.extend([
                b,
                b - Duration::nanoseconds(1),
                b - Duration::seconds(1),
                b + Duration::seconds(1),
            ]);
        }
        out
    }

    fn config() -> ProptestConfig {
        // 256 cases keeps the suite fast; PROPTEST_CASES=20000 for a deeper hunt.
        crate::proptest_config(256)
    }

    proptest! {
        #![proptest_config(config())]

        /// A withdrawal, refusal or objection never makes a hidden asset visible, at any time.
        #[test]
        fn negative_event_never_reveals(
            w in arb_world(),
            who in 1i64..=3,
            extra in arb_event(1, negative_kind()),
            ts in vec(arb_time(), 6),
        ) {
            let mut after = w.clone();
            let person = after.people.get_mut(&who).unwrap();
            let mut extra = extra;
            extra.given_by = if extra.given_by == 1 { who } else { extra.given_by };
            extra.id = person.events.iter().map(|e| e.id).max().unwrap_or(0) + 1;
            let w_at = extra.starts;
            person.events.push(extra);

            let mut moments = ts;
            moments.extend([w_at - Duration::seconds(1), w_at, w_at + Duration::hours(1)]);
            moments.extend(interesting_moments(&w));
            for t in moments {
                let before = w.eval(t);
                let now = after.eval(t);
                prop_assert!(
                    before.0 || !now.0,
                    "hidden at {} before ({:?}), visible after adding the event ({:?})", t, before.1, now.1
                );
                if t < w_at {
                    // not retroactive: nothing changes before the event takes effect
                    prop_assert_eq!(before.0, now.0, "event at {} changed visibility at {}", w_at, t);
                }
            }
        }

        /// The order in which a person's events are held changes nothing: the rules walk them
        /// in time order where they lie when they are in that order (as catalog loads keep
        /// them), and sort a copy otherwise.
        #[test]
        fn event_order_changes_nothing(w in arb_world(), ts in vec(arb_time(), 6)) {
            let mut sorted = w.clone();
            let mut reversed = w.clone();
            for p in sorted.people.values_mut() {
                crate::policy::sort_events(&mut p.events);
            }
            for p in reversed.people.values_mut() {
                crate::policy::sort_events(&mut p.events);
                p.events.reverse();
            }
            let mut moments = ts;
            moments.extend(interesting_moments(&w));
            for t in moments {
                let as_given = w.eval(t);
                prop_assert_eq!(&as_given, &sorted.eval(t), "sorted, at {}", t);
                prop_assert_eq!(&as_given, &reversed.eval(t), "reversed, at {}", t);
            }
        }

        /// Deciding many photos with remembered per-person ends (a listing) gives exactly what
        /// deciding each one alone gives: the same photo's variants (other persons, special
        /// category, another collection, a draft) decided in turn with one memo, at each
        /// interesting moment.
        #[test]
        fn remembered_ends_decide_as_each_alone(
            w in arb_world(),
            others in vec(arb_asset(), 4),
            ts in vec(arb_time(), 3),
        ) {
            let mut flipped = w.asset.clone();
            flipped.special_category = !flipped.special_category;
            let mut assets = vec![w.asset.clone(), flipped];
            for mut a in others {
                // the world's persons, and often the world's collection (where the user's
                // grant is), so that many are visible
                a.persons.retain(|p| w.people.contains_key(p));
                if a.id % 2 == 0 {
                    a.collection = w.asset.collection.clone();
                }
                assets.push(a);
            }
            let mut moments = ts;
            moments.extend(interesting_moments(&w));
            let mut memo = crate::policy::UntilMemo::default();
            for t in moments {
                for a in &assets {
                    let alone = decide(a, &w.people, &w.user, &w.purpose, t);
                    let remembered = crate::policy::decide_remembering(
                        a, &w.people, &w.user, &w.purpose, t, &mut memo,
                    );
                    prop_assert_eq!(&alone, &remembered, "asset {} at {}", a.id, t);
                }
            }
        }

        /// A face detected on a photo never makes it visible anywhere, at any time: detection
        /// results are inputs like links, and one more face can only hide.
        #[test]
        fn a_detected_face_never_reveals(w in arb_world(), ts in vec(arb_time(), 6)) {
            let mut after = w.clone();
            after.asset.faces = after.asset.faces.saturating_add(1);
            let mut moments = ts;
            moments.extend(interesting_moments(&w));
            for t in moments {
                let before = w.eval(t);
                let now = after.eval(t);
                prop_assert!(
                    before.0 || !now.0,
                    "hidden at {} with {} face(s) ({:?}), visible with one more ({:?})",
                    t, w.asset.faces, before.1, now.1
                );
            }
        }

        /// A grant (valid, invalid or expired) never hides a visible asset: it can only show.
        #[test]
        fn grant_never_hides(
            w in arb_world(),
            who in 1i64..=3,
            extra in arb_event(1, Just(EventKind::Grant).boxed()),
            ts in vec(arb_time(), 6),
        ) {
            let mut after = w.clone();
            let person = after.people.get_mut(&who).unwrap();
            let mut extra = extra;
            extra.given_by = if extra.given_by == 1 { who } else { extra.given_by };
            extra.id = person.events.iter().map(|e| e.id).max().unwrap_or(0) + 1;
            person.events.push(extra);
            let mut moments = ts;
            moments.extend(interesting_moments(&after));
            for t in moments {
                let before = w.eval(t);
                let now = after.eval(t);
                prop_assert!(!before.0 || now.0, "visible at {} before ({:?}), hidden after adding a grant ({:?})", t, before.1, now.1);
            }
        }

        /// valid_until is exactly the first moment after now at which the visibility changes.
        #[test]
        fn valid_until_is_the_first_change(w in arb_world(), now in arb_time(), fractions in vec(0.0f64..1.0, 8)) {
            let dec = w.decide(now);
            let far = [now + Duration::days(365 * 100), now + Duration::days(365 * 1000)];
            match dec.valid_until {
                Some(v) => {
                    prop_assert!(v > now, "valid_until {} not after now {}", v, now);
                    prop_assert_ne!(w.eval(v).0, dec.visible, "visibility does not change at valid_until {}", v);
                    let span = (v - now).num_nanoseconds().unwrap();
                    let mut samples: Vec<Time> = fractions.iter().map(|f| now + Duration::nanoseconds((span as f64 * f) as i64)).collect();
                    samples.extend([v - Duration::seconds(1), v - Duration::nanoseconds(1), now + Duration::nanoseconds(1)]);
                    samples.extend(interesting_moments(&w));
                    for t in samples.into_iter().filter(|t| *t > now && *t < v) {
                        prop_assert_eq!(w.eval(t).0, dec.visible, "visibility changed at {} before valid_until {}", t, v);
                    }
                }
                None => {
                    let mut samples: Vec<Time> = fractions.iter().map(|f| now + Duration::days((f * 400.0) as i64)).collect();
                    samples.extend(far);
                    samples.extend(interesting_moments(&w));
                    for t in samples.into_iter().filter(|t| *t > now) {
                        let (vis, reason) = w.eval(t);
                        prop_assert_eq!(vis, dec.visible, "visibility changed at {} ({:?}) but valid_until is None", t, reason);
                    }
                }
            }
        }

        /// decide and evaluate_at tell the same story at the same moment.
        #[test]
        fn decide_agrees_with_evaluate_at(w in arb_world(), now in arb_time()) {
            let dec = w.decide(now);
            let (visible, reason) = w.eval(now);
            prop_assert_eq!(dec.visible, visible);
            prop_assert_eq!(dec.reason, reason);
        }

        /// Visible reasons and hidden reasons never mix up.
        #[test]
        fn reason_matches_visibility(w in arb_world(), t in arb_time()) {
            let (visible, reason) = w.eval(t);
            let visible_code = matches!(reason.code(), "consented" | "no_persons" | "basis" | "own_draft");
            prop_assert_eq!(visible, visible_code, "{:?}", reason);
            if reason == Reason::Consented {
                prop_assert_eq!(w.purpose.basis, Basis::Consent);
            }
        }

        /// A user with no grant covering the asset for this purpose never sees it, at any time.
        #[test]
        fn user_without_grant_sees_nothing(w in arb_world(), ts in vec(arb_time(), 6)) {
            let mut w = w;
            let (pid, coll) = (w.purpose.id, w.asset.collection.clone());
            w.user.grants.retain(|g| !(g.purpose == pid && covers(&g.prefix, &coll)));
            let mut moments = ts;
            moments.extend(interesting_moments(&w));
            moments.push(t0() + Duration::days(365 * 100));
            for t in moments {
                let (visible, reason) = w.eval(t);
                prop_assert!(!visible, "visible at {} without a grant: {:?} (grants {:?})", t, reason, w.user.grants);
                prop_assert_eq!(reason, Reason::NoGrant);
            }
            prop_assert_eq!(w.decide(t0()).valid_until, None);
        }

        /// With a covering grant, rule 1 is satisfied: the reason is never "no grant".
        #[test]
        fn user_with_grant_is_not_told_no_grant(w in arb_world(), g in arb_grant(), depth in 0usize..4, t in arb_time()) {
            let mut w = w;
            let mut g = g;
            g.purpose = w.purpose.id;
            // an ancestor of (or equal to) the asset's collection, on whole components
            g.prefix = w.asset.collection.split('/').filter(|c| !c.is_empty()).take(depth).collect::<Vec<_>>().join("/");
            prop_assert!(covers(&g.prefix, &w.asset.collection));
            w.user.grants.push(g);
            prop_assert_ne!(w.eval(t).1, Reason::NoGrant);
        }
    }
}

/// The proof an export records: per linked person the grant that counts at t, never an
/// expired one, a minor's own one, or one cancelled by a later withdrawal.
#[test]
fn covering_grants_name_the_grant_that_counts() {
    let w = world(
        vec![
            adult(
                ANNA,
                vec![
                    grant(1, ANNA, d(2026, 1, 1)),
                    grant(2, ANNA, d(2026, 2, 1)).until(d(2026, 3, 1)),
                ],
            ),
            minor(vec![
                grant(3, BEN, d(2026, 1, 1)),
                grant(4, GUARD, d(2026, 1, 5)),
            ]),
        ],
        &[ANNA, BEN],
    );
    let at = |t| covering_grants(&w.asset, &w.people, P, t);
    assert_eq!(at(d(2026, 1, 10)), [(ANNA, 1), (BEN, 4)]);
    assert_eq!(
        at(d(2026, 2, 10)),
        [(ANNA, 2), (BEN, 4)],
        "the latest grant in effect"
    );
    assert_eq!(
        at(d(2026, 3, 10)),
        [(ANNA, 1), (BEN, 4)],
        "expired: the earlier one again"
    );
    assert_eq!(
        at(d(2026, 1, 2)),
        [(ANNA, 1)],
        "Ben's own grant never counts"
    );
    assert!(covering_grants(&w.asset, &w.people, Q, d(2026, 1, 10)).is_empty());
    let mut withdrawn = w.clone();
    if let Some(p) = withdrawn.people.get_mut(&ANNA) {
        p.events.push(withdraw(5, ANNA, d(2026, 4, 1)));
    }
    assert_eq!(
        covering_grants(&withdrawn.asset, &withdrawn.people, P, d(2026, 4, 2)),
        [(BEN, 4)]
    );
}

/// What the consent page says of a person's consent for a purpose as a whole, at a moment:
/// one case per state, and scoped events (a collection, some photos) left out.
#[test]
fn purpose_states_in_the_words_of_the_consent_page() {
    use crate::policy::{purpose_state, PurposeState as S};
    let guard = adult(GUARD, vec![]);
    let t = d(2026, 6, 1);
    let cases: Vec<(&str, Person, S)> = vec![
        ("never asked", adult(ANNA, vec![]), S::NeverAsked),
        (
            "open-ended grant",
            adult(ANNA, vec![grant(1, ANNA, d(2026, 1, 1))]),
            S::Valid { until: None },
        ),
        (
            "grant with an end",
            adult(
                ANNA,
                vec![grant(1, ANNA, d(2026, 1, 1)).until(d(2027, 1, 1))],
            ),
            S::Valid {
                until: Some(d(2027, 1, 1)),
            },
        ),
        (
            "expired",
            adult(
                ANNA,
                vec![grant(1, ANNA, d(2025, 1, 1)).until(d(2026, 1, 1))],
            ),
            S::Expired { at: d(2026, 1, 1) },
        ),
        (
            "withdrawn after a grant",
            adult(
                ANNA,
                vec![
                    grant(1, ANNA, d(2026, 1, 1)),
                    withdraw(2, ANNA, d(2026, 3, 1)),
                ],
            ),
            S::Withdrawn { at: d(2026, 3, 1) },
        ),
        (
            "given again after a withdrawal",
            adult(
                ANNA,
                vec![
                    grant(1, ANNA, d(2026, 1, 1)),
                    withdraw(2, ANNA, d(2026, 3, 1)),
                    grant(3, ANNA, d(2026, 4, 1)),
                ],
            ),
            S::Valid { until: None },
        ),
        (
            "refused",
            adult(ANNA, vec![refuse(1, ANNA, d(2026, 1, 1))]),
            S::Refused { at: d(2026, 1, 1) },
        ),
        (
            "objected",
            adult(ANNA, vec![object(1, ANNA, d(2026, 1, 1))]),
            S::Objected { at: d(2026, 1, 1) },
        ),
        (
            "a grant still to come",
            adult(ANNA, vec![grant(1, ANNA, d(2026, 9, 1))]),
            S::Upcoming {
                from: d(2026, 9, 1),
            },
        ),
        (
            "a child's own grant does not count",
            minor(vec![grant(1, BEN, d(2026, 1, 1))]),
            S::NotCounting,
        ),
        (
            "a guardian's grant counts",
            minor(vec![grant(1, GUARD, d(2026, 1, 1))]),
            S::Valid { until: None },
        ),
        (
            "another purpose's grant is not this one's",
            adult(ANNA, vec![grant(1, ANNA, d(2026, 1, 1)).for_purposes(&[Q])]),
            S::NeverAsked,
        ),
        (
            "a grant for one collection is not the purpose as a whole",
            adult(
                ANNA,
                vec![grant(1, ANNA, d(2026, 1, 1)).scoped(Scope::Collection("events".into()))],
            ),
            S::NeverAsked,
        ),
    ];
    for (name, person, want) in cases {
        let mut people: HashMap<PersonId, Person> = HashMap::new();
        people.insert(GUARD, guard.clone());
        people.insert(person.id, person.clone());
        assert_eq!(purpose_state(&person, &people, P, t), want, "{name}");
    }
}
