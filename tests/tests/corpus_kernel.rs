//! The corpus is known-good: every corpus program, in both flavours, loads into the real
//! kernel and behaves on the fixed packet set as it is written to (hand-written
//! expectations per program: verdicts, output bytes, map contents).

use std::collections::BTreeMap;

use bpftime_tests::corpus::{self, CorpusProg, Flavour};
use bpftime_tests::oracle::{KernelObject, XdpRun};
use bpftime_tests::packets::{
    self, checksum, parse, pseudo_sum, Class, Parsed, ETH_P_IP, ETH_P_IPV6,
};
use bpftime_tests::privilege::{require, Need};

const ABORTED: u32 = 0;
const DROP: u32 = 1;
const PASS: u32 = 2;
const TX: u32 = 3;
const REDIRECT: u32 = 4;

struct Case {
    name: &'static str,
    input: Vec<u8>,
    p: Parsed,
    run: XdpRun,
}

/// Loads `prog` in `flavour`, runs it once on every packet of the fixed set, in order.
/// The runt frame must be refused with EINVAL.
fn run_set(prog: &CorpusProg, flavour: Flavour) -> (KernelObject, Vec<Case>) {
    let k = KernelObject::load(prog, flavour)
        .unwrap_or_else(|e| panic!("{} {flavour}: {e}", prog.file));
    let mut cases = Vec::new();
    for (name, input) in packets::fixed_set() {
        let r = k.run(prog.prog, &input);
        if input.len() < packets::MIN_TEST_RUN_LEN {
            let e = r.expect_err("the kernel runs a frame shorter than 14 bytes");
            assert_eq!(
                e.errno(),
                Some(libc::EINVAL),
                "{} {flavour} {name}: {e}",
                prog.file
            );
            continue;
        }
        let run = r.unwrap_or_else(|e| panic!("{} {flavour} {name}: {e}", prog.file));
        cases.push(Case {
            name,
            p: parse(&input),
            input,
            run,
        });
    }
    (k, cases)
}

/// Checks every case against `expect(case) -> (verdict, output frame)`; reports all
/// mismatches at once.
fn check(prog: &str, flavour: Flavour, cases: &[Case], expect: impl Fn(&Case) -> (u32, Vec<u8>)) {
    let mut bad = Vec::new();
    for c in cases {
        let (v, out) = expect(c);
        if c.run.retval != v {
            bad.push(format!("{}: verdict {} expected {v}", c.name, c.run.retval));
        }
        if c.run.data != out {
            bad.push(format!(
                "{}: output\n  got      {:02x?}\n  expected {:02x?}",
                c.name, c.run.data, out
            ));
        }
    }
    assert!(bad.is_empty(), "{prog} ({flavour}):\n{}", bad.join("\n"));
}

fn u32_at(v: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(v[off..off + 4].try_into().unwrap())
}
fn i32_at(v: &[u8], off: usize) -> i32 {
    i32::from_ne_bytes(v[off..off + 4].try_into().unwrap())
}
fn u64_at(v: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(v[off..off + 8].try_into().unwrap())
}
fn key32(k: u32) -> Vec<u8> {
    k.to_ne_bytes().to_vec()
}
/// Value of a section map (.bss/.data/.rodata): key 0.
fn section(k: &KernelObject, sec: &str) -> Vec<u8> {
    k.lookup(sec, &key32(0))
        .unwrap()
        .unwrap_or_else(|| panic!("{sec} has no value"))
}
fn u64_array(k: &KernelObject, map: &str, n: u32) -> Vec<u64> {
    (0..n)
        .map(|i| u64_at(&k.lookup(map, &key32(i)).unwrap().unwrap(), 0))
        .collect()
}
fn count_by<K: Ord>(cases: &[Case], f: impl Fn(&Case) -> Option<K>) -> BTreeMap<K, u64> {
    let mut m = BTreeMap::new();
    for c in cases {
        if let Some(k) = f(c) {
            *m.entry(k).or_default() += 1;
        }
    }
    m
}
fn same(c: &Case, v: u32) -> (u32, Vec<u8>) {
    (v, c.input.clone())
}
fn ok(p: &Parsed) -> bool {
    !p.malformed
}

fn for_both(name: &str, f: impl Fn(&CorpusProg, Flavour)) {
    if !require(&[Need::Root, Need::Bpf]) {
        return;
    }
    let prog = corpus::get(name).unwrap_or_else(|| panic!("{name} is not in the corpus"));
    for flavour in Flavour::ALL {
        f(prog, flavour);
    }
}

