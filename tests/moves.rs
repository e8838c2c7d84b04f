//! Moves across purposes and what the mount tells one user about the others, with real mounts
//! and real OS users (issue 11, findings 8 and 16). Run as root with /dev/fuse.

mod common;

use common::mount::{os_user, run_as, Mount};
use common::TestStore;
use std::process::Output;

/// A store with Anna (who consented to `website` and `print`) in `hr/private/hr.jpg` and in
/// `events/e.jpg`; `mover` may delete anywhere in `website`, `printer` may read `events` for
/// `print`.
fn two_purposes(mover: &str, printer: &str) -> TestStore {
    let t = TestStore::new();
    t.write("hr/hr.jpg", b"anna, personnel file photo");
    t.write("ev/e.jpg", b"anna at the fair");
    t.ok(&[
        "import",
        "--collection",
        "hr/private",
        t.path("hr").to_str().unwrap(),
    ]);
    t.ok(&[
        "import",
        "--collection",
        "events",
        t.path("ev").to_str().unwrap(),
    ]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["link", "hr/private/hr.jpg", "Anna"]);
    t.ok(&["link", "events/e.jpg", "Anna"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website,print"]);
    t.ok(&["user", "add", mover]);
    t.ok(&[
        "user",
        "grant",
        mover,
        "--purpose",
        "website",
        "--access",
        "delete",
    ]);
    t.ok(&["user", "add", printer]);
    t.ok(&[
        "user",
        "grant",
        printer,
        "--purpose",
        "print",
        "--collection",
        "events",
    ]);
    t
}

/// Mount, and let other users reach the mount point (the test's temp folder is 0700).
fn mount_shared(t: &TestStore) -> Mount {
    let m = Mount::start(t);
    let _ = std::process::Command::new("chmod")
        .arg("755")
        .arg(t.dir.path())
        .status();
    m
}

fn sh_as(id: (u32, u32), script: &str) -> Output {
    run_as(id.0, id.1, script)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Finding 8: a user with delete rights in `website` moves Anna's photo from `hr/private`
/// into `events`, where a user with only `print:events` would read it at once. The move
/// changes the photo's collection for every purpose, so it is refused; so is the move the
/// other way, which would take a photo away from the printer. Drafts still move freely.
#[test]
fn a_move_that_would_change_another_purposes_view_is_refused() {
    let (mover, printer) = ("cfs-mv-web", "cfs-mv-print");
    let (mid, pid) = (os_user(mover), os_user(printer));
    let t = two_purposes(mover, printer);
    let m = mount_shared(&t);
    let web = m.path(&format!("{mover}/website"));
    let print_events = m.path(&format!("{printer}/print/events"));

    // the printer sees the events photo, not the HR one
    let seen = sh_as(pid, &format!("ls '{}'", print_events.display()));
    assert_eq!(text(&seen).trim(), "e.jpg", "{}", text(&seen));

    // the exact move of the finding
    let out = sh_as(
        mid,
        &format!(
            "mv '{0}/hr/private/hr.jpg' '{0}/events/hr.jpg'",
            web.display()
        ),
    );
    assert!(!out.status.success(), "the move was allowed");
    assert!(
        text(&out).contains("Permission denied"),
        "not EACCES: {}",
        text(&out)
    );
    // the photo stays where it was, for the mover...
    let still = sh_as(
        mid,
        &format!(
            "cat '{0}/hr/private/hr.jpg'; ls '{0}/events'",
            web.display()
        ),
    );
    assert_eq!(
        text(&still),
        "anna, personnel file photoe.jpg\n",
        "{}",
        text(&still)
    );
    // ...and the printer does not see it, in the mount or by the rules
    let probe = sh_as(
        pid,
        &format!(
            "ls '{0}'; cat '{0}/hr.jpg' 2>/dev/null && echo LEAK",
            print_events.display()
        ),
    );
    assert_eq!(text(&probe).trim(), "e.jpg", "{}", text(&probe));
    assert_eq!(common::visible(&t, printer, "print"), ["events/e.jpg"]);

    // the other way round: taking the printer's photo away is a change to print too
    let out = sh_as(
        mid,
        &format!(
            "mv '{0}/events/e.jpg' '{0}/hr/private/e.jpg'",
            web.display()
        ),
    );
    assert!(
        !out.status.success() && text(&out).contains("Permission denied"),
        "{}",
        text(&out)
    );
    let seen = sh_as(pid, &format!("ls '{}'", print_events.display()));
    assert_eq!(text(&seen).trim(), "e.jpg", "{}", text(&seen));

    // a rename inside one folder changes no one's collection
    let out = sh_as(
        mid,
        &format!(
            "mv '{0}/hr/private/hr.jpg' '{0}/hr/private/renamed.jpg' && echo OK",
            web.display()
        ),
    );
    assert_eq!(text(&out).trim(), "OK", "{}", text(&out));

    // a draft (shown to its creator only) moves between folders as before
    let out = sh_as(
        mid,
        &format!(
            "echo notes > '{0}/events/draft.txt' && mv '{0}/events/draft.txt' '{0}/hr/private/draft.txt' && cat '{0}/hr/private/draft.txt'",
            web.display()
        ),
    );
    assert_eq!(text(&out).trim(), "notes", "{}", text(&out));

    // the refusal is logged without names or paths
    let log = m.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("denied: moving asset") && l.contains("would change what purpose"))
        .unwrap_or_else(|| panic!("no log line for the refused move: {log}"));
    assert!(
        !line.contains("hr") && !line.contains("events") && !line.contains(mover),
        "{line}"
    );
}

/// A move stays possible for someone whose grants cover both folders in every purpose in
/// which the photo is seen: here the mover may also delete in `print`.
#[test]
fn a_move_with_grants_in_every_purpose_that_sees_the_photo_works() {
    let (mover, printer) = ("cfs-mv-both", "cfs-mv-print2");
    let (mid, pid) = (os_user(mover), os_user(printer));
    let t = two_purposes(mover, printer);
    t.ok(&[
        "user",
        "grant",
        mover,
        "--purpose",
        "print",
        "--access",
        "delete",
    ]);
    let m = mount_shared(&t);
    let web = m.path(&format!("{mover}/website"));
    let out = sh_as(
        mid,
        &format!(
            "mv '{0}/hr/private/hr.jpg' '{0}/events/hr.jpg' && cat '{0}/events/hr.jpg'",
            web.display()
        ),
    );
    assert_eq!(
        text(&out).trim(),
        "anna, personnel file photo",
        "{}",
        text(&out)
    );
    // the move was the mover's to make: the printer now sees the photo in events
    let seen = sh_as(
        pid,
        &format!(
            "ls '{}'",
            m.path(&format!("{printer}/print/events")).display()
        ),
    );
    assert_eq!(text(&seen), "e.jpg\nhr.jpg\n", "{}", text(&seen));
    assert_eq!(
        common::visible(&t, printer, "print"),
        ["events/e.jpg", "events/hr.jpg"]
    );
}

/// Finding 16: the mount root lists only the caller's own folder (root sees all), another
/// user's folder is not found even right after its owner used it, `df` works and shows no
/// counts of the store's photos, and inode numbers are not a counter.
#[test]
fn each_user_sees_only_what_concerns_them_at_the_mount_root() {
    let (alice, bob) = ("cfs-root-alice", "cfs-root-bob");
    let (aid, bid) = (os_user(alice), os_user(bob));
    let t = two_purposes(alice, bob);
    let m = mount_shared(&t);
    let root = m.dir.display().to_string();

    let ls = |id: (u32, u32)| text(&sh_as(id, &format!("ls '{root}'")));
    assert_eq!(ls(aid), format!("{alice}\n"));
    assert_eq!(ls(bid), format!("{bob}\n"));
    let all = std::fs::read_dir(&m.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(
        all,
        [alice.to_string(), bob.to_string()].into_iter().collect()
    );

    // alice uses her folder; at once bob asks for it by name: it does not exist for him
    for _ in 0..5 {
        let warm = sh_as(
            aid,
            &format!("ls -la '{root}/{alice}' >/dev/null && echo OK"),
        );
        assert_eq!(text(&warm).trim(), "OK", "{}", text(&warm));
        // `test -e` takes the kernel's cached attributes if it has them; stat and ls ask
        let probe = sh_as(
            bid,
            &format!("test -e '{root}/{alice}' && echo EXISTS; stat '{root}/{alice}'; ls '{root}/{alice}'"),
        );
        let said = text(&probe);
        assert!(
            said.contains("No such file or directory")
                && !said.contains("Permission denied")
                && !said.contains("EXISTS"),
            "bob learns that alice's folder exists: {said}"
        );
    }
    // root still reaches everyone's folder
    assert!(m.path(&format!("{bob}/print/events/e.jpg")).exists());

    // df works for both, with the same numbers: the inodes of the store's filesystem (free
    // ones, so monitoring does not see a full disk), not a count of photos
    let counts = |id: (u32, u32)| {
        let out = sh_as(
            id,
            &format!("df -i '{root}' >/dev/null && stat -f -c '%c %d' '{root}'"),
        );
        assert!(out.status.success(), "{}", text(&out));
        let said = text(&out);
        let n: Vec<u64> = said
            .split_whitespace()
            .map(|w| w.parse().unwrap_or_else(|_| panic!("{said}")))
            .collect();
        assert!(n.len() == 2 && n[1] > 0 && n[0] >= n[1], "{said}");
        n[0]
    };
    assert_eq!(counts(aid), counts(bid));

    // inode numbers of nodes handed out one after the other are far apart: a user cannot
    // count how many nodes others looked up in between
    let out = sh_as(
        aid,
        &format!(
            "stat -c %i '{0}/{1}/website' '{0}/{1}/website/events' '{0}/{1}/website/events/e.jpg' '{0}/{1}/website/hr' '{0}/{1}/website/hr/private' '{0}/{1}/website/hr/private/hr.jpg'",
            root, alice
        ),
    );
    let inos: Vec<u64> = text(&out)
        .lines()
        .map(|l| {
            l.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{}", text(&out)))
        })
        .collect();
    assert_eq!(inos.len(), 6, "{}", text(&out));
    for (i, a) in inos.iter().enumerate() {
        for b in &inos[i + 1..] {
            assert!(a.abs_diff(*b) > 1 << 32, "close inode numbers: {inos:?}");
        }
    }
}

/// Issue 15 item 6: the designer's `mv shoot-a shoot-b` inside a purpose view moves the
/// folder's photos to the new collection path in one step: the same assets (ids, versions,
/// persons), below-folders included. Photos the user does not see stay where they are; a
/// user without a delete grant cannot do it, and then nothing moves; a consent given for the
/// old folder only does not follow the photo (the rules decide, as for any move).
#[test]
fn renaming_a_folder_with_photos_moves_them_in_one_step() {
    let designer = "cfs-mvdir";
    let id = os_user(designer);
    let t = TestStore::new();
    t.write("a/anna.jpg", b"anna on the stairs");
    t.write("a/hall.jpg", b"empty hall");
    t.write("a/sub/door.jpg", b"a door");
    t.write("a/bert.jpg", b"bert, who did not consent");
    t.write("a/carl.jpg", b"carl, consent for shoot-a only");
    t.ok(&[
        "import",
        "--collection",
        "shoot-a",
        t.path("a").to_str().unwrap(),
    ]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["person", "add", "Bert"]);
    t.ok(&["person", "add", "Carl"]);
    t.ok(&["link", "shoot-a/anna.jpg", "Anna"]);
    t.ok(&["link", "shoot-a/bert.jpg", "Bert"]);
    t.ok(&["link", "shoot-a/carl.jpg", "Carl"]);
    t.ok(&["mark", "shoot-a/hall.jpg", "--no-persons"]);
    t.ok(&["mark", "shoot-a/sub/door.jpg", "--no-persons"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    t.ok(&[
        "consent",
        "grant",
        "Carl",
        "--purpose",
        "website",
        "--collection",
        "shoot-a",
    ]);
    t.ok(&["user", "add", designer]);
    t.ok(&[
        "user",
        "grant",
        designer,
        "--purpose",
        "website",
        "--access",
        "write",
    ]);
    let m = mount_shared(&t);
    let web = m.path(&format!("{designer}/website"));
    let asset_id = |p: &str| -> String {
        let out = sh_as(
            id,
            &format!(
                "getfattr --absolute-names --only-values -n user.consentfs.asset '{}/{p}'",
                web.display()
            ),
        );
        text(&out).trim().to_string()
    };
    let before = [
        asset_id("shoot-a/anna.jpg"),
        asset_id("shoot-a/sub/door.jpg"),
    ];
    // a save through the mount first: the photo has two versions
    let out = sh_as(
        id,
        &format!(
            "printf ' retouched' >> '{}/shoot-a/hall.jpg'",
            web.display()
        ),
    );
    assert!(out.status.success(), "{}", text(&out));

    // with a write grant only, a rename that takes photos out of shoot-a is refused, whole
    let out = sh_as(
        id,
        &format!("mv '{0}/shoot-a' '{0}/shoot-b'", web.display()),
    );
    assert!(!out.status.success(), "moved without a delete grant");
    assert!(text(&out).contains("Permission denied"), "{}", text(&out));
    let listed = t
        .ok(&["ls", "--user", designer, "--purpose", "website"])
        .stdout;
    assert!(
        listed.contains("shoot-a/anna.jpg") && !listed.contains("shoot-b"),
        "{listed}"
    );

    // with a delete grant: one rename, no copies, no trash
    t.ok(&[
        "user",
        "grant",
        designer,
        "--purpose",
        "website",
        "--access",
        "delete",
    ]);
    let out = sh_as(
        id,
        &format!(
            "mv '{0}/shoot-a' '{0}/shoot-b' && ls -R '{0}'",
            web.display()
        ),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !web.join("shoot-a").exists(),
        "the old folder is gone from the view"
    );
    let read = |p: &str| std::fs::read(web.join(p)).unwrap_or_default();
    assert_eq!(read("shoot-b/anna.jpg"), b"anna on the stairs");
    assert_eq!(read("shoot-b/hall.jpg"), b"empty hall retouched");
    assert_eq!(read("shoot-b/sub/door.jpg"), b"a door");
    assert_eq!(
        [
            asset_id("shoot-b/anna.jpg"),
            asset_id("shoot-b/sub/door.jpg")
        ],
        before,
        "the same assets"
    );
    let subjects = sh_as(id, &format!("getfattr --absolute-names --only-values -n user.consentfs.subjects '{}/shoot-b/anna.jpg'", web.display()));
    assert_eq!(text(&subjects).trim(), "1", "the persons stay linked");
    let trash = t.ok(&["trash", "list", "--json"]).json();
    assert_eq!(
        trash.as_array().map(|a| a.len()),
        Some(0),
        "nothing went to the trash: {trash}"
    );
    let versions = t.ok(&["versions", "shoot-b/hall.jpg", "--json"]).json();
    assert_eq!(versions.as_array().map(|a| a.len()), Some(2), "{versions}");
    // what the designer did not see stays in shoot-a; Carl's consent covered shoot-a only,
    // so his photo, moved along while it was visible, is no longer shown at shoot-b
    let all = t
        .ok(&["ls", "--user", designer, "--purpose", "website", "--hidden"])
        .stdout;
    assert!(all.contains("shoot-a/bert.jpg"), "{all}");
    assert!(all.contains("shoot-b/carl.jpg"), "{all}");
    assert!(
        !web.join("shoot-b/carl.jpg").exists(),
        "a consent for shoot-a only does not follow the photo"
    );
    // and the audit log says each photo moved
    let audit = t.ok(&["audit", "list", "--json"]).json();
    let moves = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "asset.move")
        .count();
    assert_eq!(moves, 4, "{audit}");
}
