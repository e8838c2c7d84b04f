//! Grants can be taken away (issue 11, finding 7): a write handle stops saving when its grant
//! is downgraded or revoked, `user revoke` and `user remove` exist and the mount follows them,
//! a login re-created as another OS account inherits nothing, and `user add` refuses logins
//! the machine does not know. Real OS users and a real mount; runs as root.

mod common;

use common::mount::{os_user, wait_for, Mount};
use common::TestStore;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A photo of Anna (who consented to `website`) in collection `ev`, and `login` (an OS
/// account) allowed to write in `website`.
fn store_for(login: &str) -> TestStore {
    let t = common::anna_consented(
        "ev",
        "a.jpg",
        b"photo of anna, version one",
        "website,print",
    );
    t.add_user(login);
    t.ok(&[
        "user",
        "grant",
        login,
        "--purpose",
        "website",
        "--access",
        "write",
    ]);
    t
}

fn versions(t: &TestStore, asset: &str) -> usize {
    t.ok(&["--json", "versions", asset])
        .json()
        .as_array()
        .map_or(0, Vec::len)
}

/// A process that opens `path` for writing, writes, says so (file `ready`), waits for the file
/// `go`, then (with `write_again`) writes until a write fails or 10 s pass, and closes. It
/// prints what the later write and the close returned ("write:EACCES close:EACCES").
/// A separate process holds the file: a handle in the test process would be flushed (so
/// committed) by every command the test starts, as each child closes its inherited copy.
fn writer(path: &Path, dir: &Path, write_again: bool) -> std::process::Child {
    let script = r#"
import errno, os, sys, time
path, ready, go, again = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
fd = os.open(path, os.O_WRONLY)
os.pwrite(fd, b"PHOTO", 0)
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.01)
out = []
if again:
    deadline = time.time() + 10
    while True:
        try:
            os.pwrite(fd, b"PHOTO", 0)
        except OSError as e:
            out.append("write:" + errno.errorcode[e.errno])
            break
        if time.time() > deadline:
            out.append("write:ok")
            break
        time.sleep(0.02)
try:
    os.close(fd)
    out.append("close:ok")
except OSError as e:
    out.append("close:" + errno.errorcode[e.errno])
print(" ".join(out))
"#;
    let child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .arg(dir.join("ready"))
        .arg(dir.join("go"))
        .arg(if write_again { "1" } else { "0" })
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let (ready, _) = wait_for(Duration::from_secs(10), || dir.join("ready").exists());
    assert!(ready, "the writer did not open and write");
    child
}

