//! A bounded cache of decrypted chunks, shared by all open files.
//!
//! The kernel's page cache absorbs most repeated reads, but requests that are not chunk-aligned
//! (4 KiB reads by an editor, readahead windows that split a chunk) would otherwise decrypt the
//! same 64 KiB chunk several times. Plaintext stays in memory only, and is zeroized on eviction.
//! Eviction is first-in-first-out, which is as good as LRU for the sequential patterns that fill
//! it and needs no bookkeeping on hits.

use crate::crypto::object::ObjectId;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

pub type Chunk = Arc<Zeroizing<Vec<u8>>>;

pub struct ChunkCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Default)]
struct Inner {
    map: HashMap<(ObjectId, u64), Chunk>,
    order: VecDeque<(ObjectId, u64)>,
}

impl ChunkCache {
    pub fn new(capacity: usize) -> ChunkCache {
        ChunkCache {
            inner: Mutex::new(Inner::default()),
            capacity,
        }
    }

    pub fn get(&self, object: &ObjectId, index: u64) -> Option<Chunk> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.map.get(&(*object, index)).cloned()
    }

    pub fn put(&self, object: ObjectId, index: u64, chunk: Chunk) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.map.insert((object, index), chunk).is_none() {
            inner.order.push_back((object, index));
        }
        while inner.order.len() > self.capacity {
            if let Some(old) = inner.order.pop_front() {
                inner.map.remove(&old);
            }
        }
    }

    /// Drop every chunk of an object (its asset became invisible or was replaced).
    pub fn forget_object(&self, object: &ObjectId) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.map.retain(|(o, _), _| o != object);
        inner.order.retain(|(o, _)| o != object);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_most_capacity_chunks() {
        let c = ChunkCache::new(2);
        let id = ObjectId::random();
        for i in 0..5 {
            c.put(id, i, Arc::new(Zeroizing::new(vec![i as u8])));
        }
        assert!(c.get(&id, 0).is_none());
        assert!(c.get(&id, 2).is_none());
        assert_eq!(c.get(&id, 4).unwrap()[0], 4);
        c.forget_object(&id);
        assert!(c.get(&id, 4).is_none());
    }
}
