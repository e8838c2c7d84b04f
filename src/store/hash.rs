//! The keyed content hash that recognises the same bytes in two objects (duplicate imports, a
//! save that holds another photo's content), specified in contrib/FORMAT.md.
//!
//! It is HMAC-SHA256 over the plaintext, with one exception that keeps holes cheap: once the
//! bytes have held [`LITERAL_ZERO_CHUNKS`] chunks (64 KiB, aligned) of zeros, the rest is
//! hashed in a compact encoding in which a run of zero chunks is a count, not gigabytes of
//! zeros to feed through SHA-256 (8 GiB of zeros take seconds even with SHA extensions). The
//! hash stays a function of the bytes alone, so a sparse object and a dense import of the same
//! bytes hash alike, and for every file with fewer zero chunks (every photo) it is exactly the
//! HMAC over the plaintext that earlier versions recorded.

use crate::crypto::object::{is_zero, CHUNK_PLAIN};
use crate::crypto::sha::{HmacSha256, Sha256};
use crate::crypto::Key;
use hmac::digest::Digest;
use hmac::Mac;

/// How many zero chunks are hashed as they are (64 MiB of zeros) before the compact encoding.
pub const LITERAL_ZERO_CHUNKS: u64 = 1024;

static ZEROS: [u8; CHUNK_PLAIN as usize] = [0u8; CHUNK_PLAIN as usize];

pub struct ContentHasher {
    mac: HmacSha256,
    /// Bytes hashed so far.
    pos: u64,
    /// The chunk being hashed is all zeros so far.
    zero_so_far: bool,
    /// Zero chunks seen while hashing literally.
    zero_chunks: u64,
    /// Past the literal part: chunks are hashed as SHA-256 digests and runs of zero chunks.
    compact: bool,
    /// Compact mode: the digest of the chunk being hashed.
    chunk: Sha256,
    /// Compact mode: zero chunks not yet written to the MAC.
    run: u64,
}

impl ContentHasher {
    pub fn new(key: &Key) -> ContentHasher {
        ContentHasher {
            mac: key.fast_mac_state(),
            pos: 0,
            zero_so_far: true,
            zero_chunks: 0,
            compact: false,
            chunk: Sha256::new(),
            run: 0,
        }
    }

    /// Hash the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.feed(data, false);
    }

    /// Hash `n` zero bytes; runs of whole zero chunks cost nothing in compact mode.
    pub fn zeros(&mut self, mut n: u64) {
        while n > 0 {
            let within = self.pos % CHUNK_PLAIN;
            if self.compact && within == 0 && n >= CHUNK_PLAIN {
                let whole = n / CHUNK_PLAIN;
                self.run += whole;
                self.pos += whole * CHUNK_PLAIN;
                n -= whole * CHUNK_PLAIN;
                continue;
            }
            let take = n.min(CHUNK_PLAIN - within);
            self.feed(&ZEROS[..take as usize], true);
            n -= take;
        }
    }

    fn feed(&mut self, mut data: &[u8], known_zero: bool) {
        while !data.is_empty() {
            let within = (self.pos % CHUNK_PLAIN) as usize;
            let take = data.len().min(CHUNK_PLAIN as usize - within);
            let piece = &data[..take];
            if self.zero_so_far && !known_zero {
                self.zero_so_far = is_zero(piece);
            }
            if self.compact {
                self.chunk.update(piece);
            } else {
                self.mac.update(piece);
            }
            self.pos += take as u64;
            data = &data[take..];
            if self.pos.is_multiple_of(CHUNK_PLAIN) {
                self.end_chunk();
            }
        }
    }

    fn end_chunk(&mut self) {
        if self.compact {
            let digest = std::mem::take(&mut self.chunk).finalize();
            if self.zero_so_far {
                self.run += 1;
            } else {
                self.flush_run();
                self.mac.update(&[1]);
                self.mac.update(&digest);
            }
        } else if self.zero_so_far {
            self.zero_chunks += 1;
            if self.zero_chunks == LITERAL_ZERO_CHUNKS {
                self.compact = true;
            }
        }
        self.zero_so_far = true;
    }

    fn flush_run(&mut self) {
        if self.run > 0 {
            self.mac.update(&[0]);
            self.mac.update(&self.run.to_be_bytes());
            self.run = 0;
        }
    }

    pub fn finalize(mut self) -> [u8; 32] {
        if self.compact {
            if !self.pos.is_multiple_of(CHUNK_PLAIN) {
                self.end_chunk();
            }
            self.flush_run();
            self.mac.update(&[0xff]);
            self.mac.update(&self.pos.to_be_bytes());
        }
        self.mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_in_pieces(key: &Key, data: &[u8], piece: usize) -> [u8; 32] {
        let mut h = ContentHasher::new(key);
        for p in data.chunks(piece.max(1)) {
            h.update(p);
        }
        h.finalize()
    }

    #[test]
    fn is_the_plain_hmac_for_ordinary_bytes() {
        let key = Key::random();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut plain = key.mac_state();
        plain.update(&data);
        let want: [u8; 32] = plain.finalize().into_bytes().into();
        assert_eq!(hash_in_pieces(&key, &data, 7000), want);
        // a few zero chunks do not change that either
        let mut z = data.clone();
        z.extend_from_slice(&vec![0u8; 5 * CHUNK_PLAIN as usize]);
        z.extend_from_slice(b"end");
        let mut plain = key.mac_state();
        plain.update(&z);
        let want: [u8; 32] = plain.finalize().into_bytes().into();
        assert_eq!(hash_in_pieces(&key, &z, 65536), want);
    }

    #[test]
    fn zeros_and_written_zeros_hash_alike_past_the_literal_part() {
        let key = Key::random();
        let c = CHUNK_PLAIN as usize;
        // data, many zero chunks, data, zeros ending in a partial chunk
        let zeros_a = (LITERAL_ZERO_CHUNKS as usize + 7) * c + 123;
        let mut bytes = b"start".to_vec();
        bytes.resize(bytes.len() + zeros_a, 0);
        bytes.extend_from_slice(&[9u8; 70_000]);
        bytes.resize(bytes.len() + 3 * c + 5, 0);
        let dense = hash_in_pieces(&key, &bytes, 100_000);
        let mut h = ContentHasher::new(&key);
        h.update(b"start");
        h.zeros(zeros_a as u64);
        h.update(&[9u8; 70_000]);
        h.zeros(3 * c as u64 + 5);
        assert_eq!(h.finalize(), dense);
        // and it still tells different bytes apart: a zero byte more, one byte changed
        let mut longer = bytes.clone();
        longer.push(0);
        assert_ne!(hash_in_pieces(&key, &longer, 65536), dense);
        let mut changed = bytes.clone();
        changed[5 + zeros_a + 10] = 8;
        assert_ne!(hash_in_pieces(&key, &changed, 65536), dense);
        let mut late = bytes.clone();
        *late.last_mut().unwrap() = 1;
        assert_ne!(hash_in_pieces(&key, &late, 65536), dense);
    }
}
