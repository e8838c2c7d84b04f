//! The thin fuser 0.18 adapter: translate kernel requests into [`Vfs`] calls and errors into
//! errnos, and push cache invalidations into the kernel from a dedicated thread.
//!
//! Invalidations are never sent from a request handler nor while holding a lock a handler
//! needs: the kernel may need to take a directory lock that a pending request of ours holds,
//! and the notifier write would then wait for a reply that never comes (the classic deadlock of
//! live-invalidating FUSE filesystems). The watcher computes them and hands them over a channel.

use crate::error::Error;
use crate::vfs::{Attr, Batch, Caller, Invalidation, Kind, Vfs};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    IoctlFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyStatfs,
    ReplyXattr, Request,
};
use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

/// How long the kernel may cache entries and attributes. Visibility changes are pushed with
/// explicit invalidations, so this only bounds the damage of a lost one; it is short but not
/// zero (Linux behaves badly with a zero TTL, as mountpoint-s3 notes).
const TTL: Duration = Duration::from_secs(1);

/// The TTL of an entry in folder `parent`. The kernel's dentry cache is shared by all users, so
/// the users' folders in the mount root are never cached: each lookup comes to us with the
/// caller's uid, and another user's folder is not found (see `Vfs::lookup`). There are only a
/// few of them, so the extra lookups cost nothing.
fn entry_ttl(parent: u64) -> &'static Duration {
    if parent == crate::vfs::inodes::ROOT {
        &Duration::ZERO
    } else {
        &TTL
    }
}

pub struct FuseFs {
    vfs: Arc<Vfs>,
    /// Descriptors opened for writing only bypass the kernel's page cache (see
    /// [`FuseFs::open_flags`]); decided at `init` from what the kernel offers.
    direct_writes: bool,
}

impl FuseFs {
    pub fn new(vfs: Arc<Vfs>) -> FuseFs {
        FuseFs {
            vfs,
            direct_writes: false,
        }
    }

    /// The flags of an open or create reply.
    ///
    /// A descriptor opened for writing only (`O_WRONLY`: a tool saving a file, `tar x`, `cp`,
    /// `dd of=`, a shell's `>` and `>>`) writes around the kernel's page cache
    /// (`FOPEN_DIRECT_IO`): each write's bytes go from the writer's buffer into the request,
    /// instead of first being copied into page-cache pages of the file that the kernel
    /// allocates and charges, only to be sent on in the same request. Nothing can read through
    /// such a descriptor, and no one can map it, so the cache would only have held the bytes
    /// for later readers. Measured on this 2-core VM, same store, taking turns: `dd bs=1M` of
    /// 1 GiB 490-950 MiB/s against 270-380, a `tar x` of 5,000 small files 2.0 s against 2.3 s.
    ///
    /// Only where the kernel drops its cached pages of the range a direct write covers (Linux
    /// 6.6 and later, the same series that brought `FUSE_DIRECT_IO_ALLOW_MMAP`, whose offer
    /// marks it): a reader that holds the file's pages then reads what was written, at once,
    /// as on a local filesystem (`tests/mount.rs` checks this). Descriptors opened for reading
    /// and writing stay cached as before: they read through the cache, which must stay whole.
    fn open_flags(&self, keep_cache: bool, write_only: bool) -> FopenFlags {
        let mut flags = FopenFlags::empty();
        if keep_cache {
            flags |= FopenFlags::FOPEN_KEEP_CACHE;
        }
        if write_only && self.direct_writes {
            flags |= FopenFlags::FOPEN_DIRECT_IO;
        }
        flags
    }
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
        pid: req.pid(),
    }
}

fn errno(e: &Error) -> Errno {
    match e {
        // errnos that answer a question (no such attribute, folder not empty, name taken …)
        // are part of normal traffic; anything else from the disk is worth a warning
        Error::Io { source, .. }
            if matches!(
                source.raw_os_error(),
                Some(
                    libc::ENODATA
                        | libc::ENOTEMPTY
                        | libc::EEXIST
                        | libc::EXDEV
                        | libc::EPERM
                        | libc::EINVAL
                        | libc::ENOTDIR
                        | libc::EISDIR
                        | libc::ERANGE
                        | libc::ENAMETOOLONG
                        | libc::ENOTSUP
                )
            ) =>
        {
            log::debug!("{e}")
        }
        Error::Integrity { .. } | Error::Io { .. } | Error::Catalog(_) => log::warn!("{e}"),
        Error::Denied(_) => log::debug!("{e}"),
        _ => log::debug!("{e}"),
    }
    Errno::from_i32(e.errno())
}

