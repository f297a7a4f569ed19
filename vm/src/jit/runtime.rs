//! What compiled code calls back into: the per-run environment it reads, the
//! region check for accesses outside the packet and stack, helper calls and faults.
//! Every entry point is `extern "C"`, never unwinds (helper panics are caught and
//! become faults) and reports failure through [`JitEnv::exit`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::interp::{End, Pending, RunCtx, MAX_TAIL_CALL_CNT};
use crate::maps::hash::HashMap;
use crate::maps::Map;
use crate::mem::raw;
use crate::program::Program;
use crate::run::{Fault, HelperCtx, XdpCtx};

/// The run environment compiled code receives (its only argument besides r1..r5).
/// Compiled code reads the fields at their `offset_of!` offsets.
#[repr(C)]
pub(crate) struct JitEnv {
    /// `&mut RunCtx` of the run (opaque to compiled code); null until first needed
    /// on the fast path, which builds it from `pending` (see [`run_pending`]).
    pub rc: *mut (),
    /// `&mut interp::Pending` of a fast-path run (null otherwise).
    pub pending: *mut (),
    /// The run's XDP context (read live for packet bounds and context loads).
    pub xdp: *mut XdpCtx,
    /// `&mut rc.budget` (backward jumps and calls, shared with interpreted callbacks).
    pub budget: *mut u64,
    /// `&mut rc.may_goto`.
    pub may_goto: *mut u64,
    /// Base of the run's stack (all frames).
    pub stack_base: u64,
    /// Non-zero: compiled code must return now (fault or tail call recorded below).
    pub exit: u64,
    /// The writable region `jit_access` last accepted (start, len; len 0 = none):
    /// compiled code checks it inline before calling `jit_access`. A program's regions
    /// are removed only when a tail call ends it, and each entry gets a fresh `JitEnv`,
    /// so a cached one stays valid while this compiled code runs.
    pub cache_start: u64,
    pub cache_len: u64,
    /// The run's per-CPU slot (`cpu % possible_cpus()`), for inline PERCPU_ARRAY lookups.
    pub cpu_slot: u64,
    /// The run's epoch guard once a hash lookup pinned it (null before).
    pub guard: *const crossbeam_epoch::Guard,
    pub fault: Option<Fault>,
    pub tail: Option<Arc<Program>>,
}

/// Offsets of [`JitEnv`] fields, for the translator.
pub(crate) mod off {
    use super::JitEnv;
    pub const XDP: i32 = std::mem::offset_of!(JitEnv, xdp) as i32;
    pub const BUDGET: i32 = std::mem::offset_of!(JitEnv, budget) as i32;
    pub const MAY_GOTO: i32 = std::mem::offset_of!(JitEnv, may_goto) as i32;
    pub const STACK_BASE: i32 = std::mem::offset_of!(JitEnv, stack_base) as i32;
    pub const EXIT: i32 = std::mem::offset_of!(JitEnv, exit) as i32;
    pub const CACHE_START: i32 = std::mem::offset_of!(JitEnv, cache_start) as i32;
    pub const CACHE_LEN: i32 = std::mem::offset_of!(JitEnv, cache_len) as i32;
    pub const CPU_SLOT: i32 = std::mem::offset_of!(JitEnv, cpu_slot) as i32;
}

/// Signature of compiled programs: (env, r1..r5) -> r0.
pub(crate) type EntryFn = unsafe extern "C" fn(*mut JitEnv, u64, u64, u64, u64, u64) -> u64;

/// Values of [`JitEnv::exit`] other than 0 (go on) and 1 (return now).
pub(crate) mod exit {
    /// A tail call from a subprogram ran its target: return from the subprogram
    /// with the helper's result (compiled code resets `exit` to 0).
    pub const RETURN_FROM_SUBPROG: u64 = 2;
}

/// Fault kinds compiled code passes to [`jit_fault`].
pub(crate) mod kind {
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const ATOMIC: u64 = 2;
    pub const MISALIGNED_ATOMIC: u64 = 3;
    pub const BUDGET: u64 = 4;
    pub const CALL_DEPTH: u64 = 5;
    pub const PAST_END: u64 = 6;
    pub const INVALID_ZERO: u64 = 7;
    pub const INVALID: u64 = 8;
}

