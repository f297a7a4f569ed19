//! The interpreter: runs the checked, rewritten instructions ([`Op`]) of a
//! [`Program`]. Every memory access the verifier did not prove is checked against
//! the run's regions (stack, packet, global data, regions added by helpers); a bad
//! access is a [`Fault`] that ends the run.

use std::sync::Arc;

use crate::insn::{MAX_BPF_STACK, MAX_CALL_FRAMES};
use crate::maps::{map_handle, Map};
use crate::mem::{raw, Region};
use crate::program::Program;
use crate::run::{Fault, HelperCtx, HostEnv, RedirectInfo, XdpCtx};

/// Tag of the value `ld_imm64 FUNC` puts in a register (ORed with the target pc).
pub(crate) const FUNC_TAG: u64 = 0xfffe_0000_0000_0000;
/// Bytes of stack for all frames of a run.
pub(crate) const STACK_BYTES: usize = MAX_BPF_STACK * MAX_CALL_FRAMES;
/// Backward jumps and calls allowed per run before it is aborted.
pub(crate) const BUDGET: u64 = 1 << 24;
/// The kernel's BPF_MAX_LOOPS (may_goto budget).
const MAY_GOTO_BUDGET: u64 = 1 << 23;
/// The kernel's MAX_TAIL_CALL_CNT.
pub(crate) const MAX_TAIL_CALL_CNT: u32 = 33;

/// Internal opcodes beyond the BPF encoding (chosen in unused encoding space).
pub(crate) mod op {
    /// Never executed by a valid program (second half of ld_imm64, past the end).
    pub const TRAP: u8 = 0xff;
    /// Rewritten context load: `off` is the XdpCtx offset, `aux` the size (4 or 8).
    pub const CTX_LD: u8 = 0x21;
    /// Loads/stores at r10+off proven inside the frame (| size bits).
    pub const STACK_LDX: u8 = 0x41;
    pub const STACK_ST: u8 = 0x42;
    pub const STACK_STX: u8 = 0x43;
    /// Loads/stores through a packet pointer `data + c` whose bytes the verifier proved
    /// to exist on every path (| size bits; LDX/ST/STX with the unused mode 0xa0).
    pub const PKT_LDX: u8 = 0xa1;
    pub const PKT_ST: u8 = 0xa2;
    pub const PKT_STX: u8 = 0xa3;
    /// Loads/stores through a pointer to a map value, `value + c`, inside the value on
    /// every path (| size bits; the unused mode 0xe0).
    pub const VAL_LDX: u8 = 0xe1;
    pub const VAL_ST: u8 = 0xe2;
    pub const VAL_STX: u8 = 0xe3;
    /// `aux` of an atomic op (STX | ATOMIC) on a map value the verifier proved inside
    /// the value (as VAL_*): no region check, the alignment check stays.
    pub const ATOMIC_PROVEN: u8 = 1;
    /// `bpf_map_lookup_elem` on map `imm` of the program, resolved at load time
    /// ([`crate::fixup`]); `aux` has [`crate::fixup::KEY_ON_STACK`] when the key is
    /// proven inside the frame. (JMP32 | CALL: no such instruction exists.)
    pub const MAP_LOOKUP: u8 = 0x86;
    /// bpf-to-bpf call: `off` is the target pc.
    pub const CALL_LOCAL: u8 = 0xf5;
    /// Fused `rD = rS; rD += imm` (skips the next op, which is the add).
    pub const MOV_ADD_K: u8 = 0xe7;
    /// Fused `rD = rS; rD += rT` (`aux` = T; skips the next op).
    pub const MOV_ADD_X: u8 = 0xfd;
    /// `movsx` (MOV with a non-zero `off`), 64- and 32-bit; `off` is the source width.
    pub const MOVSX64: u8 = 0xef;
    pub const MOVSX32: u8 = 0xec;
}

/// One decoded instruction. For jumps `off` is the absolute target pc; for
/// `ld_imm64` `imm` holds the whole (resolved) 64-bit value; for helper calls
/// `imm` indexes the program's helper table.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Op {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub aux: u8,
    pub off: i32,
    pub imm: i64,
}

/// Per-thread memory reused by every run (no allocation on the hot path).
pub(crate) struct Scratch {
    stack: [u64; STACK_BYTES / 8],
    frames: [Frame; MAX_CALL_FRAMES * 2],
    regions: Vec<Region>,
    maps: Vec<Arc<dyn Map>>,
    /// Programs this run left through a tail call and maps it stopped using: kept
    /// alive until the run ends, as the kernel's RCU read section keeps them.
    entered: Vec<Arc<Program>>,
    kept_maps: Vec<Arc<dyn Map>>,
}

thread_local! {
    static SCRATCH: std::cell::Cell<Option<Box<Scratch>>> = const { std::cell::Cell::new(None) };
}

fn take_scratch() -> Box<Scratch> {
    SCRATCH.with(|c| c.take()).unwrap_or_else(|| {
        Box::new(Scratch {
            stack: [0; STACK_BYTES / 8],
            frames: [Frame::default(); MAX_CALL_FRAMES * 2],
            regions: Vec::with_capacity(16),
            maps: Vec::new(),
            entered: Vec::new(),
            kept_maps: Vec::new(),
        })
    })
}

impl Scratch {
    /// The end of a run: what it derived and kept alive is released.
    fn reset(&mut self) {
        self.regions.clear();
        self.maps.clear();
        self.entered.clear();
        self.kept_maps.clear();
    }
}

fn put_scratch(mut s: Box<Scratch>) {
    s.reset();
    SCRATCH.with(|c| c.set(Some(s)));
}

/// What a run needs besides the program.
pub(crate) struct RunArgs<'a> {
    pub xdp: &'a mut XdpCtx,
    /// r1 at entry (the context's address, or the memory of a raw run).
    pub r1: u64,
    pub r2: u64,
    /// A region the run may touch besides the stack and packet (raw memory, fake skb).
    pub region: Option<Region>,
    /// Packet data for LD_ABS/LD_IND (socket filters): address, length.
    pub skb_data: (u64, u64),
    pub cpu: u32,
    pub host: &'a dyn HostEnv,
}

/// The state of one run; implements [`HelperCtx`] for helpers.
pub(crate) struct RunCtx<'a> {
    first: &'a Program,
    cur: Option<Arc<Program>>,
    pub(crate) xdp: &'a mut XdpCtx,
    cpu: u32,
    host: &'a dyn HostEnv,
    /// Pinned on first use by a helper (programs without helpers never need it).
    /// The session's epoch guard: pinned on first use by a helper (programs without
    /// helpers never need it) and kept for a few runs (see `Session::REPIN`).
    guard: &'a std::cell::OnceCell<crossbeam_epoch::Guard>,
    /// What `bpf_redirect*` recorded (none until a redirect helper runs: most runs
    /// write and read only the tag).
    redirect: Option<RedirectInfo>,
    /// Frames in use in `scratch.frames` (shared by nested `exec`s).
    frames_used: usize,
    scratch: &'a mut Scratch,
    pub(crate) stack_base: u64,
    skb_data: (u64, u64),
    pub(crate) depth: usize,
    pub(crate) tail_cnt: u32,
    pub(crate) pending_tail: Option<Arc<Program>>,
    pub(crate) budget: u64,
    pub(crate) may_goto: u64,
    /// The region `add_region` was last given (len 0 = none yet); it is in
    /// `scratch.regions` for the rest of the run. The JIT primes its region cache
    /// with it when a helper returns its start (a map value from a lookup).
    pub(crate) last_region: Region,
    /// The `bpf_spin_lock` word this run holds (0: none), released when the run ends.
    pub(crate) held_lock: u64,
    /// Regions given by the caller of the run (raw memory, a fake skb): the first
    /// `base_regions` of `scratch.regions`, valid in every program of the run.
    base_regions: usize,
    /// A helper removed a region (compiled code drops its region cache).
    pub(crate) regions_removed: bool,
}

