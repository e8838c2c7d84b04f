//! Issue 13: one file, one state. Every descriptor of a file in a view shares what was written
//! (appenders, SQLite with two connections, tail -f, truncate by path), a save is committed when
//! its writer is done (not when a child process closes an inherited descriptor), and one save
//! makes one version. Real mounts, compared with what a local filesystem does.

mod common;

use common::mount::{wait_for, Mount};
use common::{py, small_store, TestStore};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn sh(dir: &Path, script: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn versions(t: &TestStore, path: &str) -> Vec<serde_json::Value> {
    t.ok(&["versions", path, "--json"])
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Finding 1: two shell loops appending to one log keep all 400 lines and no NUL byte; two
/// O_APPEND descriptors writing in turn leave "123".
#[test]
fn two_appenders_keep_every_line() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    let out = Command::new("bash")
        .arg("-c")
        .arg("(for i in $(seq 200); do echo A$i >> log; done) & (for i in $(seq 200); do echo B$i >> log; done) & wait")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.stderr.is_empty(),
        "an append failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read(dir.join("log")).unwrap();
    assert!(!log.contains(&0), "NUL bytes in the log");
    let text = String::from_utf8(log).unwrap();
    if text.lines().count() != 400 {
        std::thread::sleep(Duration::from_secs(1));
        let later = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        let stored = t.ok(&["cat", "log"]).stdout;
        panic!(
            "lines lost: {} in the mount, {} a second later, {} in the catalog\n{}",
            text.lines().count(),
            later.lines().count(),
            stored.lines().count(),
            m.log_text()
        );
    }
    for i in 1..=200 {
        assert!(text.lines().any(|l| l == format!("A{i}")), "A{i} lost");
        assert!(text.lines().any(|l| l == format!("B{i}")), "B{i} lost");
    }
    let turns = py(
        &dir,
        "import os\n\
         a=os.open('turns',os.O_WRONLY|os.O_CREAT|os.O_APPEND,0o600)\n\
         b=os.open('turns',os.O_WRONLY|os.O_APPEND)\n\
         os.write(a,b'1'); os.write(b,b'2'); os.write(a,b'3')\n\
         os.close(a); os.close(b)\n\
         print(open('turns','rb').read())",
    );
    assert_eq!(turns.trim(), "b'123'");
}

/// Finding 2: SQLite with two connections committing in turn keeps every row.
#[test]
fn sqlite_with_two_connections_keeps_every_row() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    let out = py(
        &dir,
        "import sqlite3\n\
         a=sqlite3.connect('cat.db'); a.execute('create table t(x)'); a.commit()\n\
         b=sqlite3.connect('cat.db')\n\
         for i in range(50):\n\
         \x20   a.execute('insert into t values (?)',(i,)); a.commit()\n\
         \x20   b.execute('insert into t values (?)',(1000+i,)); b.commit()\n\
         a.close(); b.close()\n\
         c=sqlite3.connect('cat.db')\n\
         print(c.execute('select count(*) from t').fetchone()[0], c.execute('pragma integrity_check').fetchone()[0])",
    );
    assert_eq!(out.trim(), "100 ok");
}

/// Finding 3: `truncate` by path while another descriptor has written acts on what it wrote;
/// the writer's close does not undo it.
#[test]
fn a_truncate_by_path_is_not_undone_by_a_later_close() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    let out = py(
        &dir,
        "import os\n\
         open('f','wb').write(b'0123456789')\n\
         fd=os.open('f',os.O_RDWR)\n\
         os.write(fd,b'AB')\n\
         os.truncate('f',3)\n\
         os.close(fd)\n\
         print(open('f','rb').read())",
    );
    assert_eq!(out.trim(), "b'AB2'");
}

/// Finding 4: a reader sees what another descriptor appends, before and after the writer
/// closes (tail -f); a descriptor opened before a save reads the saved content after it.
#[test]
fn readers_see_what_other_descriptors_write() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    let out = py(
        &dir,
        "import os\n\
         open('log','wb').write(b'one\\n')\n\
         r=os.open('log',os.O_RDONLY)\n\
         print(os.read(r,100))\n\
         w=os.open('log',os.O_WRONLY|os.O_APPEND)\n\
         os.write(w,b'two\\n')\n\
         print(os.read(r,100))\n\
         os.write(w,b'three\\n'); os.close(w)\n\
         print(os.read(r,100))\n\
         os.close(r)",
    );
    assert_eq!(out, "b'one\\n'\nb'two\\n'\nb'three\\n'\n");
}

