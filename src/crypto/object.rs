//! The encrypted object format (specified in contrib/FORMAT.md).
//!
//! ```text
//! header  = "CFSO" | version u16 BE (1 or 2) | reserved u16 (=0) | object id (16 bytes)   24 bytes
//! chunk i = nonce (24 random bytes) | XChaCha20-Poly1305(data key, nonce, plaintext_i, aad_i)
//!           at offset 24 + i * (65536 + 40)
//! aad_i   = header | i as u64 BE | final flag u8 (1 on the last chunk, else 0)
//! version 2 only, after the last chunk's slot:
//! map     = nonce (24) | XChaCha20-Poly1305(data key, nonce, map body, header | "chunk map")
//! map body = plaintext length u64 BE | run count u64 BE | (first chunk u64 BE, count u64 BE)*
//! ```
//!
//! Plaintext is cut into 64 KiB chunks; only the last may be shorter, and an empty object is one
//! empty final chunk. Binding the object id and chunk index into each chunk's associated data
//! detects swapped or moved chunks and objects copied over one another (each object also has
//! its own data key); the final flag detects truncation at a chunk boundary, and the catalog
//! keeps the plaintext length, so any change of length is caught before a byte is returned.
//!
//! Version 1 objects are dense: every chunk is stored (written by import). Version 2 objects
//! (written through the mount) are sparse: a chunk of zeros is not stored, its slot is left
//! unwritten so the file system makes a hole, and the sealed chunk map lists the runs of chunks
//! that are stored. The map is what says "zeros here", so punching a hole where a chunk was
//! (the map says present: the slot then fails authentication) and putting data where a hole
//! was (the map says absent: the slot must read as zeros) are both detected, and the map binds
//! the plaintext length, so a holey object cannot be cut or extended either.

use super::aead::{open_in_place, seal_in_place};
use super::{Key, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};
use std::io::Write;
use zeroize::Zeroizing;

pub const MAGIC: &[u8; 4] = b"CFSO";
/// Dense objects: every chunk stored (import's streaming [`Encryptor`]).
pub const FORMAT_VERSION: u16 = 1;
/// Sparse objects: chunks of zeros are holes, a sealed chunk map lists the stored ones.
pub const FORMAT_SPARSE: u16 = 2;
pub const HEADER_LEN: u64 = 24;
pub const CHUNK_PLAIN: u64 = 64 * 1024;
pub const CHUNK_OVERHEAD: u64 = (NONCE_LEN + TAG_LEN) as u64;
pub const CHUNK_CIPHER: u64 = CHUNK_PLAIN + CHUNK_OVERHEAD;

/// A random 128-bit object id; objects are files named by its hex form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub [u8; 16]);

impl ObjectId {
    pub fn random() -> ObjectId {
        ObjectId(super::random_bytes())
    }
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn parse(s: &str) -> Option<ObjectId> {
        // into the id itself: a mount's start parses a million of them
        let mut id = [0u8; 16];
        hex::decode_to_slice(s, &mut id).ok()?;
        Some(ObjectId(id))
    }
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

impl std::fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectId({})", self.hex())
    }
}

/// The header of a dense (version 1) object.
pub fn header(id: &ObjectId) -> [u8; HEADER_LEN as usize] {
    header_of(id, FORMAT_VERSION)
}

/// The header of an object in format `version`.
pub fn header_of(id: &ObjectId, version: u16) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..4].copy_from_slice(MAGIC);
    h[4..6].copy_from_slice(&version.to_be_bytes());
    h[8..].copy_from_slice(&id.0);
    h
}

/// Associated data of chunk `index` of the object with this header (on the stack: it is built
/// for every chunk sealed or opened).
pub fn chunk_aad_of(
    header: &[u8; HEADER_LEN as usize],
    index: u64,
    last: bool,
) -> [u8; HEADER_LEN as usize + 9] {
    chunk_aad(header, index, last)
}

