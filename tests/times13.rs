//! Issue 13 finding 16, file times and disk use as `stat` shows them on a real mount:
//! nanosecond modification times kept (also after a remount), access times settable with
//! utimensat and kept, ctime moving at every change but never set by a tool, and `st_blocks`
//! of a sparse file counting what is stored, not its length.

mod common;

use common::mount::{wait_for, Mount};
use common::small_store;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// (seconds, nanoseconds) of a time `stat` shows.
type Stamp = (i64, i64);

fn mtime(p: &Path) -> Stamp {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (m.mtime(), m.mtime_nsec())
}

fn atime(p: &Path) -> Stamp {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (m.atime(), m.atime_nsec())
}

fn ctime(p: &Path) -> Stamp {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (m.ctime(), m.ctime_nsec())
}

fn now() -> Stamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (d.as_secs() as i64, i64::from(d.subsec_nanos()))
}

/// Run a tool (as root, the mount's user in these stores), in UTC; it must succeed.
fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("TZ", "UTC")
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 2020-01-02 03:04:05.123456789 UTC.
const NS_TIME: &str = "2020-01-02 03:04:05.123456789";
const NS_STAMP: Stamp = (1_577_934_245, 123_456_789);
/// 2031-05-06 07:08:09.987654321 UTC: an access time in the future, so that the local
/// filesystem's relatime does not move it when the tools read the source file.
const A_TIME: &str = "2031-05-06 07:08:09.987654321";
const A_STAMP: Stamp = (1_935_817_689, 987_654_321);

