//! Test packets: a small builder (Ethernet, VLAN/QinQ, IPv4 with a correct checksum, IPv6
//! with extension headers, TCP, UDP, ICMP, ICMPv6, payload; and the broken kinds: bad
//! lengths, truncated headers, bogus IHL or data offset), an independent parser that states
//! the corpus' parsing rules in Rust, and the fixed packet set every corpus program runs on.

/// Source MAC of built packets.
pub const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Destination MAC of built packets.
pub const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// The kernel's BPF_PROG_TEST_RUN refuses XDP data shorter than this (EINVAL).
pub const MIN_TEST_RUN_LEN: usize = 14;

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_GRE: u8 = 47;
pub const IPPROTO_ICMPV6: u8 = 58;

/// TCP flag bits.
pub mod tcp {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

#[derive(Debug, Clone)]
enum L3 {
    None,
    V4 { src: [u8; 4], dst: [u8; 4] },
    V6 { src: [u8; 16], dst: [u8; 16] },
}

#[derive(Debug, Clone)]
enum L4 {
    None,
    Tcp { sport: u16, dport: u16, flags: u8 },
    Udp { sport: u16, dport: u16 },
    Icmp { typ: u8, code: u8, rest: [u8; 4] },
    Icmpv6 { typ: u8, code: u8, rest: [u8; 4] },
}

/// A packet under construction. `build()` computes lengths and checksums unless overridden.
#[derive(Debug, Clone)]
pub struct Builder {
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    vlans: Vec<(u16, u16)>,
    ethertype: Option<u16>,
    l3: L3,
    l4: L4,
    payload: Vec<u8>,
    ttl: u8,
    ip_id: u16,
    frag: u16,
    ip_options: Vec<u8>,
    ihl: Option<u8>,
    tot_len: Option<u16>,
    proto: Option<u8>,
    ext: Vec<(u8, Vec<u8>)>,
    tcp_options: Vec<u8>,
    doff: Option<u8>,
    truncate: Option<usize>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            dst_mac: DST_MAC,
            src_mac: SRC_MAC,
            vlans: Vec::new(),
            ethertype: None,
            l3: L3::None,
            l4: L4::None,
            payload: Vec::new(),
            ttl: 64,
            ip_id: 0x1234,
            frag: 0,
            ip_options: Vec::new(),
            ihl: None,
            tot_len: None,
            proto: None,
            ext: Vec::new(),
            tcp_options: Vec::new(),
            doff: None,
            truncate: None,
        }
    }
}

