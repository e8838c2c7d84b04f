//! The consent rules of DESIGN.md section 3, as a pure function.
//!
//! Nothing in this module does I/O or reads the clock: the caller passes in everything the
//! decision depends on (the asset, the people linked to it, the viewing user, the purpose and the
//! time). That keeps the rules testable case by case and lets the CLI (`ls`, `why`), the mount's
//! view index and exports share one implementation, so they can never disagree.
//!
//! Interpretation choices where DESIGN.md leaves room (also in README.md):
//!
//! * "The latest event at or before t that covers the asset decides": a grant only *covers* at t
//!   when t lies in `[starts, expires)`, so an expired grant does not undo an earlier open-ended
//!   one. A grant that is invalid at t (a minor's own grant, a non-explicit grant for a
//!   special-category photo, a grant by someone who is neither the person nor a guardian) does not
//!   count either: it can neither show the photo nor revoke an earlier valid grant. Events at the
//!   same instant are ordered by the order in which they were recorded (event id).
//! * A withdrawal, refusal or objection also cancels grants recorded before it whose start lies
//!   later ("withdrawn" means no more use, including what was scheduled).
//! * A minor's own grant never counts, not even after their 16th birthday; only a grant given
//!   while the person was 16 or older, or by a registered guardian, does. A guardian's grant
//!   counts only if the guardian was 16 or older when it took effect.
//! * Under 16 means: before 00:00 on the 16th birthday in the store's time zone (29 February
//!   births turn 16 on 28 February in non-leap years). The loader computes that moment
//!   ([`Person::turns_16`], `when::sixteenth_birthday`), so the rules need no time zone.
//! * Special categories (GDPR Art. 9): a photo marked special-category needs an explicit grant
//!   from every linked person in **every** purpose, whatever its Art. 6 basis, unless the
//!   purpose records an Art. 9(2) exception ([`Purpose::art9_exception`]). With an exception, a
//!   consent-based purpose needs ordinary (not necessarily explicit) consent and another basis
//!   needs none, as for any photo.
//! * For a purpose whose basis is not consent, any negative event (objection, refusal,
//!   withdrawal) for that purpose acts as an objection until a later grant lifts it. The grant
//!   must count (given by the person at 16 or older or by a guardian; explicit where the photo
//!   needs explicit consent), and it lifts the objection only while it runs: after a
//!   time-limited grant ends, the objection holds again (the latest event in effect decides, as
//!   for consent).
//! * When no grant counts, the reason names the latest thing the person did: a grant after a
//!   withdrawal, refusal or objection that does not count (not explicit, a minor's own, expired)
//!   is named rather than the negative event before it, so the reason says what to fix.
//! * A purpose's retention term counts from the asset's import time on the store's calendar
//!   (`2y` is two calendar years, as everywhere) and applies whatever the basis. Linked persons take precedence over a "no identifiable persons" mark: once someone is
//!   linked, their consent is needed.
//! * Access levels are ordered: read < write < delete; a write grant also lets the user read.

mod derived;
mod rules;
pub mod thinning;

#[cfg(test)]
mod tests;

#[cfg(test)]
use chrono::Utc;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;

pub use rules::{
    covering_grants, decide, decide_remembering, evaluate_at, purpose_state, retention_end,
    sort_events, PurposeState, UntilMemo,
};

/// A moment in time; all decisions are made in UTC. Defined with the other time types in
/// [`crate::when`], which the rules build on.
pub use crate::when::Time;
pub type PersonId = i64;
pub type AssetId = i64;
pub type PurposeId = i64;
pub type EventId = i64;

