//! The AF_XDP data plane: kernel redirect stub, UMEM and rings, per-queue workers,
//! verdicts.
//!
//! When a program is attached to an interface, [`Dataplane::attach`]:
//! 1. enters the interface's network namespace on a setup thread (`setns`), so that
//!    the ifindex, the stub's link, the sockets and the reinjection all resolve there;
//! 2. creates an XSKMAP and loads the redirect stub
//!    (`bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS)`, raw instructions, see
//!    [`stub`]) and the pass stub with the real `bpf()`;
//! 3. per RX queue, creates an AF_XDP socket with its own UMEM ([`Options`]: 512
//!    frames of 4 KiB by default, the packet at 256 bytes = XDP_PACKET_HEADROOM into its
//!    frame; zero-copy when the driver has it, else copy mode; XDP_USE_NEED_WAKEUP) and
//!    puts it in the XSKMAP;
//! 4. attaches the stub with `BPF_LINK_CREATE` (BPF_XDP, the mode asked). The link fd
//!    belongs to this process: when it dies the kernel detaches the stub, and an
//!    empty XSKMAP slot already means XDP_PASS, so the host keeps its network;
//! 5. starts one worker thread per queue (threads inherit the namespace), optionally
//!    pinned to CPU `queue % ncpus`.
//!
//! Each worker runs the program ([`XdpProgram`]) on every frame with an
//! [`XdpCtx`] whose pointers lie inside the frame, then:
//! - XDP_DROP: the frame goes back to the FILL ring;
//! - XDP_TX: the frame (with the program's rewrites, from `data` to `data_end`) goes
//!   on the same socket's TX ring, and back to FILL once the kernel completed it;
//! - XDP_PASS: the frame is handed to the kernel stack as if received on that
//!   interface: written to the attachment's TAP device, whose TC ingress hands it to
//!   the interface's receive path ([`tap`]; a few µs per frame). Native (DRV) mode
//!   connects them with a BPF redirect, generic (SKB) mode with a `mirred` redirect the
//!   generic XDP hook lets pass ([`tc`]). Frames with metadata, or no TAP:
//!   `BPF_PROG_TEST_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES` on the pass stub, from the
//!   worker thread (in the interface's namespace), ~20 µs per frame;
//! - XDP_REDIRECT: by ifindex (`bpf_redirect`) or through a DEVMAP/DEVMAP_HASH entry
//!   (`bpf_redirect_map`, with BPF_F_BROADCAST / BPF_F_EXCLUDE_INGRESS). To the
//!   ingress interface itself it is XDP_TX; to another interface of the namespace
//!   it is sent with an AF_PACKET socket (`sendto` with `sll_ifindex`). AF_PACKET
//!   works on every device and needs nothing of the target: a veth's
//!   `ndo_xdp_xmit` (live-frame redirect) fails unless its peer has XDP/GRO set
//!   up, and another attachment's TX ring is single-producer, owned by its worker;
//! - XDP_ABORTED and unknown verdicts: dropped, counted as exceptions.
//!
//! Generic (SKB) mode: a reinjected frame goes through `netif_receive_skb`, where
//! the generic XDP hook would run the stub again. Through the TAP, mirred marks it as
//! redirected and the hook lets it pass. Through a live-frame run, the stubs share a
//! per-CPU token ([`stub`]) so the stub lets exactly the reinjected frame pass; this
//! relies on the run delivering on the same CPU: with RPS enabled on the interface, a
//! PASS of a frame with metadata in SKB mode may loop.
//!
//! [`Dataplane::replace`] swaps the program atomically ([`arc_swap`]): a worker takes
//! the current program once per batch of up to 64 frames and holds it until the
//! batch ends, so each frame is run by exactly one program, and a replaced program
//! is freed only after the last batch using it. [`Dataplane::detach`] closes the
//! stub link first (traffic returns to the kernel stack at once), then stops and
//! joins the workers and closes the sockets.
//!
//! Counters per interface and queue: [`Dataplane::stats`], [`Dataplane::list`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use bpftime_netdev::{AttachSpec, Dataplane, VmProgram, XdpMode};
//! # fn prog() -> Arc<bpftime_vm::program::Program> { unimplemented!() }
//! let dp = Dataplane::new();
//! let id = dp.attach(AttachSpec {
//!     netns: Some("/run/netns/blue".into()),
//!     ifindex: 2,
//!     mode: XdpMode::Drv,
//!     program: Arc::new(VmProgram::new(prog())),
//!     queues: None,
//!     cpu_pinning: false,
//! })?;
//! println!("{:?}", dp.stats(id).unwrap().total);
//! dp.replace(id, Arc::new(VmProgram::new(prog())))?;
//! dp.detach(id)?;
//! # Ok::<(), bpftime_netdev::NetdevError>(())
//! ```
//!
//! Known limits:
//! - A frame sent by a local stack through a veth (or another device with TX
//!   checksum offload) carries an unfinished TCP/UDP checksum (CHECKSUM_PARTIAL),
//!   which AF_XDP does not report: [`csum`] recognises it on the frame as received
//!   and completes it after the program for PASS, TX and REDIRECT. A DEVMAP entry's
//!   program sees the completed bytes (the kernel's would see the partial ones).
//! - Generic mode takes packets larger than a 4 KiB frame (GSO super-frames) as
//!   descriptor chains (`XDP_USE_SG`) and runs the program on the whole packet. What it
//!   passes goes to the stack as one GSO packet (TCP) through the TAP; what it sends or
//!   redirects is cut to the MTU if it is TCP ([`gso`]), else refused (counted as a
//!   failure). Native mode takes one frame per packet (veth refuses a native program
//!   without frags support above a 4 KiB MTU, as for the kernel's).
//! - The TAP of generic mode carries the interface's MAC address, copied at attach:
//!   if the interface's address changes while attached, passed unicast frames are
//!   classified against the old one (and dropped by IP as for another host).
//! - XSKMAP and CPUMAP redirect targets are counted as redirect failures (DEVMAP
//!   and DEVMAP_HASH work, with their entries' programs).
//! - The `cpu` a program sees is the worker's pinned CPU, or `sched_getcpu()` when
//!   not pinned: two unpinned workers may briefly share a per-CPU slot.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
pub use bpftime_vm::run::{RedirectInfo, XdpCtx};

