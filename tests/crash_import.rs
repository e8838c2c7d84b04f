//! Issue 12 (items 2 and 9): an import never holds the catalog for long, and a killed import
//! leaves nothing behind that the next command does not clean up.
//!
//! - a SIGKILL at any moment leaves a prefix of the files imported, no orphan object once any
//!   command ran, an intact audit chain, and a re-run completes;
//! - a withdrawal and an erasure get through while a long import runs;
//! - a command that waits for the catalog says who holds it;
//! - a mount started during an import does not take the import's objects for orphans.

mod common;

use common::mount::{wait_for, Mount};
use common::TestStore;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// `n` small files with distinct contents in a new folder `name`; returns the folder.
fn photos(t: &TestStore, name: &str, n: usize) -> PathBuf {
    let dir = t.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..n {
        std::fs::write(dir.join(format!("img{i:05}.jpg")), content(name, i)).unwrap();
    }
    dir
}

fn content(name: &str, i: usize) -> Vec<u8> {
    format!("{name} photo number {i}\n").into_bytes()
}

/// The object files on disk (hex ids; unfinished `.tmp` files keep their suffix).
fn on_disk(t: &TestStore) -> HashSet<String> {
    let mut files = Vec::new();
    common::collect_files(&t.objects_dir(), &mut files);
    files
        .iter()
        .map(|p| {
            let dir = p.parent().unwrap().file_name().unwrap().to_string_lossy();
            format!("{dir}{}", p.file_name().unwrap().to_string_lossy())
        })
        .collect()
}

/// The objects the catalog knows.
fn known(t: &TestStore) -> HashSet<String> {
    common::known_objects(t)
}

