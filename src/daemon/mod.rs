//! The mount's lifecycle: checks before mounting, the FUSE session, the watcher that follows the
//! catalog and the clock, and a clean unmount on SIGINT / SIGTERM.
//!
//! The watcher polls SQLite's `data_version` (a counter in shared memory that changes when
//! another connection commits; reading it costs no I/O) every few milliseconds, so a CLI change
//! reaches the view well within 100 ms. Between polls it sleeps until the view's next
//! transition at the latest, so expiries fire on time without scanning anything.

mod analyse;
pub mod control;
pub mod follow;

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::fuse::{run_invalidator, FuseFs};
use crate::mountinfo;
use crate::store::Store;
use crate::vfs::{Accounts, Batch, OsAccounts, Vfs};
use crate::view::View;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How often the watcher looks for changes committed by other processes.
const POLL: Duration = Duration::from_millis(5);

/// How often the main thread looks whether the inode table grew or shrank a lot. Often: a
/// `find` over a million photos grows it by 20,000 entries every 80 ms, and the heap it frees
/// on the way (the tables it outgrew) stays resident until the next look. Looking every 2 s
/// left 295–301 MiB resident right after that `find` (289 after the next look); every 250 ms,
/// 289–293 MiB, and the `find` took as long (1.8–2.3 s either way, on a noisy 2-core VM).
const TRIM_EVERY: Duration = Duration::from_millis(250);
/// What counts as a lot: a `find` over a large view.
const TRIM_AFTER: usize = 20_000;

/// After the inode table grew or shrank by [`TRIM_AFTER`] entries since `last`, give the freed
/// heap back to the system: a hash table that doubles leaves its old, smaller tables free
/// but resident (after a `find` over a view of 446,000 photos, about as much again as the
/// table itself). Returns the count the next check compares with.
fn give_back_memory(now: usize, last: usize) -> usize {
    if now.abs_diff(last) < TRIM_AFTER {
        return last;
    }
    // SAFETY: malloc_trim only releases free heap pages; it touches no live allocation
    unsafe {
        libc::malloc_trim(0);
    }
    now
}

pub struct MountOptions {
    pub mountpoint: PathBuf,
    /// FUSE worker threads.
    pub threads: usize,
    /// Called once the mount serves requests (the demo prints its tour).
    pub on_ready: Option<Box<dyn FnOnce() + Send>>,
    /// The rollback anchor every commit of the daemon moves forward (checked by the caller).
    pub anchor: Option<crate::catalog::anchor::Anchor>,
    /// Where to listen for commands from people without the key, and what runs them (the
    /// command line's code, given by the caller: the daemon does not know the commands).
    pub control: Option<(PathBuf, Arc<Runner>)>,
    /// A team library's lease: how long the mount serves without reaching the library.
    pub lease: Duration,
}

/// What the daemon lends a command run through its control socket: its index, and a way to
/// bring that up to date with the catalog first.
pub struct Served {
    pub view: Arc<RwLock<View>>,
    /// Wait until the index shows every change committed before the call and the mount is
    /// serving; false if not within a few seconds (then nothing may be answered from it).
    pub catch_up: Box<dyn Fn() -> bool + Send + Sync>,
}

/// What runs a command arriving on the control socket (the command line's side).
pub type Runner = dyn Fn(control::Peer, control::Request, &Served) -> control::Reply + Send + Sync;

/// The watcher's rounds, counted, so that a command run through the control socket (or a
/// command with the key asking over it) returns only once the mount shows its change.
#[derive(Default)]
pub struct Rounds {
    started: std::sync::atomic::AtomicU64,
    finished: std::sync::atomic::AtomicU64,
}

impl Rounds {
    fn start(&self) -> u64 {
        self.started.fetch_add(1, Ordering::AcqRel) + 1
    }

    fn finish(&self, n: u64) {
        self.finished.fetch_max(n, Ordering::AcqRel);
    }

