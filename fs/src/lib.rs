//! The bpffs as a FUSE filesystem: pins, directories, symlinks, map read-out.
//!
//! One [`BpfFs`] is one bpffs superblock: the daemon's main instance (mounted once,
//! bind-mounted into every target's mount namespace at /sys/fs/bpf), and one fresh
//! instance, without pins, per `mount -t bpf` a target makes (as each kernel
//! `mount -t bpf` is).
//! The daemon owns the objects; this crate only holds pins and talks to the daemon's
//! object registry through [`ObjectStore`].
//!
//! # API
//!
//! ```text
//! BpfFs::new(store) / BpfFs::with_root(store, RootOpts::parse("mode=700,uid=..", fsuid, fsgid))
//! fs.mount(path)                      -> Mount   (in the calling thread's mount namespace)
//! fs.mount_in_mntns(ns_path, path)    -> Mount   (ns_path = /proc/TID/ns/mnt; `mount -t bpf` by a target)
//! fs.dev()                            -> Option<u64>  st_dev of the mounted instance
//! fs.pin(parent_ino, name, obj, &cred, umask) -> ino      (BPF_OBJ_PIN)
//! fs.get(ino, &cred, may::READ|may::WRITE)   -> ObjRef   (BPF_OBJ_GET, with its permission check)
//! fs.lookup(ino) -> Option<ObjRef>;  fs.resolve(rel_path) -> ino;  fs.pins() -> [(path, obj)]
//! BpfFs::cleanup_stale(path)          lazy unmount of a leftover FUSE mount (daemon start)
//! mount.unmount() / drop(mount)       unmounts and aborts the connection; pins are released
//! mount.is_serving(), fs.is_dead()    false/true once the superblock is gone (e.g. the target's
//!                                     namespace died): forget the instance then
//! ```
//!
//! Tests: unit tests here (`cargo test -p bpftime-fs`, no root) and
//! `tests/tests/fs_mount.rs` (root, /dev/fuse; compares an errno table with a kernel bpffs
//! mounted in a private mount namespace).
//!
//! # Inode numbers
//!
//! The `st_ino` the kernel reports for a file in a mounted instance is exactly the inode
//! number this crate uses ([`BpfFs::pin`]'s return value, the `parent_ino` argument,
//! [`BpfFs::lookup`]'s argument): FUSE node ids are used as `st_ino`. The root is 1
//! (as in the kernel's bpffs). So the supervisor resolves a target's path with the kernel
//! (through `/proc/TID/root`, honouring symlinks and the target's mount namespace),
//! `stat`s it (or the parent directory, for a pin), and when `st_dev == fs.dev()` it
//! calls this API with `st_ino`. Inode numbers are never reused within an instance.
//!
//! # Behaviour (kernel/bpf/inode.c is the reference)
//!
//! - Root: `S_ISVTX | mode` (default 1777), owned by the mounter (default 0:0), ino 1.
//!   A fresh instance holds `maps.debug` and `progs.debug` (0400), as the kernel's
//!   `bpf_preload` makes them; their text comes from [`ObjectStore::debug_listing`].
//! - Pins: regular files, size 0, mode `0600 & ~umask`, owner as `inode_init_owner`
//!   (the pinner's fsuid; the directory's group when it is set-group-id).
//! - Directories: mode given to mkdir (umask applied by the VFS); symlinks 0777.
//! - Names containing `.` are refused with EPERM (`bpf_lookup`), at lookup time too.
//! - Regular files cannot be created: `open(O_CREAT)` and `mknod(S_IFREG)` give EACCES,
//!   other `mknod` types EPERM, as the kernel's bpffs (it has no ->create/->mknod).
//! - unlink = unpin; rename (incl. over a pin, `RENAME_NOREPLACE`, `RENAME_EXCHANGE`),
//!   hard links of pins, chmod/chown, permission checks for other users
//!   (`default_permissions`: the kernel enforces mode bits and the sticky root).
//! - flock/fcntl locks are local to the kernel (the filesystem does not ask FUSE for lock
//!   requests), so `flock(dirfd, LOCK_EX)` works as on bpffs.
//! - Reading a pinned map returns [`ObjectStore::dump`] (snapshot taken at open; served
//!   with direct I/O so the size-0 file reads). Programs and links refuse open with EIO.
//!   Writes give EINVAL. Setting xattrs gives EOPNOTSUPP (the kernel keeps `security.*`
//!   and `trusted.*` ones; we keep none), reading gives ENODATA.
//! - statfs through FUSE reports FUSE's magic (the supervisor fakes BPF_FS_MAGIC for its
//!   targets); bsize 4096, namelen 255.
//!
//! # Threads and deadlock freedom
//!
//! Each mounted instance serves FUSE requests on its own threads. They take only this
//! crate's tree lock (held briefly, never while calling the store) and call the store's
//! methods; the store must never block on anything the supervisor's seccomp notification
//! loop holds while it waits for a filesystem answer (see [`ObjectStore`]).

