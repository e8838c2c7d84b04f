//! `consentfs portal …`: invitation links to the consent page (the operations are in
//! `domain::portal`).

use super::{output, Ctx, PortalCmd};
use crate::domain::portal;
use crate::error::{Error, Result};
use crate::store::private;
use chrono::SecondsFormat;

fn shown(t: crate::policy::Time) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn run(ctx: &mut Ctx, cmd: PortalCmd) -> Result<i32> {
    match cmd {
        PortalCmd::Serve { .. } => {
            return Err(Error::invalid(
                "portal serve runs with the store's key, not through the daemon",
            ))
        }
        PortalCmd::Invite {
            person,
            purposes,
            valid,
            base_url,
            csv,
        } => {
            // the file first: a name that is taken must not cost links that were printed
            // nowhere (they would exist only as hashes)
            let file = csv
                .as_deref()
                .map(|p| private::create_file(p, false).map(|f| (p, f)))
                .transpose()?;
            let made = portal::invite(&mut ctx.session(), &person, &purposes, &valid, &base_url);
            let made = match made {
                Ok(m) => m,
                Err(e) => {
                    if let Some((p, _)) = &file {
                        let _ = std::fs::remove_file(p);
                    }
                    return Err(e);
                }
            };
            if let Some((path, f)) = file {
                let mut w = csv::Writer::from_writer(f);
                let written = (|| {
                    w.write_record(["decider", "person", "url", "expires"])?;
                    for i in &made {
                        w.write_record([&i.decider, &i.person, &i.url, &shown(i.expires)])?;
                    }
                    w.flush()?;
                    Ok::<_, std::io::Error>(())
                })();
                written.map_err(|e| Error::io_path("write", path, e))?;
            }
            if ctx.json {
                output::json(&made)?;
            } else {
                for i in &made {
                    output::line(format!(
                        "{}\tfor {}\t{}\tuntil {}",
                        i.decider,
                        i.person,
                        i.url,
                        shown(i.expires)
                    ));
                }
            }
        }
        PortalCmd::List { person } => {
            let list = portal::list(ctx.catalog.conn(), person.as_deref(), ctx.now)?;
            if ctx.json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|i| {
                        vec![
                            i.id.to_string(),
                            i.person.clone(),
                            i.decider.clone(),
                            if i.purposes.is_empty() {
                                "(all on consent)".into()
                            } else {
                                i.purposes.join(",")
                            },
                            shown(i.expires),
                            serde_json::to_value(i.state)
                                .ok()
                                .and_then(|v| v.as_str().map(String::from))
                                .unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::table(
                    &["ID", "PERSON", "DECIDER", "PURPOSES", "EXPIRES", "STATE"],
                    &rows,
                )?;
            }
        }
        PortalCmd::Revoke { id, person } => {
            let ids = portal::revoke(&mut ctx.session(), id, person.as_deref())?;
            if ctx.json {
                output::json(&serde_json::json!({ "revoked": ids }))?;
            } else if ids.is_empty() {
                output::line("nothing to revoke: no open invitation matched".into());
            } else {
                output::line(format!("revoked {} invitation(s)", ids.len()));
            }
        }
    }
    Ok(0)
}
