//! What the consent page shows a decider and what it records for them (DESIGN.md section 15).
//! The page is a front end like the command line: every decision is recorded by
//! [`super::consent::record`], the code `consentfs consent grant|withdraw|refuse` runs, so the
//! mount, exports and reports follow it at once. Everything here starts from the invitations
//! of the decider's session, checked again at every call ([`super::portal::opened`] rules), and
//! shows nothing about any other person: not their names, not their number, not their ids.

use super::consent::{self, Evidence, Moments, Subject};
use super::portal;
use super::Session;
use crate::catalog::invitations::{self, Invitation};
use crate::catalog::purposes::{self, Audience};
use crate::catalog::{assets, persons, snapshot};
use crate::error::{Error, Result};
use crate::policy::{self, Basis, EventKind, PersonId, PurposeState, Status, Time};
use rusqlite::Connection;
use serde::Serialize;
use sha2::Digest;

/// The longest name a decider may type when signing.
pub const MAX_SIGNED_NAME: usize = 200;
/// The longest user agent kept with a decision.
const MAX_USER_AGENT: usize = 400;
use crate::rendition::MAX_SOURCE_BYTES;

/// One purpose as the page shows it for one person.
#[derive(Debug, Serialize)]
pub struct PurposeView {
    pub purpose: String,
    pub description: Option<String>,
    /// The text the decider reads and ticks: the description, or a plain sentence.
    pub text: String,
    /// The SHA-256 of the text the decider ticks (the description, or the sentence used when
    /// there is none), hex: the page sends it back with a grant, so a text changed meanwhile
    /// is refused rather than signed unseen.
    pub text_sha256: String,
    #[serde(flatten)]
    pub state: PurposeState,
}

/// One photo as the page offers it.
#[derive(Debug, Serialize)]
pub struct PhotoView {
    pub id: i64,
    /// The purposes with audience `subjects` in which this photo may be downloaded by the
    /// persons on it and their guardians now.
    pub downloads: Vec<String>,
}

/// One person the decider decides for.
#[derive(Debug, Serialize)]
pub struct PersonView {
    pub id: PersonId,
    pub name: String,
    /// The decider is a guardian (not the person themself).
    pub as_guardian: bool,
    pub photos: Vec<PhotoView>,
    pub consents: Vec<PurposeView>,
}

/// What a session may see and do.
#[derive(Debug, Serialize)]
pub struct Me {
    pub decider: String,
    pub persons: Vec<PersonView>,
    /// Persons a guardian was invited for who turned 16 since: they decide alone now (named,
    /// since the guardian was invited for them).
    pub decide_alone: Vec<String>,
}

/// The invitations behind a session that are open at `now` (see [`portal::State`]), and the
/// names of persons whose guardian's invitation became void because they turned 16.
pub fn open_invitations(
    conn: &Connection,
    ids: &[i64],
    now: Time,
) -> Result<(Vec<Invitation>, Vec<String>)> {
    let mut open = Vec::new();
    let mut alone = Vec::new();
    for id in ids {
        let Some(inv) = invitations::get(conn, *id)? else {
            continue;
        };
        match portal::state(conn, &inv, now)? {
            portal::State::Open => open.push(inv),
            portal::State::Void => {
                // void because the person now decides alone (not erased, not removed)
                if let Some(p) = persons::get(conn, inv.person)? {
                    let deciders = portal::deciders(conn, &p, now)?;
                    if inv.decider != inv.person
                        && p.guardians.contains(&inv.decider)
                        && deciders.iter().any(|d| d.id == p.id)
                    {
                        alone.push(p.label());
                    }
                }
            }
            _ => {}
        }
    }
    Ok((open, alone))
}

/// The text a decider ticks for `purpose` about `person`: the purpose's description, or a plain
/// sentence when it has none.
fn consent_text(person: &str, p: &purposes::PurposeText) -> String {
    match &p.description {
        Some(d) => d.clone(),
        None => format!(
            "I agree that photos of {person} may be used for \"{}\".",
            p.name
        ),
    }
}

