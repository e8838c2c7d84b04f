//! The filesystem core without FUSE: the same store the CLI writes, seen through `Vfs` as two
//! users would see it, with live refreshes of the view.

mod common;

use common::TestStore;
use consentfs::vfs::{Accounts, Caller, Kind, Limits, Vfs};
use consentfs::view::View;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

/// The three users as real OS accounts: `user add` binds a user to their account's uid, and
/// the filesystem shows a tree only to that account.
fn caller(login: &str) -> Caller {
    let (uid, gid) = common::mount::os_user(login);
    Caller { uid, gid, pid: 0 }
}
static ALICE: LazyLock<Caller> = LazyLock::new(|| caller("alice"));
static BOB: LazyLock<Caller> = LazyLock::new(|| caller("bob"));
static EVE: LazyLock<Caller> = LazyLock::new(|| caller("eve"));

struct Mounted {
    t: TestStore,
    vfs: Vfs,
    view: Arc<RwLock<View>>,
    cat: consentfs::catalog::Catalog,
}

impl Mounted {
    fn refresh(&self) -> Vec<consentfs::vfs::Invalidation> {
        let changes = self
            .view
            .write()
            .unwrap()
            .refresh(self.cat.conn(), chrono::Utc::now())
            .unwrap();
        self.vfs.invalidations(&changes)
    }

    /// Give alice `access` (write, delete) on the website photos of events/2026/sub, live.
    fn grant_alice_in_sub(&self, access: &str) {
        self.grant_alice_in("events/2026/sub", access);
    }

    /// Give alice `access` on the website photos of `collection`, live.
    fn grant_alice_in(&self, collection: &str, access: &str) {
        self.t.ok(&[
            "user",
            "grant",
            "alice",
            "--purpose",
            "website",
            "--collection",
            collection,
            "--access",
            access,
        ]);
        self.refresh();
    }

    /// Walk a path from the root as `who`; returns the inode.
    fn walk(&self, who: Caller, path: &str) -> consentfs::Result<u64> {
        let mut ino = 1;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            ino = self.vfs.lookup(who, ino, part)?.ino;
        }
        Ok(ino)
    }

    fn names(&self, who: Caller, path: &str) -> Vec<String> {
        let ino = self.walk(who, path).unwrap();
        self.vfs
            .readdir(who, ino, false)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect()
    }

    fn read_all(&self, who: Caller, path: &str) -> consentfs::Result<Vec<u8>> {
        let ino = self.walk(who, path)?;
        let fh = self.vfs.open(who, ino, false, false)?;
        let mut out = Vec::new();
        loop {
            let part = self.vfs.read(fh, out.len() as u64, 100_000)?;
            if part.is_empty() {
                break;
            }
            out.extend(part);
        }
        self.vfs.release(fh);
        Ok(out)
    }
}

fn mounted() -> Mounted {
    mounted_with(Limits::default())
}

