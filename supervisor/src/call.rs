//! What a syscall handler receives ([`Call`]) and returns ([`Reply`]).
//!
//! A handler reads the target's memory once through [`Call::read`] (EFAULT on bad
//! pointers), acts on its copy, writes results back with [`Call::write`], and
//! returns a [`Reply`]: a value, an errno, a new object fd (installed with ADDFD),
//! or CONTINUE (only where no policy is enforced).

use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;

use crate::daemon::Daemon;
use crate::registry::{Key, Kind, Object};
use crate::sys::seccomp::{Listener, Notif};
use crate::sys::target_mem;
use crate::tasks::FdInfo;

/// Capabilities (bit numbers of CapEff).
pub mod cap {
    pub const NET_ADMIN: u32 = 12;
    pub const SYS_ADMIN: u32 = 21;
    pub const PERFMON: u32 = 38;
    pub const BPF: u32 = 39;
}

/// The credentials of the calling thread, read from /proc/TID/status.
#[derive(Debug, Clone, Copy, Default)]
pub struct Creds {
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    /// Effective capabilities in the daemon's user namespace (the emulated kernel's
    /// initial one, where `capable()` checks): none for a task in another user
    /// namespace, whatever it holds there.
    pub cap_eff: u64,
    /// Effective capabilities in the task's own user namespace (CapEff).
    pub cap_own: u64,
    /// The task's user namespace (inode).
    pub userns: u64,
}

impl Creds {
    /// `ns_capable(owner of netns, cap)`: the task holds `cap` in its own user namespace,
    /// and that namespace owns `netns` (an open nsfs fd) or is an ancestor of its owner.
    pub fn capable_over(&self, netns: &impl std::os::fd::AsFd, cap: u32) -> bool {
        self.cap_own & (1u64 << cap) != 0
            && crate::sys::userns::owns_or_ancestor(self.userns, netns)
    }

    pub fn has(&self, cap: u32) -> bool {
        self.cap_eff & (1u64 << cap) != 0
    }
    /// The kernel's `bpf_capable()`: CAP_BPF or CAP_SYS_ADMIN.
    pub fn bpf_capable(&self) -> bool {
        self.has(cap::BPF) || self.has(cap::SYS_ADMIN)
    }
}

/// How a handler answers.
pub enum Reply {
    /// The syscall returns this value.
    Value(i64),
    /// The syscall fails with this (positive) errno.
    Errno(i32),
    /// A new object: its handle is installed in the target (O_CLOEXEC) and the
    /// syscall returns the new fd. If the install fails, the object is dropped.
    Object(Arc<Object>),
    /// Another fd for an existing object (GET_FD_BY_ID, OBJ_GET): its handle is
    /// installed (O_CLOEXEC); the object stays whatever happens.
    Shared(Arc<Object>),
    /// A new fd that is no registry object (e.g. ENABLE_STATS).
    Fd(OwnedFd),
    /// Let the kernel run the syscall (never to enforce policy).
    Continue,
}

impl From<Result<i64, i32>> for Reply {
    fn from(r: Result<i64, i32>) -> Self {
        match r {
            Ok(v) => Reply::Value(v),
            Err(e) => Reply::Errno(e),
        }
    }
}

/// One intercepted syscall being handled.
pub struct Call<'a> {
    pub notif: Notif,
    pub daemon: &'a Daemon,
    pub listener: Listener<'a>,
    /// Where `--trace-syscalls` lines go (the connection of that bpftime-run).
    pub trace_sink: Option<&'a crate::proto::TraceSink>,
    /// What the serving thread remembers about its tasks between calls.
    tasks: &'a std::cell::RefCell<crate::tasks::TaskCache>,
    /// Called (once) when this call turns out to take long: another thread then
    /// receives the target's next notifications meanwhile.
    on_long: &'a dyn Fn(),
    said_long: std::cell::Cell<bool>,
    creds: std::cell::OnceCell<Result<Creds, i32>>,
    /// The last fd resolved in this call (a handler asks for the same fd twice: its
    /// object, then its access mode).
    last_fd: std::cell::Cell<Option<(RawFd, FdInfo)>>,
    /// Regions read ahead with the attr ([`Call::read_attr`]), and what this call read.
    prefetched: std::cell::RefCell<Vec<(u64, Vec<u8>)>>,
    reads: std::cell::RefCell<Vec<(u64, usize)>>,
}

