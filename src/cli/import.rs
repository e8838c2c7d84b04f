//! `consentfs import`: encrypt files and directories into the store.
//!
//! Import runs in two phases. The plan walks every input first and rejects the whole import on
//! anything it cannot do (an unreadable file, a non-UTF-8 name, a path that already holds other
//! content), so errors come before a single byte is written. The execution then encrypts each file
//! into a new object and records it; if anything fails half-way the catalog transaction is
//! dropped and the objects already written are removed.

use super::{output, Ctx};
use crate::catalog::assets::{self, check_name, join_path, normalize_collection};
use crate::crypto::object::ObjectId;
use crate::error::{Error, IoContext, Result};
use crate::policy::Status;
use serde::Serialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

struct Planned {
    src: PathBuf,
    collection: String,
    name: String,
    size: u64,
}

#[derive(Serialize)]
struct Outcome {
    path: String,
    /// `imported` or `duplicate`.
    status: &'static str,
    asset: i64,
    /// For a duplicate: the path of the asset that already holds the same bytes.
    duplicate_of: Option<String>,
}

fn utf8_name<'a>(name: &'a std::ffi::OsStr, full: &Path) -> Result<&'a str> {
    name.to_str().ok_or_else(|| {
        Error::invalid(format!(
            "file name of {} is not valid UTF-8; rename it (nothing was imported)",
            full.to_string_lossy()
        ))
    })
}

fn plan_file(src: &Path, collection: &str, name: &str, out: &mut Vec<Planned>) -> Result<()> {
    check_name(name).map_err(|_| {
        Error::invalid(format!(
            "cannot import {}: unusable file name",
            src.display()
        ))
    })?;
    let f = File::open(src).map_err(|e| Error::io_path("read", src, e))?;
    let meta = f.metadata().at("read", src)?;
    out.push(Planned {
        src: src.to_path_buf(),
        collection: collection.to_string(),
        name: name.to_string(),
        size: meta.len(),
    });
    Ok(())
}

fn plan(paths: &[PathBuf], base: &str) -> Result<Vec<Planned>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).at("read", p)?;
        if meta.is_file() {
            let name = p
                .file_name()
                .ok_or_else(|| Error::invalid(format!("{} has no file name", p.display())))?;
            plan_file(p, base, utf8_name(name, p)?, &mut out)?;
        } else if meta.is_dir() {
            let mut entries = Vec::new();
            for entry in walkdir::WalkDir::new(p)
                .follow_links(true)
                .sort_by_file_name()
            {
                let entry = entry.map_err(|e| {
                    let path = e.path().map(Path::to_path_buf).unwrap_or_else(|| p.clone());
                    Error::invalid(format!(
                        "cannot read {}: {e} (nothing was imported)",
                        path.display()
                    ))
                })?;
                if entry.file_type().is_file() {
                    entries.push(entry.into_path());
                }
            }
            for file in entries {
                let rel = file
                    .strip_prefix(p)
                    .map_err(|_| Error::invalid("walked outside the directory"))?;
                let mut parts = Vec::new();
                for c in rel.components() {
                    parts.push(utf8_name(c.as_os_str(), &file)?);
                }
                let name = parts
                    .pop()
                    .ok_or_else(|| Error::invalid("empty relative path"))?;
                let sub = normalize_collection(&parts.join("/"))?;
                plan_file(&file, &join_path(base, &sub), name, &mut out)?;
            }
        } else {
            return Err(Error::invalid(format!(
                "{} is neither a file nor a directory",
                p.display()
            )));
        }
    }
    let mut seen: HashMap<String, &Path> = HashMap::new();
    for item in &out {
        let path = join_path(&item.collection, &item.name);
        if let Some(first) = seen.insert(path.clone(), &item.src) {
            return Err(Error::invalid(format!(
                "{} and {} would both become '{path}'; import them into different collections",
                first.display(),
                item.src.display()
            )));
        }
    }
    Ok(out)
}

/// A reader that advances a progress bar.
struct Counting<'a, R> {
    inner: R,
    bar: &'a indicatif::ProgressBar,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

