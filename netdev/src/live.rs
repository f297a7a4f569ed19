//! Live-frame test runs of a bpftime program (`BPF_PROG_TEST_RUN` with
//! `BPF_F_TEST_XDP_LIVE_FRAMES`, the kernel's `bpf_test_run_xdp_live`): each repetition
//! runs the program in the VM on a fresh copy of the packet, then its verdict is carried
//! out by the real kernel, with a real live-frame test run of a tiny stub on the bytes
//! the program left:
//! - XDP_PASS: the pass stub (`return XDP_PASS`): the frame enters the stack as
//!   received on the ingress interface;
//! - XDP_TX: a stub returning XDP_TX: the kernel turns it into a redirect to the
//!   ingress device, as in `bpf_test_run_xdp_live`;
//! - XDP_REDIRECT: per target (by ifindex, DEVMAP/DEVMAP_HASH entry, broadcast) a stub
//!   `return bpf_redirect(ifindex, 0)`; so the device's `ndo_xdp_xmit` decides, as it
//!   would for the kernel's own run (a veth drops unless its peer has XDP set up);
//! - anything else: nothing.
//!
//! [`run_live`] must be called from a thread in the caller's network namespace: the
//! ifindexes resolve there.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use bpftime_vm::program::Program;
use bpftime_vm::run::{HostEnv, XdpCtx};

use crate::sys;
use crate::worker::resolve_targets;

