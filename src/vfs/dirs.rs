//! Empty folders made with `mkdir`, which the catalog does not know (a folder exists in the
//! mount only where something is below it). Kept in memory, per user and purpose, in sorted
//! sets: "is there a made folder at or below this path" and "which made folders are directly
//! in this one" are range queries, so one user's 10,000 folders cost nobody else anything and
//! their own lookups a logarithm, not a scan.
//!
//! Also kept here: when a user last changed a folder's entries through the mount (a create,
//! unlink, rename, mkdir or rmdir in it), which is the folder's modification time in that
//! user's view. Tools rely on it (make, rsync, backups, file managers that refresh a folder
//! when its mtime moves). It is per user: another user's changes, which the user may not even
//! see, must not move it.

use crate::policy::PurposeId;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::time::SystemTime;

#[derive(Default)]
pub(super) struct MadeDirs {
    sets: HashMap<(Arc<str>, PurposeId), BTreeSet<String>>,
    per_user: HashMap<Arc<str>, usize>,
    /// When each user last changed the entries of a folder (login, purpose, path).
    changed: HashMap<(Arc<str>, PurposeId, String), SystemTime>,
}

/// At most this many folder times are kept; beyond, the older half is dropped (those folders
/// show the mount time again, as after a restart).
const TIMES_KEPT: usize = 100_000;

/// The paths strictly below `dir` sort in `[dir + "/", dir + "0")` ('0' follows '/').
fn below(dir: &str) -> (Bound<String>, Bound<String>) {
    (
        Bound::Included(format!("{dir}/")),
        Bound::Excluded(format!("{dir}0")),
    )
}

impl MadeDirs {
    /// A made folder is at `path` or below it (so `path` exists as a folder).
    pub fn at_or_below(&self, login: &Arc<str>, purpose: PurposeId, path: &str) -> bool {
        let Some(set) = self.sets.get(&(login.clone(), purpose)) else {
            return false;
        };
        if path.is_empty() {
            return !set.is_empty();
        }
        set.contains(path) || set.range(below(path)).next().is_some()
    }

    pub fn contains(&self, login: &Arc<str>, purpose: PurposeId, path: &str) -> bool {
        self.sets
            .get(&(login.clone(), purpose))
            .is_some_and(|s| s.contains(path))
    }

    /// Names of the folders directly in `dir` that lead to a made folder.
    pub fn children(&self, login: &Arc<str>, purpose: PurposeId, dir: &str) -> Vec<String> {
        let Some(set) = self.sets.get(&(login.clone(), purpose)) else {
            return Vec::new();
        };
        let range: Box<dyn Iterator<Item = &String>> = if dir.is_empty() {
            Box::new(set.iter())
        } else {
            Box::new(set.range(below(dir)))
        };
        let skip = if dir.is_empty() { 0 } else { dir.len() + 1 };
        let mut out: Vec<String> = range
            .filter_map(|d| d.get(skip..)?.split('/').next())
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        // "a/b", "a/b!", "a/b/c" sort in that order: equal names need not be adjacent
        out.sort();
        out.dedup();
        out
    }

    /// The entries of folder `path` changed now (in `login`'s view).
    pub fn touch(&mut self, login: &Arc<str>, purpose: PurposeId, path: &str) {
        if self.changed.len() >= TIMES_KEPT {
            let mut times: Vec<SystemTime> = self.changed.values().copied().collect();
            times.sort_unstable();
            let cut = times[times.len() / 2];
            self.changed.retain(|_, t| *t > cut);
        }
        self.changed.insert(
            (login.clone(), purpose, path.to_string()),
            SystemTime::now(),
        );
    }

    /// When `login` last changed the entries of folder `path` through the mount, if since
    /// the mount.
    pub fn changed_at(
        &self,
        login: &Arc<str>,
        purpose: PurposeId,
        path: &str,
    ) -> Option<SystemTime> {
        self.changed
            .get(&(login.clone(), purpose, path.to_string()))
            .copied()
    }

    /// Folders `login` made, in all purposes.
    pub fn count(&self, login: &str) -> usize {
        self.per_user.get(login).copied().unwrap_or(0)
    }

    pub fn insert(&mut self, login: &Arc<str>, purpose: PurposeId, path: String) {
        if self
            .sets
            .entry((login.clone(), purpose))
            .or_default()
            .insert(path)
        {
            *self.per_user.entry(login.clone()).or_default() += 1;
        }
    }

    /// Move the made folder `old` and every made folder below it to `new` (a folder rename:
    /// `mkdir -p a/b; mv a c` leaves `c` and `c/b`, and nothing at `a`).
    pub fn move_tree(&mut self, login: &Arc<str>, purpose: PurposeId, old: &str, new: &str) {
        let Some(set) = self.sets.get_mut(&(login.clone(), purpose)) else {
            return;
        };
        let mut moved: Vec<String> = set.range(below(old)).cloned().collect();
        if set.contains(old) {
            moved.push(old.to_string());
        }
        for path in moved {
            set.remove(&path);
            let to = format!("{new}{}", &path[old.len()..]);
            if let Some(t) = self.changed.remove(&(login.clone(), purpose, path)) {
                self.changed.insert((login.clone(), purpose, to.clone()), t);
            }
            set.insert(to);
        }
    }

    pub fn remove(&mut self, login: &Arc<str>, purpose: PurposeId, path: &str) -> bool {
        let key = (login.clone(), purpose);
        let Some(set) = self.sets.get_mut(&key) else {
            return false;
        };
        let removed = set.remove(path);
        self.changed
            .remove(&(login.clone(), purpose, path.to_string()));
        if set.is_empty() {
            self.sets.remove(&key);
        }
        if removed {
            if let Some(n) = self.per_user.get_mut(login) {
                *n = n.saturating_sub(1);
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_folders_answer_by_range() {
        let mut m = MadeDirs::default();
        let l: Arc<str> = Arc::from("dora");
        m.insert(&l, 1, "a/b/c".into());
        m.insert(&l, 1, "a/bb".into());
        m.insert(&l, 1, "a/b0".into());
        m.insert(&l, 2, "x".into());
        m.insert(&l, 3, "p".into());
        m.insert(&l, 3, "p!".into());
        m.insert(&l, 3, "p/q".into());
        assert_eq!(m.children(&l, 3, ""), ["p", "p!"]);
        assert!(m.at_or_below(&l, 1, "a"));
        assert!(m.at_or_below(&l, 1, "a/b"));
        assert!(m.at_or_below(&l, 1, ""));
        assert!(!m.at_or_below(&l, 1, "a/b/c/d"));
        assert!(!m.at_or_below(&l, 1, "x"));
        assert!(!m.at_or_below(&Arc::from("eve"), 1, "a"));
        assert_eq!(m.children(&l, 1, "a"), ["b", "b0", "bb"]);
        assert_eq!(m.children(&l, 1, ""), ["a"]);
        assert_eq!(m.children(&l, 1, "a/b"), ["c"]);
        assert_eq!(m.count("dora"), 7);
        assert!(m.remove(&l, 1, "a/b/c"));
        assert!(!m.remove(&l, 1, "a/b/c"));
        assert_eq!(m.count("dora"), 6);
        assert!(!m.at_or_below(&l, 1, "a/b"));
        // a folder rename takes the folders below along; the count stays
        m.move_tree(&l, 3, "p", "r");
        assert_eq!(m.children(&l, 3, ""), ["p!", "r"]);
        assert_eq!(m.children(&l, 3, "r"), ["q"]);
        assert!(!m.at_or_below(&l, 3, "p"));
        assert_eq!(m.count("dora"), 6);
    }
}