fn mounted_with(limits: Limits) -> Mounted {
    let t = TestStore::new();
    t.write("shoot/a.jpg", b"photo of anna");
    t.write("shoot/sub/b.jpg", b"photo of bert");
    t.write("shoot/hall.jpg", b"empty hall");
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
    t.ok(&["mark", "events/2026/hall.jpg", "--no-persons"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    t.ok(&["consent", "grant", "Bert", "--purpose", "website,print"]);
    t.add_user("alice");
    t.ok(&["user", "grant", "alice", "--purpose", "website,print"]);
    t.add_user("bob");
    t.ok(&[
        "user",
        "grant",
        "bob",
        "--purpose",
        "website",
        "--collection",
        "events/2026/sub",
    ]);
    t.add_user("eve");
    let (store, cat) = t.open_catalog();
    let view = Arc::new(RwLock::new(
        View::load(cat.conn(), chrono::Utc::now()).unwrap(),
    ));
    let mut accounts: HashMap<String, (u32, u32)> = HashMap::new();
    accounts.insert("alice".into(), (ALICE.uid, ALICE.gid));
    accounts.insert("bob".into(), (BOB.uid, BOB.gid));
    accounts.insert("eve".into(), (EVE.uid, EVE.gid));
    let accounts: Box<dyn Accounts> = Box::new(accounts);
    let (_s2, cat2) = t.open_catalog();
    let vfs = Vfs::new(Arc::new(store), view.clone(), accounts, cat2).with_limits(limits);
    Mounted { t, vfs, view, cat }
}

#[test]
fn each_user_sees_their_grants_only() {
    let m = mounted();
    // the root lists the caller's own folder only; root sees everyone with a grant
    let root = Caller {
        uid: 0,
        gid: 0,
        pid: 0,
    };
    assert_eq!(
        m.names(root, ""),
        vec!["alice", "bob"],
        "eve has no grants, so no folder"
    );
    assert_eq!(m.names(*ALICE, ""), vec!["alice"]);
    assert_eq!(m.names(*BOB, ""), vec!["bob"]);
    assert!(m.names(*EVE, "").is_empty());
    assert_eq!(m.names(*ALICE, "alice"), vec!["print", "website"]);
    assert_eq!(
        m.names(*ALICE, "alice/website/events/2026"),
        vec!["sub", "a.jpg", "hall.jpg"]
    );
    assert_eq!(
        m.names(*ALICE, "alice/print/events/2026"),
        vec!["sub", "hall.jpg"]
    );
    assert_eq!(m.names(*BOB, "bob/website"), vec!["events"]);
    assert_eq!(
        m.names(*BOB, "bob/website/events/2026"),
        vec!["sub"],
        "bob's grant covers sub only"
    );
    assert_eq!(m.names(*BOB, "bob/website/events/2026/sub"), vec!["b.jpg"]);
    assert!(m.walk(*BOB, "bob/website/events/2026/a.jpg").is_err());
    assert_eq!(
        m.read_all(*ALICE, "alice/website/events/2026/a.jpg")
            .unwrap(),
        b"photo of anna"
    );
}

#[test]
fn nobody_enters_another_users_tree() {
    let m = mounted();
    let alice_dir = m.walk(*ALICE, "alice").unwrap();
    for who in [*BOB, *EVE] {
        assert_eq!(
            m.vfs.readdir(who, alice_dir, false).unwrap_err().errno(),
            libc::EACCES
        );
        assert_eq!(
            m.vfs.lookup(who, alice_dir, "website").unwrap_err().errno(),
            libc::EACCES
        );
    }
    // even holding an inode number alice's lookups created
    let file = m.walk(*ALICE, "alice/website/events/2026/a.jpg").unwrap();
    for who in [*BOB, *EVE] {
        assert_eq!(m.vfs.getattr(who, file).unwrap_err().errno(), libc::EACCES);
        assert_eq!(
            m.vfs.open(who, file, false, false).unwrap_err().errno(),
            libc::EACCES
        );
        assert_eq!(
            m.vfs
                .getxattr(who, file, "user.consentfs.asset")
                .unwrap_err()
                .errno(),
            libc::EACCES
        );
    }
    let attr = m.vfs.getattr(*ALICE, file).unwrap();
    assert_eq!(
        (attr.uid, attr.perm, attr.kind),
        (ALICE.uid, 0o400, Kind::File)
    );
    assert_eq!(m.vfs.getattr(*ALICE, alice_dir).unwrap().perm, 0o700);
}

#[test]
fn withdrawal_hides_at_once_and_revokes_open_handles() {
    let m = mounted();
    let file = m.walk(*ALICE, "alice/website/events/2026/a.jpg").unwrap();
    let fh = m.vfs.open(*ALICE, file, false, false).unwrap();
    assert_eq!(m.vfs.read(fh, 0, 5).unwrap(), b"photo");
    m.t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    let inval = m.refresh();
    assert!(
        inval.contains(&consentfs::vfs::Invalidation::Entry {
            parent: m.walk(*ALICE, "alice/website/events/2026").unwrap(),
            name: "a.jpg".into()
        }),
        "the kernel is told to forget the name: {inval:?}"
    );
    assert!(inval.contains(&consentfs::vfs::Invalidation::Inode { ino: file }));
    assert_eq!(m.vfs.read(fh, 5, 5).unwrap_err().errno(), libc::EACCES);
    assert!(m.walk(*ALICE, "alice/website/events/2026/a.jpg").is_err());
    // the inode of the open descriptor answers as its reads do (the kernel asks for the size
    // before a read that may pass the end): EACCES, never a "no such file" for an open file
    assert_eq!(
        m.vfs.getattr(*ALICE, file).unwrap_err().errno(),
        libc::EACCES
    );
    m.vfs.release(fh);
    assert_eq!(
        m.vfs.getattr(*ALICE, file).unwrap_err().errno(),
        libc::ENOENT
    );
    assert_eq!(
        m.names(*ALICE, "alice/website/events/2026"),
        vec!["sub", "hall.jpg"]
    );
    // granting again brings it back
    m.t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    m.refresh();
    assert_eq!(
        m.read_all(*ALICE, "alice/website/events/2026/a.jpg")
            .unwrap(),
        b"photo of anna"
    );
}

#[test]
fn empty_folders_vanish_and_new_imports_appear() {
    let m = mounted();
    m.t.ok(&["consent", "withdraw", "Bert", "--purpose", "website"]);
    m.refresh();
    assert_eq!(
        m.names(*ALICE, "alice/website/events/2026"),
        vec!["a.jpg", "hall.jpg"]
    );
    assert!(
        m.walk(*BOB, "bob/website/events").is_err(),
        "nothing left for bob"
    );
    assert!(m.names(*BOB, "bob/website").is_empty());
    let p = m.t.write("new/c.jpg", b"new photo");
    m.t.ok(&[
        "import",
        "--collection",
        "events/2026/sub",
        p.to_str().unwrap(),
    ]);
    m.t.ok(&["mark", "events/2026/sub/c.jpg", "--no-persons"]);
    m.refresh();
    assert_eq!(m.names(*BOB, "bob/website/events/2026/sub"), vec!["c.jpg"]);
    assert_eq!(
        m.read_all(*BOB, "bob/website/events/2026/sub/c.jpg")
            .unwrap(),
        b"new photo"
    );
}

#[test]
fn user_and_grant_changes_apply_live() {
    let m = mounted();
    m.t.ok(&["user", "grant", "eve", "--purpose", "print"]);
    m.refresh();
    assert_eq!(
        m.names(*EVE, "eve/print/events/2026"),
        vec!["sub", "hall.jpg"]
    );
}

#[test]
fn extended_attributes_describe_the_file() {
    let m = mounted();
    let file = m.walk(*ALICE, "alice/website/events/2026/a.jpg").unwrap();
    let names = m.vfs.listxattr(*ALICE, file).unwrap();
    assert_eq!(names.len(), 4);
    let get = |n: &str| String::from_utf8(m.vfs.getxattr(*ALICE, file, n).unwrap()).unwrap();
    assert_eq!(get("user.consentfs.asset"), "1");
    assert_eq!(get("user.consentfs.subjects"), "1");
    assert_eq!(get("user.consentfs.status"), "active");
    assert_eq!(get("user.consentfs.valid_until"), "none");
    assert_eq!(
        m.vfs
            .getxattr(*ALICE, file, "user.other")
            .unwrap_err()
            .errno(),
        libc::ENODATA
    );
}

#[test]
fn expiry_is_applied_by_the_timer() {
    let m = mounted();
    m.t.ok(&[
        "consent",
        "grant",
        "Anna",
        "--purpose",
        "print",
        "--until",
        "2s",
    ]);
    m.refresh();
    assert!(m.walk(*ALICE, "alice/print/events/2026/a.jpg").is_ok());
    let next = m
        .view
        .read()
        .unwrap()
        .next_transition()
        .expect("a transition is pending");
    let changes = m.view.write().unwrap().expire(next);
    assert!(!changes.is_empty());
    assert!(m.walk(*ALICE, "alice/print/events/2026/a.jpg").is_err());
}

#[test]
fn tampered_object_reads_as_eio() {
    let m = mounted();
    let (_store, cat) = m.t.open_catalog();
    let v = consentfs::catalog::assets::version(cat.conn(), 1, None).unwrap();
    let hex = v.object.hex();
    let path = m.t.objects_dir().join(&hex[..2]).join(&hex[2..]);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let err = m
        .read_all(*ALICE, "alice/website/events/2026/a.jpg")
        .unwrap_err();
    assert_eq!(err.errno(), libc::EIO);
}

/// readdirplus hands out inodes from the listing taken at opendir. If the kernel forgot an
/// entry's inode in between (its dentry was evicted), the entry must still come out as an inode
/// the filesystem knows, or stat and open of it fail with ENOENT.
#[test]
fn readdirplus_entries_stay_valid_when_the_kernel_forgot_them_meanwhile() {
    let m = mounted();
    let dir = m.walk(*ALICE, "alice/website/events/2026").unwrap();
    let a = m.walk(*ALICE, "alice/website/events/2026/a.jpg").unwrap();
    let sub = m.walk(*ALICE, "alice/website/events/2026/sub").unwrap();
    let fh = m.vfs.opendir(*ALICE, dir).unwrap();
    // the kernel lets go of both (one lookup each) after the listing was taken
    m.vfs.forget(a, 1);
    m.vfs.forget(sub, 1);
    assert!(
        m.vfs.getattr(*ALICE, a).is_err(),
        "a forgotten inode is gone"
    );
    let entries = m.vfs.dir_entries(fh).unwrap();
    for e in entries.iter() {
        let ino = m.vfs.reference_entry(e);
        let attr = m.vfs.getattr(*ALICE, ino).unwrap_or_else(|err| {
            panic!(
                "{} handed out as inode {ino}, which is unknown: {err}",
                e.name
            )
        });
        assert_eq!(attr.kind, e.attr.kind, "{}", e.name);
        if e.name == "a.jpg" {
            let fh = m.vfs.open(*ALICE, ino, false, false).unwrap();
            assert_eq!(m.vfs.read(fh, 0, 100).unwrap(), b"photo of anna");
            m.vfs.release(fh);
        }
        if e.name == "sub" {
            assert_eq!(
                m.vfs
                    .readdir(*ALICE, ino, false)
                    .unwrap()
                    .into_iter()
                    .map(|e| e.name)
                    .collect::<Vec<_>>(),
                ["b.jpg"]
            );
        }
    }
    m.vfs.releasedir(fh);
}

fn errno_of<T: std::fmt::Debug>(r: consentfs::Result<T>) -> i32 {
    r.expect_err("should fail").errno()
}

#[test]
fn folders_and_drafts_are_bounded_per_user() {
    let m = mounted_with(Limits {
        folders: 30,
        drafts: 12,
        ..Limits::default()
    });
    m.grant_alice_in_sub("delete");
    let sub = m.walk(*ALICE, "alice/website/events/2026/sub").unwrap();
    for i in 0..30 {
        m.vfs.mkdir(*ALICE, sub, &format!("f{i}")).unwrap();
    }
    assert_eq!(
        errno_of(m.vfs.mkdir(*ALICE, sub, "one-too-many")),
        libc::EDQUOT
    );
    m.vfs.rmdir(*ALICE, sub, "f0").unwrap();
    m.vfs.mkdir(*ALICE, sub, "again").unwrap();
    // nested folders count too, and the folders are all there
    assert_eq!(m.names(*ALICE, "alice/website/events/2026/sub").len(), 31);
    let mut made = Vec::new();
    for i in 0..12 {
        let (_, fh) = m.vfs.create(*ALICE, sub, &format!("d{i}.txt")).unwrap();
        m.vfs.write(fh, 0, b"draft").unwrap();
        m.vfs.release(fh);
        made.push(format!("d{i}.txt"));
    }
    assert_eq!(errno_of(m.vfs.create(*ALICE, sub, "d12.txt")), libc::EDQUOT);
    // deleting one makes room
    m.vfs.unlink(*ALICE, sub, "d0.txt").unwrap();
    let (_, fh) = m.vfs.create(*ALICE, sub, "d12.txt").unwrap();
    m.vfs.release(fh);
}

#[test]
fn one_users_folders_do_not_slow_down_anyone_else() {
    let m = mounted();
    m.grant_alice_in_sub("write");
    let bobs = m.walk(*BOB, "bob/website/events/2026/sub").unwrap();
    let time_lookups = |who: Caller, dir: u64| {
        (0..3)
            .map(|_| {
                let start = std::time::Instant::now();
                for _ in 0..3_000 {
                    m.vfs.lookup(who, dir, "b.jpg").unwrap();
                    assert!(m.vfs.lookup(who, dir, "nothing.jpg").is_err());
                }
                start.elapsed()
            })
            .min()
            .unwrap()
    };
    let before = time_lookups(*BOB, bobs);
    let sub = m.walk(*ALICE, "alice/website/events/2026/sub").unwrap();
    for i in 0..10_000 {
        m.vfs.mkdir(*ALICE, sub, &format!("f{i}")).unwrap();
    }
    let after = time_lookups(*BOB, bobs);
    // a scan of 10,000 folders per lookup makes this hundreds of times slower
    assert!(
        after < before * 4 + std::time::Duration::from_millis(50),
        "bob's lookups took {before:?} before alice made 10,000 folders and {after:?} after"
    );
    // and alice's own lookups stay fast too
    let mine = time_lookups(*ALICE, sub);
    assert!(
        mine < before * 4 + std::time::Duration::from_millis(50),
        "alice's lookups: {mine:?} (bob's before: {before:?})"
    );
    assert_eq!(errno_of(m.vfs.mkdir(*ALICE, sub, "f10000")), libc::EDQUOT);
}

/// An editor saves through a temp file: the kernel keeps using the temp file's inode (and its
/// cached pages) under the photo's name. A withdrawal must invalidate that inode too, and reads
/// through the temp file's handle must fail.
#[test]
fn a_withdrawal_reaches_the_inode_of_a_temp_file_saved_over_the_photo() {
    let m = mounted();
    m.grant_alice_in_sub("write");
    let sub = m.walk(*ALICE, "alice/website/events/2026/sub").unwrap();
    let photo = m
        .read_all(*ALICE, "alice/website/events/2026/sub/b.jpg")
        .unwrap();
    let b_ino = m
        .walk(*ALICE, "alice/website/events/2026/sub/b.jpg")
        .unwrap();
    let b_id: i64 = String::from_utf8(
        m.vfs
            .getxattr(*ALICE, b_ino, "user.consentfs.asset")
            .unwrap(),
    )
    .unwrap()
    .parse()
    .unwrap();
    let (attr, fh) = m.vfs.create(*ALICE, sub, ".b.jpg.swp").unwrap();
    m.vfs.write(fh, 0, &photo).unwrap();
    m.vfs.commit(fh).unwrap();
    m.vfs
        .rename(*ALICE, sub, ".b.jpg.swp", sub, "b.jpg", false)
        .unwrap();
    assert_eq!(m.vfs.read(fh, 0, 100).unwrap(), photo);
    m.t.ok(&["consent", "withdraw", "Bert", "--purpose", "website"]);
    let pages = m.vfs.pages_of(Some(&[b_id]));
    assert!(
        pages.contains(&consentfs::vfs::Invalidation::Inode { ino: attr.ino }),
        "pages dropped before the change: {pages:?}"
    );
    let inval = m.refresh();
    assert!(
        inval.contains(&consentfs::vfs::Invalidation::Inode { ino: attr.ino }),
        "the temp file's inode is invalidated with the photo: {inval:?}"
    );
    assert_eq!(m.vfs.read(fh, 0, 100).unwrap_err().errno(), libc::EACCES);
    m.vfs.release(fh);
}

/// Another save (here a restore by a command) makes a new version of a photo a user has open.
/// A file open only for reading keeps the version it serves. An open for writing through that
/// file's inode (the kernel reached it through a name it had not yet been told went elsewhere)
/// is refused with ESTALE, which makes the kernel look the name up again; a file already open
/// for writing stays the name's file, so what it writes next is a version, not lost.
#[test]
fn a_save_elsewhere_never_leaves_a_writer_writing_to_a_file_left_behind() {
    let m = mounted();
    m.grant_alice_in_sub("write");
    let path = "alice/website/events/2026/sub/b.jpg";
    let save = |ino: u64, data: &[u8]| {
        let fh = m.vfs.open(*ALICE, ino, true, true).unwrap();
        m.vfs.write(fh, 0, data).unwrap();
        m.vfs.release(fh);
        m.refresh();
    };
    let restore = || {
        m.t.ok(&["restore", "events/2026/sub/b.jpg", "--version", "1"]);
        m.refresh();
    };
    let ino = m.walk(*ALICE, path).unwrap();
    save(ino, b"retouched");
    let reader = m.vfs.open(*ALICE, ino, false, false).unwrap();
    restore();
    assert_eq!(m.vfs.read(reader, 0, 100).unwrap(), b"retouched");
    assert_eq!(
        errno_of(m.vfs.open(*ALICE, ino, true, true)),
        libc::ESTALE,
        "an open for writing reached the file the restore left behind"
    );
    let now = m.walk(*ALICE, path).unwrap();
    assert_ne!(now, ino, "the name kept the inode of the file left behind");
    assert_eq!(m.read_all(*ALICE, path).unwrap(), b"photo of bert");
    save(now, b"0123456789");
    m.vfs.release(reader);
    assert_eq!(m.read_all(*ALICE, path).unwrap(), b"0123456789");

    let now = m.walk(*ALICE, path).unwrap();
    let writer = m.vfs.open(*ALICE, now, true, false).unwrap();
    restore();
    m.vfs.write(writer, 0, b"ab").unwrap();
    m.vfs.release(writer);
    m.refresh();
    assert_eq!(
        m.read_all(*ALICE, path).unwrap(),
        b"ab23456789",
        "a write through a file open before the restore is lost"
    );
}

/// "Tests that the promises lack": an open whose access entry cannot be written to the audit log
/// (for any reason other than a busy catalog) is refused, never served unrecorded.
#[test]
fn an_open_that_cannot_be_recorded_is_refused() {
    let m = mounted();
    let (store, cat) = m.t.open_catalog();
    // this connection can read but every write fails (not a busy lock: a hard failure)
    cat.conn().pragma_update(None, "query_only", true).unwrap();
    let view = Arc::new(RwLock::new(
        View::load(cat.conn(), chrono::Utc::now()).unwrap(),
    ));
    let mut accounts: HashMap<String, (u32, u32)> = HashMap::new();
    accounts.insert("alice".into(), (ALICE.uid, ALICE.gid));
    let vfs = Vfs::new(Arc::new(store), view, Box::new(accounts), cat);
    let mut ino = 1;
    for part in ["alice", "website", "events", "2026", "a.jpg"] {
        ino = vfs.lookup(*ALICE, ino, part).unwrap().ino;
    }
    let e = vfs.open(*ALICE, ino, false, false).unwrap_err();
    assert_eq!(e.errno(), libc::EIO, "{e}");
    // nothing was logged, so nothing may have been served: the same open through a vfs whose
    // catalog can be written succeeds
    let ino = m.walk(*ALICE, "alice/website/events/2026/a.jpg").unwrap();
    assert!(m.vfs.open(*ALICE, ino, false, false).is_ok());
}

/// Issue 13 (6): one user's unsaved writes are bounded (EDQUOT), and saving frees the room;
/// other users are not affected.
#[test]
fn unsaved_bytes_are_bounded_per_user() {
    let m = mounted_with(Limits {
        pending_bytes: 300_000,
        ..Limits::default()
    });
    m.grant_alice_in_sub("write");
    let sub = m.walk(*ALICE, "alice/website/events/2026/sub").unwrap();
    let (_, fh) = m.vfs.create(*ALICE, sub, "big.raw").unwrap();
    let block = vec![7u8; 64 * 1024];
    let mut refused = None;
    for i in 0..20u64 {
        if let Err(e) = m.vfs.write(fh, i * block.len() as u64, &block) {
            refused = Some((i, e.errno()));
            break;
        }
    }
    let (at, errno) = refused.expect("an endless write was never refused");
    assert_eq!(errno, libc::EDQUOT);
    assert!((3..=5).contains(&at), "refused after {at} blocks of 64 KiB");
    // a save frees the room
    m.vfs.commit(fh).unwrap();
    m.vfs.write(fh, 0, &block).unwrap();
    m.vfs.release(fh);
    let (_, fh2) = m.vfs.create(*ALICE, sub, "next.raw").unwrap();
    for i in 0..3u64 {
        m.vfs.write(fh2, i * block.len() as u64, &block).unwrap();
    }
    m.vfs.release(fh2);
}

/// A photo of `len` bytes that tell their offset apart, imported as events/2026/big.jpg and
/// linked to Anna (who consents to website), open for reading by alice (with `access` on
/// events/2026 if given), with the invalidator's channel in `rx`.
struct BigPhoto {
    m: Mounted,
    rx: std::sync::mpsc::Receiver<consentfs::vfs::Batch>,
    bytes: Vec<u8>,
    ino: u64,
    fh: u64,
}

fn big_photo(len: usize, access: Option<&str>) -> BigPhoto {
    let m = mounted();
    let (tx, rx) = std::sync::mpsc::channel();
    m.vfs.set_invalidation_sender(tx);
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
    m.t.write("more/big.jpg", &bytes);
    m.t.ok(&[
        "import",
        "--collection",
        "events/2026",
        m.t.path("more").to_str().unwrap(),
    ]);
    m.t.ok(&["link", "events/2026/big.jpg", "Anna"]);
    m.refresh();
    if let Some(access) = access {
        m.grant_alice_in("events/2026", access);
    }
    let ino = m.walk(*ALICE, "alice/website/events/2026/big.jpg").unwrap();
    let fh = m.vfs.open(*ALICE, ino, false, false).unwrap();
    BigPhoto {
        m,
        rx,
        bytes,
        ino,
        fh,
    }
}

/// The pushes queued on `rx` (what the invalidator thread would make).
fn queued_fills(
    rx: &std::sync::mpsc::Receiver<consentfs::vfs::Batch>,
) -> Vec<consentfs::vfs::fill::Fill> {
    rx.try_iter().filter_map(|b| b.fill).collect()
}

/// Make `fill` as the kernel would take it: (inode, offset, bytes) of each piece.
fn pushed(m: &Mounted, fill: consentfs::vfs::fill::Fill) -> Vec<(u64, u64, Vec<u8>)> {
    let mut out = Vec::new();
    m.vfs.fill(fill, |ino, at, data| {
        out.push((ino, at, data.to_vec()));
        Ok(())
    });
    out
}

/// A small read pushes the rest of the 64 KiB chunk it decrypted into the kernel's cache (the
/// next reads of that chunk need no round trip and no decryption), exactly the photo's bytes,
/// and never the pages it returned itself. A large read (readahead) pushes nothing.
#[test]
fn a_small_read_pushes_the_rest_of_its_chunk() {
    let BigPhoto {
        m,
        rx,
        bytes: photo,
        ino,
        fh,
    } = big_photo(250_000, None);
    let mut out = Vec::new();
    m.vfs
        .read_for_kernel(ino, fh, 65536 + 8192, 4096, &mut out)
        .unwrap();
    assert_eq!(out, photo[65536 + 8192..65536 + 12288]);
    let fills = queued_fills(&rx);
    assert_eq!(fills.len(), 1, "one push for the chunk read in part");
    let pieces = pushed(&m, fills.into_iter().next().unwrap());
    let spans: Vec<(u64, u64, usize)> = pieces.iter().map(|(i, a, d)| (*i, *a, d.len())).collect();
    assert_eq!(
        spans,
        vec![(ino, 65536, 8192), (ino, 65536 + 12288, 65536 - 12288)]
    );
    for (_, at, data) in &pieces {
        assert_eq!(data[..], photo[*at as usize..*at as usize + data.len()]);
    }
    // the file's last chunk, shorter: up to the end of the photo
    m.vfs
        .read_for_kernel(ino, fh, 196_608, 4096, &mut out)
        .unwrap();
    let pieces = pushed(&m, queued_fills(&rx).pop().unwrap());
    assert_eq!(pieces.len(), 1);
    assert_eq!(
        (pieces[0].1, pieces[0].2.len()),
        (196_608 + 4096, 250_000 - 196_608 - 4096)
    );
    assert_eq!(pieces[0].2[..], photo[196_608 + 4096..]);
    // readahead's large requests, and reads outside the kernel, push nothing
    m.vfs
        .read_for_kernel(ino, fh, 4096, 131_072, &mut out)
        .unwrap();
    m.vfs.read_into(fh, 4096, 4096, &mut out).unwrap();
    assert!(queued_fills(&rx).is_empty());
    m.vfs.release(fh);
}

/// A push is made only if the daemon would still serve those bytes through that inode when
/// the push is made: not once the photo is hidden, not after an open for writing, not after a
/// save gave the file another version.
#[test]
fn a_push_is_dropped_when_the_photo_changed_meanwhile() {
    let BigPhoto { m, rx, ino, fh, .. } = big_photo(200_000, Some("write"));
    let small_read = || {
        let mut out = Vec::new();
        m.vfs
            .read_for_kernel(ino, fh, 4096, 4096, &mut out)
            .unwrap();
        let mut fills = queued_fills(&rx);
        assert_eq!(fills.len(), 1);
        fills.pop().unwrap()
    };
    // nothing changed: pushed
    assert!(!pushed(&m, small_read()).is_empty());

    // an open for writing after the read, before the push
    let fill = small_read();
    let writer = m.vfs.open(*ALICE, ino, true, false).unwrap();
    assert!(pushed(&m, fill).is_empty(), "pushed while a writer is open");
    // ... which saves: the file now serves another version (no writer open any more)
    let fill = small_read();
    m.vfs.write(writer, 8192, b"retouched").unwrap();
    m.vfs.release(writer);
    m.refresh();
    assert!(
        pushed(&m, fill).is_empty(),
        "pushed a version the file no longer serves"
    );
    assert!(
        !pushed(&m, small_read()).is_empty(),
        "the new version is pushed again"
    );

    // the photo hidden after the read, before the push
    let fill = small_read();
    m.t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    m.refresh();
    assert!(
        pushed(&m, fill).is_empty(),
        "pushed pages of a hidden photo"
    );
    m.vfs.release(fh);
}

/// An open for writing waits for a push that is under way: no page of the old content lands
/// in the kernel's cache after a write may have begun.
#[test]
fn an_open_for_writing_waits_for_a_push_under_way() {
    let BigPhoto { m, rx, ino, fh, .. } = big_photo(100_000, Some("write"));
    let mut out = Vec::new();
    m.vfs.read_for_kernel(ino, fh, 0, 4096, &mut out).unwrap();
    let fill = queued_fills(&rx).pop().unwrap();
    let opened = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let mut writer = None;
        m.vfs.fill(fill, |_, _, _| {
            if writer.is_none() {
                writer = Some(s.spawn(|| {
                    let w = m.vfs.open(*ALICE, ino, true, false).unwrap();
                    opened.store(true, std::sync::atomic::Ordering::SeqCst);
                    w
                }));
                // the kernel copying the pages (here: a while)
                std::thread::sleep(std::time::Duration::from_millis(300));
                assert!(
                    !opened.load(std::sync::atomic::Ordering::SeqCst),
                    "an open for writing went ahead while pages of the file were pushed"
                );
            }
            Ok(())
        });
        let w = writer.unwrap().join().unwrap();
        assert!(opened.load(std::sync::atomic::Ordering::SeqCst));
        m.vfs.release(w);
    });
    m.vfs.release(fh);
}