fn finish(child: std::process::Child, dir: &Path) -> String {
    std::fs::write(dir.join("go"), b"").unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Open for writing under a write grant, write, lose the grant from another process: the next
/// write is refused (EACCES), closing reports the error, and no version is recorded.
fn write_handle_stops_after(take_away: &[&str], write_again: bool) {
    let t = store_for("root");
    let before = versions(&t, "ev/a.jpg");
    let m = Mount::start(&t);
    let dir = t.path("sync");
    std::fs::create_dir_all(&dir).unwrap();
    let w = writer(&m.path("root/website/ev/a.jpg"), &dir, write_again);
    t.ok(take_away);
    let said = finish(w, &dir);
    let expect = if write_again {
        "write:EACCES close:EACCES"
    } else {
        "close:EACCES"
    };
    assert_eq!(
        said,
        expect,
        "after `{}`: {}",
        take_away.join(" "),
        m.log_text()
    );
    assert_eq!(
        versions(&t, "ev/a.jpg"),
        before,
        "a save without a write grant became a version: {}",
        m.log_text()
    );
    let r = t.ok(&["cat", "ev/a.jpg"]);
    assert_eq!(r.stdout, "photo of anna, version one");
    assert!(
        m.log_text().contains("denied: "),
        "no log line for the refused write: {}",
        m.log_text()
    );
}

#[test]
fn write_handle_stops_when_the_grant_is_downgraded() {
    write_handle_stops_after(
        &[
            "user",
            "grant",
            "root",
            "--purpose",
            "website",
            "--access",
            "read",
        ],
        true,
    );
}

#[test]
fn write_handle_stops_when_the_grant_is_revoked() {
    write_handle_stops_after(&["user", "revoke", "root", "--purpose", "website"], true);
}

/// The commit itself checks the catalog, not only the (possibly stale) view: a downgrade
/// between the last write and close discards the save even when no write saw it.
#[test]
fn a_save_after_a_downgrade_is_discarded_even_without_a_later_write() {
    write_handle_stops_after(
        &[
            "user",
            "grant",
            "root",
            "--purpose",
            "website",
            "--access",
            "read",
        ],
        false,
    );
}

#[test]
fn revoke_and_remove_take_the_tree_away_at_once_and_are_audited() {
    let login = "cfsgrevoke";
    let (uid, gid) = os_user(login);
    let t = store_for(login);
    t.ok(&["user", "grant", login, "--purpose", "print"]);
    let m = Mount::start(&t);
    let ls = |p: &str| {
        common::mount::run_as(uid, gid, &format!("ls {}", m.path(p).display()))
            .status
            .success()
    };
    assert!(ls(&format!("{login}/print/ev")));
    t.ok(&["user", "revoke", login, "--purpose", "print"]);
    let (gone, waited) = wait_for(Duration::from_secs(10), || !ls(&format!("{login}/print")));
    assert!(gone, "print still shown {waited:?} after the revoke");
    assert!(
        ls(&format!("{login}/website/ev")),
        "website was not revoked"
    );
    t.ok(&["user", "remove", login]);
    let (gone, waited) = wait_for(Duration::from_secs(10), || !ls(login));
    assert!(gone, "the removed user's tree still shown after {waited:?}");
    let list = t.ok(&["--json", "user", "list"]).stdout;
    assert!(!list.contains(login), "removed user still listed: {list}");
    let audit = t.ok(&["audit", "list"]).stdout;
    assert!(audit.contains("user.revoke"), "revoke not audited: {audit}");
    assert!(audit.contains("user.remove"), "remove not audited: {audit}");
}

#[test]
fn revoke_of_a_single_collection_keeps_the_others() {
    let t = store_for("root");
    t.ok(&[
        "user",
        "grant",
        "root",
        "--purpose",
        "print",
        "--collection",
        "ev",
    ]);
    t.ok(&[
        "user",
        "grant",
        "root",
        "--purpose",
        "print",
        "--collection",
        "x",
    ]);
    t.ok(&[
        "user",
        "revoke",
        "root",
        "--purpose",
        "print",
        "--collection",
        "x",
    ]);
    let list = t.ok(&["user", "list"]).stdout;
    assert!(list.contains("print:ev=read"), "{list}");
    assert!(!list.contains("print:x"), "{list}");
    assert!(list.contains("website=write"), "{list}");
}

#[test]
fn revoke_and_remove_refuse_what_does_not_exist() {
    let t = store_for("root");
    t.fails(
        &["user", "revoke", "nosuchuser", "--purpose", "website"],
        "no user 'nosuchuser'",
    );
    t.fails(
        &["user", "revoke", "root", "--purpose", "nosuchpurpose"],
        "nosuchpurpose",
    );
    t.fails(
        &["user", "revoke", "root", "--purpose", "print"],
        "has no grant in print",
    );
    t.fails(
        &[
            "user",
            "revoke",
            "root",
            "--purpose",
            "website",
            "--collection",
            "ev",
        ],
        "has no grant in website on collection 'ev'",
    );
    t.fails(&["user", "remove", "nosuchuser"], "no user 'nosuchuser'");
}

#[test]
fn user_add_refuses_a_login_the_machine_does_not_know() {
    let t = TestStore::new();
    t.fails(
        &["user", "add", "cfsg-nobody-here"],
        "no OS account 'cfsg-nobody-here'",
    );
}

/// A removed user's drafts stay in the catalog but a new account under the same login does not
/// see them.
#[test]
fn drafts_of_a_removed_user_go_to_no_one() {
    let t = store_for("root");
    let m = Mount::start(&t);
    std::fs::write(m.path("root/website/ev/new.jpg"), b"a draft").unwrap();
    let hidden = t
        .ok(&["ls", "--user", "root", "--purpose", "website", "--hidden"])
        .stdout;
    assert!(hidden.contains("new.jpg"), "{hidden}");
    t.ok(&["user", "remove", "root"]);
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
    let (gone, waited) = wait_for(Duration::from_secs(10), || {
        !m.path("root/website/ev/new.jpg").exists()
    });
    assert!(
        gone,
        "the removed user's draft still shown after {waited:?}"
    );
    let shown = t
        .ok(&["ls", "--user", "root", "--purpose", "website"])
        .stdout;
    assert!(!shown.contains("new.jpg"), "{shown}");
    assert!(m.path("root/website/ev/a.jpg").exists());
}

/// Give `login` another uid, as deleting the account and creating it again does.
fn recreate(login: &str) -> u32 {
    let new = (61000..65000)
        .find(|u| {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(*u))
                .ok()
                .flatten()
                .is_none()
        })
        .expect("a free uid");
    let ok = Command::new("usermod")
        .args(["--uid", &new.to_string(), login])
        .status()
        .unwrap()
        .success();
    assert!(ok, "usermod --uid {new} {login}");
    new
}