impl Builder {
    /// A bare Ethernet frame with `ethertype` (add a payload).
    pub fn eth(ethertype: u16) -> Self {
        Builder {
            ethertype: Some(ethertype),
            ..Default::default()
        }
    }
    /// Ethernet + IPv4.
    pub fn ipv4(src: [u8; 4], dst: [u8; 4]) -> Self {
        Builder {
            l3: L3::V4 { src, dst },
            ..Default::default()
        }
    }
    /// Ethernet + IPv6.
    pub fn ipv6(src: [u8; 16], dst: [u8; 16]) -> Self {
        Builder {
            l3: L3::V6 { src, dst },
            ttl: 64,
            ..Default::default()
        }
    }
    /// MAC addresses.
    pub fn macs(mut self, src: [u8; 6], dst: [u8; 6]) -> Self {
        self.src_mac = src;
        self.dst_mac = dst;
        self
    }
    /// Adds an 802.1Q tag (outermost first when called repeatedly).
    pub fn vlan(mut self, vid: u16) -> Self {
        self.vlans.push((ETH_P_8021Q, vid));
        self
    }
    /// Adds an 802.1ad (QinQ service) tag.
    pub fn svlan(mut self, vid: u16) -> Self {
        self.vlans.push((ETH_P_8021AD, vid));
        self
    }
    /// Overrides the EtherType after the tags.
    pub fn ethertype(mut self, t: u16) -> Self {
        self.ethertype = Some(t);
        self
    }
    pub fn tcp(mut self, sport: u16, dport: u16, flags: u8) -> Self {
        self.l4 = L4::Tcp {
            sport,
            dport,
            flags,
        };
        self
    }
    pub fn udp(mut self, sport: u16, dport: u16) -> Self {
        self.l4 = L4::Udp { sport, dport };
        self
    }
    /// ICMP (v4) with type/code and the 4 "rest of header" bytes.
    pub fn icmp(mut self, typ: u8, code: u8, rest: [u8; 4]) -> Self {
        self.l4 = L4::Icmp { typ, code, rest };
        self
    }
    /// ICMP echo request (type 8).
    pub fn icmp_echo(self, id: u16, seq: u16) -> Self {
        let mut r = [0; 4];
        r[..2].copy_from_slice(&id.to_be_bytes());
        r[2..].copy_from_slice(&seq.to_be_bytes());
        self.icmp(8, 0, r)
    }
    /// ICMPv6 with type/code and the 4 "rest of header" bytes.
    pub fn icmpv6(mut self, typ: u8, code: u8, rest: [u8; 4]) -> Self {
        self.l4 = L4::Icmpv6 { typ, code, rest };
        self
    }
    /// ICMPv6 echo request (type 128).
    pub fn icmpv6_echo(self, id: u16, seq: u16) -> Self {
        let mut r = [0; 4];
        r[..2].copy_from_slice(&id.to_be_bytes());
        r[2..].copy_from_slice(&seq.to_be_bytes());
        self.icmpv6(128, 0, r)
    }
    /// Overrides the IP protocol / next header (for a raw L4 like GRE use with `payload`).
    pub fn proto(mut self, p: u8) -> Self {
        self.proto = Some(p);
        self
    }
    pub fn payload(mut self, p: impl Into<Vec<u8>>) -> Self {
        self.payload = p.into();
        self
    }
    /// IPv4 TTL / IPv6 hop limit.
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }
    /// IPv4 flags + fragment offset field (host order, e.g. 0x2000 = MF).
    pub fn frag(mut self, f: u16) -> Self {
        self.frag = f;
        self
    }
    /// IPv4 options (padded to 4 bytes by the caller).
    pub fn ip_options(mut self, o: impl Into<Vec<u8>>) -> Self {
        self.ip_options = o.into();
        self
    }
    /// Forces the IPv4 IHL field (bogus values allowed).
    pub fn ihl(mut self, ihl: u8) -> Self {
        self.ihl = Some(ihl);
        self
    }
    /// Forces the IPv4 total length (bad lengths).
    pub fn tot_len(mut self, l: u16) -> Self {
        self.tot_len = Some(l);
        self
    }
    /// Adds an IPv6 extension header of type `nh` (0 hop-by-hop, 43 routing, 60 dest opts,
    /// 44 fragment) with `body` (after next-header and length; padded by the caller).
    pub fn ipv6_ext(mut self, nh: u8, body: impl Into<Vec<u8>>) -> Self {
        self.ext.push((nh, body.into()));
        self
    }
    /// TCP options (padded to 4 bytes by the caller).
    pub fn tcp_options(mut self, o: impl Into<Vec<u8>>) -> Self {
        self.tcp_options = o.into();
        self
    }
    /// Forces the TCP data offset (bogus values allowed).
    pub fn doff(mut self, d: u8) -> Self {
        self.doff = Some(d);
        self
    }
    /// Cuts the finished frame to `len` bytes (truncated headers).
    pub fn truncate(mut self, len: usize) -> Self {
        self.truncate = Some(len);
        self
    }

    fn l4_bytes(&self) -> (u8, Vec<u8>) {
        let mut v = Vec::new();
        let proto = match self.l4 {
            L4::None => 0,
            L4::Tcp {
                sport,
                dport,
                flags,
            } => {
                v.extend_from_slice(&sport.to_be_bytes());
                v.extend_from_slice(&dport.to_be_bytes());
                v.extend_from_slice(&0x0102_0304u32.to_be_bytes()); // seq
                v.extend_from_slice(
                    &(if flags & tcp::ACK != 0 {
                        0x0a0b_0c0du32
                    } else {
                        0
                    })
                    .to_be_bytes(),
                );
                let doff = self.doff.unwrap_or(5 + (self.tcp_options.len() / 4) as u8);
                v.push(doff << 4);
                v.push(flags);
                v.extend_from_slice(&64240u16.to_be_bytes()); // window
                v.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
                v.extend_from_slice(&self.tcp_options);
                IPPROTO_TCP
            }
            L4::Udp { sport, dport } => {
                v.extend_from_slice(&sport.to_be_bytes());
                v.extend_from_slice(&dport.to_be_bytes());
                v.extend_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
                v.extend_from_slice(&[0, 0]);
                IPPROTO_UDP
            }
            L4::Icmp { typ, code, rest } => {
                v.extend_from_slice(&[typ, code, 0, 0]);
                v.extend_from_slice(&rest);
                IPPROTO_ICMP
            }
            L4::Icmpv6 { typ, code, rest } => {
                v.extend_from_slice(&[typ, code, 0, 0]);
                v.extend_from_slice(&rest);
                IPPROTO_ICMPV6
            }
        };
        v.extend_from_slice(&self.payload);
        (self.proto.unwrap_or(proto), v)
    }

    /// The frame's bytes.
    pub fn build(&self) -> Vec<u8> {
        let (proto, mut l4) = self.l4_bytes();
        let mut f = Vec::new();
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        for (tpid, vid) in &self.vlans {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&vid.to_be_bytes());
        }
        let ethertype = self.ethertype.unwrap_or(match self.l3 {
            L3::None => 0x88b5,
            L3::V4 { .. } => ETH_P_IP,
            L3::V6 { .. } => ETH_P_IPV6,
        });
        f.extend_from_slice(&ethertype.to_be_bytes());
        match self.l3 {
            L3::None => f.extend_from_slice(&l4),
            L3::V4 { src, dst } => {
                let hlen = 20 + self.ip_options.len();
                let mut h = Vec::with_capacity(hlen);
                h.push(0x40 | self.ihl.unwrap_or((hlen / 4) as u8));
                h.push(0);
                h.extend_from_slice(
                    &self
                        .tot_len
                        .unwrap_or((hlen + l4.len()) as u16)
                        .to_be_bytes(),
                );
                h.extend_from_slice(&self.ip_id.to_be_bytes());
                h.extend_from_slice(&self.frag.to_be_bytes());
                h.push(self.ttl);
                h.push(proto);
                h.extend_from_slice(&[0, 0]);
                h.extend_from_slice(&src);
                h.extend_from_slice(&dst);
                h.extend_from_slice(&self.ip_options);
                let c = checksum(&h, 0);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                let ps = pseudo_v4(&src, &dst, proto, l4.len());
                fill_l4_checksum(proto, &mut l4, &ps);
                f.extend_from_slice(&h);
                f.extend_from_slice(&l4);
            }
            L3::V6 { src, dst } => {
                let mut exts = Vec::new();
                let mut first_nh = proto;
                for (i, (nh, body)) in self.ext.iter().enumerate().rev() {
                    let next = if i + 1 < self.ext.len() {
                        self.ext[i + 1].0
                    } else {
                        proto
                    };
                    let mut e = vec![next, ((body.len() + 2) / 8).saturating_sub(1) as u8];
                    if *nh == 44 {
                        e[1] = 0;
                    }
                    e.extend_from_slice(body);
                    exts.splice(0..0, e);
                    first_nh = *nh;
                }
                let ps = pseudo_v6(&src, &dst, proto, l4.len());
                fill_l4_checksum(proto, &mut l4, &ps);
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&((exts.len() + l4.len()) as u16).to_be_bytes());
                f.push(first_nh);
                f.push(self.ttl);
                f.extend_from_slice(&src);
                f.extend_from_slice(&dst);
                f.extend_from_slice(&exts);
                f.extend_from_slice(&l4);
            }
        }
        if let Some(n) = self.truncate {
            f.truncate(n);
        }
        f
    }
}