pub(crate) enum End {
    Exit(u64),
    /// The program tail-called this one (always `Some` when made; taken out in
    /// place by `settle`, so the `Result` holding it is never moved whole).
    Tail(Option<Arc<Program>>),
}

/// A tail call made from a subprogram (frame `rc.depth`): as in the kernel's JITs,
/// the target replaces the subprogram, running in its stack frame with r1 = `ctx`,
/// and its r0 is what the subprogram returns to its caller. Further tail calls of
/// the target chain on the same way. Run by the interpreter (compiled code assumes
/// it starts in the run's first frame).
pub(crate) fn tail_from_subprog(
    rc: &mut RunCtx<'_>,
    mut prog: Arc<Program>,
    ctx: u64,
) -> Result<u64, Fault> {
    let saved = rc.cur.take();
    let depth = rc.depth;
    // The target does not see what the subprogram derived; the subprogram gets it
    // back when the target returns.
    let base = rc.scratch.regions[..rc.base_regions].to_vec();
    let saved_regions = std::mem::replace(&mut rc.scratch.regions, base);
    let saved_maps = std::mem::take(&mut rc.scratch.maps);
    let saved_last = std::mem::replace(&mut rc.last_region, Region::new(0, 0, false));
    let res = loop {
        rc.cur = Some(prog.clone());
        rc.depth = depth;
        match exec(&prog, rc, 0, [ctx, 0, 0, 0, 0], true) {
            Ok(End::Exit(v)) => break Ok(v),
            Ok(End::Tail(next)) => {
                let next = next.expect("a tail call's target");
                rc.scratch.entered.push(std::mem::replace(&mut prog, next));
                rc.forget_derived();
            }
            Err(f) => break Err(f),
        }
    };
    rc.scratch.entered.push(prog);
    rc.forget_derived();
    rc.scratch.regions = saved_regions;
    rc.scratch.maps = saved_maps;
    rc.last_region = saved_last;
    rc.cur = saved;
    rc.depth = depth;
    res
}

/// Run `prog` (and whatever it tail-calls) once.
pub(crate) fn run(prog: &Program, a: RunArgs<'_>) -> (Result<u64, Fault>, RedirectInfo) {
    let mut s = Session::new();
    let r = s.run(prog, a);
    (r, s.take_redirect())
}

/// The thread's run state held across many runs (a batch of packets, the repetitions
/// of a test run): the stack and region lists are taken once and given back when the
/// session ends, instead of per run.
pub struct Session {
    scratch: Option<Box<Scratch>>,
    /// An epoch guard shared by the session's runs: pinning costs more than a small
    /// program, so a guard stays pinned for `REPIN` runs (a batch), then is dropped
    /// so that memory freed meanwhile can be reclaimed. Holding it longer only delays
    /// reclamation, as a longer RCU read section would.
    guard: std::cell::OnceCell<crossbeam_epoch::Guard>,
    runs: u32,
    /// What the last run's `bpf_redirect*` recorded, when it called a helper at all
    /// (kept here, not returned, so the fast path moves no struct around).
    redirect: Option<RedirectInfo>,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(s) = self.scratch.take() {
            put_scratch(s);
        }
    }
}

impl Session {
    pub fn new() -> Session {
        Session {
            scratch: Some(take_scratch()),
            guard: std::cell::OnceCell::new(),
            runs: 0,
            redirect: None,
        }
    }

    /// Runs that share one epoch pin.
    const REPIN: u32 = 64;

    /// The end of a batch: the epoch pin, if any, is dropped (a session that waits
    /// must not hold back memory reclamation).
    pub fn quiesce(&mut self) {
        self.guard.take();
    }

    /// The redirect target the last run recorded (none: the default).
    #[inline(always)]
    pub(crate) fn take_redirect(&mut self) -> RedirectInfo {
        // Test the tag alone first: most runs redirect nowhere, and moving the whole
        // `Option` out would read it wider than it was written.
        if self.redirect.is_none() {
            return RedirectInfo::default();
        }
        self.redirect.take().unwrap_or_default()
    }

    /// Run `prog` (and whatever it tail-calls) once.
    /// The run's redirect target is then in [`Session::take_redirect`].
    #[inline(always)]
    pub(crate) fn run(&mut self, prog: &Program, a: RunArgs<'_>) -> Result<u64, Fault> {
        self.count_run();
        let scratch: &mut Scratch = self.scratch.as_mut().expect("a live session");
        run_general(prog, a, scratch, &self.guard, &mut self.redirect)
    }

    /// Run `prog` on the XDP frame `xdp` (r1 = its address). Compiled code takes the
    /// fast path: its arguments go straight into the run state, which is built only
    /// if the code calls out (no intermediate struct is written and copied back: a
    /// copy that reads wider than it was written stalls on store forwarding, and
    /// that stall was most of a small program's run).
    #[inline(always)]
    pub(crate) fn run_xdp(
        &mut self,
        prog: &Program,
        xdp: &mut XdpCtx,
        cpu: u32,
        host: &dyn HostEnv,
    ) -> Result<u64, Fault> {
        self.count_run();
        let scratch: &mut Scratch = self.scratch.as_mut().expect("a live session");
        match prog.jit_now() {
            Some(code) => run_compiled(
                prog,
                code,
                xdp,
                cpu,
                host,
                scratch,
                &self.guard,
                &mut self.redirect,
            ),
            None => self.run_xdp_interpreted(prog, xdp, cpu, host),
        }
    }

    #[inline(never)]
    fn run_xdp_interpreted(
        &mut self,
        prog: &Program,
        xdp: &mut XdpCtx,
        cpu: u32,
        host: &dyn HostEnv,
    ) -> Result<u64, Fault> {
        let scratch: &mut Scratch = self.scratch.as_mut().expect("a live session");
        let r1 = &mut *xdp as *mut XdpCtx as u64;
        let a = RunArgs {
            xdp,
            r1,
            r2: 0,
            region: None,
            skb_data: (0, 0),
            cpu,
            host,
        };
        run_general(prog, a, scratch, &self.guard, &mut self.redirect)
    }

    /// One more run: every `REPIN`th drops the epoch pin.
    #[inline(always)]
    fn count_run(&mut self) {
        self.runs = self.runs.wrapping_add(1);
        if self.runs.is_multiple_of(Self::REPIN) {
            self.guard.take();
        }
    }
}