#[test]
fn a_recreated_account_inherits_nothing() {
    let login = "cfsgrecreated";
    os_user(login);
    let t = store_for(login);
    t.ok(&["ls", "--user", login, "--purpose", "website"]);
    let new_uid = recreate(login);
    let gid = nix::unistd::User::from_name(login)
        .unwrap()
        .unwrap()
        .gid
        .as_raw();
    for args in [
        vec!["ls", "--user", login, "--purpose", "website"],
        vec!["why", "ev/a.jpg", "--user", login, "--purpose", "website"],
    ] {
        let r = t.fails(&args, "was re-created");
        assert!(r.stderr.contains("user remove"), "{}", r.stderr);
    }
    let dest = t.path("export");
    t.fails(
        &[
            "export",
            "--user",
            login,
            "--purpose",
            "website",
            dest.to_str().unwrap(),
        ],
        "was re-created",
    );
    let m = Mount::start(&t);
    let out = common::mount::run_as(
        new_uid,
        gid,
        &format!("ls {}", m.path(&format!("{login}/website/ev")).display()),
    );
    assert!(
        !out.status.success(),
        "the new account got the old one's tree"
    );
    assert!(
        !m.path(login).exists(),
        "the re-created login still has a folder (even for root)"
    );
    assert!(m.log_text().contains("re-created"), "{}", m.log_text());
    // the fix the message gives works
    t.ok(&["user", "remove", login]);
    t.ok(&["user", "add", login]);
    t.ok(&["user", "grant", login, "--purpose", "website"]);
    t.ok(&["ls", "--user", login, "--purpose", "website"]);
    let (back, waited) = wait_for(Duration::from_secs(10), || {
        common::mount::run_as(
            new_uid,
            gid,
            &format!("ls {}", m.path(&format!("{login}/website/ev")).display()),
        )
        .status
        .success()
    });
    assert!(back, "no tree {waited:?} after remove + add");
}

/// Catalogs from before uids were stored: migration 7 binds each user to the uid their login
/// has at migration time; a login with no account then stays unbound, and an account created
/// later under that name gets nothing.
#[test]
fn migration_binds_existing_users_to_their_accounts() {
    let late = "cfsglate";
    let _ = Command::new("userdel").arg(late).status();
    let t = store_for("root");
    {
        let (_s, cat) = t.open_catalog();
        let c = cat.conn();
        c.execute_batch(common::BEFORE_FACES).unwrap();
        c.execute_batch(&format!(
            "ALTER TABLE users DROP COLUMN uid;
             DROP TABLE shred_queue;
             DROP INDEX consent_events_evidence;
             ALTER TABLE versions DROP COLUMN thinned_at;
             ALTER TABLE versions DROP COLUMN mtime_nsec;
             ALTER TABLE versions DROP COLUMN atime;
             ALTER TABLE versions DROP COLUMN atime_nsec;
             DROP TABLE roles;
             INSERT INTO users (login) VALUES ('{late}');
             INSERT INTO grants (user_id, purpose_id, prefix, access)
                 SELECT u.id, p.id, '', 'read' FROM users u, purposes p
                 WHERE u.login = '{late}' AND p.name = 'website';
             PRAGMA user_version = 6;"
        ))
        .unwrap();
    }
    if t.is_team() {
        // a team library's copy of an older format is not migrated on its own: it takes the
        // library's snapshot, so that every copy holds the very same rows (tests/team.rs
        // covers a library's upgrade); what was changed in this copy alone is gone
        let users = t.ok(&["--json", "user", "list"]).stdout;
        assert!(!users.contains(late), "{users}");
        return;
    }
    let users = t.ok(&["--json", "user", "list"]).json();
    let uid_of = |login: &str| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["login"] == login)
            .map(|u| u["uid"].clone())
            .unwrap()
    };
    assert_eq!(uid_of("root"), serde_json::json!(0));
    assert_eq!(uid_of(late), serde_json::Value::Null);
    // the account appears after the migration: it is not the one the grant was given to
    os_user(late);
    t.fails(
        &["ls", "--user", late, "--purpose", "website"],
        "was re-created",
    );
    t.ok(&["ls", "--user", "root", "--purpose", "website"]);
    let _ = Command::new("userdel").arg(late).status();
}