/// The CPU's slot in per-CPU maps (no division on the usual path: a worker's CPU is
/// below the count).
#[inline]
fn cpu_slot(cpu: u32) -> u64 {
    let (c, n) = (cpu as usize, crate::maps::possible_cpus());
    (if c < n { c } else { c % n }) as u64
}

/// Calls compiled code; what it left in `env` becomes the result.
#[inline(always)]
fn call(entry: *const u8, env: &mut JitEnv, args: [u64; 5]) -> Result<End, Fault> {
    // SAFETY: `entry` is the start of code compiled by `translate::compile` with the
    // `EntryFn` signature, mapped executable for the life of the program (borrowed by
    // this run). The code only touches memory through env (alive for this call), the
    // run's stack and packet, and regions checked through `jit_access`.
    let f: EntryFn = unsafe { std::mem::transmute::<*const u8, EntryFn>(entry) };
    // SAFETY: as above; the run state is reached only through env while the code runs.
    let r0 = unsafe { f(env, args[0], args[1], args[2], args[3], args[4]) };
    if let Some(f) = env.fault.take() {
        return Err(f);
    }
    if let Some(t) = env.tail.take() {
        return Ok(End::Tail(Some(t)));
    }
    Ok(End::Exit(r0))
}

/// The fast path's first run of compiled code: no `RunCtx` yet. The budget words are
/// already in place inside `pending.slot`; everything else of the run state is built
/// there only if the code calls out (a helper, a map lookup, a region check), so a
/// program that touches only its packet and stack pays for none of it.
#[inline]
pub(crate) fn run_pending(
    entry: *const u8,
    pending: &mut Pending<'_>,
    args: [u64; 5],
) -> Result<End, Fault> {
    let (budget, may_goto) = pending.budget_words();
    let mut env = JitEnv {
        rc: std::ptr::null_mut(),
        pending: pending as *mut Pending<'_> as *mut (),
        xdp: pending.xdp_ptr(),
        budget,
        may_goto,
        stack_base: pending.stack_base(),
        exit: 0,
        cache_start: 0,
        cache_len: 0,
        cpu_slot: cpu_slot(pending.cpu()),
        guard: std::ptr::null(),
        fault: None,
        tail: None,
    };
    call(entry, &mut env, args)
}

#[inline]
pub(crate) fn run(entry: *const u8, rc: &mut RunCtx<'_>, args: [u64; 5]) -> Result<End, Fault> {
    let mut env = JitEnv {
        rc: std::ptr::null_mut(),
        pending: std::ptr::null_mut(),
        xdp: &mut *rc.xdp as *mut XdpCtx,
        budget: &mut rc.budget as *mut u64,
        may_goto: &mut rc.may_goto as *mut u64,
        stack_base: rc.stack_base,
        exit: 0,
        cache_start: 0,
        cache_len: 0,
        cpu_slot: cpu_slot(rc.cpu()),
        guard: std::ptr::null(),
        fault: None,
        tail: None,
    };
    env.rc = rc as *mut RunCtx<'_> as *mut ();
    let r = call(entry, &mut env, args);
    rc.depth = 0;
    r
}

