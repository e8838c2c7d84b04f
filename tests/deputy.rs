//! No confused deputy (issue 15 item 4): the daemon runs as root, but the files a user names
//! through the control socket (import sources, evidence, export and report destinations) are
//! opened and written as that user. Real OS users, a real mount and its socket: a user who
//! cannot read a file cannot import it or attach it as evidence, cannot make the daemon write
//! into a folder they cannot write, and what they export belongs to them.

mod common;

use common::mount::{os_user, run_as, Mount};
use common::{TestStore, BIN};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

struct Office {
    t: TestStore,
    editor: (u32, u32),
    officer: (u32, u32),
    designer: (u32, u32),
    /// A file only root may read: `secret/secret.jpg` in a 0700 folder.
    secret: PathBuf,
    /// A folder everyone may enter but only root may write.
    roots: PathBuf,
}

fn office() -> Office {
    let t = common::anna_consented("shoot", "anna.jpg", b"anna on the stairs", "website");
    let member = |login: &str, role: Option<&str>| {
        let id = os_user(login);
        t.ok(&["user", "add", login]);
        if let Some(r) = role {
            t.ok(&["role", "grant", login, r]);
        }
        id
    };
    let editor = member("cfs-dp-ed", Some("editor"));
    let officer = member("cfs-dp-po", Some("privacy-officer"));
    let designer = member("cfs-dp-des", None);
    t.ok(&["user", "grant", "cfs-dp-des", "--purpose", "website"]);
    std::fs::set_permissions(t.dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
    // each person's own folder
    for (name, id) in [("ed", editor), ("po", officer), ("des", designer)] {
        let home = t.path(&format!("home-{name}"));
        std::fs::create_dir(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(id.0), Some(id.1)).unwrap();
        std::fs::set_permissions(&home, PermissionsExt::from_mode(0o700)).unwrap();
    }
    t.write("secret/secret.jpg", b"root's own photo");
    std::fs::set_permissions(t.path("secret"), PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::set_permissions(
        t.path("secret/secret.jpg"),
        PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let roots = t.path("roots");
    std::fs::create_dir(&roots).unwrap();
    std::fs::set_permissions(&roots, PermissionsExt::from_mode(0o755)).unwrap();
    Office {
        secret: t.path("secret/secret.jpg"),
        roots,
        t,
        editor,
        officer,
        designer,
    }
}

impl Office {
    /// `consentfs ARGS` as `who`, from the folder `cwd`: (exit code, stdout, stderr).
    fn run(&self, who: (u32, u32), cwd: &Path, args: &str) -> (i32, String, String) {
        let out = run_as(
            who.0,
            who.1,
            &format!(
                "cd '{}' && CONSENTFS_SOCKET='{}' '{BIN}' {args}",
                cwd.display(),
                self.t.socket().display()
            ),
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Run and expect success.
    fn ok(&self, who: (u32, u32), cwd: &Path, args: &str) {
        let (code, out, err) = self.run(who, cwd, args);
        assert_eq!(code, 0, "`{args}`: {out}{err}");
    }

    /// Run and expect the kernel's refusal, checked as `who`.
    fn denied(&self, who: (u32, u32), cwd: &Path, args: &str) {
        let (code, _, err) = self.run(who, cwd, args);
        assert_ne!(code, 0, "`{args}` went through for a user who may not");
        assert!(
            err.to_lowercase().contains("permission denied"),
            "`{args}`: {err}"
        );
    }

    fn home(&self, name: &str) -> PathBuf {
        self.t.path(&format!("home-{name}"))
    }

    fn asset_paths(&self) -> Vec<String> {
        let v = self.t.ok(&["assets", "--json"]).json();
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| a["path"].as_str().unwrap().to_string())
            .collect()
    }
}

#[test]
fn an_editor_imports_what_they_can_read_and_nothing_else() {
    let o = office();
    let _m = Mount::start(&o.t);
    let home = o.home("ed");
    // the secret by its full path, and by a path relative to where the editor is
    o.denied(
        o.editor,
        &home,
        &format!("import --collection stolen '{}'", o.secret.display()),
    );
    o.denied(o.editor, &home, "import --collection stolen ../secret");
    // a file of links is read as the editor too
    o.denied(
        o.editor,
        &home,
        &format!("link --csv '{}'", o.secret.display()),
    );
    assert!(
        !o.asset_paths().iter().any(|p| p.starts_with("stolen")),
        "{:?}",
        o.asset_paths()
    );
    // the editor's own file, named relative to the editor's folder (not the daemon's)
    let mine = home.join("pic.jpg");
    std::fs::write(&mine, b"the editor's own photo").unwrap();
    std::os::unix::fs::chown(&mine, Some(o.editor.0), Some(o.editor.1)).unwrap();
    o.ok(o.editor, &home, "import --collection mine pic.jpg");
    assert!(o.asset_paths().contains(&"mine/pic.jpg".to_string()));
    let cat = o.t.ok(&["cat", "mine/pic.jpg"]).stdout;
    assert_eq!(cat, "the editor's own photo");
}

#[test]
fn evidence_is_read_as_the_officer() {
    let o = office();
    let _m = Mount::start(&o.t);
    let home = o.home("po");
    o.denied(
        o.officer,
        &home,
        &format!(
            "consent grant Anna --purpose print --evidence '{}'",
            o.secret.display()
        ),
    );
    let events = o.t.ok(&["consent", "list", "--json"]).json();
    assert!(
        !events.to_string().contains("\"print\""),
        "a consent was recorded although its evidence was refused: {events}"
    );
    let form = home.join("form.txt");
    std::fs::write(&form, b"signed by Anna").unwrap();
    std::os::unix::fs::chown(&form, Some(o.officer.0), Some(o.officer.1)).unwrap();
    o.ok(
        o.officer,
        &home,
        "consent grant Anna --purpose print --evidence form.txt",
    );
}

#[test]
fn exports_and_reports_are_written_as_the_user_who_asked() {
    let o = office();
    let _m = Mount::start(&o.t);
    let home = o.home("des");
    // a folder only root may write: refused, and nothing appears there
    o.denied(
        o.designer,
        &home,
        &format!(
            "export --user cfs-dp-des --purpose website '{}/out'",
            o.roots.display()
        ),
    );
    assert_eq!(std::fs::read_dir(&o.roots).unwrap().count(), 0);
    // a link in the designer's own folder to root's folder does not help
    std::os::unix::fs::symlink(&o.roots, home.join("link")).unwrap();
    o.denied(
        o.designer,
        &home,
        "export --user cfs-dp-des --purpose website link/out",
    );
    assert_eq!(std::fs::read_dir(&o.roots).unwrap().count(), 0);

    // into the designer's own folder, by a relative path: every file is the designer's
    o.ok(
        o.designer,
        &home,
        "export --user cfs-dp-des --purpose website out",
    );
    let photo = home.join("out/shoot/anna.jpg");
    assert_eq!(std::fs::read(&photo).unwrap(), b"anna on the stairs");
    for p in [
        home.join("out"),
        home.join("out/shoot"),
        photo.clone(),
        home.join("out/manifest.json"),
    ] {
        let md = std::fs::metadata(&p).unwrap();
        assert_eq!(
            md.uid(),
            o.designer.0,
            "{} belongs to uid {}",
            p.display(),
            md.uid()
        );
        assert_eq!(md.mode() & 0o077, 0, "{} is not private", p.display());
    }
    // the designer checks it, also as themselves
    o.ok(o.designer, &home, "export verify out");
    // an update in place, and one with location stripped (exiftool runs as the designer)
    o.ok(
        o.designer,
        &home,
        "export --user cfs-dp-des --purpose website --sync out",
    );
    o.ok(
        o.designer,
        &home,
        "export --user cfs-dp-des --purpose website --strip-location stripped",
    );
    for p in walk(&home.join("stripped")) {
        let md = std::fs::symlink_metadata(&p).unwrap();
        assert_eq!(
            md.uid(),
            o.designer.0,
            "{} is not the designer's",
            p.display()
        );
    }

    // the officer's report on Anna: into root's folder refused, into their own theirs
    let po_home = o.home("po");
    o.denied(
        o.officer,
        &po_home,
        &format!("person report Anna '{}/report'", o.roots.display()),
    );
    assert_eq!(std::fs::read_dir(&o.roots).unwrap().count(), 0);
    o.ok(o.officer, &po_home, "person report Anna report");
    let mut seen = 0;
    for entry in walk(&po_home.join("report")) {
        let md = std::fs::symlink_metadata(&entry).unwrap();
        assert_eq!(
            md.uid(),
            o.officer.0,
            "{} is not the officer's",
            entry.display()
        );
        seen += 1;
    }
    assert!(seen >= 3, "the report holds {seen} entries");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
