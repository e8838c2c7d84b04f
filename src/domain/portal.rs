//! Invitations to the consent page (DESIGN.md section 15): who may decide for a person, one
//! link per such decider, and revoking them. The page itself reads an invitation back through
//! [`opened`], which applies the same rules again at every request, so a link dies the moment
//! its decider is no longer entitled (erased, no longer a guardian, the child turned 16).

use super::Session;
use crate::catalog::invitations::{self, Invitation};
use crate::catalog::persons::{self, PersonRow};
use crate::catalog::{purposes, zone};
use crate::error::{Error, Result};
use crate::policy::{Basis, PersonId, Time};
use crate::when::{self, Span};
use base64::Engine;
use rusqlite::Connection;
use serde::Serialize;
use sha2::Digest;

/// How long a link stays valid when the command does not say.
pub const DEFAULT_VALID: &str = "30d";
/// The longest a link may stay valid: a consent page is asked about now, not next year.
pub const MAX_VALID_DAYS: i64 = 366;
/// Random bytes in a token (256 bits; DESIGN.md asks for at least 128).
const TOKEN_BYTES: usize = 32;
/// The longest token the page accepts (a base64url token of [`TOKEN_BYTES`] is 43 characters).
pub const MAX_TOKEN_LEN: usize = 64;

/// One link made by [`invite`] (the only moment its token exists outside the link).
#[derive(Debug, Serialize)]
pub struct Invited {
    /// The invitation's id (for `portal revoke`).
    pub id: i64,
    /// The name of who decides with this link: the person, or a guardian.
    pub decider: String,
    /// The name of the person decided for.
    pub person: String,
    pub url: String,
    pub expires: Time,
    /// The decider's id (to mail the link).
    #[serde(skip)]
    pub decider_id: PersonId,
    /// With `--send`: whether the link was mailed to the decider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailed: Option<bool>,
}

/// Who may decide for `person` at `now`: the person from their 16th birthday on (or when no
/// birth date is recorded: then they are taken to be an adult, as the rules do), otherwise
/// each registered guardian who is 16 or older and not erased.
pub fn deciders(conn: &Connection, person: &PersonRow, now: Time) -> Result<Vec<PersonRow>> {
    if person.name.is_none() {
        return Ok(Vec::new());
    }
    let zone = zone::get(conn)?;
    let is_minor = |p: &PersonRow| {
        p.born
            .is_some_and(|b| now < when::sixteenth_birthday(b, &zone))
    };
    if !is_minor(person) {
        return Ok(vec![person.clone()]);
    }
    let mut out = Vec::new();
    for g in &person.guardians {
        if let Some(g) = persons::get(conn, *g)? {
            if g.name.is_some() && !is_minor(&g) {
                out.push(g);
            }
        }
    }
    Ok(out)
}

/// The SHA-256 of a token, as stored.
pub fn token_hash(token: &str) -> [u8; 32] {
    sha2::Sha256::digest(token.as_bytes()).into()
}

fn new_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(crate::crypto::random_bytes::<TOKEN_BYTES>())
}

/// The page's address as given (`--base-url`): http or https, no query, no fragment.
pub fn check_base_url(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 500
        && !url.contains(['?', '#', ' '])
        && !url.chars().any(char::is_control)
        && url.split("://").nth(1).is_some_and(|h| !h.is_empty());
    if !ok {
        return Err(Error::invalid(format!(
            "--base-url '{url}': give the consent page's address as people reach it, e.g. https://consent.example.org (http or https, no query)"
        )));
    }
    Ok(url.to_string())
}

