//! Mounting and unmounting instances, in our own or a target's mount namespace.
//!
//! We mount with `mount(2)` ourselves (root; no fusermount): `/dev/fuse` is opened, the
//! filesystem is mounted as `fuse.bpftime` with `default_permissions,allow_other`, then
//! `fuser` serves the device on its own threads. Work inside another mount namespace runs
//! on a dedicated thread that leaves our `fs_struct` (`unshare(CLONE_FS)`) and joins the
//! namespace (`setns(CLONE_NEWNS)`); the rest of the daemon is untouched.
//!
//! Unmounting detaches the mount and aborts the FUSE connection through fusectl, which
//! is mounted for that purpose in a throwaway private mount namespace (the host's mount
//! table is never changed), so serving threads always end and no caller can hang.

use std::fs::{File, OpenOptions};
use std::io::BufRead;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::fuse::FuseFs;
use crate::{BpfFs, FsError};

/// Filesystem type shown in /proc/mounts (`fuse.<subtype>`).
const FSTYPE: &str = "fuse.bpftime";
/// Where fusectl is mounted (in a private namespace) to abort connections.
const FUSECTL_DIR: &str = "/sys/fs/fuse/connections";

/// Runs `f` in the mount namespace `ns` (on a dedicated thread), or here if `None`.
fn in_mntns<T: Send + 'static>(
    ns: Option<Arc<File>>,
    f: impl FnOnce() -> Result<T, FsError> + Send + 'static,
) -> Result<T, FsError> {
    let Some(ns) = ns else { return f() };
    thread::Builder::new()
        .name("bpffs-mntns".into())
        .spawn(move || {
            nix::sched::unshare(CloneFlags::CLONE_FS)
                .map_err(|e| FsError::sys("unshare(CLONE_FS)", e))?;
            nix::sched::setns(&*ns, CloneFlags::CLONE_NEWNS)
                .map_err(|e| FsError::sys("setns(CLONE_NEWNS)", e))?;
            f()
        })
        .map_err(|e| FsError::sys("spawn namespace thread", e))?
        .join()
        .map_err(|_| FsError::sys("namespace thread", std::io::Error::other("panicked")))?
}

/// The kernel-internal dev_t (`MKDEV`), which names the fusectl directory.
fn kernel_dev(dev: u64) -> u64 {
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    (major << 20) | minor
}

/// Aborts the FUSE connection of the superblock `dev` (pending and future requests
/// fail with ENOTCONN, the server's reads with ENODEV). Ok if it is already gone.
fn abort_connection(dev: u64) -> Result<(), FsError> {
    let abort = format!("{FUSECTL_DIR}/{}/abort", kernel_dev(dev));
    thread::Builder::new()
        .name("bpffs-abort".into())
        .spawn(move || {
            nix::sched::unshare(CloneFlags::CLONE_FS | CloneFlags::CLONE_NEWNS)
                .map_err(|e| FsError::sys("unshare(CLONE_NEWNS)", e))?;
            nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .map_err(|e| FsError::sys("make / private", e))?;
            nix::mount::mount(
                Some("fusectl"),
                FUSECTL_DIR,
                Some("fusectl"),
                MsFlags::empty(),
                None::<&str>,
            )
            .map_err(|e| FsError::sys("mount fusectl", e))?;
            match std::fs::write(&abort, "1") {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(FsError::sys(format!("write {abort}"), e)),
            }
            // The namespace (and the fusectl mount) dies with this thread.
        })
        .map_err(|e| FsError::sys("spawn abort thread", e))?
        .join()
        .map_err(|_| FsError::sys("abort thread", std::io::Error::other("panicked")))?
}

/// A mount namespace named by a path (`/proc/TID/ns/mnt`) and its identity.
#[derive(Debug, Clone)]
struct NsRef {
    path: PathBuf,
    id: (u64, u64),
}

impl NsRef {
    fn open(path: &Path) -> Result<(Self, Arc<File>), FsError> {
        let f =
            File::open(path).map_err(|e| FsError::sys(format!("open {}", path.display()), e))?;
        let md = f
            .metadata()
            .map_err(|e| FsError::sys(format!("stat {}", path.display()), e))?;
        Ok((
            NsRef {
                path: path.to_owned(),
                id: (md.dev(), md.ino()),
            },
            Arc::new(f),
        ))
    }

    /// The namespace again, if the path still names the same one.
    fn reopen(&self) -> Option<Arc<File>> {
        let f = File::open(&self.path).ok()?;
        let md = f.metadata().ok()?;
        ((md.dev(), md.ino()) == self.id).then(|| Arc::new(f))
    }
}

