//! Acting for the person at the other end of the control socket (DESIGN.md section 12): the
//! files a user names (import sources, evidence, export and report destinations, a backup's
//! folder) are opened, read and written with that user's own filesystem identity, so the
//! kernel checks them as it would for the user's own process. Without this the daemon, which
//! runs as root, would be a confused deputy: a user could import `/root/secret.jpg`, or have
//! an export written into a folder only root may write, and the files would belong to root.
//!
//! How: Linux keeps credentials per thread, and `setfsuid`, `setfsgid` and the raw `setgroups`
//! system call change only the calling thread's (glibc's `setgroups` wrapper would change
//! every thread of the daemon; the raw call does not). Samba's smbd does the same for each SMB
//! user. A command run for a caller ([`act_for`]) holds the caller's identity for its whole
//! run; the few places that must reach the store itself (reading and writing objects, the
//! intents journal, the rollback anchor, opening the catalog) take the daemon's identity back
//! for just that step ([`as_daemon`]). This way round fails closed: a step that touches a
//! user's file and was forgotten here is refused by the kernel, not done as root.
//!
//! Worker threads a command starts take the identity of the thread that started them
//! ([`current`] and [`act_for`]). When no caller is set (the command line run by root with the
//! key, the daemon's own threads), every function here is a plain call.

use crate::error::{Error, Result};
use std::cell::{Cell, RefCell};
use std::sync::{Arc, OnceLock};

/// Whose filesystem identity a command takes: a login's uid, primary gid and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Creds {
    /// The identity of `uid` as the system's user database gives it (primary group and every
    /// supplementary group), never anything the client said.
    pub fn of_uid(uid: u32) -> Result<Creds> {
        use nix::unistd::{getgrouplist, Uid, User};
        let user = User::from_uid(Uid::from_raw(uid))
            .map_err(|e| Error::invalid(format!("cannot look up uid {uid}: {e}")))?
            .ok_or_else(|| Error::invalid(format!("uid {uid} has no login on this machine")))?;
        let name = std::ffi::CString::new(user.name.as_bytes())
            .map_err(|_| Error::invalid(format!("the login of uid {uid} is not a name")))?;
        let groups = getgrouplist(&name, user.gid)
            .map_err(|e| Error::invalid(format!("cannot list the groups of uid {uid}: {e}")))?
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        Ok(Creds {
            uid,
            gid: user.gid.as_raw(),
            groups,
        })
    }
}

thread_local! {
    /// The caller this thread works for, if any.
    static CALLER: RefCell<Option<Arc<Creds>>> = const { RefCell::new(None) };
    /// Whether this thread holds the caller's identity right now (false inside `as_daemon`).
    static HOLDS_CALLER: Cell<bool> = const { Cell::new(false) };
}

/// The daemon's own identity, as it was before any switch.
fn daemon() -> &'static Creds {
    static DAEMON: OnceLock<Creds> = OnceLock::new();
    DAEMON.get_or_init(|| Creds {
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
        groups: nix::unistd::getgroups()
            .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_default(),
    })
}

/// Give this thread (only) the filesystem identity `c`.
fn switch(c: &Creds) -> std::io::Result<()> {
    // the raw system call: glibc's wrapper would change the groups of every thread
    // SAFETY: `c.groups` outlives the call, and its length is passed with it
    let r = unsafe {
        libc::syscall(
            libc::SYS_setgroups,
            c.groups.len() as libc::size_t,
            c.groups.as_ptr() as *const libc::gid_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // setfsuid/setfsgid report no errors, only the previous value: ask again to be sure
    // SAFETY: plain system calls on this thread's credentials
    unsafe {
        libc::setfsgid(c.gid);
        libc::setfsuid(c.uid);
    }
    let (uid, gid) = unsafe { (libc::setfsuid(u32::MAX), libc::setfsgid(u32::MAX)) };
    if uid as u32 != c.uid || gid as u32 != c.gid {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "cannot take the filesystem identity uid {} gid {} (have uid {uid} gid {gid})",
                c.uid, c.gid
            ),
        ));
    }
    Ok(())
}

/// Put this thread back to the identity it must have; if that fails the thread would go on
/// with the wrong one, so the daemon stops (its service restarts it) rather than risk it.
fn restore(to: &Creds) {
    if let Err(e) = switch(to) {
        log::error!(
            "cannot switch a thread back to uid {} ({e}); stopping the daemon rather than act as the wrong user",
            to.uid
        );
        std::process::abort();
    }
}

