//! The command line as a privacy officer and scripts use it: the real binary on a real store.

mod common;

use common::{visible, TestStore};

fn sample_store() -> TestStore {
    let t = TestStore::new();
    t.write("shoot/a.jpg", b"photo of anna");
    t.write("shoot/b.jpg", b"photo of kees");
    t.write("shoot/sub/group.jpg", b"group photo");
    t.write("shoot/sub/empty-hall.jpg", b"hall without people");
    t.ok(&[
        "import",
        "--collection",
        "events/2026",
        t.path("shoot").to_str().unwrap(),
    ]);
    t.ok(&["person", "add", "Anna de Vries", "--born", "1990-03-01"]);
    t.ok(&["person", "add", "Kees Jansen", "--born", "2016-05-05"]);
    t.ok(&["person", "add", "Marja Jansen"]);
    t.ok(&["person", "guardian", "Kees Jansen", "Marja Jansen"]);
    t.ok(&["link", "events/2026/a.jpg", "Anna de Vries"]);
    t.ok(&["link", "events/2026/b.jpg", "Kees Jansen"]);
    t.ok(&[
        "link",
        "events/2026/sub/group.jpg",
        "Anna de Vries",
        "Kees Jansen",
    ]);
    t.ok(&["mark", "events/2026/sub/empty-hall.jpg", "--no-persons"]);
    t.add_user("alice");
    t.ok(&[
        "user",
        "grant",
        "alice",
        "--purpose",
        "website,print",
        "--access",
        "write",
    ]);
    t
}

#[test]
fn import_keeps_relative_paths_and_cat_returns_the_bytes() {
    let t = sample_store();
    let a = t.ok(&["cat", "events/2026/a.jpg"]);
    assert_eq!(a.raw, b"photo of anna");
    let g = t.ok(&["cat", "events/2026/sub/group.jpg"]);
    assert_eq!(g.raw, b"group photo");
    // a file imported on its own lands directly in the collection
    let single = t.write("single.jpg", b"single");
    t.ok(&[
        "import",
        "--collection",
        "/misc//",
        single.to_str().unwrap(),
    ]);
    assert_eq!(t.ok(&["cat", "misc/single.jpg"]).raw, b"single");
}

#[test]
fn large_file_round_trips_through_import_and_cat() {
    let t = TestStore::new();
    let data: Vec<u8> = (0..(3 * 65536 + 123))
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let p = t.write("big.raw", &data);
    t.ok(&["import", p.to_str().unwrap()]);
    assert_eq!(t.ok(&["cat", "big.raw"]).raw, data);
}

#[test]
fn duplicates_are_reported_not_imported_twice() {
    let t = sample_store();
    let dup = t.write("copy-of-a.jpg", b"photo of anna");
    let r = t.ok(&["--json", "import", dup.to_str().unwrap()]);
    let out = r.json();
    assert_eq!(out[0]["status"], "duplicate");
    assert_eq!(out[0]["duplicate_of"], "events/2026/a.jpg");
    assert!(
        t.run(&["cat", "copy-of-a.jpg"]).code == 2,
        "the duplicate must not exist as an asset"
    );
    // importing the same directory again changes nothing either
    let again = t
        .ok(&[
            "--json",
            "import",
            "--collection",
            "events/2026",
            t.path("shoot").to_str().unwrap(),
        ])
        .json();
    assert!(again
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["status"] == "duplicate"));
}

