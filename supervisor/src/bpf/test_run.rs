//! BPF_PROG_TEST_RUN (`bpf_prog_test_run_xdp`, `bpf_prog_test_run_skb` for
//! SOCKET_FILTER). attr: prog_fd 0, retval 4, data_size_in 8, data_size_out 12,
//! data_in 16, data_out 24, repeat 32, duration 36, ctx_size_in 40,
//! ctx_size_out 44, ctx_in 48, ctx_out 56, flags 64, cpu 68, batch_size 72.

use super::Attr;
use crate::call::{Call, Reply};
use crate::registry::Kind;

/// What one test run produced.
pub struct TestOut {
    pub retval: u32,
    pub data_out: Vec<u8>,
    pub ctx_out: Option<Vec<u8>>,
    pub duration_ns: u32,
}

pub fn test_run(call: &Call<'_>, a: &Attr) -> Reply {
    match run(call, a) {
        Ok(()) => Reply::Value(0),
        Err(e) => Reply::Errno(e),
    }
}

fn run(call: &Call<'_>, a: &Attr) -> Result<(), i32> {
    // bpf_prog_test_run: a context size without a buffer (or the reverse) is EINVAL
    // before the program is looked up.
    if (a.u32(40) != 0) != (a.u64(48) != 0) || (a.u32(44) != 0) != (a.u64(56) != 0) {
        return Err(libc::EINVAL);
    }
    let obj = call.object(a.i32(0), Kind::Prog, libc::EINVAL)?;
    let p = obj.as_prog().unwrap();
    // A test run measures the code runs will use: the compile deferred at load ends here.
    p.prog.vm.finish_compile();
    let (size_in, size_out) = (a.u32(8) as usize, a.u32(12) as usize);
    let (ctx_size_in, ctx_size_out) = (a.u32(40) as usize, a.u32(44) as usize);
    let flags = a.u32(64);
    let repeat = a.u32(32).max(1);
    let out = match p.prog.prog_type {
        super::prog_load::prog_type::XDP => {
            const LIVE: u32 = 2;
            if flags & !LIVE != 0 || a.u32(68) != 0 {
                return Err(libc::EINVAL);
            }
            if flags & LIVE == 0 && a.u32(72) != 0 {
                return Err(libc::EINVAL);
            }
            if flags & LIVE != 0 {
                return live(call, &obj, a);
            }
            if size_in < 14 {
                return Err(libc::EINVAL);
            }
            let data = call.read(a.u64(16), size_in)?;
            let ctx = if a.u64(48) != 0 || ctx_size_in != 0 {
                Some(call.read(a.u64(48), ctx_size_in)?)
            } else {
                None
            };
            vm_test_run(call, &obj, data, ctx, repeat)?
        }
        super::prog_load::prog_type::SOCKET_FILTER => {
            if flags != 0 || a.u32(68) != 0 || a.u32(72) != 0 {
                return Err(libc::EINVAL);
            }
            if size_in < 14 {
                return Err(libc::EINVAL);
            }
            let data = call.read(a.u64(16), size_in)?;
            vm_test_run(call, &obj, data, None, repeat)?
        }
        _ => return Err(libc::ENOTSUP),
    };
    // bpf_test_finish: copy what fits, ENOSPC if data_out was too small.
    let mut err = Ok(());
    if a.u64(24) != 0 {
        let n = out.data_out.len().min(size_out);
        call.write(a.u64(24), &out.data_out[..n])?;
        if n < out.data_out.len() {
            err = Err(libc::ENOSPC);
        }
    }
    a.put_u32(call, 12, out.data_out.len() as u32)?;
    a.put_u32(call, 4, out.retval)?;
    a.put_u32(call, 36, out.duration_ns)?;
    if let Some(ctx) = out.ctx_out {
        if a.u64(56) != 0 {
            let n = ctx.len().min(ctx_size_out);
            call.write(a.u64(56), &ctx[..n])?;
            if n < ctx.len() {
                err = Err(libc::ENOSPC);
            }
            a.put_u32(call, 44, ctx.len() as u32)?;
        }
    }
    err
}

