//! Helpers shared by the integration tests: a fresh store in a temp dir and a way to run the
//! real `consentfs` binary against it.
#![allow(dead_code)]

pub mod mount;
pub mod pg;
pub mod s3;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_consentfs");

/// In the test's folder: the database the matrix's team run made for this store.
const MATRIX_DB: &str = "matrix-db.url";

/// In the test's folder: a team library's objects (the test matrix's team run).
pub const SHARED_OBJECTS: &str = "shared-objects";

pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    pub key: PathBuf,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub raw: Vec<u8>,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

fn to_run(o: Output) -> Run {
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        raw: o.stdout,
    }
}

impl TestStore {
    /// A new store opened with a key file.
    /// In the test matrix's team run (`CONSENTFS_TEST_TEAM`, see `contrib/test.sh`), it is
    /// this machine's copy of a team library with a database of its own and its objects in a
    /// shared folder of the test's; the commands then use the copy's folder as `--store`.
    pub fn new() -> TestStore {
        Self::init_with(&["init"])
    }

    /// A new store whose time zone is `zone` (`init --timezone`).
    pub fn with_timezone(zone: &str) -> TestStore {
        Self::init_with(&["init", "--timezone", zone])
    }

    fn init_with(args: &[&str]) -> TestStore {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("store");
        let key = dir.path().join("key");
        let t = TestStore { dir, store, key };
        match pg::matrix() {
            Some(base) => {
                let url = pg::new_database(&base);
                std::fs::write(t.path(MATRIX_DB), &url).unwrap();
                let objects = format!("file://{}", t.path(SHARED_OBJECTS).display());
                let mut c = t.cmd();
                c.env("CONSENTFS_STORE", &url)
                    .env("CONSENTFS_REPLICA", &t.store)
                    .env("CONSENTFS_OBJECTS", &objects)
                    .args(args);
                let r = to_run(c.output().expect("run consentfs"));
                assert_eq!(r.code, 0, "team init failed: {}{}", r.stdout, r.stderr);
            }
            None => {
                t.ok(args);
            }
        }
        t
    }

    /// Whether this store is a team library's copy (the matrix's team run).
    pub fn is_team(&self) -> bool {
        self.store.join("team.url").exists()
    }

    /// Where the store's object files are: its own `objects/`, or the team library's shared
    /// folder in the matrix's team run.
    pub fn objects_dir(&self) -> PathBuf {
        if self.is_team() {
            self.path(SHARED_OBJECTS)
        } else {
            self.store.join("objects")
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CONSENTFS_STORE", &self.store)
            .env("CONSENTFS_KEY_FILE", &self.key)
            .env("CONSENTFS_ANCHOR", self.anchor())
            .env("CONSENTFS_SOCKET", self.socket());
        // a store whose objects are in a bucket (`s3::store_in_bucket`): its AWS_* settings
        if let Ok(env) = std::fs::read_to_string(self.dir.path().join(s3::ENV_FILE)) {
            for line in env.lines() {
                if let Some((k, v)) = line.split_once('=') {
                    c.env(k, v);
                }
            }
        }
        c
    }

    /// The control socket of this test's daemon (never the machine's default one).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("control.sock")
    }

    /// The store's rollback anchor (kept in the test's folder, not in /var/lib).
    pub fn anchor(&self) -> PathBuf {
        self.dir.path().join("anchor.json")
    }

    /// Run and return whatever happened.
    pub fn run(&self, args: &[&str]) -> Run {
        to_run(self.cmd().args(args).output().expect("run consentfs"))
    }

    /// Run; it must succeed (exit 0).
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(
            r.code, 0,
            "consentfs {args:?} failed: {}{}",
            r.stdout, r.stderr
        );
        r
    }

    /// `consentfs user add LOGIN` for an OS account that exists (created with useradd if
    /// needed): `user add` refuses logins the machine does not know.
    pub fn add_user(&self, login: &str) -> Run {
        mount::os_user(login);
        self.ok(&["user", "add", login])
    }

    /// Run; it must fail with exit 2, leave the store as it was, and say `expect` on stderr.
    pub fn fails(&self, args: &[&str], expect: &str) -> Run {
        let before = self.state();
        let r = self.run(args);
        assert_eq!(
            r.code, 2,
            "consentfs {args:?} should fail with 2: {}{}",
            r.stdout, r.stderr
        );
        assert!(
            r.stderr.to_lowercase().contains(&expect.to_lowercase()),
            "consentfs {args:?}: stderr should mention '{expect}': {}",
            r.stderr
        );
        assert_eq!(
            before,
            self.state(),
            "consentfs {args:?} changed the store although it failed"
        );
        r
    }

    /// What a failed command must not change: the audit log (every change appends to it), the
    /// set of object files and the keyring.
    pub fn state(&self) -> (String, Vec<String>, Vec<u8>) {
        let audit = self.ok(&["audit", "list", "--json"]).stdout;
        let mut objects = Vec::new();
        collect_files(&self.objects_dir(), &mut objects);
        let mut names: Vec<String> = objects.iter().map(|p| p.display().to_string()).collect();
        names.sort();
        (
            audit,
            names,
            std::fs::read(self.store.join("keyring")).unwrap(),
        )
    }

    pub fn write(&self, rel: &str, content: &[u8]) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    /// The store opened through the library, for tests that tamper with it. A team library's
    /// copy is opened as the plain catalog file it is (its `team.url` out of sight while it
    /// is opened): changes made on it are someone editing this machine's file with the key,
    /// which consentfs's own connections refuse to do.
    pub fn open_catalog(&self) -> (consentfs::store::Store, consentfs::catalog::Catalog) {
        let store = consentfs::store::Store::open(
            &self.store,
            &consentfs::crypto::keyring::Unlock::KeyFile(self.key.clone()),
        )
        .unwrap();
        let team = self.store.join("team.url");
        let aside = self.path("team.url.aside");
        let is_team = team.exists();
        if is_team {
            std::fs::rename(&team, &aside).unwrap();
        }
        let cat = consentfs::catalog::Catalog::open(
            &store.catalog_path(),
            &store.catalog_key(),
            store.audit_key(),
        );
        if is_team {
            std::fs::rename(&aside, &team).unwrap();
        }
        (store, cat.unwrap())
    }
}