#[test]
fn consent_rules_decide_what_ls_shows() {
    let t = sample_store();
    // nobody consented yet: only the photo without persons
    assert_eq!(
        visible(&t, "alice", "website"),
        vec!["events/2026/sub/empty-hall.jpg"]
    );
    t.ok(&[
        "consent",
        "grant",
        "Anna de Vries",
        "--purpose",
        "website",
        "--until",
        "1y",
    ]);
    assert_eq!(
        visible(&t, "alice", "website"),
        vec!["events/2026/a.jpg", "events/2026/sub/empty-hall.jpg"]
    );
    // Kees is a minor: his own consent is refused, his guardian's counts
    t.fails(
        &["consent", "grant", "Kees Jansen", "--purpose", "website"],
        "guardian",
    );
    t.ok(&[
        "consent",
        "grant",
        "Kees Jansen",
        "--purpose",
        "website",
        "--by",
        "Marja Jansen",
    ]);
    assert_eq!(
        visible(&t, "alice", "website"),
        vec![
            "events/2026/a.jpg",
            "events/2026/b.jpg",
            "events/2026/sub/empty-hall.jpg",
            "events/2026/sub/group.jpg"
        ]
    );
    // print has no consents
    assert_eq!(
        visible(&t, "alice", "print"),
        vec!["events/2026/sub/empty-hall.jpg"]
    );
    // a withdrawal hides every photo of that person at once, group photos included
    t.ok(&[
        "consent",
        "withdraw",
        "Anna de Vries",
        "--purpose",
        "website",
    ]);
    assert_eq!(
        visible(&t, "alice", "website"),
        vec!["events/2026/b.jpg", "events/2026/sub/empty-hall.jpg"]
    );
    // and the reason is given when asked
    let all = t
        .ok(&[
            "ls",
            "--user",
            "alice",
            "--purpose",
            "website",
            "--hidden",
            "--json",
        ])
        .json();
    let a = all
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == "events/2026/a.jpg")
        .unwrap();
    assert_eq!(a["visible"], false);
    assert_eq!(a["reason"], "withdrawn");
    assert!(a["reason_text"].as_str().unwrap().contains("Anna de Vries"));
    // ls --at looks into the future: Anna's grant is gone, Kees's stays
    let why = t
        .ok(&[
            "why",
            "events/2026/sub/group.jpg",
            "--user",
            "alice",
            "--purpose",
            "website",
            "--json",
        ])
        .json();
    assert_eq!(why["visible"], false);
    assert_eq!(why["persons"].as_array().unwrap().len(), 2);
    assert_eq!(why["persons"][1]["ok"], true);
}

#[test]
fn expiry_and_future_grants_show_in_ls_at_and_why() {
    let t = sample_store();
    // a form signed yesterday, for 30 days: `--until 30d` counts from `--from`, so it ends in 29
    t.ok(&[
        "consent",
        "grant",
        "Anna de Vries",
        "--purpose",
        "print",
        "--from",
        "-1d",
        "--until",
        "30d",
    ]);
    assert!(visible(&t, "alice", "print").contains(&"events/2026/a.jpg".to_string()));
    let later = t
        .ok(&[
            "ls",
            "--user",
            "alice",
            "--purpose",
            "print",
            "--at",
            "31d",
            "--json",
        ])
        .json();
    assert!(!later
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["path"] == "events/2026/a.jpg"));
    let why = t
        .ok(&[
            "why",
            "events/2026/a.jpg",
            "--user",
            "alice",
            "--purpose",
            "print",
            "--json",
        ])
        .json();
    assert_eq!(why["visible"], true);
    assert!(
        why["valid_until"].is_string(),
        "the expiry is reported: {why}"
    );
    let expired = t
        .ok(&[
            "why",
            "events/2026/a.jpg",
            "--user",
            "alice",
            "--purpose",
            "print",
            "--at",
            "40d",
            "--json",
        ])
        .json();
    assert_eq!(expired["reason"], "expired");
}

#[test]
fn users_see_only_their_grants() {
    let t = sample_store();
    t.ok(&[
        "consent",
        "grant",
        "Anna de Vries",
        "--purpose",
        "website,intranet",
    ]);
    t.add_user("bob");
    t.ok(&[
        "user",
        "grant",
        "bob",
        "--purpose",
        "website",
        "--collection",
        "events/2026/sub",
    ]);
    assert_eq!(
        visible(&t, "bob", "website"),
        vec!["events/2026/sub/empty-hall.jpg"]
    );
    assert!(visible(&t, "bob", "intranet").is_empty());
    assert!(
        visible(&t, "alice", "intranet").is_empty(),
        "alice has no intranet grant"
    );
}

