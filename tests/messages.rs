//! Issue 12 (7, 8): when something goes wrong underneath the store, the message names what
//! happened and what to do, and the errno tells the truth: a deleted write-ahead log, a damaged
//! keyring slot, a truncated catalog, a full disk, no descriptors left, damaged audit pages.

mod common;

use common::mount::{abort_connection, is_mounted, os_user, run_as, wait_for, Mount};
use common::TestStore;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A store in `parent` (a fresh folder inside it) with one photo `a.jpg` that `login` sees in
/// website.
fn store_in(parent: Option<&Path>, login: &str) -> TestStore {
    let dir = match parent {
        Some(p) => tempfile::tempdir_in(p).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let t = TestStore {
        store: dir.path().join("store"),
        key: dir.path().join("key"),
        dir,
    };
    t.ok(&["init"]);
    t.write("shoot/a.jpg", b"photo of anna");
    t.ok(&["import", t.path("shoot").to_str().unwrap()]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["link", "a.jpg", "Anna"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    t.add_user(login);
    t.ok(&["user", "grant", login, "--purpose", "website"]);
    t
}

fn names(t: &TestStore) -> String {
    t.ok(&["person", "list"]).stdout
}

/// Issue 12 (7): `catalog.db-wal` deleted while the daemon has the store mounted. A command
/// says what happened and what to do (not "cannot be decrypted", not "disk I/O error"); the
/// daemon stops serving and says why; and the advice holds: once the daemon stopped, the
/// command runs and the change made before the deletion is still there.
#[test]
fn a_wal_deleted_under_a_mounted_store_is_named_and_the_daemon_stops_serving() {
    let t = store_in(None, "root");
    let mut m = Mount::start(&t);
    let photo = m.path("root/website/a.jpg");
    assert_eq!(std::fs::read(&photo).unwrap(), b"photo of anna");
    // a change that stays in the log: the daemon holds the catalog, so nothing checkpoints it
    t.ok(&["person", "add", "Bertwal"]);
    std::fs::remove_file(t.store.join("catalog.db-wal")).unwrap();

    let r = t.run(&["person", "list"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    for said in [
        "catalog.db-wal",
        "deleted or truncated",
        "Stop the consentfs daemon",
        "--accept-rollback",
    ] {
        assert!(r.stderr.contains(said), "should say '{said}': {}", r.stderr);
    }
    let pid = m.child.as_ref().unwrap().id();
    assert!(
        r.stderr.contains(&format!("pid {pid}")),
        "should name the daemon: {}",
        r.stderr
    );
    assert!(!r.stderr.contains("decrypted"), "{}", r.stderr);
    assert!(!r.stderr.contains("disk I/O error"), "{}", r.stderr);

    // the daemon no longer shares its view with the commands: it stops serving, loudly
    let (closed, _) = wait_for(Duration::from_secs(5), || {
        std::fs::read(&photo)
            .err()
            .is_some_and(|e| e.raw_os_error() == Some(libc::EACCES))
    });
    assert!(closed, "the daemon still serves: {}", m.log_text());
    let log = m.log_text();
    assert!(
        log.contains("NOT SERVING") && log.contains("catalog.db-wal was deleted"),
        "{log}"
    );

    // the advice: stop the daemon, run the command again; the change survived
    assert_eq!(m.stop(), Some(0), "{}", m.log_text());
    assert!(names(&t).contains("Bertwal"));
    t.ok(&["audit", "verify"]);
}

/// Issue 12 (7): the log deleted and the daemon gone without a clean stop: the changes in the
/// log are lost, and the rollback check says that this is why the catalog is behind.
#[test]
fn a_wal_lost_with_its_daemon_is_named_by_the_rollback_check() {
    let t = store_in(None, "root");
    let mut m = Mount::start(&t);
    t.ok(&["person", "add", "Bertwal"]);
    std::fs::remove_file(t.store.join("catalog.db-wal")).unwrap();
    let mut child = m.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    abort_connection(&m.dir);
    let _ = Command::new("umount").arg("-l").arg(&m.dir).status();
    assert!(!is_mounted(&m.dir));

    let r = t.run(&["person", "list"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    for said in [
        "rolled back",
        "catalog.db-wal is missing",
        "those changes are lost",
        "--accept-rollback",
    ] {
        assert!(r.stderr.contains(said), "should say '{said}': {}", r.stderr);
    }
    let r = t.ok(&["--accept-rollback", "person", "list"]);
    assert!(!r.stdout.contains("Bertwal"), "{}", r.stdout);
    t.ok(&["audit", "verify"]);
}

/// Flip one hex digit of the key-file slot's wrapped key to another hex digit.
fn damage_key_file_slot(keyring: &Path) {
    let mut ring: serde_json::Value =
        serde_json::from_slice(&std::fs::read(keyring).unwrap()).unwrap();
    let slot = ring["slots"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["kind"] == "key_file")
        .unwrap();
    let mut w: Vec<u8> = slot["wrapped"].as_str().unwrap().bytes().collect();
    w[60] = if w[60] == b'a' { b'b' } else { b'a' };
    slot["wrapped"] = serde_json::Value::String(String::from_utf8(w).unwrap());
    std::fs::write(keyring, serde_json::to_vec_pretty(&ring).unwrap()).unwrap();
}

/// Issue 12 (8): a flipped byte in the key-file slot is a damaged keyring, not a wrong key;
/// a wrong key file is still a wrong key.
#[test]
fn a_damaged_key_file_slot_is_damage_not_a_wrong_key() {
    let t = TestStore::new();
    let other = t.path("other.key");
    let r = t
        .cmd()
        .args(["init", "--store"])
        .arg(t.path("other-store"))
        .arg("--key-file")
        .arg(&other)
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}");
    let wrong = t
        .cmd()
        .env("CONSENTFS_KEY_FILE", &other)
        .args(["person", "list"])
        .output()
        .unwrap();
    let wrong_err = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        wrong_err.contains("is not the key file of this store"),
        "{wrong_err}"
    );

    damage_key_file_slot(&t.store.join("keyring"));
    let r = t.run(&["person", "list"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("keyring is damaged") && r.stderr.contains("slot 1 (key file)"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("wrong key"), "{}", r.stderr);
    assert!(!r.stderr.contains("is not the key file"), "{}", r.stderr);
}

/// Issue 12 (8): a catalog cut short is damaged (with its size), not undecryptable.
#[test]
fn a_truncated_catalog_is_reported_as_damaged() {
    let t = TestStore::new();
    for i in 0..40 {
        t.ok(&["person", "add", &format!("Person {i}")]);
    }
    let db = t.store.join("catalog.db");
    let whole = std::fs::read(&db).unwrap();
    assert!(
        whole.len() >= 8 * 4096,
        "catalog too small to cut: {}",
        whole.len()
    );
    let half_pages = (whole.len() / 2) / 4096 * 4096;
    for cut in [whole.len() / 2 + 123, half_pages, 0] {
        std::fs::write(&db, &whole[..cut]).unwrap();
        let r = t.run(&["person", "list"]);
        assert_eq!(r.code, 2, "cut at {cut}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("is damaged") && r.stderr.contains("restore it from a backup"),
            "cut at {cut}: {}",
            r.stderr
        );
        if cut % 4096 != 0 || cut == 0 {
            assert!(
                r.stderr.contains(&format!("truncated to {cut} bytes")),
                "cut at {cut}: {}",
                r.stderr
            );
        }
        assert!(
            !r.stderr.contains("decrypted"),
            "cut at {cut}: {}",
            r.stderr
        );
        // nothing was created in its place
        assert_eq!(std::fs::metadata(&db).unwrap().len(), cut as u64);
    }
    std::fs::write(&db, &whole).unwrap();
    assert!(names(&t).contains("Person 39"));
}

/// A small tmpfs (root only), unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn new(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot mount a tmpfs (the tests run as root)");
        Tmpfs { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    /// Write into `name` until the filesystem is full.
    fn fill(&self, name: &str) -> PathBuf {
        use std::io::Write;
        let p = self.path().join(name);
        let mut f = std::fs::File::create(&p).unwrap();
        let big = vec![0u8; 1 << 16];
        while f.write_all(&big).is_ok() {}
        let small = vec![0u8; 512];
        while f.write_all(&small).is_ok() {}
        let _ = f.sync_all();
        p
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Issue 12 (8): a full disk is "disk full" and ENOSPC, not an integrity error in the audit
/// log (which sent people looking for tampering).
#[test]
fn a_full_disk_says_disk_full_and_gives_enospc() {
    let fs = Tmpfs::new("24m");
    let t = store_in(Some(fs.path()), "root");
    let m = Mount::start(&t);
    let filler = fs.fill("filler");
    // the first open of the day is recorded in the audit log, which cannot grow now
    let err = std::fs::File::open(m.path("root/website/a.jpg"))
        .expect_err("the open must fail: its audit entry cannot be written");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    let log = m.log_text();
    assert!(log.contains("disk full"), "{log}");
    assert!(!log.contains("integrity error"), "{log}");

    let r = t.run(&["person", "add", "Carla"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("disk full"), "{}", r.stderr);
    assert!(!r.stderr.contains("integrity"), "{}", r.stderr);

    // with space again, everything works
    std::fs::remove_file(filler).unwrap();
    assert_eq!(
        std::fs::read(m.path("root/website/a.jpg")).unwrap(),
        b"photo of anna"
    );
    t.ok(&["person", "add", "Carla"]);
}

/// The lowest descriptor number `pid` does not use.
fn lowest_free_fd(pid: u32) -> u64 {
    let used: std::collections::HashSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    (0..).find(|n| !used.contains(n)).unwrap()
}

/// Set the soft RLIMIT_NOFILE of `pid` (the hard limit stays, so it can be raised again).
fn set_nofile(pid: u32, soft: u64) -> u64 {
    let mut old = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: reads the limits of a process into `old`.
    let r = unsafe {
        libc::prlimit64(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            std::ptr::null(),
            &mut old,
        )
    };
    assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());
    let new = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: sets the limits of a process we started from a valid struct.
    let r = unsafe {
        libc::prlimit64(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &new,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());
    old.rlim_cur
}

/// Issue 12 (8): a daemon with no descriptors left answers EMFILE for an existing file, not
/// ENOENT (which tells the user the photo is gone).
#[test]
fn no_descriptors_left_is_emfile_not_enoent() {
    let login = "cfsmsgfd";
    let (uid, gid) = os_user(login);
    let t = store_in(None, login);
    let m = Mount::start(&t);
    let pid = m.child.as_ref().unwrap().id();
    let photo = m.path(&format!("{login}/website/a.jpg"));
    let script = format!("cat '{}'", photo.display());
    // the daemon answers: its FUSE workers have their descriptors (a stat of the mount root
    // by root looks up no account, so none is cached yet)
    assert!(std::fs::metadata(&m.dir).unwrap().is_dir());
    let old = set_nofile(pid, lowest_free_fd(pid));
    let out = run_as(uid, gid, &script);
    set_nofile(pid, old);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "read with no descriptors left");
    assert!(
        stderr.contains("Too many open files"),
        "{stderr}\n{}",
        m.log_text()
    );
    assert!(!stderr.contains("No such file"), "{stderr}");
    // descriptors again: the file is there
    let out = run_as(uid, gid, &script);
    assert!(out.status.success(), "{out:?}\n{}", m.log_text());
    assert_eq!(out.stdout, b"photo of anna");
}

/// Decrypt page `pgno` (1-based) of a SQLCipher 4 file as anyone with the key could
/// (AES-256-CBC, the IV in the page's reserved tail; page 1 starts after the 16-byte salt).
fn page(db: &[u8], key: &[u8; 32], pgno: usize) -> Vec<u8> {
    use aes::cipher::{BlockDecryptMut, KeyIvInit};
    const PAGE: usize = 4096;
    const RESERVE: usize = 80;
    let raw = &db[(pgno - 1) * PAGE..pgno * PAGE];
    let start = if pgno == 1 { 16 } else { 0 };
    let iv = &raw[PAGE - RESERVE..PAGE - RESERVE + 16];
    let mut buf = raw[start..PAGE - RESERVE].to_vec();
    cbc::Decryptor::<aes::Aes256>::new(key.into(), iv.into())
        .decrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(&mut buf)
        .unwrap();
    buf
}

/// Issue 12 (8): a damaged page where the audit log is stored: `audit verify` finds the log
/// cannot be verified (exit 1, saying the catalog file is damaged and where), instead of
/// failing to run (exit 2, "database disk image is malformed").
#[test]
fn audit_verify_on_a_damaged_audit_page_exits_1_and_says_where() {
    let t = TestStore::new();
    let (store, root) = {
        let (store, mut cat) = t.open_catalog();
        let tx = cat.begin("test", chrono::Utc::now()).unwrap();
        for i in 0..300 {
            tx.audit("test.filler", serde_json::json!({ "n": i }))
                .unwrap();
        }
        tx.commit().unwrap();
        let root: usize = cat
            .conn()
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'audit'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        (store, root)
    };
    // the catalog is closed: everything is checkpointed into catalog.db
    t.ok(&["audit", "verify"]);
    let db_path = t.store.join("catalog.db");
    let mut db = std::fs::read(&db_path).unwrap();
    let key = *store.catalog_key().bytes();
    // follow the leftmost child pointers from the table's root to its first leaf (the oldest
    // entries; the newest, which every command's rollback check reads, are elsewhere)
    let mut pgno = root;
    loop {
        let p = page(&db, &key, pgno);
        match p[0] {
            0x05 => {
                let cell = u16::from_be_bytes([p[12], p[13]]) as usize;
                pgno = u32::from_be_bytes(p[cell..cell + 4].try_into().unwrap()) as usize;
            }
            0x0d => break,
            other => panic!("page {pgno} is not a table page ({other:#x})"),
        }
    }
    assert_ne!(
        pgno, root,
        "the audit table fits one page: add more entries"
    );
    db[(pgno - 1) * 4096 + 2000] ^= 0x40;
    std::fs::write(&db_path, &db).unwrap();

    let r = t.run(&["audit", "verify"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("cannot be verified")
            && r.stdout.contains("damaged")
            && r.stdout.contains(&format!("page(s) of catalog.db: {pgno}")),
        "{}{}",
        r.stdout,
        r.stderr
    );
    let j = t.run(&["audit", "verify", "--json"]);
    assert_eq!(j.code, 1, "{}{}", j.stdout, j.stderr);
    assert!(j.json()["problems"][0]
        .as_str()
        .unwrap()
        .contains("damaged"));
}
