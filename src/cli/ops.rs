//! `status`, `check`, `backup`, `passphrase` and `key-file`: the command-line face of
//! [`crate::maintenance`] (parsing and printing only).

use super::{output, Ctx};
use crate::catalog::maintenance::ObjectUse;
use crate::crypto::keyring;
use crate::error::Error;
use crate::error::Result;
use crate::maintenance::keys::{self, Change};
use crate::maintenance::{backup, check, status, Progress, Quiet};
use crate::when;
use clap::Subcommand;
use std::io::IsTerminal;
use std::path::Path;
use std::path::PathBuf;

/// A progress bar on stderr (only on a terminal, and not for `--json`).
struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

fn bar(json: bool, what: &str) -> Option<Bar> {
    if json || !std::io::stderr().is_terminal() {
        return None;
    }
    let b =
        indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    b.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{bar:40}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}} {what}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(Bar(b))
}

/// A size for people: bytes, KiB, MiB, GiB.
fn size(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

fn use_line(u: &ObjectUse) -> String {
    match u {
        ObjectUse::Version {
            asset,
            version,
            path,
            status,
        } => format!("asset {asset} ({path}) version {version}, {status}"),
        ObjectUse::Evidence { event, person } => {
            format!("evidence of consent event {event} (person {person})")
        }
    }
}

/// `consentfs check`: exit 0 when everything verified, 1 when something is damaged.
pub fn check(ctx: &mut Ctx) -> Result<i32> {
    let shown = bar(ctx.json, "verified");
    let progress: &dyn Progress = match &shown {
        Some(b) => b,
        None => &Quiet,
    };
    let r = check::run_recorded(&ctx.store, &mut ctx.catalog, &ctx.actor, ctx.now, progress)?;
    let code = if r.clean { 0 } else { 1 };
    if ctx.json {
        output::json(&r)?;
        return Ok(code);
    }
    println!(
        "verified {} object(s), {} of photos and evidence, in {:.1} s{}",
        r.objects,
        size(r.bytes),
        r.seconds,
        if r.shredded > 0 {
            format!(
                " ({} shredded object(s) skipped: destroyed on purpose)",
                r.shredded
            )
        } else {
            String::new()
        }
    );
    for d in &r.damaged {
        println!(
            "DAMAGED object {}: {}: {}",
            d.object,
            d.problem.describe(),
            d.detail
        );
        if d.uses.is_empty() {
            println!("    used by nothing that is still kept");
        }
        for u in &d.uses {
            println!("    {}", use_line(u));
        }
    }
    for o in &r.orphans {
        println!(
            "ORPHAN  {} ({}): a file the catalog does not record",
            o.file,
            size(o.bytes)
        );
    }
    if let Some(c) = &r.catalog_damage {
        println!("DAMAGED catalog: {c}: restore catalog.db from a backup");
    }
    if r.clean {
        println!("the store is intact");
    } else {
        println!(
            "{} damaged object(s) affecting {} asset(s), {} orphan file(s): restore the damaged objects from a backup (`consentfs backup`); \
             orphan files are removed when the store is next mounted",
            r.damaged.len(),
            r.assets_affected.len(),
            r.orphans.len()
        );
    }
    Ok(code)
}

/// `consentfs backup DEST`: exit 0 when the backup is complete, 1 when objects the catalog
/// needs are missing from the store (the backup is made without them).
pub fn backup(ctx: &mut Ctx, dest: &Path) -> Result<i32> {
    let shown = bar(ctx.json, "copied");
    let progress: &dyn Progress = match &shown {
        Some(b) => b,
        None => &Quiet,
    };
    let s = backup::run(
        &ctx.store,
        &mut ctx.catalog,
        &ctx.actor,
        ctx.now,
        dest,
        progress,
    )?;
    let code = if s.missing.is_empty() { 0 } else { 1 };
    if ctx.json {
        output::json(&s)?;
        return Ok(code);
    }
    println!(
        "backed up the store into {} in {:.1} s: catalog {} (up to audit entry {}), {} object(s), {} copied ({}), {} no longer needed removed",
        s.dest.display(),
        s.seconds,
        size(s.catalog_bytes),
        s.audit_seq,
        s.objects,
        s.copied,
        size(s.copied_bytes),
        s.removed
    );
    for id in &s.missing {
        println!("MISSING object {id}: the catalog needs it but the store has no file for it (run `consentfs check`)");
    }
    println!(
        "it opens with the store's passphrase or key file as of now; to restore, copy the folder back as the store and mount it with --accept-rollback"
    );
    Ok(code)
}

/// `consentfs status`.
/// `migrate --to URL|DIR`: into a team library, or out of one into a store of its own.
pub fn migrate(ctx: &mut Ctx, to: &str, objects: Option<&str>) -> Result<i32> {
    if crate::catalog::team::is_url(to) {
        let objects = match objects.filter(|o| !o.is_empty()) {
            Some(o) => crate::store::Location::parse(o)?,
            None => {
                return Err(Error::invalid(
                    "say where the library's photos go: --objects s3://BUCKET/PREFIX or --objects file:///SHARED/FOLDER",
                ))
            }
        };
        let shown = bar(ctx.json, "verified");
        let progress: &dyn Progress = match &shown {
            Some(b) => b,
            None => &Quiet,
        };
        let m = crate::domain::team::migrate_in(
            &ctx.store,
            &ctx.catalog,
            to,
            &objects,
            &ctx.actor,
            ctx.now,
            progress,
        )?;
        drop(shown);
        if ctx.json {
            output::json(&m)?;
            return Ok(0);
        }
        println!(
            "moved the store into the team library {}: {} object(s) verified at {} ({} copied, {}); this machine's copy: {}. The store folder is as it was: keep it until the library has proved itself.",
            m.library,
            m.objects,
            objects.url(),
            m.copied,
            size(m.bytes),
            m.replica.display()
        );
        return Ok(0);
    }
    if !ctx.catalog.is_team() {
        return Err(Error::invalid(
            "this is a store of its own already; `consentfs backup DIR` copies it, `migrate --to postgres://…` moves it into a team library",
        ));
    }
    let dest = Path::new(to);
    if dest.exists()
        && std::fs::read_dir(dest)
            .map_err(|e| Error::io_path("read", dest, e))?
            .next()
            .is_some()
    {
        return Err(Error::invalid(format!(
            "{} is not empty: give a new folder for the store of its own",
            dest.display()
        )));
    }
    // a backup of a team library's copy is a store of its own: its catalog, its keyring and
    // every object it needs in its own `objects/`, each copied and checked
    let code = backup(ctx, dest)?;
    if !ctx.json {
        println!(
            "{} is a store of its own now, a copy of the library as of this moment: mount it with --store {}",
            dest.display(),
            dest.display()
        );
    }
    Ok(code)
}

pub fn status(ctx: &Ctx) -> Result<i32> {
    let s = status::status(&ctx.store, ctx.catalog.conn(), ctx.now)?;
    if ctx.json {
        output::json(&s)?;
        return Ok(0);
    }
    println!("store        {}", s.store.display());
    println!("objects      {}", s.objects);
    if let Some(l) = &s.library {
        println!(
            "library      {} (this copy holds its changes up to {})",
            l.url, l.change
        );
    }
    match &s.daemon {
        Some(d) => println!(
            "mounted      at {} since {} (pid {})",
            d.mountpoint.display(),
            d.since.map(when::show).unwrap_or_else(|| "?".into()),
            d.pid
        ),
        None => println!("mounted      no (start it with `consentfs mount MOUNTPOINT`)"),
    }
    let c = &s.counts;
    println!(
        "assets       {} in use, {} draft(s), {} in the trash, {} purged",
        c.assets, c.drafts, c.trash, c.purged
    );
    println!(
        "content      {} version(s), {} object(s), {}",
        c.versions,
        c.objects,
        size(c.object_bytes)
    );
    println!(
        "people       {} person(s), {} user(s), {} purpose(s), {} consent event(s)",
        c.persons, c.users, c.purposes, c.consent_events
    );
    match (s.next_expiry, s.next_expiry_kind) {
        (Some(t), Some(k)) => println!("next expiry  {} ({})", when::show(t), k.replace('_', " ")),
        _ => println!("next expiry  none"),
    }
    match &s.last_change {
        Some(l) => println!(
            "last change  {} ({}, audit entry {})",
            when::show(l.at),
            l.action,
            l.seq
        ),
        None => println!("last change  none"),
    }
    let v = &s.versions;
    println!(
        "versions     consentfs {}, catalog schema {} (this binary: {}), keyring {}, object formats {} and {}",
        v.consentfs,
        v.catalog_schema,
        v.catalog_schema_supported,
        v.keyring,
        v.object_formats[0],
        v.object_formats[1]
    );
    Ok(0)
}

#[derive(Subcommand, Debug)]
pub enum PassphraseCmd {
    /// Set a new passphrase (open the store with the current passphrase or a key file); adds
    /// one to a store that has none. Key files keep working.
    Change {
        /// File whose first line is the new passphrase (else it is asked for twice).
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Remove the passphrase (refused if no key file opens the store).
    Remove,
}

#[derive(Subcommand, Debug)]
pub enum KeyFileCmd {
    /// Let FILE open the store: a new key file is created there (0600), or an existing
    /// consentfs key file is added.
    Add {
        /// The key file to create or add.
        file: PathBuf,
    },
    /// Stop FILE from opening the store (refused if it is the last way to open it).
    Remove {
        /// The key file to remove.
        file: PathBuf,
    },
}

fn new_passphrase(file: Option<&Path>) -> Result<zeroize::Zeroizing<String>> {
    if let Some(f) = file {
        return keyring::read_passphrase_file(f);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::invalid(
            "no new passphrase given: pass --new-passphrase-file FILE (or run it on a terminal to be asked)",
        ));
    }
    let ask = |prompt: &str| -> Result<zeroize::Zeroizing<String>> {
        rpassword::prompt_password(prompt)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| Error::io("cannot read the passphrase", e))
    };
    let pass = ask("New passphrase: ")?;
    if pass.is_empty() {
        return Err(Error::invalid(
            "the new passphrase is empty; nothing was changed",
        ));
    }
    if *ask("New passphrase again: ")? != *pass {
        return Err(Error::invalid(
            "the passphrases differ; nothing was changed",
        ));
    }
    Ok(pass)
}