    /// Wait until a round that began after this call has finished; false after `limit`.
    fn wait_next(&self, limit: Duration) -> bool {
        let target = self.started.load(Ordering::Acquire) + 1;
        let began = Instant::now();
        while self.finished.load(Ordering::Acquire) < target {
            if began.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }
}

/// After a change to the catalog: return once the watcher has read it into the view and the
/// kernel has been told to forget what it no longer may show (the invalidator works off its
/// queue in order, so an empty batch answered means every earlier one is done).
fn wait_applied(rounds: &Rounds, out: &Sender<Batch>, limit: Duration) -> bool {
    if !rounds.wait_next(limit) {
        return false;
    }
    let (done, wait) = std::sync::mpsc::sync_channel(1);
    if out
        .send(Batch {
            items: Vec::new(),
            done: Some(done),
            fill: None,
        })
        .is_err()
    {
        return false;
    }
    wait.recv_timeout(limit).is_ok()
}

/// The time a change may take to reach the mount before the command says so.
const APPLY_WITHIN: Duration = Duration::from_secs(2);

/// Refuse clearly, before mounting, what would fail or surprise later.
pub fn preflight(mountpoint: &Path) -> Result<()> {
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        return Err(Error::invalid(format!(
            "/dev/fuse is not available ({e}); load the fuse module (modprobe fuse) or, in a container, pass --device /dev/fuse"
        )));
    }
    let shown = mountpoint.display();
    match std::fs::metadata(mountpoint) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(stale(&shown.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::invalid(format!(
                "mountpoint {shown} does not exist; create it with: mkdir -p {shown}"
            )));
        }
        Err(e) => return Err(Error::io_path("check mountpoint", mountpoint, e)),
        Ok(m) if !m.is_dir() => {
            return Err(Error::invalid(format!(
                "mountpoint {shown} is not a directory"
            )));
        }
        Ok(_) => {}
    }
    if is_mountpoint(mountpoint)? {
        // A dead daemon's mount may still answer stat from the kernel's attribute cache, but
        // opening the folder has to reach the daemon.
        if std::fs::read_dir(mountpoint)
            .err()
            .and_then(|e| e.raw_os_error())
            == Some(libc::ENOTCONN)
        {
            return Err(stale(&shown.to_string()));
        }
        return Err(Error::invalid(format!(
            "{shown} is busy: something is already mounted there; unmount it first: fusermount3 -u {shown}"
        )));
    }
    let mut entries =
        std::fs::read_dir(mountpoint).map_err(|e| Error::io_path("read", mountpoint, e))?;
    if entries.next().is_some() {
        return Err(Error::invalid(format!(
            "mountpoint {shown} is not empty; mount on an empty directory"
        )));
    }
    Ok(())
}

fn stale(shown: &str) -> Error {
    Error::invalid(format!(
        "{shown} is a stale mount of a consentfs that is no longer running; clear it with: fusermount3 -u {shown} (or umount -l {shown})"
    ))
}

/// Tell systemd how the service is doing (`Type=notify` units: READY once the mount answers,
/// STOPPING when it goes). Outside systemd (`NOTIFY_SOCKET` unset) this does nothing.
fn notify_service(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(false, state) {
        log::warn!("cannot notify systemd: {e}");
    }
}

/// Whether `path` is the root of a mounted filesystem (per /proc/self/mountinfo).
fn is_mountpoint(path: &Path) -> Result<bool> {
    let canon = std::fs::canonicalize(path).map_err(|e| Error::io_path("resolve", path, e))?;
    Ok(mountinfo::mounts().iter().any(|m| m.point == canon))
}

/// The mount's readahead in KiB (see [`raise_readahead`]).
pub const READAHEAD_KB: &str = "4096";

/// Let the kernel read ahead 4 MiB instead of 128 KiB: each read request then spans 16 chunks
/// (1 MiB, the most FUSE sends at once), and four of them are in flight, so the worker threads
/// decrypt on every core while the reader copies. 1 MiB left one request in flight most of the
/// time: a cold `dd` read at 1.1-1.2 GB/s with 12 % of the machine idle, 1.4-1.6 GB/s with
/// 4 MiB. FUSE caps readahead at what the kernel offers at init, but root may raise the mount's
/// backing-device setting afterwards.
///
/// The device number comes from the mount table, not from a stat of the mountpoint: a stat
/// is a request to this daemon, and a daemon killed while its main thread waits for its own
/// answer hangs forever in the kernel (nothing is left to answer, and its own descriptor keeps
/// the connection open). Only the parent folder is resolved, for the same reason.
fn raise_readahead(mountpoint: &Path) {
    let parent = match mountpoint.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let (Ok(parent), Some(name)) = (std::fs::canonicalize(parent), mountpoint.file_name()) else {
        return;
    };
    let point = parent.join(name);
    let Some(dev) = mountinfo::mounts()
        .into_iter()
        .rev()
        .find(|m| m.point == point)
        .map(|m| m.dev)
    else {
        return;
    };
    let path = format!("/sys/class/bdi/{dev}/read_ahead_kb");
    if let Err(e) = std::fs::write(&path, READAHEAD_KB) {
        log::debug!("cannot raise readahead ({path}): {e}");
    }
}

