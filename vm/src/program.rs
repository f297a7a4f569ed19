//! `Program::load`: the whole pipeline (decode -> check -> rewrite) for what
//! `BPF_PROG_LOAD` received, and the loaded program that the interpreter runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use libc::{E2BIG, EINVAL};
use sha2::{Digest, Sha256};

use crate::insn::{self, Insn, BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE};
pub use crate::interp::Session;
use crate::interp::{self, Op, RunArgs};
use crate::maps::{map_handle, ArrayLayout, Map};
use crate::mem::Region;
use crate::run::{
    Fault, HelperFn, HostEnv, RedirectInfo, XdpCtx, XDP_ABORTED, XDP_PACKET_HEADROOM, XDP_TAILROOM,
};
use crate::verifier::{self, Mode};

pub use crate::verifier::HelperLookup;

/// `enum bpf_prog_type` values the VM knows.
pub mod prog_type {
    pub const UNSPEC: u32 = 0;
    pub const SOCKET_FILTER: u32 = 1;
    pub const XDP: u32 = 6;
}

/// `enum bpf_attach_type` values the VM looks at.
pub mod attach_type {
    pub const BPF_XDP_DEVMAP: u32 = 38;
    pub const BPF_XDP_CPUMAP: u32 = 39;
    pub const BPF_XDP: u32 = 37;
}

/// `prog_flags` bits accepted for XDP and SOCKET_FILTER programs: STRICT_ALIGNMENT,
/// ANY_ALIGNMENT, TEST_RND_HI32, TEST_STATE_FREQ, XDP_HAS_FRAGS, XDP_DEV_BOUND_ONLY,
/// TEST_REG_INVARIANTS. SLEEPABLE (these types cannot sleep), BPF_F_TOKEN_FD (no
/// tokens) and unknown bits are EINVAL, as the kernel answers here.
pub const KNOWN_PROG_FLAGS: u32 = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80;

/// Run statistics switch (`BPF_ENABLE_STATS` / the kernel's `bpf_stats_enabled_key`).
pub mod stats {
    use std::sync::atomic::{AtomicUsize, Ordering};

    static HOLDERS: AtomicUsize = AtomicUsize::new(0);

    /// One more holder of `BPF_ENABLE_STATS` (an fd); stats count while any is held.
    pub fn enable() {
        HOLDERS.fetch_add(1, Ordering::Relaxed);
    }

