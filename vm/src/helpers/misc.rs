//! Small helpers: random numbers, CPU/NUMA ids, tail calls, bpf_loop, spin locks,
//! perf_event_output.

use std::cell::Cell;
use std::sync::atomic::Ordering;

use crate::maps::prog_array::ProgArray;
use crate::run::{Fault, HelperCtx};

use super::map::map_of;

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        let mut b = [0u8; 8];
        let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
        u64::from_ne_bytes(b) | 1
    });
}

/// `u32 bpf_get_prandom_u32(void)` (a per-thread xorshift64*).
pub fn get_prandom_u32(_ctx: &mut dyn HelperCtx, _a: [u64; 5]) -> Result<u64, Fault> {
    Ok(RNG.with(|r| {
        let mut x = r.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32 as u64
    }))
}

/// `u32 bpf_get_smp_processor_id(void)`: the run's CPU slot.
pub fn get_smp_processor_id(ctx: &mut dyn HelperCtx, _a: [u64; 5]) -> Result<u64, Fault> {
    Ok(ctx.cpu() as u64)
}

/// `long bpf_get_numa_node_id(void)`: one node here.
pub fn get_numa_node_id(_ctx: &mut dyn HelperCtx, _a: [u64; 5]) -> Result<u64, Fault> {
    Ok(0)
}

/// `long bpf_tail_call(ctx, prog_array_map, index)`: on a hit the interpreter jumps
/// when the helper returns; on a miss (index out of range, empty slot, not a
/// PROG_ARRAY) nothing happens and the program goes on (-ENOENT in r0).
pub fn tail_call(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    let map = map_of(ctx, a[1])?;
    let Some(pa) = map.as_any().downcast_ref::<ProgArray>() else {
        return Ok(-(libc::EINVAL as i64) as u64);
    };
    match pa.get(a[2] as u32) {
        Some(p) => {
            ctx.tail_call(p);
            Ok(0)
        }
        None => Ok(-(libc::ENOENT as i64) as u64),
    }
}

/// BPF_MAX_LOOPS.
pub const BPF_MAX_LOOPS: u64 = 8 * 1024 * 1024;

/// `long bpf_loop(nr_loops, callback_fn, callback_ctx, flags)`.
pub fn bpf_loop(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    if a[3] != 0 {
        return Ok(-(libc::EINVAL as i64) as u64);
    }
    let n = a[0] as u32 as u64;
    if n > BPF_MAX_LOOPS {
        return Ok(-(libc::E2BIG as i64) as u64);
    }
    for i in 0..n {
        if ctx.call(a[1], [i, a[2], 0, 0, 0])? != 0 {
            return Ok(i + 1);
        }
    }
    Ok(n)
}

/// `long bpf_spin_lock(struct bpf_spin_lock *lock)`.
pub fn spin_lock(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    // The verifier refuses a second lock; this backs it up (a self-deadlock would spin
    // forever).
    if *ctx.held_lock() != 0 {
        return Err(Fault::Helper {
            id: 93,
            why: "a bpf_spin_lock is already held",
        });
    }
    let b = ctx.read(a[0], 4)?;
    let w = crate::maps::shmem::lock_word(a[0], b).ok_or(Fault::Helper {
        id: 93,
        why: "unaligned spin lock",
    })?;
    // Holders are programs (short critical sections, no helper calls) and BPF_F_LOCK
    // copies: a second is far beyond any of them.
    if !crate::maps::spin_lock(w, std::time::Duration::from_secs(1)) {
        return Err(Fault::Helper {
            id: 93,
            why: "bpf_spin_lock held for over a second",
        });
    }
    *ctx.held_lock() = a[0];
    Ok(0)
}

/// `long bpf_spin_unlock(struct bpf_spin_lock *lock)`.
pub fn spin_unlock(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    if *ctx.held_lock() != a[0] {
        return Err(Fault::Helper {
            id: 94,
            why: "bpf_spin_unlock of a lock this run does not hold",
        });
    }
    let b = ctx.read(a[0], 4)?;
    let w = crate::maps::shmem::lock_word(a[0], b).ok_or(Fault::Helper {
        id: 94,
        why: "unaligned spin lock",
    })?;
    w.store(0, Ordering::Release);
    *ctx.held_lock() = 0;
    Ok(0)
}

/// `long bpf_perf_event_output(ctx, map, flags, data, size)` (XDP: the kernel's
/// `bpf_xdp_event_output`): a sample of `data` followed by the first `(flags >> 32) &
/// 0xfffff` bytes of the packet, into the perf event at the index in the low 32 bits
/// of `flags` (`BPF_F_CURRENT_CPU`: this CPU's).
pub fn perf_event_output(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    use crate::maps::perf_event_array::PerfEventArray;
    const BPF_F_INDEX_MASK: u64 = 0xffff_ffff;
    const BPF_F_CTXLEN_MASK: u64 = 0xf_ffff << 32;
    let flags = a[2];
    let Some(arr) = super::map::map_of(ctx, a[1])?
        .as_any()
        .downcast_ref::<PerfEventArray>()
    else {
        return Ok(-(libc::EINVAL as i64) as u64);
    };
    if flags & !(BPF_F_CTXLEN_MASK | BPF_F_INDEX_MASK) != 0 {
        return Ok(-(libc::EINVAL as i64) as u64);
    }
    let ctx_len = (flags & BPF_F_CTXLEN_MASK) >> 32;
    let (pkt, pkt_len) = {
        let x = ctx.xdp();
        (x.data, x.data_end - x.data)
    };
    if ctx_len > pkt_len {
        return Ok(-(libc::EFAULT as i64) as u64);
    }
    let cpu = ctx.cpu();
    let data = ctx.read(a[3], a[4] as usize)?;
    let packet = ctx.read(pkt, ctx_len as usize)?;
    Ok(arr.output(flags, &[data, packet], cpu) as u64)
}
