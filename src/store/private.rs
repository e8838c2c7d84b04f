//! The store is private to the account that runs consentfs: directory 0700, every file 0600,
//! whatever the umask.
//!
//! Why this matters beyond secrecy: SQLite coordinates its connections with POSIX locks on the
//! catalog's `-shm` file. Anyone who can open that file, even read-only, can take the WAL write
//! lock and hold it forever, which stops every withdrawal from being recorded. So no other
//! account may open anything in the store, and a store others can enter is refused at start
//! (with the command that fixes it) rather than used.
//!
//! New files get their mode at creation (`create_dir`/`private_file`), never by a later chmod,
//! so there is no moment in which they are readable by others.

use crate::error::{Error, Result};
use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Create `dir` and its missing parents with mode 0700 (a umask can only take bits away, so
/// it is never wider).
pub fn create_dir_all(dir: &Path) -> Result<()> {
    match DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir) {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::io_path("create", dir, e)),
    }
}

/// Open a new file for writing with mode 0600 (`create_new`: never an existing file, never
/// through a symlink someone planted).
pub fn create_file(path: &Path, read: bool) -> Result<File> {
    open_new(path, read).map_err(|e| Error::io_path("create", path, e))
}

fn open_new(path: &Path, read: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(read)
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// [`create_file`], making its folder first only when it is missing (an object's fan-out
/// folder exists for all but the first objects in it: a new file costs no `mkdir` then).
pub fn create_file_in_new_dir(path: &Path, read: bool) -> Result<File> {
    match open_new(path, read) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                create_dir_all(dir)?;
            }
            create_file(path, read)
        }
        r => r.map_err(|e| Error::io_path("create", path, e)),
    }
}

/// Replace `path`'s content with `bytes` at once (a private new file renamed over it): a
/// reader sees the old content or the new, never half.
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = create_file(&tmp, false)?;
    f.write_all(bytes)
        .map_err(|e| Error::io_path("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io_path("rename", &tmp, e))
}

/// Open a log file for appending, creating it 0600; never through a symlink, never a special
/// file (the daemon's log in the store, written by a daemon started as a mount helper).
pub fn append_file(path: &Path) -> Result<File> {
    let f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io_path("open", path, e))?;
    let md = f.metadata().map_err(|e| Error::io_path("open", path, e))?;
    if !md.is_file() {
        return Err(Error::invalid(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(f)
}

/// What is wrong with one path's owner or mode, if anything.
fn problem(path: &Path, euid: u32, want_dir: bool) -> Result<Option<String>> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io_path("check", path, e)),
    };
    let kind_ok = if want_dir {
        md.file_type().is_dir()
    } else {
        md.file_type().is_file()
    };
    if !kind_ok {
        return Ok(Some(format!(
            "{} is not a regular {}",
            path.display(),
            if want_dir { "directory" } else { "file" }
        )));
    }
    if md.uid() != euid {
        return Ok(Some(format!(
            "{} is owned by uid {}, not by the account running consentfs (uid {euid})",
            path.display(),
            md.uid()
        )));
    }
    if md.mode() & 0o077 != 0 {
        return Ok(Some(format!(
            "{} has mode {:04o}: other accounts can open it",
            path.display(),
            md.mode() & 0o7777
        )));
    }
    Ok(None)
}

/// Refuse a store that other accounts can enter or whose files they can open, naming what is
/// wrong and the command that fixes it. Checks the directory itself, the keyring, the catalog
/// and its WAL and shared-memory files, and the objects directory (the objects below it are
/// unreachable to others once these are private, so a million files are not stat'ed here).
pub fn check(root: &Path) -> Result<()> {
    let euid = nix::unistd::geteuid().as_raw();
    let mut problems = Vec::new();
    // The root may be reached through a symlink the administrator made (e.g. /srv/photos-store
    // -> /data/store): what counts is the directory itself.
    let real = std::fs::canonicalize(root).map_err(|e| Error::io_path("resolve", root, e))?;
    if let Some(p) = problem(&real, euid, true)? {
        problems.push(p);
    }
    for (name, dir) in [
        (super::KEYRING, false),
        (super::DAEMON_LOCK, false),
        (super::CATALOG, false),
        ("catalog.db-wal", false),
        ("catalog.db-shm", false),
        (super::CATALOG_WAITERS, false),
        (super::OBJECTS, true),
        (super::intents::INTENTS, true),
        (super::running::RUNNING, true),
        (super::QUEUE, true),
        (super::location::OBJECTS_AT, false),
        (super::location::CACHE, true),
        (super::TEAM_URL, false),
        (super::NOT_SERVING, false),
    ] {
        if let Some(p) = problem(&real.join(name), euid, dir)? {
            problems.push(p);
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let shown = real.display();
    Err(Error::invalid(format!(
        "refusing to use store {shown}: {}. Other local accounts could read it or lock its catalog and so stop withdrawals from being recorded. \
         Fix it with: chown -R $(id -u):$(id -g) {shown} && chmod -R u=rwX,go= {shown}",
        problems.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A file in a folder that does not exist yet gets its folders (0700) and is 0600; the
    /// next one goes into the existing folder; an existing file is never opened.
    #[test]
    fn a_file_in_a_missing_folder_gets_private_folders() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x/y/f.tmp");
        drop(create_file_in_new_dir(&f, true).unwrap());
        drop(create_file_in_new_dir(&d.path().join("x/y/g.tmp"), false).unwrap());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d.path().join("x")), 0o700);
        assert_eq!(mode(&d.path().join("x/y")), 0o700);
        assert_eq!(mode(&f), 0o600);
        assert!(
            create_file_in_new_dir(&f, false).is_err(),
            "an existing file"
        );
    }

    #[test]
    fn created_paths_are_private_whatever_the_umask() {
        let d = tempfile::tempdir().unwrap();
        // SAFETY: umask is process-wide; this test only widens it and restores it, and every
        // mode it checks is set explicitly by the code under test.
        let old = unsafe { libc::umask(0o000) };
        let sub = d.path().join("a/b");
        create_dir_all(&sub).unwrap();
        let f = d.path().join("a/b/f");
        drop(create_file(&f, false).unwrap());
        unsafe { libc::umask(old) };
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d.path().join("a")), 0o700);
        assert_eq!(mode(&sub), 0o700);
        assert_eq!(mode(&f), 0o600);
    }

    #[test]
    fn check_names_what_others_can_open_and_how_to_fix_it() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("store");
        create_dir_all(&root.join("objects")).unwrap();
        drop(create_file(&root.join("catalog.db"), false).unwrap());
        check(&root).unwrap();
        std::fs::set_permissions(
            root.join("catalog.db"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let e = check(&root).unwrap_err().to_string();
        assert!(e.contains("catalog.db has mode 0644"), "{e}");
        assert!(e.contains("chmod -R u=rwX,go="), "{e}");
        std::fs::set_permissions(
            root.join("catalog.db"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = check(&root).unwrap_err().to_string();
        assert!(e.contains("mode 0755"), "{e}");
        // a planted symlink in place of the WAL is refused, not followed
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("catalog.db-wal")).unwrap();
        let e = check(&root).unwrap_err().to_string();
        assert!(e.contains("catalog.db-wal is not a regular file"), "{e}");
    }
}
