//! Load-time checks and the rewrite into the interpreter's form.
//!
//! Order as the kernel's `bpf_check`: resolve `ld_imm64` pseudo forms (maps,
//! functions), find subprograms and check jumps (`check_subprogs`), walk the CFG
//! (`check_cfg`: ld_imm64 halves, unreachable code, loops without exit), check each
//! instruction's encoding, then an abstract interpretation over the CFG that tracks
//! what kind of value each register and stack slot holds (context pointer, stack
//! pointer, other pointer, scalar, uninitialised). That drives the kernel's type
//! errors that matter (context access rules, modified or mixed pointers, reads of
//! uninitialised registers, stack bounds) and the context rewrite
//! (`xdp_convert_ctx_access`): a load of `struct xdp_md` becomes a load of our
//! [`XdpCtx`](crate::run::XdpCtx).
//!
//! Pointer-or-NULL values (a map lookup, a ring buffer reservation) carry the id of the
//! call that made them: a test against 0 refines every copy (registers and spills),
//! and until then they cannot be dereferenced, moved by arithmetic or passed where
//! memory is expected. A reservation is a reference the program must give back
//! (`bpf_ringbuf_submit`/`discard`) before it exits or tail-calls; giving it back turns
//! every copy into a number. An ARRAY/PERCPU_ARRAY lookup whose key is zero bytes on
//! the stack (the kernel's STACK_ZERO) cannot fail and needs no test. What a program
//! reads from a map or the packet is a number, never a pointer.
//!
//! What the abstract interpretation does not prove (packet and map-value bounds) is
//! checked at run time by the interpreter.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::sync::Arc;

use libc::{E2BIG, EACCES, EINVAL};

use crate::helpers::HelperSpec;
use crate::insn::*;
use crate::interp::{op, Op, FUNC_TAG};
use crate::maps::{map_handle, map_type, Map};
use crate::mem::Region;
use crate::program::{LoadError, MapResolver};
use crate::run::{ctx_off, HelperFn};

/// How the program is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// bpf_conformance style: r1 = memory, r2 = its length; structural checks only.
    Raw,
    /// XDP: the kernel's checks and the context rewrite. `devmap`: egress_ifindex readable.
    Xdp { devmap: bool },
    /// SOCKET_FILTER: loads (libbpf probes), context accesses refused.
    SocketFilter,
}

/// Helper lookup used at load (the crate's table, or a test table).
pub type HelperLookup = fn(u32) -> Option<&'static HelperSpec>;

/// What the checks produce.
pub(crate) struct Checked {
    pub ops: Vec<Op>,
    pub helper_fns: Vec<HelperFn>,
    pub helper_ids: Vec<u32>,
    pub maps: Vec<Arc<dyn Map>>,
    pub static_regions: Vec<Region>,
    pub subprog_starts: Vec<usize>,
    pub log: String,
}

fn fail(errno: i32, log: &mut String, msg: String) -> LoadError {
    log.push_str(&msg);
    log.push('\n');
    LoadError {
        errno,
        log: std::mem::take(log),
    }
}

// Register kinds (a set: the union over all paths reaching an instruction).
type Kinds = u16;
const K_UNINIT: Kinds = 1;
const K_SCALAR: Kinds = 2;
const K_CTX: Kinds = 4;
const K_CTXMOD: Kinds = 8;
const K_STACK: Kinds = 16;
const K_PTR: Kinds = 32;
const K_MAP: Kinds = 64;
const K_FUNC: Kinds = 128;
/// A pointer into a calling frame's stack (offset not tracked): an 8-byte load from
/// it may be a pointer the caller spilled there.
const K_FRAME: Kinds = 256;
const K_POINTERS: Kinds = K_CTX | K_CTXMOD | K_STACK | K_PTR | K_MAP | K_FUNC | K_FRAME;
/// The NULL of a pointer-or-NULL a helper returned (a map value, a ring buffer record)
/// that no test against 0 has ruled out yet: no dereference, no arithmetic.
const K_NULL: Kinds = 512;

/// What a `K_PTR` register is relative to the packet (the kernel's PTR_TO_PACKET with
/// id 0, and PTR_TO_PACKET_END). Only pointers derived from `ctx->data` by constants are
/// followed; a variable offset, `data_meta` and anything joined from different values
/// are `No` (their accesses stay checked at run time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pkt {
    No,
    /// `data` plus this constant.
    Data(i32),
    /// `data` plus a number not followed.
    Var,
    /// `data_end`.
    End,
}

