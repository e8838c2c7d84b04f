//! A new object being written through the mount, with random access.
//!
//! The file on disk has the final object layout from the start (header, then 64 KiB chunk
//! slots), so committing needs no copy: every chunk but the last is sealed in place as it
//! completes, and the last chunk is kept in memory until commit, when it is sealed with the
//! final flag. A write into an already sealed chunk decrypts, patches and re-seals it with a
//! fresh nonce (allowed: the object is not committed yet, so nobody holds that ciphertext).
//! Nothing is ever on disk unencrypted, and the data key exists only in memory until the
//! catalog records it, so a crash leaves an unreadable `.tmp` file that start-up removes.
//!
//! Objects written here are sparse (format version 2): a chunk of zeros is never sealed, its
//! slot stays a hole in the file, and the chunk map sealed at commit lists the stored chunks.
//! So `truncate -s 8G` or a write far past the end costs O(1): no zeros are encrypted or
//! written, and the file on disk holds only the header, the chunks with data and the map.

use super::hash::ContentHasher;
use super::{NewObject, Store, MAX_FILE_SIZE};
use crate::crypto::aead::{open_in_place, seal_in_place};
use crate::crypto::object::{
    chunk_count, encrypted_len, header_of, is_zero, seal_map, Decryptor, ObjectId, ReadAt, Runs,
    CHUNK_CIPHER, CHUNK_PLAIN, FORMAT_SPARSE, HEADER_LEN,
};
use crate::crypto::{random_bytes, wrap_key, Key, NONCE_LEN, TAG_LEN};
use crate::error::{Error, IoContext, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// A set of chunk indices kept as runs, so that a dense 64 GiB file is one entry.
#[derive(Default)]
struct ChunkSet {
    /// first index -> count
    runs: BTreeMap<u64, u64>,
    len: u64,
}

impl ChunkSet {
    fn run_of(&self, index: u64) -> Option<(u64, u64)> {
        let (&first, &count) = self.runs.range(..=index).next_back()?;
        (index < first + count).then_some((first, count))
    }

    fn contains(&self, index: u64) -> bool {
        self.run_of(index).is_some()
    }

    fn insert(&mut self, index: u64) {
        if self.contains(index) {
            return;
        }
        let mut first = index;
        let mut count = 1;
        if let Some((&f, &c)) = self.runs.range(..index).next_back() {
            if f + c == index {
                first = f;
                count += c;
            }
        }
        if let Some(c) = self.runs.remove(&(index + 1)) {
            count += c;
        }
        self.runs.insert(first, count);
        self.len += 1;
    }

    fn remove(&mut self, index: u64) {
        if let Some((first, count)) = self.run_of(index) {
            self.runs.remove(&first);
            if index > first {
                self.runs.insert(first, index - first);
            }
            if index + 1 < first + count {
                self.runs.insert(index + 1, first + count - index - 1);
            }
            self.len -= 1;
        }
    }

    /// Remove every index from `from` on.
    fn cut(&mut self, from: u64) {
        let later = self.runs.split_off(&from);
        self.len -= later.values().sum::<u64>();
        if let Some((first, count)) = self.run_of(from) {
            self.runs.insert(first, from - first);
            self.len -= first + count - from;
        }
    }

    fn runs(&self) -> Runs {
        self.runs.iter().map(|(f, c)| (*f, *c)).collect()
    }

    /// Add every index of `other`.
    fn extend(&mut self, other: &ChunkSet) {
        for (&first, &count) in &other.runs {
            for index in first..first + count {
                self.insert(index);
            }
        }
    }
}

/// What sealing a chunk needs, shared with the thread that seals a large write after its
/// request was answered (see [`ObjectWriter::seal_later`]).
struct Sealer {
    key: Key,
    header: [u8; HEADER_LEN as usize],
    file: File,
    tmp: PathBuf,
}

/// Large sequential writes being sealed on a thread of their own, in order: the request that
/// brought each is answered once its bytes are copied, so the kernel copies in the next
/// megabyte while this one is sealed, and the next is queued behind it without waiting for
/// it (at most [`PIPELINE_DEPTH`] queued). The content hash follows the bytes on that thread,
/// so it runs without a pause from one request to the next: with one request in flight, each
/// waited for the one before, and the hash (the longest step) sat idle while the kernel
/// brought the next. Everything else the writer does waits for all of them first
/// ([`ObjectWriter::settle`]), and a failure, if any, is the next call's (a later write, the
/// fsync, the close), as a local filesystem reports a failed writeback.
struct Pipeline {
    jobs: Option<std::sync::mpsc::SyncSender<Job>>,
    worker: std::thread::JoinHandle<Sealed>,
    /// Buffers the worker is done with, for the next requests' copies (as many as were ever
    /// in flight at once: [`PIPELINE_DEPTH`] + 1).
    spares: std::sync::Arc<std::sync::Mutex<Vec<Zeroizing<Vec<u8>>>>>,
    /// Jobs handed over and not yet done, and the bytes they will store (for
    /// [`ObjectWriter::allocated_bytes`]).
    queued: std::sync::Arc<Queued>,
}

/// Requests queued behind the one being sealed: bounds the copies held per file.
const PIPELINE_DEPTH: usize = 2;

#[derive(Default)]
struct Queued {
    jobs: std::sync::atomic::AtomicUsize,
    bytes: std::sync::atomic::AtomicU64,
    /// A job failed: the next call settles and reports it.
    failed: std::sync::atomic::AtomicBool,
}

/// One request for the pipeline: whole chunks `first..` in `buf[..sealed]`, all of `buf`
/// for the hash.
struct Job {
    first: u64,
    buf: Zeroizing<Vec<u8>>,
    sealed: usize,
}

/// What a pipeline hands back when it ends.
struct Sealed {
    /// The chunks stored (not holes), as runs (a 64 GiB stream is one), or the first failure.
    stored: Result<ChunkSet>,
    hash: Option<ContentHasher>,
}

pub struct ObjectWriter {
    id: ObjectId,
    s: std::sync::Arc<Sealer>,
    pipeline: Option<Pipeline>,
    /// Plaintext size.
    size: u64,
    /// Chunks before the tail: each is sealed on disk or a hole (zeros).
    sealed: u64,
    /// Which chunks before the tail are sealed on disk; the others are holes.
    stored: ChunkSet,
    /// Plaintext of the last chunk (index `sealed`).
    tail: Zeroizing<Vec<u8>>,
    /// Keyed content hash over the bytes so far, while they arrived strictly in order.
    hash: Option<ContentHasher>,
    hash_key: Key,
    committed: bool,
    /// A write or truncate failed half-way (disk full, I/O error): what is on disk no longer
    /// matches what the writer was told, so this object must never become a version.
    broken: Option<String>,
}

thread_local! {
    /// Where a chunk is sealed before its one write: reused, so sealing a chunk allocates
    /// nothing (it only ever holds ciphertext once the write is issued, and a nonce).
    static SEAL_BUF: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(Vec::with_capacity(CHUNK_CIPHER as usize));
}

fn aad(
    header: &[u8; HEADER_LEN as usize],
    index: u64,
    last: bool,
) -> [u8; HEADER_LEN as usize + 9] {
    crate::crypto::object::chunk_aad_of(header, index, last)
}

/// Refuse a size past [`MAX_FILE_SIZE`] before anything changes.
fn check_size(end: Option<u64>) -> Result<()> {
    match end {
        Some(e) if e <= MAX_FILE_SIZE => Ok(()),
        Some(e) => Err(super::too_large(e)),
        None => Err(super::too_large(u64::MAX)),
    }
}

impl ObjectWriter {
    pub(super) fn new(store: &Store) -> Result<ObjectWriter> {
        crate::caller::as_daemon(|| {
            let id = ObjectId::random();
            let tmp = store.object_path(&id).with_extension("tmp");
            let file = super::private::create_file_in_new_dir(&tmp, true)?;
            let header = header_of(&id, FORMAT_SPARSE);
            file.write_all_at(&header, 0).at("write object", &tmp)?;
            let hash_key = store.content_key();
            Ok(ObjectWriter {
                id,
                s: std::sync::Arc::new(Sealer {
                    key: Key::random(),
                    header,
                    file,
                    tmp,
                }),
                pipeline: None,
                size: 0,
                sealed: 0,
                stored: ChunkSet::default(),
                tail: Zeroizing::new(Vec::with_capacity(CHUNK_PLAIN as usize)),
                hash: Some(ContentHasher::new(&hash_key)),
                hash_key,
                committed: false,
                broken: None,
            })
        })
    }

    pub fn len(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Bytes this pending object really holds: its sealed chunks on disk and the last chunk in
    /// memory. Holes count nothing, so a per-user bound on pending bytes can use this rather
    /// than [`ObjectWriter::len`].
    pub fn allocated_bytes(&self) -> u64 {
        self.stored.len * CHUNK_CIPHER
            + self.tail.len() as u64
            + self.pipeline.as_ref().map_or(0, |p| {
                p.queued.bytes.load(std::sync::atomic::Ordering::Acquire)
            })
    }

    fn io(&self, e: std::io::Error) -> Error {
        self.s.io(e)
    }

    /// Whether the large writes handed to the sealing thread are done (not yet taken).
    #[cfg(test)]
    fn sealed_in_background(&self) -> bool {
        self.pipeline
            .as_ref()
            .is_none_or(|p| p.queued.jobs.load(std::sync::atomic::Ordering::Acquire) == 0)
    }

    /// Wait for the large writes being sealed, if any, and take their result: every call
    /// that looks at what is on disk, or at the content hash, comes after this. After a
    /// failure (disk full) the writer is broken, as after a failed write.
    pub fn settle(&mut self) -> Result<()> {
        let r = self.settle_unguarded();
        self.guard(r)
    }

    fn settle_unguarded(&mut self) -> Result<()> {
        let Some(mut p) = self.pipeline.take() else {
            return Ok(());
        };
        // no more jobs: the worker ends once it has done those queued
        drop(p.jobs.take());
        let done = p
            .worker
            .join()
            .map_err(|_| Error::invalid("the sealing thread failed"))?;
        self.hash = done.hash;
        self.stored.extend(&done.stored?);
        Ok(())
    }

    /// Seal the whole chunks `first..` in `data[..sealed]` on the sealing thread, feeding all
    /// of `data` (the whole request) to the content hash after the requests before it, and
    /// return once `data` is copied; see [`Pipeline`]. If no thread can be started, seal them
    /// here (the hash is then taken at commit).
    fn seal_later(&mut self, first: u64, data: &[u8], sealed: usize) -> Result<()> {
        use std::sync::atomic::Ordering;
        if self
            .pipeline
            .as_ref()
            .is_some_and(|p| p.queued.failed.load(Ordering::Acquire))
        {
            // report the failure now, as the next write
            self.settle_unguarded()?;
        }
        if self.pipeline.is_none() {
            match self.start_pipeline() {
                Ok(p) => self.pipeline = Some(p),
                Err(e) => {
                    log::warn!("cannot start a sealing thread ({e}); sealing in the request");
                    self.hash = None;
                    for index in seal_parallel(&self.s, first, &data[..sealed], &[], None)? {
                        self.stored.insert(index);
                    }
                    return Ok(());
                }
            }
        }
        let Some(p) = self.pipeline.as_ref() else {
            return Err(Error::invalid("no sealing thread"));
        };
        let mut buf = p
            .spares
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        let bytes = (sealed as u64 / CHUNK_PLAIN) * CHUNK_CIPHER;
        p.queued.jobs.fetch_add(1, Ordering::AcqRel);
        p.queued.bytes.fetch_add(bytes, Ordering::AcqRel);
        let sent = p
            .jobs
            .as_ref()
            .map(|tx| tx.send(Job { first, buf, sealed }));
        if !matches!(sent, Some(Ok(()))) {
            // the worker is gone (it panicked): what it held is lost
            self.settle_unguarded()?;
            return Err(Error::invalid("the sealing thread failed"));
        }
        Ok(())
    }

    /// The sealing thread of [`Pipeline`], holding the content hash while it runs.
    fn start_pipeline(&mut self) -> std::io::Result<Pipeline> {
        use std::sync::atomic::Ordering;
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(PIPELINE_DEPTH);
        let spares = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let spare_tx = spares.clone();
        let queued = std::sync::Arc::new(Queued::default());
        let q = queued.clone();
        let s = self.s.clone();
        let mut hash = self.hash.take();
        let worker = std::thread::Builder::new()
            .name("sealer".into())
            .spawn(move || {
                let mut stored = Ok(ChunkSet::default());
                for job in rx {
                    if let Ok(all) = stored.as_mut() {
                        match seal_parallel(
                            &s,
                            job.first,
                            &job.buf[..job.sealed],
                            &job.buf,
                            hash.as_mut(),
                        ) {
                            Ok(v) => v.into_iter().for_each(|index| all.insert(index)),
                            Err(e) => {
                                stored = Err(e);
                                q.failed.store(true, Ordering::Release);
                            }
                        }
                    }
                    q.bytes.fetch_sub(
                        (job.sealed as u64 / CHUNK_PLAIN) * CHUNK_CIPHER,
                        Ordering::AcqRel,
                    );
                    // not wiped here (byte by byte, that took 5 % of a large save): the next
                    // request overwrites it, and it is wiped when it is dropped, like the tail
                    spare_tx
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(job.buf);
                    q.jobs.fetch_sub(1, Ordering::AcqRel);
                }
                Sealed { stored, hash }
            });
        worker.map(|worker| Pipeline {
            jobs: Some(jobs),
            worker,
            spares,
            queued,
        })
    }

    /// Encrypt one chunk of plaintext and write it in its place; returns whether it is stored.
    /// A chunk of zeros is not stored: its slot is left a hole (punched if it held an earlier
    /// seal, `was_stored`). The plaintext is copied once, into the buffer that becomes the
    /// ciphertext.
    fn seal_at(&self, index: u64, plain: &[u8], last: bool, was_stored: bool) -> Result<bool> {
        self.s.seal_at(index, plain, last, was_stored)
    }
}

impl Sealer {
    fn io(&self, e: std::io::Error) -> Error {
        Error::io_path("write object", &self.tmp, e)
    }

    /// See [`ObjectWriter::seal_at`].
    fn seal_at(&self, index: u64, plain: &[u8], last: bool, was_stored: bool) -> Result<bool> {
        let at = HEADER_LEN + index * CHUNK_CIPHER;
        if is_zero(plain) {
            if was_stored {
                self.punch(at, CHUNK_CIPHER)?;
            }
            return Ok(false);
        }
        let nonce = random_bytes::<NONCE_LEN>();
        SEAL_BUF.with_borrow_mut(|buf| {
            buf.clear();
            buf.extend_from_slice(&nonce);
            buf.extend_from_slice(plain);
            let tag = seal_in_place(
                &self.key,
                &nonce,
                &aad(&self.header, index, last),
                &mut buf[NONCE_LEN..],
            )
            .map_err(|_| {
                // nothing of the plaintext may stay behind in the reused buffer
                zeroize::Zeroize::zeroize(&mut buf[..]);
                Error::invalid("chunk encryption failed")
            })?;
            buf.extend_from_slice(&tag);
            self.file.write_all_at(buf, at).map_err(|e| self.io(e))
        })?;
        Ok(true)
    }

    /// Make a slot read as zeros again: a hole where the file system can punch one, else
    /// zeros written over it.
    fn punch(&self, at: u64, len: u64) -> Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: fallocate on a descriptor we own; no memory is involved.
        let r = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                at as libc::off_t,
                len as libc::off_t,
            )
        };
        if r == 0 {
            return Ok(());
        }
        self.file
            .write_all_at(&vec![0u8; len as usize], at)
            .map_err(|e| self.io(e))
    }

    /// Seal new chunks; returns the indices stored (not holes).
    fn seal_range(&self, first: u64, data: &[u8]) -> Result<Vec<u64>> {
        let mut stored = Vec::new();
        for (i, chunk) in data.chunks(CHUNK_PLAIN as usize).enumerate() {
            let index = first + i as u64;
            if self.seal_at(index, chunk, false, false)? {
                stored.push(index);
            }
        }
        Ok(stored)
    }
}

