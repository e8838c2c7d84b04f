//! A new object being written through the mount, with random access.
//!
//! The file on disk has the final object layout from the start (header, then 64 KiB chunk
//! slots), so committing needs no copy: every chunk but the last is sealed in place as it
//! completes, and the last chunk is kept in memory until commit, when it is sealed with the
//! final flag. A write into an already sealed chunk decrypts, patches and re-seals it with a
//! fresh nonce (allowed: the object is not committed yet, so nobody holds that ciphertext).
//! Nothing is ever on disk unencrypted, and the data key exists only in memory until the
//! catalog records it, so a crash leaves an unreadable `.tmp` file that start-up removes.

use super::{NewObject, Store};
use crate::crypto::object::{
    chunk_count, header, ObjectId, CHUNK_CIPHER, CHUNK_OVERHEAD, CHUNK_PLAIN, HEADER_LEN,
};
use crate::crypto::{random_bytes, wrap_key, Key, NONCE_LEN, TAG_LEN};
use crate::error::{Error, IoContext, Result};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::XNonce;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use zeroize::Zeroizing;

pub struct ObjectWriter {
    id: ObjectId,
    key: Key,
    file: File,
    tmp: PathBuf,
    final_path: PathBuf,
    /// Plaintext size.
    size: u64,
    /// Chunks sealed on disk: all chunks before the tail.
    sealed: u64,
    /// Plaintext of the last chunk (index `sealed`).
    tail: Zeroizing<Vec<u8>>,
    /// Keyed content hash over the bytes so far, while they arrived strictly in order.
    hash: Option<hmac::Hmac<sha2::Sha256>>,
    hash_key: Key,
    committed: bool,
    /// A write or truncate failed half-way (disk full, I/O error): what is on disk no longer
    /// matches what the writer was told, so this object must never become a version.
    broken: Option<String>,
}

fn aad(id: &ObjectId, index: u64, last: bool) -> Vec<u8> {
    let mut a = header(id).to_vec();
    a.extend_from_slice(&index.to_be_bytes());
    a.push(last as u8);
    a
}

impl ObjectWriter {
    pub(super) fn new(store: &Store) -> Result<ObjectWriter> {
        let id = ObjectId::random();
        let final_path = store.object_path(&id);
        let dir = final_path.parent().expect("object paths have a parent");
        super::private::create_dir_all(dir)?;
        let tmp = final_path.with_extension("tmp");
        let file = super::private::create_file(&tmp, true)?;
        file.write_all_at(&header(&id), 0)
            .at("write object", &tmp)?;
        let hash_key = store.content_key();
        Ok(ObjectWriter {
            id,
            key: Key::random(),
            file,
            tmp,
            final_path,
            size: 0,
            sealed: 0,
            tail: Zeroizing::new(Vec::with_capacity(CHUNK_PLAIN as usize)),
            hash: Some(hash_key.mac_state()),
            hash_key,
            committed: false,
            broken: None,
        })
    }

    pub fn len(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::io_path("write object", &self.tmp, e)
    }

