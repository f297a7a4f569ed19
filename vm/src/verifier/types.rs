//! The kernel's type errors, from what the analysis saw: helper arguments, context
//! accesses, pointer misuse.

use std::sync::Arc;

use libc::{EACCES, EINVAL};

use crate::helpers::HelperSpec;
use crate::insn::*;
use crate::maps::{map_type, Map};
use crate::program::LoadError;
use crate::run::ctx_off;

use super::state::*;
use super::*;

pub(super) fn alu_op_name(op: u8) -> &'static str {
    match op {
        BPF_ADD => "+=",
        BPF_SUB => "-=",
        BPF_MUL => "*=",
        BPF_DIV => "/=",
        BPF_OR => "|=",
        BPF_AND => "&=",
        BPF_LSH => "<<=",
        BPF_RSH => ">>=",
        BPF_MOD => "%=",
        BPF_XOR => "^=",
        BPF_ARSH => "s>>=",
        _ => "?=",
    }
}

/// The kernel's name of the pointer-or-NULL in `r` at instruction `sn`: what the
/// helper that made it returns.
pub(super) fn null_name(insns: &[Insn], sn: &Seen, r: u8) -> &'static str {
    let made = sn.null_from[r as usize];
    match made.checked_sub(1).and_then(|pc| insns.get(pc as usize)) {
        Some(c) if c.imm as u32 == crate::helpers::id::RINGBUF_RESERVE => "ringbuf_mem_or_null",
        _ => "map_value_or_null",
    }
}

pub(super) fn kinds_name(k: Kinds) -> &'static str {
    if k & K_CTX != 0 {
        "ctx"
    } else if k & (K_STACK | K_FRAME) != 0 {
        "fp"
    } else if k & K_MAP != 0 {
        "map_ptr"
    } else if k & K_FUNC != 0 {
        "func"
    } else if k & (K_PTR | K_CTXMOD) != 0 {
        "mem"
    } else {
        "scalar"
    }
}

/// The kernel's type errors, decided on the joined kinds (a set that is exactly one
/// kind means "on every path"), and the context rewrite decisions.
/// The kernel's `record_func_map` write check and `check_map_func_compatibility`:
/// which helpers may be given which maps (EACCES for a write into a map programs may
/// only read, EINVAL for a map the helper does not take).
pub(super) fn map_func_compatible(
    i: usize,
    a: &crate::maps::MapAttr,
    spec: &HelperSpec,
    log: &mut String,
) -> Result<(), LoadError> {
    use crate::helpers::id::*;
    use crate::maps::map_flags::BPF_F_RDONLY_PROG;
    use map_type as mt;
    // Helper and map type numbers bpftime does not run, named only here.
    const PERF_EVENT_READ: u32 = 22;
    const PERF_EVENT_READ_VALUE: u32 = 55;
    const SKB_OUTPUT: u32 = 111;
    const XDP_OUTPUT: u32 = 121;
    const MAP_LOOKUP_PERCPU_ELEM: u32 = 195;
    const CPUMAP: u32 = 16;
    let f = spec.id;
    // DEVMAP and DEVMAP_HASH are read-only to programs (dev_map_alloc adds the flag).
    let rdonly =
        a.map_flags & BPF_F_RDONLY_PROG != 0 || matches!(a.map_type, mt::DEVMAP | mt::DEVMAP_HASH);
    if rdonly
        && matches!(
            f,
            MAP_DELETE_ELEM | MAP_UPDATE_ELEM | MAP_PUSH_ELEM | MAP_POP_ELEM
        )
    {
        return Err(fail(EACCES, log, format!("{i}: write into map forbidden")));
    }
    let perf = [
        PERF_EVENT_OUTPUT,
        PERF_EVENT_READ,
        PERF_EVENT_READ_VALUE,
        SKB_OUTPUT,
        XDP_OUTPUT,
    ];
    let ring = [RINGBUF_OUTPUT, RINGBUF_RESERVE, RINGBUF_QUERY];
    // By map: the helpers a map of this type may be given.
    let map_ok = match a.map_type {
        mt::PROG_ARRAY => f == TAIL_CALL,
        mt::PERF_EVENT_ARRAY => perf.contains(&f),
        mt::RINGBUF => ring.contains(&f),
        mt::DEVMAP | mt::DEVMAP_HASH | mt::XSKMAP => f == REDIRECT_MAP || f == MAP_LOOKUP_ELEM,
        CPUMAP => f == REDIRECT_MAP,
        mt::ARRAY_OF_MAPS | mt::HASH_OF_MAPS => f == MAP_LOOKUP_ELEM,
        mt::QUEUE | mt::STACK => matches!(f, MAP_PEEK_ELEM | MAP_POP_ELEM | MAP_PUSH_ELEM),
        _ => true,
    };
    // By helper: the map types it takes.
    let func_ok = match f {
        TAIL_CALL => a.map_type == mt::PROG_ARRAY,
        _ if perf.contains(&f) => a.map_type == mt::PERF_EVENT_ARRAY,
        _ if ring.contains(&f) => a.map_type == mt::RINGBUF,
        REDIRECT_MAP => matches!(
            a.map_type,
            mt::DEVMAP | mt::DEVMAP_HASH | CPUMAP | mt::XSKMAP
        ),
        MAP_POP_ELEM | MAP_PEEK_ELEM | MAP_PUSH_ELEM => {
            matches!(a.map_type, mt::QUEUE | mt::STACK)
        }
        MAP_LOOKUP_PERCPU_ELEM => matches!(
            a.map_type,
            mt::PERCPU_ARRAY | mt::PERCPU_HASH | mt::LRU_PERCPU_HASH
        ),
        _ => true,
    };
    if map_ok && func_ok {
        return Ok(());
    }
    Err(fail(
        EINVAL,
        log,
        format!(
            "{i}: cannot pass map_type {} into func {}#{}",
            a.map_type, spec.name, f
        ),
    ))
}

