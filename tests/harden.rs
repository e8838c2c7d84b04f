//! Issue 11's attacks on a shared machine, replayed: a private store whatever the umask, a mount
//! that fails closed when it cannot know the consent state, expiries on time, and requests that
//! never wait behind a catalog someone else holds. Real mounts and real OS users; CI runs these
//! as root with /dev/fuse.

mod common;

use common::mount::{os_user, run_as, wait_for, Mount, SmallDisk};
use common::{hold_catalog_write_lock, small_store, TestStore};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The id of the asset at `path` in root's website view, hidden ones (drafts) included.
fn asset_id(t: &TestStore, path: &str) -> i64 {
    let listed = t.ok(&[
        "ls",
        "--user",
        "root",
        "--purpose",
        "website",
        "--hidden",
        "--json",
    ]);
    listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == path)
        .and_then(|e| e["asset"].as_i64())
        .unwrap_or_else(|| panic!("no {path} in root's website view: {}", listed.stdout))
}

/// Every directory and file below `root` with its mode, for the assertion message.
fn modes(root: &Path) -> Vec<(String, u32, bool)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root).follow_links(false) {
        let e = e.unwrap();
        let md = e.path().symlink_metadata().unwrap();
        out.push((
            e.path().display().to_string(),
            md.permissions().mode() & 0o7777,
            md.is_dir(),
        ));
    }
    out
}

