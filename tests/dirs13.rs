//! Issue 13, folders and names: folder renames behave as on a local filesystem (ENOTEMPTY,
//! the new name usable at once), names over 255 bytes give ENAMETOOLONG, and `statfs` reports
//! free inodes. Real mounts, as a user's tools would see them.

mod common;

use common::mount::Mount;
use common::small_store;
use std::io::ErrorKind;
use std::path::Path;

fn errno_of(r: std::io::Result<impl std::fmt::Debug>) -> i32 {
    match r {
        Ok(v) => panic!("succeeded ({v:?}), an error was expected"),
        Err(e) => e
            .raw_os_error()
            .unwrap_or_else(|| panic!("no errno in {e}")),
    }
}

/// Finding 11: a folder cannot replace a folder with something in it (ENOTEMPTY), may replace
/// an empty one, and is found under its new name right after the rename, with the folders below
/// it; the old name is gone.
#[test]
fn folder_renames_act_as_on_a_local_filesystem() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    let p = |rel: &str| dir.join(rel);

    // rename onto folders that are not empty: one with a folder in it, one with a file
    std::fs::create_dir(p("empty")).unwrap();
    std::fs::create_dir_all(p("full1/sub")).unwrap();
    std::fs::create_dir(p("full2")).unwrap();
    std::fs::write(p("full2/f.txt"), b"x").unwrap();
    for full in ["full1", "full2"] {
        assert_eq!(
            errno_of(std::fs::rename(p("empty"), p(full))),
            libc::ENOTEMPTY,
            "rename(empty, {full})"
        );
    }
    assert!(p("empty").is_dir());
    assert!(p("full1/sub").is_dir());
    assert_eq!(std::fs::read(p("full2/f.txt")).unwrap(), b"x");
    // onto a file: ENOTDIR; into itself: EINVAL
    assert_eq!(
        errno_of(std::fs::rename(p("empty"), p("full2/f.txt"))),
        libc::ENOTDIR
    );
    std::fs::create_dir(p("empty/in")).unwrap();
    assert_eq!(
        errno_of(std::fs::rename(p("empty"), p("empty/in/deeper"))),
        libc::EINVAL
    );
    std::fs::remove_dir(p("empty/in")).unwrap();

    // onto an empty folder: it is replaced
    std::fs::create_dir(p("other")).unwrap();
    std::fs::rename(p("empty"), p("other")).unwrap();
    assert!(p("other").is_dir());
    assert_eq!(
        std::fs::metadata(p("empty")).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // mv x y, then at once stat y (and what is below it), several times over
    for i in 0..5 {
        let (x, y) = (p(&format!("x{i}")), p(&format!("y{i}")));
        std::fs::create_dir_all(x.join("s/t")).unwrap();
        // the kernel knows the folders (as after any `ls`)
        assert!(x.join("s/t").is_dir());
        std::fs::rename(&x, &y).unwrap();
        let md = std::fs::metadata(&y).unwrap_or_else(|e| panic!("stat y{i} after mv: {e}"));
        assert!(md.is_dir());
        assert!(y.join("s/t").is_dir(), "y{i}/s/t after mv");
        assert_eq!(
            std::fs::metadata(&x).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        // the renamed folder is usable: something made in it is found
        std::fs::create_dir(y.join("s/new")).unwrap();
        assert!(y.join("s/new").is_dir());
        let mut names: Vec<String> = std::fs::read_dir(y.join("s"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["new", "t"]);
    }
    // a process working in a folder that was renamed keeps a working directory it can name
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg("mkdir w && cd w && mv ../w ../v && pwd && ls -d ../v")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("/v\n"));
}

/// Finding 15: a name longer than 255 bytes is ENAMETOOLONG for lookup, create, mkdir and
/// rename (as on ext4), not "invalid argument" or "no such file"; 255 bytes work.
#[test]
fn names_over_255_bytes_are_too_long() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    let long = "n".repeat(256);
    let longer = "é".repeat(200); // 400 bytes
    for name in [&long, &longer] {
        let at = dir.join(name);
        assert_eq!(errno_of(std::fs::metadata(&at)), libc::ENAMETOOLONG, "stat");
        assert_eq!(
            errno_of(std::fs::write(&at, b"x")),
            libc::ENAMETOOLONG,
            "create"
        );
        assert_eq!(
            errno_of(std::fs::create_dir(&at)),
            libc::ENAMETOOLONG,
            "mkdir"
        );
        assert_eq!(
            errno_of(std::fs::rename(dir.join("a.jpg"), &at)),
            libc::ENAMETOOLONG,
            "rename"
        );
        assert_eq!(
            errno_of(std::fs::remove_file(&at)),
            libc::ENAMETOOLONG,
            "unlink"
        );
    }
    // the longest allowed name works
    let max = dir.join("m".repeat(255));
    std::fs::write(&max, b"x").unwrap();
    assert_eq!(std::fs::read(&max).unwrap(), b"x");
    std::fs::create_dir(dir.join("d".repeat(255))).unwrap();
    assert!(dir.join("d".repeat(255)).is_dir());
}