/// Finding 8: a child process that inherited the descriptor and exits (its close flushes)
/// commits nothing half-way: the file gets one version with both parts.
#[test]
fn a_childs_close_commits_nothing_half_way() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    sh(
        &dir,
        "exec 3>new.jpg; printf part1 >&3; /bin/true; printf part2 >&3; exec 3>&-",
    );
    assert_eq!(std::fs::read(dir.join("new.jpg")).unwrap(), b"part1part2");
    let (settled, _) = wait_for(Duration::from_secs(5), || {
        versions(&t, "new.jpg")
            .last()
            .and_then(|v| v["size"].as_u64())
            == Some(10)
    });
    assert!(settled, "{:?}", versions(&t, "new.jpg"));
    let v = versions(&t, "new.jpg");
    assert_eq!(v.len(), 1, "half a save became a version: {v:?}");
}

/// Findings 7 and 14: an fsync, more writes and an fsync, then the close, make one version;
/// ImageMagick saving over a photo (it opens with O_TRUNC twice) makes one version and never an
/// empty one.
#[test]
fn one_save_makes_one_version() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    let before = versions(&t, "hall.jpg").len();
    py(
        &dir,
        "import os\n\
         fd=os.open('hall.jpg',os.O_WRONLY|os.O_TRUNC)\n\
         os.write(fd,b'first part '); os.fsync(fd)\n\
         os.write(fd,b'second part'); os.fsync(fd)\n\
         os.close(fd)",
    );
    let v = versions(&t, "hall.jpg");
    assert_eq!(v.len(), before + 1, "{v:?}");
    assert_eq!(t.ok(&["cat", "hall.jpg"]).raw, b"first part second part");
    // a real photo, saved over by ImageMagick
    let img = t.path("real.jpg");
    let made = Command::new("convert")
        .args(["-size", "64x48", "gradient:red-blue"])
        .arg(&img)
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::copy(&img, dir.join("hall.jpg")).unwrap();
    let before = versions(&t, "hall.jpg").len();
    sh(&dir, "convert hall.jpg -rotate 90 hall.jpg");
    let v = versions(&t, "hall.jpg");
    assert_eq!(v.len(), before + 1, "one save, one version: {v:?}");
    assert!(
        v.iter().all(|r| r["size"].as_u64() != Some(0)),
        "an empty version of a photo: {v:?}"
    );
    let shown = std::fs::read(dir.join("hall.jpg")).unwrap();
    assert_eq!(t.ok(&["cat", "hall.jpg"]).raw, shown);
}