/// Finding 1: init under umask 000, then commands, a mount and a save through it: the store
/// directory and everything in it stays 0700/0600, and a user without grants cannot open the
/// catalog's shared-memory file to lock it.
#[test]
fn the_store_is_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let key = dir.path().join("key");
    let bin = common::BIN;
    let sh = |script: &str| {
        let out = Command::new("sh")
            .args(["-c", &format!("umask 000; {script}")])
            .env("CONSENTFS_STORE", &store)
            .env("CONSENTFS_KEY_FILE", &key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(dir.path().join("a.jpg"), b"photo").unwrap();
    sh(&format!("{bin} init"));
    sh(&format!(
        "{bin} import {} && {bin} mark a.jpg --no-persons && {bin} user add root && {bin} user grant root --purpose website --access write",
        dir.path().join("a.jpg").display()
    ));
    // a mount started under umask 000 that saves a new version and a draft
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let log = std::fs::File::create(dir.path().join("mount.log")).unwrap();
    let child = Command::new("sh")
        .args([
            "-c",
            &format!("umask 000; exec {bin} mount {}", mnt.display()),
        ])
        .env("CONSENTFS_STORE", &store)
        .env("CONSENTFS_KEY_FILE", &key)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut m = Mount {
        dir: mnt.clone(),
        child: Some(child),
        log: dir.path().join("mount.log"),
    };
    let (up, _) = wait_for(Duration::from_secs(20), || {
        common::mount::is_mounted(&mnt) && mnt.join("root/website/a.jpg").exists()
    });
    assert!(up, "mount did not come up: {}", m.log_text());
    std::fs::write(mnt.join("root/website/a.jpg"), b"photo, edited").unwrap();
    std::fs::write(mnt.join("root/website/new.jpg"), b"a draft").unwrap();
    let store_files = modes(&store);
    assert!(
        store_files
            .iter()
            .any(|(p, _, _)| p.ends_with("catalog.db-shm")),
        "the daemon's shared-memory file exists while mounted: {store_files:?}"
    );
    for (path, mode, is_dir) in &store_files {
        let want = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{path} has mode {mode:o}: {store_files:?}");
    }
    // the attack: open the -shm read-only to take the WAL write lock
    let (uid, gid) = os_user("cfs-eve");
    let _ = Command::new("chmod").arg("755").arg(dir.path()).status();
    let out = run_as(
        uid,
        gid,
        &format!(
            "/usr/bin/python3 -c 'import os; os.open(\"{}\", os.O_RDONLY)'",
            store.join("catalog.db-shm").display()
        ),
    );
    assert!(
        !out.status.success(),
        "another user could open the catalog's shared memory"
    );
    m.stop();
}

/// Finding 1: a store others can enter is refused by every command and by the mount, with the
/// command that fixes it; after the fix it works again.
#[test]
fn a_store_others_can_read_is_refused_with_the_fix() {
    let t = small_store("root");
    std::fs::set_permissions(&t.store, std::fs::Permissions::from_mode(0o755)).unwrap();
    for args in [
        vec!["ls", "--user", "root", "--purpose", "website"],
        vec!["consent", "withdraw", "Anna", "--purpose", "website"],
    ] {
        let r = t.run(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("mode 0755"), "{}", r.stderr);
        assert!(r.stderr.contains("chmod -R u=rwX,go="), "{}", r.stderr);
    }
    let mnt = t.path("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let r = t.run(&["mount", mnt.to_str().unwrap()]);
    assert_eq!(r.code, 2, "the mount must refuse too: {}", r.stderr);
    assert!(!common::mount::is_mounted(&mnt));
    std::fs::set_permissions(
        t.store.join("catalog.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::set_permissions(&t.store, std::fs::Permissions::from_mode(0o700)).unwrap();
    let r = t.run(&["ls", "--user", "root", "--purpose", "website"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("catalog.db has mode 0644"),
        "{}",
        r.stderr
    );
    // the fix the message gives
    let fix = Command::new("chmod")
        .args(["-R", "u=rwX,go="])
        .arg(&t.store)
        .status()
        .unwrap();
    assert!(fix.success());
    t.ok(&["ls", "--user", "root", "--purpose", "website"]);
}

/// Whether `path` can be read now (an open and a read both succeed).
fn readable(path: &Path) -> bool {
    std::fs::read(path).is_ok()
}

/// The errno of reading `path`, if it fails.
fn read_errno(path: &Path) -> Option<i32> {
    std::fs::read(path).err().and_then(|e| e.raw_os_error())
}

fn mount_with_fault(t: &TestStore, fault: &str) -> Mount {
    let dir = t.path("mnt");
    std::fs::create_dir_all(&dir).unwrap();
    let log = t.path("mount.log");
    let child = t
        .cmd()
        .env("RUST_LOG", "info")
        .env("CONSENTFS_FAULT", fault)
        .args(["mount", dir.to_str().unwrap()])
        .stdout(Stdio::null())
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
    assert!(up, "mount did not come up: {}", m.log_text());
    m
}

/// Finding 2: when the watcher dies, the mount stops serving photos at once (EACCES, a loud log
/// line) instead of serving a view that no later withdrawal reaches.
#[test]
fn a_dead_watcher_closes_the_mount() {
    let t = small_store("root");
    let m = mount_with_fault(&t, "watcher-panic");
    let hall = m.path("root/website/hall.jpg");
    let a = m.path("root/website/a.jpg");
    assert!(readable(&hall) && readable(&a));
    // any catalog change; the injected fault kills the watcher when it sees it
    t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    let (closed, _) = wait_for(Duration::from_secs(10), || {
        read_errno(&hall) == Some(libc::EACCES)
    });
    assert!(
        closed,
        "a photo was still served after the watcher died: {}",
        m.log_text()
    );
    assert!(!readable(&a), "the withdrawn photo must not be served");
    assert!(
        m.log_text().contains("NOT SERVING PHOTOS"),
        "the log must say so loudly: {}",
        m.log_text()
    );
    // and it stays closed
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(read_errno(&hall), Some(libc::EACCES));
    // `ls` through the daemon (no key) does not answer from the index the dead watcher left
    // behind, where Anna's photo is still visible: it reads the catalog
    let paths = listed_through_the_daemon(&t);
    assert!(paths.contains(&"hall.jpg".to_string()), "{paths:?}");
    assert!(
        !paths.contains(&"a.jpg".to_string()),
        "a stale listing: {paths:?}"
    );
}

/// What `consentfs ls --user root --purpose website` lists when run without the key (through
/// the daemon's control socket).
fn listed_through_the_daemon(t: &TestStore) -> Vec<String> {
    let out = Command::new(common::BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CONSENTFS_SOCKET", t.socket())
        .args(["ls", "--user", "root", "--purpose", "website", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ls through the daemon: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["path"].as_str().map(str::to_string))
        .collect()
}

/// Finding 2: a watcher that hangs (no panic, no error) closes the mount once the consent state
/// can no longer be vouched for.
#[test]
fn a_stuck_watcher_closes_the_mount() {
    let t = small_store("root");
    let m = mount_with_fault(&t, "watcher-hang");
    let hall = m.path("root/website/hall.jpg");
    assert!(readable(&hall));
    t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    let (closed, _) = wait_for(Duration::from_secs(15), || {
        read_errno(&hall) == Some(libc::EACCES)
    });
    assert!(closed, "served while stuck: {}", m.log_text());
    assert!(
        m.log_text().contains("NOT SERVING PHOTOS"),
        "{}",
        m.log_text()
    );
}

/// A watcher stuck before its view has a withdrawal (reading the catalog, say): the mount
/// closes, and `ls` through the daemon does not answer from the index it left behind, where
/// Anna's photo is still visible, but from the catalog.
#[test]
fn ls_through_the_daemon_never_answers_from_an_index_behind_the_catalog() {
    let t = small_store("root");
    let m = mount_with_fault(&t, "watcher-stall");
    let hall = m.path("root/website/hall.jpg");
    assert!(readable(&hall));
    let before = listed_through_the_daemon(&t);
    assert!(before.contains(&"a.jpg".to_string()), "{before:?}");
    t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    // at once, while the mount still serves (the watcher's heartbeat has not run out yet)
    let paths = listed_through_the_daemon(&t);
    assert!(paths.contains(&"hall.jpg".to_string()), "{paths:?}");
    assert!(
        !paths.contains(&"a.jpg".to_string()),
        "a stale listing: {paths:?}"
    );
    let (closed, _) = wait_for(Duration::from_secs(15), || {
        read_errno(&hall) == Some(libc::EACCES)
    });
    assert!(closed, "served while stuck: {}", m.log_text());
    let paths = listed_through_the_daemon(&t);
    assert!(
        !paths.contains(&"a.jpg".to_string()),
        "a stale listing: {paths:?}"
    );
}

/// "Tests that the promises lack": an expiry hides the photo within a second of its time in a
/// real mount (a timer firing 5 s late fails this).
#[test]
fn an_expiry_hides_the_photo_within_a_second() {
    let t = TestStore::new();
    t.write("shoot/a.jpg", b"photo of anna");
    t.ok(&["import", t.path("shoot").to_str().unwrap()]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["link", "a.jpg", "Anna"]);
    t.add_user("root");
    t.ok(&["user", "grant", "root", "--purpose", "website"]);
    let until = chrono::Utc::now() + chrono::Duration::seconds(6);
    let until_text = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    t.ok(&[
        "consent",
        "grant",
        "Anna",
        "--purpose",
        "website",
        "--until",
        &until_text,
    ]);
    let m = Mount::start(&t);
    let a = m.path("root/website/a.jpg");
    assert!(readable(&a), "visible before the expiry");
    // the moment the consent ends, to the second (the text has whole seconds)
    let end = chrono::DateTime::parse_from_rfc3339(&until_text)
        .unwrap()
        .with_timezone(&chrono::Utc);
    let to_end = (end - chrono::Utc::now()).to_std().unwrap_or_default();
    let start = Instant::now();
    let (gone, _) = wait_for(to_end + Duration::from_secs(5), || !readable(&a));
    assert!(gone, "the photo did not disappear: {}", m.log_text());
    let late = start.elapsed().saturating_sub(to_end);
    assert!(
        late <= Duration::from_secs(1),
        "the photo disappeared {late:?} after its consent ended"
    );
}

/// Finding 1, second half: a request never waits for seconds behind another request that waits
/// for the catalog. Someone (here root, as an attacker no longer can) holds the catalog's WAL
/// write lock; a save through the mount then waits for it, and meanwhile another file's first
/// open of the day (which writes an access entry) must still be served promptly.
#[test]
fn an_open_does_not_wait_behind_a_save_that_waits_for_the_catalog() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let a = m.path("root/website/a.jpg");
    let hall = m.path("root/website/hall.jpg");
    // hold the WAL write lock (byte 120 of the -shm) the way the attack did
    let mut holder = hold_catalog_write_lock(&t);
    // a save that will wait for the catalog (and fail after its wait)
    let writer = {
        let a = a.clone();
        std::thread::spawn(move || std::fs::write(a, b"edited"))
    };
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let data = std::fs::read(&hall);
    let took = start.elapsed();
    let _ = holder.kill();
    let _ = holder.wait();
    let _ = writer.join();
    assert_eq!(data.unwrap(), b"empty hall");
    assert!(
        took < Duration::from_secs(5),
        "the open waited {took:?} behind a save waiting for the catalog"
    );
    // the queued access entry reaches the audit log once the catalog is free
    let hall_id = serde_json::json!(asset_id(&t, "hall.jpg"));
    let (logged, _) = wait_for(Duration::from_secs(20), || {
        t.ok(&["audit", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "access.open" && e["detail"]["asset"] == hall_id)
    });
    assert!(logged, "the open was never recorded: {}", m.log_text());
}

/// Finding 3: after a backup-style save (rename to `a.jpg~`, create `a.jpg` anew, delete the
/// backup, as mogrify and many editors do), erasing the person leaves nothing of the photo
/// decryptable: not the old version, not the backup copy (trashed or not).
#[test]
fn erase_shreds_every_copy_a_save_left() {
    for delete_backup in [true, false] {
        let t = small_store("root");
        t.ok(&[
            "user",
            "grant",
            "root",
            "--purpose",
            "website",
            "--access",
            "delete",
        ]);
        let m = Mount::start(&t);
        let dir = m.path("root/website");
        std::fs::rename(dir.join("a.jpg"), dir.join("a.jpg~")).unwrap();
        std::fs::write(dir.join("a.jpg"), b"photo of anna, edited").unwrap();
        if delete_backup {
            std::fs::remove_file(dir.join("a.jpg~")).unwrap();
        }
        drop(m);
        let versions = t.ok(&["versions", "a.jpg", "--json"]).json();
        assert_eq!(versions.as_array().unwrap().len(), 2, "{versions}");
        let backup = if delete_backup {
            let trash = t.ok(&["trash", "list", "--json"]).json();
            trash[0]["asset"]
                .as_i64()
                .expect("the backup is in the trash")
        } else {
            asset_id(&t, "a.jpg~")
        };
        assert_eq!(
            t.ok(&["cat", &backup.to_string()]).raw,
            b"photo of anna",
            "the backup holds the previous content before the erasure"
        );
        let a = asset_id(&t, "a.jpg").to_string();
        t.ok(&["person", "erase", "Anna", "--yes"]);
        for (what, args) in [
            ("version 1", vec!["cat", &a, "--version", "1"]),
            ("version 2", vec!["cat", &a, "--version", "2"]),
            ("the backup copy", vec!["cat", &backup.to_string()]),
        ] {
            let r = t.run(&args);
            assert_eq!(r.code, 2, "{what} is still decryptable after the erasure");
            assert!(r.raw.is_empty(), "{what}: bytes were written");
        }
        // and no file of the store holds an object that still has a key: every object file
        // left must belong to another asset (here there is one: the hall)
        let mut files = Vec::new();
        common::collect_files(&t.objects_dir(), &mut files);
        assert_eq!(files.len(), 1, "object files left: {files:?}");
    }
}

/// Finding 9: a save that runs out of disk space fails (the writer sees an error at write or
/// close), is never recorded as a version, and everyone keeps reading the previous version.
#[test]
fn a_save_that_hits_a_full_disk_never_becomes_a_version() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::new(&dir.path().join("disk"), "3m");
    let t = TestStore {
        store: disk.0.join("store"),
        key: dir.path().join("key"),
        dir,
    };
    t.ok(&["init"]);
    t.write("shoot/a.jpg", b"photo of anna");
    t.ok(&["import", t.path("shoot").to_str().unwrap()]);
    t.ok(&["mark", "a.jpg", "--no-persons"]);
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
    let m = Mount::start(&t);
    let a = m.path("root/website/a.jpg");
    // writes of 128 KiB, and of 1 MiB, which are sealed after their answer (their error is a
    // later write's, or the fsync's)
    for (attempt, piece) in [128 << 10, 128 << 10, 1 << 20, 1 << 20]
        .into_iter()
        .enumerate()
    {
        // fill most of the disk, write until the disk is full, then free the space again
        // before the close: the close must not commit what the failed writes left
        let filler = disk.0.join("filler");
        let _ = std::fs::write(&filler, vec![0u8; 2 << 20]);
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&a)
            .unwrap();
        let mut failed = false;
        for _ in 0..64 {
            if f.write_all(&vec![b'x'; piece]).is_err() {
                failed = true;
                break;
            }
        }
        assert!(
            failed,
            "attempt {attempt}: 8 MiB cannot fit on a 3 MiB disk"
        );
        std::fs::remove_file(&filler).unwrap();
        assert!(
            f.sync_all().is_err(),
            "attempt {attempt}: a save whose writes failed was committed"
        );
        drop(f);
        let versions = t.ok(&["versions", "a.jpg", "--json"]).json();
        assert_eq!(
            versions.as_array().unwrap().len(),
            1,
            "attempt {attempt}: a failed save became a version: {versions}"
        );
        assert_eq!(
            std::fs::read(&a).unwrap(),
            b"photo of anna",
            "attempt {attempt}"
        );
        assert_eq!(t.ok(&["cat", "a.jpg"]).raw, b"photo of anna");
    }
    // a save that fits still works afterwards
    std::fs::write(&a, b"photo, edited").unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), b"photo, edited");
    drop(m);
    drop(disk);
}

/// Copy a store folder (the daemon is not running), like a backup.
fn copy_store(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .args(["-a"])
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// Finding 5: putting back an older catalog, or an older copy of the whole store, brings back a
/// withdrawn consent: refused by every command (also `audit verify`), until an explicit,
/// audited `--accept-rollback`.
#[test]
fn a_rolled_back_catalog_is_refused() {
    for whole_store in [false, true] {
        let t = small_store("root");
        let backup = t.path("backup");
        if whole_store {
            copy_store(&t.store, &backup);
        } else {
            std::fs::create_dir(&backup).unwrap();
            std::fs::copy(t.store.join("catalog.db"), backup.join("catalog.db")).unwrap();
        }
        t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
        assert_eq!(common::visible(&t, "root", "website"), vec!["hall.jpg"]);
        // the rollback
        if whole_store {
            std::fs::remove_dir_all(&t.store).unwrap();
            copy_store(&backup, &t.store);
        } else {
            for f in ["catalog.db-wal", "catalog.db-shm"] {
                let _ = std::fs::remove_file(t.store.join(f));
            }
            std::fs::copy(backup.join("catalog.db"), t.store.join("catalog.db")).unwrap();
        }
        if t.is_team() {
            // a team library's copy put back catches up with the library's log: the
            // withdrawal stands, nothing to refuse
            assert_eq!(common::visible(&t, "root", "website"), vec!["hall.jpg"]);
            t.ok(&["audit", "verify"]);
            continue;
        }
        for args in [
            vec!["ls", "--user", "root", "--purpose", "website"],
            vec!["audit", "verify"],
        ] {
            let r = t.run(&args);
            assert_eq!(
                r.code, 2,
                "{args:?} accepted a rolled-back catalog: {}",
                r.stdout
            );
            assert!(r.stderr.contains("rolled back"), "{}", r.stderr);
            assert!(r.stderr.contains("--accept-rollback"), "{}", r.stderr);
        }
        let mnt = t.path("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        assert_eq!(t.run(&["mount", mnt.to_str().unwrap()]).code, 2);
        // a restore on purpose
        let r = t.ok(&[
            "--accept-rollback",
            "ls",
            "--user",
            "root",
            "--purpose",
            "website",
        ]);
        assert!(
            r.stdout.contains("a.jpg"),
            "the restored state: {}",
            r.stdout
        );
        let log = t.ok(&["audit", "list", "--json"]).json();
        assert!(
            log.as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == "catalog.rollback_accepted"),
            "the accepted rollback is in the audit log"
        );
        t.ok(&["audit", "verify"]);
    }
}

/// Finding 5: a WAL cut back to an earlier commit boundary after a kill -9 (here: the WAL as it
/// was before the withdrawal) is a rollback too.
#[test]
fn a_wal_cut_back_to_an_earlier_commit_is_refused() {
    let t = small_store("root");
    let snap = t.path("snap");
    copy_store(&t.store, &snap);
    t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    // the catalog and its WAL as they were (an earlier commit boundary)
    for f in ["catalog.db", "catalog.db-wal"] {
        let _ = std::fs::remove_file(t.store.join(f));
        if snap.join(f).exists() {
            std::fs::copy(snap.join(f), t.store.join(f)).unwrap();
        }
    }
    let _ = std::fs::remove_file(t.store.join("catalog.db-shm"));
    if t.is_team() {
        // the copy cut back catches up with the library's log: the withdrawal stands
        assert_eq!(common::visible(&t, "root", "website"), vec!["hall.jpg"]);
        return;
    }
    let r = t.run(&["ls", "--user", "root", "--purpose", "website"]);
    assert_eq!(r.code, 2, "accepted: {}", r.stdout);
    assert!(r.stderr.contains("rolled back"), "{}", r.stderr);
}

/// The daemon moves the rollback anchor from a background writer (a save does not wait for a
/// second fsync on another disk), and is at the last change when the daemon has stopped: a
/// catalog put back to before the saves made through the mount is refused.
#[test]
fn the_daemons_anchor_reaches_its_last_save_and_a_rollback_past_it_is_refused() {
    let t = small_store("root");
    let snap = t.path("snap");
    copy_store(&t.store, &snap);
    let mut m = Mount::start(&t);
    let dir = m.path("root/website");
    for i in 0..20 {
        std::fs::write(dir.join(format!("note{i}.txt")), format!("note {i}")).unwrap();
    }
    m.stop();
    if t.is_team() {
        // no anchor for a team library's copy: one put back to before the saves gets them
        // from the library's log
        for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
            let _ = std::fs::remove_file(t.store.join(f));
            if snap.join(f).exists() {
                std::fs::copy(snap.join(f), t.store.join(f)).unwrap();
            }
        }
        let seen = t
            .ok(&["ls", "--user", "root", "--purpose", "website"])
            .stdout;
        assert!(seen.contains("note19.txt"), "{seen}");
        return;
    }
    let log = t.ok(&["audit", "list", "--json"]).json();
    let last = log
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["seq"].as_i64())
        .max()
        .unwrap();
    let anchored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.anchor()).unwrap()).unwrap();
    assert_eq!(
        anchored["seq"].as_i64(),
        Some(last),
        "the anchor is at the daemon's last change"
    );
    for f in ["catalog.db", "catalog.db-wal"] {
        let _ = std::fs::remove_file(t.store.join(f));
        if snap.join(f).exists() {
            std::fs::copy(snap.join(f), t.store.join(f)).unwrap();
        }
    }
    let _ = std::fs::remove_file(t.store.join("catalog.db-shm"));
    let r = t.run(&["ls", "--user", "root", "--purpose", "website"]);
    assert_eq!(r.code, 2, "accepted: {}", r.stdout);
    assert!(r.stderr.contains("rolled back"), "{}", r.stderr);
}

