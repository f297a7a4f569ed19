//! Software segmentation of the TCP super-frames generic XDP hands over.
//!
//! With TSO/GSO on (a veth's default), the kernel runs a generic (SKB-mode) XDP program
//! on whole GSO packets of up to 64 KiB, and the data plane receives them from AF_XDP as
//! descriptor chains (`XDP_USE_SG`). The program sees the whole packet, as the kernel's
//! does. What it passes, sends or redirects must then leave as packets the next hop
//! takes: a live-frame test run takes at most a page, a device its MTU. So, as the
//! kernel's `skb_gso_segment` does for TCP (`tcp_gso_segment`): cut the payload into
//! MSS-sized pieces behind copies of the headers, with the IPv4 total length, id and
//! header checksum, the IPv6 payload length, the TCP sequence number and flags (FIN and
//! PSH on the last piece only, CWR on the first only) per piece, and full checksums
//! (the super-frame's own was left partial).

use crate::csum::{fold, l3, pseudo, sum};
use crate::tap::TcpGso;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;

/// Where the headers of a TCP packet over IPv4/IPv6 are (offsets from the frame's
/// start).
struct Tcp {
    ip: usize,
    iphl: usize,
    /// End of the IP packet.
    ip_end: usize,
    v6: bool,
    l4: usize,
    thl: usize,
}

/// The headers of `frame` if it is TCP over IPv4/IPv6 without IPv6 extension headers
/// (IPv4 options ride along in the header copy).
fn tcp_headers(frame: &[u8]) -> Option<Tcp> {
    let (ip, ethertype) = l3(frame)?;
    let (iphl, ip_end, v6) = match ethertype {
        ETH_P_IP => {
            let h = frame.get(ip..ip + 20)?;
            let ihl = (h[0] & 0xf) as usize * 4;
            if h[0] >> 4 != 4 || ihl < 20 || h[9] != IPPROTO_TCP {
                return None;
            }
            // Fragments are not GSO packets.
            if u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 {
                return None;
            }
            let total = u16::from_be_bytes([h[2], h[3]]) as usize;
            // A GSO packet's total length may read 0 past 64 KiB: trust the frame then.
            let end = if total == 0 { frame.len() } else { ip + total };
            (ihl, end, false)
        }
        ETH_P_IPV6 => {
            let h = frame.get(ip..ip + 40)?;
            if h[0] >> 4 != 6 || h[6] != IPPROTO_TCP {
                return None;
            }
            let plen = u16::from_be_bytes([h[4], h[5]]) as usize;
            let end = if plen == 0 {
                frame.len()
            } else {
                ip + 40 + plen
            };
            (40, end, true)
        }
        _ => return None,
    };
    if ip_end > frame.len() {
        return None;
    }
    let l4 = ip + iphl;
    let thl = (*frame.get(l4 + 12)? >> 4) as usize * 4;
    if thl < 20 || l4 + thl > ip_end {
        return None;
    }
    Some(Tcp {
        ip,
        iphl,
        ip_end,
        v6,
        l4,
        thl,
    })
}

impl Tcp {
    /// Payload bytes per segment on a device of `mtu` (the sender's MSS).
    fn mss(&self, mtu: usize) -> Option<usize> {
        mtu.checked_sub(self.iphl + self.thl).filter(|&m| m > 0)
    }
}