mod fuse;
mod mount;
pub mod tree;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub use mount::Mount;
pub use tree::{may, ROOT_INO};

/// The bpffs magic, `statfs().f_type` of a kernel bpffs.
pub const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// The kind of a pinned object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjKind {
    /// A map (`bpf-map`).
    Map,
    /// A program (`bpf-prog`).
    Prog,
    /// A link (`bpf_link`).
    Link,
    /// BTF. The kernel cannot pin BTF (`bpf_fd_probe_obj` gives EINVAL), nor can we:
    /// [`BpfFs::pin`] refuses it with EINVAL.
    Btf,
}

/// An object of the daemon's registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjRef {
    /// Map, program, link.
    pub kind: ObjKind,
    /// The registry's id for it (the id `bpftool` shows).
    pub id: u32,
}

/// The caller's credentials, for the checks the kernel makes on paths it does not walk
/// itself here (pin creation, OBJ_GET's access check). uid 0 is treated as having
/// CAP_DAC_OVERRIDE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cred {
    /// fsuid.
    pub uid: u32,
    /// fsgid.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Cred {
    /// Whether `gid` is the caller's group or one of its supplementary groups.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// The daemon's object registry as the filesystem sees it.
///
/// Contract (deadlock freedom): every method is cheap and never waits for anything that
/// may itself wait for this filesystem. The methods run on FUSE request threads, possibly
/// while a target thread is stopped in a seccomp notification that the supervisor is
/// handling, and the supervisor's own path walks (`/proc/TID/root/...`), `stat`s of
/// `/proc/PID/fd/N` (a GC scan) and `mount` calls may need a FUSE answer from those same
/// threads. So a store method must not take a lock that the supervisor holds across
/// such a system call (e.g. a GC lock held for write during a /proc scan); taking a
/// registry mutex that is only held for short in-memory updates is fine.
///
/// The methods are never called with this crate's tree lock held. `pin_added` is called
/// synchronously by [`BpfFs::pin`] on the caller's thread: do not call `pin` while
/// holding a lock that `pin_added` takes.
pub trait ObjectStore: Send + Sync + 'static {
    /// The text shown when a pinned map file is read (`key: value` lines). Errors are
    /// errnos returned to `open` (EIO for a map that cannot be shown, as the kernel
    /// does for maps without BTF). Only called for [`ObjKind::Map`].
    fn dump(&self, obj: ObjRef) -> Result<Vec<u8>, i32>;
    /// A pin now references `obj` (called before the pin becomes visible; a failed
    /// [`BpfFs::pin`] is undone with [`ObjectStore::pin_removed`]).
    fn pin_added(&self, obj: ObjRef);
    /// A pin's last name went away (unlink, rename over it, unmount of the instance).
    fn pin_removed(&self, obj: ObjRef);
    /// Contents of the `maps.debug` (`kind` Map) / `progs.debug` (Prog) files every fresh
    /// instance has, as the kernel's `bpf_preload` iterators print them. The default is
    /// ENOENT at open, which is what this project's reference kernel (6.18) answers.
    fn debug_listing(&self, kind: ObjKind) -> Result<Vec<u8>, i32> {
        let _ = kind;
        Err(libc::ENOENT)
    }
}

