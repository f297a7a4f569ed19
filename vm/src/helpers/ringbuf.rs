//! Ring buffer helpers (kernel/bpf/ringbuf.c).

use crate::maps::ringbuf::RingBuf;
use crate::mem::Region;
use crate::run::{Fault, HelperCtx};

use super::map::map_of;

fn ring<'a>(ctx: &dyn HelperCtx, h: u64) -> Result<Option<&'a RingBuf>, Fault> {
    Ok(map_of(ctx, h)?.as_any().downcast_ref::<RingBuf>())
}

/// `long bpf_ringbuf_output(ringbuf, data, size, flags)`.
pub fn output(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    let Some(rb) = ring(ctx, a[0])? else {
        return Ok(-(libc::EINVAL as i64) as u64);
    };
    let data = ctx.read(a[1], a[2] as usize)?;
    Ok(rb.output(data, a[3]) as u64)
}

/// `void *bpf_ringbuf_reserve(ringbuf, size, flags)`.
pub fn reserve(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    let Some(rb) = ring(ctx, a[0])? else {
        return Ok(0);
    };
    if a[2] != 0 {
        return Ok(0);
    }
    match rb.reserve(a[1]) {
        Some(p) => {
            ctx.add_region(Region::new(p, a[1], true));
            Ok(p)
        }
        None => Ok(0),
    }
}

fn commit(ctx: &mut dyn HelperCtx, a: [u64; 5], discard: bool, id: u32) -> Result<u64, Fault> {
    let rb = RingBuf::from_record(a[0]).ok_or(Fault::Helper {
        id,
        why: "not a ring buffer record",
    })?;
    rb.commit(a[0], a[1], discard).map_err(|_| Fault::Helper {
        id,
        why: "record not reserved",
    })?;
    // The record belongs to the reader now: the program may not write it again.
    ctx.remove_region(a[0]);
    Ok(0)
}

/// `void bpf_ringbuf_submit(data, flags)`.
pub fn submit(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    commit(ctx, a, false, 132)
}

/// `void bpf_ringbuf_discard(data, flags)`.
pub fn discard(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    commit(ctx, a, true, 133)
}

/// `u64 bpf_ringbuf_query(ringbuf, flags)`.
pub fn query(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    Ok(ring(ctx, a[0])?.map_or(0, |rb| rb.query(a[1])))
}