/// In the matrix's team run, a test's database is dropped when its store goes (hundreds of
/// them would fill the disk of the machine the suite runs on).
impl Drop for TestStore {
    fn drop(&mut self) {
        let Some(base) = pg::matrix() else { return };
        // only the store that made the database drops it (a copy of its folder names it too)
        if let Ok(url) = std::fs::read_to_string(self.path(MATRIX_DB)) {
            pg::drop_database(&base, url.trim());
        }
    }
}

/// Put the backup `dest` in place of the store, as the README's restore says (`cp -a`).
pub fn restore_backup(t: &TestStore, dest: &Path) {
    std::fs::remove_dir_all(&t.store).unwrap();
    let st = Command::new("cp")
        .args(["-a", dest.to_str().unwrap(), t.store.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// The ids (hex) of the objects the catalog knows.
pub fn known_objects(t: &TestStore) -> std::collections::HashSet<String> {
    let (_s, cat) = t.open_catalog();
    let ids = cat
        .conn()
        .prepare("SELECT id FROM objects")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    ids
}

pub fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                collect_files(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

/// Paths visible to `user` in `purpose`, sorted, according to `consentfs ls --json`.
pub fn visible(t: &TestStore, user: &str, purpose: &str) -> Vec<String> {
    visible_in(
        &t.ok(&["ls", "--user", user, "--purpose", purpose, "--json"])
            .json(),
    )
}

/// The paths `ls --json` output `v` shows as visible, sorted.
pub fn visible_in(v: &serde_json::Value) -> Vec<String> {
    let mut paths: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["visible"].as_bool().unwrap())
        .map(|i| i["path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    paths
}

/// SQL that takes a catalog back from schema 17 to 11 (before the consent page's invitations and
/// purpose texts, face scans, suggestions, image
/// hashes, sidecars and the trash's index), for the tests that migrate an older catalog: run it before their own
/// steps back.
pub const BEFORE_FACES: &str = "ALTER TABLE persons DROP COLUMN email;
     DROP INDEX invitations_person;
     DROP INDEX invitations_decider;
     DROP TABLE invitation_purposes;
     DROP TABLE invitations;
     ALTER TABLE purposes DROP COLUMN description;
     ALTER TABLE purposes DROP COLUMN audience;
     DROP INDEX assets_trash;
     DROP INDEX assets_companions;
     ALTER TABLE assets DROP COLUMN companion_of;
     DROP TABLE image_hashes;
     DROP INDEX suggestions_open;
     DROP TABLE suggestions;
     DROP TABLE face_scans;
     ALTER TABLE assets DROP COLUMN faces;
     ALTER TABLE assets DROP COLUMN faces_reviewed;
     ALTER TABLE links DROP COLUMN face;";

/// A store with one photo, `collection/<file>` holding `content`, of Anna, who consented to
/// `purposes` (comma-separated).
pub fn anna_consented(collection: &str, file: &str, content: &[u8], purposes: &str) -> TestStore {
    let t = TestStore::new();
    t.write(&format!("in/{file}"), content);
    t.ok(&[
        "import",
        "--collection",
        collection,
        t.path("in").to_str().unwrap(),
    ]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["link", &format!("{collection}/{file}"), "Anna"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", purposes]);
    t
}

/// A store with one consented photo of Anna and one without persons, visible to `login`.
pub fn small_store(login: &str) -> TestStore {
    let t = TestStore::new();
    t.write("shoot/a.jpg", b"photo of anna");
    t.write("shoot/hall.jpg", b"empty hall");
    t.ok(&["import", t.path("shoot").to_str().unwrap()]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["link", "a.jpg", "Anna"]);
    t.ok(&["mark", "hall.jpg", "--no-persons"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
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

/// Hold the catalog's WAL write lock (byte 120 of the -shm file, as SQLite takes it) from
/// another process, as a command in the middle of a long transaction would, until the returned
/// child is killed (at most 60 s).
pub fn hold_catalog_write_lock(t: &TestStore) -> std::process::Child {
    let mut holder = Command::new("/usr/bin/python3")
        .args([
            "-c",
            &format!(
                "import fcntl,os,sys,time\nfd=os.open('{}',os.O_RDWR)\nfcntl.lockf(fd,fcntl.LOCK_EX|fcntl.LOCK_NB,1,120)\nprint('locked',flush=True)\ntime.sleep(60)",
                t.store.join("catalog.db-shm").display()
            ),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().expect("stdout")),
        &mut line,
    )
    .expect("read from the lock holder");
    assert_eq!(
        line.trim(),
        "locked",
        "could not take the catalog's write lock"
    );
    holder
}

/// Run a Python script (the system's `/usr/bin/python3`, which other accounts can run too) in
/// `dir`; its standard output. Fails the test, with both outputs, if the script fails.
pub fn py(dir: &Path, script: &str) -> String {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