fn statvfs(path: &Path) -> nix::sys::statvfs::Statvfs {
    nix::sys::statvfs::statvfs(path).unwrap()
}

/// Finding 17: `df -i` shows free inodes (monitoring reads f_ffree = 0 as a full disk): those
/// of the filesystem the store lives on, which is where saves take them, not a count of the
/// photos in the catalog (which is not every user's business).
#[test]
fn statfs_reports_free_inodes() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let mounted = statvfs(&m.path("root/website"));
    let backing = statvfs(t.dir.path());
    assert!(
        mounted.files_free() > 0,
        "f_ffree is 0: reads as a full disk"
    );
    assert!(mounted.files_available() > 0);
    assert!(mounted.files() >= mounted.files_free());
    assert_eq!(mounted.files(), backing.files());
    assert_eq!(mounted.name_max(), 255);
    // the figures do not move with what the catalog holds: importing photos through the
    // command line changes the store's filesystem, not a count of photos
    let before = statvfs(&m.path("root")).files();
    t.write("more/b.jpg", b"another photo");
    t.write("more/c.jpg", b"and another");
    t.ok(&["import", t.path("more").to_str().unwrap()]);
    assert_eq!(statvfs(&m.path("root")).files(), before);
}

fn mtime(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .modified()
        .unwrap()
}

fn ctime(path: &Path) -> (i64, i64) {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path).unwrap();
    (md.ctime(), md.ctime_nsec())
}

/// Finding 16: a folder's modification (and change) time moves when a file is created,
/// unlinked or renamed in it and when a folder is made or removed in it; a file's moves at
/// each write, before the close; a folder's link count is 2 plus its sub-folders.
#[test]
fn folder_and_file_times_move_as_on_a_local_filesystem() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let top = m.path("root/website");
    let dir = top.join("times");
    std::fs::create_dir(&dir).unwrap();
    let tick = || std::thread::sleep(std::time::Duration::from_millis(20));
    let changes = |what: &str, folder: &Path, act: &dyn Fn()| {
        let (before, c_before) = (mtime(folder), ctime(folder));
        tick();
        act();
        assert!(
            mtime(folder) > before,
            "{what}: the mtime of {} did not move",
            folder.display()
        );
        assert!(ctime(folder) > c_before, "{what}: the ctime did not move");
    };
    changes("create", &dir, &|| {
        std::fs::write(dir.join("f.txt"), b"one").unwrap()
    });
    changes("rename in the folder", &dir, &|| {
        std::fs::rename(dir.join("f.txt"), dir.join("g.txt")).unwrap()
    });
    changes("unlink", &dir, &|| {
        std::fs::remove_file(dir.join("g.txt")).unwrap()
    });
    changes("mkdir", &dir, &|| {
        std::fs::create_dir(dir.join("sub")).unwrap()
    });
    changes("rmdir", &dir, &|| {
        std::fs::remove_dir(dir.join("sub")).unwrap()
    });
    changes("create in the purpose folder", &top, &|| {
        std::fs::write(top.join("new.txt"), b"x").unwrap()
    });
    // a move between folders changes both
    std::fs::write(dir.join("h.txt"), b"h").unwrap();
    let other_before = mtime(&top);
    changes("move out", &dir, &|| {
        std::fs::rename(dir.join("h.txt"), top.join("h.txt")).unwrap()
    });
    assert!(
        mtime(&top) > other_before,
        "the folder moved into did not change"
    );

    // a file being written: each write moves its mtime, before any close
    use std::io::Write;
    let path = top.join("hall.jpg");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let before_write = std::time::SystemTime::now();
    f.write_all(b" more").unwrap();
    let first = mtime(&path);
    assert!(first > before_write, "mtime did not move at the write");
    tick();
    f.write_all(b" and more").unwrap();
    assert!(
        mtime(&path) > first,
        "mtime did not move at the second write"
    );
    drop(f);
    assert_eq!(std::fs::read(&path).unwrap(), b"empty hall more and more");

    // link counts: 2 plus the sub-folders
    use std::os::unix::fs::MetadataExt;
    let nlink = |p: &Path| std::fs::metadata(p).unwrap().nlink();
    assert_eq!(nlink(&dir), 2);
    for s in ["a", "b", "c"] {
        std::fs::create_dir(dir.join(s)).unwrap();
    }
    std::fs::create_dir(dir.join("a/deeper")).unwrap();
    std::fs::write(dir.join("a/file.txt"), b"not a folder").unwrap();
    assert_eq!(nlink(&dir), 5);
    assert_eq!(nlink(&dir.join("a")), 3);
    let subfolders = std::fs::read_dir(&top)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_dir())
        .count() as u64;
    assert_eq!(nlink(&top), 2 + subfolders);
    // `find` walks everything (it trusts the link count to skip stat calls)
    let out = std::process::Command::new("find")
        .arg(".")
        .arg("-type")
        .arg("d")
        .current_dir(&dir)
        .output()
        .unwrap();
    let mut found: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    found.sort();
    assert_eq!(found, [".", "./a", "./a/deeper", "./b", "./c"]);
}

