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

static DEFER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on, programs are not compiled while they load (BPF_PROG_LOAD answers after
/// verification) but on the JIT thread once [`Program::compile_in_background`] asks;
/// runs interpret until the code is there. The daemon does this: a JIT compile costs
/// ~0.5 ms per program here, most of a libbpf object's load time.
pub fn defer(on: bool) {
    DEFER.store(on, std::sync::atomic::Ordering::Relaxed);
}

pub(crate) fn deferred() -> bool {
    DEFER.load(std::sync::atomic::Ordering::Relaxed)
}

/// Queues `prog` for the JIT thread (started on first use; one thread, so compiles
/// never take more than one core from the data plane).
pub(crate) fn compile_later(prog: std::sync::Weak<Program>) {
    use std::sync::mpsc::{channel, Sender};
    use std::sync::Mutex;
    static QUEUE: OnceLock<Option<Mutex<Sender<std::sync::Weak<Program>>>>> = OnceLock::new();
    let q = QUEUE.get_or_init(|| {
        let (tx, rx) = channel::<std::sync::Weak<Program>>();
        std::thread::Builder::new()
            .name("jit".into())
            .spawn(move || {
                for p in rx {
                    // A program unloaded meanwhile is not compiled at all.
                    if let Some(p) = p.upgrade() {
                        p.finish_compile();
                    }
                }
            })
            .ok()
            .map(|_| Mutex::new(tx))
    });
    match q {
        Some(tx) => {
            let _ = tx.lock().unwrap().send(prog);
        }
        // No thread: compile here.
        None => {
            if let Some(p) = prog.upgrade() {
                p.finish_compile();
            }
        }
    }
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

/// Run compiled code as the first program of a fast-path run (see
/// [`crate::interp::Pending`]).
#[inline]
pub(crate) fn exec_pending(
    code: &Compiled,
    pending: &mut crate::interp::Pending<'_>,
    args: [u64; 5],
) -> Result<End, Fault> {
    runtime::run_pending(code.code.ptr(), pending, args)
}

/// Run compiled code as the outermost invocation of the current program of `rc`,
/// with r1..r5 = `args` (the interpreter's `exec(.., 0, args, top = true)`).
#[inline]
pub(crate) fn exec(code: &Compiled, rc: &mut RunCtx<'_>, args: [u64; 5]) -> Result<End, Fault> {
    runtime::run(code.code.ptr(), rc, args)
}

/// The fixed cost of one run, layer by layer, against the compiled code called bare
/// (the floor): not a test; `cargo test --release -p bpftime-vm --lib fixed_cost --
/// --ignored --nocapture`. Minimum of 5 trials of 20M runs of `r0 = XDP_PASS; exit`.
#[cfg(test)]
mod fixed_cost {
    use super::runtime::{EntryFn, JitEnv};
    use crate::interp::Session;
    use crate::program::{prog_type, NoMaps, ProgLoadSpec, Program};
    use crate::run::{NoHost, XdpCtx};
    use std::time::Instant;

    fn min_ns(n: u64, mut f: impl FnMut()) -> f64 {
        (0..5)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..n {
                    f();
                }
                t.elapsed().as_nanos() as f64 / n as f64
            })
            .fold(f64::MAX, f64::min)
    }

    #[test]
    #[ignore = "benchmark"]
    fn fixed_cost_of_a_run() {
        let spec = ProgLoadSpec {
            prog_type: prog_type::XDP,
            expected_attach_type: 37,
            insns: crate::insn::encode(&crate::asm::assemble("mov %r0, 2\nexit").unwrap()),
            license: "GPL".into(),
            ..Default::default()
        };
        let p = Program::load(spec, &NoMaps).unwrap();
        let code = p.jit_now().expect("compiled");
        let mut buf = vec![0u8; 4096];
        let base = buf.as_mut_ptr() as u64;
        let mut ctx = XdpCtx {
            data_meta: base + 256,
            data: base + 256,
            data_end: base + 320,
            hard_start: base,
            frame_end: base + 4096 - 320,
            ..Default::default()
        };
        let mut stack = vec![0u64; 512];
        let (mut budget, mut mg) = (1u64 << 24, 1u64 << 23);
        let mut env = JitEnv {
            rc: std::ptr::null_mut(),
            pending: std::ptr::null_mut(),
            xdp: &mut ctx,
            budget: &mut budget,
            may_goto: &mut mg,
            stack_base: stack.as_mut_ptr() as u64,
            exit: 0,
            cache_start: 0,
            cache_len: 0,
            cpu_slot: 0,
            guard: std::ptr::null(),
            fault: None,
            tail: None,
        };
        // SAFETY: the code of `p`, called with a complete environment (as runtime::run).
        let f: EntryFn = unsafe { std::mem::transmute::<*const u8, EntryFn>(code.code.ptr()) };
        let n = 20_000_000;
        let bare = min_ns(n, || {
            // SAFETY: as above.
            std::hint::black_box(unsafe { f(&mut env, 1, 0, 0, 0, 0) });
        });
        let mut s = Session::new();
        let session = min_ns(n, || {
            std::hint::black_box(s.run_xdp(&p, &mut ctx, 0, &NoHost).is_ok());
        });
        let run_in = min_ns(n, || {
            std::hint::black_box(p.run_xdp_in(&mut s, &mut ctx, 0, &NoHost).verdict);
        });
        drop(s);
        let run = min_ns(n, || {
            std::hint::black_box(p.run_xdp(&mut ctx, 0, &NoHost).verdict);
        });
        println!("| layer | ns/run | vs bare code |");
        println!("|---|---|---|");
        for (name, v) in [
            ("compiled code, called bare", bare),
            ("Session::run (fast path)", session),
            ("Program::run_xdp_in (RunResult)", run_in),
            ("Program::run_xdp (a session per run)", run),
        ] {
            println!("| {name} | {v:.1} | {:.1}x |", v / bare);
        }
    }
}