impl ObjectWriter {
    fn mark(&mut self, index: u64, stored: bool) {
        if stored {
            self.stored.insert(index);
        } else {
            self.stored.remove(index);
        }
    }

    /// The plaintext of chunk `index` before the tail (zeros for a hole).
    fn open_sealed(&self, index: u64) -> Result<Zeroizing<Vec<u8>>> {
        if !self.stored.contains(index) {
            return Ok(Zeroizing::new(vec![0u8; CHUNK_PLAIN as usize]));
        }
        let mut nonce = [0u8; NONCE_LEN];
        let mut tag = [0u8; TAG_LEN];
        let mut plain = Zeroizing::new(vec![0u8; CHUNK_PLAIN as usize]);
        ReadAt::read_chunk_at(
            &self.s.file,
            &mut nonce,
            &mut plain,
            &mut tag,
            HEADER_LEN + index * CHUNK_CIPHER,
        )
        .map_err(|e| self.io(e))?;
        open_in_place(
            &self.s.key,
            &nonce,
            &aad(&self.s.header, index, false),
            &mut plain,
            &tag,
        )
        .map_err(|_| {
            Error::integrity(
                "a file being written",
                format!("chunk {index} changed on disk"),
            )
        })?;
        Ok(plain)
    }

    /// Seal the full tail and start a new, empty one.
    fn push_tail(&mut self) -> Result<()> {
        let full = std::mem::replace(
            &mut self.tail,
            Zeroizing::new(Vec::with_capacity(CHUNK_PLAIN as usize)),
        );
        let stored = self.seal_at(self.sealed, &full, false, false)?;
        self.mark(self.sealed, stored);
        self.sealed += 1;
        Ok(())
    }