impl<'a> Call<'a> {
    pub fn new(
        notif: Notif,
        daemon: &'a Daemon,
        listener: Listener<'a>,
        trace_sink: Option<&'a crate::proto::TraceSink>,
        tasks: &'a std::cell::RefCell<crate::tasks::TaskCache>,
        on_long: &'a dyn Fn(),
    ) -> Self {
        Call {
            notif,
            daemon,
            listener,
            trace_sink,
            tasks,
            on_long,
            said_long: Default::default(),
            creds: Default::default(),
            last_fd: Default::default(),
            prefetched: Default::default(),
            reads: Default::default(),
        }
    }

    /// Says that this call will take long (a large allocation, a load, a wait): the
    /// target's other threads are then served by another daemon thread meanwhile.
    pub fn long_call(&self) {
        if !self.said_long.replace(true) {
            (self.on_long)();
        }
    }

    /// Thread id of the caller.
    pub fn tid(&self) -> u32 {
        self.notif.pid
    }
    pub fn arg(&self, i: usize) -> u64 {
        self.notif.args[i]
    }

    /// Reads `len` bytes of the target at `addr` (EFAULT on a bad pointer).
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, i32> {
        self.reads.borrow_mut().push((addr, len));
        if let Some(b) = self.prefetched(addr, len) {
            return Ok(b);
        }
        target_mem::read(self.tid(), addr, len)
    }

    /// A region read ahead together with the attr, if this is one.
    fn prefetched(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        let mut p = self.prefetched.borrow_mut();
        let i = p.iter().position(|(a, b)| *a == addr && b.len() == len)?;
        Some(p.swap_remove(i).1)
    }

    /// Reads the bpf attr (`len` bytes at `addr`) and, in the same syscall, the
    /// regions this thread's previous map element call read: a loop updating or
    /// looking up through the same key and value buffers then costs one read, not two.
    /// Those copies are taken at the moment the kernel reads the attr, an order the
    /// kernel could have run in too (another thread's writes land before or after).
    pub fn read_attr(&self, addr: u64, len: usize) -> Result<Vec<u8>, i32> {
        self.reads.borrow_mut().clear();
        let hint = self.tasks.borrow().hint(self.tid());
        let Some(hint) = hint.filter(|_| len > 0) else {
            return target_mem::read(self.tid(), addr, len);
        };
        let mut regions = vec![(addr, len)];
        regions.extend(hint.iter().copied().filter(|&(_, l)| l > 0 && l <= 4096));
        let mut got = target_mem::read_regions(self.tid(), &regions)?.into_iter();
        let attr = got.next().ok_or(libc::EFAULT)?;
        *self.prefetched.borrow_mut() = regions[1..].iter().map(|r| r.0).zip(got).collect();
        Ok(attr)
    }

