//! The abstract interpretation over the CFG: per instruction, what each register and
//! stack slot may hold on the paths reaching it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::insn::*;
use crate::maps::Map;

use super::state::*;
use super::*;

/// What an ld_imm64 of a map loads (see `Reg::array_ks`, `Reg::map`).
#[derive(Clone, Copy)]
pub(super) struct MapAt {
    pub(super) array_ks: u32,
    pub(super) map: u32,
    /// A direct value load (`BPF_PSEUDO_MAP_VALUE`): its map (index + 1) and offset.
    pub(super) value: Option<(u32, i32)>,
}

/// The abstract interpretation: for each instruction, the union of register kinds
/// reaching it.
pub(super) fn analyse(
    insns: &[Insn],
    map_at: &[MapAt],
    starts: &[usize],
    subprog_of: &dyn Fn(usize) -> usize,
    second_half: &[bool],
    mode: Mode,
    n: usize,
) -> Vec<Seen> {
    let mut seen = vec![Seen::default(); n];
    // Leaders: where states are stored.
    let mut leader = vec![false; n + 1];
    for &s in starts {
        leader[s] = true;
    }
    for i in 0..n {
        if second_half[i] {
            continue;
        }
        let insn = insns[i];
        if is_jump(insn) {
            leader[jump_target(i, insn) as usize] = true;
            leader[i + 1] = true;
        }
        if is_pseudo_call(insn) || insn.code == BPF_JMP | BPF_EXIT {
            leader[i + 1] = true;
        }
    }
    let mut states: Vec<Option<Box<State>>> = vec![None; n];
    let mut sub_ret: Vec<Option<Reg>> = vec![None; starts.len()];
    let mut callers: Vec<Vec<usize>> = vec![Vec::new(); starts.len()];
    // Worked in program order (lowest pc first): fewer revisits.
    let mut work: BinaryHeap<Reverse<usize>> = BinaryHeap::new();
    let mut queued = vec![false; n];
    let empty_slots = scalar_slots();

    let mut entry = State::new(&empty_slots);
    entry.regs[1] = Reg::kind(match mode {
        Mode::Raw => K_PTR,
        _ => K_CTX,
    });
    entry.regs[10] = Reg::stack(0);
    states[0] = Some(Box::new(entry));
    work.push(Reverse(0));
    queued[0] = true;
    // Callbacks (`ld_imm64 FUNC` targets: bpf_loop, for_each_map_elem) start with
    // unknown arguments in a fresh frame.
    for (i, &insn) in insns.iter().enumerate() {
        if !second_half[i] && is_pseudo_func(insn) {
            let t = (i as i64 + insn.imm as i64 + 1) as usize;
            if states[t].is_none() {
                let mut e = State::new(&empty_slots);
                for r in 1..=5 {
                    e.regs[r] = Reg::kind(K_SCALAR | K_PTR);
                }
                e.regs[10] = Reg::stack(0);
                states[t] = Some(Box::new(e));
                work.push(Reverse(t));
                queued[t] = true;
            }
        }
    }

    let push = |states: &mut Vec<Option<Box<State>>>,
                work: &mut BinaryHeap<Reverse<usize>>,
                queued: &mut Vec<bool>,
                t: usize,
                st: &State| {
        let changed = match &mut states[t] {
            Some(s) => s.join_from(st),
            None => {
                states[t] = Some(Box::new(st.clone()));
                true
            }
        };
        if changed && !queued[t] {
            queued[t] = true;
            work.push(Reverse(t));
        }
    };

    while let Some(Reverse(l)) = work.pop() {
        queued[l] = false;
        let mut s: State = (**states[l].as_ref().expect("queued leader has a state")).clone();
        let mut pc = l;
        loop {
            let insn = insns[pc];
            let sn = &mut seen[pc];
            (sn.pkt_lo, sn.pkt_hi) = if sn.visited {
                (sn.pkt_lo.min(s.pkt_lo), sn.pkt_hi.max(s.pkt_hi))
            } else {
                (s.pkt_lo, s.pkt_hi)
            };
            sn.visited = true;
            sn.lock |= s.lock;
            if sn.held_ref == 0 {
                sn.held_ref = s.refs.first().copied().unwrap_or(0);
            }
            for r in 0..11 {
                let m = s.regs[r].map;
                sn.map[r] = match (sn.k[r] == 0, sn.map[r]) {
                    (true, _) => m,
                    (false, old) if old == m => m,
                    _ => u32::MAX,
                };
                sn.k[r] |= s.regs[r].k;
                sn.tainted[r] |= s.regs[r].tainted;
                sn.pkt[r] = Some(match sn.pkt[r] {
                    None => s.regs[r].pkt,
                    Some(p) => p.join(s.regs[r].pkt),
                });
                let v = s.regs[r].val;
                sn.val[r] = Some(match sn.val[r] {
                    None => v,
                    Some(old) if old == v => v,
                    Some(_) => None,
                });
                if s.regs[r].k & K_NULL != 0 && s.regs[r].id != 0 {
                    sn.null_from[r] = s.regs[r].id;
                }
            }
            let class = insn.class();
            // Memory base offsets.
            if matches!(class, BPF_LDX | BPF_ST | BPF_STX) {
                let base = if class == BPF_LDX { insn.src } else { insn.dst };
                let b = s.regs[base as usize];
                if b.k & K_STACK != 0 {
                    match (b.off, sn.off_state) {
                        (Some(o), 0) => {
                            sn.off_state = 1;
                            sn.off = o;
                        }
                        (Some(o), 1) if sn.off == o => {}
                        _ => sn.off_state = 2,
                    }
                }
            }
            let mut next = pc + 1;
            let mut ends = false;
            match class {
                BPF_ALU | BPF_ALU64 => alu_transfer(&mut s, insn),
                BPF_LDX => {
                    let b = s.regs[insn.src as usize];
                    let size = size_bytes(insn.code);
                    let v = if b.k == K_STACK
                        && b.off.is_some()
                        && size == 8
                        && insn.code & 0xe0 == BPF_MEM
                    {
                        let o = b.off.unwrap_or(0) as i64 + insn.off as i64;
                        let idx = o + MAX_BPF_STACK as i64;
                        if o % 8 == 0 && (0..MAX_BPF_STACK as i64).contains(&idx) {
                            Reg {
                                tainted: true,
                                ..s.slots[(idx / 8) as usize]
                            }
                        } else {
                            Reg::kind(K_SCALAR)
                        }
                    } else if b.k == K_CTX {
                        match insn.off {
                            0 if matches!(mode, Mode::Xdp { .. }) => Reg {
                                pkt: Pkt::Data(0),
                                ..Reg::kind(K_PTR)
                            },
                            4 if matches!(mode, Mode::Xdp { .. }) => Reg {
                                pkt: Pkt::End,
                                ..Reg::kind(K_PTR)
                            },
                            0 | 4 | 8 => Reg::kind(K_PTR),
                            _ => Reg::kind(K_SCALAR),
                        }
                    } else if size == 8 && b.k & K_FRAME != 0 {
                        // A caller's spill, seen from a callee that does not track the
                        // caller's slots: a pointer there stays a pointer (run-time checked).
                        Reg::kind(K_SCALAR | K_PTR)
                    } else {
                        // Map values, the packet, an untracked stack offset: what was
                        // stored there is a number now, as the kernel types it; a
                        // pointer written into a map cannot be used as one again.
                        Reg::kind(K_SCALAR)
                    };
                    s.regs[insn.dst as usize] = v;
                }
                BPF_ST | BPF_STX => {
                    let b = s.regs[insn.dst as usize];
                    let size = size_bytes(insn.code) as i64;
                    if b.k & K_STACK != 0 {
                        match b.off {
                            Some(bo) => {
                                let o = bo as i64 + insn.off as i64;
                                let idx = o + MAX_BPF_STACK as i64;
                                let spill = class == BPF_STX
                                    && insn.code & 0xe0 == BPF_MEM
                                    && size == 8
                                    && b.k == K_STACK
                                    && o % 8 == 0
                                    && (0..MAX_BPF_STACK as i64).contains(&idx);
                                if spill {
                                    let v = s.regs[insn.src as usize];
                                    s.set_slot((idx / 8) as usize, v);
                                } else {
                                    s.kill_slots(o, size);
                                }
                                // Bytes of a narrower store of 0 read back as 0 (a
                                // full-width one is a spill, as in the kernel).
                                let zero = size < 8
                                    && insn.code & 0xe0 == BPF_MEM
                                    && if class == BPF_ST {
                                        insn.imm == 0
                                    } else {
                                        let v = s.regs[insn.src as usize];
                                        v.zero && v.k == K_SCALAR
                                    };
                                s.set_zero(o, size, zero);
                            }
                            None => {
                                s.kill_all_slots();
                                s.forget_zeros();
                            }
                        }
                    }
                    if class == BPF_STX && insn.code & 0xe0 == BPF_ATOMIC {
                        if insn.imm == BPF_CMPXCHG {
                            s.regs[0] = Reg::kind(K_SCALAR);
                        } else if insn.imm & BPF_FETCH != 0 {
                            s.regs[insn.src as usize] = Reg::kind(K_SCALAR);
                        }
                    }
                }
                BPF_LD => {
                    if insn.is_ld_imm64() {
                        s.regs[insn.dst as usize] = match insn.src {
                            0 if insn.imm == 0 && insns[pc + 1].imm == 0 => Reg::zero(),
                            0 => Reg::kind(K_SCALAR),
                            BPF_PSEUDO_MAP_FD | BPF_PSEUDO_MAP_IDX => Reg {
                                array_ks: map_at[pc].array_ks,
                                map: map_at[pc].map,
                                ..Reg::kind(K_MAP)
                            },
                            BPF_PSEUDO_FUNC => Reg::kind(K_FUNC),
                            _ => Reg {
                                val: map_at[pc].value,
                                ..Reg::kind(K_PTR)
                            },
                        };
                        next = pc + 2;
                    } else {
                        s.regs[0] = Reg::kind(K_SCALAR);
                        for r in 1..=5 {
                            s.regs[r] = Reg::kind(K_UNINIT);
                        }
                    }
                }
                _ => match insn.code & 0xf0 {
                    BPF_EXIT => {
                        let sp = subprog_of(pc);
                        if sp == 0 && seen[pc].leaked == 0 {
                            seen[pc].leaked = s.refs.first().copied().unwrap_or(0);
                        }
                        if sp != 0 {
                            let r = s.regs[0].cross_frame();
                            let nr = match sub_ret[sp] {
                                Some(o) => o.join(r),
                                None => r,
                            };
                            if sub_ret[sp] != Some(nr) {
                                sub_ret[sp] = Some(nr);
                                for &c in &callers[sp] {
                                    if !queued[c] {
                                        queued[c] = true;
                                        work.push(Reverse(c));
                                    }
                                }
                            }
                        }
                        ends = true;
                    }
                    BPF_CALL if insn.src == BPF_PSEUDO_CALL && insn.code & BPF_X == 0 => {
                        let target = (pc as i64 + insn.imm as i64 + 1) as usize;
                        let sp = subprog_of(target);
                        if !callers[sp].contains(&l) {
                            callers[sp].push(l);
                        }
                        let mut e = State::new(&empty_slots);
                        for r in 1..=5 {
                            e.regs[r] = s.regs[r].cross_frame();
                            // The callee may give back a record it is passed (its
                            // own references are not followed back to the caller).
                            let id = s.regs[r].id;
                            s.unhold(id);
                        }
                        e.regs[10] = Reg::stack(0);
                        push(&mut states, &mut work, &mut queued, target, &e);
                        if (1..=5).any(|r| s.regs[r].k & K_STACK != 0) {
                            s.forget_zeros();
                        }
                        // The callee may move the packet: what is proven is not kept
                        // (what some path proves is, as the kernel follows the callee).
                        s.distrust_pkt();
                        if let Some(ret) = sub_ret[sp] {
                            s.regs[0] = ret.cross_frame();
                            for r in 1..=5 {
                                s.regs[r] = Reg::kind(K_UNINIT);
                            }
                        } else {
                            ends = true; // the return site is reached once the callee returns
                        }
                    }
                    BPF_CALL => {
                        use crate::helpers::id;
                        let helper = if insn.src == 0 && insn.code & BPF_X == 0 {
                            insn.imm as u32
                        } else {
                            0
                        };
                        if matches!(
                            helper,
                            id::XDP_ADJUST_HEAD | id::XDP_ADJUST_META | id::XDP_ADJUST_TAIL
                        ) {
                            s.clear_pkt_pointers();
                        }
                        // A callback (bpf_loop, for_each_map_elem, ...) may move the packet.
                        if (1..=5).any(|r| s.regs[r].k & K_FUNC != 0)
                            || matches!(helper, id::LOOP | id::FOR_EACH_MAP_ELEM)
                        {
                            s.distrust_pkt();
                        }
                        match helper {
                            id::SPIN_LOCK => s.lock = LOCK_HELD,
                            id::SPIN_UNLOCK => s.lock = LOCK_FREE,
                            id::RINGBUF_SUBMIT | id::RINGBUF_DISCARD if s.regs[1].id != 0 => {
                                s.release(s.regs[1].id)
                            }
                            _ => {}
                        }
                        // Pointer-or-NULL from the helpers that return memory (a
                        // reserved record is a reference to give back); a number from
                        // all others.
                        let made = pc as u32 + 1;
                        let (r1, r2) = (s.regs[1], s.regs[2]);
                        let sure = helper == id::MAP_LOOKUP_ELEM
                            && r1.k == K_MAP
                            && r1.array_ks != 0
                            && r2.k == K_STACK
                            && r2
                                .off
                                .is_some_and(|o| s.all_zero(o as i64, r1.array_ks as i64));
                        // Helpers given stack memory may write it.
                        if !matches!(
                            helper,
                            id::MAP_LOOKUP_ELEM | id::MAP_UPDATE_ELEM | id::MAP_DELETE_ELEM
                        ) && (1..=5).any(|r| s.regs[r].k & K_STACK != 0)
                        {
                            s.forget_zeros();
                        }
                        // A lookup in a map known on every path points at offset 0
                        // of one of its values once a test against 0 passed (the map's
                        // kind decides, at rewrite, whether that proves anything). Not
                        // through a map read back from memory (the stack can be
                        // written behind the analysis: another map may be there), and
                        // not for the lookups taken to succeed (`sure`): the zeros of
                        // their key are stack contents too, and a NULL that was never
                        // tested would make every access through it unchecked.
                        let val = (helper == id::MAP_LOOKUP_ELEM
                            && r1.k == K_MAP
                            && r1.map != 0
                            && !r1.tainted)
                            .then_some((r1.map, 0));
                        s.regs[0] = match helper {
                            // An array's element 0 always exists (the kernel's
                            // constant-key lookups, for a key of zero bytes).
                            id::MAP_LOOKUP_ELEM if sure => {
                                s.retype(made, |v| Reg { id: 0, ..v });
                                Reg {
                                    id: made,
                                    sure_val: val,
                                    ..Reg::kind(K_PTR)
                                }
                            }
                            id::MAP_LOOKUP_ELEM | id::RINGBUF_RESERVE => {
                                // Copies left from an earlier pass (a loop) are
                                // another value now: they keep their kinds only.
                                s.retype(made, |v| Reg { id: 0, ..v });
                                if helper == id::RINGBUF_RESERVE {
                                    s.hold(made);
                                }
                                Reg {
                                    id: made,
                                    val,
                                    ..Reg::kind(K_NULL | K_PTR)
                                }
                            }
                            _ => Reg::kind(K_SCALAR),
                        };
                        for r in 1..=5 {
                            s.regs[r] = Reg::kind(K_UNINIT);
                        }
                    }
                    BPF_JA => {
                        let t = jump_target(pc, insn) as usize;
                        push(&mut states, &mut work, &mut queued, t, &s);
                        ends = true;
                    }
                    op @ (BPF_JEQ | BPF_JNE)
                        if class == BPF_JMP
                            && insn.code & BPF_X == 0
                            && insn.imm == 0
                            && s.regs[insn.dst as usize].k & K_NULL != 0 =>
                    {
                        let t = jump_target(pc, insn) as usize;
                        let mut taken = s.clone();
                        taken.refine_null(insn.dst as usize, op == BPF_JEQ);
                        push(&mut states, &mut work, &mut queued, t, &taken);
                        s.refine_null(insn.dst as usize, op == BPF_JNE);
                    }
                    // A lookup taken to succeed, tested against 0 all the same: on
                    // the edge where it is not NULL, it and its copies are a value.
                    // (The other edge keeps the state: the kernel never takes it.)
                    op @ (BPF_JEQ | BPF_JNE)
                        if class == BPF_JMP
                            && insn.code & BPF_X == 0
                            && insn.imm == 0
                            && s.regs[insn.dst as usize].sure_val.is_some() =>
                    {
                        let t = jump_target(pc, insn) as usize;
                        let mut taken = s.clone();
                        let not_null = if op == BPF_JNE { &mut taken } else { &mut s };
                        let d = not_null.regs[insn.dst as usize];
                        let tested = |v: Reg| Reg {
                            val: v.sure_val,
                            ..v
                        };
                        // Only a test of the value itself proves its copies (one read
                        // back from memory may not be what the others hold).
                        if d.id != 0 && !d.tainted {
                            not_null.retype(d.id, tested);
                        }
                        not_null.regs[insn.dst as usize] = tested(d);
                        push(&mut states, &mut work, &mut queued, t, &taken);
                    }
                    op @ (BPF_JGT | BPF_JGE | BPF_JLT | BPF_JLE)
                        if class == BPF_JMP && insn.code & BPF_X != 0 =>
                    {
                        let t = jump_target(pc, insn) as usize;
                        let mut taken = s.clone();
                        let (d, r) = (s.regs[insn.dst as usize], s.regs[insn.src as usize]);
                        if let Some((on_taken, range)) = pkt_compare(op, d, r) {
                            let trusted = !d.tainted && !r.tainted;
                            if on_taken {
                                taken.prove_pkt(range, trusted);
                            } else {
                                s.prove_pkt(range, trusted);
                            }
                        }
                        push(&mut states, &mut work, &mut queued, t, &taken);
                    }
                    _ => {
                        let t = jump_target(pc, insn) as usize;
                        push(&mut states, &mut work, &mut queued, t, &s);
                    }
                },
            }
            if ends {
                break;
            }
            if next >= n {
                break;
            }
            if leader[next] {
                push(&mut states, &mut work, &mut queued, next, &s);
                break;
            }
            pc = next;
        }
    }
    seen
}

