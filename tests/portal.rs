//! The consent page's invitations and purpose texts, as a privacy officer uses them from the
//! command line (DESIGN.md section 15): `portal invite|list|revoke`, `purpose describe`,
//! `purpose add --audience`, `person guardian --remove`.

mod common;

use common::TestStore;
use std::os::unix::fs::PermissionsExt;

/// A store with Anna (an adult), Tim (10) and his parents Mara and Joost.
fn family() -> TestStore {
    let t = TestStore::new();
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["person", "add", "Tim", "--born", "2016-05-01"]);
    t.ok(&["person", "add", "Mara"]);
    t.ok(&["person", "add", "Joost"]);
    t.ok(&["person", "guardian", "Tim", "Mara"]);
    t.ok(&["person", "guardian", "Tim", "Joost"]);
    t
}

fn token(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// `portal invite --json` prints one link per decider in the shape scripts rely on; the token
/// is at least 128 bits, and it is nowhere but in that output: not in the audit log, not in
/// `portal list`, not in the catalog's file.
#[test]
fn invitations_go_to_whoever_decides_and_their_tokens_are_shown_once() {
    let t = family();
    let out = t
        .ok(&[
            "--json",
            "portal",
            "invite",
            "Tim",
            "--purpose",
            "website",
            "--purpose",
            "print",
            "--base-url",
            "https://consent.example.org/",
        ])
        .json();
    let links = out.as_array().unwrap();
    assert_eq!(links.len(), 2, "{out}");
    let mut deciders: Vec<&str> = links
        .iter()
        .map(|l| l["decider"].as_str().unwrap())
        .collect();
    deciders.sort();
    assert_eq!(deciders, ["Joost", "Mara"]);
    for l in links {
        assert_eq!(l["person"], "Tim");
        let url = l["url"].as_str().unwrap();
        assert!(url.starts_with("https://consent.example.org/i/"), "{url}");
        // 43 base64url characters: 256 bits
        assert!(token(url).len() >= 22, "{url}");
        assert!(l["expires"].as_str().is_some(), "{l}");
    }
    // an adult decides alone
    let anna = t.ok(&["--json", "portal", "invite", "Anna"]).json();
    assert_eq!(anna.as_array().unwrap().len(), 1);
    assert_eq!(anna[0]["decider"], "Anna");
    let tokens: Vec<String> = links
        .iter()
        .chain(anna.as_array().unwrap())
        .map(|l| token(l["url"].as_str().unwrap()).to_string())
        .collect();
    let listed = t.ok(&["--json", "portal", "list"]).stdout;
    let audit = t.ok(&["--json", "audit", "list"]).stdout;
    assert_eq!(audit.matches("portal.invite").count(), 3, "{audit}");
    for tok in &tokens {
        assert!(!listed.contains(tok.as_str()));
        assert!(!audit.contains(tok.as_str()));
    }
    let list = t
        .ok(&["--json", "portal", "list", "--person", "Tim"])
        .json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for i in list {
        assert_eq!(i["state"], "open");
        assert_eq!(i["purposes"], serde_json::json!(["website", "print"]));
    }
}

/// A child without a guardian, an erased person, a purpose that does not rest on consent and
/// absurd options are refused, and nothing is recorded.
#[test]
fn what_cannot_be_asked_is_refused_and_changes_nothing() {
    let t = family();
    t.ok(&["person", "add", "Lotte", "--born", "2018-01-01"]);
    t.fails(&["portal", "invite", "Lotte"], "no registered guardian");
    t.ok(&[
        "purpose",
        "add",
        "records",
        "--basis",
        "legitimate-interest",
        "--retention",
        "5y",
    ]);
    t.fails(
        &["portal", "invite", "Anna", "--purpose", "records"],
        "not on consent",
    );
    t.fails(&["portal", "invite", "Anna", "--valid", "400d"], "366 days");
    t.fails(&["portal", "invite", "Anna", "--valid", "0s"], "366 days");
    t.fails(
        &[
            "portal",
            "invite",
            "Anna",
            "--valid",
            "9999999999999999999999d",
        ],
        "",
    );
    t.fails(
        &[
            "portal",
            "invite",
            "Anna",
            "--base-url",
            "javascript:alert(1)",
        ],
        "--base-url",
    );
    t.fails(&["portal", "invite", "Nobody"], "no person");
    t.fails(&["portal", "revoke", "999"], "no invitation 999");
}

/// `--csv` writes a private mail-merge file; a name that is taken is refused before any link
/// is made (a link printed nowhere could never be sent).
#[test]
fn the_mail_merge_file_is_private_and_never_overwritten() {
    let t = family();
    let csv = t.path("links.csv");
    let printed = t
        .ok(&[
            "--json",
            "portal",
            "invite",
            "Tim",
            "--csv",
            csv.to_str().unwrap(),
        ])
        .json();
    let mode = std::fs::metadata(&csv).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut r = csv::Reader::from_path(&csv).unwrap();
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        ["decider", "person", "url", "expires"]
    );
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    for (row, l) in rows.iter().zip(printed.as_array().unwrap()) {
        assert_eq!(&row[0], l["decider"].as_str().unwrap());
        assert_eq!(&row[2], l["url"].as_str().unwrap());
    }
    let before = std::fs::read(&csv).unwrap();
    t.fails(
        &["portal", "invite", "Anna", "--csv", csv.to_str().unwrap()],
        "exists",
    );
    assert_eq!(std::fs::read(&csv).unwrap(), before);
    // a symlink planted at the name is not followed
    let target = t.path("elsewhere.txt");
    std::fs::write(&target, b"keep").unwrap();
    let link = t.path("planted.csv");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    t.fails(
        &["portal", "invite", "Anna", "--csv", link.to_str().unwrap()],
        "exists",
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
}

/// Revoking by id or by person, removing a guardian and erasing a person each end links at
/// once, as `portal list` shows.
#[test]
fn links_die_when_revoked_when_a_guardian_goes_and_when_a_person_is_erased() {
    let t = family();
    t.ok(&["portal", "invite", "Tim"]);
    t.ok(&["portal", "invite", "Anna"]);
    let state = |who: &str| -> Vec<String> {
        let l = t.ok(&["--json", "portal", "list"]).json();
        l.as_array()
            .unwrap()
            .iter()
            .filter(|i| i["decider"] == who)
            .map(|i| i["state"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(state("Joost"), ["open"]);
    t.ok(&["person", "guardian", "Tim", "Joost", "--remove"]);
    assert_eq!(state("Joost"), ["revoked"]);
    assert_eq!(state("Mara"), ["open"]);
    t.fails(
        &["person", "guardian", "Tim", "Joost", "--remove"],
        "not a registered guardian",
    );
    let list = t
        .ok(&["--json", "portal", "list", "--person", "Anna"])
        .json();
    let id = list[0]["id"].as_i64().unwrap().to_string();
    let r = t.ok(&["--json", "portal", "revoke", &id]).json();
    assert_eq!(r["revoked"], serde_json::json!([list[0]["id"]]));
    assert_eq!(state("Anna"), ["revoked"]);
    t.ok(&["portal", "revoke", "--person", "Tim"]);
    assert_eq!(state("Mara"), ["revoked"]);
    // erasure leaves no invitation about or by the person
    t.ok(&["portal", "invite", "Tim"]);
    t.ok(&["person", "erase", "Mara", "--yes"]);
    let all = t.ok(&["--json", "portal", "list"]).stdout;
    assert!(!all.contains("Mara"), "{all}");
    let tims = t
        .ok(&["--json", "portal", "list", "--person", "Tim"])
        .json();
    let left: Vec<(&str, &str)> = tims
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["decider"].as_str().unwrap(), i["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        left,
        [("Joost", "revoked")],
        "only Joost's old link is left"
    );
    // and Tim, with no guardian left, cannot be asked about
    t.fails(&["portal", "invite", "Tim"], "no registered guardian");
}

/// A purpose's text and audience: set at `purpose add` or later, shown by `purpose list`,
/// audited by the hash of the text; absurd texts are refused.
#[test]
fn purposes_say_what_they_are_for_and_to_whom() {
    let t = TestStore::new();
    t.ok(&[
        "purpose",
        "add",
        "parents",
        "--audience",
        "subjects",
        "--description",
        "The class photo, shared only with the parents of the children on it.",
    ]);
    t.ok(&[
        "purpose",
        "describe",
        "website",
        "Photos on our public website, www.example.org, for at most two years.\nYou can withdraw at any time.",
    ]);
    let list = t.ok(&["--json", "purpose", "list"]).json();
    let of = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(of("parents")["audience"], "subjects");
    assert_eq!(of("website")["audience"], "staff");
    assert!(of("website")["description"]
        .as_str()
        .unwrap()
        .contains("\nYou can withdraw"));
    assert!(of("print")["description"].is_null());
    t.ok(&["purpose", "audience", "print", "subjects"]);
    assert!(t.ok(&["purpose", "list"]).stdout.contains("subjects"));
    let audit = t.ok(&["--json", "audit", "list"]).stdout;
    assert!(audit.contains("purpose.describe"));
    assert!(
        !audit.contains("public website"),
        "the audit holds the text's hash, not the text"
    );
    t.fails(&["purpose", "describe", "website", "   "], "description");
    t.fails(
        &["purpose", "describe", "website", &"x".repeat(4001)],
        "description",
    );
    t.fails(
        &["purpose", "describe", "website", "bell\u{7}"],
        "description",
    );
    t.fails(&["purpose", "describe", "nonesuch", "text"], "no purpose");
}

/// `export --max-size --watermark` writes JPEGs no larger than asked, watermarked, without any
/// metadata (the GPS position and the author the originals carry are gone), named `.jpg`,
/// recorded as renditions in the manifest; `export verify` accepts them, a `--sync` with the
/// same options keeps them, and a file that is no picture is refused, not copied.
#[test]
fn web_exports_are_small_watermarked_and_carry_no_metadata() {
    let t = TestStore::new();
    let run = |args: &[&str]| {
        let ok = std::process::Command::new(args[0])
            .args(&args[1..])
            .status()
            .unwrap()
            .success();
        assert!(ok, "{args:?}");
    };
    let src = t.path("in");
    std::fs::create_dir_all(&src).unwrap();
    let big = src.join("big.jpg");
    let png = src.join("logo.png");
    run(&[
        "convert",
        "-size",
        "3000x2000",
        "gradient:navy-gold",
        big.to_str().unwrap(),
    ]);
    run(&[
        "convert",
        "-size",
        "400x300",
        "gradient:red-white",
        png.to_str().unwrap(),
    ]);
    run(&[
        "exiftool",
        "-q",
        "-overwrite_original",
        "-GPSLatitude=52.37",
        "-GPSLatitudeRef=N",
        "-GPSLongitude=4.89",
        "-GPSLongitudeRef=E",
        "-Artist=Secret Photographer",
        big.to_str().unwrap(),
    ]);
    t.ok(&["import", src.to_str().unwrap()]);
    t.ok(&["mark", "big.jpg", "--no-persons"]);
    t.ok(&["mark", "logo.png", "--no-persons"]);
    t.add_user("root");
    t.ok(&["user", "grant", "root", "--purpose", "website"]);
    let dest = t.path("web");
    let d = dest.to_str().unwrap();
    t.ok(&[
        "export",
        "--user",
        "root",
        "--purpose",
        "website",
        d,
        "--max-size",
        "800",
        "--watermark",
        "example.org",
    ]);
    let size = |f: &str| {
        let o = std::process::Command::new("identify")
            .args(["-format", "%w %h %m"])
            .arg(dest.join(f))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    assert_eq!(size("big.jpg"), "800 533 JPEG");
    let names: Vec<String> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        size("logo.png.jpg"),
        "400 300 JPEG",
        "small pictures are not enlarged: {names:?}"
    );
    assert!(!dest.join("logo.png").exists());
    let meta = std::process::Command::new("exiftool")
        .args(["-a", "-G1", "-s"])
        .arg(dest.join("big.jpg"))
        .output()
        .unwrap();
    let meta = String::from_utf8_lossy(&meta.stdout);
    for gone in ["GPS", "Artist", "Secret Photographer", "EXIF", "XMP"] {
        assert!(!meta.contains(gone), "{gone} survived: {meta}");
    }
    let mode = std::fs::metadata(dest.join("big.jpg"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    t.ok(&["export", "verify", d]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["rendition"]["max_size"], 800);
    assert_eq!(manifest["rendition"]["watermark"], "example.org");
    // the same options again: nothing to write
    let again = t
        .ok(&[
            "--json",
            "export",
            "--user",
            "root",
            "--purpose",
            "website",
            d,
            "--sync",
            "--max-size",
            "800",
            "--watermark",
            "example.org",
        ])
        .json();
    assert_eq!(again["unchanged"], 2, "{again}");
    // other options: written anew
    let other = t
        .ok(&[
            "--json",
            "export",
            "--user",
            "root",
            "--purpose",
            "website",
            d,
            "--sync",
            "--max-size",
            "300",
        ])
        .json();
    assert_eq!(other["unchanged"], 0, "{other}");
    assert_eq!(size("big.jpg"), "300 200 JPEG");
    // a file that is no picture is refused, the export says which
    t.write("doc/notes.pdf", b"%PDF-1.4 not a picture");
    t.ok(&["import", t.path("doc").to_str().unwrap()]);
    t.ok(&["mark", "notes.pdf", "--no-persons"]);
    let r = t.run(&[
        "export",
        "--user",
        "root",
        "--purpose",
        "website",
        &format!("{d}2"),
        "--max-size",
        "300",
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("notes.pdf"), "{}", r.stderr);
    // absurd sizes are refused by the command line
    t.fails(
        &[
            "export",
            "--user",
            "root",
            "--purpose",
            "website",
            &format!("{d}3"),
            "--max-size",
            "0",
        ],
        "",
    );
    t.fails(
        &[
            "export",
            "--user",
            "root",
            "--purpose",
            "website",
            &format!("{d}3"),
            "--max-size",
            "99999",
        ],
        "",
    );
    t.fails(
        &[
            "export",
            "--user",
            "root",
            "--purpose",
            "website",
            &format!("{d}3"),
            "--watermark",
            "x",
        ],
        "",
    );
}
