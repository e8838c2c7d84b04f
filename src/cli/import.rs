//! `consentfs import` on the command line (what it does is [`crate::domain::import`]), and the
//! hidden `consentfs generate` for benchmarks.

use super::{output, Ctx};
use crate::catalog::synthetic::{self, Spec};
use crate::domain::import;
use crate::error::Result;
use crate::export::{Progress, Quiet};
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
    // faces on what was imported, where a detector is installed
    let (scanned, detector) =
        crate::domain::faces::after_import(&mut ctx.session(), &done, &Quiet)?;
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
    if !detector {
        eprintln!(
            "consentfs: faces were not detected: {}",
            crate::domain::faces::install_hint()
        );
    }
    if let Some(why) = &done.metadata_unread {
        eprintln!("consentfs: the persons named in the photos' metadata were not read: {why}");
    }
    if ctx.json {
        output::json(&done.outcomes)?;
    } else {
        for o in &done.outcomes {
            if !o.linked_from_metadata.is_empty() {
                let who: Vec<String> = o
                    .linked_from_metadata
                    .iter()
                    .map(|p| format!("#{p}"))
                    .collect();
                println!(
                    "linked     {}  to {} (their reference is in the photo's metadata)",
                    o.path,
                    who.join(", ")
                );
            }
            if !o.suggested.is_empty() {
                println!(
                    "suggested  {}  {} name(s) from its metadata; see `consentfs review`",
                    o.path,
                    o.suggested.len()
                );
            }
            if let Some(photo) = o.sidecar_of {
                println!(
                    "sidecar    {}  belongs to asset {photo}: shown where that photo is shown",
                    o.path
                );
            }
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
        if !scanned.scanned.is_empty() {
            let faces: usize = scanned.scanned.iter().map(|(_, n)| n).sum();
            println!(
                "faces: {faces} detected on {} photo(s); `consentfs review` lists what to link",
                scanned.scanned.len()
            );
        }
        for (a, original) in &scanned.lookalikes {
            println!("lookalike  asset {a} looks like asset {original}: `consentfs review` suggests giving it that photo's persons");
        }
        if imported > 0 {
            println!("next: link persons with `consentfs link ASSET PERSON...` or mark `--no-persons`; unreviewed photos stay hidden");
        }
    }
    Ok(0)
}

/// `consentfs generate`: a synthetic catalog for benchmarks (see [`crate::catalog::synthetic`]).
/// All assets share one small encrypted object.
///
/// For benchmarks only: it builds the whole catalog in one transaction and so holds the
/// catalog's write lock for as long as that takes (seconds for 100,000 assets); run it on a
/// store nobody else uses at the time.
pub fn generate(ctx: &mut Ctx, spec: Spec) -> Result<i32> {
    let tx = ctx.catalog.begin(&ctx.actor, ctx.now)?;
    let obj = ctx.store.put(&mut &b"synthetic photo"[..])?;
    let result = synthetic::fill(&tx, &obj, &spec, &ctx.actor);
    match result.and_then(|()| tx.commit()) {
        Ok(()) => {
            eprintln!(
                "generated {} assets, {} persons, {} consent events; user '{}' reads all",
                spec.assets, spec.persons, spec.events, spec.user
            );
            Ok(0)
        }
        Err(e) => {
            let _ = ctx.store.remove_object(&obj.id);
            Err(e)
        }
    }
}