/// What a compiled run needs to build its [`RunCtx`] on first use, and where: `slot`
/// is that `RunCtx`'s place, whose budget words are written first so that compiled
/// code can count against them before the rest exists.
pub(crate) struct Pending<'a> {
    slot: std::mem::MaybeUninit<RunCtx<'a>>,
    made: bool,
    prog: &'a Program,
    // What the `RunCtx` takes (kept apart, not as a `RunArgs`: moving that struct in
    // and out costs more than the fast path's whole setup).
    xdp: Option<&'a mut XdpCtx>,
    host: &'a dyn HostEnv,
    skb_data: (u64, u64),
    scratch: Option<&'a mut Scratch>,
    guard: &'a std::cell::OnceCell<crossbeam_epoch::Guard>,
    xdp_ptr: *mut XdpCtx,
    stack_base: u64,
    cpu: u32,
}

impl<'a> Pending<'a> {
    /// Pointers to the run's budget and may_goto counters (inside `slot`).
    pub(crate) fn budget_words(&mut self) -> (*mut u64, *mut u64) {
        let p = self.slot.as_mut_ptr();
        // SAFETY: field addresses inside our own MaybeUninit (written in `run_compiled`).
        unsafe {
            (
                std::ptr::addr_of_mut!((*p).budget),
                std::ptr::addr_of_mut!((*p).may_goto),
            )
        }
    }
    pub(crate) fn xdp_ptr(&self) -> *mut XdpCtx {
        self.xdp_ptr
    }
    pub(crate) fn stack_base(&self) -> u64 {
        self.stack_base
    }
    pub(crate) fn cpu(&self) -> u32 {
        self.cpu
    }

    /// The run's [`RunCtx`], built in `slot` on the first call.
    pub(crate) fn materialize(&mut self) -> &mut RunCtx<'a> {
        if !self.made {
            let (b, m) = self.budget_words();
            // SAFETY: both words were written when the Pending was made, and compiled
            // code has only counted them down since.
            let (budget, may_goto) = unsafe { (b.read(), m.read()) };
            let xdp = self.xdp.take().expect("context of an unbuilt run");
            let scratch = self.scratch.take().expect("scratch of an unbuilt run");
            // SAFETY: `slot` is ours and uninitialised; `init` writes every field.
            unsafe {
                RunCtx::init(
                    self.slot.as_mut_ptr(),
                    RunStart {
                        prog: self.prog,
                        xdp,
                        cpu: self.cpu,
                        host: self.host,
                        skb_data: self.skb_data,
                        region: None,
                    },
                    scratch,
                    self.guard,
                    budget,
                    may_goto,
                )
            };
            self.made = true;
        }
        // SAFETY: written above or on an earlier call.
        unsafe { self.slot.assume_init_mut() }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn run_compiled<'a>(
    prog: &'a Program,
    code: &crate::jit::Compiled,
    xdp: &'a mut XdpCtx,
    cpu: u32,
    host: &'a dyn HostEnv,
    scratch: &'a mut Scratch,
    guard: &'a std::cell::OnceCell<crossbeam_epoch::Guard>,
    out: &mut Option<RedirectInfo>,
) -> Result<u64, Fault> {
    let r1 = &mut *xdp as *mut XdpCtx as u64;
    let mut pending = Pending {
        slot: std::mem::MaybeUninit::uninit(),
        made: false,
        prog,
        xdp_ptr: r1 as *mut XdpCtx,
        xdp: Some(xdp),
        host,
        skb_data: (0, 0),
        stack_base: scratch.stack.as_mut_ptr() as u64,
        cpu,
        scratch: Some(scratch),
        guard,
    };
    let (b, m) = pending.budget_words();
    // SAFETY: the two words of our own slot, written before any read.
    unsafe {
        b.write(BUDGET);
        m.write(MAY_GOTO_BUDGET);
    }
    let mut r = crate::jit::exec_pending(code, &mut pending, [r1, 0, 0, 0, 0]);
    if !pending.made {
        // Nothing but the packet and the stack: no helper, tail call or lock ran, so
        // there is nothing to give back.
        return match r {
            Ok(End::Exit(v)) => Ok(v),
            Ok(End::Tail(_)) => unreachable!("a tail call is a helper call"),
            Err(f) => Err(f),
        };
    }
    // SAFETY: built by `materialize`; finished and dropped in place, once.
    let rc = unsafe { pending.slot.assume_init_mut() };
    let res = drive(rc, &mut r, r1, out);
    // SAFETY: as above; not used again.
    unsafe { pending.slot.assume_init_drop() };
    res
}

fn run_general<'a>(
    prog: &'a Program,
    a: RunArgs<'a>,
    scratch: &'a mut Scratch,
    guard: &'a std::cell::OnceCell<crossbeam_epoch::Guard>,
    out: &mut Option<RedirectInfo>,
) -> Result<u64, Fault> {
    let args = [a.r1, a.r2, 0, 0, 0];
    let mut rc = RunCtx::new(prog, a, scratch, guard, BUDGET, MAY_GOTO_BUDGET);
    let mut r = match prog.jit_now() {
        Some(code) => crate::jit::exec(code, &mut rc, args),
        None => exec(prog, &mut rc, 0, args, true),
    };
    drive(&mut rc, &mut r, args[0], out)
}

/// The rest of a run whose first program ended with `first`: tail calls, then the end
/// (a lock a faulting run held is given back; what the run kept alive is released).
#[inline(never)]
fn drive(
    rc: &mut RunCtx<'_>,
    first: &mut Result<End, Fault>,
    r1: u64,
    out: &mut Option<RedirectInfo>,
) -> Result<u64, Fault> {
    let res = match settle(rc, first) {
        Some(res) => res,
        None => loop {
            let cur = rc.cur.clone();
            let p: &Program = match &cur {
                Some(c) => c,
                None => rc.first,
            };
            rc.depth = 0;
            // Compiled code when the JIT took the program, else the interpreter.
            let args = [r1, 0, 0, 0, 0];
            let mut r = match p.jit_now() {
                Some(code) => crate::jit::exec(code, rc, args),
                None => exec(p, rc, 0, args, true),
            };
            if let Some(res) = settle(rc, &mut r) {
                break res;
            }
        },
    };
    let held_lock = std::mem::take(&mut rc.held_lock);
    if held_lock != 0 {
        // Only a fault can end a run holding a lock (the verifier refuses an exit with
        // one held): give it back, or every later run and BPF_F_LOCK update would spin.
        crate::maps::spin_unlock_addr(held_lock);
    }
    rc.scratch.reset();
    if rc.redirect.is_some() {
        *out = rc.redirect.take();
    }
    res
}

/// What a run starts from besides its scratch memory, guard and budget.
pub(crate) struct RunStart<'a> {
    prog: &'a Program,
    xdp: &'a mut XdpCtx,
    cpu: u32,
    host: &'a dyn HostEnv,
    skb_data: (u64, u64),
    region: Option<Region>,
}

