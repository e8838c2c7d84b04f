//! A bounded cache, on this machine, of blocks of objects kept in remote object storage.
//!
//! What it holds is ciphertext exactly as the bucket holds it: a block is 1 MiB of an object's
//! bytes (sealed chunks, their nonces and tags). Nothing in it is readable without the data key
//! the catalog wraps, and every chunk read out of it is still authenticated when it is opened,
//! so a damaged or planted block is an integrity error, never wrong data. Objects are written
//! once and never change, so a cached block never goes stale; when an object is shredded its
//! blocks are removed with it ([`BlockCache::forget`]).
//!
//! One file per block (`<object id>.<block number>`, mode 0600, written to a `.tmp` and renamed
//! so a crash leaves a whole block or none), in a private directory. The least recently used
//! blocks are removed once the total passes the limit. The index lives in memory and is rebuilt
//! from the directory (oldest first by modification time) when the store is opened.

use crate::crypto::object::ObjectId;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Bytes per cached block: one request to the bucket fetches this much (about 16 chunks), so
/// a sequential read costs one round trip per MiB.
pub const BLOCK: u64 = 1 << 20;
/// The default limit of the cache (`CONSENTFS_OBJECT_CACHE_MIB`).
pub const DEFAULT_LIMIT_MIB: u64 = 1024;
/// The largest limit accepted (1 TiB): a bigger number is a typo, not a disk.
pub const MAX_LIMIT_MIB: u64 = 1 << 20;

pub struct BlockCache {
    dir: PathBuf,
    limit: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// (object, block) → (bytes, last use)
    entries: HashMap<(ObjectId, u64), (u64, u64)>,
    total: u64,
    tick: u64,
}

/// The cache's limit in bytes from `CONSENTFS_OBJECT_CACHE_MIB` (0 turns it off).
pub fn limit_from_env() -> Result<u64> {
    match std::env::var("CONSENTFS_OBJECT_CACHE_MIB") {
        Err(_) => Ok(DEFAULT_LIMIT_MIB * BLOCK),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n <= MAX_LIMIT_MIB => Ok(n * BLOCK),
            _ => Err(Error::invalid(format!(
                "CONSENTFS_OBJECT_CACHE_MIB={v:?} is not a number of MiB from 0 to {MAX_LIMIT_MIB}"
            ))),
        },
    }
}

