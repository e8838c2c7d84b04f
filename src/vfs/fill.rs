//! The rest of a chunk a small read decrypted, handed to the kernel's page cache.
//!
//! Objects are sealed in chunks of 64 KiB: a read of 4 KiB decrypts and authenticates the
//! whole chunk. A program reading a large photo at random (fio, a viewer seeking through a
//! TIFF, exiftool looking for a trailer) would then decrypt each chunk up to 16 times, once per
//! page, and pay a FUSE round trip per page. After such a read the daemon pushes the chunk's
//! other pages into the kernel's cache of the inode (`FUSE_NOTIFY_STORE`), so the next reads
//! of that chunk are answered by the kernel.
//!
//! Those pages are content the kernel will serve without asking, so a push must never put
//! pages there that the daemon would not serve itself at that moment:
//!
//! - It runs on the invalidator thread, in order with every invalidation. A change that hides
//!   the photo, or gives it other content, queues its invalidations after it took effect: a
//!   push checked before the change lands before those invalidations, which drop it again; a
//!   push checked after the change sees it and is dropped.
//! - It is checked there again, just before it is made: the daemon still serves, the photo is
//!   still visible to the file's user in its purpose, the file is still the one its name opens
//!   (not replaced, not removed, not behind the catalog), it serves the same version the chunk
//!   was decrypted from, and nothing is written or open for writing.
//! - Writes need no invalidation (they go through the same pages), so an open for writing
//!   waits at the file's barrier for a push that is under way ([`OpenFile::start_writing`]):
//!   no push lands after a write has begun.
//! - It never runs in a request handler, and holds no lock a read handler takes while the
//!   kernel copies: the kernel locks the pages it fills, and a read in flight holds them until
//!   its handler answers.
//! - The bytes queued are bounded ([`MAX_QUEUED`]), so invalidations never wait behind a long
//!   queue of pushes; past the bound a push is simply not made.
//!
//! Only small reads push: the kernel's readahead already asks for whole chunks of a file read
//! in order, and pushing pages a readahead request has locked would only copy them twice.
//! And only reads of objects on this machine: a push waits for any read in flight on the same
//! pages, and a read of an object fetched from an object store can take long enough to hold up
//! a withdrawal's invalidations behind it.

use super::cache::Chunk;
use super::open_file::OpenFile;
use super::{Handle, Ino, Vfs};
use crate::crypto::object::{ObjectId, CHUNK_PLAIN};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Reads of at most this many bytes push the rest of the chunk they read in part.
pub const SMALL_READ: u32 = (CHUNK_PLAIN / 2) as u32;

/// Bytes of pushes waiting on the invalidator thread, at most: 64 chunks, which the kernel
/// copies in about a millisecond, so a withdrawal's invalidations never wait longer than that
/// behind pushes.
pub const MAX_QUEUED: u64 = 4 << 20;

/// The pages of one chunk to push into the kernel's cache of inode `ino`.
pub struct Fill {
    ino: Ino,
    handle: Arc<Handle>,
    /// The version the chunk was decrypted from.
    object: ObjectId,
    /// File offset of the chunk's first byte.
    chunk_at: u64,
    chunk: Chunk,
    /// The byte ranges of the chunk to push (page-aligned, outside what the read returned).
    ranges: Vec<std::ops::Range<usize>>,
}

impl Fill {
    fn bytes(&self) -> u64 {
        self.ranges.iter().map(|r| r.len() as u64).sum()
    }
}

impl std::fmt::Debug for Fill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Fill(ino {}, chunk at {}, {} bytes)",
            self.ino,
            self.chunk_at,
            self.bytes()
        )
    }
}

/// The parts of chunk `[chunk_at, chunk_at + chunk_len)` outside `[read_at, read_end)`,
/// rounded inwards to whole pages (the kernel marks only whole pages as holding the file's
/// content; the chunk's end is the file's end when it is shorter).
fn rest_of_chunk(
    chunk_at: u64,
    chunk_len: usize,
    read_at: u64,
    read_end: u64,
) -> Vec<std::ops::Range<usize>> {
    const PAGE: usize = 4096;
    let within = |at: u64| (at.saturating_sub(chunk_at) as usize).min(chunk_len);
    let (a, b) = (within(read_at), within(read_end));
    let mut out = Vec::new();
    let before_end = a / PAGE * PAGE;
    if before_end > 0 {
        out.push(0..before_end);
    }
    let after_start = b.div_ceil(PAGE) * PAGE;
    if after_start < chunk_len {
        out.push(after_start..chunk_len);
    }
    out
}

