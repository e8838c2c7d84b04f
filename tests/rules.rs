//! The consent rules through the real binary: minors, guardians, special categories, explicit
//! grants, time zones and times. Every expectation here is worked out by hand from DESIGN.md §3
//! and the README (dates, codes, moments), never by calling the rules' own code.

mod common;

use common::TestStore;
use serde_json::Value;

/// A store in `zone` with one photo `events/p.jpg` linked to `persons` (added with their birth
/// dates), and user `web` with read access to `purposes`.
fn store(zone: &str, persons: &[(&str, Option<&str>)], purposes: &str) -> TestStore {
    let t = TestStore::with_timezone(zone);
    t.write("shoot/p.jpg", b"portrait");
    t.ok(&[
        "import",
        "--collection",
        "events",
        t.path("shoot").to_str().unwrap(),
    ]);
    for (name, born) in persons {
        match born {
            Some(b) => t.ok(&["person", "add", name, "--born", b]),
            None => t.ok(&["person", "add", name]),
        };
    }
    let names: Vec<&str> = persons.iter().map(|(n, _)| *n).collect();
    let mut link = vec!["link", "events/p.jpg"];
    link.extend(&names);
    t.ok(&link);
    t.add_user("web");
    t.ok(&["user", "grant", "web", "--purpose", purposes]);
    t
}

/// `(visible, reason code)` of events/p.jpg for `web` in `purpose`, per `ls --hidden --json`.
fn verdict(t: &TestStore, purpose: &str, at: Option<&str>) -> (bool, String) {
    let mut args = vec![
        "ls",
        "--user",
        "web",
        "--purpose",
        purpose,
        "--hidden",
        "--json",
    ];
    if let Some(at) = at {
        args.extend(["--at", at]);
    }
    let list = t.ok(&args).json();
    let item = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == "events/p.jpg")
        .unwrap_or_else(|| panic!("events/p.jpg not listed: {list}"))
        .clone();
    (
        item["visible"].as_bool().unwrap(),
        item["reason"].as_str().unwrap().to_string(),
    )
}

/// `why`'s verdict, as JSON, so both commands are held to the same expectation.
fn why(t: &TestStore, purpose: &str, at: Option<&str>) -> Value {
    let mut args = vec![
        "why",
        "events/p.jpg",
        "--user",
        "web",
        "--purpose",
        purpose,
        "--json",
    ];
    if let Some(at) = at {
        args.extend(["--at", at]);
    }
    t.ok(&args).json()
}

fn expect(t: &TestStore, purpose: &str, at: Option<&str>, visible: bool, code: &str) {
    assert_eq!(
        verdict(t, purpose, at),
        (visible, code.to_string()),
        "ls in {purpose} at {at:?}"
    );
    let w = why(t, purpose, at);
    assert_eq!(w["visible"], visible, "why in {purpose} at {at:?}: {w}");
    assert_eq!(w["reason"], code, "why in {purpose} at {at:?}: {w}");
}

/// The consent events of person `p`, as `consent list --json` gives them.
fn events(t: &TestStore, p: &str) -> Vec<Value> {
    t.ok(&["consent", "list", "--person", p, "--json"])
        .json()
        .as_array()
        .unwrap()
        .clone()
}

// ---------------------------------------------------------------------------------------------
// Minors and guardians
// ---------------------------------------------------------------------------------------------

#[test]
fn a_minor_needs_a_guardian_and_the_guardian_grant_outlives_the_16th_birthday() {
    // Kees is born 2016-05-05: under 16 until 2032-05-05.
    let t = store(
        "UTC",
        &[("Kees", Some("2016-05-05")), ("Marja", Some("1985-01-01"))],
        "website",
    );
    // unlink Marja: only Kees is on the photo
    t.ok(&["unlink", "events/p.jpg", "Marja"]);
    t.ok(&["person", "guardian", "Kees", "Marja"]);
    expect(&t, "website", None, false, "no_consent");
    // his own grant is refused while he is under 16, and nothing is recorded
    t.fails(
        &["consent", "grant", "Kees", "--purpose", "website"],
        "under 16",
    );
    // his own grant from his 16th birthday on is accepted and counts from then
    t.ok(&[
        "consent",
        "grant",
        "Kees",
        "--purpose",
        "website",
        "--from",
        "2032-05-05",
    ]);
    expect(&t, "website", None, false, "not_yet_started");
    expect(
        &t,
        "website",
        Some("2032-05-04T23:59:59Z"),
        false,
        "not_yet_started",
    );
    expect(
        &t,
        "website",
        Some("2032-05-05T00:00:00Z"),
        true,
        "consented",
    );
    // the guardian's grant shows it now, and still after the 16th birthday
    t.ok(&[
        "consent",
        "grant",
        "Kees",
        "--purpose",
        "website",
        "--by",
        "Marja",
    ]);
    expect(&t, "website", None, true, "consented");
    expect(&t, "website", Some("2033-01-01"), true, "consented");
}

