//! The netlink wire format as rtnetlink uses it: message headers (`struct nlmsghdr`),
//! attributes (`struct nlattr`), `struct ifinfomsg`, and the `IFLA_XDP` nest.
//!
//! Iteration follows the kernel's own loops so that garbage is treated as the kernel
//! treats it: `netlink_rcv_skb` (net/netlink/af_netlink.c) stops at the first message
//! whose length is shorter than a header or longer than what is left, and silently
//! ignores the rest; `nla_for_each_attr` (include/net/netlink.h) stops at the first
//! attribute that does not fit, and the bytes left over are only warned about by the
//! deprecated (non-strict) parsers rtnetlink uses. Nothing here panics on any input.

/// `NLMSG_HDRLEN`: size of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;
/// `NLA_HDRLEN`: size of `struct nlattr`.
pub const NLA_HDRLEN: usize = 4;
/// Size of `struct ifinfomsg`.
pub const IFINFOMSG_LEN: usize = 16;

/// `NLMSG_NOOP`.
pub const NLMSG_NOOP: u16 = 1;
/// `NLMSG_ERROR` (also the ACK).
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`, the end of a dump.
pub const NLMSG_DONE: u16 = 3;
/// `NLMSG_MIN_TYPE`: types below are control messages.
pub const NLMSG_MIN_TYPE: u16 = 0x10;

/// `NLM_F_REQUEST`.
pub const NLM_F_REQUEST: u16 = 0x01;
/// `NLM_F_MULTI`.
pub const NLM_F_MULTI: u16 = 0x02;
/// `NLM_F_ACK`.
pub const NLM_F_ACK: u16 = 0x04;
/// `NLM_F_ECHO`.
pub const NLM_F_ECHO: u16 = 0x08;
/// `NLM_F_ROOT` (GET requests).
pub const NLM_F_ROOT: u16 = 0x100;
/// `NLM_F_MATCH` (GET requests).
pub const NLM_F_MATCH: u16 = 0x200;
/// `NLM_F_DUMP` = ROOT | MATCH.
pub const NLM_F_DUMP: u16 = NLM_F_ROOT | NLM_F_MATCH;
/// `NLM_F_REPLACE` (NEW requests).
pub const NLM_F_REPLACE: u16 = 0x100;
/// `NLM_F_EXCL` (NEW requests).
pub const NLM_F_EXCL: u16 = 0x200;
/// `NLM_F_CREATE` (NEW requests).
pub const NLM_F_CREATE: u16 = 0x400;
/// `NLM_F_CAPPED` (on NLMSG_ERROR): the request is not echoed past its header.
pub const NLM_F_CAPPED: u16 = 0x100;
/// `NLM_F_ACK_TLVS` (on NLMSG_ERROR): extended-ack attributes follow.
pub const NLM_F_ACK_TLVS: u16 = 0x200;

/// `RTM_NEWLINK`.
pub const RTM_NEWLINK: u16 = 16;
/// `RTM_DELLINK`.
pub const RTM_DELLINK: u16 = 17;
/// `RTM_GETLINK`.
pub const RTM_GETLINK: u16 = 18;
/// `RTM_SETLINK`.
pub const RTM_SETLINK: u16 = 19;

/// `NLA_F_NESTED`.
pub const NLA_F_NESTED: u16 = 0x8000;
/// `NLA_F_NET_BYTEORDER`.
pub const NLA_F_NET_BYTEORDER: u16 = 0x4000;
/// `NLA_TYPE_MASK`.
pub const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

/// `IFLA_IFNAME`.
pub const IFLA_IFNAME: u16 = 3;
/// `IFLA_XDP`.
pub const IFLA_XDP: u16 = 43;
/// `IFLA_ALT_IFNAME`.
pub const IFLA_ALT_IFNAME: u16 = 53;

/// `IFLA_XDP_FD` (s32, -1 detaches).
pub const IFLA_XDP_FD: u16 = 1;
/// `IFLA_XDP_ATTACHED` (u8, reported only; refused in requests).
pub const IFLA_XDP_ATTACHED: u16 = 2;
/// `IFLA_XDP_FLAGS` (u32).
pub const IFLA_XDP_FLAGS: u16 = 3;
/// `IFLA_XDP_PROG_ID` (u32, reported only; refused in requests).
pub const IFLA_XDP_PROG_ID: u16 = 4;
/// `IFLA_XDP_DRV_PROG_ID` (u32, reported).
pub const IFLA_XDP_DRV_PROG_ID: u16 = 5;
/// `IFLA_XDP_SKB_PROG_ID` (u32, reported).
pub const IFLA_XDP_SKB_PROG_ID: u16 = 6;
/// `IFLA_XDP_HW_PROG_ID` (u32, reported).
pub const IFLA_XDP_HW_PROG_ID: u16 = 7;
/// `IFLA_XDP_EXPECTED_FD` (s32, with XDP_FLAGS_REPLACE).
pub const IFLA_XDP_EXPECTED_FD: u16 = 8;
/// `IFLA_XDP_MAX`.
pub const IFLA_XDP_MAX: u16 = 8;

/// `NLMSGERR_ATTR_MSG`: the extended-ack message string.
pub const NLMSGERR_ATTR_MSG: u16 = 1;
/// `NLMSGERR_ATTR_OFFS`: offset of the offending attribute in the request.
pub const NLMSGERR_ATTR_OFFS: u16 = 2;
/// `NLMSGERR_ATTR_MISS_NEST`: offset of the nest missing an attribute.
pub const NLMSGERR_ATTR_MISS_NEST: u16 = 6;

/// `NLMSG_ALIGN` / `NLA_ALIGN`.
pub const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// `struct nlmsghdr`, host byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NlMsgHdr {
    /// nlmsg_len: header plus payload, without trailing padding.
    pub len: u32,
    /// nlmsg_type.
    pub ty: u16,
    /// nlmsg_flags.
    pub flags: u16,
    /// nlmsg_seq.
    pub seq: u32,
    /// nlmsg_pid (port id).
    pub pid: u32,
}

impl NlMsgHdr {
    /// Reads a header from the first 16 bytes of `b`.
    pub fn parse(b: &[u8]) -> Option<Self> {
        Some(Self {
            len: u32_at(b, 0)?,
            ty: u16_at(b, 4)?,
            flags: u16_at(b, 6)?,
            seq: u32_at(b, 8)?,
            pid: u32_at(b, 12)?,
        })
    }

    /// The 16 wire bytes.
    pub fn to_bytes(&self) -> [u8; NLMSG_HDRLEN] {
        let mut b = [0u8; NLMSG_HDRLEN];
        b[0..4].copy_from_slice(&self.len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.ty.to_ne_bytes());
        b[6..8].copy_from_slice(&self.flags.to_ne_bytes());
        b[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        b[12..16].copy_from_slice(&self.pid.to_ne_bytes());
        b
    }
}

/// One message of a stream, as `netlink_rcv_skb` would see it.
#[derive(Debug, Clone, Copy)]
pub struct NlMsg<'a> {
    /// Offset of the header in the stream.
    pub offset: usize,
    /// The parsed header.
    pub hdr: NlMsgHdr,
    /// Header plus payload: exactly `hdr.len` bytes.
    pub bytes: &'a [u8],
}

impl<'a> NlMsg<'a> {
    /// The payload after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[NLMSG_HDRLEN..]
    }
}

/// Iterator over the messages of a datagram; see [`messages`].
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    buf: &'a [u8],
    pos: usize,
    stopped: bool,
}

impl Messages<'_> {
    /// Offset where iteration stopped (all bytes from here on are ignored by the kernel).
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = NlMsg<'a>;

    fn next(&mut self) -> Option<NlMsg<'a>> {
        if self.stopped {
            return None;
        }
        let rest = &self.buf[self.pos..];
        // while (skb->len >= nlmsg_total_size(0))
        if rest.len() < NLMSG_HDRLEN {
            self.stopped = true;
            return None;
        }
        let hdr = NlMsgHdr::parse(rest)?;
        let len = hdr.len as usize;
        // if (nlh->nlmsg_len < NLMSG_HDRLEN || skb->len < nlh->nlmsg_len) return 0;
        if len < NLMSG_HDRLEN || len > rest.len() {
            self.stopped = true;
            return None;
        }
        let msg = NlMsg {
            offset: self.pos,
            hdr,
            bytes: &rest[..len],
        };
        // msglen = NLMSG_ALIGN(nlh->nlmsg_len); if (msglen > skb->len) msglen = skb->len;
        self.pos += align4(len).min(rest.len());
        Some(msg)
    }
}

/// The messages of `buf` in the kernel's order, stopping where the kernel stops.
pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages {
        buf,
        pos: 0,
        stopped: false,
    }
}

/// One attribute, as `nla_for_each_attr` yields it.
#[derive(Debug, Clone, Copy)]
pub struct Attr<'a> {
    /// Offset of the attribute header inside the attribute area it was read from.
    pub offset: usize,
    /// Raw nla_type, flags included.
    pub raw_type: u16,
    /// Payload: `nla_len - 4` bytes.
    pub payload: &'a [u8],
    /// Bytes this attribute occupies, padding included (may run past the area's end
    /// for the last one, as in the kernel).
    pub span: usize,
}

impl Attr<'_> {
    /// nla_type(): the type without NESTED / NET_BYTEORDER flags.
    pub fn ty(&self) -> u16 {
        self.raw_type & NLA_TYPE_MASK
    }

    /// Whether NLA_F_NESTED is set.
    pub fn nested_flag(&self) -> bool {
        self.raw_type & NLA_F_NESTED != 0
    }

    /// nla_get_u32 / nla_get_s32 (the caller has checked the length).
    pub fn u32(&self) -> Option<u32> {
        u32_at(self.payload, 0)
    }

    /// nla_get_s32.
    pub fn s32(&self) -> Option<i32> {
        self.u32().map(|v| v as i32)
    }
}

/// Iterator over attributes; see [`attrs`].
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Attrs<'_> {
    /// Bytes left over after the last attribute that fit (warned about by the kernel).
    pub fn leftover(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        let rest = self.buf.get(self.pos..)?;
        // nla_ok(): rem >= sizeof(*nla) && nla_len >= sizeof(*nla) && nla_len <= rem
        if rest.len() < NLA_HDRLEN {
            return None;
        }
        let len = u16_at(rest, 0)? as usize;
        let raw_type = u16_at(rest, 2)?;
        if len < NLA_HDRLEN || len > rest.len() {
            return None;
        }
        let a = Attr {
            offset: self.pos,
            raw_type,
            payload: &rest[NLA_HDRLEN..len],
            span: align4(len),
        };
        self.pos += align4(len);
        Some(a)
    }
}

/// The attributes of an attribute area, stopping where `nla_for_each_attr` stops.
pub fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { buf, pos: 0 }
}

/// Appends one attribute (header, payload, padding to 4 bytes).
pub fn put_attr(out: &mut Vec<u8>, raw_type: u16, payload: &[u8]) {
    let len = (NLA_HDRLEN + payload.len()) as u16;
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&raw_type.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(align4(out.len()), 0);
}

/// `struct ifinfomsg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IfInfoMsg {
    /// ifi_family.
    pub family: u8,
    /// ifi_type (ARPHRD_*).
    pub ty: u16,
    /// ifi_index.
    pub index: i32,
    /// ifi_flags.
    pub flags: u32,
    /// ifi_change.
    pub change: u32,
}

