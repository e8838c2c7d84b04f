//! A team library (`--store postgres://…`): several machines, one library. Each "machine" here
//! is a replica folder, a control socket and a mountpoint of its own on this one machine, all
//! against a real PostgreSQL server started for the test (loopback only) and objects in a
//! shared folder.

mod common;

use common::mount::{is_mounted, wait_for};
use common::pg::PgServer;
use common::{Run, TestStore};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Library {
    pg: PgServer,
    url: String,
    /// The test's folder and the library's key file.
    t: TestStore,
}

/// A new library with one photo of Anna (consented for the website), one of an empty hall,
/// and `root` allowed to write in the website, created on machine "a".
fn library() -> Library {
    library_of(None)
}

/// [`library`], made by the release of catalog format `format` (`None`: this one).
fn library_of(format: Option<i64>) -> Library {
    let pg = PgServer::start();
    let url = pg.database();
    let dir = tempfile::tempdir().unwrap();
    let t = TestStore {
        store: dir.path().join("unused"),
        key: dir.path().join("key"),
        dir,
    };
    let lib = Library { pg, url, t };
    let a = lib.machine_of("a", format);
    let objects = format!("file://{}", lib.t.path("shared").display());
    a.ok(&["--objects", &objects, "init"]);
    lib.t.write("shoot/a.jpg", b"photo of anna");
    lib.t.write("shoot/hall.jpg", b"empty hall");
    a.ok(&["import", lib.t.path("shoot").to_str().unwrap()]);
    a.ok(&["person", "add", "Anna"]);
    a.ok(&["link", "a.jpg", "Anna"]);
    a.ok(&["mark", "hall.jpg", "--no-persons"]);
    a.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    common::mount::os_user("root");
    a.ok(&["user", "add", "root"]);
    a.ok(&[
        "user",
        "grant",
        "root",
        "--purpose",
        "website",
        "--access",
        "write",
    ]);
    lib
}

impl Library {
    fn machine(&self, name: &str) -> Machine<'_> {
        self.machine_of(name, None)
    }

    /// Machine `name` running the release of catalog format `format` (`None`: this one; the
    /// binary acts as an older release with `CONSENTFS_TEST_FORMAT`).
    fn machine_of(&self, name: &str, format: Option<i64>) -> Machine<'_> {
        Machine {
            lib: self,
            replica: self.t.path(&format!("replica-{name}")),
            name: name.to_string(),
            format,
        }
    }
}

struct Machine<'a> {
    lib: &'a Library,
    replica: PathBuf,
    name: String,
    format: Option<i64>,
}

impl Machine<'_> {
    fn cmd(&self) -> Command {
        let mut c = self.lib.t.cmd();
        c.env("CONSENTFS_STORE", &self.lib.url)
            .env("CONSENTFS_REPLICA", &self.replica)
            .env(
                "CONSENTFS_SOCKET",
                self.lib.t.path(&format!("{}.sock", self.name)),
            );
        if let Some(f) = self.format {
            c.env("CONSENTFS_TEST_FORMAT", f.to_string());
        }
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        let o = self.cmd().args(args).output().expect("run consentfs");
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            raw: o.stdout,
        }
    }

    fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(
            r.code, 0,
            "machine {}: consentfs {args:?}: {}{}",
            self.name, r.stdout, r.stderr
        );
        r
    }

    /// What root sees in `purpose` on this machine (`ls`).
    fn visible(&self, purpose: &str) -> Vec<String> {
        common::visible_in(
            &self
                .ok(&["ls", "--user", "root", "--purpose", purpose, "--json"])
                .json(),
        )
    }

    /// Mount this machine's copy (with `extra` options) and wait until it answers.
    fn mount(&self, extra: &[&str]) -> TeamMount {
        self.mount_env(extra, &[])
    }

    /// [`Machine::mount`] with these variables set for the daemon.
    fn mount_env(&self, extra: &[&str], env: &[(&str, &str)]) -> TeamMount {
        let dir = self.lib.t.path(&format!("mnt-{}", self.name));
        std::fs::create_dir_all(&dir).unwrap();
        let log = self.lib.t.path(&format!("mount-{}.log", self.name));
        let child = self
            .cmd()
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .arg("mount")
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let m = TeamMount {
            dir,
            log,
            child: Some(child),
        };
        let (up, _) = wait_for(Duration::from_secs(20), || is_mounted(&m.dir));
        assert!(up, "mount did not come up: {}", m.log_text());
        m
    }
}

