//! Load-time checks and the rewrite into the interpreter's form.
//!
//! Order as the kernel's `bpf_check`: resolve `ld_imm64` pseudo forms (maps,
//! functions), find subprograms and check jumps (`check_subprogs`), walk the CFG
//! (`check_cfg`: ld_imm64 halves, unreachable code, loops without exit), check each
//! instruction's encoding ([`encoding`]), then an abstract interpretation over the CFG
//! ([`analyse`], values in [`state`]) that tracks what kind of value each register and
//! stack slot holds (context, stack, packet, map value, other pointer, pointer-or-NULL,
//! scalar, uninitialised). That drives the kernel's type errors ([`types`]: context
//! access rules, modified or mixed pointers, uninitialised reads, stack bounds, helper
//! arguments) and the context rewrite (`xdp_convert_ctx_access`): a load of `struct
//! xdp_md` becomes a load of our [`XdpCtx`](crate::run::XdpCtx).
//!
//! Pointer-or-NULL values (a map lookup, a ring buffer reservation) carry the id of the
//! call that made them: a test against 0 refines every copy, and until then they cannot
//! be dereferenced, moved or passed where memory is expected. A reservation is a
//! reference to give back before exit or a tail call. An ARRAY lookup whose key is
//! zero bytes on the stack cannot fail and needs no test. What a program reads from a
//! map or the packet is a number, never a pointer.
//!
//! Proofs that remove run-time checks: an access at r10 + constant inside the frame, a
//! packet access through `data + c` inside what a comparison with `data_end` showed on
//! every path, and a map value access through `value + c` inside the value (a lookup
//! of a known map tested against 0, or a direct value load) become unchecked ops.
//! Anything read back from memory proves nothing (the stack can be written behind the
//! analysis by run-time-checked accesses and callees): such values are `tainted`.
//! Everything else is checked at run time against the run's regions.

use std::sync::Arc;

use libc::{E2BIG, EINVAL};

use crate::helpers::HelperSpec;
use crate::insn::*;
use crate::interp::{op, Op, FUNC_TAG};
use crate::maps::{map_handle, map_type, Map};
use crate::mem::Region;
use crate::program::{LoadError, MapResolver};
use crate::run::HelperFn;

mod analyse;
mod encoding;
mod state;
mod types;

use analyse::*;
use encoding::*;
use state::*;
use types::*;

/// How the program is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// bpf_conformance style: r1 = memory, r2 = its length; structural checks only.
    Raw,
    /// XDP: the kernel's checks and the context rewrite. `devmap`: egress_ifindex readable.
    Xdp { devmap: bool },
    /// SOCKET_FILTER: loads (libbpf probes), context accesses refused.
    SocketFilter,
}

/// Helper lookup used at load (the crate's table, or a test table).
pub type HelperLookup = fn(u32) -> Option<&'static HelperSpec>;

/// What the checks produce.
pub(crate) struct Checked {
    pub ops: Vec<Op>,
    pub helper_fns: Vec<HelperFn>,
    pub helper_ids: Vec<u32>,
    pub maps: Vec<Arc<dyn Map>>,
    pub static_regions: Vec<Region>,
    pub subprog_starts: Vec<usize>,
    pub log: String,
}

fn fail(errno: i32, log: &mut String, msg: String) -> LoadError {
    log.push_str(&msg);
    log.push('\n');
    LoadError {
        errno,
        log: std::mem::take(log),
    }
}

fn jump_target(i: usize, insn: Insn) -> i64 {
    if insn.class() == BPF_JMP32 && insn.code & 0xf0 == BPF_JA {
        i as i64 + insn.imm as i64 + 1
    } else {
        i as i64 + insn.off as i64 + 1
    }
}

fn is_jump(insn: Insn) -> bool {
    let c = insn.class();
    (c == BPF_JMP || c == BPF_JMP32) && !matches!(insn.code & 0xf0, BPF_CALL | BPF_EXIT)
}

