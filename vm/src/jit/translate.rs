//! Translation of the interpreter's ops into one Cranelift function per program.
//!
//! Every op index gets a block; registers are Cranelift variables. bpf-to-bpf calls
//! stay inside the function: a call saves r6..r9, r10 and a return-site index in a
//! frame array on the machine stack, `exit` in a callee restores them and dispatches
//! on the return site with a jump table (as the interpreter's frame stack does).

use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I16, I32, I64, I8};
use cranelift_codegen::ir::{
    AbiParam, AtomicRmwOp, Block, BlockArg, Function, InstBuilder, JumpTableData, MemFlagsData,
    SigRef, Signature, StackSlotData, StackSlotKind, Type, UserFuncName, Value,
};
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};

use super::runtime::{self, kind, off};
use crate::fixup::KEY_ON_STACK;
use crate::insn::{BPF_CMPXCHG, BPF_FETCH, MAX_BPF_STACK, MAX_CALL_FRAMES};
use crate::interp::{op, Op, STACK_BYTES};
use crate::maps::hash::HashMap;
use crate::program::Program;

const NA: &[BlockArg] = &[];
/// Bytes per saved frame: return site, r6..r9, r10.
const FRAME: i64 = 48;

struct Sigs {
    access: SigRef,
    fault: SigRef,
    helper: SigRef,
    lookup: SigRef,
}

struct T<'a, 'b> {
    b: FunctionBuilder<'b>,
    prog: &'a Program,
    ops: &'a [Op],
    regs: [Variable; 11],
    nf: Variable,
    /// The run's budget, kept in a register between calls out (a store and reload
    /// per backward jump would chain every loop iteration through memory).
    bud: Variable,
    /// The region cache (`JitEnv::cache_start/len`) in registers: compiled code
    /// sets it on inline lookups and reloads it after every call out (the runtime
    /// updates the env copy).
    cache: (Variable, Variable),
    /// The packet's `data_meta` and `data_end`, in registers: only helpers move
    /// them, so they are reloaded after each helper call.
    pkt: (Variable, Variable),
    /// For accesses of 1, 2, 4 and 8 bytes: how many start offsets from
    /// `data_meta` fit (0 when none), so that a packet check is one compare.
    pkt_room: [Variable; 4],
    blocks: Vec<Block>,
    env: Value,
    xdp: Value,
    stack_base: Value,
    budget_ptr: Value,
    may_goto_ptr: Value,
    frames: Option<cranelift_codegen::ir::StackSlot>,
    ret_sites: Vec<usize>,
    ret_blocks: Vec<Block>,
    sigs: Sigs,
    pending: Vec<(Block, u64, Option<Value>, u64, usize)>,
}

fn sig(isa: &dyn TargetIsa, params: usize, ret: bool) -> Signature {
    let mut s = Signature::new(isa.default_call_conv());
    for _ in 0..params {
        s.params.push(AbiParam::new(I64));
    }
    if ret {
        s.returns.push(AbiParam::new(I64));
    }
    s
}

fn mem() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

fn size_ty(code: u8) -> (Type, u64) {
    match code & 0x18 {
        0x00 => (I32, 4),
        0x08 => (I16, 2),
        0x10 => (I8, 1),
        _ => (I64, 8),
    }
}