/// Finding 3 with 4: erasing a person also shreds what was made from their photo in the mount
/// (a `cp` copy, a tool's output), not only the photo.
#[test]
fn erase_shreds_copies_made_in_the_mount() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    let copied = Command::new("cp")
        .arg(dir.join("a.jpg"))
        .arg(dir.join("copy.jpg"))
        .status()
        .unwrap();
    assert!(copied.success());
    drop(m);
    let copy = asset_id(&t, "copy.jpg").to_string();
    assert_eq!(t.ok(&["cat", &copy]).raw, b"photo of anna");
    t.ok(&["person", "erase", "Anna", "--yes"]);
    let r = t.run(&["cat", &copy]);
    assert_eq!(r.code, 2, "the copy is still decryptable after the erasure");
    assert!(r.raw.is_empty());
}

/// Finding 5: `export --sync` from a catalog that was rolled back (even one accepted with
/// `--accept-rollback`) is refused when the folder's manifest is newer than the catalog: it
/// would put back a photo whose consent was withdrawn.
#[test]
fn sync_refuses_a_folder_newer_than_the_catalog() {
    let t = small_store("root");
    let backup = t.path("backup");
    copy_store(&t.store, &backup);
    t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    let dest = t.path("site");
    t.ok(&[
        "export",
        "--user",
        "root",
        "--purpose",
        "website",
        dest.to_str().unwrap(),
    ]);
    assert!(!dest.join("a.jpg").exists());
    std::fs::remove_dir_all(&t.store).unwrap();
    copy_store(&backup, &t.store);
    // the restored catalog still has Anna's consent; the administrator accepts the restore
    t.ok(&["--accept-rollback", "audit", "verify"]);
    let r = t.run(&[
        "export",
        "--user",
        "root",
        "--purpose",
        "website",
        "--sync",
        dest.to_str().unwrap(),
    ]);
    if t.is_team() {
        // the store put back is a team library's copy: it caught up with the library's log
        // before the export, so the withdrawal stands and the sync is of the current state
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert!(
            !dest.join("a.jpg").exists(),
            "the withdrawn photo came back"
        );
        return;
    }
    assert_eq!(r.code, 2, "synced from an older catalog: {}", r.stdout);
    assert!(r.stderr.contains("newer catalog"), "{}", r.stderr);
    assert!(
        !dest.join("a.jpg").exists(),
        "the withdrawn photo came back"
    );
    assert_eq!(t.run(&["export", "verify", dest.to_str().unwrap()]).code, 0);
}