mod cpu;
pub mod csum;
pub mod fib;
pub mod gso;
pub mod live;
pub mod netns;
mod rtnl;
mod stop;
pub mod stub;
mod sys;
pub mod tap;
pub mod tc;
mod vmprog;
mod worker;
mod xsk;

pub use sys::prog_load_xdp_as;
pub use vmprog::{TraceSink, VmProgram, WorkerHost};
use worker::{ProgSlot, QueueCounters, Worker};

/// A program the data plane runs on each frame.
///
/// `run` gets the frame's context (absolute pointers inside the frame,
/// `ingress_ifindex` and `rx_queue_index` filled) and the CPU slot of the worker,
/// and returns the verdict with the redirect target recorded by
/// `bpf_redirect*` (meaningful for XDP_REDIRECT only). It may move
/// `data`/`data_meta`/`data_end` within `[hard_start, frame_end]` and write the
/// bytes between them.
pub trait XdpProgram: Send + Sync {
    fn run(&self, ctx: &mut XdpCtx, cpu: u32) -> (u32, RedirectInfo);
    /// [`XdpProgram::run`] in the worker's `session`, whose run state (stack, region
    /// lists) is kept from one frame to the next instead of set up per frame.
    fn run_in(
        &self,
        _session: &mut bpftime_vm::program::Session,
        ctx: &mut XdpCtx,
        cpu: u32,
    ) -> (u32, RedirectInfo) {
        self.run(ctx, cpu)
    }
    fn name(&self) -> &str;
}

/// XDP attach mode of the kernel stub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// Generic XDP (XDP_FLAGS_SKB_MODE): any interface.
    Skb,
    /// Native XDP in the driver (XDP_FLAGS_DRV_MODE): veth and XDP-capable NICs.
    Drv,
}

impl XdpMode {
    fn flags(self) -> u32 {
        match self {
            XdpMode::Skb => 2,
            XdpMode::Drv => 4,
        }
    }
}