/// Pushes wait on the thread that also sends the invalidations of withdrawals: what they
/// queue is bounded, past the bound a small read pushes nothing, and once they are made
/// pushes are queued again.
#[test]
fn pushes_queued_are_bounded() {
    let chunks = 200u64;
    let BigPhoto { m, rx, ino, fh, .. } = big_photo((chunks * 65536) as usize, None);
    let mut out = Vec::new();
    for c in 0..chunks {
        m.vfs
            .read_for_kernel(ino, fh, c * 65536, 4096, &mut out)
            .unwrap();
    }
    let fills = queued_fills(&rx);
    let per_push = 65536 - 4096;
    let bound = consentfs::vfs::fill::MAX_QUEUED / per_push;
    assert_eq!(
        fills.len() as u64,
        bound,
        "pushes queued of {chunks} small reads"
    );
    for f in fills {
        assert_eq!(pushed(&m, f).len(), 1);
    }
    m.vfs
        .read_for_kernel(ino, fh, 4096, 4096, &mut out)
        .unwrap();
    assert_eq!(
        queued_fills(&rx).len(),
        1,
        "nothing queued once the pushes were made"
    );
    m.vfs.release(fh);
}

/// Alice with a write grant on b.jpg, as this test process (so her saves within seconds are
/// one version, updated in place), her inode of it, and bob's, who sees it read only.
fn saver_and_viewer(m: &Mounted) -> (Caller, u64, u64) {
    m.grant_alice_in_sub("write");
    let writer = Caller {
        pid: std::process::id(),
        ..*ALICE
    };
    let alices = m
        .walk(writer, "alice/website/events/2026/sub/b.jpg")
        .unwrap();
    let bobs = m.walk(*BOB, "bob/website/events/2026/sub/b.jpg").unwrap();
    (writer, alices, bobs)
}