/// What a test run's program may ask of the host: `bpf_trace_printk` lines go to
/// the trace pipe, shown as printed by the calling process (the kernel runs the
/// program in the caller's context).
struct TestRunHost<'a> {
    pipe: Option<&'a crate::daemon::trace_pipe::TracePipe>,
    comm: String,
    pid: u32,
    /// The caller's network namespace (bpf_fib_lookup answers from its tables).
    netns: std::path::PathBuf,
    rtnl: std::sync::Mutex<Option<bpftime_netdev::fib::Rtnl>>,
    caller: Caller<'a>,
}

impl<'a> TestRunHost<'a> {
    fn new(call: &'a Call<'_>) -> Self {
        let pipe = call.daemon.trace.as_deref();
        let pid = call.tid();
        let comm = match pipe {
            Some(_) => crate::daemon::trace_pipe::comm_of(pid),
            None => String::new(),
        };
        TestRunHost {
            pipe,
            comm,
            pid,
            netns: call.proc_path("ns/net"),
            rtnl: Default::default(),
            caller: Caller::of(call),
        }
    }
}

impl TestRunHost<'_> {
    /// `f` on the rtnetlink socket of the caller's namespace (made once per test
    /// run, by a thread that joins the namespace).
    fn with_rtnl<R>(&self, f: impl FnOnce(&mut bpftime_netdev::fib::Rtnl) -> R) -> Option<R> {
        let mut r = self.rtnl.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            let ns = self.netns.clone();
            *r = std::thread::scope(|s| {
                s.spawn(move || {
                    bpftime_netdev::netns::enter(&ns).ok()?;
                    bpftime_netdev::fib::Rtnl::open().ok()
                })
                .join()
                .ok()
                .flatten()
            });
        }
        r.as_mut().map(f)
    }
}

impl bpftime_vm::run::HostEnv for TestRunHost<'_> {
    fn interrupted(&self) -> bool {
        self.caller.interrupted()
    }
    fn fib_lookup(&self, params: &mut [u8], flags: u32) -> Option<i64> {
        self.with_rtnl(|r| r.fib_lookup(params, flags))
    }
    fn mtu(&self, ifindex: u32) -> Option<u32> {
        self.with_rtnl(|r| r.mtu(ifindex)).flatten()
    }

    fn trace_printk(&self, msg: &str) {
        if let Some(p) = self.pipe {
            let task = crate::daemon::trace_pipe::Task {
                comm: &self.comm,
                pid: self.pid,
            };
            p.print(&task, msg);
        }
    }
}

/// Trace output of a live-frames test run: lines shown as printed by the caller.
fn caller_trace(call: &Call<'_>) -> Option<bpftime_netdev::TraceSink> {
    let pipe = call.daemon.trace.clone()?;
    let pid = call.tid();
    let comm = crate::daemon::trace_pipe::comm_of(pid);
    Some(std::sync::Arc::new(move |msg: &str| {
        pipe.print(&crate::daemon::trace_pipe::Task { comm: &comm, pid }, msg)
    }))
}

/// The CPU the caller is on (the kernel runs a test on it: `bpf_get_smp_processor_id`,
/// `BPF_F_CURRENT_CPU`): field 39 of /proc/TID/stat, else the daemon thread's.
fn caller_cpu(call: &Call<'_>) -> u32 {
    std::fs::read_to_string(call.proc_path("stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace().nth(36)?.parse().ok()
        })
        .or_else(|| nix::sched::sched_getcpu().ok().map(|c| c as u32))
        .unwrap_or(0)
}