fn chunk_aad(
    header: &[u8; HEADER_LEN as usize],
    index: u64,
    last: bool,
) -> [u8; HEADER_LEN as usize + 9] {
    let mut a = [0u8; HEADER_LEN as usize + 9];
    a[..HEADER_LEN as usize].copy_from_slice(header);
    a[HEADER_LEN as usize..HEADER_LEN as usize + 8].copy_from_slice(&index.to_be_bytes());
    a[HEADER_LEN as usize + 8] = last as u8;
    a
}

/// Number of chunks an object of `plain_len` bytes has (at least one).
pub fn chunk_count(plain_len: u64) -> u64 {
    plain_len.div_ceil(CHUNK_PLAIN).max(1)
}

/// Size on disk of a dense (version 1) object holding `plain_len` bytes; in a sparse (version 2)
/// object, where its chunk map starts.
pub fn encrypted_len(plain_len: u64) -> u64 {
    HEADER_LEN + plain_len + chunk_count(plain_len) * CHUNK_OVERHEAD
}

/// Where chunk `index`'s slot starts.
pub fn chunk_offset(index: u64) -> u64 {
    HEADER_LEN + index * CHUNK_CIPHER
}

/// Runs of stored chunks of a sparse object: (first index, count), ascending, none empty, none
/// overlapping another (the writer also merges touching runs).
pub type Runs = Vec<(u64, u64)>;

const MAP_AAD: &[u8] = b"chunk map";
const MAP_HEAD: u64 = 16;
const MAP_RUN: u64 = 16;

/// Size on disk of the chunk map of a sparse object with `runs` runs.
pub fn map_len(runs: usize) -> u64 {
    NONCE_LEN as u64 + MAP_HEAD + runs as u64 * MAP_RUN + TAG_LEN as u64
}

fn map_aad(header: &[u8; HEADER_LEN as usize]) -> Vec<u8> {
    let mut a = header.to_vec();
    a.extend_from_slice(MAP_AAD);
    a
}