fn sha256_hex(text: &str) -> String {
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// The purposes an invitation asks about: its own, or every purpose resting on consent.
fn asked(conn: &Connection, inv: &Invitation) -> Result<Vec<purposes::PurposeText>> {
    let consent_based: Vec<i64> = purposes::list(conn)?
        .into_iter()
        .filter(|p| p.basis == Basis::Consent)
        .map(|p| p.id)
        .collect();
    Ok(purposes::texts(conn)?
        .into_iter()
        .filter(|t| consent_based.contains(&t.id))
        .filter(|t| inv.purposes.is_empty() || inv.purposes.contains(&t.id))
        .collect())
}

/// What the page shows for the open invitations `open` (of one decider) at `now`.
pub fn me(conn: &Connection, open: &[Invitation], alone: Vec<String>, now: Time) -> Result<Me> {
    let mut decider = String::new();
    let mut out: Vec<PersonView> = Vec::new();
    for inv in open {
        if let Some(d) = persons::get(conn, inv.decider)? {
            decider = d.label();
        }
        let Some(p) = persons::get(conn, inv.person)? else {
            continue;
        };
        let name = p.label();
        let people = snapshot::Persons(snapshot::persons_among(conn, &[p.id])?);
        let Some(person) = people.0.get(&p.id) else {
            continue;
        };
        let mut consents = Vec::new();
        for t in asked(conn, inv)? {
            if let Some(existing) = out.iter_mut().find(|v| v.id == p.id) {
                if existing.consents.iter().any(|c| c.purpose == t.name) {
                    continue;
                }
            }
            let text = consent_text(&name, &t);
            consents.push(PurposeView {
                purpose: t.name.clone(),
                description: t.description.clone(),
                text_sha256: sha256_hex(&text),
                text,
                state: policy::purpose_state(person, &people, t.id, now),
            });
        }
        if let Some(existing) = out.iter_mut().find(|v| v.id == p.id) {
            existing.consents.extend(consents);
            continue;
        }
        let mut photos = Vec::new();
        for a in assets::linked_to(conn, p.id)? {
            let Some(row) = assets::get(conn, a)? else {
                continue;
            };
            if row.status != Status::Active || row.companion_of.is_some() {
                continue;
            }
            photos.push(PhotoView {
                id: a,
                downloads: downloadable_in(conn, &row, now)?,
            });
        }
        out.push(PersonView {
            id: p.id,
            name,
            as_guardian: inv.decider != inv.person,
            photos,
            consents,
        });
    }
    Ok(Me {
        decider,
        persons: out,
        decide_alone: alone,
    })
}

/// The purposes with audience `subjects` in which `asset` may be handed to the persons on it
/// now: the rules as for anyone with a grant on every collection of that purpose (every person
/// on it consents, it was reviewed, its retention has not ended).
fn downloadable_in(conn: &Connection, asset: &assets::AssetRow, now: Time) -> Result<Vec<String>> {
    let texts = purposes::texts(conn)?;
    let subjects: Vec<&purposes::PurposeText> = texts
        .iter()
        .filter(|t| t.audience == Audience::Subjects)
        .collect();
    if subjects.is_empty() {
        return Ok(Vec::new());
    }
    let people = snapshot::Persons(snapshot::persons_among(conn, &asset.persons)?);
    let input = asset.to_policy();
    let mut out = Vec::new();
    for t in subjects {
        let p = purposes::resolve(conn, &t.id.to_string())?;
        let anyone = policy::User {
            login: String::new(),
            grants: vec![policy::Grant {
                purpose: p.id,
                prefix: String::new(),
                access: policy::Access::Read,
            }],
        };
        if policy::decide(&input, &people, &anyone, &p.to_policy(), now).visible {
            out.push(t.name.clone());
        }
    }
    Ok(out)
}

/// The open invitation under which `asset` may be downloaded in `purpose` now (its audience is
/// `subjects`, a person on it is one the session decides for, and the rules allow it), if any.
pub fn may_download<'i>(
    conn: &Connection,
    open: &'i [Invitation],
    asset: i64,
    purpose: &str,
    now: Time,
) -> Result<Option<&'i Invitation>> {
    let Some(row) = assets::get(conn, asset)? else {
        return Ok(None);
    };
    if row.status != Status::Active || row.companion_of.is_some() {
        return Ok(None);
    }
    let Some(inv) = open.iter().find(|i| row.persons.contains(&i.person)) else {
        return Ok(None);
    };
    let ok = downloadable_in(conn, &row, now)?
        .iter()
        .any(|p| p == purpose);
    Ok(ok.then_some(inv))
}

/// Whether `asset` is a photo of a person an open invitation of the session is about (only
/// those are ever shown).
pub fn may_see<'i>(
    conn: &Connection,
    open: &'i [Invitation],
    asset: i64,
) -> Result<Option<&'i Invitation>> {
    let Some(row) = assets::get(conn, asset)? else {
        return Ok(None);
    };
    if row.status != Status::Active || row.companion_of.is_some() {
        return Ok(None);
    }
    Ok(open.iter().find(|i| row.persons.contains(&i.person)))
}

/// The current version of `asset`, decrypted into memory (previews and downloads), with its
/// name. Refused above [`MAX_SOURCE_BYTES`].
pub fn read_photo(s: &Session, asset: i64) -> Result<(Vec<u8>, String)> {
    let a = assets::get(s.catalog.conn(), asset)?
        .filter(|a| a.status == Status::Active)
        .ok_or_else(|| Error::not_found(format!("no photo {asset}")))?;
    let (obj, _) = super::cat::open_version(s.store, s.catalog.conn(), &a, None)?;
    if obj.len() > MAX_SOURCE_BYTES {
        return Err(Error::invalid(format!(
            "photo {asset} is larger than {MAX_SOURCE_BYTES} bytes: no preview is made of it"
        )));
    }
    let mut bytes = vec![0u8; obj.len() as usize];
    // (read_at fills the whole buffer, chunk by chunk, each authenticated)
    let n = obj.read_at(&mut bytes, 0)?;
    bytes.truncate(n);
    Ok((bytes, a.name))
}

