//! `bpf_fib_lookup` answered from the host's routing and neighbour tables over
//! rtnetlink, in the network namespace the socket was made in: the kernel's
//! `bpf_ipv4_fib_lookup` / `bpf_ipv6_fib_lookup` step by step (device, forwarding,
//! FIB lookup with its error mapping, unicast only, MTU, metric, source address,
//! gateway, neighbour), each step a request the kernel answers from the same tables.
//!
//! The netlink socket is [`crate::rtnl`]'s.

use crate::rtnl::{u32_of, Socket};

const RTM_GETLINK: u16 = 18;
const RTM_GETROUTE: u16 = 26;
const RTM_GETNEIGH: u16 = 30;
const RTM_GETNETCONF: u16 = 82;
const RTA_DST: u16 = 1;
const RTA_SRC: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_METRICS: u16 = 8;
const RTA_TABLE: u16 = 15;
const RTA_MARK: u16 = 16;
const RTA_ENCAP: u16 = 22;
const RTA_VIA: u16 = 18;
const RTAX_LOCK: u16 = 1;
const RTAX_MTU: u16 = 2;
const RTM_F_LOOKUP_TABLE: u32 = 0x1000;
const RTM_F_FIB_MATCH: u32 = 0x2000;
const RTN_UNICAST: u8 = 1;
const RTN_BLACKHOLE: u8 = 6;
const RTN_UNREACHABLE: u8 = 7;
const RTN_PROHIBIT: u8 = 8;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const IFLA_ADDRESS: u16 = 1;
const IFLA_MTU: u16 = 4;
const NETCONFA_IFINDEX: u16 = 1;
const NETCONFA_FORWARDING: u16 = 2;
/// NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE | NUD_PROBE | NUD_STALE | NUD_DELAY.
const NUD_VALID: u16 = 0x80 | 0x40 | 0x02 | 0x10 | 0x04 | 0x08;
const RT_TABLE_MAIN: u32 = 254;

/// `BPF_FIB_LOOKUP_*` flags.
pub mod flags {
    pub const DIRECT: u32 = 1;
    pub const OUTPUT: u32 = 2;
    pub const SKIP_NEIGH: u32 = 4;
    pub const TBID: u32 = 8;
    pub const SRC: u32 = 16;
    pub const MARK: u32 = 32;
}

/// `BPF_FIB_LKUP_RET_*`.
pub mod ret {
    pub const SUCCESS: i64 = 0;
    pub const BLACKHOLE: i64 = 1;
    pub const UNREACHABLE: i64 = 2;
    pub const PROHIBIT: i64 = 3;
    pub const NOT_FWDED: i64 = 4;
    pub const FWD_DISABLED: i64 = 5;
    pub const UNSUPP_LWT: i64 = 6;
    pub const NO_NEIGH: i64 = 7;
    pub const FRAG_NEEDED: i64 = 8;
    pub const NO_SRC_ADDR: i64 = 9;
}

/// An rtnetlink socket (requests and their single replies), with a short-lived
/// cache of lookup results (a data-plane worker looks up the same flows packet
/// after packet; routes and neighbours changed on the host show within `CACHE_TTL`).
pub struct Rtnl {
    sock: Socket,
    cache: std::collections::HashMap<CacheKey, CacheEntry>,
}

/// The input struct and the flags of a lookup.
type CacheKey = ([u8; 64], u32);
/// When it was answered, the result and the output struct.
type CacheEntry = (std::time::Instant, i64, [u8; 64]);

/// How long a lookup result is reused.
pub const CACHE_TTL: std::time::Duration = std::time::Duration::from_millis(100);
/// Entries kept at most (the cache is emptied when full).
const CACHE_MAX: usize = 4096;

/// Route attributes of a reply.
#[derive(Default)]
struct Route {
    rtype: u8,
    oif: Option<u32>,
    gateway: Option<Vec<u8>>,
    via6: bool,
    prefsrc: Option<Vec<u8>>,
    priority: u32,
    mtu: Option<u32>,
    /// `mtu lock`: an IPv4 route MTU counts for forwarding only when locked.
    mtu_locked: bool,
    encap: bool,
}

fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut v = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            break;
        }
        v.push((ty, &b[4..len]));
        b = &b[len.next_multiple_of(4).min(b.len())..];
    }
    v
}