impl IfInfoMsg {
    /// Reads the first 16 bytes of a link message's payload.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < IFINFOMSG_LEN {
            return None;
        }
        Some(Self {
            family: b[0],
            ty: u16_at(b, 2)?,
            index: u32_at(b, 4)? as i32,
            flags: u32_at(b, 8)?,
            change: u32_at(b, 12)?,
        })
    }

    /// The 16 wire bytes.
    pub fn to_bytes(&self) -> [u8; IFINFOMSG_LEN] {
        let mut b = [0u8; IFINFOMSG_LEN];
        b[0] = self.family;
        b[2..4].copy_from_slice(&self.ty.to_ne_bytes());
        b[4..8].copy_from_slice(&self.index.to_ne_bytes());
        b[8..12].copy_from_slice(&self.flags.to_ne_bytes());
        b[12..16].copy_from_slice(&self.change.to_ne_bytes());
        b
    }
}

/// The `IFLA_XDP` nest of a request as `nla_parse_nested_deprecated(xdp, IFLA_XDP_MAX,
/// tb[IFLA_XDP], ifla_xdp_policy, NULL)` fills its table (last occurrence wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XdpNest {
    /// IFLA_XDP_FD.
    pub fd: Option<i32>,
    /// IFLA_XDP_ATTACHED present (a request must not carry it).
    pub attached: bool,
    /// IFLA_XDP_FLAGS.
    pub flags: Option<u32>,
    /// IFLA_XDP_PROG_ID present (a request must not carry it).
    pub prog_id: bool,
    /// IFLA_XDP_EXPECTED_FD.
    pub expected_fd: Option<i32>,
}

