//! A consent event as a receipt in the W3C Data Privacy Vocabulary (JSON-LD), for the person
//! or an auditor: the record of a consent in a form other tools read.

use crate::catalog::{consents, persons};
use crate::error::{Error, Result};
use crate::policy::{EventKind, Time};
use rusqlite::Connection;

fn person_node(conn: &Connection, id: i64, role: &str) -> Result<serde_json::Value> {
    let p = persons::get(conn, id)?
        .ok_or_else(|| Error::not_found(format!("person #{id} is not in the catalog")))?;
    let mut node = serde_json::json!({
        "@id": format!("urn:consentfs:person:{}", p.pseudonym),
        "@type": role,
        "dct:identifier": format!("#{}", p.id),
    });
    if let Some(n) = &p.name {
        node["dct:title"] = serde_json::json!(n);
    }
    Ok(node)
}

/// Consent event `event` as a receipt in the W3C Data Privacy Vocabulary (JSON-LD): who gave
/// or withdrew consent, for which purposes, when, by whom, with which evidence. An objection
/// is not a consent and has none.
pub fn receipt(conn: &Connection, event: i64) -> Result<serde_json::Value> {
    let e = consents::list(conn, None)?
        .into_iter()
        .find(|e| e.id == event)
        .ok_or_else(|| {
            Error::not_found(format!(
                "no consent event {event}; see `consentfs consent list`"
            ))
        })?;
    let status = match e.kind {
        EventKind::Grant => "dpv:ConsentGiven",
        EventKind::Withdraw => "dpv:ConsentWithdrawn",
        EventKind::Refuse => "dpv:ConsentRefused",
        EventKind::Object => {
            return Err(Error::invalid(format!(
                "event {event} is an objection, not a consent; it has no consent receipt (see `consentfs consent list`)"
            )))
        }
    };
    let subject = person_node(conn, e.person, "dpv:DataSubject")?;
    let indicated_by = if e.given_by == e.person {
        subject.clone()
    } else {
        person_node(conn, e.given_by, "dpv:Guardian")?
    };
    let mut consent_types = vec!["dpv:Consent"];
    if e.kind == EventKind::Grant {
        consent_types.push(if e.explicit {
            "dpv:ExplicitlyExpressedConsent"
        } else {
            "dpv:ExpressedConsent"
        });
    }
    let purposes: Vec<serde_json::Value> = e
        .purposes
        .iter()
        .map(|p| {
            serde_json::json!({
                "@id": format!("urn:consentfs:purpose:{}", super::report_html::href(p)),
                "@type": "dpv:Purpose",
                "dct:title": p,
            })
        })
        .collect();
    let t = |t: Time| serde_json::json!({ "@value": t.to_rfc3339(), "@type": "xsd:dateTime" });
    let scope = match e.scope.as_str() {
        "collection" => serde_json::json!({ "collection": e.collection }),
        "assets" => serde_json::json!({ "assets": e.assets }),
        _ => serde_json::json!("all photos of the data subject"),
    };
    let mut r = serde_json::json!({
        "@context": {
            "dpv": "https://w3id.org/dpv#",
            "dct": "http://purl.org/dc/terms/",
            "xsd": "http://www.w3.org/2001/XMLSchema#",
            "consentfs": "urn:consentfs:vocab:"
        },
        "@id": format!("urn:consentfs:consent-event:{}", e.id),
        "@type": consent_types,
        "dpv:hasConsentStatus": { "@id": status },
        "dpv:hasDataSubject": subject,
        "dpv:hasPurpose": purposes,
        "dpv:isIndicatedBy": indicated_by,
        "dpv:isIndicatedAtTime": t(e.starts),
        "dct:created": t(e.recorded_at),
        "dct:creator": e.recorded_by,
        "consentfs:scope": scope,
    });
    if let Some(end) = e.expires {
        r["dpv:hasExpiry"] =
            serde_json::json!({ "@type": "dpv:ExpiryTime", "dpv:hasValue": t(end) });
    }
    if let Some(name) = &e.evidence {
        r["dpv:hasEvidence"] = serde_json::json!({
            "@type": "dpv:Evidence",
            "dct:title": name,
            "dct:description": "stored encrypted in the consentfs store; `consentfs person report` exports it",
        });
    }
    Ok(r)
}