/// Make one link for each decider of `person` (see [`deciders`]) about `purposes` (names;
/// none: every purpose resting on consent), valid for `valid`. The tokens are returned once
/// and stored only as hashes. Refused for an erased person and for a child without a
/// registered guardian of 16 or older.
///
/// With `send`, mail is configured and every decider has a mail address, or no link is made;
/// each link is mailed after the commit ([`Invited::mailed`] says whether it went out; one
/// that did not is in the answer, to be handed over another way or revoked).
pub fn invite(
    s: &mut Session,
    person: &str,
    purpose_names: &[String],
    valid: &str,
    base_url: &str,
    send: bool,
) -> Result<Vec<Invited>> {
    let base = check_base_url(base_url)?;
    let span = Span::parse(valid)?;
    let tx = s.catalog.begin(s.actor, s.now)?;
    let zone = zone::get(&tx)?;
    let expires = span
        .after_in(s.now, &zone)
        .filter(|e| *e > s.now && (*e - s.now).num_days() <= MAX_VALID_DAYS)
        .ok_or_else(|| {
            Error::invalid(format!(
                "--valid {valid}: a link is valid for at least a second and at most {MAX_VALID_DAYS} days"
            ))
        })?;
    let p = persons::resolve(&tx, person)?;
    let Some(name) = p.name.clone() else {
        return Err(Error::invalid(format!(
            "person {} was erased: nobody is asked about them any more",
            p.id
        )));
    };
    let mut ids = Vec::new();
    for n in purpose_names {
        for pr in purposes::resolve_list(&tx, n)? {
            if pr.basis != Basis::Consent {
                return Err(Error::invalid(format!(
                    "purpose '{}' rests on {}, not on consent: there is nothing to ask",
                    pr.name,
                    pr.basis.as_str()
                )));
            }
            if !ids.contains(&pr.id) {
                ids.push(pr.id);
            }
        }
    }
    let deciders = deciders(&tx, &p, s.now)?;
    if deciders.is_empty() {
        return Err(Error::invalid(format!(
            "{name} is under 16 and has no registered guardian of 16 or older to decide: register one with `consentfs person guardian`"
        )));
    }
    let mailer = if send {
        let named: Vec<(PersonId, String)> = deciders
            .iter()
            .map(|d| (d.id, d.name.clone().unwrap_or_default()))
            .collect();
        Some(super::mail::check_sendable(&tx, &named)?)
    } else {
        None
    };
    let mut out = Vec::new();
    for d in deciders {
        let token = new_token();
        let id = invitations::add(&tx, &token_hash(&token), p.id, d.id, &ids, expires)?;
        tx.audit(
            "portal.invite",
            serde_json::json!({ "invitation": id, "person": p.id, "decider": d.id,
                "purposes": ids, "expires": when::to_secs(expires) }),
        )?;
        out.push(Invited {
            id,
            decider: d.name.clone().unwrap_or_default(),
            person: name.clone(),
            url: format!("{base}/i/{token}"),
            expires,
            decider_id: d.id,
            mailed: None,
        });
    }
    tx.commit()?;
    if let Some(mailer) = mailer {
        let links: Vec<_> = out
            .iter()
            .map(|i| {
                let until = zone.show(i.expires);
                (
                    i.decider_id,
                    i.decider.clone(),
                    i.person.clone(),
                    i.url.clone(),
                    until,
                )
            })
            .collect();
        let sent = super::mail::send_invitations(s.catalog.conn(), &mailer, &links);
        for (i, r) in out.iter_mut().zip(sent) {
            if let Err(e) = &r {
                log::warn!("invitation {}: the link was not mailed: {e}", i.id);
            }
            i.mailed = Some(r.is_ok());
        }
        let mailed: Vec<i64> = out
            .iter()
            .filter(|i| i.mailed == Some(true))
            .map(|i| i.id)
            .collect();
        if !mailed.is_empty() {
            let tx = s.catalog.begin(s.actor, s.now)?;
            tx.audit(
                "portal.mailed",
                serde_json::json!({ "invitations": mailed }),
            )?;
            tx.commit()?;
        }
    }
    Ok(out)
}

/// An invitation's state now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// It opens the page.
    Open,
    Expired,
    Revoked,
    /// Its decider is no longer entitled to decide for the person (the guardian was removed or
    /// erased, or the child turned 16 and decides alone).
    Void,
}

/// An invitation as `portal list` shows it.
#[derive(Debug, Serialize)]
pub struct Listed {
    pub id: i64,
    pub person: String,
    pub decider: String,
    pub purposes: Vec<String>,
    pub created: Time,
    pub expires: Time,
    pub created_by: String,
    pub state: State,
}

/// The state of `inv` at `now` (see [`State`]).
pub fn state(conn: &Connection, inv: &Invitation, now: Time) -> Result<State> {
    if inv.revoked.is_some() {
        return Ok(State::Revoked);
    }
    if now >= inv.expires {
        return Ok(State::Expired);
    }
    let Some(person) = persons::get(conn, inv.person)? else {
        return Ok(State::Void);
    };
    let entitled = deciders(conn, &person, now)?
        .iter()
        .any(|d| d.id == inv.decider);
    Ok(if entitled { State::Open } else { State::Void })
}

