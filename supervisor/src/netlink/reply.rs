//! Replies as the kernel builds them (`netlink_ack`, net/netlink/af_netlink.c) and the
//! per-socket queue of datagrams the target receives before anything the kernel holds
//! (`netlink_recvmsg` semantics for MSG_PEEK and MSG_TRUNC).

use std::collections::VecDeque;

use super::msg::{
    align4, attrs, put_attr, NlMsgHdr, NLMSGERR_ATTR_MISS_NEST, NLMSGERR_ATTR_MSG,
    NLMSGERR_ATTR_OFFS, NLMSG_ERROR, NLMSG_HDRLEN, NLM_F_ACK_TLVS, NLM_F_CAPPED,
};

/// Socket options that shape acks (read them with getsockopt(SOL_NETLINK) on the
/// target's socket: the kernel keeps them per socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AckOptions {
    /// NETLINK_EXT_ACK (11): extended-ack TLVs (the message string) are added.
    pub ext_ack: bool,
    /// NETLINK_CAP_ACK (10): error replies echo only the request's header.
    pub cap_ack: bool,
}

/// `sizeof(struct nlmsgerr)`: error + the request's header.
pub const NLMSGERR_LEN: usize = 4 + NLMSG_HDRLEN;

/// Builds the NLMSG_ERROR the kernel sends for `request` (its full bytes, header first):
/// `errno` 0 is the ACK. `tlvs` are extended-ack attributes already encoded (only sent
/// with NETLINK_EXT_ACK; use [`extack_tlvs`] for a message string). `portid` is the
/// receiving socket's nl_pid; seq is the request's.
pub fn build_error(
    request: &[u8],
    portid: u32,
    errno: i32,
    tlvs: &[u8],
    opts: AckOptions,
) -> Vec<u8> {
    let req_hdr = NlMsgHdr::parse(request).unwrap_or_default();
    let req_payload = request
        .get(NLMSG_HDRLEN..req_hdr.len as usize)
        .or(request.get(NLMSG_HDRLEN..))
        .unwrap_or(&[]);
    let mut flags = 0;
    let echo = errno != 0 && !opts.cap_ack;
    if !echo {
        flags |= NLM_F_CAPPED;
    }
    let tlvs = if opts.ext_ack { tlvs } else { &[][..] };
    if !tlvs.is_empty() {
        flags |= NLM_F_ACK_TLVS;
    }
    let mut out = Vec::with_capacity(NLMSG_HDRLEN + NLMSGERR_LEN + request.len() + tlvs.len());
    out.extend_from_slice(&[0; NLMSG_HDRLEN]);
    out.extend_from_slice(&(-errno).to_ne_bytes());
    out.extend_from_slice(&req_hdr.to_bytes());
    if echo {
        out.extend_from_slice(req_payload);
        out.resize(align4(out.len()), 0);
    }
    out.extend_from_slice(tlvs);
    let hdr = NlMsgHdr {
        len: out.len() as u32,
        ty: NLMSG_ERROR,
        flags,
        seq: req_hdr.seq,
        pid: portid,
    };
    out[..NLMSG_HDRLEN].copy_from_slice(&hdr.to_bytes());
    out
}

/// The TLVs for an extack message (`NLMSGERR_ATTR_MSG`, NUL-terminated string).
pub fn extack_tlvs(msg: Option<&str>) -> Vec<u8> {
    let mut t = Vec::new();
    if let Some(m) = msg {
        let mut s = m.as_bytes().to_vec();
        s.push(0);
        put_attr(&mut t, NLMSGERR_ATTR_MSG, &s);
    }
    t
}

/// Builds the kernel's reply to `request` for `errno` (0 = ACK) and an extack message.
pub fn build_ack(
    request: &[u8],
    portid: u32,
    errno: i32,
    msg: Option<&str>,
    opts: AckOptions,
) -> Vec<u8> {
    build_error(request, portid, errno, &extack_tlvs(msg), opts)
}

/// An NLMSG_ERROR read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedError<'a> {
    /// Its header.
    pub hdr: NlMsgHdr,
    /// Positive errno (0 for an ACK).
    pub errno: i32,
    /// The echoed request header.
    pub request: NlMsgHdr,
    /// The extended-ack TLVs (empty without NLM_F_ACK_TLVS).
    pub tlvs: &'a [u8],
}

impl ParsedError<'_> {
    /// The NLMSGERR_ATTR_MSG string, if any.
    pub fn message(&self) -> Option<String> {
        attrs(self.tlvs)
            .find(|a| a.ty() == NLMSGERR_ATTR_MSG)
            .map(|a| {
                let end = a
                    .payload
                    .iter()
                    .position(|&c| c == 0)
                    .unwrap_or(a.payload.len());
                String::from_utf8_lossy(&a.payload[..end]).into_owned()
            })
    }
}