/// Prepares a TCP super-frame to be handed to the stack as one GSO packet of a device
/// of `mtu` ([`Reinject::send_gso`](crate::tap::Reinject::send_gso)): its checksum field
/// is set to the partial state (the folded pseudo-header sum, as `__tcp_v4_send_check`
/// leaves it), and what the kernel needs to know of it is returned. `None` when it is
/// not such a packet or its IP length field does not describe it (an IPv4 packet past
/// 64 KiB reads 0 there): the caller cuts it with [`tcp_segments`] instead.
pub fn as_gso_packet(frame: &mut [u8], mtu: usize) -> Option<TcpGso> {
    let t = tcp_headers(frame)?;
    let lenfield = if t.v6 { t.ip + 4 } else { t.ip + 2 };
    if u16::from_be_bytes([frame[lenfield], frame[lenfield + 1]]) == 0 || t.ip_end != frame.len() {
        return None;
    }
    let gso = TcpGso {
        v6: t.v6,
        ecn: frame[t.l4 + 13] & 0x80 != 0,
        csum_start: u16::try_from(t.l4).ok()?,
        hdr_len: u16::try_from(t.l4 + t.thl).ok()?,
        mss: u16::try_from(t.mss(mtu)?).ok()?,
    };
    // Only a packet that will go whole is changed.
    let seed = fold(pseudo(frame, t.ip, t.v6, IPPROTO_TCP, t.ip_end - t.l4));
    frame[t.l4 + 16..t.l4 + 18].copy_from_slice(&seed.to_be_bytes());
    Some(gso)
}