#[test]
fn pass_all() {
    for_both("pass_all", |prog, fl| {
        let (_k, cases) = run_set(prog, fl);
        check(prog.file, fl, &cases, |c| same(c, PASS));
    });
}

#[test]
fn verdict_by_proto() {
    for_both("verdict_by_proto", |prog, fl| {
        let (_k, cases) = run_set(prog, fl);
        let verdicts: std::collections::BTreeSet<u32> =
            cases.iter().map(|c| c.run.retval).collect();
        assert_eq!(verdicts.len(), 5, "every verdict is seen: {verdicts:?}");
        check(prog.file, fl, &cases, |c| {
            let v = match c.p.class() {
                Class::Malformed => ABORTED,
                Class::Tcp => PASS,
                Class::Udp if c.p.dport == 7777 => REDIRECT,
                Class::Udp if c.p.dport == 7778 => ABORTED,
                Class::Udp => DROP,
                Class::Icmp | Class::Icmpv6 => TX,
                Class::OtherL4 => DROP,
                _ => PASS,
            };
            same(c, v)
        });
    });
}

#[test]
fn verdict_by_len() {
    for_both("verdict_by_len", |prog, fl| {
        let (_k, cases) = run_set(prog, fl);
        check(prog.file, fl, &cases, |c| {
            same(c, (c.input.len() % 6) as u32)
        });
    });
}

#[test]
fn class_counters() {
    for_both("class_counters", |prog, fl| {
        let (k, cases) = run_set(prog, fl);
        check(prog.file, fl, &cases, |c| same(c, PASS));
        let mut pkts = [0u64; 10];
        let mut bytes = [0u64; 10];
        for c in &cases {
            pkts[c.p.class() as usize] += 1;
            bytes[c.p.class() as usize] += c.input.len() as u64;
            if c.p.vlans > 0 {
                pkts[Class::Vlan as usize] += 1;
            }
        }
        assert_eq!(u64_array(&k, "class_pkts", 10), pkts, "class_pkts ({fl})");
        let got: Vec<u64> = (0..10u32)
            .map(|i| {
                let per_cpu = k.lookup_percpu("class_bytes", &key32(i)).unwrap().unwrap();
                per_cpu.iter().map(|v| u64_at(v, 0)).sum()
            })
            .collect();
        assert_eq!(got, bytes, "class_bytes ({fl})");
        // pkt_class() never answers IPV4/IPV6 (1, 2): every other class is seen
        assert_eq!(
            pkts.iter().filter(|n| **n > 0).count(),
            8,
            "the set covers every class"
        );
    });
}

#[test]
fn flow_hash() {
    for_both("flow_hash", |prog, fl| {
        let (k, cases) = run_set(prog, fl);
        check(prog.file, fl, &cases, |c| same(c, PASS));
        let mut want: BTreeMap<Vec<u8>, (u64, u64)> = BTreeMap::new();
        for c in cases
            .iter()
            .filter(|c| ok(&c.p) && c.p.eth_proto == ETH_P_IP)
        {
            let mut key = Vec::new();
            key.extend_from_slice(&c.p.saddr);
            key.extend_from_slice(&c.p.daddr);
            key.extend_from_slice(&c.p.sport.to_ne_bytes());
            key.extend_from_slice(&c.p.dport.to_ne_bytes());
            key.extend_from_slice(&[c.p.l4_proto, 0, 0, 0]);
            let e = want.entry(key).or_default();
            e.0 += 1;
            e.1 += c.input.len() as u64;
        }
        let got: BTreeMap<Vec<u8>, (u64, u64)> = k
            .dump("flows")
            .unwrap()
            .into_iter()
            .map(|(key, v)| (key, (u64_at(&v, 0), u64_at(&v, 8))))
            .collect();
        assert!(want.len() >= 10);
        assert_eq!(got, want, "flows ({fl})");
    });
}

#[test]
fn percpu_hash() {
    for_both("percpu_hash", |prog, fl| {
        let (k, cases) = run_set(prog, fl);
        check(prog.file, fl, &cases, |c| {
            same(c, if c.p.eth_proto == 0x88b5 { DROP } else { PASS })
        });
        let want = count_by(&cases, |c| {
            (c.p.eth_proto != 0x88b5).then(|| key32(c.p.eth_proto as u32))
        });
        let got: BTreeMap<Vec<u8>, u64> = k
            .dump("per_proto")
            .unwrap()
            .into_iter()
            .map(|(key, v)| (key, u64_at(&v, 0)))
            .collect();
        assert_eq!(got, want, "per_proto ({fl})");
    });
}