/// Parses an `IFLA_XDP` payload (with or without NLA_F_NESTED on the nest: the kernel
/// does not look at it) with `ifla_xdp_policy`. Errors are the kernel's errno: ERANGE for
/// a fixed-size attribute shorter than its type, EINVAL for an IFLA_XDP_EXPECTED_FD (the
/// policy's `strict_start_type`) of the wrong length or with NLA_F_NESTED.
pub fn parse_xdp_nest(payload: &[u8]) -> Result<XdpNest, i32> {
    let mut n = XdpNest::default();
    for a in attrs(payload) {
        let ty = a.ty();
        if ty == 0 || ty > IFLA_XDP_MAX {
            continue;
        }
        let len = a.payload.len();
        // Policy: FD s32, ATTACHED u8, FLAGS u32, PROG_ID u32, EXPECTED_FD s32 (strict);
        // DRV/SKB/HW_PROG_ID have no policy entry (NLA_UNSPEC, any length).
        let min = match ty {
            IFLA_XDP_FD | IFLA_XDP_FLAGS | IFLA_XDP_PROG_ID | IFLA_XDP_EXPECTED_FD => 4,
            IFLA_XDP_ATTACHED => 1,
            _ => 0,
        };
        if ty >= IFLA_XDP_EXPECTED_FD {
            // NL_VALIDATE_STRICT from strict_start_type: exact length, no NESTED flag.
            if len != min || a.nested_flag() {
                return Err(libc::EINVAL);
            }
        }
        if len < min {
            return Err(libc::ERANGE);
        }
        match ty {
            IFLA_XDP_FD => n.fd = a.s32(),
            IFLA_XDP_ATTACHED => n.attached = true,
            IFLA_XDP_FLAGS => n.flags = a.u32(),
            IFLA_XDP_PROG_ID => n.prog_id = true,
            IFLA_XDP_EXPECTED_FD => n.expected_fd = a.s32(),
            _ => {}
        }
    }
    Ok(n)
}

