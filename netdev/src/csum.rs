//! CHECKSUM_PARTIAL carried across the data plane.
//!
//! A TCP/UDP packet a local socket sends through a device with TX checksum offload (a
//! veth, by default) leaves its checksum unfinished: the skb says CHECKSUM_PARTIAL
//! (`csum_start`, `csum_offset`) and the L4 checksum field holds only the folded
//! pseudo-header sum, not complemented (`__tcp_v4_send_check`, `udp4_hwcsum`,
//! `__tcp_v6_send_check`, `udp6_hwcsum_outgoing`). The kernel's XDP keeps that skb: the
//! program sees those bytes, XDP_PASS delivers them (the stack trusts a partial skb), and
//! XDP_TX/REDIRECT send them on with the state, so the next device or
//! `skb_checksum_help` finishes the sum. AF_XDP copies only the bytes, so a frame the
//! data plane hands back is a new packet whose checksum is wrong.
//!
//! So: [`detect`] recognises the state on the frame as received (before the program
//! runs, which sees the bytes untouched); after the program, for PASS, TX and REDIRECT,
//! [`finish`] completes the checksum so that the stack or the peer accepts what the
//! kernel would have delivered. Positions are kept relative to the frame's buffer, not
//! to `data`, because `csum_start` is relative to `skb->head` in the kernel: a program
//! that moves `data` (adjust_head, VLAN push/pop) does not move it.
//!
//! Recognition: the field equals the folded pseudo-header sum of the packet as it is
//! (addresses, protocol, L4 length), and the full checksum does not verify. A corrupt
//! packet that happens to hold exactly that value is completed where the kernel would
//! drop it (1 in 65,536 corruptions at most); every other frame is left as it is.

/// Where the unfinished checksum of a frame is, in the kernel's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partial {
    /// Offset of the L4 header (`csum_start`) from the start of the frame as received.
    pub start: usize,
    /// Offset of the checksum field inside the L4 header (`csum_offset`): TCP 16, UDP 6.
    pub offset: usize,
    /// UDP: a result of 0 is sent as 0xffff (RFC 768; 0 means "no checksum").
    pub udp: bool,
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

