//! Linking persons to photos at scale (issue 16): the persons photographers' tools embed in
//! a photo (written here with exiftool), the review queue, detected faces in rule 3, and links
//! from a CSV file.

mod common;

use common::TestStore;
use std::process::Command;

/// A small gray JPEG at `rel`, with exiftool run on it with `tags` (each a `-TAG=VALUE`).
fn photo_with(t: &TestStore, rel: &str, tags: &[&str]) -> std::path::PathBuf {
    let p = t.path(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let ok = Command::new("convert")
        .args(["-size", "320x240", "xc:gray"])
        .arg(&p)
        .status()
        .expect("ImageMagick's convert");
    assert!(ok.success());
    if !tags.is_empty() {
        let out = Command::new("exiftool")
            .args(["-q", "-overwrite_original"])
            .args(tags)
            .arg(&p)
            .output()
            .expect("exiftool");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    p
}

fn asset_row(t: &TestStore, path: &str) -> serde_json::Value {
    let all = t.ok(&["assets", "--json"]).json();
    all.as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"] == path)
        .cloned()
        .unwrap_or_else(|| panic!("no asset {path}: {all}"))
}

#[test]
fn embedded_ids_link_and_names_become_suggestions() {
    let t = TestStore::new();
    t.ok(&["person", "add", "Kees Jansen", "--ref", "urn:school:4711"]);
    t.ok(&["person", "add", "Anna de Vries", "--ref", "REL-0042"]);
    t.ok(&["person", "add", "Marja Jansen"]);
    let huge = "N".repeat(20_000);
    photo_with(
        &t,
        "in/class.jpg",
        &[
            "-XMP-mwg-rs:RegionInfo={RegionList=[{Area={X=0.3,Y=0.4,W=0.1,H=0.15,Unit=normalized},Name=Marja Jansen,Type=Face},{Area={X=7.5,Y=-2,W=0.1,H=0.15,Unit=normalized},Name=Piet Onbekend,Type=Face},{Area={X=0.5,Y=0.5,W=0.1,H=0.1,Unit=normalized},Name=Dog,Type=Pet}]}",
            "-XMP-iptcExt:PersonInImageWDetails={PersonId=[urn:school:4711],PersonName=Kees Jansen}",
            "-XMP-plus:ModelReleaseID=REL-0042",
            &format!("-XMP-iptcExt:PersonInImage={huge}"),
        ],
    );
    photo_with(&t, "in/plain.jpg", &[]);
    let out = t
        .ok(&[
            "import",
            "--collection",
            "school",
            t.path("in").to_str().unwrap(),
        ])
        .stdout;
    assert!(out.contains("linked     school/class.jpg"), "{out}");
    // the references linked at once, on record as coming from the metadata
    let class = asset_row(&t, "school/class.jpg");
    assert_eq!(class["persons"].as_array().unwrap().len(), 2, "{class}");
    let audit = t.ok(&["audit", "list", "--json"]).stdout;
    assert_eq!(audit.matches("asset.link.metadata").count(), 2, "{audit}");
    // a photo without people tags has no persons and no suggestions
    assert_eq!(
        asset_row(&t, "school/plain.jpg")["persons"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // the names are suggestions in the review queue; the pet is not; the huge name is cut
    let queue = t.ok(&["review", "--json"]).json();
    let items = queue.as_array().unwrap();
    let suggestions: Vec<&serde_json::Value> =
        items.iter().filter(|i| i["kind"] == "suggestion").collect();
    assert_eq!(suggestions.len(), 3, "{queue}");
    assert!(!queue.to_string().contains("Dog"));
    assert!(items
        .iter()
        .any(|i| i["kind"] == "unreviewed" && i["path"] == "school/plain.jpg"));
    let text = t.ok(&["review"]).stdout;
    assert!(text.contains("consentfs review accept"), "{text}");

    // accepting all links the one whose name is a person's; the others stay open
    let done = t.ok(&["review", "accept", "--all", "--json"]).json();
    assert_eq!(done["linked"].as_array().unwrap().len(), 1, "{done}");
    assert_eq!(done["left"].as_array().unwrap().len(), 2, "{done}");
    assert_eq!(
        asset_row(&t, "school/class.jpg")["persons"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // the rest is rejected by number; then nothing about it is left in the queue
    let queue = t.ok(&["review", "--json"]).json();
    for i in queue.as_array().unwrap() {
        if let Some(id) = i["suggestion"].as_i64() {
            t.ok(&["review", "reject", &id.to_string()]);
        }
    }
    let queue = t.ok(&["review", "--json"]).json();
    assert!(
        queue
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["kind"] != "suggestion"),
        "{queue}"
    );
    t.fails(&["review", "reject", "999"], "no open suggestion");
}

/// Metadata that is broken (XML cut off inside a JPEG's XMP segment, an XMP file of garbage,
/// a face region list that is not a list) imports the photo without persons or suggestions,
/// and without failing the import.
#[test]
fn broken_metadata_imports_the_photo_and_nothing_else() {
    let t = TestStore::new();
    t.ok(&["person", "add", "Anna", "--ref", "A-1"]);
    let jpeg = photo_with(&t, "src/a.jpg", &[]);
    let body = std::fs::read(&jpeg).unwrap();
    // SOI, then an APP1 XMP segment whose XML breaks off, then the rest of the real JPEG
    let xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'><rdf:Description xmlns:Iptc4xmpExt='http://iptc.org/std/Iptc4xmpExt/2008-02-29/'><Iptc4xmpExt:PersonInImageWDetails><rdf:Bag><rdf:li><Iptc4xmpExt:PersonId>A-1";
    let mut broken = vec![0xFF, 0xD8, 0xFF, 0xE1];
    broken.extend_from_slice(&((xmp.len() + 2) as u16).to_be_bytes());
    broken.extend_from_slice(xmp);
    broken.extend_from_slice(&body[2..]);
    t.write("in/cut.jpg", &broken);
    t.write(
        "in/garbage.xmp",
        b"<?xpacket?><x:xmpmeta xmlns:mwg-rs='http://www.metadataworkinggroup.com/schemas/regions/'>\xff\x00<<<>>>",
    );
    photo_with(
        &t,
        "in/odd.jpg",
        &["-XMP-mwg-rs:RegionInfo={RegionList=[{Name=,Type=Face}]}"],
    );
    let out = t
        .ok(&[
            "import",
            "--collection",
            "x",
            t.path("in").to_str().unwrap(),
        ])
        .stdout;
    assert!(out.contains("imported 3 file(s)"), "{out}");
    for p in ["x/cut.jpg", "x/garbage.xmp", "x/odd.jpg"] {
        assert_eq!(
            asset_row(&t, p)["persons"].as_array().unwrap().len(),
            0,
            "{p} got a person from broken metadata"
        );
    }
    let queue = t.ok(&["review", "--json"]).stdout;
    assert!(!queue.contains("\"suggestion\""), "{queue}");
}

#[test]
fn suggestions_naming_an_erased_person_go_with_the_name() {
    let t = TestStore::new();
    t.ok(&["person", "add", "Marja Jansen"]);
    photo_with(&t, "in/a.jpg", &["-XMP-iptcExt:PersonInImage=Marja Jansen"]);
    t.ok(&["import", t.path("in").to_str().unwrap()]);
    assert!(t.ok(&["review", "--json"]).stdout.contains("suggestion"));
    t.ok(&["person", "erase", "Marja Jansen", "--yes"]);
    let queue = t.ok(&["review", "--json"]).stdout;
    assert!(!queue.contains("\"suggestion\""), "{queue}");
}

/// Detected faces are recorded here through the library (the detector is tested on its own):
/// a photo with more faces than linked persons is hidden until each is accounted for, and
/// "no persons" on it needs --force.
#[test]
fn detected_faces_must_be_accounted_for() {
    let t = common::anna_consented("ev", "group.jpg", b"group photo", "website");
    t.add_user("root");
    t.ok(&["user", "grant", "root", "--purpose", "website"]);
    t.write("in2/hall.jpg", b"a hall");
    t.ok(&[
        "import",
        "--collection",
        "ev",
        t.path("in2").to_str().unwrap(),
    ]);
    let seen = || {
        t.ok(&["ls", "--user", "root", "--purpose", "website"])
            .stdout
    };
    assert!(seen().contains("group.jpg"));
    let record = |asset: &str, n: usize| {
        let (_s, mut cat) = t.open_catalog();
        let tx = cat.begin("test", chrono::Utc::now()).unwrap();
        let id = consentfs::catalog::assets::resolve(&tx, asset).unwrap().id;
        let faces: Vec<consentfs::catalog::faces::Face> = (0..n)
            .map(|i| consentfs::catalog::faces::Face {
                x: 0.1 + 0.2 * i as f32,
                y: 0.3,
                w: 0.1,
                h: 0.1,
                score: 0.9,
            })
            .collect();
        consentfs::catalog::faces::record(&tx, id, 1, &faces, "test").unwrap();
        tx.commit().unwrap();
    };
    record("ev/group.jpg", 2);
    assert!(
        !seen().contains("group.jpg"),
        "a bystander's face is unaccounted for"
    );
    let why = t
        .run(&[
            "why",
            "ev/group.jpg",
            "--user",
            "root",
            "--purpose",
            "website",
        ])
        .stdout;
    assert!(why.contains("2 face(s) detected"), "{why}");
    let queue = t.ok(&["review", "--json"]).stdout;
    assert!(queue.contains("unlinked-faces"), "{queue}");
    // Anna is face 1; the other face is declared not recognisable
    t.ok(&["link", "ev/group.jpg", "Anna", "--face", "1"]);
    t.fails(
        &["link", "ev/group.jpg", "Anna", "--face", "3"],
        "no face 3",
    );
    assert!(!seen().contains("group.jpg"));
    t.ok(&["mark", "ev/group.jpg", "--faces-reviewed"]);
    assert!(seen().contains("group.jpg"));
    // a rescan that finds a third face needs another look
    record("ev/group.jpg", 3);
    assert!(!seen().contains("group.jpg"));

    // "no persons" on a photo with a detected face needs --force
    record("ev/hall.jpg", 1);
    t.fails(&["mark", "ev/hall.jpg", "--no-persons"], "--force");
    // the queue offers that form: the commands it prints for the hall work as printed
    let queue = t.ok(&["review", "--json"]).json();
    let hall = queue
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == "ev/hall.jpg" && i["kind"] == "unreviewed")
        .cloned()
        .unwrap_or_else(|| panic!("{queue}"));
    let mark = hall["settle"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .find(|c| c.contains("--no-persons"))
        .unwrap_or_else(|| panic!("{hall}"));
    let args: Vec<&str> = mark.split_whitespace().skip(1).collect();
    t.ok(&args);
    assert!(seen().contains("hall.jpg"));
}

#[test]
fn links_from_a_csv_file_are_checked_first_and_made_all_or_nothing() {
    let t = TestStore::new();
    t.write("in/a.jpg", b"photo a");
    t.write("in/b.jpg", b"photo b");
    t.ok(&[
        "import",
        "--collection",
        "y",
        t.path("in").to_str().unwrap(),
    ]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["person", "add", "Kees Jansen", "--ref", "L-17"]);
    let good = t.write(
        "links.csv",
        b"asset,person,face\ny/a.jpg,Anna,\ny/b.jpg,L-17\n",
    );
    let out = t.ok(&["link", "--csv", good.to_str().unwrap()]).stdout;
    assert!(out.contains("would link"), "{out}");
    assert!(out.contains("dry run"), "{out}");
    assert_eq!(
        asset_row(&t, "y/a.jpg")["persons"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "a dry run linked"
    );
    // one wrong row: nothing at all is linked, and the row is named
    let bad = t.write(
        "bad.csv",
        b"y/a.jpg,Anna\ny/b.jpg,Nobody\ny/nothing.jpg,Anna\ny/a.jpg,Anna,2\n",
    );
    let r = t.run(&["link", "--csv", bad.to_str().unwrap(), "--apply"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("line 2"), "{}", r.stdout);
    assert!(r.stdout.contains("line 3"), "{}", r.stdout);
    assert!(r.stdout.contains("line 4"), "{}", r.stdout);
    assert_eq!(
        asset_row(&t, "y/a.jpg")["persons"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    t.ok(&["link", "--csv", good.to_str().unwrap(), "--apply"]);
    assert_eq!(
        asset_row(&t, "y/b.jpg")["persons"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // not a CSV file, or too many columns
    let junk = t.write("junk.csv", b"a,b,c,d\n");
    t.fails(
        &["link", "--csv", junk.to_str().unwrap()],
        "expected asset,person",
    );
}

/// scikit-image's sample photos (public domain / CC0), fetched by
/// contrib/fetch-face-test-photos.sh (which .ci/run runs).
fn sample(name: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("CONSENTFS_TEST_PHOTOS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/local/share/consentfs-test/skimage".into());
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is missing: run contrib/fetch-face-test-photos.sh",
        p.display()
    );
    p
}

/// `convert SRC ARGS... OUT` with ImageMagick.
fn variant(src: &std::path::Path, args: &[&str], out: &std::path::Path) {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let ok = Command::new("convert")
        .arg(src)
        .args(args)
        .arg(out)
        .status()
        .expect("ImageMagick's convert");
    assert!(ok.success());
}

/// With the real detector: the astronaut's face is found on import, the photo stays hidden
/// until that face is linked, `faces show` draws it; resizes, crops and re-exports of her
/// photo imported later are suggested as made from it (and take her person when accepted),
/// a different photo is not.
#[test]
fn imported_photos_get_their_faces_and_their_lookalikes_found() {
    let t = TestStore::new();
    t.add_user("root");
    t.ok(&["user", "grant", "root", "--purpose", "website"]);
    t.ok(&["person", "add", "Eileen"]);
    t.ok(&["consent", "grant", "Eileen", "--purpose", "website"]);
    let original = t.path("shoot/astronaut.jpg");
    variant(&sample("astronaut.png"), &["-quality", "92"], &original);
    let out = t
        .ok(&[
            "import",
            "--collection",
            "nasa",
            t.path("shoot").to_str().unwrap(),
        ])
        .stdout;
    assert!(out.contains("faces: 1 detected on 1 photo(s)"), "{out}");
    let listed = t.ok(&["faces", "list", "nasa/astronaut.jpg"]).stdout;
    assert!(listed.contains("1 face(s)"), "{listed}");
    // Eileen linked as a person but not to her face: still one face accounted for
    t.ok(&["link", "nasa/astronaut.jpg", "Eileen", "--face", "1"]);
    let seen = || {
        t.ok(&["ls", "--user", "root", "--purpose", "website"])
            .stdout
    };
    assert!(seen().contains("astronaut.jpg"), "{}", seen());
    // the picture with its numbered box, private, never over an existing file
    let pic = t.path("faces.jpg");
    t.ok(&["faces", "show", "nasa/astronaut.jpg", pic.to_str().unwrap()]);
    let bytes = std::fs::read(&pic).unwrap();
    assert!(bytes.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&pic).unwrap().permissions().mode() & 0o777,
        0o600
    );
    t.fails(
        &["faces", "show", "nasa/astronaut.jpg", pic.to_str().unwrap()],
        "exists",
    );

    // variants of her photo, and a different photo
    let later = t.path("later");
    variant(&original, &["-resize", "50%"], &later.join("small.jpg"));
    variant(
        &original,
        &["-gravity", "center", "-crop", "90%x90%+0+0", "+repage"],
        &later.join("crop.jpg"),
    );
    variant(&original, &["-quality", "40"], &later.join("web.jpg"));
    variant(
        &sample("coffee.png"),
        &["-quality", "90"],
        &later.join("coffee.jpg"),
    );
    let out = t
        .ok(&[
            "import",
            "--collection",
            "nasa/later",
            later.to_str().unwrap(),
        ])
        .stdout;
    // the resize, the crop and the re-export, not the coffee
    assert_eq!(
        out.lines().filter(|l| l.starts_with("lookalike")).count(),
        3,
        "{out}"
    );
    let dups = t.ok(&["duplicates", "--json"]).json();
    let groups = dups.as_array().unwrap();
    assert_eq!(groups.len(), 1, "{dups}");
    let members: Vec<String> = groups[0]["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a[1].as_str().unwrap().to_string())
        .collect();
    assert_eq!(members.len(), 4, "{members:?}");
    assert!(!members.iter().any(|m| m.contains("coffee")), "{members:?}");
    // accepting the suggestions gives the variants her person (and so her consent)
    let done = t.ok(&["review", "accept", "--all", "--json"]).json();
    assert_eq!(done["derived"].as_array().unwrap().len(), 3, "{done}");
    let seen = seen();
    for v in ["small.jpg", "crop.jpg", "web.jpg"] {
        assert!(seen.contains(v), "{v} not shown: {seen}");
    }
    assert!(!seen.contains("coffee.jpg"));
}

/// A crop of a photo made outside the store and copied into the mount (so nothing in the
/// mount says where it came from) is looked at as an import is: the daemon, after the save,
/// finds its face and that it looks like the photo, and suggests `derive`; a different photo
/// copied in is not suggested.
#[test]
fn a_lookalike_saved_through_the_mount_is_suggested_as_derived() {
    use common::mount::{wait_for, Mount};
    use std::os::unix::process::CommandExt;
    let t = TestStore::new();
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
    t.ok(&["person", "add", "Eileen"]);
    t.ok(&["consent", "grant", "Eileen", "--purpose", "website"]);
    let original = t.path("shoot/astronaut.jpg");
    variant(&sample("astronaut.png"), &["-quality", "92"], &original);
    t.ok(&[
        "import",
        "--collection",
        "nasa",
        t.path("shoot").to_str().unwrap(),
    ]);
    t.ok(&["link", "nasa/astronaut.jpg", "Eileen", "--face", "1"]);
    let outside = t.path("outside");
    variant(
        &original,
        &["-gravity", "center", "-crop", "90%x90%+0+0", "+repage"],
        &outside.join("crop.jpg"),
    );
    variant(&sample("coffee.png"), &[], &outside.join("coffee.jpg"));
    let m = Mount::start(&t);
    let d = m.path("root/website/nasa");
    for f in ["crop.jpg", "coffee.jpg"] {
        let ok = Command::new("cp")
            .arg(outside.join(f))
            .arg(d.join(f))
            .process_group(0)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let suggested = || {
        t.ok(&["review", "--json"])
            .json()
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["kind"] == "suggestion")
            .map(|i| i["path"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let (found, _) = wait_for(std::time::Duration::from_secs(30), || {
        suggested() == ["nasa/crop.jpg"]
    });
    assert!(found, "{:?}\n{}", suggested(), m.log_text());
    let listed = t.ok(&["faces", "list", "nasa/crop.jpg"]).stdout;
    assert!(listed.contains("1 face(s)"), "{listed}");
    // accepted, the crop is a photo of Eileen: shown to everyone who sees hers
    t.ok(&["review", "accept", "--all"]);
    let seen = t
        .ok(&["ls", "--user", "root", "--purpose", "website"])
        .stdout;
    let state = |name: &str| {
        seen.lines()
            .find(|l| l.contains(name))
            .map(|l| l.split_whitespace().nth(2).unwrap_or("").to_string())
    };
    assert_eq!(
        state("crop.jpg").as_deref(),
        Some("visible"),
        "{seen}\n{}\n{}",
        t.run(&[
            "why",
            "nasa/crop.jpg",
            "--user",
            "root",
            "--purpose",
            "website"
        ])
        .stdout,
        t.ok(&["audit", "list"]).stdout
    );
    // the other one stays its maker's draft
    assert_eq!(state("coffee.jpg").as_deref(), Some("draft"), "{seen}");
}