/// A comparison of a packet pointer `data + off` with `data_end` (either order): on
/// which edge (the jump taken, or the fall-through) it shows bytes of the packet to
/// exist, and how many from `data`. As the kernel's `try_match_pkt_pointers`: where
/// the pointer is at most the end, `off` bytes; strictly below it, `off + 1` (its
/// `range_right_open`, not for `data + 0`); nothing for a negative offset.
pub(super) fn pkt_compare(op: u8, dst: Reg, src: Reg) -> Option<(bool, u32)> {
    let pkt = |r: Reg| match (r.k, r.pkt) {
        (K_PTR, Pkt::Data(off)) => Some(off),
        _ => None,
    };
    let end = |r: Reg| r.k == K_PTR && r.pkt == Pkt::End;
    // Normalise to "ptr OP end" (end OP ptr flips the operator).
    let (off, op) = match (pkt(dst), end(src), end(dst), pkt(src)) {
        (Some(off), true, _, _) => (off, op),
        (_, _, true, Some(off)) => (
            off,
            match op {
                BPF_JGT => BPF_JLT,
                BPF_JLT => BPF_JGT,
                BPF_JGE => BPF_JLE,
                _ => BPF_JGE,
            },
        ),
        _ => return None,
    };
    // Which edge has `ptr < end` (right open) or `ptr <= end`.
    let (on_taken, open) = match op {
        BPF_JGT => (false, false), // fall-through: ptr <= end
        BPF_JGE => (false, true),  // fall-through: ptr < end
        BPF_JLT => (true, true),
        _ => (true, false), // JLE
    };
    if off < 0 || (off == 0 && open) || off > 0xffff {
        return None;
    }
    let range = if open { off + 1 } else { off };
    Some((on_taken, range as u32))
}