/// The legal basis of a purpose (GDPR art. 6). Only `Consent` needs per-person consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    Consent,
    LegitimateInterest,
    Educational,
    Contract,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Consent => "consent",
            Basis::LegitimateInterest => "legitimate-interest",
            Basis::Educational => "educational",
            Basis::Contract => "contract",
        }
    }
    pub fn parse(s: &str) -> Option<Basis> {
        Some(match s {
            "consent" => Basis::Consent,
            "legitimate-interest" => Basis::LegitimateInterest,
            "educational" => Basis::Educational,
            "contract" => Basis::Contract,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Purpose {
    pub id: PurposeId,
    pub name: String,
    pub basis: Basis,
    /// Retention term, counted from the asset's import on the store's calendar.
    pub retention: Option<crate::when::Term>,
    /// The purpose records an Art. 9(2) GDPR exception (e.g. 9(2)(g), substantial public
    /// interest), so special-category photos need no explicit consent in it.
    pub art9_exception: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Grant,
    Withdraw,
    Refuse,
    Object,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Grant => "grant",
            EventKind::Withdraw => "withdraw",
            EventKind::Refuse => "refuse",
            EventKind::Object => "object",
        }
    }
    pub fn parse(s: &str) -> Option<EventKind> {
        Some(match s {
            "grant" => EventKind::Grant,
            "withdraw" => EventKind::Withdraw,
            "refuse" => EventKind::Refuse,
            "object" => EventKind::Object,
            _ => return None,
        })
    }
}

/// Which of a person's photos a consent event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    /// A collection path prefix, matched on whole path components.
    Collection(String),
    Assets(Vec<AssetId>),
}

impl Scope {
    pub fn covers(&self, asset: &Asset) -> bool {
        match self {
            Scope::All => true,
            Scope::Collection(prefix) => prefix_covers(prefix, &asset.collection),
            Scope::Assets(ids) => ids.contains(&asset.sidecar_of.unwrap_or(asset.id)),
        }
    }
}

/// True when `prefix` (a collection path prefix) covers `collection`, on whole path components:
/// `events/2026` covers `events/2026` and `events/2026/may`, not `events/20261`.
pub fn prefix_covers(prefix: &str, collection: &str) -> bool {
    let prefix = prefix.trim_matches('/');
    let collection = collection.trim_matches('/');
    prefix.is_empty()
        || collection == prefix
        || (collection.len() > prefix.len()
            && collection.starts_with(prefix)
            && collection.as_bytes()[prefix.len()] == b'/')
}

/// The purposes an event is for (inline up to two: a million-photo catalog holds hundreds of
/// thousands of events, and a vector of its own for each was a tenth of the index's memory).
pub type Purposes = smallvec::SmallVec<[PurposeId; 2]>;

#[derive(Debug, Clone)]
pub struct ConsentEvent {
    pub id: EventId,
    pub kind: EventKind,
    pub purposes: Purposes,
    pub scope: Scope,
    /// When the event takes effect (a grant's start, a withdrawal's moment).
    pub starts: Time,
    /// End of a grant (exclusive); `None` is open-ended.
    pub expires: Option<Time>,
    /// Who gave (or withdrew) it: the person themself or a guardian.
    pub given_by: PersonId,
    pub explicit: bool,
}