/// Save `bytes` to the file `ino` as `who` would with `open(O_TRUNC)`, `write`, `close`.
fn save_as(vfs: &Vfs, who: Caller, ino: u64, bytes: &[u8]) {
    let fh = vfs.open(who, ino, true, true).unwrap();
    vfs.write_as(who.pid, fh, 0, bytes).unwrap();
    vfs.flush(fh, who.pid).unwrap();
    vfs.release(fh);
}

/// Saves of one program within seconds update one version in place: a new object under the
/// same version number. Another user who read the photo before reads the newest save when she
/// opens it again, so the kernel must be told to drop her cached pages, as for a new version
/// (it was not: her fresh opens read the save before for as long as the pages stayed cached).
#[test]
fn a_version_updated_in_place_drops_every_viewers_cached_pages() {
    let m = mounted();
    let (tx, rx) = std::sync::mpsc::channel();
    m.vfs.set_invalidation_sender(tx);
    let (writer, alices, bobs) = saver_and_viewer(&m);
    let versions = || {
        m.t.ok(&["versions", "events/2026/sub/b.jpg", "--json"])
            .json()
            .as_array()
            .map_or(0, Vec::len)
    };
    save_as(&m.vfs, writer, alices, b"first save");
    assert_eq!(
        m.read_all(*BOB, "bob/website/events/2026/sub/b.jpg")
            .unwrap(),
        b"first save"
    );
    let before = versions();
    let _ = rx.try_iter().count();
    save_as(&m.vfs, writer, alices, b"second save");
    assert_eq!(
        versions(),
        before,
        "the second save updated the first in place"
    );
    let inval: Vec<_> = rx.try_iter().flat_map(|b| b.items).collect();
    assert!(
        inval.contains(&consentfs::vfs::Invalidation::Inode { ino: bobs }),
        "bob's cached pages of the first save are not dropped: {inval:?}"
    );
    assert_eq!(
        m.read_all(*BOB, "bob/website/events/2026/sub/b.jpg")
            .unwrap(),
        b"second save"
    );
}

