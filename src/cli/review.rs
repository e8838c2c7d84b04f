//! `consentfs review`, `consentfs faces ...` and `consentfs link --csv`: the command-line face
//! of linking at scale ([`crate::domain::review`], [`crate::domain::faces`],
//! [`crate::domain::links::link_csv`]).

use super::{output, Ctx, FacesCmd, ReviewArgs, ReviewCmd};
use crate::domain::{self, faces};
use crate::error::{Error, Result};
use crate::export::{Progress, Quiet};
use std::io::IsTerminal;
use std::path::Path;

pub fn run(ctx: &mut Ctx, args: ReviewArgs) -> Result<i32> {
    match args.action {
        None => {
            let items =
                domain::review::queue(&ctx.session(), args.collection.as_deref().unwrap_or(""))?;
            if ctx.json {
                output::json(&items)?;
            } else if items.is_empty() {
                println!("nothing waits for a decision");
            } else {
                for i in &items {
                    let id = i.suggestion.map(|s| format!(" [{s}]")).unwrap_or_default();
                    println!("{}{id}  {}  (asset {})", i.kind, i.path, i.asset);
                    println!("    {}", i.what);
                    for c in &i.settle {
                        println!("    $ {c}");
                    }
                }
                println!("{} item(s)", items.len());
            }
            Ok(0)
        }
        Some(ReviewCmd::Accept {
            ids,
            all: _,
            collection,
        }) => {
            let done = domain::review::accept(&mut ctx.session(), &ids, collection.as_deref())?;
            if ctx.json {
                output::json(&done)?;
            } else {
                for (g, a, p) in &done.linked {
                    println!("suggestion {g}: asset {a} linked to #{p}");
                }
                for (g, a, f) in &done.derived {
                    println!("suggestion {g}: asset {a} now shows the persons of asset {f}");
                }
                for (g, why) in &done.left {
                    println!("suggestion {g} left open: {why}");
                }
            }
            Ok(0)
        }
        Some(ReviewCmd::Reject { ids }) => {
            domain::review::reject(&mut ctx.session(), &ids)?;
            println!("{} suggestion(s) rejected", ids.len());
            Ok(0)
        }
    }
}

/// Progress on stderr for people (a bar of photos), nothing for scripts.
struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

pub fn faces(ctx: &mut Ctx, cmd: FacesCmd) -> Result<i32> {
    match cmd {
        FacesCmd::Scan {
            assets,
            all,
            threads,
        } => {
            let Some(finder) = faces::finder()? else {
                return Err(Error::invalid(format!(
                    "no face model installed: {}",
                    faces::install_hint()
                )));
            };
            let targets = if all {
                faces::Targets::Unscanned
            } else {
                faces::Targets::These(assets)
            };
            let threads = threads
                .map(usize::from)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let bar;
            let progress: &dyn Progress = if !ctx.json && std::io::stderr().is_terminal() {
                bar = Bar(indicatif::ProgressBar::new(0));
                &bar
            } else {
                &Quiet
            };
            let done = faces::scan(
                &mut ctx.session(),
                targets,
                Some(&*finder),
                threads,
                progress,
            )?;
            if ctx.json {
                output::json(&done)?;
            } else {
                let found: usize = done.scanned.iter().map(|(_, n)| n).sum();
                for (a, why) in &done.skipped {
                    println!("skipped   asset {a}: {why}");
                }
                println!(
                    "scanned {} photo(s): {found} face(s); {} skipped",
                    done.scanned.len(),
                    done.skipped.len()
                );
            }
            Ok(0)
        }
        FacesCmd::List { asset } => {
            let shown = faces::show(&ctx.session(), &asset)?;
            if ctx.json {
                output::json(&shown)?;
                return Ok(0);
            }
            let Some(scan) = &shown.scan else {
                println!(
                    "asset {} ({}) was never scanned for faces",
                    shown.asset, shown.path
                );
                return Ok(0);
            };
            println!(
                "asset {} ({}) version {}: {} face(s)",
                shown.asset,
                shown.path,
                scan.version,
                scan.faces.len()
            );
            for (n, f) in scan.faces.iter().enumerate() {
                let n = n as u32 + 1;
                let who: Vec<String> = shown
                    .linked
                    .iter()
                    .filter(|(_, face)| *face == Some(n))
                    .map(|(p, _)| format!("#{p}"))
                    .collect();
                println!(
                    "  face {n}: at {:.0}%,{:.0}% size {:.0}%x{:.0}% (score {:.2}) {}",
                    f.x * 100.0,
                    f.y * 100.0,
                    f.w * 100.0,
                    f.h * 100.0,
                    f.score,
                    if who.is_empty() {
                        "not linked".to_string()
                    } else {
                        who.join(", ")
                    }
                );
            }
            Ok(0)
        }
        FacesCmd::Show { asset, out } => {
            // the file first: a name that is taken fails before the photo is read (and its
            // reading recorded)
            // new, 0600, never over an existing file or through a link
            let mut file = crate::store::private::create_file(&out, false)?;
            let drawn = faces::picture(&mut ctx.session(), &asset)
                .and_then(|(bytes, scan)| Ok((faces::draw(&bytes, &scan.faces)?, scan)));
            let (drawn, scan) = match drawn {
                Ok(d) => d,
                Err(e) => {
                    let _ = std::fs::remove_file(&out);
                    return Err(e);
                }
            };
            use std::io::Write;
            if let Err(e) = file.write_all(&drawn).and_then(|_| file.sync_all()) {
                let _ = std::fs::remove_file(&out);
                return Err(Error::io_path("write", &out, e));
            }
            println!(
                "{}: {} numbered face box(es) drawn",
                out.display(),
                scan.faces.len()
            );
            Ok(0)
        }
    }
}

pub fn link_csv(ctx: &mut Ctx, csv: &Path, apply: bool) -> Result<i32> {
    let rows = domain::links::read_csv(csv)?;
    let plan = domain::links::link_csv(&mut ctx.session(), &rows, apply)?;
    if ctx.json {
        output::json(&plan)?;
    } else {
        for l in &plan.links {
            let face = l.face.map(|f| format!(" face {f}")).unwrap_or_default();
            let verb = match (plan.applied, l.already) {
                (_, true) => "already",
                (true, false) => "linked",
                (false, false) => "would link",
            };
            println!(
                "{verb}  {} to #{}{face}  (line {})",
                l.path, l.person, l.line
            );
        }
        for (line, why) in &plan.errors {
            println!("line {line}: {why}");
        }
        if !plan.errors.is_empty() {
            println!(
                "{} row(s) wrong: nothing was linked; fix them and run again",
                plan.errors.len()
            );
        } else if !plan.applied {
            println!(
                "{} link(s) checked; nothing was changed (dry run): add --apply to make them",
                plan.links.len()
            );
        }
    }
    Ok(if plan.errors.is_empty() { 0 } else { 1 })
}

pub fn duplicates(ctx: &mut Ctx) -> Result<i32> {
    let groups = domain::review::duplicates(&ctx.session())?;
    if ctx.json {
        output::json(&groups)?;
    } else if groups.is_empty() {
        println!("no photos that look alike");
    } else {
        for (n, g) in groups.iter().enumerate() {
            println!("group {}:", n + 1);
            for (id, path) in &g.assets {
                println!("    {id}  {path}");
            }
        }
    }
    Ok(0)
}
