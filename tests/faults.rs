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
    common::collect_files(&t.store.join("objects"), &mut files);
    let (_s, cat) = t.open_catalog();
    let known: i64 = cat
        .conn()
        .query_row("SELECT count(*) FROM objects", [], |r| r.get(0))
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