/// The caller this thread works for (to hand to the worker threads a command starts).
pub fn current() -> Option<Arc<Creds>> {
    CALLER.with(|c| c.borrow().clone())
}

/// The uid whose files this thread creates and may use right now: the caller's while acting
/// for one, else the daemon's (or the command line's) own.
pub fn fs_uid() -> u32 {
    if HOLDS_CALLER.with(|h| h.get()) {
        if let Some(c) = current() {
            return c.uid;
        }
    }
    nix::unistd::geteuid().as_raw()
}

/// Run `f` with the filesystem identity of `who` on this thread (`None`: as is). When `who`
/// is the daemon's own uid nothing needs switching. A daemon that is not root cannot take
/// another user's identity: the command is refused.
pub fn act_for<R>(who: Option<Arc<Creds>>, f: impl FnOnce() -> Result<R>) -> Result<R> {
    let Some(who) = who else { return f() };
    let me = daemon();
    if who.uid == me.uid {
        return f();
    }
    if me.uid != 0 {
        return Err(Error::invalid(format!(
            "the daemon runs as uid {}, not root: it cannot open files as uid {}; run this command with the key",
            me.uid, who.uid
        )));
    }
    switch(&who).map_err(|e| Error::io("cannot act as the caller", e))?;
    let before = CALLER.with(|c| c.replace(Some(who.clone())));
    let held = HOLDS_CALLER.with(|h| h.replace(true));
    struct Back {
        before: Option<Arc<Creds>>,
        held: bool,
    }
    impl Drop for Back {
        fn drop(&mut self) {
            restore(daemon());
            let before = self.before.take();
            HOLDS_CALLER.with(|h| h.set(self.held));
            if let (Some(b), true) = (&before, self.held) {
                restore(b);
            }
            CALLER.with(|c| *c.borrow_mut() = before);
        }
    }
    let _back = Back { before, held };
    f()
}

/// Run `f` with the daemon's own identity: the store's files, which no caller may touch
/// directly. Outside [`act_for`] it is a plain call.
pub fn as_daemon<R>(f: impl FnOnce() -> R) -> R {
    if !HOLDS_CALLER.with(|h| h.get()) {
        return f();
    }
    let Some(who) = current() else { return f() };
    restore(daemon());
    HOLDS_CALLER.with(|h| h.set(false));
    struct Back(Arc<Creds>);
    impl Drop for Back {
        fn drop(&mut self) {
            restore(&self.0);
            HOLDS_CALLER.with(|h| h.set(true));
        }
    }
    let _back = Back(who);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A file made while acting for another uid belongs to that uid, a folder only root may
    /// write refuses it, the store's side (`as_daemon`) is root again, and the thread is root
    /// afterwards; other threads never change.
    #[test]
    fn a_thread_acts_for_a_caller_and_only_that_thread() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::os::unix::fs::chown(&open, Some(65534), Some(65534)).unwrap();
        let closed = dir.path().join("closed");
        std::fs::create_dir(&closed).unwrap();
        let me = Creds {
            uid: 65534,
            gid: 65534,
            groups: vec![65534],
        };
        let other = std::thread::spawn({
            let closed = closed.clone();
            move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                std::fs::write(closed.join("by-root"), b"x").is_ok()
            }
        });
        act_for(Some(Arc::new(me)), || {
            std::fs::write(open.join("mine"), b"x").unwrap();
            let refused = std::fs::write(closed.join("theirs"), b"x").unwrap_err();
            assert_eq!(refused.kind(), std::io::ErrorKind::PermissionDenied);
            assert_eq!(fs_uid(), 65534);
            as_daemon(|| {
                std::fs::write(closed.join("store"), b"x").unwrap();
                assert_eq!(fs_uid(), 0);
            });
            // and back to the caller after the store's step
            assert!(std::fs::write(closed.join("again"), b"x").is_err());
            std::thread::sleep(std::time::Duration::from_millis(100));
            Ok(())
        })
        .unwrap();
        assert!(other.join().unwrap(), "another thread lost root");
        assert_eq!(std::fs::metadata(open.join("mine")).unwrap().uid(), 65534);
        assert_eq!(std::fs::metadata(closed.join("store")).unwrap().uid(), 0);
        // this thread is root again
        std::fs::write(closed.join("after"), b"x").unwrap();
        assert_eq!(fs_uid(), 0);
    }
}
