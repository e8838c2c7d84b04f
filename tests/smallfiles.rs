//! Many small new files through the mount (`tar x`): each is a draft of its creator, whole
//! after a remount, and durable once its close returned, even when the daemon is killed while
//! the files are only in the new-file journal (their catalog transaction still open). Runs as
//! root with /dev/fuse and tar.

mod common;

use common::mount::{abort_connection, is_mounted, os_user, run_as, wait_for, Mount};
use common::TestStore;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A store in which root may write (and delete) in `website`, and `other` may read there.
fn store(other: &str) -> TestStore {
    let t = TestStore::new();
    t.add_user("root");
    t.ok(&[
        "user",
        "grant",
        "root",
        "--purpose",
        "website",
        "--access",
        "delete",
    ]);
    t.add_user(other);
    t.ok(&["user", "grant", other, "--purpose", "website"]);
    t
}

/// `n` files of 1-20 KiB of pseudo-random bytes in folders of 50 below `root/small`, one of
/// them empty; returns their paths relative to `root`.
fn small_tree(root: &Path, n: usize) -> Vec<String> {
    small_tree_in(root, n, |i| i / 50)
}

/// [`small_tree`] with file `i` in folder `small/d{dir_of(i)}`.
fn small_tree_in(root: &Path, n: usize, dir_of: impl Fn(usize) -> usize) -> Vec<String> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::new();
    for i in 0..n {
        let rel = format!("small/d{:02}/f{i:04}.jpg", dir_of(i));
        let path = root.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let len = if i == 7 {
            0
        } else {
            1024 + (next() % (19 * 1024)) as usize
        };
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        std::fs::write(&path, bytes).unwrap();
        out.push(rel);
    }
    out
}

/// Start the mount with the create window set to `window_ms` (the daemon commits the open
/// transaction of new files after it).
fn mount_with_window(t: &TestStore, window_ms: u64) -> Mount {
    Mount::start_with(t, &[("CONSENTFS_CREATE_WINDOW_MS", &window_ms.to_string())])
}

fn journal(t: &TestStore) -> PathBuf {
    t.store.join("queue/new-files.journal")
}

#[test]
fn tar_of_small_files_gives_private_drafts_that_survive_a_remount() {
    let t = store("cfssmall");
    let (uid, gid) = os_user("cfssmall");
    let src = t.path("src");
    let files = small_tree(&src, 300);
    let tar = t.path("small.tar");
    let made = Command::new("tar")
        .arg("cf")
        .arg(&tar)
        .arg("-C")
        .arg(&src)
        .arg("small")
        .status()
        .unwrap();
    assert!(made.success());
    let mut m = Mount::start(&t);
    let dest = m.path("root/website");
    let x = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar xf {} -C {} && sync",
            tar.display(),
            dest.display()
        ))
        .output()
        .unwrap();
    assert!(x.status.success(), "tar x failed: {x:?}");
    // every file as it was, a draft of root's
    for rel in &files {
        assert_eq!(
            std::fs::read(dest.join(rel)).unwrap(),
            std::fs::read(src.join(rel)).unwrap(),
            "{rel} differs right after tar x"
        );
    }
    let status = Command::new("getfattr")
        .args(["--only-values", "-n", "user.consentfs.status"])
        .arg(dest.join(&files[3]))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "draft");
    // the other user sees none of them, in the mount and in `ls`
    let seen = run_as(
        uid,
        gid,
        &format!("ls -A {}", m.path("cfssmall/website").display()),
    );
    assert!(seen.stdout.is_empty(), "another user sees: {seen:?}");
    assert!(common::visible(&t, "cfssmall", "website").is_empty());
    assert_eq!(m.stop(), Some(0), "{}", m.log_text());
    drop(m);

    // after a remount: all there, whole, with the times tar set
    let m = Mount::start(&t);
    let dest = m.path("root/website");
    for rel in &files {
        assert_eq!(
            std::fs::read(dest.join(rel)).unwrap(),
            std::fs::read(src.join(rel)).unwrap(),
            "{rel} differs after a remount"
        );
    }
    // tar keeps whole seconds
    let mtime = |p: &Path| {
        let t = std::fs::metadata(p).unwrap().modified().unwrap();
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    };
    assert_eq!(mtime(&dest.join(&files[42])), mtime(&src.join(&files[42])));
    let mine = common::visible(&t, "root", "website");
    assert_eq!(mine.len(), files.len());
    // still private: linked to a person who consented, one becomes a photo the other user
    // sees; the rest stay drafts
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    t.ok(&["link", &files[5], "Anna"]);
    let theirs = m.path("cfssmall/website");
    let (shown, _) = wait_for(Duration::from_secs(5), || {
        let o = run_as(uid, gid, &format!("cat {}/{}", theirs.display(), files[5]));
        o.status.success() && o.stdout == std::fs::read(src.join(&files[5])).unwrap()
    });
    assert!(shown, "a linked file is shown to the other user");
    assert_eq!(
        common::visible(&t, "cfssmall", "website"),
        [files[5].clone()]
    );
    let probe = run_as(uid, gid, &format!("cat {}/{}", theirs.display(), files[6]));
    assert!(
        !probe.status.success(),
        "a draft was readable by another user"
    );
    drop(m);
    t.ok(&["audit", "verify"]);
    // each file is one draft with one version: no empty version before its content
    let v = t.ok(&["versions", &files[9], "--json"]).json();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert!(!journal(&t).exists() || std::fs::metadata(journal(&t)).unwrap().len() == 0);
}

