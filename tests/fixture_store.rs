//! A store written by consentfs before its object cipher moved from RustCrypto to OpenSSL
//! (issue 14, item 1) must still open, read byte-exact and verify: the format did not change,
//! only the implementation, and this is the proof that every existing object still opens.
//!
//! `tests/fixtures/store-before-openssl.tar.gz` was made with the build of commit dc6a2ea
//! (the last one sealing with RustCrypto's `XChaCha20Poly1305`):
//!
//! ```text
//! consentfs init                                   # key file `key`, anchor `anchor.json`
//! consentfs import --collection shoot src/shoot    # a.jpg, big.bin, two.bin, empty.jpg (version 1)
//! consentfs user add root; consentfs user grant root --purpose website --access write
//! consentfs mark --no-persons shoot/a.jpg shoot/big.bin shoot/two.bin shoot/empty.jpg
//! consentfs mount mnt    # then, through the mount (version 2, sparse):
//!   shoot/sparse.bin: "head of a sparse file\n", a hole, "tail after a hole\n" at 300,000
//!   shoot/edited.bin: 70,000 bytes (i * 13 + 5) % 256
//! ```
//!
//! The contents are generated again below from the same formulas, so the test says what the
//! bytes must be rather than trusting a second copy.

mod common;

use common::mount::Mount;
use common::TestStore;
use std::process::Command;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/store-before-openssl.tar.gz"
);

/// The fixture unpacked into a fresh folder (modes and empty folders come from the archive).
fn fixture() -> TestStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new("tar")
        .args(["-xzf", FIXTURE, "-C"])
        .arg(dir.path())
        .output()
        .expect("run tar");
    assert!(
        out.status.success(),
        "cannot unpack the fixture: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = dir.path().join("store");
    let key = dir.path().join("key");
    TestStore { dir, store, key }
}

/// (asset id, path in the collection, content) of every asset in the fixture.
fn expected() -> Vec<(u32, &'static str, Vec<u8>)> {
    let mut sparse = b"head of a sparse file\n".to_vec();
    sparse.resize(300_000, 0);
    sparse.extend_from_slice(b"tail after a hole\n");
    vec![
        (1, "a.jpg", b"photo of anna\n".to_vec()),
        (
            2,
            "big.bin",
            (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect(),
        ),
        (3, "empty.jpg", Vec::new()),
        (
            4,
            "two.bin",
            (0..131_072u32).map(|i| ((i * 7 + 3) % 256) as u8).collect(),
        ),
        (5, "sparse.bin", sparse),
        (
            6,
            "edited.bin",
            (0..70_000u32).map(|i| ((i * 13 + 5) % 256) as u8).collect(),
        ),
    ]
}

#[test]
fn store_sealed_by_the_previous_cipher_opens_reads_and_verifies() {
    let t = fixture();
    // both object formats are in the fixture, so both readers are exercised
    let mut versions = Vec::new();
    let mut files = Vec::new();
    common::collect_files(&t.store.join("objects"), &mut files);
    for f in &files {
        let head = std::fs::read(f).unwrap();
        versions.push(u16::from_be_bytes([head[4], head[5]]));
    }
    versions.sort();
    assert_eq!(versions, [1, 1, 1, 1, 2, 2], "objects in the fixture");

    for (id, name, want) in expected() {
        let r = t.ok(&["cat", &id.to_string()]);
        assert!(
            r.raw == want,
            "cat {id} ({name}): {} bytes, want {} bytes equal to the original",
            r.raw.len(),
            want.len()
        );
    }
    let r = t.ok(&["audit", "verify"]);
    assert!(r.stdout.contains("audit log intact"), "{}", r.stdout);

    // the mount's read path (chunk by chunk into the reply buffer) on the same objects
    let m = Mount::start(&t);
    for (id, name, want) in expected() {
        let got = std::fs::read(m.path(&format!("root/website/shoot/{name}")))
            .unwrap_or_else(|e| panic!("read {name} (asset {id}) through the mount: {e}"));
        assert!(got == want, "{name} through the mount differs");
    }
}

#[test]
fn a_flipped_bit_in_a_fixture_object_is_still_caught() {
    let t = fixture();
    let mut files = Vec::new();
    common::collect_files(&t.store.join("objects"), &mut files);
    // big.bin's object (dense, four chunks, 200,184 bytes); flip one ciphertext bit in chunk 2
    let big = files
        .iter()
        .find(|f| std::fs::metadata(f).unwrap().len() == 200_184)
        .expect("big.bin's object");
    let mut bytes = std::fs::read(big).unwrap();
    bytes[24 + 2 * 65_576 + 24 + 1000] ^= 0x10;
    std::fs::write(big, &bytes).unwrap();
    let r = t.run(&["cat", "2"]);
    assert_ne!(r.code, 0, "a tampered object must not decrypt");
    assert!(r.raw.is_empty(), "cat wrote bytes of a tampered object");
    assert!(
        r.stderr.contains("chunk 2 failed authentication"),
        "{}",
        r.stderr
    );
}