/// Adapter to the vm's test run.
fn vm_test_run(
    call: &Call<'_>,
    obj: &crate::registry::Object,
    data: Vec<u8>,
    ctx: Option<Vec<u8>>,
    repeat: u32,
) -> Result<TestOut, i32> {
    let p = &obj.as_prog().unwrap().prog.vm;
    let host = TestRunHost::new(call);
    let cpu = caller_cpu(call);
    let out = match obj.as_prog().unwrap().prog.prog_type {
        super::prog_load::prog_type::XDP => {
            if let Some(c) = &ctx {
                if c.len() >= 16 {
                    let ifindex = u32::from_ne_bytes(c[12..16].try_into().unwrap());
                    if ifindex != 0 {
                        check_ifindex(call, ifindex)?;
                    }
                }
            }
            p.test_run_xdp(&data, ctx.as_deref(), repeat, cpu, &host)?
        }
        _ => p.test_run_generic(&data, repeat, cpu, &host)?,
    };
    Ok(TestOut {
        retval: out.retval,
        data_out: out.data_out,
        ctx_out: if ctx.is_some() {
            Some(out.ctx_out)
        } else {
            None
        },
        duration_ns: out.duration_ns,
    })
}

/// ENODEV unless `ifindex` exists in the caller's network namespace (looked up
/// from a short-lived thread that joins it).
fn check_ifindex(call: &Call<'_>, ifindex: u32) -> Result<(), i32> {
    let ns = std::fs::File::open(call.proc_path("ns/net")).map_err(|_| libc::ESRCH)?;
    if !call.valid() {
        return Err(libc::ESRCH);
    }
    let found = std::thread::spawn(move || -> bool {
        if nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
            return false;
        }
        nix::net::if_::if_nameindex()
            .map(|l| l.iter().any(|i| i.index() == ifindex))
            .unwrap_or(false)
    })
    .join()
    .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(libc::ENODEV)
    }
}

/// `bpf_prog_test_run_xdp` with BPF_F_TEST_XDP_LIVE_FRAMES (`bpf_test_run_xdp_live`):
/// attr checks in the kernel's order, then each repetition runs in the VM and its
/// verdict is carried out by the kernel (bpftime_netdev::live) from a thread in the
/// caller's network namespace. retval 0; data_size_out is the input size.
fn live(call: &Call<'_>, obj: &crate::registry::Object, a: &Attr) -> Result<(), i32> {
    const MD: usize = 24;
    let prog = &obj.as_prog().unwrap().prog;
    if matches!(
        prog.expected_attach_type,
        bpftime_vm::program::attach_type::BPF_XDP_DEVMAP
            | bpftime_vm::program::attach_type::BPF_XDP_CPUMAP
    ) {
        return Err(libc::EINVAL);
    }
    let batch = a.u32(72);
    if batch > 256 {
        return Err(libc::E2BIG);
    }
    let size = a.u32(8) as usize;
    let ctx_size = a.u32(40) as usize;
    // bpf_ctx_init: no ctx when both are 0; bytes past xdp_md must be zero (E2BIG).
    let md = if a.u64(48) != 0 || ctx_size != 0 {
        let c = call.read(a.u64(48), ctx_size)?;
        if c.len() > MD && c[MD..].iter().any(|&b| b != 0) {
            return Err(libc::E2BIG);
        }
        let mut md = [0u8; MD];
        let n = c.len().min(MD);
        md[..n].copy_from_slice(&c[..n]);
        Some(md)
    } else {
        None
    };
    let f = |md: &[u8; MD], i: usize| u32::from_ne_bytes(md[i * 4..i * 4 + 4].try_into().unwrap());
    let (mut meta, mut ifindex, mut rxq) = (0usize, 0u32, 0u32);
    if let Some(md) = &md {
        let (data, data_end, data_meta) = (f(md, 0), f(md, 1), f(md, 2));
        if data_meta != 0
            || data_end as usize != size
            || data > data_end
            || data & 3 != 0
            || data > 32
            || a.u64(24) != 0
            || a.u64(56) != 0
        {
            return Err(libc::EINVAL);
        }
        meta = data as usize;
        (ifindex, rxq) = (f(md, 3), f(md, 4));
    }
    // The page holds headroom (256 + struct xdp_page_head, 112 bytes) and tailroom
    // (320): no jumbo frames in live mode (the kernel takes at most 3408 bytes).
    if size > 4096 - 256 - 112 - 320 + meta {
        return Err(libc::EINVAL);
    }
    if size < 14 {
        return Err(libc::EINVAL);
    }
    let data = call.read(a.u64(16), size)?;
    // xdp_convert_md_to_buff.
    if let Some(md) = &md {
        if f(md, 5) != 0 || (ifindex == 0 && rxq != 0) {
            return Err(libc::EINVAL);
        }
    }
    let ns = std::fs::File::open(call.proc_path("ns/net")).map_err(|_| libc::ESRCH)?;
    if !call.valid() {
        return Err(libc::ESRCH);
    }
    let repeat = a.u32(32).max(1);
    let vm = prog.vm.clone();
    let orig = data.clone();
    let host = LiveHost {
        inner: bpftime_netdev::WorkerHost {
            trace: caller_trace(call),
        },
        caller: Caller::of(call),
    };
    let counts = std::thread::scope(|sc| {
        sc.spawn(move || -> Result<bpftime_netdev::live::LiveCounts, i32> {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e as i32)?;
            // Without ctx the frame arrives on the namespace's loopback (ifindex 1).
            let ifindex = if ifindex == 0 { 1 } else { ifindex };
            let Ok(name) = bpftime_netdev::netns::ifname(ifindex) else {
                return Err(libc::ENODEV);
            };
            if rxq != 0 && rxq >= bpftime_netdev::netns::rx_queues(&name) {
                return Err(libc::EINVAL);
            }
            bpftime_netdev::live::run_live(&vm, &host, &data, meta, ifindex, rxq, repeat)
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EINVAL))
        })
        .join()
        .map_err(|_| libc::EFAULT)
    })??;
    call.trace(|| format!("  PROG_TEST_RUN live: {counts:?}"));
    // bpf_test_finish on the untouched test buffer: the runs worked on copies.
    let mut r = Ok(());
    if a.u64(24) != 0 {
        let n = size.min(a.u32(12) as usize);
        call.write(a.u64(24), &orig[..n])?;
        if n < size {
            r = Err(libc::ENOSPC);
        }
    }
    a.put_u32(call, 12, size as u32)?;
    a.put_u32(call, 4, 0)?;
    a.put_u32(call, 36, counts.duration_ns)?;
    r
}