/// Another user opens a photo again and again while one program saves it again and again,
/// each save updating the version in place and removing the object it replaced. Every open
/// succeeds and reads one whole save: none fails because the version it began to open (named
/// by the view, its key read from the catalog after the commit) was replaced meanwhile.
#[test]
fn opens_while_a_version_is_updated_in_place_never_fail() {
    let m = mounted();
    let (writer, alices, bobs) = saver_and_viewer(&m);
    let vfs = &m.vfs;
    let saves = 150;
    save_as(vfs, writer, alices, "save ----".repeat(200).as_bytes());
    let done = std::sync::atomic::AtomicBool::new(false);
    let (opens, failures) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let (mut opens, mut failures) = (0, Vec::new());
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                opens += 1;
                match vfs.open(*BOB, bobs, false, false) {
                    Ok(fh) => {
                        let got = vfs.read(fh, 0, 4096).unwrap();
                        let text = String::from_utf8_lossy(&got).into_owned();
                        assert!(
                            text.starts_with("save ") && text.len() == 9 * 200,
                            "not one whole save: {text:?}"
                        );
                        vfs.release(fh);
                    }
                    Err(e) => failures.push(e.to_string()),
                }
            }
            (opens, failures)
        });
        for k in 0..saves {
            save_as(
                vfs,
                writer,
                alices,
                format!("save {k:04}").repeat(200).as_bytes(),
            );
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        reader.join().unwrap()
    });
    assert!(
        failures.is_empty(),
        "{} of {opens} opens during {saves} saves failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

fn object_files(t: &TestStore) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    common::collect_files(&t.objects_dir(), &mut files);
    files
}

