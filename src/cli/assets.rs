//! `consentfs assets`: the front end of `crate::inventory`.

use super::{output, Ctx};
use crate::error::Result;

pub fn run(ctx: &Ctx) -> Result<i32> {
    let items = crate::inventory::list(ctx.catalog.conn(), ctx.now)?;
    if ctx.json {
        output::json(&items)?;
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            vec![
                i.path.clone(),
                match (&i.creator, i.no_persons) {
                    (Some(c), _) => format!("draft of {c}"),
                    (None, _) if i.sidecar_of.is_some() && i.persons.is_empty() => {
                        format!("(sidecar of asset {})", i.sidecar_of.unwrap_or_default())
                    }
                    (None, true) => "no persons".into(),
                    (None, false) if i.persons.is_empty() => "not reviewed".into(),
                    (None, false) => i.persons.join(", "),
                },
                if i.visible_in.is_empty() {
                    "-".into()
                } else {
                    i.visible_in.join(",")
                },
            ]
        })
        .collect();
    output::table(&["PATH", "PERSONS", "MAY BE SHOWN IN"], &rows)?;
    Ok(0)
}