    /// Keeps this call's reads (after the attr) as the next call's read-ahead hint.
    pub fn remember_reads(&self) {
        let reads = self.reads.borrow();
        let mut hint = [(0u64, 0usize); 2];
        for (h, r) in hint.iter_mut().zip(reads.iter()) {
            *h = *r;
        }
        self.tasks.borrow_mut().set_hint(self.tid(), hint);
    }
    /// Reads two regions of the target in one go (EFAULT if either is bad).
    pub fn read2(&self, a: (u64, usize), b: (u64, usize)) -> Result<(Vec<u8>, Vec<u8>), i32> {
        self.reads.borrow_mut().extend([a, b]);
        if let (Some(x), Some(y)) = (self.prefetched(a.0, a.1), self.prefetched(b.0, b.1)) {
            return Ok((x, y));
        }
        let mut got = target_mem::read_regions(self.tid(), &[a, b])?.into_iter();
        match (got.next(), got.next()) {
            (Some(x), Some(y)) => Ok((x, y)),
            _ => Err(libc::EFAULT),
        }
    }
    /// Writes `data` into the target at `addr` (EFAULT on a bad pointer).
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), i32> {
        target_mem::write(self.tid(), addr, data)
    }
    /// Reads a NUL-terminated string (ENAMETOOLONG past `max`).
    pub fn read_cstr(&self, addr: u64, max: usize) -> Result<Vec<u8>, i32> {
        target_mem::read_cstr(self.tid(), addr, max)
    }

    /// Whether the notification is still live (call after touching /proc/TID).
    pub fn valid(&self) -> bool {
        self.listener.id_valid(self.notif.id)
    }

    /// The caller's credentials (read once per notification, checked to be the
    /// caller's: the thread id may have been reused by then).
    pub fn creds(&self) -> Result<Creds, i32> {
        *self.creds.get_or_init(|| {
            let c = self.tasks.borrow_mut().creds(self.tid())?;
            if !self.valid() {
                return Err(libc::ESRCH);
            }
            Ok(c)
        })
    }

    /// `/proc/TID` of the caller.
    pub fn proc_path(&self, rest: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/{}", self.tid(), rest))
    }

    /// `(st_dev, st_ino)` of the target's fd `fd` (EBADF when not open).
    pub fn fd_key(&self, fd: RawFd) -> Result<Key, i32> {
        self.fd_info(fd).map(|i| i.key)
    }

    /// The open file behind the target's fd `fd`: its key, and for the daemon's objects
    /// its access mode (EBADF when not open).
    pub fn fd_info(&self, fd: RawFd) -> Result<FdInfo, i32> {
        if let Some((f, info)) = self.last_fd.get() {
            if f == fd {
                return Ok(info);
            }
        }
        let info = self.tasks.borrow_mut().fd(self.tid(), fd, |k| {
            self.daemon.registry.lock().unwrap().by_key(k).is_some()
        })?;
        if !self.valid() {
            return Err(libc::ESRCH);
        }
        self.last_fd.set(Some((fd, info)));
        Ok(info)
    }

    /// The kernel's answer for an fd that should be an object of a kind bpftime never
    /// has here (a token, an iterator link) or that is not what was asked for: EBADF
    /// when it is not open, else `otherwise`.
    pub fn closed_or(&self, fd: RawFd, otherwise: i32) -> i32 {
        match self.fd_key(fd) {
            Err(e) => e,
            Ok(_) => otherwise,
        }
    }

    /// The filesystem type (`statfs` f_type) of what the target's fd `fd` is open on.
    pub fn fd_fs_type(&self, fd: RawFd) -> Option<i64> {
        nix::sys::statfs::statfs(&self.proc_path(&format!("fd/{fd}")))
            .ok()
            .map(|s| s.filesystem_type().0)
    }

    /// The object behind the target's fd `fd`: EBADF if the fd is not open,
    /// `wrong` if it is open but no object of `kind`.
    pub fn object(&self, fd: RawFd, kind: Kind, wrong: i32) -> Result<Arc<Object>, i32> {
        let key = self.fd_key(fd)?;
        match self.daemon.registry.lock().unwrap().by_key(&key) {
            Some(o) if o.kind == kind => Ok(o),
            _ => Err(wrong),
        }
    }

    /// The object of any kind behind fd `fd`, or None if it is open but not ours.
    pub fn any_object(&self, fd: RawFd) -> Result<Option<Arc<Object>>, i32> {
        let key = self.fd_key(fd)?;
        Ok(self.daemon.registry.lock().unwrap().by_key(&key))
    }

    /// Sends a trace line to the `bpftime-run` that asked for `--trace-syscalls`.
    pub fn trace(&self, line: impl FnOnce() -> String) {
        if let Some(sink) = self.trace_sink {
            sink.line(&format!("[{}] {}", self.tid(), line()));
        }
    }
    /// Whether trace lines are wanted (to skip building them).
    pub fn tracing(&self) -> bool {
        self.trace_sink.is_some()
    }

    /// Duplicates an fd for an object handle (helper for handlers building objects).
    pub fn dup(fd: &impl AsFd) -> Result<OwnedFd, i32> {
        fd.as_fd()
            .try_clone_to_owned()
            .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOMEM))
    }
}

/// Reads Uid/Gid/CapEff of /proc/TID/status.
pub fn read_creds(tid: u32) -> Result<Creds, i32> {
    let s = std::fs::read_to_string(format!("/proc/{tid}/status")).map_err(|_| libc::ESRCH)?;
    let mut c = Creds::default();
    for line in s.lines() {
        if let Some(v) = line.strip_prefix("Uid:") {
            let f: Vec<u32> = v
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            c.uid = f.first().copied().unwrap_or(u32::MAX);
            c.euid = f.get(1).copied().unwrap_or(u32::MAX);
        } else if let Some(v) = line.strip_prefix("Gid:") {
            c.gid = v
                .split_whitespace()
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or(u32::MAX);
        } else if let Some(v) = line.strip_prefix("CapEff:") {
            c.cap_own = u64::from_str_radix(v.trim(), 16).unwrap_or(0);
        }
    }
    c.userns =
        crate::sys::userns::ino_of(&format!("/proc/{tid}/ns/user")).map_err(|_| libc::ESRCH)?;
    if c.userns == crate::sys::userns::daemon_userns() {
        c.cap_eff = c.cap_own;
    }
    Ok(c)
}
