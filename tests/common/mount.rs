//! Real mounts for integration tests: start `consentfs mount` on a test store, wait until it
//! serves, and unmount with SIGTERM when dropped. Also OS users for multi-user tests.
#![allow(dead_code)]

use super::TestStore;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Mount {
    pub dir: PathBuf,
    pub child: Option<Child>,
    pub log: PathBuf,
}

/// Whether `path` is a mount point right now.
pub fn is_mounted(path: &Path) -> bool {
    // the parent is resolved, not the mountpoint: a stat of a dead daemon's root can hang
    let canon = match (path.parent().map(std::fs::canonicalize), path.file_name()) {
        (Some(Ok(parent)), Some(name)) => parent.join(name),
        _ => path.to_path_buf(),
    };
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|mp| Path::new(mp) == canon))
}

/// Abort the FUSE connection of the mount at `path` (what `echo 1 > .../abort` does by hand).
/// After a SIGKILL the daemon can stay a zombie: a thread inside the kernel pushing an
/// invalidation waits for a folder lock that a request holds, and that request waits for an
/// answer the dead daemon never sends; aborting the connection fails the requests and frees it.
pub fn abort_connection(path: &Path) {
    // never resolve the mountpoint itself: a stat of a dead daemon's root can wait forever
    let canon = match (path.parent().map(std::fs::canonicalize), path.file_name()) {
        (Some(Ok(parent)), Some(name)) => parent.join(name),
        _ => path.to_path_buf(),
    };
    let conns = Path::new("/sys/fs/fuse/connections");
    if std::fs::read_dir(conns).map_or(true, |mut d| d.next().is_none()) {
        let _ = Command::new("mount")
            .args(["-t", "fusectl", "none"])
            .arg(conns)
            .stderr(Stdio::null())
            .status();
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for l in info.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        if f.len() > 4 && Path::new(f[4]) == canon {
            if let Some((_, minor)) = f[2].split_once(':') {
                let _ = std::fs::write(conns.join(minor).join("abort"), "1");
            }
        }
    }
}

/// Wait until `cond` holds, up to `limit`; returns whether it did and how long it took.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> (bool, Duration) {
    let start = Instant::now();
    loop {
        if cond() {
            return (true, start.elapsed());
        }
        if start.elapsed() > limit {
            return (false, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

impl Mount {
    /// Mount the store at `<tempdir>/mnt` and wait until it is up.
    pub fn start(t: &TestStore) -> Mount {
        Mount::start_with(t, &[])
    }

    /// [`Mount::start`] with extra environment for the daemon.
    pub fn start_with(t: &TestStore, env: &[(&str, &str)]) -> Mount {
        let dir = t.path("mnt");
        std::fs::create_dir_all(&dir).unwrap();
        let log = t.path("mount.log");
        let child = t
            .cmd()
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .args(["mount", dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start consentfs mount");
        let m = Mount {
            dir,
            child: Some(child),
            log,
        };
        let (up, _) = wait_for(Duration::from_secs(20), || is_mounted(&m.dir));
        assert!(up, "mount did not come up: {}", m.log_text());
        m
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stop with SIGTERM; returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            // what the daemon said is what a failing test's reader needs first
            eprintln!("---- the mount's log ----\n{}", self.log_text());
        }
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// All files and folders below `root`, relative, sorted (folders end with '/').
pub fn tree(root: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.push(format!("{rel}/"));
                walk(base, &p, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// An OS account for tests, created if missing: (uid, gid).
pub fn os_user(name: &str) -> (u32, u32) {
    for attempt in 0..50 {
        if let Ok(Some(u)) = nix::unistd::User::from_name(name) {
            return (u.uid.as_raw(), u.gid.as_raw());
        }
        // useradd takes a lock on /etc/passwd; tests running in parallel may collide
        let _ = Command::new("useradd")
            .args([
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                name,
            ])
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(Duration::from_millis(20 * attempt));
    }
    panic!("cannot create OS user {name} (tests with real mounts run as root)");
}

/// Run a shell script as another OS user (setpriv, no extra groups).
pub fn run_as(uid: u32, gid: u32, script: &str) -> std::process::Output {
    Command::new("setpriv")
        .args([
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            "--clear-groups".into(),
            "--".into(),
        ])
        .args(["sh", "-c", script])
        .output()
        .expect("setpriv")
}

/// A small tmpfs mounted for one test, unmounted when dropped.
pub struct SmallDisk(pub std::path::PathBuf);

impl SmallDisk {
    pub fn new(at: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(
            ok,
            "cannot mount a tmpfs (the tests with real mounts run as root)"
        );
        SmallDisk(at.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
