//! Map helpers: lookup/update/delete, push/pop/peek, for_each_map_elem.

use crate::maps::Map;
use crate::run::{Fault, HelperCtx};

/// The map behind handle `h`, borrowed for the rest of the helper call.
#[inline]
pub(crate) fn map_of<'a>(ctx: &dyn HelperCtx, h: u64) -> Result<&'a dyn Map, Fault> {
    let m: *const dyn Map = &**ctx.map(h).ok_or(Fault::BadMap { handle: h })?;
    // SAFETY: the run holds a strong reference to every map it can resolve (the
    // program's map table, or maps added with `add_map`) until the run ends, and
    // `HelperCtx` offers no way to drop one; a helper call ends before the run does.
    Ok(unsafe { &*m })
}

/// Call `f` with a copy of `len` region-checked bytes at `addr` (keys, values).
#[inline]
pub(crate) fn with_bytes<R>(
    ctx: &mut dyn HelperCtx,
    addr: u64,
    len: usize,
    f: impl FnOnce(&mut dyn HelperCtx, &[u8]) -> R,
) -> Result<R, Fault> {
    if len <= 64 {
        let mut b = [0u8; 64];
        let src = ctx.read(addr, len)?;
        // Constant lengths for the usual key sizes: inline copies, no memcpy call.
        match len {
            4 => b[..4].copy_from_slice(src),
            8 => b[..8].copy_from_slice(src),
            16 => b[..16].copy_from_slice(src),
            _ => b[..len].copy_from_slice(src),
        }
        Ok(f(ctx, &b[..len]))
    } else {
        let v = ctx.read(addr, len)?.to_vec();
        Ok(f(ctx, &v))
    }
}

/// `void *bpf_map_lookup_elem(map, key)`.
pub fn lookup(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    let map = map_of(ctx, a[0])?;
    let ks = map.attr().key_size as usize;
    with_bytes(ctx, a[1], ks, |ctx, k| map.prog_lookup(ctx, k))
}

/// `long bpf_map_update_elem(map, key, value, flags)`.
pub fn update(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    let map = map_of(ctx, a[0])?;
    let ks = map.attr().key_size as usize;
    let vs = map.attr().value_size as usize;
    let r = with_bytes(ctx, a[1], ks, |ctx, k| {
        with_bytes(ctx, a[2], vs, |ctx, v| map.prog_update(ctx, k, v, a[3]))
    })??;
    Ok(r as u64)
}

/// `long bpf_map_delete_elem(map, key)`.
pub fn delete(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    let map = map_of(ctx, a[0])?;
    let ks = map.attr().key_size as usize;
    Ok(with_bytes(ctx, a[1], ks, |ctx, k| map.prog_delete(ctx, k))? as u64)
}

/// `long bpf_map_push_elem(map, value, flags)`.
pub fn push(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    let map = map_of(ctx, a[0])?;
    let vs = map.attr().value_size as usize;
    Ok(with_bytes(ctx, a[1], vs, |ctx, v| map.prog_push(ctx, v, a[2]))? as u64)
}

fn pop_or_peek(ctx: &mut dyn HelperCtx, a: [u64; 5], delete: bool) -> Result<u64, Fault> {
    let map = map_of(ctx, a[0])?;
    let vs = map.attr().value_size as usize;
    ctx.write(a[1], vs)?;
    let mut buf = vec![0u8; vs];
    let r = map.prog_pop(ctx, &mut buf, delete);
    if r == 0 {
        ctx.write(a[1], vs)?.copy_from_slice(&buf);
    }
    Ok(r as u64)
}

/// `long bpf_map_pop_elem(map, value)`.
pub fn pop(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    pop_or_peek(ctx, a, true)
}

/// `long bpf_map_peek_elem(map, value)`.
pub fn peek(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    pop_or_peek(ctx, a, false)
}

/// `long bpf_for_each_map_elem(map, callback_fn, callback_ctx, flags)`: calls
/// `callback_fn(map, key, value, callback_ctx)` for each element until it returns
/// non-zero; returns the number of elements visited.
pub fn for_each(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    if a[3] != 0 {
        return Ok(-(libc::EINVAL as i64) as u64);
    }
    let map = map_of(ctx, a[0])?;
    let (handle, func, cb_ctx) = (a[0], a[1], a[2]);
    let mut f = |ctx: &mut dyn HelperCtx, k: u64, v: u64| ctx.call(func, [handle, k, v, cb_ctx, 0]);
    Ok(map.prog_for_each(ctx, &mut f)? as u64)
}
