//! People without the key, through the daemon's control socket (issue 15 items 2 and 3), as
//! real OS users: each runs the same command line as root would, the daemon knows them by
//! their uid, checks their role, records them in the audit log, and shows the change in the
//! mount before the command returns.

mod common;

use common::mount::{os_user, run_as, Mount};
use common::{TestStore, BIN};
use std::path::Path;

fn store() -> TestStore {
    let t = common::anna_consented("shoot", "anna.jpg", b"anna on the stairs", "website");
    t.add_user("root");
    t.ok(&["user", "grant", "root", "--purpose", "website"]);
    t
}

/// Run `consentfs ARGS` as `user` with no key, only the test's socket: (exit code, stdout,
/// stderr).
fn as_user(t: &TestStore, user: (u32, u32), args: &str) -> (i32, String, String) {
    let out = run_as(
        user.0,
        user.1,
        &format!("CONSENTFS_SOCKET='{}' '{BIN}' {args}", t.socket().display()),
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn member(t: &TestStore, login: &str, role: Option<&str>) -> (u32, u32) {
    let id = os_user(login);
    t.ok(&["user", "add", login]);
    if let Some(r) = role {
        t.ok(&["role", "grant", login, r]);
    }
    id
}

#[test]
fn people_without_the_key_run_commands_through_the_daemon_as_their_role_allows() {
    let t = store();
    let po = member(&t, "cfs-ctl-po", Some("privacy-officer"));
    let ed = member(&t, "cfs-ctl-ed", Some("editor"));
    let plain = member(&t, "cfs-ctl-plain", None);
    t.ok(&["user", "grant", "cfs-ctl-plain", "--purpose", "website"]);
    let m = Mount::start(&t);
    // other users reach the socket in the test's folder
    std::fs::set_permissions(
        t.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let photo = m.path("root/website/shoot/anna.jpg");
    assert!(photo.exists());

    // the same listing through the daemon as directly with the key
    let direct = t.ok(&["--json", "consent", "list"]).stdout;
    let (code, via, err) = as_user(&t, po, "--json consent list");
    assert_eq!(code, 0, "{err}");
    assert_eq!(via, direct, "the same output through the daemon");

    // an editor may not withdraw a consent: exit 2, and the message names the role needed
    let (code, _, err) = as_user(&t, ed, "consent withdraw Anna --purpose website");
    assert_eq!(code, 2);
    assert!(err.contains("privacy-officer"), "{err}");
    assert!(photo.exists());

    // the privacy officer may; the photo is gone the moment the command returns
    let (code, _, err) = as_user(&t, po, "consent withdraw Anna --purpose website");
    assert_eq!(code, 0, "{err}");
    assert!(
        !photo.exists(),
        "still in the mount after the command returned"
    );
    // recorded as the officer, not as root or the daemon
    let audit = t.ok(&["audit", "list", "--json"]).json();
    let last = audit.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["actor"], "cfs-ctl-po", "{last}");

    // a plain user sees their own view, not another's
    let (code, out, err) = as_user(
        &t,
        plain,
        "ls --user cfs-ctl-plain --purpose website --json",
    );
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<serde_json::Value>(&out).expect("JSON through the daemon");
    let (code, _, err) = as_user(&t, plain, "ls --user cfs-ctl-po --purpose website");
    assert_eq!(code, 2);
    assert!(err.contains("auditor"), "{err}");
    // nobody names another store, or the key, through the daemon
    let (code, _, err) = as_user(
        &t,
        po,
        "--store /tmp ls --user cfs-ctl-po --purpose website",
    );
    assert_eq!(code, 2);
    assert!(err.contains("its own store"), "{err}");
    // usage errors come back as the CLI's own
    let (code, _, err) = as_user(&t, po, "consent withdraw");
    assert_eq!(code, 2);
    assert!(err.contains("Usage"), "{err}");
}

#[test]
fn without_a_daemon_the_command_says_how_to_start_one() {
    let t = TestStore::new();
    let user = os_user("cfs-ctl-none");
    let out = run_as(
        user.0,
        user.1,
        &format!(
            "CONSENTFS_SOCKET='{}' '{BIN}' consent list",
            Path::new("/nonexistent/consentfs.sock").display()
        ),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("daemon is not running") && err.contains("systemctl start consentfs"),
        "{err}"
    );
    drop(t);
}

/// A command with the key on the store directly returns once the running mount shows its
/// change (it asks the daemon over the socket).
#[test]
fn a_change_made_with_the_key_is_in_the_mount_when_the_command_returns() {
    let t = store();
    let m = Mount::start(&t);
    let photo = m.path("root/website/shoot/anna.jpg");
    assert!(photo.exists());
    for _ in 0..20 {
        t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
        assert!(!photo.exists(), "visible after withdraw returned");
        t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
        assert!(photo.exists(), "hidden after grant returned");
    }
}

/// Root (or anyone) naming a store, with no daemon running and no key given, works on the
/// store directly as before there was a daemon: the passphrase prompt on a terminal, or the
/// message that says how to give a key.
#[test]
fn with_a_store_named_and_no_daemon_the_command_runs_directly() {
    let t = TestStore::new();
    let out = std::process::Command::new(BIN)
        .args(["consent", "list"])
        .env_clear()
        .env("CONSENTFS_STORE", &t.store)
        .env("CONSENTFS_SOCKET", t.socket())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no key given"), "{err}");
}

/// Issue 15 item 3: every command, as every role, through the socket, with real OS users: the
/// daemon refuses exactly what `src/roles.rs` refuses (exit 2, naming the role needed), and
/// lets through the rest (whatever the command itself then says).
#[test]
fn every_command_as_every_role_through_the_socket() {
    use consentfs::roles::Role;
    let t = store();
    t.write("h/hall.jpg", b"empty hall");
    t.ok(&[
        "import",
        "--collection",
        "shoot",
        t.path("h").to_str().unwrap(),
    ]);
    let people: Vec<(&str, Option<Role>)> = vec![
        ("cfs-mx-admin", Some(Role::Admin)),
        ("cfs-mx-po", Some(Role::PrivacyOfficer)),
        ("cfs-mx-ed", Some(Role::Editor)),
        ("cfs-mx-aud", Some(Role::Auditor)),
        ("cfs-mx-plain", None),
    ];
    let ids: Vec<(u32, u32)> = people
        .iter()
        .map(|(login, role)| {
            let id = member(&t, login, role.map(|r| r.as_str()));
            t.ok(&["user", "grant", login, "--purpose", "website"]);
            id
        })
        .collect();
    let _m = Mount::start(&t);
    std::fs::set_permissions(
        t.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // (command name in the roles table, arguments; LOGIN stands for the caller's own login)
    let commands: &[(&str, &str)] = &[
        ("status", "status"),
        ("purpose list", "purpose list"),
        ("purpose add", "purpose add newsletter-LOGIN"),
        ("user list", "user list"),
        ("user grant", "user grant LOGIN --purpose print"),
        ("role list", "role list"),
        ("person list", "person list"),
        ("person show", "person show Anna"),
        ("person add", "person add Someone-LOGIN"),
        ("consent list", "consent list"),
        ("consent grant", "consent grant Anna --purpose print"),
        ("consent withdraw", "consent withdraw Anna --purpose print"),
        ("link", "link shoot/hall.jpg Anna"),
        ("unlink", "unlink shoot/hall.jpg Anna"),
        ("mark", "mark shoot/hall.jpg --no-persons"),
        ("versions", "versions shoot/anna.jpg"),
        ("trash list", "trash list"),
        ("retention apply", "retention apply"),
        ("audit list", "audit list"),
        ("audit verify", "audit verify"),
        ("expiring", "expiring"),
        ("assets", "assets"),
        ("check", "check"),
        ("ls", "ls --user LOGIN --purpose website"),
        ("ls", "ls --user cfs-ctl-none --purpose website"),
        ("why", "why shoot/anna.jpg --user LOGIN --purpose website"),
        ("cat", "cat shoot/anna.jpg"),
        ("backup", "backup /tmp/cfs-mx-backup"),
        ("import", "import --collection c-LOGIN /nonexistent-cfs-mx"),
        (
            "export",
            "export --user LOGIN --purpose website /nonexistent-cfs-mx/out",
        ),
        (
            "export",
            "export --user cfs-ctl-none --purpose website /nonexistent-cfs-mx/out",
        ),
        ("export verify", "export verify /nonexistent-cfs-mx"),
        (
            "person report",
            "person report Anna /nonexistent-cfs-mx/report",
        ),
        (
            "consent grant",
            "consent grant Anna --purpose print --evidence /nonexistent-cfs-mx",
        ),
    ];
    let mut checked = 0;
    for (cmd, args) in commands {
        for ((login, role), id) in people.iter().zip(&ids) {
            let args = args.replace("LOGIN", login);
            let own = args.contains(&format!("--user {login}"));
            let roles: Vec<Role> = role.iter().copied().collect();
            let allowed = consentfs::roles::allowed(cmd, &roles, own);
            let (code, _, err) = as_user(&t, *id, &args);
            let refused_for_role = err.contains("needs the role")
                || err.contains("only with the store's key")
                || err.contains("for your own views only");
            match allowed {
                Ok(()) => assert!(
                    !refused_for_role,
                    "{login} may run `{args}` but was refused: {err}"
                ),
                Err(why) => {
                    assert_eq!(code, 2, "{login} running `{args}`: {err}");
                    assert!(err.contains(&why), "{login} running `{args}`: {err}");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, commands.len() * people.len());
}

/// Run `consentfs ARGS` as root with no key, only the test's socket: the daemon answers.
fn via_daemon(t: &TestStore, args: &[&str]) -> common::Run {
    let out = std::process::Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CONSENTFS_SOCKET", t.socket())
        .args(args)
        .output()
        .unwrap();
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        raw: out.stdout,
    }
}

/// `ls` through the daemon answers from the mount's index instead of reading every row of
/// the catalog: it must list exactly what the rules over the catalog list (minors with
/// guardians, expiring and withdrawn consents, photos marked without persons), for every
/// purpose, for a user whose grant covers one collection, with a collection filter, with the
/// user's own drafts and photos in the trash, and a change committed a moment before.
#[test]
fn ls_through_the_daemon_lists_exactly_what_the_catalog_lists() {
    let t = TestStore::new();
    t.ok(&[
        "generate",
        "--assets",
        "3000",
        "--persons",
        "300",
        "--events",
        "900",
        "--user",
        "root",
    ]);
    let first = t
        .ok(&["--json", "ls", "--user", "root", "--purpose", "website"])
        .json();
    let path = first[0]["path"].as_str().unwrap().to_string();
    let (collection, _) = path.split_once('/').unwrap();
    let (collection, trashed) = (collection.to_string(), first[1]["asset"].clone());
    os_user("cfs-ctl-one");
    t.ok(&["user", "add", "cfs-ctl-one"]);
    t.ok(&[
        "user",
        "grant",
        "cfs-ctl-one",
        "--purpose",
        "print",
        "--collection",
        &collection,
    ]);
    t.ok(&[
        "user",
        "grant",
        "root",
        "--purpose",
        "website",
        "--access",
        "delete",
    ]);
    let m = Mount::start(&t);
    // a photo put in the trash through the mount, and a draft of root's saved there
    let gone = m
        .path("root/website")
        .join(first[1]["path"].as_str().unwrap());
    std::fs::remove_file(&gone).unwrap();
    std::fs::write(
        m.path("root/website").join(&collection).join("new.jpg"),
        b"draft",
    )
    .unwrap();
    let listings: Vec<Vec<&str>> = vec![
        vec!["ls", "--user", "root", "--purpose", "website"],
        vec!["ls", "--user", "root", "--purpose", "print"],
        vec!["ls", "--user", "root", "--purpose", "social-media"],
        vec![
            "ls",
            "--user",
            "root",
            "--purpose",
            "intranet",
            "--collection",
            &collection,
        ],
        vec!["ls", "--user", "cfs-ctl-one", "--purpose", "print"],
        vec!["ls", "--user", "cfs-ctl-one", "--purpose", "website"],
    ];
    for args in &listings {
        for json in [true, false] {
            let mut args = args.clone();
            if json {
                args.insert(0, "--json");
            }
            let direct = t.ok(&args);
            let via = via_daemon(&t, &args);
            assert_eq!(via.code, 0, "{args:?}: {}", via.stderr);
            assert_eq!(via.stdout, direct.stdout, "{args:?}");
        }
    }
    let website = t
        .ok(&["--json", "ls", "--user", "root", "--purpose", "website"])
        .json();
    let listed = |v: &serde_json::Value, id: &serde_json::Value| {
        v.as_array().unwrap().iter().any(|i| i["asset"] == *id)
    };
    assert!(
        !listed(&website, &trashed),
        "a photo in the trash is listed"
    );
    assert!(website
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["draft"] == true));
    assert!(website.as_array().unwrap().len() > 100, "{website}");

    // a withdrawal committed with the key (its command not waiting for the mount): the
    // daemon's next listing no longer has the person's photos
    let person = website
        .as_array()
        .unwrap()
        .iter()
        .find_map(|i| i["persons"][0].as_i64())
        .unwrap();
    let out = t
        .cmd()
        .env("CONSENTFS_SOCKET", t.path("nowhere.sock"))
        .args([
            "consent",
            "withdraw",
            &format!("#{person}"),
            "--purpose",
            "website",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let via = via_daemon(
        &t,
        &["--json", "ls", "--user", "root", "--purpose", "website"],
    );
    assert_eq!(via.code, 0, "{}", via.stderr);
    let after: serde_json::Value = serde_json::from_str(&via.stdout).unwrap();
    assert!(
        after.as_array().unwrap().iter().all(|i| i["persons"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p.as_i64() != Some(person))),
        "a photo of #{person} is still listed after the withdrawal"
    );
    let direct = t.ok(&["--json", "ls", "--user", "root", "--purpose", "website"]);
    assert_eq!(via.stdout, direct.stdout);
    drop(m);
}
