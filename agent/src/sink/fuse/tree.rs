//! The immutable snapshot FUSE serves: one flat directory of files, each with its bytes, mode,
//! owner, secret version and optional list of allowed uids. A rotation builds a new [`Tree`] and
//! swaps it in whole; an open file handle keeps the `Arc` of the bytes it opened.
//!
//! Inode numbers are stable: file `i` of the config is inode `i + 2` (the root is 1), whatever
//! its content or version, for the life of the mount.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The root directory's inode.
pub const ROOT_INO: u64 = 1;

/// The bytes of one version of a file; zeroized when the last handle on them is gone.
pub type Bytes = Arc<Zeroizing<Vec<u8>>>;

/// One file of a snapshot.
#[derive(Clone)]
pub struct Node {
    pub name: Arc<str>,
    pub data: Bytes,
    /// Permission bits (at most 0o777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The secret's version (0 for templates and non-KV sources).
    pub version: u64,
    /// Only these uids may open the file (on top of the mode bits); `None`: anyone the mode
    /// lets in.
    pub uids: Option<Arc<[u32]>>,
    pub mtime: SystemTime,
    /// Names this content (and mode and owner): the generation it first appeared in. Kept
    /// across snapshots while the file does not change.
    pub id: u64,
    /// A placeholder (no content yet): the file reads a lazy secret not leased yet. Listed
    /// and empty; its first open waits for the content.
    pub pending: bool,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field(
                "data",
                &format_args!("<{} bytes redacted>", self.data.len()),
            )
            .field("mode", &format_args!("{:#o}", self.mode))
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("version", &self.version)
            .field("uids", &self.uids)
            .field("id", &self.id)
            .field("pending", &self.pending)
            .finish()
    }
}

impl Node {
    /// Whether `uid` may open the file under its uid list (the mode bits are the kernel's job:
    /// the mount uses `default_permissions`).
    pub fn uid_allowed(&self, uid: u32) -> bool {
        self.uids.as_ref().is_none_or(|list| list.contains(&uid))
    }

    /// Same content, mode and owner (content compared in constant time).
    fn same_as(&self, other: &Node) -> bool {
        self.mode == other.mode
            && self.pending == other.pending
            && self.uid == other.uid
            && self.gid == other.gid
            && self.data.len() == other.data.len()
            && bool::from(self.data.as_slice().ct_eq(other.data.as_slice()))
    }
}

/// A complete snapshot: `files[i]` is inode `i + 2`; `None` until the file has content.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub generation: u64,
    pub files: Vec<Option<Node>>,
    /// When this snapshot was made (the root directory's mtime).
    pub mtime: Option<SystemTime>,
}

/// Why a file changed between two snapshots, for kernel cache invalidation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// New content, mode or owner (now `id`): drop the inode's cached pages and attributes.
    Content { ino: u64, id: u64 },
    /// The name appeared (with content `id`) or went away (`None`): drop the cached entry.
    Entry {
        ino: u64,
        name: String,
        id: Option<u64>,
    },
}

impl Tree {
    /// An empty snapshot for `count` configured files.
    pub fn empty(count: usize) -> Tree {
        Tree {
            generation: 0,
            files: vec![None; count],
            mtime: None,
        }
    }

    /// The inode of file index `i`.
    pub fn ino(i: usize) -> u64 {
        i as u64 + 2
    }

    /// The file index of inode `ino`, if it is a file inode.
    pub fn index(ino: u64) -> Option<usize> {
        usize::try_from(ino.checked_sub(2)?).ok()
    }

    /// The file at `ino`, if it has content.
    pub fn node(&self, ino: u64) -> Option<&Node> {
        self.files.get(Self::index(ino)?)?.as_ref()
    }

    /// The inode and node named `name`.
    pub fn lookup(&self, name: &str) -> Option<(u64, &Node)> {
        self.files.iter().enumerate().find_map(|(i, n)| {
            n.as_ref()
                .filter(|n| &*n.name == name)
                .map(|n| (Self::ino(i), n))
        })
    }