fn is_pseudo_call(insn: Insn) -> bool {
    insn.code == BPF_JMP | BPF_CALL && insn.src == BPF_PSEUDO_CALL
}

fn is_pseudo_func(insn: Insn) -> bool {
    insn.is_ld_imm64() && insn.src == BPF_PSEUDO_FUNC
}

pub(crate) struct Input<'a> {
    pub insns: &'a [Insn],
    pub mode: Mode,
    pub maps: &'a dyn MapResolver,
    pub helpers: HelperLookup,
    pub gpl: bool,
}

pub(crate) fn check(inp: Input<'_>) -> Result<Checked, LoadError> {
    let insns = inp.insns;
    let n = insns.len();
    let kernel = inp.mode != Mode::Raw;
    let mut log = String::new();

    if n == 0 || n > BPF_COMPLEXITY_LIMIT_INSNS {
        return Err(fail(
            E2BIG,
            &mut log,
            format!("program has {n} insns (limit {BPF_COMPLEXITY_LIMIT_INSNS})"),
        ));
    }

    // 1. ld_imm64 pseudo forms (resolve_pseudo_ldimm64).
    let mut maps: Vec<Arc<dyn Map>> = Vec::new();
    let mut static_regions: Vec<Region> = Vec::new();
    let mut imm64: Vec<u64> = vec![0; n];
    // Per ld_imm64 of an ARRAY/PERCPU_ARRAY map: its key size (see `Reg::array_ks`).
    let mut array_ks: Vec<u32> = vec![0; n];
    // Per ld_imm64 of a map: which one (index + 1 in `maps`; see `Reg::map`).
    let mut map_at: Vec<u32> = vec![0; n];
    // Per direct value load: its map (index + 1) and offset (see `Reg::val`).
    let mut value_at: Vec<Option<(u32, i32)>> = vec![None; n];
    let mut second_half = vec![false; n];
    let mut i = 0;
    while i < n {
        let insn = insns[i];
        if !insn.is_ld_imm64() {
            i += 1;
            continue;
        }
        if i + 1 >= n {
            return Err(fail(
                EINVAL,
                &mut log,
                format!("{i}: invalid bpf_ld_imm64 insn"),
            ));
        }
        let nx = insns[i + 1];
        if nx.code != 0 || nx.dst != 0 || nx.src != 0 || nx.off != 0 {
            return Err(fail(
                EINVAL,
                &mut log,
                format!("{i}: invalid bpf_ld_imm64 insn"),
            ));
        }
        if insn.off != 0 {
            return Err(fail(
                EINVAL,
                &mut log,
                format!("{i}: BPF_LD_IMM64 uses reserved fields"),
            ));
        }
        second_half[i + 1] = true;
        let lo = insn.imm as u32 as u64;
        let hi = nx.imm as u32 as u64;
        imm64[i] = match insn.src {
            0 => (hi << 32) | lo,
            BPF_PSEUDO_FUNC => 0, // filled once subprograms are known
            BPF_PSEUDO_MAP_FD
            | BPF_PSEUDO_MAP_IDX
            | BPF_PSEUDO_MAP_VALUE
            | BPF_PSEUDO_MAP_IDX_VALUE
                if inp.mode != Mode::Raw =>
            {
                let is_value = matches!(insn.src, BPF_PSEUDO_MAP_VALUE | BPF_PSEUDO_MAP_IDX_VALUE);
                if !is_value && nx.imm != 0 {
                    return Err(fail(
                        EINVAL,
                        &mut log,
                        format!("{i}: unrecognized bpf_ld_imm64 insn"),
                    ));
                }
                let map = if matches!(insn.src, BPF_PSEUDO_MAP_FD | BPF_PSEUDO_MAP_VALUE) {
                    inp.maps.map_by_fd(insn.imm)
                } else if !inp.maps.has_fd_array() {
                    return Err(fail(
                        libc::EPROTO,
                        &mut log,
                        "fd_idx without fd_array is invalid".into(),
                    ));
                } else {
                    inp.maps.fd_array(insn.imm as u32)
                };
                let Some(map) = map else {
                    let from_array = !matches!(insn.src, BPF_PSEUDO_MAP_FD | BPF_PSEUDO_MAP_VALUE);
                    return Err(fail(
                        inp.maps.not_a_map(insn.imm, from_array),
                        &mut log,
                        format!("fd {} is not pointing to valid bpf_map", insn.imm),
                    ));
                };
                let v = if is_value {
                    let off = nx.imm as u32;
                    if off >= 1 << 29 {
                        return Err(fail(
                            EINVAL,
                            &mut log,
                            format!("direct value offset of {off} is not allowed"),
                        ));
                    }
                    let attr = map.attr();
                    if attr.map_type != map_type::ARRAY {
                        return Err(fail(
                            EINVAL,
                            &mut log,
                            "no direct value access support for this map type".into(),
                        ));
                    }
                    if attr.max_entries != 1 {
                        return Err(fail(
                            524,
                            &mut log,
                            format!(
                                "invalid access to map value pointer, value_size={} off={off}",
                                attr.value_size
                            ),
                        ));
                    }
                    let region = match map.direct_value() {
                        Some(r) if (off as u64) < r.len && off < attr.value_size => r,
                        _ => {
                            return Err(fail(
                                EINVAL,
                                &mut log,
                                format!(
                                    "invalid access to map value pointer, value_size={} off={off}",
                                    attr.value_size
                                ),
                            ))
                        }
                    };
                    if !static_regions.contains(&region) {
                        static_regions.push(region);
                    }
                    region.start + off as u64
                } else {
                    let a = map.attr();
                    if matches!(a.map_type, map_type::ARRAY | map_type::PERCPU_ARRAY) {
                        array_ks[i] = a.key_size;
                    }
                    map_handle(&map)
                };
                let pos = match maps.iter().position(|m| Arc::ptr_eq(m, &map)) {
                    Some(p) => p,
                    None => {
                        maps.push(map);
                        maps.len() - 1
                    }
                };
                if is_value {
                    value_at[i] = Some((pos as u32 + 1, nx.imm));
                } else {
                    map_at[i] = pos as u32 + 1;
                }
                v
            }
            BPF_PSEUDO_BTF_ID => {
                return Err(fail(
                    EINVAL,
                    &mut log,
                    format!("{i}: ldimm64 insn specifies invalid btf_id {}", insn.imm),
                ));
            }
            _ => {
                return Err(fail(
                    EINVAL,
                    &mut log,
                    format!("{i}: unrecognized bpf_ld_imm64 insn"),
                ))
            }
        };
        i += 2;
    }

    // 2. Subprograms and jump ranges (check_subprogs).
    let mut starts = vec![0usize];
    for (i, &insn) in insns.iter().enumerate() {
        if second_half[i] {
            continue;
        }
        if insn.code == BPF_JMP | BPF_CALL
            && insn.src == BPF_PSEUDO_KFUNC_CALL
            && insn.code & BPF_X == 0
        {
            return Err(fail(
                EINVAL,
                &mut log,
                format!(
                    "{i}: kernel function calls are not supported (btf_id {})",
                    insn.imm
                ),
            ));
        }
        if is_pseudo_call(insn) || is_pseudo_func(insn) {
            let t = i as i64 + insn.imm as i64 + 1;
            if t < 0 || t >= n as i64 || second_half[t as usize] {
                return Err(fail(
                    EINVAL,
                    &mut log,
                    format!("{i}: call to invalid destination"),
                ));
            }
            starts.push(t as usize);
        }
    }
    starts.sort_unstable();
    starts.dedup();
    let subprog_of = |pc: usize| starts.partition_point(|&s| s <= pc) - 1;
    for (si, &s) in starts.iter().enumerate() {
        let e = starts.get(si + 1).copied().unwrap_or(n);
        for i in s..e {
            let insn = insns[i];
            if second_half[i] || !is_jump(insn) {
                continue;
            }
            let t = jump_target(i, insn);
            if t < s as i64 || t >= e as i64 {
                return Err(fail(
                    EINVAL,
                    &mut log,
                    format!("jump out of range from insn {i} to {t}"),
                ));
            }
        }
        let last = insns[e - 1];
        let ok = !second_half[e - 1]
            && matches!(last.code, c if c == BPF_JMP | BPF_EXIT || c == BPF_JMP | BPF_JA || c == BPF_JMP32 | BPF_JA);
        if !ok {
            return Err(fail(
                EINVAL,
                &mut log,
                format!("last insn is not an exit or jmp (insn {})", e - 1),
            ));
        }
    }
    for (i, v) in imm64.iter_mut().enumerate() {
        if is_pseudo_func(insns[i]) {
            *v = FUNC_TAG | (i as i64 + insns[i].imm as i64 + 1) as u64;
        }
    }

    // 3. CFG (check_cfg): successors, ld_imm64 halves, reachability, exits.
    let succs = |i: usize| -> ([usize; 2], usize) {
        let insn = insns[i];
        if insn.is_ld_imm64() {
            return ([i + 2, 0], 1);
        }
        let c = insn.class();
        if c == BPF_JMP || c == BPF_JMP32 {
            match insn.code & 0xf0 {
                BPF_EXIT => return ([0, 0], 0),
                BPF_CALL => return ([i + 1, 0], 1),
                BPF_JA => return ([jump_target(i, insn) as usize, 0], 1),
                _ => return ([i + 1, jump_target(i, insn) as usize], 2),
            }
        }
        ([i + 1, 0], 1)
    };
    let mut reach = vec![false; n];
    let mut stack: Vec<usize> = starts.iter().take(1).copied().collect();
    reach[0] = true;
    while let Some(i) = stack.pop() {
        let (s, cnt) = succs(i);
        let mut extra = None;
        if is_pseudo_call(insns[i]) || is_pseudo_func(insns[i]) {
            extra = Some((i as i64 + insns[i].imm as i64 + 1) as usize);
        }
        for &t in s[..cnt].iter().chain(extra.iter()) {
            if t >= n {
                return Err(fail(
                    EINVAL,
                    &mut log,
                    format!("jump out of range from insn {i} to {t}"),
                ));
            }
            if second_half[t] {
                return Err(fail(
                    EINVAL,
                    &mut log,
                    format!("jump into the middle of ldimm64 insn {}", t - 1),
                ));
            }
            if !reach[t] {
                reach[t] = true;
                stack.push(t);
            }
        }
    }
    for i in 0..n {
        if !reach[i] && !second_half[i] {
            return Err(fail(EINVAL, &mut log, format!("unreachable insn {i}")));
        }
    }
    // Every instruction must be able to reach an exit of its subprogram, else it is
    // an infinite loop (the kernel finds these by state equivalence or runs out of
    // its complexity budget).
    {
        let mut preds: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut can_exit = vec![false; n];
        let mut work = Vec::new();
        for i in 0..n {
            if second_half[i] {
                continue;
            }
            if insns[i].code == BPF_JMP | BPF_EXIT {
                can_exit[i] = true;
                work.push(i);
            }
            let (s, cnt) = succs(i);
            for &t in &s[..cnt] {
                preds[t].push(i as u32);
            }
        }
        while let Some(t) = work.pop() {
            for &p in &preds[t] {
                let p = p as usize;
                if !can_exit[p] {
                    can_exit[p] = true;
                    work.push(p);
                }
            }
        }
        let stuck: Vec<usize> = (0..n)
            .filter(|&i| !second_half[i] && !can_exit[i])
            .collect();
        if let Some(&i) = stuck.first() {
            // The kernel finds a loop whose state never changes by state equivalence
            // (EINVAL); one that changes state runs into its complexity limit (E2BIG).
            // The loop bodies: stuck instructions inside a stuck backward jump's range.
            let mut cover = vec![0i32; n + 1];
            for &b in &stuck {
                if is_jump(insns[b]) {
                    let t = jump_target(b, insns[b]);
                    if t <= b as i64 {
                        cover[t as usize] += 1;
                        cover[b + 1] -= 1;
                    }
                }
            }
            let mut acc = 0;
            let in_loop_v: Vec<bool> = cover
                .iter()
                .map(|c| {
                    acc += c;
                    acc > 0
                })
                .collect();
            let in_loop = |j: usize| in_loop_v[j];
            let changes_state = stuck.iter().any(|&j| {
                let c = insns[j].class();
                in_loop(j)
                    && (!(c == BPF_JMP || c == BPF_JMP32) || insns[j].code & 0xf0 == BPF_CALL)
            });
            if changes_state {
                return Err(fail(
                    E2BIG,
                    &mut log,
                    format!("BPF program is too large. Processed {} insn (loop at insn {i} never exits)", BPF_COMPLEXITY_LIMIT_INSNS + 1),
                ));
            }
            return Err(fail(
                EINVAL,
                &mut log,
                format!("infinite loop detected at insn {i}"),
            ));
        }
    }

    // 4. Encodings, registers, helpers.
    let mut helper_fns: Vec<HelperFn> = Vec::new();
    let mut helper_ids: Vec<u32> = Vec::new();
    let mut helper_idx = vec![0u32; 0];
    helper_idx.resize(n, u32::MAX);
    let mut arg_kinds: Vec<Option<&'static HelperSpec>> = vec![None; 0];
    arg_kinds.resize(n, None);
    for i in 0..n {
        if second_half[i] {
            continue;
        }
        check_encoding(i, insns[i], inp.mode, &mut log).map_err(|e| with_insn(e, insns))?;
        let insn = insns[i];
        if insn.code == BPF_JMP | BPF_CALL && insn.src == 0 {
            let id = insn.imm as u32;
            let Some(spec) = (if insn.imm < 0 {
                None
            } else {
                (inp.helpers)(id)
            }) else {
                return Err(fail(
                    EINVAL,
                    &mut log,
                    format!("{i}: invalid func unknown#{}", insn.imm),
                ));
            };
            if spec.gpl_only && !inp.gpl && kernel {
                return Err(fail(
                    EINVAL,
                    &mut log,
                    format!("{i}: cannot call GPL-restricted function {}#{id} from non-GPL compatible program", spec.name),
                ));
            }
            let idx = match helper_ids.iter().position(|&h| h == id) {
                Some(p) => p,
                None => {
                    helper_ids.push(id);
                    helper_fns.push(spec.func);
                    helper_ids.len() - 1
                }
            };
            helper_idx[i] = idx as u32;
            arg_kinds[i] = Some(spec);
        }
    }

    // 5. Types (kernel modes).
    let mut ctx_field: Vec<Option<(i32, u8)>> = vec![None; n];
    let seen = if kernel {
        let map_at: Vec<MapAt> = array_ks
            .iter()
            .zip(&map_at)
            .zip(&value_at)
            .map(|((&array_ks, &map), &value)| MapAt {
                array_ks,
                map,
                value,
            })
            .collect();
        let seen = analyse(
            insns,
            &map_at,
            &starts,
            &subprog_of,
            &second_half,
            inp.mode,
            n,
        );
        check_types(
            insns,
            &seen,
            inp.mode,
            &arg_kinds,
            &maps,
            &mut ctx_field,
            &mut log,
        )
        .map_err(|e| with_insn(e, insns))?;
        Some(seen)
    } else {
        None
    };

    // 6. Rewrite into the interpreter's form.
    let mut ops = Vec::with_capacity(n + 1);
    for i in 0..n {
        if second_half[i] {
            ops.push(Op {
                code: op::TRAP,
                ..Op::default()
            });
            continue;
        }
        let insn = insns[i];
        let mut o = Op {
            code: insn.code,
            dst: insn.dst,
            src: insn.src,
            aux: 0,
            off: insn.off as i32,
            imm: insn.imm as i64,
        };
        let class = insn.class();
        match class {
            BPF_ALU64 if insn.code == BPF_ALU64 | BPF_MOV | BPF_X && insn.off != 0 => {
                o.code = op::MOVSX64
            }
            BPF_ALU if insn.code == BPF_ALU | BPF_MOV | BPF_X && insn.off != 0 => {
                o.code = op::MOVSX32
            }
            BPF_LD if insn.is_ld_imm64() => o.imm = imm64[i] as i64,
            BPF_LDX | BPF_ST | BPF_STX => {
                let size = size_bytes(insn.code) as i32;
                let mode = insn.code & 0xe0;
                if let Some((field, fsize)) = ctx_field[i] {
                    o.code = op::CTX_LD;
                    o.off = field;
                    o.aux = fsize;
                } else if mode == BPF_ATOMIC && class == BPF_STX {
                    // An atomic op on a map value proven inside it (the alignment is
                    // still checked at run time).
                    if seen.as_ref().is_some_and(|seen| {
                        value_access_proven(&seen[i], &maps, insn.dst, insn.off, size, false)
                    }) {
                        o.aux = op::ATOMIC_PROVEN;
                    }
                } else if mode == BPF_MEM {
                    let base = if class == BPF_LDX { insn.src } else { insn.dst };
                    let in_frame = |off: i32| off >= -(MAX_BPF_STACK as i32) && off + size <= 0;
                    // The frame offset of the access when it is proven: r10-relative,
                    // or through a register the type analysis knows holds r10 + k on
                    // every path (then rewritten as r10-relative).
                    let frame_off = if base == BPF_REG_FP {
                        Some(insn.off as i32)
                    } else {
                        seen.as_ref().and_then(|seen| {
                            let sn = &seen[i];
                            (sn.k[base as usize] == K_STACK && sn.off_state == 1)
                                .then(|| sn.off + insn.off as i32)
                        })
                    };
                    // A packet access inside what is proven on every path, through a
                    // pointer that never went through memory.
                    let pkt_proven = seen.as_ref().is_some_and(|seen| {
                        let sn = &seen[i];
                        let b = base as usize;
                        match (sn.k[b], sn.pkt[b], sn.tainted[b]) {
                            (K_PTR, Some(Pkt::Data(c)), false) => {
                                let at = c as i64 + insn.off as i64;
                                at >= 0 && at + size as i64 <= sn.pkt_lo as i64
                            }
                            _ => false,
                        }
                    });
                    let val_proven = seen.as_ref().is_some_and(|seen| {
                        value_access_proven(&seen[i], &maps, base, insn.off, size, class == BPF_LDX)
                    });
                    if pkt_proven {
                        o.code = match class {
                            BPF_LDX => op::PKT_LDX,
                            BPF_ST => op::PKT_ST,
                            _ => op::PKT_STX,
                        } | (insn.code & 0x18);
                    } else if val_proven {
                        o.code = match class {
                            BPF_LDX => op::VAL_LDX,
                            BPF_ST => op::VAL_ST,
                            _ => op::VAL_STX,
                        } | (insn.code & 0x18);
                    } else if let Some(off) = frame_off.filter(|&o| in_frame(o)) {
                        o.code = match class {
                            BPF_LDX => op::STACK_LDX,
                            BPF_ST => op::STACK_ST,
                            _ => op::STACK_STX,
                        } | (insn.code & 0x18);
                        o.off = off;
                        if class == BPF_LDX {
                            o.src = BPF_REG_FP;
                        } else {
                            o.dst = BPF_REG_FP;
                        }
                    }
                }
            }
            BPF_JMP | BPF_JMP32 => match insn.code & 0xf0 {
                BPF_CALL if insn.code & BPF_X != 0 => {}
                BPF_CALL if insn.src == BPF_PSEUDO_CALL => {
                    o.code = op::CALL_LOCAL;
                    o.off = (i as i64 + insn.imm as i64 + 1) as i32;
                }
                BPF_CALL => o.imm = helper_idx[i] as i64,
                BPF_EXIT => {}
                BPF_JA => {
                    o.code = BPF_JMP | BPF_JA;
                    o.off = jump_target(i, insn) as i32;
                }
                _ => o.off = jump_target(i, insn) as i32,
            },
            _ => {}
        }
        ops.push(o);
    }
    ops.push(Op {
        code: op::TRAP,
        ..Op::default()
    });
    fuse(&mut ops);

    if kernel {
        log.push_str(&format!(
            "processed {n} insns (limit {BPF_COMPLEXITY_LIMIT_INSNS}) max_states_per_insn 1 total_states {} peak_states {} mark_read 0\n",
            starts.len(),
            starts.len()
        ));
    }
    Ok(Checked {
        ops,
        helper_fns,
        helper_ids,
        maps,
        static_regions,
        subprog_starts: starts,
        log,
    })
}