fn pseudo_v4(src: &[u8; 4], dst: &[u8; 4], proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(src);
    p.extend_from_slice(dst);
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

fn pseudo_v6(src: &[u8; 16], dst: &[u8; 16], proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(40);
    p.extend_from_slice(src);
    p.extend_from_slice(dst);
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, proto]);
    p
}

fn fill_l4_checksum(proto: u8, l4: &mut [u8], pseudo: &[u8]) {
    let (off, with_pseudo) = match proto {
        IPPROTO_TCP => (16, true),
        IPPROTO_UDP => (6, true),
        IPPROTO_ICMP => (2, false),
        IPPROTO_ICMPV6 => (2, true),
        _ => return,
    };
    if l4.len() < off + 2 {
        return;
    }
    let init = if with_pseudo { sum16(pseudo, 0) } else { 0 };
    let mut c = checksum(l4, init);
    if proto == IPPROTO_UDP && c == 0 {
        c = 0xffff;
    }
    l4[off..off + 2].copy_from_slice(&c.to_be_bytes());
}

/// One's-complement sum of `data` (big-endian 16-bit words, odd byte padded) added to `init`.
pub fn sum16(data: &[u8], init: u32) -> u32 {
    let mut s = init as u64;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        s += w as u64;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u32
}

/// The Internet checksum of `data` with `init` (a [`sum16`] of a pseudo header) folded in.
pub fn checksum(data: &[u8], init: u32) -> u16 {
    !(sum16(data, init) as u16)
}