struct TeamMount {
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl TeamMount {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TeamMount {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let (ended, _) = wait_for(Duration::from_secs(20), || {
                matches!(c.try_wait(), Ok(Some(_)))
            });
            if !ended {
                let _ = c.kill();
            }
        }
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        if std::thread::panicking() {
            eprintln!("---- {} ----\n{}", self.dir.display(), self.log_text());
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A withdrawal recorded on one machine hides the photo in the mounts of the two others;
/// the latencies (command returned → lookup fails there) are printed, not asserted.
#[test]
fn a_withdrawal_on_one_machine_hides_the_photo_on_every_other() {
    let lib = library();
    let (a, b, c) = (lib.machine("a"), lib.machine("b"), lib.machine("c"));
    // b and c join with the key alone
    b.ok(&["person", "list"]);
    c.ok(&["person", "list"]);
    let (ma, mc) = (a.mount(&[]), c.mount(&[]));
    let photo_a = ma.path("root/website/a.jpg");
    let photo_c = mc.path("root/website/a.jpg");
    assert_eq!(std::fs::read(&photo_a).unwrap(), b"photo of anna");
    assert_eq!(std::fs::read(&photo_c).unwrap(), b"photo of anna");
    let mut lat = Vec::new();
    for _ in 0..10 {
        b.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
        let t0 = Instant::now();
        let (gone, _) = wait_for(Duration::from_secs(10), || {
            !photo_a.exists() && !photo_c.exists()
        });
        assert!(gone, "the withdrawal made on b did not reach a and c");
        lat.push(t0.elapsed().as_secs_f64() * 1000.0);
        // and an open of the path fails there too (not only a cached listing)
        assert_eq!(
            std::fs::File::open(&photo_a).unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
        b.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
        let (back, _) = wait_for(Duration::from_secs(10), || {
            photo_a.exists() && photo_c.exists()
        });
        assert!(back, "the new grant made on b did not reach a and c");
    }
    lat.sort_by(f64::total_cmp);
    eprintln!(
        "withdraw on b -> lookup fails on a and c: p50 {:.1} ms, max {:.1} ms (10 tries)",
        percentile(&lat, 0.5),
        percentile(&lat, 1.0)
    );
    // every machine's copy holds the same audit log, intact
    for m in [&a, &b, &c] {
        m.ok(&["audit", "verify"]);
    }
    // `status` names the library (never a password) and how far the copy is
    let st = a.ok(&["status", "--json"]).json();
    assert_eq!(st["library"]["url"], lib.url.as_str());
    assert!(st["library"]["change"].as_i64().unwrap() > 20, "{st}");
    assert!(a.ok(&["status"]).stdout.contains("library "));
    let log = |m: &Machine| m.ok(&["audit", "list", "--json"]).stdout;
    assert_eq!(log(&a), log(&b));
    assert_eq!(log(&b), log(&c));
}

/// PostgreSQL holds nothing readable of the persons and photos: names, file names,
/// collections and the photo's content are nowhere in a dump of its database.
#[test]
fn the_database_holds_nothing_readable() {
    let lib = library();
    let a = lib.machine("a");
    lib.t.write(
        "collectionMarkerQ7/fileMarkerR2.jpg",
        b"contentMarkerS5 pixels",
    );
    a.ok(&["import", lib.t.path("collectionMarkerQ7").to_str().unwrap()]);
    a.ok(&[
        "person",
        "add",
        "Wilhelmina Markerperson",
        "--ref",
        "refMarkerT3",
    ]);
    a.ok(&["link", "fileMarkerR2.jpg", "Wilhelmina Markerperson"]);
    a.ok(&[
        "consent",
        "grant",
        "Wilhelmina Markerperson",
        "--purpose",
        "print",
    ]);
    let dump = common::pg::dump(&lib.url);
    let text = String::from_utf8_lossy(&dump);
    assert!(text.contains("consentfs_changes"), "not the library's dump");
    for m in [
        "collectionMarkerQ7",
        "fileMarkerR2",
        "contentMarkerS5",
        "Markerperson",
        "Wilhelmina",
        "refMarkerT3",
        "Anna",
        "hall.jpg",
    ] {
        assert!(!text.contains(m), "the dump holds '{m}'");
    }
}

/// A mount that cannot reach PostgreSQL for longer than its lease stops serving photos
/// (EACCES, a log line, and `status` of the copy says why) until the library is back and
/// the copy has caught up; a withdrawal made meanwhile is in force when it serves again.
#[test]
fn a_mount_without_the_library_stops_serving_until_it_is_back() {
    let lib = library();
    let (a, b) = (lib.machine("a"), lib.machine("b"));
    b.ok(&["person", "list"]);
    let ma = a.mount(&["--lease", "1"]);
    let photo = ma.path("root/website/a.jpg");
    let hall = ma.path("root/website/hall.jpg");
    assert_eq!(std::fs::read(&photo).unwrap(), b"photo of anna");
    // a reader holds the photo open while the library goes away
    let held = std::fs::File::open(&hall).unwrap();
    lib.pg.stop();
    let (closed, took) = wait_for(Duration::from_secs(10), || {
        std::fs::read(&photo).is_err_and(|e| e.raw_os_error() == Some(libc::EACCES))
    });
    assert!(
        closed,
        "still serving without the library: {}",
        ma.log_text()
    );
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 4];
        let e = held.read_at(&mut buf, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES), "a held file reads on");
    }
    assert!(
        ma.log_text().contains("NOT SERVING PHOTOS"),
        "{}",
        ma.log_text()
    );
    let state = a.replica.join("not-serving");
    let (said, _) = wait_for(Duration::from_secs(5), || state.exists());
    assert!(said, "the replica folder does not say why");
    let why = std::fs::read_to_string(&state).unwrap();
    assert!(why.contains("lease"), "{why}");
    let st = a.run(&["status"]);
    assert_eq!(st.code, 2, "{}{}", st.stdout, st.stderr);
    assert!(
        st.stderr.contains("not serving") && st.stderr.contains("lease"),
        "status does not say why: {}",
        st.stderr
    );
    // back (b could not record anything meanwhile: the library was down), and a withdrawal
    // recorded on b as soon as it is reaches a like any other
    lib.pg.restart();
    b.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    let (open, _) = wait_for(Duration::from_secs(10), || hall.exists());
    assert!(open, "not serving again: {}", ma.log_text());
    let (hidden, _) = wait_for(Duration::from_secs(5), || !photo.exists());
    assert!(hidden, "the withdrawal made on b is not in force on a");
    assert_eq!(std::fs::read(&hall).unwrap(), b"empty hall");
    assert!(!a.replica.join("not-serving").exists());
}

/// Two machines saving the same photo at the same time: every save becomes a version, the
/// last commit wins, and no version is a mix of two saves.
#[test]
fn saves_of_the_same_photo_on_two_machines_all_become_versions() {
    let lib = library();
    let (a, b) = (lib.machine("a"), lib.machine("b"));
    b.ok(&["person", "list"]);
    let (ma, mb) = (a.mount(&[]), b.mount(&[]));
    const SAVES: usize = 8;
    let content = |who: u8, i: usize| -> Vec<u8> { vec![who + i as u8; 200_000 + i] };
    let writer = |m: &TeamMount, who: u8| {
        let path = m.path("root/website/hall.jpg");
        move || {
            for i in 0..SAVES {
                std::fs::write(&path, content(who, i)).unwrap();
            }
        }
    };
    let (wa, wb) = (writer(&ma, b'a'), writer(&mb, b'A'));
    let ta = std::thread::spawn(wa);
    let tb = std::thread::spawn(wb);
    ta.join().unwrap();
    tb.join().unwrap();
    // each machine's last save is a version, whole (a machine's quick saves of one file may
    // be one version, as on a single machine; the two machines' never are)
    let versions = a.ok(&["versions", "hall.jpg", "--json"]).json();
    let contents: Vec<Vec<u8>> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            a.ok(&["cat", "hall.jpg", "--version", &v["version"].to_string()])
                .raw
        })
        .collect();
    for who in [b'a', b'A'] {
        assert!(
            contents.contains(&content(who, SAVES - 1)),
            "the last save of machine {} is not a version",
            who as char
        );
    }
    // the current version is one whole save, the same on both machines
    let now_a = a.ok(&["cat", "hall.jpg"]).raw;
    let now_b = b.ok(&["cat", "hall.jpg"]).raw;
    assert_eq!(now_a, now_b);
    let whole = (0..SAVES).any(|i| now_a == content(b'a', i) || now_a == content(b'A', i));
    assert!(whole, "the current version is torn ({} bytes)", now_a.len());
    let (same, _) = wait_for(Duration::from_secs(10), || {
        std::fs::read(ma.path("root/website/hall.jpg")).ok() == Some(now_a.clone())
            && std::fs::read(mb.path("root/website/hall.jpg")).ok() == Some(now_a.clone())
    });
    assert!(same, "the mounts do not show the last save");
}

