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
use hashbrown::HashTable;
use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasher;
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

/// A file node the kernel knows, held once: (login, purpose) as the number of a view, and
/// whether the node is still bound to this inode (a save that replaced the file, or a name
/// removed, leaves the old inode to its descriptors, unbound).
#[derive(Debug, Clone, Copy)]
struct FileEntry {
    ino: Ino,
    asset: AssetId,
    count: u64,
    view: u32,
    bound: bool,
}

/// The inodes the kernel holds. Folders and the like are few and kept in plain maps; file
/// nodes (after a `find` over a million-photo view, hundreds of thousands) are kept once each
/// in a slab of 32-byte entries, found by inode number and by node through two tables of
/// slab indexes. Two maps keyed by the node itself cost about 190 bytes per file; this about
/// 45.
#[derive(Default)]
pub struct Inodes {
    by_node: HashMap<Node, Ino>,
    by_ino: HashMap<Ino, (Node, u64)>,
    files: Vec<FileEntry>,
    /// Free places in `files` (an entry with inode 0).
    free: Vec<u32>,
    file_by_ino: HashTable<u32>,
    /// Bound entries only, by (view, asset).
    file_by_node: HashTable<u32>,
    /// Unbound file inodes of each asset (few: replaced files with descriptors still open).
    unbound: HashMap<AssetId, smallvec::SmallVec<[Ino; 1]>>,
    /// (login, purpose) of each view number, and back.
    views: Vec<(Arc<str>, PurposeId)>,
    view_ids: HashMap<(Arc<str>, PurposeId), u32>,
    hasher: foldhash::fast::RandomState,
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

    fn hash_ino(&self, ino: Ino) -> u64 {
        self.hasher.hash_one(ino)
    }

    fn hash_node(&self, view: u32, asset: AssetId) -> u64 {
        self.hasher.hash_one((view, asset))
    }

    fn view_of(&self, login: &Arc<str>, purpose: PurposeId) -> Option<u32> {
        self.view_ids.get(&(login.clone(), purpose)).copied()
    }

    fn intern_view(&mut self, login: &Arc<str>, purpose: PurposeId) -> u32 {
        if let Some(v) = self.view_of(login, purpose) {
            return v;
        }
        let v = self.views.len() as u32;
        self.views.push((login.clone(), purpose));
        self.view_ids.insert((login.clone(), purpose), v);
        v
    }

    /// The slab index of the file entry with inode `ino`.
    fn file_at(&self, ino: Ino) -> Option<u32> {
        let files = &self.files;
        self.file_by_ino
            .find(self.hash_ino(ino), |&i| files[i as usize].ino == ino)
            .copied()
    }

    /// The slab index of the entry bound to the file node (view, asset).
    fn bound_file(&self, view: u32, asset: AssetId) -> Option<u32> {
        let files = &self.files;
        self.file_by_node
            .find(self.hash_node(view, asset), |&i| {
                let e = &files[i as usize];
                e.view == view && e.asset == asset
            })
            .copied()
    }

    fn file_node(&self, e: &FileEntry) -> Node {
        let (login, purpose) = &self.views[e.view as usize];
        Node::File(login.clone(), *purpose, e.asset)
    }

    /// Mark entry `i` bound to its node (in the node table) or not.
    fn set_bound(&mut self, i: u32, bound: bool) {
        let e = self.files[i as usize];
        if e.bound == bound {
            return;
        }
        let h = self.hash_node(e.view, e.asset);
        if bound {
            let (files, hasher) = (&self.files, &self.hasher);
            self.file_by_node.insert_unique(h, i, |&j| {
                let f = &files[j as usize];
                hasher.hash_one((f.view, f.asset))
            });
            if let Some(list) = self.unbound.get_mut(&e.asset) {
                list.retain(|x| *x != e.ino);
                if list.is_empty() {
                    self.unbound.remove(&e.asset);
                }
            }
        } else {
            if let Ok(found) = self.file_by_node.find_entry(h, |&j| j == i) {
                found.remove();
            }
            self.unbound.entry(e.asset).or_default().push(e.ino);
        }
        self.files[i as usize].bound = bound;
    }