/// Whether an access of `size` bytes at `base + off` (a load, or a store) is a map value
/// access inside the value, through a pointer that never went through memory, from a
/// lookup (or direct load) of a map whose values live as long as the run can reach them.
fn value_access_proven(
    sn: &Seen,
    maps: &[Arc<dyn Map>],
    base: u8,
    off: i16,
    size: i32,
    load: bool,
) -> bool {
    let b = base as usize;
    match (sn.k[b], sn.val[b], sn.tainted[b]) {
        (K_PTR, Some(Some((m, c))), false) => {
            let at = c as i64 + off as i64;
            maps.get(m as usize - 1).is_some_and(|map| {
                value_lives(map.as_ref(), load)
                    && at >= 0
                    && at + size as i64 <= map.attr().value_size as i64
            })
        }
        _ => false,
    }
}

/// Superinstructions for what clang emits around bounds checks: `rD = rS; rD += K`
/// and `rD = rS; rD += rT` become one op that skips the second. The second op stays
/// in place, so jumps to it still work.
fn fuse(ops: &mut [Op]) {
    for i in 0..ops.len().saturating_sub(1) {
        let (a, b) = (ops[i], ops[i + 1]);
        if a.code != BPF_ALU64 | BPF_MOV | BPF_X || b.dst != a.dst {
            continue;
        }
        if b.code == BPF_ALU64 | BPF_ADD | BPF_K {
            ops[i] = Op {
                code: op::MOV_ADD_K,
                imm: b.imm,
                ..a
            };
        } else if b.code == BPF_ALU64 | BPF_ADD | BPF_X && b.src != a.dst {
            ops[i] = Op {
                code: op::MOV_ADD_X,
                aux: b.src,
                ..a
            };
        }
    }
}

/// Log an error about instruction N ("N: message") in the kernel's style: the
/// instruction as the verifier prints it, then the message.
fn with_insn(mut e: LoadError, insns: &[Insn]) -> LoadError {
    let Some((idx, msg)) = e.log.split_once(": ") else {
        return e;
    };
    let Ok(i) = idx.parse::<usize>() else {
        return e;
    };
    if let Some(&insn) = insns.get(i) {
        e.log = format!(
            "{i}: ({:02x}) {}\n{msg}",
            insn.code,
            disasm(insn, insns.get(i + 1).copied())
        );
    }
    e
}
