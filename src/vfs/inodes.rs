//! Inode numbers for the nodes of the mount.
//!
//! A node is a place in one user's view: the same photo seen by two users, or in two purposes,
//! is two nodes with two inode numbers, so the kernel's shared caches never mix one user's
//! entry (owner, mode, visibility) with another's. Numbers are handed out on lookup and never
//! reused; a node is forgotten when the kernel drops its last reference.

use crate::policy::{AssetId, PurposeId};
use std::collections::HashMap;
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
    next: Ino,
}

impl Inodes {
    pub fn new() -> Inodes {
        let mut i = Inodes {
            next: ROOT + 1,
            ..Default::default()
        };
        i.by_node.insert(Node::Root, ROOT);
        i.by_ino.insert(ROOT, (Node::Root, 1));
        i
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
        let ino = self.next;
        self.next += 1;
        self.by_node.insert(node.clone(), ino);
        self.by_ino.insert(ino, (node.clone(), 0));
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
                    self.by_node.remove(&node);
                }
            }
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
        self.by_node
            .keys()
            .filter_map(|n| match n {
                Node::Purpose(l, p) if *p == purpose => Some(l.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.by_ino.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ino.is_empty()
    }
}
