//! `bpf_redirect` and `bpf_redirect_map` for XDP (net/core/filter.c
//! `bpf_xdp_redirect`, `__bpf_xdp_redirect_map`): they record the target in the
//! run's [`RedirectInfo`](crate::run::RedirectInfo); the data plane acts on it
//! after an XDP_REDIRECT verdict.

use crate::maps::devmap::DevMap;
use crate::run::{Fault, HelperCtx, XDP_ABORTED, XDP_REDIRECT};

pub const BPF_F_BROADCAST: u64 = 1 << 3;
pub const BPF_F_EXCLUDE_INGRESS: u64 = 1 << 4;
/// XDP_ABORTED | XDP_DROP | XDP_PASS | XDP_TX: the miss verdict in the low bits.
const ACTION_MASK: u64 = 3;

/// `long bpf_redirect(ifindex, flags)`: XDP_ABORTED with any flag, else XDP_REDIRECT.
pub fn redirect(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    if a[1] != 0 {
        return Ok(XDP_ABORTED as u64);
    }
    let ri = ctx.redirect();
    ri.ifindex = a[0] as u32;
    ri.flags = 0;
    ri.map = None;
    ri.key = 0;
    Ok(XDP_REDIRECT as u64)
}

/// `long bpf_redirect_map(map, key, flags)`: XDP_REDIRECT when `key` is in the
/// DEVMAP/DEVMAP_HASH (or with BPF_F_BROADCAST), else `flags & 3`.
pub fn redirect_map(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    let handle = a[0];
    let key = a[1] as u32;
    let flags = a[2];
    let map = ctx.map(handle).ok_or(Fault::BadMap { handle })?.clone();
    let Some(dm) = map.as_any().downcast_ref::<DevMap>() else {
        // XSKMAP / CPUMAP are not implemented: nothing to redirect to.
        if flags & !ACTION_MASK != 0 {
            return Ok(XDP_ABORTED as u64);
        }
        return Ok(flags & ACTION_MASK);
    };
    if flags & !(ACTION_MASK | BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS) != 0 {
        return Ok(XDP_ABORTED as u64);
    }
    let entry = dm.get(key);
    let broadcast = flags & BPF_F_BROADCAST != 0;
    let ri = ctx.redirect();
    match entry {
        None if !broadcast => {
            ri.map = None;
            ri.ifindex = 0;
            ri.key = 0;
            ri.flags = 0;
            Ok(flags & ACTION_MASK)
        }
        e => {
            ri.ifindex = e.map_or(0, |e| e.ifindex);
            ri.key = key;
            ri.map = Some(map);
            ri.flags = if broadcast { flags } else { 0 };
            Ok(XDP_REDIRECT as u64)
        }
    }
}
