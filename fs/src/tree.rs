//! The in-memory bpffs tree: directories, pins, symlinks; no FUSE, no syscalls.
//!
//! Semantics follow `kernel/bpf/inode.c` (the `bpf_dir_iops` table: `bpf_lookup`,
//! `bpf_mkdir`, `bpf_symlink`, `simple_rmdir`, `simple_rename`, `simple_link`,
//! `simple_unlink`) plus the generic VFS checks the kernel makes before calling them
//! (`vfs_rename`, `may_delete`, `vfs_link`), so the tree is self-consistent even when it
//! is driven through the API rather than through the VFS. Permission checks for VFS
//! callers are the kernel's (`default_permissions`); [`Tree::permission`] exists for the
//! API paths (pin/get) that do not go through the VFS.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::{Cred, FsError, ObjKind, ObjRef};

/// Inode number of the root directory (also FUSE's `FUSE_ROOT_ID`, and the kernel
/// bpffs root's `st_ino`).
pub const ROOT_INO: u64 = 1;

const S_ISGID: u32 = 0o2000;
const S_ISVTX: u32 = 0o1000;
const NAME_MAX: usize = 255;

/// What an inode is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A directory with its entries and its parent (the root is its own parent).
    Dir {
        /// Parent directory inode.
        parent: u64,
        /// Entries, sorted by name (readdir order).
        children: BTreeMap<OsString, u64>,
    },
    /// A pinned object.
    Pin(ObjRef),
    /// A symbolic link and its target.
    Symlink(OsString),
    /// One of the iterator files the kernel's `bpf_preload` puts in every fresh instance
    /// (`maps.debug`, `progs.debug`): a listing of maps or programs.
    Iter(ObjKind),
}

/// One inode.
#[derive(Debug, Clone)]
pub struct Node {
    /// Inode number (FUSE node id and `st_ino`).
    pub ino: u64,
    /// Directory, pin or symlink.
    pub kind: NodeKind,
    /// Permission bits including set-id and sticky bits (no file type bits).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count: names for pins/symlinks, 2 + subdirectories for directories.
    pub nlink: u32,
    /// Last access.
    pub atime: SystemTime,
    /// Last modification.
    pub mtime: SystemTime,
    /// Last status change.
    pub ctime: SystemTime,
    /// FUSE lookup count: the node stays (as an orphan) while the kernel references it.
    pub lookups: u64,
}

impl Node {
    /// Whether the node is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Dir { .. })
    }
}

/// Permission request bits, as `MAY_READ`/`MAY_WRITE`/`MAY_EXEC`.
pub mod may {
    /// Read.
    pub const READ: u32 = 4;
    /// Write.
    pub const WRITE: u32 = 2;
    /// Execute / search.
    pub const EXEC: u32 = 1;
}

/// The tree of one bpffs instance.
#[derive(Debug)]
pub struct Tree {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
}

/// Checks a single path component as `bpf_lookup` and the VFS would.
pub fn check_name(name: &OsStr) -> Result<(), FsError> {
    let b = name.as_bytes();
    if b.is_empty() {
        return Err(FsError::NotFound);
    }
    if b.contains(&b'/') || b.contains(&0) {
        return Err(FsError::Invalid);
    }
    if b.len() > NAME_MAX {
        return Err(FsError::NameTooLong);
    }
    // bpf_lookup: "Dots in names are reserved for future extensions" (any directory
    // with a non-zero mode, i.e. all of ours).
    if b.contains(&b'.') {
        return Err(FsError::Perm);
    }
    Ok(())
}

impl Tree {
    /// A tree with only the root directory, owned by `uid:gid` with `mode` (the kernel
    /// adds the sticky bit: `inode->i_mode |= S_ISVTX | opts->mode`).
    pub fn new(uid: u32, gid: u32, mode: u32) -> Self {
        let now = SystemTime::now();
        let root = Node {
            ino: ROOT_INO,
            kind: NodeKind::Dir {
                parent: ROOT_INO,
                children: BTreeMap::new(),
            },
            mode: (mode & 0o7777) | S_ISVTX,
            uid,
            gid,
            nlink: 2,
            atime: now,
            mtime: now,
            ctime: now,
            lookups: 0,
        };
        Tree {
            nodes: HashMap::from([(ROOT_INO, root)]),
            next_ino: ROOT_INO + 1,
        }
    }

    /// The node with this inode number.
    pub fn get(&self, ino: u64) -> Option<&Node> {
        self.nodes.get(&ino)
    }

    /// The object pinned at `ino`, if it is a live pin.
    pub fn obj(&self, ino: u64) -> Option<ObjRef> {
        match self.nodes.get(&ino) {
            Some(Node {
                kind: NodeKind::Pin(o),
                nlink,
                ..
            }) if *nlink > 0 => Some(*o),
            _ => None,
        }
    }