impl BlockCache {
    /// Open (or create, 0700) the cache in `dir`, holding at most `limit` bytes.
    pub fn open(dir: &Path, limit: u64) -> Result<BlockCache> {
        super::private::create_dir_all(dir)?;
        let mut found = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| Error::io_path("read", dir, e))? {
            let e = e.map_err(|e| Error::io_path("read", dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = match e.metadata() {
                Ok(m) if m.is_file() => m,
                _ => continue,
            };
            match parse_name(&name) {
                Some(key) => found.push((meta.modified().ok(), key, meta.len())),
                // an interrupted write, or something that is not ours to keep
                None => {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        found.sort_by_key(|(when, _, _)| *when);
        let cache = BlockCache {
            dir: dir.to_path_buf(),
            limit,
            state: Mutex::new(State::default()),
        };
        {
            let mut s = cache.lock();
            for (_, key, len) in found {
                s.tick += 1;
                let tick = s.tick;
                s.entries.insert(key, (len, tick));
                s.total += len;
            }
            cache.evict(&mut s);
        }
        Ok(cache)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self, id: &ObjectId, block: u64) -> PathBuf {
        self.dir.join(format!("{}.{block}", id.hex()))
    }

    /// The cached bytes of `block` of object `id`, if they are here.
    pub fn get(&self, id: &ObjectId, block: u64) -> Option<Vec<u8>> {
        let len = self.touch(id, block)?;
        let mut buf = vec![0u8; len as usize];
        self.read_at(id, block, 0, &mut buf).then_some(buf)
    }

    /// Whether `block` of object `id` is cached (without marking it used).
    pub fn has(&self, id: &ObjectId, block: u64) -> bool {
        self.lock().entries.contains_key(&(*id, block))
    }

    /// Mark the block used now; its length if it is cached.
    fn touch(&self, id: &ObjectId, block: u64) -> Option<u64> {
        let mut s = self.lock();
        s.tick += 1;
        let tick = s.tick;
        let e = s.entries.get_mut(&(*id, block))?;
        e.1 = tick;
        Some(e.0)
    }

    fn read_at(&self, id: &ObjectId, block: u64, within: u64, buf: &mut [u8]) -> bool {
        use std::os::unix::fs::FileExt;
        let read =
            std::fs::File::open(self.path(id, block)).and_then(|f| f.read_exact_at(buf, within));
        match read {
            Ok(()) => true,
            Err(e) => {
                log::debug!("a cached block of an object cannot be read ({e}); fetching it again");
                self.drop_entry(id, block);
                false
            }
        }
    }

    /// Keep `bytes` as `block` of object `id` (best effort: a full disk only costs a refetch).
    pub fn put(&self, id: &ObjectId, block: u64, bytes: &[u8]) {
        let len = bytes.len() as u64;
        if self.limit == 0 || len > self.limit {
            return;
        }
        let path = self.path(id, block);
        let tmp = self.dir.join(format!(
            "{}.{block}.{}.tmp",
            id.hex(),
            rand::random::<u64>()
        ));
        let written = (|| -> Result<()> {
            use std::io::Write;
            let mut f = super::private::create_file(&tmp, false)?;
            f.write_all(bytes)
                .map_err(|e| Error::io_path("write", &tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::io_path("rename", &path, e))
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            log::debug!("a block of an object was not cached: {e}");
            return;
        }
        let mut s = self.lock();
        s.tick += 1;
        let tick = s.tick;
        if let Some((old, _)) = s.entries.insert((*id, block), (len, tick)) {
            s.total -= old;
        }
        s.total += len;
        self.evict(&mut s);
    }

    /// Remove every cached block of object `id` (it was shredded).
    pub fn forget(&self, id: &ObjectId) {
        let blocks: Vec<u64> = {
            let s = self.lock();
            s.entries
                .keys()
                .filter(|(o, _)| o == id)
                .map(|(_, b)| *b)
                .collect()
        };
        for b in blocks {
            self.drop_entry(id, b);
        }
    }

    fn drop_entry(&self, id: &ObjectId, block: u64) {
        let mut s = self.lock();
        if let Some((len, _)) = s.entries.remove(&(*id, block)) {
            s.total -= len;
        }
        let _ = std::fs::remove_file(self.path(id, block));
    }

    /// Remove the least recently used blocks until the total is within the limit.
    fn evict(&self, s: &mut State) {
        while s.total > self.limit {
            let Some((&key, &(len, _))) = s.entries.iter().min_by_key(|(_, (_, tick))| *tick)
            else {
                break;
            };
            s.entries.remove(&key);
            s.total -= len;
            let _ = std::fs::remove_file(self.path(&key.0, key.1));
        }
    }

    /// Bytes held now.
    pub fn total(&self) -> u64 {
        self.lock().total
    }
}

/// `<32 hex digits>.<block>` → the key; anything else (a `.tmp`, a stray file) → `None`.
fn parse_name(name: &str) -> Option<(ObjectId, u64)> {
    let (id, block) = name.split_once('.')?;
    Some((ObjectId::parse(id)?, block.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache never holds more than its limit, drops the least recently used block first,
    /// survives a reopen, and forgets a shredded object's blocks on disk too.
    #[test]
    fn bounded_least_recently_used_and_forgetful() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("cache");
        let c = BlockCache::open(&dir, 3000).unwrap();
        let (a, b) = (ObjectId::random(), ObjectId::random());
        c.put(&a, 0, &[1u8; 1000]);
        c.put(&a, 1, &[2u8; 1000]);
        c.put(&b, 0, &[3u8; 1000]);
        assert_eq!(c.get(&a, 0).unwrap(), vec![1u8; 1000]); // a/0 is now the newest
        c.put(&b, 1, &[4u8; 1000]); // over the limit: a/1, the least recently used, goes
        assert!(c.get(&a, 1).is_none());
        assert_eq!(c.total(), 3000);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
        drop(c);
        let c = BlockCache::open(&dir, 3000).unwrap();
        assert_eq!(c.get(&b, 1).unwrap(), vec![4u8; 1000]);
        c.forget(&b);
        assert!(c.get(&b, 0).is_none() && c.get(&b, 1).is_none());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        // a smaller limit at the next open trims what is there
        drop(c);
        let c = BlockCache::open(&dir, 0).unwrap();
        assert_eq!(c.total(), 0);
        c.put(&a, 5, &[9u8; 10]);
        assert!(c.get(&a, 5).is_none(), "a limit of 0 caches nothing");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
