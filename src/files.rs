//! Plain files at the edge of the store: what `import` reads from the user's folders, and the
//! decrypted copies `export` and `person report` write for them.
//!
//! Why it is built this way:
//!
//! * consentfs runs as root or as the officer, on folders that other people fill (a
//!   photographer's upload folder, a web server's export folder). A symbolic link there must not
//!   make us read a file the link's maker cannot read (`/etc/shadow`), and a FIFO or a device
//!   must not make us hang. So a file is opened relative to its folder's descriptor with
//!   `O_NOFOLLOW | O_NONBLOCK` and accepted only when `fstat` on the opened descriptor says it
//!   is a regular file: there is no moment between the check and the open in which someone
//!   could swap the name. Folders are opened the same way, one component at a time.
//! * Decrypted photos, names and birth dates must not become readable by everyone on the
//!   machine through the caller's umask. Everything we write is created 0600 (folders 0700)
//!   and then set to exactly the mode asked for, whatever the umask; only an explicit
//!   `--mode` makes it readable by others, and never writable by them.
//! * A destination folder that belongs to another user is refused: its owner could read,
//!   replace or redirect what we write there.

use crate::error::{Error, Result};
use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode, SFlag};
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;

/// The permissions of the plaintext files and folders we write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Modes {
    pub file: u32,
    pub dir: u32,
}

impl Modes {
    /// The default: only the owner can read anything.
    pub const PRIVATE: Modes = Modes {
        file: 0o600,
        dir: 0o700,
    };

    /// The modes for a file mode the user gave in octal (`--mode 0644`): the file mode as
    /// given, folders with search permission wherever read permission is given (0644 -> 0755).
    /// Only owner read+write plus read for group and/or others is accepted: an export folder
    /// others can write to, or executable photos, are never what anyone needs.
    pub fn parse(s: &str) -> Result<Modes> {
        let digits = s.strip_prefix("0o").unwrap_or(s);
        let bad = || {
            Error::invalid(format!(
                "--mode '{s}' is not a usable file mode: give an octal mode such as 0600 (the \
                 default: only you), 0640 (your group may read) or 0644 (everyone may read); the \
                 owner must be able to read and write, and nobody else may write or execute"
            ))
        };
        if digits.is_empty()
            || digits.len() > 4
            || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
        {
            return Err(bad());
        }
        let file = u32::from_str_radix(digits, 8).map_err(|_| bad())?;
        if file & !0o644 != 0 || file & 0o600 != 0o600 {
            return Err(bad());
        }
        let dir = file | ((file & 0o444) >> 2);
        Ok(Modes { file, dir })
    }

    /// The file mode as `0644`.
    pub fn show(&self) -> String {
        format!("{:04o}", self.file)
    }
}

fn errno_io(e: nix::errno::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

/// What kind of thing a `st_mode` describes, for messages.
fn kind_of(mode: u32) -> &'static str {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a folder",
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFIFO => "a FIFO (named pipe)",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        _ => "not a regular file",
    }
}

fn is(st: &FileStat, kind: SFlag) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == kind.bits()
}

/// What `name` in the folder `dir` is, without following a symbolic link.
pub fn lstat_at(dir: &impl AsRawFd, name: &OsStr) -> std::io::Result<FileStat> {
    nix::sys::stat::fstatat(
        Some(dir.as_raw_fd()),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(errno_io)
}

/// Why a file was not opened: it is not a regular file (the message names what it is), or
/// the system said no.
#[derive(Debug)]
pub enum OpenError {
    NotRegular(&'static str),
    Io(std::io::Error),
}

impl OpenError {
    /// An error for import: `path` is refused, and nothing was imported.
    pub fn refusing_import(self, path: &Path) -> Error {
        match self {
            OpenError::NotRegular(kind) => Error::invalid(format!(
                "cannot import {}: it is {kind}, not a regular file (consentfs neither follows \
                 links nor reads pipes or devices); nothing was imported",
                path.display()
            )),
            OpenError::Io(e) => Error::io(
                format!("cannot read {} (nothing was imported)", path.display()),
                e,
            ),
        }
    }

    /// An error for the user: `what` names the file (a path as they know it).
    pub fn into_error(self, what: &str) -> Error {
        match self {
            OpenError::NotRegular(kind) => Error::invalid(format!(
                "{what} is {kind}, not a regular file; consentfs neither follows links nor reads \
                 pipes or devices"
            )),
            OpenError::Io(e) => Error::io(format!("cannot read {what}"), e),
        }
    }
}

/// Open the regular file `name` (one path component) in the folder `dir` for reading: a
/// symbolic link is not followed, a FIFO or device is neither waited on nor read, and the
/// check is made on the opened descriptor.
pub fn open_regular_at(dir: &impl AsRawFd, name: &OsStr) -> std::result::Result<File, OpenError> {
    // look first, so that a device is not even opened (opening some has side effects)
    let st = lstat_at(dir, name).map_err(OpenError::Io)?;
    if !is(&st, SFlag::S_IFREG) {
        return Err(OpenError::NotRegular(kind_of(st.st_mode)));
    }
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        // swapped for a link after the look
        nix::errno::Errno::ELOOP => OpenError::NotRegular("a symbolic link"),
        e => OpenError::Io(errno_io(e)),
    })?;
    // SAFETY: `fd` was just opened by us and is owned by nothing else.
    let file = unsafe { File::from_raw_fd(fd) };
    let st = nix::sys::stat::fstat(file.as_raw_fd()).map_err(|e| OpenError::Io(errno_io(e)))?;
    if !is(&st, SFlag::S_IFREG) {
        return Err(OpenError::NotRegular(kind_of(st.st_mode)));
    }
    Ok(file)
}

