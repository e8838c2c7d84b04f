//! Version thinning (issue 13, item 7): old versions go as the version policy says, their
//! content is crypto-shredded and their files removed, and what must stay stays (the current
//! version, the original, exported versions, content another version still uses).
//!
//! Versions at old times are recorded through the library with a transaction dated then
//! (what a save through the mount records, minus the mount), after a real import.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::TestStore;
use consentfs::catalog::assets;
use std::collections::{BTreeMap, HashSet};

/// Record a version of `asset` holding `content`, as saved at `at`; returns its number.
fn save_at(t: &TestStore, asset: i64, content: &[u8], at: DateTime<Utc>) -> i64 {
    let (store, mut cat) = t.open_catalog();
    let obj = store.put(&mut &content[..]).unwrap();
    let tx = cat.begin("editor", at).unwrap();
    let v = assets::add_version(&tx, asset, &obj, None).unwrap();
    tx.commit().unwrap();
    v
}

/// Many saves in one transaction each, as `save_at`, but with one open catalog.
fn save_many(t: &TestStore, asset: i64, times: &[DateTime<Utc>]) -> Vec<i64> {
    let (store, mut cat) = t.open_catalog();
    times
        .iter()
        .enumerate()
        .map(|(i, at)| {
            let content = format!("edit {i} at {at}");
            let obj = store.put(&mut content.as_bytes()).unwrap();
            let tx = cat.begin("editor", *at).unwrap();
            let v = assets::add_version(&tx, asset, &obj, None).unwrap();
            tx.commit().unwrap();
            v
        })
        .collect()
}

/// Move an asset's version back in time (its import, say).
fn backdate(t: &TestStore, asset: i64, version: i64, at: DateTime<Utc>) {
    let (_s, cat) = t.open_catalog();
    cat.conn()
        .execute(
            "UPDATE versions SET created_at = ?3 WHERE asset_id = ?1 AND version = ?2",
            rusqlite::params![asset, version, at.timestamp()],
        )
        .unwrap();
}

/// Object file name of each version.
fn objects_of(t: &TestStore, asset: i64) -> BTreeMap<i64, String> {
    let (_s, cat) = t.open_catalog();
    assets::versions(cat.conn(), asset)
        .unwrap()
        .into_iter()
        .map(|v| (v.version, v.object.hex()))
        .collect()
}

fn files_on_disk(t: &TestStore) -> HashSet<String> {
    let (store, _c) = t.open_catalog();
    store
        .list_objects()
        .unwrap()
        .into_iter()
        .map(|o| o.hex())
        .collect()
}

fn shown(t: &TestStore, asset: &str) -> Vec<serde_json::Value> {
    t.ok(&["--json", "versions", asset])
        .json()
        .as_array()
        .unwrap()
        .clone()
}

fn by_state<'a>(list: &'a [serde_json::Value], state: &str) -> Vec<&'a serde_json::Value> {
    list.iter().filter(|v| v["state"] == state).collect()
}

fn number(v: &serde_json::Value) -> i64 {
    v["version"].as_i64().unwrap()
}

/// 10:00 UTC, `days` days ago: saves a few hours later are on the same day in the store's zone.
fn morning(now: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    (now - Duration::days(days))
        .date_naive()
        .and_hms_opt(10, 0, 0)
        .unwrap()
        .and_utc()
}

/// An imported photo (asset 1) whose import was 400 days ago.
fn photo(t: &TestStore) -> DateTime<Utc> {
    t.write("a.jpg", b"the original from the camera");
    t.ok(&["import", t.path("a.jpg").to_str().unwrap()]);
    let now = Utc::now();
    backdate(t, 1, 1, now - Duration::days(400));
    now
}