/// The time a `setattr` sets. fuser 0.18 turns the kernel's (seconds, nanoseconds) into a
/// `SystemTime` as `EPOCH - (-seconds, nanoseconds)` when the seconds are negative, which
/// moves every time before 1970 with a fraction of a second (`touch -d 1960-01-01T00:00:00.5`
/// became 1959-12-31T23:59:59.5); undone here so that such a time is kept exactly. Its
/// replies are right (`time_from_system_time`).
fn time_set(t: std::time::SystemTime) -> chrono::DateTime<chrono::Utc> {
    match std::time::UNIX_EPOCH.duration_since(t) {
        Ok(before) if !before.is_zero() => {
            let secs = i64::try_from(before.as_secs()).map_or(i64::MIN, |s| -s);
            chrono::DateTime::from_timestamp(secs, before.subsec_nanos())
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
        }
        _ => chrono::DateTime::<chrono::Utc>::from(t),
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.mtime,
        kind: match a.kind {
            Kind::Dir => FileType::Directory,
            Kind::File => FileType::RegularFile,
        },
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        flags: 0,
        blksize: 64 * 1024,
    }
}

/// Names longer than this many bytes are refused with ENAMETOOLONG, as on ext4 (the kernel
/// passes names up to 1024 bytes to FUSE).
const NAME_MAX: usize = 255;

/// A name in a request as text (a name that is not UTF-8 is kept byte-exact, see
/// [`crate::names`]); ENAMETOOLONG when it is longer than [`NAME_MAX`] bytes (a tool told "no
/// such file" or "invalid argument" would search for the wrong cause).
fn name_of(name: &OsStr) -> std::result::Result<String, Errno> {
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(crate::names::from_bytes(name.as_bytes()))
}

/// A name of the mount as the kernel gets it: the bytes it came in as.
fn name_out(name: &str) -> std::ffi::OsString {
    std::ffi::OsString::from_vec(crate::names::to_bytes(name))
}

fn file_type(k: Kind) -> FileType {
    match k {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
    }
}

