//! `consentfs import` on the command line (what it does is [`crate::domain::import`]), and the
//! hidden `consentfs generate` for benchmarks.

use super::{output, Ctx};
use crate::catalog::assets;
use crate::domain::import;
use crate::error::Result;
use crate::export::Progress;
use std::path::PathBuf;

/// The import's progress bar on stderr (indicatif draws it only on a terminal), made once the
/// plan is complete and the bytes to read are known: an import refused while planning shows
/// none.
#[derive(Default)]
struct Bar(std::sync::OnceLock<indicatif::ProgressBar>);

impl Progress for Bar {
    fn start(&self, total: u64) {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total),
            indicatif::ProgressDrawTarget::stderr(),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let _ = self.0.set(bar);
    }
    fn advance(&self, bytes: u64) {
        if let Some(b) = self.0.get() {
            b.inc(bytes);
        }
    }
    fn finish(&self) {
        if let Some(b) = self.0.get() {
            b.finish_and_clear();
        }
    }
}

pub fn run(
    ctx: &mut Ctx,
    collection: &str,
    retention: Option<&str>,
    paths: &[PathBuf],
) -> Result<i32> {
    let bar = Bar::default();
    let done = import::import(&mut ctx.session(), collection, retention, paths, &bar)?;
    // every link left out is named, so nothing is missing silently
    for l in &done.skipped_links {
        let line = format!(
            "skipped    {}  a symbolic link; links are not followed",
            l.display()
        );
        if ctx.json {
            eprintln!("consentfs: {line}");
        } else {
            println!("{line}");
        }
    }
    if ctx.json {
        output::json(&done.outcomes)?;
    } else {
        for o in &done.outcomes {
            if let Some(d) = &o.duplicate_of {
                println!(
                    "duplicate  {}  same as asset {} ({d}), not imported again",
                    o.path, o.asset
                );
            }
        }
        let outcomes = &done.outcomes;
        let imported = outcomes.iter().filter(|o| o.duplicate_of.is_none()).count();
        println!(
            "imported {imported} file(s), {:.1} MiB; {} duplicate(s) skipped",
            done.bytes as f64 / 1048576.0,
            outcomes.len() - imported
        );
        if imported > 0 {
            println!("next: link persons with `consentfs link ASSET PERSON...` or mark `--no-persons`; unreviewed photos stay hidden");
        }
    }
    Ok(0)
}

/// Fill the store with a synthetic catalog for benchmarks: `persons` persons (a tenth of them
/// minors with a guardian), `assets` photos in 100 collections linked to 1-3 persons each (one
/// in twenty marked no-persons), `events` consent events, and a user `bench` who may read every
/// default purpose. All assets share one small encrypted object.
///
/// For benchmarks only: it builds the whole catalog in one transaction and so holds the
/// catalog's write lock for as long as that takes (seconds for 100,000 assets); run it on a
/// store nobody else uses at the time.
/// What `consentfs generate` makes.
pub struct GenerateSpec {
    pub assets: usize,
    pub persons: usize,
    pub events: usize,
    pub no_persons_every: usize,
    pub user: String,
}

pub fn generate(ctx: &mut Ctx, spec: GenerateSpec) -> Result<i32> {
    let (n_assets, n_persons, n_events) = (spec.assets, spec.persons, spec.events);
    let every = spec.no_persons_every.max(1);
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let now = crate::when::to_secs(ctx.now);
    let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
    let obj = ctx.store.put(&mut &b"synthetic photo"[..])?;
    let result = (|| -> Result<()> {
        assets::add_object(&tx, &obj)?;
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
                    ctx.actor,
                    now
                ])?;
                ver.execute(rusqlite::params![
                    id,
                    obj.id.hex(),
                    obj.size as i64,
                    now,
                    ctx.actor
                ])?;
                if !no_persons && n_persons > 0 {
                    for _ in 0..rng.gen_range(1..4) {
                        let p = first_person + rng.gen_range(0..n_persons) as i64;
                        link.execute(rusqlite::params![id, p, ctx.actor, now])?;
                    }
                }
            }
        }
        let purposes: Vec<i64> = crate::catalog::purposes::list(&tx)?
            .iter()
            .map(|p| p.id)
            .collect();
        {
            let mut ev = tx.prepare(
                "INSERT INTO consent_events (person_id, kind, scope, starts, expires, given_by, explicit, recorded_by, recorded_at)
                 VALUES (?1, ?2, 'all', ?3, ?4, ?5, 0, ?6, ?7)",
            )?;
            let mut evp = tx.prepare("INSERT OR IGNORE INTO consent_event_purposes (event_id, purpose_id) VALUES (?1, ?2)")?;
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
                    person, kind, starts, expires, by, ctx.actor, now
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
        if crate::catalog::users::resolve(&tx, &spec.user).is_err() {
            // a synthetic catalog may name a login the machine does not know (`bench`):
            // bound to its account if there is one, else to none (no tree in a mount)
            let uid = crate::catalog::users::os_uid(&spec.user)?;
            crate::catalog::users::add_with_uid(&tx, &spec.user, None, uid)?;
        }
        let bench = crate::catalog::users::resolve(&tx, &spec.user)?;
        for p in &purposes {
            crate::catalog::users::grant(&tx, &bench, *p, "", crate::policy::Access::Read)?;
        }
        tx.audit(
            "generate",
            serde_json::json!({ "assets": n_assets, "persons": n_persons, "events": n_events }),
        )?;
        Ok(())
    })();
    match result.and_then(|()| tx.commit()) {
        Ok(()) => {
            eprintln!("generated {n_assets} assets, {n_persons} persons, {n_events} consent events; user '{}' reads all", spec.user);
            Ok(0)
        }
        Err(e) => {
            let _ = ctx.store.remove_object(&obj.id);
            Err(e)
        }
    }
}