    /// A holder went away.
    pub fn disable() {
        let _ = HOLDERS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Whether run_cnt / run_time_ns are being counted.
    #[inline]
    pub fn enabled() -> bool {
        HOLDERS.load(Ordering::Relaxed) != 0
    }
}

/// What BPF_PROG_LOAD received, already copied from the target.
#[derive(Debug, Clone, Default)]
pub struct ProgLoadSpec {
    pub prog_type: u32,
    pub expected_attach_type: u32,
    /// Raw 8-byte instructions as in memory.
    pub insns: Vec<u8>,
    pub license: String,
    pub prog_flags: u32,
    pub name: String,
    pub kern_version: u32,
    pub log_level: u32,
    /// Kept for introspection.
    pub func_info: Vec<u8>,
    pub func_info_rec_size: u32,
    pub line_info: Vec<u8>,
    pub line_info_rec_size: u32,
    /// Id of the BTF object the supervisor resolved, 0 if none.
    pub prog_btf_id: u32,
}

/// The supervisor resolves the target's fds.
pub trait MapResolver {
    /// `ld_imm64 MAP_FD / MAP_VALUE`: the map behind the target's fd (None -> EBADF).
    fn map_by_fd(&self, fd: i32) -> Option<Arc<dyn Map>>;
    /// `ld_imm64 MAP_IDX / MAP_IDX_VALUE`: the map at `fd_array[idx]` (None -> EBADF).
    fn fd_array(&self, idx: u32) -> Option<Arc<dyn Map>>;
    /// Whether BPF_PROG_LOAD carried an fd_array; MAP_IDX without one is EPROTO
    /// ("fd_idx without fd_array is invalid").
    fn has_fd_array(&self) -> bool {
        true
    }
    /// Why `map_by_fd(fd)` (or `fd_array(idx)`, `from_array`) found no map: the
    /// kernel's `bpf_map_get`, EBADF for a closed fd, EINVAL for an open one that is
    /// not a map.
    fn not_a_map(&self, _fd_or_idx: i32, _from_array: bool) -> i32 {
        libc::EBADF
    }
}

/// A resolver with no maps (tests, probes).
pub struct NoMaps;
impl MapResolver for NoMaps {
    fn map_by_fd(&self, _fd: i32) -> Option<Arc<dyn Map>> {
        None
    }
    fn fd_array(&self, _idx: u32) -> Option<Arc<dyn Map>> {
        None
    }
}

/// A refused load: the kernel's errno and the verifier log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("program load failed (errno {errno}): {log}")]
pub struct LoadError {
    pub errno: i32,
    pub log: String,
}

/// The outcome of one run.
#[derive(Clone)]
pub struct RunResult {
    /// r0 (the XDP verdict); XDP_ABORTED on a fault.
    pub verdict: u32,
    pub redirect: RedirectInfo,
    pub fault: Option<Fault>,
}

/// BPF_PROG_TEST_RUN's outputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestRunOut {
    pub retval: u32,
    pub data_out: Vec<u8>,
    /// `struct xdp_md` after the run (24 bytes); empty when no context was given.
    pub ctx_out: Vec<u8>,
    pub duration_ns: u32,
}

/// How a program's memory accesses run ([`Program::memory_accesses`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryAccesses {
    pub packet_proven: usize,
    pub stack_proven: usize,
    pub value_proven: usize,
    pub checked: usize,
}

/// A loaded program.
pub struct Program {
    spec: ProgLoadSpec,
    pub(crate) ops: Box<[Op]>,
    pub(crate) helper_fns: Box<[HelperFn]>,
    pub(crate) helper_ids: Vec<u32>,
    maps: Vec<Arc<dyn Map>>,
    pub(crate) map_handles: Vec<u64>,
    pub(crate) static_regions: Vec<Region>,
    /// `maps[i].array_layout()`, for lookups resolved at load time.
    pub(crate) map_layouts: Box<[Option<ArrayLayout>]>,
    /// `maps[i].value_area()`: memory holding every value of the map.
    pub(crate) map_areas: Box<[Option<ArrayLayout>]>,
    /// The value areas of `maps`: regions of every run of the program.
    pub(crate) value_areas: Vec<ArrayLayout>,
    pub(crate) subprog_starts: Vec<usize>,
    pub(crate) lookup: HelperLookup,
    log: String,
    tag: [u8; 8],
    insn_cnt: u32,
    gpl: bool,
    run_cnt: AtomicU64,
    run_time_ns: AtomicU64,
    faults: AtomicU64,
    /// Machine code from the JIT, when it took the program (`Some(None)`: interpreted).
    /// Unset while a deferred compile is pending: runs interpret until it is set.
    pub(crate) jit: std::sync::OnceLock<Option<crate::jit::Compiled>>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("name", &self.spec.name)
            .field("prog_type", &self.spec.prog_type)
            .field("insn_cnt", &self.insn_cnt)
            .field("maps", &self.maps.len())
            .field("helpers", &self.helper_ids)
            .finish()
    }
}

/// The kernel's `license_is_gpl_compatible`.
pub fn license_is_gpl_compatible(license: &str) -> bool {
    matches!(
        license,
        "GPL"
            | "GPL v2"
            | "GPL and additional rights"
            | "Dual BSD/GPL"
            | "Dual MIT/GPL"
            | "Dual MPL/GPL"
    )
}

