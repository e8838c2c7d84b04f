//! Sidecars (issue 16 item 2): `IMG_0042.CR2.xmp` or `IMG_0042.xmp` beside a photo holds its
//! face regions, names and place, so it belongs to the photo: the same persons, visibility,
//! trash and erasure, on import and when written in the mount with exiftool; never an asset
//! that needs links of its own.

mod common;

use common::mount::{wait_for, Mount};
use common::{visible, TestStore};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn convert(out: &Path, gradient: &str) {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let ok = Command::new("convert")
        .args(["-size", "160x120", gradient])
        // JPEG bytes under a raw file's name: only the names matter here
        .arg(format!("jpg:{}", out.display()))
        .status()
        .expect("ImageMagick's convert");
    assert!(ok.success());
}

/// An XMP sidecar at `out` written by exiftool with `tags`.
fn xmp(out: &Path, tags: &[&str]) {
    let o = Command::new("exiftool")
        .args(["-q", "-o"])
        .arg(out)
        .args(tags)
        .output()
        .expect("exiftool");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn asset(t: &TestStore, path: &str) -> serde_json::Value {
    let all = t.ok(&["assets", "--json"]).json();
    all.as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"] == path)
        .cloned()
        .unwrap_or_else(|| panic!("no asset {path}: {all}"))
}

/// The OS user root, with `access` to the website purpose.
fn root_may(t: &TestStore, access: &str) {
    t.add_user("root");
    t.ok(&[
        "user",
        "grant",
        "root",
        "--purpose",
        "website",
        "--access",
        access,
    ]);
}

fn id(t: &TestStore, path: &str) -> String {
    asset(t, path)["asset"].as_i64().unwrap().to_string()
}

/// Photographers' delivery: two raws, each with a sidecar (both naming styles), a JPEG, and a
/// sidecar whose photo is not there.
fn delivery(t: &TestStore) {
    convert(&t.path("in/IMG_0042.CR2"), "gradient:red-blue");
    convert(&t.path("in/IMG_0043.NEF"), "gradient:green-white");
    convert(&t.path("in/IMG_0043.JPG"), "gradient:green-black");
    convert(&t.path("in/group.jpg"), "gradient:yellow-blue");
    xmp(
        &t.path("in/IMG_0042.CR2.xmp"),
        &[
            "-XMP-iptcExt:PersonInImageWDetails={PersonId=[urn:school:4711],PersonName=Anna}",
            "-XMP-exif:GPSLatitude=52.37",
            "-XMP-exif:GPSLatitudeRef=N",
        ],
    );
    xmp(
        &t.path("in/IMG_0043.xmp"),
        &["-XMP-iptcExt:PersonInImage=Bob Bakker"],
    );
    xmp(&t.path("in/lonely.xmp"), &["-XMP-dc:Title=no photo"]);
}

#[test]
fn imported_sidecars_are_their_photos() {
    let t = TestStore::new();
    t.ok(&["person", "add", "Anna", "--ref", "urn:school:4711"]);
    t.ok(&["person", "add", "Bob Bakker"]);
    delivery(&t);
    let out = t
        .ok(&[
            "import",
            "--collection",
            "shoot",
            t.path("in").to_str().unwrap(),
            "--json",
        ])
        .json();
    let by_path = |p: &str| {
        out.as_array()
            .unwrap()
            .iter()
            .find(|o| o["path"] == p)
            .cloned()
            .unwrap_or_else(|| panic!("{p} not in {out}"))
    };
    let raw42 = id(&t, "shoot/IMG_0042.CR2");
    let raw43 = id(&t, "shoot/IMG_0043.NEF");
    assert_eq!(
        by_path("shoot/IMG_0042.CR2.xmp")["sidecar_of"].to_string(),
        raw42
    );
    // `IMG_0043.xmp` goes with the raw, not the camera's JPEG beside it
    assert_eq!(
        by_path("shoot/IMG_0043.xmp")["sidecar_of"].to_string(),
        raw43
    );
    assert!(by_path("shoot/lonely.xmp")["sidecar_of"].is_null());
    // the sidecar's PersonId linked the photo; its name is a suggestion for the photo
    let raw = asset(&t, "shoot/IMG_0042.CR2");
    assert_eq!(raw["persons"].as_array().unwrap().len(), 1, "{raw}");

    // nothing about the sidecars waits in the review queue; the lonely one is a file of its own
    let queue = t.ok(&["review", "--json"]).json();
    let waiting: Vec<String> = queue
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["path"].as_str().map(str::to_string))
        .collect();
    assert!(
        waiting
            .iter()
            .all(|p| !p.ends_with("IMG_0042.CR2.xmp") && !p.ends_with("IMG_0043.xmp")),
        "{queue}"
    );
    assert!(waiting.iter().any(|p| p == "shoot/lonely.xmp"), "{queue}");
    assert!(
        queue
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["kind"] == "suggestion"
                && i["path"] == "shoot/IMG_0043.NEF"
                // Bob Bakker, added second
                && i["what"].as_str().unwrap().contains("names person #2")),
        "{queue}"
    );
    // a sidecar's persons are its photo's: linking it is refused with the photo named
    let sc = id(&t, "shoot/IMG_0042.CR2.xmp");
    let e = t.fails(&["link", &sc, "Bob Bakker"], "sidecar").stderr;
    assert!(e.contains(&format!("asset {raw42}")), "{e}");
    t.fails(&["mark", &sc, "--no-persons"], "sidecar");

    // consent shows the photo and its sidecar together, and a withdrawal hides both
    t.add_user("root");
    t.ok(&["user", "grant", "root", "--purpose", "website"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    assert_eq!(
        visible(&t, "root", "website"),
        ["shoot/IMG_0042.CR2", "shoot/IMG_0042.CR2.xmp"]
    );
    t.ok(&["link", "shoot/IMG_0043.NEF", "Bob Bakker"]);
    t.ok(&["consent", "grant", "Bob Bakker", "--purpose", "website"]);
    assert_eq!(
        visible(&t, "root", "website"),
        [
            "shoot/IMG_0042.CR2",
            "shoot/IMG_0042.CR2.xmp",
            "shoot/IMG_0043.NEF",
            "shoot/IMG_0043.xmp"
        ]
    );
    t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    assert_eq!(
        visible(&t, "root", "website"),
        ["shoot/IMG_0043.NEF", "shoot/IMG_0043.xmp"]
    );
    // a consent for that one photo covers its sidecar too
    t.ok(&[
        "consent",
        "grant",
        "Anna",
        "--purpose",
        "website",
        "--asset",
        &raw42,
    ]);
    assert_eq!(visible(&t, "root", "website").len(), 4);

    // erasing Anna shreds her photo and its sidecar (names and GPS included), names too
    t.ok(&["person", "erase", "Anna", "--yes"]);
    let all = t.ok(&["assets", "--json"]).stdout;
    assert!(!all.contains("IMG_0042"), "{all}");
    let e = t.run(&["cat", &sc]);
    assert_ne!(e.code, 0, "the sidecar still reads after erasure");
}

#[test]
fn a_sidecar_imported_before_its_photo_joins_it() {
    let t = TestStore::new();
    t.ok(&["person", "add", "Bob Bakker"]);
    xmp(
        &t.path("first/IMG_7.xmp"),
        &["-XMP-iptcExt:PersonInImage=Bob Bakker"],
    );
    t.ok(&[
        "import",
        "--collection",
        "s",
        t.path("first").to_str().unwrap(),
    ]);
    convert(&t.path("then/IMG_7.dng"), "gradient:red-blue");
    t.ok(&[
        "import",
        "--collection",
        "s",
        t.path("then").to_str().unwrap(),
    ]);
    let queue = t.ok(&["review", "--json"]).json();
    let items = queue.as_array().unwrap();
    // the sidecar no longer waits; its suggestion is the photo's now
    assert!(items.iter().all(|i| i["path"] != "s/IMG_7.xmp"), "{queue}");
    assert!(
        items
            .iter()
            .any(|i| i["kind"] == "suggestion" && i["path"] == "s/IMG_7.dng"),
        "{queue}"
    );
}

#[test]
fn trash_takes_the_sidecar_with_the_photo_and_gives_it_back() {
    let t = TestStore::new();
    convert(&t.path("in/a.dng"), "gradient:red-blue");
    xmp(&t.path("in/a.dng.xmp"), &["-XMP-dc:Title=t"]);
    t.ok(&[
        "import",
        "--collection",
        "s",
        t.path("in").to_str().unwrap(),
    ]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["link", "s/a.dng", "Anna"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    root_may(&t, "delete");
    let photo = id(&t, "s/a.dng");
    let m = Mount::start(&t);
    let d = m.path("root/website/s");
    let names = || {
        let mut n: Vec<String> = std::fs::read_dir(&d)
            .map(|r| {
                r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        n.sort();
        n
    };
    assert_eq!(names(), ["a.dng", "a.dng.xmp"]);
    std::fs::remove_file(d.join("a.dng")).unwrap();
    let (gone, _) = wait_for(Duration::from_secs(5), || names().is_empty());
    assert!(
        gone,
        "the sidecar stays after its photo was deleted: {:?}",
        names()
    );
    t.ok(&["trash", "restore", &photo]);
    let (back, _) = wait_for(Duration::from_secs(5), || names() == ["a.dng", "a.dng.xmp"]);
    assert!(back, "not back together: {:?}", names());
    // moved to another folder, the photo takes its sidecar along (consents scoped to a
    // collection, and grants, cover both alike)
    std::fs::create_dir(m.path("root/website/t")).unwrap();
    std::fs::rename(d.join("a.dng"), m.path("root/website/t/a.dng")).unwrap();
    let (moved, _) = wait_for(Duration::from_secs(5), || names().is_empty());
    assert!(moved, "the sidecar stayed behind: {:?}", names());
    assert_eq!(asset(&t, "t/a.dng.xmp")["sidecar_of"].to_string(), photo);
    let mut there: Vec<String> = std::fs::read_dir(m.path("root/website/t"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    there.sort();
    assert_eq!(there, ["a.dng", "a.dng.xmp"]);
    // on its own, a sidecar does not leave its photo's folder (a consent scoped to another
    // collection would judge it apart from its photo): EXDEV, so `mv` would copy it instead
    std::fs::create_dir(m.path("root/website/u")).unwrap();
    let e = std::fs::rename(
        m.path("root/website/t/a.dng.xmp"),
        m.path("root/website/u/a.dng.xmp"),
    )
    .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EXDEV), "{e}");
    assert_eq!(asset(&t, "t/a.dng.xmp")["sidecar_of"].to_string(), photo);
}

/// exiftool writes a sidecar beside a visible photo in the mount, and edits it in place (its
/// temp file renamed over it): the sidecar is the photo's from its first byte, seen by every
/// user who sees the photo and gone with the photo's consent; a sidecar without a photo, or
/// with another photo's bytes, is not.
#[test]
fn sidecars_written_in_the_mount_belong_to_their_photo() {
    let t = TestStore::new();
    convert(&t.path("in/a.jpg"), "gradient:red-blue");
    convert(&t.path("in/b.jpg"), "gradient:green-white");
    t.ok(&[
        "import",
        "--collection",
        "ev",
        t.path("in").to_str().unwrap(),
    ]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["person", "add", "Bob"]);
    t.ok(&["link", "ev/a.jpg", "Anna"]);
    t.ok(&["link", "ev/b.jpg", "Bob"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    t.ok(&["consent", "grant", "Bob", "--purpose", "website"]);
    root_may(&t, "write");
    t.add_user("nobody");
    t.ok(&["user", "grant", "nobody", "--purpose", "website"]);
    let m = Mount::start(&t);
    let d = m.path("root/website/ev");
    let sh = |script: &str| {
        // in a process group of its own, as an interactive shell runs each command (what
        // a process read tells what its files were made from)
        let o = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(&d)
            .process_group(0)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, err) = sh("exiftool -q -o a.jpg.xmp -XMP-dc:Title=Anna a.jpg");
    assert!(ok, "{err}");
    let (ok, err) = sh("exiftool -q -overwrite_original -XMP-dc:Description=edited a.jpg.xmp");
    assert!(ok, "{err}");
    // a tool that reads the photo and renames its temp file into the sidecar's name
    let rename = |photo: &str, to: &str| {
        format!(
            "python3 -c \"import os; open('{photo}', 'rb').read(); \
             open('{to}.tmp', 'w').write('<x:xmpmeta/>'); os.rename('{to}.tmp', '{to}')\""
        )
    };
    let (ok, err) = sh(&rename("b.jpg", "b.xmp"));
    assert!(ok, "{err}");
    // made from Anna's photo, it cannot become Bob's photo's sidecar: it stays a draft
    let (ok, err) = sh(&rename("a.jpg", "b.jpg.xmp"));
    assert!(ok, "{err}");
    // a sidecar for no photo is the writer's draft
    let (ok, err) = sh("printf '<x:xmpmeta/>' > nothing.xmp");
    assert!(ok, "{err}");
    // another photo's bytes under a sidecar name are refused at close (which `cat` and the
    // shell do not check: the content below is what shows it)
    sh("cat b.jpg > a.jpg.xmp");
    let sc = asset(&t, "ev/a.jpg.xmp");
    assert_eq!(sc["status"], "active", "{sc}");
    let versions = t.ok(&["versions", "ev/a.jpg.xmp", "--json"]).json();
    assert_eq!(versions.as_array().unwrap().len(), 2, "{versions}");
    let got = t.ok(&["cat", "ev/a.jpg.xmp"]).stdout;
    assert!(got.contains("edited") && got.contains("Anna"), "{got}");
    assert_eq!(
        visible(&t, "nobody", "website"),
        ["ev/a.jpg", "ev/a.jpg.xmp", "ev/b.jpg", "ev/b.xmp"]
    );
    assert_eq!(asset(&t, "ev/nothing.xmp")["status"], "draft");
    assert_eq!(asset(&t, "ev/b.jpg.xmp")["status"], "draft");
    t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    let (gone, _) = wait_for(Duration::from_secs(5), || {
        std::fs::metadata(d.join("a.jpg.xmp")).is_err()
    });
    assert!(
        gone,
        "the sidecar outlived its photo's consent\n{}",
        m.log_text()
    );
    assert!(std::fs::read(d.join("a.jpg")).is_err());
}

/// A sidecar goes where its photo goes and no further: exported with it (its GPS stripped with
/// `--strip-location`), hidden while its photo is in the trash even when restored alone, and
/// shredded when a person on a group photo that is kept is erased (it may name them).
#[test]
fn a_sidecar_goes_where_its_photo_goes_and_no_further() {
    let t = TestStore::new();
    convert(&t.path("in/g.jpg"), "gradient:red-blue");
    xmp(
        &t.path("in/g.jpg.xmp"),
        &[
            "-XMP-iptcExt:PersonInImage=Anna",
            "-XMP-exif:GPSLatitude=52.37",
            "-XMP-exif:GPSLatitudeRef=N",
            "-XMP-exif:GPSLongitude=4.89",
            "-XMP-exif:GPSLongitudeRef=E",
        ],
    );
    t.ok(&[
        "import",
        "--collection",
        "ev",
        t.path("in").to_str().unwrap(),
    ]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["person", "add", "Bob"]);
    t.ok(&["link", "ev/g.jpg", "Anna", "Bob"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    t.ok(&["consent", "grant", "Bob", "--purpose", "website"]);
    root_may(&t, "delete");

    let dest = t.path("out");
    t.ok(&[
        "export",
        "--user",
        "root",
        "--purpose",
        "website",
        dest.to_str().unwrap(),
        "--strip-location",
    ]);
    let sidecar = std::fs::read_to_string(dest.join("ev/g.jpg.xmp")).unwrap();
    assert!(sidecar.contains("Anna"), "{sidecar}");
    assert!(!sidecar.contains("GPS"), "the place went out: {sidecar}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("manifest.json")).unwrap()).unwrap();
    let entry = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "ev/g.jpg.xmp")
        .cloned()
        .unwrap();
    assert_eq!(entry["location_stripped"], true, "{entry}");

    // restored alone while its photo is in the trash, it shows nowhere
    let sc = id(&t, "ev/g.jpg.xmp");
    let m = Mount::start(&t);
    std::fs::remove_file(m.path("root/website/ev/g.jpg")).unwrap();
    let (gone, _) = wait_for(Duration::from_secs(5), || {
        visible(&t, "root", "website").is_empty()
    });
    assert!(gone, "{:?}", visible(&t, "root", "website"));
    t.ok(&["trash", "restore", &sc]);
    assert_eq!(asset(&t, "ev/g.jpg.xmp")["status"], "active");
    assert!(visible(&t, "root", "website").is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert!(std::fs::metadata(m.path("root/website/ev/g.jpg.xmp")).is_err());
    let photo = t.ok(&["trash", "list", "--json"]).json()[0]["asset"].to_string();
    t.ok(&["trash", "restore", &photo]);
    assert_eq!(visible(&t, "root", "website"), ["ev/g.jpg", "ev/g.jpg.xmp"]);
    drop(m);

    // erasing Anna keeps the group photo (Bob is on it too) and shreds its sidecar
    let out = t.ok(&["person", "erase", "Anna", "--yes"]).stdout;
    assert!(out.contains("sidecar of a group photo kept"), "{out}");
    assert_ne!(t.run(&["cat", &sc]).code, 0, "the sidecar still reads");
    assert_eq!(
        t.run(&["cat", "ev/g.jpg"]).code,
        0,
        "the group photo went too"
    );
    let all = t.ok(&["assets", "--json"]).stdout;
    assert!(!all.contains("g.jpg.xmp"), "{all}");
}

/// Renaming a folder moves a photo and its sidecar together, whichever of the two names sorts
/// first (`pic.xmp` before `pic.zzz`).
#[test]
fn a_folder_rename_moves_photos_with_their_sidecars() {
    let t = TestStore::new();
    convert(&t.path("in/pic.zzz"), "gradient:red-blue");
    xmp(&t.path("in/pic.xmp"), &["-XMP-dc:Title=t"]);
    convert(&t.path("in/b.dng"), "gradient:green-white");
    xmp(&t.path("in/b.dng.xmp"), &["-XMP-dc:Title=t"]);
    // the two sidecars hold the same bytes: each is still its own photo's
    let out = t
        .ok(&[
            "import",
            "--collection",
            "f/old",
            t.path("in").to_str().unwrap(),
        ])
        .stdout;
    assert!(!out.contains("duplicate "), "{out}");
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["link", "f/old/pic.zzz", "Anna"]);
    t.ok(&["link", "f/old/b.dng", "Anna"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    root_may(&t, "delete");
    let m = Mount::start(&t);
    std::fs::rename(m.path("root/website/f/old"), m.path("root/website/f/new")).unwrap();
    assert_eq!(
        visible(&t, "root", "website"),
        [
            "f/new/b.dng",
            "f/new/b.dng.xmp",
            "f/new/pic.xmp",
            "f/new/pic.zzz"
        ]
    );
    assert!(!asset(&t, "f/new/pic.xmp")["sidecar_of"].is_null());
}