    /// Refuse to go on once a change failed half-way; remember the first failure.
    fn guard(&mut self, r: Result<()>) -> Result<()> {
        if let Err(e) = &r {
            if self.broken.is_none() {
                self.broken = Some(e.to_string());
            }
        }
        r
    }

    fn check_not_broken(&self) -> Result<()> {
        match &self.broken {
            None => Ok(()),
            Some(why) => Err(Error::io(
                format!("an earlier write to this file failed ({why}); the save is discarded"),
                std::io::Error::from_raw_os_error(libc::EIO),
            )),
        }
    }

    /// Write `data` at `offset`, growing the object as needed (what lies between the old end
    /// and `offset` is a hole). After a failure (e.g. the disk is full) every later write and
    /// the commit fail too. A write ending past [`MAX_FILE_SIZE`] fails with EFBIG and changes
    /// nothing.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.check_not_broken()?;
        if !(self.pipeline.is_some() && self.streams(offset, data)) {
            self.settle()?;
        }
        check_size(offset.checked_add(data.len() as u64))?;
        let r = self.write_at_unguarded(offset, data);
        self.guard(r)
    }

    /// Whether this write appends whole chunks straight from the request (see
    /// [`ObjectWriter::seal_later`]): then it needs neither what the sealing thread is doing
    /// nor the hash it holds, and is queued behind it without waiting.
    fn streams(&self, offset: u64, data: &[u8]) -> bool {
        offset == self.size
            && data.len() > 4 * CHUNK_PLAIN as usize
            && (self.tail.is_empty() || self.tail.len() == CHUNK_PLAIN as usize)
    }

    fn write_at_unguarded(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        // the content hash follows a sequential save; anything else is hashed at commit
        let sequential = offset == self.size;
        if !sequential {
            self.hash = None;
        }
        if offset > self.size {
            self.grow_to(offset)?;
        }
        let mut pos = offset;
        let mut data = data;
        // appending many whole chunks (a sequential save): seal them straight from the request,
        // in parallel, keeping at least one byte for the tail (the tail always holds the last
        // chunk, sealed as final at commit)
        if self.streams(offset, data) {
            if self.tail.len() == CHUNK_PLAIN as usize {
                self.push_tail()?;
            }
            if self.tail.is_empty() {
                let whole = (data.len() - 1) / CHUNK_PLAIN as usize * CHUNK_PLAIN as usize;
                self.seal_later(self.sealed, data, whole)?;
                self.sealed += (whole / CHUNK_PLAIN as usize) as u64;
                pos += whole as u64;
                self.size = pos;
                data = &data[whole..];
            }
        }
        if sequential {
            if let Some(h) = self.hash.as_mut() {
                h.update(data);
            }
        }
        while !data.is_empty() {
            let index = pos / CHUNK_PLAIN;
            let within = (pos % CHUNK_PLAIN) as usize;
            if index < self.sealed {
                let take = data.len().min(CHUNK_PLAIN as usize - within);
                let mut plain = self.open_sealed(index)?;
                plain[within..within + take].copy_from_slice(&data[..take]);
                let was = self.stored.contains(index);
                let stored = self.seal_at(index, &plain, false, was)?;
                self.mark(index, stored);
                data = &data[take..];
                pos += take as u64;
                continue;
            }
            if index > self.sealed {
                // the tail is full and the write goes on past it
                self.push_tail()?;
                continue;
            }
            let take = data.len().min(CHUNK_PLAIN as usize - within);
            if self.tail.len() < within + take {
                self.tail.resize(within + take, 0);
            }
            self.tail[within..within + take].copy_from_slice(&data[..take]);
            data = &data[take..];
            pos += take as u64;
            self.size = self.size.max(pos);
        }
        self.size = self.size.max(pos);
        Ok(())
    }

    /// Extend with zeros to `new_size` in O(1): the chunks in between become holes.
    fn grow_to(&mut self, new_size: u64) -> Result<()> {
        if new_size <= self.size {
            return Ok(());
        }
        if let Some(h) = self.hash.as_mut() {
            h.zeros(new_size - self.size);
        }
        let last = chunk_count(new_size) - 1;
        if last > self.sealed {
            self.tail.resize(CHUNK_PLAIN as usize, 0);
            self.push_tail()?;
            self.sealed = last;
            self.tail = Zeroizing::new(Vec::with_capacity(CHUNK_PLAIN as usize));
        }
        self.tail
            .resize((new_size - self.sealed * CHUNK_PLAIN) as usize, 0);
        self.size = new_size;
        Ok(())
    }

    /// Cut or extend (with a hole) to `new_size`. Past [`MAX_FILE_SIZE`]: EFBIG, no change.
    pub fn truncate(&mut self, new_size: u64) -> Result<()> {
        self.check_not_broken()?;
        self.settle()?;
        check_size(Some(new_size))?;
        let r = self.truncate_unguarded(new_size);
        self.guard(r)
    }

    fn truncate_unguarded(&mut self, new_size: u64) -> Result<()> {
        if new_size >= self.size {
            return self.grow_to(new_size);
        }
        self.hash = None;
        let last = chunk_count(new_size) - 1;
        if last < self.sealed {
            let mut plain = self.open_sealed(last)?;
            plain.truncate((new_size - last * CHUNK_PLAIN) as usize);
            self.tail = plain;
            self.sealed = last;
            self.stored.cut(last);
            self.s
                .file
                .set_len(HEADER_LEN + last * CHUNK_CIPHER)
                .map_err(|e| self.io(e))?;
        } else {
            self.tail.truncate((new_size - last * CHUNK_PLAIN) as usize);
        }
        self.size = new_size;
        Ok(())
    }

    /// Start as a copy of a committed object (the version a save begins from): only its stored
    /// chunks are copied, its holes stay holes. Call on a new, empty writer.
    pub fn load<R: ReadAt>(&mut self, src: &Decryptor<R>) -> Result<()> {
        self.check_not_broken()?;
        self.settle()?;
        let r = (|| {
            // made only when there is a chunk to copy: a new file's writer loads nothing, and
            // zeroing 64 KiB twice per small file shows in `tar x`
            let mut buf: Option<Zeroizing<Vec<u8>>> = None;
            for (first, count) in src.stored_runs() {
                for index in first..first + count {
                    let buf =
                        buf.get_or_insert_with(|| Zeroizing::new(vec![0u8; CHUNK_PLAIN as usize]));
                    let n = src.chunk_len(index) as usize;
                    src.chunk_into(index, &mut buf[..n])?;
                    // growing first keeps the writes in order, so the content hash follows
                    self.grow_to(index * CHUNK_PLAIN)?;
                    self.write_at_unguarded(index * CHUNK_PLAIN, &buf[..n])?;
                }
            }
            self.grow_to(src.len())
        })();
        self.guard(r)
    }

    /// Read back what was written so far.
    pub fn read_at(&mut self, offset: u64, len: usize) -> Result<Vec<u8>> {
        // what is on disk after a failed write is not what was written
        self.check_not_broken()?;
        self.settle()?;
        let end = offset.saturating_add(len as u64).min(self.size);
        let mut out = Vec::new();
        let mut pos = offset;
        while pos < end {
            let index = pos / CHUNK_PLAIN;
            let within = (pos % CHUNK_PLAIN) as usize;
            let take = ((end - pos) as usize).min(CHUNK_PLAIN as usize - within);
            if index >= self.sealed {
                out.extend_from_slice(&self.tail[within..within + take]);
            } else if self.stored.contains(index) {
                let plain = self.open_sealed(index)?;
                out.extend_from_slice(&plain[within..within + take]);
            } else {
                out.resize(out.len() + take, 0);
            }
            pos += take as u64;
        }
        Ok(out)
    }

    /// [`ObjectWriter::commit`], and a reader of the object just written (what the file that
    /// saved it serves from then on): over the descriptor the writer holds when the object
    /// stays on this machine, with the key, header and chunk map the writer used, so the
    /// close of a small new file does not open the object by path, read its header and map
    /// back and unwrap its key (a tenth of that close). An object uploaded to a bucket is
    /// opened as any object is. If the reader cannot be had, the object is removed: nothing
    /// records it yet.
    pub fn commit_and_open(
        self,
        store: &Store,
        label: &str,
    ) -> Result<(NewObject, Decryptor<super::ObjectSource>)> {
        let s = std::sync::Arc::clone(&self.s);
        let (obj, runs) = self.commit_runs(store)?;
        let held = if store.keeps_objects_here() {
            s.file.try_clone().ok()
        } else {
            None
        };
        let reader = match held {
            // what this writer sealed: its header, length and chunk map need no second look
            Some(file) => Ok(Decryptor::of_written(
                &s.key,
                s.header,
                super::ObjectSource::File(file),
                obj.size,
                runs,
                label,
            )),
            None => store.open_object(&obj.id, &obj.wrapped_key, obj.size, label),
        };
        match reader {
            Ok(reader) => Ok((obj, reader)),
            Err(e) => {
                // unreadable as soon as written: not kept (nothing records it)
                let _ = store.remove_object(&obj.id);
                Err(e)
            }
        }
    }

    /// Seal the last chunk and the chunk map, make the object durable under its final name,
    /// and return what the catalog must record. The object is complete and immutable from
    /// here on.
    pub fn commit(self, store: &Store) -> Result<NewObject> {
        self.commit_runs(store).map(|(obj, _)| obj)
    }

    /// [`ObjectWriter::commit`], also returning the runs of stored chunks its map names.
    fn commit_runs(mut self, store: &Store) -> Result<(NewObject, Runs)> {
        crate::caller::as_daemon(|| {
            self.settle()?;
            self.check_not_broken()?;
            debug_assert_eq!(chunk_count(self.size), self.sealed + 1);
            let tail = std::mem::take(&mut self.tail);
            let stored = self.seal_at(self.sealed, &tail, true, false)?;
            self.mark(self.sealed, stored);
            let runs = self.stored.runs();
            let map = seal_map(&self.id, &self.s.key, self.size, &runs)?;
            let at = encrypted_len(self.size);
            self.s.file.write_all_at(&map, at).map_err(|e| self.io(e))?;
            self.s
                .file
                .set_len(at + map.len() as u64)
                .map_err(|e| self.io(e))?;
            self.s.file.sync_all().map_err(|e| self.io(e))?;
            let content_hash = match self.hash.take() {
                Some(h) => h.finalize(),
                None => {
                    // written out of order: hash what was committed, holes as zeros
                    let mut h = ContentHasher::new(&self.hash_key);
                    let mut at = 0u64;
                    for &(first, count) in &runs {
                        h.zeros(first * CHUNK_PLAIN - at);
                        for index in first..first + count {
                            if index == self.sealed {
                                h.update(&tail);
                            } else {
                                h.update(&self.open_sealed(index)?);
                            }
                        }
                        at = ((first + count) * CHUNK_PLAIN).min(self.size);
                    }
                    h.zeros(self.size - at);
                    h.finalize()
                }
            };
            drop(tail);
            store.publish(&self.id, &self.s.tmp, &self.s.file)?;
            self.committed = true;
            let obj = NewObject {
                id: self.id,
                wrapped_key: wrap_key(&store.wrap, &self.id.0, &self.s.key)?,
                size: self.size,
                content_hash,
            };
            Ok((obj, runs))
        })
    }
}

