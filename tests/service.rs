//! The mount as a service: started by systemd (`Type=notify`, contrib/systemd/) or from
//! /etc/fstab through fuse3's mount helper, as DESIGN.md section 12 asks.
//!
//! The unit itself is started under systemd: the machine's own where systemd runs the machine,
//! else one the test starts as PID 1 of a PID and mount namespace of its own. The fstab path
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

/// A systemd of its own for one test, as PID 1 of a new PID and mount namespace, for machines
/// (containers, VMs started without an init system) where systemd does not run the machine.
/// It loads units from `units` first (where the test puts its unit, and masks for the units
/// that would change the kernel's settings for everyone: sysctl, modules, binfmt, ...), and
/// boots into an empty target. Killed (with everything it started) when dropped.
struct OwnSystemd {
    unshare: std::process::Child,
    pid: u32,
}

/// Units that `sysinit.target` pulls in and that would change the whole machine (or need a
/// real boot); masked for the namespace's systemd. The journal stays, for the failure message.
const MASKED: &[&str] = &[
    "cryptsetup.target",
    "integritysetup.target",
    "veritysetup.target",
    "kmod-static-nodes.service",
    "proc-sys-fs-binfmt_misc.automount",
    "proc-sys-fs-binfmt_misc.mount",
    "sys-fs-fuse-connections.mount",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "dev-hugepages.mount",
    "dev-mqueue.mount",
    "systemd-ask-password-console.path",
    "systemd-binfmt.service",
    "systemd-firstboot.service",
    "systemd-journal-flush.service",
    "systemd-machine-id-commit.service",
    "systemd-modules-load.service",
    "systemd-pcrphase-sysinit.service",
    "systemd-pcrphase.service",
    "systemd-random-seed.service",
    "systemd-repart.service",
    "systemd-remount-fs.service",
    "systemd-sysctl.service",
    "systemd-sysusers.service",
    "systemd-tmpfiles-setup-dev.service",
    "systemd-tmpfiles-setup.service",
    "systemd-update-utmp.service",
    "systemd-pstore.service",
    "systemd-timesyncd.service",
    "systemd-udevd.service",
    "systemd-udev-trigger.service",
    "systemd-hwdb-update.service",
    "ldconfig.service",
];

impl OwnSystemd {
    fn start(units: &Path) -> OwnSystemd {
        for m in MASKED {
            std::os::unix::fs::symlink("/dev/null", units.join(m)).unwrap();
        }
        std::fs::write(
            units.join("cfs-test-boot.target"),
            "[Unit]\nDescription=nothing but what a test starts\n",
        )
        .unwrap();
        let unshare = Command::new("unshare")
            .args([
                "--pid",
                "--fork",
                "--mount",
                "--mount-proc",
                // shared within the namespace (the machine's own mounts are not touched):
                // systemd moves each service's credentials mount into place through it
                "--propagation",
                "shared",
                "sh",
                "-c",
                "mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null; exec /lib/systemd/systemd --system --unit=cfs-test-boot.target",
            ])
            .env("SYSTEMD_UNIT_PATH", format!("{}:", units.display()))
            .env("container", "other")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("unshare (util-linux)");
        let children = format!("/proc/{}/task/{}/children", unshare.id(), unshare.id());
        let mut pid = 0;
        let (found, _) = wait_for(Duration::from_secs(10), || {
            pid = std::fs::read_to_string(&children)
                .ok()
                .and_then(|c| c.split_whitespace().next()?.parse::<u32>().ok())
                .unwrap_or(0);
            pid != 0
        });
        let own = OwnSystemd { unshare, pid };
        assert!(found, "systemd did not start in its namespace");
        let mut state = String::new();
        let (up, _) = wait_for(Duration::from_secs(60), || {
            let s = own.run(&["systemctl", "is-system-running"]);
            state = String::from_utf8_lossy(&s.stdout).trim().to_string();
            state == "running" || state == "degraded"
        });
        assert!(up, "systemd in its namespace did not come up: {state}");
        own
    }

    /// Run a program inside the namespace (its mounts, its processes, its systemd).
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("nsenter")
            .args(["-t", &self.pid.to_string(), "-m", "-p", "--"])
            .args(args)
            .output()
            .expect("nsenter (util-linux)")
    }
}