/// Seal the chunk map of sparse object `id` (written at [`encrypted_len`] of its length, and
/// nothing after it).
pub fn seal_map(id: &ObjectId, key: &Key, plain_len: u64, runs: &[(u64, u64)]) -> Result<Vec<u8>> {
    let nonce = super::random_bytes::<NONCE_LEN>();
    let mut out = Vec::with_capacity(map_len(runs.len()) as usize);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&plain_len.to_be_bytes());
    out.extend_from_slice(&(runs.len() as u64).to_be_bytes());
    for (first, count) in runs {
        out.extend_from_slice(&first.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
    }
    let tag = seal_in_place(
        key,
        &nonce,
        &map_aad(&header_of(id, FORMAT_SPARSE)),
        &mut out[NONCE_LEN..],
    )
    .map_err(|_| Error::invalid("chunk map encryption failed"))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Whether every byte is zero (a chunk that need not be stored).
pub fn is_zero(b: &[u8]) -> bool {
    // SAFETY: any bytes are a valid u128; align_to only splits off what is not aligned.
    let (head, mid, tail) = unsafe { b.align_to::<u128>() };
    head.iter().all(|x| *x == 0) && mid.iter().all(|x| *x == 0) && tail.iter().all(|x| *x == 0)
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Streams plaintext into an encrypted object. Call [`Encryptor::finish`]: an object without its
/// final chunk is unreadable by design.
pub struct Encryptor<W: Write> {
    key: Key,
    header: [u8; HEADER_LEN as usize],
    out: W,
    buf: Zeroizing<Vec<u8>>,
    index: u64,
    total: u64,
}

impl<W: Write> Encryptor<W> {
    pub fn new(id: &ObjectId, key: &Key, mut out: W) -> std::io::Result<Self> {
        let header = header(id);
        out.write_all(&header)?;
        Ok(Encryptor {
            key: key.clone(),
            header,
            out,
            buf: {
                let mut b =
                    Zeroizing::new(Vec::with_capacity((CHUNK_PLAIN + CHUNK_OVERHEAD) as usize));
                b.resize(NONCE_LEN, 0);
                b
            },
            index: 0,
            total: 0,
        })
    }

    /// A full chunk is only sealed once more data arrives, so the last chunk always gets the
    /// final flag, even when the length is a multiple of 64 KiB.
    pub fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            if self.buf.len() == NONCE_LEN + CHUNK_PLAIN as usize {
                self.seal_chunk(false)?;
            }
            let room = NONCE_LEN + (CHUNK_PLAIN as usize) - self.buf.len();
            let n = room.min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            self.total += n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    fn seal_chunk(&mut self, last: bool) -> std::io::Result<()> {
        let nonce = super::random_bytes::<NONCE_LEN>();
        let aad = chunk_aad(&self.header, self.index, last);
        // buf holds the plaintext after NONCE_LEN reserved bytes, so the sealed chunk goes out in
        // one write (tmpfs and FUSE are markedly faster with chunk-sized writes than with 1 MiB).
        let tag = seal_in_place(&self.key, &nonce, &aad, &mut self.buf[NONCE_LEN..])
            .map_err(|_| std::io::Error::other("chunk encryption failed"))?;
        self.buf[..NONCE_LEN].copy_from_slice(&nonce);
        self.buf.extend_from_slice(&tag);
        self.out.write_all(&self.buf)?;
        self.buf.truncate(NONCE_LEN);
        self.index += 1;
        Ok(())
    }

    /// Seal the final chunk; returns the sink and the plaintext length.
    pub fn finish(mut self) -> std::io::Result<(W, u64)> {
        self.seal_chunk(true)?;
        self.out.flush()?;
        Ok((self.out, self.total))
    }
}

/// Positional reads from wherever the ciphertext lives (a file today, an object store later).
pub trait ReadAt {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize>;
    fn size(&self) -> std::io::Result<u64>;

    /// Read one sealed chunk (nonce, ciphertext, tag) into three buffers.
    fn read_chunk_at(
        &self,
        nonce: &mut [u8],
        body: &mut [u8],
        tag: &mut [u8],
        offset: u64,
    ) -> std::io::Result<()> {
        self.read_exact_at(nonce, offset)?;
        self.read_exact_at(body, offset + nonce.len() as u64)?;
        self.read_exact_at(tag, offset + (nonce.len() + body.len()) as u64)
    }

    /// Whether `len` bytes at `offset` all read as zeros (the slot of a chunk that is a hole).
    fn is_zero_at(&self, mut offset: u64, len: u64) -> std::io::Result<bool> {
        let end = offset + len;
        let mut buf = vec![0u8; len.min(CHUNK_CIPHER) as usize];
        while offset < end {
            let n = ((end - offset) as usize).min(buf.len());
            self.read_exact_at(&mut buf[..n], offset)?;
            if buf[..n].iter().any(|b| *b != 0) {
                return Ok(false);
            }
            offset += n as u64;
        }
        Ok(true)
    }

    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset)? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
            }
        }
        Ok(())
    }
}

impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }

    /// One `preadv` straight into the caller's buffers: no intermediate copy on the read path.
    fn read_chunk_at(
        &self,
        nonce: &mut [u8],
        body: &mut [u8],
        tag: &mut [u8],
        offset: u64,
    ) -> std::io::Result<()> {
        use std::io::IoSliceMut;
        let want = nonce.len() + body.len() + tag.len();
        let mut iov = [
            IoSliceMut::new(nonce),
            IoSliceMut::new(body),
            IoSliceMut::new(tag),
        ];
        let n = nix::sys::uio::preadv(self, &mut iov, offset as libc::off_t)
            .map_err(std::io::Error::from)?;
        if n == want {
            Ok(())
        } else {
            Err(std::io::ErrorKind::UnexpectedEof.into())
        }
    }
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    /// A hole in the file is known to be zeros without reading it: one `lseek(SEEK_DATA)`.
    /// Where the file system has no holes to report (or data is there), read and compare.
    fn is_zero_at(&self, offset: u64, len: u64) -> std::io::Result<bool> {
        use std::os::fd::AsRawFd;
        // SAFETY: lseek on a descriptor we own; it moves only the file position, which no
        // reader of objects uses (every read is positional).
        let next = unsafe { libc::lseek(self.as_raw_fd(), offset as libc::off_t, libc::SEEK_DATA) };
        if next < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                // no data at or after offset: all hole up to the end of the file
                return Ok(offset + len <= self.size()?);
            }
        } else if next as u64 >= offset + len {
            return Ok(true);
        }
        let mut buf = vec![0u8; len.min(CHUNK_CIPHER) as usize];
        let (mut at, end) = (offset, offset + len);
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            ReadAt::read_exact_at(self, &mut buf[..n], at)?;
            if buf[..n].iter().any(|b| *b != 0) {
                return Ok(false);
            }
            at += n as u64;
        }
        Ok(true)
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let start = (offset as usize).min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.len() as u64)
    }
}

/// Random-access decryption of one object: reading a range decrypts only the chunks it touches.
pub struct Decryptor<R: ReadAt> {
    key: Key,
    header: [u8; HEADER_LEN as usize],
    src: R,
    plain_len: u64,
    chunks: u64,
    /// The runs of stored chunks of a sparse object; `None` for a dense one (all stored).
    runs: Option<Runs>,
    /// Names the object in integrity errors (e.g. "asset 42 version 3").
    label: String,
}

impl<R: ReadAt> Decryptor<R> {
    /// Check the header and the length against what the catalog recorded (for a sparse object:
    /// open its chunk map, which must name the same length).
    pub fn open(
        id: &ObjectId,
        key: &Key,
        src: R,
        plain_len: u64,
        label: impl Into<String>,
    ) -> Result<Self> {
        let label = label.into();
        let size = src
            .size()
            .map_err(|e| Error::io(format!("cannot read {label}"), e))?;
        let mut on_disk = [0u8; HEADER_LEN as usize];
        if size < HEADER_LEN || src.read_exact_at(&mut on_disk, 0).is_err() {
            return Err(Error::integrity(
                &label,
                "object is truncated (no complete header)",
            ));
        }
        let version = u16::from_be_bytes([on_disk[4], on_disk[5]]);
        if &on_disk[..4] == MAGIC && version > FORMAT_SPARSE {
            return Err(Error::integrity(
                &label,
                format!("object format {version} is newer than this consentfs knows; update it"),
            ));
        }
        // an unknown version fails the comparison below
        let header = header_of(
            id,
            if version == FORMAT_SPARSE {
                FORMAT_SPARSE
            } else {
                FORMAT_VERSION
            },
        );
        if on_disk != header {
            return Err(Error::integrity(
                &label,
                "object header does not match (wrong or replaced object)",
            ));
        }
        let chunks = chunk_count(plain_len);
        let runs = if version == FORMAT_SPARSE {
            Some(Self::open_map(key, &header, &src, size, plain_len, &label)?)
        } else {
            if size != encrypted_len(plain_len) {
                return Err(Error::integrity(
                    &label,
                    format!(
                        "object is {size} bytes, expected {} (truncated or extended)",
                        encrypted_len(plain_len)
                    ),
                ));
            }
            None
        };
        Ok(Decryptor {
            key: key.clone(),
            header,
            src,
            plain_len,
            chunks,
            runs,
            label,
        })
    }

    /// A reader of an object this process has just sealed (`ObjectWriter`): its header,
    /// length and chunk map are what the writer wrote, so nothing is read back.
    pub fn of_written(
        key: &Key,
        header: [u8; HEADER_LEN as usize],
        src: R,
        plain_len: u64,
        runs: Runs,
        label: impl Into<String>,
    ) -> Self {
        Decryptor {
            key: key.clone(),
            header,
            src,
            plain_len,
            chunks: chunk_count(plain_len),
            runs: Some(runs),
            label: label.into(),
        }
    }