/// The kernel's program tag (`bpf_prog_calc_tag`): a hash over the instructions with
/// the immediates of map-referencing ld_imm64 zeroed; the first 8 bytes. Kernel 6.18
/// hashes with SHA-256 (older kernels used SHA-1); checked against this machine's kernel.
pub fn calc_tag(insns: &[Insn]) -> [u8; 8] {
    let mut h = Sha256::new();
    let mut was_ld_map = false;
    for &i in insns {
        let mut i = i;
        if !was_ld_map
            && i.is_ld_imm64()
            && (i.src == BPF_PSEUDO_MAP_FD || i.src == BPF_PSEUDO_MAP_VALUE)
        {
            was_ld_map = true;
            i.imm = 0;
        } else if was_ld_map && i.code == 0 && i.dst == 0 && i.src == 0 && i.off == 0 {
            was_ld_map = false;
            i.imm = 0;
        } else {
            was_ld_map = false;
        }
        h.update(i.to_bytes());
    }
    let d = h.finalize();
    let mut t = [0u8; 8];
    t.copy_from_slice(&d[..8]);
    t
}

impl Program {
    /// BPF_PROG_LOAD: check and rewrite the program, resolving maps through `maps`.
    pub fn load(spec: ProgLoadSpec, maps: &dyn MapResolver) -> Result<Program, LoadError> {
        fn xdp(id: u32) -> Option<&'static crate::helpers::HelperSpec> {
            crate::helpers::get_for(id, prog_type::XDP)
        }
        fn socket_filter(id: u32) -> Option<&'static crate::helpers::HelperSpec> {
            crate::helpers::get_for(id, prog_type::SOCKET_FILTER)
        }
        let table: HelperLookup = if spec.prog_type == prog_type::XDP {
            xdp
        } else {
            socket_filter
        };
        Self::load_with_helpers(spec, maps, table)
    }

    /// [`Program::load`] with another helper table (tests).
    pub fn load_with_helpers(
        spec: ProgLoadSpec,
        maps: &dyn MapResolver,
        helpers: HelperLookup,
    ) -> Result<Program, LoadError> {
        let einval = |msg: &str| LoadError {
            errno: EINVAL,
            log: format!("{msg}\n"),
        };
        let mode = match spec.prog_type {
            prog_type::XDP => Mode::Xdp {
                devmap: spec.expected_attach_type == attach_type::BPF_XDP_DEVMAP,
            },
            prog_type::SOCKET_FILTER => Mode::SocketFilter,
            t => {
                return Err(einval(&format!(
                    "program type {t} is not supported by bpftime"
                )))
            }
        };
        if spec.prog_flags & !KNOWN_PROG_FLAGS != 0 {
            return Err(einval("unknown prog_flags"));
        }
        if !spec.insns.len().is_multiple_of(8) {
            return Err(einval("instruction bytes are not a multiple of 8"));
        }
        if spec.insns.is_empty() || spec.insns.len() / 8 > insn::BPF_COMPLEXITY_LIMIT_INSNS {
            return Err(LoadError {
                errno: E2BIG,
                log: "too many or no instructions\n".into(),
            });
        }
        Self::build(spec, mode, maps, helpers)
    }

    /// Load a program for bpf_conformance-style runs ([`Program::run_raw`]):
    /// structural checks only, r1 = memory, r2 = its length.
    pub fn load_raw(insns: &[Insn], helpers: HelperLookup) -> Result<Program, LoadError> {
        let spec = ProgLoadSpec {
            insns: insn::encode(insns),
            license: "GPL".into(),
            ..Default::default()
        };
        Self::build(spec, Mode::Raw, &NoMaps, helpers)
    }

    fn build(
        spec: ProgLoadSpec,
        mode: Mode,
        maps: &dyn MapResolver,
        helpers: HelperLookup,
    ) -> Result<Program, LoadError> {
        let insns = insn::decode(&spec.insns).ok_or_else(|| LoadError {
            errno: EINVAL,
            log: "bad instruction length\n".into(),
        })?;
        let gpl = license_is_gpl_compatible(&spec.license);
        let checked = verifier::check(verifier::Input {
            insns: &insns,
            mode,
            maps,
            helpers,
            gpl,
        })?;
        let map_handles: Vec<u64> = checked.maps.iter().map(map_handle).collect();
        let map_layouts: Box<[Option<ArrayLayout>]> =
            checked.maps.iter().map(|m| m.array_layout()).collect();
        let map_areas: Box<[Option<ArrayLayout>]> =
            checked.maps.iter().map(|m| m.value_area()).collect();
        let value_areas = map_areas.iter().flatten().copied().collect();
        let key_sizes: Vec<u32> = checked.maps.iter().map(|m| m.attr().key_size).collect();
        let mut ops = checked.ops;
        crate::fixup::map_lookups(
            &mut ops,
            &checked.helper_ids,
            &map_handles,
            &key_sizes,
            &checked.subprog_starts,
        );
        let prog = Program {
            tag: calc_tag(&insns),
            insn_cnt: insns.len() as u32,
            gpl,
            ops: ops.into_boxed_slice(),
            helper_fns: checked.helper_fns.into_boxed_slice(),
            helper_ids: checked.helper_ids,
            maps: checked.maps,
            map_handles,
            static_regions: checked.static_regions,
            map_layouts,
            map_areas,
            value_areas,
            subprog_starts: checked.subprog_starts,
            lookup: helpers,
            log: checked.log,
            spec,
            run_cnt: AtomicU64::new(0),
            run_time_ns: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            jit: std::sync::OnceLock::new(),
        };
        if !crate::jit::enabled() {
            let _ = prog.jit.set(None);
        } else if !crate::jit::deferred() {
            let _ = prog.jit.set(crate::jit::compile(&prog));
        }
        Ok(prog)
    }

    /// The compiled code runs use now (None: interpreted, or a deferred compile that
    /// has not finished).
    #[inline(always)]
    pub(crate) fn jit_now(&self) -> Option<&crate::jit::Compiled> {
        match self.jit.get() {
            Some(Some(c)) => Some(c),
            _ => None,
        }
    }

    /// The compiled code, compiling it here if a deferred compile has not yet.
    fn jit_done(&self) -> Option<&crate::jit::Compiled> {
        self.jit.get_or_init(|| crate::jit::compile(self)).as_ref()
    }

    /// Compiles a program loaded while compiles were [deferred](crate::jit::defer) on
    /// the JIT thread; until then its runs interpret. Nothing to do for others.
    pub fn compile_in_background(self: &std::sync::Arc<Self>) {
        if self.jit.get().is_none() {
            crate::jit::compile_later(std::sync::Arc::downgrade(self));
        }
    }

    /// Waits for (or does) a deferred compile: afterwards runs use whatever the JIT made.
    pub fn finish_compile(&self) {
        self.jit_done();
    }

    /// Bytes of machine code (`bpf_prog_info.jited_prog_len`); 0 when interpreted.
    pub fn jited_len(&self) -> u32 {
        self.jit_done().map_or(0, |j| j.len() as u32)
    }

    /// The JIT-compiled machine code (empty when interpreted), as the kernel's
    /// `jited_prog_insns`.
    pub fn jited_insns(&self) -> &[u8] {
        self.jit_done().map_or(&[], |j| j.bytes())
    }

    /// The program's memory accesses by how they run: proven by the verifier and
    /// emitted without a run-time check (packet, stack, map value), or checked at run time.
    pub fn memory_accesses(&self) -> MemoryAccesses {
        let mut m = MemoryAccesses::default();
        for o in self.ops.iter() {
            if !matches!(o.code & 7, 1..=3) {
                continue;
            }
            match o.code & 0xe0 {
                0xa0 => m.packet_proven += 1,
                0xe0 => m.value_proven += 1,
                0xc0 if o.aux & crate::interp::op::ATOMIC_PROVEN != 0 => m.value_proven += 1,
                0x40 => m.stack_proven += 1,
                0x60 | 0x80 | 0xc0 => m.checked += 1,
                _ => {}
            }
        }
        m
    }

    /// Whether runs use JIT-compiled code (finishing a deferred compile first).
    pub fn is_jitted(&self) -> bool {
        self.jit_done().is_some()
    }

    /// Drop the compiled code: later runs use the interpreter (comparisons, tests).
    pub fn disable_jit(&mut self) {
        self.jit = std::sync::OnceLock::from(None);
    }

    /// The verifier log (what log_buf receives for log_level > 0).
    pub fn log(&self) -> &str {
        &self.log
    }
    pub fn prog_type(&self) -> u32 {
        self.spec.prog_type
    }
    pub fn expected_attach_type(&self) -> u32 {
        self.spec.expected_attach_type
    }
    pub fn name(&self) -> &str {
        &self.spec.name
    }
    pub fn spec(&self) -> &ProgLoadSpec {
        &self.spec
    }
    /// The kernel's tag (`bpf_prog_info.tag`).
    pub fn tag(&self) -> [u8; 8] {
        self.tag
    }
    /// The instructions as `bpftool prog dump xlated` sees them: the originals
    /// (map references keep the loader's fd numbers).
    pub fn xlated(&self) -> Vec<u8> {
        self.spec.insns.clone()
    }
    pub fn insn_cnt(&self) -> u32 {
        self.insn_cnt
    }
    /// Maps the program uses (deduplicated).
    pub fn maps(&self) -> &[Arc<dyn Map>] {
        &self.maps
    }
    /// Helper ids the program calls.
    pub fn helper_ids(&self) -> &[u32] {
        &self.helper_ids
    }
    pub fn gpl_compatible(&self) -> bool {
        self.gpl
    }
    /// `bpf_prog_info.run_cnt` (counted while [`stats`] are enabled).
    pub fn run_cnt(&self) -> u64 {
        self.run_cnt.load(Ordering::Relaxed)
    }
    /// `bpf_prog_info.run_time_ns`.
    pub fn run_time_ns(&self) -> u64 {
        self.run_time_ns.load(Ordering::Relaxed)
    }
    /// Runs that ended in a fault (exceptions).
    pub fn fault_cnt(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }

    /// Run the program on one XDP frame described by `ctx`.
    pub fn run_xdp(&self, ctx: &mut XdpCtx, cpu: u32, host: &dyn HostEnv) -> RunResult {
        self.run_xdp_in(&mut Session::new(), ctx, cpu, host)
    }

    /// [`Program::run_xdp`] in `session`: the run state is set up once for many runs
    /// (a batch of frames, the repetitions of a test run).
    #[inline(always)]
    pub fn run_xdp_in(
        &self,
        session: &mut Session,
        ctx: &mut XdpCtx,
        cpu: u32,
        host: &dyn HostEnv,
    ) -> RunResult {
        if stats::enabled() {
            return self.run_xdp_counted(session, ctx, cpu, host);
        }
        self.run_xdp_once(session, ctx, cpu, host)
    }

    #[inline(always)]
    fn run_xdp_once(
        &self,
        session: &mut Session,
        ctx: &mut XdpCtx,
        cpu: u32,
        host: &dyn HostEnv,
    ) -> RunResult {
        match session.run_xdp(self, ctx, cpu, host) {
            Ok(v) => RunResult {
                verdict: v as u32,
                redirect: session.take_redirect(),
                fault: None,
            },
            Err(f) => self.aborted(f, session.take_redirect()),
        }
    }

    /// [`Program::run_xdp_in`] while `BPF_ENABLE_STATS` is on: run count and time.
    #[cold]
    #[inline(never)]
    fn run_xdp_counted(
        &self,
        session: &mut Session,
        ctx: &mut XdpCtx,
        cpu: u32,
        host: &dyn HostEnv,
    ) -> RunResult {
        let t0 = Instant::now();
        let r = self.run_xdp_once(session, ctx, cpu, host);
        self.run_cnt.fetch_add(1, Ordering::Relaxed);
        self.run_time_ns
            .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }

    /// A run that faulted: counted, logged, XDP_ABORTED.
    #[cold]
    #[inline(never)]
    fn aborted(&self, f: Fault, redirect: RedirectInfo) -> RunResult {
        self.faults.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(prog = %self.spec.name, fault = %f, "program run aborted");
        RunResult {
            verdict: XDP_ABORTED,
            redirect,
            fault: Some(f),
        }
    }

    /// A bpf_conformance-style run: r1 = `mem`, r2 = its length; returns r0.
    pub fn run_raw(&self, mem: &mut [u8], host: &dyn HostEnv) -> Result<u64, Fault> {
        let mut dummy = XdpCtx::default();
        let addr = mem.as_mut_ptr() as u64;
        let region = (!mem.is_empty()).then(|| Region::new(addr, mem.len() as u64, true));
        interp::run(
            self,
            RunArgs {
                xdp: &mut dummy,
                r1: addr,
                r2: mem.len() as u64,
                region,
                skb_data: (0, 0),
                cpu: 0,
                host,
            },
        )
        .0
    }

    /// BPF_PROG_TEST_RUN for XDP, as the kernel's `bpf_prog_test_run_xdp` (without
    /// live frames): `ctx_in` is `struct xdp_md` (any size; bytes past 24 must be zero).
    /// `ctx_in.ingress_ifindex` must already be resolved by the caller (it is passed
    /// through); without a context the program sees ingress_ifindex 1 (loopback).
    pub fn test_run_xdp(
        &self,
        data_in: &[u8],
        ctx_in: Option<&[u8]>,
        repeat: u32,
        cpu: u32,
        host: &dyn HostEnv,
    ) -> Result<TestRunOut, i32> {
        const PAGE: usize = 4096;
        const ETH_HLEN: usize = 14;
        const MD: usize = 24;
        if self.spec.prog_type != prog_type::XDP {
            return Err(EINVAL);
        }
        if matches!(
            self.spec.expected_attach_type,
            attach_type::BPF_XDP_DEVMAP | attach_type::BPF_XDP_CPUMAP
        ) {
            return Err(EINVAL);
        }
        let md = match ctx_in {
            Some(c) => {
                if c.len() > MD && c[MD..].iter().any(|&b| b != 0) {
                    return Err(E2BIG);
                }
                let mut md = [0u8; MD];
                let n = c.len().min(MD);
                md[..n].copy_from_slice(&c[..n]);
                Some(md)
            }
            None => None,
        };
        let field = |md: &[u8; MD], i: usize| {
            u32::from_ne_bytes(md[i * 4..i * 4 + 4].try_into().expect("4 bytes"))
        };
        let size = data_in.len();
        let mut headroom = XDP_PACKET_HEADROOM;
        let mut metalen = 0usize;
        let (mut ingress, mut rxq) = (1u32, 0u32);
        if let Some(md) = &md {
            let (data, data_end, data_meta) = (field(md, 0), field(md, 1), field(md, 2));
            if data_meta != 0
                || data_end as usize != size
                || data > data_end
                || data & 3 != 0
                || data > 32
            {
                return Err(EINVAL);
            }
            metalen = data as usize;
            headroom -= metalen;
            if field(md, 5) != 0 {
                return Err(EINVAL);
            }
            let (ifx, q) = (field(md, 3), field(md, 4));
            if ifx == 0 && q != 0 {
                return Err(EINVAL);
            }
            if ifx != 0 {
                ingress = ifx;
                rxq = q;
            }
        }
        let max_data = PAGE - headroom - XDP_TAILROOM;
        if size < ETH_HLEN {
            return Err(EINVAL);
        }
        if size > max_data {
            // The kernel puts the rest into fragments; bpftime has no multi-buffer frames.
            tracing::debug!(
                size,
                max_data,
                "test_run_xdp: multi-buffer packets are not supported"
            );
            return Err(EINVAL);
        }
        let mut frame = vec![0u64; PAGE / 8];
        let base = frame.as_mut_ptr() as u64;
        {
            // SAFETY: `frame` is PAGE bytes we own; headroom + size <= PAGE - tailroom.
            let bytes = unsafe { crate::mem::raw::slice_mut(base, PAGE) };
            bytes[headroom..headroom + size].copy_from_slice(data_in);
        }
        let mut ctx = XdpCtx {
            data_meta: base + headroom as u64,
            data: base + (headroom + metalen) as u64,
            data_end: base + (headroom + size) as u64,
            ingress_ifindex: ingress,
            rx_queue_index: rxq,
            egress_ifindex: 0,
            _pad: 0,
            hard_start: base,
            frame_end: base + (PAGE - XDP_TAILROOM) as u64,
        };
        let repeat = repeat.max(1);
        let t0 = Instant::now();
        let mut retval = 0;
        let mut timer = crate::run::RepeatTimer::new(host);
        let mut session = Session::new();
        for _ in 0..repeat {
            retval = self.run_xdp_in(&mut session, &mut ctx, cpu, host).verdict;
            timer.tick()?;
        }
        let total = t0.elapsed().as_nanos() as u64;
        let duration_ns = (total / repeat as u64).min(u32::MAX as u64) as u32;
        let (meta, end, data) = (ctx.data_meta, ctx.data_end, ctx.data);
        let ok = base <= meta && meta <= data && data <= end && end <= base + PAGE as u64;
        if !ok {
            return Err(libc::EFAULT);
        }
        // SAFETY: [meta, end) lies inside `frame` (checked above).
        let data_out = unsafe { crate::mem::raw::slice(meta, (end - meta) as usize) }.to_vec();
        let ctx_out = match md {
            Some(mut md) => {
                md[0..4].copy_from_slice(&((data - meta) as u32).to_ne_bytes());
                md[4..8].copy_from_slice(&((end - meta) as u32).to_ne_bytes());
                md.to_vec()
            }
            None => Vec::new(),
        };
        drop(frame);
        Ok(TestRunOut {
            retval,
            data_out,
            ctx_out,
            duration_ns,
        })
    }

    /// BPF_PROG_TEST_RUN for SOCKET_FILTER (libbpf's probes): r1 is a zeroed fake
    /// `__sk_buff`; LD_ABS/LD_IND read `data_in` past the Ethernet header.
    pub fn test_run_generic(
        &self,
        data_in: &[u8],
        repeat: u32,
        cpu: u32,
        host: &dyn HostEnv,
    ) -> Result<TestRunOut, i32> {
        if self.spec.prog_type != prog_type::SOCKET_FILTER {
            return Err(libc::ENOTSUP);
        }
        if data_in.len() < 14 {
            return Err(EINVAL);
        }
        let mut skb = [0u64; 24];
        let mut pkt = data_in.to_vec();
        let repeat = repeat.max(1);
        let t0 = Instant::now();
        let mut retval = 0;
        let mut timer = crate::run::RepeatTimer::new(host);
        for _ in 0..repeat {
            timer.tick()?;
            let mut dummy = XdpCtx::default();
            let r1 = skb.as_mut_ptr() as u64;
            let skb_data = (pkt.as_mut_ptr() as u64 + 14, (pkt.len() - 14) as u64);
            let (res, _) = interp::run(
                self,
                RunArgs {
                    xdp: &mut dummy,
                    r1,
                    r2: 0,
                    region: Some(Region::new(r1, 192, false)),
                    skb_data,
                    cpu,
                    host,
                },
            );
            retval = res.unwrap_or(0) as u32;
        }
        let duration_ns =
            (t0.elapsed().as_nanos() as u64 / repeat as u64).min(u32::MAX as u64) as u32;
        Ok(TestRunOut {
            retval,
            data_out: pkt,
            ctx_out: Vec::new(),
            duration_ns,
        })
    }
}