impl Drop for OwnSystemd {
    fn drop(&mut self) {
        // PID 1 of the namespace: when it dies the kernel kills everything in it
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// The unit in contrib/systemd is valid for this machine's systemd (no unknown or misspelt
/// option), and under systemd, with all its hardening options, it starts, serves, restarts
/// after a crash and stops the mount.
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
            &format!(
                "Environment=CONSENTFS_ANCHOR={}\nEnvironment=CONSENTFS_SOCKET={}",
                t.anchor().display(),
                t.socket().display()
            ),
        );
    assert_ne!(ours, unit);
    let verify_dir = t.path("units");
    std::fs::create_dir(&verify_dir).unwrap();
    std::fs::write(verify_dir.join(&name), &ours).unwrap();
    // a team library's mount reaches PostgreSQL: the drop-in the README says to install
    let drop_in = |dir: &Path| {
        if t.is_team() {
            let d = dir.join(format!("{name}.d"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd/team.conf"),
                d.join("team.conf"),
            )
            .unwrap();
        }
    };
    drop_in(&verify_dir);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(verify_dir.join(&name))
        .output()
        .expect("systemd-analyze (apt-get install systemd)");
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !said.contains("Unknown"), "{said}");

    if Path::new("/run/systemd/system").is_dir() {
        let path = Path::new("/run/systemd/system").join(&name);
        std::fs::write(&path, &ours).unwrap();
        drop_in(Path::new("/run/systemd/system"));
        let systemctl = |args: &[&str]| Command::new("systemctl").args(args).output().unwrap();
        assert!(systemctl(&["daemon-reload"]).status.success());
        // Type=notify: `start` returns once the daemon said READY=1
        let started = systemctl(&["start", &name]);
        let ok = started.status.success()
            && std::fs::read(mnt.join("root/website/a.jpg")).ok()
                == Some(b"photo of anna".to_vec());
        let stopped = systemctl(&["stop", &name]);
        let _ = std::fs::remove_file(&path);
        systemctl(&["daemon-reload"]);
        assert!(ok, "{}", String::from_utf8_lossy(&started.stderr));
        assert!(stopped.status.success());
        assert!(!is_mounted(&mnt));
        return;
    }
    // No systemd runs this machine (a container, a VM without an init system): start one of
    // our own, as PID 1 of a new PID and mount namespace, and the unit under it, with every
    // hardening option it has.
    let units = t.path("own-units");
    std::fs::create_dir(&units).unwrap();
    std::fs::write(units.join(&name), &ours).unwrap();
    drop_in(&units);
    let sd = OwnSystemd::start(&units);
    let text = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
    };
    let journal = |sd: &OwnSystemd| text(&sd.run(&["journalctl", "-u", &name, "--no-pager"]));
    let photo = mnt.join("root/website/a.jpg");
    let read = |sd: &OwnSystemd| sd.run(&["cat", &photo.to_string_lossy()]).stdout;
    // Type=notify: `start` returns once the daemon said READY=1, and the photo is there then
    let started = sd.run(&["systemctl", "start", &name]);
    assert!(
        started.status.success(),
        "{}\n{}",
        text(&started),
        journal(&sd)
    );
    assert_eq!(read(&sd), b"photo of anna", "{}", journal(&sd));
    // Restart=on-failure: the daemon killed, the dead mount cleared, the mount back
    let main_pid = |sd: &OwnSystemd| {
        String::from_utf8_lossy(
            &sd.run(&["systemctl", "show", "-p", "MainPID", "--value", &name])
                .stdout,
        )
        .trim()
        .to_string()
    };
    let first = main_pid(&sd);
    assert!(sd.run(&["kill", "-9", &first]).status.success());
    let (back, _) = wait_for(Duration::from_secs(60), || {
        let now = main_pid(&sd);
        now != first && now != "0" && read(&sd) == b"photo of anna"
    });
    assert!(back, "not restarted after a crash:\n{}", journal(&sd));
    // a withdrawal reaches the mount the service serves
    t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    let (gone, _) = wait_for(Duration::from_secs(10), || read(&sd).is_empty());
    assert!(gone, "the photo stayed after the withdrawal");
    let stopped = sd.run(&["systemctl", "stop", &name]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    let mounted = sd.run(&["mountpoint", "-q", &mnt.to_string_lossy()]);
    assert!(!mounted.status.success(), "still mounted after stop");
}
