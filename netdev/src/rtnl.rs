//! An rtnetlink socket: one request at a time under its own sequence number, with
//! the kernel's answer (a reply, a dump, or an acknowledgement) or its errno. Used by
//! `bpf_fib_lookup` ([`crate::fib`]) and the reinjection TAP's TC set-up
//! ([`crate::tc`]). The only `unsafe` is the socket's creation, send and receive.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// A native-endian u32 at the start of `b` (0 when shorter).
pub(crate) fn u32_of(b: &[u8]) -> u32 {
    b.get(..4)
        .map(|b| u32::from_ne_bytes(b.try_into().unwrap()))
        .unwrap_or(0)
}

pub(crate) struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    /// A NETLINK_ROUTE socket in the calling thread's network namespace (replies
    /// awaited 1 s at most).
    pub(crate) fn open() -> std::io::Result<Socket> {
        // SAFETY: socket() takes no pointers.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: setsockopt reads a timeval of the size given.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        Ok(Socket { fd, seq: 1 })
    }

    /// Send message `ty` with `flags` and `body` under a new sequence number.
    fn send(&mut self, ty: u16, flags: u16, body: &[u8]) -> Result<(), i32> {
        self.seq = self.seq.wrapping_add(1);
        let mut msg = Vec::with_capacity(16 + body.len());
        msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(&flags.to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: sends `msg` (valid for its length) to the kernel (default address).
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
            )
        };
        if n < 0 {
            return Err(libc::EIO);
        }
        Ok(())
    }

    /// Receive one datagram (one or more messages) into `buf`; its length.
    fn recv(&self, buf: &mut [u8]) -> Result<usize, i32> {
        // SAFETY: receives into `buf`, valid for its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if n < 16 {
            return Err(libc::EIO);
        }
        Ok(n as usize)
    }

    /// The messages of the current request in the datagrams that follow: `each`
    /// gets (type, payload) and says whether more are expected. Replies to earlier,
    /// timed-out requests are skipped.
    fn replies(&mut self, mut each: impl FnMut(u16, &[u8]) -> bool) -> Result<(), i32> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.recv(&mut buf)?;
            let mut b = &buf[..n];
            while b.len() >= 16 {
                let len = (u32_of(b) as usize).clamp(16, b.len());
                let mty = u16::from_ne_bytes([b[4], b[5]]);
                if u32_of(&b[8..]) == self.seq && !each(mty, &b[16..len]) {
                    return Ok(());
                }
                b = &b[len.next_multiple_of(4).min(b.len())..];
            }
        }
    }

    /// One request; the payload of its reply, or the kernel's errno.
    pub(crate) fn request(&mut self, ty: u16, body: &[u8]) -> Result<Vec<u8>, i32> {
        self.send(ty, NLM_F_REQUEST, body)?;
        let mut out = Err(libc::EIO);
        self.replies(|mty, payload| {
            out = match mty {
                NLMSG_ERROR => match u32_of(payload) as i32 {
                    0 => Ok(Vec::new()),
                    e => Err(-e),
                },
                _ => Ok(payload.to_vec()),
            };
            false
        })?;
        out
    }

    /// A dump request: the payloads of every message up to NLMSG_DONE.
    pub(crate) fn dump(&mut self, ty: u16, body: &[u8]) -> Result<Vec<Vec<u8>>, i32> {
        self.send(ty, NLM_F_REQUEST | NLM_F_DUMP, body)?;
        let (mut out, mut err) = (Vec::new(), 0);
        self.replies(|mty, payload| match mty {
            NLMSG_DONE => false,
            NLMSG_ERROR => {
                err = -(u32_of(payload) as i32);
                false
            }
            _ => {
                out.push(payload.to_vec());
                true
            }
        })?;
        if err != 0 {
            return Err(err);
        }
        Ok(out)
    }

    /// A request that creates `body` (`NLM_F_CREATE | NLM_F_EXCL`), acknowledged.
    pub(crate) fn create(&mut self, ty: u16, body: &[u8]) -> Result<(), i32> {
        self.send(
            ty,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            body,
        )?;
        let mut out = Err(libc::EIO);
        self.replies(|mty, payload| {
            if mty == NLMSG_ERROR {
                out = match u32_of(payload) as i32 {
                    0 => Ok(()),
                    e => Err(-e),
                };
            }
            mty != NLMSG_ERROR
        })?;
        out
    }
}
