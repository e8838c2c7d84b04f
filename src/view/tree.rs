//! The folder tree of one purpose: every asset visible in it (to anyone with a grant), placed at
//! its collection path. Each folder counts the files below it, so empty folders are pruned at
//! once and "is anything visible below here" is a lookup, not a walk.

use crate::policy::AssetId;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Default, Clone)]
pub struct Dir {
    /// Files in this folder and all folders below it.
    pub count: usize,
    pub dirs: BTreeMap<Arc<str>, Dir>,
    pub files: BTreeMap<Arc<str>, AssetId>,
}

/// The components of a collection path (`events/2026` -> `["events", "2026"]`).
pub fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

impl Dir {
    /// The folder at `path`, if it exists (that is: if something is visible below it).
    pub fn get(&self, path: &str) -> Option<&Dir> {
        let mut d = self;
        for c in components(path) {
            d = d.dirs.get(c)?;
        }
        Some(d)
    }

    pub fn insert(&mut self, collection: &str, name: Arc<str>, asset: AssetId) {
        let replaced = {
            let mut d = &mut *self;
            d.count += 1;
            for c in components(collection) {
                d = d.dirs.entry(Arc::from(c)).or_default();
                d.count += 1;
            }
            d.files.insert(name, asset)
        };
        if let Some(old) = replaced {
            // A path holds one asset (the catalog enforces it); undo the double count.
            if old != asset {
                log::warn!("two assets ({old}, {asset}) at one path; showing {asset}");
            }
            self.uncount(collection);
        }
    }

    fn uncount(&mut self, collection: &str) {
        let mut d = self;
        d.count -= 1;
        for c in components(collection) {
            match d.dirs.get_mut(c) {
                Some(next) => {
                    next.count -= 1;
                    d = next;
                }
                None => return,
            }
        }
    }

    /// Remove the file; folders left empty disappear. Returns whether it was there.
    pub fn remove(&mut self, collection: &str, name: &str) -> bool {
        let parts: Vec<&str> = components(collection).collect();
        if !self.remove_at(&parts, name) {
            return false;
        }
        true
    }

    fn remove_at(&mut self, parts: &[&str], name: &str) -> bool {
        let removed = match parts.split_first() {
            None => self.files.remove(name).is_some(),
            Some((first, rest)) => match self.dirs.get_mut(*first) {
                Some(child) => {
                    let r = child.remove_at(rest, name);
                    if r && child.count == 0 {
                        self.dirs.remove(*first);
                    }
                    r
                }
                None => false,
            },
        };
        if removed {
            self.count -= 1;
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_exist_only_while_something_is_below_them() {
        let mut root = Dir::default();
        root.insert("events/2026", "a.jpg".into(), 1);
        root.insert("events/2026/may", "b.jpg".into(), 2);
        root.insert("", "c.jpg".into(), 3);
        assert_eq!(root.count, 3);
        assert_eq!(root.get("events").unwrap().count, 2);
        assert!(root.remove("events/2026/may", "b.jpg"));
        assert!(root.get("events/2026/may").is_none(), "empty folder pruned");
        assert_eq!(root.get("events").unwrap().count, 1);
        assert!(!root.remove("events/2026", "nope.jpg"));
        assert!(root.remove("events/2026", "a.jpg"));
        assert!(root.get("events").is_none());
        assert_eq!(root.count, 1);
        assert_eq!(root.files.get("c.jpg"), Some(&3));
    }
}
