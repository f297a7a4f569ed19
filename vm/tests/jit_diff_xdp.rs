//! Differential test of the JIT against the interpreter on seeded random XDP
//! programs that use maps: lookups the load-time fixup resolves (ARRAY and
//! PERCPU_ARRAY inlined by the JIT, HASH and LRU_HASH through the direct call), keys
//! on the stack and in the packet, then loads, stores and atomics through the value
//! (some past its end), updates and deletes; packet loads and stores (some past
//! data_end); stack accesses through copies of r10 (proven by the type analysis).
//! Each program runs on fresh maps on each back end: the verdict, the packet and
//! every map's contents must be identical.

use std::sync::Arc;

use bpftime_vm::insn::Insn;
use bpftime_vm::maps::{self, map_type, Map, MapAttr};
use bpftime_vm::program::{prog_type, MapResolver, ProgLoadSpec, Program};
use bpftime_vm::run::NoHost;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

fn i(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn::new(code, dst, src, off, imm)
}

/// (type, value size, max entries, prefilled keys): fd 10 + index.
const MAPS: [(u32, u32, u32, u32); 4] = [
    (map_type::ARRAY, 12, 4, 0),
    (map_type::PERCPU_ARRAY, 8, 2, 0),
    (map_type::HASH, 12, 8, 3),
    (map_type::LRU_HASH, 8, 4, 2),
];

struct Fds(Vec<Arc<dyn Map>>);
impl MapResolver for Fds {
    fn map_by_fd(&self, fd: i32) -> Option<Arc<dyn Map>> {
        self.0.get(usize::try_from(fd - 10).ok()?).cloned()
    }
    fn fd_array(&self, idx: u32) -> Option<Arc<dyn Map>> {
        self.0.get(idx as usize).cloned()
    }
}

fn fresh_maps() -> Fds {
    Fds(MAPS
        .iter()
        .map(|&(t, vs, n, prefill)| {
            let m = maps::create(&MapAttr {
                map_type: t,
                key_size: 4,
                value_size: vs,
                max_entries: n,
                ..Default::default()
            })
            .expect("map");
            let sys_vs = m.sys_value_size();
            for k in 0..prefill {
                let v: Vec<u8> = (0..sys_vs).map(|b| (k as usize * 31 + b) as u8).collect();
                m.sys_update(&k.to_ne_bytes(), &v, 0).expect("prefill");
            }
            m
        })
        .collect())
}

/// Every map's contents, key by key (iteration order is not compared).
fn dump(fds: &Fds) -> Vec<(usize, u32, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    for (mi, m) in fds.0.iter().enumerate() {
        for k in 0..MAPS[mi].2 + 3 {
            let mut v = vec![0u8; m.sys_value_size()];
            let got = m.sys_lookup(&k.to_ne_bytes(), &mut v, 0).ok().map(|_| v);
            out.push((mi, k, got));
        }
    }
    out
}

/// `r1 += (r9 & 0)`: a zero the verifier sees as any number (clobbers r3).
fn unknown_zero_into_r1() -> [Insn; 3] {
    [
        i(0xbf, 3, 9, 0, 0),
        i(0x57, 3, 0, 0, 0),
        i(0x0f, 1, 3, 0, 0),
    ]
}