#[test]
fn lru_last_len() {
    for_both("lru_last_len", |prog, fl| {
        let (k, cases) = run_set(prog, fl);
        check(prog.file, fl, &cases, |c| same(c, PASS));
        let mut want: BTreeMap<Vec<u8>, (u32, u32)> = BTreeMap::new();
        for c in cases
            .iter()
            .filter(|c| ok(&c.p) && c.p.eth_proto == ETH_P_IP)
        {
            let e = want.entry(c.p.saddr.to_vec()).or_default();
            *e = (c.input.len() as u32, e.1 + 1);
        }
        let got: BTreeMap<Vec<u8>, (u32, u32)> = k
            .dump("by_src")
            .unwrap()
            .into_iter()
            .map(|(key, v)| (key, (u32_at(&v, 0), u32_at(&v, 4))))
            .collect();
        assert_eq!(got, want, "by_src ({fl})");
    });
}

#[test]
fn lpm_acl() {
    for_both("lpm_acl", |prog, fl| {
        let (k, cases) = run_set(prog, fl);
        let action = |c: &Case| -> Option<u32> {
            if !ok(&c.p) || c.p.eth_proto != ETH_P_IP {
                return None;
            }
            let a = c.p.saddr;
            if a[0] == 10 && a[1] == 1 {
                Some(2)
            } else if a[0] == 10 {
                Some(1)
            } else if a[0] == 192 && a[1] == 168 {
                Some(3)
            } else if a[0] == 172 && (16..32).contains(&a[1]) {
                Some(7)
            } else {
                None
            }
        };
        check(prog.file, fl, &cases, |c| match action(c) {
            None => same(c, PASS),
            Some(a) if a > TX => same(c, ABORTED),
            Some(a) => same(c, a),
        });
        let want = count_by(&cases, action);
        let hits = u64_array(&k, "acl_hits", 8);
        for (a, n) in hits.iter().enumerate() {
            assert_eq!(
                *n,
                want.get(&(a as u32)).copied().unwrap_or(0),
                "acl_hits[{a}] ({fl})"
            );
        }
        assert_eq!(want.len(), 4, "every ACL entry is hit");
    });
}

#[test]
fn devmap_redirect() {
    for_both("devmap_redirect", |prog, fl| {
        let (_k, cases) = run_set(prog, fl);
        check(prog.file, fl, &cases, |c| {
            let v = if !ok(&c.p) || !matches!(c.p.class(), Class::Tcp | Class::Udp) {
                DROP
            } else if c.p.dport % 4 == 0 {
                REDIRECT
            } else {
                PASS
            };
            same(c, v)
        });
    });
}

#[test]
fn tail_calls() {
    for_both("tail_calls", |prog, fl| {
        let (k, cases) = run_set(prog, fl);
        check(prog.file, fl, &cases, |c| {
            same(
                c,
                match c.p.class() {
                    Class::Tcp => PASS,
                    Class::Udp => DROP,
                    // ICMP chains to slot 9; slot 9 is also C_OTHER_L4's own slot
                    Class::Icmp | Class::OtherL4 => TX,
                    _ => PASS,
                },
            )
        });
        let n = |cl: Class| cases.iter().filter(|c| c.p.class() == cl).count() as u64;
        let (icmp, other) = (n(Class::Icmp), n(Class::OtherL4));
        let miss = cases.len() as u64 - n(Class::Tcp) - n(Class::Udp) - icmp - other;
        let hits = u64_array(&k, "tc_hits", 10);
        assert_eq!(
            hits,
            [
                miss,
                0,
                0,
                n(Class::Tcp),
                n(Class::Udp),
                icmp,
                0,
                0,
                0,
                icmp + other
            ],
            "tc_hits ({fl})"
        );
        assert!(miss > 0 && icmp > 0 && other > 0);
    });
}

#[test]
fn subprog_tail_calls() {
    for_both("subprog_tail_calls", |prog, fl| {
        let (k, cases) = run_set(prog, fl);
        // What dispatch() returns: the target's r0 (the subprogram is replaced).
        let got = |c: &Case| match c.p.class() {
            Class::Tcp => 3,
            Class::Udp => 1,
            // ICMP chains to slot 9 (sub_chain); slot 9 is also C_OTHER_L4's own.
            Class::Icmp | Class::OtherL4 => 4,
            _ => 6,
        };
        check(prog.file, fl, &cases, |c| same(c, (got(c) + 1) % 5));
        let mut want = [0u64; 8];
        for c in &cases {
            want[got(c) as usize] += 1;
        }
        assert_eq!(u64_array(&k, "sub_hits", 8), want, "sub_hits ({fl})");
        assert!(want[3] > 0 && want[1] > 0 && want[4] > 0 && want[6] > 0);
    });
}

