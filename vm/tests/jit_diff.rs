//! Differential test of the JIT against the interpreter (the reference): seeded
//! random valid programs (ALU/ALU64 with every operation and width, div/mod by zero
//! and INT_MIN / -1, shifts past the width, movsx, bswap/be/le, loads (incl. ldsx),
//! stores and atomics of all sizes on memory and the stack, some out of bounds,
//! forward JMP/JMP32 branches, bounded loops, bpf-to-bpf calls) run on both back
//! ends: r0 or the fault, and the memory afterwards, must be identical.

use bpftime_vm::insn::Insn;
use bpftime_vm::program::Program;
use bpftime_vm::run::{Fault, NoHost};

/// xorshift64*, seeded: reproducible programs.
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

const MEM: i64 = 64;
/// Registers the body may write (r9 holds the memory base, r10 the frame).
const DSTS: u8 = 9;

fn i(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn::new(code, dst, src, off, imm)
}

fn interesting(r: &mut Rng) -> u64 {
    match r.below(8) {
        0 => 0,
        1 => u64::MAX,
        2 => i64::MIN as u64,
        3 => i32::MIN as u32 as u64,
        4 => 1 << r.below(64),
        5 => r.below(70),
        6 => (r.next() as i32) as i64 as u64,
        _ => r.next(),
    }
}

fn imm(r: &mut Rng) -> i32 {
    match r.below(6) {
        0 => 0,
        1 => -1,
        2 => i32::MIN,
        3 => r.below(70) as i32,
        _ => r.next() as i32,
    }
}

/// One body instruction (never a jump; jumps are placed by `program`).
fn body_insn(r: &mut Rng) -> Vec<Insn> {
    let d = r.below(DSTS as u64) as u8;
    let s = r.below(DSTS as u64) as u8;
    match r.below(20) {
        0..=7 => {
            let class = if r.below(2) == 0 { 0x07 } else { 0x04 };
            let op = r.pick(&[
                0x00u8, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0,
            ]);
            let x = if op == 0x80 { 0 } else { r.pick(&[0u8, 8]) };
            let off = if matches!(op, 0x30 | 0x90) {
                r.below(2) as i16
            } else {
                0
            };
            if x == 8 {
                vec![i(class | op | x, d, s, off, 0)]
            } else if op == 0x80 {
                vec![i(class | op, d, 0, 0, 0)]
            } else {
                vec![i(class | op, d, 0, off, imm(r))]
            }
        }
        8 => {
            // movsx
            if r.below(2) == 0 {
                vec![i(0xbf, d, s, r.pick(&[8, 16, 32]), 0)]
            } else {
                vec![i(0xbc, d, s, r.pick(&[8, 16]), 0)]
            }
        }
        9 => {
            // le / be / bswap
            let code = r.pick(&[0xd4u8, 0xdc, 0xd7]);
            vec![i(code, d, 0, 0, r.pick(&[16, 32, 64]))]
        }
        10..=12 => {
            // load from memory (sometimes out of bounds), maybe sign-extending
            let size = r.pick(&[0x00u8, 0x08, 0x10, 0x18]);
            let n = [4, 2, 1, 8][(size >> 3) as usize];
            let off = if r.below(30) == 0 {
                r.pick(&[-1, -8, MEM - n + 1, MEM])
            } else {
                r.below((MEM - n + 1) as u64) as i64
            };
            let mode = if size != 0x18 && r.below(3) == 0 {
                0x80
            } else {
                0x60
            };
            vec![i(0x01 | mode | size, d, 9, off as i16, 0)]
        }
        13..=14 => {
            // store to memory (reg or imm)
            let size = r.pick(&[0x00u8, 0x08, 0x10, 0x18]);
            let n = [4, 2, 1, 8][(size >> 3) as usize];
            let off = if r.below(30) == 0 {
                r.pick(&[-1, MEM - n + 1, MEM])
            } else {
                r.below((MEM - n + 1) as u64) as i64
            };
            if r.below(2) == 0 {
                vec![i(0x63 | size, 9, s, off as i16, 0)]
            } else {
                vec![i(0x62 | size, 9, 0, off as i16, imm(r))]
            }
        }
        15..=16 => {
            // stack: 8 initialised slots at r10-64..-8
            let size = r.pick(&[0x00u8, 0x08, 0x10, 0x18]);
            let n = [4, 2, 1, 8][(size >> 3) as usize];
            let off = -(r.below((64 - n + 1) as u64) as i64) - n;
            match r.below(3) {
                0 => vec![i(0x61 | size, d, 10, off as i16, 0)],
                1 => vec![i(0x63 | size, 10, s, off as i16, 0)],
                _ => {
                    // through a copied frame pointer: checked access
                    vec![i(0xbf, d, 10, 0, 0), i(0x61 | size, d, d, off as i16, 0)]
                }
            }
        }
        _ => {
            // atomics on memory (sometimes misaligned)
            let w = r.below(2) == 0;
            let n = if w { 8 } else { 4 };
            let mut off = (r.below((MEM / n) as u64) as i64) * n;
            if r.below(20) == 0 {
                off += 1;
            }
            let op = r.pick(&[0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1]);
            vec![i(if w { 0xdb } else { 0xc3 }, 9, s, off as i16, op)]
        }
    }
}

