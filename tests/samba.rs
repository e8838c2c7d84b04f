//! Designers on Windows and Mac: a Samba share of the mount with `path = MOUNTPOINT/%U` gives
//! each SMB user their own filtered view (issue 15 item 8, README "Sharing the mount with
//! Samba"). A real smbd, started for the test on a free port with the share definition the
//! README documents, and `smbclient` as two users.

mod common;

use common::mount::{os_user, Mount};
use common::TestStore;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The share definition of the README, for a mount at `mnt`.
fn share_definition(mnt: &Path) -> String {
    format!(
        "[photos]
  path = {}/%U
  read only = no
  browseable = no
  # no client-side caching: a withdrawal reaches a client at its next open or read
  oplocks = no
  level2 oplocks = no
  smb2 leases = no
  kernel oplocks = no
  # the mount keeps no DOS attributes or streams (they would be personal data outside the catalog)
  store dos attributes = no
  ea support = no
",
        mnt.display()
    )
}

struct Smbd {
    child: Child,
    port: u16,
    conf: PathBuf,
}

impl Drop for Smbd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_smbd(dir: &Path, mnt: &Path, users: &[(&str, &str)]) -> Smbd {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = dir.join("samba");
    for sub in ["priv", "lock", "state", "cache", "pid", "ncalrpc"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let p = |s: &str| d.join(s).display().to_string();
    let conf = d.join("smb.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]
  workgroup = TEST
  server role = standalone server
  smb ports = {port}
  bind interfaces only = yes
  interfaces = lo
  private dir = {}
  lock directory = {}
  state directory = {}
  cache directory = {}
  pid directory = {}
  ncalrpc dir = {}
  log file = {}
  passdb backend = tdbsam:{}
  load printers = no
  printcap name = /dev/null
  disable spoolss = yes
{}",
            p("priv"),
            p("lock"),
            p("state"),
            p("cache"),
            p("pid"),
            p("ncalrpc"),
            p("log.%m"),
            p("priv/passdb.tdb"),
            share_definition(mnt)
        ),
    )
    .unwrap();
    for (user, pw) in users {
        let mut c = Command::new("smbpasswd")
            .args(["-c", conf.to_str().unwrap(), "-a", "-s", user])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("smbpasswd (apt-get install samba)");
        use std::io::Write;
        c.stdin
            .take()
            .unwrap()
            .write_all(format!("{pw}\n{pw}\n").as_bytes())
            .unwrap();
        assert!(c.wait().unwrap().success());
    }
    let child = Command::new("smbd")
        .args(["-s", conf.to_str().unwrap(), "-F", "--no-process-group"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("smbd (apt-get install samba)");
    let began = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "smbd did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Smbd { child, port, conf }
}

impl Smbd {
    /// Run smbclient commands as `user`; returns everything it printed.
    fn client(&self, user: &str, pw: &str, commands: &str) -> String {
        let out = Command::new("smbclient")
            .arg("//127.0.0.1/photos")
            .args(["-p", &self.port.to_string(), "-s"])
            .arg(&self.conf)
            .args(["-U", &format!("{user}%{pw}"), "-c", commands])
            .output()
            .expect("smbclient (apt-get install smbclient)");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

#[test]
fn each_smb_user_sees_their_own_view_saves_become_versions_and_withdrawals_hide() {
    let (alice, bob) = ("cfs-smb-alice", "cfs-smb-bob");
    os_user(alice);
    os_user(bob);
    let t = TestStore::new();
    t.write("s/anna.jpg", b"anna on the stairs");
    t.write("s/hall.jpg", b"empty hall");
    t.write("p/poster.jpg", b"poster for print");
    t.ok(&[
        "import",
        "--collection",
        "shoot",
        t.path("s").to_str().unwrap(),
    ]);
    t.ok(&[
        "import",
        "--collection",
        "print-only",
        t.path("p").to_str().unwrap(),
    ]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["link", "shoot/anna.jpg", "Anna"]);
    t.ok(&["mark", "shoot/hall.jpg", "--no-persons"]);
    t.ok(&["mark", "print-only/poster.jpg", "--no-persons"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    t.ok(&["user", "add", alice]);
    t.ok(&[
        "user",
        "grant",
        alice,
        "--purpose",
        "website",
        "--collection",
        "shoot",
        "--access",
        "write",
    ]);
    t.ok(&["user", "add", bob]);
    t.ok(&[
        "user",
        "grant",
        bob,
        "--purpose",
        "print",
        "--collection",
        "print-only",
    ]);
    let m = Mount::start(&t);
    // smbd switches to each user's uid: they must reach the mountpoint
    let _ = Command::new("chmod").arg("755").arg(t.dir.path()).status();
    let smb = start_smbd(t.dir.path(), &m.dir, &[(alice, "pw-a1"), (bob, "pw-b2")]);

    // own view only: Alice has her website photos, Bob his print poster, neither the other's
    let a = smb.client(alice, "pw-a1", "ls website/shoot/*");
    assert!(a.contains("anna.jpg") && a.contains("hall.jpg"), "{a}");
    let a_root = smb.client(alice, "pw-a1", "ls");
    assert!(
        !a_root.contains("print") && a_root.contains("website"),
        "{a_root}"
    );
    let b = smb.client(bob, "pw-b2", "ls print/print-only/*; ls website");
    assert!(
        b.contains("poster.jpg") && b.contains("NT_STATUS_NO_SUCH_FILE listing \\website"),
        "{b}"
    );
    let escape = smb.client(
        bob,
        "pw-b2",
        &format!("get ../{alice}/website/shoot/anna.jpg /dev/null"),
    );
    assert!(
        escape.contains("NT_STATUS_"),
        "Bob reached Alice's view: {escape}"
    );
    // reading through SMB gives the photo's bytes
    let got = t.path("got.jpg");
    smb.client(
        alice,
        "pw-a1",
        &format!("get website/shoot/anna.jpg {}", got.display()),
    );
    assert_eq!(std::fs::read(&got).unwrap(), b"anna on the stairs");

    // a put over a photo becomes its next version, the same asset
    let edited = t.path("edited.jpg");
    std::fs::write(&edited, b"empty hall, brighter").unwrap();
    let put = smb.client(
        alice,
        "pw-a1",
        &format!("put {} website/shoot/hall.jpg", edited.display()),
    );
    assert!(!put.contains("NT_STATUS"), "{put}");
    let versions = t.ok(&["versions", "shoot/hall.jpg", "--json"]).json();
    assert_eq!(versions.as_array().map(|v| v.len()), Some(2), "{versions}");
    assert_eq!(
        std::fs::read(m.path(&format!("{alice}/website/shoot/hall.jpg"))).unwrap(),
        b"empty hall, brighter"
    );

    // a withdrawal: at the next access the photo is not found over SMB either
    t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    let began = Instant::now();
    loop {
        let r = smb.client(
            alice,
            "pw-a1",
            &format!("get website/shoot/anna.jpg {}", got.display()),
        );
        if r.contains("NT_STATUS_OBJECT_NAME_NOT_FOUND") {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "still served over SMB: {r}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let listed = smb.client(alice, "pw-a1", "ls website/shoot/*");
    assert!(
        !listed.contains("anna.jpg") && listed.contains("hall.jpg"),
        "{listed}"
    );
}
