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
    t.objects_dir().join(&hex[..2]).join(&hex[2..])
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
    let stray_dir = t.objects_dir().join("ff");
    std::fs::create_dir_all(&stray_dir).unwrap();
    let stray = stray_dir.join("0123456789abcdef0123456789abcd");
    std::fs::write(&stray, b"junk").unwrap();
    // a file the catalog does not know is an orphan once it is no save in flight (older)
    let r = t.run(&["check", "--json"]);
    assert!(r.json()["orphans"].as_array().unwrap().is_empty());
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&stray)
        .unwrap()
        .set_modified(old)
        .unwrap();

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
    // (a team library's objects are in a shared folder, shown as they are)
    let want = if t.is_team() {
        t.objects_dir()
            .join("ff/0123456789abcdef0123456789abcd")
            .display()
            .to_string()
    } else {
        "objects/ff/0123456789abcdef0123456789abcd".to_string()
    };
    assert_eq!(orphans[0]["file"], want.as_str());

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
    std::fs::remove_file(t.objects_dir().join(&ev[..2]).join(&ev[2..])).unwrap();
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

/// Every file below `dir`: (path relative to it, mode bits).
fn modes(dir: &std::path::Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir) {
        let e = e.unwrap();
        let mode = e.metadata().unwrap().permissions().mode() & 0o777;
        out.push((e.path().display().to_string(), mode));
    }
    out
}

/// The content written to the `i`-th new file.
fn content(i: usize) -> Vec<u8> {
    format!("new photo {i} ").repeat(1000 + i).into_bytes()
}