/// A random program: prologue (registers, stack), body with forward branches, an
/// optional bounded loop and subprogram call, exit.
fn program(r: &mut Rng) -> Vec<Insn> {
    let mut p = vec![i(0xbf, 9, 1, 0, 0)];
    for k in 0..8 {
        p.push(i(0x7a, 10, 0, -8 * (k + 1), imm(r)));
    }
    for reg in 0..DSTS {
        let v = interesting(r);
        p.push(i(0x18, reg, 0, 0, v as u32 as i32));
        p.push(i(0, 0, 0, 0, (v >> 32) as u32 as i32));
    }
    let n = 10 + r.below(40) as usize;
    let mut body: Vec<Vec<Insn>> = (0..n).map(|_| body_insn(r)).collect();
    let with_call = r.below(6) == 0;
    // Forward branches: each unit may get a conditional jump to a later unit.
    // (instructions, units to skip when this unit is a jump)
    let mut units: Vec<(Vec<Insn>, Option<usize>)> = Vec::new();
    for (k, u) in body.drain(..).enumerate() {
        if r.below(4) == 0 {
            let class = if r.below(2) == 0 { 0x05 } else { 0x06 };
            // (no `ja`: the code it skips would be unreachable, which the loader refuses)
            let op = r.pick(&[
                0x10u8, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0,
            ]);
            let skip = 1 + r.below((n - k) as u64) as usize; // units to skip, resolved below
            let x = r.pick(&[0u8, 8]);
            let d = r.below(DSTS as u64) as u8;
            let s = r.below(DSTS as u64) as u8;
            let code = class | op | x;
            let ins = if x == 8 {
                i(code, d, s, skip as i16, 0)
            } else {
                i(code, d, 0, skip as i16, imm(r))
            };
            units.push((vec![ins], Some(skip)));
        }
        units.push((u, None));
    }
    // Resolve unit skips into instruction offsets (jump over `skip` following
    // non-jump units, clamped to the end of the body).
    let mut out: Vec<Insn> = Vec::new();
    let lens: Vec<usize> = units.iter().map(|u| u.0.len()).collect();
    for (idx, (u, skip)) in units.iter().enumerate() {
        let mut u = u.clone();
        if let Some(skip) = *skip {
            let end = (idx + 1 + skip).min(units.len());
            let insns: usize = lens[idx + 1..end].iter().sum();
            u[0].off = insns as i16;
        }
        out.extend(u);
    }
    p.extend(out);
    if r.below(5) == 0 {
        // a bounded loop: r8 counts down from a small number
        let cnt = r.below(20) as i32 + 1;
        p.push(i(0xb7, 8, 0, 0, cnt));
        let b = body_insn(r);
        let bl = b.len() as i16;
        let b: Vec<Insn> = b
            .into_iter()
            .map(|mut x| {
                if x.dst == 8 {
                    x.dst = 7;
                }
                if x.src == 8 {
                    x.src = 7;
                }
                x
            })
            .collect();
        p.extend(b);
        p.push(i(0x17, 8, 0, 0, 1));
        p.push(i(0x55, 8, 0, -(bl + 2), 0));
    }
    if with_call {
        p.push(i(0x85, 0, 1, 0, 1)); // call the subprogram after exit
        p.push(i(0x95, 0, 0, 0, 0));
        // subprogram: a few ALU ops on r0..r5, a stack store/load in its own frame
        p.push(i(0x7a, 10, 0, -8, 7));
        p.push(i(0x79, 1, 10, -8, 0));
        for _ in 0..3 {
            let mut x = body_insn(r);
            x.retain(|x| x.class() == 0x07 || x.class() == 0x04);
            p.extend(x);
        }
        p.push(i(0x0f, 0, 1, 0, 0));
    }
    p.push(i(0x95, 0, 0, 0, 0));
    p
}