/// Compile `prog` to machine code with the [`runtime::EntryFn`] signature.
pub(super) fn compile(prog: &Program, isa: &dyn TargetIsa) -> Result<Vec<u8>, &'static str> {
    let ops: &[Op] = &prog.ops;
    for o in ops {
        if matches!(o.code, 0x20 | 0x28 | 0x30 | 0x40 | 0x48 | 0x50) {
            return Err("LD_ABS/LD_IND are not compiled");
        }
    }
    let ret_sites: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.code == op::CALL_LOCAL)
        .map(|(i, _)| i + 1)
        .collect();

    let mut func = Function::with_name_signature(UserFuncName::default(), sig(isa, 6, true));
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut fctx);
    let sigs = Sigs {
        access: b.import_signature(sig(isa, 4, true)),
        fault: b.import_signature(sig(isa, 5, false)),
        helper: b.import_signature(sig(isa, 9, true)),
        lookup: b.import_signature(sig(isa, 3, true)),
    };
    let regs: [Variable; 11] = std::array::from_fn(|_| b.declare_var(I64));
    let nf = b.declare_var(I64);
    let bud = b.declare_var(I64);
    let cache = (b.declare_var(I64), b.declare_var(I64));
    let pkt = (b.declare_var(I64), b.declare_var(I64));
    let pkt_room: [Variable; 4] = std::array::from_fn(|_| b.declare_var(I64));
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    let env = params[0];
    let xdp = b.ins().load(I64, MemFlagsData::trusted(), env, off::XDP);
    let stack_base = b
        .ins()
        .load(I64, MemFlagsData::trusted(), env, off::STACK_BASE);
    let budget_ptr = b.ins().load(I64, MemFlagsData::trusted(), env, off::BUDGET);
    let may_goto_ptr = b
        .ins()
        .load(I64, MemFlagsData::trusted(), env, off::MAY_GOTO);
    let zero = b.ins().iconst(I64, 0);
    for (r, var) in regs.iter().enumerate() {
        let v = match r {
            1..=5 => params[r],
            10 => b.ins().iadd_imm_s(stack_base, MAX_BPF_STACK as i64),
            _ => zero,
        };
        b.def_var(*var, v);
    }
    b.def_var(nf, zero);
    let bv = b.ins().load(I64, mem(), budget_ptr, 0);
    b.def_var(bud, bv);
    b.def_var(cache.0, zero);
    b.def_var(cache.1, zero);
    for v in pkt_room {
        b.def_var(v, zero);
    }
    let frames = (!ret_sites.is_empty()).then(|| {
        b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            (FRAME as u32) * MAX_CALL_FRAMES as u32,
            3,
        ))
    });
    let blocks: Vec<Block> = (0..ops.len()).map(|_| b.create_block()).collect();
    let ret_blocks = ret_sites.iter().map(|&s| blocks[s]).collect();
    let mut t = T {
        b,
        prog,
        ops,
        regs,
        nf,
        bud,
        cache,
        pkt,
        pkt_room,
        blocks,
        env,
        xdp,
        stack_base,
        budget_ptr,
        may_goto_ptr,
        frames,
        ret_sites,
        ret_blocks,
        sigs,
        pending: Vec::new(),
    };
    t.pkt_in();
    t.b.ins().jump(t.blocks[0], NA);
    for i in 0..ops.len() {
        let blk = t.blocks[i];
        t.b.switch_to_block(blk);
        t.op(i)?;
    }
    for (blk, kind, addr, len, pc) in std::mem::take(&mut t.pending) {
        t.b.switch_to_block(blk);
        t.emit_fault(kind, addr, len, pc);
    }
    t.b.seal_all_blocks();
    t.b.finalize(isa.frontend_config());

    let mut ctx = Context::for_function(func);
    let code = ctx
        .compile(isa, &mut ControlPlane::default())
        .map_err(|_| "cranelift refused the function")?;
    if !code.buffer.relocs().is_empty() {
        return Err("code needs relocations");
    }
    Ok(code.code_buffer().to_vec())
}

impl T<'_, '_> {
    fn r(&mut self, i: u8) -> Value {
        self.b.use_var(self.regs[i as usize & 15])
    }

    fn set(&mut self, i: u8, v: Value) {
        self.b.def_var(self.regs[i as usize & 15], v);
    }

    fn k(&mut self, v: i64) -> Value {
        self.b.ins().iconst(I64, v)
    }

    fn goto(&mut self, i: usize) {
        let blk = self.blocks[i];
        self.b.ins().jump(blk, NA);
    }

    /// A cold block that records a fault and returns (emitted after all ops).
    fn fault_block(&mut self, kind: u64, addr: Option<Value>, len: u64, pc: usize) -> Block {
        let blk = self.b.create_block();
        self.b.set_cold_block(blk);
        self.pending.push((blk, kind, addr, len, pc));
        blk
    }

    fn emit_fault(&mut self, kind: u64, addr: Option<Value>, len: u64, pc: usize) {
        let f = self.k(runtime::jit_fault as *const () as usize as i64);
        let kv = self.k(kind as i64);
        let a = match addr {
            Some(a) => a,
            None => self.k(0),
        };
        let l = self.k(len as i64);
        let p = self.k(pc as i64);
        let env = self.env;
        let s = self.sigs.fault;
        self.b.ins().call_indirect(s, f, &[env, kv, a, l, p]);
        let z = self.k(0);
        self.b.ins().return_(&[z]);
    }