/// A mounted [`BpfFs`] instance. Dropping it unmounts (see [`Mount::unmount`]).
pub struct Mount {
    fs: Arc<BpfFs>,
    mountpoint: PathBuf,
    /// The other mount namespace it lives in: not held open (holding it would keep a
    /// dead target's namespace, and so this instance and its pins, alive), reopened by
    /// path at unmount and used only if it is still the same namespace.
    ns: Option<NsRef>,
    dev: u64,
    session: Option<fuser::BackgroundSession>,
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount")
            .field("mountpoint", &self.mountpoint)
            .field("dev", &self.dev)
            .finish()
    }
}

impl Mount {
    /// `st_dev` of the mounted instance.
    pub fn dev(&self) -> u64 {
        self.dev
    }

    /// The mountpoint (in its mount namespace).
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The instance.
    pub fn fs(&self) -> &Arc<BpfFs> {
        &self.fs
    }

    /// Whether the FUSE connection is still served (false once the kernel dropped the
    /// superblock, e.g. the target's mount namespace died with it).
    pub fn is_serving(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| !s.guard.is_finished())
    }

    /// Unmounts: lazy `umount2(MNT_DETACH)` at the mountpoint (in its namespace), abort of
    /// the FUSE connection (other bind mounts of it then give ENOTCONN), join of the
    /// serving threads; every pin of the instance is released.
    pub fn unmount(mut self) -> Result<(), FsError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), FsError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let mp = self.mountpoint.clone();
        let ns = match &self.ns {
            None => None,
            Some(r) => match r.reopen() {
                Some(f) => Some(f),
                None => {
                    // The namespace is gone (or unreachable): nothing to unmount there;
                    // the abort below still ends the instance.
                    tracing::debug!(ns = %r.path.display(), "bpffs: mount namespace gone");
                    return self.finish(session, Ok(()));
                }
            },
        };
        let detached = in_mntns(ns, move || {
            match nix::mount::umount2(&mp, MntFlags::MNT_DETACH) {
                // EINVAL: no longer a mount point (already unmounted by someone else).
                Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
                Err(e) => Err(FsError::sys(format!("umount {}", mp.display()), e)),
            }
        });
        self.finish(session, detached)
    }

    fn finish(
        &mut self,
        session: fuser::BackgroundSession,
        detached: Result<(), FsError>,
    ) -> Result<(), FsError> {
        // A finished session means the connection is already gone (and its device
        // number may belong to someone else by now): abort only a live one.
        let aborted = if session.guard.is_finished() {
            Ok(())
        } else {
            abort_connection(self.dev)
        };
        if aborted.is_ok() {
            let _ = session.join();
        } else {
            tracing::warn!(
                dev = self.dev,
                "bpffs: could not abort the FUSE connection; not waiting for its threads"
            );
        }
        self.fs.shutdown();
        detached.and(aborted)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::warn!(mountpoint = %self.mountpoint.display(), "bpffs: unmount: {e}");
        }
    }
}

impl BpfFs {
    /// Mounts this instance at `mountpoint` in the calling thread's mount namespace and
    /// serves it on background threads. An instance is mounted once (EBUSY after).
    pub fn mount(self: &Arc<Self>, mountpoint: &Path) -> Result<Mount, FsError> {
        mount_instance(self, mountpoint, None)
    }

    /// Mounts this instance at `mountpoint` (absolute, as seen in that namespace) inside
    /// the mount namespace `mnt_ns` (e.g. `/proc/TID/ns/mnt` of a target calling
    /// `mount -t bpf`). The [`Mount`] keeps the namespace open to unmount it later.
    /// The namespace is not kept open: when it dies (the target and its children
    /// exited), the kernel drops the superblock, the instance stops serving
    /// ([`Mount::is_serving`]) and its pins are released, as with the kernel's bpffs.
    pub fn mount_in_mntns(
        self: &Arc<Self>,
        mnt_ns: &Path,
        mountpoint: &Path,
    ) -> Result<Mount, FsError> {
        let (r, f) = NsRef::open(mnt_ns)?;
        mount_instance(self, mountpoint, Some((r, f)))
    }
}

fn mount_instance(
    fs: &Arc<BpfFs>,
    mountpoint: &Path,
    ns: Option<(NsRef, Arc<File>)>,
) -> Result<Mount, FsError> {
    if fs.dead.load(Ordering::Acquire) || fs.mounted.swap(true, Ordering::AcqRel) {
        return Err(FsError::Busy);
    }
    let r = mount_and_serve(fs, mountpoint, ns);
    if r.is_err() {
        fs.mounted.store(false, Ordering::Release);
    }
    r
}