/// Open the folder `name` (one path component) in the folder `dir`, not following a link.
pub fn open_dir_at(
    dir: &impl AsRawFd,
    name: &OsStr,
) -> std::result::Result<cap_std::fs::Dir, OpenError> {
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        // O_DIRECTORY | O_NOFOLLOW on a link fails with ENOTDIR: say what it is
        nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => match lstat_at(dir, name) {
            Ok(st) => OpenError::NotRegular(kind_of(st.st_mode)),
            Err(e) => OpenError::Io(e),
        },
        e => OpenError::Io(errno_io(e)),
    })?;
    // SAFETY: `fd` was just opened by us and is owned by nothing else.
    let file = unsafe { File::from_raw_fd(fd) };
    Ok(cap_std::fs::Dir::from_std_file(file))
}

/// The folder that holds `path` (opened by its path: links there are the user's own choice),
/// that folder's path, and the last component of `path`, for the `*_at` functions, which
/// handle it without following. `.` or `dir/..` are made absolute first.
pub fn split_open(
    path: &Path,
) -> Result<(cap_std::fs::Dir, std::path::PathBuf, std::ffi::OsString)> {
    let owned;
    let path = if path.file_name().is_none() {
        owned = path
            .canonicalize()
            .map_err(|e| Error::io_path("read", path, e))?;
        owned.as_path()
    } else {
        path
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("{} does not name a file", path.display())))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = cap_std::fs::Dir::open_ambient_dir(parent, cap_std::ambient_authority())
        .map_err(|e| Error::io_path("open", parent, e))?;
    Ok((dir, parent.to_path_buf(), name.to_os_string()))
}

/// Open the regular file at `path` for reading, not following a link in its last component
/// and never blocking on a FIFO or device.
pub fn open_regular(path: &Path) -> Result<File> {
    let (dir, _, name) = split_open(path)?;
    open_regular_at(&dir, &name).map_err(|e| e.into_error(&path.display().to_string()))
}

/// Refuse a folder (given by an open descriptor) that does not belong to the user running
/// this command: its owner could read or replace what we write into it.
pub fn check_owner(fd: &impl AsRawFd, shown: &Path) -> Result<()> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd())
        .map_err(|e| Error::io_path("inspect", shown, errno_io(e)))?;
    // while acting for a caller of the control socket, "you" is the caller
    let me = crate::caller::fs_uid();
    if st.st_uid != me {
        let owner = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(st.st_uid))
            .ok()
            .flatten()
            .map(|u| format!("{} (uid {})", u.name, st.st_uid))
            .unwrap_or_else(|| format!("uid {}", st.st_uid));
        return Err(Error::invalid(format!(
            "{} belongs to {owner}, not to you (uid {me}): its owner could read or replace the \
             decrypted files; choose a folder of your own (nothing was written)",
            shown.display()
        )));
    }
    Ok(())
}

/// Set the permissions of an open file or folder to exactly `mode`. A folder opened by
/// `cap-std` is an `O_PATH` descriptor, which `fchmod` refuses (EBADF): it is opened again as
/// itself (`.` below it, which cannot be swapped) and changed through that.
pub fn set_mode(fd: &impl AsRawFd, mode: u32, shown: &str) -> Result<()> {
    let fail = |e: nix::errno::Errno| {
        Error::io(
            format!("cannot set the permissions of {shown}"),
            errno_io(e),
        )
    };
    let mode = Mode::from_bits_truncate(mode);
    match nix::sys::stat::fchmod(fd.as_raw_fd(), mode) {
        Err(nix::errno::Errno::EBADF) => {
            let again = nix::fcntl::openat(
                Some(fd.as_raw_fd()),
                ".",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(fail)?;
            // SAFETY: `again` was just opened by us and is owned by nothing else.
            let again = unsafe { File::from_raw_fd(again) };
            nix::sys::stat::fchmod(again.as_raw_fd(), mode).map_err(fail)
        }
        r => r.map_err(fail),
    }
}

/// Create the folder `path` and every missing parent with at most `mode` (the umask may take
/// bits away, never add them). The permissions are not set by path afterwards: someone who can
/// write into a parent could have swapped the new folder for a link by then. The caller opens
/// the folder and sets its exact mode on the descriptor.
pub fn create_dir_all(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| Error::io_path("create", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_bounded() {
        assert_eq!(Modes::parse("0600").unwrap(), Modes::PRIVATE);
        assert_eq!(
            Modes::parse("644").unwrap(),
            Modes {
                file: 0o644,
                dir: 0o755
            }
        );
        assert_eq!(
            Modes::parse("0640").unwrap(),
            Modes {
                file: 0o640,
                dir: 0o750
            }
        );
        for bad in [
            "",
            "0666",
            "0777",
            "0700",
            "0400",
            "4644",
            "1644",
            "0o1644",
            "abc",
            "08",
            "-1",
            "0622",
            "99999999999999999999",
            "0602",
            "0611",
        ] {
            assert!(Modes::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn links_fifos_and_devices_are_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("l")).unwrap();
        nix::unistd::mkfifo(&d.path().join("p"), Mode::from_bits_truncate(0o600)).unwrap();
        assert!(open_regular(&d.path().join("f")).is_ok());
        let e = open_regular(&d.path().join("l")).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        let e = open_regular(&d.path().join("p")).unwrap_err().to_string();
        assert!(e.contains("FIFO"), "{e}");
        let e = open_regular(Path::new("/dev/null"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("character device"), "{e}");
    }
}
