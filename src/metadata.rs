//! The persons a photo's embedded metadata names (DESIGN.md section 14): what photographers'
//! tools write when they tag people. Read by exiftool (`crate::exiftool`), never parsed here:
//!
//! - XMP MWG face regions (`mwg-rs:Regions`, `Type=Face`, with a `Name`): Lightroom, digiKam,
//!   Picasa, Apple Photos;
//! - IPTC Extension `PersonInImage` (names) and `PersonInImageWDetails` (`PersonId`,
//!   `PersonName`);
//! - PLUS `ModelReleaseID` (and `ModelReleaseStatus`).
//!
//! An id (`PersonId`, a release id) that equals a person's external reference links that
//! person at once; a name alone is only a suggestion for a reviewer. Every value is bounded
//! here (count and length) and cleaned of control characters: the metadata is input from
//! whoever made the file.

use crate::error::Result;
use crate::exiftool::Exiftool;
use serde_json::Value;
use std::path::Path;

/// At most this many names and ids are taken from one file (a class photo has thirty).
pub const MAX_MENTIONS: usize = 100;
/// A name or id longer than this is cut (the catalog keeps 256 bytes).
pub const MAX_LEN: usize = 200;

/// exiftool's arguments: JSON, structures kept, only the tags that name people.
const ARGS: [&str; 8] = [
    "-j",
    "-struct",
    "-m",
    "-XMP-mwg-rs:RegionInfo",
    "-XMP-iptcExt:PersonInImage",
    "-XMP-iptcExt:PersonInImageWDetails",
    "-XMP-plus:ModelReleaseID",
    "-XMP-plus:ModelReleaseStatus",
];

/// A name or id, with the tag it came from (kept with suggestions and in the audit log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    pub value: String,
    pub tag: &'static str,
}

/// What the metadata of one file says about the people on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Embedded {
    /// Ids that may equal a person's external reference.
    pub ids: Vec<Mention>,
    /// Names, for suggestions.
    pub names: Vec<Mention>,
    /// The model release status as written (`MR-NON`, `MR-LMR`, ... or its URI), if any.
    pub release_status: Option<String>,
}

impl Embedded {
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.names.is_empty()
    }
}

/// The XMP namespaces of the tags above, as they appear in a file's XMP packet. A file that
/// contains none of them has none of these tags, so exiftool is asked only about files that
/// do (one exiftool call costs milliseconds; most photos carry no people tags).
const NAMESPACES: [&[u8]; 3] = [
    b"metadataworkinggroup.com/schemas/regions",
    b"iptc.org/std/Iptc4xmpExt",
    b"ns.useplus.org/ldf/xmp",
];

/// Looks through a file's bytes as they stream by for the namespaces above.
#[derive(Default)]
pub struct Sniffer {
    tail: Vec<u8>,
    found: bool,
}

impl Sniffer {
    const KEEP: usize = 64;

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.found || chunk.is_empty() {
            return;
        }
        // a namespace cut by chunk boundaries: search the last bytes seen with this chunk's first
        let mut joined = std::mem::take(&mut self.tail);
        joined.extend_from_slice(&chunk[..chunk.len().min(Self::KEEP)]);
        let hit = |hay: &[u8]| {
            NAMESPACES
                .iter()
                .any(|n| memchr::memmem::find(hay, n).is_some())
        };
        self.found = hit(&joined) || hit(chunk);
        // the last bytes seen, however small the chunks
        if chunk.len() >= Self::KEEP {
            joined.clear();
        } else {
            joined.truncate(joined.len() - chunk.len());
        }
        joined.extend_from_slice(chunk);
        self.tail = joined[joined.len().saturating_sub(Self::KEEP)..].to_vec();
    }

    /// Whether the bytes seen so far may name people.
    pub fn found(&self) -> bool {
        self.found
    }
}

/// Read what `path`'s metadata says about people (`Ok(empty)` when nothing, or when exiftool
/// cannot read the file).
pub fn read(tool: &mut Exiftool, path: &Path) -> Result<Embedded> {
    Ok(match tool.run(&ARGS, path)? {
        Some(json) => parse(&json),
        None => Embedded::default(),
    })
}

/// A value as text, cleaned and bounded; `None` for nothing usable.
fn text(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        // a language alternative (`PersonName` may be one): its first text
        Value::Object(m) => return m.values().find_map(text),
        Value::Array(a) => return a.iter().find_map(text),
        _ => return None,
    };
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = String::new();
    for c in cleaned.chars() {
        if out.len() + c.len_utf8() > MAX_LEN {
            break;
        }
        out.push(c);
    }
    (!out.is_empty()).then_some(out)
}

/// Every text of a value that may be one or a list of them.
fn texts(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(text).collect(),
        Some(v) => text(v).into_iter().collect(),
        None => Vec::new(),
    }
}

fn push(out: &mut Vec<Mention>, value: String, tag: &'static str) {
    if out.len() < MAX_MENTIONS && !out.iter().any(|m| m.value == value) {
        out.push(Mention { value, tag });
    }
}

