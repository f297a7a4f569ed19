//! User namespaces (nsfs ioctls): capabilities are relative to one. The kernel checks
//! CAP_BPF/CAP_SYS_ADMIN in the initial user namespace (`capable()`), and CAP_NET_ADMIN
//! for rtnetlink in the user namespace that owns the network namespace
//! (`netlink_net_capable`); a task holds a capability in namespace N when it holds it in
//! its own user namespace and that is N or an ancestor of N.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// `NS_GET_USERNS`: the user namespace owning a namespace.
const NS_GET_USERNS: libc::c_ulong = 0xb701;
/// `NS_GET_PARENT`: the parent of a user namespace.
const NS_GET_PARENT: libc::c_ulong = 0xb702;

fn ns_ioctl(ns: &impl AsFd, req: libc::c_ulong) -> Result<OwnedFd, i32> {
    // SAFETY: these nsfs ioctls take no argument and return a new descriptor or -1.
    let fd = unsafe { libc::ioctl(ns.as_fd().as_raw_fd(), req as _) };
    if fd < 0 {
        return Err(super::errno());
    }
    // SAFETY: fd was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ino(fd: &impl AsFd) -> Result<u64, i32> {
    Ok(nix::sys::stat::fstat(fd.as_fd())
        .map_err(|e| e as i32)?
        .st_ino)
}

/// The inode of the user namespace at `path` (`/proc/TID/ns/user`).
pub fn ino_of(path: &str) -> Result<u64, i32> {
    Ok(nix::sys::stat::stat(path).map_err(|e| e as i32)?.st_ino)
}

/// The daemon's own user namespace: the one its privileges, and so the emulated
/// kernel's "initial" namespace, belong to.
pub fn daemon_userns() -> u64 {
    static INO: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *INO.get_or_init(|| ino_of("/proc/self/ns/user").unwrap_or(0))
}

/// Whether user namespace `userns` (an inode) owns the namespace `ns` (an open nsfs
/// fd) or is an ancestor of its owner.
pub fn owns_or_ancestor(userns: u64, ns: &impl AsFd) -> bool {
    let Ok(mut cur) = ns_ioctl(ns, NS_GET_USERNS) else {
        return false;
    };
    for _ in 0..33 {
        match ino(&cur) {
            Ok(i) if i == userns => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
        match ns_ioctl(&cur, NS_GET_PARENT) {
            Ok(p) => cur = p,
            Err(_) => return false,
        }
    }
    false
}
