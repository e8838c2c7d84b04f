//! Commands that look, on the command line: `ls`, `why`, `cat`, `expiring` and `audit`. What
//! they find is worked out in [`crate::domain`] (`visibility`, `cat`, `expiring`) and the
//! catalog's audit log; here it is printed.

use super::{output, Ctx};
use crate::catalog::audit;
use crate::domain;
use crate::error::{Error, Result};
use crate::when;
use std::io::Write;

/// `ls`: see [`domain::visibility::ls`].
pub fn ls(
    ctx: &Ctx,
    login: &str,
    purpose: &str,
    at: Option<&str>,
    hidden: bool,
    collection: Option<&str>,
) -> Result<i32> {
    let from_view = ctx.view.as_ref().filter(|_| at.is_none() && !hidden);
    let items = match from_view {
        // the daemon's index, caught up (read slice by slice, between the mount's changes)
        Some(view) => {
            let began = std::time::Instant::now();
            let items = domain::visibility::ls_in_view(
                ctx.catalog.conn(),
                view,
                ctx.now,
                login,
                purpose,
                collection,
            )?;
            log::debug!(
                "ls from the index: {} assets in {} ms",
                items.len(),
                began.elapsed().as_millis()
            );
            items
        }
        None => domain::visibility::ls(
            ctx.catalog.conn(),
            ctx.now,
            login,
            purpose,
            at,
            hidden,
            collection,
            hidden || ctx.json,
        )?,
    };
    if ctx.json {
        output::json(&items)?;
        return Ok(0);
    }
    output::table_of(
        &[
            "ASSET",
            "PATH",
            "STATE",
            if hidden { "UNTIL / REASON" } else { "UNTIL" },
        ],
        &items,
        |i, cells| {
            let until = i.valid_until.map(|u| {
                let word = if i.visible { "until" } else { "from" };
                format!("{word} {}", when::show(u))
            });
            cells.push(i.asset.to_string().into());
            cells.push(i.path.as_str().into());
            cells.push(match (i.visible, i.draft) {
                (true, true) => "draft".into(),
                (true, false) => "visible".into(),
                (false, _) => "hidden".into(),
            });
            cells.push(match (i.visible, until) {
                (true, until) => until.unwrap_or_default().into(),
                (false, until) => format!("{} {}", i.reason_text, until.unwrap_or_default())
                    .trim_end()
                    .to_string()
                    .into(),
            });
        },
    )?;
    Ok(0)
}

/// `why`: see [`domain::visibility::why`].
pub fn why(ctx: &Ctx, asset: &str, login: &str, purpose: &str, at: Option<&str>) -> Result<i32> {
    let out = domain::visibility::why(ctx.catalog.conn(), ctx.now, asset, login, purpose, at)?;
    let t = out.at;
    if ctx.json {
        output::json(&out)?;
        return Ok(0);
    }
    println!(
        "asset {} ({}) is {} to {} for {} at {}",
        out.asset,
        out.path
            .as_deref()
            .unwrap_or("someone else's draft, name not shown"),
        if out.visible { "VISIBLE" } else { "HIDDEN" },
        out.user,
        out.purpose,
        when::show(t)
    );
    println!("  because: {}", out.reason_text);
    if let Some(u) = out.valid_until {
        println!("  this changes at {}", when::show(u));
    }
    for s in &out.persons {
        println!("  #{} {}: {}", s.person, s.name, s.reason_text);
    }
    Ok(0)
}

pub fn cat(ctx: &mut Ctx, asset: &str, version: Option<i64>) -> Result<i32> {
    let obj = domain::cat::open(&mut ctx.session(), asset, version)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    obj.copy_verified_to(&mut out)?;
    out.flush()
        .map_err(|e| Error::io("cannot write output", e))?;
    Ok(0)
}

