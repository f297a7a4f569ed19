//! `bpf_fib_lookup` and `bpf_check_mtu` for XDP, answered by the host
//! ([`HostEnv`](crate::run::HostEnv): routes, neighbours and MTUs of the run's
//! network namespace).

use crate::run::{Fault, HelperCtx};

/// sizeof(struct bpf_fib_lookup).
pub const FIB_PARAMS_SIZE: usize = 64;
/// DIRECT | OUTPUT | SKIP_NEIGH | TBID | SRC | MARK.
const FIB_FLAGS: u64 = 0x3f;
const ETH_HLEN: i64 = 14;

/// `long bpf_fib_lookup(ctx, params, plen, flags)`.
pub fn fib_lookup(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    if a[2] as usize != FIB_PARAMS_SIZE {
        return Ok(-(libc::EINVAL as i64) as u64);
    }
    if a[3] & !FIB_FLAGS != 0 {
        return Ok(-(libc::EINVAL as i64) as u64);
    }
    let mut p = ctx.read(a[1], FIB_PARAMS_SIZE)?.to_vec();
    let family = p[0];
    if family as i32 != libc::AF_INET && family as i32 != libc::AF_INET6 {
        return Ok(-(libc::EAFNOSUPPORT as i64) as u64);
    }
    match ctx.host().fib_lookup(&mut p, a[3] as u32) {
        Some(r) => {
            ctx.write(a[1], FIB_PARAMS_SIZE)?.copy_from_slice(&p);
            Ok(r as u64)
        }
        None => {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                tracing::warn!("bpf_fib_lookup: no routing service on this host: -EOPNOTSUPP")
            });
            Ok(-(libc::EOPNOTSUPP as i64) as u64)
        }
    }
}

/// `long bpf_check_mtu(ctx, ifindex, *mtu_len, len_diff, flags)` (XDP variant).
pub fn check_mtu(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    if a[4] != 0 {
        return Ok(-(libc::EINVAL as i64) as u64);
    }
    let x = *ctx.xdp();
    let ifindex = if a[1] as u32 == 0 {
        x.ingress_ifindex
    } else {
        a[1] as u32
    };
    let Some(mtu) = ctx.host().mtu(ifindex) else {
        return Ok(-(libc::ENODEV as i64) as u64);
    };
    let mtu_len = u32::from_ne_bytes(ctx.read(a[2], 4)?.try_into().unwrap());
    let dev_len = mtu as i64 + ETH_HLEN;
    let mut len = if mtu_len != 0 {
        mtu_len as i64 + ETH_HLEN
    } else {
        (x.data_end - x.data) as i64
    };
    len += a[3] as i32 as i64;
    let ret = if len > dev_len { 1 } else { 0 };
    ctx.write(a[2], 4)?.copy_from_slice(&mtu.to_ne_bytes());
    Ok(ret)
}
