//! Mail from the consent page: the invitation links (`portal invite --send`) and, after every
//! decision made on the page, its receipt, so that the decider holds the same proof as the
//! organisation. Mail goes to the organisation's own mail server (`consentfs mail set --smtp
//! URL --from ADDRESS`, kept in the catalog: `catalog::mail`), to the address recorded for the
//! decider (`consentfs person email`); where either is missing, nothing is mailed and the
//! links are handed over another way (`--csv`, the printed list).
//!
//! The server's URL is lettre's: `smtps://user:password@host:465` (TLS),
//! `smtp://user:password@host:587?tls=required` (STARTTLS required), `smtp://host:25` (not
//! encrypted: for a relay on this machine; [`unencrypted_elsewhere`] says when it is not). Its
//! password is never printed or logged ([`shown_url`]); addresses are not logged at info level
//! (they are personal data).

use super::Session;
use crate::catalog::{mail as settings, persons};
use crate::error::{Error, Result};
use crate::policy::PersonId;
use lettre::message::{header::ContentType, Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message, SmtpTransport, Transport};
use rusqlite::Connection;
use std::time::Duration;

/// The longest mail address accepted (RFC 5321's path limit).
pub const MAX_ADDRESS: usize = 254;

/// How long one exchange with the mail server may take before the send is given up.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// A mail address as typed, checked by lettre's parser.
pub fn check_address(a: &str) -> Result<Address> {
    let a = a.trim();
    if a.is_empty() || a.len() > MAX_ADDRESS {
        return Err(Error::invalid(format!(
            "a mail address has 1 to {MAX_ADDRESS} characters"
        )));
    }
    a.parse::<Address>()
        .map_err(|e| Error::invalid(format!("'{a}' is not a mail address ({e})")))
}

/// The mail server's URL as it may be shown: without its password.
pub fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(not a URL)".into(),
    }
}

/// Whether `smtp` sends unencrypted (an `smtp://` URL without `tls=required` or
/// `tls=opportunistic`) to a host that is not this machine: links and receipts would cross the
/// network readable.
pub fn unencrypted_elsewhere(smtp: &str) -> bool {
    let Ok(u) = url::Url::parse(smtp) else {
        return false;
    };
    let tls = u.query_pairs().any(|(k, _)| k == "tls");
    let local = match u.host() {
        // (an `smtp:` URL's host is opaque to the url crate: an address comes as a name)
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
        }
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => true,
    };
    u.scheme() == "smtp" && !tls && !local
}

/// A connection to the configured mail server, with the sender.
pub struct Mailer {
    transport: SmtpTransport,
    from: Mailbox,
}

impl Mailer {
    /// From a server URL and a sender address (checked, not yet connected).
    pub fn new(smtp: &str, from: &str) -> Result<Mailer> {
        if smtp.len() > 2048 {
            return Err(Error::invalid("the mail server's URL is too long"));
        }
        let transport = SmtpTransport::from_url(smtp)
            .map_err(|e| {
                Error::invalid(format!(
                    "'{}' is not a mail server URL such as smtp://host:587?tls=required or smtps://user:password@host ({e})",
                    shown_url(smtp)
                ))
            })?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        let from = Mailbox::new(Some("consentfs".into()), check_address(from)?);
        Ok(Mailer { transport, from })
    }

    /// The mailer configured for this catalog, if mail is configured.
    pub fn configured(conn: &Connection) -> Result<Option<Mailer>> {
        settings::get(conn)?
            .map(|(smtp, from)| Mailer::new(&smtp, &from))
            .transpose()
    }

    /// Send a plain-text mail (with an optional JSON attachment) to `to`.
    pub fn send(
        &self,
        to: &str,
        subject: &str,
        text: String,
        json: Option<(&str, String)>,
    ) -> Result<()> {
        let to = Mailbox::new(None, check_address(to)?);
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject);
        let body = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(text);
        let message = match json {
            None => builder.singlepart(body),
            Some((name, content)) => builder.multipart(
                MultiPart::mixed().singlepart(body).singlepart(
                    Attachment::new(name.to_string()).body(
                        content,
                        ContentType::parse("application/json")
                            .map_err(|e| Error::invalid(format!("content type: {e}")))?,
                    ),
                ),
            ),
        }
        .map_err(|e| Error::invalid(format!("cannot compose the mail: {e}")))?;
        self.transport
            .send(&message)
            .map_err(|e| Error::invalid(format!("the mail server did not take the mail: {e}")))?;
        Ok(())
    }
}

