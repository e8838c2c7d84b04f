//! A synthetic catalog for benchmarks (`consentfs generate`): persons, photos, links, consent
//! events and a reading user, inserted in bulk in one transaction.

use super::assets;
use super::Tx;
use crate::error::Result;
use crate::store::NewObject;

/// What to make.
pub struct Spec {
    pub assets: usize,
    pub persons: usize,
    pub events: usize,
    /// Every N-th asset is marked "no identifiable persons" (1: all of them).
    pub no_persons_every: usize,
    /// The login that gets a read grant on every purpose.
    pub user: String,
}

/// Fill the catalog in `tx`: `persons` persons (a tenth of them minors with a guardian),
/// `assets` photos in 100 collections linked to 1-3 persons each, `events` consent events, and
/// the user `spec.user` who may read every purpose. Every asset is the one object `obj`. The
/// same spec gives the same catalog (a fixed seed).
pub fn fill(tx: &Tx, obj: &NewObject, spec: &Spec, actor: &str) -> Result<()> {
    let (n_assets, n_persons, n_events) = (spec.assets, spec.persons, spec.events);
    let every = spec.no_persons_every.max(1);
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let now = crate::when::to_secs(tx.now());
    assets::add_object(tx, obj)?;
    let first_person: i64 =
        tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM persons", [], |r| {
            r.get(0)
        })?;
    {
        let mut ins = tx.prepare(
            "INSERT INTO persons (name, born, pseudonym, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut guard =
            tx.prepare("INSERT INTO guardians (person_id, guardian_id) VALUES (?1, ?2)")?;
        for i in 0..n_persons {
            let minor = i % 10 == 0;
            let year = if minor {
                rng.gen_range(2011..2020)
            } else {
                rng.gen_range(1950..2008)
            };
            let born = format!(
                "{year}-{:02}-{:02}",
                rng.gen_range(1..13),
                rng.gen_range(1..29)
            );
            ins.execute(rusqlite::params![
                format!("Person {i}"),
                born,
                format!("p-gen{i}"),
                now
            ])?;
            if minor && i > 0 {
                guard.execute(rusqlite::params![
                    first_person + i as i64,
                    first_person + i as i64 - 1
                ])?;
            }
        }
    }
    let first_asset: i64 =
        tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM assets", [], |r| {
            r.get(0)
        })?;
    {
        let mut ins = tx.prepare(
                "INSERT INTO assets (collection, name, no_persons, status, creator, created_at) VALUES (?1, ?2, ?3, 'active', ?4, ?5)",
            )?;
        let mut ver = tx.prepare(
                "INSERT INTO versions (asset_id, version, object_id, size, created_at, created_by) VALUES (?1, 1, ?2, ?3, ?4, ?5)",
            )?;
        let mut link = tx.prepare(
                "INSERT OR IGNORE INTO links (asset_id, person_id, linked_by, linked_at) VALUES (?1, ?2, ?3, ?4)",
            )?;
        for i in 0..n_assets {
            let id = first_asset + i as i64;
            let no_persons = i % every == 0;
            ins.execute(rusqlite::params![
                format!("gen/c{:02}", i % 100),
                format!("img{i:06}.jpg"),
                no_persons,
                actor,
                now
            ])?;
            ver.execute(rusqlite::params![
                id,
                obj.id.hex(),
                obj.size as i64,
                now,
                actor
            ])?;
            if !no_persons && n_persons > 0 {
                for _ in 0..rng.gen_range(1..4) {
                    let p = first_person + rng.gen_range(0..n_persons) as i64;
                    link.execute(rusqlite::params![id, p, actor, now])?;
                }
            }
        }
    }
    let purposes: Vec<i64> = super::purposes::list(tx)?.iter().map(|p| p.id).collect();
    {
        let mut ev = tx.prepare(
                "INSERT INTO consent_events (person_id, kind, scope, starts, expires, given_by, explicit, recorded_by, recorded_at)
                 VALUES (?1, ?2, 'all', ?3, ?4, ?5, 0, ?6, ?7)",
            )?;
        let mut evp = tx.prepare(
            "INSERT OR IGNORE INTO consent_event_purposes (event_id, purpose_id) VALUES (?1, ?2)",
        )?;
        for i in 0..n_events {
            if n_persons == 0 {
                break;
            }
            let person = first_person + (i % n_persons) as i64;
            let minor = (person - first_person) % 10 == 0 && person > first_person;
            let kind = if i < n_persons || rng.gen_bool(0.7) {
                "grant"
            } else if rng.gen_bool(0.7) {
                "withdraw"
            } else {
                "refuse"
            };
            let starts = now - rng.gen_range(0..3 * 365 * 86_400);
            let expires: Option<i64> = (kind == "grant" && rng.gen_bool(0.3))
                .then(|| now + rng.gen_range(-365..5 * 365) * 86_400);
            let by = if minor { person - 1 } else { person };
            ev.execute(rusqlite::params![
                person, kind, starts, expires, by, actor, now
            ])?;
            let e = tx.last_insert_rowid();
            for p in &purposes {
                if rng.gen_bool(0.6) {
                    evp.execute(rusqlite::params![e, p])?;
                }
            }
            evp.execute(rusqlite::params![e, purposes[i % purposes.len().max(1)]])?;
        }
    }
    if super::users::resolve(tx, &spec.user).is_err() {
        // a synthetic catalog may name a login the machine does not know (`bench`):
        // bound to its account if there is one, else to none (no tree in a mount)
        let uid = super::users::os_uid(&spec.user)?;
        super::users::add_with_uid(tx, &spec.user, None, uid)?;
    }
    let bench = super::users::resolve(tx, &spec.user)?;
    for p in &purposes {
        super::users::grant(tx, &bench, *p, "", crate::policy::Access::Read)?;
    }
    tx.audit(
        "generate",
        serde_json::json!({ "assets": n_assets, "persons": n_persons, "events": n_events }),
    )?;
    Ok(())
}