/// How a program of the run ended: its result, or `None` after a tail call, whose
/// target is then the run's current program. `r` is read in place, by its fields:
/// moving the whole `Result` reads it wider than it was written (a store-forwarding
/// stall per run).
#[inline(always)]
fn settle(rc: &mut RunCtx<'_>, r: &mut Result<End, Fault>) -> Option<Result<u64, Fault>> {
    match r {
        Ok(End::Exit(v)) => Some(Ok(*v)),
        Err(f) => Some(Err(*f)),
        Ok(End::Tail(next)) => {
            let next = next.take().expect("a tail call's target");
            if let Some(prev) = rc.cur.replace(next) {
                rc.scratch.entered.push(prev);
            }
            rc.forget_derived();
            None
        }
    }
}

impl<'a> RunCtx<'a> {
    /// The state of a run of `prog` before it starts: `a.region`, if any, is a region
    /// of every program of the run.
    fn new(
        prog: &'a Program,
        a: RunArgs<'a>,
        scratch: &'a mut Scratch,
        guard: &'a std::cell::OnceCell<crossbeam_epoch::Guard>,
        budget: u64,
        may_goto: u64,
    ) -> Self {
        let start = RunStart {
            prog,
            xdp: a.xdp,
            cpu: a.cpu,
            host: a.host,
            skb_data: a.skb_data,
            region: a.region,
        };
        let mut slot = std::mem::MaybeUninit::uninit();
        // SAFETY: `init` writes every field of the uninitialised slot.
        unsafe {
            Self::init(slot.as_mut_ptr(), start, scratch, guard, budget, may_goto);
            slot.assume_init()
        }
    }

    /// [`RunCtx::new`] written field by field into `at`, where it stays: the fast
    /// path builds it in the slot compiled code already counts its budget in.
    ///
    /// # Safety
    /// `at` must be valid for writes of a `RunCtx`; what it holds is overwritten
    /// without being dropped.
    #[inline(always)]
    unsafe fn init(
        at: *mut Self,
        a: RunStart<'a>,
        scratch: &'a mut Scratch,
        guard: &'a std::cell::OnceCell<crossbeam_epoch::Guard>,
        budget: u64,
        may_goto: u64,
    ) {
        use std::ptr::addr_of_mut as f;
        let stack_base = scratch.stack.as_mut_ptr() as u64;
        if let Some(r) = a.region {
            scratch.regions.push(r);
        }
        let base_regions = scratch.regions.len();
        // SAFETY: per the contract, every field of `at` is writable; each is written
        // once, without reading or dropping the old contents.
        unsafe {
            f!((*at).first).write(a.prog);
            f!((*at).cur).write(None);
            f!((*at).xdp).write(a.xdp);
            f!((*at).cpu).write(a.cpu);
            f!((*at).host).write(a.host);
            f!((*at).guard).write(guard);
            f!((*at).redirect).write(None);
            f!((*at).frames_used).write(0);
            f!((*at).base_regions).write(base_regions);
            f!((*at).scratch).write(scratch);
            f!((*at).stack_base).write(stack_base);
            f!((*at).skb_data).write(a.skb_data);
            f!((*at).depth).write(0);
            f!((*at).tail_cnt).write(0);
            f!((*at).pending_tail).write(None);
            f!((*at).budget).write(budget);
            f!((*at).may_goto).write(may_goto);
            f!((*at).last_region.start).write(0);
            f!((*at).last_region.len).write(0);
            f!((*at).last_region.writable).write(false);
            f!((*at).held_lock).write(0);
            f!((*at).regions_removed).write(false);
        }
    }
}

impl RunCtx<'_> {
    /// A tail call replaced the running program: regions and maps it derived (map
    /// values, inner maps) stop being reachable; their memory stays alive until the
    /// run ends (`Scratch::kept_maps`, `Scratch::entered`).
    fn forget_derived(&mut self) {
        self.scratch.regions.truncate(self.base_regions);
        let maps = std::mem::take(&mut self.scratch.maps);
        self.scratch.kept_maps.extend(maps);
        self.last_region = Region::new(0, 0, false);
    }

    pub(crate) fn cur_prog(&self) -> &Program {
        match &self.cur {
            Some(c) => c,
            None => self.first,
        }
    }

    /// Whether `[addr, addr+len)` lies in a region of this run.
    #[inline(always)]
    fn access_ok(&self, prog: &Program, addr: u64, len: u64, write: bool) -> bool {
        // The packet [data_meta, data_end), read live (helpers move it), then the stack.
        let x = &*self.xdp;
        let end = addr.wrapping_add(len);
        if addr >= x.data_meta && end <= x.data_end && end >= addr {
            return true;
        }
        if len <= STACK_BYTES as u64
            && addr.wrapping_sub(self.stack_base) <= STACK_BYTES as u64 - len
        {
            return true;
        }
        self.access_ok_slow(prog, addr, len, write)
    }

    #[inline(never)]
    fn access_ok_slow(&self, prog: &Program, addr: u64, len: u64, write: bool) -> bool {
        prog.static_regions
            .iter()
            .any(|r| r.contains(addr, len, write))
            || prog
                .value_areas
                .iter()
                .any(|a| a.element(addr, len, write).is_some())
            || self
                .scratch
                .regions
                .iter()
                .rev()
                .any(|r| r.contains(addr, len, write))
    }

    /// The region of this run (static or added by a helper) holding `[addr, addr+len)`,
    /// as `access_ok_slow` finds it (the JIT caches it; regions live until a tail call ends the program).
    pub(crate) fn find_region(&self, addr: u64, len: u64, write: bool) -> Option<Region> {
        let p = self.cur_prog();
        p.static_regions
            .iter()
            .chain(self.scratch.regions.iter().rev())
            .find(|r| r.contains(addr, len, write))
            .copied()
            .or_else(|| {
                p.value_areas
                    .iter()
                    .find_map(|a| a.element(addr, len, write))
            })
    }

    /// [`op::MAP_LOOKUP`] on map `m` of `prog` with the key at `key`: the value's
    /// address or 0. Arrays compute it; other maps run their `prog_lookup`.
    #[inline]
    pub(crate) fn map_lookup(
        &mut self,
        prog: &Program,
        m: usize,
        key: u64,
        key_checked: bool,
        pc: usize,
    ) -> Result<u64, Fault> {
        let map = &prog.maps()[m];
        let ks = map.attr().key_size as usize;
        if !key_checked && !self.access_ok(prog, key, ks as u64, false) {
            return Err(Fault::OutOfBounds {
                kind: "helper read",
                addr: key,
                len: ks,
                pc,
            });
        }
        if let Some(a) = &prog.map_layouts[m] {
            // SAFETY: the key (4 bytes for arrays) lies in a readable region of the run.
            let idx = unsafe { raw::load(key, 4) } as u32;
            return Ok(a.lookup(idx, self.cpu));
        }
        // SAFETY: as above, `ks` bytes.
        let k = unsafe { raw::slice(key, ks) };
        let map: *const dyn Map = &**map;
        // SAFETY: the program (borrowed by this run) holds the map alive.
        Ok(unsafe { &*map }.prog_lookup_own(self, k))
    }

    #[inline(always)]
    fn ctx_field(&self, off: i32) -> u64 {
        let x = &*self.xdp;
        match off {
            0 => x.data,
            8 => x.data_end,
            16 => x.data_meta,
            24 => x.ingress_ifindex as u64,
            28 => x.rx_queue_index as u64,
            _ => x.egress_ifindex as u64,
        }
    }

    /// LD_ABS / LD_IND: `Some(value)` or `None` (out of the packet: the program ends with 0).
    fn ld_abs(&self, off: i64, size: usize) -> Option<u64> {
        let (addr, len) = self.skb_data;
        if off < 0 || off as u64 + size as u64 > len {
            return None;
        }
        // SAFETY: [addr, addr+len) is the run's packet copy and off+size <= len.
        let v = unsafe { raw::load(addr + off as u64, size) };
        Some(match size {
            1 => v,
            2 => (v as u16).swap_bytes() as u64,
            _ => (v as u32).swap_bytes() as u64,
        })
    }
}