/// "Tests that the promises lack": an entry spliced in from another history (its own hash is
/// valid, its number fits) is caught by the chain's link to the entry before it.
#[test]
fn audit_verify_catches_an_entry_from_another_history() {
    let t = small_store("root");
    // a copy of the store with the same key goes its own way: two entries
    let other = t.path("other");
    copy_store(&t.store, &other);
    let in_other = |args: &[&str]| {
        let out = t
            .cmd()
            .env("CONSENTFS_STORE", &other)
            .env("CONSENTFS_ANCHOR", t.path("other-anchor.json"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    in_other(&["user", "grant", "root", "--purpose", "print"]);
    in_other(&["person", "add", "Cas"]);
    // this store: one entry of its own
    t.ok(&["person", "add", "Dirk"]);
    if t.is_team() {
        // a copy of a team library's replica folder is one more copy of the same library:
        // what was done through it is in the library's log, not another history
        let persons = t.ok(&["person", "list"]).stdout;
        assert!(
            persons.contains("Cas") && persons.contains("Dirk"),
            "{persons}"
        );
        t.ok(&["audit", "verify"]);
        return;
    }
    let key = consentfs::crypto::keyring::Unlock::KeyFile(t.key.clone());
    let open = |dir: &Path| {
        let s = consentfs::store::Store::open(dir, &key).unwrap();
        let c =
            consentfs::catalog::Catalog::open(&s.catalog_path(), &s.catalog_key(), s.audit_key())
                .unwrap();
        (s, c)
    };
    let (_so, theirs) = open(&other);
    let last: (i64, i64, String, String, String, Vec<u8>, Vec<u8>) = theirs
        .conn()
        .query_row(
            "SELECT seq, at, actor, action, detail, prev_hash, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
        )
        .unwrap();
    let (_sm, mine) = open(&t.store);
    let my_last: i64 = mine
        .conn()
        .query_row("SELECT MAX(seq) FROM audit", [], |r| r.get(0))
        .unwrap();
    assert_eq!(last.0, my_last + 1, "the spliced entry's number fits");
    mine.conn()
        .execute(
            "INSERT INTO audit (seq, at, actor, action, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![last.0, last.1, last.2, last.3, last.4, last.5, last.6],
        )
        .unwrap();
    mine.conn()
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'audit_head_seq'",
            [last.0.to_string()],
        )
        .unwrap();
    mine.conn()
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'audit_head_hash'",
            [hex::encode(&last.6)],
        )
        .unwrap();
    drop(mine);
    let r = t.run(&["audit", "verify"]);
    assert_eq!(r.code, 1, "a spliced entry passed: {}", r.stdout);
    assert!(r.stdout.contains("does not link"), "{}", r.stdout);
}

/// "Tests that the promises lack": the guardian and special-category rules through the real
/// mount, against expectations worked out by hand from DESIGN.md §3 (not from the rule
/// function): a minor's own grant does not count, a guardian's does; a special-category photo
/// needs an explicit grant, also under another basis unless the purpose records an Art. 9(2)
/// exception.
#[test]
fn the_rules_for_minors_and_special_categories_hold_in_the_mount() {
    let t = TestStore::new();
    for f in [
        "kid-own",
        "kid-parent",
        "sam-plain",
        "sam-special",
        "sam-explicit",
        "sam-hr",
    ] {
        t.write(&format!("shoot/{f}.jpg"), f.as_bytes());
    }
    t.ok(&["import", t.path("shoot").to_str().unwrap()]);
    let ten_years_ago = (chrono::Utc::now() - chrono::Duration::days(3650))
        .format("%Y-%m-%d")
        .to_string();
    t.ok(&["person", "add", "Kid", "--born", &ten_years_ago]);
    t.ok(&["person", "add", "Parent", "--born", "1980-05-05"]);
    t.ok(&["person", "guardian", "Kid", "Parent"]);
    t.ok(&["person", "add", "Sam", "--born", "1990-01-01"]);
    for f in ["kid-own", "kid-parent"] {
        t.ok(&["link", &format!("{f}.jpg"), "Kid"]);
    }
    for f in ["sam-plain", "sam-special", "sam-explicit", "sam-hr"] {
        t.ok(&["link", &format!("{f}.jpg"), "Sam"]);
    }
    t.ok(&[
        "mark",
        "sam-special.jpg",
        "sam-explicit.jpg",
        "sam-hr.jpg",
        "--special-category",
    ]);
    t.ok(&[
        "purpose",
        "add",
        "hr",
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
        "Art. 9(2)(h): health care",
    ]);
    let grant = |who: &str, asset: &str, extra: &[&str]| {
        let mut args = vec![
            "consent",
            "grant",
            who,
            "--purpose",
            "website",
            "--asset",
            asset,
        ];
        args.extend_from_slice(extra);
        t.ok(&args);
    };
    // a minor's own grant is not even recorded
    t.fails(
        &[
            "consent",
            "grant",
            "Kid",
            "--purpose",
            "website",
            "--asset",
            "kid-own.jpg",
        ],
        "guardian",
    );
    grant("Kid", "kid-parent.jpg", &["--by", "Parent"]);
    grant("Sam", "sam-plain.jpg", &[]);
    grant("Sam", "sam-special.jpg", &[]);
    grant("Sam", "sam-explicit.jpg", &["--explicit"]);
    t.ok(&["user", "add", "root"]);
    t.ok(&["user", "grant", "root", "--purpose", "website,hr,care"]);
    let m = Mount::start(&t);
    let listed = |purpose: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(m.path(&format!("root/{purpose}")))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    assert_eq!(
        listed("website"),
        vec!["kid-parent.jpg", "sam-explicit.jpg", "sam-plain.jpg"],
        "website: a minor's own grant and a non-explicit grant for a special-category photo do not count"
    );
    assert_eq!(
        listed("hr"),
        vec!["kid-own.jpg", "kid-parent.jpg", "sam-plain.jpg"],
        "legitimate interest: no consent needed, except explicit consent for special categories"
    );
    assert_eq!(
        listed("care"),
        vec![
            "kid-own.jpg",
            "kid-parent.jpg",
            "sam-explicit.jpg",
            "sam-hr.jpg",
            "sam-plain.jpg",
            "sam-special.jpg",
        ],
        "an Art. 9(2) exception: special-category photos need no explicit consent"
    );
    // and the files open (or not) as listed
    assert!(std::fs::read(m.path("root/website/kid-own.jpg")).is_err());
    assert_eq!(
        std::fs::read(m.path("root/website/kid-parent.jpg")).unwrap(),
        b"kid-parent"
    );
}

/// "Tests that the promises lack": `consentfs demo` builds its store, mounts it, prints the tour
/// once the mount answers, and the tour's withdrawal works; SIGTERM unmounts cleanly.
#[test]
fn the_demo_mounts_and_its_tour_works() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let mut child = Command::new(common::BIN)
        .arg("demo")
        .arg(&demo)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // a failed assertion below must not leave the demo running and mounted
    let mut guard = DemoGuard {
        pid: child.id() as i32,
        mnt: demo.join("mnt"),
        done: false,
    };
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(out)).map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
            if line.starts_with("Press Ctrl-C") {
                let _ = tx.send(text.clone());
            }
        }
    });
    let tour = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the demo printed no tour");
    let mnt = demo.join("mnt");
    assert!(
        common::mount::is_mounted(&mnt),
        "the tour came before the mount"
    );
    assert!(tour.contains(&mnt.display().to_string()), "{tour}");
    let web = mnt.join("root/website/events/2026/open-day");
    let anna = std::fs::read(web.join("anna.jpg")).expect("Anna's photo is on the website");
    assert_eq!(&anna[..2], &[0xFF, 0xD8], "a real JPEG");
    // the store is private, the mount reachable
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&demo.join("store")), 0o700);
    // every step of the tour, as typed, in its order, works (a newcomer copies them): with
    // `consentfs` on the PATH, as the README's first command leaves it
    let path = format!(
        "{}:{}",
        Path::new(common::BIN).parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut steps: Vec<String> = Vec::new();
    let mut lines = tour.lines();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if !line.starts_with("  ")
            || !["ls ", "getfattr ", "mogrify ", "CONSENTFS_STORE="]
                .iter()
                .any(|p| t.starts_with(p))
        {
            continue;
        }
        let mut cmd = t.to_string();
        while cmd.ends_with('\\') {
            cmd.pop();
            cmd.push_str(lines.next().unwrap_or_default().trim());
        }
        let cmd = cmd.split("   #").next().unwrap_or_default().to_string();
        steps.push(cmd);
    }
    assert!(steps.len() >= 12, "{steps:?}");
    let mut withdrawn = false;
    for step in &steps {
        let out = Command::new("sh")
            .args(["-c", step])
            .env("PATH", &path)
            .output()
            .unwrap();
        // `expiring` says with exit status 1 that something expires (Noor's consent does)
        let want = if step.contains("consentfs expiring") {
            1
        } else {
            0
        };
        assert_eq!(
            out.status.code(),
            Some(want),
            "tour step failed: {step}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if step.contains("consent withdraw") {
            withdrawn = true;
            let (gone, _) = wait_for(Duration::from_secs(5), || !web.join("anna.jpg").exists());
            assert!(gone, "the tour's withdrawal did not hide the photo");
        }
    }
    assert!(withdrawn, "the tour has a withdrawal: {steps:?}");
    // the tour's export and report went into the demo's own folder
    assert!(demo.join("website-export/manifest.json").exists());
    assert!(demo.join("anna-request/index.html").exists());
    // the end of the consent that ends during the demo is shown to the second
    assert!(
        tour.lines()
            .any(|l| l.contains("Noor's consent ends at") && l.matches(':').count() >= 3),
        "{tour}"
    );

    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = child.wait().unwrap();
    guard.done = true;
    assert_eq!(status.code(), Some(0));
    assert!(
        !common::mount::is_mounted(&mnt),
        "still mounted after SIGTERM"
    );
}

