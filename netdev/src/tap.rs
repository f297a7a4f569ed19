//! XDP_PASS through a TAP device: the fast reinjection path of native (DRV) mode.
//!
//! Per attachment, in the interface's namespace: a TAP device `bpftN` (no IPv6, no
//! addresses, up) whose TC ingress program (TCX link, `bpf_redirect(ifindex,
//! BPF_F_INGRESS)`) hands every frame written to it to the interface's receive path:
//! the stack, `tcpdump -i IF`, sockets and netfilter see it as received on the interface
//! (`dev_forward_skb` recomputes the packet type against the interface's address). One
//! `write()` per frame costs a few microseconds, where a live-frame test run costs ~20
//! and a page pool set up and torn down per call (and the kworkers that tear it down).
//!
//! Only native mode: in generic mode a frame redirected to the interface's ingress meets
//! its generic XDP hook, and so the redirect stub, again; there the live-frame path with
//! its per-CPU token stays (see `stub`). Frames with metadata (`data_meta`) also take the
//! live-frame path, which carries it. If the daemon dies, the TAP (not persistent) and
//! the TCX link go with its fds.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::{netns, sys};

/// `TUNSETIFF`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;
/// `BPF_PROG_TYPE_SCHED_CLS`.
const PROG_TYPE_SCHED_CLS: u32 = 3;
/// `BPF_TCX_INGRESS`.
const ATTACH_TCX_INGRESS: u32 = 46;

/// The TAP, its TC program and link.
#[derive(Debug)]
pub struct Reinject {
    tap: OwnedFd,
    _prog: OwnedFd,
    _link: OwnedFd,
    /// The TAP's name (`bpftN`).
    pub name: String,
}

impl Reinject {
    /// Creates the TAP and attaches its redirect to `target_ifindex`, in the calling
    /// thread's network namespace.
    pub fn new(target_ifindex: u32) -> io::Result<Reinject> {
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
        ifr[16..18].copy_from_slice(&(IFF_TAP | IFF_NO_PI).to_ne_bytes());
        // SAFETY: ifr is a 40-byte struct ifreq image; TUNSETIFF reads the flags and
        // writes the chosen name in place.
        if unsafe { libc::ioctl(tap.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let end = ifr[..16].iter().position(|&c| c == 0).unwrap_or(16);
        let name = String::from_utf8_lossy(&ifr[..end]).into_owned();
        // Quiet: no link-local address, router solicitations or DAD from it.
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
        netns::set_up(&name)?;
        let cname = std::ffi::CString::new(name.as_str()).map_err(io::Error::other)?;
        // SAFETY: cname is a valid NUL-terminated string.
        let tap_ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if tap_ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let prog = sys::prog_load(
            PROG_TYPE_SCHED_CLS,
            &crate::stub::tap_redirect_stub(target_ifindex),
            "bpftime_reinj",
            ATTACH_TCX_INGRESS,
        )?;
        let link = sys::link_create(&prog, tap_ifindex, ATTACH_TCX_INGRESS, 0)?;
        Ok(Reinject {
            tap,
            _prog: prog,
            _link: link,
            name,
        })
    }

    /// Hands one frame (from the Ethernet header) to the interface's receive path.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: frame is a live buffer of frame.len() bytes.
        let n = unsafe { libc::write(self.tap.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
