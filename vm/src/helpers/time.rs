//! Clock helpers (`clock_gettime`, the one kernel interface of this module).

use crate::run::{Fault, HelperCtx};

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only into the timespec we pass.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// `u64 bpf_ktime_get_ns(void)`: CLOCK_MONOTONIC, as the kernel's ktime_get_mono_fast_ns.
pub fn ktime_get_ns(_ctx: &mut dyn HelperCtx, _a: [u64; 5]) -> Result<u64, Fault> {
    Ok(clock_ns(libc::CLOCK_MONOTONIC))
}

/// `u64 bpf_ktime_get_boot_ns(void)`: CLOCK_BOOTTIME.
pub fn ktime_get_boot_ns(_ctx: &mut dyn HelperCtx, _a: [u64; 5]) -> Result<u64, Fault> {
    Ok(clock_ns(libc::CLOCK_BOOTTIME))
}

/// `u64 bpf_ktime_get_coarse_ns(void)`: CLOCK_MONOTONIC_COARSE.
pub fn ktime_get_coarse_ns(_ctx: &mut dyn HelperCtx, _a: [u64; 5]) -> Result<u64, Fault> {
    Ok(clock_ns(libc::CLOCK_MONOTONIC_COARSE))
}

/// `u64 bpf_ktime_get_tai_ns(void)`: CLOCK_TAI.
pub fn ktime_get_tai_ns(_ctx: &mut dyn HelperCtx, _a: [u64; 5]) -> Result<u64, Fault> {
    Ok(clock_ns(libc::CLOCK_TAI))
}

/// CONFIG_HZ of Debian's kernels.
const HZ: u64 = 250;
/// The kernel's INITIAL_JIFFIES offset (jiffies wrap 5 minutes after boot).
const INITIAL_JIFFIES: u64 = (-300i64 * HZ as i64) as u32 as u64;

/// `u64 bpf_jiffies64(void)`: jiffies since boot at CONFIG_HZ.
pub fn jiffies64(_ctx: &mut dyn HelperCtx, _a: [u64; 5]) -> Result<u64, Fault> {
    let ns = clock_ns(libc::CLOCK_BOOTTIME);
    Ok(INITIAL_JIFFIES.wrapping_add(ns / (1_000_000_000 / HZ)))
}
