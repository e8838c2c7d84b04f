//! The mount, for real: a `consentfs mount` process, the kernel, and the files as tools see them.
//! CI runs these as root with /dev/fuse.

mod common;

use common::mount::{is_mounted, os_user, run_as, tree, wait_for, Mount};
use common::TestStore;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::time::Duration;

const SETTLE: Duration = Duration::from_secs(5);

/// A store with photos for `login` (an OS account), consents for some of them.
fn store_for(login: &str) -> TestStore {
    let t = TestStore::new();
    t.write("shoot/a.jpg", b"photo of anna");
    t.write("shoot/sub/b.jpg", &vec![7u8; 300_000]);
    t.write("shoot/hall.jpg", b"empty hall");
    t.write("shoot/group.jpg", b"anna and bert");
    t.ok(&[
        "import",
        "--collection",
        "events/2026",
        t.path("shoot").to_str().unwrap(),
    ]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["person", "add", "Bert"]);
    t.ok(&["link", "events/2026/a.jpg", "Anna"]);
    t.ok(&["link", "events/2026/sub/b.jpg", "Bert"]);
    t.ok(&["link", "events/2026/group.jpg", "Anna", "Bert"]);
    t.ok(&["mark", "events/2026/hall.jpg", "--no-persons"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website,print"]);
    t.ok(&["consent", "grant", "Bert", "--purpose", "website"]);
    t.add_user(login);
    t.ok(&["user", "grant", login, "--purpose", "website,print"]);
    t
}

/// Files a user sees in a purpose according to `consentfs ls`, as paths in the mount.
fn ls_paths(t: &TestStore, login: &str, purpose: &str) -> Vec<String> {
    common::visible(t, login, purpose)
        .into_iter()
        .map(|p| format!("{login}/{purpose}/{p}"))
        .collect()
}

/// Files (not folders) below `<mount>/<login>/<purpose>`.
fn mounted_files(m: &Mount, login: &str, purpose: &str) -> Vec<String> {
    let base = m.path(&format!("{login}/{purpose}"));
    tree(&base)
        .into_iter()
        .filter(|p| !p.ends_with('/'))
        .map(|p| format!("{login}/{purpose}/{p}"))
        .collect()
}

#[test]
fn the_mount_shows_what_ls_says_and_reads_the_bytes() {
    let t = store_for("root");
    let m = Mount::start(&t);
    for purpose in ["website", "print"] {
        assert_eq!(
            mounted_files(&m, "root", purpose),
            ls_paths(&t, "root", purpose),
            "purpose {purpose}"
        );
    }
    assert!(!m.path("root/social-media").exists(), "no grant, no folder");
    assert_eq!(
        std::fs::read(m.path("root/website/events/2026/a.jpg")).unwrap(),
        b"photo of anna"
    );
    assert_eq!(
        std::fs::read(m.path("root/website/events/2026/sub/b.jpg")).unwrap(),
        vec![7u8; 300_000]
    );
    // random access
    let f = std::fs::File::open(m.path("root/website/events/2026/sub/b.jpg")).unwrap();
    let mut buf = [0u8; 10];
    assert_eq!(f.read_at(&mut buf, 299_995).unwrap(), 5);
    // metadata and extended attributes
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let md = std::fs::metadata(m.path("root/website/events/2026/a.jpg")).unwrap();
    assert_eq!(md.len(), 13);
    assert_eq!(md.permissions().mode() & 0o777, 0o400);
    assert_eq!(
        std::fs::metadata(m.path("root"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    assert_eq!(std::fs::metadata(m.path("root")).unwrap().uid(), 0);
    let out = std::process::Command::new("getfattr")
        .args(["-d", "--absolute-names"])
        .arg(m.path("root/website/events/2026/group.jpg"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("user.consentfs.asset=\"2\""), "{text}");
    assert!(text.contains("user.consentfs.subjects=\"1,2\""), "{text}");
    assert!(text.contains("user.consentfs.status=\"active\""), "{text}");
    assert!(
        text.contains("user.consentfs.valid_until=\"none\""),
        "{text}"
    );
}

#[test]
fn withdrawal_grant_and_expiry_apply_while_mounted() {
    let t = store_for("root");
    let m = Mount::start(&t);
    let a = m.path("root/website/events/2026/a.jpg");
    let group = m.path("root/website/events/2026/group.jpg");
    assert!(a.exists() && group.exists());
    t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    let (gone, _) = wait_for(SETTLE, || !a.exists() && !group.exists());
    assert!(gone, "withdrawn photos must disappear without remounting");
    assert!(
        m.path("root/print/events/2026/a.jpg").exists(),
        "print is not affected"
    );
    assert!(std::fs::read(&a).is_err());
    t.ok(&[
        "consent",
        "grant",
        "Anna",
        "--purpose",
        "website",
        "--until",
        "3s",
    ]);
    let (back, _) = wait_for(SETTLE, || a.exists());
    assert!(back, "a new grant shows the photo again");
    let until = std::process::Command::new("getfattr")
        .args(["--only-values", "-n", "user.consentfs.valid_until"])
        .arg(&a)
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&until.stdout), "none");
    let (expired, _) = wait_for(Duration::from_secs(10), || !a.exists());
    assert!(expired, "the photo disappears when the consent expires");
    // folders that become empty disappear too
    t.ok(&["consent", "withdraw", "Bert", "--purpose", "website"]);
    let (pruned, _) = wait_for(SETTLE, || !m.path("root/website/events/2026/sub").exists());
    assert!(pruned);
}

#[test]
fn imports_links_and_grants_appear_live() {
    let t = store_for("root");
    let m = Mount::start(&t);
    let p = t.write("later/new.jpg", b"new photo");
    t.ok(&["import", "--collection", "events/2027", p.to_str().unwrap()]);
    assert!(
        !m.path("root/website/events/2027").exists(),
        "unreviewed: hidden"
    );
    t.ok(&["link", "events/2027/new.jpg", "Anna"]);
    let (shown, _) = wait_for(SETTLE, || {
        m.path("root/website/events/2027/new.jpg").exists()
    });
    assert!(shown);
    t.ok(&["unlink", "events/2027/new.jpg", "Anna"]);
    let (hidden, _) = wait_for(SETTLE, || !m.path("root/website/events/2027").exists());
    assert!(hidden, "unlinked again: unreviewed, hidden");
    t.ok(&["user", "grant", "root", "--purpose", "intranet"]);
    let (purpose, _) = wait_for(SETTLE, || m.path("root/intranet").is_dir());
    assert!(purpose, "a new grant adds the purpose folder");
    assert_eq!(
        std::fs::read(m.path("root/print/events/2026/hall.jpg")).unwrap(),
        b"empty hall"
    );
}

#[test]
fn an_open_handle_is_revoked_also_for_cached_data() {
    let t = store_for("root");
    let m = Mount::start(&t);
    let path = m.path("root/website/events/2026/sub/b.jpg");
    let mut f = std::fs::File::open(&path).unwrap();
    // read it all once: the kernel's page cache now holds every byte
    let mut all = Vec::new();
    f.read_to_end(&mut all).unwrap();
    assert_eq!(all.len(), 300_000);
    let mut again = vec![0u8; 4096];
    f.read_exact_at(&mut again, 0).unwrap();
    t.ok(&["consent", "withdraw", "Bert", "--purpose", "website"]);
    let (gone, _) = wait_for(SETTLE, || !path.exists());
    assert!(gone);
    f.seek(SeekFrom::Start(0)).unwrap();
    let err = f
        .read(&mut again)
        .expect_err("a revoked handle must not read, not even cached pages");
    assert_eq!(err.raw_os_error(), Some(libc::EACCES));
    let err = f.read_at(&mut again, 100_000).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EACCES));
}

#[test]
fn a_tampered_object_reads_as_eio() {
    let t = store_for("root");
    let (_store, cat) = t.open_catalog();
    let v = consentfs::catalog::assets::version(cat.conn(), 4, None).unwrap(); // sub/b.jpg
    drop(cat);
    let hex = v.object.hex();
    let obj = t.objects_dir().join(&hex[..2]).join(&hex[2..]);
    let mut bytes = std::fs::read(&obj).unwrap();
    bytes[24 + 65576 + 100] ^= 0xff; // inside the second chunk
    std::fs::write(&obj, bytes).unwrap();
    let m = Mount::start(&t);
    let f = std::fs::File::open(m.path("root/website/events/2026/sub/b.jpg")).unwrap();
    let mut buf = vec![0u8; 1000];
    let err = f.read_at(&mut buf, 70_000).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    // reading it whole fails too: never a file with wrong or missing bytes
    let err = std::fs::read(m.path("root/website/events/2026/sub/b.jpg")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    // other files are not affected
    assert_eq!(
        std::fs::read(m.path("root/website/events/2026/a.jpg")).unwrap(),
        b"photo of anna"
    );
    let (logged, _) = wait_for(SETTLE, || {
        m.log_text().contains("integrity error in asset 4")
    });
    assert!(logged, "the log names the asset: {}", m.log_text());
    assert!(
        !m.log_text().contains("b.jpg"),
        "file names are personal data: not in the log at info level"
    );
}

#[test]
fn sigterm_and_sigint_unmount_cleanly() {
    let t = store_for("root");
    for sig in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ] {
        let mut m = Mount::start(&t);
        let child = m.child.take().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{sig}: {}", m.log_text());
        assert!(!is_mounted(&m.dir), "{sig}: still mounted");
        assert!(m.log_text().contains("unmounted"));
    }
}

#[test]
fn mount_errors_are_clear() {
    let t = store_for("root");
    let missing = t.path("nope");
    let r = t.run(&["mount", missing.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("does not exist") && r.stderr.contains("mkdir"),
        "{}",
        r.stderr
    );
    // busy: already mounted
    let m = Mount::start(&t);
    let r = t.run(&["mount", m.dir.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("busy"), "{}", r.stderr);
    drop(m);
    // stale: the daemon died without unmounting
    let mut m = Mount::start(&t);
    let mut child = m.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let r = t.run(&["mount", m.dir.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("stale") && r.stderr.contains("fusermount3 -u"),
        "{}",
        r.stderr
    );
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(&m.dir)
        .status();
    // /dev/fuse missing (in a private mount namespace with an empty /dev)
    let script = format!(
        "mount -t tmpfs none /dev && exec {} mount {}",
        common::BIN,
        t.path("mnt2").display()
    );
    std::fs::create_dir_all(t.path("mnt2")).unwrap();
    let out = t
        .cmd()
        .env_remove("RUST_LOG")
        .args(["--version"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .env("CONSENTFS_STORE", &t.store)
        .env("CONSENTFS_KEY_FILE", &t.key)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/dev/fuse is not available"), "{stderr}");
}

/// Two real OS users and a third without grants, one daemon: nobody gets at anyone else's
/// tree, whatever they try, also right after the owner touched the same photos.
#[test]
fn shared_machine_users_cannot_see_each_others_trees() {
    let (alice, bob, eve) = ("cfs-alice", "cfs-bob", "cfs-eve");
    let ids = [os_user(alice), os_user(bob), os_user(eve)];
    let t = store_for(alice);
    t.add_user(bob);
    t.ok(&["user", "grant", bob, "--purpose", "website"]);
    t.add_user(eve);
    let m = Mount::start(&t);
    // the mount's root must be reachable for everyone
    let tmp = t.dir.path();
    let _ = std::process::Command::new("chmod")
        .arg("755")
        .arg(tmp)
        .status();
    let files = |login: &str| -> Vec<String> {
        ls_paths(&t, login, "website")
            .into_iter()
            .chain(ls_paths(&t, login, "print"))
            .collect()
    };
    let own = [files(alice), files(bob)];
    assert!(!own[0].is_empty() && !own[1].is_empty());
    // the owners can use their own trees
    let mine = run_as(
        ids[0].0,
        ids[0].1,
        &format!(
            "cat '{}' >/dev/null && echo OK",
            m.path(&own[0][0]).display()
        ),
    );
    assert_eq!(
        String::from_utf8_lossy(&mine.stdout).trim(),
        "OK",
        "{}",
        String::from_utf8_lossy(&mine.stderr)
    );

    // targets: files, folders and the users' roots of each tree
    let mut targets: Vec<(usize, String)> = Vec::new();
    for (owner, list) in own.iter().enumerate() {
        let login = [alice, bob][owner];
        targets.push((owner, login.to_string()));
        targets.push((owner, format!("{login}/website")));
        targets.push((owner, format!("{login}/website/events/2026")));
        for f in list {
            targets.push((owner, f.clone()));
        }
    }
    // deterministic pseudo-random probe order
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let ops = [
        "ls",
        "stat",
        "cat",
        "getfattr -d",
        "head -c1",
        "ls -la",
        "test -r",
    ];
    for round in 0..120 {
        let (owner, target) = &targets[(next() % targets.len() as u64) as usize];
        let op = ops[(next() % ops.len() as u64) as usize];
        let path = m.path(target);
        // the owner touches it first, so every cache is warm
        let warm = run_as(
            ids[*owner].0,
            ids[*owner].1,
            &format!(
                "ls -la '{0}' >/dev/null; cat '{0}' >/dev/null 2>&1; true",
                path.display()
            ),
        );
        assert!(warm.status.success());
        let intruders: Vec<usize> = (0..3).filter(|i| i != owner).collect();
        for who in intruders {
            // not even the names of other users' folders are shown (finding 16 of issue 11)
            let probe = format!(
                "{op} '{}' >/dev/null 2>&1 && echo LEAK || echo denied",
                path.display()
            );
            let out = run_as(ids[who].0, ids[who].1, &probe);
            let verdict = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert_eq!(
                verdict, "denied",
                "round {round}: user #{who} ran `{op}` on {target} owned by #{owner}"
            );
        }
    }
    // and the third user, without grants, has no folder at all
    let out = run_as(ids[2].0, ids[2].1, &format!("ls '{}'", m.dir.display()));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(!listing.contains(eve), "{listing}");
}

/// Random consent events while mounted: after each, the mounted tree equals what the rules
/// (via `consentfs ls`) say.
#[test]
fn model_based_random_consent_events_keep_the_mount_equal_to_the_rules() {
    let t = store_for("root");
    t.ok(&["person", "add", "Carla", "--born", "2014-01-01"]);
    t.ok(&["person", "add", "Carla's mother"]);
    t.ok(&["person", "guardian", "Carla", "Carla's mother"]);
    for i in 0..6 {
        let p = t.write(&format!("more/m{i}.jpg"), format!("photo {i}").as_bytes());
        t.ok(&[
            "import",
            "--collection",
            &format!("extra/{}", i % 3),
            p.to_str().unwrap(),
        ]);
    }
    let m = Mount::start(&t);
    let persons = ["Anna", "Bert", "Carla"];
    let purposes = ["website", "print"];
    let assets: Vec<String> = (0..6)
        .map(|i| format!("extra/{}/m{i}.jpg", i % 3))
        .chain(["events/2026/a.jpg".into(), "events/2026/group.jpg".into()])
        .collect();
    let mut seed: u64 = 42;
    let mut rnd = |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n
    };
    for step in 0..40 {
        let person = persons[rnd(persons.len())];
        let purpose = purposes[rnd(purposes.len())];
        let asset = &assets[rnd(assets.len())];
        let args: Vec<String> = match rnd(7) {
            0 | 1 if person == "Carla" => vec![
                "consent",
                "grant",
                person,
                "--purpose",
                purpose,
                "--by",
                "Carla's mother",
            ],
            0 | 1 => vec!["consent", "grant", person, "--purpose", purpose],
            2 => vec!["consent", "withdraw", person, "--purpose", purpose],
            3 => vec!["consent", "refuse", person, "--purpose", purpose],
            4 => vec!["link", asset, person],
            5 => vec!["unlink", asset, person],
            _ => vec!["mark", asset, "--no-persons"],
        }
        .into_iter()
        .map(String::from)
        .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = t.run(&args);
        assert!(
            r.code == 0 || r.code == 2,
            "step {step}: {args:?}: {}",
            r.stderr
        );
        for purpose in purposes {
            let want = ls_paths(&t, "root", purpose);
            let (same, _) = wait_for(SETTLE, || mounted_files(&m, "root", purpose) == want);
            assert!(
                same,
                "step {step} after {args:?}: {purpose}: mount {:?} != rules {:?}",
                mounted_files(&m, "root", purpose),
                want
            );
        }
    }
}

/// Which pages of `f`'s first `len` bytes are in the kernel's page cache (mincore of a
/// read-only mapping, which faults nothing in).
fn resident_pages(f: &std::fs::File, len: usize) -> Vec<bool> {
    use std::os::fd::AsRawFd;
    let pages = len.div_ceil(4096);
    let mut vec = vec![0u8; pages];
    // SAFETY: a fresh read-only mapping of the file, unmapped before returning; mincore
    // writes one byte per page into `vec`, which holds `pages` bytes
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(
            addr,
            libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        let r = libc::mincore(addr, len, vec.as_mut_ptr());
        libc::munmap(addr, len);
        assert_eq!(r, 0, "mincore: {}", std::io::Error::last_os_error());
    }
    vec.into_iter().map(|b| b & 1 == 1).collect()
}

/// [`store_for`] `root`, with `photo` imported as `events/2026/NAME`, linked to Anna (who
/// consents to the website), and `root` allowed to write there.
fn store_with_photo_of_anna(name: &str, photo: &[u8]) -> TestStore {
    let t = store_for("root");
    t.write(&format!("more/{name}"), photo);
    t.ok(&[
        "import",
        "--collection",
        "events/2026",
        t.path("more").to_str().unwrap(),
    ]);
    t.ok(&["link", &format!("events/2026/{name}"), "Anna"]);
    t.ok(&[
        "user",
        "grant",
        "root",
        "--purpose",
        "website",
        "--collection",
        "events/2026",
        "--access",
        "write",
    ]);
    t
}

/// A program reading a large photo at random, 4 KiB here and there (a viewer seeking, fio),
/// finds the rest of each 64 KiB chunk it touched in the page cache: the photo's bytes, which
/// a write through another descriptor replaces and a withdrawal takes away from a descriptor
/// opened before.
#[test]
fn small_reads_fill_the_page_cache_and_a_withdrawal_empties_it() {
    let len = 400_000usize;
    let photo: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
    let t = store_with_photo_of_anna("big.jpg", &photo);
    let m = Mount::start(&t);
    let path = m.path("root/website/events/2026/big.jpg");
    let f = std::fs::File::open(&path).unwrap();
    // no readahead: the kernel asks for the pages read and nothing more
    // SAFETY: an advice on an open descriptor
    let advised = unsafe {
        libc::posix_fadvise(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            0,
            0,
            libc::POSIX_FADV_RANDOM,
        )
    };
    assert_eq!(advised, 0);
    let mut page = vec![0u8; 4096];
    f.read_exact_at(&mut page, 65536 + 8192).unwrap();
    assert_eq!(page[..], photo[65536 + 8192..65536 + 12288]);
    // chunk 1 is pages 16..32, the read was page 18: readahead never fills pages before a read
    let (filled, _) = wait_for(SETTLE, || {
        resident_pages(&f, len)[16..32].iter().all(|r| *r)
    });
    let pages = resident_pages(&f, len);
    assert!(filled, "chunk 1 not in the page cache: {pages:?}");
    assert!(
        pages[..16].iter().chain(&pages[48..]).all(|r| !r),
        "pages of chunks never read are cached: {pages:?}"
    );
    let mut chunk = vec![0u8; 65536];
    f.read_exact_at(&mut chunk, 65536).unwrap();
    assert_eq!(
        chunk[..],
        photo[65536..131072],
        "the pushed pages are the photo's bytes"
    );

    // a write through another descriptor replaces what was pushed
    let w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    w.write_all_at(b"NEW!", 65536 + 40000).unwrap();
    drop(w);
    let mut four = [0u8; 4];
    f.read_exact_at(&mut four, 65536 + 40000).unwrap();
    assert_eq!(&four, b"NEW!");
    // the writer's release reaches the daemon after its close returned: until then nothing is
    // pushed (a writer is open), so the reader reads on, as a program reading at random would
    let (filled, _) = wait_for(SETTLE, || {
        let pages = resident_pages(&f, len);
        let Some(p) = (48..64).find(|p| !pages[*p]) else {
            return true;
        };
        f.read_exact_at(&mut page, p as u64 * 4096).unwrap();
        assert_eq!(page[..], photo[p * 4096..p * 4096 + 4096]);
        false
    });
    assert!(filled, "chunk 3 of the new version not in the page cache");

    t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    let (gone, _) = wait_for(SETTLE, || !path.exists());
    assert!(gone);
    for at in [65536, 65536 + 40000, 3 * 65536] {
        let err = f.read_at(&mut page, at).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EACCES), "read at {at}");
    }
}

/// A descriptor opened for writing only writes around the kernel's page cache (the daemon's
/// `FOPEN_DIRECT_IO`, see `fuse::FuseFs::open_flags`), and yet a reader that holds the file's
/// pages reads what it wrote at once, before and after its close, as on a local filesystem;
/// a descriptor opened for reading and writing keeps the cache.
#[test]
fn writes_of_a_write_only_descriptor_reach_readers_holding_the_pages() {
    let len = 300_000usize;
    let photo: Vec<u8> = (0..len).map(|i| (i * 13 + i / 512) as u8).collect();
    let t = store_with_photo_of_anna("held.jpg", &photo);
    let m = Mount::start(&t);
    let direct = !m.log_text().contains("writes go through the page cache");
    let path = m.path("root/website/events/2026/held.jpg");
    let reader = std::fs::File::open(&path).unwrap();
    let mut all = vec![0u8; len];
    reader.read_exact_at(&mut all, 0).unwrap();
    assert_eq!(all, photo);
    assert!(
        resident_pages(&reader, len).iter().all(|r| *r),
        "the reader's pages are cached"
    );

    let writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    writer.write_all_at(b"first", 100_000).unwrap();
    let mut five = [0u8; 5];
    reader.read_exact_at(&mut five, 100_000).unwrap();
    assert_eq!(&five, b"first", "read before the writer's close");
    writer.write_all_at(b"again", 100_000).unwrap();
    writer.write_all_at(b"tail!", len as u64).unwrap();
    drop(writer);
    reader.read_exact_at(&mut five, 100_000).unwrap();
    assert_eq!(&five, b"again", "read after the writer's close");
    let mut expected = photo.clone();
    expected[100_000..100_005].copy_from_slice(b"again");
    expected.extend_from_slice(b"tail!");
    assert_eq!(std::fs::read(&path).unwrap(), expected, "a new open");
    let mut whole = Vec::new();
    let mut r = &reader;
    r.seek(SeekFrom::Start(0)).unwrap();
    r.read_to_end(&mut whole).unwrap();
    assert_eq!(whole, expected, "the old descriptor, to its new end");

    // a new file written through a write-only descriptor leaves no pages of its own behind
    let new = m.path("root/website/events/2026/new.raw");
    let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    std::fs::write(&new, &bytes).unwrap();
    let f = std::fs::File::open(&new).unwrap();
    if direct {
        assert!(
            resident_pages(&f, len).iter().all(|r| !r),
            "the write-only descriptor's bytes went through the page cache"
        );
    }
    assert_eq!(std::fs::read(&new).unwrap(), bytes);
    // read and write through one descriptor: cached, and reading back what it wrote
    let rw = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&new)
        .unwrap();
    rw.write_all_at(b"rw", 10).unwrap();
    let mut two = [0u8; 2];
    rw.read_exact_at(&mut two, 10).unwrap();
    assert_eq!(&two, b"rw");
    assert!(
        resident_pages(&rw, 4096)[0],
        "a read-write descriptor's page is cached"
    );
}
