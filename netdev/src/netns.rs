//! Network namespaces and the small socket calls made inside one: entering a
//! namespace on the current thread, naming an interface, counting its RX queues,
//! and the AF_PACKET socket used to transmit redirected frames.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Moves the calling thread into the network namespace at `path`
/// (`/proc/TID/ns/net`, `/run/netns/NAME`). Only this thread changes namespace;
/// sockets it creates afterwards belong to that namespace for their lifetime.
pub fn enter(path: &Path) -> io::Result<()> {
    let f = File::open(path)?;
    // SAFETY: setns on a descriptor we own; only affects the calling thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// (st_dev, st_ino) of a namespace file, or of the current thread's namespace.
pub fn id(path: Option<&Path>) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = match path {
        Some(p) => std::fs::metadata(p)?,
        None => std::fs::metadata("/proc/thread-self/ns/net")?,
    };
    Ok((m.dev(), m.ino()))
}

/// Name of `ifindex` in the current thread's namespace (ENODEV if none).
pub fn ifname(ifindex: u32) -> io::Result<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes as if_indextoname requires.
    let r = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if r.is_null() {
        let e = io::Error::last_os_error();
        return Err(if e.raw_os_error() == Some(libc::ENXIO) {
            io::Error::from_raw_os_error(libc::ENODEV)
        } else {
            e
        });
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into buf.
    Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned())
}

fn dgram_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket creation, checked.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: s is a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(s) })
}

/// A zeroed `struct ifreq` naming `ifname` (truncated to IF_NAMESIZE - 1).
fn ifreq_named(ifname: &str) -> libc::ifreq {
    // SAFETY: all-zero ifreq is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr
        .ifr_name
        .iter_mut()
        .zip(ifname.bytes().take(libc::IF_NAMESIZE - 1))
    {
        *d = s as libc::c_char;
    }
    ifr
}

/// Sets `ifname` up (SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP) in the current
/// thread's namespace.
pub fn set_up(ifname: &str) -> io::Result<()> {
    let sock = dgram_socket()?;
    let mut ifr = ifreq_named(ifname);
    // SAFETY: ifr is a live ifreq; SIOCGIFFLAGS writes ifru_flags only.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut ifr) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS filled ifru_flags; setting a bit keeps it valid.
    unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: ifr is a live ifreq; SIOCSIFFLAGS reads ifru_flags only.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &ifr) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The Ethernet address of `ifname` (SIOCGIFHWADDR).
pub fn hwaddr(ifname: &str) -> io::Result<[u8; 6]> {
    let sock = dgram_socket()?;
    let mut ifr = ifreq_named(ifname);
    // SAFETY: ifr is a live ifreq; SIOCGIFHWADDR writes ifru_hwaddr only.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR as _, &mut ifr) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the kernel filled ifru_hwaddr.
    let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
    Ok(std::array::from_fn(|i| sa.sa_data[i] as u8))
}

/// Sets the Ethernet address of `ifname` (SIOCSIFHWADDR).
pub fn set_hwaddr(ifname: &str, mac: [u8; 6]) -> io::Result<()> {
    let sock = dgram_socket()?;
    let mut ifr = ifreq_named(ifname);
    // SAFETY: writing a plain-data union member of a zeroed ifreq.
    unsafe {
        ifr.ifr_ifru.ifru_hwaddr.sa_family = libc::ARPHRD_ETHER;
        for (d, s) in ifr.ifr_ifru.ifru_hwaddr.sa_data.iter_mut().zip(mac) {
            *d = s as libc::c_char;
        }
    }
    // SAFETY: ifr is a live ifreq; SIOCSIFHWADDR reads ifru_hwaddr only.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFHWADDR as _, &ifr) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// MTU of `ifindex` in the current thread's namespace.
pub fn mtu(ifindex: u32) -> Option<u32> {
    let name = ifname(ifindex).ok()?;
    let sock = dgram_socket().ok()?;
    let mut ifr = ifreq_named(&name);
    // SAFETY: ifr is a live ifreq; SIOCGIFMTU writes ifru_mtu only.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU as _, &mut ifr) };
    if r != 0 {
        return None;
    }
    // SAFETY: on success the kernel filled ifru_mtu.
    Some(unsafe { ifr.ifr_ifru.ifru_mtu } as u32)
}

/// `struct ethtool_channels`.
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;
const SIOCETHTOOL: libc::c_ulong = 0x8946;

/// Number of RX queues of `ifname` (ethtool channels: rx + combined), 1 when the
/// driver does not say.
pub fn rx_queues(ifname: &str) -> u32 {
    let Ok(sock) = dgram_socket() else { return 1 };
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    let mut ifr = ifreq_named(ifname);
    ifr.ifr_ifru.ifru_data = &mut ch as *mut EthtoolChannels as *mut libc::c_char;
    // SAFETY: ifr is a live ifreq whose data points at a live ethtool_channels.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) };
    if r < 0 {
        return 1;
    }
    (ch.rx_count.max(ch.combined_count)).max(1)
}

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

const ETHTOOL_STXCSUM: u32 = 0x17;

/// Turns TX checksum offload of `ifname` on or off (`ethtool -K IF tx on|off`), in
/// the current thread's namespace.
///
/// A local sender on a veth (or any device with TX checksum offload) hands its
/// peer frames whose TCP/UDP checksum is left for "the hardware" to finish
/// (CHECKSUM_PARTIAL). AF_XDP copies out the bytes without that promise, so such
/// frames, passed back to the stack, fail the checksum check. Turning the offload
/// off on the sending side (as every AF_XDP setup on veth does) makes the sender
/// finish its checksums; it also turns TSO off, so no frame exceeds the MTU.
pub fn set_tx_checksum(ifname: &str, on: bool) -> io::Result<()> {
    let sock = dgram_socket()?;
    let mut v = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: on as u32,
    };
    // SAFETY: all-zero ifreq is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr
        .ifr_name
        .iter_mut()
        .zip(ifname.bytes().take(libc::IF_NAMESIZE - 1))
    {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = &mut v as *mut EthtoolValue as *mut libc::c_char;
    // SAFETY: ifr is a live ifreq whose data points at a live ethtool_value.
    if unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An AF_PACKET socket that receives nothing (protocol 0) and sends raw frames on
/// any interface of the namespace it was created in.
pub struct PacketTx {
    fd: OwnedFd,
}

impl PacketTx {
    pub fn new() -> io::Result<PacketTx> {
        // SAFETY: plain socket creation, checked.
        let s = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if s < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: s is a new descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(s) };
        Ok(PacketTx { fd })
    }

    /// Sends `frame` (Ethernet header included) out of `ifindex`.
    pub fn send(&self, ifindex: u32, frame: &[u8]) -> io::Result<()> {
        // SAFETY: all-zero sockaddr_ll is valid.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_ifindex = ifindex as i32;
        sa.sll_halen = 6;
        if frame.len() >= 6 {
            sa.sll_addr[..6].copy_from_slice(&frame[..6]);
        }
        // SAFETY: frame and sa are live for the call, with the lengths passed.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                libc::MSG_DONTWAIT,
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}