/// A file saved every 8 hours for 120 days, then a few times today: the default policy keeps
/// the original, all of the last 7 days, the newest of each of the 30 days before, the newest of
/// each month before that; the rest is thinned, crypto-shredded and its files removed, and
/// the next run thins nothing more.
#[test]
fn old_versions_are_thinned_as_the_default_policy_says() {
    let t = TestStore::new();
    let now = photo(&t);
    let times: Vec<_> = (0..360)
        .map(|i| now - Duration::days(120) + Duration::hours(8 * i))
        .chain((1..=3).map(|h| now - Duration::minutes(30 * (4 - h))))
        .collect();
    let numbers = save_many(&t, 1, &times);
    let current = *numbers.last().unwrap();
    let objects = objects_of(&t, 1);
    let before = files_on_disk(&t);
    assert!(objects.values().all(|o| before.contains(o)));

    // what the next run will do is shown before it runs
    let list = shown(&t, "1");
    assert_eq!(list.len(), 364);
    let to_thin: Vec<i64> = by_state(&list, "thin").into_iter().map(number).collect();
    assert!(to_thin.len() > 250, "{} to thin", to_thin.len());
    let v1 = &list[0];
    assert_eq!(v1["state"], "kept");
    assert_eq!(v1["kept_because"], "original");
    assert_eq!(list[363]["kept_because"], "current");
    // the existing fields stay
    for f in ["version", "size", "created_at", "created_by"] {
        assert!(v1.get(f).is_some(), "field {f} is gone: {v1}");
    }

    // a dry run changes nothing
    let before_state = t.state();
    let dry = t.ok(&["--json", "versions", "thin", "--dry-run"]).json();
    assert_eq!(dry["applied"], false);
    assert_eq!(dry["versions_thinned"], to_thin.len());
    assert_eq!(t.state(), before_state, "a dry run changed the store");

    let r = t.ok(&["--json", "versions", "thin"]).json();
    assert_eq!(r["applied"], true);
    assert_eq!(r["versions_thinned"], to_thin.len());
    assert_eq!(r["objects_shredded"], to_thin.len());
    assert_eq!(r["assets"][0]["asset"], 1);

    let list = shown(&t, "1");
    let thinned: Vec<i64> = by_state(&list, "thinned").into_iter().map(number).collect();
    assert_eq!(thinned, to_thin);
    assert!(by_state(&list, "thin").is_empty());
    for v in by_state(&list, "thinned") {
        assert!(v["thinned_at"].is_string(), "{v}");
    }
    let kept = by_state(&list, "kept");
    let why = |w: &str| kept.iter().filter(|v| v["kept_because"] == w).count();
    assert_eq!(why("original"), 1);
    assert_eq!(why("current"), 1);
    // 7 days of saves every 8 hours (21 or 22), and the two of today before the current one
    let recent = times
        .iter()
        .filter(|at| **at >= now - Duration::days(7))
        .count()
        - 1;
    assert!(
        (recent - 1..=recent).contains(&why("recent")),
        "{} recent of {recent}",
        why("recent")
    );
    // 30 days touch 31 calendar days
    assert!((30..=31).contains(&why("daily")), "{} daily", why("daily"));
    // the remaining 83 days span 3 or 4 calendar months
    assert!(
        (3..=4).contains(&why("monthly")),
        "{} monthly",
        why("monthly")
    );

    // the files of thinned versions are gone, the kept ones are there
    let after = files_on_disk(&t);
    for (v, o) in &objects {
        assert_eq!(
            after.contains(o),
            !thinned.contains(v),
            "version {v}: file present = {}",
            after.contains(o)
        );
    }

    // a thinned version cannot be read or restored, and says why
    let gone = thinned[0].to_string();
    let r = t.run(&["cat", "1", "--version", &gone]);
    assert_eq!(r.code, 2);
    assert!(r.stdout.is_empty());
    assert!(
        r.stderr.contains("thinned by the version policy"),
        "{}",
        r.stderr
    );
    t.fails(&["restore", "1", "--version", &gone], "thinned");
    // the original and the current one are whole
    assert_eq!(
        t.ok(&["cat", "1", "--version", "1"]).raw,
        b"the original from the camera"
    );
    assert_eq!(
        t.ok(&["cat", "1"]).stdout,
        format!("edit 362 at {}", times[362])
    );
    assert_eq!(current, 364);

    // thinning again changes nothing
    let r = t.ok(&["--json", "versions", "thin"]).json();
    assert_eq!(r["versions_thinned"], 0);
    assert_eq!(shown(&t, "1"), list);

    // audited without names, and the chain holds
    let audit = t.ok(&["--json", "audit", "list"]).json();
    let entries = audit.as_array().unwrap();
    let thin: Vec<_> = entries
        .iter()
        .filter(|e| e["action"] == "asset.thin")
        .collect();
    assert_eq!(thin.len(), 1);
    assert_eq!(thin[0]["detail"]["asset"], 1);
    assert_eq!(
        thin[0]["detail"]["versions"].as_array().unwrap().len(),
        to_thin.len()
    );
    let runs: Vec<_> = entries
        .iter()
        .filter(|e| e["action"] == "versions.thin")
        .collect();
    assert_eq!(runs.len(), 2, "each run by hand is on record");
    assert_eq!(runs[0]["detail"]["versions"], to_thin.len());
    assert!(!audit.to_string().contains("a.jpg"));
    assert_eq!(t.run(&["audit", "verify"]).code, 0);
}