/// What a decider asks for one person and purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Give,
    Refuse,
    Withdraw,
}

/// Where a decision came from, kept with it as evidence.
pub struct Channel<'a> {
    pub ip: &'a str,
    pub user_agent: &'a str,
}

/// Record `action` for `person` and `purpose` (a name) under one of the open invitations
/// `open`, as a consent event with a JSON document of how it was made (the portal, the
/// invitation, the text and its hash, the typed name, time, address and browser) as its
/// evidence. A grant needs the typed name and the hash of the text the decider saw. Returns
/// the event's id (its receipt is `receipt::receipt`).
#[allow(clippy::too_many_arguments)]
pub fn decide(
    s: &mut Session,
    open: &[Invitation],
    person: PersonId,
    purpose: &str,
    action: Action,
    signed_name: Option<&str>,
    text_sha256: Option<&str>,
    channel: Channel,
) -> Result<i64> {
    let conn = s.catalog.conn();
    let inv = open
        .iter()
        .find(|i| i.person == person)
        .ok_or_else(|| Error::not_found("you cannot decide for this person"))?;
    let p = persons::get(conn, person)?
        .filter(|p| p.name.is_some())
        .ok_or_else(|| Error::not_found("you cannot decide for this person"))?;
    let t = asked(conn, inv)?
        .into_iter()
        .find(|t| t.name == purpose)
        .ok_or_else(|| Error::not_found("this invitation does not ask about that purpose"))?;
    let text = consent_text(&p.label(), &t);
    let hash = sha256_hex(&text);
    let signed = match action {
        Action::Give => {
            let name = signed_name.map(str::trim).unwrap_or_default();
            if name.is_empty()
                || name.chars().count() > MAX_SIGNED_NAME
                || name.chars().any(char::is_control)
            {
                return Err(Error::invalid(format!(
                    "type your name (1 to {MAX_SIGNED_NAME} characters) to give consent"
                )));
            }
            // (the page always sends the hash of the text it showed; a script that sends none
            // signs the text as it is now, which the evidence records)
            if text_sha256.is_some_and(|h| h != hash) {
                return Err(Error::invalid(
                    "the text of this purpose changed since the page was loaded: read it again",
                ));
            }
            Some(name.to_string())
        }
        _ => None,
    };
    let kind = match action {
        Action::Give => EventKind::Grant,
        Action::Refuse => EventKind::Refuse,
        Action::Withdraw => EventKind::Withdraw,
    };
    let ua: String = channel
        .user_agent
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_USER_AGENT)
        .collect();
    let doc = serde_json::json!({
        "channel": "portal",
        "invitation": inv.id,
        "action": kind.as_str(),
        "purpose": t.name,
        "text": if action == Action::Give { Some(&text) } else { None },
        "text_sha256": hash,
        "signed_name": signed,
        "at": crate::when::to_secs(s.now),
        "ip": channel.ip,
        "user_agent": ua,
    });
    let mut file =
        tempfile::tempfile().map_err(|e| Error::io("cannot make the decision's evidence", e))?;
    {
        use std::io::{Seek, Write};
        serde_json::to_writer_pretty(&mut file, &doc)
            .map_err(|e| Error::io("cannot write the decision's evidence", e.into()))?;
        file.flush()
            .and_then(|()| file.rewind())
            .map_err(|e| Error::io("cannot write the decision's evidence", e))?;
    }
    let person_id = person.to_string();
    let decider_id = inv.decider.to_string();
    let subject = Subject {
        person: &person_id,
        purposes: &t.name,
        collection: None,
        assets: &[],
        by: (inv.decider != inv.person).then_some(decider_id.as_str()),
    };
    let at = Moments::parse(kind, None, None, s.now)?;
    let recorded = consent::record(
        s,
        kind,
        &subject,
        at,
        action == Action::Give,
        Some(Evidence {
            file,
            name: format!("portal-{}.json", kind.as_str()),
            shown: std::path::PathBuf::from("(consent page)"),
        }),
    )?;
    Ok(recorded.event)
}

/// Record a download of `asset` by a decider (its person's access report lists it).
pub fn record_download(s: &mut Session, inv: &Invitation, asset: i64, purpose: &str) -> Result<()> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let purpose = purposes::resolve(&tx, purpose)?.id;
    tx.audit(
        "portal.download",
        serde_json::json!({ "asset": asset, "invitation": inv.id, "person": inv.person,
            "decider": inv.decider, "purpose": purpose }),
    )?;
    tx.commit()
}

/// Record that a decider was shown previews of `asset` (once per session and photo).
pub fn record_preview(s: &mut Session, inv: &Invitation, asset: i64) -> Result<()> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    tx.audit(
        "portal.preview",
        serde_json::json!({ "asset": asset, "invitation": inv.id, "person": inv.person,
            "decider": inv.decider }),
    )?;
    tx.commit()
}
