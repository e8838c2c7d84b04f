//! `index.html` of a person's report: the same data as its index.json, as tables, with links to
//! the report's evidence and photo files. Rendered from the shared templates
//! (`report.html`, see [`crate::pages`]), which escape every value.

use super::report::Report;
use crate::error::Result;
use crate::when;
use serde::Serialize;

/// A link to a file of the report: every path segment percent-encoded.
pub(super) use crate::pages::href;

/// What `report.html` shows: the report's values as text, in the page's words.
#[derive(Serialize)]
struct Page<'a> {
    who: String,
    generated_at: String,
    generated_by: &'a str,
    person: Person<'a>,
    relations: Vec<Relation<'a>>,
    consents: Vec<Consent>,
    photos: Vec<Photo<'a>>,
    exports: Vec<Export<'a>>,
    accesses: Vec<Access<'a>>,
}

#[derive(Serialize)]
struct Person<'a> {
    id: i64,
    name: &'a str,
    born: &'a str,
    reference: &'a str,
    email: &'a str,
    pseudonym: &'a str,
    erased: &'static str,
}

#[derive(Serialize)]
struct Relation<'a> {
    relation: &'static str,
    person: i64,
    name: &'a str,
}

#[derive(Serialize)]
struct Consent {
    event: i64,
    kind: &'static str,
    purposes: String,
    scope: String,
    starts: String,
    expires: String,
    given_by: i64,
    recorded: String,
    /// The evidence file in the report (a relative path), if any.
    evidence: Option<String>,
}

#[derive(Serialize)]
struct Photo<'a> {
    asset: i64,
    path: &'a str,
    status: &'static str,
    linked_now: &'static str,
    other_persons: usize,
    versions: usize,
    /// The photo file in the report (a relative path), unless it was shredded.
    file: Option<&'a str>,
}

#[derive(Serialize)]
struct Export<'a> {
    export: i64,
    at: String,
    by: &'a str,
    user: &'a str,
    purpose: &'a str,
    asset: i64,
    path: &'a str,
    outcome: &'static str,
}

