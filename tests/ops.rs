//! Operations on a whole store: `check` (a scrub), `backup`, `status`, `passphrase change`
//! and `key-file add|remove`, on real stores, through the real binary.

mod common;

use common::mount::{wait_for, Mount};
use common::{collect_files, TestStore};
use std::path::PathBuf;
use std::time::Duration;

/// The object file of an asset's current version.
fn object_file(t: &TestStore, asset: &str) -> PathBuf {
    let (_s, cat) = t.open_catalog();
    let a = consentfs::catalog::assets::resolve(cat.conn(), asset).unwrap();
    let v = consentfs::catalog::assets::version(cat.conn(), a.id, None).unwrap();
    let hex = v.object.hex();
    t.store.join("objects").join(&hex[..2]).join(&hex[2..])
}

fn asset_id(t: &TestStore, asset: &str) -> i64 {
    let (_s, cat) = t.open_catalog();
    consentfs::catalog::assets::resolve(cat.conn(), asset)
        .unwrap()
        .id
}

/// A store with four photos of some size (several chunks each).
fn photos() -> TestStore {
    let t = TestStore::new();
    for (i, name) in ["a.jpg", "b.jpg", "c.jpg", "d.jpg"].iter().enumerate() {
        let body: Vec<u8> = (0..200_000u32).map(|n| (n * 7 + i as u32) as u8).collect();
        t.write(&format!("shoot/{name}"), &body);
    }
    t.ok(&[
        "import",
        t.path("shoot").to_str().unwrap(),
        "--collection",
        "events",
    ]);
    t
}

#[test]
fn check_passes_a_clean_store_and_reports_each_kind_of_damage_with_its_asset() {
    let t = photos();
    let clean = t.run(&["check", "--json"]);
    assert_eq!(clean.code, 0, "{}{}", clean.stdout, clean.stderr);
    let j = clean.json();
    assert_eq!(j["objects"], 4);
    assert_eq!(j["clean"], true);
    assert_eq!(j["bytes"], 800_000);
    let text = t.run(&["check"]);
    assert_eq!(text.code, 0);
    assert!(
        text.stdout.contains("the store is intact"),
        "{}",
        text.stdout
    );

    // a flipped byte in a, b deleted, c truncated, d intact, and a stray file
    let (fa, fb, fc) = (
        object_file(&t, "events/a.jpg"),
        object_file(&t, "events/b.jpg"),
        object_file(&t, "events/c.jpg"),
    );
    let mut bytes = std::fs::read(&fa).unwrap();
    bytes[70_000] ^= 0x01;
    std::fs::write(&fa, &bytes).unwrap();
    std::fs::remove_file(&fb).unwrap();
    let len = std::fs::metadata(&fc).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fc)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let stray_dir = t.store.join("objects").join("ff");
    std::fs::create_dir_all(&stray_dir).unwrap();
    std::fs::write(stray_dir.join("0123456789abcdef0123456789abcd"), b"junk").unwrap();

    let r = t.run(&["check", "--json"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["clean"], false);
    let damaged = j["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 3, "{j:#}");
    let problem_of = |asset: i64| -> String {
        damaged
            .iter()
            .find(|d| {
                d["uses"].as_array().unwrap().iter().any(|u| {
                    u["asset"] == asset && u["path"].as_str().unwrap().starts_with("events/")
                })
            })
            .map(|d| d["problem"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        problem_of(asset_id(&t, "events/a.jpg")),
        "failed_authentication"
    );
    assert_eq!(problem_of(asset_id(&t, "events/b.jpg")), "missing");
    assert_eq!(problem_of(asset_id(&t, "events/c.jpg")), "wrong_length");
    assert_eq!(problem_of(asset_id(&t, "events/d.jpg")), "");
    let mut affected: Vec<i64> = j["assets_affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    affected.sort();
    let mut want = vec![
        asset_id(&t, "events/a.jpg"),
        asset_id(&t, "events/b.jpg"),
        asset_id(&t, "events/c.jpg"),
    ];
    want.sort();
    assert_eq!(affected, want);
    let orphans = j["orphans"].as_array().unwrap();
    assert_eq!(orphans.len(), 1, "{j:#}");
    assert_eq!(
        orphans[0]["file"],
        "objects/ff/0123456789abcdef0123456789abcd"
    );

    // the text report names the damage and the paths of the assets
    let r = t.run(&["check"]);
    assert_eq!(r.code, 1);
    for want in [
        "failed authentication",
        "missing",
        "wrong length",
        "events/a.jpg",
        "events/b.jpg",
        "events/c.jpg",
        "ORPHAN",
        "3 damaged object(s) affecting 3 asset(s), 1 orphan file(s)",
    ] {
        assert!(r.stdout.contains(want), "no {want:?} in {}", r.stdout);
    }
    assert!(!r.stdout.contains("events/d.jpg"), "{}", r.stdout);
    // no progress bar when stderr is not a terminal
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    // the check is on record
    let audit = t.ok(&["audit", "list", "--json"]).json();
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "store.check"));
}

#[test]
fn check_verifies_old_versions_and_evidence_and_skips_shredded_objects() {
    let t = common::small_store("opsck");
    // evidence is an object too
    t.write("form.pdf", b"signed form");
    t.ok(&[
        "consent",
        "grant",
        "Anna",
        "--purpose",
        "print",
        "--evidence",
        t.path("form.pdf").to_str().unwrap(),
    ]);
    let v1 = object_file(&t, "a.jpg");
    {
        // a second version written through the mount: a new (sparse) object
        let m = Mount::start(&t);
        std::fs::write(m.path("opsck/website/a.jpg"), vec![7u8; 150_000]).unwrap();
        let (saved, _) = wait_for(Duration::from_secs(10), || object_file(&t, "a.jpg") != v1);
        assert!(saved);
    }
    // an asset purged from the trash: its object is shredded on purpose and not checked
    t.ok(&["retention", "set", "hall.jpg", "--until", "2000-01-01"]);
    t.ok(&["retention", "apply", "--yes"]);
    t.ok(&["trash", "purge", "--all"]);
    let r = t.run(&["check", "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(
        j["objects"], 3,
        "two versions of a.jpg and the evidence: {j:#}"
    );
    assert_eq!(j["shredded"], 1, "{j:#}");
    // damage to version 1's object is found although version 2 is current
    let mut bytes = std::fs::read(&v1).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(&v1, &bytes).unwrap();
    // and the evidence file is gone
    let (_s, cat) = t.open_catalog();
    let ev: String = cat
        .conn()
        .query_row(
            "SELECT evidence_object FROM consent_events WHERE evidence_object IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(cat);
    std::fs::remove_file(t.store.join("objects").join(&ev[..2]).join(&ev[2..])).unwrap();
    let r = t.run(&["check", "--json"]);
    assert_eq!(r.code, 1);
    let j = r.json();
    let damaged = j["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 2, "{j:#}");
    let version = damaged
        .iter()
        .find(|d| d["uses"][0]["kind"] == "version")
        .unwrap();
    assert_eq!(version["problem"], "failed_authentication");
    assert_eq!(version["uses"][0]["version"], 1);
    assert_eq!(version["uses"][0]["path"], "a.jpg");
    let evidence = damaged
        .iter()
        .find(|d| d["uses"][0]["kind"] == "evidence")
        .unwrap();
    assert_eq!(evidence["problem"], "missing");
    let r = t.run(&["check"]);
    assert!(
        r.stdout.contains("evidence of consent event"),
        "{}",
        r.stdout
    );
}