pub fn expiring(ctx: &Ctx, within: &str) -> Result<i32> {
    let domain::expiring::Expiring { to, items, names } =
        domain::expiring::expiring(ctx.catalog.conn(), ctx.now, within)?;
    if ctx.json {
        output::json(&items)?;
    } else if items.is_empty() {
        println!("nothing ends before {}", when::show(to));
    } else {
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|i| {
                let who = match (i.person, &i.name) {
                    (Some(p), Some(n)) => format!("#{p} {n}"),
                    (Some(p), None) => format!("#{p}"),
                    _ => {
                        let on = i
                            .persons
                            .iter()
                            .map(|p| {
                                format!("#{p} {}", names.get(p).cloned().unwrap_or_default())
                                    .trim_end()
                                    .to_string()
                            })
                            .collect::<Vec<_>>()
                            .join(", ");
                        let a = i.asset.map(|a| format!("asset {a}")).unwrap_or_default();
                        if on.is_empty() {
                            a
                        } else {
                            format!("{a} ({on})")
                        }
                    }
                };
                let what = match i.kind {
                    "consent_ends" => format!("consent ends ({})", i.purposes.join(",")),
                    "turns_16" => "turns 16: ask them to confirm their guardian's consent".into(),
                    _ if i.purposes.is_empty() => "retention ends".into(),
                    _ => format!("retention ends ({})", i.purposes.join(",")),
                };
                vec![when::show(i.at), who, what, i.photos.to_string()]
            })
            .collect();
        output::table(&["WHEN", "WHO", "WHAT", "PHOTOS"], &rows)?;
    }
    Ok(if items.is_empty() { 0 } else { 1 })
}

pub fn audit_list(ctx: &Ctx, since: i64) -> Result<i32> {
    let entries = audit::list(ctx.catalog.conn(), since)?;
    if ctx.json {
        output::json(&entries)?;
    } else {
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                vec![
                    e.seq.to_string(),
                    when::show(e.at),
                    e.actor.clone(),
                    e.action.clone(),
                    e.detail.to_string(),
                ]
            })
            .collect();
        output::table(&["SEQ", "AT", "ACTOR", "ACTION", "DETAIL"], &rows)?;
    }
    Ok(0)
}

pub fn audit_verify(ctx: &Ctx) -> Result<i32> {
    let v = audit::verify(ctx.catalog.conn(), ctx.catalog.audit_key())?;
    if ctx.json {
        output::json(&v)?;
    } else if v.problems.is_empty() {
        println!("audit log intact: {} entries", v.entries);
    } else {
        for p in &v.problems {
            println!("BROKEN: {p}");
        }
    }
    Ok(if v.problems.is_empty() { 0 } else { 1 })
}

/// Seal and open `mib` MiB in 64 KiB chunks with XChaCha20-Poly1305 (the implementation the
/// store uses), in memory, on one core: the ceiling for import and read throughput.
/// (`contrib/bench/aead.sh` compares it with the RustCrypto reference.)
pub fn cipher_speed(mib: usize) -> Result<i32> {
    use crate::crypto::aead::{open_in_place, seal_in_place};
    let key = crate::crypto::Key::random();
    let nonce = [0u8; crate::crypto::NONCE_LEN];
    let mut buf = vec![7u8; 65536];
    let chunks = mib * 16;
    let start = std::time::Instant::now();
    let mut tags = Vec::with_capacity(chunks);
    for i in 0..chunks {
        let tag = seal_in_place(&key, &nonce, &(i as u64).to_be_bytes(), &mut buf)
            .map_err(|_| Error::invalid("encryption failed"))?;
        tags.push(tag);
    }
    let enc = start.elapsed().as_secs_f64();
    let start = std::time::Instant::now();
    for (i, tag) in tags.iter().enumerate().rev() {
        open_in_place(&key, &nonce, &(i as u64).to_be_bytes(), &mut buf, tag)
            .map_err(|_| Error::invalid("decryption failed"))?;
    }
    let dec = start.elapsed().as_secs_f64();
    println!("xchacha20poly1305_seal_mib_s {:.0}", mib as f64 / enc);
    println!("xchacha20poly1305_open_mib_s {:.0}", mib as f64 / dec);
    Ok(0)
}