impl Pkt {
    fn join(self, o: Pkt) -> Pkt {
        match (self, o) {
            (a, b) if a == b => a,
            (Pkt::Data(_) | Pkt::Var, Pkt::Data(_) | Pkt::Var) => Pkt::Var,
            _ => Pkt::No,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reg {
    k: Kinds,
    /// Packet pointer tracking (with `k == K_PTR`).
    pkt: Pkt,
    /// The value was read back from memory on some path. The stack can be written
    /// behind the analysis' back (a helper's output, a run-time checked access that
    /// lands there), so such a packet pointer or bound proves nothing at run time (the
    /// kernel, which sees every write, trusts it for its verdict, and so do we).
    tainted: bool,
    /// Offset from the frame pointer, when the value is a stack pointer with a known offset.
    off: Option<i32>,
    /// Which helper call made this pointer-or-NULL (its pc + 1; 0 none or mixed): a
    /// test against 0 refines every copy, and it names a ring buffer reference.
    id: u32,
    /// For a map (`K_MAP`): the key size of an ARRAY or PERCPU_ARRAY, whose lookup
    /// with a key of zero bytes cannot fail (0: another map or not known).
    array_ks: u32,
    /// For a map (`K_MAP`): which one (index + 1 in the program's maps; 0: not known,
    /// or different maps on different paths).
    map: u32,
    /// A number known to be 0 on every path.
    zero: bool,
    /// For a `K_PTR` (or pointer-or-NULL): a map value of the program's map `.0`
    /// (index + 1) plus the constant `.1` (from a lookup or a direct value load).
    val: Option<(u32, i32)>,
    /// For a lookup taken to succeed (`sure`, no `K_NULL`): the `val` it gets once a
    /// test against 0 passed at run time (its key bytes are stack contents, which can
    /// change behind the analysis, so only that test proves it is not NULL).
    sure_val: Option<(u32, i32)>,
}

impl Reg {
    const fn kind(k: Kinds) -> Self {
        Reg {
            k,
            pkt: Pkt::No,
            tainted: false,
            off: None,
            id: 0,
            array_ks: 0,
            map: 0,
            zero: false,
            val: None,
            sure_val: None,
        }
    }
    const fn stack(off: i32) -> Self {
        Reg {
            off: Some(off),
            ..Reg::kind(K_STACK)
        }
    }
    const fn zero() -> Self {
        Reg {
            zero: true,
            ..Reg::kind(K_SCALAR)
        }
    }
    fn join(self, o: Reg) -> Reg {
        Reg {
            k: self.k | o.k,
            pkt: self.pkt.join(o.pkt),
            tainted: self.tainted || o.tainted,
            off: if self.off == o.off { self.off } else { None },
            id: if self.id == o.id { self.id } else { 0 },
            array_ks: if self.array_ks == o.array_ks {
                self.array_ks
            } else {
                0
            },
            map: if self.map == o.map { self.map } else { 0 },
            zero: self.zero && o.zero,
            val: if self.val == o.val { self.val } else { None },
            sure_val: if self.sure_val == o.sure_val {
                self.sure_val
            } else {
                None
            },
        }
    }
    /// How a caller's value looks in a callee's frame (and back).
    fn cross_frame(self) -> Reg {
        if self.k & K_STACK != 0 {
            Reg::kind((self.k & !K_STACK) | K_FRAME)
        } else {
            Reg::kind(self.k)
        }
    }
}

const SLOTS: usize = MAX_BPF_STACK / 8;

type Slots = [Reg; SLOTS];

/// The abstract state at a block start. Stack slots are shared copy-on-write
/// between states (most blocks of a program see the same spills), which keeps a
/// state small even for programs made only of jumps.
#[derive(Clone, PartialEq, Eq)]
struct State {
    regs: [Reg; 11],
    slots: Rc<Slots>,
    /// `bpf_spin_lock` state over the paths reaching here: LOCK_FREE / LOCK_HELD bits.
    lock: u8,
    /// Ring buffer records reserved and not yet submitted or discarded on some path
    /// (ids of their `Reg`s, sorted).
    refs: Vec<u32>,
    /// Stack bytes known to hold 0 (the kernel's STACK_ZERO), bit `off + 512`.
    zero: [u64; MAX_BPF_STACK / 64],
    /// Packet bytes from `data` that a comparison with `data_end` has shown to exist:
    /// the least over the paths reaching here (what is proven) and the most (what some
    /// path proves: an access beyond it is out of the packet on every path).
    pkt_lo: u32,
    pkt_hi: u32,
}

/// No `bpf_spin_lock` held on some path.
const LOCK_FREE: u8 = 1;
/// A `bpf_spin_lock` held on some path.
const LOCK_HELD: u8 = 2;

fn scalar_slots() -> Rc<Slots> {
    Rc::new([Reg::kind(K_SCALAR); SLOTS])
}

impl State {
    fn new(slots: &Rc<Slots>) -> State {
        State {
            regs: [Reg::kind(K_UNINIT); 11],
            slots: slots.clone(),
            lock: LOCK_FREE,
            refs: Vec::new(),
            zero: [0; MAX_BPF_STACK / 64],
            pkt_lo: 0,
            pkt_hi: 0,
        }
    }
    fn join_from(&mut self, o: &State) -> bool {
        let mut changed = self.lock | o.lock != self.lock;
        self.lock |= o.lock;
        if o.pkt_lo < self.pkt_lo || o.pkt_hi > self.pkt_hi {
            self.pkt_lo = self.pkt_lo.min(o.pkt_lo);
            self.pkt_hi = self.pkt_hi.max(o.pkt_hi);
            changed = true;
        }
        for (a, b) in self.zero.iter_mut().zip(o.zero.iter()) {
            if *a & b != *a {
                *a &= b;
                changed = true;
            }
        }
        for &r in &o.refs {
            changed |= self.hold(r);
        }
        for (a, b) in self.regs.iter_mut().zip(o.regs.iter()) {
            let j = a.join(*b);
            if j != *a {
                *a = j;
                changed = true;
            }
        }
        if !Rc::ptr_eq(&self.slots, &o.slots) {
            let mut joined = *self.slots;
            for (a, b) in joined.iter_mut().zip(o.slots.iter()) {
                *a = a.join(*b);
            }
            if joined != *self.slots {
                changed = true;
                self.slots = if joined == *o.slots {
                    o.slots.clone()
                } else {
                    Rc::new(joined)
                };
            } else if joined == *o.slots {
                self.slots = o.slots.clone();
            }
        }
        changed
    }
    fn set_slot(&mut self, idx: usize, v: Reg) {
        if self.slots[idx] != v {
            Rc::make_mut(&mut self.slots)[idx] = v;
        }
    }
    fn kill_slots(&mut self, lo: i64, len: i64) {
        for i in 0..SLOTS {
            let so = -(MAX_BPF_STACK as i64) + 8 * i as i64;
            if so < lo + len && lo < so + 8 {
                self.set_slot(i, Reg::kind(K_SCALAR));
            }
        }
    }
    /// Every register and spilled copy of the value `id` becomes `to`.
    fn retype(&mut self, id: u32, to: impl Fn(Reg) -> Reg) {
        self.update(|r| r.id == id, to);
    }
    /// Every register and spilled value that is `which` becomes `to` of it.
    fn update(&mut self, which: impl Fn(&Reg) -> bool, to: impl Fn(Reg) -> Reg) {
        for r in self.regs.iter_mut() {
            if which(r) {
                *r = to(*r);
            }
        }
        for i in 0..SLOTS {
            if which(&self.slots[i]) {
                let v = to(self.slots[i]);
                self.set_slot(i, v);
            }
        }
    }
    /// A test of register `r` against 0 went the `null` way (or the other): the
    /// pointer-or-NULL in it and in its copies is NULL (a number; a record that was
    /// never reserved holds nothing) or a pointer. A test of a value read back from
    /// memory types the copies as the kernel does, but proves nothing about them at
    /// run time (the stack may hold something else by then): they become tainted.
    fn refine_null(&mut self, r: usize, null: bool) {
        let trusted = !self.regs[r].tainted;
        let to = move |v: Reg| {
            let n = if null {
                Reg::zero()
            } else {
                Reg {
                    k: (v.k & !K_NULL) | if v.k & K_POINTERS == 0 { K_PTR } else { 0 },
                    ..v
                }
            };
            Reg {
                tainted: n.tainted || !trusted,
                ..n
            }
        };
        let id = self.regs[r].id;
        self.regs[r] = to(self.regs[r]);
        if id != 0 {
            self.retype(id, to);
            if null {
                self.release(id);
            }
        }
    }
    /// Record `id` is held (on some path); whether it was not already.
    fn hold(&mut self, id: u32) -> bool {
        match self.refs.binary_search(&id) {
            Ok(_) => false,
            Err(at) => {
                self.refs.insert(at, id);
                true
            }
        }
    }
    /// Record `id` is no longer this frame's to give back.
    fn unhold(&mut self, id: u32) {
        if let Ok(at) = self.refs.binary_search(&id) {
            self.refs.remove(at);
        }
    }
    /// The record `id` was submitted or discarded: its copies are numbers now.
    fn release(&mut self, id: u32) {
        self.unhold(id);
        self.retype(id, |_| Reg::kind(K_SCALAR));
    }
    /// A comparison of `data + off` with `data_end` showed `range` bytes from `data` to
    /// exist on this edge (`find_good_pkt_pointers`); `trusted`: with values that never
    /// went through memory (see `Reg::tainted`).
    fn prove_pkt(&mut self, range: u32, trusted: bool) {
        if trusted {
            self.pkt_lo = self.pkt_lo.max(range);
        }
        self.pkt_hi = self.pkt_hi.max(range);
    }
    /// Code the analysis does not follow from here (a bpf-to-bpf call, a callback) may
    /// have moved the packet: nothing is proven any more, and the packet pointers held
    /// prove nothing at run time (they keep their kinds and tags: the kernel, which
    /// follows the callee, only clears them when it does move the packet).
    fn distrust_pkt(&mut self) {
        self.pkt_lo = 0;
        self.update(
            |r| r.pkt != Pkt::No && !r.tainted,
            |r| Reg { tainted: true, ..r },
        );
    }
    /// A helper moved or resized the packet (`clear_all_pkt_pointers`): every packet
    /// pointer held is a number now, and nothing is proven.
    fn clear_pkt_pointers(&mut self) {
        self.pkt_lo = 0;
        self.pkt_hi = 0;
        self.update(|r| r.pkt != Pkt::No, |_| Reg::kind(K_SCALAR));
    }
    /// Something may have written the stack: no byte is known to be 0 any more.
    fn forget_zeros(&mut self) {
        self.zero = [0; MAX_BPF_STACK / 64];
    }
    /// Stack bytes `[lo, lo+len)` (frame offsets) hold 0 now, or something else.
    fn set_zero(&mut self, lo: i64, len: i64, zero: bool) {
        for o in lo.max(-(MAX_BPF_STACK as i64))..(lo + len).min(0) {
            let b = (o + MAX_BPF_STACK as i64) as usize;
            if zero {
                self.zero[b / 64] |= 1 << (b % 64);
            } else {
                self.zero[b / 64] &= !(1 << (b % 64));
            }
        }
    }
    fn all_zero(&self, lo: i64, len: i64) -> bool {
        lo >= -(MAX_BPF_STACK as i64)
            && lo + len <= 0
            && (lo..lo + len).all(|o| {
                let b = (o + MAX_BPF_STACK as i64) as usize;
                self.zero[b / 64] & (1 << (b % 64)) != 0
            })
    }
    fn kill_all_slots(&mut self) {
        if self.slots.iter().any(|r| *r != Reg::kind(K_SCALAR)) {
            self.slots = scalar_slots();
        }
    }
}

/// What the analysis saw at one instruction (joined over all visits).
#[derive(Clone, Copy, Default)]
struct Seen {
    visited: bool,
    k: [Kinds; 11],
    /// Per register, the map it holds on every visit (`Reg::map`; u32::MAX: several).
    map: [u32; 11],
    /// Stack offset of the memory base register: 0 none seen, 1 one value, 2 several/unknown.
    off_state: u8,
    off: i32,
    /// `State::lock` joined over all visits.
    lock: u8,
    /// A ring buffer record is held here on some path (the first one's id).
    held_ref: u32,
    /// An exit of the main program reached with a record held (its id).
    leaked: u32,
    /// Per register, the id of a pointer-or-NULL seen in it (for messages).
    null_from: [u32; 11],
    /// Per register, its packet tracking on every visit (None: not visited yet).
    pkt: [Option<Pkt>; 11],
    /// Per register, `Reg::tainted` on some visit.
    tainted: [bool; 11],
    /// Per register, `Reg::val` on every visit (None: not visited yet).
    val: [Option<Option<(u32, i32)>>; 11],
    /// `State::pkt_lo` (least) and `pkt_hi` (most) over the visits.
    pkt_lo: u32,
    pkt_hi: u32,
}

fn jump_target(i: usize, insn: Insn) -> i64 {
    if insn.class() == BPF_JMP32 && insn.code & 0xf0 == BPF_JA {
        i as i64 + insn.imm as i64 + 1
    } else {
        i as i64 + insn.off as i64 + 1
    }
}

fn is_jump(insn: Insn) -> bool {
    let c = insn.class();
    (c == BPF_JMP || c == BPF_JMP32) && !matches!(insn.code & 0xf0, BPF_CALL | BPF_EXIT)
}

fn is_pseudo_call(insn: Insn) -> bool {
    insn.code == BPF_JMP | BPF_CALL && insn.src == BPF_PSEUDO_CALL
}

fn is_pseudo_func(insn: Insn) -> bool {
    insn.is_ld_imm64() && insn.src == BPF_PSEUDO_FUNC
}

pub(crate) struct Input<'a> {
    pub insns: &'a [Insn],
    pub mode: Mode,
    pub maps: &'a dyn MapResolver,
    pub helpers: HelperLookup,
    pub gpl: bool,
}

pub(crate) fn check(inp: Input<'_>) -> Result<Checked, LoadError> {
    let insns = inp.insns;
    let n = insns.len();
    let kernel = inp.mode != Mode::Raw;
    let mut log = String::new();

    if n == 0 || n > BPF_COMPLEXITY_LIMIT_INSNS {
        return Err(fail(
            E2BIG,
            &mut log,
            format!("program has {n} insns (limit {BPF_COMPLEXITY_LIMIT_INSNS})"),
        ));
    }

    // 1. ld_imm64 pseudo forms (resolve_pseudo_ldimm64).
    let mut maps: Vec<Arc<dyn Map>> = Vec::new();
    let mut static_regions: Vec<Region> = Vec::new();
    let mut imm64: Vec<u64> = vec![0; n];
    // Per ld_imm64 of an ARRAY/PERCPU_ARRAY map: its key size (see `Reg::array_ks`).
    let mut array_ks: Vec<u32> = vec![0; n];
    // Per ld_imm64 of a map: which one (index + 1 in `maps`; see `Reg::map`).
    let mut map_at: Vec<u32> = vec![0; n];
    // Per direct value load: its map (index + 1) and offset (see `Reg::val`).
    let mut value_at: Vec<Option<(u32, i32)>> = vec![None; n];
    let mut second_half = vec![false; n];
    let mut i = 0;
    while i < n {
        let insn = insns[i];
        if !insn.is_ld_imm64() {
            i += 1;
            continue;
        }
        if i + 1 >= n {
            return Err(fail(
                EINVAL,
                &mut log,
                format!("{i}: invalid bpf_ld_imm64 insn"),
            ));
        }
        let nx = insns[i + 1];
        if nx.code != 0 || nx.dst != 0 || nx.src != 0 || nx.off != 0 {
            return Err(fail(
                EINVAL,
                &mut log,
                format!("{i}: invalid bpf_ld_imm64 insn"),
            ));
        }
        if insn.off != 0 {
            return Err(fail(
                EINVAL,
                &mut log,
                format!("{i}: BPF_LD_IMM64 uses reserved fields"),
            ));
        }
        second_half[i + 1] = true;
        let lo = insn.imm as u32 as u64;
        let hi = nx.imm as u32 as u64;
        imm64[i] = match insn.src {
            0 => (hi << 32) | lo,
            BPF_PSEUDO_FUNC => 0, // filled once subprograms are known
            BPF_PSEUDO_MAP_FD
            | BPF_PSEUDO_MAP_IDX
            | BPF_PSEUDO_MAP_VALUE
            | BPF_PSEUDO_MAP_IDX_VALUE
                if inp.mode != Mode::Raw =>
            {
                let is_value = matches!(insn.src, BPF_PSEUDO_MAP_VALUE | BPF_PSEUDO_MAP_IDX_VALUE);
                if !is_value && nx.imm != 0 {
                    return Err(fail(
                        EINVAL,
                        &mut log,
                        format!("{i}: unrecognized bpf_ld_imm64 insn"),
                    ));
                }
                let map = if matches!(insn.src, BPF_PSEUDO_MAP_FD | BPF_PSEUDO_MAP_VALUE) {
                    inp.maps.map_by_fd(insn.imm)
                } else if !inp.maps.has_fd_array() {
                    return Err(fail(
                        libc::EPROTO,
                        &mut log,
                        "fd_idx without fd_array is invalid".into(),
                    ));
                } else {
                    inp.maps.fd_array(insn.imm as u32)
                };
                let Some(map) = map else {
                    let from_array = !matches!(insn.src, BPF_PSEUDO_MAP_FD | BPF_PSEUDO_MAP_VALUE);
                    return Err(fail(
                        inp.maps.not_a_map(insn.imm, from_array),
                        &mut log,
                        format!("fd {} is not pointing to valid bpf_map", insn.imm),
                    ));
                };
                let v = if is_value {
                    let off = nx.imm as u32;
                    if off >= 1 << 29 {
                        return Err(fail(
                            EINVAL,
                            &mut log,
                            format!("direct value offset of {off} is not allowed"),
                        ));
                    }
                    let attr = map.attr();
                    if attr.map_type != map_type::ARRAY {
                        return Err(fail(
                            EINVAL,
                            &mut log,
                            "no direct value access support for this map type".into(),
                        ));
                    }
                    if attr.max_entries != 1 {
                        return Err(fail(
                            524,
                            &mut log,
                            format!(
                                "invalid access to map value pointer, value_size={} off={off}",
                                attr.value_size
                            ),
                        ));
                    }
                    let region = match map.direct_value() {
                        Some(r) if (off as u64) < r.len && off < attr.value_size => r,
                        _ => {
                            return Err(fail(
                                EINVAL,
                                &mut log,
                                format!(
                                    "invalid access to map value pointer, value_size={} off={off}",
                                    attr.value_size
                                ),
                            ))
                        }
                    };
                    if !static_regions.contains(&region) {
                        static_regions.push(region);
                    }
                    region.start + off as u64
                } else {
                    let a = map.attr();
                    if matches!(a.map_type, map_type::ARRAY | map_type::PERCPU_ARRAY) {
                        array_ks[i] = a.key_size;
                    }
                    map_handle(&map)
                };
                let pos = match maps.iter().position(|m| Arc::ptr_eq(m, &map)) {
                    Some(p) => p,
                    None => {
                        maps.push(map);
                        maps.len() - 1
                    }
                };
                if is_value {
                    value_at[i] = Some((pos as u32 + 1, nx.imm));
                } else {
                    map_at[i] = pos as u32 + 1;
                }
                v
            }
            BPF_PSEUDO_BTF_ID => {
                return Err(fail(
                    EINVAL,
                    &mut log,
                    format!("{i}: ldimm64 insn specifies invalid btf_id {}", insn.imm),
                ));
            }
            _ => {
                return Err(fail(
                    EINVAL,
                    &mut log,
                    format!("{i}: unrecognized bpf_ld_imm64 insn"),
                ))
            }
        };
        i += 2;
    }

    // 2. Subprograms and jump ranges (check_subprogs).
    let mut starts = vec![0usize];
    for (i, &insn) in insns.iter().enumerate() {
        if second_half[i] {
            continue;
        }
        if insn.code == BPF_JMP | BPF_CALL
            && insn.src == BPF_PSEUDO_KFUNC_CALL
            && insn.code & BPF_X == 0
        {
            return Err(fail(
                EINVAL,
                &mut log,
                format!(
                    "{i}: kernel function calls are not supported (btf_id {})",
                    insn.imm
                ),
            ));
        }
        if is_pseudo_call(insn) || is_pseudo_func(insn) {
            let t = i as i64 + insn.imm as i64 + 1;
            if t < 0 || t >= n as i64 || second_half[t as usize] {
                return Err(fail(
                    EINVAL,
                    &mut log,
                    format!("{i}: call to invalid destination"),
                ));
            }
            starts.push(t as usize);
        }
    }
    starts.sort_unstable();
    starts.dedup();
    let subprog_of = |pc: usize| starts.partition_point(|&s| s <= pc) - 1;
    for (si, &s) in starts.iter().enumerate() {
        let e = starts.get(si + 1).copied().unwrap_or(n);
        for i in s..e {
            let insn = insns[i];
            if second_half[i] || !is_jump(insn) {
                continue;
            }
            let t = jump_target(i, insn);
            if t < s as i64 || t >= e as i64 {
                return Err(fail(
                    EINVAL,
                    &mut log,
                    format!("jump out of range from insn {i} to {t}"),
                ));
            }
        }
        let last = insns[e - 1];
        let ok = !second_half[e - 1]
            && matches!(last.code, c if c == BPF_JMP | BPF_EXIT || c == BPF_JMP | BPF_JA || c == BPF_JMP32 | BPF_JA);
        if !ok {
            return Err(fail(
                EINVAL,
                &mut log,
                format!("last insn is not an exit or jmp (insn {})", e - 1),
            ));
        }
    }
    for (i, v) in imm64.iter_mut().enumerate() {
        if is_pseudo_func(insns[i]) {
            *v = FUNC_TAG | (i as i64 + insns[i].imm as i64 + 1) as u64;
        }
    }

    // 3. CFG (check_cfg): successors, ld_imm64 halves, reachability, exits.
    let succs = |i: usize| -> ([usize; 2], usize) {
        let insn = insns[i];
        if insn.is_ld_imm64() {
            return ([i + 2, 0], 1);
        }
        let c = insn.class();
        if c == BPF_JMP || c == BPF_JMP32 {
            match insn.code & 0xf0 {
                BPF_EXIT => return ([0, 0], 0),
                BPF_CALL => return ([i + 1, 0], 1),
                BPF_JA => return ([jump_target(i, insn) as usize, 0], 1),
                _ => return ([i + 1, jump_target(i, insn) as usize], 2),
            }
        }
        ([i + 1, 0], 1)
    };
    let mut reach = vec![false; n];
    let mut stack: Vec<usize> = starts.iter().take(1).copied().collect();
    reach[0] = true;
    while let Some(i) = stack.pop() {
        let (s, cnt) = succs(i);
        let mut extra = None;
        if is_pseudo_call(insns[i]) || is_pseudo_func(insns[i]) {
            extra = Some((i as i64 + insns[i].imm as i64 + 1) as usize);
        }
        for &t in s[..cnt].iter().chain(extra.iter()) {
            if t >= n {
                return Err(fail(
                    EINVAL,
                    &mut log,
                    format!("jump out of range from insn {i} to {t}"),
                ));
            }
            if second_half[t] {
                return Err(fail(
                    EINVAL,
                    &mut log,
                    format!("jump into the middle of ldimm64 insn {}", t - 1),
                ));
            }
            if !reach[t] {
                reach[t] = true;
                stack.push(t);
            }
        }
    }
    for i in 0..n {
        if !reach[i] && !second_half[i] {
            return Err(fail(EINVAL, &mut log, format!("unreachable insn {i}")));
        }
    }
    // Every instruction must be able to reach an exit of its subprogram, else it is
    // an infinite loop (the kernel finds these by state equivalence or runs out of
    // its complexity budget).
    {
        let mut preds: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut can_exit = vec![false; n];
        let mut work = Vec::new();
        for i in 0..n {
            if second_half[i] {
                continue;
            }
            if insns[i].code == BPF_JMP | BPF_EXIT {
                can_exit[i] = true;
                work.push(i);
            }
            let (s, cnt) = succs(i);
            for &t in &s[..cnt] {
                preds[t].push(i as u32);
            }
        }
        while let Some(t) = work.pop() {
            for &p in &preds[t] {
                let p = p as usize;
                if !can_exit[p] {
                    can_exit[p] = true;
                    work.push(p);
                }
            }
        }
        let stuck: Vec<usize> = (0..n)
            .filter(|&i| !second_half[i] && !can_exit[i])
            .collect();
        if let Some(&i) = stuck.first() {
            // The kernel finds a loop whose state never changes by state equivalence
            // (EINVAL); one that changes state runs into its complexity limit (E2BIG).
            // The loop bodies: stuck instructions inside a stuck backward jump's range.
            let mut cover = vec![0i32; n + 1];
            for &b in &stuck {
                if is_jump(insns[b]) {
                    let t = jump_target(b, insns[b]);
                    if t <= b as i64 {
                        cover[t as usize] += 1;
                        cover[b + 1] -= 1;
                    }
                }
            }
            let mut acc = 0;
            let in_loop_v: Vec<bool> = cover
                .iter()
                .map(|c| {
                    acc += c;
                    acc > 0
                })
                .collect();
            let in_loop = |j: usize| in_loop_v[j];
            let changes_state = stuck.iter().any(|&j| {
                let c = insns[j].class();
                in_loop(j)
                    && (!(c == BPF_JMP || c == BPF_JMP32) || insns[j].code & 0xf0 == BPF_CALL)
            });
            if changes_state {
                return Err(fail(
                    E2BIG,
                    &mut log,
                    format!("BPF program is too large. Processed {} insn (loop at insn {i} never exits)", BPF_COMPLEXITY_LIMIT_INSNS + 1),
                ));
            }
            return Err(fail(
                EINVAL,
                &mut log,
                format!("infinite loop detected at insn {i}"),
            ));
        }
    }

    // 4. Encodings, registers, helpers.
    let mut helper_fns: Vec<HelperFn> = Vec::new();
    let mut helper_ids: Vec<u32> = Vec::new();
    let mut helper_idx = vec![0u32; 0];
    helper_idx.resize(n, u32::MAX);
    let mut arg_kinds: Vec<Option<&'static HelperSpec>> = vec![None; 0];
    arg_kinds.resize(n, None);
    for i in 0..n {
        if second_half[i] {
            continue;
        }
        check_encoding(i, insns[i], inp.mode, &mut log).map_err(|e| with_insn(e, insns))?;
        let insn = insns[i];
        if insn.code == BPF_JMP | BPF_CALL && insn.src == 0 {
            let id = insn.imm as u32;
            let Some(spec) = (if insn.imm < 0 {
                None
            } else {
                (inp.helpers)(id)
            }) else {
                return Err(fail(
                    EINVAL,
                    &mut log,
                    format!("{i}: invalid func unknown#{}", insn.imm),
                ));
            };
            if spec.gpl_only && !inp.gpl && kernel {
                return Err(fail(
                    EINVAL,
                    &mut log,
                    format!("{i}: cannot call GPL-restricted function {}#{id} from non-GPL compatible program", spec.name),
                ));
            }
            let idx = match helper_ids.iter().position(|&h| h == id) {
                Some(p) => p,
                None => {
                    helper_ids.push(id);
                    helper_fns.push(spec.func);
                    helper_ids.len() - 1
                }
            };
            helper_idx[i] = idx as u32;
            arg_kinds[i] = Some(spec);
        }
    }

    // 5. Types (kernel modes).
    let mut ctx_field: Vec<Option<(i32, u8)>> = vec![None; n];
    let seen = if kernel {
        let map_at: Vec<MapAt> = array_ks
            .iter()
            .zip(&map_at)
            .zip(&value_at)
            .map(|((&array_ks, &map), &value)| MapAt {
                array_ks,
                map,
                value,
            })
            .collect();
        let seen = analyse(
            insns,
            &map_at,
            &starts,
            &subprog_of,
            &second_half,
            inp.mode,
            n,
        );
        check_types(
            insns,
            &seen,
            inp.mode,
            &arg_kinds,
            &maps,
            &mut ctx_field,
            &mut log,
        )
        .map_err(|e| with_insn(e, insns))?;
        Some(seen)
    } else {
        None
    };

    // 6. Rewrite into the interpreter's form.
    let mut ops = Vec::with_capacity(n + 1);
    for i in 0..n {
        if second_half[i] {
            ops.push(Op {
                code: op::TRAP,
                ..Op::default()
            });
            continue;
        }
        let insn = insns[i];
        let mut o = Op {
            code: insn.code,
            dst: insn.dst,
            src: insn.src,
            aux: 0,
            off: insn.off as i32,
            imm: insn.imm as i64,
        };
        let class = insn.class();
        match class {
            BPF_ALU64 if insn.code == BPF_ALU64 | BPF_MOV | BPF_X && insn.off != 0 => {
                o.code = op::MOVSX64
            }
            BPF_ALU if insn.code == BPF_ALU | BPF_MOV | BPF_X && insn.off != 0 => {
                o.code = op::MOVSX32
            }
            BPF_LD if insn.is_ld_imm64() => o.imm = imm64[i] as i64,
            BPF_LDX | BPF_ST | BPF_STX => {
                let size = size_bytes(insn.code) as i32;
                let mode = insn.code & 0xe0;
                if let Some((field, fsize)) = ctx_field[i] {
                    o.code = op::CTX_LD;
                    o.off = field;
                    o.aux = fsize;
                } else if mode == BPF_MEM {
                    let base = if class == BPF_LDX { insn.src } else { insn.dst };
                    let in_frame = |off: i32| off >= -(MAX_BPF_STACK as i32) && off + size <= 0;
                    // The frame offset of the access when it is proven: r10-relative,
                    // or through a register the type analysis knows holds r10 + k on
                    // every path (then rewritten as r10-relative).
                    let frame_off = if base == BPF_REG_FP {
                        Some(insn.off as i32)
                    } else {
                        seen.as_ref().and_then(|seen| {
                            let sn = &seen[i];
                            (sn.k[base as usize] == K_STACK && sn.off_state == 1)
                                .then(|| sn.off + insn.off as i32)
                        })
                    };
                    // A packet access inside what is proven on every path, through a
                    // pointer that never went through memory.
                    let pkt_proven = seen.as_ref().is_some_and(|seen| {
                        let sn = &seen[i];
                        let b = base as usize;
                        match (sn.k[b], sn.pkt[b], sn.tainted[b]) {
                            (K_PTR, Some(Pkt::Data(c)), false) => {
                                let at = c as i64 + insn.off as i64;
                                at >= 0 && at + size as i64 <= sn.pkt_lo as i64
                            }
                            _ => false,
                        }
                    });
                    // A map value access inside the value, through a pointer that never
                    // went through memory, from a lookup (or direct load) of a map
                    // whose values live as long as the run can reach them.
                    let val_proven = seen.as_ref().is_some_and(|seen| {
                        let sn = &seen[i];
                        let b = base as usize;
                        match (sn.k[b], sn.val[b], sn.tainted[b]) {
                            (K_PTR, Some(Some((m, c))), false) => {
                                let at = c as i64 + insn.off as i64;
                                maps.get(m as usize - 1).is_some_and(|map| {
                                    value_lives(map.as_ref(), class == BPF_LDX)
                                        && at >= 0
                                        && at + size as i64 <= map.attr().value_size as i64
                                })
                            }
                            _ => false,
                        }
                    });
                    if pkt_proven {
                        o.code = match class {
                            BPF_LDX => op::PKT_LDX,
                            BPF_ST => op::PKT_ST,
                            _ => op::PKT_STX,
                        } | (insn.code & 0x18);
                    } else if val_proven {
                        o.code = match class {
                            BPF_LDX => op::VAL_LDX,
                            BPF_ST => op::VAL_ST,
                            _ => op::VAL_STX,
                        } | (insn.code & 0x18);
                    } else if let Some(off) = frame_off.filter(|&o| in_frame(o)) {
                        o.code = match class {
                            BPF_LDX => op::STACK_LDX,
                            BPF_ST => op::STACK_ST,
                            _ => op::STACK_STX,
                        } | (insn.code & 0x18);
                        o.off = off;
                        if class == BPF_LDX {
                            o.src = BPF_REG_FP;
                        } else {
                            o.dst = BPF_REG_FP;
                        }
                    }
                }
            }
            BPF_JMP | BPF_JMP32 => match insn.code & 0xf0 {
                BPF_CALL if insn.code & BPF_X != 0 => {}
                BPF_CALL if insn.src == BPF_PSEUDO_CALL => {
                    o.code = op::CALL_LOCAL;
                    o.off = (i as i64 + insn.imm as i64 + 1) as i32;
                }
                BPF_CALL => o.imm = helper_idx[i] as i64,
                BPF_EXIT => {}
                BPF_JA => {
                    o.code = BPF_JMP | BPF_JA;
                    o.off = jump_target(i, insn) as i32;
                }
                _ => o.off = jump_target(i, insn) as i32,
            },
            _ => {}
        }
        ops.push(o);
    }
    ops.push(Op {
        code: op::TRAP,
        ..Op::default()
    });
    fuse(&mut ops);

    if kernel {
        log.push_str(&format!(
            "processed {n} insns (limit {BPF_COMPLEXITY_LIMIT_INSNS}) max_states_per_insn 1 total_states {} peak_states {} mark_read 0\n",
            starts.len(),
            starts.len()
        ));
    }
    Ok(Checked {
        ops,
        helper_fns,
        helper_ids,
        maps,
        static_regions,
        subprog_starts: starts,
        log,
    })
}

/// Superinstructions for what clang emits around bounds checks: `rD = rS; rD += K`
/// and `rD = rS; rD += rT` become one op that skips the second. The second op stays
/// in place, so jumps to it still work.
fn fuse(ops: &mut [Op]) {
    for i in 0..ops.len().saturating_sub(1) {
        let (a, b) = (ops[i], ops[i + 1]);
        if a.code != BPF_ALU64 | BPF_MOV | BPF_X || b.dst != a.dst {
            continue;
        }
        if b.code == BPF_ALU64 | BPF_ADD | BPF_K {
            ops[i] = Op {
                code: op::MOV_ADD_K,
                imm: b.imm,
                ..a
            };
        } else if b.code == BPF_ALU64 | BPF_ADD | BPF_X && b.src != a.dst {
            ops[i] = Op {
                code: op::MOV_ADD_X,
                aux: b.src,
                ..a
            };
        }
    }
}

/// Log an error about instruction N ("N: message") in the kernel's style: the
/// instruction as the verifier prints it, then the message.
fn with_insn(mut e: LoadError, insns: &[Insn]) -> LoadError {
    let Some((idx, msg)) = e.log.split_once(": ") else {
        return e;
    };
    let Ok(i) = idx.parse::<usize>() else {
        return e;
    };
    if let Some(&insn) = insns.get(i) {
        e.log = format!(
            "{i}: ({:02x}) {}\n{msg}",
            insn.code,
            disasm(insn, insns.get(i + 1).copied())
        );
    }
    e
}

/// Encoding checks of one instruction (the kernel's "uses reserved fields",
/// "unknown opcode", "R%d is invalid", "frame pointer is read only").
fn check_encoding(i: usize, insn: Insn, mode: Mode, log: &mut String) -> Result<(), LoadError> {
    let kernel = mode != Mode::Raw;
    let class = insn.class();
    let op = insn.code & 0xf0;
    let x = insn.code & BPF_X != 0;
    let bad = |log: &mut String, what: &str| fail(EINVAL, log, format!("{i}: {what}"));
    let unknown = |log: &mut String| {
        fail(
            EINVAL,
            log,
            format!("{i}: unknown opcode {:02x}", insn.code),
        )
    };
    let reg_ok = |log: &mut String, r: u8| {
        if r > 10 {
            Err(fail(EINVAL, log, format!("{i}: R{r} is invalid")))
        } else {
            Ok(())
        }
    };
    let dst_write = |log: &mut String, r: u8| {
        if r > 10 {
            Err(fail(EINVAL, log, format!("{i}: R{r} is invalid")))
        } else if r == BPF_REG_FP {
            Err(fail(
                EACCES,
                log,
                format!("{i}: frame pointer is read only"),
            ))
        } else {
            Ok(())
        }
    };
    match class {
        BPF_ALU | BPF_ALU64 => {
            let name = if class == BPF_ALU {
                "BPF_ALU"
            } else {
                "BPF_ALU64"
            };
            match op {
                BPF_END => {
                    if insn.src != 0
                        || insn.off != 0
                        || !matches!(insn.imm, 16 | 32 | 64)
                        || (class == BPF_ALU64 && x)
                    {
                        return Err(bad(log, "BPF_END uses reserved fields"));
                    }
                }
                BPF_NEG => {
                    if x || insn.src != 0 || insn.off != 0 || insn.imm != 0 {
                        return Err(bad(log, "BPF_NEG uses reserved fields"));
                    }
                }
                BPF_MOV => {
                    if x {
                        let offs: &[i16] = if class == BPF_ALU {
                            &[0, 8, 16]
                        } else {
                            &[0, 8, 16, 32]
                        };
                        if !offs.contains(&insn.off) || insn.imm != 0 {
                            return Err(bad(log, "BPF_MOV uses reserved fields"));
                        }
                        reg_ok(log, insn.src)?;
                    } else if insn.src != 0 || insn.off != 0 {
                        return Err(bad(log, "BPF_MOV uses reserved fields"));
                    }
                }
                BPF_ADD | BPF_SUB | BPF_MUL | BPF_DIV | BPF_OR | BPF_AND | BPF_LSH | BPF_RSH
                | BPF_MOD | BPF_XOR | BPF_ARSH => {
                    let off_ok =
                        insn.off == 0 || (insn.off == 1 && matches!(op, BPF_DIV | BPF_MOD));
                    if (x && insn.imm != 0) || (!x && insn.src != 0) || !off_ok {
                        return Err(bad(log, &format!("{name} uses reserved fields")));
                    }
                    if x {
                        reg_ok(log, insn.src)?;
                    } else if kernel {
                        if matches!(op, BPF_DIV | BPF_MOD) && insn.imm == 0 {
                            return Err(bad(log, "div by zero"));
                        }
                        let bits = if class == BPF_ALU64 { 64 } else { 32 };
                        if matches!(op, BPF_LSH | BPF_RSH | BPF_ARSH)
                            && (insn.imm < 0 || insn.imm >= bits)
                        {
                            return Err(bad(log, &format!("invalid shift {}", insn.imm)));
                        }
                    }
                }
                _ => return Err(bad(log, &format!("invalid BPF_ALU opcode {op:x}"))),
            }
            dst_write(log, insn.dst)
        }
        BPF_LDX => {
            let mode_ = insn.code & 0xe0;
            if !(mode_ == BPF_MEM || (mode_ == BPF_MEMSX && insn.code & 0x18 != BPF_DW)) {
                return Err(unknown(log));
            }
            if insn.imm != 0 {
                return Err(bad(log, "BPF_LDX uses reserved fields"));
            }
            reg_ok(log, insn.src)?;
            dst_write(log, insn.dst)
        }
        BPF_ST => {
            if insn.code & 0xe0 != BPF_MEM {
                return Err(unknown(log));
            }
            if insn.src != 0 {
                return Err(bad(log, "BPF_ST uses reserved fields"));
            }
            reg_ok(log, insn.dst)
        }
        BPF_STX => {
            match insn.code & 0xe0 {
                BPF_MEM => {
                    if insn.imm != 0 {
                        return Err(bad(log, "BPF_STX uses reserved fields"));
                    }
                }
                BPF_ATOMIC => {
                    if !matches!(insn.code & 0x18, BPF_W | BPF_DW) {
                        return Err(bad(log, "invalid atomic operand size"));
                    }
                    let ok = matches!(insn.imm & !BPF_FETCH, 0x00 | 0x40 | 0x50 | 0xa0)
                        || insn.imm == BPF_XCHG
                        || insn.imm == BPF_CMPXCHG;
                    if !ok {
                        return Err(bad(
                            log,
                            &format!("BPF_ATOMIC uses invalid atomic opcode {:02x}", insn.imm),
                        ));
                    }
                }
                _ => return Err(unknown(log)),
            }
            reg_ok(log, insn.src)?;
            reg_ok(log, insn.dst)
        }
        BPF_LD => {
            if insn.is_ld_imm64() {
                return dst_write(log, insn.dst);
            }
            let m = insn.code & 0xe0;
            if !(m == BPF_ABS || m == BPF_IND) || insn.code & 0x18 == BPF_DW {
                return Err(unknown(log));
            }
            if mode != Mode::SocketFilter {
                return Err(bad(
                    log,
                    "BPF_LD_[ABS|IND] instructions not allowed for this program type",
                ));
            }
            if insn.dst != 0 || insn.off != 0 || (m == BPF_ABS && insn.src != 0) {
                return Err(bad(log, "BPF_LD_[ABS|IND] uses reserved fields"));
            }
            reg_ok(log, insn.src)
        }
        _ => {
            // BPF_JMP / BPF_JMP32
            match op {
                BPF_CALL => {
                    if class == BPF_JMP32 {
                        return Err(unknown(log));
                    }
                    if x {
                        // callx: not in the kernel; the conformance dialect's helper-by-register.
                        if kernel || insn.src != 0 || insn.off != 0 || insn.imm != 0 {
                            return Err(bad(log, "BPF_CALL uses reserved fields"));
                        }
                        return reg_ok(log, insn.dst);
                    }
                    if insn.off != 0
                        || insn.dst != 0
                        || (insn.src != 0 && insn.src != BPF_PSEUDO_CALL)
                    {
                        return Err(bad(log, "BPF_CALL uses reserved fields"));
                    }
                    Ok(())
                }
                BPF_EXIT => {
                    if x || insn.imm != 0
                        || insn.src != 0
                        || insn.dst != 0
                        || insn.off != 0
                        || class == BPF_JMP32
                    {
                        return Err(bad(log, "BPF_EXIT uses reserved fields"));
                    }
                    Ok(())
                }
                BPF_JA => {
                    if x || insn.src != 0
                        || insn.dst != 0
                        || (class == BPF_JMP && insn.imm != 0)
                        || (class == BPF_JMP32 && insn.off != 0)
                    {
                        return Err(bad(log, "BPF_JA uses reserved fields"));
                    }
                    Ok(())
                }
                BPF_JCOND => {
                    if class == BPF_JMP32 || x || insn.src != 0 || insn.dst != 0 || insn.imm != 0 {
                        return Err(bad(log, "invalid may_goto"));
                    }
                    Ok(())
                }
                0xf0 => Err(unknown(log)),
                _ => {
                    if x {
                        if insn.imm != 0 {
                            return Err(bad(log, "BPF_JMP/JMP32 uses reserved fields"));
                        }
                        reg_ok(log, insn.src)?;
                    } else if insn.src != 0 {
                        return Err(bad(log, "BPF_JMP/JMP32 uses reserved fields"));
                    }
                    reg_ok(log, insn.dst)
                }
            }
        }
    }
}

/// What an ld_imm64 of a map loads (see `Reg::array_ks`, `Reg::map`).
#[derive(Clone, Copy)]
struct MapAt {
    array_ks: u32,
    map: u32,
    /// A direct value load (`BPF_PSEUDO_MAP_VALUE`): its map (index + 1) and offset.
    value: Option<(u32, i32)>,
}

/// The abstract interpretation: for each instruction, the union of register kinds
/// reaching it.
fn analyse(
    insns: &[Insn],
    map_at: &[MapAt],
    starts: &[usize],
    subprog_of: &dyn Fn(usize) -> usize,
    second_half: &[bool],
    mode: Mode,
    n: usize,
) -> Vec<Seen> {
    let mut seen = vec![Seen::default(); n];
    // Leaders: where states are stored.
    let mut leader = vec![false; n + 1];
    for &s in starts {
        leader[s] = true;
    }
    for i in 0..n {
        if second_half[i] {
            continue;
        }
        let insn = insns[i];
        if is_jump(insn) {
            leader[jump_target(i, insn) as usize] = true;
            leader[i + 1] = true;
        }
        if is_pseudo_call(insn) || insn.code == BPF_JMP | BPF_EXIT {
            leader[i + 1] = true;
        }
    }
    let mut states: Vec<Option<Box<State>>> = vec![None; n];
    let mut sub_ret: Vec<Option<Reg>> = vec![None; starts.len()];
    let mut callers: Vec<Vec<usize>> = vec![Vec::new(); starts.len()];
    // Worked in program order (lowest pc first): fewer revisits.
    let mut work: BinaryHeap<Reverse<usize>> = BinaryHeap::new();
    let mut queued = vec![false; n];
    let empty_slots = scalar_slots();

    let mut entry = State::new(&empty_slots);
    entry.regs[1] = Reg::kind(match mode {
        Mode::Raw => K_PTR,
        _ => K_CTX,
    });
    entry.regs[10] = Reg::stack(0);
    states[0] = Some(Box::new(entry));
    work.push(Reverse(0));
    queued[0] = true;
    // Callbacks (`ld_imm64 FUNC` targets: bpf_loop, for_each_map_elem) start with
    // unknown arguments in a fresh frame.
    for (i, &insn) in insns.iter().enumerate() {
        if !second_half[i] && is_pseudo_func(insn) {
            let t = (i as i64 + insn.imm as i64 + 1) as usize;
            if states[t].is_none() {
                let mut e = State::new(&empty_slots);
                for r in 1..=5 {
                    e.regs[r] = Reg::kind(K_SCALAR | K_PTR);
                }
                e.regs[10] = Reg::stack(0);
                states[t] = Some(Box::new(e));
                work.push(Reverse(t));
                queued[t] = true;
            }
        }
    }

    let push = |states: &mut Vec<Option<Box<State>>>,
                work: &mut BinaryHeap<Reverse<usize>>,
                queued: &mut Vec<bool>,
                t: usize,
                st: &State| {
        let changed = match &mut states[t] {
            Some(s) => s.join_from(st),
            None => {
                states[t] = Some(Box::new(st.clone()));
                true
            }
        };
        if changed && !queued[t] {
            queued[t] = true;
            work.push(Reverse(t));
        }
    };

    while let Some(Reverse(l)) = work.pop() {
        queued[l] = false;
        let mut s: State = (**states[l].as_ref().expect("queued leader has a state")).clone();
        let mut pc = l;
        loop {
            let insn = insns[pc];
            let sn = &mut seen[pc];
            (sn.pkt_lo, sn.pkt_hi) = if sn.visited {
                (sn.pkt_lo.min(s.pkt_lo), sn.pkt_hi.max(s.pkt_hi))
            } else {
                (s.pkt_lo, s.pkt_hi)
            };
            sn.visited = true;
            sn.lock |= s.lock;
            if sn.held_ref == 0 {
                sn.held_ref = s.refs.first().copied().unwrap_or(0);
            }
            for r in 0..11 {
                let m = s.regs[r].map;
                sn.map[r] = match (sn.k[r] == 0, sn.map[r]) {
                    (true, _) => m,
                    (false, old) if old == m => m,
                    _ => u32::MAX,
                };
                sn.k[r] |= s.regs[r].k;
                sn.tainted[r] |= s.regs[r].tainted;
                sn.pkt[r] = Some(match sn.pkt[r] {
                    None => s.regs[r].pkt,
                    Some(p) => p.join(s.regs[r].pkt),
                });
                let v = s.regs[r].val;
                sn.val[r] = Some(match sn.val[r] {
                    None => v,
                    Some(old) if old == v => v,
                    Some(_) => None,
                });
                if s.regs[r].k & K_NULL != 0 && s.regs[r].id != 0 {
                    sn.null_from[r] = s.regs[r].id;
                }
            }
            let class = insn.class();
            // Memory base offsets.
            if matches!(class, BPF_LDX | BPF_ST | BPF_STX) {
                let base = if class == BPF_LDX { insn.src } else { insn.dst };
                let b = s.regs[base as usize];
                if b.k & K_STACK != 0 {
                    match (b.off, sn.off_state) {
                        (Some(o), 0) => {
                            sn.off_state = 1;
                            sn.off = o;
                        }
                        (Some(o), 1) if sn.off == o => {}
                        _ => sn.off_state = 2,
                    }
                }
            }
            let mut next = pc + 1;
            let mut ends = false;
            match class {
                BPF_ALU | BPF_ALU64 => alu_transfer(&mut s, insn),
                BPF_LDX => {
                    let b = s.regs[insn.src as usize];
                    let size = size_bytes(insn.code);
                    let v = if b.k == K_STACK
                        && b.off.is_some()
                        && size == 8
                        && insn.code & 0xe0 == BPF_MEM
                    {
                        let o = b.off.unwrap_or(0) as i64 + insn.off as i64;
                        let idx = o + MAX_BPF_STACK as i64;
                        if o % 8 == 0 && (0..MAX_BPF_STACK as i64).contains(&idx) {
                            Reg {
                                tainted: true,
                                ..s.slots[(idx / 8) as usize]
                            }
                        } else {
                            Reg::kind(K_SCALAR)
                        }
                    } else if b.k == K_CTX {
                        match insn.off {
                            0 if matches!(mode, Mode::Xdp { .. }) => Reg {
                                pkt: Pkt::Data(0),
                                ..Reg::kind(K_PTR)
                            },
                            4 if matches!(mode, Mode::Xdp { .. }) => Reg {
                                pkt: Pkt::End,
                                ..Reg::kind(K_PTR)
                            },
                            0 | 4 | 8 => Reg::kind(K_PTR),
                            _ => Reg::kind(K_SCALAR),
                        }
                    } else if size == 8 && b.k & K_FRAME != 0 {
                        // A caller's spill, seen from a callee that does not track the
                        // caller's slots: a pointer there stays a pointer (run-time checked).
                        Reg::kind(K_SCALAR | K_PTR)
                    } else {
                        // Map values, the packet, an untracked stack offset: what was
                        // stored there is a number now, as the kernel types it; a
                        // pointer written into a map cannot be used as one again.
                        Reg::kind(K_SCALAR)
                    };
                    s.regs[insn.dst as usize] = v;
                }
                BPF_ST | BPF_STX => {
                    let b = s.regs[insn.dst as usize];
                    let size = size_bytes(insn.code) as i64;
                    if b.k & K_STACK != 0 {
                        match b.off {
                            Some(bo) => {
                                let o = bo as i64 + insn.off as i64;
                                let idx = o + MAX_BPF_STACK as i64;
                                let spill = class == BPF_STX
                                    && insn.code & 0xe0 == BPF_MEM
                                    && size == 8
                                    && b.k == K_STACK
                                    && o % 8 == 0
                                    && (0..MAX_BPF_STACK as i64).contains(&idx);
                                if spill {
                                    let v = s.regs[insn.src as usize];
                                    s.set_slot((idx / 8) as usize, v);
                                } else {
                                    s.kill_slots(o, size);
                                }
                                // Bytes of a narrower store of 0 read back as 0 (a
                                // full-width one is a spill, as in the kernel).
                                let zero = size < 8
                                    && insn.code & 0xe0 == BPF_MEM
                                    && if class == BPF_ST {
                                        insn.imm == 0
                                    } else {
                                        let v = s.regs[insn.src as usize];
                                        v.zero && v.k == K_SCALAR
                                    };
                                s.set_zero(o, size, zero);
                            }
                            None => {
                                s.kill_all_slots();
                                s.forget_zeros();
                            }
                        }
                    }
                    if class == BPF_STX && insn.code & 0xe0 == BPF_ATOMIC {
                        if insn.imm == BPF_CMPXCHG {
                            s.regs[0] = Reg::kind(K_SCALAR);
                        } else if insn.imm & BPF_FETCH != 0 {
                            s.regs[insn.src as usize] = Reg::kind(K_SCALAR);
                        }
                    }
                }
                BPF_LD => {
                    if insn.is_ld_imm64() {
                        s.regs[insn.dst as usize] = match insn.src {
                            0 if insn.imm == 0 && insns[pc + 1].imm == 0 => Reg::zero(),
                            0 => Reg::kind(K_SCALAR),
                            BPF_PSEUDO_MAP_FD | BPF_PSEUDO_MAP_IDX => Reg {
                                array_ks: map_at[pc].array_ks,
                                map: map_at[pc].map,
                                ..Reg::kind(K_MAP)
                            },
                            BPF_PSEUDO_FUNC => Reg::kind(K_FUNC),
                            _ => Reg {
                                val: map_at[pc].value,
                                ..Reg::kind(K_PTR)
                            },
                        };
                        next = pc + 2;
                    } else {
                        s.regs[0] = Reg::kind(K_SCALAR);
                        for r in 1..=5 {
                            s.regs[r] = Reg::kind(K_UNINIT);
                        }
                    }
                }
                _ => match insn.code & 0xf0 {
                    BPF_EXIT => {
                        let sp = subprog_of(pc);
                        if sp == 0 && seen[pc].leaked == 0 {
                            seen[pc].leaked = s.refs.first().copied().unwrap_or(0);
                        }
                        if sp != 0 {
                            let r = s.regs[0].cross_frame();
                            let nr = match sub_ret[sp] {
                                Some(o) => o.join(r),
                                None => r,
                            };
                            if sub_ret[sp] != Some(nr) {
                                sub_ret[sp] = Some(nr);
                                for &c in &callers[sp] {
                                    if !queued[c] {
                                        queued[c] = true;
                                        work.push(Reverse(c));
                                    }
                                }
                            }
                        }
                        ends = true;
                    }
                    BPF_CALL if insn.src == BPF_PSEUDO_CALL && insn.code & BPF_X == 0 => {
                        let target = (pc as i64 + insn.imm as i64 + 1) as usize;
                        let sp = subprog_of(target);
                        if !callers[sp].contains(&l) {
                            callers[sp].push(l);
                        }
                        let mut e = State::new(&empty_slots);
                        for r in 1..=5 {
                            e.regs[r] = s.regs[r].cross_frame();
                            // The callee may give back a record it is passed (its
                            // own references are not followed back to the caller).
                            let id = s.regs[r].id;
                            s.unhold(id);
                        }
                        e.regs[10] = Reg::stack(0);
                        push(&mut states, &mut work, &mut queued, target, &e);
                        if (1..=5).any(|r| s.regs[r].k & K_STACK != 0) {
                            s.forget_zeros();
                        }
                        // The callee may move the packet: what is proven is not kept
                        // (what some path proves is, as the kernel follows the callee).
                        s.distrust_pkt();
                        if let Some(ret) = sub_ret[sp] {
                            s.regs[0] = ret.cross_frame();
                            for r in 1..=5 {
                                s.regs[r] = Reg::kind(K_UNINIT);
                            }
                        } else {
                            ends = true; // the return site is reached once the callee returns
                        }
                    }
                    BPF_CALL => {
                        use crate::helpers::id;
                        let helper = if insn.src == 0 && insn.code & BPF_X == 0 {
                            insn.imm as u32
                        } else {
                            0
                        };
                        if matches!(
                            helper,
                            id::XDP_ADJUST_HEAD | id::XDP_ADJUST_META | id::XDP_ADJUST_TAIL
                        ) {
                            s.clear_pkt_pointers();
                        }
                        // A callback (bpf_loop, for_each_map_elem, ...) may move the packet.
                        if (1..=5).any(|r| s.regs[r].k & K_FUNC != 0)
                            || matches!(helper, id::LOOP | id::FOR_EACH_MAP_ELEM)
                        {
                            s.distrust_pkt();
                        }
                        match helper {
                            id::SPIN_LOCK => s.lock = LOCK_HELD,
                            id::SPIN_UNLOCK => s.lock = LOCK_FREE,
                            id::RINGBUF_SUBMIT | id::RINGBUF_DISCARD if s.regs[1].id != 0 => {
                                s.release(s.regs[1].id)
                            }
                            _ => {}
                        }
                        // Pointer-or-NULL from the helpers that return memory (a
                        // reserved record is a reference to give back); a number from
                        // all others.
                        let made = pc as u32 + 1;
                        let (r1, r2) = (s.regs[1], s.regs[2]);
                        let sure = helper == id::MAP_LOOKUP_ELEM
                            && r1.k == K_MAP
                            && r1.array_ks != 0
                            && r2.k == K_STACK
                            && r2
                                .off
                                .is_some_and(|o| s.all_zero(o as i64, r1.array_ks as i64));
                        // Helpers given stack memory may write it.
                        if !matches!(
                            helper,
                            id::MAP_LOOKUP_ELEM | id::MAP_UPDATE_ELEM | id::MAP_DELETE_ELEM
                        ) && (1..=5).any(|r| s.regs[r].k & K_STACK != 0)
                        {
                            s.forget_zeros();
                        }
                        // A lookup in a map known on every path points at offset 0
                        // of one of its values once a test against 0 passed (the map's
                        // kind decides, at rewrite, whether that proves anything). Not
                        // through a map read back from memory (the stack can be
                        // written behind the analysis: another map may be there), and
                        // not for the lookups taken to succeed (`sure`): the zeros of
                        // their key are stack contents too, and a NULL that was never
                        // tested would make every access through it unchecked.
                        let val = (helper == id::MAP_LOOKUP_ELEM
                            && r1.k == K_MAP
                            && r1.map != 0
                            && !r1.tainted)
                            .then_some((r1.map, 0));
                        s.regs[0] = match helper {
                            // An array's element 0 always exists (the kernel's
                            // constant-key lookups, for a key of zero bytes).
                            id::MAP_LOOKUP_ELEM if sure => {
                                s.retype(made, |v| Reg { id: 0, ..v });
                                Reg {
                                    id: made,
                                    sure_val: val,
                                    ..Reg::kind(K_PTR)
                                }
                            }
                            id::MAP_LOOKUP_ELEM | id::RINGBUF_RESERVE => {
                                // Copies left from an earlier pass (a loop) are
                                // another value now: they keep their kinds only.
                                s.retype(made, |v| Reg { id: 0, ..v });
                                if helper == id::RINGBUF_RESERVE {
                                    s.hold(made);
                                }
                                Reg {
                                    id: made,
                                    val,
                                    ..Reg::kind(K_NULL | K_PTR)
                                }
                            }
                            _ => Reg::kind(K_SCALAR),
                        };
                        for r in 1..=5 {
                            s.regs[r] = Reg::kind(K_UNINIT);
                        }
                    }
                    BPF_JA => {
                        let t = jump_target(pc, insn) as usize;
                        push(&mut states, &mut work, &mut queued, t, &s);
                        ends = true;
                    }
                    op @ (BPF_JEQ | BPF_JNE)
                        if class == BPF_JMP
                            && insn.code & BPF_X == 0
                            && insn.imm == 0
                            && s.regs[insn.dst as usize].k & K_NULL != 0 =>
                    {
                        let t = jump_target(pc, insn) as usize;
                        let mut taken = s.clone();
                        taken.refine_null(insn.dst as usize, op == BPF_JEQ);
                        push(&mut states, &mut work, &mut queued, t, &taken);
                        s.refine_null(insn.dst as usize, op == BPF_JNE);
                    }
                    // A lookup taken to succeed, tested against 0 all the same: on
                    // the edge where it is not NULL, it and its copies are a value.
                    // (The other edge keeps the state: the kernel never takes it.)
                    op @ (BPF_JEQ | BPF_JNE)
                        if class == BPF_JMP
                            && insn.code & BPF_X == 0
                            && insn.imm == 0
                            && s.regs[insn.dst as usize].sure_val.is_some() =>
                    {
                        let t = jump_target(pc, insn) as usize;
                        let mut taken = s.clone();
                        let not_null = if op == BPF_JNE { &mut taken } else { &mut s };
                        let d = not_null.regs[insn.dst as usize];
                        let tested = |v: Reg| Reg {
                            val: v.sure_val,
                            ..v
                        };
                        // Only a test of the value itself proves its copies (one read
                        // back from memory may not be what the others hold).
                        if d.id != 0 && !d.tainted {
                            not_null.retype(d.id, tested);
                        }
                        not_null.regs[insn.dst as usize] = tested(d);
                        push(&mut states, &mut work, &mut queued, t, &taken);
                    }
                    op @ (BPF_JGT | BPF_JGE | BPF_JLT | BPF_JLE)
                        if class == BPF_JMP && insn.code & BPF_X != 0 =>
                    {
                        let t = jump_target(pc, insn) as usize;
                        let mut taken = s.clone();
                        let (d, r) = (s.regs[insn.dst as usize], s.regs[insn.src as usize]);
                        if let Some((on_taken, range)) = pkt_compare(op, d, r) {
                            let trusted = !d.tainted && !r.tainted;
                            if on_taken {
                                taken.prove_pkt(range, trusted);
                            } else {
                                s.prove_pkt(range, trusted);
                            }
                        }
                        push(&mut states, &mut work, &mut queued, t, &taken);
                    }
                    _ => {
                        let t = jump_target(pc, insn) as usize;
                        push(&mut states, &mut work, &mut queued, t, &s);
                    }
                },
            }
            if ends {
                break;
            }
            if next >= n {
                break;
            }
            if leader[next] {
                push(&mut states, &mut work, &mut queued, next, &s);
                break;
            }
            pc = next;
        }
    }
    seen
}

/// A comparison of a packet pointer `data + off` with `data_end` (either order): on
/// which edge (the jump taken, or the fall-through) it shows bytes of the packet to
/// exist, and how many from `data`. As the kernel's `try_match_pkt_pointers`: where
/// the pointer is at most the end, `off` bytes; strictly below it, `off + 1` (its
/// `range_right_open`, not for `data + 0`); nothing for a negative offset.
fn pkt_compare(op: u8, dst: Reg, src: Reg) -> Option<(bool, u32)> {
    let pkt = |r: Reg| match (r.k, r.pkt) {
        (K_PTR, Pkt::Data(off)) => Some(off),
        _ => None,
    };
    let end = |r: Reg| r.k == K_PTR && r.pkt == Pkt::End;
    // Normalise to "ptr OP end" (end OP ptr flips the operator).
    let (off, op) = match (pkt(dst), end(src), end(dst), pkt(src)) {
        (Some(off), true, _, _) => (off, op),
        (_, _, true, Some(off)) => (
            off,
            match op {
                BPF_JGT => BPF_JLT,
                BPF_JLT => BPF_JGT,
                BPF_JGE => BPF_JLE,
                _ => BPF_JGE,
            },
        ),
        _ => return None,
    };
    // Which edge has `ptr < end` (right open) or `ptr <= end`.
    let (on_taken, open) = match op {
        BPF_JGT => (false, false), // fall-through: ptr <= end
        BPF_JGE => (false, true),  // fall-through: ptr < end
        BPF_JLT => (true, true),
        _ => (true, false), // JLE
    };
    if off < 0 || (off == 0 && open) || off > 0xffff {
        return None;
    }
    let range = if open { off + 1 } else { off };
    Some((on_taken, range as u32))
}

/// Whether a value pointer of `map` stays valid for the rest of the run (and, for a
/// store, is writable by programs): arrays own their values for the map's life, and
/// the hash maps and LPM tries free theirs only after the run's epoch guard, pinned
/// before the lookup (RCU-like); the program holds its maps. Other kinds (maps of
/// maps, devmaps...) stay checked.
fn value_lives(map: &dyn Map, load: bool) -> bool {
    use crate::maps::map_type as t;
    const BPF_F_RDONLY_PROG: u32 = 1 << 7;
    let a = map.attr();
    matches!(
        a.map_type,
        t::ARRAY
            | t::PERCPU_ARRAY
            | t::HASH
            | t::PERCPU_HASH
            | t::LRU_HASH
            | t::LRU_PERCPU_HASH
            | t::LPM_TRIE
    ) && (load || a.map_flags & BPF_F_RDONLY_PROG == 0)
}

fn alu_transfer(s: &mut State, insn: Insn) {
    let d = insn.dst as usize;
    let op = insn.code & 0xf0;
    let x = insn.code & BPF_X != 0;
    if op == BPF_MOV && !x && insn.off == 0 && insn.imm == 0 {
        s.regs[d] = Reg::zero();
        return;
    }
    if insn.class() == BPF_ALU {
        s.regs[d] = Reg::kind(K_SCALAR);
        return;
    }
    match op {
        BPF_MOV if x && insn.off == 0 => s.regs[d] = s.regs[insn.src as usize],
        BPF_ADD | BPF_SUB => {
            let dv = s.regs[d];
            let (sk, sconst) = if x {
                (s.regs[insn.src as usize].k, None)
            } else {
                (K_SCALAR, Some(insn.imm as i64))
            };
            let src_ptr = sk & K_POINTERS != 0;
            let mut k: Kinds = 0;
            let mut off = None;
            if dv.k & (K_SCALAR | K_UNINIT) != 0 {
                if op == BPF_ADD && src_ptr {
                    let sp = sk & K_POINTERS;
                    k |= (sp & !K_CTX) | if sp & K_CTX != 0 { K_CTXMOD } else { 0 };
                }
                if sk & !K_POINTERS != 0 || op == BPF_SUB || !src_ptr {
                    k |= K_SCALAR;
                }
            }
            for kind in [K_CTX, K_CTXMOD, K_STACK, K_PTR, K_MAP, K_FUNC, K_FRAME] {
                if dv.k & kind == 0 {
                    continue;
                }
                if op == BPF_SUB && src_ptr {
                    k |= K_SCALAR;
                }
                if sk & !K_POINTERS != 0 || !src_ptr {
                    k |= match kind {
                        K_CTX if sconst == Some(0) => K_CTX,
                        K_CTX => K_CTXMOD,
                        K_MAP | K_FUNC => K_PTR,
                        other => other,
                    };
                    if kind == K_STACK {
                        if let (Some(o), Some(c)) = (dv.off, sconst) {
                            let c = if op == BPF_ADD { c } else { -c };
                            off = i32::try_from(o as i64 + c).ok();
                        }
                    }
                }
            }
            if k == 0 {
                k = K_SCALAR;
            }
            // Packet pointers: a constant moves `data + off`, a number makes it variable;
            // `data_end` moved is no longer the end (the kernel refuses that).
            let pkt = match (dv.pkt, sconst) {
                _ if k != K_PTR || src_ptr => Pkt::No,
                (Pkt::Data(o), Some(c)) => {
                    let c = if op == BPF_ADD { c } else { -c };
                    i32::try_from(o as i64 + c).map_or(Pkt::Var, Pkt::Data)
                }
                (Pkt::Data(_) | Pkt::Var, _) => Pkt::Var,
                _ => Pkt::No,
            };
            // Map values: a constant moves the offset; anything else loses it.
            let val = match (dv.val, sconst) {
                (Some((m, o)), Some(c)) if k == K_PTR && !src_ptr && dv.k == K_PTR => {
                    let c = if op == BPF_ADD { c } else { -c };
                    i32::try_from(o as i64 + c).ok().map(|o| (m, o))
                }
                _ => None,
            };
            s.regs[d] = Reg {
                off: if k & K_STACK != 0 { off } else { None },
                pkt,
                val,
                tainted: dv.tainted || (x && s.regs[insn.src as usize].tainted),
                ..Reg::kind(k)
            };
        }
        _ => s.regs[d] = Reg::kind(K_SCALAR),
    }
}

fn alu_op_name(op: u8) -> &'static str {
    match op {
        BPF_ADD => "+=",
        BPF_SUB => "-=",
        BPF_MUL => "*=",
        BPF_DIV => "/=",
        BPF_OR => "|=",
        BPF_AND => "&=",
        BPF_LSH => "<<=",
        BPF_RSH => ">>=",
        BPF_MOD => "%=",
        BPF_XOR => "^=",
        BPF_ARSH => "s>>=",
        _ => "?=",
    }
}

/// The kernel's name of the pointer-or-NULL in `r` at instruction `sn`: what the
/// helper that made it returns.
fn null_name(insns: &[Insn], sn: &Seen, r: u8) -> &'static str {
    let made = sn.null_from[r as usize];
    match made.checked_sub(1).and_then(|pc| insns.get(pc as usize)) {
        Some(c) if c.imm as u32 == crate::helpers::id::RINGBUF_RESERVE => "ringbuf_mem_or_null",
        _ => "map_value_or_null",
    }
}

