//! The FUSE side: `fuser::Filesystem` over a [`BpfFs`] tree.
//!
//! Node ids are inode numbers (`FileAttr::ino == nodeid`), so `st_ino` is ours. See
//! [`TTL`] for why the kernel may cache entries and attributes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::tree::{Node, NodeKind};
use crate::{BpfFs, Cred, FsError, ObjKind};

/// Entry and attribute cache time. Caching is safe because every change to existing
/// names and inodes goes through the VFS (which updates the kernel's caches itself); the
/// API only adds names (`pin`), and lookups of missing names are never cached (ENOENT
/// replies, no negative entries). Only a directory's mtime may lag by up to this.
const TTL: Duration = Duration::from_secs(1);

/// The `fuser` filesystem of one mounted instance.
pub(crate) struct FuseFs {
    fs: Arc<BpfFs>,
    /// Open pinned-map files: the dump taken at open.
    handles: Mutex<HashMap<u64, Arc<Vec<u8>>>>,
    next_fh: AtomicU64,
}

impl FuseFs {
    pub(crate) fn new(fs: Arc<BpfFs>) -> Self {
        FuseFs {
            fs,
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }
}

fn errno(e: FsError) -> Errno {
    Errno::from_i32(e.errno())
}

fn cred(req: &Request) -> Cred {
    Cred {
        uid: req.uid(),
        gid: req.gid(),
        groups: Vec::new(),
    }
}

fn file_type(n: &Node) -> FileType {
    match n.kind {
        NodeKind::Dir { .. } => FileType::Directory,
        NodeKind::Pin(_) | NodeKind::Iter(_) => FileType::RegularFile,
        NodeKind::Symlink(_) => FileType::Symlink,
    }
}

fn attr(n: &Node) -> FileAttr {
    FileAttr {
        ino: INodeNo(n.ino),
        size: 0,
        blocks: 0,
        atime: n.atime,
        mtime: n.mtime,
        ctime: n.ctime,
        crtime: n.ctime,
        kind: file_type(n),
        perm: (n.mode & 0o7777) as u16,
        nlink: n.nlink,
        uid: n.uid,
        gid: n.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl FuseFs {
    /// Replies with the entry of a node just looked up or created, counting the lookup.
    fn entry(&self, r: Result<u64, FsError>, reply: ReplyEntry) {
        let mut t = self.fs.tree();
        match r {
            Ok(ino) => {
                t.remember(ino);
                let a = attr(t.get(ino).expect("node just found"));
                drop(t);
                reply.entry(&TTL, &a, Generation(0));
            }
            Err(e) => {
                drop(t);
                reply.error(errno(e));
            }
        }
    }

    fn unlinked(&self, r: Result<Option<crate::ObjRef>, FsError>, reply: ReplyEmpty) {
        match r {
            Ok(released) => {
                // Release before answering: when unlink(2) returns, the reference is gone.
                self.fs.release(released);
                reply.ok();
            }
            Err(e) => reply.error(errno(e)),
        }
    }
}

impl FuseFs {
    /// Answers an open with the text to serve (kept until release), or the store's errno.
    fn opened(&self, r: Result<Vec<u8>, i32>, reply: ReplyOpen) {
        match r {
            Ok(text) => {
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                self.handles
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(fh, Arc::new(text));
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
            }
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }
}

impl Filesystem for FuseFs {
    fn destroy(&mut self) {
        self.fs.shutdown();
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let r = self.fs.tree().lookup(parent.0, name);
        self.entry(r, reply);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.tree().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let a = self.fs.tree().get(ino.0).map(attr);
        match a {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        _size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // Size changes (O_TRUNC) are accepted and ignored: pins stay size 0 (simple_setattr
        // would record the size; nothing reads it). Times are set as utimensat asks.
        let t = |v: Option<TimeOrNow>| {
            v.map(|v| match v {
                TimeOrNow::SpecificTime(t) => t,
                TimeOrNow::Now => SystemTime::now(),
            })
        };
        let mut tree = self.fs.tree();
        let r = tree
            .set_times(ino.0, t(atime), t(mtime))
            .and_then(|()| tree.setattr(ino.0, mode, uid, gid).map(attr));
        drop(tree);
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let t = self.fs.tree();
        match t.get(ino.0).map(|n| &n.kind) {
            Some(NodeKind::Symlink(target)) => reply.data(target.as_bytes()),
            Some(_) => reply.error(Errno::EINVAL),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        // bpffs has no ->mknod/->create: the VFS answers EACCES for regular files
        // (vfs_create) and EPERM for fifos, sockets and devices (vfs_mknod).
        if mode & libc::S_IFMT == libc::S_IFREG || mode & libc::S_IFMT == 0 {
            reply.error(Errno::EACCES);
        } else {
            reply.error(Errno::EPERM);
        }
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EACCES);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let r = self.fs.tree().mkdir(parent.0, name, mode, &cred(req));
        self.entry(r, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self.fs.tree().unlink(parent.0, name);
        self.unlinked(r, reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self.fs.tree().rmdir(parent.0, name);
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let r = self
            .fs
            .tree()
            .symlink(parent.0, link_name, target.as_os_str(), &cred(req));
        self.entry(r, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_WHITEOUT) || !RenameFlags::all().contains(flags) {
            return reply.error(Errno::EINVAL);
        }
        let r = self.fs.tree().rename(
            parent.0,
            name,
            newparent.0,
            newname,
            flags.contains(RenameFlags::RENAME_NOREPLACE),
            flags.contains(RenameFlags::RENAME_EXCHANGE),
        );
        self.unlinked(r, reply);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r = self
            .fs
            .tree()
            .link(ino.0, newparent.0, newname)
            .map(|()| ino.0);
        self.entry(r, reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let kind = self.fs.tree().get(ino.0).map(|n| n.kind.clone());
        let obj = match kind {
            Some(NodeKind::Pin(o)) => o,
            Some(NodeKind::Iter(k)) => {
                let r = self.fs.store().debug_listing(k);
                return self.opened(r, reply);
            }
            Some(NodeKind::Dir { .. }) => return reply.error(Errno::EISDIR),
            Some(NodeKind::Symlink(_)) => return reply.error(Errno::ELOOP),
            None => return reply.error(Errno::ENOENT),
        };
        if obj.kind != ObjKind::Map {
            // bpffs_obj_open: programs and links refuse open.
            return reply.error(Errno::EIO);
        }
        // No lock held here: the store may take its own (non-blocking) locks.
        let r = self.fs.store().dump(obj);
        self.opened(r, reply)
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let data = self
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh.0)
            .cloned();
        let Some(data) = data else {
            return reply.error(Errno::EBADF);
        };
        let start = (offset as usize).min(data.len());
        let end = start.saturating_add(size as usize).min(data.len());
        reply.data(&data[start..end]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // bpffs_map_fops has no write: vfs_write gives EINVAL.
        reply.error(Errno::EINVAL);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let t = self.fs.tree();
        let (entries, parent) = match (t.entries(ino.0), t.parent_of(ino.0)) {
            (Ok(e), Ok(p)) => (e, p),
            (Err(e), _) | (_, Err(e)) => {
                drop(t);
                return reply.error(errno(e));
            }
        };
        let mut all = vec![(OsStr::new(".").to_owned(), ino.0, FileType::Directory)];
        all.push((OsStr::new("..").to_owned(), parent, FileType::Directory));
        for (name, child) in entries {
            if let Some(n) = t.get(child) {
                all.push((name, child, file_type(n)));
            }
        }
        drop(t);
        for (i, (name, child, kind)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // simple_statfs: bsize PAGE_SIZE, namelen NAME_MAX, no block or inode counts.
        reply.statfs(0, 0, 0, 0, 0, 4096, 255, 4096);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::from_i32(libc::EOPNOTSUPP));
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, _name: &OsStr, _size: u32, reply: ReplyXattr) {
        if self.fs.tree().get(ino.0).is_none() {
            return reply.error(Errno::ENOENT);
        }
        reply.error(Errno::from_i32(libc::ENODATA));
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        if size == 0 {
            reply.size(0);
        } else {
            reply.data(&[]);
        }
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::from_i32(libc::EOPNOTSUPP));
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // Not called with default_permissions (the kernel checks the mode bits).
        reply.ok();
    }
}