const XDP_ABORTED: u32 = 0;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;
/// `BPF_FUNC_redirect`.
const HELPER_REDIRECT: i32 = 23;
const FRAME: usize = 4096;
const HEADROOM: usize = 256;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))` on x86_64.
const TAILROOM: usize = 320;

/// What a live run did, per verdict of the program (repetitions).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LiveCounts {
    pub pass: u64,
    pub tx: u64,
    pub redirect: u64,
    pub drop: u64,
    pub aborted: u64,
    /// Frames the kernel refused to take (its test run failed), or redirects with no
    /// target or to a DEVMAP entry with its own program (not carried out).
    pub failed: u64,
    /// Mean nanoseconds per repetition of the program in the VM.
    pub duration_ns: u32,
}

/// The kernel stubs, loaded once (program fds are not namespaced).
struct Stubs {
    pass: OwnedFd,
    tx: OwnedFd,
    redirect: HashMap<u32, Arc<OwnedFd>>,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    code as u64
        | ((dst as u64) << 8)
        | ((src as u64) << 12)
        | ((off as u16 as u64) << 16)
        | ((imm as u32 as u64) << 32)
}
fn mov64_imm(dst: u8, imm: i32) -> u64 {
    insn(0xb7, dst, 0, 0, imm)
}
fn exit() -> u64 {
    insn(0x95, 0, 0, 0, 0)
}

fn stubs() -> io::Result<&'static Mutex<Stubs>> {
    static S: OnceLock<Mutex<Stubs>> = OnceLock::new();
    if let Some(s) = S.get() {
        return Ok(s);
    }
    let pass = sys::prog_load_xdp(&crate::stub::pass_stub(None), "bpftime_pass")?;
    let tx = sys::prog_load_xdp(&[mov64_imm(0, XDP_TX as i32), exit()], "bpftime_tx")?;
    Ok(S.get_or_init(|| {
        Mutex::new(Stubs {
            pass,
            tx,
            redirect: HashMap::new(),
        })
    }))
}

fn redirect_stub(ifindex: u32) -> io::Result<Arc<OwnedFd>> {
    let s = stubs()?;
    if let Some(p) = s.lock().unwrap().redirect.get(&ifindex) {
        return Ok(p.clone());
    }
    let insns = [
        mov64_imm(1, ifindex as i32),
        mov64_imm(2, 0),
        insn(0x85, 0, 0, 0, HELPER_REDIRECT),
        exit(),
    ];
    let p = Arc::new(sys::prog_load_xdp(&insns, "bpftime_redir")?);
    let mut g = s.lock().unwrap();
    if g.redirect.len() > 256 {
        g.redirect.clear();
    }
    g.redirect.insert(ifindex, p.clone());
    Ok(p)
}

/// Runs `prog` `repeat` times on fresh copies of `data` (its first `meta_len` bytes
/// are metadata) as received on `ingress_ifindex` queue `rx_queue`, and carries out
/// each verdict in the kernel (see the module). Call from a thread in the caller's
/// network namespace. Errors: only the stubs' load (the kernel's errno).
pub fn run_live(
    prog: &Program,
    host: &dyn HostEnv,
    data: &[u8],
    meta_len: usize,
    ingress_ifindex: u32,
    rx_queue: u32,
    repeat: u32,
) -> io::Result<LiveCounts> {
    let (pass, tx) = {
        let s = stubs()?.lock().unwrap();
        (s.pass.try_clone()?, s.tx.try_clone()?)
    };
    let mut c = LiveCounts::default();
    if meta_len > data.len() || HEADROOM < meta_len || data.len() > FRAME - HEADROOM - TAILROOM {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut buf = vec![0u8; FRAME];
    let mut vm_ns = 0u128;
    let mut timer = bpftime_vm::run::RepeatTimer::new(host);
    for _ in 0..repeat.max(1) {
        timer.tick().map_err(io::Error::from_raw_os_error)?;
        let start = HEADROOM - meta_len;
        buf[start..start + data.len()].copy_from_slice(data);
        let hard = buf.as_mut_ptr() as u64;
        let mut ctx = XdpCtx {
            data_meta: hard + start as u64,
            data: hard + HEADROOM as u64,
            data_end: hard + (start + data.len()) as u64,
            ingress_ifindex,
            rx_queue_index: rx_queue,
            egress_ifindex: 0,
            _pad: 0,
            hard_start: hard,
            frame_end: hard + (FRAME - TAILROOM) as u64,
        };
        let t0 = Instant::now();
        let r = prog.run_xdp(&mut ctx, 0, host);
        vm_ns += t0.elapsed().as_nanos();
        let sane = hard <= ctx.data_meta
            && ctx.data_meta <= ctx.data
            && ctx.data <= ctx.data_end
            && ctx.data_end <= hard + FRAME as u64;
        if !sane {
            c.aborted += 1;
            continue;
        }
        let (m, d, e) = (
            (ctx.data_meta - hard) as usize,
            (ctx.data - hard) as usize,
            (ctx.data_end - hard) as usize,
        );
        let frame = &buf[m..e];
        let meta = (d - m) as u32;
        let live = |p: &OwnedFd, c: &mut LiveCounts| {
            if let Err(err) = sys::test_run_live(p, frame, meta, ingress_ifindex, rx_queue) {
                tracing::debug!("live frame: {err}");
                c.failed += 1;
            }
        };
        match r.verdict {
            XDP_PASS => {
                c.pass += 1;
                live(&pass, &mut c);
            }
            XDP_TX => {
                c.tx += 1;
                live(&tx, &mut c);
            }
            XDP_REDIRECT => {
                c.redirect += 1;
                match resolve_targets(&r.redirect, ingress_ifindex) {
                    Some(ts) if !ts.is_empty() => {
                        for t in ts {
                            if t.prog.is_some() {
                                c.failed += 1;
                                continue;
                            }
                            let stub = redirect_stub(t.ifindex)?;
                            live(&stub, &mut c);
                        }
                    }
                    _ => c.failed += 1,
                }
            }
            XDP_DROP => c.drop += 1,
            XDP_ABORTED => c.aborted += 1,
            _ => c.aborted += 1,
        }
    }
    c.duration_ns = (vm_ns / repeat.max(1) as u128).min(u32::MAX as u128) as u32;
    Ok(c)
}
