//! Tampering with objects on disk is detected and reported naming the asset, never returned as
//! wrong bytes (`cat` prints nothing but an error).

mod common;

use common::TestStore;
use std::path::PathBuf;

const CHUNK: usize = 65536 + 40;
const HEADER: usize = 24;

fn data(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) >> 11) as u8)
        .collect()
}

/// A store with two assets of three chunks each; returns their object files.
fn two_assets() -> (TestStore, PathBuf, PathBuf) {
    let t = TestStore::new();
    let a = t.write("a.raw", &data(1, 3 * 65536 + 100));
    let b = t.write("b.raw", &data(2, 3 * 65536 + 100));
    t.ok(&["import", a.to_str().unwrap(), b.to_str().unwrap()]);
    let (_store, cat) = t.open_catalog();
    let path = |asset: i64| {
        let v = consentfs::catalog::assets::version(cat.conn(), asset, None).unwrap();
        let hex = v.object.hex();
        t.objects_dir().join(&hex[..2]).join(&hex[2..])
    };
    let (pa, pb) = (path(1), path(2));
    (t, pa, pb)
}

fn assert_integrity_error(t: &TestStore, what: &str) {
    let r = t.run(&["cat", "1"]);
    assert_eq!(r.code, 2, "{what}: cat must fail");
    assert!(
        r.raw.is_empty(),
        "{what}: no bytes may be returned, got {}",
        r.raw.len()
    );
    assert!(
        r.stderr.contains("integrity error in asset 1 (a.raw)"),
        "{what}: the error must name the asset: {}",
        r.stderr
    );
}

#[test]
fn untouched_objects_read_back() {
    let (t, _, _) = two_assets();
    assert_eq!(t.ok(&["cat", "1"]).raw, data(1, 3 * 65536 + 100));
}

#[test]
fn flipped_byte_is_an_integrity_error() {
    let (t, a, _) = two_assets();
    let mut bytes = std::fs::read(&a).unwrap();
    bytes[HEADER + CHUNK + 500] ^= 0x40;
    std::fs::write(&a, bytes).unwrap();
    assert_integrity_error(&t, "flipped byte");
}

#[test]
fn swapped_chunks_are_an_integrity_error() {
    let (t, a, _) = two_assets();
    let mut bytes = std::fs::read(&a).unwrap();
    let first = bytes[HEADER..HEADER + CHUNK].to_vec();
    let second = bytes[HEADER + CHUNK..HEADER + 2 * CHUNK].to_vec();
    bytes[HEADER..HEADER + CHUNK].copy_from_slice(&second);
    bytes[HEADER + CHUNK..HEADER + 2 * CHUNK].copy_from_slice(&first);
    std::fs::write(&a, bytes).unwrap();
    assert_integrity_error(&t, "swapped chunks");
}

#[test]
fn truncated_object_is_an_integrity_error() {
    let (t, a, _) = two_assets();
    let bytes = std::fs::read(&a).unwrap();
    std::fs::write(&a, &bytes[..HEADER + 2 * CHUNK]).unwrap();
    assert_integrity_error(&t, "truncated at a chunk boundary");
    std::fs::write(&a, &bytes[..bytes.len() - 1]).unwrap();
    assert_integrity_error(&t, "truncated by one byte");
}

#[test]
fn chunk_moved_from_another_object_is_an_integrity_error() {
    let (t, a, b) = two_assets();
    let mut bytes = std::fs::read(&a).unwrap();
    let other = std::fs::read(&b).unwrap();
    bytes[HEADER + CHUNK..HEADER + 2 * CHUNK]
        .copy_from_slice(&other[HEADER + CHUNK..HEADER + 2 * CHUNK]);
    std::fs::write(&a, bytes).unwrap();
    assert_integrity_error(&t, "chunk from another object");
}

#[test]
fn object_copied_over_another_is_an_integrity_error() {
    let (t, a, b) = two_assets();
    std::fs::copy(&b, &a).unwrap();
    assert_integrity_error(&t, "object copied over another");
    // even with the header patched to carry the right id
    let (t, a, b) = two_assets();
    let mut other = std::fs::read(&b).unwrap();
    let own = std::fs::read(&a).unwrap();
    other[..HEADER].copy_from_slice(&own[..HEADER]);
    std::fs::write(&a, other).unwrap();
    assert_integrity_error(&t, "object copied over another with patched header");
}

#[test]
fn missing_object_is_reported() {
    let (t, a, _) = two_assets();
    std::fs::remove_file(&a).unwrap();
    let r = t.run(&["cat", "1"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("missing"), "{}", r.stderr);
}
