//! Rewriting the kernel's link messages (RTM_GETLINK replies, single or dump parts, and
//! RTM_NEWLINK/RTM_DELLINK notifications) so the `IFLA_XDP` nest reports the emulated
//! attachment in the layout of `rtnl_xdp_fill` (net/core/rtnetlink.c):
//!
//! ```text
//! IFLA_XDP (no NLA_F_NESTED) {
//!     IFLA_XDP_SKB_PROG_ID u32   if a generic program
//!     IFLA_XDP_DRV_PROG_ID u32   if a native program
//!     IFLA_XDP_HW_PROG_ID  u32   if an offloaded program
//!     IFLA_XDP_ATTACHED    u8    NONE 0 / DRV 1 / SKB 2 / HW 3 / MULTI 4
//!     IFLA_XDP_PROG_ID     u32   the program, unless NONE or MULTI
//! }
//! ```
//!
//! For a device the lookup answers, the kernel's own nest is replaced entirely, so the
//! data plane's redirect stub (the kernel program bpftime attaches) never shows.

use super::msg::{
    align4, attrs, messages, put_attr, IfInfoMsg, NlMsgHdr, IFINFOMSG_LEN, IFLA_XDP,
    IFLA_XDP_ATTACHED, IFLA_XDP_DRV_PROG_ID, IFLA_XDP_HW_PROG_ID, IFLA_XDP_PROG_ID,
    IFLA_XDP_SKB_PROG_ID, NLMSG_HDRLEN, RTM_DELLINK, RTM_NEWLINK,
};
pub use super::xdp::XdpAttachInfo;

/// `XDP_ATTACHED_MULTI`.
pub const XDP_ATTACHED_MULTI: u8 = 4;

/// The whole IFLA_XDP attribute (header included) the kernel would emit for `info`.
pub fn encode_xdp_nest(info: &XdpAttachInfo) -> Vec<u8> {
    let mut inner = Vec::new();
    let mut mode = 0u8;
    let mut prog_id = 0u32;
    // rtnl_xdp_report_one, in the kernel's order: SKB, DRV, HW.
    for (id, attached, attr) in [
        (info.skb, 2u8, IFLA_XDP_SKB_PROG_ID),
        (info.drv, 1u8, IFLA_XDP_DRV_PROG_ID),
        (info.hw, 3u8, IFLA_XDP_HW_PROG_ID),
    ] {
        let Some(id) = id.filter(|&i| i != 0) else {
            continue;
        };
        put_attr(&mut inner, attr, &id.to_ne_bytes());
        mode = if mode == 0 {
            attached
        } else {
            XDP_ATTACHED_MULTI
        };
        prog_id = id;
    }
    put_attr(&mut inner, IFLA_XDP_ATTACHED, &[mode]);
    if prog_id != 0 && mode != XDP_ATTACHED_MULTI {
        put_attr(&mut inner, IFLA_XDP_PROG_ID, &prog_id.to_ne_bytes());
    }
    let mut out = Vec::new();
    put_attr(&mut out, IFLA_XDP, &inner);
    out
}

/// Reads the IFLA_XDP nest of a kernel link message back into per-mode program ids.
pub fn decode_xdp_nest(payload: &[u8]) -> XdpAttachInfo {
    let mut info = XdpAttachInfo::default();
    for a in attrs(payload) {
        match a.ty() {
            IFLA_XDP_SKB_PROG_ID => info.skb = a.u32(),
            IFLA_XDP_DRV_PROG_ID => info.drv = a.u32(),
            IFLA_XDP_HW_PROG_ID => info.hw = a.u32(),
            _ => {}
        }
    }
    // A single program is reported by ATTACHED + PROG_ID only on old kernels; current
    // ones always add the per-mode id, so nothing more to read.
    info
}

/// The IFLA_XDP payload of a link message (header included), if any.
pub fn find_xdp_nest(msg: &[u8]) -> Option<&[u8]> {
    let area = msg.get(NLMSG_HDRLEN + align4(IFINFOMSG_LEN)..)?;
    attrs(area)
        .filter(|a| a.ty() == IFLA_XDP)
        .last()
        .map(|a| a.payload)
}