/// Reads one NLMSG_ERROR message (exactly its bytes).
pub fn parse_error(msg: &[u8]) -> Option<ParsedError<'_>> {
    let hdr = NlMsgHdr::parse(msg)?;
    if hdr.ty != NLMSG_ERROR
        || (hdr.len as usize) < NLMSG_HDRLEN + NLMSGERR_LEN
        || hdr.len as usize > msg.len()
    {
        return None;
    }
    let msg = &msg[..hdr.len as usize];
    let err = i32::from_ne_bytes(msg[16..20].try_into().ok()?);
    let request = NlMsgHdr::parse(&msg[20..36])?;
    let tlvs = if hdr.flags & NLM_F_ACK_TLVS == 0 {
        &[][..]
    } else {
        let start = if hdr.flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN + NLMSGERR_LEN
        } else {
            NLMSG_HDRLEN + 4 + align4(request.len as usize)
        };
        msg.get(start..).unwrap_or(&[])
    };
    Some(ParsedError {
        hdr,
        errno: err.wrapping_neg(),
        request,
        tlvs,
    })
}

/// Copies extended-ack TLVs, mapping the offsets they carry (NLMSGERR_ATTR_OFFS,
/// NLMSGERR_ATTR_MISS_NEST, relative to the request's header) with `map`; an offset
/// that does not map is dropped.
pub fn remap_tlv_offsets(tlvs: &[u8], map: &dyn Fn(usize) -> Option<usize>) -> Vec<u8> {
    let mut out = Vec::with_capacity(tlvs.len());
    for a in attrs(tlvs) {
        if matches!(a.ty(), NLMSGERR_ATTR_OFFS | NLMSGERR_ATTR_MISS_NEST) {
            if let Some(o) = a.u32().and_then(|o| map(o as usize)) {
                put_attr(&mut out, a.raw_type, &(o as u32).to_ne_bytes());
            }
        } else {
            put_attr(&mut out, a.raw_type, a.payload);
        }
    }
    out
}

/// `MSG_PEEK`.
pub const MSG_PEEK: i32 = libc::MSG_PEEK;
/// `MSG_TRUNC`.
pub const MSG_TRUNC: i32 = libc::MSG_TRUNC;

/// One datagram waiting for the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The bytes (one or more netlink messages).
    pub data: Vec<u8>,
    /// Sender port id for the source address (0: the kernel).
    pub portid: u32,
    /// Multicast group for the source address (0: unicast).
    pub group: u32,
}

impl Datagram {
    /// A unicast datagram from the kernel.
    pub fn from_kernel(data: Vec<u8>) -> Self {
        Self {
            data,
            portid: 0,
            group: 0,
        }
    }

    /// The `struct sockaddr_nl` the kernel reports as its source (12 bytes).
    pub fn source_addr(&self) -> [u8; 12] {
        let mut a = [0u8; 12];
        a[0..2].copy_from_slice(&(libc::AF_NETLINK as u16).to_ne_bytes());
        a[4..8].copy_from_slice(&self.portid.to_ne_bytes());
        a[8..12].copy_from_slice(&self.group.to_ne_bytes());
        a
    }
}

/// What one recv returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Bytes to copy into the target's buffer (at most its size).
    pub data: Vec<u8>,
    /// The syscall's return value: bytes copied, or the full length with MSG_TRUNC.
    pub ret: usize,
    /// `msg_flags` to report: MSG_TRUNC when the datagram did not fit.
    pub msg_flags: i32,
    /// The source address (`sockaddr_nl`).
    pub addr: [u8; 12],
}

/// Datagrams queued for one netlink socket of a target, served before the kernel's.
#[derive(Debug, Default, Clone)]
pub struct ReplyQueue {
    q: VecDeque<Datagram>,
}