/// Every invitation (about `person` only, when given), newest first.
pub fn list(conn: &Connection, person: Option<&str>, now: Time) -> Result<Vec<Listed>> {
    let person = person.map(|p| persons::resolve(conn, p)).transpose()?;
    let names: std::collections::HashMap<i64, String> = purposes::list(conn)?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    let label = |id: PersonId| -> Result<String> {
        Ok(persons::get(conn, id)?.map_or_else(|| format!("#{id}"), |p| p.label()))
    };
    let mut out = Vec::new();
    for inv in invitations::list(conn, person.map(|p| p.id))? {
        out.push(Listed {
            id: inv.id,
            person: label(inv.person)?,
            decider: label(inv.decider)?,
            purposes: inv
                .purposes
                .iter()
                .map(|p| names.get(p).cloned().unwrap_or_else(|| format!("#{p}")))
                .collect(),
            created: inv.created,
            expires: inv.expires,
            created_by: inv.created_by.clone(),
            state: state(conn, &inv, now)?,
        });
    }
    Ok(out)
}

/// Revoke one invitation (`id`) or every open one about `person`; returns how many were
/// revoked. Revoking what is already revoked is not an error (nothing changes).
pub fn revoke(s: &mut Session, id: Option<i64>, person: Option<&str>) -> Result<Vec<i64>> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    let person = person.map(|p| persons::resolve(&tx, p)).transpose()?;
    if let Some(id) = id {
        if invitations::get(&tx, id)?.is_none() {
            return Err(Error::not_found(format!(
                "no invitation {id} (see `consentfs portal list`)"
            )));
        }
    }
    let ids = invitations::revoke(&tx, id, person.map(|p| p.id), None)?;
    if !ids.is_empty() {
        tx.audit("portal.revoke", serde_json::json!({ "invitations": ids }))?;
    }
    tx.commit()?;
    Ok(ids)
}