/// `touch -d` with nanoseconds, `cp -p` and `rsync -t` of a file whose mtime has nanoseconds:
/// `stat` gives back the exact time, and does so after a remount.
#[test]
fn nanosecond_mtimes_are_kept_also_after_a_remount() {
    let t = small_store("root");
    let src = t.write("src/ns.txt", b"a file with a precise time");
    run(&["touch", "-m", "-d", NS_TIME, src.to_str().unwrap()]);
    assert_eq!(mtime(&src), NS_STAMP, "the local file's time (test setup)");

    let mut m = Mount::start(&t);
    let dir = m.path("root/website");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    // touch of a photo already there (no write), of a new file, cp -p, rsync -t
    run(&["touch", "-m", "-d", NS_TIME, &s(&dir.join("hall.jpg"))]);
    run(&["touch", "-d", NS_TIME, &s(&dir.join("touched.txt"))]);
    run(&["cp", "-p", &s(&src), &s(&dir.join("copied.txt"))]);
    run(&["rsync", "-t", &s(&src), &s(&dir.join("synced.txt"))]);
    let names = ["hall.jpg", "touched.txt", "copied.txt", "synced.txt"];
    for name in names {
        assert_eq!(
            mtime(&dir.join(name)),
            NS_STAMP,
            "{name}: mtime in the mount"
        );
    }
    // rsync -t a second time finds nothing to do (it compares the times)
    let out = Command::new("rsync")
        .args([
            "-t",
            "--itemize-changes",
            &s(&src),
            &s(&dir.join("synced.txt")),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "rsync -t saw a difference in the time"
    );

    m.stop();
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    for name in names {
        assert_eq!(
            mtime(&dir.join(name)),
            NS_STAMP,
            "{name}: mtime after a remount"
        );
    }
}

/// `touch -a -d`, `cp -p` (futimens on the file being written) and `rsync --atimes` (the
/// times of its temp file, then a rename) set the access time; `stat` shows it, to the
/// nanosecond, also after a remount; reading the file does not move it; a file never given one
/// shows its modification time.
#[test]
fn access_times_are_set_with_utimensat_and_kept() {
    let t = small_store("root");
    let src = t.write("src/a.txt", b"a file with an access time");
    run(&["touch", "-m", "-d", NS_TIME, src.to_str().unwrap()]);
    run(&["touch", "-a", "-d", A_TIME, src.to_str().unwrap()]);
    assert_eq!(atime(&src), A_STAMP, "the local file's atime (test setup)");

    let mut m = Mount::start(&t);
    let dir = m.path("root/website");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let hall = dir.join("hall.jpg");
    // never given one: the mtime
    assert_eq!(atime(&hall), mtime(&hall), "default atime");
    let before = mtime(&hall);
    run(&["touch", "-a", "-d", A_TIME, &s(&hall)]);
    assert_eq!(atime(&hall), A_STAMP, "touch -a");
    assert_eq!(mtime(&hall), before, "touch -a changed the mtime");
    // reads do not move it
    assert_eq!(std::fs::read(&hall).unwrap(), b"empty hall");
    std::thread::sleep(Duration::from_millis(1100)); // past the kernel's attribute cache
    assert_eq!(atime(&hall), A_STAMP, "a read moved the atime");

    // the same copies to a local folder: the mount must show the same times (rsync sends
    // access times in whole seconds)
    let local = t.path("local");
    std::fs::create_dir(&local).unwrap();
    for to in [&dir, &local] {
        run(&["cp", "-p", &s(&src), &s(&to.join("copied.txt"))]);
        run(&[
            "rsync",
            "-t",
            "--atimes",
            &s(&src),
            &s(&to.join("synced.txt")),
        ]);
    }
    assert_eq!(atime(&src), A_STAMP, "the tools moved the source's atime");
    for name in ["copied.txt", "synced.txt"] {
        let want = atime(&local.join(name));
        assert_eq!(
            want.0, A_STAMP.0,
            "{name}: atime of the local copy (test setup)"
        );
        assert_eq!(atime(&dir.join(name)), want, "{name}: atime");
        assert_eq!(mtime(&dir.join(name)), NS_STAMP, "{name}: mtime");
    }

    m.stop();
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    for name in ["copied.txt", "synced.txt"] {
        assert_eq!(
            atime(&dir.join(name)),
            atime(&local.join(name)),
            "{name}: atime after a remount"
        );
    }
    assert_eq!(
        atime(&dir.join("hall.jpg")),
        A_STAMP,
        "hall.jpg: atime after a remount"
    );
}

/// Times far from now (the index keeps most times in 8 bytes, which hold the years 1698 to
/// 2242; the rest in a table of their own): `touch -d` with a year 2500 modification time and
/// a year 2700 access time, on a photo and on a new file, and one in 1901 (with a fraction
/// of a second, which fuser's conversion moved) and 2242; `stat`
/// shows each exactly, after a save and after a remount, and setting a near time again
/// replaces the far one.
#[test]
fn far_times_are_kept_exactly() {
    let t = small_store("root");
    let mut m = Mount::start(&t);
    let dir = m.path("root/website");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (hall, new, old) = (
        dir.join("hall.jpg"),
        dir.join("far.txt"),
        dir.join("old.txt"),
    );
    std::fs::write(&new, b"a file from the future").unwrap();
    std::fs::write(&old, b"an old file").unwrap();
    let far_m = (
        "2500-07-08 09:09:10.123456789",
        (16_741_501_750, 123_456_789),
    );
    let far_a = (
        "2700-07-20 00:00:00.999999999",
        (23_053_852_800, 999_999_999),
    );
    // the last second a stamp holds, and a time before 1970 with a fraction of a second
    let edge = ("2242-03-16 12:56:31.000000001", (8_589_934_591, 1));
    let early = ("1901-06-04 00:00:00.0000005", (-2_164_147_200, 500));
    let touch = |flag: &str, t: (&str, Stamp), p: &Path| run(&["touch", flag, "-d", t.0, &s(p)]);
    for p in [&hall, &new] {
        touch("-m", far_m, p);
        touch("-a", far_a, p);
    }
    touch("-m", early, &old);
    touch("-a", edge, &old);
    let check = |when: &str| {
        for p in [&hall, &new] {
            assert_eq!(mtime(p), far_m.1, "{}: mtime {when}", p.display());
            assert_eq!(atime(p), far_a.1, "{}: atime {when}", p.display());
        }
        assert_eq!(mtime(&old), early.1, "old.txt: mtime {when}");
        assert_eq!(atime(&old), edge.1, "old.txt: atime {when}");
    };
    check("in the mount");
    m.stop();
    // (a new `Mount` in the same variable would unmount itself: the old one's drop unmounts)
    let mut m = Mount::start(&t);
    check("after a remount");
    // back to a near time: the far one is gone
    let dir = m.path("root/website");
    touch("-m", (NS_TIME, NS_STAMP), &dir.join("far.txt"));
    assert_eq!(mtime(&dir.join("far.txt")), NS_STAMP, "a near mtime again");
    assert_eq!(atime(&dir.join("far.txt")), far_a.1, "the far atime stays");
    m.stop();
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    assert_eq!(mtime(&dir.join("far.txt")), NS_STAMP, "after a remount");
    assert_eq!(atime(&dir.join("far.txt")), far_a.1, "after a remount");
}

/// ctime moves at chmod, rename, a change of times or size and a save, and is never set to a
/// time a tool gives (`cp -p` and `touch -d` put the mtime in the past; the ctime says when
/// that happened).
#[test]
fn ctime_moves_at_every_change_and_is_never_set_by_a_tool() {
    let t = small_store("root");
    let src = t.write("src/old.txt", b"an old file");
    run(&["touch", "-d", NS_TIME, src.to_str().unwrap()]);
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let f = dir.join("f.txt");
    std::fs::write(&f, b"one").unwrap();
    let tick = || std::thread::sleep(Duration::from_millis(20));
    // `before` is stat'ed before the change, `after` after it (a rename moves the file)
    let moves_to = |what: &str, before: &Path, after: &Path, act: &dyn Fn()| {
        let was = ctime(before);
        tick();
        let started = now();
        act();
        // a save at close may be recorded a moment after close returns
        let (moved, _) = wait_for(Duration::from_secs(3), || ctime(after) >= started);
        assert!(
            moved,
            "{what}: ctime of {} did not move ({was:?} then {:?}, change at {started:?})",
            after.display(),
            ctime(after)
        );
    };
    let moves = |what: &str, path: &Path, act: &dyn Fn()| moves_to(what, path, path, act);
    moves("chmod", &f, &|| run(&["chmod", "600", &s(&f)]));
    let g = dir.join("g.txt");
    moves_to("rename", &f, &g, &|| std::fs::rename(&f, &g).unwrap());
    moves("touch -d into the past", &g, &|| {
        run(&["touch", "-d", NS_TIME, &s(&g)])
    });
    assert_eq!(mtime(&g), NS_STAMP);
    moves("truncate", &g, &|| run(&["truncate", "-s", "2", &s(&g)]));
    moves("a save", &g, &|| std::fs::write(&g, b"two").unwrap());
    moves("touch -a", &g, &|| {
        run(&["touch", "-a", "-d", A_TIME, &s(&g)])
    });

    // cp -p: the mtime is the source's, the ctime is now
    let started = now();
    let copy = dir.join("copy.txt");
    run(&["cp", "-p", &s(&src), &s(&copy)]);
    assert_eq!(mtime(&copy), NS_STAMP);
    assert!(
        ctime(&copy) >= (started.0, 0),
        "cp -p: the ctime {:?} is not when the copy was made ({started:?})",
        ctime(&copy)
    );
}

/// A sparse file takes what it stores, not its length: `truncate -s 1G` shows 1 GiB as its
/// size and a few blocks in `st_blocks` (what `du` reports); a file with data counts it.
#[test]
fn sparse_files_show_what_is_stored_not_their_length() {
    let t = small_store("root");
    let mut m = Mount::start(&t);
    let dir = m.path("root/website");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let sparse = dir.join("sparse.img");
    run(&["truncate", "-s", "1G", &s(&sparse)]);
    let dense = dir.join("dense.bin");
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8 + 1).collect();
    std::fs::write(&dense, &data).unwrap();

    let check = |when: &str| {
        let md = std::fs::metadata(&sparse).unwrap();
        assert_eq!(md.len(), 1 << 30, "{when}: size of the sparse file");
        assert!(
            md.blocks() * 512 < 1 << 20,
            "{when}: the sparse file takes {} bytes by st_blocks",
            md.blocks() * 512
        );
        let (ok, _) = wait_for(Duration::from_secs(3), || {
            std::fs::metadata(&dense).unwrap().blocks() * 512 >= 1 << 20
        });
        assert!(
            ok,
            "{when}: a 1 MiB file with data takes {} bytes by st_blocks",
            std::fs::metadata(&dense).unwrap().blocks() * 512
        );
        // du agrees
        let out = Command::new("du").arg("-k").arg(&sparse).output().unwrap();
        let kib: u64 = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX);
        assert!(
            kib < 1024,
            "{when}: du -k shows {kib} KiB for the sparse file"
        );
    };
    check("in the mount");

    // a file being written (not saved yet): what its pending object holds
    use std::os::unix::fs::FileExt;
    let growing = dir.join("growing.img");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&growing)
        .unwrap();
    f.set_len(1 << 30).unwrap();
    let md = std::fs::metadata(&growing).unwrap();
    assert_eq!(md.len(), 1 << 30);
    assert!(
        md.blocks() * 512 < 1 << 20,
        "a sparse file being written takes {} bytes by st_blocks",
        md.blocks() * 512
    );
    f.write_all_at(&data, 0).unwrap();
    let md = std::fs::metadata(&growing).unwrap();
    assert!(
        md.blocks() * 512 >= 1 << 20 && md.blocks() * 512 < 4 << 20,
        "1 MiB written into a file being written: st_blocks says {} bytes",
        md.blocks() * 512
    );
    drop(f);
    m.stop();
    let _m = Mount::start(&t);
    check("after a remount");
}