    fn dir(&self, ino: u64) -> Result<&Node, FsError> {
        let n = self.nodes.get(&ino).ok_or(FsError::NotFound)?;
        match &n.kind {
            NodeKind::Dir { .. } if n.nlink == 0 => Err(FsError::NotFound), // removed dir
            NodeKind::Dir { .. } => Ok(n),
            _ => Err(FsError::NotDir),
        }
    }

    fn children(&self, dir: u64) -> &BTreeMap<OsString, u64> {
        match &self.nodes[&dir].kind {
            NodeKind::Dir { children, .. } => children,
            _ => unreachable!("children() of a non-directory"),
        }
    }

    fn children_mut(&mut self, dir: u64) -> &mut BTreeMap<OsString, u64> {
        match &mut self.nodes.get_mut(&dir).expect("dir exists").kind {
            NodeKind::Dir { children, .. } => children,
            _ => unreachable!("children_mut() of a non-directory"),
        }
    }

    /// Looks `name` up in directory `parent` (`bpf_lookup`: dotted names are EPERM).
    /// An existing entry is found whatever its name (the kernel finds `maps.debug` in the
    /// dcache without calling `bpf_lookup`).
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, FsError> {
        self.dir(parent)?;
        if let Some(ino) = self.children(parent).get(name) {
            return Ok(*ino);
        }
        check_name(name)?;
        Err(FsError::NotFound)
    }

    /// The entries of a directory, sorted by name.
    pub fn entries(&self, dir: u64) -> Result<Vec<(OsString, u64)>, FsError> {
        self.dir(dir)?;
        Ok(self
            .children(dir)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect())
    }

    /// The parent of a directory.
    pub fn parent_of(&self, dir: u64) -> Result<u64, FsError> {
        match &self.dir(dir)?.kind {
            NodeKind::Dir { parent, .. } => Ok(*parent),
            _ => unreachable!(),
        }
    }

    fn touch_dir(&mut self, dir: u64) {
        let now = SystemTime::now();
        if let Some(n) = self.nodes.get_mut(&dir) {
            n.mtime = now;
            n.ctime = now;
        }
    }

    /// Checks that `name` can be created in `parent` (exists, is a dir, name valid, free).
    fn check_create(&self, parent: u64, name: &OsStr) -> Result<(), FsError> {
        self.dir(parent)?;
        if name == "." || name == ".." || self.children(parent).contains_key(name) {
            return Err(FsError::Exists);
        }
        check_name(name)
    }

    /// Adds a preloaded iterator file to the root: mode 0400, owned by `uid:gid` (the
    /// mounter), as `bpf_iter_link_pin_kernel` does at `fill_super`.
    pub fn add_iter(&mut self, name: &str, kind: ObjKind, uid: u32, gid: u32) {
        let cred = Cred {
            uid,
            gid,
            groups: Vec::new(),
        };
        self.insert(
            ROOT_INO,
            OsStr::new(name),
            NodeKind::Iter(kind),
            0o400,
            &cred,
        );
    }

    /// Owner of a new inode, as `inode_init_owner`: the creator's fsuid; the directory's
    /// group if it is set-group-id (and new directories inherit the bit), else the
    /// creator's fsgid.
    fn init_owner(&self, parent: u64, cred: &Cred, mode: u32, is_dir: bool) -> (u32, u32, u32) {
        let p = &self.nodes[&parent];
        if p.mode & S_ISGID != 0 {
            let mode = if is_dir { mode | S_ISGID } else { mode };
            (cred.uid, p.gid, mode)
        } else {
            (cred.uid, cred.gid, mode)
        }
    }

    fn insert(&mut self, parent: u64, name: &OsStr, kind: NodeKind, mode: u32, cred: &Cred) -> u64 {
        let is_dir = matches!(kind, NodeKind::Dir { .. });
        let (uid, gid, mode) = self.init_owner(parent, cred, mode, is_dir);
        let ino = self.next_ino;
        self.next_ino += 1;
        let now = SystemTime::now();
        let node = Node {
            ino,
            kind,
            mode,
            uid,
            gid,
            nlink: if is_dir { 2 } else { 1 },
            atime: now,
            mtime: now,
            ctime: now,
            lookups: 0,
        };
        self.nodes.insert(ino, node);
        self.children_mut(parent).insert(name.to_owned(), ino);
        if is_dir {
            self.nodes.get_mut(&parent).expect("parent").nlink += 1;
        }
        self.touch_dir(parent);
        ino
    }

    /// `mkdir`: `mode` has the caller's umask already applied (the VFS does that);
    /// only permission, set-id and sticky bits are kept (`vfs_mkdir`).
    pub fn mkdir(
        &mut self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        cred: &Cred,
    ) -> Result<u64, FsError> {
        self.check_create(parent, name)?;
        let kind = NodeKind::Dir {
            parent,
            children: BTreeMap::new(),
        };
        Ok(self.insert(parent, name, kind, mode & 0o1777, cred))
    }