/// The data plane's host for a live-frame test run, stopped when its caller is gone.
struct LiveHost<'a> {
    inner: bpftime_netdev::WorkerHost,
    caller: Caller<'a>,
}

impl bpftime_vm::run::HostEnv for LiveHost<'_> {
    fn trace_printk(&self, msg: &str) {
        self.inner.trace_printk(msg)
    }
    fn mtu(&self, ifindex: u32) -> Option<u32> {
        self.inner.mtu(ifindex)
    }
    fn fib_lookup(&self, params: &mut [u8], flags: u32) -> Option<i64> {
        self.inner.fib_lookup(params, flags)
    }
    fn interrupted(&self) -> bool {
        self.caller.interrupted()
    }
}

/// The thread whose notification a test run answers.
#[derive(Clone, Copy)]
struct Caller<'a> {
    listener: crate::sys::seccomp::Listener<'a>,
    notif_id: u64,
    tid: u32,
}

impl<'a> Caller<'a> {
    fn of(call: &Call<'a>) -> Self {
        Caller {
            listener: call.listener,
            notif_id: call.notif.id,
            tid: call.tid(),
        }
    }

    /// The kernel's `signal_pending(current)` for the caller: it is gone (its
    /// notification is no longer valid: killed), or a signal it does not block is
    /// pending on the thread or its process (`SigPnd`/`ShdPnd` against `SigBlk` in
    /// /proc/TID/status; ignored signals are never queued).
    fn interrupted(&self) -> bool {
        if !self.listener.id_valid(self.notif_id) {
            return true;
        }
        caller_signal_pending(self.tid)
    }
}

fn caller_signal_pending(tid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{tid}/status")) else {
        return true;
    };
    let mask = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    (mask("SigPnd:") | mask("ShdPnd:")) & !mask("SigBlk:") != 0
}