    /// What changed from `old` to `self`; `self` keeps `old`'s ids and mtimes for unchanged
    /// files.
    pub fn changes_from(&mut self, old: &Tree) -> Vec<Change> {
        let mut out = Vec::new();
        for (i, new) in self.files.iter_mut().enumerate() {
            let ino = Self::ino(i);
            match (old.files.get(i).and_then(Option::as_ref), new.as_mut()) {
                (None, None) => {}
                (Some(o), Some(n)) if o.same_as(n) => {
                    n.mtime = o.mtime;
                    n.id = o.id;
                }
                (Some(_), Some(n)) => out.push(Change::Content { ino, id: n.id }),
                (Some(o), None) => out.push(Change::Entry {
                    ino,
                    name: o.name.to_string(),
                    id: None,
                }),
                (None, Some(n)) => out.push(Change::Entry {
                    ino,
                    name: n.name.to_string(),
                    id: Some(n.id),
                }),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, data: &[u8], uids: Option<&[u32]>) -> Node {
        Node {
            name: name.into(),
            data: Arc::new(Zeroizing::new(data.to_vec())),
            mode: 0o440,
            uid: 0,
            gid: 0,
            version: 1,
            uids: uids.map(Arc::from),
            mtime: SystemTime::UNIX_EPOCH,
            id: 1,
            pending: false,
        }
    }

    #[test]
    fn uid_lists_restrict_and_absent_lists_do_not() {
        let open = node("a", b"x", None);
        assert!(open.uid_allowed(0) && open.uid_allowed(65534));
        let listed = node("a", b"x", Some(&[1000, 1001]));
        assert!(listed.uid_allowed(1000) && listed.uid_allowed(1001));
        assert!(!listed.uid_allowed(0), "root is not implied");
        assert!(!listed.uid_allowed(65534));
    }

    #[test]
    fn inodes_are_stable_indexes() {
        assert_eq!(Tree::ino(0), 2);
        assert_eq!(Tree::index(2), Some(0));
        assert_eq!(Tree::index(ROOT_INO), None);
        assert_eq!(Tree::index(0), None);
        let mut t = Tree::empty(2);
        t.files[1] = Some(node("b", b"y", None));
        assert_eq!(t.lookup("b").map(|(i, _)| i), Some(3));
        assert!(t.lookup("a").is_none(), "not rendered yet");
        assert!(t.node(2).is_none() && t.node(3).is_some() && t.node(99).is_none());
    }

    #[test]
    fn changes_name_content_and_entries_only() {
        let mut old = Tree::empty(3);
        old.files[0] = Some(node("same", b"1", None));
        old.files[1] = Some(node("rotated", b"old", None));
        let mut new = Tree::empty(3);
        let mut same = node("same", b"1", None);
        same.mtime = SystemTime::now();
        same.id = 2;
        new.files[0] = Some(same);
        let mut rotated = node("rotated", b"new", None);
        rotated.id = 2;
        new.files[1] = Some(rotated);
        new.files[2] = Some(node("added", b"z", None));
        let changes = new.changes_from(&old);
        assert_eq!(
            changes,
            [
                Change::Content { ino: 3, id: 2 },
                Change::Entry {
                    ino: 4,
                    name: "added".into(),
                    id: Some(1),
                }
            ]
        );
        assert_eq!(
            new.files[0].as_ref().unwrap().id,
            1,
            "an unchanged file keeps its id"
        );
        assert_eq!(
            new.files[0].as_ref().unwrap().mtime,
            SystemTime::UNIX_EPOCH,
            "an unchanged file keeps its mtime"
        );
        let gone = Tree::empty(3).changes_from(&new);
        assert_eq!(gone.len(), 3);
    }

    #[test]
    fn debug_never_shows_bytes() {
        let text = format!("{:?}", node("a", b"hunter2", None));
        assert!(
            !text.contains("hunter2") && text.contains("7 bytes redacted"),
            "{text}"
        );
    }
}
