//! A store whose objects are in S3-compatible object storage (`init --objects s3://…`),
//! against a real server (SeaweedFS on loopback, `contrib/s3-server.sh`).

mod common;

use common::mount::{wait_for, Mount};
use common::s3::{store_in_bucket, S3Server};
use common::TestStore;
use std::time::{Duration, Instant};

/// Anna's consented photo `shoot/a.jpg` (with a marker inside), a photo without persons, and
/// root allowed to write on the website view.
fn photos(t: &TestStore, anna: &[u8]) {
    t.write("shoot/a.jpg", anna);
    t.write("shoot/hall.jpg", &vec![5u8; 2_500_000]);
    t.ok(&["import", t.path("shoot").to_str().unwrap()]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["link", "a.jpg", "Anna"]);
    t.ok(&["mark", "hall.jpg", "--no-persons"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
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
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Photos go to the bucket, encrypted; the store's folder keeps none; they read back through
/// `cat` and the mount; a save through the mount is a new object in the bucket; the scrub
/// verifies them there; erasing Anna deletes her photo's objects from the bucket and from the
/// cache.
#[test]
fn photos_live_encrypted_in_the_bucket_and_go_with_an_erasure() {
    let s3 = S3Server::start();
    let t = store_in_bucket(&s3, "team/lib");
    let marker = b"MARKER-ANNA-9f3c1e";
    let mut anna = vec![1u8; 1_500_000];
    anna[700_000..700_000 + marker.len()].copy_from_slice(marker);
    photos(&t, &anna);

    let status = t.ok(&["status"]).stdout;
    assert!(status.contains("s3://photos/team/lib"), "{status}");
    let keys = s3.keys("team/lib/");
    assert_eq!(keys.len(), 2, "{keys:?}");
    for k in &keys {
        let bytes = s3.get(k);
        assert!(bytes.len() > 1000);
        assert!(
            !contains(&bytes, marker),
            "{k} holds the photo in the clear"
        );
    }
    let mut local = Vec::new();
    common::collect_files(&t.store.join("objects"), &mut local);
    assert!(
        local.is_empty(),
        "objects left in the store folder: {local:?}"
    );

    assert_eq!(t.ok(&["cat", "a.jpg"]).raw, anna);
    {
        let m = Mount::start(&t);
        assert_eq!(std::fs::read(m.path("root/website/a.jpg")).unwrap(), anna);
        // a save over the photo through the mount: a new version, a new object in the bucket
        let mut edited = anna.clone();
        edited[..4].copy_from_slice(b"EDIT");
        std::fs::write(m.path("root/website/a.jpg"), &edited).unwrap();
        assert_eq!(std::fs::read(m.path("root/website/a.jpg")).unwrap(), edited);
        // a new file through the mount, by this process that read Anna's photo: derived from
        // it, so it goes with her erasure too
        std::fs::write(m.path("root/website/new.jpg"), b"a new file from an editor").unwrap();
    }
    let after = s3.keys("team/lib/");
    assert!(after.len() >= 4, "no new objects in the bucket: {after:?}");
    let check = t.ok(&["check"]);
    assert!(
        check.stdout.contains("intact"),
        "{}{}",
        check.stdout,
        check.stderr
    );

    t.ok(&["person", "erase", "Anna", "--yes"]);
    let left = s3.keys("team/lib/");
    // what is left: the photo without persons and the empty object new files share until
    // their first save (a header and a tag, nothing of anyone); none of Anna's versions, nor
    // the file made from her photo
    let (photos, empty): (Vec<_>, Vec<_>) = left.iter().partition(|k| s3.get(k).len() > 1000);
    assert_eq!(photos.len(), 1, "{left:?}");
    assert_eq!(empty.len(), 1, "{left:?}");
    for k in &empty {
        assert!(s3.get(k).len() < 200, "{k}");
    }
    assert_eq!(t.ok(&["cat", "hall.jpg"]).raw, vec![5u8; 2_500_000]);
    let mut cached = Vec::new();
    common::collect_files(&t.store.join("cache"), &mut cached);
    for k in &left {
        assert!(!contains(&s3.get(k), marker));
    }
    let anna_ids: Vec<String> = after
        .iter()
        .filter(|k| !left.contains(k))
        .map(|k| k.trim_start_matches("team/lib/").replace('/', ""))
        .collect();
    for c in &cached {
        let name = c.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !anna_ids.iter().any(|id| name.starts_with(id.as_str())),
            "a cached block of an erased photo stayed: {name}"
        );
    }
    assert!(t.ok(&["check"]).stdout.contains("intact"));
}

/// With the bucket down, reading a photo that is not cached fails with EIO within seconds
/// (retries are bounded), the log says what failed, and a withdrawal still hides the photo
/// (visibility does not depend on the bucket). Once the bucket is back, reads work again.
#[test]
fn an_unreachable_bucket_is_an_error_never_a_stale_view() {
    let s3 = S3Server::start();
    let t = store_in_bucket(&s3, "lib");
    let anna = vec![3u8; 3_000_000];
    photos(&t, &anna);
    let m = Mount::start(&t);
    let hall = m.path("root/website/hall.jpg");
    let a = m.path("root/website/a.jpg");
    // both are listed (the catalog is local); nothing has been read yet, so nothing is cached
    assert!(hall.exists() && a.exists());
    s3.stop();
    let started = Instant::now();
    let e = std::fs::read(&hall).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the read hung for {:?}",
        started.elapsed()
    );
    let log = m.log_text();
    assert!(
        (log.contains("cannot open object") || log.contains("cannot read object"))
            && log.contains("s3://photos/lib")
            && log.contains("Connection refused"),
        "{log}"
    );
    let r = t.run(&["cat", "hall.jpg"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("s3://photos/lib"), "{}", r.stderr);

    t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    let (gone, _) = wait_for(Duration::from_secs(5), || !a.exists());
    assert!(
        gone,
        "a withdrawn photo stayed visible while the bucket was down"
    );

    s3.restart();
    let (back, _) = wait_for(Duration::from_secs(30), || std::fs::read(&hall).is_ok());
    assert!(back, "reads did not come back with the bucket");
    assert_eq!(std::fs::read(&hall).unwrap(), vec![5u8; 2_500_000]);
}

/// A store takes a bucket prefix (or folder) of its own, and later commands cannot point it
/// elsewhere by mistake.
#[test]
fn objects_locations_are_checked() {
    let s3 = S3Server::start();
    let t = store_in_bucket(&s3, "shared");
    t.write("in/x.jpg", b"x");
    t.ok(&["import", t.path("in").to_str().unwrap()]);

    // a second store on the same prefix would take the first one's objects for orphans
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join(common::s3::ENV_FILE), &s3.env).unwrap();
    let u = TestStore {
        store: other.path().join("store"),
        key: other.path().join("key"),
        dir: other,
    };
    let r = u.run(&["--objects", "s3://photos/shared", "init"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("already holds"), "{}", r.stderr);
    assert!(
        !u.store.join("keyring").exists(),
        "a refused init left a store"
    );

    let r = t.run(&["--objects", "s3://photos/elsewhere", "status"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("does not match"), "{}", r.stderr);
    t.ok(&["--objects", "s3://photos/shared", "status"]);
    for bad in ["s3://X", "ftp://host/x", "file://relative"] {
        let r = u.run(&["--objects", bad, "init"]);
        assert_eq!(r.code, 2, "{bad}");
        assert!(r.stderr.contains("--objects"), "{}", r.stderr);
    }
}

/// A shared folder (`file:///…`) holds the objects, private and fsynced like the store's own.
#[test]
fn objects_in_a_shared_folder() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestStore {
        store: dir.path().join("store"),
        key: dir.path().join("key"),
        dir,
    };
    let shared = t.path("nas/photos");
    t.ok(&["--objects", &format!("file://{}", shared.display()), "init"]);
    t.write("in/x.jpg", b"photo in a shared folder");
    t.ok(&["import", t.path("in").to_str().unwrap()]);
    let mut files = Vec::new();
    common::collect_files(&shared, &mut files);
    assert_eq!(files.len(), 1);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(t.ok(&["cat", "x.jpg"]).raw, b"photo in a shared folder");
    assert!(t.ok(&["check"]).stdout.contains("intact"));
}

/// `backup` of a store whose objects are in a bucket copies them out of it: the backup is a
/// store of its own (objects in its folder, still encrypted) that opens, verifies and reads
/// without the bucket.
#[test]
fn a_backup_brings_the_objects_home() {
    let s3 = S3Server::start();
    let t = store_in_bucket(&s3, "lib");
    let anna = b"MARKER-BACKUP-77 photo of anna".repeat(50_000);
    photos(&t, &anna);
    let dest = t.path("backup");
    let r = t.ok(&["backup", dest.to_str().unwrap(), "--json"]).json();
    assert_eq!(r["objects"], 2, "{r:#}");
    assert!(!dest.join("objects.url").exists());
    let mut files = Vec::new();
    common::collect_files(&dest.join("objects"), &mut files);
    assert_eq!(files.len(), 2);
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(!contains(&bytes, b"MARKER-BACKUP-77"), "{}", f.display());
    }
    s3.stop();
    // the backup in place of the store: no bucket needed any more
    common::restore_backup(&t, &dest);
    let r = t.run(&["--accept-rollback", "check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("intact"));
    assert_eq!(t.ok(&["--accept-rollback", "cat", "a.jpg"]).raw, anna);
    assert!(t.ok(&["status"]).stdout.contains(&format!(
        "objects      {}",
        t.store.join("objects").display()
    )));
}

/// An object in the bucket that no catalog row names (an upload whose save was killed before
/// its record) is removed when the store is next mounted; a key that is not an object's name is
/// left alone, and so is every recorded object.
#[test]
fn the_mount_removes_orphans_from_the_bucket() {
    let s3 = S3Server::start();
    let t = store_in_bucket(&s3, "lib");
    photos(&t, b"anna");
    let recorded = s3.keys("lib/");
    assert_eq!(recorded.len(), 2);
    let put = |key: &str| {
        let st = std::process::Command::new("curl")
            .args([
                "-s",
                "-f",
                "-X",
                "PUT",
                "--data-binary",
                "orphan",
                &format!("http://127.0.0.1:{}/photos/{key}", s3.port),
            ])
            .status()
            .unwrap();
        assert!(st.success());
    };
    put("lib/ab/0123456789abcdef0123456789abcd");
    put("lib/notes.txt");
    assert_eq!(s3.keys("lib/").len(), 4);
    let m = Mount::start(&t);
    assert!(
        m.log_text().contains("removed 1 orphaned object"),
        "{}",
        m.log_text()
    );
    let mut left = s3.keys("lib/");
    left.sort();
    let mut want = recorded.clone();
    want.push("lib/notes.txt".into());
    want.sort();
    assert_eq!(left, want);
    assert_eq!(
        std::fs::read(m.path("root/website/a.jpg")).unwrap(),
        b"anna"
    );
}

/// A file larger than one upload request goes up in parts, and comes back byte-exact through
/// `cat` (blocks read ahead) and through the mount with an empty block cache.
#[test]
fn a_large_photo_goes_up_in_parts_and_comes_back_exact() {
    let s3 = S3Server::start();
    let t = store_in_bucket(&s3, "lib");
    let mut big = vec![0u8; 40 << 20];
    let mut x = 0x9e3779b97f4a7c15u64;
    for b in big.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    photos(&t, &big);
    assert_eq!(t.ok(&["cat", "a.jpg"]).raw, big);
    std::fs::remove_dir_all(t.store.join("cache")).unwrap();
    let m = Mount::start_with(&t, &[("RUST_LOG", "info,consentfs::store=debug")]);
    assert_eq!(std::fs::read(m.path("root/website/a.jpg")).unwrap(), big);
    // the kernel reads ahead on several threads at once: still, no block is asked of the
    // bucket twice (each request costs, on a real bucket in money too)
    let mut fetched = Vec::new();
    for line in m.log_text().lines() {
        if let Some(range) = line.split("fetching blocks ").nth(1) {
            let (a, b) = range.trim().split_once("..").unwrap();
            fetched.extend(a.parse::<u64>().unwrap()..b.parse::<u64>().unwrap());
        }
    }
    let n = fetched.len();
    fetched.sort_unstable();
    fetched.dedup();
    assert_eq!(n, fetched.len(), "blocks fetched more than once");
    // 40 MiB and the chunks' overhead make 41 blocks; block 0 came with the open
    assert_eq!(fetched, (1..41).collect::<Vec<u64>>());
}

/// An import killed at moments while it uploads leaves no object in the bucket that the catalog
/// does not name once the next commands ran (they reap the dead command's journal), and every
/// object the catalog names is there. A re-run completes the import.
#[test]
fn a_killed_import_leaves_no_orphan_in_the_bucket() {
    let s3 = S3Server::start();
    let t = store_in_bucket(&s3, "lib");
    let dir = t.path("shoot");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..150 {
        std::fs::write(
            dir.join(format!("img{i:04}.jpg")),
            format!("photo {i} ").repeat(500),
        )
        .unwrap();
    }
    for delay_ms in [150u64, 400, 700] {
        let mut child = t
            .cmd()
            .args(["import", dir.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // the next command reaps the dead import's journal; an upload the server still
        // stores after that (the client died with the request sent) is deleted by the next
        // commands, which keep the journal a while for this
        t.ok(&["status"]);
        std::thread::sleep(Duration::from_millis(1000));
        t.ok(&["status"]);
        let mut known: Vec<String> = common::known_objects(&t).into_iter().collect();
        known.sort();
        let mut in_bucket: Vec<String> = s3
            .keys("lib/")
            .iter()
            .map(|k| k.trim_start_matches("lib/").replace('/', ""))
            .collect();
        in_bucket.sort();
        assert_eq!(in_bucket, known, "after a kill at {delay_ms} ms");
        let mut staging = Vec::new();
        common::collect_files(&t.store.join("objects"), &mut staging);
        assert!(staging.is_empty(), "{staging:?}");
    }
    t.ok(&["import", dir.to_str().unwrap()]);
    assert_eq!(s3.keys("lib/").len(), 150);
    assert!(t.ok(&["check"]).stdout.contains("intact"));
}
