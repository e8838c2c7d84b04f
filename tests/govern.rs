//! Proving and governing, as the privacy officer and export scripts use it: exports with a
//! manifest, `export verify`, `--sync`, `--strip-location`, retention, the access log and its
//! report, person report and erasure, consent receipts, the daily expiry mail. Real binary,
//! real files, real mounts.

mod common;

use common::mount::{os_user, Mount};
use common::{collect_files, visible, TestStore};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A small real JPEG with a GPS position and an author in its EXIF data.
fn jpeg_with_gps(path: &Path, color: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let ok = Command::new("convert")
        .args([
            "-size",
            "48x32",
            &format!("xc:{color}"),
            path.to_str().unwrap(),
        ])
        .status()
        .expect("ImageMagick convert")
        .success();
    assert!(ok, "convert failed");
    let ok = Command::new("exiftool")
        .args([
            "-q",
            "-overwrite_original",
            "-GPSLatitude=52.0907",
            "-GPSLatitudeRef=N",
            "-GPSLongitude=5.1214",
            "-GPSLongitudeRef=E",
            "-XMP:GPSLatitude=52.0907",
            "-Artist=Studio Noord",
            path.to_str().unwrap(),
        ])
        .status()
        .expect("exiftool")
        .success();
    assert!(ok, "exiftool failed");
}

fn exif(path: &Path) -> String {
    let o = Command::new("exiftool")
        .args(["-a", "-G1", "-s", path.to_str().unwrap()])
        .output()
        .expect("exiftool");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Anna (adult) on a.jpg, Kees (a minor, guardian Marja) on b.jpg, both on the group photo, an
/// empty hall marked as showing no one, and a web user who may read the website purpose.
fn store() -> TestStore {
    let t = TestStore::new();
    jpeg_with_gps(&t.path("shoot/a.jpg"), "red");
    jpeg_with_gps(&t.path("shoot/b.jpg"), "green");
    jpeg_with_gps(&t.path("shoot/team/group.jpg"), "blue");
    t.write("shoot/team/hall.txt", b"the hall, nobody in it");
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
        "events/2026/team/group.jpg",
        "Anna de Vries",
        "Kees Jansen",
    ]);
    t.ok(&["mark", "events/2026/team/hall.txt", "--no-persons"]);
    t.write("forms/anna.pdf", b"%PDF signed consent form of Anna");
    t.ok(&[
        "consent",
        "grant",
        "Anna de Vries",
        "--purpose",
        "website",
        "--until",
        "1y",
        "--evidence",
        t.path("forms/anna.pdf").to_str().unwrap(),
    ]);
    t.ok(&[
        "consent",
        "grant",
        "Kees Jansen",
        "--purpose",
        "website",
        "--by",
        "Marja Jansen",
    ]);
    t.add_user("web");
    t.ok(&["user", "grant", "web", "--purpose", "website"]);
    t
}

/// The id of the asset at `path`, as `consentfs ls` shows it to the web user.
fn asset_id(t: &TestStore, path: &str) -> serde_json::Value {
    t.ok(&[
        "--json",
        "ls",
        "--user",
        "web",
        "--purpose",
        "website",
        "--hidden",
    ])
    .json()
    .as_array()
    .unwrap()
    .iter()
    .find(|i| i["path"] == path)
    .unwrap_or_else(|| panic!("no asset at {path}"))["asset"]
        .clone()
}

/// Files below `dir` (relative, sorted), without the manifest.
fn exported(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    collect_files(dir, &mut files);
    let mut out: Vec<String> = files
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap().to_string_lossy().into_owned())
        .filter(|p| p != "manifest.json")
        .collect();
    out.sort();
    out
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

fn export(t: &TestStore, dest: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--json",
        "export",
        "--user",
        "web",
        "--purpose",
        "website",
        dest.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    t.ok(&args).json()
}