    /// `symlink`: mode 0777, any target text (bpffs does not check it).
    pub fn symlink(
        &mut self,
        parent: u64,
        name: &OsStr,
        target: &OsStr,
        cred: &Cred,
    ) -> Result<u64, FsError> {
        self.check_create(parent, name)?;
        if target.is_empty() {
            return Err(FsError::NotFound); // the VFS refuses empty symlink targets
        }
        Ok(self.insert(
            parent,
            name,
            NodeKind::Symlink(target.to_owned()),
            0o777,
            cred,
        ))
    }

    /// A pin: `S_IFREG | (0600 & ~umask)`, owned by the pinner (`bpf_obj_do_pin`).
    pub fn pin(
        &mut self,
        parent: u64,
        name: &OsStr,
        obj: ObjRef,
        cred: &Cred,
        umask: u32,
    ) -> Result<u64, FsError> {
        self.check_create(parent, name)?;
        Ok(self.insert(parent, name, NodeKind::Pin(obj), 0o600 & !umask, cred))
    }

    /// Hard link of a non-directory (`simple_link`; the VFS refuses directories with EPERM).
    pub fn link(&mut self, ino: u64, new_parent: u64, new_name: &OsStr) -> Result<(), FsError> {
        let n = self.nodes.get(&ino).ok_or(FsError::NotFound)?;
        if n.is_dir() || matches!(n.kind, NodeKind::Iter(_)) {
            return Err(FsError::Perm);
        }
        if n.nlink == 0 {
            return Err(FsError::NotFound);
        }
        self.check_create(new_parent, new_name)?;
        let n = self.nodes.get_mut(&ino).expect("node");
        n.nlink += 1;
        n.ctime = SystemTime::now();
        self.children_mut(new_parent)
            .insert(new_name.to_owned(), ino);
        self.touch_dir(new_parent);
        Ok(())
    }

    /// Drops one link of a non-directory node; returns the object if this was its last
    /// name (the pin reference is released then).
    fn drop_link(&mut self, ino: u64) -> Option<ObjRef> {
        let n = self.nodes.get_mut(&ino)?;
        n.nlink = n.nlink.saturating_sub(1);
        n.ctime = SystemTime::now();
        if n.nlink > 0 {
            return None;
        }
        let released = match n.kind {
            NodeKind::Pin(o) => Some(o),
            _ => None,
        };
        if n.lookups == 0 {
            self.nodes.remove(&ino);
        }
        released
    }

    /// Whether `ino` is a preloaded iterator file: on the reference kernel every
    /// operation that looks its name up outside the dcache (unlink, rename from or onto it,
    /// link) fails with EPERM, as `bpf_lookup` refuses the dotted name; stat, chmod and
    /// utimes work.
    fn is_iter(&self, ino: u64) -> bool {
        matches!(
            self.nodes.get(&ino).map(|n| &n.kind),
            Some(NodeKind::Iter(_))
        )
    }

    /// `unlink` (unpin): refuses directories with EISDIR. Returns the released object
    /// when the last name of a pin went away.
    pub fn unlink(&mut self, parent: u64, name: &OsStr) -> Result<Option<ObjRef>, FsError> {
        let ino = self.lookup(parent, name)?;
        if self.nodes[&ino].is_dir() {
            return Err(FsError::IsDir);
        }
        if self.is_iter(ino) {
            return Err(FsError::Perm);
        }
        self.children_mut(parent).remove(name);
        self.touch_dir(parent);
        Ok(self.drop_link(ino))
    }

    fn remove_dir_node(&mut self, parent: u64, ino: u64) {
        let n = self.nodes.get_mut(&ino).expect("dir");
        n.nlink = 0;
        if n.lookups == 0 {
            self.nodes.remove(&ino);
        }
        let p = self.nodes.get_mut(&parent).expect("parent");
        p.nlink = p.nlink.saturating_sub(1);
    }

    /// `rmdir`: ENOTDIR for non-directories, ENOTEMPTY for non-empty ones.
    pub fn rmdir(&mut self, parent: u64, name: &OsStr) -> Result<(), FsError> {
        let ino = self.lookup(parent, name)?;
        if !self.nodes[&ino].is_dir() {
            return Err(FsError::NotDir);
        }
        if !self.children(ino).is_empty() {
            return Err(FsError::NotEmpty);
        }
        self.children_mut(parent).remove(name);
        self.remove_dir_node(parent, ino);
        self.touch_dir(parent);
        Ok(())
    }

    /// Whether `anc` is `ino` or one of its ancestors.
    fn is_ancestor(&self, anc: u64, mut ino: u64) -> bool {
        loop {
            if ino == anc {
                return true;
            }
            match self.nodes.get(&ino).map(|n| &n.kind) {
                Some(NodeKind::Dir { parent, .. }) if *parent != ino => ino = *parent,
                _ => return false,
            }
        }
    }

