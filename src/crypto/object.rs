//! The encrypted object format (specified in contrib/FORMAT.md).
//!
//! ```text
//! header  = "CFSO" | version u16 BE (=1) | reserved u16 (=0) | object id (16 bytes)   24 bytes
//! chunk i = nonce (24 random bytes) | XChaCha20-Poly1305(data key, nonce, plaintext_i, aad_i)
//! aad_i   = header | i as u64 BE | final flag u8 (1 on the last chunk, else 0)
//! ```
//!
//! Plaintext is cut into 64 KiB chunks; only the last may be shorter, and an empty object is one
//! empty final chunk. Binding the object id and chunk index into each chunk's associated data
//! detects swapped or moved chunks and objects copied over one another (each object also has
//! its own data key); the final flag detects truncation at a chunk boundary, and the catalog
//! keeps the plaintext length, so any change of length is caught before a byte is returned.

use super::{Key, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::io::Write;
use zeroize::Zeroizing;

pub const MAGIC: &[u8; 4] = b"CFSO";
pub const FORMAT_VERSION: u16 = 1;
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
        let v = hex::decode(s).ok()?;
        Some(ObjectId(v.try_into().ok()?))
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

pub fn header(id: &ObjectId) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..4].copy_from_slice(MAGIC);
    h[4..6].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
    h[8..].copy_from_slice(&id.0);
    h
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

/// Size on disk of an object holding `plain_len` bytes.
pub fn encrypted_len(plain_len: u64) -> u64 {
    HEADER_LEN + plain_len + chunk_count(plain_len) * CHUNK_OVERHEAD
}

/// Streams plaintext into an encrypted object. Call [`Encryptor::finish`]: an object without its
/// final chunk is unreadable by design.
pub struct Encryptor<W: Write> {
    cipher: XChaCha20Poly1305,
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
            cipher: XChaCha20Poly1305::new(key.bytes().into()),
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
        let tag = self
            .cipher
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), &aad, &mut self.buf[NONCE_LEN..])
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
    cipher: XChaCha20Poly1305,
    header: [u8; HEADER_LEN as usize],
    src: R,
    plain_len: u64,
    chunks: u64,
    /// Names the object in integrity errors (e.g. "asset 42 version 3").
    label: String,
}

impl<R: ReadAt> Decryptor<R> {
    /// Check the header and the length against what the catalog recorded.
    pub fn open(
        id: &ObjectId,
        key: &Key,
        src: R,
        plain_len: u64,
        label: impl Into<String>,
    ) -> Result<Self> {
        let label = label.into();
        let header = header(id);
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
        if on_disk != header {
            return Err(Error::integrity(
                &label,
                "object header does not match (wrong or replaced object)",
            ));
        }
        if size != encrypted_len(plain_len) {
            return Err(Error::integrity(
                &label,
                format!(
                    "object is {size} bytes, expected {} (truncated or extended)",
                    encrypted_len(plain_len)
                ),
            ));
        }
        Ok(Decryptor {
            cipher: XChaCha20Poly1305::new(key.bytes().into()),
            header,
            src,
            plain_len,
            chunks: chunk_count(plain_len),
            label,
        })
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
        let mut nonce = [0u8; NONCE_LEN];
        let mut tag = [0u8; TAG_LEN];
        self.src
            .read_chunk_at(&mut nonce, out, &mut tag, HEADER_LEN + index * CHUNK_CIPHER)
            .map_err(|e| Error::io(format!("cannot read {}", self.label), e))?;
        let aad = chunk_aad(&self.header, index, index + 1 == self.chunks);
        let tag = chacha20poly1305::Tag::from(tag);
        if self
            .cipher
            .decrypt_in_place_detached(XNonce::from_slice(&nonce), &aad, out, &tag)
            .is_err()
        {
            zeroize::Zeroize::zeroize(out);
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
        let mut raw = Zeroizing::new(vec![0u8; (plain + CHUNK_OVERHEAD) as usize]);
        self.src
            .read_exact_at(&mut raw, HEADER_LEN + index * CHUNK_CIPHER)
            .map_err(|e| Error::io(format!("cannot read {}", self.label), e))?;
        let nonce = *XNonce::from_slice(&raw[..NONCE_LEN]);
        let tag = chacha20poly1305::Tag::clone_from_slice(&raw[NONCE_LEN + plain as usize..]);
        let aad = chunk_aad(&self.header, index, index + 1 == self.chunks);
        let body = &mut raw[NONCE_LEN..NONCE_LEN + plain as usize];
        self.cipher
            .decrypt_in_place_detached(&nonce, &aad, body, &tag)
            .map_err(|_| {
                Error::integrity(
                    &self.label,
                    format!("chunk {index} failed authentication (tampered, moved or swapped)"),
                )
            })?;
        raw.copy_within(NONCE_LEN..NONCE_LEN + plain as usize, 0);
        raw.truncate(plain as usize);
        Ok(raw)
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