/// Errors of this crate; each maps to the errno the kernel would give.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// ENOENT: no such file or directory.
    #[error("no such file or directory")]
    NotFound,
    /// EEXIST: the name exists.
    #[error("file exists")]
    Exists,
    /// ENOTDIR: a path component is not a directory.
    #[error("not a directory")]
    NotDir,
    /// EISDIR: a directory where a non-directory was needed.
    #[error("is a directory")]
    IsDir,
    /// ENOTEMPTY: directory not empty.
    #[error("directory not empty")]
    NotEmpty,
    /// EPERM: refused (dotted names, hard link of a directory, ...).
    #[error("operation not permitted")]
    Perm,
    /// EACCES: permission bits refuse it, or not a pinned object (OBJ_GET of a dir).
    #[error("permission denied")]
    Access,
    /// EINVAL: invalid argument.
    #[error("invalid argument")]
    Invalid,
    /// ENAMETOOLONG: a name longer than 255 bytes.
    #[error("file name too long")]
    NameTooLong,
    /// EBUSY: busy (already mounted, renaming onto `.`).
    #[error("device or resource busy")]
    Busy,
    /// A system call failed while mounting or unmounting.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl PartialEq for FsError {
    /// Errors are equal when they give the same errno.
    fn eq(&self, other: &Self) -> bool {
        self.errno() == other.errno()
    }
}

impl FsError {
    /// The errno the kernel gives in this case.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::Exists => libc::EEXIST,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::Perm => libc::EPERM,
            FsError::Access => libc::EACCES,
            FsError::Invalid => libc::EINVAL,
            FsError::NameTooLong => libc::ENAMETOOLONG,
            FsError::Busy => libc::EBUSY,
            FsError::Sys { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    pub(crate) fn sys(what: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        FsError::Sys {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// Root directory options of an instance: the kernel's `uid=`, `gid=`, `mode=` mount
/// options (others, e.g. `delegate_*`, are ignored as the kernel ignores unknown ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootOpts {
    /// Owner of the root directory (default: the mounter's fsuid).
    pub uid: u32,
    /// Group of the root directory (default: the mounter's fsgid).
    pub gid: u32,
    /// Permission bits of the root (default 0777; S_ISVTX is always added).
    pub mode: u32,
}

impl Default for RootOpts {
    fn default() -> Self {
        RootOpts {
            uid: 0,
            gid: 0,
            mode: 0o777,
        }
    }
}

impl RootOpts {
    /// Parses `mount(2)` data of a `mount -t bpf` (`mode=700,uid=1000,...`) made by a
    /// caller with `fsuid`/`fsgid`. A malformed value is EINVAL as in the kernel.
    pub fn parse(data: &str, fsuid: u32, fsgid: u32) -> Result<Self, FsError> {
        let mut o = RootOpts {
            uid: fsuid,
            gid: fsgid,
            mode: 0o777,
        };
        for opt in data.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
            match k {
                "uid" => o.uid = v.parse().map_err(|_| FsError::Invalid)?,
                "gid" => o.gid = v.parse().map_err(|_| FsError::Invalid)?,
                "mode" => {
                    o.mode = u32::from_str_radix(v, 8).map_err(|_| FsError::Invalid)? & 0o7777
                }
                _ => {}
            }
        }
        if o.uid == u32::MAX || o.gid == u32::MAX {
            return Err(FsError::Invalid);
        }
        Ok(o)
    }
}

/// One bpffs instance (superblock).
pub struct BpfFs {
    store: Arc<dyn ObjectStore>,
    tree: Mutex<tree::Tree>,
    /// st_dev once mounted, 0 before.
    dev: AtomicU64,
    /// Set once mounted (an instance is mounted at most once; bind mounts share it).
    mounted: AtomicBool,
    /// Set when the superblock went away: the tree is empty and stays so.
    dead: AtomicBool,
}

impl std::fmt::Debug for BpfFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BpfFs")
            .field("dev", &self.dev())
            .finish_non_exhaustive()
    }
}

impl BpfFs {
    /// A fresh, empty instance with a root owned by 0:0, mode 1777.
    pub fn new(store: Arc<dyn ObjectStore>) -> Arc<BpfFs> {
        Self::with_root(store, RootOpts::default())
    }