/// Seal whole chunks `first..` from `data` (a multiple of the chunk size) on two threads, this
/// one also feeding `hashed` to the content hash: a 1 MiB write from the kernel is 16 chunks,
/// and with one thread the cipher, the hash and the copy into the page cache run one after the
/// other on one core while the other idles. The chunks must be new. Returns the indices stored
/// (not holes). Without a second thread, everything is done on this one.
fn seal_parallel(
    s: &Sealer,
    first: u64,
    data: &[u8],
    hashed: &[u8],
    hash: Option<&mut ContentHasher>,
) -> Result<Vec<u64>> {
    let n = data.len() / CHUNK_PLAIN as usize;
    // this thread's share: hashing 1 MiB takes about as long as sealing and writing 10 of its
    // 16 chunks, so beside the hash it seals 3 (measured: 3 to 5 of 16 alike, 7 of 16 slower);
    // without the hash, half
    let mine = if hash.is_some() { n * 3 / 16 } else { n / 2 };
    let theirs = n - mine;
    let split = theirs * CHUNK_PLAIN as usize;
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("sealer".into())
            .spawn_scoped(scope, || s.seal_range(first, &data[..split]));
        if let Some(h) = hash {
            h.update(hashed);
        }
        let Ok(helper) = helper else {
            return s.seal_range(first, data);
        };
        let mine = s.seal_range(first + theirs as u64, &data[split..]);
        let theirs = helper
            .join()
            .unwrap_or_else(|_| Err(Error::invalid("the sealing thread failed")));
        match (mine, theirs) {
            (Ok(mut a), Ok(b)) => {
                a.extend(b);
                Ok(a)
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    })
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        // no sealing thread outlives its writer
        let _ = self.settle_unguarded();
        if !self.committed {
            let _ = std::fs::remove_file(&self.s.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        let key = dir.path().join("k");
        let s = Store::init(&root, None, Some(&key), chrono::Utc::now(), "t").unwrap();
        (dir, s)
    }

    fn read(s: &Store, o: &NewObject) -> Vec<u8> {
        let d = s.open_object(&o.id, &o.wrapped_key, o.size, "t").unwrap();
        let mut out = Vec::new();
        d.copy_to(&mut out).unwrap();
        out
    }

    #[test]
    fn random_writes_and_truncates_match_a_plain_buffer() {
        let (_d, s) = store();
        let mut w = s.writer().unwrap();
        let mut model: Vec<u8> = Vec::new();
        let mut seed = 7u64;
        let mut rnd = |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            (seed >> 33) % n
        };
        for step in 0..300 {
            match rnd(6) {
                // zeros over data turn chunks into holes (punched), and back
                4 => {
                    let off = rnd(300_000);
                    let len = rnd(200_000) as usize;
                    w.write_at(off, &vec![0u8; len]).unwrap();
                    if model.len() < off as usize + len {
                        model.resize(off as usize + len, 0);
                    }
                    model[off as usize..off as usize + len].fill(0);
                }
                // a write far past the end: a hole of many chunks
                5 if model.len() < 1 << 20 => {
                    let off = model.len() as u64 + rnd(2 << 20);
                    w.write_at(off, b"far").unwrap();
                    model.resize(off as usize, 0);
                    model.extend_from_slice(b"far");
                }
                0 | 1 => {
                    let off = rnd(300_000);
                    let len = rnd(100_000) as usize;
                    let data: Vec<u8> = (0..len).map(|i| (i as u64 + step) as u8).collect();
                    w.write_at(off, &data).unwrap();
                    if model.len() < off as usize + len {
                        model.resize(off as usize + len, 0);
                    }
                    model[off as usize..off as usize + len].copy_from_slice(&data);
                }
                2 => {
                    let n = rnd(320_000);
                    w.truncate(n).unwrap();
                    model.resize(n as usize, 0);
                }
                _ => {
                    let off = rnd(model.len() as u64 + 20_000);
                    let got = w.read_at(off, 70_000).unwrap();
                    let start = (off as usize).min(model.len());
                    let end = (start + 70_000).min(model.len());
                    assert_eq!(got, &model[start..end], "step {step}");
                }
            }
            assert_eq!(w.len(), model.len() as u64);
        }
        let (obj, held) = w.commit_and_open(&s, "t").unwrap();
        assert_eq!(read(&s, &obj), model);
        // the reader handed over with the commit (the writer's descriptor, its chunk map as
        // written, holes included) reads what a reader opened by path reads
        let mut out = Vec::new();
        held.copy_to(&mut out).unwrap();
        assert_eq!(out, model, "the reader handed over with the commit");
        // the hash is the same as for an import of the same bytes
        assert_eq!(
            obj.content_hash,
            s.content_hash_of(&mut model.as_slice()).unwrap()
        );
    }

    /// Large appends are sealed after their answer (on a thread of their own): one after the
    /// other with nothing in between, then a patch inside a chunk still being sealed, a
    /// truncate into one, a read; the object and its hash are those of the bytes.
    #[test]
    fn large_appends_sealed_after_their_answer_are_all_there_in_order() {
        let (_d, s) = store();
        let chunk = CHUNK_PLAIN as usize;
        let bytes =
            |n: usize, k: usize| -> Vec<u8> { (0..n).map(|i| (i * 13 + k) as u8).collect() };
        for case in 0..4 {
            let mut w = s.writer().unwrap();
            let mut model = Vec::new();
            for (k, n) in [1 << 20, (1 << 20) + 5, 5 * chunk, 300_000, 1 << 20]
                .iter()
                .enumerate()
            {
                let part = bytes(*n, k + case);
                w.write_at(model.len() as u64, &part).unwrap();
                model.extend_from_slice(&part);
                assert_eq!(w.len(), model.len() as u64);
            }
            match case {
                // a patch into the last large write's chunks, right after its answer
                1 => {
                    let at = model.len() - 500_000;
                    w.write_at(at as u64, b"patched").unwrap();
                    model[at..at + 7].copy_from_slice(b"patched");
                }
                // cut inside it
                2 => {
                    let to = model.len() - 700_001;
                    w.truncate(to as u64).unwrap();
                    model.truncate(to);
                }
                // read it back while it may still be sealed
                3 => {
                    let at = model.len() - 900_000;
                    assert_eq!(
                        w.read_at(at as u64, 200_000).unwrap(),
                        &model[at..at + 200_000]
                    );
                }
                _ => {}
            }
            let obj = w.commit(&s).unwrap();
            assert_eq!(read(&s, &obj), model, "case {case}");
            assert_eq!(
                obj.content_hash,
                s.content_hash_of(&mut model.as_slice()).unwrap(),
                "case {case}"
            );
        }
    }

    /// A large write that fails while being sealed after its answer (the disk is full) fails
    /// the next write, and the commit: what it left is never an object.
    #[test]
    fn a_large_write_that_fails_after_its_answer_fails_the_next_call_and_the_commit() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("needs root to mount a small tmpfs");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk");
        std::fs::create_dir(&disk).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs"])
            .arg(&disk)
            .status()
            .unwrap()
            .success();
        assert!(mounted, "cannot mount a tmpfs");
        struct Unmount<'a>(&'a std::path::Path);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg(self.0).status();
            }
        }
        let _unmount = Unmount(&disk);
        let s = Store::init(
            &disk.join("s"),
            None,
            Some(&dir.path().join("k")),
            chrono::Utc::now(),
            "t",
        )
        .unwrap();
        for then_commit in [false, true] {
            // leave about 200 KiB free, so the sealing of a 1 MiB write runs out of space
            let vfs = nix::sys::statvfs::statvfs(&disk).unwrap();
            let free = vfs.blocks_available() as usize * vfs.fragment_size() as usize;
            let filler = disk.join("filler");
            std::fs::write(&filler, vec![1u8; free - (200 << 10)]).unwrap();
            let mut w = s.writer().unwrap();
            w.write_at(0, &vec![7u8; 1 << 20])
                .expect("a large write is answered before it is sealed");
            let t = std::time::Instant::now();
            while !w.sealed_in_background() && t.elapsed() < std::time::Duration::from_secs(30) {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            // the space is back before the next call: only the failed seal can fail it
            std::fs::remove_file(&filler).unwrap();
            if then_commit {
                assert!(w.commit(&s).is_err(), "a commit after a failed seal");
            } else {
                assert!(
                    w.write_at(1 << 20, &vec![7u8; 1 << 20]).is_err(),
                    "the next write"
                );
                // and every later call, even one that fits
                assert!(w.write_at(0, b"x").is_err());
                assert!(w.read_at(0, 10).is_err());
                drop(w);
            }
            // nothing is left behind
            let left = walkdir(&disk.join("s").join("objects"));
            assert!(left.is_empty(), "files left: {left:?}");
        }
    }

    fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    out.extend(walkdir(&p));
                } else {
                    out.push(p);
                }
            }
        }
        out
    }

    #[test]
    fn large_appends_sealed_in_parallel_read_and_hash_like_small_ones() {
        let (_d, s) = store();
        let chunk = CHUNK_PLAIN as usize;
        // sizes around the fast path's edges: whole chunks, one byte more or less, a tail
        // that is full or partial when the large write comes
        let sizes = [
            1 << 20,
            (1 << 20) + 1,
            5 * chunk,
            5 * chunk - 1,
            chunk,
            300_000,
            7,
            4 * chunk + 1,
            (2 << 20) - 3,
        ];
        let mut w = s.writer().unwrap();
        let mut model = Vec::new();
        for (k, n) in sizes.iter().enumerate() {
            let part: Vec<u8> = (0..*n).map(|i| (i * 31 + k * 7) as u8).collect();
            w.write_at(model.len() as u64, &part).unwrap();
            model.extend_from_slice(&part);
            assert_eq!(
                w.read_at(0, model.len()).unwrap(),
                model,
                "after append {k}"
            );
        }
        let obj = w.commit(&s).unwrap();
        assert_eq!(read(&s, &obj), model);
        assert_eq!(
            obj.content_hash,
            s.content_hash_of(&mut model.as_slice()).unwrap()
        );
        // and an overwrite inside chunks sealed that way
        let mut w = s.writer().unwrap();
        w.write_at(0, &model).unwrap();
        w.write_at(70_000, b"patched").unwrap();
        model[70_000..70_007].copy_from_slice(b"patched");
        let obj = w.commit(&s).unwrap();
        assert_eq!(read(&s, &obj), model);
        assert_eq!(
            obj.content_hash,
            s.content_hash_of(&mut model.as_slice()).unwrap()
        );
    }

    /// Large appends queued behind one another on the sealing thread (no call in between
    /// waits for them), mixed with appends that must wait (a partial tail) and a read: the
    /// object holds the bytes in order and its hash is the hash of those bytes.
    #[test]
    fn queued_large_appends_keep_their_order_and_hash() {
        let (_d, s) = store();
        let chunk = CHUNK_PLAIN as usize;
        let sizes = [
            1 << 20,
            1 << 20,
            1 << 20,
            (1 << 20) + 1,
            5 * chunk,
            (1 << 20) - 1,
            1 << 20,
            300_000,
            (2 << 20) - 3,
            1 << 20,
            1 << 20,
        ];
        let mut w = s.writer().unwrap();
        let mut model = Vec::new();
        for (k, n) in sizes.iter().enumerate() {
            let part: Vec<u8> = (0..*n)
                .map(|i| (i * 17 + k * 101 + i / 4096) as u8)
                .collect();
            w.write_at(model.len() as u64, &part).unwrap();
            model.extend_from_slice(&part);
            assert_eq!(w.len(), model.len() as u64);
            if k == 6 {
                assert_eq!(w.read_at(0, model.len()).unwrap(), model, "mid-way");
            }
        }
        assert!(w.allocated_bytes() >= model.len() as u64 - chunk as u64);
        let obj = w.commit(&s).unwrap();
        assert_eq!(read(&s, &obj), model);
        assert_eq!(
            obj.content_hash,
            s.content_hash_of(&mut model.as_slice()).unwrap()
        );
    }

    #[test]
    fn sequential_writes_commit_and_uncommitted_writers_leave_nothing() {
        let (_d, s) = store();
        let mut w = s.writer().unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for part in data.chunks(4096) {
            let at = w.len();
            w.write_at(at, part).unwrap();
        }
        let obj = w.commit(&s).unwrap();
        assert_eq!(read(&s, &obj), data);
        assert_eq!(
            obj.content_hash,
            s.content_hash_of(&mut data.as_slice()).unwrap()
        );
        let before = s.list_objects().unwrap().len();
        {
            let mut w = s.writer().unwrap();
            w.write_at(0, b"abandoned").unwrap();
        }
        assert_eq!(s.list_objects().unwrap().len(), before);
    }
}

