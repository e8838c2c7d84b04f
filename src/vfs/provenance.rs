//! Which photos a process read shortly before it wrote a new file.
//!
//! A draft shows what it was made from: `cp photo.jpg copy.jpg`, `convert a.jpg b.jpg`, a
//! crop exported under a new name, the temp file of an editor's save. Byte-equal copies are
//! recognised by their content hash; everything else by the process: every open of a photo
//! for reading is remembered for the reading process, and a draft written by that process
//! within [`WINDOW`] takes the photos it read as its sources.
//!
//! "The process" is the *process group* of the requesting thread (FUSE reports the thread id;
//! `/proc/<tid>/stat` gives its group and session), not only its thread group: tools that read
//! and write in helper processes share their group (GIMP loads a photo in one file plug-in
//! process and exports the crop from another, both in GIMP's group), while a shell with job
//! control, as every interactive one, gives each command its own group, so `cp a.jpg x` and a
//! later unrelated command in the same terminal stay apart. The session id is part of the key,
//! so a group id reused in another session does not inherit older reads. Memory is bounded: at
//! most [`PER_PROCESS`] recent photos per group and [`PROCESSES`] groups; the oldest go first.
//! Requests whose process is unknown (pid 0, already exited, or no `/proc`) are not tracked:
//! the content hash still applies to them.
//!
//! This errs towards more sources, never fewer: a script without job control (one group) that
//! reads many photos and writes many files gives each new file all the photos it read within
//! the window. Extra sources only make a draft stricter (hidden when any of their persons
//! withdraws; not saved over a photo of other persons).

use crate::policy::AssetId;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a read counts towards what a process writes.
pub const WINDOW: Duration = Duration::from_secs(10 * 60);
/// Photos remembered per process (the most recent ones).
pub const PER_PROCESS: usize = 64;
/// Processes remembered at once.
pub const PROCESSES: usize = 4096;
/// How long a thread id's process is cached (a thread id is not reused within this time in
/// practice; the cache saves two `/proc` reads per request).
const TID_CACHE: Duration = Duration::from_secs(1);

/// What each thread that asked lately stands for (its process, its process group), read from
/// `/proc` at most once per [`TID_CACHE`]: a thread's process and group do not change, and a
/// thread id is not reused within a second in practice. At most [`PROCESSES`] threads; beyond,
/// those older than that go.
pub struct ThreadCache<T>(Mutex<HashMap<u32, (Option<T>, Instant)>>);

impl<T> Default for ThreadCache<T> {
    fn default() -> Self {
        ThreadCache(Mutex::new(HashMap::new()))
    }
}

impl<T: Copy> ThreadCache<T> {
    /// What `tid` stands for, by `read` if not known from the last second.
    pub fn get(&self, tid: u32, read: impl FnOnce(u32) -> Option<T>) -> Option<T> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((p, at)) = map.get(&tid) {
            if at.elapsed() < TID_CACHE {
                return *p;
            }
        }
        let p = read(tid);
        if map.len() >= PROCESSES {
            map.retain(|_, (_, at)| at.elapsed() < TID_CACHE);
        }
        map.insert(tid, (p, Instant::now()));
        p
    }
}

/// A process group: (process group id, session id).
pub type Process = (u32, u64);

#[derive(Default)]
pub struct Provenance {
    reads: Mutex<HashMap<Process, VecDeque<(AssetId, Instant)>>>,
    tids: ThreadCache<Process>,
}

/// The process group and session of thread `tid`, from `/proc/<tid>/stat` (thread ids have
/// entries there too).
fn process_of_tid(tid: u32) -> Option<Process> {
    let stat = std::fs::read_to_string(format!("/proc/{tid}/stat")).ok()?;
    // the command name (field 2) may hold spaces and ')': fields resume after the last ')'
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts at field 3 (state); field 5 is the process group, field 6 the session
    let mut fields = rest.split_whitespace().skip(2);
    let pgrp: u32 = fields.next()?.parse().ok()?;
    let session: u64 = fields.next()?.parse().ok()?;
    Some((pgrp, session))
}

impl Provenance {
    /// The process group of the requesting thread `pid` (as FUSE reports it), if it can be
    /// known.
    pub fn process(&self, pid: u32) -> Option<Process> {
        if pid == 0 {
            return None;
        }
        self.tids.get(pid, process_of_tid)
    }

    /// The process `pid` belongs to opened `asset` for reading.
    pub fn read(&self, pid: u32, asset: AssetId) {
        let Some(process) = self.process(pid) else {
            return;
        };
        self.read_by(process, asset);
    }

    pub fn read_by(&self, process: Process, asset: AssetId) {
        let now = Instant::now();
        let mut reads = self.reads.lock().unwrap_or_else(|p| p.into_inner());
        if !reads.contains_key(&process) && reads.len() >= PROCESSES {
            reads.retain(|_, list| list.back().is_some_and(|(_, t)| now - *t < WINDOW));
            if reads.len() >= PROCESSES {
                // still full of live processes: forget the one idle longest
                if let Some(oldest) = reads
                    .iter()
                    .min_by_key(|(_, list)| list.back().map(|(_, t)| *t))
                    .map(|(k, _)| *k)
                {
                    reads.remove(&oldest);
                }
            }
        }
        let list = reads.entry(process).or_default();
        list.retain(|(a, t)| *a != asset && now - *t < WINDOW);
        list.push_back((asset, now));
        while list.len() > PER_PROCESS {
            list.pop_front();
        }
    }

    /// The assets `process` opened for reading within the window.
    pub fn recent(&self, process: Process) -> Vec<AssetId> {
        let reads = self.reads.lock().unwrap_or_else(|p| p.into_inner());
        reads
            .get(&process)
            .map(|list| {
                list.iter()
                    .filter(|(_, t)| t.elapsed() < WINDOW)
                    .map(|(a, _)| *a)
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_known_by_its_threads() {
        let p = Provenance::default();
        let me = p.process(std::process::id()).expect("own process");
        assert_eq!(me.0, nix::unistd::getpgrp().as_raw() as u32);
        let tid = nix::unistd::gettid().as_raw() as u32;
        let other = std::thread::spawn(|| nix::unistd::gettid().as_raw() as u32)
            .join()
            .unwrap();
        assert_eq!(p.process(tid), Some(me));
        // an exited thread is unknown, not someone else
        assert!(p.process(other).is_none_or(|q| q == me));
        assert_eq!(p.process(0), None);
    }

    #[test]
    fn reads_are_bounded_per_process_and_in_number_of_processes() {
        let p = Provenance::default();
        for a in 0..(PER_PROCESS as i64 + 10) {
            p.read_by((1, 1), a);
        }
        let recent = p.recent((1, 1));
        assert_eq!(recent.len(), PER_PROCESS);
        assert_eq!(recent.last(), Some(&(PER_PROCESS as i64 + 9)));
        for n in 0..(PROCESSES as u32 + 5) {
            p.read_by((n + 10, 7), 1);
        }
        assert!(p.reads.lock().unwrap().len() <= PROCESSES);
        // a process id reused by a later process does not inherit the reads
        assert!(p.recent((1, 2)).is_empty());
    }
}