#[test]
fn map_in_map() {
    for_both("map_in_map", |prog, fl| {
        let (k, cases) = run_set(prog, fl);
        check(prog.file, fl, &cases, |c| {
            same(
                c,
                if matches!(c.p.eth_proto, ETH_P_IP | ETH_P_IPV6) {
                    PASS
                } else {
                    DROP
                },
            )
        });
        for (inner, proto) in [("inner_v4", ETH_P_IP), ("inner_v6", ETH_P_IPV6)] {
            let mut want = vec![0u64; 10];
            for c in cases.iter().filter(|c| c.p.eth_proto == proto) {
                want[c.p.class() as usize] += 1;
            }
            assert_eq!(u64_array(&k, inner, 10), want, "{inner} ({fl})");
        }
    });
}

#[test]
fn ringbuf_events() {
    for_both("ringbuf_events", |prog, fl| {
        let (k, cases) = run_set(prog, fl);
        check(prog.file, fl, &cases, |c| same(c, PASS));
        let mut want = Vec::new();
        for c in cases.iter().filter(|c| ok(&c.p)) {
            let v4 = c.p.eth_proto == ETH_P_IP;
            if !(v4 && c.input.len() % 2 == 0 || c.p.eth_proto == ETH_P_IPV6) {
                continue;
            }
            let mut e = Vec::new();
            e.extend_from_slice(&(c.input.len() as u32).to_ne_bytes());
            e.extend_from_slice(&c.p.eth_proto.to_ne_bytes());
            e.push(c.p.l4_proto);
            e.push(c.p.class() as u8);
            e.extend_from_slice(if v4 { &c.p.saddr } else { &[0; 4] });
            e.extend_from_slice(if v4 { &c.p.daddr } else { &[0; 4] });
            want.push(e);
        }
        assert!(want.len() >= 5);
        assert_eq!(k.ringbuf_records("events").unwrap(), want, "events ({fl})");
    });
}

#[derive(Default, Debug, PartialEq)]
struct Atom {
    w: [u64; 12],
    h: [u32; 12],
}

fn atomics_model(lens: &[usize]) -> Atom {
    let mut a = Atom::default();
    for &len in lens {
        let len = len as u64;
        let w = &mut a.w;
        w[0] = w[0].wrapping_add(len);
        w[1] = w[0];
        w[0] = w[0].wrapping_add(len << 32);
        w[2] |= 1 << (len % 64);
        w[3] = w[2];
        w[2] |= len << 40;
        if w[4] == 0 {
            w[4] = !0;
        }
        w[4] &= !(1u64 << (len % 61));
        w[5] = w[4];
        w[4] &= !(len << 20);
        w[6] ^= len.wrapping_mul(0x9e3779b97f4a7c15);
        w[7] = w[6];
        w[6] ^= len;
        w[9] = w[8];
        w[8] = len * 3 + (1 << 33);
        let expect = w[11];
        w[11] = w[10];
        if w[10] == expect {
            w[10] = len;
        }
        let l = len as u32;
        let h = &mut a.h;
        h[0] = h[0].wrapping_add(l);
        h[1] = h[0];
        h[0] = h[0].wrapping_add(l << 16);
        h[2] |= 1 << (l % 32);
        h[3] = h[2];
        h[2] |= l << 8;
        if h[4] == 0 {
            h[4] = !0;
        }
        h[4] &= !(1u32 << (l % 31));
        h[5] = h[4];
        h[4] &= !(l << 4);
        h[6] ^= l.wrapping_mul(0x9e3779b9);
        h[7] = h[6];
        h[6] ^= l;
        h[9] = h[8];
        h[8] = l * 5;
        let expect = if l & 1 == 1 { 0xdeadbeef } else { h[10] };
        h[11] = h[10];
        if h[10] == expect {
            h[10] = l;
        }
    }
    a
}