fn mount_and_serve(
    fs: &Arc<BpfFs>,
    mountpoint: &Path,
    ns: Option<(NsRef, Arc<File>)>,
) -> Result<Mount, FsError> {
    use std::os::fd::AsRawFd;
    let (ns_ref, ns) = match ns {
        Some((r, f)) => (Some(r), Some(f)),
        None => (None, None),
    };
    let dev_fuse = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map_err(|e| FsError::sys("open /dev/fuse", e))?;
    let opts = format!(
        "fd={},rootmode=41777,user_id=0,group_id=0,default_permissions,allow_other",
        dev_fuse.as_raw_fd()
    );
    let mp = mountpoint.to_owned();
    in_mntns(ns.clone(), move || {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        nix::mount::mount(Some("bpf"), &mp, Some(FSTYPE), flags, Some(opts.as_str()))
            .map_err(|e| FsError::sys(format!("mount {FSTYPE} on {}", mp.display()), e))
    })?;
    let undo = |ns: Option<Arc<File>>, mp: PathBuf| {
        let _ = in_mntns(ns, move || {
            let _ = nix::mount::umount2(&mp, MntFlags::MNT_DETACH);
            Ok(())
        });
    };
    let mut config = fuser::Config::default();
    // Several threads: a request stuck in a slow store call never starves the others.
    config.n_threads = Some(4);
    config.clone_fd = true;
    config.acl = fuser::SessionACL::All;
    let session = match fuser::Session::from_fd(
        FuseFs::new(fs.clone()),
        OwnedFd::from(dev_fuse),
        fuser::SessionACL::All,
        config,
    )
    .and_then(|s| s.spawn())
    {
        Ok(s) => s,
        Err(e) => {
            undo(ns, mountpoint.to_owned());
            return Err(FsError::sys("start FUSE session", e));
        }
    };
    let mp = mountpoint.to_owned();
    let md = in_mntns(ns.clone(), move || {
        std::fs::metadata(&mp).map_err(|e| FsError::sys(format!("stat {}", mp.display()), e))
    });
    let dev = match md {
        Ok(md) if md.ino() == crate::ROOT_INO => md.dev(),
        Ok(md) => {
            // Should not happen: something else is mounted on top of us.
            let _ = abort_connection(md.dev());
            undo(ns, mountpoint.to_owned());
            return Err(FsError::sys(
                "mount",
                std::io::Error::other("mountpoint does not show our root"),
            ));
        }
        Err(e) => {
            undo(ns, mountpoint.to_owned());
            return Err(e);
        }
    };
    fs.dev.store(dev, Ordering::Release);
    tracing::info!(mountpoint = %mountpoint.display(), dev, "bpffs: mounted");
    Ok(Mount {
        fs: fs.clone(),
        mountpoint: mountpoint.to_owned(),
        ns: ns_ref,
        dev,
        session: Some(session),
    })
}

/// Unescapes a /proc/self/mountinfo field (`\040` etc.).
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// FUSE mounts at `path` in /proc/self/mountinfo: their `st_dev`s, topmost last.
fn fuse_mounts_at(path: &Path) -> Result<Vec<u64>, FsError> {
    use std::os::unix::ffi::OsStrExt;
    let f = File::open("/proc/self/mountinfo").map_err(|e| FsError::sys("open mountinfo", e))?;
    let mut devs = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line.map_err(|e| FsError::sys("read mountinfo", e))?;
        // id parent major:minor root mountpoint opts [optional...] - fstype source superopts
        let (left, right) = line.split_once(" - ").unwrap_or((&line, ""));
        let l: Vec<&str> = left.split(' ').collect();
        let fstype = right.split(' ').next().unwrap_or("");
        if l.len() < 5 || unescape(l[4]) != path.as_os_str().as_bytes() {
            continue;
        }
        if fstype != "fuse" && !fstype.starts_with("fuse.") {
            continue;
        }
        if let Some((ma, mi)) = l[2].split_once(':') {
            if let (Ok(ma), Ok(mi)) = (ma.parse::<u64>(), mi.parse::<u64>()) {
                devs.push(nix::sys::stat::makedev(ma, mi));
            }
        }
    }
    Ok(devs)
}

pub(crate) fn cleanup_stale(path: &Path) -> Result<usize, FsError> {
    let devs = fuse_mounts_at(path)?;
    for dev in &devs {
        if let Err(e) = abort_connection(*dev) {
            tracing::warn!(dev, "bpffs: abort stale connection: {e}");
        }
    }
    let mut removed = 0;
    for _ in 0..devs.len() {
        match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => removed += 1,
            Err(nix::errno::Errno::EINVAL) => break,
            Err(e) => return Err(FsError::sys(format!("umount {}", path.display()), e)),
        }
    }
    if removed > 0 {
        tracing::info!(path = %path.display(), removed, "bpffs: removed stale mounts");
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape(r"/tmp/a\040b"), b"/tmp/a b");
        assert_eq!(unescape(r"/x\134y"), b"/x\\y");
        assert_eq!(unescape(r"/plain\"), b"/plain\\");
    }

    #[test]
    fn kernel_dev_encoding() {
        assert_eq!(kernel_dev(nix::sys::stat::makedev(0, 58)), 58);
        assert_eq!(kernel_dev(nix::sys::stat::makedev(1, 2)), (1 << 20) | 2);
    }
}