/// How a link request names its device: `ifi_index > 0` wins, else IFLA_IFNAME,
/// else IFLA_ALT_IFNAME (`rtnl_dev_get`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkTarget {
    /// By ifindex.
    Index(u32),
    /// By name (bytes up to the first NUL, at most IFNAMSIZ-1 as `nla_strscpy`).
    Name(Vec<u8>),
    /// By alternative name.
    AltName(Vec<u8>),
    /// Neither: the kernel answers EINVAL (SETLINK) or ENODEV (NEWLINK without CREATE).
    None,
}

/// An RTM_NEWLINK / RTM_SETLINK request, its top-level attributes located.
#[derive(Debug, Clone)]
pub struct LinkRequest<'a> {
    /// The whole message.
    pub msg: NlMsg<'a>,
    /// Its ifinfomsg.
    pub ifi: IfInfoMsg,
    /// The device it names.
    pub target: LinkTarget,
    /// Payload of the last IFLA_XDP (the one the kernel's table keeps).
    pub xdp: Option<&'a [u8]>,
    /// Byte ranges (within the message) of every IFLA_XDP attribute, padding included.
    pub xdp_ranges: Vec<std::ops::Range<usize>>,
}

fn c_name(payload: &[u8], max: usize) -> Vec<u8> {
    let end = payload
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(payload.len());
    payload[..end.min(max)].to_vec()
}