    /// A fresh, empty instance with the given root options.
    /// Like the kernel's (with CONFIG_BPF_PRELOAD), it starts with `maps.debug` and
    /// `progs.debug` (0400, owned by the root's owner; see [`ObjectStore::debug_listing`]).
    pub fn with_root(store: Arc<dyn ObjectStore>, root: RootOpts) -> Arc<BpfFs> {
        let mut tree = tree::Tree::new(root.uid, root.gid, root.mode);
        tree.add_iter("maps.debug", ObjKind::Map, root.uid, root.gid);
        tree.add_iter("progs.debug", ObjKind::Prog, root.uid, root.gid);
        Arc::new(BpfFs {
            store,
            tree: Mutex::new(tree),
            dev: AtomicU64::new(0),
            mounted: AtomicBool::new(false),
            dead: AtomicBool::new(false),
        })
    }

    pub(crate) fn tree(&self) -> MutexGuard<'_, tree::Tree> {
        // A panic while holding the lock leaves a consistent-enough tree (every
        // operation validates before mutating); keep serving.
        self.tree.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn store(&self) -> &dyn ObjectStore {
        &*self.store
    }

    /// Calls `pin_removed` for released objects (never under the tree lock).
    pub(crate) fn release(&self, objs: impl IntoIterator<Item = ObjRef>) {
        for o in objs {
            tracing::debug!(?o, "bpffs: pin released");
            self.store.pin_removed(o);
        }
    }

    /// The root directory's inode number (1).
    pub fn root_ino(&self) -> u64 {
        ROOT_INO
    }

    /// `st_dev` of the mounted instance, `None` before it is mounted and once it is gone
    /// (its device number may then be reused by another filesystem).
    pub fn dev(&self) -> Option<u64> {
        if self.dead.load(Ordering::Acquire) {
            return None;
        }
        match self.dev.load(Ordering::Acquire) {
            0 => None,
            d => Some(d),
        }
    }

    /// Pins `obj` as `name` in directory `parent_ino` (BPF_OBJ_PIN after the supervisor
    /// resolved the path's parent to this instance). Checks as the kernel: the parent must
    /// be a directory here (ENOENT/ENOTDIR), `cred` needs write+search on it (EACCES),
    /// names with `.` are EPERM, `.`/`..` and existing names EEXIST, BTF is EINVAL.
    /// Calls [`ObjectStore::pin_added`]. Returns the new pin's inode number.
    pub fn pin(
        &self,
        parent_ino: u64,
        name: &OsStr,
        obj: ObjRef,
        cred: &Cred,
        umask: u32,
    ) -> Result<u64, FsError> {
        if obj.kind == ObjKind::Btf {
            return Err(FsError::Invalid);
        }
        if self.dead.load(Ordering::Acquire) {
            return Err(FsError::NotFound);
        }
        {
            let t = self.tree();
            t.get(parent_ino).ok_or(FsError::NotFound)?;
            if !t.get(parent_ino).is_some_and(|n| n.is_dir()) {
                return Err(FsError::NotDir);
            }
            t.permission(parent_ino, cred, may::WRITE | may::EXEC)?;
        }
        self.store.pin_added(obj);
        let r = self.tree().pin(parent_ino, name, obj, cred, umask);
        match r {
            Ok(ino) => {
                tracing::debug!(?obj, parent_ino, ?name, ino, "bpffs: pinned");
                Ok(ino)
            }
            Err(e) => {
                self.store.pin_removed(obj);
                Err(e)
            }
        }
    }

    /// BPF_OBJ_GET on the inode the supervisor found at the target's path: checks
    /// `mask` ([`may::READ`]/[`may::WRITE`], from the file flags) against the inode's
    /// mode for `cred` (EACCES), then EACCES again if it is not a pin (a directory), as
    /// `bpf_obj_do_get`. ENOENT if the inode is gone.
    pub fn get(&self, ino: u64, cred: &Cred, mask: u32) -> Result<ObjRef, FsError> {
        let t = self.tree();
        t.permission(ino, cred, mask)?;
        t.obj(ino).ok_or(FsError::Access)
    }

    /// The object pinned at inode `ino`, if that inode is a pin of this instance.
    pub fn lookup(&self, ino: u64) -> Option<ObjRef> {
        self.tree().obj(ino)
    }

    /// Resolves a path relative to this instance's root (no symlinks followed).
    pub fn resolve(&self, rel: &Path) -> Result<u64, FsError> {
        self.tree().resolve(rel)
    }