/// Another machine saves over a file twice in a row (one version: the second save replaces
/// the first's content) while this machine's copy is a moment behind: the content its view
/// still names reads whole, as an unlinked file does on a local filesystem, also through a
/// handle that stays open after it caught up; the superseded objects are not removed from the
/// shared objects at once. Once caught up, a new open reads the last save, never pages of what
/// the file held before.
#[test]
fn a_machine_behind_reads_whole_while_another_saves_over_a_file() {
    use std::io::Read;
    let lib = library();
    let (a, b) = (lib.machine("a"), lib.machine("b"));
    b.ok(&["person", "list"]);
    let ma = a.mount(&[]);
    let mb = b.mount_env(&["--lease", "60"], &[("CONSENTFS_FAULT", "follow-late")]);
    let at = |m: &TeamMount| m.path("root/website/hall.jpg");
    let size = 4 << 20;
    let saves: Vec<Vec<u8>> = vec![
        (0..size).map(|i| (i % 251) as u8).collect(),
        vec![2u8; size],
        vec![3u8; size],
    ];
    std::fs::write(at(&ma), &saves[0]).unwrap();
    let (seen, _) = wait_for(Duration::from_secs(15), || {
        std::fs::metadata(at(&mb)).is_ok_and(|m| m.len() == size as u64)
    });
    assert!(seen, "machine b does not see machine a's save");
    // b catches up only every few seconds now: these come before its next round
    std::fs::write(at(&ma), &saves[1]).unwrap();
    std::fs::write(at(&ma), &saves[2]).unwrap();
    let mut reader = std::fs::File::open(at(&mb)).expect("machine b cannot open the file it shows");
    let mut got = vec![0u8; 4096];
    reader
        .read_exact(&mut got)
        .expect("machine b cannot read the file it shows");
    let versions = a.ok(&["versions", "hall.jpg", "--json"]).json();
    assert_eq!(
        versions.as_array().unwrap().len(),
        2,
        "the quick saves did not make one version: {versions}"
    );
    // b takes the saves up (its mount changes the file's times); the open file is not
    // opened again meanwhile: a new open would share the kernel's pages of that file
    let mtime = |m: &TeamMount| std::fs::metadata(at(m)).and_then(|m| m.modified()).ok();
    let (caught_up, _) = wait_for(Duration::from_secs(20), || mtime(&mb) == mtime(&ma));
    assert!(caught_up, "machine b does not take up the last save");
    // the kernel was told to drop the file's pages by now: what the open file reads next
    // lands in them again
    std::thread::sleep(Duration::from_millis(500));
    reader
        .read_to_end(&mut got)
        .expect("the open file stopped reading: its object was removed under it");
    assert!(
        saves.contains(&got),
        "the open file read no whole save ({} bytes, starting {:?})",
        got.len(),
        &got[..4]
    );
    drop(reader);
    let now = std::fs::read(at(&mb)).unwrap();
    assert!(now == saves[2], "a new open does not read the last save");
}

