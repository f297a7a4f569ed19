//! The JIT: compiles a checked, rewritten program ([`crate::interp::Op`]s) to machine
//! code with Cranelift. Tiered: [`compile`] returns `None` for programs using an
//! instruction it does not translate, and the interpreter runs those.
//!
//! Semantics are the interpreter's, instruction by instruction: the same run state
//! (`interp::RunCtx`: stack, regions, budget, depth, tail calls) is shared, so helpers,
//! callbacks (run by the interpreter) and tail calls see one consistent run.
//! Memory accesses the verifier proved (r10-relative inside the frame) are emitted
//! unchecked; all others check inline against the live packet and the run's stack,
//! then call [`runtime`] for the other regions. A fault records the interpreter's
//! [`Fault`](crate::run::Fault) in the run's [`runtime::JitEnv`] and returns; nothing
//! unwinds through compiled frames.
//!
//! Not translated (interpreter fallback): LD_ABS/LD_IND (socket filters), programs
//! over 64k instructions.
//!
//! Public: [`scoped`] (choose the back end for loads on this thread).

mod code;
mod runtime;
mod translate;

use std::sync::OnceLock;

use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};

use crate::interp::{End, RunCtx};
use crate::program::Program;
use crate::run::Fault;

/// Compiled code of one program.
pub(crate) struct Compiled {
    code: code::CodeMem,
}

impl Compiled {
    /// Bytes of machine code.
    pub(crate) fn len(&self) -> usize {
        self.code.len()
    }

    /// The machine code and its address.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.code.bytes()
    }
}

/// Programs larger than this are interpreted (compile time grows with size).
const MAX_JIT_OPS: usize = 64 * 1024;

thread_local! {
    static OVERRIDE: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Whether programs loaded now are compiled: the [`scoped`] choice of this thread,
/// else on unless `BPFTIME_JIT=0`.
pub(crate) fn enabled() -> bool {
    OVERRIDE
        .with(|o| o.get())
        .unwrap_or_else(|| !matches!(std::env::var("BPFTIME_JIT").as_deref(), Ok("0") | Ok("off")))
}

/// Run `f` with programs loaded on this thread compiled (`on`) or interpreted,
/// whatever `BPFTIME_JIT` says (tests comparing the back ends).
pub fn scoped<R>(on: bool, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<bool>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OVERRIDE.with(|o| o.replace(Some(on))));
    f()
}

fn isa() -> Option<&'static OwnedTargetIsa> {
    static ISA: OnceLock<Option<OwnedTargetIsa>> = OnceLock::new();
    ISA.get_or_init(|| {
        let mut flags = settings::builder();
        let set = |f: &mut settings::Builder, k: &str, v: &str| f.set(k, v).is_ok();
        let ok = set(&mut flags, "opt_level", "speed")
            && set(&mut flags, "enable_verifier", "false")
            && set(&mut flags, "preserve_frame_pointers", "true");
        if !ok {
            return None;
        }
        let builder = match cranelift_native::builder() {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(error = e, "jit: host ISA not supported");
                return None;
            }
        };
        builder.finish(settings::Flags::new(flags)).ok()
    })
    .as_ref()
}

/// Compile `prog`; `None` (logged) when the JIT does not support it.
pub(crate) fn compile(prog: &Program) -> Option<Compiled> {
    if prog.ops.len() > MAX_JIT_OPS {
        tracing::debug!(
            prog = prog.name(),
            ops = prog.ops.len(),
            "jit: too large, interpreted"
        );
        return None;
    }
    let isa = isa()?;
    // A translator or Cranelift panic must not take the loader down: interpret instead.
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        translate::compile(prog, isa.as_ref())
    }))
    .unwrap_or(Err("jit panicked"));
    let bytes = match res {
        Ok(b) => b,
        Err(why) => {
            tracing::debug!(prog = prog.name(), why, "jit: not compiled, interpreted");
            return None;
        }
    };
    match code::CodeMem::new(&bytes) {
        Ok(code) => Some(Compiled { code }),
        Err(e) => {
            tracing::debug!(prog = prog.name(), error = %e, "jit: cannot map code, interpreted");
            None
        }
    }
}

/// Run compiled code as the outermost invocation of the current program of `rc`,
/// with r1..r5 = `args` (the interpreter's `exec(.., 0, args, top = true)`).
#[inline]
pub(crate) fn exec(code: &Compiled, rc: &mut RunCtx<'_>, args: [u64; 5]) -> Result<End, Fault> {
    runtime::run(code.code.ptr(), rc, args)
}
