//! `consentfs` as a mount helper: the store mounted from `/etc/fstab` or with `mount(8)`.
//!
//! An fstab line of type `fuse.consentfs` makes `mount` run the fuse3 package's generic helper
//! (`mount.fuse3`), which runs `consentfs SOURCE MOUNTPOINT -o OPTIONS` through `/bin/sh`; a
//! symlink `/sbin/mount.fuse.consentfs -> consentfs` is called as
//! `mount.fuse.consentfs SOURCE MOUNTPOINT [-o OPTIONS]`. Either way `mount` expects its helper
//! to return once the file system is mounted, and the file system to stay. So the helper starts
//! `consentfs mount` in a session of its own, its log appended to `STORE/daemon.log`, and
//! returns 0 only once the mount answers, or the daemon's own error and exit status when it
//! does not come up.
//!
//! Options (`-o`, comma-separated): `key_file=FILE`, `passphrase_file=FILE`, `anchor=FILE`,
//! `threads=N`; the generic ones `mount` and fstab add (`rw`, `defaults`, `auto`, `noauto`,
//! `nofail`, `_netdev`, `dev`/`nodev`, `suid`/`nosuid`, `exec`/`noexec`, `atime`/`noatime`/
//! `relatime`, `allow_other`, `default_permissions`, `subtype=`, `fsname=`, `x-*`) are accepted
//! and change nothing (the mount is always nodev, nosuid, noatime and checked by the daemon).
//! Anything else, `ro` included, is refused with exit 2 before anything starts.

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the helper waits for the daemon to answer: a store of a million photos loads in
/// a few seconds; a minute means something is wrong, and a boot must not hang on it.
const READY_WITHIN: Duration = Duration::from_secs(120);

/// What an fstab line or `mount` asked for.
#[derive(Debug, Default, PartialEq)]
pub struct HelperArgs {
    pub source: PathBuf,
    pub mountpoint: PathBuf,
    pub key_file: Option<PathBuf>,
    pub passphrase_file: Option<PathBuf>,
    pub anchor: Option<PathBuf>,
    pub threads: Option<usize>,
}

/// When the process was started as a mount helper (by name, or as `consentfs /STORE /DIR ...`,
/// which no subcommand looks like), run as one and return the exit status.
pub fn invoked_as_mount_helper(args: &[OsString]) -> Option<i32> {
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let by_name = name.starts_with("mount.");
    let by_shape = args.len() >= 3
        && [&args[1], &args[2]]
            .iter()
            .all(|a| a.as_encoded_bytes().first() == Some(&b'/'));
    if !by_name && !by_shape {
        return None;
    }
    Some(match parse(&args[1..]) {
        Ok(h) => run(&h),
        Err(e) => {
            eprintln!("consentfs: {e}");
            eprintln!(
                "usage: mount.fuse.consentfs STORE MOUNTPOINT [-o key_file=FILE|passphrase_file=FILE[,anchor=FILE][,threads=N]]"
            );
            2
        }
    })
}

/// Parse `SOURCE MOUNTPOINT [-o OPTIONS]... [-n] [-v] [-s]`.
pub fn parse(args: &[OsString]) -> Result<HelperArgs, String> {
    let mut out = HelperArgs::default();
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        match a.as_ref() {
            // mount(8)'s own flags for helpers: no mtab, verbose, sloppy
            "-n" | "-v" | "-s" => {}
            "-o" => {
                let opts = args
                    .get(i + 1)
                    .ok_or("-o needs a list of options")?
                    .to_string_lossy()
                    .into_owned();
                options(&opts, &mut out)?;
                i += 1;
            }
            s if s.starts_with("-o") => options(&s[2..], &mut out)?,
            s if s.starts_with('-') => return Err(format!("unknown flag {s}")),
            _ => positional.push(PathBuf::from(&args[i])),
        }
        i += 1;
    }
    let [source, mountpoint] = <[PathBuf; 2]>::try_from(positional)
        .map_err(|p| format!("expected STORE and MOUNTPOINT, got {} path(s)", p.len()))?;
    if out.key_file.is_none() && out.passphrase_file.is_none() {
        return Err(
            "no way to open the store: add key_file=FILE (or passphrase_file=FILE) to the options"
                .into(),
        );
    }
    out.source = source;
    out.mountpoint = mountpoint;
    Ok(out)
}

