//! Issue 12 (5): an export or a person report that is killed, or meets a damaged object, never
//! leaves decrypted photos without a record. Each is recorded before its first byte and its
//! outcome after its last; files are written into a private `.NAME.consentfs-partial` folder
//! next to the destination and moved into place when complete; a failure removes what was
//! written; a re-run after a kill replaces the interrupted folder. Real binary, real SIGKILLs.

mod common;

use common::{collect_files, TestStore};
use rand::{Rng, RngCore, SeedableRng};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PHOTOS: usize = 36;

/// Anna on `PHOTOS` photos of 256 KiB (random, so they are not mistaken for each other),
/// consenting to the website; a web user who may read the website purpose.
fn store() -> TestStore {
    let t = TestStore::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for i in 0..PHOTOS {
        let mut bytes = vec![0u8; 256 << 10];
        rng.fill_bytes(&mut bytes);
        t.write(&format!("shoot/p{i:02}.jpg"), &bytes);
    }
    t.ok(&["import", t.path("shoot").to_str().unwrap()]);
    t.ok(&["person", "add", "Anna de Vries"]);
    for i in 0..PHOTOS {
        t.ok(&["link", &format!("p{i:02}.jpg"), "Anna de Vries"]);
    }
    t.ok(&["consent", "grant", "Anna de Vries", "--purpose", "website"]);
    t.add_user("web");
    t.ok(&["user", "grant", "web", "--purpose", "website"]);
    t
}

fn partial_of(dest: &Path) -> PathBuf {
    dest.parent().unwrap().join(format!(
        ".{}.consentfs-partial",
        dest.file_name().unwrap().to_str().unwrap()
    ))
}

fn export_args(dest: &Path) -> Vec<String> {
    ["export", "--user", "web", "--purpose", "website"]
        .iter()
        .map(|s| s.to_string())
        .chain([dest.to_str().unwrap().to_string()])
        .collect()
}

fn report_args(dest: &Path) -> Vec<String> {
    vec![
        "person".into(),
        "report".into(),
        "Anna de Vries".into(),
        dest.to_str().unwrap().into(),
    ]
}

fn audit(t: &TestStore) -> Vec<serde_json::Value> {
    t.ok(&["--json", "audit", "list"])
        .json()
        .as_array()
        .unwrap()
        .clone()
}

fn count(entries: &[serde_json::Value], action: &str) -> usize {
    entries.iter().filter(|e| e["action"] == action).count()
}

/// Run `args`, SIGKILL it after `delay`; whether it had already exited.
fn kill_after(t: &TestStore, args: &[String], delay: Duration) -> bool {
    let mut child = t
        .cmd()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let done = child.try_wait().unwrap().is_some();
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    done
}

