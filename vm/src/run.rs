//! The contract between the interpreter and the helpers: what a helper may see and
//! do during one run of a program.
//!
//! The interpreter (`interp`) implements [`HelperCtx`]; helpers (`helpers::*`) are
//! written against it only, so either side can change (a JIT, new helpers) without
//! the other. Everything a helper touches goes through region-checked accessors:
//! a bad pointer is a [`Fault`], which ends the run as XDP_ABORTED.

use std::sync::Arc;

use crate::maps::Map;
use crate::mem::Region;

/// XDP verdicts (`enum xdp_action`).
pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

/// Bytes of headroom before the packet, as the kernel's XDP_PACKET_HEADROOM.
pub const XDP_PACKET_HEADROOM: usize = 256;
/// Tailroom the kernel reserves for `skb_shared_info` at the end of a frame;
/// `bpf_xdp_adjust_tail` cannot grow into it.
pub const XDP_TAILROOM: usize = 320;

/// The context a program's (rewritten) loads read. The kernel's `struct xdp_md`
/// offsets are rewritten at load time (as `xdp_convert_ctx_access` does):
///
/// | xdp_md (u32)        | here                      |
/// |---------------------|---------------------------|
/// | data 0              | `data` 0 (u64 pointer)    |
/// | data_end 4          | `data_end` 8 (u64)        |
/// | data_meta 8         | `data_meta` 16 (u64)      |
/// | ingress_ifindex 12  | `ingress_ifindex` 24 (u32)|
/// | rx_queue_index 16   | `rx_queue_index` 28 (u32) |
/// | egress_ifindex 20   | `egress_ifindex` 32 (u32) |
///
/// All pointers are absolute addresses inside one frame buffer:
/// `hard_start <= data_meta <= data <= data_end <= frame_end`.
/// `data_meta == data` means "no metadata".
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpCtx {
    pub data: u64,
    pub data_end: u64,
    pub data_meta: u64,
    pub ingress_ifindex: u32,
    pub rx_queue_index: u32,
    pub egress_ifindex: u32,
    pub _pad: u32,
    /// Start of the frame (headroom begins here). Not visible to programs.
    pub hard_start: u64,
    /// Last byte + 1 that `data_end` may grow to (frame end minus tailroom).
    pub frame_end: u64,
}

/// Offsets in [`XdpCtx`] of what the rewritten context loads read.
pub mod ctx_off {
    pub const DATA: i16 = 0;
    pub const DATA_END: i16 = 8;
    pub const DATA_META: i16 = 16;
    pub const INGRESS_IFINDEX: i16 = 24;
    pub const RX_QUEUE_INDEX: i16 = 28;
    pub const EGRESS_IFINDEX: i16 = 32;
}

/// What `bpf_redirect` / `bpf_redirect_map` recorded, as the kernel's
/// `bpf_redirect_info`; carried out by the data plane after an XDP_REDIRECT verdict.
#[derive(Clone, Default)]
pub struct RedirectInfo {
    /// Target interface for `bpf_redirect`, or the devmap entry's ifindex.
    pub ifindex: u32,
    pub flags: u64,
    /// The map of `bpf_redirect_map` (DEVMAP, DEVMAP_HASH, XSKMAP...), if any.
    pub map: Option<Arc<dyn Map>>,
    /// The key given to `bpf_redirect_map`.
    pub key: u32,
}

/// A run-time memory fault: a program or helper touched memory outside the
/// regions of its run, or ran past its instruction budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("out-of-bounds {kind} of {len} bytes at {addr:#x} (pc {pc})")]
    OutOfBounds {
        kind: &'static str,
        addr: u64,
        len: usize,
        pc: usize,
    },
    #[error("instruction budget exhausted (pc {pc})")]
    Budget { pc: usize },
    #[error("call stack too deep (pc {pc})")]
    CallDepth { pc: usize },
    #[error("invalid map handle {handle:#x}")]
    BadMap { handle: u64 },
    #[error("helper {id} faulted: {why}")]
    Helper { id: u32, why: &'static str },
}

