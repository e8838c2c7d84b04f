//! `consentfs portal …`: invitation links to the consent page (the operations are in
//! `domain::portal`).

use super::{output, Ctx, MailCmd, PortalCmd};
use crate::domain::{mail, portal};
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
            send,
        } => {
            // the file first: a name that is taken must not cost links that were printed
            // nowhere (they would exist only as hashes)
            let file = csv
                .as_deref()
                .map(|p| private::create_file(p, false).map(|f| (p, f)))
                .transpose()?;
            let made = portal::invite(
                &mut ctx.session(),
                &person,
                &purposes,
                &valid,
                &base_url,
                send,
            );
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
                    let mailed = match i.mailed {
                        Some(true) => "\tmailed",
                        Some(false) => "\tNOT MAILED",
                        None => "",
                    };
                    output::line(format!(
                        "{}\tfor {}\t{}\tuntil {}{mailed}",
                        i.decider,
                        i.person,
                        i.url,
                        shown(i.expires)
                    ));
                }
            }
            let unsent = made.iter().filter(|i| i.mailed == Some(false)).count();
            if unsent > 0 {
                return Err(Error::invalid(format!(
                    "{unsent} link(s) could not be mailed (see the log): hand them over as printed above, or revoke them with `consentfs portal revoke ID`"
                )));
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

/// `consentfs mail …`: the mail server the consent page's mail goes through.
pub fn mail(ctx: &mut Ctx, cmd: MailCmd) -> Result<i32> {
    match cmd {
        MailCmd::Set { smtp, from } => {
            mail::configure(&mut ctx.session(), &smtp, &from)?;
            if mail::unencrypted_elsewhere(&smtp) {
                output::err_line(format!(
                    "warning: {} is not encrypted and not on this machine: links and receipts cross the network readable; use smtps:// or ?tls=required",
                    mail::shown_url(&smtp)
                ));
            }
            output::line(format!(
                "mail goes through {} from {}",
                mail::shown_url(&smtp),
                from.trim()
            ));
        }
        MailCmd::Show => match mail::shown(ctx.catalog.conn())? {
            Some((smtp, from)) if ctx.json => {
                output::json(&serde_json::json!({ "smtp": smtp, "from": from }))?
            }
            Some((smtp, from)) => output::line(format!("server {smtp}\nfrom {from}")),
            None if ctx.json => output::json(&serde_json::Value::Null)?,
            None => output::line("mail is not configured (`consentfs mail set`)".into()),
        },
        MailCmd::Remove => {
            mail::unconfigure(&mut ctx.session())?;
            output::line("mail is no longer configured".into());
        }
        MailCmd::Test { address } => {
            let mailer = mail::Mailer::configured(ctx.catalog.conn())?.ok_or_else(|| {
                Error::invalid(
                    "mail is not configured: `consentfs mail set --smtp URL --from ADDRESS`",
                )
            })?;
            mailer.send(
                &address,
                "consentfs: test",
                "This is a test of the mail of the consent page.\n".into(),
                None,
            )?;
            output::line("the mail server took the test mail".into());
        }
    }
    Ok(0)
}