#[test]
fn atomics() {
    for_both("atomics", |prog, fl| {
        let (k, cases) = run_set(prog, fl);
        check(prog.file, fl, &cases, |c| same(c, PASS));
        let v = k.lookup("atom_map", &key32(0)).unwrap().unwrap();
        let mut got = Atom::default();
        for i in 0..12 {
            got.w[i] = u64_at(&v, i * 8);
            got.h[i] = u32_at(&v, 96 + i * 4);
        }
        let lens: Vec<usize> = cases.iter().map(|c| c.input.len()).collect();
        assert_eq!(got, atomics_model(&lens), "atom_map ({fl})");
    });
}

fn fnv(b: &[u8]) -> u32 {
    b.iter()
        .take(64)
        .fold(2166136261u32, |h, x| (h ^ *x as u32).wrapping_mul(16777619))
}

#[test]
fn bpf2bpf_calls() {
    for_both("bpf2bpf_calls", |prog, fl| {
        let (k, cases) = run_set(prog, fl);
        check(prog.file, fl, &cases, |c| {
            same(c, if fnv(&c.input) & 1 == 1 { DROP } else { PASS })
        });
        let bss = section(&k, ".bss");
        assert_eq!(
            u32_at(&bss, 0),
            fnv(&cases.last().unwrap().input),
            "last_hash ({fl})"
        );
        let calls: usize = cases.iter().map(|c| c.input.len().min(64)).sum();
        assert_eq!(u32_at(&bss, 4) as usize, calls, "calls_made ({fl})");
    });
}

#[test]
fn global_data() {
    for_both("global_data", |prog, fl| {
        let (k, cases) = run_set(prog, fl);
        let mut budget = 2;
        let mut drops = Vec::new();
        for c in &cases {
            let d = ok(&c.p) && c.p.l4_proto == 17 && c.p.dport == 53 && budget > 0;
            if d {
                budget -= 1;
            }
            drops.push(d);
        }
        let mut i = 0;
        check(prog.file, fl, &cases, |c| {
            let d = drops[cases.iter().position(|x| x.name == c.name).unwrap()];
            same(c, if d { DROP } else { PASS })
        });
        i += drops.iter().filter(|d| **d).count();
        assert_eq!(i, 2);
        let ro = section(&k, ".rodata");
        assert_eq!((u32_at(&ro, 0) & 0xffff, u32_at(&ro, 4)), (53, 0xfeedf00d));
        let data = section(&k, ".data");
        let bytes: u64 = cases.iter().map(|c| c.input.len() as u64).sum();
        assert_eq!(
            (u32_at(&data, 0), u64_at(&data, 8)),
            (0, 1000 + bytes),
            ".data ({fl})"
        );
        let bss = section(&k, ".bss");
        assert_eq!(
            (u64_at(&bss, 0), u64_at(&bss, 8), u32_at(&bss, 16)),
            (cases.len() as u64 - 2, 2, 0xfeedf00d),
            ".bss ({fl})"
        );
    });
}

#[test]
fn payload_scan() {
    for_both("payload_scan", |prog, fl| {
        let (k, cases) = run_set(prog, fl);
        let scan = |c: &Case| -> Option<(u64, u64)> {
            if !ok(&c.p) || c.p.l4_off == 0 {
                return None;
            }
            let off = match c.p.l4_proto {
                6 => c.p.l4_off + (c.input[c.p.l4_off + 12] >> 4) as usize * 4,
                17 | 1 | 58 => c.p.l4_off + 8,
                _ => return None,
            };
            let bytes = c.input.get(off..).unwrap_or(&[]);
            let bytes = &bytes[..bytes.len().min(256)];
            Some((
                bytes.iter().filter(|b| **b == 0xAA).count() as u64,
                bytes.iter().map(|b| *b as u64).sum(),
            ))
        };
        check(prog.file, fl, &cases, |c| {
            same(
                c,
                if scan(c).is_some_and(|(n, _)| n > 8) {
                    DROP
                } else {
                    PASS
                },
            )
        });
        let (mut n, mut s, mut runs, mut last) = (0, 0, 0, 0);
        for (cn, cs) in cases.iter().filter_map(scan) {
            n += cn;
            s += cs;
            runs += 1;
            last = cs;
        }
        assert!(n > 8 && runs > 10);
        assert_eq!(u64_array(&k, "scan", 3), [n, s, runs], "scan ({fl})");
        assert_eq!(u64_at(&section(&k, ".bss"), 0), last, "scan_sum ({fl})");
    });
}

