//! The kernel-side stubs, built as raw eBPF instructions (no clang at run time).
//!
//! - the redirect stub, attached to the interface:
//!   `return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);`
//!   An empty XSKMAP slot (the daemon died, the socket closed) falls back to XDP_PASS.
//! - the pass stub, run with `BPF_PROG_TEST_RUN` live frames: `return XDP_PASS;`
//!
//! In generic (SKB) mode a frame the pass stub hands to the stack goes through
//! `netif_receive_skb` and so meets the generic XDP hook of the same interface again:
//! without care it would come straight back to the socket. Both stubs then share a
//! per-CPU "reinjection token" array: the pass stub adds one token, and the redirect
//! stub, finding a token, takes it and returns XDP_PASS. Live-frame test runs hand
//! their frames to the stack synchronously, on the same CPU, with bottom halves
//! disabled (`xdp_test_run_batch`), so the token is consumed by exactly that frame
//! (unless RPS steers it to another CPU: see the crate docs). Native (DRV) mode runs
//! the stub in the driver, not in `netif_receive_skb`, and needs no token.

/// One eBPF instruction, encoded (little-endian layout: code, regs, off, imm).
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    (code as u64)
        | ((dst as u64 & 0xf) << 8)
        | ((src as u64 & 0xf) << 12)
        | ((off as u16 as u64) << 16)
        | ((imm as u32 as u64) << 32)
}

const BPF_PSEUDO_MAP_FD: u8 = 1;
const XDP_PASS: i32 = 2;
const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
const HELPER_REDIRECT_MAP: i32 = 51;

fn ld_map_fd(dst: u8, fd: i32) -> [u64; 2] {
    [insn(0x18, dst, BPF_PSEUDO_MAP_FD, 0, fd), 0]
}
fn mov64_imm(dst: u8, imm: i32) -> u64 {
    insn(0xb7, dst, 0, 0, imm)
}
fn mov64_reg(dst: u8, src: u8) -> u64 {
    insn(0xbf, dst, src, 0, 0)
}
fn add64_imm(dst: u8, imm: i32) -> u64 {
    insn(0x07, dst, 0, 0, imm)
}
fn ldx_w(dst: u8, src: u8, off: i16) -> u64 {
    insn(0x61, dst, src, off, 0)
}
fn stx_w(dst: u8, src: u8, off: i16) -> u64 {
    insn(0x63, dst, src, off, 0)
}
fn st_w(dst: u8, off: i16, imm: i32) -> u64 {
    insn(0x62, dst, 0, off, imm)
}
fn jeq_imm(dst: u8, imm: i32, off: i16) -> u64 {
    insn(0x15, dst, 0, off, imm)
}
fn call(helper: i32) -> u64 {
    insn(0x85, 0, 0, 0, helper)
}
fn exit() -> u64 {
    insn(0x95, 0, 0, 0, 0)
}

/// `r0 = bpf_map_lookup_elem(token_map, &(u32)0)` (clobbers r1-r5).
fn lookup_token(token_map: i32) -> Vec<u64> {
    let mut v = vec![st_w(10, -4, 0), mov64_reg(2, 10), add64_imm(2, -4)];
    v.extend(ld_map_fd(1, token_map));
    v.push(call(HELPER_MAP_LOOKUP_ELEM));
    v
}

/// The redirect stub. `token_map`: the per-CPU token array (generic mode), or None.
pub fn redirect_stub(xsks_map: i32, token_map: Option<i32>) -> Vec<u64> {
    let mut v = Vec::new();
    if let Some(tok) = token_map {
        v.push(mov64_reg(6, 1));
        v.extend(lookup_token(tok));
        // if (!r0) goto redirect; r1 = *r0; if (!r1) goto redirect; *r0 = r1 - 1; return PASS;
        v.push(jeq_imm(0, 0, 6));
        v.push(ldx_w(1, 0, 0));
        v.push(jeq_imm(1, 0, 4));
        v.push(add64_imm(1, -1));
        v.push(stx_w(0, 1, 0));
        v.push(mov64_imm(0, XDP_PASS));
        v.push(exit());
        v.push(mov64_reg(1, 6));
    }
    // redirect: r2 = ctx->rx_queue_index; r1 = xsks; r3 = XDP_PASS; return redirect_map(...)
    v.push(ldx_w(2, 1, 16));
    v.extend(ld_map_fd(1, xsks_map));
    v.push(mov64_imm(3, XDP_PASS));
    v.push(call(HELPER_REDIRECT_MAP));
    v.push(exit());
    v
}

/// The pass stub run by live-frame test runs; adds a token in generic mode.
pub fn pass_stub(token_map: Option<i32>) -> Vec<u64> {
    let mut v = Vec::new();
    if let Some(tok) = token_map {
        v.extend(lookup_token(tok));
        // if (r0) { r1 = *r0; r1 += 1; *r0 = r1; }
        v.push(jeq_imm(0, 0, 3));
        v.push(ldx_w(1, 0, 0));
        v.push(add64_imm(1, 1));
        v.push(stx_w(0, 1, 0));
    }
    v.push(mov64_imm(0, XDP_PASS));
    v.push(exit());
    v
}

/// The TC ingress program of the reinjection TAP (`tap`):
/// `return bpf_redirect(target_ifindex, BPF_F_INGRESS);` (TC_ACT_REDIRECT).
pub fn tap_redirect_stub(target_ifindex: u32) -> Vec<u64> {
    const HELPER_REDIRECT: i32 = 23;
    const BPF_F_INGRESS: i32 = 1;
    vec![
        mov64_imm(1, target_ifindex as i32),
        mov64_imm(2, BPF_F_INGRESS),
        call(HELPER_REDIRECT),
        exit(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_kernel() {
        // r2 = *(u32 *)(r1 + 16): 61 12 10 00 00 00 00 00
        assert_eq!(
            ldx_w(2, 1, 16).to_le_bytes(),
            [0x61, 0x12, 0x10, 0, 0, 0, 0, 0]
        );
        // r1 = map fd 7 (ld_imm64 src=1): 18 11 00 00 07 00 00 00
        assert_eq!(
            ld_map_fd(1, 7)[0].to_le_bytes(),
            [0x18, 0x11, 0, 0, 7, 0, 0, 0]
        );
        // *(u32 *)(r10 - 4) = 0: 62 0a fc ff 00 00 00 00
        assert_eq!(
            st_w(10, -4, 0).to_le_bytes(),
            [0x62, 0x0a, 0xfc, 0xff, 0, 0, 0, 0]
        );
        assert_eq!(
            add64_imm(2, -4).to_le_bytes(),
            [0x07, 0x02, 0, 0, 0xfc, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn token_jumps_land_on_the_redirect_tail() {
        let v = redirect_stub(3, Some(4));
        // The first jeq (index 7: mov, st, mov, add, ld_imm64 x2, call) jumps +6 to
        // index 14, the `r1 = r6` that starts the redirect tail.
        let jeq = 7;
        assert_eq!(v[jeq] & 0xff, 0x15);
        let off = ((v[jeq] >> 16) & 0xffff) as i16 as usize;
        assert_eq!(v[jeq + 1 + off], mov64_reg(1, 6));
        let off2 = ((v[jeq + 2] >> 16) & 0xffff) as i16 as usize;
        assert_eq!(v[jeq + 3 + off2], mov64_reg(1, 6));
        assert_eq!(*v.last().unwrap(), exit());
    }
}