fn rewrite_one(
    msg: &[u8],
    lookup: &mut dyn FnMut(u32) -> Option<XdpAttachInfo>,
) -> Option<Vec<u8>> {
    let hdr = NlMsgHdr::parse(msg)?;
    if !matches!(hdr.ty, RTM_NEWLINK | RTM_DELLINK) {
        return None;
    }
    let ifi = IfInfoMsg::parse(&msg[NLMSG_HDRLEN..])?;
    // Only rtnl_fill_ifinfo's messages (AF_UNSPEC) carry IFLA_XDP; AF_BRIDGE ones do not.
    if ifi.family != libc::AF_UNSPEC as u8 || ifi.index <= 0 {
        return None;
    }
    let info = lookup(ifi.index as u32)?;
    let area_off = NLMSG_HDRLEN + align4(IFINFOMSG_LEN);
    let area = msg.get(area_off..).unwrap_or(&[]);
    let nest = encode_xdp_nest(&info);
    let mut out = msg[..area_off.min(msg.len())].to_vec();
    out.resize(area_off, 0);
    let mut placed = false;
    let mut it = attrs(area);
    for a in it.by_ref() {
        if a.ty() == IFLA_XDP {
            if !placed {
                out.extend_from_slice(&nest);
                placed = true;
            }
        } else {
            let end = (a.offset + a.span).min(area.len());
            out.extend_from_slice(&area[a.offset..end]);
            out.resize(align4(out.len()), 0);
        }
    }
    if !placed {
        out.extend_from_slice(&nest);
    }
    let len = out.len() as u32;
    out[0..4].copy_from_slice(&len.to_ne_bytes());
    Some(out)
}