/// The invitation a token opens at `now`, if it is open (see [`State`]): the one check the
/// page makes at every request. Tokens of an absurd length are not looked up.
pub fn opened(conn: &Connection, token: &str, now: Time) -> Result<Option<Invitation>> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Ok(None);
    }
    let Some(inv) = invitations::by_hash(conn, &token_hash(token))? else {
        return Ok(None);
    };
    Ok((state(conn, &inv, now)? == State::Open).then_some(inv))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{persons as people, tests::new_store};
    use chrono::{Duration, NaiveDate, TimeZone, Utc};

    fn token_of(i: &Invited) -> &str {
        i.url.rsplit('/').next().unwrap()
    }

    /// A link opens the page until it expires, is revoked, or its decider stops being
    /// entitled; a guessed, empty or absurdly long token opens nothing.
    #[test]
    fn a_link_opens_only_while_its_decider_may_decide() {
        let (_d, store, mut catalog) = new_store();
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        let mut s = Session {
            store: &store,
            catalog: &mut catalog,
            actor: "officer",
            now,
        };
        let born = NaiveDate::from_ymd_opt(2014, 3, 1);
        people::add(&mut s, "Tim", born, None, false).unwrap();
        // no guardian yet: nobody to ask
        let e = invite(&mut s, "Tim", &[], "30d", "https://c.example", false).unwrap_err();
        assert!(e.to_string().contains("no registered guardian"), "{e}");
        people::add(&mut s, "Mara", None, None, false).unwrap();
        people::add(&mut s, "Joost", None, None, false).unwrap();
        people::add_guardian(&mut s, "Tim", "Mara").unwrap();
        people::add_guardian(&mut s, "Tim", "Joost").unwrap();
        let links = invite(
            &mut s,
            "Tim",
            &["website".into()],
            "366d",
            "https://c.example/",
            false,
        )
        .unwrap();
        let deciders: Vec<&str> = links.iter().map(|i| i.decider.as_str()).collect();
        assert_eq!(deciders, ["Mara", "Joost"]);
        assert!(links.iter().all(|i| i.person == "Tim"));
        assert!(links[0].url.starts_with("https://c.example/i/"));
        assert!(token_of(&links[0]).len() >= 43);
        assert_ne!(token_of(&links[0]), token_of(&links[1]));
        let (mara, joost) = (token_of(&links[0]), token_of(&links[1]));
        let opens = |s: &Session, t: &str, at| opened(s.catalog.conn(), t, at).unwrap().is_some();
        assert!(opens(&s, mara, now));
        assert!(opens(&s, joost, now));
        // guessed, cut, empty and absurd tokens
        assert!(!opens(&s, &mara[..mara.len() - 1], now));
        assert!(!opens(&s, "", now));
        assert!(!opens(&s, &"A".repeat(100_000), now));
        // expiry: open the second before, closed at it
        let expires = links[0].expires;
        assert!(opens(&s, mara, expires - Duration::seconds(1)));
        assert!(!opens(&s, mara, expires));
        // Joost is no longer a guardian: his link dies, Mara's stays
        people::remove_guardian(&mut s, "Tim", "Joost").unwrap();
        assert!(!opens(&s, joost, now));
        assert!(opens(&s, mara, now));
        let listed = list(s.catalog.conn(), Some("Tim"), now).unwrap();
        let state_of = |who: &str| listed.iter().find(|l| l.decider == who).unwrap().state;
        assert_eq!(state_of("Joost"), State::Revoked);
        assert_eq!(state_of("Mara"), State::Open);
        // Tim turns 16: from that moment he decides alone, and a link his mother got ten days
        // before is void
        let zone = zone::get(s.catalog.conn()).unwrap();
        let sixteen = when::sixteenth_birthday(born.unwrap(), &zone);
        s.now = sixteen - Duration::days(10);
        let late = invite(&mut s, "Tim", &[], "30d", "https://c.example", false).unwrap();
        assert_eq!(late.len(), 1, "Joost is no guardian any more");
        assert!(opens(
            &s,
            token_of(&late[0]),
            sixteen - Duration::seconds(1)
        ));
        assert!(!opens(&s, token_of(&late[0]), sixteen));
        s.now = sixteen;
        let own = invite(&mut s, "Tim", &[], "1d", "https://c.example", false).unwrap();
        assert_eq!(own.len(), 1);
        assert_eq!(own[0].decider, "Tim");
        assert!(opens(&s, token_of(&own[0]), sixteen));
        // revoked by id
        assert_eq!(revoke(&mut s, Some(own[0].id), None).unwrap(), [own[0].id]);
        assert!(!opens(&s, token_of(&own[0]), sixteen));
        // and revoking it again changes nothing
        assert!(revoke(&mut s, Some(own[0].id), None).unwrap().is_empty());
    }

    /// Erasing a person deletes every invitation about them or given to them as a decider.
    #[test]
    fn erasure_deletes_the_invitations_about_and_by_the_person() {
        let (_d, store, mut catalog) = new_store();
        let now = Utc::now();
        let mut s = Session {
            store: &store,
            catalog: &mut catalog,
            actor: "officer",
            now,
        };
        people::add(&mut s, "Anna", None, None, false).unwrap();
        let links = invite(&mut s, "Anna", &[], "30d", "http://127.0.0.1:8080", false).unwrap();
        assert!(opened(s.catalog.conn(), token_of(&links[0]), now)
            .unwrap()
            .is_some());
        let tx = s.catalog.begin("officer", now).unwrap();
        let anna = persons::resolve(&tx, "Anna").unwrap();
        persons::erase(&tx, anna.id).unwrap();
        tx.commit().unwrap();
        assert!(list(s.catalog.conn(), None, now).unwrap().is_empty());
        let left: i64 = s
            .catalog
            .conn()
            .query_row("SELECT count(*) FROM invitation_purposes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
        assert!(opened(s.catalog.conn(), token_of(&links[0]), now)
            .unwrap()
            .is_none());
        // and nobody is asked about an erased person
        let e = invite(
            &mut s,
            &anna.id.to_string(),
            &[],
            "30d",
            "http://x.example",
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("erased"), "{e}");
    }

    /// Every bound: validity between a second and 366 days, an address that is http(s),
    /// purposes that rest on consent.
    #[test]
    fn absurd_values_are_refused() {
        let (_d, store, mut catalog) = new_store();
        let mut s = Session {
            store: &store,
            catalog: &mut catalog,
            actor: "officer",
            now: Utc::now(),
        };
        people::add(&mut s, "Anna", None, None, false).unwrap();
        for valid in [
            "0s",
            "367d",
            "2y",
            "-1d",
            "99999999999999999999d",
            "soon",
            "",
        ] {
            assert!(
                invite(&mut s, "Anna", &[], valid, "https://c.example", false).is_err(),
                "--valid {valid}"
            );
        }
        for url in [
            "c.example",
            "ftp://c.example",
            "https://",
            "https://c.example/?a=1",
            "javascript:alert(1)",
        ] {
            assert!(
                invite(&mut s, "Anna", &[], "1d", url, false).is_err(),
                "--base-url {url}"
            );
        }
        assert!(invite(
            &mut s,
            "Anna",
            &["nonesuch".into()],
            "1d",
            "https://c.example",
            false
        )
        .is_err());
        // nothing was made by any of them
        assert!(list(s.catalog.conn(), None, s.now).unwrap().is_empty());
    }
}