fn kinds_name(k: Kinds) -> &'static str {
    if k & K_CTX != 0 {
        "ctx"
    } else if k & (K_STACK | K_FRAME) != 0 {
        "fp"
    } else if k & K_MAP != 0 {
        "map_ptr"
    } else if k & K_FUNC != 0 {
        "func"
    } else if k & (K_PTR | K_CTXMOD) != 0 {
        "mem"
    } else {
        "scalar"
    }
}

/// The kernel's type errors, decided on the joined kinds (a set that is exactly one
/// kind means "on every path"), and the context rewrite decisions.
/// The kernel's `record_func_map` write check and `check_map_func_compatibility`:
/// which helpers may be given which maps (EACCES for a write into a map programs may
/// only read, EINVAL for a map the helper does not take).
fn map_func_compatible(
    i: usize,
    a: &crate::maps::MapAttr,
    spec: &HelperSpec,
    log: &mut String,
) -> Result<(), LoadError> {
    use crate::helpers::id::*;
    use crate::maps::map_flags::BPF_F_RDONLY_PROG;
    use map_type as mt;
    // Helper and map type numbers bpftime does not run, named only here.
    const PERF_EVENT_READ: u32 = 22;
    const PERF_EVENT_READ_VALUE: u32 = 55;
    const SKB_OUTPUT: u32 = 111;
    const XDP_OUTPUT: u32 = 121;
    const MAP_LOOKUP_PERCPU_ELEM: u32 = 195;
    const CPUMAP: u32 = 16;
    let f = spec.id;
    // DEVMAP and DEVMAP_HASH are read-only to programs (dev_map_alloc adds the flag).
    let rdonly =
        a.map_flags & BPF_F_RDONLY_PROG != 0 || matches!(a.map_type, mt::DEVMAP | mt::DEVMAP_HASH);
    if rdonly
        && matches!(
            f,
            MAP_DELETE_ELEM | MAP_UPDATE_ELEM | MAP_PUSH_ELEM | MAP_POP_ELEM
        )
    {
        return Err(fail(EACCES, log, format!("{i}: write into map forbidden")));
    }
    let perf = [
        PERF_EVENT_OUTPUT,
        PERF_EVENT_READ,
        PERF_EVENT_READ_VALUE,
        SKB_OUTPUT,
        XDP_OUTPUT,
    ];
    let ring = [RINGBUF_OUTPUT, RINGBUF_RESERVE, RINGBUF_QUERY];
    // By map: the helpers a map of this type may be given.
    let map_ok = match a.map_type {
        mt::PROG_ARRAY => f == TAIL_CALL,
        mt::PERF_EVENT_ARRAY => perf.contains(&f),
        mt::RINGBUF => ring.contains(&f),
        mt::DEVMAP | mt::DEVMAP_HASH | mt::XSKMAP => f == REDIRECT_MAP || f == MAP_LOOKUP_ELEM,
        CPUMAP => f == REDIRECT_MAP,
        mt::ARRAY_OF_MAPS | mt::HASH_OF_MAPS => f == MAP_LOOKUP_ELEM,
        mt::QUEUE | mt::STACK => matches!(f, MAP_PEEK_ELEM | MAP_POP_ELEM | MAP_PUSH_ELEM),
        _ => true,
    };
    // By helper: the map types it takes.
    let func_ok = match f {
        TAIL_CALL => a.map_type == mt::PROG_ARRAY,
        _ if perf.contains(&f) => a.map_type == mt::PERF_EVENT_ARRAY,
        _ if ring.contains(&f) => a.map_type == mt::RINGBUF,
        REDIRECT_MAP => matches!(
            a.map_type,
            mt::DEVMAP | mt::DEVMAP_HASH | CPUMAP | mt::XSKMAP
        ),
        MAP_POP_ELEM | MAP_PEEK_ELEM | MAP_PUSH_ELEM => {
            matches!(a.map_type, mt::QUEUE | mt::STACK)
        }
        MAP_LOOKUP_PERCPU_ELEM => matches!(
            a.map_type,
            mt::PERCPU_ARRAY | mt::PERCPU_HASH | mt::LRU_PERCPU_HASH
        ),
        _ => true,
    };
    if map_ok && func_ok {
        return Ok(());
    }
    Err(fail(
        EINVAL,
        log,
        format!(
            "{i}: cannot pass map_type {} into func {}#{}",
            a.map_type, spec.name, f
        ),
    ))
}