/// Kills the demo and unmounts it if the test ends before it stopped the demo itself.
struct DemoGuard {
    pid: i32,
    mnt: std::path::PathBuf,
    done: bool,
}

impl Drop for DemoGuard {
    fn drop(&mut self) {
        if !self.done {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

/// Finding 13's class: evidence given as a FIFO (or a link) is refused at once instead of
/// hanging the command; the consent is not recorded half.
#[test]
fn evidence_must_be_a_regular_file() {
    let t = small_store("root");
    let fifo = t.path("form.pdf");
    let ok = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let start = Instant::now();
    t.fails(
        &[
            "consent",
            "grant",
            "Anna",
            "--purpose",
            "print",
            "--evidence",
            fifo.to_str().unwrap(),
        ],
        "fifo",
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the command waited on the FIFO"
    );
    std::os::unix::fs::symlink("/etc/passwd", t.path("link.pdf")).unwrap();
    let r = t.run(&[
        "consent",
        "grant",
        "Anna",
        "--purpose",
        "print",
        "--evidence",
        t.path("link.pdf").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "a link was followed for evidence");
}

/// Finding 4's class, in place: writing exactly another photo's bytes into a photo (`cp a b`
/// over an existing b, a program that writes them) would publish Anna's face under Bert's consent, as a rename of a
/// copy would. Refused and discarded; an edit of the photo's own content still saves.
#[test]
fn another_photos_content_cannot_be_saved_into_a_photo_in_place() {
    let t = TestStore::new();
    t.write("shoot/a.jpg", b"photo of anna");
    t.write("shoot/b.jpg", b"photo of bert");
    t.ok(&["import", t.path("shoot").to_str().unwrap()]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["person", "add", "Bert"]);
    t.ok(&["link", "a.jpg", "Anna"]);
    t.ok(&["link", "b.jpg", "Bert"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    t.ok(&["consent", "grant", "Bert", "--purpose", "website"]);
    t.ok(&["user", "add", "root"]);
    t.ok(&[
        "user",
        "grant",
        "root",
        "--purpose",
        "website",
        "--access",
        "write",
    ]);
    let m = Mount::start(&t);
    let d = m.path("root/website");
    let sh = |script: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(&d)
            .status()
            .unwrap()
            .success()
    };
    // (not `cat a > b` in a shell: the shell's redirection closes a duplicate of the fd
    // before cat writes, which commits the truncation as a version of its own today; issue 13
    // makes the version wait for the last writer's close)
    assert!(!sh("cp a.jpg b.jpg"), "cp a b was saved");
    let e = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(d.join("b.jpg"))?;
        f.write_all(b"photo of anna")?;
        f.sync_all()
    })()
    .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
    let versions = t.ok(&["versions", "b.jpg", "--json"]).json();
    assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");
    assert_eq!(t.ok(&["cat", "b.jpg"]).raw, b"photo of bert");
    // Bert's own photo, edited, saves as before
    assert!(sh("printf 'photo of bert, brighter' > b.jpg"));
    assert_eq!(t.ok(&["cat", "b.jpg"]).raw, b"photo of bert, brighter");
    assert_eq!(
        std::fs::read(d.join("b.jpg")).unwrap(),
        b"photo of bert, brighter"
    );
}

/// Issue 12 (1): a second daemon on the same store is refused, naming the running one, and so
/// never removes the first one's save in progress as an "orphan".
#[test]
fn a_second_daemon_on_the_store_is_refused_and_a_save_in_progress_survives() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let pid = m.child.as_ref().unwrap().id();
    let path = m.path("root/website/big.jpg");
    use std::io::Write;
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&vec![7u8; 1 << 20]).unwrap();
    // the second daemon
    let other = t.path("mnt2");
    std::fs::create_dir_all(&other).unwrap();
    let r = t.run(&["mount", other.to_str().unwrap()]);
    assert_eq!(r.code, 2, "a second daemon was accepted: {}", r.stderr);
    assert!(r.stderr.contains(&format!("pid {pid}")), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&std::fs::canonicalize(&m.dir).unwrap().display().to_string()),
        "{}",
        r.stderr
    );
    assert!(!common::mount::is_mounted(&other));
    // the first one's save goes on and is kept
    f.write_all(&vec![8u8; 1 << 20]).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let data = std::fs::read(&path).unwrap();
    assert_eq!(data.len(), 2 << 20);
    assert!(data[..1 << 20].iter().all(|&b| b == 7) && data[1 << 20..].iter().all(|&b| b == 8));
    // once the first daemon is gone, a new one may serve the store
    drop(m);
    let m2 = Mount::start(&t);
    assert_eq!(
        std::fs::read(m2.path("root/website/big.jpg"))
            .unwrap()
            .len(),
        2 << 20
    );
}