/// The IPv4/IPv6 pseudo-header sum for an L4 checksum over `l4_len` bytes.
pub fn pseudo_sum(frame: &[u8], p: &Parsed, l4_len: usize) -> u32 {
    let l3 = &frame[p.l3_off..];
    match p.eth_proto {
        ETH_P_IP => sum16(
            &pseudo_v4(
                &l3[12..16].try_into().unwrap(),
                &l3[16..20].try_into().unwrap(),
                p.l4_proto,
                l4_len,
            ),
            0,
        ),
        _ => sum16(
            &pseudo_v6(
                &l3[8..24].try_into().unwrap(),
                &l3[24..40].try_into().unwrap(),
                p.l4_proto,
                l4_len,
            ),
            0,
        ),
    }
}

/// Packet classes (the corpus' `enum pkt_class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    NonIp = 0,
    Ipv4 = 1,
    Ipv6 = 2,
    Tcp = 3,
    Udp = 4,
    Icmp = 5,
    Icmpv6 = 6,
    Vlan = 7,
    Malformed = 8,
    OtherL4 = 9,
}

/// What the corpus' `parse_pkt` finds in a frame (tests/progs/common.h), stated independently.
/// Fields keep the value they had when parsing stopped, as in the C struct.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub len: usize,
    pub eth_proto: u16,
    pub vlan_id: u16,
    pub vlans: u8,
    pub l4_proto: u8,
    pub malformed: bool,
    pub l3_off: usize,
    pub l4_off: usize,
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub icmp_type: u8,
}

impl Parsed {
    /// The class, as `pkt_class()`.
    pub fn class(&self) -> Class {
        if self.malformed {
            return Class::Malformed;
        }
        match self.l4_proto {
            IPPROTO_TCP => return Class::Tcp,
            IPPROTO_UDP => return Class::Udp,
            IPPROTO_ICMP => {
                return if self.eth_proto == ETH_P_IP {
                    Class::Icmp
                } else {
                    Class::OtherL4
                }
            }
            IPPROTO_ICMPV6 => {
                return if self.eth_proto == ETH_P_IPV6 {
                    Class::Icmpv6
                } else {
                    Class::OtherL4
                }
            }
            _ => {}
        }
        if self.eth_proto == ETH_P_IP || self.eth_proto == ETH_P_IPV6 {
            Class::OtherL4
        } else {
            Class::NonIp
        }
    }
}

fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