impl ReplyQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a datagram.
    pub fn push(&mut self, d: Datagram) {
        self.q.push_back(d);
    }

    /// Appends a datagram from the kernel (our own replies are "from the kernel" too).
    pub fn push_kernel(&mut self, data: Vec<u8>) {
        self.q.push_back(Datagram::from_kernel(data));
    }

    /// Whether nothing is queued (then the target's recv goes to the kernel).
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Number of queued datagrams.
    pub fn len(&self) -> usize {
        self.q.len()
    }

    /// The next datagram's length (what FIONREAD / SIOCINQ would say), if any.
    pub fn next_len(&self) -> Option<usize> {
        self.q.front().map(|d| d.data.len())
    }

    /// Serves one recv of a `buf_len`-byte buffer with recv `flags`, as
    /// `netlink_recvmsg`: a datagram larger than the buffer is truncated (MSG_TRUNC in
    /// msg_flags) and still consumed; with MSG_TRUNC in `flags` the full length is
    /// returned; MSG_PEEK leaves it queued. `None` when the queue is empty.
    pub fn recv(&mut self, buf_len: usize, flags: i32) -> Option<Received> {
        let d = self.q.front()?;
        let full = d.data.len();
        let copied = full.min(buf_len);
        let r = Received {
            data: d.data[..copied].to_vec(),
            ret: if flags & MSG_TRUNC != 0 { full } else { copied },
            msg_flags: if copied < full { MSG_TRUNC } else { 0 },
            addr: d.source_addr(),
        };
        if flags & MSG_PEEK == 0 {
            self.q.pop_front();
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::msg::{NLM_F_ACK, NLM_F_REQUEST, RTM_SETLINK};

    fn req(payload_len: usize) -> Vec<u8> {
        let hdr = NlMsgHdr {
            len: (NLMSG_HDRLEN + payload_len) as u32,
            ty: RTM_SETLINK,
            flags: NLM_F_REQUEST | NLM_F_ACK,
            seq: 77,
            pid: 0,
        };
        let mut v = hdr.to_bytes().to_vec();
        v.extend((0..payload_len).map(|i| i as u8));
        v
    }

    #[test]
    fn ack_and_errors() {
        let r = req(24);
        let opts = AckOptions {
            ext_ack: true,
            cap_ack: false,
        };
        let ack = build_ack(&r, 1234, 0, None, opts);
        assert_eq!(ack.len(), 36);
        let p = parse_error(&ack).unwrap();
        assert_eq!(
            (p.hdr.seq, p.hdr.pid, p.hdr.flags, p.errno),
            (77, 1234, NLM_F_CAPPED, 0)
        );
        let e = build_ack(
            &r,
            1234,
            libc::EBUSY,
            Some("XDP program already attached"),
            opts,
        );
        let p = parse_error(&e).unwrap();
        assert_eq!(p.hdr.flags, NLM_F_ACK_TLVS);
        assert_eq!(p.errno, libc::EBUSY);
        assert_eq!(p.message().as_deref(), Some("XDP program already attached"));
        assert_eq!(&e[36..60], &r[16..]);
        assert_eq!(e.len() % 4, 0);
        let c = build_ack(
            &r,
            1,
            libc::EINVAL,
            Some("x"),
            AckOptions {
                ext_ack: true,
                cap_ack: true,
            },
        );
        let p = parse_error(&c).unwrap();
        assert_eq!(p.hdr.flags, NLM_F_CAPPED | NLM_F_ACK_TLVS);
        assert_eq!(p.message().as_deref(), Some("x"));
        let n = build_ack(&r, 1, libc::EINVAL, Some("x"), AckOptions::default());
        assert_eq!(parse_error(&n).unwrap().hdr.flags, 0);
        assert_eq!(n.len(), 16 + 20 + 24);
        // An odd-length request is padded after the echo.
        let o = build_ack(&req(5), 1, libc::EINVAL, None, AckOptions::default());
        assert_eq!(o.len(), 16 + 20 + 8);
    }

    #[test]
    fn remap_offsets() {
        let mut t = extack_tlvs(Some("m"));
        put_attr(&mut t, NLMSGERR_ATTR_OFFS, &40u32.to_ne_bytes());
        let out = remap_tlv_offsets(&t, &|o| Some(o + 16));
        let offs = attrs(&out)
            .find(|a| a.ty() == NLMSGERR_ATTR_OFFS)
            .unwrap()
            .u32();
        assert_eq!(offs, Some(56));
    }

    #[test]
    fn queue_peek_trunc() {
        let mut q = ReplyQueue::new();
        assert!(q.recv(100, 0).is_none());
        q.push_kernel(vec![1; 36]);
        q.push_kernel(vec![2; 8]);
        // libbpf: PEEK|TRUNC with an empty buffer to learn the size.
        let r = q.recv(0, MSG_PEEK | MSG_TRUNC).unwrap();
        assert_eq!((r.ret, r.data.len(), r.msg_flags), (36, 0, MSG_TRUNC));
        assert_eq!(q.len(), 2);
        let r = q.recv(10, 0).unwrap();
        assert_eq!((r.ret, r.data.len(), r.msg_flags), (10, 10, MSG_TRUNC));
        assert_eq!(q.next_len(), Some(8));
        let r = q.recv(100, MSG_TRUNC).unwrap();
        assert_eq!((r.ret, r.data, r.msg_flags), (8, vec![2; 8], 0));
        assert!(q.is_empty());
        assert_eq!(&r.addr[0..2], &(libc::AF_NETLINK as u16).to_ne_bytes());
    }
}