/// Every object file left in the store has a data key: nothing shredded lingers on disk.
fn no_shredded_files_left(t: &TestStore) -> Result<(), String> {
    let (_s, cat) = t.open_catalog();
    let keyed: std::collections::HashSet<String> = cat
        .conn()
        .prepare("SELECT id FROM objects WHERE wrapped_key IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let mut files = Vec::new();
    common::collect_files(&t.objects_dir(), &mut files);
    let lingering: Vec<String> = files
        .iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let prefix = p.parent()?.file_name()?.to_str()?;
            let id = format!("{prefix}{name}");
            (!keyed.contains(&id)).then_some(id)
        })
        .collect();
    if lingering.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} shredded object file(s) left: {lingering:?}",
            lingering.len()
        ))
    }
}

/// Issue 12 (4): a purge or erase killed right after its commit leaves no object files behind:
/// the files to remove were queued in the same transaction, and the next command removes them.
#[test]
fn a_purge_or_erase_killed_after_its_commit_leaves_no_files() {
    for what in ["purge", "erase"] {
        let t = small_store("root");
        if what == "purge" {
            t.ok(&[
                "retention",
                "set",
                "a.jpg",
                "hall.jpg",
                "--until",
                "2000-01-02",
            ]);
            t.ok(&["retention", "apply", "--yes"]);
        }
        let args: Vec<&str> = if what == "purge" {
            vec!["trash", "purge", "--all"]
        } else {
            vec!["person", "erase", "Anna", "--yes"]
        };
        let killed = t
            .cmd()
            .env("CONSENTFS_FAULT", "die-before-shred")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(
            killed.status.code(),
            Some(137),
            "{what}: the fault did not strike"
        );
        assert!(
            no_shredded_files_left(&t).is_err(),
            "{what}: the kill came too late to test anything"
        );
        // any next command works the list off
        t.ok(&["ls", "--user", "root", "--purpose", "website"]);
        no_shredded_files_left(&t).unwrap_or_else(|e| panic!("{what}: {e}"));
        t.ok(&["audit", "verify"]);
    }
}