#[derive(Serialize)]
struct Access<'a> {
    at: String,
    actor: &'a str,
    action: &'a str,
    user: &'a str,
    purpose: &'a str,
    asset: i64,
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn page(r: &Report) -> Page<'_> {
    let p = &r.person;
    fn relation<'a>(relation: &'static str, g: &'a super::report::Related) -> Relation<'a> {
        Relation {
            relation,
            person: g.person,
            name: &g.name,
        }
    }
    let consents = r
        .consents
        .iter()
        .map(|c| {
            let e = &c.event;
            Consent {
                event: e.id,
                kind: e.kind.as_str(),
                purposes: e.purposes.join(", "),
                scope: match e.scope.as_str() {
                    "collection" => {
                        format!("collection {}", e.collection.as_deref().unwrap_or_default())
                    }
                    "assets" => format!(
                        "photos {}",
                        e.assets
                            .iter()
                            .map(|a| a.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    _ => "all photos".into(),
                },
                starts: when::show(e.starts),
                expires: e.expires.map(when::show).unwrap_or_default(),
                given_by: e.given_by,
                recorded: format!("{} by {}", when::show(e.recorded_at), e.recorded_by),
                evidence: c.evidence_file.clone(),
            }
        })
        .collect();
    Page {
        who: p
            .name
            .clone()
            .unwrap_or_else(|| format!("erased person {}", p.pseudonym)),
        generated_at: when::show(r.generated_at),
        generated_by: &r.generated_by,
        person: Person {
            id: p.id,
            name: p.name.as_deref().unwrap_or(""),
            born: p.born.as_deref().unwrap_or(""),
            reference: p.reference.as_deref().unwrap_or(""),
            email: p.email.as_deref().unwrap_or(""),
            pseudonym: &p.pseudonym,
            erased: yes_no(p.erased),
        },
        relations: r
            .guardians
            .iter()
            .map(|g| relation("guardian", g))
            .chain(r.guardian_of.iter().map(|g| relation("guardian of", g)))
            .collect(),
        consents,
        photos: r
            .photos
            .iter()
            .map(|ph| Photo {
                asset: ph.asset,
                path: &ph.path,
                status: ph.status.as_str(),
                linked_now: yes_no(ph.linked_now),
                other_persons: ph.other_persons,
                versions: ph.versions,
                file: ph.file.as_deref(),
            })
            .collect(),
        exports: r
            .exports
            .iter()
            .map(|e| Export {
                export: e.export,
                at: when::show(e.at),
                by: &e.by,
                user: &e.user,
                purpose: &e.purpose,
                asset: e.asset,
                path: &e.path,
                outcome: e.outcome.as_str(),
            })
            .collect(),
        accesses: r
            .accesses
            .iter()
            .map(|a| Access {
                at: when::show(a.at),
                actor: &a.actor,
                action: &a.action,
                user: a.user.as_deref().unwrap_or(""),
                purpose: a.purpose.as_deref().unwrap_or(""),
                asset: a.asset,
            })
            .collect(),
    }
}

/// The report as a page for people (`report.html`); every value from the catalog escaped by
/// the template engine.
pub(super) fn html(r: &Report) -> Result<String> {
    let env = crate::pages::environment()?;
    crate::pages::render(&env, "report.html", page(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::audit;
    use crate::catalog::consents::EventRow;
    use crate::catalog::exports::Outcome;
    use crate::domain::report::{ConsentOut, ExportOut, PersonOut, PhotoOut, Related};
    use crate::policy::{EventKind, Status};

    const EVIL: &str = "<script>alert(1)</script> \"'&";

    fn report() -> Report {
        let t = when::from_secs(1_767_225_600);
        Report {
            generated_at: t,
            generated_by: "officer".into(),
            person: PersonOut {
                id: 7,
                pseudonym: "p-7".into(),
                name: Some(EVIL.into()),
                born: Some("2001-02-03".into()),
                reference: None,
                email: Some("anna@example.org".into()),
                erased: false,
            },
            guardians: vec![Related {
                person: 8,
                name: format!("guardian {EVIL}"),
            }],
            guardian_of: vec![],
            consents: vec![ConsentOut {
                event: EventRow {
                    id: 3,
                    person: 7,
                    kind: EventKind::Grant,
                    purposes: vec!["web <b>site</b>".into()],
                    purpose_ids: vec![],
                    scope: "all".into(),
                    collection: None,
                    assets: vec![],
                    starts: t,
                    expires: None,
                    given_by: 8,
                    explicit: true,
                    evidence: Some("form.pdf".into()),
                    evidence_object: None,
                    recorded_by: "officer".into(),
                    recorded_at: t,
                },
                evidence_file: Some("evidence/3-form \"signed\".pdf".into()),
            }],
            photos: vec![PhotoOut {
                asset: 11,
                path: "events/<script>\"x\".jpg".into(),
                status: Status::Active,
                linked_now: true,
                other_persons: 1,
                versions: 2,
                imported_at: t,
                retention_until: None,
                file: Some("photos/11-<script>\"x\" y.jpg".into()),
            }],
            exports: vec![ExportOut {
                export: 1,
                at: t,
                by: "officer".into(),
                user: "web".into(),
                purpose: "website".into(),
                asset: 11,
                path: "x.jpg".into(),
                outcome: Outcome::Interrupted,
            }],
            accesses: Vec::<audit::Access>::new(),
        }
    }

    #[test]
    fn values_are_escaped_and_links_encoded() {
        let html = html(&report()).unwrap();
        // nothing from the catalog becomes markup
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(!html.contains("\"x\""), "{html}");
        assert!(
            html.contains("<title>What we hold about &lt;script&gt;alert(1)&lt;&#x2f;script&gt; &quot;&#x27;&amp;</title>"),
            "{html}"
        );
        assert!(html.contains("web &lt;b&gt;site&lt;&#x2f;b&gt;"), "{html}");
        // links: every path segment percent-encoded, the separators kept
        assert!(
            html.contains("<a href=\"photos/11-%3Cscript%3E%22x%22%20y.jpg\">"),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"evidence/3-form%20%22signed%22.pdf\">"),
            "{html}"
        );
        assert!(html.contains("interrupted"));
    }

    #[test]
    fn page_is_complete_and_styled_inline() {
        let html = html(&report()).unwrap();
        assert!(
            html.starts_with("<!doctype html>\n<html lang=\"en\">"),
            "{html}"
        );
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.contains("name=\"viewport\""));
        // the portal's stylesheet, inline and unescaped (the report is opened offline)
        assert!(html.contains(crate::pages::STYLE));
        assert!(!html.contains("<link"));
        assert!(html.contains("<th scope=\"col\">evidence</th>"), "{html}");
        assert!(html.contains("<td>#8 guardian &lt;script&gt;"), "{html}");
        // empty sections say so
        assert!(
            html.contains("<td class=\"none\" colspan=\"6\">none</td>"),
            "{html}"
        );
    }
}
