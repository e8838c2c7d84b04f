//! Objects in S3-compatible object storage (`--objects s3://BUCKET/PREFIX`), through the
//! `object_store` crate.
//!
//! The format is the same as on disk: one object per version, written once under a new random
//! id and never overwritten (a conditional `PutMode::Create`), so no reader can see an object
//! change under it. An object is sealed into a local file first (in the store's own
//! `objects/` folder, where the orphan sweep finds it if the writer dies) and uploaded whole
//! before the catalog records it. Reads fetch 1 MiB ranges and keep them, still encrypted, in
//! a bounded cache on this machine ([`super::block_cache`]).
//!
//! Endpoint, region and credentials come from the usual `AWS_*` variables (`AWS_ENDPOINT`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP` for a server on
//! loopback); none of them is written to the store. Requests are retried with exponential
//! back-off for at most [`RETRY_FOR`], so a bucket that is down becomes an error (EIO in the
//! mount) within seconds, not a read that hangs.

use super::block_cache::{self, BlockCache, BLOCK};
use crate::crypto::object::{ObjectId, ReadAt};
use crate::error::{Error, Result};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How long a request is retried before it fails.
pub const RETRY_FOR: Duration = Duration::from_secs(10);
/// Objects up to this size are uploaded in one request; larger ones in parts of this size.
const PART: usize = 16 << 20;
/// Parts of one object uploaded at once.
const UPLOADS_IN_FLIGHT: usize = 4;
/// A read that misses right after a block that is here or on its way (a sequential read)
/// fetches up to this many blocks at once, in parallel requests.
const READ_AHEAD: u64 = 8;

/// A bucket (and prefix) holding a store's objects.
pub struct Remote {
    /// `s3://BUCKET/PREFIX`, for messages.
    url: String,
    bucket: Arc<dyn ObjectStore>,
    prefix: String,
    cache: BlockCache,
    /// Sizes of objects opened before (objects never change): an object opened again opens
    /// without a request.
    sizes: std::sync::Mutex<std::collections::HashMap<ObjectId, u64>>,
    /// The last blocks used, in memory: a chunk is read as a few small reads (nonce, body,
    /// tag), and a block holds 16 chunks, so without this each would go back to the cache's
    /// file (or, with the cache off, to the bucket).
    hot: std::sync::Mutex<std::collections::VecDeque<HotBlock>>,
    /// Blocks being fetched now, and the signal that some landed.
    inflight: std::sync::Mutex<std::collections::HashSet<(ObjectId, u64)>>,
    landed: std::sync::Condvar,
}

/// A block kept in memory: (object, block number) and its bytes.
type HotBlock = ((ObjectId, u64), Arc<Vec<u8>>);

/// Blocks kept in memory (16 MiB at most).
const HOT: usize = 16;

/// At most this many sizes are remembered (about 4 MB); then the memo starts over.
const SIZES: usize = 100_000;

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({})", self.url)
    }
}

/// The runtime that drives the object store's requests. Made on first use, in the process that
/// uses it (the daemon's request threads call [`block_on`] from outside it).
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("consentfs-s3")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::invalid(format!("cannot start the object storage client: {e}")))
}

fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    Ok(runtime()?.block_on(f))
}

/// Whether an error of the object store means "no such object".
fn not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