fn options(list: &str, out: &mut HelperArgs) -> Result<(), String> {
    for opt in list.split(',').filter(|o| !o.is_empty()) {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        let path = || -> Result<PathBuf, String> {
            match value {
                Some(v) if v.starts_with('/') => Ok(PathBuf::from(v)),
                _ => Err(format!("{key}= needs an absolute path")),
            }
        };
        match key {
            "key_file" => out.key_file = Some(path()?),
            "passphrase_file" => out.passphrase_file = Some(path()?),
            "anchor" => out.anchor = Some(path()?),
            "threads" => {
                let n: usize = value
                    .and_then(|v| v.parse().ok())
                    .filter(|n| (1..=256).contains(n))
                    .ok_or("threads= needs a number from 1 to 256")?;
                out.threads = Some(n);
            }
            "ro" => return Err("read-only mounts are not supported (photos are saved as versions; grants decide who may write)".into()),
            "rw" | "defaults" | "auto" | "noauto" | "nofail" | "_netdev" | "dev" | "nodev"
            | "suid" | "nosuid" | "exec" | "noexec" | "atime" | "noatime" | "relatime"
            | "allow_other" | "default_permissions" | "subtype" | "fsname" => {}
            k if k.starts_with("x-") => {}
            _ => return Err(format!("unknown mount option {opt}")),
        }
    }
    Ok(())
}

/// Start the daemon detached and wait until its mount answers.
fn run(h: &HelperArgs) -> i32 {
    match start(h) {
        Ok(()) => 0,
        Err((code, msg)) => {
            // multi-line: the daemon's log lines were made printable one by one
            std::eprintln!("consentfs: {msg}");
            code
        }
    }
}