/// What to attach where.
pub struct AttachSpec {
    /// The interface's network namespace (`/proc/TID/ns/net`, `/run/netns/NAME`);
    /// None = the namespace of the calling thread.
    pub netns: Option<PathBuf>,
    /// Interface index inside that namespace.
    pub ifindex: u32,
    pub mode: XdpMode,
    pub program: Arc<dyn XdpProgram>,
    /// RX queues to serve (from 0); None = all the driver reports (ethtool channels).
    pub queues: Option<u32>,
    /// Pin worker `q` to CPU `q % ncpus`.
    pub cpu_pinning: bool,
}

/// Handle of an attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttachmentId(pub u64);

/// Counters of one RX queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub queue: u32,
    /// Frames taken from the AF_XDP socket and their bytes.
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Verdicts.
    pub drop: u64,
    pub pass: u64,
    pub tx: u64,
    pub redirect: u64,
    pub aborted: u64,
    /// XDP_ABORTED, unknown verdicts and invalid frames/contexts.
    pub exceptions: u64,
    /// XDP_PASS frames the kernel refused to take.
    pub pass_failures: u64,
    /// PASS/TX/REDIRECT frames whose unfinished (CHECKSUM_PARTIAL) TCP/UDP checksum
    /// the data plane completed (see `csum`).
    pub csum_finished: u64,
    /// XDP_TX frames that found the TX ring full.
    pub tx_failures: u64,
    /// XDP_REDIRECT frames (or broadcast copies) that could not be sent.
    pub redirect_failures: u64,
    /// The socket's kernel counters (XDP_STATISTICS), refreshed when idle.
    pub kernel_rx_dropped: u64,
    pub kernel_rx_ring_full: u64,
    pub kernel_fill_ring_empty: u64,
    /// CPU time the queue's worker thread has used (user + system), nanoseconds.
    pub worker_cpu_ns: u64,
}

impl QueueStats {
    fn add(&mut self, o: &QueueStats) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.drop += o.drop;
        self.pass += o.pass;
        self.tx += o.tx;
        self.redirect += o.redirect;
        self.aborted += o.aborted;
        self.exceptions += o.exceptions;
        self.pass_failures += o.pass_failures;
        self.csum_finished += o.csum_finished;
        self.tx_failures += o.tx_failures;
        self.redirect_failures += o.redirect_failures;
        self.kernel_rx_dropped += o.kernel_rx_dropped;
        self.kernel_rx_ring_full += o.kernel_rx_ring_full;
        self.kernel_fill_ring_empty += o.kernel_fill_ring_empty;
        self.worker_cpu_ns += o.worker_cpu_ns;
    }
}

/// Counters of one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub ifindex: u32,
    pub ifname: String,
    pub netns: Option<PathBuf>,
    pub mode: XdpMode,
    /// Whether the sockets run in zero-copy mode (else copy mode).
    pub zero_copy: bool,
    /// Name of the program attached now.
    pub program: String,
    pub queues: Vec<QueueStats>,
    /// Sum over the queues (`queue` is the number of queues).
    pub total: QueueStats,
}

/// Errors of the data plane, each with the kernel's errno.
#[derive(Debug, thiserror::Error)]
pub enum NetdevError {
    /// No attachment with that id (ENOENT).
    #[error("no such attachment")]
    NoSuchAttachment,
    /// The interface is already served by this data plane (EBUSY).
    #[error("interface {ifindex} is already attached")]
    Busy { ifindex: u32 },
    /// The namespace cannot be entered.
    #[error("network namespace {path}: {source}")]
    Netns { path: PathBuf, source: io::Error },
    /// No such interface in the namespace (ENODEV).
    #[error("no interface with index {ifindex}")]
    NoDevice { ifindex: u32 },
    /// Bad argument (EINVAL).
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    /// A kernel call failed (the errno of the call).
    #[error("{what}: {source}")]
    Kernel {
        what: &'static str,
        source: io::Error,
    },
}

impl NetdevError {
    /// The positive errno for this error.
    pub fn errno(&self) -> i32 {
        match self {
            NetdevError::NoSuchAttachment => libc::ENOENT,
            NetdevError::Busy { .. } => libc::EBUSY,
            NetdevError::Netns { source, .. } | NetdevError::Kernel { source, .. } => {
                source.raw_os_error().unwrap_or(libc::EIO)
            }
            NetdevError::NoDevice { .. } => libc::ENODEV,
            NetdevError::Invalid(_) => libc::EINVAL,
        }
    }
}