#[test]
fn expiring_reports_consents_birthdays_and_retention_with_exit_1() {
    let t = sample_store();
    assert_eq!(t.run(&["expiring", "--within", "30d"]).code, 0);
    t.ok(&[
        "consent",
        "grant",
        "Anna de Vries",
        "--purpose",
        "website",
        "--until",
        "10d",
    ]);
    let r = t.run(&["--json", "expiring", "--within", "30d"]);
    assert_eq!(r.code, 1);
    let items = r.json();
    let item = &items[0];
    assert_eq!(item["kind"], "consent_ends");
    assert_eq!(item["name"], "Anna de Vries");
    assert_eq!(item["photos"], 2, "Anna is on a.jpg and the group photo");
    // Kees (born 2016-05-05) turns 16 in 2032
    let r = t.run(&["--json", "expiring", "--within", "6y"]);
    assert_eq!(r.code, 1);
    assert!(r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["kind"] == "turns_16" && i["name"] == "Kees Jansen"));
    // retention of a purpose on legitimate interest
    t.ok(&[
        "purpose",
        "add",
        "yearbook",
        "--basis",
        "educational",
        "--retention",
        "20d",
    ]);
    let r = t.run(&["--json", "expiring", "--within", "30d"]);
    assert!(r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["kind"] == "retention_ends"));
}

#[test]
fn legitimate_interest_needs_no_consent_but_respects_objections() {
    let t = sample_store();
    t.ok(&[
        "purpose",
        "add",
        "yearbook",
        "--basis",
        "educational",
        "--retention",
        "5y",
    ]);
    t.ok(&["user", "grant", "alice", "--purpose", "yearbook"]);
    assert_eq!(visible(&t, "alice", "yearbook").len(), 4);
    t.ok(&[
        "consent",
        "object",
        "Kees Jansen",
        "--purpose",
        "yearbook",
        "--by",
        "Marja Jansen",
    ]);
    assert_eq!(
        visible(&t, "alice", "yearbook"),
        vec!["events/2026/a.jpg", "events/2026/sub/empty-hall.jpg"]
    );
}

#[test]
fn audit_log_records_changes_and_detects_tampering() {
    let t = sample_store();
    let entries = t.ok(&["audit", "list", "--json"]).json();
    let actions: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "init",
        "asset.add",
        "person.add",
        "person.guardian",
        "asset.link",
        "asset.mark",
        "user.add",
        "user.grant",
    ] {
        assert!(actions.contains(&a), "no audit entry for {a}: {actions:?}");
    }
    assert_eq!(t.run(&["audit", "verify"]).code, 0);
    // an officer with the key edits a row behind consentfs's back
    {
        let (_s, cat) = t.open_catalog();
        cat.conn()
            .execute("UPDATE audit SET actor = 'nobody' WHERE seq = 3", [])
            .unwrap();
    }
    let r = t.run(&["audit", "verify"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("entry 3 was changed"), "{}", r.stdout);
}

#[test]
fn audit_verify_detects_removed_and_reordered_entries() {
    let t = sample_store();
    {
        let (_s, cat) = t.open_catalog();
        cat.conn()
            .execute("DELETE FROM audit WHERE seq = 5", [])
            .unwrap();
    }
    let r = t.run(&["audit", "verify"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("removed or reordered"), "{}", r.stdout);

    let t = sample_store();
    {
        let (_s, cat) = t.open_catalog();
        let last: i64 = cat
            .conn()
            .query_row("SELECT MAX(seq) FROM audit", [], |r| r.get(0))
            .unwrap();
        cat.conn()
            .execute("DELETE FROM audit WHERE seq = ?1", [last])
            .unwrap();
    }
    let r = t.run(&["audit", "verify"]);
    if t.is_team() {
        // a team library's copy has no anchor of its own (the library's log is what it is
        // checked against); the chain's head still tells
        assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("removed at the end"), "{}", r.stdout);
        return;
    }
    // the rollback anchor outside the store knows the newest entry: the catalog is refused
    // as rolled back, by `audit verify` as by every other command
    assert_eq!(
        r.code, 2,
        "removing the newest entry must be detected: {}",
        r.stdout
    );
    assert!(r.stderr.contains("rolled back"), "{}", r.stderr);
}

