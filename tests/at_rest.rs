//! At-rest secrecy: after importing photos whose bytes, names and EXIF carry known markers and
//! recording persons with known names, no file anywhere under the store contains any of them,
//! raw or as UTF-16. With SQLCipher or object encryption switched off this test fails: the
//! markers would be in catalog.db or in the objects.

mod common;

use common::{collect_files, TestStore};
use std::process::Command;

const MARKERS: &[&str] = &[
    "PIXELMARKER7731",     // inside the photo bytes
    "ExifArtistQ9Z2",      // EXIF Artist tag
    "filenameMarkerK4",    // file name
    "collectionMarkerW8",  // collection path
    "Wilhelmina Zeldzaam", // person name
    "ExtRefXY123",         // external reference
    "evidenceFormV5",      // evidence file name and content
];

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn utf16(s: &str, big_endian: bool) -> Vec<u8> {
    s.encode_utf16()
        .flat_map(|u| {
            if big_endian {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            }
        })
        .collect()
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-ver").output().is_ok()
        || Command::new(tool).arg("-version").output().is_ok()
}

#[test]
fn nothing_readable_under_the_store() {
    let t = TestStore::new();
    let src = t.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let photo = src.join("filenameMarkerK4.jpg");
    // A real JPEG with the marker in its pixels' neighbourhood (a comment) and in EXIF.
    assert!(
        have("convert") && have("exiftool"),
        "ImageMagick and exiftool are needed (see .ci/run)"
    );
    let st = Command::new("convert")
        .args([
            "-size",
            "64x64",
            "xc:orange",
            "-set",
            "comment",
            "PIXELMARKER7731",
        ])
        .arg(&photo)
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("exiftool")
        .args(["-q", "-overwrite_original", "-Artist=ExifArtistQ9Z2"])
        .arg(&photo)
        .status()
        .unwrap();
    assert!(st.success());
    // and a raw file that is nothing but markers, for good measure
    let mut raw = Vec::new();
    for _ in 0..1000 {
        raw.extend_from_slice(b"PIXELMARKER7731 ");
    }
    std::fs::write(src.join("raw.bin"), raw).unwrap();
    let plain = std::fs::read(&photo).unwrap();
    assert!(
        contains(&plain, b"ExifArtistQ9Z2") && contains(&plain, b"PIXELMARKER7731"),
        "markers are in the input"
    );

    t.ok(&[
        "import",
        "--collection",
        "collectionMarkerW8",
        src.to_str().unwrap(),
    ]);
    t.ok(&[
        "person",
        "add",
        "Wilhelmina Zeldzaam",
        "--born",
        "1980-01-01",
        "--ref",
        "ExtRefXY123",
    ]);
    t.ok(&[
        "link",
        "collectionMarkerW8/filenameMarkerK4.jpg",
        "Wilhelmina Zeldzaam",
    ]);
    let form = t.write("evidenceFormV5.txt", b"signed: evidenceFormV5");
    t.ok(&[
        "consent",
        "grant",
        "Wilhelmina Zeldzaam",
        "--purpose",
        "website",
        "--evidence",
        form.to_str().unwrap(),
    ]);
    t.add_user("designer");
    t.ok(&[
        "user",
        "grant",
        "designer",
        "--purpose",
        "website",
        "--collection",
        "collectionMarkerW8",
    ]);
    // the data is all there and readable with the key...
    assert_eq!(
        t.ok(&["cat", "collectionMarkerW8/filenameMarkerK4.jpg"])
            .raw,
        plain
    );
    assert!(t
        .ok(&["person", "list"])
        .stdout
        .contains("Wilhelmina Zeldzaam"));

    // ...and nowhere readable without it
    let mut files = Vec::new();
    collect_files(&t.store, &mut files);
    assert!(files.iter().any(|f| f.ends_with("catalog.db")));
    if t.is_team() {
        // a team library: its shared objects, and everything PostgreSQL holds of it
        collect_files(&t.objects_dir(), &mut files);
        let url = std::fs::read_to_string(t.store.join("team.url")).unwrap();
        let dump = t.path("pg_dump.sql");
        std::fs::write(&dump, common::pg::dump(url.trim())).unwrap();
        let text = std::fs::read_to_string(&dump).unwrap();
        assert!(
            text.contains("consentfs_changes"),
            "the dump holds the library's log"
        );
        files.push(dump);
    }
    assert!(files.len() >= 4, "catalog, keyring and objects: {files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for m in MARKERS {
            for (form, needle) in [
                ("raw", m.as_bytes().to_vec()),
                ("UTF-16LE", utf16(m, false)),
                ("UTF-16BE", utf16(m, true)),
            ] {
                assert!(
                    !contains(&bytes, &needle),
                    "{} contains '{m}' ({form})",
                    f.display()
                );
            }
        }
        // SQLite's plain-text file header would mean the catalog is not encrypted
        assert!(
            !contains(&bytes, b"SQLite format 3"),
            "{} is an unencrypted SQLite file",
            f.display()
        );
    }
}