/// Files created through the mount hold one empty object, shared, until their first save: a
/// The view learns of a new file's create and first save from the rows the mount wrote,
/// without reading them back (`View::refresh_knowing`): what it then holds of each new file is
/// what a view loaded from the catalog holds. A file closed empty, one saved, one whose
/// modification and access times the tool set before its close, one saved with a photo's bytes (the save
/// adds the photo as its source, so its row changes), and a photo's sidecar (its row is the
/// photo's).
#[test]
fn the_view_learns_new_files_as_the_catalog_holds_them() {
    let m = mounted();
    m.grant_alice_in_sub("delete");
    let sub = m.walk(*ALICE, "alice/website/events/2026/sub").unwrap();
    let new_file = |name: &str, content: Option<&[u8]>, mtime: Option<i64>| {
        let (attr, fh) = m.vfs.create(*ALICE, sub, name).unwrap();
        if let Some(bytes) = content {
            m.vfs.write(fh, 0, bytes).unwrap();
        }
        if let Some(secs) = mtime {
            let times = consentfs::vfs::times::SetTimes {
                mtime: chrono::DateTime::from_timestamp(secs, 123_456_789),
                atime: chrono::DateTime::from_timestamp(secs + 60, 987_654_321),
                chmod: false,
            };
            m.vfs
                .setattr(*ALICE, attr.ino, Some(fh), None, times, None, None)
                .unwrap();
        }
        m.vfs.flush(fh, 0).unwrap();
        m.vfs.release(fh);
        let id = m
            .vfs
            .getxattr(*ALICE, attr.ino, "user.consentfs.asset")
            .unwrap();
        String::from_utf8(id).unwrap().parse::<i64>().unwrap()
    };
    let ids = [
        new_file("empty.txt", None, None),
        new_file("saved.txt", Some(b"the first save"), None),
        new_file("touched.txt", Some(b"kept its time"), Some(1_500_000_000)),
        new_file("copy.jpg", Some(b"photo of bert"), None),
        new_file("b.jpg.xmp", Some(b"<x:xmpmeta/>"), None),
    ];
    let learnt: Vec<String> = {
        let view = m.view.read().unwrap();
        ids.iter()
            .map(|id| format!("{:?}", view.asset(*id)))
            .collect()
    };
    m.vfs.settle(None, true).unwrap();
    let (_s, cat) = m.t.open_catalog();
    let loaded = View::load(cat.conn(), chrono::Utc::now()).unwrap();
    for (id, learnt) in ids.iter().zip(&learnt) {
        let read = format!("{:?}", loaded.asset(*id));
        assert!(
            read.starts_with("Some("),
            "asset {id} is not in the catalog"
        );
        assert_eq!(learnt, &read, "asset {id}");
    }
}