#[test]
fn vlan_push_pop() {
    for_both("vlan_push_pop", |prog, fl| {
        let (k, cases) = run_set(prog, fl);
        check(prog.file, fl, &cases, |c| {
            let i = &c.input;
            match u16::from_be_bytes([i[12], i[13]]) {
                ETH_P_IP => {
                    let mut o = i[..12].to_vec();
                    o.extend_from_slice(&[0x81, 0x00, 0x00, 100]);
                    o.extend_from_slice(&i[12..]);
                    (PASS, o)
                }
                0x8100 | 0x88a8 if i.len() < 18 => same(c, DROP),
                0x8100 | 0x88a8 => {
                    let mut o = i[..12].to_vec();
                    o.extend_from_slice(&i[16..]);
                    (PASS, o)
                }
                _ => same(c, PASS),
            }
        });
        assert_eq!(
            i32_at(&section(&k, ".bss"), 0),
            -libc::EINVAL,
            "bad_adjust_ret ({fl})"
        );
    });
}

#[test]
fn adjust_tail() {
    for_both("adjust_tail", |prog, fl| {
        let (k, cases) = run_set(prog, fl);
        check(prog.file, fl, &cases, |c| {
            let mut o = c.input.clone();
            o.resize(o.len().clamp(60, 128), 0);
            *o.last_mut().unwrap() = 0x5a;
            (TX, o)
        });
        assert_eq!(
            i32_at(&section(&k, ".bss"), 0),
            -libc::EINVAL,
            "shrink_ret ({fl})"
        );
    });
}

#[test]
fn adjust_meta() {
    for_both("adjust_meta", |prog, fl| {
        let (k, cases) = run_set(prog, fl);
        check(prog.file, fl, &cases, |c| {
            let mut o = 0x4d455441u32.to_ne_bytes().to_vec();
            o.extend_from_slice(&(c.input.len() as u32).to_ne_bytes());
            o.extend_from_slice(&c.input);
            (PASS, o)
        });
        for c in &cases {
            assert_eq!(c.run.meta_len, 8, "{} ({fl})", c.name);
        }
        let data = section(&k, ".data");
        // -256 passes the headroom (EINVAL); 6.18 allows up to 255 bytes of metadata (older
        // kernels: 32, then grow64 = -EACCES)
        assert_eq!(
            (
                i32_at(&data, 0),
                i32_at(&data, 4),
                i32_at(&data, 8),
                i32_at(&data, 12)
            ),
            (-libc::EACCES, -libc::EINVAL, 0, 0),
            "meta_rets ({fl})"
        );
        assert_eq!(
            u32_at(&section(&k, ".bss"), 0) as usize,
            cases.last().unwrap().input.len()
        );
        // repeat: BPF_PROG_TEST_RUN runs each repetition on what the previous one left
        let r = k.run_repeat(prog.prog, &cases[0].input, 3).unwrap();
        assert_eq!(r.meta_len, 8 + 8 + 8, "repeat 3 ({fl})");
    });
}