/// A load at `base + off` that the verifier proved in bounds: STACK_LDX (the base is
/// r10), PKT_LDX (the base is `data + c`) or VAL_LDX (the base is `value + c`).
#[inline(always)]
fn proven_load(base: u64, off: i32, size: usize) -> u64 {
    // SAFETY: only used for ops the verifier rewrote. STACK_*: the base is r10, which
    // programs cannot write (checked at load) and which always holds the top of the
    // current frame inside the run's stack buffer; -512 <= off and off + size <= 0.
    // PKT_*: on every path the base register holds `data + c`, derived in registers
    // from the context's `data` (never read back from memory), with no packet-moving
    // helper or call since a comparison with a `data_end` derived the same way showed
    // `c + off + size` bytes from `data` to exist, and `0 <= c + off`.
    // VAL_*: on every path the base register holds `value + c`, derived in registers
    // from a non-NULL lookup result (or direct value load) of one map of the program,
    // `0 <= c + off` and `c + off + size <= value_size`; that map is an array (values
    // live as long as the map, which the program holds) or a hash map (values freed
    // only after the run's epoch guard); stores only where programs may write.
    unsafe { raw::load(base.wrapping_add(off as i64 as u64), size) }
}

/// A store at `base + off` that the verifier proved in bounds (STACK_ST*, PKT_ST*,
/// VAL_ST*).
#[inline(always)]
fn proven_store(base: u64, off: i32, size: usize, v: u64) {
    // SAFETY: as for `proven_load`; the stack and the packet are writable.
    unsafe { raw::store(base.wrapping_add(off as i64 as u64), size, v) }
}

#[derive(Clone, Copy, Default)]
struct Frame {
    ret_pc: usize,
    saved: [u64; 4],
    fp: u64,
}

/// Interpret `prog` from `entry` with r1..r5 = `args` in a new frame.
/// `top`: the run's outermost invocation (tail calls are carried out only there).
pub(crate) fn exec(
    prog: &Program,
    rc: &mut RunCtx<'_>,
    entry: usize,
    args: [u64; 5],
    top: bool,
) -> Result<End, Fault> {
    let (depth, frames) = (rc.depth, rc.frames_used);
    let r = exec_inner(prog, rc, entry, args, top);
    rc.depth = depth;
    rc.frames_used = frames;
    r
}