fn kernel(what: &'static str) -> impl FnOnce(io::Error) -> NetdevError {
    move |source| NetdevError::Kernel { what, source }
}

/// One attached interface.
struct Attachment {
    ifindex: u32,
    ifname: String,
    netns: Option<PathBuf>,
    netns_id: (u64, u64),
    mode: XdpMode,
    zero_copy: bool,
    prog: Arc<ArcSwap<ProgSlot>>,
    counters: Vec<Arc<QueueCounters>>,
    stop: Arc<stop::Stop>,
    workers: Vec<JoinHandle<()>>,
    /// The stub's bpf_link; closing it detaches the stub.
    link: Option<OwnedFd>,
    /// Kept open for the life of the attachment (the link holds the stub).
    _kernel: Vec<OwnedFd>,
}

impl Attachment {
    fn stats(&self) -> Stats {
        let queues: Vec<QueueStats> = self
            .counters
            .iter()
            .enumerate()
            .map(|(q, c)| QueueStats {
                worker_cpu_ns: self.workers.get(q).map_or(0, cpu::thread_cpu_ns),
                ..c.snapshot(q as u32)
            })
            .collect();
        let mut total = QueueStats {
            queue: queues.len() as u32,
            ..QueueStats::default()
        };
        for q in &queues {
            total.add(q);
        }
        Stats {
            ifindex: self.ifindex,
            ifname: self.ifname.clone(),
            netns: self.netns.clone(),
            mode: self.mode,
            zero_copy: self.zero_copy,
            program: self.prog.load().0.name().to_string(),
            queues,
            total,
        }
    }

    /// Closes the link (the interface is back to the kernel stack), stops the workers.
    fn shutdown(&mut self) {
        self.link.take();
        self.stop.set();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The data plane: every attached interface of the daemon.
pub struct Dataplane {
    attachments: Mutex<HashMap<AttachmentId, Attachment>>,
    next_id: AtomicU64,
    options: Options,
}

/// How the data plane's workers behave.
#[derive(Debug, Clone)]
pub struct Options {
    /// Adaptive busy polling: after its last packet a worker keeps polling its RX ring
    /// for this long before it sleeps in `poll()` (zero: it sleeps after 64 empty
    /// rounds). A packet that finds its worker asleep waits for a wake-up (tens of µs
    /// on a VM); a worker that spins burns its CPU meanwhile (shown as worker CPU time
    /// in `bpftime status`). `Duration::MAX` never sleeps: the lowest latency at the
    /// cost of one busy core per queue.
    pub busy_poll: std::time::Duration,
    /// UMEM frames (4 KiB each) and ring entries per queue, a power of two from 64 to
    /// 65,536: the memory an attached queue pins (512, the default: 2 MiB), and how many packets
    /// it can hold while its worker is late before the kernel drops (counted as
    /// `kernel_rx_ring_full`/`fill_ring_empty` in `bpftime status`).
    pub frames_per_queue: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            busy_poll: std::time::Duration::ZERO,
            frames_per_queue: DEFAULT_FRAMES_PER_QUEUE,
        }
    }
}

impl Default for Dataplane {
    fn default() -> Self {
        Self::new()
    }
}

/// UMEM frames (and ring entries) per queue by default: 512 x 4 KiB = 2 MiB.
pub const DEFAULT_FRAMES_PER_QUEUE: u32 = 512;

impl Dataplane {
    pub fn new() -> Self {
        Self::with_options(Options::default())
    }

    pub fn with_options(options: Options) -> Self {
        Dataplane {
            attachments: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            options,
        }
    }