/// The 32-bit one's-complement accumulation of `b` (big-endian 16-bit words, an odd
/// last byte padded with zero) onto `acc`.
pub fn sum(mut acc: u64, b: &[u8]) -> u64 {
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes(c.try_into().unwrap_or_default());
        acc += (w >> 48) + ((w >> 32) & 0xffff) + ((w >> 16) & 0xffff) + (w & 0xffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = rest.remainder() {
        acc += (*last as u64) << 8;
    }
    acc
}

/// Folds a sum to 16 bits with end-around carries (not complemented).
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The one's-complement sum of the TCP/UDP pseudo-header of the IP header at `ip`
/// (IPv4 or IPv6 addresses, protocol, L4 length).
pub(crate) fn pseudo(frame: &[u8], ip: usize, v6: bool, proto: u8, l4len: usize) -> u64 {
    let addrs = if v6 {
        ip + 8..ip + 40
    } else {
        ip + 12..ip + 20
    };
    sum(0, &frame[addrs]) + proto as u64 + l4len as u64
}

/// The L3 header offset and ethertype after up to two VLAN tags.
pub(crate) fn l3(frame: &[u8]) -> Option<(usize, u16)> {
    let mut off = 12;
    let mut proto = be16(frame, off)?;
    for _ in 0..2 {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        off += 4;
        proto = be16(frame, off)?;
    }
    Some((off + 2, proto))
}

/// The L4 header offset, protocol and pseudo-header sum of a TCP/UDP packet over IPv4
/// or IPv6 (IPv6 extension headers hop-by-hop, routing, destination options skipped),
/// with the L4 length taken from the IP header as `skb->len` would give it.
fn l4(frame: &[u8]) -> Option<(usize, u8, u64)> {
    let (ip, ethertype) = l3(frame)?;
    match ethertype {
        ETH_P_IP => {
            let h = frame.get(ip..ip + 20)?;
            if h[0] >> 4 != 4 {
                return None;
            }
            let ihl = (h[0] & 0xf) as usize * 4;
            let total = be16(h, 2)? as usize;
            // A fragment is never CHECKSUM_PARTIAL (the sum covers the whole datagram).
            if ihl < 20 || total < ihl || be16(h, 6)? & 0x3fff != 0 {
                return None;
            }
            let proto = h[9];
            frame.get(ip..ip + total)?;
            Some((
                ip + ihl,
                proto,
                pseudo(frame, ip, false, proto, total - ihl),
            ))
        }
        ETH_P_IPV6 => {
            let h = frame.get(ip..ip + 40)?;
            if h[0] >> 4 != 6 {
                return None;
            }
            let payload = be16(h, 4)? as usize;
            let mut next = h[6];
            let mut off = ip + 40;
            let end = off + payload;
            frame.get(off..end)?;
            for _ in 0..4 {
                if !matches!(next, 0 | 43 | 60) {
                    break;
                }
                next = *frame.get(off)?;
                off += (*frame.get(off + 1)? as usize + 1) * 8;
            }
            if off > end {
                return None;
            }
            Some((off, next, pseudo(frame, ip, true, next, end - off)))
        }
        _ => None,
    }
}

/// The L4 extent `[start, end)` of the packet per its IP header.
fn l4_end(frame: &[u8], start: usize) -> Option<usize> {
    let (ip, ethertype) = l3(frame)?;
    let end = match ethertype {
        ETH_P_IP => ip + be16(frame, ip + 2)? as usize,
        ETH_P_IPV6 => ip + 40 + be16(frame, ip + 4)? as usize,
        _ => return None,
    };
    (start <= end && end <= frame.len()).then_some(end)
}

/// Whether `frame` (from the Ethernet header) carries an unfinished TCP/UDP checksum.
pub fn detect(frame: &[u8]) -> Option<Partial> {
    let (start, proto, pseudo) = l4(frame)?;
    let (offset, udp) = match proto {
        IPPROTO_TCP => (16, false),
        IPPROTO_UDP => (6, true),
        _ => return None,
    };
    let field = be16(frame, start + offset)?;
    let end = l4_end(frame, start)?;
    if end < start + offset + 2 {
        return None;
    }
    // IPv4 UDP without a checksum is complete as it is.
    if udp && field == 0 {
        return None;
    }
    // Cheap test first: most frames (from a wire, from a sender without offload) stop here.
    let seed = fold(pseudo);
    let same = field == seed || (field == 0xffff && seed == 0) || (field == 0 && seed == 0xffff);
    if !same {
        return None;
    }
    if fold(sum(pseudo, &frame[start..end])) == 0xffff {
        return None; // already verifies
    }
    Some(Partial { start, offset, udp })
}

/// Finishes the checksum of a packet `pkt` (from `data` to `data_end`, after the
/// program) whose L4 header is at `start`, recognised by [`detect`] before the program
/// ran. Where the packet still parses as the same TCP/UDP over IP with its L4 header at
/// `start`, the checksum is computed afresh: the kernel would deliver such a packet
/// whatever its field holds (the stack trusts a partial skb, and veth carries the state
/// to its peer), also after a NAT that updated the field incrementally as if it were a
/// complete checksum. Otherwise (an encapsulation pushed in front, say) it is
/// `skb_checksum_help`: the sum from `start` to the end with the field as the seed.
/// `false` when the field is no longer inside the packet (the program cut it short).
pub fn finish(pkt: &mut [u8], start: usize, p: &Partial) -> bool {
    let field = start + p.offset;
    if field + 2 > pkt.len() {
        return false;
    }
    let proto = if p.udp { IPPROTO_UDP } else { IPPROTO_TCP };
    let fresh = match l4(pkt) {
        Some((s, pr, pseudo)) if s == start && pr == proto => l4_end(pkt, s)
            .filter(|&e| e >= field + 2)
            .map(|e| (pseudo, e)),
        _ => None,
    };
    let mut c = match fresh {
        Some((pseudo, end)) => {
            pkt[field..field + 2].fill(0);
            !fold(sum(pseudo, &pkt[start..end]))
        }
        None => !fold(sum(0, &pkt[start..])),
    };
    if p.udp && c == 0 {
        c = 0xffff;
    }
    pkt[field..field + 2].copy_from_slice(&c.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet + IPv4/IPv6 + UDP/TCP frame with the L4 checksum in `mode`:
    /// 0 = complete, 1 = partial (pseudo-header sum), 2 = zero.
    fn frame(v6: bool, tcp: bool, vlan: bool, payload: &[u8], mode: u8) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        }
        let l4len = if tcp { 20 } else { 8 } + payload.len();
        let proto = if tcp { IPPROTO_TCP } else { IPPROTO_UDP };
        let ip = f.len() + 2;
        if v6 {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&(l4len as u16).to_be_bytes());
            f.extend_from_slice(&[proto, 64]);
            f.extend_from_slice(&[0xfd; 16]);
            f.extend_from_slice(&[0xfe; 16]);
        } else {
            f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
            f.extend_from_slice(&((20 + l4len) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
            let c = !fold(sum(0, &f[ip..ip + 20]));
            f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
        }
        let start = f.len();
        if tcp {
            f.extend_from_slice(&[0x12, 0x34, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18]);
            f.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        } else {
            f.extend_from_slice(&[0x12, 0x34, 0x00, 0x35]);
            f.extend_from_slice(&(l4len as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0]);
        }
        f.extend_from_slice(payload);
        let field = start + if tcp { 16 } else { 6 };
        let (_, _, pseudo) = l4(&f).unwrap();
        let v = match mode {
            0 => !fold(sum(pseudo, &f[start..])),
            1 => fold(pseudo),
            _ => 0,
        };
        f[field..field + 2].copy_from_slice(&v.to_be_bytes());
        f
    }

    fn verifies(f: &[u8]) -> bool {
        let (start, _, pseudo) = l4(f).unwrap();
        fold(sum(pseudo, &f[start..])) == 0xffff
    }

    #[test]
    fn partial_frames_are_found_and_completed() {
        for v6 in [false, true] {
            for tcp in [false, true] {
                for vlan in [false, true] {
                    for n in [0usize, 1, 7, 100, 1001] {
                        let payload: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
                        let good = frame(v6, tcp, vlan, &payload, 0);
                        assert!(verifies(&good));
                        assert_eq!(detect(&good), None, "complete frame v6={v6} tcp={tcp}");
                        let mut part = frame(v6, tcp, vlan, &payload, 1);
                        let p = detect(&part).expect("partial");
                        assert!(finish(&mut part, p.start, &p));
                        assert_eq!(part, good, "v6={v6} tcp={tcp} vlan={vlan} n={n}");
                    }
                }
            }
        }
    }

    #[test]
    fn other_frames_are_left_alone() {
        // IPv4 UDP without a checksum.
        assert_eq!(detect(&frame(false, false, false, b"abc", 2)), None);
        // A wrong checksum that is not the pseudo-header sum.
        let mut f = frame(false, true, false, b"hello", 0);
        let n = f.len();
        f[n - 1] ^= 0x55;
        assert_eq!(detect(&f), None);
        // Truncated, ARP, not IP.
        let p = frame(true, true, false, b"x", 1);
        assert_eq!(detect(&p[..p.len() - 1]), None);
        assert_eq!(detect(&[0u8; 10]), None);
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(detect(&arp), None);
    }

    #[test]
    fn finishing_after_a_nat_and_behind_an_encapsulation() {
        // A NAT of the source address with the update of RFC 1624 (which treats the field
        // as a complete checksum): the kernel delivers the partial skb anyway, and the
        // finished packet verifies.
        let mut f = frame(false, false, false, b"payload!", 1);
        let p = detect(&f).unwrap();
        let ip = 14;
        let old = [f[ip + 12], f[ip + 13], f[ip + 14], f[ip + 15]];
        let new = [192u8, 168, 9, 9];
        f[ip + 12..ip + 16].copy_from_slice(&new);
        let field = p.start + p.offset;
        let check = u16::from_be_bytes([f[field], f[field + 1]]);
        let s = sum(
            sum(
                !check as u64 & 0xffff,
                &[!old[0], !old[1], !old[2], !old[3]],
            ),
            &new,
        );
        f[field..field + 2].copy_from_slice(&(!fold(s)).to_be_bytes());
        assert!(finish(&mut f, p.start, &p));
        assert!(verifies(&f));

        // 20 bytes pushed in front (an outer header the parse does not take for the same
        // L4): the seed is completed where it is, as skb_checksum_help would.
        let inner = frame(true, true, false, b"inner data", 1);
        let good = frame(true, true, false, b"inner data", 0);
        let p = detect(&inner).unwrap();
        let mut outer = vec![0xaa; 20];
        outer.extend_from_slice(&inner);
        assert!(finish(&mut outer, p.start + 20, &p));
        assert_eq!(&outer[20..], &good[..]);
        // Cut short before the field.
        let mut short = inner[..p.start + 3].to_vec();
        assert!(!finish(&mut short, p.start, &p));
    }
}
