//! What a notification thread keeps about the tasks it serves between their calls, so
//! that a map update costs little more than the notification itself.
//!
//! - Per thread id: a pidfd (its ids through `PIDFD_GET_INFO`) and an `O_PATH` fd of
//!   `/proc/TID` (its user namespace through `readlinkat`, its fds through `fstatat`).
//!   Both refer to the task itself, not to its number: when the task is gone they fail
//!   (ESRCH/ENOENT) and are opened again for whoever has the number now.
//! - Per (thread id, fd) that is one of the daemon's objects: a duplicate of the
//!   target's open file (`pidfd_getfd`). One `kcmp(KCMP_FILE)` then tells whether the fd
//!   still holds that very file: the same file means the same object and the same access
//!   mode, whatever was dup'ed, closed or reopened in between; any other answer goes
//!   the slow way. Holding the file cannot keep an object alive: collection looks at
//!   the targets' fd tables, never at the daemon's own.
//!
//! Nothing here is trusted across calls without that check, and the caller still checks
//! that the notification is live after reading (the thread id may be reused).
//! Both tables are bounded: when full they are emptied.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd, RawFd};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

use crate::registry::Key;
use crate::sys::{pidfd, task_ids};

const MAX_TASKS: usize = 64;
const MAX_FDS: usize = 256;

/// A target's fd as the daemon resolved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdInfo {
    /// `(st_dev, st_ino)` of the open file.
    pub key: Key,
    /// `O_RDONLY`, `O_WRONLY` or `O_RDWR` of the open file (its FMODE_READ/WRITE),
    /// known for the daemon's own objects when the file could be duplicated.
    pub mode: Option<i32>,
}

struct Task {
    /// None on kernels without PIDFD_THREAD (before 6.9) for a thread that is not its
    /// process's leader: credentials then come from /proc and fds are not remembered.
    pidfd: Option<OwnedFd>,
    proc_dir: OwnedFd,
}

struct KnownFd {
    file: OwnedFd,
    info: FdInfo,
}

/// One notification thread's cache (not shared: each serving thread has its own).
#[derive(Default)]
pub struct TaskCache {
    tasks: HashMap<u32, Task>,
    fds: HashMap<(u32, RawFd), KnownFd>,
    /// Per thread: the (address, length) of the key and value its last map element
    /// call read (read ahead with the next attr).
    hints: HashMap<u32, [(u64, usize); 2]>,
    /// PIDFD_GET_INFO is missing (kernels before 6.13): ids come from /proc/TID/status.
    no_pidfd_info: bool,
    /// kcmp is missing (no CONFIG_KCMP): fds are resolved through /proc every time.
    no_kcmp: bool,
}

impl TaskCache {
    fn task(&mut self, tid: u32) -> Result<&Task, i32> {
        if !self.tasks.contains_key(&tid) {
            if self.tasks.len() >= MAX_TASKS {
                self.tasks.clear();
            }
            let pidfd = match pidfd::open_thread(tid) {
                Ok(p) => Some(p),
                // No PIDFD_THREAD: a pidfd by process id works for a leader.
                Err(libc::EINVAL) => pidfd::open(tid).ok(),
                Err(_) => return Err(libc::ESRCH),
            };
            let proc_dir = nix::fcntl::open(
                format!("/proc/{tid}").as_str(),
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|_| libc::ESRCH)?;
            self.tasks.insert(tid, Task { pidfd, proc_dir });
        }
        Ok(&self.tasks[&tid])
    }

    /// Runs `f` on the task's handles; when they belong to a task that is gone, opens
    /// them again once for whoever holds `tid` now.
    fn with_task<T>(&mut self, tid: u32, f: impl Fn(&Task) -> Result<T, i32>) -> Result<T, i32> {
        match f(self.task(tid)?) {
            Err(libc::ESRCH) | Err(libc::ENOENT) => {
                self.tasks.remove(&tid);
                self.fds.retain(|(t, _), _| *t != tid);
                f(self.task(tid)?)
            }
            r => r,
        }
    }

    pub fn hint(&self, tid: u32) -> Option<[(u64, usize); 2]> {
        self.hints.get(&tid).copied()
    }

    pub fn set_hint(&mut self, tid: u32, regions: [(u64, usize); 2]) {
        if self.hints.len() >= MAX_TASKS && !self.hints.contains_key(&tid) {
            self.hints.clear();
        }
        self.hints.insert(tid, regions);
    }

    /// The calling thread's credentials now (a few µs; /proc/TID/status takes ~20).
    pub fn creds(&mut self, tid: u32) -> Result<crate::call::Creds, i32> {
        if self.no_pidfd_info {
            return crate::call::read_creds(tid);
        }
        let r = self.with_task(tid, |t| {
            let (uid, euid, gid) = task_ids::ids(t.pidfd.as_ref().ok_or(libc::ENOTTY)?)?;
            let link = nix::fcntl::readlinkat(&t.proc_dir, "ns/user").map_err(|e| e as i32)?;
            Ok((uid, euid, gid, userns_ino(link.as_encoded_bytes())?))
        });
        let (uid, euid, gid, userns) = match r {
            Ok(v) => v,
            Err(libc::ENOTTY) | Err(libc::EINVAL) => {
                // A kernel without PIDFD_GET_INFO, or no pidfd for this thread.
                if self.task(tid)?.pidfd.is_some() {
                    self.no_pidfd_info = true;
                }
                return crate::call::read_creds(tid);
            }
            Err(_) => return Err(libc::ESRCH),
        };
        let cap_own = task_ids::cap_effective(tid).map_err(|_| libc::ESRCH)?;
        let cap_eff = if userns == crate::sys::userns::daemon_userns() {
            cap_own
        } else {
            0
        };
        Ok(crate::call::Creds {
            uid,
            euid,
            gid,
            cap_eff,
            cap_own,
            userns,
        })
    }