/// r6 = ctx, r7 = data, r8 = data_end (64 bytes proven), r9 = accumulator; stack
/// r10-64..-8 zeroed.
fn snippet(r: &mut Rng, n: usize) -> Vec<Insn> {
    let size = r.pick(&[0x00u8, 0x08, 0x10, 0x18]);
    let bytes = [4i64, 2, 1, 8][(size >> 3) as usize];
    match r.below(10) {
        0 => vec![i(
            r.pick(&[0x07u8, 0xa7, 0x27, 0x47]),
            9,
            0,
            0,
            r.below(1000) as i32 + 1,
        )],
        1 | 2 => {
            // packet load (sometimes past data_end, through a variable offset the
            // verifier does not follow: checked at run time), added to r9
            let past = r.below(16) == 0;
            let off = if past {
                60 + r.below(12) as i32
            } else {
                r.below((64 - bytes + 1) as u64) as i32
            };
            let mut v = vec![i(0xbf, 1, 7, 0, 0)];
            if past {
                v.extend(unknown_zero_into_r1());
            }
            v.extend([
                i(0x07, 1, 0, 0, off),
                i(0x61 | size, 2, 1, 0, 0),
                i(0x0f, 9, 2, 0, 0),
            ]);
            v
        }
        3 => {
            // packet store (sometimes past data_end, as for loads)
            let past = r.below(16) == 0;
            let off = if past {
                60 + r.below(8) as i16
            } else {
                r.below((64 - bytes + 1) as u64) as i16
            };
            let mut v = vec![i(0xbf, 1, 7, 0, 0)];
            if past {
                v.extend(unknown_zero_into_r1());
            }
            v.push(i(0x62 | size, 1, 0, off, r.next() as i32));
            v
        }
        4 => {
            // stack through a copy of r10 at a constant offset (typed stack access)
            let k = (r.below(8) as i64 + 1) * 8;
            let inner = -(r.below((8 - bytes + 1) as u64) as i64);
            let off = (inner / bytes) * bytes;
            vec![
                i(0xbf, 3, 10, 0, 0),
                i(0x07, 3, 0, 0, -(k as i32)),
                i(0x63 | size, 3, 9, off as i16, 0),
                i(0x61 | size, 4, 3, off as i16, 0),
                i(0xaf, 9, 4, 0, 0),
            ]
        }
        5..=7 => {
            // lookup, then an access through the value (maybe past it)
            let m = r.below(MAPS.len() as u64) as i32;
            let (_, vs, max, _) = MAPS[m as usize];
            let key = r.below(max as u64 + 2) as i32;
            let mut v = Vec::new();
            let from_packet = r.below(4) == 0;
            if from_packet {
                // the key is packet bytes 4..8 (the packet holds small numbers there)
                v.extend([i(0xbf, 2, 7, 0, 0), i(0x07, 2, 0, 0, 4)]);
            } else {
                v.extend([
                    i(0x62, 10, 0, -4, key),
                    i(0xbf, 2, 10, 0, 0),
                    i(0x07, 2, 0, 0, -4),
                ]);
            }
            v.extend([
                i(0x18, 1, 1, 0, 10 + m),
                i(0, 0, 0, 0, 0),
                i(0x85, 0, 0, 0, 1),
            ]);
            let past = r.below(16) == 0;
            let off = if past {
                vs as i64 + r.below(8) as i64 - bytes + 1
            } else {
                (r.below(((vs as i64 - bytes) / bytes + 1) as u64) as i64) * bytes
            };
            let access = match r.below(3) {
                0 => vec![i(0x61 | size, 2, 0, off as i16, 0), i(0x0f, 9, 2, 0, 0)],
                1 => vec![i(0x63 | size, 0, 9, off as i16, 0)],
                _ => {
                    let w = r.below(2) == 0;
                    let n = if w { 8 } else { 4 };
                    let aoff = ((off / n) * n).min(vs as i64 - n).max(0);
                    vec![i(if w { 0xdb } else { 0xc3 }, 0, 9, aoff as i16, 0x01)]
                }
            };
            v.push(i(0x15, 0, 0, access.len() as i16, 0));
            v.extend(access);
            v
        }
        8 => {
            // update from the stack (value at r10-32), flags ANY/NOEXIST/EXIST
            let m = r.below(MAPS.len() as u64) as i32;
            let key = r.below(MAPS[m as usize].2 as u64 + 2) as i32;
            vec![
                i(0x62, 10, 0, -4, key),
                i(0x7b, 10, 9, -32, 0),
                i(0x18, 1, 1, 0, 10 + m),
                i(0, 0, 0, 0, 0),
                i(0xbf, 2, 10, 0, 0),
                i(0x07, 2, 0, 0, -4),
                i(0xbf, 3, 10, 0, 0),
                i(0x07, 3, 0, 0, -32),
                i(0xb7, 4, 0, 0, r.below(3) as i32),
                i(0x85, 0, 0, 0, 2),
                i(0x0f, 9, 0, 0, 0),
            ]
        }
        _ => {
            // delete from a hash map
            let m = r.pick(&[2i32, 3]);
            let key = r.below(MAPS[m as usize].2 as u64 + 2) as i32;
            let _ = n;
            vec![
                i(0x62, 10, 0, -4, key),
                i(0x18, 1, 1, 0, 10 + m),
                i(0, 0, 0, 0, 0),
                i(0xbf, 2, 10, 0, 0),
                i(0x07, 2, 0, 0, -4),
                i(0x85, 0, 0, 0, 3),
                i(0x0f, 9, 0, 0, 0),
            ]
        }
    }
}