fn ways(o: &keys::Outcome) -> String {
    format!(
        "the store now opens with {} passphrase(s) and {} key file(s)",
        o.passphrases, o.key_files
    )
}

/// `consentfs passphrase change|remove`.
pub fn passphrase(ctx: &mut Ctx, cmd: PassphraseCmd) -> Result<i32> {
    let (change, done) = match cmd {
        PassphraseCmd::Change {
            new_passphrase_file,
        } => (
            Change::SetPassphrase(new_passphrase(new_passphrase_file.as_deref())?),
            "passphrase changed (the old one no longer opens the store; backups made before keep their own keyring)",
        ),
        PassphraseCmd::Remove => (Change::RemovePassphrase, "passphrase removed"),
    };
    let o = keys::change(&ctx.store, &mut ctx.catalog, &ctx.actor, ctx.now, change)?;
    if ctx.json {
        output::json(&o)?;
    } else {
        println!("{done}; {}", ways(&o));
    }
    Ok(0)
}

/// `consentfs key-file add|remove FILE`.
pub fn key_file(ctx: &mut Ctx, cmd: KeyFileCmd) -> Result<i32> {
    let (change, file, added) = match cmd {
        KeyFileCmd::Add { file } => (Change::AddKeyFile(file.clone()), file, true),
        KeyFileCmd::Remove { file } => (Change::RemoveKeyFile(file.clone()), file, false),
    };
    let o = keys::change(&ctx.store, &mut ctx.catalog, &ctx.actor, ctx.now, change)?;
    if ctx.json {
        output::json(&o)?;
    } else if added {
        println!(
            "key file {} {}; {} (keep it safe: it opens the store)",
            file.display(),
            if o.created.is_some() {
                "created and added"
            } else {
                "added"
            },
            ways(&o)
        );
    } else {
        println!(
            "key file {} removed (it no longer opens the store; backups made before keep their own keyring); {}",
            file.display(),
            ways(&o)
        );
    }
    Ok(0)
}
