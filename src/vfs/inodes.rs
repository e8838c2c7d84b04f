//! Inode numbers for the nodes of the mount.
//!
//! A node is a place in one user's view: the same photo seen by two users, or in two purposes,
//! is two nodes with two inode numbers, so the kernel's shared caches never mix one user's
//! entry (owner, mode, visibility) with another's. Numbers are handed out on lookup; a node is
//! forgotten when the kernel drops its last reference.
//!
//! Numbers are drawn at random (below 2^63, never 0 or 1), not counted up: with a counter, the
//! numbers a user sees on their own files would tell how many nodes other users looked up in
//! between, that is, how busy the others are and when. A random number says nothing. The
//! space is so large that a number is never given twice in practice (and one in use is never
//! given again: a draw that hits a live number is repeated).

use crate::policy::{AssetId, PurposeId};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

pub type Ino = u64;
pub const ROOT: Ino = 1;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Node {
    Root,
    User(Arc<str>),
    Purpose(Arc<str>, PurposeId),
    /// A collection folder: (login, purpose, path like `events/2026`).
    Dir(Arc<str>, PurposeId, Arc<str>),
    File(Arc<str>, PurposeId, AssetId),
}

impl Node {
    pub fn login(&self) -> Option<&Arc<str>> {
        match self {
            Node::Root => None,
            Node::User(l) | Node::Purpose(l, _) | Node::Dir(l, _, _) | Node::File(l, _, _) => {
                Some(l)
            }
        }
    }

    pub fn is_dir(&self) -> bool {
        !matches!(self, Node::File(..))
    }
}

#[derive(Default)]
pub struct Inodes {
    by_node: HashMap<Node, Ino>,
    by_ino: HashMap<Ino, (Node, u64)>,
    /// The file inodes of each asset (bound to a name or not): a change to an asset finds
    /// them without a walk over every inode the kernel holds (after a `find` over a view of
    /// a million photos, that walk made each withdrawal take tens of milliseconds).
    /// (Inline for the usual one inode per asset: no allocation of its own.)
    files: HashMap<AssetId, smallvec::SmallVec<[Ino; 1]>>,
    /// The purpose folders bound to their names, by purpose.
    purposes: BTreeSet<(PurposeId, Arc<str>)>,
}

impl Inodes {
    pub fn new() -> Inodes {
        let mut i = Inodes::default();
        i.by_node.insert(Node::Root, ROOT);
        i.by_ino.insert(ROOT, (Node::Root, 1));
        i
    }

    fn bind(&mut self, node: &Node, ino: Ino) -> Option<Ino> {
        if let Node::Purpose(l, p) = node {
            self.purposes.insert((*p, l.clone()));
        }
        self.by_node.insert(node.clone(), ino)
    }

    fn unbind_node(&mut self, node: &Node) -> Option<Ino> {
        if let Node::Purpose(l, p) = node {
            self.purposes.remove(&(*p, l.clone()));
        }
        self.by_node.remove(node)
    }

    fn track(&mut self, node: &Node, ino: Ino, present: bool) {
        let Node::File(_, _, a) = node else {
            return;
        };
        let list = self.files.entry(*a).or_default();
        list.retain(|i| *i != ino);
        if present {
            list.push(ino);
        }
        if list.is_empty() {
            self.files.remove(a);
        }
    }

    /// The file inodes of an asset, in every view.
    pub fn files_of(&self, asset: AssetId) -> &[Ino] {
        self.files.get(&asset).map_or(&[], |v| v.as_slice())
    }

    pub fn node(&self, ino: Ino) -> Option<&Node> {
        self.by_ino.get(&ino).map(|(n, _)| n)
    }

    /// The inode of a node the kernel already knows, if any.
    pub fn known(&self, node: &Node) -> Option<Ino> {
        self.by_node.get(node).copied()
    }

    /// The node's inode number, allocating one if needed, without counting a reference.
    pub fn ino_of(&mut self, node: &Node) -> Ino {
        if let Some(&ino) = self.by_node.get(node) {
            return ino;
        }
        let ino = loop {
            let ino = rand::random::<u64>() >> 1;
            if ino > ROOT && !self.by_ino.contains_key(&ino) {
                break ino;
            }
        };
        self.bind(node, ino);
        self.by_ino.insert(ino, (node.clone(), 0));
        self.track(node, ino, true);
        ino
    }

    /// Count one kernel reference (a lookup or a readdirplus entry).
    pub fn reference(&mut self, node: &Node) -> Ino {
        let ino = self.ino_of(node);
        if let Some((_, n)) = self.by_ino.get_mut(&ino) {
            *n += 1;
        }
        ino
    }

    /// The kernel dropped `n` references.
    pub fn forget(&mut self, ino: Ino, n: u64) {
        if ino == ROOT {
            return;
        }
        let gone = match self.by_ino.get_mut(&ino) {
            Some((_, count)) => {
                *count = count.saturating_sub(n);
                *count == 0
            }
            None => false,
        };
        if gone {
            if let Some((node, _)) = self.by_ino.remove(&ino) {
                if self.by_node.get(&node) == Some(&ino) {
                    self.unbind_node(&node);
                }
                self.track(&node, ino, false);
            }
        }
    }

    /// The node is no longer behind the inode the kernel knows for it (a save replaced the
    /// file, its name was removed): the next lookup gives it a new inode, and the old number
    /// stays with what the kernel's descriptors hold until it is forgotten. Returns the old
    /// number.
    pub fn unbind(&mut self, node: &Node) -> Option<Ino> {
        self.unbind_node(node)
    }