#[test]
fn an_own_grant_of_a_minor_recorded_behind_the_cli_still_does_not_count() {
    use consentfs::catalog::consents::{record, NewEvent};
    use consentfs::policy::{EventKind, Scope};
    let t = store("UTC", &[("Kees", Some("2016-05-05"))], "website");
    // A catalog from before the CLI refused it (or edited by hand) holds Kees's own grant.
    {
        let (_store, mut cat) = t.open_catalog();
        let now = chrono::Utc::now();
        let tx = cat.begin("test", now).unwrap();
        record(
            &tx,
            &NewEvent {
                person: 1,
                kind: EventKind::Grant,
                purposes: vec![1], // website
                scope: Scope::All,
                starts: now - chrono::Duration::days(1),
                expires: None,
                given_by: 1,
                explicit: true,
                evidence: None,
            },
        )
        .unwrap();
        tx.commit().unwrap();
    }
    expect(&t, "website", None, false, "own_grant_of_minor");
    // and it does not become valid on his 16th birthday
    expect(
        &t,
        "website",
        Some("2033-01-01"),
        false,
        "own_grant_of_minor",
    );
}

#[test]
fn a_child_cannot_be_a_guardian_nor_consent_for_another() {
    let t = store(
        "UTC",
        &[
            ("Kid", Some("2020-01-01")),
            // 11 years old in 2026
            ("Young", Some("2015-01-01")),
            // 16 on 2024-03-01
            ("Teen", Some("2008-03-01")),
        ],
        "website",
    );
    t.fails(&["person", "guardian", "Kid", "Young"], "under 16");
    // Teen is 16 or older now, so may be registered ...
    t.ok(&["person", "guardian", "Kid", "Teen"]);
    // ... but a grant from a moment Teen was still 15 is refused
    t.fails(
        &[
            "consent",
            "grant",
            "Kid",
            "--purpose",
            "website",
            "--by",
            "Teen",
            "--from",
            "2024-02-29",
        ],
        "under 16",
    );
    // from the 16th birthday on it is fine
    t.ok(&[
        "consent",
        "grant",
        "Kid",
        "--purpose",
        "website",
        "--by",
        "Teen",
        "--from",
        "2024-03-01",
    ]);
    // Young and Teen are on the photo too; Kid's grant covers Kid only
    assert!(!verdict(&t, "website", None).0);
}

#[test]
fn grants_before_birth_or_in_1600_are_refused() {
    let t = store(
        "UTC",
        &[("Kid", Some("2020-01-01")), ("Mother", Some("1990-01-01"))],
        "website",
    );
    t.ok(&["person", "guardian", "Kid", "Mother"]);
    t.fails(
        &[
            "consent",
            "grant",
            "Kid",
            "--purpose",
            "website",
            "--by",
            "Mother",
            "--from",
            "2019-06-01",
        ],
        "before #1 was born",
    );
    t.fails(
        &[
            "consent",
            "grant",
            "Mother",
            "--purpose",
            "website",
            "--from",
            "1600-01-01",
        ],
        "out of range",
    );
    t.fails(
        &["person", "add", "Old", "--born", "1600-01-01"],
        "out of range",
    );
    // born on the day itself: a grant from that midnight is fine
    t.ok(&[
        "consent",
        "grant",
        "Kid",
        "--purpose",
        "website",
        "--by",
        "Mother",
        "--from",
        "2020-01-01",
    ]);
}