    /// Resolves fd `fd` of thread `tid`: EBADF when it is not open. `ours` says whether
    /// a key is one of the daemon's objects (only those are remembered).
    pub fn fd(&mut self, tid: u32, fd: RawFd, ours: impl Fn(&Key) -> bool) -> Result<FdInfo, i32> {
        if fd < 0 {
            return Err(libc::EBADF);
        }
        if !self.no_kcmp {
            if let Some(k) = self.fds.get(&(tid, fd)) {
                match task_ids::same_file(tid, fd, &k.file) {
                    Ok(true) => return Ok(k.info),
                    Ok(false) | Err(libc::EBADF) | Err(libc::ESRCH) => {}
                    Err(_) => self.no_kcmp = true,
                }
                self.fds.remove(&(tid, fd));
            }
        }
        let path = format!("fd/{fd}");
        let st = self.with_task(tid, |t| {
            nix::sys::stat::fstatat(&t.proc_dir, path.as_str(), AtFlags::empty()).map_err(|e| {
                if e as i32 == libc::ESRCH {
                    libc::ESRCH
                } else {
                    libc::EBADF
                }
            })
        })?;
        let key = (st.st_dev, st.st_ino);
        if !ours(&key) {
            // Not an object: its access mode is never asked for.
            return Ok(FdInfo { key, mode: None });
        }
        // Only the daemon's own objects (memfds) are duplicated: pidfd_getfd of a
        // socket would move its cgroup accounting to the daemon.
        let t = self.task(tid)?;
        let Some(pidfd) = &t.pidfd else {
            // No pidfd for this thread: the key alone (the mode is read from /proc).
            return Ok(FdInfo { key, mode: None });
        };
        let file = pidfd::getfd(pidfd, fd).map_err(|_| libc::EBADF)?;
        let st2 = nix::sys::stat::fstat(file.as_fd()).map_err(|_| libc::EBADF)?;
        let key = (st2.st_dev, st2.st_ino);
        if !ours(&key) {
            // The fd changed between the two looks: answer for what it holds now.
            return Ok(FdInfo { key, mode: None });
        }
        let info = FdInfo {
            key,
            mode: Some(task_ids::open_flags(&file).map_err(|_| libc::EBADF)? & libc::O_ACCMODE),
        };
        if !self.no_kcmp {
            if self.fds.len() >= MAX_FDS {
                self.fds.clear();
            }
            self.fds.insert((tid, fd), KnownFd { file, info });
        }
        Ok(info)
    }
}

/// The inode of `user:[N]` (a /proc/TID/ns/user link).
fn userns_ino(link: &[u8]) -> Result<u64, i32> {
    std::str::from_utf8(link)
        .ok()
        .and_then(|s| s.strip_prefix("user:[")?.strip_suffix(']')?.parse().ok())
        .ok_or(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn gettid() -> u32 {
        // SAFETY: gettid takes no arguments.
        unsafe { libc::gettid() as u32 }
    }

    #[test]
    fn creds_match_proc_status() {
        let tid = gettid();
        let mut c = TaskCache::default();
        let fast = c.creds(tid).unwrap();
        let slow = crate::call::read_creds(tid).unwrap();
        assert_eq!(
            (
                fast.uid,
                fast.euid,
                fast.gid,
                fast.cap_eff,
                fast.cap_own,
                fast.userns
            ),
            (
                slow.uid,
                slow.euid,
                slow.gid,
                slow.cap_eff,
                slow.cap_own,
                slow.userns
            )
        );
    }

    /// Kernels without PIDFD_THREAD (< 6.9) give no pidfd for a non-leader thread:
    /// credentials come from /proc and fds are resolved without being remembered.
    #[test]
    fn without_a_pidfd() {
        let tid = gettid();
        let mut c = TaskCache::default();
        let proc_dir = nix::fcntl::open(
            format!("/proc/{tid}").as_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        c.tasks.insert(
            tid,
            Task {
                pidfd: None,
                proc_dir,
            },
        );
        let slow = crate::call::read_creds(tid).unwrap();
        let fast = c.creds(tid).unwrap();
        assert_eq!(
            (fast.uid, fast.cap_eff, fast.userns),
            (slow.uid, slow.cap_eff, slow.userns)
        );
        let f = std::fs::File::open("/proc/self/status").unwrap();
        let info = c.fd(tid, f.as_raw_fd(), |_| true).unwrap();
        assert_eq!(info.mode, None);
        assert!(c.fds.is_empty());
    }

    #[test]
    fn fd_identity_follows_the_open_file() {
        let tid = gettid();
        let mut c = TaskCache::default();
        let dir = std::env::temp_dir().join(format!("bpftime-tasks-{}", std::process::id()));
        std::fs::write(&dir, b"x").unwrap();
        let a = std::fs::File::open(&dir).unwrap();
        let fd = a.as_raw_fd();
        let ia = c.fd(tid, fd, |_| true).unwrap();
        assert_eq!(ia.mode, Some(libc::O_RDONLY));
        assert_eq!(c.fd(tid, fd, |_| true).unwrap(), ia, "from the cache");
        // Close it and open something else at the same number: not the cached file.
        drop(a);
        let b = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        if b.as_raw_fd() == fd {
            let ib = c.fd(tid, fd, |_| true).unwrap();
            assert_ne!(ib.key, ia.key);
            assert_eq!(ib.mode, Some(libc::O_WRONLY));
        }
        drop(b);
        assert_eq!(c.fd(tid, 1 << 20, |_| true), Err(libc::EBADF));
        let _ = std::fs::remove_file(&dir);
    }
}
