//! `bpf_csum_diff` (net/core/filter.c, the 6.12+ form folded to 16 bits with
//! `csum_from32to16`, on x86's `csum_partial`).

use crate::run::{Fault, HelperCtx};

/// x86_64 `csum_partial`: 64-bit one's-complement sum of little-endian words
/// (a short tail zero-padded), folded to 32 bits.
pub fn csum_partial(buf: &[u8], seed: u32) -> u32 {
    let mut acc: u128 = seed as u128;
    let mut chunks = buf.chunks_exact(8);
    for c in &mut chunks {
        acc += u64::from_le_bytes(c.try_into().unwrap()) as u128;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        acc += u64::from_le_bytes(b) as u128;
    }
    // Fold 128 -> 64 -> 32 with end-around carries.
    let mut s = (acc as u64 as u128) + (acc >> 64);
    s = (s as u64 as u128) + (s >> 64);
    let s = s as u64;
    let mut x = (s & 0xffff_ffff) + (s >> 32);
    x = (x & 0xffff_ffff) + (x >> 32);
    x as u32
}

fn csum_add(a: u32, b: u32) -> u32 {
    let (r, c) = a.overflowing_add(b);
    r.wrapping_add(c as u32)
}

fn csum_sub(a: u32, b: u32) -> u32 {
    csum_add(a, !b)
}

/// The kernel's `csum_from32to16`: 16-bit one's-complement fold with carries.
fn csum_from32to16(sum: u32) -> u32 {
    let mut x = (sum & 0xffff) + (sum >> 16);
    x = (x & 0xffff) + (x >> 16);
    x
}

/// The value `bpf_csum_diff` computes (6.12+: always folded to 16 bits).
pub fn diff(from: &[u8], to: &[u8], seed: u32) -> u64 {
    let ret = if !from.is_empty() && !to.is_empty() {
        csum_sub(csum_partial(to, seed), csum_partial(from, 0))
    } else if !to.is_empty() {
        csum_partial(to, seed)
    } else if !from.is_empty() {
        !csum_partial(from, !seed)
    } else {
        seed
    };
    csum_from32to16(ret) as u64
}

/// `s64 bpf_csum_diff(from, from_size, to, to_size, seed)`.
pub fn csum_diff(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    let from = if a[1] == 0 {
        Vec::new()
    } else {
        ctx.read(a[0], a[1] as usize)?.to_vec()
    };
    let to = if a[3] == 0 {
        &[][..]
    } else {
        ctx.read(a[2], a[3] as usize)?
    };
    Ok(diff(&from, to, a[4] as u32))
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernel_selftest_values() {
        // tools/testing/selftests/bpf/prog_tests/test_csum_diff.c push case 1.
        let to = 0xdeadbeefdeadbeefu64.to_le_bytes();
        assert_eq!(super::diff(&[], &to, 0), 0x3b3b);
        assert_eq!(super::diff(&[], &[], 7), 7);
        // Diffing a buffer against itself gives 0 (or its one's-complement twin).
        let d = super::diff(&to, &to, 0);
        assert!(d == 0 || d == 0xffff, "{d:#x}");
    }
}
