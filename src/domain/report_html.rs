//! `index.html` of a person's report: the same data as its index.json, as tables, with links to
//! the report's evidence and photo files.

use super::report::Report;
use crate::when;

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A link to a file of the report: every path segment percent-encoded.
pub(super) fn href(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            seg.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn table(out: &mut String, header: &[&str], rows: Vec<Vec<String>>) {
    out.push_str("<table><tr>");
    for h in header {
        out.push_str(&format!("<th>{}</th>", esc(h)));
    }
    out.push_str("</tr>\n");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            // cells are escaped by the caller (some hold links)
            out.push_str(&format!("<td>{c}</td>"));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

/// The report as a page for people; every value from the catalog escaped.
pub(super) fn html(r: &Report) -> String {
    let who = r
        .person
        .name
        .clone()
        .unwrap_or_else(|| format!("erased person {}", r.person.pseudonym));
    let mut o = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>What we hold about {w}</title>\
         <style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #999;padding:.2em .5em;text-align:left;vertical-align:top}}</style></head><body>\n\
         <h1>What we hold about {w}</h1>\n<p>Generated {t} by {b}. The same data is in index.json.</p>\n",
        w = esc(&who),
        t = esc(&when::show(r.generated_at)),
        b = esc(&r.generated_by)
    );
    o.push_str("<h2>Person</h2>\n");
    let p = &r.person;
    table(
        &mut o,
        &["id", "name", "born", "reference", "pseudonym", "erased"],
        vec![vec![
            p.id.to_string(),
            esc(p.name.as_deref().unwrap_or("")),
            esc(p.born.as_deref().unwrap_or("")),
            esc(p.reference.as_deref().unwrap_or("")),
            esc(&p.pseudonym),
            if p.erased { "yes" } else { "no" }.into(),
        ]],
    );
    if !r.guardians.is_empty() || !r.guardian_of.is_empty() {
        o.push_str("<h2>Guardians</h2>\n");
        let mut rows: Vec<Vec<String>> = r
            .guardians
            .iter()
            .map(|g| vec!["guardian".into(), format!("#{} {}", g.person, esc(&g.name))])
            .collect();
        rows.extend(r.guardian_of.iter().map(|g| {
            vec![
                "guardian of".into(),
                format!("#{} {}", g.person, esc(&g.name)),
            ]
        }));
        table(&mut o, &["relation", "person"], rows);
    }
    o.push_str("<h2>Consent history</h2>\n");
    table(
        &mut o,
        &[
            "event", "what", "purposes", "scope", "from", "until", "given by", "recorded",
            "evidence",
        ],
        r.consents
            .iter()
            .map(|c| {
                let e = &c.event;
                vec![
                    e.id.to_string(),
                    esc(e.kind.as_str()),
                    esc(&e.purposes.join(", ")),
                    esc(&match e.scope.as_str() {
                        "collection" => {
                            format!("collection {}", e.collection.clone().unwrap_or_default())
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
                    }),
                    esc(&when::show(e.starts)),
                    esc(&e.expires.map(when::show).unwrap_or_default()),
                    format!("#{}", e.given_by),
                    esc(&format!(
                        "{} by {}",
                        when::show(e.recorded_at),
                        e.recorded_by
                    )),
                    c.evidence_file
                        .as_ref()
                        .map(|f| format!("<a href=\"{}\">{}</a>", href(f), esc(f)))
                        .unwrap_or_default(),
                ]
            })
            .collect(),
    );
    o.push_str("<h2>Photos</h2>\n");
    table(
        &mut o,
        &[
            "asset",
            "path",
            "status",
            "linked now",
            "others on it",
            "versions",
            "file",
        ],
        r.photos
            .iter()
            .map(|ph| {
                vec![
                    ph.asset.to_string(),
                    esc(&ph.path),
                    esc(ph.status.as_str()),
                    if ph.linked_now { "yes" } else { "no" }.into(),
                    ph.other_persons.to_string(),
                    ph.versions.to_string(),
                    ph.file
                        .as_ref()
                        .map(|f| format!("<a href=\"{}\">{}</a>", href(f), esc(f)))
                        .unwrap_or_else(|| "shredded".into()),
                ]
            })
            .collect(),
    );
    o.push_str("<h2>Exports that included these photos</h2>\n");
    table(
        &mut o,
        &[
            "export", "when", "by", "view of", "purpose", "asset", "as", "outcome",
        ],
        r.exports
            .iter()
            .map(|e| {
                vec![
                    e.export.to_string(),
                    esc(&when::show(e.at)),
                    esc(&e.by),
                    esc(&e.user),
                    esc(&e.purpose),
                    e.asset.to_string(),
                    esc(&e.path),
                    e.outcome.as_str().into(),
                ]
            })
            .collect(),
    );
    o.push_str("<h2>Who opened these photos</h2>\n");
    table(
        &mut o,
        &["when", "who", "what", "view of", "purpose", "asset"],
        r.accesses
            .iter()
            .map(|a| {
                vec![
                    esc(&when::show(a.at)),
                    esc(&a.actor),
                    esc(&a.action),
                    esc(a.user.as_deref().unwrap_or("")),
                    esc(a.purpose.as_deref().unwrap_or("")),
                    a.asset.to_string(),
                ]
            })
            .collect(),
    );
    o.push_str("</body></html>\n");
    o
}