    /// Add a file entry (bound) for `node`'s view and asset with inode `ino`.
    fn add_file(
        &mut self,
        login: &Arc<str>,
        purpose: PurposeId,
        asset: AssetId,
        ino: Ino,
        count: u64,
    ) {
        let view = self.intern_view(login, purpose);
        let entry = FileEntry {
            ino,
            asset,
            count,
            view,
            bound: true,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.files[i as usize] = entry;
                i
            }
            None => {
                self.files.push(entry);
                (self.files.len() - 1) as u32
            }
        };
        let (files, hasher) = (&self.files, &self.hasher);
        self.file_by_ino
            .insert_unique(hasher.hash_one(ino), i, |&j| {
                hasher.hash_one(files[j as usize].ino)
            });
        self.file_by_node
            .insert_unique(hasher.hash_one((view, asset)), i, |&j| {
                let f = &files[j as usize];
                hasher.hash_one((f.view, f.asset))
            });
    }

    /// Take the entry of `ino` out of every table: (its node, its count, whether it was bound
    /// to the node).
    fn take(&mut self, ino: Ino) -> Option<(Node, u64, bool)> {
        if let Some(i) = self.file_at(ino) {
            self.set_bound(i, false);
            let e = self.files[i as usize];
            if let Some(list) = self.unbound.get_mut(&e.asset) {
                list.retain(|x| *x != ino);
                if list.is_empty() {
                    self.unbound.remove(&e.asset);
                }
            }
            let h = self.hash_ino(ino);
            if let Ok(found) = self.file_by_ino.find_entry(h, |&j| j == i) {
                found.remove();
            }
            let node = self.file_node(&e);
            self.files[i as usize].ino = 0;
            self.free.push(i);
            // a slab that emptied is given back (after a `find`, the kernel forgets it all)
            if self.free.len() == self.files.len() {
                self.files = Vec::new();
                self.free = Vec::new();
                self.file_by_ino = HashTable::new();
                self.file_by_node = HashTable::new();
            }
            return Some((node, e.count, e.bound));
        }
        let (node, count) = self.by_ino.remove(&ino)?;
        let bound = self.by_node.get(&node) == Some(&ino);
        if bound {
            if let Node::Purpose(l, p) = &node {
                self.purposes.remove(&(*p, l.clone()));
            }
            self.by_node.remove(&node);
        }
        Some((node, count, bound))
    }

    /// Put `ino` in the tables as `node`'s inode (bound to it), with `count` references.
    fn put(&mut self, node: &Node, ino: Ino, count: u64) {
        match node {
            Node::File(l, p, a) => self.add_file(l, *p, *a, ino, count),
            _ => {
                if let Node::Purpose(l, p) = node {
                    self.purposes.insert((*p, l.clone()));
                }
                self.by_node.insert(node.clone(), ino);
                self.by_ino.insert(ino, (node.clone(), count));
            }
        }
    }

    fn in_use(&self, ino: Ino) -> bool {
        self.by_ino.contains_key(&ino) || self.file_at(ino).is_some()
    }

    /// The file inodes of an asset, in every view, bound to a name or not.
    pub fn files_of(&self, asset: AssetId) -> Vec<Ino> {
        let mut out: Vec<Ino> = (0..self.views.len() as u32)
            .filter_map(|v| self.bound_file(v, asset))
            .map(|i| self.files[i as usize].ino)
            .collect();
        if let Some(list) = self.unbound.get(&asset) {
            out.extend(list.iter().copied());
        }
        out
    }

    pub fn node(&self, ino: Ino) -> Option<Node> {
        if let Some(i) = self.file_at(ino) {
            return Some(self.file_node(&self.files[i as usize]));
        }
        self.by_ino.get(&ino).map(|(n, _)| n.clone())
    }

    /// The inode of a node the kernel already knows, if any.
    pub fn known(&self, node: &Node) -> Option<Ino> {
        match node {
            Node::File(l, p, a) => {
                let view = self.view_of(l, *p)?;
                self.bound_file(view, *a)
                    .map(|i| self.files[i as usize].ino)
            }
            _ => self.by_node.get(node).copied(),
        }
    }

    /// The node's inode number, allocating one if needed, without counting a reference.
    pub fn ino_of(&mut self, node: &Node) -> Ino {
        if let Some(ino) = self.known(node) {
            return ino;
        }
        let ino = loop {
            let ino = rand::random::<u64>() >> 1;
            if ino > ROOT && !self.in_use(ino) {
                break ino;
            }
        };
        self.put(node, ino, 0);
        ino
    }

    /// Count one kernel reference (a lookup or a readdirplus entry).
    pub fn reference(&mut self, node: &Node) -> Ino {
        let ino = self.ino_of(node);
        if let Some(i) = self.file_at(ino) {
            let c = &mut self.files[i as usize].count;
            *c = c.saturating_add(1);
        } else if let Some((_, n)) = self.by_ino.get_mut(&ino) {
            *n = n.saturating_add(1);
        }
        ino
    }

    /// The kernel dropped `n` references.
    pub fn forget(&mut self, ino: Ino, n: u64) {
        if ino == ROOT {
            return;
        }
        let count = match self.file_at(ino) {
            Some(i) => &mut self.files[i as usize].count,
            None => match self.by_ino.get_mut(&ino) {
                Some((_, c)) => c,
                None => return,
            },
        };
        *count = count.saturating_sub(n);
        if *count == 0 {
            self.take(ino);
        }
    }

    /// The node is no longer behind the inode the kernel knows for it (a save replaced the
    /// file, its name was removed): the next lookup gives it a new inode, and the old number
    /// stays with what the kernel's descriptors hold until it is forgotten. Returns the old
    /// number.
    pub fn unbind(&mut self, node: &Node) -> Option<Ino> {
        match node {
            Node::File(l, p, a) => {
                let i = self.bound_file(self.view_of(l, *p)?, *a)?;
                self.set_bound(i, false);
                Some(self.files[i as usize].ino)
            }
            _ => {
                if let Node::Purpose(l, p) = node {
                    self.purposes.remove(&(*p, l.clone()));
                }
                self.by_node.remove(node)
            }
        }
    }

    /// The kernel now holds inode `ino` under `node`'s name (a temp file renamed over it): the
    /// node is that inode from now on, and whatever inode it had before is unbound (returned).
    pub fn rebind(&mut self, node: &Node, ino: Ino) -> Option<Ino> {
        let (_, count, _) = self.take(ino)?;
        let before = self.unbind(node).filter(|&old| old != ino);
        self.put(node, ino, count);
        before
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
        let mut out: Vec<(Ino, Node)> = self
            .by_ino
            .iter()
            .filter(|(_, (n, _))| n.login().is_some_and(|l| &**l == login))
            .map(|(i, (n, _))| (*i, n.clone()))
            .collect();
        out.extend(
            self.files
                .iter()
                .filter(|e| e.ino != 0 && &*self.views[e.view as usize].0 == login)
                .map(|e| (e.ino, self.file_node(e))),
        );
        out
    }

    /// Known file inodes and their assets.
    pub fn files(&self) -> impl Iterator<Item = (Ino, AssetId)> + '_ {
        self.files
            .iter()
            .filter(|e| e.ino != 0)
            .map(|e| (e.ino, e.asset))
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
        self.by_ino.len() + self.files.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        assert_eq!(inodes.node(ROOT), Some(Node::Root));
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
        assert_eq!(inodes.node(moved), Some(photo.clone()));
        assert_eq!(inodes.node(old), Some(photo.clone()));
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

    /// The table as two plain maps keyed by node and by inode: what the compact table must
    /// behave like (it was this before files were held once).
    #[derive(Default)]
    struct Model {
        by_node: HashMap<Node, Ino>,
        by_ino: HashMap<Ino, (Node, u64)>,
    }

    impl Model {
        fn reference(&mut self, node: &Node, fresh: Ino) -> Ino {
            let ino = *self.by_node.entry(node.clone()).or_insert(fresh);
            self.by_ino.entry(ino).or_insert((node.clone(), 0)).1 += 1;
            ino
        }
        fn forget(&mut self, ino: Ino, n: u64) {
            let gone = self.by_ino.get_mut(&ino).is_some_and(|(_, c)| {
                *c = c.saturating_sub(n);
                *c == 0
            });
            if gone {
                let (node, _) = self.by_ino.remove(&ino).unwrap();
                if self.by_node.get(&node) == Some(&ino) {
                    self.by_node.remove(&node);
                }
            }
        }
        fn rebind(&mut self, node: &Node, ino: Ino) -> Option<Ino> {
            let (before, _) = self.by_ino.get_mut(&ino)?;
            let before = std::mem::replace(before, node.clone());
            if self.by_node.get(&before) == Some(&ino) {
                self.by_node.remove(&before);
            }
            self.by_node.insert(node.clone(), ino).filter(|&o| o != ino)
        }
        fn files_of(&self, asset: AssetId) -> Vec<Ino> {
            let mut v: Vec<Ino> = self
                .by_ino
                .iter()
                .filter(|(_, (n, _))| matches!(n, Node::File(_, _, a) if *a == asset))
                .map(|(i, _)| *i)
                .collect();
            v.sort_unstable();
            v
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Reference(usize),
        Forget(usize, u64),
        Unbind(usize),
        Rebind(usize, usize),
    }

    fn nodes() -> Vec<Node> {
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("anna"), Arc::from("bob"));
        let mut out = vec![
            Node::User(a.clone()),
            Node::Purpose(a.clone(), 1),
            Node::Dir(a.clone(), 1, Arc::from("x")),
        ];
        for l in [&a, &b] {
            for p in [1, 2] {
                for asset in 1..=3 {
                    out.push(Node::File(l.clone(), p, asset));
                }
            }
        }
        out
    }

    use proptest::prelude::*;

    proptest::proptest! {
        #![proptest_config(crate::proptest_config(256))]

        /// Any sequence of lookups, forgets, unbinds and renames over files of two users in two
        /// purposes (and a few folders) leaves the compact table answering exactly as the two
        /// plain maps do: which inode a node has, which node an inode is, each asset's inodes.
        #[test]
        fn the_compact_table_answers_as_two_maps(ops in proptest::collection::vec(
            proptest::prop_oneof![
                (0usize..15).prop_map(Op::Reference),
                (0usize..40, 1u64..3).prop_map(|(i, n)| Op::Forget(i, n)),
                (0usize..15).prop_map(Op::Unbind),
                (0usize..15, 0usize..40).prop_map(|(n, i)| Op::Rebind(n, i)),
            ],
            1..120,
        )) {
            let nodes = nodes();
            let mut table = Inodes::new();
            let mut model = Model::default();
            model.by_node.insert(Node::Root, ROOT);
            model.by_ino.insert(ROOT, (Node::Root, 1));
            let mut seen: Vec<Ino> = vec![ROOT];
            for op in ops {
                match op {
                    Op::Reference(n) => {
                        let ino = table.reference(&nodes[n]);
                        prop_assert_eq!(model.reference(&nodes[n], ino), ino);
                        seen.push(ino);
                    }
                    Op::Forget(i, n) => {
                        let ino = seen[i % seen.len()];
                        table.forget(ino, n);
                        if ino != ROOT {
                            model.forget(ino, n);
                        }
                    }
                    Op::Unbind(n) => {
                        prop_assert_eq!(table.unbind(&nodes[n]), model.by_node.remove(&nodes[n]));
                    }
                    Op::Rebind(n, i) => {
                        let ino = seen[i % seen.len()];
                        if ino == ROOT || nodes[n].is_dir() != table.node(ino).is_none_or(|x| x.is_dir()) {
                            continue; // the kernel renames a file over a file only
                        }
                        prop_assert_eq!(table.rebind(&nodes[n], ino), model.rebind(&nodes[n], ino));
                    }
                }
                for node in &nodes {
                    prop_assert_eq!(table.known(node), model.by_node.get(node).copied(), "{:?}", node);
                }
                for ino in &seen {
                    prop_assert_eq!(table.node(*ino), model.by_ino.get(ino).map(|(n, _)| n.clone()));
                }
                for asset in 1..=3 {
                    let mut mine = table.files_of(asset);
                    mine.sort_unstable();
                    prop_assert_eq!(mine, model.files_of(asset));
                }
                prop_assert_eq!(table.len(), model.by_ino.len());
            }
        }
    }
}
