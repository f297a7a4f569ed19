//! Who a task is, read without formatting `/proc/TID/status` (13-20 µs here): the
//! pidfd `PIDFD_GET_INFO` ioctl (6.13+) for its ids, `capget(2)` for its capabilities,
//! and `kcmp(2)` to tell whether one of its fds is a file the daemon already holds.

use std::os::fd::{AsFd, AsRawFd, RawFd};

/// `struct pidfd_info` (include/uapi/linux/pidfd.h), the fields up to the ids.
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    pid: u32,
    tgid: u32,
    ppid: u32,
    ruid: u32,
    rgid: u32,
    euid: u32,
    egid: u32,
    suid: u32,
    sgid: u32,
    fsuid: u32,
    fsgid: u32,
    exit_code: i32,
    coredump_mask: u32,
    spare: u32,
}

/// `PIDFD_INFO_CREDS`.
const PIDFD_INFO_CREDS: u64 = 1 << 1;
/// `PIDFD_GET_INFO` = `_IOWR(0xFF, 11, struct pidfd_info)`.
const PIDFD_GET_INFO: libc::c_ulong =
    (3 << 30) | ((std::mem::size_of::<PidfdInfo>() as libc::c_ulong) << 16) | (0xFF << 8) | 11;

/// Real and effective user id and real group id of the task behind `pidfd`, as seen
/// from the daemon's user namespace. ESRCH: the task is gone; ENOTTY/EINVAL: a kernel
/// without PIDFD_GET_INFO.
pub fn ids(pidfd: &impl AsFd) -> Result<(u32, u32, u32), i32> {
    let mut info = PidfdInfo {
        mask: PIDFD_INFO_CREDS,
        ..Default::default()
    };
    // SAFETY: PIDFD_GET_INFO reads and writes a `struct pidfd_info` of the size encoded
    // in the request, which `info` is.
    let r = unsafe { libc::ioctl(pidfd.as_fd().as_raw_fd(), PIDFD_GET_INFO, &mut info) };
    if r != 0 {
        return Err(super::errno());
    }
    if info.mask & PIDFD_INFO_CREDS == 0 {
        return Err(libc::EINVAL);
    }
    Ok((info.ruid, info.euid, info.rgid))
}

/// The effective capability set of thread `tid` (in its own user namespace).
pub fn cap_effective(tid: u32) -> Result<u64, i32> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut h = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: tid as i32,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget reads the header and writes two `Data` (version 3), both valid.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()) };
    if r != 0 {
        return Err(super::errno());
    }
    Ok(d[0].effective as u64 | (d[1].effective as u64) << 32)
}

/// Whether fd `fd` of thread `tid` is the same open file as the daemon's `mine`.
/// Err: kcmp is missing or the task is gone.
pub fn same_file(tid: u32, fd: RawFd, mine: &impl AsFd) -> Result<bool, i32> {
    const KCMP_FILE: libc::c_int = 0;
    static ME: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let me = *ME.get_or_init(std::process::id);
    // SAFETY: kcmp takes integers only.
    let r = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            tid as libc::pid_t,
            me as libc::pid_t,
            KCMP_FILE,
            fd as libc::c_ulong,
            mine.as_fd().as_raw_fd() as libc::c_ulong,
        )
    };
    if r < 0 {
        return Err(super::errno());
    }
    Ok(r == 0)
}

/// The open flags (`F_GETFL`) of a file.
pub fn open_flags(f: &impl AsFd) -> Result<i32, i32> {
    // SAFETY: F_GETFL takes no argument.
    let r = unsafe { libc::fcntl(f.as_fd().as_raw_fd(), libc::F_GETFL) };
    if r < 0 {
        return Err(super::errno());
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_ids_caps_and_files() {
        let me = std::process::id();
        let pidfd = super::super::pidfd::open(me).unwrap();
        match ids(&pidfd) {
            // SAFETY: getuid/geteuid/getgid take no arguments.
            Ok(got) => assert_eq!(got, unsafe {
                (libc::getuid(), libc::geteuid(), libc::getgid())
            }),
            Err(e) => assert!(matches!(e, libc::ENOTTY | libc::EINVAL), "{e}"),
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let want = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        assert_eq!(cap_effective(me).unwrap(), want);
        let f = std::fs::File::open("/proc/self/status").unwrap();
        let g = std::fs::File::open("/proc/self/status").unwrap();
        let dup = f.try_clone().unwrap();
        if let Ok(same) = same_file(me, f.as_raw_fd(), &dup) {
            assert!(same);
            assert!(!same_file(me, g.as_raw_fd(), &dup).unwrap());
        }
        assert_eq!(open_flags(&f).unwrap() & libc::O_ACCMODE, libc::O_RDONLY);
    }
}