impl Remote {
    /// Connect to `s3://bucket/prefix`; `cache_dir` is where its blocks are cached. Nothing is
    /// sent yet (the first request says whether the bucket is there).
    pub fn connect(bucket: &str, prefix: &str, cache_dir: &Path) -> Result<Remote> {
        let url = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        let retry = object_store::RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 5,
            retry_timeout: RETRY_FOR,
        };
        // (set key by key: `with_client_options` would drop AWS_ALLOW_HTTP and the like)
        use object_store::aws::AmazonS3ConfigKey as Key;
        use object_store::ClientConfigKey as Client;
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retry)
            .with_config(Key::Client(Client::ConnectTimeout), "3s")
            .with_config(Key::Client(Client::Timeout), "60s")
            .build()
            .map_err(|e| {
                Error::invalid(format!(
                    "cannot use the object storage {url}: {e} (set AWS_ENDPOINT, AWS_REGION and the credentials)"
                ))
            })?;
        Ok(Remote {
            url,
            bucket: Arc::new(s3),
            prefix: prefix.trim_matches('/').to_string(),
            cache: BlockCache::open(cache_dir, block_cache::limit_from_env()?)?,
            sizes: Default::default(),
            hot: Default::default(),
            inflight: Default::default(),
            landed: Default::default(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, id: &ObjectId) -> ObjectPath {
        let hex = id.hex();
        let name = format!("{}/{}", &hex[..2], &hex[2..]);
        if self.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.prefix))
        }
    }

    fn failed(&self, what: &str, id: Option<&ObjectId>, e: object_store::Error) -> Error {
        let which = id.map(|i| format!(" {i}")).unwrap_or_default();
        // the causes too: "HTTP error" alone does not say that the connection was refused
        let text = crate::error::with_causes(&e);
        Error::io(
            format!("cannot {what} object{which} in {}", self.url),
            std::io::Error::other(text),
        )
    }

    /// Upload the sealed object in `file` (`len` bytes) as object `id`. Refused if an object of
    /// that id exists (ids are random: it would mean a reused id, never to be overwritten).
    pub fn upload(&self, id: &ObjectId, file: &std::fs::File, len: u64) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let path = self.path(id);
        let read = |at: u64, n: usize| -> Result<Vec<u8>> {
            let mut buf = vec![0u8; n];
            FileExt::read_exact_at(file, &mut buf, at)
                .map_err(|e| Error::io(format!("cannot read the object {id} to upload it"), e))?;
            Ok(buf)
        };
        if len <= PART as u64 {
            let body = PutPayload::from(read(0, len as usize)?);
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            block_on(self.bucket.put_opts(&path, body, opts))?
                .map_err(|e| self.failed("upload", Some(id), e))?;
            return Ok(());
        }
        // Large objects go in parts, a few in flight at once; the id is new and random, so
        // nothing can be overwritten.
        block_on(async {
            let up = self.bucket.put_multipart(&path).await?;
            let mut w = object_store::WriteMultipart::new_with_chunk_size(up, PART);
            let mut at = 0u64;
            while at < len {
                let n = ((len - at) as usize).min(PART);
                let part = match read(at, n) {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = w.abort().await;
                        return Err(object_store::Error::Generic {
                            store: "local",
                            source: Box::new(e),
                        });
                    }
                };
                if let Err(e) = w.wait_for_capacity(UPLOADS_IN_FLIGHT).await {
                    let _ = w.abort().await;
                    return Err(e);
                }
                w.put(part.into());
                at += n as u64;
            }
            w.finish().await.map(|_| ())
        })?
        .map_err(|e| self.failed("upload", Some(id), e))
    }

    /// Open object `id` for reading; `None` if the bucket has no such object. One request at
    /// most: a GET of its first block, which brings the object's size along (no HEAD first).
    pub fn open(self: &Arc<Remote>, id: &ObjectId) -> Result<Option<RemoteReader>> {
        let path = self.path(id);
        let known = self
            .sizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .copied();
        if let Some(size) = known {
            return Ok(Some(RemoteReader {
                remote: self.clone(),
                id: *id,
                path,
                size,
            }));
        }
        let opts = object_store::GetOptions {
            range: Some(object_store::GetRange::Bounded(0..BLOCK)),
            ..Default::default()
        };
        let got = block_on(async {
            let r = self.bucket.get_opts(&path, opts).await?;
            let size = r.meta.size;
            let first = r.bytes().await?;
            Ok::<_, object_store::Error>((size, first))
        })?;
        let (size, first) = match got {
            Ok(got) => got,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(self.failed("open", Some(id), e)),
        };
        if first.len() as u64 == size.min(BLOCK) {
            self.cache.put(id, 0, &first);
        }
        {
            let mut sizes = self.sizes.lock().unwrap_or_else(|p| p.into_inner());
            if sizes.len() >= SIZES {
                sizes.clear();
            }
            sizes.insert(*id, size);
        }
        Ok(Some(RemoteReader {
            remote: self.clone(),
            id: *id,
            path,
            size,
        }))
    }

    /// Delete object `id` and its cached blocks; an object already gone is no error.
    pub fn delete(&self, id: &ObjectId) -> Result<bool> {
        self.cache.forget(id);
        self.hot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|((o, _), _)| o != id);
        self.sizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        match block_on(self.bucket.delete(&self.path(id)))? {
            Ok(()) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(self.failed("delete", Some(id), e)),
        }
    }

    /// Every object name under the prefix, as `ab/cdef…` (what the store's `objects/` folder
    /// would hold), with its size and when it was written.
    pub fn list(&self) -> Result<Vec<(String, u64, std::time::SystemTime)>> {
        use futures::TryStreamExt;
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let metas: Vec<object_store::ObjectMeta> =
            block_on(self.bucket.list(prefix.as_ref()).try_collect())?
                .map_err(|e| self.failed("list", None, e))?;
        let skip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.as_ref().get(skip..)?.to_string();
                Some((name, m.size, std::time::SystemTime::from(m.last_modified)))
            })
            .collect())
    }
}

/// Random-access reads of one object in the bucket, block by block through the cache.
pub struct RemoteReader {
    remote: Arc<Remote>,
    id: ObjectId,
    path: ObjectPath,
    size: u64,
}