fn program(r: &mut Rng) -> Vec<Insn> {
    let mut p = vec![
        i(0xbf, 6, 1, 0, 0),
        i(0x61, 7, 6, 0, 0),
        i(0x61, 8, 6, 4, 0),
        i(0xb7, 9, 0, 0, 0),
        // if (data + 64 > data_end) goto out (patched below)
        i(0xbf, 1, 7, 0, 0),
        i(0x07, 1, 0, 0, 64),
        i(0x2d, 1, 8, 0, 0),
        i(0xb7, 1, 0, 0, 0),
    ];
    let check = p.len() - 2;
    for k in 1..=8 {
        p.push(i(0x7b, 10, 1, -8 * k, 0));
    }
    let n = 4 + r.below(16) as usize;
    for k in 0..n {
        p.extend(snippet(r, k));
    }
    p.extend([
        i(0xbf, 0, 9, 0, 0),
        i(0x57, 0, 0, 0, 0xffff),
        i(0x95, 0, 0, 0, 0),
    ]);
    // out: return XDP_DROP
    p[check] = i(0x2d, 1, 8, (p.len() - check - 1) as i16, 0);
    p.extend([i(0xb7, 0, 0, 0, 1), i(0x95, 0, 0, 0, 0)]);
    p
}

fn load(insns: &[Insn], fds: &Fds, jit: bool) -> Result<Program, String> {
    let spec = ProgLoadSpec {
        prog_type: prog_type::XDP,
        expected_attach_type: 37,
        insns: bpftime_vm::insn::encode(insns),
        license: "GPL".into(),
        ..Default::default()
    };
    bpftime_vm::jit::scoped(jit, || Program::load(spec, fds)).map_err(|e| e.to_string())
}

#[test]
fn jit_matches_interpreter_on_random_xdp_map_programs() {
    let mut r = Rng(0x005e_ed0f_ba5e_2026);
    let count: u32 = std::env::var("JIT_DIFF_PROGRAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 300 } else { 2000 });
    let (mut refused, mut aborted) = (0u32, 0u32);
    for n in 0..count {
        let insns = program(&mut r);
        let mut pkt = vec![0u8; 64];
        for (k, b) in pkt.iter_mut().enumerate() {
            *b = if (4..8).contains(&k) {
                [0u8, 1, 2, 9][k - 4] * (r.below(2) as u8)
            } else {
                r.next() as u8
            };
        }
        let mut outs = Vec::new();
        for jit in [false, true] {
            let fds = fresh_maps();
            let p = match load(&insns, &fds, jit) {
                Ok(p) => p,
                Err(e) => {
                    assert!(!jit, "loads on the interpreter but not the JIT: {e}");
                    break;
                }
            };
            assert_eq!(p.is_jitted(), jit);
            let out = p.test_run_xdp(&pkt, None, 1, 0, &NoHost).expect("run");
            outs.push((out.retval, out.data_out, dump(&fds)));
        }
        if outs.len() < 2 {
            refused += 1;
            continue;
        }
        aborted += (outs[0].0 == 0) as u32;
        assert!(
            outs[0] == outs[1],
            "program {n} differs (interpreter, then jit):\n{:?}\n{:?}\n{}",
            (outs[0].0, &outs[0].1),
            (outs[1].0, &outs[1].1),
            bpftime_vm::insn::disasm_all(&insns)
        );
    }
    println!(
        "xdp map differential: {count} programs, {refused} refused, {aborted} returned 0 \
         (aborted, or the accumulator was 0)"
    );
    assert!(
        refused < count / 20,
        "too many refused programs ({refused})"
    );
    assert!(
        aborted < count * 2 / 3,
        "too many runs returned 0 ({aborted})"
    );
}
