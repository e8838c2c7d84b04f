//! Raw camera files end to end (issue 16 items 2 and 3): a photographer's DNG is imported, its
//! faces are found on the JPEG preview the camera embedded, and the photo is not reviewed until
//! each face is accounted for. The DNGs are written by tests/fixtures/make_dng.py (no camera
//! raw file can be fetched offline) with scikit-image's astronaut photo as their preview. The
//! model and the photo are installed by .ci/run (contrib/install-face-model.sh,
//! contrib/fetch-face-test-photos.sh); a missing one FAILS this test with the command to run.

mod common;

use common::TestStore;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sample(name: &str) -> PathBuf {
    let dir = std::env::var_os("CONSENTFS_TEST_PHOTOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/local/share/consentfs-test/skimage".into());
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is missing: run contrib/fetch-face-test-photos.sh",
        p.display()
    );
    p
}

/// The astronaut as a JPEG at `out`, with ImageMagick's further `args` (before the output).
fn astronaut_jpeg(out: &Path, args: &[&str]) {
    let ok = Command::new("convert")
        .arg(sample("astronaut.png"))
        .args(args)
        .args(["-quality", "90"])
        .arg(out)
        .status()
        .expect("ImageMagick's convert");
    assert!(ok.success());
}

/// A DNG at `out` whose embedded preview is the JPEG `preview`, with the script's `args`.
fn make_dng(out: &Path, preview: &Path, args: &[&str]) {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let o = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/make_dng.py"
        ))
        .arg(out)
        .arg("--preview")
        .arg(preview)
        .args(args)
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "make_dng.py: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The centre of each face `faces list --json` gives for `asset`.
fn face_centres(t: &TestStore, asset: &str) -> Vec<(f64, f64)> {
    let shown = t.ok(&["faces", "list", asset, "--json"]).json();
    shown["scan"]["faces"]
        .as_array()
        .unwrap_or_else(|| panic!("no scan: {shown}"))
        .iter()
        .map(|f| {
            let g = |k: &str| f[k].as_f64().unwrap();
            (g("x") + g("w") / 2.0, g("y") + g("h") / 2.0)
        })
        .collect()
}

/// IMG_0042.dng imported from a shoot: one face found on its preview, where the astronaut's
/// face is; hidden from a purpose her consent covers until that face is linked; `faces show`
/// draws the box on the preview. IMG_0043.dng, shot with the camera on its side (Orientation 6,
/// preview stored sideways), has its face at the same upright place.
#[test]
fn a_raw_files_faces_are_found_on_import_and_must_be_linked() {
    let t = TestStore::new();
    t.add_user("root");
    t.ok(&["user", "grant", "root", "--purpose", "website"]);
    t.ok(&["person", "add", "Eileen"]);
    t.ok(&["consent", "grant", "Eileen", "--purpose", "website"]);
    let upright = t.path("upright.jpg");
    astronaut_jpeg(&upright, &[]);
    let side = t.path("side.jpg");
    astronaut_jpeg(&side, &["-rotate", "-90"]);
    let shoot = t.path("shoot");
    make_dng(&shoot.join("IMG_0042.dng"), &upright, &[]);
    make_dng(
        &shoot.join("IMG_0043.dng"),
        &side,
        &["--orientation", "6", "--raw", "1024x1536"],
    );
    let out = t
        .ok(&["import", "--collection", "nasa", shoot.to_str().unwrap()])
        .stdout;
    assert!(out.contains("faces: 2 detected on 2 photo(s)"), "{out}");

    let listed = t.ok(&["faces", "list", "nasa/IMG_0042.dng"]).stdout;
    assert!(listed.contains("1 face(s)"), "{listed}");
    assert!(listed.contains("not linked"), "{listed}");
    // Eileen Collins' face on astronaut.png: centre about (0.43, 0.2)
    let a = face_centres(&t, "nasa/IMG_0042.dng");
    assert_eq!(a.len(), 1);
    let (x, y) = a[0];
    assert!(
        (0.36..=0.50).contains(&x) && (0.12..=0.30).contains(&y),
        "{a:?}"
    );
    let b = face_centres(&t, "nasa/IMG_0043.dng");
    assert_eq!(b.len(), 1);
    assert!(
        (b[0].0 - x).abs() < 0.03 && (b[0].1 - y).abs() < 0.03,
        "sideways raw: {b:?} vs {a:?}"
    );

    // Until Eileen is linked to her face the photo is not reviewed, the purpose shows neither
    // raw file, the queue asks for the face, and "no persons" is refused without --force.
    let seen = || {
        t.ok(&["ls", "--user", "root", "--purpose", "website"])
            .stdout
    };
    assert!(!seen().contains("IMG_0042.dng"), "{}", seen());
    let why = t
        .run(&[
            "why",
            "nasa/IMG_0042.dng",
            "--user",
            "root",
            "--purpose",
            "website",
        ])
        .stdout;
    assert!(
        why.contains("HIDDEN") && why.contains("not reviewed"),
        "{why}"
    );
    let queue = t.ok(&["review", "--json"]).json();
    let items = queue.as_array().unwrap();
    assert!(
        items.iter().any(|i| i["path"] == "nasa/IMG_0042.dng"
            && i["what"].as_str().unwrap().contains("1 face(s) detected")),
        "{queue}"
    );
    // the sideways raw looks like the upright one once turned (its hash is of the upright
    // preview too): one is suggested as a variant of the other (which one depends on which
    // detection thread finished first)
    assert_eq!(
        items
            .iter()
            .filter(|i| i["kind"] == "suggestion"
                && i["what"].as_str().unwrap().contains("variant"))
            .count(),
        1,
        "{queue}"
    );
    t.fails(&["mark", "nasa/IMG_0042.dng", "--no-persons"], "--force");
    t.ok(&["link", "nasa/IMG_0042.dng", "Eileen", "--face", "1"]);
    let now = seen();
    assert!(now.contains("IMG_0042.dng"), "{now}");
    assert!(!now.contains("IMG_0043.dng"), "{now}");
    let listed = t.ok(&["faces", "list", "nasa/IMG_0042.dng"]).stdout;
    assert!(!listed.contains("not linked"), "{listed}");

    // the reviewer's picture is drawn on the preview (512 x 512, not the 1024 x 1536 raw)
    let pic = t.path("faces.jpg");
    t.ok(&["faces", "show", "nasa/IMG_0043.dng", pic.to_str().unwrap()]);
    let mut dec =
        jpeg_decoder::Decoder::new(std::io::BufReader::new(std::fs::File::open(&pic).unwrap()));
    dec.read_info().unwrap();
    let info = dec.info().unwrap();
    assert_eq!((info.width, info.height), (512, 512));

    // a rescan of the raw file gives the same face
    let again = t.ok(&["faces", "scan", "nasa/IMG_0042.dng"]).stdout;
    assert!(again.contains("scanned 1 photo(s): 1 face(s)"), "{again}");
}