/// An object another version still uses (a restore made it current again) keeps its key and
/// file; only the thinned version loses its content.
#[test]
fn content_another_version_uses_is_not_destroyed() {
    let t = TestStore::new();
    let now = photo(&t);
    let day = morning(now, 20);
    let v2 = save_at(&t, 1, b"morning edit", day);
    let v3 = save_at(&t, 1, b"evening edit", day + Duration::hours(3));
    assert_eq!((v2, v3), (2, 3));
    // the morning edit was the good one
    t.ok(&["restore", "1", "--version", "2"]);
    let objects = objects_of(&t, 1);
    assert_eq!(objects[&2], objects[&4]);

    let r = t.ok(&["--json", "versions", "thin"]).json();
    assert_eq!(
        r["assets"][0]["versions"],
        serde_json::json!([2]),
        "{r}\n{:?}",
        shown(&t, "1")
    );
    assert_eq!(r["objects_shredded"], 0);
    assert!(files_on_disk(&t).contains(&objects[&2]));
    assert_eq!(t.ok(&["cat", "1"]).raw, b"morning edit");
    assert_eq!(
        t.ok(&["cat", "1", "--version", "3"]).raw,
        b"evening edit",
        "the newest of its day stays"
    );
    let r = t.run(&["cat", "1", "--version", "2"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("thinned"), "{}", r.stderr);
    assert_eq!(t.run(&["audit", "verify"]).code, 0);
}

/// A version that left the store in an export stays: what was published can be shown.
#[test]
fn exported_versions_are_kept() {
    let t = TestStore::new();
    let now = photo(&t);
    t.ok(&["mark", "a.jpg", "--no-persons"]);
    t.add_user("thinweb");
    t.ok(&["user", "grant", "thinweb", "--purpose", "website"]);
    let day = morning(now, 20);
    save_at(&t, 1, b"published edit", day);
    let dest = t.path("out");
    t.ok(&[
        "export",
        "--user",
        "thinweb",
        "--purpose",
        "website",
        dest.to_str().unwrap(),
    ]);
    // later the same day another edit, then today's
    save_at(&t, 1, b"later edit", day + Duration::hours(3));
    save_at(&t, 1, b"today", now - Duration::hours(1));

    let list = shown(&t, "1");
    assert_eq!(list[1]["kept_because"], "exported", "{list:?}");
    t.ok(&["versions", "thin"]);
    let list = shown(&t, "1");
    let states: Vec<_> = list
        .iter()
        .map(|v| (number(v), v["state"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        states,
        [
            (1, "kept".to_string()),
            (2, "kept".to_string()),
            (3, "kept".to_string()),
            (4, "kept".to_string())
        ]
    );
    assert_eq!(t.ok(&["cat", "1", "--version", "2"]).raw, b"published edit");
}

/// The privacy officer sets the policy; it is audited, refuses nonsense without changing
/// anything, and can go back to the default.
#[test]
fn the_policy_is_set_by_the_privacy_officer() {
    let t = TestStore::new();
    let r = t.ok(&["--json", "versions", "policy"]).json();
    assert_eq!(
        r,
        serde_json::json!({"keep_all": "7d", "daily": "30d", "monthly": "1y", "keep_original": true, "default": true})
    );
    let r = t.ok(&["versions", "policy", "--show"]);
    assert!(r.stdout.contains("(the default)"), "{}", r.stdout);

    t.ok(&[
        "versions",
        "policy",
        "--keep-all",
        "3d",
        "--daily",
        "2w",
        "--monthly",
        "forever",
    ]);
    let r = t.ok(&["--json", "versions", "policy"]).json();
    assert_eq!(
        r,
        serde_json::json!({"keep_all": "3d", "daily": "14d", "monthly": "forever", "keep_original": true, "default": false})
    );
    // `12m` is twelve minutes: refused rather than thinning a year of history
    t.fails(&["versions", "policy", "--monthly", "12m"], "12mo");
    t.fails(
        &["versions", "policy", "--daily", "1h"],
        "days, weeks, months",
    );
    t.fails(&["versions", "policy", "--original", "maybe"], "keep");
    t.ok(&["versions", "policy", "--original", "thin"]);
    assert_eq!(
        t.ok(&["--json", "versions", "policy"]).json()["keep_original"],
        false
    );
    t.ok(&["versions", "policy", "--reset"]);
    assert_eq!(
        t.ok(&["--json", "versions", "policy"]).json()["default"],
        true
    );
    let audit = t.ok(&["--json", "audit", "list"]).json();
    let set: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "versions.policy")
        .collect();
    assert_eq!(set.len(), 3);
    assert_eq!(set[0]["detail"]["monthly"], "forever");
    assert_eq!(set[2]["detail"]["default"], true);
    assert_eq!(t.run(&["audit", "verify"]).code, 0);
}

/// A policy set by the officer is what thinning applies; with the original not kept, the
/// import goes too once it is old.
#[test]
fn thinning_follows_the_policy_set() {
    let t = TestStore::new();
    let now = photo(&t);
    save_many(
        &t,
        1,
        &[
            morning(now, 5),
            morning(now, 5) + Duration::hours(1),
            now - Duration::hours(2),
        ],
    );
    // by default all four are kept (the two of 5 days ago are recent)
    t.ok(&["versions", "thin"]);
    assert!(shown(&t, "1").iter().all(|v| v["state"] == "kept"));
    t.ok(&[
        "versions",
        "policy",
        "--keep-all",
        "1d",
        "--daily",
        "10d",
        "--monthly",
        "0d",
        "--original",
        "thin",
    ]);
    let r = t.ok(&["--json", "versions", "thin"]).json();
    assert_eq!(r["assets"][0]["versions"], serde_json::json!([1, 2]));
    let list = shown(&t, "1");
    assert_eq!(list[2]["kept_because"], "daily");
    assert_eq!(list[3]["kept_because"], "current");
    t.fails(&["cat", "1", "--version", "1"], "thinned");
    assert_eq!(t.run(&["audit", "verify"]).code, 0);
}

/// `retention apply` thins too (dry run unless --yes), and the mount thins at its start.
#[test]
fn retention_apply_and_the_mount_thin_as_well() {
    let t = TestStore::new();
    let now = photo(&t);
    let day = morning(now, 20);
    save_many(&t, 1, &[day, day + Duration::hours(1), now]);
    let r = t.ok(&["--json", "retention", "apply"]).json();
    assert_eq!(r["thinning"]["versions_thinned"], 1);
    assert_eq!(
        shown(&t, "1")[1]["state"],
        "thin",
        "a dry run thins nothing"
    );
    let r = t.ok(&["--json", "retention", "apply", "--yes"]).json();
    assert_eq!(
        r["thinning"]["assets"][0]["versions"],
        serde_json::json!([2])
    );
    assert_eq!(shown(&t, "1")[1]["state"], "thinned");

    // another asset, thinned by the mount's start
    t.write("b.jpg", b"second photo");
    t.ok(&["import", t.path("b.jpg").to_str().unwrap()]);
    save_many(&t, 2, &[day, day + Duration::hours(1), now]);
    let gone = objects_of(&t, 2)[&2].clone();
    let mut m = common::mount::Mount::start(&t);
    m.stop();
    assert_eq!(shown(&t, "2")[1]["state"], "thinned");
    assert!(!files_on_disk(&t).contains(&gone));
    assert_eq!(t.run(&["audit", "verify"]).code, 0);
}

/// A catalog from before thinning (schema 8) is migrated: its versions are all kept, and the
/// default policy applies from then on.
#[test]
fn a_catalog_from_before_thinning_is_migrated() {
    let t = TestStore::new();
    let now = photo(&t);
    let day = morning(now, 20);
    save_many(&t, 1, &[day, day + Duration::hours(1), now]);
    {
        let (_s, cat) = t.open_catalog();
        cat.conn().execute_batch(common::BEFORE_FACES).unwrap();
        cat.conn()
            .execute_batch(
                "DROP INDEX consent_events_evidence;
                 ALTER TABLE versions DROP COLUMN thinned_at;
                 ALTER TABLE versions DROP COLUMN mtime_nsec;
                 ALTER TABLE versions DROP COLUMN atime;
                 ALTER TABLE versions DROP COLUMN atime_nsec;
                 DROP TABLE roles;
                 PRAGMA user_version = 8;",
            )
            .unwrap();
    }
    if t.is_team() {
        // a team library's copy of an older format is not migrated on its own: it takes the
        // library's snapshot, so that every copy holds the very same rows (tests/team.rs
        // covers a library's upgrade); what was changed in this copy alone is gone
        assert_eq!(t.run(&["audit", "verify"]).code, 0);
        return;
    }
    let list = shown(&t, "1");
    assert_eq!(list.len(), 4);
    assert_eq!(list[1]["state"], "thin");
    assert!(list.iter().all(|v| v.get("thinned_at").is_none()));
    t.ok(&["versions", "thin"]);
    assert_eq!(shown(&t, "1")[1]["state"], "thinned");
    assert_eq!(t.run(&["audit", "verify"]).code, 0);
}

/// Content a thinned version shared with a version that has since let go of it (a save
/// through the mount updates the newest version's object in place within a few seconds of the
/// previous save) is shredded at the next run, not kept forever.
#[test]
fn content_left_only_to_thinned_versions_is_shredded_later() {
    let t = TestStore::new();
    let now = photo(&t);
    let day = morning(now, 20);
    save_at(&t, 1, b"morning edit", day);
    save_at(&t, 1, b"evening edit", day + Duration::hours(3));
    t.ok(&["restore", "1", "--version", "2"]);
    t.ok(&["versions", "thin"]);
    let objects = objects_of(&t, 1);
    assert!(files_on_disk(&t).contains(&objects[&2]));
    // what `assets::replace_version` does for the next save of the same user: version 4 now
    // holds new content (here: version 3's)
    {
        let (_s, cat) = t.open_catalog();
        cat.conn()
            .execute(
                "UPDATE versions SET object_id = ?1 WHERE asset_id = 1 AND version = 4",
                [&objects[&3]],
            )
            .unwrap();
    }
    let r = t.ok(&["--json", "versions", "thin"]).json();
    assert_eq!(r["versions_thinned"], 0);
    assert_eq!(r["objects_shredded"], 1);
    assert!(!files_on_disk(&t).contains(&objects[&2]));
    assert_eq!(t.ok(&["cat", "1"]).raw, b"evening edit");
    assert_eq!(t.run(&["audit", "verify"]).code, 0);
}

/// A stored policy that cannot be read thins nothing (thinning destroys data, so it does not
/// guess), says how to fix it, and does not stop `versions`, `retention apply` or the mount;
/// setting the policy again repairs it.
#[test]
fn an_unreadable_policy_thins_nothing() {
    let t = TestStore::new();
    let now = photo(&t);
    let day = morning(now, 20);
    save_many(&t, 1, &[day, day + Duration::hours(1), now]);
    {
        let (_s, cat) = t.open_catalog();
        cat.conn()
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('version_policy', ?1)",
                [r#"{"keep_all":"7m","daily":"30d","monthly":"1y","keep_original":true}"#],
            )
            .unwrap();
    }
    t.fails(
        &["versions", "thin"],
        "set it again with `consentfs versions policy`",
    );
    let r = t.run(&["--json", "versions", "1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("cannot be read"), "{}", r.stderr);
    let r = t.run(&["--json", "retention", "apply", "--yes"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.json()["thinning"].is_null());
    let mut m = common::mount::Mount::start(&t);
    m.stop();
    assert!(shown(&t, "1").iter().all(|v| v["state"] == "kept"));

    t.ok(&["versions", "policy", "--keep-all", "7d"]);
    assert_eq!(
        t.ok(&["--json", "versions", "policy"]).json()["monthly"],
        "1y"
    );
    t.ok(&["versions", "thin"]);
    assert_eq!(shown(&t, "1")[1]["state"], "thinned");
}
