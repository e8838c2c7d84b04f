//! Files whose name went to another file, or to none, while descriptors held them open.
//!
//! On a local filesystem a descriptor holds an inode, not a name: after `rename(tmp, f)` a
//! reader of the old `f` reads the old file to its end, and after `unlink(f)` the file lives
//! on, nameless, until its last close (Python's `TemporaryFile`, SQLite's temp files). The
//! kernel's page cache and file size are per inode, so the mount can only offer that if the
//! new content gets a new inode: when a save through another inode (a temp file renamed over
//! the photo, another user's save, a restore) replaces what an open file here serves, its
//! inode is *kept*: unbound from the name (the next lookup gives a new number) and pinned to
//! the open file its descriptors share, whose size and content `getattr` and `read` serve
//! until the kernel forgets the number. The same happens at `unlink`.
//!
//! Consent still decides: a kept file's descriptors read only while the asset is visible to
//! their user, and an unlinked one while it would be if it had not been removed (a withdrawal
//! cuts it off like every other descriptor).

use super::inodes::{Ino, Inodes, Node};
use super::open_file::{FileKey, OpenFile};
use super::{denied, Attr, Vfs};
use crate::error::Result;
use crate::policy::{AssetId, PurposeId, Status};
use crate::view::{Change, View};
use std::sync::Arc;

/// An inode kept for the descriptors open on it.
#[derive(Clone)]
pub(super) struct Kept {
    pub file: Arc<OpenFile>,
    /// Its attributes when its name went (size and time are read from the file).
    attr: Attr,
}

impl Vfs {
    /// The name of `key`'s file now refers to another file, or none (`unlinked`: the status
    /// the asset had). Its open file, if descriptors hold it, stays with the inode the kernel
    /// knows; the name is unbound from that inode, and `rebind` (the inode a temp file renamed
    /// over it has) becomes the name's inode.
    pub(super) fn keep_replaced(
        &self,
        key: &FileKey,
        unlinked: Option<Status>,
        rebind: Option<Ino>,
    ) {
        let node = Node::File(key.0.clone(), key.1, key.2);
        let file = self.files.get(key);
        if let (Some(f), Some(status)) = (&file, unlinked) {
            f.set_unlinked(status);
        }
        // attributes first (view, then inodes: the lock order)
        let known = self.inodes().known(&node);
        let attr = match (known, &file) {
            (Some(ino), Some(_)) => {
                let view = self.view();
                self.attr_of(&view, &node, ino).ok()
            }
            _ => None,
        };
        let old = {
            let mut inodes = self.inodes();
            match rebind {
                Some(to) => inodes.rebind(&node, to),
                None => inodes.unbind(&node),
            }
        };
        if let (Some(f), Some(ino), Some(mut attr)) = (&file, old, attr) {
            attr.nlink = 0;
            self.kept.lock().unwrap_or_else(|p| p.into_inner()).insert(
                ino,
                Kept {
                    file: f.clone(),
                    attr,
                },
            );
        }
        if let Some(f) = &file {
            self.files.detach_file(key, f);
        }
    }

    /// Open files left behind by the new versions in `changes`: a file of a view that serves
    /// a version older than the asset's current one, is not open for writing and has nothing
    /// pending (a reader while another user saved, or a restore) keeps its inode and version
    /// for its descriptors; the name gets a new inode with the new version. Runs before the
    /// invalidations of the changes are computed, with no lock held.
    pub(super) fn supersede(&self, changes: &[Change]) {
        let mut assets: Vec<AssetId> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Asset {
                    asset,
                    visible: true,
                    ..
                } => Some(*asset),
                _ => None,
            })
            .collect();
        assets.sort_unstable();
        assets.dedup();
        for asset in assets {
            let open = self.files.of_asset_keyed(asset);
            if open.is_empty() {
                continue;
            }
            let Some(current) = self.current_object(asset) else {
                continue;
            };
            for (key, file) in open {
                // a file open for writing stays the name's file: its next save is a version
                // of its own (the last commit wins), never written to a file left behind
                let behind = !file.committing.load(std::sync::atomic::Ordering::Acquire)
                    && file.writers_open.load(std::sync::atomic::Ordering::Acquire) == 0
                    && !file.has_pending()
                    && file.serving() != current;
                if behind {
                    self.keep_replaced(&key, None, None);
                }
            }
        }
    }

    /// The kept file behind inode `ino`, if it is one.
    pub(super) fn kept(&self, ino: Ino) -> Option<Kept> {
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ino)
            .cloned()
    }

    /// Whether `file`'s descriptors in `login`'s view of `purpose` may read `asset` now.
    pub(super) fn may_read(
        &self,
        view: &View,
        file: &OpenFile,
        login: &str,
        purpose: PurposeId,
        asset: AssetId,
    ) -> bool {
        match file.unlinked() {
            Some(status) => view.visible_as_kept(login, purpose, asset, status, chrono::Utc::now()),
            None => view.file_visible(login, purpose, asset),
        }
    }

    /// The attributes of kept inode `ino` (node `node`), or EACCES once its user may no
    /// longer read it.
    pub(super) fn kept_attr(&self, kept: &Kept, node: &Node) -> Result<Attr> {
        let Node::File(login, purpose, asset) = node else {
            return Err(crate::error::Error::invalid("not a file"));
        };
        if !self.may_read(&self.view(), &kept.file, login, *purpose, *asset) {
            log::info!(
                "denied: attributes of asset {asset} through a descriptor opened before it was hidden"
            );
            return Err(denied("no longer visible"));
        }
        let mut attr = kept.attr.clone();
        attr.size = match *kept
            .file
            .pending_size
            .lock()
            .unwrap_or_else(|p| p.into_inner())
        {
            Some(size) => size,
            None => {
                let st = kept.file.state.read().unwrap_or_else(|p| p.into_inner());
                st.writer
                    .as_ref()
                    .map_or_else(|| st.reader.len(), |w| w.writer.len())
            }
        };
        if let Some(m) = *kept
            .file
            .pending_mtime
            .lock()
            .unwrap_or_else(|p| p.into_inner())
        {
            attr.mtime = m;
        }
        Ok(attr)
    }

    /// A descriptor on `file` closed: once none is left, its kept inodes no longer hold it
    /// (the kernel may ask about the number until it forgets it: the file is gone then).
    pub(super) fn release_kept(&self, file: &Arc<OpenFile>) {
        if file.handle_count() == 0 {
            self.kept
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, k| !Arc::ptr_eq(&k.file, file));
        }
    }

    /// The kernel forgot inode `ino`.
    pub(super) fn forget_kept(&self, ino: Ino) {
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ino);
    }

    /// Kept inodes of `asset` (their pages go when a change hides it), with the inode
    /// table held.
    pub(super) fn kept_of(&self, inodes: &Inodes, asset: AssetId) -> Vec<Ino> {
        let kept: Vec<Ino> = self
            .kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect();
        kept.into_iter()
            .filter(|ino| {
                matches!(inodes.node(*ino), Some(Node::File(_, _, a)) if self.current_asset(a) == asset)
            })
            .collect()
    }
}