impl Vfs {
    /// After a small read through `h` (inode `ino`) of `[read_at, read_end)`, which took part
    /// of chunk `chunk` (starting at `chunk_at`) of version `object`: queue the rest of it for
    /// the kernel's cache, unless too much is queued already.
    pub(super) fn queue_fill(
        &self,
        ino: Ino,
        h: &Arc<Handle>,
        object: ObjectId,
        chunk_at: u64,
        chunk: &Chunk,
        (read_at, read_end): (u64, u64),
    ) {
        let ranges = rest_of_chunk(chunk_at, chunk.len(), read_at, read_end);
        if ranges.is_empty() {
            return;
        }
        let fill = Fill {
            ino,
            handle: h.clone(),
            object,
            chunk_at,
            chunk: chunk.clone(),
            ranges,
        };
        let bytes = fill.bytes();
        let queued = &self.fills_queued;
        if queued.fetch_add(bytes, Ordering::AcqRel) + bytes > MAX_QUEUED {
            queued.fetch_sub(bytes, Ordering::AcqRel);
            return;
        }
        let sent = self
            .inval_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|tx| {
                tx.send(super::Batch {
                    items: Vec::new(),
                    done: None,
                    fill: Some(fill),
                })
                .is_ok()
            });
        if !sent {
            queued.fetch_sub(bytes, Ordering::AcqRel);
        }
    }

    /// Make push `fill` with `store` (the kernel's `FUSE_NOTIFY_STORE`: inode, offset, bytes)
    /// if it is still right to (see the module's documentation). Returns the bytes pushed.
    pub fn fill(
        &self,
        fill: Fill,
        mut store: impl FnMut(Ino, u64, &[u8]) -> std::io::Result<()>,
    ) -> u64 {
        self.fills_queued.fetch_sub(fill.bytes(), Ordering::AcqRel);
        let file = &fill.handle.file;
        let _barrier = file.fill_barrier();
        if !self.may_fill(&fill, file) {
            return 0;
        }
        let mut pushed = 0;
        for r in &fill.ranges {
            let at = fill.chunk_at + r.start as u64;
            match store(fill.ino, at, &fill.chunk[r.clone()]) {
                Ok(()) => pushed += r.len() as u64,
                // the kernel forgot the inode meanwhile: nothing to fill
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
                Err(e) => {
                    log::debug!("{fill:?}: the kernel refused pages: {e}");
                    break;
                }
            }
        }
        pushed
    }

    /// Whether the pages of `fill` are what the daemon would serve through its inode now.
    /// Called under the file's fill barrier.
    fn may_fill(&self, fill: &Fill, file: &Arc<OpenFile>) -> bool {
        let h = &fill.handle;
        if self.live.check().is_err()
            || file.is_detached()
            || file.unlinked().is_some()
            || file.has_pending()
            || file.committing.load(Ordering::Acquire)
            || file.writers_open.load(Ordering::Acquire) > 0
            || self.current_asset(h.asset) != h.asset
        {
            return false;
        }
        if !self
            .files
            .get(&h.key())
            .is_some_and(|f| Arc::ptr_eq(&f, file))
        {
            return false;
        }
        {
            let st = file.state.read().unwrap_or_else(|p| p.into_inner());
            if st.writer.is_some() || st.object != fill.object {
                return false;
            }
        }
        if self.current_object(h.asset) != Some(fill.object) {
            return false;
        }
        self.view().file_visible(&h.login, h.purpose, h.asset)
    }
}

#[cfg(test)]
mod tests {
    use super::rest_of_chunk;

    #[test]
    fn the_rest_of_a_chunk_is_whole_pages_outside_the_read() {
        // a 4 KiB read in the middle of a 64 KiB chunk at 64 KiB
        assert_eq!(
            rest_of_chunk(65536, 65536, 65536 + 8192, 65536 + 12288),
            vec![0..8192, 12288..65536]
        );
        // a read at the chunk's start: only what follows
        assert_eq!(rest_of_chunk(0, 65536, 0, 4096), vec![4096..65536]);
        // an unaligned read: the pages it touches are left out
        assert_eq!(
            rest_of_chunk(0, 65536, 5000, 9000),
            vec![0..4096, 12288..65536]
        );
        // the file's last chunk, shorter, read at its start: up to the file's end
        assert_eq!(rest_of_chunk(0, 10000, 0, 4096), vec![4096..10000]);
        // a read of the whole chunk: nothing
        assert!(rest_of_chunk(0, 10000, 0, 10000).is_empty());
        // a read past a short chunk's last page
        assert_eq!(rest_of_chunk(0, 10000, 8192, 10000), vec![0..8192]);
    }
}