/// Before serving: remove objects left by a crash (unfinished or never recorded), purge what
/// has been in the trash for 30 days (crypto-shredding; consent history and audit stay) and
/// thin old versions per the version policy (`crate::thinning`).
/// How old an unrecorded object in a team library's shared objects must be before a mount
/// removes it (see `housekeeping`).
const TEAM_ORPHAN_AGE: Duration = Duration::from_secs(24 * 3600);

fn housekeeping(store: &Store, catalog: &mut Catalog, queued: &[String]) -> Result<()> {
    let actor = "consentfs-daemon";
    let now = chrono::Utc::now();
    let t = Instant::now();
    // objects of commands that died before they recorded them (their intents journals)
    let reaped = crate::store::intents::reap(store, catalog.conn()).unwrap_or_else(|e| {
        log::warn!("cannot remove the objects of an interrupted command yet: {e}");
        0
    });
    // then every other object nobody will record: left by an interrupted save of a daemon, or
    // by a crash before journals existed; never one a running command announced
    // A team library's objects are shared: a command on another machine may be writing one
    // it has not recorded yet, which this copy cannot know of (its journal is there). Only
    // files older than a day are taken there.
    let min_age = catalog.is_team().then_some(TEAM_ORPHAN_AGE);
    let removed = store.collect_orphans(
        || {
            // the write lock, taken only for this read: a command that writes an object inside
            // its transaction has recorded or removed it by then
            let tx = catalog.begin(actor, now)?;
            let mut known = crate::catalog::assets::known_objects(&tx)?;
            // saves queued while the catalog was busy are recorded after this clean-up
            known.extend(queued.iter().cloned());
            Ok(known)
        },
        min_age,
    )?;
    if removed + reaped > 0 {
        let tx = catalog.begin(actor, now)?;
        tx.audit(
            "store.gc",
            serde_json::json!({ "orphans_removed": removed + reaped }),
        )?;
        tx.commit()?;
        log::info!(
            "removed {} orphaned object file(s) left by an interrupted save or import",
            removed + reaped
        );
    }
    log::debug!("housekeeping: orphans {} ms", t.elapsed().as_millis());
    let shredded = crate::shred::work_off(store, catalog, actor)?;
    if shredded > 0 {
        log::info!("removed {shredded} file(s) of objects shredded by an interrupted command");
    }
    let purged =
        crate::shred::purge_trash(store, catalog, actor, now, now - chrono::Duration::days(30))?;
    if purged > 0 {
        log::info!("purged {purged} asset(s) that were in the trash for 30 days");
    }
    log::debug!("housekeeping: shred+purge {} ms", t.elapsed().as_millis());
    Ok(())
}

/// Thin old versions per the version policy, in the background: over a million assets this
/// reads every version, and it changes nothing anyone sees (the watcher applies it like any
/// command's change). A policy that cannot be read must not stop the mount. The connection is
/// opened here and kept by the caller until the daemon ends, so the daemon's descriptors do not
/// change under a user once the mount answers.
fn thin_in_background(store: Arc<Store>) -> Result<Arc<Mutex<Catalog>>> {
    let catalog = Arc::new(Mutex::new(Catalog::open(
        &store.catalog_path(),
        &store.catalog_key(),
        store.audit_key(),
    )?));
    let mine = catalog.clone();
    let spawned = std::thread::Builder::new()
        .name("thinning".into())
        .spawn(move || {
            let mut catalog = mine.lock().unwrap_or_else(|p| p.into_inner());
            let now = chrono::Utc::now();
            match crate::thinning::run(&store, &mut catalog, "consentfs-daemon", now, false, false)
            {
                Ok(r) if r.versions_thinned > 0 => log::info!(
                    "thinned {} old version(s) of {} asset(s) per the version policy",
                    r.versions_thinned,
                    r.assets.len()
                ),
                Ok(_) => {}
                Err(e) => log::warn!("old versions were not thinned: {e}"),
            }
        });
    if let Err(e) = spawned {
        log::warn!("old versions were not thinned: cannot start a thread: {e}");
    }
    Ok(catalog)
}

