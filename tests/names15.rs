//! Issue 13 finding 15, export half: names that are not UTF-8 (old Latin-1 archives), kept
//! byte-exact in the mount, leave the store with the same bytes. `consentfs export` writes them
//! under their original bytes (not the escaped text the catalog holds), `export verify` and
//! `export --sync` find them again, and what is printed for people shows the bytes as `\xNN`.

mod common;

use common::mount::Mount;
use common::small_store;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Every file below `dir` as (path relative to `dir` in bytes, content), sorted.
fn files_below(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().as_os_str().as_bytes().to_vec();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn exported_files_keep_names_that_are_not_utf8_byte_exact() {
    let t = small_store("root");
    // moving a photo into another folder takes a delete grant
    t.ok(&[
        "user",
        "grant",
        "root",
        "--purpose",
        "website",
        "--access",
        "delete",
    ]);
    let mut m = Mount::start(&t);
    let top = m.path("root/website");
    // a Latin-1 folder and file name, and a real UTF-8 name holding one of the private-use
    // characters the catalog's escaping uses (it must come out as those UTF-8 bytes)
    let folder = top.join(OsStr::from_bytes(b"\xe9t\xe9"));
    std::fs::create_dir(&folder).unwrap();
    std::fs::rename(
        top.join("hall.jpg"),
        folder.join(OsStr::from_bytes(b"h\xe9ll.jpg")),
    )
    .unwrap();
    std::fs::rename(top.join("a.jpg"), top.join("\u{f7e9}anna.jpg")).unwrap();
    m.stop();

    let dest = t.path("out");
    let r = t.ok(&[
        "export",
        "--user",
        "root",
        "--purpose",
        "website",
        dest.to_str().unwrap(),
    ]);
    let want: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"manifest.json".to_vec(), vec![]),
        (b"\xe9t\xe9/h\xe9ll.jpg".to_vec(), b"empty hall".to_vec()),
        (
            "\u{f7e9}anna.jpg".as_bytes().to_vec(),
            b"photo of anna".to_vec(),
        ),
    ];
    let got: Vec<(Vec<u8>, Vec<u8>)> = files_below(&dest)
        .into_iter()
        .map(|(p, c)| {
            if p == b"manifest.json" {
                (p, vec![])
            } else {
                (p, c)
            }
        })
        .collect();
    let show = |v: &[(Vec<u8>, Vec<u8>)]| -> Vec<String> {
        v.iter()
            .map(|(p, _)| String::from_utf8_lossy(p).into_owned())
            .collect()
    };
    assert_eq!(got, want, "exported {:?}", show(&got));
    // printed for people: the bytes escaped, never the private-use stand-ins
    assert!(
        r.stdout.contains("added     \\xe9t\\xe9/h\\xe9ll.jpg"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains('\u{f7e9}'), "{}", r.stdout);

    // the destination checks out, and a sync finds every file where it left it
    let v = t.run(&["export", "verify", dest.to_str().unwrap()]);
    assert_eq!(v.code, 0, "verify: {}{}", v.stdout, v.stderr);
    let s = t.ok(&[
        "--json",
        "export",
        "--sync",
        "--user",
        "root",
        "--purpose",
        "website",
        dest.to_str().unwrap(),
    ]);
    let j = s.json();
    assert_eq!(j["unchanged"], 2, "{}", s.stdout);
    assert_eq!(
        j["removed"].as_array().map(Vec::len),
        Some(0),
        "{}",
        s.stdout
    );
    assert_eq!(got, {
        let mut again = files_below(&dest);
        for (p, c) in again.iter_mut() {
            if p == b"manifest.json" {
                c.clear();
            }
        }
        again
    });

    // a withdrawal takes Anna's file out again, found by its bytes
    t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    let s = t.ok(&[
        "export",
        "--sync",
        "--user",
        "root",
        "--purpose",
        "website",
        dest.to_str().unwrap(),
    ]);
    // (a real private-use character is shown as its UTF-8 bytes, like any stand-in)
    assert!(
        s.stdout.contains("removed   \\xef\\x9f\\xa9anna.jpg"),
        "{}",
        s.stdout
    );
    let left: Vec<Vec<u8>> = files_below(&dest).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        left,
        vec![b"manifest.json".to_vec(), b"\xe9t\xe9/h\xe9ll.jpg".to_vec()]
    );
    let v = t.run(&["export", "verify", dest.to_str().unwrap()]);
    assert_eq!(v.code, 0, "verify: {}{}", v.stdout, v.stderr);
}

/// A long name in a script of 3-byte characters (84 characters: 252 bytes, a valid name)
/// exports: the temporary name the export writes first kept the last 100 *characters* of the
/// name, 300 bytes here, over the 255-byte limit, so the export failed.
#[test]
fn a_long_name_in_chinese_exports() {
    let t = small_store("root");
    let name = format!("{}.jpg", "写".repeat(82));
    assert!(name.len() <= 255 && name.chars().count() < 100);
    t.write(&format!("long/{name}"), b"calligraphy");
    t.ok(&[
        "import",
        "--collection",
        "long",
        t.path("long").join(&name).to_str().unwrap(),
    ]);
    t.ok(&["mark", &format!("long/{name}"), "--no-persons"]);
    let dest = t.path("out");
    t.ok(&[
        "export",
        "--user",
        "root",
        "--purpose",
        "website",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(dest.join("long").join(&name)).unwrap(),
        b"calligraphy"
    );
}

/// Importing a folder of an old Latin-1 archive keeps its names byte-exact, as a copy into the
/// mount does (it was refused: "file name ... is not valid UTF-8; rename it"), and an export
/// gives the same bytes back.
#[test]
fn import_keeps_names_that_are_not_utf8_and_export_gives_them_back() {
    let t = small_store("root");
    let src = t.path("archive");
    std::fs::create_dir_all(src.join(OsStr::from_bytes(b"\xe9t\xe9"))).unwrap();
    std::fs::write(src.join(OsStr::from_bytes(b"caf\xe9.jpg")), b"latin one").unwrap();
    std::fs::write(
        src.join(OsStr::from_bytes(b"\xe9t\xe9/r\xe9sum\xe9.jpg")),
        b"latin two",
    )
    .unwrap();
    let r = t.ok(&[
        "--json",
        "import",
        "--collection",
        "old",
        src.to_str().unwrap(),
    ]);
    let ids: Vec<String> = r
        .json()
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.stdout))
        .iter()
        .map(|o| o["asset"].to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{}", r.stdout);
    for id in &ids {
        t.ok(&["mark", id, "--no-persons"]);
    }
    // listed for people with the bytes escaped
    let ls = t.ok(&["ls", "--user", "root", "--purpose", "website"]);
    assert!(ls.stdout.contains("old/caf\\xe9.jpg"), "{}", ls.stdout);
    assert!(
        ls.stdout.contains("old/\\xe9t\\xe9/r\\xe9sum\\xe9.jpg"),
        "{}",
        ls.stdout
    );
    let dest = t.path("out");
    t.ok(&[
        "export",
        "--user",
        "root",
        "--purpose",
        "website",
        "--collection",
        "old",
        dest.to_str().unwrap(),
    ]);
    let got: Vec<(Vec<u8>, Vec<u8>)> = files_below(&dest)
        .into_iter()
        .filter(|(p, _)| p != b"manifest.json")
        .collect();
    assert_eq!(
        got,
        vec![
            (b"old/caf\xe9.jpg".to_vec(), b"latin one".to_vec()),
            (
                b"old/\xe9t\xe9/r\xe9sum\xe9.jpg".to_vec(),
                b"latin two".to_vec()
            ),
        ]
    );
}