// ---------------------------------------------------------------------------------------------
// Special categories and explicit consent
// ---------------------------------------------------------------------------------------------

#[test]
fn special_category_photos_need_an_explicit_grant() {
    let t = store("UTC", &[("Anna", None)], "website,print");
    t.ok(&["mark", "events/p.jpg", "--special-category"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website,print"]);
    expect(&t, "website", None, false, "not_explicit");
    t.ok(&[
        "consent",
        "grant",
        "Anna",
        "--purpose",
        "website",
        "--explicit",
    ]);
    expect(&t, "website", None, true, "consented");
    // the explicit grant was for website only
    expect(&t, "print", None, false, "not_explicit");
    let list = events(&t, "Anna");
    assert_eq!(list[1]["explicit"], true);
    // unmarked, the ordinary grant suffices again
    t.ok(&["mark", "events/p.jpg", "--special-category", "--clear"]);
    expect(&t, "print", None, true, "consented");
}

#[test]
fn special_category_photos_need_explicit_consent_under_every_basis_unless_art9_exception() {
    let t = TestStore::with_timezone("UTC");
    t.ok(&[
        "purpose",
        "add",
        "archive",
        "--basis",
        "legitimate-interest",
        "--retention",
        "5y",
    ]);
    t.ok(&[
        "purpose",
        "add",
        "care",
        "--basis",
        "legitimate-interest",
        "--retention",
        "5y",
        "--art9-exception",
        "9(2)(h): medical care",
    ]);
    let listed = t.ok(&["purpose", "list", "--json"]).json();
    let care = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "care")
        .unwrap()
        .clone();
    assert_eq!(care["art9_exception"], "9(2)(h): medical care");
    t.write("shoot/p.jpg", b"portrait");
    t.ok(&[
        "import",
        "--collection",
        "events",
        t.path("shoot").to_str().unwrap(),
    ]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["link", "events/p.jpg", "Anna"]);
    t.add_user("web");
    t.ok(&["user", "grant", "web", "--purpose", "archive,care"]);

    // an ordinary photo needs no consent under legitimate interest
    expect(&t, "archive", None, true, "basis");
    t.ok(&["mark", "events/p.jpg", "--special-category"]);
    // special category: hidden without an exception, visible with one
    expect(&t, "archive", None, false, "no_explicit_consent");
    expect(&t, "care", None, true, "basis");
    // a non-explicit grant is not enough under Art. 9 ...
    t.ok(&["consent", "grant", "Anna", "--purpose", "archive"]);
    expect(&t, "archive", None, false, "not_explicit");
    // ... an explicit one is
    t.ok(&[
        "consent",
        "grant",
        "Anna",
        "--purpose",
        "archive",
        "--explicit",
    ]);
    expect(&t, "archive", None, true, "basis");
    // an objection hides it in both purposes
    t.ok(&["consent", "object", "Anna", "--purpose", "archive,care"]);
    expect(&t, "archive", None, false, "objected");
    expect(&t, "care", None, false, "objected");
    // a later non-explicit grant lifts the objection where the exception applies; in archive
    // the photo still needs explicit consent, and the reason says so (not the objection)
    t.ok(&["consent", "grant", "Anna", "--purpose", "archive,care"]);
    expect(&t, "care", None, true, "basis");
    expect(&t, "archive", None, false, "not_explicit");
    let w = why(&t, "archive", None);
    let text = w["reason_text"].as_str().unwrap();
    assert!(text.contains("explicit"), "{text}");
    assert!(!text.contains("objected"), "{text}");
}

#[test]
fn art9_exception_text_is_checked() {
    let t = TestStore::with_timezone("UTC");
    t.fails(
        &[
            "purpose",
            "add",
            "x",
            "--basis",
            "legitimate-interest",
            "--retention",
            "1y",
            "--art9-exception",
            "  ",
        ],
        "art. 9(2)",
    );
}

// ---------------------------------------------------------------------------------------------
// Time zones
// ---------------------------------------------------------------------------------------------

#[test]
fn dates_mean_local_midnight_in_the_store_zone() {
    let t = store("Europe/Amsterdam", &[("Anna", None)], "website");
    t.ok(&[
        "consent",
        "grant",
        "Anna",
        "--purpose",
        "website",
        "--until",
        "2027-03-01",
    ]);
    // 00:00 CET on 1 March 2027 is 23:00 UTC on 28 February
    assert_eq!(events(&t, "Anna")[0]["expires"], "2027-02-28T23:00:00Z");
    expect(
        &t,
        "website",
        Some("2027-02-28T22:59:59Z"),
        true,
        "consented",
    );
    expect(
        &t,
        "website",
        Some("2027-02-28T23:00:00Z"),
        false,
        "expired",
    );
    // a date given to --at is local midnight too
    expect(&t, "website", Some("2027-03-01"), false, "expired");
    expect(&t, "website", Some("2027-02-28"), true, "consented");
    // shown in the store's zone, with its name
    let text = t.ok(&["consent", "list"]).stdout;
    assert!(text.contains("until 2027-03-01 00:00 CET"), "{text}");
    let w = t.ok(&[
        "why",
        "events/p.jpg",
        "--user",
        "web",
        "--purpose",
        "website",
        "--at",
        "2027-03-02",
    ]);
    assert!(
        w.stdout.contains("expired 2027-03-01 00:00 CET"),
        "{}",
        w.stdout
    );
    // the same date in a UTC store ends at 00:00 UTC
    let u = store("UTC", &[("Anna", None)], "website");
    u.ok(&[
        "consent",
        "grant",
        "Anna",
        "--purpose",
        "website",
        "--until",
        "2027-03-01",
    ]);
    assert_eq!(events(&u, "Anna")[0]["expires"], "2027-03-01T00:00:00Z");
}

#[test]
fn a_child_turns_16_at_local_midnight() {
    // Born 2012-06-15 in Amsterdam: 16 at 00:00 CEST on 2028-06-15 = 22:00 UTC on 2028-06-14.
    let t = store(
        "Europe/Amsterdam",
        &[("Kees", Some("2012-06-15"))],
        "website",
    );
    t.fails(
        &[
            "consent",
            "grant",
            "Kees",
            "--purpose",
            "website",
            "--from",
            "2028-06-14T21:59:59Z",
        ],
        "under 16",
    );
    t.ok(&[
        "consent",
        "grant",
        "Kees",
        "--purpose",
        "website",
        "--from",
        "2028-06-14T22:00:00Z",
    ]);
    expect(&t, "website", Some("2028-06-15"), true, "consented");
    // in a UTC store the same moment is still 15
    let u = store("UTC", &[("Kees", Some("2012-06-15"))], "website");
    u.fails(
        &[
            "consent",
            "grant",
            "Kees",
            "--purpose",
            "website",
            "--from",
            "2028-06-14T22:00:00Z",
        ],
        "under 16",
    );
}

#[test]
fn init_refuses_an_unknown_time_zone_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = std::process::Command::new(common::BIN)
        .env_clear()
        .args(["--store", store.to_str().unwrap()])
        .args(["--key-file", dir.path().join("key").to_str().unwrap()])
        .args(["init", "--timezone", "Mars/Olympus_Mons"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown time zone"));
    assert!(!store.join("keyring").exists());
}

#[test]
fn init_shows_and_keeps_the_time_zone() {
    let t = TestStore::with_timezone("Europe/Amsterdam");
    let r = t.ok(&["audit", "list", "--json"]).json();
    let set: Vec<&Value> = r
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "store.timezone")
        .collect();
    assert_eq!(
        set.last().unwrap()["detail"]["timezone"],
        "Europe/Amsterdam"
    );
}

// ---------------------------------------------------------------------------------------------
// Times: fractions, spans from --from, calendar years, spans into the past
// ---------------------------------------------------------------------------------------------

#[test]
fn fractional_seconds_round_inward() {
    let t = store("UTC", &[("Anna", None)], "website");
    t.ok(&[
        "consent",
        "grant",
        "Anna",
        "--purpose",
        "website",
        "--from",
        "2030-01-01T10:00:00.5Z",
        "--until",
        "2030-01-02T10:00:00.5Z",
    ]);
    let e = &events(&t, "Anna")[0];
    assert_eq!(e["starts"], "2030-01-01T10:00:01Z");
    assert_eq!(e["expires"], "2030-01-02T10:00:00Z");
    expect(
        &t,
        "website",
        Some("2030-01-01T10:00:00.7Z"),
        false,
        "not_yet_started",
    );
    expect(
        &t,
        "website",
        Some("2030-01-01T10:00:01Z"),
        true,
        "consented",
    );
    expect(
        &t,
        "website",
        Some("2030-01-02T10:00:00.2Z"),
        false,
        "expired",
    );
}

#[test]
fn until_a_span_counts_from_the_grants_start() {
    let t = store("UTC", &[("Anna", None)], "website");
    t.ok(&[
        "consent",
        "grant",
        "Anna",
        "--purpose",
        "website",
        "--from",
        "2030-02-01",
        "--until",
        "1y",
    ]);
    assert_eq!(events(&t, "Anna")[0]["expires"], "2031-02-01T00:00:00Z");
    // months are calendar months: 31 January plus 1mo is 28 February (not 30 days)
    t.ok(&[
        "consent",
        "grant",
        "Anna",
        "--purpose",
        "print",
        "--from",
        "2031-01-31",
        "--until",
        "1mo",
    ]);
    assert_eq!(events(&t, "Anna")[1]["expires"], "2031-02-28T00:00:00Z");
}

#[test]
fn purpose_terms_count_calendar_years_and_months() {
    use chrono::{DateTime, Months, Utc};
    let t = store("UTC", &[("Anna", None)], "website");
    let v = t.ok(&["versions", "events/p.jpg", "--json"]).json();
    let imported: DateTime<Utc> = v[0]["created_at"].as_str().unwrap().parse().unwrap();
    for (term, months) in [("2y", 24u32), ("1mo", 1)] {
        t.ok(&["purpose", "retention", "website", term]);
        let ends: Vec<Value> = t
            .run(&["expiring", "--within", "3y", "--json"])
            .json()
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["kind"] == "retention_ends")
            .cloned()
            .collect();
        let expected = imported.checked_add_months(Months::new(months)).unwrap();
        assert_eq!(ends.len(), 1, "{ends:?}");
        let at: DateTime<Utc> = ends[0]["at"].as_str().unwrap().parse().unwrap();
        assert_eq!(at, expected, "{term} from {imported}");
        // and the photo disappears at that moment, not at 730 or 30 days
        t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
        let just_before = (expected - chrono::Duration::seconds(1)).to_rfc3339();
        expect(&t, "website", Some(&just_before), true, "consented");
        expect(
            &t,
            "website",
            Some(&expected.to_rfc3339()),
            false,
            "retention_ended",
        );
    }
}