/// Names of `dir` and below as bytes (relative paths), with the content of each file.
fn byte_tree(dir: &Path) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().as_os_str().as_bytes().to_vec();
            if p.is_dir() {
                todo.push(p.clone());
                out.push((rel, None));
            } else {
                out.push((rel, Some(std::fs::read(&p).unwrap())));
            }
        }
    }
    out.sort();
    out
}

/// Finding 15, second half: names that are not UTF-8 (old Latin-1 archives) are stored and
/// listed byte-exact: rsync into the mount and back, and tar into it, gives the same names and contents; a name
/// holding the private-use characters the escaping uses comes back as it went in.
#[test]
fn names_that_are_not_utf8_are_kept_byte_exact() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let t = small_store("root");
    let m = Mount::start(&t);
    let src = t.path("archive");
    std::fs::create_dir_all(&src).unwrap();
    let names: [&[u8]; 4] = [
        b"caf\xe9.txt",
        b"\xff\xfe raw",
        "\u{f7e9}private.txt".as_bytes(),
        "café-utf8.txt".as_bytes(),
    ];
    for (i, n) in names.iter().enumerate() {
        std::fs::write(src.join(OsStr::from_bytes(n)), format!("file {i}")).unwrap();
    }
    let sub = src.join(OsStr::from_bytes(b"dossier \xe9t\xe9"));
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join(OsStr::from_bytes(b"r\xe9sum\xe9")), b"inside").unwrap();

    let into = m.path("root/website/archive");
    std::fs::create_dir(&into).unwrap();
    let rsync = |from: &Path, to: &Path| {
        let out = std::process::Command::new("rsync")
            .arg("-r")
            .arg(format!("{}/", from.display()))
            .arg(format!("{}/", to.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "rsync: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    rsync(&src, &into);
    assert_eq!(byte_tree(&into), byte_tree(&src));
    let back = t.path("back");
    std::fs::create_dir_all(&back).unwrap();
    rsync(&into, &back);
    assert_eq!(byte_tree(&back), byte_tree(&src));
    // tar into the mount gives the same names too
    let tarred = m.path("root/website/tarred");
    std::fs::create_dir(&tarred).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "tar -C '{}' -cf - . | tar -C '{}' -xf -",
            src.display(),
            tarred.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(byte_tree(&tarred), byte_tree(&src));
    // looked up, renamed and removed by their bytes
    let latin = into.join(OsStr::from_bytes(b"caf\xe9.txt"));
    assert_eq!(std::fs::read(&latin).unwrap(), b"file 0");
    let moved = into.join(OsStr::from_bytes(b"caf\xe9 2.txt"));
    std::fs::rename(&latin, &moved).unwrap();
    assert!(!latin.exists());
    assert_eq!(std::fs::read(&moved).unwrap(), b"file 0");
    std::fs::remove_file(&moved).unwrap();
    assert!(!moved.exists());
    // 255 bytes of Latin-1 are a valid name, 256 are too long
    let max = vec![0xe9u8; 255];
    std::fs::write(into.join(OsStr::from_bytes(&max)), b"x").unwrap();
    let mut over = max.clone();
    over.push(0xe9);
    assert_eq!(
        errno_of(std::fs::write(into.join(OsStr::from_bytes(&over)), b"x")),
        libc::ENAMETOOLONG
    );
}