/// `mail set`: check the server URL and the sender, and record them.
pub fn configure(s: &mut Session, smtp: &str, from: &str) -> Result<()> {
    Mailer::new(smtp, from)?;
    let tx = s.catalog.begin(s.actor, s.now)?;
    settings::set(&tx, Some((smtp, from.trim())))?;
    tx.commit()
}

/// `mail remove`: mail no more.
pub fn unconfigure(s: &mut Session) -> Result<()> {
    let tx = s.catalog.begin(s.actor, s.now)?;
    settings::set(&tx, None)?;
    tx.commit()
}

/// `mail show`: the server (password hidden) and the sender, if configured.
pub fn shown(conn: &Connection) -> Result<Option<(String, String)>> {
    Ok(settings::get(conn)?.map(|(smtp, from)| (shown_url(&smtp), from)))
}

/// `person email PERSON [ADDRESS]`: record (or with `None` remove) where a person's
/// consent-page links and receipts are mailed; returns the person's id.
pub fn set_person_email(s: &mut Session, person: &str, address: Option<&str>) -> Result<i64> {
    let address = address.map(check_address).transpose()?;
    let tx = s.catalog.begin(s.actor, s.now)?;
    let p = persons::resolve(&tx, person)?;
    if p.name.is_none() {
        return Err(Error::invalid(format!("person {} was erased", p.id)));
    }
    persons::set_email(&tx, p.id, address.as_ref().map(|a| a.as_ref()))?;
    tx.commit()?;
    Ok(p.id)
}

/// Before invitations are made with `--send`: mail is configured and every decider has an
/// address, else nothing is made.
pub fn check_sendable(conn: &Connection, deciders: &[(PersonId, String)]) -> Result<Mailer> {
    let mailer = Mailer::configured(conn)?.ok_or_else(|| {
        Error::invalid(
            "mail is not configured: `consentfs mail set --smtp URL --from ADDRESS` first, or hand the links over with --csv",
        )
    })?;
    let missing: Vec<&str> = deciders
        .iter()
        .filter(|(id, _)| !matches!(persons::email_of(conn, *id), Ok(Some(_))))
        .map(|(_, name)| name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid(format!(
            "no mail address recorded for {}: `consentfs person email NAME ADDRESS` first; no link was made",
            missing.join(", ")
        )));
    }
    Ok(mailer)
}

/// The invitation mail: in Dutch and English, as nothing says which the decider reads.
pub fn invitation_text(decider: &str, person: &str, url: &str, expires: &str) -> (String, String) {
    let subject = format!("Toestemming voor foto's / Consent for photos: {person}");
    let (nl_about, en_about) = if decider == person {
        ("foto's van u".to_string(), "photos of you".to_string())
    } else {
        (
            format!("foto's van {person}"),
            format!("photos of {person}"),
        )
    };
    let text = format!(
        "Beste {decider},\n\n\
         Wij vragen uw toestemming voor het gebruik van {nl_about}. Op deze pagina ziet u de \
         foto's, per doel wat er nu geldt, en geeft of weigert u toestemming of trekt u die \
         in, wanneer u wilt:\n\n{url}\n\n\
         De link is persoonlijk en geldig tot {expires}. Stuur hem niet door.\n\n\
         --\n\n\
         Dear {decider},\n\n\
         We ask for your consent to use {en_about}. On this page you see the photos and, per \
         purpose, what holds now; you give, refuse or withdraw consent whenever you like:\n\n\
         {url}\n\n\
         The link is personal and valid until {expires}. Do not forward it.\n"
    );
    (subject, text)
}