/// The route attributes bpf_fib_lookup uses.
fn fill_route(route: &mut Route, a: &[u8]) {
    for (t, v) in attrs(a) {
        match t {
            RTA_OIF => route.oif = Some(u32_of(v)),
            RTA_GATEWAY => route.gateway = Some(v.to_vec()),
            RTA_VIA if v.len() >= 2 + 16 => {
                route.gateway = Some(v[2..18].to_vec());
                route.via6 = true;
            }
            RTA_PREFSRC => route.prefsrc = Some(v.to_vec()),
            RTA_PRIORITY => route.priority = u32_of(v),
            RTA_ENCAP => route.encap = true,
            RTA_METRICS => {
                for (m, mv) in attrs(v) {
                    match m {
                        RTAX_MTU => route.mtu = Some(u32_of(mv)),
                        RTAX_LOCK => route.mtu_locked = u32_of(mv) & (1 << RTAX_MTU) != 0,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}

/// Whether `prefix/plen` holds `addr`.
fn prefix_holds(prefix: &[u8], plen: u8, addr: &[u8]) -> bool {
    let bits = plen as usize;
    let (full, rest) = (bits / 8, bits % 8);
    if full > addr.len() || prefix[..full] != addr[..full] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        prefix[full] & mask == addr[full] & mask
    }
}

fn put_attr(out: &mut Vec<u8>, ty: u16, data: &[u8]) {
    out.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

impl Rtnl {
    /// A NETLINK_ROUTE socket in the calling thread's network namespace.
    pub fn open() -> std::io::Result<Rtnl> {
        Ok(Rtnl {
            sock: Socket::open()?,
            cache: Default::default(),
        })
    }

    /// The kernel's `fib_table_lookup` in table `table` (BPF_FIB_LOOKUP_DIRECT: no
    /// policy rules): the longest prefix holding `dst`, the lowest metric among
    /// equals; `Err` as the kernel's lookup fails (no match, or a reject route).
    fn table_route(&mut self, family: u8, dst: &[u8], table: u32) -> Result<Route, i32> {
        let mut body = vec![family, 0, 0, 0, 0, 0, 0, 0];
        body.extend_from_slice(&0u32.to_ne_bytes());
        let all = self.sock.dump(RTM_GETROUTE, &body)?;
        let mut best: Option<(u8, u32, Route)> = None;
        for m in &all {
            if m.len() < 12 {
                continue;
            }
            let (plen, rtype) = (m[1], m[7]);
            let mut tb = m[4] as u32;
            let mut r = Route {
                rtype,
                ..Default::default()
            };
            let mut rdst = vec![0u8; dst.len()];
            for (t, v) in attrs(&m[12..]) {
                match t {
                    RTA_TABLE => tb = u32_of(v),
                    RTA_DST if v.len() == dst.len() => rdst.copy_from_slice(v),
                    _ => {}
                }
            }
            if tb != table || !prefix_holds(&rdst, plen, dst) {
                continue;
            }
            fill_route(&mut r, &m[12..]);
            let better = match &best {
                None => true,
                Some((bl, bp, _)) => plen > *bl || (plen == *bl && r.priority < *bp),
            };
            if better {
                best = Some((plen, r.priority, r));
            }
        }
        match best {
            None => Err(libc::EAGAIN),
            Some((_, _, r)) => match r.rtype {
                RTN_BLACKHOLE => Err(libc::EINVAL),
                RTN_UNREACHABLE => Err(libc::EHOSTUNREACH),
                RTN_PROHIBIT => Err(libc::EACCES),
                _ => Ok(r),
            },
        }
    }

    /// The MTU of device `ifindex` (None when there is no such device).
    pub fn mtu(&mut self, ifindex: u32) -> Option<u32> {
        self.link(ifindex).ok().map(|(_, mtu)| mtu)
    }

    fn link(&mut self, ifindex: u32) -> Result<(Option<[u8; 6]>, u32), i32> {
        let mut ifi = vec![0u8; 16];
        ifi[4..8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
        let r = self.sock.request(RTM_GETLINK, &ifi)?;
        let (mut mac, mut mtu) = (None, 0);
        for (t, v) in attrs(r.get(16..).unwrap_or(&[])) {
            match t {
                IFLA_ADDRESS if v.len() == 6 => mac = Some(v.try_into().unwrap()),
                IFLA_MTU => mtu = u32_of(v),
                _ => {}
            }
        }
        Ok((mac, mtu))
    }

    fn forwarding(&mut self, family: u8, ifindex: u32) -> bool {
        let mut body = vec![family, 0, 0, 0];
        put_attr(&mut body, NETCONFA_IFINDEX, &(ifindex as i32).to_ne_bytes());
        match self.sock.request(RTM_GETNETCONF, &body) {
            Ok(r) => attrs(r.get(4..).unwrap_or(&[]))
                .iter()
                .find(|(t, _)| *t == NETCONFA_FORWARDING)
                .is_some_and(|(_, v)| u32_of(v) != 0),
            Err(_) => false,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn route(
        &mut self,
        family: u8,
        dst: &[u8],
        src: &[u8],
        oif: Option<u32>,
        mark: u32,
        table: Option<u32>,
        tos: u8,
        fib_match: bool,
    ) -> Result<Route, i32> {
        let bits = (dst.len() * 8) as u8;
        let has_src = src.iter().any(|&b| b != 0);
        let mut rtm_flags = if fib_match { RTM_F_FIB_MATCH } else { 0 };
        if table.is_some() {
            rtm_flags |= RTM_F_LOOKUP_TABLE;
        }
        let mut body = vec![
            family,
            bits,
            if has_src { bits } else { 0 },
            tos,
            0,
            0,
            0,
            0,
        ];
        body.extend_from_slice(&rtm_flags.to_ne_bytes());
        put_attr(&mut body, RTA_DST, dst);
        if has_src {
            put_attr(&mut body, RTA_SRC, src);
        }
        if let Some(o) = oif {
            put_attr(&mut body, RTA_OIF, &o.to_ne_bytes());
        }
        if mark != 0 {
            put_attr(&mut body, RTA_MARK, &mark.to_ne_bytes());
        }
        if let Some(t) = table {
            put_attr(&mut body, RTA_TABLE, &t.to_ne_bytes());
        }
        let r = self.sock.request(RTM_GETROUTE, &body)?;
        if r.len() < 12 {
            return Err(libc::EIO);
        }
        let mut route = Route {
            rtype: r[7],
            ..Default::default()
        };
        fill_route(&mut route, &r[12..]);
        Ok(route)
    }

    fn neighbour(&mut self, family: u8, ifindex: u32, addr: &[u8]) -> Option<[u8; 6]> {
        let mut body = vec![family, 0, 0, 0];
        body.extend_from_slice(&(ifindex as i32).to_ne_bytes());
        body.extend_from_slice(&[0, 0, 0, 0]); // state, flags, type
        put_attr(&mut body, NDA_DST, addr);
        let r = self.sock.request(RTM_GETNEIGH, &body).ok()?;
        let state = u16::from_ne_bytes([*r.get(8)?, *r.get(9)?]);
        if state & NUD_VALID == 0 {
            return None;
        }
        attrs(r.get(12..)?)
            .into_iter()
            .find(|(t, v)| *t == NDA_LLADDR && v.len() == 6)
            .map(|(_, v)| v.try_into().unwrap())
    }

    /// The kernel's `bpf_fib_lookup` for XDP (MTU checked) on `params` (`struct
    /// bpf_fib_lookup`, 64 bytes): fills the output fields and returns the helper's
    /// result (`BPF_FIB_LKUP_RET_*` or a negative errno). Results are cached for
    /// `CACHE_TTL`.
    pub fn fib_lookup(&mut self, p: &mut [u8], flags: u32) -> i64 {
        let Ok(input) = <[u8; 64]>::try_from(&p[..]) else {
            return -(libc::EINVAL as i64);
        };
        let now = std::time::Instant::now();
        if let Some((at, r, out)) = self.cache.get(&(input, flags)) {
            if now.duration_since(*at) < CACHE_TTL {
                p.copy_from_slice(out);
                return *r;
            }
        }
        let r = self.lookup_uncached(p, flags);
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        let out: [u8; 64] = p[..].try_into().unwrap_or([0; 64]);
        self.cache.insert((input, flags), (now, r, out));
        r
    }

    fn lookup_uncached(&mut self, p: &mut [u8], flags: u32) -> i64 {
        let family = p[0];
        let v6 = family as i32 == libc::AF_INET6;
        let alen = if v6 { 16 } else { 4 };
        let ifindex = u32_of(&p[8..]);
        if self.link(ifindex).is_err() {
            return -(libc::ENODEV as i64);
        }
        if !self.forwarding(family, ifindex) {
            return ret::FWD_DISABLED;
        }
        let dst = p[32..32 + alen].to_vec();
        let src = p[16..16 + alen].to_vec();
        let oif = (flags & flags::OUTPUT != 0).then_some(ifindex);
        let mark = if flags & flags::MARK != 0 && flags & flags::DIRECT == 0 {
            u32_of(&p[52..])
        } else {
            0
        };
        let table = (flags & flags::DIRECT != 0).then(|| {
            if flags & flags::TBID != 0 {
                u32_of(&p[48..])
            } else {
                RT_TABLE_MAIN
            }
        });
        let tos = if v6 { 0 } else { p[12] & 0x1e };
        let looked = match table {
            Some(t) => self.table_route(family, &dst, t),
            None => self.route(family, &dst, &src, oif, mark, None, tos, true),
        };
        let route = match looked {
            Ok(r) => r,
            Err(e) if e == libc::EINVAL => return ret::BLACKHOLE,
            Err(e) if e == libc::EHOSTUNREACH => return ret::UNREACHABLE,
            Err(e) if e == libc::EACCES => return ret::PROHIBIT,
            Err(_) => return ret::NOT_FWDED,
        };
        match route.rtype {
            RTN_UNICAST => {}
            RTN_BLACKHOLE => return ret::BLACKHOLE,
            RTN_UNREACHABLE => return ret::UNREACHABLE,
            RTN_PROHIBIT => return ret::PROHIBIT,
            _ => return ret::NOT_FWDED,
        }
        let Some(out_if) = route.oif else {
            return ret::NOT_FWDED;
        };
        let Ok((out_mac, dev_mtu)) = self.link(out_if) else {
            return ret::NOT_FWDED;
        };
        // ip_mtu_from_fib_result: a route's MTU counts for forwarding only when locked
        // (`mtu lock N`); otherwise the device's (the kernel answers the same for
        // IPv6 routes with an unlocked MTU).
        let route_mtu = route.mtu.filter(|&m| m != 0 && route.mtu_locked);
        let mtu = route_mtu.unwrap_or(dev_mtu);
        let tot_len = u16::from_ne_bytes([p[6], p[7]]) as u32;
        if tot_len > mtu {
            p[6..8].copy_from_slice(&(mtu as u16).to_ne_bytes());
            return ret::FRAG_NEEDED;
        }
        if route.encap {
            return ret::UNSUPP_LWT;
        }
        p[12..16].copy_from_slice(&route.priority.to_ne_bytes());
        p[8..12].copy_from_slice(&out_if.to_ne_bytes());
        if flags & flags::SRC != 0 {
            let chosen = match route.prefsrc {
                Some(s) => Some(s),
                // Not configured on the route: the address the kernel picks.
                None => self
                    .route(family, &dst, &[0; 16][..alen], oif, mark, table, tos, false)
                    .ok()
                    .and_then(|r| r.prefsrc),
            };
            match chosen {
                Some(s) if s.len() == alen && s.iter().any(|&b| b != 0) => {
                    p[16..16 + alen].copy_from_slice(&s)
                }
                _ => return ret::NO_SRC_ADDR,
            }
        }
        let mut nfamily = family;
        if let Some(gw) = &route.gateway {
            if route.via6 && !v6 {
                // An IPv4 route via an IPv6 gateway: the result is IPv6.
                nfamily = libc::AF_INET6 as u8;
                p[0] = nfamily;
                p[32..48].copy_from_slice(gw);
            } else if gw.len() == alen {
                p[32..32 + alen].copy_from_slice(gw);
            }
        }
        if flags & flags::SKIP_NEIGH == 0 {
            let nlen = if nfamily as i32 == libc::AF_INET6 {
                16
            } else {
                4
            };
            let next_hop = p[32..32 + nlen].to_vec();
            let Some(dmac) = self.neighbour(nfamily, out_if, &next_hop) else {
                return ret::NO_NEIGH;
            };
            p[58..64].copy_from_slice(&dmac);
            p[52..58].copy_from_slice(&out_mac.unwrap_or([0; 6]));
        }
        // bpf_fib_set_fwd_params: no VLAN, the MTU in mtu_result.
        p[48..52].fill(0);
        p[6..8].copy_from_slice(&(mtu as u16).to_ne_bytes());
        ret::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert!(prefix_holds(&[10, 92, 0, 0], 24, &[10, 92, 0, 5]));
        assert!(!prefix_holds(&[10, 92, 0, 0], 24, &[10, 93, 0, 5]));
        assert!(prefix_holds(&[10, 0, 0, 0], 9, &[10, 127, 1, 1]));
        assert!(!prefix_holds(&[10, 0, 0, 0], 9, &[10, 128, 1, 1]));
        assert!(prefix_holds(&[0; 4], 0, &[8, 8, 8, 8]));
        assert!(prefix_holds(&[1, 2, 3, 4], 32, &[1, 2, 3, 4]));
    }

    #[test]
    fn attributes_round_trip() {
        let mut b = Vec::new();
        put_attr(&mut b, RTA_OIF, &7u32.to_ne_bytes());
        put_attr(&mut b, RTA_GATEWAY, &[10, 77, 0, 2]);
        put_attr(&mut b, RTA_DST, &[1, 2, 3]);
        let a = attrs(&b);
        assert_eq!(a.len(), 3);
        assert_eq!(a[0], (RTA_OIF, &7u32.to_ne_bytes()[..]));
        assert_eq!(a[1], (RTA_GATEWAY, &[10u8, 77, 0, 2][..]));
        assert_eq!(a[2], (RTA_DST, &[1u8, 2, 3][..]));
        // A truncated attribute ends the list instead of reading past the buffer.
        assert_eq!(attrs(&b[..b.len() - 2]).len(), 2);
    }
}
