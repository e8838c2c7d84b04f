//! The mount as a service: started by systemd (`Type=notify`, contrib/systemd/) or from
//! /etc/fstab through fuse3's mount helper, as DESIGN.md section 12 asks.
//!
//! Where systemd runs the machine, the unit itself is started; everywhere the fstab path
//! (`mount.fuse3`, which runs `consentfs STORE MOUNTPOINT -o OPTIONS`) and the readiness
//! protocol (`NOTIFY_SOCKET`) are exercised with the real programs.

mod common;

use common::mount::{is_mounted, wait_for};
use common::{small_store, TestStore, BIN};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A PATH on which `consentfs` is the binary under test (mount.fuse3 runs it by name).
fn path_with_binary() -> String {
    let dir = Path::new(BIN).parent().unwrap();
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// `mount.fuse3` from the fuse3 package; the fstab type `fuse.consentfs` makes mount(8) run it.
fn fuse_helper() -> PathBuf {
    ["/sbin/mount.fuse3", "/usr/sbin/mount.fuse3"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("mount.fuse3 (apt-get install fuse3)")
}

fn unmount(mnt: &Path) {
    let _ = Command::new("umount").arg(mnt).status();
    let (gone, _) = wait_for(Duration::from_secs(10), || !is_mounted(mnt));
    assert!(gone, "{} still mounted", mnt.display());
}

/// The daemon that serves `mnt`, if one still runs (by its command line).
fn daemon_running(mnt: &Path) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        std::fs::read(p.path().join("cmdline"))
            .map(|c| {
                let c = String::from_utf8_lossy(&c).replace('\0', " ");
                c.contains(" mount ") && c.contains(&*mnt.to_string_lossy())
            })
            .unwrap_or(false)
    })
}

#[test]
fn an_fstab_mount_returns_once_the_photos_are_there_and_the_daemon_stays() {
    let t = small_store("root");
    let mnt = t.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let opts = format!(
        "rw,nofail,_netdev,x-systemd.automount,key_file={},anchor={}",
        t.key.display(),
        t.anchor().display()
    );
    // what mount(8) runs for the fstab line
    //   STORE  MOUNTPOINT  fuse.consentfs  key_file=/etc/consentfs/key,nofail  0 0
    let out = Command::new(fuse_helper())
        .arg(&t.store)
        .arg(&mnt)
        .args(["-t", "fuse.consentfs", "-o", &opts])
        .env_clear()
        .env("PATH", path_with_binary())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mount failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // no waiting: when the helper returns, the mount answers
    assert_eq!(
        std::fs::read(mnt.join("root/website/a.jpg")).unwrap(),
        b"photo of anna"
    );
    // the helper is gone, the daemon is not (it has a session of its own)
    assert!(daemon_running(&mnt));
    let log = t.store.join("daemon.log");
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the daemon's log is private");
    assert!(std::fs::read_to_string(&log).unwrap().contains("mounted"));
    // a withdrawal reaches a mount started this way like any other
    t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    let (hidden, _) = wait_for(Duration::from_secs(5), || {
        !mnt.join("root/website/a.jpg").exists()
    });
    assert!(hidden);
    unmount(&mnt);
    let (ended, _) = wait_for(Duration::from_secs(10), || !daemon_running(&mnt));
    assert!(ended, "the daemon ends with its mount");
}