/// Mail the links of `--send`: (decider id, decider, person, url, expires) each; returns,
/// per link, whether it was mailed (with the reason when not).
pub fn send_invitations(
    conn: &Connection,
    mailer: &Mailer,
    links: &[(PersonId, String, String, String, String)],
) -> Vec<Result<()>> {
    links
        .iter()
        .map(|(id, decider, person, url, expires)| {
            let to = persons::email_of(conn, *id)?
                .ok_or_else(|| Error::invalid("no mail address recorded any more"))?;
            let (subject, text) = invitation_text(decider, person, url, expires);
            mailer.send(&to, &subject, text, None)
        })
        .collect()
}

/// The receipt mail of consent event `event`, decided on the page by `decider`: None when
/// mail is not configured or the decider has no address. Composed here, sent by the caller
/// (off the request's path).
pub fn receipt_mail(
    conn: &Connection,
    decider: PersonId,
    event: i64,
    what: &str,
    base_url: &str,
) -> Result<Option<Outgoing>> {
    let (Some(mailer), Some(to)) = (Mailer::configured(conn)?, persons::email_of(conn, decider)?)
    else {
        return Ok(None);
    };
    let receipt = super::receipt::receipt(conn, event)?;
    let json = serde_json::to_string_pretty(&receipt)
        .map_err(|e| Error::invalid(format!("receipt: {e}")))?;
    let subject = format!("Ontvangstbewijs / Receipt #{event}");
    let text = format!(
        "U heeft zojuist beslist / You have just decided:\n\n{what}\n\n\
         Kenmerk / Reference: #{event}\n\
         Op de pagina / On the page: {base_url}/receipt/{event}\n\n\
         Het bijgevoegde bestand is het ontvangstbewijs zoals wij het bewaren (W3C DPV).\n\
         The attached file is the receipt as we keep it (W3C DPV).\n"
    );
    Ok(Some(Outgoing {
        mailer,
        to,
        subject,
        text,
        attachment: Some((format!("receipt-{event}.json"), json)),
    }))
}

/// A composed mail, to be sent off the request's path.
pub struct Outgoing {
    mailer: Mailer,
    to: String,
    subject: String,
    text: String,
    attachment: Option<(String, String)>,
}

impl Outgoing {
    /// Send it; a failure is logged (without the address), not returned: the decision stands
    /// and its receipt is on the page.
    pub fn send_logged(self) {
        let attachment = self
            .attachment
            .as_ref()
            .map(|(n, c)| (n.as_str(), c.clone()));
        match self
            .mailer
            .send(&self.to, &self.subject, self.text, attachment)
        {
            Ok(()) => log::info!("a receipt was mailed ({})", self.subject),
            Err(e) => log::warn!("a receipt could not be mailed ({}): {e}", self.subject),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_never_shown() {
        let shown = shown_url("smtps://po:s3cret@mail.example.org:465");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("mail.example.org"), "{shown}");
        assert_eq!(shown_url("smtp://relay:25"), "smtp://relay:25");
        assert_eq!(shown_url("not a url"), "(not a URL)");
    }

    #[test]
    fn plain_smtp_to_another_host_is_flagged() {
        for (url, flagged) in [
            ("smtp://mail.example.org:25", true),
            ("smtp://po:pw@10.0.0.5:587", true),
            ("smtp://localhost:25", false),
            ("smtp://127.0.0.1:25", false),
            ("smtp://[::1]:25", false),
            ("smtp://mail.example.org:587?tls=required", false),
            ("smtps://mail.example.org", false),
        ] {
            assert_eq!(unencrypted_elsewhere(url), flagged, "{url}");
        }
    }

    #[test]
    fn addresses_are_checked_and_bounded() {
        assert!(check_address("mara@example.org").is_ok());
        assert!(check_address("  mara@example.org ").is_ok());
        for bad in ["", "mara", "mara@@example", "a b@example.org"] {
            assert!(check_address(bad).is_err(), "{bad:?} was taken");
        }
        let long = format!("{}@example.org", "a".repeat(250));
        assert!(
            check_address(&long).is_err(),
            "a 262-character address was taken"
        );
    }
}