/// A catalog from before nanosecond and access times (schema 9) is migrated: a time a tool
/// set shows its whole seconds, the access time is the modification time, and times set
/// afterwards keep their nanoseconds, in `stat` and in `versions`.
#[test]
fn a_catalog_from_before_nanosecond_times_is_migrated() {
    let t = small_store("root");
    {
        let (_s, cat) = t.open_catalog();
        cat.conn().execute_batch(common::BEFORE_FACES).unwrap();
        cat.conn()
            .execute_batch(
                "ALTER TABLE versions DROP COLUMN mtime_nsec;
                 ALTER TABLE versions DROP COLUMN atime;
                 ALTER TABLE versions DROP COLUMN atime_nsec;
                 UPDATE versions SET mtime = 1577934245;
                 DROP TABLE roles;
                 PRAGMA user_version = 9;",
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
    let mut m = Mount::start(&t);
    let hall = m.path("root/website/hall.jpg");
    assert_eq!(mtime(&hall), (NS_STAMP.0, 0), "mtime of a migrated version");
    assert_eq!(atime(&hall), (NS_STAMP.0, 0), "atime of a migrated version");
    run(&["touch", "-d", NS_TIME, hall.to_str().unwrap()]);
    assert_eq!(mtime(&hall), NS_STAMP);
    m.stop();
    let v = t.ok(&["--json", "versions", "hall.jpg"]).json();
    let text = v.to_string();
    assert!(
        text.contains("2020-01-02T03:04:05.123456789Z"),
        "versions does not show the time to the nanosecond: {text}"
    );
}