/// Rewrites every AF_UNSPEC RTM_NEWLINK/RTM_DELLINK message of a datagram whose device
/// `lookup` answers (`Some`: report exactly these programs, the kernel's nest dropped;
/// `None`: leave the message as the kernel made it). Other messages (NLMSG_DONE,
/// NLMSG_ERROR, other families) and bytes after the last whole message are copied
/// unchanged. Returns whether anything changed.
pub fn rewrite_getlink(
    buf: &mut Vec<u8>,
    lookup: &mut dyn FnMut(u32) -> Option<XdpAttachInfo>,
) -> bool {
    let mut out = Vec::with_capacity(buf.len() + 64);
    let mut changed = false;
    let mut last = 0;
    let mut it = messages(buf);
    for m in it.by_ref() {
        let end = (m.offset + align4(m.bytes.len())).min(buf.len());
        match rewrite_one(m.bytes, lookup) {
            Some(new) => {
                changed = true;
                out.extend_from_slice(&new);
            }
            None => out.extend_from_slice(&buf[m.offset..end]),
        }
        last = end;
    }
    if !changed {
        return false;
    }
    out.extend_from_slice(&buf[last..]);
    *buf = out;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::msg::{NLMSG_DONE, NLM_F_MULTI};

    fn link_msg(index: i32, xdp: Option<&XdpAttachInfo>, seq: u32) -> Vec<u8> {
        let mut p = IfInfoMsg {
            index,
            ..Default::default()
        }
        .to_bytes()
        .to_vec();
        put_attr(&mut p, 3, b"veth0\0");
        if let Some(x) = xdp {
            p.extend(encode_xdp_nest(x));
        }
        put_attr(&mut p, 4, &1500u32.to_ne_bytes());
        let hdr = NlMsgHdr {
            len: (16 + p.len()) as u32,
            ty: RTM_NEWLINK,
            flags: NLM_F_MULTI,
            seq,
            pid: 9,
        };
        let mut v = hdr.to_bytes().to_vec();
        v.extend(p);
        v
    }

    #[test]
    fn nest_layout() {
        let none = encode_xdp_nest(&XdpAttachInfo::default());
        assert_eq!(none, [12, 0, 43, 0, 5, 0, 2, 0, 0, 0, 0, 0]);
        let drv = encode_xdp_nest(&XdpAttachInfo {
            drv: Some(7),
            ..Default::default()
        });
        let inner: Vec<(u16, Vec<u8>)> = attrs(&drv[4..])
            .map(|a| (a.ty(), a.payload.to_vec()))
            .collect();
        assert_eq!(
            inner,
            vec![
                (IFLA_XDP_DRV_PROG_ID, 7u32.to_ne_bytes().to_vec()),
                (IFLA_XDP_ATTACHED, vec![1]),
                (IFLA_XDP_PROG_ID, 7u32.to_ne_bytes().to_vec())
            ]
        );
        let multi = encode_xdp_nest(&XdpAttachInfo {
            skb: Some(1),
            hw: Some(2),
            drv: None,
        });
        let types: Vec<u16> = attrs(&multi[4..]).map(|a| a.ty()).collect();
        assert_eq!(
            types,
            [IFLA_XDP_SKB_PROG_ID, IFLA_XDP_HW_PROG_ID, IFLA_XDP_ATTACHED]
        );
        assert_eq!(
            decode_xdp_nest(&multi[4..]),
            XdpAttachInfo {
                skb: Some(1),
                hw: Some(2),
                drv: None
            }
        );
    }

    #[test]
    fn rewrite_dump() {
        let ours = XdpAttachInfo {
            skb: Some(42),
            ..Default::default()
        };
        let stub = XdpAttachInfo {
            drv: Some(5),
            ..Default::default()
        };
        let mut buf = link_msg(1, Some(&XdpAttachInfo::default()), 1);
        buf.extend(link_msg(2, Some(&stub), 1));
        buf.extend(link_msg(3, None, 1));
        let done = NlMsgHdr {
            len: 20,
            ty: NLMSG_DONE,
            flags: NLM_F_MULTI,
            seq: 1,
            pid: 9,
        };
        buf.extend(done.to_bytes());
        buf.extend([0u8; 4]);
        let orig = buf.clone();
        let mut lookup = |i: u32| (i == 2 || i == 3).then_some(ours);
        assert!(rewrite_getlink(&mut buf, &mut lookup));
        let msgs: Vec<Vec<u8>> = messages(&buf).map(|m| m.bytes.to_vec()).collect();
        assert_eq!(msgs.len(), 4);
        assert_eq!(msgs[0], link_msg(1, Some(&XdpAttachInfo::default()), 1));
        assert_eq!(msgs[1], link_msg(2, Some(&ours), 1));
        // No nest in the kernel's message: ours is appended at the end.
        let m3 = &msgs[2];
        assert_eq!(decode_xdp_nest(find_xdp_nest(m3).unwrap()), ours);
        assert_eq!(NlMsgHdr::parse(m3).unwrap().len as usize, m3.len());
        assert_eq!(&buf[buf.len() - 20..], &orig[orig.len() - 20..]);
        // Nothing to change: untouched.
        let mut b2 = orig.clone();
        assert!(!rewrite_getlink(&mut b2, &mut |_| None));
        assert_eq!(b2, orig);
    }

    #[test]
    fn other_messages_untouched() {
        let ours = XdpAttachInfo {
            drv: Some(3),
            ..Default::default()
        };
        // RTM_NEWADDR (20) for ifindex 2, and an AF_BRIDGE (7) RTM_NEWLINK.
        let mut addr = link_msg(2, None, 1);
        addr[4..6].copy_from_slice(&20u16.to_ne_bytes());
        let mut bridge = link_msg(2, None, 1);
        bridge[16] = 7;
        for m in [addr, bridge] {
            let mut b = m.clone();
            assert!(!rewrite_getlink(&mut b, &mut |_| Some(ours)));
            assert_eq!(b, m);
        }
    }

    #[test]
    fn rewrite_garbage_never_panics() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..3000 {
            let mut buf = link_msg(2, Some(&XdpAttachInfo::default()), 3);
            let n = buf.len();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let pos = (seed as usize) % n;
                buf[pos] = (seed >> 32) as u8;
            }
            buf.truncate((seed >> 40) as usize % (n + 1));
            let mut b = buf.clone();
            rewrite_getlink(&mut b, &mut |_| {
                Some(XdpAttachInfo {
                    drv: Some(1),
                    ..Default::default()
                })
            });
            for m in messages(&b) {
                assert_eq!(m.hdr.len as usize, m.bytes.len());
            }
        }
    }
}
