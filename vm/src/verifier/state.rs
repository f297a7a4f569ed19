//! The abstract values: register kinds, packet and map value tracking, the state
//! at a block start, and what the analysis saw at each instruction.

use std::rc::Rc;

use crate::insn::*;

// Register kinds (a set: the union over all paths reaching an instruction).
pub(super) type Kinds = u16;
pub(super) const K_UNINIT: Kinds = 1;
pub(super) const K_SCALAR: Kinds = 2;
pub(super) const K_CTX: Kinds = 4;
pub(super) const K_CTXMOD: Kinds = 8;
pub(super) const K_STACK: Kinds = 16;
pub(super) const K_PTR: Kinds = 32;
pub(super) const K_MAP: Kinds = 64;
pub(super) const K_FUNC: Kinds = 128;
/// A pointer into a calling frame's stack (offset not tracked): an 8-byte load from
/// it may be a pointer the caller spilled there.
pub(super) const K_FRAME: Kinds = 256;
pub(super) const K_POINTERS: Kinds = K_CTX | K_CTXMOD | K_STACK | K_PTR | K_MAP | K_FUNC | K_FRAME;
/// The NULL of a pointer-or-NULL a helper returned (a map value, a ring buffer record)
/// that no test against 0 has ruled out yet: no dereference, no arithmetic.
pub(super) const K_NULL: Kinds = 512;

/// What a `K_PTR` register is relative to the packet (the kernel's PTR_TO_PACKET with
/// id 0, and PTR_TO_PACKET_END). Only pointers derived from `ctx->data` by constants are
/// followed; a variable offset, `data_meta` and anything joined from different values
/// are `No` (their accesses stay checked at run time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pkt {
    No,
    /// `data` plus this constant.
    Data(i32),
    /// `data` plus a number not followed.
    Var,
    /// `data_end`.
    End,
}