impl Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Large reads and readahead let the kernel ask for many chunks at once; the worker
        // threads then decrypt them in parallel.
        let _ = config.set_max_readahead(1 << 20);
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_background(64);
        for cap in [
            // O_TRUNC reaches open(), so a truncating save does not first commit an empty
            // version through a separate setattr
            InitFlags::FUSE_ATOMIC_O_TRUNC,
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
            // no file here ever has a set-user-id or set-group-id bit or a file capability
            // (modes follow the grants): saying the filesystem handles their removal spares
            // the kernel a `security.capability` lookup (and a getattr) on writes and chowns,
            // two or three round trips per small file a tool writes
            InitFlags::FUSE_HANDLE_KILLPRIV_V2,
            // a direct write also writes back what a shared mapping through another
            // descriptor left dirty in its range before it goes out (see `open_flags`)
            InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP,
        ] {
            if config.add_capabilities(cap).is_err() {
                log::debug!("kernel lacks capability {cap:?}");
            }
        }
        self.direct_writes = config
            .capabilities()
            .contains(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP);
        if !self.direct_writes {
            log::info!("this kernel does not drop cached pages on direct writes: writes go through the page cache");
        }
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = match name_of(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        match self.vfs.lookup(caller(req), parent.0, &name) {
            // the attributes are cached as everywhere else, even where the name is not: a
            // path through a user's folder (every path) then costs one lookup, not a lookup
            // and a getattr for the permission check (`ls -lR` made four round trips per file
            // for the folder alone)
            Ok(attr) => {
                reply.entry_with_ttls(&TTL, entry_ttl(parent.0), &file_attr(&attr), Generation(0))
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.vfs.forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.vfs.getattr(caller(req), ino.0) {
            Ok(attr) => reply.attr(&TTL, &file_attr(&attr)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        let truncate = flags.0 & libc::O_TRUNC != 0;
        match self.vfs.open_noting(caller(req), ino.0, write, truncate) {
            // Keep the page cache across opens: every visibility or content change drops it
            // with an explicit inval_inode, and each user has their own inodes; except when
            // pages of older content may be there (see `Vfs::open_noting`)
            Ok(o) => reply.opened(
                FileHandle(o.fh),
                self.open_flags(o.keep_cache, flags.acc_mode() == OpenAccMode::O_WRONLY),
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        thread_local! {
            // One buffer per worker thread: large reads need no fresh allocation each time.
            // It is not wiped after each reply (a memset of every byte read cost 2-3 % of a
            // cold read): the plaintext it holds is the same that the kernel keeps in its page
            // cache, in a process that holds the keys anyway. It is wiped when the thread ends.
            static BUF: std::cell::RefCell<zeroize::Zeroizing<Vec<u8>>> =
                std::cell::RefCell::new(zeroize::Zeroizing::new(Vec::new()));
        }
        let mut reply = Some(reply);
        let _ = BUF.try_with(|buf| {
            let (Ok(mut buf), Some(reply)) = (buf.try_borrow_mut(), reply.take()) else {
                return;
            };
            match self
                .vfs
                .read_for_kernel(ino.0, fh.0, offset, size, &mut buf)
            {
                Ok(()) => reply.data(&buf),
                Err(e) => reply.error(errno(&e)),
            }
        });
        if let Some(reply) = reply {
            log::error!("read: the worker thread's buffer is unavailable (thread exiting)");
            reply.error(Errno::EIO);
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.vfs.release(fh.0);
        reply.ok();
    }

    fn flush(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) by the process that opened the file commits what was written, so its close
        // reports a failed save; the last release commits in any case
        match self.vfs.flush(fh.0, req.pid()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.vfs.commit(fh.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: fuser::WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: fuser::ReplyWrite,
    ) {
        let append = flags.0 & libc::O_APPEND != 0;
        match self.vfs.write_with(req.pid(), fh.0, offset, data, append) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        flags: i32,
        reply: fuser::ReplyCreate,
    ) {
        let name = match name_of(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        match self.vfs.create(caller(req), parent.0, &name) {
            Ok((attr, fh)) => reply.created(
                &TTL,
                &file_attr(&attr),
                Generation(0),
                FileHandle(fh),
                self.open_flags(false, flags & libc::O_ACCMODE == libc::O_WRONLY),
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<fuser::TimeOrNow>,
        mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let time = |t: fuser::TimeOrNow| match t {
            fuser::TimeOrNow::SpecificTime(t) => time_set(t),
            fuser::TimeOrNow::Now => chrono::Utc::now(),
        };
        let times = crate::vfs::times::SetTimes {
            mtime: mtime.map(time),
            atime: atime.map(time),
            chmod: mode.is_some(),
        };
        match self
            .vfs
            .setattr(caller(req), ino.0, fh.map(|f| f.0), size, times, uid, gid)
        {
            Ok(attr) => reply.attr(&TTL, &file_attr(&attr)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = match name_of(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        match self.vfs.unlink(caller(req), parent.0, &name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let name = match name_of(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        match self.vfs.mkdir(caller(req), parent.0, &name) {
            Ok(attr) => reply.entry(&TTL, &file_attr(&attr), Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = match name_of(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        match self.vfs.rmdir(caller(req), parent.0, &name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (name, newname) = match (name_of(name), name_of(newname)) {
            (Ok(n), Ok(m)) => (n, m),
            (Err(e), _) | (_, Err(e)) => return reply.error(e),
        };
        if flags
            .intersects(fuser::RenameFlags::RENAME_EXCHANGE | fuser::RenameFlags::RENAME_WHITEOUT)
        {
            // exchanging two photos would swap their consents; not supported
            return reply.error(Errno::EINVAL);
        }
        let noreplace = flags.contains(fuser::RenameFlags::RENAME_NOREPLACE);
        match self.vfs.rename(
            caller(req),
            parent.0,
            &name,
            newparent.0,
            &newname,
            noreplace,
        ) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        log::info!("refused: symlink in the mount");
        reply.error(Errno::EPERM);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        log::info!("refused: hard link in the mount");
        reply.error(Errno::EPERM);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EPERM);
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.vfs.opendir(caller(req), ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.vfs.dir_entries(fh.0) {
            Ok(e) => e,
            Err(e) => return reply.error(errno(&e)),
        };
        // offsets: 1 = ".", 2 = "..", 3.. = entries
        let mut next = offset;
        if next == 0 {
            if reply.add(ino, 1, FileType::Directory, ".") {
                return reply.ok();
            }
            next = 1;
        }
        if next == 1 {
            if reply.add(INodeNo(1), 2, FileType::Directory, "..") {
                return reply.ok();
            }
            next = 2;
        }
        for (i, e) in entries.iter().enumerate().skip((next - 2) as usize) {
            if reply.add(
                INodeNo(e.attr.ino),
                i as u64 + 3,
                file_type(e.attr.kind),
                name_out(&e.name),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let entries = match self.vfs.dir_entries(fh.0) {
            Ok(e) => e,
            Err(e) => return reply.error(errno(&e)),
        };
        let mut next = offset;
        if next == 0 {
            // "." and ".." in readdirplus are not counted as lookups by the kernel, and their
            // attributes are ignored; any valid attr will do.
            let dot = Attr {
                ino: ino.0,
                kind: Kind::Dir,
                size: 0,
                perm: 0o500,
                uid: 0,
                gid: 0,
                mtime: std::time::SystemTime::UNIX_EPOCH,
                atime: std::time::SystemTime::UNIX_EPOCH,
                ctime: std::time::SystemTime::UNIX_EPOCH,
                blocks: 0,
                nlink: 2,
            };
            if reply.add(
                ino,
                1,
                ".",
                &Duration::ZERO,
                &file_attr(&dot),
                Generation(0),
            ) {
                return reply.ok();
            }
            next = 1;
        }
        if next == 1 {
            let dotdot = Attr {
                ino: 1,
                kind: Kind::Dir,
                size: 0,
                perm: 0o500,
                uid: 0,
                gid: 0,
                mtime: std::time::SystemTime::UNIX_EPOCH,
                atime: std::time::SystemTime::UNIX_EPOCH,
                ctime: std::time::SystemTime::UNIX_EPOCH,
                blocks: 0,
                nlink: 2,
            };
            if reply.add(
                INodeNo(1),
                2,
                "..",
                &Duration::ZERO,
                &file_attr(&dotdot),
                Generation(0),
            ) {
                return reply.ok();
            }
            next = 2;
        }
        let ttl = entry_ttl(ino.0);
        for (i, e) in entries.iter().enumerate().skip((next - 2) as usize) {
            // counted before it is sent: the kernel holds a reference once it has the entry
            let ino = self.vfs.reference_entry(e);
            let mut attr = e.attr.clone();
            attr.ino = ino;
            if reply.add(
                INodeNo(ino),
                i as u64 + 3,
                name_out(&e.name),
                ttl,
                &file_attr(&attr),
                Generation(0),
            ) {
                // did not fit: not sent, so not referenced
                self.vfs.forget(ino, 1);
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.vfs.releasedir(fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.vfs.statfs();
        reply.statfs(
            s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.bsize,
        );
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let value = match name.to_str() {
            Some(n) => self.vfs.getxattr(caller(req), ino.0, n),
            None => return reply.error(Errno::ENODATA),
        };
        match value {
            Ok(v) if size == 0 => reply.size(v.len() as u32),
            Ok(v) if v.len() as u32 <= size => reply.data(&v),
            Ok(_) => reply.error(Errno::ERANGE),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        match self.vfs.setxattr(caller(req), ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        match self.vfs.setxattr(caller(req), ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// Tools ask whether a file is a terminal (Perl's exiftool does, TCGETS) or for filesystem
    /// flags; photos are neither, and "not a tty" is the answer a regular file gives.
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        log::debug!("ioctl {cmd:#x}: not supported");
        reply.error(Errno::ENOTTY);
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let names = match self.vfs.listxattr(caller(req), ino.0) {
            Ok(n) => n,
            Err(e) => return reply.error(errno(&e)),
        };
        let mut buf = Vec::new();
        for n in names {
            buf.extend_from_slice(n.as_bytes());
            buf.push(0);
        }
        if size == 0 {
            reply.size(buf.len() as u32);
        } else if buf.len() as u32 <= size {
            reply.data(&buf);
        } else {
            reply.error(Errno::ERANGE);
        }
    }

    fn access(&self, req: &Request, ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        match self.vfs.getattr(caller(req), ino.0) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }
}

/// Send invalidations to the kernel, one batch at a time, until the channel closes; and the
/// pages a small read decrypted beyond what it asked for, in order with them (see
/// [`crate::vfs::fill`]).
pub fn run_invalidator(notifier: fuser::Notifier, batches: Receiver<Batch>, vfs: Arc<Vfs>) {
    for batch in batches {
        if let Some(fill) = batch.fill {
            vfs.fill(fill, |ino, offset, data| {
                notifier.store(INodeNo(ino), offset, data)
            });
        }
        for inv in batch.items {
            let result = match &inv {
                Invalidation::Entry { parent, name } => {
                    notifier.inval_entry(INodeNo(*parent), OsStr::new(name))
                }
                Invalidation::Inode { ino } => notifier.inval_inode(INodeNo(*ino), 0, 0),
            };
            match result {
                Ok(()) => {}
                // the kernel did not have it cached: nothing to forget
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => log::debug!("invalidation {inv:?} failed: {e}"),
            }
        }
        if let Some(done) = batch.done {
            let _ = done.send(());
        }
    }
}