fn start(h: &HelperArgs) -> Result<(), (i32, String)> {
    let exe = std::env::current_exe()
        .map_err(|e| (1, format!("cannot find the consentfs program: {e}")))?;
    if !h.source.is_dir() {
        return Err((
            2,
            format!("{} is not a consentfs store directory", h.source.display()),
        ));
    }
    let log_path = h.source.join("daemon.log");
    let log = crate::store::private::append_file(&log_path)
        .map_err(|e| (1, format!("cannot open {}: {e}", log_path.display())))?;
    let start_of_log = log.metadata().map(|m| m.len()).unwrap_or(0);
    let mut cmd = Command::new(exe);
    cmd.arg("mount").arg(&h.mountpoint);
    if let Some(n) = h.threads {
        cmd.arg("--threads").arg(n.to_string());
    }
    cmd.env("CONSENTFS_STORE", &h.source);
    for (var, value) in [
        ("CONSENTFS_KEY_FILE", &h.key_file),
        ("CONSENTFS_PASSPHRASE_FILE", &h.passphrase_file),
        ("CONSENTFS_ANCHOR", &h.anchor),
    ] {
        match value {
            Some(v) => cmd.env(var, v),
            None => cmd.env_remove(var),
        };
    }
    let err_log = log
        .try_clone()
        .map_err(|e| (1, format!("cannot open {}: {e}", log_path.display())))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err_log));
    // SAFETY: setsid is async-signal-safe; the child is alone in its new session, so the end
    // of mount(8) or of a terminal does not take the daemon with it
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(Into::into));
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| (1, format!("cannot start the daemon: {e}")))?;
    let began = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err((
                    status.code().unwrap_or(1).max(1),
                    format!(
                        "the daemon did not start:\n{}",
                        log_since(&log_path, start_of_log)
                    ),
                ))
            }
            Ok(None) => {}
            Err(e) => return Err((1, format!("cannot watch the daemon: {e}"))),
        }
        if answers(&h.mountpoint) {
            return Ok(());
        }
        if began.elapsed() > READY_WITHIN {
            stop(&mut child);
            return Err((
                1,
                format!(
                    "the daemon did not answer within {} s and was stopped; its log:\n{}",
                    READY_WITHIN.as_secs(),
                    log_since(&log_path, start_of_log)
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stop a daemon that did not come up: SIGTERM lets it unmount what it mounted; SIGKILL
/// only when it does not end within five seconds.
fn stop(child: &mut std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The mount is in the mount table as consentfs's and a stat of it is answered.
fn answers(mountpoint: &Path) -> bool {
    let Ok(point) = std::fs::canonicalize(mountpoint) else {
        return false;
    };
    crate::mountinfo::mounts().iter().any(|m| {
        m.point == point
            && m.source == "consentfs"
            && (m.fstype == "fuse" || m.fstype == "fuse.consentfs")
    }) && std::fs::metadata(&point).is_ok()
}

/// What the daemon wrote to its log since the helper started it (the last 4 KiB at most).
fn log_since(path: &Path, from: u64) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = from.max(len.saturating_sub(4096));
    let mut text = String::new();
    if f.seek(SeekFrom::Start(from)).is_ok() {
        let _ = f.read_to_string(&mut text);
    }
    text.trim_end()
        .lines()
        .map(|l| format!("  {}", crate::cli::printable(l)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    #[test]
    fn fstab_options_are_parsed_and_generic_ones_ignored() {
        let h = parse(&args(&[
            "/srv/store",
            "/srv/photos",
            "-o",
            "rw,defaults,nofail,_netdev,x-systemd.requires=a,allow_other,key_file=/etc/k,threads=8",
        ]))
        .unwrap();
        assert_eq!(h.source, PathBuf::from("/srv/store"));
        assert_eq!(h.mountpoint, PathBuf::from("/srv/photos"));
        assert_eq!(h.key_file, Some(PathBuf::from("/etc/k")));
        assert_eq!(h.threads, Some(8));
    }

    #[test]
    fn wrong_options_are_refused_with_a_reason() {
        for (a, why) in [
            (vec!["/s", "/m", "-o", "key_file=/k,ro"], "read-only"),
            (
                vec!["/s", "/m", "-o", "key_file=/k,bogus"],
                "unknown mount option bogus",
            ),
            (vec!["/s", "/m", "-o", "key_file=relative"], "absolute path"),
            (vec!["/s", "/m", "-o", "key_file=/k,threads=0"], "1 to 256"),
            (
                vec!["/s", "/m", "-o", "key_file=/k,threads=99999999999999999999"],
                "1 to 256",
            ),
            (vec!["/s", "/m"], "key_file"),
            (vec!["/s", "-o", "key_file=/k"], "got 1 path(s)"),
            (vec!["/s", "/m", "-x"], "unknown flag"),
        ] {
            let e = parse(&args(&a)).unwrap_err();
            assert!(e.contains(why), "{a:?}: {e}");
        }
    }

    #[test]
    fn only_mount_shaped_invocations_are_taken() {
        assert_eq!(
            invoked_as_mount_helper(&args(&["consentfs", "ls", "--user", "x"])),
            None
        );
        assert_eq!(invoked_as_mount_helper(&args(&["consentfs", "/a"])), None);
        // a mount-shaped call with a bad option is taken (and refused with 2)
        assert_eq!(
            invoked_as_mount_helper(&args(&["consentfs", "/a", "/b", "-o", "nope"])),
            Some(2)
        );
        assert_eq!(
            invoked_as_mount_helper(&args(&["/sbin/mount.fuse.consentfs", "rel", "/b"])),
            Some(2)
        );
    }
}