impl Pkt {
    pub(super) fn join(self, o: Pkt) -> Pkt {
        match (self, o) {
            (a, b) if a == b => a,
            (Pkt::Data(_) | Pkt::Var, Pkt::Data(_) | Pkt::Var) => Pkt::Var,
            _ => Pkt::No,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reg {
    pub(super) k: Kinds,
    /// Packet pointer tracking (with `k == K_PTR`).
    pub(super) pkt: Pkt,
    /// The value was read back from memory on some path. The stack can be written
    /// behind the analysis' back (a helper's output, a run-time checked access that
    /// lands there), so such a packet pointer or bound proves nothing at run time (the
    /// kernel, which sees every write, trusts it for its verdict, and so do we).
    pub(super) tainted: bool,
    /// Offset from the frame pointer, when the value is a stack pointer with a known offset.
    pub(super) off: Option<i32>,
    /// Which helper call made this pointer-or-NULL (its pc + 1; 0 none or mixed): a
    /// test against 0 refines every copy, and it names a ring buffer reference.
    pub(super) id: u32,
    /// For a map (`K_MAP`): the key size of an ARRAY or PERCPU_ARRAY, whose lookup
    /// with a key of zero bytes cannot fail (0: another map or not known).
    pub(super) array_ks: u32,
    /// For a map (`K_MAP`): which one (index + 1 in the program's maps; 0: not known,
    /// or different maps on different paths).
    pub(super) map: u32,
    /// A number known to be 0 on every path.
    pub(super) zero: bool,
    /// For a `K_PTR` (or pointer-or-NULL): a map value of the program's map `.0`
    /// (index + 1) plus the constant `.1` (from a lookup or a direct value load).
    pub(super) val: Option<(u32, i32)>,
    /// For a lookup taken to succeed (`sure`, no `K_NULL`): the `val` it gets once a
    /// test against 0 passed at run time (its key bytes are stack contents, which can
    /// change behind the analysis, so only that test proves it is not NULL).
    pub(super) sure_val: Option<(u32, i32)>,
}

impl Reg {
    pub(super) const fn kind(k: Kinds) -> Self {
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
    pub(super) const fn stack(off: i32) -> Self {
        Reg {
            off: Some(off),
            ..Reg::kind(K_STACK)
        }
    }
    pub(super) const fn zero() -> Self {
        Reg {
            zero: true,
            ..Reg::kind(K_SCALAR)
        }
    }
    pub(super) fn join(self, o: Reg) -> Reg {
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
    pub(super) fn cross_frame(self) -> Reg {
        if self.k & K_STACK != 0 {
            Reg::kind((self.k & !K_STACK) | K_FRAME)
        } else {
            Reg::kind(self.k)
        }
    }
}

pub(super) const SLOTS: usize = MAX_BPF_STACK / 8;

pub(super) type Slots = [Reg; SLOTS];

/// The abstract state at a block start. Stack slots are shared copy-on-write
/// between states (most blocks of a program see the same spills), which keeps a
/// state small even for programs made only of jumps.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct State {
    pub(super) regs: [Reg; 11],
    pub(super) slots: Rc<Slots>,
    /// `bpf_spin_lock` state over the paths reaching here: LOCK_FREE / LOCK_HELD bits.
    pub(super) lock: u8,
    /// Ring buffer records reserved and not yet submitted or discarded on some path
    /// (ids of their `Reg`s, sorted).
    pub(super) refs: Vec<u32>,
    /// Stack bytes known to hold 0 (the kernel's STACK_ZERO), bit `off + 512`.
    pub(super) zero: [u64; MAX_BPF_STACK / 64],
    /// Packet bytes from `data` that a comparison with `data_end` has shown to exist:
    /// the least over the paths reaching here (what is proven) and the most (what some
    /// path proves: an access beyond it is out of the packet on every path).
    pub(super) pkt_lo: u32,
    pub(super) pkt_hi: u32,
}

/// No `bpf_spin_lock` held on some path.
pub(super) const LOCK_FREE: u8 = 1;
/// A `bpf_spin_lock` held on some path.
pub(super) const LOCK_HELD: u8 = 2;

pub(super) fn scalar_slots() -> Rc<Slots> {
    Rc::new([Reg::kind(K_SCALAR); SLOTS])
}

impl State {
    pub(super) fn new(slots: &Rc<Slots>) -> State {
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
    pub(super) fn join_from(&mut self, o: &State) -> bool {
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
    pub(super) fn set_slot(&mut self, idx: usize, v: Reg) {
        if self.slots[idx] != v {
            Rc::make_mut(&mut self.slots)[idx] = v;
        }
    }
    pub(super) fn kill_slots(&mut self, lo: i64, len: i64) {
        for i in 0..SLOTS {
            let so = -(MAX_BPF_STACK as i64) + 8 * i as i64;
            if so < lo + len && lo < so + 8 {
                self.set_slot(i, Reg::kind(K_SCALAR));
            }
        }
    }
    /// Every register and spilled copy of the value `id` becomes `to`.
    pub(super) fn retype(&mut self, id: u32, to: impl Fn(Reg) -> Reg) {
        self.update(|r| r.id == id, to);
    }
    /// Every register and spilled value that is `which` becomes `to` of it.
    pub(super) fn update(&mut self, which: impl Fn(&Reg) -> bool, to: impl Fn(Reg) -> Reg) {
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
    pub(super) fn refine_null(&mut self, r: usize, null: bool) {
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
    pub(super) fn hold(&mut self, id: u32) -> bool {
        match self.refs.binary_search(&id) {
            Ok(_) => false,
            Err(at) => {
                self.refs.insert(at, id);
                true
            }
        }
    }
    /// Record `id` is no longer this frame's to give back.
    pub(super) fn unhold(&mut self, id: u32) {
        if let Ok(at) = self.refs.binary_search(&id) {
            self.refs.remove(at);
        }
    }
    /// The record `id` was submitted or discarded: its copies are numbers now.
    pub(super) fn release(&mut self, id: u32) {
        self.unhold(id);
        self.retype(id, |_| Reg::kind(K_SCALAR));
    }
    /// A comparison of `data + off` with `data_end` showed `range` bytes from `data` to
    /// exist on this edge (`find_good_pkt_pointers`); `trusted`: with values that never
    /// went through memory (see `Reg::tainted`).
    pub(super) fn prove_pkt(&mut self, range: u32, trusted: bool) {
        if trusted {
            self.pkt_lo = self.pkt_lo.max(range);
        }
        self.pkt_hi = self.pkt_hi.max(range);
    }
    /// Code the analysis does not follow from here (a bpf-to-bpf call, a callback) may
    /// have moved the packet: nothing is proven any more, and the packet pointers held
    /// prove nothing at run time (they keep their kinds and tags: the kernel, which
    /// follows the callee, only clears them when it does move the packet).
    pub(super) fn distrust_pkt(&mut self) {
        self.pkt_lo = 0;
        self.update(
            |r| r.pkt != Pkt::No && !r.tainted,
            |r| Reg { tainted: true, ..r },
        );
    }
    /// A helper moved or resized the packet (`clear_all_pkt_pointers`): every packet
    /// pointer held is a number now, and nothing is proven.
    pub(super) fn clear_pkt_pointers(&mut self) {
        self.pkt_lo = 0;
        self.pkt_hi = 0;
        self.update(|r| r.pkt != Pkt::No, |_| Reg::kind(K_SCALAR));
    }
    /// Something may have written the stack: no byte is known to be 0 any more.
    pub(super) fn forget_zeros(&mut self) {
        self.zero = [0; MAX_BPF_STACK / 64];
    }
    /// Stack bytes `[lo, lo+len)` (frame offsets) hold 0 now, or something else.
    pub(super) fn set_zero(&mut self, lo: i64, len: i64, zero: bool) {
        for o in lo.max(-(MAX_BPF_STACK as i64))..(lo + len).min(0) {
            let b = (o + MAX_BPF_STACK as i64) as usize;
            if zero {
                self.zero[b / 64] |= 1 << (b % 64);
            } else {
                self.zero[b / 64] &= !(1 << (b % 64));
            }
        }
    }
    pub(super) fn all_zero(&self, lo: i64, len: i64) -> bool {
        lo >= -(MAX_BPF_STACK as i64)
            && lo + len <= 0
            && (lo..lo + len).all(|o| {
                let b = (o + MAX_BPF_STACK as i64) as usize;
                self.zero[b / 64] & (1 << (b % 64)) != 0
            })
    }
    pub(super) fn kill_all_slots(&mut self) {
        if self.slots.iter().any(|r| *r != Reg::kind(K_SCALAR)) {
            self.slots = scalar_slots();
        }
    }
}

/// What the analysis saw at one instruction (joined over all visits).
#[derive(Clone, Copy, Default)]
pub(super) struct Seen {
    pub(super) visited: bool,
    pub(super) k: [Kinds; 11],
    /// Per register, the map it holds on every visit (`Reg::map`; u32::MAX: several).
    pub(super) map: [u32; 11],
    /// Stack offset of the memory base register: 0 none seen, 1 one value, 2 several/unknown.
    pub(super) off_state: u8,
    pub(super) off: i32,
    /// `State::lock` joined over all visits.
    pub(super) lock: u8,
    /// A ring buffer record is held here on some path (the first one's id).
    pub(super) held_ref: u32,
    /// An exit of the main program reached with a record held (its id).
    pub(super) leaked: u32,
    /// Per register, the id of a pointer-or-NULL seen in it (for messages).
    pub(super) null_from: [u32; 11],
    /// Per register, its packet tracking on every visit (None: not visited yet).
    pub(super) pkt: [Option<Pkt>; 11],
    /// Per register, `Reg::tainted` on some visit.
    pub(super) tainted: [bool; 11],
    /// Per register, `Reg::val` on every visit (None: not visited yet).
    pub(super) val: [Option<Option<(u32, i32)>>; 11],
    /// `State::pkt_lo` (least) and `pkt_hi` (most) over the visits.
    pub(super) pkt_lo: u32,
    pub(super) pkt_hi: u32,
}