#[test]
fn backup_while_the_mount_is_written_restores_to_a_store_that_mounts_and_verifies() {
    let t = common::small_store("opsbk");
    let dest = t.path("backup");
    let mut m = Mount::start(&t);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, dir) = (stop.clone(), m.path("opsbk/website"));
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let w = std::fs::write(dir.join(format!("new-{i}.jpg")), content(i))
                    // and a new version of a photo that is there from the start
                    .and_then(|()| std::fs::write(dir.join("a.jpg"), content(i)));
                if let Err(e) = w {
                    return Err(format!("write {i}: {e}"));
                }
                i += 1;
            }
            Ok(i)
        })
    };
    // wait until writes are going on
    let (going, _) = wait_for(Duration::from_secs(10), || {
        m.path("opsbk/website/new-3.jpg").exists()
    });
    assert!(going);
    let first = t.run(&["backup", dest.to_str().unwrap(), "--json"]);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let first = first.json();
    // into an empty DEST everything the catalog needs is copied; an object copied and then
    // shredded under the backup (an old version pruned by the writes) is removed again
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap();
    assert_eq!(
        n(&first, "copied") - n(&first, "removed"),
        n(&first, "objects"),
        "{first:#}"
    );
    // a scrub while the mount writes finds nothing wrong (saves in flight are no orphans)
    let scrub = t.run(&["check", "--json"]);
    assert_eq!(scrub.code, 0, "{}{}", scrub.stdout, scrub.stderr);
    // something of the user's own in DEST is left alone
    std::fs::write(dest.join("notes.txt"), b"tape 7").unwrap();
    let (more, _) = wait_for(Duration::from_secs(10), || {
        let n = std::fs::read_dir(m.path("opsbk/website"))
            .map(|d| d.count())
            .unwrap_or_else(|e| panic!("{e}: {}", m.log_text()));
        n > first["objects"].as_u64().unwrap() as usize + 3
    });
    assert!(more);
    let second = t.run(&["backup", dest.to_str().unwrap(), "--json"]);
    assert_eq!(second.code, 0, "{}{}", second.stdout, second.stderr);
    let second = second.json();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap().unwrap();
    eprintln!(
        "catalog copies: first backup {}, second {}; {written} files written",
        first["catalog_copies"], second["catalog_copies"]
    );
    // incremental: only what is new since the first run was copied
    let (objects, copied) = (
        second["objects"].as_u64().unwrap(),
        second["copied"].as_u64().unwrap(),
    );
    assert!(copied > 0 && copied < objects, "{second:#}");
    assert!(objects > first["objects"].as_u64().unwrap());
    assert_eq!(std::fs::read(dest.join("notes.txt")).unwrap(), b"tape 7");
    // private like the store
    for (path, mode) in modes(&dest) {
        if path.ends_with("notes.txt") {
            continue;
        }
        let dir = std::path::Path::new(&path).is_dir();
        assert_eq!(mode, if dir { 0o700 } else { 0o600 }, "{path}");
    }
    // still encrypted: no byte of the photos' content is in the backup
    let mut files = Vec::new();
    collect_files(&dest, &mut files);
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !bytes.windows(12).any(|w| w == b"new photo 1 "),
            "plaintext in {}",
            f.display()
        );
    }
    m.stop();

    // restored in place of the store: the rollback anchor is ahead (the backup itself was
    // recorded after the copy), so it is a restore on purpose
    let was_team = t.is_team();
    common::restore_backup(&t, &dest);
    let r = t.run(&["check"]);
    if was_team {
        // the backup of a team library's copy is a store of its own (catalog, keyring and
        // every object it needs, in its own folder): no anchor of the library's to be behind
        assert!(!t.is_team());
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    } else {
        assert_eq!(r.code, 2);
        assert!(r.stderr.contains("rolled back"), "{}", r.stderr);
    }
    let r = t.run(&["--accept-rollback", "check", "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["objects"], second["objects"]);
    t.ok(&["audit", "verify"]);
    // it mounts, and what it shows reads byte-exact
    let m = Mount::start(&t);
    let names: Vec<String> = std::fs::read_dir(m.path("opsbk/website"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut restored_new = 0;
    for n in &names {
        let got = std::fs::read(m.path(&format!("opsbk/website/{n}"))).unwrap();
        if let Some(i) = n
            .strip_prefix("new-")
            .and_then(|s| s.strip_suffix(".jpg"))
            .and_then(|s| s.parse::<usize>().ok())
        {
            assert!(i < written);
            // a file the writer had created but not yet closed when the backup's snapshot was
            // taken is in the backup as what it was then: empty (point in time)
            if !got.is_empty() {
                assert_eq!(got, content(i), "{n}");
            }
            restored_new += 1;
        } else if n == "a.jpg" {
            assert!(
                (0..written).any(|i| got == content(i)),
                "a.jpg is one of its versions"
            );
        }
    }
    assert!(restored_new >= 4, "{names:?}");
    assert_eq!(names.iter().filter(|n| *n == "hall.jpg").count(), 1);
}

#[test]
fn backup_refuses_a_dest_in_the_store_or_the_mount_or_someone_elses_folder() {
    let t = common::small_store("opsbr");
    let m = Mount::start(&t);
    let inside = t.store.join("objects").join("bk");
    t.fails(&["backup", inside.to_str().unwrap()], "inside the store");
    assert!(!inside.exists());
    let through = m.path("opsbr/website/bk");
    t.fails(
        &["backup", through.to_str().unwrap()],
        "inside the consentfs mount",
    );
    drop(m);
    let busy = t.path("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("thesis.doc"), b"mine").unwrap();
    t.fails(&["backup", busy.to_str().unwrap()], "not empty");
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);
    // a backup of another store is never overwritten
    let other = TestStore::new();
    let theirs = t.path("theirs");
    other.ok(&["backup", theirs.to_str().unwrap()]);
    t.fails(&["backup", theirs.to_str().unwrap()], "another store");
}

#[test]
fn a_second_backup_removes_the_objects_shredded_since_and_nothing_else() {
    let t = photos();
    let dest = t.path("bk");
    let r = t.ok(&["backup", dest.to_str().unwrap(), "--json"]).json();
    assert_eq!(
        (r["objects"].as_u64(), r["copied"].as_u64()),
        (Some(4), Some(4))
    );
    let gone = object_file(&t, "events/d.jpg");
    let in_backup = dest
        .join("objects")
        .join(gone.strip_prefix(t.objects_dir()).unwrap());
    assert!(in_backup.exists());
    t.ok(&["retention", "set", "events/d.jpg", "--until", "2000-01-01"]);
    t.ok(&["retention", "apply", "--yes"]);
    t.ok(&["trash", "purge", "--all"]);
    // what an interrupted run leaves is taken up by the next one
    std::fs::write(dest.join("catalog.db.partial"), b"half a catalog").unwrap();
    let half = dest.join("objects/ab/0123456789abcdef0123456789abcd.tmp");
    std::fs::create_dir_all(half.parent().unwrap()).unwrap();
    std::fs::write(&half, b"half an object").unwrap();
    let r = t.ok(&["backup", dest.to_str().unwrap(), "--json"]).json();
    assert!(!dest.join("catalog.db.partial").exists());
    assert!(!half.exists());
    assert_eq!(r["objects"], 3);
    assert_eq!(r["copied"], 0);
    assert_eq!(r["removed"], 1);
    assert!(!in_backup.exists());
    let mut files = Vec::new();
    collect_files(&dest.join("objects"), &mut files);
    assert_eq!(files.len(), 3);
    // a run stopped before its first catalog was in place left only its claim: taken up
    let fresh = t.path("fresh");
    std::fs::create_dir(&fresh).unwrap();
    std::fs::copy(dest.join("backup.json"), fresh.join("backup.json")).unwrap();
    let r = t.ok(&["backup", fresh.to_str().unwrap(), "--json"]).json();
    assert_eq!(r["copied"], 3);
}

#[test]
fn status_says_where_and_since_when_the_store_is_mounted_and_what_it_holds() {
    let t = common::small_store("opsst");
    t.ok(&["person", "add", "Ben"]);
    t.ok(&[
        "consent",
        "grant",
        "Ben",
        "--purpose",
        "print",
        "--until",
        "2099-06-01",
    ]);
    t.ok(&[
        "consent",
        "grant",
        "Anna",
        "--purpose",
        "print",
        "--until",
        "2098-03-01",
    ]);
    let s = t.ok(&["status", "--json"]).json();
    assert_eq!(s["mounted"], false);
    assert!(s["daemon"].is_null());
    assert_eq!(s["assets"], 2);
    assert_eq!(s["users"], 1);
    assert_eq!(s["persons"], 2);
    assert_eq!(s["objects"], 2);
    assert_eq!(s["next_expiry_kind"], "consent_ends");
    assert!(
        s["next_expiry"].as_str().unwrap().starts_with("2098-03-01"),
        "{s:#}"
    );
    assert_eq!(s["last_change"]["action"], "consent.grant", "{s:#}");
    assert_eq!(s["versions"]["consentfs"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        s["versions"]["catalog_schema"],
        s["versions"]["catalog_schema_supported"]
    );
    let text = t.ok(&["status"]).stdout;
    assert!(text.contains("mounted      no"), "{text}");
    // earlier: a child turns 16 in ten days, then an asset's own retention ends in 5 days,
    // then a purpose's term (from import) ends in 3
    let born = (chrono::Utc::now() + chrono::Duration::days(10))
        .date_naive()
        .checked_sub_months(chrono::Months::new(192))
        .unwrap();
    t.ok(&["person", "add", "Kees", "--born", &born.to_string()]);
    let next = |t: &TestStore| {
        let s = t.ok(&["status", "--json"]).json();
        (
            s["next_expiry_kind"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            s["next_expiry"].as_str().unwrap_or_default().to_string(),
        )
    };
    assert_eq!(next(&t).0, "turns_16");
    t.ok(&["retention", "set", "a.jpg", "--until", "5d"]);
    let (kind, at) = next(&t);
    assert_eq!(kind, "retention_ends");
    let at: chrono::DateTime<chrono::Utc> = at.parse().unwrap();
    assert!(at < chrono::Utc::now() + chrono::Duration::days(6));
    t.ok(&["purpose", "retention", "print", "3d"]);
    let (kind, at) = next(&t);
    assert_eq!(kind, "retention_ends");
    let at: chrono::DateTime<chrono::Utc> = at.parse().unwrap();
    assert!(at < chrono::Utc::now() + chrono::Duration::days(4), "{at}");
    // what `expiring` lists first is what status names
    let expiring = t.run(&["expiring", "--within", "30d", "--json"]);
    assert_eq!(expiring.code, 1);
    let first = &expiring.json()[0];
    assert_eq!(first["kind"], "retention_ends");
    assert_eq!(
        first["at"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap(),
        at
    );

    let before = chrono::Utc::now() - chrono::Duration::seconds(2);
    let m = Mount::start(&t);
    let s = t.ok(&["status", "--json"]).json();
    assert_eq!(s["mounted"], true, "{s:#}");
    assert_eq!(
        s["daemon"]["pid"].as_u64().unwrap(),
        m.child.as_ref().unwrap().id() as u64
    );
    assert_eq!(
        s["daemon"]["mountpoint"].as_str().unwrap(),
        std::fs::canonicalize(t.path("mnt"))
            .unwrap()
            .to_str()
            .unwrap()
    );
    let since: chrono::DateTime<chrono::Utc> =
        s["daemon"]["since"].as_str().unwrap().parse().unwrap();
    assert!(since >= before && since <= chrono::Utc::now(), "{since}");
    let text = t.ok(&["status"]).stdout;
    assert!(
        text.contains(&format!("mounted      at {}", t.path("mnt").display())),
        "{text}"
    );
    // a file saved through the mount counts at once
    std::fs::write(m.path("opsst/website/new.jpg"), b"fresh").unwrap();
    let s = t.ok(&["status", "--json"]).json();
    assert_eq!(s["drafts"], 1, "{s:#}");
    drop(m);
    assert_eq!(t.ok(&["status", "--json"]).json()["mounted"], false);
}

/// Run with a passphrase file instead of the test store's key file.
fn with_passphrase(t: &TestStore, pass_file: &std::path::Path, args: &[&str]) -> common::Run {
    let o = t
        .cmd()
        .env_remove("CONSENTFS_KEY_FILE")
        .env("CONSENTFS_PASSPHRASE_FILE", pass_file)
        .args(args)
        .output()
        .unwrap();
    common::Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        raw: o.stdout,
    }
}

/// Run with another key file.
fn with_key(t: &TestStore, key: &std::path::Path, args: &[&str]) -> common::Run {
    let o = t
        .cmd()
        .env("CONSENTFS_KEY_FILE", key)
        .args(args)
        .output()
        .unwrap();
    common::Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        raw: o.stdout,
    }
}

/// Every object file's name and bytes.
fn objects(t: &TestStore) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    collect_files(&t.objects_dir(), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let b = std::fs::read(&f).unwrap();
            (f, b)
        })
        .collect()
}

#[test]
fn passphrase_change_rewraps_the_key_only_old_passphrase_fails_new_one_opens() {
    let t = photos();
    let photo = t.path("shoot/a.jpg");
    let before = objects(&t);
    let (p1, p2) = (t.path("pass1"), t.path("pass2"));
    std::fs::write(&p1, "correct horse battery\n").unwrap();
    std::fs::write(&p2, "staple gun\n").unwrap();
    // the store was made with a key file only: the first change adds a passphrase
    let r = t.ok(&[
        "passphrase",
        "change",
        "--new-passphrase-file",
        p1.to_str().unwrap(),
    ]);
    assert!(
        r.stdout.contains("1 passphrase(s) and 1 key file(s)"),
        "{}",
        r.stdout
    );
    let cat = with_passphrase(&t, &p1, &["cat", "events/a.jpg"]);
    assert_eq!(cat.code, 0, "{}", cat.stderr);
    assert_eq!(cat.raw, std::fs::read(&photo).unwrap());
    // changed again, opened with the old passphrase itself
    let r = with_passphrase(
        &t,
        &p1,
        &[
            "passphrase",
            "change",
            "--new-passphrase-file",
            p2.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let old = with_passphrase(&t, &p1, &["cat", "events/a.jpg"]);
    assert_eq!(old.code, 2);
    assert!(old.stderr.contains("wrong key"), "{}", old.stderr);
    assert!(old.raw.is_empty());
    let new = with_passphrase(&t, &p2, &["cat", "events/a.jpg"]);
    assert_eq!(new.code, 0, "{}", new.stderr);
    assert_eq!(new.raw, std::fs::read(&photo).unwrap());
    // the key file still opens it, and not one photo was touched
    assert_eq!(
        t.ok(&["cat", "events/a.jpg"]).raw,
        std::fs::read(&photo).unwrap()
    );
    assert_eq!(objects(&t), before);
    // private, and on record (without the passphrase)
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(t.store.join("keyring"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!t.store.join("keyring.tmp").exists());
    let audit = t.ok(&["audit", "list", "--json"]).stdout;
    assert_eq!(audit.matches("keyring.passphrase_set").count(), 2);
    assert!(!audit.contains("staple"));
    // a mount opened with the new passphrase serves the photos byte-exact
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["link", "events/a.jpg", "Anna"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    t.add_user("opspw");
    t.ok(&["user", "grant", "opspw", "--purpose", "website"]);
    {
        let dir = t.path("mnt");
        std::fs::create_dir_all(&dir).unwrap();
        let log = t.path("mount.log");
        let child = t
            .cmd()
            .env_remove("CONSENTFS_KEY_FILE")
            .env("CONSENTFS_PASSPHRASE_FILE", &p2)
            .args(["mount", dir.to_str().unwrap()])
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let m = Mount {
            dir,
            child: Some(child),
            log,
        };
        let (up, _) = wait_for(Duration::from_secs(20), || {
            common::mount::is_mounted(&m.dir)
        });
        assert!(up, "{}", m.log_text());
        assert_eq!(
            std::fs::read(m.path("opspw/website/events/a.jpg")).unwrap(),
            std::fs::read(&photo).unwrap()
        );
    }
    assert_eq!(t.ok(&["passphrase", "remove"]).code, 0);
    let gone = with_passphrase(&t, &p2, &["status"]);
    assert_eq!(gone.code, 2);
    assert!(gone.stderr.contains("no passphrase"), "{}", gone.stderr);
}

#[test]
fn key_file_add_and_remove_and_the_last_way_to_open_the_store_stays() {
    let t = photos();
    let photo = std::fs::read(t.path("shoot/b.jpg")).unwrap();
    let before = objects(&t);
    let k2 = t.path("second.key");
    let r = t.ok(&["key-file", "add", k2.to_str().unwrap()]);
    assert!(r.stdout.contains("created and added"), "{}", r.stdout);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&k2).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(with_key(&t, &k2, &["cat", "events/b.jpg"]).raw, photo);
    // never a key kept inside the store
    let inside = t.store.join("objects").join("k");
    t.fails(
        &["key-file", "add", inside.to_str().unwrap()],
        "inside the store",
    );
    assert!(!inside.exists());
    // adding it twice changes nothing
    t.fails(
        &["key-file", "add", k2.to_str().unwrap()],
        "opens the store already",
    );
    // the first key file removed, with the second one
    let r = with_key(&t, &k2, &["key-file", "remove", t.key.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let old = t.run(&["cat", "events/b.jpg"]);
    assert_eq!(old.code, 2);
    assert!(old.stderr.contains("wrong key"), "{}", old.stderr);
    assert_eq!(with_key(&t, &k2, &["cat", "events/b.jpg"]).raw, photo);
    // the only way left is never removed
    let last = with_key(&t, &k2, &["key-file", "remove", k2.to_str().unwrap()]);
    assert_eq!(last.code, 2);
    assert!(last.stderr.contains("only way to open"), "{}", last.stderr);
    assert_eq!(with_key(&t, &k2, &["cat", "events/b.jpg"]).raw, photo);
    // a key file that does not open the store is not "removed"
    let stranger = TestStore::new();
    let r = with_key(
        &t,
        &k2,
        &["key-file", "remove", stranger.key.to_str().unwrap()],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("does not open this store"),
        "{}",
        r.stderr
    );
    // with a passphrase added, the key file can go; the passphrase alone cannot
    let p = t.path("pass");
    std::fs::write(&p, "a long passphrase\n").unwrap();
    let r = with_key(
        &t,
        &k2,
        &[
            "passphrase",
            "change",
            "--new-passphrase-file",
            p.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = with_passphrase(&t, &p, &["key-file", "remove", k2.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(with_key(&t, &k2, &["cat", "events/b.jpg"]).code, 2);
    let r = with_passphrase(&t, &p, &["passphrase", "remove"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("only way to open"), "{}", r.stderr);
    assert_eq!(with_passphrase(&t, &p, &["cat", "events/b.jpg"]).raw, photo);
    assert_eq!(objects(&t), before);
}

#[test]
fn check_reads_every_page_of_the_catalog() {
    let t = photos();
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["link", "events/a.jpg", "Anna"]);
    let db = t.store.join("catalog.db");
    assert!(
        !t.store.join("catalog.db-wal").exists()
            || std::fs::metadata(t.store.join("catalog.db-wal"))
                .unwrap()
                .len()
                == 0
    );
    let original = std::fs::read(&db).unwrap();
    let pages = original.len() / 4096;
    let (mut refused, mut reported, mut missed) = (0, 0, Vec::new());
    for page in 1..pages {
        let mut bytes = original.clone();
        bytes[page * 4096 + 100] ^= 0x40;
        std::fs::write(&db, &bytes).unwrap();
        let _ = std::fs::remove_file(t.store.join("catalog.db-wal"));
        let _ = std::fs::remove_file(t.store.join("catalog.db-shm"));
        let r = t.run(&["check", "--json"]);
        match r.code {
            2 => refused += 1,
            1 => {
                let j = r.json();
                assert!(j["catalog_damage"].is_string(), "{j:#}");
                reported += 1;
            }
            _ => missed.push(page),
        }
    }
    std::fs::write(&db, &original).unwrap();
    eprintln!(
        "{pages} pages: {refused} refused at open, {reported} reported by check, missed {missed:?}"
    );
    assert!(reported > 0);
    assert!(
        missed.is_empty(),
        "pages {missed:?} of {pages} changed without check noticing"
    );
}