/// Parses `f` with the corpus' rules (see tests/progs/common.h).
pub fn parse(f: &[u8]) -> Parsed {
    let mut p = Parsed {
        len: f.len(),
        ..Default::default()
    };
    let bad = |p: &mut Parsed| {
        p.malformed = true;
    };
    if f.len() < 14 {
        bad(&mut p);
        return p;
    }
    let mut proto = be16(f, 12);
    let mut off = 14;
    for _ in 0..2 {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        if off + 4 > f.len() {
            bad(&mut p);
            return p;
        }
        if p.vlans == 0 {
            p.vlan_id = be16(f, off) & 0xfff;
        }
        p.vlans += 1;
        proto = be16(f, off + 2);
        off += 4;
    }
    p.eth_proto = proto;
    p.l3_off = off;
    match proto {
        ETH_P_IP => {
            if off + 20 > f.len() {
                bad(&mut p);
                return p;
            }
            let ihl = (f[off] & 0xf) as usize;
            if ihl < 5 || off + ihl * 4 > f.len() {
                bad(&mut p);
                return p;
            }
            p.l4_proto = f[off + 9];
            p.saddr.copy_from_slice(&f[off + 12..off + 16]);
            p.daddr.copy_from_slice(&f[off + 16..off + 20]);
            off += ihl * 4;
        }
        ETH_P_IPV6 => {
            if off + 40 > f.len() {
                bad(&mut p);
                return p;
            }
            let mut nh = f[off + 6];
            off += 40;
            for _ in 0..4 {
                if !matches!(nh, 0 | 43 | 60 | 44) {
                    break;
                }
                if off + 2 > f.len() {
                    bad(&mut p);
                    return p;
                }
                let len = if nh == 44 {
                    8
                } else {
                    (f[off + 1] as usize + 1) * 8
                };
                nh = f[off];
                off += len;
            }
            p.l4_proto = nh;
        }
        _ => return p,
    }
    p.l4_off = off;
    let need = |n: usize| off + n <= f.len();
    match p.l4_proto {
        IPPROTO_TCP => {
            if !need(20) {
                bad(&mut p);
                return p;
            }
            p.sport = be16(f, off);
            p.dport = be16(f, off + 2);
            p.tcp_flags = f[off + 13];
            let doff = (f[off + 12] >> 4) as usize;
            if doff < 5 || !need(doff * 4) {
                bad(&mut p);
            }
        }
        IPPROTO_UDP => {
            if !need(8) {
                bad(&mut p);
                return p;
            }
            p.sport = be16(f, off);
            p.dport = be16(f, off + 2);
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            if !need(8) {
                bad(&mut p);
                return p;
            }
            p.icmp_type = f[off];
        }
        _ => {}
    }
    p
}

/// The name of the fixed set's runt frame (shorter than [`MIN_TEST_RUN_LEN`]: the kernel's
/// test run answers EINVAL; compare errnos, not verdicts).
pub const RUNT: &str = "runt_10_bytes_einval";

/// The payload with 0xAA every 10th byte (so `payload_scan` finds more than 8 of them).
fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| if i % 10 == 0 { 0xAA } else { (i * 7) as u8 })
        .collect()
}

fn v6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0x20;
    a[1] = 0x01;
    a[2] = 0x0d;
    a[3] = 0xb8;
    a[15] = last;
    a
}