/// Every file below `dir` (relative, sorted).
fn files_below(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    collect_files(dir, &mut files);
    let mut out: Vec<String> = files
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// Decrypted photos anywhere in the test's folder other than the originals, the store and
/// the places named in `allowed` (relative paths below the test folder).
fn plaintext_outside(t: &TestStore, allowed: &[&Path]) -> Vec<String> {
    let originals: std::collections::HashSet<Vec<u8>> = files_below(&t.path("shoot"))
        .iter()
        .map(|f| std::fs::read(t.path("shoot").join(f)).unwrap())
        .collect();
    let mut stray = Vec::new();
    for f in files_below(t.dir.path()) {
        let p = t.dir.path().join(&f);
        if p.starts_with(t.path("shoot"))
            || p.starts_with(&t.store)
            || allowed.iter().any(|a| p.starts_with(a))
        {
            continue;
        }
        if std::fs::read(&p).is_ok_and(|b| originals.contains(&b)) {
            stray.push(f);
        }
    }
    stray
}

/// A folder holding the whole export or report (every photo, whole), its index or manifest
/// included.
fn assert_complete(t: &TestStore, dir: &Path, report: bool, what: &str) {
    let files = files_below(dir);
    let photos: Vec<&String> = files.iter().filter(|f| f.ends_with(".jpg")).collect();
    assert_eq!(photos.len(), PHOTOS, "{what}: {files:?}");
    for f in &photos {
        let name = f.rsplit('/').next().unwrap();
        let original = name.split_once('-').map_or(name, |(_, n)| n);
        let original = if report { original } else { name };
        assert_eq!(
            std::fs::read(dir.join(f)).unwrap(),
            std::fs::read(t.path("shoot").join(original)).unwrap(),
            "{what}: {f} is not the whole photo"
        );
    }
    let index = if report {
        "index.json"
    } else {
        "manifest.json"
    };
    assert!(files.iter().any(|f| f == index), "{what}: {files:?}");
    // (a run killed between moving the folder into place and removing its marker leaves
    // the marker: the callers check it)
    assert!(
        !files.iter().any(|f| f.contains(".consentfs-tmp-")),
        "{what}: leftovers in a complete folder: {files:?}"
    );
}

/// The kill sweep shared by export and report: kill at random delays (over the time a whole
/// run takes), check what a kill may
/// leave, re-run, check the re-run completes and records it.
fn sweep(report: bool) {
    let t = store();
    let (started, done, failed) = if report {
        ("report.started", "person.report", "report.failed")
    } else {
        ("export.started", "export", "export.failed")
    };
    let args = |d: &Path| {
        if report {
            report_args(d)
        } else {
            export_args(d)
        }
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(if report { 12 } else { 5 });
    // how long a whole run takes on this machine now: the kills are spread over it (a fixed
    // range missed the writing phase on a loaded machine)
    let probe = t.path("probe");
    let clock = std::time::Instant::now();
    t.ok(&args(&probe).iter().map(String::as_str).collect::<Vec<_>>());
    let whole = clock.elapsed().as_millis().max(50) as u64;
    std::fs::remove_dir_all(&probe).unwrap();
    let mut mid_write = 0;
    for round in 0..10 {
        let dest = t.path(&format!("out-{round}"));
        let partial = partial_of(&dest);
        let before = audit(&t);
        let delay = Duration::from_millis(rng.gen_range(10..whole));
        let finished = kill_after(&t, &args(&dest), delay);
        let what = format!("round {round}, killed after {delay:?} (finished: {finished})");
        let after = audit(&t);
        // anything but the marker (written before the start record, and naming it) is content
        let wrote = [&dest, &partial].iter().any(|d| {
            files_below(d)
                .iter()
                .any(|f| !f.ends_with(".consentfs-partial"))
        });
        if wrote {
            // recorded before the first byte
            assert_eq!(
                count(&after, started),
                count(&before, started) + 1,
                "{what}: files were written without a start record"
            );
        }
        if partial.exists() {
            if wrote {
                mid_write += 1;
            }
            let mode = std::fs::metadata(&partial).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{what}: the partial folder is not private");
            assert!(
                !dest.exists(),
                "{what}: both the partial folder and the destination"
            );
        }
        if dest.exists() {
            // moved into place only when complete
            assert_complete(&t, &dest, report, &what);
        }
        // decrypted photos exist nowhere else
        assert_eq!(
            plaintext_outside(&t, &[&dest, &partial]),
            Vec::<String>::new(),
            "{what}"
        );
        assert_eq!(t.run(&["audit", "verify"]).code, 0, "{what}");

        let marked = dest.join(".consentfs-partial").exists();
        if count(&after, done) > count(&before, done) && !marked {
            // it finished before the kill: the same command again is refused, nothing changes
            let r = t.run(&args(&dest).iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(r.code, 2, "{what}: {}{}", r.stdout, r.stderr);
            assert!(r.stderr.contains("is not empty"), "{what}: {}", r.stderr);
            assert_complete(&t, &dest, report, &what);
            std::fs::remove_dir_all(&dest).unwrap();
            continue;
        }
        // the same command again completes, whatever the kill left
        let r = t.run(&args(&dest).iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(
            r.code, 0,
            "{what}: the re-run failed: {}{}",
            r.stdout, r.stderr
        );
        assert_complete(&t, &dest, report, &format!("{what}, re-run"));
        assert!(!partial.exists(), "{what}: the partial folder stayed");
        assert!(
            !dest.join(".consentfs-partial").exists(),
            "{what}: the marker stayed"
        );
        let end = audit(&t);
        assert_eq!(
            count(&end, done),
            count(&after, done) + 1,
            "{what}: the re-run's completion is not recorded"
        );
        // every start has an outcome now: the killed run's was recorded by the re-run
        assert_eq!(
            count(&end, started),
            count(&end, done) + count(&end, failed),
            "{what}: a start without an outcome after the re-run: {end:#?}"
        );
        if !report {
            let v = t.run(&["export", "verify", dest.to_str().unwrap()]);
            assert_eq!(v.code, 0, "{what}: {}{}", v.stdout, v.stderr);
        }
        assert_eq!(t.run(&["audit", "verify"]).code, 0, "{what}");
        // the next round's check for stray plaintext starts from a clean folder
        std::fs::remove_dir_all(&dest).unwrap();
    }
    assert!(
        mid_write >= 3,
        "only {mid_write} kills landed while files were being written: not a test of a kill mid-export"
    );
}

#[test]
fn a_killed_export_leaves_a_record_and_no_stray_plaintext_and_a_rerun_completes() {
    sweep(false);
}

#[test]
fn a_killed_person_report_leaves_a_record_and_no_stray_plaintext_and_a_rerun_completes() {
    sweep(true);
}

/// Flip one byte in the middle of one photo's object file.
fn damage_one_object(t: &TestStore) {
    let mut objects = Vec::new();
    collect_files(&t.objects_dir(), &mut objects);
    objects.sort();
    let victim = objects
        .iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 200 << 10)
        .expect("a photo's object");
    let mut bytes = std::fs::read(victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(victim, bytes).unwrap();
}

fn damaged(report: bool) {
    let t = store();
    damage_one_object(&t);
    let dest = t.path("out");
    let args = if report {
        report_args(&dest)
    } else {
        export_args(&dest)
    };
    let r = t.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("integrity error"),
        "the message says what is wrong: {}",
        r.stderr
    );
    // nothing left behind
    assert!(!dest.exists(), "{:?}", files_below(&dest));
    assert!(!partial_of(&dest).exists());
    assert_eq!(plaintext_outside(&t, &[]), Vec::<String>::new());
    // recorded: started, then failed with the reason
    let entries = audit(&t);
    let (started, failed) = if report {
        ("report.started", "report.failed")
    } else {
        ("export.started", "export.failed")
    };
    assert_eq!(count(&entries, started), 1, "{entries:#?}");
    let f = entries
        .iter()
        .find(|e| e["action"] == failed)
        .unwrap_or_else(|| panic!("no {failed} entry: {entries:#?}"));
    assert!(
        f["detail"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("integrity error")),
        "{f}"
    );
    assert_eq!(t.run(&["audit", "verify"]).code, 0);
}

#[test]
fn an_export_that_meets_a_damaged_object_removes_what_it_wrote_and_records_the_failure() {
    damaged(false);
}

#[test]
fn a_person_report_that_meets_a_damaged_object_removes_what_it_wrote_and_records_the_failure() {
    damaged(true);
}

/// Start `args` and SIGKILL it as soon as its partial folder holds a photo.
fn kill_mid_write(t: &TestStore, args: &[String], dest: &Path) {
    let mut child = t
        .cmd()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let partial = partial_of(dest);
    let start = std::time::Instant::now();
    while !files_below(&partial).iter().any(|f| f.ends_with(".jpg")) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "it finished before a kill"
        );
        assert!(start.elapsed().as_secs() < 60, "no photo was ever written");
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_interrupted_export_shows_in_the_persons_reports_until_a_rerun_records_its_end() {
    let t = store();
    let dest = t.path("out");
    kill_mid_write(&t, &export_args(&dest), &dest);
    // where Anna's photos may have gone: the interrupted export is listed as such
    let rows = t
        .ok(&["--json", "audit", "report", "--person", "Anna de Vries"])
        .json();
    let exported: Vec<&serde_json::Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "export")
        .collect();
    assert_eq!(exported.len(), PHOTOS, "{rows:#}");
    assert!(
        exported.iter().all(|r| r["outcome"] == "interrupted"),
        "{rows:#}"
    );
    let report = t.path("report");
    t.ok(&[
        "person",
        "report",
        "Anna de Vries",
        report.to_str().unwrap(),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("index.json")).unwrap()).unwrap();
    let items = index["exports"].as_array().unwrap();
    assert_eq!(items.len(), PHOTOS);
    assert!(
        items.iter().all(|e| e["outcome"] == "interrupted"),
        "{index:#}"
    );
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("interrupted"));

    // the re-run removes the partial folder, records the first run as failed, completes
    t.ok(&export_args(&dest)
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    let rows = t
        .ok(&["--json", "audit", "report", "--person", "Anna de Vries"])
        .json();
    let outcomes: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "export")
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "failed").count(), PHOTOS);
    assert_eq!(
        outcomes.iter().filter(|o| **o == "completed").count(),
        PHOTOS
    );
    let entries = audit(&t);
    let failed = entries
        .iter()
        .find(|e| e["action"] == "export.failed")
        .expect("the interrupted run's end");
    assert!(
        failed["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("interrupted"),
        "{failed}"
    );
}

