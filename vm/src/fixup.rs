//! Load-time fixups of helper calls whose arguments are known, as the kernel's
//! `do_misc_fixups`: a `bpf_map_lookup_elem` whose map is put in r1 by `ld_imm64`
//! in the same basic block becomes [`op::MAP_LOOKUP`], which the interpreter and the
//! JIT run without the generic helper path; on arrays it is an address computation
//! (the kernel's `map_gen_lookup`), which the JIT emits inline.
//!
//! Only straight-line code before the call is looked at: a block entry (jump target,
//! subprogram start) or a call stops the search, and the call stays a helper call.

use crate::insn::{BPF_CMPXCHG, BPF_FETCH, BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_IDX, MAX_BPF_STACK};
use crate::interp::{op, Op};

/// `BPF_FUNC_map_lookup_elem`.
const MAP_LOOKUP_ELEM: u32 = 1;

/// [`op::MAP_LOOKUP`] `aux` bit: the key is `r10 + k` inside the frame (no check).
pub(crate) const KEY_ON_STACK: u8 = 1;

/// Registers `o` writes (bit per register), or `None` when the search must stop
/// there (calls, exits, LD_ABS/IND, anything not understood).
fn writes(o: &Op) -> Option<u16> {
    let dst = 1u16 << (o.dst & 15);
    match o.code {
        op::TRAP | op::CALL_LOCAL | op::MAP_LOOKUP => return None,
        op::MOV_ADD_K | op::MOV_ADD_X | op::MOVSX64 | op::MOVSX32 | op::CTX_LD => return Some(dst),
        0x18 => return Some(dst),
        _ => {}
    }
    match o.code & 7 {
        // LDX (incl. the proven stack loads).
        0x01 => Some(dst),
        // ST, STX: only atomics write registers.
        0x02 | 0x03 => {
            if o.code & 0xe0 != 0xc0 {
                return Some(0);
            }
            let imm = o.imm as i32;
            Some(if imm == BPF_CMPXCHG {
                1
            } else if imm & BPF_FETCH != 0 {
                1 << (o.src & 15)
            } else {
                0
            })
        }
        0x04 | 0x07 => Some(dst),
        // Conditional jumps and ja write nothing; calls and exit end the search.
        0x05 | 0x06 => match o.code & 0xf0 {
            0x80 | 0x90 => None,
            _ => Some(0),
        },
        _ => None,
    }
}

/// Rewrite resolvable `bpf_map_lookup_elem` calls in `ops`. `map_handles[i]` is the
/// value `ld_imm64` puts in a register for map `i`; `key_sizes[i]` its key size.
pub(crate) fn map_lookups(
    ops: &mut [Op],
    helper_ids: &[u32],
    map_handles: &[u64],
    key_sizes: &[u32],
    subprog_starts: &[usize],
) {
    let n = ops.len();
    let mut entry = vec![false; n + 1];
    for &s in subprog_starts {
        if s < n {
            entry[s] = true;
        }
    }
    for o in ops.iter() {
        let is_jump = matches!(o.code & 7, 0x05 | 0x06)
            && !matches!(o.code & 0xf0, 0x80 | 0x90)
            && !matches!(o.code, op::MOV_ADD_X | op::TRAP);
        if (is_jump || o.code == op::CALL_LOCAL) && (0..n as i64).contains(&(o.off as i64)) {
            entry[o.off as usize] = true;
        }
    }
    for i in 0..n {
        let o = ops[i];
        if o.code != 0x85 || helper_ids.get(o.imm as usize) != Some(&MAP_LOOKUP_ELEM) {
            continue;
        }
        let (mut map, mut key) = (None::<Option<usize>>, None::<Option<i64>>);
        let mut j = i;
        while (map.is_none() || key.is_none()) && !entry[j] && j > 0 {
            j -= 1;
            // The second half of an ld_imm64 belongs to the op before it.
            if ops[j].code == op::TRAP && j > 0 && ops[j - 1].code == 0x18 {
                j -= 1;
            }
            let p = ops[j];
            let Some(w) = writes(&p) else { break };
            if map.is_none() && w & 2 != 0 {
                let pseudo =
                    p.code == 0x18 && matches!(p.src, BPF_PSEUDO_MAP_FD | BPF_PSEUDO_MAP_IDX);
                map = Some(
                    pseudo
                        .then(|| map_handles.iter().position(|&h| h == p.imm as u64))
                        .flatten(),
                );
            }
            if key.is_none() && w & 4 != 0 {
                key = Some(stack_offset(ops, j, &entry));
            }
        }
        let Some(Some(m)) = map else { continue };
        let ks = key_sizes[m] as i64;
        let on_stack = matches!(key, Some(Some(k)) if k >= -(MAX_BPF_STACK as i64) && k + ks <= 0);
        ops[i] = Op {
            code: op::MAP_LOOKUP,
            aux: if on_stack { KEY_ON_STACK } else { 0 },
            imm: m as i64,
            ..o
        };
    }
}

