//! Running bpftime's own eBPF VM programs in the data plane.

use std::sync::Arc;

use bpftime_vm::program::{Program, Session};
use bpftime_vm::run::{HostEnv, NoHost, RedirectInfo, XdpCtx};

use crate::{netns, XdpProgram};

/// Where `bpf_trace_printk` output goes (the daemon's trace pipe); called in the
/// thread that ran the program.
pub type TraceSink = Arc<dyn Fn(&str) + Send + Sync>;

/// The host services a data-plane worker offers a program: answered in the
/// worker's thread, hence in the interface's network namespace.
#[derive(Default)]
pub struct WorkerHost {
    pub trace: Option<TraceSink>,
}

impl HostEnv for WorkerHost {
    fn mtu(&self, ifindex: u32) -> Option<u32> {
        netns::mtu(ifindex)
    }
    fn trace_printk(&self, msg: &str) {
        if let Some(t) = &self.trace {
            t(msg);
        }
    }
    fn fib_lookup(&self, params: &mut [u8], flags: u32) -> Option<i64> {
        // One rtnetlink socket per worker thread, made in the thread's (the
        // interface's) network namespace on first use.
        thread_local! {
            static RTNL: std::cell::RefCell<Option<crate::fib::Rtnl>> =
                const { std::cell::RefCell::new(None) };
        }
        RTNL.with(|r| {
            let mut r = r.borrow_mut();
            if r.is_none() {
                *r = crate::fib::Rtnl::open().ok();
            }
            r.as_mut().map(|r| r.fib_lookup(params, flags))
        })
    }
}

/// A loaded VM program with the host it runs against.
pub struct VmProgram {
    prog: Arc<Program>,
    host: Arc<dyn HostEnv>,
}

impl VmProgram {
    /// `prog` with the worker host (MTU lookups in the interface's namespace).
    pub fn new(prog: Arc<Program>) -> Self {
        VmProgram {
            prog,
            host: Arc::new(WorkerHost::default()),
        }
    }
    /// `prog` with the worker host and `trace` for `bpf_trace_printk`.
    pub fn with_trace(prog: Arc<Program>, trace: Option<TraceSink>) -> Self {
        VmProgram {
            prog,
            host: Arc::new(WorkerHost { trace }),
        }
    }
    pub fn with_host(prog: Arc<Program>, host: Arc<dyn HostEnv>) -> Self {
        VmProgram { prog, host }
    }
    pub fn program(&self) -> &Arc<Program> {
        &self.prog
    }
}

impl XdpProgram for VmProgram {
    fn run(&self, ctx: &mut XdpCtx, cpu: u32) -> (u32, RedirectInfo) {
        let r = self.prog.run_xdp(ctx, cpu, self.host.as_ref());
        (r.verdict, r.redirect)
    }
    fn run_in(&self, session: &mut Session, ctx: &mut XdpCtx, cpu: u32) -> (u32, RedirectInfo) {
        let r = self.prog.run_xdp_in(session, ctx, cpu, self.host.as_ref());
        (r.verdict, r.redirect)
    }
    fn name(&self) -> &str {
        self.prog.name()
    }
}

/// A bare VM program, without host services.
impl XdpProgram for Program {
    fn run(&self, ctx: &mut XdpCtx, cpu: u32) -> (u32, RedirectInfo) {
        let r = self.run_xdp(ctx, cpu, &NoHost);
        (r.verdict, r.redirect)
    }
    fn run_in(&self, session: &mut Session, ctx: &mut XdpCtx, cpu: u32) -> (u32, RedirectInfo) {
        let r = self.run_xdp_in(session, ctx, cpu, &NoHost);
        (r.verdict, r.redirect)
    }
    fn name(&self) -> &str {
        Program::name(self)
    }
}