/// Reads an RTM_NEWLINK / RTM_SETLINK request. `None` when the message is not such a
/// request or is too short for an ifinfomsg (the kernel then rejects or ignores it by
/// itself, so it can be forwarded untouched).
pub fn parse_link_request<'a>(msg: &NlMsg<'a>) -> Option<LinkRequest<'a>> {
    if msg.hdr.flags & NLM_F_REQUEST == 0 || !matches!(msg.hdr.ty, RTM_NEWLINK | RTM_SETLINK) {
        return None;
    }
    let payload = msg.payload();
    let ifi = IfInfoMsg::parse(payload)?;
    let area_off = NLMSG_HDRLEN + align4(IFINFOMSG_LEN);
    let area = msg.bytes.get(area_off..).unwrap_or(&[]);
    let mut xdp = None;
    let mut xdp_ranges = Vec::new();
    let mut name = None;
    let mut alt = None;
    for a in attrs(area) {
        match a.ty() {
            IFLA_XDP => {
                xdp = Some(a.payload);
                let start = area_off + a.offset;
                xdp_ranges.push(start..(start + a.span).min(msg.bytes.len()));
            }
            IFLA_IFNAME => name = Some(c_name(a.payload, 15)),
            IFLA_ALT_IFNAME => alt = Some(c_name(a.payload, 127)),
            _ => {}
        }
    }
    let target = if ifi.index > 0 {
        LinkTarget::Index(ifi.index as u32)
    } else if let Some(n) = name {
        LinkTarget::Name(n)
    } else if let Some(n) = alt {
        LinkTarget::AltName(n)
    } else {
        LinkTarget::None
    };
    Some(LinkRequest {
        msg: *msg,
        ifi,
        target,
        xdp,
        xdp_ranges,
    })
}

/// A message with some byte ranges cut out, and the map back to the original's offsets
/// (to translate NLMSGERR_ATTR_OFFS of a kernel error about the cut message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripped {
    /// The re-encoded message, nlmsg_len fixed.
    pub bytes: Vec<u8>,
    /// (offset in `bytes`, offset in the original, length) of each kept segment.
    pub segments: Vec<(usize, usize, usize)>,
}

impl Stripped {
    /// The original offset of byte `off` of the stripped message.
    pub fn original_offset(&self, off: usize) -> Option<usize> {
        self.segments
            .iter()
            .find(|(s, _, l)| off >= *s && off < s + l)
            .map(|(s, o, _)| off - s + o)
    }
}