/// `k` when op `j` (the last write to r2 before the call) leaves r2 = r10 + k.
fn stack_offset(ops: &[Op], j: usize, entry: &[bool]) -> Option<i64> {
    let p = ops[j];
    if p.code == op::MOV_ADD_K && p.dst == 2 && p.src == 10 {
        return Some(p.imm);
    }
    // The add half of a fused `r2 = r10; r2 += k` (reached by falling through).
    if p.code == 0x07 && p.dst == 2 && j > 0 && !entry[j] {
        let q = ops[j - 1];
        if q.code == op::MOV_ADD_K && q.dst == 2 && q.src == 10 && q.imm == p.imm {
            return Some(p.imm);
        }
    }
    if p.code == 0xbf && p.dst == 2 && p.src == 10 {
        return Some(0);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(code: u8, dst: u8, src: u8, off: i32, imm: i64) -> Op {
        Op {
            code,
            dst,
            src,
            aux: 0,
            off,
            imm,
        }
    }

    const H: u64 = 0xdead_0000;

    fn lookup_prog(between: Vec<Op>) -> Vec<Op> {
        let mut v = vec![
            o(0x18, 1, BPF_PSEUDO_MAP_FD, 0, H as i64),
            o(op::TRAP, 0, 0, 0, 0),
        ];
        v.extend(between);
        v.extend([o(0x85, 0, 0, 0, 0), o(0x95, 0, 0, 0, 0)]);
        v
    }

    fn fix(ops: &mut [Op], starts: &[usize]) {
        map_lookups(ops, &[1], &[H], &[4], starts);
    }

    #[test]
    fn resolves_map_and_stack_key() {
        let mut p = lookup_prog(vec![o(op::MOV_ADD_K, 2, 10, 0, -4), o(0x07, 2, 0, 0, -4)]);
        fix(&mut p, &[0]);
        assert_eq!(p[4].code, op::MAP_LOOKUP);
        assert_eq!(p[4].imm, 0);
        assert_eq!(p[4].aux, KEY_ON_STACK);
    }

    #[test]
    fn key_not_on_stack_is_checked() {
        let mut p = lookup_prog(vec![o(0xbf, 2, 6, 0, 0)]);
        fix(&mut p, &[0]);
        assert_eq!(p[3].code, op::MAP_LOOKUP);
        assert_eq!(p[3].aux, 0);
        // A key reaching past the frame top is not proven either.
        let mut p = lookup_prog(vec![o(op::MOV_ADD_K, 2, 10, 0, -2), o(0x07, 2, 0, 0, -2)]);
        fix(&mut p, &[0]);
        assert_eq!(p[4].aux, 0);
    }

    #[test]
    fn r1_overwritten_or_block_entry_stays_a_call() {
        // r1 changed after the ld_imm64.
        let mut p = lookup_prog(vec![o(0xb7, 1, 0, 0, 5)]);
        fix(&mut p, &[0]);
        assert_eq!(p[3].code, 0x85);
        // A jump lands between the ld_imm64 and the call.
        let mut p = lookup_prog(vec![o(0xbf, 2, 10, 0, 0)]);
        p.push(o(0x05, 0, 0, 2, 0));
        fix(&mut p, &[0]);
        assert_eq!(p[3].code, 0x85);
        // A helper call in between (clobbers r1..r5 in the kernel's ABI).
        let mut p = lookup_prog(vec![o(0x85, 0, 0, 0, 0)]);
        fix(&mut p, &[0]);
        assert_eq!(p[3].code, 0x85);
        assert_eq!(p[2].code, op::MAP_LOOKUP);
    }

    #[test]
    fn constant_in_r1_is_not_a_map() {
        let mut p = lookup_prog(vec![]);
        p[0].src = 0;
        fix(&mut p, &[0]);
        assert_eq!(p[2].code, 0x85);
    }
}