/// How often a mount removes the files of superseded objects whose grace has passed.
const REMOVAL_EVERY: Duration = Duration::from_secs(60);

/// Remove, once a minute, the files of objects whose removal is due (superseded objects
/// wait [`crate::catalog::assets::SUPERSEDED_GRACE`] for the readers that still hold them):
/// a designer saving a large file all afternoon does not fill the disk until the next
/// command. Uses the background connection; ends with the daemon (when that is dropped).
fn remove_superseded_in_background(store: Arc<Store>, catalog: &Arc<Mutex<Catalog>>) {
    let catalog = Arc::downgrade(catalog);
    let spawned = std::thread::Builder::new()
        .name("removal".into())
        .spawn(move || loop {
            std::thread::sleep(REMOVAL_EVERY);
            let Some(catalog) = catalog.upgrade() else {
                return;
            };
            let mut catalog = catalog.lock().unwrap_or_else(|p| p.into_inner());
            match crate::shred::work_off(&store, &mut catalog, "consentfs-daemon") {
                Ok(0) => {}
                Ok(n) => log::debug!("removed {n} file(s) of superseded or shredded objects"),
                Err(e) => log::warn!("cannot remove the files of shredded objects yet: {e}"),
            }
        });
    if let Err(e) = spawned {
        log::warn!("superseded objects are removed only by commands: cannot start a thread: {e}");
    }
}

/// Have the invalidator drop the cached pages of these assets' files (all files: `None`) and
/// wait until it did (at most a second). Called by the watcher with no lock held.
fn flush_pages(vfs: &Vfs, out: &Sender<Batch>, assets: Option<&[crate::policy::AssetId]>) {
    let items = vfs.pages_of(assets);
    if items.is_empty() {
        return;
    }
    let (done, wait) = std::sync::mpsc::sync_channel(1);
    if out
        .send(Batch {
            items,
            done: Some(done),
            fill: None,
        })
        .is_ok()
    {
        let _ = wait.recv_timeout(Duration::from_secs(1));
    }
}

/// The watcher: keep the view in step with the catalog and the clock, and hand the resulting
/// invalidations to the invalidator thread. After every complete round it beats the vfs's
/// heartbeat; a round that fails leaves the heartbeat silent (the mount stops serving after
/// `live::STALE_AFTER`), and a panic stops the mount from serving for good: a view that may
/// have missed a withdrawal is never served (fail closed).
fn watch(
    view: Arc<RwLock<View>>,
    vfs: Arc<Vfs>,
    catalog: Catalog,
    out: Sender<Batch>,
    stop: Arc<AtomicBool>,
    rounds: Arc<Rounds>,
) {
    let conn = catalog.conn();
    let mut w = Watcher {
        last_version: crate::catalog::maintenance::data_version(conn).unwrap_or(0),
        last_error: None,
        fault: Fault::from_env(),
    };
    vfs.live.require_heartbeat();
    // the log this daemon's connections write to; deleted under it, the daemon and the
    // commands no longer see each other's changes: stop serving (issue 12, 7)
    let wal = crate::catalog::wal::Watch::new(catalog.path());
    while !stop.load(Ordering::Relaxed) {
        if let Some(why) = wal.problem() {
            vfs.live.fail(&why);
            flush_pages(&vfs, &out, None);
            return;
        }
        let n = rounds.start();
        let round = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            w.round(&view, &vfs, conn, &out)
        }));
        let nap = match round {
            Ok(Ok(nap)) => {
                vfs.live.beat();
                rounds.finish(n);
                nap
            }
            Ok(Err(RoundError::InvalidatorGone)) => {
                if !stop.load(Ordering::Relaxed) {
                    vfs.live
                        .fail("the invalidator thread is gone: kernel caches cannot be dropped");
                }
                return;
            }
            Ok(Err(RoundError::Catalog(e))) => {
                if w.last_error
                    .is_none_or(|t| t.elapsed() > Duration::from_secs(10))
                {
                    log::warn!("cannot read catalog changes: {e}");
                    w.last_error = Some(Instant::now());
                }
                POLL
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                vfs.live
                    .fail(&format!("the watcher thread panicked ({what})"));
                // nothing may be served from the page cache either
                flush_pages(&vfs, &out, None);
                return;
            }
        };
        std::thread::sleep(nap);
    }
}

enum RoundError {
    /// The catalog could not be read (busy, corrupt, gone): try again, silent heartbeat.
    Catalog(Error),
    InvalidatorGone,
}