    /// Attaches `spec.program` to the interface: see the crate docs for the steps.
    /// Errors: the interface is unknown in its namespace (ENODEV), already attached
    /// here (EBUSY) or by someone else in the kernel (the kernel's EBUSY/EEXIST from
    /// LINK_CREATE), the mode is not supported by the driver (EOPNOTSUPP)...
    pub fn attach(&self, spec: AttachSpec) -> Result<AttachmentId, NetdevError> {
        if spec.ifindex == 0 {
            return Err(NetdevError::Invalid("ifindex 0"));
        }
        if spec.queues == Some(0) {
            return Err(NetdevError::Invalid("zero queues"));
        }
        let netns_id = netns::id(spec.netns.as_deref()).map_err(|source| NetdevError::Netns {
            path: spec
                .netns
                .clone()
                .unwrap_or_else(|| "/proc/thread-self/ns/net".into()),
            source,
        })?;
        {
            let atts = self.attachments.lock().expect("attachments lock");
            if atts
                .values()
                .any(|a| a.ifindex == spec.ifindex && a.netns_id == netns_id)
            {
                return Err(NetdevError::Busy {
                    ifindex: spec.ifindex,
                });
            }
        }
        let netns = spec.netns.clone();
        let id = AttachmentId(self.next_id.fetch_add(1, Ordering::Relaxed));
        // Everything is created on a thread inside the interface's namespace; the
        // workers it spawns inherit that namespace.
        let att = std::thread::Builder::new()
            .name(format!("xdp-setup-{}", spec.ifindex))
            .spawn({
                let options = self.options.clone();
                move || setup(spec, netns_id, &options)
            })
            .map_err(kernel("spawn setup thread"))?
            .join()
            .map_err(|_| NetdevError::Invalid("setup thread panicked"))??;
        let mut atts = self.attachments.lock().expect("attachments lock");
        if atts
            .values()
            .any(|a| a.ifindex == att.ifindex && a.netns_id == netns_id)
        {
            let ifindex = att.ifindex;
            drop(atts);
            drop(att);
            return Err(NetdevError::Busy { ifindex });
        }
        tracing::info!(id = id.0, ifindex = att.ifindex, ifname = %att.ifname, netns = ?netns, mode = ?att.mode, zero_copy = att.zero_copy, queues = att.counters.len(), "XDP attached");
        atts.insert(id, att);
        Ok(id)
    }

    /// Replaces the program of an attachment; atomic per packet.
    pub fn replace(
        &self,
        id: AttachmentId,
        program: Arc<dyn XdpProgram>,
    ) -> Result<(), NetdevError> {
        let atts = self.attachments.lock().expect("attachments lock");
        let att = atts.get(&id).ok_or(NetdevError::NoSuchAttachment)?;
        att.prog.store(Arc::new(ProgSlot(program)));
        Ok(())
    }

    /// Detaches: the stub link is closed (the interface is back to the kernel
    /// stack), the workers stop, the sockets close.
    pub fn detach(&self, id: AttachmentId) -> Result<(), NetdevError> {
        let att = self
            .attachments
            .lock()
            .expect("attachments lock")
            .remove(&id)
            .ok_or(NetdevError::NoSuchAttachment)?;
        tracing::info!(id = id.0, ifindex = att.ifindex, ifname = %att.ifname, "XDP detached");
        drop(att);
        Ok(())
    }

    /// Counters of one attachment.
    pub fn stats(&self, id: AttachmentId) -> Option<Stats> {
        self.attachments
            .lock()
            .expect("attachments lock")
            .get(&id)
            .map(Attachment::stats)
    }

    /// Every attachment with its counters (`Stats` carries ifindex and netns).
    pub fn list(&self) -> Vec<(AttachmentId, Stats)> {
        let atts = self.attachments.lock().expect("attachments lock");
        let mut v: Vec<_> = atts.iter().map(|(id, a)| (*id, a.stats())).collect();
        v.sort_by_key(|(id, _)| *id);
        v
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        let atts = std::mem::take(&mut *self.attachments.lock().unwrap_or_else(|e| e.into_inner()));
        drop(atts);
    }
}

