//! Issue 12's fault injection: what must hold when commands are killed at random moments, race
//! each other and saves through the mount, or find the catalog busy. Real mounts; CI runs these
//! as root with /dev/fuse.

mod common;

use common::mount::{abort_connection, is_mounted, wait_for, Mount};
use common::{hold_catalog_write_lock, small_store, TestStore};
use std::process::Command;
use std::time::{Duration, Instant};

/// The versions of `path` as the catalog has them (`versions --json`).
fn versions(t: &TestStore, path: &str) -> Vec<serde_json::Value> {
    t.ok(&["versions", path, "--json"])
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Object files in the store and objects the catalog knows.
fn objects_on_disk_and_known(t: &TestStore) -> (usize, usize) {
    let mut files = Vec::new();
    common::collect_files(&t.objects_dir(), &mut files);
    let (_s, cat) = t.open_catalog();
    let known: i64 = cat
        .conn()
        .query_row(
            "SELECT count(*) FROM objects WHERE wrapped_key IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (files.len(), known as usize)
}

/// Item 2: a save whose object is written is never thrown away because another command holds
/// the catalog. The close returns 0 within a few seconds (not EIO after 10 s), the mount serves
/// the new content at once, and the version is recorded as soon as the catalog is free.
#[test]
fn a_save_that_meets_a_busy_catalog_is_queued_and_recorded_when_it_is_free() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let a = m.path("root/website/a.jpg");
    let before = versions(&t, "a.jpg").len();
    let mut holder = hold_catalog_write_lock(&t);
    let start = Instant::now();
    let saved = std::fs::write(&a, b"edited while the catalog was busy");
    let took = start.elapsed();
    eprintln!("close of a save with the catalog held: {took:?}");
    // while the catalog is still held: the save is served, with its size
    let read = std::fs::read(&a);
    let size = std::fs::metadata(&a).map(|md| md.len());
    let _ = holder.kill();
    let _ = holder.wait();
    saved.unwrap_or_else(|e| panic!("the save failed after {took:?}: {e}\n{}", m.log_text()));
    assert_eq!(read.unwrap(), b"edited while the catalog was busy");
    assert_eq!(size.unwrap(), 33);
    let (recorded, after) = wait_for(Duration::from_secs(15), || {
        versions(&t, "a.jpg").len() == before + 1
    });
    assert!(
        recorded,
        "the queued save was never recorded: {}",
        m.log_text()
    );
    eprintln!("recorded {after:?} after the catalog was freed");
    assert_eq!(
        t.ok(&["cat", "a.jpg"]).raw,
        b"edited while the catalog was busy"
    );
    assert!(m.log_text().contains("queued"), "{}", m.log_text());
    // nothing left in the queue, no orphan objects
    let queue = t.store.join("queue");
    let left = std::fs::read_dir(&queue).map_or(0, |d| d.count());
    assert_eq!(left, 0, "queue files left behind");
    let (files, known) = objects_on_disk_and_known(&t);
    assert_eq!(files, known);
}

/// Item 2, durability: a daemon killed while a save waits in the queue records it when the
/// store is mounted again; the start-up clean-up never takes the queued object for an orphan.
#[test]
fn a_queued_save_survives_a_killed_daemon() {
    let t = small_store("root");
    let mut m = Mount::start(&t);
    let a = m.path("root/website/a.jpg");
    let before = versions(&t, "a.jpg").len();
    let mut holder = hold_catalog_write_lock(&t);
    std::fs::write(&a, b"saved, then the daemon died").unwrap();
    let log = kill_daemon(&mut m);
    let _ = holder.kill();
    let _ = holder.wait();
    // not recorded yet: the daemon died with the save queued
    assert_eq!(versions(&t, "a.jpg").len(), before);
    drop(m);
    let m2 = Mount::start(&t);
    let (recorded, _) = wait_for(Duration::from_secs(15), || {
        versions(&t, "a.jpg").len() == before + 1
    });
    assert!(
        recorded,
        "the queued save was lost with the daemon: {log}\n{}",
        m2.log_text()
    );
    assert_eq!(
        std::fs::read(m2.path("root/website/a.jpg")).unwrap(),
        b"saved, then the daemon died"
    );
    let (files, known) = objects_on_disk_and_known(&t);
    assert_eq!(files, known);
}

/// Kill the daemon of `m` (SIGKILL) and wait until its mount is gone.
fn kill_daemon(m: &mut Mount) -> String {
    let mut child = m.child.take().unwrap();
    let _ = child.kill(); // SIGKILL
    abort_connection(&m.dir);
    let _ = child.wait();
    let _ = Command::new("umount").arg("-l").arg(&m.dir).status();
    let (gone, _) = wait_for(Duration::from_secs(10), || !is_mounted(&m.dir));
    assert!(gone, "the killed mount is still mounted");
    m.log_text()
}

/// A queued save is checked again when it is recorded: a write grant revoked meanwhile
/// discards it (and its object), as an immediate commit would have.
#[test]
fn a_queued_save_is_checked_against_the_catalog_as_it_is_when_recorded() {
    let t = small_store("root");
    let (uid, gid) = common::mount::os_user("cfsqueue");
    t.add_user("cfsqueue");
    t.ok(&[
        "user",
        "grant",
        "cfsqueue",
        "--purpose",
        "website",
        "--access",
        "write",
    ]);
    let mut m = Mount::start(&t);
    let a = m.path("cfsqueue/website/a.jpg");
    let before = versions(&t, "a.jpg").len();
    let mut holder = hold_catalog_write_lock(&t);
    let out = common::mount::run_as(
        uid,
        gid,
        &format!(
            "printf 'written under a grant that goes' > '{}'",
            a.display()
        ),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    kill_daemon(&mut m);
    let _ = holder.kill();
    let _ = holder.wait();
    t.ok(&["user", "revoke", "cfsqueue", "--purpose", "website"]);
    drop(m);
    let m2 = Mount::start(&t);
    let (handled, _) = wait_for(Duration::from_secs(15), || {
        std::fs::read_dir(t.store.join("queue")).map_or(true, |d| d.count() == 0)
    });
    assert!(handled, "{}", m2.log_text());
    assert_eq!(
        versions(&t, "a.jpg").len(),
        before,
        "a save without a grant was recorded"
    );
    assert!(m2.log_text().contains("discarded"), "{}", m2.log_text());
    let (files, known) = objects_on_disk_and_known(&t);
    assert_eq!(files, known, "the discarded save's object was left behind");
}

/// Run `args` against the store and SIGKILL it after `delay` unless it ended before. Returns
/// whether the kill struck.
fn run_killed_after(t: &TestStore, args: &[&str], delay: Duration) -> bool {
    let mut child = t
        .cmd()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start consentfs");
    let deadline = Instant::now() + delay;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let struck = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let _ = child.wait();
    struck
}

/// Delays that cover a command from its start to its end (a debug build starts in 5-20 ms).
const DELAYS_MS: [u64; 10] = [2, 5, 8, 11, 14, 18, 24, 32, 45, 70];

/// What every kill must leave: an intact audit chain, and, once the next command ran, object
/// files only for objects the catalog holds a key of (nothing unreadable, nothing shredded
/// still there) and a file for every current version (nothing recorded lost).
fn assert_consistent(t: &TestStore, what: &str) {
    t.ok(&["ls", "--user", "root", "--purpose", "website"]);
    let verify = t.run(&["audit", "verify"]);
    assert_eq!(
        verify.code, 0,
        "{what}: audit verify: {}{}",
        verify.stdout, verify.stderr
    );
    let (_s, cat) = t.open_catalog();
    let keyed: std::collections::HashSet<String> = cat
        .conn()
        .prepare("SELECT id FROM objects WHERE wrapped_key IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let current: Vec<String> = cat
        .conn()
        .prepare(
            "SELECT v.object_id FROM versions v JOIN objects o ON o.id = v.object_id
              WHERE o.wrapped_key IS NOT NULL",
        )
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let mut files = Vec::new();
    common::collect_files(&t.objects_dir(), &mut files);
    let on_disk: std::collections::HashSet<String> = files
        .iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let prefix = p.parent()?.file_name()?.to_str()?;
            Some(format!("{prefix}{name}"))
        })
        .collect();
    let stray: Vec<&String> = on_disk.difference(&keyed).collect();
    assert!(
        stray.is_empty(),
        "{what}: object files without a key: {stray:?}"
    );
    let lost: Vec<&String> = current.iter().filter(|o| !on_disk.contains(*o)).collect();
    assert!(
        lost.is_empty(),
        "{what}: versions whose object file is gone: {lost:?}"
    );
}

/// A store with `n` persons P0..Pn, each alone on a photo pN.jpg with website consent.
fn store_of_persons(n: usize) -> TestStore {
    let t = TestStore::new();
    for i in 0..n {
        t.write(
            &format!("shoot/p{i}.jpg"),
            format!("photo of person {i}").as_bytes(),
        );
    }
    t.ok(&["import", t.path("shoot").to_str().unwrap()]);
    for i in 0..n {
        let (p, f) = (format!("P{i}"), format!("p{i}.jpg"));
        t.ok(&["person", "add", &p]);
        t.ok(&["link", &f, &p]);
        t.ok(&["consent", "grant", &p, "--purpose", "website"]);
    }
    t.add_user("root");
    t.ok(&[
        "user",
        "grant",
        "root",
        "--purpose",
        "website",
        "--access",
        "write",
    ]);
    t
}

fn website_paths(t: &TestStore) -> Vec<String> {
    t.ok(&["ls", "--user", "root", "--purpose", "website", "--json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["path"].as_str().map(str::to_string))
        .collect()
}

/// SIGKILL sweep of `consent withdraw`: each run is recorded whole or not at all, and a re-run
/// always gets the withdrawal through (the photo leaves the view).
#[test]
fn killed_withdrawals_are_all_or_nothing_and_a_rerun_completes() {
    let t = store_of_persons(DELAYS_MS.len());
    let mut struck = 0;
    for (i, ms) in DELAYS_MS.iter().enumerate() {
        let p = format!("P{i}");
        let args = ["consent", "withdraw", p.as_str(), "--purpose", "website"];
        struck += run_killed_after(&t, &args, Duration::from_millis(*ms)) as usize;
        assert_consistent(&t, &format!("withdraw killed after {ms} ms"));
        let shown = website_paths(&t).contains(&format!("p{i}.jpg"));
        if shown {
            t.ok(&args);
        }
        assert!(
            !website_paths(&t).contains(&format!("p{i}.jpg")),
            "{p}: the withdrawal did not get through on a re-run"
        );
    }
    eprintln!(
        "withdraw: {struck} of {} runs killed before they ended",
        DELAYS_MS.len()
    );
}

/// SIGKILL sweep of `person erase`: the person is erased whole or untouched, every copy's file
/// is gone after the next command, and a re-run completes the erasure.
#[test]
fn killed_erasures_are_all_or_nothing_and_a_rerun_completes() {
    let t = store_of_persons(DELAYS_MS.len());
    let mut struck = 0;
    for (i, ms) in DELAYS_MS.iter().enumerate() {
        let p = format!("P{i}");
        struck += run_killed_after(
            &t,
            &["person", "erase", &p, "--yes"],
            Duration::from_millis(*ms),
        ) as usize;
        assert_consistent(&t, &format!("erase killed after {ms} ms"));
        let listed = t.ok(&["person", "list"]).stdout;
        if listed.contains(&format!(" {p}\n")) || listed.contains(&format!(" {p} ")) {
            // untouched: the photo is still whole and shown
            assert!(
                website_paths(&t).contains(&format!("p{i}.jpg")),
                "{p}: half erased"
            );
            t.ok(&["person", "erase", &p, "--yes"]);
        }
        assert!(
            !t.ok(&["person", "list"]).stdout.contains(&p),
            "{p} still listed"
        );
        assert!(!website_paths(&t).contains(&format!("p{i}.jpg")));
        assert_consistent(&t, &format!("erase of {p} re-run"));
    }
    eprintln!(
        "erase: {struck} of {} runs killed before they ended",
        DELAYS_MS.len()
    );
}

/// SIGKILL sweep of `trash purge`: an asset is purged whole (its files gone after the next
/// command) or still in the trash, and a re-run purges what is left.
#[test]
fn killed_purges_are_all_or_nothing_and_a_rerun_completes() {
    let mut struck = 0;
    for ms in DELAYS_MS {
        let t = store_of_persons(3);
        t.ok(&[
            "retention",
            "set",
            "p0.jpg",
            "p1.jpg",
            "p2.jpg",
            "--until",
            "2000-01-02",
        ]);
        t.ok(&["retention", "apply", "--yes"]);
        struck +=
            run_killed_after(&t, &["trash", "purge", "--all"], Duration::from_millis(ms)) as usize;
        assert_consistent(&t, &format!("purge killed after {ms} ms"));
        t.ok(&["trash", "purge", "--all"]);
        assert_consistent(&t, "purge re-run");
        let (files, _) = objects_on_disk_and_known(&t);
        assert_eq!(files, 0, "purge after {ms} ms: files of purged photos left");
    }
    eprintln!(
        "purge: {struck} of {} runs killed before they ended",
        DELAYS_MS.len()
    );
}

/// SIGKILL sweep of `restore`: a new version holding the old content, or nothing; a re-run
/// completes it.
#[test]
fn killed_restores_are_all_or_nothing_and_a_rerun_completes() {
    let t = small_store("root");
    let m = Mount::start(&t);
    std::fs::write(m.path("root/website/a.jpg"), b"second version").unwrap();
    drop(m);
    let mut struck = 0;
    for ms in DELAYS_MS {
        let before = versions(&t, "a.jpg").len();
        struck += run_killed_after(
            &t,
            &["restore", "a.jpg", "--version", "1"],
            Duration::from_millis(ms),
        ) as usize;
        assert_consistent(&t, &format!("restore killed after {ms} ms"));
        let after = versions(&t, "a.jpg").len();
        assert!(
            after == before || after == before + 1,
            "{before} -> {after} versions"
        );
        if after == before {
            t.ok(&["restore", "a.jpg", "--version", "1"]);
        }
        assert_eq!(t.ok(&["cat", "a.jpg"]).raw, b"photo of anna");
        // back to the second content for the next round
        t.ok(&["restore", "a.jpg", "--version", "2"]);
    }
    eprintln!(
        "restore: {struck} of {} runs killed before they ended",
        DELAYS_MS.len()
    );
}

/// What held in the run that filed issue 12 stays held: three imports of the same folder at
/// once import every file exactly once, and leave no object file the catalog does not know.
#[test]
fn concurrent_imports_import_every_file_once() {
    let t = TestStore::new();
    for i in 0..150 {
        t.write(
            &format!("shoot/f{i:03}.jpg"),
            format!("photo {i}").as_bytes(),
        );
    }
    let shoot = t.path("shoot");
    let runs: Vec<_> = (0..3)
        .map(|_| {
            t.cmd()
                .args(["import", shoot.to_str().unwrap()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for r in runs {
        let out = r.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    t.ok(&["audit", "verify"]);
    let (_s, cat) = t.open_catalog();
    let (assets, names): (i64, i64) = cat
        .conn()
        .query_row(
            "SELECT count(*), count(DISTINCT collection || '/' || name) FROM assets",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((assets, names), (150, 150));
    drop(cat);
    let (files, known) = objects_on_disk_and_known(&t);
    assert_eq!(files, known, "object files the catalog does not know");
}

/// A full disk during an import and during a withdrawal: the import fails whole with a clear
/// message and leaves no object files behind; the withdrawal is recorded or refused, never half,
/// and goes through once there is space again.
#[test]
fn a_full_disk_during_import_and_withdraw_leaves_nothing_half_done() {
    let dir = tempfile::tempdir().unwrap();
    let disk = common::mount::SmallDisk::new(&dir.path().join("disk"), "3m");
    let t = TestStore {
        store: disk.0.join("store"),
        key: dir.path().join("key"),
        dir,
    };
    t.ok(&["init"]);
    t.write("shoot/a.jpg", b"photo of anna");
    t.ok(&["import", t.path("shoot").to_str().unwrap()]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["link", "a.jpg", "Anna"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    t.add_user("root");
    t.ok(&["user", "grant", "root", "--purpose", "website"]);
    // an import larger than the disk
    let big: Vec<u8> = (0..5u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    t.write("big/huge.raw", &big);
    let r = t.run(&["import", t.path("big").to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("No space left") || r.stderr.to_lowercase().contains("disk full"),
        "{}",
        r.stderr
    );
    assert_consistent(&t, "import on a full disk");
    let (files, known) = objects_on_disk_and_known(&t);
    assert_eq!(files, known, "the failed import left object files");
    // fill the disk to the last byte, then withdraw
    let filler = disk.0.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 << 10];
        while f.write_all(&block).is_ok() {}
        let small = [0u8; 512];
        while f.write_all(&small).is_ok() {}
    }
    let w = t.run(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    assert!(
        w.code == 0 || w.code == 2,
        "withdraw on a full disk: {}{}",
        w.stdout,
        w.stderr
    );
    std::fs::remove_file(&filler).unwrap();
    let shown = website_paths(&t).contains(&"a.jpg".to_string());
    assert_eq!(
        shown,
        w.code != 0,
        "a withdrawal that exited {} is half done",
        w.code
    );
    if shown {
        t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    }
    assert!(!website_paths(&t).contains(&"a.jpg".to_string()));
    assert_consistent(&t, "withdraw on a full disk");
}

/// 120 single-byte flips in the catalog file, each on a fresh copy of the store: every command
/// ends (no panic, no hang) and `cat` gives the photo's exact bytes or an error, never others.
#[test]
fn flipped_catalog_bytes_never_panic_or_serve_wrong_bytes() {
    let t = small_store("root");
    let pristine = std::fs::read(t.store.join("catalog.db")).unwrap();
    assert!(
        !t.store.join("catalog.db-wal").exists()
            || std::fs::metadata(t.store.join("catalog.db-wal"))
                .unwrap()
                .len()
                == 0
    );
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut outcomes = std::collections::BTreeMap::new();
    for i in 0..120 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = (seed % pristine.len() as u64) as usize;
        let dir = tempfile::tempdir().unwrap();
        let copy = TestStore {
            store: dir.path().join("store"),
            dir,
            key: t.key.clone(),
        };
        let ok = Command::new("cp")
            .arg("-a")
            .arg(&t.store)
            .arg(&copy.store)
            .status()
            .unwrap();
        assert!(ok.success());
        let mut bytes = pristine.clone();
        bytes[at] ^= 1 << (seed >> 61);
        std::fs::write(copy.store.join("catalog.db"), &bytes).unwrap();
        for args in [
            &["cat", "a.jpg"][..],
            &["ls", "--user", "root", "--purpose", "website"],
            &["audit", "verify"],
        ] {
            let mut c = copy.cmd();
            c.args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let child = c.spawn().unwrap();
            let pid = child.id();
            let watchdog = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(30));
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            });
            let out = child.wait_with_output().unwrap();
            drop(watchdog);
            let code = out.status.code();
            assert!(
                matches!(code, Some(0..=2)),
                "flip {i} at byte {at}: {args:?} ended with {:?}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            if args[0] == "cat" && code == Some(0) {
                assert_eq!(
                    out.stdout, b"photo of anna",
                    "flip {i} at byte {at}: wrong bytes"
                );
            }
            *outcomes.entry((args[0], code)).or_insert(0) += 1;
        }
    }
    eprintln!("outcomes of 120 flips: {outcomes:?}");
}

/// The queue of saves is part of the private store: a queue folder other accounts can enter
/// (and so delete a queued save from) is refused like any other part of the store.
#[test]
fn a_queue_folder_others_can_enter_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let t = small_store("root");
    let queue = t.store.join("queue");
    std::fs::create_dir(&queue).unwrap();
    std::fs::set_permissions(&queue, std::fs::Permissions::from_mode(0o777)).unwrap();
    let r = t.run(&["ls", "--user", "root", "--purpose", "website"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("queue"), "{}", r.stderr);
    std::fs::set_permissions(&queue, std::fs::Permissions::from_mode(0o700)).unwrap();
    t.ok(&["ls", "--user", "root", "--purpose", "website"]);
}