#[test]
fn export_writes_the_view_and_a_manifest_that_proves_every_file() {
    let t = store();
    let dest = t.path("out");
    let summary = export(&t, &dest, &[]);
    let view = visible(&t, "web", "website");
    assert_eq!(view.len(), 4);
    assert_eq!(exported(&dest), view, "the export holds exactly the view");
    let mut added: Vec<String> = summary["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    added.sort();
    assert_eq!(added, view);

    let m = manifest(&dest);
    assert_eq!(m["user"], "web");
    assert_eq!(m["purpose"], "website");
    assert_eq!(m["export"], summary["export"]);
    assert!(m["exported_by"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(m["exported_at"].as_str().is_some());
    assert!(m["mac"].as_str().unwrap().starts_with("hmac-sha256:"));
    let events = t.ok(&["--json", "consent", "list"]).json();
    let grant_of = |name_id: i64| {
        events
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["person"] == name_id && e["kind"] == "grant")
            .unwrap()["id"]
            .clone()
    };
    for f in m["files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        let bytes = std::fs::read(dest.join(path)).unwrap();
        // the bytes are the asset's current version, and the manifest's hash is theirs
        assert_eq!(bytes, t.ok(&["cat", path]).raw, "{path}");
        assert_eq!(f["sha256"], sha256_hex(&bytes), "{path}");
        assert_eq!(f["size"], bytes.len());
        assert_eq!(f["version"], 1);
        let persons: Vec<i64> = f["persons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_i64().unwrap())
            .collect();
        let consents = f["consents"].as_array().unwrap();
        // one consent per linked person, the very event that made it visible
        assert_eq!(consents.len(), persons.len(), "{path}");
        for c in consents {
            let p = c["person"].as_i64().unwrap();
            assert!(persons.contains(&p));
            assert_eq!(c["event"], grant_of(p));
            assert_eq!(c["kind"], "grant");
            assert!(c["valid_from"].as_str().is_some());
        }
        match path {
            "events/2026/a.jpg" => {
                assert_eq!(persons, [1]);
                assert_eq!(consents[0]["evidence"], true);
                assert!(consents[0]["valid_until"].as_str().is_some(), "Anna's ends");
            }
            "events/2026/b.jpg" => {
                assert_eq!(consents[0]["given_by"], 3, "Marja gave it");
                assert_eq!(consents[0]["by_guardian"], true);
            }
            "events/2026/team/hall.txt" => assert_eq!(f["reason"], "no_persons"),
            _ => {}
        }
    }
    let r = t.ok(&["export", "verify", dest.to_str().unwrap()]);
    assert!(r.stdout.contains("verified"), "{}", r.stdout);

    // every export is in the audit log, with who exported whose view
    let audit = t.ok(&["--json", "audit", "list"]).json();
    let e = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "export")
        .expect("export in the audit log");
    assert_eq!(e["detail"]["export"], summary["export"]);
    assert_eq!(e["detail"]["user"], "web");
    assert_eq!(e["detail"]["files"], 4);
    assert_eq!(t.run(&["audit", "verify"]).code, 0);

    // a folder that holds something is never overwritten without --sync
    t.fails(
        &[
            "export",
            "--user",
            "web",
            "--purpose",
            "website",
            dest.to_str().unwrap(),
        ],
        "not empty",
    );
}

#[test]
fn sync_after_a_withdrawal_removes_the_photo_and_verify_catches_tampering() {
    let t = store();
    let dest = t.path("site");
    export(&t, &dest, &[]);
    let before = manifest(&dest);

    // Kees' guardian withdraws: the photos with Kees on them may no longer be used
    t.ok(&[
        "consent",
        "withdraw",
        "Kees Jansen",
        "--purpose",
        "website",
        "--by",
        "Marja Jansen",
    ]);
    // a new export of the view omits them
    let fresh = t.path("fresh");
    export(&t, &fresh, &[]);
    assert_eq!(
        exported(&fresh),
        ["events/2026/a.jpg", "events/2026/team/hall.txt"]
    );
    // not retroactive: the earlier export still verifies against its own manifest
    assert_eq!(t.run(&["export", "verify", dest.to_str().unwrap()]).code, 0);

    // --sync makes the earlier export equal to the view and says what it removed and why
    let s = export(&t, &dest, &["--sync"]);
    assert_eq!(
        exported(&dest),
        ["events/2026/a.jpg", "events/2026/team/hall.txt"]
    );
    let removed: Vec<&str> = s["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(removed.len(), 2);
    assert!(removed.contains(&"events/2026/b.jpg"));
    assert!(removed.contains(&"events/2026/team/group.jpg"));
    for r in s["removed"].as_array().unwrap() {
        assert!(r["reason"].as_str().unwrap().contains("withdrew"), "{r}");
    }
    assert_eq!(s["unchanged"], 2);
    assert_eq!(s["added"].as_array().unwrap().len(), 0);
    assert!(!dest.join("events/2026/team/group.jpg").exists());
    assert_ne!(manifest(&dest)["mac"], before["mac"]);
    assert_eq!(t.run(&["export", "verify", dest.to_str().unwrap()]).code, 0);

    // a new version is replaced, a new consent adds
    t.ok(&["restore", "events/2026/a.jpg", "--version", "1"]);
    t.add_user("printer");
    t.ok(&[
        "consent",
        "grant",
        "Kees Jansen",
        "--purpose",
        "website",
        "--by",
        "Marja Jansen",
    ]);
    let s = export(&t, &dest, &["--sync"]);
    assert_eq!(s["replaced"], serde_json::json!(["events/2026/a.jpg"]));
    let mut added: Vec<&str> = s["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    added.sort();
    assert_eq!(added, ["events/2026/b.jpg", "events/2026/team/group.jpg"]);
    let a = manifest(&dest)["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "events/2026/a.jpg")
        .unwrap()
        .clone();
    assert_eq!(a["version"], 2);

    // a changed file fails verify, naming it
    let target = dest.join("events/2026/b.jpg");
    let mut bytes = std::fs::read(&target).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&target, &bytes).unwrap();
    let r = t.run(&["export", "verify", dest.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("events/2026/b.jpg"), "{}", r.stdout);
    // a removed file too
    export(&t, &dest, &["--sync"]);
    std::fs::remove_file(dest.join("events/2026/team/hall.txt")).unwrap();
    let r = t.run(&["export", "verify", dest.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("hall.txt: missing"), "{}", r.stdout);
    // a file slipped in without proof
    export(&t, &dest, &["--sync"]);
    std::fs::write(dest.join("events/2026/extra.jpg"), b"no consent for this").unwrap();
    let r = t.run(&["export", "verify", dest.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("extra.jpg: not in the manifest"),
        "{}",
        r.stdout
    );
    // --sync removes it again
    let s = export(&t, &dest, &["--sync"]);
    assert_eq!(s["removed"][0]["path"], "events/2026/extra.jpg");
    assert_eq!(t.run(&["export", "verify", dest.to_str().unwrap()]).code, 0);

    // a changed manifest (someone adds a file to its list, or changes a field) fails the MAC
    let good = std::fs::read(dest.join("manifest.json")).unwrap();
    let mut m = manifest(&dest);
    m["user"] = serde_json::json!("someone-else");
    std::fs::write(
        dest.join("manifest.json"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
    let r = t.run(&["--json", "export", "verify", dest.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert_eq!(r.json()["ok"], false);
    assert!(r.stdout.contains("MAC"), "{}", r.stdout);
    // and --sync no longer trusts the folder
    t.fails(
        &[
            "export",
            "--user",
            "web",
            "--purpose",
            "website",
            "--sync",
            dest.to_str().unwrap(),
        ],
        "not an export of this store",
    );
    // the same manifest reformatted (not changed) still verifies
    std::fs::write(dest.join("manifest.json"), good).unwrap();
    let m = manifest(&dest);
    std::fs::write(dest.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    assert_eq!(t.run(&["export", "verify", dest.to_str().unwrap()]).code, 0);
    // a manifest made by another store does not verify here
    let other = TestStore::new();
    let r = other.run(&["export", "verify", dest.to_str().unwrap()]);
    assert_eq!(r.code, 1);

    // --sync refuses a folder that is not an export of this store, and touches nothing in it
    let foreign = t.path("home-of-someone");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("thesis.doc"), b"years of work").unwrap();
    t.fails(
        &[
            "export",
            "--user",
            "web",
            "--purpose",
            "website",
            "--sync",
            foreign.to_str().unwrap(),
        ],
        "not an export",
    );
    assert_eq!(
        std::fs::read(foreign.join("thesis.doc")).unwrap(),
        b"years of work"
    );
}

#[test]
fn exports_never_write_outside_the_destination() {
    let t = store();
    // Names no import would produce, as a damaged or hostile catalog could hold them.
    {
        let (_s, cat) = t.open_catalog();
        cat.conn()
            .execute(
                "UPDATE assets SET name = '../../../escaped.jpg' WHERE name = 'a.jpg'",
                [],
            )
            .unwrap();
        cat.conn()
            .execute(
                "UPDATE assets SET collection = '../../outside' WHERE name = 'b.jpg'",
                [],
            )
            .unwrap();
    }
    let outside = t.path("outside-dir");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep.txt"), b"untouched").unwrap();
    let before_root = common::mount::tree(t.dir.path());
    let dest = t.path("deep/out");
    let s = export(&t, &dest, &[]);
    let skipped: Vec<&str> = s["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["path"].as_str().unwrap())
        .collect();
    assert_eq!(skipped.len(), 2, "{s}");
    assert_eq!(
        exported(&dest),
        ["events/2026/team/group.jpg", "events/2026/team/hall.txt"]
    );
    // nothing appeared anywhere else
    let after_root: Vec<String> = common::mount::tree(t.dir.path())
        .into_iter()
        .filter(|p| !p.starts_with("deep/") && !p.starts_with("store/"))
        .collect();
    let before_root: Vec<String> = before_root
        .into_iter()
        .filter(|p| !p.starts_with("deep/") && !p.starts_with("store/"))
        .collect();
    assert_eq!(after_root, before_root);
    assert!(!t.path("escaped.jpg").exists());

    // a symlink planted in the destination (pointing outside) is replaced, never followed
    std::fs::remove_dir_all(dest.join("events/2026/team")).unwrap();
    std::os::unix::fs::symlink(&outside, dest.join("events/2026/team")).unwrap();
    let s = export(&t, &dest, &["--sync"]);
    assert!(
        s["removed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["path"] == "events/2026/team"),
        "{s}"
    );
    assert!(dest.join("events/2026/team").is_dir());
    assert!(!dest.join("events/2026/team").is_symlink());
    assert_eq!(
        exported(&dest),
        ["events/2026/team/group.jpg", "events/2026/team/hall.txt"]
    );
    let mut outside_now = Vec::new();
    collect_files(&outside, &mut outside_now);
    assert_eq!(outside_now, [outside.join("keep.txt")]);
    assert_eq!(t.run(&["export", "verify", dest.to_str().unwrap()]).code, 0);

    // never into the store itself
    t.fails(
        &[
            "export",
            "--user",
            "web",
            "--purpose",
            "website",
            t.store.join("objects/plain").to_str().unwrap(),
        ],
        "inside the store",
    );
}

#[test]
fn strip_location_removes_gps_and_keeps_the_rest() {
    let t = store();
    let dest = t.path("press");
    let s = export(&t, &dest, &["--strip-location"]);
    assert_eq!(s["location_kept"].as_array().unwrap().len(), 0);
    for f in ["events/2026/a.jpg", "events/2026/team/group.jpg"] {
        let tags = exif(&dest.join(f));
        assert!(!tags.contains("GPS"), "{f} still has GPS: {tags}");
        assert!(
            tags.contains("Studio Noord"),
            "other metadata stays: {tags}"
        );
    }
    // the store keeps the original
    let original = t.path("original.jpg");
    std::fs::write(&original, t.ok(&["cat", "events/2026/a.jpg"]).raw).unwrap();
    assert!(exif(&original).contains("GPSLatitude"));
    // the manifest proves the bytes that were written (after stripping)
    let m = manifest(&dest);
    assert_eq!(m["strip_location"], true);
    for f in m["files"].as_array().unwrap() {
        let bytes = std::fs::read(dest.join(f["path"].as_str().unwrap())).unwrap();
        assert_eq!(f["sha256"], sha256_hex(&bytes));
        assert_eq!(
            f["location_stripped"],
            f["path"].as_str().unwrap().ends_with(".jpg")
        );
    }
    assert_eq!(t.run(&["export", "verify", dest.to_str().unwrap()]).code, 0);
    // syncing with the same setting leaves everything as it is
    let s = export(&t, &dest, &["--sync", "--strip-location"]);
    assert_eq!(s["unchanged"], 4, "{s}");
    // syncing without stripping replaces the stripped images with the originals
    let s = export(&t, &dest, &["--sync"]);
    assert_eq!(s["replaced"].as_array().unwrap().len(), 4, "{s}");
    assert!(exif(&dest.join("events/2026/a.jpg")).contains("GPSLatitude"));
}

#[test]
fn opens_through_the_mount_are_logged_once_a_day_and_reported_per_person() {
    let t = store();
    os_user("cfsgov");
    t.add_user("cfsgov");
    t.ok(&["user", "grant", "cfsgov", "--purpose", "website"]);
    let mut m = Mount::start(&t);
    let a = m.path("cfsgov/website/events/2026/a.jpg");
    let group = m.path("cfsgov/website/events/2026/team/group.jpg");
    // listing and stat are not uses of a photo; opening is
    assert!(a.exists());
    let _ = common::mount::tree(&m.path("cfsgov"));
    let opens = |t: &TestStore| -> Vec<serde_json::Value> {
        t.ok(&["--json", "audit", "list"])
            .json()
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "access.open")
            .cloned()
            .collect()
    };
    assert_eq!(opens(&t).len(), 0);
    for _ in 0..3 {
        std::fs::read(&a).unwrap();
    }
    std::fs::read(&group).unwrap();
    let o = opens(&t);
    assert_eq!(o.len(), 2, "first open per user, purpose and day: {o:?}");
    assert_eq!(o[0]["detail"]["user"], "cfsgov");
    assert_eq!(o[0]["actor"], "root", "who opened it");
    assert!(o[0]["detail"]["purpose"].as_i64().is_some());
    // a restart the same day does not log the same opens again
    m.stop();
    let m = Mount::start(&t);
    std::fs::read(m.path("cfsgov/website/events/2026/a.jpg")).unwrap();
    assert_eq!(opens(&t).len(), 2);
    std::fs::read(m.path("cfsgov/website/events/2026/b.jpg")).unwrap();
    assert_eq!(opens(&t).len(), 3);

    // while another command holds the catalog (a long import), opens still work: the entry is
    // queued with its time and written when the catalog is free
    let before_open = chrono::Utc::now();
    {
        let (_s, cat) = t.open_catalog();
        cat.conn().execute_batch("BEGIN IMMEDIATE").unwrap();
        let hall = std::fs::read(m.path("cfsgov/website/events/2026/team/hall.txt")).unwrap();
        assert_eq!(hall, b"the hall, nobody in it");
        assert_eq!(opens(&t).len(), 3, "not written while the catalog is held");
        cat.conn().execute_batch("ROLLBACK").unwrap();
    }
    let (written, _) =
        common::mount::wait_for(std::time::Duration::from_secs(10), || opens(&t).len() == 4);
    assert!(
        written,
        "the queued entry was not written: {}",
        m.log_text()
    );
    let last = opens(&t).pop().unwrap();
    let at = chrono::DateTime::parse_from_rfc3339(last["at"].as_str().unwrap()).unwrap();
    assert!(at.timestamp() >= before_open.timestamp() && at <= chrono::Utc::now());
    assert_eq!(t.run(&["audit", "verify"]).code, 0);

    // the export's destination may not lie inside the mount
    let inside = m.path("cfsgov/website/events/2026/export");
    let r = t.run(&[
        "export",
        "--user",
        "web",
        "--purpose",
        "website",
        inside.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("inside the consentfs mount"),
        "{}",
        r.stderr
    );
    drop(m);

    // who used Anna's photos: two opens through the mount, an export, a cat
    let dest = t.path("out");
    export(&t, &dest, &[]);
    t.ok(&["cat", "events/2026/a.jpg"]);
    let report = t
        .ok(&[
            "--json",
            "audit",
            "report",
            "--person",
            "Anna de Vries",
            "--since",
            "72h",
        ])
        .json();
    let rows = report.as_array().unwrap();
    let kinds: Vec<(&str, i64)> = rows
        .iter()
        .map(|r| (r["action"].as_str().unwrap(), r["asset"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| k.0 == "open").count(),
        2,
        "a.jpg and the group photo: {kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| k.0 == "export").count(),
        2,
        "both of Anna's photos went out: {kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| k.0 == "cat").count(), 1);
    assert!(rows
        .iter()
        .all(|r| r["purpose"] == "website" || r["action"] == "cat"));
    assert!(rows
        .iter()
        .any(|r| r["action"] == "open" && r["user"] == "cfsgov"));
    // Kees' report does not list Anna's solo photo
    let kees = t
        .ok(&["--json", "audit", "report", "--person", "Kees Jansen"])
        .json();
    let solo = asset_id(&t, "events/2026/a.jpg");
    assert!(kees.as_array().unwrap().iter().all(|r| r["asset"] != solo));
    // nothing since tomorrow
    let later = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let none = t
        .ok(&[
            "--json",
            "audit",
            "report",
            "--person",
            "Anna de Vries",
            "--since",
            &later,
        ])
        .json();
    assert_eq!(none.as_array().unwrap().len(), 0);
    assert_eq!(t.run(&["audit", "verify"]).code, 0);
}

#[test]
fn audit_verify_detects_a_changed_or_reordered_entry() {
    let t = store();
    assert_eq!(t.run(&["audit", "verify"]).code, 0);
    // swap two whole rows (each keeps its own valid hash): the order is part of the chain
    {
        let (_s, cat) = t.open_catalog();
        let c = cat.conn();
        c.execute_batch(
            "CREATE TEMP TABLE a4 AS SELECT * FROM audit WHERE seq = 4;
             CREATE TEMP TABLE a5 AS SELECT * FROM audit WHERE seq = 5;
             UPDATE audit SET at = (SELECT at FROM a5), actor = (SELECT actor FROM a5),
                 action = (SELECT action FROM a5), detail = (SELECT detail FROM a5),
                 prev_hash = (SELECT prev_hash FROM a5), hash = (SELECT hash FROM a5) WHERE seq = 4;
             UPDATE audit SET at = (SELECT at FROM a4), actor = (SELECT actor FROM a4),
                 action = (SELECT action FROM a4), detail = (SELECT detail FROM a4),
                 prev_hash = (SELECT prev_hash FROM a4), hash = (SELECT hash FROM a4) WHERE seq = 5;",
        )
        .unwrap();
    }
    let r = t.run(&["audit", "verify"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("entry 4"), "{}", r.stdout);

    let t = store();
    {
        let (_s, cat) = t.open_catalog();
        cat.conn()
            .execute(
                "UPDATE audit SET detail = replace(detail, '\"person\":2', '\"person\":1') WHERE action = 'consent.grant'",
                [],
            )
            .unwrap();
    }
    let r = t.run(&["audit", "verify"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("changed"), "{}", r.stdout);
}

#[test]
fn retention_apply_trashes_what_expired_and_purges_the_trash_after_30_days() {
    let t = store();
    // an asset with its own term (set at import), another whose term lies ahead
    t.write("later/poster.jpg", b"poster, kept 5 years");
    t.ok(&[
        "import",
        "--retention",
        "5y",
        t.path("later").to_str().unwrap(),
    ]);
    t.ok(&[
        "retention",
        "set",
        "events/2026/team/hall.txt",
        "--until",
        "2020-01-01",
    ]);
    t.ok(&["retention", "set", "events/2026/a.jpg", "--until", "20d"]);
    // the expiry report names what ends, with the persons on it
    let r = t.run(&["--json", "expiring", "--within", "30d"]);
    assert_eq!(r.code, 1);
    let items = r.json();
    let a = items
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "retention_ends" && i["asset"] == asset_id(&t, "events/2026/a.jpg"))
        .expect("a.jpg's retention in the report");
    assert_eq!(a["persons"], serde_json::json!([1]));

    // dry run: says what would happen, changes nothing
    let before = t.state();
    let plan = t.ok(&["--json", "retention", "apply"]).json();
    assert_eq!(plan["applied"], false);
    let due: Vec<&str> = plan["to_trash"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert_eq!(due, ["events/2026/team/hall.txt"]);
    assert_eq!(before, t.state());
    // the rules hide it from the moment its term ended, apply or not
    let hidden = t
        .ok(&[
            "--json",
            "ls",
            "--user",
            "web",
            "--purpose",
            "website",
            "--hidden",
        ])
        .json();
    let hall = hidden
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == "events/2026/team/hall.txt")
        .unwrap()
        .clone();
    assert_eq!(hall["visible"], false);
    assert_eq!(hall["reason"], "retention_ended");

    t.ok(&["retention", "apply", "--yes"]);
    assert!(!visible(&t, "web", "website").contains(&"events/2026/team/hall.txt".to_string()));
    let trash = t.ok(&["--json", "trash", "list"]).json();
    assert_eq!(trash[0]["path"], "events/2026/team/hall.txt");
    // still restorable: the content is there
    t.ok(&["cat", &trash[0]["asset"].to_string()]);
    let objects_before = t.state().1.len();

    // 31 days later the trash is purged by crypto-shredding
    {
        let (_s, cat) = t.open_catalog();
        cat.conn()
            .execute(
                "UPDATE assets SET trashed_at = trashed_at - 31 * 86400 WHERE status = 'trash'",
                [],
            )
            .unwrap();
    }
    let plan = t.ok(&["--json", "retention", "apply", "--yes"]).json();
    assert_eq!(plan["to_purge"][0]["path"], "events/2026/team/hall.txt");
    assert_eq!(
        t.state().1.len(),
        objects_before - 1,
        "its object file is gone"
    );
    let r = t.run(&["cat", &trash[0]["asset"].to_string()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("shredded"), "{}", r.stderr);
    // the poster and the consent history stay; the audit log is intact
    t.ok(&["cat", "poster.jpg"]);
    assert_eq!(
        t.ok(&["--json", "consent", "list"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(t.run(&["audit", "verify"]).code, 0);
}

#[test]
fn person_report_holds_what_is_kept_about_the_person_and_nothing_of_others() {
    let t = store();
    export(&t, &t.path("out"), &[]);
    let dest = t.path("request-anna");
    t.ok(&["person", "report", "Anna de Vries", dest.to_str().unwrap()]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["person"]["name"], "Anna de Vries");
    assert_eq!(index["person"]["born"], "1990-03-01");
    let consents = index["consents"].as_array().unwrap();
    assert_eq!(consents.len(), 1);
    let evidence = consents[0]["evidence_file"].as_str().unwrap();
    assert_eq!(
        std::fs::read(dest.join(evidence)).unwrap(),
        b"%PDF signed consent form of Anna"
    );
    let photos = index["photos"].as_array().unwrap();
    let mut paths: Vec<&str> = photos.iter().map(|p| p["path"].as_str().unwrap()).collect();
    paths.sort();
    assert_eq!(paths, ["events/2026/a.jpg", "events/2026/team/group.jpg"]);
    for p in photos {
        let file = p["file"].as_str().unwrap();
        assert_eq!(
            std::fs::read(dest.join(file)).unwrap(),
            t.ok(&["cat", p["path"].as_str().unwrap()]).raw
        );
    }
    let group = photos
        .iter()
        .find(|p| p["path"] == "events/2026/team/group.jpg")
        .unwrap();
    assert_eq!(group["other_persons"], 1);
    let exports = index["exports"].as_array().unwrap();
    assert_eq!(exports.len(), 2, "both of Anna's photos were in export 1");
    assert!(exports
        .iter()
        .all(|e| e["export"] == 1 && e["user"] == "web"));
    let html = std::fs::read_to_string(dest.join("index.html")).unwrap();
    assert!(html.contains("Anna de Vries"));
    assert!(html.contains(&format!("href=\"{}\"", evidence.replace(' ', "%20"))));
    // other persons' names are theirs: not in Anna's report
    for f in ["index.json", "index.html"] {
        let text = std::fs::read_to_string(dest.join(f)).unwrap();
        assert!(!text.contains("Kees"), "{f} names another person");
        assert!(!text.contains("Marja"), "{f} names another person");
    }
    // the request is on record; a second report needs an empty folder
    let audit = t.ok(&["--json", "audit", "list"]).json();
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "person.report" && e["detail"]["person"] == 1));
    t.fails(
        &["person", "report", "Anna de Vries", dest.to_str().unwrap()],
        "not empty",
    );
}

#[test]
fn erase_shreds_the_solo_photos_and_keeps_the_proof_under_a_pseudonym() {
    let t = store();
    let pseudonym = t.ok(&["--json", "person", "list"]).json()[0]["pseudonym"]
        .as_str()
        .unwrap()
        .to_string();
    let objects_of = |t: &TestStore, path: &str| -> Vec<String> {
        let (_s, cat) = t.open_catalog();
        let mut st = cat
            .conn()
            .prepare(
                "SELECT v.object_id FROM versions v JOIN assets a ON a.id = v.asset_id
                  WHERE a.collection || '/' || a.name = ?1",
            )
            .unwrap();
        st.query_map([path], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    t.ok(&["restore", "events/2026/a.jpg", "--version", "1"]);
    let solo_objects = objects_of(&t, "events/2026/a.jpg");
    assert_eq!(solo_objects.len(), 2);
    let solo_bytes = t.ok(&["cat", "events/2026/a.jpg"]).raw;

    // dry run: lists, changes nothing
    let before = t.state();
    let plan = t.ok(&["--json", "person", "erase", "Anna de Vries"]).json();
    assert_eq!(plan["applied"], false);
    assert_eq!(plan["shredded"][0]["path"], "events/2026/a.jpg");
    assert_eq!(
        plan["group_photos_kept"][0]["path"],
        "events/2026/team/group.jpg"
    );
    assert_eq!(before, t.state());

    t.ok(&["person", "erase", "Anna de Vries", "--yes"]);
    // no readable object of the solo photo is left: files gone, keys destroyed
    let mut files = Vec::new();
    collect_files(&t.objects_dir(), &mut files);
    for o in &solo_objects {
        assert!(
            !files
                .iter()
                .any(|f| f.to_string_lossy().contains(o.as_str())),
            "object {o} still on disk"
        );
    }
    {
        let (_s, cat) = t.open_catalog();
        for o in &solo_objects {
            let key: Option<Vec<u8>> = cat
                .conn()
                .query_row("SELECT wrapped_key FROM objects WHERE id = ?1", [o], |r| {
                    r.get(0)
                })
                .unwrap();
            assert!(key.is_none(), "data key of {o} kept");
        }
        let (name, born): (Option<String>, Option<String>) = cat
            .conn()
            .query_row("SELECT name, born FROM persons WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((name, born), (None, None));
        let left: i64 = cat
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM assets WHERE name = 'a.jpg'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0, "the shredded photo's file name is gone too");
    }
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !bytes
                .windows(64)
                .any(|w| solo_bytes.windows(64).next() == Some(w)),
            "plaintext of the photo in {}",
            f.display()
        );
    }
    let r = t.run(&["cat", "events/2026/a.jpg"]);
    assert_eq!(r.code, 2);
    // the group photo stays, hidden: Anna no longer consents to anything
    assert_eq!(
        visible(&t, "web", "website"),
        ["events/2026/b.jpg", "events/2026/team/hall.txt"]
    );
    // the name is gone, the history stays, findable by pseudonym
    assert_eq!(t.run(&["person", "show", "Anna de Vries"]).code, 2);
    let history = t
        .ok(&["--json", "consent", "list", "--person", &pseudonym])
        .json();
    let kinds: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["grant", "withdraw"]);
    let receipt = t.ok(&["consent", "receipt", "1"]).json();
    assert_eq!(
        receipt["dpv:hasDataSubject"]["@id"],
        format!("urn:consentfs:person:{pseudonym}")
    );
    assert!(!t.ok(&["consent", "receipt", "1"]).stdout.contains("Anna"));
    assert_eq!(t.run(&["audit", "verify"]).code, 0);
    // no new consent for an erased person
    t.fails(
        &["consent", "grant", &pseudonym, "--purpose", "website"],
        "erased",
    );

    // with --include-group-photos the group photos go too
    let t = store();
    let group = objects_of(&t, "events/2026/team/group.jpg");
    t.ok(&[
        "person",
        "erase",
        "Kees Jansen",
        "--yes",
        "--include-group-photos",
    ]);
    let mut files = Vec::new();
    collect_files(&t.objects_dir(), &mut files);
    assert!(!files
        .iter()
        .any(|f| f.to_string_lossy().contains(group[0].as_str())));
    assert_eq!(t.run(&["cat", "events/2026/team/group.jpg"]).code, 2);
    assert_eq!(t.run(&["cat", "events/2026/b.jpg"]).code, 2);
    t.ok(&["cat", "events/2026/a.jpg"]);
}

#[test]
fn consent_receipts_use_the_w3c_data_privacy_vocabulary() {
    let t = store();
    let r = t.ok(&["consent", "receipt", "2"]).json();
    assert_eq!(r["@context"]["dpv"], "https://w3id.org/dpv#");
    assert_eq!(r["dpv:hasConsentStatus"]["@id"], "dpv:ConsentGiven");
    assert_eq!(r["dpv:hasPurpose"][0]["dct:title"], "website");
    assert_eq!(r["dpv:hasDataSubject"]["dct:identifier"], "#2");
    assert_eq!(r["dpv:isIndicatedBy"]["@type"], "dpv:Guardian");
    assert_eq!(r["dpv:isIndicatedBy"]["dct:identifier"], "#3");
    assert!(r["dpv:isIndicatedAtTime"]["@value"].as_str().is_some());
    assert!(r.get("dpv:hasExpiry").is_none(), "open-ended");
    let r = t.ok(&["consent", "receipt", "1"]).json();
    let expiry = r["dpv:hasExpiry"]["dpv:hasValue"]["@value"]
        .as_str()
        .unwrap();
    let expiry = chrono::DateTime::parse_from_rfc3339(expiry).unwrap();
    let days = (expiry.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_days();
    assert!(
        (364..=366).contains(&days),
        "granted --until 1y: {days} days"
    );
    assert_eq!(r["dpv:hasEvidence"]["dct:title"], "anna.pdf");
    assert_eq!(r["dpv:isIndicatedBy"], r["dpv:hasDataSubject"]);

    t.ok(&[
        "consent",
        "withdraw",
        "Anna de Vries",
        "--purpose",
        "website",
    ]);
    t.ok(&["consent", "refuse", "Anna de Vries", "--purpose", "print"]);
    t.ok(&[
        "consent",
        "object",
        "Anna de Vries",
        "--purpose",
        "intranet",
    ]);
    let list = t.ok(&["--json", "consent", "list"]).json();
    let id = |kind: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == kind)
            .unwrap()["id"]
            .to_string()
    };
    let r = t.ok(&["consent", "receipt", &id("withdraw")]).json();
    assert_eq!(r["dpv:hasConsentStatus"]["@id"], "dpv:ConsentWithdrawn");
    let r = t.ok(&["consent", "receipt", &id("refuse")]).json();
    assert_eq!(r["dpv:hasConsentStatus"]["@id"], "dpv:ConsentRefused");
    assert_eq!(r["dpv:hasPurpose"][0]["dct:title"], "print");
    t.fails(&["consent", "receipt", &id("object")], "not a consent");
    t.fails(&["consent", "receipt", "999"], "no consent event 999");
}

#[test]
fn the_daily_expiry_mail_sends_the_report_when_something_ends() {
    let t = store();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd/consentfs-expiring-mail");
    // a stand-in sendmail that keeps what it was given
    let bin = t.path("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let mailbox = t.path("mailbox");
    std::fs::write(
        bin.join("sendmail"),
        format!(
            "#!/bin/sh\necho \"ARGS $*\" > {0}\ncat >> {0}\n",
            mailbox.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .args(["755", bin.join("sendmail").to_str().unwrap()])
        .status()
        .unwrap();
    let run = |within: &str| {
        let out = Command::new("sh")
            .arg(&script)
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .env("CONSENTFS", common::BIN)
            .env("CONSENTFS_STORE", &t.store)
            .env("CONSENTFS_KEY_FILE", &t.key)
            .env("MAILTO", "privacy@example.org")
            .env("WITHIN", within)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // nothing ends within a day: no mail
    let (code, _) = run("1d");
    assert_eq!(code, Some(0));
    assert!(!mailbox.exists());
    // Anna's consent ends within 2 years (and Kees turns 16 within 6)
    let (code, out) = run("2y");
    assert_eq!(code, Some(0), "{out}");
    let mail = std::fs::read_to_string(&mailbox).unwrap();
    assert!(mail.starts_with("ARGS -t"), "{mail}");
    assert!(mail.contains("To: privacy@example.org"), "{mail}");
    assert!(mail.contains("Subject: consentfs"), "{mail}");
    assert!(mail.contains("Anna de Vries"), "{mail}");
    assert!(mail.contains("consent ends (website)"), "{mail}");
    // a broken store is a failed run, and the mail says so
    std::fs::remove_file(&mailbox).unwrap();
    let out = Command::new("sh")
        .arg(&script)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("CONSENTFS", common::BIN)
        .env("CONSENTFS_STORE", t.path("no-such-store"))
        .env("CONSENTFS_KEY_FILE", &t.key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(std::fs::read_to_string(&mailbox)
        .unwrap()
        .contains("FAILED"));
    // the units run that script daily
    let dir = script.parent().unwrap();
    let service = std::fs::read_to_string(dir.join("consentfs-expiring.service")).unwrap();
    assert!(service.contains("ExecStart=/usr/local/lib/consentfs/consentfs-expiring-mail"));
    let timer = std::fs::read_to_string(dir.join("consentfs-expiring.timer")).unwrap();
    assert!(timer.contains("OnCalendar=*-*-* 07:00:00"));
}

/// Final-named files (no temporary ones) below `dir`.
fn final_files(dir: &Path) -> Vec<String> {
    exported(dir)
        .into_iter()
        .filter(|f| {
            let name = f.rsplit('/').next().unwrap_or("");
            !name.starts_with(".consentfs-tmp-") && name != ".consentfs-partial"
        })
        .collect()
}

/// The private folder next to `dest` that an export writes before moving it into place.
fn partial_of(dest: &Path) -> std::path::PathBuf {
    dest.parent().unwrap().join(format!(
        ".{}.consentfs-partial",
        dest.file_name().unwrap().to_str().unwrap()
    ))
}

#[test]
fn an_export_cut_off_leaves_only_whole_files_and_sync_finishes_it() {
    let t = TestStore::new();
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..24 {
        let mut bytes = vec![0u8; 1 << 20];
        rng.fill_bytes(&mut bytes);
        t.write(&format!("big/p{i:02}.jpg"), &bytes);
    }
    t.ok(&["import", t.path("big").to_str().unwrap()]);
    let ids: Vec<String> = (1..=24).map(|i| i.to_string()).collect();
    let mut mark = vec!["mark", "--no-persons"];
    mark.extend(ids.iter().map(String::as_str));
    t.ok(&mark);
    t.add_user("web");
    t.ok(&["user", "grant", "web", "--purpose", "website"]);
    let want: Vec<String> = (0..24).map(|i| format!("p{i:02}.jpg")).collect();
    // Each round kills the export (SIGKILL) at the first moment it reaches a stage, watched
    // every millisecond, so every round cuts it somewhere real (a fixed delay often killed
    // it before it had made anything, and checked nothing). The files are written into a
    // private folder next to the destination, which is moved into place when complete.
    type Stage = (&'static str, fn(&Path) -> bool);
    let stages: [Stage; 5] = [
        ("the partial folder exists", |d| partial_of(d).exists()),
        ("a temporary file appears", |d| {
            exported(&partial_of(d)).len() > final_files(&partial_of(d)).len()
        }),
        ("the first photo is written", |d| {
            !final_files(&partial_of(d)).is_empty()
        }),
        ("half the photos are written", |d| {
            final_files(&partial_of(d)).len() >= 12
        }),
        ("the destination appears", |d| d.exists()),
    ];
    let mut cut = 0;
    for (round, (stage, reached)) in stages.iter().enumerate() {
        let dest = t.path(&format!("cut-{round}"));
        let mut child = t
            .cmd()
            .args(["export", "--user", "web", "--purpose", "website"])
            .arg(&dest)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        let finished = loop {
            if reached(&dest) {
                break child.try_wait().unwrap().is_some();
            }
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            assert!(
                start.elapsed().as_secs() < 60,
                "the export never got to: {stage}"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if !finished {
            cut += 1;
        }
        eprintln!("export killed when {stage} (had it finished: {finished})");
        // under its final name a file is whole, whatever moment the export died
        for d in [dest.clone(), partial_of(&dest)] {
            for f in final_files(&d) {
                assert_eq!(
                    std::fs::read(d.join(&f)).unwrap(),
                    std::fs::read(t.path("big").join(&f)).unwrap(),
                    "{f} is not the whole photo after an export cut off when {stage}"
                );
            }
        }
        // the destination does not exist yet, or is the whole export: an authentic export,
        // complete (0) or marked as not finished (1), never unreadable (2) or forged
        if dest.exists() {
            assert_eq!(final_files(&dest), want, "{stage}");
            let r = t.run(&["export", "verify", dest.to_str().unwrap()]);
            assert!(
                r.code == 0 || (r.code == 1 && !finished),
                "verify after a cut when {stage}: exit {} {}{}",
                r.code,
                r.stdout,
                r.stderr
            );
            assert!(!r.stdout.contains("MAC does not match"), "{}", r.stdout);
            if r.code == 1 {
                for p in r.stdout.lines() {
                    assert!(
                        p.contains("was interrupted before it finished"),
                        "an interrupted export shows only that it did not finish: {p}"
                    );
                }
            }
        } else {
            assert!(!finished, "{stage}");
        }
        // --sync finishes it, without a refusal, and then it verifies
        t.ok(&[
            "export",
            "--user",
            "web",
            "--purpose",
            "website",
            "--sync",
            dest.to_str().unwrap(),
        ]);
        let r = t.run(&["export", "verify", dest.to_str().unwrap()]);
        assert_eq!(
            r.code, 0,
            "after --sync ({stage}): {}{}",
            r.stdout, r.stderr
        );
        assert_eq!(exported(&dest), want);
        assert!(!partial_of(&dest).exists(), "{stage}");
    }
    assert!(
        cut >= 3,
        "only {cut} of {} rounds cut the export before it finished",
        stages.len()
    );
}

#[test]
fn a_consent_withdrawn_while_an_export_runs_takes_the_photo_out_again() {
    let t = TestStore::new();
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    // Anna's photo comes first; then enough others that the export is still busy after it
    for name in
        std::iter::once("a-anna.jpg".to_string()).chain((0..40).map(|i| format!("z{i:02}.jpg")))
    {
        let mut bytes = vec![0u8; 1 << 20];
        rng.fill_bytes(&mut bytes);
        t.write(&format!("big/{name}"), &bytes);
    }
    t.ok(&["import", t.path("big").to_str().unwrap()]);
    let ids: Vec<String> = (2..=41).map(|i| i.to_string()).collect();
    let mut mark = vec!["mark", "--no-persons"];
    mark.extend(ids.iter().map(String::as_str));
    t.ok(&mark);
    t.ok(&["person", "add", "Anna de Vries"]);
    t.ok(&["link", "a-anna.jpg", "Anna de Vries"]);
    t.ok(&["consent", "grant", "Anna de Vries", "--purpose", "website"]);
    t.add_user("web");
    t.ok(&["user", "grant", "web", "--purpose", "website"]);
    let dest = t.path("out");
    let child = t
        .cmd()
        .args(["--json", "export", "--user", "web", "--purpose", "website"])
        .arg(&dest)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // as soon as Anna's photo is written (into the private folder the export moves into place
    // when complete), hold the export where it is and withdraw
    let (out, _) = common::mount::wait_for(std::time::Duration::from_secs(60), || {
        partial_of(&dest).join("a-anna.jpg").exists()
    });
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    assert!(out, "the export never wrote Anna's photo");
    let written = final_files(&partial_of(&dest)).len();
    assert!(
        written < 41,
        "the export had written every file ({written}) before the withdrawal: not a test of \
         a withdrawal during an export"
    );
    t.ok(&[
        "consent",
        "withdraw",
        "Anna de Vries",
        "--purpose",
        "website",
    ]);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        summary["removed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["path"] == "a-anna.jpg"),
        "{summary}"
    );
    let files = exported(&dest);
    assert_eq!(files.len(), 40, "{files:?}");
    assert!(!files.contains(&"a-anna.jpg".to_string()));
    let m = manifest(&dest);
    assert!(m["files"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["path"] != "a-anna.jpg"));
    let r = t.run(&["export", "verify", dest.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

#[test]
fn a_purposes_retention_hides_there_and_apply_trashes_when_every_purpose_ended() {
    let t = TestStore::new();
    t.write("in/hall.jpg", b"an empty hall");
    t.ok(&["import", t.path("in").to_str().unwrap()]);
    t.ok(&["mark", "hall.jpg", "--no-persons"]);
    t.add_user("web");
    t.ok(&["user", "grant", "web", "--purpose", "website,print"]);
    t.ok(&["purpose", "retention", "website", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        visible(&t, "web", "website").is_empty(),
        "past the website's term"
    );
    assert_eq!(visible(&t, "web", "print"), ["hall.jpg"], "print keeps it");
    // print, social-media and intranet have no term: the photo may still be used there
    let plan = t.ok(&["--json", "retention", "apply"]).json();
    assert_eq!(plan["to_trash"].as_array().unwrap().len(), 0);
    for p in ["print", "social-media", "intranet"] {
        t.ok(&["purpose", "retention", p, "1s"]);
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let plan = t.ok(&["--json", "retention", "apply", "--yes"]).json();
    assert_eq!(plan["to_trash"][0]["path"], "hall.jpg");
    assert_eq!(plan["to_trash"][0]["term"], "purposes");
    assert_eq!(
        t.ok(&["--json", "trash", "list"]).json()[0]["path"],
        "hall.jpg"
    );
    // a purpose that does not rest on consent cannot lose its term
    t.ok(&[
        "purpose",
        "add",
        "archive",
        "--basis",
        "legitimate-interest",
        "--retention",
        "10y",
    ]);
    t.fails(
        &["purpose", "retention", "archive", "none"],
        "needs a retention term",
    );
    let list = t.ok(&["--json", "purpose", "list"]).json();
    let web = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "website")
        .unwrap()
        .clone();
    assert_eq!(web["retention"], "1s");
}