/// Cuts sorted, non-overlapping `ranges` out of message `bytes`, fixes nlmsg_len and
/// ORs `add_flags` into nlmsg_flags.
pub fn strip_ranges(bytes: &[u8], ranges: &[std::ops::Range<usize>], add_flags: u16) -> Stripped {
    let mut out = Vec::with_capacity(bytes.len());
    let mut segments = Vec::new();
    let mut pos = 0;
    for r in ranges
        .iter()
        .chain(std::iter::once(&(bytes.len()..bytes.len())))
    {
        let start = r.start.min(bytes.len()).max(pos);
        if start > pos {
            segments.push((out.len(), pos, start - pos));
            out.extend_from_slice(&bytes[pos..start]);
        }
        pos = r.end.min(bytes.len()).max(pos);
    }
    if out.len() >= NLMSG_HDRLEN {
        let len = out.len() as u32;
        out[0..4].copy_from_slice(&len.to_ne_bytes());
        let flags = u16::from_ne_bytes([out[6], out[7]]) | add_flags;
        out[6..8].copy_from_slice(&flags.to_ne_bytes());
    }
    Stripped {
        bytes: out,
        segments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn msg(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let hdr = NlMsgHdr {
            len: (NLMSG_HDRLEN + payload.len()) as u32,
            ty,
            flags,
            seq,
            pid: 0,
        };
        let mut v = hdr.to_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn stream_of_messages_stops_like_the_kernel() {
        let mut buf = msg(RTM_GETLINK, NLM_F_REQUEST, 1, &[0; 3]); // unaligned: 19 bytes
        buf.resize(align4(buf.len()), 0);
        buf.extend(msg(RTM_GETLINK, NLM_F_REQUEST, 2, &[0; 16]));
        let good_end = buf.len();
        // A header claiming more than is left: the kernel stops silently.
        let mut bad = msg(RTM_GETLINK, NLM_F_REQUEST, 3, &[0; 16]);
        bad[0..4].copy_from_slice(&100u32.to_ne_bytes());
        buf.extend(bad);
        let mut it = messages(&buf);
        let seqs: Vec<u32> = it.by_ref().map(|m| m.hdr.seq).collect();
        assert_eq!(seqs, [1, 2]);
        assert_eq!(it.position(), good_end);
        // Length below a header.
        let mut tiny = msg(RTM_GETLINK, NLM_F_REQUEST, 3, &[]);
        tiny[0..4].copy_from_slice(&8u32.to_ne_bytes());
        assert_eq!(messages(&tiny).count(), 0);
        // Last message without its padding is still processed.
        let m = msg(RTM_GETLINK, NLM_F_REQUEST, 9, &[1]);
        assert_eq!(messages(&m).count(), 1);
        assert_eq!(messages(&[0u8; 15]).count(), 0);
    }

    #[test]
    fn attributes_and_nest_policy() {
        let mut nest = Vec::new();
        put_attr(&mut nest, IFLA_XDP_FD, &7i32.to_ne_bytes());
        put_attr(&mut nest, IFLA_XDP_FLAGS, &6u32.to_ne_bytes());
        put_attr(&mut nest, 99, &[1, 2, 3]); // unknown: ignored
        put_attr(&mut nest, IFLA_XDP_FD, &(-1i32).to_ne_bytes()); // last wins
        let n = parse_xdp_nest(&nest).unwrap();
        assert_eq!(n.fd, Some(-1));
        assert_eq!(n.flags, Some(6));
        // FD too short: ERANGE; too long: accepted (warned).
        let mut s = Vec::new();
        put_attr(&mut s, IFLA_XDP_FD, &[1, 2]);
        assert_eq!(parse_xdp_nest(&s), Err(libc::ERANGE));
        let mut l = Vec::new();
        put_attr(&mut l, IFLA_XDP_FD, &[5, 0, 0, 0, 9, 9, 9, 9]);
        assert_eq!(parse_xdp_nest(&l).unwrap().fd, Some(5));
        // EXPECTED_FD is strict.
        let mut e = Vec::new();
        put_attr(&mut e, IFLA_XDP_EXPECTED_FD, &[5, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(parse_xdp_nest(&e), Err(libc::EINVAL));
        let mut e = Vec::new();
        put_attr(&mut e, IFLA_XDP_EXPECTED_FD | NLA_F_NESTED, &[5, 0, 0, 0]);
        assert_eq!(parse_xdp_nest(&e), Err(libc::EINVAL));
        // NESTED flag on FD is not looked at.
        let mut f = Vec::new();
        put_attr(&mut f, IFLA_XDP_FD | NLA_F_NESTED, &3i32.to_ne_bytes());
        assert_eq!(parse_xdp_nest(&f).unwrap().fd, Some(3));
        // Trailing garbage is ignored.
        let mut t = Vec::new();
        put_attr(&mut t, IFLA_XDP_FD, &3i32.to_ne_bytes());
        t.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(parse_xdp_nest(&t).unwrap().fd, Some(3));
    }

    #[test]
    fn link_request_target_and_strip() {
        let mut p = IfInfoMsg {
            index: 0,
            ..Default::default()
        }
        .to_bytes()
        .to_vec();
        put_attr(&mut p, IFLA_IFNAME, b"veth0\0");
        let mut nest = Vec::new();
        put_attr(&mut nest, IFLA_XDP_FD, &3i32.to_ne_bytes());
        put_attr(&mut p, IFLA_XDP, &nest);
        put_attr(&mut p, 4 /* IFLA_MTU */, &1500u32.to_ne_bytes());
        let m = msg(RTM_SETLINK, NLM_F_REQUEST, 5, &p);
        let nl = messages(&m).next().unwrap();
        let r = parse_link_request(&nl).unwrap();
        assert_eq!(r.target, LinkTarget::Name(b"veth0".to_vec()));
        assert_eq!(r.xdp, Some(&nest[..]));
        let s = strip_ranges(&m, &r.xdp_ranges, NLM_F_ACK);
        assert_eq!(s.bytes.len(), m.len() - 12);
        let h = NlMsgHdr::parse(&s.bytes).unwrap();
        assert_eq!(h.len as usize, s.bytes.len());
        assert_eq!(h.flags, NLM_F_REQUEST | NLM_F_ACK);
        let mtu_off_stripped = s.bytes.len() - 8;
        assert_eq!(s.original_offset(mtu_off_stripped), Some(m.len() - 8));
        let again = messages(&s.bytes).next().unwrap();
        assert!(parse_link_request(&again).unwrap().xdp.is_none());
    }
}