#[cfg(test)]
mod sparse_tests {
    use super::*;
    use crate::crypto::object::Encryptor;
    use std::os::unix::fs::MetadataExt;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        let key = dir.path().join("k");
        let s = Store::init(&root, None, Some(&key), chrono::Utc::now(), "t").unwrap();
        (dir, s)
    }

    fn read_range(s: &Store, o: &NewObject, off: u64, len: usize) -> Result<Vec<u8>> {
        let d = s.open_object(&o.id, &o.wrapped_key, o.size, "asset 9")?;
        let mut buf = vec![0u8; len];
        let n = d.read_at(&mut buf, off)?;
        buf.truncate(n);
        Ok(buf)
    }

    fn read_all(s: &Store, o: &NewObject) -> Result<Vec<u8>> {
        let d = s.open_object(&o.id, &o.wrapped_key, o.size, "asset 9")?;
        let mut out = Vec::new();
        d.copy_verified_to(&mut out)?;
        Ok(out)
    }

    fn path(s: &Store, o: &NewObject) -> PathBuf {
        s.object_path(&o.id)
    }

    fn assert_integrity(r: Result<Vec<u8>>, what: &str) {
        match r {
            Err(Error::Integrity { what: w, .. }) => assert_eq!(w, "asset 9", "{what}"),
            other => panic!(
                "{what}: expected an integrity error, got {:?}",
                other.map(|v| v.len())
            ),
        }
    }

    #[test]
    fn a_huge_truncate_is_a_hole_that_reads_as_zeros_and_costs_nothing() {
        let (_d, s) = store();
        let mut w = s.writer().unwrap();
        let start = std::time::Instant::now();
        w.write_at(0, b"head").unwrap();
        w.truncate(8 << 30).unwrap();
        w.write_at((8 << 30) - 3, b"end").unwrap();
        assert!(
            w.allocated_bytes() < 2 * CHUNK_CIPHER,
            "{}",
            w.allocated_bytes()
        );
        let o = w.commit(&s).unwrap();
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(o.size, 8 << 30);
        let md = std::fs::metadata(path(&s, &o)).unwrap();
        assert!(
            md.blocks() * 512 <= 256 << 10,
            "object uses {} bytes",
            md.blocks() * 512
        );
        assert_eq!(read_range(&s, &o, 0, 6).unwrap(), b"head\0\0");
        let d = s.open_object(&o.id, &o.wrapped_key, o.size, "t").unwrap();
        assert_eq!(d.stored_len(), CHUNK_PLAIN + CHUNK_PLAIN);
        assert!(!d.is_stored(1) && d.is_stored(0) && d.is_stored(131071));
        assert_eq!(
            read_range(&s, &o, 4 << 30, 100_000).unwrap(),
            vec![0u8; 100_000]
        );
        let mut want = vec![0u8; 7];
        want.extend_from_slice(b"end");
        assert_eq!(read_range(&s, &o, (8 << 30) - 10, 100).unwrap(), want);
    }

    #[test]
    fn sizes_past_the_maximum_fail_with_efbig_and_change_nothing() {
        let (_d, s) = store();
        let mut w = s.writer().unwrap();
        w.write_at(0, b"abc").unwrap();
        let e = w.truncate(999_999_999_999_999).unwrap_err();
        assert_eq!(e.errno(), libc::EFBIG, "{e}");
        let e = w.write_at(MAX_FILE_SIZE, b"x").unwrap_err();
        assert_eq!(e.errno(), libc::EFBIG, "{e}");
        let e = w.write_at(u64::MAX - 1, b"xyz").unwrap_err();
        assert_eq!(e.errno(), libc::EFBIG, "{e}");
        // the writer is not broken by a refused size
        w.truncate(MAX_FILE_SIZE).unwrap();
        w.truncate(5).unwrap();
        let o = w.commit(&s).unwrap();
        assert_eq!(read_all(&s, &o).unwrap(), b"abc\0\0");
    }

    /// Bytes with long runs of zeros, past the hash's literal part.
    fn holey_bytes() -> Vec<u8> {
        let c = CHUNK_PLAIN as usize;
        let mut v = b"jpeg".to_vec();
        v.resize(
            (super::super::hash::LITERAL_ZERO_CHUNKS as usize + 40) * c + 77,
            0,
        );
        v.extend_from_slice(&[7u8; 3 * 65536 + 5]);
        v.resize(v.len() + 5 * c, 0);
        v.extend_from_slice(b"tail");
        v
    }

    #[test]
    fn sparse_and_dense_writes_of_the_same_bytes_hash_alike() {
        let (_d, s) = store();
        let data = holey_bytes();
        let dense = s.content_hash_of(&mut data.as_slice()).unwrap();
        // in order, with the zeros as holes (made by truncate and by writes past the end)
        let sevens = data.iter().position(|b| *b == 7).unwrap() as u64;
        let mut w = s.writer().unwrap();
        w.write_at(0, b"jpeg").unwrap();
        w.truncate(sevens).unwrap();
        w.write_at(sevens, &[7u8; 3 * 65536 + 5]).unwrap();
        w.write_at(data.len() as u64 - 4, b"tail").unwrap();
        assert!(
            w.allocated_bytes() < 6 * CHUNK_CIPHER,
            "{}",
            w.allocated_bytes()
        );
        let o = w.commit(&s).unwrap();
        assert_eq!(o.content_hash, dense);
        assert_eq!(read_all(&s, &o).unwrap(), data);
        // out of order: the end first
        let mut w = s.writer().unwrap();
        w.write_at(data.len() as u64 - 4, b"tail").unwrap();
        w.write_at(0, b"jpeg").unwrap();
        w.write_at(sevens, &[7u8; 3 * 65536 + 5]).unwrap();
        let o = w.commit(&s).unwrap();
        assert_eq!(o.content_hash, dense);
        assert_eq!(read_all(&s, &o).unwrap(), data);
        // densely, zeros written as zeros (they become holes too)
        let mut w = s.writer().unwrap();
        w.write_at(0, &data).unwrap();
        let o = w.commit(&s).unwrap();
        assert_eq!(o.content_hash, dense);
        let md = std::fs::metadata(path(&s, &o)).unwrap();
        assert!(
            md.blocks() * 512 < 1 << 20,
            "zeros were stored: {}",
            md.blocks() * 512
        );
        // and a writer started from the sparse object keeps its holes
        let d = s.open_object(&o.id, &o.wrapped_key, o.size, "t").unwrap();
        let mut w = s.writer().unwrap();
        w.load(&d).unwrap();
        assert!(
            w.allocated_bytes() < 8 * CHUNK_CIPHER,
            "{}",
            w.allocated_bytes()
        );
        let o2 = w.commit(&s).unwrap();
        assert_eq!(o2.content_hash, dense);
        assert_eq!(read_all(&s, &o2).unwrap(), data);
    }

    /// A committed sparse object: chunk 0 stored, chunks 1..=3 holes, chunk 4 stored (last).
    fn sparse_object(s: &Store) -> NewObject {
        let mut w = s.writer().unwrap();
        w.write_at(0, &[1u8; 70_000]).unwrap();
        w.write_at(4 * CHUNK_PLAIN + 10, b"last").unwrap();
        w.commit(s).unwrap()
    }

    /// `st_blocks` of a sparse object counts its stored chunks only, as the file's own does; it
    /// is kept after the first look, and a removed object has none (not the kept count).
    #[test]
    fn object_blocks_are_the_files_and_go_with_it() {
        let (_d, s) = store();
        let o = sparse_object(&s);
        let on_disk = std::fs::metadata(path(&s, &o)).unwrap().blocks();
        assert_eq!(s.object_blocks(&o.id), Some(on_disk));
        assert!(
            on_disk * 512 < 4 * CHUNK_CIPHER,
            "{on_disk} blocks: the holes take none"
        );
        assert_eq!(s.object_blocks(&o.id), Some(on_disk));
        s.remove_object(&o.id).unwrap();
        assert_eq!(s.object_blocks(&o.id), None);
    }

    #[test]
    fn tampering_with_holes_map_or_length_is_detected() {
        use std::os::unix::fs::FileExt;
        let (_d, s) = store();
        let o = sparse_object(&s);
        let mut want = vec![1u8; 70_000];
        want.resize(4 * CHUNK_PLAIN as usize + 10, 0);
        want.extend_from_slice(b"last");
        assert_eq!(read_all(&s, &o).unwrap(), want);
        let p = path(&s, &o);
        let pristine = std::fs::read(&p).unwrap();
        let restore = || std::fs::write(&p, &pristine).unwrap();

        // a hole punched where a real chunk was: chunk 0 now reads as zeros on disk
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(&vec![0u8; CHUNK_CIPHER as usize], HEADER_LEN)
            .unwrap();
        assert_integrity(read_all(&s, &o), "punched hole");
        assert_integrity(read_range(&s, &o, 0, 10), "punched hole, random access");
        restore();

        // a real chunk where a hole was: chunk 0's ciphertext copied into chunk 2's slot
        let c0 = &pristine[HEADER_LEN as usize..(HEADER_LEN + CHUNK_CIPHER) as usize];
        f.write_all_at(c0, HEADER_LEN + 2 * CHUNK_CIPHER).unwrap();
        assert_integrity(read_all(&s, &o), "data in a hole");
        assert_integrity(
            read_range(&s, &o, 2 * CHUNK_PLAIN, 10),
            "data in a hole, random access",
        );
        restore();

        // the object cut, inside the map or before it, or extended
        for len in [
            pristine.len() - 1,
            pristine.len() - 16,
            (HEADER_LEN + CHUNK_CIPHER) as usize,
        ] {
            f.set_len(len as u64).unwrap();
            assert_integrity(read_range(&s, &o, 0, 10), "cut");
            restore();
        }
        f.write_all_at(&[0u8; 16], pristine.len() as u64).unwrap();
        assert_integrity(read_range(&s, &o, 0, 10), "extended");
        restore();

        // a flipped bit in the map
        let at = pristine.len() - 20;
        f.write_all_at(&[pristine[at] ^ 1], at as u64).unwrap();
        assert_integrity(read_range(&s, &o, 0, 10), "map bit");
        restore();

        // the catalog's length changed (shorter or longer): the map names another length
        for size in [o.size - 1, o.size + 1, 4 * CHUNK_PLAIN] {
            let wrong = NewObject { size, ..o.clone() };
            assert_integrity(read_range(&s, &wrong, 0, 10), "length");
        }

        // the header turned into version 1 (dense): the chunks' associated data differ
        f.write_all_at(&crate::crypto::object::FORMAT_VERSION.to_be_bytes(), 4)
            .unwrap();
        assert_integrity(read_all(&s, &o), "downgraded header");
        restore();

        // another sparse object's map (and chunks) copied over this one
        let other = sparse_object(&s);
        std::fs::copy(path(&s, &other), &p).unwrap();
        assert_integrity(read_range(&s, &o, 0, 10), "copied object");
        restore();
        assert_eq!(read_all(&s, &o).unwrap(), want);
    }

    /// A version 1 object written by an earlier consentfs (key, id and bytes frozen here).
    #[test]
    fn dense_version_one_objects_still_read() {
        let key = Key::from_slice(&[7u8; 32]).unwrap();
        let id = ObjectId([3u8; 16]);
        let frozen = hex::decode(V1_OBJECT).unwrap();
        let d = Decryptor::open(&id, &key, frozen, 11, "old").unwrap();
        let mut out = Vec::new();
        d.copy_verified_to(&mut out).unwrap();
        assert_eq!(out, b"old photo\n!");
        // and the streaming encryptor still writes that format
        let mut e = Encryptor::new(&id, &key, Vec::new()).unwrap();
        e.write(b"old photo\n!").unwrap();
        let (bytes, _) = e.finish().unwrap();
        assert_eq!(bytes[..24], hex::decode(V1_OBJECT).unwrap()[..24]);
    }

    const V1_OBJECT: &str = "4346534f0001000003030303030303030303030303030303decbbfcf03bbf5f4f9b3e4ba2e5b078dcfdb00e86fdcb7fe514146f781f6fbd54973cad5f6f566b48d30cd6ac254672c4c06f7";
}