#[test]
fn wrong_keys_are_refused_and_change_nothing() {
    let t = sample_store();
    let other = tempfile::tempdir().unwrap();
    let other_key = other.path().join("k");
    // a key file of another store
    let mut c = std::process::Command::new(common::BIN);
    c.env("CONSENTFS_STORE", other.path().join("s"))
        .env("CONSENTFS_KEY_FILE", &other_key)
        .arg("init");
    assert!(c.status().unwrap().success());
    let before = t.state();
    let r = t
        .cmd()
        .env("CONSENTFS_KEY_FILE", &other_key)
        .args(["person", "add", "X"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("wrong key"));
    // a passphrase on a key-file store
    let pf = t.write("pass", b"secret\n");
    let r = t
        .cmd()
        .env_remove("CONSENTFS_KEY_FILE")
        .env("CONSENTFS_PASSPHRASE_FILE", &pf)
        .args(["person", "add", "X"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("wrong key"));
    assert_eq!(before, t.state());
}

#[test]
fn passphrase_store_opens_with_the_right_passphrase_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let good = dir.path().join("good");
    let bad = dir.path().join("bad");
    std::fs::write(&good, "correct horse battery staple\n").unwrap();
    std::fs::write(&bad, "Correct horse battery staple\n").unwrap();
    let run = |pf: &std::path::Path, args: &[&str]| {
        std::process::Command::new(common::BIN)
            .env_clear()
            .env("CONSENTFS_STORE", &store)
            .env("CONSENTFS_PASSPHRASE_FILE", pf)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(run(&good, &["init"]).status.success());
    assert!(run(&good, &["person", "add", "Anna"]).status.success());
    let r = run(&bad, &["person", "add", "Bert"]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("passphrase does not open"));
    let list = run(&good, &["--json", "person", "list"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(
        v.as_array().unwrap().len(),
        1,
        "the failed command added nobody"
    );
    // the keyring has no readable key material
    let ring = std::fs::read_to_string(store.join("keyring")).unwrap();
    assert!(ring.contains("argon2") || ring.contains("passphrase"));
}

#[test]
fn key_file_is_created_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestStore::new();
    assert_eq!(
        std::fs::metadata(&t.key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_second_init_and_non_stores_are_refused() {
    let t = sample_store();
    t.fails(&["init"], "already a consentfs store");
    let plain = tempfile::tempdir().unwrap();
    std::fs::write(plain.path().join("x"), b"x").unwrap();
    let r = t
        .cmd()
        .env("CONSENTFS_STORE", plain.path())
        .args(["person", "list"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("not a consentfs store"));
    let r = t
        .cmd()
        .env("CONSENTFS_STORE", plain.path())
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("not empty"));
    assert_eq!(
        std::fs::read_dir(plain.path()).unwrap().count(),
        1,
        "init left nothing behind"
    );
    let missing = t
        .cmd()
        .env("CONSENTFS_STORE", plain.path().join("nope"))
        .args(["person", "list"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn catalog_from_a_newer_version_is_refused() {
    let t = sample_store();
    {
        let (_s, cat) = t.open_catalog();
        cat.conn().pragma_update(None, "user_version", 99).unwrap();
    }
    let r = t.run(&["person", "list"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("newer than this consentfs"),
        "{}",
        r.stderr
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let t = sample_store();
    t.ok(&["person", "add", "Jan"]);
    t.ok(&["person", "add", "Jan", "--same-name"]);
    t.fails(
        &["link", "events/2026/a.jpg", "Nobody"],
        "no person named 'Nobody'",
    );
    t.fails(
        &["link", "events/2026/nope.jpg", "Anna de Vries"],
        "no asset at",
    );
    t.fails(&["link", "999", "Anna de Vries"], "no asset with id 999");
    t.fails(&["link", "events/2026/a.jpg", "Jan"], "ambiguous");
    t.fails(
        &[
            "consent",
            "grant",
            "Anna de Vries",
            "--purpose",
            "billboard",
        ],
        "no purpose 'billboard'",
    );
    t.fails(
        &["ls", "--user", "nobody", "--purpose", "website"],
        "no user 'nobody'",
    );
    t.fails(
        &[
            "consent",
            "grant",
            "Anna de Vries",
            "--purpose",
            "website",
            "--until",
            "2020-01-01",
        ],
        "in the past",
    );
    t.fails(
        &[
            "consent",
            "withdraw",
            "Anna de Vries",
            "--purpose",
            "website",
            "--at",
            "2020-01-01",
        ],
        "retroactive",
    );
    t.fails(
        &[
            "consent",
            "grant",
            "Anna de Vries",
            "--purpose",
            "website",
            "--until",
            "soon",
        ],
        "cannot read 'soon'",
    );
    t.fails(
        &["person", "guardian", "Anna de Vries", "Anna de Vries"],
        "own guardian",
    );
    t.fails(
        &[
            "consent",
            "grant",
            "Anna de Vries",
            "--purpose",
            "website",
            "--by",
            "Marja Jansen",
        ],
        "not a registered guardian",
    );
    t.fails(
        &["person", "add", "Piet", "--born", "01-02-2003"],
        "YYYY-MM-DD",
    );
    t.fails(&["user", "add", "alice"], "already exists");
    t.fails(
        &[
            "purpose",
            "add",
            "archive",
            "--basis",
            "legitimate-interest",
        ],
        "retention",
    );
    // a failed grant with evidence leaves no evidence object behind
    let ev = t.write("form.pdf", b"signed form");
    t.fails(
        &[
            "consent",
            "grant",
            "Nobody",
            "--purpose",
            "website",
            "--evidence",
            ev.to_str().unwrap(),
        ],
        "no person",
    );
}

#[test]
fn import_refuses_unreadable_input_without_importing_anything() {
    // (names that are not UTF-8 are imported byte-exact since issue 13 finding 15:
    // tests/names15.rs)
    let t = sample_store();
    // a link (here a dangling one) is never followed: skipped and named, the rest imported
    let d2 = t.path("dangling");
    std::fs::create_dir_all(&d2).unwrap();
    std::fs::write(d2.join("ok.jpg"), b"fine").unwrap();
    std::os::unix::fs::symlink("/nonexistent/file.jpg", d2.join("gone.jpg")).unwrap();
    let r = t.ok(&["import", "--collection", "dangling", d2.to_str().unwrap()]);
    assert!(
        r.stdout.contains("gone.jpg  a symbolic link"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("imported 1 file(s)"), "{}", r.stdout);
    t.fails(
        &["import", t.path("does-not-exist.jpg").to_str().unwrap()],
        "cannot read",
    );
    // a path that exists with other content
    let other = t.write("x/a.jpg", b"another photo of anna");
    t.fails(
        &[
            "import",
            "--collection",
            "events/2026",
            other.to_str().unwrap(),
        ],
        "already exists",
    );
}

#[test]
fn persons_and_events_are_listed_as_json() {
    let t = sample_store();
    t.ok(&[
        "consent",
        "grant",
        "Kees Jansen",
        "--purpose",
        "website",
        "--by",
        "Marja Jansen",
        "--collection",
        "events",
    ]);
    let persons = t.ok(&["--json", "person", "list"]).json();
    assert_eq!(persons.as_array().unwrap().len(), 3);
    let kees = persons
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Kees Jansen")
        .unwrap();
    assert_eq!(kees["guardians"].as_array().unwrap().len(), 1);
    let events = t
        .ok(&["--json", "consent", "list", "--person", "Kees Jansen"])
        .json();
    assert_eq!(events[0]["kind"], "grant");
    assert_eq!(events[0]["scope"], "collection");
    assert_eq!(events[0]["collection"], "events");
    assert_eq!(events[0]["purposes"][0], "website");
    let users = t.ok(&["--json", "user", "list"]).json();
    assert_eq!(users[0]["login"], "alice");
    let versions = t.ok(&["--json", "versions", "events/2026/a.jpg"]).json();
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[0]["size"], 13);
}

/// `role grant|revoke|list`: roles belong to users of the catalog, only the four known ones
/// exist, every change is audited, and removing a user takes their roles with them.
#[test]
fn roles_are_granted_listed_revoked_and_audited() {
    let t = TestStore::new();
    t.add_user("cfs-role-po");
    t.fails(
        &["role", "grant", "cfs-role-po", "root"],
        "the roles are admin, privacy-officer, editor, auditor",
    );
    t.fails(
        &["role", "grant", "cfs-nobody-here", "editor"],
        "cfs-nobody-here",
    );
    let out = t.ok(&["role", "grant", "cfs-role-po", "privacy-officer"]);
    assert!(
        out.stdout.contains("is now privacy-officer"),
        "{}",
        out.stdout
    );
    let again = t.ok(&["role", "grant", "cfs-role-po", "privacy-officer"]);
    assert!(again.stdout.contains("already was"), "{}", again.stdout);
    t.ok(&["role", "grant", "cfs-role-po", "auditor"]);
    let list = t.ok(&["role", "list", "--json"]).json();
    let held: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["login"].as_str().unwrap().into(),
                r["role"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        held,
        vec![
            ("cfs-role-po".to_string(), "privacy-officer".to_string()),
            ("cfs-role-po".to_string(), "auditor".to_string()),
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    t.ok(&["role", "revoke", "cfs-role-po", "auditor"]);
    let list = t.ok(&["role", "list"]).stdout;
    assert!(
        list.contains("privacy-officer") && !list.contains("auditor"),
        "{list}"
    );
    let audit = t.ok(&["audit", "list", "--json"]).json();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("role."))
        .collect();
    // the second grant of the same role changed nothing and is not an entry
    assert_eq!(actions, ["role.grant", "role.grant", "role.revoke"]);
    t.ok(&["user", "remove", "cfs-role-po"]);
    assert_eq!(
        t.ok(&["role", "list", "--json"]).json(),
        serde_json::json!([])
    );
}

/// `consentfs assets`: what is in the store, with no user set up: each photo's path, persons,
/// whether it is reviewed, and where the rules allow it now; it follows a withdrawal.
#[test]
fn assets_lists_the_store_without_any_user() {
    let t = TestStore::new();
    t.write("in/anna.jpg", b"anna");
    t.write("in/hall.jpg", b"hall");
    t.write("in/crowd.jpg", b"crowd");
    t.ok(&[
        "import",
        "--collection",
        "shoot",
        t.path("in").to_str().unwrap(),
    ]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["link", "shoot/anna.jpg", "Anna"]);
    t.ok(&["mark", "shoot/hall.jpg", "--no-persons"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website,print"]);
    let items = t.ok(&["assets", "--json"]).json();
    let by_path = |p: &str| {
        items
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["path"] == p)
            .unwrap_or_else(|| panic!("{p} not listed: {items}"))
            .clone()
    };
    let anna = by_path("shoot/anna.jpg");
    assert_eq!(anna["persons"], serde_json::json!(["Anna"]));
    assert_eq!(anna["reviewed"], true);
    assert_eq!(anna["visible_in"], serde_json::json!(["website", "print"]));
    let hall = by_path("shoot/hall.jpg");
    assert_eq!(hall["reviewed"], true);
    assert_eq!(hall["visible_in"].as_array().unwrap().len(), 4, "{hall}");
    let crowd = by_path("shoot/crowd.jpg");
    assert_eq!(crowd["reviewed"], false);
    assert_eq!(crowd["visible_in"], serde_json::json!([]));
    let text = t.ok(&["assets"]).stdout;
    assert!(
        text.contains("not reviewed") && text.contains("no persons"),
        "{text}"
    );
    t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    let items = t.ok(&["assets", "--json"]).json();
    let anna = items
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == "shoot/anna.jpg")
        .unwrap();
    assert_eq!(anna["visible_in"], serde_json::json!(["print"]));
}

/// A second person with a name already taken would make that name ambiguous in every later
/// command: `person add` asks for a reference that tells them apart, or an explicit flag.
#[test]
fn a_second_person_with_the_same_name_needs_a_reference_or_a_flag() {
    let t = TestStore::new();
    t.ok(&["person", "add", "Sam de Boer"]);
    let r = t.fails(
        &["person", "add", "Sam de Boer"],
        "exists already (person 1)",
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--ref") && r.stderr.contains("--same-name"),
        "{}",
        r.stderr
    );
    assert_eq!(
        t.ok(&["person", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    t.ok(&["person", "add", "Sam de Boer", "--ref", "S-1042"]);
    t.ok(&["person", "add", "Sam de Boer", "--same-name"]);
    assert_eq!(
        t.ok(&["person", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // and then the name alone is ambiguous, as the message warned
    t.fails(&["person", "show", "Sam de Boer"], "ambiguous");
}