fn run(p: &Program, mem: &mut [u8]) -> Result<u64, Fault> {
    p.run_raw(mem, &NoHost).map_err(|f| match f {
        Fault::OutOfBounds { kind, len, pc, .. } => Fault::OutOfBounds {
            kind,
            addr: 0,
            len,
            pc,
        },
        f => f,
    })
}

#[test]
fn jit_matches_interpreter_on_random_programs() {
    let mut r = Rng(0x00c0_ffee_1234_5678);
    let count: u32 = std::env::var("JIT_DIFF_PROGRAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        // Cranelift itself is slow unoptimised: fewer programs in debug builds.
        .unwrap_or(if cfg!(debug_assertions) { 1000 } else { 5000 });
    let (mut compiled, mut faults, mut refused) = (0u32, 0u32, 0u32);
    let only: Option<u32> = std::env::var("JIT_DIFF_ONLY")
        .ok()
        .and_then(|v| v.parse().ok());
    for n in 0..count {
        let insns = program(&mut r);
        let mut seed = vec![0u8; MEM as usize];
        for b in seed.iter_mut() {
            *b = r.next() as u8;
        }
        if only.is_some_and(|o| o != n) {
            continue;
        }
        let interp = bpftime_vm::jit::scoped(false, || Program::load_raw(&insns, |_| None));
        let interp = match interp {
            Ok(p) => p,
            Err(e) => {
                if refused < 3 {
                    println!(
                        "refused program ({n}): {e}\n{}",
                        bpftime_vm::insn::disasm_all(&insns)
                    );
                }
                refused += 1;
                continue;
            }
        };
        let jit = bpftime_vm::jit::scoped(true, || Program::load_raw(&insns, |_| None))
            .expect("loads on the JIT");
        assert!(!interp.is_jitted());
        if jit.is_jitted() {
            compiled += 1;
        }
        let (mut m1, mut m2) = (seed.clone(), seed);
        let a = run(&interp, &mut m1);
        let b = run(&jit, &mut m2);
        faults += a.is_err() as u32;
        assert_eq!(
            (a, &m1),
            (b, &m2),
            "program {n} differs (left interpreter, right jit):\n{}",
            bpftime_vm::insn::disasm_all(&insns)
        );
    }
    println!(
        "jit differential: {count} programs, {refused} refused at load, {compiled} compiled, \
         {faults} faulted, all identical"
    );
    assert!(
        refused < count / 20,
        "too many refused programs ({refused})"
    );
    assert_eq!(
        compiled,
        count - refused,
        "every loaded program must compile"
    );
    assert!(faults < count / 2, "too many faulting programs ({faults})");
}
