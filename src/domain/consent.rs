//! Recording a consent event (grant, withdrawal, refusal, objection) with its evidence and its
//! audit entry, checked against what the catalog knows: a registered guardian, someone of 16
//! or older, a start not before birth, a withdrawal never retroactive.

use super::Session;
use crate::catalog::assets::{self, normalize_collection};
use crate::catalog::consents::{self, NewEvent};
use crate::catalog::{persons, purposes};
use crate::error::{Error, IoContext, Result};
use crate::policy::{EventKind, Scope, Time};
use crate::when::{self, parse_time};
use serde::Serialize;

/// The largest evidence file kept with a consent (a signed form's scan, an e-mail).
pub const MAX_EVIDENCE: u64 = 64 << 20;

/// Whom an event is about and what it covers, as the officer names them (a person by name,
/// number or reference; purposes comma-separated; a collection prefix or assets).
pub struct Subject<'a> {
    pub person: &'a str,
    /// Purposes, comma-separated.
    pub purposes: &'a str,
    pub collection: Option<&'a str>,
    pub assets: &'a [String],
    /// Who gave it, when not the person themself (a registered guardian).
    pub by: Option<&'a str>,
}

/// When an event starts and (a grant) ends, in whole seconds.
///
/// Worked out before anything else is read (the evidence, the catalog), so that a mistyped
/// time is the first thing reported.
#[derive(Clone, Copy, Debug)]
pub struct Moments {
    pub starts: Time,
    pub expires: Option<Time>,
}

impl Moments {
    /// `starts` and `until` as typed (a date, RFC 3339 or a span). Stored times are whole
    /// seconds, rounded inward: a grant never starts early (its start rounds up) nor ends late
    /// (its end rounds down); a withdrawal never takes effect late (rounds down). Without a
    /// start the event starts at the current second.
    pub fn parse(
        kind: EventKind,
        starts: Option<&str>,
        until: Option<&str>,
        now: Time,
    ) -> Result<Moments> {
        let starts = match starts {
            None => when::round_down(now),
            Some(s) if kind == EventKind::Grant => when::round_up(parse_time(s, now)?),
            Some(s) => when::round_down(not_past(
                &format!("--at for a {}", kind.as_str()),
                parse_time(s, now)?,
                now,
            )?),
        };
        // `--until 1y` counts from the grant's start (its --from), like every span from a moment.
        let expires = until
            .map(|u| parse_time(u, starts).map(when::round_down))
            .transpose()?;
        if let Some(end) = expires {
            if end <= now {
                return Err(Error::invalid(format!(
                    "--until {} lies in the past: this consent would already have ended",
                    when::show(end)
                )));
            }
        }
        Ok(Moments { starts, expires })
    }
}

/// A moment that must not lie in the past (a withdrawal is never retroactive).
fn not_past(what: &str, t: Time, now: Time) -> Result<Time> {
    // a minute of slack for clocks and typing
    if t < now - chrono::Duration::seconds(60) {
        return Err(Error::invalid(format!(
            "{what} {} lies in the past; it cannot be retroactive: omit the time to record it as of now",
            when::show(t)
        )));
    }
    Ok(t.max(now))
}

/// The signed form or e-mail kept (encrypted) with a grant. Opened by the front end, as the
/// user who asked (the daemon must never open a path a caller names on its own authority).
pub struct Evidence {
    pub file: std::fs::File,
    /// The file's name, kept with the consent (shown in lists and reports).
    pub name: String,
    /// The path as the user gave it, for messages.
    pub shown: std::path::PathBuf,
}

/// Open the evidence file at `path`: a regular file only (a FIFO would hang the command, a
/// link could point anywhere its opener can read).
pub fn open_evidence(path: &std::path::Path) -> Result<Evidence> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = crate::files::open_regular(path)?;
    Ok(Evidence {
        file,
        name,
        shown: path.to_path_buf(),
    })
}

/// A recorded event.
#[derive(Serialize, Debug)]
pub struct Recorded {
    pub event: i64,
    #[serde(skip)]
    pub kind: EventKind,
}