fn exec_inner(
    prog: &Program,
    rc: &mut RunCtx<'_>,
    entry: usize,
    args: [u64; 5],
    top: bool,
) -> Result<End, Fault> {
    let ops: &[Op] = &prog.ops;
    let base_depth = rc.depth;
    if base_depth >= MAX_CALL_FRAMES {
        return Err(Fault::CallDepth { pc: entry });
    }
    // 16 slots so that `reg & 15` indexes without bounds checks (registers are <= 10).
    let mut regs = [0u64; 16];
    regs[1..6].copy_from_slice(&args);
    regs[10] = rc.stack_base + ((base_depth + 1) * MAX_BPF_STACK) as u64;
    // Frames of this invocation live in the run's scratch above those of outer ones.
    let frame_base = rc.frames_used;
    let mut nf = 0usize;
    let mut pc = entry;

    macro_rules! fault {
        ($kind:expr, $addr:expr, $len:expr) => {{
            rc.depth = base_depth;
            return Err(Fault::OutOfBounds {
                kind: $kind,
                addr: $addr,
                len: $len as usize,
                pc: pc - 1,
            });
        }};
    }
    macro_rules! load {
        ($o:expr, $size:expr) => {{
            let addr = regs[$o.src as usize & 15].wrapping_add($o.off as i64 as u64);
            if !rc.access_ok(prog, addr, $size, false) {
                fault!("read", addr, $size);
            }
            // SAFETY: access_ok checked [addr, addr+size) lies in a readable region of this run.
            unsafe { raw::load(addr, $size) }
        }};
    }
    macro_rules! store {
        ($o:expr, $size:expr, $v:expr) => {{
            let addr = regs[$o.dst as usize & 15].wrapping_add($o.off as i64 as u64);
            if !rc.access_ok(prog, addr, $size, true) {
                fault!("write", addr, $size);
            }
            // SAFETY: access_ok checked [addr, addr+size) lies in a writable region of this run.
            unsafe { raw::store(addr, $size, $v) }
        }};
    }
    // Return from the innermost subprogram frame of this invocation to its caller.
    macro_rules! ret_from_subprog {
        () => {{
            nf -= 1;
            rc.frames_used = frame_base + nf;
            let f = rc.scratch.frames[frame_base + nf];
            regs[6..10].copy_from_slice(&f.saved);
            regs[10] = f.fp;
            pc = f.ret_pc;
            rc.depth -= 1;
        }};
    }
    macro_rules! jump {
        ($o:expr, $cond:expr) => {{
            if $cond {
                let t = $o.off as usize;
                if t < pc {
                    rc.budget = rc.budget.saturating_sub(1);
                    if rc.budget == 0 {
                        rc.depth = base_depth;
                        return Err(Fault::Budget { pc: pc - 1 });
                    }
                }
                pc = t;
            }
        }};
    }

    debug_assert!(ops.last().is_some_and(|o| o.code == op::TRAP));
    loop {
        debug_assert!(pc < ops.len());
        // SAFETY: the verifier checked every jump, call and callback target is inside the
        // program, ld_imm64 is never last, and the last op is a TRAP that never continues:
        // pc is always < ops.len().
        let o = unsafe { *ops.get_unchecked(pc) };
        pc += 1;
        let d = o.dst as usize & 15;
        let s = o.src as usize & 15;
        match o.code {
            // ---- ALU64, immediate / register ----
            0x07 => regs[d] = regs[d].wrapping_add(o.imm as u64),
            0x0f => regs[d] = regs[d].wrapping_add(regs[s]),
            0x17 => regs[d] = regs[d].wrapping_sub(o.imm as u64),
            0x1f => regs[d] = regs[d].wrapping_sub(regs[s]),
            0x27 => regs[d] = regs[d].wrapping_mul(o.imm as u64),
            0x2f => regs[d] = regs[d].wrapping_mul(regs[s]),
            0x37 | 0x3f => {
                let b = if o.code == 0x37 {
                    o.imm as u64
                } else {
                    regs[s]
                };
                regs[d] = if b == 0 {
                    0
                } else if o.off == 1 {
                    (regs[d] as i64).wrapping_div(b as i64) as u64
                } else {
                    regs[d] / b
                };
            }
            0x47 => regs[d] |= o.imm as u64,
            0x4f => regs[d] |= regs[s],
            0x57 => regs[d] &= o.imm as u64,
            0x5f => regs[d] &= regs[s],
            0x67 => regs[d] <<= o.imm as u64 & 63,
            0x6f => regs[d] <<= regs[s] & 63,
            0x77 => regs[d] >>= o.imm as u64 & 63,
            0x7f => regs[d] >>= regs[s] & 63,
            0x87 => regs[d] = (regs[d] as i64).wrapping_neg() as u64,
            0x97 | 0x9f => {
                let b = if o.code == 0x97 {
                    o.imm as u64
                } else {
                    regs[s]
                };
                if b != 0 {
                    regs[d] = if o.off == 1 {
                        (regs[d] as i64).wrapping_rem(b as i64) as u64
                    } else {
                        regs[d] % b
                    };
                }
            }
            0xa7 => regs[d] ^= o.imm as u64,
            0xaf => regs[d] ^= regs[s],
            0xb7 => regs[d] = o.imm as u64,
            0xbf => regs[d] = regs[s],
            op::MOV_ADD_K => {
                regs[d] = regs[s].wrapping_add(o.imm as u64);
                pc += 1;
            }
            op::MOV_ADD_X => {
                regs[d] = regs[s].wrapping_add(regs[o.aux as usize & 15]);
                pc += 1;
            }
            op::MOVSX64 => {
                regs[d] = match o.off {
                    8 => regs[s] as i8 as i64 as u64,
                    16 => regs[s] as i16 as i64 as u64,
                    _ => regs[s] as i32 as i64 as u64,
                }
            }
            0xc7 => regs[d] = ((regs[d] as i64) >> (o.imm as u64 & 63)) as u64,
            0xcf => regs[d] = ((regs[d] as i64) >> (regs[s] & 63)) as u64,
            0xd7 => {
                regs[d] = match o.imm {
                    16 => (regs[d] as u16).swap_bytes() as u64,
                    32 => (regs[d] as u32).swap_bytes() as u64,
                    _ => regs[d].swap_bytes(),
                }
            }
            // ---- ALU (32-bit), results zero-extended ----
            0x04 => regs[d] = (regs[d] as u32).wrapping_add(o.imm as u32) as u64,
            0x0c => regs[d] = (regs[d] as u32).wrapping_add(regs[s] as u32) as u64,
            0x14 => regs[d] = (regs[d] as u32).wrapping_sub(o.imm as u32) as u64,
            0x1c => regs[d] = (regs[d] as u32).wrapping_sub(regs[s] as u32) as u64,
            0x24 => regs[d] = (regs[d] as u32).wrapping_mul(o.imm as u32) as u64,
            0x2c => regs[d] = (regs[d] as u32).wrapping_mul(regs[s] as u32) as u64,
            0x34 | 0x3c => {
                let b = if o.code == 0x34 {
                    o.imm as u32
                } else {
                    regs[s] as u32
                };
                let a = regs[d] as u32;
                regs[d] = if b == 0 {
                    0
                } else if o.off == 1 {
                    (a as i32).wrapping_div(b as i32) as u32 as u64
                } else {
                    (a / b) as u64
                };
            }
            0x44 => regs[d] = (regs[d] as u32 | o.imm as u32) as u64,
            0x4c => regs[d] = (regs[d] as u32 | regs[s] as u32) as u64,
            0x54 => regs[d] = (regs[d] as u32 & o.imm as u32) as u64,
            0x5c => regs[d] = (regs[d] as u32 & regs[s] as u32) as u64,
            0x64 => regs[d] = ((regs[d] as u32) << (o.imm as u32 & 31)) as u64,
            0x6c => regs[d] = ((regs[d] as u32) << (regs[s] as u32 & 31)) as u64,
            0x74 => regs[d] = ((regs[d] as u32) >> (o.imm as u32 & 31)) as u64,
            0x7c => regs[d] = ((regs[d] as u32) >> (regs[s] as u32 & 31)) as u64,
            0x84 => regs[d] = (regs[d] as i32).wrapping_neg() as u32 as u64,
            0x94 | 0x9c => {
                let b = if o.code == 0x94 {
                    o.imm as u32
                } else {
                    regs[s] as u32
                };
                let a = regs[d] as u32;
                regs[d] = if b == 0 {
                    a as u64
                } else if o.off == 1 {
                    (a as i32).wrapping_rem(b as i32) as u32 as u64
                } else {
                    (a % b) as u64
                };
            }
            0xa4 => regs[d] = (regs[d] as u32 ^ o.imm as u32) as u64,
            0xac => regs[d] = (regs[d] as u32 ^ regs[s] as u32) as u64,
            0xb4 => regs[d] = o.imm as u32 as u64,
            0xbc => regs[d] = regs[s] as u32 as u64,
            op::MOVSX32 => {
                regs[d] = match o.off {
                    8 => regs[s] as i8 as i32 as u32 as u64,
                    _ => regs[s] as i16 as i32 as u32 as u64,
                }
            }
            0xc4 => regs[d] = ((regs[d] as i32) >> (o.imm as u32 & 31)) as u32 as u64,
            0xcc => regs[d] = ((regs[d] as i32) >> (regs[s] as u32 & 31)) as u32 as u64,
            0xd4 => {
                regs[d] = match o.imm {
                    16 => regs[d] as u16 as u64,
                    32 => regs[d] as u32 as u64,
                    _ => regs[d],
                }
            }
            0xdc => {
                regs[d] = match o.imm {
                    16 => (regs[d] as u16).swap_bytes() as u64,
                    32 => (regs[d] as u32).swap_bytes() as u64,
                    _ => regs[d].swap_bytes(),
                }
            }
            // ---- loads / stores, checked ----
            0x61 => regs[d] = load!(o, 4),
            0x69 => regs[d] = load!(o, 2),
            0x71 => regs[d] = load!(o, 1),
            0x79 => regs[d] = load!(o, 8),
            0x81 => regs[d] = load!(o, 4) as u32 as i32 as i64 as u64,
            0x89 => regs[d] = load!(o, 2) as u16 as i16 as i64 as u64,
            0x91 => regs[d] = load!(o, 1) as u8 as i8 as i64 as u64,
            0x62 => store!(o, 4, o.imm as u64),
            0x6a => store!(o, 2, o.imm as u64),
            0x72 => store!(o, 1, o.imm as u64),
            0x7a => store!(o, 8, o.imm as u64),
            0x63 => store!(o, 4, regs[s]),
            0x6b => store!(o, 2, regs[s]),
            0x73 => store!(o, 1, regs[s]),
            0x7b => store!(o, 8, regs[s]),
            0xc3 | 0xdb => {
                let size = if o.code == 0xc3 { 4usize } else { 8 };
                let addr = regs[d].wrapping_add(o.off as i64 as u64);
                if o.aux & op::ATOMIC_PROVEN == 0 && !rc.access_ok(prog, addr, size as u64, true) {
                    fault!("atomic", addr, size);
                }
                if addr % size as u64 != 0 {
                    fault!("misaligned atomic", addr, size);
                }
                let mask = if size == 4 { u32::MAX as u64 } else { u64::MAX };
                let sv = regs[s] & mask;
                let imm = o.imm as i32;
                // SAFETY: access_ok checked the range is writable memory of this run, or
                // the verifier proved it inside a live map value (see `proven_load`);
                // aligned above.
                let old = unsafe {
                    match imm & !crate::insn::BPF_FETCH {
                        0x00 => raw::atomic_rmw(addr, size, |v| Some(v.wrapping_add(sv) & mask)),
                        0x40 => raw::atomic_rmw(addr, size, |v| Some(v | sv)),
                        0x50 => raw::atomic_rmw(addr, size, |v| Some(v & sv)),
                        0xa0 => raw::atomic_rmw(addr, size, |v| Some(v ^ sv)),
                        0xe0 => raw::atomic_rmw(addr, size, |_| Some(sv)),
                        _ => {
                            let expect = regs[0] & mask;
                            raw::atomic_rmw(addr, size, |v| (v == expect).then_some(sv))
                        }
                    }
                };
                if imm == crate::insn::BPF_CMPXCHG {
                    regs[0] = old;
                } else if imm & crate::insn::BPF_FETCH != 0 {
                    regs[s] = old;
                }
            }
            // ---- proven accesses: stack (r10 + constant inside the frame) and packet ----
            // (the verifier made r10 the base of the stack ones)
            0x41 | 0xa1 | 0xe1 => regs[d] = proven_load(regs[s], o.off, 4),
            0x49 | 0xa9 | 0xe9 => regs[d] = proven_load(regs[s], o.off, 2),
            0x51 | 0xb1 | 0xf1 => regs[d] = proven_load(regs[s], o.off, 1),
            0x59 | 0xb9 | 0xf9 => regs[d] = proven_load(regs[s], o.off, 8),
            0x42 | 0xa2 | 0xe2 => proven_store(regs[d], o.off, 4, o.imm as u64),
            0x4a | 0xaa | 0xea => proven_store(regs[d], o.off, 2, o.imm as u64),
            0x52 | 0xb2 | 0xf2 => proven_store(regs[d], o.off, 1, o.imm as u64),
            0x5a | 0xba | 0xfa => proven_store(regs[d], o.off, 8, o.imm as u64),
            0x43 | 0xa3 | 0xe3 => proven_store(regs[d], o.off, 4, regs[s]),
            0x4b | 0xab | 0xeb => proven_store(regs[d], o.off, 2, regs[s]),
            0x53 | 0xb3 | 0xf3 => proven_store(regs[d], o.off, 1, regs[s]),
            0x5b | 0xbb | 0xfb => proven_store(regs[d], o.off, 8, regs[s]),
            op::CTX_LD => regs[d] = rc.ctx_field(o.off),
            0x18 => {
                regs[d] = o.imm as u64;
                pc += 1;
            }
            // LD_ABS / LD_IND (socket filters): out of the packet ends the program with 0.
            0x20 | 0x28 | 0x30 | 0x40 | 0x48 | 0x50 => {
                let size = match o.code & 0x18 {
                    0x00 => 4,
                    0x08 => 2,
                    _ => 1,
                };
                let mut off = o.imm;
                if o.code & 0xe0 == 0x40 {
                    off = off.wrapping_add(regs[s] as i64);
                }
                match rc.ld_abs(off, size) {
                    Some(v) => regs[0] = v,
                    None => {
                        rc.depth = base_depth;
                        return Ok(End::Exit(0));
                    }
                }
            }
            // ---- jumps ----
            0x05 => jump!(o, true),
            0x15 => jump!(o, regs[d] == o.imm as u64),
            0x1d => jump!(o, regs[d] == regs[s]),
            0x25 => jump!(o, regs[d] > o.imm as u64),
            0x2d => jump!(o, regs[d] > regs[s]),
            0x35 => jump!(o, regs[d] >= o.imm as u64),
            0x3d => jump!(o, regs[d] >= regs[s]),
            0xa5 => jump!(o, regs[d] < o.imm as u64),
            0xad => jump!(o, regs[d] < regs[s]),
            0xb5 => jump!(o, regs[d] <= o.imm as u64),
            0xbd => jump!(o, regs[d] <= regs[s]),
            0x45 => jump!(o, regs[d] & o.imm as u64 != 0),
            0x4d => jump!(o, regs[d] & regs[s] != 0),
            0x55 => jump!(o, regs[d] != o.imm as u64),
            0x5d => jump!(o, regs[d] != regs[s]),
            0x65 => jump!(o, (regs[d] as i64) > o.imm),
            0x6d => jump!(o, (regs[d] as i64) > regs[s] as i64),
            0x75 => jump!(o, (regs[d] as i64) >= o.imm),
            0x7d => jump!(o, (regs[d] as i64) >= regs[s] as i64),
            0xc5 => jump!(o, (regs[d] as i64) < o.imm),
            0xcd => jump!(o, (regs[d] as i64) < regs[s] as i64),
            0xd5 => jump!(o, (regs[d] as i64) <= o.imm),
            0xdd => jump!(o, (regs[d] as i64) <= regs[s] as i64),
            0x16 => jump!(o, regs[d] as u32 == o.imm as u32),
            0x1e => jump!(o, regs[d] as u32 == regs[s] as u32),
            0x26 => jump!(o, regs[d] as u32 > o.imm as u32),
            0x2e => jump!(o, regs[d] as u32 > regs[s] as u32),
            0x36 => jump!(o, regs[d] as u32 >= o.imm as u32),
            0x3e => jump!(o, regs[d] as u32 >= regs[s] as u32),
            0xa6 => jump!(o, (regs[d] as u32) < o.imm as u32),
            0xae => jump!(o, (regs[d] as u32) < regs[s] as u32),
            0xb6 => jump!(o, regs[d] as u32 <= o.imm as u32),
            0xbe => jump!(o, regs[d] as u32 <= regs[s] as u32),
            0x46 => jump!(o, regs[d] as u32 & o.imm as u32 != 0),
            0x4e => jump!(o, regs[d] as u32 & regs[s] as u32 != 0),
            0x56 => jump!(o, regs[d] as u32 != o.imm as u32),
            0x5e => jump!(o, regs[d] as u32 != regs[s] as u32),
            0x66 => jump!(o, (regs[d] as i32) > o.imm as i32),
            0x6e => jump!(o, (regs[d] as i32) > regs[s] as i32),
            0x76 => jump!(o, (regs[d] as i32) >= o.imm as i32),
            0x7e => jump!(o, (regs[d] as i32) >= regs[s] as i32),
            0xc6 => jump!(o, (regs[d] as i32) < o.imm as i32),
            0xce => jump!(o, (regs[d] as i32) < regs[s] as i32),
            0xd6 => jump!(o, (regs[d] as i32) <= o.imm as i32),
            0xde => jump!(o, (regs[d] as i32) <= regs[s] as i32),
            // may_goto: falls through until the loop budget is spent, then jumps.
            0xe5 => {
                if rc.may_goto == 0 {
                    pc = o.off as usize;
                } else {
                    rc.may_goto -= 1;
                }
            }
            // ---- calls ----
            0x85 | 0x8d => {
                let f = if o.code == 0x85 {
                    prog.helper_fns[o.imm as usize]
                } else {
                    let id = regs[d];
                    match u32::try_from(id).ok().and_then(prog.lookup) {
                        Some(spec) => spec.func,
                        None => {
                            rc.depth = base_depth;
                            return Err(Fault::Helper {
                                id: id as u32,
                                why: "callx to an unknown helper",
                            });
                        }
                    }
                };
                rc.budget = rc.budget.saturating_sub(1);
                if rc.budget == 0 {
                    rc.depth = base_depth;
                    return Err(Fault::Budget { pc: pc - 1 });
                }
                let saved_depth = rc.depth;
                let r = f(rc, [regs[1], regs[2], regs[3], regs[4], regs[5]]);
                rc.depth = saved_depth;
                match r {
                    Ok(v) => regs[0] = v,
                    Err(e) => {
                        rc.depth = base_depth;
                        return Err(e);
                    }
                }
                if let Some(t) = rc.pending_tail.take() {
                    if top && rc.tail_cnt < MAX_TAIL_CALL_CNT {
                        rc.tail_cnt += 1;
                        if nf == 0 {
                            rc.depth = base_depth;
                            return Ok(End::Tail(Some(t)));
                        }
                        // From a subprogram: the target replaces it and returns to
                        // its caller.
                        match tail_from_subprog(rc, t, regs[1]) {
                            Ok(v) => regs[0] = v,
                            Err(e) => {
                                rc.depth = base_depth;
                                return Err(e);
                            }
                        }
                        ret_from_subprog!();
                    }
                }
            }
            op::MAP_LOOKUP => {
                let on_stack = o.aux & crate::fixup::KEY_ON_STACK != 0;
                match rc.map_lookup(prog, o.imm as usize, regs[2], on_stack, pc - 1) {
                    Ok(v) => regs[0] = v,
                    Err(e) => {
                        rc.depth = base_depth;
                        return Err(e);
                    }
                }
            }
            op::CALL_LOCAL => {
                if rc.depth + 1 >= MAX_CALL_FRAMES || frame_base + nf >= rc.scratch.frames.len() {
                    rc.depth = base_depth;
                    return Err(Fault::CallDepth { pc: pc - 1 });
                }
                rc.budget = rc.budget.saturating_sub(1);
                if rc.budget == 0 {
                    rc.depth = base_depth;
                    return Err(Fault::Budget { pc: pc - 1 });
                }
                rc.scratch.frames[frame_base + nf] = Frame {
                    ret_pc: pc,
                    saved: [regs[6], regs[7], regs[8], regs[9]],
                    fp: regs[10],
                };
                nf += 1;
                rc.frames_used = frame_base + nf;
                rc.depth += 1;
                regs[10] += MAX_BPF_STACK as u64;
                pc = o.off as usize;
            }
            0x95 => {
                if nf == 0 {
                    rc.depth = base_depth;
                    return Ok(End::Exit(regs[0]));
                }
                ret_from_subprog!();
            }
            // Explicit arms at both ends of the byte range let the dispatch table cover
            // every code (no range check per instruction).
            0x00 => {
                rc.depth = base_depth;
                return Err(Fault::Helper {
                    id: 0,
                    why: "invalid instruction 0x00 reached",
                });
            }
            op::TRAP => {
                rc.depth = base_depth;
                return Err(Fault::Helper {
                    id: 0,
                    why: "ran past the end of the program",
                });
            }
            _ => {
                rc.depth = base_depth;
                return Err(Fault::Helper {
                    id: 0,
                    why: "invalid instruction reached",
                });
            }
        }
    }
}