    fn set_parent(&mut self, dir: u64, new_parent: u64) {
        if let Some(Node {
            kind: NodeKind::Dir { parent, .. },
            ..
        }) = self.nodes.get_mut(&dir)
        {
            *parent = new_parent;
        }
    }

    /// `rename`/`renameat2`: `noreplace` gives EEXIST on an existing target, `exchange`
    /// swaps two existing names. Replacing a pin releases it when that was its last name.
    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        noreplace: bool,
        exchange: bool,
    ) -> Result<Option<ObjRef>, FsError> {
        if noreplace && exchange {
            return Err(FsError::Invalid);
        }
        let src = self.lookup(parent, name)?;
        self.dir(new_parent)?;
        if new_name == "." || new_name == ".." {
            return Err(FsError::Busy);
        }
        let dst = self.children(new_parent).get(new_name).copied();
        if dst.is_none() {
            check_name(new_name)?;
        }
        if self.is_iter(src) || dst.is_some_and(|d| self.is_iter(d)) {
            return Err(FsError::Perm);
        }
        let src_dir = self.nodes[&src].is_dir();
        if exchange {
            let dst = dst.ok_or(FsError::NotFound)?;
            if src == dst {
                return Ok(None);
            }
            let dst_dir = self.nodes[&dst].is_dir();
            // Neither may be an ancestor of the other's new place.
            if (src_dir && self.is_ancestor(src, new_parent))
                || (dst_dir && self.is_ancestor(dst, parent))
            {
                return Err(FsError::Invalid);
            }
            self.children_mut(parent).insert(name.to_owned(), dst);
            self.children_mut(new_parent)
                .insert(new_name.to_owned(), src);
            if src_dir != dst_dir && parent != new_parent {
                // A directory moved to the other parent: fix the link counts.
                let (to_new, to_old) = if src_dir { (1, 0) } else { (0, 1) };
                self.nodes.get_mut(&new_parent).expect("dir").nlink += to_new;
                self.nodes.get_mut(&parent).expect("dir").nlink += to_old;
                self.nodes.get_mut(&new_parent).expect("dir").nlink -= to_old;
                self.nodes.get_mut(&parent).expect("dir").nlink -= to_new;
            }
            if src_dir {
                self.set_parent(src, new_parent);
            }
            if dst_dir {
                self.set_parent(dst, parent);
            }
            self.touch_dir(parent);
            self.touch_dir(new_parent);
            return Ok(None);
        }
        if let Some(dst) = dst {
            if noreplace {
                return Err(FsError::Exists);
            }
            if dst == src {
                return Ok(None); // two names of one inode: nothing happens
            }
            let dst_dir = self.nodes[&dst].is_dir();
            match (src_dir, dst_dir) {
                (true, false) => return Err(FsError::NotDir),
                (false, true) => return Err(FsError::IsDir),
                _ => {}
            }
        }
        if src_dir {
            if self.is_ancestor(src, new_parent) {
                return Err(FsError::Invalid);
            }
            if let Some(dst) = dst {
                if self.is_ancestor(dst, parent) || !self.children(dst).is_empty() {
                    return Err(FsError::NotEmpty);
                }
            }
        }
        let mut released = None;
        if let Some(dst) = dst {
            self.children_mut(new_parent).remove(new_name);
            if src_dir {
                self.remove_dir_node(new_parent, dst);
            } else {
                released = self.drop_link(dst);
            }
        }
        self.children_mut(parent).remove(name);
        self.children_mut(new_parent)
            .insert(new_name.to_owned(), src);
        if src_dir && parent != new_parent {
            self.nodes.get_mut(&parent).expect("dir").nlink -= 1;
            self.nodes.get_mut(&new_parent).expect("dir").nlink += 1;
            self.set_parent(src, new_parent);
        }
        self.nodes.get_mut(&src).expect("src").ctime = SystemTime::now();
        self.touch_dir(parent);
        self.touch_dir(new_parent);
        Ok(released)
    }

    /// `chmod`/`chown` (the kernel checked who may do it). Keeps the file type.
    pub fn setattr(
        &mut self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<&Node, FsError> {
        let n = self.nodes.get_mut(&ino).ok_or(FsError::NotFound)?;
        if let Some(m) = mode {
            n.mode = m & 0o7777;
        }
        if let Some(u) = uid {
            n.uid = u;
        }
        if let Some(g) = gid {
            n.gid = g;
        }
        if mode.is_some() || uid.is_some() || gid.is_some() {
            n.ctime = SystemTime::now();
        }
        Ok(n)
    }

    /// `utimensat`: sets access and/or modification time (ctime follows).
    pub fn set_times(
        &mut self,
        ino: u64,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Result<(), FsError> {
        let n = self.nodes.get_mut(&ino).ok_or(FsError::NotFound)?;
        if let Some(a) = atime {
            n.atime = a;
        }
        if let Some(m) = mtime {
            n.mtime = m;
        }
        if atime.is_some() || mtime.is_some() {
            n.ctime = SystemTime::now();
        }
        Ok(())
    }

    /// Records that the kernel learned about `ino` (one FUSE entry reply).
    pub fn remember(&mut self, ino: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.lookups += 1;
        }
    }

    /// FUSE `forget`: frees an unlinked node once the kernel forgot it.
    pub fn forget(&mut self, ino: u64, count: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.lookups = n.lookups.saturating_sub(count);
            if n.lookups == 0 && n.nlink == 0 && ino != ROOT_INO {
                self.nodes.remove(&ino);
            }
        }
    }

    /// `generic_permission` for the API paths: owner, group, other bits; uid 0 has
    /// CAP_DAC_OVERRIDE (read/write always, exec if any x bit or a directory).
    pub fn permission(&self, ino: u64, cred: &Cred, mask: u32) -> Result<(), FsError> {
        let n = self.nodes.get(&ino).ok_or(FsError::NotFound)?;
        if cred.uid == 0 {
            if mask & may::EXEC == 0 || n.is_dir() || n.mode & 0o111 != 0 {
                return Ok(());
            }
            return Err(FsError::Access);
        }
        let bits = if cred.uid == n.uid {
            (n.mode >> 6) & 7
        } else if cred.in_group(n.gid) {
            (n.mode >> 3) & 7
        } else {
            n.mode & 7
        };
        if mask & !bits & 7 == 0 {
            Ok(())
        } else {
            Err(FsError::Access)
        }
    }

    /// Every name of every pin, as a path relative to the root, with its object.
    pub fn pins(&self) -> Vec<(PathBuf, ObjRef)> {
        let mut out = Vec::new();
        let mut stack = vec![(ROOT_INO, PathBuf::new())];
        while let Some((dir, path)) = stack.pop() {
            for (name, ino) in self.children(dir) {
                let p = path.join(name);
                match &self.nodes[ino].kind {
                    NodeKind::Dir { .. } => stack.push((*ino, p)),
                    NodeKind::Pin(o) => out.push((p, *o)),
                    NodeKind::Symlink(_) | NodeKind::Iter(_) => {}
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Empties the tree (the superblock went away); returns every pin still held.
    pub fn clear(&mut self) -> Vec<ObjRef> {
        let released = self
            .nodes
            .values()
            .filter_map(|n| match n.kind {
                NodeKind::Pin(o) if n.nlink > 0 => Some(o),
                _ => None,
            })
            .collect();
        self.nodes.retain(|ino, _| *ino == ROOT_INO);
        self.children_mut(ROOT_INO).clear();
        self.nodes.get_mut(&ROOT_INO).expect("root").nlink = 2;
        released
    }

    /// Resolves a path relative to the root, without following symlinks (components
    /// `.`/`..` are honoured; the root is its own parent).
    pub fn resolve(&self, path: &std::path::Path) -> Result<u64, FsError> {
        use std::path::Component;
        let mut ino = ROOT_INO;
        for c in path.components() {
            match c {
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                Component::ParentDir => ino = self.parent_of(ino)?,
                Component::Normal(name) => ino = self.lookup(ino, name)?,
            }
        }
        Ok(ino)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ObjKind;

    fn root() -> Cred {
        Cred {
            uid: 0,
            gid: 0,
            groups: vec![],
        }
    }
    fn user(uid: u32) -> Cred {
        Cred {
            uid,
            gid: uid,
            groups: vec![],
        }
    }
    fn map(id: u32) -> ObjRef {
        ObjRef {
            kind: ObjKind::Map,
            id,
        }
    }
    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn root_is_sticky_1777_ino_1() {
        let t = Tree::new(0, 0, 0o777);
        let r = t.get(ROOT_INO).unwrap();
        assert_eq!(r.mode, 0o1777);
        assert_eq!(r.nlink, 2);
        assert!(r.is_dir());
    }

    #[test]
    fn pin_mode_owner_and_errors() {
        let mut t = Tree::new(0, 0, 0o777);
        let ino = t
            .pin(ROOT_INO, os("m"), map(7), &user(1000), 0o022)
            .unwrap();
        let n = t.get(ino).unwrap();
        assert_eq!((n.mode, n.uid, n.gid, n.nlink), (0o600, 1000, 1000, 1));
        assert_eq!(t.obj(ino), Some(map(7)));
        let ino2 = t.pin(ROOT_INO, os("m2"), map(8), &root(), 0o077).unwrap();
        assert_eq!(t.get(ino2).unwrap().mode, 0o600);
        let ino3 = t.pin(ROOT_INO, os("m3"), map(8), &root(), 0o277).unwrap();
        assert_eq!(t.get(ino3).unwrap().mode, 0o400);
        assert_eq!(
            t.pin(ROOT_INO, os("m"), map(9), &root(), 0).unwrap_err(),
            FsError::Exists
        );
        assert_eq!(
            t.pin(ROOT_INO, os("a.b"), map(9), &root(), 0).unwrap_err(),
            FsError::Perm
        );
        assert_eq!(
            t.pin(ROOT_INO, os("."), map(9), &root(), 0).unwrap_err(),
            FsError::Exists
        );
        assert_eq!(
            t.pin(ino, os("x"), map(9), &root(), 0).unwrap_err(),
            FsError::NotDir
        );
        assert_eq!(
            t.pin(999, os("x"), map(9), &root(), 0).unwrap_err(),
            FsError::NotFound
        );
        let long = "a".repeat(256);
        assert_eq!(
            t.pin(ROOT_INO, os(&long), map(9), &root(), 0).unwrap_err(),
            FsError::NameTooLong
        );
        assert_eq!(t.pins().len(), 3);
    }

    #[test]
    fn mkdir_rmdir_and_nlink() {
        let mut t = Tree::new(0, 0, 0o777);
        let d = t.mkdir(ROOT_INO, os("d"), 0o755, &root()).unwrap();
        assert_eq!(t.get(ROOT_INO).unwrap().nlink, 3);
        let e = t.mkdir(d, os("e"), 0o700, &user(5)).unwrap();
        assert_eq!(t.get(d).unwrap().nlink, 3);
        assert_eq!(t.get(e).unwrap().uid, 5);
        assert_eq!(
            t.mkdir(ROOT_INO, os("d"), 0o755, &root()).unwrap_err(),
            FsError::Exists
        );
        assert_eq!(
            t.mkdir(ROOT_INO, os("x.y"), 0o755, &root()).unwrap_err(),
            FsError::Perm
        );
        assert_eq!(t.rmdir(ROOT_INO, os("d")).unwrap_err(), FsError::NotEmpty);
        assert_eq!(t.rmdir(ROOT_INO, os("zz")).unwrap_err(), FsError::NotFound);
        assert_eq!(t.unlink(ROOT_INO, os("d")).unwrap_err(), FsError::IsDir);
        t.rmdir(d, os("e")).unwrap();
        t.rmdir(ROOT_INO, os("d")).unwrap();
        assert_eq!(t.get(ROOT_INO).unwrap().nlink, 2);
        assert!(t.get(d).is_none() && t.get(e).is_none());
    }

    #[test]
    fn setgid_directory_inherits_group() {
        let mut t = Tree::new(0, 0, 0o777);
        // vfs_mkdir drops S_ISGID from the mode (mkdir -m 2775 does a chmod after).
        let d = t.mkdir(ROOT_INO, os("sg"), 0o2775, &root()).unwrap();
        assert_eq!(t.get(d).unwrap().mode, 0o775);
        t.setattr(d, Some(0o2775), None, Some(100)).unwrap();
        let inner = t.mkdir(d, os("inner"), 0o755, &user(7)).unwrap();
        let n = t.get(inner).unwrap();
        assert_eq!((n.uid, n.gid, n.mode), (7, 100, 0o2755));
        let p = t.pin(d, os("p"), map(1), &user(7), 0o022).unwrap();
        assert_eq!(
            (t.get(p).unwrap().gid, t.get(p).unwrap().mode),
            (100, 0o600)
        );
    }

    #[test]
    fn unlink_releases_last_link_only() {
        let mut t = Tree::new(0, 0, 0o777);
        let p = t.pin(ROOT_INO, os("p"), map(3), &root(), 0).unwrap();
        t.link(p, ROOT_INO, os("q")).unwrap();
        assert_eq!(t.get(p).unwrap().nlink, 2);
        assert_eq!(t.pins().len(), 2);
        assert_eq!(t.unlink(ROOT_INO, os("p")).unwrap(), None);
        assert_eq!(t.unlink(ROOT_INO, os("q")).unwrap(), Some(map(3)));
        assert_eq!(t.unlink(ROOT_INO, os("q")).unwrap_err(), FsError::NotFound);
        assert!(t.get(p).is_none());
    }

    #[test]
    fn unlinked_node_survives_until_forgotten() {
        let mut t = Tree::new(0, 0, 0o777);
        let p = t.pin(ROOT_INO, os("p"), map(3), &root(), 0).unwrap();
        t.remember(p);
        assert_eq!(t.unlink(ROOT_INO, os("p")).unwrap(), Some(map(3)));
        assert!(t.get(p).is_some());
        assert_eq!(t.obj(p), None);
        t.forget(p, 1);
        assert!(t.get(p).is_none());
    }

    #[test]
    fn link_rules() {
        let mut t = Tree::new(0, 0, 0o777);
        let d = t.mkdir(ROOT_INO, os("d"), 0o755, &root()).unwrap();
        let p = t.pin(ROOT_INO, os("p"), map(3), &root(), 0).unwrap();
        assert_eq!(t.link(d, ROOT_INO, os("dl")).unwrap_err(), FsError::Perm);
        assert_eq!(t.link(p, ROOT_INO, os("d")).unwrap_err(), FsError::Exists);
        t.link(p, d, os("p")).unwrap();
        assert_eq!(
            t.pins(),
            vec![(PathBuf::from("d/p"), map(3)), (PathBuf::from("p"), map(3))]
        );
    }

    #[test]
    fn symlink_and_resolve() {
        let mut t = Tree::new(0, 0, 0o777);
        let d = t.mkdir(ROOT_INO, os("xdp"), 0o755, &root()).unwrap();
        let s = t.symlink(ROOT_INO, os("tc"), os("xdp"), &user(3)).unwrap();
        let n = t.get(s).unwrap();
        assert_eq!((n.mode, n.uid, n.nlink), (0o777, 3, 1));
        assert_eq!(n.kind, NodeKind::Symlink("xdp".into()));
        assert_eq!(
            t.symlink(ROOT_INO, os("tc"), os("y"), &root()).unwrap_err(),
            FsError::Exists
        );
        assert_eq!(
            t.symlink(ROOT_INO, os("e"), os(""), &root()).unwrap_err(),
            FsError::NotFound
        );
        let p = t.pin(d, os("globals"), map(1), &root(), 0).unwrap();
        assert_eq!(t.resolve(std::path::Path::new("/xdp/globals")).unwrap(), p);
        assert_eq!(
            t.resolve(std::path::Path::new("xdp/../xdp/./globals"))
                .unwrap(),
            p
        );
        assert_eq!(
            t.resolve(std::path::Path::new("tc/globals")).unwrap_err(),
            FsError::NotDir
        );
        assert_eq!(t.unlink(ROOT_INO, os("tc")).unwrap(), None);
    }

    #[test]
    fn rename_semantics() {
        let mut t = Tree::new(0, 0, 0o777);
        let a = t.mkdir(ROOT_INO, os("a"), 0o755, &root()).unwrap();
        let b = t.mkdir(ROOT_INO, os("b"), 0o755, &root()).unwrap();
        let sub = t.mkdir(a, os("sub"), 0o755, &root()).unwrap();
        let p = t.pin(ROOT_INO, os("p"), map(1), &root(), 0).unwrap();
        let q = t.pin(ROOT_INO, os("q"), map(2), &root(), 0).unwrap();
        // Over an existing pin: the replaced one is released.
        assert_eq!(
            t.rename(ROOT_INO, os("p"), ROOT_INO, os("q"), false, false)
                .unwrap(),
            Some(map(2))
        );
        assert!(t.get(q).is_none());
        assert_eq!(t.lookup(ROOT_INO, os("q")).unwrap(), p);
        // Type mismatches.
        assert_eq!(
            t.rename(ROOT_INO, os("q"), ROOT_INO, os("a"), false, false)
                .unwrap_err(),
            FsError::IsDir
        );
        assert_eq!(
            t.rename(ROOT_INO, os("a"), ROOT_INO, os("q"), false, false)
                .unwrap_err(),
            FsError::NotDir
        );
        // Into its own subtree; over a non-empty dir; over an empty dir.
        assert_eq!(
            t.rename(ROOT_INO, os("a"), sub, os("x"), false, false)
                .unwrap_err(),
            FsError::Invalid
        );
        assert_eq!(
            t.rename(ROOT_INO, os("b"), ROOT_INO, os("a"), false, false)
                .unwrap_err(),
            FsError::NotEmpty
        );
        t.rename(ROOT_INO, os("a"), ROOT_INO, os("b"), false, false)
            .unwrap();
        assert!(t.get(b).is_none());
        assert_eq!(t.lookup(ROOT_INO, os("b")).unwrap(), a);
        assert_eq!(t.get(ROOT_INO).unwrap().nlink, 3);
        // Move a dir to another parent: parent and link counts follow.
        let c = t.mkdir(ROOT_INO, os("c"), 0o755, &root()).unwrap();
        t.rename(a, os("sub"), c, os("sub2"), false, false).unwrap();
        assert_eq!(t.parent_of(sub).unwrap(), c);
        assert_eq!((t.get(a).unwrap().nlink, t.get(c).unwrap().nlink), (2, 3));
        // noreplace, exchange, missing.
        assert_eq!(
            t.rename(ROOT_INO, os("q"), ROOT_INO, os("c"), true, false)
                .unwrap_err(),
            FsError::Exists
        );
        t.rename(ROOT_INO, os("q"), ROOT_INO, os("c"), false, true)
            .unwrap();
        assert_eq!(t.lookup(ROOT_INO, os("q")).unwrap(), c);
        assert_eq!(t.lookup(ROOT_INO, os("c")).unwrap(), p);
        assert_eq!(
            t.rename(ROOT_INO, os("zz"), ROOT_INO, os("y"), false, false)
                .unwrap_err(),
            FsError::NotFound
        );
        assert_eq!(
            t.rename(ROOT_INO, os("q"), ROOT_INO, os("y.z"), false, false)
                .unwrap_err(),
            FsError::Perm
        );
        assert_eq!(
            t.rename(ROOT_INO, os("q"), ROOT_INO, os("zz"), false, true)
                .unwrap_err(),
            FsError::NotFound
        );
    }

    #[test]
    fn exchange_dir_with_pin_across_parents_fixes_nlink() {
        let mut t = Tree::new(0, 0, 0o777);
        let a = t.mkdir(ROOT_INO, os("a"), 0o755, &root()).unwrap();
        let d = t.mkdir(ROOT_INO, os("d"), 0o755, &root()).unwrap();
        t.pin(a, os("p"), map(1), &root(), 0).unwrap();
        t.rename(ROOT_INO, os("d"), a, os("p"), false, true)
            .unwrap();
        assert_eq!(t.parent_of(d).unwrap(), a);
        assert_eq!(t.get(a).unwrap().nlink, 3);
        assert_eq!(t.get(ROOT_INO).unwrap().nlink, 3); // a only
        assert_eq!(t.pins(), vec![(PathBuf::from("d"), map(1))]);
    }

    #[test]
    fn preloaded_iterators_as_the_reference_kernel() {
        let mut t = Tree::new(0, 0, 0o777);
        t.add_iter("maps.debug", ObjKind::Map, 0, 0);
        let md = t.lookup(ROOT_INO, os("maps.debug")).unwrap();
        let n = t.get(md).unwrap();
        assert_eq!((n.mode, n.nlink), (0o400, 1));
        assert_eq!(t.obj(md), None);
        assert!(t.pins().is_empty());
        let e = |r: Result<u64, FsError>| r.unwrap_err();
        assert_eq!(
            e(t.mkdir(ROOT_INO, os("maps.debug"), 0o755, &root())),
            FsError::Exists
        );
        t.pin(ROOT_INO, os("p"), map(1), &root(), 0).unwrap();
        let rn = |t: &mut Tree, a: &str, b: &str| {
            t.rename(ROOT_INO, os(a), ROOT_INO, os(b), false, false)
        };
        assert_eq!(rn(&mut t, "p", "maps.debug").unwrap_err(), FsError::Perm);
        assert_eq!(rn(&mut t, "maps.debug", "q").unwrap_err(), FsError::Perm);
        assert_eq!(t.link(md, ROOT_INO, os("l")).unwrap_err(), FsError::Perm);
        assert_eq!(
            t.unlink(ROOT_INO, os("maps.debug")).unwrap_err(),
            FsError::Perm
        );
        t.setattr(md, Some(0o644), None, None).unwrap();
        assert_eq!(t.get(md).unwrap().mode, 0o644);
        assert_eq!(t.clear(), vec![map(1)]);
    }

    #[test]
    fn permission_bits() {
        let mut t = Tree::new(0, 0, 0o777);
        let p = t
            .pin(ROOT_INO, os("p"), map(1), &user(1000), 0o022)
            .unwrap();
        assert!(t.permission(p, &user(1000), may::READ | may::WRITE).is_ok());
        assert_eq!(
            t.permission(p, &user(1001), may::READ).unwrap_err(),
            FsError::Access
        );
        assert!(t.permission(p, &root(), may::READ | may::WRITE).is_ok());
        assert_eq!(
            t.permission(p, &root(), may::EXEC).unwrap_err(),
            FsError::Access
        );
        t.setattr(p, Some(0o640), None, Some(50)).unwrap();
        let member = Cred {
            uid: 1001,
            gid: 1001,
            groups: vec![50],
        };
        assert!(t.permission(p, &member, may::READ).is_ok());
        assert_eq!(
            t.permission(p, &member, may::WRITE).unwrap_err(),
            FsError::Access
        );
        assert!(t
            .permission(ROOT_INO, &user(1001), may::WRITE | may::EXEC)
            .is_ok());
    }

    #[test]
    fn clear_releases_every_pin_once() {
        let mut t = Tree::new(0, 0, 0o777);
        let d = t.mkdir(ROOT_INO, os("d"), 0o755, &root()).unwrap();
        let p = t.pin(d, os("p"), map(1), &root(), 0).unwrap();
        t.link(p, ROOT_INO, os("p2")).unwrap();
        t.pin(
            ROOT_INO,
            os("q"),
            ObjRef {
                kind: ObjKind::Prog,
                id: 2,
            },
            &root(),
            0,
        )
        .unwrap();
        let mut rel = t.clear();
        rel.sort_by_key(|o| o.id);
        assert_eq!(
            rel,
            vec![
                map(1),
                ObjRef {
                    kind: ObjKind::Prog,
                    id: 2
                }
            ]
        );
        assert!(t.pins().is_empty());
        assert_eq!(t.entries(ROOT_INO).unwrap(), vec![]);
    }
}