/// An erasure compacts the library: the changes that held the erased person are deleted
/// from PostgreSQL, a machine joining afterwards starts from the snapshot, and a machine
/// that was away catches up from it too.
#[test]
fn an_erasure_leaves_no_change_that_held_the_person() {
    let lib = library();
    let (a, b, c) = (lib.machine("a"), lib.machine("b"), lib.machine("c"));
    b.ok(&["person", "list"]);
    a.ok(&["person", "add", "Zeldzaam Vergeten"]);
    a.ok(&["link", "hall.jpg", "Zeldzaam Vergeten"]);
    // b was away while the person was added and erased
    a.ok(&["person", "erase", "Zeldzaam Vergeten", "--yes"]);
    let mut db = postgres::Client::connect(&lib.url, postgres::NoTls).unwrap();
    let (changes, snapshot): (i64, Option<i64>) = {
        let r = db
            .query_one(
                "SELECT (SELECT count(*) FROM consentfs_changes), (SELECT max(seq) FROM consentfs_snapshots)",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(
        changes, 0,
        "changes before the erasure are still in the log"
    );
    assert!(
        snapshot.is_some_and(|s| s > 0),
        "no snapshot after the erasure"
    );
    for m in [&b, &c] {
        let persons = m.ok(&["person", "list"]).stdout;
        assert!(persons.contains("Anna"), "{persons}");
        assert!(!persons.contains("Zeldzaam"), "{persons}");
        m.ok(&["audit", "verify"]);
    }
    // and the library goes on from there
    c.ok(&["person", "add", "Cas"]);
    assert!(b.ok(&["person", "list"]).stdout.contains("Cas"));
}

/// Joining needs the library's key: a wrong one is refused and leaves no copy behind. A
/// database that holds a library cannot be initialised again.
#[test]
fn joining_needs_the_key_and_a_library_is_made_once() {
    let lib = library();
    let wrong = lib.t.path("wrong-key");
    consentfs::crypto::keyring::create_key_file(&wrong).unwrap();
    let b = lib.machine("b");
    let r = b
        .cmd()
        .env("CONSENTFS_KEY_FILE", &wrong)
        .args(["person", "list"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(!b.replica.exists(), "a refused join left a copy behind");
    let again = lib.machine("again");
    let objects = format!("file://{}", lib.t.path("other-shared").display());
    let r = again.run(&["--objects", &objects, "init"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("already holds"), "{}", r.stderr);
    assert!(!again.replica.exists());
    // a library's objects must be where every machine reaches them
    let other = PgServer::start();
    let r = lib
        .t
        .cmd()
        .env("CONSENTFS_STORE", other.database())
        .env("CONSENTFS_REPLICA", lib.t.path("own-objects"))
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("--objects"));
}

/// A command killed after the library committed its change but before its own copy did: the
/// change is the library's (every other machine has it), and the killed machine's copy takes
/// it from the log at its next command, once, like any other machine's.
#[test]
fn a_command_killed_between_the_two_commits_loses_nothing() {
    let lib = library();
    let (a, b) = (lib.machine("a"), lib.machine("b"));
    b.ok(&["person", "list"]);
    let r = a
        .cmd()
        .env("CONSENTFS_FAULT", "die-after-append")
        .args(["consent", "withdraw", "Anna", "--purpose", "website"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(137), "the fault did not fire");
    // b has it
    assert_eq!(b.visible("website"), vec!["hall.jpg"]);
    // a has it once its next command caught up, and the two logs are one
    assert_eq!(a.visible("website"), vec!["hall.jpg"]);
    let log = |m: &Machine| m.ok(&["audit", "list", "--json"]).stdout;
    assert_eq!(log(&a), log(&b));
    let withdrawals = log(&a).matches("consent.withdraw").count();
    assert_eq!(withdrawals, 1, "{}", log(&a));
    a.ok(&["audit", "verify"]);
}

/// A change to a copy that does not go through a command's transaction (it would stay on this
/// machine, unknown to the others) is refused: rolled back at its commit.
#[test]
fn a_copy_refuses_a_change_made_around_the_library() {
    let lib = library();
    let a = lib.machine("a");
    let store = consentfs::store::Store::open(
        &a.replica,
        &consentfs::crypto::keyring::Unlock::KeyFile(lib.t.key.clone()),
    )
    .unwrap();
    let cat = consentfs::catalog::Catalog::open(
        &store.catalog_path(),
        &store.catalog_key(),
        store.audit_key(),
    )
    .unwrap();
    assert!(cat.is_team());
    let r = cat
        .conn()
        .execute("UPDATE persons SET name = 'Someone Else'", []);
    assert!(r.is_err(), "a change around the library was committed");
    drop(cat);
    let persons = a.ok(&["person", "list"]).stdout;
    assert!(
        persons.contains("Anna") && !persons.contains("Someone"),
        "{persons}"
    );
    a.ok(&["audit", "verify"]);
}

/// `migrate`: a store of its own moves into a new library (every object copied to the shared
/// folder and verified there, an object already copied by an earlier run is not copied again,
/// the audit chain goes on), another machine joins it and sees the same, and a copy of the
/// library goes back out into a store of its own that opens and checks clean.
#[test]
fn a_store_moves_into_a_library_and_back_out() {
    // a store of its own, made directly (also in the matrix's team run)
    let dir = tempfile::tempdir().unwrap();
    let t = TestStore {
        store: dir.path().join("store"),
        key: dir.path().join("key"),
        dir,
    };
    t.ok(&["init"]);
    t.write("shoot/a.jpg", b"photo of anna");
    t.write("shoot/hall.jpg", b"empty hall");
    t.ok(&["import", t.path("shoot").to_str().unwrap()]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["link", "a.jpg", "Anna"]);
    t.ok(&["mark", "hall.jpg", "--no-persons"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "print"]);
    t.add_user("root");
    t.ok(&["user", "grant", "root", "--purpose", "print"]);
    let before = common::visible(&t, "root", "print");
    assert_eq!(before, vec!["a.jpg", "hall.jpg"]);
    let entries = t
        .ok(&["audit", "list", "--json"])
        .json()
        .as_array()
        .unwrap()
        .len();
    // an earlier, interrupted run had copied one object already
    let shared = t.path("shared");
    let one = common::known_objects(&t).into_iter().next().unwrap();
    std::fs::create_dir_all(shared.join(&one[..2])).unwrap();
    std::fs::copy(
        t.store.join("objects").join(&one[..2]).join(&one[2..]),
        shared.join(&one[..2]).join(&one[2..]),
    )
    .unwrap();
    let pg = PgServer::start();
    let url = pg.database();
    let objects = format!("file://{}", shared.display());
    let r = t
        .cmd()
        .env("CONSENTFS_REPLICA", t.path("replica-a"))
        .args(["migrate", "--to", &url, "--objects", &objects, "--json"])
        .output()
        .unwrap();
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(m["objects"], 2);
    assert_eq!(
        m["copied"], 1,
        "the object copied before was copied again: {m}"
    );
    // another machine joins the library and sees what the store showed
    let lib = Library { pg, url, t };
    let b = lib.machine("b");
    assert_eq!(b.visible("print"), before);
    b.ok(&["audit", "verify"]);
    let log = b.ok(&["audit", "list", "--json"]).json();
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), entries + 1, "the chain goes on with the move");
    assert!(log.iter().any(|e| e["action"] == "store.migrated"));
    assert_eq!(b.ok(&["cat", "a.jpg"]).raw, b"photo of anna");
    // moving a library's copy in again is refused
    let again = b.run(&["migrate", "--to", &lib.url, "--objects", &objects]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("copy already"), "{}", again.stderr);
    // and back out: a store of its own
    let own = lib.t.path("own-again");
    b.ok(&["migrate", "--to", own.to_str().unwrap()]);
    let mut c = lib.t.cmd();
    c.env("CONSENTFS_STORE", &own)
        .env("CONSENTFS_ANCHOR", lib.t.path("own-again.anchor"));
    let check = c.args(["check"]).output().unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(!own.join("team.url").exists());
    let cat = lib
        .t
        .cmd()
        .env("CONSENTFS_STORE", &own)
        .env("CONSENTFS_ANCHOR", lib.t.path("own-again.anchor"))
        .args(["cat", "a.jpg"])
        .output()
        .unwrap();
    assert_eq!(cat.stdout, b"photo of anna");
}

/// A save through the mount while another machine's command holds the library's write lock is
/// not held up by it: it is queued (as on one machine when the catalog is busy) and recorded
/// once the lock is free.
#[test]
fn a_save_meeting_another_machines_write_is_queued_and_recorded() {
    let lib = library();
    let a = lib.machine("a");
    let ma = a.mount(&[]);
    let mut holder = postgres::Client::connect(&lib.url, postgres::NoTls).unwrap();
    holder
        .batch_execute("BEGIN; SELECT pg_advisory_xact_lock(7165066974071780454)")
        .unwrap();
    let photo = ma.path("root/website/hall.jpg");
    let t0 = Instant::now();
    std::fs::write(&photo, b"hall, repainted").unwrap();
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "the save waited {took:?} for the other machine"
    );
    assert_eq!(std::fs::read(&photo).unwrap(), b"hall, repainted");
    holder.batch_execute("ROLLBACK").unwrap();
    let (recorded, _) = wait_for(Duration::from_secs(20), || {
        a.run(&["cat", "hall.jpg"]).raw == b"hall, repainted"
    });
    assert!(
        recorded,
        "the queued save was not recorded: {}",
        ma.log_text()
    );
}

/// The first release with team libraries (catalog format 16).
const FIRST_TEAM_FORMAT: i64 = 16;

/// A library made by an older release is upgraded by the first machine that runs a newer one:
/// an upgrade killed before it is published changes nothing; once published, a mount still
/// running the old release stops serving photos (it cannot read the new format) and its
/// commands are refused with what to do, while the newer release on every machine takes the
/// library as the upgrade left it, with every change made before and after it.
#[test]
fn a_library_is_upgraded_by_the_first_machine_that_runs_a_newer_release() {
    let old = Some(FIRST_TEAM_FORMAT);
    let lib = library_of(old);
    let (a_old, b_old) = (lib.machine_of("a", old), lib.machine_of("b", old));
    b_old.ok(&["person", "list"]);
    let mb = b_old.mount(&["--lease", "1"]);
    let hall = mb.path("root/website/hall.jpg");
    assert_eq!(
        std::fs::read(mb.path("root/website/a.jpg")).unwrap(),
        b"photo of anna"
    );
    // a change by the old release that b has not seen yet when a upgrades
    a_old.ok(&["person", "add", "Bram"]);
    let (a, b) = (lib.machine("a"), lib.machine("b"));
    let r = a
        .cmd()
        .env("CONSENTFS_FAULT", "die-before-format")
        .args(["person", "list"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(137), "the fault did not fire");
    // killed before publishing: the old release goes on as before
    b_old.ok(&["person", "add", "Cor"]);
    assert_eq!(std::fs::read(&hall).unwrap(), b"empty hall");
    let r = a.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    assert!(
        r.stderr.contains("upgrading the team library"),
        "{}",
        r.stderr
    );
    // the old release's mount stops serving, and says why
    let (closed, _) = wait_for(Duration::from_secs(10), || {
        std::fs::read(&hall).is_err_and(|e| e.raw_os_error() == Some(libc::EACCES))
    });
    assert!(closed, "an old release serves on: {}", mb.log_text());
    let (said, _) = wait_for(Duration::from_secs(5), || {
        mb.log_text().contains("upgrade consentfs on this machine")
    });
    assert!(said, "{}", mb.log_text());
    // its commands are refused, and say what to do
    let r = b_old.run(&["person", "list"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("upgrade consentfs"), "{}", r.stderr);
    drop(mb);
    // the new release on b takes the library as it is now: every change, before and after
    assert_eq!(b.visible("website"), vec!["hall.jpg"]);
    let persons = b.ok(&["person", "list", "--json"]).stdout;
    assert!(
        persons.contains("Bram") && persons.contains("Cor"),
        "{persons}"
    );
    b.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    let mb = b.mount(&[]);
    assert_eq!(
        std::fs::read(mb.path("root/website/a.jpg")).unwrap(),
        b"photo of anna"
    );
    assert_eq!(a.visible("website"), vec!["a.jpg", "hall.jpg"]);
    // a machine joining now, and the audit log, one and intact everywhere
    let c = lib.machine("c");
    assert_eq!(c.visible("website"), vec!["a.jpg", "hall.jpg"]);
    let log = |m: &Machine| m.ok(&["audit", "list", "--json"]).stdout;
    assert_eq!(log(&a), log(&b));
    assert_eq!(log(&b), log(&c));
    for m in [&a, &b, &c] {
        m.ok(&["audit", "verify"]);
    }
    // an old release cannot join it either
    let r = lib.machine_of("d", old).run(&["person", "list"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("upgrade consentfs"), "{}", r.stderr);
}