/// What the mount wrote of a new file is not what the view takes when a command changed the
/// file after it, before the view's refresh (a command that waited for the catalog comes in
/// right after the create's commit): the view reads the file back then. Here a new draft is
/// trashed in between, and another one moved after its first save; the view must show both
/// as the catalog holds them.
#[test]
fn the_view_reads_a_new_file_back_when_a_command_changed_it_meanwhile() {
    use consentfs::catalog::assets;
    use consentfs::store::NewObject;
    let t = TestStore::new();
    t.add_user("alice");
    t.ok(&["user", "grant", "alice", "--purpose", "website"]);
    let (_store, mut cat) = t.open_catalog();
    let now = chrono::Utc::now();
    let mut view = View::load(cat.conn(), now).unwrap();
    let purpose = view.purpose_by_name("website").unwrap().id;
    let object = |size: u64| NewObject {
        id: consentfs::crypto::object::ObjectId::random(),
        wrapped_key: vec![3; 40],
        size,
        content_hash: [size as u8; 32],
    };
    let empty = object(0);
    let tx = cat.begin("alice", now).unwrap();
    let (id, key) = assets::share_empty(&tx, &empty, None).unwrap();
    let new = assets::add_empty_draft(&tx, "events", "new.jpg", purpose, (&id, &key)).unwrap();
    tx.commit().unwrap();
    let tx = cat.begin("root", now).unwrap();
    assets::set_status(&tx, new.row.id, consentfs::policy::Status::Trash).unwrap();
    tx.commit().unwrap();
    let known = consentfs::view::Known::New {
        row: new.row.clone(),
        version: new.version,
    };
    view.refresh_knowing(cat.conn(), now, Some(known)).unwrap();
    let status = view.asset(new.row.id).map(|i| i.row.status);
    assert_eq!(status, Some(consentfs::policy::Status::Trash));

    // the same for a first save: another draft filled, then moved by a command
    let tx = cat.begin("alice", now).unwrap();
    let other = assets::add_empty_draft(&tx, "events", "two.jpg", purpose, (&id, &key)).unwrap();
    tx.commit().unwrap();
    view.refresh(cat.conn(), now).unwrap();
    let content = object(5);
    let tx = cat.begin("alice", now).unwrap();
    let assets::Filled::Yes(version) =
        assets::fill_placeholder(&tx, other.row.id, &content, None).unwrap()
    else {
        panic!("a fresh draft is filled");
    };
    tx.commit().unwrap();
    let tx = cat.begin("root", now).unwrap();
    assets::move_to(&tx, other.row.id, "events/moved", "two.jpg").unwrap();
    tx.commit().unwrap();
    let known = consentfs::view::Known::Version {
        asset: other.row.id,
        version,
    };
    view.refresh_knowing(cat.conn(), now, Some(known)).unwrap();
    let info = view.asset(other.row.id).unwrap();
    assert_eq!(&*info.collection, "events/moved");
    assert_eq!(info.version.map(|v| v.size), Some(5));
}