    /// The same reader over another source of the same object (a duplicated descriptor):
    /// nothing is read or checked again.
    pub fn with_source<S: ReadAt>(&self, src: S) -> Decryptor<S> {
        Decryptor {
            key: self.key.clone(),
            header: self.header,
            src,
            plain_len: self.plain_len,
            chunks: self.chunks,
            runs: self.runs.clone(),
            label: self.label.clone(),
        }
    }

    /// Read, authenticate and check the chunk map of a sparse object of `size` bytes on disk.
    fn open_map(
        key: &Key,
        header: &[u8; HEADER_LEN as usize],
        src: &R,
        size: u64,
        plain_len: u64,
        label: &str,
    ) -> Result<Runs> {
        let at = encrypted_len(plain_len);
        let chunks = chunk_count(plain_len);
        let len = size.saturating_sub(at);
        // at most one run per two chunks, plus one
        if size < at + map_len(0)
            || !(len - map_len(0)).is_multiple_of(MAP_RUN)
            || (len - map_len(0)) / MAP_RUN > chunks / 2 + 1
        {
            return Err(Error::integrity(
                label,
                format!(
                    "object is {size} bytes, which does not fit its length (truncated or extended)"
                ),
            ));
        }
        let mut raw = Zeroizing::new(vec![0u8; len as usize]);
        src.read_exact_at(&mut raw, at)
            .map_err(|e| Error::io(format!("cannot read {label}"), e))?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&raw[..NONCE_LEN]);
        let body_end = raw.len() - TAG_LEN;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&raw[body_end..]);
        let body = &mut raw[NONCE_LEN..body_end];
        open_in_place(key, &nonce, &map_aad(header), body, &tag).map_err(|_| {
            Error::integrity(
                label,
                "its chunk map failed authentication (truncated, extended or tampered)",
            )
        })?;
        if be_u64(&body[..8]) != plain_len {
            return Err(Error::integrity(
                label,
                "its chunk map records another length (truncated or extended)",
            ));
        }
        let count = be_u64(&body[8..16]);
        if count != ((body.len() as u64) - MAP_HEAD) / MAP_RUN {
            return Err(Error::integrity(label, "its chunk map is malformed"));
        }
        let mut runs = Runs::with_capacity(count as usize);
        let mut next = 0u64;
        for r in body[MAP_HEAD as usize..].chunks(MAP_RUN as usize) {
            let (first, n) = (be_u64(&r[..8]), be_u64(&r[8..]));
            // ascending and not overlapping (touching runs are harmless, so not refused)
            let ok = n > 0 && first >= next && first.checked_add(n).is_some_and(|e| e <= chunks);
            if !ok {
                return Err(Error::integrity(label, "its chunk map is malformed"));
            }
            next = first + n;
            runs.push((first, n));
        }
        Ok(runs)
    }

    /// Whether chunk `index` is stored (false: a hole, which reads as zeros).
    pub fn is_stored(&self, index: u64) -> bool {
        match &self.runs {
            None => index < self.chunks,
            Some(runs) => {
                let i = runs.partition_point(|(first, _)| *first <= index);
                i > 0 && index < runs[i - 1].0 + runs[i - 1].1
            }
        }
    }

    /// The runs of stored chunks (first index, count).
    pub fn stored_runs(&self) -> Runs {
        match &self.runs {
            None => vec![(0, self.chunks)],
            Some(r) => r.clone(),
        }
    }

    /// Plaintext bytes in stored chunks (what is really on disk, give or take the overhead):
    /// for `st_blocks`, where a sparse file should not look as large as its length.
    pub fn stored_len(&self) -> u64 {
        self.stored_runs()
            .iter()
            .map(|(first, count)| {
                let end = first + count;
                let last = if end == self.chunks {
                    self.chunk_plain_len(end - 1)
                } else {
                    CHUNK_PLAIN
                };
                (count - 1) * CHUNK_PLAIN + last
            })
            .sum()
    }

    /// A hole reads as zeros, and its slot must hold nothing: data where the map says there is
    /// none means the object was changed.
    fn hole_into(&self, index: u64, out: &mut [u8]) -> Result<()> {
        let slot = self.chunk_plain_len(index) + CHUNK_OVERHEAD;
        let zero = self
            .src
            .is_zero_at(HEADER_LEN + index * CHUNK_CIPHER, slot)
            .map_err(|e| Error::io(format!("cannot read {}", self.label), e))?;
        out.fill(0);
        if !zero {
            return Err(Error::integrity(
                &self.label,
                format!("chunk {index} is a hole in its chunk map but holds data (tampered)"),
            ));
        }
        Ok(())
    }

    /// Where the ciphertext is read from.
    pub fn source(&self) -> &R {
        &self.src
    }

    pub fn len(&self) -> u64 {
        self.plain_len
    }

    pub fn is_empty(&self) -> bool {
        self.plain_len == 0
    }

    /// Plaintext length of chunk `index`.
    fn chunk_plain_len(&self, index: u64) -> u64 {
        if index + 1 < self.chunks {
            CHUNK_PLAIN
        } else {
            self.plain_len - index * CHUNK_PLAIN
        }
    }

    /// Decrypt and authenticate chunk `index` straight into `out`, which must be exactly the
    /// chunk's plaintext length. On failure `out` holds no plaintext (it is zeroed).
    pub fn chunk_into(&self, index: u64, out: &mut [u8]) -> Result<()> {
        if index >= self.chunks || out.len() as u64 != self.chunk_plain_len(index) {
            return Err(Error::invalid(format!(
                "chunk {index} is out of range for {}",
                self.label
            )));
        }
        if !self.is_stored(index) {
            return self.hole_into(index, out);
        }
        let mut nonce = [0u8; NONCE_LEN];
        let mut tag = [0u8; TAG_LEN];
        self.src
            .read_chunk_at(&mut nonce, out, &mut tag, HEADER_LEN + index * CHUNK_CIPHER)
            .map_err(|e| Error::io(format!("cannot read {}", self.label), e))?;
        let aad = chunk_aad(&self.header, index, index + 1 == self.chunks);
        // on failure open_in_place has zeroed `out`
        if open_in_place(&self.key, &nonce, &aad, out, &tag).is_err() {
            return Err(Error::integrity(
                &self.label,
                format!("chunk {index} failed authentication (tampered, moved or swapped)"),
            ));
        }
        Ok(())
    }

    /// Plaintext length of chunk `index` (0 past the end).
    pub fn chunk_len(&self, index: u64) -> u64 {
        if index < self.chunks {
            self.chunk_plain_len(index)
        } else {
            0
        }
    }

    /// Decrypt and authenticate chunk `index`.
    pub fn chunk(&self, index: u64) -> Result<Zeroizing<Vec<u8>>> {
        if index >= self.chunks {
            return Err(Error::invalid(format!(
                "chunk {index} is past the end of {}",
                self.label
            )));
        }
        let plain = self.chunk_plain_len(index);
        if !self.is_stored(index) {
            let mut zeros = Zeroizing::new(vec![0u8; plain as usize]);
            self.hole_into(index, &mut zeros)?;
            return Ok(zeros);
        }
        // read and decrypted in place in the buffer that is returned: one allocation, no copy
        let mut plain = Zeroizing::new(vec![0u8; plain as usize]);
        self.chunk_into(index, &mut plain)?;
        Ok(plain)
    }

    /// Fill `buf` from plaintext offset `offset`; returns bytes read (0 at or past the end).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            if pos >= self.plain_len {
                break;
            }
            let index = pos / CHUNK_PLAIN;
            let within = (pos % CHUNK_PLAIN) as usize;
            let chunk = self.chunk(index)?;
            let n = (chunk.len() - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&chunk[within..within + n]);
            done += n;
        }
        Ok(done)
    }

    /// Decrypt the whole object into `out` only once every chunk has been authenticated, so a
    /// tampered object yields an error and no output at all rather than a truncated file. Up to
    /// `VERIFY_IN_MEMORY` bytes are decrypted once into memory; larger objects are checked in a
    /// first pass and decrypted again while writing.
    pub fn copy_verified_to(&self, out: &mut dyn Write) -> Result<u64>
    where
        R: Sync,
    {
        const VERIFY_IN_MEMORY: u64 = 64 << 20;
        if self.plain_len <= VERIFY_IN_MEMORY {
            let mut all = Zeroizing::new(Vec::with_capacity(self.plain_len as usize));
            self.copy_to(&mut *all)?;
            out.write_all(&all)
                .map_err(|e| Error::io("cannot write output", e))?;
            return Ok(self.plain_len);
        }
        self.verify_all()?;
        self.copy_to(out)
    }

    /// Authenticate every chunk, spread over the machine's cores.
    pub fn verify_all(&self) -> Result<()>
    where
        R: Sync,
    {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8) as u64;
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|k| {
                    scope.spawn(move || -> Result<()> {
                        let mut i = k;
                        while i < self.chunks {
                            self.chunk(i)?;
                            i += threads;
                        }
                        Ok(())
                    })
                })
                .collect();
            for w in workers {
                w.join()
                    .map_err(|_| Error::integrity(&self.label, "verification thread failed"))??;
            }
            Ok(())
        })
    }

    /// Decrypt the whole object into `out`, chunk by chunk. Each chunk is authenticated before it
    /// is written, but a later chunk may still fail: see [`Decryptor::copy_verified_to`].
    pub fn copy_to(&self, out: &mut dyn Write) -> Result<u64> {
        for i in 0..self.chunks {
            let chunk = self.chunk(i)?;
            out.write_all(&chunk)
                .map_err(|e| Error::io("cannot write output", e))?;
        }
        Ok(self.plain_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An object id is exactly 32 hex digits (either case); anything else is not one.
    #[test]
    fn object_ids_parse_exactly() {
        let id = ObjectId::random();
        assert_eq!(ObjectId::parse(&id.hex()), Some(id));
        assert_eq!(ObjectId::parse(&id.hex().to_uppercase()), Some(id));
        let hex = id.hex();
        for bad in [
            "",
            &hex[..31],
            &hex[..30],
            &format!("{hex}0"),
            &format!("{hex}00"),
            &format!("g{}", &hex[1..]),
            "../../etc/passwd0000000000000000",
        ] {
            assert_eq!(ObjectId::parse(bad), None, "{bad:?}");
        }
    }

    fn encrypt(id: &ObjectId, key: &Key, data: &[u8]) -> Vec<u8> {
        let mut e = Encryptor::new(id, key, Vec::new()).unwrap();
        // odd write sizes exercise the chunk boundary logic
        for part in data.chunks(7000) {
            e.write(part).unwrap();
        }
        let (out, n) = e.finish().unwrap();
        assert_eq!(n, data.len() as u64);
        out
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trips_at_every_interesting_length() {
        let key = Key::random();
        for len in [0, 1, 65535, 65536, 65537, 3 * 65536, 200_000] {
            let id = ObjectId::random();
            let data = sample(len);
            let enc = encrypt(&id, &key, &data);
            assert_eq!(enc.len() as u64, encrypted_len(len as u64));
            let d = Decryptor::open(&id, &key, enc, len as u64, "t").unwrap();
            let mut out = Vec::new();
            d.copy_to(&mut out).unwrap();
            assert_eq!(out, data, "len {len}");
        }
    }

    #[test]
    fn random_access_reads_return_the_right_bytes() {
        let key = Key::random();
        let id = ObjectId::random();
        let data = sample(300_000);
        let d =
            Decryptor::open(&id, &key, encrypt(&id, &key, &data), data.len() as u64, "t").unwrap();
        for (off, len) in [
            (0, 10),
            (65530, 20),
            (131072, 65536),
            (299_990, 100),
            (300_000, 5),
            (400_000, 5),
        ] {
            let mut buf = vec![0u8; len];
            let n = d.read_at(&mut buf, off as u64).unwrap();
            let end = (off + len).min(data.len());
            let want = if off < data.len() {
                &data[off..end]
            } else {
                &[][..]
            };
            assert_eq!(&buf[..n], want, "offset {off}");
        }
    }

    fn read_all(id: &ObjectId, key: &Key, enc: Vec<u8>, len: u64) -> Result<Vec<u8>> {
        let d = Decryptor::open(id, key, enc, len, "asset 7")?;
        let mut out = Vec::new();
        d.copy_to(&mut out)?;
        Ok(out)
    }

    fn assert_integrity(r: Result<Vec<u8>>) {
        match r {
            Err(Error::Integrity { what, .. }) => assert_eq!(what, "asset 7"),
            other => panic!("expected an integrity error naming the asset, got {other:?}"),
        }
    }

    #[test]
    fn flipped_byte_is_detected() {
        let key = Key::random();
        let id = ObjectId::random();
        let mut enc = encrypt(&id, &key, &sample(100_000));
        enc[HEADER_LEN as usize + 70_000] ^= 0x01;
        assert_integrity(read_all(&id, &key, enc, 100_000));
    }

    #[test]
    fn swapped_chunks_are_detected() {
        let key = Key::random();
        let id = ObjectId::random();
        let data = sample(3 * CHUNK_PLAIN as usize);
        let mut enc = encrypt(&id, &key, &data);
        let (a, b) = (HEADER_LEN as usize, (HEADER_LEN + CHUNK_CIPHER) as usize);
        let first: Vec<u8> = enc[a..b].to_vec();
        let second: Vec<u8> = enc[b..b + CHUNK_CIPHER as usize].to_vec();
        enc[a..b].copy_from_slice(&second);
        enc[b..b + CHUNK_CIPHER as usize].copy_from_slice(&first);
        assert_integrity(read_all(&id, &key, enc, data.len() as u64));
    }

    #[test]
    fn truncation_is_detected_even_at_a_chunk_boundary() {
        let key = Key::random();
        let id = ObjectId::random();
        let data = sample(3 * CHUNK_PLAIN as usize);
        let enc = encrypt(&id, &key, &data);
        let cut = enc[..(HEADER_LEN + 2 * CHUNK_CIPHER) as usize].to_vec();
        // with the catalog's length: caught by the length check
        assert_integrity(read_all(&id, &key, cut.clone(), data.len() as u64));
        // even if the catalog's length were rolled back too: the last chunk lacks the final flag
        assert_integrity(read_all(&id, &key, cut, 2 * CHUNK_PLAIN));
    }

    #[test]
    fn chunk_moved_from_another_object_is_detected() {
        let key = Key::random();
        let (id_a, id_b) = (ObjectId::random(), ObjectId::random());
        let data = sample(2 * CHUNK_PLAIN as usize);
        let mut a = encrypt(&id_a, &key, &data);
        let b = encrypt(&id_b, &key, &data);
        let r = HEADER_LEN as usize..(HEADER_LEN + CHUNK_CIPHER) as usize;
        a[r.clone()].copy_from_slice(&b[r]);
        assert_integrity(read_all(&id_a, &key, a, data.len() as u64));
    }

    #[test]
    fn object_copied_over_another_is_detected() {
        let (ka, kb) = (Key::random(), Key::random());
        let (id_a, id_b) = (ObjectId::random(), ObjectId::random());
        let data = sample(1000);
        let b = encrypt(&id_b, &kb, &data);
        assert_integrity(read_all(&id_a, &ka, b.clone(), 1000));
        // and with the header patched to the expected id, the key and AAD still differ
        let mut patched = b;
        patched[8..24].copy_from_slice(&id_a.0);
        assert_integrity(read_all(&id_a, &ka, patched, 1000));
    }
}