/// The segments of `frame` (from the Ethernet header) for a device of `mtu`, or `None`
/// when it is not TCP over IPv4/IPv6 without IPv6 extension headers (those are left
/// to the caller).
pub fn tcp_segments(frame: &[u8], mtu: usize) -> Option<Vec<Vec<u8>>> {
    let t = tcp_headers(frame)?;
    let mss = t.mss(mtu)?;
    let Tcp {
        ip,
        iphl,
        ip_end,
        v6,
        l4,
        thl,
    } = t;
    let hdr = &frame[..l4 + thl];
    let payload = &frame[l4 + thl..ip_end];
    let seq0 = u32::from_be_bytes(frame[l4 + 4..l4 + 8].try_into().ok()?);
    let flags0 = frame[l4 + 13];
    let id0 = u16::from_be_bytes([frame[ip + 4], frame[ip + 5]]);
    let chunks: Vec<&[u8]> = if payload.is_empty() {
        vec![&[][..]]
    } else {
        payload.chunks(mss).collect()
    };
    let last = chunks.len() - 1;
    let mut out = Vec::with_capacity(chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        let mut s = Vec::with_capacity(hdr.len() + chunk.len());
        s.extend_from_slice(hdr);
        s.extend_from_slice(chunk);
        if v6 {
            let plen = (thl + chunk.len()) as u16;
            s[ip + 4..ip + 6].copy_from_slice(&plen.to_be_bytes());
        } else {
            let total = (iphl + thl + chunk.len()) as u16;
            s[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
            s[ip + 4..ip + 6].copy_from_slice(&id0.wrapping_add(i as u16).to_be_bytes());
            s[ip + 10..ip + 12].fill(0);
            let c = !fold(sum(0, &s[ip..ip + iphl]));
            s[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
        }
        let seq = seq0.wrapping_add((i * mss) as u32);
        s[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
        let mut flags = flags0;
        if i != last {
            flags &= !(0x01 | 0x08); // FIN, PSH
        }
        if i != 0 {
            flags &= !0x80; // CWR
        }
        s[l4 + 13] = flags;
        let ph = pseudo(&s, ip, v6, IPPROTO_TCP, thl + chunk.len());
        s[l4 + 16..l4 + 18].fill(0);
        let c = !fold(sum(ph, &s[l4..]));
        s[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
        out.push(s);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_frame(v6: bool, payload: &[u8], flags: u8) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        let ip = 14;
        if v6 {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
            f.extend_from_slice(&[IPPROTO_TCP, 64]);
            f.extend_from_slice(&[0xfd; 16]);
            f.extend_from_slice(&[0xfe; 16]);
        } else {
            f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
            f.extend_from_slice(&((40 + payload.len()) as u16).to_be_bytes());
            f.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, IPPROTO_TCP, 0, 0]);
            f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        }
        let _ = ip;
        f.extend_from_slice(&[
            0x30, 0x39, 0x00, 0x50, 0, 0, 0x10, 0, 0, 0, 0, 7, 0x50, flags,
        ]);
        f.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    fn verifies(s: &[u8], v6: bool) -> bool {
        let ip = 14;
        let l4 = ip + if v6 { 40 } else { 20 };
        let ph = pseudo(s, ip, v6, IPPROTO_TCP, s.len() - l4);
        let ip_ok = v6 || fold(sum(0, &s[ip..ip + 20])) == 0xffff;
        ip_ok && fold(sum(ph, &s[l4..])) == 0xffff
    }

    #[test]
    fn a_gso_packet_is_described_as_the_kernel_would() {
        for v6 in [false, true] {
            let payload = vec![0xab; 20_000];
            let mut f = tcp_frame(v6, &payload, 0x80 | 0x10);
            let g = as_gso_packet(&mut f, 1500).unwrap();
            let l4 = 14 + if v6 { 40 } else { 20 };
            assert_eq!(
                g,
                TcpGso {
                    v6,
                    ecn: true,
                    csum_start: l4 as u16,
                    hdr_len: l4 as u16 + 20,
                    mss: 1500 - l4 as u16 + 14 - 20,
                }
            );
            // The partial state: the field holds the folded pseudo-header sum, so the
            // sum over the segment with it as the seed is the checksum.
            let seed = fold(pseudo(&f, 14, v6, IPPROTO_TCP, f.len() - l4));
            assert_eq!(u16::from_be_bytes([f[l4 + 16], f[l4 + 17]]), seed);
            let done = !fold(sum(0, &f[l4..]));
            let mut full = f.clone();
            full[l4 + 16..l4 + 18].copy_from_slice(&done.to_be_bytes());
            let ph = pseudo(&full, 14, v6, IPPROTO_TCP, full.len() - l4);
            assert_eq!(fold(sum(ph, &full[l4..])), 0xffff);
        }
        // An IPv4 length of 0 (past 64 KiB) or a frame longer than its IP packet: cut.
        let mut f = tcp_frame(false, &[1; 5000], 0x10);
        f[16..18].fill(0);
        assert_eq!(as_gso_packet(&mut f, 1500), None);
        let mut f = tcp_frame(false, &[1; 5000], 0x10);
        f.push(0);
        assert_eq!(as_gso_packet(&mut f, 1500), None);
        // Not TCP.
        let mut f = tcp_frame(false, &[1; 5000], 0x10);
        f[23] = 17;
        assert_eq!(as_gso_packet(&mut f, 1500), None);
    }

    #[test]
    fn segments_carry_the_stream() {
        for v6 in [false, true] {
            let payload: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
            // PSH|ACK|FIN|CWR on the super-frame.
            let f = tcp_frame(v6, &payload, 0x80 | 0x10 | 0x08 | 0x01);
            let segs = tcp_segments(&f, 1500).unwrap();
            let mss = 1500 - if v6 { 60 } else { 40 };
            assert_eq!(segs.len(), payload.len().div_ceil(mss));
            let mut joined = Vec::new();
            for (i, s) in segs.iter().enumerate() {
                assert!(s.len() <= 1514, "segment {i}: {}", s.len());
                assert!(verifies(s, v6), "v6={v6} segment {i}");
                let l4 = 14 + if v6 { 40 } else { 20 };
                let seq = u32::from_be_bytes(s[l4 + 4..l4 + 8].try_into().unwrap());
                assert_eq!(seq, 0x1000 + (i * mss) as u32);
                let fl = s[l4 + 13];
                assert_eq!(fl & 0x80 != 0, i == 0, "CWR only first");
                assert_eq!(fl & 0x09 != 0, i == segs.len() - 1, "FIN/PSH only last");
                joined.extend_from_slice(&s[l4 + 20..]);
            }
            assert_eq!(joined, payload);
        }
    }

    #[test]
    fn not_tcp_is_left_alone() {
        let mut f = tcp_frame(false, b"abc", 0x10);
        f[14 + 9] = 17; // UDP
        assert!(tcp_segments(&f, 1500).is_none());
        assert!(tcp_segments(&[0u8; 20], 1500).is_none());
    }
}
