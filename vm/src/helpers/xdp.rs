//! XDP packet helpers with the kernel's bounds (net/core/filter.c):
//! adjust_head/meta/tail, get_buff_len, load/store_bytes.

use crate::run::{Fault, HelperCtx, XdpCtx};

/// sizeof(struct xdp_frame) on 6.14+ x86_64: the head of the headroom the kernel
/// keeps for the frame descriptor.
pub const XDP_FRAME_SIZE: u64 = 40;
const ETH_HLEN: u64 = 14;
/// type_max(skb_shared_info.meta_len): metadata up to 255 bytes (4-aligned).
const META_MAX: u64 = 255;

/// The bytes `[from, to)` of the run's frame, which may lie outside the packet
/// regions a program may touch (headroom, tailroom); borrowed from the run.
fn frame_bytes(ctx: &mut dyn HelperCtx, from: u64, to: u64) -> Result<&mut [u8], Fault> {
    let x: XdpCtx = *ctx.xdp();
    if from < x.hard_start || to > x.frame_end || from > to {
        return Err(Fault::Helper {
            id: 0,
            why: "xdp frame bounds",
        });
    }
    // SAFETY: `XdpCtx`'s contract (run.rs): [hard_start, frame_end) is one frame buffer
    // owned by the run for its whole duration; the range was checked against it, and
    // the result borrows the run's context mutably, so no other access overlaps.
    Ok(unsafe { std::slice::from_raw_parts_mut(from as *mut u8, (to - from) as usize) })
}

fn einval() -> u64 {
    -(libc::EINVAL as i64) as u64
}

/// `long bpf_xdp_adjust_head(xdp_md, delta)`.
pub fn adjust_head(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    let off = a[1] as i32 as i64;
    let x = *ctx.xdp();
    let meta_ok = x.data_meta <= x.data;
    let metalen = if meta_ok { x.data - x.data_meta } else { 0 };
    let frame_end = x.hard_start + XDP_FRAME_SIZE;
    let data = x.data.wrapping_add(off as u64) as i64;
    if data < (frame_end + metalen) as i64 || data > x.data_end as i64 - ETH_HLEN as i64 {
        return Ok(einval());
    }
    let data = data as u64;
    if metalen > 0 {
        // memmove(data_meta + off, data_meta, metalen), inside the frame.
        let new_meta = x.data_meta.wrapping_add(off as u64);
        let (lo, hi) = (
            new_meta.min(x.data_meta),
            new_meta.max(x.data_meta) + metalen,
        );
        let buf = frame_bytes(ctx, lo, hi)?;
        let (src, dst) = ((x.data_meta - lo) as usize, (new_meta - lo) as usize);
        buf.copy_within(src..src + metalen as usize, dst);
    }
    let xm = ctx.xdp();
    xm.data_meta = xm.data_meta.wrapping_add(off as u64);
    xm.data = data;
    Ok(0)
}

/// `long bpf_xdp_adjust_meta(xdp_md, delta)`.
pub fn adjust_meta(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    let off = a[1] as i32 as i64;
    let x = *ctx.xdp();
    if x.data_meta > x.data {
        return Ok(-524i64 as u64);
    }
    let meta = x.data_meta as i64 + off;
    if meta < (x.hard_start + XDP_FRAME_SIZE) as i64 || meta > x.data as i64 {
        return Ok(einval());
    }
    let metalen = x.data - meta as u64;
    if !metalen.is_multiple_of(4) || metalen > META_MAX {
        return Ok(-(libc::EACCES as i64) as u64);
    }
    ctx.xdp().data_meta = meta as u64;
    Ok(0)
}

/// `long bpf_xdp_adjust_tail(xdp_md, delta)`: growing zero-fills.
pub fn adjust_tail(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    let off = a[1] as i32 as i64;
    let x = *ctx.xdp();
    let end = x.data_end as i64 + off;
    if end > x.frame_end as i64 || end < (x.data + ETH_HLEN) as i64 {
        return Ok(einval());
    }
    if off > 0 {
        frame_bytes(ctx, x.data_end, end as u64)?.fill(0);
    }
    ctx.xdp().data_end = end as u64;
    Ok(0)
}

/// `u64 bpf_xdp_get_buff_len(xdp_md)`.
pub fn get_buff_len(ctx: &mut dyn HelperCtx, _a: [u64; 5]) -> Result<u64, Fault> {
    let x = ctx.xdp();
    Ok(x.data_end - x.data)
}

/// Address of `[offset, offset+len)` of the packet, or the helper's errno
/// (the kernel's `bpf_xdp_pointer`, single buffer).
fn pkt_range(ctx: &mut dyn HelperCtx, offset: u64, len: u64) -> Result<u64, i64> {
    if offset > 0xffff || len > 0xffff {
        return Err(-(libc::EFAULT as i64));
    }
    let x = ctx.xdp();
    if offset + len > x.data_end - x.data {
        return Err(-(libc::EINVAL as i64));
    }
    Ok(x.data + offset)
}

/// `long bpf_xdp_load_bytes(xdp_md, offset, buf, len)`.
pub fn load_bytes(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    let len = a[3] as u32 as u64;
    let src = match pkt_range(ctx, a[1] as u32 as u64, len) {
        Ok(p) => p,
        Err(e) => return Ok(e as u64),
    };
    let data = ctx.read(src, len as usize)?.to_vec();
    ctx.write(a[2], len as usize)?.copy_from_slice(&data);
    Ok(0)
}

/// `long bpf_xdp_store_bytes(xdp_md, offset, buf, len)`.
pub fn store_bytes(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    let len = a[3] as u32 as u64;
    let dst = match pkt_range(ctx, a[1] as u32 as u64, len) {
        Ok(p) => p,
        Err(e) => return Ok(e as u64),
    };
    let data = ctx.read(a[2], len as usize)?.to_vec();
    ctx.write(dst, len as usize)?.copy_from_slice(&data);
    Ok(0)
}