struct Watcher {
    last_version: i64,
    last_error: Option<Instant>,
    fault: Fault,
}

/// Fault injection for the tests that prove the mount fails closed: with
/// `CONSENTFS_FAULT=watcher-panic` (or `watcher-hang`) in the daemon's environment the watcher
/// panics (or stops) at the first catalog change that changes the view, once the view has it;
/// `watcher-stall` stops it at the first catalog change before the view has it (the index
/// stays behind the catalog). Only ever makes the mount refuse more, so it cannot weaken
/// anything.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    Panic,
    Hang,
    Stall,
}

impl Fault {
    fn from_env() -> Fault {
        match std::env::var("CONSENTFS_FAULT").as_deref() {
            Ok("watcher-panic") => Fault::Panic,
            Ok("watcher-hang") => Fault::Hang,
            Ok("watcher-stall") => Fault::Stall,
            _ => Fault::None,
        }
    }
    fn strike(self) {
        match self {
            Fault::None | Fault::Stall => {}
            Fault::Panic => panic!("fault injected: watcher-panic"),
            Fault::Hang => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
        }
    }
}

impl Watcher {
    /// One round: pick up committed catalog changes and reached time boundaries, push the
    /// invalidations. Returns how long to sleep before the next round.
    fn round(
        &mut self,
        view: &RwLock<View>,
        vfs: &Vfs,
        conn: &rusqlite::Connection,
        out: &Sender<Batch>,
    ) -> std::result::Result<Duration, RoundError> {
        let now = chrono::Utc::now();
        let mut changes = Vec::new();
        let v = crate::catalog::maintenance::data_version(conn).map_err(RoundError::Catalog)?;
        if v != self.last_version {
            if self.fault == Fault::Stall {
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            let t0 = Instant::now();
            // drop the pages of what may change before the change becomes visible
            let touched = view
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .touched_since(conn);
            if let Ok(assets) = touched {
                flush_pages(vfs, out, assets.as_deref());
            }
            let flushed = t0.elapsed();
            let c = view
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .refresh(conn, now)
                .map_err(RoundError::Catalog)?;
            self.last_version = v;
            self.last_error = None;
            log::debug!(
                "catalog change: pages flushed in {} us, view refreshed in {} us",
                flushed.as_micros(),
                (t0.elapsed() - flushed).as_micros()
            );
            if !c.is_empty() {
                self.fault.strike();
                log::info!("catalog changed: {} view change(s)", c.len());
            }
            changes.extend(c);
        }
        // a file created and not closed within a few milliseconds is recorded on its own:
        // its transaction holds the catalog's write lock meanwhile
        let _ = vfs.settle(Some(crate::vfs::create_window()), false);
        // access entries and saves queued while another command held the catalog
        vfs.flush_access_log(Duration::ZERO);
        vfs.retry_queued(Duration::ZERO);
        let due = view
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .next_transition()
            .is_some_and(|t| t <= now);
        if due {
            let assets = view.read().unwrap_or_else(|p| p.into_inner()).due(now);
            flush_pages(vfs, out, Some(&assets));
            let expired = view.write().unwrap_or_else(|p| p.into_inner()).expire(now);
            if !expired.is_empty() {
                log::info!(
                    "consent time boundary reached: {} view change(s)",
                    expired.len()
                );
            }
            changes.extend(expired);
        }
        if !changes.is_empty() {
            let inval = vfs.invalidations(&changes);
            out.send(Batch {
                items: inval,
                done: None,
                fill: None,
            })
            .map_err(|_| RoundError::InvalidatorGone)?;
        }
        // Sleep until the next poll, or the next transition if it comes sooner.
        let next = view
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .next_transition();
        let mut nap = POLL;
        if let Some(t) = next {
            if let Ok(d) = (t - chrono::Utc::now()).to_std() {
                nap = nap.min(d);
            }
        }
        Ok(nap)
    }
}

/// Join `thread` if it ends within `limit`; otherwise leave it (the process is ending) and
/// say so.
fn join_within<T>(thread: std::thread::JoinHandle<T>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !thread.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let ended = thread.is_finished();
    if ended {
        let _ = thread.join();
    }
    ended
}

/// How long a stopping daemon waits for files still open in its detached mount to be closed.
const DRAIN: Duration = Duration::from_secs(5);

/// Unmount on SIGTERM/SIGINT/SIGHUP, also with files open (as `systemctl stop` expects): a
/// normal unmount if nothing is open; otherwise detach the mount (lazily: it disappears from
/// the tree at once, open files keep working) and serve the open files for up to `DRAIN` so
/// running saves can finish with their close; what is still written but unsaved after that is
/// committed as an fsync would, and logged. Never leaves a dead mount behind.
fn stop_serving(mountpoint: &Path, bg: fuser::BackgroundSession, vfs: &Vfs) -> std::io::Result<()> {
    let path = std::ffi::CString::new(mountpoint.as_os_str().as_encoded_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a valid NUL-terminated path; umount2 has no memory effects.
    let plain = unsafe { libc::umount2(path.as_ptr(), 0) };
    if plain != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EBUSY) {
            log::info!(
                "files are still open: detaching the mount; open files keep working for up to {} s",
                DRAIN.as_secs()
            );
            // SAFETY: as above.
            let lazy = unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
            if lazy != 0 {
                // not root: fusermount3 does it for us
                let _ = std::process::Command::new("fusermount3")
                    .args(["-u", "-z"])
                    .arg(mountpoint)
                    .status();
            }
        } else if e.raw_os_error() == Some(libc::EPERM) {
            // not root: fusermount3 unmounts for us (lazily, so open files keep working)
            let _ = std::process::Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(mountpoint)
                .status();
        } else {
            log::warn!("unmount: {e}");
        }
    }
    let deadline = Instant::now() + DRAIN;
    while !bg.guard.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if bg.guard.is_finished() {
        // the kernel ended the session (unmounted, last file closed): nothing to unmount again
        return bg.join();
    }
    let (saved, failed) = vfs.commit_all_pending();
    log::warn!(
        "files are still open after {} s: {saved} save(s) in progress committed, {failed} failed; stopping",
        DRAIN.as_secs()
    );
    // the mount is detached: ending the process closes the connection, no dead mount stays
    Ok(())
}