/// The names of the assets in `collection`.
fn names_in(t: &TestStore, collection: &str) -> Vec<String> {
    let (_s, cat) = t.open_catalog();
    let mut names: Vec<String> = cat
        .conn()
        .prepare("SELECT name FROM assets WHERE collection = ?1")
        .unwrap()
        .query_map([collection], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    names.sort();
    names
}

fn count_assets(t: &TestStore) -> i64 {
    let (_s, cat) = t.open_catalog();
    let n = cat
        .conn()
        .query_row("SELECT count(*) FROM assets", [], |r| r.get(0))
        .unwrap();
    n
}

fn spawn_import(t: &TestStore, collection: &str, dir: &Path) -> Child {
    t.cmd()
        .args(["import", "--collection", collection])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start consentfs import")
}

fn journals(t: &TestStore) -> Vec<PathBuf> {
    let mut files = Vec::new();
    common::collect_files(&t.store.join("intents"), &mut files);
    files
}

fn audit_actions(t: &TestStore) -> Vec<String> {
    t.ok(&["audit", "list", "--json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

/// SIGKILL an import at several moments. After each kill the next command (here `audit
/// verify`) removes the objects it wrote but never recorded: the object files on disk are
/// exactly those the catalog knows, the audit chain verifies, the files imported so far are a
/// prefix of the plan; and the same import run again completes, every file readable.
#[test]
fn a_killed_import_leaves_no_orphans_after_the_next_command_and_a_rerun_completes() {
    let t = TestStore::new();
    const N: usize = 800;
    let src = photos(&t, "shoot", N);
    let all: Vec<String> = (0..N).map(|i| format!("img{i:05}.jpg")).collect();
    let mut orphans_left_by_kills = 0;
    // from before the first batch to (on a fast machine) after the last one
    for delay_ms in [50u64, 150, 250, 350, 450, 600, 800, 1000, 1300] {
        let mut child = spawn_import(&t, "shoot", &src);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let left = on_disk(&t);
        orphans_left_by_kills += left.difference(&known(&t)).count();
        // the next command, whatever it is, cleans up
        let verify = t.run(&["audit", "verify"]);
        assert_eq!(
            verify.code, 0,
            "after a kill at {delay_ms} ms: {}{}",
            verify.stdout, verify.stderr
        );
        let disk = on_disk(&t);
        let cat = known(&t);
        assert_eq!(
            disk,
            cat,
            "after a kill at {delay_ms} ms, objects on disk but not in the catalog: {:?}; in the catalog but not on disk: {:?}",
            disk.difference(&cat).collect::<Vec<_>>(),
            cat.difference(&disk).collect::<Vec<_>>()
        );
        assert!(
            journals(&t).is_empty(),
            "a dead import's journal stayed: {:?}",
            journals(&t)
        );
        let imported = names_in(&t, "shoot");
        assert_eq!(
            imported,
            all[..imported.len()],
            "after a kill at {delay_ms} ms the imported files are not a prefix of the plan"
        );
        eprintln!(
            "kill at {delay_ms} ms: {} of {N} files imported",
            imported.len()
        );
    }
    eprintln!("object files the kills left unrecorded (removed by the next command): {orphans_left_by_kills}");

    // the same command completes the import: what is there already is a duplicate
    let r = t.ok(&[
        "--json",
        "import",
        "--collection",
        "shoot",
        src.to_str().unwrap(),
    ]);
    let outcomes = r.json();
    let outcomes = outcomes.as_array().unwrap();
    assert_eq!(outcomes.len(), N);
    let mut assets = HashSet::new();
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o["path"], format!("shoot/img{i:05}.jpg"));
        let status = o["status"].as_str().unwrap();
        assert!(status == "imported" || status == "duplicate", "{o}");
        assets.insert(o["asset"].as_i64().unwrap());
    }
    assert_eq!(assets.len(), N, "one asset per file, none twice");
    assert_eq!(names_in(&t, "shoot"), all);
    assert_eq!(on_disk(&t), known(&t));
    t.ok(&["audit", "verify"]);
    // every file decrypts to its bytes (a sample: each cat is a process)
    for (i, o) in outcomes.iter().enumerate().step_by(41) {
        let id = o["asset"].as_i64().unwrap().to_string();
        let out = t.ok(&["cat", &id]);
        assert_eq!(out.raw, content("shoot", i), "asset {id}");
    }
}

/// Set up Anna (consent for the website, on a photo) and Bert (to be erased).
fn anna_and_bert(t: &TestStore) {
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["person", "add", "Bert"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    let p = t.write("anna.jpg", b"anna's photo");
    t.ok(&["import", p.to_str().unwrap()]);
    t.ok(&["link", "1", "Anna"]);
}

/// Wait until a running import has recorded its first batch (it is then encrypting files
/// outside any transaction most of the time).
fn wait_first_batch(t: &TestStore, before: i64) {
    let (grew, took) = wait_for(Duration::from_secs(30), || count_assets(t) > before);
    eprintln!("first batch of the import recorded after {took:?}: {grew}");
}

/// A withdrawal and an erasure while a long import runs complete at once and are recorded
/// while the import is still running (before: they waited for the whole import and failed
/// after 10 s with "database is locked").
#[test]
fn withdraw_and_erase_get_through_while_a_long_import_runs() {
    let t = TestStore::new();
    anna_and_bert(&t);
    let src = photos(&t, "long", 1200);
    let before = count_assets(&t);
    let mut import = spawn_import(&t, "long", &src);
    wait_first_batch(&t, before);

    let start = Instant::now();
    let w = t.run(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    let withdraw_took = start.elapsed();
    let start = Instant::now();
    let e = t.run(&["person", "erase", "Bert", "--yes"]);
    let erase_took = start.elapsed();
    let still_running = import.try_wait().unwrap().is_none();
    eprintln!(
        "withdraw took {withdraw_took:?}, erase took {erase_took:?} while the import ran (still running after both: {still_running})"
    );
    assert_eq!(w.code, 0, "withdraw: {}{}", w.stdout, w.stderr);
    assert_eq!(e.code, 0, "erase: {}{}", e.stdout, e.stderr);
    let actions = audit_actions(&t);
    assert!(
        actions.iter().any(|a| a == "consent.withdraw"),
        "{actions:?}"
    );
    assert!(actions.iter().any(|a| a == "person.erase"), "{actions:?}");
    assert!(
        still_running,
        "the import ended before the withdrawal and the erasure were recorded: they waited for it"
    );
    let status = import.wait().unwrap();
    assert!(status.success(), "the import failed");
    assert_eq!(names_in(&t, "long").len(), 1200);
    assert_eq!(on_disk(&t), known(&t));
    t.ok(&["audit", "verify"]);
}

/// A command that has to wait for the catalog says for whom, instead of failing after 10 s
/// with "database is locked"; once the holder lets go, it completes.
#[test]
fn a_command_waiting_for_the_catalog_names_the_holder() {
    let t = TestStore::new();
    anna_and_bert(&t);
    // this test process is a registered consentfs process holding the write lock
    let registration = consentfs::store::running::register(&t.store, "test-holder").unwrap();
    let (_s, mut cat) = t.open_catalog();
    let tx = cat.begin("test", chrono::Utc::now()).unwrap();
    let mut withdraw = t
        .cmd()
        .args(["consent", "withdraw", "Anna", "--purpose", "website"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // waits past the connection's old 10 s limit, saying why
    std::thread::sleep(Duration::from_secs(12));
    assert!(
        withdraw.try_wait().unwrap().is_none(),
        "the withdrawal gave up while the catalog was held"
    );
    drop(tx);
    let out = withdraw.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(out.status.success(), "withdraw failed: {stderr}");
    let pid = std::process::id();
    assert!(
        stderr.contains(&format!(
            "waiting for the catalog, in use by: consentfs test-holder (pid {pid})"
        )),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("waiting for the catalog").count(),
        1,
        "said once: {stderr}"
    );
    assert!(audit_actions(&t).iter().any(|a| a == "consent.withdraw"));
    drop(registration);
    // no registration stays behind once the commands ended
    let mut left = Vec::new();
    common::collect_files(&t.store.join("running"), &mut left);
    assert!(left.is_empty(), "{left:?}");
}

/// A mount started while an import writes objects it has not recorded yet leaves them alone
/// (its start-up sweep used to remove every object the catalog did not know).
#[test]
fn a_mount_started_during_an_import_keeps_the_imports_objects() {
    let t = TestStore::new();
    let src = photos(&t, "during", 600);
    let before = count_assets(&t);
    let mut import = spawn_import(&t, "during", &src);
    wait_first_batch(&t, before);
    let m = Mount::start(&t);
    let still_running = import.try_wait().unwrap().is_none();
    eprintln!("mount up while the import ran: {still_running}");
    let out = import.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(m);
    assert_eq!(names_in(&t, "during").len(), 600);
    let disk = on_disk(&t);
    let missing: Vec<_> = known(&t).difference(&disk).cloned().collect();
    assert!(
        missing.is_empty(),
        "the mount removed {} recorded object(s) of the import",
        missing.len()
    );
    t.ok(&["audit", "verify"]);
    let r = t.ok(&[
        "--json",
        "import",
        "--collection",
        "during",
        src.to_str().unwrap(),
    ]);
    for (i, o) in r.json().as_array().unwrap().iter().enumerate().step_by(37) {
        assert_eq!(o["status"], "duplicate");
        let id = o["asset"].as_i64().unwrap().to_string();
        assert_eq!(t.ok(&["cat", &id]).raw, content("during", i), "asset {id}");
    }
}

/// Each batch checks again what the plan checked: a path another import takes with other bytes
/// while this one runs stops it there (never overwritten, never twice), its recorded batches
/// stay, it says so, and it leaves no unrecorded object behind.
#[test]
fn a_path_taken_during_an_import_stops_it_there_and_says_what_was_recorded() {
    let t = TestStore::new();
    const N: usize = 600;
    let src = photos(&t, "race", N);
    let before = count_assets(&t);
    let import = spawn_import(&t, "race", &src);
    wait_first_batch(&t, before);
    // another import takes the last file's path with other bytes
    let other = t.write("other/img00599.jpg", b"someone else's photo");
    let r = t.run(&["import", "--collection", "race", other.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let out = import.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("'race/img00599.jpg' already exists in the store")
            && stderr.contains("the same command imports the rest"),
        "{stderr}"
    );
    assert!(!stderr.contains("nothing was imported"), "{stderr}");
    // the batches before the one with the taken path stay, each file whole
    let names = names_in(&t, "race");
    let recorded = names.len() - 1;
    assert!(
        stderr.contains(&format!(
            "The first {recorded} file(s) were recorded ({recorded} imported)"
        )),
        "{stderr}"
    );
    let all: Vec<String> = (0..N).map(|i| format!("img{i:05}.jpg")).collect();
    assert_eq!(names[..recorded], all[..recorded]);
    assert_eq!(names[recorded], "img00599.jpg");
    assert_eq!(on_disk(&t), known(&t));
    assert!(journals(&t).is_empty());
    let id = {
        let (_s, cat) = t.open_catalog();
        cat.conn()
            .query_row(
                "SELECT id FROM assets WHERE collection = 'race' AND name = 'img00599.jpg'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            .to_string()
    };
    assert_eq!(t.ok(&["cat", &id]).raw, b"someone else's photo");
    t.ok(&["audit", "verify"]);
}
