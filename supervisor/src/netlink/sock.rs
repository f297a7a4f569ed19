//! [`KernelSocket`] over a real netlink socket fd (the daemon's duplicate of the
//! target's socket, or a socket of its own in tests). The only unsafe code of the
//! netlink module: send / recvmsg / poll / getsockname / getsockopt / bind wrappers.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::reply::{AckOptions, Datagram};
use super::session::KernelSocket;

/// `SOL_NETLINK`.
pub const SOL_NETLINK: i32 = 270;
/// `NETLINK_CAP_ACK`.
pub const NETLINK_CAP_ACK: i32 = 10;
/// `NETLINK_EXT_ACK`.
pub const NETLINK_EXT_ACK: i32 = 11;

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn kernel_addr() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
    let mut a: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    a.nl_family = libc::AF_NETLINK as u16;
    a
}

/// A netlink socket used to talk to the kernel.
#[derive(Debug)]
pub struct FdSocket {
    fd: OwnedFd,
    /// How long `recv(wait = true)` waits for a datagram, in milliseconds.
    pub timeout_ms: i32,
}

impl FdSocket {
    /// Wraps a netlink socket fd (ownership moves in).
    pub fn new(fd: OwnedFd) -> Self {
        Self {
            fd,
            timeout_ms: 2000,
        }
    }

