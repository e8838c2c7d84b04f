//! What consentfs reads from the user's folders and what it writes as plaintext, attacked as
//! a local user would: exports and person reports another OS user tries to read under a lax
//! umask, destinations owned by someone else, links, pipes and devices in a shoot folder,
//! control characters in names reaching the officer's terminal, a FIFO or a huge file planted
//! as `manifest.json`, and someone else's draft named in `ls`/`why`. Real binary, real OS
//! users.

mod common;

use common::mount::{os_user, run_as};
use common::{Run, TestStore, BIN};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The other local user who tries to read what we wrote.
const OTHER: &str = "cfshygother";

/// `consentfs ARGS` run under `umask MASK`, the way a user's shell runs it.
fn run_umask(t: &TestStore, mask: &str, args: &[&str]) -> Run {
    let mut c = Command::new("sh");
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CONSENTFS_STORE", &t.store)
        .env("CONSENTFS_KEY_FILE", &t.key)
        .arg("-c")
        .arg(format!("umask {mask}; exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(args);
    finish_within(c, Duration::from_secs(60))
}

/// Run `c` and give up (killing it) when it takes longer than `limit`: a hang is a failure.
fn finish_within(mut c: Command, limit: Duration) -> Run {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{c:?} hung for {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = child.wait_with_output().unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        raw: o.stdout,
    }
}

/// `consentfs ARGS` that must not take longer than 20 s.
fn prompt(t: &TestStore, args: &[&str]) -> Run {
    let mut c = t.cmd();
    c.args(args);
    finish_within(c, Duration::from_secs(20))
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A store with a photo nobody is on (visible to `web` in website) and one of Anna (with her
/// consent for website), in a folder other users may pass through, as /home or /srv are.
fn store() -> TestStore {
    let t = TestStore::new();
    std::fs::set_permissions(t.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    t.write("shoot/hall.jpg", b"the empty hall");
    t.write("shoot/anna.jpg", b"anna's portrait");
    t.ok(&["import", "--collection", "events", s(&t.path("shoot"))]);
    t.ok(&["mark", "events/hall.jpg", "--no-persons"]);
    t.ok(&["person", "add", "Anna de Vries", "--born", "1990-03-01"]);
    t.ok(&["link", "events/anna.jpg", "Anna de Vries"]);
    t.ok(&["consent", "grant", "Anna de Vries", "--purpose", "website"]);
    t.add_user("web");
    t.ok(&["user", "grant", "web", "--purpose", "website"]);
    t
}

/// `script` as the other OS user: (succeeded, stdout).
fn as_other(script: &str) -> (bool, String) {
    let (uid, gid) = os_user(OTHER);
    let o = run_as(uid, gid, script);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

fn export_args<'a>(dest: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["export", "--user", "web", "--purpose", "website", s(dest)];
    a.extend_from_slice(extra);
    a
}

#[test]
fn an_export_and_a_person_report_are_private_whatever_the_umask() {
    let t = store();
    // a destination whose parent does not exist yet: both are made
    let dest = t.path("out/website");
    let r = run_umask(&t, "022", &export_args(&dest, &[]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(mode(&dest), 0o700);
    assert_eq!(
        mode(&t.path("out")) & 0o077,
        0,
        "the parent made on the way"
    );
    assert_eq!(mode(&dest.join("events")), 0o700);
    assert_eq!(mode(&dest.join("events/hall.jpg")), 0o600);
    assert_eq!(mode(&dest.join("events/anna.jpg")), 0o600);
    assert_eq!(mode(&dest.join("manifest.json")), 0o600);
    for f in ["manifest.json", "events/anna.jpg", "events/hall.jpg"] {
        let (ok, out) = as_other(&format!("cat '{}'", dest.join(f).display()));
        assert!(!ok && out.is_empty(), "another user read {f}: {out}");
    }
    let (ok, out) = as_other(&format!("ls '{}'", dest.display()));
    assert!(
        !ok && out.is_empty(),
        "another user listed the export: {out}"
    );

    // an existing empty folder of ours, made 0755 by the umask, becomes private too
    let mine = t.path("out/existing");
    std::fs::create_dir(&mine).unwrap();
    std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = run_umask(&t, "022", &export_args(&mine, &[]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(mode(&mine), 0o700);

    // the answer to an access request: names, birth date and photos
    let report = t.path("report");
    let r = run_umask(
        &t,
        "022",
        &["person", "report", "Anna de Vries", s(&report)],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(mode(&report), 0o700);
    assert_eq!(mode(&report.join("index.json")), 0o600);
    assert_eq!(mode(&report.join("index.html")), 0o600);
    assert_eq!(mode(&report.join("photos")), 0o700);
    let photos: Vec<_> = std::fs::read_dir(report.join("photos"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(photos.len(), 1);
    assert_eq!(mode(&photos[0]), 0o600);
    for f in [
        report.join("index.json"),
        report.join("index.html"),
        photos[0].clone(),
    ] {
        let (ok, out) = as_other(&format!("cat '{}'", f.display()));
        assert!(
            !ok && out.is_empty(),
            "another user read {}: {out}",
            f.display()
        );
    }
}

#[test]
fn an_explicit_mode_is_used_kept_by_sync_and_bounded() {
    let t = store();
    let dest = t.path("www");
    // asked for: readable by everyone (a web server), even under a strict umask
    let r = run_umask(&t, "077", &export_args(&dest, &["--mode", "0644"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(mode(&dest), 0o755);
    assert_eq!(mode(&dest.join("events")), 0o755);
    assert_eq!(mode(&dest.join("events/hall.jpg")), 0o644);
    assert_eq!(mode(&dest.join("manifest.json")), 0o644);
    let (ok, out) = as_other(&format!("cat '{}'", dest.join("events/hall.jpg").display()));
    assert!(ok && out == "the empty hall", "{out}");
    // --sync keeps the mode it was made with and puts drifted permissions back
    std::fs::set_permissions(
        dest.join("events/hall.jpg"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(dest.join("events"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let r = run_umask(&t, "077", &export_args(&dest, &["--sync"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(mode(&dest.join("events/hall.jpg")), 0o644);
    assert_eq!(mode(&dest.join("events")), 0o755);
    assert_eq!(t.run(&["export", "verify", s(&dest)]).code, 0);
    // and a new --mode changes every file, also the unchanged ones
    let r = run_umask(&t, "022", &export_args(&dest, &["--sync", "--mode", "600"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(mode(&dest), 0o700);
    assert_eq!(mode(&dest.join("events")), 0o700);
    assert_eq!(mode(&dest.join("events/hall.jpg")), 0o600);
    assert_eq!(mode(&dest.join("events/anna.jpg")), 0o600);
    assert_eq!(mode(&dest.join("manifest.json")), 0o600);
    assert_eq!(t.run(&["export", "verify", s(&dest)]).code, 0);

    // what others could write to, executable or special modes are refused before anything
    let never = t.path("never");
    for bad in [
        "0666",
        "0777",
        "0700",
        "0755",
        "4644",
        "0400",
        "abc",
        "",
        "99999999999",
    ] {
        t.fails(&export_args(&never, &["--mode", bad]), "--mode");
        assert!(!never.exists(), "--mode {bad} created the destination");
    }
}

#[test]
fn a_destination_owned_by_another_user_is_refused() {
    let t = store();
    let (uid, gid) = os_user(OTHER);
    let theirs = t.path("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(uid), Some(gid)).unwrap();
    for extra in [&[][..], &["--sync"][..]] {
        let r = t.fails(&export_args(&theirs, extra), "belongs to");
        assert!(r.stderr.contains(OTHER), "names the owner: {}", r.stderr);
    }
    t.fails(
        &["person", "report", "Anna de Vries", s(&theirs)],
        "belongs to",
    );
    assert_eq!(
        std::fs::read_dir(&theirs).unwrap().count(),
        0,
        "nothing written"
    );
    // a link to their folder is no way around it
    std::os::unix::fs::symlink(&theirs, t.path("link")).unwrap();
    t.fails(&export_args(&t.path("link"), &[]), "belongs to");
    assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 0);
}

#[test]
fn import_skips_links_and_refuses_pipes_and_devices() {
    let t = TestStore::new();
    let shoot = t.path("shoot");
    t.write("shoot/a.jpg", b"a photo");
    t.write("elsewhere/secret.txt", b"not for the store");
    std::os::unix::fs::symlink("/etc/passwd", shoot.join("passwd")).unwrap();
    std::os::unix::fs::symlink(t.path("elsewhere"), shoot.join("outside")).unwrap();
    std::os::unix::fs::symlink(".", shoot.join("loop")).unwrap();
    std::os::unix::fs::symlink("..", shoot.join("up")).unwrap();
    let r = prompt(&t, &["--json", "import", "--collection", "j", s(&shoot)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let paths: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paths, ["j/a.jpg"], "only the photo; no link followed");
    for l in ["passwd", "outside", "loop", "up"] {
        assert!(
            r.stderr.contains(&format!("shoot/{l}")) && r.stderr.contains("symbolic link"),
            "each skipped link is reported ({l}): {}",
            r.stderr
        );
    }
    // for people, on stdout
    let r = prompt(&t, &["import", "--collection", "h", s(&shoot)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let skipped = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("skipped "))
        .count();
    assert_eq!(skipped, 4, "{}", r.stdout);
    // nothing of /etc/passwd or the folder outside is in the store
    let all = t.ok(&["--json", "audit", "list"]).stdout;
    assert!(!all.contains("passwd") && !all.contains("secret"), "{all}");

    // a link given on the command line is not followed either
    t.fails(&["import", s(&shoot.join("passwd"))], "symbolic link");
    std::os::unix::fs::symlink(&shoot, t.path("shoot-link")).unwrap();
    t.fails(&["import", s(&t.path("shoot-link"))], "symbolic link");

    // a FIFO refuses the import at once (it used to be skipped silently, or waited on)
    t.write("piped/a.jpg", b"another photo");
    nix::unistd::mkfifo(&t.path("piped/pipe.jpg"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let before = t.state();
    for target in [t.path("piped"), t.path("piped/pipe.jpg")] {
        let r = prompt(&t, &["import", "--collection", "p", s(&target)]);
        assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("FIFO"), "{}", r.stderr);
        assert!(r.stderr.contains("nothing was imported"), "{}", r.stderr);
    }
    // a device (made as root) is refused the same way, not read
    t.write("dev/a.jpg", b"a third photo");
    nix::sys::stat::mknod(
        &t.path("dev/null.jpg"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        nix::sys::stat::makedev(1, 3),
    )
    .expect("mknod (tests run as root)");
    let r = prompt(&t, &["import", "--collection", "d", s(&t.path("dev"))]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("character device"), "{}", r.stderr);
    assert_eq!(before, t.state(), "a refused import changed nothing");
}

/// Control characters and a right-to-left override in a file name, a folder name and a person
/// name: what the officer's terminal must never receive raw.
const EVIL_FILE: &str = "ev\x1b[31mil\r\nfake line\u{202e}gpj.jpg";
const EVIL_DIR: &str = "sub\x1b]0;owned\x07";
const EVIL_PERSON: &str = "Mal\x1b[2Jory\r\nforged line\u{202e}X\u{9b}31m";

fn no_raw_control(what: &str, text: &str) {
    for (i, line) in text.lines().enumerate() {
        assert!(
            !line
                .chars()
                .any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
            "{what}: line {i} carries a raw control character: {line:?}"
        );
        assert!(
            !line.starts_with("fake line") && !line.starts_with("forged line"),
            "{what}: a name forged a line: {line:?}"
        );
    }
}

#[test]
fn names_with_control_characters_are_escaped_for_people_and_exact_in_json() {
    let t = TestStore::new();
    t.write(
        &format!("shoot/{EVIL_DIR}/{EVIL_FILE}"),
        b"a photo with a bad name",
    );
    t.write("shoot/gone.jpg", b"to the trash");
    let out = t.ok(&["import", "--collection", "ev", s(&t.path("shoot"))]);
    no_raw_control("import", &out.stdout);
    let path = format!("ev/{EVIL_DIR}/{EVIL_FILE}");
    t.ok(&["person", "add", EVIL_PERSON, "--born", "1990-01-01"]);
    t.ok(&["link", &path, "1"]);
    t.ok(&[
        "consent",
        "grant",
        "1",
        "--purpose",
        "website",
        "--until",
        "10d",
    ]);
    t.add_user("web");
    t.ok(&["user", "grant", "web", "--purpose", "website"]);
    // the same bytes again under another name: the duplicate line names the first
    t.write("again/copy.jpg", b"a photo with a bad name");
    let out = t.ok(&["import", "--collection", "again", s(&t.path("again"))]);
    assert!(out.stdout.contains("duplicate"), "{}", out.stdout);
    no_raw_control("import duplicate", &out.stdout);
    {
        let (_s, mut cat) = t.open_catalog();
        let tx = cat.begin("test", chrono::Utc::now()).unwrap();
        let gone = consentfs::catalog::assets::resolve(&tx, "ev/gone.jpg")
            .unwrap()
            .id;
        consentfs::catalog::assets::set_status(&tx, gone, consentfs::policy::Status::Trash)
            .unwrap();
        tx.execute(
            "UPDATE assets SET name = ?1 WHERE id = ?2",
            rusqlite::params![format!("t{EVIL_FILE}"), gone],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let human: Vec<(&str, Vec<&str>)> = vec![
        (
            "ls",
            vec!["ls", "--user", "web", "--purpose", "website", "--hidden"],
        ),
        (
            "why",
            vec!["why", &path, "--user", "web", "--purpose", "website"],
        ),
        ("person list", vec!["person", "list"]),
        ("person show", vec!["person", "show", "1"]),
        ("consent list", vec!["consent", "list"]),
        ("expiring", vec!["expiring", "--within", "30d"]),
        ("trash list", vec!["trash", "list"]),
        ("audit list", vec!["audit", "list"]),
        ("versions", vec!["versions", &path]),
        ("erase dry run", vec!["person", "erase", "1"]),
    ];
    for (what, args) in &human {
        let r = t.run(args);
        assert!(r.code == 0 || r.code == 1, "{what}: {}", r.stderr);
        no_raw_control(what, &r.stdout);
        no_raw_control(what, &r.stderr);
    }
    // and shown escaped, so the officer sees what is there
    let ls = t.run(&human[0].1).stdout;
    assert!(
        ls.contains("ev/sub\\x1b]0;owned\\x07/ev\\x1b[31mil\\r\\nfake line\\u{202e}gpj.jpg"),
        "{ls}"
    );
    let list = t.run(&["person", "list"]).stdout;
    assert!(
        list.contains("Mal\\x1b[2Jory\\r\\nforged line\\u{202e}X\\u{9b}31m"),
        "{list}"
    );
    let trash = t.run(&["trash", "list"]).stdout;
    assert!(trash.contains("tev\\x1b[31mil"), "{trash}");
    // an error that quotes a name the user typed is escaped as well
    let r = t.run(&["person", "show", "No\x1b[31mbody\rX"]);
    assert_eq!(r.code, 2);
    no_raw_control("error", &r.stderr);

    // JSON keeps the exact names
    let ls = t
        .ok(&[
            "--json",
            "ls",
            "--user",
            "web",
            "--purpose",
            "website",
            "--hidden",
        ])
        .json();
    assert_eq!(ls[0]["path"].as_str().unwrap(), path);
    let persons = t.ok(&["--json", "person", "list"]).json();
    assert_eq!(persons[0]["name"].as_str().unwrap(), EVIL_PERSON);
    let trash = t.ok(&["--json", "trash", "list"]).json();
    assert_eq!(
        trash[0]["path"].as_str().unwrap(),
        format!("ev/t{EVIL_FILE}")
    );
}

#[test]
fn a_fifo_or_a_huge_file_as_manifest_is_refused_promptly() {
    let t = store();
    let dest = t.path("out");
    t.ok(&export_args(&dest, &[]));
    let manifest = dest.join("manifest.json");
    let sync = export_args(&dest, &["--sync"]);

    std::fs::remove_file(&manifest).unwrap();
    nix::unistd::mkfifo(&manifest, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let r = prompt(&t, &["export", "verify", s(&dest)]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("FIFO"), "{}", r.stdout);
    let r = prompt(&t, &sync);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("FIFO"), "{}", r.stderr);

    // larger than any export writes: not read at all (sparse, so it costs no disk)
    std::fs::remove_file(&manifest).unwrap();
    let f = std::fs::File::create(&manifest).unwrap();
    f.set_len(consentfs::export::MAX_MANIFEST_BYTES + 1)
        .unwrap();
    drop(f);
    let r = prompt(&t, &["export", "verify", s(&dest)]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("more than"), "{}", r.stdout);
    let r = prompt(&t, &sync);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("more than"), "{}", r.stderr);

    // a manifest that is a link to an authentic one elsewhere is not followed either
    let other = t.path("out2");
    t.ok(&export_args(&other, &[]));
    std::fs::remove_file(&manifest).unwrap();
    std::os::unix::fs::symlink(other.join("manifest.json"), &manifest).unwrap();
    let r = prompt(&t, &["export", "verify", s(&dest)]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("symbolic link"), "{}", r.stdout);

    // an exported photo replaced by a FIFO is reported, not waited on
    std::fs::remove_file(other.join("events/hall.jpg")).unwrap();
    nix::unistd::mkfifo(
        &other.join("events/hall.jpg"),
        nix::sys::stat::Mode::S_IRWXU,
    )
    .unwrap();
    let r = prompt(&t, &["export", "verify", s(&other)]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("hall.jpg: not a regular file"),
        "{}",
        r.stdout
    );
}

#[test]
fn another_users_ls_and_why_never_name_someone_elses_draft() {
    let t = store();
    t.add_user("nogrant");
    t.add_user("printer");
    t.ok(&["user", "grant", "printer", "--purpose", "print"]);
    let website = t
        .ok(&["--json", "purpose", "list"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "website")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    // root's draft, as the mount makes it, with a name that tells what it is
    let draft = {
        let (store, mut cat) = t.open_catalog();
        let obj = store.put(&mut &b"a crop of anna"[..]).unwrap();
        let tx = cat.begin("root", chrono::Utc::now()).unwrap();
        let id = consentfs::catalog::assets::add_draft(
            &tx,
            "events",
            "anna-secret-crop.jpg",
            website,
            &obj,
        )
        .unwrap();
        tx.commit().unwrap();
        id.to_string()
    };
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
    for user in ["nogrant", "web", "printer"] {
        for purpose in ["website", "print"] {
            for json in [false, true] {
                let mut args = vec!["ls", "--user", user, "--purpose", purpose, "--hidden"];
                if json {
                    args.insert(0, "--json");
                }
                let out = t.ok(&args).stdout;
                assert!(
                    !out.contains("anna-secret-crop"),
                    "{user}'s ls --hidden in {purpose} names root's draft: {out}"
                );
            }
            let out = t
                .ok(&["why", &draft, "--user", user, "--purpose", purpose])
                .stdout;
            assert!(!out.contains("anna-secret-crop"), "{user}: {out}");
            assert!(out.contains("someone else's draft"), "{user}: {out}");
            let j = t
                .ok(&[
                    "--json",
                    "why",
                    &draft,
                    "--user",
                    user,
                    "--purpose",
                    purpose,
                ])
                .json();
            assert!(j["path"].is_null(), "{j}");
            assert_eq!(j["visible"], false);
        }
    }
    // its creator still sees it, by name
    let out = t
        .ok(&["ls", "--user", "root", "--purpose", "website"])
        .stdout;
    assert!(out.contains("events/anna-secret-crop.jpg"), "{out}");
    let j = t
        .ok(&[
            "--json",
            "why",
            &draft,
            "--user",
            "root",
            "--purpose",
            "website",
        ])
        .json();
    assert_eq!(j["path"], "events/anna-secret-crop.jpg");
}

/// A newcomer follows the README's links: every one that is not a web address names a file
/// in the repository (it once pointed to a design document that is not shipped).
#[test]
fn the_readmes_links_point_to_files_in_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut checked = 0;
    for (i, _) in readme.match_indices("](") {
        let rest = &readme[i + 2..];
        let target = &rest[..rest.find(')').unwrap_or(rest.len())];
        let file = target.split('#').next().unwrap_or_default();
        if file.is_empty() || file.contains("://") || file.starts_with("mailto:") {
            continue;
        }
        assert!(
            root.join(file).exists(),
            "README links to {file}, which is not in the repository"
        );
        checked += 1;
    }
    assert!(checked >= 3, "the README's links to files were not found");
    assert!(
        !readme.contains("DESIGN.md"),
        "the README refers to a DESIGN.md that is not shipped"
    );
}