#[test]
fn an_fstab_mount_that_cannot_start_says_why_and_leaves_nothing_mounted() {
    let t = TestStore::new();
    let mnt = t.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let run = |opts: &str| {
        Command::new(BIN)
            .arg(&t.store)
            .arg(&mnt)
            .args(["-o", opts])
            .env_clear()
            .output()
            .unwrap()
    };
    // a key file that is not there: the daemon's own error, and its exit status
    let out = run(&format!(
        "key_file={},anchor={}",
        t.path("no-such-key").display(),
        t.anchor().display()
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("did not start") && err.contains("no-such-key"),
        "{err}"
    );
    assert!(!is_mounted(&mnt));
    // options it does not know, or a read-only mount, are refused before anything starts
    for (opts, why) in [
        ("key_file=/k,ro", "read-only"),
        ("key_file=/k,uid=5", "unknown mount option uid=5"),
        ("threads=5", "key_file"),
    ] {
        let out = run(opts);
        assert_eq!(out.status.code(), Some(2), "{opts}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(why), "{opts}");
    }
    assert!(!is_mounted(&mnt));
    assert!(!daemon_running(&mnt));
}

/// systemd's `Type=notify`: READY=1 comes only once the mount answers, STOPPING=1 when it goes.
#[test]
fn the_daemon_tells_systemd_it_is_ready_only_once_the_mount_answers() {
    let t = small_store("root");
    let mnt = t.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let sock_path = t.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut daemon = t
        .cmd()
        .arg("mount")
        .arg(&mnt)
        .env("NOTIFY_SOCKET", &sock_path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("READY=1 within 60 s");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg}");
    assert!(msg.contains("STATUS=serving 2 assets"), "{msg}");
    // the moment systemd hears READY, the photos are there
    assert_eq!(
        std::fs::read(mnt.join("root/website/a.jpg")).unwrap(),
        b"photo of anna"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let n = sock.recv(&mut buf).expect("STOPPING=1");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
    assert!(daemon.wait().unwrap().success());
    assert!(!is_mounted(&mnt));
}

/// The unit in contrib/systemd is valid for this machine's systemd (no unknown or misspelt
/// option), and where systemd runs the machine it starts, serves and stops the mount.
#[test]
fn the_systemd_unit_is_valid_and_starts_the_mount_where_systemd_runs() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd/consentfs.service"),
    )
    .unwrap();
    let t = small_store("root");
    let mnt = t.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    // the unit as an administrator would install it, pointing at this test's store
    let name = format!("consentfs-test-{}.service", std::process::id());
    let ours = unit
        .replace("/usr/local/bin/consentfs", BIN)
        .replace("/etc/consentfs/key", &t.key.to_string_lossy())
        .replace("/srv/consentfs/store", &t.store.to_string_lossy())
        .replace("/srv/photos", &mnt.to_string_lossy())
        .replace(
            "EnvironmentFile=-/etc/consentfs/consentfs.env",
            &format!("Environment=CONSENTFS_ANCHOR={}", t.anchor().display()),
        );
    assert_ne!(ours, unit);
    let verify_dir = t.path("units");
    std::fs::create_dir(&verify_dir).unwrap();
    std::fs::write(verify_dir.join(&name), &ours).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(verify_dir.join(&name))
        .output()
        .expect("systemd-analyze (apt-get install systemd)");
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !said.contains("Unknown"), "{said}");

    if !Path::new("/run/systemd/system").is_dir() {
        // no systemd running this machine (a container): the fstab and NOTIFY_SOCKET tests
        // above cover the daemon's side of the unit
        return;
    }
    let path = Path::new("/run/systemd/system").join(&name);
    std::fs::write(&path, &ours).unwrap();
    let systemctl = |args: &[&str]| Command::new("systemctl").args(args).output().unwrap();
    assert!(systemctl(&["daemon-reload"]).status.success());
    // Type=notify: `start` returns once the daemon said READY=1
    let started = systemctl(&["start", &name]);
    let ok = started.status.success()
        && std::fs::read(mnt.join("root/website/a.jpg")).ok() == Some(b"photo of anna".to_vec());
    let stopped = systemctl(&["stop", &name]);
    let _ = std::fs::remove_file(&path);
    systemctl(&["daemon-reload"]);
    assert!(ok, "{}", String::from_utf8_lossy(&started.stderr));
    assert!(stopped.status.success());
    assert!(!is_mounted(&mnt));
}