fn xattr(path: &Path, name: &str) -> String {
    let out = Command::new("getfattr")
        .args(["--only-values", "-n", name])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Findings 12 and 13: exiftool's default save (it renames p.jpg to p.jpg_original, then its
/// temp file to p.jpg) keeps the photo's identity and persons, and needs a write grant only;
/// the backup name is a draft of the previous content. A rename within the folder is a write.
#[test]
fn exiftool_keeps_the_photo_and_needs_only_a_write_grant() {
    let t = TestStore::new();
    std::fs::create_dir_all(t.path("shoot")).unwrap();
    let made = Command::new("convert")
        .args(["-size", "64x48", "gradient:red-blue"])
        .arg(t.path("shoot/p.jpg"))
        .status()
        .unwrap();
    assert!(made.success());
    t.ok(&["import", t.path("shoot").to_str().unwrap()]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["link", "p.jpg", "Anna"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    let (uid, gid) = common::mount::os_user("cfsexif");
    t.add_user("cfsexif");
    t.ok(&[
        "user",
        "grant",
        "cfsexif",
        "--purpose",
        "website",
        "--access",
        "write",
    ]);
    let m = Mount::start(&t);
    let dir = m.path("cfsexif/website");
    let id = xattr(&dir.join("p.jpg"), "user.consentfs.asset");
    let before = versions(&t, "p.jpg").len();
    let out = common::mount::run_as(
        uid,
        gid,
        &format!("cd '{}' && exiftool -q -Title=edited p.jpg", dir.display()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        xattr(&dir.join("p.jpg"), "user.consentfs.asset"),
        id,
        "the edit is another asset"
    );
    assert_eq!(xattr(&dir.join("p.jpg"), "user.consentfs.subjects"), "1");
    assert_eq!(
        xattr(&dir.join("p.jpg_original"), "user.consentfs.status"),
        "draft"
    );
    assert_eq!(versions(&t, "p.jpg").len(), before + 1);
    let title = Command::new("exiftool")
        .args(["-s3", "-Title"])
        .arg(dir.join("p.jpg"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&title.stdout).trim(), "edited");
    // the catalog's current version is what the mount shows
    assert_eq!(
        t.ok(&["cat", "p.jpg"]).raw,
        std::fs::read(dir.join("p.jpg")).unwrap()
    );
    // a rename within the folder is a write
    let out = common::mount::run_as(
        uid,
        gid,
        &format!("cd '{}' && mv p.jpg q.jpg", dir.display()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(xattr(&dir.join("q.jpg"), "user.consentfs.asset"), id);
}

/// Finding 9: a file created in a new folder does not take the folder away from under a
/// process working in it (getcwd); `git init` works there.
#[test]
fn git_init_works_in_a_new_folder() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    for i in 0..4 {
        let out = sh(
            &dir,
            &format!(
                "mkdir d{i} && cd d{i} && echo abc > f && git init -q && pwd && git status --short"
            ),
        );
        assert!(out.contains(&format!("/d{i}")), "{out}");
    }
}

/// Finding 3, second half: a temp file renamed over a file that another descriptor still holds
/// open for writing is not undone by that descriptor's close.
#[test]
fn a_file_renamed_over_is_not_undone_by_an_old_descriptors_close() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    let out = py(
        &dir,
        "import os\n\
         open('f','wb').write(b'old content')\n\
         fd=os.open('f',os.O_RDWR)\n\
         os.write(fd,b'XX')\n\
         open('t','wb').write(b'new content')\n\
         os.rename('t','f')\n\
         os.close(fd)\n\
         print(open('f','rb').read())",
    );
    assert_eq!(out.trim(), "b'new content'");
    assert_eq!(t.ok(&["cat", "f"]).raw, b"new content");
}

/// Finding 18: `ls` marks a draft as a draft, and `ls --hidden` does not list temp files saved
/// over a photo as "in the trash" (`trash list` does not show them either: they are gone).
#[test]
fn ls_marks_drafts_and_forgets_merged_temp_files() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    std::fs::write(dir.join("mine.txt"), b"my notes").unwrap();
    // an rsync-style save of an edit: read the photo, write a temp file, rename it over
    let mut edited = std::fs::read(dir.join("a.jpg")).unwrap();
    edited.extend_from_slice(b", edited");
    std::fs::write(dir.join(".a.jpg.tmp"), &edited).unwrap();
    std::fs::rename(dir.join(".a.jpg.tmp"), dir.join("a.jpg")).unwrap();
    let ls = t
        .ok(&["ls", "--user", "root", "--purpose", "website"])
        .stdout;
    let line = ls
        .lines()
        .find(|l| l.contains("mine.txt"))
        .unwrap_or_default();
    assert!(line.contains("draft"), "{ls}");
    let hidden = t.ok(&[
        "ls",
        "--user",
        "root",
        "--purpose",
        "website",
        "--hidden",
        "--json",
    ]);
    let items = hidden.json();
    let items = items.as_array().unwrap();
    assert!(
        !items
            .iter()
            .any(|i| i["path"].as_str().unwrap_or("").contains(".a.jpg.tmp")),
        "{items:?}"
    );
    let mine = items.iter().find(|i| i["path"] == "mine.txt").unwrap();
    assert_eq!(mine["draft"], true);
    let photo = items.iter().find(|i| i["path"] == "a.jpg").unwrap();
    assert_eq!(photo["draft"], false);
    let trash = t.ok(&["trash", "list"]).stdout;
    assert!(!trash.contains(".a.jpg.tmp"), "{trash}");
}

/// Saving in place twice in a row from a script (no job control: every command of the script is
/// in one process group) works both times. The second run's temp file counts the first run's
/// temp file, deleted by then, among what it was made from; a deleted temp file is still a
/// draft of the photo, and it was wrongly taken for a photo of unknown persons ("Couldn't
/// overwrite in place"; exiftool then fell back to a rename).
#[test]
fn exiftool_saves_in_place_twice_from_a_script() {
    let t = TestStore::new();
    std::fs::create_dir_all(t.path("shoot")).unwrap();
    let made = Command::new("convert")
        .args(["-size", "64x48", "gradient:red-blue"])
        .arg(t.path("shoot/p.jpg"))
        .status()
        .unwrap();
    assert!(made.success());
    t.ok(&["import", t.path("shoot").to_str().unwrap()]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["link", "p.jpg", "Anna"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
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
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    let out = sh(
        &dir,
        "exiftool -overwrite_original_in_place -Artist=first p.jpg 2>&1; \
         exiftool -overwrite_original_in_place -Artist=second p.jpg 2>&1; \
         exiftool -s3 -Artist p.jpg",
    );
    assert!(!out.contains("Couldn't"), "{out}");
    assert!(out.trim_end().ends_with("second"), "{out}");
    assert_eq!(versions(&t, "p.jpg").len(), 3, "{out}");
    assert!(
        !m.log_text().contains("denied"),
        "a save was refused: {}",
        m.log_text()
    );
}
