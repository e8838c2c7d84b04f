//! Sparse files through the mount (issue 13, item 6): a huge truncate or a write far past the end
//! makes a hole that costs nothing on disk and reads as zeros, and sizes past the store's
//! maximum fail with EFBIG instead of writing zeros until the disk is full.

mod common;

use common::mount::Mount;
use common::TestStore;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::process::Command;
use std::time::{Duration, Instant};

/// An empty store in which root may write in `website`.
fn store_for_root() -> TestStore {
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
    t
}

/// Bytes the object files of the store really occupy on disk (st_blocks), and their count.
fn object_disk_usage(t: &TestStore) -> (u64, usize) {
    let mut files = Vec::new();
    common::collect_files(&t.objects_dir(), &mut files);
    let used = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.blocks() * 512).unwrap_or(0))
        .sum();
    (used, files.len())
}

/// Run a command with a deadline: a tool that hangs must fail the test, not the suite.
fn run_within(limit: Duration, cmd: &mut Command) -> (std::process::Output, Duration) {
    let start = Instant::now();
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start command");
    loop {
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} still running after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn truncate_to_8g_is_quick_costs_a_few_kib_and_reads_as_zeros() {
    let t = store_for_root();
    let (before, _) = object_disk_usage(&t);
    let m = Mount::start(&t);
    let dir = m.path("root/website/big");
    std::fs::create_dir(&dir).unwrap();
    let x = dir.join("x");
    let (out, took) = run_within(
        Duration::from_secs(60),
        Command::new("truncate").args(["-s", "8G"]).arg(&x),
    );
    assert!(
        out.status.success(),
        "truncate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took < Duration::from_secs(5),
        "truncate -s 8G took {took:?}"
    );
    assert_eq!(std::fs::metadata(&x).unwrap().len(), 8 << 30);
    let (used, _) = object_disk_usage(&t);
    assert!(
        used - before < 256 << 10,
        "an 8 GiB hole must cost a few KiB on disk, the objects use {} bytes more",
        used - before
    );
    // zeros at the start, in the middle and at the very end
    let f = std::fs::File::open(&x).unwrap();
    for at in [0u64, 4 << 30, (8 << 30) - 4096] {
        let mut buf = vec![1u8; 4096];
        f.read_exact_at(&mut buf, at).unwrap();
        assert!(buf.iter().all(|b| *b == 0), "not zeros at {at}");
    }
    let mut past = [1u8; 10];
    assert_eq!(f.read_at(&mut past, 8 << 30).unwrap(), 0, "EOF at 8 GiB");
    drop(f);

    // a write into the hole and one at the end: a new version, as cheap
    let start = Instant::now();
    let f = std::fs::OpenOptions::new().write(true).open(&x).unwrap();
    f.write_all_at(b"middle", 3 << 30).unwrap();
    f.write_all_at(b"end", (8 << 30) - 3).unwrap();
    drop(f);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "writing into an 8 GiB sparse file took {:?}",
        start.elapsed()
    );
    let (used, _) = object_disk_usage(&t);
    assert!(
        used - before < 1 << 20,
        "two versions of an 8 GiB sparse file use {} bytes",
        used - before
    );
    let f = std::fs::File::open(&x).unwrap();
    let mut buf = vec![1u8; 16];
    f.read_exact_at(&mut buf, (3 << 30) - 5).unwrap();
    assert_eq!(&buf, b"\0\0\0\0\0middle\0\0\0\0\0");
    f.read_exact_at(&mut buf, (8 << 30) - 16).unwrap();
    assert_eq!(&buf[13..], b"end");
    assert!(buf[..13].iter().all(|b| *b == 0));
    assert_eq!(f.metadata().unwrap().len(), 8 << 30);
}

#[test]
fn a_small_sparse_file_reads_back_through_the_mount_and_cat() {
    let t = store_for_root();
    let m = Mount::start(&t);
    let dir = m.path("root/website/sp");
    std::fs::create_dir(&dir).unwrap();
    let p = dir.join("s.bin");
    // "abc", a hole of several chunks, "xyz", then a hole up to a partial last chunk
    let f = std::fs::File::create(&p).unwrap();
    f.write_all_at(b"abc", 0).unwrap();
    f.write_all_at(b"xyz", 300_000).unwrap();
    f.set_len(500_000).unwrap();
    drop(f);
    let mut want = b"abc".to_vec();
    want.resize(300_000, 0);
    want.extend_from_slice(b"xyz");
    want.resize(500_000, 0);
    assert_eq!(std::fs::read(&p).unwrap(), want);
    assert_eq!(t.ok(&["cat", "sp/s.bin"]).raw, want);
    // two chunks with data (and the map) are stored, not eight
    let (used, _) = object_disk_usage(&t);
    assert!(used < 300_000, "objects use {used} bytes");
}

#[test]
fn a_size_past_the_maximum_is_efbig_and_writes_nothing() {
    let t = store_for_root();
    let m = Mount::start(&t);
    let dir = m.path("root/website/huge");
    std::fs::create_dir(&dir).unwrap();
    let x = dir.join("x");
    std::fs::write(&x, b"keep").unwrap();
    let (before, _) = object_disk_usage(&t);
    let (out, _) = run_within(
        Duration::from_secs(30),
        Command::new("truncate")
            .args(["-s", "999999999999999"])
            .arg(&x),
    );
    assert!(
        !out.status.success(),
        "truncate to 999999999999999 bytes must fail"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("File too large"), "truncate says: {err}");
    // through an open file too, by ftruncate and by a write past the maximum
    let f = std::fs::OpenOptions::new().write(true).open(&x).unwrap();
    let e = f.set_len(999_999_999_999_999).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{e}");
    let e = f
        .write_all_at(b"x", consentfs::store::MAX_FILE_SIZE)
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{e}");
    drop(f);
    assert_eq!(std::fs::read(&x).unwrap(), b"keep");
    let (after, _) = object_disk_usage(&t);
    assert!(after - before < 1 << 20, "{} bytes written", after - before);
    // the largest size allowed is a hole like any other
    let (out, _) = run_within(
        Duration::from_secs(60),
        Command::new("truncate")
            .arg(format!("-s{}", consentfs::store::MAX_FILE_SIZE))
            .arg(&x),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::metadata(&x).unwrap().len(),
        consentfs::store::MAX_FILE_SIZE
    );
}