#[test]
fn a_folder_under_the_partial_name_that_is_not_ours_is_never_deleted() {
    let t = store();
    let dest = t.path("out");
    let partial = partial_of(&dest);
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("notes.txt"), b"someone's notes").unwrap();
    for args in [export_args(&dest), report_args(&dest)] {
        let r = t.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("not left by an interrupted consentfs"),
            "{}",
            r.stderr
        );
        assert_eq!(
            std::fs::read(partial.join("notes.txt")).unwrap(),
            b"someone's notes"
        );
        assert!(!dest.exists());
    }
    // nothing was exported, so nothing was recorded
    let entries = audit(&t);
    assert_eq!(count(&entries, "export.started"), 0);
    assert_eq!(count(&entries, "report.started"), 0);
}

#[test]
fn a_killed_sync_is_marked_unfinished_and_the_next_sync_completes_it() {
    let t = store();
    let dest = t.path("out");
    // an earlier export of half the photos (the rest have no consent yet)
    t.ok(&[
        "consent",
        "withdraw",
        "Anna de Vries",
        "--purpose",
        "website",
    ]);
    for i in 0..PHOTOS / 2 {
        t.ok(&["unlink", &format!("p{i:02}.jpg"), "Anna de Vries"]);
        t.ok(&["mark", &format!("p{i:02}.jpg"), "--no-persons"]);
    }
    t.ok(&export_args(&dest)
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    t.ok(&["consent", "grant", "Anna de Vries", "--purpose", "website"]);
    // the sync adds the other half in place; killed while it writes
    let mut args = export_args(&dest);
    args.push("--sync".into());
    let mut child = t
        .cmd()
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let marker = dest.join(".consentfs-partial");
    while !(marker.exists()
        && files_below(&dest)
            .iter()
            .filter(|f| f.ends_with(".jpg"))
            .count()
            > PHOTOS / 2)
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sync finished first"
        );
        assert!(start.elapsed().as_secs() < 60, "the sync never wrote");
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
    // a half-updated export never looks complete
    let v = t.run(&["export", "verify", dest.to_str().unwrap()]);
    assert_eq!(v.code, 1, "{}", v.stdout);
    assert!(v.stdout.contains("was interrupted"), "{}", v.stdout);
    assert_eq!(t.run(&["audit", "verify"]).code, 0);
    // the same command again finishes it
    t.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_complete(&t, &dest, false, "after the second --sync");
    let v = t.run(&["export", "verify", dest.to_str().unwrap()]);
    assert_eq!(v.code, 0, "{}", v.stdout);
    let entries = audit(&t);
    assert_eq!(
        count(&entries, "export.started"),
        count(&entries, "export") + count(&entries, "export.failed"),
        "{entries:#?}"
    );
}

#[test]
fn a_second_run_into_the_same_folder_leaves_a_running_export_alone() {
    let t = store();
    let dest = t.path("out");
    let child = t
        .cmd()
        .args(export_args(&dest))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let partial = partial_of(&dest);
    let (seen, _) = common::mount::wait_for(Duration::from_secs(60), || {
        files_below(&partial).iter().any(|f| f.ends_with(".jpg"))
    });
    // held mid-export: its partial folder is not an interrupted run's
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    assert!(seen, "the export never wrote a photo");
    for args in [export_args(&dest), report_args(&dest)] {
        let r = t.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("is writing") && r.stderr.contains("right now"),
            "{}",
            r.stderr
        );
    }
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_complete(&t, &dest, false, "the first export");
    let entries = audit(&t);
    assert_eq!(count(&entries, "export.started"), 1);
    assert_eq!(count(&entries, "export"), 1);
    assert_eq!(count(&entries, "export.failed"), 0);
}