/// Services of the host the program runs on (the daemon, a data-plane worker,
/// or a test): clocks, trace output, routing. Defaults answer "not available".
pub trait HostEnv: Send + Sync {
    /// `bpf_trace_printk` output, already formatted.
    fn trace_printk(&self, _msg: &str) {}
    /// MTU of an interface (for `bpf_check_mtu`), in the namespace of the run.
    fn mtu(&self, _ifindex: u32) -> Option<u32> {
        None
    }
    /// `bpf_fib_lookup`: fill `params` (`struct bpf_fib_lookup`, 64 bytes) and return
    /// the helper's return value; `None` = not supported here.
    fn fib_lookup(&self, _params: &mut [u8], _flags: u32) -> Option<i64> {
        None
    }
    /// Whether the caller of a test run is gone or has a signal pending (the kernel's
    /// `bpf_test_timer_continue` then ends the run with EINTR).
    fn interrupted(&self) -> bool {
        false
    }
}

/// The interruption points of a repeated test run: every iteration asks cheaply, and
/// the host is asked at most every 10 ms (asking may be a syscall).
pub struct RepeatTimer<'h> {
    host: &'h dyn HostEnv,
    last: std::time::Instant,
    n: u32,
}

impl<'h> RepeatTimer<'h> {
    /// A timer for one test run.
    pub fn new(host: &'h dyn HostEnv) -> Self {
        RepeatTimer {
            host,
            last: std::time::Instant::now(),
            n: 0,
        }
    }

    /// `Err(EINTR)` when the run must stop.
    pub fn tick(&mut self) -> Result<(), i32> {
        self.n = self.n.wrapping_add(1);
        if self.n.is_multiple_of(32) && self.last.elapsed() >= std::time::Duration::from_millis(10)
        {
            self.last = std::time::Instant::now();
            if self.host.interrupted() {
                return Err(libc::EINTR);
            }
        }
        Ok(())
    }
}

/// A [`HostEnv`] with nothing behind it (tests, `BPF_PROG_TEST_RUN` without a device).
pub struct NoHost;
impl HostEnv for NoHost {}

/// What a helper may ask of the running VM. Implemented by the interpreter.
pub trait HelperCtx {
    /// Region-checked read of `len` bytes at `addr`.
    fn read(&self, addr: u64, len: usize) -> Result<&[u8], Fault>;
    /// Region-checked write access to `len` bytes at `addr`.
    fn write(&mut self, addr: u64, len: usize) -> Result<&mut [u8], Fault>;
    /// Make `region` accessible for the rest of this run (a map value handed out
    /// by `map_lookup_elem`, a ring buffer reservation...).
    fn add_region(&mut self, region: Region);
    /// The region starting at `start` stops being accessible (a ring buffer record
    /// submitted or discarded).
    fn remove_region(&mut self, start: u64);
    /// Resolve a map handle (the value `ld_imm64 MAP_FD` put in a register, or an
    /// inner map returned by a lookup in a map-of-maps).
    fn map(&self, handle: u64) -> Option<&Arc<dyn Map>>;
    /// Keep `map` alive and resolvable for the rest of this run; returns its handle.
    /// Used by map-of-maps lookups, whose result is an inner map.
    fn add_map(&mut self, map: Arc<dyn Map>) -> u64;
    /// Call a BPF subprogram (`bpf_loop`, `bpf_for_each_map_elem` callbacks);
    /// `func` is what `ld_imm64 FUNC` put in the register.
    fn call(&mut self, func: u64, args: [u64; 5]) -> Result<u64, Fault>;
    /// The XDP context of this run (pointers may be changed by adjust_* helpers).
    fn xdp(&mut self) -> &mut XdpCtx;
    /// The CPU slot of this run (per-CPU maps, `get_smp_processor_id`).
    fn cpu(&self) -> u32;
    /// The address of the `bpf_spin_lock` this run holds (0: none). The run releases it
    /// when it ends, whatever ended it, so that no lock outlives its holder.
    fn held_lock(&mut self) -> &mut u64;
    /// Redirect state set by `bpf_redirect*`.
    fn redirect(&mut self) -> &mut RedirectInfo;
    /// Request a tail call to `prog`; the interpreter performs it when the helper
    /// returns (at most 33 per run, else the call falls through as in the kernel).
    fn tail_call(&mut self, prog: Arc<crate::program::Program>);
    /// The epoch guard pinned for this run: memory seen through it stays valid
    /// until the run ends.
    fn guard(&self) -> &crossbeam_epoch::Guard;
    /// Host services.
    fn host(&self) -> &dyn HostEnv;
}

/// Signature of every helper: the helper context and r1..r5; returns r0.
pub type HelperFn = fn(&mut dyn HelperCtx, [u64; 5]) -> Result<u64, Fault>;