/// Runs on the setup thread, inside the interface's namespace.
fn setup(
    spec: AttachSpec,
    netns_id: (u64, u64),
    options: &Options,
) -> Result<Attachment, NetdevError> {
    if let Some(p) = &spec.netns {
        netns::enter(p).map_err(|source| NetdevError::Netns {
            path: p.clone(),
            source,
        })?;
    }
    let ifindex = spec.ifindex;
    let nframes = options.frames_per_queue;
    if !nframes.is_power_of_two() || !(64..=65536).contains(&nframes) {
        return Err(NetdevError::Invalid(
            "frames per queue: a power of two from 64 to 65536",
        ));
    }
    let ifname = netns::ifname(ifindex).map_err(|_| NetdevError::NoDevice { ifindex })?;
    let nq = spec.queues.unwrap_or_else(|| netns::rx_queues(&ifname));
    let xsks = sys::map_create(17, 4, 4, nq, "bpftime_xsks").map_err(kernel("create XSKMAP"))?;
    // Generic mode: the per-CPU reinjection token (see `stub`).
    let token = match spec.mode {
        XdpMode::Skb => {
            Some(sys::map_create(6, 4, 4, 1, "bpftime_reinj").map_err(kernel("create token map"))?)
        }
        XdpMode::Drv => None,
    };
    let tok_fd = token.as_ref().map(|t| t.as_raw_fd());
    let redirect = sys::prog_load_xdp(
        &stub::redirect_stub(xsks.as_raw_fd(), tok_fd),
        "bpftime_xsk",
    )
    .map_err(kernel("load redirect stub"))?;
    let pass = Arc::new(
        sys::prog_load_xdp(&stub::pass_stub(tok_fd), "bpftime_pass")
            .map_err(kernel("load pass stub"))?,
    );
    // PASS through a TAP (see `tap`), live frames as the fallback.
    let via = match spec.mode {
        XdpMode::Drv => tap::Via::BpfRedirect,
        XdpMode::Skb => tap::Via::Mirred,
    };
    let reinject = match tap::Reinject::new(ifindex, via) {
        Ok(r) => Some(Arc::new(r)),
        Err(e) => {
            tracing::warn!(
                ifindex,
                "no TAP reinjection, XDP_PASS uses live frames: {e}"
            );
            None
        }
    };
    let mut sockets = Vec::new();
    for q in 0..nq {
        let x =
            // Generic mode sees GSO super-frames (see `gso`): take them as chains.
            xsk::Xsk::new(ifindex, q, nframes, spec.mode == XdpMode::Skb)
                .map_err(kernel("create AF_XDP socket"))?;
        sys::map_update_u32(&xsks, q, x.fd() as u32).map_err(kernel("XSKMAP update"))?;
        sockets.push(x);
    }
    let zero_copy = sockets.iter().all(|x| x.zero_copy());
    let link = sys::link_create_xdp(&redirect, ifindex, spec.mode.flags())
        .map_err(kernel("attach XDP stub (LINK_CREATE)"))?;
    let prog = Arc::new(ArcSwap::from_pointee(ProgSlot(spec.program)));
    let stop = Arc::new(stop::Stop::new().map_err(kernel("create eventfd"))?);
    let ncpu = cpu::online();
    let mut counters = Vec::new();
    let mut workers = Vec::new();
    for (q, x) in sockets.into_iter().enumerate() {
        let c = Arc::new(QueueCounters::default());
        counters.push(c.clone());
        let w = Worker {
            xsk: x,
            ifindex,
            queue: q as u32,
            prog: prog.clone(),
            pass_stub: pass.clone(),
            reinject: reinject.clone(),
            counters: c,
            stop: stop.clone(),
            pin: spec.cpu_pinning.then_some(q % ncpu),
            ptx: netns::PacketTx::new()
                .map_err(|e| {
                    tracing::warn!("no AF_PACKET socket, redirects to other interfaces fail: {e}")
                })
                .ok(),
            scratch: vec![0; xsk::FRAME_SIZE as usize],
            mtu: netns::mtu(ifindex).unwrap_or(1500) as usize,
            big: Vec::new(),
            busy_poll: options.busy_poll,
        };
        let h = std::thread::Builder::new()
            .name(format!("xdp-{ifname}-q{q}"))
            .spawn(move || w.run());
        match h {
            Ok(h) => workers.push(h),
            Err(e) => {
                stop.set();
                drop(link);
                for w in workers {
                    let _ = w.join();
                }
                return Err(kernel("spawn worker")(e));
            }
        }
    }
    let mut kept = vec![xsks, redirect];
    kept.extend(token);
    Ok(Attachment {
        ifindex,
        ifname,
        netns: spec.netns,
        netns_id,
        mode: spec.mode,
        zero_copy,
        prog,
        counters,
        stop,
        workers,
        link: Some(link),
        _kernel: kept,
    })
}