/// Mount the store at the mountpoint and serve until SIGINT or SIGTERM (or an external
/// unmount), then unmount cleanly.
/// Fixed thresholds for the allocator instead of glibc's sliding ones. After a large buffer is
/// freed (a long listing's output), glibc raises its trim threshold to as much as 64 MiB, and
/// the heaps of the daemon's threads, which `malloc_trim` does not shrink from the top, then
/// keep their peak resident for good: 110-180 MiB more after one `ls` of a million photos
/// (30 with these; the price is about 0.4 s more for that `ls`, its pages faulted in again).
/// Buffers above 32 MiB are mapped and unmapped on their own; a thread's heap gives back what
/// is free at its top above 8 MiB.
fn fix_allocator_thresholds() {
    // SAFETY: mallopt only changes the allocator's tuning parameters
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
    }
}

pub fn run(store: Store, mut opts: MountOptions) -> Result<()> {
    preflight(&opts.mountpoint)?;
    // one daemon per store, before anything is cleaned up (held until this function returns)
    let _store_lock = store.lock_for_daemon(&opts.mountpoint)?;
    let started = Instant::now();
    // every commit of the daemon hands its head to one writer thread (see `anchor`)
    if let Some(a) = opts.anchor.take() {
        opts.anchor = Some(a.in_background()?);
    }
    let mut view_catalog = Catalog::open(
        &store.catalog_path(),
        &store.catalog_key(),
        store.audit_key(),
    )?;
    view_catalog.share_anchor(opts.anchor.clone());
    let saves = crate::vfs::queue::SaveQueue::load(&store)?;
    // objects of saves queued or journalled by a daemon that was killed are no orphans: they
    // are recorded below
    let mut spared = saves.object_ids();
    match crate::vfs::queue::NewFileJournal::new(&store).load() {
        Ok(new_files) => spared.extend(new_files.into_iter().map(|f| f.save.object)),
        Err(e) => log::error!("cannot read the new-file journal: {e}"),
    }
    housekeeping(&store, &mut view_catalog, &spared)?;
    let housekept = started.elapsed();
    let mut write_catalog = Catalog::open(
        &store.catalog_path(),
        &store.catalog_key(),
        store.audit_key(),
    )?;
    write_catalog.share_anchor(opts.anchor.clone());
    // a third connection, for the load only: versions are read in a thread of their own
    let mut versions_catalog = Catalog::open(
        &store.catalog_path(),
        &store.catalog_key(),
        store.audit_key(),
    )?;
    let view = View::load_with(
        view_catalog.conn(),
        vec![versions_catalog.conn_mut(), write_catalog.conn_mut()],
        chrono::Utc::now(),
    )?;
    drop(versions_catalog);
    let store = Arc::new(store);
    // loading freed as much as the index keeps (rows, sorted runs): give it back
    // SAFETY: malloc_trim only releases free heap pages; it touches no live allocation
    unsafe {
        libc::malloc_trim(0);
    }
    log::info!(
        "view index loaded: housekeeping {} ms, index {} ms",
        housekept.as_millis(),
        (started.elapsed() - housekept).as_millis()
    );
    let assets = view.len();
    let view = Arc::new(RwLock::new(view));
    let accounts: Box<dyn Accounts> = Box::new(OsAccounts::default());
    let vfs = Arc::new(
        Vfs::new(store.clone(), view.clone(), accounts, write_catalog).with_save_queue(saves),
    );
    vfs.replay_new_files();
    match analyse::start(store.clone()) {
        Ok(tx) => vfs.set_draft_listener(tx),
        Err(e) => log::warn!("{e}: files saved through the mount are not looked at"),
    }
    let _thinning = thin_in_background(store.clone())?;
    remove_superseded_in_background(store.clone(), &_thinning);
    let left = vfs.retry_queued(Duration::from_secs(2));
    if left > 0 {
        log::warn!("{left} save(s) queued while the catalog was busy are still waiting for it");
    }

    // Handle signals before mounting, so that a Ctrl-C at any moment unmounts cleanly.
    let mut signals =
        signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM, libc::SIGHUP])
            .map_err(|e| Error::io("cannot install signal handlers", e))?;
    let is_root = nix::unistd::geteuid().is_root();
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("consentfs".into()),
        fuser::MountOption::Subtype("consentfs".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoAtime,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
    ];
    // One daemon serves every user: allow_other needs root (or user_allow_other in
    // /etc/fuse.conf); without it only the mounting user can enter.
    config.acl = if is_root {
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::Owner
    };
    config.n_threads = Some(opts.threads.max(1));
    config.clone_fd = true;
    // a team library's copy follows the library's log, under a lease; connected before the
    // mount answers (a command run right after the mount appeared finds it in place)
    let follower = follow::prepare(&store, &vfs, opts.lease)?;
    let session = fuser::Session::new(FuseFs::new(vfs.clone()), &opts.mountpoint, &config)
        .map_err(|e| {
            Error::invalid(format!(
                "cannot mount on {}: {e}{}",
                opts.mountpoint.display(),
                if is_root {
                    ""
                } else {
                    " (as a normal user, install fuse3 for fusermount3)"
                }
            ))
        })?;
    let notifier = session.notifier();
    let bg = session
        .spawn()
        .map_err(|e| Error::io("cannot start the FUSE session", e))?;
    // only now: a stat of the mountpoint needs the session to answer
    raise_readahead(&opts.mountpoint);
    let (tx, rx) = channel();
    vfs.set_invalidation_sender(tx.clone());
    let tx_for_control = tx.clone();
    let rounds = Arc::new(Rounds::default());
    let rounds_for_control = rounds.clone();
    let invalidator = std::thread::Builder::new()
        .name("invalidator".into())
        .spawn({
            let vfs = vfs.clone();
            move || run_invalidator(notifier, rx, vfs)
        })
        .map_err(|e| Error::io("cannot start the invalidator", e))?;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (view, vfs, stop) = (view.clone(), vfs.clone(), stop.clone());
        std::thread::Builder::new()
            .name("watcher".into())
            .spawn(move || watch(view, vfs, view_catalog, tx, stop, rounds))
            .map_err(|e| Error::io("cannot start the watcher", e))?
    };
    let follower = match follower {
        Some(f) => {
            let (rounds, out) = (rounds_for_control.clone(), tx_for_control.clone());
            let applied = Box::new(move || wait_applied(&rounds, &out, APPLY_WITHIN));
            Some(f.spawn(vfs.clone(), stop.clone(), applied)?)
        }
        None => None,
    };

    let _control = opts.control.take().and_then(|(path, run)| {
        let (rounds, out) = (rounds_for_control.clone(), tx_for_control.clone());
        let out = std::sync::Mutex::new(out);
        let served = {
            let (rounds, vfs) = (rounds.clone(), vfs.clone());
            let out = std::sync::Mutex::new(tx_for_control.clone());
            Served {
                view: view.clone(),
                catch_up: Box::new(move || {
                    let sender = out.lock().map(|s| s.clone());
                    vfs.live.problem().is_none()
                        && sender.is_ok_and(|s| wait_applied(&rounds, &s, APPLY_WITHIN))
                        && vfs.live.problem().is_none()
                }),
            }
        };
        let handler: Arc<control::Handler> = Arc::new(move |peer, req: control::Request| {
            let sender = out.lock().map(|s| s.clone());
            if req.sync {
                let applied = sender.is_ok_and(|s| wait_applied(&rounds, &s, APPLY_WITHIN));
                return control::Reply {
                    code: if applied { 0 } else { 1 },
                    stdout: String::new(),
                    stderr: String::new(),
                };
            }
            let mut reply = run(peer, req, &served);
            if !sender.is_ok_and(|s| wait_applied(&rounds, &s, APPLY_WITHIN)) {
                reply.stderr.push_str(&format!(
                    "consentfs: note: the mount has not shown this change within {} s\n",
                    APPLY_WITHIN.as_secs()
                ));
            }
            reply
        });
        match control::Server::start(&path, handler) {
            Ok(server) => {
                log::info!("commands without the key: {}", path.display());
                Some(server)
            }
            Err(e) => {
                log::error!(
                    "no control socket at {} ({e}): people without the key cannot reach this daemon",
                    path.display()
                );
                None
            }
        }
    });
    log::info!(
        "mounted {} ({} assets) in {} ms; stop with Ctrl-C or SIGTERM",
        opts.mountpoint.display(),
        assets,
        started.elapsed().as_millis()
    );

    // (after the index is built: its load is faster with the sliding thresholds)
    fix_allocator_thresholds();
    if let Some(ready) = opts.on_ready.take() {
        ready();
    }
    // under systemd (Type=notify) the unit is started only now, once the mount answers
    notify_service(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&format!("serving {assets} assets")),
    ]);
    let mut external = false;
    let mut trimmed_at = vfs.known_inodes();
    let mut trim_check = Instant::now();
    'serve: loop {
        if trim_check.elapsed() >= TRIM_EVERY {
            trim_check = Instant::now();
            trimmed_at = give_back_memory(vfs.known_inodes(), trimmed_at);
        }
        if let Some(sig) = signals.pending().next() {
            log::info!("signal {sig} received: unmounting");
            break 'serve;
        }
        if watcher.is_finished() && vfs.live.problem().is_none() {
            vfs.live.fail("the watcher thread ended");
        }
        if follower.as_ref().is_some_and(|f| f.is_finished()) && vfs.live.problem().is_none() {
            vfs.live.fail("the team catalog's follower thread ended");
        }
        if bg.guard.is_finished() {
            log::info!("the filesystem was unmounted from outside");
            external = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    notify_service(&[sd_notify::NotifyState::Stopping]);
    // no more commands: the socket's handler holds a sender the invalidator waits on
    drop(_control);
    drop(tx_for_control);
    stop.store(true, Ordering::Relaxed);
    // a stuck watcher must not keep the mount from ending
    if !join_within(watcher, Duration::from_secs(2)) {
        log::error!("the watcher thread does not end; unmounting without it");
    }
    if let Some(f) = follower {
        // it waits at most `follow::POLL` for the library's announcements
        join_within(f, follow::POLL * 2);
    }
    let result = if external {
        bg.join()
    } else {
        stop_serving(&opts.mountpoint, bg, &vfs)
    };
    vfs.clear_invalidation_sender();
    // a stuck watcher still holds a sender, which keeps the invalidator waiting for more
    join_within(invalidator, Duration::from_secs(2));
    if let Err(e) = vfs.settle(None, true) {
        log::error!("files created last could not be recorded: {e}");
    }
    if !vfs.flush_access_log(Duration::from_secs(30)) {
        log::error!("access entries queued while the catalog was busy could not be written to the audit log");
    }
    let left = vfs.retry_queued(Duration::from_secs(5));
    if left > 0 {
        log::warn!(
            "{left} save(s) stay queued for a busy catalog; they are kept in the store and recorded when it is mounted next"
        );
    }
    if let Some(a) = &opts.anchor {
        if !a.flush(Duration::from_secs(10)) {
            log::error!("the rollback anchor could not be moved to the last change in time");
        }
    }
    result.map_err(|e| Error::io("unmount", e))?;
    log::info!("unmounted {}", opts.mountpoint.display());
    Ok(())
}