    /// The kernel now holds inode `ino` under `node`'s name (a temp file renamed over it): the
    /// node is that inode from now on, and whatever inode it had before is unbound (returned).
    pub fn rebind(&mut self, node: &Node, ino: Ino) -> Option<Ino> {
        let (before, _) = self.by_ino.get_mut(&ino)?;
        let before = std::mem::replace(before, node.clone());
        if self.by_node.get(&before) == Some(&ino) {
            self.unbind_node(&before);
        }
        self.track(&before, ino, false);
        self.track(node, ino, true);
        self.bind(node, ino).filter(|&old| old != ino)
    }

    /// A folder was renamed from `old` to `new`: the inodes the kernel holds for it and for
    /// the folders below it now stand for their new paths. Directories are keyed by path, and
    /// the kernel keeps using the same inode under the new name after a rename (a `stat` of the
    /// new name right after `mv` must not find a node whose path no longer exists). A node
    /// already known at a new path (an empty folder replaced by the rename) keeps its number
    /// until the kernel forgets it, but no longer owns the path.
    pub fn rename_dirs(&mut self, login: &str, purpose: PurposeId, old: &str, new: &str) {
        // the part of `path` after `old`, if `path` is `old` or below it
        let rest = |path: &str| -> Option<String> {
            let tail = path.strip_prefix(old)?;
            (tail.is_empty() || tail.starts_with('/')).then(|| tail.to_string())
        };
        let moved: Vec<(Ino, Arc<str>, Arc<str>)> = self
            .by_ino
            .iter()
            .filter_map(|(ino, (n, _))| match n {
                Node::Dir(l, p, path) if **l == *login && *p == purpose => {
                    let tail = rest(path)?;
                    Some((*ino, l.clone(), Arc::from(format!("{new}{tail}"))))
                }
                _ => None,
            })
            .collect();
        for (ino, l, to) in moved {
            let Some((node, _)) = self.by_ino.get_mut(&ino) else {
                continue;
            };
            let before = std::mem::replace(node, Node::Dir(l, purpose, to));
            if self.by_node.get(&before) == Some(&ino) {
                self.by_node.remove(&before);
            }
            let after = node.clone();
            self.by_node.insert(after, ino);
        }
    }

    /// All known nodes of one user (for invalidating their whole tree).
    pub fn of_login(&self, login: &str) -> Vec<(Ino, Node)> {
        self.by_ino
            .iter()
            .filter(|(_, (n, _))| n.login().is_some_and(|l| &**l == login))
            .map(|(i, (n, _))| (*i, n.clone()))
            .collect()
    }

    /// Known file inodes and their assets.
    pub fn files(&self) -> impl Iterator<Item = (Ino, AssetId)> + '_ {
        self.by_ino.iter().filter_map(|(ino, (n, _))| match n {
            Node::File(_, _, a) => Some((*ino, *a)),
            _ => None,
        })
    }

    /// Logins that have a known purpose folder for `purpose`.
    pub fn logins_with_purpose(&self, purpose: PurposeId) -> Vec<Arc<str>> {
        self.purposes
            .range((purpose, Arc::from(""))..)
            .take_while(|(p, _)| *p == purpose)
            .map(|(_, l)| l.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.by_ino.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ino.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inode numbers tell nothing about how many nodes were handed out before: they are not
    /// consecutive, not increasing, and far apart.
    #[test]
    fn inode_numbers_are_not_a_counter() {
        let mut inodes = Inodes::new();
        let login: Arc<str> = Arc::from("dora");
        let numbers: Vec<Ino> = (0..1000)
            .map(|a| inodes.reference(&Node::File(login.clone(), 1, a)))
            .collect();
        let mut distinct = numbers.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), numbers.len(), "numbers must be unique");
        assert!(numbers.iter().all(|&n| n > ROOT && n < 1 << 63));
        // with a counter each step is 1; random numbers are about 2^62 apart
        let close = numbers
            .windows(2)
            .filter(|w| w[0].abs_diff(w[1]) < 1 << 40)
            .count();
        assert_eq!(close, 0, "successive inode numbers are close: {numbers:?}");
        assert!(
            numbers.windows(2).any(|w| w[1] < w[0]),
            "inode numbers only increase"
        );
        // the same node keeps its number while the kernel holds it
        assert_eq!(
            inodes.reference(&Node::File(login.clone(), 1, 7)),
            numbers[7]
        );
        // a forgotten node's number is not in use any more
        inodes.forget(numbers[0], 1);
        assert!(inodes.node(numbers[0]).is_none());
        assert_eq!(inodes.node(ROOT), Some(&Node::Root));
    }

    /// A temp file renamed over a file: the name's node becomes the temp file's inode; the old
    /// inode still stands for the node (its descriptors) but is no longer the node's; each
    /// goes when the kernel forgets it.
    #[test]
    fn rebind_gives_the_name_the_renamed_inode() {
        let mut inodes = Inodes::new();
        let l: Arc<str> = Arc::from("dora");
        let photo = Node::File(l.clone(), 1, 10);
        let temp = Node::File(l.clone(), 1, 11);
        let old = inodes.reference(&photo);
        let moved = inodes.reference(&temp);
        assert_eq!(inodes.rebind(&photo, moved), Some(old));
        assert_eq!(inodes.known(&photo), Some(moved));
        assert_eq!(inodes.known(&temp), None);
        assert_eq!(inodes.node(moved), Some(&photo));
        assert_eq!(inodes.node(old), Some(&photo));
        // forgetting the old inode leaves the name's binding alone
        inodes.forget(old, 1);
        assert_eq!(inodes.known(&photo), Some(moved));
        inodes.forget(moved, 1);
        assert_eq!(inodes.known(&photo), None);
        // unbind: the next reference draws a new number
        let a = inodes.reference(&photo);
        assert_eq!(inodes.unbind(&photo), Some(a));
        assert_ne!(inodes.reference(&photo), a);
    }
}
