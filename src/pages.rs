//! The HTML pages consentfs writes, all from one set of minijinja templates
//! (`src/portal/templates/`): the consent page's (`portal`) and the person report's
//! `index.html` (`domain::report`).
//!
//! They share one environment so that every page goes through one escaping engine: a `.html`
//! template escapes every value it is given (minijinja's default by extension), so a name typed
//! by a person, a purpose or a file name can never become markup, and no page carries an
//! escaping function of its own. The only values a template may print unescaped are those this
//! module marks safe: the shared stylesheet ([`STYLE`], as `style`) and links made by the
//! `href` filter (percent-encoded, see [`href`]).

use crate::error::{Error, Result};
use minijinja::{Environment, Value};
use serde::Serialize;

/// The pages' stylesheet: served as `/style.css` by the portal, inlined by the report (a folder
/// opened offline has no stylesheet to fetch).
pub const STYLE: &str = include_str!("portal/templates/style.css");

/// A template of `src/portal/templates/`, by name.
macro_rules! template {
    ($name:literal) => {
        ($name, include_str!(concat!("portal/templates/", $name)))
    };
}

/// Every template, by name.
const TEMPLATES: [(&str, &str); 6] = [
    template!("base.html"),
    template!("message.html"),
    template!("page.html"),
    template!("confirm.html"),
    template!("receipt.html"),
    template!("report.html"),
];

/// The environment with all templates, the `style` global and the `href` filter.
pub fn environment() -> Result<Environment<'static>> {
    let mut env = Environment::new();
    // .html templates escape every value (minijinja's default by extension)
    for (name, text) in TEMPLATES {
        env.add_template(name, text)
            .map_err(|e| Error::invalid(format!("template {name}: {e}")))?;
    }
    env.add_global("style", Value::from_safe_string(STYLE.to_string()));
    env.add_filter("href", |path: &str| Value::from_safe_string(href(path)));
    Ok(env)
}

/// Render template `name` with `ctx`.
pub fn render(env: &Environment<'_>, name: &str, ctx: impl Serialize) -> Result<String> {
    env.get_template(name)
        .and_then(|t| t.render(Value::from_serialize(&ctx)))
        .map_err(|e| Error::invalid(format!("template {name}: {e}")))
}

/// A relative link to a file: every path segment percent-encoded (all but ASCII letters,
/// digits and `-._~`), so the result holds nothing HTML would read as markup.
pub fn href(path: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_loads() {
        let env = environment().unwrap();
        for (name, _) in TEMPLATES {
            env.get_template(name).unwrap();
        }
    }

    #[test]
    fn href_encodes_segments_and_is_not_escaped_again() {
        assert_eq!(
            href("photos/1-a b\"<c>.jpg"),
            "photos/1-a%20b%22%3Cc%3E.jpg"
        );
        let mut env = environment().unwrap();
        env.add_template("t.html", "<a href=\"{{ p|href }}\">{{ p }}</a>")
            .unwrap();
        let out = render(&env, "t.html", serde_json::json!({ "p": "a/<b>" })).unwrap();
        assert_eq!(out, "<a href=\"a/%3Cb%3E\">a&#x2f;&lt;b&gt;</a>");
    }
}