    /// Every pinned name (relative to the root) and its object, sorted by path.
    pub fn pins(&self) -> Vec<(PathBuf, ObjRef)> {
        self.tree().pins()
    }

    /// Whether the instance is gone (unmounted, or its last mount disappeared with a
    /// mount namespace): empty for good; the supervisor can forget it.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// The superblock went away: drop every pin (as the kernel does when the last
    /// reference to a bpffs instance goes). Idempotent.
    pub(crate) fn shutdown(&self) {
        if self.dead.swap(true, Ordering::AcqRel) {
            return;
        }
        let released = self.tree().clear();
        self.release(released);
    }

    /// Lazily unmounts whatever FUSE filesystem is left mounted at `path` (a daemon
    /// killed with SIGKILL): aborts its FUSE connection first, so that processes blocked
    /// on it return ENOTCONN rather than hang, then `umount2(MNT_DETACH)`. Never touches
    /// the mounted filesystem itself (no stat through it). Returns how many mounts were
    /// removed (stacked mounts are all removed).
    pub fn cleanup_stale(path: &Path) -> Result<usize, FsError> {
        mount::cleanup_stale(path)
    }
}

impl Drop for BpfFs {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<BpfFs>();
        check::<Mount>();
        check::<Arc<BpfFs>>();
    }

    #[test]
    fn root_opts_parse_like_the_kernel() {
        assert_eq!(
            RootOpts::parse("", 5, 6).unwrap(),
            RootOpts {
                uid: 5,
                gid: 6,
                mode: 0o777
            }
        );
        let o = RootOpts::parse("mode=700,uid=1000,gid=100,delegate_cmds=any,junk", 0, 0).unwrap();
        assert_eq!(
            o,
            RootOpts {
                uid: 1000,
                gid: 100,
                mode: 0o700
            }
        );
        assert_eq!(
            RootOpts::parse("mode=9", 0, 0).unwrap_err(),
            FsError::Invalid
        );
        assert_eq!(
            RootOpts::parse("uid=x", 0, 0).unwrap_err(),
            FsError::Invalid
        );
    }

    struct NullStore;
    impl ObjectStore for NullStore {
        fn dump(&self, _: ObjRef) -> Result<Vec<u8>, i32> {
            Err(libc::EIO)
        }
        fn pin_added(&self, _: ObjRef) {}
        fn pin_removed(&self, _: ObjRef) {}
    }

    #[test]
    fn unmounted_instance_api() {
        let fs = BpfFs::with_root(
            Arc::new(NullStore),
            RootOpts {
                uid: 1,
                gid: 2,
                mode: 0o755,
            },
        );
        assert_eq!(fs.dev(), None);
        assert_eq!(fs.root_ino(), 1);
        let t = fs.tree().get(ROOT_INO).unwrap().clone();
        assert_eq!((t.uid, t.gid, t.mode), (1, 2, 0o1755));
        // uid 3 may not create in a 1755 root owned by uid 1.
        let other = Cred {
            uid: 3,
            gid: 3,
            groups: vec![],
        };
        let m = ObjRef {
            kind: ObjKind::Map,
            id: 1,
        };
        assert_eq!(
            fs.pin(ROOT_INO, OsStr::new("m"), m, &other, 0).unwrap_err(),
            FsError::Access
        );
        let owner = Cred {
            uid: 1,
            gid: 2,
            groups: vec![],
        };
        let ino = fs.pin(ROOT_INO, OsStr::new("m"), m, &owner, 0o022).unwrap();
        assert_eq!(fs.resolve(Path::new("/m")).unwrap(), ino);
        assert_eq!(fs.get(ino, &owner, may::READ | may::WRITE).unwrap(), m);
        assert_eq!(fs.get(ino, &other, may::READ).unwrap_err(), FsError::Access);
        assert_eq!(fs.pins(), vec![(PathBuf::from("m"), m)]);
        fs.shutdown();
        assert!(fs.is_dead() && fs.pins().is_empty());
        assert_eq!(
            fs.pin(ROOT_INO, OsStr::new("n"), m, &owner, 0).unwrap_err(),
            FsError::NotFound
        );
    }
}