    /// Region check of `[addr, addr+len)`: packet, then stack inline, then the runtime.
    fn check(&mut self, addr: Value, len: u64, write: bool, kind: u64, pc: usize) {
        let cont = self.b.create_block();
        let stk = self.b.create_block();
        let slow = self.b.create_block();
        self.b.set_cold_block(slow);
        let bad = self.fault_block(kind, Some(addr), len, pc);
        let meta = self.b.use_var(self.pkt.0);
        let ok = match [1u64, 2, 4, 8].iter().position(|&k| k == len) {
            Some(i) => {
                // addr - meta (huge when addr < meta) below the number of offsets
                // where `len` bytes fit.
                let room = self.b.use_var(self.pkt_room[i]);
                let o = self.b.ins().isub(addr, meta);
                self.b.ins().icmp(IntCC::UnsignedLessThan, o, room)
            }
            None => {
                let dend = self.b.use_var(self.pkt.1);
                let end = self.b.ins().iadd_imm_s(addr, len as i64);
                let c1 = self
                    .b
                    .ins()
                    .icmp(IntCC::UnsignedGreaterThanOrEqual, addr, meta);
                let c2 = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, end, dend);
                let c3 = self
                    .b
                    .ins()
                    .icmp(IntCC::UnsignedGreaterThanOrEqual, end, addr);
                let c = self.b.ins().band(c1, c2);
                self.b.ins().band(c, c3)
            }
        };
        self.b.ins().brif(ok, cont, NA, stk, NA);
        self.b.switch_to_block(stk);
        let o = self.b.ins().isub(addr, self.stack_base);
        let ok = self.b.ins().icmp_imm_s(
            IntCC::UnsignedLessThanOrEqual,
            o,
            STACK_BYTES as i64 - len as i64,
        );
        let mut next = self.b.create_block();
        self.b.ins().brif(ok, cont, NA, next, NA);
        // Global data (.rodata/.data/.bss values): constant regions, checked inline.
        let statics: Vec<_> = self
            .prog
            .static_regions
            .iter()
            .filter(|r| (!write || r.writable) && r.len >= len)
            .take(8)
            .copied()
            .collect();
        for r in statics {
            self.b.switch_to_block(next);
            next = self.b.create_block();
            let o = self.b.ins().iadd_imm_s(addr, -(r.start as i64));
            let ok =
                self.b
                    .ins()
                    .icmp_imm_u(IntCC::UnsignedLessThanOrEqual, o, (r.len - len) as i64);
            self.b.ins().brif(ok, cont, NA, next, NA);
        }
        let cached = next;
        // The region the runtime accepted last (writable, so good for both).
        self.b.switch_to_block(cached);
        let cs = self.b.use_var(self.cache.0);
        let cl = self.b.use_var(self.cache.1);
        let o = self.b.ins().isub(addr, cs);
        let room = self.b.ins().iadd_imm_s(cl, -(len as i64));
        let fits = self
            .b
            .ins()
            .icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, cl, len as i64);
        let inside = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, o, room);
        let ok = self.b.ins().band(fits, inside);
        self.b.ins().brif(ok, cont, NA, slow, NA);
        self.b.switch_to_block(slow);
        let f = self.k(runtime::jit_access as *const () as usize as i64);
        let l = self.k(len as i64);
        let w = self.k(write as i64);
        let env = self.env;
        let s = self.sigs.access;
        let call = self.b.ins().call_indirect(s, f, &[env, addr, l, w]);
        self.cache_in();
        let r = self.b.inst_results(call)[0];
        self.b.ins().brif(r, cont, NA, bad, NA);
        self.b.switch_to_block(cont);
    }

    /// Decrement the run's budget; fault (Budget at `pc`) when it runs out.
    fn budget(&mut self, pc: usize) {
        let bad = self.fault_block(kind::BUDGET, None, 0, pc);
        let cont = self.b.create_block();
        let v = self.b.use_var(self.bud);
        let out = self
            .b
            .ins()
            .icmp_imm_s(IntCC::UnsignedLessThanOrEqual, v, 1);
        self.b.ins().brif(out, bad, NA, cont, NA);
        self.b.switch_to_block(cont);
        let nv = self.b.ins().iadd_imm_s(v, -1);
        self.b.def_var(self.bud, nv);
    }

    /// Write the register copy of the budget back (before code that reads or
    /// spends `rc.budget`: helpers, callbacks, the next program of a tail call).
    fn budget_out(&mut self) {
        let v = self.b.use_var(self.bud);
        self.b.ins().store(mem(), v, self.budget_ptr, 0);
    }

    /// Load the packet bounds from the context (at entry and after helper calls).
    fn pkt_in(&mut self) {
        let meta = self.b.ins().load(I64, mem(), self.xdp, 16);
        let dend = self.b.ins().load(I64, mem(), self.xdp, 8);
        self.b.def_var(self.pkt.0, meta);
        self.b.def_var(self.pkt.1, dend);
        let plen = self.b.ins().isub(dend, meta);
        let zero = self.k(0);
        for (i, k) in [1i64, 2, 4, 8].into_iter().enumerate() {
            let fits = self
                .b
                .ins()
                .icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, plen, k);
            let room = self.b.ins().iadd_imm_s(plen, 1 - k);
            let room = self.b.ins().select(fits, room, zero);
            self.b.def_var(self.pkt_room[i], room);
        }
    }

    /// Reload the region cache after a call out (which may have set it).
    fn cache_in(&mut self) {
        let cs = self.b.ins().load(I64, mem(), self.env, off::CACHE_START);
        let cl = self.b.ins().load(I64, mem(), self.env, off::CACHE_LEN);
        self.b.def_var(self.cache.0, cs);
        self.b.def_var(self.cache.1, cl);
    }

    /// Cache `[start, start+len)`, a writable value compiled code just found. (The
    /// env copy is not updated: the runtime only writes it, and any region it
    /// holds stays valid for the run, so a reload may lose an entry, never be wrong.)
    fn set_cache(&mut self, start: Value, len: u32) {
        let l = self.k(len as i64);
        self.b.def_var(self.cache.0, start);
        self.b.def_var(self.cache.1, l);
    }

    fn budget_in(&mut self) {
        let v = self.b.ins().load(I64, mem(), self.budget_ptr, 0);
        self.b.def_var(self.bud, v);
    }

    fn jump_to(&mut self, i: usize, target: usize) {
        if target <= i {
            self.budget(i);
        }
        self.goto(target);
    }

    fn op(&mut self, i: usize) -> Result<(), &'static str> {
        let o = self.ops[i];
        let (d, s) = (o.dst, o.src);
        match o.code {
            op::MOV_ADD_K | op::MOV_ADD_X => {
                // The fused op's second half stays in place: a plain mov, then the add.
                let v = self.r(s);
                self.set(d, v);
                self.goto(i + 1);
            }
            op::MOVSX64 => {
                let v = self.r(s);
                let ty = match o.off {
                    8 => I8,
                    16 => I16,
                    _ => I32,
                };
                let n = self.b.ins().ireduce(ty, v);
                let x = self.b.ins().sextend(I64, n);
                self.set(d, x);
                self.goto(i + 1);
            }
            op::MOVSX32 => {
                let v = self.r(s);
                let ty = if o.off == 8 { I8 } else { I16 };
                let n = self.b.ins().ireduce(ty, v);
                let x = self.b.ins().sextend(I32, n);
                let x = self.b.ins().uextend(I64, x);
                self.set(d, x);
                self.goto(i + 1);
            }
            op::CTX_LD => {
                let (ty, at) = match o.off {
                    0 | 8 | 16 => (I64, o.off),
                    24 | 28 => (I32, o.off),
                    _ => (I32, 32),
                };
                let v = self.b.ins().load(ty, mem(), self.xdp, at);
                let v = if ty == I64 {
                    v
                } else {
                    self.b.ins().uextend(I64, v)
                };
                self.set(d, v);
                self.goto(i + 1);
            }
            op::CALL_LOCAL => self.call_local(i, o),
            op::TRAP => self.emit_fault(kind::PAST_END, None, 0, i),
            0x00 => self.emit_fault(kind::INVALID_ZERO, None, 0, i),
            0x18 => {
                let v = self.k(o.imm);
                self.set(d, v);
                self.goto(i + 2);
            }
            0x95 => self.exit(),
            0x85 | 0x8d => self.helper(i, o),
            op::MAP_LOOKUP => self.map_lookup(i, o),
            0xe5 => {
                let v = self.b.ins().load(I64, mem(), self.may_goto_ptr, 0);
                let dec = self.b.create_block();
                let t = self.blocks[o.off as usize];
                self.b.ins().brif(v, dec, NA, t, NA);
                self.b.switch_to_block(dec);
                let nv = self.b.ins().iadd_imm_s(v, -1);
                self.b.ins().store(mem(), nv, self.may_goto_ptr, 0);
                self.goto(i + 1);
            }
            0xc3 | 0xdb => self.atomic(i, o),
            c => match c & 7 {
                0x07 => {
                    self.alu64(o)?;
                    self.goto(i + 1);
                }
                0x04 => {
                    self.alu32(o)?;
                    self.goto(i + 1);
                }
                0x05 | 0x06 => self.jmp(i, o)?,
                0x01..=0x03 => self.mem_op(i, o)?,
                _ => self.emit_fault(kind::INVALID, None, 0, i),
            },
        }
        Ok(())
    }

    fn mem_op(&mut self, i: usize, o: Op) -> Result<(), &'static str> {
        let (ty, size) = size_ty(o.code);
        let class = o.code & 7;
        let mode = o.code & 0xe0;
        // Proven in bounds: the frame (0x40: r10 + constant), the packet (0xa0) or a
        // map value (0xe0).
        let (proven, signed) = match mode {
            0x40 | 0xa0 | 0xe0 => (true, false),
            0x60 => (false, false),
            0x80 if class == 1 => (false, true),
            _ => {
                self.emit_fault(kind::INVALID, None, 0, i);
                return Ok(());
            }
        };
        let base = if class == 1 { o.src } else { o.dst };
        let bv = self.r(base);
        let addr = self.b.ins().iadd_imm_s(bv, o.off as i64);
        if !proven {
            let (write, k) = if class == 1 {
                (false, kind::READ)
            } else {
                (true, kind::WRITE)
            };
            self.check(addr, size, write, k, i);
        }
        if class == 1 {
            let v = self.b.ins().load(ty, mem(), addr, 0);
            let v = match (ty == I64, signed) {
                (true, _) => v,
                (false, false) => self.b.ins().uextend(I64, v),
                (false, true) => self.b.ins().sextend(I64, v),
            };
            self.set(o.dst, v);
        } else {
            let v = if class == 2 {
                self.k(o.imm)
            } else {
                self.r(o.src)
            };
            let v = if ty == I64 {
                v
            } else {
                self.b.ins().ireduce(ty, v)
            };
            self.b.ins().store(mem(), v, addr, 0);
        }
        self.goto(i + 1);
        Ok(())
    }

    fn atomic(&mut self, i: usize, o: Op) {
        let (ty, size) = if o.code == 0xc3 {
            (I32, 4u64)
        } else {
            (I64, 8)
        };
        let dv = self.r(o.dst);
        let addr = self.b.ins().iadd_imm_s(dv, o.off as i64);
        if o.aux & op::ATOMIC_PROVEN == 0 {
            self.check(addr, size, true, kind::ATOMIC, i);
        }
        let mis = self.b.ins().band_imm_s(addr, size as i64 - 1);
        let bad = self.fault_block(kind::MISALIGNED_ATOMIC, Some(addr), size, i);
        let cont = self.b.create_block();
        self.b.ins().brif(mis, bad, NA, cont, NA);
        self.b.switch_to_block(cont);
        let sv = self.r(o.src);
        let sv = if ty == I64 {
            sv
        } else {
            self.b.ins().ireduce(I32, sv)
        };
        let imm = o.imm as i32;
        let rmw = match imm & !BPF_FETCH {
            0x00 => Some(AtomicRmwOp::Add),
            0x40 => Some(AtomicRmwOp::Or),
            0x50 => Some(AtomicRmwOp::And),
            0xa0 => Some(AtomicRmwOp::Xor),
            0xe0 => Some(AtomicRmwOp::Xchg),
            _ => None,
        };
        let old = match rmw {
            Some(op) => self.b.ins().atomic_rmw(ty, mem(), op, addr, sv),
            None => {
                let e = self.r(0);
                let e = if ty == I64 {
                    e
                } else {
                    self.b.ins().ireduce(I32, e)
                };
                self.b.ins().atomic_cas(mem(), addr, e, sv)
            }
        };
        let old = if ty == I64 {
            old
        } else {
            self.b.ins().uextend(I64, old)
        };
        if imm == BPF_CMPXCHG {
            self.set(0, old);
        } else if imm & BPF_FETCH != 0 {
            self.set(o.src, old);
        }
        self.goto(i + 1);
    }

    fn helper(&mut self, i: usize, o: Op) {
        let f = self.k(runtime::jit_helper as *const () as usize as i64);
        let pc = self.k(i as i64);
        let pc_nf = if self.frames.is_some() {
            let n = self.b.use_var(self.nf);
            let n = self.b.ins().ishl_imm_s(n, 32);
            self.b.ins().bor(pc, n)
        } else {
            pc
        };
        let (sel, callx) = if o.code == 0x85 {
            (self.k(o.imm), self.k(0))
        } else {
            (self.r(o.dst), self.k(1))
        };
        let mut args = vec![self.env, pc_nf, sel, callx];
        for r in 1..=5 {
            args.push(self.r(r));
        }
        let s = self.sigs.helper;
        self.budget_out();
        let call = self.b.ins().call_indirect(s, f, &args);
        self.cache_in();
        // Helpers that may move the packet (the kernel's bpf_helper_changes_pkt_data:
        // adjust_head/meta/tail; also callbacks, a tail call run from a subprogram,
        // and a callx whose helper is not known here) make us reload its bounds.
        let id = match o.code {
            0x85 => self.prog.helper_ids.get(o.imm as usize).copied(),
            _ => None,
        };
        if id.is_none_or(|id| matches!(id, 12 | 44 | 54 | 65 | 164 | 181)) {
            self.pkt_in();
        }
        let r0 = self.b.inst_results(call)[0];
        self.set(0, r0);
        self.budget_in();
        let ex = self.b.ins().load(I64, mem(), self.env, off::EXIT);
        let out = self.b.create_block();
        self.b.set_cold_block(out);
        let next = self.blocks[i + 1];
        self.b.ins().brif(ex, out, NA, next, NA);
        self.b.switch_to_block(out);
        // bpf_tail_call (or a callx that may be one) inside a program with
        // subprograms: a tail call from a subprogram returns from it.
        let may_tail = o.code == 0x8d || self.prog.helper_ids.get(o.imm as usize) == Some(&12);
        if self.frames.is_some() && may_tail {
            let sub_ret = self.b.create_block();
            let ret = self.b.create_block();
            let is_sub = self.b.ins().icmp_imm_s(
                IntCC::Equal,
                ex,
                runtime::exit::RETURN_FROM_SUBPROG as i64,
            );
            self.b.ins().brif(is_sub, sub_ret, NA, ret, NA);
            self.b.switch_to_block(sub_ret);
            let z = self.k(0);
            self.b.ins().store(mem(), z, self.env, off::EXIT);
            self.exit();
            self.b.switch_to_block(ret);
        }
        self.b.ins().return_(&[r0]);
    }

    /// A `bpf_map_lookup_elem` resolved at load time: arrays inline (an address
    /// computation, as the kernel's `array_map_gen_lookup`), other maps through
    /// [`runtime::jit_map_lookup`] without the generic helper path.
    fn map_lookup(&mut self, i: usize, o: Op) {
        let m = o.imm as usize;
        let map = &self.prog.maps()[m];
        let ks = map.attr().key_size as u64;
        let key = self.r(2);
        if o.aux & KEY_ON_STACK == 0 {
            self.check(key, ks, false, kind::READ, i);
        }
        let next = self.blocks[i + 1];
        let inline = self.prog.map_layouts[m]
            .filter(|a| a.ncpus == 1 || a.ncpus as usize == crate::maps::possible_cpus());
        let Some(a) = inline else {
            let (f, mp) = match map.as_any().downcast_ref::<HashMap>() {
                Some(h) => (
                    runtime::jit_hash_lookup as *const () as usize,
                    h as *const HashMap as usize,
                ),
                None => (
                    runtime::jit_map_lookup as *const () as usize,
                    map as *const _ as usize,
                ),
            };
            let f = self.k(f as i64);
            let mp = self.k(mp as i64);
            let env = self.env;
            let s = self.sigs.lookup;
            let call = self.b.ins().call_indirect(s, f, &[env, mp, key]);
            self.cache_in();
            let r0 = self.b.inst_results(call)[0];
            self.set(0, r0);
            let ex = self.b.ins().load(I64, mem(), self.env, off::EXIT);
            let out = self.b.create_block();
            self.b.set_cold_block(out);
            let ok = self.b.create_block();
            self.b.ins().brif(ex, out, NA, ok, NA);
            self.b.switch_to_block(out);
            self.b.ins().return_(&[r0]);
            self.b.switch_to_block(ok);
            match self.prog.map_areas[m] {
                Some(a) if a.writable => {
                    // A value in the map's value area (not registered by the lookup):
                    // prime the region cache with it.
                    let total = a.max_entries as u64 * a.ncpus as u64 * a.stride;
                    let o = self.b.ins().iadd_imm_s(r0, -(a.base as i64));
                    let inside = self
                        .b
                        .ins()
                        .icmp_imm_u(IntCC::UnsignedLessThan, o, total as i64);
                    let prime = self.b.create_block();
                    self.b.ins().brif(inside, prime, NA, next, NA);
                    self.b.switch_to_block(prime);
                    self.set_cache(r0, a.value_size);
                    self.b.ins().jump(next, NA);
                }
                _ => {
                    self.b.ins().jump(next, NA);
                }
            }
            return;
        };
        let idx = self.b.ins().load(I32, mem(), key, 0);
        let idx = self.b.ins().uextend(I64, idx);
        let inb = self
            .b
            .ins()
            .icmp_imm_u(IntCC::UnsignedLessThan, idx, a.max_entries as i64);
        let hit = self.b.create_block();
        let miss = self.b.create_block();
        self.b.ins().brif(inb, hit, NA, miss, NA);
        self.b.switch_to_block(hit);
        let e = if a.ncpus > 1 {
            let slot = self.b.ins().load(I64, mem(), self.env, off::CPU_SLOT);
            let e = self.b.ins().imul_imm_s(idx, a.ncpus as i64);
            self.b.ins().iadd(e, slot)
        } else {
            idx
        };
        let o8 = self.b.ins().imul_imm_s(e, a.stride as i64);
        let addr = self.b.ins().iadd_imm_s(o8, a.base as i64);
        if a.writable {
            // Prime the region cache: the program's accesses through r0 go inline.
            self.set_cache(addr, a.value_size);
        }
        self.set(0, addr);
        self.b.ins().jump(next, NA);
        self.b.switch_to_block(miss);
        let z = self.k(0);
        self.set(0, z);
        self.b.ins().jump(next, NA);
    }

    fn call_local(&mut self, i: usize, o: Op) {
        let n = self.b.use_var(self.nf);
        let deep = self.b.ins().icmp_imm_s(
            IntCC::UnsignedGreaterThanOrEqual,
            n,
            MAX_CALL_FRAMES as i64 - 1,
        );
        let bad = self.fault_block(kind::CALL_DEPTH, None, 0, i);
        let cont = self.b.create_block();
        self.b.ins().brif(deep, bad, NA, cont, NA);
        self.b.switch_to_block(cont);
        self.budget(i);
        let slot = self.frames.expect("frames exist when calls do");
        let base = self.b.ins().stack_addr(I64, slot, 0);
        let o48 = self.b.ins().imul_imm_s(n, FRAME);
        let fa = self.b.ins().iadd(base, o48);
        let site = self
            .ret_sites
            .iter()
            .position(|&s| s == i + 1)
            .expect("return site recorded") as i64;
        let sv = self.k(site);
        self.b.ins().store(mem(), sv, fa, 0);
        for (k, r) in (6u8..=10).enumerate() {
            let v = self.r(r);
            self.b.ins().store(mem(), v, fa, 8 * (k as i32 + 1));
        }
        let n1 = self.b.ins().iadd_imm_s(n, 1);
        self.b.def_var(self.nf, n1);
        let fp = self.r(10);
        let fp = self.b.ins().iadd_imm_s(fp, MAX_BPF_STACK as i64);
        self.set(10, fp);
        self.goto(o.off as usize);
    }

    fn exit(&mut self) {
        let r0 = self.r(0);
        let Some(slot) = self.frames else {
            self.budget_out();
            self.b.ins().return_(&[r0]);
            return;
        };
        let n = self.b.use_var(self.nf);
        let pop = self.b.create_block();
        let ret = self.b.create_block();
        self.b.ins().brif(n, pop, NA, ret, NA);
        self.b.switch_to_block(ret);
        self.budget_out();
        self.b.ins().return_(&[r0]);
        self.b.switch_to_block(pop);
        let n1 = self.b.ins().iadd_imm_s(n, -1);
        self.b.def_var(self.nf, n1);
        let base = self.b.ins().stack_addr(I64, slot, 0);
        let o48 = self.b.ins().imul_imm_s(n1, FRAME);
        let fa = self.b.ins().iadd(base, o48);
        let site = self.b.ins().load(I64, mem(), fa, 0);
        for (k, r) in (6u8..=10).enumerate() {
            let v = self.b.ins().load(I64, mem(), fa, 8 * (k as i32 + 1));
            self.set(r, v);
        }
        let site = self.b.ins().ireduce(I32, site);
        let bad = self.fault_block(kind::INVALID, None, 0, 0);
        let def = self.b.func.dfg.block_call(bad, NA);
        let table: Vec<_> = self
            .ret_blocks
            .clone()
            .into_iter()
            .map(|blk| self.b.func.dfg.block_call(blk, NA))
            .collect();
        let jt = self.b.create_jump_table(JumpTableData::new(def, &table));
        self.b.ins().br_table(site, jt);
    }

    fn jmp(&mut self, i: usize, o: Op) -> Result<(), &'static str> {
        let opc = o.code & 0xf0;
        let target = o.off as usize;
        if opc == 0x00 {
            // ja (JMP32 ja was rewritten to JMP ja).
            self.jump_to(i, target);
            return Ok(());
        }
        let wide = o.code & 7 == 0x05;
        let a = self.r(o.dst);
        let bv = if o.code & 0x08 != 0 {
            self.r(o.src)
        } else {
            self.k(o.imm)
        };
        let (a, bv) = if wide {
            (a, bv)
        } else {
            (self.b.ins().ireduce(I32, a), self.b.ins().ireduce(I32, bv))
        };
        let cc = match opc {
            0x10 => IntCC::Equal,
            0x20 => IntCC::UnsignedGreaterThan,
            0x30 => IntCC::UnsignedGreaterThanOrEqual,
            0x50 => IntCC::NotEqual,
            0x60 => IntCC::SignedGreaterThan,
            0x70 => IntCC::SignedGreaterThanOrEqual,
            0xa0 => IntCC::UnsignedLessThan,
            0xb0 => IntCC::UnsignedLessThanOrEqual,
            0xc0 => IntCC::SignedLessThan,
            0xd0 => IntCC::SignedLessThanOrEqual,
            0x40 => IntCC::NotEqual,
            _ => {
                self.emit_fault(kind::INVALID, None, 0, i);
                return Ok(());
            }
        };
        let c = if opc == 0x40 {
            let x = self.b.ins().band(a, bv);
            self.b.ins().icmp_imm_s(cc, x, 0)
        } else {
            self.b.ins().icmp(cc, a, bv)
        };
        let next = self.blocks[i + 1];
        if target <= i {
            let taken = self.b.create_block();
            self.b.ins().brif(c, taken, NA, next, NA);
            self.b.switch_to_block(taken);
            self.jump_to(i, target);
        } else {
            let t = self.blocks[target];
            self.b.ins().brif(c, t, NA, next, NA);
        }
        Ok(())
    }

    fn alu64(&mut self, o: Op) -> Result<(), &'static str> {
        let opc = o.code & 0xf0;
        let a = self.r(o.dst);
        let bv = if o.code & 0x08 != 0 {
            self.r(o.src)
        } else {
            self.k(o.imm)
        };
        let v = self.alu(I64, opc, o, a, bv)?;
        self.set(o.dst, v);
        Ok(())
    }

    fn alu32(&mut self, o: Op) -> Result<(), &'static str> {
        let opc = o.code & 0xf0;
        let a64 = self.r(o.dst);
        if opc == 0xd0 {
            // to-le is a truncation on this little-endian host; to-be swaps.
            let v = self.swap(a64, o.imm, o.code & 0x08 != 0);
            self.set(o.dst, v);
            return Ok(());
        }
        let a = self.b.ins().ireduce(I32, a64);
        let bv = if o.code & 0x08 != 0 {
            let s = self.r(o.src);
            self.b.ins().ireduce(I32, s)
        } else {
            self.b.ins().iconst(I32, o.imm as u32 as i64)
        };
        let v = self.alu(I32, opc, o, a, bv)?;
        let v = self.b.ins().uextend(I64, v);
        self.set(o.dst, v);
        Ok(())
    }

    fn swap(&mut self, a: Value, width: i64, swap: bool) -> Value {
        let ty = match width {
            16 => I16,
            32 => I32,
            _ => I64,
        };
        let n = if ty == I64 {
            a
        } else {
            self.b.ins().ireduce(ty, a)
        };
        let n = if swap { self.b.ins().bswap(n) } else { n };
        if ty == I64 {
            n
        } else {
            self.b.ins().uextend(I64, n)
        }
    }

    /// One ALU operation at width `ty` (I64 or I32); division rules as the interpreter's.
    fn alu(
        &mut self,
        ty: Type,
        opc: u8,
        o: Op,
        a: Value,
        bv: Value,
    ) -> Result<Value, &'static str> {
        let bits = if ty == I64 { 63 } else { 31 };
        Ok(match opc {
            0x00 => self.b.ins().iadd(a, bv),
            0x10 => self.b.ins().isub(a, bv),
            0x20 => self.b.ins().imul(a, bv),
            0x40 => self.b.ins().bor(a, bv),
            0x50 => self.b.ins().band(a, bv),
            0xa0 => self.b.ins().bxor(a, bv),
            0xb0 => bv,
            0x60 => {
                let m = self.b.ins().band_imm_s(bv, bits);
                self.b.ins().ishl(a, m)
            }
            0x70 => {
                let m = self.b.ins().band_imm_s(bv, bits);
                self.b.ins().ushr(a, m)
            }
            0xc0 => {
                let m = self.b.ins().band_imm_s(bv, bits);
                self.b.ins().sshr(a, m)
            }
            0x80 => self.b.ins().ineg(a),
            0xd0 => {
                // ALU64 bswap (0xd7).
                self.swap(a, o.imm, true)
            }
            0x30 | 0x90 => {
                let zero = self.b.ins().icmp_imm_s(IntCC::Equal, bv, 0);
                let m1 = self.b.ins().icmp_imm_s(IntCC::Equal, bv, -1);
                let one = self.b.ins().iconst(ty, 1);
                let z = self.b.ins().iconst(ty, 0);
                let signed = o.off == 1;
                let unsafe_b = if signed {
                    self.b.ins().bor(zero, m1)
                } else {
                    zero
                };
                let safe = self.b.ins().select(unsafe_b, one, bv);
                if opc == 0x30 {
                    let q = if signed {
                        let q = self.b.ins().sdiv(a, safe);
                        let n = self.b.ins().ineg(a);
                        self.b.ins().select(m1, n, q)
                    } else {
                        self.b.ins().udiv(a, safe)
                    };
                    self.b.ins().select(zero, z, q)
                } else {
                    let r = if signed {
                        let r = self.b.ins().srem(a, safe);
                        self.b.ins().select(m1, z, r)
                    } else {
                        self.b.ins().urem(a, safe)
                    };
                    self.b.ins().select(zero, a, r)
                }
            }
            _ => return Err("unknown ALU op"),
        })
    }
}