impl HelperCtx for RunCtx<'_> {
    fn read(&self, addr: u64, len: usize) -> Result<&[u8], Fault> {
        if !self.access_ok(self.cur_prog(), addr, len as u64, false) {
            return Err(Fault::OutOfBounds {
                kind: "helper read",
                addr,
                len,
                pc: 0,
            });
        }
        // SAFETY: the range lies in a region of this run, alive for the run (and so for &self).
        Ok(unsafe { raw::slice(addr, len) })
    }

    fn write(&mut self, addr: u64, len: usize) -> Result<&mut [u8], Fault> {
        if !self.access_ok(self.cur_prog(), addr, len as u64, true) {
            return Err(Fault::OutOfBounds {
                kind: "helper write",
                addr,
                len,
                pc: 0,
            });
        }
        // SAFETY: the range lies in a writable region of this run, alive for the run.
        Ok(unsafe { raw::slice_mut(addr, len) })
    }

    fn add_region(&mut self, region: Region) {
        // Newest first: a program usually looks up the same value again and again, so
        // the duplicate, if any, is most often the last region added.
        if !self.scratch.regions.iter().rev().any(|r| *r == region) {
            self.scratch.regions.push(region);
        }
        self.last_region = region;
    }

    fn remove_region(&mut self, start: u64) {
        self.scratch.regions.retain(|r| r.start != start);
        if self.last_region.start == start {
            self.last_region = Region::new(0, 0, false);
        }
        self.regions_removed = true;
    }

    fn map(&self, handle: u64) -> Option<&Arc<dyn Map>> {
        let p = self.cur_prog();
        if let Some(i) = p.map_handles.iter().position(|&h| h == handle) {
            return p.maps().get(i);
        }
        self.scratch.maps.iter().find(|m| map_handle(m) == handle)
    }

    fn add_map(&mut self, map: Arc<dyn Map>) -> u64 {
        let h = map_handle(&map);
        if !self.scratch.maps.iter().any(|m| map_handle(m) == h) {
            self.scratch.maps.push(map);
        }
        h
    }

    fn call(&mut self, func: u64, args: [u64; 5]) -> Result<u64, Fault> {
        let first: &Program = self.first;
        let cur = self.cur.clone();
        let p: &Program = match &cur {
            Some(c) => c,
            None => first,
        };
        let pc = func.wrapping_sub(FUNC_TAG);
        if func & FUNC_TAG != FUNC_TAG || p.subprog_starts.binary_search(&(pc as usize)).is_err() {
            return Err(Fault::Helper {
                id: 0,
                why: "callback is not a BPF function",
            });
        }
        // Callbacks count against the run's budget like calls (nested bpf_loop).
        self.budget = self.budget.saturating_sub(1);
        if self.budget == 0 {
            return Err(Fault::Budget { pc: pc as usize });
        }
        let saved = self.depth;
        self.depth += 1;
        let r = exec(p, self, pc as usize, args, false);
        self.depth = saved;
        match r? {
            End::Exit(v) => Ok(v),
            End::Tail(_) => Ok(0),
        }
    }

    fn xdp(&mut self) -> &mut XdpCtx {
        self.xdp
    }

    fn cpu(&self) -> u32 {
        self.cpu
    }

    fn held_lock(&mut self) -> &mut u64 {
        &mut self.held_lock
    }

    fn redirect(&mut self) -> &mut RedirectInfo {
        self.redirect.get_or_insert_with(RedirectInfo::default)
    }

    fn tail_call(&mut self, prog: Arc<Program>) {
        self.pending_tail = Some(prog);
    }

    fn guard(&self) -> &crossbeam_epoch::Guard {
        self.guard.get_or_init(crossbeam_epoch::pin)
    }

    fn host(&self) -> &dyn HostEnv {
        self.host
    }
}
