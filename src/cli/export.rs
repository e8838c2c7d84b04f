//! `consentfs export` and `consentfs export verify`: the command-line face of [`crate::export`].

use super::{output, Ctx, ExportArgs, ExportCmd};
use crate::error::{Error, Result};
use crate::export::{self, Options, Progress};
use std::io::IsTerminal;

/// A progress bar on stderr, only when stderr is a terminal and the output is for people.
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

pub fn run(ctx: &mut Ctx, args: ExportArgs) -> Result<i32> {
    if let Some(ExportCmd::Verify { dest }) = args.check {
        return verify(ctx, &dest);
    }
    let (Some(login), Some(purpose), Some(dest)) = (args.user, args.purpose, args.dest) else {
        return Err(Error::invalid(
            "usage: consentfs export --user LOGIN --purpose P DEST (or: consentfs export verify DEST)",
        ));
    };
    let opts = Options {
        login,
        purpose,
        dest,
        collection: args.collection,
        sync: args.sync,
        strip_location: args.strip_location,
        mode: args.mode.as_deref().map(export::Modes::parse).transpose()?,
        rendition: args.max_size.map(|px| export::Rendition {
            max_size: px as usize,
            watermark: args.watermark.clone().filter(|w| !w.trim().is_empty()),
        }),
    };
    let bar;
    let progress: &dyn Progress = if !ctx.json && std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::with_draw_target(
            Some(0),
            indicatif::ProgressDrawTarget::stderr(),
        );
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} exporting",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar = Bar(b);
        &bar
    } else {
        &export::Quiet
    };
    let s = export::run(
        &ctx.store,
        &mut ctx.catalog,
        &ctx.actor,
        ctx.now,
        &opts,
        progress,
    )?;
    if ctx.json {
        output::json(&s)?;
        return Ok(0);
    }
    for p in &s.added {
        println!("added     {p}");
    }
    for p in &s.replaced {
        println!("replaced  {p}");
    }
    for r in &s.removed {
        println!("removed   {}  ({})", r.path, r.reason);
    }
    for k in &s.skipped {
        println!("skipped   asset {}: {}", k.asset, k.reason);
    }
    for p in &s.location_kept {
        println!("warning   {p}: location metadata could not be stripped from this format");
    }
    println!(
        "export {}: {} file(s), {} byte(s) in {} ({} added, {} replaced, {} removed, {} unchanged); manifest.json written",
        s.export,
        s.files,
        s.bytes,
        s.dest,
        s.added.len(),
        s.replaced.len(),
        s.removed.len(),
        s.unchanged
    );
    Ok(0)
}

fn verify(ctx: &Ctx, dest: &std::path::Path) -> Result<i32> {
    let v = export::verify(&ctx.store.manifest_key(), dest)?;
    if ctx.json {
        output::json(&v)?;
    } else if v.ok {
        println!(
            "export {} in {} verified: manifest MAC and {} file(s) match",
            v.export.unwrap_or(0),
            v.dest,
            v.files
        );
    } else {
        for p in &v.problems {
            println!("FAILED: {p}");
        }
    }
    Ok(if v.ok { 0 } else { 1 })
}