    /// Opens a NETLINK_ROUTE socket in the calling thread's network namespace.
    pub fn open_route() -> Result<Self, i32> {
        // SAFETY: socket() takes no pointers.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(errno());
        }
        // SAFETY: fd was just created and is owned by nobody else.
        Ok(Self::new(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The raw fd.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// setsockopt(SOL_NETLINK, opt, 1 or 0).
    pub fn set_flag(&self, opt: i32, on: bool) -> Result<(), i32> {
        let v: libc::c_int = on.into();
        // SAFETY: &v is valid for size_of::<c_int>() bytes during the call.
        let r = unsafe {
            libc::setsockopt(
                self.raw(),
                SOL_NETLINK,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        if r < 0 {
            Err(errno())
        } else {
            Ok(())
        }
    }

    fn get_flag(&self, opt: i32) -> bool {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: v and len are valid for writes of their sizes during the call.
        let r = unsafe {
            libc::getsockopt(
                self.raw(),
                SOL_NETLINK,
                opt,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        r == 0 && v != 0
    }

    fn poll_in(&self, timeout_ms: i32) -> Result<bool, i32> {
        let mut p = libc::pollfd {
            fd: self.raw(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: p is one valid pollfd.
            let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
            if r < 0 {
                let e = errno();
                if e == libc::EINTR {
                    continue;
                }
                return Err(e);
            }
            return Ok(r > 0);
        }
    }

    fn recv_now(&self) -> Result<Option<Datagram>, i32> {
        // Learn the size first (MSG_PEEK|MSG_TRUNC), then read it whole.
        let mut probe = [0u8; 1];
        // SAFETY: probe is valid for 1 byte; a null address is allowed.
        let n = unsafe {
            libc::recv(
                self.raw(),
                probe.as_mut_ptr().cast(),
                0,
                libc::MSG_PEEK | libc::MSG_TRUNC | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = errno();
            return if e == libc::EAGAIN { Ok(None) } else { Err(e) };
        }
        let mut buf = vec![0u8; (n as usize).max(1)];
        let mut addr = kernel_addr();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain old data; all-zero is valid before filling it.
        let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
        mh.msg_name = (&mut addr as *mut libc::sockaddr_nl).cast();
        mh.msg_namelen = std::mem::size_of::<libc::sockaddr_nl>() as u32;
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        // SAFETY: mh points at addr, iov and buf, all alive and sized as declared.
        let n = unsafe { libc::recvmsg(self.raw(), &mut mh, libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = errno();
            return if e == libc::EAGAIN { Ok(None) } else { Err(e) };
        }
        buf.truncate(n as usize);
        Ok(Some(Datagram {
            data: buf,
            portid: addr.nl_pid,
            group: addr.nl_groups,
        }))
    }
}

/// `SIOCETHTOOL`.
const SIOCETHTOOL: libc::c_ulong = 0x8946;
/// `ETHTOOL_GDRVINFO`.
const ETHTOOL_GDRVINFO: u32 = 3;

impl FdSocket {
    fn ifreq_ioctl(&self, req: libc::c_ulong, ifr: &mut [u8; 40]) -> Result<(), i32> {
        // SAFETY: ifr is a 40-byte struct ifreq image, valid for reads and writes; the
        // requests used here read/write only inside it (or through ifr_data, set by the
        // caller to a live buffer).
        let r = unsafe { libc::ioctl(self.raw(), req as _, ifr.as_mut_ptr()) };
        if r < 0 {
            Err(errno())
        } else {
            Ok(())
        }
    }

    /// The ifindex of `name` in the socket's network namespace (SIOCGIFINDEX; netlink
    /// sockets fall through to `dev_ioctl` in `sock_net`). Alternative names resolve too
    /// when they fit in IFNAMSIZ.
    pub fn ifindex_of(&self, name: &[u8]) -> Result<u32, i32> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(libc::ENODEV);
        }
        let mut ifr = [0u8; 40];
        ifr[..name.len()].copy_from_slice(name);
        self.ifreq_ioctl(libc::SIOCGIFINDEX, &mut ifr)?;
        Ok(u32::from_ne_bytes(
            ifr[16..20].try_into().unwrap_or_default(),
        ))
    }

    /// The name of `ifindex` in the socket's network namespace (SIOCGIFNAME).
    pub fn ifname_of(&self, ifindex: u32) -> Result<Vec<u8>, i32> {
        let mut ifr = [0u8; 40];
        ifr[16..20].copy_from_slice(&ifindex.to_ne_bytes());
        self.ifreq_ioctl(libc::SIOCGIFNAME, &mut ifr)?;
        let end = ifr[..16].iter().position(|&c| c == 0).unwrap_or(16);
        Ok(ifr[..end].to_vec())
    }

    /// The driver name of `ifindex` (ETHTOOL_GDRVINFO, as `ethtool -i`), in the socket's
    /// network namespace: "veth", "virtio_net", ... (for [`DriverXdp::for_driver`]).
    ///
    /// [`DriverXdp::for_driver`]: super::xdp::DriverXdp::for_driver
    pub fn driver_of(&self, ifindex: u32) -> Result<String, i32> {
        let name = self.ifname_of(ifindex)?;
        // struct ethtool_drvinfo: cmd u32, driver[32], version[32], fw_version[32],
        // bus_info[32], erom_version[32], reserved2[12], 5 x u32 = 196 bytes.
        let mut info = [0u8; 196];
        info[0..4].copy_from_slice(&ETHTOOL_GDRVINFO.to_ne_bytes());
        let mut ifr = [0u8; 40];
        ifr[..name.len()].copy_from_slice(&name);
        ifr[16..24].copy_from_slice(&(info.as_mut_ptr() as u64).to_ne_bytes());
        self.ifreq_ioctl(SIOCETHTOOL, &mut ifr)?;
        let d = &info[4..36];
        let end = d.iter().position(|&c| c == 0).unwrap_or(d.len());
        Ok(String::from_utf8_lossy(&d[..end]).into_owned())
    }
}

impl KernelSocket for FdSocket {
    fn send(&mut self, data: &[u8]) -> Result<(), i32> {
        let addr = kernel_addr();
        // SAFETY: data and addr are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                self.raw(),
                data.as_ptr().cast(),
                data.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n < 0 {
            Err(errno())
        } else {
            Ok(())
        }
    }

    fn recv(&mut self, wait: bool) -> Result<Option<Datagram>, i32> {
        if wait && !self.poll_in(self.timeout_ms)? {
            return Ok(None);
        }
        self.recv_now()
    }

    fn portid(&mut self) -> Result<u32, i32> {
        let mut addr = kernel_addr();
        let mut len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: addr and len are valid for writes of their sizes.
        let r = unsafe {
            libc::getsockname(
                self.raw(),
                (&mut addr as *mut libc::sockaddr_nl).cast(),
                &mut len,
            )
        };
        if r < 0 {
            return Err(errno());
        }
        if addr.nl_pid != 0 {
            return Ok(addr.nl_pid);
        }
        // Not bound yet: autobind as netlink_sendmsg would.
        let a = kernel_addr();
        // SAFETY: a is a valid sockaddr_nl of the size passed.
        let r = unsafe {
            libc::bind(
                self.raw(),
                (&a as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if r < 0 && errno() != libc::EINVAL {
            return Err(errno());
        }
        let mut len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: as above.
        let r = unsafe {
            libc::getsockname(
                self.raw(),
                (&mut addr as *mut libc::sockaddr_nl).cast(),
                &mut len,
            )
        };
        if r < 0 {
            return Err(errno());
        }
        Ok(addr.nl_pid)
    }

    fn ack_options(&mut self) -> AckOptions {
        AckOptions {
            ext_ack: self.get_flag(NETLINK_EXT_ACK),
            cap_ack: self.get_flag(NETLINK_CAP_ACK),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_portid_on_a_real_socket() {
        // Netlink route sockets need no privilege to open, bind, or set these options.
        let mut s = FdSocket::open_route().unwrap();
        assert_eq!(s.ack_options(), AckOptions::default());
        s.set_flag(NETLINK_EXT_ACK, true).unwrap();
        assert!(s.ack_options().ext_ack);
        let p = s.portid().unwrap();
        assert_ne!(p, 0);
        assert_eq!(s.portid().unwrap(), p);
        assert_eq!(s.recv(false).unwrap(), None);
        // Interface look-ups through the netlink socket (its netns: ours here).
        assert_eq!(s.ifindex_of(b"lo").unwrap(), 1);
        assert_eq!(s.ifname_of(1).unwrap(), b"lo");
        assert_eq!(s.ifindex_of(b"no-such-dev0").unwrap_err(), libc::ENODEV);
        assert_eq!(s.ifname_of(0x7fff_fff0).unwrap_err(), libc::ENODEV);
        assert_eq!(s.ifindex_of(b"").unwrap_err(), libc::ENODEV);
    }
}