/// The fixed set of packets every corpus program is run on, in a fixed order. One frame
/// ([`RUNT`]) is shorter than 14 bytes: the kernel refuses it with EINVAL.
pub fn fixed_set() -> Vec<(&'static str, Vec<u8>)> {
    let a = [10, 1, 2, 3];
    let b = [10, 9, 8, 7];
    let tcp_opts = [2, 4, 5, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7]; // MSS, NOP, NOP, SACK ok, NOP, WS
    vec![
        (
            "ipv4_tcp_syn",
            Builder::ipv4(a, b).tcp(40000, 80, tcp::SYN).build(),
        ),
        (
            "ipv4_tcp_ack_payload",
            Builder::ipv4(a, b)
                .tcp(40000, 443, tcp::ACK | tcp::PSH)
                .payload(pattern(32))
                .build(),
        ),
        (
            "ipv4_tcp_rst",
            Builder::ipv4([10, 2, 0, 1], b)
                .tcp(40001, 22, tcp::RST | tcp::ACK)
                .build(),
        ),
        (
            "ipv4_tcp_fin_opts",
            Builder::ipv4(a, b)
                .tcp(40002, 8080, tcp::FIN | tcp::ACK)
                .tcp_options(tcp_opts)
                .build(),
        ),
        (
            "ipv4_tcp_bad_doff",
            Builder::ipv4(a, b).tcp(40003, 80, tcp::SYN).doff(3).build(),
        ),
        (
            "ipv4_tcp_doff_past_end",
            Builder::ipv4(a, b)
                .tcp(40003, 80, tcp::SYN)
                .doff(15)
                .build(),
        ),
        (
            "ipv4_udp_dns",
            Builder::ipv4(a, b)
                .udp(5353, 53)
                .payload(&b"\x12\x34\x01\x00\x00\x01"[..])
                .build(),
        ),
        (
            "ipv4_udp_dns_2",
            Builder::ipv4([192, 168, 1, 5], b)
                .udp(5354, 53)
                .payload(vec![0; 21])
                .build(),
        ),
        (
            "ipv4_udp_dns_3",
            Builder::ipv4([172, 20, 0, 1], b)
                .udp(5355, 53)
                .payload(vec![1; 12])
                .build(),
        ),
        (
            "ipv4_udp_redirect_7777",
            Builder::ipv4(a, b)
                .udp(1000, 7777)
                .payload(pattern(10))
                .build(),
        ),
        (
            "ipv4_udp_redirect_flags_7778",
            Builder::ipv4(a, b).udp(1000, 7778).build(),
        ),
        (
            "ipv4_udp_big",
            Builder::ipv4([10, 1, 200, 1], b)
                .udp(4000, 4001)
                .payload(pattern(1000))
                .build(),
        ),
        (
            "ipv4_icmp_echo",
            Builder::ipv4(a, b)
                .icmp_echo(0x4242, 1)
                .payload(pattern(56))
                .build(),
        ),
        (
            "ipv4_icmp_unreach",
            Builder::ipv4(b, a)
                .icmp(3, 3, [0; 4])
                .payload(vec![0x45; 28])
                .build(),
        ),
        (
            "ipv4_ttl1_udp",
            Builder::ipv4(a, b)
                .ttl(1)
                .udp(33434, 33435)
                .payload(vec![0; 12])
                .build(),
        ),
        (
            "ipv4_options_ihl6",
            Builder::ipv4(a, b)
                .ip_options([0x94, 4, 0, 0])
                .udp(1234, 53)
                .payload(vec![7; 9])
                .build(),
        ),
        (
            "ipv4_bogus_ihl3",
            Builder::ipv4(a, b).ihl(3).udp(1, 2).build(),
        ),
        (
            "ipv4_ihl15_past_end",
            Builder::ipv4(a, b).ihl(15).udp(1, 2).build(),
        ),
        (
            "ipv4_truncated_header",
            Builder::ipv4(a, b).udp(1, 2).truncate(14 + 10).build(),
        ),
        (
            "ipv4_udp_truncated",
            Builder::ipv4(a, b).udp(1, 2).truncate(14 + 20 + 5).build(),
        ),
        (
            "ipv4_bad_tot_len",
            Builder::ipv4([192, 168, 7, 7], b)
                .tot_len(1500)
                .udp(9, 53)
                .payload(vec![3; 5])
                .build(),
        ),
        (
            "ipv4_gre",
            Builder::ipv4([172, 16, 5, 5], b)
                .proto(IPPROTO_GRE)
                .payload(vec![0, 0, 0x08, 0x00])
                .build(),
        ),
        (
            "ipv4_frag_mf",
            Builder::ipv4(a, b)
                .frag(0x2000)
                .udp(7, 9)
                .payload(pattern(40))
                .build(),
        ),
        (
            "ipv6_tcp_syn",
            Builder::ipv6(v6(1), v6(2))
                .tcp(50000, 443, tcp::SYN)
                .build(),
        ),
        (
            "ipv6_udp",
            Builder::ipv6(v6(1), v6(2))
                .udp(50001, 4789)
                .payload(pattern(64))
                .build(),
        ),
        (
            "ipv6_icmpv6_echo",
            Builder::ipv6(v6(3), v6(4))
                .icmpv6_echo(7, 9)
                .payload(pattern(33))
                .build(),
        ),
        (
            "ipv6_hopopts_dstopts_udp",
            Builder::ipv6(v6(1), v6(2))
                .ipv6_ext(0, [1, 4, 0, 0, 0, 0])
                .ipv6_ext(60, [1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
                .udp(1, 53)
                .payload(vec![9; 4])
                .build(),
        ),
        (
            "ipv6_frag_tcp",
            Builder::ipv6(v6(5), v6(6))
                .ipv6_ext(44, [0, 1, 0, 0, 0, 42])
                .tcp(1, 2, tcp::ACK)
                .build(),
        ),
        (
            "ipv6_truncated",
            Builder::ipv6(v6(1), v6(2))
                .udp(1, 2)
                .truncate(14 + 30)
                .build(),
        ),
        (
            "vlan100_ipv4_udp",
            Builder::ipv4(a, b)
                .vlan(100)
                .udp(3000, 4000)
                .payload(pattern(20))
                .build(),
        ),
        (
            "vlan200_ipv6_tcp",
            Builder::ipv6(v6(1), v6(2))
                .vlan(200)
                .tcp(1, 80, tcp::ACK)
                .payload(pattern(8))
                .build(),
        ),
        (
            "qinq300_100_ipv4_tcp",
            Builder::ipv4(a, b)
                .svlan(300)
                .vlan(100)
                .tcp(5, 6, tcp::SYN | tcp::ACK)
                .build(),
        ),
        (
            "vlan_truncated_tag",
            Builder::eth(ETH_P_8021Q).payload([0, 100]).build(),
        ),
        (
            "arp_request",
            Builder::eth(ETH_P_ARP)
                .payload(vec![
                    0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 10, 9,
                    8, 7,
                ])
                .build(),
        ),
        ("eth_only_88b5", Builder::eth(0x88b5).build()),
        (
            "eth_88b5_payload",
            Builder::eth(0x88b5).payload(pattern(50)).build(),
        ),
        (RUNT, vec![0xff; 10]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum_verifies() {
        let f = Builder::ipv4([10, 0, 0, 1], [10, 0, 0, 2])
            .udp(1, 2)
            .payload(vec![1, 2, 3])
            .build();
        assert_eq!(checksum(&f[14..34], 0), 0);
        let p = parse(&f);
        assert_eq!(p.class(), Class::Udp);
        // UDP checksum verifies over the pseudo header
        let l4 = &f[p.l4_off..];
        assert_eq!(checksum(l4, pseudo_sum(&f, &p, l4.len())), 0);
    }

    #[test]
    fn known_udp_checksum() {
        // An independently computed frame: 192.0.2.1:1234 -> 192.0.2.2:80, payload "hi".
        let f = Builder::ipv4([192, 0, 2, 1], [192, 0, 2, 2])
            .udp(1234, 80)
            .payload(&b"hi"[..])
            .build();
        assert_eq!(&f[14..16], &[0x45, 0x00]);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 20 + 8 + 2);
        let p = parse(&f);
        let l4 = &f[p.l4_off..];
        assert_eq!(checksum(l4, pseudo_sum(&f, &p, l4.len())), 0);
    }

    #[test]
    fn ipv6_ext_headers_and_icmpv6() {
        let f = Builder::ipv6([1; 16], [2; 16])
            .ipv6_ext(0, [1, 4, 0, 0, 0, 0])
            .udp(1, 53)
            .build();
        let p = parse(&f);
        assert_eq!(p.l4_proto, IPPROTO_UDP);
        assert_eq!(p.l4_off, 14 + 40 + 8);
        assert_eq!(p.dport, 53);
        let f = Builder::ipv6([1; 16], [2; 16]).icmpv6_echo(1, 2).build();
        let p = parse(&f);
        assert_eq!(p.class(), Class::Icmpv6);
        let l4 = &f[p.l4_off..];
        assert_eq!(checksum(l4, pseudo_sum(&f, &p, l4.len())), 0);
    }

    #[test]
    fn fixed_set_classes() {
        let set = fixed_set();
        assert!(set.len() >= 25);
        let names: std::collections::HashSet<_> = set.iter().map(|(n, _)| *n).collect();
        assert_eq!(names.len(), set.len(), "names are unique");
        let get = |n: &str| parse(&set.iter().find(|(x, _)| *x == n).unwrap().1);
        assert_eq!(get("ipv4_tcp_syn").class(), Class::Tcp);
        assert_eq!(get("ipv4_tcp_bad_doff").class(), Class::Malformed);
        assert_eq!(get("ipv4_bogus_ihl3").class(), Class::Malformed);
        assert_eq!(get("ipv4_truncated_header").class(), Class::Malformed);
        assert_eq!(get("ipv4_gre").class(), Class::OtherL4);
        assert_eq!(get("ipv6_icmpv6_echo").class(), Class::Icmpv6);
        assert_eq!(get("ipv6_frag_tcp").class(), Class::Tcp);
        assert_eq!(get("qinq300_100_ipv4_tcp").vlans, 2);
        assert_eq!(get("qinq300_100_ipv4_tcp").vlan_id, 300);
        assert_eq!(get("vlan_truncated_tag").class(), Class::Malformed);
        assert_eq!(get("arp_request").class(), Class::NonIp);
        assert_eq!(get(RUNT).len, 10);
    }
}
