//! XDP_PASS through a TAP device: how the data plane hands a frame to the stack.
//!
//! Per attachment, in the interface's namespace: a TAP device `bpftN` (no IPv6, no
//! addresses, up) whose TC ingress hands every frame written to it to the interface's
//! receive path: the stack, `tcpdump -i IF`, sockets and netfilter see it as received on
//! the interface. One `write()` per frame costs a few microseconds, where a live-frame
//! test run costs ~20 and a page pool set up and torn down per call.
//!
//! How the TAP's ingress reaches the interface depends on the XDP mode:
//! - native (DRV): a TC program (TCX link) doing `bpf_redirect(ifindex, BPF_F_INGRESS)`;
//!   `dev_forward_skb` recomputes the packet type against the interface's address;
//! - generic (SKB): the frame enters `netif_receive_skb` of the interface, where the
//!   generic XDP hook, and so the redirect stub, would take it again. A `mirred ingress
//!   redirect` action ([`tc`](crate::tc)) marks the skb as redirected, and the generic
//!   hook lets such an skb pass. Mirred keeps the packet type the TAP computed, so the
//!   TAP takes the interface's MAC address.
//!
//! Frames are written with a `virtio_net_hdr` (IFF_VNET_HDR), as a hypervisor's NIC
//! would: a TCP super-frame of generic mode goes to the stack in one write, as the
//! GSO packet it was (gso_size, CHECKSUM_PARTIAL), not cut into MTU-sized copies.
//! Frames with metadata (`data_meta`) take the live-frame path, which carries it. If the
//! daemon dies, the TAP (not persistent), its qdisc and the TCX link go with its fds.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::{netns, sys};

/// `TUNSETIFF`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;
const IFF_VNET_HDR: i16 = 0x4000;
/// `BPF_PROG_TYPE_SCHED_CLS`.
const PROG_TYPE_SCHED_CLS: u32 = 3;
/// `BPF_TCX_INGRESS`.
const ATTACH_TCX_INGRESS: u32 = 46;

const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;
const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;

/// How the TAP's frames reach the interface (see the module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A TCX program doing `bpf_redirect(ifindex, BPF_F_INGRESS)` (native mode).
    BpfRedirect,
    /// A `mirred ingress redirect` action, which generic XDP lets pass (generic mode).
    Mirred,
}

/// A TCP GSO packet as the kernel describes it (`skb_shared_info`), for one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpGso {
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// The CWR flag is set on the super-frame (`SKB_GSO_TCP_ECN`).
    pub ecn: bool,
    /// Offset of the TCP header from the start of the frame (`csum_start`).
    pub csum_start: u16,
    /// Ethernet, IP and TCP headers (`hdr_len`).
    pub hdr_len: u16,
    /// Payload bytes per segment (`gso_size`).
    pub mss: u16,
}

/// The TAP and what connects it to the interface.
#[derive(Debug)]
pub struct Reinject {
    tap: OwnedFd,
    _prog: Option<OwnedFd>,
    _link: Option<OwnedFd>,
    /// The TAP's name (`bpftN`).
    pub name: String,
    /// How its frames reach the interface.
    pub via: Via,
}

impl Reinject {
    /// Creates the TAP and connects it to the ingress of `target_ifindex`, in the
    /// calling thread's network namespace.
    pub fn new(target_ifindex: u32, via: Via) -> io::Result<Reinject> {
        // SAFETY: open of a constant path; the result is checked.
        let fd = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just opened and is owned by nobody else.
        let tap = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut ifr = [0u8; 40];
        ifr[..7].copy_from_slice(b"bpft%d\0");
        ifr[16..18].copy_from_slice(&(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR).to_ne_bytes());
        // SAFETY: ifr is a 40-byte struct ifreq image; TUNSETIFF reads the flags and
        // writes the chosen name in place.
        if unsafe { libc::ioctl(tap.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let end = ifr[..16].iter().position(|&c| c == 0).unwrap_or(16);
        let name = String::from_utf8_lossy(&ifr[..end]).into_owned();
        // Quiet: no link-local address, router solicitations or DAD from it.
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
        if via == Via::Mirred {
            let target = netns::ifname(target_ifindex)?;
            netns::set_hwaddr(&name, netns::hwaddr(&target)?)?;
        }
        netns::set_up(&name)?;
        let cname = std::ffi::CString::new(name.as_str()).map_err(io::Error::other)?;
        // SAFETY: cname is a valid NUL-terminated string.
        let tap_ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if tap_ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let (prog, link) = match via {
            Via::BpfRedirect => {
                let prog = sys::prog_load(
                    PROG_TYPE_SCHED_CLS,
                    &crate::stub::tap_redirect_stub(target_ifindex),
                    "bpftime_reinj",
                    ATTACH_TCX_INGRESS,
                )?;
                let link = sys::link_create(&prog, tap_ifindex, ATTACH_TCX_INGRESS, 0)?;
                (Some(prog), Some(link))
            }
            Via::Mirred => {
                crate::tc::redirect_ingress(tap_ifindex, target_ifindex)?;
                (None, None)
            }
        };
        Ok(Reinject {
            tap,
            _prog: prog,
            _link: link,
            name,
            via,
        })
    }

    /// Hands one frame (from the Ethernet header) to the interface's receive path.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.write(&[0; 10], frame)
    }

    /// Hands a TCP super-frame to the interface's receive path as one GSO packet with
    /// its checksum partial: its TCP checksum field must hold the folded pseudo-header
    /// sum ([`gso::as_gso_packet`](crate::gso::as_gso_packet)).
    pub fn send_gso(&self, frame: &[u8], gso: &TcpGso) -> io::Result<()> {
        let mut hdr = [0u8; 10];
        hdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        hdr[1] = if gso.v6 {
            VIRTIO_NET_HDR_GSO_TCPV6
        } else {
            VIRTIO_NET_HDR_GSO_TCPV4
        } | if gso.ecn { VIRTIO_NET_HDR_GSO_ECN } else { 0 };
        hdr[2..4].copy_from_slice(&gso.hdr_len.to_ne_bytes());
        hdr[4..6].copy_from_slice(&gso.mss.to_ne_bytes());
        hdr[6..8].copy_from_slice(&gso.csum_start.to_ne_bytes());
        hdr[8..10].copy_from_slice(&16u16.to_ne_bytes());
        self.write(&hdr, frame)
    }

    /// One `writev` of a `virtio_net_hdr` (the legacy header: native byte order, as
    /// neither TUNSETVNETLE nor TUNSETVNETBE is set) and the frame.
    fn write(&self, hdr: &[u8; 10], frame: &[u8]) -> io::Result<()> {
        let iov = [
            libc::iovec {
                iov_base: hdr.as_ptr() as *mut libc::c_void,
                iov_len: hdr.len(),
            },
            libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            },
        ];
        // SAFETY: both iovecs describe live buffers the kernel only reads.
        let n = unsafe { libc::writev(self.tap.as_raw_fd(), iov.as_ptr(), 2) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