/// Whether a value pointer of `map` stays valid for the rest of the run (and, for a
/// store, is writable by programs): arrays own their values for the map's life, and
/// the hash maps and LPM tries free theirs only after the run's epoch guard, pinned
/// before the lookup (RCU-like); the program holds its maps. Other kinds (maps of
/// maps, devmaps...) stay checked.
pub(super) fn value_lives(map: &dyn Map, load: bool) -> bool {
    use crate::maps::map_type as t;
    const BPF_F_RDONLY_PROG: u32 = 1 << 7;
    let a = map.attr();
    matches!(
        a.map_type,
        t::ARRAY
            | t::PERCPU_ARRAY
            | t::HASH
            | t::PERCPU_HASH
            | t::LRU_HASH
            | t::LRU_PERCPU_HASH
            | t::LPM_TRIE
    ) && (load || a.map_flags & BPF_F_RDONLY_PROG == 0)
}

pub(super) fn alu_transfer(s: &mut State, insn: Insn) {
    let d = insn.dst as usize;
    let op = insn.code & 0xf0;
    let x = insn.code & BPF_X != 0;
    if op == BPF_MOV && !x && insn.off == 0 && insn.imm == 0 {
        s.regs[d] = Reg::zero();
        return;
    }
    if insn.class() == BPF_ALU {
        s.regs[d] = Reg::kind(K_SCALAR);
        return;
    }
    match op {
        BPF_MOV if x && insn.off == 0 => s.regs[d] = s.regs[insn.src as usize],
        BPF_ADD | BPF_SUB => {
            let dv = s.regs[d];
            let (sk, sconst) = if x {
                (s.regs[insn.src as usize].k, None)
            } else {
                (K_SCALAR, Some(insn.imm as i64))
            };
            let src_ptr = sk & K_POINTERS != 0;
            let mut k: Kinds = 0;
            let mut off = None;
            if dv.k & (K_SCALAR | K_UNINIT) != 0 {
                if op == BPF_ADD && src_ptr {
                    let sp = sk & K_POINTERS;
                    k |= (sp & !K_CTX) | if sp & K_CTX != 0 { K_CTXMOD } else { 0 };
                }
                if sk & !K_POINTERS != 0 || op == BPF_SUB || !src_ptr {
                    k |= K_SCALAR;
                }
            }
            for kind in [K_CTX, K_CTXMOD, K_STACK, K_PTR, K_MAP, K_FUNC, K_FRAME] {
                if dv.k & kind == 0 {
                    continue;
                }
                if op == BPF_SUB && src_ptr {
                    k |= K_SCALAR;
                }
                if sk & !K_POINTERS != 0 || !src_ptr {
                    k |= match kind {
                        K_CTX if sconst == Some(0) => K_CTX,
                        K_CTX => K_CTXMOD,
                        K_MAP | K_FUNC => K_PTR,
                        other => other,
                    };
                    if kind == K_STACK {
                        if let (Some(o), Some(c)) = (dv.off, sconst) {
                            let c = if op == BPF_ADD { c } else { -c };
                            off = i32::try_from(o as i64 + c).ok();
                        }
                    }
                }
            }
            if k == 0 {
                k = K_SCALAR;
            }
            // Packet pointers: a constant moves `data + off`, a number makes it variable;
            // `data_end` moved is no longer the end (the kernel refuses that).
            let pkt = match (dv.pkt, sconst) {
                _ if k != K_PTR || src_ptr => Pkt::No,
                (Pkt::Data(o), Some(c)) => {
                    let c = if op == BPF_ADD { c } else { -c };
                    i32::try_from(o as i64 + c).map_or(Pkt::Var, Pkt::Data)
                }
                (Pkt::Data(_) | Pkt::Var, _) => Pkt::Var,
                _ => Pkt::No,
            };
            // Map values: a constant moves the offset; anything else loses it.
            let val = match (dv.val, sconst) {
                (Some((m, o)), Some(c)) if k == K_PTR && !src_ptr && dv.k == K_PTR => {
                    let c = if op == BPF_ADD { c } else { -c };
                    i32::try_from(o as i64 + c).ok().map(|o| (m, o))
                }
                _ => None,
            };
            s.regs[d] = Reg {
                off: if k & K_STACK != 0 { off } else { None },
                pkt,
                val,
                tainted: dv.tainted || (x && s.regs[insn.src as usize].tainted),
                ..Reg::kind(k)
            };
        }
        _ => s.regs[d] = Reg::kind(K_SCALAR),
    }
}
