//! Drafts made from other photos: a copy, a crop exported under a new name, a file a tool
//! wrote after reading a photo, a backup copy left by a save. Such a draft shows the faces of
//! the persons on the photos it was made from, so their consent must reach it.
//!
//! The rule (also in README, "Drafts"): a draft is visible to its creator in a purpose only
//! while **every person linked to any of its sources** has a standing that would let a photo
//! with them be used for that purpose: for a consent-based purpose a grant in effect, for other
//! bases no objection, refusal or withdrawal. Each person's standing is judged for the source
//! asset (its collection, id and special-category flag, so a consent scoped to that photo or a
//! non-explicit grant for a special-category photo counts exactly as for the source itself).
//! The creator's grants are not re-checked on the sources' folders: a draft lives in the folder
//! where it was made, and its persons, not its origin's folder, decide.
//!
//! Sources without persons (marked `--no-persons`, or unreviewed) add no condition: their
//! content is not known to show anyone. Erasing a person records a withdrawal for every purpose,
//! so drafts made from their photos disappear like the photos.

use super::rules::{candidate_moments, person_allows};
use super::*;

/// `Ok` when the persons of every source of `asset` allow it in `purpose` at `t`, otherwise
/// the first reason against it, naming the source.
pub(super) fn sources_allow(
    asset: &Asset,
    people: &dyn People,
    purpose: &Purpose,
    t: Time,
) -> Result<(), Reason> {
    for source in &asset.derived_from {
        for &pid in &source.persons {
            let cause = match people.person(pid) {
                None => Some(Reason::UnknownPerson { person: pid }),
                Some(person) => person_allows(person, people, source, purpose, t).err(),
            };
            if let Some(cause) = cause {
                return Err(Reason::FromSource {
                    source: source.id,
                    cause: Box::new(cause),
                });
            }
        }
    }
    Ok(())
}

/// The moments the sources' persons' standings change (so a draft's expiry has a timer too).
pub(super) fn source_moments(
    asset: &Asset,
    people: &dyn People,
    purpose: &Purpose,
    now: Time,
) -> Vec<Time> {
    asset
        .derived_from
        .iter()
        .flat_map(|s| candidate_moments(s, people, purpose, now))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32) -> Time {
        Utc.with_ymd_and_hms(2026, 3, day, 0, 0, 0).unwrap()
    }

    fn asset(id: AssetId, status: Status, persons: &[PersonId]) -> Asset {
        Asset {
            id,
            collection: "ev".into(),
            status,
            creator: "dora".into(),
            created_at: at(1),
            no_persons: false,
            special_category: false,
            persons: persons.to_vec(),
            faces: 0,
            faces_reviewed: 0,
            retention_until: None,
            draft_purpose: Some(7),
            derived_from: Vec::new(),
            sidecar_of: None,
        }
    }

    fn event(id: EventId, kind: EventKind, day: u32, until: Option<u32>) -> ConsentEvent {
        ConsentEvent {
            id,
            kind,
            purposes: smallvec::smallvec![7],
            scope: Scope::All,
            starts: at(day),
            expires: until.map(at),
            given_by: 1,
            explicit: false,
        }
    }

    fn world(events: Vec<ConsentEvent>) -> HashMap<PersonId, Person> {
        HashMap::from([(
            1,
            Person {
                id: 1,
                turns_16: None,
                guardians: vec![],
                events,
            },
        )])
    }

    fn dora() -> User {
        User {
            login: "dora".into(),
            grants: vec![Grant {
                purpose: 7,
                prefix: String::new(),
                access: Access::Write,
            }],
        }
    }

    fn website(basis: Basis) -> Purpose {
        Purpose {
            id: 7,
            name: "website".into(),
            basis,
            retention: None,
            art9_exception: false,
        }
    }

    /// A copy of photo 1 (Anna, person 1) as dora's draft 2.
    fn copy() -> Asset {
        let mut d = asset(2, Status::Draft, &[]);
        d.derived_from = vec![asset(1, Status::Active, &[1])];
        d
    }

    #[test]
    fn a_copy_follows_the_consent_of_its_source() {
        let people = world(vec![
            event(1, EventKind::Grant, 2, Some(20)),
            event(2, EventKind::Withdraw, 10, None),
        ]);
        let p = website(Basis::Consent);
        let d = decide(&copy(), &people, &dora(), &p, at(5));
        assert!(d.visible);
        assert_eq!(d.reason, Reason::OwnDraft);
        assert_eq!(d.valid_until, Some(at(10)), "the withdrawal is a timer");
        let d = decide(&copy(), &people, &dora(), &p, at(11));
        assert!(!d.visible);
        assert_eq!(d.reason.code(), "from_source");
        assert_eq!(d.reason.person(), Some(1));
        assert_eq!(
            d.reason.to_string(),
            format!(
                "made from asset 1: person 1 withdrew consent {}",
                at(10).format("%Y-%m-%d %H:%M UTC")
            )
        );
        // without any consent the copy is hidden as well; a draft with no sources is not
        let none = world(vec![]);
        assert!(!decide(&copy(), &none, &dora(), &p, at(5)).visible);
        assert!(decide(&asset(3, Status::Draft, &[]), &none, &dora(), &p, at(5)).visible);
    }

    #[test]
    fn expiry_and_objection_reach_a_copy() {
        let people = world(vec![event(1, EventKind::Grant, 2, Some(8))]);
        let p = website(Basis::Consent);
        assert!(decide(&copy(), &people, &dora(), &p, at(5)).visible);
        let d = decide(&copy(), &people, &dora(), &p, at(9));
        assert!(!d.visible);
        assert_eq!(
            d.reason,
            Reason::FromSource {
                source: 1,
                cause: Box::new(Reason::Expired {
                    person: 1,
                    at: at(8)
                })
            }
        );
        // legitimate interest: shown until an objection
        let li = website(Basis::LegitimateInterest);
        assert!(decide(&copy(), &world(vec![]), &dora(), &li, at(5)).visible);
        let objected = world(vec![event(1, EventKind::Object, 3, None)]);
        assert!(!decide(&copy(), &objected, &dora(), &li, at(5)).visible);
    }

    #[test]
    fn the_source_decides_scope_and_special_category() {
        // a consent for photo 1 only covers its copy too (judged for the source)
        let mut scoped = event(1, EventKind::Grant, 2, None);
        scoped.scope = Scope::Assets(vec![1]);
        let p = website(Basis::Consent);
        assert!(decide(&copy(), &world(vec![scoped]), &dora(), &p, at(5)).visible);
        // a special-category source needs an explicit grant
        let mut special = copy();
        special.derived_from[0].special_category = true;
        let people = world(vec![event(1, EventKind::Grant, 2, None)]);
        let d = decide(&special, &people, &dora(), &p, at(5));
        assert!(!d.visible);
        assert_eq!(d.reason.code(), "from_source");
        // several sources: every one's persons must allow it
        let mut two = copy();
        two.derived_from.push(asset(5, Status::Active, &[9]));
        let d = decide(&two, &people, &dora(), &p, at(5));
        assert!(!d.visible, "person 9 is unknown");
        // someone else still never sees the draft
        let mut eve = dora();
        eve.login = "eve".into();
        assert_eq!(
            decide(&copy(), &people, &eve, &p, at(5)).reason,
            Reason::DraftOfOther
        );
    }
}