    /// Encrypt one chunk of plaintext and write it in its place. The plaintext is copied once,
    /// into the buffer that becomes the ciphertext.
    fn seal_at(&self, index: u64, plain: &[u8], last: bool) -> Result<()> {
        let nonce = random_bytes::<NONCE_LEN>();
        let mut buf = Vec::with_capacity(plain.len() + CHUNK_OVERHEAD as usize);
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plain);
        let tag = self
            .key
            .cipher()
            .encrypt_in_place_detached(
                XNonce::from_slice(&nonce),
                &aad(&self.id, index, last),
                &mut buf[NONCE_LEN..],
            )
            .map_err(|_| Error::invalid("chunk encryption failed"))?;
        buf.extend_from_slice(&tag);
        self.file
            .write_all_at(&buf, HEADER_LEN + index * CHUNK_CIPHER)
            .map_err(|e| self.io(e))
    }

    /// Seal whole chunks `first..` from `data` (a multiple of the chunk size) on two threads,
    /// the helper also feeding the content hash: a 1 MiB write from the kernel is 16 chunks,
    /// and with one thread the cipher, the hash and the copy into the page cache run one after
    /// the other on one core while the other idles.
    fn seal_many(&mut self, first: u64, data: &[u8]) -> Result<()> {
        let n = data.len() / CHUNK_PLAIN as usize;
        let split = n * 2 / 5 * CHUNK_PLAIN as usize;
        let mut hash = self.hash.take();
        let this = &*self;
        let result = std::thread::scope(|s| {
            let helper = s.spawn(|| -> Result<()> {
                if let Some(h) = hash.as_mut() {
                    hmac::Mac::update(h, data);
                }
                this.seal_range(first, &data[..split])
            });
            let mine = this.seal_range(
                first + (split / CHUNK_PLAIN as usize) as u64,
                &data[split..],
            );
            let theirs = helper
                .join()
                .unwrap_or_else(|_| Err(Error::invalid("the sealing thread failed")));
            mine.and(theirs)
        });
        self.hash = hash;
        result
    }

    fn seal_range(&self, first: u64, data: &[u8]) -> Result<()> {
        for (i, chunk) in data.chunks(CHUNK_PLAIN as usize).enumerate() {
            self.seal_at(first + i as u64, chunk, false)?;
        }
        Ok(())
    }

    fn open_sealed(&self, index: u64) -> Result<Zeroizing<Vec<u8>>> {
        let mut raw = vec![0u8; CHUNK_CIPHER as usize];
        self.file
            .read_exact_at(&mut raw, HEADER_LEN + index * CHUNK_CIPHER)
            .map_err(|e| self.io(e))?;
        let nonce = *XNonce::from_slice(&raw[..NONCE_LEN]);
        let tag = chacha20poly1305::Tag::clone_from_slice(&raw[NONCE_LEN + CHUNK_PLAIN as usize..]);
        let mut plain = Zeroizing::new(raw[NONCE_LEN..NONCE_LEN + CHUNK_PLAIN as usize].to_vec());
        self.key
            .cipher()
            .decrypt_in_place_detached(&nonce, &aad(&self.id, index, false), &mut plain, &tag)
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
        self.seal_at(self.sealed, &full, false)?;
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

    /// Write `data` at `offset`, growing the object (with zeros) as needed. After a failure
    /// (e.g. the disk is full) every later write and the commit fail too.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.check_not_broken()?;
        let r = self.write_at_unguarded(offset, data);
        self.guard(r)
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
        if sequential && data.len() > 4 * CHUNK_PLAIN as usize {
            if self.tail.len() == CHUNK_PLAIN as usize {
                self.push_tail()?;
            }
            if self.tail.is_empty() {
                let whole = (data.len() - 1) / CHUNK_PLAIN as usize * CHUNK_PLAIN as usize;
                self.seal_many(self.sealed, &data[..whole])?;
                self.sealed += (whole / CHUNK_PLAIN as usize) as u64;
                pos += whole as u64;
                self.size = pos;
                data = &data[whole..];
            }
        }
        if sequential {
            if let Some(h) = self.hash.as_mut() {
                hmac::Mac::update(h, data);
            }
        }
        while !data.is_empty() {
            let index = pos / CHUNK_PLAIN;
            let within = (pos % CHUNK_PLAIN) as usize;
            if index < self.sealed {
                let take = data.len().min(CHUNK_PLAIN as usize - within);
                let mut plain = self.open_sealed(index)?;
                plain[within..within + take].copy_from_slice(&data[..take]);
                self.seal_at(index, &plain, false)?;
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

    fn grow_to(&mut self, new_size: u64) -> Result<()> {
        let zeros = vec![0u8; CHUNK_PLAIN as usize];
        let mut hash = self.hash.take();
        while self.size < new_size {
            let n = (new_size - self.size).min(CHUNK_PLAIN) as usize;
            let at = self.size;
            self.write_at(at, &zeros[..n])?;
            if let Some(h) = hash.as_mut() {
                hmac::Mac::update(h, &zeros[..n]);
            }
        }
        self.hash = hash;
        Ok(())
    }

    /// Cut or extend (with zeros) to `new_size`.
    pub fn truncate(&mut self, new_size: u64) -> Result<()> {
        self.check_not_broken()?;
        let r = self.truncate_unguarded(new_size);
        self.guard(r)
    }

    fn truncate_unguarded(&mut self, new_size: u64) -> Result<()> {
        if new_size >= self.size {
            return self.grow_to(new_size);
        }
        self.hash = None;
        let last = if new_size == 0 {
            0
        } else {
            (new_size - 1) / CHUNK_PLAIN
        };
        if last < self.sealed {
            let mut plain = self.open_sealed(last)?;
            plain.truncate((new_size - last * CHUNK_PLAIN) as usize);
            self.tail = plain;
            self.sealed = last;
            self.file
                .set_len(HEADER_LEN + last * CHUNK_CIPHER)
                .map_err(|e| self.io(e))?;
        } else {
            self.tail.truncate((new_size - last * CHUNK_PLAIN) as usize);
        }
        self.size = new_size;
        Ok(())
    }

    /// Read back what was written so far.
    pub fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let end = (offset + len as u64).min(self.size);
        let mut out = Vec::new();
        let mut pos = offset;
        while pos < end {
            let index = pos / CHUNK_PLAIN;
            let within = (pos % CHUNK_PLAIN) as usize;
            let take = ((end - pos) as usize).min(CHUNK_PLAIN as usize - within);
            if index < self.sealed {
                let plain = self.open_sealed(index)?;
                out.extend_from_slice(&plain[within..within + take]);
            } else {
                out.extend_from_slice(&self.tail[within..within + take]);
            }
            pos += take as u64;
        }
        Ok(out)
    }

    /// Seal the last chunk, make the object durable under its final name, and return what the
    /// catalog must record. The object is complete and immutable from here on.
    pub fn commit(mut self, store: &Store) -> Result<NewObject> {
        self.check_not_broken()?;
        debug_assert_eq!(chunk_count(self.size), self.sealed + 1);
        let mut tail = std::mem::take(&mut *self.tail);
        self.seal_at(self.sealed, &tail, true)?;
        zeroize::Zeroize::zeroize(&mut tail);
        let len = HEADER_LEN
            + self.sealed * CHUNK_CIPHER
            + (self.size - self.sealed * CHUNK_PLAIN)
            + (NONCE_LEN + TAG_LEN) as u64;
        self.file.set_len(len).map_err(|e| self.io(e))?;
        self.file.sync_all().map_err(|e| self.io(e))?;
        let content_hash = match self.hash.take() {
            Some(h) => hmac::Mac::finalize(h).into_bytes().into(),
            None => {
                // written out of order: hash what was committed
                let mut m = self.hash_key.mac_state();
                for i in 0..self.sealed {
                    hmac::Mac::update(&mut m, &self.open_sealed(i)?);
                }
                let d = crate::crypto::object::Decryptor::open(
                    &self.id,
                    &self.key,
                    self.file.try_clone().map_err(|e| self.io(e))?,
                    self.size,
                    "a file being written",
                )?;
                hmac::Mac::update(&mut m, &d.chunk(self.sealed)?);
                hmac::Mac::finalize(m).into_bytes().into()
            }
        };
        std::fs::rename(&self.tmp, &self.final_path).at("commit object", &self.final_path)?;
        self.committed = true;
        Ok(NewObject {
            id: self.id,
            wrapped_key: wrap_key(&store.wrap, &self.id.0, &self.key),
            size: self.size,
            content_hash,
        })
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
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
            match rnd(4) {
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
                    let off = rnd(320_000);
                    let got = w.read_at(off, 70_000).unwrap();
                    let start = (off as usize).min(model.len());
                    let end = (start + 70_000).min(model.len());
                    assert_eq!(got, &model[start..end], "step {step}");
                }
            }
            assert_eq!(w.len(), model.len() as u64);
        }
        let obj = w.commit(&s).unwrap();
        assert_eq!(read(&s, &obj), model);
        // the hash is the same as for an import of the same bytes
        assert_eq!(
            obj.content_hash,
            s.content_hash_of(&mut model.as_slice()).unwrap()
        );
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