#[test]
fn a_new_file_whose_close_returned_survives_sigkill() {
    let t = store("cfssmall");
    // the daemon keeps the transaction of new files open for 30 s: when it is killed, the
    // closed files are in the journal only
    let mut m = mount_with_window(&t, 30_000);
    let dir = m.path("root/website/new");
    std::fs::create_dir(&dir).unwrap();
    let content = |i: usize| -> Vec<u8> {
        format!("new file {i};")
            .bytes()
            .cycle()
            .take(1000 + i * 97)
            .collect()
    };
    // created and closed without a byte: committed by its close
    std::fs::File::create(dir.join("empty.txt")).unwrap();
    for i in 0..40 {
        // written and closed, no fsync: the close is the save
        std::fs::write(dir.join(format!("n{i:02}.bin")), content(i)).unwrap();
    }
    let journalled = std::fs::metadata(journal(&t)).map_or(0, |md| md.len());
    // (a team library's new files are in the library when their close returns: no
    // transaction is left open for them, so there is nothing to journal)
    assert!(
        journalled > 0 || t.is_team(),
        "the saves were not in the journal when the daemon was killed"
    );
    let mut child = m.child.take().unwrap();
    let _ = child.kill(); // SIGKILL
    abort_connection(&m.dir);
    child.wait().unwrap();
    let _ = Command::new("umount").arg("-l").arg(&m.dir).status();
    let (gone, _) = wait_for(Duration::from_secs(10), || !is_mounted(&m.dir));
    assert!(gone, "the killed mount is still mounted");
    drop(m);

    let m = Mount::start(&t);
    let dir = m.path("root/website/new");
    for i in 0..40 {
        assert_eq!(
            std::fs::read(dir.join(format!("n{i:02}.bin"))).ok(),
            Some(content(i)),
            "n{i:02}.bin is not what its closed save held; log:\n{}",
            m.log_text()
        );
    }
    assert_eq!(std::fs::read(dir.join("empty.txt")).unwrap(), b"");
    let mine = common::visible(&t, "root", "website");
    assert_eq!(mine.len(), 41, "{mine:?}");
    assert!(common::visible(&t, "cfssmall", "website").is_empty());
    drop(m);
    t.ok(&["audit", "verify"]);
    // the journal was emptied once recorded, and no object is left unrecorded
    assert_eq!(std::fs::metadata(journal(&t)).map_or(0, |md| md.len()), 0);
    let (_s, cat) = t.open_catalog();
    let known: usize = cat
        .conn()
        .query_row(
            "SELECT count(*) FROM objects WHERE wrapped_key IS NOT NULL",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as usize;
    let mut on_disk = Vec::new();
    common::collect_files(&t.objects_dir(), &mut on_disk);
    assert_eq!(on_disk.len(), known, "orphans: {on_disk:?}");
}

/// While `tar x` streams new files in (the daemon holds the catalog's write lock most of the
/// time), a withdrawal still gets the lock at once and the photo disappears.
#[test]
fn a_withdrawal_gets_through_while_small_files_stream_in() {
    withdrawal_while_streaming(None);
}

/// The same with the transaction of new files kept open for up to 30 s: the withdrawal says
/// that it waits for the lock, and the daemon commits and lets it in at once instead of at the
/// end of its window.
#[test]
fn a_waiting_withdrawal_is_let_in_before_the_window_ends() {
    withdrawal_while_streaming(Some(30_000));
}

/// Withdraw a consent while `tar x` writes 1,500 new files (`window_ms`: the create window
/// the daemon runs with); the withdrawal must not wait for the catalog and must hide the photo.
/// It starts once the last folder is made: a `mkdir` commits the shared transaction of new
/// files as well, so from then on only the waiting command's signal lets it in early.
fn withdrawal_while_streaming(window_ms: Option<u64>) {
    let t = store("cfssmall");
    t.write("shoot/anna.jpg", b"photo of anna");
    t.ok(&[
        "import",
        "--collection",
        "ev",
        t.path("shoot").to_str().unwrap(),
    ]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    t.ok(&["link", "ev/anna.jpg", "Anna"]);
    let src = t.path("src");
    small_tree_in(&src, 1500, |i| (i / 50).min(2));
    let tar = t.path("small.tar");
    assert!(Command::new("tar")
        .arg("cf")
        .arg(&tar)
        .arg("-C")
        .arg(&src)
        .arg("small")
        .status()
        .unwrap()
        .success());
    let m = match window_ms {
        Some(ms) => mount_with_window(&t, ms),
        None => Mount::start(&t),
    };
    let photo = m.path("root/website/ev/anna.jpg");
    assert!(photo.exists());
    let mut tar_x = Command::new("tar")
        .arg("xf")
        .arg(&tar)
        .arg("-C")
        .arg(m.path("root/website"))
        .spawn()
        .unwrap();
    // files are streaming in
    let (started, _) = wait_for(Duration::from_secs(10), || {
        m.path("root/website/small/d02").exists()
    });
    assert!(started, "tar x did not get going");
    let t0 = std::time::Instant::now();
    t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    let took = t0.elapsed();
    let still_running = tar_x.try_wait().unwrap().is_none();
    if window_ms.is_some() && !t.is_team() {
        // (else the files stopped coming and the daemon committed because of that)
        assert!(
            still_running,
            "tar x ended before the withdrawal: nothing was tested"
        );
    }
    let (gone, _) = wait_for(Duration::from_secs(2), || !photo.exists());
    assert!(tar_x.wait().unwrap().success());
    assert!(gone, "the photo is still shown after the withdrawal");
    assert!(
        took < Duration::from_secs(2),
        "the withdrawal waited {took:?} for the catalog (tar still running: {still_running})"
    );
    eprintln!("withdrawal during tar x took {took:?} (tar still running: {still_running})");
}
