//! The ceiling for reads through FUSE on this machine: a fuser filesystem that does no work.
//!
//! It serves one file, `zero`, of the given size (default 1 GiB), whose every byte is zero, with
//! the same kernel settings as consentfs's mount (1 MiB readahead and writes, the page cache
//! kept across opens, the same number of worker threads and a cloned device descriptor per
//! thread). What `dd bs=1M` reads from it after dropping the caches is what the kernel, the
//! FUSE protocol and the copies between them allow: the benchmarks print it beside consentfs
//! and gocryptfs as the limit (contrib/bench/mount.sh).
//!
//!     cargo run --release --example nullfs -- MOUNTPOINT [SIZE_MIB] [THREADS]

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry,
    ReplyOpen, Request,
};
use std::ffi::OsStr;
use std::time::{Duration, SystemTime};

const TTL: Duration = Duration::from_secs(60);
const FILE: u64 = 2;

struct NullFs {
    size: u64,
    /// Zeros to copy replies from (the largest read the kernel sends).
    zeros: Vec<u8>,
}

impl NullFs {
    fn attr(&self, ino: u64) -> FileAttr {
        let dir = ino == 1;
        FileAttr {
            ino: INodeNo(ino),
            size: if dir { 0 } else { self.size },
            blocks: if dir { 0 } else { self.size.div_ceil(512) },
            atime: SystemTime::UNIX_EPOCH,
            mtime: SystemTime::UNIX_EPOCH,
            ctime: SystemTime::UNIX_EPOCH,
            crtime: SystemTime::UNIX_EPOCH,
            kind: if dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: if dir { 0o755 } else { 0o444 },
            nlink: if dir { 2 } else { 1 },
            uid: 0,
            gid: 0,
            rdev: 0,
            flags: 0,
            blksize: 64 * 1024,
        }
    }
}

impl Filesystem for NullFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // the same settings as consentfs's adapter (src/fuse.rs)
        let _ = config.set_max_readahead(1 << 20);
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_background(64);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if parent.0 == 1 && name == "zero" {
            reply.entry(&TTL, &self.attr(FILE), Generation(0));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match ino.0 {
            1 | FILE => reply.attr(&TTL, &self.attr(ino.0)),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if ino.0 == FILE {
            reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
        } else {
            reply.error(Errno::EISDIR);
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let end = offset.saturating_add(u64::from(size)).min(self.size);
        let n = end.saturating_sub(offset) as usize;
        reply.data(&self.zeros[..n.min(self.zeros.len())]);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino.0 != 1 {
            return reply.error(Errno::ENOTDIR);
        }
        let entries = [
            (1, FileType::Directory, "."),
            (1, FileType::Directory, ".."),
            (FILE, FileType::RegularFile, "zero"),
        ];
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), (i + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(mountpoint) = args.get(1) else {
        eprintln!("usage: nullfs MOUNTPOINT [SIZE_MIB] [THREADS]");
        std::process::exit(2);
    };
    let parse = |i: usize, default: u64, max: u64| -> u64 {
        match args.get(i).map(|a| a.parse::<u64>()) {
            None => default,
            Some(Ok(v)) if (1..=max).contains(&v) => v,
            _ => {
                eprintln!("nullfs: argument {i} must be a number from 1 to {max}");
                std::process::exit(2);
            }
        }
    };
    let size = parse(2, 1024, 1 << 20) << 20;
    let threads = parse(3, 4, 64) as usize;
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("nullfs".into()),
        fuser::MountOption::RO,
        fuser::MountOption::NoAtime,
    ];
    config.n_threads = Some(threads);
    config.clone_fd = true;
    let fs = NullFs {
        size,
        zeros: vec![0; 1 << 20],
    };
    if let Err(e) = fuser::mount(fs, mountpoint, &config) {
        eprintln!("nullfs: cannot mount on {mountpoint}: {e}");
        std::process::exit(1);
    }
}