/// `tar x` writes no object file per create. Deleting and purging one of them leaves the
/// others as they were (the empty object makes them neither copies of each other nor is it
/// shredded), and a later mount of the same store uses the same object. When its file is
/// gone, the next create makes another instead of failing.
#[test]
fn new_files_share_one_empty_object_until_their_first_save() {
    let m = mounted();
    m.grant_alice_in_sub("delete");
    let sub = m.walk(*ALICE, "alice/website/events/2026/sub").unwrap();
    let before = object_files(&m.t);
    for i in 0..10 {
        let (_, fh) = m.vfs.create(*ALICE, sub, &format!("d{i}.txt")).unwrap();
        m.vfs.release(fh);
    }
    m.vfs.settle(None, true).unwrap();
    let empty: Vec<_> = object_files(&m.t)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    assert_eq!(empty.len(), 1, "ten new files, one object: {empty:?}");
    let (_, fh) = m.vfs.create(*ALICE, sub, "saved.txt").unwrap();
    m.vfs.write(fh, 0, b"the first save").unwrap();
    m.vfs.release(fh);
    m.vfs.settle(None, true).unwrap();
    // and the save
    assert_eq!(object_files(&m.t).len(), before.len() + 2);
    let path = |name: &str| format!("alice/website/events/2026/sub/{name}");
    assert_eq!(
        m.read_all(*ALICE, &path("saved.txt")).unwrap(),
        b"the first save"
    );
    for i in 0..10 {
        assert_eq!(
            m.read_all(*ALICE, &path(&format!("d{i}.txt"))).unwrap(),
            b""
        );
    }

    // a truncating save of one of them (`echo > d9.txt` after a `touch`) adds its content,
    // nothing else
    let files = object_files(&m.t).len();
    let ino = m.walk(*ALICE, &path("d9.txt")).unwrap();
    let fh = m.vfs.open(*ALICE, ino, true, true).unwrap();
    m.vfs.write(fh, 0, b"echo").unwrap();
    m.vfs.release(fh);
    m.vfs.settle(None, true).unwrap();
    assert_eq!(m.read_all(*ALICE, &path("d9.txt")).unwrap(), b"echo");
    assert_eq!(object_files(&m.t).len(), files + 1);

    m.vfs.unlink(*ALICE, sub, "d0.txt").unwrap();
    m.vfs.settle(None, true).unwrap();
    m.t.ok(&["trash", "purge", "--all"]);
    m.refresh();
    let names = m.names(*ALICE, "alice/website/events/2026/sub");
    for i in 1..9 {
        let name = format!("d{i}.txt");
        assert!(names.contains(&name), "{name} went with d0.txt: {names:?}");
        assert_eq!(m.read_all(*ALICE, &path(&name)).unwrap(), b"");
    }
    let (_, fh) = m.vfs.create(*ALICE, sub, "after.txt").unwrap();
    m.vfs.release(fh);
    assert_eq!(m.read_all(*ALICE, &path("after.txt")).unwrap(), b"");

    // another mount of the store: its new files hold the same empty object
    let (store, cat) = m.t.open_catalog();
    let mut accounts: HashMap<String, (u32, u32)> = HashMap::new();
    accounts.insert("alice".into(), (ALICE.uid, ALICE.gid));
    let view = Arc::new(RwLock::new(
        View::load(cat.conn(), chrono::Utc::now()).unwrap(),
    ));
    let again = Vfs::new(Arc::new(store), view, Box::new(accounts), cat);
    let files = object_files(&m.t);
    let walk = |path: &str| {
        let mut ino = 1;
        for part in path.split('/') {
            ino = again.lookup(*ALICE, ino, part).unwrap().ino;
        }
        ino
    };
    let sub2 = walk("alice/website/events/2026/sub");
    let (_, fh) = again.create(*ALICE, sub2, "second-mount.txt").unwrap();
    again.release(fh);
    again.settle(None, true).unwrap();
    assert_eq!(
        object_files(&m.t),
        files,
        "a mount made its own empty object"
    );

    // its file removed: the next create makes another (this mount had a reader of the removed
    // one open: a file left empty must not refer to an object that is gone)
    let n = object_files(&m.t).len();
    std::fs::remove_file(&empty[0]).unwrap();
    let (_, fh) = again.create(*ALICE, sub2, "left-empty.txt").unwrap();
    again.release(fh);
    again.settle(None, true).unwrap();
    assert_eq!(
        object_files(&m.t).len(),
        n,
        "another empty object replaces the removed one"
    );
    let (_, fh) = again.create(*ALICE, sub2, "after-damage.txt").unwrap();
    again.write(fh, 0, b"written after").unwrap();
    again.release(fh);
    again.settle(None, true).unwrap();
    let ino = walk("alice/website/events/2026/sub/after-damage.txt");
    let fh = again.open(*ALICE, ino, false, false).unwrap();
    assert_eq!(again.read(fh, 0, 100).unwrap(), b"written after");
    again.release(fh);
}