#[test]
fn csum_rewrite() {
    for_both("csum_rewrite", |prog, fl| {
        let (_k, cases) = run_set(prog, fl);
        let mut rewritten_udp = 0;
        check(prog.file, fl, &cases, |c| {
            let p = &c.p;
            if !ok(p) || p.eth_proto != ETH_P_IP || c.input[p.l3_off] & 0xf != 5 {
                return same(c, PASS);
            }
            let l3 = p.l3_off;
            if c.input[l3 + 8] <= 1 {
                return same(c, DROP);
            }
            let mut o = c.input.clone();
            o[l3 + 8] -= 1;
            o[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
            let ck = checksum(&o[l3..l3 + 20], 0);
            o[l3 + 10..l3 + 12].copy_from_slice(&ck.to_be_bytes());
            if p.l4_proto == 17 && p.dport == 53 {
                let u = p.l4_off;
                o[u + 2..u + 4].copy_from_slice(&5353u16.to_be_bytes());
                let old = u16::from_be_bytes([o[u + 6], o[u + 7]]);
                if old != 0 {
                    // RFC 1624 eq. 3 on the one changed word
                    let s = packets::sum16(
                        &[!53u16.to_be_bytes()[0], !53u16.to_be_bytes()[1]],
                        (!old) as u32,
                    );
                    let s = packets::sum16(&5353u16.to_be_bytes(), s);
                    let mut n = !(s as u16);
                    if n == 0 {
                        n = 0xffff;
                    }
                    o[u + 6..u + 8].copy_from_slice(&n.to_be_bytes());
                }
            }
            (TX, o)
        });
        // Where the UDP datagram is complete, the rewritten checksum verifies in full.
        for c in cases
            .iter()
            .filter(|c| c.run.retval == TX && c.p.l4_proto == 17 && c.p.dport == 53)
        {
            let o = &c.run.data;
            let ulen = u16::from_be_bytes([o[c.p.l4_off + 4], o[c.p.l4_off + 5]]) as usize;
            if c.p.l4_off + ulen == o.len() {
                let l4 = &o[c.p.l4_off..];
                assert_eq!(
                    checksum(l4, pseudo_sum(o, &c.p, l4.len())),
                    0,
                    "{} UDP checksum ({fl})",
                    c.name
                );
                rewritten_udp += 1;
            }
            assert_eq!(
                checksum(&o[c.p.l3_off..c.p.l3_off + 20], 0),
                0,
                "{} IP checksum ({fl})",
                c.name
            );
        }
        assert!(rewritten_udp >= 2);
    });
}

fn swap(o: &mut [u8], a: usize, b: usize, n: usize) {
    for i in 0..n {
        o.swap(a + i, b + i);
    }
}

#[test]
fn mac_swap_tx() {
    for_both("mac_swap_tx", |prog, fl| {
        let (_k, cases) = run_set(prog, fl);
        check(prog.file, fl, &cases, |c| {
            let p = &c.p;
            let mut o = c.input.clone();
            match p.eth_proto {
                _ if !ok(p) => return same(c, PASS),
                ETH_P_IP => swap(&mut o, p.l3_off + 12, p.l3_off + 16, 4),
                ETH_P_IPV6 => swap(&mut o, p.l3_off + 8, p.l3_off + 24, 16),
                _ => return same(c, PASS),
            }
            swap(&mut o, 0, 6, 6);
            (TX, o)
        });
    });
}

#[test]
fn icmp_echo() {
    for_both("icmp_echo", |prog, fl| {
        let (_k, cases) = run_set(prog, fl);
        let mut replies = 0;
        check(prog.file, fl, &cases, |c| {
            let p = &c.p;
            let echo4 = p.eth_proto == ETH_P_IP
                && p.class() == Class::Icmp
                && c.input[p.l4_off..p.l4_off + 2] == [8, 0];
            let echo6 = p.eth_proto == ETH_P_IPV6
                && p.class() == Class::Icmpv6
                && c.input[p.l4_off..p.l4_off + 2] == [128, 0];
            if !ok(p) || !(echo4 || echo6) {
                return same(c, PASS);
            }
            let mut o = c.input.clone();
            swap(&mut o, 0, 6, 6);
            if echo4 {
                swap(&mut o, p.l3_off + 12, p.l3_off + 16, 4);
                o[p.l4_off] = 0;
            } else {
                swap(&mut o, p.l3_off + 8, p.l3_off + 24, 16);
                o[p.l4_off] = 129;
            }
            // the checksum: computed from scratch (the program updates it incrementally)
            o[p.l4_off + 2..p.l4_off + 4].copy_from_slice(&[0, 0]);
            let l4 = &o[p.l4_off..];
            let init = if echo6 {
                pseudo_sum(&o, p, l4.len())
            } else {
                0
            };
            let ck = checksum(l4, init);
            o[p.l4_off + 2..p.l4_off + 4].copy_from_slice(&ck.to_be_bytes());
            (TX, o)
        });
        for c in &cases {
            replies += (c.run.retval == TX) as u32;
        }
        assert_eq!(replies, 2, "one ICMP and one ICMPv6 echo reply ({fl})");
    });
}

#[test]
fn vlan_filter() {
    for_both("vlan_filter", |prog, fl| {
        let (k, cases) = run_set(prog, fl);
        check(prog.file, fl, &cases, |c| {
            let i = &c.input;
            let v = match u16::from_be_bytes([i[12], i[13]]) {
                0x8100 | 0x88a8 if i.len() < 18 => ABORTED,
                0x8100 | 0x88a8 if u16::from_be_bytes([i[14], i[15]]) & 0xfff == 100 => PASS,
                0x8100 | 0x88a8 => DROP,
                _ => PASS,
            };
            same(c, v)
        });
        let n = cases
            .iter()
            .filter(|c| c.run.retval == PASS && c.p.vlans > 0)
            .count() as u64;
        assert_eq!(n, 1);
        assert_eq!(
            u64_at(&k.lookup("allowed_vids", &key32(100)).unwrap().unwrap(), 0),
            n,
            "allowed_vids ({fl})"
        );
    });
}

#[test]
fn ktime_stamp() {
    for_both("ktime_stamp", |prog, fl| {
        let (k, cases) = run_set(prog, fl);
        check(prog.file, fl, &cases, |c| same(c, PASS));
        assert_eq!(u64_array(&k, "pkt_count", 1), [cases.len() as u64]);
        assert!(u64_array(&k, "stamps", 1)[0] > 0);
    });
}

#[test]
fn tcp_flags() {
    for_both("tcp_flags", |prog, fl| {
        let (k, cases) = run_set(prog, fl);
        check(prog.file, fl, &cases, |c| {
            let v = if !ok(&c.p) {
                ABORTED
            } else if c.p.l4_proto != 6 {
                PASS
            } else if c.p.tcp_flags & 0x05 != 0 {
                DROP
            } else {
                PASS
            };
            same(c, v)
        });
        let mut want = [0u64; 8];
        for c in cases.iter().filter(|c| ok(&c.p) && c.p.l4_proto == 6) {
            for (bit, w) in want.iter_mut().enumerate() {
                *w += ((c.p.tcp_flags >> bit) & 1) as u64;
            }
        }
        assert_eq!(u64_array(&k, "flag_counts", 8), want, "flag_counts ({fl})");
    });
}

/// The model of signed_ops.c: its 14 results for frame `p`, or None (too short).
fn signed_model(p: &[u8]) -> Option<[i64; 14]> {
    if p.len() < 30 {
        return None;
    }
    let a8 = p[14] as i8 as i64;
    let a16 = i16::from_ne_bytes([p[16], p[17]]) as i64;
    let a32 = i32::from_ne_bytes(p[18..22].try_into().unwrap()) as i64;
    let mut d = p[22] as i8 as i64;
    if d == 0 || d == -1 {
        d = -7;
    }
    let len = p.len() as u64;
    Some([
        a8,
        a16,
        a32,
        (a32 * 1000003).wrapping_div(d),
        (a32 * 999983).wrapping_rem(d),
        (a32 as i32).wrapping_div(d as i32) as i64,
        ((a32 as i32) ^ 0x5a5a).wrapping_rem(d as i32) as i64,
        a16.wrapping_div(d * 3),
        ((len << 58) as i64) >> 58,
        ((((a8 as i32 as u32) << 24) as i32) >> 28) as i64,
        u32::from_be_bytes(p[14..18].try_into().unwrap()) as i64,
        u64::from_be_bytes(p[14..22].try_into().unwrap()) as i64,
        ((len as u32).wrapping_mul(2731) as i16) as i64,
        ((a16 >> 3) as i8) as i64,
    ])
}

#[test]
fn signed_ops() {
    for_both("signed_ops", |prog, fl| {
        let k = KernelObject::load(prog, fl).unwrap();
        let mut last = [0i64; 14];
        let mut negative = 0;
        for (name, input) in packets::fixed_set() {
            if input.len() < packets::MIN_TEST_RUN_LEN {
                continue;
            }
            let r = k.run(prog.prog, &input).unwrap();
            let want = signed_model(&input);
            if let Some(w) = want {
                last = w;
                negative += (w[3] < 0) as u32;
            }
            let v = if want.is_some_and(|w| w[3] < 0) {
                DROP
            } else {
                PASS
            };
            assert_eq!((r.retval, &r.data), (v, &input), "{name} ({fl})");
            let bss = section(&k, ".bss");
            let got: Vec<i64> = (0..14).map(|i| u64_at(&bss, i * 8) as i64).collect();
            assert_eq!(got, last, "{name}: .bss ({fl})");
        }
        assert!(negative > 0 && negative < 30, "both verdicts are seen");
    });
}

/// Every corpus program has a test above (keep the list in sync).
#[test]
fn every_corpus_program_is_checked() {
    let checked = [
        "pass_all",
        "verdict_by_proto",
        "verdict_by_len",
        "class_counters",
        "flow_hash",
        "percpu_hash",
        "lru_last_len",
        "lpm_acl",
        "devmap_redirect",
        "tail_calls",
        "subprog_tail_calls",
        "map_in_map",
        "ringbuf_events",
        "atomics",
        "bpf2bpf_calls",
        "global_data",
        "payload_scan",
        "vlan_push_pop",
        "adjust_tail",
        "adjust_meta",
        "csum_rewrite",
        "mac_swap_tx",
        "icmp_echo",
        "vlan_filter",
        "ktime_stamp",
        "tcp_flags",
        "signed_ops",
    ];
    for p in corpus::all() {
        assert!(checked.contains(&p.file), "{} has no kernel test", p.file);
    }
}
