//! seccomp(2) with user notification: the filter a target installs, and the
//! listener ioctls the daemon uses (RECV, SEND, ADDFD, ID_VALID, SET_FLAGS).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::errno;

/// `AUDIT_ARCH_X86_64`.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `AUDIT_ARCH_I386`.
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const FLAG_NEW_LISTENER: libc::c_ulong = 1 << 3;
const FLAG_WAIT_KILLABLE_RECV: libc::c_ulong = 1 << 5;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_ERRNO: u32 = 0x0005_0000;
/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (6.6+).
const FD_SYNC_WAKE_UP: u64 = 1;

/// x86_64 syscall numbers the filter notifies.
pub mod nr {
    pub const STATFS: i32 = 137;
    pub const FSTATFS: i32 = 138;
    pub const MOUNT: i32 = 165;
    pub const BPF: i32 = 321;
    pub const SENDTO: i32 = 44;
    pub const RECVFROM: i32 = 45;
    pub const SENDMSG: i32 = 46;
    pub const RECVMSG: i32 = 47;
    pub const EPOLL_CTL: i32 = 233;
    pub const PERF_EVENT_OPEN: i32 = 298;
    pub const IOCTL: i32 = 16;
}

/// Builds the classic BPF filter: on x86_64, notify `syscalls`, and `ioctl` with a
/// request of type `ioctl_type` (its bits 8-15: `'$'` is perf's), allow the rest; the
/// i386 `bpf` (357) gets ENOSYS so 32-bit code cannot bypass the emulation.
pub fn build_filter(syscalls: &[i32], ioctl_type: Option<u8>) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let stmt = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u16, k: u32, jt: u8, jf: u8| libc::sock_filter { code, jt, jf, k };
    let n = syscalls.len() as u8;
    let mut f = vec![
        stmt(LD_W_ABS, 4), // seccomp_data.arch
        jump(JEQ_K, AUDIT_ARCH_X86_64, 5, 0),
        jump(JEQ_K, AUDIT_ARCH_I386, 0, 3),
        stmt(LD_W_ABS, 0),
        jump(JEQ_K, 357, 0, 1),
        stmt(RET_K, RET_ERRNO | libc::ENOSYS as u32),
        stmt(RET_K, RET_ALLOW),
        stmt(LD_W_ABS, 0), // seccomp_data.nr
    ];
    if let Some(t) = ioctl_type {
        const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
        // ioctl: notify when (request & 0xff00) == type << 8; either way decided here,
        // past the n syscall tests (to ALLOW: n, to NOTIFY: n + 1).
        f.push(jump(JEQ_K, nr::IOCTL as u32, 0, 3));
        f.push(stmt(LD_W_ABS, 24)); // seccomp_data.args[1], low half
        f.push(stmt(AND_K, 0xff00));
        f.push(jump(JEQ_K, (t as u32) << 8, n + 1, n));
    }
    for (i, &s) in syscalls.iter().enumerate() {
        // Jump to the NOTIFY return after the ALLOW when equal.
        let to_notify = n - i as u8;
        f.push(jump(JEQ_K, s as u32, to_notify, 0));
    }
    f.push(stmt(RET_K, RET_ALLOW));
    f.push(stmt(RET_K, RET_USER_NOTIF));
    f
}

/// Installs `filter` on the calling thread with NEW_LISTENER (and WAIT_KILLABLE_RECV
/// when the kernel knows it) and returns the listener fd. Sets no_new_privs first
/// when the caller lacks CAP_SYS_ADMIN.
pub fn install(filter: &[libc::sock_filter], need_nnp: bool) -> std::io::Result<OwnedFd> {
    if need_nnp {
        // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut _,
    };
    let mut last = 0;
    for flags in [
        FLAG_NEW_LISTENER | FLAG_WAIT_KILLABLE_RECV,
        FLAG_NEW_LISTENER,
    ] {
        // SAFETY: `prog` points at `filter`, which outlives the call; the kernel copies it.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel returned a new fd that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        last = errno();
        if last != libc::EINVAL {
            break;
        }
    }
    Err(std::io::Error::from_raw_os_error(last))
}