pub fn run(
    ctx: &mut Ctx,
    collection: &str,
    retention: Option<&str>,
    paths: &[PathBuf],
) -> Result<i32> {
    let base = normalize_collection(collection)?;
    let until = match retention {
        Some(r) => Some(
            crate::when::Span::parse(r)?
                .after(ctx.now)
                .ok_or_else(|| Error::invalid("--retention is out of range"))?,
        ),
        None => None,
    };
    let plan = plan(paths, &base)?;
    // A path that already exists is only acceptable when it holds the very same bytes.
    for item in &plan {
        if let Some(existing) =
            assets::path_taken(ctx.catalog.conn(), &item.collection, &item.name)?
        {
            let hash = ctx
                .store
                .content_hash_of(&mut File::open(&item.src).at("read", &item.src)?)?;
            let same = assets::find_by_content(ctx.catalog.conn(), &hash)?
                .is_some_and(|a| a.id == existing);
            if !same {
                return Err(Error::invalid(format!(
                    "'{}' already exists in the store (asset {existing}) with other content; import into another --collection \
                     (nothing was imported)",
                    join_path(&item.collection, &item.name)
                )));
            }
        }
    }
    let total: u64 = plan.iter().map(|p| p.size).sum();
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
    let mut written: Vec<ObjectId> = Vec::new();
    let result = execute(ctx, &plan, until, &bar, &mut written);
    bar.finish_and_clear();
    let outcomes = match result {
        Ok(o) => o,
        Err(e) => {
            for id in &written {
                let _ = ctx.store.remove_object(id);
            }
            return Err(e);
        }
    };
    if ctx.json {
        output::json(&outcomes)?;
    } else {
        let mut bytes = 0u64;
        for (o, p) in outcomes.iter().zip(&plan) {
            match &o.duplicate_of {
                None => bytes += p.size,
                Some(d) => println!(
                    "duplicate  {}  same as asset {} ({d}), not imported again",
                    o.path, o.asset
                ),
            }
        }
        let imported = outcomes.iter().filter(|o| o.duplicate_of.is_none()).count();
        println!(
            "imported {imported} file(s), {:.1} MiB; {} duplicate(s) skipped",
            bytes as f64 / 1048576.0,
            outcomes.len() - imported
        );
        if imported > 0 {
            println!("next: link persons with `consentfs link ASSET PERSON...` or mark `--no-persons`; unreviewed photos stay hidden");
        }
    }
    Ok(0)
}

fn execute(
    ctx: &mut Ctx,
    plan: &[Planned],
    retention_until: Option<crate::policy::Time>,
    bar: &indicatif::ProgressBar,
    written: &mut Vec<ObjectId>,
) -> Result<Vec<Outcome>> {
    let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
    let mut outcomes = Vec::new();
    let mut batch: HashMap<[u8; 32], (i64, String)> = HashMap::new();
    for item in plan {
        let path = join_path(&item.collection, &item.name);
        let file = File::open(&item.src).at("read", &item.src)?;
        let obj = ctx.store.put(&mut Counting { inner: file, bar })?;
        written.push(obj.id);
        let earlier = match assets::find_by_content(&tx, &obj.content_hash)? {
            Some(a) => Some((a.id, a.path())),
            None => batch.get(&obj.content_hash).cloned(),
        };
        if let Some((asset, dup_path)) = earlier {
            ctx.store.remove_object(&obj.id)?;
            written.pop();
            outcomes.push(Outcome {
                path,
                status: "duplicate",
                asset,
                duplicate_of: Some(dup_path),
            });
            continue;
        }
        let id = assets::add(&tx, &item.collection, &item.name, Status::Active, &obj)?;
        if retention_until.is_some() {
            assets::set_retention(&tx, id, retention_until)?;
        }
        batch.insert(obj.content_hash, (id, path.clone()));
        outcomes.push(Outcome {
            path,
            status: "imported",
            asset: id,
            duplicate_of: None,
        });
    }
    tx.commit()?;
    Ok(outcomes)
}

/// Fill the store with a synthetic catalog for benchmarks: `persons` persons (a tenth of them
/// minors with a guardian), `assets` photos in 100 collections linked to 1-3 persons each (one
/// in twenty marked no-persons), `events` consent events, and a user `bench` who may read every
/// default purpose. All assets share one small encrypted object.
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
            crate::catalog::users::add(&tx, &spec.user, None)?;
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