#[test]
fn at_accepts_a_span_into_the_past() {
    let t = store("UTC", &[("Anna", None)], "website");
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    expect(&t, "website", None, true, "consented");
    // a day ago the grant had not started yet
    expect(&t, "website", Some("-1d"), false, "not_yet_started");
    expect(&t, "website", Some("+1d"), true, "consented");
    // a grant from a form signed two days ago
    t.ok(&[
        "consent",
        "grant",
        "Anna",
        "--purpose",
        "print",
        "--from",
        "-2d",
    ]);
    // a withdrawal cannot lie in the past, a span forward must not be negative
    t.fails(
        &[
            "consent",
            "withdraw",
            "Anna",
            "--purpose",
            "website",
            "--at",
            "-1d",
        ],
        "past",
    );
    t.fails(&["expiring", "--within", "-1d"], "negative");
    t.fails(&["purpose", "retention", "website", "-1d"], "negative");
}

#[test]
fn init_defaults_to_the_system_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let key = dir.path().join("key");
    let out = std::process::Command::new(common::BIN)
        .env_clear()
        .env("TZ", "Europe/Amsterdam")
        .args(["--store", store.to_str().unwrap()])
        .args(["--key-file", key.to_str().unwrap()])
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("time zone: Europe/Amsterdam"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the zone is the store's from now on, whatever TZ later commands run with
    let t = TestStore { dir, store, key };
    t.ok(&["person", "add", "Anna"]);
    t.ok(&[
        "consent",
        "grant",
        "Anna",
        "--purpose",
        "website",
        "--until",
        "2027-07-01",
    ]);
    assert_eq!(events(&t, "Anna")[0]["expires"], "2027-06-30T22:00:00Z");
}