/// One notification: `struct seccomp_notif`.
#[derive(Debug, Clone, Copy)]
pub struct Notif {
    pub id: u64,
    /// Thread id of the caller (in the daemon's pid namespace).
    pub pid: u32,
    pub nr: i32,
    pub arch: u32,
    pub args: [u64; 6],
}

/// The listener side, over a borrowed listener fd.
#[derive(Clone, Copy)]
pub struct Listener<'a> {
    fd: BorrowedFd<'a>,
}

impl<'a> Listener<'a> {
    pub fn new(fd: BorrowedFd<'a>) -> Self {
        Listener { fd }
    }

    /// Asks for synchronous wake-up (the daemon thread runs on the target's CPU):
    /// an order of magnitude faster round trips. Errors are ignored by callers
    /// (kernels before 6.6).
    pub fn set_sync_wake_up(&self) -> std::io::Result<()> {
        // SAFETY: SET_FLAGS reads a u64 value passed by value in the argument.
        let r = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                FD_SYNC_WAKE_UP,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receives one notification. ENOENT: the notifying task died before we got
    /// it; EINTR: retry.
    pub fn recv(&self) -> Result<Notif, i32> {
        // SAFETY: seccomp_notif is plain old data; zeroed is valid and required by RECV.
        let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: RECV writes a `struct seccomp_notif` into `n`, which is large enough.
        let r = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV,
                &mut n as *mut _,
            )
        };
        if r != 0 {
            return Err(errno());
        }
        Ok(Notif {
            id: n.id,
            pid: n.pid,
            nr: n.data.nr,
            arch: n.data.arch,
            args: n.data.args,
        })
    }

    /// Whether notification `id` is still pending (the target did not die or get
    /// interrupted) — call after touching /proc/TID.
    pub fn id_valid(&self, id: u64) -> bool {
        let mut id = id;
        // SAFETY: ID_VALID reads a u64 through the pointer, valid for the call.
        unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
                &mut id as *mut u64,
            ) == 0
        }
    }

    fn send_resp(&self, id: u64, val: i64, error: i32, flags: u32) -> Result<(), i32> {
        let mut resp = libc::seccomp_notif_resp {
            id,
            val,
            error,
            flags,
        };
        // SAFETY: SEND reads a `struct seccomp_notif_resp` from a valid pointer.
        let r = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND,
                &mut resp as *mut _,
            )
        };
        if r != 0 {
            return Err(errno());
        }
        Ok(())
    }

    /// The syscall returns `val`.
    pub fn send_value(&self, id: u64, val: i64) -> Result<(), i32> {
        self.send_resp(id, val, 0, 0)
    }
    /// The syscall fails with `errno` (positive).
    pub fn send_errno(&self, id: u64, errno: i32) -> Result<(), i32> {
        self.send_resp(id, 0, -errno, 0)
    }
    /// The kernel runs the syscall itself (never to enforce policy).
    pub fn send_continue(&self, id: u64) -> Result<(), i32> {
        self.send_resp(id, 0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32)
    }

    /// Installs a dup of `fd` in the target (O_CLOEXEC when `cloexec`) and answers
    /// the syscall with the new fd number in one step (ADDFD_FLAG_SEND).
    pub fn addfd_send(&self, id: u64, fd: BorrowedFd<'_>, cloexec: bool) -> Result<i32, i32> {
        let mut a = libc::seccomp_notif_addfd {
            id,
            flags: libc::SECCOMP_ADDFD_FLAG_SEND as u32,
            srcfd: fd.as_raw_fd() as u32,
            newfd: 0,
            newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
        };
        // SAFETY: ADDFD reads a `struct seccomp_notif_addfd` from a valid pointer.
        let r = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ADDFD,
                &mut a as *mut _,
            )
        };
        if r < 0 {
            return Err(errno());
        }
        Ok(r)
    }
}