#[derive(Debug, Clone)]
pub struct Person {
    pub id: PersonId,
    /// The moment the person turns 16 (local midnight on the 16th birthday in the store's time
    /// zone); `None` when the birth date is unknown (treated as an adult).
    pub turns_16: Option<Time>,
    pub guardians: Vec<PersonId>,
    /// The person's append-only consent history, in any order.
    pub events: Vec<ConsentEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Draft,
    Trash,
    /// Crypto-shredded, or a draft merged into another asset: gone for good.
    Purged,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Draft => "draft",
            Status::Trash => "trash",
            Status::Purged => "purged",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "active" => Status::Active,
            "draft" => Status::Draft,
            "trash" => Status::Trash,
            "purged" => Status::Purged,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Asset {
    pub id: AssetId,
    /// Collection path, e.g. `events/2026`; empty for the root.
    pub collection: String,
    pub status: Status,
    /// OS login of whoever imported or created it.
    pub creator: String,
    pub created_at: Time,
    pub no_persons: bool,
    pub special_category: bool,
    pub persons: Vec<PersonId>,
    /// Faces that face detection found on the photo (its latest scan; 0 if never scanned).
    /// Like links, an input: the rules compare it with the persons linked.
    pub faces: u16,
    /// Detected faces a reviewer declared not recognisable (`mark --faces-reviewed`).
    pub faces_reviewed: u16,
    pub retention_until: Option<Time>,
    /// For a draft: the purpose folder it was created in, the only place it shows.
    pub draft_purpose: Option<PurposeId>,
    /// For a draft: the assets its content came from (copied, or read by the tool that wrote
    /// it), each with its own persons and flags; empty for other assets. See `derived.rs`.
    pub derived_from: Vec<Asset>,
    /// For a sidecar (an XMP file beside a photo): the photo it belongs to. Its other inputs
    /// are the photo's; a consent scoped to assets names photos, and covers their sidecars.
    pub sidecar_of: Option<AssetId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Read,
    Write,
    Delete,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Delete => "delete",
        }
    }
    pub fn parse(s: &str) -> Option<Access> {
        Some(match s {
            "read" => Access::Read,
            "write" => Access::Write,
            "delete" => Access::Delete,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Grant {
    pub purpose: PurposeId,
    pub prefix: String,
    pub access: Access,
}

#[derive(Debug, Clone)]
pub struct User {
    pub login: String,
    pub grants: Vec<Grant>,
}

impl User {
    /// The strongest access this user has to `collection` in `purpose`, if any.
    pub fn access(&self, purpose: PurposeId, collection: &str) -> Option<Access> {
        self.grants
            .iter()
            .filter(|g| g.purpose == purpose && prefix_covers(&g.prefix, collection))
            .map(|g| g.access)
            .max()
    }
}

/// Where the rules look up the persons linked to an asset.
pub trait People {
    fn person(&self, id: PersonId) -> Option<&Person>;
}

impl People for HashMap<PersonId, Person> {
    fn person(&self, id: PersonId) -> Option<&Person> {
        self.get(&id)
    }
}

/// Why an asset is or is not visible. Persons are named by id; callers resolve names.
/// `GuardianMinor`: the grant was given by a registered guardian (`by`) who was under 16 at its
/// start. `NoExplicitConsent`: a special-category photo in a purpose not based on consent and
/// without an Art. 9(2) exception, with no explicit grant at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    // visible
    Consented,
    NoPersons,
    Basis {
        basis: Basis,
    },
    OwnDraft,
    // hidden
    /// A draft made from `source` is hidden because `source`'s persons do not allow it.
    FromSource {
        source: AssetId,
        cause: Box<Reason>,
    },
    NoGrant,
    Trashed,
    DraftOfOther,
    RetentionEnded {
        at: Time,
    },
    Unreviewed,
    /// Face detection found more faces than persons are linked, and a reviewer has not
    /// declared the rest not recognisable: an unlinked bystander could be on it.
    UnlinkedFaces {
        faces: u16,
        linked: u16,
    },
    UnknownPerson {
        person: PersonId,
    },
    NoConsent {
        person: PersonId,
    },
    NotYetStarted {
        person: PersonId,
        from: Time,
    },
    Expired {
        person: PersonId,
        at: Time,
    },
    Withdrawn {
        person: PersonId,
        at: Time,
    },
    Refused {
        person: PersonId,
        at: Time,
    },
    Objected {
        person: PersonId,
        at: Time,
    },
    OwnGrantOfMinor {
        person: PersonId,
    },
    NotExplicit {
        person: PersonId,
    },
    NotByGuardian {
        person: PersonId,
    },
    GuardianMinor {
        person: PersonId,
        by: PersonId,
    },
    NoExplicitConsent {
        person: PersonId,
    },
}

impl Reason {
    /// The person the reason is about, if any (so callers can print a name).
    pub fn person(&self) -> Option<PersonId> {
        use Reason::*;
        match self {
            FromSource { cause, .. } => cause.person(),
            UnknownPerson { person }
            | NoConsent { person }
            | NotYetStarted { person, .. }
            | Expired { person, .. }
            | Withdrawn { person, .. }
            | Refused { person, .. }
            | Objected { person, .. }
            | OwnGrantOfMinor { person }
            | NotExplicit { person }
            | NotByGuardian { person }
            | GuardianMinor { person, .. }
            | NoExplicitConsent { person } => Some(*person),
            _ => None,
        }
    }

    /// The reason as text, with `who` naming the person the reason is about.
    pub fn describe(&self, who: &str) -> String {
        use Reason::*;
        let day = |t: &Time| crate::when::show(*t);
        match self {
            Consented => "every person on it has consented to this purpose".into(),
            NoPersons => "marked as showing no identifiable persons".into(),
            Basis { basis } => format!("purpose rests on {}, no objection", basis.as_str()),
            OwnDraft => "your own draft".into(),
            FromSource { source, cause } => {
                format!("made from asset {source}: {}", cause.describe(who))
            }
            NoGrant => "user has no grant for this purpose on this collection".into(),
            Trashed => "in the trash".into(),
            DraftOfOther => "someone else's draft".into(),
            RetentionEnded { at } => format!("retention term ended {}", day(at)),
            Unreviewed => "not reviewed: no persons linked and not marked --no-persons".into(),
            UnlinkedFaces { faces, linked } => format!(
                "not reviewed: {faces} face(s) detected, {linked} accounted for; link each face (`link ASSET PERSON --face N`) or declare the rest not recognisable (`mark ASSET --faces-reviewed`)"
            ),
            UnknownPerson { .. } => format!("linked person {who} is not in the catalog"),
            NoConsent { .. } => format!("no consent from {who} for this purpose"),
            NotYetStarted { from, .. } => format!("consent of {who} starts {}", day(from)),
            Expired { at, .. } => format!("consent of {who} expired {}", day(at)),
            Withdrawn { at, .. } => format!("{who} withdrew consent {}", day(at)),
            Refused { at, .. } => format!("{who} refused consent {}", day(at)),
            Objected { at, .. } => format!("{who} objected {}", day(at)),
            OwnGrantOfMinor { .. } => {
                format!("{who} is under 16: only a guardian's grant counts")
            }
            NotExplicit { .. } => {
                format!("special-category photo needs an explicit grant from {who}")
            }
            NotByGuardian { .. } => {
                format!("grant for {who} was given by someone who is not a registered guardian")
            }
            GuardianMinor { by, .. } => format!(
                "grant for {who} was given by guardian #{by} while they were under 16; it does not count"
            ),
            NoExplicitConsent { .. } => format!(
                "special-category photo needs explicit consent from {who}: this purpose records no Art. 9(2) exception"
            ),
        }
    }

    /// A short machine-friendly code (`withdrawn`, `no_consent`, ...).
    pub fn code(&self) -> &'static str {
        use Reason::*;
        match self {
            Consented => "consented",
            NoPersons => "no_persons",
            Basis { .. } => "basis",
            OwnDraft => "own_draft",
            FromSource { .. } => "from_source",
            NoGrant => "no_grant",
            Trashed => "trashed",
            DraftOfOther => "draft_of_other",
            RetentionEnded { .. } => "retention_ended",
            Unreviewed => "unreviewed",
            UnlinkedFaces { .. } => "unlinked_faces",
            UnknownPerson { .. } => "unknown_person",
            NoConsent { .. } => "no_consent",
            NotYetStarted { .. } => "not_yet_started",
            Expired { .. } => "expired",
            Withdrawn { .. } => "withdrawn",
            Refused { .. } => "refused",
            Objected { .. } => "objected",
            OwnGrantOfMinor { .. } => "own_grant_of_minor",
            NotExplicit { .. } => "not_explicit",
            NotByGuardian { .. } => "not_by_guardian",
            GuardianMinor { .. } => "guardian_minor",
            NoExplicitConsent { .. } => "no_explicit_consent",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = self
            .person()
            .map(|p| format!("person {p}"))
            .unwrap_or_default();
        f.write_str(&self.describe(&who))
    }
}

/// The outcome of the rules for one (asset, user, purpose) at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub visible: bool,
    pub reason: Reason,
    /// The next moment the visibility changes by time alone (an expiry, a grant taking effect,
    /// a 16th birthday, a retention term ending); `None` when nothing time-bound is pending.
    pub valid_until: Option<Time>,
}