pub(super) fn check_types(
    insns: &[Insn],
    seen: &[Seen],
    mode: Mode,
    helper_specs: &[Option<&'static HelperSpec>],
    maps: &[Arc<dyn Map>],
    ctx_field: &mut [Option<(i32, u8)>],
    log: &mut String,
) -> Result<(), LoadError> {
    use crate::helpers::ArgKind;
    for (i, sn) in seen.iter().enumerate() {
        if !sn.visited {
            continue;
        }
        let insn = insns[i];
        let class = insn.class();
        let op = insn.code & 0xf0;
        let x = insn.code & BPF_X != 0;
        let k = |r: u8| sn.k[r as usize];
        let read = |log: &mut String, r: u8| {
            if k(r) == K_UNINIT {
                Err(fail(EACCES, log, format!("{i}: R{r} !read_ok")))
            } else {
                Ok(())
            }
        };
        let definite_ptr = |kk: Kinds| kk != 0 && kk & !K_POINTERS == 0;
        match class {
            BPF_ALU | BPF_ALU64 => {
                if op != BPF_MOV {
                    read(log, insn.dst)?;
                }
                if x && op != BPF_END && op != BPF_NEG {
                    read(log, insn.src)?;
                }
                // The kernel's adjust_reg_min_max_vals / adjust_ptr_min_max_vals, for a
                // privileged loader. NEG and END on pointers are allowed (result: scalar).
                if matches!(op, BPF_MOV | BPF_NEG | BPF_END) {
                    continue;
                }
                let dk = k(insn.dst);
                let sk = if x { k(insn.src) } else { K_SCALAR };
                if (dk | sk) & K_NULL != 0 {
                    let r = if dk & K_NULL != 0 { insn.dst } else { insn.src };
                    return Err(fail(
                        EACCES,
                        log,
                        format!(
                            "{i}: R{r} pointer arithmetic on {} prohibited",
                            null_name(insns, sn, r)
                        ),
                    ));
                }
                let (d_ptr, s_ptr) = (definite_ptr(dk), x && definite_ptr(sk));
                let eacces =
                    |log: &mut String, msg: String| Err(fail(EACCES, log, format!("{i}: {msg}")));
                if d_ptr && s_ptr {
                    // pointer - pointer is a scalar; any other combination is refused.
                    if op == BPF_SUB {
                        continue;
                    }
                    return eacces(
                        log,
                        format!(
                            "R{} pointer {} pointer prohibited",
                            insn.dst,
                            alu_op_name(op)
                        ),
                    );
                }
                let (preg, pk) = if d_ptr {
                    (insn.dst, dk)
                } else if s_ptr && dk & K_POINTERS == 0 {
                    (insn.src, sk)
                } else {
                    continue;
                };
                if class == BPF_ALU {
                    // 32-bit subtraction involving a pointer yields a meaningless scalar
                    // (allowed with allow_ptr_leaks); other 32-bit pointer math is refused.
                    if op == BPF_SUB {
                        continue;
                    }
                    return eacces(
                        log,
                        format!("R{} 32-bit pointer arithmetic prohibited", insn.dst),
                    );
                }
                if pk & !(K_MAP | K_FUNC) == 0 {
                    return eacces(
                        log,
                        format!(
                            "R{preg} pointer arithmetic on {} prohibited",
                            kinds_name(pk)
                        ),
                    );
                }
                if pk == K_PTR && sn.pkt[preg as usize] == Some(Pkt::End) {
                    return eacces(
                        log,
                        format!("R{preg} pointer arithmetic on pkt_end prohibited"),
                    );
                }
                // check_reg_sane_offset: constants of 2^29 or more are refused.
                if !x && matches!(op, BPF_ADD | BPF_SUB) && (insn.imm as i64).abs() >= 1 << 29 {
                    return Err(fail(
                        EINVAL,
                        log,
                        format!(
                            "{i}: math between {} pointer and {} is not allowed",
                            kinds_name(pk),
                            insn.imm
                        ),
                    ));
                }
                match op {
                    BPF_ADD => {}
                    BPF_SUB if preg == insn.dst => {}
                    BPF_SUB => {
                        return eacces(
                            log,
                            format!("R{} tried to subtract pointer from scalar", insn.dst),
                        )
                    }
                    BPF_AND | BPF_OR | BPF_XOR => {
                        return eacces(
                            log,
                            format!(
                                "R{} bitwise operator {} on pointer prohibited",
                                insn.dst,
                                alu_op_name(op)
                            ),
                        )
                    }
                    _ => {
                        return eacces(
                            log,
                            format!(
                                "R{} pointer arithmetic with {} operator prohibited",
                                insn.dst,
                                alu_op_name(op)
                            ),
                        )
                    }
                }
            }
            BPF_LDX | BPF_ST | BPF_STX => {
                let base = if class == BPF_LDX { insn.src } else { insn.dst };
                read(log, base)?;
                if class == BPF_STX {
                    read(log, insn.src)?;
                    if insn.code & 0xe0 == BPF_ATOMIC && insn.imm == BPF_CMPXCHG {
                        read(log, 0)?;
                    }
                }
                let bk = k(base);
                let size = size_bytes(insn.code) as i32;
                let access = format!("off={} size={size}", insn.off);
                if bk & K_CTX != 0 {
                    if bk & (K_STACK | K_FRAME | K_PTR | K_MAP | K_FUNC | K_CTXMOD) != 0 {
                        return Err(fail(
                            EINVAL,
                            log,
                            format!("{i}: same insn cannot be used with different pointers"),
                        ));
                    }
                    if bk != K_CTX {
                        return Err(fail(
                            EACCES,
                            log,
                            format!("{i}: R{base} invalid mem access 'scalar'"),
                        ));
                    }
                    let field = match mode {
                        Mode::Xdp { devmap }
                            if class == BPF_LDX && insn.code & 0xe0 == BPF_MEM && size == 4 =>
                        {
                            match insn.off {
                                0 => Some((ctx_off::DATA, 8)),
                                4 => Some((ctx_off::DATA_END, 8)),
                                8 => Some((ctx_off::DATA_META, 8)),
                                12 => Some((ctx_off::INGRESS_IFINDEX, 4)),
                                16 => Some((ctx_off::RX_QUEUE_INDEX, 4)),
                                20 if devmap => Some((ctx_off::EGRESS_IFINDEX, 4)),
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    match field {
                        Some((f, sz)) => ctx_field[i] = Some((f as i32, sz)),
                        None => {
                            return Err(fail(
                                EACCES,
                                log,
                                format!("{i}: invalid bpf_context access {access}"),
                            ));
                        }
                    }
                    continue;
                }
                if bk & K_NULL != 0 {
                    return Err(fail(
                        EACCES,
                        log,
                        format!(
                            "{i}: R{base} invalid mem access '{}'",
                            null_name(insns, sn, base)
                        ),
                    ));
                }
                if bk & K_CTXMOD != 0 && bk & !(K_CTXMOD | K_SCALAR | K_UNINIT) == 0 {
                    return Err(fail(
                        EACCES,
                        log,
                        format!("{i}: dereference of modified ctx ptr R{base} disallowed"),
                    ));
                }
                if bk & K_POINTERS == 0 {
                    return Err(fail(
                        EACCES,
                        log,
                        format!("{i}: R{base} invalid mem access 'scalar'"),
                    ));
                }
                if bk & !(K_MAP | K_FUNC) == 0 {
                    return Err(fail(
                        EACCES,
                        log,
                        format!("{i}: R{base} invalid mem access '{}'", kinds_name(bk)),
                    ));
                }
                // Packet accesses (check_packet_access): through `data + c`, inside what
                // some path has shown to exist; `data_end` is no memory.
                match (bk, sn.pkt[base as usize]) {
                    (K_PTR, Some(Pkt::End)) => {
                        return Err(fail(
                            EACCES,
                            log,
                            format!("{i}: R{base} invalid mem access 'pkt_end'"),
                        ));
                    }
                    (K_PTR, Some(Pkt::Data(c))) => {
                        let off = c as i64 + insn.off as i64;
                        if off < 0 || off + size as i64 > sn.pkt_hi as i64 {
                            return Err(fail(
                                EACCES,
                                log,
                                format!(
                                    "{i}: invalid access to packet, off={off} size={size}, \
                                     R{base}(id=0,off={off},r={})\n\
                                     R{base} offset is outside of the packet",
                                    sn.pkt_hi
                                ),
                            ));
                        }
                    }
                    _ => {}
                }
                if bk == K_STACK && sn.off_state == 1 {
                    let o = sn.off as i64 + insn.off as i64;
                    let size = size as i64;
                    if o < -(MAX_BPF_STACK as i64) || o + size > 0 {
                        return Err(fail(
                            EACCES,
                            log,
                            format!("{i}: invalid stack off={o} size={size}"),
                        ));
                    }
                    if o % size != 0 {
                        return Err(fail(
                            EACCES,
                            log,
                            format!("{i}: misaligned stack access off {o} size {size}"),
                        ));
                    }
                }
            }
            BPF_JMP | BPF_JMP32 => match op {
                BPF_EXIT => {
                    read(log, 0)?;
                    if sn.leaked != 0 {
                        return Err(fail(
                            EINVAL,
                            log,
                            format!(
                                "{i}: Unreleased reference id={} alloc_insn={}",
                                sn.leaked,
                                sn.leaked - 1
                            ),
                        ));
                    }
                    if sn.lock & LOCK_HELD != 0 {
                        return Err(fail(
                            EINVAL,
                            log,
                            format!("{i}: bpf_spin_unlock is missing"),
                        ));
                    }
                }
                BPF_CALL if insn.src == 0 && !x => {
                    let held = sn.lock & LOCK_HELD != 0;
                    match insn.imm as u32 {
                        crate::helpers::id::SPIN_LOCK if held => {
                            return Err(fail(
                                EINVAL,
                                log,
                                format!("{i}: Locking two bpf_spin_locks are not allowed"),
                            ));
                        }
                        crate::helpers::id::SPIN_UNLOCK if sn.lock & LOCK_FREE != 0 => {
                            return Err(fail(
                                EINVAL,
                                log,
                                format!("{i}: bpf_spin_unlock without taking a lock"),
                            ));
                        }
                        crate::helpers::id::SPIN_LOCK | crate::helpers::id::SPIN_UNLOCK => {}
                        crate::helpers::id::TAIL_CALL if sn.held_ref != 0 => {
                            return Err(fail(
                                EINVAL,
                                log,
                                format!("{i}: tail_call would lead to reference leak"),
                            ));
                        }
                        _ if held => {
                            return Err(fail(
                                EINVAL,
                                log,
                                format!("{i}: function calls are not allowed while holding a lock"),
                            ));
                        }
                        _ => {}
                    }
                    if let Some(spec) = helper_specs[i] {
                        // The map argument, when it is one known map on every path (the
                        // kernel's meta->map_ptr).
                        let mut meta: Option<&Arc<dyn Map>> = None;
                        for (a, kind) in spec.args.iter().enumerate() {
                            let r = a as u8 + 1;
                            if *kind == ArgKind::None {
                                continue;
                            }
                            read(log, r)?;
                            let rk = k(r);
                            let m = sn.map[r as usize];
                            if *kind == ArgKind::Map && rk == K_MAP && m != 0 && m != u32::MAX {
                                meta = maps.get(m as usize - 1);
                            }
                            if let (ArgKind::MapKey | ArgKind::MapValue, Some(map)) = (kind, meta) {
                                let a = map.attr();
                                let size = if *kind == ArgKind::MapKey {
                                    a.key_size
                                } else {
                                    a.value_size
                                };
                                if size == 0 {
                                    return Err(fail(
                                        EACCES,
                                        log,
                                        format!("{i}: R{r} invalid zero-sized read"),
                                    ));
                                }
                            }
                            let id = insn.imm as u32;
                            let nullable_ok = *kind == ArgKind::Anything
                                || (id == crate::helpers::id::CSUM_DIFF && *kind == ArgKind::Mem);
                            if rk & K_NULL != 0 && !nullable_ok {
                                return Err(fail(
                                    EACCES,
                                    log,
                                    format!(
                                        "{i}: R{r} type={} expected={kind:?}",
                                        null_name(insns, sn, r)
                                    ),
                                ));
                            }
                            let record = a == 0
                                && matches!(
                                    id,
                                    crate::helpers::id::RINGBUF_SUBMIT
                                        | crate::helpers::id::RINGBUF_DISCARD
                                );
                            if record
                                && (rk & (K_NULL | K_SCALAR | K_UNINIT) != 0 || rk & K_PTR == 0)
                            {
                                return Err(fail(
                                    EACCES,
                                    log,
                                    format!(
                                        "{i}: R1 type={} expected=ringbuf_mem",
                                        if rk & K_NULL != 0 {
                                            "ringbuf_mem_or_null"
                                        } else {
                                            kinds_name(rk)
                                        }
                                    ),
                                ));
                            }
                            let bad = match kind {
                                ArgKind::Ctx => rk & K_CTX == 0,
                                // A callback is an `ld_imm64 FUNC` on every path, never a
                                // number that happens to look like one.
                                ArgKind::Func => rk != K_FUNC,
                                ArgKind::Map => rk & (K_MAP | K_PTR) == 0,
                                // A map value's lock: never the stack, the context, a
                                // map or a function, nor a value that is only a number.
                                ArgKind::SpinLock => {
                                    rk & (K_STACK | K_FRAME | K_CTX | K_CTXMOD | K_MAP | K_FUNC)
                                        != 0
                                        || rk & K_PTR == 0
                                }
                                _ => false,
                            };
                            if bad {
                                return Err(fail(
                                    EACCES,
                                    log,
                                    format!(
                                        "{i}: R{r} type={} expected={:?}",
                                        kinds_name(rk),
                                        kind
                                    ),
                                ));
                            }
                        }
                        if let Some(map) = meta {
                            map_func_compatible(i, map.attr(), spec, log)?;
                        }
                    }
                }
                BPF_CALL if sn.lock & LOCK_HELD != 0 => {
                    return Err(fail(
                        EINVAL,
                        log,
                        format!("{i}: function calls are not allowed while holding a lock"),
                    ));
                }
                BPF_CALL | BPF_JA | BPF_JCOND => {}
                _ => {
                    read(log, insn.dst)?;
                    if x {
                        read(log, insn.src)?;
                    }
                }
            },
            BPF_LD if !insn.is_ld_imm64() => {
                // LD_ABS / LD_IND read the skb in r6 (check_ld_abs).
                read(log, 6)?;
                if k(6) != K_CTX {
                    return Err(fail(
                        EINVAL,
                        log,
                        format!("{i}: at the time of BPF_LD_ABS|IND R6 != pointing to skb"),
                    ));
                }
                if insn.code & 0xe0 == BPF_IND {
                    read(log, insn.src)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}