/// Parse exiftool's `-j -struct` answer for one file. Anything malformed is left out, never an
/// error: the import goes on without it.
pub fn parse(json: &str) -> Embedded {
    let mut out = Embedded::default();
    let Ok(Value::Array(files)) = serde_json::from_str::<Value>(json) else {
        return out;
    };
    let Some(Value::Object(tags)) = files.into_iter().next() else {
        return out;
    };
    if let Some(Value::Object(info)) = tags.get("RegionInfo") {
        let list = match info.get("RegionList") {
            Some(Value::Array(l)) => l.clone(),
            Some(v @ Value::Object(_)) => vec![v.clone()],
            _ => Vec::new(),
        };
        for region in list.iter().take(MAX_MENTIONS) {
            let is_face = region
                .get("Type")
                .and_then(text)
                .is_none_or(|t| t.eq_ignore_ascii_case("face"));
            if !is_face {
                continue;
            }
            // the area is not used: a region outside the image still names a person
            if let Some(name) = region.get("Name").and_then(text) {
                push(&mut out.names, name, "XMP-mwg-rs:RegionName");
            }
        }
    }
    for name in texts(tags.get("PersonInImage")) {
        push(&mut out.names, name, "XMP-iptcExt:PersonInImage");
    }
    let details = match tags.get("PersonInImageWDetails") {
        Some(Value::Array(l)) => l.clone(),
        Some(v @ Value::Object(_)) => vec![v.clone()],
        _ => Vec::new(),
    };
    for d in details.iter().take(MAX_MENTIONS) {
        for id in texts(d.get("PersonId")) {
            push(&mut out.ids, id, "XMP-iptcExt:PersonId");
        }
        for name in texts(d.get("PersonName")) {
            push(&mut out.names, name, "XMP-iptcExt:PersonName");
        }
    }
    for id in texts(tags.get("ModelReleaseID")) {
        push(&mut out.ids, id, "XMP-plus:ModelReleaseID");
    }
    out.release_status = tags.get("ModelReleaseStatus").and_then(text);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ids_and_regions_are_read_and_bounded() {
        let long = "x".repeat(10_000);
        let json = format!(
            r#"[{{"SourceFile":"a.jpg",
            "RegionInfo":{{"RegionList":[
                {{"Area":{{"X":0.3,"Y":0.4,"W":0.1,"H":0.1}},"Name":"Anna de Vries","Type":"Face"}},
                {{"Area":{{"X":9.5,"Y":-3,"W":0.1,"H":0.1}},"Name":"Kees","Type":"Face"}},
                {{"Name":"Dog","Type":"Pet"}},
                {{"Name":"  Line\nbreak\u0007 name ","Type":"Face"}}]}},
            "PersonInImage":["Marja Jansen", 4711, "{long}", ""],
            "PersonInImageWDetails":[{{"PersonId":["urn:school:4711"],"PersonName":{{"x-default":"Kees Jansen"}}}}],
            "ModelReleaseID":"REL-0042","ModelReleaseStatus":"MR-LMR"}}]"#
        );
        let e = parse(&json);
        let names: Vec<&str> = e.names.iter().map(|m| m.value.as_str()).collect();
        assert_eq!(
            names[..5],
            [
                "Anna de Vries",
                "Kees",
                "Line break name",
                "Marja Jansen",
                "4711"
            ]
        );
        assert!(names.iter().all(|n| n.len() <= MAX_LEN));
        assert!(!names.contains(&"Dog"), "a pet is not a person");
        assert!(names.contains(&"Kees Jansen"));
        let ids: Vec<&str> = e.ids.iter().map(|m| m.value.as_str()).collect();
        assert_eq!(ids, ["urn:school:4711", "REL-0042"]);
        assert_eq!(e.release_status.as_deref(), Some("MR-LMR"));
    }

    #[test]
    fn garbage_gives_nothing() {
        for j in [
            "",
            "{",
            "[]",
            "[1]",
            r#"[{"RegionInfo":5,"PersonInImage":{"a":[]}}]"#,
        ] {
            assert!(parse(j).is_empty(), "{j}");
        }
        let many: Vec<String> = (0..5000).map(|i| format!("\"p{i}\"")).collect();
        let e = parse(&format!("[{{\"PersonInImage\":[{}]}}]", many.join(",")));
        assert_eq!(e.names.len(), MAX_MENTIONS);
    }

    #[test]
    fn the_sniffer_finds_a_namespace_across_chunks() {
        let xmp = b"<x:xmpmeta xmlns:Iptc4xmpExt=\"http://iptc.org/std/Iptc4xmpExt/2008-02-29/\">";
        for cut in [1, 20, 40, 60] {
            let mut s = Sniffer::default();
            s.feed(&[0u8; 1000]);
            s.feed(&xmp[..cut]);
            s.feed(&xmp[cut..]);
            assert!(s.found(), "cut at {cut}");
        }
        // one byte at a time
        let mut s = Sniffer::default();
        for b in xmp.iter() {
            s.feed(std::slice::from_ref(b));
        }
        assert!(s.found());
        let mut s = Sniffer::default();
        s.feed(b"just a photo without people tags");
        assert!(!s.found());
    }
}