/// Record one consent event in one transaction with its audit entry.
///
/// The evidence (up to [`MAX_EVIDENCE`]) is encrypted before the transaction, announced in the
/// intents journal so no sweep takes it for an orphan meanwhile; if anything fails it is
/// removed (here, or by the next command's reap if this one is killed).
pub fn record(
    s: &mut Session,
    kind: EventKind,
    who: &Subject,
    at: Moments,
    explicit: bool,
    evidence: Option<Evidence>,
) -> Result<Recorded> {
    let now = s.now;
    let Moments { starts, expires } = at;
    let mut journal = crate::store::intents::Journal::new(s.store);
    let result = (|| -> Result<i64> {
        let evidence_obj = match evidence {
            Some(mut ev) => {
                let size = ev.file.metadata().at("read evidence", &ev.shown)?.len();
                if size > MAX_EVIDENCE {
                    return Err(Error::invalid(format!(
                        "evidence {} is {size} bytes; at most {MAX_EVIDENCE} bytes (a scan or an e-mail) are kept",
                        ev.shown.display()
                    )));
                }
                let obj = journal.put(s.store, &mut ev.file)?;
                Some((obj, ev.name))
            }
            None => None,
        };
        let tx = s.catalog.begin(s.actor, now)?;
        let person = persons::resolve(&tx, who.person)?;
        if person.name.is_none() {
            return Err(Error::invalid(format!(
                "person #{} was erased; no new consent can be recorded",
                person.id
            )));
        }
        let zone = crate::catalog::zone::get(&tx)?;
        let given_by = match who.by {
            None => person.id,
            Some(g) => {
                let g = persons::resolve(&tx, g)?;
                if g.id != person.id && !person.guardians.contains(&g.id) {
                    return Err(Error::invalid(format!(
                        "#{} is not a registered guardian of #{}; register them first with `consentfs person guardian`",
                        g.id, person.id
                    )));
                }
                if g.id != person.id && kind == EventKind::Grant {
                    if let Some(born) = g.born {
                        if starts < when::sixteenth_birthday(born, &zone) {
                            return Err(Error::invalid(format!(
                                "guardian #{} (born {born}) is under 16 on {}: only someone of 16 or older can consent for another person",
                                g.id,
                                when::show(starts)
                            )));
                        }
                    }
                }
                g.id
            }
        };
        if kind == EventKind::Grant {
            if let Some(born) = person.born {
                let birth = zone.midnight(born).unwrap_or(now);
                if starts < birth {
                    return Err(Error::invalid(format!(
                        "the grant would start {}, before #{} was born ({born}); check --from",
                        when::show(starts),
                        person.id
                    )));
                }
                if given_by == person.id && starts < when::sixteenth_birthday(born, &zone) {
                    return Err(Error::invalid(format!(
                        "#{} is under 16 on {}: only a parent or guardian can consent; record it with --by GUARDIAN",
                        person.id,
                        when::show(starts)
                    )));
                }
            }
        }
        let purposes: Vec<i64> = purposes::resolve_list(&tx, who.purposes)?
            .iter()
            .map(|p| p.id)
            .collect();
        let scope = match (who.collection, who.assets.is_empty()) {
            (Some(_), false) => {
                return Err(Error::invalid(
                    "give either --collection or --asset, not both",
                ))
            }
            (Some(c), true) => Scope::Collection(normalize_collection(c)?),
            (None, false) => {
                let mut ids = Vec::new();
                for a in who.assets {
                    ids.push(assets::resolve(&tx, a)?.id);
                }
                Scope::Assets(ids)
            }
            (None, true) => Scope::All,
        };
        if let Some((obj, _)) = &evidence_obj {
            assets::add_object(&tx, obj)?;
        }
        let id = consents::record(
            &tx,
            &NewEvent {
                person: person.id,
                kind,
                purposes,
                scope,
                starts,
                expires,
                given_by,
                explicit,
                evidence: evidence_obj.as_ref().map(|(o, n)| (o.id, n.clone())),
            },
        )?;
        tx.commit()?;
        Ok(id)
    })();
    if let Err(e) = journal.finish(s.store, s.catalog.conn()) {
        log::warn!("cannot remove an unrecorded evidence object yet: {e}");
    }
    Ok(Recorded {
        event: result?,
        kind,
    })
}