impl Remote {
    fn hot_get(&self, id: &ObjectId, block: u64) -> Option<Arc<Vec<u8>>> {
        let mut hot = self.hot.lock().unwrap_or_else(|p| p.into_inner());
        let at = hot.iter().position(|(k, _)| *k == (*id, block))?;
        let entry = hot.remove(at)?;
        let bytes = entry.1.clone();
        hot.push_front(entry);
        Some(bytes)
    }

    fn hot_has(&self, id: &ObjectId, block: u64) -> bool {
        let hot = self.hot.lock().unwrap_or_else(|p| p.into_inner());
        hot.iter().any(|(k, _)| *k == (*id, block))
    }

    fn hot_put(&self, id: &ObjectId, block: u64, bytes: Arc<Vec<u8>>) {
        let mut hot = self.hot.lock().unwrap_or_else(|p| p.into_inner());
        hot.retain(|(k, _)| *k != (*id, block));
        hot.push_front(((*id, block), bytes));
        hot.truncate(HOT);
    }
}

impl RemoteReader {
    /// Block `index`: from memory, the cache's file, or the bucket (then kept in both). A
    /// block another thread is fetching is waited for, not fetched again: the mount reads one
    /// file on several threads at once.
    fn hot_block(&self, index: u64) -> std::io::Result<Arc<Vec<u8>>> {
        let remote = &self.remote;
        loop {
            if let Some(b) = remote.hot_get(&self.id, index) {
                return Ok(b);
            }
            if let Some(b) = remote.cache.get(&self.id, index) {
                let b = Arc::new(b);
                remote.hot_put(&self.id, index, b.clone());
                return Ok(b);
            }
            let mut inflight = remote.inflight.lock().unwrap_or_else(|p| p.into_inner());
            if inflight.contains(&(self.id, index)) {
                // (bounded: a fetch gives up within the retry time)
                let _ = remote
                    .landed
                    .wait_timeout(inflight, RETRY_FOR + Duration::from_secs(5))
                    .unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // this block, and after a block already here or on its way (a sequential read)
            // the next ones nobody has or fetches yet
            let blocks = self.size.div_ceil(BLOCK);
            let sequential = index > 0
                && (inflight.contains(&(self.id, index - 1))
                    || remote.hot_has(&self.id, index - 1)
                    || remote.cache.has(&self.id, index - 1));
            let mut last = index + 1;
            while sequential
                && last < (index + READ_AHEAD).min(blocks)
                && !inflight.contains(&(self.id, last))
                && !remote.hot_has(&self.id, last)
                && !remote.cache.has(&self.id, last)
            {
                last += 1;
            }
            for i in index..last {
                inflight.insert((self.id, i));
            }
            drop(inflight);
            let fetched = self.fetch(index, last);
            let mut inflight = remote.inflight.lock().unwrap_or_else(|p| p.into_inner());
            for i in index..last {
                inflight.remove(&(self.id, i));
            }
            drop(inflight);
            remote.landed.notify_all();
            return fetched;
        }
    }

    /// Fetch blocks `index..last` from the bucket in parallel requests, keep them in memory
    /// and in the cache; block `index`.
    fn fetch(&self, index: u64, last: u64) -> std::io::Result<Arc<Vec<u8>>> {
        let remote = &self.remote;
        log::debug!("object {}: fetching blocks {index}..{last}", self.id);
        let fetches = (index..last).map(|i| {
            let range = i * BLOCK..((i + 1) * BLOCK).min(self.size);
            async move { remote.bucket.get_range(&self.path, range).await }
        });
        let fetched = block_on(futures::future::try_join_all(fetches))
            .and_then(|r| r.map_err(|e| remote.failed("read", Some(&self.id), e)))
            .map_err(|e| {
                log::warn!("{e}");
                std::io::Error::other(e.to_string())
            })?;
        let mut first = None;
        for (i, bytes) in (index..last).zip(fetched) {
            let want = ((i + 1) * BLOCK).min(self.size) - i * BLOCK;
            if bytes.len() as u64 != want {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            remote.cache.put(&self.id, i, &bytes);
            let bytes = Arc::new(bytes.to_vec());
            remote.hot_put(&self.id, i, bytes.clone());
            if i == index {
                first = Some(bytes);
            }
        }
        first.ok_or_else(|| std::io::ErrorKind::UnexpectedEof.into())
    }
}

impl ReadAt for RemoteReader {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        if offset >= self.size {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.size - offset) as usize;
        let mut done = 0usize;
        while done < want {
            let at = offset + done as u64;
            let (index, within) = (at / BLOCK, (at % BLOCK) as usize);
            let block = self.hot_block(index)?;
            let n = (want - done).min(block.len().saturating_sub(within));
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf[done..done + n].copy_from_slice(&block[within..within + n]);
            done += n;
        }
        Ok(done)
    }

    fn size(&self) -> std::io::Result<u64> {
        Ok(self.size)
    }
}