/// Every page of the catalog and of its WAL, decrypted the way anyone with the store's key
/// could (SQLCipher 4: AES-256-CBC under the raw key, the IV in each page's reserved tail; the
/// first 16 bytes of page 1 are the salt).
fn catalog_pages(t: &TestStore) -> Vec<Vec<u8>> {
    use aes::cipher::{BlockDecryptMut, KeyIvInit};
    const PAGE: usize = 4096;
    const RESERVE: usize = 80;
    let (store, _cat) = t.open_catalog();
    let key = *store.catalog_key().bytes();
    let decrypt = |page: &[u8], first: bool| -> Vec<u8> {
        let start = if first { 16 } else { 0 };
        let iv = &page[PAGE - RESERVE..PAGE - RESERVE + 16];
        let mut buf = page[start..PAGE - RESERVE].to_vec();
        let dec = cbc::Decryptor::<aes::Aes256>::new(&key.into(), iv.into());
        dec.decrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(&mut buf)
            .unwrap();
        buf
    };
    let mut pages = Vec::new();
    let db = std::fs::read(t.store.join("catalog.db")).unwrap();
    for (i, p) in db.chunks_exact(PAGE).enumerate() {
        pages.push(decrypt(p, i == 0));
    }
    if let Ok(wal) = std::fs::read(t.store.join("catalog.db-wal")) {
        let mut at = 32;
        while at + 24 + PAGE <= wal.len() {
            let n = u32::from_be_bytes(wal[at..at + 4].try_into().unwrap());
            pages.push(decrypt(&wal[at + 24..at + 24 + PAGE], n == 1));
            at += 24 + PAGE;
        }
    }
    pages
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Issue 12 (3): after an erasure on a mounted store, no page of the catalog file or its WAL
/// holds the person's name or the data key of their photo (secure_delete, and a checkpoint
/// that truncates the WAL).
#[test]
fn an_erasure_reaches_every_page_of_the_catalog() {
    let t = TestStore::new();
    t.write("shoot/a.jpg", b"photo of the marker person");
    t.ok(&["import", t.path("shoot").to_str().unwrap()]);
    let name = "Zqxmarker Vandenbroek";
    t.ok(&[
        "person",
        "add",
        name,
        "--born",
        "1990-02-03",
        "--ref",
        "REFQX77",
    ]);
    t.ok(&["link", "a.jpg", name]);
    t.ok(&["consent", "grant", name, "--purpose", "website"]);
    t.ok(&["user", "add", "root"]);
    t.ok(&["user", "grant", "root", "--purpose", "website"]);
    let wrapped: Vec<u8> = {
        let (_s, cat) = t.open_catalog();
        cat.conn()
            .query_row(
                "SELECT o.wrapped_key FROM objects o JOIN versions v ON v.object_id = o.id WHERE v.asset_id = 1",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let m = Mount::start(&t);
    assert!(m.path("root/website/a.jpg").exists());
    // the decryption works: before the erasure the name and the key are found
    let before = catalog_pages(&t);
    assert!(
        before.iter().any(|p| contains(p, name.as_bytes())),
        "the page reader reads nothing"
    );
    assert!(before.iter().any(|p| contains(p, &wrapped)));
    t.ok(&["person", "erase", name, "--yes"]);
    let after = catalog_pages(&t);
    for (what, needle) in [
        ("the name", name.as_bytes()),
        ("the reference", b"REFQX77".as_slice()),
        ("the photo's data key", wrapped.as_slice()),
    ] {
        let found = after.iter().filter(|p| contains(p, needle)).count();
        assert_eq!(
            found, 0,
            "{what} is still in {found} page(s) of the catalog or its WAL"
        );
    }
}

/// Issue 12 (6): SIGTERM while a file is open for writing: the daemon detaches the mount, keeps
/// the save, exits 0, and leaves no dead mount (no ENOTCONN) behind.
#[test]
fn sigterm_with_a_save_open_keeps_the_save_and_leaves_no_dead_mount() {
    let t = small_store("root");
    let mut m = Mount::start(&t);
    let path = m.path("root/website/open.jpg");
    // another process holds the file open, written but not closed
    let mut holder = Command::new("/usr/bin/python3")
        .args([
            "-c",
            &format!(
                "import os,sys,time\nfd=os.open('{}',os.O_WRONLY|os.O_CREAT)\nos.write(fd,b'saved while stopping')\nprint('written',flush=True)\ntime.sleep(60)",
                path.display()
            ),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "written");
    let code = m.stop();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(
        code,
        Some(0),
        "the daemon did not stop cleanly: {}",
        m.log_text()
    );
    assert!(!common::mount::is_mounted(&m.dir), "still mounted");
    let err = std::fs::read_dir(&m.dir)
        .err()
        .and_then(|e| e.raw_os_error());
    assert_ne!(err, Some(libc::ENOTCONN), "a dead mount was left behind");
    assert_eq!(t.ok(&["cat", "open.jpg"]).raw, b"saved while stopping");
    assert!(m.log_text().contains("committed"), "{}", m.log_text());
}