fn check_types(
    insns: &[Insn],
    seen: &[Seen],
    mode: Mode,
    helper_specs: &[Option<&'static HelperSpec>],
    maps: &[Arc<dyn Map>],
    ctx_field: &mut [Option<(i32, u8)>],
    log: &mut String,
) -> Result<(), LoadError> {
    use crate::helpers::ArgKind;
    for (i, sn) in seen.iter().enumerate() {
        if !sn.visited {
            continue;
        }
        let insn = insns[i];
        let class = insn.class();
        let op = insn.code & 0xf0;
        let x = insn.code & BPF_X != 0;
        let k = |r: u8| sn.k[r as usize];
        let read = |log: &mut String, r: u8| {
            if k(r) == K_UNINIT {
                Err(fail(EACCES, log, format!("{i}: R{r} !read_ok")))
            } else {
                Ok(())
            }
        };
        let definite_ptr = |kk: Kinds| kk != 0 && kk & !K_POINTERS == 0;
        match class {
            BPF_ALU | BPF_ALU64 => {
                if op != BPF_MOV {
                    read(log, insn.dst)?;
                }
                if x && op != BPF_END && op != BPF_NEG {
                    read(log, insn.src)?;
                }
                // The kernel's adjust_reg_min_max_vals / adjust_ptr_min_max_vals, for a
                // privileged loader. NEG and END on pointers are allowed (result: scalar).
                if matches!(op, BPF_MOV | BPF_NEG | BPF_END) {
                    continue;
                }
                let dk = k(insn.dst);
                let sk = if x { k(insn.src) } else { K_SCALAR };
                if (dk | sk) & K_NULL != 0 {
                    let r = if dk & K_NULL != 0 { insn.dst } else { insn.src };
                    return Err(fail(
                        EACCES,
                        log,
                        format!(
                            "{i}: R{r} pointer arithmetic on {} prohibited",
                            null_name(insns, sn, r)
                        ),
                    ));
                }
                let (d_ptr, s_ptr) = (definite_ptr(dk), x && definite_ptr(sk));
                let eacces =
                    |log: &mut String, msg: String| Err(fail(EACCES, log, format!("{i}: {msg}")));
                if d_ptr && s_ptr {
                    // pointer - pointer is a scalar; any other combination is refused.
                    if op == BPF_SUB {
                        continue;
                    }
                    return eacces(
                        log,
                        format!(
                            "R{} pointer {} pointer prohibited",
                            insn.dst,
                            alu_op_name(op)
                        ),
                    );
                }
                let (preg, pk) = if d_ptr {
                    (insn.dst, dk)
                } else if s_ptr && dk & K_POINTERS == 0 {
                    (insn.src, sk)
                } else {
                    continue;
                };
                if class == BPF_ALU {
                    // 32-bit subtraction involving a pointer yields a meaningless scalar
                    // (allowed with allow_ptr_leaks); other 32-bit pointer math is refused.
                    if op == BPF_SUB {
                        continue;
                    }
                    return eacces(
                        log,
                        format!("R{} 32-bit pointer arithmetic prohibited", insn.dst),
                    );
                }
                if pk & !(K_MAP | K_FUNC) == 0 {
                    return eacces(
                        log,
                        format!(
                            "R{preg} pointer arithmetic on {} prohibited",
                            kinds_name(pk)
                        ),
                    );
                }
                if pk == K_PTR && sn.pkt[preg as usize] == Some(Pkt::End) {
                    return eacces(
                        log,
                        format!("R{preg} pointer arithmetic on pkt_end prohibited"),
                    );
                }
                // check_reg_sane_offset: constants of 2^29 or more are refused.
                if !x && matches!(op, BPF_ADD | BPF_SUB) && (insn.imm as i64).abs() >= 1 << 29 {
                    return Err(fail(
                        EINVAL,
                        log,
                        format!(
                            "{i}: math between {} pointer and {} is not allowed",
                            kinds_name(pk),
                            insn.imm
                        ),
                    ));
                }
                match op {
                    BPF_ADD => {}
                    BPF_SUB if preg == insn.dst => {}
                    BPF_SUB => {
                        return eacces(
                            log,
                            format!("R{} tried to subtract pointer from scalar", insn.dst),
                        )
                    }
                    BPF_AND | BPF_OR | BPF_XOR => {
                        return eacces(
                            log,
                            format!(
                                "R{} bitwise operator {} on pointer prohibited",
                                insn.dst,
                                alu_op_name(op)
                            ),
                        )
                    }
                    _ => {
                        return eacces(
                            log,
                            format!(
                                "R{} pointer arithmetic with {} operator prohibited",
                                insn.dst,
                                alu_op_name(op)
                            ),
                        )
                    }
                }
            }
            BPF_LDX | BPF_ST | BPF_STX => {
                let base = if class == BPF_LDX { insn.src } else { insn.dst };
                read(log, base)?;
                if class == BPF_STX {
                    read(log, insn.src)?;
                    if insn.code & 0xe0 == BPF_ATOMIC && insn.imm == BPF_CMPXCHG {
                        read(log, 0)?;
                    }
                }
                let bk = k(base);
                let size = size_bytes(insn.code) as i32;
                let access = format!("off={} size={size}", insn.off);
                if bk & K_CTX != 0 {
                    if bk & (K_STACK | K_FRAME | K_PTR | K_MAP | K_FUNC | K_CTXMOD) != 0 {
                        return Err(fail(
                            EINVAL,
                            log,
                            format!("{i}: same insn cannot be used with different pointers"),
                        ));
                    }
                    if bk != K_CTX {
                        return Err(fail(
                            EACCES,
                            log,
                            format!("{i}: R{base} invalid mem access 'scalar'"),
                        ));
                    }
                    let field = match mode {
                        Mode::Xdp { devmap }
                            if class == BPF_LDX && insn.code & 0xe0 == BPF_MEM && size == 4 =>
                        {
                            match insn.off {
                                0 => Some((ctx_off::DATA, 8)),
                                4 => Some((ctx_off::DATA_END, 8)),
                                8 => Some((ctx_off::DATA_META, 8)),
                                12 => Some((ctx_off::INGRESS_IFINDEX, 4)),
                                16 => Some((ctx_off::RX_QUEUE_INDEX, 4)),
                                20 if devmap => Some((ctx_off::EGRESS_IFINDEX, 4)),
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    match field {
                        Some((f, sz)) => ctx_field[i] = Some((f as i32, sz)),
                        None => {
                            return Err(fail(
                                EACCES,
                                log,
                                format!("{i}: invalid bpf_context access {access}"),
                            ));
                        }
                    }
                    continue;
                }
                if bk & K_NULL != 0 {
                    return Err(fail(
                        EACCES,
                        log,
                        format!(
                            "{i}: R{base} invalid mem access '{}'",
                            null_name(insns, sn, base)
                        ),
                    ));
                }
                if bk & K_CTXMOD != 0 && bk & !(K_CTXMOD | K_SCALAR | K_UNINIT) == 0 {
                    return Err(fail(
                        EACCES,
                        log,
                        format!("{i}: dereference of modified ctx ptr R{base} disallowed"),
                    ));
                }
                if bk & K_POINTERS == 0 {
                    return Err(fail(
                        EACCES,
                        log,
                        format!("{i}: R{base} invalid mem access 'scalar'"),
                    ));
                }
                if bk & !(K_MAP | K_FUNC) == 0 {
                    return Err(fail(
                        EACCES,
                        log,
                        format!("{i}: R{base} invalid mem access '{}'", kinds_name(bk)),
                    ));
                }
                // Packet accesses (check_packet_access): through `data + c`, inside what
                // some path has shown to exist; `data_end` is no memory.
                match (bk, sn.pkt[base as usize]) {
                    (K_PTR, Some(Pkt::End)) => {
                        return Err(fail(
                            EACCES,
                            log,
                            format!("{i}: R{base} invalid mem access 'pkt_end'"),
                        ));
                    }
                    (K_PTR, Some(Pkt::Data(c))) => {
                        let off = c as i64 + insn.off as i64;
                        if off < 0 || off + size as i64 > sn.pkt_hi as i64 {
                            return Err(fail(
                                EACCES,
                                log,
                                format!(
                                    "{i}: invalid access to packet, off={off} size={size}, \
                                     R{base}(id=0,off={off},r={})\n\
                                     R{base} offset is outside of the packet",
                                    sn.pkt_hi
                                ),
                            ));
                        }
                    }
                    _ => {}
                }
                if bk == K_STACK && sn.off_state == 1 {
                    let o = sn.off as i64 + insn.off as i64;
                    let size = size as i64;
                    if o < -(MAX_BPF_STACK as i64) || o + size > 0 {
                        return Err(fail(
                            EACCES,
                            log,
                            format!("{i}: invalid stack off={o} size={size}"),
                        ));
                    }
                    if o % size != 0 {
                        return Err(fail(
                            EACCES,
                            log,
                            format!("{i}: misaligned stack access off {o} size {size}"),
                        ));
                    }
                }
            }
            BPF_JMP | BPF_JMP32 => match op {
                BPF_EXIT => {
                    read(log, 0)?;
                    if sn.leaked != 0 {
                        return Err(fail(
                            EINVAL,
                            log,
                            format!(
                                "{i}: Unreleased reference id={} alloc_insn={}",
                                sn.leaked,
                                sn.leaked - 1
                            ),
                        ));
                    }
                    if sn.lock & LOCK_HELD != 0 {
                        return Err(fail(
                            EINVAL,
                            log,
                            format!("{i}: bpf_spin_unlock is missing"),
                        ));
                    }
                }
                BPF_CALL if insn.src == 0 && !x => {
                    let held = sn.lock & LOCK_HELD != 0;
                    match insn.imm as u32 {
                        crate::helpers::id::SPIN_LOCK if held => {
                            return Err(fail(
                                EINVAL,
                                log,
                                format!("{i}: Locking two bpf_spin_locks are not allowed"),
                            ));
                        }
                        crate::helpers::id::SPIN_UNLOCK if sn.lock & LOCK_FREE != 0 => {
                            return Err(fail(
                                EINVAL,
                                log,
                                format!("{i}: bpf_spin_unlock without taking a lock"),
                            ));
                        }
                        crate::helpers::id::SPIN_LOCK | crate::helpers::id::SPIN_UNLOCK => {}
                        crate::helpers::id::TAIL_CALL if sn.held_ref != 0 => {
                            return Err(fail(
                                EINVAL,
                                log,
                                format!("{i}: tail_call would lead to reference leak"),
                            ));
                        }
                        _ if held => {
                            return Err(fail(
                                EINVAL,
                                log,
                                format!("{i}: function calls are not allowed while holding a lock"),
                            ));
                        }
                        _ => {}
                    }
                    if let Some(spec) = helper_specs[i] {
                        // The map argument, when it is one known map on every path (the
                        // kernel's meta->map_ptr).
                        let mut meta: Option<&Arc<dyn Map>> = None;
                        for (a, kind) in spec.args.iter().enumerate() {
                            let r = a as u8 + 1;
                            if *kind == ArgKind::None {
                                continue;
                            }
                            read(log, r)?;
                            let rk = k(r);
                            let m = sn.map[r as usize];
                            if *kind == ArgKind::Map && rk == K_MAP && m != 0 && m != u32::MAX {
                                meta = maps.get(m as usize - 1);
                            }
                            if let (ArgKind::MapKey | ArgKind::MapValue, Some(map)) = (kind, meta) {
                                let a = map.attr();
                                let size = if *kind == ArgKind::MapKey {
                                    a.key_size
                                } else {
                                    a.value_size
                                };
                                if size == 0 {
                                    return Err(fail(
                                        EACCES,
                                        log,
                                        format!("{i}: R{r} invalid zero-sized read"),
                                    ));
                                }
                            }
                            let id = insn.imm as u32;
                            let nullable_ok = *kind == ArgKind::Anything
                                || (id == crate::helpers::id::CSUM_DIFF && *kind == ArgKind::Mem);
                            if rk & K_NULL != 0 && !nullable_ok {
                                return Err(fail(
                                    EACCES,
                                    log,
                                    format!(
                                        "{i}: R{r} type={} expected={kind:?}",
                                        null_name(insns, sn, r)
                                    ),
                                ));
                            }
                            let record = a == 0
                                && matches!(
                                    id,
                                    crate::helpers::id::RINGBUF_SUBMIT
                                        | crate::helpers::id::RINGBUF_DISCARD
                                );
                            if record
                                && (rk & (K_NULL | K_SCALAR | K_UNINIT) != 0 || rk & K_PTR == 0)
                            {
                                return Err(fail(
                                    EACCES,
                                    log,
                                    format!(
                                        "{i}: R1 type={} expected=ringbuf_mem",
                                        if rk & K_NULL != 0 {
                                            "ringbuf_mem_or_null"
                                        } else {
                                            kinds_name(rk)
                                        }
                                    ),
                                ));
                            }
                            let bad = match kind {
                                ArgKind::Ctx => rk & K_CTX == 0,
                                // A callback is an `ld_imm64 FUNC` on every path, never a
                                // number that happens to look like one.
                                ArgKind::Func => rk != K_FUNC,
                                ArgKind::Map => rk & (K_MAP | K_PTR) == 0,
                                // A map value's lock: never the stack, the context, a
                                // map or a function, nor a value that is only a number.
                                ArgKind::SpinLock => {
                                    rk & (K_STACK | K_FRAME | K_CTX | K_CTXMOD | K_MAP | K_FUNC)
                                        != 0
                                        || rk & K_PTR == 0
                                }
                                _ => false,
                            };
                            if bad {
                                return Err(fail(
                                    EACCES,
                                    log,
                                    format!(
                                        "{i}: R{r} type={} expected={:?}",
                                        kinds_name(rk),
                                        kind
                                    ),
                                ));
                            }
                        }
                        if let Some(map) = meta {
                            map_func_compatible(i, map.attr(), spec, log)?;
                        }
                    }
                }
                BPF_CALL if sn.lock & LOCK_HELD != 0 => {
                    return Err(fail(
                        EINVAL,
                        log,
                        format!("{i}: function calls are not allowed while holding a lock"),
                    ));
                }
                BPF_CALL | BPF_JA | BPF_JCOND => {}
                _ => {
                    read(log, insn.dst)?;
                    if x {
                        read(log, insn.src)?;
                    }
                }
            },
            BPF_LD if !insn.is_ld_imm64() => {
                // LD_ABS / LD_IND read the skb in r6 (check_ld_abs).
                read(log, 6)?;
                if k(6) != K_CTX {
                    return Err(fail(
                        EINVAL,
                        log,
                        format!("{i}: at the time of BPF_LD_ABS|IND R6 != pointing to skb"),
                    ));
                }
                if insn.code & 0xe0 == BPF_IND {
                    read(log, insn.src)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}