/// # Safety
/// `env` must be the live environment passed to compiled code by [`run`].
unsafe fn parts<'e>(env: *mut JitEnv) -> (&'e mut JitEnv, &'e mut RunCtx<'e>) {
    // SAFETY: per the caller's contract, env and env.rc (or env.pending, whose run state
    // is built on this first use) point to the live run state, and compiled code holds
    // no other reference to them during this call.
    unsafe {
        let e = &mut *env;
        if e.rc.is_null() {
            let p = &mut *(e.pending as *mut Pending<'e>);
            e.rc = p.materialize() as *mut RunCtx<'e> as *mut ();
        }
        let rc = &mut *(e.rc as *mut RunCtx<'e>);
        (e, rc)
    }
}

/// Region check for accesses the inline fast paths (packet, stack) did not accept.
/// Returns 1 when `[addr, addr+len)` lies in a region of the run.
pub(crate) extern "C" fn jit_access(env: *mut JitEnv, addr: u64, len: u64, write: u64) -> u64 {
    // SAFETY: called only by compiled code with its env.
    let (e, rc) = unsafe { parts(env) };
    match rc.find_region(addr, len, write != 0) {
        Some(r) => {
            if r.writable {
                e.cache_start = r.start;
                e.cache_len = r.len;
            }
            1
        }
        None => 0,
    }
}

/// Record a fault raised by compiled code; it returns right after.
pub(crate) extern "C" fn jit_fault(env: *mut JitEnv, kind: u64, addr: u64, len: u64, pc: u64) {
    // SAFETY: called only by compiled code with its env (the run state is not needed).
    let e = unsafe { &mut *env };
    let pc = pc as usize;
    let oob = |kind: &'static str| Fault::OutOfBounds {
        kind,
        addr,
        len: len as usize,
        pc,
    };
    let f = match kind {
        kind::READ => oob("read"),
        kind::WRITE => oob("write"),
        kind::ATOMIC => oob("atomic"),
        kind::MISALIGNED_ATOMIC => oob("misaligned atomic"),
        kind::BUDGET => Fault::Budget { pc },
        kind::CALL_DEPTH => Fault::CallDepth { pc },
        kind::PAST_END => Fault::Helper {
            id: 0,
            why: "ran past the end of the program",
        },
        kind::INVALID_ZERO => Fault::Helper {
            id: 0,
            why: "invalid instruction 0x00 reached",
        },
        _ => Fault::Helper {
            id: 0,
            why: "invalid instruction reached",
        },
    };
    e.fault = Some(f);
    e.exit = 1;
}

/// [`crate::interp::op::MAP_LOOKUP`] on a map that is not inlined: `map` points at
/// the `Arc<dyn Map>` in the running program's map table, `key` at the key (already
/// checked by compiled code). Returns the value's address or 0.
pub(crate) extern "C" fn jit_map_lookup(env: *mut JitEnv, map: u64, key: u64) -> u64 {
    // SAFETY: called only by compiled code with its env.
    let (e, rc) = unsafe { parts(env) };
    // SAFETY: the compiled code embeds the address of an element of its program's
    // map table, which lives (unmodified) as long as the program and its code.
    let map: &Arc<dyn Map> = unsafe { &*(map as *const Arc<dyn Map>) };
    let ks = map.attr().key_size as usize;
    // SAFETY: compiled code checked `[key, key+ks)` against the run's regions.
    let k = unsafe { raw::slice(key, ks) };
    let v = match catch_unwind(AssertUnwindSafe(|| map.prog_lookup_own(&mut *rc, k))) {
        Ok(v) => v,
        Err(_) => {
            e.fault = Some(Fault::Helper {
                id: 1,
                why: "helper panicked",
            });
            e.exit = 1;
            return 0;
        }
    };
    let last = rc.last_region;
    if v != 0 && last.start == v && last.writable && last.len != 0 {
        e.cache_start = last.start;
        e.cache_len = last.len;
    }
    v
}

/// [`crate::interp::op::MAP_LOOKUP`] on a hash map of the program (HASH, LRU_HASH
/// and their per-CPU kinds), monomorphic: no dynamic dispatch on the common path.
pub(crate) extern "C" fn jit_hash_lookup(env: *mut JitEnv, map: u64, key: u64) -> u64 {
    // SAFETY: called only by compiled code with its env.
    let e = unsafe { &mut *env };
    if e.guard.is_null() {
        // SAFETY: as above; the guard lives in the run's state until the run ends.
        let (e2, rc) = unsafe { parts(env) };
        e2.guard = rc.guard() as *const crossbeam_epoch::Guard;
    }
    // SAFETY: as above (env is live; `parts` borrows ended).
    let e = unsafe { &mut *env };
    // SAFETY: compiled code embeds the address of a HashMap its program holds (an
    // `Arc` in the map table) for as long as the code exists.
    let m: &HashMap = unsafe { &*(map as *const HashMap) };
    // SAFETY: compiled code checked `[key, key+key_size)` against the run's regions.
    let k = unsafe { raw::slice(key, m.attr().key_size as usize) };
    // SAFETY: the guard is pinned for the whole run (set above).
    let g = unsafe { &*e.guard };
    let v = m.value_addr(k, e.cpu_slot as usize, g);
    if v != 0 && !m.in_value_area(v) {
        // A value from the heap (the slab was exhausted): register it for the run.
        let r = m.value_region(v);
        // SAFETY: as above.
        let (e, rc) = unsafe { parts(env) };
        rc.add_region(r);
        if r.writable {
            e.cache_start = r.start;
            e.cache_len = r.len;
        }
    }
    v
}

/// `call helper` (`callx == 0`: `sel` indexes the program's helper table) or
/// `callx` (`sel` is the helper id from the register). `pc_nf` = pc | frames << 32.
/// Returns r0; on a fault or a tail call sets `env.exit`.
#[allow(clippy::too_many_arguments)]
pub(crate) extern "C" fn jit_helper(
    env: *mut JitEnv,
    pc_nf: u64,
    sel: u64,
    callx: u64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
) -> u64 {
    // SAFETY: called only by compiled code with its env.
    let (e, rc) = unsafe { parts(env) };
    let pc = (pc_nf & 0xffff_ffff) as usize;
    let nf = (pc_nf >> 32) as usize;
    let fail = |e: &mut JitEnv, f: Fault| {
        e.fault = Some(f);
        e.exit = 1;
        0
    };
    let prog = rc.cur_prog();
    let f = if callx == 0 {
        prog.helper_fns[sel as usize]
    } else {
        match u32::try_from(sel).ok().and_then(prog.lookup) {
            Some(spec) => spec.func,
            None => {
                return fail(
                    e,
                    Fault::Helper {
                        id: sel as u32,
                        why: "callx to an unknown helper",
                    },
                )
            }
        }
    };
    rc.budget = rc.budget.saturating_sub(1);
    if rc.budget == 0 {
        return fail(e, Fault::Budget { pc });
    }
    rc.depth = nf;
    // The helper's `Result` is taken apart inside the closure: only a u64 crosses
    // `catch_unwind` (copying the whole `Result` out read its tag wider than the
    // helper wrote it, a store-forwarding stall on every call).
    let mut fault = None;
    let r = catch_unwind(AssertUnwindSafe(|| {
        match f(&mut *rc as &mut dyn HelperCtx, [a1, a2, a3, a4, a5]) {
            Ok(v) => v,
            Err(f) => {
                fault = Some(f);
                0
            }
        }
    }));
    rc.depth = nf;
    if let Some(f) = fault {
        return fail(e, f);
    }
    let v = match r {
        Ok(v) => v,
        Err(_) => {
            return fail(
                e,
                Fault::Helper {
                    id: 0,
                    why: "helper panicked",
                },
            )
        }
    };
    // A map lookup returns the value it just made accessible: cache that region so
    // the program's accesses through r0 take the inline path. It stays a region of
    // this program until it ends, as valid as a region `jit_access` accepted.
    if std::mem::take(&mut rc.regions_removed) {
        e.cache_start = 0;
        e.cache_len = 0;
    }
    let last = rc.last_region;
    if v != 0 && last.start == v && last.writable && last.len != 0 {
        e.cache_start = last.start;
        e.cache_len = last.len;
    }
    if let Some(t) = rc.pending_tail.take() {
        if rc.tail_cnt < MAX_TAIL_CALL_CNT {
            rc.tail_cnt += 1;
            if nf == 0 {
                e.tail = Some(t);
                e.exit = 1;
            } else {
                // From a subprogram: the target replaces it; compiled code returns
                // from the subprogram with the target's r0.
                rc.depth = nf;
                let r = crate::interp::tail_from_subprog(rc, t, a1);
                rc.depth = nf;
                return match r {
                    Ok(v) => {
                        e.exit = exit::RETURN_FROM_SUBPROG;
                        v
                    }
                    Err(f) => fail(e, f),
                };
            }
        }
    }
    v
}