#[cfg(test)]
mod chunk_set_tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn runs_follow_a_plain_set() {
        let mut set = ChunkSet::default();
        let mut model = BTreeSet::new();
        let mut seed = 11u64;
        let mut rnd = |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            (seed >> 33) % n
        };
        for step in 0..3000 {
            let i = rnd(60);
            match rnd(7) {
                0..=3 => {
                    set.insert(i);
                    model.insert(i);
                }
                4 | 5 => {
                    set.remove(i);
                    model.remove(&i);
                }
                _ => {
                    set.cut(i);
                    model.retain(|x| *x < i);
                }
            }
            assert_eq!(set.len, model.len() as u64, "step {step}");
            let runs = set.runs();
            let listed: BTreeSet<u64> = runs.iter().flat_map(|(f, c)| *f..f + c).collect();
            assert_eq!(listed, model, "step {step}");
            // maximal runs: none empty, none touching the next
            for w in runs.windows(2) {
                assert!(w[0].0 + w[0].1 < w[1].0, "step {step}: {runs:?}");
            }
            assert!(runs.iter().all(|(_, c)| *c > 0));
            for x in 0..62 {
                assert_eq!(set.contains(x), model.contains(&x));
            }
        }
    }

    #[test]
    fn a_map_with_overlapping_or_out_of_range_runs_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::init(
            &dir.path().join("s"),
            None,
            Some(&dir.path().join("k")),
            chrono::Utc::now(),
            "t",
        )
        .unwrap();
        let mut w = s.writer().unwrap();
        w.write_at(0, &[5u8; 200_000]).unwrap();
        let (id, key) = (w.id, w.s.key.clone());
        let o = w.commit(&s).unwrap();
        let p = s.object_path(&o.id);
        let at = encrypted_len(o.size);
        for runs in [
            vec![(0u64, 3u64), (2, 2)],
            vec![(0, 5)],
            vec![(3, 0)],
            vec![(u64::MAX, 2)],
        ] {
            let map = seal_map(&id, &key, o.size, &runs).unwrap();
            let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.set_len(at).unwrap();
            f.write_all_at(&map, at).unwrap();
            match s.open_object(&o.id, &o.wrapped_key, o.size, "asset 9") {
                Err(Error::Integrity { detail, .. }) => {
                    assert!(detail.contains("malformed"), "{detail}")
                }
                other => panic!(
                    "{runs:?}: expected an integrity error, got {:?}",
                    other.is_ok()
                ),
            }
        }
        // touching runs are the same set, and read
        let map = seal_map(&id, &key, o.size, &[(0, 1), (1, 3)]).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(at).unwrap();
        f.write_all_at(&map, at).unwrap();
        let d = s.open_object(&o.id, &o.wrapped_key, o.size, "t").unwrap();
        let mut out = Vec::new();
        d.copy_verified_to(&mut out).unwrap();
        assert_eq!(out, vec![5u8; 200_000]);
    }
}
