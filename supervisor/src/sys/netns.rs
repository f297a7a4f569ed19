//! Network namespaces of sockets (SIOCGSKNS): rtnetlink requests act in the namespace of
//! the socket they are sent on (`sock_net(skb->sk)`), which need not be the sending
//! thread's (a socket made after setns into another namespace keeps that namespace).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

/// `SIOCGSKNS`: an fd of the socket's network namespace.
const SIOCGSKNS: libc::c_ulong = 0x894C;

/// A network namespace held open by the daemon, with its identity.
#[derive(Debug)]
pub struct NetnsRef {
    /// st_ino of the namespace (nsfs): its identity while it lives.
    pub ino: u64,
    fd: OwnedFd,
}

impl NetnsRef {
    /// A path naming this namespace for as long as `self` lives (for setns).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }
}

/// The network namespace of `sock` (any socket).
pub fn of_socket(sock: &OwnedFd) -> Result<NetnsRef, i32> {
    // SAFETY: SIOCGSKNS takes no argument and returns a new descriptor or -1.
    let fd = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGSKNS as _) };
    if fd < 0 {
        return Err(super::errno());
    }
    // SAFETY: fd was just returned by the kernel and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = nix::sys::stat::fstat(&fd).map_err(|e| e as i32)?;
    Ok(NetnsRef { ino: st.st_ino, fd })
}

/// An AF_INET datagram socket in the network namespace at `netns` (made on a short-lived
/// thread that enters it): for ioctls (SIOCGIFNAME, SIOCETHTOOL) answered there.
pub fn socket_in(netns: &std::path::Path) -> Result<OwnedFd, i32> {
    let netns = netns.to_path_buf();
    std::thread::scope(|s| {
        s.spawn(move || {
            bpftime_netdev::netns::enter(&netns)
                .map_err(|e| e.raw_os_error().unwrap_or(libc::ESRCH))?;
            // SAFETY: socket() takes no pointers.
            let fd =
                unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
            if fd < 0 {
                return Err(super::errno());
            }
            // SAFETY: fd was just created and is owned by nobody else.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .join()
        .unwrap_or(Err(libc::ESRCH))
    })
}
